"""`camlab eval detector` on a YOLO folder without labels/ warns that every image counts as a negative."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _yolo(root: Path, labels: bool) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("person\n")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "images" / "a.jpg")
    if labels:
        (root / "labels").mkdir()
        (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return root


def test_unlabelled_folders_are_found(tmp_path):
    from camlab.commands.detector import unlabelled_folders

    bare = _yolo(tmp_path / "set" / "bare", labels=False)
    _yolo(tmp_path / "set" / "ok", labels=True)
    assert unlabelled_folders([str(tmp_path / "set")]) == [bare]
    assert unlabelled_folders([str(tmp_path / "set" / "ok"), "datasets/detector_split.json"]) == []


def test_cli_warns_on_a_folder_without_labels(tmp_path):
    bare = _yolo(tmp_path / "bare", labels=False)
    proc = subprocess.run([sys.executable, "-m", "camlab.cli", "eval", "detector", "--model", str(tmp_path / "no.pt"),
                           "--data", str(bare), "--json", str(tmp_path / "m.json")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert f"camlab: warning: {bare}: no labels/ folder" in proc.stderr
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
