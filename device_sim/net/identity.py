"""Device and app identities: a DID and per-device Ed25519 (signing) + X25519 (key agreement) key pairs made at the
"factory", and the app's per-account signing key.

RFC 8032 (Ed25519), RFC 7748 (X25519). The private keys live only in the device's keystore file (0600, written
atomically); the factory records the public keys in the cloud's account service. The DID is derived from the
signing key (first 80 bits of SHA-256, hex) so it cannot be chosen to collide with another device's.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from camlab.errors import InputFileError
from camlab.io_utils import atomic_write_json

from .accounts import AccountStore, bind_message

KEYSTORE = "keystore.json"
MODEL = "camlab.camera.c1"


def _raw_priv(key) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _raw_pub(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def did_from_public_key(sign_pub: bytes) -> str:
    """``cam-`` + 20 hex digits (no ':' so it is a valid MQTT user name and topic level)."""
    return "cam-" + hashlib.sha256(b"camlab-did|" + sign_pub).hexdigest()[:20]


def verify(pub: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


@dataclass
class DeviceIdentity:
    did: str
    sign_key: Ed25519PrivateKey
    kx_key: X25519PrivateKey
    mqtt_password: str
    model: str = MODEL

    @property
    def sign_pub(self) -> bytes:
        return _raw_pub(self.sign_key)

    @property
    def kx_pub(self) -> bytes:
        return _raw_pub(self.kx_key)

    def sign(self, message: bytes) -> bytes:
        return self.sign_key.sign(message)

    def bind_proof(self, token: str) -> bytes:
        return self.sign(bind_message(self.did, token))

    def save(self, device_dir: Path) -> Path:
        path = Path(device_dir) / KEYSTORE
        atomic_write_json(path, {"did": self.did, "model": self.model, "mqtt_password": self.mqtt_password,
                                 "sign_key": _raw_priv(self.sign_key).hex(), "kx_key": _raw_priv(self.kx_key).hex()},
                          mode=0o600)
        return path

    @classmethod
    def load(cls, device_dir: Path) -> "DeviceIdentity":
        path = Path(device_dir) / KEYSTORE
        try:
            obj = json.loads(path.read_text())
            ident = cls(obj["did"], Ed25519PrivateKey.from_private_bytes(bytes.fromhex(obj["sign_key"])),
                        X25519PrivateKey.from_private_bytes(bytes.fromhex(obj["kx_key"])), obj["mqtt_password"],
                        obj.get("model", MODEL))
        except FileNotFoundError as exc:
            raise InputFileError(f"{path}: device keystore missing (run the factory step first)") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"{path}: malformed keystore ({exc.__class__.__name__}: {exc})") from exc
        if did_from_public_key(ident.sign_pub) != ident.did:
            raise InputFileError(f"{path}: field 'did' does not match the signing key")
        return ident


def manufacture(device_dir: Path, accounts: AccountStore, model: str = MODEL) -> DeviceIdentity:
    """The factory step: fresh keys, a DID, the keystore on the device, the public keys in the cloud."""
    sign_key, kx_key = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    ident = DeviceIdentity(did_from_public_key(_raw_pub(sign_key)), sign_key, kx_key, secrets.token_urlsafe(18), model)
    accounts.register_device(ident.did, ident.sign_pub, ident.kx_pub, model)
    ident.save(device_dir)
    return ident


@dataclass
class AppIdentity:
    """The app's login key for one account (kept in the phone's secure storage)."""
    account: str
    sign_key: Ed25519PrivateKey

    @property
    def sign_pub(self) -> bytes:
        return _raw_pub(self.sign_key)

    def sign(self, message: bytes) -> bytes:
        return self.sign_key.sign(message)

    def save(self, path: Path) -> None:
        atomic_write_json(Path(path), {"account": self.account, "sign_key": _raw_priv(self.sign_key).hex()},
                          mode=0o600)

    @classmethod
    def load(cls, path: Path) -> "AppIdentity":
        try:
            obj = json.loads(Path(path).read_text())
            return cls(obj["account"], Ed25519PrivateKey.from_private_bytes(bytes.fromhex(obj["sign_key"])))
        except FileNotFoundError as exc:
            raise InputFileError(f"{path}: app key file missing") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFileError(f"{path}: malformed app key file ({exc})") from exc


def create_account(accounts: AccountStore, account: str) -> AppIdentity:
    app = AppIdentity(account, Ed25519PrivateKey.generate())
    accounts.create_account(account, app.sign_pub)
    return app
