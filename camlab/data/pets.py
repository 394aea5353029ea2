"""Oxford-IIIT Pet loader: full-body pet boxes from the trimaps (the VOC xmls only box the head).

Parkhi, Vedaldi, Zisserman, Jawahar, "Cats and Dogs", CVPR 2012. Folder layout: ``images/*.jpg``,
``trimaps/*.png`` (1 pet, 2 background, 3 border), ``xmls/*.xml`` (VOC head boxes), ``list.txt``
(``name class_id species breed_id``; species 1 cat, 2 dog). The full-body box is the bounding box of the trimap's
pet + border pixels; an image whose trimap is missing, unreadable or of another size falls back to the VOC head
box when there is one, else it is skipped and counted.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from camlab.data.classes import CLASSES, PET
from camlab.data.label_sets import declared_sets
from camlab.data.yolo import IMAGE_EXTS, LoadReport, Sample, _image_readable_header
from camlab.errors import InputFileError


def is_pets_folder(path: Path) -> bool:
    return (Path(path) / "trimaps").is_dir() and (Path(path) / "images").is_dir()


def trimap_box(trimap: np.ndarray) -> tuple[float, float, float, float] | None:
    """Normalized (x0, y0, x1, y1) of trimap values 1 (pet) and 3 (border); None when there is no pet pixel."""
    mask = (trimap == 1) | (trimap == 3)
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    h, w = trimap.shape[:2]
    return xs[0] / w, ys[0] / h, (xs[-1] + 1) / w, (ys[-1] + 1) / h


def _voc_head_box(path: Path) -> tuple[float, float, float, float] | None:
    try:
        root = ET.parse(path).getroot()
        w = float(root.findtext("size/width"))
        h = float(root.findtext("size/height"))
        bb = root.find("object/bndbox")
        return (float(bb.findtext("xmin")) / w, float(bb.findtext("ymin")) / h,
                float(bb.findtext("xmax")) / w, float(bb.findtext("ymax")) / h)
    except (ET.ParseError, AttributeError, TypeError, ValueError, OSError):
        return None


def load_pets_folder(folder: str | Path, *, strict: bool = False, dataset: str | None = None
                     ) -> tuple[list[Sample], LoadReport]:
    import cv2

    folder = Path(folder)
    if not is_pets_folder(folder):
        raise InputFileError(f"{folder}: not an Oxford-IIIT Pet folder (expected images/ and trimaps/)")
    dataset = dataset or f"{folder.parent.name}/{folder.name}"
    report = LoadReport(folder=str(folder))
    labelled, incomplete = declared_sets(folder, default=tuple(c == PET for c in range(len(CLASSES))))
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise InputFileError(f"{folder / 'images'}: empty folder; expected .jpg images")
    samples = []
    for img in images:
        reason = _image_readable_header(img)
        box = None
        if reason is None:
            tri = cv2.imread(str(folder / "trimaps" / f"{img.stem}.png"), cv2.IMREAD_UNCHANGED)
            if tri is not None and tri.ndim == 2:
                box = trimap_box(tri)
            if box is None:
                box = _voc_head_box(folder / "xmls" / f"{img.stem}.xml")
            if box is None:
                reason = "no usable trimap or VOC box"
        if reason is not None:
            if strict:
                raise InputFileError(f"{img}: {reason}")
            report.n_skipped += 1
            report.skipped.append((str(img), reason))
            continue
        x0, y0, x1, y1 = (float(np.clip(v, 0, 1)) for v in box)
        s = Sample(image=img, boxes=np.array([[x0, y0, x1, y1]], np.float32), labels=np.array([PET], np.int64),
                   source=img.stem, dataset=dataset, labelled=labelled, incomplete=incomplete)
        report.n_images += 1
        report.boxes_per_class[CLASSES[PET]] += 1
        samples.append(s)
    if not samples:
        raise InputFileError(f"{folder}: no usable image ({report.n_skipped} skipped)")
    return samples, report
