"""``camlab isp run``: real files render; bad input gives one clear error and exit code 2, no traceback."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.cli import main


def _headerless(path, h=48, w=64, value=600):
    rng = np.random.default_rng(0)
    data = (value + rng.integers(0, 200, (h, w))).astype("<u2")
    path.write_bytes(data.tobytes())
    return path


def _run(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_headerless_roundtrip(tmp_path, capsys):
    raw = _headerless(tmp_path / "f.raw")
    out = tmp_path / "o.png"
    code, o, e = _run(["isp", "run", str(raw), "--out", str(out), "--width", "64", "--height", "48", "--bits", "12",
                       "--pattern", "grbg", "--keep-size"], capsys)
    assert code == 0, e
    import cv2

    img = cv2.imread(str(out))
    assert img.shape == (48, 64, 3)


@pytest.mark.parametrize("case, expect", [
    ("truncated", "truncated"),
    ("oversized", "oversized"),
    ("pattern", "unknown Bayer pattern"),
    ("missing_dims", "needs --width, --height, --bits and --pattern"),
    ("nan_config", "NaN"),
    ("unknown_key", "unknown key 'sharpen.amout'"),
    ("bad_dng", "LibRaw cannot open"),
    ("missing", "not found"),
])
def test_bad_input_is_one_clear_error(tmp_path, capsys, case, expect):
    raw = _headerless(tmp_path / "f.raw")
    args = ["isp", "run", str(raw), "--out", str(tmp_path / "o.png"), "--width", "64", "--height", "48",
            "--bits", "12", "--pattern", "RGGB"]
    if case == "truncated":
        raw.write_bytes(raw.read_bytes()[:-10])
    elif case == "oversized":
        raw.write_bytes(raw.read_bytes() + b"\0\0")
    elif case == "pattern":
        args[args.index("RGGB")] = "RGBG"
    elif case == "missing_dims":
        args = args[:9]  # width and height but no bits/pattern
    elif case == "nan_config":
        (tmp_path / "t.yaml").write_text("tone:\n  contrast: .nan\n")
        args += ["--config", str(tmp_path / "t.yaml")]
    elif case == "unknown_key":
        (tmp_path / "t.yaml").write_text("sharpen:\n  amout: 2\n")
        args += ["--config", str(tmp_path / "t.yaml")]
    elif case == "bad_dng":
        (tmp_path / "x.dng").write_bytes(b"II*\0not a dng at all" * 10)
        args = ["isp", "run", str(tmp_path / "x.dng"), "--out", str(tmp_path / "o.png")]
    elif case == "missing":
        args[2] = str(tmp_path / "nope.raw")
    code, o, e = _run(args, capsys)
    assert code == 2
    assert expect in e and "Traceback" not in e and e.count("\n") == 1, e
    assert not (tmp_path / "o.png").exists()


def test_real_dng_renders(shared_data, tmp_path, capsys):
    out = tmp_path / "chart.png"
    code, o, e = _run(["isp", "run", str(shared_data / "raw" / "colorchart.dng"), "--out", str(out), "--fast"],
                      capsys)
    assert code == 0, e
    import cv2

    from camlab.sensor.raw_io import read_raw

    frame = read_raw(shared_data / "raw" / "colorchart.dng")
    img = cv2.imread(str(out))  # the frame's own size (even-cropped), not scaled to a stream size
    assert img.shape == (frame.height // 2 * 2, frame.width // 2 * 2, 3) and 20 < img.mean() < 200


_HEADERLESS = ["--width", "64", "--height", "48", "--bits", "12", "--pattern", "RGGB"]


def test_headerless_without_black_warns_and_says_the_level(tmp_path, capsys):
    raw = _headerless(tmp_path / "f.raw")
    code, o, e = _run(["isp", "run", str(raw), "--out", str(tmp_path / "a.png"), *_HEADERLESS], capsys)
    assert code == 0 and "warning: no --black given: black level 0 DN assumed" in e and "black 0" in o
    code, o, e = _run(["isp", "run", str(raw), "--out", str(tmp_path / "b.png"), *_HEADERLESS, "--black", "600"],
                      capsys)
    assert code == 0 and e == "" and "black 600" in o


def test_native_size_by_default_and_the_stream_size_on_request(tmp_path, capsys):
    import cv2

    raw = _headerless(tmp_path / "f.raw")
    code, o, e = _run(["isp", "run", str(raw), "--out", str(tmp_path / "n.png"), *_HEADERLESS, "--black", "600"],
                      capsys)
    assert code == 0 and cv2.imread(str(tmp_path / "n.png")).shape == (48, 64, 3)
    code, o, e = _run(["isp", "run", str(raw), "--out", str(tmp_path / "m.png"), *_HEADERLESS, "--black", "600",
                       "--scale-to-main"], capsys)
    assert code == 0 and cv2.imread(str(tmp_path / "m.png")).shape == (1080, 1920, 3)
    assert "scaled to the tuning's main stream 1920x1080" in o


@pytest.mark.parametrize("bits, packing", [(10, "mipi_raw10"), (12, "mipi_raw12")])
def test_mipi_packed_input_renders_like_the_unpacked_words(tmp_path, capsys, bits, packing):
    from camlab.sensor.raw_io import pack_mipi_raw10, pack_mipi_raw12

    rng = np.random.default_rng(1)
    data = rng.integers(0, 1 << bits, (48, 64)).astype(np.uint16)
    (tmp_path / "u16.raw").write_bytes(data.astype("<u2").tobytes())
    pack = pack_mipi_raw10 if bits == 10 else pack_mipi_raw12
    (tmp_path / "mipi.raw").write_bytes(pack(data))
    common = ["--width", "64", "--height", "48", "--bits", str(bits), "--pattern", "RGGB", "--black", "16"]
    assert _run(["isp", "run", str(tmp_path / "u16.raw"), "--out", str(tmp_path / "a.png"), *common], capsys)[0] == 0
    code, o, e = _run(["isp", "run", str(tmp_path / "mipi.raw"), "--out", str(tmp_path / "b.png"), *common,
                       "--packing", packing], capsys)
    assert code == 0, e
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_packing_needs_a_headerless_raw(tmp_path, capsys):
    code, o, e = _run(["isp", "run", str(tmp_path / "x.dng"), "--out", str(tmp_path / "o.png"),
                       "--packing", "mipi_raw10"], capsys)
    assert code == 2 and "--packing applies to a headerless raw" in e


def test_nv12_output_and_stage_taps(tmp_path, capsys):
    raw = _headerless(tmp_path / "f.raw")
    code, o, e = _run(["isp", "run", str(raw), "--out", str(tmp_path / "o.nv12"), *_HEADERLESS, "--black", "600",
                       "--taps", str(tmp_path / "taps")], capsys)
    assert code == 0, e
    assert (tmp_path / "o.nv12").stat().st_size == 64 * 48 * 3 // 2 and "NV12" in o
    taps = sorted(p.name for p in (tmp_path / "taps").glob("*.png"))
    assert "demosaic.png" in taps and "blc.png" in taps
