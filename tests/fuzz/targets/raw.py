"""Raw sensor files: DNG / camera RAW through LibRaw (``read_raw``) and headerless dumps (16-bit words, MIPI CSI-2
RAW10 / RAW12 packed lines, ``read_headerless``). Selector byte: low 2 bits = 0 DNG, 1 u16, 2 RAW10, 3 RAW12;
for headerless modes the next byte gives the frame size (width 2..16, height 2..16)."""
from __future__ import annotations

INSTRUMENT = ("camlab.sensor.raw_io", "camlab.sensor.cfa")


def setup():
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from camlab.errors import CamlabError
    from camlab.sensor.raw_io import read_raw
    tmp = Path(tempfile.mkdtemp(prefix="camlab-fuzz-raw-"))
    atexit.register(shutil.rmtree, tmp, True)
    dng, dump = tmp / "frame.dng", tmp / "frame.raw"

    def one(data: bytes) -> None:
        if len(data) < 2:
            return
        mode = data[0] & 3
        if mode == 0:
            dng.write_bytes(data[1:])
            read_raw(dng)
            return
        w, h = 2 * (1 + (data[1] & 7)), 2 * (1 + (data[1] >> 5))
        dump.write_bytes(data[2:])
        packing, bits = {1: ("u16", 12), 2: ("mipi_raw10", 10), 3: ("mipi_raw12", 12)}[mode]
        read_raw(dump, width=w, height=h, bits=bits, pattern="RGGB", packing=packing)
    return one, (CamlabError,)


def seeds() -> dict[str, bytes]:
    import numpy as np

    from camlab.sensor.raw_io import RawFrame, dng_bytes, pack_mipi_raw10, pack_mipi_raw12
    rng = np.random.default_rng(0)
    img = rng.integers(0, 1024, (8, 8), dtype=np.uint16)
    big = rng.integers(0, 4096, (24, 24), dtype=np.uint16)   # LibRaw's smallest raw is 22 x 22
    d = dng_bytes(RawFrame(data=big, pattern="RGGB", black_level=64.0, white_level=4095.0, bits=12))
    size = 3 | (3 << 5)                  # 8 x 8
    return {"dng": b"\x00" + d, "dng-truncated": b"\x00" + d[:200], "u16": bytes([1, size]) + (img * 4).astype("<u2").tobytes(),
            "raw10": bytes([2, size]) + pack_mipi_raw10(img), "raw12": bytes([3, size]) + pack_mipi_raw12(img * 4),
            "u16-short": bytes([1, size]) + bytes(10)}
