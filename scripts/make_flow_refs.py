"""Makes OpenCV's Farneback flows and Middlebury colour-wheel pictures that tests/flow.rs
measures anim against.

For the image pairs in tests/data/flow/pairs/ (scripts/make_flow_pairs.py), each frame is read
with cv2.imread (BGR) and turned grey with cv2.cvtColor(BGR2GRAY), as Deforum does, then
cv2.calcOpticalFlowFarneback runs with:

* Deforum's parameters (pyr 0.5, levels 5, winsize 21, 5 iterations, poly_n 7, sigma 1.2, box
  window) on shift, bigshift, odd (461x347: the rounding of odd level sizes), stereo,
  subject;
* a Gaussian window (pyr 0.5, levels 3, winsize 15, 3 iterations, poly_n 5, sigma 1.1,
  OPTFLOW_FARNEBACK_GAUSSIAN) on subject;
* levels 0 (a single level) on bigshift and levels 1 (two levels) on rotzoom, the other
  parameters Deforum's;
* Deforum's parameters with OPTFLOW_USE_INITIAL_FLOW on bigshift, the initial flow being the
  constant (8, 5).

Each flow is written as a gzip-compressed Middlebury .flo (`<case>.flo.gz`) in
tests/data/flow/farneback/; cases.json lists the cases and their parameters.

The colour wheel (Baker et al. 2007, as the MIT-licensed `flow_vis` package computes it:
normalise by the largest magnitude + 1e-5, 55-colour wheel, floor(255·colour)) is written as RGB
PNGs for a synthetic 64x64 flow u = (x-32)/4, v = (y-32)/4 (wheel_grid.png) and for the shift
pair's Deforum flow (wheel_shift.png), in tests/data/flow/.

Made with opencv-python-headless==5.0.0 and numpy 2.4.6 (`python3 -m venv v &&
v/bin/pip install numpy==2.4.6 opencv-python-headless==5.0.0`): `v/bin/python
scripts/make_flow_refs.py`.
"""
import gzip
import json
import os

import cv2
import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "flow")
PAIRS = os.path.join(ROOT, "pairs")
OUT = os.path.join(ROOT, "farneback")

DEFORUM = dict(pyr_scale=0.5, levels=5, winsize=21, iterations=5, poly_n=7, poly_sigma=1.2,
               gaussian=False)
CASES = [
    ("shift", "shift", DEFORUM),
    ("bigshift", "bigshift", DEFORUM),
    ("odd", "odd", DEFORUM),
    ("stereo", "stereo", DEFORUM),
    ("subject", "subject", DEFORUM),
    ("subject_gaussian", "subject",
     dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.1,
          gaussian=True)),
    ("bigshift_levels0", "bigshift", dict(DEFORUM, levels=0)),
    ("rotzoom_levels1", "rotzoom", dict(DEFORUM, levels=1)),
    ("bigshift_init", "bigshift", dict(DEFORUM, init=[8.0, 5.0])),
]


def write_flo_gz(path, flow):
    h, w = flow.shape[:2]
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as f:
        f.write(np.array([202021.25], "<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(flow, "<f4").tobytes())


def gray(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)


def farneback(a, b, p):
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p["gaussian"] else 0
    flow = None
    if "init" in p:
        flow = np.empty(a.shape + (2,), np.float32)
        flow[..., 0], flow[..., 1] = p["init"]
        flags |= cv2.OPTFLOW_USE_INITIAL_FLOW
    return cv2.calcOpticalFlowFarneback(a, b, flow, p["pyr_scale"], p["levels"], p["winsize"],
                                        p["iterations"], p["poly_n"], p["poly_sigma"], flags)


def colorwheel():
    """The 55 colours: red→yellow 15, yellow→green 6, green→cyan 4, cyan→blue 11,
    blue→magenta 13, magenta→red 6; each ramp is floor(255·i/n)."""
    segs = [(15, 0, 1, +1), (6, 1, 0, -1), (4, 1, 2, +1), (11, 2, 1, -1), (13, 2, 0, +1),
            (6, 0, 2, -1)]
    wheel = []
    for n, full, ramp, sign in segs:
        for i in range(n):
            c = [0.0, 0.0, 0.0]
            c[full] = 255.0
            step = np.floor(255.0 * i / n)
            c[ramp] = step if sign > 0 else 255.0 - step
            wheel.append(c)
    return np.array(wheel)


def flow_colour(flow):
    """flow_vis.flow_to_color(flow) in RGB, with numpy's float32/float64 mix."""
    u, v = flow[..., 0], flow[..., 1]
    rad_max = np.max(np.sqrt(np.square(u) + np.square(v)))
    u = u / (rad_max + 1e-5)
    v = v / (rad_max + 1e-5)
    wheel = colorwheel()
    n = wheel.shape[0]
    rad = np.sqrt(np.square(u) + np.square(v))
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int32)
    k1 = k0 + 1
    k1[k1 == n] = 0
    f = fk - k0
    out = np.zeros(u.shape + (3,), np.uint8)
    for i in range(3):
        col = (1 - f) * wheel[k0, i] / 255.0 + f * wheel[k1, i] / 255.0
        inside = rad <= 1
        col[inside] = 1 - rad[inside] * (1 - col[inside])
        col[~inside] = col[~inside] * 0.75
        out[..., i] = np.floor(255 * col)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    listing = {}
    flows = {}
    for name, pair, p in CASES:
        a = gray(os.path.join(PAIRS, f"{pair}_a.png"))
        b = gray(os.path.join(PAIRS, f"{pair}_b.png"))
        flow = farneback(a, b, p)
        flows[name] = flow
        write_flo_gz(os.path.join(OUT, f"{name}.flo.gz"), flow)
        listing[name] = dict(p, pair=pair)
        print(name, flow.shape, float(np.abs(flow).max()))
    listing["_made_with"] = f"opencv-python-headless {cv2.__version__}, numpy {np.__version__}"
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1, sort_keys=True)
        f.write("\n")
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    grid = np.stack([(x - 32) / 4, (y - 32) / 4], -1).astype(np.float32)
    for name, flow in [("wheel_grid", grid), ("wheel_shift", flows["shift"])]:
        rgb = flow_colour(flow)
        cv2.imwrite(os.path.join(ROOT, f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
