"""Scaler: the main stream and the 640x360 substream from one frame, with an antialiasing triangle filter.

Separable resampling with a triangle (tent) kernel whose support widens with the downscale factor (area-correct
antialiasing, as PIL's ``Image.resize(BILINEAR)`` and Wolberg, "Digital Image Warping", 1990, ch. 5); upscaling is
plain bilinear. With ``fit: crop`` the source is centre-cropped to the output aspect first (no distortion).
Luma is scaled at full resolution and the 4:2:0 chroma at half resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class ScaleParams:
    """Stream sizes as (width, height), both even; ``fit``: centre-crop to the aspect or stretch."""

    main: tuple[int, int] = (1920, 1080)
    sub: tuple[int, int] = (640, 360)
    fit: Literal["crop", "stretch"] = "crop"

    def __post_init__(self):
        for name, (w, h) in (("main", self.main), ("sub", self.sub)):
            if w <= 0 or h <= 0 or w % 2 or h % 2:
                raise ValueError(f"{name} size must be positive and even, got {w}x{h}")


def crop_window(in_w: int, in_h: int, out_w: int, out_h: int, fit: str = "crop") -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of the source region (even offsets/sizes) mapped onto the output."""
    if fit == "stretch":
        return 0, 0, in_w, in_h
    if in_w * out_h > out_w * in_h:  # source wider: crop columns
        w = min(in_w, int(round(in_h * out_w / out_h / 2)) * 2)
        return ((in_w - w) // 4) * 2, 0, w, in_h
    h = min(in_h, int(round(in_w * out_h / out_w / 2)) * 2)
    return 0, ((in_h - h) // 4) * 2, in_w, h


def resample_weights(n_in: int, n_out: int, start: int = 0, length: int | None = None):
    """Tent-filter taps: (index (n_out, T) int32 into [0, n_in), weight (n_out, T) float32 rows summing to 1)."""
    length = n_in - start if length is None else length
    scale = length / n_out
    support = max(1.0, scale)
    taps = int(np.ceil(support)) * 2 + 1
    centre = (np.arange(n_out) + 0.5) * scale - 0.5 + start
    first = np.floor(centre - support).astype(int) + 1
    idx = first[:, None] + np.arange(taps)[None, :]
    w = np.maximum(0.0, 1.0 - np.abs(idx - centre[:, None]) / support)
    idx = np.clip(idx, start, start + length - 1)
    w /= w.sum(axis=1, keepdims=True)
    used = np.any(w > 0, axis=0)  # drop tap columns that are zero for every output (e.g. 2 of 7 at exactly 3x)
    return idx[:, used].astype(np.int32), w[:, used].astype(np.float32)


def resize(plane: np.ndarray, out_w: int, out_h: int, window=None) -> np.ndarray:
    """(H, W) or (H, W, C) float32 -> (out_h, out_w[, C]) over the source ``window`` (x0, y0, w, h)."""
    h, w = plane.shape[:2]
    x0, y0, ww, wh = window if window is not None else (0, 0, w, h)
    if (ww, wh) == (out_w, out_h):
        return plane[y0:y0 + wh, x0:x0 + ww].astype(np.float32, copy=True)
    iy, wy = resample_weights(h, out_h, y0, wh)
    ix, wx = resample_weights(w, out_w, x0, ww)
    rows = np.einsum("ot...,ot->o...", plane[iy], wy)
    return np.einsum("hot...,ot->ho...", rows[:, ix], wx).astype(np.float32)


def scale_streams(y: np.ndarray, uv: np.ndarray, p: ScaleParams = ScaleParams(), y_sub: np.ndarray | None = None):
    """Luma (H, W) + chroma (H/2, W/2, 2) -> {"main": (y, uv), "sub": (y, uv)} at the configured sizes.

    ``y_sub``: a different luma of the same size to scale for the substream (the pipeline passes the unsharpened
    one); default ``y``."""
    h, w = y.shape
    out = {}
    for name, (ow, oh) in (("main", p.main), ("sub", p.sub)):
        x0, y0, cw, ch = crop_window(w, h, ow, oh, p.fit)
        src = y_sub if (name == "sub" and y_sub is not None) else y
        ys = resize(src, ow, oh, (x0, y0, cw, ch))
        uvs = resize(uv, ow // 2, oh // 2, (x0 // 2, y0 // 2, cw // 2, ch // 2))
        out[name] = (ys, uvs)
    return out
