"""INT8 export benchmark: FP32 vs INT8 task metric and output cosine, validator verdicts per chip, RKNN-Toolkit2
rv1106 compile (CPU layers, cycles), cost model, onnxruntime CPU latency FP32 vs INT8 measured in the same run.

Checkpoints: ``$CAMLAB_DETECTOR_CKPT`` / ``$CAMLAB_CRY_CKPT``, else the release checkpoints of ``make models`` (the
``detector_full`` recipe's and ``camlab.train.cry.RELEASE_RECIPE``'s output folders); with none, a seeded untrained model is exported and
the entry says so (``checkpoint_origin``; its metric drop is then meaningless).
"""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

NAME = "export"


def _checkpoint(kind: str, tmp: Path) -> tuple[Path, str]:
    env = os.environ.get(f"CAMLAB_{kind.upper()}_CKPT")
    if env:
        return Path(env), "env"
    release = _release_checkpoint(kind)
    if release.is_file():
        return release, "release (make models)"
    import torch

    from camlab.config import to_dict
    from camlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    if kind == "detector":
        from camlab.models.detector import DetectorConfig, build_model

        cfg = DetectorConfig()
        model, mc = build_model(cfg), cfg.to_dict()
    else:
        from camlab.models import cry

        cfg = cry.CryModelConfig()
        model, mc = cry.build_model(cfg), to_dict(cfg)
    path = tmp / f"{kind}_untrained.pt"
    save_checkpoint(path, kind=kind, model_config=mc, state_dict=model.state_dict(), meta={})
    return path, "untrained-seed0"


def _release_checkpoint(kind: str) -> Path:
    """Where ``make models`` leaves the release checkpoint of ``kind``."""
    if kind == "detector":
        from camlab.train import detector

        return detector.release_checkpoint()
    from camlab.train import cry

    return cry.release_checkpoint()


def _cry_toolchain_shape(tmp: Path) -> tuple[Path, str]:
    """An untrained cry CNN with a toolchain-legal 64 x 96 log-mel input (n_mels 64, window 0.982 s)."""
    import torch

    from camlab.config import to_dict
    from camlab.contract.audio_features import FeatureConfig
    from camlab.models import cry
    from camlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = cry.CryModelConfig(features=FeatureConfig(n_mels=64, window_s=0.982))
    path = tmp / "cry_64x96_untrained.pt"
    save_checkpoint(path, kind="cry", model_config=to_dict(cfg), state_dict=cry.build_model(cfg).state_dict(),
                    meta={})
    return path, "untrained-seed0, features n_mels=64 window_s=0.982 (64x96 input)"


def _one(kind: str, tmp: Path, ckpt: tuple[Path, str] | None = None, evaluate: bool = True) -> dict:
    from camlab.contract.manifest import load_bundle
    from camlab.deploy.export import export_checkpoint
    from camlab.deploy.quantize import ort_latency_ms

    ckpt, origin = ckpt or _checkpoint(kind, tmp)
    t0 = time.perf_counter()
    bundle = export_checkpoint(ckpt, "rv1106", tmp / "exports", evaluate=evaluate, oracle=True, register=False)
    export_s = time.perf_counter() - t0
    m = load_bundle(bundle).manifest
    x = np.load(bundle / "calibration" / "sample.npz")["inputs"][:1]
    # same run, same input, interleaved twice to even out the shared machine's noise
    fp32 = [ort_latency_ms(bundle / "model_fp32.onnx", x), ort_latency_ms(bundle / "model_fp32.onnx", x)]
    int8 = [ort_latency_ms(bundle / "model.onnx", x), ort_latency_ms(bundle / "model.onnx", x)]
    rk = m["cost"].get("rknn") or {}
    met = m["metrics"]
    return {
        "checkpoint": str(ckpt), "checkpoint_origin": origin,
        "task_metric": met.get("task_metric"), "split": met.get("split"),
        "fp32_metric": met["fp32"].get(met.get("task_metric")), "int8_metric": met["int8"].get(met.get("task_metric")),
        "int8_metric_drop": met.get("int8_metric_drop"),
        "output_cosine": met["output_cosine"], "output_cosine_min": min(met["output_cosine"].values()),
        "validator_violations": {c: v["violations"] for c, v in m["validation"].items()},
        "rknn_ok": rk.get("ok"), "rknn_error": rk.get("error"),
        "rknn_cpu_layers": rk.get("cpu_layers"), "rknn_cycles": rk.get("total_cycles"),
        "rknn_sim_cosine_min": rk.get("sim_cosine_min"), "rknn_internal_memory_bytes": rk.get("internal_memory_bytes"),
        "npu_latency_ms_est": {c: v["npu_latency_ms"] for c, v in m["cost"]["per_chip"].items()},
        "npu_latency_source": {c: v.get("source") for c, v in m["cost"]["per_chip"].items()},
        "peak_activation_bytes": m["cost"]["peak_activation_bytes"], "params": m["cost"]["params"],
        "macs": m["cost"]["macs"], "flash_bytes": m["cost"]["flash_bytes"],
        "ort_cpu_ms": {"fp32": round(min(fp32), 3), "int8": round(min(int8), 3),
                       "int8_speedup": round(min(fp32) / min(int8), 3), "threads": 1,
                       "note": "median of 20 single-thread runs, best of 2 interleaved rounds; shared 2-core host"},
        "export_s": round(export_s, 1),
        "input_shape": m["inputs"][0]["shape"],
    }


def run() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="camlab_bench_export_") as tmp:
        for kind in ("detector", "cry"):
            try:
                out[kind] = _one(kind, Path(tmp))
            except Exception as exc:  # one model failing still reports the other
                out[kind] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-1500:]}
        if "error" in out["cry"]:
            # the cry architecture itself through the toolchain, at a legal input shape (no task metric: untrained)
            try:
                out["cry_64x96_untrained"] = _one("cry", Path(tmp), _cry_toolchain_shape(Path(tmp)), evaluate=False)
            except Exception as exc:
                out["cry_64x96_untrained"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(), indent=1))
