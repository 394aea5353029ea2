"""The camera's IoT SPEC service: the JSON device model (services/properties/actions/events) and its dispatcher.

Xiaomi MIoT-Spec-V2 ("小米IoT平台 Spec 定义"): a device is services (``siid``) of properties (``piid``, format,
access read/write/notify, value-range or value-list), actions (``aiid`` with ``in``/``out`` property lists) and
events (``eiid``). Requests name ids; unknown ids, wrong formats and out-of-range values get the MIoT error codes
below and are logged — the service never raises on bad input. Event ids/arguments follow
``device_sim.spec.events`` (the DEVICE_SIM engineer's event JSON).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema

from camlab.errors import InputFileError

log = logging.getLogger(__name__)
MODEL_PATH = Path(__file__).with_name("model.json")

OK = 0
E_SERVICE = -704040002        # service does not exist
E_PROPERTY = -704040003       # property does not exist
E_EVENT = -704040004          # event does not exist
E_ACTION = -704040005         # action does not exist
E_NOT_READABLE = -704030013
E_NOT_WRITABLE = -704030023
E_VALUE = -704220043          # value format/range error
E_PARAMS = -704220008         # malformed request
E_FAILED = -704042011         # the device could not carry it out

_FORMATS = {"bool", "uint8", "uint16", "uint32", "int8", "int16", "int32", "float", "string"}
_INT_RANGE = {"uint8": (0, 255), "uint16": (0, 65535), "uint32": (0, 2**32 - 1), "int8": (-128, 127),
              "int16": (-32768, 32767), "int32": (-2**31, 2**31 - 1)}

MODEL_SCHEMA = {
    "type": "object", "required": ["type", "services"],
    "properties": {"type": {"type": "string"}, "services": {"type": "array", "items": {
        "type": "object", "required": ["siid", "type", "properties", "actions", "events"],
        "properties": {
            "siid": {"type": "integer", "minimum": 1}, "type": {"type": "string"},
            "properties": {"type": "array", "items": {
                "type": "object", "required": ["piid", "type", "format", "access"],
                "properties": {"piid": {"type": "integer", "minimum": 1}, "format": {"enum": sorted(_FORMATS)},
                               "access": {"type": "array", "items": {"enum": ["read", "write", "notify"]}},
                               "value-list": {"type": "array"}, "value-range": {"type": "array", "minItems": 3,
                                                                                 "maxItems": 3}}}},
            "actions": {"type": "array", "items": {"type": "object", "required": ["aiid", "type", "in", "out"]}},
            "events": {"type": "array", "items": {"type": "object", "required": ["eiid", "type", "arguments"]}}}}}}}


@dataclass(frozen=True)
class PropertySpec:
    siid: int
    piid: int
    name: str
    format: str
    access: tuple[str, ...]
    value_list: tuple | None = None
    value_range: tuple | None = None

    def check(self, value: Any) -> Any:
        """Return the value normalised to the format, or raise ValueError saying what was expected."""
        f = self.format
        if f == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name}: expected a boolean, got {value!r}")
            return value
        if f == "string":
            if not isinstance(value, str) or len(value) > 256:
                raise ValueError(f"{self.name}: expected a string of at most 256 characters")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.name}: expected a number, got {type(value).__name__}")
        if f == "float":
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{self.name}: expected a finite number")
        else:
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"{self.name}: expected an integer, got {value}")
                value = int(value)
            lo, hi = _INT_RANGE[f]
            if not lo <= value <= hi:
                raise ValueError(f"{self.name}: {value} outside {f} [{lo}, {hi}]")
        if self.value_list is not None and value not in self.value_list:
            raise ValueError(f"{self.name}: {value} not in {list(self.value_list)}")
        if self.value_range is not None:
            lo, hi, _ = self.value_range
            if not lo <= value <= hi:
                raise ValueError(f"{self.name}: {value} outside [{lo}, {hi}]")
        return value


def _default(p: PropertySpec):
    if p.format == "bool":
        return False
    if p.format == "string":
        return ""
    if p.value_list:
        return p.value_list[0]
    if p.value_range:
        return p.value_range[0]
    return 0.0 if p.format == "float" else 0


class SpecModel:
    """The parsed device model with id lookups."""

    def __init__(self, obj: dict, source: str = "<dict>"):
        try:
            jsonschema.validate(obj, MODEL_SCHEMA)
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            raise InputFileError(f"{source}: field {path or '(root)'}: {exc.message}") from exc
        self.obj = obj
        self.services = {s["siid"]: s for s in obj["services"]}
        self.props: dict[tuple[int, int], PropertySpec] = {}
        self.actions: dict[tuple[int, int], dict] = {}
        self.events: dict[tuple[int, int], dict] = {}
        self.by_name: dict[tuple[str, str], tuple[int, int]] = {}
        for s in obj["services"]:
            for p in s["properties"]:
                vl, vr = p.get("value-list"), p.get("value-range")
                spec = PropertySpec(s["siid"], p["piid"], p["type"], p["format"], tuple(p["access"]),
                                    tuple(vl) if vl else None, tuple(vr) if vr else None)
                self.props[(s["siid"], p["piid"])] = spec
                self.by_name[(s["type"], p["type"])] = (s["siid"], p["piid"])
            for a in s["actions"]:
                for piid in a["in"] + a["out"]:
                    if (s["siid"], piid) not in self.props:
                        raise InputFileError(f"{source}: action {s['type']}.{a['type']} names unknown piid {piid}")
                self.actions[(s["siid"], a["aiid"])] = a
            for e in s["events"]:
                self.events[(s["siid"], e["eiid"])] = {**e, "service": s["type"]}

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "SpecModel":
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputFileError(f"{path}: SPEC model missing") from exc
        except ValueError as exc:
            raise InputFileError(f"{path}: not JSON ({exc})") from exc
        return cls(obj, str(path))

    def iid(self, service: str, prop: str) -> tuple[int, int]:
        return self.by_name[(service, prop)]


def _ids(item, keys: tuple[str, ...]) -> tuple[int, ...] | None:
    if not isinstance(item, dict):
        return None
    out = []
    for k in keys:
        v = item.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 < v < 2**16:
            return None
        out.append(v)
    return tuple(out)


class SpecService:
    """Property store + dispatcher. ``on_set[(siid, piid)]`` and ``on_action[(siid, aiid)]`` are device hooks;
    ``listeners`` receive ``("properties_changed", [...])`` and ``("event_occured", {...})`` notifications."""

    def __init__(self, model: SpecModel | None = None, initial: dict | None = None):
        self.model = model or SpecModel.load()
        self.values = {k: _default(p) for k, p in self.model.props.items()}
        for (svc, prop), v in (initial or {}).items():
            self.values[self.model.iid(svc, prop)] = v
        self.on_set: dict[tuple[int, int], Callable[[Any], None]] = {}
        self.on_action: dict[tuple[int, int], Callable[[dict], dict | None]] = {}
        self.listeners: list[Callable[[str, Any], None]] = []
        self.rejected = 0

    def _reject(self, code: int, why: str) -> int:
        self.rejected += 1
        log.warning("SPEC request rejected (%d): %s", code, why)
        return code

    def _lookup(self, siid: int, piid: int) -> tuple[PropertySpec | None, int]:
        if siid not in self.model.services:
            return None, E_SERVICE
        p = self.model.props.get((siid, piid))
        return (p, OK) if p else (None, E_PROPERTY)

    def get_properties(self, params) -> list[dict]:
        if not isinstance(params, list) or len(params) > 64:
            raise ValueError("params: expected a list of at most 64 {siid, piid} objects")
        out = []
        for item in params:
            ids = _ids(item, ("siid", "piid"))
            if ids is None:
                out.append({"code": self._reject(E_PARAMS, f"malformed id {item!r}")})
                continue
            p, code = self._lookup(*ids)
            res = {"siid": ids[0], "piid": ids[1]}
            if p is None:
                res["code"] = self._reject(code, f"get of unknown {ids}")
            elif "read" not in p.access:
                res["code"] = self._reject(E_NOT_READABLE, f"{p.name} is not readable")
            else:
                res.update(code=OK, value=self.values[ids])
            out.append(res)
        return out

    def set_properties(self, params) -> list[dict]:
        if not isinstance(params, list) or len(params) > 64:
            raise ValueError("params: expected a list of at most 64 {siid, piid, value} objects")
        out, changed = [], []
        for item in params:
            ids = _ids(item, ("siid", "piid"))
            if ids is None or "value" not in item:
                out.append({"code": self._reject(E_PARAMS, f"malformed set {item!r}")})
                continue
            p, code = self._lookup(*ids)
            res = {"siid": ids[0], "piid": ids[1]}
            if p is None:
                res["code"] = self._reject(code, f"set of unknown {ids}")
            elif "write" not in p.access:
                res["code"] = self._reject(E_NOT_WRITABLE, f"{p.name} is not writable")
            else:
                try:
                    value = p.check(item["value"])
                    hook = self.on_set.get(ids)
                    if hook is not None:
                        hook(value)
                    res["code"] = OK
                    if self.values[ids] != value:
                        self.values[ids] = value
                        changed.append({"siid": ids[0], "piid": ids[1], "value": value})
                except ValueError as exc:
                    res["code"] = self._reject(E_VALUE, str(exc))
            out.append(res)
        self._notify_props(changed)
        return out

    def update(self, service: str, prop: str, value) -> None:
        """Device-internal update (sensors, HAL): validated, stored, notified if changed."""
        ids = self.model.iid(service, prop)
        value = self.model.props[ids].check(value)
        if self.values[ids] != value:
            self.values[ids] = value
            self._notify_props([{"siid": ids[0], "piid": ids[1], "value": value}])

    def get(self, service: str, prop: str):
        return self.values[self.model.iid(service, prop)]

    def do_action(self, req) -> dict:
        ids = _ids(req, ("siid", "aiid"))
        if ids is None:
            return {"code": self._reject(E_PARAMS, f"malformed action {str(req)[:80]!r}")}
        if ids[0] not in self.model.services:
            return {"siid": ids[0], "aiid": ids[1], "code": self._reject(E_SERVICE, f"action on unknown {ids}")}
        a = self.model.actions.get(ids)
        if a is None:
            return {"siid": ids[0], "aiid": ids[1], "code": self._reject(E_ACTION, f"unknown action {ids}")}
        args = req.get("in", [])
        if not isinstance(args, list) or len(args) != len(a["in"]):
            return {"siid": ids[0], "aiid": ids[1],
                    "code": self._reject(E_PARAMS, f"{a['type']}: expected {len(a['in'])} in-arguments")}
        values = {}
        for piid, arg in zip(a["in"], args):
            v = arg.get("value") if isinstance(arg, dict) and arg.get("piid") == piid else None
            try:
                values[piid] = self.model.props[(ids[0], piid)].check(v)
            except ValueError as exc:
                return {"siid": ids[0], "aiid": ids[1], "code": self._reject(E_VALUE, f"{a['type']}: {exc}")}
        hook = self.on_action.get(ids)
        try:
            extra = hook(values) if hook is not None else None
        except (ValueError, RuntimeError) as exc:
            return {"siid": ids[0], "aiid": ids[1], "code": self._reject(E_FAILED, f"{a['type']}: {exc}")}
        out = [{"piid": piid, "value": (extra or {}).get(piid, self.values[(ids[0], piid)])} for piid in a["out"]]
        return {"siid": ids[0], "aiid": ids[1], "code": OK, "out": out}

    def event(self, evt: dict) -> dict:
        """Validate an event dict from ``device_sim.spec.events`` against the model and notify listeners."""
        key = (evt.get("siid"), evt.get("eiid"))
        spec = self.model.events.get(key)
        if spec is None:
            self._reject(E_EVENT, f"unknown event {key}")
            raise ValueError(f"event {key}: not in the SPEC model")
        missing = [a for a in spec["arguments"] if a not in evt]
        if missing:
            raise ValueError(f"event {spec['service']}.{spec['type']}: missing arguments {missing}")
        msg = {**evt, "service": spec["service"], "event": spec["type"]}
        for fn in list(self.listeners):
            fn("event_occured", msg)
        return msg

    def _notify_props(self, changed: list[dict]) -> None:
        if changed:
            for fn in list(self.listeners):
                fn("properties_changed", changed)

    def set_watching(self, viewers: int) -> None:
        """The "someone is watching" property (camera-control.watching / viewers), driven by the P2P LiveHub.
        With indicator-light mode 1 ("blink while watched") the LED follows it, so people in the room can tell."""
        self.update("camera-control", "viewers", min(int(viewers), 255))
        self.update("camera-control", "watching", viewers > 0)
        if self.get("indicator-light", "mode") == 1:
            self.update("indicator-light", "on", viewers > 0)
