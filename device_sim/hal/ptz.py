"""Pan/tilt head: two geared unipolar steppers (28BYJ-48 class) with end-stop homing, presets and patrol.

The physical model keeps what the firmware cannot see: the true output angle, gear backlash taken up on every
direction reversal, steps lost when driven faster than the pull-in rate or against the end stop, and the unknown
position at power-on. The firmware (``PtzController``) only counts steps: it homes against the limit switch
(the Marlin G28 approach: fast seek, back off, slow re-seek), compensates backlash by always finishing a move in
the positive direction (the "unidirectional approach" of machine-tool practice), caps the step rate below pull-in,
and re-homes on request. Positioning error after homing is within one degree (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from camlab.errors import CamlabError


@dataclass(frozen=True)
class AxisSpec:
    name: str
    min_deg: float
    max_deg: float
    steps_per_rev: int = 2048          # motor full steps per revolution (28BYJ-48 with its 1:64 gearbox)
    gear: float = 4.0                  # output reduction of the head's own gears
    backlash_deg: float = 0.8          # output-side slack, taken up on each reversal
    max_pps: float = 600.0             # pull-in rate: faster and steps are lost
    switch_deg: float = 0.0            # where the limit switch closes (at the min end)

    @property
    def deg_per_step(self) -> float:
        return 360.0 / (self.steps_per_rev * self.gear)


HARD_STOP_MARGIN_DEG = 3.0            # mechanical stops sit this far outside the usable range
PAN = AxisSpec("pan", 0.0, 350.0)
TILT = AxisSpec("tilt", 0.0, 90.0, gear=3.0, backlash_deg=0.6)


class StepperAxis:
    """The physical axis (ground truth)."""

    def __init__(self, spec: AxisSpec, rng: np.random.Generator, start_deg: float | None = None):
        self.spec = spec
        self.rng = rng
        self.angle = float(rng.uniform(spec.min_deg + 5, spec.max_deg - 5) if start_deg is None else start_deg)
        self._motor_dir = 0
        self._slack = 0.0                  # backlash still to take up after a reversal (degrees)
        self.lost_steps = 0

    @property
    def switch_closed(self) -> bool:
        return self.angle <= self.spec.switch_deg + 1e-9

    def step(self, direction: int, pps: float) -> None:
        s = self.spec
        if direction != self._motor_dir:
            self._slack = s.backlash_deg if self._motor_dir != 0 else 0.0
            self._motor_dir = direction
        if pps > s.max_pps and self.rng.random() < min(1.0, pps / s.max_pps - 1.0):
            self.lost_steps += 1           # the rotor slips: the counter moves, the head does not
            return
        move = s.deg_per_step
        if self._slack > 0:
            take = min(self._slack, move)
            self._slack -= take
            move -= take
        new = self.angle + direction * move
        lo, hi = s.min_deg - HARD_STOP_MARGIN_DEG, s.max_deg + HARD_STOP_MARGIN_DEG
        if new < lo or new > hi:
            self.lost_steps += 1           # against the mechanical stop: the motor stalls
            new = min(max(new, lo), hi)
        self.angle = new

    def disturb(self, deg: float) -> None:
        """Someone turns the head by hand (the firmware does not notice until it re-homes)."""
        self.angle = float(np.clip(self.angle + deg, self.spec.min_deg, self.spec.max_deg))


@dataclass
class AxisState:
    steps: int = 0
    homed: bool = False
    last_dir: int = 0


@dataclass
class PtzController:
    """Firmware view of the head. ``clock_s`` advances with every move (simulated time)."""
    pan_axis: StepperAxis
    tilt_axis: StepperAxis
    run_pps: float = 500.0
    home_fast_pps: float = 550.0
    home_slow_pps: float = 120.0
    clock_s: float = 0.0
    presets: dict[int, tuple[float, float]] = field(default_factory=dict)
    state: dict[str, AxisState] = field(default_factory=lambda: {"pan": AxisState(), "tilt": AxisState()})

    @classmethod
    def create(cls, seed: int = 0, pan: AxisSpec = PAN, tilt: AxisSpec = TILT) -> "PtzController":
        rng = np.random.default_rng(seed)
        return cls(StepperAxis(pan, rng), StepperAxis(tilt, rng))

    def _axis(self, name: str) -> StepperAxis:
        return self.pan_axis if name == "pan" else self.tilt_axis

    def _drive(self, name: str, steps: int, pps: float) -> None:
        ax, st = self._axis(name), self.state[name]
        d = 1 if steps > 0 else -1
        if steps:
            st.last_dir = d
        for _ in range(abs(steps)):
            ax.step(d, pps)
            st.steps += d
        self.clock_s += abs(steps) / pps

    def home(self, name: str | None = None) -> None:
        """Seek the limit switch fast, back off, re-seek slowly; the switch position becomes the zero."""
        for n in ([name] if name else ["pan", "tilt"]):
            ax, st = self._axis(n), self.state[n]
            spec = ax.spec
            limit = int((spec.max_deg - spec.min_deg + 10) / spec.deg_per_step)
            for pps, backoff_deg in ((self.home_fast_pps, 3.0), (self.home_slow_pps, None)):
                travelled = 0
                while not ax.switch_closed:
                    self._drive(n, -1, pps)
                    travelled += 1
                    if travelled > limit:
                        raise CamlabError(f"PTZ {n}: limit switch not found during homing (mechanical fault)")
                if backoff_deg is not None:
                    self._drive(n, int(backoff_deg / spec.deg_per_step), self.home_slow_pps)
            # creep back up until the switch opens: the zero is defined while moving in the positive direction,
            # the same direction every move finishes in, so the backlash is taken up identically
            while ax.switch_closed:
                self._drive(n, 1, self.home_slow_pps)
                travelled += 1
                if travelled > 2 * limit:
                    raise CamlabError(f"PTZ {n}: limit switch does not release (mechanical fault)")
            st.steps = int(round((spec.switch_deg - spec.min_deg) / spec.deg_per_step)) + 1
            st.homed = True

    def position(self) -> tuple[float, float]:
        """Where the firmware believes the head points (degrees)."""
        return tuple(self.pan_axis.spec.min_deg + self.state["pan"].steps * self.pan_axis.spec.deg_per_step
                     if n == "pan" else
                     self.tilt_axis.spec.min_deg + self.state["tilt"].steps * self.tilt_axis.spec.deg_per_step
                     for n in ("pan", "tilt"))

    def true_position(self) -> tuple[float, float]:
        return self.pan_axis.angle, self.tilt_axis.angle

    def move_to(self, pan: float, tilt: float) -> tuple[float, float]:
        for n, target in (("pan", pan), ("tilt", tilt)):
            spec = self._axis(n).spec
            if not (spec.min_deg <= target <= spec.max_deg) or not np.isfinite(target):
                raise ValueError(f"{n} {target}: expected [{spec.min_deg}, {spec.max_deg}] degrees")
        for n, target in (("pan", pan), ("tilt", tilt)):
            if not self.state[n].homed:
                self.home(n)
            spec, st = self._axis(n).spec, self.state[n]
            goal = int(round((target - spec.min_deg) / spec.deg_per_step))
            overshoot = int(np.ceil((spec.backlash_deg + 0.5) / spec.deg_per_step))
            if goal < st.steps or (goal == st.steps and st.last_dir < 0):
                # approach from below: go past the goal (not past the end stop) then come back up
                low = max(goal - overshoot, int(round((spec.switch_deg - spec.min_deg) / spec.deg_per_step)))
                self._drive(n, low - st.steps, self.run_pps)
            if goal != st.steps:
                self._drive(n, goal - st.steps, self.run_pps)
        return self.position()

    def save_preset(self, preset: int) -> None:
        if not 1 <= preset <= 8:
            raise ValueError(f"preset {preset}: expected 1..8")
        self.presets[preset] = self.position()

    def goto_preset(self, preset: int) -> tuple[float, float]:
        if preset not in self.presets:
            raise ValueError(f"preset {preset}: not saved")
        return self.move_to(*self.presets[preset])

    def patrol(self, presets: list[int], dwell_s: float = 5.0, rounds: int = 1) -> list[dict]:
        """Visit the presets in order, dwelling at each; returns what the head did (target, true angle, time)."""
        visits = []
        for _ in range(rounds):
            for p in presets:
                target = self.presets.get(p)
                if target is None:
                    raise ValueError(f"patrol preset {p}: not saved")
                self.goto_preset(p)
                visits.append({"preset": p, "target": target, "true": self.true_position(), "t_s": self.clock_s})
                self.clock_s += dwell_s
        return visits
