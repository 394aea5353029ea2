"""Detector pre/post-processing shared by training, evaluation and the camera: letterbox, decode, NMS (numpy only).

The network ends in raw head outputs (no sigmoid, no box decode in the graph, so camera NPUs run every op). Per
stride ``s`` it emits ``box_s{s}`` (1, 4, H, W) and ``cls_s{s}`` (1, C, H, W). At cell (i, j) the anchor point is
``((j + 0.5) s, (i + 0.5) s)`` in input pixels; the box is ``anchor -/+ exp(clamp(raw_ltrb)) * s`` (FCOS,
Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019) and the class score
``sigmoid(raw_cls)``. Greedy per-class NMS (Neubeck & Van Gool, ICPR 2006). Everything is driven by the manifest's
``inputs[0]`` and ``decode`` blocks so device_sim needs nothing from camlab.models; letterbox geometry follows the Ultralytics
convention (scale to fit, centred, constant pad) with a cv2.INTER_LINEAR-equivalent (half-pixel) bilinear resize.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

DECODE_TYPE = "fcos_ltrb_exp"
LTRB_CLAMP = (-8.0, 8.0)
PRE_NMS_TOPK = 1000       # candidates kept (by score) before NMS  # raw log-distances are clamped before exp (a saturated INT8 output stays finite)


@dataclass(frozen=True)
class Letterbox:
    """Geometry of fitting a ``src_w`` x ``src_h`` image into ``dst_w`` x ``dst_h`` (scale, then centred pad)."""
    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale: float
    new_w: int
    new_h: int
    pad_x: int
    pad_y: int

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Source-pixel xyxy -> network-input-pixel xyxy."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = b[:, [0, 2]] * (self.new_w / self.src_w) + self.pad_x
        b[:, [1, 3]] = b[:, [1, 3]] * (self.new_h / self.src_h) + self.pad_y
        return b

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Network-input-pixel xyxy -> source-pixel xyxy, clipped to the source image."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) * (self.src_w / self.new_w)
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) * (self.src_h / self.new_h)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, self.src_w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, self.src_h)
        return b


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
    if min(src_w, src_h, dst_w, dst_h) <= 0:
        raise ValueError(f"letterbox sizes must be positive, got {src_w}x{src_h} -> {dst_w}x{dst_h}")
    scale = min(dst_w / src_w, dst_h / src_h)
    new_w = max(1, min(dst_w, int(round(src_w * scale))))
    new_h = max(1, min(dst_h, int(round(src_h * scale))))
    return Letterbox(src_w, src_h, dst_w, dst_h, scale, new_w, new_h, (dst_w - new_w) // 2, (dst_h - new_h) // 2)


def resize_bilinear(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (as cv2.INTER_LINEAR); (H, W[, C]) any dtype -> float32."""
    src = np.asarray(img, np.float32)
    h, w = src.shape[:2]
    ys = np.clip((np.arange(new_h, dtype=np.float32) + 0.5) * (h / new_h) - 0.5, 0, h - 1)
    xs = np.clip((np.arange(new_w, dtype=np.float32) + 0.5) * (w / new_w) - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None]
    wx = (xs - x0)[None, :]
    if src.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    top = src[y0][:, x0] * (1 - wx) + src[y0][:, x1] * wx
    bot = src[y1][:, x0] * (1 - wx) + src[y1][:, x1] * wx
    return top * (1 - wy) + bot * wy


def letterbox_image(img: np.ndarray, dst_w: int, dst_h: int, pad_value: float = 114.0
                    ) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8/float image -> (dst_h, dst_w, 3) float32 in the same value range, and the geometry."""
    h, w = img.shape[:2]
    lb = letterbox_geometry(w, h, dst_w, dst_h)
    out = np.full((dst_h, dst_w) + img.shape[2:], pad_value, np.float32)
    out[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w] = resize_bilinear(img, lb.new_w, lb.new_h)
    return out, lb


def input_size(input_spec: Mapping) -> tuple[int, int]:
    """(width, height) of the manifest input spec (shape [1, 3, H, W])."""
    shape = input_spec["shape"]
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"input shape must be [1, 3, H, W], got {shape}")
    return int(shape[3]), int(shape[2])


def normalize(img_hwc: np.ndarray, input_spec: Mapping) -> np.ndarray:
    """Letterboxed (H, W, 3) RGB in ``value_range`` -> (1, 3, H, W) float32 ``(x - mean) / std`` (manifest input)."""
    mean = np.asarray(input_spec.get("mean", 0.0), np.float32).reshape(-1)
    std = np.asarray(input_spec.get("std", 255.0), np.float32).reshape(-1)
    x = (np.asarray(img_hwc, np.float32) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(rgb: np.ndarray, input_spec: Mapping) -> tuple[np.ndarray, Letterbox]:
    """An RGB uint8 (H, W, 3) frame -> (network input NCHW float32, letterbox geometry), per the manifest input."""
    w, h = input_size(input_spec)
    resize = input_spec.get("resize", {"method": "letterbox"})
    if resize.get("method", "letterbox") != "letterbox":
        raise ValueError(f"input resize.method {resize.get('method')!r} not supported; expected 'letterbox'")
    lb_img, lb = letterbox_image(rgb, w, h, float(resize.get("pad_value", 114.0)))
    return normalize(lb_img, input_spec), lb


def score_thresholds(decode: Mapping) -> np.ndarray:
    """Per-class thresholds (C,) from the decode block (list in class order or {class: threshold})."""
    classes = list(decode["classes"])
    thr = decode.get("score_thresholds", 0.25)
    if isinstance(thr, Mapping):
        missing = [c for c in classes if c not in thr]
        if missing:
            raise ValueError(f"decode.score_thresholds lacks class(es) {missing}")
        return np.asarray([float(thr[c]) for c in classes], np.float32)
    if isinstance(thr, (int, float)):
        return np.full(len(classes), float(thr), np.float32)
    if len(thr) != len(classes):
        raise ValueError(f"decode.score_thresholds has {len(thr)} values for {len(classes)} classes")
    return np.asarray(thr, np.float32)


def anchor_points(h: int, w: int, stride: int) -> np.ndarray:
    """(H*W, 2) cell centres (x, y) in input pixels, row-major like the head's flattened output."""
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    return np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def decode_raw(outputs: Mapping[str, np.ndarray], decode: Mapping, *, score_threshold: float | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw head outputs (batch 1) -> candidate boxes (N, 4) xyxy input px, scores (N,), class ids (N,) before NMS."""
    if decode.get("box_encoding") != DECODE_TYPE:
        raise ValueError(f"decode.box_encoding must be '{DECODE_TYPE}', got {decode.get('box_encoding')!r}")
    thr = score_thresholds(decode) if score_threshold is None else np.full(len(decode["classes"]),
                                                                          float(score_threshold), np.float32)
    boxes, scores, classes = [], [], []
    for level in levels(decode):
        stride = int(level["stride"])
        try:
            box = np.asarray(outputs[level["box"]], np.float32)
            cls = np.asarray(outputs[level["cls"]], np.float32)
        except KeyError as exc:
            raise ValueError(f"decode: output {exc} named in the decode block is missing from the model outputs")
        if box.ndim != 4 or box.shape[0] != 1 or box.shape[1] != 4 or cls.shape[2:] != box.shape[2:]:
            raise ValueError(f"decode: level s{stride}: expected box (1, 4, H, W) and cls (1, C, H, W), "
                             f"got {box.shape} and {cls.shape}")
        h, w = box.shape[2:]
        if cls.shape[1] != len(thr):
            raise ValueError(f"decode: level s{stride}: {cls.shape[1]} class channels, decode names {len(thr)}")
        prob = sigmoid(cls[0].reshape(cls.shape[1], -1).T)               # (HW, C)
        cell, cid = np.nonzero(prob >= thr[None, :])                     # every class over its threshold
        if cell.size == 0:
            continue
        ltrb = np.exp(np.clip(box[0].reshape(4, -1).T[cell], *LTRB_CLAMP)) * stride
        pts = anchor_points(h, w, stride)[cell]
        boxes.append(np.concatenate([pts - ltrb[:, :2], pts + ltrb[:, 2:]], axis=1))
        scores.append(prob[cell, cid])
        classes.append(cid)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return (np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32),
            np.concatenate(classes).astype(np.int64))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4), (M, 4) -> (N, M)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS; indices of kept boxes in descending score order (stops after ``max_keep``: greedy order makes
    the first ``max_keep`` the same as a full run's)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                max_keep: int | None = None) -> np.ndarray:
    """Per-class NMS (boxes of different classes never suppress each other)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    offset = (np.asarray(classes, np.float32) * (float(np.max(boxes)) + 1.0))[:, None]
    return nms(boxes + offset, scores, iou_threshold, max_keep)


@dataclass(frozen=True)
class Detections:
    """Final detections in source-image pixels: ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``classes`` (N,)."""
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scores)


def postprocess(outputs: Mapping[str, np.ndarray], decode: Mapping, lb: Letterbox | None = None, *,
                score_threshold: float | None = None) -> Detections:
    """Decode + top-``pre_nms_topk`` + per-class NMS + top-``max_detections``, mapped back through the letterbox to source pixels when ``lb`` is given."""
    boxes, scores, classes = decode_raw(outputs, decode, score_threshold=score_threshold)
    topk = int(decode.get("pre_nms_topk", PRE_NMS_TOPK))
    if len(scores) > topk:
        top = np.argpartition(-scores, topk - 1)[:topk]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    max_det = int(decode.get("max_detections", 100))
    keep = batched_nms(boxes, scores, classes, float(decode.get("nms_iou", 0.5)), max_det)[:max_det]
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    if lb is not None:
        boxes = lb.to_source(boxes)
    return Detections(boxes, scores, classes, tuple(decode.get("classes", ())))


def output_names(decode: Mapping) -> Sequence[str]:
    """The raw output tensor names the decode block reads, in level order (box, cls per level)."""
    return [n for lvl in levels(decode) for n in (lvl["box"], lvl["cls"])]


def levels(decode: Mapping) -> list[dict]:
    """``decode.levels`` or, from ``decode.strides``, the default names ``box_s{s}`` / ``cls_s{s}``."""
    if decode.get("levels"):
        return list(decode["levels"])
    return [{"stride": int(s), "box": f"box_s{s}", "cls": f"cls_s{s}"} for s in decode["strides"]]
