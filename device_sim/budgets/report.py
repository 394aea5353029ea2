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
- ``flash``: bytes of the bundles' device files (INT8 model + manifest) on the data partition vs the chip profile's
  ``flash_partition_bytes`` (report.html shows it as one figure in MiB against the partition).
- ``accuracy``: per class {gt_events, detected, true_positive, false_positive, precision, recall,
  time_to_detect_s_mean/max}, ``false_events_per_hour``, matching rule and ground-truth counts.
- ``audio``: ERLE of the AEC in dB over talk-back periods, speech blocks, Opus bytes.
- ``events``: the emitted events (MIoT shape, :mod:`device_sim.spec.events`); ``config``: run settings.
- ``pipeline`` (issue 17, device_sim.camera.Camera): ``runner`` (serial | threaded); ``stages``: per element
  {handled, cpu_s, cpu_per_s, busy_s, dropped, queue: {capacity, policy, pushed, dropped, max_depth, mean_depth,
  producer_blocked_s}}; ``drops``: {stage: buffers dropped}; ``queue_depth``: {stage: [[camera clock s, depth]]};
  ``library_cpu_per_s`` (threaded): x265's pool and the process's other threads (numba OpenMP, main thread);
  ``frame_rate_ratio`` (real clock): main frames out over frames in, uncapped;
  the hops ``capture_to_ring`` and ``capture_to_notify`` complete the chains capture -> ISP -> encode -> ring and
  capture -> AI -> event -> notify in ``latency_ms``.
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
    pipe = report.get("pipeline") or {}
    if pipe.get("stages"):
        out["pipeline"] = _pipeline_png(report, pipe)
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


HOP_CHAINS = (("video", ("capture_to_isp", "capture_to_encode", "capture_to_ring")),
              ("events", ("capture_to_ai_result", "capture_to_event", "capture_to_notify")))


def _pipeline_png(report: dict, pipe: dict) -> str:
    """Four panels: queue depth over time, drops per stage, CPU per stage, latency per hop along both chains."""
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(2, 2, figsize=(10, 6.4))
    ax = axs[0][0]
    lines = 0
    for name, pts in (pipe.get("queue_depth") or {}).items():
        if pts:
            t, d = zip(*pts)
            ax.step(t, d, where="post", label=name, lw=0.9)
            lines += 1
    ax.set_xlabel("camera clock (s)")
    ax.set_ylabel("buffers waiting")
    ax.set_title(f"queue depth over time ({pipe.get('runner')} runner)")
    if lines:
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.text(0.5, 0.5, "serial runner: each buffer is handled as it is pushed, no queue builds up",
                ha="center", va="center", fontsize=8, transform=ax.transAxes)
    stages = pipe["stages"]
    names = list(stages)
    ax = axs[0][1]
    drops = [stages[n].get("dropped", 0) for n in names]
    ax.barh(names, drops, color=["#c33" if v else "#999" for v in drops])
    ax.set_xlabel("buffers dropped")
    ax.set_title(f"drops per stage (total {sum(drops)})")
    ax.tick_params(labelsize=7)
    ax = axs[1][0]
    lib = pipe.get("library_cpu_per_s") or {}
    cpu_names = names + [f"({k.replace('_', ' ')})" for k in lib]
    ax.barh(cpu_names, [stages[n].get("cpu_per_s", 0.0) for n in names] + list(lib.values()),
            color=["C0"] * len(names) + ["#aaa"] * len(lib))
    ax.set_xlabel("core-seconds per second")
    ax.set_title("CPU per stage (grey: library threads)")
    ax.tick_params(labelsize=7)
    ax = axs[1][1]
    lat = report.get("latency_ms") or {}
    labels, p50, p95 = [], [], []
    for chain, hops in HOP_CHAINS:
        for h in hops:
            if h in lat and lat[h].get("n"):
                labels.append(f"{chain}: {h.replace('capture_to_', '-> ')}")
                p50.append(lat[h]["p50"])
                p95.append(lat[h]["p95"])
    y = np.arange(len(labels))
    ax.barh(y - 0.2, p50, height=0.4, label="p50")
    ax.barh(y + 0.2, p95, height=0.4, label="p95")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms after capture")
    ax.set_title("latency per hop: capture -> ISP -> encode -> ring; -> AI -> event -> notify")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def pipeline_rows(pipe: dict, duration_s) -> list[list[str]]:
    """[stage, handled, dropped, CPU, queue (capacity, policy), deepest, mean depth] per pipeline stage."""
    rows = []
    for name, s in (pipe.get("stages") or {}).items():
        q = s.get("queue") or {}
        rows.append([name.replace("_", " "), fmt_num(s.get("handled")), fmt_num(s.get("dropped", 0)),
                     fmt_num(s.get("cpu_per_s"), "core-s/s", 3),
                     f"{q['capacity']}, {q['policy'].replace('_', ' ')}" if q else "source",
                     fmt_num(q.get("max_depth")) if q else "—", fmt_num(q.get("mean_depth"), digits=3) if q else "—"])
    return rows


# -- human units ------------------------------------------------------------------------------------------------------
def fmt_bytes(n) -> str:
    """Bytes with a binary prefix: ``8 MiB``, ``2.52 MiB``, ``75.9 KiB``, ``512 B``; ``—`` when unknown."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def fmt_num(v, unit: str = "", digits: int = 4) -> str:
    """A number with its unit (``17.3 ms``), ``—`` when missing; booleans as yes/no."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, (int, float)):
        return "—" if v is None else str(v)
    text = f"{v:.{digits}g}"
    return f"{text} {unit}".strip() if unit else text


def fmt_pct(fraction, digits: int = 3) -> str:
    """A fraction (0-1) as a percentage: ``31.5 %``."""
    return "—" if not isinstance(fraction, (int, float)) else f"{100 * fraction:.{digits}g} %"


def _within(value, op: str, bound) -> str:
    if not isinstance(value, (int, float)) or not isinstance(bound, (int, float)):
        return "—"
    return "within" if (value <= bound if op == "<=" else value >= bound) else "OUTSIDE"


def headline_rows(report: dict) -> list[list[str]]:
    """[figure, value, bound, within/OUTSIDE] for the run's headline figures, bounds beside them."""
    cfg = report.get("config") or {}
    # bounds handed in by whoever runs the camera (the demo passes its budget's device_sim checks), else defaults
    budget = {k: (op, bound, unit) for k, op, bound, unit in cfg.get("report_bounds") or []}
    spec = [("real-time factor", "real_time_factor", "x", budget.get("real_time_factor", (">=", 1.0, "x"))),
            ("capture -> event p95", "event_latency_p95_ms", "ms",
             budget.get("event_latency_p95_ms", ("<=", 150.0, "ms"))),
            ("AI frame rate", "ai_fps", "fps", budget.get("ai_fps", (">=", 10.0, "fps"))),
            ("main stream", "main_stream_fps", "fps", (">=", cfg.get("main_fps"), "fps")),
            ("sub stream", "sub_stream_fps", "fps", (">=", cfg.get("sub_fps"), "fps")),
            ("CPU, all components", "cpu_budget_total", "cores", ("<=", report.get("cpu_cores"), "cores"))]
    rows = []
    for label, key, unit, (op, bound, bunit) in spec:
        value = report.get(key)
        btext = f"{op} {fmt_num(bound, bunit or unit)}" if isinstance(bound, (int, float)) else "—"
        rows.append([label, fmt_num(value, unit), btext, _within(value, op, bound)])
    if report.get("main_stream_height"):
        rows.insert(4, ["main stream size", f"{report.get('main_stream_width', '?')}x{report['main_stream_height']}",
                        "—", "—"])
    return rows


def flash_line(flash: dict) -> str:
    """The one flash figure: the bundles' device files against the data partition."""
    used, cap = flash.get("used_bytes"), flash.get("partition_bytes")
    verdict = "fits" if flash.get("fits") else "DOES NOT FIT"
    return (f"bundles' device files (INT8 model + manifest): {fmt_bytes(used)} of the {fmt_bytes(cap)} data "
            f"partition ({fmt_pct(flash.get('fraction'))}): {verdict}")


def _event_details(e: dict) -> str:
    skip = {"siid", "eiid", "service", "event", "capture_time_s", "emit_time_s"}
    parts = []
    for k, v in e.items():
        if k in skip or isinstance(v, (dict, list)):
            continue
        parts.append(f"{k.replace('_', ' ')} {fmt_num(v) if isinstance(v, (int, float)) else v}")
    return ", ".join(parts)


def _html_table(headers: list[str], rows: list[list]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr" + (" class='out'" if "OUTSIDE" in r or "DOES NOT FIT" in r else "") + ">"
                   + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(report: dict, imgs: dict[str, str] | None = None) -> str:
    """The report as a page a person reads: units on every figure (MiB, ms, %), bounds beside them, no JSON."""
    npu, flash, audio = report.get("npu") or {}, report.get("flash") or {}, report.get("audio") or {}
    acc, streams = report.get("accuracy") or {}, report.get("streams") or {}
    cores = report.get("cpu_cores")
    parts = [f"<h1>device_sim budget report: {html.escape(str(report.get('scenario')))}</h1>",
             f"<p>chip {html.escape(str(report.get('chip')))} · {fmt_num(report.get('duration_s'), 's')} simulated"
             f" · host wall time {fmt_num(report.get('wall_s'), 's')}</p>",
             "<h2>headline figures against their bounds</h2>",
             _html_table(["figure", "value", "bound", "result"], headline_rows(report)),
             "<h2>latency per hop</h2>",
             _html_table(["hop", "p50", "p95", "p99", "samples"],
                         [[k.replace("_", " "), fmt_num(v.get("p50"), "ms"), fmt_num(v.get("p95"), "ms"),
                           fmt_num(v.get("p99"), "ms"), v.get("n", 0)]
                          for k, v in (report.get("latency_ms") or {}).items()]),
             *([f"<h2>pipeline stages ({html.escape(str((report.get('pipeline') or {}).get('runner')))} "
                f"runner)</h2>",
                _html_table(["stage", "buffers handled", "dropped", "CPU", "queue (capacity, when full)",
                             "deepest", "mean depth"], pipeline_rows(report["pipeline"], report.get("duration_s"))),
                f"<p>{html.escape(str(report['pipeline'].get('cpu_method', '')))}"
                + "".join(f"; {html.escape(k.replace('_', ' '))}: {fmt_num(v, 'core-s/s', 3)}"
                          for k, v in (report["pipeline"].get("library_cpu_per_s") or {}).items()) + "</p>"]
              if report.get("pipeline") else []),
             f"<h2>CPU budget ({fmt_num(cores)} cores)</h2>",
             _html_table(["component", "core-seconds per second", "share of the cores"],
                         [[k.replace("_", " "), fmt_num(v, digits=3),
                           fmt_pct(v / cores) if isinstance(cores, (int, float)) and cores else "—"]
                          for k, v in (report.get("cpu_budget") or {}).items()]),
             "<h2>NPU</h2>",
             _html_table(["figure", "value", "bound", "result"], [
                 ["load", fmt_pct(npu.get("utilisation")), "<= 100 %", _within(npu.get("utilisation"), "<=", 1.0)],
                 ["jobs", fmt_num(npu.get("jobs")), "—", "—"],
                 ["submitted per model", ", ".join(f"{k} {v}" for k, v in (npu.get("submitted") or {}).items())
                  or "none", "—", "—"],
                 ["dropped", sum((npu.get("dropped") or {}).values()), "0", _within(
                     sum((npu.get("dropped") or {}).values()), "<=", 0)],
                 ["queue wait mean / max", f"{fmt_num(npu.get('queue_wait_ms_mean'), 'ms')} / "
                  f"{fmt_num(npu.get('queue_wait_ms_max'), 'ms')}", "—", "—"],
                 ["deepest queue", fmt_num(npu.get("max_queue")), "—", "—"]]),
             "<h2>memory against the 128 MiB plan</h2>",
             _html_table(["component", "allocated", "plan (bound)", "used of plan", "result"],
                         [[str(m.get("component")).replace("_", " "), fmt_bytes(m.get("allocated_bytes")),
                           fmt_bytes(m.get("plan_bytes")),
                           fmt_pct(m.get("fraction_of_plan")),
                           _within(m.get("allocated_bytes"), "<=", m.get("plan_bytes")) if m.get("note") == ""
                           else m.get("note")]
                          for m in report.get("memory") or []]),
             "<h2>flash</h2>", f"<p>{html.escape(flash_line(flash))}</p>" if flash else "<p>none</p>",
             "<h2>event accuracy</h2>",
             _html_table(["class", "ground-truth events", "detected", "true positives", "false positives",
                          "duplicates", "precision", "recall", "time to detect, mean", "time to detect, max"],
                         [[c, v.get("gt_events"), v.get("detected"), v.get("true_positive"), v.get("false_positive"),
                           v.get("duplicates"), fmt_pct(v.get("precision")), fmt_pct(v.get("recall")),
                           fmt_num(v.get("time_to_detect_s_mean"), "s"), fmt_num(v.get("time_to_detect_s_max"), "s")]
                          for c, v in (acc.get("per_class") or {}).items()]),
             f"<p>false events per hour: {fmt_num(acc.get('false_events_per_hour'))}; rule: "
             f"{html.escape(str(acc.get('rule', '—')))}</p>",
             "<h2>audio</h2>",
             _html_table(["figure", "value"], [
                 ["AEC echo return loss enhancement (talk-back)", fmt_num(audio.get("erle_db"), "dB")],
                 ["talk-back", fmt_num(audio.get("talkback_s"), "s")],
                 ["speech blocks", fmt_num(audio.get("speech_blocks"))],
                 ["cry windows scored", fmt_num(audio.get("cry_windows"))],
                 ["Opus output", fmt_bytes(audio.get("opus_bytes"))]]) if audio else "",
             "<h2>streams</h2>",
             _html_table(["figure", "value"], [
                 *[[f"{name} stream", f"{fmt_num(streams.get(name + '_kbps'), 'kbit/s')} "
                                      f"({fmt_bytes(streams.get(name + '_bytes'))})"] for name in ("main", "sub")],
                 ["snapshots", fmt_num(streams.get("snapshots"))],
                 ["event clips", len(streams.get("clips") or [])]]) if streams else ""]
    titles = {"latency": "latency per hop (ms)", "cpu": "CPU budget per component (core-seconds per second)",
              "timeline": "lighting, exposure and night mode over time (green: AI events)",
              "pipeline": "pipeline: queue depth over time, drops, CPU per stage, latency per hop"}
    for name, uri in (imgs or {}).items():
        title = titles.get(name, name)
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='{uri}'>")
    parts.append("<h2>events</h2>")
    parts.append(_html_table(["capture time", "emitted", "delay", "service", "event", "details"],
                             [[fmt_num(e.get("capture_time_s"), "s"), fmt_num(e.get("emit_time_s"), "s"),
                               fmt_num(1000 * (e["emit_time_s"] - e["capture_time_s"]), "ms", 3)
                               if isinstance(e.get("emit_time_s"), (int, float))
                               and isinstance(e.get("capture_time_s"), (int, float)) else "—",
                               e.get("service"), e.get("event"), _event_details(e)]
                              for e in report.get("events", [])]))
    parts.append("<p>Every figure in machine-readable form: report.json beside this page; each event as emitted: "
                 "events.jsonl.</p>")
    style = "<style>body{font-family:sans-serif;max-width:980px}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}tr.out td{color:#900;font-weight:600}</style>"
    return (f"<!doctype html><html><head><meta charset='utf-8'>{style}</head><body>" + "\n".join(parts)
            + "</body></html>\n")


def write_report(report: dict, series: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / "report.json"
    atomic_write_json(jpath, report)
    hpath = out_dir / "report.html"
    atomic_write_text(hpath, report_html(report, plots(report, series)))
    return jpath, hpath
