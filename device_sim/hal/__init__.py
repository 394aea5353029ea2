"""device_sim.hal."""
