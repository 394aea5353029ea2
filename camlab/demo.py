"""``make demo``: the main job end to end, in one MLflow parent run, ending in one HTML budget report.

raw frames -> ISP (contact sheet of stages) -> train the detector and the cry model (demo budgets) -> INT8 export
bundles for the chip -> validate (checklist; RKNN build when ``make rknn`` has been run) -> device_sim on a shipped
scenario -> ``report.html`` with pass/fail against an editable budget YAML (camlab/configs/budget.yaml).

Data: the embedded slice ``datasets/demo`` unless ``CAMLAB_DATA`` is set (then the full data). ``--smoke`` shrinks
every budget to seconds (used by the end-to-end test); its figures are not meaningful and the report says so.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from camlab import settings, tracking
from camlab.budget import evaluate, load_budget, verdict, verdict_line
from camlab.budget import mlflow_metrics as budget_metrics
from camlab.errors import CamlabError
from camlab.io_utils import atomic_write_json
from camlab.report_html import Section, figure_png, write_report

SCENARIO = "datasets/scenarios/demo_garden.yaml"          # built from the embedded slice only
FULL_DATA_SCENARIO = "datasets/scenarios/porch_day_night.yaml"  # with CAMLAB_DATA: images the models never saw
DEMO_RAW = ("raw/DSC_1339_768x512_rggb.raw", dict(width=768, height=512, bits=14, pattern="RGGB",
                                                   black_level=600, white_level=15520,
                                                   wb_gains=(1.949, 1.0, 1.344)))


@dataclass
class DemoOptions:
    out_dir: Path
    chip: str = "rv1106"
    budget: Path | None = None
    scenario: str = SCENARIO
    smoke: bool = False
    detector_config: str = "detector_demo"
    cry_config: str = "cry_demo"
    scenario_seconds: float | None = None
    # The measured CPU budget (benchmarks/results/device_sim.json) shows 1080p20 H.265 + ISP does not fit 2 cores, so
    # the demo camera runs the fallback: a 1280x720 main stream, its encoder beside the ISP.
    main_size: tuple[int, int] = (1280, 720)


@dataclass
class DemoResult:
    report: Path
    results_json: Path
    run_id: str
    passed: bool
    outputs: dict[str, str] = field(default_factory=dict)
    budget_line: str = ""   # ``budget: PASS|FAIL (...)``: each failing check and its reason


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _step(name: str, results: dict, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    _say(f"{name} ...")
    value = fn()
    dt = time.perf_counter() - t0
    results.setdefault("timings_s", {})[name] = round(dt, 1)
    _say(f"{name} done in {dt:.1f} s")
    return value


# -- 1. ISP ---------------------------------------------------------------------------------------------------------
def run_isp(out: Path) -> tuple[dict, Section]:
    """The real raw frame through the device tuning, stage by stage; a contact sheet of the taps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from camlab.isp.pipeline import Pipeline, load_tuning
    from camlab.sensor.raw_io import read_headerless

    rel, meta = DEMO_RAW
    root = _data_root()
    path = root / rel
    if not path.is_file():
        path = settings.demo_data_root() / rel
    frame = read_headerless(path, width=meta["width"], height=meta["height"], bits=meta["bits"],
                            pattern=meta["pattern"])
    frame = _with_levels(frame, meta)
    pipe = Pipeline(load_tuning("sc3336_day"))
    res = pipe.run(frame, taps=True, rgb=True)
    taps = {k: v for k, v in res.taps.items() if isinstance(v, np.ndarray)}
    names = list(taps)[:12]
    cols = 4
    rows = max(1, (len(names) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for i, (ax, name) in enumerate(zip(np.atleast_1d(axes).ravel(), names), 1):
        ax.imshow(_displayable(taps[name]), cmap="gray" if taps[name].ndim == 2 else None)
        ax.set_title(f"{i}. {tap_title(name)}", fontsize=11)
    sheet = figure_png(fig)
    (out / "isp_contact_sheet.png").write_bytes(sheet)
    fig, ax = plt.subplots(figsize=(6, 3))
    stages = list(res.timings_ms)
    ax.barh(stages, [res.timings_ms[s] for s in stages])
    ax.set_xlabel("ms (reference path, 768x512)")
    timing_png = figure_png(fig)
    sec = Section("ISP: raw -> NV12, stage by stage",
                  f"{path.name} (768x512, 14-bit RGGB, real Nikon raw crop) through the sc3336_day tuning. "
                  "Each tile is a Pipeline tap, numbered in pipeline order (raw tiles shown as the Bayer mosaic, "
                  "grey; Y and UV planes grey).",
                  figures=[("contact sheet of ISP stages", sheet), ("per-stage time", timing_png)])
    return {"frame": path.name, "stage_ms": res.timings_ms, "stages": names}, sec


ISP_TAP_TITLES = {
    "blc": "black level removed (raw)", "dpc": "defect pixels fixed (raw)", "lsc": "lens shading fixed (raw)",
    "wb": "white balance (raw)", "demosaic": "demosaic (camera RGB)", "ccm": "colour matrix (sRGB linear)",
    "tone": "gamma + tone curve (RGB)", "nr2d_y": "noise reduction (Y)", "nr2d_uv": "noise reduction (U of UV)",
    "sharpen_y": "sharpened (Y)", "main_y": "main stream (Y)", "sub_y": "sub stream (Y)",
}


def tap_title(name: str) -> str:
    """A Pipeline tap's name as a tile title a person can read (``nr2d_y`` -> ``noise reduction (Y)``)."""
    return ISP_TAP_TITLES.get(name, name.replace("_", " "))


def _with_levels(frame, meta):
    import dataclasses

    return dataclasses.replace(frame, black_level=float(meta["black_level"]), white_level=float(meta["white_level"]),
                               wb_gains=tuple(meta["wb_gains"]))


def _displayable(img: np.ndarray) -> np.ndarray:
    a = img.astype(np.float32)
    if a.ndim == 3 and a.shape[2] == 2:  # chroma plane (U, V): show U
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[2] > 3:
        a = a[..., :3]
    lo, hi = np.percentile(a, 1), np.percentile(a, 99.5)
    return np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)


def _data_root() -> Path:
    return settings.data_root()


# -- 2. training ----------------------------------------------------------------------------------------------------
def _history_plot(history: list[dict], keys: tuple[str, ...], title: str) -> bytes | None:
    import matplotlib.pyplot as plt

    rows = [h for h in history if isinstance(h, dict)]
    present = [k for k in keys if any(k in h for h in rows)]
    if not present:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    for k in present:
        xs = [h.get("epoch", i) for i, h in enumerate(rows) if k in h]
        ax.plot(xs, [h[k] for h in rows if k in h], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return figure_png(fig)


PLOT_CAPTIONS = {"pr_curves.png": "precision-recall per class (IoU 0.5, from MLflow)",
                 "confusion_matrix.png": "confusion matrix (from MLflow)",
                 "confusion.png": "confusion matrix (from MLflow)", "roc.png": "ROC curve (from MLflow)",
                 "losses.png": "losses (from MLflow)", "loss.png": "loss (from MLflow)",
                 "alarm_rate_by_group.png": "cry alarm rate per clip group: which sounds fool the model (from MLflow)"}


def mlflow_plots(run_id: str | None, folders: tuple[str, ...] = ("plots", "figures")) -> list[tuple[str, bytes]]:
    """The PNG plots a training run logged to MLflow (PR curves, ROC, confusion matrix, losses), to embed in the
    report beside its tables. A run without them (or no run) gives an empty list, never an error."""
    if not run_id:
        return []
    import tempfile

    from mlflow.tracking import MlflowClient

    tracking.configure()
    client = MlflowClient()
    figs = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for folder in folders:
                for art in client.list_artifacts(run_id, folder):
                    if art.is_dir or not art.path.endswith(".png"):
                        continue
                    local = Path(client.download_artifacts(run_id, art.path, tmp))
                    name = Path(art.path).name
                    figs.append((PLOT_CAPTIONS.get(name, f"{Path(name).stem.replace('_', ' ')} (from MLflow)"),
                                 local.read_bytes()))
    except Exception as exc:  # a missing store or run must not lose the report
        _say(f"MLflow plots of run {run_id} not embedded: {type(exc).__name__}: {exc}")
    return figs


def train_detector(opts: DemoOptions, out: Path) -> tuple[dict, Section]:
    from camlab.data.splits import DEFAULT_FOLDERS, write_split
    from camlab.train.detector import load_train_config, train

    # the split is built (seeded, by source image) from the detection folders this data root has: the demo slice
    # holds a subset of them (no COCO images: their licences are mixed)
    folders = [f for f in DEFAULT_FOLDERS if (_data_root() / f).is_dir()]
    if not folders:
        raise CamlabError(f"{_data_root()}: none of the detection folders {', '.join(DEFAULT_FOLDERS)} exist")
    manifest = out / "detector_split.json"
    write_split(manifest, folders=folders, seed=0, val_fraction=0.2)
    os.environ["CAMLAB_DETECTOR_SPLIT"] = str(manifest)  # calibration and FP32-vs-INT8 eval use the same split
    overrides: dict[str, Any] = {"out_dir": str(out / "detector"), "resume": None,
                                 "data": {"manifest": str(manifest)}}
    if opts.smoke:
        overrides.update({"eval_hog": False, "optim": {"epochs": 1, "max_steps": 3, "batch_size": 4},
                          "render": {"enabled": True, "variants": 1}})
        overrides["data"].update({"max_train_images": 12, "max_val_images": 8})
    cfg = load_train_config(opts.detector_config, overrides=overrides)
    res = train(cfg)
    classes = (res.eval or {}).get("classes", {})
    # AP, recall, precision and FP rate in percent everywhere in the report (the INT8 drop is in points of it)
    rows = [(c, pct(v.get("ap50")), pct(v.get("ap50_95")), pct(v.get("presence_recall")),
             pct(v.get("presence_precision")), pct(v.get("fp_rate")), v.get("n_images"), v.get("n_boxes"))
            for c, v in classes.items()]
    hog = (res.eval or {}).get("anchors", {}).get("hog_person")
    if hog:
        rows.append(("HOG person (anchor)", pct(hog.get("ap50")), pct(hog.get("ap50_95")),
                     pct(hog.get("presence_recall")), pct(hog.get("presence_precision")), pct(hog.get("fp_rate")),
                     hog.get("n_images"), hog.get("n_boxes")))
    curve = _history_plot(res.history, ("loss", "train_loss", "val_loss", "map50", "mAP50"), "detector training")
    sec = Section("Detector training (demo budget)",
                  f"Validation split counts: {json.dumps(res.counts.get('val', res.counts)) if res.counts else 'n/a'}. "
                  "Demo budget: figures are far below the full-budget release model (make models).",
                  figures=([("training curves", curve)] if curve else []) + mlflow_plots(res.run_id),
                  tables=[("validation metrics (checkpoint, FP32)",
                           ["class", "AP50 (%)", "AP50:95 (%)", "presence recall (%)", "presence precision (%)",
                            "FP rate (%)", "images", "boxes"], rows)])
    return {"checkpoint": str(res.checkpoint), "run_id": res.run_id, "metrics": res.metrics, "eval": res.eval,
            "counts": res.counts}, sec


def train_cry(opts: DemoOptions, out: Path) -> tuple[dict, Section]:
    from camlab.train.cry import load_train_config, train

    overrides: dict[str, Any] = {"output_dir": str(out / "cry")}
    if opts.smoke:
        overrides["train"] = {"epochs": 1, "windows_per_epoch": 128, "batch_size": 32, "val_windows": 64}
    cfg = load_train_config(opts.cry_config, overrides=overrides)
    res = train(cfg)
    m = res.metrics or {}
    keys = ("accuracy", "precision", "recall", "f1", "roc_auc", "false_alarms_per_hour", "onset_to_alarm_s",
            "n_cry", "n_nocry")
    as_pct = {"accuracy", "precision", "recall", "f1", "roc_auc"}
    rows = [(f"{k} (%)" if k in as_pct else k,
             pct(m.get(f"val_clip_{k}", m.get(k))) if k in as_pct else m.get(f"val_clip_{k}", m.get(k)))
            for k in keys if f"val_clip_{k}" in m or k in m]
    hist = m.get("history") if isinstance(m.get("history"), list) else []
    curve = _history_plot(hist, ("loss", "train_loss", "val_loss", "val_f1", "f1"), "cry training")
    sec = Section("Cry detector training (demo budget)", "Validation split by recording UUID.",
                  figures=([("training curves", curve)] if curve else []) + mlflow_plots(res.run_id),
                  tables=[("validation metrics (checkpoint, FP32)", ["metric", "value"], rows)])
    return {"checkpoint": str(res.checkpoint), "run_id": res.run_id, "metrics": _jsonable(m)}, sec


# -- 3. export + validate -------------------------------------------------------------------------------------------
def export_and_validate(opts: DemoOptions, out: Path, checkpoints: dict[str, str]) -> tuple[dict, Section]:
    from camlab.contract.manifest import device_files, load_bundle
    from camlab.deploy.chips import load_chip
    from camlab.deploy.export import export_checkpoint
    from camlab.deploy.validate import validate_bundle

    chip = load_chip(opts.chip)
    results: dict[str, Any] = {}
    rows, fig_rows = [], []
    total_flash = 0
    for kind, ckpt in checkpoints.items():
        bundle = export_checkpoint(ckpt, chip=opts.chip, out_dir=out / "exports",
                                   calib_count=16 if opts.smoke else None, stage="demo")
        manifest = load_bundle(bundle).manifest if hasattr(load_bundle(bundle), "manifest") else \
            json.loads((bundle / "manifest.json").read_text())
        rep = validate_bundle(bundle, opts.chip)
        violations = [v.__dict__ if hasattr(v, "__dict__") else v for v in getattr(rep, "violations", [])]
        cost_all = manifest.get("cost") or {}
        cost = {**cost_all, **(cost_all.get("per_chip", {}).get(opts.chip, {}))}
        metrics = manifest.get("metrics", {})
        drop = _metric_drop(kind, metrics)
        # what the camera stores: the device files (INT8 model + manifest), as device_sim's flash figure counts them
        flash = sum((bundle / rel).stat().st_size for rel in device_files(manifest))
        total_flash += flash
        entry = {"bundle": str(bundle), "violations": len(violations), "violation_list": violations[:20],
                 "npu_latency_ms_est": _first(cost, "npu_latency_ms"),
                 "latency_source": cost.get("source"),
                 "peak_activation_mb": _mb(_first(cost, "peak_activation_bytes")),
                 "int8_metric_drop": drop, "fp32_metric": _task_metric(metrics, "fp32"),
                 "fidelity": _fidelity(kind, bundle, metrics),
                 "flash_bytes": flash, "metrics": _jsonable(metrics), "cost": cost}
        results[kind] = entry
        rows.append((kind, entry["npu_latency_ms_est"], entry["peak_activation_mb"], drop, len(violations),
                     mib(flash)))
        fig_rows.append((kind, metrics))
    # one flash figure everywhere: the bundles' device files in MiB against the data partition in MiB
    results["flash_bytes"] = total_flash
    results["flash_mib"] = mib(total_flash)
    results["chip"] = {"name": opts.chip, "flash_partition_bytes": getattr(chip, "flash_partition_bytes", None),
                       "flash_data_mib": mib(getattr(chip, "flash_partition_bytes", None))}
    rknn_dir = settings.project_root() / ".venv-rknn"
    results["rknn"] = "ran (see manifest oracle fields)" if rknn_dir.is_dir() else \
        "skipped: .venv-rknn not installed (run `make rknn`)"
    sec = Section(f"INT8 export for {opts.chip}",
                  f"QDQ INT8 bundles validated against the {opts.chip} checklist. RKNN oracle: {results['rknn']}.",
                  figures=[(f"FP32 vs INT8 ({k})", p) for k, p in
                           ((k, _fp32_int8_plot(k, m)) for k, m in fig_rows) if p],
                  tables=[("bundles", ["model", "NPU latency est. (ms)", "peak activations (MB)",
                                       "INT8 drop (percentage points)", "violations",
                                       f"flash: device files (MiB, of {results['chip']['flash_data_mib']} MiB)"],
                           rows),
                          ("FP32 vs INT8 agreement, measured in this run (camlab/deploy/fidelity.py)",
                           ["model", "output cosine (min)", "FP32 / INT8 detections", "detection agreement",
                            "strict (no score tolerance)", "presence decisions equal"],
                           [_fidelity_row(k, results[k].get("fidelity") or {}) for k in checkpoints])])
    return results, sec


def _fidelity_row(kind: str, fid: dict) -> tuple:
    dets = f"{fid['detections_fp32']} / {fid['detections_int8']}" if "detections_fp32" in fid else None
    return (kind, fid.get("output_cosine_min"), dets, fid.get("detection_agreement"),
            fid.get("detection_agreement_strict"), fid.get("presence_agreement"))


def _task_metric(metrics: dict, variant: str) -> float | None:
    """The manifest's task metric (mAP50 or F1, points 0-100) of ``variant`` (fp32 or int8)."""
    value = (metrics.get(variant) or {}).get(metrics.get("task_metric", ""))
    return float(value) if isinstance(value, (int, float)) else None


def _fidelity(kind: str, bundle: Path, metrics: dict) -> dict:
    """FP32 vs INT8 agreement of the bundle's two models, measured in this run (camlab.deploy.fidelity).

    Detector: outputs, detections and presence decisions on the same validation images as the mAP50 evaluation.
    Cry: the per-output cosine the export measured on held-out training-domain windows."""
    if kind == "detector":
        from camlab.deploy.export import detection_eval_dirs
        from camlab.deploy.fidelity import detector_fidelity

        return detector_fidelity(bundle, detection_eval_dirs())
    cos = metrics.get("output_cosine") or {}
    values = [float(v) for v in cos.values() if isinstance(v, (int, float))]
    return {"output_cosine": cos, "output_cosine_min": min(values) if values else None,
            "measured_on": "held-out calibration-domain windows (export step)"}


def _first(d: dict, *keys: str):
    for k in keys:
        if isinstance(d, dict) and isinstance(d.get(k), (int, float)):
            return d[k]
    return None


def pct(v):
    """A fraction (0-1) as percent, 2 decimals; None stays None."""
    return round(100.0 * v, 2) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def mib(v):
    """Bytes -> MiB (2^20), 3 decimals; None stays None."""
    return round(v / 2**20, 3) if isinstance(v, (int, float)) else None


def _mb(v):
    return round(v / 1e6, 3) if isinstance(v, (int, float)) else None


def _metric_drop(kind: str, metrics: dict) -> float | None:
    """FP32 minus INT8 on the task metric, in points (0-100): mAP50 for the detector, F1 for the cry model."""
    if isinstance(metrics.get("int8_metric_drop"), (int, float)):
        return float(metrics["int8_metric_drop"])
    fp32, int8 = metrics.get("fp32", {}), metrics.get("int8", {})
    key = "map50" if kind == "detector" else "f1"
    a, b = _metric_value(fp32, key), _metric_value(int8, key)
    return round(100.0 * (a - b), 3) if a is not None and b is not None else None


def _metric_value(block: dict, key: str) -> float | None:
    if not isinstance(block, dict):
        return None
    if isinstance(block.get(key), (int, float)):
        return float(block[key])
    if key == "map50" and isinstance(block.get("classes"), dict):
        aps = [v.get("ap50") for v in block["classes"].values() if isinstance(v.get("ap50"), (int, float))]
        return float(np.mean(aps)) if aps else None
    return None


def _fp32_int8_plot(kind: str, metrics: dict) -> bytes | None:
    import matplotlib.pyplot as plt

    fp32, int8 = metrics.get("fp32", {}), metrics.get("int8", {})
    keys = [k for k in sorted(set(fp32) & set(int8)) if isinstance(fp32.get(k), (int, float))
            and isinstance(int8.get(k), (int, float))][:8]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    x = np.arange(len(keys))
    ax.bar(x - 0.2, [fp32[k] for k in keys], 0.4, label="FP32")
    ax.bar(x + 0.2, [int8[k] for k in keys], 0.4, label="INT8")
    ax.set_xticks(x, keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_title(f"{kind}: FP32 vs INT8 (same split, %)")
    ax.legend()
    return figure_png(fig)


# -- 4. device_sim --------------------------------------------------------------------------------------------------
def _device_report_bounds() -> tuple[tuple[str, str, float, str], ...]:
    """The budget's device_sim checks as (figure, op, bound, unit) rows for device_sim's report.html."""
    from camlab.budget import load_budget

    rows = []
    for c in load_budget().checks:
        if c.metric.startswith("device_sim.") and (c.max is not None or c.min is not None):
            op, bound = ("<=", c.max) if c.max is not None else (">=", c.min)
            rows.append((c.metric.split(".", 1)[1], op, float(bound), c.unit))
    return tuple(rows)


def _scenario_in_this_process(bundles: list[str], scenario: str, chip: str, out_dir: str, data_root: str,
                              duration_s: float | None, main_size: tuple[int, int]) -> dict:
    """Worker of :func:`run_device` (module level so a spawned process can import it)."""
    import sys

    from device_sim.camera import CameraSettings, run_scenario

    camera = CameraSettings(main_size=main_size, venc_async=True, report_bounds=_device_report_bounds())
    report = run_scenario(bundles, scenario, chip, out_dir, data_root=data_root, duration_s=duration_s,
                          settings=camera)
    report["host_process"] = {"pid": os.getpid(), "torch_loaded": "torch" in sys.modules}
    return _jsonable(report)


def run_device(opts: DemoOptions, out: Path, bundles: list[str]) -> tuple[dict, Section]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    scenario = settings.project_root() / opts.scenario
    # A fresh process, like the firmware: the training steps left torch's OpenMP pool in this one, and sharing the
    # process with it cost the camera ~20 % more CPU per simulated second (its real-time factor fell below 1).
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        report = pool.submit(_scenario_in_this_process, bundles, str(scenario), opts.chip, str(out / "device_sim"),
                             str(_data_root()), opts.scenario_seconds, tuple(opts.main_size)).result()
    labels = {"real_time_factor": "real-time factor (x)", "event_latency_p95_ms": "capture -> event p95 (ms)",
              "ai_fps": "AI frame rate (fps)", "main_stream_fps": "main stream (fps)",
              "main_stream_height": "main stream height (px)", "sub_stream_fps": "sub stream (fps)"}
    rows = [(label, report.get(k)) for k, label in labels.items()]
    figures = _device_plots(report)
    sec = Section("device_sim: the simulated camera", f"Scenario {opts.scenario} on the {opts.chip} NPU model. "
                  f"Full device report: {out / 'device_sim' / 'report.html'}.",
                  figures=figures, tables=[("headline figures", ["figure", "value"], rows)])
    if isinstance(report.get("accuracy"), dict):
        acc = report["accuracy"]
        per = acc.get("per_class", acc)
        arow = [(c, v.get("gt_events"), v.get("true_positive"), v.get("false_positive"), pct(v.get("precision")),
                 pct(v.get("recall")), v.get("time_to_detect_s_mean"))
                for c, v in per.items() if isinstance(v, dict)]
        sec.tables.append((f"event-level accuracy vs ground truth (false events per hour, all classes: "
                           f"{acc.get('false_events_per_hour')})",
                           ["class", "ground-truth events", "true positives", "false positives", "precision (%)",
                            "recall (%)", "time to detect, mean (s)"], arow))
    return _jsonable(report), sec


def _device_plots(report: dict) -> list[tuple[str, bytes]]:
    """Per-stage latency percentiles, CPU budget, memory vs the 128 MB plan, NPU load and flash vs the chip."""
    import matplotlib.pyplot as plt

    figs = []
    lat = report.get("latency_ms") or {}
    if lat:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = list(lat)
        x = np.arange(len(names))
        for i, q in enumerate(("p50", "p95", "p99")):
            ax.bar(x + (i - 1) * 0.27, [lat[n].get(q) or 0 for n in names], 0.27, label=q)
        ax.set_xticks(x, [n.replace("capture_to_", "capture->") for n in names], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("ms")
        ax.axhline(150, color="r", ls="--", lw=1, label="event budget 150 ms")
        ax.legend(fontsize=7)
        ax.set_title("per-stage latency")
        figs.append(("per-stage latency p50/p95/p99", figure_png(fig)))
    cpu = report.get("cpu_budget") or {}
    if cpu:
        fig, ax = plt.subplots(figsize=(6, 3))
        items = sorted(cpu.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items])
        ax.axvline(report.get("cpu_cores", 2), color="r", ls="--", lw=1, label="cores available")
        ax.set_xlabel("core-seconds per second of video")
        ax.legend(fontsize=7)
        ax.set_title("CPU budget (measured)")
        figs.append(("CPU budget per component", figure_png(fig)))
    mem = [m for m in report.get("memory") or [] if isinstance(m, dict)]
    if mem:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = [m["component"] for m in mem]
        ax.barh(names, [(m.get("plan_bytes") or 0) / 2**20 for m in mem], color="#ddd", label="plan (128 MB camera)")
        ax.barh(names, [(m.get("allocated_bytes") or 0) / 2**20 for m in mem], color="C0", label="allocated")
        ax.set_xlabel("MiB")
        ax.legend(fontsize=7)
        ax.set_title("memory: allocated vs plan")
        figs.append(("memory budget", figure_png(fig)))
    npu, flash = report.get("npu") or {}, report.get("flash") or {}
    if npu or flash:
        fig, ax = plt.subplots(figsize=(5, 2.5))
        labels, used = [], []
        if isinstance(npu.get("utilisation"), (int, float)):
            labels.append(f"NPU load ({npu.get('chip', '')})")
            used.append(100 * npu["utilisation"])
        if isinstance(flash.get("fraction"), (int, float)):
            labels.append("flash data partition")
            used.append(100 * flash["fraction"])
        ax.barh(labels, [100] * len(labels), color="#eee")
        ax.barh(labels, used, color="C1")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of budget")
        ax.set_title("NPU load and flash use")
        figs.append(("NPU load and flash vs the chip", figure_png(fig)))
    return figs


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: str(o)))


# -- the whole job --------------------------------------------------------------------------------------------------
def _demo_data_root() -> Path:
    """What the demo reads: ``CAMLAB_DATA`` when set, else the embedded slice."""
    return settings.data_root() if os.environ.get("CAMLAB_DATA") else settings.demo_data_root()


def _writable_folder(out: Path) -> None:
    """``out`` is a folder or can become one (no file in the way, the nearest existing parent writable)."""
    if out.exists() and not out.is_dir():
        raise CamlabError(f"--out {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CamlabError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CamlabError(f"--out {out}: {existing} is not writable")


def validate_inputs(opts: DemoOptions) -> Any:
    """Every input checked before the first step (nothing written, no MLflow run); returns the loaded budget.

    Bad input raises :class:`CamlabError` with one line naming the option: ``--scenario-seconds`` must be a finite
    number > 0, ``--scenario`` a readable scenario whose files exist under the data root, ``--chip`` a known chip
    profile, ``--budget`` a valid budget YAML, ``--out`` a folder that can be written."""
    import math

    from camlab.deploy.chips import load_chip

    if opts.scenario_seconds is not None and not (math.isfinite(opts.scenario_seconds)
                                                  and opts.scenario_seconds > 0):
        raise CamlabError(f"--scenario-seconds must be a number > 0, got {opts.scenario_seconds:g}")
    budget = load_budget(opts.budget)
    opts.chip = opts.chip or budget.chip
    load_chip(opts.chip)
    scenario = settings.project_root() / opts.scenario
    if not scenario.is_file():
        raise CamlabError(f"--scenario {opts.scenario}: file not found ({scenario})")
    from device_sim import scenario as scn

    sc = scn.load_scenario(scenario)
    scn.validate(sc, _demo_data_root(), f"--scenario {opts.scenario}")
    _writable_folder(Path(opts.out_dir).resolve())
    return budget


def run_demo(opts: DemoOptions) -> DemoResult:
    budget = validate_inputs(opts)
    out = Path(opts.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    chip_name = opts.chip
    using = "full data at " + str(settings.data_root()) if os.environ.get("CAMLAB_DATA") else \
        "embedded demo slice datasets/demo"
    if not os.environ.get("CAMLAB_DATA"):
        os.environ["CAMLAB_DATA"] = str(settings.demo_data_root())
    os.environ.setdefault("CAMLAB_CACHE", str(out / "cache"))
    _say(f"data: {using}; outputs: {out}")
    results: dict[str, Any] = {"data": using, "chip": chip_name, "smoke": opts.smoke}
    sections: list[Section] = []
    with tracking.run("demo", run_name="demo-smoke" if opts.smoke else "demo",
                      tags={"git_commit": tracking.git_commit(), "data": using}) as parent:
        import mlflow

        results["mlflow_run_id"] = parent.info.run_id
        results["isp"], sec = _step("ISP on the real raw frame", results, lambda: run_isp(out))
        sections.append(sec)
        results["detector"], sec = _step("train detector (demo budget)", results, lambda: train_detector(opts, out))
        sections.append(sec)
        results["cry"], sec = _step("train cry model (demo budget)", results, lambda: train_cry(opts, out))
        sections.append(sec)
        ckpts = {"detector": results["detector"]["checkpoint"], "cry": results["cry"]["checkpoint"]}
        results["export"], sec = _step(f"INT8 export + validate for {chip_name}", results,
                                       lambda: export_and_validate(opts, out, ckpts))
        sections.append(sec)
        bundles = [results["export"]["detector"]["bundle"], results["export"]["cry"]["bundle"]]
        results["device_sim"], sec = _step("device_sim scenario", results, lambda: run_device(opts, out, bundles))
        sections.append(sec)

        chip_profile = {"flash_data_mib": results["export"]["chip"]["flash_data_mib"]}
        checks = evaluate(budget, results, chip_profile)
        budget_rows = [(c.name, c.metric, c.value, c.bound, c.unit, c.reason, c.status) for c in checks]
        results["budget"] = [c.__dict__ for c in checks]
        results["budget_verdict"] = verdict(checks)
        results["budget_line"] = verdict_line(checks)
        results["budget_passed"] = results["budget_verdict"] == "PASS"
        timing_rows = [(k, v) for k, v in results["timings_s"].items()]
        sections.append(Section("Where the time went", tables=[("demo steps", ["step", "seconds"], timing_rows)]))
        results_json = out / "results.json"
        atomic_write_json(results_json, _jsonable(results))
        subtitle = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · chip {chip_name} · {using} · "
                    f"git {tracking.git_commit()[:10]} · MLflow run {parent.info.run_id}"
                    + (" · SMOKE RUN: budgets shrunk to seconds, figures not meaningful" if opts.smoke else ""))
        report = write_report(out / "report.html", "camlab demo: budget report", subtitle, budget_rows, sections)
        mlflow.log_params({"chip": chip_name, "smoke": opts.smoke, "data": using[:250]})
        mlflow.log_metrics(budget_metrics(checks))   # budget.<check>.pass / .value / .assessed
        flat = {k: v for k, v in {
            "rtf": results["device_sim"].get("real_time_factor"),
            "event_latency_p95_ms": results["device_sim"].get("event_latency_p95_ms"),
            "detector_int8_drop": results["export"]["detector"].get("int8_metric_drop"),
            "cry_int8_drop": results["export"]["cry"].get("int8_metric_drop")}.items()
            if isinstance(v, (int, float))}
        mlflow.log_metrics(flat)
        mlflow.log_artifact(str(report))
        mlflow.log_artifact(str(results_json))
        mlflow.log_artifact(str(out / "isp_contact_sheet.png"))
        if (out / "device_sim").is_dir():  # the camera's own report (report.json/.html, events.jsonl)
            mlflow.log_artifacts(str(out / "device_sim"), artifact_path="device_sim")
        mlflow.set_tag("budget", results["budget_verdict"])
        run_id = parent.info.run_id
    outputs = {"report": str(report), "results": str(results_json), "device_report": str(out / "device_sim"),
               "bundles": str(out / "exports"), "mlflow": f"{settings.mlflow_tracking_uri()} (run {run_id})"}
    return DemoResult(report, results_json, run_id, results["budget_passed"], outputs, results["budget_line"])


def main(out_dir: str | Path | None = None, smoke: bool = False, budget: str | None = None,
         chip: str = "rv1106", scenario: str | None = None, scenario_seconds: float | None = None) -> int:
    if scenario is None:
        scenario = FULL_DATA_SCENARIO if os.environ.get("CAMLAB_DATA") else SCENARIO
    opts = DemoOptions(out_dir=Path(out_dir) if out_dir else settings.project_root() / "out" / "demo", chip=chip,
                       budget=Path(budget) if budget else None, smoke=smoke, scenario=scenario,
                       scenario_seconds=scenario_seconds)
    t0 = time.perf_counter()
    res = run_demo(opts)
    print("\n=== camlab demo finished in %.1f min ===" % ((time.perf_counter() - t0) / 60))
    print(res.budget_line)
    for k, v in res.outputs.items():
        print(f"  {k:>13}: {v}")
    print("  open the MLflow UI with `make mlflow`, the report in a browser.")
    return 0
