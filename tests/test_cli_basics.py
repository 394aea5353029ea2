"""The bare command prints help, --version prints the version, an incomplete command shows its choices."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import camlab

ROOT = Path(__file__).resolve().parents[1]


def _camlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camlab.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_bare_camlab_prints_help_and_exits_0():
    proc = _camlab()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: camlab") and "demo" in proc.stdout and "Traceback" not in proc.stderr


def test_version():
    proc = _camlab("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"camlab {camlab.__version__}"


def test_a_group_without_its_command_lists_the_choices():
    proc = _camlab("train")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: camlab train") and "detector" in proc.stderr and "cry" in proc.stderr


def test_licence_file_is_the_apache_2_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


def test_a_leaf_command_keeps_its_own_handler():
    from camlab.cli import build_parser

    args = build_parser().parse_args(["train", "detector"])
    assert args.func.__module__ == "camlab.commands.detector"
