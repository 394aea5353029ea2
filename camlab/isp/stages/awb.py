"""Auto white balance: illuminant estimation by grey-world, white-patch, shades-of-grey and grey-edge.

- grey-world: Buchsbaum, "A spatial processor model for object colour perception", J. Franklin Inst. 310, 1980.
- white-patch (max-RGB, robust percentile): Land & McCann, "Lightness and retinex theory", JOSA 61(1), 1971.
- shades-of-grey (Minkowski p-norm): Finlayson & Trezzi, "Shades of Gray and Colour Constancy", CIC 2004.
- grey-edge (p-norm of gradients): van de Weijer, Gevers, Gijsenij, "Edge-Based Color Constancy", IEEE TIP 16(9), 2007.

Input is linear camera RGB (any (..., 3) array, e.g. quad-binned CFA); output gains (r, g, b) with g = 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["grey_world", "white_patch", "shades_of_grey", "grey_edge"]


@dataclass(frozen=True)
class AwbParams:
    """``p``: Minkowski norm of shades-of-grey; ``edge_p`` and ``edge_sigma`` (Gaussian pre-smoothing, pixels) of
    grey-edge; ``percentile`` for white-patch; samples outside
    [``dark``, ``saturation``] are ignored; gains are clamped to [``min_gain``, ``max_gain``]; ``speed`` in (0, 1]
    is the per-frame damping of the pipeline's AWB state."""

    method: Method = "shades_of_grey"
    p: float = 6.0
    edge_p: float = 1.0
    edge_sigma: float = 1.0
    percentile: float = 99.0
    dark: float = 0.01
    saturation: float = 0.95
    min_gain: float = 0.25
    max_gain: float = 8.0
    speed: float = 0.3

    def __post_init__(self):
        if not (self.p >= 1 and self.edge_p >= 1):
            raise ValueError(f"p and edge_p must be >= 1, got {self.p}, {self.edge_p}")
        if self.edge_sigma < 0:
            raise ValueError(f"edge_sigma must be >= 0, got {self.edge_sigma}")
        if not 0 < self.speed <= 1:
            raise ValueError(f"speed must be in (0, 1], got {self.speed}")


def _planes(flat: np.ndarray) -> np.ndarray:
    """(N, 3) samples -> contiguous (3, N) channel planes (elementwise work on planes vectorises)."""
    return np.ascontiguousarray(flat.T)


def _keep(planes: np.ndarray, p: AwbParams) -> np.ndarray:
    """Mask of the samples inside [dark, saturation] on every channel; all samples when fewer than 16 qualify."""
    r, g, b = planes
    keep = (np.maximum(np.maximum(r, g), b) < p.saturation) & (np.minimum(np.minimum(r, g), b) > p.dark)
    return keep if np.count_nonzero(keep) >= 16 else np.ones_like(keep)


def _power_mean(planes: np.ndarray, keep: np.ndarray, q: float) -> np.ndarray:
    """Per-channel mean of x**q over the kept samples, accumulated in float64. Integer orders up to 8 (the tuned
    shades-of-grey p = 6) by repeated squaring, others through ``np.power``."""
    sel = np.compress(keep, planes, axis=1)  # (boolean indexing along axis 1 is ~5x slower)
    if q == int(q) and 1 <= q <= 8:
        k = int(q)
        acc = None
        base = sel.astype(np.float64)
        while k:
            if k & 1:
                acc = base if acc is None else acc * base
            k >>= 1
            if k:
                base = base * base
        powered = acc
    else:
        powered = np.power(sel, np.float32(q))
    return powered.mean(axis=1, dtype=np.float64)


def estimate_illuminant(rgb: np.ndarray, p: AwbParams = AwbParams()) -> np.ndarray:
    """Linear camera RGB (..., 3) or (H, W, 3) -> illuminant colour (3,) normalised to unit green."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if p.method == "grey_edge":
        if rgb.ndim != 3:
            raise ValueError("grey_edge needs an (H, W, 3) image")
        sat = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) >= p.saturation
        img = rgb
        if p.edge_sigma > 0:  # derivatives of the Gaussian-smoothed image, as in van de Weijer et al.
            import cv2

            img = cv2.GaussianBlur(np.ascontiguousarray(rgb), (0, 0), p.edge_sigma)
        gy = np.abs(np.diff(img, axis=0))[:, :-1]
        gx = np.abs(np.diff(img, axis=1))[:-1, :]
        grad = np.sqrt(gx ** 2 + gy ** 2)
        ok = ~(sat[:-1, :-1] | sat[1:, :-1] | sat[:-1, 1:])
        g = grad[ok] if ok.sum() >= 16 else grad.reshape(-1, 3)
        est = np.mean(np.power(g, np.float32(p.edge_p)), axis=0, dtype=np.float64) ** (1.0 / p.edge_p)
    else:
        planes = _planes(rgb.reshape(-1, 3))
        keep = _keep(planes, p)
        if p.method == "grey_world":
            est = _power_mean(planes, keep, 1.0)
        elif p.method == "white_patch":
            est = np.percentile(np.compress(keep, planes, axis=1), p.percentile, axis=1)
        elif p.method == "shades_of_grey":
            est = _power_mean(planes, keep, p.p) ** (1.0 / p.p)
        else:
            raise ValueError(f"unknown AWB method {p.method!r}")
    est = np.maximum(np.asarray(est, dtype=np.float64), 1e-9)
    return est / est[1]


def awb_gains(rgb: np.ndarray, p: AwbParams = AwbParams()) -> tuple[float, float, float]:
    """Linear camera RGB -> white-balance gains (r, 1, b) that map the estimated illuminant to grey."""
    ill = estimate_illuminant(rgb, p)
    g = np.clip(1.0 / ill, p.min_gain, p.max_gain)
    return float(g[0]), 1.0, float(g[2])
