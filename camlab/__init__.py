"""camlab — the workbench: raw Bayer ISP, on-device models, INT8 export, and the contract with device_sim."""
__version__ = "0.1.0"
