"""device_sim — the simulated camera, written like firmware. Consumes only export bundles (camlab.contract)."""
