"""Command-line device and app agents for the NAT lab and the network benchmark.

``python -m device_sim.net.agent device --device-dir D --accounts DB --rendezvous H:P`` runs a camera's P2P
service (prints 1 when registered, stops on SIGTERM); ``python -m device_sim.net.agent app --app-key F --accounts DB
--did DID --rendezvous H:P --count N`` connects N times (connect, authenticated ping, live-view frame, close) and
prints one JSON line with the per-connection times and paths.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

from camlab.errors import CamlabError
from device_sim.media.packets import EncodedPacket

from . import p2p
from .accounts import AccountStore
from .identity import AppIdentity, DeviceIdentity


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise CamlabError(f"address {s!r}: expected HOST:PORT")
    return host, int(port)


async def run_device(a) -> int:
    ident = DeviceIdentity.load(a.device_dir)
    store = AccountStore(a.accounts)
    agent = p2p.DeviceAgent(ident, store, _addr(a.rendezvous), a.device_dir)
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.registered.wait(), 10)
    print(1, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def frames():
        i = 0
        while True:                      # a keyframe every 200 ms so a new viewer sees a picture quickly
            agent.hub.publish(EncodedPacket("main", i * 0.2, b"\x00\x00\x01" + bytes(2000), keyframe=True))
            i += 1
            await asyncio.sleep(0.2)

    ftask = asyncio.create_task(frames())
    await stop.wait()
    ftask.cancel()
    await agent.close()
    task.cancel()
    return 0


async def run_app(a) -> dict:
    app = AppIdentity.load(a.app_key)
    store = AccountStore(a.accounts)
    pub = store.device_public_key(a.did)
    if pub is None:
        raise CamlabError(f"--did {a.did}: not in the account service")
    out = {"connect_ms": [], "paths": [], "errors": [], "first_frame_ms": [], "timings": []}
    for _ in range(a.count):
        t0 = time.perf_counter()
        try:
            r = await p2p.connect(app, a.did, pub, _addr(a.rendezvous), ice_deadline_s=a.deadline)
            await r.session.request("ping")
            out["connect_ms"].append(round(r.connect_ms, 1))
            out["paths"].append(r.path)
            out["timings"].append({k: round(v, 1) for k, v in r.timings.items()})
            await r.session.request("live_start")
            await r.session.recv_media(timeout=3.0)
            out["first_frame_ms"].append(round((time.perf_counter() - t0) * 1e3, 1))
            await r.session.close()
        except (ConnectionError, TimeoutError, asyncio.TimeoutError, CamlabError) as exc:
            out["errors"].append(f"{exc.__class__.__name__}: {exc}")
        await asyncio.sleep(0.05)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device_sim.net.agent")
    sub = ap.add_subparsers(dest="role", required=True)
    d = sub.add_parser("device")
    d.add_argument("--device-dir", type=Path, required=True)
    d.add_argument("--accounts", type=Path, required=True)
    d.add_argument("--rendezvous", required=True)
    p = sub.add_parser("app")
    p.add_argument("--app-key", type=Path, required=True)
    p.add_argument("--accounts", type=Path, required=True)
    p.add_argument("--did", required=True)
    p.add_argument("--rendezvous", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--deadline", type=float, default=1.0, help="ICE deadline before the relay fallback (s)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format=f"{a.role} %(levelname)s %(name)s %(message)s")
    try:
        if a.role == "device":
            return asyncio.run(run_device(a))
        print(json.dumps(asyncio.run(run_app(a))), flush=True)
        return 0
    except CamlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
