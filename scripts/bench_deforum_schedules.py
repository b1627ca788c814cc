#!/usr/bin/env python3
"""Time Deforum's own code resolving every numeric schedule of its default settings.

This gives a baseline for anim's schedule parser: how long Deforum (Python,
pandas, numexpr) takes to turn all numeric keyframe strings of a default
Deforum settings file into per-frame values for a long scene (default 10,000
frames).

Schedules timed (60 with the defaults; the settings come from Deforum's
defaults as saved in a Deforum settings file, see ``DEFAULTS`` below):

* every settings key ending in ``_schedule`` except the four string schedules
  (``sampler_schedule``, ``checkpoint_schedule``, ``mask_schedule``,
  ``noise_mask_schedule``). That is 31 keys, including the looper's
  ``image_strength_schedule`` and ``tweening_frames_schedule``;
* the motion schedules ``angle``, ``zoom``, ``translation_x/y/z``,
  ``rotation_3d_x/y/z``, ``transform_center_x/y`` and
  ``perspective_flip_theta/phi/gamma/fv`` (14 keys);
* the ControlNet schedules ``cn_1..5_weight``, ``cn_1..5_guidance_start`` and
  ``cn_1..5_guidance_end`` (15 keys).

Each schedule goes through Deforum's own
``FrameInterpolater(max_frames, seed).parse_inbetweens(value, name)``, the
call ``DeformAnimKeys`` / ``LooperAnimKeys`` make. ControlNet schedules use
``FrameInterpolater(max_frames)`` without a seed, as ``ControlNetKeys`` does.
One run resolves all of them. The script prints the median wall time of
``--runs`` runs (default 5) in milliseconds and the number of schedules.

Deforum's files are loaded from ``--deforum`` with the same loader as
``make_schedule_refs.py``; nothing of Deforum (AGPL) is in this repository.

Usage::

    /work/venv-deforum/bin/python scripts/bench_deforum_schedules.py \\
        --deforum /work/sd-webui-deforum/scripts/deforum_helpers [--frames 10000] \\
        [--settings some_deforum_settings.txt]

``--settings`` reads the schedule strings from a Deforum settings JSON file
instead of the built-in defaults, using the same selection of keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_schedule_refs import load_deforum  # noqa: E402  (also sets NUMEXPR_*_THREADS)

STRING_SCHEDULES = {"sampler_schedule", "checkpoint_schedule", "mask_schedule",
                    "noise_mask_schedule"}
MOTION_KEYS = ["angle", "zoom", "translation_x", "translation_y", "translation_z",
               "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
               "transform_center_x", "transform_center_y",
               "perspective_flip_theta", "perspective_flip_phi", "perspective_flip_gamma",
               "perspective_flip_fv"]
CN_KEYS = [f"cn_{i}_{suffix}" for i in range(1, 6)
           for suffix in ("weight", "guidance_start", "guidance_end")]

# Deforum's default values for these keys (settings values, as written in a Deforum
# settings file saved with default settings at commit 3224268).
DEFAULTS = {
    "angle": "0: (0)",
    "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
    "translation_x": "0: (0)",
    "translation_y": "0: (0)",
    "translation_z": "0: (1.75)",
    "transform_center_x": "0: (0.5)",
    "transform_center_y": "0: (0.5)",
    "rotation_3d_x": "0: (0)",
    "rotation_3d_y": "0: (0)",
    "rotation_3d_z": "0: (0)",
    "perspective_flip_theta": "0: (0)",
    "perspective_flip_phi": "0: (0)",
    "perspective_flip_gamma": "0: (0)",
    "perspective_flip_fv": "0: (53)",
    "noise_schedule": "0: (0.065)",
    "strength_schedule": "0: (0.65)",
    "contrast_schedule": "0: (1.0)",
    "cfg_scale_schedule": "0: (7)",
    "steps_schedule": "0: (25)",
    "fov_schedule": "0: (70)",
    "aspect_ratio_schedule": "0: (1)",
    "near_schedule": "0: (200)",
    "far_schedule": "0: (10000)",
    "seed_schedule": '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)',
    "pix2pix_img_cfg_scale_schedule": "0:(1.5)",
    "subseed_schedule": "0: (1)",
    "subseed_strength_schedule": "0: (0)",
    "sampler_schedule": '0: ("Euler a")',
    "mask_schedule": '0: ("{video_mask}")',
    "noise_mask_schedule": '0: ("{video_mask}")',
    "checkpoint_schedule": '0: ("model1.ckpt"), 100: ("model2.safetensors")',
    "clipskip_schedule": "0: (2)",
    "noise_multiplier_schedule": "0: (1.05)",
    "ddim_eta_schedule": "0: (0)",
    "ancestral_eta_schedule": "0: (1)",
    "amount_schedule": "0: (0.1)",
    "kernel_schedule": "0: (5)",
    "sigma_schedule": "0: (1)",
    "threshold_schedule": "0: (0)",
    "cadence_flow_factor_schedule": "0: (1)",
    "redo_flow_factor_schedule": "0: (1)",
    "hybrid_comp_alpha_schedule": "0:(0.5)",
    "hybrid_comp_mask_blend_alpha_schedule": "0:(0.5)",
    "hybrid_comp_mask_contrast_schedule": "0:(1)",
    "hybrid_comp_mask_auto_contrast_cutoff_high_schedule": "0:(100)",
    "hybrid_comp_mask_auto_contrast_cutoff_low_schedule": "0:(0)",
    "hybrid_flow_factor_schedule": "0:(1)",
    "image_strength_schedule": "0:(0.75)",
    "tweening_frames_schedule": "0:(20)",
    **{k: ("0:(1)" if k.endswith("weight") else
           "0:(0.0)" if k.endswith("start") else "0:(1.0)") for k in CN_KEYS},
}


def select(settings: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Return (seeded schedules, ControlNet schedules) as (name, value) pairs."""
    seeded = [(k, v) for k, v in settings.items()
              if k.endswith("_schedule") and k not in STRING_SCHEDULES]
    seeded += [(k, settings[k]) for k in MOTION_KEYS]
    cn = [(k, settings[k]) for k in CN_KEYS]
    return seeded, cn


def one_run(akf, seeded, cn, frames: int, seed: int) -> float:
    t0 = time.perf_counter()
    fi = akf.FrameInterpolater(frames, seed)          # DeformAnimKeys / LooperAnimKeys
    for name, value in seeded:
        fi.parse_inbetweens(value, name)
    fi_cn = akf.FrameInterpolater(max_frames=frames)  # ControlNetKeys: no seed
    for name, value in cn:
        fi_cn.parse_inbetweens(value, name)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deforum", required=True,
                    help="folder with Deforum's animation_key_frames.py and prompt.py")
    ap.add_argument("--frames", type=int, default=10_000, help="max_frames (default 10000)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    ap.add_argument("--seed", type=int, default=42, help="seed (the s of expressions)")
    ap.add_argument("--settings", default=None,
                    help="Deforum settings JSON to take the schedule strings from "
                         "(default: built-in Deforum defaults)")
    args = ap.parse_args()

    settings = dict(DEFAULTS)
    if args.settings:
        settings = json.loads(Path(args.settings).read_text())
    seeded, cn = select(settings)
    akf = load_deforum(args.deforum)

    warnings.simplefilter("ignore")
    times = [one_run(akf, seeded, cn, args.frames, args.seed) for _ in range(args.runs)]
    med_ms = statistics.median(times) * 1e3
    n = len(seeded) + len(cn)
    print(f"schedules: {n} ({len(seeded)} seeded + {len(cn)} ControlNet), frames: {args.frames}")
    print("runs (ms): " + ", ".join(f"{t * 1e3:.1f}" for t in times))
    print(f"median: {med_ms:.1f} ms")


if __name__ == "__main__":
    main()
