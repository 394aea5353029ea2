"""device_sim budgets: real-time factor, capture->event latency, AI fps and a per-component CPU budget.

Runs the ``porch_day_night`` scenario twice on the rv1106 NPU model (simulated clock; latencies follow the
camera's "device" model: ISP/VENC hops at the RV1106's hardware pixel rate, the NPU from the manifest cost, the CPU
hops (preprocess, postprocess, cry features) as measured on this host): at the seed camera's 1920x1080 H.265 main stream and at 1280x720,
both with the 640x360 H.264 substream at 15 fps and the detector on every substream frame (15 fps) while
the motion gate is open. The top-level keys are the 1080p run's, unless
its measured CPU budget exceeds the host cores, in which case they come from the 720p run (``fallback`` says so);
``runs`` holds both. Bundles: the release detector/cry bundles under ``exports/`` (each the newest valid export of its
release checkpoint, else the newest valid bundle: :func:`_trained_bundles`) when they exist and list rv1106, otherwise the probe bundles built here (``bundles.kind``: a hand-written INT8 QDQ brightness detector and
loudness cry model — valid bundles for timing the camera, not for accuracy). ``cpu_budget`` is host
core-seconds per simulated second per component (time.process_time: CPU of every thread of the process while the
component ran); ``real_time_factor`` is simulated seconds per host wall second of the whole simulation, sensor
model included, and ``real_time_factor_cpu`` = cores / total core-s per simulated s (what the same work gives with
the cores to itself); ``load_average`` (1-min, start and end of the loop) says how shared the host was.
The top-level keys (``headline``) are the 1080p run's when its total CPU budget fits the cores, else the 720p run's;
the 720p run reads the sensor in a 1280x720 (binned) readout mode, as a camera streaming 720p would. The headline
size then runs once more with the main-stream encoder in its own thread (``venc_async``, one frame in flight, as a
SoC's VENC beside its ISP): the top-level ``real_time_factor`` is that run's wall RTF
(``real_time_factor_sequential``: the sequential run's), ``cpu_budget`` the sequential run's exact split.

Issue 17 (``real_clock``): the camera as a pipeline on the real-time clock, as a user runs it
(``python -m device_sim run --clock real``): ``demo_garden`` at the default 1920x1080 @ 20 H.265 main stream,
640x360 @ 15 H.264 substream, the detector at 15 fps while the motion gate is open and the audio chain, with the
bundles above (the release detector from ``make models``), twice in the same bench run: ``pipelined`` (one worker
thread per element, bounded queues that drop and count) and ``serial`` (the same elements on one thread in the order
of the former single loop, paced by the real clock). Per run: ``real_time_factor`` (main-stream frames out / frames
the sensor delivered, over the time they took; capped at 1.0, ``frame_rate_ratio`` uncapped), capture -> event and
capture -> AI result latencies, drops per stage, CPU per stage and the 1-min load average at start/end.

Issue 15: bundles are looked for in ``$CAMLAB_EXPORTS``, ``exports/`` and ``out/demo/exports`` (``bundles.identity``:
path, model.onnx sha256 and the manifest's NPU cost); ``npu_utilisation`` is jobs x those manifest costs (null with
the reason when only the probe bundles exist); ``ai_fps_wall`` is detector inferences per host wall-clock second (the
simulated ``ai_fps`` of each run only echoes the configured rate); ``event_latency_ms`` is p50/p95/max over the
capture -> emit latency of every event of every run, the headline size re-run over the whole scenario with other
sensor seeds until at least 30 events are pooled.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from camlab.contract.manifest import sha256_file

NAME = "device_sim"
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "datasets" / "scenarios" / "porch_day_night.yaml"


# ------------------------------------------------------------------------------------------- probe bundles
def _qdq(nodes, inits, name, scale, zp=0):
    """Append Q->DQ on tensor ``name`` (int8 activations); returns the dequantized name."""
    from onnx import TensorProto, helper
    s, z = f"{name}_scale", f"{name}_zp"
    inits += [helper.make_tensor(s, TensorProto.FLOAT, [], [scale]), helper.make_tensor(z, TensorProto.INT8, [], [zp])]
    nodes += [helper.make_node("QuantizeLinear", [name, s, z], [f"{name}_q"]),
              helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"])]
    return f"{name}_dq"


def _qconv(nodes, inits, x, out, w: np.ndarray, b: np.ndarray, stride: int, pads=0):
    """Conv with per-channel symmetric int8 weights (DequantizeLinear axis 0)."""
    from onnx import TensorProto, helper, numpy_helper
    scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1), 1e-8) / 127.0
    wq = np.clip(np.round(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
    inits += [numpy_helper.from_array(wq, f"{out}_wq"), numpy_helper.from_array(scale.astype(np.float32), f"{out}_ws"),
              numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{out}_wz"),
              numpy_helper.from_array(b.astype(np.float32), f"{out}_b")]
    nodes += [helper.make_node("DequantizeLinear", [f"{out}_wq", f"{out}_ws", f"{out}_wz"], [f"{out}_w"], axis=0),
              helper.make_node("Conv", [x, f"{out}_w", f"{out}_b"], [out], strides=[stride, stride],
                               kernel_shape=list(w.shape[2:]), pads=[pads] * 4)]
    _ = TensorProto


def _save_model(nodes, inits, inp, outs, path: Path):
    import onnx
    from onnx import helper
    graph = helper.make_graph(nodes, "probe", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_bundle(root: Path, manifest: dict, chips: list[str], npu_ms: float) -> Path:
    from camlab.contract.manifest import file_entry
    files = {"model.onnx": file_entry(root / "model.onnx", "model_int8"),
             "model_fp32.onnx": file_entry(root / "model_fp32.onnx", "model_fp32")}
    manifest.update({
        "schema_version": 1, "files": files, "model_files": {"int8": "model.onnx", "fp32": "model_fp32.onnx"},
        "quantization": {"format": "QDQ",
                         "weights": {"dtype": "int8", "granularity": "per_channel", "symmetric": True, "axis": 0},
                         "activations": {"dtype": "int8", "granularity": "per_tensor", "symmetric": True},
                         "outputs_quantized": True,
                         "calibration": {"method": "MinMax", "source": "hand-set probe scales", "count": 1}},
        "metrics": {"split": {"name": "none", "count": 0}, "task_metric": None, "fp32": {}, "int8": {},
                    "int8_metric_drop": None, "output_cosine": {},
                    "note": "probe bundle for device_sim timing tests; not a trained model"},
        "cost": {"macs": 1, "params": 1, "peak_activation_bytes": 65536,
                 "flash_bytes": files["model.onnx"]["bytes"],
                 "per_chip": {c: {"npu_latency_ms": npu_ms, "basis": "probe: typical small model", "source": "model"}
                              for c in chips}},
        "chips": chips, "provenance": {"mlflow_run_id": None, "git_commit": "probe"}})
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def probe_detector_bundle(root: Path, chips=("rv1106",), size=(128, 96), npu_ms: float = 12.0,
                          threshold: float = 0.6, classes=("person", "pet", "vehicle"), box_px: int = 32) -> Path:
    """A valid INT8 QDQ detection bundle whose 'person' score is high where an 8x8 cell is brighter than
    ``threshold`` (pet/vehicle never fire); boxes are ``box_px`` square input px around the cell. Decodes with the
    contract."""
    from onnx import TensorProto, helper
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    for fname in ("model.onnx", "model_fp32.onnx"):
        nodes, inits = [], []
        x = _qdq(nodes, inits, "images", 1.0 / 127)
        wc = np.full((len(classes), 3, 8, 8), -0.01, np.float32)  # non-zero: int32 bias stays in range
        wc[0] = 30.0 / 192.0
        bc = np.full(len(classes), -8.0, np.float32)
        bc[0] = -30.0 * threshold
        _qconv(nodes, inits, x, "cls_raw", wc, bc, 8)
        _qconv(nodes, inits, x, "box_raw", np.full((4, 3, 8, 8), 1e-4, np.float32),
               np.full(4, np.log(box_px / 16.0), np.float32), 8)
        nodes.append(helper.make_node("Identity", [_qdq(nodes, inits, "cls_raw", 16.0 / 127)], ["cls_s8"]))
        nodes.append(helper.make_node("Identity", [_qdq(nodes, inits, "box_raw", 2.0 / 127)], ["box_s8"]))
        inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])
        outs = [helper.make_tensor_value_info("box_s8", TensorProto.FLOAT, [1, 4, h // 8, w // 8]),
                helper.make_tensor_value_info("cls_s8", TensorProto.FLOAT, [1, len(classes), h // 8, w // 8])]
        _save_model(nodes, inits, inp, outs, root / fname)
    man = {"model": {"name": "probe-detector", "task": "detection", "version": "probe-1",
                     "created": "2026-11-22T00:00:00Z"},
           "inputs": [{"name": "images", "shape": [1, 3, h, w], "layout": "NCHW", "dtype": "float32",
                       "color_format": "RGB", "value_range": [0, 255], "mean": [0, 0, 0], "std": [255, 255, 255],
                       "resize": {"method": "letterbox", "interpolation": "bilinear", "pad_value": 114,
                                  "align": "center"}}],
           "outputs": [{"name": "box_s8", "shape": [1, 4, h // 8, w // 8], "role": "box", "stride": 8},
                       {"name": "cls_s8", "shape": [1, len(classes), h // 8, w // 8], "role": "cls", "stride": 8}],
           "decode": {"strides": [8], "classes": list(classes), "score_thresholds": [0.5] * len(classes),
                      "nms_iou": 0.3, "max_detections": 20, "box_encoding": "fcos_ltrb_exp",
                      "levels": [{"stride": 8, "box": "box_s8", "cls": "cls_s8"}]}}
    return _write_bundle(root, man, list(chips), npu_ms)


def probe_cry_bundle(root: Path, chips=("rv1106",), npu_ms: float = 2.0, level: float = 0.0) -> Path:
    """A valid INT8 QDQ cry bundle: logit = 4 * (max normalised log-mel - ``level``) (loudness, not cry shape)."""
    from onnx import TensorProto, helper
    from camlab.contract.audio_features import FeatureConfig
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cfg = FeatureConfig()
    shape = list(cfg.input_shape)
    for fname in ("model.onnx", "model_fp32.onnx"):
        nodes, inits = [], []
        x = _qdq(nodes, inits, "features", 8.0 / 127)
        nodes.append(helper.make_node("GlobalMaxPool", [x], ["pooled"]))
        p = _qdq(nodes, inits, "pooled", 8.0 / 127)
        _qconv(nodes, inits, p, "logit4", np.full((1, 1, 1, 1), 4.0, np.float32),
               np.array([-4.0 * level], np.float32), 1)
        q = _qdq(nodes, inits, "logit4", 32.0 / 127)
        inits.append(helper.make_tensor("flat_shape", TensorProto.INT64, [2], [1, 1]))
        nodes.append(helper.make_node("Reshape", [q, "flat_shape"], ["logits"]))
        inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, shape)
        outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1])]
        _save_model(nodes, inits, inp, outs, root / fname)
    man = {"model": {"name": "probe-cry", "task": "cry", "version": "probe-1", "created": "2026-11-22T00:00:00Z"},
           "inputs": [{"name": "features", "shape": shape, "layout": "NCHW", "dtype": "float32",
                       "color_format": "logmel", "value_range": [-30, 10], "mean": cfg.mean, "std": cfg.std,
                       "resize": {"method": "none"}}],
           "outputs": [{"name": "logits", "shape": [1, 1], "role": "logits"}],
           "decode": {"classes": ["cry"], "threshold": 0.5, "window_s": cfg.window_s, "hop_s": cfg.hop_s,
                      "alarm": {"k": 2, "n": 3, "refractory_s": 10.0}},
           "features": cfg.to_manifest()}
    return _write_bundle(root, man, list(chips), npu_ms)


def _bundle_roots() -> list[Path]:
    """Where bundles are looked for, in order: ``$CAMLAB_EXPORTS``, ``exports/`` (``make models``), ``out/demo/exports``."""
    roots = [Path(os.environ["CAMLAB_EXPORTS"])] if os.environ.get("CAMLAB_EXPORTS") else []
    return roots + [ROOT / "exports", ROOT / "out" / "demo" / "exports"]


def _trained_bundles(chip: str) -> list[Path]:
    """The release detector and cry bundles listing ``chip`` (``camlab.deploy.bundle.newest_bundle_of``: the newest
    valid export of each release checkpoint, else the newest valid bundle) from the first root of
    :func:`_bundle_roots` that has any."""
    from camlab.contract.manifest import load_bundle
    from camlab.deploy.bundle import newest_bundle_of
    from camlab.train import cry, detector

    def usable(d: Path) -> bool:
        try:
            return chip in load_bundle(d).chips
        except Exception:   # an invalid or tampered bundle is not timed
            return False

    for root in _bundle_roots():
        found = [b for model, ckpt in (("detector", detector.release_checkpoint()), ("cry", cry.release_checkpoint()))
                 if (b := newest_bundle_of(root / model, ckpt, accept=usable)) is not None]
        if found:
            return found
    return []


def bundle_identity(paths: list[Path], chip: str) -> list[dict]:
    """Path, model.onnx sha256 and the manifest's NPU cost on ``chip`` of each bundle."""
    out = []
    for p in paths:
        man = json.loads((Path(p) / "manifest.json").read_text())
        out.append({"path": str(p), "task": man["model"]["task"], "version": man["model"]["version"],
                    "model_onnx_sha256": sha256_file(Path(p) / "model.onnx"),
                    "npu_latency_ms": man["cost"]["per_chip"][chip]["npu_latency_ms"],
                    "npu_cost_source": man["cost"]["per_chip"][chip].get("source")})
    return out


def latency_stats(values_ms: list[float]) -> dict:
    """p50/p95/max/n of per-event latencies (ms); None figures when there are none."""
    v = np.asarray(values_ms, np.float64)
    if v.size == 0:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    p50, p95 = np.percentile(v, [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "max": round(float(v.max()), 3),
            "n": int(v.size)}


def event_latencies_ms(events: list[dict]) -> list[float]:
    """Capture -> emit latency of each event the camera emitted (ms)."""
    return [1000.0 * (e["emit_time_s"] - e["capture_time_s"]) for e in events]


MIN_EVENTS = 30
REAL_CLOCK_SCENARIO = ROOT / "datasets" / "scenarios" / "demo_garden.yaml"


def real_clock_run(bundles: list[Path], chip: str, out: Path, pipeline: str, duration: float) -> dict:
    """One real-clock run of the default camera (1080p20 H.265 + 640x360 H.264 + AI + audio) on demo_garden."""
    from device_sim.camera import CameraSettings, run_scenario
    rep = run_scenario(bundles, REAL_CLOCK_SCENARIO, chip, out, settings=CameraSettings(clock="real",
                       pipeline=pipeline), duration_s=duration)
    lat = rep["latency_ms"]
    pipe = rep["pipeline"]
    ev = latency_stats(event_latencies_ms([e for e in rep["events"] if e["service"] == "ai-detection"]))

    def hop(name: str) -> dict:
        return {k: lat.get(name, {}).get(k) for k in ("p50", "p95", "n")}
    return {"runner": pipe["runner"], "real_time_factor": rep["real_time_factor"],
            "frame_rate_ratio": pipe["frame_rate_ratio"], "wall_s": rep["wall_s"],
            "main_stream_fps": rep["main_stream_fps"], "sub_stream_fps": rep["sub_stream_fps"],
            "ai_fps": rep["ai_fps"], "ai_offered": rep["ai"]["offered"], "ai_runs": rep["ai"]["runs"],
            "ai_event_latency_ms": ev, "event_latency_p95_ms": ev["p95"],
            "capture_to_ai_result_ms": hop("capture_to_ai_result"), "capture_to_isp_ms": hop("capture_to_isp"),
            "capture_to_encode_ms": hop("capture_to_encode"), "capture_to_notify_ms": hop("capture_to_notify"),
            "events": [(e["event"], e["capture_time_s"], round(1000 * (e["emit_time_s"] - e["capture_time_s"]), 1))
                       for e in rep["events"] if e["service"] == "ai-detection"],
            "drops": pipe["drops"], "drops_total": sum(pipe["drops"].values()),
            "cpu_per_stage": {k: v["cpu_per_s"] for k, v in pipe["stages"].items()},
            "cpu_budget_total": rep["cpu_budget_total"], "load_average": rep["load_average"],
            "threads": rep["threads"]}


def real_clock_comparison(bundles: list[Path], chip: str, tmp: Path, duration: float | None) -> dict:
    """The pipelined and the serial camera on the real clock, one after the other in this bench run."""
    runs = {"pipelined": real_clock_run(bundles, chip, tmp / "real_pipelined", "threaded", duration),
            "serial": real_clock_run(bundles, chip, tmp / "real_serial", "serial", duration)}
    p = runs["pipelined"]
    p95 = p["event_latency_p95_ms"]
    return {"scenario": REAL_CLOCK_SCENARIO.name, "duration_s": duration or "scenario (24 s)",
            "camera": "1920x1080 @ 20 H.265 main + 640x360 @ 15 H.264 sub + detector at 15 fps (motion-gated) + "
                      "audio (AEC/NS/AGC, Opus" + (", cry model)" if any("cry" in str(b) for b in bundles) else ")"),
            **runs,
            "target_met": {"rtf_ge_1": bool(p["real_time_factor"] >= 1.0),
                           "event_p95_le_150ms": None if p95 is None else bool(p95 <= 150.0),
                           "ai_result_p95_le_150ms": bool((p["capture_to_ai_result_ms"]["p95"] or 1e9) <= 150.0),
                           "no_main_stream_drops": p["drops"].get("encode_main", 0) == 0
                           and p["main_stream_fps"] >= 19.9},
            "note": "a shared 2-core host: the other tenants' load (load_average) takes cores from the camera; "
                    "real_time_factor is capped at 1.0 (a camera cannot run ahead of its sensor), frame_rate_ratio "
                    "is the measured value; capture->event p95 is over few events (see ai_event_latency_ms.n), "
                    "capture_to_ai_result_ms covers every detector run"}


def run() -> dict:
    from device_sim.camera import CameraSettings, run_scenario
    chip = "rv1106"
    tmp = Path(tempfile.mkdtemp(prefix="bench_device_sim_"))
    bundles = _trained_bundles(chip)
    kind = "trained" if bundles else "probe"
    probe_reason = None
    if not bundles:
        bundles = [probe_detector_bundle(tmp / "det"), probe_cry_bundle(tmp / "cry")]
        probe_reason = (f"no bundle listing {chip} under {[str(r) for r in _bundle_roots()]}: probe bundles with a "
                        "hand-set NPU cost, so NPU load is not a model's and is reported null")
    small = os.environ.get("CAMLAB_SMALL") == "1"
    duration = 6.0 if small else 20.0
    runs = {}
    all_events: list[dict] = []
    ai_wall = {"runs": 0, "wall_s": 0.0}
    for label, size in (("1080p", (1920, 1080)), ("720p", (1280, 720))):
        cs = CameraSettings(main_size=size)
        rep = run_scenario(bundles, SCENARIO, chip, tmp / label, settings=cs, duration_s=duration)
        runs[label] = {k: rep[k] for k in ("real_time_factor", "real_time_factor_cpu", "load_average",
                                            "event_latency_p95_ms", "ai_fps", "main_stream_fps",
                                            "main_stream_height", "sub_stream_fps", "cpu_budget",
                                            "cpu_budget_total", "threads", "latency_ms", "npu", "accuracy")}
        runs[label]["ai_fps_wall"] = round(rep["ai"]["runs"] / rep["wall_s"], 3) if rep["wall_s"] else None
        runs[label]["events"] = len(rep["events"])
        all_events += rep["events"]
        ai_wall["runs"] += rep["ai"]["runs"]
        ai_wall["wall_s"] += rep["wall_s"]
        runs[label]["sensor_readout"] = f"{size[0]}x{size[1]}" + ("" if size == (1920, 1080) else
                                                                  " (binned/cropped readout mode)")
    cores = os.cpu_count() or 1
    # 1080p fits when its measured CPU budget fits the cores (the wall RTF on a shared host says more about the
    # other tenants than about the camera; both are reported)
    fits_1080 = runs["1080p"]["cpu_budget_total"] <= cores
    head = "1080p" if fits_1080 else "720p"
    top = runs[head]
    # the headline size once more with the main-stream VENC in its own thread (as on the SoC, where the encoder
    # runs beside the ISP): its wall RTF is the headline; the per-component split comes from the sequential run
    cs = CameraSettings(main_size=(1920, 1080) if fits_1080 else (1280, 720), venc_async=True)
    rep = run_scenario(bundles, SCENARIO, chip, tmp / f"{head}_async", settings=cs, duration_s=duration)
    runs[f"{head}_venc_async"] = {k: rep[k] for k in ("real_time_factor", "real_time_factor_cpu", "load_average",
                                                      "cpu_budget_total", "event_latency_p95_ms", "ai_fps",
                                                      "main_stream_fps", "npu")}
    runs[f"{head}_venc_async"]["ai_fps_wall"] = round(rep["ai"]["runs"] / rep["wall_s"], 3)
    all_events += rep["events"]
    ai_wall["runs"] += rep["ai"]["runs"]
    ai_wall["wall_s"] += rep["wall_s"]
    # more events until >= MIN_EVENTS: the headline size again over the whole scenario, other sensor-noise seeds
    import yaml
    extra = 0
    while len(all_events) < MIN_EVENTS and extra < (1 if small else 8):
        extra += 1
        scn = yaml.safe_load(SCENARIO.read_text())
        scn["seed"] = int(scn.get("seed", 0)) + 100 + extra
        rep = run_scenario(bundles, scn, chip, tmp / f"lat{extra}", settings=CameraSettings(
            main_size=(1920, 1080) if fits_1080 else (1280, 720), venc_async=True),
            duration_s=duration if small else None)
        all_events += rep["events"]
        ai_wall["runs"] += rep["ai"]["runs"]
        ai_wall["wall_s"] += rep["wall_s"]
    lat = latency_stats(event_latencies_ms(all_events))
    asy = runs[f"{head}_venc_async"]
    out = {k: top[k] for k in ("main_stream_fps", "main_stream_height", "sub_stream_fps", "cpu_budget")}
    npu = runs[f"{head}_venc_async"]["npu"]
    out.update({
        "event_latency_ms": lat, "event_latency_p95_ms": lat["p95"],
        "event_latency_note": None if lat["n"] >= MIN_EVENTS else
        f"only {lat['n']} events in {len(runs) + extra} runs (< {MIN_EVENTS}); p95/max are weak",
        "event_latency_runs": len(runs) + extra,
        "event_latency_model": "simulated clock: ISP/VENC hops at the chip's pixel rate, NPU = manifest "
                               "npu_latency_ms of the bundle, CPU hops (pre/postprocess) measured on this host",
        "ai_fps_wall": round(ai_wall["runs"] / ai_wall["wall_s"], 3) if ai_wall["wall_s"] else None,
        "ai_fps_wall_note": "detector inferences run per host wall-clock second, pooled over every run",
        "ai_fps_configured": CameraSettings().ai_fps,
        "npu_utilisation": None if probe_reason else npu["utilisation"],
        "npu_jobs": npu["jobs"],
        "npu_note": probe_reason or "jobs x the bundles' manifest npu_latency_ms on the chip / simulated seconds"})
    b1080 = runs["1080p"]["cpu_budget"]
    rc = real_clock_comparison(bundles, chip, tmp, 4.0 if small else None)
    out.update({"real_clock": rc,
                "real_time_factor_real_clock": {k: rc[k]["real_time_factor"] for k in ("pipelined", "serial")},
                "event_latency_p95_ms_real_clock": {k: rc[k]["event_latency_p95_ms"] for k in ("pipelined", "serial")}})
    out.update({"headline": head, "real_time_factor": asy["real_time_factor"],
                "real_time_factor_sequential": top["real_time_factor"],
                "real_time_factor_cpu": top["real_time_factor_cpu"], "load_average": asy["load_average"],
                "target_met": {"wall_rtf_ge_1": bool(asy["real_time_factor"] >= 1.0),
                               "cpu_rtf_ge_1": bool(top["real_time_factor_cpu"] >= 1.0)},
                "fallback": None if fits_1080 else
                f"1080p needs {runs['1080p']['cpu_budget_total']} core-s/s on {cores} cores (ISP "
                f"{b1080.get('isp')} + H.265 main {b1080.get('encode_main')} alone: "
                f"{round(b1080.get('isp', 0) + b1080.get('encode_main', 0), 3)}): top-level figures are the "
                f"1280x720 run",
                "runs": runs, "scenario": SCENARIO.name, "duration_s": duration, "chip": chip, "cores": cores,
                "bundles": {"kind": kind, "paths": [str(b) for b in bundles],
                            "identity": bundle_identity(bundles, chip)},
                "accuracy_note": None if kind == "trained" else "probe bundles (brightness/loudness, untrained): "
                                 "the accuracy tables only show the scoring path, not a model's quality",
                "rtf_note": "real_time_factor: simulated s per host wall s (the whole loop, sensor model included; "
                            "on a shared host it falls with the other tenants' load, see load_average 1-min at "
                            "start/end of the loop); real_time_factor_cpu: cores / total process core-s per "
                            "simulated s, the RTF the camera would reach with the cores to itself and its "
                            "components overlapped across them",
                "note": "timings on a shared 2-core host; sensor_model is the simulator's own cost (hardware on a "
                        "camera), npu_host_onnxruntime is host CPU doing the NPU's work"})
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
