"""HLS from the cloud or a clip folder: the media playlist (``parse_playlist`` of the player, ``validate_playlist``
of the cloud store) and MPEG-TS segments (``decode_ts``). Selector byte: even = playlist text, odd = a segment."""
from __future__ import annotations

INSTRUMENT = ("device_sim.storage.playback", "device_sim.storage.crypto", "device_sim.services.cloud")


def setup():
    from camlab.errors import CamlabError
    from device_sim.services.cloud import BadRequest, validate_playlist
    from device_sim.storage.playback import decode_ts, parse_playlist

    class Server5xx(Exception):
        pass

    def one(data: bytes) -> None:
        if not data:
            return
        if data[0] % 2:
            decode_ts(data[1:])
            return
        text = data[1:].decode("utf-8", "replace")
        try:
            validate_playlist(text)
        except BadRequest as exc:
            if exc.status >= 500:
                raise Server5xx(str(exc)) from None
        parse_playlist(text)
    return one, (CamlabError,)


def seeds() -> dict[str, bytes]:
    from tests.fuzz.targets.recording import _mp4
    iv = "0x" + "00112233445566778899aabbccddeeff"
    pl = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
          f'#EXT-X-KEY:METHOD=AES-128,URI="camlab-key://0123456789abcdef",IV={iv}\n'
          "#EXTINF:10.000,\nseg00000.ts\n#EXTINF:4.500,\nseg00001.ts\n#EXT-X-ENDLIST\n")
    ts = _mp4("mpegts")
    return {"playlist": b"\x00" + pl.encode(), "playlist-clear": b"\x00" + pl.replace(
        f'#EXT-X-KEY:METHOD=AES-128,URI="camlab-key://0123456789abcdef",IV={iv}\n', "").encode(),
        "playlist-noinf": b"\x00#EXTM3U\nseg00000.ts\n", "segment": b"\x01" + ts, "segment-truncated": b"\x01" + ts[:400]}
