"""OTA packages: full firmware images, bsdiff4 deltas against the running slot, and model-bundle payloads.

Container: ``CAMOTA1\\n`` + u32 header length + header JSON + part payloads. The header lists each part (kernel,
rootfs, or a model bundle tar) with offset, length and sha256 of the payload and of the image it produces. The package's
own sha256 and length are pinned by signed targets metadata (device_sim.ota.metadata), so the header is only parsed
after the whole file verified; the parser still bounds-checks everything. Deltas: Percival, "Naive differences of
executable code" (bsdiff, 2003) via bsdiff4; a patched image is accepted only if its sha256 equals the signed one.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import bsdiff4

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
