"""Rendezvous/signalling server for the P2P stack, with a STUN Binding responder. Runs as its own process.

Devices keep a TCP registration signed with their factory Ed25519 key (the DID alone proves nothing); apps send an
offer for a DID, the server forwards it with a fresh relay allocation (session id + per-role HMAC-SHA256 tokens,
RFC 2104, that the relay checks) and returns the device's answer. UDP on the same port answers STUN Binding
requests with XOR-MAPPED-ADDRESS (RFC 5389 §7.3, §15.2) so ICE agents learn their server-reflexive address.

    python -m device_sim.services.rendezvous --port 0 --state DIR [--host H] [--accounts DB]
                                             [--relay HOST:PORT --relay-secret FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

from aioice import stun

from camlab.errors import CamlabError
from device_sim.net.accounts import AccountStore
from device_sim.net.identity import verify
from device_sim.net.p2p import register_message
from device_sim.net.packets import PacketError, encode_signal, parse_signal, parse_signal_length

log = logging.getLogger("rendezvous")


def relay_token(secret: bytes, session: bytes, role: int) -> bytes:
    return hmac.new(secret, session + bytes([role]), hashlib.sha256).digest()[:16]


class StunResponder(asyncio.DatagramProtocol):
    def __init__(self):
        self.transport = None
        self.answered = 0
        self.dropped = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            msg = stun.parse_message(data)
        except (ValueError, IndexError, KeyError, TypeError):
            self.dropped += 1
            return
        if msg.message_method != stun.Method.BINDING or msg.message_class != stun.Class.REQUEST:
            self.dropped += 1
            return
        resp = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                            transaction_id=msg.transaction_id)
        resp.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
        self.transport.sendto(bytes(resp), addr)
        self.answered += 1


class Rendezvous:
    def __init__(self, accounts: AccountStore | None, relay: tuple[str, int] | None, relay_secret: bytes | None):
        self.accounts, self.relay, self.relay_secret = accounts, relay, relay_secret
        self.devices: dict[str, asyncio.StreamWriter] = {}
        self.waiting: dict[str, asyncio.StreamWriter] = {}
        self.relays: dict[str, dict] = {}

    async def send(self, w: asyncio.StreamWriter, obj: dict) -> None:
        w.write(encode_signal(obj))
        await w.drain()

    def _allocate_relay(self) -> dict:
        session = secrets.token_bytes(16)
        if self.relay is None or self.relay_secret is None:
            return {"host": "0.0.0.0", "port": 9, "session": session.hex(), "token_app": "00" * 16,
                    "token_device": "00" * 16}
        return {"host": self.relay[0], "port": self.relay[1], "session": session.hex(),
                "token_app": relay_token(self.relay_secret, session, 0).hex(),
                "token_device": relay_token(self.relay_secret, session, 1).hex()}

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        did_here = None
        try:
            while True:
                n = parse_signal_length(await r.readexactly(4))
                msg = parse_signal(await r.readexactly(n))
                t = msg["type"]
                if t == "register":
                    did, ts, sig = msg.get("did"), msg.get("ts"), msg.get("sig", "")
                    if not isinstance(did, str) or not isinstance(ts, int) or abs(time.time() - ts) > 60:
                        await self.send(w, {"type": "error", "reason": "register: stale or malformed"})
                        continue
                    pub = self.accounts.device_public_key(did) if self.accounts else None
                    try:
                        ok = pub is not None and verify(pub, bytes.fromhex(sig), register_message(did, ts))
                    except ValueError:
                        ok = False
                    if not ok:
                        log.warning("register refused for %s: unknown device or bad signature", did)
                        await self.send(w, {"type": "error", "reason": "register: device not authenticated"})
                        continue
                    self.devices[did] = w
                    did_here = did
                    await self.send(w, {"type": "registered", "did": did})
                elif t == "connect":
                    did = msg.get("did")
                    dev = self.devices.get(did)
                    if dev is None or "offer" not in msg:
                        await self.send(w, {"type": "error", "reason": f"device {did} is offline"})
                        continue
                    conn_id = secrets.token_hex(8)
                    relay = self._allocate_relay()
                    self.waiting[conn_id] = w
                    self.relays[conn_id] = relay
                    fwd = {"type": "offer", "conn_id": conn_id, "account": msg.get("account", ""),
                           "offer": msg["offer"], "relay": relay,
                           "deadline_ms": msg.get("deadline_ms", 1000), "force_relay": bool(msg.get("force_relay"))}
                    await self.send(dev, fwd)
                elif t == "answer":
                    app = self.waiting.pop(msg.get("conn_id", ""), None)
                    relay = self.relays.pop(msg.get("conn_id", ""), None)
                    if app is None or "answer" not in msg or did_here is None:
                        continue
                    await self.send(app, {"type": "answer", "conn_id": msg["conn_id"], "did": did_here,
                                          "answer": msg["answer"], "relay": relay})
                elif t == "ping":
                    await self.send(w, {"type": "pong"})
        except PacketError as exc:
            log.warning("dropping client: %s", exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if did_here is not None and self.devices.get(did_here) is w:
                del self.devices[did_here]
            w.close()


async def serve(host: str, port: int, rdv: Rendezvous) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(20):
        server = await asyncio.start_server(rdv.handle, host, port)
        bound = server.sockets[0].getsockname()[1]
        try:
            await loop.create_datagram_endpoint(StunResponder, local_addr=(host, bound))
            break
        except OSError:
            server.close()
            if port:
                raise
    else:
        raise OSError("could not bind TCP and UDP on the same port")
    print(bound, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device_sim.services.rendezvous")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--accounts", type=Path, help="the cloud account DB (device public keys); default STATE/accounts.db")
    ap.add_argument("--relay", help="HOST:PORT of the relay to hand out")
    ap.add_argument("--relay-secret", type=Path)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="rendezvous %(levelname)s %(message)s")
    try:
        a.state.mkdir(parents=True, exist_ok=True)
        accounts = AccountStore(a.accounts or a.state / "accounts.db")
        relay = secret = None
        if a.relay:
            host, _, port = a.relay.rpartition(":")
            if not host or not port.isdigit():
                raise CamlabError(f"--relay {a.relay!r}: expected HOST:PORT")
            relay = (host, int(port))
            if a.relay_secret is None or not a.relay_secret.is_file():
                raise CamlabError(f"--relay-secret {a.relay_secret}: the relay's secret file is required")
            secret = a.relay_secret.read_bytes()
        asyncio.run(serve(a.host, a.port, Rendezvous(accounts, relay, secret)))
    except CamlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: --state {a.state} / --host {a.host} --port {a.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
