"""device_sim.services."""
