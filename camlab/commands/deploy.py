"""``camlab export detector|cry`` (checkpoint -> INT8 firmware bundle) and ``camlab validate`` (chip checklist)."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    for kind, what in (("detector", "person/pet/vehicle detector"), ("cry", "baby-cry detector")):
        p = cli.group("export").add_parser(
            kind, help=f"INT8-quantize the {what} and write exports/{kind}/<version>/",
            description=f"Export a {what} checkpoint to a static ONNX, quantize it to INT8 QDQ with real "
                        "camera-domain calibration data, compare FP32 vs INT8, validate it for every chip profile "
                        "and write the bundle (model.onnx, model_fp32.onnx, manifest.json, calibration sample), "
                        "registered in the MLflow model registry.")
        p.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
        p.add_argument("--chip", default="rv1106", help="target chip profile (rv1106, ssc337de, ssc377, t40xp)")
        p.add_argument("--out", default=None, help="exports root (default: exports/ or $CAMLAB_EXPORTS)")
        p.add_argument("--calib", type=int, default=None, help="calibration sample count")
        p.add_argument("--no-eval", action="store_true", help="skip the FP32-vs-INT8 task metric")
        p.add_argument("--no-rknn", action="store_true", help="skip the RKNN-Toolkit2 oracle")
        p.add_argument("--stage", choices=("dev", "release", "demo"), default="dev",
                       help="MLflow registry tag 'stage' of the model version (release and demo also move the "
                            "alias of that name to it; default: dev)")
        p.set_defaults(func=_export, kind=kind)

    v = cli.root.add_parser(
        "validate", help="check an export bundle against a chip profile; non-zero exit on any violation",
        description="Verify the bundle (schema, sha256), then run the chip checklist on model.onnx: ONNX full "
                    "check, opset/IR, static shapes, banned/unsupported ops, QDQ rules, decode-in-graph, "
                    "efficiency rules and RAM/flash budgets. Each violation names the node and the rule.")
    v.add_argument("bundle", help="bundle folder exports/<model>/<version>")
    v.add_argument("--chip", required=True, help="chip profile name or YAML path")
    v.add_argument("--json", default=None, help="write the report JSON here")
    v.set_defaults(func=_validate)


def _export(args: argparse.Namespace) -> int:
    import json

    from camlab.contract.manifest import load_bundle
    from camlab.deploy.export import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.chip, args.out, kind=args.kind, calib_count=args.calib,
                             evaluate=not args.no_eval, oracle=not args.no_rknn, stage=args.stage)
    m = load_bundle(path).manifest
    print(json.dumps({"bundle": str(path), "metrics": m["metrics"], "validation": m["validation"],
                      "npu_latency_ms": {c: v["npu_latency_ms"] for c, v in m["cost"]["per_chip"].items()},
                      "mlflow_run_id": m["provenance"]["mlflow_run_id"]}, indent=1))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from camlab.deploy.validate import format_report, validate_bundle, write_report

    rep = validate_bundle(args.bundle, args.chip)
    if args.json:
        write_report(rep, args.json)
    print(format_report(rep))
    return 0 if rep.passed else 1
