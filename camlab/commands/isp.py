"""``camlab isp run``: render a raw frame (DNG/camera RAW, or a headerless dump) to a PNG through the ISP pipeline."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    p = cli.root.add_parser("isp", help="raw Bayer ISP tools", description="raw Bayer ISP tools")
    sub = p.add_subparsers(dest="isp_what", metavar="WHAT")
    sub.required = True
    r = sub.add_parser("run", help="run the ISP on a raw file and write a PNG",
                       description="Run the ISP pipeline on RAW (DNG/camera RAW via LibRaw; a headerless uint16 dump "
                                   "when --width/--height are given) and write the main stream as an sRGB PNG.")
    r.add_argument("raw", help="raw file (.dng, camera RAW, or headerless .raw with --width/--height/--bits/--pattern)")
    r.add_argument("--out", required=True, help="output PNG path")
    r.add_argument("--config", default=None,
                   help="tuning YAML or device name (sc3336_day, sc3336_ir); default: built-in defaults")
    r.add_argument("--width", type=int, default=None, help="headerless: width in pixels")
    r.add_argument("--height", type=int, default=None, help="headerless: height in pixels")
    r.add_argument("--bits", type=int, default=None, help="headerless: bit depth (8..16)")
    r.add_argument("--pattern", default=None, help="headerless: Bayer pattern RGGB|GRBG|GBRG|BGGR")
    r.add_argument("--endianness", default="little", choices=("little", "big"), help="headerless: byte order")
    r.add_argument("--black", type=float, default=None, help="headerless: black level in DN (default 0)")
    r.add_argument("--white", type=float, default=None, help="headerless: white level in DN (default 2^bits-1)")
    r.add_argument("--keep-size", action="store_true",
                   help="write the frame at its own size (even-cropped) instead of the tuning's main size")
    r.add_argument("--fast", action="store_true", help="use the fused fast path")
    r.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from camlab.errors import CamlabError
    from camlab.io_utils import atomic_write_bytes
    from camlab.isp.pipeline import Pipeline, load_tuning
    from camlab.sensor.raw_io import read_raw

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CamlabError(f"--out {out}: expected a .png path")
    headerless = args.width is not None or args.height is not None
    if headerless and None in (args.width, args.height, args.bits, args.pattern):
        raise CamlabError(f"{args.raw}: a headerless raw needs --width, --height, --bits and --pattern")
    if not headerless and args.pattern is not None:
        from camlab.sensor.cfa import parse_pattern

        parse_pattern(args.pattern, "--pattern")
    kwargs = {}
    if headerless:
        kwargs = dict(width=args.width, height=args.height, bits=args.bits, pattern=args.pattern,
                      endianness=args.endianness, black_level=args.black, white_level=args.white)
    frame = read_raw(args.raw, **kwargs)
    cfg = load_tuning(args.config)
    if args.keep_size:
        from dataclasses import replace

        w, h = (frame.width // 2) * 2, (frame.height // 2) * 2
        cfg = replace(cfg, scale=replace(cfg.scale, main=(w, h), fit="stretch"))
    result = Pipeline(cfg, fast=args.fast).run(frame, rgb=True)
    import cv2

    img = np.clip(np.rint(result.rgb * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img[..., ::-1])
    if not ok:
        raise CamlabError(f"--out {out}: PNG encoding failed")
    atomic_write_bytes(out, buf.tobytes())
    total = sum(result.timings_ms.values())
    print(f"{out}: {img.shape[1]}x{img.shape[0]} from {frame.width}x{frame.height} {frame.pattern} "
          f"{frame.bits}-bit, WB {tuple(round(g, 3) for g in result.stats['awb_gains'])}, {total:.0f} ms")
    return 0
