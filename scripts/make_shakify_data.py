#!/usr/bin/env python3
"""Converts Camera Shakify's shake data into presets/shakify/shake_data.tsv (bundled by anim).

The data is Camera Shakify's `shake_data.py` (https://github.com/EatTheFuture/camera_shakify),
which its LICENSE_DATA.md dedicates to the public domain (CC0 1.0); the add-on's code is not used.

    git clone https://github.com/EatTheFuture/camera_shakify
    python3 scripts/make_shakify_data.py camera_shakify/shake_data.py presets/shakify/shake_data.tsv

Output: tab-separated lines. `shake KEY FPS DISPLAY_NAME` starts a shake; each of its curves
follows as `curve PATH AXIS FIRST_FRAME VALUES` (PATH `location` or `rotation_euler`, AXIS 0..2,
VALUES space-separated, one per frame from FIRST_FRAME on: the source's frames are consecutive
whole numbers, which this script checks). Values are written as Python's shortest repr, so they
parse back to the same doubles. Needs only the Python standard library.
"""

import ast
import sys


def load(path):
    """SHAKE_LIST from shake_data.py, read as a literal (the file is not executed)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "SHAKE_LIST":
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path}: no SHAKE_LIST")


def main():
    src, out = sys.argv[1], sys.argv[2]
    shakes = load(src)
    lines = [
        "# Camera Shakify shake data: public domain (CC0 1.0), from EatTheFuture/camera_shakify",
        "# shake_data.py (its LICENSE_DATA.md). Made by scripts/make_shakify_data.py; see there for",
        "# the format.",
    ]
    for key, (name, fps, curves) in shakes.items():
        assert "\t" not in name and " " not in key
        lines.append(f"shake\t{key}\t{fps!r}\t{name}")
        for (path, axis), points in sorted(curves.items()):
            frames = [f for f, _ in points]
            first = frames[0]
            assert frames == list(range(first, first + len(frames))), (key, path, axis)
            assert path in ("location", "rotation_euler") and axis in (0, 1, 2)
            values = " ".join(repr(float(v)) for _, v in points)
            lines.append(f"curve\t{path}\t{axis}\t{first}\t{values}")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
