"""Encoded media as it leaves the encoders: the unit the ring buffer, recorder, clip maker and P2P channels share."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

StreamName = Literal["main", "sub", "audio"]


@dataclass(frozen=True)
class StreamInfo:
    """Codec parameters of one elementary stream (enough to remux it into MP4/MPEG-TS with PyAV)."""
    name: StreamName
    codec: str                 # "hevc", "h264", "opus", "aac"
    width: int = 0
    height: int = 0
    fps: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    extradata: bytes = b""     # codec private data (e.g. HEVC VPS/SPS/PPS), empty for in-band headers


@dataclass(frozen=True)
class EncodedPacket:
    """One compressed access unit. ``pts_s``: capture time on the camera clock (seconds)."""
    stream: StreamName
    pts_s: float
    data: bytes
    keyframe: bool = False
    duration_s: float = 0.0
    meta: dict = field(default_factory=dict)
