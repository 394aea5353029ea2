"""Continuous recording to the TF card: one MP4 a minute under ``YYYY/MM/DD/HH/MM.mp4`` (UTC), crash-safe.

ISO/IEC 14496-12 fragmented MP4 (one ``moof``+``mdat`` per GOP, ``empty_moov``): a file cut by a power loss still
parses up to its last whole fragment, so :func:`device_sim.storage.reconcile.reconcile` can repair it.

API (the camera's composition root calls these)::

    rec = Recorder(card, index, retention, epoch_base=wall_clock_at_pts_zero)
    rec.write(packet)      # EncodedPacket of the recorded stream ("main" by default); other streams are ignored
    rec.close()            # finalise the minute in flight

A minute is written to ``.MM.mp4.partial`` in its folder (created, folder fsynced, so the file's periodic fsyncs
keep its footage through a power cut), and on rotation: muxer close, fsync, rename to ``MM.mp4``, folder fsync, then
the index row (so an indexed file is always whole). A new minute starts at the first keyframe
whose wall time falls in a new minute; if ``MM.mp4`` already exists (a restart within the same minute) the next free
``MM-1.mp4``, ``MM-2.mp4``... is used. The wall start time is stored in the MP4's ``comment`` tag
(``camlab start_s=<UNIX s>``) so a file found without its index row can be re-indexed exactly.
Card errors (removed, write-protected, corrupt, full) never raise out of :meth:`Recorder.write`: the minute in flight
is abandoned (left for reconcile), retention runs on ``ENOSPC``, and recording resumes at the next keyframe. When the
index (on the same card) cannot grow, SQLite's SQLITE_FULL arrives as :class:`~device_sim.storage.index.IndexFull`
(ENOSPC): the whole minute keeps its file, ``on_error`` hears it, retention makes room and the row is retried once
(else reconcile indexes the file later). Power cuts on a layer that drops unsynced writes:
:mod:`device_sim.storage.powerloss` and :func:`device_sim.storage.faults.run_power_loss`.
"""
from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av

from camlab.errors import CamlabError
from device_sim.hal.sdcard import CardError, CardFile, CardState, SdCard
from device_sim.media.packets import EncodedPacket, StreamInfo
from device_sim.storage.index import Index, IndexFull
from device_sim.storage.mux import PacketMuxer, StreamTemplate
from device_sim.storage.retention import Retention

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".partial"
META_PREFIX = "camlab start_s="


def minute_relpath(wall_s: float) -> str:
    t = time.gmtime(wall_s)
    return f"{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/{t.tm_hour:02d}/{t.tm_min:02d}.mp4"


def partial_name(final_rel: str) -> str:
    p = Path(final_rel)
    return str(p.parent / f".{p.name}{PARTIAL_SUFFIX}")


def final_name_of_partial(rel: str) -> str:
    p = Path(rel)
    return str(p.parent / p.name[1:-len(PARTIAL_SUFFIX)])


def free_final_name(root: Path, rel: str, *, own_partial: bool = False) -> str:
    """``rel`` if free, else ``MM-1.mp4``, ``MM-2.mp4``... (a restart within the same minute). ``own_partial``: the
    partial of ``rel`` itself is the caller's (repair) and does not make the name taken."""
    p = Path(rel)
    cand, k = rel, 0
    while (root / cand).exists() or ((root / partial_name(cand)).exists() and not (own_partial and cand == rel)):
        k += 1
        cand = str(p.parent / f"{p.stem}-{k}{p.suffix}")
    return cand


@dataclass
class RecorderStats:
    closed: list[tuple[str, float, float]] = field(default_factory=list)   # (path, start_s, end_s) per minute
    dropped_packets: int = 0
    abandoned: int = 0
    errors: list[str] = field(default_factory=list)
    keep_history: bool = True
    index_full: int = 0                 # SQLITE_FULL answers of the index (the card full)
    unindexed: list[str] = field(default_factory=list)   # whole minutes left for reconcile to index (index full)


class _Minute:
    def __init__(self, final_rel: str, fh: CardFile, mux: PacketMuxer, start_wall: float, minute_key: int):
        self.final_rel, self.fh, self.mux = final_rel, fh, mux
        self.start_wall, self.minute_key = start_wall, minute_key
        self.end_wall = start_wall
        self.last_sync = time.monotonic()


class Recorder:
    """Writes one stream's packets into minute MP4 files on ``card`` and indexes them in ``index``."""

    def __init__(self, card: SdCard, index: Index, retention: Retention | None = None, *,
                 stream: str = "main", info: StreamInfo | None = None, epoch_base: float | None = None,
                 fsync_interval_s: float = 5.0, on_error: Callable[[BaseException], None] | None = None,
                 min_free_per_minute: int = 0, clock: Callable[[], float] | None = None):
        self.card, self.index, self.retention = card, index, retention
        self.stream, self.info = stream, info
        self.epoch_base = epoch_base
        self.fsync_interval_s = fsync_interval_s
        self.clock = clock or time.monotonic      # paces the periodic fsync (a simulation passes its media clock)
        self.on_error = on_error
        self.stats = RecorderStats()
        self._cur: _Minute | None = None
        self._template: StreamTemplate | None = None
        self._last_minute_bytes = min_free_per_minute
        self._waiting_keyframe = True

    # ---- public ---------------------------------------------------------------------------------------------
    def set_stream_info(self, info: StreamInfo) -> None:
        self.info, self._template = info, None

    def wall(self, pts_s: float) -> float:
        return self.epoch_base + pts_s

    def write(self, pkt: EncodedPacket) -> None:
        """Record one packet (never raises for card trouble; see the module docstring)."""
        if pkt.stream != self.stream:
            return
        if self.info is None:                  # nothing to mux with until the encoder's StreamInfo is known
            self.stats.dropped_packets += 1
            return
        if self.epoch_base is None:
            self.epoch_base = time.time() - pkt.pts_s
        wall = self.wall(pkt.pts_s)
        try:
            if pkt.keyframe:
                key = int(wall // 60)
                if self._cur is None or key != self._cur.minute_key:
                    self._rotate(pkt, wall, key)
                elif self.clock() - self._cur.last_sync >= self.fsync_interval_s:
                    self._cur.fh.fsync()
                    self._cur.last_sync = self.clock()
            if self._cur is None:
                self.stats.dropped_packets += 1
                return
            self._cur.mux.add(pkt)
            self._cur.end_wall = wall + (pkt.duration_s or (1.0 / self.info.fps if self.info and self.info.fps else 0))
        except CardError as exc:
            self._card_failed(exc)
        except CamlabError as exc:             # a bad packet (e.g. timestamps going back): drop it, keep the minute
            self.stats.dropped_packets += 1
            self.stats.errors.append(f"packet: {exc}")
        except (OSError, av.error.FFmpegError) as exc:
            self._card_failed(CardError(getattr(exc, "errno", None) or errno.EIO, str(exc)))

    def close(self) -> None:
        """Finalise the minute in flight (safe to call when the card is gone)."""
        try:
            self._finish()
        except OSError as exc:
            self._card_failed(exc if isinstance(exc, CardError) else CardError(exc.errno or errno.EIO, str(exc)))

    @property
    def in_flight(self) -> str | None:
        return partial_name(self._cur.final_rel) if self._cur else None

    # ---- internals --------------------------------------------------------------------------------------------
    def _rotate(self, pkt: EncodedPacket, wall: float, key: int) -> None:
        self._finish()
        if self.info is None:
            raise CardError(errno.EINVAL, f"recorder: no StreamInfo for stream {self.stream!r} (call set_stream_info)")
        if self._template is None:
            self._template = StreamTemplate(self.info, pkt.data)
        if self.retention is not None:
            self.retention.ensure(need_bytes=2 * self._last_minute_bytes)
        root = self.card.require(write=True)
        final_rel = free_final_name(root, minute_relpath(wall))
        fh = self.card.open_write(partial_name(final_rel))
        try:
            self.card.fsync_dir(Path(final_rel).parent)   # the partial's name is durable: its fsyncs keep footage
            mux = PacketMuxer(fh, "mp4", self._template, metadata={"comment": f"{META_PREFIX}{wall:.6f}"},
                              flush_packets=True)      # what is fsynced is every fragment muxed so far
        except Exception:
            fh.close()
            raise
        self._cur = _Minute(final_rel, fh, mux, wall, key)
        self._cur.last_sync = self.clock()

    def _finish(self) -> None:
        cur = self._cur
        if cur is None:
            return
        root = self.card.require(write=True)
        cur.mux.close()
        cur.fh.fsync()
        cur.fh.close()
        self._cur = None
        self.card.replace(partial_name(cur.final_rel), cur.final_rel)
        self.card.fsync_dir(Path(cur.final_rel).parent)
        size = (root / cur.final_rel).stat().st_size
        self._index_add(cur.final_rel, cur.start_wall, cur.end_wall, size, cur.mux.frames)
        self._last_minute_bytes = max(self._last_minute_bytes, size)
        if self.stats.keep_history:
            self.stats.closed.append((cur.final_rel, cur.start_wall, cur.end_wall))

    def _index_add(self, rel: str, start: float, end: float, size: int, frames: int) -> None:
        """The row of a durable minute; on SQLITE_FULL (the index is on the full card) free space and retry once,
        else leave the file unindexed for reconcile (it is whole and named: nothing is lost) and report it."""
        try:
            self.index.add(rel, start, end, bytes=size, frames=frames)
            return
        except IndexFull as exc:
            self.stats.index_full += 1
            self.stats.errors.append(f"ENOSPC: {exc}")
            log.warning("recorder: %s", exc)
            if self.on_error is not None:
                self.on_error(exc)
            if self.retention is None:
                self.stats.unindexed.append(rel)
                return
        try:
            self.retention.ensure(need_bytes=4 * max(self._last_minute_bytes, self.card.cluster_bytes))
            self.index.add(rel, start, end, bytes=size, frames=frames)
        except IndexFull:
            self.stats.unindexed.append(rel)

    def _card_failed(self, exc: CardError) -> None:
        cur, self._cur = self._cur, None
        if cur is not None:
            self.stats.abandoned += 1
            try:
                cur.mux.container.close()
            except Exception:   # the muxer may be mid-error; the partial file is left for reconcile
                pass
            try:
                cur.fh.close()
            except OSError:     # its buffered tail cannot reach a full or gone card: reconcile repairs the rest
                pass
        self.stats.errors.append(f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc}")
        if exc.errno == errno.ENOSPC and self.retention is not None:
            try:
                self.retention.ensure(need_bytes=4 * max(self._last_minute_bytes, self.card.cluster_bytes))
                if cur is not None and self.card.probe() is CardState.OK:
                    from device_sim.storage.reconcile import repair_partial   # (reconcile imports this module)
                    repair_partial(self.card, self.index, partial_name(cur.final_rel))
            except OSError:
                pass            # left for the reconcile at the next mount
        log.warning("recorder: card error %s", exc)
        if self.on_error is not None:
            self.on_error(exc)
