#!/usr/bin/env bash
# Coverage-guided fuzzing of anim's parsers with cargo-fuzz (libFuzzer): every target in
# fuzz/fuzz_targets/ runs SECONDS (default 60) from a seed corpus made of the repository's own
# scene files, Deforum settings, Parseq manifests and the bad-input corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer's instrumentation uses unstable rustc
# flags: on a stable toolchain this script sets RUSTC_BOOTSTRAP=1 for the fuzz build only (the
# crate itself never needs it). A crash leaves its input in fuzz/artifacts/TARGET/; turn it into a
# test case in tests/robustness.rs (or the bad-input corpus) before fixing it. The parsers are safe
# Rust, so the default build has no sanitizer (FUZZ_SANITIZER=address adds AddressSanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(keyframes expression prompt scene deforum parseq)
fi
export RUSTC_BOOTSTRAP=1
seed() { # seed TARGET FILES...: copies FILES into the target's corpus
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
}
seed scene examples/*.toml tests/data/bad-input/toml/*.toml
seed deforum tests/data/deforum/*.json tests/data/bad-input/deforum/*.json
seed parseq tests/data/parseq/*.json
mkdir -p fuzz/corpus/keyframes fuzz/corpus/expression fuzz/corpus/prompt
printf '0:(1), 10:(sin(t*0.1)*2), 20:(1.02**t)' > fuzz/corpus/keyframes/seed1
printf '0: (a photo of a cat), 12: (a dog:1.2)' > fuzz/corpus/keyframes/seed2
printf '1 + 0.5*sin(2*3.14*t/max_f) if t > 3 else cos(t)' > fuzz/corpus/expression/seed1
printf 'a (red:1.3) [cat] \\(x\\) `t*2` --neg blurry' > fuzz/corpus/prompt/seed1
status=0
for t in "${targets[@]}"; do
  echo "== $t ($secs s)"
  # -rss_limit_mb: a parser that allocates without bound is a finding too
  cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" "$t" -- -max_total_time="$secs" \
    -rss_limit_mb=2048 -max_len=65536 || status=1
done
exit $status
