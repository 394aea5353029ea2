"""Every figure in the README's "Measured figures" tables of the checked sections is held by a results JSON."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import readme_figures as rf


def test_readme_table_figures_come_from_results_json():
    missing = rf.missing_figures()
    assert not missing, "README figures no results JSON holds:\n" + "\n".join(missing)
    assert sum(rf.checked_sections().values()) > 0


def test_checker_catches_a_figure_no_json_holds(tmp_path: Path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x.json").write_text(json.dumps({"a": {"fps": 50.43}, "ratio": 0.0416, "n": 1000}))
    readme = tmp_path / "README.md"
    readme.write_text("## Measured figures\n### OTA (x)\n| figure | value |\n|---|---|\n"
                      "| speed 1080p | **50.4 fps**, 4.2 %, 1,000 runs |\n## Data\n")
    assert rf.missing_figures(readme, tmp_path / "r") == []
    readme.write_text(readme.read_text().replace("50.4 fps", "51.9 fps"))
    assert rf.missing_figures(readme, tmp_path / "r") == ["OTA | speed 1080p | 51.9"]
    assert rf.missing_figures(readme, tmp_path / "r", sections=["ISP"]) == []
