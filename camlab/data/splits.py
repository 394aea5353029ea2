"""Seeded train/validation splits by source image, written as JSON manifests in ``datasets/``.

All copies of one source photo (Roboflow augmentations share a stem before ``_jpg.rf.<hash>``; COCO ids shared
between folders) fall on the same side, so validation figures are not inflated by near-duplicates. The side of a
source is a pure function of (seed, source id) -- ``sha256`` of both mapped to [0, 1) -- so adding a folder never
moves existing images between splits. Manifests list every image per folder and split plus counts per class.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from camlab import settings
from camlab.data.classes import CLASSES
from camlab.data.pets import is_pets_folder, load_pets_folder
from camlab.data.yolo import LoadReport, Sample, load_yolo_folder
from camlab.errors import InputFileError
from camlab.io_utils import atomic_write_json

#: the detection folders of ../shared/data used for training and validation (relative to the data root)
DEFAULT_FOLDERS: tuple[str, ...] = (
    "images/coco128/train2017", "images/coco128/val2017", "images/persons_cctv/train",
    "images/vehicles_openimages/train", "images/vehicles_openimages/valid",
    "images/vehicles_trafficcam/train", "images/vehicles_trafficcam/valid",
    "images/oxford_pets_more/train", "images/oxford_pets/trainval",
)
DEFAULT_MANIFEST = "datasets/detector_split.json"


def load_folder(path: str | Path, *, strict: bool = False, dataset: str | None = None
                ) -> tuple[list[Sample], LoadReport]:
    """A YOLO folder or an Oxford-IIIT Pet folder (trimaps), whichever ``path`` is."""
    path = Path(path)
    if is_pets_folder(path):
        return load_pets_folder(path, strict=strict, dataset=dataset)
    return load_yolo_folder(path, strict=strict, dataset=dataset)


def split_of(source: str, seed: int, val_fraction: float) -> str:
    """'val' or 'train' for a source id: sha256(seed:source) as a number in [0, 1) against ``val_fraction``."""
    h = hashlib.sha256(f"{seed}:{source}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2 ** 64
    return "val" if u < val_fraction else "train"


def count(samples: Iterable[Sample]) -> dict:
    """Images, negatives, and per class the images containing it and its boxes."""
    samples = list(samples)
    out = {"images": len(samples), "negatives": sum(1 for s in samples if len(s.labels) == 0)}
    for ci, name in enumerate(CLASSES):
        out[name] = {"images": sum(1 for s in samples if s.has(ci)),
                     "boxes": int(sum(int(np.sum(s.labels == ci)) for s in samples))}
    return out


def build_split(folders: Iterable[str] = DEFAULT_FOLDERS, *, seed: int = 0, val_fraction: float = 0.2,
                data_root: Path | None = None) -> dict:
    """Load every folder, assign each source to a side; returns the manifest dict (not yet written)."""
    if not 0.0 < val_fraction < 1.0:
        raise InputFileError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(data_root) if data_root is not None else settings.data_root()
    manifest = {"kind": "detector_split", "version": 1, "seed": seed, "val_fraction": val_fraction,
                "group_by": "source image (Roboflow suffix stripped)", "classes": list(CLASSES),
                "folders": {}, "reports": {}, "counts": {}}
    by_split: dict[str, list[Sample]] = {"train": [], "val": []}
    for rel in folders:
        samples, report = load_folder(root / rel, dataset=rel)
        entry = {"train": [], "val": []}
        for s in samples:
            side = split_of(s.source, seed, val_fraction)
            entry[side].append(s.image.name)
            by_split[side].append(s)
        manifest["folders"][rel] = entry
        rep = report.as_dict()
        rep["folder"] = rel
        manifest["reports"][rel] = rep
    manifest["counts"] = {side: count(v) for side, v in by_split.items()}
    manifest["counts_per_folder"] = {
        rel: {side: count([s for s in by_split[side] if s.dataset == rel]) for side in ("train", "val")}
        for rel in manifest["folders"]}
    return manifest


def write_split(path: str | Path = DEFAULT_MANIFEST, **kwargs) -> dict:
    """Build and atomically write a split manifest (relative paths resolve against the project root)."""
    manifest = build_split(**kwargs)
    path = Path(path)
    if not path.is_absolute():
        path = settings.project_root() / path
    atomic_write_json(path, manifest, indent=1)
    return manifest


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: split manifest not found (build it with camlab.data.splits.write_split)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "detector_split" or "folders" not in manifest:
        raise InputFileError(f"{path}: not a detector split manifest (expected kind 'detector_split' and 'folders')")
    return manifest


def load_split(manifest: str | Path | dict, split: str, *, data_root: Path | None = None
               ) -> tuple[list[Sample], list[LoadReport]]:
    """The samples of one side ('train' or 'val') of a manifest, in manifest order; missing files raise."""
    if split not in ("train", "val"):
        raise InputFileError(f"split must be 'train' or 'val', got {split!r}")
    where = manifest if isinstance(manifest, (str, Path)) else "<manifest>"
    if not isinstance(manifest, dict):
        manifest = read_manifest(manifest)
    root = Path(data_root) if data_root is not None else settings.data_root()
    out: list[Sample] = []
    reports = []
    for rel, entry in manifest["folders"].items():
        wanted = entry.get(split, [])
        if not wanted:
            continue
        samples, report = load_folder(root / rel, dataset=rel)
        by_name = {s.image.name: s for s in samples}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise InputFileError(f"{where}: {len(missing)} image(s) of '{rel}' listed for {split} are missing or "
                                 f"unusable under {root / rel}, e.g. {missing[0]}")
        out.extend(by_name[n] for n in wanted)
        reports.append(report)
    return out, reports


def is_manifest_path(path: str | Path) -> bool:
    return str(path).endswith(".json") and Path(path).is_file()
