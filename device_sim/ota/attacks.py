"""The OTA threat catalogue as executable scenarios (TUF specification §1.5 attacks), shared by tests and bench.

Each attack sets up a compromised server/mirror against a factory-fresh device and reports whether the device
refused it with its running slot untouched (same version, same images, still booting).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from device_sim.hal.flash import PARTS, Flash
from device_sim.ota import bootloader
from device_sim.ota.client import DirTransport
from device_sim.ota.faults import HW, Fleet, synthetic_firmware
from device_sim.ota.metadata import SigningKey, iso_utc, sign
from device_sim.ota.package import Part, build, delta_package, full_package, sha256
from device_sim.ota.updater import Updater, UpdateRejected


class _Endless(DirTransport):
    """A mirror that keeps sending bytes past the signed length."""

    def fetch(self, path: str, max_bytes: int, offset: int = 0) -> bytes:
        data = super().fetch(path, max_bytes, offset)
        return data + b"\0" * (max_bytes - len(data)) if path.startswith("targets/") else data


def _attempt(fleet: Fleet, dev: Path, transport=None) -> tuple[bool, str]:
    """Run one update attempt; True if the device refused and its running slot is untouched."""
    flash = fleet.clone_device(dev)
    before = {s: {p: sha256(flash.read_partition(s, p)) for p in PARTS} for s in ("a", "b")}
    booted = bootloader.boot(flash)
    try:
        step = Updater(flash, transport or DirTransport(fleet.repo.root), HW, booted).step()
        if step.action == "reboot":
            after_boot = bootloader.boot(flash)
            return False, f"device accepted the update and booted {after_boot.version}"
        refused, why = step.action == "none", step.detail
    except UpdateRejected as exc:
        refused, why = True, str(exc)
    after = {p: sha256(flash.read_partition(booted.slot, p)) for p in PARTS}
    untouched = after == before[booted.slot] and bootloader.boot(flash).version == "1.0.0"
    return refused and untouched, why


def _fleet(work: Path, name: str) -> Fleet:
    """A repository holding only the factory 1.0.0 (the attack adds what it needs)."""
    from device_sim.ota.repository import Repository

    root = work / name
    repo = Repository.create(root / "repo")
    v1 = synthetic_firmware("1.0.0")
    repo.add_target("fw-1.0.0.full", full_package("1.0.0", HW, v1["kernel"], v1["rootfs"]))
    flash = Flash(root / "factory")
    flash.factory_flash(v1, {"version": "1.0.0", "target": "fw-1.0.0.full", "targets_env": repo.load("targets")},
                        repo.load("root")["signed"])
    return Fleet(root, repo, root / "factory", [{p: sha256(v1[p]) for p in PARTS}])


def arbitrary_package(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "arbitrary")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    evil = synthetic_firmware("1.1.0", seed=666)  # attacker swaps the file on the mirror
    (fleet.repo.targets_dir / "fw-1.1.0.full").write_bytes(full_package("1.1.0", HW, evil["kernel"], evil["rootfs"]))
    return _attempt(fleet, work / "arbitrary-dev")


def wrong_signature(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "wrongsig")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    env = fleet.repo.load("targets")
    forged = sign(env["signed"], [SigningKey.generate()])  # attacker's own key
    (fleet.repo.meta_dir / "targets.json").write_text(json.dumps(forged))
    return _attempt(fleet, work / "wrongsig-dev")


def rollback_metadata(work: Path) -> tuple[bool, str]:
    """Replay of older (validly signed) metadata after the device has seen newer versions."""
    fleet = _fleet(work, "rollback")
    old = {r: (fleet.repo.meta_dir / f"{r}.json").read_bytes() for r in ("timestamp", "snapshot", "targets")}
    v2 = synthetic_firmware("1.1.0", healthy=False)
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    dev = work / "rollback-dev"
    flash = fleet.clone_device(dev)
    Updater(flash, DirTransport(fleet.repo.root), HW, bootloader.boot(flash)).refresh_metadata()  # sees new versions
    for role, data in old.items():
        (fleet.repo.meta_dir / f"{role}.json").write_bytes(data)
    shutil.rmtree(fleet.factory)
    shutil.copytree(dev, fleet.factory)
    return _attempt(fleet, work / "rollback-dev2")


def downgrade(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "downgrade")
    v0 = synthetic_firmware("0.9.0")
    fleet.repo.add_target("fw-0.9.0.full", full_package("0.9.0", HW, v0["kernel"], v0["rootfs"]))
    return _attempt(fleet, work / "downgrade-dev")


def freeze(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "freeze")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    ts = fleet.repo.load("timestamp")["signed"]
    stale = {**ts, "expires": iso_utc(time.time() - 3600)}
    (fleet.repo.meta_dir / "timestamp.json").write_text(json.dumps(sign(stale, fleet.repo.keys("timestamp"))))
    return _attempt(fleet, work / "freeze-dev")


def endless_data(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "endless")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    return _attempt(fleet, work / "endless-dev", _Endless(fleet.repo.root))


def mix_and_match(work: Path) -> tuple[bool, str]:
    """Targets metadata from one release combined with snapshot/timestamp of another."""
    fleet = _fleet(work, "mix")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    ts, snap = (fleet.repo.meta_dir / "timestamp.json").read_bytes(), (fleet.repo.meta_dir / "snapshot.json").read_bytes()
    v3 = synthetic_firmware("1.2.0", healthy=False)
    fleet.repo.add_target("fw-1.2.0.full", full_package("1.2.0", HW, v3["kernel"], v3["rootfs"]))
    (fleet.repo.meta_dir / "timestamp.json").write_bytes(ts)   # old timestamp + snapshot, newer targets
    (fleet.repo.meta_dir / "snapshot.json").write_bytes(snap)
    return _attempt(fleet, work / "mix-dev")


def wrong_hardware(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "hw")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.other-hw", full_package("1.1.0", "t40xp-bullet-v2", v2["kernel"], v2["rootfs"]))
    return _attempt(fleet, work / "hw-dev")


def tampered_delta(work: Path) -> tuple[bool, str]:
    """A delta whose patch bytes were altered on the mirror (hash check), then one signed but producing wrong images."""
    fleet = _fleet(work, "delta")
    v1, v2 = synthetic_firmware("1.0.0"), synthetic_firmware("1.1.0")
    good = delta_package("1.1.0", HW, v1, v2)
    fleet.repo.add_target("fw-1.1.0.delta", good, custom={"base_version": "1.0.0"})
    path = fleet.repo.targets_dir / "fw-1.1.0.delta"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    first = _attempt(fleet, work / "delta-dev")
    # a signed delta whose patch was made against the wrong base: produces an image unlike the signed one
    fleet2 = _fleet(work, "delta2")
    wrong_base = synthetic_firmware("1.0.0", seed=99)
    bad = delta_package("1.1.0", HW, wrong_base, v2)
    parts = [Part(p.name, p.payload, p.image_sha256, sha256(v1[p.name]))
             for p in __import__("device_sim.ota.package", fromlist=["parse"]).parse(bad).parts]
    fleet2.repo.add_target("fw-1.1.0.delta", build("delta", "1.1.0", HW, parts), custom={"base_version": "1.0.0"})
    second = _attempt(fleet2, work / "delta2-dev")
    return first[0] and second[0], f"{first[1]} | {second[1]}"


def corrupt_metadata(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "corrupt")
    (fleet.repo.meta_dir / "timestamp.json").write_bytes(b'{"signed": {"_type": "timestamp", "vers')
    return _attempt(fleet, work / "corrupt-dev")


def truncated_package(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "trunc")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    path = fleet.repo.targets_dir / "fw-1.1.0.full"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _attempt(fleet, work / "trunc-dev")


ATTACKS: dict[str, Callable[[Path], tuple[bool, str]]] = {
    "arbitrary_package": arbitrary_package, "wrong_signature": wrong_signature, "rollback_metadata": rollback_metadata,
    "downgrade": downgrade, "freeze": freeze, "endless_data": endless_data, "mix_and_match": mix_and_match,
    "wrong_hardware": wrong_hardware, "tampered_delta": tampered_delta, "corrupt_metadata": corrupt_metadata,
    "truncated_package": truncated_package,
}
