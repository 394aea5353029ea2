"""device_sim.media."""
