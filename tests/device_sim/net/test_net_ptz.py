"""PTZ stepper head: homing from an unknown position, backlash-compensated moves, presets, patrol, SPEC actions."""
from __future__ import annotations

import numpy as np
import pytest

from device_sim.hal.ptz import PAN, PtzController
from device_sim.spec.bindings import bind_ptz
from device_sim.spec.service import OK, SpecService


def _err(ptz, target):
    return max(abs(a - b) for a, b in zip(ptz.true_position(), target))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positioning_error_within_one_degree(seed):
    ptz = PtzController.create(seed)
    ptz.home()
    rng = np.random.default_rng(100 + seed)
    errs = []
    for _ in range(40):
        target = (float(rng.uniform(0, 350)), float(rng.uniform(0, 90)))
        ptz.move_to(*target)
        errs.append(_err(ptz, target))
    assert max(errs) <= 1.0
    assert float(np.mean(errs)) < 0.1          # backlash handled, not merely under the limit
    assert ptz.pan_axis.lost_steps == 0


def test_backlash_compensation_matters():
    """Without the unidirectional approach a reversal leaves the head off by the backlash (~0.8 deg)."""
    ptz = PtzController.create(3)
    ptz.home()
    ptz.move_to(200.0, 45.0)
    naive = ptz.state["pan"]
    naive_goal = int(round(150.0 / PAN.deg_per_step))
    ptz._drive("pan", naive_goal - naive.steps, ptz.run_pps)        # a plain reversal, no overshoot
    assert abs(ptz.pan_axis.angle - 150.0) > 0.5
    ptz.move_to(150.0, 45.0)
    assert _err(ptz, (150.0, 45.0)) <= 0.1


def test_lost_steps_are_recovered_by_rehoming():
    ptz = PtzController.create(4)
    ptz.home()
    ptz.move_to(100.0, 30.0)
    ptz.pan_axis.disturb(-12.0)                                      # knocked by hand
    ptz.move_to(180.0, 30.0)
    assert _err(ptz, (180.0, 30.0)) > 10
    ptz.home()
    ptz.move_to(180.0, 30.0)
    assert _err(ptz, (180.0, 30.0)) <= 1.0
    fast = PtzController.create(5, pan=PAN)
    fast.run_pps = 1200.0                                            # over pull-in: the motor slips
    fast.home()
    fast.move_to(300.0, 10.0)
    assert fast.pan_axis.lost_steps > 0 and _err(fast, (300.0, 10.0)) > 1.0


def test_presets_and_patrol():
    ptz = PtzController.create(6)
    spots = {1: (20.0, 10.0), 2: (180.0, 60.0), 3: (330.0, 5.0)}
    for p, pos in spots.items():
        ptz.move_to(*pos)
        ptz.save_preset(p)
    visits = ptz.patrol([1, 2, 3, 1], dwell_s=2.0, rounds=2)
    assert [v["preset"] for v in visits] == [1, 2, 3, 1] * 2
    assert max(max(abs(a - b) for a, b in zip(v["true"], spots[v["preset"]])) for v in visits) <= 1.0
    assert all(b["t_s"] > a["t_s"] for a, b in zip(visits, visits[1:]))
    with pytest.raises(ValueError):
        ptz.goto_preset(7)
    with pytest.raises(ValueError):
        ptz.move_to(400.0, 0.0)


def test_homing_fails_loudly_without_a_switch():
    from camlab.errors import CamlabError
    ptz = PtzController.create(7)
    ptz.pan_axis.spec = type(PAN)(**{**PAN.__dict__, "switch_deg": -50.0})
    with pytest.raises(CamlabError, match="limit switch"):
        ptz.home("pan")


def test_spec_actions_drive_the_head():
    ptz = PtzController.create(8)
    spec = SpecService()
    bind_ptz(spec, ptz)
    r = spec.do_action({"siid": 5, "aiid": 4, "in": []})                       # calibrate (home)
    assert r["code"] == OK and spec.get("ptz-control", "homed") is True
    r = spec.do_action({"siid": 5, "aiid": 1, "in": [{"piid": 5, "value": 123.4}, {"piid": 6, "value": 33.0}]})
    assert r["code"] == OK and abs(r["out"][0]["value"] - 123.4) < 0.05
    assert _err(ptz, (123.4, 33.0)) <= 1.0
    assert abs(spec.get("ptz-control", "pan") - 123.4) < 0.1
    assert spec.do_action({"siid": 5, "aiid": 3, "in": [{"piid": 4, "value": 2}]})["code"] == OK
    spec.do_action({"siid": 5, "aiid": 1, "in": [{"piid": 5, "value": 10.0}, {"piid": 6, "value": 80.0}]})
    r = spec.do_action({"siid": 5, "aiid": 2, "in": [{"piid": 4, "value": 2}]})
    assert r["code"] == OK and _err(ptz, (123.4, 33.0)) <= 1.0
    r = spec.do_action({"siid": 5, "aiid": 2, "in": [{"piid": 4, "value": 5}]})   # unsaved preset
    assert r["code"] != OK
    r = spec.do_action({"siid": 5, "aiid": 1, "in": [{"piid": 5, "value": 999.0}, {"piid": 6, "value": 0.0}]})
    assert r["code"] != OK
