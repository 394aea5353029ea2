"""camlab.isp."""
