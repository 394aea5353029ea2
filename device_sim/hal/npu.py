"""NPU HAL: a timing model of the camera's neural accelerator (occupancy, queueing, dropped frames).

The NPU is a single FIFO server (an M/D/1-style queue with deterministic service times, Kleinrock, "Queueing
Systems" vol. 1, 1975): each job's service time is the bundle's ``cost.per_chip[<chip>].npu_latency_ms`` from the
manifest (estimated by the exporter from MACs and the chip profile, or measured with RKNN), scaled by
``speed_factor``. A job submitted while ``max_queue`` jobs are already waiting is dropped, as firmware drops a frame
instead of letting latency grow. The numerical result is computed on the host with onnxruntime; only its timing
comes from this model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from camlab.errors import InputFileError


def npu_latency_s(manifest: dict, chip: str, origin: str = "manifest") -> float:
    """Service time of one inference of this bundle on ``chip`` (seconds)."""
    per_chip = manifest.get("cost", {}).get("per_chip", {})
    if chip not in per_chip:
        raise InputFileError(f"{origin}: field 'cost.per_chip' has no entry for chip {chip!r} "
                             f"(has: {', '.join(sorted(per_chip)) or 'none'})")
    return float(per_chip[chip]["npu_latency_ms"]) / 1000.0


@dataclass
class NpuJob:
    model: str
    submit_s: float
    start_s: float
    end_s: float


@dataclass
class NpuModel:
    chip: str
    max_queue: int = 2
    speed_factor: float = 1.0
    busy_until: float = 0.0
    busy_s: float = 0.0
    jobs: list[NpuJob] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    submitted: dict[str, int] = field(default_factory=dict)
    _waits: list[float] = field(default_factory=list)

    def submit(self, model: str, t: float, service_s: float) -> NpuJob | None:
        """Queue one inference at time ``t``; returns its timing, or None when dropped (queue full).

        Jobs may be offered slightly out of time order (audio and video hops are stamped independently), so the
        NPU keeps its busy intervals and serves a job in the first idle gap at or after its submission, which
        is first-come-first-served in submission time up to one service time of reordering.
        """
        self.submitted[model] = self.submitted.get(model, 0) + 1
        recent = [j for j in self.jobs[-64:] if j.end_s > t]
        waiting = sum(1 for j in recent if j.submit_s <= t < j.start_s)
        if waiting >= self.max_queue:
            self.dropped[model] = self.dropped.get(model, 0) + 1
            return None
        dur = service_s * self.speed_factor
        start = t
        for j in sorted(recent, key=lambda j: j.start_s):
            if j.start_s >= start + dur:
                break
            start = max(start, j.end_s)
        end = start + dur
        self.busy_until = max(self.busy_until, end)
        self.busy_s += dur
        job = NpuJob(model, t, start, end)
        self.jobs.append(job)
        if len(self.jobs) > 4096:
            self._waits.extend(j.start_s - j.submit_s for j in self.jobs[:2048])
            del self.jobs[:2048]
        return job

    def utilisation(self, duration_s: float) -> float:
        return min(1.0, self.busy_s / duration_s) if duration_s > 0 else 0.0

    def summary(self, duration_s: float) -> dict:
        waits = sorted(self._waits + [j.start_s - j.submit_s for j in self.jobs])
        return {"chip": self.chip, "utilisation": round(self.utilisation(duration_s), 4),
                "jobs": len(waits), "submitted": dict(self.submitted), "dropped": dict(self.dropped),
                "queue_wait_ms_max": round(1000 * waits[-1], 3) if waits else 0.0,
                "queue_wait_ms_mean": round(1000 * sum(waits) / len(waits), 3) if waits else 0.0,
                "max_queue": self.max_queue}
