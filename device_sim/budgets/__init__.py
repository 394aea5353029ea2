"""device_sim.budgets."""
