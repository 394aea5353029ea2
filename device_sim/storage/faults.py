"""Fault-injection harness for the recorder: kill -9 at seeded random moments, then check the card invariant.

The harness (not a one-off test): a forked child records a synthetic stream onto a card as fast as it can
(simulated clock, one MP4 per simulated minute); the parent SIGKILLs it at a seeded random time, optionally tears
the in-flight file at a random byte (the page cache a power cut loses), sometimes kills the recovery too, runs
:func:`reconcile` as the next boot would,
and :func:`check_card` asserts the invariant: every indexed file exists and decodes, every recording file is indexed,
no partial file is left, and the footage lost is at most the minute in flight; no footage is indexed twice.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from camlab.errors import InputFileError
from device_sim.hal.sdcard import OsLayer, SdCard
from device_sim.storage.index import Index
from device_sim.storage.mux import probe_mp4
from device_sim.storage.reconcile import reconcile, recording_files
from device_sim.storage.recorder import Recorder, partial_name
from device_sim.storage.retention import Retention
from device_sim.storage.synth import SyntheticSource

INDEX_REL = ".index/index.db"


@dataclass
class CheckResult:
    files: int
    indexed: int
    corrupt: list[str]
    unindexed: list[str]
    missing: list[str]
    partial_left: list[str]
    overlapping: list[str] = field(default_factory=list)    # footage indexed twice (e.g. a repair done twice)

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.unindexed or self.missing or self.partial_left or self.overlapping)


def check_card(card: SdCard, index: Index, cache: dict | None = None) -> CheckResult:
    """The invariant: every indexed file decodes and every recording file is indexed (``cache`` skips re-decoding
    files unchanged since a previous check)."""
    cache = {} if cache is None else cache
    root = card.require()
    finals, partials = recording_files(root)
    rows = index.paths()
    corrupt = []
    for rel in finals:
        st = (root / rel).stat()
        key = (rel, st.st_size, st.st_mtime_ns)
        if key in cache:
            continue
        try:
            probe_mp4(root / rel, decode=True)
            cache[key] = True
        except InputFileError:
            corrupt.append(rel)
    fs = set(finals)
    recs = [r for r in index.all() if r.kind == "minute"]
    overlapping = [b.path for a, b in zip(recs, recs[1:]) if b.start_s < a.end_s - 1e-3]
    return CheckResult(files=len(finals), indexed=len(rows), corrupt=corrupt, unindexed=sorted(fs - rows),
                       missing=sorted(rows - fs), partial_left=partials, overlapping=overlapping)


def _child(base: str, capacity: int, epoch: float, src: SyntheticSource, progress, ready) -> None:
    card = SdCard(Path(base), capacity)
    index = Index(card.mount_point / INDEX_REL)
    rec = Recorder(card, index, Retention(card, index), info=src.info, epoch_base=epoch, fsync_interval_s=0.05)
    rec.stats.keep_history = False
    ready.set()
    i = 0
    while True:
        pkt = src.packet(i)
        rec.write(pkt)
        progress.value = epoch + pkt.pts_s + pkt.duration_s
        i += 1


def _recover_child(base: str, capacity: int) -> None:
    card = SdCard(Path(base), capacity)
    index = Index(card.mount_point / INDEX_REL)
    reconcile(card, index)


@dataclass
class HarnessReport:
    power_cuts: int = 0
    torn_writes: int = 0
    recovery_kills: int = 0
    corrupt_files: int = 0
    unindexed_files: int = 0
    missing_files: int = 0
    partial_left: int = 0
    overlapping: int = 0
    max_lost_s: float = 0.0
    repaired: int = 0
    discarded: int = 0
    indexed_orphans: int = 0
    final_files: int = 0
    failures: list[str] = field(default_factory=list)


def run_power_cuts(base: Path, n_cuts: int, *, seed: int = 0, capacity: int = 3_000_000,
                   max_run_s: float = 0.25, torn_fraction: float = 0.3, src: SyntheticSource | None = None,
                   full_check_every: int = 50, recovery_kill_fraction: float = 0.2) -> HarnessReport:
    """Record, kill -9 ``n_cuts`` times at seeded random moments, reconcile and check after each cut.

    ``recovery_kill_fraction`` of the cuts also kill the recovery itself (a reconcile in a child, SIGKILLed within
    30 ms) before the reconcile that is checked: recovery must survive its own power cut."""
    rng = random.Random(seed)
    src = src or SyntheticSource(64, 64, fps=10, gop=10)
    ctx = mp.get_context("fork")
    card = SdCard(base, capacity)
    rep = HarnessReport()
    cache: dict = {}
    epoch = 1_763_769_600.0                  # 2025-11-22 00:00:00 UTC
    for cut in range(n_cuts):
        progress = ctx.RawValue("d", 0.0)
        ready = ctx.Event()
        p = ctx.Process(target=_child, args=(str(base), capacity, epoch, src, progress, ready), daemon=True)
        p.start()
        if not ready.wait(30):
            p.kill()
            raise RuntimeError("fault harness: recording child did not start")
        time.sleep(rng.uniform(0.0, max_run_s))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        rep.power_cuts += 1
        last_fed = progress.value or epoch
        card.probe()
        root = card.require(write=True)
        _, partials = recording_files(root)
        if partials and rng.random() < torn_fraction:         # lose the unsynced tail of the file in flight
            f = root / partials[0]
            size = f.stat().st_size
            with open(f, "r+b") as fh:
                fh.truncate(rng.randint(0, size))
            rep.torn_writes += 1
        if rng.random() < recovery_kill_fraction:
            rp = ctx.Process(target=_recover_child, args=(str(base), capacity), daemon=True)
            rp.start()
            time.sleep(rng.uniform(0.0, 0.03))
            if rp.is_alive():
                os.kill(rp.pid, signal.SIGKILL)
            rp.join()
            rep.recovery_kills += 1
        index = Index(root / INDEX_REL)
        try:
            # the camera boots with retention: a repaired copy that does not fit frees the oldest footage first
            r = reconcile(card, index, retention=Retention(card, index))
            rep.repaired += len(r.repaired)
            rep.discarded += len(r.discarded)
            rep.indexed_orphans += len(r.indexed_orphans)
            if (cut + 1) % full_check_every == 0 or cut == n_cuts - 1:
                cache.clear()
            chk = check_card(card, index, cache)
            ends = [rec.end_s for rec in index.all()]
            lost = last_fed - max(ends + [epoch])    # footage of this boot that did not survive the cut
            rep.max_lost_s = max(rep.max_lost_s, lost)
            rep.corrupt_files += len(chk.corrupt)
            rep.unindexed_files += len(chk.unindexed)
            rep.missing_files += len(chk.missing)
            rep.partial_left += len(chk.partial_left)
            rep.overlapping += len(chk.overlapping)
            rep.final_files = chk.files
            if not chk.ok:
                rep.failures.append(f"cut {cut}: {chk}")
            epoch = max(ends + [last_fed]) + 1.0     # the camera reboots and records on (a simulated second later)
            epoch = float(int(epoch)) + 1.0
        finally:
            index.close()
    return rep


# ---- power loss: unsynced writes dropped or torn (device_sim.storage.powerloss) ------------------------------------
class NoFsyncRecorder(Recorder):
    """Mutant: closes a minute without fsync of the file or of its folder (rename, then the index row)."""

    def _finish(self) -> None:
        cur = self._cur
        if cur is None:
            return
        self.card.require(write=True)
        cur.mux.close()
        cur.fh.close()
        self._cur = None
        self.card.replace(partial_name(cur.final_rel), cur.final_rel)
        size = (self.card.mount_point / cur.final_rel).stat().st_size
        self.index.add(cur.final_rel, cur.start_wall, cur.end_wall, bytes=size, frames=cur.mux.frames)
        self._last_minute_bytes = max(self._last_minute_bytes, size)


class RowBeforeRenameRecorder(Recorder):
    """Mutant: writes the index row before the rename (fsyncs otherwise as the real recorder does)."""

    def _finish(self) -> None:
        cur = self._cur
        if cur is None:
            return
        self.card.require(write=True)
        cur.mux.close()
        cur.fh.fsync()
        cur.fh.close()
        self._cur = None
        size = (self.card.mount_point / partial_name(cur.final_rel)).stat().st_size
        self.index.add(cur.final_rel, cur.start_wall, cur.end_wall, bytes=size, frames=cur.mux.frames)
        self.card.replace(partial_name(cur.final_rel), cur.final_rel)
        self.card.fsync_dir(Path(cur.final_rel).parent)
        self._last_minute_bytes = max(self._last_minute_bytes, size)


RECORDERS = {"real": Recorder, "no_fsync": NoFsyncRecorder, "row_before_rename": RowBeforeRenameRecorder}


def _intervals_len(iv: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(iv):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def lost_footage(fed: tuple[float, float], rows: list, tol: float = 1e-3) -> tuple[float, float]:
    """(lost seconds, of which holes) of the footage fed in ``fed`` = (start, end) that no index row covers; a hole
    is lost footage before the last covered instant (the tail after it is the minute in flight)."""
    a, b = fed
    cov = [(max(a, r.start_s), min(b, r.end_s)) for r in rows if r.end_s > a and r.start_s < b]
    lost = max(0.0, (b - a) - _intervals_len(cov))
    tail = b - max([e for _, e in cov], default=a)
    return lost, lost - tail if lost > tail + tol else 0.0


@dataclass
class PowerLossReport:
    recorder: str = "real"
    power_cuts: int = 0
    cuts_by_kind: dict = field(default_factory=lambda: {"write": 0, "fsync": 0, "namespace": 0})
    recovery_cuts: int = 0
    files_torn: int = 0                  # files whose unsynced writes were cut part-way (dropped / torn)
    files_lost_at_cut: int = 0           # files present at the cut the durable image lacks (names not yet durable)
    # BEFORE reconcile (what the recorder itself guarantees): an indexed file is whole
    pre_indexed_missing: int = 0
    pre_indexed_corrupt: int = 0
    pre_unindexed: int = 0               # final files without a row (reconcile's job, allowed)
    pre_partials: int = 0
    # what reconcile had to do
    repaired: int = 0
    discarded: int = 0
    deferred: int = 0                    # partials kept for later (their repair did not fit)
    quarantined: int = 0
    indexed_orphans: int = 0
    dropped_rows: int = 0
    # AFTER reconcile
    corrupt_files: int = 0
    unindexed_files: int = 0
    missing_files: int = 0
    partial_left: int = 0
    overlapping: int = 0
    lost_s: float = 0.0                  # footage fed but not on the card after reconcile, all cuts
    max_lost_s: float = 0.0
    hole_s: float = 0.0                  # of it, lost in the middle (not the tail in flight at the cut)
    cuts_with_holes: int = 0
    lost_per_cut: list = field(default_factory=list)   # (lost s, the operation cut, partials discarded, boot s)
    final_files: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return (self.pre_indexed_missing + self.pre_indexed_corrupt + self.corrupt_files + self.unindexed_files
                + self.missing_files + self.partial_left + self.overlapping + self.cuts_with_holes)

    @property
    def ok(self) -> bool:
        return self.violations == 0 and self.max_lost_s <= 61.0


def _check_indexed(card: SdCard, index: Index) -> tuple[list[str], list[str]]:
    """Indexed files that are missing / that do not decode (whatever the index says exists must be whole)."""
    root = card.require()
    missing, corrupt = [], []
    for rec in index.all():
        f = root / rec.path
        if not f.is_file():
            missing.append(rec.path)
            continue
        try:
            info = probe_mp4(f, decode=True)
            if info["frames"] < rec.frames:
                corrupt.append(rec.path)
        except InputFileError:
            corrupt.append(rec.path)
    return missing, corrupt


def run_power_loss(base: Path, n_cuts: int, *, seed: int = 0, recorder: str = "real", capacity: int = 3_000_000,
                   max_boot_s: float = 150.0, recovery_cut_fraction: float = 0.2, tear: bool = True,
                   src: SyntheticSource | None = None, stop_after_failures: int | None = None,
                   fsync_interval_s: float = 5.0) -> PowerLossReport:
    """Record on a card behind :class:`~device_sim.storage.powerloss.PowerLossLayer`, cut the power ``n_cuts`` times
    (each boot records up to ``max_boot_s`` simulated seconds, the cut lands inside a write, an fsync or a namespace
    operation), drop/tear what was not durable, check the index BEFORE reconcile (an indexed file must be whole),
    reconcile (``recovery_cut_fraction`` of the boots cut the power inside the reconcile too, then reconcile again),
    check AFTER, and count the footage lost (holes in the middle included). ``recorder``: 'real' or a mutant of
    :data:`RECORDERS`. The recorder fsyncs every ``fsync_interval_s`` of media time (its default on the camera), so
    a cut may lose that much of the minute in flight plus the GOP being written."""
    from device_sim.storage.powerloss import KINDS, PowerCut, PowerLossLayer
    if recorder not in RECORDERS:
        raise ValueError(f"run_power_loss: recorder must be one of {sorted(RECORDERS)}, got {recorder!r}")
    if n_cuts < 0 or max_boot_s <= 0:
        raise ValueError("run_power_loss: n_cuts must be >= 0 and max_boot_s > 0")
    rng = random.Random(seed)
    src = src or SyntheticSource(64, 64, fps=10, gop=10)
    rep = PowerLossReport(recorder=recorder)
    epoch = 1_763_769_600.0
    card = SdCard(Path(base), capacity)
    for cut in range(n_cuts):
        layer = PowerLossLayer(card.mount_point, tear=tear)
        card.fs = layer
        index = Index(card.mount_point / INDEX_REL)
        now = [0.0]
        rec = RECORDERS[recorder](card, index, Retention(card, index), info=src.info, epoch_base=epoch,
                                  fsync_interval_s=fsync_interval_s, clock=lambda: now[0])
        rec.stats.keep_history = False
        kind = rng.choices(KINDS, weights=(0.4, 0.2, 0.4))[0]
        n_pkts = int(rng.uniform(0.2, 1.0) * max_boot_s * src.fps)
        # the cut: past a random point of the boot, inside the next operations of the chosen kind
        last_fed = epoch
        for i in range(n_pkts):
            if i == n_pkts // 2:
                layer.arm(kind, rng.randint(0, 3 if kind != "write" else 40))
            try:
                pkt = src.packet(i)
                now[0] = pkt.pts_s
                rec.write(pkt)
            except PowerCut:
                break
            if layer.dead:
                break
            last_fed = epoch + pkt.pts_s + pkt.duration_s
        else:                                       # the armed op never came: cut at the next one of any kind
            layer.arm("namespace")
            try:
                rec.close()
            except PowerCut:
                pass
        rep.power_cuts += 1
        rep.cuts_by_kind[kind] += 1
        index.close()
        crash = layer.crash(rng)
        rep.files_torn += crash.files_torn
        rep.files_lost_at_cut += crash.files_lost
        card.fs = OsLayer()
        index = Index(card.mount_point / INDEX_REL)
        try:
            missing, corrupt = _check_indexed(card, index)
            finals, partials = recording_files(card.mount_point)
            rep.pre_indexed_missing += len(missing)
            rep.pre_indexed_corrupt += len(corrupt)
            rep.pre_unindexed += len(set(finals) - index.paths())
            rep.pre_partials += len(partials)
            if missing or corrupt:
                rep.failures.append(f"cut {cut} ({crash.cut_op}) before reconcile: indexed missing {missing}, "
                                    f"indexed corrupt {corrupt}")
            if rng.random() < recovery_cut_fraction:           # the power goes again during the recovery
                rlayer = PowerLossLayer(card.mount_point, tear=tear)
                rlayer.arm(rng.choice(KINDS), rng.randint(0, 3))
                card.fs = rlayer
                try:
                    reconcile(card, index, retention=Retention(card, index))
                except PowerCut:
                    pass
                index.close()
                rlayer.crash(rng)
                card.fs = OsLayer()
                index = Index(card.mount_point / INDEX_REL)
                rep.recovery_cuts += 1
            r = reconcile(card, index, retention=Retention(card, index))
            rep.repaired += len(r.repaired)
            rep.discarded += len(r.discarded)
            rep.deferred += len(r.deferred)
            rep.quarantined += len(r.quarantined)
            rep.indexed_orphans += len(r.indexed_orphans)
            rep.dropped_rows += len(r.dropped_rows)
            chk = check_card(card, index)
            rep.corrupt_files += len(chk.corrupt)
            rep.unindexed_files += len(chk.unindexed)
            rep.missing_files += len(chk.missing)
            rep.partial_left += len(chk.partial_left)
            rep.overlapping += len(chk.overlapping)
            rep.final_files = chk.files
            if not chk.ok:
                rep.failures.append(f"cut {cut} ({crash.cut_op}) after reconcile: {chk}")
            bad = set(chk.corrupt) | set(chk.missing)           # a row over a broken file keeps no footage
            rows = [r for r in index.all() if r.kind == "minute" and r.path not in bad]
            lost, holes = lost_footage((epoch, last_fed), rows)
            rep.lost_per_cut.append((round(lost, 1), crash.cut_op, len(r.discarded), round(last_fed - epoch, 1)))
            rep.lost_s += lost
            rep.max_lost_s = max(rep.max_lost_s, lost)
            if holes > 0:
                rep.hole_s += holes
                rep.cuts_with_holes += 1
                rep.failures.append(f"cut {cut} ({crash.cut_op}): {holes:.1f} s lost in the middle")
            ends = [r.end_s for r in rows]
            epoch = float(int(max(ends + [last_fed]))) + 2.0    # the camera reboots and records on
        finally:
            index.close()
        if stop_after_failures is not None and len(rep.failures) >= stop_after_failures:
            break
    rep.lost_s = round(rep.lost_s, 2)
    rep.hole_s = round(rep.hole_s, 2)
    return rep
