"""The budget report: latency percentiles per hop, NPU use, memory and flash against plan, event accuracy, RTF.

Writes ``report.json`` (keys below) and ``report.html`` (tables + matplotlib plots embedded as PNG data URIs).

report.json keys
----------------
- ``real_time_factor``: simulated seconds / host wall seconds for the whole run (>= 1: keeps up with real time).
- ``event_latency_p95_ms``: p95 of capture -> event over every AI event (detector and cry).
- ``ai_fps``: detector runs completed per simulated second (excludes gated and dropped frames);
  ``ai_fps_offered``: frames offered to the detector per second while the motion gate was open.
- ``main_stream_fps``, ``main_stream_height``, ``sub_stream_fps``: encoded frames per simulated second / size.
- ``cpu_budget``: {component: core-seconds per simulated second} from ``time.process_time`` around each component
  (includes encoder/ORT worker threads); ``cpu_budget_total`` and ``cpu_cores`` (host cores) beside it.
- ``latency_ms``: {hop: {p50, p95, p99, n}} for ``capture_to_isp``, ``capture_to_encode`` (main),
  ``capture_to_sub_encode``, ``capture_to_ai_result``, ``capture_to_event``, ``cry_window_to_event``.
- ``npu``: utilisation, jobs, dropped per model, queue waits (:mod:`device_sim.hal.npu`).
- ``memory``: rows {component, allocated_bytes, plan_bytes} vs the seed camera's 128 MB plan (MEMORY_PLAN).
- ``flash``: bytes of the bundles' device files (INT8 model + manifest) on the data partition vs the chip profile's ``flash_partition_bytes``.
- ``accuracy``: per class {gt_events, detected, true_positive, false_positive, precision, recall,
  time_to_detect_s_mean/max}, ``false_events_per_hour``, matching rule and ground-truth counts.
- ``audio``: ERLE of the AEC in dB over talk-back periods, speech blocks, Opus bytes.
- ``events``: the emitted events (MIoT shape, :mod:`device_sim.spec.events`); ``config``: run settings.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from camlab.io_utils import atomic_write_json, atomic_write_text

MB = 1 << 20
# The seed camera's RAM plan (128 MB DDR, RV1106G2-class): our reading of its budget by subsystem.
MEMORY_PLAN = {"kernel": 32 * MB, "isp": 28 * MB, "encoder": 30 * MB, "ring_buffer": 16 * MB,
               "ai_tensors": 12 * MB, "audio": 2 * MB, "network": 8 * MB}
assert sum(MEMORY_PLAN.values()) == 128 * MB


def percentiles(values_ms) -> dict:
    v = np.asarray(list(values_ms), np.float64)
    if v.size == 0:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3), "n": int(v.size)}


def event_accuracy(events: list[dict], gt: list, duration_s: float, tolerance_s: float = 1.0) -> dict:
    """Event-level scoring: an event of class c is a true positive when its capture time falls in a ground-truth
    interval of class c (widened by ``tolerance_s`` at the end); each interval counts once (the earliest event);
    further events inside an already matched interval are ``duplicates`` (neither TP nor FP); the rest are FP."""
    classes = sorted({g.label for g in gt} | {e["event"] for e in events})
    per = {}
    total_fp = 0
    for c in classes:
        g = sorted([x for x in gt if x.label == c], key=lambda x: x.start_s)
        ev = sorted([e for e in events if e["event"] == c], key=lambda e: e["capture_time_s"])
        matched: dict[int, float] = {}
        fp = dup = 0
        for e in ev:
            t = e["capture_time_s"]
            hit = [i for i, x in enumerate(g) if x.start_s - 1e-6 <= t <= x.end_s + tolerance_s]
            if not hit:
                fp += 1
            elif all(i in matched for i in hit):
                dup += 1
            else:
                i = next(i for i in hit if i not in matched)
                matched[i] = t - g[i].start_s
        tp = len(matched)
        ttd = list(matched.values())
        total_fp += fp
        per[c] = {"gt_events": len(g), "detected": len(ev), "true_positive": tp, "false_positive": fp,
                  "duplicates": dup,
                  "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                  "recall": round(tp / len(g), 4) if g else None,
                  "time_to_detect_s_mean": round(float(np.mean(ttd)), 3) if ttd else None,
                  "time_to_detect_s_max": round(float(np.max(ttd)), 3) if ttd else None}
    hours = duration_s / 3600.0
    return {"per_class": per, "false_events": total_fp,
            "false_events_per_hour": round(total_fp / hours, 2) if hours > 0 else None,
            "duration_s": duration_s, "tolerance_s": tolerance_s,
            "rule": "TP: capture time inside a GT interval of the class (end + tolerance), once per interval"}


def flash_use(bundle_dirs: list[Path], chip_profile: dict) -> dict:
    """Flash the camera spends on the bundles: their device files (INT8 model + manifest), not the host-side
    FP32 reference or calibration set (``camlab.contract.manifest.device_files``)."""
    from camlab.contract.manifest import MANIFEST_NAME, device_files
    used = 0
    files = {}
    for d in bundle_dirs:
        manifest = json.loads((Path(d) / MANIFEST_NAME).read_text(encoding="utf-8"))
        n = sum((Path(d) / rel).stat().st_size for rel in device_files(manifest))
        files[str(d)] = n
        used += n
    cap = chip_profile.get("flash_partition_bytes")
    return {"bundles": files, "used_bytes": used, "partition_bytes": cap,
            "fraction": round(used / cap, 4) if cap else None, "fits": bool(cap and used <= cap)}


def memory_table(allocated: dict[str, int]) -> list[dict]:
    rows = []
    for k, plan in MEMORY_PLAN.items():
        a = allocated.get(k)
        rows.append({"component": k, "allocated_bytes": a, "plan_bytes": plan,
                     "fraction_of_plan": round(a / plan, 4) if a is not None else None,
                     "note": "" if a is not None else "not simulated (outside device_sim's process)"})
    return rows


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plots(report: dict, series: dict) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = {}
    lat = series.get("latency_ms", {})
    if lat:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        names = [k for k, v in lat.items() if len(v)]
        ax.boxplot([lat[k] for k in names], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=7)
        ax.set_ylabel("ms")
        ax.set_title("latency per hop")
        out["latency"] = _png(fig)
    cpu = report.get("cpu_budget", {})
    if cpu:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.barh(list(cpu), list(cpu.values()))
        ax.axvline(report.get("cpu_cores", 2), color="r", ls="--", label="host cores")
        ax.set_xlabel("core-seconds per second")
        ax.legend()
        ax.set_title("CPU budget per component")
        out["cpu"] = _png(fig)
    tl = series.get("timeline")
    if tl:
        fig, ax = plt.subplots(figsize=(7, 3))
        t = np.asarray(tl["t"])
        ax.plot(t, tl["lux"], label="lux")
        ax.plot(t, tl["exposure_ms"], label="exposure ms")
        ax.plot(t, tl["gain"], label="analog gain")
        ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.step(t, tl["night"], "k:", label="night")
        for e in report.get("events", []):
            if e["service"] == "ai-detection":
                ax.axvline(e["capture_time_s"], color="g", alpha=0.4)
        ax.set_xlabel("s")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("lighting, AE and night mode (green: AI events)")
        out["timeline"] = _png(fig)
    return out


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(report: dict, series: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / "report.json"
    atomic_write_json(jpath, report)
    imgs = plots(report, series)
    head_keys = ["real_time_factor", "event_latency_p95_ms", "ai_fps", "main_stream_fps", "main_stream_height",
                 "sub_stream_fps", "cpu_budget_total"]
    parts = [f"<h1>device_sim budget report: {html.escape(str(report.get('scenario')))}</h1>",
             _table([{k: report.get(k) for k in head_keys}]),
             "<h2>latency (ms)</h2>", _table([{"hop": k, **v} for k, v in report.get("latency_ms", {}).items()]),
             "<h2>CPU budget (core-s/s)</h2>", _table([{"component": k, "core_s_per_s": v}
                                                      for k, v in report.get("cpu_budget", {}).items()]),
             "<h2>NPU</h2>", _table([report.get("npu", {})]),
             "<h2>memory vs 128 MB plan</h2>", _table(report.get("memory", [])),
             "<h2>flash</h2>", _table([{k: v for k, v in report.get("flash", {}).items() if k != "bundles"}]),
             "<h2>event accuracy</h2>",
             _table([{"class": c, **v} for c, v in report.get("accuracy", {}).get("per_class", {}).items()]),
             f"<p>false events per hour: {report.get('accuracy', {}).get('false_events_per_hour')}</p>",
             "<h2>audio</h2>", _table([report.get("audio", {})])]
    for name, uri in imgs.items():
        parts.append(f"<h2>{name}</h2><img alt='{name}' src='{uri}'>")
    parts.append("<h2>events</h2><pre>" + html.escape("\n".join(json.dumps(e) for e in report.get("events", [])))
                 + "</pre>")
    style = "<style>body{font-family:sans-serif;max-width:980px}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style>"
    hpath = out_dir / "report.html"
    atomic_write_text(hpath, f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>"
                      + "\n".join(parts) + "</body></html>\n")
    return jpath, hpath
