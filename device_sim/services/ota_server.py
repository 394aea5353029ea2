"""OTA update service: serves a signed TUF-style repository over HTTPS with Range requests. Runs as its own process.

``python -m device_sim.services.ota_server --port 0 --state DIR`` prints ``PORT <n>`` once listening. DIR holds the
repository (device_sim.ota.repository layout) and ``tls/`` (a self-signed certificate made on first start).
Endpoints: ``GET /metadata/<file>``, ``GET /targets/<name>`` (RFC 9110 Range: ``bytes=N-``), ``GET /notify?version=V``
(long poll: answers when the timestamp version exceeds V, or after 20 s). Only metadata/ and targets/ are served;
the TUF signing keys are kept outside DIR (device_sim.ota.repository: an offline and an online keys folder).
"""
from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from device_sim.services.tls import ensure_certificate

SERVED = ("metadata", "targets")


def make_handler(state: Path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr
            sys.stderr.write("ota_server: " + fmt % args + "\n")

        def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server API)
            url = urlparse(self.path)
            parts = [p for p in url.path.split("/") if p]
            if parts == ["notify"]:
                return self._notify(parse_qs(url.query))
            if len(parts) != 2 or parts[0] not in SERVED or parts[1].startswith(".") or "\\" in parts[1]:
                return self._send(404, b"not found\n")
            path = state / parts[0] / parts[1]
            if not path.is_file():
                return self._send(404, b"not found\n")
            data = path.read_bytes()
            rng = self.headers.get("Range")
            if rng:
                if not rng.startswith("bytes=") or not rng[6:].rstrip("-").isdigit() or not rng.endswith("-"):
                    return self._send(400, b"only 'bytes=N-' ranges are supported\n")
                start = int(rng[6:-1])
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return self._send(206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                                                      "Accept-Ranges": "bytes"})
            self._send(200, data, {"Accept-Ranges": "bytes"})

        def _notify(self, query: dict) -> None:
            try:
                have = int(query.get("version", ["0"])[0])
            except ValueError:
                return self._send(400, b"version must be an integer\n")
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline:
                try:
                    ts = json.loads((state / "metadata" / "timestamp.json").read_bytes())["signed"]["version"]
                except (OSError, ValueError, KeyError):
                    ts = 0
                if ts > have:
                    break
                time.sleep(0.1)
            self._send(200, json.dumps({"timestamp_version": ts}).encode(), {"Content-Type": "application/json"})

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state", type=Path, required=True, help="repository directory")
    args = ap.parse_args(argv)
    if not (args.state / "metadata" / "root.json").is_file():
        print(f"ota_server: error: {args.state} holds no repository (metadata/root.json missing)", file=sys.stderr)
        return 2
    cert, key = ensure_certificate(args.state / "tls", "camlab-ota")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.state))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
