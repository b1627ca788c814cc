"""Reference colour corrections of Deforum's guided images (looper) for tests/looper.rs.

With guided images on, Deforum gives A1111 the colour-correction target
blend(init, guide, color_correction_factor) (Pillow's Image.blend of the already blended init
and the guide image); A1111 converts it to OpenCV's 8-bit LAB once, and after painting it
histogram-matches the painted frame's LAB to it per channel (scikit-image match_histograms into
a uint8 array), converts back to RGB, and puts the painted frame's luminosity back with
blendmodes' blendLayers(corrected, painted, LUMINOSITY). This script applies those steps,
written from that description, with the libraries A1111 calls; blendmodes is A1111's pinned
version 2022 (its float-to-byte conversion truncates; later versions round).

Run from the repository root:
    python -m venv .venv && .venv/bin/pip install numpy pillow opencv-python-headless \
        scikit-image aenum && .venv/bin/pip install --no-deps blendmodes==2022
    .venv/bin/python scripts/make_looper_color_refs.py
Versions used for the committed files: numpy 2.4.6, Pillow 13.0.0, opencv-python-headless
5.1.0.95, scikit-image 0.26.0, blendmodes 2022.
Writes tests/data/looper/cc_target_<k>.png and cc_<k>.png for each factor k in cc.json, and
the three 64x64 guide images of the render test's settings file, tests/data/looper/render/.
"""
import json
import os

import cv2
import numpy as np
from blendmodes.blend import BlendType, blendLayers
from PIL import Image
from skimage import exposure

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "data", "looper")
PAIRS = os.path.join(ROOT, "tests", "data", "flow", "pairs")

# (name, blend factor of the init, colour-correction factor)
CASES = [("default", 0.101, 0.075), ("half", 0.35, 0.5), ("guide", 0.07, 1.0)]


def correct(target_rgb, painted):
    """A1111's colour correction of `painted` toward the target (both PIL RGB)."""
    lab_target = cv2.cvtColor(np.asarray(target_rgb), cv2.COLOR_RGB2LAB)
    lab = cv2.cvtColor(np.asarray(painted), cv2.COLOR_RGB2LAB)
    matched = exposure.match_histograms(lab, lab_target, channel_axis=2)
    assert matched.dtype == np.uint8, matched.dtype
    rgb = Image.fromarray(cv2.cvtColor(matched, cv2.COLOR_LAB2RGB).astype("uint8"))
    return blendLayers(rgb, painted, BlendType.LUMINOSITY).convert("RGB")


def main():
    init = Image.open(os.path.join(PAIRS, "rotzoom_a.png")).convert("RGB")
    guide = Image.open(os.path.join(OUT, "guide.png")).convert("RGB")
    # a "painted" frame: another photo, recoloured so the correction has work to do
    painted = np.asarray(
        Image.open(os.path.join(PAIRS, "subject_a.png")).convert("RGB").resize(init.size)
    ).astype(np.int32)
    painted = np.clip(painted * [1.2, 0.8, 1.0] + [10, 0, -20], 0, 255).astype(np.uint8)
    painted = Image.fromarray(painted)
    painted.save(os.path.join(OUT, "cc_painted.png"))
    cases = {}
    for name, bf, ccf in CASES:
        blended = Image.blend(init, guide, bf)
        target = Image.blend(blended, guide, ccf)
        target.save(os.path.join(OUT, f"cc_target_{name}.png"))
        correct(target, painted).save(os.path.join(OUT, f"cc_{name}.png"))
        cases[name] = {"blend_factor": bf, "color_correction_factor": ccf}
    with open(os.path.join(OUT, "cc.json"), "w") as fh:
        json.dump(cases, fh, indent=1)
    # guide images of tests/data/looper/render/settings.json: 64x64 crops of three photos
    os.makedirs(os.path.join(OUT, "render"), exist_ok=True)
    for k, name in enumerate(["subject_a", "stereo_a", "homography_a"]):
        im = Image.open(os.path.join(PAIRS, f"{name}.png")).convert("RGB")
        im.crop((40, 30, 104, 94)).save(os.path.join(OUT, "render", f"guide_{k}.png"))


if __name__ == "__main__":
    main()
