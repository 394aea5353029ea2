"""Which classes each detection source labels exhaustively (federated labels), read from ``datasets/label_sets.yaml``.

Gupta, Dollar, Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation", CVPR 2019, section 3: a
federated dataset is a union of sources, each exhaustively annotated for its own set of categories; an image is a
negative for category c only when its source labels c. camlab's training mix joins such sources (CCTV frames label
people only, vehicle photos vehicles only, pet photos pets only). A folder's label set comes from, in order: a
``label_set.txt`` in the folder or its parent (one class name per line), else the registry line of its source
(``images/<source>/<split>`` -> ``<source>``). A folder with neither is refused, naming the folder and both files.

LVIS's second flag, ``not_exhaustive_category_ids`` (section 3.2): a source may label a class without labelling
every instance of it (a hobby CCTV set that boxes the people in focus and leaves passers-by, crowds and people at
the frame edge unboxed). Its boxes stay positives, but a place without a box is not known to be free of the class:
such an image is no negative for it, in training (loss masked where the model already sees the class,
:mod:`camlab.train.detector_loss`), in threshold calibration and in the federated false-positive rates. A registry
line declares it as ``source: {labels: [person], not_exhaustive: [person]}``.

A registry line may also declare ``display_aspect: "W:H"``: the aspect the source's pictures were taken at, when its
exporter stretched them to another (Roboflow's "stretch to 640x640" of 16:9 CCTV video). Every reader then resizes
the stored pixels back to that aspect (:func:`camlab.data.render.sample_rgb`), so the detector trains and is scored
on the geometry the camera's 16:9 substream has; normalized boxes stay valid under that resize.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from camlab import settings
from camlab.data.classes import CLASSES, normalize_name
from camlab.errors import ConfigError, InputFileError

REGISTRY = "datasets/label_sets.yaml"
LOCAL_FILE = "label_set.txt"
#: folder names that are splits of a source rather than a source (``coco128/train2017`` -> ``coco128``)
SPLIT_NAMES = frozenset({"train", "valid", "val", "validation", "test", "trainval", "train2017", "val2017"})
ALL_LABELLED: tuple[bool, ...] = (True,) * len(CLASSES)
NONE_INCOMPLETE: tuple[bool, ...] = (False,) * len(CLASSES)


def source_name(folder: str | Path) -> str:
    """The source a folder belongs to: its parent's name when the folder is a split, else its own name."""
    p = Path(folder)
    return p.parent.name if p.name.lower() in SPLIT_NAMES else p.name


def _parse_classes(names: list, where: str, allow_empty: bool = False) -> tuple[bool, ...]:
    if not isinstance(names, list) or (not names and not allow_empty):
        raise ConfigError(f"{where}: expected a non-empty list of classes from {list(CLASSES)}")
    mask = [False] * len(CLASSES)
    for n in names:
        key = normalize_name(str(n))
        if key not in CLASSES:
            raise ConfigError(f"{where}: unknown class {n!r}; expected some of {list(CLASSES)}")
        mask[CLASSES.index(key)] = True
    return tuple(mask)


@dataclass(frozen=True)
class SourceEntry:
    """One registry line: which classes the source labels, which of them not exhaustively, its display aspect."""
    labelled: tuple[bool, ...]
    incomplete: tuple[bool, ...] = NONE_INCOMPLETE
    display_aspect: float | None = None     # width / height the pictures were taken at (None: as stored)


def _parse_aspect(value, where: str) -> float:
    parts = str(value).split(":") if isinstance(value, str) else []
    try:
        w, h = (float(p) for p in parts) if len(parts) == 2 else (0.0, 0.0)
    except ValueError:
        w = h = 0.0
    if not (w > 0 and h > 0):
        raise ConfigError(f"{where}: expected an aspect as \"W:H\" with W, H > 0 (e.g. \"16:9\"), got {value!r}")
    return w / h


def _parse_entry(value, where: str) -> SourceEntry:
    """One registry line: a class list, or {labels: [...], not_exhaustive: [...], display_aspect: "W:H"}."""
    if not isinstance(value, dict):
        return SourceEntry(_parse_classes(value, where))
    unknown = set(value) - {"labels", "not_exhaustive", "display_aspect"}
    if unknown or "labels" not in value:
        raise ConfigError(f"{where}: expected `[classes]` or `{{labels: [classes], not_exhaustive: [classes], "
                          f"display_aspect: \"W:H\"}}`, got keys {sorted(map(str, value))}")
    labelled = _parse_classes(value["labels"], f"{where}.labels")
    incomplete = _parse_classes(value.get("not_exhaustive") or [], f"{where}.not_exhaustive", allow_empty=True)
    stray = [c for c, i, l in zip(CLASSES, incomplete, labelled) if i and not l]
    if stray:
        raise ConfigError(f"{where}.not_exhaustive: {stray} not in labels (only a labelled class can be incomplete)")
    aspect = value.get("display_aspect")
    return SourceEntry(labelled, incomplete,
                       None if aspect is None else _parse_aspect(aspect, f"{where}.display_aspect"))


@lru_cache(maxsize=4)
def _registry(path: str) -> dict[str, SourceEntry]:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: label-set registry missing (one line per source: `name: [person, ...]`)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping `source: [classes]`")
    return {str(k): _parse_entry(v, f"{p}: {k}") for k, v in raw.items()}


def registry() -> dict[str, tuple[bool, ...]]:
    """Source -> which classes it labels."""
    return {k: v.labelled for k, v in _registry(str(settings.project_root() / REGISTRY)).items()}


def _entry(folder: str | Path) -> SourceEntry | None:
    return _registry(str(settings.project_root() / REGISTRY)).get(source_name(folder))


def _local_file(folder: Path) -> Path | None:
    """The folder's own ``label_set.txt`` (in it or its parent), which takes precedence over the registry."""
    return next((c for c in (folder / LOCAL_FILE, folder.parent / LOCAL_FILE) if c.is_file()), None)


def declared_sets(folder: str | Path, default: tuple[bool, ...] | None = None
                  ) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(labelled, not exhaustive) masks of a folder, per class of :data:`CLASSES`: from a local ``label_set.txt``
    (always exhaustive), else its source's registry line, else ``default`` (formats whose annotation scheme fixes
    the set: an Oxford-IIIT Pet folder labels the pet and nothing else); a folder with none is refused."""
    folder = Path(folder)
    local = _local_file(folder)
    if local is not None:
        names = [ln.strip() for ln in local.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        return _parse_classes(names, str(local)), NONE_INCOMPLETE
    src = source_name(folder)
    entry = _entry(folder)
    if entry is not None:
        return entry.labelled, entry.incomplete
    if default is not None:
        return default, NONE_INCOMPLETE
    raise InputFileError(f"{folder}: no declared label set (which classes does this source label exhaustively?); "
                         f"add `{src}: [person, pet, vehicle]` (only the labelled ones) to {REGISTRY} or write "
                         f"{folder / LOCAL_FILE} with one class per line")


def label_set(folder: str | Path, default: tuple[bool, ...] | None = None) -> tuple[bool, ...]:
    """Per class of :data:`CLASSES`, whether the folder's source labels it (:func:`declared_sets`)."""
    return declared_sets(folder, default)[0]


def incomplete_set(folder: str | Path) -> tuple[bool, ...]:
    """Per class, whether the folder's source labels it but not every instance (LVIS ``not_exhaustive``)."""
    return declared_sets(folder)[1]


def display_aspect(folder: str | Path) -> float | None:
    """Width / height the folder's pictures were taken at when its exporter stretched them (registry
    ``display_aspect``), else None (shown as stored). A folder declaring itself in a ``label_set.txt`` is shown as
    stored (that file holds classes only)."""
    if _local_file(Path(folder)) is not None:
        return None
    entry = _entry(folder)
    return None if entry is None else entry.display_aspect


def describe(mask: tuple[bool, ...]) -> list[str]:
    return [c for c, m in zip(CLASSES, mask) if m]
