#!/usr/bin/env bash
# Peak memory (max RSS, /usr/bin/time -v) of `anim post` upscaling one 2048x2048 frame x4 with
# the tiny model (models/tiny-esrgan) at several tile sizes, and untiled (tile 0). No video.
# Usage: scripts/bench_upscale_memory.sh [BIN]   (default target/release/anim)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-target/release/anim}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/out/frames"
# a 2048x2048 frame: the committed test frame tiled
"$BIN" --help > /dev/null
python3 - "$WORK/out/frames/000000.png" tests/data/post/frames/000000.png <<'PY' 2>/dev/null || \
  ffmpeg -loglevel error -i tests/data/post/frames/000000.png -vf scale=2048:2048 "$WORK/out/frames/000000.png"
import sys
from PIL import Image
src = Image.open(sys.argv[2]).convert("RGB")
big = Image.new("RGB", (2048, 2048))
for y in range(0, 2048, src.height):
    for x in range(0, 2048, src.width):
        big.paste(src, (x, y))
big.save(sys.argv[1])
PY
for tile in 128 256 512 0; do
  cat > "$WORK/scene.toml" <<TOML
[output]
video = false
[post]
r_upscale_video = true
r_upscale_factor = "x4"
r_upscale_model = "$PWD/models/tiny-esrgan"
r_upscale_tile = $tile
TOML
  /usr/bin/time -v "$BIN" post "$WORK/scene.toml" --out "$WORK/out" 2> "$WORK/time.txt" > /dev/null
  printf 'tile %4s: ' "$tile"
  awk -F: '/Maximum resident/ {rss=$2} /Elapsed/ {t=$0; sub(/.*: /, "", t)} END {printf "%.0f MiB, %s\n", rss/1024, t}' "$WORK/time.txt"
done
