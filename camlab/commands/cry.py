"""``camlab train cry`` and ``camlab eval cry``: the baby-cry detector's training run and its JSON evaluation."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    t = cli.group("train").add_parser(
        "cry", help="train the baby-cry detector (MLflow-logged)",
        description="Train the cry detector on ../shared/data/audio (or CAMLAB_DATA, or the embedded demo slice) "
                    "and write a checkpoint; prints the checkpoint path, the MLflow run id and the metrics.")
    t.add_argument("--config", default=None,
                   help="training YAML, or a built-in name: cry_demo (<= 2 min) or cry_full (<= 20 min); "
                        "default: cry_demo")
    t.add_argument("--out", default=None, help="checkpoint folder (default: out/cry/<UTC stamp>)")
    t.set_defaults(func=_train)

    e = cli.group("eval").add_parser(
        "cry", help="evaluate a cry checkpoint or export bundle on cry/ and nocry/ audio, write JSON",
        description="Stream every clip of DIR/cry and DIR/nocry (any format soundfile reads, any sample rate) "
                    "through the model's window/hop/alarm logic and write accuracy, precision, recall, F1, ROC-AUC, "
                    "false alarms per hour, onset-to-alarm time and counts, with the INT8 YAMNet anchor on the "
                    "same clips.")
    e.add_argument("--model", required=True, help="a cry checkpoint (.pt) or an export bundle folder")
    e.add_argument("--data", required=True, help="folder with cry/ and nocry/ subfolders")
    e.add_argument("--json", required=True, help="output JSON path")
    e.add_argument("--variant", default="int8", choices=("int8", "fp32"), help="bundle: which model file to run")
    e.add_argument("--no-anchor", action="store_true", help="skip the YAMNet anchor (anchors: {})")
    e.add_argument("--details", default=None, metavar="CSV",
                   help="also write each clip's score, decision and group (its folder under DIR) to this CSV")
    e.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    import json

    from camlab.train.cry import train

    overrides = {"output_dir": args.out} if args.out else None
    result = train(args.config or "cry_demo", overrides=overrides)
    print(json.dumps({"checkpoint": str(result.checkpoint), "mlflow_run_id": result.run_id,
                      "val_dir": str(result.val_dir) if result.val_dir else None,
                      "metrics": result.metrics}, indent=2, default=str))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from camlab.errors import CamlabError
    from camlab.eval.audio import bundle_scorer, evaluate
    from camlab.io_utils import atomic_write_json

    model = Path(args.model)
    if not model.exists():
        raise CamlabError(f"--model {model}: no such checkpoint or bundle folder")
    scorer = bundle_scorer(model, args.variant) if model.is_dir() else model
    result = evaluate(scorer, args.data, anchors=not args.no_anchor, details_csv=args.details)
    atomic_write_json(Path(args.json), result)
    print(json.dumps(result, indent=2))
    return 0
