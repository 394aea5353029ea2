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


def _drop_budget():
    from camlab.budget import AssessIf

    return Budget(checks=[BudgetCheck("drop", "export.drop", max=1.0, unit="points",
                                      assess_if=AssessIf("export.fp32", 30.0, "FP32 mAP50")),
                          BudgetCheck("rtf", "sim.rtf", min=1.0, unit="x")])


def test_a_check_below_its_assess_if_figure_is_not_assessed_with_the_reason():
    from camlab.budget import verdict, verdict_line

    tiny = evaluate(_drop_budget(), {"export": {"drop": 2.56, "fp32": 3.1}, "sim": {"rtf": 1.2}})
    assert [c.status for c in tiny] == ["NOT ASSESSED", "PASS"]
    assert tiny[0].passed is False and tiny[0].reason == "not assessed at demo scale (FP32 mAP50 3.1 < 30)"
    assert verdict(tiny) == "PASS"
    assert verdict_line(tiny) == ("budget: PASS (1/2 checks pass; drop: not assessed at demo scale "
                                  "(FP32 mAP50 3.1 < 30))")
    # a model good enough for the check: assessed, and the same drop fails
    real = evaluate(_drop_budget(), {"export": {"drop": 2.56, "fp32": 54.9}, "sim": {"rtf": 1.2}})
    assert [c.status for c in real] == ["FAIL", "PASS"] and verdict(real) == "FAIL"
    # a missing gate figure does not excuse the check
    gone = evaluate(_drop_budget(), {"export": {"drop": 0.2}, "sim": {"rtf": 1.2}})
    assert gone[0].status == "PASS"


def test_the_verdict_line_names_each_failing_check_and_its_reason():
    from camlab.budget import verdict_line

    res = evaluate(_drop_budget(), {"export": {"drop": 2.56, "fp32": 54.9}, "sim": {}})
    assert verdict_line(res) == ("budget: FAIL (drop: 2.56 points > 1; rtf: figure sim.rtf missing or not finite)")
    only_skipped = evaluate(Budget(checks=[_drop_budget().checks[0]]), {"export": {"drop": 0.0, "fp32": 1.0}})
    assert verdict_line(only_skipped).startswith("budget: FAIL (no check passed)")


def test_report_fail_rows_give_the_reason(tmp_path):
    from camlab.report_html import write_report

    res = evaluate(_drop_budget(), {"export": {"drop": 2.56, "fp32": 3.1}, "sim": {"rtf": 0.85}})
    rows = [(c.name, c.metric, c.value, c.bound, c.unit, c.reason, c.status) for c in res]
    page = write_report(tmp_path / "r.html", "t", "s", rows, []).read_text()
    assert '<tr class="fail"><td>rtf</td>' in page and "<td>0.85 x &lt; 1</td><td>FAIL</td>" in page
    assert '<tr class="na"><td>drop</td>' in page and "not assessed at demo scale (FP32 mAP50 3.1 &lt; 30)" in page
    assert "Budget: FAIL (0/2 checks pass, 1 not assessed at demo scale)" in page


def test_the_default_budget_reads_what_the_demo_writes():
    """A demo-scale run as measured (detector mAP50 ~3, drop +2.56, agreement 0.97): PASS with the drop not assessed;
    the same figures on a detector good enough to judge fail on the drop."""
    from camlab.budget import verdict, verdict_line
    from camlab.demo import _fidelity, _task_metric

    cry_metrics = {"task_metric": "F1", "fp32": {"F1": 92.0}, "int8": {"F1": 92.0}, "int8_metric_drop": 0.0,
                   "output_cosine": {"logits": 0.9998}}
    det_metrics = {"task_metric": "mAP50", "fp32": {"mAP50": 3.1}, "int8": {"mAP50": 0.54}}
    results = {
        "export": {"flash_mib": 1.2,
                   "detector": {"npu_latency_ms_est": 1.4, "peak_activation_mb": 0.43, "violations": 0,
                                "int8_metric_drop": 2.56, "fp32_metric": _task_metric(det_metrics, "fp32"),
                                "fidelity": {"output_cosine_min": 0.9989, "detections": 38,
                                             "detection_agreement": 0.97}},
                   "cry": {"violations": 0, "int8_metric_drop": 0.0, "fp32_metric": 92.0,
                           "fidelity": _fidelity("cry", None, cry_metrics)}},
        "device_sim": {"real_time_factor": 1.1, "event_latency_p95_ms": 17.0, "ai_fps": 14.8}}
    checks = evaluate(load_budget(), results, {"flash_data_mib": 8.0})
    by_name = {c.name: c for c in checks}
    assert by_name["detector INT8 mAP50 drop"].status == "NOT ASSESSED"
    assert [c.name for c in checks if c.status == "FAIL"] == []
    assert verdict(checks) == "PASS", verdict_line(checks)
    results["export"]["detector"]["fp32_metric"] = 54.9
    results["export"]["detector"]["fidelity"]["detection_agreement"] = 0.6
    line = verdict_line(evaluate(load_budget(), results, {"flash_data_mib": 8.0}))
    assert line == ("budget: FAIL (detector INT8 mAP50 drop: 2.56 points > 1; "
                    "detector INT8 detection agreement: 0.6 < 0.9)")


def test_budget_metrics_have_readable_mlflow_names():
    from camlab.budget import mlflow_metrics, slug

    assert slug("detector INT8 mAP50 drop") == "detector_int8_map50_drop"
    assert slug("capture -> event p95") == "capture_event_p95"
    res = evaluate(_drop_budget(), {"export": {"drop": 2.56, "fp32": 3.1}, "sim": {"rtf": 0.85}})
    assert mlflow_metrics(res) == {"budget.drop.value": 2.56, "budget.drop.assessed": 0.0,
                                   "budget.rtf.pass": 0.0, "budget.rtf.value": 0.85, "budget.rtf.assessed": 1.0}
    names = mlflow_metrics(evaluate(load_budget(), {}, {}))
    assert "budget.detector_int8_map50_drop.pass" in names and not any("budget_0" in k for k in names)


def test_real_time_factor_is_judged_only_on_the_real_clock():
    """The simulated clock's wall rate is the simulator's speed on the host: NOT ASSESSED there, with the reason;
    on the real-time clock the same figure decides; a report without the clock field is judged as before."""
    from camlab.budget import verdict_line

    base = {"export": {"flash_mib": 1.2, "detector": {"npu_latency_ms_est": 1.4, "peak_activation_mb": 0.43,
                                                      "violations": 0, "int8_metric_drop": 0.1, "fp32_metric": 50.0,
                                                      "fidelity": {"output_cosine_min": 0.999, "detections": 40,
                                                                   "detection_agreement": 0.97}},
                       "cry": {"violations": 0, "int8_metric_drop": 0.0, "fidelity": {"output_cosine_min": 0.999}}}}
    def rtf_check(device: dict):
        res = evaluate(load_budget(), {**base, "device_sim": device}, {"flash_data_mib": 8.0})
        return next(c for c in res if c.name == "device_sim real-time factor"), res
    sim = {"real_time_factor": 0.9167, "real_clock": 0, "event_latency_p95_ms": 26.2, "ai_fps": 14.8}
    c, res = rtf_check(sim)
    assert c.status == "NOT ASSESSED" and "simulated clock" in c.reason
    assert verdict_line(res).startswith("budget: PASS")
    c, res = rtf_check({**sim, "real_clock": 1})
    assert c.status == "FAIL" and verdict_line(res).startswith("budget: FAIL (device_sim real-time factor")
    c, _ = rtf_check({k: v for k, v in sim.items() if k != "real_clock"})
    assert c.status == "FAIL"
