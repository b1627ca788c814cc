"""Makes the references of A1111's mask blur (tests/data/masks/blur_S.png) that tests/masks.rs
measures anim's `mask::frame::blur` against.

Written from the description in the project's research notes (not from A1111's code): the grey
mask goes through `cv2.GaussianBlur(m, (k, 1), s)` then `cv2.GaussianBlur(m, (1, k), s)` with
`k = 2·int(2.5·s + 0.5) + 1`. The input is tests/data/masks/prepare_0.png (a grey mask made from
a real photo by scripts/make_mask_refs.py), thresholded at 128 into a hard mask as well.

Run with a venv holding numpy, Pillow and opencv-python-headless
(`python3 -m venv v && v/bin/pip install numpy pillow opencv-python-headless`):
`v/bin/python scripts/make_mask_blur_refs.py`.
"""
import os

import cv2
import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests/data/masks")

grey = np.array(Image.open(os.path.join(OUT, "prepare_0.png")).convert("L"))
hard = np.where(grey >= 128, 255, 0).astype(np.uint8)
Image.fromarray(hard).save(os.path.join(OUT, "blur_in.png"))
for s in (1, 4, 9):
    k = 2 * int(2.5 * s + 0.5) + 1
    for name, m in (("hard", hard), ("grey", grey)):
        b = cv2.GaussianBlur(m, (k, 1), s)
        b = cv2.GaussianBlur(b, (1, k), s)
        Image.fromarray(b).save(os.path.join(OUT, f"blur_{name}_{s}.png"))
