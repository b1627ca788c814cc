"""Makes tests/data/masks/mask_video.mp4: a 6-frame 64×64 mask video (a white square moving right
on black, H.264 lossless) for tests/masks.rs's mask-video render.

Needs numpy, Pillow and the ffmpeg command (`python3 -m venv v && v/bin/pip install numpy pillow`):
`v/bin/python scripts/make_mask_video.py`.
"""
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests/data/masks/mask_video.mp4")

with tempfile.TemporaryDirectory() as tmp:
    for i in range(6):
        a = np.zeros((64, 64), np.uint8)
        a[20:44, 8 + 6 * i:32 + 6 * i] = 255
        Image.fromarray(a).convert("RGB").save(os.path.join(tmp, f"{i:03}.png"))
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", "12", "-i",
                    os.path.join(tmp, "%03d.png"), "-c:v", "libx264", "-qp", "0",
                    "-pix_fmt", "yuv444p", OUT], check=True)
