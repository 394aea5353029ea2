"""Lens shading (vignetting and colour shading) correction with a per-channel gain grid calibrated from a flat field.

The gain grid holds, for each CFA channel (R, Gr, Gb, B), the inverse of the normalised flat-field response sampled
on a coarse grid of cell centres; at run time it is bilinearly interpolated to every photosite (the mesh-shading
method of hardware ISPs, e.g. Yu, "Practical anti-vignetting methods for digital cameras", IEEE TCE 50(4), 2004).
Without a calibration, a radial cos^4-style model ``1 + k r^2`` is used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.sensor.cfa import Pattern, channel_offsets

CHANNELS = ("R", "Gr", "Gb", "B")


@dataclass(frozen=True)
class LscParams:
    """Either a calibrated ``grid`` (4 channels x rows x cols of gains, from :func:`calibrate_lsc`) or the radial
    model gain ``1 + radial_k * r^2`` (r = 1 at the corner). ``max_gain`` caps the correction."""

    enabled: bool = True
    radial_k: float = 0.0
    grid: list[list[list[float]]] | None = None
    max_gain: float = 4.0


def calibrate_lsc(flat: np.ndarray, pattern: Pattern, grid_shape: tuple[int, int] = (13, 17),
                  max_gain: float = 4.0) -> np.ndarray:
    """Black-corrected flat-field CFA (H, W) -> (4, rows, cols) float32 gain grid (R, Gr, Gb, B).

    Each channel plane is averaged over the grid cells; the gain is the channel's peak cell mean over the cell mean,
    so the brightest cell gets 1 and the colour shading between channels is removed too (all channels are brought
    to their own peak; white balance handles the global colour).
    """
    flat = np.asarray(flat, dtype=np.float64)
    rows, cols = grid_shape
    if flat.ndim != 2 or flat.shape[0] < 2 * rows or flat.shape[1] < 2 * cols:
        raise ValueError(f"flat field of shape {flat.shape} is too small for a {rows}x{cols} grid")
    out = np.empty((4, rows, cols), dtype=np.float32)
    for i, name in enumerate(CHANNELS):
        r0, c0 = channel_offsets(pattern)[name]
        plane = flat[r0::2, c0::2]
        ys = np.linspace(0, plane.shape[0], rows + 1).astype(int)
        xs = np.linspace(0, plane.shape[1], cols + 1).astype(int)
        means = np.array([[plane[ys[a]:ys[a + 1], xs[b]:xs[b + 1]].mean() for b in range(cols)] for a in range(rows)])
        if np.any(means <= 0):
            raise ValueError("flat field has non-positive cells; expose it brighter")
        out[i] = np.minimum(means.max() / means, max_gain)
    return out


def _interp_matrix(n_out: int, n_grid: int) -> np.ndarray:
    """(n_out, n_grid) bilinear weights from grid cell centres to output sample positions (edge-clamped)."""
    pos = (np.arange(n_out) + 0.5) / n_out * n_grid - 0.5
    pos = np.clip(pos, 0, n_grid - 1)
    i0 = np.minimum(np.floor(pos).astype(int), max(n_grid - 2, 0))
    f = pos - i0
    m = np.zeros((n_out, n_grid))
    m[np.arange(n_out), i0] += 1 - f
    if n_grid > 1:
        m[np.arange(n_out), np.minimum(i0 + 1, n_grid - 1)] += f
    return m


def gain_map(shape: tuple[int, int], pattern: Pattern, p: LscParams) -> np.ndarray:
    """Full-resolution (H, W) float32 shading-gain map for the frame size."""
    h, w = shape
    out = np.ones((h, w), dtype=np.float32)
    if p.grid is not None:
        grid = np.asarray(p.grid, dtype=np.float64)
        if grid.ndim != 3 or grid.shape[0] != 4:
            raise ValueError(f"lsc.grid must be 4 x rows x cols, got shape {grid.shape}")
        for i, name in enumerate(CHANNELS):
            r0, c0 = channel_offsets(pattern)[name]
            ph, pw = len(range(r0, h, 2)), len(range(c0, w, 2))
            g = _interp_matrix(ph, grid.shape[1]) @ grid[i] @ _interp_matrix(pw, grid.shape[2]).T
            out[r0::2, c0::2] = g
    elif p.radial_k != 0.0:
        yy = (np.arange(h) + 0.5 - h / 2) / (h / 2)
        xx = (np.arange(w) + 0.5 - w / 2) / (w / 2)
        r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 2.0
        out = (1.0 + p.radial_k * r2).astype(np.float32)
    return np.clip(out, 0.0, p.max_gain).astype(np.float32)


def lens_shading_correct(cfa: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Linear CFA (H, W) x gain map (H, W) from :func:`gain_map` -> corrected CFA float32 (not clipped)."""
    return (cfa * gains).astype(np.float32, copy=False)
