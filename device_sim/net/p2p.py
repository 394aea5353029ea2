"""P2P connection set-up in the style of the MISS/TUTK camera SDKs: rendezvous signalling, ICE, relay fallback.

The device keeps a signed registration open at the rendezvous server; the app sends an offer (ICE ufrag/pwd and
host + server-reflexive candidates, RFC 8445 §5.1.1), the rendezvous forwards it with a relay allocation, the
device answers and both run ICE connectivity checks (aioice). If no pair is nominated by ``ice_deadline_s`` both
sides abandon ICE and open a *separate* relay-only path (our UDP relay, ``device_sim.services.relay``); relay
candidates are never mixed into the ICE run. The rendezvous also answers STUN Binding requests (RFC 5389 §7) on the
same port number (UDP) so aioice can learn server-reflexive addresses.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import aioice
import aioice.ice
import aioice.stun
from aioice import Candidate

from .accounts import AccountStore
from .endpoint import AccessLog, AppSession, DeviceEndpoint, LiveHub, accept_session, open_session
from .identity import AppIdentity, DeviceIdentity
from .packets import (PacketError, RelayPacket, RelayType, encode_signal, parse_relay, parse_signal,
                      parse_signal_length)
from .session import DeviceHandshake

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------- host addresses for ICE
# aioice gathers host candidates from every interface except 127.0.0.1. The loopback variant of the tests needs
# exactly 127.0.0.1, so the gatherer consults a context variable (set around gather_candidates) first.
_HOST_ADDRESSES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("camlab_ice_hosts", default=None)
_aioice_hosts = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    forced = _HOST_ADDRESSES.get()
    if forced is not None:
        return list(forced)
    return [a for a in _aioice_hosts(use_ipv4, use_ipv6) if ":" not in a]   # IPv4 only: NAT tests are IPv4


aioice.ice.get_host_addresses = _host_addresses

# Connectivity-check retransmission (RFC 8445 §14.3 gives RTO >= 500 ms as the default for pacing towards
# unknown networks). Behind port-restricted cones the first check from one side is always dropped by the other
# side's NAT, so the pair only succeeds at the first retransmission: with 500 ms that alone is half the 1 s
# connect budget. We start at 100 ms (still doubling, 7 tries) — a few extra small packets per connect.
ICE_CHECK_RTO_S = 0.1
HANDSHAKE_ON_PATH_S = 1.5     # no handshake over the nominated pair by then: one side lost ICE, go to the relay
RELAY_BIND_S = 2.0            # the longest a side waits for the relay to accept its binding
RELAY_HANDSHAKE_S = 3.0       # the app's handshake allowance at the relay once the camera can be there


def camera_at_relay_by(answered_at: float, ice_deadline_s: float) -> float:
    """Latest loop time the camera can reach the relay after answering an offer at ``answered_at``: its own ICE
    deadline, then its wait for a handshake on a pair only it nominated, then its relay binding. The app's waits
    are measured against this, not against its own clock alone: on a loaded camera ICE finishes late, and an app
    that left each path on a fixed timer could leave the relay before the camera got there."""
    return answered_at + ice_deadline_s + HANDSHAKE_ON_PATH_S + RELAY_BIND_S
aioice.stun.RETRY_RTO = ICE_CHECK_RTO_S


def register_message(did: str, ts: int) -> bytes:
    return f"camlab-register-v1|{did}|{ts}".encode()


# --------------------------------------------------------------------------------- transports
class IceTransport:
    """The nominated ICE pair."""

    def __init__(self, conn: aioice.Connection):
        self.conn = conn

    async def send(self, data: bytes) -> None:
        await self.conn.send(data)

    async def recv(self) -> bytes:
        return await self.conn.recv()

    async def close(self) -> None:
        await self.conn.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=4096)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if self.queue.full():
            self.queue.get_nowait()                   # receive buffer overflow: drop the oldest
        self.queue.put_nowait((data, addr))

    def connection_lost(self, exc):
        self.queue.put_nowait((None, None))


class UdpTransport:
    """A plain UDP socket towards one peer address (loopback tests and in-process fixtures)."""

    def __init__(self, proto: _Datagrams, peer: tuple[str, int]):
        self.proto, self.peer = proto, peer

    @classmethod
    async def open(cls, local: tuple[str, int], peer: tuple[str, int] | None = None) -> "UdpTransport":
        _, proto = await asyncio.get_running_loop().create_datagram_endpoint(_Datagrams, local_addr=local)
        return cls(proto, peer)

    @property
    def local(self) -> tuple[str, int]:
        return self.proto.transport.get_extra_info("sockname")[:2]

    async def send(self, data: bytes) -> None:
        self.proto.transport.sendto(data, self.peer)

    async def recv(self) -> bytes:
        while True:
            data, addr = await self.proto.queue.get()
            if data is None:
                self.proto.queue.put_nowait((None, None))
                raise ConnectionError("socket closed")
            if self.peer is None:
                self.peer = addr
            if addr == self.peer:
                return data

    async def close(self) -> None:
        self.proto.transport.close()


class RelayTransport:
    """Our relay protocol: BIND with an HMAC token from the rendezvous, then DATA in both directions."""

    def __init__(self, proto: _Datagrams, relay: tuple[str, int], session: bytes, role: int, token: bytes):
        self.proto, self.relay, self.session, self.role, self.token = proto, relay, session, role, token
        self._keepalive: asyncio.Task | None = None

    @classmethod
    async def bind(cls, params: dict, role: int, timeout: float = RELAY_BIND_S) -> "RelayTransport":
        relay = (params["host"], params["port"])
        token = bytes.fromhex(params["token_device" if role else "token_app"])
        _, proto = await asyncio.get_running_loop().create_datagram_endpoint(_Datagrams, local_addr=("0.0.0.0", 0))
        self = cls(proto, relay, bytes.fromhex(params["session"]), role, token)
        bind = RelayPacket(RelayType.BIND, role, self.session, token).encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            proto.transport.sendto(bind, relay)
            try:
                data, addr = await asyncio.wait_for(proto.queue.get(), min(0.2, deadline - loop.time()))
            except asyncio.TimeoutError:
                continue
            try:
                pkt = parse_relay(data) if data is not None else None
            except PacketError:
                continue
            if pkt is not None and pkt.type is RelayType.BIND_OK and pkt.session == self.session:
                self._keepalive = asyncio.create_task(self._refresh(bind))
                return self
        proto.transport.close()
        raise TimeoutError(f"relay {relay[0]}:{relay[1]} did not accept the binding within {timeout:.1f} s")

    async def _refresh(self, bind: bytes) -> None:
        while True:
            await asyncio.sleep(5.0)
            self.proto.transport.sendto(bind, self.relay)

    async def send(self, data: bytes) -> None:
        self.proto.transport.sendto(RelayPacket(RelayType.DATA, self.role, self.session, data).encode(), self.relay)

    async def recv(self) -> bytes:
        while True:
            data, addr = await self.proto.queue.get()
            if data is None:
                self.proto.queue.put_nowait((None, None))
                raise ConnectionError("relay socket closed")
            if addr[:2] != self.relay:
                continue
            try:
                pkt = parse_relay(data)
            except PacketError:
                continue
            if pkt.type is RelayType.DATA and pkt.session == self.session:
                return pkt.body

    async def close(self) -> None:
        if self._keepalive:
            self._keepalive.cancel()
        self.proto.transport.close()


# --------------------------------------------------------------------------------- signalling
class SignalClient:
    """Length-prefixed JSON over TCP to the rendezvous server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, addr: tuple[str, int], timeout: float = 3.0) -> "SignalClient":
        r, w = await asyncio.wait_for(asyncio.open_connection(*addr), timeout)
        return cls(r, w)

    async def send(self, obj: dict) -> None:
        self.writer.write(encode_signal(obj))
        await self.writer.drain()

    async def recv(self) -> dict:
        n = parse_signal_length(await self.reader.readexactly(4))
        return parse_signal(await self.reader.readexactly(n))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def _ice_params(conn: aioice.Connection) -> dict:
    return {"ufrag": conn.local_username, "pwd": conn.local_password,
            "candidates": [c.to_sdp() for c in conn.local_candidates]}


async def _apply_remote(conn: aioice.Connection, params: dict) -> None:
    conn.remote_username, conn.remote_password = params["ufrag"], params["pwd"]
    for sdp in params["candidates"]:
        try:
            cand = Candidate.from_sdp(sdp)
        except (ValueError, IndexError) as exc:
            raise PacketError(f"ICE candidate {sdp[:60]!r}: {exc}") from exc
        if cand.type == "relay":
            continue                       # relay paths belong to the fallback session only
        await conn.add_remote_candidate(cand)
    await conn.add_remote_candidate(None)


async def _new_ice(controlling: bool, stun: tuple[str, int], hosts: list[str] | None) -> aioice.Connection:
    conn = aioice.Connection(ice_controlling=controlling, components=1, stun_server=stun, use_ipv6=False)
    token = _HOST_ADDRESSES.set(hosts)
    try:
        await conn.gather_candidates()
    finally:
        _HOST_ADDRESSES.reset(token)
    return conn


async def _ice_or_relay(conn: aioice.Connection, relay: dict, role: int, deadline_s: float,
                        force_relay: bool) -> tuple[object, str]:
    if not force_relay:
        try:
            await asyncio.wait_for(conn.connect(), deadline_s)
            return IceTransport(conn), "direct"
        except (asyncio.TimeoutError, ConnectionError) as exc:
            log.info("ICE gave no path within %.1f s (%s); relay fallback", deadline_s, exc.__class__.__name__)
    await conn.close()
    return await RelayTransport.bind(relay, role), "relay"


@dataclass
class ConnectResult:
    session: AppSession
    path: str                # "direct" or "relay"
    connect_ms: float        # from the request until the authenticated session is up
    ice_ms: float = 0.0
    timings: dict = field(default_factory=dict)


async def connect(app: AppIdentity, did: str, device_pub: bytes, rendezvous: tuple[str, int], *,
                  ice_deadline_s: float = 1.0, hosts: list[str] | None = None, force_relay: bool = False,
                  rate_bps: float = 40e6) -> ConnectResult:
    """App side: query the rendezvous for ``did``, ICE, relay fallback, then the authenticated handshake."""
    t0 = time.perf_counter()
    sig = await SignalClient.connect(rendezvous)
    try:
        conn = await _new_ice(True, rendezvous, hosts)
        t_gather = time.perf_counter()
        await sig.send({"type": "connect", "did": did, "account": app.account, "offer": _ice_params(conn),
                        "deadline_ms": int(ice_deadline_s * 1000), "force_relay": force_relay})
        msg = await asyncio.wait_for(sig.recv(), 5.0)
    finally:
        await sig.close()
    if msg["type"] == "error":
        raise ConnectionError(f"rendezvous: {msg.get('reason')}")
    if msg["type"] != "answer" or "answer" not in msg or "relay" not in msg:
        raise PacketError(f"rendezvous: expected an answer with a relay allocation, got {msg['type']!r}")
    t_answer = time.perf_counter()
    loop = asyncio.get_running_loop()
    camera_by = camera_at_relay_by(loop.time(), ice_deadline_s)
    await _apply_remote(conn, msg["answer"])
    transport, path = await _ice_or_relay(conn, msg["relay"], 0, ice_deadline_s, force_relay)
    t_path = time.perf_counter()

    def relay_wait() -> float:
        return max(RELAY_HANDSHAKE_S, camera_by - loop.time() + RELAY_HANDSHAKE_S)

    try:
        # on the direct path, wait until the camera's ICE deadline has passed and it has had its handshake window
        direct_wait = max(HANDSHAKE_ON_PATH_S, camera_by - RELAY_BIND_S - loop.time())
        session = await open_session(transport, app, did, device_pub, rate_bps=rate_bps,
                                     timeout=direct_wait if path == "direct" else relay_wait())
    except TimeoutError:
        if path != "direct":
            raise
        # ICE nominated a pair on our side only (the camera gave up on ICE at its deadline): use the relay
        log.info("no handshake over the direct path; relay fallback")
        await transport.close()
        transport, path = await RelayTransport.bind(msg["relay"], 0, timeout=RELAY_BIND_S), "relay"
        session = await open_session(transport, app, did, device_pub, rate_bps=rate_bps, timeout=relay_wait())
    t1 = time.perf_counter()
    return ConnectResult(session, path, (t1 - t0) * 1e3, (t_path - t_answer) * 1e3,
                         {"gather_ms": (t_gather - t0) * 1e3, "signal_ms": (t_answer - t_gather) * 1e3,
                          "path_ms": (t_path - t_answer) * 1e3, "handshake_ms": (t1 - t_path) * 1e3})


class DeviceAgent:
    """The camera's P2P service: registration, offers, ICE/relay, authenticated sessions, endpoints."""

    def __init__(self, ident: DeviceIdentity, accounts: AccountStore, rendezvous: tuple[str, int], state_dir: Path,
                 *, hub: LiveHub | None = None, spec=None, files_dir: Path | None = None,
                 on_talk: Callable | None = None, hosts: list[str] | None = None, rate_bps: float = 40e6):
        self.ident, self.accounts, self.rendezvous = ident, accounts, rendezvous
        self.hub = hub or LiveHub(on_watching=spec.set_watching if spec is not None else None)
        self.spec, self.files_dir, self.on_talk, self.hosts, self.rate_bps = spec, files_dir, on_talk, hosts, rate_bps
        self.access_log = AccessLog(Path(state_dir) / "access_log.jsonl")
        self.handshake = DeviceHandshake(ident, accounts)
        self.endpoints: list[DeviceEndpoint] = []
        self.paths: list[str] = []
        self.registered = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._sig: SignalClient | None = None
        self._closing = False

    async def run(self) -> None:
        """Stay registered; reconnect to the rendezvous with backoff if it goes away."""
        backoff = 0.2
        while True:
            try:
                self._sig = await SignalClient.connect(self.rendezvous)
                ts = int(time.time())
                await self._sig.send({"type": "register", "did": self.ident.did, "ts": ts,
                                      "sig": self.ident.sign(register_message(self.ident.did, ts)).hex()})
                msg = await self._sig.recv()
                if msg["type"] != "registered":
                    raise ConnectionError(f"registration refused: {msg.get('reason')}")
                self.registered.set()
                backoff = 0.2
                while True:
                    msg = await self._sig.recv()
                    if msg["type"] == "offer":
                        t = asyncio.create_task(self._on_offer(msg))
                        self._tasks.add(t)
                        t.add_done_callback(self._tasks.discard)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, PacketError) as exc:
                self.registered.clear()
                if self._closing:
                    return
                log.warning("rendezvous link: %s; retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _on_offer(self, msg: dict) -> None:
        conn_id = msg.get("conn_id", "")
        try:
            conn = await _new_ice(False, self.rendezvous, self.hosts)
            await self._sig.send({"type": "answer", "conn_id": conn_id, "answer": _ice_params(conn)})
            await _apply_remote(conn, msg["offer"])
            deadline = min(max(msg.get("deadline_ms", 1000), 100), 10000) / 1000
            transport, path = await _ice_or_relay(conn, msg["relay"], 1, deadline, bool(msg.get("force_relay")))
            try:
                mux = await accept_session(transport, self.handshake, rate_bps=self.rate_bps,
                                           timeout=HANDSHAKE_ON_PATH_S if path == "direct" else 5.0)
            except TimeoutError:
                if path != "direct":
                    raise
                await transport.close()              # the app gave up on ICE: meet it at the relay
                transport, path = await RelayTransport.bind(msg["relay"], 1), "relay"
                mux = await accept_session(transport, self.handshake, rate_bps=self.rate_bps)
        except (TimeoutError, ConnectionError, PacketError, OSError, KeyError, TypeError) as exc:
            log.warning("offer %s failed: %s", conn_id, exc)
            return
        self.paths.append(path)
        ep = DeviceEndpoint(mux, self.ident.did, self.accounts, self.hub, self.access_log, spec=self.spec,
                            files_dir=self.files_dir, on_talk=self.on_talk, peer=path)
        self.endpoints.append(ep)
        await ep.run()

    async def close(self) -> None:
        self._closing = True
        for t in list(self._tasks):
            t.cancel()
        for ep in self.endpoints:
            await ep.mux.close()
        if self._sig:
            await self._sig.close()


def new_conn_id() -> str:
    return secrets.token_hex(8)
