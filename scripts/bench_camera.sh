#!/usr/bin/env bash
# Side by side: anim's 3D camera and perspective flip (criterion, benches/camera.rs) and Deforum's
# PyTorch CPU path + OpenCV on the same inputs (scripts/bench_camera.py), on the same cores.
# Prints median and minimum per call for both sides (the minimum is the steadier figure on a
# shared machine).
# usage: scripts/bench_camera.sh DEFORUM_SRC_DIR PYTHON   (PYTHON: a venv with torch, numpy, opencv-python-headless)
set -euo pipefail
cd "$(dirname "$0")/.."
deforum=${1:?sd-webui-deforum checkout (scripts/deforum_helpers/animation.py)}
py=${2:-python3}
threads=$(nproc)
target=${CARGO_TARGET_DIR:-target}
RAYON_NUM_THREADS=$threads cargo bench --bench camera -- --noplot >/dev/null 2>&1
"$py" - "$target/criterion" <<'PY'
import json, pathlib, sys
for d in sorted(pathlib.Path(sys.argv[1]).glob("*/new/sample.json")):
    name = d.parent.parent.name
    if not name.startswith(("warp_3d", "flip_2d", "depth_to_z")):
        continue
    s = json.loads(d.read_text())
    v = sorted(t / i / 1e6 for t, i in zip(s["times"], s["iters"]))
    print(f"anim {name}: median {v[len(v) // 2]:.2f} ms (min {v[0]:.2f})")
PY
(cd scripts && "$py" bench_camera.py --deforum "$deforum" --threads "$threads" 2>/dev/null)
