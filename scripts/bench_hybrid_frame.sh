#!/bin/bash
# Times a hybrid-video frame's stages at 512x512 with `anim bench` (BENCHMARKS.md, "A hybrid-video
# frame"): a Deforum settings file with a 2D zoom, hybrid composite `Normal` with a `Difference`
# mask and auto-contrast, hybrid motion `Optical Flow` (a forward and a backward flow per frame
# for the consistency check, blur 2) over tests/data/hybrid/clip.mp4, the tiny test model.
#
#   scripts/bench_hybrid_frame.sh ANIM_BINARY [FLOW_METHOD] [FRAMES]
#
# FLOW_METHOD is Deforum's name ("DIS Medium" by default, "Farneback", "DIS Fine", ...).
# Prints `anim bench`'s table (each stage's mean ms per frame over all frames), then the median
# of each stage outside the neural networks over frames 1.. (frame 0 has no flow): "hybrid" is
# the video frame's resize, the two flows with their consistency check, the flow warp and the
# composite.
set -euo pipefail
anim=${1:?usage: bench_hybrid_frame.sh ANIM_BINARY [FLOW_METHOD] [FRAMES]}
method=${2:-DIS Medium}
frames=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir/settings.txt" "$root/tests/data/hybrid/clip.mp4" "$method" "$frames" <<'PY'
import json, sys
out, clip, method, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
json.dump({
    "W": 512, "H": 512, "max_frames": frames, "seed": 5, "animation_mode": "2D",
    "steps": 4, "strength_schedule": "0:(0.5)", "sampler": "Euler a", "diffusion_cadence": 1,
    "zoom": "0:(1.01)", "prompts": {"0": "an astronaut, photo"},
    "video_init_path": clip, "extract_to_frame": frames - 1,
    "hybrid_composite": "Normal", "hybrid_comp_mask_type": "Difference",
    "hybrid_comp_mask_auto_contrast": True, "hybrid_comp_alpha_schedule": "0:(0.5)",
    "hybrid_motion": "Optical Flow", "hybrid_flow_method": method,
    "hybrid_flow_consistency": True, "hybrid_consistency_blur": 2,
}, open(out, "w"), indent=1)
PY
"$anim" bench "$dir/settings.txt" --model "$root/models/tiny-sd" --out "$dir/out"
python3 - "$dir/out/manifest.json" <<'PY'
import json, statistics, sys
recs = json.load(open(sys.argv[1]))["frames"][1:]
neural = {"ort_ms", "text_ms", "encode_ms", "denoise_ms", "decode_ms", "depth_ms"}
stages = sorted({k for r in recs for k, v in r.items()
                 if k.endswith("_ms") and k not in neural and isinstance(v, (int, float))})
print(f"median ms over frames 1-{len(recs)}, outside the neural networks:")
total = 0.0
for k in stages:
    m = statistics.median(r.get(k, 0.0) for r in recs)
    total += m
    print(f"  {k[:-3]:<14} {m:8.2f}")
print(f"  {'total':<14} {total:8.2f}")
PY
