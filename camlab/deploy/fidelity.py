"""INT8 fidelity of a bundle measured as agreement with its own FP32 model, not as a difference of two task metrics.

At demo scale a detector's mAP50 is a few points and the FP32-minus-INT8 drop between two near-zero numbers is noise
(five demo runs on one commit gave -1.99 .. +2.56). What quantization can break is measurable without ground truth:
run ``model_fp32.onnx`` and ``model.onnx`` of the same bundle on the same validation images (the onnxruntime
reference arithmetic of :func:`camlab.deploy.quantize.session`) and compare

- the raw outputs: cosine per output tensor over all images (min over outputs is the headline);
- the detections the camera acts on (each class at its manifest presence threshold): FP32 and INT8 boxes of the same
  class matched one-to-one at IoU >= 0.5, agreement = 2 * matched / (FP32 boxes + INT8 boxes) (a Dice/F1 score: 1.0
  when INT8 reproduces every FP32 detection and adds none);
- the same agreement with a score tolerance (the headline): a detection of one model counts as reproduced when the
  other model has the box at a score at most ``SCORE_TOLERANCE`` below the threshold. A demo-budget detector's
  scores crowd its thresholds, so the strict count flips on tiny score moves: on one 2026-12-05 demo detector (output
  cosine 0.999) strict agreement was 0.74 on its 34 validation images (38 boxes) and 0.80 on its 162 training images
  (189 boxes); with a 0.05 tolerance 0.97 and 0.93, with 0.10 1.00 and 0.98. 0.10 keeps a 0.9 bound several
  standard deviations from a healthy model's figure; a quantization that moves scores or boxes further still fails;
- per image and class, whether the class is "present" (what raises an event): the fraction of equal decisions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

IOU_MATCH = 0.5
SCORE_TOLERANCE = 0.10   # score below the presence threshold at which a box still counts as reproduced


def match_count(boxes_a: np.ndarray, classes_a: np.ndarray, boxes_b: np.ndarray, classes_b: np.ndarray,
                iou_threshold: float = IOU_MATCH) -> int:
    """Boxes of ``a`` and ``b`` matched one-to-one (same class, IoU >= threshold, greedy by IoU)."""
    from camlab.contract.detection import box_iou

    boxes_a, boxes_b = np.asarray(boxes_a, np.float32).reshape(-1, 4), np.asarray(boxes_b, np.float32).reshape(-1, 4)
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return 0
    iou = box_iou(boxes_a, boxes_b)
    iou[np.asarray(classes_a)[:, None] != np.asarray(classes_b)[None, :]] = 0.0
    matched = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < iou_threshold:
            return matched
        matched += 1
        iou[i, :] = 0.0
        iou[:, j] = 0.0


def agreement(matched: int, n_a: int, n_b: int) -> float | None:
    """2 * matched / (n_a + n_b); None when neither side detected anything (nothing to agree on)."""
    if n_a + n_b == 0:
        return None
    return 2.0 * matched / (n_a + n_b)


def _cosine(dot: float, na: float, nb: float) -> float:
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(dot / np.sqrt(na * nb))


def detector_fidelity(bundle_dir: str | Path, data: Iterable[Any], max_images: int | None = None) -> dict:
    """FP32 vs INT8 of a detector bundle on ``data`` (YOLO folders or split manifests, see
    :func:`camlab.eval.detection.resolve_data`): output cosine, detection agreement, presence agreement."""
    from camlab.contract.detection import postprocess, preprocess, score_thresholds
    from camlab.data.render import sample_rgb
    from camlab.errors import InputFileError
    from camlab.eval.detection import load_model_any, resolve_data

    predict32, io_, _ = load_model_any(bundle_dir, "fp32")
    predict8, _, _ = load_model_any(bundle_dir, "int8")
    decode, in_spec = io_["decode"], io_["inputs"][0]
    thresholds = score_thresholds(decode)
    n_classes = len(thresholds)
    lowered = {**decode, "score_thresholds": [max(0.0, float(t) - SCORE_TOLERANCE) for t in thresholds]}
    samples, _ = resolve_data(data)
    if max_images is not None:
        samples = samples[:max_images]
    sums: dict[str, list[float]] = {}   # output -> [dot, |a|^2, |b|^2]
    n_img = n32 = n8 = matched = tolerant = 0
    same_presence = 0
    for s in samples:
        try:
            rgb = sample_rgb(s)
        except InputFileError:
            continue
        x, lb = preprocess(rgb, in_spec)
        o32, o8 = predict32(x), predict8(x)
        for name, a in o32.items():
            a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(o8[name], np.float64).ravel()
            acc = sums.setdefault(name, [0.0, 0.0, 0.0])
            acc[0] += float(a64 @ b64)
            acc[1] += float(a64 @ a64)
            acc[2] += float(b64 @ b64)
        d32, d8 = postprocess(o32, decode, lb), postprocess(o8, decode, lb)
        n32, n8 = n32 + len(d32), n8 + len(d8)
        matched += match_count(d32.boxes, d32.classes, d8.boxes, d8.classes)
        lo32, lo8 = postprocess(o32, lowered, lb), postprocess(o8, lowered, lb)
        tolerant += match_count(d32.boxes, d32.classes, lo8.boxes, lo8.classes)
        tolerant += match_count(d8.boxes, d8.classes, lo32.boxes, lo32.classes)
        same_presence += sum(bool(np.any(d32.classes == c)) == bool(np.any(d8.classes == c))
                             for c in range(n_classes))
        n_img += 1
    if n_img == 0:
        raise InputFileError(f"{bundle_dir}: FP32 vs INT8 fidelity: no readable image in the data")
    cos = {name: round(_cosine(*acc), 6) for name, acc in sums.items()}
    det_agree = agreement(matched, n32, n8)
    tol_agree = None if n32 + n8 == 0 else tolerant / (n32 + n8)
    return {"images": n_img, "output_cosine": cos, "output_cosine_min": min(cos.values()),
            "detections_fp32": n32, "detections_int8": n8, "detections": n32 + n8, "matched": matched,
            "detection_agreement_strict": None if det_agree is None else round(det_agree, 4),
            "detection_agreement": None if tol_agree is None else round(tol_agree, 4),
            "score_tolerance": SCORE_TOLERANCE,
            "presence_agreement": round(same_presence / (n_img * n_classes), 4),
            "protocol": f"FP32 vs INT8 of the same bundle on the same images; detections at the manifest presence "
                        f"thresholds matched by class at IoU >= {IOU_MATCH}; strict agreement = 2 x matched / "
                        f"(FP32 + INT8 detections); agreement = boxes of each model found in the other at up to "
                        f"{SCORE_TOLERANCE} below the threshold / (FP32 + INT8 detections)"}
