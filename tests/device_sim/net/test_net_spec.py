"""The SPEC device model and dispatcher: ids, formats, access, actions, events, the watching property."""
from __future__ import annotations

import copy
import json

import pytest

from camlab.errors import InputFileError
from device_sim.spec import events
from device_sim.spec.service import (E_ACTION, E_EVENT, E_NOT_READABLE, E_PARAMS, E_PROPERTY, E_SERVICE, E_VALUE,
                                     MODEL_PATH, OK, SpecModel, SpecService)


def test_model_has_the_camera_services_and_matches_the_event_ids():
    m = SpecModel.load()
    names = {s["type"]: sid for sid, s in m.services.items()}
    for svc in ("camera-control", "ptz-control", "motion-detection", "ai-detection", "storage", "indicator-light"):
        assert svc in names
    for (svc, evt), eiid in events.EVENTS.items():       # the DEVICE_SIM engineer's event ids exist in the model
        spec = m.events[(events.SERVICES[svc], eiid)]
        assert spec["service"] == svc and spec["type"] == evt


def test_bad_model_file_names_the_field(tmp_path):
    obj = json.loads(MODEL_PATH.read_text())
    bad = copy.deepcopy(obj)
    bad["services"][1]["properties"][0]["format"] = "complex128"
    p = tmp_path / "model.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(InputFileError, match=r"services/1/properties/0/format"):
        SpecModel.load(p)
    bad = copy.deepcopy(obj)
    bad["services"][4]["actions"][0]["in"] = [99]
    p.write_text(json.dumps(bad))
    with pytest.raises(InputFileError, match="unknown piid 99"):
        SpecModel.load(p)


def test_formats_ranges_and_access():
    s = SpecService()
    res = s.set_properties([
        {"siid": 3, "piid": 3, "value": 30}, {"siid": 3, "piid": 3, "value": 31}, {"siid": 3, "piid": 3, "value": 2.5},
        {"siid": 2, "piid": 1, "value": 1}, {"siid": 4, "piid": 5, "value": 0.5}, {"siid": 4, "piid": 5, "value": 1e9},
        {"siid": 4, "piid": 5, "value": float("nan")}, {"siid": 2, "piid": 3, "value": True},
        {"siid": "2", "piid": 1, "value": True}, {"siid": 2, "piid": 1}, "junk"])
    assert [r["code"] for r in res] == [OK, E_VALUE, E_VALUE, E_VALUE, OK, E_VALUE, E_VALUE, E_VALUE, E_PARAMS,
                                        E_PARAMS, E_PARAMS]
    assert s.get("motion-detection", "alarm-interval") == 30 and s.get("ai-detection", "min-confidence") == 0.5
    res = s.get_properties([{"siid": 5, "piid": 4}, {"siid": 99, "piid": 1}, {"siid": 2, "piid": 99}])
    assert [r["code"] for r in res] == [E_NOT_READABLE, E_SERVICE, E_PROPERTY]
    with pytest.raises(ValueError):
        s.get_properties({"siid": 2})
    assert s.do_action({"siid": 2, "aiid": 9, "in": []})["code"] == E_ACTION
    assert s.do_action({"siid": 2, "aiid": 1, "in": [{"piid": 1, "value": 1}]})["code"] == E_PARAMS
    assert s.do_action({"siid": 2, "aiid": 1, "in": []})["code"] == OK
    assert s.rejected >= 12


def test_events_are_validated_and_notified():
    s = SpecService()
    got = []
    s.listeners.append(lambda kind, body: got.append((kind, body)))
    evt = events.detection_event("pet", 0.8, "yard", [0.1, 0.1, 0.5, 0.5], 3.0, 3.1)
    s.event(evt)
    assert got[-1][0] == "event_occured" and got[-1][1]["event"] == "pet" and got[-1][1]["zone"] == "yard"
    with pytest.raises(ValueError, match="not in the SPEC model"):
        s.event({"siid": 4, "eiid": 77})
    with pytest.raises(ValueError, match="missing arguments"):
        s.event({"siid": 3, "eiid": 1})
    assert s.rejected == 1 and E_EVENT < 0


def test_watching_property_and_privacy_led():
    s = SpecService()
    changes = []
    s.listeners.append(lambda kind, body: changes.extend(body if kind == "properties_changed" else []))
    s.set_properties([{"siid": 7, "piid": 2, "value": 1}])       # indicator: blink while watched
    s.set_watching(2)
    assert s.get("camera-control", "watching") is True and s.get("camera-control", "viewers") == 2
    assert s.get("indicator-light", "on") is True
    s.set_watching(0)
    assert s.get("camera-control", "watching") is False and s.get("indicator-light", "on") is False
    assert {"siid": 2, "piid": 7, "value": True} in changes and {"siid": 2, "piid": 7, "value": False} in changes
