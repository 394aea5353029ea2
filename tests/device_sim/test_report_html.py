"""device_sim's report.html reads as a report: human units (MiB, ms, %), bounds beside the figures, flash as one
figure against the partition, no raw JSON, Python reprs or bare byte counts."""
from __future__ import annotations

import re

from device_sim.budgets.report import MEMORY_PLAN, fmt_bytes, memory_table, report_html, write_report

REPORT = {
    "scenario": "porch", "chip": "rv1106", "duration_s": 30.0, "wall_s": 25.0, "real_time_factor": 0.85,
    "event_latency_p95_ms": 17.25, "ai_fps": 14.8, "main_stream_fps": 20.0, "main_stream_width": 1280,
    "main_stream_height": 720, "sub_stream_fps": 15.0, "cpu_budget": {"isp": 0.65, "encode_sub": 0.12},
    "cpu_budget_total": 1.9, "cpu_cores": 2,
    "latency_ms": {"capture_to_event": {"p50": 12.0, "p95": 17.25, "p99": 19.0, "n": 2}},
    "npu": {"chip": "rv1106", "utilisation": 0.0213, "jobs": 563, "submitted": {"detection": 446, "cry": 117},
            "dropped": {}, "queue_wait_ms_max": 1.604, "queue_wait_ms_mean": 0.008, "max_queue": 2},
    "memory": memory_table({"isp": 7142400, "ring_buffer": 4290000}),
    "flash": {"bundles": {"/x/exports/detector/v1": 2294822, "/x/exports/cry/v1": 345407}, "used_bytes": 2640229,
              "partition_bytes": 8388608, "fraction": 0.3147, "fits": True},
    "accuracy": {"per_class": {"person": {"gt_events": 2, "detected": 2, "true_positive": 2, "false_positive": 0,
                                          "duplicates": 0, "precision": 1.0, "recall": 1.0,
                                          "time_to_detect_s_mean": 0.4, "time_to_detect_s_max": 0.5}},
                 "false_events": 0, "false_events_per_hour": 0.0, "rule": "TP: inside a GT interval"},
    "audio": {"erle_db": 19.65, "talkback_s": 2.768, "opus_bytes": 77725, "speech_blocks": 714, "cry_windows": 117,
              "cry_scores": [[0.98, 0.43]]},
    "streams": {"main_bytes": 6854998, "sub_bytes": 1470963, "main_kbps": 1828.0, "sub_kbps": 392.3,
                "snapshots": 0, "clips": []},
    "events": [{"siid": 3, "eiid": 1, "service": "motion-detection", "event": "motion-detected", "area": 0.6,
                "capture_time_s": 0.3, "emit_time_s": 0.3061, "box": [1, 2, 3, 4]}],
    "config": {"main_fps": 20.0, "sub_fps": 15.0},
}


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " | ", page))


def test_binary_prefixes():
    assert fmt_bytes(8388608) == "8 MiB" and fmt_bytes(2640229) == "2.52 MiB" and fmt_bytes(77725) == "75.9 KiB"
    assert fmt_bytes(512) == "512 B" and fmt_bytes(None) == "—"


def test_report_has_units_and_bounds_and_no_raw_data():
    text = _text(report_html(REPORT))
    # bounds beside the figures; a figure outside its bound is marked
    assert "| real-time factor | | 0.85 x | | >= 1 x | | OUTSIDE |" in text.replace("&gt;", ">")
    assert "| capture -> event p95 | | 17.25 ms | | <= 150 ms | | within |" in text.replace("&gt;", ">") \
        .replace("&lt;", "<")
    # flash: one figure, the device files against the partition, in MiB
    assert "2.52 MiB of the 8 MiB data partition (31.5 %): fits" in text
    assert "8.389" not in text and "2640229" not in text and "2294822" not in text and "/x/exports" not in text
    # memory in MiB against the plan, percentages, no bare byte counts
    assert "| isp | | 6.81 MiB | | 28 MiB | | 24.3 % | | within |" in text
    for plan in MEMORY_PLAN.values():
        assert str(plan) not in text
    assert "| precision | | recall |" in text and "| 100 % | | 100 % |" in text
    # no JSON, no Python reprs
    for raw in ("{'", '{"', "[[", "None", "True", "False", "cry_scores", "6854998", "77725"):
        assert raw not in text, raw
    assert "| 0.3 s | | 0.3061 s | | 6.1 ms | | motion-detection | | motion-detected | | area 0.6 |" in text


def test_write_report_files(tmp_path):
    jpath, hpath = write_report(REPORT, {}, tmp_path)
    assert jpath.is_file() and "device_sim budget report: porch" in hpath.read_text()


def test_bounds_handed_in_by_the_caller_replace_the_defaults():
    """device_sim is firmware and imports no workbench budget: the demo hands its bounds in (CameraSettings)."""
    from device_sim.budgets.report import headline_rows

    rep = {"real_time_factor": 1.5, "config": {"report_bounds": [["real_time_factor", ">=", 2.0, "x"]]}}
    row = next(r for r in headline_rows(rep) if r[0] == "real-time factor")
    assert "2" in row[2] and row[3] == "OUTSIDE"
    row = next(r for r in headline_rows({"real_time_factor": 1.5, "config": {}}) if r[0] == "real-time factor")
    assert row[3] == "within"   # the camera's own default bound, >= 1.0
