"""device_sim.pipeline: the camera as a media pipeline -- elements with one job each joined by bounded queues.

:mod:`device_sim.pipeline.core` holds the queue, the element base and the two runners (serial for the simulated
clock, one thread per element for the real-time clock); :mod:`device_sim.pipeline.elements` the camera's elements.
They are wired in one place, :class:`device_sim.camera.Camera`.
"""
