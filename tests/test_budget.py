"""The demo budget: YAML checks, missing figures fail, chip-relative bounds."""
from __future__ import annotations

import math

import pytest

from camlab.budget import Budget, BudgetCheck, evaluate, load_budget
from camlab.errors import ConfigError


def test_default_budget_loads_and_names_the_issue_targets():
    budget = load_budget()
    metrics = {c.metric for c in budget.checks}
    assert "export.detector.npu_latency_ms_est" in metrics and "device_sim.real_time_factor" in metrics


def test_checks_pass_fail_and_missing_fails():
    budget = Budget(checks=[BudgetCheck("lat", "a.lat", max=8.0), BudgetCheck("rtf", "b.rtf", min=1.0),
                            BudgetCheck("flash", "c.mb", max_from_chip="flash_data_mb"),
                            BudgetCheck("gone", "x.y", max=1.0), BudgetCheck("nan", "a.nan", max=1.0)])
    res = evaluate(budget, {"a": {"lat": 7.9, "nan": math.nan}, "b": {"rtf": 0.8}, "c": {"mb": 3}},
                   {"flash_data_mb": 4})
    assert [r.passed for r in res] == [True, False, True, False, False]
    assert res[3].value is None


def test_bad_budget_yaml_names_the_key(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("checks:\n  - {name: x, metric: a, maxx: 1}\n")
    with pytest.raises(ConfigError, match="checks\\[0\\].maxx"):
        load_budget(p)
    p.write_text("checks:\n  - {name: x, metric: a}\n")
    with pytest.raises(ConfigError, match="exactly one"):
        load_budget(p)
