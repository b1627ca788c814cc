#!/usr/bin/env bash
# Quick start, step 2: the whole test suite (unit, parity with diffusers/OpenCV, end-to-end renders).
# Needs what scripts/install-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
  cargo test --doc
else
  cargo test "$@"
fi
