#!/usr/bin/env python3
"""Time Deforum's own per-frame image operations at 512x512 (everything but the neural networks):
the 2D warp (cv2.warpPerspective with Deforum's matrix), colour match (colors.py::maintain_colors,
LAB), contrast (render.py's expression), anti-blur (image_sharpening.py::unsharp_mask, k5),
noise (noise.py::add_noise, perlin), PNG write (cv2.imwrite) and the video encode (the ffmpeg
binary with Deforum's arguments, 10 frames). Compare with `cargo bench --bench frame_ops`.

usage: python scripts/bench_deforum_frame_ops.py --deforum /path/to/deforum-src
  (the folder with colors.py, image_sharpening.py, noise.py, as for make_frameloop_refs.py; needs
   numpy, opencv-python-headless, scikit-image, torch; Deforum's files are loaded, not copied)
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_frameloop_refs as refs  # noqa: E402  (reuses its loader and stubs)


def photo(size, shift):
    y, x = np.mgrid[0:size, 0:size]
    r = (x * 7 + y * 3 + shift) % 256
    g = (x ^ y) % 256
    b = (x * y // 64 + shift) % 256
    return np.dstack([b, g, r]).astype(np.uint8)  # BGR, as Deforum holds frames


def timeit(fn, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deforum", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    refs.install_global_stubs()
    refs.make_package("deforum_helpers", a.deforum, {
        "prompt": {"check_is_number": lambda v: False},
        "general_utils": {"debug_print": lambda msg: None},
    })
    colors = refs.load("deforum_helpers", "colors")
    sharp = refs.load("deforum_helpers", "image_sharpening")
    noise = refs.load("deforum_helpers", "noise")
    img, sample = photo(512, 0), photo(512, 40)
    rot = cv2.getRotationMatrix2D((256.0, 256.0), 0.5, 1.01)
    M = np.vstack([rot, [0, 0, 1]]) @ np.array([[1, 0, 1.0], [0, 1, 0], [0, 0, 1]])
    out = {}
    out["warp_2d"] = timeit(lambda: cv2.warpPerspective(img, M, (512, 512), borderMode=cv2.BORDER_REPLICATE), a.runs)
    out["color_match_lab"] = timeit(lambda: colors.maintain_colors(img, sample, "LAB"), a.runs)
    out["contrast"] = timeit(lambda: (img * 1.05).round().astype(np.uint8), a.runs)
    out["unsharp_k5"] = timeit(lambda: sharp.unsharp_mask(img, (5, 5), 1.0, 0.1, 0), a.runs)
    out["noise_perlin"] = timeit(lambda: noise.add_noise(img, 0.065, 42, "perlin", (8, 8, 4, 0.5), None, False), a.runs)
    with tempfile.TemporaryDirectory() as d:
        p = str(Path(d) / "f.png")
        out["png_write"] = timeit(lambda: cv2.imwrite(p, img), a.runs)
        for i in range(10):
            cv2.imwrite(str(Path(d) / f"{i:09d}.png"), photo(512, i * 9))
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-r", "15", "-start_number", "0", "-i", str(Path(d) / "%09d.png"),
               "-frames:v", "10", "-c:v", "libx264", "-vf", "fps=15", "-pix_fmt", "yuv420p", "-crf", "17",
               "-preset", "slow", "-pattern_type", "sequence", str(Path(d) / "v.mp4")]
        out["video_encode_10_frames"] = timeit(lambda: subprocess.run(cmd, check=True), max(3, a.runs // 4))
    for k, v in out.items():
        print(f"{k:24s} {v:9.3f} ms")
    per_frame = sum(v for k, v in out.items() if k != "video_encode_10_frames") + out["video_encode_10_frames"] / 10
    print(f"{'per frame total':24s} {per_frame:9.3f} ms")


if __name__ == "__main__":
    main()
