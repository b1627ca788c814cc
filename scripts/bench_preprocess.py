#!/usr/bin/env python3
"""The Python side of `cargo bench --bench preprocess`: the same operations on the same 512x512
image with OpenCV, the A1111 extension's paths as models/make_preprocess_refs.py re-implements
them (OpenCV calls in the extension's order), and controlnet_aux. Prints the median of N runs in
ms per operation.

Same environment as models/make_preprocess_refs.py (opencv-python-headless 4.12.0.88,
controlnet_aux 0.0.10, matplotlib 3.9.2); run from the repository root:
    .venv/bin/python scripts/bench_preprocess.py [--runs 50] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
import make_preprocess_refs as refs  # noqa: E402


def timed(f, runs: int) -> float:
    f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return statistics.median(t) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=-1, help="cv2.setNumThreads (-1: OpenCV's default)")
    a = ap.parse_args()
    cv2.setNumThreads(a.threads)
    data = ROOT / "tests" / "data" / "preprocess"
    small = cv2.cvtColor(cv2.imread(str(data / "in_coffee.png")), cv2.COLOR_BGR2RGB)
    img = cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC)
    cases = json.loads((data / "cases.json").read_text())
    two = next(c for c in cases["pose"] if c["name"] == "two_overlapping")["poses"]
    edges64 = refs.a1111_canny(img, 64, 64, 64)
    soft = cv2.resize(img, (384, 384), interpolation=cv2.INTER_AREA)
    depth = (img[:, :, 1].astype(np.float32) * np.float32(0.37) + np.float32(2.0))

    def depth_map():
        d = depth - depth.min()
        d /= d.max()
        return np.stack([(d * np.float32(255.0)).clip(0, 255).astype(np.uint8)] * 3, axis=2)

    from controlnet_aux.canny import CannyDetector

    canny_aux = CannyDetector()
    rows = [
        ("canny_rgb (cv2.Canny)", lambda: cv2.Canny(img, 100, 200)),
        ("a1111_canny_res512", lambda: refs.a1111_canny(img, 512, 100, 200)),
        ("a1111_canny_res64", lambda: refs.a1111_canny(img, 64, 64, 64)),
        ("fit_edges64_to_512_thinned", lambda: refs.fit(edges64, "Crop and Resize", 512, 512)),
        ("fit_soft_384_to_512_cubic", lambda: refs.fit(soft, "Just Resize", 512, 512)),
        ("fit_512_to_256_area", lambda: refs.fit(img, "Just Resize", 256, 256)),
        ("fit_512_to_384_area", lambda: refs.fit(img, "Just Resize", 384, 384)),
        ("fit_512_to_768x512_fill", lambda: refs.fit(img, "Resize and Fill", 768, 512)),
        ("draw_poses_two_full (controlnet_aux)", lambda: refs.draw_controlnet_aux(two, 512, 512)),
        ("depth_to_map (numpy, float32)", depth_map),
        ("controlnet_aux CannyDetector, 512", lambda: canny_aux(img, 100, 200, detect_resolution=512,
                                                                image_resolution=512, output_type="np")),
    ]
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, median of {a.runs}")
    for name, f in rows:
        print(f"{name:40} {timed(f, a.runs):8.3f} ms")


if __name__ == "__main__":
    main()
