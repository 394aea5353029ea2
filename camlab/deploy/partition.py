"""Data-partition image packer: lays verified bundles into one flash image sized to the chip profile.

Image layout (little-endian), erase-block aligned like a raw NOR/NAND data partition (JEDEC JESD216 erase sizes):
``header`` = magic ``CAMLABDP`` (8 B), format version u32, entry count u32, table size u32, image payload bytes
u64; then a JSON table (UTF-8) of ``{"path", "offset", "bytes", "sha256"}`` entries; each file starts on a 4 KiB
boundary; the rest of the partition is 0xFF (erased flash). The packer refuses an image larger than the chip's
``flash_partition_bytes``; the reader checks every sha256. Only what the camera runs goes in: each bundle's INT8
model and manifest (:func:`camlab.contract.manifest.device_files`); the FP32 reference and calibration set stay on
the host, so an unpacked bundle loads with ``load_bundle(..., device=True)``.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from camlab.contract.manifest import device_files, load_bundle
from camlab.deploy.chips import ChipProfile, load_chip
from camlab.errors import CamlabError, InputFileError
from camlab.io_utils import atomic_write_bytes

MAGIC = b"CAMLABDP"
VERSION = 1
BLOCK = 4096
HEADER = struct.Struct("<8sIIIQ")


def _align(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK * BLOCK


def pack_partition(bundle_dirs: list[str | Path], chip: ChipProfile | str, out: str | Path, *,
                   pad: bool = True) -> dict:
    """Write the partition image to ``out``; returns ``{path, used_bytes, partition_bytes, entries}``."""
    chip = load_chip(chip) if isinstance(chip, str) else chip
    files: list[tuple[str, bytes]] = []
    for d in bundle_dirs:
        b = load_bundle(d, verify=True)
        prefix = f"{b.name}/{b.version}"
        for rel in device_files(b.manifest):
            files.append((f"{prefix}/{rel}", (b.root / rel).read_bytes()))
    if not files:
        raise CamlabError("pack_partition: no bundles given")
    entries = []
    # table size depends on offsets; two passes settle it (offsets only grow by whole blocks)
    table = b""
    for _ in range(3):
        offset = _align(HEADER.size + len(table))
        entries = []
        for path, data in files:
            entries.append({"path": path, "offset": offset, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})
            offset = _align(offset + len(data))
        new_table = json.dumps(entries, separators=(",", ":")).encode()
        if len(new_table) == len(table):
            break
        table = new_table
    table = json.dumps(entries, separators=(",", ":")).encode()
    used = offset
    if used > chip.flash_partition_bytes:
        raise CamlabError(f"partition image needs {used} B but {chip.name}'s flash data partition holds "
                          f"{chip.flash_partition_bytes} B ({used - chip.flash_partition_bytes} B over)")
    size = chip.flash_partition_bytes if pad else used
    img = bytearray(b"\xff" * size)
    img[:HEADER.size] = HEADER.pack(MAGIC, VERSION, len(entries), len(table), used)
    img[HEADER.size:HEADER.size + len(table)] = table
    for (path, data), e in zip(files, entries):
        img[e["offset"]:e["offset"] + len(data)] = data
    atomic_write_bytes(Path(out), bytes(img))
    return {"path": str(out), "used_bytes": used, "partition_bytes": chip.flash_partition_bytes,
            "free_bytes": chip.flash_partition_bytes - used, "entries": len(entries)}


def read_partition(path: str | Path) -> dict[str, bytes]:
    """Parse and verify a partition image; returns ``{relative path: bytes}``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: partition image not found")
    raw = path.read_bytes()
    if len(raw) < HEADER.size:
        raise InputFileError(f"{path}: too short for a partition header")
    magic, version, count, tsize, used = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise InputFileError(f"{path}: bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise InputFileError(f"{path}: partition format version {version}, this reader knows {VERSION}")
    try:
        entries = json.loads(raw[HEADER.size:HEADER.size + tsize])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputFileError(f"{path}: partition table is not valid JSON") from None
    if len(entries) != count:
        raise InputFileError(f"{path}: header says {count} entries, table has {len(entries)}")
    out = {}
    for e in entries:
        data = raw[e["offset"]:e["offset"] + e["bytes"]]
        if len(data) != e["bytes"] or hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise InputFileError(f"{path}: entry '{e['path']}' fails its sha256 (image truncated or corrupted)")
        out[e["path"]] = data
    return out


def unpack_partition(image: str | Path, dest: str | Path) -> list[Path]:
    """Extract a verified image into ``dest``; returns the bundle folders (each loads with
    ``load_bundle(folder, device=True)``)."""
    dest = Path(dest)
    bundles = set()
    for rel, data in read_partition(image).items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise InputFileError(f"{image}: unsafe entry path '{rel}'")
        target = dest / rel
        atomic_write_bytes(target, data)
        bundles.add(dest / Path(rel).parts[0] / Path(rel).parts[1])
    return sorted(bundles)
