"""device_sim.spec: the camera's MIoT-Spec-V2 style device model (``model.json``), its dispatcher (``service``),
event JSON (``events``) and the wiring to device parts (``bindings``)."""
