"""Fuzz targets. Each module defines:

* ``INSTRUMENT``: the packages atheris instruments for coverage (imported inside ``atheris.instrument_imports``);
* ``setup() -> (one_input, expected)``: ``one_input(data: bytes)`` feeds the bytes to the parser; ``expected`` is the
  tuple of the documented rejection errors. Anything else raised is a crash;
* ``seeds() -> dict[str, bytes]``: valid inputs made by the project's own writers plus a few malformed ones
  (``python -m tests.fuzz.run --write-seeds`` saves them under ``tests/fuzz/corpus/<target>/``).

Targets whose parser takes several inputs (a mode, a role) read a selector from the first byte.
"""
from __future__ import annotations

import importlib

NAMES = ("p2p", "qr", "ota_package", "tuf", "recording", "hls", "cloud_http", "scenario_yaml", "tuning_yaml",
         "manifest", "raw")


def load(name: str):
    if name not in NAMES:
        raise SystemExit(f"unknown fuzz target {name!r}; expected one of {', '.join(NAMES)}")
    return importlib.import_module(f"tests.fuzz.targets.{name}")
