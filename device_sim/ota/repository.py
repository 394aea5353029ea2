"""Server-side OTA repository: signs TUF-style metadata and stores packages (what the vendor's release tool does).

Layout: ``metadata/<role>.json`` (current), ``metadata/<N>.root.json`` (every root version, for rotation),
``targets/<name>`` (packages). Follows the TUF specification v1.0 §4.

Private keys never live in the repository folder (what the OTA server serves): they are in ``keys_dir`` (default
``<repo>-keys/`` beside it), split as TUF §6.1 prescribes into ``offline/`` (root, targets: in a real deployment an
HSM or an air-gapped machine) and ``online/`` (snapshot, timestamp: what the server needs to re-sign on its own).
A repository made by an older camlab with ``<repo>/keys/`` is moved to that layout when opened.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from camlab.io_utils import atomic_write_bytes
from device_sim.ota.metadata import ROLES, SigningKey, canonical, iso_utc, make_root, sha256_hex, sign
from device_sim.ota.package import parse

DAY = 86400.0
OFFLINE_ROLES = ("root", "targets")


class Repository:
    def __init__(self, root: Path, keys_dir: Path | None = None):
        self.root = Path(root)
        self.meta_dir = self.root / "metadata"
        self.targets_dir = self.root / "targets"
        self.keys_dir = Path(keys_dir) if keys_dir is not None else self.root.parent / f"{self.root.name}-keys"
        if self.keys_dir.resolve() == self.root.resolve() or self.root.resolve() in self.keys_dir.resolve().parents:
            raise ValueError(f"repository: keys_dir {self.keys_dir} must be outside the served folder {self.root}")
        self._migrate_legacy_keys()

    # -- keys -----------------------------------------------------------------------------------------------------
    def role_keys_dir(self, role: str) -> Path:
        return self.keys_dir / ("offline" if role in OFFLINE_ROLES else "online")

    def keys(self, role: str) -> list[SigningKey]:
        return [SigningKey.from_pem(p.read_bytes()) for p in sorted(self.role_keys_dir(role).glob(f"{role}-*.pem"))]

    def _store_keys(self, role: str, keys: list[SigningKey]) -> None:
        d = self.role_keys_dir(role)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for p in d.glob(f"{role}-*.pem"):
            p.unlink()
        for i, k in enumerate(keys):
            atomic_write_bytes(d / f"{role}-{i}.pem", k.to_pem(), mode=0o600)

    def _migrate_legacy_keys(self) -> None:
        """Keys in ``<repo>/keys/`` (older layout, inside the served folder) move out to ``keys_dir``."""
        legacy = self.root / "keys"
        if not legacy.is_dir():
            return
        for p in sorted(legacy.glob("*-*.pem")):
            role = p.name.split("-", 1)[0]
            d = self.role_keys_dir(role)
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(p, d / p.name)
        try:
            legacy.rmdir()
        except OSError:
            pass

    @classmethod
    def create(cls, root: Path, expires_days: float = 365.0) -> "Repository":
        repo = cls(root)
        for d in (repo.meta_dir, repo.targets_dir):
            d.mkdir(parents=True, exist_ok=True)
        role_keys = {role: [SigningKey.generate()] for role in ROLES}
        for role, ks in role_keys.items():
            repo._store_keys(role, ks)
        root_signed = make_root(1, time.time() + expires_days * DAY, role_keys)
        repo._write_root(sign(root_signed, role_keys["root"]))
        repo._write("targets", sign({"_type": "targets", "version": 1, "expires": iso_utc(time.time() + 30 * DAY),
                                     "targets": {}}, role_keys["targets"]))
        repo.publish_snapshot()
        return repo

    def _write(self, role: str, envelope: dict) -> None:
        atomic_write_bytes(self.meta_dir / f"{role}.json", json.dumps(envelope, indent=1, sort_keys=True).encode())

    def _write_root(self, envelope: dict) -> None:
        data = json.dumps(envelope, indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.meta_dir / f"{envelope['signed']['version']}.root.json", data)
        atomic_write_bytes(self.meta_dir / "root.json", data)

    def load(self, role: str) -> dict:
        return json.loads((self.meta_dir / f"{role}.json").read_bytes())

    # -- publishing -----------------------------------------------------------------------------------------------
    def add_target(self, name: str, package: bytes, custom: dict | None = None, expires_days: float = 30.0) -> dict:
        """Store a package and sign a new targets version naming it (custom fields from the package header)."""
        pkg = parse(package)
        info = {"kind": pkg.kind, "version": pkg.version, "hardware_id": pkg.hardware_id, **(custom or {})}
        if pkg.kind in ("full", "delta"):
            info["images"] = {p.name: p.image_sha256 for p in pkg.parts}
        if pkg.kind == "model":
            info["model"] = pkg.meta.get("model", "")
        atomic_write_bytes(self.targets_dir / name, package)
        targets = self.load("targets")["signed"]
        entries = dict(targets["targets"])
        entries[name] = {"length": len(package), "hashes": {"sha256": sha256_hex(package)}, "custom": info}
        signed = {"_type": "targets", "version": targets["version"] + 1,
                  "expires": iso_utc(time.time() + expires_days * DAY), "targets": entries}
        self._write("targets", sign(signed, self.keys("targets")))
        self.publish_snapshot()
        return entries[name]

    def publish_snapshot(self, expires_days: float = 7.0, timestamp_expires_days: float = 1.0) -> None:
        targets_bytes = (self.meta_dir / "targets.json").read_bytes()
        targets_version = json.loads(targets_bytes)["signed"]["version"]
        prev = self._version("snapshot")
        snap = {"_type": "snapshot", "version": prev + 1, "expires": iso_utc(time.time() + expires_days * DAY),
                "meta": {"targets.json": {"version": targets_version}}}
        self._write("snapshot", sign(snap, self.keys("snapshot")))
        snap_bytes = (self.meta_dir / "snapshot.json").read_bytes()
        self.publish_timestamp(timestamp_expires_days, snap_bytes, prev + 1)

    def publish_timestamp(self, expires_days: float = 1.0, snap_bytes: bytes | None = None,
                          snap_version: int | None = None) -> None:
        snap_bytes = snap_bytes or (self.meta_dir / "snapshot.json").read_bytes()
        snap_version = snap_version or json.loads(snap_bytes)["signed"]["version"]
        ts = {"_type": "timestamp", "version": self._version("timestamp") + 1,
              "expires": iso_utc(time.time() + expires_days * DAY),
              "meta": {"snapshot.json": {"version": snap_version, "length": len(snap_bytes),
                                         "hashes": {"sha256": sha256_hex(snap_bytes)}}}}
        self._write("timestamp", sign(ts, self.keys("timestamp")))

    def _version(self, role: str) -> int:
        path = self.meta_dir / f"{role}.json"
        return json.loads(path.read_bytes())["signed"]["version"] if path.exists() else 0

    def rotate_keys(self, roles: tuple[str, ...] = ROLES, expires_days: float = 365.0) -> None:
        """New keys for ``roles``; the new root is signed by the old AND the new root keys (TUF §5.3)."""
        old_root_keys = self.keys("root")
        role_keys = {role: (self.keys(role) if role not in roles else [SigningKey.generate()]) for role in ROLES}
        old = self.load("root")["signed"]
        new_root = make_root(old["version"] + 1, time.time() + expires_days * DAY, role_keys)
        signers = {k.keyid: k for k in old_root_keys + role_keys["root"]}
        self._write_root(sign(new_root, list(signers.values())))
        for role in roles:
            self._store_keys(role, role_keys[role])
        # re-sign the other roles with their (possibly new) keys
        targets = self.load("targets")["signed"]
        self._write("targets", sign({**targets, "version": targets["version"] + 1}, self.keys("targets")))
        self.publish_snapshot()


def canonical_size(envelope: dict) -> int:
    return len(canonical(envelope))
