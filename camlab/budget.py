"""The demo's pass/fail budget: checks from an editable YAML against the figures a run produced.

A check names a dotted metric path in the results and a bound (``max``, ``min``, or ``max_from_chip``: a field of the
chip profile). A figure that is missing or not finite fails the check: a budget never passes by default.

A check may carry ``assess_if`` (a figure and its minimum): when that figure is below it the check cannot mean
anything at this scale (a drop between two near-zero mAPs is noise) and is reported NOT ASSESSED with the reason,
neither PASS nor FAIL. A missing ``assess_if`` figure does not excuse the check: it is assessed as usual.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camlab.config import load_config
from camlab.errors import ConfigError

DEFAULT_BUDGET = Path(__file__).resolve().parent / "configs" / "budget.yaml"


PASS, FAIL, NOT_ASSESSED = "PASS", "FAIL", "NOT ASSESSED"


@dataclass(frozen=True)
class AssessIf:
    """Assess the check only when the figure at ``metric`` is at least ``min`` (``label`` names it in the reason;
    ``why``, when given, is the whole reason shown instead)."""
    metric: str
    min: float
    label: str = ""
    why: str = ""


@dataclass(frozen=True)
class BudgetCheck:
    name: str
    metric: str
    max: float | None = None
    min: float | None = None
    max_from_chip: str | None = None
    unit: str = ""
    assess_if: AssessIf | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.max, self.min, self.max_from_chip)) != 1:
            raise ValueError(f"check '{self.name}' needs exactly one of max, min, max_from_chip")


@dataclass(frozen=True)
class Budget:
    chip: str = "rv1106"
    checks: list[BudgetCheck] = field(default_factory=list)


@dataclass(frozen=True)
class CheckResult:
    name: str
    metric: str
    value: float | None
    bound: str
    passed: bool          # True only for PASS
    unit: str
    status: str = PASS    # PASS | FAIL | NOT ASSESSED
    reason: str = ""      # why it failed or was not assessed; empty for PASS

    def summary(self) -> str:
        """``name: reason`` (one line, for the terminal)."""
        return f"{self.name}: {self.reason}" if self.reason else self.name


def load_budget(path: str | Path | None = None) -> Budget:
    budget = load_config(Budget, Path(path) if path else DEFAULT_BUDGET)
    if not budget.checks:
        raise ConfigError(f"{path or DEFAULT_BUDGET}: field 'checks' is empty; expected at least one check")
    return budget


def lookup(results: dict, dotted: str) -> Any:
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _number(raw: Any) -> float | None:
    value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float, unit: str) -> str:
    return f"{value:.4g}{' ' + unit if unit else ''}"


def evaluate(budget: Budget, results: dict, chip_profile: dict | None = None) -> list[CheckResult]:
    """Each check against ``results``; a missing or non-finite figure fails; ``assess_if`` below its minimum
    gives NOT ASSESSED."""
    out = []
    for check in budget.checks:
        value = _number(lookup(results, check.metric))
        gate = check.assess_if
        gate_value = _number(lookup(results, gate.metric)) if gate else None
        if check.max is not None:
            limit, bound, ok = check.max, f"<= {check.max:g}", value is not None and value <= check.max
        elif check.min is not None:
            limit, bound, ok = check.min, f">= {check.min:g}", value is not None and value >= check.min
        else:
            raw_limit = (chip_profile or {}).get(check.max_from_chip)
            limit = _number(raw_limit)
            bound = f"<= {limit:g} ({check.max_from_chip})" if limit is not None else \
                f"<= chip.{check.max_from_chip} (unknown)"
            ok = value is not None and limit is not None and value <= limit
        if gate is not None and gate_value is not None and gate_value < gate.min:
            label = gate.label or gate.metric
            status, reason = NOT_ASSESSED, gate.why or \
                f"not assessed at demo scale ({label} {gate_value:.3g} < {gate.min:g})"
        elif ok:
            status, reason = PASS, ""
        elif value is None:
            status, reason = FAIL, f"figure {check.metric} missing or not finite"
        elif limit is None:
            status, reason = FAIL, f"bound chip.{check.max_from_chip} unknown"
        else:
            op = "<" if check.min is not None else ">"
            status, reason = FAIL, f"{_fmt(value, check.unit)} {op} {limit:g}"
        out.append(CheckResult(check.name, check.metric, value, bound, status == PASS, check.unit, status, reason))
    return out


def slug(name: str) -> str:
    """``detector INT8 mAP50 drop`` -> ``detector_int8_map50_drop`` (a check's name as an MLflow key part)."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "check"


def mlflow_metrics(checks: list[CheckResult]) -> dict[str, float]:
    """The checks as readable MLflow metrics: ``budget.<check>.pass`` (1/0; absent when NOT ASSESSED),
    ``budget.<check>.value`` (the measured figure, when there is one) and ``budget.<check>.assessed`` (1/0)."""
    out: dict[str, float] = {}
    for c in checks:
        key = f"budget.{slug(c.name)}"
        if c.status != NOT_ASSESSED:
            out[f"{key}.pass"] = float(c.passed)
        if c.value is not None:
            out[f"{key}.value"] = float(c.value)
        out[f"{key}.assessed"] = float(c.status != NOT_ASSESSED)
    return out


def verdict(checks: list[CheckResult]) -> str:
    """PASS when no check fails and at least one passed; else FAIL."""
    return PASS if checks and not any(c.status == FAIL for c in checks) and \
        any(c.status == PASS for c in checks) else FAIL


def verdict_line(checks: list[CheckResult]) -> str:
    """``budget: PASS (9/10 checks; not assessed: ...)`` or ``budget: FAIL (check: reason; ...)``, one line."""
    v = verdict(checks)
    passed = sum(c.status == PASS for c in checks)
    if v == FAIL:
        failing = [c.summary() for c in checks if c.status == FAIL] or ["no check passed"]
        return f"budget: FAIL ({'; '.join(failing)})"
    skipped = [c.summary() for c in checks if c.status == NOT_ASSESSED]
    extra = f"; {'; '.join(skipped)}" if skipped else ""
    return f"budget: PASS ({passed}/{len(checks)} checks pass{extra})"
