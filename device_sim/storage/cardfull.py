"""A really full card: the recorder and its SQLite index on a small tmpfs, filled by another writer (real ENOSPC).

Linux lets an unprivileged user mount a tmpfs inside a user + mount namespace (``unshare -rm``); its ``size=`` is a
hard limit, so writes fail with the kernel's own ``ENOSPC`` and SQLite with its own ``SQLITE_FULL``, not with the
card HAL's accounting. :func:`run_card_full` starts ``python -m device_sim.storage.cardfull`` in such a namespace (the
mount lives and dies with it) and returns its JSON report; :func:`tmpfs_available` says whether this machine allows it.

In the namespace, per trial: record on a card filling the tmpfs; at a seeded random moment a foreign writer
(snapshots, another app: files the index does not know and retention may not delete) fills the file system to the
last byte. The recorder must not raise, must keep recording after retention made room, and every minute stored before
the fill must still be there (indexed and decoding) unless retention deleted it on purpose. One direct probe also
fills the tmpfs and asks the index to grow: it must answer :class:`~device_sim.storage.index.IndexFull` (SQLITE_FULL
as ENOSPC), with every stored row intact and ``PRAGMA integrity_check`` ok.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from device_sim.hal.sdcard import OsLayer

ROOT = Path(__file__).resolve().parents[2]


def tmpfs_available() -> bool:
    """True when ``unshare -rm`` can mount a tmpfs here (no root needed on kernels that allow user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {d}"],
                           capture_output=True, timeout=30)
        return r.returncode == 0


def run_card_full(size_bytes: int = 4_000_000, trials: int = 4, minutes: float = 45.0, seed: int = 0,
                  timeout_s: float = 600) -> dict:
    """Run the trials in a fresh user + mount namespace over a tmpfs of ``size_bytes``; the child's JSON report."""
    if size_bytes < 1_000_000 or trials < 1 or minutes <= 0:
        raise ValueError("run_card_full: size_bytes >= 1_000_000, trials >= 1 and minutes > 0 expected")
    if not tmpfs_available():
        raise RuntimeError("run_card_full: this machine does not allow an unprivileged tmpfs mount (unshare -rm)")
    with tempfile.TemporaryDirectory(prefix="cardfull_") as d:
        cmd = (f"mount -t tmpfs -o size={int(size_bytes)} tmpfs {d} && exec {sys.executable} -m "
               f"device_sim.storage.cardfull {d} --trials {int(trials)} --minutes {float(minutes)} --seed {int(seed)}")
        r = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=timeout_s,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode != 0:
        raise RuntimeError(f"card-full child failed (rc {r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _fill(path: Path) -> int:
    """Write ``path`` until the file system answers ENOSPC; returns the bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as fh:
        for chunk in (65536, 4096, 512, 1):
            while True:
                try:
                    n += fh.write(bytes(chunk))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        try:
            os.fsync(fh.fileno())
        except OSError:
            pass
    return n


def _index_probe(mount: Path) -> dict:
    """Fill the tmpfs, then ask the index to grow: IndexFull (ENOSPC), rows intact, integrity ok."""
    from device_sim.storage.index import Index, IndexFull
    base = mount / "probe"
    base.mkdir()
    index = Index(base / "index.db")
    for i in range(200):
        index.add(f"2025/11/22/00/{i:04d}.mp4", i * 60.0, i * 60.0 + 60, bytes=1000, frames=600)
    _fill(base / "junk.bin")
    full = None
    for i in range(200, 20_000):
        try:
            index.add(f"2025/11/22/00/{i:04d}-with-a-long-name-to-grow-the-db.mp4", i * 60.0, i * 60.0 + 60,
                      bytes=1000, frames=600)
        except IndexFull as exc:
            full = exc
            break
    stored = i
    ok = index._db.execute("PRAGMA integrity_check").fetchone()[0]
    rows = len(index.all())
    index.close()
    reopened = Index(base / "index.db")
    rows_after_reopen = len(reopened.all())
    reopened.close()
    shutil.rmtree(base)
    return {"index_full_raised": full is not None, "index_full_errno": getattr(full, "errno", None),
            "index_full_message": str(full) if full else None, "rows_stored_before_full": stored,
            "rows_after_full": rows, "rows_after_reopen": rows_after_reopen, "integrity_check": ok}


class _FillOnRename(OsLayer):
    """The foreign writer strikes between a minute's rename and its index row (the index must grow on a full card)."""

    def __init__(self, junk: Path):
        self.junk, self.armed, self.filled = junk, False, 0

    def replace(self, src: Path, dst: Path) -> None:
        super().replace(src, dst)
        if self.armed and dst.suffix == ".mp4":
            self.armed = False
            self.filled = _fill(self.junk)


def _trial(mount: Path, k: int, minutes: float, rng: random.Random, at_rename: bool) -> dict:
    from device_sim.hal.sdcard import SdCard
    from device_sim.storage.faults import INDEX_REL, check_card
    from device_sim.storage.index import Index
    from device_sim.storage.reconcile import reconcile
    from device_sim.storage.recorder import Recorder
    from device_sim.storage.retention import Retention
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=10, gop=10)
    st = os.statvfs(mount)
    cap = st.f_blocks * st.f_frsize
    base = mount / f"t{k}"
    card = SdCard(base, cap, cluster_bytes=4096)
    layer = _FillOnRename(card.mount_point / "snapshots.bin")
    card.fs = layer
    index = Index(card.mount_point / INDEX_REL)
    ret = Retention(card, index)
    events: list[str] = []
    rec = Recorder(card, index, ret, info=src.info, epoch_base=1_763_769_600.0, fsync_interval_s=5.0,
                   on_error=lambda exc: events.append(f"{type(exc).__name__}: {exc}"))
    clock = [0.0]
    rec.clock = lambda: clock[0]
    n = int(minutes * 60 * src.fps)
    if at_rename:                    # early, while the index's WAL still grows: the row needs new room on the card
        fill_at = rng.randint(int(120 * src.fps), int(300 * src.fps))
    else:                            # after the card loops
        fill_at = rng.randint(int(0.6 * n), int(0.8 * n))
    escaped = None
    before_fill: set[str] = set()
    filled = 0
    for i in range(n):
        if i == fill_at:
            before_fill = index.paths()
            if at_rename:                                         # at the next minute's rename
                layer.armed = True
            else:                                                 # now, a foreign file retention cannot free
                filled = _fill(layer.junk)
        pkt = src.packet(i)
        clock[0] = pkt.pts_s
        try:
            rec.write(pkt)
        except Exception as exc:                                  # must not happen
            import traceback
            escaped = f"{type(exc).__name__}: {exc}: {traceback.format_exc()[-1500:]}"
            break
    try:
        rec.close()
    except Exception as exc:
        escaped = escaped or f"close: {type(exc).__name__}: {exc}"
    deleted = {p for p, _ in ret.stats.deleted}
    r = reconcile(card, index)
    chk = check_card(card, index)
    now = index.paths()
    lost_stored = sorted(before_fill - now - deleted)
    rows = index.all()
    out = {"fill": "between a rename and its index row" if at_rename else "at a random moment",
           "fill_at_s": fill_at / src.fps, "foreign_bytes": filled or layer.filled, "escaped": escaped,
           "enospc_errors": sum(e.startswith("ENOSPC") for e in rec.stats.errors),
           "index_full": rec.stats.index_full, "index_full_events": sum("SQLITE_FULL" in e for e in events),
           "deleted_by_retention": len(deleted), "stored_minutes_lost": lost_stored,
           "reconcile": {"repaired": len(r.repaired), "discarded": len(r.discarded), "orphans": len(r.indexed_orphans),
                         "quarantined": len(r.quarantined), "deferred": len(r.deferred)},
           "check_ok": chk.ok, "check": str(chk) if not chk.ok else "",
           "recording_at_end": bool(rows) and rows[-1].end_s >= 1_763_769_600.0 + n / src.fps - 61,
           "integrity_check": index._db.execute("PRAGMA integrity_check").fetchone()[0]}
    index.close()
    shutil.rmtree(base)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mount", type=Path, help="a tmpfs mount point (empty)")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not a.mount.is_dir():
        ap.error(f"{a.mount}: not a folder")
    rng = random.Random(a.seed)
    out = {"tmpfs_bytes": os.statvfs(a.mount).f_blocks * os.statvfs(a.mount).f_frsize,
           "index_probe": _index_probe(a.mount), "trials": [_trial(a.mount, k, a.minutes, rng, at_rename=k % 2 == 1)
                                                              for k in range(a.trials)]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
