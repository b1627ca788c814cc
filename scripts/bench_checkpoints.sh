#!/usr/bin/env bash
# Checkpoint cost against the frame count: `anim preview` of an 8x8 scene (no model, no video),
# so the time is the loop's own bookkeeping (frames, records, checkpoints). Prints frames, wall
# seconds, CPU seconds (user + system: wall time here is mostly the disk's writeback, which
# varies run to run) and peak RSS (MiB).
#   scripts/bench_checkpoints.sh [ANIM_BINARY] [FRAME_COUNTS...]
# Default binary target/release/anim; default counts 1000 4000 10000.
set -euo pipefail
cd "$(dirname "$0")/.."
exe="${1:-target/release/anim}"
shift || true
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(1000 4000 10000)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%8s %10s %10s %10s\n' frames wall_s cpu_s peak_MiB
for n in "${counts[@]}"; do
  cat > "$work/s.toml" <<TOML
[image]
width = 8
height = 8
[animation]
mode = "2D"
max_frames = $n
[motion]
zoom = "0:(1.01)"
angle = "0:(1)"
[output]
video = false
TOML
  rm -rf "$work/out"; sync
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$exe" preview "$work/s.toml" --out "$work/out" --quiet --no-video
  read -r secs user sys kib < "$work/time"
  awk -v n="$n" -v s="$secs" -v u="$user" -v y="$sys" -v k="$kib" \
    'BEGIN { printf "%8s %10s %10.2f %10.1f\n", n, s, u + y, k / 1024 }'
done
