"""device_sim.ota."""
