"""Teacher pseudo-labels for the classes a source does not label (federated data, issue 19).

A CCTV frame's cars, a vehicle photo's pedestrians and a pet owner are real objects that their source leaves
unlabelled. The SSD teacher (:class:`camlab.models.pretrained.SsdTeacher`, Open Images V4) finds many of them; its
confident boxes of a class the source does NOT label become extra positives of that class (self-training /
pseudo-labelling: Lee, "Pseudo-Label", ICML-W 2013; Xie et al., "Self-training with Noisy Student", CVPR 2020).
The class stays unlabelled for negatives (the federated mask): a teacher miss is never taught as background.
Boxes of a class the source labels are never touched, and a pseudo box overlapping a labelled box (IoU >= 0.5) is
dropped. With ``fill_not_exhaustive``, a class the source labels but not exhaustively (LVIS ``not_exhaustive``: CCTV
passers-by, a second vehicle in a vehicle photo) gets the teacher's confident boxes too, where they overlap no labelled
box (IoU < 0.3, so a teacher copy of a labelled instance is not added twice). With vehicles_openimages marked not
exhaustive, 87 such vehicle boxes at score 0.5 came from 64 training images, and 24 of 24 drawn at random were real
unboxed vehicles (inspected 2026-12-06); the retrain that used them did not beat the release (detector_full.yaml).
The score may differ per class (``class_scores``): on coco128, which labels every class exhaustively, the teacher's
person boxes matched a labelled person (IoU >= 0.5) in 67 of 85 cases at scores 0.4-0.5 and 50 of 55 at >= 0.5, its
vehicle boxes in 9 of 16 at 0.4-0.5 (train + val, 2026-12-07): its person scores run low.
Teacher outputs are cached per image under ``.cache/pseudo/`` (keyed by teacher hash, file and mtime).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from camlab import settings
from camlab.data.classes import CLASSES


def _cache_file(image: Path, teacher_sha: str, aspect: float | None = None) -> Path:
    st = image.stat()
    shown = "" if aspect is None else f":aspect={aspect:.6f}"   # the teacher saw the picture at that geometry
    key = hashlib.sha256(f"{teacher_sha}:{image.resolve()}:{st.st_size}:{st.st_mtime_ns}{shown}".encode()).hexdigest()
    return settings.project_root() / ".cache" / "pseudo" / key[:2] / f"{key}.json"


def teacher_boxes(sample, teacher) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalized xyxy boxes, scores, classes) of the teacher on one sample's picture as its camera framed it
    (:func:`camlab.data.render.sample_rgb`; cached)."""
    from camlab.data.render import sample_rgb
    from camlab.io_utils import atomic_write_json
    cache = _cache_file(sample.image, teacher.sha256, sample.display_aspect)
    if cache.is_file():
        d = json.loads(cache.read_text())
    else:
        rgb = sample_rgb(sample)
        h, w = rgb.shape[:2]
        b, s, c = teacher.detect(rgb)
        keep = s >= 0.3
        d = {"boxes": (b[keep] / [w, h, w, h]).round(5).tolist(), "scores": s[keep].round(4).tolist(),
             "classes": c[keep].tolist()}
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, d)
    return (np.asarray(d["boxes"], np.float32).reshape(-1, 4), np.asarray(d["scores"], np.float32),
            np.asarray(d["classes"], np.int64))


def class_score_thresholds(score: float, class_scores: dict[str, float] | None = None) -> np.ndarray:
    """(C,) teacher score thresholds: ``score`` for every class, ``class_scores`` overriding it by class name."""
    from camlab.errors import ConfigError

    thr = np.full(len(CLASSES), float(score), np.float32)
    for name, value in (class_scores or {}).items():
        if name not in CLASSES:
            raise ConfigError(f"pseudo_label_class_scores: unknown class {name!r}; expected one of {', '.join(CLASSES)}")
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"pseudo_label_class_scores.{name}: expected a score in (0, 1], got {value!r}")
        thr[CLASSES.index(name)] = float(value)
    return thr


def add_pseudo_labels(samples: list, teacher, score: float = 0.5, *, class_scores: dict[str, float] | None = None,
                      fill_not_exhaustive: bool = False, show_progress: bool = False) -> tuple[list, dict]:
    """Samples with the teacher's confident boxes (score >= ``score``, or ``class_scores[class]``) of their sources'
    unlabelled classes (and, with ``fill_not_exhaustive``, of their not-exhaustive classes) added; a report."""
    from camlab.contract.detection import box_iou
    from camlab.train.common import progress

    thr = class_score_thresholds(score, class_scores)

    added = {c: 0 for c in CLASSES}
    images_with = {c: 0 for c in CLASSES}
    out = []
    for s in progress(samples, desc="pseudo-labels", enabled=show_progress):
        unlabelled = ~np.asarray(s.labelled, bool)
        incomplete = np.asarray(s.incomplete, bool) & fill_not_exhaustive
        if not (unlabelled | incomplete).any():
            out.append(s)
            continue
        b, sc, c = teacher_boxes(s, teacher)
        keep = (sc >= thr[c]) & (unlabelled | incomplete)[c] if len(c) else np.zeros(0, bool)
        b, c = b[keep], c[keep]
        if len(b) and len(s.boxes):
            max_iou = np.where(incomplete[c], 0.3, 0.5)
            keep = box_iou(b, s.boxes).max(axis=1) < max_iou
            b, c = b[keep], c[keep]
        if not len(b):
            out.append(s)
            continue
        for ci in set(c.tolist()):
            added[CLASSES[ci]] += int(np.sum(c == ci))
            images_with[CLASSES[ci]] += 1
        out.append(dataclasses.replace(s, boxes=np.concatenate([s.boxes, b]).astype(np.float32),
                                       labels=np.concatenate([s.labels, c]).astype(np.int64)))
    shown = score if not class_scores else {n: round(float(t), 4) for n, t in zip(CLASSES, thr)}
    return out, {"score_threshold": shown, "boxes_added": added, "images_with_added": images_with,
                 "note": "added as positives only: a class the source does not label, or labels not exhaustively, stays "
                         "unknown for negatives in these images"}
