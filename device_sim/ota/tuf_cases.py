"""TUF client attack cases against the OTA client, over HTTPS on loopback (a :class:`~device_sim.ota.attacks.Mirror`).

The list follows the client tests of the ``tuf-conformance`` suite (theupdateframework/tuf-conformance:
test_rollback.py, test_keys.py, test_updater_key_rotations.py, test_file_download.py), which is not on this machine's
package index and expects a TUF-spec client CLI; each case is re-stated here for this client's metadata format:

* fast-forward recovery (timestamp, snapshot, targets): a compromised online key pushed a version far ahead; the
  vendor rotates the key in a new root and starts the version over; the device must follow (TUF §5.3.11), and
  without a rotation the same roll-back must still be refused;
* slow retrieval: a mirror trickles a byte every 50 ms forever (metadata or package): the per-request deadline of
  the transport must end it, the running slot untouched;
* threshold > 1: targets needs 2 of 2 keys: one signature, the same signature twice, or one key listed under two
  key ids in root must all be refused; 2 distinct signatures are accepted (control);
* malicious root rotation: a new root not signed by the old root keys, not signed by its own keys, with a version
  that does not follow, a replayed old root, or a zero threshold must be refused (trusted root stays); a proper
  rotation is followed (control).

Each case returns ``(passed, detail)``: passed means the device did what TUF requires (refuse, or recover).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from device_sim.hal.flash import Flash
from device_sim.ota import bootloader
from device_sim.ota.attacks import Mirror, _fleet
from device_sim.ota.client import TransportError
from device_sim.ota.faults import HW, Fleet, synthetic_firmware
from device_sim.ota.metadata import ROLES, SigningKey, iso_utc, make_root, sign
from device_sim.ota.package import full_package
from device_sim.ota.repository import DAY, Repository
from device_sim.ota.updater import Updater, UpdateRejected

__all__ = ["CASES", "Mirror", "_fleet"]


def _run_device(flash: Flash, transport, max_boots: int = 6) -> tuple[str, str]:
    """Boot and run the updater until idle: (version booted at the end, last refusal or step detail)."""
    last = ""
    for _ in range(max_boots):
        booted = bootloader.boot(flash)
        try:
            step = Updater(flash, transport, HW, booted).step()
        except (UpdateRejected, TransportError) as exc:
            return booted.version, f"refused: {exc}"
        last = f"{step.action}: {step.detail}"
        if step.action == "none":
            return booted.version, last
    return bootloader.boot(flash).version, last


def _state(flash: Flash) -> dict:
    try:
        return json.loads((flash.data / "ota" / "state.json").read_bytes())
    except (OSError, ValueError):
        return {}


def _trusted_root_version(flash: Flash) -> int:
    return bootloader.trusted_root(flash)["version"]


def _add_v2(repo: Repository) -> None:
    v2 = synthetic_firmware("1.1.0")
    repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))


def _resign(repo: Repository, role: str, **changes) -> None:
    signed = {**repo.load(role)["signed"], **changes}
    repo._write(role, sign(signed, repo.keys(role)))


# ---- fast-forward recovery -----------------------------------------------------------------------------------------
def _fast_forward(work: Path, name: str, role: str, rotate: tuple[str, ...] | None) -> tuple[bool, str]:
    fleet = _fleet(work, name)
    repo = fleet.repo
    flash = fleet.clone_device(work / f"{name}-dev")
    with Mirror(repo.root) as m:
        if role == "timestamp":                          # the attacker's timestamp key pushes v100
            for _ in range(99):
                repo.publish_timestamp()
        elif role == "snapshot":
            _resign(repo, "snapshot", version=99999)
            repo.publish_timestamp()
        else:
            _resign(repo, "targets", version=100)
            repo.publish_snapshot()
        _run_device(flash, m.transport)
        seen = _state(flash).get(f"{role}_version")
        if rotate:                                       # the vendor rotates the compromised key(s)
            repo.rotate_keys(rotate)
        _add_v2(repo)                                    # ... and ships an update with the version started over
        if role == "timestamp":
            _resign(repo, "timestamp", version=1)
        elif role == "snapshot":
            _resign(repo, "snapshot", version=1)
            repo.publish_timestamp()
        else:
            _resign(repo, "targets", version=1)
            repo.publish_snapshot()
        version, detail = _run_device(flash, m.transport)
    after = _state(flash).get(f"{role}_version")
    if rotate:
        ok = version == "1.1.0" and seen is not None and seen > 1
        return ok, f"{role} fast-forwarded to v{seen}; after rotating {list(rotate)} the device runs {version} " \
                   f"(trusted {role} v{after}); {detail}"
    ok = version == "1.0.0" and "rollback" in detail
    return ok, f"{role} fast-forwarded to v{seen}, rolled back to 1 without a key rotation: device runs {version}; " \
               f"{detail}"


def fast_forward_recovery_timestamp(work: Path) -> tuple[bool, str]:
    return _fast_forward(work, "ffr-ts", "timestamp", ("timestamp",))


def fast_forward_recovery_snapshot(work: Path) -> tuple[bool, str]:
    return _fast_forward(work, "ffr-snap", "snapshot", ("snapshot", "timestamp"))


def fast_forward_recovery_targets(work: Path) -> tuple[bool, str]:
    return _fast_forward(work, "ffr-targets", "targets", ("snapshot",))


def fast_forward_rollback_without_rotation(work: Path) -> tuple[bool, str]:
    return _fast_forward(work, "ff-norot", "timestamp", None)


# ---- slow retrieval ---------------------------------------------------------------------------------------------------
def _slow(work: Path, name: str, prefix: str, deadline_s: float = 2.0) -> tuple[bool, str]:
    fleet = _fleet(work, name)
    _add_v2(fleet.repo)
    flash = fleet.clone_device(work / f"{name}-dev")
    with Mirror(fleet.repo.root, "trickle", trickle_prefix=prefix, deadline_s=deadline_s) as m:
        t0 = time.monotonic()
        version, detail = _run_device(flash, m.transport)
        took = time.monotonic() - t0
        trickled = m.trickled_bytes
    ok = version == "1.0.0" and "slow retrieval" in detail and took < deadline_s + 5 and trickled > 2
    return ok, f"{prefix} trickled ({trickled} bytes sent): refused after {took:.1f} s (deadline {deadline_s} s); " \
               f"{detail}"


def slow_retrieval_metadata(work: Path) -> tuple[bool, str]:
    return _slow(work, "slow-meta", "metadata/timestamp.json")


def slow_retrieval_package(work: Path) -> tuple[bool, str]:
    return _slow(work, "slow-pkg", "targets/")


# ---- threshold > 1 ----------------------------------------------------------------------------------------------------
def _publish_root(repo: Repository, root_signed: dict, signers: list[SigningKey]) -> None:
    repo._write_root(sign(root_signed, signers))


def _targets_threshold_two(work: Path, name: str, duplicate_key: bool = False) -> tuple[Fleet, list[SigningKey], str]:
    """Root v2: targets needs 2 signatures; two keys (or, ``duplicate_key``, one key listed under two key ids)."""
    fleet = _fleet(work, name)
    repo = fleet.repo
    k1, k2 = SigningKey.generate(), SigningKey.generate()
    role_keys = {r: repo.keys(r) for r in ROLES}
    role_keys["targets"] = [k1, k2]
    old = repo.load("root")["signed"]
    root = make_root(old["version"] + 1, time.time() + 365 * DAY, role_keys, thresholds={"targets": 2})
    fake = ""
    if duplicate_key:                                    # k1's public key under a second key id instead of k2
        fake = "d" * 64
        root["keys"].pop(k2.keyid)
        root["keys"][fake] = k1.public_entry()
        root["roles"]["targets"]["keyids"] = [k1.keyid, fake]
    _publish_root(repo, root, repo.keys("root"))
    repo._store_keys("targets", [k1, k2])
    _add_v2(repo)                                        # targets signed by k1 and k2
    return fleet, [k1, k2], fake


def _threshold(work: Path, name: str, how: str) -> tuple[bool, str]:
    fleet, (k1, k2), fake = _targets_threshold_two(work, name, duplicate_key=how == "duplicate_key")
    repo = fleet.repo
    env = repo.load("targets")
    if how == "one_signature":
        env = sign(env["signed"], [k1])
    elif how == "same_signature_twice":
        env = sign(env["signed"], [k1])
        env["signatures"] = env["signatures"] * 2
    elif how == "duplicate_key":
        env = sign(env["signed"], [k1])
        env["signatures"].append({"keyid": fake, "sig": env["signatures"][0]["sig"]})
    repo._write("targets", env)
    repo.publish_snapshot()
    flash = fleet.clone_device(work / f"{name}-dev")
    with Mirror(repo.root) as m:
        version, detail = _run_device(flash, m.transport)
    if how == "two_keys":                                # the control: 2 of 2 distinct keys are accepted
        return version == "1.1.0", f"targets signed by 2 of 2 keys: device runs {version}; {detail}"
    ok = version == "1.0.0" and "threshold" in detail
    return ok, f"targets threshold 2, {how.replace('_', ' ')}: device runs {version}; {detail}"


def threshold_one_of_two(work: Path) -> tuple[bool, str]:
    return _threshold(work, "thr-one", "one_signature")


def threshold_same_signature_twice(work: Path) -> tuple[bool, str]:
    return _threshold(work, "thr-dup-sig", "same_signature_twice")


def threshold_duplicate_key_in_root(work: Path) -> tuple[bool, str]:
    return _threshold(work, "thr-dup-key", "duplicate_key")


def threshold_two_of_two_accepted(work: Path) -> tuple[bool, str]:
    return _threshold(work, "thr-ok", "two_keys")


# ---- malicious root rotation ------------------------------------------------------------------------------------------
def _root_attack(work: Path, name: str, how: str) -> tuple[bool, str]:
    fleet = _fleet(work, name)
    repo = fleet.repo
    old_root = repo.load("root")["signed"]
    old_keys = repo.keys("root")
    attacker = SigningKey.generate()
    role_keys = {r: repo.keys(r) for r in ROLES}
    if how == "legit":
        repo.rotate_keys(("root", "targets"))
        _add_v2(repo)
    else:
        evil_keys = {**role_keys, "root": [attacker], "targets": [attacker]}
        version = old_root["version"] + (2 if how == "version_skip" else 1)
        new = make_root(version, time.time() + 365 * DAY, evil_keys)
        if how == "not_signed_by_old":
            envelope = sign(new, [attacker])
        elif how == "not_signed_by_new":
            envelope = sign(new, old_keys)
        elif how == "zero_threshold":
            new = make_root(version, time.time() + 365 * DAY, role_keys)
            new["roles"]["targets"]["threshold"] = 0
            envelope = sign(new, old_keys)
        elif how == "replayed_old_root":
            envelope = repo.load("root")                  # v1 served as 2.root.json
        else:                                             # version_skip: v3 served as the next root
            envelope = sign(new, old_keys + [attacker])
        (repo.meta_dir / f"{old_root['version'] + 1}.root.json").write_text(json.dumps(envelope))
        v2 = synthetic_firmware("1.1.0", seed=666)        # the attacker's firmware, signed by the attacker
        repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
        signer = [] if how == "zero_threshold" else [attacker]
        targets = repo.load("targets")["signed"]
        repo._write("targets", sign({**targets, "expires": iso_utc(time.time() + 30 * DAY)}, signer))
        repo.publish_snapshot()
    flash = fleet.clone_device(work / f"{name}-dev")
    with Mirror(repo.root) as m:
        version, detail = _run_device(flash, m.transport)
    trusted = _trusted_root_version(flash)
    if how == "legit":
        return version == "1.1.0" and trusted == 2, f"root rotated properly: trusted root v{trusted}, device " \
                                                    f"runs {version}; {detail}"
    ok = version == "1.0.0" and trusted == 1 and detail.startswith("refused")
    return ok, f"root rotation {how.replace('_', ' ')}: trusted root v{trusted}, device runs {version}; {detail}"


def root_rotation_not_signed_by_old_keys(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-old", "not_signed_by_old")


def root_rotation_not_signed_by_new_keys(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-new", "not_signed_by_new")


def root_rotation_version_skip(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-skip", "version_skip")


def root_rotation_replayed_old_root(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-replay", "replayed_old_root")


def root_rotation_zero_threshold(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-zero", "zero_threshold")


def root_rotation_legit_is_followed(work: Path) -> tuple[bool, str]:
    return _root_attack(work, "root-legit", "legit")


CASES: dict[str, Callable[[Path], tuple[bool, str]]] = {
    "fast_forward_recovery_timestamp": fast_forward_recovery_timestamp,
    "fast_forward_recovery_snapshot": fast_forward_recovery_snapshot,
    "fast_forward_recovery_targets": fast_forward_recovery_targets,
    "fast_forward_rollback_without_rotation": fast_forward_rollback_without_rotation,
    "slow_retrieval_metadata": slow_retrieval_metadata,
    "slow_retrieval_package": slow_retrieval_package,
    "threshold_one_of_two": threshold_one_of_two,
    "threshold_same_signature_twice": threshold_same_signature_twice,
    "threshold_duplicate_key_in_root": threshold_duplicate_key_in_root,
    "threshold_two_of_two_accepted": threshold_two_of_two_accepted,
    "root_rotation_not_signed_by_old_keys": root_rotation_not_signed_by_old_keys,
    "root_rotation_not_signed_by_new_keys": root_rotation_not_signed_by_new_keys,
    "root_rotation_version_skip": root_rotation_version_skip,
    "root_rotation_replayed_old_root": root_rotation_replayed_old_root,
    "root_rotation_zero_threshold": root_rotation_zero_threshold,
    "root_rotation_legit_is_followed": root_rotation_legit_is_followed,
}
