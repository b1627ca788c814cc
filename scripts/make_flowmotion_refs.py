"""Makes the references of anim's flow motion (src/flow/warp.rs): Deforum's optical-flow warp,
its forward/backward consistency check and one hybrid-motion "Optical Flow" frame, written from
the formulas in the research notes (numpy, scipy, OpenCV), not from Deforum's code.

* warp: `out(x) = img(x − f·F(x))` done as Deforum does it: the image padded by int(0.25·h)
  rows and int(0.25·w) columns with BORDER_REFLECT_101, one `cv2.remap` (INTER_LINEAR,
  BORDER_REFLECT_101) over the padded image with the shifted map pasted in its centre (the rest
  an identity map), then the centre crop. A factor other than 1 comes from a schedule (a float64
  value), so the map is computed in float64 and stored as float32 once; a factor of 1 leaves the
  float32 flow as it is, each step rounded to float32.
* consistency: for each pixel p, q = p + F(p) clamped to [0, w−2]×[0, h−2], B̃ = bilinear(B, q)
  (float64); inconsistent where |F + B̃|² ≥ 0.01·(|B̃|² + |F|²) + 0.5: −0.75 there, 1 elsewhere;
  blurred (float32) with scipy's gaussian_filter(σ = blur, truncate = 1, zero padding); the flow
  multiplied by it.
* hybrid: OpenCV Farneback flows (Deforum's parameters) between two video frames, both ways, the
  consistency mask blurred by 2, the masked flow applied to a previous render.

Inputs are crops of the real-photo pairs in tests/data/flow/pairs. Run with a venv holding numpy,
scipy and opencv-python-headless (`python3 -m venv v && v/bin/pip install numpy scipy
opencv-python-headless`): `v/bin/python scripts/make_flowmotion_refs.py` writes
tests/data/flowmotion/. Flows are raw little-endian float32, row-major, `u, v` interleaved.
"""
import json
import os

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

HERE = os.path.dirname(os.path.abspath(__file__))
PAIRS = os.path.join(HERE, "..", "tests", "data", "flow", "pairs")
OUT = os.path.join(HERE, "..", "tests", "data", "flowmotion")


def read(name):
    """A pair image as OpenCV holds it (BGR)."""
    return cv2.imread(os.path.join(PAIRS, name), cv2.IMREAD_COLOR)


def save_png(name, bgr):
    cv2.imwrite(os.path.join(OUT, name), bgr)


def save_flow(name, flow):
    np.ascontiguousarray(flow, dtype="<f4").tofile(os.path.join(OUT, name))


def transform(img, flow, factor):
    """Deforum's optical-flow warp of img (h, w, 3 uint8) by flow (h, w, 2 float32)."""
    h, w = img.shape[:2]
    if factor != 1:
        m = -(flow.astype(np.float64) * np.float64(factor))
    else:
        m = -flow.astype(np.float32)
    m[..., 0] += np.arange(w)
    m[..., 1] += np.arange(h)[:, None]
    ph, pw = int(h * 0.25), int(w * 0.25)
    big = cv2.copyMakeBorder(img, ph, ph, pw, pw, cv2.BORDER_REFLECT_101)
    bh, bw = big.shape[:2]
    gx, gy = np.meshgrid(np.arange(bw), np.arange(bh))
    grid = np.dstack((gx, gy)).astype(np.float32)
    m[..., 0] += (bw - w) // 2
    m[..., 1] += (bh - h) // 2
    grid[(bh - h) // 2:(bh - h) // 2 + h, (bw - w) // 2:(bw - w) // 2 + w] = m
    out = cv2.remap(big, grid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out[ph:ph + h, pw:pw + w]


def consistency(fwd, bwd):
    """Channel 0 of the consistency mask (float64): −0.75 where inconsistent, else 1."""
    h, w = fwd.shape[:2]
    ys, xs = np.mgrid[:h, :w]
    qx = np.clip(xs + fwd[..., 0].astype(np.float64), 0, w - 2)
    qy = np.clip(ys + fwd[..., 1].astype(np.float64), 0, h - 2)
    x0, y0 = np.floor(qx).astype(int), np.floor(qy).astype(int)
    ax, ay = (qx - x0)[..., None], (qy - y0)[..., None]
    b = bwd.astype(np.float32)
    top = (1 - ax) * b[y0, x0] + ax * b[y0, x0 + 1]
    bot = (1 - ax) * b[y0 + 1, x0] + ax * b[y0 + 1, x0 + 1]
    bt = (1 - ay) * top + ay * bot
    f = fwd.astype(np.float64)
    diff = np.sum((f + bt) ** 2, axis=2)
    thr = 0.01 * np.sum(bt ** 2 + f ** 2, axis=2) + 0.5
    return np.where(diff >= thr, -0.75, 1.0)


def blurred(mask0, blur):
    """The mask as Deforum blurs it: three float32 channels (the other two are 1), σ = blur on
    the two image axes, truncate 1, zero padding; channel 0 returned."""
    m = np.ones(mask0.shape + (3,), np.float32)
    m[..., 0] = mask0
    if blur > 0:
        m = gaussian_filter(m, sigma=(blur, blur, 0), order=0, mode="constant", cval=0.0,
                            truncate=1)
    return m[..., 0]


def farneback(a, b):
    ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
    return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 5, 21, 5, 7, 1.2, 0)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(16)
    meta = {"opencv": cv2.__version__, "warp": [], "consistency": [], "hybrid": []}

    # warp: a 48x40 crop of a photo, per-pixel random flows reaching 0.3 and 0.45 of the size
    img = read("shift_a.png")[60:100, 80:128].copy()
    h, w = img.shape[:2]
    save_png("warp_src.png", img)
    for k, (reach, factor) in enumerate([(0.3, 1.0), (0.3, 0.7), (0.45, 1.0), (0.45, -1.3)]):
        flow = np.dstack((rng.uniform(-reach * w, reach * w, (h, w)),
                          rng.uniform(-reach * h, reach * h, (h, w)))).astype(np.float32)
        save_flow(f"warp_flow{k}.bin", flow)
        save_png(f"warp_out{k}.png", transform(img, flow, factor))
        meta["warp"].append({"flow": f"warp_flow{k}.bin", "out": f"warp_out{k}.png",
                             "factor": factor, "reach": reach, "width": w, "height": h})

    # consistency: a smooth forward flow, its inverse as backward flow, with a block where the
    # backward flow disagrees (an occlusion) and noise that puts pixels near the threshold
    h, w = 40, 48
    smooth = cv2.resize(rng.uniform(-2, 2, (4, 5, 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC) + np.float32([2.5, -1.5])
    fwd = smooth
    bwd = -smooth + rng.normal(0, 0.35, (h, w, 2)).astype(np.float32)
    bwd[10:22, 14:30] += np.float32([7.0, -5.0])
    save_flow("cons_fwd.bin", fwd)
    save_flow("cons_bwd.bin", bwd)
    m0 = consistency(fwd, bwd)
    save_flow("cons_mask0.bin", np.dstack((m0, m0)))
    for blur in (1, 2, 3):
        mb = blurred(m0, blur)
        save_flow(f"cons_mask_blur{blur}.bin", np.dstack((mb, mb)))
        save_flow(f"cons_filtered_blur{blur}.bin", fwd * mb[..., None])
        meta["consistency"].append({"blur": blur, "mask": f"cons_mask_blur{blur}.bin",
                                    "filtered": f"cons_filtered_blur{blur}.bin"})
    meta["consistency_size"] = [w, h]
    meta["consistency_inconsistent"] = int((m0 < 0).sum())

    # hybrid motion: video frames t−1, t (a rotation + zoom pair), a previous render (another
    # photo), Farneback both ways, consistency blurred by 2, factor 1 and 0.8
    va = read("rotzoom_a.png")[40:104, 32:128].copy()
    vb = read("rotzoom_b.png")[40:104, 32:128].copy()
    prev = read("homography_a.png")[100:164, 60:156].copy()
    h, w = va.shape[:2]
    fwd, bwd = farneback(va, vb), farneback(vb, va)
    save_flow("hyb_fwd.bin", fwd)
    save_flow("hyb_bwd.bin", bwd)
    save_png("hyb_prev.png", prev)
    for k, (cons, blur, factor) in enumerate([(True, 2, 1.0), (True, 2, 0.8), (False, 0, 1.0)]):
        flow = fwd
        if cons:
            flow = fwd * blurred(consistency(fwd, bwd), blur)[..., None]
        save_png(f"hyb_out{k}.png", transform(prev, flow.astype(np.float32), factor))
        meta["hybrid"].append({"consistency": cons, "blur": blur, "factor": factor,
                               "out": f"hyb_out{k}.png", "width": w, "height": h})
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
