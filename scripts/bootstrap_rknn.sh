#!/usr/bin/env bash
# `make rknn`: RKNN-Toolkit2 2.5.0 (Rockchip, PyPI) in its own venv .venv-rknn, the oracle for the rv1106 build.
# The toolkit pins old numpy/onnx/protobuf, so it never shares the project venv. torch comes from this machine's
# local CPU wheel (--no-deps; its small pure-Python deps are installed explicitly). Then a smoke compile runs.
set -euo pipefail
VENV=${RKNN_VENV:-.venv-rknn}
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip wheel
# the toolkit imports pkg_resources, which setuptools>=81 no longer ships
"$VENV/bin/pip" install -q "setuptools<70"
# constraints: the toolkit's own ceilings (numpy<=1.26.4, onnx<=1.18, protobuf<=4.25.4)
"$VENV/bin/pip" install -q --no-deps "torch==2.13.0"
"$VENV/bin/pip" install -q filelock sympy networkx jinja2 fsspec typing-extensions
# rknn-toolkit2 2.5.0 declares torch<=2.4.0; only the local 2.13.0 CPU wheel exists here, so the toolkit goes in
# with --no-deps and its other requirements (from its METADATA) are installed with the toolkit's ceilings.
"$VENV/bin/pip" install -q "numpy<=1.26.4" "onnx>=1.16.1,<=1.18.0" "protobuf>=4.21.6,<=4.25.4" \
  "onnxruntime>=1.17.0,<1.21" "opencv-python-headless>=4.5.5.64,<4.11" "psutil>=5.9.0" "ruamel.yaml>=0.17.21" \
  "scipy>=1.9.3,<1.14" "tqdm>=4.64.1" "fast-histogram>=0.11"
"$VENV/bin/pip" install -q --no-deps "rknn-toolkit2==2.5.0"
"$VENV/bin/python" -c "from rknn.api import RKNN; print('rknn-toolkit2 import ok')"
if [ "${RKNN_SKIP_SMOKE:-0}" != "1" ]; then
  .venv/bin/python -m camlab.deploy.rknn --smoke
fi
