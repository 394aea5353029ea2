"""device_sim.spec."""
