"""Every packet parser under hypothesis: random and mutated inputs are rejected with PacketError, never a crash."""
from __future__ import annotations

from pathlib import Path

import pytest

from device_sim.net import fuzz

CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("name", sorted(fuzz.parsers()))
def test_parser_never_crashes(name):
    rep = fuzz.fuzz(cases_per_parser=150, only=[name])
    assert rep["crashes"] == 0, rep["examples"]
    stats = rep["per_parser"][name]
    assert stats["cases"] >= 150 and stats["rejected"] > 0     # the fuzzer really reached the reject paths


def test_corpus_matches_the_current_formats():
    """The committed seed corpus still parses (regenerate with python -m device_sim.net.fuzz --write-corpus)."""
    targets = fuzz.parsers()
    files = sorted(CORPUS.glob("*.bin"))
    assert len(files) >= len(targets)
    for f in files:
        targets[f.name.rsplit("-", 1)[0]](f.read_bytes())
