"""``camlab demo`` (make demo) and ``camlab models`` (make models)."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    p = cli.root.add_parser("demo", help="the main job end to end on the demo data, ending in a budget report",
                            description="ISP -> train (demo budget) -> INT8 export -> validate -> device_sim -> "
                                        "HTML budget report + one MLflow parent run.")
    p.add_argument("--out", default=None, help="output folder (default: out/demo)")
    p.add_argument("--budget", default=None, help="budget YAML (default: camlab/configs/budget.yaml)")
    p.add_argument("--chip", default="rv1106", help="chip profile to export and validate for")
    p.add_argument("--scenario", default=None, help="device_sim scenario YAML (default: demo_garden on the slice, porch_day_night with CAMLAB_DATA)")
    p.add_argument("--scenario-seconds", type=float, default=None, help="cut the scenario to this many seconds")
    p.add_argument("--smoke", action="store_true", help="shrink every budget to seconds (tests); figures meaningless")
    p.set_defaults(func=_demo)

    m = cli.root.add_parser("models", help="train, export and validate the release models on the full data",
                            description="Full budgets on the full data (CAMLAB_DATA or ../shared/data): both models, "
                                        "INT8 bundles into exports/, validation, figures printed.")
    m.add_argument("--chip", default="rv1106")
    m.set_defaults(func=_models)


def _demo(args: argparse.Namespace) -> int:
    from camlab import demo

    return demo.main(out_dir=args.out, smoke=args.smoke, budget=args.budget, chip=args.chip,
                     scenario=args.scenario, scenario_seconds=args.scenario_seconds)


def _models(args: argparse.Namespace) -> int:
    from camlab import release

    return release.main(chip=args.chip)
