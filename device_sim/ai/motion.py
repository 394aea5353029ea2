"""Motion detection by frame differencing on the substream luma, the gate in front of the detector.

Running-average background (Wren et al., "Pfinder", IEEE TPAMI 19(7), 1997, in its simplest exponential form):
luma is block-averaged to a small grid, compared with the background, and a cell is *active* when the absolute
difference exceeds ``threshold`` code values; motion is declared when the active fraction exceeds ``min_area``.
The detector runs while motion was seen within the last ``hold_s`` seconds (firmware saves NPU time this way).
Privacy-masked cells are constant, so they never trigger.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionConfig:
    grid: tuple[int, int] = (64, 36)   # cells (w, h)
    threshold: float = 12.0            # luma code values
    min_area: float = 0.004            # fraction of cells
    alpha: float = 0.1                 # background update rate
    hold_s: float = 3.0


class MotionDetector:
    def __init__(self, cfg: MotionConfig = MotionConfig()):
        self.cfg = cfg
        self.bg: np.ndarray | None = None
        self.last_motion_s = -1e9
        self.active_fraction = 0.0

    def _cells(self, y: np.ndarray) -> np.ndarray:
        gw, gh = self.cfg.grid
        h, w = y.shape
        bh, bw = h // gh, w // gw
        return y[: bh * gh, : bw * gw].reshape(gh, bh, gw, bw).mean(axis=(1, 3), dtype=np.float32)

    def update(self, nv12: np.ndarray, height: int, t: float) -> bool:
        """Feed one substream frame; returns True when motion is present in this frame."""
        cells = self._cells(nv12[:height])
        if self.bg is None:
            self.bg = cells
            return False
        diff = np.abs(cells - self.bg)
        self.active_fraction = float((diff > self.cfg.threshold).mean())
        self.bg += self.cfg.alpha * (cells - self.bg)
        moving = self.active_fraction > self.cfg.min_area
        if moving:
            self.last_motion_s = t
        return moving

    def gate_open(self, t: float) -> bool:
        return t - self.last_motion_s <= self.cfg.hold_s

    def reset_background(self) -> None:
        """After an exposure jump or a day/night switch, relearn the background instead of firing."""
        self.bg = None
