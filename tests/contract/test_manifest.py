"""The bundle contract: schema validation, sha256 verification and the errors a broken bundle raises."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from camlab.contract import manifest as mf
from camlab.errors import InputFileError


def _detector_manifest(files: dict) -> dict:
    return {
        "schema_version": 1,
        "model": {"name": "detector", "task": "detection", "version": "20261122T010000Z-abc1234",
                  "created": "2026-11-22T01:00:00Z"},
        "files": files,
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
        "chips": ["rv1106"],
        "provenance": {"mlflow_run_id": None, "git_commit": "abc"},
    }


@pytest.fixture()
def bundle(tmp_path):
    root = tmp_path / "b"
    (root / "calibration").mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"int8-model")
    (root / "model_fp32.onnx").write_bytes(b"fp32-model-bytes")
    np.savez(root / "calibration" / "sample.npz", inputs=np.zeros((1, 3, 32, 64), np.float32))
    files = {rel: mf.file_entry(root / rel) for rel in ("model.onnx", "model_fp32.onnx", "calibration/sample.npz")}
    man = _detector_manifest(files)
    (root / "manifest.json").write_text(json.dumps(man))
    return root, man


def _write(root, man):
    (root / "manifest.json").write_text(json.dumps(man))


def test_valid_bundle_loads_with_values(bundle):
    root, man = bundle
    b = mf.load_bundle(root)
    assert b.task == "detection" and b.name == "detector"
    assert b.model_path("int8").read_bytes() == b"int8-model"
    assert b.model_path("fp32").name == "model_fp32.onnx"
    x = np.full((1, 3, 2, 2), 255.0, np.float32)
    assert np.allclose(b.normalize(x), 1.0)
    assert man["files"]["model.onnx"]["bytes"] == 10


def test_sha256_mismatch_names_the_file(bundle):
    root, _ = bundle
    (root / "model.onnx").write_bytes(b"INT8-model")  # same size, other bytes
    with pytest.raises(InputFileError, match=r"model\.onnx: sha256 mismatch"):
        mf.load_bundle(root)
    mf.load_bundle(root, verify=False)  # schema alone still passes


def test_missing_and_unlisted_files(bundle):
    root, _ = bundle
    (root / "extra.bin").write_bytes(b"x")
    with pytest.raises(InputFileError, match="extra.bin: file in the bundle is not listed"):
        mf.load_bundle(root)
    (root / "extra.bin").unlink()
    (root / "model_fp32.onnx").unlink()
    with pytest.raises(InputFileError, match="model_fp32.onnx: listed in manifest 'files' but missing"):
        mf.load_bundle(root)


@pytest.mark.parametrize("mutate, field", [
    (lambda m: m["inputs"][0].pop("mean"), "inputs[0]"),
    (lambda m: m["inputs"][0].__setitem__("layout", "NHWC"), "inputs[0].layout"),
    (lambda m: m["quantization"]["weights"].__setitem__("axis", 1), "quantization.weights.axis"),
    (lambda m: m["quantization"].__setitem__("outputs_quantized", False), "quantization.outputs_quantized"),
    (lambda m: m["decode"].pop("nms_iou"), "decode"),
    (lambda m: m["decode"].__setitem__("score_thresholds", [0.3]), "decode.score_thresholds"),
    (lambda m: m["files"]["model.onnx"].__setitem__("sha256", "xyz"), "files.model.onnx.sha256"),
    (lambda m: m.__setitem__("surprise", 1), "<root>"),
    (lambda m: m["model"].__setitem__("task", "cry"), "<root>"),  # cry needs a features block
])
def test_schema_violation_names_the_field(bundle, mutate, field):
    root, man = bundle
    bad = copy.deepcopy(man)
    mutate(bad)
    _write(root, bad)
    with pytest.raises(InputFileError) as info:
        mf.load_bundle(root)
    assert "manifest fails schema v1" in str(info.value)
    assert f"field '{field}'" in str(info.value)


def test_wrong_schema_version_and_bad_json(bundle):
    root, man = bundle
    _write(root, {**man, "schema_version": 2})
    with pytest.raises(InputFileError, match="understands schema_version 1"):
        mf.load_bundle(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(InputFileError, match=r"not valid JSON \(line 1"):
        mf.load_bundle(root)
    with pytest.raises(InputFileError, match="bundle folder not found"):
        mf.load_bundle(root / "nope")


def test_cry_manifest_requires_cry_decode(bundle):
    root, man = bundle
    cry = copy.deepcopy(man)
    cry["model"].update(name="cry", task="cry")
    cry["inputs"][0].update(color_format="logmel", shape=[1, 1, 64, 96], mean=0.0, std=1.0, value_range=[-100, 50],
                            resize={"method": "none"})
    cry["decode"] = {"classes": ["other", "cry"], "threshold": 0.5, "window_s": 0.96, "hop_s": 0.48,
                     "alarm": {"k": 3, "n": 5}}
    cry["features"] = {"sample_rate": 16000, "n_mels": 64}
    _write(root, cry)
    assert mf.load_bundle(root).features["n_mels"] == 64
    cry["decode"].pop("hop_s")
    _write(root, cry)
    with pytest.raises(InputFileError, match="field 'decode'"):
        mf.load_bundle(root)


def test_device_copy_needs_the_int8_model_that_model_files_names(tmp_path):
    """A camera-side copy holds model.onnx + manifest; model_files must name a listed file, which must be there."""
    model = b"int8"
    import hashlib

    files = {"model.onnx": {"bytes": len(model), "sha256": hashlib.sha256(model).hexdigest(), "role": "model_int8"},
             "model_fp32.onnx": {"bytes": 3, "sha256": "0" * 64, "role": "model_fp32"}}
    m = _detector_manifest(files)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputFileError, match="model.onnx: listed in manifest 'files' but missing"):
        mf.load_bundle(tmp_path, device=True)
    (tmp_path / "model.onnx").write_bytes(model)
    assert mf.load_bundle(tmp_path, device=True).name == "detector"   # the FP32 reference may stay on the host
    m["model_files"]["int8"] = "other.onnx"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputFileError, match="field 'model_files.int8': 'other.onnx' is not listed in 'files'"):
        mf.load_bundle(tmp_path, device=True)
