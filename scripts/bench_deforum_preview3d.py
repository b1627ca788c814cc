#!/usr/bin/env python3
"""The 3D motion preview's chain as Deforum runs it per frame: its own `anim_frame_warp_3d` (PyTorch
on the CPU, `transform_image_3d_new`, no depth model: flat depth) of the previous frame, then a PNG
write with cv2.imwrite. The reference for `scripts/bench_preview.sh`, which times it as a whole
process (interpreter start and imports included) beside `anim preview` of the same 3D scene.

Deforum is run, not copied: its animation.py is imported from a checkout as in
scripts/make_camera_refs.py.

usage: python scripts/bench_deforum_preview3d.py DEFORUM_SRC OUT_DIR [SIZE] [FRAMES]
(DEFORUM_SRC: a checkout of sd-webui-deforum, the folder with scripts/deforum_helpers; the venv
 needs torch, numpy and opencv-python-headless)
"""
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_camera_refs import keys_for, load_deforum  # noqa: E402

src, out = Path(sys.argv[1]), sys.argv[2]
size = int(sys.argv[3]) if len(sys.argv) > 3 else 512
frames = int(sys.argv[4]) if len(sys.argv) > 4 else 40
os.makedirs(out, exist_ok=True)
anim = load_deforum(src)
x = np.arange(size)
# the start frame of scripts/bench_opencv_preview.py
img = np.dstack([(x[None, :] * 255 // size + 0 * x[:, None]).astype(np.uint8),
                 (x[:, None] * 255 // size + 0 * x[None, :]).astype(np.uint8),
                 ((x[None, :] ^ x[:, None]) % 256).astype(np.uint8)])
cv2.imwrite(os.path.join(out, "000000.png"), img)
# bench_preview.sh's 3D scene: translation_x 1, translation_z 2, rotation_3d_y 0.5, Deforum's
# defaults for the rest (fov 40, near 200, far 10000, bicubic sampling, border padding)
keys = keys_for(dict(translation_x=1.0, translation_y=0.0, translation_z=2.0, rotation_3d_x=0.0,
                     rotation_3d_y=0.5, rotation_3d_z=0.0, fov=40.0, near=200.0, far=10000.0,
                     aspect_ratio=1.0, perspective_flip_theta=0.0, perspective_flip_phi=0.0,
                     perspective_flip_gamma=0.0, perspective_flip_fv=53.0))
args = types.SimpleNamespace(enable_perspective_flip=False, border="replicate",
                             depth_algorithm="Midas-3-Hybrid", aspect_ratio_use_old_formula=False,
                             padding_mode="border", sampling_mode="bicubic")
dev = torch.device("cpu")
for i in range(1, frames):
    img = anim.anim_frame_warp_3d(dev, img, None, args, keys, 0)
    cv2.imwrite(os.path.join(out, f"{i:06d}.png"), img)
