"""TUF metadata envelopes: ``parse_envelope`` then ``verify_role`` (threshold signatures, expiry) against a trusted
root, and ``verify_root_rotation`` for a new root. Keys are fixed (from constant seeds) so the corpus stays valid.

Selector byte: low 2 bits pick the role (root, targets, snapshot, timestamp); bit 2 set = the harness re-signs the
parsed ``signed`` object with that role's key before verifying (so mutations of the signed part get past the
signature check and reach the expiry / rotation logic, as metadata from a compromised-but-authorised key would)."""
from __future__ import annotations

INSTRUMENT = ("device_sim.ota.metadata",)
NOW = 1_800_000_000.0          # 2027-01-15: a fixed "now", so expiry verdicts do not depend on the day
EXPIRES = NOW + 365 * 86400


def _keys():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device_sim.ota.metadata import ROLES, SigningKey
    return {role: SigningKey(Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32)) for i, role in enumerate(ROLES)}


def setup():
    import json

    from device_sim.ota import metadata as md
    keys = _keys()
    root = md.make_root(1, EXPIRES, {r: [k] for r, k in keys.items()})

    def one(data: bytes) -> None:
        if not data:
            return
        role = md.ROLES[data[0] & 3]
        env = md.parse_envelope(data[1:], role)
        if data[0] & 4:
            env = md.sign(env["signed"], [keys[role]])
            env = md.parse_envelope(json.dumps(env).encode(), role)
        if role == "root":
            md.verify_root_rotation(root, env)
        else:
            md.verify_role(env, role, root, NOW)
    return one, (md.MetadataError,)


def seeds() -> dict[str, bytes]:
    import json

    from device_sim.ota import metadata as md
    keys = _keys()
    exp = md.iso_utc(EXPIRES)
    root2 = md.make_root(2, EXPIRES, {r: [k] for r, k in keys.items()})
    signed = {
        "root": root2,
        "targets": {"_type": "targets", "version": 3, "expires": exp, "targets": {
            "fw-2.0.0.camota": {"length": 1234, "hashes": {"sha256": "ab" * 32},
                                "custom": {"kind": "full", "version": "2.0.0", "hardware_id": "hw"}}}},
        "snapshot": {"_type": "snapshot", "version": 2, "expires": exp, "meta": {"targets.json": {"version": 3}}},
        "timestamp": {"_type": "timestamp", "version": 2, "expires": exp, "meta": {"snapshot.json": {
            "version": 2, "length": 300, "hashes": {"sha256": "cd" * 32}}}},
    }
    out = {}
    for i, role in enumerate(md.ROLES):
        env = md.sign(signed[role], [keys[role]])
        text = json.dumps(env).encode()
        out[f"{role}-valid"] = bytes([i]) + text
        out[f"{role}-resign"] = bytes([i | 4]) + text
        out[f"{role}-unsigned"] = bytes([i]) + json.dumps({"signed": signed[role], "signatures": []}).encode()
    out["root-truncated"] = b"\x00" + json.dumps(md.sign(root2, [keys["root"]])).encode()[:90]
    out["timestamp-expired"] = bytes([3 | 4]) + json.dumps(md.sign(
        {**signed["timestamp"], "expires": "2001-01-01T00:00:00Z"}, [keys["timestamp"]])).encode()
    return out
