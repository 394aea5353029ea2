#!/usr/bin/env bash
# Debian packages the tests and the demo need (real broker, browser, NAT tools). Installs only what is missing.
# --data adds the sound sources only the benchmarks read (~300 MB): tuxpaint-stamps-default (GPL-2) and hedgewars-data
# (sounds GFDL-1.3), held out of every cry recipe: the cry benchmark's never-heard sources; it implies --train-audio.
# --train-audio adds the game/desktop sound effects the release cry recipe trains on as negatives (~500 MB download;
# camlab/data/packaged_audio.py lists them with their licences; used for training only, never redistributed).
# --train-audio also adds the Wesnoth soundtrack (wesnoth-1.16-music, GPL-2+, 2.1 h of orchestral music, 153 MB) that the
# release cry recipe (cry_music) reads in place (camlab.data.audio.MUSIC_NEGATIVES).
set -uo pipefail
PKGS=(mosquitto chromium iptables iproute2 libspeexdsp1
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav
  asterisk-core-sounds-ru-wav asterisk-moh-opsound-wav)
TRAIN_AUDIO=(supertux-data colobot-common-sounds extremetuxracer-data frozen-bubble-data sound-theme-freedesktop
  warzone2100-data gcompris-qt-data wesnoth-1.16-music)
[ "${1:-}" = "--train-audio" ] && PKGS+=("${TRAIN_AUDIO[@]}")
[ "${1:-}" = "--data" ] && PKGS+=(tuxpaint-stamps-default hedgewars-data "${TRAIN_AUDIO[@]}")
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || { echo "warning: could not install ${missing[*]}; tests that need them will say so" >&2; exit 0; }
# The Debian mosquitto package starts a system broker on :1883; tests start their own on a free port.
systemctl disable --now mosquitto >/dev/null 2>&1 || service mosquitto stop >/dev/null 2>&1 || true
exit 0
