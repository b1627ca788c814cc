"""OpenCV DIS optical-flow references for tests/flow_dis.rs.

Runs `cv2.DISOpticalFlow` on the real-photo pairs in tests/data/flow/pairs/ (grey levels from
`cv2.cvtColor(BGR2GRAY)` of the PNGs, as Deforum makes them) with the presets Deforum uses:
`DIS Medium` (PRESET_MEDIUM) and `DIS Fine` (PRESET_FAST, then gradient-descent iterations 192,
finest scale 0, patch 8, stride 4), plus one case with an initial flow (OpenCV's temporal
candidates, as Deforum passes the previous flow). Writes Middlebury .flo files (f32 202021.25,
i32 width, i32 height, interleaved u, v as f32 little-endian) to tests/data/flow/dis/.

Made with opencv-python-headless 5.1.0 (numpy 2.4.6); results do not depend on the thread
count (OpenCV's DIS uses 8 fixed stripes). To rebuild:

    python -m venv venv && venv/bin/pip install opencv-python-headless==5.1.0 numpy
    venv/bin/python scripts/make_dis_refs.py
"""

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "flow" / "pairs"
OUT = ROOT / "tests" / "data" / "flow" / "dis"

# (preset name, pair) cases; chosen to keep the files to a few MB while covering an odd size,
# sub-pixel, large and projective motion, a real stereo pair and an independently moving patch.
CASES = [
    ("medium", "shift"),
    ("medium", "rotzoom"),
    ("medium", "odd"),
    ("medium", "subject"),
    ("fine", "bigshift"),
    ("fine", "homography"),
    ("fine", "stereo"),
]


def make(preset):
    if preset == "medium":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    dis.setGradientDescentIterations(192)
    dis.setFinestScale(0)
    dis.setPatchSize(8)
    dis.setPatchStride(4)
    return dis


def gray(name, side):
    img = cv2.imread(str(PAIRS / f"{name}_{side}.png"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def write_flo(path, flow):
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        np.array([202021.25], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        flow.astype("<f4").tofile(f)


def read_flo(path):
    with open(path, "rb") as f:
        assert np.fromfile(f, "<f4", 1)[0] == 202021.25
        w, h = np.fromfile(f, "<i4", 2)
        return np.fromfile(f, "<f4", 2 * w * h).reshape(h, w, 2)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for preset, pair in CASES:
        a, b = gray(pair, "a"), gray(pair, "b")
        flow = make(preset).calc(a, b, None)
        write_flo(OUT / f"{preset}_{pair}.flo", flow)
        print(preset, pair, flow.shape, float(np.abs(flow).mean()))
    # Initial flow: DIS Fine on `subject` starting from the Medium flow of the same pair.
    a, b = gray("subject", "a"), gray("subject", "b")
    init = read_flo(OUT / "medium_subject.flo").copy()
    flow = make("fine").calc(a, b, init)
    write_flo(OUT / "fine_subject_init.flo", flow)
    print("fine subject init", float(np.abs(flow).mean()))


if __name__ == "__main__":
    main()
