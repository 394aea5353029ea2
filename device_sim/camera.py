"""The camera's composition root: builds the media pipeline from its settings and runs a scenario through it.

Nothing else in device_sim wires subsystems together. :class:`Camera` builds the elements of
:mod:`device_sim.pipeline.elements` (sensor, ISP + 3A, H.265/H.264/JPEG encoders, ring buffer, recorder, clip maker,
AI scheduler, event router, uplink, audio chain) and joins them with bounded queues (:mod:`device_sim.pipeline.core`);
the composition is the diagram in its docstring. Per frame: the microphone's 10 ms blocks go through AEC/NS/AGC into
Opus and the cry model; the sensor renders a raw frame at the exposure/gain the AE set after the previous frame; the
ISP makes NV12 main + sub (privacy-masked); the main stream is encoded every frame, the substream at its own rate,
the detector at ``ai_fps`` while the motion gate is open; events are debounced and stamped with the capture time of
their frame. With the simulated clock the elements run serially in that order (a fixed seed gives the same events)
and every hop's time is ``capture time + measured host time`` of the hops before it (the NPU's time comes from its
model, not from onnxruntime on the host); with the real-time clock each element runs on its own thread, paced by the
sensor, and a stage that cannot keep up drops buffers at its queue (counted per stage in the report's ``pipeline``).
``run_scenario`` is the entry point (``python -m device_sim run`` and ``make demo`` call it). The sensor is read out
at the main stream's size (a 1280x720 main stream uses the sensor's binned 720p readout mode, so the ISP never
processes pixels the streams do not carry), and the libraries' thread pools are sized for the host's cores while the
camera runs (:func:`_thread_budget`).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
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
    # how the elements run: "serial" (one thread, in the former loop's order), "threaded" (one worker per element,
    # bounded queues between them), "auto": serial on the simulated clock, threaded on the real-time clock
    pipeline: str = "auto"
    # threaded pipeline: nice increment of the main-stream VENC (its worker and x265's threads), so the ISP, AI and
    # audio keep the cores first and the main stream drops frames (counted) instead of delaying events. Default 0:
    # on a host shared with other niced jobs a niced encoder starves (measured 0.9 vs 3.6 fps at load 5)
    venc_nice: int = 0

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
        if self.pipeline not in ("auto", "serial", "threaded"):
            raise ValueError(f"pipeline must be 'auto', 'serial' or 'threaded', got {self.pipeline!r}")


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


class Camera:
    """The simulated camera as a media pipeline, built from its settings; ``run()`` streams the scenario once.

    Composition (device_sim.pipeline.elements; queue capacity and policy in brackets)::

        SensorSource ──raw [2, drop newest]──► IspNode ──main [2, drop newest]──► Encoder main (H.265) ─┐
          ▲ AE/IR-cut of the previous frame      │ ──sub [2, drop newest]──► Encoder sub (H.264)        │ packets
          └──────────────────────────────────────┤ ──sub [1, drop oldest]──► AiScheduler ──┐            ▼
                                                  └─ night-mode event ───────────────────►  EventRouter  RingBuffer
        AudioChain (AEC/NS/AGC, Opus, cry model) ─ opus packets ─────────────────────────────────┼──────► [64, block]
                                                 └─ cry event ─────────────────────────────►  [256, block]  │  │
        EventRouter ─► Uplink (on_event: MQTT notify) · Encoder JPEG (snapshot) · clip request ─► RingBuffer  │  │
        RingBuffer ─► Recorder (TF card, ``record_sd``) · ClipMaker (HLS clips, ``clips_dir``) ◄──────────────┘──┘

    ``settings.pipeline``: ``serial`` runs the elements on one thread in the former loop's order (the simulated
    clock's default: a fixed seed gives the same events), ``threaded`` one worker per element (the real-time
    clock's default). Everything is validated before the first frame (scenario files, bundles, chip).
    """

    def __init__(self, bundles, scenario, chip: str, *, settings: CameraSettings | None = None, data_root=None,
                 duration_s: float | None = None, record_sd=None, sd_capacity_bytes: int = 1 << 30, on_event=None,
                 clips_dir=None):
        from device_sim import scenario as scn
        from device_sim.ai.cry import CryFrontEnd
        from device_sim.ai.motion import MotionDetector
        from device_sim.ai.scheduler import Scheduler, load_models
        from device_sim.budgets import Budgets
        from device_sim.hal.ircut import IrCutHAL
        from device_sim.hal.npu import NpuModel
        from device_sim.hal.sensor import SensorHAL, SensorSpec
        from device_sim.media.encoder import StreamConfig, VideoEncoder
        from device_sim.media.isp import IspAdapter
        from device_sim.media.ringbuffer import RingBuffer
        from device_sim.pipeline import elements as el
        from device_sim.spec.events import EventDebouncer

        cs = self.settings = settings or CameraSettings()
        # ------------------------------------------------------------ validate everything before the run
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
        self.chip, self.chip_profile = chip, load_chip(chip)
        if not bundles:
            raise InputFileError("no --bundle given")
        self.rss = {"start": _rss()}
        self.models = load_models(list(bundles), chip)
        self.rss["ai"] = _rss() - self.rss["start"]
        det, cry = self.models.get("detection"), self.models.get("cry")
        self.sc, self.duration = sc, float(duration_s or sc.duration_s)
        self.threaded = cs.pipeline == "threaded" or (cs.pipeline == "auto" and cs.clock == "real")

        # ------------------------------------------------------------ hardware and media blocks
        W, H = cs.main_size
        self.hw = SOC_MEDIA_PIXEL_RATE.get(chip) if cs.timing == "device" else None
        self.budgets = Budgets()
        self.sensor = SensorHAL(sc, root, SensorSpec(width=W, height=H), seed=sc.seed)
        self.ircut = IrCutHAL()
        r0 = _rss()
        self.isp = IspAdapter(main_size=cs.main_size, sub_size=cs.sub_size,
                              privacy_polygons=[z.polygon for z in sc.zones if z.kind == "privacy"])
        self.rss["isp_init"] = _rss() - r0
        r0 = _rss()
        from camlab.isp.three_a.daynight import DayNightController
        from device_sim.pipeline.core import thread_ids
        self.daynight = DayNightController(t0_s=0.0)
        self.ircut.led_equiv_lux = self.daynight.p.ir_led_level
        tids = thread_ids()
        # threaded pipeline: x265 gets one thread (pools=1). Its WPP pool over both cores costs ~50 % more CPU per
        # 1080p frame (measured 47-68 vs 44 ms here) for lower latency, and the other elements need those cycles
        venc_threads_n = cs.encoder_threads or (1 if self.threaded else 0)
        self.enc_main = VideoEncoder(StreamConfig("main", cs.main_codec, W, H, cs.main_fps, cs.main_bitrate,
                                                  gop=int(2 * cs.main_fps), threads=venc_threads_n))
        venc_threads = thread_ids() - tids
        self.enc_sub = VideoEncoder(StreamConfig("sub", cs.sub_codec, cs.sub_size[0], cs.sub_size[1], cs.sub_fps,
                                                 cs.sub_bitrate, gop=int(2 * cs.sub_fps), threads=cs.encoder_threads))
        self.rss["encoder"] = _rss() - r0
        self.ring = RingBuffer(cs.ring_seconds)
        self.sd_recorder = self.sd_index = self.clip_maker = None
        if record_sd is not None:
            from device_sim.hal.sdcard import SdCard
            from device_sim.storage.index import Index
            from device_sim.storage.recorder import Recorder
            card = SdCard(Path(record_sd), sd_capacity_bytes)
            self.sd_index = Index(card.mount_point / ".index" / "index.db")
            # wall clock of pts 0: a fixed epoch (2025-11-22T00:00:00Z) keeps recordings reproducible
            self.sd_recorder = Recorder(card, self.sd_index, info=self.enc_main.info, epoch_base=1_763_769_600.0)
        if clips_dir is not None:
            from device_sim.storage.clips import ClipMaker
            from device_sim.storage.crypto import UserKey
            self.clip_maker = ClipMaker(Path(clips_dir), UserKey(np.random.default_rng(sc.seed + 9).bytes(16)),
                                        pre_roll_s=5.0, post_roll_s=5.0, segment_s=4.0, infos=[self.enc_main.info])
        mic, echo, ref_pcm = self._boot_audio(root)
        self.npu = NpuModel(chip, max_queue=cs.npu_max_queue)
        sched = Scheduler(self.models, self.npu)
        self.motion = MotionDetector()
        self.cry_fe = CryFrontEnd(cry.bundle.features, cry.bundle.decode, str(cry.bundle.root)) if cry else None
        self.timeline = {"t": [], "lux": [], "exposure_ms": [], "gain": [], "night": []}
        n_frames = int(round(self.duration * cs.main_fps))
        control = {"exposure": 1 / 60, "gain": 1.0}          # AE registers, latched at frame start
        # boot: linearise the scene in both filter states and compile the ISP kernels before the clock starts
        self.sensor.scene_linear(0.0, True)
        r0 = _rss()
        self.isp.warm_up(self.sensor.capture(0.0, scn.lux_at(sc, 0.0), control["exposure"], control["gain"]))
        self.rss["isp"] = self.rss["isp_init"] + max(0, _rss() - r0)

        # ------------------------------------------------------------ the pipeline
        from device_sim.clock import make_clock
        from device_sim.pipeline.core import SerialRunner, ThreadedRunner
        self.clock = make_clock(cs.clock)    # the clock's zero is set again in run(): the sensor starts streaming
        ctx = self.ctx = el.Context(self.clock, self.budgets, self.hw,
                                    ThreadedRunner.cpu_time if self.threaded else SerialRunner.cpu_time,
                                    self.threaded)
        npu_lock = threading.Lock()          # one NPU: detector and cry jobs are submitted one at a time
        self.src = el.SensorSource(ctx, self.sensor, sc, self.ircut, self.daynight.p, control, cs.main_fps, n_frames)
        self.isp_node = el.IspNode(ctx, self.isp, self.daynight, self.ircut, control, cs.main_size, cs.sub_fps,
                                   cs.ai_fps if det is not None else None, self.timeline)
        self.main = el.Encoder(ctx, "main", self.enc_main, cs.main_size, "encode_main", "capture_to_encode",
                               one_in_flight=cs.venc_async and not self.threaded, nice=cs.venc_nice,
                               library_threads=venc_threads)
        self.sub = el.Encoder(ctx, "sub", self.enc_sub, cs.sub_size, "encode_sub", "capture_to_sub_encode")
        self.jpeg = el.JpegEncoder(ctx, cs.snapshot_quality)
        self.ring_node = el.RingBuffer(ctx, self.ring, cs.ring_seconds)
        self.recorder = el.Recorder(ctx, self.sd_recorder) if self.sd_recorder is not None else None
        self.clips = el.ClipMaker(ctx, self.clip_maker, self.enc_main.info) if self.clip_maker is not None else None
        self.ai = el.AiScheduler(ctx, det, sched, npu_lock, self.motion, EventDebouncer(),
                                 [z for z in sc.zones if z.kind == "detect"], cs.motion_gate, cs.sub_size[1])
        self.router = el.EventRouter(ctx)
        self.uplink = el.Uplink(ctx, on_event)
        self.audio_node = el.AudioChain(ctx, mic, echo, ref_pcm, self.audio, self.cry_fe, sched, npu_lock,
                                        self.n_audio, self.recs)
        # links
        self.src.isp = self.isp_node
        self.isp_node.enc_main, self.isp_node.enc_sub, self.isp_node.ai = self.main, self.sub, self.ai
        self.isp_node.router = self.ai.router = self.audio_node.router = self.router
        self.main.downstream = self.audio_node.ring = self.router.ring = self.ring_node
        self.ring_node.recorder, self.ring_node.clips = self.recorder, self.clips
        self.router.uplink, self.router.jpeg = self.uplink, self.jpeg
        # upstream first: the order end-of-stream travels in
        self.workers = [e for e in (self.isp_node, self.main, self.sub, self.ai, self.router, self.uplink,
                                    self.jpeg, self.ring_node, self.recorder, self.clips) if e is not None]

    def _boot_audio(self, root: Path):
        """Microphone and speaker signals of the whole run; the boot chime converges the AEC before streaming."""
        from device_sim.hal.mic import MicHAL
        from device_sim.hal.speaker import SpeakerHAL
        from device_sim.media.audio import BLOCK, AudioChain, AudioChainConfig
        sc, cs = self.sc, self.settings
        n = self.n_audio = int(round(self.duration * 16000))
        near, talk, self.talk_spans, self.cry_dur = _build_audio(sc, root, n, sc.seed)
        speaker = SpeakerHAL(seed=sc.seed)
        emitted = speaker.play(talk) if talk.any() else np.zeros(n)
        echo = speaker.echo(emitted) if talk.any() else np.zeros(n)
        mic = MicHAL(near, seed=sc.seed)
        r0 = _rss()
        self.audio = AudioChain(AudioChainConfig(aec=cs.talkback_aec))
        self.rss["audio"] = _rss() - r0
        ref_pcm = (np.clip(emitted, -1, 32767 / 32768) * 32768).astype(np.int16)
        chime = speaker.play(np.random.default_rng(sc.seed + 5).standard_normal(32000) * 0.1)
        chime_mic = MicHAL(np.zeros(32000), seed=sc.seed + 6)
        chime_echo = speaker.echo(chime)
        chime_ref = (np.clip(chime, -1, 32767 / 32768) * 32768).astype(np.int16)
        self.audio.prime((chime_mic.read(i, BLOCK, chime_echo[i:i + BLOCK]) for i in range(0, 32000, BLOCK)),
                         (chime_ref[i:i + BLOCK] for i in range(0, 32000, BLOCK)))
        self.recs = {k: np.zeros(n, np.int16) for k in ("mic", "aec", "clean")}
        return mic, echo, ref_pcm

    # ---------------------------------------------------------------------------------------------------- run
    def run(self) -> dict:
        """Stream the scenario once (boot is done); returns the report dict."""
        from device_sim.clock import make_clock
        from device_sim.pipeline.core import SerialRunner, ThreadedRunner, renice, threads_cpu_s
        cs = self.settings
        threads = _thread_budget()
        self.ctx.clock = self.clock = make_clock(cs.clock)      # the sensor starts streaming now
        self.load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            if self.threaded:
                runner = ThreadedRunner(self.workers, self.clock.now)
                self.src.runner = self.audio_node.runner = runner
                x265_cpu0 = threads_cpu_s(self.main.library_threads)
                runner.start(self.workers)
                if self.main.nice:
                    runner.niced["x265_pool"] = renice(self.main.library_threads, self.main.nice)
                audio = threading.Thread(target=self.audio_node.stream, name="cam-audio", daemon=True)
                audio.start()
                self.src.stream()
                audio.join()
                runner.stop(self.workers)
                threads["report"]["niced_threads"] = dict(runner.niced)
                self.library_cpu = {"x265_pool": threads_cpu_s(self.main.library_threads) - x265_cpu0}
                if runner.errors:
                    name, exc = runner.errors[0]
                    raise exc
            else:
                runner = SerialRunner([self.src, self.audio_node, *self.workers])
                fps = cs.main_fps
                for k in range(self.src.n_frames):
                    if not self.clock.simulated:
                        self.clock.sleep_until(k / fps)
                    runner.push(self.audio_node, min(self.n_audio, int(round((k + 1) / fps * 16000))))
                    runner.push(self.src, k)
                if not self.clock.simulated:
                    self.clock.sleep_until(self.duration)  # the last frame period ends at ``duration``
                for e in self.workers:
                    runner.finish(e)
        finally:
            _restore_threads(threads)
        self.wall = time.perf_counter() - wall0
        self.cpu_total = time.process_time() - cpu0
        self.threads = threads
        return self.report()

    # ---------------------------------------------------------------------------------------------------- report
    def pipeline_figures(self) -> dict:
        """Per stage: buffers handled, drops, CPU (core-s per simulated s), queue depth; queue depth over time."""
        d = self.duration
        stages, depth = {}, {}
        for e in (self.src, self.audio_node, *self.workers):
            s = e.stats()
            s["cpu_per_s"] = round(e.cpu_s / d, 4)
            s["dropped"] = s.get("queue", {}).get("dropped", 0)
            stages[e.name] = s
            if e.inbox is not None and e.inbox.depth_samples:
                smp = e.inbox.depth_samples
                step = max(1, len(smp) // 400)
                depth[e.name] = [[round(t, 3), n] for t, n in smp[::step]]
        stages["sensor"].update({"late_frames_skipped": self.src.late, "dropped": self.src.late})
        library = None
        if self.threaded:
            # CPU outside the elements' own threads: x265's WPP pool (its thread ids are known), and the rest of the
            # process (numba's OpenMP team of the ISP/sensor kernels, the main thread, library pools)
            x265 = getattr(self, "library_cpu", {}).get("x265_pool", 0.0)
            own = sum(e.cpu_s for e in (self.src, self.audio_node, *self.workers))
            library = {"x265_pool_of_encode_main": round(x265 / d, 4),
                       "other_threads": round(max(0.0, self.cpu_total - own - x265) / d, 4)}
        ratio = getattr(self, "frame_rate_ratio", None)
        return {"runner": "threaded" if self.threaded else "serial", "stages": stages,
                "frame_rate_ratio": None if ratio is None else round(ratio, 4),
                "library_cpu_per_s": library,
                "drops": {k: v["dropped"] for k, v in stages.items()},
                "queue_depth": depth,
                "cpu_method": "thread_time of each element's worker (library pools -- numba OpenMP, x265 WPP -- "
                              "are in cpu_budget_total only)" if self.threaded else
                              "process_time while the element ran (one element at a time)"}

    def report(self) -> dict:
        from device_sim import scenario as scn
        from device_sim.budgets.report import event_accuracy, flash_use, memory_table, percentiles
        from device_sim.media.audio import BLOCK, erle_db
        cs, st, duration = self.settings, self.ctx.counters, self.duration
        W, H = cs.main_size
        load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        events = self.router.events
        gt = scn.ground_truth(self.sc, cs.main_fps, W / H, self.sensor.sprite_aspects, self.cry_dur)
        gt = [g for g in gt if g.start_s < duration]
        ai_events = [e for e in events if e["service"] == "ai-detection"]
        accuracy = event_accuracy(ai_events, gt, duration)
        erle = None
        audio_pos = self.audio_node.pos
        if self.talk_spans:
            # far-end-only samples (the canceller was adapted on the boot chime)
            idx = np.concatenate([np.arange(s, e) for s, e in self.talk_spans] + [np.zeros(0, int)])
            idx = idx[idx < audio_pos].astype(int)
            if idx.size:
                erle = round(erle_db(self.recs["mic"][idx], self.recs["aec"][idx]), 2)
        storage = None
        if self.recorder is not None or self.clips is not None:
            storage = {}
        if self.clips is not None:
            storage["clips"] = [{"event_id": c.event_id, "dir": str(c.dir), "segments": len(c.segments),
                                 "start_pts_s": round(c.start_pts_s, 3), "end_pts_s": round(c.end_pts_s, 3),
                                 "complete": c.complete, "errors": list(c.errors)} for c in self.clips.done]
        if self.recorder is not None:
            rows = self.sd_index.all()
            storage.update({"files": [r.path for r in rows], "frames": sum(r.frames for r in rows),
                            "dropped_packets": self.sd_recorder.stats.dropped_packets,
                            "errors": list(self.sd_recorder.stats.errors)})
        cpu_budget = {k: round(v / duration, 4) for k, v in sorted(self.budgets.cpu_s.items())}
        lat = {k: percentiles(v) for k, v in self.budgets.latency_ms.items()}
        ev_lat = lat.get("capture_to_event", {}).get("p95")
        rtf, rtf_note = self._real_time_factor()
        allocated = {
            "isp": self.isp.buffer_bytes(W * H * 2),
            "encoder": self.rss["encoder"],
            "ring_buffer": self.ring.peak_bytes,
            "ai_tensors": sum(m.input_bytes + m.output_bytes + int(m.bundle.manifest["cost"]["peak_activation_bytes"])
                              for m in self.models.values()),
            "audio": 4 * BLOCK * 2 + (self.cry_fe.cfg.window_samples * 4 * 2 if self.cry_fe else 0),
        }
        async_note = ("venc_async: the encoder thread's CPU falls inside the other components' windows (process "
                      "CPU time), so encode_main is not listed and the split is approximate; cpu_budget_total is "
                      "exact") if cs.venc_async and not self.threaded else None
        if self.threaded:
            async_note = ("threaded pipeline: each component's CPU is the thread time of its worker; library "
                          "thread pools (numba OpenMP, x265 WPP) are counted in cpu_budget_total only")
        return {
            "scenario": self.sc.name, "chip": self.chip, "duration_s": duration,
            "real_time_factor": rtf, "real_time_factor_note": rtf_note,
            "real_clock": 0 if self.clock.simulated else 1,   # 0: the wall rate above is the simulator's speed
            "event_latency_p95_ms": ev_lat,
            "ai_fps": round(st.ai_runs / duration, 3),
            "ai_fps_offered": round(st.ai_offered / duration, 3),
            "main_stream_fps": round(st.main_frames / duration, 3), "main_stream_height": H,
            "main_stream_width": W,
            "sub_stream_fps": round(st.sub_frames / duration, 3),
            "cpu_budget": cpu_budget, "cpu_budget_total": round(self.cpu_total / duration, 4),
            "cpu_budget_note": async_note,
            "cpu_cores": os.cpu_count(), "wall_s": round(self.wall, 3),
            "real_time_factor_cpu": round((os.cpu_count() or 1) * duration / self.cpu_total, 4)
            if self.cpu_total > 0 else None,
            "load_average": {"start": self.load_start, "end": load_end},
            "threads": self.threads["report"],
            "latency_ms": lat,
            "latency_model": ("device: ISP/VENC at the SoC's hardware pixel rate, NPU from the manifest cost, CPU "
                              "hops measured on the host" if self.hw else "host: every hop measured on the host, "
                              "NPU modelled") if self.clock.simulated else
                             "real clock: every hop is the camera clock when it finished (NPU work on the host)",
            "npu": self.npu.summary(duration),
            "pipeline": self.pipeline_figures(),
            "memory": memory_table(allocated),
            "memory_method": {"isp": "nbytes of raw + NV12 outputs + temporal state + fast-path work buffers",
                              "encoder": "RSS growth while the encoders were opened (/proc/self/statm)",
                              "ring_buffer": "peak packet bytes held", "ai_tensors": "input + output tensors + "
                              "manifest cost.peak_activation_bytes", "audio": "DSP blocks + cry window buffers"},
            "flash": flash_use([m.bundle.root for m in self.models.values()], self.chip_profile),
            "accuracy": accuracy,
            "ground_truth": [{"label": g.label, "start_s": round(g.start_s, 3), "end_s": round(g.end_s, 3),
                              "source": g.source} for g in gt],
            "audio": {"erle_db": erle, "talkback_s": round(sum(e - s for s, e in self.talk_spans) / 16000, 3),
                      "opus_bytes": st.bytes["audio"], "speech_blocks": self.audio.speech_blocks,
                      "cry_windows": st.cry_windows, "cry_scores": self.audio_node.cry_scores},
            "streams": {"main_bytes": st.bytes["main"], "sub_bytes": st.bytes["sub"],
                        "main_kbps": round(8 * st.bytes["main"] / duration / 1000, 1),
                        "sub_kbps": round(8 * st.bytes["sub"] / duration / 1000, 1),
                        "snapshots": st.snapshots, "jpeg_bytes": st.bytes["jpeg"], "clips": st.clips},
            "ai": {"offered": st.ai_offered, "gated_by_motion": st.ai_gated, "runs": st.ai_runs,
                   "dropped": st.ai_dropped, "bundles": {t: str(m.bundle.root) for t, m in self.models.items()}},
            "day_night": {"switches": self.ircut.switches},
            "storage": storage,
            "events": events,
            "config": {"report_bounds": [list(b) for b in cs.report_bounds], "main_size": list(cs.main_size),
                       "main_fps": cs.main_fps, "sub_size": list(cs.sub_size), "sub_fps": cs.sub_fps,
                       "ai_fps": cs.ai_fps, "clock": cs.clock, "timing": cs.timing, "isp_fast": self.isp.fast,
                       "main_codec": cs.main_codec, "sub_codec": cs.sub_codec, "venc_async": cs.venc_async,
                       "pipeline": "threaded" if self.threaded else "serial"},
        }

    def _real_time_factor(self) -> tuple[float | None, str]:
        """Simulated clock: simulated s per host wall s. Real clock: the rate frames left the main encoder over
        the rate the sensor delivered them -- (frames out / fps) / (first to last frame out + one period); 1.0
        when the camera keeps up, below when it falls behind or drops main-stream frames."""
        if self.clock.simulated:
            return (round(self.duration / self.wall, 4) if self.wall > 0 else None,
                    "simulated seconds per host wall second of the whole run")
        out = sorted(self.ctx.frames_out)
        fps = self.settings.main_fps
        if len(out) < 2:
            return 0.0, "real clock: fewer than two main-stream frames came out"
        rate = self.frame_rate_ratio = (len(out) / fps) / (out[-1] - out[0] + 1.0 / fps)
        return (round(min(1.0, rate), 4),
                f"real clock: (main frames encoded / fps) / (first to last frame out of the encoder + one frame "
                f"period), {rate:.4f} measured, capped at 1 (a camera cannot run ahead of its sensor: above 1 is "
                f"the jitter of the first and last frame's latency); 1.0 = kept up, below = fell behind or dropped "
                f"main-stream frames; wall_s is the whole run including the end-of-stream flush")


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
    from device_sim.budgets.report import write_report
    cam = Camera(bundles, scenario, chip, settings=settings, data_root=data_root, duration_s=duration_s,
                 record_sd=record_sd, sd_capacity_bytes=sd_capacity_bytes, on_event=on_event, clips_dir=clips_dir)
    report = cam.run()
    if write:
        write_report(report, {"latency_ms": dict(cam.budgets.latency_ms), "timeline": cam.timeline}, Path(out_dir))
        (Path(out_dir) / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in report["events"]))
    return report
