"""The bench figures of issue 15 are computed from their inputs (a changed input moves them)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_device_sim as bds
from benchmarks import bench_ota


def test_event_latency_stats_from_events():
    events = [{"capture_time_s": 1.0, "emit_time_s": 1.0 + d / 1000} for d in range(1, 41)]
    st = bds.latency_stats(bds.event_latencies_ms(events))
    assert st["n"] == 40 and st["max"] == pytest.approx(40.0) and st["p50"] == pytest.approx(20.5)
    events[-1]["emit_time_s"] += 1.0
    assert bds.latency_stats(bds.event_latencies_ms(events))["max"] == pytest.approx(1040.0)
    assert bds.latency_stats([])["p95"] is None


def test_bundle_identity_reads_manifest_cost(tmp_path: Path):
    a = bds.probe_detector_bundle(tmp_path / "a", npu_ms=3.5)
    b = bds.probe_detector_bundle(tmp_path / "b", npu_ms=7.0, threshold=0.3)
    ia, ib = bds.bundle_identity([a, b], "rv1106")
    assert ia["npu_latency_ms"] == 3.5 and ib["npu_latency_ms"] == 7.0
    assert ia["model_onnx_sha256"] != ib["model_onnx_sha256"]


def test_ota_delta_between_two_real_bundles(tmp_path: Path, monkeypatch):
    a = bds.probe_detector_bundle(tmp_path / "a")
    b = bds.probe_detector_bundle(tmp_path / "b", threshold=0.3)
    monkeypatch.setenv("CAMLAB_OTA_BUNDLES", f"{a}:{b}")
    r = bench_ota.model_update(tmp_path / "w")
    assert 0 < r["delta_ratio_model_update"] < 0.05
    assert r["model_update_bytes"] < r["full_package_bytes"]
    # the same bundle on both sides: only the version line differs, so the delta shrinks
    monkeypatch.setenv("CAMLAB_OTA_BUNDLES", f"{a}:{a}")
    assert bench_ota.model_update(tmp_path / "w2")["model_update_bytes"] < r["model_update_bytes"]
    assert json.loads((a / "manifest.json").read_text())["model"]["task"] == "detection"


def _clips(root: Path, key, ledger, n: int) -> None:
    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=10, gop=10)
    ring = list(src.packets(0.0, 15.0))
    post = [src.packet(i) for i in range(150, 400)]
    maker = ClipMaker(root, key, segment_s=10, pre_roll_s=10, post_roll_s=20, ledger=ledger)
    for k in range(n):
        maker.make_clip({"event_id": f"e{k}", "pts_s": 14.95}, ring, post, src.info)


def test_iv_audit_counts_reuse_from_the_playlists(tmp_path: Path):
    from benchmarks import bench_storage as bs
    from device_sim.storage.crypto import IvLedger, iv_attr, new_iv, new_user_key

    key = new_user_key()
    _clips(tmp_path / "ok", key, IvLedger(), 2)
    ok = bs.audit_ivs(tmp_path / "ok", key)
    assert ok["segments"] >= 4 and ok["iv_reuse"] == 0 and ok["iv_segment_mismatch"] == 0
    _clips(tmp_path / "stuck", key, bs._StuckLedger(), 2)
    stuck = bs.audit_ivs(tmp_path / "stuck", key)
    assert stuck["iv_reuse"] == stuck["segments"] - 1 > 0
    # a playlist IV that is not the one its segment was encrypted with is caught
    pl = sorted((tmp_path / "ok").glob("*/playlist.m3u8"))[0]
    text = pl.read_text()
    i = text.index("IV=0x") + len("IV=")
    pl.write_text(text[:i] + iv_attr(new_iv()) + text[i + 34:])
    assert bs.audit_ivs(tmp_path / "ok", key)["iv_segment_mismatch"] == 1


def test_relay_fallback_does_not_restate_the_deadline():
    from benchmarks import bench_network as bn
    r = bn.relay_split([1100.0, 1200.0, 1300.0], 1.0)
    assert r["relay_fallback_p95_ms_symmetric"] is None and "deadline" in r["relay_fallback_p95_ms_symmetric_reason"]
    assert r["relay_setup_after_deadline_p95_ms"] == pytest.approx(290.0)
    assert bn.relay_split([1100.0, 1200.0, 1900.0], 1.0)["relay_setup_after_deadline_p95_ms"] > 290.0


def test_cloud_http_audit_counts_and_refuses_every_foreign_attempt(tmp_path: Path):
    """The cross-tenant audit covers the cloud HTTP API: every read of another tenant's clip or timeline entry, every
    write into another tenant's event with a camera's real token, and every request without a valid token is
    counted, judged by the content, and must be refused (issue 16: 0 foreign reads, 0 foreign writes)."""
    from benchmarks import bench_network as bn
    r = bn.cloud_http_audit(tmp_path, 150, n_tenants=4, clips_per_tenant=2)
    assert r["foreign_requests"] > 50 and r["own_requests"] > 0 and r["own_failures"] == 0
    assert r["foreign_reads"] == 0 and r["foreign_refused"] == r["foreign_requests"]
    assert r["foreign_write_attempts"] >= 10 and r["foreign_writes"] == 0
    assert r["foreign_writes_refused"] == r["foreign_write_attempts"]
    assert r["unauthenticated_attempts"] >= 5 and r["unauthenticated_successes"] == 0


def test_isp_noise_profile_is_calibrated_from_captures():
    from benchmarks import bench_isp
    from camlab.sensor.noise import NoiseModel

    cal = bench_isp.calibrated_noise_model(size=128)
    assert cal.shot_1 == pytest.approx(NoiseModel().shot_1, rel=0.15)
    noisier = bench_isp.calibrated_noise_model(size=128, sensor_noise=NoiseModel(shot_1=3.0 / 9000.0))
    assert noisier.shot_1 == pytest.approx(3.0 / 9000.0, rel=0.15)
