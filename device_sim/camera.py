"""The camera's composition root: wires HAL -> media -> AI -> events -> budgets, and runs a scenario.

Nothing else in device_sim wires subsystems together. One main loop steps the sensor at the main-stream frame rate
(the sensor's VTS), and at each step: the microphone's 10 ms blocks up to that time go through AEC/NS/AGC into
Opus and the cry model; the sensor renders a raw frame at the exposure/gain the AE set after the previous frame;
the ISP makes NV12 main + sub (privacy-masked); the main stream is encoded every frame, the substream at its own
rate, the detector at ``ai_fps`` while the motion gate is open; events are debounced and stamped with the capture
time of their frame. With the simulated clock every hop's time is ``capture time + measured host time`` of the
hops before it (the NPU's time comes from its model, not from onnxruntime on the host); with the real-time clock
the loop paces itself on the host clock. ``run_scenario`` is the entry point (``python -m device_sim run`` and
``make demo`` call it). The sensor is read out at the main stream's size (a 1280x720 main stream uses the sensor's
binned 720p readout mode, so the ISP never processes pixels the streams do not carry), and the libraries' thread
pools are sized for the host's cores while the loop runs (:func:`_thread_budget`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camlab.config import read_yaml
from camlab.errors import ConfigError, InputFileError

# Thread budget (2-core host, like the seed camera's SoC): OpenMP workers of the numba ISP/sensor kernels sleep when
# idle instead of spin-waiting (the spin doubled the ISP's CPU time on a loaded host); set before numba loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CHIPS_DIR = Path(__file__).resolve().parents[1] / "camlab" / "deploy" / "chips"

# Hardware ISP and video encoder throughput (pixels/s) by SoC, for the "device" latency model. RV1106 datasheet:
# ISP up to 5 MP @ 30 fps, VENC H.265/H.264 up to 5 MP @ 30 fps (both are line/pixel-rate hardware pipes).
SOC_MEDIA_PIXEL_RATE = {"rv1106": {"isp": 5.0e6 * 30, "venc": 5.0e6 * 30}}


@dataclass(frozen=True)
class CameraSettings:
    """Stream and AI settings of the camera (defaults: the seed camera's)."""
    main_size: tuple[int, int] = (1920, 1080)
    main_fps: float = 20.0
    main_codec: str = "hevc"
    main_bitrate: int = 2_000_000
    sub_size: tuple[int, int] = (640, 360)
    sub_fps: float = 15.0
    sub_codec: str = "h264"
    sub_bitrate: int = 400_000
    ai_fps: float = 15.0         # every substream frame while the motion gate is open (seed camera: >= 10)
    ring_seconds: float = 15.0
    npu_max_queue: int = 2
    motion_gate: bool = True
    encoder_threads: int = 0
    snapshot_quality: int = 85
    clock: str = "sim"           # "sim" | "real"
    timing: str = "device"       # "device": ISP/VENC hops timed by the SoC's hardware rate; "host": measured
    talkback_aec: bool = True
    # main-stream encoder in its own thread, one frame in flight (a SoC's VENC runs beside its ISP). The wall
    # real-time factor then counts the overlap; the per-component CPU split is only exact when False (sequential)
    venc_async: bool = False
    # (figure, "<=" | ">=", bound, unit) rows shown beside report.html's headline figures (the demo passes its
    # budget's device_sim checks); empty: the camera's own defaults
    report_bounds: tuple[tuple[str, str, float, str], ...] = ()

    def __post_init__(self):
        for name in ("main_fps", "sub_fps", "ai_fps"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be > 0, got {value:g}")
        if min(self.main_size) <= 0 or min(self.sub_size) <= 0:
            raise ValueError(f"stream sizes must be positive, got main {self.main_size}, sub {self.sub_size}")
        if self.sub_fps > self.main_fps or self.ai_fps > self.sub_fps:
            raise ValueError("need ai_fps <= sub_fps <= main_fps (AI reads the substream)")
        if self.main_size[0] % 2 or self.main_size[1] % 2:
            raise ValueError("main_size must be even")
        if self.timing not in ("device", "host") or self.clock not in ("sim", "real"):
            raise ValueError("timing must be 'device' or 'host' and clock 'sim' or 'real'")


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc/self/statm), 0 where unavailable."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _thread_budget() -> dict:
    """Size the libraries' thread pools for the camera's cores while the main loop runs (restored after).

    numba (ISP, sensor): one worker per core, idle workers sleep (OMP_WAIT_POLICY); OpenCV (RGA-like resize/CSC of
    the AI input, JPEG): 1 thread -- its images are small and its pool's wake-ups cost more than they save;
    onnxruntime: intra/inter-op 1 (device_sim.ai.scheduler); x265: zerolatency (one frame thread), WPP pool over the
    cores. Returns what was set and what to restore."""
    import cv2
    import numba
    prev = {"cv2": cv2.getNumThreads()}
    cv2.setNumThreads(1)
    cores = os.cpu_count() or 1
    return {"prev": prev, "report": {
        "numba": int(numba.get_num_threads()), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "opencv": 1, "onnxruntime_intra_op": 1, "x265": f"frame-threads 1 (zerolatency), WPP pool of {cores}"}}


def _restore_threads(threads: dict) -> None:
    import cv2
    cv2.setNumThreads(int(threads["prev"]["cv2"]))


def load_chip(chip: str) -> dict:
    """The deploy engineer's chip profile ``camlab/deploy/chips/<chip>.yaml`` read as plain YAML."""
    path = CHIPS_DIR / f"{chip}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in CHIPS_DIR.glob("*.yaml"))
        raise ConfigError(f"--chip {chip!r}: no chip profile {path} (available: {', '.join(have) or 'none'})")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    return data


@dataclass
class _Stats:
    main_frames: int = 0
    sub_frames: int = 0
    ai_runs: int = 0
    ai_offered: int = 0
    ai_gated: int = 0
    ai_dropped: int = 0
    cry_windows: int = 0
    snapshots: int = 0
    clips: list = field(default_factory=list)
    bytes: dict = field(default_factory=lambda: {"main": 0, "sub": 0, "audio": 0, "jpeg": 0})


def _build_audio(sc, root: Path, n: int, seed: int):
    """Near-end sound field and the talk-back signal, whole-scenario arrays at 16 kHz, and cry durations."""
    from device_sim.hal.mic import at_level, load_audio
    rng = np.random.default_rng(seed + 3)
    near = np.zeros(n, np.float64)
    if sc.audio.background:
        bg = load_audio(root / sc.audio.background)
        reps = int(np.ceil(n / max(bg.size, 1)))
        near += at_level(np.tile(bg, reps)[:n].astype(np.float64), sc.audio.background_db)
    else:
        near += rng.standard_normal(n) * 10 ** (sc.audio.background_db / 20)
    cry_dur = {}
    for c in sc.audio.cries:
        y = at_level(load_audio(root / c.file).astype(np.float64), c.level_db)
        cry_dur[c.file] = y.size / 16000
        s = int(c.start_s * 16000)
        e = min(n, s + y.size)
        if e > s:
            near[s:e] += y[: e - s]
    talk = np.zeros(n, np.float64)
    talk_spans = []
    for c in sc.audio.talkback:
        y = at_level(load_audio(root / c.file).astype(np.float64), c.level_db)
        s = int(c.start_s * 16000)
        e = min(n, s + y.size)
        if e > s:
            talk[s:e] += y[: e - s]
            talk_spans.append((s, e))
    return near, talk, talk_spans, cry_dur


def run_scenario(bundles, scenario, chip: str, out_dir, *, settings: CameraSettings | None = None,
                 data_root=None, duration_s: float | None = None, write: bool = True,
                 record_sd=None, sd_capacity_bytes: int = 1 << 30, on_event=None, clips_dir=None) -> dict:
    """Run one scenario on the simulated camera and return the report dict (also written to ``out_dir``).

    ``bundles``: export bundle folders (a detection and/or a cry bundle); ``scenario``: a YAML path, a mapping or a
    :class:`device_sim.scenario.Scenario`; ``chip``: a chip profile name (e.g. ``rv1106``). Everything is
    validated (scenario files, bundles, chip) before the first frame. ``record_sd``: a folder used as the TF card;
    the main stream is then recorded continuously through :mod:`device_sim.storage.recorder` (minute MP4s + index).
    ``on_event``: called with each event dict as it is emitted (e.g. the MQTT notifier of device_sim.net).
    ``clips_dir``: every AI event also becomes an encrypted HLS clip (ring-buffer pre-roll + post-roll of the main
    stream) through :mod:`device_sim.storage.clips`.
    """
    from device_sim import scenario as scn
    from device_sim.ai.cry import CryFrontEnd
    from device_sim.ai.motion import MotionDetector
    from device_sim.ai.postprocess import detections as decode_detections
    from device_sim.ai.preprocess import detector_input
    from device_sim.ai.scheduler import Scheduler, load_models
    from device_sim.ai.zones import zone_of
    from device_sim.budgets import Budgets
    from device_sim.budgets.report import event_accuracy, flash_use, memory_table, percentiles, write_report
    from device_sim.clock import make_clock
    from device_sim.hal.ircut import IrCutHAL
    from device_sim.hal.mic import MicHAL
    from device_sim.hal.npu import NpuModel
    from device_sim.hal.sensor import SensorHAL, SensorSpec
    from device_sim.hal.speaker import SpeakerHAL
    from device_sim.media.audio import BLOCK, AudioChain, AudioChainConfig, erle_db
    from device_sim.media.encoder import StreamConfig, VideoEncoder, jpeg_snapshot
    from device_sim.media.ringbuffer import RingBuffer
    from device_sim.spec.events import EventDebouncer, detection_event, make_event

    cs = settings or CameraSettings()
    # ---------------------------------------------------------------- validate everything before the run
    if duration_s is not None and not (np.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"--duration: duration must be > 0 seconds, got {duration_s:g}")
    origin = str(scenario) if isinstance(scenario, (str, Path)) else "scenario"
    if isinstance(scenario, scn.Scenario):
        sc = scenario
    else:
        if isinstance(scenario, (str, Path)) and not Path(scenario).is_file():
            raise InputFileError(f"--scenario {scenario}: file not found")
        sc = scn.load_scenario(scenario)
    root = scn.resolve_root(sc, data_root)
    scn.validate(sc, root, origin)
    chip_profile = load_chip(chip)
    if not bundles:
        raise InputFileError("no --bundle given")
    rss = {"start": _rss()}
    models = load_models(list(bundles), chip)
    rss["ai"] = _rss() - rss["start"]
    det = models.get("detection")
    cry = models.get("cry")
    duration = float(duration_s or sc.duration_s)

    # ---------------------------------------------------------------- wire the camera
    W, H = cs.main_size
    hw = SOC_MEDIA_PIXEL_RATE.get(chip) if cs.timing == "device" else None
    latency_model = ("device: ISP/VENC at the SoC's hardware pixel rate, NPU from the manifest cost, CPU hops "
                     "measured on the host" if hw else "host: every hop measured on the host, NPU modelled")

    def hw_time(kind: str, pixels: int, measured_s: float) -> float:
        return pixels / hw[kind] if hw else measured_s
    budgets = Budgets()
    privacy = [z.polygon for z in sc.zones if z.kind == "privacy"]
    detect_zones = [z for z in sc.zones if z.kind == "detect"]
    sensor = SensorHAL(sc, root, SensorSpec(width=W, height=H), seed=sc.seed)
    ircut = IrCutHAL()
    from device_sim.media.isp import IspAdapter
    r0 = _rss()
    isp = IspAdapter(main_size=cs.main_size, sub_size=cs.sub_size, privacy_polygons=privacy)
    rss["isp_init"] = _rss() - r0
    r0 = _rss()
    from camlab.isp.three_a.daynight import DayNightController
    daynight = DayNightController(t0_s=0.0)
    ircut.led_equiv_lux = daynight.p.ir_led_level
    enc_main = VideoEncoder(StreamConfig("main", cs.main_codec, W, H, cs.main_fps, cs.main_bitrate,
                                         gop=int(2 * cs.main_fps), threads=cs.encoder_threads))
    enc_sub = VideoEncoder(StreamConfig("sub", cs.sub_codec, cs.sub_size[0], cs.sub_size[1], cs.sub_fps,
                                        cs.sub_bitrate, gop=int(2 * cs.sub_fps), threads=cs.encoder_threads))
    rss["encoder"] = _rss() - r0
    ring = RingBuffer(cs.ring_seconds)
    recorder = None
    if record_sd is not None:
        from device_sim.hal.sdcard import SdCard
        from device_sim.storage.index import Index
        from device_sim.storage.recorder import Recorder
        card = SdCard(Path(record_sd), sd_capacity_bytes)
        sd_index = Index(card.mount_point / ".index" / "index.db")
        # wall clock of pts 0: a fixed epoch (2025-11-22T00:00:00Z) keeps recordings reproducible
        recorder = Recorder(card, sd_index, info=enc_main.info, epoch_base=1_763_769_600.0)
    clip_maker, clip_sessions, clips_done = None, [], []
    if clips_dir is not None:
        from device_sim.storage.clips import ClipMaker
        from device_sim.storage.crypto import UserKey
        clip_maker = ClipMaker(Path(clips_dir), UserKey(np.random.default_rng(sc.seed + 9).bytes(16)),
                               pre_roll_s=5.0, post_roll_s=5.0, segment_s=4.0, infos=[enc_main.info])
    n_audio = int(round(duration * 16000))
    near, talk, talk_spans, cry_dur = _build_audio(sc, root, n_audio, sc.seed)
    speaker = SpeakerHAL(seed=sc.seed)
    emitted = speaker.play(talk) if talk.any() else np.zeros(n_audio)
    echo = speaker.echo(emitted) if talk.any() else np.zeros(n_audio)
    mic = MicHAL(near, seed=sc.seed)
    r0 = _rss()
    audio = AudioChain(AudioChainConfig(aec=cs.talkback_aec))
    rss["audio"] = _rss() - r0
    ref_pcm = (np.clip(emitted, -1, 32767 / 32768) * 32768).astype(np.int16)
    # boot chime (2 s of shaped noise through the speaker) converges the AEC before the first frame
    chime = speaker.play(np.random.default_rng(sc.seed + 5).standard_normal(32000) * 0.1)
    chime_mic = MicHAL(np.zeros(32000), seed=sc.seed + 6)
    chime_echo = speaker.echo(chime)
    chime_ref = (np.clip(chime, -1, 32767 / 32768) * 32768).astype(np.int16)
    audio.prime((chime_mic.read(i, BLOCK, chime_echo[i:i + BLOCK]) for i in range(0, 32000, BLOCK)),
                (chime_ref[i:i + BLOCK] for i in range(0, 32000, BLOCK)))
    mic_rec = np.zeros(n_audio, np.int16)
    aec_rec = np.zeros(n_audio, np.int16)
    clean_rec = np.zeros(n_audio, np.int16)
    npu = NpuModel(chip, max_queue=cs.npu_max_queue)
    sched = Scheduler(models, npu)
    motion = MotionDetector()
    debounce = EventDebouncer()
    cry_fe = CryFrontEnd(cry.bundle.features, cry.bundle.decode, str(cry.bundle.root)) if cry else None
    events: list[dict] = []
    st = _Stats()
    timeline = {"t": [], "lux": [], "exposure_ms": [], "gain": [], "night": []}
    det_classes = list(det.bundle.decode["classes"]) if det else []

    ae_exposure, ae_gain = 1 / 60, 1.0
    n_frames = int(round(duration * cs.main_fps))
    audio_pos = 0
    next_sub_t = 0.0
    next_ai_t = 0.0
    last_main = None
    cry_scores: list[tuple[float, float]] = []
    # boot: linearise the scene in both filter states and compile the ISP kernels before the clock starts
    sensor.scene_linear(0.0, True)
    r0 = _rss()
    isp.warm_up(sensor.capture(0.0, scn.lux_at(sc, 0.0), ae_exposure, ae_gain))
    rss["isp"] = rss["isp_init"] + max(0, _rss() - r0)
    threads = _thread_budget()
    clock = make_clock(cs.clock)   # the sensor starts streaming now, after boot (a real clock's zero is here)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    wall0 = time.perf_counter()
    cpu0 = time.process_time()

    def ai_event_media(t_ev: float) -> None:
        """Snapshot, pre-event run from the ring buffer and (optionally) an encrypted clip for the last event."""
        if last_main is not None:
            with budgets.cpu("jpeg_snapshot"):
                st.bytes["jpeg"] += len(jpeg_snapshot(last_main, cs.snapshot_quality))
            st.snapshots += 1
        clip = ring.since(t_ev - cs.ring_seconds)
        st.clips.append({"event_t": round(t_ev, 3), "packets": len(clip),
                         "pre_s": round(t_ev - clip[0].pts_s, 3) if clip else 0.0})
        if clip_maker is not None:
            with budgets.cpu("storage_clips"):
                clip_sessions.append(clip_maker.start(events[-1], clip, enc_main.info))

    def encode_main(nv12, t, t_isp):
        c0 = time.perf_counter()
        pkts = enc_main.encode(nv12, t)
        enc_s = time.perf_counter() - c0
        return pkts, t, t_isp, enc_s, (None if clock.simulated else clock.now())

    def main_done(pkts, t, t_isp, enc_s, t_real):
        """Main-stream packets of the frame captured at ``t``: ring buffer, TF card, event clips, latency stamp."""
        for p in pkts:
            ring.push(p)
            st.bytes["main"] += len(p.data)
        if recorder is not None:
            with budgets.cpu("storage_record"):
                for p in pkts:
                    recorder.write(p)
        if clip_sessions:
            with budgets.cpu("storage_clips"):
                for sess in list(clip_sessions):
                    if not all([sess.add(p) for p in pkts]):
                        clips_done.append(sess.finish())
                        clip_sessions.remove(sess)
        st.main_frames += 1
        budgets.stamp("capture_to_encode", t, (t_isp + hw_time("venc", W * H, enc_s)) if t_real is None else t_real)

    venc, pending = None, None
    if cs.venc_async:
        from concurrent.futures import ThreadPoolExecutor
        venc = ThreadPoolExecutor(max_workers=1, thread_name_prefix="venc")

    def emit(ev: dict):
        events.append(ev)
        if on_event is not None:
            on_event(ev)
        if ev["service"] == "ai-detection":
            budgets.stamp("capture_to_event", ev["capture_time_s"], ev["emit_time_s"])

    for k in range(n_frames):
        t = k / cs.main_fps
        t_next = (k + 1) / cs.main_fps
        if not clock.simulated:
            clock.sleep_until(t)
        # ------------------------------------------------ audio up to the end of this frame period
        end = min(n_audio, int(round(t_next * 16000)))
        while audio_pos + BLOCK <= end:
            s = audio_pos
            with budgets.cpu("audio_aec_ns_agc"):
                blk = mic.read(s, BLOCK, echo[s:s + BLOCK])
                a_out, clean = audio.process(blk, ref_pcm[s:s + BLOCK])
            mic_rec[s:s + BLOCK], aec_rec[s:s + BLOCK], clean_rec[s:s + BLOCK] = blk, a_out, clean
            with budgets.cpu("audio_opus"):
                for p in audio.opus.encode(clean, s / 16000):
                    ring.push(p)
                    st.bytes["audio"] += len(p.data)
            if cry_fe is not None:
                with budgets.cpu("cry_features"):
                    c0 = time.perf_counter()
                    windows = list(cry_fe.push(clean.astype(np.float32) / 32768.0))
                    feat_s = time.perf_counter() - c0
                for x, end_sample in windows:
                    st.cry_windows += 1
                    t_win = end_sample / 16000
                    with budgets.cpu("npu_host_onnxruntime"):
                        outs, job = sched.infer("cry", x, t_win + feat_s)
                    if outs is None:
                        continue
                    prob = cry_fe.probability(outs[0])
                    cry_scores.append((round(t_win, 3), round(prob, 4)))
                    if cry_fe.alarm.update(prob, t_win):
                        t_emit = job.end_s
                        budgets.stamp("cry_window_to_event", t_win, t_emit)
                        emit(make_event("ai-detection", "cry", t_win, t_emit, confidence=prob, zone="audio"))
                        ai_event_media(t_win)
            audio_pos += BLOCK
        # ------------------------------------------------ 3A decisions from the previous frame
        lux = scn.lux_at(sc, t)
        ir_mode = ircut.night
        # ------------------------------------------------ sensor
        with budgets.cpu("sensor_model"):
            c0 = time.perf_counter()
            eff_lux = lux * daynight.p.ir_passband_gain if ir_mode else lux
            raw = sensor.capture(t, eff_lux, ae_exposure, ae_gain, ir_mode=ir_mode, ir_lux=ircut.ir_lux)
        # ------------------------------------------------ ISP
        with budgets.cpu("isp"):
            c0 = time.perf_counter()
            out = isp.run(raw, ir_mode)
            isp_s = time.perf_counter() - c0
        t_isp = (t + hw_time("isp", W * H, isp_s)) if clock.simulated else clock.now()
        budgets.stamp("capture_to_isp", t, t_isp)
        ae = out.stats.get("ae", {})
        prev_total = ae_exposure * ae_gain
        ae_exposure = float(ae.get("exposure_s", ae_exposure))
        ae_gain = float(ae.get("analog_gain", ae_gain))   # the ISP applies its digital gain itself
        if abs(np.log((ae_exposure * ae_gain) / prev_total)) > 0.15:
            motion.reset_background()          # an AE step is not motion
        brightness = out.stats.get("brightness")
        if brightness is not None and np.isfinite(brightness):
            dec = daynight.update(t, float(brightness))
            if ircut.set_night(dec.mode == "night", t):
                isp.carry_ae(ir_mode, dec.mode == "night")
                motion.reset_background()
                emit(make_event("camera-control", "night-mode-changed", t, t_isp, night=dec.mode == "night"))
        timeline["t"].append(t)
        timeline["lux"].append(max(lux, 1e-3))
        timeline["exposure_ms"].append(1000 * ae_exposure)
        timeline["gain"].append(ae_gain)
        timeline["night"].append(int(ircut.night))
        # ------------------------------------------------ main stream
        if venc is None:
            with budgets.cpu("encode_main"):
                main_done(*encode_main(out.main_nv12, t, t_isp))
        else:
            # the VENC encodes frame k while the loop renders and processes frame k+1 (one frame in flight)
            if pending is not None:
                main_done(*pending.result())
            pending = venc.submit(encode_main, out.main_nv12, t, t_isp)
        last_main = out.main_nv12
        # ------------------------------------------------ substream, motion, AI
        if t + 1e-9 >= next_sub_t:
            next_sub_t += 1.0 / cs.sub_fps
            with budgets.cpu("encode_sub"):
                c0 = time.perf_counter()
                for p in enc_sub.encode(out.sub_nv12, t):
                    st.bytes["sub"] += len(p.data)
                sub_s = time.perf_counter() - c0
            st.sub_frames += 1
            budgets.stamp("capture_to_sub_encode", t, (t_isp + hw_time("venc", cs.sub_size[0] * cs.sub_size[1], sub_s))
                          if clock.simulated else clock.now())
            with budgets.cpu("motion"):
                moving = motion.update(out.sub_nv12, cs.sub_size[1], t)
            if moving and (not events or events[-1].get("event") != "motion-detected"
                           or t - events[-1]["capture_time_s"] > motion.cfg.hold_s):
                emit(make_event("motion-detection", "motion-detected", t, t_isp, area=motion.active_fraction))
            if det is not None and t + 1e-9 >= next_ai_t:
                next_ai_t += 1.0 / cs.ai_fps
                st.ai_offered += 1
                if cs.motion_gate and not motion.gate_open(t):
                    st.ai_gated += 1
                    for c in det_classes:
                        debounce.update(c, False, t)
                else:
                    with budgets.cpu("ai_preprocess"):
                        c0 = time.perf_counter()
                        x, lb = detector_input(out.sub_nv12, det.bundle.input)
                        pre_s = time.perf_counter() - c0
                    t_submit = t_isp + pre_s if clock.simulated else clock.now()
                    with budgets.cpu("npu_host_onnxruntime"):
                        outs, job = sched.infer("detection", x, t_submit)
                    if outs is None:
                        st.ai_dropped += 1
                    else:
                        st.ai_runs += 1
                        with budgets.cpu("ai_postprocess"):
                            c0 = time.perf_counter()
                            dets = decode_detections(det.output_names, outs, det.bundle.decode, lb)
                            post_s = time.perf_counter() - c0
                        t_done = job.end_s + post_s
                        budgets.stamp("capture_to_ai_result", t, t_done)
                        best: dict[str, object] = {}
                        for d in dets:
                            if d.label not in best or d.score > best[d.label].score:
                                best[d.label] = d
                        for c in det_classes:
                            if debounce.update(c, c in best, t):
                                d = best[c]
                                zone = zone_of(d.box, detect_zones)
                                if zone == "" and detect_zones:
                                    continue
                                emit(detection_event(c, d.score, zone, d.box, t, t_done))
                                ai_event_media(t)
    if pending is not None:
        main_done(*pending.result())
    if venc is not None:
        venc.shutdown(wait=True)
    if not clock.simulated:
        clock.sleep_until(duration)    # the last frame period ends at ``duration``, as the sensor's would
    for p in enc_main.flush():
        st.bytes["main"] += len(p.data)
        if recorder is not None:
            recorder.write(p)
    for sess in clip_sessions:
        clips_done.append(sess.finish())
    storage = None
    if recorder is not None or clip_maker is not None:
        storage = {}
    if clip_maker is not None:
        storage["clips"] = [{"event_id": c.event_id, "dir": str(c.dir), "segments": len(c.segments),
                             "start_pts_s": round(c.start_pts_s, 3), "end_pts_s": round(c.end_pts_s, 3),
                             "complete": c.complete, "errors": list(c.errors)} for c in clips_done]
    if recorder is not None:
        recorder.close()
        rows = sd_index.all()
        storage.update({"files": [r.path for r in rows], "frames": sum(r.frames for r in rows),
                        "dropped_packets": recorder.stats.dropped_packets, "errors": list(recorder.stats.errors)})
    wall = time.perf_counter() - wall0
    cpu_total = time.process_time() - cpu0
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _restore_threads(threads)

    # ---------------------------------------------------------------- score and report
    gt = scn.ground_truth(sc, cs.main_fps, W / H, sensor.sprite_aspects, cry_dur)
    gt = [g for g in gt if g.start_s < duration]
    ai_events = [e for e in events if e["service"] == "ai-detection"]
    accuracy = event_accuracy(ai_events, gt, duration)
    erle = None
    if talk_spans:
        # far-end-only samples (the canceller was adapted on the boot chime)
        idx = np.concatenate([np.arange(s, e) for s, e in talk_spans] + [np.zeros(0, int)])
        idx = idx[idx < audio_pos].astype(int)
        if idx.size:
            erle = round(erle_db(mic_rec[idx], aec_rec[idx]), 2)
    cpu_budget = {k: round(v / duration, 4) for k, v in sorted(budgets.cpu_s.items())}
    lat = {k: percentiles(v) for k, v in budgets.latency_ms.items()}
    ev_lat = lat.get("capture_to_event", {}).get("p95")
    raw_bytes = W * H * 2
    # buffers actually held: numpy buffers of the ISP (raw in, NV12 out, temporal state, the fast path's work
    # buffers), the encoders' native allocations (RSS growth while they were opened), the ring buffer's peak packet
    # bytes, the AI tensors (inputs, outputs, the manifest's peak activations), audio blocks and the cry window
    allocated = {
        "isp": isp.buffer_bytes(raw_bytes),
        "encoder": rss["encoder"],
        "ring_buffer": ring.peak_bytes,
        "ai_tensors": sum(m.input_bytes + m.output_bytes + int(m.bundle.manifest["cost"]["peak_activation_bytes"])
                          for m in models.values()),
        "audio": 4 * BLOCK * 2 + (cry_fe.cfg.window_samples * 4 * 2 if cry_fe else 0),
    }
    report = {
        "scenario": sc.name, "chip": chip, "duration_s": duration,
        "real_time_factor": round(duration / wall, 4) if wall > 0 else None,
        "event_latency_p95_ms": ev_lat,
        "ai_fps": round(st.ai_runs / duration, 3),
        "ai_fps_offered": round(st.ai_offered / duration, 3),
        "main_stream_fps": round(st.main_frames / duration, 3), "main_stream_height": H,
        "main_stream_width": W,
        "sub_stream_fps": round(st.sub_frames / duration, 3),
        "cpu_budget": cpu_budget, "cpu_budget_total": round(cpu_total / duration, 4),
        "cpu_budget_note": None if venc is None else "venc_async: the encoder thread's CPU falls inside the other "
                           "components' windows (process CPU time), so encode_main is not listed and the split "
                           "is approximate; cpu_budget_total is exact",
        "cpu_cores": os.cpu_count(), "wall_s": round(wall, 3),
        "real_time_factor_cpu": round((os.cpu_count() or 1) * duration / cpu_total, 4) if cpu_total > 0 else None,
        "load_average": {"start": load_start, "end": load_end},
        "threads": threads["report"],
        "latency_ms": lat, "latency_model": latency_model,
        "npu": npu.summary(duration),
        "memory": memory_table(allocated),
        "memory_method": {"isp": "nbytes of raw + NV12 outputs + temporal state + fast-path work buffers",
                          "encoder": "RSS growth while the encoders were opened (/proc/self/statm)",
                          "ring_buffer": "peak packet bytes held", "ai_tensors": "input + output tensors + "
                          "manifest cost.peak_activation_bytes", "audio": "DSP blocks + cry window buffers"},
        "flash": flash_use([m.bundle.root for m in models.values()], chip_profile),
        "accuracy": accuracy,
        "ground_truth": [{"label": g.label, "start_s": round(g.start_s, 3), "end_s": round(g.end_s, 3),
                          "source": g.source} for g in gt],
        "audio": {"erle_db": erle, "talkback_s": round(sum(e - s for s, e in talk_spans) / 16000, 3),
                  "opus_bytes": st.bytes["audio"], "speech_blocks": audio.speech_blocks,
                  "cry_windows": st.cry_windows, "cry_scores": cry_scores},
        "streams": {"main_bytes": st.bytes["main"], "sub_bytes": st.bytes["sub"],
                    "main_kbps": round(8 * st.bytes["main"] / duration / 1000, 1),
                    "sub_kbps": round(8 * st.bytes["sub"] / duration / 1000, 1),
                    "snapshots": st.snapshots, "jpeg_bytes": st.bytes["jpeg"], "clips": st.clips},
        "ai": {"offered": st.ai_offered, "gated_by_motion": st.ai_gated, "runs": st.ai_runs,
               "dropped": st.ai_dropped, "bundles": {t: str(m.bundle.root) for t, m in models.items()}},
        "day_night": {"switches": ircut.switches},
        "storage": storage,
        "events": events,
        "config": {"report_bounds": [list(b) for b in cs.report_bounds], "main_size": list(cs.main_size), "main_fps": cs.main_fps, "sub_size": list(cs.sub_size),
                   "sub_fps": cs.sub_fps, "ai_fps": cs.ai_fps, "clock": cs.clock, "timing": cs.timing, "isp_fast": isp.fast,
                   "main_codec": cs.main_codec, "sub_codec": cs.sub_codec, "venc_async": cs.venc_async},
    }
    if write:
        write_report(report, {"latency_ms": dict(budgets.latency_ms), "timeline": timeline}, Path(out_dir))
        (Path(out_dir) / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return report
