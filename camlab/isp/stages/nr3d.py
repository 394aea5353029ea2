"""Motion-adaptive temporal noise reduction (3D-DNR): a recursive filter whose blend follows a motion detector.

First-order recursive temporal filter with a motion-controlled coefficient (Dubois & Sabri, "Noise reduction in
image sequences using motion-compensated temporal filtering", IEEE Trans. Commun. 32(7), 1984, without the motion
compensation): ``out = prev + a (cur - prev)``, with ``a`` from ``alpha_static`` (static, strong averaging) up to 1
(moving, no averaging) as the luma difference grows from ``motion_lo`` to ``motion_hi`` noise sigmas. Chroma uses
the largest motion of its four co-sited luma pixels, so moving colour never ghosts.

The motion detector (``motion_window``): ``pixel`` compares each pixel's own difference |cur - prev| with the
thresholds; ``block`` compares the mean absolute difference over a 2x3 window, the two luma rows of the pixel's 4:2:0
block (the rows one chroma sample covers) and its column +-1. A single pixel's difference of two noisy frames is a
poor motion test at night gains: noise alone opens the blend (less averaging where nothing moves) and a real change
hides in it (ghosts). Averaging the difference over a small window before the threshold test is the classic
remedy for motion-detecting recursive filters (Brailean, Kleihorst, Efstratiadis, Katsaggelos, Lagendijk, "Noise
reduction filters for dynamic image sequences: a review", Proc. IEEE 83(9), 1995): six independent samples would cut
the noise of the test by sqrt(6) ~ 2.4x (less, as neighbouring pixels' noise is correlated after demosaicing), so
lower thresholds catch the motion that the per-pixel test mistook for noise. The
window stays inside one block row so the fused fast path computes it in the pass that denoises those two rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from camlab.isp.stages.nr2d import _sigma_of


@dataclass(frozen=True)
class Nr3dParams:
    """``alpha_static``: weight of the current frame where nothing moves; ``motion_lo``/``motion_hi``: the luma
    difference (in modelled noise sigmas) where the blend starts to open / is fully open; ``motion_window``: that
    difference per pixel (``pixel``) or as the mean over the pixel's 2x3 block-row window (``block``, see the
    module docstring)."""

    enabled: bool = True
    alpha_static: float = 0.3
    motion_lo: float = 1.0
    motion_hi: float = 3.0
    motion_window: Literal["pixel", "block"] = "pixel"

    def __post_init__(self):
        if not 0 < self.alpha_static <= 1:
            raise ValueError(f"alpha_static must be in (0, 1], got {self.alpha_static}")
        if not self.motion_hi > self.motion_lo >= 0:
            raise ValueError("need 0 <= motion_lo < motion_hi")
        if self.motion_window not in MOTION_WINDOWS:
            raise ValueError(f"motion_window must be one of {MOTION_WINDOWS}, got {self.motion_window!r}")


MOTION_WINDOWS = ("pixel", "block")
#: what the block window's thresholds are of the per-pixel test's for a comparable test: ``camlab tune isp`` moves
#: both thresholds by this factor when it tries the other window on a known point. Read off the 12 tuning scenes at
#: ISO 3200 (one-off probe, 2026-12-07, fast path): switching the shipped tuning / the 14:24 tuned pick to the block
#: window with their thresholds times 0.4, 0.5, 0.6, 0.7, 0.8, 1.0 scored 29.17, 29.42, 29.50, 29.50, 29.47, 29.35 /
#: 29.78, 30.01, 30.08, 30.07, 30.03, 29.92 dB (per-pixel: 29.36 / 29.94)
BLOCK_THRESHOLD_SCALE = 0.6


def motion_difference(y: np.ndarray, prev_y: np.ndarray, window: str = "pixel") -> np.ndarray:
    """|y - prev_y| (H, W) float32, per pixel or (``block``) as the mean over each pixel's 2x3 window: rows 2k and
    2k+1 of its block row (a last odd row alone), columns x-1..x+1 (edge replicate)."""
    d = np.abs(np.asarray(y, np.float32) - np.asarray(prev_y, np.float32))
    if window == "pixel":
        return d
    h, w = d.shape
    pairs = d[:h // 2 * 2].reshape(h // 2, 2, w).sum(axis=1)       # |d| of the block's two rows, per column
    if h % 2:
        pairs = np.concatenate([pairs, 2 * d[h - 1:]], axis=0)       # a lone last row counts twice
    pad = np.pad(pairs, ((0, 0), (1, 1)), mode="edge")
    mean = (pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]) * np.float32(1.0 / 6.0)
    return np.repeat(mean, 2, axis=0)[:h].astype(np.float32)


def blend_weight(y: np.ndarray, prev_y: np.ndarray, sigma_lut: np.ndarray, p: Nr3dParams) -> np.ndarray:
    """Per-pixel weight of the current frame (H, W) float32 in [alpha_static, 1]."""
    sig = np.maximum(_sigma_of(y, sigma_lut), np.float32(1e-6))
    d = motion_difference(y, prev_y, p.motion_window)
    m = np.clip((d / sig - np.float32(p.motion_lo)) / np.float32(p.motion_hi - p.motion_lo), 0, 1)
    return (np.float32(p.alpha_static) + np.float32(1 - p.alpha_static) * m).astype(np.float32)


def temporal_denoise(y: np.ndarray, uv: np.ndarray, prev_y: np.ndarray | None, prev_uv: np.ndarray | None,
                     sigma_lut: np.ndarray, p: Nr3dParams = Nr3dParams()):
    """Current luma (H, W) + chroma (H/2, W/2, 2) and the previous outputs -> (luma, chroma, weight map).

    Without a usable previous frame (first frame, size change) the input passes through with weight 1.
    """
    if not p.enabled or prev_y is None or prev_y.shape != y.shape or prev_uv is None or prev_uv.shape != uv.shape:
        return y.copy(), uv.copy(), np.ones_like(y)
    a = blend_weight(y, prev_y, sigma_lut, p)
    out_y = prev_y + a * (y - prev_y)
    h2, w2 = uv.shape[:2]
    ac = a[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).max(axis=(1, 3))
    out_uv = prev_uv + ac[..., None] * (uv - prev_uv)
    return out_y.astype(np.float32), out_uv.astype(np.float32), a
