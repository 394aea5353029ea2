"""Unit tests of device_sim parts: clock, NPU queue, ring buffer, events, accuracy, zones, motion, scenarios."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.errors import CamlabError, InputFileError
from device_sim.budgets.report import event_accuracy, percentiles
from device_sim.clock import RealClock, SimClock, make_clock
from device_sim.hal.npu import NpuModel, npu_latency_s
from device_sim.media.packets import EncodedPacket
from device_sim.media.ringbuffer import RingBuffer
from device_sim.scenario import GroundTruthEvent, ground_truth, load_scenario, validate
from device_sim.spec.events import EventDebouncer, detection_event, make_event


def test_sim_clock_moves_only_when_told():
    c = SimClock()
    assert c.now() == 0.0
    c.sleep_until(0.05)
    c.advance(0.05)
    assert c.now() == pytest.approx(0.1)
    c.sleep_until(0.01)  # never backwards
    assert c.now() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        c.advance(-1)
    assert isinstance(make_clock("real"), RealClock) and make_clock("sim").simulated
    with pytest.raises(ValueError):
        make_clock("wall")


def test_npu_queue_waits_drops_and_utilisation():
    npu = NpuModel("rv1106", max_queue=1)
    a = npu.submit("det", 0.0, 0.030)
    b = npu.submit("det", 0.010, 0.030)     # waits for a
    c = npu.submit("det", 0.015, 0.030)     # one already waiting -> dropped
    d = npu.submit("det", 0.100, 0.030)     # idle again
    assert (a.start_s, a.end_s) == (0.0, 0.030)
    assert b.start_s == pytest.approx(0.030) and b.end_s == pytest.approx(0.060)
    assert c is None and npu.dropped == {"det": 1}
    assert d.start_s == pytest.approx(0.100)
    assert npu.utilisation(1.0) == pytest.approx(0.09)
    s = npu.summary(1.0)
    assert s["queue_wait_ms_max"] == pytest.approx(20.0) and s["jobs"] == 3


def test_npu_latency_comes_from_manifest_per_chip():
    man = {"cost": {"per_chip": {"rv1106": {"npu_latency_ms": 12.5, "basis": "x"}}}}
    assert npu_latency_s(man, "rv1106") == pytest.approx(0.0125)
    with pytest.raises(InputFileError, match="no entry for chip 't40xp'"):
        npu_latency_s(man, "t40xp")


def _pkt(stream, t, key=False, n=100):
    return EncodedPacket(stream, t, b"x" * n, keyframe=key)


def test_ring_buffer_keeps_window_from_a_keyframe():
    rb = RingBuffer(10.0)
    for i in range(400):                    # 20 s of 20 fps, keyframe every 2 s
        t = i / 20
        rb.push(_pkt("main", t, key=(i % 40 == 0)))
        if i % 4 == 0:
            rb.push(_pkt("audio", t + 0.001, key=True, n=10))
    items = rb.since(0.0)
    assert items[0].stream == "main" and items[0].keyframe
    assert 10.0 <= rb.span_s() <= 12.0     # >= 10 s kept, at most one GOP more
    clip = rb.since(15.3)
    assert clip[0].keyframe and clip[0].pts_s == pytest.approx(14.0)
    assert rb.bytes == sum(len(p.data) for _, p in rb._q) and rb.peak_bytes >= rb.bytes
    with pytest.raises(ValueError):
        RingBuffer(5.0)


def test_ring_buffer_capacity_drops_whole_gops():
    rb = RingBuffer(30.0, capacity_bytes=50_000)
    rb.push(_pkt("audio", 0.0, n=10))                       # before any keyframe: not decodable, not kept
    for i in range(200):                                     # 10 s, 1 kB per frame, keyframe every 40 frames
        rb.push(_pkt("main", i / 20, key=(i % 40 == 0), n=1000))
    assert rb.bytes <= 50_000 and rb.evicted_for_capacity > 0
    first = rb.since(-1.0)[0]
    assert first.keyframe and first.pts_s == pytest.approx(8.0)      # whole GOPs went, the newest one stays
    assert len(rb) == 40 and rb.span_s() == pytest.approx(1.95)


def test_debouncer_k_of_n_and_rearm():
    d = EventDebouncer(k=2, n=3, rearm_s=1.0)
    seq = [(0.0, True), (0.1, False), (0.2, True), (0.3, True), (0.4, True), (2.0, False), (2.1, True), (2.2, True)]
    fired = [t for t, s in seq if d.update("person", s, t)]
    assert fired == [0.2, 2.2]


def test_event_json_shape():
    e = detection_event("person", 0.9213, "front_door", [0.1, 0.2, 0.3, 0.4], 1.25, 1.31)
    assert e["siid"] == 4 and e["eiid"] == 1 and e["service"] == "ai-detection"
    assert e["event"] == "person" and e["confidence"] == 0.9213 and e["zone"] == "front_door"
    assert e["capture_time_s"] == 1.25 and e["emit_time_s"] == 1.31
    assert make_event("ai-detection", "cry", 1, 2, confidence=0.7)["eiid"] == 4
    with pytest.raises(KeyError):
        make_event("ai-detection", "dragon", 0, 0)


def test_event_accuracy_counts():
    gt = [GroundTruthEvent("person", 1.0, 4.0, "a"), GroundTruthEvent("person", 10.0, 12.0, "b"),
          GroundTruthEvent("pet", 5.0, 6.0, "c")]
    ev = [{"event": "person", "capture_time_s": 1.5}, {"event": "person", "capture_time_s": 2.0},
          {"event": "person", "capture_time_s": 20.0}, {"event": "pet", "capture_time_s": 5.2}]
    acc = event_accuracy(ev, gt, duration_s=3600.0)
    p = acc["per_class"]["person"]
    assert (p["true_positive"], p["false_positive"], p["duplicates"]) == (1, 1, 1)
    assert p["precision"] == 0.5 and p["recall"] == 0.5 and p["time_to_detect_s_mean"] == 0.5
    assert acc["per_class"]["pet"]["recall"] == 1.0
    assert acc["false_events_per_hour"] == 1.0
    assert percentiles([1, 2, 3, 4])["p50"] == 2.5 and percentiles([])["n"] == 0


def test_privacy_mask_and_zone_lookup():
    from device_sim.ai.zones import apply_nv12_mask, nv12_mask, zone_of
    from device_sim.scenario import Zone
    nv12 = np.full((12, 8), 200, np.uint8)
    m = nv12_mask([[(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)]], 8, 8)
    apply_nv12_mask(nv12, m)
    assert (nv12[:4, :4] == 16).all() and (nv12[4:8, :] == 200).all() and (nv12[:8, 4:] == 200).all()
    assert (nv12[8:10, :4] == 128).all() and (nv12[8:10, 4:] == 200).all()
    zones = [Zone("door", [(0, 0), (0.5, 0), (0.5, 1), (0, 1)])]
    assert zone_of((0.1, 0.1, 0.3, 0.9), zones) == "door"
    assert zone_of((0.6, 0.1, 0.9, 0.9), zones) == ""
    assert zone_of((0.6, 0.1, 0.9, 0.9), []) == "full_frame"


def test_motion_detector_fires_on_change_only():
    from device_sim.ai.motion import MotionConfig, MotionDetector
    md = MotionDetector(MotionConfig(grid=(16, 9), hold_s=1.0))
    rng = np.random.default_rng(0)
    base = rng.integers(60, 70, (144, 160), dtype=np.uint8)
    still = [md.update(base, 96, t * 0.1) for t in range(5)]
    moved = base.copy()
    moved[20:60, 40:80] = 230
    assert not any(still)
    assert md.update(moved, 96, 0.5) and md.gate_open(1.2) and not md.gate_open(1.6)


def test_scenario_validation_names_field_and_file(tmp_path):
    sc = load_scenario({"name": "x", "duration_s": 2, "backgrounds": [{"image": "nope.jpg"}]})
    with pytest.raises(InputFileError, match=r"backgrounds\[0\]\.image: file not found: .*nope\.jpg"):
        validate(sc, tmp_path, "x.yaml")
    with pytest.raises(CamlabError, match="unknown key 'actor'"):
        load_scenario({"name": "x", "duration_s": 2, "backgrounds": [{"image": "a"}], "actor": []})
    with pytest.raises(CamlabError, match="label"):
        load_scenario({"name": "x", "duration_s": 2, "backgrounds": [{"image": "a"}],
                       "actors": [{"folder": "f", "image": "i", "label": "dragon", "path": [[0, 0, 0, 1]]}]})


def test_ground_truth_intervals_respect_frame_and_privacy():
    sc = load_scenario({"name": "x", "duration_s": 10, "backgrounds": [{"image": "a"}],
                        "actors": [{"folder": "f", "image": "i", "label": "person",
                                    "path": [[0, -0.5, 0.5, 0.4], [10, 1.5, 0.5, 0.4]]}],
                        "zones": [{"name": "p", "kind": "privacy", "polygon": [[0.4, 0], [0.6, 0], [0.6, 1],
                                                                              [0.4, 1]]}]})
    gt = ground_truth(sc, fps=10, aspect=16 / 9, sprite_aspects=[0.5], cry_durations={})
    # centre x = -0.5 + 0.2 t: half in frame from t = 2.5 to 7.5, more than half hidden by the zone from 4.5 to 5.5
    assert len(gt) == 2 and all(g.label == "person" for g in gt)
    assert gt[0].start_s == pytest.approx(2.5, abs=0.15) and gt[0].end_s == pytest.approx(4.4, abs=0.15)
    assert gt[1].start_s == pytest.approx(5.6, abs=0.15) and gt[1].end_s == pytest.approx(7.5, abs=0.15)


def test_cry_front_end_windows_and_probabilities():
    from camlab.contract.audio_features import FeatureConfig
    from device_sim.ai.cry import CryFrontEnd
    decode = {"classes": ["other", "cry"], "threshold": 0.5, "window_s": FeatureConfig().window_s,
              "hop_s": FeatureConfig().hop_s, "alarm": {"k": 2, "n": 3}}
    fe = CryFrontEnd(FeatureConfig().to_manifest(), decode, "b")
    got = [end for blk in np.zeros((25, 1600), np.float32) for x, end in fe.push(blk)]   # 2.5 s in 100 ms blocks
    cfg = FeatureConfig()
    assert got == [cfg.window_samples + k * cfg.hop_samples for k in range(4)
                   if cfg.window_samples + k * cfg.hop_samples <= 40000]
    assert len(got) >= 3
    x, _ = next(iter(CryFrontEnd(FeatureConfig().to_manifest(), decode, "b").push(np.zeros(20000, np.float32))))
    assert x.shape == FeatureConfig().input_shape
    assert fe.probability(np.array([[0.0, np.log(3.0)]])) == pytest.approx(0.75)
    single = CryFrontEnd(FeatureConfig().to_manifest(), {**decode, "classes": ["cry"]}, "b")
    assert single.probability(np.array([[0.0]])) == pytest.approx(0.5)
    with pytest.raises(InputFileError, match="features"):
        CryFrontEnd({**FeatureConfig().to_manifest(), "n_frames": 3}, decode, "b")


def test_ai_input_csc_matches_the_isp_float_path():
    """The camera's one-pass 8-bit NV12 -> RGB (RGA-like) equals the ISP's float BT.709 inverse within 1 code."""
    from camlab.isp.stages.csc import nv12_to_rgb, rgb_to_nv12
    from device_sim.ai.preprocess import nv12_to_rgb_u8
    rng = np.random.default_rng(3)
    rgb = rng.random((36, 64, 3), dtype=np.float32)
    rgb[:4] = 0.0          # black and white rows exercise the saturation at both ends
    rgb[4:8] = 1.0
    nv12 = rgb_to_nv12(rgb)
    ref = np.clip(nv12_to_rgb(nv12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out = nv12_to_rgb_u8(nv12)
    assert out.shape == (36, 64, 3) and out.dtype == np.uint8
    d = np.abs(out.astype(int) - ref)
    assert d.max() <= 1 and (d > 0).mean() < 0.1
    assert (out[:4] <= 1).all() and (out[4:8] >= 254).all()
    with pytest.raises(ValueError, match="NV12"):
        nv12_to_rgb_u8(nv12[:-1])


def test_shipped_demo_scenario_finds_its_data_wherever_it_runs(tmp_path, monkeypatch):
    """demo_garden.yaml names its data root relative to itself: no --data-root, an unrelated CAMLAB_DATA and another
    working directory still resolve to the embedded slice."""
    from pathlib import Path

    from device_sim import scenario as scn

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("CAMLAB_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sc = scn.load_scenario(repo / "datasets" / "scenarios" / "demo_garden.yaml")
    root = scn.resolve_root(sc)
    assert root == (repo / "datasets" / "demo").resolve()
    scn.validate(sc, root, "demo_garden.yaml")
