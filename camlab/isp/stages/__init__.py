"""camlab.isp.stages."""
