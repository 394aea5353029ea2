"""The ISP tuning study: Optuna samplers over the tuning file, trials in an RDB store shared by worker processes.

Optuna (Akiba, Sano, Yanase, Ohta, Koyama, KDD 2019) does the search and the bookkeeping: TPE (default), CMA-ES
(Hansen's evolution strategy via the ``cmaes`` package; categorical fields fall back to independent sampling) or
NSGA-II / multi-objective TPE when the fast path's CPU cost is a second objective. Trials live in an RDB store
(``sqlite:///tune.db`` by default, a 30 s SQLite lock timeout; ``postgresql://...`` for many machines): every worker
process opens the same study with ``load_if_exists`` and calls ``study.optimize`` until the study holds ``trials``
trials (:class:`optuna.study.MaxTrialsCallback`), so workers on other machines join by running the same command.
Nothing here searches or schedules on its own. The loop of black-box ISP tuning against image-quality and
downstream losses follows Tseng et al., SIGGRAPH 2019 and Mosleh et al., CVPR 2020.

Local refinement (``refine_trials``): TPE over a 20-odd-dimensional space finds the right discrete choices but
rarely moves several continuous knobs together near its best point (a 300-trial study kept its warm start's
strengths, thresholds and Malvar gains as they were). After the trials, the best feasible trial's discrete choices
are fixed (:class:`optuna.samplers.PartialFixedSampler`; so is the DPC margin, whose constraint CMA-ES cannot see,
:data:`REFINE_HELD`) and CMA-ES (Hansen & Ostermeier, "Completely derandomized
self-adaptation in evolution strategies", Evol. Comput. 9(2), 2001; Optuna's :class:`~optuna.samplers.CmaEsSampler`)
starts at its continuous parameters with step ``refine_sigma`` of each range, for ``refine_trials`` more trials in
the same study, the same workers and constraints: the two-stage global-then-local schedule of black-box tuning.

After the trials: the chosen trial (untimed: the best; with a cost objective or a cost constraint: the best quality
(on the Pareto front when cost is an objective) whose cost, re-timed against the shipped tuning in one process,
stays within ``cost_margin``) is written as a
new tuning YAML (never over a shipped one) that :func:`camlab.isp.pipeline.load_tuning` loads; shipped and tuned are
measured on the tuning images and on held-out images the search never saw; MLflow gets the study's best trials.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from camlab.errors import CamlabError, ConfigError, InputFileError

log = logging.getLogger(__name__)

# detection: the release detector's person AP50 on night renders; detection_recall: its person presence recall at
# <= 2 % false positives on the same renders, the threshold read per tuning (objectives.recall_at_fp)
Objective = Literal["psnr", "deltaE", "detection", "detection_recall"]
DEFAULT_OUT = "camlab/isp/tuning/sc3336_night_tuned.yaml"
DEFECT_GUARD_FRAMES = 2  # frames of each defect-guard clip (fixed camera: 3D-DNR runs, a fixed defect stays)
MAXIMIZE = {"psnr": True, "deltaE": False, "detection": True, "detection_recall": True}
METRIC = {"psnr": "psnr_db", "deltaE": "delta_e_mean", "detection": "person_ap50",
          "detection_recall": "person_recall_at_fp"}


class StorageError(CamlabError):
    """The study's RDB storage URL cannot be opened."""


@dataclass(frozen=True)
class TuneConfig:
    """A tuning study (``camlab tune isp``; every field has a CLI flag or comes from ``--config FILE``)."""

    objective: Objective = "psnr"
    trials: int = 40                     # the study stops when it holds this many trials (all workers together)
    storage: str = "sqlite:///tune.db"
    study_name: str | None = None        # default isp-<objective>-iso<iso>
    workers: int = 1                     # local worker processes
    iso: float = 3200.0
    base: str = "sc3336_day"             # tuning the search starts from and is compared with ("shipped")
    sampler: Literal["tpe", "cmaes", "nsga2", "numbered"] = "tpe"   # numbered: the same N draws for any workers
    multi_objective: bool = False        # second objective: fast-path CPU per 1280x720 frame / the base's (minimised)
    # one objective with that CPU ratio as a constraint (<= 1 + cost_margin): multi-objective TPE spreads its trials
    # along the whole Pareto front, the cheap end included (a 150-trial study drew the bilinear demosaic 119 times),
    # while a camera team wants the best quality the cost limit allows
    cost_constraint: bool = False
    cost_margin: float = 0.10            # the pick's cost within +10 % of the shipped tuning's
    # after ``trials``: this many CMA-ES trials around the best feasible trial (see the module docstring); 0 = none
    refine_trials: int = 0
    refine_sigma: float = 0.08           # CMA-ES's initial step, as a share of each parameter's range
    space: str | None = None             # search-space YAML (default camlab/isp/tune/default_space.yaml)
    n_tune_images: int = 12              # quality images the search sees
    n_heldout_images: int = 24           # quality images it never sees (the held-out check)
    max_side: int = 256                  # quality images are resized to this long side
    frames: int = 4                      # frames per scene (fixed camera, 3D-DNR state kept)
    motion_px: int = 4                   # the scene's central box moves this far per frame
    defect_ppm: float = 300.0            # defective photosites per million in every quality scene's sensor
    # a pick may leave this share more defective photosites visible than the base (and 1 more at least, for ties);
    # 0.10 let a study trade 14 % more visible hot pixels on the tuning images for PSNR, and 39 % more on the
    # held-out ones (an isp_tune run at 2026-12-06 19:01 UTC, its JSON not kept): a camera team would not ship that
    defect_margin: float = 0.0
    # the guard counts visible defects on scenes of its own: the tuning images as 2-frame clips with this many
    # defective photosites per million (0 = on the quality scenes). Their 190 sites at 300 ppm could not resolve a
    # looser DPC margin: the 11:17 pick of 2026-12-07 left 21 visible there as the shipped tuning did, and 49 of 380
    # against 41 on the held-out scenes; at 3000 ppm the tuning images showed 275 against 239
    defect_guard_ppm: float = 3000.0
    n_detection_images: int = 12         # detection objective: images the search sees
    n_detection_heldout: int = 0         # held-out detection images (any objective; 0 = skip unless detection)
    # where the detection search's images come from: "val" (the validation interleave from detection_offset; the
    # held-out images are the ones after them) or "train" (the train side's interleave from detection_offset, ~300
    # images where the validation side has 57; the held-out images are then the validation interleave from its
    # start, images neither the search nor the detector's training saw)
    detection_side: Literal["val", "train"] = "val"
    detection_offset: int = 0
    # noise draws per detection image (each scored as an image): the search's, and the held-out check's
    detection_renders: int = 1
    detection_heldout_renders: int = 1
    detector: str | None = None          # bundle dir or checkpoint (default: newest release bundle)
    seed: int = 0
    warm_variants: bool = True           # also seed the study with each one-knob discrete change of the base
    # tuning files whose point in the search space is measured as a trial before any sampled one (a previous tuned
    # file, say): TPE starts from the best point known instead of finding it again, a run-to-run spread of ~0.15 dB
    # on the held-out images at 150-300 trials (2026-12-07); the pick is still chosen on the tuning images only
    warm_start: tuple[str, ...] = ()
    out: str = DEFAULT_OUT
    mlflow: bool = True
    mlflow_top_k: int = 5
    worker_only: bool = False            # run trials only (extra machines); no YAML, held-out check or MLflow
    images_root: str | None = None       # quality images folder (default $CAMLAB_DATA/images)

    @property
    def detection_objective(self) -> bool:
        """The search scores the release detector on night renders."""
        return self.objective in ("detection", "detection_recall")

    @property
    def timed(self) -> bool:
        """Every trial times the fast path (a cost objective or a cost constraint)."""
        return self.multi_objective or self.cost_constraint

    def __post_init__(self):
        for name in ("trials", "workers", "n_tune_images", "n_heldout_images", "frames", "n_detection_images",
                     "detection_renders", "detection_heldout_renders"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 100 <= self.iso <= 102400:
            raise ValueError(f"iso must be in 100..102400, got {self.iso}")
        if not 32 <= self.max_side <= 4096:
            raise ValueError(f"max_side must be in 32..4096, got {self.max_side}")
        if not 0.0 <= self.defect_margin <= 1.0:
            raise ValueError(f"defect_margin must be in 0..1, got {self.defect_margin}")
        if not 0.0 <= self.defect_ppm <= 10_000.0:
            raise ValueError(f"defect_ppm must be in 0..10000, got {self.defect_ppm}")
        if not 0.0 <= self.defect_guard_ppm <= 10_000.0:
            raise ValueError(f"defect_guard_ppm must be in 0..10000, got {self.defect_guard_ppm}")
        if self.refine_trials < 0 or not 0.0 < self.refine_sigma <= 1.0:
            raise ValueError(f"refine_trials must be >= 0 and refine_sigma in (0, 1], got {self.refine_trials}, "
                             f"{self.refine_sigma}")
        if self.refine_trials and self.multi_objective:
            raise ValueError("refine_trials needs a single objective (CMA-ES); use --cost-constraint rather than "
                             "--multi-objective")
        if self.motion_px < 0 or self.cost_margin < 0 or self.n_detection_heldout < 0 or self.detection_offset < 0:
            raise ValueError("motion_px, cost_margin, n_detection_heldout and detection_offset must be >= 0")
        if self.detection_side not in ("val", "train"):
            raise ValueError(f"detection_side must be 'val' or 'train', got {self.detection_side!r}")

    def detection_seed(self, heldout: bool) -> int:
        """The render-noise seed of the search's detection images, or of the held-out ones."""
        return self.seed + (7 if heldout else 0)

    def detection_images(self, heldout: bool) -> tuple[str, int, int]:
        """(split side, offset in its person-labelled interleave, count) of the search's detection images, or of
        the held-out ones: after the search's on the validation side, or the validation side's first ones when the
        search reads the train side."""
        if not heldout:
            return self.detection_side, self.detection_offset, self.n_detection_images
        n = self.n_detection_heldout or self.n_detection_images
        if self.detection_side == "train":
            return "val", 0, n
        return "val", self.detection_offset + self.n_detection_images, n

    @property
    def name(self) -> str:
        return self.study_name or f"isp-{self.objective}-iso{int(self.iso)}"


def load_tune_config(source=None, **overrides) -> TuneConfig:
    """A TuneConfig from a YAML path/mapping/None with CLI ``overrides`` (None values ignored)."""
    from camlab.config import load_config

    try:
        return load_config(TuneConfig, source, overrides={k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(f"tune config: {exc}") from None


# ---------------------------------------------------------------------------------------------------- storage
def open_storage(url: str):
    """An Optuna RDBStorage for ``url`` (SQLite: 30 s lock timeout); StorageError in one line when unreachable."""
    import optuna

    if "://" not in url:
        raise StorageError(f"storage {url!r}: expected an RDB URL such as sqlite:///tune.db or "
                           "postgresql://user:pass@host/db")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:") and not path.parent.resolve().is_dir():
            raise StorageError(f"storage {url}: folder {path.parent} does not exist")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}}
    else:
        kwargs = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "mysql")):
            kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=False)
        if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
            _sqlite_wal(storage)
        return storage
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors of every kind become one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"storage {url}: cannot open it ({type(exc).__name__}: {first})") from None


def _sqlite_wal(storage) -> None:
    """Switch the SQLite file to write-ahead logging (kept in the file). Workers then read while one writes, and a
    commit is one append + fsync of the log instead of a rollback journal's create, sync, delete; synchronous stays
    FULL, so a committed trial survives a power cut (https://sqlite.org/wal.html)."""
    with storage.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode=WAL").scalar()
    if str(mode).lower() != "wal":
        log.warning("storage: SQLite kept journal mode %s (WAL refused on this filesystem)", mode)


def make_sampler(cfg: TuneConfig, rank: int = 0, refine: dict | None = None):
    """The Optuna sampler of ``cfg`` (seeded per worker rank, so parallel workers do not repeat each other); with
    ``refine`` (:func:`refine_point`) the refinement stage's: CMA-ES from its ``x0``, its ``fixed`` choices held."""
    import optuna

    seed = cfg.seed + 1000 * rank
    if refine is not None:
        cma = optuna.samplers.CmaEsSampler(x0=refine["x0"], sigma0=cfg.refine_sigma, seed=seed + 7,
                                           warn_independent_sampling=False)
        return optuna.samplers.PartialFixedSampler(refine["fixed"], cma)
    if cfg.sampler == "numbered":
        return numbered_sampler(cfg.seed)
    if cfg.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if cfg.sampler == "cmaes":
        if cfg.multi_objective:
            raise ConfigError("--sampler cmaes is single-objective; use tpe or nsga2 with --multi-objective")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=8)


def numbered_sampler(seed: int):
    """Uniform random draws that depend only on (seed, trial number, parameter name), whichever worker asks: a study
    of N trials evaluates the same N tunings with one worker or many. The scaling benchmark needs that, or it would
    compare different work (each TPE worker draws its own trials, and they cost different times). Optuna's
    ``enqueue_trial`` would give a fixed list too, but two SQLite workers can pop the same waiting trial."""
    import zlib

    import optuna

    class NumberedRandomSampler(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, param_name, param_distribution):
            self._rng.rng.seed(zlib.crc32(f"{seed}:{trial.number}:{param_name}".encode()))
            return super().sample_independent(study, trial, param_name, param_distribution)

    return NumberedRandomSampler(seed)


def directions(cfg: TuneConfig) -> list[str]:
    d = ["maximize" if MAXIMIZE[cfg.objective] else "minimize"]
    return d + ["minimize"] if cfg.multi_objective else d


def create_study(cfg: TuneConfig, storage, rank: int = 0, refine: dict | None = None):
    """Create (or join) the study named ``cfg.name`` in ``storage``; a study of another kind is refused."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=cfg.name, directions=directions(cfg),
                                sampler=make_sampler(cfg, rank, refine), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions(cfg):
        raise ConfigError(f"study {cfg.name} exists with directions "
                          f"{[d.name.lower() for d in study.directions]}; give another --study name")
    return study


# ---------------------------------------------------------------------------------------------------- measurement
def _root(cfg: TuneConfig) -> Path | None:
    return Path(cfg.images_root) if cfg.images_root else None


class Evaluator:
    """The data one measurement needs (built once per worker process) and the measurement itself."""

    def __init__(self, cfg: TuneConfig, *, heldout: bool = False, with_cost: bool = False,
                 with_detection: bool | None = None, with_chart: bool | None = None):
        from camlab.isp.quality import load_quality_images
        from camlab.isp.tune import objectives as ob

        self.cfg = cfg
        self.heldout = heldout
        self.scenes = []
        self.defect_scenes = []
        need_quality = cfg.objective == "psnr" or heldout
        self.n_images = cfg.n_heldout_images if heldout else cfg.n_tune_images
        if need_quality:
            imgs = load_quality_images(cfg.n_tune_images + cfg.n_heldout_images, _root(cfg))
            part = imgs[cfg.n_tune_images:] if heldout else imgs[:cfg.n_tune_images]
            self.scenes = ob.quality_scenes(part, cfg.iso, max_side=cfg.max_side, frames=cfg.frames,
                                            motion_px=cfg.motion_px, seed=cfg.seed + (50_000 if heldout else 0),
                                            defect_ppm=cfg.defect_ppm)
            if cfg.defect_guard_ppm > 0:
                self.defect_scenes = ob.quality_scenes(
                    part, cfg.iso, max_side=cfg.max_side, frames=DEFECT_GUARD_FRAMES, motion_px=0,
                    seed=cfg.seed + 90_000 + (50_000 if heldout else 0), defect_ppm=cfg.defect_guard_ppm)
        chart = with_chart if with_chart is not None else (cfg.objective == "deltaE" or heldout)
        self.chart = ob.load_chart_frame() if chart else None
        det = with_detection if with_detection is not None else (
            cfg.detection_objective and not heldout or heldout and (cfg.n_detection_heldout > 0
                                                                          or cfg.detection_objective))
        self.detection = None
        if det:
            side, offset, n = cfg.detection_images(heldout)
            self.detection = ob.detection_set(n, offset, cfg.iso, model=cfg.detector, side=side,
                                              seed=cfg.detection_seed(heldout),
                                              renders=cfg.detection_heldout_renders if heldout
                                              else cfg.detection_renders)
        self.cost_frame = None
        if with_cost:
            img = load_quality_images(1, _root(cfg))[0][1]
            self.cost_frame = ob.cost_frame(img, cfg.iso)

    def measure(self, tuning) -> dict[str, Any]:
        """Every measurement this evaluator holds data for, on ``tuning`` (a PipelineConfig)."""
        from camlab.isp.tune import objectives as ob

        out: dict[str, Any] = {}
        if self.scenes:
            out.update(ob.quality(tuning, self.scenes))
        if self.defect_scenes:
            out["defect_guard_visible"], out["defect_guard_sites"] = ob.defect_count(tuning, self.defect_scenes)
        if self.chart is not None:
            out.update(ob.chart_delta_e(tuning, self.chart))
        if self.detection is not None:
            out.update(ob.detection(tuning, self.detection))
        return out

    def cost_ms(self, tuning, repeats: int = 5) -> float:
        from camlab.isp.tune import objectives as ob

        return ob.fast_path_cpu_ms(tuning, self.cost_frame, repeats=repeats)

    def cost_ratio(self, tuning, base) -> tuple[float, float]:
        """(CPU ms of ``tuning`` / CPU ms of ``base`` timed right before and after it, the tuning's CPU ms): a
        ratio to a reference timed in the same process at the same moment, so what other workers or jobs do to the
        machine's speed (caches, memory bandwidth, clock) largely cancels out."""
        b0 = self.cost_ms(base)
        c = self.cost_ms(tuning)
        b1 = self.cost_ms(base)
        return c / (0.5 * (b0 + b1)), c


def check_inputs(cfg: TuneConfig) -> None:
    """The data the study will read exists (quality images, colour chart, detector): InputFileError in one line
    here, before any process is spawned or trial run."""
    from camlab import settings
    from camlab.isp.quality import quality_image_paths
    from camlab.isp.tune import objectives as ob

    quality_image_paths(cfg.n_tune_images + cfg.n_heldout_images, _root(cfg))
    if cfg.objective == "deltaE" or not cfg.worker_only:
        chart = settings.data_root() / "raw" / "colorchart.dng"
        if not chart.is_file():
            raise InputFileError(f"{chart}: colour-chart DNG not found (deltaE and the held-out check need it)")
    if cfg.detection_objective or (cfg.n_detection_heldout and not cfg.worker_only):
        model = Path(cfg.detector) if cfg.detector else ob.release_model()
        if not model.exists():
            raise InputFileError(f"{model}: detector bundle/checkpoint not found (make models, or --detector)")
    if cfg.detection_objective:
        ob.check_detection_images(*cfg.detection_images(False), "--detection-images/--detection-offset")
    if (cfg.detection_objective or cfg.n_detection_heldout) and not cfg.worker_only:
        ob.check_detection_images(*cfg.detection_images(True), "--detection-heldout")


def check_warm_start(cfg: TuneConfig) -> None:
    """Each warm-start file exists and loads as a tuning: one line naming the file (and the field), before the
    store is opened or any trial runs."""
    from camlab.isp.pipeline import load_tuning

    for path in cfg.warm_start:
        if not Path(path).is_file():
            raise InputFileError(f"{path}: warm-start tuning file not found (--warm-start)")
        load_tuning(str(path))


def base_tuning(cfg: TuneConfig):
    from camlab.isp.pipeline import load_tuning

    return load_tuning(cfg.base)


# ---------------------------------------------------------------------------------------------------- workers
def measure_trial(cfg: TuneConfig, ev: Evaluator, tuning, base) -> tuple[list[float], dict[str, float]]:
    """What every trial records, sampled or seeded: its objective values and its user attributes (the finite
    metrics, ``eval_s``, and when the study is timed ``cpu_ms`` and ``cpu_ratio``, the cost against ``base`` timed
    beside it; the ratio is the second objective of a multi-objective study)."""
    t0 = time.perf_counter()
    m = ev.measure(tuning)
    attrs = {"eval_s": round(time.perf_counter() - t0, 3),
             **{k: float(v) for k, v in m.items()
                if isinstance(v, (int, float)) and v is not None and math.isfinite(float(v))}}
    values = [float(m[METRIC[cfg.objective]])]
    if cfg.timed:
        attrs["cpu_ratio"], attrs["cpu_ms"] = ev.cost_ratio(tuning, base)
        if cfg.multi_objective:
            values.append(attrs["cpu_ratio"])
    return values, attrs


def trial_constraints(cfg: TuneConfig, attrs: dict[str, float], defect_limit: float | None) -> dict[str, float]:
    """The Optuna constraints of a trial with :func:`measure_trial`'s ``attrs`` (feasible at <= 0): visible defects
    minus ``defect_limit`` (the base trial's plus the allowance) when there is one, and in a timed study the cost
    ratio minus 1 + ``cost_margin``. TPE and NSGA-II then learn where both hold instead of spending trials the pick
    will refuse."""
    out = {}
    shown = guard_count(attrs)
    if defect_limit is not None and shown is not None:
        out["defects_visible"] = shown - defect_limit
    if cfg.timed:
        out["cpu_ratio"] = attrs["cpu_ratio"] - (1 + cfg.cost_margin)
    return out


def _objective(cfg: TuneConfig, space, base, ev: Evaluator, defect_limit: float | None = None):
    """The trial function: :func:`measure_trial` of the sampled tuning, with :func:`trial_constraints`."""
    import optuna

    from camlab.isp.tune.space import apply, suggest

    def objective(trial):
        params = suggest(trial, space)
        try:
            cand = apply(base, params)
        except (ValueError, CamlabError) as exc:  # a joint constraint (e.g. motion_lo >= motion_hi)
            raise optuna.TrialPruned(f"invalid combination: {exc}") from None
        values, attrs = measure_trial(cfg, ev, cand, base)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        for k, v in trial_constraints(cfg, attrs, defect_limit).items():
            trial.set_constraint(k, v)
        return tuple(values) if len(values) > 1 else values[0]

    return objective


def run_worker(cfg: TuneConfig, rank: int = 0, numba_threads: int | None = None, refine: dict | None = None) -> int:
    """One worker: join the study and optimise until it holds ``cfg.trials`` trials (with ``refine``, the
    refinement stage: until it holds ``refine["target"]``). Returns trials run here."""
    import optuna

    from camlab.isp.tune.space import load_space

    if numba_threads:
        import numba

        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = base_tuning(cfg)
    space = load_space(cfg.space, cfg.objective, base)
    study = create_study(cfg, open_storage(cfg.storage), rank, refine)
    ev = Evaluator(cfg, with_cost=cfg.timed)
    before = len(study.trials)
    target = cfg.trials if refine is None else refine["target"]
    if before >= target:
        return 0
    stop = optuna.study.MaxTrialsCallback(target, states=None)
    study.optimize(_objective(cfg, space, base, ev, defect_limit(study, cfg)), n_trials=target,
                   callbacks=[stop], gc_after_trial=False)
    return len(study.trials) - before


def _worker_main(cfg_dict: dict, rank: int, numba_threads: int | None, refine: dict | None = None) -> None:
    run_worker(TuneConfig(**cfg_dict), rank, numba_threads, refine)


def _base_main(cfg_dict: dict) -> None:
    import optuna

    from camlab.isp.tune.space import load_space

    cfg = TuneConfig(**cfg_dict)
    base = base_tuning(cfg)
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.storage))
    add_base_trial(study, cfg, load_space(cfg.space, cfg.objective, base), base)


def _in_worker_process(target, cfg: TuneConfig) -> None:
    """Run ``target(asdict(cfg))`` in a spawned process like a worker's (same imports and thread setup)."""
    import multiprocessing as mp

    proc = mp.get_context("spawn").Process(target=target, args=(dataclasses.asdict(cfg),), name="tune-base")
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise CamlabError(f"tune: measuring the base tuning failed (exit code {proc.exitcode})")


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def worker_thread_env(threads: int | None):
    """Processes spawned inside get ``threads`` OpenMP/BLAS threads through their starting environment (they read it
    when numpy and numba load, before any worker code runs); ``None`` leaves the environment alone.

    Why: ``numba.set_num_threads`` limits numba's own parallel loops only. Without this a "one-thread" worker kept an
    OpenMP pool spinning on the second core (1.94 cores busy, no faster), so two workers on 2 cores could not beat
    one (wall ratio 0.90; 0.50 with the pool limited)."""
    if threads is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(int(threads)) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_workers(cfg: TuneConfig, numba_threads: int | None = None, refine: dict | None = None) -> float:
    """Run ``cfg.workers`` worker processes (spawned; ``numba_threads`` each, default one when more than one worker)
    on the study and wait (with ``refine``, the refinement stage); returns the wall time in seconds. A worker that
    fails makes this raise."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    threads = numba_threads if numba_threads is not None else (1 if cfg.workers > 1 else None)
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_worker_main, args=(dataclasses.asdict(cfg), r, threads, refine),
                         name=f"tune-worker-{r}") for r in range(cfg.workers)]
    with worker_thread_env(threads):
        for p in procs:
            p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    wall = time.perf_counter() - t0
    bad = [p.name for p in procs if p.exitcode != 0]
    if bad:
        raise CamlabError(f"tune: worker process(es) {', '.join(bad)} failed (exit codes "
                          f"{[p.exitcode for p in procs]})")
    return wall


# ---------------------------------------------------------------------------------------------------- results
def base_params(space, base) -> dict[str, Any]:
    """The base tuning's values of the searched fields that lie inside the space (a warm start)."""
    out = {}
    for name, p in space.items():
        v = getattr(getattr(base, p.stage), p.field)
        if p.kind == "categorical":
            same = [c for c in p.spec.choices if str(c).lower() == str(v).lower()]  # True is choice "true"
            if same:
                out[name] = same[0] if isinstance(v, bool) else v
        elif p.spec.low <= v <= p.spec.high:
            out[name] = v
    return out


def variant_params(space, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One-knob changes of the base on the space's discrete axes: every other choice of a categorical and every other
    value of an integer range, the rest of the base kept (but see :func:`with_companions`). Labels read "name=value"."""
    out = []
    for name, p in space.items():
        if name not in params:
            continue
        if p.kind == "categorical":
            others = [c for c in p.spec.choices if str(c).lower() != str(params[name]).lower()]
        elif p.kind == "int":
            others = [v for v in range(int(p.spec.low), int(p.spec.high) + 1) if v != int(params[name])]
        else:
            continue
        out.extend((f"{name}={v}", with_companions(space, params, name, v)) for v in others)
    return out


def with_companions(space, params: dict[str, Any], name: str, value) -> dict[str, Any]:
    """``params`` with ``name`` set to ``value`` and the searched fields whose meaning that choice changes moved with
    it: switching 3D-DNR's motion window between ``pixel`` and ``block`` scales both motion thresholds by
    :data:`camlab.isp.stages.nr3d.BLOCK_THRESHOLD_SCALE` (or its inverse), clipped to the space, since the block
    window's mean difference is less noisy and the same thresholds would mean a different test."""
    from camlab.isp.stages.nr3d import BLOCK_THRESHOLD_SCALE

    out = {**params, name: value}
    if name == "nr3d.motion_window" and str(value) != str(params[name]):
        scale = BLOCK_THRESHOLD_SCALE if value == "block" else 1.0 / BLOCK_THRESHOLD_SCALE
        for th in ("nr3d.motion_lo", "nr3d.motion_hi"):
            if th in out and th in space and space[th].kind == "float":
                lo, hi = float(space[th].spec.low), float(space[th].spec.high)
                out[th] = min(max(float(out[th]) * scale, lo), hi)
    return out


def add_base_trial(study, cfg: TuneConfig, space, base):
    """Measure the base (shipped) tuning here and add it to the study as a completed trial, so the search starts
    from what ships and a timed pick has its cost; with ``cfg.warm_variants`` also each one-knob change
    of the base on the discrete axes (:func:`variant_params`). Why the variants: TPE models a categorical choice by
    the trials that drew it, and a choice first drawn beside random continuous values looks bad whatever it is worth
    (a 200-trial PSNR study drew the directional demosaic 5 times, all far from the base, and never came back to it,
    though on the base it gains ~0.6 dB). (Optuna's ``enqueue_trial`` is not used: two SQLite workers can pop the
    same waiting trial.) Returns the base's frozen trial."""
    import optuna

    from camlab.isp.tune.space import apply, distributions

    params = base_params(space, base)
    dists = {k: v for k, v in distributions(space).items() if k in params}
    ev = Evaluator(cfg, with_cost=cfg.timed)
    values, attrs = measure_trial(cfg, ev, base, base)
    attrs["base"] = True
    shown = guard_count(attrs)
    limit = None if shown is None else defects_allowed(shown, cfg.defect_margin)
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values, user_attrs=attrs,
                                              constraints=trial_constraints(cfg, attrs, limit) or None))
    shipped = study.trials[-1]

    def add(params_: dict[str, Any], tuning, tag: str, name: str) -> None:
        """Measure ``tuning`` (the point ``params_`` of the space) and add it to the study tagged ``tag``."""
        t_values, t_attrs = measure_trial(cfg, ev, tuning, base)
        t_attrs[tag] = name
        study.add_trial(optuna.trial.create_trial(params=params_, distributions=dists, values=t_values,
                                                  user_attrs=t_attrs,
                                                  constraints=trial_constraints(cfg, t_attrs, limit) or None))

    def add_variants(of: dict[str, Any], tag: str, prefix: str = "") -> None:
        for label, vparams in (variant_params(space, of) if cfg.warm_variants else []):
            try:
                tuning = apply(base, vparams)
            except (ValueError, CamlabError):
                continue
            add(vparams, tuning, tag, prefix + label)

    add_variants(params, "variant")
    for path in cfg.warm_start:
        from camlab.isp.pipeline import load_tuning

        wparams = {**params, **base_params(space, load_tuning(str(path)))}
        # the file's point in the space (its fields outside the space stay the base's)
        add(wparams, apply(base, wparams), "warm_start", Path(path).name)
        # and its own one-knob discrete changes: a choice added to the space since that file was tuned (or one TPE
        # judged beside random values) is first measured at the best point known
        add_variants(wparams, "warm_start_variant", f"{Path(path).name}: ")
    return shipped


def shipped_trial(study):
    """The study's completed trial of the base tuning, or None."""
    import optuna

    for t in study.trials:
        if t.user_attrs.get("base") and t.state == optuna.trial.TrialState.COMPLETE:
            return t
    return None


def guard_count(attrs: dict) -> float | None:
    """The visible defects the guard reads from a trial's attributes: the guard scenes' count when the study
    measured them (``defect_guard_ppm`` > 0), else the quality scenes'; None when neither was measured."""
    if "defect_guard_visible" in attrs:
        return float(attrs["defect_guard_visible"])
    return float(attrs["defects_visible"]) if "defects_visible" in attrs else None


def defects_allowed(base_visible: float, margin: float) -> float:
    """Visible defects a pick may leave on the tuning images: the base tuning's plus ``margin`` of it, at least 1."""
    return float(base_visible) + max(1.0, math.ceil(margin * float(base_visible)))


def defect_limit(study, cfg: TuneConfig) -> float | None:
    """:func:`defects_allowed` over the study's base trial; None when it has no base trial or its scenes carry no
    defects (then there is no guard)."""
    ship = shipped_trial(study)
    shown = None if ship is None else guard_count(ship.user_attrs)
    return None if shown is None else defects_allowed(shown, cfg.defect_margin)


def eligible_trials(study, cfg: TuneConfig) -> list:
    """Completed trials that leave no more defective photosites visible than :func:`defects_allowed` over the base
    trial (all completed trials when the study has no base trial or its scenes carry no defects): PSNR gained by
    letting hot pixels through is not a tuning a camera can ship."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    limit = defect_limit(study, cfg)
    if limit is None:
        return done
    return [t for t in done if (guard_count(t.user_attrs) or 0.0) <= limit]


def pareto_front(trials: list, maximize_first: bool) -> list:
    """The trials no other trial beats on both quality (``values[0]``) and cost (``values[1]``, minimised)."""
    sign = 1.0 if maximize_first else -1.0

    def beats(a, b):
        qa, qb = sign * a.values[0], sign * b.values[0]
        return qa >= qb and a.values[1] <= b.values[1] and (qa > qb or a.values[1] < b.values[1])

    return [t for t in trials if not any(beats(o, t) for o in trials if o is not t)]


def choose_trial(study, cfg: TuneConfig):
    """Pick of an untimed study: the best trial of those that pass the defect guard (:func:`eligible_trials`).
    A timed study's pick is :func:`retimed_choice`."""
    done = eligible_trials(study, cfg)
    if not done:
        raise CamlabError(f"study {cfg.name}: no completed trial")
    sign = 1.0 if MAXIMIZE[cfg.objective] else -1.0
    return max(done, key=lambda t: sign * t.values[0])


#: continuous parameters the refinement holds at its start: CMA-ES does not see Optuna's constraints, and the defect
#: guard's is driven by the DPC margin. In the 18:58 bench run of 2026-12-07, with the margin free, the refinement
#: walked it from 0.098 to ~0.2 (its best trials gained +0.14 dB on the tuning scenes) and 137 of its 150 trials
#: left more defects visible than the guard allows
REFINE_HELD = ("dpc.threshold",)


def refine_point(study, cfg: TuneConfig, space) -> dict | None:
    """Where the refinement stage starts: the best trial of those that pass the defect guard and, in a timed study,
    the in-study cost limit; its continuous parameters as CMA-ES's ``x0``, the others (discrete, and
    :data:`REFINE_HELD`) ``fixed``. None when no trial qualifies."""
    pool = eligible_trials(study, cfg)
    if cfg.timed:
        pool = [t for t in pool if t.user_attrs.get("cpu_ratio", math.inf) <= 1 + cfg.cost_margin]
    if not pool:
        return None
    sign = 1.0 if MAXIMIZE[cfg.objective] else -1.0
    best = max(pool, key=lambda t: sign * t.values[0])
    return {"trial": best.number, "value": round(best.values[0], 4),
            "x0": {k: v for k, v in best.params.items() if k in space and space[k].kind == "float"
                   and k not in REFINE_HELD},
            "fixed": {k: v for k, v in best.params.items() if k in space and (space[k].kind != "float"
                                                                              or k in REFINE_HELD)}}


def retimed_choice(study, cfg: TuneConfig, base, space, top: int = 6, rounds: int = 3):
    """Pick of a timed study (cost objective or cost constraint) with the cost checked again: the ``top``
    best-quality trials (multi-objective: on the Pareto front) whose in-study cost ratio is within the bound + 5 %
    (of the trials that pass the defect guard, :func:`eligible_trials`) are re-timed
    against the base tuning in this process (alternating, ``rounds`` times);
    the best-quality one whose re-timed ratio is within ``cost_margin`` wins, else the base trial (no change).
    Only CPU cost is re-measured: quality on held-out images plays no part in the choice."""
    from camlab.isp.tune.space import apply

    ship = shipped_trial(study)
    bound = 1 + cfg.cost_margin
    sign = 1.0 if MAXIMIZE[cfg.objective] else -1.0
    ref = ship.user_attrs["cpu_ratio"] if ship is not None else None
    pool = eligible_trials(study, cfg)
    front = sorted(pareto_front(pool, MAXIMIZE[cfg.objective]) if cfg.multi_objective else pool,
                   key=lambda t: -sign * t.values[0])
    cands = [t for t in front if ref is None or t.user_attrs["cpu_ratio"] <= 1.05 * bound * ref][:top]
    ev = Evaluator(cfg, with_cost=True, with_chart=False, with_detection=False)
    if ev.cost_frame is None:
        raise CamlabError("tune: no cost frame")
    rows = []
    for t in cands:
        cand = apply(base, t.params)
        ratios = []
        for _ in range(rounds):
            b = ev.cost_ms(base)
            ratios.append(ev.cost_ms(cand) / b)
        ratio = float(np.median(ratios))
        rows.append({"number": t.number, "values": [round(v, 4) for v in t.values],
                     "retimed_cost_ratio": round(ratio, 4)})
        if ratio <= bound:
            return t, rows
    fallback = ship if ship is not None else min(front, key=lambda t: t.user_attrs["cpu_ratio"])
    return fallback, rows


def shipped_paths() -> set[Path]:
    from camlab.isp.pipeline import TUNING_DIR

    return {p.resolve() for p in TUNING_DIR.glob("*.yaml") if not p.stem.endswith("_tuned")}


def out_path(cfg: TuneConfig) -> Path:
    """The tuned YAML's path (relative paths resolve against the project); a shipped tuning is refused."""
    from camlab import settings

    p = Path(cfg.out)
    p = p if p.is_absolute() else settings.project_root() / p
    if p.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--out {cfg.out}: the tuned file must end in .yaml")
    if p.resolve() in shipped_paths():
        raise ConfigError(f"--out {cfg.out}: refusing to overwrite a shipped tuning; write a new file "
                          f"(e.g. {DEFAULT_OUT})")
    if not p.parent.is_dir():
        raise ConfigError(f"--out {cfg.out}: folder {p.parent} does not exist")
    return p


def write_tuned(tuning, path: Path, header: list[str]) -> Path:
    """Write ``tuning`` (a PipelineConfig) as YAML with a comment header, atomically; checks it loads back."""
    import yaml

    from camlab.config import to_dict
    from camlab.io_utils import atomic_write_text
    from camlab.isp.pipeline import load_tuning

    text = "".join(f"# {h}\n" for h in header) + yaml.safe_dump(to_dict(tuning), sort_keys=False)
    atomic_write_text(path, text)
    if load_tuning(path) != tuning:
        raise CamlabError(f"{path}: the written tuning does not load back to the same config")
    return path


def _round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def compare(cfg: TuneConfig, shipped, tuned, *, cost_repeats: int = 5, cost_rounds: int = 9) -> dict[str, Any]:
    """Shipped vs tuned on the tuning images and on the held-out images, and the fast path's CPU cost ratio: each of
    ``cost_rounds`` tuned timings over the mean of the shipped timings just before and after it (shipped and tuned
    alternate in this process), the median of those ratios. Why 9 rounds and per-round ratios: on 2026-12-07 at
    22:45 UTC single rounds of one pick ranged x 1.019-1.293 on this 2-core VM (median x 1.0502 of 9), and the
    bench's 3-round ratio of medians read x 1.1146 for it."""
    tune_ev = Evaluator(cfg, with_chart=False, with_detection=cfg.detection_objective)
    held_ev = Evaluator(cfg, heldout=True, with_cost=True)
    out: dict[str, Any] = {}
    for label, ev in (("tune_set", tune_ev), ("heldout", held_ev)):
        s, t = ev.measure(shipped), ev.measure(tuned)
        block = {"shipped": _round({k: v for k, v in s.items() if not isinstance(v, list)}),
                 "tuned": _round({k: v for k, v in t.items() if not isinstance(v, list)})}
        for k in ("psnr_db", "ssim", "delta_e_mean", "person_ap50", "person_recall", "person_fp_rate",
                  "person_empty_scene_fp_rate", "person_recall_at_fp", "person_fp_rate_at_fp"):
            if k in s and k in t and s[k] is not None and t[k] is not None:
                block[f"{k}_gain"] = round(float(t[k]) - float(s[k]), 4)
        if "psnr_db_per_image" in s:
            gains = np.asarray(t["psnr_db_per_image"]) - np.asarray(s["psnr_db_per_image"])
            block["psnr_db_gain_per_image_min"] = round(float(gains.min()), 3)
            block["images_improved"] = int(np.sum(gains > 0))
        out[label] = block
    cs, ct = [held_ev.cost_ms(shipped, cost_repeats)], []
    for _ in range(cost_rounds):
        ct.append(held_ev.cost_ms(tuned, cost_repeats))
        cs.append(held_ev.cost_ms(shipped, cost_repeats))
    ratios = [t / (0.5 * (a + b)) for t, a, b in zip(ct, cs[:-1], cs[1:])]
    out["cpu_ms_1280x720_shipped"] = round(float(np.median(cs)), 3)
    out["cpu_ms_1280x720_tuned"] = round(float(np.median(ct)), 3)
    out["cpu_cost_ratio_tuned_vs_shipped"] = round(float(np.median(ratios)), 4)
    out["cpu_cost_ratio_rounds"] = [round(float(r), 4) for r in ratios]
    return out


def log_mlflow(cfg: TuneConfig, study, chosen, summary: dict, tuned_path: Path) -> str | None:
    """One MLflow run for the study (config, held-out figures, tuned YAML) with nested runs for its best trials."""
    import optuna

    from camlab import tracking

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    sign = -1.0 if MAXIMIZE[cfg.objective] else 1.0
    best = sorted(done, key=lambda t: sign * t.values[0])[:cfg.mlflow_top_k]
    import mlflow

    with tracking.run("isp_tune", run_name=cfg.name, tags={"objective": cfg.objective, "study": cfg.name}) as run:
        mlflow.log_params({k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})
        flat = {}
        for part in ("tune_set", "heldout"):
            for k, v in summary.get(part, {}).items():
                if isinstance(v, (int, float)):
                    flat[f"{part}.{k}"] = v
                elif isinstance(v, dict):
                    flat.update({f"{part}.{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, (int, float))
                                 and vv is not None})
        flat["cpu_cost_ratio"] = summary.get("cpu_cost_ratio_tuned_vs_shipped", float("nan"))
        flat["n_trials"] = len(study.trials)
        mlflow.log_metrics(flat)
        mlflow.log_artifact(str(tuned_path))
        for rank, t in enumerate(best):
            with tracking.run("isp_tune", run_name=f"{cfg.name}-trial{t.number}", nested=True,
                              tags={"trial": t.number, "rank": rank, "chosen": t.number == chosen.number}):
                mlflow.log_params(t.params)
                mlflow.log_metrics({f"value{i}": v for i, v in enumerate(t.values)} |
                                   {k: v for k, v in t.user_attrs.items() if isinstance(v, (int, float))})
        return run.info.run_id


def tune(cfg: TuneConfig, *, log=print) -> dict[str, Any]:
    """Run the study (``cfg.workers`` processes) and, unless ``worker_only``, write the tuned YAML, compare it with
    the shipped tuning on tuning and held-out images and log to MLflow. Every input is checked before a trial runs."""
    import optuna

    from camlab.isp.tune.space import load_space, space_table

    base = base_tuning(cfg)
    space = load_space(cfg.space, cfg.objective, base)          # unknown names / out-of-domain ranges
    check_warm_start(cfg)                                       # missing or broken warm-start files
    storage = open_storage(cfg.storage)                         # unreachable storage
    path = None if cfg.worker_only else out_path(cfg)           # never over a shipped tuning
    check_inputs(cfg)                                           # images, chart, detector
    make_sampler(cfg)
    study = create_study(cfg, storage)
    if shipped_trial(study) is None:
        _in_worker_process(_base_main, cfg)     # measured where the trials are: a fresh spawned process
    log(f"[tune] study {cfg.name} in {cfg.storage}: {len(study.trials)} trials so far, target {cfg.trials}, "
        f"{cfg.workers} worker process(es), {len(space)} parameters, objective {cfg.objective} at ISO {cfg.iso:g}")
    wall = run_workers(cfg)
    study = optuna.load_study(study_name=cfg.name, storage=storage)
    # extra machines (worker_only) take no part: the machine that writes the YAML runs the refinement
    refine = refine_point(study, cfg, space) if cfg.refine_trials and not cfg.worker_only else None
    if refine is not None:
        log(f"[tune] refining: {cfg.refine_trials} CMA-ES trials from trial {refine['trial']} ({refine['value']}), "
            f"{len(refine['x0'])} continuous parameters, {len(refine['fixed'])} fixed")
        n_main = len(study.trials)
        refine["target"] = n_main + cfg.refine_trials  # the main stage may end a trial or two past cfg.trials
        wall += run_workers(cfg, refine=refine)
        study = optuna.load_study(study_name=cfg.name, storage=storage)
        done = [t for t in study.trials[n_main:] if t.state == optuna.trial.TrialState.COMPLETE]
        sign = 1.0 if MAXIMIZE[cfg.objective] else -1.0
        best = max(done, key=lambda t: sign * t.values[0], default=None)
        refine.update(first_trial=n_main, n_trials=len(study.trials) - n_main,
                      best_trial=None if best is None else best.number,
                      best_value=None if best is None else round(best.values[0], 4))
    states = [t.state for t in study.trials]
    result: dict[str, Any] = {
        "study": cfg.name, "storage": cfg.storage, "objective": cfg.objective, "iso": cfg.iso, "base": cfg.base,
        "sampler": cfg.sampler, "multi_objective": cfg.multi_objective, "workers": cfg.workers,
        "wall_s": round(wall, 2), "n_trials": len(study.trials),
        "n_complete": sum(s == optuna.trial.TrialState.COMPLETE for s in states),
        "n_pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "space": space_table(space), **({"refine": refine} if refine is not None else {})}
    log(f"[tune] {result['n_complete']} complete / {result['n_trials']} trials in {wall:.1f} s")
    if cfg.worker_only:
        return result
    ship = shipped_trial(study)
    if ship is not None:
        result["base_trial"] = {"number": ship.number, "values": [round(v, 4) for v in ship.values]}
    if cfg.timed and ship is not None:
        result["shipped_cpu_ratio_in_study"] = round(ship.user_attrs["cpu_ratio"], 4)
    result["warm_start_trials"] = [
        {"number": t.number, "file": t.user_attrs["warm_start"], "values": [round(v, 4) for v in t.values],
         **({"cpu_ratio": round(t.user_attrs["cpu_ratio"], 4)} if "cpu_ratio" in t.user_attrs else {})}
        for t in study.trials if t.user_attrs.get("warm_start") and t.state == optuna.trial.TrialState.COMPLETE]
    from camlab.isp.tune.space import apply

    if cfg.timed:
        chosen, result["retimed_candidates"] = retimed_choice(study, cfg, base, space)
    else:
        chosen = choose_trial(study, cfg)

    name = Path(path).stem
    tuned = dataclasses.replace(apply(base, chosen.params), name=name)
    result["chosen_trial"] = {"number": chosen.number, "values": [round(v, 4) for v in chosen.values],
                              "params": {k: (round(v, 4) if isinstance(v, float) else v)
                                         for k, v in chosen.params.items()}}
    result.update(compare(cfg, dataclasses.replace(base), tuned))
    metric = METRIC[cfg.objective]
    header = [f"{name}: ISP tuning searched by `camlab tune isp` (camlab.isp.tune, Optuna {optuna.__version__})",
              f"from {cfg.base}, objective {cfg.objective} at ISO {cfg.iso:g}, study {cfg.name}, trial {chosen.number}",
              f"held-out {metric}: shipped {result['heldout']['shipped'].get(metric)} -> tuned "
              f"{result['heldout']['tuned'].get(metric)}; fast-path CPU ratio "
              f"{result['cpu_cost_ratio_tuned_vs_shipped']}",
              "Every key is a field of camlab.isp.pipeline.PipelineConfig (loads with load_tuning)."]
    write_tuned(tuned, path, header)
    result["tuned_yaml"] = str(path)
    if cfg.mlflow:
        result["mlflow_run_id"] = log_mlflow(cfg, study, chosen, result, path)
    return result


__all__ = ["TuneConfig", "StorageError", "load_tune_config", "open_storage", "make_sampler", "create_study",
           "Evaluator", "add_base_trial", "retimed_choice", "run_worker", "run_workers", "choose_trial", "out_path",
           "write_tuned", "compare", "log_mlflow", "tune"]
