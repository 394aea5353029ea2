"""device_sim.net."""
