"""AI scheduler: loads the export bundles, runs them with onnxruntime, and times them on the NPU model.

One detector bundle (task ``detection``) and optionally one cry bundle (task ``cry``). Every bundle is validated
(:func:`camlab.contract.manifest.load_bundle`: JSON Schema + sha256 of every file) and must list the camera's chip
in ``chips`` and in ``cost.per_chip``, all before the run starts. The INT8 QDQ ``model.onnx`` runs on the host
CPU (onnxruntime, one intra-op thread, like a single NPU core) for the numbers; the timing the camera sees is the
NPU model's (:mod:`device_sim.hal.npu`). The detector runs on substream frames at ``ai_fps`` while the motion gate
is open; each submission records preprocess, NPU queue/service and postprocess times.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlab.contract.manifest import Bundle, load_bundle
from camlab.errors import InputFileError
from device_sim.hal.npu import NpuModel, npu_latency_s


@dataclass
class LoadedModel:
    bundle: Bundle
    session: object
    input_name: str
    output_names: list[str]
    npu_s: float
    input_bytes: int
    output_bytes: int


def load_models(paths: list[str | Path], chip: str) -> dict[str, LoadedModel]:
    """Validate and open every bundle; returns ``{"detection": ..., "cry": ...}``. Fails before the run."""
    import onnxruntime as ort
    models: dict[str, LoadedModel] = {}
    for p in paths:
        b = load_bundle(p, device=True)  # what the camera stores: INT8 model + manifest
        origin = str(Path(p) / "manifest.json")
        if chip not in b.chips:
            raise InputFileError(f"{origin}: bundle was built for chips {b.chips}, not for {chip!r} "
                                 f"(field 'chips'); re-export it for {chip}")
        npu_s = npu_latency_s(b.manifest, chip, origin)
        if b.task in models:
            raise InputFileError(f"{origin}: a second {b.task} bundle was given; the camera runs one per task")
        if b.task == "detection":
            unknown = [c for c in b.decode.get("classes", []) if c not in ("person", "pet", "vehicle")]
            if unknown:
                raise InputFileError(f"{origin}: field 'decode.classes' has {unknown}; the camera's ai-detection "
                                     f"service knows person, pet, vehicle")
        if b.task == "cry" and not b.features:
            raise InputFileError(f"{origin}: cry bundle lacks the 'features' block")
        mpath = b.model_path("int8")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        # the NPU's arithmetic, not the host's: fused x86 int8 kernels saturate on CPUs without VNNI (see
        # camlab.deploy.quantize.reference_session_options, the same setting on the workbench side)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            sess = ort.InferenceSession(str(mpath), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types
            raise InputFileError(f"{mpath}: onnxruntime cannot load the model: {exc}") from None
        ins = sess.get_inputs()
        if len(ins) != 1 or list(ins[0].shape[1:]) != list(b.input["shape"][1:]):
            raise InputFileError(f"{origin}: inputs[0].shape {b.input['shape']} does not match the model's "
                                 f"{[i.shape for i in ins]}")
        out_names = [o.name for o in sess.get_outputs()]
        in_bytes = int(np.prod(b.input["shape"])) * 4
        out_bytes = sum(int(np.prod([d if isinstance(d, int) else 1 for d in o.shape])) * 4
                        for o in sess.get_outputs())
        models[b.task] = LoadedModel(b, sess, ins[0].name, out_names, npu_s, in_bytes, out_bytes)
    if "detection" not in models and "cry" not in models:
        raise InputFileError("no bundle given: pass a detection and/or a cry bundle")
    return models


class Scheduler:
    """Runs models in order of submission on one NPU; returns results with their modelled completion time."""

    def __init__(self, models: dict[str, LoadedModel], npu: NpuModel):
        self.models = models
        self.npu = npu
        self.host_infer_s: dict[str, float] = {}

    def infer(self, task: str, x: np.ndarray, t_submit: float):
        """-> (outputs or None when dropped, job)."""
        m = self.models[task]
        job = self.npu.submit(task, t_submit, m.npu_s)
        if job is None:
            return None, None
        t0 = time.perf_counter()
        outs = m.session.run(None, {m.input_name: x})
        self.host_infer_s[task] = self.host_infer_s.get(task, 0.0) + time.perf_counter() - t0
        return outs, job
