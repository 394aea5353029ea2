"""Luma sharpening by unsharp masking with noise-aware coring.

Unsharp masking (Schreiber, "Wirephoto quality improvement by unsharp masking", Pattern Recognition 2, 1970) on
display luma with a 3x3 binomial blur; the detail signal is cored (soft-thresholded, as in Donoho, "De-noising by
soft-thresholding", IEEE TIT 41(3), 1995) by ``coring`` times the modelled noise sigma at that luma, so noise is not
amplified while real edges are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.isp.stages.nr2d import _sigma_of


@dataclass(frozen=True)
class SharpenParams:
    """``amount``: gain of the cored detail; ``coring``: soft threshold in modelled noise sigmas."""

    enabled: bool = True
    amount: float = 0.6
    coring: float = 1.0

    def __post_init__(self):
        if self.amount < 0 or self.coring < 0:
            raise ValueError("amount and coring must be >= 0")


def binomial3(y: np.ndarray) -> np.ndarray:
    """3x3 [1 2 1]^T [1 2 1] / 16 blur with edge replication."""
    pad = np.pad(y, 1, mode="edge")
    h, w = y.shape
    rows = pad[0:h, :] + 2 * pad[1:h + 1, :] + pad[2:h + 2, :]
    return ((rows[:, 0:w] + 2 * rows[:, 1:w + 1] + rows[:, 2:w + 2]) * np.float32(1 / 16)).astype(np.float32)


def sharpen_luma(y: np.ndarray, sigma_lut: np.ndarray, p: SharpenParams = SharpenParams()) -> np.ndarray:
    """Display luma (H, W) float32 -> sharpened luma clipped to [0, 1]."""
    if not p.enabled or p.amount == 0:
        return y.astype(np.float32, copy=True)
    d = y - binomial3(y)
    thr = np.float32(p.coring) * _sigma_of(y, sigma_lut)
    cored = np.sign(d) * np.maximum(np.abs(d) - thr, np.float32(0.0))
    return np.clip(y + np.float32(p.amount) * cored, 0.0, 1.0).astype(np.float32)
