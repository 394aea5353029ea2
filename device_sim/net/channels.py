"""Channel multiplexing over one secure datagram session: video, audio, command, file and alert with priorities.

One UDP path (an ICE-selected pair or the relay) carries every channel, as the MISS/TUTK-style camera SDKs do.
Strict priority scheduling (alert > command > audio > video > file) with a token-bucket pacer (RFC 2697 in
spirit); lossy channels (video, audio) never retransmit and, under congestion, video drops whole frames and then
skips to the next keyframe so the decoder never sees a broken reference chain (the "drop-to-IDR" policy of
RFC 6184 §8.3-style receivers). Reliable channels (command, file, alert) use per-message sequence numbers, selective
acknowledgements, retransmission with exponential backoff (RFC 6298 §5, simplified) and in-order delivery with a
bounded send window.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from .packets import (RELIABLE, Channel, Frame, FrameKind, PacketError, RecordType, encode_acks, parse_acks,
                      parse_frame, parse_record)
from .session import SecureSession

log = logging.getLogger(__name__)
MAX_FRAGMENT = 1200
WINDOW = 64              # unacknowledged reliable messages per channel
RTO_S = 0.12
MAX_TRIES = 12


class Transport(Protocol):
    async def send(self, data: bytes) -> None: ...
    async def recv(self) -> bytes: ...
    async def close(self) -> None: ...


@dataclass
class _Unacked:
    frames: list[bytes]
    sent: float
    rto: float = RTO_S
    tries: int = 1


@dataclass
class ChannelStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    retransmits: int = 0
    bytes_sent: int = 0


@dataclass
class _RecvState:
    next_seq: int = 0
    buffered: dict[int, bytes] = field(default_factory=dict)
    partial: "collections.OrderedDict[int, dict[int, bytes]]" = field(default_factory=collections.OrderedDict)


class Mux:
    """Runs one session's channels. ``rate_bps``: the pacing rate (the congestion model: what the path carries)."""

    def __init__(self, transport: Transport, session: SecureSession, *, rate_bps: float = 40e6,
                 video_queue_s: float = 0.25, idle_timeout_s: float = 20.0):
        self.transport, self.session = transport, session
        self.rate_Bps = rate_bps / 8
        self.video_queue_bytes = int(self.rate_Bps * video_queue_s)
        self.idle_timeout_s = idle_timeout_s
        self.stats = {c: ChannelStats() for c in Channel}
        self.inbox: dict[Channel, asyncio.Queue] = {c: asyncio.Queue() for c in Channel}
        self._queues: dict[Channel, collections.deque] = {c: collections.deque() for c in Channel}
        self._queued_bytes = {c: 0 for c in Channel}
        self._send_seq = {c: 0 for c in Channel}
        self._unacked: dict[Channel, dict[int, _Unacked]] = {c: {} for c in RELIABLE}
        self._window_free: dict[Channel, asyncio.Event] = {c: asyncio.Event() for c in RELIABLE}
        self._recv = {c: _RecvState() for c in Channel}
        self._wake = asyncio.Event()
        self._pending = asyncio.Event()              # set when a reliable message awaits its ack
        self._skip_to_key = False
        self._tasks: list[asyncio.Task] = []
        self.closed = asyncio.Event()
        self.bad_records = 0
        self.confirm_record: bytes | None = None     # device side: resent when a FINISH is repeated
        self._last_rx = time.monotonic()
        for ev in self._window_free.values():
            ev.set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver()),
                       asyncio.create_task(self._retransmitter())]

    async def close(self, notify: bool = True) -> None:
        if self.closed.is_set():
            return
        if notify:
            try:
                await self.transport.send(self.session.seal(b"", RecordType.CLOSE))
            except Exception:  # noqa: BLE001 - the path may already be gone
                pass
        self.closed.set()
        for q in self.inbox.values():
            q.put_nowait(None)
        for ev in self._window_free.values():
            ev.set()
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()
        await self.transport.close()

    # ------------------------------------------------------------------ sending
    def _fragments(self, channel: Channel, payload: bytes) -> tuple[int, list[bytes]]:
        seq = self._send_seq[channel]
        self._send_seq[channel] = (seq + 1) & 0xFFFFFFFF
        parts = [payload[i:i + MAX_FRAGMENT] for i in range(0, len(payload), MAX_FRAGMENT)] or [b""]
        if len(parts) > 4096:
            raise PacketError(f"{channel.name} message of {len(payload)} bytes is over the 4096-fragment limit")
        return seq, [Frame(channel, FrameKind.DATA, seq, i, len(parts), p).encode() for i, p in enumerate(parts)]

    def _enqueue(self, channel: Channel, frames: list[bytes], seq: int | None = None) -> None:
        self._queues[channel].append((seq, frames))
        self._queued_bytes[channel] += sum(map(len, frames))
        self._wake.set()

    def send_lossy(self, channel: Channel, payload: bytes, keyframe: bool = False) -> bool:
        """Queue a video/audio unit; returns False if it was dropped (congestion or waiting for a keyframe)."""
        if channel in RELIABLE:
            raise ValueError(f"{channel.name} is a reliable channel")
        if self.closed.is_set():
            return False
        st = self.stats[channel]
        if channel is Channel.VIDEO:
            if keyframe and self._queued_bytes[channel] + len(payload) > self.video_queue_bytes:
                # a new GOP starts: stale queued frames are worth less than the keyframe
                st.dropped += len(self._queues[channel])
                self._queues[channel].clear()
                self._queued_bytes[channel] = 0
            if self._skip_to_key and not keyframe:
                st.dropped += 1
                return False
            if self._queued_bytes[channel] + len(payload) > self.video_queue_bytes and self._queues[channel]:
                st.dropped += 1
                self._skip_to_key = True
                return False
            self._skip_to_key = False
        elif self._queued_bytes[channel] + len(payload) > self.video_queue_bytes // 4 and self._queues[channel]:
            _, old = self._queues[channel].popleft()   # audio: keep it fresh, drop the oldest
            self._queued_bytes[channel] -= sum(map(len, old))
            st.dropped += 1
        _, frames = self._fragments(channel, payload)
        self._enqueue(channel, frames)
        return True

    async def send_reliable(self, channel: Channel, payload: bytes) -> None:
        """Queue a message on a reliable channel, waiting while the send window is full."""
        if channel not in RELIABLE:
            raise ValueError(f"{channel.name} is not a reliable channel")
        while len(self._unacked[channel]) + len(self._queues[channel]) >= WINDOW:
            if self.closed.is_set():
                raise ConnectionError("session closed")
            self._window_free[channel].clear()
            await self._window_free[channel].wait()
        if self.closed.is_set():
            raise ConnectionError("session closed")
        seq, frames = self._fragments(channel, payload)
        self._unacked[channel][seq] = _Unacked(list(frames), float("inf"))
        self._pending.set()
        self._enqueue(channel, frames, seq)

    async def _emit(self, frame: bytes) -> None:
        rec = self.session.seal(frame)
        await self.transport.send(rec)

    async def _sender(self) -> None:
        """One fragment at a time, always from the highest-priority channel with data, so a command or alert
        waits for at most one fragment of a large video frame (pre-emption at fragment boundaries)."""
        tokens, last = 64 * 1024.0, time.monotonic()
        burst = max(64 * 1024.0, self.rate_Bps * 0.02)
        try:
            while not self.closed.is_set():
                ch = next((c for c in Channel if self._queues[c]), None)
                if ch is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                reliable_seq, frames = self._queues[ch][0]
                frame = frames.pop(0)
                self._queued_bytes[ch] -= len(frame)
                if not frames:
                    self._queues[ch].popleft()
                now = time.monotonic()
                tokens = min(burst, tokens + (now - last) * self.rate_Bps)
                last = now
                if tokens < len(frame):
                    await asyncio.sleep((len(frame) - tokens) / self.rate_Bps)
                    tokens, last = len(frame), time.monotonic()
                tokens -= len(frame)
                await self._emit(frame)
                self.stats[ch].bytes_sent += len(frame)
                if not frames:
                    self.stats[ch].sent += 1
                    if reliable_seq is not None and reliable_seq in self._unacked[ch]:
                        self._unacked[ch][reliable_seq].sent = time.monotonic()
        except (ConnectionError, OSError) as exc:
            log.info("sender stopped: %s", exc)
            await self.close(notify=False)

    async def _retransmitter(self) -> None:
        try:
            while not self.closed.is_set():
                if any(self._unacked.values()):
                    await asyncio.sleep(0.03)
                else:                                     # idle: sleep until something is sent (or 1 s)
                    self._pending.clear()
                    try:
                        await asyncio.wait_for(self._pending.wait(), 1.0)
                    except asyncio.TimeoutError:
                        pass
                now = time.monotonic()
                if now - self._last_rx > self.idle_timeout_s:
                    log.info("session %#x idle for %.0f s, closing", self.session.session_id, self.idle_timeout_s)
                    await self.close()
                    return
                for ch, pending in self._unacked.items():
                    for seq, u in list(pending.items()):
                        if now - u.sent < u.rto:
                            continue
                        if u.tries >= MAX_TRIES:
                            log.warning("%s message %d unacknowledged after %d tries, closing", ch.name, seq, u.tries)
                            await self.close()
                            return
                        u.tries += 1
                        u.rto = min(u.rto * 2, 2.0)
                        u.sent = now
                        self.stats[ch].retransmits += 1
                        for f in u.frames:
                            await self._emit(f)
        except (ConnectionError, OSError):
            await self.close(notify=False)

    # ------------------------------------------------------------------ receiving
    async def _receiver(self) -> None:
        try:
            while not self.closed.is_set():
                data = await self.transport.recv()
                try:
                    rec = parse_record(data)
                    if rec.session_id == self.session.session_id and rec.type is RecordType.FINISH:
                        if self.confirm_record is not None:   # our CONFIRM was lost: the app repeats FINISH
                            await self.transport.send(self.confirm_record)
                        continue
                    if rec.type in (RecordType.CONFIRM, RecordType.HELLO, RecordType.REPLY):
                        continue                         # duplicates from the handshake
                    plain = self.session.open(rec)
                except PacketError as exc:
                    self.bad_records += 1
                    log.debug("dropped record: %s", exc)
                    continue
                self._last_rx = time.monotonic()
                if rec.type is RecordType.CLOSE:
                    await self.close(notify=False)
                    return
                try:
                    await self._on_frame(parse_frame(plain))
                except PacketError as exc:
                    self.bad_records += 1
                    log.warning("dropped frame: %s", exc)
        except (ConnectionError, OSError) as exc:
            log.info("receiver stopped: %s", exc)
            await self.close(notify=False)

    async def _on_frame(self, f: Frame) -> None:
        ch = f.channel
        if f.kind is FrameKind.ACK:
            if ch not in RELIABLE:
                raise PacketError(f"ack on lossy channel {ch.name}")
            for seq in parse_acks(f.payload):
                if self._unacked[ch].pop(seq, None) is not None:
                    self._window_free[ch].set()
            return
        st = self._recv[ch]
        if ch in RELIABLE and _before(f.msg_seq, st.next_seq):
            await self._ack(ch, f.msg_seq)               # a retransmission of something delivered: re-ack
            return
        if f.frag_count == 1:
            msg = f.payload
        else:
            count, parts = st.partial.setdefault(f.msg_seq, (f.frag_count, {}))
            if count != f.frag_count:                    # fragments of one message must agree on how many there are
                del st.partial[f.msg_seq]
                raise PacketError(f"{ch.name} message {f.msg_seq}: fragment says {f.frag_count} fragments, "
                                  f"an earlier one said {count}")
            parts[f.frag_idx] = f.payload
            if len(st.partial) > 64:
                st.partial.popitem(last=False)           # forget the oldest incomplete message
            if len(parts) < f.frag_count:
                return
            del st.partial[f.msg_seq]
            msg = b"".join(parts[i] for i in range(f.frag_count))
        if ch not in RELIABLE:
            self.stats[ch].delivered += 1
            self.inbox[ch].put_nowait(msg)
            return
        await self._ack(ch, f.msg_seq)
        if f.msg_seq - st.next_seq & 0xFFFFFFFF >= WINDOW * 4:
            raise PacketError(f"{ch.name} message {f.msg_seq} far outside the receive window")
        st.buffered[f.msg_seq] = msg
        while st.next_seq in st.buffered:
            self.stats[ch].delivered += 1
            self.inbox[ch].put_nowait(st.buffered.pop(st.next_seq))
            st.next_seq = (st.next_seq + 1) & 0xFFFFFFFF

    async def _ack(self, ch: Channel, seq: int) -> None:
        await self._emit(Frame(ch, FrameKind.ACK, 0, 0, 0, encode_acks([seq])).encode())

    async def recv(self, channel: Channel, timeout: float | None = None) -> bytes:
        """Next message on ``channel``; raises ConnectionError once the session is closed."""
        q = self.inbox[channel]
        item = await (asyncio.wait_for(q.get(), timeout) if timeout else q.get())
        if item is None:
            q.put_nowait(None)
            raise ConnectionError("session closed")
        return item


def _before(a: int, b: int) -> bool:
    """Serial number arithmetic (RFC 1982) for 32-bit sequence numbers: a < b."""
    return a != b and (b - a) & 0xFFFFFFFF < 0x80000000
