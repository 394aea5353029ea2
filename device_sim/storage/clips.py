"""Event clips: pre-roll from the ring buffer + post-roll, cut into ~10 s MPEG-TS segments, AES-128 encrypted HLS.

RFC 8216 (HTTP Live Streaming): §3.2 MPEG-TS segments each starting with a keyframe and carrying their own PAT/PMT
and parameter sets; §4.3.2.4 EXT-X-KEY (METHOD=AES-128, URI, IV) written before every segment with that segment's
fresh IV; §4.3.3.5 EXT-X-PLAYLIST-TYPE (EVENT while the post-roll is being recorded, VOD with EXT-X-ENDLIST after).

API (the camera's composition root)::

    maker = ClipMaker(out_dir, user_key, on_segment=uploader.enqueue_segment, on_finish=uploader.enqueue_clip)
    session = maker.start(event, ring_buffer_packets, info)   # pre-roll written at once (segments go out now)
    for pkt in live_packets: if not session.add(pkt): break   # post-roll; False once it is complete
    clip = session.finish()
    clip = maker.make_clip(event, ring_buffer_packets, post_roll_packets, info)   # the same in one call

``event``: a mapping or object with an id (``event_id`` or ``id``), the camera-clock time the event was decided
(``pts_s``; defaults to the newest ring-buffer packet) and optionally ``type``; the spec's event JSON
(``device_sim.spec.events``: ``event``, ``capture_time_s``) works as is (see :func:`event_identity`). Packets of other streams
than ``info.name`` are ignored, so the caller picks main or sub (see :meth:`Uploader.choose_stream`).
Files: ``out_dir/<event_id>/seg00000.ts ...``, ``playlist.m3u8``, ``clip.json``; all written atomically. With
``out_dir`` on the card pass ``storage_check=lambda: card.require(write=True)``: a storage error (the card pulled)
then loses that segment only (``Clip.errors``); it never raises into
the camera's frame loop.
Segment timestamps are the camera's capture times (90 kHz), so a player sees the pre-roll at its true time.
"""
from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from camlab.errors import CamlabError
from camlab.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from device_sim.media.packets import EncodedPacket, StreamInfo
from device_sim.storage.crypto import IvLedger, UserKey, encrypt_segment, iv_attr, key_check_value
from device_sim.storage.mux import PacketMuxer, StreamTemplate

log = logging.getLogger(__name__)
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _field(event, *names, default=None):
    for n in names:
        if isinstance(event, dict) and n in event:
            return event[n]
        if not isinstance(event, dict) and hasattr(event, n):
            return getattr(event, n)
    return default


def event_identity(event) -> tuple[str, float | None, str]:
    """(id, camera-clock time, type) of an event: ours (``event_id``/``pts_s``/``type``) or the spec's JSON
    (``device_sim.spec.events``: ``event``, ``capture_time_s``, no id: the id is derived as
    ``<event>-<capture ms>``)."""
    t = _field(event, "pts_s", "capture_time_s", "capture_pts_s")
    kind = str(_field(event, "type", "event_type", "event", default="event"))
    eid = _field(event, "event_id", "id")
    if eid is None and t is not None:
        eid = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', kind)}-{int(round(float(t) * 1000))}"
    eid = str(eid if eid is not None else "")
    if not EVENT_ID_RE.match(eid):
        raise CamlabError(f"event: id {eid!r} must match {EVENT_ID_RE.pattern}")
    return eid, (float(t) if t is not None else None), kind


@dataclass
class Segment:
    index: int
    name: str
    start_pts_s: float
    duration_s: float
    iv: bytes
    bytes: int
    frames: int


@dataclass
class Clip:
    event_id: str
    dir: Path
    stream: str
    event_type: str
    event_pts_s: float
    start_pts_s: float
    end_pts_s: float
    epoch_base: float
    key_uri: str
    segments: list[Segment] = field(default_factory=list)
    complete: bool = False
    decided_at: float = 0.0          # time.time() when the event was handed to the clip maker
    errors: list[str] = field(default_factory=list)   # segments/playlists lost to storage errors

    @property
    def playlist(self) -> Path:
        return self.dir / "playlist.m3u8"

    @property
    def meta_path(self) -> Path:
        return self.dir / "clip.json"

    def meta(self) -> dict:
        return {"event_id": self.event_id, "type": self.event_type, "stream": self.stream,
                "event_wall_s": self.epoch_base + self.event_pts_s, "event_pts_s": self.event_pts_s,
                "start_wall_s": self.epoch_base + self.start_pts_s, "end_wall_s": self.epoch_base + self.end_pts_s,
                "start_pts_s": self.start_pts_s, "key_uri": self.key_uri, "complete": self.complete,
                "segments": [{"name": s.name, "duration_s": s.duration_s, "start_pts_s": s.start_pts_s}
                             for s in self.segments]}


def playlist_text(clip: Clip, target_s: float) -> str:
    """RFC 8216 media playlist with one EXT-X-KEY (own IV) before each segment."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3",
             f"#EXT-X-TARGETDURATION:{max(1, int(-(-max([s.duration_s for s in clip.segments] + [target_s]) // 1)))}",
             "#EXT-X-MEDIA-SEQUENCE:0", f"#EXT-X-PLAYLIST-TYPE:{'VOD' if clip.complete else 'EVENT'}"]
    if clip.segments:
        t = clip.epoch_base + clip.segments[0].start_pts_s
        lines.append("#EXT-X-PROGRAM-DATE-TIME:" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                     + f".{int((t % 1) * 1000):03d}Z")
    for s in clip.segments:
        lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{clip.key_uri}",IV={iv_attr(s.iv)}')
        lines.append(f"#EXTINF:{s.duration_s:.3f},")
        lines.append(s.name)
    if clip.complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class ClipSession:
    """One clip being recorded: segments are closed, encrypted and handed on as soon as they are complete."""

    def __init__(self, maker: "ClipMaker", clip: Clip, template: StreamTemplate, post_roll_s: float):
        self.maker, self.clip, self.template = maker, clip, template
        self.until_pts = clip.event_pts_s + post_roll_s
        self._mux: PacketMuxer | None = None
        self._buf: io.BytesIO | None = None
        self._seg_start = 0.0
        self._last_pts: float | None = None
        self._frames = 0
        self._done = False

    def add(self, pkt: EncodedPacket) -> bool:
        """Add a post-roll packet; returns False once the post-roll is complete (the packet is then not used)."""
        if self._done:
            return False
        if pkt.stream != self.clip.stream:
            return True
        if self._last_pts is not None and pkt.pts_s <= self._last_pts:
            return True                       # already in the pre-roll (ring buffer and live feed overlap)
        if pkt.pts_s >= self.until_pts and pkt.keyframe or pkt.pts_s >= self.until_pts + 2 * self.maker.segment_s:
            self.finish()
            return False
        if self._mux is None:
            if not pkt.keyframe:
                return True
            self._open(pkt.pts_s)
        elif pkt.keyframe and pkt.pts_s - self._seg_start >= self.maker.segment_s:
            self._close_segment(pkt.pts_s)
            self._open(pkt.pts_s)
        self._mux.add(pkt)
        self._frames += 1
        self._last_pts = pkt.pts_s
        self.clip.end_pts_s = pkt.pts_s + (pkt.duration_s or 1.0 / max(1.0, self.template.info.fps))
        return True

    def _open(self, pts: float) -> None:
        self._buf = io.BytesIO()
        self._mux = PacketMuxer(self._buf, "mpegts", self.template)
        self._seg_start = pts
        self._frames = 0

    def _close_segment(self, end_pts: float | None = None) -> None:
        mux, self._mux = self._mux, None
        if mux is None:
            return
        mux.close()
        plain = self._buf.getvalue()
        c = self.clip
        idx = len(c.segments)
        name = f"seg{idx:05d}.ts"
        try:
            self.maker._check_storage()
            iv = self.maker.ledger.claim()
            data = encrypt_segment(self.maker.key, plain, iv)
            atomic_write_bytes(c.dir / name, data)
        except OSError as exc:                  # clip storage gone (card pulled, disk full): lose this segment only
            c.errors.append(f"{name}: {exc}")
            log.warning("clip %s: segment %s lost: %s", c.event_id, name, exc)
            return
        end = end_pts if end_pts is not None else c.end_pts_s
        seg = Segment(idx, name, self._seg_start, round(end - self._seg_start, 6), iv, len(data), self._frames)
        c.segments.append(seg)
        if self.maker._write_playlist(c) and self.maker.on_segment is not None:
            self.maker.on_segment(c, seg)

    def finish(self) -> Clip:
        if not self._done:
            self._done = True
            self._close_segment()
            self.clip.complete = True
            if self.maker._write_playlist(self.clip) and self.maker.on_finish is not None:
                self.maker.on_finish(self.clip)
        return self.clip


class ClipMaker:
    def __init__(self, out_dir: Path, key: UserKey, *, segment_s: float = 10.0, pre_roll_s: float = 5.0,
                 post_roll_s: float = 10.0, epoch_base: float = 0.0, ledger: IvLedger | None = None,
                 on_segment: Callable[[Clip, Segment], None] | None = None,
                 on_finish: Callable[[Clip], None] | None = None, stream: str = "main",
                 infos: Iterable[StreamInfo] = (), storage_check: Callable[[], object] | None = None):
        if segment_s <= 0 or pre_roll_s < 0 or post_roll_s < 0:
            raise CamlabError("clips: segment_s must be > 0 and pre/post roll >= 0")
        self.out_dir, self.key = Path(out_dir), key
        self.segment_s, self.pre_roll_s, self.post_roll_s = segment_s, pre_roll_s, post_roll_s
        self.epoch_base = epoch_base
        self.ledger = ledger if ledger is not None else IvLedger()
        self.on_segment, self.on_finish = on_segment, on_finish
        self._templates: dict[StreamInfo, StreamTemplate] = {}
        self.stream = stream                     # the stream used when start() gets no info (main or sub)
        self.storage_check = storage_check       # raises OSError when out_dir is unusable (e.g. card.require)
        self.infos: dict[str, StreamInfo] = {i.name: i for i in infos}

    def set_stream_info(self, info: StreamInfo) -> None:
        self.infos[info.name] = info

    def start(self, event, ring_buffer_packets: Iterable[EncodedPacket], info: StreamInfo | None = None) -> ClipSession:
        """Open a clip for ``event`` and write its pre-roll (the ring buffer's packets of ``info.name``; without
        ``info``, the StreamInfo registered for ``self.stream``)."""
        eid, ev_pts, kind = event_identity(event)
        if info is None:
            info = self.infos.get(self.stream)
            if info is None:
                raise CamlabError(f"clips: no StreamInfo for stream {self.stream!r} (pass info= or set_stream_info)")
        pkts = sorted((p for p in ring_buffer_packets if p.stream == info.name), key=lambda p: p.pts_s)
        if ev_pts is None:
            if not pkts:
                raise CamlabError(f"event {eid}: no pts_s and an empty ring buffer: cannot place the clip")
            ev_pts = pkts[-1].pts_s
        ev_pts = float(ev_pts)
        lo = ev_pts - self.pre_roll_s
        keys = [i for i, p in enumerate(pkts) if p.keyframe and p.pts_s <= lo]
        first = keys[-1] if keys else next((i for i, p in enumerate(pkts) if p.keyframe), len(pkts))
        pre = pkts[first:]
        clip_dir = self.out_dir / eid
        clip_dir.mkdir(parents=True, exist_ok=True)
        clip = Clip(eid, clip_dir, info.name, kind, ev_pts,
                    pre[0].pts_s if pre else ev_pts, ev_pts, self.epoch_base, self.key.uri,
                    decided_at=time.time())
        tpl_key = pre[0].data if pre else None
        template = self._templates.get(info)
        if template is None:
            if tpl_key is None:
                raise CamlabError(f"event {eid}: no keyframe of stream {info.name!r} in the ring buffer")
            template = self._templates[info] = StreamTemplate(info, tpl_key)
        sess = ClipSession(self, clip, template, self.post_roll_s)
        self._write_playlist(clip)
        for p in pre:
            sess.add(p)
        return sess

    def make_clip(self, event, ring_buffer_packets: Iterable[EncodedPacket],
                  post_roll_packets: Iterable[EncodedPacket], info: StreamInfo | None = None) -> Clip:
        sess = self.start(event, ring_buffer_packets, info)
        for p in post_roll_packets:
            if not sess.add(p):
                break
        return sess.finish()

    def _check_storage(self) -> None:
        if self.storage_check is not None:
            self.storage_check()

    def _write_playlist(self, clip: Clip) -> bool:
        try:
            self._check_storage()
            atomic_write_text(clip.playlist, playlist_text(clip, self.segment_s))
            meta = clip.meta()
            meta["key_check"] = key_check_value(self.key)
            atomic_write_json(clip.meta_path, meta)
            return True
        except OSError as exc:
            clip.errors.append(f"playlist: {exc}")
            log.warning("clip %s: playlist not written: %s", clip.event_id, exc)
            return False
