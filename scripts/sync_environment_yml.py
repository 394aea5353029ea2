"""Regenerate environment.yml from requirements.lock so conda users get the same pins (a test checks they agree)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    pins = [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    lines = [
        "# Conda environment mirroring requirements.lock (regenerate: python scripts/sync_environment_yml.py).",
        "# torch==2.13.0 is the CPU build; pip installs everything so the pins are exactly those of the venv.",
        "name: camlab",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {p}" for p in pins]
    lines.append("      - -e .")
    (ROOT / "environment.yml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
