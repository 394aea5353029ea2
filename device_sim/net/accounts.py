"""Cloud account service: accounts, devices from the factory, owners, shared users and one-time binding tokens.

The ownership model follows the Matter/MIoT pattern of an owner who binds the device after provisioning and may
share it with other accounts (CSA Matter 1.2 §6.6 Access Control; Xiaomi MIoT device sharing). Authorisation is a
fresh SQLite query on every call — there is no in-memory ownership cache anywhere, so a revocation takes effect at
the next request. Binding tokens are 128-bit random, stored only as SHA-256, single use and time limited
(RFC 6749 §10.5 guidance for authorisation codes).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from camlab.errors import CamlabError

log = logging.getLogger(__name__)

PERMISSIONS = ("view", "talk", "control", "files")
OWNER_PERMISSIONS = frozenset(PERMISSIONS) | {"share"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account TEXT PRIMARY KEY, sign_pub BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (did TEXT PRIMARY KEY, sign_pub BLOB NOT NULL, kx_pub BLOB NOT NULL,
                                    model TEXT NOT NULL, made REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (did TEXT PRIMARY KEY REFERENCES devices(did), owner TEXT NOT NULL
                                     REFERENCES accounts(account), bound REAL NOT NULL);
CREATE TABLE IF NOT EXISTS shares (did TEXT NOT NULL, account TEXT NOT NULL, perms TEXT NOT NULL,
                                   PRIMARY KEY (did, account));
CREATE TABLE IF NOT EXISTS bind_tokens (token_hash BLOB PRIMARY KEY, account TEXT NOT NULL, expires REAL NOT NULL,
                                        used REAL);
CREATE TABLE IF NOT EXISTS api_tokens (token_hash BLOB PRIMARY KEY, kind TEXT NOT NULL, principal TEXT NOT NULL,
                                       issued REAL NOT NULL, revoked REAL);
"""


class AuthError(CamlabError):
    """An identity, token or permission check failed (the request is refused and logged)."""


def _hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AccountStore:
    """The cloud's account database (SQLite, WAL). Safe to open from several processes at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.queries = 0          # authorisation lookups that went to the database (there is no other path)

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple):
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _write(self, sql: str, args: tuple) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # ------------------------------------------------------------------ factory and accounts
    def register_device(self, did: str, sign_pub: bytes, kx_pub: bytes, model: str) -> None:
        if self._one("SELECT 1 FROM devices WHERE did=?", (did,)):
            raise AuthError(f"device {did}: already registered at the factory")
        self._write("INSERT INTO devices VALUES (?,?,?,?,?)", (did, sign_pub, kx_pub, model, time.time()))

    def device_public_key(self, did: str) -> bytes | None:
        row = self._one("SELECT sign_pub FROM devices WHERE did=?", (did,))
        return bytes(row[0]) if row else None

    def create_account(self, account: str, sign_pub: bytes) -> None:
        if not account or len(account) > 64 or not account.isprintable() or ":" in account:
            raise AuthError(f"account name {account!r}: expected 1..64 printable characters without ':'")
        if self._one("SELECT 1 FROM accounts WHERE account=?", (account,)):
            raise AuthError(f"account {account}: already exists")
        self._write("INSERT INTO accounts VALUES (?,?,?)", (account, sign_pub, time.time()))

    def account_public_key(self, account: str) -> bytes | None:
        row = self._one("SELECT sign_pub FROM accounts WHERE account=?", (account,))
        return bytes(row[0]) if row else None

    # ------------------------------------------------------------------ binding
    def issue_bind_token(self, account: str, ttl_s: float = 600.0, now: float | None = None) -> str:
        if self.account_public_key(account) is None:
            raise AuthError(f"account {account}: unknown")
        token = secrets.token_hex(16)
        now = time.time() if now is None else now
        self._write("INSERT INTO bind_tokens VALUES (?,?,?,NULL)", (_hash_token(token), account, now + ttl_s))
        return token

    def bind(self, did: str, token: str, signature: bytes, now: float | None = None) -> str:
        """Consume ``token`` and make its account the owner of ``did``. ``signature``: the device's Ed25519
        signature over ``bind_message(did, token)`` (proof that the real device, not a copy of its DID, binds)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        now = time.time() if now is None else now
        pub = self.device_public_key(did)
        if pub is None:
            log.warning("bind refused: unknown device %s", did)
            raise AuthError(f"bind: device {did} was not made at the factory")
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(signature, bind_message(did, token))
        except (InvalidSignature, ValueError) as exc:
            log.warning("bind refused: bad device signature for %s", did)
            raise AuthError(f"bind: device signature for {did} does not verify") from exc
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT account, expires, used FROM bind_tokens WHERE token_hash=?",
                                  (_hash_token(token),)).fetchone()
                if row is None:
                    raise AuthError("bind: unknown token")
                account, expires, used = row
                if used is not None:
                    raise AuthError("bind: token already used (replay)")
                if now > expires:
                    raise AuthError(f"bind: token expired {now - expires:.0f} s ago")
                owner = cur.execute("SELECT owner FROM bindings WHERE did=?", (did,)).fetchone()
                if owner is not None and owner[0] != account:
                    raise AuthError(f"bind: device {did} is bound to another account; the owner must unbind it")
                cur.execute("UPDATE bind_tokens SET used=? WHERE token_hash=?", (now, _hash_token(token)))
                cur.execute("INSERT OR REPLACE INTO bindings VALUES (?,?,?)", (did, account, now))
                cur.execute("COMMIT")
            except BaseException as exc:
                cur.execute("ROLLBACK")
                if isinstance(exc, AuthError):
                    log.warning("bind refused for %s: %s", did, exc)
                raise
        log.info("device %s bound to %s", did, account)
        return account

    def unbind(self, owner: str, did: str) -> None:
        if self.owner(did) != owner:
            raise AuthError(f"unbind: {owner} does not own {did}")
        with self._lock:
            self._db.execute("DELETE FROM bindings WHERE did=?", (did,))
            self._db.execute("DELETE FROM shares WHERE did=?", (did,))

    def owner(self, did: str) -> str | None:
        row = self._one("SELECT owner FROM bindings WHERE did=?", (did,))
        return row[0] if row else None

    def share(self, owner: str, did: str, account: str, perms: tuple[str, ...] = ("view",)) -> None:
        bad = [p for p in perms if p not in PERMISSIONS]
        if bad:
            raise AuthError(f"share: unknown permission(s) {bad}, expected a subset of {PERMISSIONS}")
        if self.owner(did) != owner:
            raise AuthError(f"share: {owner} does not own {did}")
        if self.account_public_key(account) is None:
            raise AuthError(f"share: account {account} unknown")
        self._write("INSERT OR REPLACE INTO shares VALUES (?,?,?)", (did, account, ",".join(sorted(set(perms)))))

    def unshare(self, owner: str, did: str, account: str) -> None:
        if self.owner(did) != owner:
            raise AuthError(f"unshare: {owner} does not own {did}")
        self._write("DELETE FROM shares WHERE did=? AND account=?", (did, account))

    def shared_with(self, did: str) -> list[str]:
        """Accounts the device is currently shared with (not including the owner)."""
        with self._lock:
            rows = self._db.execute("SELECT s.account FROM shares s JOIN bindings b ON b.did=s.did WHERE s.did=? "
                                    "ORDER BY 1", (did,)).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ cloud API credentials (bearer tokens)
    def issue_api_token(self, kind: str, principal: str) -> str:
        """A 128-bit bearer token for the cloud HTTP API: ``kind`` "device" (a made device's DID; issued when it is
        provisioned) or "user" (an account; issued at app login). Stored only as SHA-256."""
        if kind == "device":
            known = self.device_public_key(principal) is not None
        elif kind == "user":
            known = self.account_public_key(principal) is not None
        else:
            raise AuthError(f"api token: unknown kind {kind!r}, expected 'device' or 'user'")
        if not known:
            raise AuthError(f"api token: {kind} {principal} unknown")
        token = secrets.token_hex(16)
        self._write("INSERT INTO api_tokens VALUES (?,?,?,?,NULL)", (_hash_token(token), kind, principal, time.time()))
        return token

    def revoke_api_token(self, token: str) -> None:
        self._write("UPDATE api_tokens SET revoked=? WHERE token_hash=?", (time.time(), _hash_token(token)))

    def api_principal(self, token: str) -> tuple[str, str] | None:
        """(kind, principal) of a live API token, or None (unknown or revoked). A fresh query every call."""
        self.queries += 1
        row = self._one("SELECT kind, principal FROM api_tokens WHERE token_hash=? AND revoked IS NULL",
                        (_hash_token(token),))
        return (row[0], row[1]) if row else None

    # ------------------------------------------------------------------ authorisation (always a fresh query)
    def permissions(self, account: str, did: str) -> frozenset[str]:
        self.queries += 1
        row = self._one(
            "SELECT 'owner' FROM bindings WHERE did=? AND owner=? "
            "UNION ALL SELECT perms FROM shares s JOIN bindings b ON b.did=s.did WHERE s.did=? AND s.account=?",
            (did, account, did, account))
        if row is None:
            return frozenset()
        return OWNER_PERMISSIONS if row[0] == "owner" else frozenset(p for p in row[0].split(",") if p)

    def authorise(self, account: str, did: str, perm: str) -> bool:
        if perm not in OWNER_PERMISSIONS:
            raise AuthError(f"authorise: unknown permission {perm!r}")
        return perm in self.permissions(account, did)

    def devices_of(self, account: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT did FROM bindings WHERE owner=? UNION SELECT s.did FROM shares s "
                                    "JOIN bindings b ON b.did=s.did WHERE s.account=? ORDER BY 1",
                                    (account, account)).fetchall()
        return [r[0] for r in rows]


def bind_message(did: str, token: str) -> bytes:
    return b"camlab-bind-v1|" + did.encode() + b"|" + token.encode()
