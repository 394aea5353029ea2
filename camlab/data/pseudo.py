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


def _teacher_record(sample, teacher) -> dict:
    """The teacher's boxes >= 0.3 and its best score per class (over every box it keeps, >= its score floor) on one
    sample's picture as its camera framed it (:func:`camlab.data.render.sample_rgb`; cached, an entry written before
    the best scores were recorded is recomputed)."""
    from camlab.data.render import sample_rgb
    from camlab.io_utils import atomic_write_json
    cache = _cache_file(sample.image, teacher.sha256, sample.display_aspect)
    if cache.is_file():
        d = json.loads(cache.read_text())
        if "max_scores" in d:
            return d
    rgb = sample_rgb(sample)
    h, w = rgb.shape[:2]
    b, s, c = teacher.detect(rgb)
    keep = s >= 0.3
    best = [float(s[c == k].max()) if np.any(c == k) else 0.0 for k in range(len(CLASSES))]
    d = {"boxes": (b[keep] / [w, h, w, h]).round(5).tolist(), "scores": s[keep].round(4).tolist(),
         "classes": c[keep].tolist(), "max_scores": [round(v, 4) for v in best]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, d)
    return d


def teacher_boxes(sample, teacher) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalized xyxy boxes, scores, classes) of the teacher's boxes >= 0.3 on one sample (cached)."""
    d = _teacher_record(sample, teacher)
    return (np.asarray(d["boxes"], np.float32).reshape(-1, 4), np.asarray(d["scores"], np.float32),
            np.asarray(d["classes"], np.int64))


def teacher_max_scores(sample, teacher) -> np.ndarray:
    """(C,) the teacher's best score per class on one sample (0 where it keeps no box of the class; cached)."""
    return np.asarray(_teacher_record(sample, teacher)["max_scores"], np.float32)


def class_score_thresholds(score: float, class_scores: dict[str, float] | None = None,
                           field: str = "pseudo_label_class_scores") -> np.ndarray:
    """(C,) teacher score thresholds: ``score`` for every class, ``class_scores`` overriding it by class name
    (``field`` names the setting in the error)."""
    from camlab.errors import ConfigError

    thr = np.full(len(CLASSES), float(score), np.float32)
    for name, value in (class_scores or {}).items():
        if name not in CLASSES:
            raise ConfigError(f"{field}: unknown class {name!r}; expected one of {', '.join(CLASSES)}")
        if not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"{field}.{name}: expected a score in (0, 1], got {value!r}")
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


def add_pseudo_negatives(samples: list, teacher, max_scores: dict[str, float], *,
                         show_progress: bool = False) -> tuple[list, dict]:
    """Teacher-verified negatives: a class the image's source does not label becomes known (a negative everywhere
    off its boxes) where the teacher's best score for it stays below ``max_scores[class]`` and the sample holds no
    box of it (pseudo-labels included). A not-exhaustive class and a class without a bound are left as they were.
    The bounds come from coco128, which labels every class: at 0.15 the teacher's best person score falls below
    the bound in 1 of 134 images with people (and 57 of 122 without), at 0.1 its best vehicle score in 2 of 44
    images with vehicles and its best pet score in 2 of 17 with pets (0 of 340 and 1 of 300 in the pet sets;
    2026-12-07). Training only: calibration and evaluation keep the sources' own label sets."""
    from camlab.train.common import progress

    thr = class_score_thresholds(0.0, max_scores, field="pseudo_negative_scores")   # no bound: 0, never below
    bounded = thr > 0
    made = {c: 0 for c in CLASSES}
    out = []
    for s in progress(samples, desc="teacher-verified negatives", enabled=show_progress):
        open_ = bounded & ~np.asarray(s.labelled, bool) & ~np.asarray(s.incomplete, bool)
        if not open_.any():
            out.append(s)
            continue
        best = teacher_max_scores(s, teacher)
        present = np.zeros(len(CLASSES), bool)
        present[np.asarray(s.labels, np.int64)] = True
        known = open_ & (best < thr) & ~present
        if not known.any():
            out.append(s)
            continue
        for ci in np.nonzero(known)[0]:
            made[CLASSES[ci]] += 1
        out.append(dataclasses.replace(s, labelled=tuple(bool(v) for v in np.asarray(s.labelled, bool) | known)))
    return out, {"max_scores": dict(max_scores), "images_made_known": made,
                 "note": "training only; calibration and evaluation read the sources' label sets"}
