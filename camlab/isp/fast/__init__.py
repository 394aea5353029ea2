"""camlab.isp.fast."""
