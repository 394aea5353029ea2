"""The two ends of a P2P session: the camera's request handler and the app's client.

The camera side checks authorisation against the account service on every command, on every talk-back audio unit
and at every video keyframe (a revocation stops the stream within one GOP), writes each live-view/talk session to
an append-only access log (fsync per line) and keeps the SPEC "someone is watching" property current. File
download is resumable: the app asks for ``offset`` = the size of its partial file and verifies SHA-256 at the end.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

from device_sim.media.packets import EncodedPacket

from .accounts import AccountStore
from .channels import Mux, Transport
from .identity import AppIdentity
from .packets import (FILE_CHUNK, Channel, FileChunk, MediaUnit, PacketError, RecordType, encode_json,
                      parse_command, parse_file_chunk, parse_media, parse_record)
from .session import ClientHandshake, DeviceHandshake, HandshakeError, SecureSession

log = logging.getLogger(__name__)

OP_PERMISSION = {"ping": None, "live_start": "view", "live_stop": None, "talk_start": "talk", "talk_stop": None,
                 "spec_get": "view", "spec_set": "control", "spec_action": "control", "file_list": "files",
                 "file_get": "files"}


class AccessLog:
    """Append-only JSON lines, one fsync per line (who watched/talked, when, from where)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, durable: bool = True, **entry) -> None:
        """Append one entry; ``durable`` entries (session start/stop) are fsynced before returning, refusals are
        left to the page cache so a flood of bad requests cannot turn into a flood of disk flushes."""
        line = json.dumps({"ts": round(time.time(), 3), **entry}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue                  # a torn last line after a power cut
        return out


class LiveHub:
    """Fan-out of the encoder's packets to the sessions that are watching; counts viewers for the SPEC property."""

    def __init__(self, on_watching: Callable[[int], None] | None = None):
        self.endpoints: set["DeviceEndpoint"] = set()
        self.on_watching = on_watching

    def publish(self, pkt: EncodedPacket) -> None:
        for ep in list(self.endpoints):
            ep.push_media(pkt)

    def alert(self, obj: dict) -> None:
        for ep in list(self.endpoints):
            ep.push_alert(obj)

    def changed(self) -> None:
        if self.on_watching is not None:
            self.on_watching(sum(1 for ep in self.endpoints if ep.live or ep.talk))


class DeviceEndpoint:
    """Serves one authenticated session on the camera."""

    _ids = itertools.count(1)

    def __init__(self, mux: Mux, did: str, accounts: AccountStore, hub: LiveHub, access_log: AccessLog, *,
                 spec=None, files_dir: Path | None = None, on_talk: Callable[[str, MediaUnit], None] | None = None,
                 peer: str = ""):
        self.mux, self.did, self.accounts, self.hub, self.log = mux, did, accounts, hub, access_log
        self.account = mux.session.account
        self.spec, self.files_dir, self.on_talk, self.peer = spec, files_dir, on_talk, peer
        self.live: str | None = None
        self.talk = False
        self.counters = {"requests": 0, "denied": 0, "reads": 0, "talk_units": 0, "talk_rejected": 0}
        self.sid = f"{mux.session.session_id:016x}"
        self._transfers = itertools.count(1)
        self._tasks: list[asyncio.Task] = []

    def _allowed(self, perm: str) -> bool:
        return self.accounts.authorise(self.account, self.did, perm)       # fresh query every time

    async def run(self) -> None:
        self.hub.endpoints.add(self)
        self._tasks = [asyncio.create_task(self._talk_loop())]
        try:
            while True:
                try:
                    raw = await self.mux.recv(Channel.COMMAND)
                except ConnectionError:
                    break
                await self._handle(raw)
        finally:
            self._stop_live("session closed")
            self._stop_talk("session closed")
            self.hub.endpoints.discard(self)
            for t in self._tasks:
                t.cancel()

    async def _reply(self, rid: int, ok: bool, result=None, error: str | None = None) -> None:
        msg = {"id": rid, "ok": ok}
        if ok:
            msg["result"] = result if result is not None else {}
        else:
            msg["error"] = error
        try:
            await self.mux.send_reliable(Channel.COMMAND, encode_json(msg))
        except ConnectionError:
            pass

    async def _handle(self, raw: bytes) -> None:
        self.counters["requests"] += 1
        try:
            req = parse_command(raw)
            if "op" not in req:
                raise PacketError("command: a response sent to the camera")
        except PacketError as exc:
            log.warning("session %s: bad command: %s", self.sid, exc)
            return
        rid, op, args = req["id"], req["op"], req["args"]
        if op not in OP_PERMISSION:
            log.warning("session %s: unknown op %r", self.sid, op)
            return await self._reply(rid, False, error=f"unknown op {op!r}")
        perm = OP_PERMISSION[op]
        if perm is not None and not self._allowed(perm):
            self.counters["denied"] += 1
            self.log.write(durable=False, event="denied", op=op, account=self.account, did=self.did, session=self.sid,
                           peer=self.peer)
            log.warning("session %s: %s may not %s on %s", self.sid, self.account, op, self.did)
            return await self._reply(rid, False, error=f"not authorised: {op} needs '{perm}'")
        try:
            result = await getattr(self, f"_op_{op}")(args)
        except (PacketError, ValueError, KeyError, TypeError) as exc:
            log.warning("session %s: %s failed: %s", self.sid, op, exc)
            return await self._reply(rid, False, error=f"{op}: {exc}")
        await self._reply(rid, True, result)

    # ------------------------------------------------------------------ ops
    async def _op_ping(self, args):
        return {"did": self.did}

    async def _op_live_start(self, args):
        stream = args.get("stream", "main")
        if stream not in ("main", "sub"):
            raise ValueError(f"stream {stream!r}: expected 'main' or 'sub'")
        if self.live is None:
            self.log.write(event="live_start", account=self.account, did=self.did, session=self.sid,
                           stream=stream, peer=self.peer)
        self.live = stream
        self.counters["reads"] += 1
        self.hub.changed()
        return {"stream": stream}

    async def _op_live_stop(self, args):
        self._stop_live("stopped by app")
        return {}

    async def _op_talk_start(self, args):
        if not self.talk:
            self.log.write(event="talk_start", account=self.account, did=self.did, session=self.sid, peer=self.peer)
        self.talk = True
        self.hub.changed()
        return {}

    async def _op_talk_stop(self, args):
        self._stop_talk("stopped by app")
        return {}

    async def _op_spec_get(self, args):
        if self.spec is None:
            raise ValueError("no SPEC service on this device")
        self.counters["reads"] += 1
        return {"results": self.spec.get_properties(args.get("params", []))}

    async def _op_spec_set(self, args):
        if self.spec is None:
            raise ValueError("no SPEC service on this device")
        return {"results": self.spec.set_properties(args.get("params", []))}

    async def _op_spec_action(self, args):
        if self.spec is None:
            raise ValueError("no SPEC service on this device")
        return self.spec.do_action(args)

    def _resolve(self, name) -> Path:
        if self.files_dir is None:
            raise ValueError("no recordings on this device")
        if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
            raise ValueError(f"file name {name!r}: expected a relative path inside the recordings")
        root = self.files_dir.resolve()
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            raise ValueError(f"file {name!r}: not a recording on this device")
        return path

    async def _op_file_list(self, args):
        if self.files_dir is None:
            return {"files": []}
        self.counters["reads"] += 1
        root = self.files_dir.resolve()
        return {"files": sorted([{"name": str(p.relative_to(root)), "size": p.stat().st_size}
                                 for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")],
                                key=lambda f: f["name"])}

    async def _op_file_get(self, args):
        path = self._resolve(args.get("name"))
        offset = args.get("offset", 0)
        size = path.stat().st_size
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= size:
            raise ValueError(f"offset {offset!r}: expected an integer in [0, {size}]")
        digest = await asyncio.to_thread(_sha256, path)
        tid = next(self._transfers)
        self.counters["reads"] += 1
        self._tasks.append(asyncio.create_task(self._send_file(path, tid, offset, size)))
        return {"transfer": tid, "size": size, "sha256": digest, "offset": offset}

    async def _send_file(self, path: Path, tid: int, offset: int, size: int) -> None:
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                while True:
                    data = fh.read(FILE_CHUNK)
                    last = offset + len(data) >= size
                    await self.mux.send_reliable(Channel.FILE, FileChunk(tid, offset, size, last, data).encode())
                    offset += len(data)
                    if last:
                        return
        except ConnectionError:
            log.info("session %s: file transfer %d interrupted at %d", self.sid, tid, offset)

    # ------------------------------------------------------------------ media
    def push_media(self, pkt: EncodedPacket) -> None:
        if self.live is None or self.mux.closed.is_set():
            return
        if pkt.stream in ("main", "sub") and pkt.stream != self.live:
            return
        if pkt.keyframe and not self._allowed("view"):
            self._stop_live("permission revoked")
            return
        unit = MediaUnit(pkt.stream, int(round(pkt.pts_s * 1e6)), pkt.keyframe, int(round(pkt.duration_s * 1e6)),
                         pkt.data)
        ch = Channel.AUDIO if pkt.stream == "audio" else Channel.VIDEO
        self.mux.send_lossy(ch, unit.encode(), keyframe=pkt.keyframe)

    def push_alert(self, obj: dict) -> None:
        if self.mux.closed.is_set() or not self._allowed("view"):
            return
        asyncio.ensure_future(self._send_alert(obj))

    async def _send_alert(self, obj: dict) -> None:
        try:
            await self.mux.send_reliable(Channel.ALERT, encode_json(obj))
        except ConnectionError:
            pass

    async def _talk_loop(self) -> None:
        while True:
            try:
                raw = await self.mux.recv(Channel.AUDIO)
            except ConnectionError:
                return
            try:
                unit = parse_media(raw)
            except PacketError as exc:
                log.warning("session %s: bad talk-back unit: %s", self.sid, exc)
                continue
            if not self.talk or unit.stream != "audio" or not self._allowed("talk"):
                self.counters["talk_rejected"] += 1
                if self.talk:
                    self._stop_talk("permission revoked")
                continue
            self.counters["talk_units"] += 1
            if self.on_talk is not None:
                self.on_talk(self.account, unit)

    def _stop_live(self, why: str) -> None:
        if self.live is not None:
            self.live = None
            self.log.write(event="live_stop", account=self.account, did=self.did, session=self.sid, reason=why)
            self.hub.changed()

    def _stop_talk(self, why: str) -> None:
        if self.talk:
            self.talk = False
            self.log.write(event="talk_stop", account=self.account, did=self.did, session=self.sid, reason=why)
            self.hub.changed()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CommandError(Exception):
    """The camera answered a command with ok=false."""


class AppSession:
    """The app's side of one session: commands with replies, media and alerts in, talk-back and downloads."""

    def __init__(self, mux: Mux):
        self.mux = mux
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._task = asyncio.create_task(self._responses())

    async def _responses(self) -> None:
        while True:
            try:
                raw = await self.mux.recv(Channel.COMMAND)
            except ConnectionError:
                for fut in self._waiting.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("session closed"))
                return
            try:
                msg = parse_command(raw)
            except PacketError as exc:
                log.warning("app: bad response: %s", exc)
                continue
            fut = self._waiting.pop(msg["id"], None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def request(self, op: str, timeout: float = 5.0, **args) -> dict:
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        await self.mux.send_reliable(Channel.COMMAND, encode_json({"id": rid, "op": op, "args": args}))
        msg = await asyncio.wait_for(fut, timeout)
        if not msg["ok"]:
            raise CommandError(msg.get("error", "refused"))
        return msg["result"]

    async def recv_media(self, timeout: float = 5.0) -> MediaUnit:
        raw = await self.mux.recv(Channel.VIDEO, timeout)
        return parse_media(raw)

    async def recv_audio(self, timeout: float = 5.0) -> MediaUnit:
        """Live audio from the camera's microphone (the app's own talk-back goes the other way)."""
        return parse_media(await self.mux.recv(Channel.AUDIO, timeout))

    async def recv_alert(self, timeout: float = 5.0) -> dict:
        return json.loads(await self.mux.recv(Channel.ALERT, timeout))

    def send_talk(self, pcm_or_opus: bytes, pts_s: float) -> bool:
        unit = MediaUnit("audio", int(pts_s * 1e6), False, 20000, pcm_or_opus)
        return self.mux.send_lossy(Channel.AUDIO, unit.encode())

    async def download(self, name: str, dest: Path, stop_after: int | None = None, timeout: float = 30.0) -> dict:
        """Fetch recording ``name`` into ``dest``, resuming from ``dest``.part. ``stop_after``: bytes to receive
        before giving up (a test hook that simulates the link dropping mid-transfer)."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        info = await self.request("file_get", name=name, offset=offset)
        got = 0
        with open(part, "ab") as fh:
            while True:
                chunk = parse_file_chunk(await self.mux.recv(Channel.FILE, timeout))
                if chunk.transfer_id != info["transfer"]:
                    continue
                if chunk.offset != fh.tell():
                    raise PacketError(f"file chunk at {chunk.offset}, expected {fh.tell()}")
                fh.write(chunk.data)
                got += len(chunk.data)
                if chunk.last:
                    break
                if stop_after is not None and got >= stop_after:
                    fh.flush()
                    os.fsync(fh.fileno())
                    return {"complete": False, "resumed_from": offset, "received": got}
            fh.flush()
            os.fsync(fh.fileno())
        if _sha256(part) != info["sha256"]:
            part.unlink()
            raise PacketError(f"{name}: SHA-256 mismatch after download; partial file discarded")
        os.replace(part, dest)
        return {"complete": True, "resumed_from": offset, "received": got, "sha256": info["sha256"]}

    async def close(self) -> None:
        self._task.cancel()
        await self.mux.close()


# ---------------------------------------------------------------------- handshakes over a transport
async def open_session(transport: Transport, app: AppIdentity, did: str, device_pub: bytes, *,
                       timeout: float = 3.0, rate_bps: float = 40e6) -> AppSession:
    """App side: authenticate both ways over ``transport`` and start the channels."""
    hs = ClientHandshake(app, did, device_pub)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out, phase = hs.hello(), "reply"
    session: SecureSession | None = None
    while session is None:
        await transport.send(out)
        resend_at = min(deadline, loop.time() + 0.25)
        while loop.time() < resend_at:
            try:
                data = await asyncio.wait_for(transport.recv(), resend_at - loop.time())
            except asyncio.TimeoutError:
                break
            try:
                rec = parse_record(data)
                if phase == "reply" and rec.type in (RecordType.REPLY, RecordType.REJECT):
                    out, phase = hs.on_reply(rec), "confirm"
                    break
                if phase == "confirm" and rec.type in (RecordType.CONFIRM, RecordType.REJECT):
                    session = hs.on_confirm(rec)
                    break
            except HandshakeError:
                raise
            except PacketError as exc:
                log.debug("app handshake: ignored %s", exc)
        if session is None and loop.time() >= deadline:
            raise TimeoutError(f"handshake with {did} timed out after {timeout:.1f} s (phase {phase})")
    mux = Mux(transport, session, rate_bps=rate_bps)
    mux.start()
    return AppSession(mux)


async def accept_session(transport: Transport, hs: DeviceHandshake, timeout: float = 5.0,
                         rate_bps: float = 40e6) -> Mux:
    """Device side: answer HELLO/FINISH on ``transport`` until an account is authenticated and authorised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError("no authenticated session before the deadline")
        try:
            data = await asyncio.wait_for(transport.recv(), left)
        except asyncio.TimeoutError as exc:
            raise TimeoutError("no authenticated session before the deadline") from exc
        try:
            rec = parse_record(data)
            if rec.type is RecordType.HELLO:
                await transport.send(hs.on_hello(rec))
            elif rec.type is RecordType.FINISH:
                session, out = hs.on_finish(rec)
                await transport.send(out)
                if session is not None:
                    mux = Mux(transport, session, rate_bps=rate_bps)
                    mux.confirm_record = out
                    mux.start()
                    return mux
        except PacketError as exc:
            log.warning("device handshake: dropped %s", exc)
