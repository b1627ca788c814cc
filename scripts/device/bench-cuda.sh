#!/usr/bin/env bash
# On the device machine (run.sh calls it once the payload is unpacked; rerun it there directly on a warm
# machine): anim's figures for ONNX Runtime's CUDA provider on models/tiny-sd, and diffusers' ONNX pipeline
# beside it. Each step is timed and may fail without stopping the others; the log and the JSON results go to
# $OUT (the device tool brings that folder back). Figures go to BENCHMARKS.md by hand.
#   1. what the machine has: GPU, ONNX Runtime's providers;
#   2. anim alone per provider (cpu, cuda, tensorrt, auto): per-frame time, share outside ORT, and whether
#      seed 0 gives the same bytes before and after the timed frames; tensorrt must either run or say
#      clearly what is missing;
#   3. the same on CUDA with the UNet replayed as CUDA graphs (ANIM_CUDA_GRAPH=1), and how far the frames
#      are apart (PSNR of the seed-0 frames: CPU against CUDA, CUDA against CUDA graphs);
#   4. scripts/bench_frame.py --provider cuda: anim (without and with graphs) against diffusers, alternating
#      rounds, 64x64 and 512x512; and --provider cpu on the same machine for comparison.
set -uo pipefail
P=${1:-/tmp/anim-device/payload}
OUT=${OUT:-/tmp/anim-device/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export RUST_BACKTRACE=0
export PYTHONPATH="$P/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
libs=$(find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ORT_DYLIB_PATH=$(ls "$P"/site/onnxruntime/capi/libonnxruntime.so.1.* | head -1)
export ORT_DYLIB_PATH
B="$P/bench_frame"

step() {
  echo
  echo "== $*"
  local t=$SECONDS
  timeout 240 "$@"
  echo "== exit $? after $((SECONDS - t)) s"
}

step nvidia-smi -L
step python3 -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())"
for dev in cpu cuda tensorrt auto; do
  step env ANIM_BENCH_FRAME_PNG="$OUT/anim_$dev.png" "$B" models/tiny-sd 30 "$dev"
done
# the UNet replayed as CUDA graphs (SessionOptions::cuda_graph, `anim render --cuda-graph`)
step env ANIM_CUDA_GRAPH=1 ANIM_BENCH_FRAME_PNG="$OUT/anim_cuda_graph.png" "$B" models/tiny-sd 30 cuda
for pair in "cpu cuda" "cuda cuda_graph"; do
  set -- $pair
  step python3 - "$OUT/anim_$1.png" "$OUT/anim_$2.png" <<'PY'
import sys
import numpy as np
from PIL import Image
a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in sys.argv[1:3])
mse = ((a - b) ** 2).mean()
print(sys.argv[1], "vs", sys.argv[2], "seed-0 frame:", "identical" if mse == 0 else f"PSNR {10 * np.log10(255 ** 2 / mse):.2f} dB, max abs {np.abs(a - b).max():.0f}")
PY
done
step sh -c "python3 scripts/bench_frame.py --provider cuda --exe '$B' --rounds 5 --frames 30 > '$OUT/cuda_64.json'"
step sh -c "ANIM_CUDA_GRAPH=1 python3 scripts/bench_frame.py --provider cuda --exe '$B' --rounds 5 --frames 30 > '$OUT/cuda_graph_64.json'"
step sh -c "ANIM_CUDA_GRAPH=1 python3 scripts/bench_frame.py --provider cuda --exe '$B' --rounds 3 --frames 10 --size 512 > '$OUT/cuda_graph_512.json'"
step sh -c "python3 scripts/bench_frame.py --provider cuda --exe '$B' --rounds 3 --frames 10 --size 512 > '$OUT/cuda_512.json'"
step sh -c "python3 scripts/bench_frame.py --provider cpu --exe '$B' --rounds 3 --frames 30 > '$OUT/cpu_64.json'"
for f in "$OUT"/*.json; do echo "== $f"; cat "$f"; done
