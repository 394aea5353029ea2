"""device_sim.storage."""
