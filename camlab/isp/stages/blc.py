"""Black-level correction (per CFA channel) and normalisation to sensor white.

The sensor adds a pedestal (dark level) to every photosite so read noise is not clipped at zero; the ISP subtracts
it per colour channel and scales so the white (saturation) level maps to 1.0 (EMVA Standard 1288, release 4.0,
"dark signal" / "saturation capacity"; DNG specification 1.6, BlackLevel / WhiteLevel tags).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.isp.stages import cfa_tile, tile_to_full
from camlab.sensor.cfa import Pattern


@dataclass(frozen=True)
class BlcParams:
    """``black_level``/``white_level`` in DN override the frame's metadata when set; ``clip`` clamps to [0, 1]."""

    black_level: tuple[float, float, float, float] | None = None
    white_level: float | None = None
    clip: bool = True


def black_level_correct(cfa: np.ndarray, pattern: Pattern, black_level, white_level: float,
                        clip: bool = True) -> np.ndarray:
    """Raw CFA (H, W) in DN -> float32 (H, W), linear, 0 = black, 1 = white.

    ``black_level`` is a scalar or (R, Gr, Gb, B) in DN; each channel is scaled by ``1 / (white - black_c)``.
    """
    h, w = cfa.shape
    black = cfa_tile(black_level, pattern).astype(np.float64)
    if np.any(black >= white_level):
        raise ValueError(f"black level {black_level} must be below the white level {white_level}")
    scale = (1.0 / (white_level - black)).astype(np.float32)
    out = (cfa.astype(np.float32) - tile_to_full(black.astype(np.float32), h, w)) * tile_to_full(scale, h, w)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out
