"""Firmware bundle writer: FP32 ONNX + INT8 QDQ ONNX + manifest.json + calibration sample, registered in MLflow.

Lays out ``exports/<model>/<version>/`` as ``exports/README.md`` documents (manifest schema v1,
``camlab/contract/manifest.schema.json``): exports, quantizes, compares FP32 vs INT8 (cosine per output on held-out
calibration-domain inputs, the task metric on the same evaluation split), validates against every chip profile,
runs the cost model and — when ``make rknn`` built it — the RKNN-Toolkit2 oracle for rv1106. The folder is written
under a temporary name and renamed into place, so a crash never leaves a half bundle with a valid manifest.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from camlab.contract.manifest import (MANIFEST_NAME, SCHEMA_VERSION, file_entry, load_bundle, sha256_file,
                                     validate_manifest)
from camlab.errors import CamlabError
from camlab.io_utils import atomic_write_json, fsync_dir

# evaluator(bundle_dir, variant) -> {"metric": "mAP50"|"F1", "value": 0-100, "split": {...}, "counts": {...}}
Evaluator = Callable[[Path, str], dict]


@dataclass
class BundleRequest:
    model: Any                      # torch.nn.Module in eval mode, normalised NCHW input -> raw head tensors
    io: dict                        # manifest_io(model_config): inputs, outputs, decode (+ features)
    name: str                       # "detector" | "cry"
    task: str                       # "detection" | "cry"
    calibration: np.ndarray         # (N, C, H, W) normalised float32 model inputs, camera-domain data
    calibration_source: str
    holdout: np.ndarray | None = None   # inputs for FP32-vs-INT8 cosine (default: last quarter of calibration)
    chips: tuple[str, ...] = ("rv1106", "ssc337de", "ssc377", "t40xp")
    target_chip: str = "rv1106"
    out_root: Path = Path("exports")
    evaluator: Evaluator | None = None
    checkpoint: Path | None = None
    meta: dict = field(default_factory=dict)
    oracle: bool = True
    register: bool = True
    stage: str = "dev"              # registry stage tag: "release" (make models), "demo" (make demo), "dev" (ad hoc)
    quant_method: str = "MinMax"
    calibration_seed: int = 0
    sample_count: int = 8
    opset: int = 13
    version: str | None = None


STAGES = ("release", "demo", "dev")
STAGE_ALIASES = ("release", "demo")   # registry aliases: the newest bundle of that stage


def bundle_created(manifest: Path) -> tuple[str, str]:
    """Sort key of a bundle's age: its manifest's ``model.created`` (UTC, ISO 8601) and then the bundle folder's name.
    Not the file's mtime: a clone, copy or rsync rewrites mtimes in any order. A manifest without a readable
    ``created`` falls back to its mtime, written the same way."""
    try:
        created = (json.loads(Path(manifest).read_text()).get("model") or {}).get("created")
    except (OSError, ValueError, AttributeError):
        created = None
    if not isinstance(created, str) or not created:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(Path(manifest).stat().st_mtime))
    return created, Path(manifest).parent.name


def newest_bundle_of(model_dir: Path, checkpoint: Path | None = None,
                     accept: Callable[[Path], bool] | None = None) -> Path | None:
    """The newest bundle (:func:`bundle_created`) under ``exports/<model>/``, preferring those exported from
    ``checkpoint`` (manifest ``provenance.checkpoint_sha256``): an ad-hoc export of a trial checkpoint made after the
    release must not stand in for the release. ``accept(bundle_dir)``: only bundles it returns True for (e.g. valid
    for a chip). None when the folder holds no (accepted) bundle."""
    found = sorted(Path(model_dir).glob(f"*/{MANIFEST_NAME}"), key=bundle_created)
    if accept is not None:
        found = [m for m in found if accept(m.parent)]
    if not found:
        return None
    if checkpoint is not None and Path(checkpoint).is_file():
        sha = sha256_file(checkpoint)

        def exported_from(manifest: Path) -> str | None:
            try:
                return (json.loads(manifest.read_text()).get("provenance") or {}).get("checkpoint_sha256")
            except (OSError, ValueError, AttributeError):
                return None

        mine = [m for m in found if exported_from(m) == sha]
        if mine:
            return mine[-1].parent
    return found[-1].parent


def make_version(commit: str) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + (commit[:7] if commit != "unknown" else "nogit")


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _tool_versions() -> dict:
    import onnx
    import onnxruntime
    import onnxslim
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "onnxslim": onnxslim.__version__}


def build_bundle(req: BundleRequest) -> Path:
    """Run the whole export for ``req``; returns the final bundle folder."""
    from camlab import tracking
    from camlab.deploy.chips import load_chip
    from camlab.deploy.cost import npu_latency_ms
    from camlab.deploy.export import export_onnx
    from camlab.deploy.quantize import QuantConfig, compare_outputs, quantize_qdq
    from camlab.deploy.validate import validate_model

    if req.task not in ("detection", "cry"):
        raise CamlabError(f"task must be 'detection' or 'cry', got {req.task!r}")
    if req.stage not in STAGES:
        raise CamlabError(f"stage must be one of {', '.join(STAGES)}, got {req.stage!r}")
    for key in ("inputs", "outputs", "decode"):
        if key not in req.io:
            raise CamlabError(f"manifest_io lacks '{key}'")
    spec = req.io["inputs"][0]
    calib = np.asarray(req.calibration, np.float32)
    if calib.ndim != len(spec["shape"]) or list(calib.shape[1:]) != list(spec["shape"][1:]):
        raise CamlabError(f"calibration inputs have shape {list(calib.shape)}, manifest input is {spec['shape']}")
    holdout = req.holdout
    if holdout is None:
        k = max(1, len(calib) // 4)
        calib, holdout = calib[:-k] if len(calib) > k else calib, calib[-k:]
    chips = [load_chip(c) for c in dict.fromkeys((req.target_chip, *req.chips))]

    commit = tracking.git_commit()
    version = req.version or make_version(commit)
    final = Path(req.out_root) / req.name / version
    if final.exists():
        raise CamlabError(f"{final}: bundle version already exists")
    tmp = final.with_name(f".{version}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "calibration").mkdir(parents=True)
    try:
        export_onnx(req.model, spec["shape"], tmp / "model_fp32.onnx", input_name=spec["name"],
                    output_names=[o["name"] for o in req.io["outputs"]], opset=req.opset)
        qinfo = quantize_qdq(tmp / "model_fp32.onnx", tmp / "model.onnx", calib, QuantConfig(method=req.quant_method))
        qinfo.pop("_seconds", None)
        qinfo.pop("_outputs_fixed", None)
        qinfo["calibration"].update(source=req.calibration_source, seed=int(req.calibration_seed),
                                    sample_file="calibration/sample.npz")
        np.savez_compressed(tmp / "calibration" / "sample.npz", inputs=calib[:req.sample_count])
        cmp = compare_outputs(tmp / "model_fp32.onnx", tmp / "model.onnx", holdout)

        # validation + cost per chip
        validation, per_chip, cost_summary, reports = {}, {}, None, {}
        for chip in chips:
            rep = validate_model(tmp / "model.onnx", chip)
            reports[chip.name] = rep
            validation[chip.name] = {"violations": len(rep.violations),
                                     "rules": sorted({v.rule for v in rep.violations})}
            per_chip[chip.name] = {k: rep.latency[k] for k in ("npu_latency_ms", "basis", "source")}
            cost_summary = cost_summary or rep.cost
        target = chips[0].name
        if validation[target]["violations"]:
            from camlab.deploy.validate import format_report

            raise CamlabError(f"the INT8 model breaks {target}'s rules, no bundle written:\n"
                              + format_report(reports[target]))
        rknn = None
        if req.oracle and any(c.name == "rv1106" for c in chips):
            rknn = _maybe_oracle(tmp / "model.onnx", holdout[:4])
            if rknn.get("ok"):
                rv = next(c for c in chips if c.name == "rv1106")
                per_chip["rv1106"] = {**{k: v for k, v in npu_latency_ms(None, rv, rknn["total_cycles"]).items()
                                         if k in ("npu_latency_ms", "basis", "source")}}
            elif rknn.get("ran"):
                # the vendor toolchain ran and refused the graph: the chip cannot run it, whatever our rules say
                if target == "rv1106":
                    lines = [ln.strip() for ln in str(rknn.get("error", "")).splitlines() if ln.strip()]
                    raise CamlabError(f"RKNN-Toolkit2 could not build the INT8 model for rv1106, no bundle "
                                      f"written: {lines[-1] if lines else 'no message'}")
                validation["rv1106"]["violations"] += 1
                validation["rv1106"]["rules"] = sorted({*validation["rv1106"]["rules"], "rknn_build"})
        passing = [c.name for c in chips if validation[c.name]["violations"] == 0]
        files = {"model.onnx": file_entry(tmp / "model.onnx", "model_int8"),
                 "model_fp32.onnx": file_entry(tmp / "model_fp32.onnx", "model_fp32"),
                 "calibration/sample.npz": file_entry(tmp / "calibration" / "sample.npz", "calibration")}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "model": {"name": req.name, "task": req.task, "version": version, "created": _iso_now()},
            "files": files,
            "model_files": {"int8": "model.onnx", "fp32": "model_fp32.onnx"},
            "inputs": req.io["inputs"],
            "outputs": req.io["outputs"],
            "decode": req.io["decode"],
            **({"features": req.io["features"]} if "features" in req.io else {}),
            "quantization": qinfo,
            "metrics": {"split": {"name": "calibration-holdout", "count": int(cmp["count"]),
                                  "description": "held-out calibration-domain inputs (cosine only)"},
                        "task_metric": "mAP50" if req.task == "detection" else "F1",
                        "fp32": {}, "int8": {}, "int8_metric_drop": None,
                        "output_cosine": {k: round(v, 6) for k, v in cmp["cosine"].items()},
                        "note": "task metric not evaluated yet"},
            "cost": {"macs": int(cost_summary["macs"]), "params": int(cost_summary["params"]),
                     "peak_activation_bytes": int(cost_summary["peak_activation_bytes"]),
                     "flash_bytes": int(files["model.onnx"]["bytes"]), "per_chip": per_chip,
                     "rknn": _rknn_summary(rknn)},
            "chips": passing,  # the chips this bundle may ship to (0 violations); all verdicts in 'validation'
            "validation": validation,
            "provenance": {"mlflow_run_id": None, "mlflow_model": None, "git_commit": commit,
                           "tools": _tool_versions()},
        }
        if req.checkpoint is not None:
            manifest["provenance"].update(checkpoint=str(req.checkpoint),
                                          checkpoint_sha256=sha256_file(req.checkpoint))
        validate_manifest(manifest, str(tmp / MANIFEST_NAME))
        atomic_write_json(tmp / MANIFEST_NAME, manifest)
        load_bundle(tmp)  # what device_sim will do

        if req.evaluator is not None:
            manifest["metrics"] = _metrics(req.evaluator, tmp, manifest["metrics"])
        if req.register:
            run_id, model_ref = _register(req, tmp, manifest, reports)
            manifest["provenance"].update(mlflow_run_id=run_id, mlflow_model=model_ref)
        validate_manifest(manifest, str(tmp / MANIFEST_NAME))
        atomic_write_json(tmp / MANIFEST_NAME, manifest)
        load_bundle(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _maybe_oracle(int8_path: Path, inputs: np.ndarray) -> dict:
    from camlab.deploy import rknn

    if not rknn.available():
        return {"ok": False, "ran": False, "error": "RKNN-Toolkit2 venv not built (make rknn)"}
    try:
        return {**rknn.run_oracle(int8_path, inputs), "ran": True}
    except CamlabError as exc:
        return {"ok": False, "ran": True, "error": str(exc)}


def _rknn_summary(rep: dict | None) -> dict | None:
    if rep is None:
        return None
    keep = ("ok", "error", "target", "toolkit_version", "cpu_layers", "cpu_layer_names", "total_cycles",
            "latency_ms", "internal_memory_bytes", "weight_memory_bytes", "sim_cosine", "sim_cosine_min")
    return {k: rep[k] for k in keep if k in rep}


def _metrics(evaluator: Evaluator, bundle_dir: Path, base: dict) -> dict:
    fp = evaluator(bundle_dir, "fp32")
    q = evaluator(bundle_dir, "int8")
    name = fp["metric"]
    out = dict(base)
    out.pop("note", None)
    out.update(split=fp["split"], task_metric=name, fp32={name: round(fp["value"], 3), **fp.get("extra", {})},
               int8={name: round(q["value"], 3), **q.get("extra", {})},
               int8_metric_drop=round(fp["value"] - q["value"], 3), counts=fp.get("counts", {}))
    return out


def _register(req: BundleRequest, bundle_dir: Path, manifest: dict, reports: dict) -> tuple[str, str | None]:
    """Log the export to MLflow (experiment ``export``) and register model.onnx as ``camlab-<name>``.

    The run and the model version carry the tag ``stage`` (``release``, ``demo`` or ``dev``) so demo bundles are told
    from release ones; a ``release`` or ``demo`` version also takes the alias of that name (the newest of its stage:
    ``models:/camlab-detector@release``)."""
    import mlflow

    from camlab import tracking

    with tracking.run("export", run_name=f"{req.name}-{manifest['model']['version']}", nested=mlflow.active_run()
                      is not None, tags={"camlab.kind": req.name, "stage": req.stage,
                                "git_commit": manifest["provenance"]["git_commit"]}
                      ) as run:
        mlflow.log_params({"chip": req.target_chip, "opset": req.opset, "quant_method": req.quant_method,
                           "calibration_count": manifest["quantization"]["calibration"]["count"],
                           "calibration_source": req.calibration_source[:250]})
        metrics = {f"cosine_{k}": v for k, v in manifest["metrics"]["output_cosine"].items()}
        metrics.update({k: float(v) for k, v in manifest["cost"].items() if k in ("macs", "params",
                                                                               "peak_activation_bytes",
                                                                               "flash_bytes")})
        for chip, val in manifest["validation"].items():
            metrics[f"violations_{chip}"] = val["violations"]
            metrics[f"npu_ms_{chip}"] = manifest["cost"]["per_chip"][chip]["npu_latency_ms"]
        m = manifest["metrics"]
        if m.get("int8_metric_drop") is not None:
            metrics["int8_metric_drop"] = m["int8_metric_drop"]
            metrics[f"fp32_{m['task_metric']}"] = m["fp32"][m["task_metric"]]
            metrics[f"int8_{m['task_metric']}"] = m["int8"][m["task_metric"]]
        mlflow.log_metrics(metrics)
        mlflow.log_dict(manifest, "bundle/manifest_at_export.json")
        mlflow.log_dict({c: r.to_dict() for c, r in reports.items()}, "bundle/validation.json")
        model_ref = None
        try:  # the bundle's files are the model version's artifacts (what the firmware build pulls)
            from mlflow.tracking import MlflowClient

            for rel in manifest["files"]:
                sub = str(Path("bundle") / Path(rel).parent) if Path(rel).parent != Path(".") else "bundle"
                mlflow.log_artifact(str(bundle_dir / rel), artifact_path=sub)
            client = MlflowClient()
            name = f"camlab-{req.name}"
            try:
                client.get_registered_model(name)
            except Exception:
                client.create_registered_model(name, description=f"camlab {req.name} INT8 QDQ export bundles")
            mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id,
                                             tags={"version": manifest["model"]["version"],
                                                   "chips": ",".join(manifest["chips"]), "stage": req.stage})
            if req.stage in STAGE_ALIASES:
                client.set_registered_model_alias(name, req.stage, mv.version)
            model_ref = f"{name}/{mv.version}"
        except Exception as exc:  # registry problems must not lose the bundle; record why
            mlflow.set_tag("registry_error", f"{type(exc).__name__}: {exc}"[:500])
        return run.info.run_id, model_ref
