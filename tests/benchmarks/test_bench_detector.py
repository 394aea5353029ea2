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
