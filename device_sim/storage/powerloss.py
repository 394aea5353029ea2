"""A file-system layer for the TF card that loses what was not synced when the power goes (a Python VFS shim).

The kill -9 of a recording process keeps the kernel's page cache, so every write survives it; a power cut does not.
This layer models the second (the way SQLite's crash tests and ALICE/LazyFS model it), strict POSIX:

* file data written since the file's last ``fsync`` is *pending*: at the cut a random prefix of the pending writes
  survives and the next one may be torn at a 512-byte sector boundary (a prefix of its sectors reaches the card);
* a directory entry (a create, a rename, an unlink, a mkdir/rmdir) is durable only once its directory is fsynced:
  a file renamed after its fsync but before the folder's fsync comes back under its old name (or not at all when its
  creation was never made durable either), an unlinked file comes back, a new folder whose parent was not fsynced
  vanishes with everything in it.

Everything the card's writers do goes through :class:`~device_sim.hal.sdcard.SdCard` (``open_write``, ``replace``,
``unlink``, ``makedirs``, ``rmdir``, ``fsync_dir``), which hands it to ``card.fs``: :class:`OsLayer` (the plain OS,
the default) or :class:`PowerLossLayer`. The real files are written as they go (they are the page cache: every
reader sees them); the layer keeps, beside them, the durable image. :meth:`PowerLossLayer.crash` replaces the card's
tree with that image (plus the torn pending writes), which is what the next boot finds.

The SQLite index (``.index/``) is outside the layer: SQLite makes a transaction durable itself before the commit
returns (WAL, ``synchronous=FULL``: it fsyncs the WAL at each commit), and a cut here lands only inside a card
operation, never inside a SQLite call, so the index on disk at the cut is exactly its last committed state.

A cut is armed with :meth:`PowerLossLayer.arm`: the power goes *during* the next operation of a kind (``write``,
``fsync``, ``namespace``: create/rename/unlink/mkdir/rmdir/fsync of a folder) after ``skip`` of them; that operation
does not happen (a write's sectors may still reach the card torn). After the cut every operation raises
:class:`PowerCut` (the CPU has no power).
"""
from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from device_sim.hal.sdcard import OsLayer

SECTOR = 512
KINDS = ("write", "fsync", "namespace")


class PowerCut(Exception):
    """The power went (raised by every operation from the cut on; deliberately not an OSError, so no error handler
    of the code under test can take it for a card error and carry on)."""


@dataclass
class _File:
    durable: bytearray | None          # content at the last fsync; None: the file on disk at ``lazy`` is durable
    lazy: Path | None = None           # where its durable bytes lie (a file untouched since the layer started)
    pending: list = field(default_factory=list)   # (offset, bytes) written since the last fsync, in order


class _ShimFile:
    """A seekable binary file whose writes the layer records as pending until fsync."""

    def __init__(self, layer: "PowerLossLayer", path: Path, fid: int):
        self._layer, self._fid = layer, fid
        self._fh = open(path, "w+b")
        self.name = str(path)

    def write(self, data) -> int:
        data = bytes(data)
        self._layer._op("write", (self._fid, self._fh.tell(), data))
        self._layer._files[self._fid].pending.append((self._fh.tell(), data))
        return self._fh.write(data)

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()            # into the page cache: not durable

    def fileno(self) -> int:
        return self._fh.fileno()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed


@dataclass
class CrashReport:
    files_lost: int = 0               # files in the tree at the cut that the durable image lacks
    files_torn: int = 0               # files whose pending writes were cut part-way (torn or dropped)
    renames_undone: int = 0           # durable names that differ from the names at the cut
    bytes_dropped: int = 0
    cut_op: str = ""


class PowerLossLayer(OsLayer):
    """The durable image of ``root`` beside the real files (see the module docstring). ``exclude``: top-level names
    left to their own durability (the SQLite index and the superblock)."""

    def __init__(self, root: Path, *, exclude: tuple[str, ...] = (".index", ".sdcard"), tear: bool = True):
        self.root = Path(root)
        self.exclude = set(exclude)
        self.tear = tear
        self.dead = False
        self.ops = dict.fromkeys(KINDS, 0)
        self._armed: tuple[str, int] | None = None
        self._cut_write: tuple[int, int, bytes] | None = None
        self.cut_op = ""
        self._files: dict[int, _File] = {}
        self._next = 0
        self._cur: dict[str, int] = {}          # rel path -> file id, the tree as the OS sees it now
        self._cur_dirs: set[str] = set()        # rel dirs ('' is the root)
        self._dur: dict[str, int] = {}          # the durable tree
        self._dur_dirs: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir
            if rel_dir == "":
                dirnames[:] = [d for d in dirnames if d not in self.exclude]
                filenames = [f for f in filenames if f not in self.exclude]
            self._cur_dirs.add(rel_dir)
            for f in filenames:
                rel = f"{rel_dir}/{f}" if rel_dir else f
                self._cur[rel] = self._new_file(_File(None, lazy=self.root / rel))
        self._dur, self._dur_dirs = dict(self._cur), set(self._cur_dirs)

    # ---- arming and bookkeeping -----------------------------------------------------------------------------
    def arm(self, kind: str, skip: int = 0) -> None:
        """Cut the power during the ``skip``-th next operation of ``kind`` (0: the very next one)."""
        if kind not in KINDS:
            raise ValueError(f"power loss: kind must be one of {KINDS}, got {kind!r}")
        if skip < 0:
            raise ValueError(f"power loss: skip must be >= 0, got {skip}")
        self._armed = (kind, self.ops[kind] + skip)

    def _new_file(self, f: _File) -> int:
        self._next += 1
        self._files[self._next] = f
        return self._next

    def _rel(self, path: Path) -> str:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        if rel.startswith("../") or rel == "..":
            raise ValueError(f"power loss layer: {path} is not on the card {self.root}")
        return "" if rel == "." else rel

    def _managed(self, rel: str) -> bool:
        return rel.split("/", 1)[0] not in self.exclude

    def _op(self, kind: str, write: tuple[int, int, bytes] | None = None) -> None:
        if self.dead:
            raise PowerCut("no power")
        if self._armed is not None and self._armed == (kind, self.ops[kind]):
            self.dead = True
            self._cut_write = write
            self.cut_op = f"{kind} #{self.ops[kind]}"
            raise PowerCut(f"power cut during {self.cut_op}")
        self.ops[kind] += 1

    def _keep_bytes(self, fid: int) -> None:
        """Before a file leaves the tree, keep its durable bytes (the unlink or overwrite may be undone)."""
        f = self._files[fid]
        if f.durable is None and fid in self._dur.values():
            try:
                f.durable = bytearray(f.lazy.read_bytes())
            except OSError:
                f.durable = bytearray()
            f.lazy = None

    # ---- the operations ---------------------------------------------------------------------------------------
    def open_new(self, path: Path):
        rel = self._rel(path)
        if not self._managed(rel):
            return super().open_new(path)
        self._op("namespace")
        if rel in self._cur:
            self._keep_bytes(self._cur[rel])
        fid = self._new_file(_File(bytearray()))
        self._cur[rel] = fid
        return _ShimFile(self, path, fid)

    def fsync_file(self, fh) -> None:
        if not isinstance(fh, _ShimFile):
            return super().fsync_file(fh)
        self._op("fsync")
        fh.flush()
        f = self._files[fh._fid]
        for off, data in f.pending:
            _apply(f.durable, off, data)
        f.pending.clear()

    def replace(self, src: Path, dst: Path) -> None:
        rs, rd = self._rel(src), self._rel(dst)
        if not (self._managed(rs) and self._managed(rd)):
            return super().replace(src, dst)
        self._op("namespace")
        if rd in self._cur:
            self._keep_bytes(self._cur[rd])
        os.replace(src, dst)
        fid = self._cur.pop(rs)
        self._cur[rd] = fid
        if self._files[fid].lazy is not None:
            self._files[fid].lazy = Path(dst)

    def unlink(self, path: Path) -> None:
        rel = self._rel(path)
        if not self._managed(rel):
            return super().unlink(path)
        self._op("namespace")
        if rel in self._cur:
            self._keep_bytes(self._cur[rel])
        os.unlink(path)
        self._cur.pop(rel, None)

    def mkdir(self, path: Path) -> None:
        rel = self._rel(path)
        if not self._managed(rel):
            return super().mkdir(path)
        self._op("namespace")
        os.mkdir(path)
        self._cur_dirs.add(rel)

    def rmdir(self, path: Path) -> None:
        rel = self._rel(path)
        if not self._managed(rel):
            return super().rmdir(path)
        self._op("namespace")
        os.rmdir(path)
        self._cur_dirs.discard(rel)

    def fsync_dir(self, path: Path) -> None:
        rel = self._rel(path)
        if not self._managed(rel):
            return super().fsync_dir(path)
        self._op("namespace")
        super().fsync_dir(path)
        for tree, durable in ((self._cur, self._dur),):
            for name in [n for n in durable if _parent(n) == rel]:
                del durable[name]
            durable.update({n: fid for n, fid in tree.items() if _parent(n) == rel})
        self._dur_dirs = {d for d in self._dur_dirs if d == "" or _parent(d) != rel}
        self._dur_dirs |= {d for d in self._cur_dirs if d != "" and _parent(d) == rel}

    # ---- the cut -----------------------------------------------------------------------------------------------
    def crash(self, rng: random.Random) -> CrashReport:
        """The power is gone: replace the tree under ``root`` with the durable image, with a random prefix of each
        file's pending writes surviving (the next one torn at a sector boundary when ``tear``). The caller must have
        closed everything open on the card (the SQLite connection included)."""
        self.dead = True
        rep = CrashReport(cut_op=self.cut_op)
        if self._cut_write is not None:                  # the write in progress at the cut: its sectors may land
            fid, off, data = self._cut_write
            self._files[fid].pending.append((off, data))

        def reachable(d: str) -> bool:
            while d != "":
                if d not in self._dur_dirs:
                    return False
                d = _parent(d)
            return True

        new = self.root.with_name(self.root.name + ".powercut")
        if new.exists():
            shutil.rmtree(new)
        new.mkdir()
        for d in sorted(self._dur_dirs, key=lambda s: s.count("/")):
            if d and reachable(d):
                (new / d).mkdir(exist_ok=True)
        for rel, fid in sorted(self._dur.items()):
            if not reachable(_parent(rel)):
                continue
            f = self._files[fid]
            if f.durable is None and not f.pending:
                if f.lazy is not None and f.lazy.exists():
                    os.link(f.lazy, new / rel)
                continue
            data = bytearray(f.durable) if f.durable is not None else bytearray(f.lazy.read_bytes())
            k = rng.randint(0, len(f.pending))
            for off, chunk in f.pending[:k]:
                _apply(data, off, chunk)
            if k < len(f.pending):
                rep.files_torn += 1
                off, chunk = f.pending[k]
                if self.tear:                            # a prefix of the sectors of the write in flight
                    ends = [b for b in range((off // SECTOR + 1) * SECTOR, off + len(chunk), SECTOR)]
                    keep = rng.choice([off] + ends) - off
                    _apply(data, off, chunk[:keep])
                    rep.bytes_dropped += len(chunk) - keep
                rep.bytes_dropped += sum(len(c) for _, c in f.pending[k + 1:])
            (new / rel).write_bytes(bytes(data))
        rep.files_lost = len(set(self._cur) - {r for r in self._dur if reachable(_parent(r))})
        rep.renames_undone = sum(1 for r, fid in self._dur.items() if self._cur.get(r) != fid)
        for name in self.exclude:                        # the SQLite index and superblock keep their own state
            if (self.root / name).exists():
                os.replace(self.root / name, new / name)
        old = self.root.with_name(self.root.name + ".gone")
        os.replace(self.root, old)
        os.replace(new, self.root)
        shutil.rmtree(old)
        return rep


def _parent(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _apply(buf: bytearray, off: int, data: bytes) -> None:
    if off > len(buf):
        buf.extend(bytes(off - len(buf)))
    buf[off:off + len(data)] = data
