#!/usr/bin/env bash
# Side by side: anim resolving every schedule of a 10,000-frame scene (criterion) and Deforum's own
# pandas/numexpr path on the same default settings (scripts/bench_deforum_schedules.py).
# usage: scripts/bench_schedules.sh DEFORUM_SRC_DIR PYTHON   (PYTHON: a venv with numpy, numexpr, pandas==1.5.3)
set -euo pipefail
cd "$(dirname "$0")/.."
deforum=${1:?folder with Deforum's animation_key_frames.py and prompt.py}
py=${2:-python3}
cargo bench --bench schedules -- --noplot 2>&1 | grep -E "numeric schedules|time:"
"$py" scripts/bench_deforum_schedules.py --deforum "$deforum" --frames 10000
