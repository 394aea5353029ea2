"""SQLite index of the card's footage for timeline queries and retention (WAL journal, synchronous=FULL).

SQLite write-ahead logging (https://www.sqlite.org/wal.html): a power cut loses at most the transaction in flight and
never leaves a torn index. On a full card (the index lives on it) a write fails with SQLITE_FULL, rolled back by
SQLite; it is raised as :class:`IndexFull`, a :class:`CardError` with errno ``ENOSPC``, so the recorder treats it as
the card being full (retention, then a retry) and the rows already stored stay. Rows are written only after the file they name is durable (fsync + rename), so a crash
can leave a file without a row (found and indexed by :func:`device_sim.storage.reconcile.reconcile`) but never a row
pointing at a half-written file.

Tiers (retention deletes the lowest tier first, oldest first): ``TIER_CONTINUOUS`` 0, ``TIER_EVENT`` 1 (footage
overlapping an event window), ``TIER_PROTECTED`` 2 (clips the user protected).
"""
from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from camlab.errors import InputFileError
from device_sim.hal.sdcard import CardError

TIER_CONTINUOUS, TIER_EVENT, TIER_PROTECTED = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    path TEXT PRIMARY KEY,          -- relative to the card root
    kind TEXT NOT NULL,             -- 'minute' (continuous MP4) | 'clip' (event clip folder)
    start_s REAL NOT NULL,          -- wall clock (UNIX seconds)
    end_s REAL NOT NULL,
    tier INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    event_id TEXT
);
CREATE INDEX IF NOT EXISTS recordings_start ON recordings(start_s);
CREATE INDEX IF NOT EXISTS recordings_tier ON recordings(tier, start_s);
CREATE TABLE IF NOT EXISTS event_windows (
    event_id TEXT PRIMARY KEY, start_s REAL NOT NULL, end_s REAL NOT NULL, type TEXT
);
"""


class IndexFull(CardError):
    """SQLITE_FULL: the card has no room for the index to grow (errno ENOSPC). The transaction was rolled back:
    rows already stored are intact."""


@contextlib.contextmanager
def _full_is_enospc(db_path: Path, what: str):
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_FULL or (code is None and "full" in str(exc)):
            raise IndexFull(errno.ENOSPC, f"sd card full: the index could not {what} (SQLITE_FULL: {exc}); rows "
                            "already stored are intact", str(db_path)) from exc
        raise


class UnsafeCardPath(InputFileError):
    """An index row (read from the card, which is untrusted input) names a path outside the card."""


def card_file(root: Path, rel: str, where: str = "the card") -> Path:
    """``root / rel`` for a path read from the card's index, refused unless ``rel`` is a relative POSIX path of plain
    names (no absolute path, '.', '..', backslash or NUL) that still resolves under ``root`` (no symlink out)."""
    bad = (not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel or rel.startswith("/")
           or any(part in ("", ".", "..") for part in rel.split("/")))
    if not bad:
        base = Path(root).resolve()
        full = (base / PurePosixPath(rel)).resolve()
        bad = not full.is_relative_to(base) or full == base
    if bad:
        raise UnsafeCardPath(f"{rel!r} in the card's index: path points outside {where} (absolute, '..' or a link "
                             "out); row refused")
    return Path(root) / rel


@dataclass(frozen=True)
class Recording:
    path: str
    kind: str
    start_s: float
    end_s: float
    tier: int
    bytes: int
    frames: int
    event_id: str | None = None


class Index:
    """The footage index at ``db_path`` (created on first use)."""

    def __init__(self, db_path: Path, *, readonly: bool = False):
        self.db_path = Path(db_path)
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:            # a write-protected card: nothing may touch the file, not even the WAL's -shm
            target = f"file:{self.db_path}?immutable=1" if self.db_path.exists() else "file::memory:"
            self._db = sqlite3.connect(target, uri=True, check_same_thread=False)
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name='recordings'").fetchone():
                self._db.close()
                self._db = sqlite3.connect(":memory:", check_same_thread=False)
                self._db.executescript(_SCHEMA)
            return
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA wal_autocheckpoint=64")
        self._db.execute("PRAGMA journal_size_limit=262144")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args=()) -> list[Recording]:
        with self._lock:
            return [Recording(*r) for r in self._db.execute(
                f"SELECT path, kind, start_s, end_s, tier, bytes, frames, event_id FROM recordings {sql}", args)]

    def add(self, path: str, start_s: float, end_s: float, *, bytes: int, frames: int, kind: str = "minute",
            tier: int | None = None, event_id: str | None = None) -> Recording:
        """Index a durable file; its tier is raised to EVENT when it overlaps a known event window."""
        with self._lock, _full_is_enospc(self.db_path, f"add {path}"):
            if tier is None:
                hit = self._db.execute("SELECT 1 FROM event_windows WHERE start_s < ? AND end_s > ? LIMIT 1",
                                       (end_s, start_s)).fetchone()
                tier = TIER_EVENT if hit else TIER_CONTINUOUS
            self._db.execute("INSERT OR REPLACE INTO recordings VALUES (?,?,?,?,?,?,?,?)",
                             (path, kind, start_s, end_s, tier, bytes, frames, event_id))
            return Recording(path, kind, start_s, end_s, tier, bytes, frames, event_id)

    def remove(self, path: str) -> None:
        with self._lock, _full_is_enospc(self.db_path, f"remove {path}"):
            self._db.execute("DELETE FROM recordings WHERE path = ?", (path,))

    def get(self, path: str) -> Recording | None:
        rows = self._rows("WHERE path = ?", (path,))
        return rows[0] if rows else None

    def all(self) -> list[Recording]:
        return self._rows("ORDER BY start_s")

    def paths(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT path FROM recordings")}

    def timeline(self, start_s: float, end_s: float, kind: str = "minute") -> list[Recording]:
        """Recordings overlapping ``[start_s, end_s)`` in time order."""
        return self._rows("WHERE kind = ? AND start_s < ? AND end_s > ? ORDER BY start_s", (kind, end_s, start_s))

    def oldest(self, tier: int, limit: int = 16) -> list[Recording]:
        return self._rows("WHERE tier = ? ORDER BY start_s LIMIT ?", (tier, limit))

    def mark_event(self, event_id: str, start_s: float, end_s: float, type: str | None = None) -> int:
        """Remember an event window and raise overlapping footage to TIER_EVENT; returns rows raised."""
        with self._lock, _full_is_enospc(self.db_path, f"mark event {event_id}"):
            self._db.execute("INSERT OR REPLACE INTO event_windows VALUES (?,?,?,?)", (event_id, start_s, end_s, type))
            cur = self._db.execute("UPDATE recordings SET tier = ? WHERE tier < ? AND start_s < ? AND end_s > ?",
                                   (TIER_EVENT, TIER_EVENT, end_s, start_s))
            return cur.rowcount

    def protect(self, path: str, on: bool = True) -> None:
        with self._lock, _full_is_enospc(self.db_path, f"protect {path}"):
            self._db.execute("UPDATE recordings SET tier = ? WHERE path = ?",
                             (TIER_PROTECTED if on else TIER_EVENT, path))
