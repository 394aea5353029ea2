"""Digital gain: a global multiplication of the linear signal after the analog gain is exhausted.

As in the exposure chain of the EMVA 1288 model (release 4.0): digital gain scales signal and noise alike, so AE
uses it last (see camlab.isp.three_a.ae). The result is not clipped here; white balance clips once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GainParams:
    """``gain``: fixed digital gain; the frame's AE digital gain multiplies it when the pipeline runs AE."""

    enabled: bool = True
    gain: float = 1.0

    def __post_init__(self):
        if not self.gain > 0:
            raise ValueError(f"gain must be > 0, got {self.gain}")


def digital_gain(x: np.ndarray, gain: float) -> np.ndarray:
    """Linear CFA/RGB -> the same times ``gain`` (float32)."""
    return (x * np.float32(gain)).astype(np.float32, copy=False)
