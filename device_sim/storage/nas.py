"""NAS backup: copies finished recordings from the card to a mounted share (SMB/NFS) on a schedule.

The target is a directory (where an SMB/NFS share is mounted). Copies are atomic and verified (temp file + fsync +
rename, then size + SHA-256 against the source), so a dropped share mid-copy leaves no torn file there; what was
copied is remembered in ``<target>/.camlab-nas.json`` (written atomically), so each file is copied once.

API::

    nas = NasSync(card, index, target_dir, interval_s=3600)
    nas.sync_once()          # -> NasReport (copied / skipped / errors), also run by the schedule
    nas.start(); nas.stop()  # the schedule (a thread, every interval_s)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from camlab.io_utils import atomic_write_json, current_umask, fsync_dir
from device_sim.hal.sdcard import SdCard
from device_sim.storage.index import Index, UnsafeCardPath, card_file

LEDGER = ".camlab-nas.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class NasReport:
    copied: list[str] = field(default_factory=list)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class NasSync:
    def __init__(self, card: SdCard, index: Index, target: Path, *, interval_s: float = 3600.0):
        if interval_s <= 0:
            raise ValueError("nas: interval_s must be > 0")
        self.card, self.index, self.target, self.interval_s = card, index, Path(target), interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs: list[NasReport] = []

    def _ledger(self) -> dict:
        try:
            return json.loads((self.target / LEDGER).read_text())
        except (OSError, ValueError):
            return {}

    def sync_once(self) -> NasReport:
        rep = NasReport()
        if not self.target.is_dir():
            rep.errors.append(f"NAS target {self.target} is not mounted (not a directory)")
            self.runs.append(rep)
            return rep
        try:
            root = self.card.require()
            recs = self.index.all()
        except OSError as exc:
            rep.errors.append(f"sd card: {exc}")
            self.runs.append(rep)
            return rep
        ledger = self._ledger()
        for rec in recs:
            if rec.kind != "minute":
                continue
            try:                               # the card is untrusted: a row may not name a path outside it
                src = card_file(root, rec.path)
                dst = card_file(self.target, rec.path, "the NAS share")
            except UnsafeCardPath as exc:
                rep.errors.append(str(exc))
                continue
            try:
                st = src.stat()
                if ledger.get(rec.path, {}).get("bytes") == st.st_size and (self.target / rec.path).exists():
                    rep.skipped += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
                try:
                    os.fchmod(fd, 0o666 & ~current_umask())  # like a plain copy, not mkstemp's 0600
                    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                        shutil.copyfileobj(inp, out, 1 << 20)
                        out.flush()
                        os.fsync(out.fileno())
                    digest = _sha256(src)
                    if os.path.getsize(tmp) != st.st_size or _sha256(Path(tmp)) != digest:
                        raise OSError(f"verify failed for {rec.path}")
                    os.replace(tmp, dst)
                    fsync_dir(dst.parent)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                ledger[rec.path] = {"bytes": st.st_size, "sha256": digest, "start_s": rec.start_s}
                rep.copied.append(rec.path)
            except FileNotFoundError:
                continue                       # retention removed it meanwhile
            except OSError as exc:
                rep.errors.append(f"{rec.path}: {exc}")
        if rep.copied:
            atomic_write_json(self.target / LEDGER, ledger)
        self.runs.append(rep)
        return rep

    def start(self) -> "NasSync":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="nas-sync", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sync_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
