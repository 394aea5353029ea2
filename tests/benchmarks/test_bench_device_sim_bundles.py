"""bench_device_sim times the release bundles: a trial exported after the release must not stand in for it."""
from __future__ import annotations

import json
import os

from benchmarks import bench_device_sim as bds
from camlab.contract.manifest import sha256_file


def _bundle(make, root, version: str, mtime: float, checkpoint=None, chips=("rv1106",)):
    d = make(root / version, chips=chips)
    man = json.loads((d / "manifest.json").read_text())
    man["model"]["version"] = version
    if checkpoint is not None:
        man["provenance"]["checkpoint_sha256"] = sha256_file(checkpoint)
    (d / "manifest.json").write_text(json.dumps(man))
    os.utime(d / "manifest.json", (mtime, mtime))
    return d


def test_trained_bundles_are_the_release_exports_listing_the_chip(tmp_path, monkeypatch):
    from camlab.train import cry, detector

    det_ckpt, cry_ckpt = tmp_path / "det.pt", tmp_path / "cry.pt"
    det_ckpt.write_bytes(b"release detector")
    cry_ckpt.write_bytes(b"release cry")
    monkeypatch.setattr(detector, "release_checkpoint", lambda: det_ckpt)
    monkeypatch.setattr(cry, "release_checkpoint", lambda: cry_ckpt)
    exports = tmp_path / "exports"
    monkeypatch.setenv("CAMLAB_EXPORTS", str(exports))
    release_det = _bundle(bds.probe_detector_bundle, exports / "detector", "20261201T000000Z-aaaaaaa", 1000.0,
                          det_ckpt)
    _bundle(bds.probe_detector_bundle, exports / "detector", "20261202T000000Z-bbbbbbb", 2000.0)  # a later trial
    _bundle(bds.probe_detector_bundle, exports / "detector", "20261203T000000Z-ccccccc", 3000.0, det_ckpt,
            chips=("t40xp",))                                     # the release, exported for another chip
    older_cry = _bundle(bds.probe_cry_bundle, exports / "cry", "20261201T000000Z-ddddddd", 1000.0)
    newer_cry = _bundle(bds.probe_cry_bundle, exports / "cry", "20261202T000000Z-eeeeeee", 2000.0)
    assert older_cry != newer_cry
    assert sorted(bds._trained_bundles("rv1106")) == sorted([release_det, newer_cry])  # no cry release export
    (newer_cry / "model.onnx").write_bytes(b"corrupt")           # fails its sha256: not a usable bundle
    assert sorted(bds._trained_bundles("rv1106")) == sorted([release_det, older_cry])
