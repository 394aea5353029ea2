"""The short fuzz run of ``make test``: every target (atheris, coverage-guided, seeded from tests/fuzz/corpus/)
for a couple of seconds with the per-case timeout and memory limits; 0 crashes, hangs or ooms. The long run is
``make bench`` (benchmarks/bench_fuzz.py -> benchmarks/results/fuzz.json)."""
from __future__ import annotations

import pytest

from tests.fuzz.run import CORPUS, run_target
from tests.fuzz.targets import NAMES, load

SECONDS = 2


def test_every_target_has_a_harness_and_a_seed_corpus():
    assert len(NAMES) == 11
    for name in NAMES:
        mod = load(name)
        assert mod.INSTRUMENT and callable(mod.setup) and callable(mod.seeds)
        assert list((CORPUS / name).glob("seed-*")), f"run: python -m tests.fuzz.run --write-seeds --target {name}"


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_target_short_run_finds_no_crash(name):
    r = run_target(name, SECONDS, timeout_s=10)
    assert not r["failed"], f"{name}: {r['artifacts']}\n{r.get('log_tail', '')}"
    assert r["cases"] > len(list((CORPUS / name).iterdir())), r       # fuzzed past the seeds
    assert r["coverage_edges"] > 0, r                                # instrumentation reached the parser
