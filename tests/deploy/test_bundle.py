"""Bundle writer end to end on a tiny detector: manifest, FP32-vs-INT8 metrics, MLflow registry, validate CLI,
tamper detection and the data-partition image."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from deploy_nets import images, tiny_detector, tiny_io

from camlab import cli
from camlab.contract.manifest import load_bundle
from camlab.deploy.bundle import BundleRequest, build_bundle
from camlab.deploy.partition import pack_partition, read_partition, unpack_partition
from camlab.deploy.quantize import session
from camlab.errors import CamlabError, InputFileError


def _evaluator(x_eval, labels):
    """F1 of 'any class logit > 0 in the cell' vs reference labels, over all stride-4 cells (a real metric)."""
    def run(bundle_dir, variant):
        b = load_bundle(bundle_dir)
        s = session(b.model_path(variant))
        pred = np.concatenate([s.run(["cls_s4"], {"images": x[None]})[0].max(axis=1).ravel() > 0 for x in x_eval])
        tp = float(np.sum(pred & labels))
        f1 = 2 * tp / max(1.0, float(pred.sum() + labels.sum()))
        return {"metric": "F1", "value": 100 * f1, "split": {"name": "synthetic", "count": len(x_eval)},
                "counts": {"cells": int(labels.size)}}
    return run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import torch

    net = tiny_detector()
    x_eval = images(6, seed=3)
    with torch.no_grad():
        ref = net(torch.from_numpy(x_eval))[1].numpy()  # FP32 torch reference labels
    labels = np.concatenate([r.max(axis=0).ravel() > 0 for r in ref])
    out = tmp_path_factory.mktemp("exports")
    req = BundleRequest(model=net, io=tiny_io(), name="detector", task="detection", calibration=images(16),
                        holdout=images(4, seed=9), calibration_source="synthetic smooth scenes (test)",
                        out_root=out, evaluator=_evaluator(x_eval, labels), oracle=False, register=True,
                        version="t1")
    return build_bundle(req)


def test_bundle_layout_and_manifest(bundle):
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()) == \
        ["calibration/sample.npz", "manifest.json", "model.onnx", "model_fp32.onnx"]
    b = load_bundle(bundle)
    m = b.manifest
    assert m["model"]["version"] == "t1" and b.task == "detection"
    assert m["quantization"]["weights"] == {"dtype": "int8", "granularity": "per_channel", "symmetric": True,
                                            "axis": 0}
    assert m["quantization"]["calibration"]["count"] == 16
    assert np.load(bundle / "calibration" / "sample.npz")["inputs"].shape == (8, 3, 64, 96)
    met = m["metrics"]
    assert met["split"] == {"name": "synthetic", "count": 6}
    assert met["fp32"]["F1"] == pytest.approx(100.0, abs=1e-3)  # the FP32 ONNX reproduces torch's labels
    assert met["int8_metric_drop"] == pytest.approx(met["fp32"]["F1"] - met["int8"]["F1"], abs=1e-3)
    assert 0 <= met["int8_metric_drop"] < 10
    assert min(met["output_cosine"].values()) > 0.99
    assert m["validation"]["rv1106"]["violations"] == 0 and m["validation"]["ssc377"]["violations"] == 0
    assert set(m["cost"]["per_chip"]) == {"rv1106", "ssc337de", "ssc377", "t40xp"}
    assert m["chips"] == ["rv1106", "ssc337de", "ssc377"]  # t40xp has violations: not a shipping target
    assert m["validation"]["t40xp"]["rules"] == ["channel_multiple"]
    assert m["cost"]["flash_bytes"] == m["files"]["model.onnx"]["bytes"]
    assert m["cost"]["rknn"] is None


def test_bundle_registered_in_mlflow(bundle):
    from mlflow.tracking import MlflowClient

    from camlab import tracking

    prov = load_bundle(bundle).manifest["provenance"]
    tracking.configure()
    client = MlflowClient()
    run = client.get_run(prov["mlflow_run_id"])
    assert run.data.metrics["violations_rv1106"] == 0
    assert run.data.metrics["int8_metric_drop"] == load_bundle(bundle).manifest["metrics"]["int8_metric_drop"]
    name, version = prov["mlflow_model"].split("/")
    mv = client.get_model_version(name, version)
    assert mv.run_id == prov["mlflow_run_id"]
    # an ad-hoc export is tagged dev and takes no alias: it is never mistaken for a release or demo bundle
    assert mv.tags["stage"] == "dev" and run.data.tags["stage"] == "dev" and not mv.aliases


def test_demo_bundle_tagged_and_aliased_apart_from_release(bundle, tmp_path):
    from mlflow.tracking import MlflowClient

    from camlab import tracking
    from camlab.deploy.bundle import STAGES

    req = dict(model=tiny_detector(), io=tiny_io(), name="detector", task="detection", calibration=images(16),
               holdout=images(4, seed=9), calibration_source="synthetic smooth scenes (test)", out_root=tmp_path,
               oracle=False, register=True)
    with pytest.raises(CamlabError, match="stage must be one of"):
        build_bundle(BundleRequest(**req, stage="prod", version="bad"))
    assert set(STAGES) == {"release", "demo", "dev"}
    demo = build_bundle(BundleRequest(**req, stage="demo", version="demo1"))
    tracking.configure()
    client = MlflowClient()
    name, version = load_bundle(demo).manifest["provenance"]["mlflow_model"].split("/")
    mv = client.get_model_version(name, version)
    assert mv.tags["stage"] == "demo" and "demo" in mv.aliases
    assert str(client.get_model_version_by_alias(name, "demo").version) == version
    with pytest.raises(Exception):  # no release bundle was registered in this store
        client.get_model_version_by_alias(name, "release")


def test_validate_cli_exit_codes(bundle, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert cli.main(["validate", str(bundle), "--chip", "rv1106", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["passed"] is True and rep["violation_count"] == 0 and rep["chip"] == "rv1106"
    assert cli.main(["validate", str(bundle), "--chip", "t40xp", "--json", str(out)]) == 1
    rep = json.loads(out.read_text())
    assert rep["counts"] == {"channel_multiple": rep["violation_count"]} and rep["violation_count"] > 0
    assert cli.main(["validate", str(bundle), "--chip", "mystery"]) == 2
    assert "unknown chip 'mystery'" in capsys.readouterr().err


def test_tampered_bundle_is_rejected(bundle, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    assert cli.main(["validate", str(bad), "--chip", "rv1106"]) == 2
    assert "model.onnx: sha256 mismatch" in capsys.readouterr().err
    man = json.loads((bad / "manifest.json").read_text())
    man["inputs"][0]["layout"] = "NHWC"
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InputFileError, match=r"field 'inputs\[0\].layout'"):
        load_bundle(bad, verify=False)


def test_partition_image_roundtrip_and_budget(bundle, tmp_path):
    img = tmp_path / "data.img"
    info = pack_partition([bundle], "rv1106", img)
    assert img.stat().st_size == info["partition_bytes"]
    files = read_partition(img)
    # the camera carries the INT8 model and the manifest; the FP32 reference and calibration set stay on the host
    assert sorted(files) == ["detector/t1/manifest.json", "detector/t1/model.onnx"]
    assert info["entries"] == 2 and info["used_bytes"] % 4096 == 0
    model, man = (bundle / "model.onnx").stat().st_size, (bundle / "manifest.json").stat().st_size
    assert info["used_bytes"] == 4096 + -(-model // 4096) * 4096 + -(-man // 4096) * 4096
    assert files["detector/t1/model.onnx"] == (bundle / "model.onnx").read_bytes()
    dirs = unpack_partition(img, tmp_path / "flash")
    assert load_bundle(dirs[0], device=True).manifest == load_bundle(bundle).manifest
    with pytest.raises(InputFileError, match="model_fp32.onnx: listed in manifest 'files' but missing"):
        load_bundle(dirs[0])  # a host-side load still wants the whole bundle
    raw = bytearray(img.read_bytes())
    from camlab.deploy.partition import HEADER

    off = json.loads(raw[HEADER.size:HEADER.size + int.from_bytes(raw[16:20], "little")])[0]["offset"]
    raw[off] ^= 1
    img.write_bytes(bytes(raw))
    with pytest.raises(InputFileError, match="fails its sha256"):
        read_partition(img)
    import dataclasses

    from camlab.deploy.chips import load_chip

    tiny = dataclasses.replace(load_chip("rv1106"), flash_partition_bytes=8192)
    with pytest.raises(CamlabError, match="flash data partition holds 8192 B"):
        pack_partition([bundle], tiny, tmp_path / "x.img")


def test_target_chip_with_violations_writes_no_bundle(tmp_path):
    req = BundleRequest(model=tiny_detector(), io=tiny_io(), name="detector", task="detection",
                        calibration=images(6), calibration_source="x", out_root=tmp_path, target_chip="t40xp",
                        oracle=False, register=False)
    with pytest.raises(CamlabError, match=r"(?s)breaks t40xp's rules, no bundle written:\n.*\[channel_multiple\]"):
        build_bundle(req)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_existing_version_and_bad_calibration_refused(bundle, tmp_path):
    req = BundleRequest(model=tiny_detector(), io=tiny_io(), name="detector", task="detection",
                        calibration=images(4)[:, :, :32], calibration_source="x", out_root=tmp_path,
                        oracle=False, register=False)
    with pytest.raises(CamlabError, match="calibration inputs have shape"):
        build_bundle(req)
    req = BundleRequest(model=tiny_detector(), io=tiny_io(), name="detector", task="detection",
                        calibration=images(4), calibration_source="x", out_root=bundle.parent.parent,
                        oracle=False, register=False, version="t1")
    with pytest.raises(CamlabError, match="already exists"):
        build_bundle(req)
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_flash_figures_count_only_what_the_camera_stores(bundle):
    """device_sim's flash figure and the OTA model package hold the INT8 model + manifest, as the partition does."""
    import io
    import tarfile

    from device_sim.budgets.report import flash_use
    from device_sim.ota.package import bundle_tar

    on_device = (bundle / "model.onnx").stat().st_size + (bundle / "manifest.json").stat().st_size
    whole = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert whole > on_device  # the fixture carries the FP32 reference and calibration set
    assert flash_use([bundle], {"flash_partition_bytes": 8 << 20})["used_bytes"] == on_device
    with tarfile.open(fileobj=io.BytesIO(bundle_tar(bundle))) as tar:
        assert sorted(tar.getnames()) == ["manifest.json", "model.onnx"]


def test_validate_bundle_flash_is_what_the_camera_stores(bundle):
    """The flash budget of `camlab validate` counts the INT8 model + manifest, not the host-only FP32 reference and
    calibration set (the release detector read 11.0 MB > 8 MiB there while the partition held 2.35 MB)."""
    from camlab.deploy.validate import validate_bundle

    on_device = (bundle / "model.onnx").stat().st_size + (bundle / "manifest.json").stat().st_size
    assert validate_bundle(bundle, "rv1106").cost["flash_bytes"] == on_device


def _fake_bundle(root, name: str, created: str, mtime: float, onnx: bytes = b"x"):
    import json
    import os

    d = root / name
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(onnx)
    (d / "manifest.json").write_text(json.dumps({"model": {"name": "detector", "version": name, "created": created}}))
    os.utime(d / "manifest.json", (mtime, mtime))
    return d


def test_newest_bundle_is_the_last_created_not_the_last_touched(tmp_path):
    """A clone, copy or rsync gives bundles new mtimes in any order: the manifest's creation time decides."""
    from camlab.deploy.bundle import newest_bundle_of

    old = _fake_bundle(tmp_path, "20261201T000000Z-aaaaaaa", "2026-12-01T00:00:00Z", mtime=2_000_000_000)
    new = _fake_bundle(tmp_path, "20261205T000000Z-bbbbbbb", "2026-12-05T00:00:00Z", mtime=1_000_000_000)
    assert newest_bundle_of(tmp_path) == new
    assert newest_bundle_of(tmp_path, accept=lambda b: b != new) == old


def test_previous_detector_release_is_the_one_created_before(tmp_path, monkeypatch):
    from benchmarks import bench_detector
    from camlab import settings

    monkeypatch.delenv("CAMLAB_BENCH_PREVIOUS_DETECTOR", raising=False)
    monkeypatch.setattr(settings, "exports_root", lambda: tmp_path)
    root = tmp_path / "detector"
    first = _fake_bundle(root, "a", "2026-12-01T00:00:00Z", mtime=3_000_000_000, onnx=b"1")
    second = _fake_bundle(root, "b", "2026-12-03T00:00:00Z", mtime=2_000_000_000, onnx=b"2")
    current = _fake_bundle(root, "c", "2026-12-05T00:00:00Z", mtime=1_000_000_000, onnx=b"3")
    _fake_bundle(root, "d", "2026-12-06T00:00:00Z", mtime=500_000_000, onnx=b"4")        # made after: not previous
    _fake_bundle(root, "e", "2026-12-04T00:00:00Z", mtime=500_000_000, onnx=b"3")        # the same model: skipped
    assert bench_detector._previous_bundle(current) == second
    assert bench_detector._previous_bundle(second) == first
    assert bench_detector._previous_bundle(first) is None
