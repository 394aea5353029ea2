"""Tone curve and display gamma: linear scene RGB -> display-referred RGB in [0, 1].

sRGB transfer function from IEC 61966-2-1:1999; BT.709 OETF from ITU-R BT.709-6. The optional tone curve is a
global contrast S-curve in the display domain, ``y + s (3y^2 - 2y^3 - y)`` (monotone for 0 <= s <= 1, Hermite
smoothstep), preceded by an exposure bias. :func:`tone_lut` tabulates the whole curve for the fast path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

LUT_SIZE = 16385


@dataclass(frozen=True)
class ToneParams:
    """``gamma``: display transfer; ``contrast`` in [0, 1]: S-curve strength; ``exposure_bias``: linear gain
    before the curve (clipped at 1)."""

    enabled: bool = True
    gamma: Literal["srgb", "bt709", "linear"] = "srgb"
    contrast: float = 0.0
    exposure_bias: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.contrast <= 1.0:
            raise ValueError(f"contrast must be in [0, 1], got {self.contrast}")
        if not self.exposure_bias > 0:
            raise ValueError(f"exposure_bias must be > 0, got {self.exposure_bias}")


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(y: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear [0, 1]."""
    y = np.clip(y, 0.0, 1.0)
    return np.where(y <= 0.04045, y / 12.92, np.power((y + 0.055) / 1.055, 2.4)).astype(np.float32)


def bt709_encode(x: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> BT.709 OETF [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x < 0.018, 4.5 * x, 1.099 * np.power(x, 0.45) - 0.099).astype(np.float32)


def tone_map(rgb: np.ndarray, p: ToneParams = ToneParams()) -> np.ndarray:
    """Linear RGB in [0, 1] -> display RGB float32 in [0, 1]."""
    x = np.clip(np.asarray(rgb, dtype=np.float64) * p.exposure_bias, 0.0, 1.0)
    if p.gamma == "srgb":
        y = srgb_encode(x).astype(np.float64)
    elif p.gamma == "bt709":
        y = bt709_encode(x).astype(np.float64)
    else:
        y = x
    if p.contrast:
        y = y + p.contrast * (3 * y * y - 2 * y ** 3 - y)
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def tone_lut(p: ToneParams = ToneParams(), size: int = LUT_SIZE) -> np.ndarray:
    """(size,) float32 table of :func:`tone_map` over linear [0, 1] (index = x * (size - 1))."""
    return tone_map(np.linspace(0.0, 1.0, size), p)


def tone_slope(x: np.ndarray, p: ToneParams = ToneParams(), eps: float = 1e-3) -> np.ndarray:
    """d(display)/d(linear) at linear ``x`` (finite differences; used to carry noise into the display domain)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    return (tone_map(hi, p).astype(np.float64) - tone_map(lo, p)) / np.maximum(hi - lo, 1e-12)
