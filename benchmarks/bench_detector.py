"""Detector benchmark (issue 19): the release INT8 bundle, the SSD teacher and OpenCV's HOG on the same images, in
the same run, with federated labels; leave-one-source-out runs of the release recipe.

In-domain: the validation side of ``datasets/detector_split.json`` (by source image, seed 0, 20 %). Figures per
class are federated (class c scored only on images whose source labels it, ``datasets/label_sets.yaml``; Gupta et
al., "LVIS", CVPR 2019) with the naive figure beside. Presence thresholds are picked on the *training* split for
<= 2 % false positives (our bundle's are in its manifest; the teacher gets the same rule on a seeded training
subset), so no threshold is read off the images it is scored on. Generalisation: for each held-out source S the
``detector_loso`` recipe trains without S (``data.exclude_sources``) and is scored on every image of S (both sides
of the split: the model never saw S). Anchors: the teacher (MediaPipe SSD-MobileNetV2, Open Images V4; it was trained
on other data, and COCO/Open Images photos may overlap some sources) and HOG (Dalal & Triggs, CVPR 2005).
The previous release bundle (the newest older bundle in ``exports/detector`` with another model, or
``CAMLAB_BENCH_PREVIOUS_DETECTOR``; ``none`` skips it) is scored on the same images under the same rules, so a change
of recipe is judged within one run. Env: ``CAMLAB_DETECTOR_BUNDLE`` (else the newest ``exports/detector/*``
exported from the release checkpoint, or the newest of all when that checkpoint is not here), ``CAMLAB_BENCH_LOSO=0``
skips the leave-one-source-out training, ``CAMLAB_BENCH_LOSO_SOURCES=a,b`` picks the held-out sources (default: all
three), ``CAMLAB_BENCH_LOSO_RECIPE`` trains them with a trial's LOSO recipe (default ``detector_loso``, the
release recipe's; with ``CAMLAB_BENCH_LOSO_REUSE=<recipe>`` a trial that changes only ``calibrate`` re-calibrates
that recipe's finished runs instead of training), ``CAMLAB_BENCH_SMOKE=1`` runs on a few images (figures meaningless).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from camlab.contract.manifest import sha256_file

NAME = "detector"
TARGET_FP = 0.02
LOSO_SOURCES = ("persons_cctv", "coco128", "oxford_pets_more")


def _newest_bundle() -> Path:
    from camlab import settings
    from camlab.deploy.bundle import newest_bundle_of
    from camlab.errors import InputFileError
    from camlab.train import detector

    env = os.environ.get("CAMLAB_DETECTOR_BUNDLE")
    if env:
        return Path(env)
    found = newest_bundle_of(settings.exports_root() / "detector", detector.release_checkpoint())
    if found is None:
        raise InputFileError(f"{settings.exports_root() / 'detector'}: no detector bundle; run `make models`")
    return found


def _previous_bundle(current: Path) -> Path | None:
    """The release bundle before ``current``: the newest (``newest_bundle_of``) created before it that holds another
    model."""
    from camlab import settings
    from camlab.deploy.bundle import bundle_created, newest_bundle_of

    env = os.environ.get("CAMLAB_BENCH_PREVIOUS_DETECTOR")
    if env:
        return None if env == "none" else Path(env)
    mine = sha256_file(current / "model.onnx")
    t_cur = bundle_created(current / "manifest.json")
    return newest_bundle_of(settings.exports_root() / "detector",
                            accept=lambda b: bundle_created(b / "manifest.json") < t_cur
                            and (b / "model.onnx").is_file() and sha256_file(b / "model.onnx") != mine)


def _slim(ev: dict) -> dict:
    keep = ("classes", "classes_naive", "by_source", "anchors", "map50", "map50_95", "presence_thresholds",
            "n_images", "n_skipped", "counts")
    out = {k: ev[k] for k in keep if k in ev}
    curves = ev.get("details", {}).get("pr_curves")
    if curves:   # PR curves thinned to 21 points each (the notebook and report plot them)
        out["pr_curves"] = {k: {"recall": v["recall"][::5], "precision": v["precision"][::5]}
                            for k, v in curves.items()}
    return out


def teacher_thresholds(teacher, train_samples: list) -> tuple[dict, dict]:
    """The teacher's presence thresholds by the same rule as ours (training split, <= 2 % FP, federated)."""
    from camlab.data.classes import CLASSES
    from camlab.eval.detection import calibration_scores, pick_thresholds

    present, best, known, _, _ = calibration_scores(teacher, train_samples)
    thr, rep = pick_thresholds(present, best, TARGET_FP * 0.75, floor=0.05, fp_limited=CLASSES, known=known)
    return dict(zip(CLASSES, thr)), rep


def _loso_env() -> tuple[tuple[str, ...], str]:
    """The held-out sources (``$CAMLAB_BENCH_LOSO_SOURCES``, default all three) and the LOSO recipe
    (``$CAMLAB_BENCH_LOSO_RECIPE``, default the release recipe's ``detector_loso``)."""
    chosen = os.environ.get("CAMLAB_BENCH_LOSO_SOURCES")
    return (tuple(chosen.split(",")) if chosen else LOSO_SOURCES,
            os.environ.get("CAMLAB_BENCH_LOSO_RECIPE", "detector_loso"))


def loso_config(src: str, recipe: str = "detector_loso", *, smoke: bool = False):
    """The training config of the run without ``src``: ``recipe`` with the source excluded, its own output folder
    (``out/detector/loso_<src>`` for the release recipe's, ``out/detector/<recipe>_<src>`` for a trial's) and no
    resume (a finished run left by an older commit must not stand in for this one's training)."""
    from camlab.train import detector

    out_dir = f"out/detector/loso_{src}" if recipe == "detector_loso" else f"out/detector/{recipe}_{src}"
    overrides = {"data": {"exclude_sources": [src]}, "out_dir": out_dir, "log_mlflow": False, "resume": None}
    if smoke:
        overrides.update({"out_dir": f"out/detector/loso_smoke_{src}",
                          "optim": {"epochs": 1, "max_steps": 2}, "render": {"enabled": False},
                          "data": {"exclude_sources": [src], "max_train_images": 32, "max_val_images": 8},
                          "calibrate": {"max_images": 16}})
    return detector.load_train_config(recipe, overrides)


def loso(sources=LOSO_SOURCES, *, smoke: bool = False, recipe: str = "detector_loso") -> dict:
    """Train the ``recipe`` (``detector_loso``, the release recipe's short schedule, unless
    ``$CAMLAB_BENCH_LOSO_RECIPE`` names a trial's) without each source and score it on that whole source."""
    from camlab.data.label_sets import source_name
    from camlab.data.splits import load_split
    from camlab.eval.detection import evaluate
    from camlab.train import detector

    out = {}
    reuse = os.environ.get("CAMLAB_BENCH_LOSO_REUSE")
    for src in sources:
        cfg = loso_config(src, recipe, smoke=smoke)
        t0 = time.perf_counter()
        if reuse:      # a calibration trial: the weights of the ``reuse`` recipe's run, re-calibrated by ``recipe``
            base = loso_config(src, reuse, smoke=smoke)
            ckpt = detector._resolve(f"out/detector/{recipe}_from_{reuse}_{src}") / "best.pt"
            detector.recalibrate(detector._resolve(base.out_dir) / "best.pt", ckpt, cfg, base)
            epochs = 0
        else:
            res = detector.train(cfg)
            ckpt, epochs = res.checkpoint, len(res.history)
        held = []
        for side in ("train", "val"):
            s, _ = load_split(detector.detector_manifest_path(cfg), side)
            held += [x for x in s if source_name(x.dataset) == src]
        if smoke:
            held = held[:8]
        ev = evaluate(str(ckpt), held, hog=True)
        out[src] = {"recipe": recipe, "checkpoint": str(ckpt), "weights_of": reuse or recipe,
                    "train_min": round((time.perf_counter() - t0) / 60, 1), "epochs": epochs,
                    "trained_without": src, "n_images": ev["n_images"],
                    "classes": ev["classes"], "classes_naive": ev["classes_naive"],
                    "hog_person": ev["anchors"].get("hog_person"), "presence_thresholds": ev["presence_thresholds"],
                    "note": "scored on every image of the held-out source (train and val sides)"}
    return out


def run() -> dict:
    from camlab import tracking
    from camlab.data.splits import load_split
    from camlab.eval.detection import check_targets, evaluate, evaluate_bundle
    from camlab.models.pretrained import SsdTeacher, check_pretrained_file
    from camlab.train import detector
    from camlab.train.detector import _subset

    smoke = os.environ.get("CAMLAB_BENCH_SMOKE") == "1"
    cfg = detector.load_train_config(detector.RELEASE_RECIPE)
    manifest = detector.detector_manifest_path(cfg)
    val, _ = load_split(manifest, "val")
    train, _ = load_split(manifest, "train")
    if smoke:
        val, train = _subset(val, 12, 1), _subset(train, 12, 2)
    bundle = _newest_bundle()
    out: dict = {"git_commit": tracking.git_commit(), "load_avg": os.getloadavg(),
                 "split": {"manifest": str(manifest), "sha256": sha256_file(manifest), "side": "val",
                           "n_images": len(val)},
                 "bundle": {"path": str(bundle), "model_onnx_sha256": sha256_file(bundle / "model.onnx")},
                 "protocol": __doc__.split("\n\n")[1].replace("\n", " ")}
    t0 = time.perf_counter()
    ours = evaluate_bundle(bundle, val, "int8", hog=True, details=True, by_source=True)
    out["int8"] = _slim(ours)
    out["int8"]["seconds"] = round(time.perf_counter() - t0, 1)
    out["targets"] = check_targets(ours)
    fp32 = evaluate_bundle(bundle, val, "fp32", hog=False)
    out["fp32"] = {"map50": fp32["map50"], "classes": fp32["classes"]}
    out["int8_map50_drop_points"] = round(100 * (fp32["map50"] - ours["map50"]), 2)
    out["hog_person"] = ours["anchors"].get("hog_person")
    previous = _previous_bundle(bundle)
    if previous is not None:
        prev = evaluate_bundle(previous, val, "int8", hog=False, by_source=True)
        out["previous_release"] = {"bundle": str(previous), "model_onnx_sha256": sha256_file(previous / "model.onnx"),
                                   **_slim(prev)}
    else:
        out["previous_release"] = {"skipped": "no older bundle with another model in exports/detector "
                                              "(or CAMLAB_BENCH_PREVIOUS_DETECTOR=none)"}

    teacher_file = check_pretrained_file()
    teacher = SsdTeacher(teacher_file)
    n_cal = 12 if smoke else 600
    thr, rep = teacher_thresholds(teacher, _subset(train, n_cal, 3))
    teacher.thresholds = thr
    tev = evaluate(teacher, val, hog=False, details=True, by_source=True)
    out["teacher"] = {"model": "MediaPipe SSD-MobileNetV2 Open Images V4 (fp16 TFLite, torch replay), 300x300",
                      "file_sha256": sha256_file(teacher_file), "calibration": {"n_train_images": n_cal, "classes": rep},
                      **_slim(tev)}
    if os.environ.get("CAMLAB_BENCH_LOSO", "1") != "0":
        sources, recipe = _loso_env()
        out["loso"] = loso(sources[:1] if smoke else sources, smoke=smoke, recipe=recipe)
        out["loso_sources_not_run"] = [s for s in LOSO_SOURCES if s not in out["loso"]]
    else:
        out["loso"] = {"skipped": "CAMLAB_BENCH_LOSO=0"}
    if smoke:
        out["smoke"] = "tiny subsets: figures meaningless"
    return out


def smoke_figures(bundle: Path, n_images: int = 12) -> dict:
    """Headline figures of ``bundle`` on a few seeded validation images, by the code ``run()`` uses (the smoke
    harness runs it on two probe bundles and checks the figures move)."""
    from camlab.data.splits import load_split
    from camlab.eval.detection import evaluate_bundle
    from camlab.train import detector
    from camlab.train.detector import _subset

    val, _ = load_split(detector.detector_manifest_path(detector.load_train_config(detector.RELEASE_RECIPE)), "val")
    ev = evaluate_bundle(bundle, _subset(val, n_images, 1), "int8", hog=True)
    person = ev["classes"]["person"]
    return {"int8_map50": ev["map50"], "person_ap50": person["ap50"] or 0.0,
            "person_presence_recall": person["presence_recall"] or 0.0,
            "hog_person_ap50": (ev["anchors"].get("hog_person") or {}).get("ap50") or 0.0}


def loso_only(name: str) -> Path:
    """Only the leave-one-source-out runs (``$CAMLAB_BENCH_LOSO_SOURCES``, ``$CAMLAB_BENCH_LOSO_RECIPE``), written to
    ``benchmarks/results/<name>.json`` with the machine and commit: the first, cheapest check of a recipe trial,
    whose rule needs the left-out person recall before the full recipe is worth training."""
    from benchmarks.run import RESULTS, machine

    start = machine()
    sources, recipe = _loso_env()
    result = {"loso": loso(sources, recipe=recipe),
              "machine": {**machine(), "at_start": start}, "git": start["git"]}
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out


if __name__ == "__main__":  # pragma: no cover
    import sys

    if sys.argv[1:2] == ["--loso-only"]:
        if len(sys.argv) != 3 or not sys.argv[2].replace("_", "").isalnum():
            sys.exit("usage: python -m benchmarks.bench_detector --loso-only NAME (letters, digits, _; the result goes "
                     "to benchmarks/results/NAME.json)")
        print(loso_only(sys.argv[2]))
    else:
        print(json.dumps(run(), indent=1, default=str))
