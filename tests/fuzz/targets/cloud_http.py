"""The cloud clip store's HTTP handlers, in-process: the fuzzed bytes are what a client writes on the connection
(request line, headers, body; several keep-alive requests in one input), fed to ``cloud.Handler`` through an
in-memory stream instead of a socket. ``@DEV@``, ``@USR@`` and ``@OTH@`` in the input are replaced by a bound
camera's, its owner's and another tenant's camera's API tokens, so the fuzzer reaches past authentication.

A crash: an exception out of the handler (the threading server would drop the connection with a traceback) or a
500 answer. 4xx answers, and the standard library's 501/505 for unknown methods and HTTP versions, are rejections."""
from __future__ import annotations

import re

INSTRUMENT = ("device_sim.services.cloud",)
STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ", re.M)


class ServerError(Exception):
    """The handler answered 500 (an unhandled server-side failure)."""


def setup():
    import atexit
    import io
    import shutil
    import tempfile
    from pathlib import Path

    from device_sim.net.accounts import AccountStore
    from device_sim.services import cloud

    tmp = Path(tempfile.mkdtemp(prefix="camlab-fuzz-cloud-"))
    atexit.register(shutil.rmtree, tmp, True)
    mine = cloud.enroll_tenant(tmp / "accounts.db", "alice", tmp / "dev-a")
    other = cloud.enroll_tenant(tmp / "accounts.db", "bob", tmp / "dev-b")
    subst = {b"@DEV@": mine["device_token"].encode(), b"@USR@": mine["user_token"].encode(),
             b"@OTH@": other["device_token"].encode()}
    store = cloud.CloudStore(tmp / "state", accounts=AccountStore(tmp / "accounts.db"))

    class InMemory(cloud.Handler):
        def setup(self):
            self.connection = None
            self.rfile, self.wfile = io.BytesIO(self.request), io.BytesIO()

        def finish(self):
            self.answer = self.wfile.getvalue()

    InMemory.store = store

    def one(data: bytes) -> None:
        for k, v in subst.items():
            data = data.replace(k, v)
        h = InMemory(data, ("203.0.113.9", 40000), None)
        for status in STATUS_RE.findall(h.answer):
            if int(status) == 500:
                raise ServerError(f"answered {status.decode()}: {h.answer[:300]!r}")
    return one, ()


def seeds() -> dict[str, bytes]:
    import json

    def req(method: str, path: str, token: str | None = "@DEV@", body: bytes = b"", extra: str = "") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: cloud\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body or method in ("PUT", "POST"):
            head += f"Content-Length: {len(body)}\r\n"
        return (head + extra + "\r\n").encode() + body

    clip = json.dumps({"event_id": "evt-1", "start_wall_s": 1.0, "end_wall_s": 9.0, "key_uri": "camlab-key://00",
                       "complete": True}).encode()
    pl = (b'#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="camlab-key://0123456789abcdef",IV=0x'
          + b"00" * 16 + b"\n#EXTINF:10.0,\nseg00000.ts\n#EXT-X-ENDLIST\n")
    seg = bytes(range(32))
    put = lambda name, body, rng=None: req("PUT", f"/v1/clips/evt-1/{name}", body=body,  # noqa: E731
                                           extra=f"Content-Range: bytes {rng or f'0-{len(body) - 1}/{len(body)}'}\r\n")
    return {
        "health": req("GET", "/v1/health", None),
        "upload": put("seg00000.ts", seg) + put("playlist.m3u8", pl) + put("clip.json", clip),
        "resumable": put("seg00001.ts", seg[:16], f"0-15/{len(seg)}") + req("HEAD", "/v1/clips/evt-1/seg00001.ts")
        + put("seg00001.ts", seg[16:], f"16-31/{len(seg)}"),
        "read": req("GET", "/v1/clips/evt-1/clip.json", "@USR@") + req("GET", "/v1/timeline?start=0&end=1e10", "@USR@"),
        "push": req("POST", "/v1/push", body=b'{"event_id": "evt-1", "kind": "person"}')
        + req("GET", "/v1/push?since=0", "@USR@"),
        "foreign": req("PUT", "/v1/clips/evt-1/clip.json", "@OTH@", clip,
                       f"Content-Range: bytes 0-{len(clip) - 1}/{len(clip)}\r\n"),
        "no-token": req("GET", "/v1/timeline", None),
        "bad-query": req("GET", "/v1/push?since=abc", "@USR@"),
        "traversal": req("GET", "/v1/clips/../clip.json", "@USR@"),
        "garbage": b"GET /\x00 HTTP/9.9\r\n\r\n",
    }
