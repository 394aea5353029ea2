"""Crash recovery: make the card's files and the SQLite index agree again after a power cut or a kill -9.

Invariant restored (checked by the fault-injection harness in :mod:`device_sim.storage.faults`): every indexed
recording exists and decodes, and every recording file under ``YYYY/`` is indexed. Steps:

1. a ``.MM.mp4.partial`` (the minute in flight) is repaired: its whole top-level boxes (ISO/IEC 14496-12: the
   header and every ``moof`` + ``mdat`` fragment, one GOP each, that a power cut left whole; a torn tail is ignored)
   are remuxed into ``MM.mp4`` and indexed; with nothing readable it is discarded; when its copy does not fit on
   the card it is kept (``deferred``) after retention tried to make room;
2. a final ``MM.mp4`` without a row (crash between rename and index insert) is probed and indexed, or moved to
   ``.quarantine/`` when it does not decode (kept, never silently deleted; retention frees it first);
3. rows whose file is gone, or whose path is not a plain relative path on the card (absolute, ``..``), are dropped.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import av

from camlab.errors import InputFileError
from device_sim.hal.sdcard import CardError, SdCard
from device_sim.storage.index import Index, UnsafeCardPath, card_file
from device_sim.storage.mux import TIME_BASE, probe_mp4
from device_sim.storage.recorder import (META_PREFIX, PARTIAL_SUFFIX, final_name_of_partial, free_final_name)
from device_sim.storage.retention import QUARANTINE

log = logging.getLogger(__name__)
_MINUTE_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}/\d{2}(-\d+)?\.mp4$")


@dataclass
class ReconcileReport:
    repaired: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    indexed_orphans: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    dropped_rows: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)      # partials left for later: no room for their repair

    @property
    def changed(self) -> bool:
        return any((self.repaired, self.discarded, self.indexed_orphans, self.quarantined, self.dropped_rows))


def recording_files(root: Path) -> tuple[list[str], list[str]]:
    """(final minute files, partial files) under the ``YYYY/`` tree, relative to ``root``."""
    finals, partials = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d.isdigit()]
            continue
        for f in filenames:
            rel = f"{rel_dir}/{f}".replace(os.sep, "/")
            if f.startswith(".") and f.endswith(PARTIAL_SUFFIX):
                partials.append(rel)
            elif _MINUTE_RE.match(rel):
                finals.append(rel)
    return sorted(finals), sorted(partials)


def _start_from_meta(meta: dict, rel: str) -> float:
    c = meta.get("comment", "")
    if c.startswith(META_PREFIX):
        return float(c[len(META_PREFIX):])
    raise InputFileError(f"{rel}: MP4 lacks the recorder's start-time tag")


def _already_repaired(root: Path, rel: str, start_wall: float) -> str | None:
    """The final file a previous (interrupted) repair of ``rel`` produced, recognised by its start-time tag."""
    final = final_name_of_partial(rel)
    p = Path(final)
    for cand in [final] + [str(p.parent / f"{p.stem}-{k}{p.suffix}") for k in range(1, 10)]:
        f = root / cand
        if not f.exists():
            continue
        try:
            with av.open(str(f)) as c:
                if _start_from_meta(dict(c.metadata), cand) == float(f"{start_wall:.6f}"):
                    return cand
        except (av.error.FFmpegError, InputFileError, OSError):
            continue
    return None


class RepairDeferred(CardError):
    """The partial is readable but its repaired copy could not be written (card full, I/O error): the partial is
    kept for a later reconcile, never discarded for a failure of the card."""


def _write_repair(card: SdCard, index: Index, rel: str, st, packets: list, start_wall: float) -> str:
    root = card.require(write=True)
    final_rel = free_final_name(root, final_name_of_partial(rel), own_partial=True)
    tmp = root / (final_rel + ".repair")
    try:
        fh = card.open_write(final_rel + ".repair")      # through the card: a cut here loses it too
        try:
            with av.open(fh, "w", format="mp4") as out:
                out.metadata["comment"] = f"{META_PREFIX}{start_wall:.6f}"
                ost = out.add_stream_from_template(st)
                ost.time_base = TIME_BASE
                for data, pts, dts, dur, key, tb in packets:
                    p = av.Packet(data)
                    p.pts, p.dts, p.duration, p.time_base, p.is_keyframe, p.stream = pts, dts, dur, tb, key, ost
                    out.mux(p)
            fh.fsync()
        finally:
            fh.close()
        info = probe_mp4(tmp)
    except (av.error.FFmpegError, InputFileError, OSError) as exc:
        code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
        if isinstance(exc, av.error.FFmpegError) and card.free_bytes() < 2 * card.cluster_bytes:
            code = errno.ENOSPC                          # a card error seen through FFmpeg's I/O callback
        try:
            if tmp.exists():
                card.unlink(final_rel + ".repair")
        except OSError:
            pass
        log.warning("reconcile: could not write the repair of %s (%s); the partial is kept", rel, exc)
        raise RepairDeferred(code, f"repair of {rel} not written: {exc}", str(tmp)) from exc
    card.replace(final_rel + ".repair", final_rel)
    card.fsync_dir(Path(final_rel).parent)
    end = start_wall + float(info["end_s"] - info["first_s"])
    index.add(final_rel, start_wall, end, bytes=(root / final_rel).stat().st_size, frames=info["frames"])
    card.unlink(rel)
    card.fsync_dir(Path(rel).parent)
    return final_rel


def complete_boxes(data: bytes) -> int:
    """Length of the prefix of an ISO/IEC 14496-12 file made of whole top-level boxes, a ``moof`` counting only
    with the whole box after it (its ``mdat``): what a power cut left intact. A torn tail (a box cut part-way, even
    a few bytes of a ``moof`` header) can make FFmpeg refuse the whole file, so the repair reads only this prefix."""
    off = good = 0
    while off + 8 <= len(data):
        size, typ = int.from_bytes(data[off:off + 4], "big"), data[off + 4:off + 8]
        if size == 1 and off + 16 <= len(data):
            size = int.from_bytes(data[off + 8:off + 16], "big")
        if size < 8 or off + size > len(data):
            break
        off += size
        if typ != b"moof":
            good = off
    return good


def repair_partial(card: SdCard, index: Index, rel: str) -> str | None:
    """Salvage a partial minute into its final name (indexed); returns the new path or None when discarded."""
    root = card.require(write=True)
    src = root / rel
    packets, start_wall = [], None
    try:
        data = src.read_bytes()
        with av.open(io.BytesIO(data[:complete_boxes(data)]), format="mp4") as c:
            start_wall = _start_from_meta(dict(c.metadata), rel)
            done = _already_repaired(root, rel, start_wall)
            if done is not None:                # a crash hit the previous repair after its rename
                c.close()
                card.unlink(rel)
                card.fsync_dir(Path(rel).parent)
                return done
            st = c.streams.video[0]
            try:
                for pk in c.demux(st):
                    if pk.size and not pk.is_corrupt:
                        packets.append((bytes(pk), int(pk.pts), int(pk.dts), int(pk.duration or 0),
                                        bool(pk.is_keyframe), pk.time_base))
            except (av.error.FFmpegError, OSError):
                pass                                    # torn tail: keep what parsed
            if not any(p[4] for p in packets):          # whole fragments only, each opens with a keyframe
                packets = []
            if packets:
                return _write_repair(card, index, rel, st, packets, start_wall)
    except RepairDeferred:
        raise                                           # the partial is fine, its copy could not be written
    except (av.error.FFmpegError, InputFileError, OSError, ValueError, IndexError) as exc:
        log.warning("reconcile: %s is unreadable, discarded (%s)", rel, exc)   # discarded below
    for leftover in (rel, final_name_of_partial(rel) + ".repair"):
        if (root / leftover).exists():
            card.unlink(leftover)
    card.fsync_dir(Path(rel).parent)
    return None


def reconcile(card: SdCard, index: Index, *, in_flight: str | None = None, retention=None) -> ReconcileReport:
    """Bring files and index into agreement (see the module docstring). ``in_flight``: a partial to leave alone.
    ``retention`` (a :class:`~device_sim.storage.retention.Retention`): makes room when a partial's repaired copy
    does not fit on the card (without it such a partial is kept, ``deferred``, never discarded)."""
    rep = ReconcileReport()
    root = card.require(write=True)
    finals, partials = recording_files(root)
    for rel in partials:
        if rel == in_flight:
            continue
        for stale in root.glob(rel.rsplit("/", 1)[0] + "/*.repair"):
            card.unlink(stale.relative_to(root))
        try:
            new = repair_partial(card, index, rel)
        except RepairDeferred as exc:                   # no room for its copy: make room once, else keep it
            new = None
            if retention is not None and exc.errno == errno.ENOSPC:
                try:
                    retention.ensure(need_bytes=2 * (root / rel).stat().st_size + 4 * card.cluster_bytes)
                    new = repair_partial(card, index, rel)
                except (RepairDeferred, OSError):
                    new = None
            if new is None:
                rep.deferred.append(rel)
                continue
        (rep.repaired.append(new) if new else rep.discarded.append(rel))
    finals, _ = recording_files(root)                   # again: repairs added files, retention may have deleted
    indexed = index.paths()
    for rel in finals:
        if rel in indexed:
            continue
        try:
            info = probe_mp4(root / rel)
            start = _start_from_meta(info["metadata"], rel)
            end = start + float(info["end_s"] - info["first_s"])
            index.add(rel, start, end, bytes=(root / rel).stat().st_size, frames=info["frames"])
            rep.indexed_orphans.append(rel)
        except InputFileError:
            card.makedirs(QUARANTINE)
            card.replace(rel, f"{QUARANTINE}/{rel.replace('/', '_')}")
            card.fsync_dir(QUARANTINE)
            card.fsync_dir(Path(rel).parent)
            rep.quarantined.append(rel)
    for rec in index.all():
        try:
            path = card_file(root, rec.path)            # the card is untrusted: a row outside it is dropped
        except UnsafeCardPath:
            path = None
        if path is None or not path.exists():
            index.remove(rec.path)
            rep.dropped_rows.append(rec.path)
    return rep
