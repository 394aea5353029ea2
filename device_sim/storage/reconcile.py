"""Crash recovery: make the card's files and the SQLite index agree again after a power cut or a kill -9.

Invariant restored (checked by the fault-injection harness in :mod:`device_sim.storage.faults`): every indexed
recording exists and decodes, and every recording file under ``YYYY/`` is indexed. Steps:

1. a ``.MM.mp4.partial`` (the minute in flight) is repaired: its readable fragments (ISO/IEC 14496-12 ``moof``) up
   to the last complete GOP are remuxed into ``MM.mp4`` and indexed; with nothing readable it is discarded;
2. a final ``MM.mp4`` without a row (crash between rename and index insert) is probed and indexed, or moved to
   ``.quarantine/`` when it does not decode (kept, never silently deleted; retention frees it first);
3. rows whose file is gone, or whose path is not a plain relative path on the card (absolute, ``..``), are dropped.
"""
from __future__ import annotations

import errno
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


def repair_partial(card: SdCard, index: Index, rel: str) -> str | None:
    """Salvage a partial minute into its final name (indexed); returns the new path or None when discarded."""
    root = card.require(write=True)
    src = root / rel
    packets, start_wall = [], None
    try:
        with av.open(str(src)) as c:
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
            keys = [i for i, p in enumerate(packets) if p[4]]
            packets = packets[:keys[-1]] if keys else []   # the last GOP may be torn: drop it
            if packets:
                final_rel = free_final_name(root, final_name_of_partial(rel), own_partial=True)
                tmp = root / (final_rel + ".repair")
                fh = card.open_write(final_rel + ".repair")      # through the card: a cut here loses it too
                try:
                    with av.open(fh, "w", format="mp4") as out:
                        out.metadata["comment"] = f"{META_PREFIX}{start_wall:.6f}"
                        ost = out.add_stream_from_template(st)
                        ost.time_base = TIME_BASE
                        for data, pts, dts, dur, key, tb in packets:
                            p = av.Packet(data)
                            p.pts, p.dts, p.duration, p.time_base, p.is_keyframe, p.stream = (pts, dts, dur, tb,
                                                                                               key, ost)
                            out.mux(p)
                    fh.fsync()
                finally:
                    fh.close()
                info = probe_mp4(tmp)
                card.replace(final_rel + ".repair", final_rel)
                card.fsync_dir(Path(final_rel).parent)
                end = start_wall + float(info["end_s"] - info["first_s"])
                index.add(final_rel, start_wall, end, bytes=(root / final_rel).stat().st_size, frames=info["frames"])
                card.unlink(rel)
                card.fsync_dir(Path(rel).parent)
                return final_rel
    except CardError as exc:
        if exc.errno == errno.ENOSPC:                   # no room for the repaired copy: keep the partial for later
            raise
    except (av.error.FFmpegError, InputFileError, OSError, ValueError, IndexError):
        pass                                            # unreadable: discarded below
    for leftover in (rel, final_name_of_partial(rel) + ".repair"):
        if (root / leftover).exists():
            card.unlink(leftover)
    card.fsync_dir(Path(rel).parent)
    return None


def reconcile(card: SdCard, index: Index, *, in_flight: str | None = None) -> ReconcileReport:
    """Bring files and index into agreement (see the module docstring). ``in_flight``: a partial to leave alone."""
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
        except CardError:                               # ENOSPC: the partial stays for the next reconcile
            rep.deferred.append(rel)
            continue
        (rep.repaired.append(new) if new else rep.discarded.append(rel))
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
