"""Reference blends of Deforum's guided images (looper) for tests/looper.rs.

Applies Deforum's formulas, written from their description (not Deforum's code): the blend
factor bf = Max - Slope*cos((f % tw)/(tw/2)) when f % seg <= tw, else 0.07, and Pillow's
Image.blend(init, guide, bf) on two small real-photo frames of tests/data/flow/pairs/.

Run from the repository root with a Python that has numpy and Pillow:
    python -m venv .venv && .venv/bin/pip install numpy pillow
    .venv/bin/python scripts/make_looper_refs.py
Writes tests/data/looper/blend_<f>.png and factors.json.
"""
import json
import math
import os

from PIL import Image

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "tests", "data", "looper")

# the default keys of a 120-frame render: 0, 24, 49, 74, 99
KEYS = [0, 24, 49, 74, 99]
MAX, SLOPE, TW = 0.35, 0.25, 20.0


def segment(f):
    seg = 25
    for fs, fe in zip(KEYS, KEYS[1:]):
        if fs <= f <= fe:
            seg = fe - fs
    return seg


def factor(f):
    if f % segment(f) <= TW:
        return MAX - SLOPE * math.cos((f % TW) / (TW / 2))
    return 0.07


def main():
    os.makedirs(OUT, exist_ok=True)
    pairs = os.path.join(ROOT, "tests", "data", "flow", "pairs")
    a = Image.open(os.path.join(pairs, "rotzoom_a.png")).convert("RGB")
    b = Image.open(os.path.join(pairs, "shift_b.png")).convert("RGB").resize(a.size)
    factors = {}
    for f in [1, 10, 19, 20, 22, 25, 60, 110]:
        bf = factor(f)
        factors[str(f)] = bf
        Image.blend(a, b, bf).save(os.path.join(OUT, f"blend_{f:03}.png"))
    # extrapolation: Pillow clamps outside 0..1
    for name, bf in [("over", 1.37), ("under", -0.4)]:
        factors[name] = bf
        Image.blend(a, b, bf).save(os.path.join(OUT, f"blend_{name}.png"))
    with open(os.path.join(OUT, "factors.json"), "w") as fh:
        json.dump(factors, fh, indent=1)
    b.save(os.path.join(OUT, "guide.png"))


if __name__ == "__main__":
    main()
