"""Every figure in the README's "Measured figures" tables must be a value some ``benchmarks/results/*.json`` holds.

Issue 15 rule: a README number comes from a JSON written by code. This parses the tables (GitHub-flavoured Markdown
pipe tables) under the ``### <section>`` headings listed in :data:`SECTIONS` and, in every cell but the first (the
row label), takes each number as a figure. A figure written with ``d`` decimals matches a JSON number ``v`` when
``round(v, d)`` equals it, or ``round(100 * v, d)`` does (a fraction shown as a percentage). Numbers glued to
letters or ``x`` (``1080p``, ``1920x1080``, ``H.265``) are names, not figures. ``python -m benchmarks.readme_figures``
prints the figures not found and exits 1 when there are any.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
# sections (heading text up to the first space or bracket) whose tables are checked; extend the list to add more
SECTIONS = ["ISP", "device_sim", "Storage", "Network", "OTA", "Detector", "INT8", "Cry"]
_NUM = re.compile(r"(?<![\w.x×])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w.x×])|(?<![\w.x×,])[-−]?\d+(?:\.\d+)?(?![\w.x×,])")


def measured_sections(text: str) -> dict[str, list[str]]:
    """``{heading: lines}`` of the ``###`` sections under ``## Measured figures``."""
    body = text.split("## Measured figures", 1)[1]
    body = re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]
    out: dict[str, list[str]] = {}
    current = None
    for line in body.splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def _section_name(heading: str) -> str:
    return re.split(r"[\s(]", heading, maxsplit=1)[0]


def table_figures(lines: list[str]) -> list[tuple[str, float, int]]:
    """(row label, value, decimals) of every number in a value cell of the pipe tables in ``lines``."""
    figs = []
    for line in lines:
        s = line.strip()
        if not s.startswith("|") or re.fullmatch(r"\|[\s:|-]*\|", s):
            continue
        cells = [c.strip() for c in s.strip("|").split("|")]
        if len(cells) < 2:
            continue
        for cell in cells[1:]:
            for m in _NUM.finditer(cell.replace("**", "")):
                tok = m.group(0).replace("−", "-").replace(",", "")
                dec = len(tok.split(".")[1]) if "." in tok else 0
                figs.append((cells[0], float(tok), dec))
    return figs


def json_numbers(results: Path = RESULTS) -> list[float]:
    """Every finite number in every results JSON (nested dicts and lists walked)."""
    nums: list[float] = []

    def walk(x) -> None:
        if isinstance(x, bool):
            return
        if isinstance(x, (int, float)):
            if math.isfinite(x):
                nums.append(float(x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for p in sorted(Path(results).glob("*.json")):
        walk(json.loads(p.read_text()))
    return nums


def matches(value: float, decimals: int, nums: list[float]) -> bool:
    tol = 0.5 * 10 ** -decimals + 1e-9
    return any(abs(round(v, decimals) - value) < 1e-9 or abs(v - value) < tol * 1e-6
               or abs(round(100 * v, decimals) - value) < 1e-9 for v in nums)


def missing_figures(readme: Path = README, results: Path = RESULTS, sections=SECTIONS) -> list[str]:
    """``"<section> | <row> | <figure>"`` for each table figure of ``sections`` that no results JSON holds."""
    nums = json_numbers(results)
    wanted = set(sections)
    out = []
    for heading, lines in measured_sections(Path(readme).read_text()).items():
        if _section_name(heading) not in wanted:
            continue
        for row, value, dec in table_figures(lines):
            if not matches(value, dec, nums):
                out.append(f"{_section_name(heading)} | {row} | {value:.{dec}f}")
    return out


def checked_sections(readme: Path = README, sections=SECTIONS) -> dict[str, int]:
    """Figures found per checked section (a section without tables checks nothing: 0)."""
    wanted = set(sections)
    return {_section_name(h): len(table_figures(lines))
            for h, lines in measured_sections(Path(readme).read_text()).items() if _section_name(h) in wanted}


if __name__ == "__main__":
    miss = missing_figures()
    print("\n".join(miss) if miss else f"all table figures found: {checked_sections()}")
    sys.exit(1 if miss else 0)
