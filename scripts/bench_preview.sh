#!/usr/bin/env bash
# Whole-process wall time of `anim preview` at 512x512, 40 frames, 2D (and 3D), with and without
# its mp4, against the same chain in Python (scripts/bench_opencv_preview.py: OpenCV warp + PNG
# write per frame), alternating the commands ROUNDS times and printing each one's median.
#   scripts/bench_preview.sh ANIM [PYTHON] [ROUNDS] [OLD_ANIM]
# PYTHON: an interpreter with numpy and opencv-python-headless (skipped when empty).
# OLD_ANIM: another anim binary (an earlier build) timed in the same rounds.
# DEFORUM_SRC (environment): a checkout of sd-webui-deforum; then the 3D scene's chain also runs
# through Deforum's own PyTorch warp (scripts/bench_deforum_preview3d.py) in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
anim="$(realpath "$1")"
py="${2:-}"
rounds="${3:-5}"
old="${4:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for mode in 2D 3D; do
  cat > "$work/$mode.toml" <<TOML
[image]
width = 512
height = 512
[animation]
mode = "$mode"
max_frames = 40
[generation]
seed = 42
[motion]
zoom = "0: (1.04)"
angle = "0: (0), 4: (3*sin(t/2))"
translation_x = "0: (1)"
translation_z = "0: (2)"
rotation_3d_y = "0: (0.5)"
TOML
done
declare -A names cmds
order=()
add() { order+=("$1"); cmds[$1]="$2"; }
for b in new ${old:+old}; do
  exe="$anim"; [ "$b" = old ] && exe="$old"
  add "$b 2D --no-video" "$exe preview $work/2D.toml --out $work/o --quiet --no-video"
  add "$b 2D video" "$exe preview $work/2D.toml --out $work/o --quiet"
  add "$b 3D --no-video" "$exe preview $work/3D.toml --out $work/o --quiet --no-video"
done
[ -n "$py" ] && add "python opencv 2D" "$py scripts/bench_opencv_preview.py $work/p 512 40"
[ -n "$py" ] && [ -n "${DEFORUM_SRC:-}" ] &&
  add "deforum pytorch 3D" "$py scripts/bench_deforum_preview3d.py $DEFORUM_SRC $work/p 512 40"
declare -A times
for r in $(seq "$rounds"); do
  for k in "${order[@]}"; do
    rm -rf "$work/o" "$work/p"
    s=$(date +%s.%N)
    ${cmds[$k]} > /dev/null 2>&1
    e=$(date +%s.%N)
    times[$k]+="$(echo "$e - $s" | bc) "
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
ratio() { # median over the rounds of time(A) / time(B)
  paste <(echo ${times[$1]} | tr ' ' '\n') <(echo ${times[$2]} | tr ' ' '\n') |
    awk '{print $1 / $2}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
for k in "${order[@]}"; do
  echo "$k: $(echo ${times[$k]} | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "median %.3f s (min %.3f, max %.3f, n %d)", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR], NR}')"
done
echo "per-round ratios (median): 2D video / 2D --no-video $(ratio "new 2D video" "new 2D --no-video")x"
[ -n "$py" ] && echo "python opencv 2D / anim 2D --no-video $(ratio "python opencv 2D" "new 2D --no-video")x"
[ -n "$py" ] && [ -n "${DEFORUM_SRC:-}" ] &&
  echo "deforum pytorch 3D / anim 3D --no-video $(ratio "deforum pytorch 3D" "new 3D --no-video")x"
[ -n "$old" ] && echo "old / new: 2D --no-video $(ratio "old 2D --no-video" "new 2D --no-video")x, 2D video $(ratio "old 2D video" "new 2D video")x, 3D --no-video $(ratio "old 3D --no-video" "new 3D --no-video")x"
true
