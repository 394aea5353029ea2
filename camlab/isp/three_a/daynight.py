"""Day/night (IR-cut filter) controller with hysteresis, a hold time, a minimum dwell and IR-aware thresholds.

In day mode the IR-cut filter is in and the exposure-normalised brightness (mean linear luma / (exposure x gain),
a lux proxy as in EMVA 1288's photometric calibration) measures visible light. In night mode the filter is out and
the IR LEDs light the scene, so the same measurement also counts the LEDs' contribution and the extra near-IR that
the open filter lets through; a naive single threshold then sees "bright" right after switching to night and flips
back (the flapping users of public ISPs report). The controller therefore estimates visible light in night mode as
``(brightness - ir_led_level) / ir_passband_gain`` and compares it with a separate, higher ``night_to_day``
threshold (hysteresis). A decision must hold for ``hold_s`` of the smoothed signal, and no switch happens within
``min_dwell_s`` of the previous one. Schmitt, "A thermionic trigger", J. Sci. Instrum. 15, 1938 (hysteresis).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["day", "night"]


@dataclass(frozen=True)
class DayNightParams:
    """Thresholds in visible-brightness units (lux proxy); ``night_to_day`` must exceed ``day_to_night``."""

    day_to_night: float = 2.0
    night_to_day: float = 6.0
    ir_led_level: float = 8.0
    ir_passband_gain: float = 1.4
    hold_s: float = 3.0
    min_dwell_s: float = 20.0
    smoothing_s: float = 1.0

    def __post_init__(self):
        if not self.night_to_day > self.day_to_night > 0:
            raise ValueError("need night_to_day > day_to_night > 0 (hysteresis)")
        if self.ir_passband_gain < 1 or self.ir_led_level < 0:
            raise ValueError("ir_passband_gain must be >= 1 and ir_led_level >= 0")
        if self.hold_s < 0 or self.min_dwell_s < 0 or self.smoothing_s < 0:
            raise ValueError("hold_s, min_dwell_s and smoothing_s must be >= 0")


@dataclass(frozen=True)
class DayNightDecision:
    mode: Mode
    ir_cut_in: bool
    ir_leds_on: bool
    visible_estimate: float
    switched: bool


class DayNightController:
    """Feed ``update(t_s, brightness)`` once per statistics period; it returns the mode to apply."""

    def __init__(self, params: DayNightParams = DayNightParams(), mode: Mode = "day", t0_s: float = 0.0):
        self.p = params
        self.mode: Mode = mode
        self._last_switch = t0_s - params.min_dwell_s  # the first decision may switch (after the hold)
        self._smoothed: float | None = None
        self._last_t: float | None = None
        self._cond_since: float | None = None
        self.switches = 0

    def visible_estimate(self, brightness: float) -> float:
        """Visible-light brightness implied by a measurement taken in the current mode."""
        if self.mode == "day":
            return brightness
        return max(0.0, (brightness - self.p.ir_led_level) / self.p.ir_passband_gain)

    def update(self, t_s: float, brightness: float) -> DayNightDecision:
        if not np.isfinite(brightness) or brightness < 0:
            raise ValueError(f"brightness must be finite and >= 0, got {brightness}")
        if self._last_t is not None and t_s < self._last_t:
            raise ValueError(f"time went backwards: {t_s} < {self._last_t}")
        vis = self.visible_estimate(float(brightness))
        if self._smoothed is None or self._last_t is None or self.p.smoothing_s == 0:
            self._smoothed = vis
        else:
            a = 1.0 - math.exp(-(t_s - self._last_t) / self.p.smoothing_s)
            self._smoothed += a * (vis - self._smoothed)
        self._last_t = t_s
        if self.mode == "day":
            want_switch = self._smoothed < self.p.day_to_night
        else:
            want_switch = self._smoothed > self.p.night_to_day
        switched = False
        if not want_switch:
            self._cond_since = None
        else:
            if self._cond_since is None:
                self._cond_since = t_s
            if t_s - self._cond_since >= self.p.hold_s and t_s - self._last_switch >= self.p.min_dwell_s:
                self.mode = "night" if self.mode == "day" else "day"
                self._last_switch = t_s
                self._cond_since = None
                # the measurement changes meaning with the filter: restart the smoother in the new mode's units
                self._smoothed = None
                self.switches += 1
                switched = True
        return DayNightDecision(mode=self.mode, ir_cut_in=self.mode == "day", ir_leds_on=self.mode == "night",
                                visible_estimate=float(vis), switched=switched)
