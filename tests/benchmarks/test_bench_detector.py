"""bench_detector picks the previous release bundle to score beside the current one in the same run."""
from __future__ import annotations

import os

from benchmarks.bench_detector import _previous_bundle


def _bundle(root, name, model: bytes, mtime: float):
    d = root / "detector" / name
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes(model)
    (d / "manifest.json").write_text("{}")
    os.utime(d / "manifest.json", (mtime, mtime))
    return d


def test_previous_bundle_is_the_newest_older_one_with_another_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLAB_EXPORTS", str(tmp_path))
    monkeypatch.delenv("CAMLAB_BENCH_PREVIOUS_DETECTOR", raising=False)
    oldest = _bundle(tmp_path, "a", b"v1", 1000.0)
    older = _bundle(tmp_path, "b", b"v2", 2000.0)
    _bundle(tmp_path, "c", b"v3", 2500.0)            # the same model re-exported: not a previous release
    current = _bundle(tmp_path, "d", b"v3", 3000.0)
    _bundle(tmp_path, "e", b"v4", 4000.0)             # newer than the one benchmarked
    assert _previous_bundle(current) == older
    assert _previous_bundle(oldest) is None
    monkeypatch.setenv("CAMLAB_BENCH_PREVIOUS_DETECTOR", "none")
    assert _previous_bundle(current) is None
    monkeypatch.setenv("CAMLAB_BENCH_PREVIOUS_DETECTOR", str(oldest))
    assert _previous_bundle(current) == oldest


def test_default_bundle_is_the_newest_export_of_the_release_checkpoint(tmp_path, monkeypatch):
    """An ad-hoc export of another checkpoint (a trial) made after the release must not become the benchmarked
    release; without a release checkpoint here the newest bundle is taken, as before."""
    import hashlib
    import json

    from benchmarks import bench_detector
    from camlab.train import detector

    monkeypatch.setenv("CAMLAB_EXPORTS", str(tmp_path))
    monkeypatch.delenv("CAMLAB_DETECTOR_BUNDLE", raising=False)
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"release weights")
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    old = _bundle(tmp_path, "a", b"v1", 1000.0)
    release = _bundle(tmp_path, "b", b"v2", 2000.0)
    trial = _bundle(tmp_path, "c", b"v3", 3000.0)
    for d, s, t in ((old, "0" * 64, 1000.0), (release, sha, 2000.0), (trial, "f" * 64, 3000.0)):
        (d / "manifest.json").write_text(json.dumps({"provenance": {"checkpoint_sha256": s}}))
        os.utime(d / "manifest.json", (t, t))
    monkeypatch.setattr(detector, "release_checkpoint", lambda: ckpt)
    assert bench_detector._newest_bundle() == release
    monkeypatch.setattr(detector, "release_checkpoint", lambda: tmp_path / "missing.pt")
    assert bench_detector._newest_bundle() == trial


def test_loso_runs_train_the_named_recipe_without_the_source_in_their_own_folder():
    from benchmarks.bench_detector import loso_config

    release = loso_config("persons_cctv")
    trial = loso_config("persons_cctv", "detector_loso_presence")
    assert release.quality_target_power == 1.0 and trial.quality_target_power == 0.5
    assert release.data.exclude_sources == trial.data.exclude_sources == ["persons_cctv"]
    assert release.out_dir == "out/detector/loso_persons_cctv"
    assert trial.out_dir == "out/detector/detector_loso_presence_persons_cctv"
    assert release.resume is None and trial.resume is None and not trial.log_mlflow
    assert release.optim.epochs == trial.optim.epochs == 6


def test_loso_only_refuses_a_missing_or_unsafe_result_name():
    """``--loso-only NAME`` writes benchmarks/results/NAME.json: no name, or one that would leave that folder, is a
    one-line usage error before any training."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for args in (["--loso-only"], ["--loso-only", "../elsewhere"]):
        r = subprocess.run([sys.executable, "-m", "benchmarks.bench_detector", *args], cwd=root, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode != 0 and r.stderr.strip().startswith("usage:"), (args, r.stderr[-300:])
