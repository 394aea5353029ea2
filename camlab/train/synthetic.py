"""Tiny synthetic YOLO folders (drawn shapes standing in for people, pets and vehicles) for tests and smoke runs.

Not training data for a real model: every image is procedurally drawn from a seed, so a test can build a
labelled folder in milliseconds without touching ../shared/data. Labels follow the YOLO txt format
(``class cx cy w h``, normalized) with a ``classes.txt`` naming the ids (mixed case on purpose, to exercise the
case-insensitive class mapping), plus images with no target (negatives).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from camlab.data.classes import CLASSES

#: source class names of the synthetic folders (id order), mapped by camlab.data.classes
NAMES = ("Person", "Dog", "Car", "chair")
_COLORS = {0: (220, 60, 60), 1: (60, 200, 60), 2: (60, 90, 230), 3: (200, 200, 40)}


def draw_object(img: np.ndarray, cls: int, x0: int, y0: int, x1: int, y1: int) -> None:
    """Person: tall body with a round head; dog: wide body on legs; car: wide box with wheels; chair: frame."""
    import cv2

    c = _COLORS[cls]
    if cls == 0:
        hw = (x1 - x0)
        cv2.circle(img, ((x0 + x1) // 2, y0 + hw // 3), max(2, hw // 3), c, -1)
        cv2.rectangle(img, (x0, y0 + (2 * hw) // 3), (x1, y1), c, -1)
    elif cls == 1:
        h = y1 - y0
        cv2.rectangle(img, (x0, y0), (x1, y0 + h * 2 // 3), c, -1)
        for lx in (x0, x1 - max(2, (x1 - x0) // 6)):
            cv2.rectangle(img, (lx, y0 + h * 2 // 3), (lx + max(2, (x1 - x0) // 6), y1), c, -1)
    elif cls == 2:
        h = y1 - y0
        cv2.rectangle(img, (x0, y0 + h // 4), (x1, y1 - h // 5), c, -1)
        r = max(2, h // 5)
        for wx in (x0 + r, x1 - r):
            cv2.circle(img, (wx, y1 - r), r, (20, 20, 20), -1)
    else:
        cv2.rectangle(img, (x0, y0), (x1, y1), c, 2)


def make_yolo_folder(root: str | Path, n_images: int = 24, *, size: tuple[int, int] = (192, 128), seed: int = 0,
                     negatives: int = 4, max_objects: int = 3, names: tuple[str, ...] = NAMES) -> Path:
    """Write ``root/images/*.jpg``, ``root/labels/*.txt``, ``root/classes.txt``; returns ``root``."""
    import cv2

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    # synthetic scenes draw and label every class (camlab.data.label_sets)
    (root / "label_set.txt").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n_images):
        img = (rng.normal(110, 25, (h, w, 3))).clip(0, 255).astype(np.uint8)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        lines = []
        n_obj = 0 if i < negatives else int(rng.integers(1, max_objects + 1))
        for _ in range(n_obj):
            cls = int(rng.integers(0, len(names)))
            if cls == 0:
                bh = int(rng.integers(h // 3, int(h * 0.8)))
                bw = max(8, bh // 3)
            elif cls == 1:
                bw = int(rng.integers(w // 5, w // 3))
                bh = max(8, int(bw * 0.7))
            else:
                bw = int(rng.integers(w // 4, w // 2))
                bh = max(8, int(bw * 0.5))
            x0 = int(rng.integers(0, w - bw))
            y0 = int(rng.integers(0, h - bh))
            draw_object(img, cls, x0, y0, x0 + bw, y0 + bh)
            lines.append(f"{cls} {(x0 + bw / 2) / w:.6f} {(y0 + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
        name = f"synth_{seed}_{i:04d}"
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), img)
        if lines or i % 2:          # some negatives have an empty label file, others none at all
            (root / "labels" / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root
