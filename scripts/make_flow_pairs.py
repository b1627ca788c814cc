"""Makes the image pairs that the optical-flow tests measure anim against OpenCV on.

Every pair is made from real photographs (scikit-image's bundled data, public domain / CC0 as
its data/README.txt says), never synthetic noise:

* known camera motion: a crop of a photo and the same photo moved by a known transform (a
  sub-pixel shift, a rotation with a zoom, a large shift, a homography) with cv2.warpPerspective
  (bilinear, reflected borders); `pairs.json` keeps each matrix, so the true forward flow of a
  pixel p is `M·p − p`;
* a moving subject: a pan over one photo with a patch of another photo sliding the other way on
  top (occlusions and two motions, as in real footage);
* a real pair of two cameras: scikit-image's `motorcycle_left/right` (Middlebury 2014 stereo).

Run with a venv holding numpy, opencv-python-headless and scikit-image
(`python3 -m venv v && v/bin/pip install numpy opencv-python-headless scikit-image`):
`v/bin/python scripts/make_flow_pairs.py` writes tests/data/flow/pairs/.
"""
import json
import os

import cv2
import numpy as np
import skimage.data as data

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "flow", "pairs")


def save(name, a, b, meta):
    cv2.imwrite(os.path.join(OUT, f"{name}_a.png"), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    cv2.imwrite(os.path.join(OUT, f"{name}_b.png"), cv2.cvtColor(b, cv2.COLOR_RGB2BGR))
    meta.update(width=a.shape[1], height=a.shape[0])
    return meta


def moved(img, m, w, h, x0, y0):
    """The crop (x0, y0, w, h) of img, and the same crop of img moved by the 3x3 matrix m
    (in crop coordinates)."""
    t = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    a = cv2.warpPerspective(img, t, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    b = cv2.warpPerspective(img, m @ t, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT_101)
    return a, b


def rot_zoom(deg, zoom, cx, cy):
    m = cv2.getRotationMatrix2D((cx, cy), deg, zoom)
    return np.vstack([m, [0, 0, 1]])


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {}
    astro, coffee, chelsea, rocket = data.astronaut(), data.coffee(), data.chelsea(), data.rocket()
    shift = lambda dx, dy: np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)
    cases = [
        ("shift", astro, shift(3.3, -1.7), 256, 256, 128, 40),
        ("rotzoom", coffee, rot_zoom(2.0, 1.02, 128, 96), 256, 192, 200, 120),
        ("bigshift", chelsea, shift(9.0, 6.0), 256, 192, 120, 60),
        ("homography", astro,
         np.array([[1.01, 0.02, -2.0], [-0.015, 0.995, 1.5], [4e-5, -3e-5, 1]]), 256, 256, 60, 200),
        # odd sizes, for the pyramids' rounding rules
        ("odd", rocket, rot_zoom(-1.5, 0.99, 230, 170) @ shift(1.2, 2.4), 461, 347, 90, 40),
    ]
    for name, img, m, w, h, x0, y0 in cases:
        a, b = moved(img, m, w, h, x0, y0)
        meta[name] = save(name, a, b, {"matrix": m.tolist(), "kind": "known motion"})

    # a pan over the coffee photo with a patch of the astronaut sliding across it
    w, h = 256, 192
    frames = []
    for k in range(2):
        bg = coffee[100 + 2 * k:100 + 2 * k + h, 150 + 5 * k:150 + 5 * k + w].copy()
        px, py = 60 - 7 * k, 50 + 3 * k
        bg[py:py + 80, px:px + 64] = astro[40:120, 200:264]
        frames.append(bg)
    meta["subject"] = save("subject", frames[0], frames[1],
                           {"kind": "pan (-5, -2) with a patch moving (-7, +3)"})

    # a real pair from two cameras, halved (cv2.INTER_AREA)
    left = cv2.resize(data.stereo_motorcycle()[0], (370, 250), interpolation=cv2.INTER_AREA)
    right = cv2.resize(data.stereo_motorcycle()[1], (370, 250), interpolation=cv2.INTER_AREA)
    meta["stereo"] = save("stereo", left, right, {"kind": "real stereo pair (Middlebury 2014)"})

    with open(os.path.join(OUT, "pairs.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
