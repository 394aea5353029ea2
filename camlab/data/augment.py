"""Training augmentation (albumentations) and the letterbox into the detector's static input.

Buslaev et al., "Albumentations: Fast and Flexible Image Augmentations", Information 11(2), 2020. Geometry
(flip, scale/translate, crops) keeps boxes consistent through albumentations' bbox handling (boxes losing more
than 65 % of their area are dropped); photometric jitter is mild because the camera-domain rendering
(:mod:`camlab.data.render`) already varies gain, noise, white balance and IR mode. The letterbox uses exactly the
geometry of :mod:`camlab.contract.detection` (what the camera does), with cv2's bilinear resize for speed.
Mosaic (Bochkovskiy, Wang, Liao, "YOLOv4", 2020; the YOLOv5 form): four images, each fitted to the network input,
around a random centre of a 2x canvas, cropped back to the input size — more objects and contexts per step,
which is what a small detector trained from scratch on a few thousand images needs most.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.contract.detection import Letterbox, letterbox_geometry

PAD_VALUE = 114


@dataclass(frozen=True)
class AugmentConfig:
    enabled: bool = True
    hflip: float = 0.5
    scale: tuple[float, float] = (0.5, 1.5)
    translate: float = 0.15
    affine_p: float = 0.8
    crop_16x9_p: float = 0.3           # crop a 16:9 window (what the substream frames look like)
    brightness_contrast_p: float = 0.4
    hue_saturation_p: float = 0.3
    blur_p: float = 0.1
    min_visibility: float = 0.35
    mosaic_p: float = 0.0              # probability that a training sample is a 4-image mosaic
    mosaic_off_last: int = 0           # no mosaics in the last N epochs (YOLOX: finish on the test distribution)


def build_augment(cfg: AugmentConfig):
    """An albumentations Compose over (RGB uint8 image, normalized xyxy boxes, labels)."""
    import albumentations as A
    import cv2

    t = [
        A.HorizontalFlip(p=cfg.hflip),
        A.Affine(scale=cfg.scale, translate_percent=(-cfg.translate, cfg.translate), keep_ratio=True,
                 border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE, p=cfg.affine_p),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=cfg.brightness_contrast_p),
        A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=10, p=cfg.hue_saturation_p),
        A.GaussianBlur(blur_limit=(3, 5), p=cfg.blur_p),
    ]
    return A.Compose(t, bbox_params=A.BboxParams(format="albumentations", label_fields=["labels"],
                                                  min_visibility=cfg.min_visibility, clip=True,
                                                  filter_invalid_bboxes=True))


def crop_16x9(img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
              min_visibility: float = 0.35) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random full-width 16:9 (or full-height) window; boxes (normalized xyxy) clipped, mostly-cut ones dropped."""
    h, w = img.shape[:2]
    if w / h >= 16 / 9 - 1e-3:
        return img, boxes, labels
    ch = max(2, int(round(w * 9 / 16)))
    y0 = int(rng.integers(0, h - ch + 1))
    out = img[y0:y0 + ch]
    b = boxes.copy()
    b[:, [1, 3]] = (b[:, [1, 3]] * h - y0) / ch
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = np.clip(b, 0, 1)
    area1 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = (area1 > 0) & (area1 >= min_visibility * np.maximum(area0, 1e-9))
    return out, b[keep].astype(np.float32), labels[keep]


def augment(aug, img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, cfg: AugmentConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the 16:9 crop (with probability) and the albumentations pipeline; boxes normalized xyxy.

    Every random draw follows ``rng``: albumentations keeps its own generator, which is reseeded from ``rng`` per
    call, so a training sample is a pure function of its (seed, epoch, index) and a recipe trains bit for bit again.
    """
    aug.set_random_seed(int(rng.integers(2**31 - 1)))
    if rng.random() < cfg.crop_16x9_p:
        img, boxes, labels = crop_16x9(img, boxes, labels, rng, cfg.min_visibility)
    out = aug(image=img, bboxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(labels))
    b = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    return out["image"], b, np.asarray(out["labels"], np.int64).reshape(-1)


def letterbox(img: np.ndarray, boxes_norm: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray, Letterbox]:
    """RGB uint8 (H, W, 3) + normalized xyxy -> (height, width, 3) uint8 letterboxed, boxes in input px, geometry."""
    import cv2

    h, w = img.shape[:2]
    lb = letterbox_geometry(w, h, width, height)
    out = np.full((height, width, 3), PAD_VALUE, np.uint8)
    out[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w] = cv2.resize(
        img, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    b = np.asarray(boxes_norm, np.float32).reshape(-1, 4) * np.array([w, h, w, h], np.float32)
    return out, lb.to_input(b), lb


def mosaic4(images: list[np.ndarray], boxes: list[np.ndarray], labels: list[np.ndarray], width: int, height: int,
            rng: np.random.Generator, min_visibility: float = 0.35
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four RGB uint8 images + normalized xyxy boxes -> one (height, width) mosaic and its normalized boxes.

    Each image is letterbox-scaled to fit (width, height), placed in one quadrant of a (2 height, 2 width) canvas
    so that it touches the centre (xc, yc) drawn from the middle half; the output is the (height, width) window
    centred on (xc, yc). Boxes are clipped to the window; ones keeping less than ``min_visibility`` of their
    area are dropped (as in :func:`crop_16x9`).
    """
    import cv2

    if len(images) != 4 or len(boxes) != 4 or len(labels) != 4:
        raise ValueError("mosaic4 needs exactly four images, box arrays and label arrays")
    cw, ch = 2 * width, 2 * height
    canvas = np.full((ch, cw, 3), PAD_VALUE, np.uint8)
    xc = int(rng.uniform(0.5 * width, 1.5 * width))
    yc = int(rng.uniform(0.5 * height, 1.5 * height))
    out_b, out_l = [], []
    for k, (img, b, lab) in enumerate(zip(images, boxes, labels)):
        h, w = img.shape[:2]
        s = min(width / w, height / h)
        nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        x0 = xc - nw if k in (0, 2) else xc          # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        y0 = yc - nh if k in (0, 1) else yc
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + nw, cw), min(y0 + nh, ch)
        canvas[cy0:cy1, cx0:cx1] = img[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        bb = np.asarray(b, np.float32).reshape(-1, 4) * np.array([nw, nh, nw, nh], np.float32)
        out_b.append(bb + np.array([x0, y0, x0, y0], np.float32))
        out_l.append(np.asarray(lab, np.int64).reshape(-1))
    wx0, wy0 = xc - width // 2, yc - height // 2
    out = canvas[wy0:wy0 + height, wx0:wx0 + width]
    b = np.concatenate(out_b) - np.array([wx0, wy0, wx0, wy0], np.float32)
    lab = np.concatenate(out_l)
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = np.clip(b, 0, [width, height, width, height]).astype(np.float32)
    area1 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = (area1 > 0) & (area1 >= min_visibility * np.maximum(area0, 1e-9))
    b = b[keep] / np.array([width, height, width, height], np.float32)
    return np.ascontiguousarray(out), b, lab[keep]
