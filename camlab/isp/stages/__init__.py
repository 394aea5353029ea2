"""ISP stages, one module per stage: pure functions over arrays plus a frozen params dataclass each.

Conventions (see docs/architecture.md): a CFA frame between stages is float32 (H, W), linear, 1.0 = sensor white
after black-level correction; RGB is float32 (H, W, 3). Per-CFA-channel values are given as 4-tuples in the order
(R, Gr, Gb, B) and laid onto the 2x2 Bayer tile with :func:`cfa_tile`.
"""
from __future__ import annotations

import numpy as np

from camlab.sensor.cfa import Pattern, channel_offsets


def cfa_tile(values4, pattern: Pattern) -> np.ndarray:
    """(R, Gr, Gb, B) values -> (2, 2) float32 tile laid out as the Bayer ``pattern``."""
    vals = np.asarray(values4, dtype=np.float64).reshape(-1)
    if vals.size == 1:
        vals = np.repeat(vals, 4)
    if vals.size != 4:
        raise ValueError(f"expected 1 or 4 per-channel values (R, Gr, Gb, B), got {vals.size}")
    tile = np.zeros((2, 2), dtype=np.float64)
    for name, v in zip(("R", "Gr", "Gb", "B"), vals):
        r, c = channel_offsets(pattern)[name]
        tile[r, c] = v
    return tile.astype(np.float32)


def rgb_tile(gains3, pattern: Pattern) -> np.ndarray:
    """(r, g, b) values -> (2, 2) float32 tile (both greens get g)."""
    r, g, b = (float(x) for x in gains3)
    return cfa_tile((r, g, g, b), pattern)


def tile_to_full(tile: np.ndarray, height: int, width: int) -> np.ndarray:
    """Repeat a (2, 2) tile over an (H, W) frame."""
    return np.tile(tile, ((height + 1) // 2, (width + 1) // 2))[:height, :width]
