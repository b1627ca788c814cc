#!/usr/bin/env bash
# Farm benchmarks (BENCHMARKS.md, "Batch and farm"):
#  1. farm overhead per task: `anim farm submit --slurm` of one scene until its first frame is
#     on disk, against `anim render` of the same scene until its first frame (process start,
#     model load and the first frame in both); the difference is what the farm adds (sbatch,
#     the held array's release, scheduling, the job's start). Runs against the cluster of
#     scripts/slurm/start.sh (started here if needed).
#  2. `anim batch --jobs 2` (and `--jobs 1`) of two scenes against the same two scenes rendered one after the
#     other with `anim render`, wall seconds.
#   scripts/bench_farm.sh [ANIM_BINARY] [REPEATS]
# Default binary target/release/anim (else the debug build in $CARGO_TARGET_DIR or target/);
# default 5 repeats; prints each run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
exe="${1:-}"
if [ -z "$exe" ]; then
  for c in target/release/anim "${CARGO_TARGET_DIR:-target}/release/anim" "${CARGO_TARGET_DIR:-target}/debug/anim"; do
    [ -x "$c" ] && { exe="$c"; break; }
  done
fi
[ -x "$exe" ] || { echo "no anim binary: cargo build --release first, or pass its path" >&2; exit 2; }
exe="$(realpath "$exe")"
reps="${2:-5}"
scripts/slurm/start.sh >/dev/null 2>&1 || { echo "Slurm could not be started (scripts/slurm/start.sh)" >&2; exit 2; }
export SLURM_CONF="${SLURM_BASE:-/tmp/anim-slurm}/etc/slurm.conf"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
model="$(realpath models/tiny-sd)"
scene() { # NAME SEED SIZE FRAMES
  cat > "$work/$1.toml" <<TOML
[image]
width = $3
height = $3
[animation]
max_frames = $4
[generation]
seed = $2
steps = 10
strength = "0:(0.5)"
[motion]
zoom = "0:(1.03)"
[prompts]
"0" = "a forest"
[model]
folder = "$model"
[output]
video = false
TOML
}
now() { date +%s.%N; }
# wait_file FILE: poll every 5 ms
wait_file() { while [ ! -e "$1" ]; do sleep 0.005; done; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "binary: $exe; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
scene first 1 64 4
echo "== submit (or start) to first frame, seconds =="
printf '%4s %10s %10s %10s\n' run local farm overhead
: > "$work/overheads"
for r in $(seq 1 "$reps"); do
  rm -rf "$work/local" "$work/farm"
  t0=$(now)
  "$exe" render "$work/first.toml" --out "$work/local" --quiet --no-video &
  wait_file "$work/local/frames/000000.png"; t1=$(now)
  wait
  t2=$(now)
  "$exe" farm submit "$work/first.toml" --slurm --out-root "$work/farm" >/dev/null
  wait_file "$work/farm/first/frames/000000.png"; t3=$(now)
  while squeue -h | grep -q .; do sleep 0.05; done
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v r="$r" \
    'BEGIN { printf "%4d %10.3f %10.3f %10.3f\n", r, b - a, d - c, (d - c) - (b - a) }' | tee -a "$work/overheads"
done
echo "median overhead: $(awk '{ print $4 }' "$work/overheads" | median) s"

echo "== two scenes: batch --jobs 2 (and --jobs 1) against two renders in a row, wall seconds =="
scene a 1 128 8
scene b 2 128 8
printf '%4s %12s %12s %12s %8s\n' run sequential batch_j1 batch_j2 speedup
: > "$work/batch"
for r in $(seq 1 "$reps"); do
  rm -rf "$work/seq" "$work/b1" "$work/b2"
  t0=$(now)
  "$exe" render "$work/a.toml" --out "$work/seq/a" --quiet --no-video
  "$exe" render "$work/b.toml" --out "$work/seq/b" --quiet --no-video
  t1=$(now)
  "$exe" batch "$work/a.toml" "$work/b.toml" --jobs 1 --out-root "$work/b1" >/dev/null 2>&1
  t2=$(now)
  "$exe" batch "$work/a.toml" "$work/b.toml" --jobs 2 --out-root "$work/b2" >/dev/null 2>&1
  t3=$(now)
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v r="$r" \
    'BEGIN { printf "%4d %12.2f %12.2f %12.2f %8.2f\n", r, b - a, c - b, d - c, (b - a) / (d - c) }' | tee -a "$work/batch"
done
echo "median: sequential $(awk '{ print $2 }' "$work/batch" | median) s, batch --jobs 1 $(awk '{ print $3 }' "$work/batch" | median) s, batch --jobs 2 $(awk '{ print $4 }' "$work/batch" | median) s"
