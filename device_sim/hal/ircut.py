"""IR-cut filter and IR LED HAL: the day/night hardware of the camera.

An IR-cut filter is a motorised dichroic filter switched by an H-bridge pulse (typ. 100-200 ms of travel); at night
it is removed and 850 nm LEDs light the scene, and the ISP switches to its monochrome IR tuning. The LED output is
modelled as an equivalent illuminance seen by the sensor (``led_equiv_lux``); visible light still reaches the
sensor. The switching decision (hysteresis + dwell) is the day/night controller's (camlab.isp.three_a.daynight);
this module only holds the hardware state, its transition time and a switch counter (relay wear).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IrCutHAL:
    travel_s: float = 0.15          # filter travel time: frames during travel are flagged
    led_equiv_lux: float = 6.0      # IR LED array, equivalent illuminance at the subject
    night: bool = False             # True: filter out + LEDs on
    switches: int = 0
    _moving_until: float = -1.0

    def set_night(self, night: bool, t: float) -> bool:
        """Drive the filter; returns True when the state changed."""
        if bool(night) == self.night:
            return False
        self.night = bool(night)
        self.switches += 1
        self._moving_until = t + self.travel_s
        return True

    def moving(self, t: float) -> bool:
        return t < self._moving_until

    @property
    def ir_lux(self) -> float:
        return self.led_equiv_lux if self.night else 0.0
