"""Fast path of the ISP: fused numba kernels (``fused``) and the demosaic kernels (``demosaic``), both held to the
float reference stages of ``camlab.isp.stages`` by golden tests on all four Bayer patterns."""
