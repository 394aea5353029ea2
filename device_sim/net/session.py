"""Session security: mutual authentication bound to the device key and the account key, then AES-GCM records.

Handshake: SIGMA-style "sign-and-MAC"-free variant with signed transcripts (Krawczyk, "SIGMA: the 'SIGn-and-MAc'
Approach to Authenticated Diffie-Hellman", CRYPTO 2003), three messages::

    app    -> device  HELLO  (account, did, X25519 ephemeral a, nonce_a)
    device -> app     REPLY  (did, X25519 ephemeral d, nonce_d, Ed25519_device(th2))
    app    -> device  FINISH (Ed25519_account(th3))             device -> app CONFIRM (encrypted) or REJECT

with th1 = H(label || HELLO), th2 = H(th1 || REPLY without signature), th3 = H(th2 || "finish"). Keys: HKDF-SHA256
(RFC 5869) over X25519(a, d) (RFC 7748), salted with th2: one AES-256-GCM key and 4-byte nonce salt per direction
and the 64-bit session id. Nonce = salt || 64-bit record sequence (RFC 5116 §3.2, the TLS 1.3 construction of
RFC 8446 §5.3); the 20-byte record header is the additional data; a 1024-record sliding window rejects replays
(RFC 6347 §4.1.2.6). The device looks up the account's public key and its permissions in the account service at
FINISH time (no cache), and the app checks the device signature against the key the factory registered.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .accounts import AccountStore
from .identity import AppIdentity, DeviceIdentity, verify
from .packets import (Hello, PacketError, Record, RecordType, RejectReason, Reply, parse_finish, parse_hello,
                      parse_reject, parse_reply)

log = logging.getLogger(__name__)
LABEL = b"camlab-session-v1"
TAG_LEN = 16
WINDOW = 1024


class HandshakeError(PacketError):
    """The peer could not be authenticated or refused us."""


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


class ReplayWindow:
    """Anti-replay sliding window (RFC 6347 §4.1.2.6 / RFC 4303 §3.4.3)."""

    def __init__(self, size: int = WINDOW):
        self.size = size
        self.top = -1
        self.bits = 0

    def seen(self, seq: int) -> bool:
        if seq > self.top:
            return False
        if self.top - seq >= self.size:
            return True            # too old: treated as a replay
        return bool(self.bits >> (self.top - seq) & 1)

    def mark(self, seq: int) -> None:
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


@dataclass
class SecureSession:
    """An established session: seal/open records in one direction each."""
    session_id: int
    send_key: bytes
    recv_key: bytes
    send_salt: bytes
    recv_salt: bytes
    account: str
    did: str
    send_seq: int = 1
    window: ReplayWindow = field(default_factory=ReplayWindow)
    rejected: int = 0

    def __post_init__(self):
        self._send = AESGCM(self.send_key)
        self._recv = AESGCM(self.recv_key)

    def seal(self, payload: bytes, rtype: RecordType = RecordType.DATA) -> bytes:
        seq = self.send_seq
        self.send_seq += 1
        rec = Record(rtype, self.session_id, seq, b"")
        header = rec.header
        return header + self._send.encrypt(self.send_salt + seq.to_bytes(8, "big"), payload, header)

    def open(self, rec: Record) -> bytes:
        """Decrypt a record of this session; raises PacketError on a forgery, a replay or another session's id."""
        if rec.session_id != self.session_id:
            raise PacketError(f"record for session {rec.session_id:#x}, expected {self.session_id:#x}")
        if rec.type not in (RecordType.DATA, RecordType.CONFIRM, RecordType.CLOSE):
            raise PacketError(f"record type {rec.type.name} inside an established session")
        if len(rec.body) < TAG_LEN:
            raise PacketError("record shorter than its authentication tag")
        if self.window.seen(rec.seq):
            self.rejected += 1
            raise PacketError(f"replayed record seq {rec.seq}")
        try:
            plain = self._recv.decrypt(self.recv_salt + rec.seq.to_bytes(8, "big"), rec.body, rec.header)
        except InvalidTag as exc:
            self.rejected += 1
            raise PacketError("record authentication failed") from exc
        self.window.mark(rec.seq)
        return plain


def _derive(shared: bytes, th2: bytes, account: str, did: str, device_side: bool) -> SecureSession:
    okm = HKDF(algorithm=hashes.SHA256(), length=32 + 32 + 4 + 4 + 8, salt=th2, info=LABEL + b" keys").derive(shared)
    k_a2d, k_d2a, s_a2d, s_d2a, sid = okm[:32], okm[32:64], okm[64:68], okm[68:72], okm[72:80]
    sid_int = int.from_bytes(sid, "big") or 1
    if device_side:
        return SecureSession(sid_int, k_d2a, k_a2d, s_d2a, s_a2d, account, did)
    return SecureSession(sid_int, k_a2d, k_d2a, s_a2d, s_d2a, account, did)


def _pub(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _ecdh(priv: X25519PrivateKey, peer: bytes) -> bytes:
    try:
        shared = priv.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError as exc:   # all-zero output: a low-order point (RFC 7748 §6.1)
        raise HandshakeError("peer ephemeral key is a low-order point") from exc
    return shared


class ClientHandshake:
    """The app side. ``device_pub``: the device's Ed25519 key as the factory registered it (from the cloud)."""

    def __init__(self, app: AppIdentity, did: str, device_pub: bytes):
        self.app, self.did, self.device_pub = app, did, device_pub
        self._eph = X25519PrivateKey.generate()
        self._hello = Hello(app.account, did, _pub(self._eph), os.urandom(16))
        self.session: SecureSession | None = None
        self._th3: bytes | None = None
        self._finish: bytes | None = None

    def hello(self) -> bytes:
        return Record(RecordType.HELLO, 0, 0, self._hello.encode()).encode()

    def on_reply(self, rec: Record) -> bytes:
        """Verify the device and return the FINISH record (idempotent on a duplicate REPLY)."""
        if rec.type is RecordType.REJECT:
            raise HandshakeError(f"device rejected the session: {parse_reject(rec.body).name}")
        if rec.type is not RecordType.REPLY:
            raise PacketError(f"expected REPLY, got {rec.type.name}")
        if self._finish is not None and self.session is not None and rec.session_id == self.session.session_id:
            return self._finish
        reply = parse_reply(rec.body)
        if reply.did != self.did:
            raise HandshakeError(f"reply from {reply.did}, expected {self.did}")
        th1 = _h(LABEL, self._hello.encode())
        unsigned = reply.encode()[:-64]
        th2 = _h(th1, unsigned, b"device")
        if not verify(self.device_pub, reply.signature, th2):
            raise HandshakeError(f"device signature for {self.did} does not verify (not the factory key)")
        session = _derive(_ecdh(self._eph, reply.eph_pub), th2, self.app.account, self.did, device_side=False)
        if session.session_id != rec.session_id:
            raise HandshakeError("reply session id does not match the derived keys")
        self.session = session
        th3 = _h(th2, b"finish")
        self._finish = Record(RecordType.FINISH, session.session_id, 0, self.app.sign(th3)).encode()
        return self._finish

    def on_confirm(self, rec: Record) -> SecureSession:
        if rec.type is RecordType.REJECT:
            raise HandshakeError(f"device rejected the session: {parse_reject(rec.body).name}")
        if self.session is None:
            raise PacketError("CONFIRM before REPLY")
        if rec.type is not RecordType.CONFIRM:
            raise PacketError(f"expected CONFIRM, got {rec.type.name}")
        self.session.open(rec)
        return self.session


@dataclass
class _Pending:
    session: SecureSession
    th3: bytes
    reply: bytes
    created: float
    confirm: bytes | None = None


class DeviceHandshake:
    """The device side, one object for all incoming handshakes on a transport."""

    MAX_PENDING = 64
    PENDING_TTL_S = 10.0

    def __init__(self, ident: DeviceIdentity, accounts: AccountStore):
        self.ident, self.accounts = ident, accounts
        self.pending: dict[int, _Pending] = {}
        self.refused = 0

    def _reject(self, sid: int, reason: RejectReason, why: str) -> bytes:
        self.refused += 1
        log.warning("session refused (%s): %s", reason.name, why)
        return Record(RecordType.REJECT, sid, 0, bytes([reason])).encode()

    def on_hello(self, rec: Record) -> bytes:
        hello = parse_hello(rec.body)
        if hello.did != self.ident.did:
            return self._reject(0, RejectReason.WRONG_DEVICE, f"hello for {hello.did}")
        now = time.monotonic()
        for sid in [s for s, p in self.pending.items() if now - p.created > self.PENDING_TTL_S]:
            del self.pending[sid]
        if len(self.pending) >= self.MAX_PENDING:
            oldest = min(self.pending, key=lambda s: self.pending[s].created)
            del self.pending[oldest]
        eph = X25519PrivateKey.generate()
        reply = Reply(self.ident.did, _pub(eph), os.urandom(16), b"")
        unsigned = reply.encode()
        th2 = _h(_h(LABEL, hello.encode()), unsigned, b"device")
        session = _derive(_ecdh(eph, hello.eph_pub), th2, hello.account, self.ident.did, device_side=True)
        body = unsigned + self.ident.sign(th2)
        out = Record(RecordType.REPLY, session.session_id, 0, body).encode()
        self.pending[session.session_id] = _Pending(session, _h(th2, b"finish"), out, now)
        return out

    def on_finish(self, rec: Record) -> tuple[SecureSession | None, bytes]:
        """Authenticate the account and check it may use this device. Returns (session or None, record to send)."""
        sig = parse_finish(rec.body)
        p = self.pending.get(rec.session_id)
        if p is None:
            return None, self._reject(rec.session_id, RejectReason.PROTOCOL, "FINISH for no pending handshake")
        if p.confirm is not None:
            return None, p.confirm               # duplicate FINISH: resend CONFIRM, no second session
        account = p.session.account
        pub = self.accounts.account_public_key(account)
        if pub is None:
            del self.pending[rec.session_id]
            return None, self._reject(rec.session_id, RejectReason.UNKNOWN_ACCOUNT, f"account {account!r} unknown")
        if not verify(pub, sig, p.th3):
            del self.pending[rec.session_id]
            return None, self._reject(rec.session_id, RejectReason.BAD_SIGNATURE, f"bad signature for {account!r}")
        if not self.accounts.permissions(account, self.ident.did):
            del self.pending[rec.session_id]
            return None, self._reject(rec.session_id, RejectReason.NOT_AUTHORISED,
                                      f"{account!r} has no rights on {self.ident.did}")
        p.confirm = p.session.seal(b"", RecordType.CONFIRM)
        return p.session, p.confirm

