"""Auto exposure: damped convergence of mean linear luma on a target, split into exposure time, analog and digital gain.

The exposure product E = t * g_analog * g_digital is driven in the log domain towards ``target / measured`` with a
first-order damping (``speed``) and a dead band, then split in the order that costs least noise: exposure time up
to ``max_exposure_s`` (in multiples of the mains flicker half-period when ``flicker_hz`` is set), then analog gain,
then digital gain (EMVA 1288 release 4.0 noise model; Kuno et al., "A new automatic exposure system for digital
still cameras", IEEE TCE 44(1), 1998).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class AeParams:
    """``target``: mean linear luma wanted (0..1); ``speed``: fraction of the log error corrected per frame;
    ``tolerance``: relative dead band; limits of each exposure factor; ``flicker_hz``: 0, 50 or 60."""

    enabled: bool = True
    target: float = 0.18
    speed: float = 0.5
    tolerance: float = 0.05
    min_exposure_s: float = 1e-4
    max_exposure_s: float = 1 / 30
    max_analog_gain: float = 16.0
    max_digital_gain: float = 4.0
    flicker_hz: float = 0.0

    def __post_init__(self):
        if not 0 < self.target < 1:
            raise ValueError(f"target must be in (0, 1), got {self.target}")
        if not 0 < self.speed <= 1:
            raise ValueError(f"speed must be in (0, 1], got {self.speed}")
        if not 0 < self.min_exposure_s <= self.max_exposure_s:
            raise ValueError("need 0 < min_exposure_s <= max_exposure_s")
        if self.max_analog_gain < 1 or self.max_digital_gain < 1:
            raise ValueError("max_analog_gain and max_digital_gain must be >= 1")
        if self.flicker_hz not in (0.0, 50.0, 60.0):
            raise ValueError(f"flicker_hz must be 0, 50 or 60, got {self.flicker_hz}")


@dataclass(frozen=True)
class AeState:
    exposure_s: float = 1 / 60
    analog_gain: float = 1.0
    digital_gain: float = 1.0
    converged: bool = False

    @property
    def total(self) -> float:
        return self.exposure_s * self.analog_gain * self.digital_gain


def split_exposure(total: float, p: AeParams) -> AeState:
    """Exposure product (seconds x gain) -> (time, analog, digital) within the limits, time first."""
    t = min(max(total, p.min_exposure_s), p.max_exposure_s)
    if p.flicker_hz and t >= 1 / (2 * p.flicker_hz):
        period = 1 / (2 * p.flicker_hz)
        t = max(period, math.floor(t / period) * period)
    rest = total / t
    ga = min(max(rest, 1.0), p.max_analog_gain)
    gd = min(max(rest / ga, 1.0), p.max_digital_gain)
    return AeState(exposure_s=t, analog_gain=ga, digital_gain=gd)


def ae_update(state: AeState, measured_mean: float, p: AeParams = AeParams()) -> AeState:
    """One AE step: the frame exposed with ``state`` measured ``measured_mean`` -> the settings for the next frame."""
    if not np.isfinite(measured_mean) or measured_mean < 0:
        raise ValueError(f"measured mean must be finite and >= 0, got {measured_mean}")
    m = max(float(measured_mean), 1e-4)
    err = math.log(p.target / m)
    if abs(err) <= math.log1p(p.tolerance):
        return replace(state, converged=True)
    total = state.total * math.exp(p.speed * err)
    return split_exposure(total, p)
