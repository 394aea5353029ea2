"""AWB/AE statistics per zone from the raw mosaic, as a hardware ISP's statistics block produces them.

Each 2x2 Bayer quad gives one RGB sample (R, mean(Gr, Gb), B) (the "quad binning" of e.g. the Rockchip and
Qualcomm 3A statistics blocks); quads with any channel at or above ``saturation`` are excluded from the zone
means. Zones form a ``cols x rows`` grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.sensor.cfa import Pattern, channel_offsets


@dataclass
class ZoneStats:
    """Per-zone (rows, cols) means of the unsaturated quads, their fraction, and the mean luma of all quads."""

    r: np.ndarray
    g: np.ndarray
    b: np.ndarray
    valid: np.ndarray
    luma: np.ndarray

    def as_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("r", "g", "b", "valid", "luma")}


def quad_rgb(cfa: np.ndarray, pattern: Pattern, step: int = 1) -> np.ndarray:
    """Linear CFA (H, W) -> (H/2, W/2, 3) float32 RGB of the 2x2 quads (every ``step``-th quad)."""
    o = channel_offsets(pattern)
    h2, w2 = cfa.shape[0] // 2, cfa.shape[1] // 2
    s = 2 * step

    def plane(name):
        r, c = o[name]
        return cfa[r:2 * h2:s, c:2 * w2:s]

    return np.stack([plane("R"), 0.5 * (plane("Gr") + plane("Gb")), plane("B")], axis=-1).astype(np.float32)


def zone_stats(cfa: np.ndarray, pattern: Pattern, zones: tuple[int, int] = (16, 12),
               saturation: float = 0.95, step: int = 1) -> ZoneStats:
    """Linear CFA -> :class:`ZoneStats` over a ``zones`` = (cols, rows) grid."""
    return zone_stats_from_quads(quad_rgb(cfa, pattern, step), zones, saturation)


def _block_sum(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return np.add.reduceat(np.add.reduceat(x, ys[:-1], axis=0), xs[:-1], axis=1)


def zone_stats_from_quads(q: np.ndarray, zones: tuple[int, int] = (16, 12), saturation: float = 0.95) -> ZoneStats:
    """Quad RGB (h, w, 3) -> :class:`ZoneStats` over a ``zones`` = (cols, rows) grid."""
    cols, rows = zones
    h, w = q.shape[:2]
    if h < rows or w < cols:
        raise ValueError(f"statistics grid of {w}x{h} quads is too small for {cols}x{rows} zones")
    ys = np.linspace(0, h, rows + 1).astype(int)
    xs = np.linspace(0, w, cols + 1).astype(int)
    ok = (np.maximum(np.maximum(q[..., 0], q[..., 1]), q[..., 2]) < saturation).astype(np.float64)
    n = _block_sum(ok, ys, xs)
    area = np.diff(ys)[:, None] * np.diff(xs)[None, :]
    sums = [_block_sum(q[..., c].astype(np.float64) * ok, ys, xs) for c in range(3)]
    luma = q.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
    with np.errstate(invalid="ignore", divide="ignore"):
        r, g, b = (np.where(n > 0, s / np.maximum(n, 1), 0.0).astype(np.float32) for s in sums)
    return ZoneStats(r=r, g=g, b=b, valid=(n / area).astype(np.float32),
                     luma=(_block_sum(luma, ys, xs) / area).astype(np.float32))
