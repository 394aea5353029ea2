"""How the camera reaches the OTA server: HTTPS with Range requests (resumable), or a local directory mirror.

RFC 9110 §14 (Range requests). Every fetch is capped: the server can never make the camera read more than the
metadata cap or the signed package length + 1 byte (endless-data attack).
"""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request
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
    TLS keeps the transport private; the TUF signatures on every document remain the real guard."""

    def __init__(self, base_url: str, cafile: Path | None = None, timeout: float = 10.0):
        self.base = base_url.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        self.ctx.check_hostname = True
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.verify_flags |= getattr(ssl, "VERIFY_X509_STRICT", 0)
        self.timeout = timeout

    def fetch(self, path: str, max_bytes: int, offset: int = 0) -> bytes:
        req = urllib.request.Request(f"{self.base}/{path.lstrip('/')}")
        if offset:
            req.add_header("Range", f"bytes={offset}-")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=self.timeout) as resp:
                if offset and resp.status != 206:
                    raise TransportError(f"{path}: server ignored the Range request (status {resp.status})")
                return resp.read(max_bytes)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(path) from None
            raise TransportError(f"{path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"{path}: {exc}") from None
