#!/usr/bin/env bash
# Quick start, step 1: install dependencies, build anim, and render examples/quickstart.toml with the
# bundled tiny model into output/quickstart/ (frames/, video.mp4, manifest.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> building anim (release)"
cargo build --release
echo "==> rendering examples/quickstart.toml"
./target/release/anim render examples/quickstart.toml --out output/quickstart
echo "==> done: output/quickstart/video.mp4 (the binary is target/release/anim)"
