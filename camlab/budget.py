"""The demo's pass/fail budget: checks from an editable YAML against the figures a run produced.

A check names a dotted metric path in the results and a bound (``max``, ``min``, or ``max_from_chip``: a field of the
chip profile). A figure that is missing or not finite fails the check: a budget never passes by default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camlab.config import load_config
from camlab.errors import ConfigError

DEFAULT_BUDGET = Path(__file__).resolve().parent / "configs" / "budget.yaml"


@dataclass(frozen=True)
class BudgetCheck:
    name: str
    metric: str
    max: float | None = None
    min: float | None = None
    max_from_chip: str | None = None
    unit: str = ""

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
    passed: bool
    unit: str


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


def evaluate(budget: Budget, results: dict, chip_profile: dict | None = None) -> list[CheckResult]:
    """Each check against ``results``; a missing or non-finite figure fails."""
    out = []
    for check in budget.checks:
        raw = lookup(results, check.metric)
        value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        if value is not None and not math.isfinite(value):
            value = None
        if check.max is not None:
            bound, ok = f"<= {check.max:g}", value is not None and value <= check.max
        elif check.min is not None:
            bound, ok = f">= {check.min:g}", value is not None and value >= check.min
        else:
            limit = (chip_profile or {}).get(check.max_from_chip)
            bound = f"<= {limit:g} ({check.max_from_chip})" if isinstance(limit, (int, float)) else \
                f"<= chip.{check.max_from_chip} (unknown)"
            ok = value is not None and isinstance(limit, (int, float)) and value <= limit
        out.append(CheckResult(check.name, check.metric, value, bound, bool(ok), check.unit))
    return out
