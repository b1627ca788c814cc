#!/usr/bin/env bash
# Installs what anim needs to build and run on Debian/Ubuntu:
#  - the FFmpeg development libraries (ffmpeg-next links Debian's libav*) and libclang (bindgen);
#  - the ONNX Runtime shared library, taken from the `onnxruntime` wheel on PyPI into
#    ~/.local/share/anim/onnxruntime, where anim finds it by itself (see scripts/fetch-ort.sh).
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS="pkg-config libclang-dev clang libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev ffmpeg python3"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if ! python3 -m pip --version >/dev/null 2>&1; then missing="$missing python3-pip"; fi
if [ -n "$missing" ]; then
  echo "==> installing apt packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

ORT_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/anim/onnxruntime"
if [ -n "${ORT_DYLIB_PATH:-}" ] && [ -e "$ORT_DYLIB_PATH" ]; then
  echo "==> ONNX Runtime: using ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
elif ls "$ORT_DIR"/libonnxruntime.so* >/dev/null 2>&1; then
  echo "==> ONNX Runtime: found in $ORT_DIR"
else
  echo "==> ONNX Runtime: fetching the onnxruntime wheel from PyPI"
  scripts/fetch-ort.sh "$ORT_DIR"
fi
