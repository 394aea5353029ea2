"""Cry-detector training on the CPU: augmented 1 s windows, binary cross-entropy, AdamW, MLflow-logged.

Optimiser: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, with a one-cycle learning rate
(Smith & Topin, arXiv:1708.07120). Spectrogram masking: Park et al., "SpecAugment", Interspeech 2019. Loss:
cost-weighted BCE (no-cry windows, and more so those cropped around mined hard negatives, weigh more); with
``distill_weight`` > 0 plus knowledge distillation (Hinton, Vinyals & Dean, arXiv:1503.02531): a training-only
auxiliary head learns YAMNet's probabilities of baby cry, baby laughter, babbling, speech, music, television and cat
(soft binary targets, :func:`camlab.eval.yamnet.teacher_logits`, cached on disk) on the augmented windows and
mixtures, so the shared features must separate a cry from its neighbours. Weights: the
last epoch's (``select_epoch: last``), or with ``ema_epochs`` > 0 the exponential moving average of the weights at
that epoch (Polyak averaging, :mod:`camlab.train.ema`); the alarm operating point comes from training-split streams.
Validation
(reported, never used to pick): window metrics on augmented windows of the validation recordings every epoch, and
at the end the clip / stream
evaluation of :mod:`camlab.eval.audio` on the validation split (``cry/``, ``nocry/`` laid out by
:func:`camlab.data.audio.split_dir`). Logged to MLflow: params, per-epoch metrics, ROC and confusion-matrix images,
the checkpoint.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camlab import settings
from camlab.config import load_config, to_dict
from camlab.data.audio import AudioDataConfig, WindowSampler, cached_features, index_for, split_dir
from camlab.models.cry import KIND, CryModelConfig, build_model, count_macs, count_params
from camlab.train.ema import WeightAverage, check_horizon, decay_for_horizon

CONFIG_DIR = Path(__file__).with_name("configs")


@dataclass(frozen=True)
class TrainBudget:
    epochs: int = 8
    windows_per_epoch: int = 4096     # freshly augmented windows per epoch (pool refresh)
    pool_reuse: int = 1               # epochs each generated pool is reused for (with SpecAugment masks)
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_windows: int = 1024
    threads: int = 1                  # torch + BLAS threads; 1 is fastest on a shared 2-core machine
    seed: int = 0
    spec_mask: bool = True
    hard_negative_epoch: int = 0      # from this epoch on, each new pool mines hard training negatives (0 = off)
    hard_negative_count: int = 384    # mined spots kept (highest P(cry) no-cry windows of the training split)
    hard_negative_hop_s: float = 0.125  # mining stride over the training no-cry audio
    neg_weight: float = 1.0           # loss weight of no-cry windows (cries weigh 1)
    hard_weight: float = 1.0          # extra factor on no-cry windows cropped around mined hard spots
    select_epoch: str = "last"        # "last" (validation never picks the weights) or "val_windows" (legacy)
    distill_weight: float = 0.0       # weight of the YAMNet-teacher loss on the auxiliary head (0 = no teacher)
    distill_windows: int = 1024       # windows of each new pool scored by the teacher (the rest: labels only)
    ema_epochs: float = 0.0           # the weights evaluated and shipped are their moving average over about this many
    #                                   epochs (camlab.train.ema; 0 = the live weights)

    def __post_init__(self):
        if self.neg_weight <= 0 or self.hard_weight <= 0:
            raise ValueError("need neg_weight > 0 and hard_weight > 0")
        if self.select_epoch not in ("last", "val_windows"):
            raise ValueError(f"select_epoch must be 'last' or 'val_windows', got {self.select_epoch!r}")
        if self.hard_negative_epoch < 0 or self.hard_negative_count < 1 or self.hard_negative_hop_s <= 0:
            raise ValueError("need hard_negative_epoch >= 0, hard_negative_count >= 1, hard_negative_hop_s > 0")
        if self.epochs < 1 or self.windows_per_epoch < self.batch_size or self.batch_size < 2:
            raise ValueError("need epochs >= 1 and windows_per_epoch >= batch_size >= 2")
        if self.pool_reuse < 1 or self.val_windows < 16 or self.lr <= 0:
            raise ValueError("need pool_reuse >= 1, val_windows >= 16, lr > 0")
        if self.distill_weight < 0 or self.distill_windows < 0:
            raise ValueError("need distill_weight >= 0 and distill_windows >= 0")
        check_horizon(self.ema_epochs, "ema_epochs")


@dataclass(frozen=True)
class CryTrainConfig:
    experiment: str = "cry"
    run_name: str | None = None
    output_dir: str | None = None     # checkpoint folder; None = <project>/out/cry/<run stamp>
    model: CryModelConfig = field(default_factory=CryModelConfig)
    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    train: TrainBudget = field(default_factory=TrainBudget)
    calibrate_decode: bool = True     # pick threshold / k-of-n on training-split streams (validation untouched)
    calibration_cry_clips: int = 120  # cry clips (seeded subset of the training split) used for that
    max_false_alarms_per_hour: float = 1.0
    calibration_holdout: float = 0.0  # share of training no-cry groups kept out of training for the operating point
    calibration_cry_holdout: float = 0.0  # share of training cry recordings kept out of training for it (0 = the
    #                                       operating point meets training cries, which the model has fitted)
    calibration_stress: bool = False  # also stream re-mixes of that no-cry audio (quieter, louder, overlaid)
    max_onset_to_alarm_s: float = 1.6
    decode_thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    decode_rules: tuple[tuple[int, int], ...] = ((2, 3), (3, 4), (3, 3))   # (k, n) candidates, k of the last n
    # teacher-gate candidates (camlab.models.cry: veto windows whose distillation-head P(cry) is below the gate),
    # picked with the threshold and rule on the same streams; (0.0,) = no gate
    decode_gates: tuple[float, ...] = (0.0,)
    # teacher blend of the deployed logit (camlab.models.cry), fixed by the recipe and applied once the weights are
    # final, before the operating point is picked: training and epoch selection see the plain cry head
    decode_blend: float = 0.0
    clip_eval: bool = True            # stream-evaluate the validation split at the end
    yamnet_anchor: bool = False       # ... and the YAMNet anchor on the same clips
    progress: bool = True

    def __post_init__(self):
        if not self.decode_gates or any(not 0.0 <= g < 1.0 for g in self.decode_gates):
            raise ValueError(f"decode_gates must be a non-empty list of values in [0, 1), got {self.decode_gates}")
        if any(g > 0 for g in self.decode_gates) and not self.model.aux_outputs:
            raise ValueError("decode_gates above 0 need the distillation head (model.aux_outputs > 0)")
        if not 0.0 <= self.calibration_cry_holdout < 1.0:
            raise ValueError(f"calibration_cry_holdout must be in [0, 1), got {self.calibration_cry_holdout}")
        if not 0.0 <= self.decode_blend <= 1.0:
            raise ValueError(f"decode_blend must be in [0, 1], got {self.decode_blend}")
        if self.decode_blend > 0 and not self.model.aux_outputs:
            raise ValueError("decode_blend above 0 needs the distillation head (model.aux_outputs > 0)")


@dataclass
class TrainResult:
    checkpoint: Path
    run_id: str | None
    metrics: dict
    val_dir: Path | None = None


#: the recipe ``make models`` ships (issue 20: hard negatives, packaged sound effects, music, YAMNet teacher; chosen
#: over seeds by ``benchmarks/bench_cry_select.py``); benches and exports find its checkpoint through
#: :func:`release_checkpoint`
RELEASE_RECIPE = "cry_music"


def recipe_checkpoint(recipe: str) -> Path:
    """Where a built-in recipe leaves its checkpoint (``<output_dir>/cry.pt``, relative to the project root)."""
    out = Path(load_train_config(recipe).output_dir)
    return (out if out.is_absolute() else settings.project_root() / out) / "cry.pt"


def seed_checkpoint(recipe: str, seed: int) -> Path:
    """Where ``recipe`` trained with ``seed`` leaves its checkpoint: the recipe's own folder for the seed its YAML
    names, ``<output_dir>_s<seed>`` for any other (the seed sweep of ``benchmarks/bench_cry_select.py``)."""
    cfg = load_train_config(recipe)
    if int(seed) == int(cfg.train.seed):
        return recipe_checkpoint(recipe)
    out = Path(f"{cfg.output_dir.rstrip('/')}_s{int(seed)}")
    return (out if out.is_absolute() else settings.project_root() / out) / "cry.pt"


def release_checkpoint() -> Path:
    """Where the release recipe leaves its checkpoint."""
    return recipe_checkpoint(RELEASE_RECIPE)


def load_train_config(source=None, overrides: dict | None = None) -> CryTrainConfig:
    """A YAML path, a mapping, a config name (``cry_demo``/``cry_full``) or None (defaults)."""
    if isinstance(source, str) and not source.endswith((".yaml", ".yml")) and (CONFIG_DIR / f"{source}.yaml").is_file():
        source = CONFIG_DIR / f"{source}.yaml"
    if isinstance(source, CryTrainConfig):
        return source
    return load_config(CryTrainConfig, source, overrides=overrides)


def _spec_mask(x, rng: np.random.Generator):
    """SpecAugment-style: one frequency band and one time span per example set to the batch minimum."""
    n, _, h, w = x.shape
    lo = x.min()
    for i in range(n):
        f = rng.integers(0, max(1, h // 8))
        f0 = rng.integers(0, h - f + 1)
        t = rng.integers(0, max(1, w // 10))
        t0 = rng.integers(0, w - t + 1)
        x[i, :, f0:f0 + f, :] = lo
        x[i, :, :, t0:t0 + t] = lo
    return x


def _plot_roc(curves: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})" if auc is not None else name)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("cry ROC (validation)")
    fig.tight_layout()
    return fig


def split_calibration_negatives(train_clips, fraction: float, seed: int = 0):
    """``(clips to train on, held-out no-cry clips)``: a ``fraction`` of the training split's no-cry groups (by a
    seeded hash of the group, other seed than the validation split; long background files split in time: their last
    ``fraction``) is kept out of training so the operating point meets no-cry audio the model has not fitted."""
    from dataclasses import replace

    from camlab.data.audio import _side, duration_hours

    if fraction <= 0:
        return list(train_clips), []
    fit, held = [], []
    for c in train_clips:
        if c.label == 1:
            fit.append(c)
        elif c.source == "background":
            end = c.end_s if c.end_s is not None else c.start_s + duration_hours([c]) * 3600.0
            cut = round(c.start_s + (end - c.start_s) * (1.0 - fraction), 3)
            fit.append(replace(c, end_s=cut))
            held.append(replace(c, start_s=cut, end_s=end))
        elif _side(seed + 7919, c.group, fraction) == "val":
            held.append(c)
        else:
            fit.append(c)
    return fit, held


def split_calibration_cries(train_clips, fraction: float, seed: int = 0):
    """``(clips to train on, held-out cry clips)``: a ``fraction`` of the training split's cry recordings (by a
    seeded hash of the recording, another salt than the validation split's and the no-cry holdout's) is kept out of
    training, so the operating point is picked on cries the model has not fitted, as a new baby's will be."""
    from camlab.data.audio import _side

    if fraction <= 0:
        return list(train_clips), []
    fit, held = [], []
    for c in train_clips:
        (held if c.label == 1 and _side(seed + 104729, c.group, fraction) == "val" else fit).append(c)
    return fit, held


def _calibrate_decode(model, cfg: CryTrainConfig, index, rng, nocry=None, cry=None):
    """Choose the decode operating point on training-split streams: a cry subset (of ``cry``, the held-out
    calibration cries when ``calibration_cry_holdout`` > 0, else of the training cries) plus the training no-cry
    audio (``nocry``: the held-out calibration part when ``calibration_holdout`` > 0, else all of it)."""
    from dataclasses import replace

    from camlab.data.audio import SAMPLE_RATE, clip_waveform, resample
    from camlab.eval.audio import (EvalSet, TorchScorer, operating_point_rows, pick_operating_point,
                                   stream_probabilities)
    from camlab.contract.audio_features import CryAlarm
    from camlab.models.cry import DecodeConfig

    from camlab.errors import InputFileError

    def wave(c):
        try:
            return resample(clip_waveform(c, cfg.data.band_limit_hz), cfg.data.band_limit_hz, SAMPLE_RATE)
        except InputFileError:   # the sampler skipped it too (undecodable, non-finite)
            return None

    cries = list(cry) if cry else [c for c in index.train if c.label == 1]
    pick = np.sort(rng.permutation(len(cries))[:cfg.calibration_cry_clips])
    cry_w = [(cries[i].path, wave(cries[i])) for i in pick]
    no_w = [(c.path, wave(c)) for c in (nocry or [c for c in index.train if c.label == 0])]
    data = EvalSet(cry=[(p, w) for p, w in cry_w if w is not None], nocry=[(p, w) for p, w in no_w if w is not None],
                   skipped=[])
    fc = cfg.model.features
    d = cfg.model.decode
    base = replace(cfg.model, teacher_blend=cfg.decode_blend)
    rows = []
    try:
        for gate in cfg.decode_gates:   # the graph reads its gate and blend from model_config at call time
            model.model_config = replace(base, teacher_gate=gate)
            scorer = TorchScorer(model, fc, CryAlarm(d.threshold, d.k, d.n, d.refractory_s, fc.hop_s))
            probs = stream_probabilities(scorer, data)
            if cfg.calibration_stress:
                probs = add_stress_streams(scorer, data, probs)
            rows += [{**r, "teacher_gate": gate} for r in operating_point_rows(
                probs, fc.hop_s, refractory_s=d.refractory_s, thresholds=cfg.decode_thresholds,
                rules=cfg.decode_rules)]
    finally:
        model.model_config = cfg.model
    best = pick_operating_point(rows, max_fa_per_hour=cfg.max_false_alarms_per_hour,
                                max_latency_s=cfg.max_onset_to_alarm_s)
    decode = DecodeConfig(threshold=best["threshold"], k=best["k"], n=best["n"], refractory_s=d.refractory_s)
    return replace(base, decode=decode, teacher_gate=best["teacher_gate"]), rows


def add_stress_streams(scorer, data, probs: dict) -> dict:
    """Append :func:`camlab.eval.audio.stress_beds` of the calibration no-cry audio (training split: quieter,
    louder, overlaid on itself) to the false-alarm stream of ``probs``: more no-cry exposure to rank alarm rules on,
    without touching validation. Streams are laid end to end (times offset, refractory carried across)."""
    from camlab.data.audio import SAMPLE_RATE
    from camlab.eval.audio import _stream_probs, stress_beds

    p_all, t_all = [probs["nocry_stream"][0]], [probs["nocry_stream"][1]]
    hours = probs["nocry_hours"]
    for _, x in stress_beds(data):
        p, t = _stream_probs(scorer, x)
        offset = float(t_all[-1].max()) + scorer.alarm.refractory_s if t_all[-1].size else 0.0
        p_all.append(p)
        t_all.append(t + offset)
        hours += len(x) / SAMPLE_RATE / 3600.0
    return {**probs, "nocry_stream": (np.concatenate(p_all), np.concatenate(t_all)), "nocry_hours": hours}


def mine_hard_negatives(model, sampler: WindowSampler, count: int, hop_s: float = 0.125, batch: int = 512
                        ) -> tuple[list[tuple[int, int]], dict]:
    """Score every training no-cry window (stride ``hop_s``) with the current model; return the ``count`` highest
    as ``(negative index, start sample at the sampler's rate)`` plus summary statistics (training split only)."""
    import torch

    from camlab.contract.audio_features import sliding_windows
    from camlab.data.audio import resample

    fc = sampler.fcfg
    hop = max(1, int(round(hop_s * fc.sample_rate)))
    probs, spots = [], []
    model.eval()
    with torch.no_grad():
        for i, x8 in enumerate(sampler.neg):
            wins, ends = sliding_windows(resample(x8, sampler.rate, fc.sample_rate), fc.window_samples, hop)
            for j in range(0, len(wins), batch):
                logit = model(torch.from_numpy(sampler.fx.batch(wins[j:j + batch]))).reshape(-1).numpy()
                probs.append(1.0 / (1.0 + np.exp(-logit.astype(np.float64))))
            starts = np.maximum(ends - fc.window_samples, 0) * sampler.rate // fc.sample_rate
            spots.extend((i, int(a)) for a in starts)
    p = np.concatenate(probs) if probs else np.zeros(0)
    order = np.argsort(-p, kind="stable")[:count]
    stats = {"hard_windows_scored": int(p.size), "hard_p_mean": float(p[order].mean()) if order.size else 0.0,
             "hard_over_half": int(np.sum(p >= 0.5))}
    return [spots[k] for k in order], stats


def window_weights(labels, hard, neg_weight: float = 1.0, hard_weight: float = 1.0) -> np.ndarray:
    """Per-window loss weights, mean 1: cries 1, no-cry ``neg_weight``, no-cry cut around a mined hard spot
    ``neg_weight * hard_weight`` (cost-sensitive weighting of the confusable negatives: a false alarm costs more
    than a late alarm on a camera that wakes parents)."""
    y = np.asarray(labels) > 0.5
    h = np.asarray(hard, bool) & ~y
    w = np.where(y, 1.0, neg_weight * np.where(h, hard_weight, 1.0))
    return (w / w.mean()).astype(np.float32) if w.size else w.astype(np.float32)


def teacher_targets(waves: np.ndarray, count: int) -> np.ndarray:
    """``(N, len(TEACHER_CLASSES))`` float32: YAMNet's probabilities for the first ``count`` windows of a pool (the
    pool is in random order), NaN for the rest (no teacher term there)."""
    from camlab.contract.audio_features import sigmoid
    from camlab.eval.yamnet import TEACHER_CLASSES, teacher_logits

    out = np.full((len(waves), len(TEACHER_CLASSES)), np.nan, np.float32)
    k = min(count, len(waves))
    if k:
        out[:k] = sigmoid(teacher_logits(waves[:k]).astype(np.float64)).astype(np.float32)
    return out


def distill_loss(aux_logits, soft: np.ndarray):
    """Mean binary cross-entropy of the auxiliary head against the teacher's probabilities over the windows that
    have them (rows without a teacher score are NaN and left out); 0 when none in the batch has one."""
    import torch

    t = torch.from_numpy(np.asarray(soft, np.float32))
    have = ~torch.isnan(t[:, 0])
    if not bool(have.any()):
        return aux_logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(aux_logits[have], t[have])


def _window_eval(model, x, y, batch=512) -> tuple[np.ndarray, float]:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i:i + batch])).reshape(-1).numpy())
    logits = np.concatenate(out)
    loss = float(np.mean(np.logaddexp(0, logits) - y * logits))
    return logits, loss


def train(config=None, overrides: dict | None = None) -> TrainResult:
    """Train the cry detector; returns the checkpoint path, the MLflow run id and the validation metrics."""
    from threadpoolctl import threadpool_limits

    cfg = load_train_config(config, overrides)
    with threadpool_limits(limits=cfg.train.threads):
        return _train(cfg)


def _train(cfg: CryTrainConfig) -> TrainResult:
    import mlflow
    import torch

    from camlab import tracking
    from camlab.eval.audio import binary_metrics, evaluate, roc_curve
    from camlab.train.checkpoint import save_checkpoint
    from camlab.train.common import (flatten_params, log_figure, plot_confusion, plot_group_alarm_rates, plot_losses,
                                     progress, seed_everything, set_threads)

    b = cfg.train
    if b.distill_weight > 0:
        from camlab.errors import ConfigError
        from camlab.eval.yamnet import TEACHER_CLASSES, package_model_zip

        package_model_zip()   # one-line error naming `make venv` before any work when the teacher is missing
        if cfg.model.aux_outputs != len(TEACHER_CLASSES):
            raise ConfigError(f"train.distill_weight > 0 needs model.aux_outputs: {len(TEACHER_CLASSES)} "
                              f"(one per teacher class: {', '.join(TEACHER_CLASSES)}), got {cfg.model.aux_outputs}")
    t_start = time.time()
    set_threads(b.threads)
    rng = seed_everything(b.seed)
    fcfg = cfg.model.features

    index = index_for(cfg.data)
    counts = index.counts()
    fit_clips, calib_neg = split_calibration_negatives(index.train, cfg.calibration_holdout, cfg.data.split_seed)
    counts["calibration_holdout_nocry"] = len(calib_neg)
    fit_clips, calib_cry = split_calibration_cries(fit_clips, cfg.calibration_cry_holdout, cfg.data.split_seed)
    counts["calibration_holdout_cry"] = len(calib_cry)
    train_sampler = WindowSampler(fit_clips, cfg.data, fcfg)
    val_key = {"data": to_dict(cfg.data), "features": to_dict(fcfg), "n": b.val_windows, "seed": b.seed,
               "val": sorted(f"{c.path}|{c.start_s}" for c in index.val)}
    x_val, y_val = cached_features(
        "cry-val", val_key,
        lambda: WindowSampler(index.val, cfg.data, fcfg).features(b.val_windows, np.random.default_rng(b.seed + 99)))

    model = build_model(cfg.model)
    n_params, macs = count_params(model), count_macs(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=b.lr, weight_decay=b.weight_decay)
    steps_per_epoch = b.windows_per_epoch // b.batch_size
    average = WeightAverage(model, decay_for_horizon(b.ema_epochs, steps_per_epoch)) if b.ema_epochs > 0 else None
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=b.lr, total_steps=b.epochs * steps_per_epoch,
                                                pct_start=0.2)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out_dir = Path(cfg.output_dir) if cfg.output_dir else settings.project_root() / "out" / "cry" / stamp
    ckpt_path = out_dir / "cry.pt"
    history: list[dict] = []
    best = (-1.0, None, None)
    with tracking.run(cfg.experiment, run_name=cfg.run_name or f"cry-{stamp}") as run:
        run_id = run.info.run_id
        mlflow.log_params(flatten_params(to_dict(cfg)))
        mlflow.log_params({"model.params": n_params, "model.macs": macs, "data.train_cry": counts["train"]["cry"],
                           "data.train_nocry": counts["train"]["nocry"], "data.val_cry": counts["val"]["cry"],
                           "data.val_nocry": counts["val"]["nocry"], "data.skipped_files": counts["skipped"]})
        mlflow.set_tag("git_commit", tracking.git_commit())
        pool = None
        for epoch in range(1, b.epochs + 1):
            t0 = time.time()
            if pool is None or (epoch - 1) % b.pool_reuse == 0:
                if b.hard_negative_epoch and epoch >= b.hard_negative_epoch:
                    spots, hstats = mine_hard_negatives(model, train_sampler, b.hard_negative_count,
                                                        b.hard_negative_hop_s)
                    train_sampler.set_hard_negatives(spots)
                    mlflow.log_metrics({k: float(v) for k, v in hstats.items()}, step=epoch)
                waves, y_new = train_sampler.windows(b.windows_per_epoch, rng)
                x_new = train_sampler.fx.batch(waves)
                soft = teacher_targets(waves, b.distill_windows) if b.distill_weight > 0 else None
                pool = (x_new, y_new, window_weights(y_new, train_sampler.last_hard, b.neg_weight, b.hard_weight),
                        soft)
                del waves
            x_all, y_all, w_all, soft_all = pool
            model.train()
            order = rng.permutation(len(x_all))
            total = 0.0
            bar = progress(range(steps_per_epoch), desc=f"cry epoch {epoch}/{b.epochs}", enabled=cfg.progress)
            for step in bar:
                idx = order[step * b.batch_size:(step + 1) * b.batch_size]
                xb = x_all[idx].copy()
                if b.spec_mask:
                    xb = _spec_mask(xb, rng)
                if soft_all is not None:
                    logits, aux = model.forward_aux(torch.from_numpy(xb))
                    logits = logits.reshape(-1)
                    loss = (loss_fn(logits, torch.from_numpy(y_all[idx])) * torch.from_numpy(w_all[idx])).mean()
                    loss = loss + b.distill_weight * distill_loss(aux, soft_all[idx])
                else:
                    logits = model(torch.from_numpy(xb)).reshape(-1)
                    loss = (loss_fn(logits, torch.from_numpy(y_all[idx])) * torch.from_numpy(w_all[idx])).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if average is not None:
                    average.update(model)
                total += loss.item()
            scored = average.model if average is not None else model
            logits_val, val_loss = _window_eval(scored, x_val, y_val)
            m = binary_metrics(1 / (1 + np.exp(-logits_val)), y_val, cfg.model.decode.threshold)
            row = {"epoch": epoch, "train_loss": total / steps_per_epoch, "val_loss": val_loss,
                   "val_window_f1": m["f1"], "val_window_auc": m["roc_auc"] or 0.0, "epoch_s": time.time() - t0}
            history.append(row)
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            score = m["f1"] - 0.01 * val_loss if b.select_epoch == "val_windows" else float(epoch)
            if score > best[0]:
                best = (score, copy.deepcopy(scored.state_dict()), epoch)
        model.load_state_dict(best[1])
        model.eval()
        model_cfg = cfg.model
        if cfg.calibrate_decode:
            model_cfg, op_rows = _calibrate_decode(model, cfg, index, rng, calib_neg or None, calib_cry or None)
            model.model_config = model_cfg
            mlflow.log_dict({"chosen": to_dict(model_cfg.decode), "grid": op_rows}, "operating_point.json")
        logits_val, val_loss = _window_eval(model, x_val, y_val)
        wm = binary_metrics(1 / (1 + np.exp(-logits_val)), y_val, model_cfg.decode.threshold)
        metrics = {"decode_threshold": model_cfg.decode.threshold, "decode_k": model_cfg.decode.k,
                   "decode_n": model_cfg.decode.n, "best_epoch": best[2], "val_window_loss": val_loss, "val_window_f1": wm["f1"],
                   "val_window_accuracy": wm["accuracy"], "val_window_roc_auc": wm["roc_auc"],
                   "val_windows": int(len(y_val)), "train_s": time.time() - t_start, "params": n_params,
                   "macs": macs}
        fpr, tpr = roc_curve(logits_val, y_val)
        curves = {"windows": (fpr, tpr, wm["roc_auc"])}
        conf, conf_title = wm["confusion"], "validation windows"
        val_dir = None
        if cfg.clip_eval:
            val_dir = split_dir("val", cfg.data)
            res = evaluate(model, val_dir, anchors=cfg.yamnet_anchor, full=True, progress=cfg.progress)
            for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "false_alarms_per_hour",
                      "onset_to_alarm_s", "n_cry", "n_nocry"):
                metrics[f"val_clip_{k}"] = res[k]
            metrics["val_nocry_hours"] = res["details"]["nocry_hours"]
            metrics["val_false_alarms"] = res["details"]["false_alarms"]
            metrics["val_false_alarms_per_hour_upper95"] = res["details"]["false_alarms_per_hour_upper95"]
            metrics["val_clip_by_group"] = res["by_group"]
            log_figure(plot_group_alarm_rates(metrics["val_clip_by_group"], "Validation clips: alarm rate by group"),
                       "figures/alarm_rate_by_group.png")
            curves["clips"] = (*roc_curve(res["scores"], res["labels"]), res["roc_auc"])
            conf, conf_title = res["confusion"], "validation clips (alarm rule)"
            if "yamnet" in res["anchors"]:
                y = res["anchors"]["yamnet"]
                for k in ("f1", "roc_auc", "false_alarms_per_hour", "onset_to_alarm_s", "recall", "precision"):
                    metrics[f"yamnet_clip_{k}"] = y[k]
                curves["YAMNet clips"] = (*roc_curve(y["scores"], y["labels"]), y["roc_auc"])
        metrics["train_s"] = time.time() - t_start
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        log_figure(_plot_roc(curves), "figures/roc.png")
        log_figure(plot_confusion(np.asarray(conf), ["no cry", "cry"], title=f"Confusion: {conf_title}"),
                   "figures/confusion.png")
        log_figure(plot_losses(history, ["train_loss", "val_loss"], title="cry training"), "figures/loss.png")
        meta = {"metrics": metrics, "history": history, "split": counts, "mlflow_run_id": run_id,
                "git_commit": tracking.git_commit(), "data_root": str(cfg.data.root or "default"),
                "val_dir": str(val_dir) if val_dir else None, "train_config": to_dict(cfg)}
        save_checkpoint(ckpt_path, kind=KIND, model_config=to_dict(model_cfg), state_dict=model.state_dict(),
                        meta=meta)
        mlflow.log_artifact(str(ckpt_path), artifact_path="checkpoint")
    return TrainResult(checkpoint=ckpt_path, run_id=run_id, metrics=metrics, val_dir=val_dir)


__all__ = ["CryTrainConfig", "TrainBudget", "TrainResult", "load_train_config", "train"]
