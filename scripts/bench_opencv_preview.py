#!/usr/bin/env python3
"""The motion preview's chain in Python, as Deforum runs it per frame: a 2D warp of the previous
frame with cv2.warpPerspective (INTER_LINEAR, BORDER_REPLICATE) and a PNG write with cv2.imwrite.
The reference for `scripts/bench_preview.sh`, which times it as a whole process beside
`anim preview`.

usage: python scripts/bench_opencv_preview.py OUT_DIR [SIZE] [FRAMES]
(needs numpy and opencv-python-headless: python3 -m venv v && v/bin/pip install numpy opencv-python-headless)
"""
import math, os, sys
import cv2, numpy as np

out = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 512
frames = int(sys.argv[3]) if len(sys.argv) > 3 else 40
os.makedirs(out, exist_ok=True)
x = np.arange(size)
img = np.dstack([(x[None, :] * 255 // size + 0 * x[:, None]).astype(np.uint8),
                 (x[:, None] * 255 // size + 0 * x[None, :]).astype(np.uint8),
                 ((x[None, :] ^ x[:, None]) % 256).astype(np.uint8)])
cv2.imwrite(os.path.join(out, "000000.png"), img)
for i in range(1, frames):
    # bench_preview.sh's scene: zoom 1.04, angle 3*sin(t/2), translation_x 1
    angle = 3 * math.sin(i / 2)
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.04)
    m = np.vstack([rot, [0, 0, 1]]) @ np.array([[1, 0, 1.0], [0, 1, 0], [0, 0, 1]])
    img = cv2.warpPerspective(img, m, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    cv2.imwrite(os.path.join(out, f"{i:06d}.png"), img)
