"""YOLO-format detection folders (``images/``, ``labels/``, ``classes.txt``) mapped onto person / pet / vehicle.

Label format (Ultralytics/Darknet): one ``class cx cy w h`` line per box, coordinates normalized to [0, 1] by the
image size. Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017. Bad input never turns into a silent
wrong metric: an image whose label file is malformed (wrong field count, class id outside ``classes.txt``,
coordinates outside [0, 1], empty box) is skipped and counted in the :class:`LoadReport` with its reason, or raises
:class:`~camlab.errors.InputFileError` with ``strict=True``; an empty folder always raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camlab.data.classes import CLASSES, class_map_for, is_known_name
from camlab.data.label_sets import declared_sets, display_aspect
from camlab.errors import InputFileError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
COORD_TOL = 1e-3  # normalized coordinates may exceed [0, 1] by rounding; beyond this a label is out of range
_ROBOFLOW = re.compile(r"_(jpg|jpeg|png|bmp|webp)\.rf\.[0-9a-fA-F]+$")


@dataclass(frozen=True)
class Sample:
    """One image with its target boxes. ``boxes``: (N, 4) float32 normalized x0, y0, x1, y1 in [0, 1];
    ``labels``: (N,) int64 indices into :data:`camlab.data.classes.CLASSES`."""
    image: Path
    boxes: np.ndarray
    labels: np.ndarray
    source: str      # source-image id: augmented copies of one photo share it (splits group by it)
    dataset: str     # folder id, e.g. "persons_cctv/train"
    #: per class, whether the image's source labels it exhaustively (camlab.data.label_sets); where it does not,
    #: the image is neither a positive nor a negative for that class beyond its own boxes
    labelled: tuple[bool, ...] = (True,) * len(CLASSES)
    #: per class, labelled but not every instance boxed (LVIS ``not_exhaustive``): the boxes are positives, the
    #: rest of the image is not known to be free of the class
    incomplete: tuple[bool, ...] = (False,) * len(CLASSES)
    #: width / height the picture was taken at when its exporter stretched it (registry ``display_aspect``);
    #: read it with :func:`camlab.data.render.sample_rgb`, which restores that geometry
    display_aspect: float | None = None

    def has(self, cls: int) -> bool:
        return bool(np.any(self.labels == cls))

    def exhaustive(self, cls: int) -> bool:
        """True when every object of ``cls`` in the image is boxed (its source labels ``cls`` exhaustively)."""
        return bool(self.labelled[cls]) and not bool(self.incomplete[cls])

    def negative_for(self, cls: int) -> bool:
        """True when the image is known to hold no object of ``cls`` (exhaustively labelled for it; none here)."""
        return self.exhaustive(cls) and not self.has(cls)


@dataclass
class LoadReport:
    """What a loader kept, dropped and skipped (and why)."""
    folder: str
    n_images: int = 0
    n_negatives: int = 0             # images with no target box (kept as negatives)
    n_without_label_file: int = 0    # counted among the negatives
    n_skipped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (file, reason), every skip
    n_dropped_boxes: int = 0         # boxes of known non-target classes (e.g. COCO "chair")
    unknown_names: list[str] = field(default_factory=list)         # class names camlab cannot place (boxes dropped)
    n_unknown_boxes: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})

    def as_dict(self) -> dict:
        return {"folder": self.folder, "n_images": self.n_images, "n_negatives": self.n_negatives,
                "n_without_label_file": self.n_without_label_file, "n_skipped": self.n_skipped,
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
                "n_dropped_boxes": self.n_dropped_boxes, "unknown_names": list(self.unknown_names),
                "n_unknown_boxes": self.n_unknown_boxes, "boxes_per_class": dict(self.boxes_per_class)}


def source_id(stem: str) -> str:
    """The source-photo id of an image stem: Roboflow export suffixes (``_jpg.rf.<hash>``) removed."""
    return _ROBOFLOW.sub("", stem)


def find_classes_file(folder: Path) -> Path | None:
    """``classes.txt`` in the folder or its parent (COCO128 keeps one for both splits)."""
    for cand in (folder / "classes.txt", folder.parent / "classes.txt"):
        if cand.is_file():
            return cand
    return None


def read_classes(path: Path) -> list[str]:
    names = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise InputFileError(f"{path}: classes.txt is empty; expected one class name per line")
    return names


def is_yolo_folder(path: Path) -> bool:
    return (path / "images").is_dir() and find_classes_file(path) is not None


def find_yolo_folders(root: Path, max_depth: int = 4) -> list[Path]:
    """``root`` itself when it is a YOLO folder, else the YOLO folders below it (depth-first, sorted, at most
    ``max_depth`` levels down; e.g. ``../shared/data/images`` -> every ``<set>/<split>``)."""
    root = Path(root)
    if is_yolo_folder(root):
        return [root]
    if max_depth <= 0 or not root.is_dir():
        return []
    out: list[Path] = []
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            out += find_yolo_folders(p, max_depth - 1)
    return out


def _image_readable_header(path: Path) -> str | None:
    """Cheap check of the file signature; None when fine, else the reason."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        return f"unreadable image ({exc.strerror})"
    if len(head) < 4:
        return "unreadable image (empty or truncated file)"
    sigs = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"RIFF")
    if not any(head.startswith(s) for s in sigs):
        return "unreadable image (not a JPEG/PNG/BMP/WebP file)"
    return None


def parse_label_file(path: Path, n_names: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,), boxes (N, 4) normalized xyxy) from a YOLO txt; raises ValueError with the line on bad content."""
    ids, boxes = [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"line {lineno}: expected 5 fields 'class cx cy w h', got {len(parts)}")
        try:
            cid_f = float(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise ValueError(f"line {lineno}: non-numeric value in {line.strip()!r}") from None
        if cid_f != int(cid_f) or not 0 <= int(cid_f) < n_names:
            raise ValueError(f"line {lineno}: class id {parts[0]} outside classes.txt (0..{n_names - 1})")
        vals = np.array([cx, cy, w, h])
        if not np.all(np.isfinite(vals)) or np.any(vals < -COORD_TOL) or np.any(vals > 1 + COORD_TOL):
            raise ValueError(f"line {lineno}: coordinates {parts[1:]} outside [0, 1]")
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if min(x0, y0) < -COORD_TOL or max(x1, y1) > 1 + COORD_TOL:
            raise ValueError(f"line {lineno}: box {parts[1:]} extends outside the image")
        if w <= 0 or h <= 0:
            raise ValueError(f"line {lineno}: empty box (w={w}, h={h})")
        ids.append(int(cid_f))
        boxes.append(np.clip([x0, y0, x1, y1], 0.0, 1.0))
    return (np.asarray(ids, np.int64).reshape(-1),
            np.asarray(boxes, np.float32).reshape(-1, 4))


def load_yolo_folder(folder: str | Path, *, strict: bool = False, dataset: str | None = None
                     ) -> tuple[list[Sample], LoadReport]:
    """Load one YOLO folder; boxes mapped to person/pet/vehicle by class name (case-insensitive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder; expected a YOLO folder with images/, labels/, classes.txt")
    cfile = find_classes_file(folder)
    if cfile is None:
        raise InputFileError(f"{folder}: no classes.txt (looked in the folder and its parent)")
    if not (folder / "images").is_dir():
        raise InputFileError(f"{folder}: no images/ sub-folder")
    names = read_classes(cfile)
    cmap = class_map_for(names)
    dataset = dataset or f"{folder.parent.name}/{folder.name}"
    report = LoadReport(folder=str(folder))
    unknown = sorted({n for n in names if not is_known_name(n)})
    report.unknown_names = unknown
    unknown_ids = {i for i, n in enumerate(names) if n in unknown}
    if strict and unknown:
        raise InputFileError(f"{cfile}: unknown class name(s) {unknown}; expected names mapping to "
                             f"person/pet/vehicle or COCO names")
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise InputFileError(f"{folder / 'images'}: empty folder; expected {'/'.join(IMAGE_EXTS)} images")
    labelled, incomplete = declared_sets(folder)
    aspect = display_aspect(folder)
    samples: list[Sample] = []
    for img in images:
        bad = _image_readable_header(img)
        if bad:
            if strict:
                raise InputFileError(f"{img}: {bad}")
            report.n_skipped += 1
            report.skipped.append((str(img), bad))
            continue
        lab = folder / "labels" / (img.stem + ".txt")
        ids = np.zeros(0, np.int64)
        boxes = np.zeros((0, 4), np.float32)
        if lab.is_file():
            try:
                ids, boxes = parse_label_file(lab, len(names))
            except ValueError as exc:
                if strict:
                    raise InputFileError(f"{lab}: {exc}") from None
                report.n_skipped += 1
                report.skipped.append((str(lab), str(exc)))
                continue
        else:
            report.n_without_label_file += 1
        mapped = np.array([-1 if cmap[i] is None else cmap[i] for i in ids], np.int64)
        report.n_unknown_boxes += int(sum(1 for i in ids if i in unknown_ids))
        report.n_dropped_boxes += int(np.sum(mapped < 0)) - int(sum(1 for i in ids if i in unknown_ids))
        keep = mapped >= 0
        s = Sample(image=img, boxes=boxes[keep], labels=mapped[keep], source=source_id(img.stem), dataset=dataset,
                   labelled=labelled, incomplete=incomplete, display_aspect=aspect)
        for c in s.labels:
            report.boxes_per_class[CLASSES[c]] += 1
        report.n_images += 1
        report.n_negatives += int(len(s.labels) == 0)
        samples.append(s)
    if not samples:
        raise InputFileError(f"{folder}: no usable image ({report.n_skipped} skipped; first: "
                             f"{report.skipped[0][0]}: {report.skipped[0][1]})")
    return samples, report
