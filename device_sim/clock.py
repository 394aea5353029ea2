"""The camera's monotonic clock: a deterministic simulated mode for tests and a real-time mode.

Every timestamp in device_sim (capture time, packet pts, event time) comes from one ``Clock`` so that latencies
are differences on one time base, as on a device with a single CLOCK_MONOTONIC (POSIX clock_gettime(2)).

- ``SimClock``: time only moves when the camera advances it (``advance``/``sleep_until``); processing costs are
  *added* from measured wall time (``charge``) so latency figures include real compute but runs are reproducible
  in their timing schedule. ``wall()`` still reads the host clock (for the real-time factor).
- ``RealClock``: ``now()`` is host monotonic time since start; ``sleep_until`` really sleeps, so a run paces itself
  at the sensor's frame rate and falls behind visibly when the host is too slow.
"""
from __future__ import annotations

import time


class Clock:
    """Interface: ``now()`` seconds since boot; ``sleep_until(t)``; ``wall()`` host seconds (for RTF)."""

    simulated: bool = False

    def now(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def sleep_until(self, t: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    @staticmethod
    def wall() -> float:
        return time.perf_counter()


class SimClock(Clock):
    """Deterministic clock: starts at ``start`` and moves only when told to."""

    simulated = True

    def __init__(self, start: float = 0.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, dt: float) -> float:
        if dt < 0:
            raise ValueError(f"SimClock.advance: negative step {dt}")
        self._t += dt
        return self._t

    def sleep_until(self, t: float) -> None:
        if t > self._t:
            self._t = float(t)


class RealClock(Clock):
    """Host monotonic time since construction; ``sleep_until`` blocks."""

    def __init__(self):
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t: float) -> None:
        dt = t - self.now()
        if dt > 0:
            time.sleep(dt)


def make_clock(mode: str) -> Clock:
    """``"sim"`` -> SimClock, ``"real"`` -> RealClock."""
    if mode == "sim":
        return SimClock()
    if mode == "real":
        return RealClock()
    raise ValueError(f"clock mode must be 'sim' or 'real', got {mode!r}")
