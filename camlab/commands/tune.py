"""``camlab tune isp``: search the ISP tuning with Optuna (Akiba et al., KDD 2019) against ground truth (PSNR),
colour accuracy (CIEDE2000) or the release detector, trials in an RDB store shared by worker processes (Tseng et al.,
SIGGRAPH 2019; Mosleh et al., CVPR 2020). The work is in :mod:`camlab.isp.tune`; this module only parses."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    p = cli.root.add_parser("tune", help="automatic tuning (Optuna studies)", description="automatic tuning")
    sub = p.add_subparsers(dest="tune_what", metavar="WHAT")
    sub.required = True
    t = sub.add_parser(
        "isp", help="search the ISP tuning file against an objective",
        description="Black-box search of the ISP tuning (NR strengths and radii, 3D-DNR blend and motion thresholds, "
                    "sharpening amount/coring, CCM saturation, tone curve, demosaic method) with Optuna. Trials are "
                    "kept in an RDB store: run the same command on other machines against one PostgreSQL URL and "
                    "their workers join the study (--worker-only on all but one). The chosen tuning is written as a "
                    "new YAML (never over a shipped one) and compared with the base tuning on held-out images.")
    t.add_argument("--objective", choices=("psnr", "deltaE", "detection", "detection_recall"), default=None,
                   help="psnr: display PSNR vs unprocessed ground truth (default); deltaE: CIEDE2000 on the colour "
                        "chart DNG; detection: release detector person AP50 on night renders; detection_recall: "
                        "its person presence recall at <= 2 %% false positives on them")
    t.add_argument("--trials", type=int, default=None, help="total trials the study should hold (default 40)")
    t.add_argument("--storage", default=None, help="RDB URL of the study (default sqlite:///tune.db)")
    t.add_argument("--study", dest="study_name", default=None, help="study name (default isp-<objective>-iso<ISO>)")
    t.add_argument("--workers", type=int, default=None, help="local worker processes (default 1)")
    t.add_argument("--space", default=None, help="search-space YAML (default camlab/isp/tune/default_space.yaml)")
    t.add_argument("--iso", type=float, default=None, help="sensor ISO of the test frames (default 3200)")
    t.add_argument("--base", default=None, help="tuning to start from and compare with (default sc3336_day)")
    t.add_argument("--sampler", choices=("tpe", "cmaes", "nsga2", "numbered"), default=None,
                   help="Optuna sampler (default tpe; numbered: random draws fixed by trial number, for timing workers)")
    t.add_argument("--multi-objective", action="store_true", default=None,
                   help="add the fast path's CPU per frame (ratio to the base tuning) as a second objective (Pareto "
                        "front)")
    t.add_argument("--cost-constraint", dest="cost_constraint", action="store_true", default=None,
                   help="one objective, the fast path's CPU ratio to the base tuning a constraint (<= 1.10): the "
                        "best quality the cost limit allows")
    t.add_argument("--refine-trials", dest="refine_trials", type=int, default=None,
                   help="after the trials, this many more by CMA-ES around the best feasible trial's continuous "
                        "parameters, its discrete choices fixed (default 0; single objective only)")
    t.add_argument("--images", dest="n_tune_images", type=int, default=None, help="tuning images (default 12)")
    t.add_argument("--heldout", dest="n_heldout_images", type=int, default=None,
                   help="held-out images for the final check (default 24)")
    t.add_argument("--detection-images", dest="n_detection_images", type=int, default=None,
                   help="detection objective: images searched on (default 12)")
    t.add_argument("--detection-side", dest="detection_side", choices=("val", "train"), default=None,
                   help="split side the detection search renders (default val; train: the held-out check then "
                        "uses the validation side's first images, which the search never sees)")
    t.add_argument("--detection-offset", dest="detection_offset", type=int, default=None,
                   help="first image of the detection search in that side's person-labelled interleave (default 0)")
    t.add_argument("--detection-heldout", dest="n_detection_heldout", type=int, default=None,
                   help="held-out detection images (default: as many as searched on, with --objective detection)")
    t.add_argument("--detection-renders", dest="detection_renders", type=int, default=None,
                   help="noise draws per detection image in the search, each scored as an image (default 1)")
    t.add_argument("--detection-heldout-renders", dest="detection_heldout_renders", type=int, default=None,
                   help="noise draws per held-out detection image (default 1)")
    t.add_argument("--detector", default=None, help="detector bundle dir or checkpoint (default: newest release)")
    t.add_argument("--max-side", dest="max_side", type=int, default=None, help="image long side (default 256)")
    t.add_argument("--defect-ppm", dest="defect_ppm", type=float, default=None,
                   help="defective photosites per million in the quality scenes (default 300)")
    t.add_argument("--defect-guard-ppm", dest="defect_guard_ppm", type=float, default=None,
                   help="defective photosites per million in the defect guard's own scenes (default 3000; 0 = "
                        "the guard counts on the quality scenes)")
    t.add_argument("--warm-start", dest="warm_start", action="append", default=None, metavar="TUNING_YAML",
                   help="measure this tuning file's point in the search space as a trial before any sampled one "
                        "(repeatable; e.g. the previous tuned file)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--out", default=None, help="tuned YAML (default camlab/isp/tuning/sc3336_night_tuned.yaml)")
    t.add_argument("--config", default=None, help="TuneConfig YAML (flags override it)")
    t.add_argument("--no-mlflow", dest="mlflow", action="store_false", default=None, help="do not log to MLflow")
    t.add_argument("--worker-only", dest="worker_only", action="store_true", default=None,
                   help="only run trials (an extra machine); no tuned YAML, held-out check or MLflow")
    t.add_argument("--json", default=None, help="also write the summary as JSON here")
    t.set_defaults(func=_tune_isp)


FIELDS = ("objective", "trials", "storage", "study_name", "workers", "space", "iso", "base", "sampler",
          "multi_objective", "cost_constraint", "refine_trials",
          "n_tune_images", "n_heldout_images", "n_detection_images", "detection_side", "detection_offset",
          "n_detection_heldout", "detection_renders", "detection_heldout_renders", "detector", "max_side",
          "defect_ppm", "defect_guard_ppm", "warm_start", "seed", "out", "mlflow", "worker_only")


def _tune_isp(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from camlab.io_utils import atomic_write_text
    from camlab.isp.tune.study import METRIC, load_tune_config, tune

    cfg = load_tune_config(args.config, **{k: getattr(args, k) for k in FIELDS})
    result = tune(cfg)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
    if not cfg.worker_only:
        h = result["heldout"]
        metric = METRIC[cfg.objective]
        print(f"[tune] {result['tuned_yaml']}: held-out {metric} {h['shipped'].get(metric)} -> "
              f"{h['tuned'].get(metric)} over {cfg.base}; fast-path CPU x{result['cpu_cost_ratio_tuned_vs_shipped']}")
    return 0
