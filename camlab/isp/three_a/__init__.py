"""camlab.isp.three_a."""
