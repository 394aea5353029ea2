"""``make bench-smoke`` runs inside ``make test``: every bench on tiny inputs, keys present, finite, computed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import smoke

ROOT = Path(__file__).resolve().parents[2]


def test_check_flags_missing_nonfinite_and_unmoved_keys():
    assert smoke.check("x", {"a": 1.0}, {"a": 2.0}, ["a"]) == []
    assert len(smoke.check("x", {"a": 1.0}, {"a": 1.0}, ["a"])) == 1
    assert len(smoke.check("x", {"a": float("nan")}, {"a": 2.0}, ["a"])) == 1
    assert len(smoke.check("x", {}, {"a": 2.0}, ["a"])) == 1


@pytest.mark.slow
def test_bench_smoke_passes():
    r = subprocess.run([sys.executable, "-m", "benchmarks.smoke"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
