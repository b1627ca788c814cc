#!/usr/bin/env python3
"""Time Deforum's own 3D warp (PyTorch, CPU) and OpenCV's warpPerspective with Deforum's flip matrix,
on the inputs of benches/camera.rs (same pattern image, motion, flip and depth map).

Deforum is run, not copied: its animation.py is imported from a checkout as in
scripts/make_camera_refs.py.

usage: python scripts/bench_camera.py --deforum SRC [--threads N] [--repeat R]
       (a venv with torch, numpy, opencv-python-headless)
"""
import argparse
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch

from make_camera_refs import load_deforum, keys_for


def image(size):
    x = np.arange(size)
    return np.dstack([(x[None, :] % 251 + 0 * x[:, None]).astype(np.uint8), (x[:, None] % 241 + 0 * x[None, :]).astype(np.uint8),
                      ((x[None, :] ^ x[:, None]) % 256).astype(np.uint8)])


def depth(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return torch.from_numpy((2.0 + 3.0 * y + 4.0 * np.exp(-((x - 0.35) / 0.18) ** 2 - ((y - 0.45) / 0.25) ** 2)).astype(np.float32))


CPU = False


def median_ms(f, repeat):
    """Median and minimum wall time in ms (the minimum is the steadier figure on a busy machine);
    with --cpu, the process CPU time per call (all threads) over at least 3 s."""
    f()
    if CPU:
        t0, c0, n = time.perf_counter(), time.process_time(), 0
        while time.perf_counter() - t0 < 3 or n < 5:
            f()
            n += 1
        v = (time.process_time() - c0) / n * 1000
        return Timing(v, v)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return Timing(np.median(ts) * 1000, np.min(ts) * 1000)


class Timing:
    def __init__(self, median, minimum):
        self.median, self.minimum = median, minimum

    def __format__(self, spec):
        return f"{format(self.median, spec)} ms (min {format(self.minimum, spec)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deforum", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--cpu", action="store_true", help="CPU time per call instead of wall time")
    a = ap.parse_args()
    global CPU
    CPU = a.cpu
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    anim = load_deforum(a.deforum)
    motion = dict(translation_x=3.0, translation_y=-2.0, translation_z=10.0, rotation_3d_x=1.0, rotation_3d_y=-1.5, rotation_3d_z=2.0,
                  fov=60.0, near=200.0, far=10000.0, aspect_ratio=1.0, perspective_flip_theta=5.0, perspective_flip_phi=12.0,
                  perspective_flip_gamma=-8.0, perspective_flip_fv=60.0)
    keys = keys_for(motion)
    dev = torch.device("cpu")
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}, opencv {cv2.__version__} threads={cv2.getNumThreads()}")
    for size in (512, 1024):
        img = image(size)
        d = depth(size)
        for mode in ("bicubic", "bilinear", "nearest"):
            args = types.SimpleNamespace(enable_perspective_flip=False, border="replicate", depth_algorithm="Midas-3-Hybrid",
                                         aspect_ratio_use_old_formula=False, padding_mode="border", sampling_mode=mode)
            ms = median_ms(lambda: anim.anim_frame_warp_3d(dev, img, None, args, keys, 0), a.repeat)
            print(f"deforum warp_3d/{size}x{size}/flat/{mode}: median {ms:.2f}")
        rot = np.vstack([cv2.getRotationMatrix2D((size * 0.5, size * 0.5), 3.0, 1.04), [0, 0, 1]])
        args = types.SimpleNamespace(enable_perspective_flip=False, border="replicate", depth_algorithm="Midas-3-Hybrid",
                                     aspect_ratio_use_old_formula=False, padding_mode="border", sampling_mode="bicubic")
        ms = median_ms(lambda: anim.anim_frame_warp_3d(dev, img, d, args, keys, 0), a.repeat)
        print(f"deforum warp_3d/{size}x{size}/depth/bicubic: median {ms:.2f}")
        ms = median_ms(lambda: cv2.warpPerspective(img, rot @ np.array([[1, 0, 2.5], [0, 1, -1.5], [0, 0, 1]]), (size, size),
                                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), a.repeat * 5)
        print(f"opencv warp_2d/{size}x{size}/replicate: median {ms:.3f}")
        bm = anim.get_flip_perspective_matrix(size, size, keys, 0)
        m = bm @ rot @ np.array([[1, 0, 2.5], [0, 1, -1.5], [0, 0, 1]])
        ms = median_ms(lambda: cv2.warpPerspective(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                       a.repeat * 5)
        print(f"opencv flip_2d/{size}x{size}/replicate: median {ms:.3f}")


if __name__ == "__main__":
    main()
