#!/usr/bin/env bash
# On the device machine: keeps the parts this call carried (in /tmp/anim-device, which lasts as long as the
# machine stays warm), and once all parts of .device/parts.sha256 are there, unpacks them and runs
# scripts/device/bench-cuda.sh. See scripts/device/pack.sh.
set -uo pipefail
D=/tmp/anim-device
mkdir -p "$D"
[ -f .device/parts.sha256 ] && cp .device/parts.sha256 "$D/"
for f in .device/part-*; do [ -f "$f" ] && cp "$f" "$D/" && echo "received $f ($(stat -c %s "$f") bytes)"; done
[ -f "$D/parts.sha256" ] || { echo "no .device/parts.sha256: carry it with every call"; exit 1; }
missing=$(cd "$D" && awk '{print $2}' parts.sha256 | while read -r p; do [ -f "$p" ] || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "still missing: $(echo $missing)"
  exit 0
fi
if [ ! -x "$D/payload/bench_frame" ]; then
  (cd "$D" && sha256sum -c --quiet parts.sha256) || { echo "a part is damaged: carry it again"; exit 1; }
  cat "$D"/part-* | python3 -c "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall('$D', filter='tar')" \
    || { echo "unpacking failed"; exit 1; }
  echo "unpacked into $D/payload"
fi
exec bash scripts/device/bench-cuda.sh "$D/payload"
