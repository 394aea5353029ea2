"""The camera's elements, one job each, in the order a frame meets them.

``SensorSource`` (raw at the AE's exposure/gain) -> ``IspNode`` (NV12 main + sub, 3A, day/night) -> ``Encoder``
(H.265 main, H.264 sub) -> ``RingBuffer`` (pre-event packets) -> ``Recorder`` (TF card) / ``ClipMaker`` (HLS clips);
the substream -> ``AiScheduler`` (motion gate, detector on the NPU) -> ``EventRouter`` -> ``Uplink`` (the MQTT
notifier), ``Encoder`` (JPEG snapshot) and a clip request to the ring buffer; the microphone -> ``AudioChain``
(AEC/NS/AGC, Opus into the ring buffer, cry model on the NPU) -> ``EventRouter``. Buffers carry the capture time
of the frame or audio window they came from; every hop stamps ``capture -> now`` into :class:`Context`'s budgets.

Timing: with the simulated clock a hop's time is ``capture time + modelled or measured cost`` (as before, see
device_sim.camera); with the real-time clock it is the camera clock when the hop finished.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from device_sim.pipeline.core import Element, charge


# --------------------------------------------------------------------------------------------------- buffers
@dataclass
class RawFrame:
    index: int
    capture_s: float
    raw: object
    ir_mode: bool
    lux: float


@dataclass
class Frame:
    """ISP output of one capture: NV12 main + sub, and when the ISP finished (camera clock)."""
    index: int
    capture_s: float
    t_isp: float
    main_nv12: np.ndarray
    sub_nv12: np.ndarray


@dataclass
class SubFrame:
    frame: Frame
    ai_due: bool


@dataclass
class Packets:
    """Encoded packets of one frame (or audio block); ``flush``: the encoder's end-of-stream output."""
    stream: str
    packets: list
    capture_s: float
    t_done: float
    flush: bool = False


@dataclass
class Event:
    """An event dict as published, and the unrounded time its media (snapshot, clip) refers to."""
    event: dict
    media_t: float


@dataclass
class ClipRequest:
    event: dict
    media_t: float


@dataclass
class ClipStart:
    event: dict
    packets: list


@dataclass
class Counters:
    """Stream/AI counters of the run; each key is written by one element only."""
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


class Context:
    """What every element shares: the clock, the budgets (latency stamps, CPU), counters, the SoC timing model."""

    def __init__(self, clock, budgets, hw_rates: dict | None, cpu_time, threaded: bool):
        self.clock, self.budgets, self.hw, self.threaded = clock, budgets, hw_rates, threaded
        self.counters = Counters()
        self._cpu_time = cpu_time
        self._lock = threading.Lock()
        self.frames_out: list[float] = []          # camera clock when each main frame left its encoder
        self.motion_reset = threading.Event()      # ISP -> AI: an AE step or IR switch is not motion

    @property
    def sim(self) -> bool:
        return self.clock.simulated

    def cpu(self, component: str):
        """CPU of a component: process time on one thread (as before), thread time under the threaded runner."""
        if not self.threaded:
            return self.budgets.cpu(component)
        return charge(self.budgets.cpu_s, component, self._cpu_time, self._lock)

    def hw_time(self, kind: str, pixels: int, measured_s: float) -> float:
        return pixels / self.hw[kind] if self.hw else measured_s

    def at(self, t_sim: float) -> float:
        """A hop's time: ``t_sim`` on the simulated clock, now on the real one."""
        return t_sim if self.clock.simulated else self.clock.now()

    def stamp(self, hop: str, capture_s: float, t_s: float) -> None:
        with self._lock:
            self.budgets.stamp(hop, capture_s, t_s)


# --------------------------------------------------------------------------------------------------- video
class SensorSource(Element):
    """The image sensor: renders frame ``k`` at the exposure/gain latched from the AE and the IR-cut state."""

    def __init__(self, ctx: Context, sensor, scenario, ircut, daynight_params, control: dict, fps: float,
                 n_frames: int):
        super().__init__("sensor")
        self.ctx, self.sensor, self.sc, self.ircut, self.p = ctx, sensor, scenario, ircut, daynight_params
        self.control, self.fps, self.n_frames = control, fps, n_frames
        self.isp: Element | None = None
        self.late = 0           # real clock: frames whose readout time had passed (the sensor overwrote them)
        self.refused = 0        # the ISP's inbox was full (no free VI buffer): the frame is not read out

    def handle(self, k: int) -> None:
        from device_sim.scenario import lux_at
        t = k / self.fps
        lux = lux_at(self.sc, t)
        ir_mode = self.ircut.night
        with self.ctx.cpu("sensor_model"):
            eff_lux = lux * self.p.ir_passband_gain if ir_mode else lux
            raw = self.sensor.capture(t, eff_lux, self.control["exposure"], self.control["gain"], ir_mode=ir_mode,
                                      ir_lux=self.ircut.ir_lux)
        if not self.push(self.isp, RawFrame(k, t, raw, ir_mode, lux)):
            self.refused += 1

    def stream(self) -> None:
        """Real clock: read out every frame at its time; a frame already more than a period late is skipped."""
        for k in range(self.n_frames):
            t = k / self.fps
            self.ctx.clock.sleep_until(t)
            if self.ctx.clock.now() - t > 1.0 / self.fps:
                self.late += 1
                continue
            inbox = self.isp.inbox
            if inbox is not None and len(inbox) >= inbox.capacity:
                self.refused += 1
                inbox.dropped += 1
                continue
            self.runner.call(self, self.handle, k)


class IspNode(Element):
    """ISP + 3A: NV12 main and sub, AE for the next frame, day/night (IR-cut), sub/AI frame selection."""

    # one raw frame waits while the ISP works on another; the sensor skips a readout when it is taken (VI drop)
    capacity, policy = 1, "drop_newest"

    def __init__(self, ctx: Context, isp, daynight, ircut, control: dict, main_size, sub_fps: float,
                 ai_fps: float | None, timeline: dict):
        super().__init__("isp")
        self.ctx, self.isp, self.daynight, self.ircut, self.control = ctx, isp, daynight, ircut, control
        self.pixels = main_size[0] * main_size[1]
        self.sub_fps, self.ai_fps, self.timeline = sub_fps, ai_fps, timeline
        self.next_sub_t = 0.0
        self.next_ai_t = 0.0
        self.enc_main = self.enc_sub = self.ai = self.router = None

    def handle(self, f: RawFrame) -> None:
        from device_sim.spec.events import make_event
        ctx, t = self.ctx, f.capture_s
        with ctx.cpu("isp"):
            c0 = time.perf_counter()
            out = self.isp.run(f.raw, f.ir_mode)
            isp_s = time.perf_counter() - c0
        t_isp = ctx.at(t + ctx.hw_time("isp", self.pixels, isp_s))
        ctx.stamp("capture_to_isp", t, t_isp)
        ae = out.stats.get("ae", {})
        prev_total = self.control["exposure"] * self.control["gain"]
        self.control["exposure"] = float(ae.get("exposure_s", self.control["exposure"]))
        self.control["gain"] = float(ae.get("analog_gain", self.control["gain"]))  # the ISP applies digital gain
        if abs(np.log((self.control["exposure"] * self.control["gain"]) / prev_total)) > 0.15:
            ctx.motion_reset.set()                       # an AE step is not motion
        brightness = out.stats.get("brightness")
        if brightness is not None and np.isfinite(brightness):
            dec = self.daynight.update(t, float(brightness))
            if self.ircut.set_night(dec.mode == "night", t):
                self.isp.carry_ae(f.ir_mode, dec.mode == "night")
                ctx.motion_reset.set()
                ev = make_event("camera-control", "night-mode-changed", t, t_isp, night=dec.mode == "night")
                self.router.last_event = ev
                self.push(self.router, Event(ev, t))
        tl = self.timeline
        tl["t"].append(t)
        tl["lux"].append(max(f.lux, 1e-3))
        tl["exposure_ms"].append(1000 * self.control["exposure"])
        tl["gain"].append(self.control["gain"])
        tl["night"].append(int(self.ircut.night))
        frame = Frame(f.index, t, t_isp, out.main_nv12, out.sub_nv12)
        self.router.latest_main = out.main_nv12          # the snapshot channel (VPSS) holds the newest picture
        self.push(self.enc_main, frame)
        if t + 1e-9 >= self.next_sub_t:
            self.next_sub_t += 1.0 / self.sub_fps
            ai_due = self.ai_fps is not None and t + 1e-9 >= self.next_ai_t
            if ai_due:
                self.next_ai_t += 1.0 / self.ai_fps
            self.push(self.enc_sub, frame)
            self.push(self.ai, SubFrame(frame, ai_due))


class Encoder(Element):
    """VENC channel: NV12 in, packets (pts = capture time) out. ``one_in_flight``: the serial runner's SoC model
    of a VENC beside the ISP (frame k encodes on a helper thread while frame k+1 is rendered and processed)."""

    capacity, policy = 2, "drop_newest"

    def __init__(self, ctx: Context, name: str, encoder, size, budget: str, hop: str, one_in_flight: bool = False,
                 nice: int = 0, library_threads: set | None = None):
        super().__init__(f"encode_{name}")
        self.nice = nice
        self.library_threads = library_threads or set()     # the codec's own worker threads (x265 WPP pool)
        self.ctx, self.stream, self.enc, self.budget, self.hop = ctx, name, encoder, budget, hop
        self.pixels = size[0] * size[1]
        self.downstream: Element | None = None     # main: the ring buffer; sub: counted only
        self._pool = None
        self._pending = None
        if one_in_flight:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="venc")

    def handle(self, frame: Frame) -> None:
        nv12 = frame.main_nv12 if self.stream == "main" else frame.sub_nv12
        if self._pool is None:
            with self.ctx.cpu(self.budget):
                self._deliver(*self._encode(nv12, frame))
            return
        if self._pending is not None:
            self._deliver(*self._pending.result())
        self._pending = self._pool.submit(self._encode, nv12, frame)

    def _encode(self, nv12, frame: Frame):
        c0 = time.perf_counter()
        pkts = self.enc.encode(nv12, frame.capture_s)
        return pkts, frame, time.perf_counter() - c0, (None if self.ctx.sim else self.ctx.clock.now())

    def _deliver(self, pkts, frame: Frame, enc_s: float, t_real) -> None:
        ctx = self.ctx
        t_enc = (frame.t_isp + ctx.hw_time("venc", self.pixels, enc_s)) if t_real is None else t_real
        if self.stream == "main":
            ctx.counters.main_frames += 1
            self.push(self.downstream, Packets("main", pkts, frame.capture_s, t_enc))
            ctx.frames_out.append(t_enc if t_real is not None else frame.capture_s)
        else:
            ctx.counters.sub_frames += 1
            ctx.counters.bytes["sub"] += sum(len(p.data) for p in pkts)
        ctx.stamp(self.hop, frame.capture_s, t_enc)

    def finish(self) -> None:
        if self._pending is not None:
            self._deliver(*self._pending.result())
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.stream == "main":
            flushed = self.enc.flush()
            if flushed:
                self.push(self.downstream, Packets("main", flushed, -1.0, -1.0, flush=True))


class JpegEncoder(Element):
    """The JPEG channel: one snapshot of the newest main picture per AI event."""

    capacity, policy = 2, "drop_newest"

    def __init__(self, ctx: Context, quality: int):
        super().__init__("encode_jpeg")
        self.ctx, self.quality = ctx, quality

    def handle(self, nv12) -> None:
        from device_sim.media.encoder import jpeg_snapshot
        with self.ctx.cpu("jpeg_snapshot"):
            self.ctx.counters.bytes["jpeg"] += len(jpeg_snapshot(nv12, self.quality))
        self.ctx.counters.snapshots += 1


# --------------------------------------------------------------------------------------------------- storage
class RingBuffer(Element):
    """Pre-event ring of encoded packets; answers clip requests in stream order, feeds recorder and clip maker."""

    capacity, policy = 64, "block"

    def __init__(self, ctx: Context, ring, seconds: float):
        super().__init__("ring_buffer")
        self.ctx, self.ring, self.seconds = ctx, ring, seconds
        self.recorder: Element | None = None
        self.clips: Element | None = None

    def handle(self, item) -> None:
        ctx = self.ctx
        if isinstance(item, ClipRequest):
            clip = self.ring.since(item.media_t - self.seconds)
            ctx.counters.clips.append({"event_t": round(item.media_t, 3), "packets": len(clip),
                                       "pre_s": round(item.media_t - clip[0].pts_s, 3) if clip else 0.0})
            if self.clips is not None:
                self.push(self.clips, ClipStart(item.event, clip))
            return
        if item.stream != "main":
            for p in item.packets:
                self.ring.push(p)
            return
        if not item.flush:
            for p in item.packets:
                self.ring.push(p)
            ctx.stamp("capture_to_ring", item.capture_s, ctx.at(item.t_done))
        ctx.counters.bytes["main"] += sum(len(p.data) for p in item.packets)
        if self.recorder is not None:
            self.push(self.recorder, item)
        if self.clips is not None and not item.flush:
            self.push(self.clips, item)


class Recorder(Element):
    """Continuous recording of the main stream to the TF card (device_sim.storage.recorder)."""

    capacity, policy = 64, "block"

    def __init__(self, ctx: Context, recorder):
        super().__init__("recorder")
        self.ctx, self.recorder = ctx, recorder

    def handle(self, item: Packets) -> None:
        with self.ctx.cpu("storage_record"):
            for p in item.packets:
                self.recorder.write(p)

    def finish(self) -> None:
        self.recorder.close()


class ClipMaker(Element):
    """An encrypted HLS clip per AI event: ring-buffer pre-roll, then the live main stream to the post-roll."""

    capacity, policy = 64, "block"

    def __init__(self, ctx: Context, maker, info):
        super().__init__("clip_maker")
        self.ctx, self.maker, self.info = ctx, maker, info
        self.sessions: list = []
        self.done: list = []

    def handle(self, item) -> None:
        with self.ctx.cpu("storage_clips"):
            if isinstance(item, ClipStart):
                self.sessions.append(self.maker.start(item.event, item.packets, self.info))
                return
            for sess in list(self.sessions):
                if not all([sess.add(p) for p in item.packets]):
                    self.done.append(sess.finish())
                    self.sessions.remove(sess)

    def finish(self) -> None:
        for sess in self.sessions:
            self.done.append(sess.finish())
        self.sessions = []


# --------------------------------------------------------------------------------------------------- AI, events
class AiScheduler(Element):
    """Motion on every substream frame; the detector at ``ai_fps`` while the motion gate is open; debounced events.

    Its inbox holds one frame and drops the oldest: the detector always reads the freshest substream picture."""

    capacity, policy = 1, "drop_oldest"

    def __init__(self, ctx: Context, det, sched, npu_lock, motion, debounce, detect_zones, motion_gate: bool,
                 sub_height: int):
        super().__init__("ai")
        self.ctx, self.det, self.sched, self.npu_lock = ctx, det, sched, npu_lock
        self.motion, self.debounce, self.detect_zones = motion, debounce, detect_zones
        self.motion_gate, self.sub_height = motion_gate, sub_height
        self.classes = list(det.bundle.decode["classes"]) if det is not None else []
        self.router: Element | None = None

    def handle(self, sf: SubFrame) -> None:
        from device_sim.ai.postprocess import detections as decode_detections
        from device_sim.ai.preprocess import detector_input
        from device_sim.ai.zones import zone_of
        from device_sim.spec.events import detection_event, make_event
        ctx, f, st = self.ctx, sf.frame, self.ctx.counters
        t = f.capture_s
        if ctx.motion_reset.is_set():
            ctx.motion_reset.clear()
            self.motion.reset_background()
        with ctx.cpu("motion"):
            moving = self.motion.update(f.sub_nv12, self.sub_height, t)
        last = self.router.last_event
        if moving and (last is None or last.get("event") != "motion-detected"
                       or t - last["capture_time_s"] > self.motion.cfg.hold_s):
            ev = make_event("motion-detection", "motion-detected", t, ctx.at(f.t_isp),
                            area=self.motion.active_fraction)
            self.router.last_event = ev       # what the next frame compares with, as soon as it is decided
            self.push(self.router, Event(ev, t))
        if not sf.ai_due:
            return
        st.ai_offered += 1
        if self.motion_gate and not self.motion.gate_open(t):
            st.ai_gated += 1
            for c in self.classes:
                self.debounce.update(c, False, t)
            return
        with ctx.cpu("ai_preprocess"):
            c0 = time.perf_counter()
            x, lb = detector_input(f.sub_nv12, self.det.bundle.input)
            pre_s = time.perf_counter() - c0
        with ctx.cpu("npu_host_onnxruntime"), self.npu_lock:
            outs, job = self.sched.infer("detection", x, ctx.at(f.t_isp + pre_s))
        if outs is None:
            st.ai_dropped += 1
            return
        st.ai_runs += 1
        with ctx.cpu("ai_postprocess"):
            c0 = time.perf_counter()
            dets = decode_detections(self.det.output_names, outs, self.det.bundle.decode, lb)
            post_s = time.perf_counter() - c0
        t_done = ctx.at(job.end_s + post_s)
        ctx.stamp("capture_to_ai_result", t, t_done)
        best: dict[str, object] = {}
        for d in dets:
            if d.label not in best or d.score > best[d.label].score:
                best[d.label] = d
        for c in self.classes:
            if self.debounce.update(c, c in best, t):
                d = best[c]
                zone = zone_of(d.box, self.detect_zones)
                if zone == "" and self.detect_zones:
                    continue
                ev = detection_event(c, d.score, zone, d.box, t, t_done)
                self.router.last_event = ev
                self.push(self.router, Event(ev, t))


class EventRouter(Element):
    """Publishes events in order: the event list, the uplink (MQTT notification first), then for AI events a
    snapshot and a clip request (pre-roll from the ring buffer)."""

    capacity, policy = 256, "block"

    def __init__(self, ctx: Context):
        super().__init__("event_router")
        self.ctx = ctx
        self.events: list[dict] = []
        self.last_event: dict | None = None      # newest event decided (the motion debounce reads it)
        self.latest_main = None
        self.uplink = self.jpeg = self.ring = None

    def handle(self, item: Event) -> None:
        ev = item.event
        self.events.append(ev)
        self.push(self.uplink, ev)
        if ev["service"] != "ai-detection":
            return
        self.ctx.stamp("capture_to_event", ev["capture_time_s"], ev["emit_time_s"])
        if self.latest_main is not None:
            self.push(self.jpeg, self.latest_main)
        self.push(self.ring, ClipRequest(ev, item.media_t))


class Uplink(Element):
    """The network side of an event: the notifier callback (e.g. MQTT through device_sim.net)."""

    capacity, policy = 256, "block"

    def __init__(self, ctx: Context, on_event=None):
        super().__init__("uplink")
        self.ctx, self.on_event = ctx, on_event

    def handle(self, ev: dict) -> None:
        if self.on_event is not None:
            self.on_event(ev)
        if ev["service"] == "ai-detection":
            self.ctx.stamp("capture_to_notify", ev["capture_time_s"], self.ctx.at(ev["emit_time_s"]))


# --------------------------------------------------------------------------------------------------- audio
class AudioChain(Element):
    """Microphone -> AEC/NS/AGC -> Opus (into the ring buffer) and the cry model on the NPU, 10 ms blocks.

    ``handle(end)`` processes every block up to sample ``end`` (the serial camera calls it before each frame with
    the end of that frame period); under the real-time clock :meth:`stream` pumps it from the camera clock."""

    def __init__(self, ctx: Context, mic, echo, ref_pcm, chain, cry_fe, sched, npu_lock, n_samples: int, recs: dict):
        super().__init__("audio")
        self.ctx, self.mic, self.echo, self.ref, self.chain = ctx, mic, echo, ref_pcm, chain
        self.cry_fe, self.sched, self.npu_lock, self.n = cry_fe, sched, npu_lock, n_samples
        self.recs = recs
        self.pos = 0
        self.cry_scores: list[tuple[float, float]] = []
        self.ring = self.router = None

    def handle(self, end: int) -> None:
        from device_sim.media.audio import BLOCK
        from device_sim.spec.events import make_event
        ctx, st = self.ctx, self.ctx.counters
        while self.pos + BLOCK <= end:
            s = self.pos
            with ctx.cpu("audio_aec_ns_agc"):
                blk = self.mic.read(s, BLOCK, self.echo[s:s + BLOCK])
                a_out, clean = self.chain.process(blk, self.ref[s:s + BLOCK])
            self.recs["mic"][s:s + BLOCK], self.recs["aec"][s:s + BLOCK] = blk, a_out
            self.recs["clean"][s:s + BLOCK] = clean
            with ctx.cpu("audio_opus"):
                pkts = self.chain.opus.encode(clean, s / 16000)
            if pkts:
                st.bytes["audio"] += sum(len(p.data) for p in pkts)
                self.push(self.ring, Packets("audio", pkts, s / 16000, s / 16000))
            if self.cry_fe is not None:
                with ctx.cpu("cry_features"):
                    c0 = time.perf_counter()
                    windows = list(self.cry_fe.push(clean.astype(np.float32) / 32768.0))
                    feat_s = time.perf_counter() - c0
                for x, end_sample in windows:
                    st.cry_windows += 1
                    t_win = end_sample / 16000
                    with ctx.cpu("npu_host_onnxruntime"), self.npu_lock:
                        outs, job = self.sched.infer("cry", x, ctx.at(t_win + feat_s))
                    if outs is None:
                        continue
                    prob = self.cry_fe.probability(outs[0])
                    self.cry_scores.append((round(t_win, 3), round(prob, 4)))
                    if self.cry_fe.alarm.update(prob, t_win):
                        t_emit = ctx.at(job.end_s)
                        ctx.stamp("cry_window_to_event", t_win, t_emit)
                        ev = make_event("ai-detection", "cry", t_win, t_emit, confidence=prob, zone="audio")
                        self.router.last_event = ev
                        self.push(self.router, Event(ev, t_win))
            self.pos += BLOCK

    def stream(self, period_s: float = 0.02) -> None:
        """Real clock: process what the microphone has delivered so far, every ``period_s``, to the end."""
        from device_sim.media.audio import BLOCK
        clock = self.ctx.clock
        while self.pos + BLOCK <= self.n and not self.runner.errors:
            end = min(self.n, int(clock.now() * 16000))
            if end - self.pos >= BLOCK:
                self.runner.call(self, self.handle, end)
            else:
                time.sleep(period_s)
