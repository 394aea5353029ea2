"""The raw Bayer ISP of the camera: stages, 3A, the tuned pipeline and its fused fast path.

``camlab.isp.stages`` holds one pure function + params dataclass per stage (each citing its algorithm);
``camlab.isp.three_a`` auto exposure, AWB statistics and the day/night IR-cut controller; ``camlab.isp.pipeline``
the :class:`~camlab.isp.pipeline.Pipeline` that runs a YAML tuning (``camlab/isp/tuning/*.yaml``) on
:class:`camlab.sensor.raw_io.RawFrame` s and returns NV12 main + 640x360 substreams; ``camlab.isp.fast`` the fused
numba kernels that golden tests hold to the reference stages (Ragan-Kelley et al., Halide, PLDI 2013: algorithm
kept apart from schedule).
"""
