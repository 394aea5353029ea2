"""PyAV remuxing of :class:`~device_sim.media.packets.EncodedPacket` streams into MP4 and MPEG-TS (no re-encoding).

ISO/IEC 14496-12 (ISOBMFF, fragmented ``moof``/``mdat``), ISO/IEC 13818-1 (MPEG-TS), ITU-T H.265 Annex B (byte
stream: start codes, VPS/SPS/PPS NAL types 32/33/34), ITU-T H.264 Annex B (SPS/PPS NAL types 7/8).

Packets are Annex-B access units in decode order with ``pts == dts`` (cameras encode IP-only, no B-frames; a
``meta["dts_s"]`` overrides the DTS). Codec parameters come from the stream's ``extradata`` (Annex B) or, when that is
empty, from the parameter sets carried in-band by the first keyframe: a tiny Annex-B probe through FFmpeg's parser
gives a template stream whose codec parameters (hvcC/avcC) the muxer copies.
"""
from __future__ import annotations

import io
import re
from fractions import Fraction

import av

from camlab.errors import CamlabError, InputFileError
from device_sim.media.packets import EncodedPacket, StreamInfo

TIME_BASE = Fraction(1, 90000)
_START = re.compile(b"\x00\x00\x01")
_PARAM_TYPES = {"hevc": {32, 33, 34}, "h264": {7, 8}}
MP4_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


def split_nals(data: bytes) -> list[bytes]:
    """Annex-B byte stream -> NAL unit payloads (start codes and trailing zero bytes removed)."""
    starts = [m.end() for m in _START.finditer(data)]
    nals = []
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        nals.append(data[s:e].rstrip(b"\x00") if k + 1 < len(starts) else data[s:e])
    return nals


def nal_type(codec: str, nal: bytes) -> int:
    if not nal:
        return -1
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


def is_annexb(data: bytes) -> bool:
    return data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"


def parameter_sets(codec: str, data: bytes) -> bytes:
    """The VPS/SPS/PPS (HEVC) or SPS/PPS (H.264) NAL units of ``data`` re-emitted as Annex B."""
    types = _PARAM_TYPES.get(codec, set())
    return b"".join(b"\x00\x00\x00\x01" + n for n in split_nals(data) if nal_type(codec, n) in types)


def has_parameter_sets(codec: str, data: bytes) -> bool:
    types = _PARAM_TYPES.get(codec, set())
    return any(nal_type(codec, n) in types for n in split_nals(data[:4096]))


class StreamTemplate:
    """Codec parameters of one video stream, probed once from Annex-B headers (kept alive for the muxers)."""

    def __init__(self, info: StreamInfo, first_keyframe: bytes):
        if info.codec not in _PARAM_TYPES:
            raise CamlabError(f"stream {info.name!r}: codec {info.codec!r} not supported for recording "
                              f"(expected one of {sorted(_PARAM_TYPES)})")
        if info.extradata and not is_annexb(info.extradata):
            raise CamlabError(f"stream {info.name!r}: extradata is not Annex B (start codes expected)")
        if not is_annexb(first_keyframe):
            raise CamlabError(f"stream {info.name!r}: packets must be Annex-B access units (start codes expected)")
        self.info = info
        self.headers = info.extradata or parameter_sets(info.codec, first_keyframe)
        if not self.headers:
            raise CamlabError(f"stream {info.name!r}: no parameter sets in extradata nor in the first keyframe")
        self._probe = av.open(io.BytesIO(self.headers + first_keyframe), format=info.codec)
        self.stream = self._probe.streams.video[0]
        for _ in self._probe.demux(self.stream):
            pass

    def with_headers(self, pkt: EncodedPacket) -> bytes:
        """Keyframe data with in-band parameter sets (MPEG-TS carries no out-of-band codec configuration)."""
        if pkt.keyframe and not has_parameter_sets(self.info.codec, pkt.data):
            return self.headers + pkt.data
        return pkt.data


class PacketMuxer:
    """Remux one video stream into ``target`` (path or file object) as ``fmt`` ("mp4" fragmented, or "mpegts")."""

    def __init__(self, target, fmt: str, template: StreamTemplate, *, metadata: dict | None = None,
                 flush_packets: bool = False):
        options = dict(MP4_FRAGMENTED) if fmt == "mp4" else {}
        if flush_packets:            # flush FFmpeg's I/O buffer after every packet (the mov muxer already writes
            options["flush_packets"] = "1"    # each fragment at once here; this keeps the recorder's fsync honest)
        self.fmt = fmt
        self.template = template
        self.container = av.open(target, "w", format=fmt, options=options)
        for k, v in (metadata or {}).items():
            self.container.metadata[k] = v
        self.stream = self.container.add_stream_from_template(template.stream)
        self.stream.time_base = TIME_BASE
        self.frames = 0
        self.first_pts_s: float | None = None
        self.last_end_s: float | None = None
        self._last_dts = None

    def add(self, pkt: EncodedPacket) -> None:
        data = self.template.with_headers(pkt) if self.fmt == "mpegts" else pkt.data
        p = av.Packet(data)
        pts = round(pkt.pts_s * 90000)
        dts = round(float(pkt.meta.get("dts_s", pkt.pts_s)) * 90000)
        if self._last_dts is not None and dts <= self._last_dts:
            raise CamlabError(f"stream {pkt.stream!r}: packet at {pkt.pts_s:.6f} s is not after the previous one "
                              f"(decode order with increasing timestamps expected)")
        self._last_dts = dts
        p.pts, p.dts = pts, dts
        dur = pkt.duration_s or (1.0 / self.template.info.fps if self.template.info.fps else 0.0)
        p.duration = round(dur * 90000)
        p.time_base = TIME_BASE
        p.is_keyframe = pkt.keyframe
        p.stream = self.stream
        self.container.mux(p)
        self.frames += 1
        if self.first_pts_s is None:
            self.first_pts_s = pkt.pts_s
        self.last_end_s = pkt.pts_s + dur

    def close(self) -> None:
        self.container.close()


def probe_mp4(path, *, decode: bool = True) -> dict:
    """Demux (and decode) a recording -> ``frames``, ``first_s``, ``end_s`` (stream time), ``metadata``.

    Raises :class:`InputFileError` naming the file when it does not parse or holds no decodable frame.
    """
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise InputFileError(f"{path}: no video stream")
            st = c.streams.video[0]
            if decode and st.codec_context is None:
                raise InputFileError(f"{path}: video stream has no decoder (unknown or corrupt codec parameters)")
            meta = dict(c.metadata)
            frames = decoded = 0
            first = end = None
            for pk in c.demux(st):
                if not pk.size:
                    continue
                if pk.is_corrupt:
                    raise InputFileError(f"{path}: corrupt packet at {float(pk.pts * pk.time_base):.3f} s")
                frames += 1
                t0 = float(pk.pts * pk.time_base)
                first = t0 if first is None else min(first, t0)
                end = max(end or t0, t0 + float((pk.duration or 0) * pk.time_base))
                if decode:
                    decoded += len(st.codec_context.decode(pk))
            if decode:
                decoded += len(st.codec_context.decode(None))
    except InputFileError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable MP4 recording ({exc})") from exc
    if frames == 0 or (decode and decoded != frames):
        raise InputFileError(f"{path}: MP4 holds {frames} packets but {decoded} decodable frames")
    return {"frames": frames, "first_s": first, "end_s": end, "metadata": meta}
