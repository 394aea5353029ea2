"""Zones: privacy polygons masked out of the picture before AI and recording, and named detection zones.

Polygons are normalised (x, y) in [0, 1]; rasterised with the even-odd rule (PNPOLY) at pixel centres. A privacy
mask paints the NV12 frame black (Y = 16, UV = 128, BT.709 limited range), so encoders, snapshots and the
detector all see the same masked picture, as when the VPSS cover region is set. A detection's zone is the detect
polygon holding its footpoint (bottom centre of the box); with no detect zones, every event is in ``full_frame``.
"""
from __future__ import annotations

import numpy as np

from device_sim.scenario import point_in_polygon


def polygon_mask(polys, width: int, height: int) -> np.ndarray:
    """(H, W) bool: True inside any polygon."""
    ys, xs = np.mgrid[0:height, 0:width]
    x = (xs + 0.5) / width
    y = (ys + 0.5) / height
    m = np.zeros((height, width), bool)
    for p in polys:
        m |= point_in_polygon(x, y, p)
    return m


def nv12_mask(polys, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks for the Y plane (H, W) and the interleaved UV plane (H/2, W) of an NV12 frame."""
    y = polygon_mask(polys, width, height)
    c = polygon_mask(polys, width // 2, height // 2)
    uv = np.repeat(c, 2, axis=1)
    return y, uv


def apply_nv12_mask(nv12: np.ndarray, mask: tuple[np.ndarray, np.ndarray]) -> None:
    """Paint the masked area black in place."""
    ym, uvm = mask
    h = ym.shape[0]
    nv12[:h][ym] = 16
    nv12[h:][uvm] = 128


def zone_of(box_norm, detect_zones) -> str:
    """Name of the first detect zone containing the box's footpoint; ``full_frame`` when none are defined."""
    if not detect_zones:
        return "full_frame"
    x0, y0, x1, y1 = box_norm
    fx, fy = np.array([(x0 + x1) / 2]), np.array([y1 - 1e-6])
    for z in detect_zones:
        if point_in_polygon(fx, fy, z.polygon)[0]:
            return z.name
    return ""
