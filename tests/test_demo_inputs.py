"""`camlab demo` checks every input before the first step: one line, exit 2, no folder, no MLflow run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from camlab.errors import CamlabError

ROOT = Path(__file__).resolve().parents[1]


def _opts(tmp_path, **kw):
    from camlab.demo import SCENARIO, DemoOptions

    return DemoOptions(out_dir=kw.pop("out_dir", tmp_path / "demo"), scenario=kw.pop("scenario", SCENARIO), **kw)


@pytest.mark.parametrize("kw, message", [
    ({"scenario_seconds": -5.0}, "--scenario-seconds must be a number > 0, got -5"),
    ({"scenario_seconds": float("nan")}, "--scenario-seconds must be a number > 0"),
    ({"chip": "z80"}, "unknown chip 'z80'"),
    ({"scenario": "datasets/scenarios/nope.yaml"}, "--scenario datasets/scenarios/nope.yaml: file not found"),
])
def test_bad_inputs_are_refused_before_any_work(tmp_path, monkeypatch, kw, message):
    from camlab.demo import validate_inputs

    monkeypatch.delenv("CAMLAB_DATA", raising=False)
    with pytest.raises(CamlabError, match=message.replace("(", r"\(")):
        validate_inputs(_opts(tmp_path, **kw))
    assert not (tmp_path / "demo").exists()


def test_out_must_be_a_writable_folder(tmp_path, monkeypatch):
    from camlab.demo import validate_inputs

    monkeypatch.delenv("CAMLAB_DATA", raising=False)
    f = tmp_path / "report.html"
    f.write_text("x")
    with pytest.raises(CamlabError, match="exists and is not a folder"):
        validate_inputs(_opts(tmp_path, out_dir=f))
    with pytest.raises(CamlabError, match="is a file, not a folder"):
        validate_inputs(_opts(tmp_path, out_dir=f / "sub"))
    assert validate_inputs(_opts(tmp_path)).checks  # the defaults pass


def test_cli_bad_input_is_one_line_and_leaves_nothing(tmp_path):
    db = tmp_path / "mlruns.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "CAMLAB_MLFLOW_ARTIFACTS": str(tmp_path / "a")}
    env.pop("CAMLAB_DATA", None)
    for args in (["--scenario-seconds", "-5"], ["--chip", "z80"], ["--scenario", "nope.yaml"]):
        proc = subprocess.run([sys.executable, "-m", "camlab.cli", "demo", "--out", str(tmp_path / "demo"), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("camlab: error: ") and len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "demo").exists() and not db.exists()
