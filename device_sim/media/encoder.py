"""Video encoders of the camera: H.265 main stream, H.264/H.265 substream, JPEG snapshots, via PyAV (FFmpeg).

ITU-T H.265 (HEVC) with x265 ``ultrafast`` + ``zerolatency`` (no B-frames, no lookahead: one packet out per frame
in, as a hardware VENC does) and a fixed GOP (IDR every ``gop`` frames) so the ring buffer can start a clip on a
keyframe; ITU-T H.264 with x264 for the substream; JPEG (ITU-T T.81) snapshots through OpenCV's libjpeg.
Input frames are NV12 (Y plane then interleaved UV), as the ISP hands them to the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.errors import ConfigError
from device_sim.media.packets import EncodedPacket, StreamInfo

CODECS = {"hevc": "libx265", "h264": "libx264"}


@dataclass(frozen=True)
class StreamConfig:
    name: str                  # "main" | "sub"
    codec: str                 # "hevc" | "h264"
    width: int
    height: int
    fps: float
    bitrate: int = 2_000_000
    gop: int = 40              # frames between IDRs
    threads: int = 0           # 0: encoder default


class VideoEncoder:
    """NV12 frames in, :class:`EncodedPacket` out (pts = capture time)."""

    def __init__(self, cfg: StreamConfig):
        import av
        if cfg.codec not in CODECS:
            raise ConfigError(f"stream {cfg.name}: codec must be one of {sorted(CODECS)}, got {cfg.codec!r}")
        if cfg.width % 2 or cfg.height % 2:
            raise ConfigError(f"stream {cfg.name}: width/height must be even, got {cfg.width}x{cfg.height}")
        self.cfg = cfg
        ctx = av.CodecContext.create(CODECS[cfg.codec], "w")
        ctx.width, ctx.height = cfg.width, cfg.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = _tb(cfg.fps)
        ctx.bit_rate = cfg.bitrate
        ctx.gop_size = cfg.gop
        if cfg.threads:
            ctx.thread_count = cfg.threads
        if cfg.codec == "hevc":
            params = f"keyint={cfg.gop}:min-keyint={cfg.gop}:scenecut=0:bframes=0:repeat-headers=1:log-level=error"
            if cfg.threads:
                params += f":pools={cfg.threads}:frame-threads={min(cfg.threads, 2)}"
            ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "x265-params": params}
        else:
            ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                           "x264-params": f"keyint={cfg.gop}:min-keyint={cfg.gop}:scenecut=0:bframes=0"}
        ctx.open()
        self.ctx = ctx
        self.info = StreamInfo(name=cfg.name, codec=cfg.codec, width=cfg.width, height=cfg.height, fps=cfg.fps,
                               extradata=bytes(ctx.extradata or b""))
        self._n = 0
        self._pts_time: dict[int, float] = {}
        self.bytes_out = 0
        self.frames_in = 0

    def encode(self, nv12: np.ndarray, capture_s: float) -> list[EncodedPacket]:
        import av
        h, w = self.cfg.height, self.cfg.width
        if nv12.shape != (h * 3 // 2, w):
            raise ValueError(f"{self.cfg.name} encoder: NV12 frame must be {(h * 3 // 2, w)}, got {nv12.shape}")
        frame = av.VideoFrame.from_ndarray(nv12, format="nv12")
        frame = frame.reformat(format="yuv420p")
        frame.pts = self._n
        self._pts_time[self._n] = capture_s
        self._n += 1
        self.frames_in += 1
        return self._wrap(self.ctx.encode(frame))

    def flush(self) -> list[EncodedPacket]:
        return self._wrap(self.ctx.encode(None))

    def _wrap(self, packets) -> list[EncodedPacket]:
        out = []
        for p in packets:
            pts = int(p.pts) if p.pts is not None else self._n - 1
            t = self._pts_time.pop(pts, pts / self.cfg.fps)
            data = bytes(p)
            self.bytes_out += len(data)
            out.append(EncodedPacket(self.cfg.name, t, data, keyframe=bool(p.is_keyframe),
                                     duration_s=1.0 / self.cfg.fps, meta={"frame": pts}))
        return out


def _tb(fps: float):
    from fractions import Fraction
    return Fraction(1, int(round(fps))) if float(fps).is_integer() else Fraction(1, 1000)


def jpeg_snapshot(nv12: np.ndarray, quality: int = 85) -> bytes:
    """NV12 frame -> JPEG bytes (baseline, 4:2:0)."""
    import cv2
    bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
