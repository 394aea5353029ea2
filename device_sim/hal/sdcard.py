"""TF (microSD) card HAL: a size-limited card with insert/remove, write-protect and corruption states.

SD Physical Layer Simplified Specification v9.10 (write protection, card detect), exFAT-style cluster accounting.

A real camera mounts a FAT32/exFAT card; loop-mounting an image needs root + losetup, so this card is a directory
(``<base>/card``) whose capacity is enforced by this HAL's own accounting: every write goes through
:meth:`SdCard.open_write`, whose file objects charge their growth to one card-wide counter (the last scan plus the
growth since) and refuse to grow the card past ``capacity_bytes`` (``ENOSPC``). Space is
counted in clusters (``cluster_bytes``, default 32 KiB as exFAT uses for 32-256 GB cards), so many tiny files cost what
they would on a card. Files written by other means (the SQLite index) are counted at each :meth:`SdCard.used_bytes` scan.

States (:class:`CardState`): ``OK``; ``REMOVED`` (``<base>/card`` is moved to ``<base>/card.ejected``, every access
raises ``ENOENT``); ``READ_ONLY`` (the write-protect switch: reads work, writes raise ``EROFS``); ``CORRUPT`` (the
superblock ``.sdcard`` no longer parses or its checksum fails: every access raises ``EIO`` until :meth:`format`);
``UNFORMATTED`` (a card with no superblock). :meth:`probe` re-derives the state from what is on the "card", as card
detection and mount would, so a corruption made behind the HAL's back is found.

Every change a writer makes on the card (``open_write``, ``replace``, ``unlink``, ``makedirs``, ``rmdir``,
``fsync_dir``, :meth:`CardFile.fsync`) goes through ``card.fs``: the plain OS by default, or
:class:`device_sim.storage.powerloss.PowerLossLayer`, which keeps the durable image beside the files and at a power
cut drops or tears what was not synced (strict POSIX: a directory entry is durable once its folder is fsynced).
``makedirs`` fsyncs the parent of every folder it creates, so a new hour folder survives a cut.
"""
from __future__ import annotations

import enum
import errno
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from camlab.errors import CamlabError
from camlab.io_utils import atomic_write_bytes, fsync_dir

SUPERBLOCK = ".sdcard"


class CardState(str, enum.Enum):
    OK = "ok"
    REMOVED = "removed"
    READ_ONLY = "read_only"
    CORRUPT = "corrupt"
    UNFORMATTED = "unformatted"


class CardError(OSError):
    """An I/O error from the card (errno says which: ENOENT removed, EROFS write-protected, EIO corrupt, ENOSPC full)."""


def _superblock_bytes(label: str, capacity: int, cluster: int) -> bytes:
    body = {"label": label, "capacity_bytes": capacity, "cluster_bytes": cluster,
            "volume_id": uuid.uuid4().hex, "formatted_at": time.time()}
    raw = json.dumps(body, sort_keys=True)
    return json.dumps({"fs": body, "sha256": hashlib.sha256(raw.encode()).hexdigest()}).encode()


class OsLayer:
    """The plain OS: what a card without fault injection does."""

    dead = False

    def open_new(self, path: Path):
        return open(path, "w+b")

    def fsync_file(self, fh) -> None:
        fh.flush()
        os.fsync(fh.fileno())

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SdCard:
    """A size-limited card under ``base`` (created and formatted on first use when ``format_if_blank``)."""

    def __init__(self, base: Path, capacity_bytes: int, *, cluster_bytes: int = 32 * 1024,
                 label: str = "CAMLAB", format_if_blank: bool = True, fs=None):
        if capacity_bytes <= 0:
            raise CamlabError(f"sdcard: capacity_bytes must be > 0, got {capacity_bytes}")
        if cluster_bytes <= 0 or cluster_bytes & (cluster_bytes - 1):
            raise CamlabError(f"sdcard: cluster_bytes must be a power of two, got {cluster_bytes}")
        self.base = Path(base)
        self.capacity_bytes = int(capacity_bytes)
        self.cluster_bytes = int(cluster_bytes)
        self.label = label
        self.fs = fs if fs is not None else OsLayer()
        self._lock = threading.RLock()
        self._write_protect = False
        self._state = CardState.UNFORMATTED
        self._pending = 0                     # clusters grown by open writers since the last scan (bytes)
        self._used_scan = 0                   # bytes in use at the last scan
        self.base.mkdir(parents=True, exist_ok=True)
        if not self.mount_point.exists() and not self._ejected.exists():
            self.mount_point.mkdir()
        if format_if_blank and self.mount_point.exists() and not (self.mount_point / SUPERBLOCK).exists() \
                and not any(self.mount_point.iterdir()):
            self.format()
        self.probe()

    # ---- paths and state -------------------------------------------------------------------------------------
    @property
    def mount_point(self) -> Path:
        return self.base / "card"

    @property
    def _ejected(self) -> Path:
        return self.base / "card.ejected"

    @property
    def state(self) -> CardState:
        return self._state

    def probe(self) -> CardState:
        """Card detect + mount check: derive the state from what is physically there."""
        with self._lock:
            if not self.mount_point.is_dir():
                self._state = CardState.REMOVED
            else:
                sb = self.mount_point / SUPERBLOCK
                if not sb.exists():
                    self._state = CardState.UNFORMATTED
                elif not self._superblock_ok(sb):
                    self._state = CardState.CORRUPT
                else:
                    self._state = CardState.READ_ONLY if self._write_protect else CardState.OK
            return self._state

    @staticmethod
    def _superblock_ok(sb: Path) -> bool:
        try:
            doc = json.loads(sb.read_bytes())
            raw = json.dumps(doc["fs"], sort_keys=True)
            return hashlib.sha256(raw.encode()).hexdigest() == doc["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def require(self, write: bool = False) -> Path:
        """The mount point if the card can be read (and written, when ``write``); else :class:`CardError`."""
        st = self._state
        if st is CardState.REMOVED:
            raise CardError(errno.ENOENT, "sd card removed", str(self.mount_point))
        if st in (CardState.CORRUPT, CardState.UNFORMATTED):
            raise CardError(errno.EIO, f"sd card {st.value}: format it", str(self.mount_point))
        if write and st is CardState.READ_ONLY:
            raise CardError(errno.EROFS, "sd card write-protected", str(self.mount_point))
        return self.mount_point

    # ---- physical actions (used by tests and the simulator's scenario) ----------------------------------------
    def remove(self) -> None:
        with self._lock:
            if self.mount_point.exists():
                os.replace(self.mount_point, self._ejected)
            self._state = CardState.REMOVED

    def insert(self) -> CardState:
        with self._lock:
            if self._ejected.exists() and self.mount_point.exists():
                # something wrote into the bare mount point while the card was out: keep it aside, never merge
                k = 0
                while (self.base / f"card.stray-{k}").exists():
                    k += 1
                os.replace(self.mount_point, self.base / f"card.stray-{k}")
            if self._ejected.exists():
                os.replace(self._ejected, self.mount_point)
            elif not self.mount_point.exists():
                self.mount_point.mkdir()
            self._pending = 0
            return self.probe()

    def set_write_protect(self, on: bool) -> CardState:
        with self._lock:
            self._write_protect = bool(on)
            return self.probe()

    def corrupt(self, seed: int = 0) -> CardState:
        """Damage the superblock as a bad power cut during a FAT update would."""
        with self._lock:
            sb = self.mount_point / SUPERBLOCK
            data = bytearray(sb.read_bytes()) if sb.exists() else bytearray(64)
            for i in range(0, len(data), 7):
                data[i] ^= (0x5A + seed) & 0xFF
            sb.write_bytes(bytes(data))
            return self.probe()

    def format(self) -> CardState:
        """Erase everything and write a fresh superblock (the spec's ``format-sd-card`` action)."""
        with self._lock:
            if self.mount_point.exists() is False:
                raise CardError(errno.ENOENT, "sd card removed: cannot format", str(self.mount_point))
            if self._write_protect:
                raise CardError(errno.EROFS, "sd card write-protected: cannot format", str(self.mount_point))
            for child in self.mount_point.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            atomic_write_bytes(self.mount_point / SUPERBLOCK,
                               _superblock_bytes(self.label, self.capacity_bytes, self.cluster_bytes))
            self._pending = 0
            return self.probe()

    # ---- space accounting -------------------------------------------------------------------------------------
    def clusters(self, nbytes: int) -> int:
        return -(-int(nbytes) // self.cluster_bytes) * self.cluster_bytes

    def used_bytes(self) -> int:
        """Bytes in use, in whole clusters, by a scan of the card (directories cost one cluster each)."""
        root = self.require()
        total = 0
        stack = [root]
        while stack:
            d = stack.pop()
            total += self.cluster_bytes
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        else:
                            try:
                                total += self.clusters(e.stat(follow_symlinks=False).st_size)
                            except FileNotFoundError:
                                pass
            except FileNotFoundError:
                continue
        with self._lock:
            self._pending = 0
            self._used_scan = total
        return total

    def free_bytes(self) -> int:
        """Free bytes: the card's capacity less what is used, and never more than the file system under the mount
        point has left (a card image or a small tmpfs fills up before the accounting says so)."""
        free = max(0, self.capacity_bytes - self.used_bytes())
        try:
            st = os.statvfs(self.mount_point)
            free = min(free, st.f_bavail * st.f_frsize)
        except OSError:
            pass
        return free

    # ---- I/O --------------------------------------------------------------------------------------------------
    def path(self, rel: str | Path) -> Path:
        return self.require() / rel

    def open_write(self, rel: str | Path) -> "CardFile":
        """A new file on the card whose growth is charged against the capacity."""
        root = self.require(write=True)
        p = root / rel
        self.makedirs(p.parent.relative_to(root))
        self.used_bytes()
        return CardFile(self, p)

    def makedirs(self, rel: str | Path) -> Path:
        """Create the folder ``rel`` and its missing parents, each made durable (its parent fsynced)."""
        root = self.require(write=True)
        target = root / rel
        missing = []
        d = target
        while d != root and not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                self.fs.mkdir(d)
            except FileExistsError:
                continue
            self.fs.fsync_dir(d.parent)
        return target

    def replace(self, src_rel: str | Path, dst_rel: str | Path) -> None:
        """rename(2) on the card (durable once :meth:`fsync_dir` of the folder returns)."""
        root = self.require(write=True)
        self.fs.replace(root / src_rel, root / dst_rel)

    def fsync_dir(self, rel: str | Path = ".") -> None:
        root = self.require(write=True)
        self.fs.fsync_dir(root / rel)

    def rmdir(self, rel: str | Path) -> None:
        root = self.require(write=True)
        self.fs.rmdir(root / rel)

    def _charge(self, old_size: int, new_size: int, name: str) -> None:
        """Charge a file's growth against the capacity (shared by every open writer)."""
        extra = self.clusters(new_size) - self.clusters(old_size)
        if extra <= 0:
            return
        with self._lock:
            if self._used_scan + self._pending + extra > self.capacity_bytes:
                raise CardError(errno.ENOSPC, "sd card full", name)
            self._pending += extra

    def unlink(self, rel: str | Path) -> int:
        """Delete a file or folder; returns the bytes (in clusters) freed."""
        root = self.require(write=True)
        p = root / rel
        freed = 0
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p, topdown=False):
                for f in filenames:
                    fp = Path(dirpath) / f
                    freed += self.clusters(fp.lstat().st_size)
                    self.fs.unlink(fp)
                for d in dirnames:
                    if (Path(dirpath) / d).is_symlink():
                        self.fs.unlink(Path(dirpath) / d)
                    else:
                        self.fs.rmdir(Path(dirpath) / d)
                        freed += self.cluster_bytes
            self.fs.rmdir(p)
            freed += self.cluster_bytes
        elif p.exists() or p.is_symlink():
            freed = self.clusters(p.lstat().st_size)
            self.fs.unlink(p)
        with self._lock:
            self._used_scan = max(0, self._used_scan - freed)
        return freed


class CardFile:
    """A seekable binary writer (PyAV accepts it as an output) that stops at the card's capacity with ``ENOSPC``."""

    def __init__(self, card: SdCard, path: Path):
        self.card = card
        self.name = str(path)
        self._fh = card.fs.open_new(path)
        self._size = 0

    def _check(self) -> None:
        st = self.card.state
        if st is not CardState.OK:
            code = {CardState.REMOVED: errno.ENOENT, CardState.READ_ONLY: errno.EROFS}.get(st, errno.EIO)
            raise CardError(code, f"sd card {st.value}", self.name)

    def write(self, data) -> int:
        self._check()
        end = self._fh.tell() + len(data)
        if end > self._size:
            self.card._charge(self._size, end, self.name)
        try:
            n = self._fh.write(data)
        except OSError as exc:           # the file system under the card is full (or failing): a card error
            if isinstance(exc, CardError) or exc.errno is None:
                raise
            raise CardError(exc.errno, f"sd card: {os.strerror(exc.errno)}", self.name) from exc
        self._size = max(self._size, self._fh.tell())
        return n

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()

    def fsync(self) -> None:
        self._check()
        self.card.fs.fsync_file(self._fh)

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    @property
    def size(self) -> int:
        return self._size


def fsync_parent(path: Path) -> None:
    fsync_dir(Path(path).parent)
