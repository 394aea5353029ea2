"""End to end: a synthetic scenario through the whole simulated camera, scored against its ground truth.

The scenario is built in tmp_path: a textured grey room, a bright actor (a YOLO folder with one labelled box)
walking through, a loud tone burst as the 'cry', and a talk-back burst through the speaker before it. The probe
bundles (benchmarks/bench_device_sim.py) are valid INT8 QDQ bundles whose detector fires on bright cells and whose
cry model fires on loudness, so the expected events follow from the scenario: one person event while the actor is
visible, one cry event during the burst, none from the talk-back (the AEC removes it before the cry model).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from benchmarks.bench_device_sim import probe_cry_bundle, probe_detector_bundle
from camlab.errors import CamlabError, InputFileError
from device_sim.camera import CameraSettings, run_scenario

SMALL = CameraSettings(main_size=(320, 180), sub_size=(160, 90), ai_fps=10.0, ring_seconds=10.0)


def _cry_level(tone_db: float, noise_db: float) -> float:
    """Decision level of the probe cry model halfway between noise-only and tone windows (peak normalised log-mel)."""
    from camlab.contract.audio_features import FeatureConfig, FeatureExtractor
    from device_sim.hal.mic import at_level
    cfg = FeatureConfig()
    fx = FeatureExtractor(cfg)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(cfg.window_samples) * 10 ** (noise_db / 20)
    tone = at_level(_tone(cfg.window_samples / 16000), tone_db)
    return float((fx.model_input(noise).max() + fx.model_input(noise + tone).max()) / 2)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 450 + 50 * np.sin(2 * np.pi * 3 * t)
    ph = 2 * np.pi * np.cumsum(f0) / 16000
    return sum(np.sin(k * ph) / k for k in (1, 2, 3, 4)).astype(np.float64)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(1)
    bg = rng.integers(40, 90, (180, 320, 3), dtype=np.uint8)
    Image.fromarray(bg).save(root / "room.png")
    (root / "actors" / "images").mkdir(parents=True)
    (root / "actors" / "labels").mkdir()
    actor = np.full((200, 100, 3), 250, np.uint8)
    Image.fromarray(actor).save(root / "actors" / "images" / "walker.png")
    (root / "actors" / "labels" / "walker.txt").write_text("0 0.5 0.5 0.8 0.9\n")
    sf.write(root / "cry.wav", (0.5 * _tone(1.2)).astype(np.float32), 16000)
    talk = rng.standard_normal(int(1.8 * 16000)) * np.repeat(rng.uniform(0.2, 1, 18), 1600)
    sf.write(root / "talk.wav", (0.3 * talk).astype(np.float32), 16000)
    bundles = [probe_detector_bundle(root / "det", npu_ms=15.0),
               probe_cry_bundle(root / "cry", level=_cry_level(-18, -50))]
    scenario = {
        "name": "synthetic_walk", "duration_s": 6.0, "seed": 0,
        "backgrounds": [{"image": "room.png"}],
        "actors": [{"folder": "actors", "image": "walker.png", "label": "person",
                    "path": [[2.0, 0.25, 0.5, 0.6], [4.5, 0.75, 0.5, 0.6]]}],
        "lighting": [[0, 200], [6, 200]],
        "audio": {"background_db": -50,
                  "cries": [{"file": "cry.wav", "start_s": 4.2, "level_db": -18}],
                  "talkback": [{"file": "talk.wav", "start_s": 0.6, "level_db": -12}]},
        "zones": [{"name": "hall", "kind": "detect", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
                  {"name": "window", "kind": "privacy", "polygon": [[0.0, 0.0], [0.15, 0.0], [0.15, 0.2],
                                                                   [0.0, 0.2]]}],
    }
    return root, bundles, scenario


@pytest.fixture(scope="module")
def report(world, tmp_path_factory):
    root, bundles, scenario = world
    out = tmp_path_factory.mktemp("out")
    rep = run_scenario(bundles, scenario, "rv1106", out, settings=SMALL, data_root=root, record_sd=out / "sd",
                       sd_capacity_bytes=64 << 20, clips_dir=out / "clips")
    return rep, out


@pytest.mark.slow
def test_events_match_ground_truth(report):
    rep, _ = report
    gt = {g["label"]: g for g in rep["ground_truth"]}
    assert set(gt) == {"person", "cry"}
    assert gt["person"]["start_s"] == pytest.approx(2.0, abs=0.06)
    ai = [e for e in rep["events"] if e["service"] == "ai-detection"]
    person = [e for e in ai if e["event"] == "person"]
    cry = [e for e in ai if e["event"] == "cry"]
    assert len(person) == 1 and gt["person"]["start_s"] <= person[0]["capture_time_s"] <= gt["person"]["end_s"]
    assert person[0]["zone"] == "hall" and person[0]["siid"] == 4 and person[0]["confidence"] > 0.5
    x0, y0, x1, y1 = person[0]["box"]
    assert 0.15 < (x0 + x1) / 2 < 0.85 and y0 < 0.5 < y1
    # the talk-back (0.6-2.4 s, louder than the cry) is cancelled: the only cry event is the real one
    assert len(cry) == 1 and 4.2 <= cry[0]["capture_time_s"] <= 5.6, cry
    acc = rep["accuracy"]["per_class"]
    assert acc["person"]["recall"] == 1.0 and acc["person"]["precision"] == 1.0
    assert acc["cry"]["recall"] == 1.0 and rep["accuracy"]["false_events"] == 0
    assert 0 < acc["person"]["time_to_detect_s_mean"] < 1.0
    for e in ai:
        assert e["emit_time_s"] > e["capture_time_s"]


@pytest.mark.slow
def test_budget_report_keys_and_values(report):
    rep, out = report
    for k in ("real_time_factor", "event_latency_p95_ms", "ai_fps", "main_stream_fps", "main_stream_height",
              "sub_stream_fps", "cpu_budget"):
        assert rep[k] is not None, k
    assert rep["main_stream_fps"] == pytest.approx(20.0) and rep["sub_stream_fps"] == pytest.approx(15.0)
    assert rep["main_stream_height"] == 180
    # the detector is gated by motion: it runs at 10 fps only while something moves
    assert 0 < rep["ai"]["runs"] < rep["ai"]["offered"] and rep["ai"]["gated_by_motion"] > 0
    assert rep["npu"]["utilisation"] == pytest.approx(
        (rep["ai"]["runs"] * 0.015 + rep["audio"]["cry_windows"] * 0.002) / 6.0, rel=0.02)
    lat = rep["latency_ms"]
    assert lat["capture_to_event"]["n"] == 2
    assert lat["capture_to_ai_result"]["p50"] >= 15.0          # at least the NPU service time
    assert lat["capture_to_encode"]["p50"] > lat["capture_to_isp"]["p50"] > 0
    assert rep["audio"]["erle_db"] > 10.0
    assert {"isp", "encode_main", "encode_sub", "audio_aec_ns_agc"} <= set(rep["cpu_budget"])
    mem = {r["component"]: r for r in rep["memory"]}
    assert mem["ring_buffer"]["allocated_bytes"] > 0 and sum(r["plan_bytes"] for r in rep["memory"]) == 128 << 20
    assert rep["flash"]["fits"] and rep["flash"]["partition_bytes"] == 8388608
    assert rep["streams"]["snapshots"] == 2 and rep["streams"]["clips"][0]["packets"] > 20
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["events"] == rep["events"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "event accuracy" in html
    assert len((out / "events.jsonl").read_text().splitlines()) == len(rep["events"])
    # continuous recording through the storage engineer's recorder: every main frame lands in an indexed MP4
    assert rep["storage"]["frames"] == 120 and rep["storage"]["files"] and not rep["storage"]["errors"]
    # every AI event became an encrypted HLS clip with pre-roll from the ring buffer (storage.clips)
    clips = rep["storage"]["clips"]
    ai_events = [e for e in rep["events"] if e["service"] == "ai-detection"]
    assert len(clips) == len(ai_events) == 2 and all(c["segments"] >= 1 and not c["errors"] for c in clips)
    person = next(e for e in ai_events if e["event"] == "person")
    pclip = next(c for c in clips if c["event_id"].startswith("person"))
    assert pclip["start_pts_s"] < person["capture_time_s"] - 1.0 and (out / "clips").is_dir()


def test_bad_inputs_fail_before_the_run(world, tmp_path):
    root, bundles, scenario = world
    missing = {**scenario, "backgrounds": [{"image": "gone.png"}]}
    with pytest.raises(InputFileError, match=r"backgrounds\[0\]\.image: file not found"):
        run_scenario(bundles, missing, "rv1106", tmp_path, settings=SMALL, data_root=root)
    with pytest.raises(CamlabError, match="built for chips \\['rv1106'\\], not for 't40xp'"):
        run_scenario(bundles, scenario, "t40xp", tmp_path, settings=SMALL, data_root=root)
    with pytest.raises(CamlabError, match="no chip profile"):
        run_scenario(bundles, scenario, "nochip", tmp_path, settings=SMALL, data_root=root)
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(bundles[0], broken)
    data = bytearray((broken / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="sha256 mismatch"):
        run_scenario([broken], scenario, "rv1106", tmp_path, settings=SMALL, data_root=root)
    assert not (tmp_path / "report.json").exists()


def test_cli_prints_one_line_error(world, tmp_path, capsys):
    from device_sim.__main__ import main
    root, bundles, _ = world
    rc = main(["run", "--bundle", str(bundles[0]), "--scenario", str(tmp_path / "none.yaml"), "--chip", "rv1106",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("device_sim: error:") and "none.yaml" in err and "Traceback" not in err


def test_real_time_clock_paces_the_loop(world, tmp_path):
    from dataclasses import replace
    root, bundles, scenario = world
    seen = []
    rep = run_scenario(bundles[:1], {**scenario, "duration_s": 1.0, "actors": []}, "rv1106", tmp_path,
                       settings=replace(SMALL, clock="real"), data_root=root, write=False, on_event=seen.append)
    assert seen == rep["events"]
    assert rep["real_time_factor"] <= 1.02                 # a real-time camera never runs ahead of its sensor
    assert rep["latency_ms"]["capture_to_isp"]["p50"] > 0
    # the sensor clock gives 20 frames in the second; each is encoded or counted where it was lost (a starved CPU
    # drops frames at a full queue, as a camera does): a frame rate is a benchmark figure, not a unit-test one
    sensor, drops = rep["pipeline"]["stages"]["sensor"], rep["pipeline"]["drops"]
    assert sensor["handled"] + sensor["late_frames_skipped"] == 20
    encoded = round(rep["main_stream_fps"] * rep["duration_s"])
    assert 0 < encoded and encoded + drops["isp"] + drops["encode_main"] + sensor["late_frames_skipped"] == 20


def test_privacy_zone_is_black_in_both_isp_outputs():
    from camlab.sensor.unprocess import unprocess
    from device_sim.media.isp import IspAdapter
    rng = np.random.default_rng(0)
    img = rng.integers(80, 200, (90, 160, 3), dtype=np.uint8)
    raw, _ = unprocess(img, np.random.default_rng(1), exposure_s=0.01)
    poly = [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5)]
    isp = IspAdapter(main_size=(160, 90), sub_size=(80, 44), privacy_polygons=[poly])
    out = isp.run(raw, ir_mode=False)
    y = out.main_nv12[:90]
    assert (y[2:40, 82:158] == 16).all() and y[50:, :].std() > 5    # masked area black, the rest is picture
    assert (out.main_nv12[90:][1:20, 82:158] == 128).all()
    assert (out.sub_nv12[:44][1:20, 41:79] == 16).all()


def test_sensor_noise_matches_the_noise_model(world):
    from device_sim.hal.sensor import SensorHAL, SensorSpec
    from device_sim.scenario import load_scenario
    root, _, scenario = world
    sc = load_scenario({**scenario, "actors": []})
    hal = SensorHAL(sc, root, SensorSpec(width=320, height=180), seed=0)
    a = hal.capture(1.0, 40.0, 0.01, 4.0)
    b = hal.capture(1.0, 40.0, 0.01, 4.0)
    black, white = a.black_level, a.white_level
    x = (hal.scene_linear(1.0, False) * 40.0 * 0.01 * 5.0 * 4.0).clip(0, 1)      # noise-free signal
    d = (a.data.astype(np.float64) - b.data) / (white - black)                   # two independent noise draws
    expected = np.sqrt(2 * hal.noise.variance(x, 4.0).mean() + 2 / 12 / (white - black) ** 2)
    assert d.std() == pytest.approx(expected, rel=0.1)
    assert abs(np.corrcoef(d[:, :-1].ravel(), d[:, 1:].ravel())[0, 1]) < 0.05
    assert a.analog_gain == 4.0 and a.exposure_s == 0.01 and a.data.dtype == np.uint16


@pytest.mark.slow
def test_bundles_from_the_real_exporter_run_on_the_camera(world, tmp_path):
    """The deploy engineer's exporter (untrained weights, tiny calibration) makes bundles device_sim runs as is."""
    torch = pytest.importorskip("torch")
    from camlab.config import to_dict
    from camlab.contract.audio_features import FeatureConfig
    from camlab.deploy.export import export_checkpoint
    from camlab.models import cry, detector
    from camlab.train.checkpoint import save_checkpoint
    root, _, scenario = world
    torch.manual_seed(0)
    dcfg = detector.DetectorConfig()
    save_checkpoint(tmp_path / "d.pt", kind="detector", model_config=to_dict(dcfg),
                    state_dict=detector.build_model(dcfg).state_dict(), meta={})
    ccfg = cry.CryModelConfig(features=FeatureConfig(n_mels=64, window_s=0.982))
    save_checkpoint(tmp_path / "c.pt", kind="cry", model_config=to_dict(ccfg),
                    state_dict=cry.build_model(ccfg).state_dict(), meta={})
    kw = dict(calib_count=4, evaluate=False, oracle=False, register=False)
    bundles = [export_checkpoint(tmp_path / "d.pt", "rv1106", tmp_path / "exports", **kw),
               export_checkpoint(tmp_path / "c.pt", "rv1106", tmp_path / "exports", **kw)]
    rep = run_scenario(bundles, {**scenario, "duration_s": 2.5}, "rv1106", tmp_path / "out", settings=SMALL,
                       data_root=root, write=False)
    import json
    npu_ms = {b.parent.name: json.loads((b / "manifest.json").read_text())["cost"]["per_chip"]["rv1106"]
              ["npu_latency_ms"] for b in bundles}
    assert rep["ai"]["runs"] > 0 and rep["audio"]["cry_windows"] >= 3
    busy = rep["ai"]["runs"] * npu_ms["detector"] + rep["npu"]["submitted"]["cry"] * npu_ms["cry"]
    assert rep["npu"]["utilisation"] == pytest.approx(busy / 1000 / 2.5, rel=0.02)
    assert rep["latency_ms"]["capture_to_ai_result"]["p50"] >= npu_ms["detector"]
    assert all(0.0 <= p <= 1.0 for _, p in rep["audio"]["cry_scores"])


def test_async_venc_gives_the_same_streams_and_events(world, report, tmp_path):
    """The main-stream encoder in its own thread (one frame in flight) changes timing only, never content."""
    from dataclasses import replace
    root, bundles, scenario = world
    rep, _ = report
    asy = run_scenario(bundles, scenario, "rv1106", tmp_path, settings=replace(SMALL, venc_async=True),
                       data_root=root, write=False)
    assert asy["config"]["venc_async"] is True and rep["config"]["venc_async"] is False
    assert asy["main_stream_fps"] == rep["main_stream_fps"] == pytest.approx(20.0)
    assert asy["streams"]["main_bytes"] == rep["streams"]["main_bytes"] > 0
    assert [(e["event"], e["capture_time_s"]) for e in asy["events"]] == \
        [(e["event"], e["capture_time_s"]) for e in rep["events"]]
    assert asy["latency_ms"]["capture_to_encode"]["n"] == rep["latency_ms"]["capture_to_encode"]["n"]
