"""``camlab train detector`` and ``camlab eval detector``: the person/pet/vehicle detector's run and its JSON metrics."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    t = cli.group("train").add_parser(
        "detector", help="train the person/pet/vehicle detector (MLflow-logged; torchrun-ready)",
        description="Train CamDet on the split manifest datasets/detector_split.json (built from ../shared/data "
                    "when missing) with camera-domain rendering through camlab.sensor + camlab.isp. Prints the "
                    "checkpoint path, the MLflow run id and the metrics. Runs unchanged under "
                    "`torchrun --nproc_per_node N -m camlab.cli train detector ...`.")
    t.add_argument("--config", default=None,
                   help="training YAML, or a built-in name: detector_demo (<= 5 min) or detector_full "
                        "(<= 60 min on 2 cores); default: detector_demo")
    t.add_argument("--out", default=None, help="checkpoint folder (default: the config's out_dir)")
    t.add_argument("--resume", default=None, help="checkpoint to resume from, or 'auto' (OUT/last.pt)")
    t.set_defaults(func=_train)

    e = cli.group("eval").add_parser(
        "detector", help="evaluate a detector checkpoint or export bundle on YOLO folders, write JSON",
        description="COCO AP50 and AP50:95 per class (pycocotools), per-image presence recall/precision and "
                    "false-positive rate, counts, and the OpenCV HOG person anchor on the same images. --data "
                    "takes YOLO folders (images/, labels/, classes.txt; or a folder holding several), Oxford-Pet "
                    "folders, or a split manifest (datasets/detector_split.json = its val side; append ':train' "
                    "for the train side).")
    e.add_argument("--model", required=True, help="a detector checkpoint (.pt) or an export bundle folder")
    e.add_argument("--data", required=True, action="append", help="YOLO folder or split manifest (repeatable)")
    e.add_argument("--json", required=True, help="output JSON path")
    e.add_argument("--variant", default="int8", choices=("int8", "fp32"), help="bundle: which model file to run")
    e.add_argument("--no-anchor", action="store_true", help="skip the HOG anchor (anchors: {})")
    e.add_argument("--threads", type=int, default=1, help="torch/onnxruntime threads (default 1)")
    e.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    import json
    import os

    from camlab.train.detector import train

    overrides = {}
    if args.out:
        overrides["out_dir"] = args.out
    if args.resume:
        overrides["resume"] = args.resume
    result = train(args.config or "detector_demo", overrides=overrides or None)
    if os.environ.get("RANK", "0") != "0":      # under torchrun only rank 0 reports
        return 0
    print(json.dumps({"checkpoint": str(result.checkpoint), "mlflow_run_id": result.run_id,
                      "counts": result.counts, "metrics": result.metrics, "eval": result.eval},
                     indent=2, default=str))
    return 0


def unlabelled_folders(data: list[str]) -> list:
    """The YOLO folders among (or below) the ``--data`` folders that have no ``labels/``: the loader reads every
    image there as a negative. Split manifests (``*.json``) are not folders and are skipped."""
    from pathlib import Path

    from camlab.data.yolo import find_yolo_folders

    out = []
    for item in data:
        path = Path(item.rsplit(":", 1)[0] if ".json:" in item else item)
        if path.suffix == ".json" or not path.is_dir():
            continue
        out += [f for f in find_yolo_folders(path) if not (f / "labels").is_dir()]
    return out


def _eval(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from camlab.errors import CamlabError
    from camlab.eval.detection import evaluate, evaluate_bundle, write_json

    for folder in unlabelled_folders(args.data):
        print(f"camlab: warning: {folder}: no labels/ folder: every image there counts as a negative (no objects), "
              "so its false positives count and its objects cannot be found", file=sys.stderr)
    import torch

    torch.set_num_threads(max(1, args.threads))
    model = Path(args.model)
    if not model.exists():
        raise CamlabError(f"--model {model}: no such checkpoint or bundle folder")
    if model.is_dir():
        result = evaluate_bundle(model, args.data, args.variant, hog=not args.no_anchor, show_progress=True)
    else:
        result = evaluate(model, args.data, hog=not args.no_anchor, show_progress=True)
    write_json(result, Path(args.json))
    print(json.dumps({k: result[k] for k in ("classes", "anchors", "map50", "n_images", "n_skipped")}, indent=2))
    return 0
