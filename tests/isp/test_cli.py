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

    img = cv2.imread(str(out))
    assert img.shape == (1080, 1920, 3) and 20 < img.mean() < 200
