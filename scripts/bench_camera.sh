#!/usr/bin/env bash
# Side by side: anim's 3D camera and perspective flip (criterion, benches/camera.rs) and Deforum's
# PyTorch CPU path + OpenCV on the same inputs (scripts/bench_camera.py), on the same cores.
# usage: scripts/bench_camera.sh DEFORUM_SRC_DIR PYTHON   (PYTHON: a venv with torch, numpy, opencv-python-headless)
set -euo pipefail
cd "$(dirname "$0")/.."
deforum=${1:?sd-webui-deforum checkout (scripts/deforum_helpers/animation.py)}
py=${2:-python3}
threads=$(nproc)
RAYON_NUM_THREADS=$threads cargo bench --bench camera -- --noplot 2>&1 | grep -E "^(warp_3d|flip_2d|depth_to_z)|time:"
(cd scripts && "$py" bench_camera.py --deforum "$deforum" --threads "$threads")
