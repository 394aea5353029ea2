"""``make models``: the release models — full budgets on the full data, INT8 bundles into exports/, validation.

Unattended on 2 cores (detector full budget <= 60 min, cry full budget <= 20 min, exports a few minutes). Prints the
figures the README quotes and writes them, with split and counts, to ``exports/release.json``. Restartable: the
detector resumes from ``out/detector/full/last.pt`` (a finished run is evaluated again, not retrained), so an
interrupted job picks up where it stopped; the minutes each stage took are recorded from its own history.
"""
from __future__ import annotations

import json
import time

from camlab import settings, tracking
from camlab.errors import CamlabError
from camlab.io_utils import atomic_write_json


def main(chip: str = "rv1106") -> int:
    from camlab.deploy.export import export_checkpoint
    from camlab.deploy.validate import validate_bundle
    from camlab.train import cry, detector

    if not settings.has_full_data():
        raise CamlabError(f"make models needs the full data: {settings.data_root()} has no images/ and audio/ "
                          "(set CAMLAB_DATA)")
    t0 = time.perf_counter()
    out: dict = {"chip": chip, "data_root": str(settings.data_root()), "git_commit": tracking.git_commit()}
    with tracking.run("release", run_name="make-models"):
        det = detector.train(detector.load_train_config(detector.RELEASE_RECIPE))
        det_eval = det.eval if det.eval is not None else _evaluate_detector(det.checkpoint)
        out["detector"] = {"checkpoint": str(det.checkpoint), "eval": det_eval, "counts": det.counts,
                           "train_min": round(sum(r.get("epoch_s", 0.0) for r in det.history) / 60, 1),
                           "epochs": len(det.history),
                           "this_invocation_min": round((time.perf_counter() - t0) / 60, 1)}
        t1 = time.perf_counter()
        cr = cry.train(cry.load_train_config(cry.RELEASE_RECIPE))
        out["cry"] = {"checkpoint": str(cr.checkpoint), "metrics": cr.metrics,
                      "train_min": round((time.perf_counter() - t1) / 60, 1)}
        for kind, ckpt in (("detector", det.checkpoint), ("cry", cr.checkpoint)):
            bundle = export_checkpoint(ckpt, chip=chip, stage="release")
            rep = validate_bundle(bundle, chip)
            manifest = json.loads((bundle / "manifest.json").read_text())
            out[kind].update({"bundle": str(bundle), "violations": len(getattr(rep, "violations", [])),
                              "bundle_metrics": manifest.get("metrics"), "cost": manifest.get("cost")})
    out["total_min"] = round((time.perf_counter() - t0) / 60, 1)
    from camlab.eval.detection import check_targets, verdict_table

    out["detector"]["targets"] = check_targets(det_eval)
    path = settings.exports_root() / "release.json"
    atomic_write_json(path, json.loads(json.dumps(out, default=str)))
    met = sum(bool(c["met"]) for c in out["detector"]["targets"].values())
    print(f"release detector vs its targets (validation split, federated labels; {met}/"
          f"{len(out['detector']['targets'])} met):")
    print(verdict_table(out["detector"]["targets"]))
    print(f"every figure: {path}  (benchmarks: make bench -> benchmarks/results/detector.json)")
    return 0


def _evaluate_detector(checkpoint) -> dict:
    """The validation figures of a detector whose training had already finished (resumed at its last epoch)."""
    from camlab.eval.detection import evaluate
    from camlab.train import detector

    cfg = detector.load_train_config(detector.RELEASE_RECIPE)
    _, val, _ = detector.load_data(cfg)
    ev = evaluate(str(checkpoint), val, hog=cfg.eval_hog, show_progress=True)
    return {k: v for k, v in ev.items() if k != "details"}
