"""White balance: per-channel gains on the CFA so a neutral surface gives R = G = B (von Kries adaptation).

von Kries, "Influence of adaptation on the effects produced by luminous stimuli" (1905); applied on the raw mosaic
before demosaicing as in the DNG pipeline (DNG specification 1.6, AsShotNeutral). Gains come from the tuning
(``manual``), the frame's metadata (``as_shot``) or the AWB estimate (``auto``, camlab.isp.stages.awb).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from camlab.isp.stages import rgb_tile, tile_to_full
from camlab.sensor.cfa import Pattern


@dataclass(frozen=True)
class WbParams:
    """``mode``: where the gains come from; ``gains`` (r, g, b) for ``manual`` and the fallback of ``as_shot``."""

    enabled: bool = True
    mode: Literal["auto", "as_shot", "manual"] = "auto"
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    clip: bool = True

    def __post_init__(self):
        if any(not g > 0 for g in self.gains):
            raise ValueError(f"gains must be > 0, got {self.gains}")


def white_balance_cfa(cfa: np.ndarray, pattern: Pattern, gains, clip: bool = True) -> np.ndarray:
    """Linear CFA (H, W) -> white-balanced CFA float32, clipped to [0, 1] when ``clip``."""
    h, w = cfa.shape
    out = cfa * tile_to_full(rgb_tile(gains, pattern), h, w)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def white_balance_rgb(rgb: np.ndarray, gains) -> np.ndarray:
    """Linear RGB (H, W, 3) -> RGB * gains (float32, not clipped)."""
    return (rgb * np.asarray(gains, dtype=np.float32)).astype(np.float32, copy=False)
