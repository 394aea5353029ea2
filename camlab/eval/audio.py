"""Cry-detector evaluation: clip metrics, false alarms per hour and cry-onset-to-alarm latency, streamed like the
camera streams its microphone, for a checkpoint, an export bundle (INT8 or FP32) or the YAMNet anchor.

Metrics: accuracy, precision, recall, F1 (van Rijsbergen, "Information Retrieval", 1979) and ROC-AUC as the
Mann-Whitney U statistic (Hanley & McNeil, Radiology 143(1), 1982). A clip's score is the alarm rule's own
statistic (``CryAlarm.clip_score``: the k-th best P(cry) among n consecutive windows), so a clip counts as "cry"
exactly when the device would alarm on it. False alarms: all ``nocry`` audio concatenated in name order and streamed
through the window/hop/alarm logic of the manifest's ``decode`` block. Latency: for every ``cry`` clip a stream of
``noise_s`` seconds of ``nocry`` audio then the cry (the noise continuing under it at ``snr_db``); the onset is the
first 10 ms frame of the cry within 20 dB of its loudest frame; the delay is from onset to the first alarm at or
after it: the mean over streams that alarmed, with the streams that never alarmed counted as misses beside it
(``onset_miss_rate``, the share alarmed within 2 s, the median with misses as infinite delay). Per clip: score,
decision and group (the clip's folder), as CSV (``details_csv``) and per-group alarm rates (``by_group``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from camlab.contract.audio_features import CryAlarm, FeatureConfig, FeatureExtractor, sigmoid, sliding_windows
from camlab.data.audio import AUDIO_EXTS, SAMPLE_RATE, load_audio
from camlab.errors import InputFileError

METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "roc_auc", "false_alarms_per_hour", "onset_to_alarm_s",
               "n_cry", "n_nocry")


class Scorer(Protocol):
    name: str
    features: FeatureConfig     # its window_s / hop_s / sample_rate drive the streaming
    alarm: CryAlarm

    def probabilities(self, windows: np.ndarray) -> np.ndarray: ...


class TorchScorer:
    """A torch cry model (BatchNorm folded or not) behind the contract's features."""

    name = "model"

    def __init__(self, model, features: FeatureConfig, alarm: CryAlarm, batch: int = 256):
        self.model = model.eval()
        self.features = features
        self.alarm = alarm
        self.fx = FeatureExtractor(features)
        self.batch = batch

    def _logits(self, x):
        return self.model(x).reshape(-1)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(windows), self.batch):
                out.append(self._logits(torch.from_numpy(self.fx.batch(windows[i:i + self.batch]))).numpy())
        return sigmoid(np.concatenate(out)) if out else np.zeros(0)


class OnnxScorer:
    """An exported ONNX model (``model.onnx`` INT8 QDQ or ``model_fp32.onnx``) driven by its manifest."""

    name = "bundle"

    def __init__(self, onnx_path: Path, features: FeatureConfig, alarm: CryAlarm):
        from camlab.deploy.quantize import session

        self.session = session(onnx_path)
        self.input_name = self.session.get_inputs()[0].name
        self.features = features
        self.alarm = alarm
        self.fx = FeatureExtractor(features)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(windows))
        for i, w in enumerate(windows):   # the bundle's graph is batch 1, as on the NPU
            out[i] = float(np.asarray(self.session.run(None, {self.input_name: self.fx.model_input(w)})[0]).ravel()[0])
        return sigmoid(out)


# -------------------------------------------------------------------------------------------------------- metrics
def roc_auc(scores, labels) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(allv.size)
    i = 0
    while i < allv.size:           # average ranks over ties
        j = i
        while j + 1 < allv.size and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = 0.5 * (i + j) + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    u = r[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` over all thresholds (descending score)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    tp = np.concatenate([[0], np.cumsum(y[order])])
    fp = np.concatenate([[0], np.cumsum(~y[order])])
    return fp / max(1, (~y).sum()), tp / max(1, y.sum())


def binary_metrics(scores, labels, threshold: float) -> dict:
    """accuracy, precision, recall, f1 at ``threshold`` and threshold-free roc_auc."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / max(1, s.size), "precision": precision, "recall": recall, "f1": f1,
            "roc_auc": roc_auc(s, y), "confusion": [[tn, fp], [fn, tp]]}


# ---------------------------------------------------------------------------------------------------------- data
@dataclass
class EvalSet:
    cry: list[tuple[Path, np.ndarray]]
    nocry: list[tuple[Path, np.ndarray]]
    skipped: list[tuple[Path, str]]


def load_eval_dir(data_dir: str | Path, min_duration_s: float = 0.25) -> EvalSet:
    """Read ``data_dir/cry`` and ``data_dir/nocry`` (any soundfile format and rate) as 16 kHz mono.

    Unreadable, empty, too short (< ``min_duration_s``) or >2-channel files are skipped and listed in ``skipped``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputFileError(f"{root}: evaluation folder not found")
    sets: dict[str, list] = {}
    skipped: list[tuple[Path, str]] = []
    for sub in ("cry", "nocry"):
        folder = root / sub
        if not folder.is_dir():
            raise InputFileError(f"{root}: expected subfolders 'cry/' and 'nocry/'; '{sub}/' is missing")
        items = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
            if path.suffix.lower() not in AUDIO_EXTS:
                skipped.append((path, "not an audio file extension"))
                continue
            try:
                items.append((path, load_audio(path, SAMPLE_RATE, min_duration_s=min_duration_s)))
            except InputFileError as exc:
                skipped.append((path, str(exc)))
        sets[sub] = items
    if not sets["cry"] or not sets["nocry"]:
        raise InputFileError(f"{root}: need at least one readable file in both cry/ ({len(sets['cry'])}) and "
                             f"nocry/ ({len(sets['nocry'])})")
    return EvalSet(sets["cry"], sets["nocry"], skipped)


def cry_onset_s(x: np.ndarray, rate: int = SAMPLE_RATE, rel_db: float = -20.0) -> float:
    """Time of the first 10 ms frame whose RMS is within ``rel_db`` of the loudest frame."""
    hop = rate // 100
    n = len(x) // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(x[: n * hop].reshape(n, hop), dtype=np.float64), axis=1) + 1e-20)
    return float(np.argmax(rms >= rms.max() * 10 ** (rel_db / 20)) * hop / rate)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def onset_streams(data: EvalSet, noise_s: float = 4.0, snr_db: float = 10.0):
    """``[(stream, onset_s)]``: household audio, then each cry over the continuing household audio."""
    bed = np.concatenate([w for _, w in data.nocry])
    rate = SAMPLE_RATE
    streams = []
    pos = 0
    for _, cry in data.cry:
        n_noise = int(noise_s * rate)
        total = n_noise + len(cry)
        idx = (pos + np.arange(total)) % len(bed)
        pos = (pos + total + 7919) % len(bed)
        noise = bed[idx].astype(np.float32)
        active = cry[np.abs(cry) > 1e-4]
        ref = _rms(active) if active.size else _rms(cry)
        nr = _rms(noise[n_noise:]) if total > n_noise else _rms(noise)
        if nr > 1e-6:
            noise = noise * (ref / nr) * 10 ** (-snr_db / 20)
        stream = noise.copy()
        stream[n_noise:] += cry
        peak = np.max(np.abs(stream))
        if peak > 1.0:
            stream /= peak
        streams.append((stream.astype(np.float32), noise_s + cry_onset_s(cry, rate)))
    return streams


# ------------------------------------------------------------------------------------------------------ evaluate
class TeacherHeadScorer(TorchScorer):
    """A diagnostic scorer: the training-only distillation head's estimate of the teacher's (YAMNet's) "Baby cry"
    probability (``forward_aux``, column ``camlab.eval.yamnet.TEACHER_CLASSES`` order), not the deployed output. It
    shows whether what the student learned from the teacher separates sources its cry head confuses."""

    name = "teacher_head"

    def __init__(self, model, features: FeatureConfig, alarm: CryAlarm, column: int = 0, batch: int = 256):
        if not getattr(model, "model_config", None) or not model.model_config.aux_outputs:
            raise ValueError("TeacherHeadScorer needs a model with a distillation head (model.aux_outputs > 0)")
        super().__init__(model, features, alarm, batch)
        self.column = column

    def _logits(self, x):
        return self.model.forward_aux(x)[1][:, self.column]


def _stream_probs(scorer: Scorer, x: np.ndarray, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Window probabilities and end times of a stream, windows cut ``block`` at a time (hours of audio stream
    without holding every window in memory; the windows are exactly :func:`sliding_windows`')."""
    f = scorer.features
    n, hop = f.window_samples, f.hop_samples
    if len(x) < n + block * hop:
        wins, ends = sliding_windows(x, n, hop)
        return scorer.probabilities(wins), ends / f.sample_rate
    x = np.asarray(x, dtype=np.float32)
    starts = np.arange(0, x.size - n + 1, hop)
    probs = [scorer.probabilities(sliding_windows(x[a:a + (block - 1) * hop + n], n, hop)[0])
             for a in starts[::block]]
    return np.concatenate(probs), (starts + n) / f.sample_rate


def fa_rate_upper(n_alarms: int, hours: float, confidence: float = 0.95) -> float | None:
    """One-sided exact Poisson upper bound on the false-alarm rate per hour (Garwood, Biometrika 28, 1936):
    with 0 alarms in ``hours`` the rate can still be ~3/hours at 95 % -- what a short negative stream can resolve."""
    from scipy.stats import chi2

    if hours <= 0:
        return None
    return float(chi2.ppf(confidence, 2 * (n_alarms + 1)) / 2.0 / hours)


def stress_beds(data: EvalSet) -> list[tuple[str, np.ndarray]]:
    """Re-mixes of the held-out no-cry audio only (never training audio): the concatenated stream 12 dB quieter,
    normalised to 0.9 peak, and overlaid on itself at three offsets (two household sounds at once). Not independent
    hours -- the same sources recombined -- so reported apart from the plain false-alarm figure."""
    bed = np.concatenate([w for _, w in data.nocry]).astype(np.float32)
    out = [("quiet_-12dB", bed * np.float32(10 ** (-12 / 20))),
           ("loud_peak0.9", bed * np.float32(0.9 / max(1e-6, float(np.max(np.abs(bed))))))]
    for q in (1, 2, 3):
        mix = bed + np.roll(bed, q * len(bed) // 4)
        out.append((f"overlay_{q}/4", (mix / max(1.0, float(np.max(np.abs(mix))) / 0.99)).astype(np.float32)))
    return out


def stress_false_alarms(scorer: Scorer, data: EvalSet) -> dict:
    """False alarms of ``scorer`` over :func:`stress_beds` (counts, hours, per hour, per variant)."""
    per, n_fa, hours = {}, 0, 0.0
    for name, x in stress_beds(data):
        probs, times = _stream_probs(scorer, x)
        n = len(scorer.alarm.run(probs, times))
        per[name] = n
        n_fa += n
        hours += len(x) / SAMPLE_RATE / 3600.0
    return {"false_alarms": n_fa, "hours": hours, "per_hour": n_fa / hours if hours else None, "by_variant": per}


def score_eval_set(scorer: Scorer, data: EvalSet, noise_s: float = 4.0, snr_db: float = 10.0,
                   progress: bool = False, stress: bool = False) -> dict:
    """All metrics of one scorer on a loaded evaluation set (plus ``confusion``, ``scores``, ``labels``).

    ``details`` carries the false-alarm count, the no-cry hours behind it and the 95 % upper bound of the rate;
    with ``stress`` also :func:`stress_false_alarms`."""
    alarm = scorer.alarm
    scores, labels = [], []
    items = [(w, 1) for _, w in data.cry] + [(w, 0) for _, w in data.nocry]
    it = items
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(items, desc=f"{scorer.name}: clips", leave=False, file=sys.stderr)
    for w, label in it:
        probs, _ = _stream_probs(scorer, w)
        scores.append(alarm.clip_score(probs))
        labels.append(label)
    m = binary_metrics(scores, labels, alarm.threshold)

    bed = np.concatenate([w for _, w in data.nocry])
    probs, times = _stream_probs(scorer, bed)
    n_fa = len(alarm.run(probs, times))
    hours = len(bed) / SAMPLE_RATE / 3600.0

    delays = []
    for stream, onset in onset_streams(data, noise_s, snr_db):
        probs, times = _stream_probs(scorer, stream)
        after = [t for t in alarm.run(probs, times) if t >= onset]
        if after:
            delays.append(after[0] - onset)
    onset = onset_summary(delays, len(data.cry))
    return {
        "accuracy": m["accuracy"], "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
        "roc_auc": m["roc_auc"], "false_alarms_per_hour": n_fa / hours if hours > 0 else None,
        "onset_to_alarm_s": float(np.mean(delays)) if delays else None,
        "n_cry": len(data.cry), "n_nocry": len(data.nocry),
        "confusion": m["confusion"], "scores": scores, "labels": labels,
        "details": {"false_alarms": n_fa, "nocry_hours": hours, "streams": len(data.cry),
                    "false_alarms_per_hour_upper95": fa_rate_upper(n_fa, hours),
                    "stress": stress_false_alarms(scorer, data) if stress else None,
                    "streams_alarmed": len(delays), "threshold": alarm.threshold, **onset,
                    "skipped": [f"{p}: {r}" for p, r in data.skipped]},
    }


def onset_summary(delays, streams: int, limit_s: float = 2.0) -> dict:
    """Onset-to-alarm with misses counted: a stream whose cry never raised an alarm is a miss (not left out of the
    mean). ``onset_miss_rate`` = missed / streams; ``onset_alarm_within_limit`` = share of all streams that alarmed
    within ``limit_s``; ``onset_to_alarm_median_s_misses_inf``: the median with misses as infinite delay."""
    d = np.asarray(delays, dtype=np.float64)
    missed = streams - d.size
    with_miss = np.concatenate([d, np.full(missed, np.inf)])
    return {"onset_missed": int(missed), "onset_miss_rate": missed / streams if streams else None,
            "onset_alarm_within_limit": float(np.sum(d <= limit_s) / streams) if streams else None,
            "onset_limit_s": limit_s,
            "onset_to_alarm_median_s_misses_inf": float(np.median(with_miss)) if streams else None}


def clip_group(path: Path, data_dir: Path) -> str:
    """A clip's group for per-group figures: its folder relative to the evaluation folder (``nocry/esc50``,
    ``cry/donateacry_hungry``; ``nocry`` for files directly in it)."""
    try:
        return Path(path).parent.relative_to(Path(data_dir)).as_posix()
    except ValueError:
        return Path(path).parent.name


def clip_rows(result: dict, data: EvalSet, data_dir: Path) -> list[dict]:
    """Per-clip rows of a full result: file, group, label, score (the alarm rule's statistic) and decision."""
    th = result["details"]["threshold"]
    paths = [p for p, _ in data.cry] + [p for p, _ in data.nocry]
    return [{"file": str(Path(p).relative_to(data_dir)) if Path(p).is_relative_to(data_dir) else str(p),
             "group": clip_group(p, data_dir), "label": int(lab), "score": float(sc), "decision": int(sc >= th)}
            for p, lab, sc in zip(paths, result["labels"], result["scores"])]


def group_summary(rows: list[dict]) -> dict:
    """``{group: {"clips", "label", "alarms", "alarm_rate"}}``: for no-cry groups the alarm rate is the false-alarm
    share of that group, for cry groups the recall."""
    out: dict = {}
    for r in rows:
        g = out.setdefault(r["group"], {"clips": 0, "label": r["label"], "alarms": 0})
        g["clips"] += 1
        g["alarms"] += r["decision"]
    for g in out.values():
        g["alarm_rate"] = g["alarms"] / g["clips"]
    return dict(sorted(out.items()))


def write_details_csv(path: str | Path, rows: list[dict], anchor_rows: list[dict] | None = None) -> Path:
    """The per-clip table as CSV (``file,group,label,score,decision`` [``,yamnet_score,yamnet_decision``])."""
    import csv

    from camlab.io_utils import atomic_write_text
    import io

    buf = io.StringIO()
    cols = ["file", "group", "label", "score", "decision"] + (["yamnet_score", "yamnet_decision"] if anchor_rows
                                                              else [])
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for i, r in enumerate(rows):
        row = [r["file"], r["group"], r["label"], f"{r['score']:.6f}", r["decision"]]
        if anchor_rows:
            row += [f"{anchor_rows[i]['score']:.6f}", anchor_rows[i]["decision"]]
        w.writerow(row)
    atomic_write_text(Path(path), buf.getvalue())
    return Path(path)


FA_KEYS = ("false_alarms", "nocry_hours", "false_alarms_per_hour_upper95")
ONSET_KEYS = ("onset_missed", "onset_miss_rate", "onset_alarm_within_limit", "onset_to_alarm_median_s_misses_inf")


def false_alarm_note(n_alarms: int, hours: float, upper95: float | None) -> str:
    """One sentence stating what the false-alarm figure can resolve (exposure and the 95 % Poisson upper bound)."""
    if not hours or upper95 is None:
        return "no no-cry audio streamed: false-alarm rate not measured"
    return (f"{n_alarms} false alarm(s) in {hours:.4f} h ({hours * 3600:.0f} s) of no-cry audio streamed: "
            f"{n_alarms / hours:.1f}/h measured; with {n_alarms} event(s) in that exposure the true rate is below "
            f"{upper95:.1f}/h at 95 % confidence (exact Poisson; 0 events in T h -> 3.0/T per h), so a "
            f"<= 1/h target needs >= {3.0:.0f} h of no-cry audio without an alarm to be shown")


def public(result: dict) -> dict:
    """The JSON keys of the eval contract (no curves), plus the false-alarm exposure beside the rate:
    ``false_alarms`` (count), ``nocry_hours``, ``false_alarms_per_hour_upper95`` and ``false_alarm_note``."""
    out = {k: result[k] for k in METRIC_KEYS}
    d = result.get("details") or {}
    if "nocry_hours" in d:
        out.update({k: d[k] for k in FA_KEYS})
        out["false_alarm_note"] = false_alarm_note(d["false_alarms"], d["nocry_hours"],
                                                   d["false_alarms_per_hour_upper95"])
    out.update({k: d[k] for k in ONSET_KEYS if k in d})
    return out


def as_scorer(model, alarm: CryAlarm | None = None) -> Scorer:
    """A scorer from a torch model (with ``model_config``), a checkpoint path, a bundle dir or a scorer."""
    if hasattr(model, "probabilities"):
        return model
    if isinstance(model, (str, Path)):
        p = Path(model)
        if p.is_dir():
            return bundle_scorer(p)
        from camlab.models.cry import load_checkpoint
        model, _ = load_checkpoint(p)
    cfg = getattr(model, "model_config", None)
    if cfg is None:
        raise InputFileError("evaluate: model has no model_config (build it with camlab.models.cry.build_model)")
    d = cfg.decode
    alarm = alarm or CryAlarm(threshold=d.threshold, k=d.k, n=d.n, refractory_s=d.refractory_s,
                              hop_s=cfg.features.hop_s)
    return TorchScorer(model, cfg.features, alarm)


def bundle_scorer(bundle_dir: str | Path, variant: str = "int8") -> OnnxScorer:
    from camlab.contract.manifest import load_bundle

    bundle = load_bundle(bundle_dir, verify=True)
    if bundle.task != "cry":
        raise InputFileError(f"{bundle_dir}: bundle is a '{bundle.task}' model, expected 'cry'")
    features = FeatureConfig.from_manifest(bundle.features, f"{bundle_dir}/manifest.json 'features'")
    spec = bundle.input
    if float(spec["mean"]) != features.mean or float(spec["std"]) != features.std:
        raise InputFileError(f"{bundle_dir}/manifest.json: 'inputs[0].mean/std' differ from 'features.mean/std'")
    return OnnxScorer(bundle.model_path(variant), features, CryAlarm.from_decode(bundle.decode))


def evaluate(model, data_dir: str | Path, *, anchors: bool = True, noise_s: float = 4.0, snr_db: float = 10.0,
             progress: bool = False, full: bool = False, stress: bool = False,
             details_csv: str | Path | None = None) -> dict:
    """Evaluate a cry model (torch module, checkpoint path, bundle dir or scorer) on ``data_dir/{cry,nocry}``.

    Returns the eval JSON dict (``METRIC_KEYS`` + ``by_group`` + ``anchors: {"yamnet": {...}}`` when ``anchors``);
    with ``full`` also ``confusion``, ``scores``, ``labels`` and ``details`` per scorer. ``details_csv``: write each
    clip's score, decision and group (its folder) there (with YAMNet's beside when ``anchors``).
    """
    data = load_eval_dir(data_dir)
    root = Path(data_dir)
    res = score_eval_set(as_scorer(model), data, noise_s, snr_db, progress, stress)
    rows = clip_rows(res, data, root)
    out = res if full else public(res)
    out["by_group"] = group_summary(rows)
    out["anchors"] = {}
    y_rows = None
    if anchors:
        from camlab.eval.yamnet import default_scorer

        y = score_eval_set(default_scorer(), data, noise_s, snr_db, progress, stress)
        y_rows = clip_rows(y, data, root)
        out["anchors"]["yamnet"] = y if full else public(y)
        out["anchors"]["yamnet"]["by_group"] = group_summary(y_rows)
    if details_csv:
        write_details_csv(details_csv, rows, y_rows)
    if data.skipped:
        print(f"camlab: skipped {len(data.skipped)} file(s): " +
              "; ".join(f"{p.name} ({r})" for p, r in data.skipped[:5]), file=sys.stderr)
    return out


def evaluate_bundle(bundle_dir: str | Path, data_dir: str | Path, variant: str = "int8", *, anchors: bool = False,
                    full: bool = False) -> dict:
    """Evaluate an export bundle's ``model.onnx`` (``int8``) or ``model_fp32.onnx`` (``fp32``) as the camera runs
    it (features and alarm logic from the manifest)."""
    return evaluate(bundle_scorer(bundle_dir, variant), data_dir, anchors=anchors, full=full)


# ------------------------------------------------------------------------------------- long false-alarm stream
def long_household_stream(data: EvalSet, min_hours: float = 3.0, seed: int = 0) -> tuple[list, dict]:
    """``([(variant name, 16 kHz wave)], summary)``: the held-out no-cry audio concatenated once as recorded, then
    re-mixed copies (speed 0.9/1.1 by resampling, gain -12/+6 dB, synthetic rooms RT60 0.3-0.9 s, and
    combinations) until at least ``min_hours`` in all. ``summary`` says how much is unique audio and how much is
    re-mixed (re-mixes are the same recordings, not independent hours)."""
    from camlab.data.audio import _limit, resample, synthetic_rir
    from scipy.signal import oaconvolve

    bed = np.concatenate([w for _, w in data.nocry]).astype(np.float32)
    rate = SAMPLE_RATE
    unique_h = len(bed) / rate / 3600.0
    if unique_h <= 0:
        raise InputFileError("no no-cry audio for the long false-alarm stream")
    rng = np.random.default_rng(seed)
    recipes = [("speed0.9", 0.9, 0.0, None), ("speed1.1", 1.1, 0.0, None), ("gain-12dB", 1.0, -12.0, None),
               ("gain+6dB", 1.0, 6.0, None), ("room0.5s", 1.0, 0.0, 0.5), ("speed0.95_room0.8s", 0.95, -6.0, 0.8),
               ("speed1.05_room0.3s", 1.05, 3.0, 0.3), ("room0.9s_gain-6dB", 1.0, -6.0, 0.9)]
    out = [("original", bed)]
    total = unique_h
    i = 0
    while total < min_hours:
        name, speed, gain_db, rt60 = recipes[i % len(recipes)]
        x = bed if speed == 1.0 else resample(bed, int(round(rate * speed)), rate)
        if rt60:
            x = oaconvolve(x, synthetic_rir(rate, rt60, rng))[: len(x)].astype(np.float32)
            x = x * (_rms_arr(bed) / max(1e-9, _rms_arr(x)))
        x = _limit(x * np.float32(10 ** (gain_db / 20)), 0.99)
        out.append((f"{name}#{i // len(recipes)}" if i >= len(recipes) else name, x))
        total += len(x) / rate / 3600.0
        i += 1
    summary = {"unique_hours": unique_h, "remixed_hours": total - unique_h, "total_hours": total,
               "remixed_share": (total - unique_h) / total, "variants": [n for n, _ in out],
               "clips": len(data.nocry)}
    return out, summary


def _rms_arr(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def long_stream_false_alarms(scorer: Scorer, variants: list, summary: dict) -> dict:
    """False alarms of ``scorer`` over each variant streamed on its own (alarm state reset between variants):
    count, per hour, the exact Poisson 95 % upper bound, and the same for the unique (original) audio alone."""
    per, n_fa, hours = {}, 0, 0.0
    for name, x in variants:
        p, t = _stream_probs(scorer, x)
        per[name] = len(scorer.alarm.run(p, t))
        n_fa += per[name]
        hours += len(x) / SAMPLE_RATE / 3600.0
    u = summary["unique_hours"]
    return {**summary, "false_alarms": n_fa, "hours": hours, "per_hour": n_fa / hours,
            "per_hour_upper95": fa_rate_upper(n_fa, hours), "by_variant": per,
            "unique_only": {"false_alarms": per["original"], "hours": u, "per_hour": per["original"] / u,
                            "per_hour_upper95": fa_rate_upper(per["original"], u)}}


# ---------------------------------------------------------------------------------- a whole source held out
def held_out_source_false_alarms(scorers: dict[str, Scorer], groups: dict[str, list[Path]], *,
                                 chunk_s: float = 900.0, gap_s: float = 0.5, progress: bool = False) -> dict:
    """False alarms on a source no training or calibration ever saw (leave-one-source-out for the false-alarm rate),
    for every scorer on the same audio: per group, its files as recorded (16 kHz mono, ``gap_s`` of silence between
    files) are streamed in chunks of about ``chunk_s`` (alarm state reset between chunks; the audio is never held
    whole), and each alarm is attributed to the file playing when it fires. Unreadable or too-short files are listed
    as skipped. Returns ``{scorer: {group: {files, hours, false_alarms, per_hour, per_hour_upper95, alarm_files,
    skipped}}}``."""
    out: dict = {k: {} for k in scorers}
    for name, files in groups.items():
        alarms: dict[str, list[str]] = {k: [] for k in scorers}
        seconds, skipped, n_files = 0.0, [], 0
        buf: list[np.ndarray] = []
        spans: list[tuple[float, str]] = []      # (start second within the chunk, file)
        pos = 0.0

        def flush() -> None:
            nonlocal buf, spans, pos
            if buf:
                x = np.concatenate(buf)
                starts = [a for a, _ in spans]
                for key, scorer in scorers.items():
                    p, t = _stream_probs(scorer, x)
                    for at in scorer.alarm.run(p, t):
                        alarms[key].append(spans[max(0, int(np.searchsorted(starts, at, side="right")) - 1)][1])
            buf, spans, pos = [], [], 0.0

        it = files
        if progress:
            from tqdm import tqdm
            it = tqdm(files, desc=f"held-out {name}", disable=None, mininterval=5.0)
        for f in it:
            try:
                x = load_audio(f, SAMPLE_RATE, min_duration_s=0.25)
            except InputFileError as exc:
                skipped.append(str(exc))
                continue
            n_files += 1
            seconds += len(x) / SAMPLE_RATE
            spans.append((pos, str(f)))
            buf += [x, np.zeros(int(gap_s * SAMPLE_RATE), np.float32)]
            pos += len(x) / SAMPLE_RATE + gap_s
            if pos >= chunk_s:
                flush()
        flush()
        hours = seconds / 3600.0
        for key in scorers:
            n = len(alarms[key])
            out[key][name] = {"files": n_files, "hours": hours, "false_alarms": n,
                              "per_hour": n / hours if hours else None,
                              "per_hour_upper95": fa_rate_upper(n, hours) if hours else None,
                              "alarm_files": sorted(set(alarms[key])), "skipped": skipped}
    return out

def recall_at_precision(scores, labels, precision: float) -> dict:
    """The clip threshold with the highest recall among those reaching at least ``precision`` (comparison at equal
    precision; chosen on the set it is reported on, so an oracle figure for both sides)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    best = {"threshold": None, "precision": None, "recall": 0.0, "f1": 0.0}
    for th in np.unique(s):
        m = binary_metrics(s, y, th)
        if m["precision"] >= precision - 1e-12 and m["recall"] > best["recall"]:
            best = {"threshold": float(th), "precision": m["precision"], "recall": m["recall"], "f1": m["f1"]}
    return best


def metrics_from_probs(probs: dict, alarm: CryAlarm, limit_s: float = 2.0) -> dict:
    """Every clip/stream metric of one alarm rule from :func:`stream_probabilities` output (no re-scoring)."""
    scores = [alarm.clip_score(p) for p, _ in probs["clips"]]
    labels = [lab for _, lab in probs["clips"]]
    m = binary_metrics(scores, labels, alarm.threshold)
    n_fa = len(alarm.run(*probs["nocry_stream"]))
    delays = []
    for p, t, onset in probs["onsets"]:
        after = [a for a in alarm.run(p, t) if a >= onset]
        if after:
            delays.append(after[0] - onset)
    h = probs["nocry_hours"]
    return {**{k: m[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "confusion")},
            "false_alarms": n_fa, "nocry_hours": h, "false_alarms_per_hour": n_fa / h if h else None,
            "false_alarms_per_hour_upper95": fa_rate_upper(n_fa, h),
            "onset_to_alarm_s": float(np.mean(delays)) if delays else None,
            **onset_summary(delays, len(probs["onsets"]), limit_s),
            "decode": {"threshold": alarm.threshold, "k": alarm.k, "n": alarm.n}, "scores": scores, "labels": labels}


# ------------------------------------------------------------------------------------------ operating-point sweep
def clip_probabilities(scorer: Scorer, data: EvalSet) -> list[tuple[np.ndarray, int]]:
    """``(window probabilities, label)`` of every clip, each streamed alone (cries first)."""
    return [(_stream_probs(scorer, w)[0], 1) for _, w in data.cry] + \
           [(_stream_probs(scorer, w)[0], 0) for _, w in data.nocry]


def clip_roc_auc(scorer: Scorer, data: EvalSet) -> float | None:
    """Threshold-free clip ROC-AUC of the scorer's k-of-n clip score (no stream, no operating point)."""
    clips = clip_probabilities(scorer, data)
    return roc_auc([scorer.alarm.clip_score(p) for p, _ in clips], [lab for _, lab in clips])


def stream_probabilities(scorer: Scorer, data: EvalSet, noise_s: float = 4.0, snr_db: float = 10.0) -> dict:
    """Window probabilities of every clip, of the no-cry stream and of the onset streams (computed once, for
    re-running alarm rules cheaply)."""
    clips = clip_probabilities(scorer, data)
    bed = np.concatenate([w for _, w in data.nocry])
    fa = _stream_probs(scorer, bed)
    onsets = [(*_stream_probs(scorer, s), onset) for s, onset in onset_streams(data, noise_s, snr_db)]
    return {"clips": clips, "nocry_stream": fa, "nocry_hours": len(bed) / SAMPLE_RATE / 3600.0, "onsets": onsets}


def apply_rule(probs: dict, alarm: CryAlarm) -> dict:
    """Clip F1/recall/precision, false alarms per hour and mean onset-to-alarm for one alarm rule (the sweep's view
    of :func:`metrics_from_probs`)."""
    m = metrics_from_probs(probs, alarm)
    return {"f1": m["f1"], "recall": m["recall"], "precision": m["precision"],
            "false_alarms_per_hour": m["false_alarms_per_hour"], "onset_to_alarm_s": m["onset_to_alarm_s"],
            "streams_alarmed": len(probs["onsets"]) - m["onset_missed"], "streams": len(probs["onsets"])}


def operating_point_rows(probs: dict, hop_s: float, *, thresholds=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                         rules=((2, 3), (3, 4), (3, 3)), refractory_s: float = 10.0) -> list[dict]:
    """:func:`apply_rule` for every (k, n) rule and threshold of the grid: one row each."""
    return [{"threshold": th, "k": k, "n": n,
             **apply_rule(probs, CryAlarm(threshold=th, k=k, n=n, refractory_s=refractory_s, hop_s=hop_s))}
            for k, n in rules for th in thresholds]


def pick_operating_point(rows: list[dict], *, max_fa_per_hour: float = 1.0, max_latency_s: float = 1.6,
                         f1_slack: float = 0.01) -> dict:
    """Among rows meeting the false-alarm and latency limits: of those within ``f1_slack`` of the best clip F1, the
    strictest: highest teacher gate (rows from gated streams carry ``teacher_gate``), then highest threshold, then
    largest k/n; fewest false alarms when none meets them. Meant for the training split: validation stays untouched."""
    def strictest(cands):   # within f1_slack of the best F1, the strictest rule: margin for unseen negatives
        top = max(r["f1"] for r in cands)
        return max((r for r in cands if r["f1"] >= top - f1_slack),
                   key=lambda r: (r.get("teacher_gate", 0.0), r["threshold"], r["k"] / r["n"], r["f1"],
                                  -r["false_alarms_per_hour"]))

    ok = [r for r in rows if r["false_alarms_per_hour"] is not None and r["false_alarms_per_hour"] <= max_fa_per_hour
          and r["onset_to_alarm_s"] is not None and r["onset_to_alarm_s"] <= max_latency_s]
    if ok:
        return strictest(ok)
    # none meets both: the fewest false alarms among rules still within the latency limit (if any), ties broken
    # the same way (strictest within f1_slack), not by grid order
    timely = [r for r in rows if r["onset_to_alarm_s"] is not None and r["onset_to_alarm_s"] <= max_latency_s
              and r["false_alarms_per_hour"] is not None] or [r for r in rows if r["false_alarms_per_hour"] is not None]
    if not timely:
        return rows[0]
    low = min(r["false_alarms_per_hour"] for r in timely)
    return strictest([r for r in timely if r["false_alarms_per_hour"] == low])


def choose_operating_point(probs: dict, hop_s: float, *, max_fa_per_hour: float = 1.0, max_latency_s: float = 1.6,
                           thresholds=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95), rules=((2, 3), (3, 4), (3, 3)),
                           refractory_s: float = 10.0, f1_slack: float = 0.01) -> tuple[dict, list[dict]]:
    """Pick (threshold, k, n) on one model's streams (:func:`operating_point_rows` then
    :func:`pick_operating_point`); returns the pick and every row."""
    rows = operating_point_rows(probs, hop_s, thresholds=thresholds, rules=rules, refractory_s=refractory_s)
    return pick_operating_point(rows, max_fa_per_hour=max_fa_per_hour, max_latency_s=max_latency_s,
                                f1_slack=f1_slack), rows
