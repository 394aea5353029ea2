"""``camlab isp run``: render a raw frame (DNG/camera RAW, or a headerless dump) through the ISP pipeline to a PNG or
an NV12 file, at the frame's own size unless ``--scale-to-main``; optional PNGs of every stage (``--taps``)."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    p = cli.root.add_parser("isp", help="raw Bayer ISP tools", description="raw Bayer ISP tools")
    sub = p.add_subparsers(dest="isp_what", metavar="WHAT")
    sub.required = True
    r = sub.add_parser("run", help="run the ISP on a raw file and write a PNG or NV12",
                       description="Run the ISP pipeline on RAW (DNG/camera RAW via LibRaw; a headerless dump when "
                                   "--width/--height are given: 16-bit words, or MIPI RAW10/RAW12 with --packing) and "
                                   "write the main stream at the frame's own size (even-cropped) as an sRGB PNG, or "
                                   "as NV12 when --out ends in .nv12 or .yuv.")
    r.add_argument("raw", help="raw file (.dng, camera RAW, or headerless .raw with --width/--height/--bits/--pattern)")
    r.add_argument("--out", required=True, help="output .png (sRGB) or .nv12/.yuv (NV12: Y plane, then interleaved "
                                                "UV at half resolution)")
    r.add_argument("--config", default=None,
                   help="tuning YAML or device name (sc3336_day, sc3336_ir); default: built-in defaults")
    r.add_argument("--width", type=int, default=None, help="headerless: width in pixels")
    r.add_argument("--height", type=int, default=None, help="headerless: height in pixels")
    r.add_argument("--bits", type=int, default=None, help="headerless: bit depth (8..16; 10 or 12 with MIPI packing)")
    r.add_argument("--pattern", default=None, help="headerless: Bayer pattern RGGB|GRBG|GBRG|BGGR")
    r.add_argument("--endianness", default="little", choices=("little", "big"), help="headerless u16: byte order")
    r.add_argument("--packing", default="u16", choices=("u16", "mipi_raw10", "mipi_raw12"),
                   help="headerless: one 16-bit word per pixel (default), or MIPI CSI-2 RAW10/RAW12 packed lines")
    r.add_argument("--stride", type=int, default=None, help="headerless: bytes per line when lines are padded")
    r.add_argument("--black", type=float, default=None,
                   help="headerless: black level (pedestal) in DN; without it 0 is assumed and a warning printed "
                        "(most sensors have one, e.g. 64 DN at 10 bits, 256 at 12: 0 renders hazy)")
    r.add_argument("--white", type=float, default=None, help="headerless: white level in DN (default 2^bits-1)")
    r.add_argument("--scale-to-main", action="store_true",
                   help="scale to the tuning's main stream size (1920x1080 by default) instead of the frame's own")
    r.add_argument("--keep-size", action="store_true", help="the frame's own size (the default; kept for scripts)")
    r.add_argument("--taps", default=None, metavar="DIR",
                   help="also write every stage's output as DIR/<stage>.png (reference path)")
    r.add_argument("--fast", action="store_true", help="use the fused fast path")
    r.set_defaults(func=_run)


NV12_SUFFIXES = (".nv12", ".yuv")


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from camlab.errors import CamlabError
    from camlab.io_utils import atomic_write_bytes
    from camlab.isp.pipeline import Pipeline, at_frame_size, load_tuning
    from camlab.sensor.raw_io import read_raw

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix != ".png" and suffix not in NV12_SUFFIXES:
        raise CamlabError(f"--out {out}: expected a .png, .nv12 or .yuv path")
    if args.scale_to_main and args.keep_size:
        raise CamlabError("--scale-to-main and --keep-size contradict each other")
    if args.taps and args.fast:
        raise CamlabError("--taps needs the reference path (drop --fast)")
    headerless = args.width is not None or args.height is not None
    if not headerless and (args.packing != "u16" or args.stride is not None):
        raise CamlabError("--packing applies to a headerless raw (give --width, --height, --bits, --pattern)")
    if headerless and None in (args.width, args.height, args.bits, args.pattern):
        raise CamlabError(f"{args.raw}: a headerless raw needs --width, --height, --bits and --pattern")
    if not headerless and args.pattern is not None:
        from camlab.sensor.cfa import parse_pattern

        parse_pattern(args.pattern, "--pattern")
    kwargs = {}
    if headerless:
        kwargs = dict(width=args.width, height=args.height, bits=args.bits, pattern=args.pattern,
                      endianness=args.endianness, black_level=args.black, white_level=args.white,
                      packing=args.packing, stride=args.stride)
    frame = read_raw(args.raw, **kwargs)
    cfg = load_tuning(args.config)
    if headerless and args.black is None:
        print("camlab: warning: no --black given: black level 0 DN assumed; a sensor with a pedestal (most have one, "
              "e.g. 64 DN at 10 bits, 256 at 12) renders hazy and colour-shifted", file=sys.stderr)
    if not args.scale_to_main:
        cfg = at_frame_size(cfg, frame.width, frame.height)
    result = Pipeline(cfg, fast=args.fast).run(frame, rgb=suffix == ".png", taps=bool(args.taps))
    h_main, w_main = result.main_nv12.shape[0] * 2 // 3, result.main_nv12.shape[1]
    if suffix == ".png":
        atomic_write_bytes(out, _png(result.rgb, f"--out {out}"))
        what = "sRGB PNG"
    else:
        atomic_write_bytes(out, np.ascontiguousarray(result.main_nv12).tobytes())
        what = f"NV12 ({w_main}x{h_main} Y plane, then interleaved UV at {w_main // 2}x{h_main // 2})"
    if args.taps:
        _write_taps(Path(args.taps), result.taps)
    total = sum(result.timings_ms.values())
    levels = np.atleast_1d(frame.black_levels() if hasattr(frame, "black_levels") else frame.black_level)
    black = f"{float(levels[0]):g}" if np.ptp(levels) == 0 else "/".join(f"{float(v):g}" for v in levels)
    size = (f"scaled to the tuning's main stream {w_main}x{h_main}" if args.scale_to_main
            else f"{w_main}x{h_main} (the frame's own size)")
    print(f"{out}: {what}, {size} from {frame.width}x{frame.height} {frame.pattern} {frame.bits}-bit, black {black}, "
          f"WB {tuple(round(g, 3) for g in result.stats['awb_gains'])}, {total:.0f} ms"
          + (f"; stage taps in {args.taps}" if args.taps else ""))
    return 0


def _png(rgb, what: str) -> bytes:
    """Float RGB in [0, 1] -> PNG bytes."""
    import cv2
    import numpy as np

    from camlab.errors import CamlabError

    img = np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img[..., ::-1] if img.ndim == 3 else img)
    if not ok:
        raise CamlabError(f"{what}: PNG encoding failed")
    return buf.tobytes()


def _write_taps(folder, taps: dict) -> None:
    """Each stage's array as ``<stage>.png``, stretched between its 1st and 99.5th percentiles (chroma: U)."""
    import numpy as np

    from camlab.io_utils import atomic_write_bytes

    for name, arr in taps.items():
        if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3):
            continue
        a = arr.astype(np.float32)
        if a.ndim == 3 and a.shape[2] == 2:
            a = a[..., 0]
        elif a.ndim == 3 and a.shape[2] > 3:
            a = a[..., :3]
        lo, hi = np.percentile(a, 1), np.percentile(a, 99.5)
        atomic_write_bytes(folder / f"{name}.png", _png((a - lo) / max(hi - lo, 1e-6), f"--taps {name}"))
