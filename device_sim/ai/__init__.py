"""device_sim.ai."""
