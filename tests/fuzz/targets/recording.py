"""MP4 recordings read back from the SD card (untrusted: a card can be corrupted, swapped or forged):
``device_sim.storage.mux.probe_mp4`` demuxes and decodes them (what reconcile and playback rely on)."""
from __future__ import annotations

INSTRUMENT = ("device_sim.storage.mux",)


def setup():
    import os
    import tempfile

    from camlab.errors import InputFileError
    from device_sim.storage.mux import probe_mp4
    fd, path = tempfile.mkstemp(prefix="camlab-fuzz-", suffix=".mp4")
    os.close(fd)
    import atexit
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))

    def one(data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data)
        probe_mp4(path)
    return one, (InputFileError,)


def _mp4(fmt: str, n: int = 6) -> bytes:
    import io

    from device_sim.storage.mux import PacketMuxer, StreamTemplate
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(32, 32, fps=5, gop=3, n_gops=2)
    pkts = list(src.packets(0.0, n / 5))
    buf = io.BytesIO()
    mux = PacketMuxer(buf, fmt, StreamTemplate(src.info, pkts[0].data))
    for p in pkts:
        mux.add(p)
    mux.close()
    return buf.getvalue()


def seeds() -> dict[str, bytes]:
    good = _mp4("mp4")
    return {"recording": good, "truncated": good[:len(good) // 2], "header-only": good[:64],
            "zeroed-tail": good[:len(good) // 2] + bytes(len(good) - len(good) // 2)}
