"""``python -m device_sim run --bundle B [--bundle B2] --scenario S --chip NAME --out DIR``: run the simulated camera.

Writes ``DIR/report.json`` (keys documented in :mod:`device_sim.budgets.report`), ``DIR/report.html`` and
``DIR/events.jsonl``. Bad input (a scenario naming a missing file, a bundle failing validation, a chip the bundle was
not built for) stops before the first frame with one line naming the file/field; exit code 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from camlab.errors import CamlabError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"width and height must be > 0, got {text!r}")
    return w, h


def _positive(text: str) -> float:
    """A finite number > 0 (frame rates, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m device_sim", description="The simulated camera.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario and write the budget report")
    r.add_argument("--bundle", action="append", required=True, help="export bundle folder (repeat for a second)")
    r.add_argument("--scenario", required=True, help="scenario YAML (datasets/scenarios/*.yaml)")
    r.add_argument("--chip", required=True, help="chip profile name (camlab/deploy/chips/NAME.yaml)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--main-size", type=_size, default=(1920, 1080), help="main stream size, default 1920x1080")
    r.add_argument("--main-fps", type=_positive, default=20.0)
    r.add_argument("--sub-fps", type=_positive, default=15.0)
    r.add_argument("--ai-fps", type=_positive, default=15.0)
    r.add_argument("--duration", type=_positive, default=None, help="seconds to run (default: the scenario's)")
    r.add_argument("--clock", choices=("sim", "real"), default="sim")
    r.add_argument("--data-root", default=None, help="root the scenario's paths are relative to")
    r.add_argument("--record", default=None, metavar="DIR", help="record the main stream to a TF card folder")
    r.add_argument("--clips", default=None, metavar="DIR", help="write an encrypted HLS clip per AI event")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from device_sim.camera import CameraSettings, run_scenario
        try:
            cs = CameraSettings(main_size=args.main_size, main_fps=args.main_fps, sub_fps=args.sub_fps,
                                ai_fps=args.ai_fps, clock=args.clock)
        except ValueError as exc:
            raise CamlabError(f"camera settings: {exc}") from None
        rep = run_scenario(args.bundle, args.scenario, args.chip, args.out, settings=cs,
                           data_root=args.data_root, duration_s=args.duration, record_sd=args.record,
                           clips_dir=args.clips)
    except CamlabError as exc:
        print(f"device_sim: error: {exc}", file=sys.stderr)
        return 2
    keys = ("real_time_factor", "event_latency_p95_ms", "ai_fps", "main_stream_fps", "main_stream_height",
            "sub_stream_fps")
    print(json.dumps({k: rep[k] for k in keys}))
    print(f"report: {args.out}/report.json, {args.out}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
