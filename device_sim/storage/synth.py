"""Synthetic encoded video (libx265/libx264 via PyAV) for tests, benchmarks and the fault-injection harness.

ITU-T H.265 / H.264 Annex B output, IP-only (``bframes=0``, zero-latency tune) as a camera encoder emits it.
A handful of GOPs is encoded once and replayed with shifted timestamps, so hours of simulated footage cost nothing.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from device_sim.media.packets import EncodedPacket, StreamInfo


def encode_gops(width: int, height: int, fps: int, gop: int, n_gops: int = 2, *, codec: str = "hevc",
                seed: int = 0, texture: float = 0.0) -> list[tuple[bytes, bool]]:
    """Encode ``n_gops`` GOPs of a moving bar (+ optional noise texture, raising the bitrate) -> [(data, keyframe)]."""
    rng = np.random.default_rng(seed)
    name = "libx265" if codec == "hevc" else "libx264"
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, 90000)
    enc.framerate = Fraction(fps, 1)
    if codec == "hevc":
        enc.options = {"preset": "ultrafast", "tune": "zerolatency",
                       "x265-params": f"keyint={gop}:min-keyint={gop}:bframes=0:scenecut=0:log-level=error"}
    else:
        enc.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "bf": "0",
                       "x264-params": "scenecut=0"}
    out: list[tuple[bytes, bool]] = []
    n = gop * n_gops
    for i in range(n):
        img = np.full((height, width, 3), 40, np.uint8)
        x = (i * 3) % width
        img[:, x:x + 4] = 230
        if texture:
            img = np.clip(img + rng.normal(0, 255 * texture, img.shape), 0, 255).astype(np.uint8)
        fr = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        fr.pts = i * (90000 // fps)
        fr.time_base = enc.time_base
        out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(fr)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    assert len(out) == n and out[0][1], "encoder must emit one packet per frame starting with a keyframe"
    return out


class SyntheticSource:
    """An endless encoded stream: ``packets(t0, seconds)`` yields EncodedPackets with ``pts_s`` from ``t0``."""

    def __init__(self, width: int = 64, height: int = 64, fps: int = 10, gop: int = 10, *, stream: str = "main",
                 codec: str = "hevc", n_gops: int = 2, seed: int = 0, texture: float = 0.0):
        self.fps, self.gop = fps, gop
        self.gops = encode_gops(width, height, fps, gop, n_gops, codec=codec, seed=seed, texture=texture)
        self.info = StreamInfo(name=stream, codec=codec, width=width, height=height, fps=float(fps))
        self.stream = stream
        self.bitrate_bps = 8 * sum(len(d) for d, _ in self.gops) * fps / len(self.gops)

    def packet(self, index: int, t0: float = 0.0) -> EncodedPacket:
        data, key = self.gops[index % len(self.gops)]
        return EncodedPacket(stream=self.stream, pts_s=t0 + index / self.fps, data=data, keyframe=key,
                             duration_s=1.0 / self.fps)

    def packets(self, t0: float, seconds: float) -> Iterator[EncodedPacket]:
        """Packets covering ``[t0, t0 + seconds)``, starting with a keyframe."""
        for i in range(int(round(seconds * self.fps))):
            yield self.packet(i, t0)
