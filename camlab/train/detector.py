"""Training loop of the CamDet person / pet / vehicle detector: CPU, seeded, resumable, DDP-ready, MLflow-logged.

Runs unchanged as one process or under ``torchrun --nproc_per_node N`` (gloo; :mod:`camlab.train.ddp`), with a
DistributedSampler per rank and DDP gradient averaging (Li et al., VLDB 2020). Each epoch: camera-domain images
(:mod:`camlab.data.render`, cached sensor + ISP renderings), albumentations augmentation, letterbox into the
static input, FCOS/GFL loss (:mod:`camlab.train.detector_loss`), AdamW (Loshchilov & Hutter, ICLR 2019) with
linear warm-up and cosine decay; with ``optim.ema_epochs`` > 0 the weights evaluated, calibrated and saved to
``best.pt`` are the moving average of the live ones (Polyak averaging, :mod:`camlab.train.ema`). Rank 0 evaluates
on the validation split (:mod:`camlab.eval.detection`), writes ``last.pt``/``best.pt`` atomically
(:mod:`camlab.train.checkpoint`) and logs params, per-epoch losses and metrics, the checkpoint, PR curves and the
confusion matrix to MLflow.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camlab import settings
from camlab.data.augment import AugmentConfig
from camlab.data.render import RenderConfig
from camlab.errors import ConfigError, InputFileError
from camlab.models.detector import DetectorConfig

KIND = "detector"


@dataclass(frozen=True)
class DataConfig:
    manifest: str = "datasets/detector_split.json"   # built (seeded) from the shared data when missing
    train_dirs: list[str] = field(default_factory=list)   # instead of the manifest: YOLO folders for training
    val_dirs: list[str] = field(default_factory=list)     # ... and for validation
    max_train_images: int = 0     # 0 = all; else a seeded subset (demo budget)
    max_val_images: int = 0
    exclude_sources: list[str] = field(default_factory=list)   # leave-one-source-out: drop these sources entirely
    split_seed: int = 0
    val_fraction: float = 0.2


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    max_steps: int = 0            # stop after this many steps in total (0 = no limit; tests)
    grad_clip: float = 10.0
    backbone_lr_mult: float = 1.0  # learning-rate factor of a pretrained backbone (fine-tune gently)
    ema_epochs: float = 0.0       # evaluate, calibrate and ship the moving average of the weights over about this
    #                               many epochs (camlab.train.ema); 0 = the live weights

    def __post_init__(self) -> None:
        from camlab.train.ema import check_horizon

        check_horizon(self.ema_epochs, "ema_epochs")


@dataclass(frozen=True)
class CalibrateConfig:
    """Presence operating points, picked after training on the *training* split (validation stays unseen): the
    classes in ``fp_limited`` get the lowest score whose false-positive rate on the images without that class and
    on the empty-scene strips of every image (:func:`camlab.eval.detection.calibration_scores`; both only where the
    source labels the class) is <= ``target_fp_rate`` (a person alert must not fire on an empty scene); the others
    the score of highest presence accuracy (:func:`camlab.eval.detection.pick_thresholds`)."""
    enabled: bool = True
    target_fp_rate: float = 0.015
    fp_limited: tuple[str, ...] = ("person",)
    floor: float = 0.15
    max_images: int = 0           # 0 = the whole training split; else a seeded subset
    empty_scene_classes: tuple[str, ...] = ("person",)   # classes whose FP rate also counts empty-scene strips
    teacher_negatives: dict[str, float] = field(default_factory=dict)  # also count as negatives of a class the
    # images whose source leaves it unlabelled where the SSD teacher's best score for it is below this bound
    # (camlab.data.pseudo.add_pseudo_negatives), e.g. {person: 0.15}; {} = the sources' label sets only
    presence_gate: tuple[str, ...] = ()   # classes whose image-level gate is fitted before the thresholds
    # (camlab.train.presence_gate; () = no gate); L2 strength C and folds of its cross-fitting
    presence_gate_c: float = 0.03
    presence_gate_folds: int = 5


@dataclass(frozen=True)
class DetectorTrainConfig:
    name: str = "detector"
    experiment: str = "detector"
    seed: int = 0
    out_dir: str = "out/detector"
    resume: str | None = None     # a checkpoint path, "auto" (out_dir/last.pt when present) or None
    threads: int = 1              # torch threads per process (use torchrun ranks for more cores)
    workers: int = 1              # DataLoader worker processes (image decode + augmentation)
    eval_every: int = 1           # epochs between validation runs (the last epoch always evaluates)
    eval_hog: bool = False        # also run the HOG person anchor in the final evaluation
    log_mlflow: bool = True
    progress: bool = True
    pretrained: str = ""          # backbone init for model.backbone mobilenetv2[_pvb] (models/pretrained/SOURCE.md)
    freeze_blocks: int = 0        # pretrained backbone: stem + this many blocks stay fixed
    pseudo_label_score: float = 0.0   # > 0: SSD-teacher boxes of a source's unlabelled classes at this score become
                                      # extra positives (camlab.data.pseudo); 0 = off
    pseudo_label_class_scores: dict[str, float] = field(default_factory=dict)  # per-class teacher score overriding
                                      # pseudo_label_score, e.g. {person: 0.4} (camlab.data.pseudo)
    pseudo_negative_scores: dict[str, float] = field(default_factory=dict)  # teacher-verified negatives: an
                                      # unlabelled class becomes known where the teacher's best score for it is
                                      # below this, e.g. {person: 0.15} (camlab.data.pseudo.add_pseudo_negatives)
    pseudo_label_not_exhaustive: bool = False  # also fill unboxed instances of a not-exhaustive class (IoU < 0.3)
    incomplete_ignore_score: float = 0.4  # a not-exhaustively labelled class (datasets/label_sets.yaml) gets no
                                          # background loss where the model scores it >= this (detector_loss)
    quality_target_power: float = 1.0     # a positive cell's class target is IoU**this: 1 = quality focal loss,
                                          # < 1 leans the score towards presence (detector_loss)

    model: DetectorConfig = field(default_factory=DetectorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.quality_target_power) <= 1.0:
            raise ConfigError(f"quality_target_power: expected a number in [0, 1] (1 = IoU target, 0 = 1.0 target), "
                              f"got {self.quality_target_power!r}")
        from camlab.data.pseudo import class_score_thresholds

        class_score_thresholds(max(self.pseudo_label_score, 1e-6), self.pseudo_label_class_scores)  # one-line errors
        class_score_thresholds(1e-6, self.pseudo_negative_scores, field="pseudo_negative_scores")
        class_score_thresholds(1e-6, self.calibrate.teacher_negatives, field="calibrate.teacher_negatives")
        cal = self.calibrate
        unknown = [c for c in cal.presence_gate if c not in self.model.classes]
        if unknown:
            raise ConfigError(f"calibrate.presence_gate: unknown class(es) {unknown}; expected some of "
                              f"{list(self.model.classes)}")
        if cal.presence_gate and (not float(cal.presence_gate_c) > 0 or int(cal.presence_gate_folds) < 2):
            raise ConfigError(f"calibrate.presence_gate_c must be > 0 and presence_gate_folds >= 2, got "
                              f"{cal.presence_gate_c!r} and {cal.presence_gate_folds!r}")


@dataclass
class TrainResult:
    checkpoint: Path
    best_checkpoint: Path
    run_id: str | None
    metrics: dict
    history: list[dict]
    eval: dict | None
    counts: dict


CONFIG_DIR = Path(__file__).with_name("configs")


#: the recipe ``make models`` ships; benches, exports and the ISP tuner find its checkpoint via release_checkpoint()
RELEASE_RECIPE = "detector_full"


def release_checkpoint() -> Path:
    """Where the release recipe leaves its best checkpoint (``<out_dir>/best.pt``, relative to the project root)."""
    out = Path(load_train_config(RELEASE_RECIPE).out_dir)
    return (out if out.is_absolute() else settings.project_root() / out) / "best.pt"


def load_train_config(source: Any = None, overrides: dict | None = None) -> DetectorTrainConfig:
    """A YAML path, a built-in name (``detector_demo``, ``detector_full``), a mapping, or None (defaults)."""
    from camlab.config import load_config

    if isinstance(source, str) and not source.endswith((".yaml", ".yml")) and "/" not in source:
        builtin = CONFIG_DIR / f"{source}.yaml"
        if not builtin.is_file():
            names = sorted(p.stem for p in CONFIG_DIR.glob("detector_*.yaml"))
            raise ConfigError(f"unknown detector config {source!r}; built-in: {', '.join(names)}, or a YAML path")
        source = builtin
    return load_config(DetectorTrainConfig, source, overrides=overrides)


def _resolve(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else settings.project_root() / p


def detector_manifest_path(cfg: DetectorTrainConfig) -> Path:
    """The split manifest a config trains on, resolved against the project root."""
    return _resolve(cfg.data.manifest)


def _subset(samples: list, n: int, seed: int) -> list:
    if n <= 0 or n >= len(samples):
        return samples
    idx = np.sort(np.random.default_rng(seed).choice(len(samples), size=n, replace=False))
    return [samples[i] for i in idx]


def load_data(cfg: DetectorTrainConfig, *, is_main: bool = True) -> tuple[list, list, dict]:
    """(train samples, val samples, info with counts and load reports)."""
    from camlab.data.splits import count, load_split, write_split
    from camlab.data.yolo import load_yolo_folder

    d = cfg.data
    reports = []
    if d.train_dirs:
        train, val = [], []
        for p in d.train_dirs:
            s, r = load_yolo_folder(_resolve(p))
            train += s
            reports.append(r.as_dict())
        for p in d.val_dirs:
            s, r = load_yolo_folder(_resolve(p))
            val += s
            reports.append(r.as_dict())
        split_desc = {"train_dirs": list(d.train_dirs), "val_dirs": list(d.val_dirs)}
    else:
        mpath = _resolve(d.manifest)
        if not mpath.is_file():
            if not is_main:
                raise InputFileError(f"{mpath}: split manifest missing (rank 0 builds it; run once without DDP)")
            write_split(mpath, seed=d.split_seed, val_fraction=d.val_fraction)
        train, rep_t = load_split(mpath, "train")
        val, rep_v = load_split(mpath, "val")
        reports = [r.as_dict() for r in rep_t]
        split_desc = {"manifest": str(d.manifest)}
    if d.exclude_sources:
        from camlab.data.label_sets import source_name

        drop = set(d.exclude_sources)
        train = [s for s in train if source_name(s.dataset) not in drop]
        val = [s for s in val if source_name(s.dataset) not in drop]
        split_desc["exclude_sources"] = sorted(drop)
    train = _subset(train, d.max_train_images, cfg.seed)
    val = _subset(val, d.max_val_images, cfg.seed + 1)
    if not train:
        raise InputFileError("detector training: no training images (check data.manifest / data.train_dirs)")
    info = {"split": split_desc, "counts": {"train": count(train), "val": count(val)},
            "skipped": sum(r["n_skipped"] for r in reports), "reports": reports}
    return train, val, info


class DetectionDataset:
    """Torch-style dataset: (image tensor (3, H, W) in [0, 1], {"boxes": input px, "labels"}) with augmentation."""

    def __init__(self, samples: list, cfg: DetectorTrainConfig, *, train: bool, seed: int):
        from camlab.data.augment import build_augment

        self.samples = samples
        self.cfg = cfg
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.aug = build_augment(cfg.augment) if (train and cfg.augment.enabled) else None
        self.n_failed = 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _image(self, i: int, rng: np.random.Generator) -> np.ndarray:
        from camlab.data.render import rendered, sample_rgb, variant_params

        s = self.samples[i]
        r = self.cfg.render
        if self.train and r.enabled and rng.random() >= r.p_original:
            k = int(rng.integers(r.variants))
            return sample_rgb(s, rendered(s.image, variant_params(s.image, k, r, self.cfg.seed), r))
        return sample_rgb(s)

    def __getitem__(self, i: int):
        import torch

        from camlab.data.augment import augment, letterbox

        rng = np.random.default_rng([self.seed, self.epoch, i])
        s = self.samples[i]
        img = self._image(i, rng)
        boxes, labels = s.boxes, s.labels
        labelled = np.asarray(s.labelled, bool)
        incomplete = np.asarray(s.incomplete, bool)
        m = self.cfg.model
        a = self.cfg.augment
        mosaic_on = self.epoch < self.cfg.optim.epochs - a.mosaic_off_last
        if self.aug is not None and mosaic_on and rng.random() < a.mosaic_p:
            from camlab.data.augment import mosaic4

            others = [int(j) for j in rng.integers(len(self.samples), size=3)]
            img, boxes, labels = mosaic4([img] + [self._image(j, rng) for j in others],
                                         [boxes] + [self.samples[j].boxes for j in others],
                                         [labels] + [self.samples[j].labels for j in others],
                                         m.input_width, m.input_height, rng, a.min_visibility)
            # a mosaic is a negative for a class only where every tile's source labels it (federated labels)
            for j in others:
                labelled &= np.asarray(self.samples[j].labelled, bool)
                incomplete |= np.asarray(self.samples[j].incomplete, bool)
        if self.aug is not None:
            img, boxes, labels = augment(self.aug, img, boxes, labels, self.cfg.augment, rng)
        lb_img, lb_boxes, _ = letterbox(img, boxes, m.input_width, m.input_height)
        x = torch.from_numpy(np.ascontiguousarray(lb_img.transpose(2, 0, 1))).float().div_(255.0)
        keep = ((lb_boxes[:, 2] - lb_boxes[:, 0]) >= 2) & ((lb_boxes[:, 3] - lb_boxes[:, 1]) >= 2)
        return x, {"boxes": torch.from_numpy(lb_boxes[keep]), "labels": torch.from_numpy(labels[keep]),
                   "labelled": torch.from_numpy(labelled), "incomplete": torch.from_numpy(incomplete & labelled)}


def collate(batch):
    import torch

    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def _worker_init(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


class EpochShuffle:
    """The sample order of epoch ``e`` as a pure function of (seed, e): the ``e``-th pass of a ``RandomSampler`` whose
    generator was seeded once with ``seed`` (the order an uninterrupted run logging to a file always had), replayed from
    the seed on each ``iter``. A ``RandomSampler`` shares one generator across passes, so a run resumed from
    ``last.pt`` restarted its shuffles, and any extra iterator (tqdm.asyncio opens one eagerly, and a DataLoader
    with workers draws its prefetch at once) moved every later epoch: the order then depended on how progress was
    shown."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch
        from torch.utils.data import RandomSampler

        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch):
            for _ in RandomSampler(range(self.n), generator=g):
                pass
        return iter(list(RandomSampler(range(self.n), generator=g)))


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _architecture(model_config: dict) -> dict:
    """A model_config without its decode-only operating points (calibrated thresholds may differ on resume)."""
    return {k: v for k, v in model_config.items() if k != "class_score_thresholds"}


def calibration_samples(train_s: list, cfg: DetectorTrainConfig, *, show_progress: bool = False) -> list:
    """The training samples the operating points are picked on: the sources' label sets, plus, with
    ``calibrate.teacher_negatives``, the teacher-verified negatives of the classes a source leaves unlabelled."""
    if not cfg.calibrate.teacher_negatives:
        return train_s
    from camlab.data.pseudo import add_pseudo_negatives
    from camlab.models.pretrained import SsdTeacher

    return add_pseudo_negatives(train_s, SsdTeacher(), cfg.calibrate.teacher_negatives, show_progress=show_progress)[0]


def only_calibration_differs(a: DetectorTrainConfig, b: DetectorTrainConfig) -> bool:
    """True when two recipes train the same weights (everything but name, output, logging and ``calibrate`` equal)."""
    import dataclasses

    skip = {"name", "experiment", "out_dir", "resume", "log_mlflow", "progress", "calibrate"}
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return all(da[k] == db[k] for k in da if k not in skip)


def recalibrate(source: Path, dest: Path, cfg: DetectorTrainConfig, trained_by: DetectorTrainConfig) -> dict:
    """Copy the checkpoint ``source`` (trained by the recipe ``trained_by``) to ``dest`` and pick its operating
    points as a training run of ``cfg`` would: the same weights when only ``calibrate`` differs between the two
    recipes (training is bit-reproducible on one machine), so a calibration trial needs no retraining. Refused
    otherwise."""
    import shutil

    if not only_calibration_differs(cfg, trained_by):
        raise ConfigError(f"recalibrate: {cfg.name} and {trained_by.name} differ in more than calibrate; train "
                          f"{cfg.name} instead")
    if not Path(source).is_file():
        raise InputFileError(f"recalibrate: {source} not found; train {trained_by.name} first (its weights are "
                             f"what {cfg.name} re-calibrates)")
    train_s, _, _ = load_data(cfg, is_main=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return calibrate_checkpoint(dest, calibration_samples(train_s, cfg), cfg,
                                extra={"recalibrated_from": str(source), "recipe": cfg.name,
                                       "weights_trained_by": trained_by.name})


def calibrate_checkpoint(path: Path, samples: list, cfg: DetectorTrainConfig, *, show_progress: bool = False,
                         extra: dict | None = None) -> dict:
    """Pick per-class presence thresholds on ``samples`` (training split) and write them into the checkpoint's
    model_config (atomically); returns the calibration report (with ``extra``, e.g. where re-calibrated weights
    came from)."""
    import dataclasses

    from camlab.eval.detection import calibration_scores, pick_thresholds
    from camlab.models.detector import load_checkpoint as load_model
    from camlab.train.checkpoint import load_checkpoint, save_checkpoint

    c = cfg.calibrate
    samples = _subset(samples, c.max_images, cfg.seed + 2)
    model, _ = load_model(path)
    gate_report = None
    if c.presence_gate:
        from camlab.train.presence_gate import cross_fitted_scores, with_gate

        model = with_gate(model)
        parts, gate_report = cross_fitted_scores(
            model, samples, tuple(c.presence_gate), c.presence_gate_c, c.presence_gate_folds, cfg.seed + 3,
            lambda m, part: calibration_scores(m, part, empty_scene_classes=c.empty_scene_classes),
            show_progress=show_progress)
        present, best, known = (np.concatenate([p[k] for p in parts]) for k in range(3))
        n_strips = sum(p[3] for p in parts)
        negatives = parts[0][4]
        if any(p[4] != negatives for p in parts):
            negatives = {"folds": [p[4] for p in parts]}
    else:
        present, best, known, n_strips, negatives = calibration_scores(
            model, samples, empty_scene_classes=c.empty_scene_classes, show_progress=show_progress)
    thresholds, report = pick_thresholds(present, best, c.target_fp_rate, floor=c.floor, fp_limited=c.fp_limited,
                                         known=known)
    ck = load_checkpoint(path, expect_kind=KIND)
    mc = dataclasses.replace(model.config, class_score_thresholds=tuple(thresholds)).to_dict()
    state = model.state_dict() if gate_report is not None else ck["state_dict"]
    meta = dict(ck["meta"])
    meta["calibration"] = {"split": "train", "n_images": int(len(samples)), "n_empty_scene_strips": n_strips,
                           "empty_scene_classes": list(c.empty_scene_classes),
                           "target_fp_rate": c.target_fp_rate,
                           "fp_limited": list(c.fp_limited), "negatives": negatives, "classes": report,
                           "teacher_negatives": dict(c.teacher_negatives),
                           **({"presence_gate": gate_report} if gate_report is not None else {}), **(extra or {})}
    save_checkpoint(path, kind=KIND, model_config=mc, state_dict=state, meta=meta,
                    optimizer=ck.get("optimizer"), epoch=int(ck["epoch"]), step=int(ck.get("step", 0)))
    return meta["calibration"]


def _check_pretrained(cfg: DetectorTrainConfig) -> Path | None:
    """The hash-checked pretrained file when the config asks for one (None otherwise). ``mobilenetv2`` reads the
    MediaPipe TFLite, ``mobilenetv2_pvb`` Intel's OpenVINO IR (``.xml`` beside its ``.bin``)."""
    from camlab.models.detector import MOBILENETV2_BACKBONES

    if cfg.freeze_blocks and cfg.model.backbone not in MOBILENETV2_BACKBONES:
        raise ConfigError(f"freeze_blocks needs a pretrained backbone ({', '.join(MOBILENETV2_BACKBONES)})")
    if not cfg.pretrained:
        return None
    if cfg.model.backbone not in MOBILENETV2_BACKBONES:
        raise ConfigError(f"pretrained: {cfg.pretrained!r} needs model.backbone in {list(MOBILENETV2_BACKBONES)} "
                          f"(got {cfg.model.backbone!r})")
    want = ".xml" if cfg.model.backbone == "mobilenetv2_pvb" else ".tflite"
    if Path(cfg.pretrained).suffix != want:
        raise ConfigError(f"pretrained: {cfg.pretrained!r} for model.backbone {cfg.model.backbone!r} must be a "
                          f"{want} file")
    if want == ".xml":
        from camlab.models.pretrained_ir import check_ir_files

        return check_ir_files(cfg.pretrained)[0]
    from camlab.models.pretrained import check_pretrained_file

    return check_pretrained_file(cfg.pretrained)


def _param_groups(model, optim: OptimConfig) -> list[dict]:
    """Trainable parameters; a pretrained backbone's at ``backbone_lr_mult`` times the learning rate."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    groups = [{"params": rest, "lr_mult": 1.0}]
    if backbone:
        groups.append({"params": backbone, "lr_mult": optim.backbone_lr_mult})
    return groups


def _find_resume(cfg: DetectorTrainConfig, out_dir: Path) -> Path | None:
    if cfg.resume is None:
        return None
    if cfg.resume == "auto":
        p = out_dir / "last.pt"
        return p if p.is_file() else None
    p = _resolve(cfg.resume)
    if not p.is_file():
        raise InputFileError(f"{p}: resume checkpoint not found")
    return p


def train(config: DetectorTrainConfig | dict | str | Path | None = None, *, overrides: dict | None = None
          ) -> TrainResult:
    """Train (or resume) CamDet per ``config`` (see :func:`load_train_config`); returns the checkpoint paths,
    the MLflow run id and the metrics."""
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler

    from camlab import tracking
    from camlab.config import to_dict
    from camlab.data.render import prerender
    from camlab.models.detector import CamDet, count_macs, count_params
    from camlab.train import ddp
    from camlab.train.checkpoint import load_checkpoint, save_checkpoint
    from camlab.train.common import flatten_params, progress, seed_everything, set_threads
    from camlab.train.detector_loss import detection_loss

    cfg = config if isinstance(config, DetectorTrainConfig) else load_train_config(config, overrides)
    info = ddp.setup()
    set_threads(cfg.threads)
    seed_everything(cfg.seed, info.rank)
    out_dir = _resolve(cfg.out_dir)
    show = cfg.progress and info.is_main

    pretrained_file = _check_pretrained(cfg)      # before any work: a wrong file is a one-line error
    train_s, val_s, data_info = load_data(cfg, is_main=info.is_main)
    if cfg.render.enabled:
        rep = prerender([s.image for s in train_s], cfg.render, cfg.seed, rank=info.rank,
                        world_size=info.world_size, show_progress=show)
        if rep["failed"]:
            bad = {f for f, _ in rep["failures"]}
            train_s = [s for s in train_s if str(s.image) not in bad]
        data_info["render"] = {k: v for k, v in rep.items() if k != "failures"}
        data_info["render"]["failures"] = rep["failures"][:20]
        ddp.barrier(info)

    fit_s = train_s     # what the model fits; calibration below reads the source labels only
    if cfg.pseudo_label_score > 0:
        from camlab.data.pseudo import add_pseudo_labels
        from camlab.models.pretrained import SsdTeacher

        fit_s, data_info["pseudo_labels"] = add_pseudo_labels(train_s, SsdTeacher(), cfg.pseudo_label_score,
                                                              class_scores=cfg.pseudo_label_class_scores,
                                                              fill_not_exhaustive=cfg.pseudo_label_not_exhaustive,
                                                              show_progress=show)
    if cfg.pseudo_negative_scores:
        from camlab.data.pseudo import add_pseudo_negatives
        from camlab.models.pretrained import SsdTeacher

        fit_s, data_info["pseudo_negatives"] = add_pseudo_negatives(fit_s, SsdTeacher(), cfg.pseudo_negative_scores,
                                                                    show_progress=show)
    model = CamDet(cfg.model)
    n_params, n_macs = count_params(model), count_macs(model)
    if pretrained_file is not None and cfg.model.backbone == "mobilenetv2_pvb":
        from camlab.models.pretrained_ir import load_ir_trunk_weights

        data_info["pretrained"] = load_ir_trunk_weights(model.backbone, pretrained_file)
    elif pretrained_file is not None:
        from camlab.models.pretrained import load_mobilenetv2_weights

        data_info["pretrained"] = load_mobilenetv2_weights(model.backbone, pretrained_file)
    if cfg.freeze_blocks:
        model.backbone.freeze(cfg.freeze_blocks)
    opt = torch.optim.AdamW(_param_groups(model, cfg.optim), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    start_epoch, step, history, best_score = 0, 0, [], -1.0
    run_id = None
    resume = _find_resume(cfg, out_dir)
    if resume is not None:
        ck = load_checkpoint(resume, expect_kind=KIND)
        if _architecture(ck["model_config"]) != _architecture(cfg.model.to_dict()):
            raise ConfigError(f"{resume}: checkpoint model_config differs from the config's model block")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step = int(ck["epoch"]) + 1, int(ck.get("step", 0))
        history = list(ck["meta"].get("history", []))
        best_score = float(ck["meta"].get("best_score", -1.0))
        run_id = ck["meta"].get("mlflow_run_id")
    net = DistributedDataParallel(model) if info.enabled else model

    ds = DetectionDataset(fit_s, cfg, train=True, seed=cfg.seed + 7919 * info.rank)
    sampler = (DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
               if info.enabled else EpochShuffle(len(ds), cfg.seed))
    loader = DataLoader(ds, batch_size=cfg.optim.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=cfg.workers, worker_init_fn=_worker_init if cfg.workers else None,
                        drop_last=len(ds) // info.world_size > cfg.optim.batch_size)
    steps_per_epoch = max(1, len(loader))
    total_steps = steps_per_epoch * cfg.optim.epochs
    if cfg.optim.max_steps:
        total_steps = min(total_steps, cfg.optim.max_steps)
    warmup = max(1, int(cfg.optim.warmup_epochs * steps_per_epoch))
    average = None
    if cfg.optim.ema_epochs > 0:
        from camlab.train.ema import WeightAverage, decay_for_horizon

        average = WeightAverage(model, decay_for_horizon(cfg.optim.ema_epochs, steps_per_epoch))
        if resume is not None:
            if "average" not in ck:
                raise ConfigError(f"{resume}: optim.ema_epochs > 0 but the checkpoint holds no weight average "
                                  f"(it was trained without one); start a fresh run")
            average.load_state_dict(ck["average"], ck["average_updates"])
    shipped = average.model if average is not None else model   # what is evaluated, calibrated and saved

    mlflow_ctx = None
    if info.is_main and cfg.log_mlflow:
        import mlflow

        tracking.configure()
        if run_id:
            # a resumed run may now sit under a parent (make models) that did not exist when it started
            mlflow_ctx = mlflow.start_run(run_id=run_id, experiment_id=tracking.experiment_id(cfg.experiment),
                                          nested=mlflow.active_run() is not None)
        else:
            mlflow_ctx = tracking.run(cfg.experiment, run_name=cfg.name, nested=mlflow.active_run() is not None,
                                      tags={"kind": KIND, "git_commit": tracking.git_commit()})
        active = mlflow_ctx.__enter__()
        run_id = active.info.run_id
        if resume is None:
            params = flatten_params(to_dict(cfg))
            params.update({"model.params": str(n_params), "model.macs": str(n_macs), "world_size":
                           str(info.world_size), "train_images": str(len(train_s)), "val_images": str(len(val_s))})
            mlflow.log_params(params)
            mlflow.log_dict(data_info, "data_info.json")
    run_id = ddp.broadcast_object(run_id, info)

    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    final_eval = None
    t_start = time.time()
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            if cfg.optim.max_steps and step >= total_steps:
                break
            net.train()
            ds.set_epoch(epoch)
            sampler.set_epoch(epoch)
            sums: dict[str, float] = {}
            n_batches = 0
            t_ep = time.time()
            bar = progress(loader, desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", enabled=show)
            for images, targets in bar:
                lr = _lr_at(step, total_steps, warmup, cfg.optim.lr)
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_mult", 1.0)
                outputs = net(images)
                loss, parts = detection_loss(outputs, targets, cfg.model.strides,
                                             ignore_score=cfg.incomplete_ignore_score,
                                             quality_power=cfg.quality_target_power)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                opt.step()
                if average is not None:
                    average.update(model)
                step += 1
                n_batches += 1
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                if show:
                    bar.set_postfix(loss=f"{parts['loss']:.3f}", lr=f"{lr:.1e}")
                if cfg.optim.max_steps and step >= total_steps:
                    break
            keys = sorted(sums)
            means = ddp.all_reduce_mean([sums[k] / max(1, n_batches) for k in keys], info)
            row = {"epoch": epoch + 1, "step": step, "lr": lr, "epoch_s": time.time() - t_ep,
                   **{f"train_{k}": v for k, v in zip(keys, means)}}
            last_epoch = epoch + 1 >= cfg.optim.epochs or (cfg.optim.max_steps and step >= total_steps)
            do_eval = info.is_main and val_s and ((epoch + 1) % max(1, cfg.eval_every) == 0 or last_epoch)
            if do_eval:
                from camlab.eval.detection import evaluate

                shipped.eval()
                final_eval = evaluate(shipped, val_s, details=True,
                                      hog=bool(cfg.eval_hog and last_epoch and not cfg.calibrate.enabled),
                                      show_progress=show)
                for c, m in final_eval["classes"].items():
                    for k in ("ap50", "ap50_95", "presence_recall", "presence_precision", "fp_rate"):
                        if m[k] is not None:
                            row[f"val_{c}_{k}"] = m[k]
                row["val_map50"] = final_eval["map50"]
            history.append(row)
            if info.is_main:
                score = row.get("val_map50", -row["train_loss"])
                # with a weight average, best.pt is the only file holding it: never leave it unwritten
                is_best = score > best_score or (average is not None and not best_path.is_file())
                best_score = max(best_score, score)
                meta = {"history": history, "best_score": best_score, "mlflow_run_id": run_id,
                        "git_commit": tracking.git_commit(), "data": data_info["split"],
                        "counts": data_info["counts"], "params": n_params, "macs": n_macs,
                        "metrics": {k: v for k, v in row.items() if k.startswith("val_")}}
                averaged = ({} if average is None else
                            {"average": average.state_dict(), "average_updates": average.updates})
                # last.pt resumes training: the live weights, with the average beside them
                save_checkpoint(last_path, kind=KIND, model_config=cfg.model.to_dict(),
                                state_dict=model.state_dict(), meta=meta, optimizer=opt.state_dict(),
                                epoch=epoch, step=step, **averaged)
                if is_best:
                    save_checkpoint(best_path, kind=KIND, model_config=cfg.model.to_dict(),
                                    state_dict=shipped.state_dict(), meta=meta, epoch=epoch, step=step)
                if cfg.log_mlflow:
                    import mlflow
                    mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch + 1)
            ddp.barrier(info)
        ckpt_out = best_path if best_path.is_file() else last_path
        if info.is_main and cfg.calibrate.enabled and ckpt_out.is_file() and val_s is not None:
            calib = calibrate_checkpoint(ckpt_out, calibration_samples(train_s, cfg, show_progress=show), cfg,
                                         show_progress=show)
            data_info["calibration"] = calib
            if val_s:
                from camlab.eval.detection import evaluate

                final_eval = evaluate(str(ckpt_out), val_s, details=True, hog=bool(cfg.eval_hog),
                                      show_progress=show)
            if cfg.log_mlflow:
                import mlflow
                mlflow.log_dict(calib, "calibration.json")
                mlflow.log_metrics({f"threshold_{k}": v["threshold"] for k, v in calib["classes"].items()})
        if info.is_main and cfg.log_mlflow:
            _log_final(cfg, history, final_eval, ckpt_out, time.time() - t_start)
    finally:
        if mlflow_ctx is not None:
            import sys
            mlflow_ctx.__exit__(*sys.exc_info())
        ddp.barrier(info)
        if info.enabled:
            ddp.cleanup()
    metrics = dict(history[-1]) if history else {}
    metrics["params"], metrics["macs"] = n_params, n_macs
    metrics["train_s"] = time.time() - t_start
    return TrainResult(checkpoint=best_path if best_path.is_file() else last_path, best_checkpoint=best_path,
                       run_id=run_id, metrics=metrics, history=history,
                       eval=_public_eval(final_eval), counts=data_info["counts"])


def _public_eval(ev: dict | None) -> dict | None:
    if ev is None:
        return None
    return {k: v for k, v in ev.items() if k != "details"}


def _log_final(cfg: DetectorTrainConfig, history: list[dict], ev: dict | None, ckpt: Path, seconds: float) -> None:
    import mlflow

    from camlab.train.common import log_figure, plot_confusion, plot_losses, plot_pr_curves

    mlflow.log_metric("train_seconds", seconds)
    if ckpt.is_file():
        mlflow.log_artifact(str(ckpt), artifact_path="checkpoint")
    if history:
        log_figure(plot_losses(history, ["train_loss", "train_loss_cls", "train_loss_box"]), "plots/losses.png")
    if ev is not None:
        mlflow.log_dict(_public_eval(ev), "eval/val_metrics.json")
        det = ev.get("details", {})
        if det.get("pr_curves"):
            curves = {k: (np.asarray(v["recall"]), np.asarray(v["precision"])) for k, v in det["pr_curves"].items()}
            log_figure(plot_pr_curves(curves), "plots/pr_curves.png")
        if det.get("confusion") is not None:
            log_figure(plot_confusion(np.asarray(det["confusion"]["matrix"]), det["confusion"]["labels"],
                                      "Confusion (IoU 0.5, score >= threshold)"), "plots/confusion_matrix.png")
