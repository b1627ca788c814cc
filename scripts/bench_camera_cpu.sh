#!/usr/bin/env bash
# CPU time per call, one thread each, in alternating rounds: anim's camera kernels
# (benches/camera_cpu.rs) then Deforum's PyTorch 3D path and OpenCV's warpPerspective
# (scripts/bench_camera.py --cpu). Compare figures from the same round; the spread between
# rounds shows how noisy the machine is.
# usage: scripts/bench_camera_cpu.sh DEFORUM_SRC_DIR PYTHON [ROUNDS]
#        (PYTHON: a venv with torch, numpy, opencv-python-headless)
set -euo pipefail
cd "$(dirname "$0")/.."
deforum=${1:?sd-webui-deforum checkout (scripts/deforum_helpers/animation.py)}
py=${2:-python3}
rounds=${3:-3}
bench=$(cargo bench --bench camera_cpu --no-run 2>&1 | grep -o 'target/[^ )]*/camera_cpu-[0-9a-f]*' | tail -1)
for r in $(seq "$rounds"); do
  echo "== round $r $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  RAYON_NUM_THREADS=1 "$bench" | grep '^anim'
  (cd scripts && OMP_NUM_THREADS=1 "$py" bench_camera.py --deforum "$deforum" --threads 1 --cpu 2>/dev/null |
    grep -E '^(deforum|opencv)')
done
