"""``make bench`` -> ``benchmarks/results/fuzz.json``: the long fuzz run (issue 16).

Every target of ``tests/fuzz`` (atheris / libFuzzer, coverage-guided) for ``CAMLAB_FUZZ_SECONDS`` (default 60) seconds
after its saved corpus, each in its own process with a 10 s per-case timeout, a 2 GiB RSS limit and a 6 GiB RLIMIT_AS.
Per target: cases executed, coverage (libFuzzer ``cov`` edges and ``ft`` features over the instrumented project
modules), new corpus units, crashes / hangs / ooms (a failing input is copied to ``out/fuzz/artifacts/<target>/``).
The inputs found are kept in ``out/fuzz/corpus/<target>/`` (not committed; promote interesting ones to
``tests/fuzz/corpus/``). The short run is ``tests/fuzz/test_fuzz.py`` in ``make test``.
"""
from __future__ import annotations

import os
from pathlib import Path

NAME = "fuzz"
ROOT = Path(__file__).resolve().parents[1]


def run(seconds: float | None = None) -> dict:
    from tests.fuzz.run import run_all
    seconds = float(seconds if seconds is not None else os.environ.get("CAMLAB_FUZZ_SECONDS", 60))
    rep = run_all(seconds, keep_corpus=ROOT / "out" / "fuzz" / "corpus")
    for r in rep["targets"].values():
        r.pop("log_tail", None)
    rep["targets_failed"] = sorted(n for n, r in rep["targets"].items() if r["failed"])
    rep["command"] = "python -m benchmarks.run fuzz  (make bench)"
    return rep
