"""Camera events as JSON in the MIoT-Spec shape of the seed camera (Xiaomi MIoT-Spec-V2 service/event model).

Services (``siid``) and their events (``eiid``):

| siid | service | eiid | event | arguments |
|---|---|---|---|---|
| 2 | camera-control | 1 | night-mode-changed | ``night`` (bool) |
| 3 | motion-detection | 1 | motion-detected | ``area`` (fraction of cells) |
| 4 | ai-detection | 1 | person | ``confidence``, ``zone``, ``box`` |
| 4 | ai-detection | 2 | pet | same |
| 4 | ai-detection | 3 | vehicle | same |
| 4 | ai-detection | 4 | cry | ``confidence`` |

Every event carries ``capture_time_s`` (camera clock time of the frame or audio window end that caused it) and
``emit_time_s`` (when the camera published it), e.g.
``{"siid": 4, "eiid": 1, "service": "ai-detection", "event": "person", "confidence": 0.92,
"zone": "front_door", "box": [0.1, 0.2, 0.3, 0.9], "capture_time_s": 12.35, "emit_time_s": 12.41}``.

:class:`EventDebouncer` turns per-frame detections into events: a class fires when it is seen in ``k`` of the last
``n`` detector runs and re-arms after ``rearm_s`` without it (one event per appearance, not per frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SERVICES = {"camera-control": 2, "motion-detection": 3, "ai-detection": 4}
EVENTS = {
    ("camera-control", "night-mode-changed"): 1,
    ("motion-detection", "motion-detected"): 1,
    ("ai-detection", "person"): 1,
    ("ai-detection", "pet"): 2,
    ("ai-detection", "vehicle"): 3,
    ("ai-detection", "cry"): 4,
}
AI_EVENTS = ("person", "pet", "vehicle", "cry")


def make_event(service: str, event: str, capture_time_s: float, emit_time_s: float, **args) -> dict:
    """One event dict; unknown service/event pairs are a programming error."""
    eiid = EVENTS[(service, event)]
    out = {"siid": SERVICES[service], "eiid": eiid, "service": service, "event": event}
    for k, v in args.items():
        out[k] = round(v, 4) if isinstance(v, float) else v
    out["capture_time_s"] = round(float(capture_time_s), 4)
    out["emit_time_s"] = round(float(emit_time_s), 4)
    return out


def detection_event(label: str, confidence: float, zone: str, box, capture_time_s: float,
                    emit_time_s: float) -> dict:
    return make_event("ai-detection", label, capture_time_s, emit_time_s, confidence=float(confidence),
                      zone=zone, box=[round(float(v), 4) for v in box])


@dataclass
class EventDebouncer:
    k: int = 2
    n: int = 3
    rearm_s: float = 3.0
    _hist: dict = field(default_factory=dict)
    _armed: dict = field(default_factory=dict)
    _last_seen: dict = field(default_factory=dict)

    def update(self, label: str, seen: bool, t: float) -> bool:
        """Feed one detector run for ``label``; True when an event must be emitted now."""
        h = self._hist.setdefault(label, [])
        h.append(bool(seen))
        if len(h) > self.n:
            h.pop(0)
        if seen:
            last = self._last_seen.get(label)
            if last is not None and t - last > self.rearm_s:
                self._armed[label] = True
                h[:] = [True]          # a new appearance needs k fresh sightings
            self._last_seen[label] = t
        if self._armed.get(label, True) and sum(h) >= self.k:
            self._armed[label] = False
            return True
        return False
