"""Playback: local footage from the card by time range, and cloud clips through their encrypted HLS playlists.

RFC 8216 §4.3.2.4 (EXT-X-KEY with IV) and §6.3 (client: fetch playlist, fetch + decrypt each segment with the key
named by the preceding EXT-X-KEY). The user's app holds the key: :func:`download_clip` resolves ``camlab-key://<id>``
only against the keys it is given, and a wrong key fails with :class:`~device_sim.storage.crypto.DecryptionError`.

API::

    LocalPlayback(card, index).frames(start_s, end_s)   # -> [(wall_s, av.VideoFrame)] in time order
    LocalPlayback(card, index).export(start_s, end_s, out_mp4)
    CloudClient(base_url, cafile, token=user_token).timeline(start_s, end_s)
    CloudClient(...).download_clip(event_id, user_key) -> MPEG-TS bytes
    decode_ts(ts_bytes) -> [pts_s of each decoded frame]
"""
from __future__ import annotations

import http.client
import io
import json
import math
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import av

from camlab.errors import CamlabError, InputFileError
from device_sim.hal.sdcard import SdCard
from device_sim.storage.crypto import UserKey, decrypt_segment, parse_iv_attr
from device_sim.storage.index import Index, UnsafeCardPath, card_file
from device_sim.storage.mux import TIME_BASE


@dataclass(frozen=True)
class PlaylistEntry:
    uri: str
    duration_s: float
    key_uri: str | None
    iv: bytes | None


def parse_playlist(text: str) -> tuple[list[PlaylistEntry], bool]:
    """Media playlist -> (entries, ended). Raises CamlabError on a malformed playlist."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise CamlabError("playlist: first line must be #EXTM3U")
    out, key_uri, iv, dur, ended = [], None, None, None, False
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-KEY:"):
            attrs = dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', ln[11:]))
            if attrs.get("METHOD") == "NONE":
                key_uri, iv = None, None
                continue
            if attrs.get("METHOD") != "AES-128":
                raise CamlabError(f"playlist: unsupported EXT-X-KEY METHOD {attrs.get('METHOD')!r}")
            key_uri = attrs.get("URI", "").strip('"')
            iv = parse_iv_attr(attrs["IV"]) if "IV" in attrs else None
        elif ln.startswith("#EXTINF:"):
            try:
                dur = float(ln[8:].split(",")[0])
            except ValueError:
                dur = math.nan
            if not (math.isfinite(dur) and dur >= 0):
                raise CamlabError(f"playlist: #EXTINF duration {ln[8:].split(',')[0][:32]!r} is not a finite "
                                  f"number of seconds >= 0")
        elif ln == "#EXT-X-ENDLIST":
            ended = True
        elif not ln.startswith("#"):
            if dur is None:
                raise CamlabError(f"playlist: segment {ln!r} without #EXTINF")
            out.append(PlaylistEntry(ln, dur, key_uri, iv))
            dur = None
    return out, ended


def decode_ts(data: bytes) -> list[float]:
    """Decode an MPEG-TS byte string; returns each frame's presentation time in seconds."""
    try:
        with av.open(io.BytesIO(data), format="mpegts") as c:
            return [float(f.pts * f.time_base) for f in c.decode(video=0)]
    except av.error.FFmpegError as exc:
        raise InputFileError(f"MPEG-TS does not decode ({exc})") from exc


class CloudClient:
    """The user's app talking to the cloud (HTTPS, pinned certificate, the account's cloud API token)."""

    def __init__(self, base_url: str, cafile, token: str | None = None):
        u = urlsplit(base_url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
        try:
            conn.request("GET", path, headers=self.auth)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise CamlabError(f"cloud GET {path}: HTTP {r.status} {body[:200]!r}")
            return body
        finally:
            conn.close()

    def timeline(self, start_s: float = 0.0, end_s: float = 1e12) -> list[dict]:
        return json.loads(self.get(f"/v1/timeline?start={start_s}&end={end_s}"))

    def pushes(self, since: float = 0.0) -> list[dict]:
        return json.loads(self.get(f"/v1/push?since={since}"))

    def download_clip(self, event_id: str, keys: UserKey | dict[str, UserKey]) -> bytes:
        """Fetch the playlist and every segment, decrypt each with its IV; returns the concatenated MPEG-TS."""
        if isinstance(keys, UserKey):
            keys = {keys.uri: keys}
        text = self.get(f"/v1/clips/{quote(event_id)}/playlist.m3u8").decode()
        entries, _ = parse_playlist(text)
        out = bytearray()
        for e in entries:
            data = self.get(f"/v1/clips/{quote(event_id)}/{quote(e.uri)}")
            if e.key_uri is None:
                out += data
                continue
            key = keys.get(e.key_uri)
            if key is None:
                raise CamlabError(f"clip {event_id}: playlist needs key {e.key_uri}, which this user does not hold")
            if e.iv is None:
                raise CamlabError(f"clip {event_id}: EXT-X-KEY without IV (the camera always writes one)")
            out += decrypt_segment(key, data, e.iv, name=f"{event_id}/{e.uri}")
        return bytes(out)


class LocalPlayback:
    """Footage on the card by wall-clock time range (works on a write-protected card too)."""

    def __init__(self, card: SdCard, index: Index):
        self.card, self.index = card, index

    def recordings(self, start_s: float, end_s: float):
        if end_s <= start_s:
            raise CamlabError(f"playback: end {end_s} must be after start {start_s}")
        return self.index.timeline(start_s, end_s)

    def frames(self, start_s: float, end_s: float, *, skip_corrupt: bool = False) -> list[tuple[float, "av.VideoFrame"]]:
        """Decoded frames whose wall time lies in ``[start_s, end_s)``. A corrupt file raises :class:`InputFileError`
        naming it (or is skipped with ``skip_corrupt``; see :attr:`skipped`)."""
        root = self.card.require()
        out, self.skipped = [], []
        for rec in self.recordings(start_s, end_s):
            try:
                with av.open(str(card_file(root, rec.path))) as c:
                    st = c.streams.video[0]
                    t_first = None
                    for f in c.decode(st):
                        t = float(f.pts * f.time_base)
                        t_first = t if t_first is None else t_first
                        wall = rec.start_s + (t - t_first)
                        if start_s <= wall < end_s:
                            out.append((wall, f))
            except UnsafeCardPath:
                if not skip_corrupt:
                    raise
                self.skipped.append(rec.path)
            except (av.error.FFmpegError, OSError, IndexError) as exc:
                if not skip_corrupt:
                    raise InputFileError(f"{rec.path} on the sd card: recording does not decode ({exc})") from exc
                self.skipped.append(rec.path)
        return out

    def export(self, start_s: float, end_s: float, out_path: Path) -> int:
        """Remux ``[start_s, end_s)`` into one MP4 (starting at the keyframe at or before ``start_s``); returns frames."""
        root = self.card.require()
        out_path = Path(out_path)
        n, origin, last_ts = 0, None, -1
        with av.open(str(out_path), "w", format="mp4") as out:
            ost = None
            for rec in self.recordings(start_s, end_s):
                path = card_file(root, rec.path)         # a row naming a path outside the card: refused
                try:
                    with av.open(str(path)) as c:
                        st = c.streams.video[0]
                        if ost is None:
                            ost = out.add_stream_from_template(st)
                            ost.time_base = TIME_BASE
                        t_first, gop = None, []
                        for pk in c.demux(st):
                            if not pk.size:
                                continue
                            t = float(pk.pts * pk.time_base)
                            t_first = t if t_first is None else t_first
                            wall = rec.start_s + (t - t_first)
                            if wall >= end_s:
                                break
                            item = (wall, bytes(pk), float((pk.duration or 0) * pk.time_base), bool(pk.is_keyframe))
                            if wall < start_s:                 # keep only the GOP that covers start_s
                                gop = [item] if item[3] else (gop + [item] if gop else [])
                                continue
                            for w, data, dur, key in gop + [item]:
                                if origin is None:
                                    if not key:
                                        continue
                                    origin = w
                                ts = round((w - origin) * 90000)
                                if ts <= last_ts:
                                    continue
                                p = av.Packet(data)
                                p.pts = p.dts = last_ts = ts
                                p.duration = round(dur * 90000)
                                p.time_base, p.is_keyframe, p.stream = TIME_BASE, key, ost
                                out.mux(p)
                                n += 1
                            gop = []
                except (av.error.FFmpegError, OSError) as exc:
                    raise InputFileError(f"{rec.path} on the sd card: recording does not read ({exc})") from exc
        if n == 0:
            out_path.unlink(missing_ok=True)
            raise CamlabError(f"playback: no footage between {start_s} and {end_s}")
        return n
