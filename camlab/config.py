"""Typed configs: frozen dataclasses loaded from YAML with every field checked.

Unknown keys are rejected with their dotted name and the file; wrong types name the field and the expected type.
Nested dataclasses, ``Literal``, ``Optional``/``X | None``, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]`` and
``dict[str, X]`` are supported. One obvious place for loading any config in camlab and device_sim.
A YAML file may start from another: ``base: other.yaml`` (a path relative to the file) loads that one first and
deep-merges this file's keys over it (mappings merge, everything else is replaced), so a recipe that differs from
another by two lines says only those.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from camlab.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, naming the file and the line on a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None


def load_config(cls: type[T], source: str | Path | dict | None, *, overrides: dict | None = None) -> T:
    """Build dataclass ``cls`` from a YAML file, a mapping or None (defaults), applying ``overrides`` last."""
    origin = "<defaults>"
    data: Any = {}
    if isinstance(source, (str, Path)):
        origin = str(source)
        data = read_yaml_with_base(source)
    elif isinstance(source, dict):
        origin, data = "<dict>", source
    elif source is not None:
        raise ConfigError(f"config source must be a path or a mapping, got {type(source).__name__}")
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    if overrides:
        data = _deep_merge(data, overrides)
    return _build(cls, data, origin, "")


def read_yaml_with_base(path: str | Path, _seen: tuple[Path, ...] = ()) -> Any:
    """:func:`read_yaml`, resolving a top-level ``base:`` key (another YAML file, relative to this one) by loading it
    first and deep-merging this file over it; a missing base or a cycle names the file."""
    path = Path(path)
    data = read_yaml(path) or {}
    if not isinstance(data, dict) or "base" not in data:
        return data
    ref = data.pop("base")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{path}: field 'base' must be the path of another YAML file, got {ref!r}")
    parent = (path.parent / ref).resolve()
    here = path.resolve()
    if parent in _seen or parent == here:
        raise ConfigError(f"{path}: 'base: {ref}' makes a cycle ({' -> '.join(str(p) for p in (*_seen, here, parent))})")
    if not parent.is_file():
        raise ConfigError(f"{path}: field 'base' names {ref}, which is not a file ({parent})")
    inherited = read_yaml_with_base(parent, (*_seen, here))
    if not isinstance(inherited, dict):
        raise ConfigError(f"{parent}: expected a mapping at the top level (base of {path})")
    return _deep_merge(inherited, data)


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML/JSON-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any, path: str | Path) -> None:
    """Write a config as YAML (atomically)."""
    from camlab.io_utils import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(obj), sort_keys=False))


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, data: Any, origin: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: field '{prefix or '<root>'}' must be a mapping for {cls.__name__}, "
                          f"got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(f"'{prefix}{k}'" for k in unknown)
        raise ConfigError(f"{origin}: unknown key {names} for {cls.__name__}; "
                          f"expected one of: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, origin, f"{prefix}{name}")
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{origin}: missing required key(s) {', '.join(prefix + m for m in missing)}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise ConfigError(f"{origin}: {prefix or cls.__name__}: {exc}") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, origin: str, field: str) -> Any:
    org = get_origin(tp)
    args = get_args(tp)
    bad = ConfigError(f"{origin}: field '{field}' expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if org is Union or org is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, origin, field)
            except ConfigError as exc:
                errors.append(exc)
        raise bad
    if org is Literal:
        if value in args:
            return value
        raise ConfigError(f"{origin}: field '{field}' must be one of {list(args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, origin, field + ".")
    if org in (list, typing.List):
        if not isinstance(value, list):
            raise bad
        return [_coerce(args[0] if args else Any, v, origin, f"{field}[{i}]") for i, v in enumerate(value)]
    if org in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, origin, f"{field}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{origin}: field '{field}' expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, origin, f"{field}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if org in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise bad
        kt, vt = args if args else (Any, Any)
        return {_coerce(kt, k, origin, f"{field}.<key>"): _coerce(vt, v, origin, f"{field}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and math.isnan(value):
                raise ConfigError(f"{origin}: field '{field}' is NaN; expected a number")
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise bad
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad
