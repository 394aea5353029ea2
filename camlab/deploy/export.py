"""Chip-toolchain-ready ONNX export: torch -> static, simplified ONNX (opset 13-19, IR <= 10, batch 1).

ONNX IR spec and operator sets (https://onnx.ai/onnx/repo-docs/IR.html, Versioning.md); strict shape inference
(``onnx.shape_inference.infer_shapes(strict_mode=True, data_prop=True)``); graph simplification with onnxslim
(constant folding, dead-node and identity elimination — the role onnx-simplifier plays). Normalisation stays out of
the graph (mean/std go in the manifest). ``export_checkpoint`` is the whole path checkpoint -> bundle used by
``camlab export`` and ``make demo``.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from camlab.errors import CamlabError, InputFileError
from camlab.io_utils import atomic_write_bytes

DEFAULT_OPSET = 13
MAX_IR = 10


def _static_dims(value_info) -> list[int] | None:
    dims = value_info.type.tensor_type.shape.dim
    out = []
    for d in dims:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            return None
        out.append(int(d.dim_value))
    return out


def check_static(model) -> list[str]:
    """Names of tensors whose shape is not fully static after strict shape inference ([] when all static)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    bad = []
    known = {vi.name for vi in inferred.graph.value_info} | {o.name for o in inferred.graph.output} | \
        {i.name for i in inferred.graph.input}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        if _static_dims(vi) is None:
            bad.append(vi.name)
    inits = {i.name for i in inferred.graph.initializer}
    for node in inferred.graph.node:
        for o in node.output:
            if o and o not in known and o not in inits:
                bad.append(o)
    return bad


def simplify(model):
    """onnxslim simplification; the result is checked and keeps the input/output names."""
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slim = onnxslim.slim(model)
    if slim is None:
        raise CamlabError("onnxslim returned no model")
    return slim


def export_onnx(model, input_shape: Sequence[int], path: str | Path, *, input_name: str = "images",
                output_names: Sequence[str] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Export a torch module to a static, simplified FP32 ONNX at ``path`` (atomic write); returns ``path``.

    Raises CamlabError when the request or the graph breaks a toolchain rule (batch 1, H/W multiples of 32,
    opset 13-19, static shapes).
    """
    import onnx
    import torch

    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or shape[0] != 1:
        raise CamlabError(f"input shape {list(shape)}: batch must be 1 (NCHW)")
    if len(shape) == 4 and (shape[2] % 32 or shape[3] % 32):
        raise CamlabError(f"input shape {list(shape)}: H and W must be multiples of 32")
    if not 13 <= opset <= 19:
        raise CamlabError(f"opset {opset}: camera toolchains here accept opset 13-19")
    model = model.eval()
    dummy = torch.zeros(shape, dtype=torch.float32)
    with torch.no_grad():
        probe = model(dummy)
    n_out = len(probe) if isinstance(probe, (list, tuple)) else 1
    names = list(output_names) if output_names else [f"output{i}" for i in range(n_out)]
    if len(names) != n_out:
        raise CamlabError(f"model returns {n_out} outputs but {len(names)} output names were given: {names}")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buf, opset_version=opset, dynamo=False, input_names=[input_name],
                          output_names=names, do_constant_folding=True, dynamic_axes=None)
    graph = onnx.load_from_string(buf.getvalue())
    graph = simplify(graph)
    if graph.ir_version > MAX_IR:
        graph.ir_version = MAX_IR
    # opset imports and names survive simplification; verify
    opsets = {o.domain or "ai.onnx": o.version for o in graph.opset_import}
    if opsets.get("ai.onnx") != opset:
        raise CamlabError(f"exported graph has opset {opsets.get('ai.onnx')}, expected {opset}")
    if [i.name for i in graph.graph.input] != [input_name]:
        raise CamlabError(f"exported graph inputs {[i.name for i in graph.graph.input]}, expected [{input_name}]")
    if [o.name for o in graph.graph.output] != names:
        raise CamlabError(f"exported graph outputs {[o.name for o in graph.graph.output]}, expected {names}")
    dynamic = check_static(graph)
    if dynamic:
        raise CamlabError(f"exported graph has non-static shapes after strict inference: {dynamic[:5]}")
    graph = onnx.shape_inference.infer_shapes(graph, strict_mode=True, data_prop=True)
    onnx.checker.check_model(graph, full_check=True)
    path = Path(path)
    atomic_write_bytes(path, graph.SerializeToString())
    return path


def _load_model_module(kind: str):
    import importlib

    name = {"detector": "camlab.models.detector", "cry": "camlab.models.cry"}[kind]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise CamlabError(f"{name} is not available ({exc}); cannot export a '{kind}' checkpoint") from None


def export_checkpoint(checkpoint: str | Path, chip: str = "rv1106", out_dir: str | Path | None = None, *,
                      kind: str | None = None, calib_count: int | None = None, evaluate: bool = True,
                      oracle: bool = True, register: bool = True, stage: str = "dev") -> Path:
    """Checkpoint -> INT8 bundle ``exports/<model>/<version>/`` validated for ``chip``; returns the bundle folder.

    ``out_dir`` is the exports root (default :func:`camlab.settings.exports_root`). The FP32 vs INT8 metrics come
    from ``camlab.eval.detection.evaluate_bundle`` / ``camlab.eval.audio.evaluate_bundle`` on the same split;
    calibration data from ``camlab.data.render.calibration_inputs`` / ``camlab.data.audio.calibration_windows``.
    ``stage`` tags the registered model version (``release``: make models, ``demo``: make demo, ``dev``: ad hoc).
    """
    from camlab import settings
    from camlab.deploy.bundle import BundleRequest, build_bundle
    from camlab.deploy.chips import load_chip
    from camlab.train.checkpoint import load_checkpoint

    load_chip(chip)  # fail early on an unknown chip
    payload = load_checkpoint(checkpoint)
    kind = kind or payload["kind"]
    if kind not in ("detector", "cry"):
        raise InputFileError(f"{checkpoint}: checkpoint kind '{kind}' is not exportable (detector or cry)")
    if payload["kind"] != kind:
        raise InputFileError(f"{checkpoint}: checkpoint is a '{payload['kind']}' model, expected '{kind}'")
    mod = _load_model_module(kind)
    loaded = mod.load_checkpoint(checkpoint)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    meta = loaded[1] if isinstance(loaded, tuple) and len(loaded) > 1 else payload.get("meta", {})
    io_spec = mod.manifest_io(payload["model_config"])
    calib, holdout, source = calibration_for(kind, payload["model_config"], calib_count)
    evaluator = evaluator_for(kind, meta) if evaluate else None
    req = BundleRequest(model=model, io=io_spec, name=kind, task="detection" if kind == "detector" else "cry",
                        calibration=calib, holdout=holdout, calibration_source=source, chips=tuple(_chips_for(chip)),
                        target_chip=chip, out_root=Path(out_dir) if out_dir else settings.exports_root(),
                        evaluator=evaluator, checkpoint=Path(checkpoint), meta=dict(meta or {}), oracle=oracle,
                        register=register, stage=stage)
    return build_bundle(req)


def _chips_for(chip: str) -> list[str]:
    """The target chip first, then the other packaged profiles (the manifest records all verdicts)."""
    from camlab.deploy.chips import available_chips

    return [chip] + [c for c in available_chips() if c != chip]


def calibration_for(kind: str, model_config: dict, count: int | None = None, seed: int = 0):
    """(calibration, holdout, description): real camera-domain model inputs from the data modules.

    Detector: training-split images rendered through the sensor + ISP (``camlab.data.render.calibration_inputs``);
    cry: training-split audio windows over household noise (``camlab.data.audio.calibration_windows``). The holdout
    (for FP32-vs-INT8 cosine) is drawn with another seed.
    """
    import os

    small = os.environ.get("CAMLAB_SMALL") == "1"
    if kind == "detector":
        from camlab.data.render import calibration_inputs

        n = count or (4 if small else 128)
        calib = calibration_inputs(n, seed, model_config=model_config)
        hold = calibration_inputs(2 if small else max(4, n // 8), seed + 1, model_config=model_config)
        src = (f"{n} training-split images rendered through camlab sensor+ISP (day/IR variants), letterboxed "
               f"(camlab.data.render.calibration_inputs seed {seed})")
    else:
        from camlab.data.audio import calibration_windows
        from camlab.models.cry import model_config_from_dict

        n = count or (64 if small else 512)
        fc = model_config_from_dict(model_config).features
        calib = calibration_windows(n, seed, feature_cfg=fc)
        hold = calibration_windows(max(8, n // 8), seed + 1, feature_cfg=fc)
        src = (f"{n} training-split audio windows (cries over household noise and noise alone), log-mel as the "
               f"features block says (camlab.data.audio.calibration_windows seed {seed})")
    return np.asarray(calib, np.float32), np.asarray(hold, np.float32), src


def evaluator_for(kind: str, meta: dict | None = None):
    """Evaluator(bundle_dir, variant) -> {metric, value (0-100), split, counts} using the eval modules. A cry
    checkpoint's ``meta`` names the recipe's data (root, split fraction and seed, extra negatives): its validation
    split is the one scored, as in ``benchmarks/bench_cry.py``; the default split otherwise."""
    if kind == "detector":
        def run(bundle_dir, variant):
            from camlab.eval import detection

            data_dirs = detection_eval_dirs()
            res = detection.evaluate_bundle(bundle_dir, data_dirs, variant=variant)
            classes = res["classes"]
            m50 = res.get("map50")
            if m50 is None:
                aps = [c["ap50"] for c in classes.values() if c.get("ap50") is not None]
                m50 = float(np.mean(aps)) if aps else float("nan")
            counts = {k: {"n_images": c.get("n_images"), "n_boxes": c.get("n_boxes")} for k, c in classes.items()}
            return {"metric": "mAP50", "value": 100.0 * float(m50), "counts": counts,
                    "split": {"name": "val", "count": int(res.get("n_images", 0)),
                              "description": f"detector validation split: {', '.join(map(str, data_dirs))}"},
                    "extra": {f"ap50_{k}": (None if c.get("ap50") is None else round(100 * c["ap50"], 3))
                              for k, c in classes.items()}}
        return run

    def run_cry(bundle_dir, variant):
        from camlab.data.audio import audio_root, check_split_is_the_checkpoints, split_config, split_dir
        from camlab.eval import audio

        data_cfg = split_config(((meta or {}).get("train_config") or {}).get("data") or {})
        val_dir = split_dir("val", data_cfg)          # cached per recipe: FP32 and INT8 read the same folder
        counts = {k: sum(1 for p in (val_dir / k).rglob("*") if p.is_file()) for k in ("cry", "nocry")}
        check_split_is_the_checkpoints(bundle_dir, meta, counts["cry"], data_cfg)
        res = audio.evaluate_bundle(bundle_dir, val_dir, variant=variant)
        extra = f"; extra negatives {', '.join(data_cfg.extra_negatives)}" if data_cfg.extra_negatives else ""
        return {"metric": "F1", "value": 100.0 * float(res["f1"]), "counts": counts,
                "split": {"name": "val", "count": int(res.get("n_cry", 0)) + int(res.get("n_nocry", 0)),
                          "description": f"cry validation split of the checkpoint's recipe (recording-grouped, "
                                         f"camlab.data.audio): {audio_root(data_cfg.root)}, val_fraction "
                                         f"{data_cfg.val_fraction}, seed {data_cfg.split_seed}{extra}"},
                "extra": {"precision": round(100 * res["precision"], 3), "recall": round(100 * res["recall"], 3)}}
    return run_cry


def detection_eval_dirs() -> list:
    """The detector's validation data: the val side of the split manifest (``settings.detector_split_manifest()``,
    ``$CAMLAB_DETECTOR_SPLIT`` or ``datasets/detector_split.json``) when the full data is reachable or the split is
    set explicitly; else (or with ``CAMLAB_SMALL=1`` and no explicit split) the embedded demo slice."""
    import os

    from camlab import settings

    manifest = settings.detector_split_manifest()
    explicit = "CAMLAB_DETECTOR_SPLIT" in os.environ
    small = os.environ.get("CAMLAB_SMALL") == "1"
    if manifest.is_file() and (explicit or (settings.has_full_data() and not small)):
        return [str(manifest)]
    demo = settings.demo_data_root()
    if demo.is_dir():
        return [str(demo)]
    raise CamlabError(f"no detector validation data: neither {manifest} with the full data nor {demo}")
