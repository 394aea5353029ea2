"""Detector evaluation: COCO AP per class (pycocotools) and the camera's per-image event metrics, with a HOG anchor.

AP50 and AP50:95 follow the COCO protocol (Lin et al., ECCV 2014) computed by pycocotools' ``COCOeval`` (101-point
interpolation, max 100 detections per image), one category at a time. Event metrics per image and class
(what the camera's notification logic sees): *present* = a detection of the class at or above the manifest's
score threshold; presence recall/precision over images, false-positive rate on the images without that class.
Anchor in the same run: OpenCV's HOG + linear-SVM people detector (Dalal & Triggs, CVPR 2005) scored on the
same images for the person class. Any model runs through the same numpy pre/post-processing as the camera
(:mod:`camlab.contract.detection`): a checkpoint via torch, an export bundle via onnxruntime (FP32 or INT8).
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from camlab.data.classes import CLASSES
from camlab.errors import InputFileError

MAP_SCORE_THRESHOLD = 0.01     # detections kept for AP (the curve needs the low-score tail)
HOG_PRESENCE_THRESHOLD = 0.5   # HOG SVM margin counted as "person present"
HOG_SCALE = 1.1                # image-pyramid step of detectMultiScale (window 64x128, stride 8)
METRIC_KEYS = ("ap50", "ap50_95", "presence_recall", "presence_precision", "fp_rate", "n_images", "n_boxes",
               "n_scored_images", "presence_accuracy", "empty_scene_fp_rate", "n_empty_scenes")

Predictor = Callable[[np.ndarray], Mapping[str, np.ndarray]]

#: what a release detector must reach (issue 19), per class on federated figures: (class, metric, bound, min|max)
RELEASE_TARGETS: dict[str, tuple[str, str, float, str]] = {
    "person presence recall": ("person", "presence_recall", 0.90, "min"),
    "person FP rate": ("person", "fp_rate", 0.02, "max"),
    "person AP50": ("person", "ap50", 0.70, "min"),
    "pet presence recall": ("pet", "presence_recall", 0.947, "min"),
    "pet FP rate": ("pet", "fp_rate", 0.02, "max"),
    "vehicle presence recall": ("vehicle", "presence_recall", 0.923, "min"),
    "vehicle FP rate": ("vehicle", "fp_rate", 0.02, "max"),
}


def check_targets(ev: Mapping) -> dict[str, dict]:
    """Each release target with the measured value and whether it is met (None when not measurable)."""
    out = {}
    for name, (cls, key, bound, kind) in RELEASE_TARGETS.items():
        v = ev["classes"][cls][key]
        met = None if v is None else bool(v >= bound if kind == "min" else v <= bound)
        out[name] = {"value": v, "bound": bound, "kind": kind, "met": met}
    return out


def verdict_table(checks: Mapping[str, Mapping]) -> str:
    """The targets as aligned text lines (for the terminal)."""
    lines = []
    for name, c in checks.items():
        v = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        op = ">=" if c["kind"] == "min" else "<="
        mark = {True: "MET", False: "NOT MET", None: "not measured"}[c["met"]]
        lines.append(f"  {name:26s} {v:>7s}  (target {op} {c['bound']})  {mark}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- data
def resolve_data(data: Iterable[Any]) -> tuple[list, dict]:
    """Samples from YOLO folders (or parents of them), Oxford-Pet folders, or split manifests
    (``datasets/detector_split.json`` = its val side, ``...json:train`` = its train side)."""
    from camlab.data.splits import load_folder, load_split
    from camlab.data.yolo import Sample, find_yolo_folders

    samples: list = []
    reports: list[dict] = []
    desc: list[str] = []
    items = list(data)
    if items and all(isinstance(x, Sample) for x in items):
        return items, {"data": "samples", "reports": []}
    for item in items:
        spec = str(item)
        side = "val"
        if ".json:" in spec:
            spec, side = spec.rsplit(":", 1)
        path = Path(spec)
        if spec.endswith(".json"):
            s, reps = load_split(path, side)
            samples += s
            reports += [r.as_dict() for r in reps]
            desc.append(f"{spec}:{side}")
            continue
        if not path.exists():
            raise InputFileError(f"{path}: evaluation data not found (expected a YOLO folder or a split manifest)")
        from camlab.data.pets import is_pets_folder

        folders = [path] if is_pets_folder(path) else find_yolo_folders(path)
        if not folders:
            raise InputFileError(f"{path}: not a YOLO folder (images/, labels/, classes.txt) and holds none")
        for f in folders:
            s, rep = load_folder(f)
            samples += s
            reports.append(rep.as_dict())
            desc.append(str(f))
    if not samples:
        raise InputFileError("evaluation: no images in the given data")
    return samples, {"data": desc, "reports": reports}


# ----------------------------------------------------------------------------------------------- predictors
def torch_predictor(model) -> tuple[Predictor, dict]:
    """(predict fn NCHW -> {output name: array}, manifest io) for a CamDet module."""
    import torch

    from camlab.models.detector import manifest_io

    io_ = manifest_io(model.config)
    names = model.output_names
    model.eval()

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = model(torch.from_numpy(x))
        return {n: o.numpy() for n, o in zip(names, outs)}

    return predict, io_


def onnx_predictor(path: str | Path, threads: int = 1) -> Predictor:
    from camlab.deploy.quantize import session

    sess = session(path, threads)
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(out_names, sess.run(out_names, {in_name: x})))

    return predict


def load_model_any(model: str | Path, variant: str = "int8") -> tuple[Predictor, dict, dict]:
    """A checkpoint file or an export bundle directory -> (predictor, manifest io, description)."""
    path = Path(model)
    if path.is_dir():
        manifest = _bundle_manifest(path)
        fname = manifest.get("model_files", {}).get(variant) or ("model.onnx" if variant == "int8"
                                                                 else "model_fp32.onnx")
        onnx_path = path / fname
        if not onnx_path.is_file():
            raise InputFileError(f"{onnx_path}: bundle model file for variant '{variant}' not found")
        io_ = {"inputs": manifest["inputs"], "outputs": manifest["outputs"], "decode": manifest["decode"]}
        return onnx_predictor(onnx_path), io_, {"bundle": str(path), "variant": variant,
                                                 "model": manifest.get("model", {})}
    if path.suffix == ".onnx":
        raise InputFileError(f"{path}: give the bundle directory (manifest.json holds the decode block)")
    from camlab.models.detector import load_checkpoint

    net, meta = load_checkpoint(path)
    pred, io_ = torch_predictor(net)
    return pred, io_, {"checkpoint": str(path), "mlflow_run_id": meta.get("mlflow_run_id")}


EMPTY_SCENE_MIN_AREA = 0.3     # share of the frame an empty-scene crop must cover
EMPTY_SCENE_MARGIN = 0.02      # clearance around every labelled box (normalized), loose boxes included


def empty_scene_box(boxes: np.ndarray, *, margin: float = EMPTY_SCENE_MARGIN,
                    min_area: float = EMPTY_SCENE_MIN_AREA) -> tuple[float, float, float, float] | None:
    """The largest full-height or full-width strip of a frame (normalized x0, y0, x1, y1) clear of every box.

    An image whose source labels a class exhaustively shows no object of that class outside its boxes, so the
    strip is an empty scene of the same camera, lighting and clutter: the false-positive population a camera
    alert meets most (a frame of the porch with nobody on it). One strip per image holding objects; None when
    the image has no box (the whole image is already a negative) or no strip covers ``min_area``."""
    if len(boxes) == 0:
        return None
    best: tuple[float, tuple[float, float, float, float]] | None = None
    for axis in (0, 1):   # 0: vertical strips between boxes' x-extents; 1: horizontal strips between y-extents
        spans = sorted((max(0.0, float(b[axis]) - margin), min(1.0, float(b[axis + 2]) + margin)) for b in boxes)
        edge, gaps = 0.0, []
        for lo, hi in spans:
            if lo > edge:
                gaps.append((edge, lo))
            edge = max(edge, hi)
        if edge < 1.0:
            gaps.append((edge, 1.0))
        for lo, hi in gaps:
            box = (lo, 0.0, hi, 1.0) if axis == 0 else (0.0, lo, 1.0, hi)
            if hi - lo >= min_area and (best is None or hi - lo > best[0]):
                best = (hi - lo, box)
    return None if best is None else best[1]


def crop_rgb(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = int(round(box[0] * w)), int(round(box[1] * h)), int(round(box[2] * w)), int(round(box[3] * h))
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def _score_rows(model: Any, samples: list, *, strips: bool, show_progress: bool = False) -> dict[str, np.ndarray]:
    """One row per readable image (``strips``: per image's empty-scene strip) with the highest detection score per
    class, ground truth present (whole images; a strip holds nothing), and whether its source labels each class
    (``labelled``) and labels it exhaustively (``exhaustive``, LVIS ``not_exhaustive`` aside)."""
    from camlab.data.render import sample_rgb
    from camlab.train.common import progress

    detect = _detector_fn(model)
    n = len(CLASSES)
    rows: dict[str, list] = {"best": [], "present": [], "labelled": [], "exhaustive": []}
    for s in progress(samples, desc="empty scenes" if strips else "class scores", enabled=show_progress):
        box = empty_scene_box(s.boxes) if strips else None
        if strips and box is None:
            continue
        try:
            rgb = sample_rgb(s)
        except InputFileError:
            continue
        det = detect(crop_rgb(rgb, box) if strips else rgb)
        rows["best"].append([float(det.scores[det.classes == c].max()) if np.any(det.classes == c) else 0.0
                             for c in range(n)])
        rows["present"].append([False if strips else s.has(c) for c in range(n)])
        rows["labelled"].append([bool(s.labelled[c]) for c in range(n)])
        rows["exhaustive"].append([s.exhaustive(c) for c in range(n)])
    return {k: np.asarray(v, np.float32 if k == "best" else bool).reshape(-1, n) for k, v in rows.items()}


def empty_scene_scores(model: Any, samples: list, *, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Highest detection score per class (N, C) on each image's empty-scene strip (:func:`empty_scene_box`), and
    which classes the strip is known to be empty of (N, C): the classes its source labels exhaustively."""
    r = _score_rows(model, samples, strips=True, show_progress=show_progress)
    return r["best"], r["exhaustive"]


def image_class_scores(model: Any, samples: list, *, show_progress: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image and class: (ground truth present (N, C) bool, highest detection score (N, C), 0 if none,
    class labelled exhaustively by the image's source (N, C) bool: federated labels, LVIS ``not_exhaustive``).

    The camera's presence decision is ``max score >= threshold``; these two arrays are what a threshold is picked
    from. Unreadable images are skipped (they carry no decision)."""
    r = _score_rows(model, samples, strips=False, show_progress=show_progress)
    return r["present"], r["best"], r["exhaustive"]


def calibration_scores(model: Any, samples: list, *, empty_scene_classes: Iterable[str] = ("person",),
                       show_progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, dict]:
    """(present, best, known) rows for :func:`pick_thresholds`: every image, then every empty-scene strip
    (no class present, known for the ``empty_scene_classes`` its source labels); the strip count; and, per class,
    where its negatives came from. Strips serve only classes whose sources label them exhaustively to the edge of
    the frame: vehicles_trafficcam leaves distant cars unlabelled, so its strips are no vehicle negatives (person
    only, default). A source marked ``not_exhaustive`` for a class (datasets/label_sets.yaml) gives no negatives of
    it, unless no exhaustive source has any: then its frames and strips serve, and the class is reported as
    ``"not exhaustive: FP rate over-counted, threshold errs high"`` (an unboxed person scored as a false positive
    can only raise the threshold), never a threshold picked from no negatives at all.

    About a hundred person-free images alone put the 2 % point on the second-highest of them (one bottle that looks
    like a standing figure moved the release threshold from 0.51 to 0.63); the strips add the empty scenes of every
    source that labels the class."""
    img = _score_rows(model, samples, strips=False, show_progress=show_progress)
    strip = _score_rows(model, samples, strips=True, show_progress=show_progress)
    on_strips = np.array([c in set(empty_scene_classes) for c in CLASSES])
    present = np.concatenate([img["present"], strip["present"]])
    exhaustive = np.concatenate([img["exhaustive"], strip["exhaustive"] & on_strips])
    labelled = np.concatenate([img["labelled"], strip["labelled"] & on_strips])
    known, source = exhaustive.copy(), {}
    for c, name in enumerate(CLASSES):
        if (exhaustive[:, c] & ~present[:, c]).any():
            source[name] = "exhaustively labelled"
        elif (labelled[:, c] & ~present[:, c]).any():
            known[:, c] = labelled[:, c]
            source[name] = "not exhaustive: FP rate over-counted, threshold errs high"
        else:
            source[name] = "none"
    return present, np.concatenate([img["best"], strip["best"]]), known, len(strip["best"]), source


def _detector_fn(model: Any) -> Callable[[np.ndarray], Any]:
    """rgb -> Detections (source px, scores >= MAP_SCORE_THRESHOLD) for a CamDet module, a checkpoint or bundle
    path, or a direct detector (an object with ``detect(rgb) -> (boxes, scores, classes)``, e.g. the SSD teacher)."""
    import torch

    from camlab.contract.detection import Detections, postprocess, preprocess

    if hasattr(model, "detect") and not isinstance(model, torch.nn.Module):
        def direct(rgb: np.ndarray):
            b, sc, c = model.detect(rgb)
            keep = sc >= MAP_SCORE_THRESHOLD
            return Detections(boxes=b[keep], scores=sc[keep], classes=c[keep], class_names=CLASSES)
        return direct
    if isinstance(model, torch.nn.Module):
        predict, io_ = torch_predictor(model)
    else:
        predict, io_, _ = load_model_any(model)
    decode, in_spec = io_["decode"], io_["inputs"][0]

    def via_graph(rgb: np.ndarray):
        x, lb = preprocess(rgb, in_spec)
        return postprocess(predict(x), decode, lb, score_threshold=MAP_SCORE_THRESHOLD)
    return via_graph


def pick_thresholds(present: np.ndarray, best: np.ndarray, target_fp_rate: float, floor: float = 0.15,
                    ceiling: float = 0.95, fp_limited: Iterable[str] | None = None,
                    known: np.ndarray | None = None) -> tuple[list[float], dict]:
    """Per-class presence thresholds from (ground truth present, highest score) per image.

    Classes in ``fp_limited`` (all when None) get the lowest threshold whose false-positive rate on the images
    without that class is at most ``target_fp_rate`` (an alert that must not fire on nothing: person); the others
    get the threshold of highest presence accuracy over all images (ties: the lower one). Clamped to
    [floor, ceiling]; the report has the rates each threshold gives on these images. ``known`` (N, C): whether
    the image's source labels the class; images that do not are left out for that class (federated labels)."""
    limited = set(CLASSES if fp_limited is None else fp_limited)
    unknown = limited - set(CLASSES)
    if unknown:
        raise ValueError(f"fp_limited names unknown class(es) {sorted(unknown)}; expected some of {list(CLASSES)}")
    thresholds, report = [], {}
    if known is None:
        known = np.ones_like(present, bool)
    for c, name in enumerate(CLASSES):
        use = known[:, c] | present[:, c]
        neg, pos = best[use & ~present[:, c], c], best[present[:, c], c]
        if name in limited:
            rule = f"lowest threshold with FP rate <= {target_fp_rate}"
            if len(neg) == 0:
                t = floor
            else:
                # FP(t) = share of negatives scoring >= t; just above the k-th highest negative keeps k-1 of them
                allowed = int(np.floor(target_fp_rate * len(neg)))
                ranked = np.sort(neg)[::-1]
                t = float(np.nextafter(ranked[allowed], np.float32(1.0))) if allowed < len(ranked) else floor
            t = float(np.clip(np.ceil(t * 1e4) / 1e4, floor, ceiling))   # rounded up: never admits an extra FP
        else:
            rule = "highest presence accuracy"
            grid = np.round(np.arange(floor, ceiling + 1e-9, 0.01), 4)
            acc = [np.mean((best[use, c] >= g) == present[use, c]) for g in grid]
            t = float(grid[int(np.argmax(acc))])
        thresholds.append(t)
        report[name] = {"threshold": t, "rule": rule, "n_negatives": int(len(neg)), "n_positives": int(len(pos)),
                        "fp_rate": float(np.mean(neg >= t)) if len(neg) else None,
                        "presence_recall": float(np.mean(pos >= t)) if len(pos) else None,
                        "presence_accuracy": float(np.mean((best[use, c] >= t) == present[use, c]))
                        if use.any() else None}
    return thresholds, report


def _bundle_manifest(bundle_dir: Path) -> dict:
    try:
        from camlab.contract.manifest import load_bundle
    except ImportError:  # contract loader not available: read the file directly
        p = bundle_dir / "manifest.json"
        if not p.is_file():
            raise InputFileError(f"{bundle_dir}: no manifest.json (not an export bundle)") from None
        return json.loads(p.read_text(encoding="utf-8"))
    return load_bundle(bundle_dir).manifest


# ----------------------------------------------------------------------------------------------- core
def _coco_ap(gt: dict, dets: list[dict], cat_id: int) -> tuple[float | None, float | None, dict | None]:
    """(AP50, AP50:95, PR curve at IoU .5) for one category, or Nones when it has no ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not any(a["category_id"] == cat_id for a in gt["annotations"]):
        return None, None, None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        cat_dets = [d for d in dets if d["category_id"] == cat_id]
        if not cat_dets:
            return 0.0, 0.0, {"recall": [0.0, 1.0], "precision": [0.0, 0.0]}
        coco_dt = coco_gt.loadRes(cat_dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.catIds = [cat_id]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][0, :, 0, 0, -1]          # IoU .5, all recall thresholds, area all, 100 dets
    rec = ev.params.recThrs
    valid = prec > -1
    curve = {"recall": rec[valid].tolist(), "precision": prec[valid].tolist()}
    return float(max(ev.stats[1], 0.0)), float(max(ev.stats[0], 0.0)), curve


def _presence(gt_present: np.ndarray, pred_present: np.ndarray) -> dict:
    tp = int(np.sum(gt_present & pred_present))
    fp = int(np.sum(~gt_present & pred_present))
    fn = int(np.sum(gt_present & ~pred_present))
    neg = int(np.sum(~gt_present))
    return {"presence_recall": tp / (tp + fn) if tp + fn else None,
            "presence_precision": tp / (tp + fp) if tp + fp else None,
            "fp_rate": fp / neg if neg else None,
            "presence_accuracy": float(np.mean(gt_present == pred_present)) if len(gt_present) else None}


def _confusion(records: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
               thresholds: np.ndarray, n_cls: int) -> np.ndarray:
    """Rows truth (classes + background), columns prediction; greedy class-agnostic matching at IoU 0.5."""
    from camlab.contract.detection import box_iou

    m = np.zeros((n_cls + 1, n_cls + 1), np.int64)
    for gt_b, gt_l, boxes, scores, classes in records:
        keep = scores >= thresholds[classes] if len(scores) else np.zeros(0, bool)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        order = np.argsort(-scores)
        used = np.zeros(len(gt_l), bool)
        ious = box_iou(boxes, gt_b) if len(gt_l) and len(boxes) else np.zeros((len(boxes), len(gt_l)))
        for i in order:
            j = -1
            if len(gt_l):
                cand = np.where(used, -1.0, ious[i])
                j = int(np.argmax(cand))
                if cand[j] < 0.5:
                    j = -1
            if j >= 0:
                used[j] = True
                m[gt_l[j], classes[i]] += 1
            else:
                m[n_cls, classes[i]] += 1
        for j in np.flatnonzero(~used):
            m[gt_l[j], n_cls] += 1
    return m


def _metrics_block(ap50, ap, pres, n_images, n_boxes) -> dict:
    return {"ap50": ap50, "ap50_95": ap, "presence_recall": pres["presence_recall"],
            "presence_precision": pres["presence_precision"], "fp_rate": pres["fp_rate"],
            "n_images": int(n_images), "n_boxes": int(n_boxes)}


def source_of(sample) -> str:
    """The data source of a sample (``images/persons_cctv/train`` -> ``persons_cctv``)."""
    from camlab.data.label_sets import source_name

    return source_name(sample.dataset)


def _class_metrics(gt: dict, dets: list[dict], kept: list, pred_present: np.ndarray, ci: int,
                   use: np.ndarray) -> tuple[dict, dict | None]:
    """AP and presence metrics of class ``ci`` over the images where ``use`` is True (image ids are 1-based)."""
    ids = set(int(i) + 1 for i in np.flatnonzero(use))
    sub_gt = dict(gt, images=[im for im in gt["images"] if im["id"] in ids],
                  annotations=[a for a in gt["annotations"] if a["image_id"] in ids])
    sub_dets = [d for d in dets if d["image_id"] in ids]
    ap50, ap, curve = _coco_ap(sub_gt, sub_dets, ci + 1)
    gt_present = np.array([s.has(ci) for s in kept])[use]
    pres = _presence(gt_present, pred_present[use])
    block = _metrics_block(ap50, ap, pres, gt_present.sum(),
                           sum(int(np.sum(s.labels == ci)) for s, u in zip(kept, use) if u))
    block["n_scored_images"] = int(use.sum())
    block["presence_accuracy"] = pres["presence_accuracy"]
    block["_accuracy"] = pres["presence_accuracy"]
    return block, curve


def hog_detect(rgb: np.ndarray, hog=None) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's default HOG people detector: (boxes (N, 4) xyxy px, SVM margins (N,))."""
    import cv2

    if hog is None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if min(gray.shape) < 128:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    rects, weights = hog.detectMultiScale(gray, hitThreshold=0.0, winStride=(8, 8), padding=(8, 8), scale=HOG_SCALE)
    if len(rects) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    r = np.asarray(rects, np.float32).reshape(-1, 4)
    boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)
    scores = np.asarray(weights, np.float32).reshape(-1)
    from camlab.contract.detection import nms

    keep = nms(boxes, scores, 0.5)
    return boxes[keep], scores[keep]


def evaluate(model: Any, data: Iterable[Any], *, io_spec: Mapping | None = None, details: bool = False,
             hog: bool = True, show_progress: bool = False, describe: Mapping | None = None,
             by_source: bool = False, image_scores: bool = False) -> dict:
    """Evaluate a CamDet module, a checkpoint/bundle path, or a predict fn (with ``io_spec``) on ``data``.

    ``data``: samples, YOLO folders, Oxford-Pet folders or split manifests (see :func:`resolve_data`).
    Returns the eval JSON: ``classes`` -> person/pet/vehicle metrics with federated labels (class c scored only
    on images whose source labels c: ``n_scored_images``), ``classes_naive`` -> the same over every image (an
    unlabelled object counts as a false positive), ``by_source`` (when asked) -> federated metrics per source,
    ``anchors`` -> ``hog_person`` (person-labelling sources only),
    plus ``map50``/``map50_95``, counts, skipped files and (``details=True``) PR curves and a confusion matrix;
    ``image_scores=True`` adds ``image_scores``: per kept image and class the highest score (0 without a
    detection), whether the class is present and whether the image's source labels it (for thresholds read at a
    false-positive rate, :func:`pick_thresholds`).
    """
    import torch

    from camlab.contract.detection import postprocess, preprocess, score_thresholds
    from camlab.data.render import sample_rgb
    from camlab.data.splits import count
    from camlab.train.common import progress

    desc: dict = dict(describe or {})
    direct = hasattr(model, "detect") and not isinstance(model, torch.nn.Module)
    detect_direct = _detector_fn(model) if direct else None
    if direct:
        # a detector working on whole images (the SSD teacher): its own thresholds, no graph I/O
        io_ = {"decode": {"classes": list(CLASSES), "score_thresholds": dict(model.thresholds)},
               "inputs": [{}]}
        predict = None
    elif isinstance(model, (str, Path)):
        predict, io_, d = load_model_any(model)
        desc.update(d)
    elif isinstance(model, torch.nn.Module):
        predict, io_ = torch_predictor(model)
    elif callable(model):
        if io_spec is None:
            raise InputFileError("evaluate: a predict function needs io_spec (the manifest's inputs/decode)")
        predict, io_ = model, io_spec
    else:
        raise InputFileError(f"evaluate: cannot evaluate a {type(model).__name__}")
    decode, in_spec = io_["decode"], io_["inputs"][0]
    classes = list(decode["classes"])
    if classes != list(CLASSES):
        raise InputFileError(f"evaluate: model classes {classes} differ from camlab's {list(CLASSES)}")
    thr = score_thresholds(decode)
    samples, data_info = resolve_data(data)

    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
    dets: list[dict] = []
    hog_dets: list[dict] = []
    skipped: list[dict] = []
    kept = []
    pred_present, hog_present, records = [], [], []
    empty_fire: list[list[bool]] = []       # per empty-scene strip: class fired
    empty_known: list[list[bool]] = []      # per strip: classes its source labels (known to be absent)
    empty_hog: list[bool] = []

    def run(rgb: np.ndarray):
        if detect_direct is not None:
            return detect_direct(rgb)
        x, lb = preprocess(rgb, in_spec)
        return postprocess(predict(x), decode, lb, score_threshold=MAP_SCORE_THRESHOLD)
    hog_desc = None
    if hog:
        import cv2
        hog_desc = cv2.HOGDescriptor()
        hog_desc.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    ann_id = 1
    for s in progress(samples, desc="evaluate", enabled=show_progress):
        try:
            rgb = sample_rgb(s)
        except InputFileError as exc:
            skipped.append({"file": str(s.image), "reason": str(exc)})
            continue
        img_id = len(kept) + 1
        kept.append(s)
        h, w = rgb.shape[:2]
        gt["images"].append({"id": img_id, "width": w, "height": h, "file_name": str(s.image)})
        gt_b = s.boxes * np.array([w, h, w, h], np.float32)
        for b, lab in zip(gt_b, s.labels):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            gt["annotations"].append({"id": ann_id, "image_id": img_id, "category_id": int(lab) + 1,
                                      "bbox": [float(b[0]), float(b[1]), bw, bh], "area": bw * bh, "iscrowd": 0})
            ann_id += 1
        det = run(rgb)
        strip = empty_scene_box(s.boxes)
        if strip is not None:
            crop = crop_rgb(rgb, strip)
            det_e = run(crop)
            empty_fire.append([bool(np.any((det_e.classes == c) & (det_e.scores >= thr[c])))
                               for c in range(len(CLASSES))])
            empty_known.append([s.exhaustive(c) for c in range(len(CLASSES))])
            if hog_desc is not None:
                empty_hog.append(bool(np.any(hog_detect(crop, hog_desc)[1] >= HOG_PRESENCE_THRESHOLD)))
        for b, sc, c in zip(det.boxes, det.scores, det.classes):
            dets.append({"image_id": img_id, "category_id": int(c) + 1, "score": float(sc),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
        pred_present.append([bool(np.any((det.classes == c) & (det.scores >= thr[c]))) for c in range(len(CLASSES))])
        records.append((gt_b, s.labels, det.boxes, det.scores, det.classes))
        if hog_desc is not None:
            hb, hs = hog_detect(rgb, hog_desc)
            for b, sc in zip(hb, hs):
                hog_dets.append({"image_id": img_id, "category_id": 1, "score": float(sc),
                                 "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            hog_present.append(bool(np.any(hs >= HOG_PRESENCE_THRESHOLD)))
    if not kept:
        raise InputFileError(f"evaluation: every image was unreadable ({len(skipped)} skipped, first: "
                             f"{skipped[0]['file'] if skipped else '-'})")
    pred_present_a = np.asarray(pred_present, bool).reshape(-1, len(CLASSES))
    empty_fire_a = np.asarray(empty_fire, bool).reshape(-1, len(CLASSES))
    empty_known_a = np.asarray(empty_known, bool).reshape(-1, len(CLASSES))
    out: dict[str, Any] = {"classes": {}, "classes_naive": {}, "anchors": {}}
    curves = {}
    accuracy = {}
    for ci, name in enumerate(CLASSES):
        # federated: class c is scored only on images whose source labels c (LVIS, Gupta et al. 2019)
        known = np.array([s.exhaustive(ci) or s.has(ci) for s in kept])
        block, curve = _class_metrics(gt, dets, kept, pred_present_a[:, ci], ci, known)
        out["classes"][name] = block
        accuracy[name] = block.pop("_accuracy")
        n_empty = int(empty_known_a[:, ci].sum())
        block["empty_scene_fp_rate"] = float(empty_fire_a[empty_known_a[:, ci], ci].mean()) if n_empty else None
        block["n_empty_scenes"] = n_empty
        naive, _ = _class_metrics(gt, dets, kept, pred_present_a[:, ci], ci, np.ones(len(kept), bool))
        naive.pop("_accuracy")
        naive["empty_scene_fp_rate"] = float(empty_fire_a[:, ci].mean()) if len(empty_fire_a) else None
        naive["n_empty_scenes"] = len(empty_fire_a)        # naive: every strip counts, labelled or not
        out["classes_naive"][name] = naive
        if curve:
            curves[name] = curve
    if by_source:
        out["by_source"] = {}
        names = np.array([source_of(s) for s in kept])
        for src in sorted(set(names)):
            in_src = names == src
            out["by_source"][src] = {"n_images": int(in_src.sum()), "classes": {}}
            for ci, name in enumerate(CLASSES):
                known = in_src & np.array([s.exhaustive(ci) or s.has(ci) for s in kept])
                if not known.any():
                    continue
                block, _ = _class_metrics(gt, dets, kept, pred_present_a[:, ci], ci, known)
                block.pop("_accuracy")
                out["by_source"][src]["classes"][name] = block
    if hog_desc is not None:
        known = np.array([s.exhaustive(0) or s.has(0) for s in kept])
        gt_hog = dict(gt, categories=[gt["categories"][0]],
                      annotations=[a for a in gt["annotations"] if a["category_id"] == 1])
        block, curve = _class_metrics(gt_hog, hog_dets, kept, np.asarray(hog_present, bool), 0, known)
        pres = {"presence_accuracy": block.pop("_accuracy")}
        out["anchors"]["hog_person"] = block
        out["anchors"]["hog_person"]["presence_threshold"] = HOG_PRESENCE_THRESHOLD
        hog_known = empty_known_a[:, 0]
        block["empty_scene_fp_rate"] = (float(np.asarray(empty_hog, bool)[hog_known].mean())
                                        if hog_known.any() else None)
        block["n_empty_scenes"] = int(hog_known.sum())
        accuracy["hog_person"] = pres["presence_accuracy"]
        if curve:
            curves["hog_person"] = curve
    aps50 = [m["ap50"] for m in out["classes"].values() if m["ap50"] is not None]
    aps = [m["ap50_95"] for m in out["classes"].values() if m["ap50_95"] is not None]
    out["map50"] = float(np.mean(aps50)) if aps50 else None
    out["map50_95"] = float(np.mean(aps)) if aps else None
    out["presence_accuracy"] = accuracy
    out["presence_thresholds"] = {c: float(t) for c, t in zip(CLASSES, thr)}
    out["n_images"] = len(kept)
    out["n_skipped"] = len(skipped) + sum(r.get("n_skipped", 0) for r in data_info["reports"])
    out["skipped"] = skipped + [{"file": s["file"], "reason": s["reason"]}
                                for r in data_info["reports"] for s in r.get("skipped", [])]
    out["counts"] = count(kept)
    out["data"] = data_info["data"]
    out["model"] = desc
    out["protocol"] = {"ap": "pycocotools COCOeval bbox, per category, maxDets 100",
                       "federated": "class c scored only on images whose source labels c "
                                    "(datasets/label_sets.yaml); a source marked not_exhaustive for c gives "
                                    "no negatives of c (false-positive and empty-scene rates) but its images "
                                    "with c count, unmatched detections included, for AP (stricter than LVIS, "
                                    "which ignores them); classes_naive scores every image",
                       "map_score_threshold": MAP_SCORE_THRESHOLD,
                       "presence": "image has >= 1 detection of the class at or above presence_thresholds",
                       "empty_scene_fp_rate": "share of empty-scene strips (the largest full-height or full-width "
                                              f"strip, >= {EMPTY_SCENE_MIN_AREA:.0%} of the frame, clear of every "
                                              "labelled box, of each image holding objects) where the class "
                                              "fires; strips count for the classes their source labels "
                                              "exhaustively"}
    if image_scores:
        out["image_scores"] = {
            "best": [[float(sc[cl == c].max()) if np.any(cl == c) else 0.0 for c in range(len(CLASSES))]
                     for _, _, _, sc, cl in records],
            "present": [[bool(s.has(c)) for c in range(len(CLASSES))] for s in kept],
            "known": [[bool(s.exhaustive(c) or s.has(c)) for c in range(len(CLASSES))] for s in kept]}
    if details:
        out["details"] = {"pr_curves": curves,
                          "confusion": {"labels": list(CLASSES) + ["background"],
                                        "matrix": _confusion(records, thr, len(CLASSES)).tolist()}}
    return out


def evaluate_bundle(bundle_dir: str | Path, data_dirs: Iterable[Any], variant: str = "int8", *,
                    hog: bool = False, details: bool = False, show_progress: bool = False,
                    by_source: bool = False) -> dict:
    """Evaluate an export bundle's ``model.onnx`` (``int8``) or ``model_fp32.onnx`` (``fp32``) via onnxruntime."""
    if variant not in ("int8", "fp32"):
        raise InputFileError(f"variant must be 'int8' or 'fp32', got {variant!r}")
    predict, io_, desc = load_model_any(bundle_dir, variant)
    return evaluate(predict, data_dirs, io_spec=io_, hog=hog, details=details, show_progress=show_progress,
                    describe=desc, by_source=by_source)


def write_json(result: Mapping, path: str | Path) -> None:
    from camlab.io_utils import atomic_write_json

    atomic_write_json(Path(path), {k: v for k, v in result.items() if k != "details"})
