"""Which classes each detection source labels exhaustively (federated labels), read from ``datasets/label_sets.yaml``.

Gupta, Dollar, Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation", CVPR 2019, section 3: a
federated dataset is a union of sources, each exhaustively annotated for its own set of categories; an image is a
negative for category c only when its source labels c. camlab's training mix joins such sources (CCTV frames label
people only, vehicle photos vehicles only, pet photos pets only). A folder's label set comes from, in order: a
``label_set.txt`` in the folder or its parent (one class name per line), else the registry line of its source
(``images/<source>/<split>`` -> ``<source>``). A folder with neither is refused, naming the folder and both files.
"""
from __future__ import annotations

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


def source_name(folder: str | Path) -> str:
    """The source a folder belongs to: its parent's name when the folder is a split, else its own name."""
    p = Path(folder)
    return p.parent.name if p.name.lower() in SPLIT_NAMES else p.name


def _parse_classes(names: list, where: str) -> tuple[bool, ...]:
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}: expected a non-empty list of classes from {list(CLASSES)}")
    mask = [False] * len(CLASSES)
    for n in names:
        key = normalize_name(str(n))
        if key not in CLASSES:
            raise ConfigError(f"{where}: unknown class {n!r}; expected some of {list(CLASSES)}")
        mask[CLASSES.index(key)] = True
    return tuple(mask)


@lru_cache(maxsize=4)
def _registry(path: str) -> dict[str, tuple[bool, ...]]:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: label-set registry missing (one line per source: `name: [person, ...]`)")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping `source: [classes]`")
    return {str(k): _parse_classes(v, f"{p}: {k}") for k, v in raw.items()}


def registry() -> dict[str, tuple[bool, ...]]:
    return _registry(str(settings.project_root() / REGISTRY))


def label_set(folder: str | Path, default: tuple[bool, ...] | None = None) -> tuple[bool, ...]:
    """Per class of :data:`CLASSES`, whether the folder's source labels it exhaustively. ``default`` is for
    formats whose annotation scheme fixes the set (an Oxford-IIIT Pet folder labels the pet and nothing else)."""
    folder = Path(folder)
    for cand in (folder / LOCAL_FILE, folder.parent / LOCAL_FILE):
        if cand.is_file():
            names = [ln.strip() for ln in cand.read_text(encoding="utf-8", errors="replace").splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]
            return _parse_classes(names, str(cand))
    reg = registry()
    src = source_name(folder)
    if src in reg:
        return reg[src]
    if default is not None:
        return default
    raise InputFileError(f"{folder}: no declared label set (which classes does this source label exhaustively?); "
                         f"add `{src}: [person, pet, vehicle]` (only the labelled ones) to {REGISTRY} or write "
                         f"{folder / LOCAL_FILE} with one class per line")


def describe(mask: tuple[bool, ...]) -> list[str]:
    return [c for c, m in zip(CLASSES, mask) if m]
