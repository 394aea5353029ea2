"""OTA packages: full firmware images, bsdiff4 deltas against the running slot, and model-bundle payloads.

Container: ``CAMOTA1\\n`` + u32 header length + header JSON + part payloads. The header lists each part (kernel,
rootfs, or a model bundle tar) with offset, length and sha256 of the payload and of the image it produces. The package's
own sha256 and length are pinned by signed targets metadata (device_sim.ota.metadata), so the header is only parsed
after the whole file verified; the parser still bounds-checks everything. Deltas: Percival, "Naive differences of
executable code" (bsdiff, 2003) via bsdiff4; a patched image is accepted only if its sha256 equals the signed one.
"""
from __future__ import annotations

import bz2
import hashlib
import io
import json
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import bsdiff4
import numpy as np

MAGIC = b"CAMOTA1\n"
MAX_HEADER = 64 * 1024


class PackageError(Exception):
    """A package is malformed, truncated, or does not produce the signed images."""


@dataclass(frozen=True)
class Part:
    name: str            # "kernel", "rootfs" or "bundle"
    payload: bytes       # the image itself (full) or a bsdiff4 patch (delta)
    image_sha256: str    # sha256 of the resulting image
    base_sha256: str = ""  # delta only: sha256 of the image the patch applies to


@dataclass(frozen=True)
class Package:
    kind: str            # "full" | "delta" | "model"
    version: str
    hardware_id: str
    parts: tuple[Part, ...]
    meta: dict

    def part(self, name: str) -> Part:
        for p in self.parts:
            if p.name == name:
                return p
        raise PackageError(f"package has no part {name!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(kind: str, version: str, hardware_id: str, parts: list[Part], meta: dict | None = None) -> bytes:
    header = {"kind": kind, "version": version, "hardware_id": hardware_id, "meta": meta or {}, "parts": []}
    offset = 0
    for p in parts:
        header["parts"].append({"name": p.name, "offset": offset, "length": len(p.payload),
                                "sha256": sha256(p.payload), "image_sha256": p.image_sha256,
                                "base_sha256": p.base_sha256})
        offset += len(p.payload)
    hbytes = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(hbytes)) + hbytes + b"".join(p.payload for p in parts)


def parse(data: bytes) -> Package:
    """Parse and integrity-check a package (every part's sha256); raises PackageError."""
    if not data.startswith(MAGIC):
        raise PackageError("not an OTA package (bad magic)")
    if len(data) < len(MAGIC) + 4:
        raise PackageError("package truncated in its header")
    (hlen,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
    if hlen > MAX_HEADER or len(MAGIC) + 4 + hlen > len(data):
        raise PackageError(f"package header length {hlen} is out of range")
    try:
        header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + hlen])
        body = data[len(MAGIC) + 4 + hlen:]
        parts = []
        for entry in header["parts"]:
            start, length = int(entry["offset"]), int(entry["length"])
            if start < 0 or length < 0 or start + length > len(body):
                raise PackageError(f"part {entry['name']!r} runs past the end of the package (truncated?)")
            payload = body[start:start + length]
            if sha256(payload) != entry["sha256"]:
                raise PackageError(f"part {entry['name']!r} payload hash mismatch")
            parts.append(Part(str(entry["name"]), payload, str(entry["image_sha256"]), str(entry["base_sha256"])))
        return Package(str(header["kind"]), str(header["version"]), str(header["hardware_id"]), tuple(parts),
                       dict(header.get("meta", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"package header malformed: {exc!r}") from None


def full_package(version: str, hardware_id: str, kernel: bytes, rootfs: bytes) -> bytes:
    return build("full", version, hardware_id, [Part("kernel", kernel, sha256(kernel)),
                                                Part("rootfs", rootfs, sha256(rootfs))])


def delta_package(version: str, hardware_id: str, old: dict[str, bytes], new: dict[str, bytes]) -> bytes:
    """bsdiff4 patches from ``old`` images (the running slot) to ``new`` images."""
    parts = [Part(name, bsdiff4.diff(old[name], new[name]), sha256(new[name]), sha256(old[name]))
             for name in ("kernel", "rootfs")]
    return build("delta", version, hardware_id, parts)


def apply(pkg: Package, running: dict[str, bytes]) -> dict[str, bytes]:
    """Images to write into the standby slot: the full images, or the patched running images (hash-checked)."""
    out = {}
    for part in pkg.parts:
        if pkg.kind == "delta":
            base = running.get(part.name)
            if base is None or sha256(base) != part.base_sha256:
                raise PackageError(f"delta part {part.name!r} was made for another base image")
            try:
                image = bsdiff4.patch(base, part.payload)
            except Exception as exc:  # bsdiff4 raises ValueError/RuntimeError on a corrupt patch
                raise PackageError(f"delta part {part.name!r} does not apply: {exc}") from None
        else:
            image = part.payload
        if sha256(image) != part.image_sha256:
            raise PackageError(f"part {part.name!r} produces an image whose sha256 differs from the signed one")
        out[part.name] = image
    return out


def _offtin(b: bytes) -> int:
    """bsdiff's 64-bit integer: little-endian magnitude, sign in the top bit of the last byte."""
    v = int.from_bytes(b[:7] + bytes([b[7] & 0x7F]), "little")
    return -v if b[7] & 0x80 else v


class _Bz2Reader:
    """Read exactly n bytes at a time from a bz2 stream held in ``data[start:end]`` (decompressed on demand)."""

    def __init__(self, data: bytes, start: int, end: int, what: str):
        self._d = bz2.BZ2Decompressor()
        self._src = memoryview(data)[start:end]
        self._pos = 0
        self._buf = bytearray()
        self.what = what

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._d.eof:
                raise PackageError(f"bsdiff4 patch: {self.what} block ends early (truncated or corrupt patch)")
            if self._d.needs_input:
                if self._pos >= len(self._src):
                    raise PackageError(f"bsdiff4 patch: {self.what} block truncated")
                feed = self._src[self._pos:self._pos + 65536]
                self._pos += len(feed)
            else:
                feed = b""
            try:
                self._buf += self._d.decompress(bytes(feed), max_length=max(65536, n - len(self._buf)))
            except (OSError, EOFError, ValueError) as exc:
                raise PackageError(f"bsdiff4 patch: {self.what} block is not bz2 data ({exc})") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def stream_patch(old_path: Path, patch: bytes, write, chunk: int = 64 * 1024,
                 max_size: int = 1 << 31) -> tuple[str, int]:
    """Apply a bsdiff4 patch (format BSDIFF40) to the image at ``old_path`` and hand the new image to ``write`` in
    pieces of at most ``chunk`` bytes as it is produced: the old image is read by seeks, the diff and extra blocks are
    decompressed as needed, so nothing image-sized is ever held in memory (the output goes straight to flash).
    Returns (sha256 hex, size) of the image written; raises PackageError on a malformed patch."""
    if chunk <= 0:
        raise ValueError(f"stream_patch: chunk must be > 0, got {chunk}")
    if len(patch) < 32 or patch[:7] != b"BSDIFF4":
        raise PackageError("bsdiff4 patch: bad magic")
    len_control, len_diff, new_size = (_offtin(patch[8 + 8 * i:16 + 8 * i]) for i in range(3))
    if min(len_control, len_diff, new_size) < 0 or new_size > max_size or 32 + len_control + len_diff > len(patch):
        raise PackageError("bsdiff4 patch: header sizes out of range")
    ctrl = _Bz2Reader(patch, 32, 32 + len_control, "control")
    diff = _Bz2Reader(patch, 32 + len_control, 32 + len_control + len_diff, "diff")
    extra = _Bz2Reader(patch, 32 + len_control + len_diff, len(patch), "extra")
    h = hashlib.sha256()
    out = bytearray()
    written = 0
    old_pos = 0

    def emit(data: bytes) -> None:
        nonlocal out, written
        out += data
        while len(out) >= chunk:
            piece = bytes(out[:chunk])
            del out[:chunk]
            h.update(piece)
            write(piece)
            written += len(piece)

    with open(old_path, "rb") as old:
        old_size = old.seek(0, 2)
        produced = 0
        while produced < new_size:
            x, y, z = (_offtin(ctrl.read(8)) for _ in range(3))
            if x < 0 or y < 0 or produced + x + y > new_size:
                raise PackageError("bsdiff4 patch: control entry runs past the new image")
            done = 0
            while done < x:                          # diff: new = old + diff (bytewise, mod 256)
                n = min(chunk, x - done)
                d = np.frombuffer(diff.read(n), dtype=np.uint8)
                o = np.zeros(n, dtype=np.uint8)
                lo = old_pos + done
                if 0 <= lo < old_size or 0 <= lo + n - 1 < old_size:    # only the part of old that exists adds
                    a, b = max(lo, 0), min(lo + n, old_size)
                    old.seek(a)
                    o[a - lo:b - lo] = np.frombuffer(old.read(b - a), dtype=np.uint8)
                emit((d + o).tobytes())
                done += n
            old_pos += x
            produced += x
            done = 0
            while done < y:                          # extra: new bytes copied as they are
                n = min(chunk, y - done)
                emit(extra.read(n))
                done += n
            produced += y
            old_pos += z
    if out:
        h.update(bytes(out))
        write(bytes(out))
        written += len(out)
    return h.hexdigest(), written


def bundle_tar(bundle_dir: Path, files: tuple[str, ...] | None = None) -> bytes:
    """The files of an export bundle the camera needs (default: the manifest's ``device_files``, i.e. the INT8 model
    and the manifest), as a deterministic tar (mtime 0, sorted)."""
    if files is None:
        from camlab.contract.manifest import MANIFEST_NAME, device_files
        manifest = json.loads((Path(bundle_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))
        files = tuple(device_files(manifest))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = (Path(bundle_dir) / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def model_package(name: str, version: str, hardware_id: str, bundle_dir: Path) -> bytes:
    tar = bundle_tar(bundle_dir)
    return build("model", version, hardware_id, [Part("bundle", tar, sha256(tar))], meta={"model": name})


def untar_bundle(tar_bytes: bytes) -> dict[str, bytes]:
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise PackageError(f"model bundle holds a disallowed entry {member.name!r}")
                out[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:  # truncated or corrupt archive
        raise PackageError(f"model bundle tar is truncated or corrupt: {exc}") from None
    return out
