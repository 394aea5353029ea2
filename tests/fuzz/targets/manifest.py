"""Bundle manifests (``manifest.json`` of an export bundle or of a camera-side copy from flash / an OTA package):
``load_bundle`` parses, checks the schema and every listed file (sizes, sha256, nothing unlisted)."""
from __future__ import annotations

INSTRUMENT = ("camlab.contract.manifest",)
MODEL = b"int8-model"


def setup():
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from camlab.contract.manifest import load_bundle
    from camlab.errors import InputFileError
    tmp = Path(tempfile.mkdtemp(prefix="camlab-fuzz-bundle-"))
    atexit.register(shutil.rmtree, tmp, True)
    (tmp / "model.onnx").write_bytes(MODEL)

    def one(data: bytes) -> None:
        (tmp / "manifest.json").write_bytes(data)
        load_bundle(tmp, verify=True, device=True)
    return one, (InputFileError,)


def seeds() -> dict[str, bytes]:
    import hashlib
    import json
    from pathlib import Path
    m = {"schema_version": 1,
         "model": {"name": "detector", "task": "detection", "version": "20261122T010000Z-abc1234",
                   "created": "2026-11-22T01:00:00Z"},
         "files": {"model.onnx": {"bytes": len(MODEL), "sha256": hashlib.sha256(MODEL).hexdigest(), "role": "int8"}},
         "model_files": {"int8": "model.onnx", "fp32": "model_fp32.onnx"},
         "inputs": [{"name": "images", "shape": [1, 3, 32, 64], "layout": "NCHW", "dtype": "float32",
                     "color_format": "RGB", "value_range": [0, 255], "mean": [0, 0, 0], "std": [255, 255, 255],
                     "resize": {"method": "letterbox", "interpolation": "bilinear", "pad_value": 114,
                                "align": "center"}}],
         "outputs": [{"name": "p3", "shape": [1, 8, 4, 8], "role": "head", "stride": 8}],
         "decode": {"strides": [8], "classes": ["person", "pet", "vehicle"], "score_thresholds": [0.3, 0.3, 0.3],
                    "nms_iou": 0.5, "max_detections": 50, "box_encoding": "ltrb_distance"},
         "quantization": {"format": "QDQ",
                          "weights": {"dtype": "int8", "granularity": "per_channel", "symmetric": True, "axis": 0},
                          "activations": {"dtype": "int8", "granularity": "per_tensor", "symmetric": False},
                          "outputs_quantized": True,
                          "calibration": {"method": "MinMax", "source": "isp-rendered val images", "count": 8}},
         "metrics": {"split": {"name": "val", "count": 10}, "task_metric": "mAP50", "fp32": {"mAP50": 50.0},
                     "int8": {"mAP50": 49.5}, "int8_metric_drop": 0.5, "output_cosine": {"p3": 0.999}},
         "cost": {"macs": 1000, "params": 100, "peak_activation_bytes": 4096, "flash_bytes": 2000,
                  "per_chip": {"rv1106": {"npu_latency_ms": 1.0, "basis": "cost model", "source": "model"}}},
         "chips": ["rv1106"], "provenance": {"mlflow_run_id": None, "git_commit": "abc"}}
    good = json.dumps(m, indent=1).encode()
    out = {"device-copy": good, "truncated": good[:300], "not-json": b"{not json", "array": b"[]",
           "escape": good.replace(b'"model.onnx"', b'"../model.onnx"')}
    exports = sorted((Path(__file__).resolve().parents[3] / "exports").glob("*/*/manifest.json"))
    if exports:
        out["export"] = exports[-1].read_bytes()
    return out
