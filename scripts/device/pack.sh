#!/usr/bin/env bash
# Packs what a lent GPU machine (the `device` tool: x86-64, Python 3.12 with PyTorch and CUDA 13's
# libraries, no network) needs for anim's CUDA figures, in parts small enough to travel one per call
# beside the working tree (the tool carries 64 MiB a call, the tree included):
#   - bench_frame, anim's per-frame benchmark (examples/bench_frame.rs), built here, stripped;
#   - ONNX Runtime's GPU build (the onnxruntime-gpu wheel: CUDA and TensorRT providers) and diffusers
#     with its one dependency the machine lacks, unpacked as a Python site folder.
# Writes .device/part-NN (xz-compressed tar, split) and .device/parts.sha256 (git ignores .device/),
# then prints the calls to make. Run from the repository root:  scripts/device/pack.sh
# Needs cargo, python3 with pip, xz. Downloads go to ${ANIM_DEVICE_CACHE:-/tmp/anim-device-cache}.
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT_GPU=${ORT_GPU:-onnxruntime-gpu==1.31.1}
CACHE=${ANIM_DEVICE_CACHE:-/tmp/anim-device-cache}
PY=${PYTHON:-python3}
mkdir -p "$CACHE/wheels" .device
rm -rf "$CACHE/payload" .device/part-* .device/parts.sha256

echo "building bench_frame (release)" >&2
cargo build --release --quiet --example bench_frame
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$CACHE/payload/site"
strip -o "$CACHE/payload/bench_frame" "$TARGET/release/examples/bench_frame"

echo "fetching wheels for the device's Python 3.12" >&2
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$CACHE/wheels" "$ORT_GPU" diffusers==0.42.1 importlib_metadata
for w in "$CACHE"/wheels/*.whl; do
  case "$(basename "$w")" in
    onnxruntime_gpu-*) ;;
    diffusers-*|importlib_metadata-*) ;;
    *) continue ;;
  esac
  (cd "$CACHE/payload/site" && unzip -q -o "$w")
done
# the ONNX Runtime library anim loads sits beside the providers in the wheel's capi folder
ls "$CACHE"/payload/site/onnxruntime/capi/libonnxruntime.so.1.* >/dev/null

# the whole tree travels with every call: what is left of the 64 MiB is one part's size
tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s | awk '{s+=$1} END {print s}')
part=$(( (64 * 1024 * 1024 - tree) / (1024 * 1024) - 2 ))
[ "$part" -ge 4 ] || { echo "the working tree ($tree bytes) leaves no room for parts" >&2; exit 1; }
echo "compressing (xz -9); parts of ${part} MiB" >&2
tar -C "$CACHE" -cf - payload | XZ_OPT="-9 -T0" xz -c | split -b "${part}M" -d -a 2 - .device/part-
(cd .device && sha256sum part-* > parts.sha256)
n=$(ls .device/part-* | wc -l)
echo
echo "$n parts in .device/ ($(du -shc .device/part-* | tail -1 | cut -f1)). With a device lent, make one call per part:"
for p in .device/part-*; do
  echo "  run  command='bash scripts/device/run.sh'  carry=['.device/parts.sha256', '$p']  timeout_s=300"
done
echo "The call that brings the last missing part unpacks and benchmarks (results under \$OUT);"
echo "further calls with no part carried rerun the benchmark on the same warm machine."
