"""Pre-event ring buffer: the last N seconds of encoded packets, so a clip can start before its trigger.

Like a firmware ring buffer in a fixed RAM budget: packets are kept in capture order per stream; packets older than
``seconds`` (measured back from the newest video packet) are evicted, but never the keyframe that starts the
oldest decodable GOP. ``since(t)`` returns a decodable run: the packets from the last video keyframe at or before
``t`` to the newest, plus the audio packets of that span. ``capacity_bytes`` bounds memory; the peak is reported.
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
        self._q: deque[EncodedPacket] = deque()
        self.bytes = 0
        self.peak_bytes = 0
        self.evicted_for_capacity = 0

    def push(self, pkt: EncodedPacket) -> None:
        self._q.append(pkt)
        self.bytes += len(pkt.data)
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._evict()

    def _newest_video_t(self) -> float | None:
        for p in reversed(self._q):
            if p.stream == self.video_stream:
                return p.pts_s
        return None

    def _evict(self) -> None:
        newest = self._newest_video_t()
        if newest is None:
            return
        horizon = newest - self.seconds
        # keep from the last keyframe at or before the horizon
        keep_from = None
        for i, p in enumerate(self._q):
            if p.stream == self.video_stream and p.keyframe and p.pts_s <= horizon:
                keep_from = i
        drops = keep_from or 0
        while self.bytes > self.capacity_bytes and drops < len(self._q) - 1:
            drops += 1
            self.evicted_for_capacity += 1
        for _ in range(drops):
            p = self._q.popleft()
            self.bytes -= len(p.data)
        # a run must start on a keyframe
        while self._q and self._q[0].stream == self.video_stream and not self._q[0].keyframe:
            p = self._q.popleft()
            self.bytes -= len(p.data)

    def span_s(self) -> float:
        vids = [p.pts_s for p in self._q if p.stream == self.video_stream]
        return (vids[-1] - vids[0]) if len(vids) > 1 else 0.0

    def since(self, t: float) -> list[EncodedPacket]:
        """Decodable packets from the last video keyframe at or before ``t`` (or the oldest one) to now."""
        start_i = 0
        for i, p in enumerate(self._q):
            if p.stream == self.video_stream and p.keyframe and p.pts_s <= t:
                start_i = i
        items = list(self._q)[start_i:]
        if not items:
            return []
        t0 = next((p.pts_s for p in items if p.stream == self.video_stream), items[0].pts_s)
        return [p for p in items if p.stream == self.video_stream or p.pts_s >= t0]

    def __len__(self) -> int:
        return len(self._q)
