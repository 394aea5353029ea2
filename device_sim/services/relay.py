"""UDP relay for P2P sessions that ICE could not connect (symmetric NATs). Runs as its own process.

A minimal TURN-like service (RFC 8656 in spirit, not its wire format): each side BINDs (session id, role) with the
16-byte HMAC-SHA256 token the rendezvous issued (RFC 2104; secret in STATE/relay.secret, created 0600 at first
start); the relay learns each side's public address from the BIND and forwards DATA between the two. Payloads are
the end-to-end encrypted session records, so the relay sees only ciphertext. Idle bindings expire.

    python -m device_sim.services.relay --port 0 --state DIR [--host H]
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

from camlab.io_utils import atomic_write_bytes
from device_sim.net.packets import PacketError, RelayPacket, RelayType, parse_relay
from device_sim.services.rendezvous import relay_token

log = logging.getLogger("relay")
IDLE_S = 60.0


def load_secret(state: Path) -> bytes:
    path = state / "relay.secret"
    if not path.exists():
        atomic_write_bytes(path, secrets.token_bytes(32), mode=0o600)
    return path.read_bytes()


class Relay(asyncio.DatagramProtocol):
    def __init__(self, secret: bytes):
        self.secret = secret
        self.bindings: dict[bytes, list] = {}     # session -> [addr_app, addr_dev, last_seen]
        self.transport = None
        self.stats = {"forwarded": 0, "bad": 0, "refused": 0}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            pkt = parse_relay(data)
        except PacketError:
            self.stats["bad"] += 1
            return
        now = time.monotonic()
        b = self.bindings.get(pkt.session)
        if pkt.type is RelayType.BIND:
            if not hmac.compare_digest(pkt.body, relay_token(self.secret, pkt.session, pkt.role)):
                self.stats["refused"] += 1
                log.warning("bind refused: bad token from %s", addr)
                return
            if b is None:
                if len(self.bindings) > 10000:
                    self._expire(now)
                b = self.bindings[pkt.session] = [None, None, now]
            b[pkt.role] = addr
            b[2] = now
            self.transport.sendto(RelayPacket(RelayType.BIND_OK, pkt.role, pkt.session, b"").encode(), addr)
        elif pkt.type is RelayType.DATA:
            if b is None or b[pkt.role] != addr:
                self.stats["refused"] += 1
                return
            b[2] = now
            peer = b[1 - pkt.role]
            if peer is not None:
                self.transport.sendto(RelayPacket(RelayType.DATA, 1 - pkt.role, pkt.session, pkt.body).encode(),
                                      peer)
                self.stats["forwarded"] += 1

    def _expire(self, now: float) -> None:
        for s in [s for s, b in self.bindings.items() if now - b[2] > IDLE_S]:
            del self.bindings[s]


async def serve(host: str, port: int, secret: bytes) -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(lambda: Relay(secret), local_addr=(host, port))
    print(transport.get_extra_info("sockname")[1], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 10.0)
        except asyncio.TimeoutError:
            proto._expire(time.monotonic())
    transport.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device_sim.services.relay")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state", type=Path, required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="relay %(levelname)s %(message)s")
    try:
        a.state.mkdir(parents=True, exist_ok=True)
        secret = load_secret(a.state)
    except OSError as exc:
        print(f"error: --state {a.state}: expected a writable directory ({exc.strerror})", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(a.host, a.port, secret))
    except OSError as exc:
        print(f"error: --host {a.host} --port {a.port}: cannot bind ({exc.strerror})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
