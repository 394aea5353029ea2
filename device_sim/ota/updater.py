"""The OTA client on the camera: TUF metadata walk, resumable download, A/B write, trial boot, commit or rollback.

Workflow per TUF specification v1.0 §5 (root rotation, timestamp, snapshot, targets; rollback, freeze,
mix-and-match and endless-data checks), then the A/B scheme of RAUC: the standby slot is marked 'writing' before it
is touched (so a cut never leaves a bootable half-written slot), written, read back and verified, then armed for a
trial boot; the booted trial is committed only after a health check, otherwise the watchdog reboots it until its trial
counter runs out and the boot loader falls back. Every step is idempotent: after a power cut, the next boot resumes.
Model bundles install into the data partition as a separate payload (:class:`ModelStore`), also A/B with an atomic flip.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from device_sim.hal.flash import PARTS, Flash
from device_sim.ota import bootloader
from device_sim.ota.client import NotFound
from device_sim.ota.metadata import (MAX_METADATA_BYTES, MetadataError, parse_envelope, sha256_hex, verify_role,
                                     verify_root_rotation)
from device_sim.ota.package import PackageError, apply, parse, stream_patch, untar_bundle

log = logging.getLogger("device_sim.ota")
MAX_PACKAGE_BYTES = 256 * 1024 * 1024
TRIAL_BOOTS = 3
CHUNK = 16 * 1024  # download granularity (and power-cut points) — small, as on a camera's flash


class Transport(Protocol):
    def fetch(self, path: str, max_bytes: int, offset: int = 0) -> bytes: ...


class UpdateRejected(Exception):
    """An update was refused; the running slot is untouched. The message is the log line."""


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise UpdateRejected(f"target version {v!r} is not dotted integers") from None


@dataclass(frozen=True)
class Step:
    action: str   # "none" | "reboot" | "committed" | "model-installed" | "rolled-back"
    detail: str = ""


class Updater:
    """One boot's worth of updater work. ``booted`` is what the boot loader just booted."""

    def __init__(self, flash: Flash, transport: Transport, hardware_id: str, booted: bootloader.BootResult,
                 now: float | None = None, health_check=None):
        self.flash, self.transport, self.hw, self.booted = flash, transport, hardware_id, booted
        self.now = now if now is not None else time.time()
        self.health_check = health_check or default_health_check

    # -- persisted client state -----------------------------------------------------------------------------------
    def _state(self) -> dict:
        path = self.flash.data / "ota" / "state.json"
        try:
            return json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict) -> None:
        self.flash.write_file("data/ota/state.json", json.dumps(state, sort_keys=True).encode())

    # -- metadata -------------------------------------------------------------------------------------------------
    def refresh_metadata(self) -> dict:
        """Walk root -> timestamp -> snapshot -> targets; returns verified targets ``signed``."""
        state = self._state()
        root = bootloader.trusted_root(self.flash)
        while True:  # root rotation: N+1, N+2, ... until the server has no newer root
            try:
                data = self.transport.fetch(f"metadata/{root['version'] + 1}.root.json", MAX_METADATA_BYTES + 1)
            except NotFound:
                break
            new = verify_root_rotation(root, parse_envelope(data, "root"))
            if any(new["roles"][r] != root["roles"][r] for r in ("timestamp", "snapshot")):
                # fast-forward recovery (TUF §5.3.11): timestamp/snapshot keys rotated -> forget the trusted
                # timestamp and snapshot (and the targets version they vouched for), persisted BEFORE the new root
                # so a cut between the two cannot leave the high-water marks of the compromised keys in force
                state = {k: v for k, v in state.items()
                         if k not in ("timestamp_version", "snapshot_version", "targets_version")}
                self._save_state(state)
                log.info("timestamp/snapshot keys rotated: trusted timestamp and snapshot versions reset")
            self.flash.write_file("boot/root.json", json.dumps(new, sort_keys=True).encode())
            log.info("trusted root rotated to version %d", new["version"])
            root = new
        if self._expired(root):
            raise MetadataError("trusted root metadata expired")
        ts = verify_role(parse_envelope(self._get("metadata/timestamp.json"), "timestamp"), "timestamp", root,
                         self.now)
        if ts["version"] < state.get("timestamp_version", 0):
            raise MetadataError(f"timestamp version {ts['version']} is older than trusted "
                                f"{state['timestamp_version']} (rollback attack)")
        snap_bytes = self._get("metadata/snapshot.json")
        want = ts["meta"]["snapshot.json"]
        if sha256_hex(snap_bytes) != want["hashes"]["sha256"]:
            raise MetadataError("snapshot does not match the hash in timestamp (mix-and-match)")
        snap = verify_role(parse_envelope(snap_bytes, "snapshot"), "snapshot", root, self.now)
        if snap["version"] < state.get("snapshot_version", 0):
            raise MetadataError("snapshot version went backwards (rollback attack)")
        targets_env = parse_envelope(self._get("metadata/targets.json"), "targets")
        targets = verify_role(targets_env, "targets", root, self.now)
        if targets["version"] != snap["meta"]["targets.json"]["version"]:
            raise MetadataError(f"targets version {targets['version']} is not the one snapshot names "
                                f"({snap['meta']['targets.json']['version']}) (mix-and-match)")
        if targets["version"] < state.get("targets_version", 0):
            raise MetadataError("targets version went backwards (rollback attack)")
        self._save_state({**state, "timestamp_version": ts["version"], "snapshot_version": snap["version"],
                          "targets_version": targets["version"], "targets_env": targets_env})
        return targets

    @staticmethod
    def _expired(root: dict) -> bool:
        from device_sim.ota.metadata import parse_utc

        return parse_utc(root["expires"]) <= time.time()

    def _get(self, path: str) -> bytes:
        data = self.transport.fetch(path, MAX_METADATA_BYTES + 1)
        if len(data) > MAX_METADATA_BYTES:
            raise MetadataError(f"{path} exceeds the metadata size cap (endless data)")
        return data

    # -- choosing and downloading ---------------------------------------------------------------------------------
    def _remember_failed_trials(self, env: dict) -> set[str]:
        """Versions whose trial boot failed (boot loader marked the slot bad): never retried automatically."""
        state = self._state()
        failed = set(state.get("failed_versions", []))
        for record in env["slots"].values():
            if record.get("state") == "bad" and record.get("version") and record["version"] not in failed:
                log.error("version %s failed its trial boots and was rolled back", record["version"])
                failed.add(record["version"])
                self._save_state({**state, "failed_versions": sorted(failed)})
        return failed

    def choose_firmware(self, targets: dict, running_version: str,
                        failed: set[str] = frozenset()) -> tuple[str, dict] | None:
        best = None
        for name, entry in sorted(targets["targets"].items()):
            c = entry.get("custom", {})
            if c.get("kind") not in ("full", "delta") or c.get("version") in failed:
                continue
            if c.get("hardware_id") != self.hw:
                log.warning("skipping %s: built for hardware %r, this camera is %r", name, c.get("hardware_id"),
                            self.hw)
                continue
            if version_tuple(c["version"]) <= version_tuple(running_version):
                continue  # never a downgrade or a re-install
            if c["kind"] == "delta" and c.get("base_version") != running_version:
                continue
            key = (version_tuple(c["version"]), c["kind"] == "delta")  # prefer a delta for the same version
            if best is None or key > best[0]:
                best = (key, name, entry)
        return (best[1], best[2]) if best else None

    def download(self, name: str, entry: dict) -> bytes:
        """Resumable download into data/ota/<name>.part; returns the verified package."""
        length = int(entry["length"])
        if length > MAX_PACKAGE_BYTES:
            raise UpdateRejected(f"{name}: signed length {length} exceeds the package cap")
        rel = f"data/ota/{name}.part"
        path = self.flash.root / rel
        have = path.stat().st_size if path.exists() else 0
        if have > length:
            path.unlink()
            have = 0
        while have < length:
            chunk = self.transport.fetch(f"targets/{name}", min(CHUNK, length - have + 1), offset=have)
            if not chunk:
                raise UpdateRejected(f"{name}: server sent {have} of {length} bytes")
            if have + len(chunk) > length:
                path.unlink(missing_ok=True)
                raise UpdateRejected(f"{name}: server sent more than the signed {length} bytes (endless data)")
            self.flash.append_file(rel, chunk)
            have += len(chunk)
        data = path.read_bytes()
        if sha256_hex(data) != entry["hashes"]["sha256"]:
            path.unlink()
            raise UpdateRejected(f"{name}: package sha256 does not match the signed targets metadata")
        return data

    # -- the per-boot step ----------------------------------------------------------------------------------------
    def step(self) -> Step:
        env = self.flash.read_env()
        if self.booted.trial:
            return self._finish_trial(env)
        try:
            targets = self.refresh_metadata()
            running = env["slots"][self.booted.slot]["version"]
            failed = self._remember_failed_trials(env)
            choice = self.choose_firmware(targets, running, failed)
            if choice is None:
                return Step("none", f"running {running} is current")
            name, entry = choice
            package = parse(self.download(name, entry))
            if package.version != entry["custom"]["version"] or package.hardware_id != self.hw:
                raise UpdateRejected(f"{name}: package header does not match its signed metadata")
            if {p.name for p in package.parts} != set(PARTS):
                raise UpdateRejected(f"{name}: package does not carry every partition ({sorted(PARTS)})")
            images = None
            if package.kind == "delta":      # streamed into the standby slot below, never whole in RAM
                for part in package.parts:
                    if self.flash.hash_partition(self.booted.slot, part.name) != part.base_sha256:
                        raise PackageError(f"delta part {part.name!r} was made for another base image")
            else:
                images = apply(package, {})
                if images_signed := entry["custom"].get("images"):
                    if {k: sha256_hex(v) for k, v in images.items()} != images_signed:
                        raise UpdateRejected(f"{name}: produced images differ from the signed ones")
        except (MetadataError, PackageError, UpdateRejected) as exc:
            log.error("update rejected: %s", exc)
            raise UpdateRejected(str(exc)) from None
        if images is None:
            self._write_standby_streamed(name, entry, package, env)
        else:
            self._write_standby(name, entry, images, env)
        (self.flash.root / f"data/ota/{name}.part").unlink(missing_ok=True)
        return Step("reboot", f"{name} written to slot {bootloader.other(self.booted.slot)}, trial armed")

    def _write_standby(self, name: str, entry: dict, images: dict[str, bytes], env: dict) -> None:
        def write(standby: str) -> dict[str, str]:
            for part in PARTS:
                self.flash.write_partition(standby, part, images[part])
            return {part: sha256_hex(images[part]) for part in PARTS}
        self._install(name, entry, env, write)

    def _write_standby_streamed(self, name: str, entry: dict, package, env: dict) -> None:
        """A delta: each part's bsdiff4 patch is applied while it is read and written to the standby partition in
        flash-write pieces (:func:`~device_sim.ota.package.stream_patch`); the running slot is the patch's base."""
        signed = entry["custom"].get("images") or {}

        def write(standby: str) -> dict[str, str]:
            out = {}
            for part in package.parts:
                sha, _ = stream_patch(self.flash.partition_path(self.booted.slot, part.name), part.payload,
                                      self.flash.open_partition(standby, part.name), chunk=self.flash.chunk)
                if sha != part.image_sha256 or (signed and sha != signed.get(part.name)):
                    raise UpdateRejected(f"{name}: patched {part.name} differs from the signed image; slot "
                                         f"{standby} left invalid")
                out[part.name] = sha
            return out
        try:
            self._install(name, entry, env, write)
        except PackageError as exc:
            log.error("update rejected: %s", exc)
            raise UpdateRejected(str(exc)) from None

    def _install(self, name: str, entry: dict, env: dict, write) -> None:
        """Mark the standby slot 'writing' (never bootable while touched), ``write(standby)`` -> image hashes, read
        back and verify, then arm the trial boot."""
        standby = bootloader.other(self.booted.slot)
        slots = dict(env["slots"])
        slots[standby] = {"state": "writing"}
        env = self.flash.write_env({**env, "slots": slots, "trial": None})   # invalidate before touching it
        expect = write(standby)
        for part in PARTS:  # verify after write
            if self.flash.hash_partition(standby, part) != expect[part]:
                raise UpdateRejected(f"read-back of {part}_{standby} does not match; slot left invalid")
        self._arm_trial(name, entry, env, slots, standby)

    def _arm_trial(self, name: str, entry: dict, env: dict, slots: dict, standby: str) -> dict:
        targets_env = self._state()["targets_env"]
        slots[standby] = {"state": "trial", "version": entry["custom"]["version"], "target": name,
                          "targets_env": targets_env}
        return self.flash.write_env({**env, "slots": slots, "trial": {"slot": standby, "tries_left": TRIAL_BOOTS}})

    def _finish_trial(self, env: dict) -> Step:
        slot = self.booted.slot
        if not self.health_check(self.flash, slot):
            log.error("health check failed on slot %s; watchdog reboot", slot)
            return Step("reboot", "health check failed")
        slots = dict(env["slots"])
        slots[slot] = {**slots[slot], "state": "good"}
        self.flash.write_env({**env, "active": slot, "trial": None, "slots": slots})
        return Step("committed", f"slot {slot} version {slots[slot]['version']}")


def default_health_check(flash: Flash, slot: str) -> bool:
    """The firmware's own self-test result, carried in its rootfs header (``{"selftest": "pass"}``)."""
    rootfs = flash.read_partition(slot, "rootfs")
    try:
        header = json.loads(rootfs[: rootfs.index(b"\n")])
        return header.get("selftest") == "pass"
    except (ValueError, AttributeError):
        return False


class ModelStore:
    """Model bundles in the data partition: two directories per model and an atomically flipped pointer."""

    def __init__(self, flash: Flash):
        self.flash = flash

    def current(self, model: str) -> dict | None:
        try:
            return json.loads((self.flash.data / "models" / model / "current.json").read_bytes())
        except (OSError, ValueError):
            return None

    def install(self, package_bytes: bytes, entry: dict) -> Step:
        if sha256_hex(package_bytes) != entry["hashes"]["sha256"]:
            raise UpdateRejected("model package sha256 does not match the signed targets metadata")
        pkg = parse(package_bytes)
        if pkg.kind != "model":
            raise UpdateRejected(f"expected a model package, got {pkg.kind!r}")
        model = pkg.meta.get("model", "")
        if not model or "/" in model:
            raise UpdateRejected(f"model package names an invalid model {model!r}")
        cur = self.current(model)
        if cur and version_tuple(pkg.version) <= version_tuple(cur["version"]):
            raise UpdateRejected(f"model {model} {pkg.version} is not newer than installed {cur['version']}")
        files = untar_bundle(pkg.part("bundle").payload)
        slot = "1" if (cur or {}).get("slot") == "0" else "0"
        base = f"data/models/{model}/{slot}"
        for fname, data in files.items():
            self.flash.write_file(f"{base}/{fname}", data)
        for fname, data in files.items():
            if sha256_hex((self.flash.root / base / fname).read_bytes()) != sha256_hex(data):
                raise UpdateRejected(f"model file {fname} did not verify after write")
        pointer = {"slot": slot, "version": pkg.version, "files": {f: sha256_hex(d) for f, d in files.items()},
                   "previous": {k: v for k, v in cur.items() if k != "previous"} if cur else None}
        self.flash.write_file(f"data/models/{model}/current.json", json.dumps(pointer, sort_keys=True).encode())
        return Step("model-installed", f"{model} {pkg.version} in slot {slot}")

    def load_dir(self, model: str):
        """The verified bundle directory in force (falls back to the previous one if files do not verify)."""
        cur = self.current(model)
        while cur:
            d = self.flash.data / "models" / model / cur["slot"]
            if all((d / f).is_file() and sha256_hex((d / f).read_bytes()) == h for f, h in cur["files"].items()):
                return d
            cur = cur.get("previous")
        return None
