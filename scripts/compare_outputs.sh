#!/usr/bin/env bash
# Byte-for-byte comparison of two anim binaries' outputs, for refactors that must not change a
# pixel: renders and previews of every scene in examples/ and of a Deforum settings file in 2D,
# 3D with a depth model, Video Input and Interpolation modes (64x64, a few frames, the tiny
# models), then compares every frame, video and depth map, and the manifests without their
# timing fields and the fields named in IGNORE below.
#   scripts/compare_outputs.sh OLD_ANIM NEW_ANIM [WORK_DIR]
# Needs python3 and ffmpeg (for the input video). Exit status 0 when everything is identical.
# ONLY=quickstart,deforum_2d limits the run to those scenes (about 12 minutes for all on 2 cores).
# NEW_PREVIEW_ARGS="--video-preset slow" passes arguments to the new binary's previews only (its
# preview videos use a fast preset by default since #19; with the old preset they compare equal).
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")"
new="$(realpath "$2")"
work="${3:-$(mktemp -d)}"
mkdir -p "$work/old" "$work/new"
root="$(pwd)"
model="$root/models/tiny-sd"

# inputs: a short test video, and Deforum settings variants
ffmpeg -loglevel error -y -f lavfi -i testsrc=size=96x64:rate=12 -frames:v 10 -pix_fmt yuv420p \
  -c:v libx264 -preset fast "$work/input.mp4"
python3 - "$root/tests/data/deforum/default_settings.json" "$work" <<'PY'
import json, sys
base = json.load(open(sys.argv[1]))
work = sys.argv[2]
common = {"W": 64, "H": 64, "max_frames": 8, "steps": 6, "diffusion_cadence": "2", "seed": 31}
for mode, name in [("2D", "deforum_2d"), ("3D", "deforum_3d"), ("Video Input", "deforum_video"),
                   ("Interpolation", "deforum_interp")]:
    d = dict(base, **common, animation_mode=mode)
    d["video_init_path"] = work + "/input.mp4"
    d["outdir"] = work
    json.dump(d, open(f"{work}/{name}.json", "w"), indent=1)
PY
# 3D with a depth model: the Deforum file imported as a scene, with [depth] model added
"$old" import deforum "$work/deforum_3d.json" -o "$work/deforum_3d_depth.toml" 2>/dev/null
python3 - "$work/deforum_3d_depth.toml" "$root/models/tiny-depth" <<'PY'
import re, sys
p, depth = sys.argv[1:3]
s = open(p).read()
keys = f'model = "{depth}"\nsave_depth_maps = true\n'
if "\n[depth]\n" in s:
    head, rest = s.split("\n[depth]\n", 1)
    table, sep, tail = rest.partition("\n[")
    table = "\n".join(l for l in table.splitlines()
                      if not l.startswith(("model =", "save_depth_maps =")))
    s = head + "\n[depth]\n" + keys + table + sep + tail
else:
    s += "\n[depth]\n" + keys
open(p, "w").write(s)
PY

scenes=()
for f in examples/*.toml; do scenes+=("$root/$f"); done
for f in deforum_2d.json deforum_3d.json deforum_video.json deforum_interp.json deforum_3d_depth.toml; do
  scenes+=("$work/$f")
done

status=0
for scene in "${scenes[@]}"; do
  name="$(basename "${scene%.*}")"
  if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  for cmd in render preview; do
    for side in old new; do
      exe="$old"; [ "$side" = new ] && exe="$new"
      out="$work/$side/$cmd-$name"
      rm -rf "$out"
      extra=()
      [ "$cmd" = render ] && extra=(--model "$model")
      if [ "$cmd" = preview ] && [ "$side" = new ] && [ -n "${NEW_PREVIEW_ARGS:-}" ]; then
        read -r -a more <<< "$NEW_PREVIEW_ARGS"; extra+=("${more[@]}")
      fi
      if ! "$exe" "$cmd" "$scene" --out "$out" --quiet "${extra[@]}" 2> "$out.err"; then
        echo "$side $cmd $name failed: $(tail -1 "$out.err")"
      fi
    done
    a="$work/old/$cmd-$name"; b="$work/new/$cmd-$name"
    if ! diff -r -q -x manifest.json -x state "$a" "$b" > /dev/null 2>&1; then
      echo "DIFFERENT: $cmd $name"; diff -r -q -x manifest.json "$a" "$b" | head -5; status=1; continue
    fi
    if ! python3 - "$a/manifest.json" "$b/manifest.json" <<'PY'
import json, sys
TIMING = {"warp_ms", "depth_ms", "color_ms", "contrast_ms", "sharpen_ms", "noise_ms", "text_ms",
          "encode_ms", "denoise_ms", "decode_ms", "blend_ms", "write_ms", "grayscale_ms",
          "controlnet_ms", "ort_ms"}
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
try:
    a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
except FileNotFoundError as e:
    print(e); sys.exit(1)
for k in ("scene_file", "anim_version"):
    a.pop(k, None); b.pop(k, None)
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print("manifest differs at", k); break
    sys.exit(1)
PY
    then echo "DIFFERENT manifest: $cmd $name"; status=1; continue; fi
    n=$(ls "$a/frames" 2>/dev/null | wc -l)
    echo "identical: $cmd $name ($n frames)"
  done
done
exit $status
