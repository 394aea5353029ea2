"""Pre-event ring buffer: the last N seconds of encoded packets, so a clip can start before its trigger.

Like a firmware ring buffer in a fixed RAM budget: packets are kept in capture order (all streams); packets older
than ``seconds`` (measured back from the newest video packet) are evicted a whole GOP at a time, so the buffer
always starts on the keyframe at or before the horizon and every run it returns is decodable. ``since(t)`` returns
the packets from the last video keyframe at or before ``t`` to the newest. ``capacity_bytes`` bounds memory (the
oldest GOP goes first when it is exceeded); the peak is reported. Push and evict are O(1) amortised.
"""
from __future__ import annotations

from collections import deque

from device_sim.media.packets import EncodedPacket


class RingBuffer:
    def __init__(self, seconds: float = 15.0, capacity_bytes: int = 16 << 20, video_stream: str = "main"):
        if not 10.0 <= seconds <= 30.0:
            raise ValueError(f"ring buffer must hold 10-30 s before an event, got {seconds}")
        self.seconds = float(seconds)
        self.capacity_bytes = int(capacity_bytes)
        self.video_stream = video_stream
        self._q: deque[tuple[int, EncodedPacket]] = deque()
        self._keys: deque[tuple[int, float]] = deque()   # (sequence number, pts) of video keyframes held
        self._seq = 0
        self._newest_video = None
        self.bytes = 0
        self.peak_bytes = 0
        self.evicted_for_capacity = 0

    def push(self, pkt: EncodedPacket) -> None:
        is_video = pkt.stream == self.video_stream
        if is_video and pkt.keyframe:
            self._keys.append((self._seq, pkt.pts_s))
        if not self._keys:           # nothing decodable yet: wait for the first keyframe
            return
        self._q.append((self._seq, pkt))
        self._seq += 1
        self.bytes += len(pkt.data)
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        if is_video:
            self._newest_video = pkt.pts_s
            horizon = pkt.pts_s - self.seconds
            while len(self._keys) >= 2 and self._keys[1][1] <= horizon:
                self._drop_gop()
        while self.bytes > self.capacity_bytes and len(self._keys) >= 2:
            self._drop_gop()
            self.evicted_for_capacity += 1

    def _drop_gop(self) -> None:
        self._keys.popleft()
        first = self._keys[0][0]
        while self._q and self._q[0][0] < first:
            _, p = self._q.popleft()
            self.bytes -= len(p.data)

    def span_s(self) -> float:
        return (self._newest_video - self._keys[0][1]) if self._keys and self._newest_video is not None else 0.0

    def since(self, t: float) -> list[EncodedPacket]:
        """Decodable packets from the last video keyframe at or before ``t`` (or the oldest one) to now."""
        if not self._keys:
            return []
        start = self._keys[0][0]
        for seq, pts in self._keys:
            if pts <= t:
                start = seq
        return [p for seq, p in self._q if seq >= start]

    def __len__(self) -> int:
        return len(self._q)
