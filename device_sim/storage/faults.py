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
from device_sim.hal.sdcard import SdCard
from device_sim.storage.index import Index
from device_sim.storage.mux import probe_mp4
from device_sim.storage.reconcile import reconcile, recording_files
from device_sim.storage.recorder import Recorder
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
            r = reconcile(card, index)
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
