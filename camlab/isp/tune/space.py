"""The search space of ISP auto-tuning: dotted fields of the tuning file with their ranges, checked before any trial.

A space maps ``stage.field`` (a field of :class:`camlab.isp.pipeline.PipelineConfig`'s stage dataclasses, e.g.
``nr2d.strength_y``) to a :class:`ParamSpec`: ``low``/``high`` (``log``) for float and int fields, ``choices`` for
string/``Literal`` fields. Names are resolved against the dataclasses and ranges against each stage's own
``__post_init__`` (every corner of a stage's searched fields is built once), so an unknown name or a range outside
a stage's valid domain is a one-line :class:`SearchSpaceError` before Optuna samples anything. Sampling uses the
Optuna trial API (Akiba et al., KDD 2019); the black-box view of the ISP follows Tseng et al., SIGGRAPH 2019 and
Mosleh et al., CVPR 2020.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_origin, get_type_hints

from camlab.config import load_config, read_yaml
from camlab.errors import CamlabError, ConfigError

DEFAULT_SPACE_FILE = Path(__file__).resolve().parent / "default_space.yaml"
#: fields the PSNR harness fixes to the ground truth's rendering (plain sRGB transfer, no S-curve)
PSNR_PINNED: tuple[str, ...] = ("tone.", "wb.", "gain.", "blc.", "lsc.", "scale.", "csc.", "ae.", "noise.", "stats.")
MAX_CORNERS = 512
#: domains of searchable fields whose stage dataclass does not check them itself (inclusive; None = open)
EXTRA_DOMAIN: dict[str, tuple[float | None, float | None]] = {"ccm.saturation": (0.0, None),
                                                              "nr3d.motion_hi": (0.0, None)}


class SearchSpaceError(ConfigError):
    """A search-space entry names no tuning field, or its range leaves the stage's valid domain."""


@dataclass(frozen=True)
class ParamSpec:
    """One searched field: ``low``/``high`` (inclusive; ``log`` samples on a log scale) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str] | None = None


@dataclass(frozen=True)
class _SpaceFile:
    params: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)


Kind = Literal["float", "int", "categorical"]


@dataclass(frozen=True)
class Param:
    """A resolved parameter: its dotted name, stage, field, kind and range."""

    name: str
    stage: str
    field: str
    kind: Kind
    spec: ParamSpec


SearchSpace = dict[str, Param]


def _stage_types() -> dict[str, type]:
    from camlab.isp.pipeline import PipelineConfig

    hints = get_type_hints(PipelineConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(PipelineConfig)
            if dataclasses.is_dataclass(hints[f.name])}


def _field_kind(tp: Any) -> Kind | None:
    if tp is float:
        return "float"
    if tp is int:
        return "int"
    if tp is str or tp is bool or get_origin(tp) is Literal:
        return "categorical"
    return None


def resolve(name: str, spec: ParamSpec) -> Param:
    """``stage.field`` -> :class:`Param`; SearchSpaceError for an unknown name or a spec that does not fit."""
    stages = _stage_types()
    parts = name.split(".")
    if len(parts) != 2 or parts[0] not in stages:
        raise SearchSpaceError(f"search space: unknown parameter {name!r} (expected stage.field with stage one of "
                               f"{', '.join(sorted(stages))})")
    stage, fld = parts
    hints = get_type_hints(stages[stage])
    if fld not in hints:
        raise SearchSpaceError(f"search space: unknown parameter {name!r} ({stage} has "
                               f"{', '.join(sorted(hints))})")
    kind = _field_kind(hints[fld])
    if kind is None:
        raise SearchSpaceError(f"search space: {name} has type {hints[fld]} and cannot be searched")
    if kind == "categorical":
        if not spec.choices:
            raise SearchSpaceError(f"search space: {name} is a choice field: give choices, not low/high")
    else:
        if spec.choices is not None or spec.low is None or spec.high is None:
            raise SearchSpaceError(f"search space: {name} is numeric: give low and high")
        if not spec.low < spec.high:
            raise SearchSpaceError(f"search space: {name}: need low < high, got {spec.low}..{spec.high}")
        if kind == "int" and (spec.low != int(spec.low) or spec.high != int(spec.high)):
            raise SearchSpaceError(f"search space: {name} is an integer field: low/high must be integers")
        if spec.log and spec.low <= 0:
            raise SearchSpaceError(f"search space: {name}: a log range needs low > 0, got {spec.low}")
    return Param(name, stage, fld, kind, spec)


def _values(p: Param) -> list[Any]:
    """The values a domain check builds: both ends of a range (and the midpoint), every choice."""
    if p.kind == "categorical":
        if get_type_hints(_stage_types()[p.stage])[p.field] is bool:
            return [_as_bool(p.name, c) for c in p.spec.choices]
        return list(p.spec.choices)
    lo, hi = p.spec.low, p.spec.high
    vals = [lo, (lo + hi) / 2, hi]
    return [int(round(v)) for v in vals] if p.kind == "int" else [float(v) for v in vals]


def _as_bool(name: str, v: str) -> bool:
    if str(v).lower() in ("true", "1", "yes", "on"):
        return True
    if str(v).lower() in ("false", "0", "no", "off"):
        return False
    raise SearchSpaceError(f"search space: {name}: choice {v!r} is not a boolean")


def check_domain(space: SearchSpace, base) -> None:
    """Build every corner of each stage's searched fields on ``base`` (a PipelineConfig): the stage dataclasses'
    own checks decide; the first failure is a SearchSpaceError naming the fields and values."""
    by_stage: dict[str, list[Param]] = {}
    for p in space.values():
        by_stage.setdefault(p.stage, []).append(p)
        lo, hi = EXTRA_DOMAIN.get(p.name, (None, None))
        if p.kind != "categorical" and ((lo is not None and p.spec.low < lo) or (hi is not None and p.spec.high > hi)):
            raise SearchSpaceError(f"search space: {p.name} range {p.spec.low}..{p.spec.high} is outside the "
                                   f"{p.stage} stage's valid domain [{lo}, {'inf' if hi is None else hi}]")
    for stage, params in by_stage.items():
        grids = [[(p, v) for v in _values(p)] for p in params]
        n = 1
        for g in grids:
            n *= len(g)
        combos = itertools.product(*grids) if n <= MAX_CORNERS else (tuple(g[i % len(g)] for g in grids)
                                                                      for i in range(MAX_CORNERS))
        for combo in combos:
            try:
                dataclasses.replace(getattr(base, stage), **{p.field: v for p, v in combo})
            except (ValueError, TypeError, CamlabError) as exc:
                what = ", ".join(f"{p.name}={v}" for p, v in combo)
                raise SearchSpaceError(f"search space: range outside the {stage} stage's valid domain at {what}: "
                                       f"{exc}") from None


def load_space(path: str | Path | None, objective: str, base) -> SearchSpace:
    """Read a space YAML (default: :data:`DEFAULT_SPACE_FILE`, without the tone keys for PSNR), resolve every name
    and check every range against ``base``'s stages. One-line SearchSpaceError on any problem."""
    src = Path(path) if path is not None else DEFAULT_SPACE_FILE
    raw = read_yaml(src)
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(f"{src}: expected a mapping of stage.field -> {{low, high}} or {{choices}}")
    try:
        specs = load_config(_SpaceFile, {"params": raw}).params
    except ConfigError as exc:
        raise SearchSpaceError(f"{src}: {exc}".replace("<dict>: ", "")) from None
    space: SearchSpace = {}
    for name, spec in specs.items():
        if objective == "psnr" and name.startswith(PSNR_PINNED):
            if path is None:
                continue  # the default space's tone keys are for the other objectives
            raise SearchSpaceError(f"{src}: {name} cannot be searched with --objective psnr (its harness pins "
                                   f"{name.split('.')[0]} to the ground truth's rendering)")
        space[name] = resolve(name, spec)
    check_domain(space, base)
    return space


def distributions(space: SearchSpace) -> dict[str, Any]:
    """The Optuna distributions :func:`suggest` samples from (to add a trial measured elsewhere)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, p in space.items():
        s = p.spec
        if p.kind == "float":
            out[name] = FloatDistribution(float(s.low), float(s.high), log=s.log)
        elif p.kind == "int":
            out[name] = IntDistribution(int(s.low), int(s.high), log=s.log)
        else:
            out[name] = CategoricalDistribution(list(s.choices))
    return out


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Ask an Optuna trial for one value of every parameter."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        s = p.spec
        if p.kind == "float":
            out[name] = trial.suggest_float(name, float(s.low), float(s.high), log=s.log)
        elif p.kind == "int":
            out[name] = trial.suggest_int(name, int(s.low), int(s.high), log=s.log)
        else:
            v = trial.suggest_categorical(name, list(s.choices))
            bool_field = get_type_hints(_stage_types()[p.stage])[p.field] is bool
            out[name] = _as_bool(name, v) if bool_field else v
    return out


def apply(cfg, params: dict[str, Any]):
    """A PipelineConfig with the dotted ``params`` replaced (the stages' checks raise ValueError/ConfigError).
    A boolean field may come as its choice string (as Optuna stores it, e.g. a finished trial's params)."""
    by_stage: dict[str, dict[str, Any]] = {}
    for name, v in params.items():
        stage, fld = name.split(".")
        if isinstance(v, str) and get_type_hints(_stage_types()[stage])[fld] is bool:
            v = _as_bool(name, v)
        by_stage.setdefault(stage, {})[fld] = v
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **kv) for s, kv in by_stage.items()})


def space_table(space: SearchSpace) -> list[dict[str, Any]]:
    """The space as plain rows (for JSON and MLflow)."""
    return [{"name": p.name, "kind": p.kind, **{k: v for k, v in dataclasses.asdict(p.spec).items() if v is not None}}
            for p in space.values()]


__all__ = ["ParamSpec", "Param", "SearchSpace", "SearchSpaceError", "load_space", "resolve", "check_domain",
           "suggest", "distributions", "apply", "space_table", "DEFAULT_SPACE_FILE"]
