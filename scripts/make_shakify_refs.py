#!/usr/bin/env python3
"""References for anim's Camera Shakify (tests/shakify.rs): tests/data/shakify/refs.json.

Deforum (sd-forge-deforum, Shaker) turns a shake into one table per axis: a SciPy CubicSpline
(default not-a-knot) through (frame * speed, value * intensity), sampled at
numpy.linspace(0, n + 1, int((n + 1) * fps / 24)) for a curve of n points; frame i reads entry
i % len(table). A 2D shake has no location curves: Deforum uses the two points (0, 0), (1, 0),
so its translation is 0. This script computes that from the data file anim bundles
(presets/shakify/shake_data.tsv) with SciPy, written here from that description.

At speed 1 the values are Deforum's. At another speed anim keeps the setting's promise instead
(docs/deforum-differences.md): frame i reads the speed-1 curve at the loop position
(i * speed) mod len(table), so the loop plays `speed` times as fast; the cases with speed != 1
compute that definition with the same SciPy spline.

Make the environment and run (from the repository root):

    python3 -m venv venv && venv/bin/pip install numpy scipy
    venv/bin/python scripts/make_shakify_refs.py

Versions used for the committed file: numpy 2.4.6, scipy 1.17.1.
"""

import json
import os

import numpy as np
from scipy.interpolate import CubicSpline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "presets", "shakify", "shake_data.tsv")
OUT = os.path.join(ROOT, "tests", "data", "shakify", "refs.json")

AXES = {
    "translation_x": ("location", 0),
    "translation_y": ("location", 1),
    "translation_z": ("location", 2),
    "rotation_3d_x": ("rotation_euler", 0),
    "rotation_3d_y": ("rotation_euler", 1),
    "rotation_3d_z": ("rotation_euler", 2),
}

# (shake key or display name, intensity, speed, fps, frames)
CASES = [
    ("INVESTIGATION", 1.0, 1.0, 24.0, 100),
    ("Investigation", 2.5, 1.0, 1.0, 40),
    ("THE_CLOSEUP", 0.7, 1.0, 30.0, 60),
    ("The Wedding", 1.0, 1.0, 12.0, 100),
    ("WALK_TO_THE_STORE", 3.0, 1.0, 60.0, 60),
    ("HandyCam Run", 1.3, 1.0, 24.0, 150),
    ("OUT_CAR_WINDOW", 0.4, 1.0, 8.0, 120),
    ("BIKE_ON_GRAVEL_2D", 1.0, 1.0, 20.0, 60),
    ("Spaceship Shake (2D)", 2.0, 1.0, 24.0, 60),
    ("THE_ZEEK_2D", 0.1, 1.0, 29.97, 60),
    ("INVESTIGATION", 1.0, 2.0, 24.0, 250),
    ("HANDYCAM_RUN", 1.5, 0.3, 15.0, 150),
    ("THE_WEDDING", 0.8, 2.7, 30.0, 150),
]


def read_data():
    shakes, current = {}, None
    for line in open(DATA, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        f = line.rstrip("\n").split("\t")
        if f[0] == "shake":
            current = {"name": f[3], "fps": float(f[2]), "curves": {}}
            shakes[f[1]] = current
        else:
            first = int(f[3])
            values = [float(v) for v in f[4].split(" ")]
            frames = list(range(first, first + len(values)))
            current["curves"][(f[1], int(f[2]))] = (frames, values)
    return shakes


def table(frames, values, intensity, speed, fps, source_fps):
    """Deforum's sampled table of one curve (and the spline at speed 1 for other speeds)."""
    n = len(frames)
    count = int((n + 1) * fps / source_fps)
    x = np.linspace(0, n + 1, count)
    spline = CubicSpline(np.array(frames, dtype=float) * speed, np.array(values) * intensity)
    return spline, x


def main():
    shakes = read_data()
    by_name = {s["name"]: k for k, s in shakes.items()}
    out = []
    for name, intensity, speed, fps, frames in CASES:
        key = name if name in shakes else by_name[name]
        shake = shakes[key]
        case = {"name": name, "intensity": intensity, "speed": speed, "fps": fps,
                "frames": frames, "table_len": {}, "values": {}}
        for axis, curve_key in AXES.items():
            if curve_key not in shake["curves"]:
                pts = ([0, 1], [0.0, 0.0])  # a 2D shake's location, as Deforum
            else:
                pts = shake["curves"][curve_key]
            spline, x = table(*pts, intensity, 1.0, fps, shake["fps"])
            m = len(x)
            case["table_len"][axis] = m
            if speed == 1.0:
                vals = spline(x)
                series = [float(vals[i % m]) for i in range(frames)]
            else:
                step = (len(pts[0]) + 1) / (m - 1) if m > 1 else 0.0
                pos = [(i * speed) % m for i in range(frames)]
                series = [float(spline(p * step)) for p in pos]
            case["values"][axis] = series
        out.append(case)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
