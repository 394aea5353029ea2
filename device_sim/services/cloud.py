"""Cloud clip store: receives encrypted HLS segments (resumable uploads), push notifications, serves timelines.

Runs as its own process: ``python -m device_sim.services.cloud --port 0 --state DIR --cert C --key K`` prints the
port it listens on (first stdout line) and serves HTTPS (TLS 1.2+, a self-signed certificate made with
``cryptography`` when ``C``/``K`` do not exist yet; clients pin it as their CA file).

RFC 8216 §4.3.2.4 (EXT-X-KEY, AES-128): the store only ever holds ciphertext. Playlists are refused unless every
segment is preceded by ``EXT-X-KEY:METHOD=AES-128`` with an IV and a ``camlab-key://`` URI (a key the cloud cannot
resolve); segments are refused when they are not a positive multiple of 16 bytes or look like clear MPEG-TS.
RFC 9110 §14.4 Content-Range / RFC 7233-style resumable PUT (as in Google's resumable media upload):

* ``PUT /v1/clips/<event_id>/<name>`` with ``Content-Range: bytes <first>-<last>/<total>``: ``<first>`` must equal the
  bytes already received (else 409 + ``Range``); answers 308 + ``Range: bytes=0-<n-1>`` while incomplete, 201 when
  the file is whole (validated, then renamed into place atomically). ``name``: ``segNNNNN.ts``, ``playlist.m3u8``,
  ``clip.json``; playlists and clip.json may be replaced, segments are write-once.
* ``HEAD /v1/clips/<event_id>/<name>``: 200 (complete, Content-Length) / 308 with ``Range`` / 404.
* ``GET /v1/clips/<event_id>/<name>``; ``GET /v1/timeline?start=<unix s>&end=<unix s>``: clip metadata in time order.
* ``POST /v1/push`` (JSON event; stamped ``received_at``), ``GET /v1/push?since=<unix s>``: the phone's inbox.
Malformed requests get 400 with ``{"error": "..."}`` naming the field; nothing stored is touched by a bad request.

Authentication and tenancy (``--accounts DB``, the account service of :mod:`device_sim.net.accounts`): every request
but ``GET /v1/health`` carries ``Authorization: Bearer <token>``, a cloud API token that the account service issued
to a device (at provisioning) or to a user's app (at login); none, unknown or revoked -> 401. Cameras write, apps
read: a device may PUT clips and POST pushes, an event folder belongs to the device that first wrote it and no other
device may write there; a user reads a clip, the timeline and the push inbox only for devices it owns or that are
shared with it (``view``), a device reads only its own. Ownership is a fresh account-service query per request (an
unbind or unshare takes effect at once); everything else -> 403. Refusals are appended to ``STATE/access_log.jsonl``
(:class:`device_sim.net.endpoint.AccessLog`, ``service: cloud``)
``--throttle-bps`` limits how fast request bodies are read (a slow uplink), ``--fail-rate`` answers that fraction of
uploads with 503 (a flaky link), both for tests of the uploader's adaptation and retry.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from camlab.io_utils import atomic_write_bytes, fsync_dir
from device_sim.net.accounts import AccountStore
from device_sim.net.endpoint import AccessLog
from device_sim.services import tls

NAME_RE = re.compile(r"^(seg\d{5}\.ts|playlist\.m3u8|clip\.json)$")
EVENT_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")      # a plain name: no leading '.', no separator
RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
MAX_FILE = 64 * 1024 * 1024
MAX_JSON = 64 * 1024
OWNER_FILE = ".owner"          # in each event folder: the DID of the device that created it
TOKEN_RE = re.compile(r"^Bearer ([0-9a-f]{32})$")
DECIMAL_RE = re.compile(r"[0-9]{1,19}")      # a Content-Length: ASCII decimal digits


def enroll_tenant(accounts_db: Path, account: str, device_dir: Path) -> dict:
    """Test/bench helper: an account with one camera bound to it and both their cloud API tokens (made once per
    ``device_dir``, then read back, so a restarted cloud on the same state finds the same tenant)."""
    from device_sim.net.identity import create_account, manufacture

    saved = Path(device_dir) / "cloud_tenant.json"
    if saved.exists():
        return json.loads(saved.read_text())
    store = AccountStore(accounts_db)
    try:
        create_account(store, account)
        dev = manufacture(Path(device_dir), store)
        tok = store.issue_bind_token(account)
        store.bind(dev.did, tok, dev.bind_proof(tok))
        out = {"account": account, "did": dev.did, "user_token": store.issue_api_token("user", account),
               "device_token": store.issue_api_token("device", dev.did)}
    finally:
        store.close()
    atomic_write_bytes(saved, json.dumps(out).encode(), mode=0o600)
    return out


def make_self_signed(cert_path: Path, key_path: Path, common_name: str = "camlab-cloud") -> None:
    """The cloud's self-signed certificate (see device_sim.services.tls)."""
    tls.make_self_signed(cert_path, key_path, common_name)


class BadRequest(Exception):
    def __init__(self, status: int, msg: str, headers: dict | None = None):
        super().__init__(msg)
        self.status, self.headers = status, headers or {}


def validate_playlist(text: str) -> None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise BadRequest(400, "playlist.m3u8: first line must be #EXTM3U")
    key_ok = False
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-KEY:"):
            attrs = dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', ln[len("#EXT-X-KEY:"):]))
            if attrs.get("METHOD") != "AES-128":
                raise BadRequest(400, "playlist.m3u8: EXT-X-KEY METHOD must be AES-128 (the cloud stores ciphertext)")
            if not re.fullmatch(r'"camlab-key://[0-9a-f]{16}"', attrs.get("URI", "")):
                raise BadRequest(400, 'playlist.m3u8: EXT-X-KEY URI must be "camlab-key://<key id>" (user-held key)')
            if not re.fullmatch(r"0[xX][0-9a-fA-F]{32}", attrs.get("IV", "")):
                raise BadRequest(400, "playlist.m3u8: EXT-X-KEY IV must be 0x + 32 hex digits")
            key_ok = True
        elif not ln.startswith("#"):
            if not key_ok:
                raise BadRequest(400, f"playlist.m3u8: segment {ln!r} has no EXT-X-KEY before it")
            if not NAME_RE.match(ln) or not ln.endswith(".ts"):
                raise BadRequest(400, f"playlist.m3u8: segment URI {ln!r} must be segNNNNN.ts")


def validate_segment(data: bytes) -> None:
    if not data or len(data) % 16:
        raise BadRequest(400, f"segment: {len(data)} bytes is not a positive multiple of 16 (AES-128-CBC ciphertext)")
    if len(data) >= 376 and data[0] == 0x47 and data[188] == 0x47:
        raise BadRequest(400, "segment: looks like clear MPEG-TS; only encrypted segments are stored")


def validate_clip_json(data: bytes) -> dict:
    try:
        meta = json.loads(data)
    except ValueError as exc:
        raise BadRequest(400, f"clip.json: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BadRequest(400, "clip.json: expected an object")
    for k, typ in (("event_id", str), ("start_wall_s", (int, float)), ("end_wall_s", (int, float)),
                   ("key_uri", str), ("complete", bool)):
        if not isinstance(meta.get(k), typ):
            raise BadRequest(400, f"clip.json: field {k!r} missing or not {getattr(typ, '__name__', 'a number')}")
    if any("key" == k.lower() or k.lower().endswith("_key") for k in meta):
        raise BadRequest(400, "clip.json: must not carry key material")
    return meta


class Principal:
    """Who is asking: ``kind`` "device" (``name`` = DID) or "user" (``name`` = account)."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class CloudStore:
    def __init__(self, state: Path, throttle_bps: float = 0.0, fail_rate: float = 0.0, seed: int = 0,
                 accounts: AccountStore | None = None):
        self.state = Path(state)
        (self.state / "clips").mkdir(parents=True, exist_ok=True)
        self.accounts = accounts
        self.audit = AccessLog(self.state / "access_log.jsonl")
        self.push_log = self.state / "push.jsonl"
        self.throttle_bps, self.fail_rate = throttle_bps, fail_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.locks: dict[str, threading.Lock] = {}
        self.uploaded_at: dict[str, float] = {}

    def lock_for(self, key: str) -> threading.Lock:
        with self.lock:
            return self.locks.setdefault(key, threading.Lock())

    def paths(self, eid: str, name: str) -> tuple[Path, Path]:
        """The stored file and its partial upload for ``eid``/``name``. Both components must be plain names (no
        '.'/'..', no separator, no leading dot); the resolved folder must be a direct child of the clip root."""
        if not isinstance(eid, str) or not EVENT_RE.fullmatch(eid) or eid in (".", ".."):
            raise BadRequest(400, f"event id {eid!r}: expected a plain name [A-Za-z0-9_-][A-Za-z0-9_.-]{{0,63}}")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise BadRequest(400, f"file name {name!r}: expected segNNNNN.ts, playlist.m3u8 or clip.json")
        root = (self.state / "clips").resolve()
        d = (root / eid).resolve()
        if d.parent != root or d.name != eid:
            raise BadRequest(400, f"event id {eid!r}: resolves outside the clip store")
        return d / name, d / f".{name}.part"

    # ---- tenancy ------------------------------------------------------------------------------------------------
    def owner_of(self, eid: str) -> str | None:
        """The DID of the device that created event folder ``eid`` (None: no such event)."""
        try:
            return (self.state / "clips" / eid / OWNER_FILE).read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def claim(self, eid: str, did: str) -> str:
        """Make ``did`` the owner of a new event folder (atomic: the first writer wins); returns the owner."""
        d = self.state / "clips" / eid
        d.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(d / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.owner_of(eid) or ""
        try:
            os.write(fd, did.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(d)
        return did

    def may_read(self, who: Principal, did: str | None) -> bool:
        """A device reads only its own objects; a user those of devices it owns or that are shared with it."""
        if did is None or self.accounts is None:
            return False
        if who.kind == "device":
            return who.name == did and self.accounts.owner(did) is not None
        return self.accounts.authorise(who.name, did, "view")

    def may_write(self, who: Principal, did: str | None) -> bool:
        """Only a bound device writes, and only into event folders it created (``did`` None: a new folder)."""
        if who.kind != "device" or self.accounts is None or self.accounts.owner(who.name) is None:
            return False
        return did is None or did == who.name


def _query_float(query: str, field: str, default: float, what: str) -> float:
    """A finite number from the query string (400 naming the field otherwise)."""
    try:
        q = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as exc:
        raise BadRequest(400, f"{what}: malformed query ({exc})") from None
    vals = q.get(field)
    if vals is None:
        return default
    try:
        v = float(vals[0])
    except ValueError:
        v = math.nan
    if len(vals) != 1 or not math.isfinite(v):
        raise BadRequest(400, f"{what}: {field} must be one finite number of UNIX seconds, got {vals!r}")
    return v


class Handler(BaseHTTPRequestHandler):
    server_version = "camlab-cloud/1"
    protocol_version = "HTTP/1.1"
    store: CloudStore

    def log_message(self, fmt, *args):          # quiet
        pass

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict | None = None,
              head: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _read_body(self, limit: int) -> bytes:
        n = self.headers.get("Content-Length")
        if n is None or not DECIMAL_RE.fullmatch(n):       # ASCII digits only: "10\u00b9".isdigit() is True
            raise BadRequest(411, "Content-Length header required (a decimal byte count)")
        n = int(n)
        if n > limit:
            raise BadRequest(413, f"body of {n} bytes exceeds {limit}")
        out, bps = bytearray(), self.store.throttle_bps
        t0 = time.monotonic()
        while len(out) < n:
            chunk = self.rfile.read(min(16384, n - len(out)))
            if not chunk:
                self._body_done = True              # nothing more to drain: the connection is closed anyway
                raise BadRequest(400, f"body ended after {len(out)} of {n} bytes")
            out += chunk
            if bps:
                ahead = len(out) / bps - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        self._body_done = True
        return bytes(out)

    def _route(self):
        u = urlsplit(self.path)
        parts = [p for p in u.path.split("/") if p]
        return u, parts

    def _who(self) -> Principal:
        """The caller's credential (401 when missing, malformed, unknown or revoked)."""
        self._principal = None
        m = TOKEN_RE.match(self.headers.get("Authorization", "").strip())
        found = self.store.accounts.api_principal(m.group(1)) if m and self.store.accounts is not None else None
        if found is None:
            raise BadRequest(401, "a valid credential is required: Authorization: Bearer <cloud API token>"
                             if not m else "credential unknown or revoked",
                             {"WWW-Authenticate": 'Bearer realm="camlab-cloud"'})
        self._principal = Principal(*found)
        return self._principal

    def _refuse(self, why: str) -> None:
        raise BadRequest(403, why)

    def _guard(self, fn):
        self._principal, self._body_done = None, False
        try:
            fn()
        except BadRequest as exc:
            cl = self.headers.get("Content-Length", "0")
            unread = not self._body_done and (not DECIMAL_RE.fullmatch(cl) or int(cl) > 0)
            if exc.status in (400, 411, 413) or unread:    # a refused request's body may still be on the wire
                self.close_connection = True
                exc.headers = {**exc.headers, "Connection": "close"}
            if exc.status in (401, 403):
                self.store.audit.write(durable=False, service="cloud", event="refused", status=exc.status,
                                       method=self.command, path=urlsplit(self.path).path[:256],
                                       principal=str(self._principal) if self._principal else None,
                                       peer=self.client_address[0], reason=str(exc)[:200])
            self._json(exc.status, {"error": str(exc)}, exc.headers)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    # ---- verbs ------------------------------------------------------------------------------------------------
    def do_PUT(self):
        self._guard(self._put)

    def do_HEAD(self):
        self._guard(lambda: self._get(head=True))

    def do_GET(self):
        self._guard(self._get)

    def do_POST(self):
        self._guard(self._post)

    def _not_allowed(self):
        raise BadRequest(405, f"method {self.command} not allowed", {"Allow": "GET, HEAD, PUT, POST"})

    def do_DELETE(self):
        self._guard(self._not_allowed)

    do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = do_DELETE

    def _put(self):
        u, parts = self._route()
        if len(parts) != 4 or parts[:2] != ["v1", "clips"]:
            raise BadRequest(404, f"no such resource {u.path}")
        st = self.store
        who = self._who()
        final, part = st.paths(parts[2], parts[3])
        owner = st.owner_of(parts[2])
        if not st.may_write(who, owner) or (owner is None and st.claim(parts[2], who.name) != who.name):
            self._refuse(f"{who} may not write {parts[2]}/{parts[3]}" +
                         ("" if who.kind == "device" else " (apps read, cameras upload)"))
        m = RANGE_RE.match(self.headers.get("Content-Range", ""))
        if not m:
            raise BadRequest(400, "Content-Range: expected 'bytes <first>-<last>/<total>'")
        first, last, total = map(int, m.groups())
        if not (first <= last < total) or total > MAX_FILE:
            raise BadRequest(400, f"Content-Range: need first <= last < total <= {MAX_FILE}, got {first}-{last}/{total}")
        if st.fail_rate and st.rng.random() < st.fail_rate:
            self._read_body(MAX_FILE)
            raise BadRequest(503, "injected failure (--fail-rate)")
        body = self._read_body(last - first + 1)
        if len(body) != last - first + 1:
            raise BadRequest(400, f"Content-Range says {last - first + 1} bytes, body has {len(body)}")
        with st.lock_for(f"{parts[2]}/{parts[3]}"):
            if final.exists() and final.suffix == ".ts":
                if first == 0 and final.stat().st_size == total:
                    return self._json(200, {"stored": total})
                raise BadRequest(409, f"{parts[3]}: segments are write-once and already stored")
            have = part.stat().st_size if part.exists() else 0
            if first == 0 and have:                 # a restarted upload (playlist/clip.json replaced)
                part.unlink()
                have = 0
            if first != have:
                hdr = {"Range": f"bytes=0-{have - 1}"} if have else {}
                raise BadRequest(409, f"Content-Range starts at {first} but {have} bytes are stored", hdr)
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "ab") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            have += len(body)
            if have < total:
                return self._send(308, b"", headers={"Range": f"bytes=0-{have - 1}"})
            data = part.read_bytes()
            try:
                if final.name.endswith(".ts"):
                    validate_segment(data)
                elif final.name == "playlist.m3u8":
                    validate_playlist(data.decode("utf-8", "replace"))
                elif validate_clip_json(data)["event_id"] != parts[2]:
                    raise BadRequest(400, f"clip.json: field 'event_id' must be {parts[2]!r} (the URL's event)")
            except BadRequest:
                part.unlink()
                raise
            os.replace(part, final)
            fsync_dir(final.parent)
            st.uploaded_at[f"{parts[2]}/{parts[3]}"] = time.time()
            self._json(201, {"stored": total})

    def _get(self, head: bool = False):
        u, parts = self._route()
        st = self.store
        if parts == ["v1", "health"]:
            return self._json(200, {"ok": True})
        who = self._who()
        readable: dict[str | None, bool] = {}

        def may_read(did):
            if did not in readable:
                readable[did] = st.may_read(who, did if isinstance(did, str) else None)
            return readable[did]

        if parts == ["v1", "push"]:
            since = _query_float(u.query, "since", 0.0, "push")
            items = []
            if st.push_log.exists():
                for ln in st.push_log.read_text().splitlines():
                    try:
                        rec = json.loads(ln)
                    except ValueError:
                        continue            # a torn last line after a crash
                    if rec.get("received_at", 0) >= since and may_read(rec.get("did")):
                        items.append(rec)
            return self._json(200, items)
        if parts == ["v1", "timeline"]:
            lo = _query_float(u.query, "start", 0.0, "timeline")
            hi = _query_float(u.query, "end", 1e12, "timeline")
            out = []
            for meta_path in sorted((st.state / "clips").glob("*/clip.json")):
                try:
                    meta = json.loads(meta_path.read_text())
                except (ValueError, OSError):
                    continue
                if not may_read(st.owner_of(meta_path.parent.name)):
                    continue
                if meta["start_wall_s"] < hi and meta["end_wall_s"] > lo:
                    meta["playlist"] = f"/v1/clips/{meta['event_id']}/playlist.m3u8"
                    meta["in_cloud"] = (meta_path.parent / "playlist.m3u8").exists()
                    meta["stored_at"] = st.uploaded_at.get(f"{meta['event_id']}/playlist.m3u8")
                    out.append(meta)
            out.sort(key=lambda m: m["start_wall_s"])
            return self._json(200, out)
        if len(parts) == 4 and parts[:2] == ["v1", "clips"]:
            final, part = st.paths(parts[2], parts[3])
            owner = st.owner_of(parts[2])
            if owner is None:
                raise BadRequest(404, f"{parts[2]}/{parts[3]}: not stored")
            if not may_read(owner):
                self._refuse(f"{who} may not read {parts[2]}/{parts[3]}")
            if final.exists():
                data = final.read_bytes()
                ctype = {".ts": "video/mp2t", ".m3u8": "application/vnd.apple.mpegurl"}.get(final.suffix,
                                                                                         "application/json")
                return self._send(200, data, ctype, head=head)
            if part.exists():
                have = part.stat().st_size
                return self._send(308, b"", headers={"Range": f"bytes=0-{have - 1}"} if have else {}, head=head)
            raise BadRequest(404, f"{parts[2]}/{parts[3]}: not stored")
        raise BadRequest(404, f"no such resource {u.path}")

    def _post(self):
        u, parts = self._route()
        if parts != ["v1", "push"]:
            raise BadRequest(404, f"no such resource {u.path}")
        who = self._who()
        if not self.store.may_write(who, None):
            self._refuse(f"{who} may not post pushes (only a bound camera does)")
        body = self._read_body(MAX_JSON)
        try:
            ev = json.loads(body)
        except ValueError as exc:
            raise BadRequest(400, f"push: body is not JSON ({exc})") from None
        if not isinstance(ev, dict) or not isinstance(ev.get("event_id"), str) or not EVENT_RE.match(ev["event_id"]):
            raise BadRequest(400, "push: field 'event_id' missing or not a plain name [A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
        ev["did"] = who.name                        # the sender, as authenticated (never the body's claim)
        ev["received_at"] = time.time()
        line = (json.dumps(ev) + "\n").encode()
        with self.store.lock:
            with open(self.store.push_log, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        self._json(202, {"received_at": ev["received_at"]})


def serve(port: int, state: Path, cert: Path, key: Path, *, accounts: Path, throttle_bps: float = 0.0,
          fail_rate: float = 0.0, seed: int = 0, ready=None) -> None:
    if not (cert.exists() and key.exists()):
        make_self_signed(cert, key)
    store = CloudStore(state, throttle_bps, fail_rate, seed, accounts=AccountStore(accounts))
    handler = type("BoundHandler", (Handler,), {"store": store})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    if ready is not None:
        ready(httpd.server_address[1])
    httpd.serve_forever(poll_interval=0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device_sim.services.cloud", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--cert", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--accounts", type=Path, required=True,
                    help="account service database (device_sim.net.accounts): API tokens, owners, shares")
    ap.add_argument("--throttle-bps", type=float, default=0.0, help="max request-body bytes/s (0 = unlimited)")
    ap.add_argument("--fail-rate", type=float, default=0.0, help="fraction of uploads answered 503")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not 0 <= a.fail_rate < 1 or a.throttle_bps < 0:
        print("cloud: --fail-rate must be in [0, 1) and --throttle-bps >= 0", file=sys.stderr)
        return 2
    serve(a.port, a.state, a.cert, a.key, accounts=a.accounts, throttle_bps=a.throttle_bps, fail_rate=a.fail_rate,
          seed=a.seed,
          ready=lambda p: print(p, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
