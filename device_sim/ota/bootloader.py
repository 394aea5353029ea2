"""The boot loader: boots only a verified slot, counts trial boots, falls back to the good slot.

A/B scheme after RAUC's bootchooser and U-Boot's bootcount, with the fix for the known RAUC issue that a counter
decremented on *every* boot lets a few quick power cuts switch slots: here the counter is armed only for a trial boot
of a freshly written slot and disarmed on commit; a committed slot boots without touching any counter. A slot is
verified on every boot: its kernel and rootfs sha256 must equal the images named by TUF targets metadata signed with
a key the trusted root authorises (signature only; expiry is the updater's concern, never a reason not to boot).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from device_sim.hal.flash import PARTS, SLOTS, Flash
from device_sim.ota.metadata import MetadataError, count_valid_signatures
from device_sim.ota.package import sha256


class Bricked(Exception):
    """No verified slot can be booted (must never happen; the harness counts it)."""


@dataclass(frozen=True)
class BootResult:
    slot: str
    version: str
    trial: bool


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def trusted_root(flash: Flash) -> dict:
    return json.loads((flash.root / "boot" / "root.json").read_bytes())


def signed_images(record: dict, root: dict) -> dict[str, str]:
    """The image hashes a slot record's signed targets metadata vouches for; raises MetadataError."""
    env = record.get("targets_env")
    if not isinstance(env, dict) or "signed" not in env:
        raise MetadataError("slot has no targets metadata")
    spec = root["roles"]["targets"]
    if count_valid_signatures(env, root["keys"], spec["keyids"]) < spec["threshold"]:
        raise MetadataError("slot's targets metadata is not validly signed")
    target = env["signed"].get("targets", {}).get(record.get("target"))
    if not target:
        raise MetadataError(f"slot's target {record.get('target')!r} is not in its signed metadata")
    images = target.get("custom", {}).get("images", {})
    if set(images) != set(PARTS):
        raise MetadataError("signed target does not name every partition image")
    return images


def verify_slot(flash: Flash, slot: str, env: dict) -> bool:
    record = env["slots"].get(slot, {})
    if record.get("state") not in ("good", "trial"):
        return False
    try:
        images = signed_images(record, trusted_root(flash))
    except (MetadataError, OSError, ValueError, KeyError):
        return False
    return all(sha256(flash.read_partition(slot, p)) == images[p] for p in PARTS)


def boot(flash: Flash) -> BootResult:
    """One power-on: choose and verify a slot, updating the env only for trial boots."""
    env = flash.read_env()
    if env is None:
        raise Bricked("no valid boot environment copy")
    trial = env.get("trial")
    if trial:
        slot = trial["slot"]
        if trial["tries_left"] > 0 and verify_slot(flash, slot, env):
            env = {**env, "trial": {"slot": slot, "tries_left": trial["tries_left"] - 1}}
            flash.write_env(env)
            return BootResult(slot, env["slots"][slot].get("version", "?"), True)
        # trial exhausted or the written slot does not verify: give it up, boot the committed slot
        slots = dict(env["slots"])
        slots[slot] = {**slots[slot], "state": "bad"}
        env = flash.write_env({**env, "trial": None, "slots": slots})
    for slot in (env["active"], other(env["active"])):
        if verify_slot(flash, slot, env) and env["slots"][slot]["state"] == "good":
            return BootResult(slot, env["slots"][slot].get("version", "?"), False)
    raise Bricked(f"neither slot verifies (states: {[env['slots'][s].get('state') for s in SLOTS]})")
