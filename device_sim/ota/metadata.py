"""TUF-style update metadata: signed roles (root, targets, snapshot, timestamp), verification and key rotation.

The Update Framework specification v1.0 (theupdateframework.io/specification), sections 4 (document formats) and 5
(detailed client workflow): canonical JSON, threshold signatures (Ed25519, RFC 8032), expiry (freeze attack), version
monotonicity (rollback attack), snapshot/timestamp consistency (mix-and-match attack), length caps (endless data).
A new root is trusted only when signed by a threshold of the old root's keys AND of its own keys (key rotation, §5.3).
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ROLES = ("root", "targets", "snapshot", "timestamp")
MAX_METADATA_BYTES = 512 * 1024  # endless-data cap for metadata documents


class MetadataError(Exception):
    """Metadata failed verification (signature, expiry, version, consistency, format). The message says which."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace) — what signatures cover."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso_utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_utc(text: str) -> float:
    import calendar

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 metadata key; ``keyid`` is the sha256 of the raw public key."""
    private: Ed25519PrivateKey

    @staticmethod
    def generate() -> "SigningKey":
        return SigningKey(Ed25519PrivateKey.generate())

    @staticmethod
    def from_pem(data: bytes) -> "SigningKey":
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise MetadataError("metadata signing key must be Ed25519")
        return SigningKey(key)

    def to_pem(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def keyid(self) -> str:
        return sha256_hex(self.public_raw)

    def public_entry(self) -> dict:
        return {"keytype": "ed25519", "public": self.public_raw.hex()}


def sign(signed: dict, keys: list[SigningKey]) -> dict:
    """Envelope ``{"signed": ..., "signatures": [{keyid, sig}]}``."""
    payload = canonical(signed)
    return {"signed": signed, "signatures": [
        {"keyid": k.keyid, "sig": base64.b64encode(k.private.sign(payload)).decode("ascii")} for k in keys]}


def count_valid_signatures(envelope: dict, keys: dict[str, dict], keyids: list[str]) -> int:
    """Distinct authorised keys whose signature over ``signed`` verifies. Distinct means distinct *keys*: a root
    that lists one public key under several key ids (tuf-conformance ``test_duplicate_keys_root``) counts it once."""
    payload = canonical(envelope["signed"])
    good: set[bytes] = set()
    for entry in envelope.get("signatures", []):
        kid = entry.get("keyid")
        if kid not in keyids or kid not in keys:
            continue
        try:
            raw = bytes.fromhex(keys[kid]["public"])
            if raw in good:
                continue
            Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(entry.get("sig", ""), validate=True),
                                                           payload)
            good.add(raw)
        except (InvalidSignature, ValueError, TypeError):
            continue
    return len(good)


def parse_envelope(data: bytes, role: str) -> dict:
    """Bytes -> envelope with a structural check; raises MetadataError naming the role."""
    if len(data) > MAX_METADATA_BYTES:
        raise MetadataError(f"{role} metadata is {len(data)} bytes, over the {MAX_METADATA_BYTES}-byte cap")
    try:
        env = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{role} metadata is not valid JSON: {exc}") from None
    if not isinstance(env, dict) or not isinstance(env.get("signed"), dict) \
            or not isinstance(env.get("signatures"), list):
        raise MetadataError(f"{role} metadata lacks 'signed'/'signatures'")
    if not all(isinstance(e, dict) and isinstance(e.get("keyid"), str) and isinstance(e.get("sig"), str)
               for e in env["signatures"]):
        raise MetadataError(f"{role} metadata 'signatures' must be a list of {{keyid, sig}} strings")
    signed = env["signed"]
    if signed.get("_type") != role:
        raise MetadataError(f"{role} metadata has _type {signed.get('_type')!r}")
    for key, typ in (("version", int), ("expires", str)):
        if not isinstance(signed.get(key), typ):
            raise MetadataError(f"{role} metadata field '{key}' missing or not {typ.__name__}")
    return env


def verify_role(env: dict, role: str, root_signed: dict, now: float) -> dict:
    """Check threshold signatures by the root-authorised keys for ``role`` and expiry; returns ``signed``."""
    spec = root_signed["roles"].get(role)
    if not spec:
        raise MetadataError(f"root defines no role {role!r}")
    n = count_valid_signatures(env, root_signed["keys"], spec["keyids"])
    if n < spec["threshold"]:
        raise MetadataError(f"{role} metadata has {n} valid signature(s), threshold is {spec['threshold']}")
    try:
        expires = parse_utc(env["signed"]["expires"])
    except ValueError:
        raise MetadataError(f"{role} metadata field 'expires' is not an ISO-8601 UTC time") from None
    if expires <= now:
        raise MetadataError(f"{role} metadata expired at {env['signed']['expires']} (freeze attack or stale mirror)")
    return env["signed"]


def check_root_structure(root: dict) -> None:
    """A root's ``keys`` (keyid -> {"public": hex}) and ``roles`` (each with a ``keyids`` list and an integer
    ``threshold`` >= 1, for every role) are what verification indexes: anything else is a MetadataError."""
    keys, roles = root.get("keys"), root.get("roles")
    if not isinstance(keys, dict) or not all(isinstance(k, dict) and isinstance(k.get("public"), str)
                                             for k in keys.values()):
        raise MetadataError("root metadata field 'keys' must map key ids to {'public': hex}")
    if not isinstance(roles, dict):
        raise MetadataError("root metadata field 'roles' must be an object")
    for role in ROLES:
        spec = roles.get(role)
        if not isinstance(spec, dict) or not isinstance(spec.get("keyids"), list) \
                or not all(isinstance(k, str) for k in spec["keyids"]) \
                or type(spec.get("threshold")) is not int or spec["threshold"] < 1:
            raise MetadataError(f"root metadata role {role!r} needs a 'keyids' list of strings and an integer "
                                f"'threshold' >= 1")


def verify_root_rotation(trusted_root: dict, new_env: dict) -> dict:
    """A new root version N+1: signed by a threshold of the trusted root's keys and of its own keys."""
    new = new_env["signed"]
    if new.get("version") != trusted_root["version"] + 1:
        raise MetadataError(f"root version {new.get('version')} does not follow trusted version "
                            f"{trusted_root['version']}")
    old_spec = trusted_root["roles"]["root"]
    if count_valid_signatures(new_env, trusted_root["keys"], old_spec["keyids"]) < old_spec["threshold"]:
        raise MetadataError("new root is not signed by a threshold of the trusted root keys")
    check_root_structure(new)
    new_spec = new["roles"]["root"]
    if count_valid_signatures(new_env, new["keys"], new_spec["keyids"]) < new_spec["threshold"]:
        raise MetadataError("new root is not signed by a threshold of its own root keys")
    return new


def make_root(version: int, expires: float, role_keys: dict[str, list[SigningKey]],
              thresholds: dict[str, int] | None = None) -> dict:
    keys: dict[str, dict] = {}
    roles = {}
    for role in ROLES:
        ks = role_keys[role]
        for k in ks:
            keys[k.keyid] = k.public_entry()
        roles[role] = {"keyids": [k.keyid for k in ks], "threshold": (thresholds or {}).get(role, 1)}
    return {"_type": "root", "spec_version": "1.0", "version": version, "expires": iso_utc(expires),
            "keys": keys, "roles": roles}
