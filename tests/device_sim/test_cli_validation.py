"""device_sim's command line refuses impossible numbers with one line before any work (no traceback, no output)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from camlab.errors import CamlabError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag, value", [("--duration", "-2"), ("--ai-fps", "-1"), ("--main-fps", "0"),
                                         ("--sub-fps", "nan"), ("--main-size", "0x-4")])
def test_bad_numbers_are_one_line_errors(tmp_path, flag, value):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "device_sim", "run", "--bundle", str(tmp_path), "--scenario",
                           str(ROOT / "datasets/scenarios/demo_garden.yaml"), "--chip", "rv1106", "--out", str(out),
                           f"{flag}={value}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and flag in proc.stderr.splitlines()[-1]
    assert not out.exists()


def test_library_refuses_a_negative_duration_and_non_positive_rates(tmp_path):
    from device_sim.camera import CameraSettings, run_scenario

    with pytest.raises(CamlabError, match="duration must be > 0 seconds, got -2"):
        run_scenario([str(tmp_path)], ROOT / "datasets/scenarios/demo_garden.yaml", "rv1106", tmp_path / "o",
                     duration_s=-2)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="ai_fps must be > 0"):
        CameraSettings(ai_fps=-1)
