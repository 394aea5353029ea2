"""How the camera reaches the OTA server: HTTPS with Range requests (resumable), or a local directory mirror.

RFC 9110 §14 (Range requests). Every fetch is capped: the server can never make the camera read more than the
metadata cap or the signed package length + 1 byte (endless-data attack).
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path


class NotFound(Exception):
    """The server has no such document (e.g. the next root version)."""


class TransportError(Exception):
    """The server could not be reached or answered with an error."""


class DirTransport:
    """A repository directory read as if it were the server (fault-injection runs, USB-stick updates)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def fetch(self, path: str, max_bytes: int, offset: int = 0) -> bytes:
        target = (self.root / path).resolve()
        if self.root.resolve() not in target.parents or not target.is_file():
            raise NotFound(path)
        with open(target, "rb") as fh:
            fh.seek(offset)
            return fh.read(max_bytes)


class HttpsTransport:
    """HTTPS to the OTA service. ``cafile`` pins the service's CA (its self-signed certificate): it is the only trust
    anchor, and the certificate must name the host in ``base_url`` (RFC 6125 hostname/IP check, strict X.509).
    TLS keeps the transport private; the TUF signatures on every document remain the real guard.

    Slow retrieval (TUF §1.5.2: a mirror that trickles bytes forever, each one before any socket timeout): every
    request has a deadline, ``deadline_s`` from connect to the last byte; when it passes, the socket is shut down
    from a timer and the fetch fails with :class:`TransportError`. ``timeout`` bounds each socket operation."""

    def __init__(self, base_url: str, cafile: Path | None = None, timeout: float = 10.0, deadline_s: float = 30.0):
        if not (timeout > 0 and deadline_s > 0):
            raise ValueError(f"https transport: timeout and deadline_s must be > 0, got {timeout}, {deadline_s}")
        self.base = base_url.rstrip("/")
        url = urllib.parse.urlsplit(self.base)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"https transport: base_url must be https://host[:port][/prefix], got {base_url!r}")
        self.host, self.port, self.prefix = url.hostname, url.port or 443, url.path.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        self.ctx.check_hostname = True
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
        self.timeout = timeout
        self.deadline_s = deadline_s

    def fetch(self, path: str, max_bytes: int, offset: int = 0) -> bytes:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
        expired = threading.Event()

        def cut() -> None:                    # the deadline passed: unblock whatever read is in progress
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        timer = threading.Timer(self.deadline_s, cut)
        timer.daemon = True
        t0 = time.monotonic()
        timer.start()
        try:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            conn.request("GET", f"{self.prefix}/{path.lstrip('/')}", headers=headers)
            resp = conn.getresponse()
            if resp.status == 404:
                raise NotFound(path)
            if resp.status not in (200, 206):
                raise TransportError(f"{path}: HTTP {resp.status}")
            if offset and resp.status != 206:
                raise TransportError(f"{path}: server ignored the Range request (status {resp.status})")
            out = bytearray()
            while len(out) < max_bytes:
                piece = resp.read1(min(65536, max_bytes - len(out)))
                if not piece:
                    break
                out += piece
                if expired.is_set():
                    break
            if expired.is_set():
                raise TransportError(f"{path}: slow retrieval: {len(out)} bytes in {time.monotonic() - t0:.1f} s, "
                                     f"over the {self.deadline_s:g} s per-request deadline")
            return bytes(out)
        except (NotFound, TransportError):
            raise
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set():
                raise TransportError(f"{path}: slow retrieval: no answer within the {self.deadline_s:g} s "
                                     "per-request deadline") from None
            raise TransportError(f"{path}: {exc}") from None
        finally:
            timer.cancel()
            conn.close()
