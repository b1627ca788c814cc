#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library from the `onnxruntime` wheel on PyPI (no pip install).
# usage: scripts/fetch-ort.sh [DEST] [SPEC]
#   DEST defaults to ${XDG_DATA_HOME:-$HOME/.local/share}/anim/onnxruntime, the folder anim looks in by itself.
#   SPEC defaults to onnxruntime==1.32.0; use onnxruntime-gpu==1.31.1 for CUDA/TensorRT providers.
set -euo pipefail
dest=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/anim/onnxruntime}
spec=${2:-onnxruntime==1.32.0}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp "$spec" -d "$tmp"
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0]) as z:
    for n in z.namelist():
        b = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and b.startswith("libonnxruntime"):
            with z.open(n) as s, open(os.path.join(dest, b), "wb") as o:
                o.write(s.read())
            os.chmod(os.path.join(dest, b), 0o755)
PY
real=$(cd "$dest" && ls libonnxruntime.so.1.* | head -1)
ln -sf "$real" "$dest/libonnxruntime.so"
ln -sf "$real" "$dest/libonnxruntime.so.1"
echo "ONNX Runtime ($spec) installed in $dest"
