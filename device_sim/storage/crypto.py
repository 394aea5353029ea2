"""HLS segment encryption: AES-128-CBC with PKCS#7 padding and a fresh random IV per segment.

RFC 8216 §4.3.2.4 (EXT-X-KEY METHOD=AES-128: whole-segment AES-128-CBC, PKCS7 padding, IV attribute as a 128-bit
hexadecimal ``0x...``), §5.2 (IV); PKCS #7 padding per RFC 5652 §6.3. The content key is the *user's*: it is made on
the user's phone (:func:`new_user_key`), given to the camera at pairing, and never uploaded — the cloud stores
ciphertext and a key URI (``camlab-key://<key_id>``) it cannot resolve.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from camlab.errors import CamlabError

KEY_URI_SCHEME = "camlab-key://"
TS_PACKET = 188


class DecryptionError(CamlabError):
    """A segment does not decrypt with the given key (wrong key, or a damaged segment)."""


@dataclass(frozen=True)
class UserKey:
    """A 128-bit content key and its public id (the id is a hash: it names the key without revealing it)."""
    key: bytes

    def __post_init__(self):
        if not isinstance(self.key, bytes) or len(self.key) != 16:
            raise CamlabError("user key: expected 16 bytes (AES-128)")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"camlab-key-id" + self.key).hexdigest()[:16]

    @property
    def uri(self) -> str:
        return f"{KEY_URI_SCHEME}{self.key_id}"

    def hex(self) -> str:
        return self.key.hex()

    @classmethod
    def from_hex(cls, text: str) -> "UserKey":
        text = text.strip()
        if not re.fullmatch(r"[0-9a-fA-F]{32}", text):
            raise CamlabError("user key: expected 32 hexadecimal characters")
        return cls(bytes.fromhex(text))


def new_user_key() -> UserKey:
    return UserKey(secrets.token_bytes(16))


def new_iv() -> bytes:
    """A fresh random 128-bit IV (os.urandom); IVs are also checked for reuse across all segments (IvLedger)."""
    return os.urandom(16)


def iv_attr(iv: bytes) -> str:
    return "0x" + iv.hex().upper()


def parse_iv_attr(text: str) -> bytes:
    if not re.fullmatch(r"0[xX][0-9a-fA-F]{32}", text):
        raise CamlabError(f"EXT-X-KEY IV: expected 0x + 32 hex digits, got {text!r}")
    return bytes.fromhex(text[2:])


def encrypt_segment(key: UserKey, plaintext: bytes, iv: bytes) -> bytes:
    if len(iv) != 16:
        raise CamlabError("segment IV: expected 16 bytes")
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key.key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt_segment(key: UserKey, ciphertext: bytes, iv: bytes, *, name: str = "segment",
                    expect_ts: bool = True) -> bytes:
    """Decrypt one segment; a wrong key fails here with a clear error (bad padding or no MPEG-TS sync bytes)."""
    if len(ciphertext) == 0 or len(ciphertext) % 16:
        raise DecryptionError(f"{name}: ciphertext length {len(ciphertext)} is not a positive multiple of 16")
    dec = Cipher(algorithms.AES(key.key), modes.CBC(iv)).decryptor()
    data = dec.update(ciphertext) + dec.finalize()
    unpad = padding.PKCS7(128).unpadder()
    try:
        plain = unpad.update(data) + unpad.finalize()
    except ValueError:
        raise DecryptionError(f"{name}: does not decrypt with key {key.key_id} (wrong key or damaged segment)") from None
    if expect_ts and (len(plain) % TS_PACKET or any(plain[i] != 0x47 for i in range(0, len(plain), TS_PACKET))):
        raise DecryptionError(f"{name}: does not decrypt with key {key.key_id} to MPEG-TS (wrong key or damaged segment)")
    return plain


def key_check_value(key: UserKey) -> str:
    """A short HMAC tag the user app can compare to a clip's, to tell "wrong key" before downloading segments."""
    return hmac.new(key.key, b"camlab-kcv", hashlib.sha256).hexdigest()[:12]


class IvLedger:
    """Every IV ever used with a key, persisted (append + fsync) so reuse is refused even across reboots."""

    def __init__(self, path=None):
        self.path = path
        self._seen: set[bytes] = set()
        if path is not None and os.path.exists(path):
            data = open(path, "rb").read()
            data = data[: len(data) - len(data) % 16]          # a torn last record is ignored
            self._seen = {data[i:i + 16] for i in range(0, len(data), 16)}

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, iv: bytes) -> bool:
        return iv in self._seen

    def claim(self) -> bytes:
        """A fresh IV never used before (drawn again on the astronomically unlikely repeat)."""
        while True:
            iv = new_iv()
            if iv not in self._seen:
                break
        self._seen.add(iv)
        if self.path is not None:
            with open(self.path, "ab") as fh:
                fh.write(iv)
                fh.flush()
                os.fsync(fh.fileno())
        return iv
