#!/usr/bin/env bash
# Create the project venv from the exact pins in requirements.lock, then install camlab itself (editable).
# torch==2.13.0 is the CPU build pip finds on this machine's disk (pip's find-links); never a CUDA build.
set -euo pipefail
VENV=${1:-.venv}
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip wheel setuptools
"$VENV/bin/pip" install -q -r requirements.lock
"$VENV/bin/pip" install -q --no-deps -e .
# Third-party anchor models fetched at install time only (never from a hub at run time).
bash scripts/fetch_anchors.sh "$VENV"
