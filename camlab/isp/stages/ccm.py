"""Colour correction matrix: camera RGB (white-balanced) -> linear sRGB/BT.709 primaries.

A 3x3 linear transform fitted to a colour chart (Finlayson, Mackiewicz, Hurlbert, "Color Correction Using
Root-Polynomial Regression", IEEE TIP 24(5), 2015, gives the linear least-squares baseline used here). Rows sum to 1
so white stays white. ``saturation`` scales chroma around luma afterwards; ``mono`` replaces it by a luma matrix
(IR night mode).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class CcmParams:
    """``matrix``: 9 values row-major; None = the frame's metadata CCM, or identity when the frame has none."""

    enabled: bool = True
    matrix: tuple[float, ...] | None = None
    saturation: float = 1.0

    def __post_init__(self):
        if self.matrix is not None and len(self.matrix) != 9:
            raise ValueError(f"matrix must have 9 values (3x3 row-major), got {len(self.matrix)}")


def effective_matrix(matrix, saturation: float = 1.0, mono: bool = False) -> np.ndarray:
    """3x3 float32 matrix combining the CCM with a saturation change (or the luma projection for ``mono``)."""
    m = np.eye(3) if matrix is None else np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    if mono:
        return np.tile(LUMA_709.astype(np.float64), (3, 1)).astype(np.float32)
    if saturation != 1.0:
        lum = np.tile(LUMA_709.astype(np.float64), (3, 1))
        sat = saturation * np.eye(3) + (1 - saturation) * lum
        m = sat @ m
    return m.astype(np.float32)


def apply_ccm(rgb: np.ndarray, matrix: np.ndarray, clip: bool = True) -> np.ndarray:
    """Linear RGB (H, W, 3) -> ``matrix`` @ rgb per pixel, float32, clipped to [0, 1] when ``clip``."""
    out = np.einsum("hwc,kc->hwk", rgb.astype(np.float32), np.asarray(matrix, dtype=np.float32), optimize=True)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)
