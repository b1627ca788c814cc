#!/usr/bin/env bash
# Peak memory (max RSS, /usr/bin/time -v) against the frame count: a 512x512 2D preview at
# 250, 1000 and 2000 frames, and a 64x64 tiny-model render at 50, 150 and 300 frames.
# Usage: scripts/bench_memory.sh [BIN]   (default target/release/anim)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/anim}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
peak() { # prints max RSS in MiB and seconds of the command
  /usr/bin/time -v "$@" 2> "$WORK/time.txt" > /dev/null
  awk -F: '/Maximum resident/ {rss=$2} /Elapsed/ {t=$0} END {printf "%.1f MiB", rss/1024}' "$WORK/time.txt"
  grep -o 'Elapsed (wall clock) time.*' "$WORK/time.txt" | sed 's/.*: / /'
}
for n in 250 1000 2000; do
  cat > "$WORK/p$n.toml" <<TOML
[image]
width = 512
height = 512
[animation]
max_frames = $n
[motion]
zoom = "0:(1.01)"
angle = "0:(0.5)"
[prompts]
0 = "x"
TOML
  printf 'preview 512x512 %5d frames: ' "$n"
  peak "$BIN" preview "$WORK/p$n.toml" --out "$WORK/out-p$n" --no-video -q
  rm -rf "$WORK/out-p$n"
done
for n in 50 150 300; do
  cat > "$WORK/r$n.toml" <<TOML
[image]
width = 64
height = 64
[animation]
max_frames = $n
[generation]
seed = 5
steps = 4
[motion]
zoom = "0:(1.02)"
[prompts]
0 = "a lake"
[model]
folder = "$PWD/models/tiny-sd"
TOML
  printf 'render tiny 64x64  %5d frames: ' "$n"
  peak "$BIN" render "$WORK/r$n.toml" --out "$WORK/out-r$n" --no-video -q --device cpu
  rm -rf "$WORK/out-r$n"
done
