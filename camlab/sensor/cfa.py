"""Colour filter array (Bayer) patterns: names, per-site colour maps, mosaicing.

Bayer, "Color imaging array", US patent 3,971,065 (1976). A pattern name lists the colours of the top-left 2x2
block in raster order: RGGB = R at (0,0), G at (0,1), G at (1,0), B at (1,1).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from camlab.errors import CamlabError

Pattern = Literal["RGGB", "GRBG", "GBRG", "BGGR"]
PATTERNS: tuple[Pattern, ...] = ("RGGB", "GRBG", "GBRG", "BGGR")
_CHANNEL = {"R": 0, "G": 1, "B": 2}


def parse_pattern(name: str, field: str = "pattern") -> Pattern:
    """Validate a pattern name (case-insensitive) and return it upper-case."""
    if not isinstance(name, str) or name.upper() not in PATTERNS:
        raise CamlabError(f"{field}: unknown Bayer pattern {name!r}; expected one of {', '.join(PATTERNS)}")
    return name.upper()  # type: ignore[return-value]


def pattern_channels(pattern: Pattern) -> np.ndarray:
    """(2, 2) int array: colour index (0=R, 1=G, 2=B) of each site of the 2x2 tile."""
    p = parse_pattern(pattern)
    return np.array([[_CHANNEL[p[0]], _CHANNEL[p[1]]], [_CHANNEL[p[2]], _CHANNEL[p[3]]]], dtype=np.int8)


def channel_offsets(pattern: Pattern) -> dict[str, tuple[int, int]]:
    """(row, col) offset within the 2x2 tile of R, Gr (G on the R row), Gb (G on the B row) and B."""
    p = parse_pattern(pattern)
    sites = {(0, 0): p[0], (0, 1): p[1], (1, 0): p[2], (1, 1): p[3]}
    r = next(k for k, v in sites.items() if v == "R")
    b = next(k for k, v in sites.items() if v == "B")
    gr = next(k for k, v in sites.items() if v == "G" and k[0] == r[0])
    gb = next(k for k, v in sites.items() if v == "G" and k[0] == b[0])
    return {"R": r, "Gr": gr, "Gb": gb, "B": b}


def colour_index_map(pattern: Pattern, height: int, width: int) -> np.ndarray:
    """(H, W) int8 map of the colour index at every photosite."""
    tile = pattern_channels(pattern)
    reps = ((height + 1) // 2, (width + 1) // 2)
    return np.tile(tile, reps)[:height, :width]


def channel_masks(pattern: Pattern, height: int, width: int) -> np.ndarray:
    """(3, H, W) bool masks of the R, G and B sites."""
    idx = colour_index_map(pattern, height, width)
    return np.stack([idx == c for c in range(3)])


def mosaic(rgb: np.ndarray, pattern: Pattern) -> np.ndarray:
    """Sample an (H, W, 3) image through the CFA -> (H, W) array of the same dtype."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CamlabError(f"mosaic: expected an (H, W, 3) image, got shape {rgb.shape}")
    idx = colour_index_map(pattern, rgb.shape[0], rgb.shape[1])
    return np.take_along_axis(rgb, idx[..., None].astype(np.intp), axis=2)[..., 0]


def shift_pattern(pattern: Pattern, dy: int, dx: int) -> Pattern:
    """Pattern seen after cropping ``dy`` rows and ``dx`` columns from the top-left."""
    tile = parse_pattern(pattern)
    grid = [[tile[0], tile[1]], [tile[2], tile[3]]]
    s = "".join(grid[(r + dy) % 2][(c + dx) % 2] for r in range(2) for c in range(2))
    return parse_pattern(s)
