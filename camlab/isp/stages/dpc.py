"""Defective (hot/dead) pixel correction: median of the same-colour neighbours with a threshold.

A photosite is defective when it lies more than ``threshold`` above the maximum (hot) or below the minimum (dead)
of its eight same-colour neighbours at distance 2 (a dynamic, calibration-free detector as in Chang, Tsai,
"Dynamic defect detection and correction for CMOS image sensors", IEEE ICCE 2007 / the min-max test of many
hardware ISPs). It is replaced by the median of those eight neighbours. Distance-2 neighbours share the pixel's
colour in every Bayer pattern, so the stage is pattern-independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OFFSETS = ((-2, -2), (-2, 0), (-2, 2), (0, -2), (0, 2), (2, -2), (2, 0), (2, 2))


@dataclass(frozen=True)
class DpcParams:
    """``threshold``: margin beyond the neighbours' max/min (linear, 1.0 = white) that marks a defect."""

    enabled: bool = True
    threshold: float = 0.08

    def __post_init__(self):
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")


def mirror_index(n: int, d: int) -> np.ndarray:
    """Index of the neighbour at offset ``d`` for every position 0..n-1; past an edge the neighbour on the other
    side (offset ``-d``) is used, which keeps the Bayer phase and never selects the pixel itself."""
    i = np.arange(n) + d
    bad = (i < 0) | (i >= n)
    i[bad] -= 2 * d
    return np.clip(i, 0, n - 1)


def same_colour_neighbours(cfa: np.ndarray) -> np.ndarray:
    """(8, H, W) stack of the distance-2 same-colour neighbours (mirrored about the pixel at the borders)."""
    h, w = cfa.shape
    return np.stack([cfa[mirror_index(h, dy)][:, mirror_index(w, dx)] for dy, dx in OFFSETS])


def correct_defects(cfa: np.ndarray, p: DpcParams = DpcParams()) -> tuple[np.ndarray, np.ndarray]:
    """Linear CFA float32 (H, W) -> (corrected CFA, bool mask of the pixels that were replaced)."""
    nb = same_colour_neighbours(cfa)
    lo, hi = nb.min(axis=0), nb.max(axis=0)
    bad = (cfa > hi + p.threshold) | (cfa < lo - p.threshold)
    out = cfa.copy()
    if bad.any():
        srt = np.sort(nb[:, bad], axis=0)
        out[bad] = 0.5 * (srt[3] + srt[4])
    return out.astype(np.float32, copy=False), bad
