"""NOR/NAND flash model: partitions as files, a redundant boot environment, and a power-cut-injecting write layer.

Layout under the flash root: ``boot/`` (bootloader data: the trusted TUF root), ``kernel_a.img``/``kernel_b.img``,
``rootfs_a.img``/``rootfs_b.img`` (read-only images, written only by the updater into the standby slot), ``data/``
(read-write: OTA downloads and state, model bundles) and ``env0``/``env1``: two copies of the boot environment, each
with a sequence number and a sha256, written alternately (as U-Boot's redundant environment / RAUC's bootchooser), so
a cut while writing one leaves the other valid.

Every write goes through :class:`Flash`; a :class:`PowerCutPlan` makes the Nth write stop after a random prefix and
raise :class:`PowerCut` — the fault-injection harness uses it to cut power at thousands of points.

Test hook: :attr:`Flash.on_write` (default None: writes are unchanged). When set, every raw write lands its first half,
fsyncs it, calls ``on_write(WriteInProgress)`` while the file is still open, then writes the rest — so a harness can
SIGKILL a real process at a known point inside a write (``faults.kill9_trial``) instead of after a guessed delay.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from camlab.io_utils import fsync_dir

SLOTS = ("a", "b")
PARTS = ("kernel", "rootfs")


class PowerCut(Exception):
    """The simulated power failed during a flash write."""


@dataclass
class PowerCutPlan:
    """Cut power at write number ``at`` (0-based; an int, or several write numbers for repeated cuts in one
    update), keeping a random prefix of that write. ``at=None``: never. Writes are counted across boots as long as
    the same plan stays on the :class:`Flash`."""
    at: int | tuple[int, ...] | list[int] | None = None
    seed: int = 0
    writes: int = 0
    fired: bool = False
    fired_count: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if self.at is None:
            self._points: set[int] = set()
        elif isinstance(self.at, int):
            self._points = {self.at}
        else:
            self._points = {int(a) for a in self.at}
        if any(a < 0 for a in self._points):
            raise ValueError(f"power cut plan: write numbers must be >= 0, got {sorted(self._points)}")

    def before_write(self, size: int) -> int | None:
        """Bytes to write before the cut, or None to write everything."""
        n = self.writes
        self.writes += 1
        if n in self._points:
            self._points.discard(n)
            self.fired = True
            self.fired_count += 1
            return self.rng.randint(0, max(0, size - 1)) if size else 0
        return None


@dataclass(frozen=True)
class WriteInProgress:
    """What :attr:`Flash.on_write` is told mid-write: write number ``index`` (0-based, the numbering PowerCutPlan
    uses) of ``total`` bytes to ``path`` (``what`` names it); ``landed`` of them are on flash (fsynced) so far and
    ``path`` is ``size`` bytes long."""
    index: int
    what: str
    path: Path
    landed: int
    total: int
    size: int


class Flash:
    """The camera's flash as files under ``root``."""

    def __init__(self, root: Path, cut_plan: PowerCutPlan | None = None,
                 on_write: Callable[[WriteInProgress], None] | None = None, chunk: int = 16 * 1024):
        if chunk <= 0:
            raise ValueError(f"flash: chunk must be > 0, got {chunk}")
        self.chunk = chunk          # partition write granularity (an erase block: 16 KiB NOR .. 128 KiB NAND)
        self.root = Path(root)
        self.cuts = cut_plan or PowerCutPlan()
        self.data = self.root / "data"
        self.on_write = on_write    # test hook (see the module docstring); None in production
        self.phase = ""             # harness label ("boot", "update", "trial boot"...) recorded with each cut
        self.cut_log: list[tuple[str, str]] = []    # (phase, what) of every write a planned cut interrupted
        self.write_log: list[tuple[str, str]] | None = None   # (phase, what) of every write, when a list

    # -- raw writes (the only way anything reaches flash) ---------------------------------------------------------
    def _raw_write(self, path: Path, data: bytes, mode: str, what: str) -> None:
        """Write (or append) ``data`` durably; under a planned cut only a prefix lands and PowerCut is raised."""
        keep = self.cuts.before_write(len(data))
        if self.write_log is not None:
            self.write_log.append((self.phase, what))
        body = data if keep is None else data[:keep]
        with open(path, mode) as fh:
            if self.on_write is not None:   # test hook: stop halfway, durably, and say so
                half = len(body) // 2
                fh.write(body[:half])
                fh.flush()
                os.fsync(fh.fileno())
                self.on_write(WriteInProgress(self.cuts.writes - 1, what, path, half, len(data),
                                              os.fstat(fh.fileno()).st_size))
                body = body[half:]
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        if keep is not None:
            self.cut_log.append((self.phase, what))
            raise PowerCut(f"power cut while writing {what} ({keep}/{len(data)} bytes)")

    def _write(self, path: Path, data: bytes, atomic: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = path.with_name(f".{path.name}.tmp") if atomic else path
        self._raw_write(target, data, "wb", str(path.relative_to(self.root)))
        if atomic:
            os.replace(target, path)
            fsync_dir(path.parent)

    def write_file(self, rel: str, data: bytes) -> None:
        """Atomic file write in the data partition (temp + fsync + rename)."""
        self._write(self.root / rel, data, atomic=True)

    def append_file(self, rel: str, data: bytes) -> None:
        """Append (downloads); a cut leaves a prefix of ``data`` appended."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self._raw_write(path, data, "ab", rel)

    def write_partition(self, slot: str, part: str, image: bytes, chunk: int | None = None) -> None:
        """Raw in-place partition write in chunks (not atomic: that is what slot states are for)."""
        chunk = chunk or self.chunk
        w = self.open_partition(slot, part)
        for off in range(0, len(image), chunk):
            w(image[off:off + chunk])

    def open_partition(self, slot: str, part: str):
        """Erase a partition and return ``write(piece)``, which appends ``piece`` to it (one flash write, a power-cut
        point, seen by :attr:`on_write`): a streamed image (a delta patch applied as it is read) goes to flash
        piece by piece and is never whole in memory."""
        path = self.partition_path(slot, part)
        with open(path, "wb"):
            pass  # erase
        off = [0]

        def write(piece: bytes) -> None:
            self._raw_write(path, piece, "ab", f"{part}_{slot} at offset {off[0]}")
            off[0] += len(piece)
        return write

    def hash_partition(self, slot: str, part: str) -> str:
        """sha256 of a partition, read in chunks."""
        h = hashlib.sha256()
        path = self.partition_path(slot, part)
        if path.exists():
            with open(path, "rb") as fh:
                while piece := fh.read(1 << 20):
                    h.update(piece)
        return h.hexdigest()

    # -- reads ----------------------------------------------------------------------------------------------------
    def partition_path(self, slot: str, part: str) -> Path:
        if slot not in SLOTS or part not in PARTS:
            raise ValueError(f"no partition {part}_{slot}")
        return self.root / f"{part}_{slot}.img"

    def read_partition(self, slot: str, part: str) -> bytes:
        path = self.partition_path(slot, part)
        return path.read_bytes() if path.exists() else b""

    def slot_images(self, slot: str) -> dict[str, bytes]:
        return {p: self.read_partition(slot, p) for p in PARTS}

    # -- boot environment -----------------------------------------------------------------------------------------
    def read_env(self) -> dict | None:
        """The valid env copy with the highest sequence number, or None if neither is valid."""
        best = None
        for name in ("env0", "env1"):
            path = self.root / name
            try:
                doc = json.loads(path.read_bytes())
                body = doc["env"]
                if hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() != doc["sha256"]:
                    continue
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if best is None or body["seq"] > best["seq"]:
                best = body
        return best

    def write_env(self, env: dict) -> dict:
        """Write ``env`` with seq+1 over the older copy (never over the one in force)."""
        current = self.read_env()
        seq = (current["seq"] + 1) if current else 1
        body = {**env, "seq": seq}
        doc = {"env": body, "sha256": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}
        older = self._older_env_copy()
        self._write(self.root / older, json.dumps(doc, sort_keys=True).encode(), atomic=False)
        return body

    def _older_env_copy(self) -> str:
        seqs = {}
        for name in ("env0", "env1"):
            try:
                doc = json.loads((self.root / name).read_bytes())
                body = doc["env"]
                ok = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() == doc["sha256"]
                seqs[name] = body["seq"] if ok else -1
            except (OSError, ValueError, KeyError, TypeError):
                seqs[name] = -1
        return min(seqs, key=lambda n: (seqs[n], n))

    # -- factory --------------------------------------------------------------------------------------------------
    def factory_flash(self, images: dict[str, bytes], slot_record: dict, trusted_root: dict) -> None:
        """Provision a new device: the same verified firmware in both slots, slot A active."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "boot").mkdir(exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.write_file("boot/root.json", json.dumps(trusted_root, sort_keys=True).encode())
        for slot in SLOTS:
            for part in PARTS:
                self.write_partition(slot, part, images[part])
        env: dict[str, Any] = {"active": "a", "trial": None,
                               "slots": {s: {"state": "good", **slot_record} for s in SLOTS}}
        self.write_env(env)
        self.write_env(env)  # both copies valid from the start
