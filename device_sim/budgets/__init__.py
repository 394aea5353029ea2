"""device_sim.budgets: timestamps and CPU time collected at every hop, and the budget report (report.py)."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class Budgets:
    """Collects per-hop latencies (ms) and per-component CPU time (core-seconds, ``time.process_time``)."""

    def __init__(self):
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.wall_s: dict[str, float] = defaultdict(float)

    @contextmanager
    def cpu(self, component: str):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu_s[component] += time.process_time() - c0
            self.wall_s[component] += time.perf_counter() - w0

    def stamp(self, hop: str, capture_s: float, t_s: float) -> None:
        self.latency_ms[hop].append(1000.0 * (t_s - capture_s))
