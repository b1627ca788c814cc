#!/usr/bin/env python3
"""Reference outputs for anim's ControlNet preprocessors (tests/preprocess.rs).

Writes tests/data/preprocess/: input images, their expected control maps and cases.json, which
lists every case with its parameters. What the references are:

- canny: `cv2.Canny(rgb, low, high)` (aperture 3, L1) on synthetic images (gradient, circles,
  strokes, noise) and two photographs from scikit-image's data module, both CC0: `coffee`
  (Rachel Michetti) and `chelsea` (Stefan van der Walt), cropped to 160x120;
- a1111_canny: the A1111 ControlNet extension's canny path, written here from its behaviour:
  short side to the processor resolution (INTER_CUBIC up, INTER_AREA down, sides rounded half to
  even), edge padding to multiples of 64, cv2.Canny, crop;
- fit: the extension's resize modes (Just Resize, Crop and Resize, Resize and Fill with the
  median border colour) and `high_quality_resize` (NEAREST for 3-199 colours, AREA down, CUBIC
  up; binary maps averaged and re-binarised with Otsu, one-pixel edges thinned), written here
  from the extension's behaviour with OpenCV calls;
- pose: controlnet_aux's `draw_poses` (normalised keypoints), and the extension's drawing
  rules for poses with hidden points (pixel keypoints, hidden points skipped), drawn here with
  cv2.ellipse2Poly / fillConvexPoly / circle / line;
- depth: the extension's MiDaS normalisation (d - min, / max, * 255, truncated) in float32;
- dwpose: the extension's DWPose pipeline (letterbox, YOLOX decoding, NMS, affine crop, SimCC
  decoding, OpenPose mapping) written here from its behaviour, run with onnxruntime on the tiny
  models of models/make_tiny_dwpose.py.

The A1111 extension and Deforum are GPL/AGPL: nothing here is copied from them, the behaviour
is re-implemented from its description. controlnet_aux (Apache-2.0) is called, not copied.

Pinned versions (x86-64 Linux): opencv-python-headless 4.12.0.88 (OpenCV 4, as A1111 installs;
OpenCV 5 draws thick lines that leave the canvas and warps affinely differently),
controlnet_aux 0.0.10, matplotlib 3.9.2 (controlnet_aux's hand colours), numpy 2.4.6,
scikit-image 0.26.0, onnx 1.23.2, onnxruntime 1.32.0. The venv:
    python3 -m venv .venv
    .venv/bin/pip install opencv-python-headless==4.12.0.88 controlnet_aux==0.0.10 \\
        matplotlib==3.9.2 scikit-image==0.26.0 onnx==1.23.2 onnxruntime==1.32.0 torch
    .venv/bin/python models/make_tiny_dwpose.py
    .venv/bin/python models/make_preprocess_refs.py
(controlnet_aux imports torch; nothing here runs it.)
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "preprocess"
DWPOSE = ROOT / "models" / "tiny-dwpose"


def save_rgb(name: str, img: np.ndarray) -> str:
    if img.ndim == 2:
        cv2.imwrite(str(OUT / name), img)
    else:
        cv2.imwrite(str(OUT / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return name


# ---------------------------------------------------------------------------------------------
# inputs


def synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    grad = np.stack([xx * 2, yy * 2 + 20, (xx + yy)], axis=2).clip(0, 255).astype(np.uint8)
    grad[30:60, 40:90] //= 2
    circles = np.zeros((h, w, 3), np.uint8)
    for i in range(7):
        c = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        cv2.circle(circles, c, int(rng.integers(4, 30)), [int(v) for v in rng.integers(40, 256, 3)], -1, cv2.LINE_AA)
    strokes = np.full((h, w, 3), 235, np.uint8)
    for i in range(12):
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(strokes, p, q, [int(v) for v in rng.integers(0, 120, 3)], int(rng.integers(1, 4)), cv2.LINE_AA)
    noise = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    return {"gradient": grad, "circles": circles, "strokes": strokes, "noise": noise}


def photos() -> dict[str, np.ndarray]:
    import skimage.data

    return {
        "coffee": np.ascontiguousarray(skimage.data.coffee()[70:190, 200:360]),
        "chelsea": np.ascontiguousarray(skimage.data.chelsea()[50:170, 120:280]),
    }


# ---------------------------------------------------------------------------------------------
# the extension's resize path, re-implemented


def np_round(x: float) -> int:
    return int(np.round(x))


def resize_with_pad(img: np.ndarray, res: int) -> tuple[np.ndarray, int, int]:
    h, w = img.shape[:2]
    k = float(res) / float(min(h, w))
    th, tw = np_round(h * k), np_round(w * k)
    inter = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    scaled = cv2.resize(img, (tw, th), interpolation=inter)
    ph = int(math.ceil(th / 64.0) * 64) - th
    pw = int(math.ceil(tw / 64.0) * 64) - tw
    return np.pad(scaled, [[0, ph], [0, pw], [0, 0]], mode="edge"), tw, th


def a1111_canny(img: np.ndarray, res: int, low: int, high: int) -> np.ndarray:
    padded, tw, th = resize_with_pad(img, res)
    edges = cv2.Canny(padded, low, high)[:th, :tw]
    return cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB)


def keep_line_maxima(g: np.ndarray) -> np.ndarray:
    """Pixels that are maxima (ties kept) along one of 4 directions, else 0."""
    out = np.zeros_like(g)
    for k in ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
              [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]]):
        peak = cv2.dilate(g, np.array(k, np.uint8)) == g
        out[peak] = g[peak]
    return out


def thin(b: np.ndarray, prune: bool) -> np.ndarray:
    """Hit-or-miss thinning: up to 32 passes of 8 patterns, then one of 8 pruning patterns."""
    def rotations(raw):
        return [np.rot90(np.array(m, np.int32), k) for k in range(4) for m in raw]

    thinning = rotations([[[-1, -1, -1], [0, 1, 0], [1, 1, 1]], [[0, -1, -1], [1, 1, -1], [0, 1, 0]]])
    pruning = rotations([[[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]]])

    def one_pass(img, patterns):
        changed = False
        for p in patterns:
            hit = cv2.morphologyEx(img, cv2.MORPH_HITMISS, p) > 127
            if hit.any():
                img[hit] = 0
                changed = True
        return changed

    b = b.copy()
    for _ in range(32):
        if not one_pass(b, thinning):
            break
    if prune:
        one_pass(b, pruning)
    return b


def colour_count(x: np.ndarray) -> int:
    """Distinct colours, by sorting the pixels (np.unique(axis=0) is the same, only slower)."""
    px = x.reshape(-1, 3)
    px = px[np.lexsort(px.T)]
    return 1 + int(np.any(px[1:] != px[:-1], axis=1).sum())


def hq_resize(x: np.ndarray, w: int, h: int) -> np.ndarray:
    if x.shape[:2] == (h, w):
        return x
    colours = colour_count(x)
    smaller = w * h < x.shape[0] * x.shape[1]
    bigger = w * h > x.shape[0] * x.shape[1]
    binary = colours == 2 and x.min() < 16 and x.max() > 240
    one_px = False
    if binary:
        opened = cv2.dilate(cv2.erode(x, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
        one_px = (opened < x).sum() * 2 > (x > 127).sum()
    if 2 < colours < 200:
        inter = cv2.INTER_NEAREST
    elif smaller:
        inter = cv2.INTER_AREA
    else:
        inter = cv2.INTER_CUBIC
    y = cv2.resize(x, (w, h), interpolation=inter)
    if binary:
        g = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        if one_px:
            g = keep_line_maxima(g)
            _, g = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            g = thin(g, bigger)
        else:
            _, g = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([g] * 3, axis=2)
    return y


def fit(m: np.ndarray, mode: str, w: int, h: int) -> np.ndarray:
    if mode == "Just Resize":
        return hq_resize(m, w, h)
    oh, ow = m.shape[:2]
    k0, k1 = h / oh, w / ow
    if mode == "Resize and Fill":
        k = min(k0, k1)
        border = np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]], axis=0)
        colour = np.median(border, axis=0).astype(np.uint8)
        out = np.tile(colour[None, None], [h, w, 1])
        s = hq_resize(m, np_round(ow * k), np_round(oh * k))
        py, px = max(0, (h - s.shape[0]) // 2), max(0, (w - s.shape[1]) // 2)
        out[py:py + s.shape[0], px:px + s.shape[1]] = s
        return out
    k = max(k0, k1)
    s = hq_resize(m, np_round(ow * k), np_round(oh * k))
    py, px = max(0, (s.shape[0] - h) // 2), max(0, (s.shape[1] - w) // 2)
    return s[py:py + h, px:px + w]


# ---------------------------------------------------------------------------------------------
# pose drawing with the extension's rules (pixel keypoints, hidden points as None)

LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
         (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
COLOURS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
           [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
           [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85]]
HAND = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
        (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]


def scale_of(points, w, h):
    vis = [p for p in points if p is not None]
    if vis and all(abs(p[0]) <= 1 and abs(p[1]) <= 1 for p in vis):
        return float(w), float(h)
    return 1.0, 1.0


def hue(e: int, n: int) -> list[float]:
    import colorsys

    return [c * 255 for c in colorsys.hsv_to_rgb(e / float(n), 1.0, 1.0)]


def draw(poses: list[dict], w: int, h: int) -> np.ndarray:
    canvas = np.zeros((h, w, 3), np.uint8)
    for p in poses:
        body = p["body"]
        sw, sh = scale_of(body, w, h)
        for (a, b), col in zip(LIMBS, COLOURS):
            if body[a] is None or body[b] is None:
                continue
            xs = np.array([body[a][0], body[b][0]]) * sw
            ys = np.array([body[a][1], body[b][1]]) * sh
            length = math.sqrt((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2)
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            poly = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in col])
        for k, col in zip(body, COLOURS):
            if k is not None:
                cv2.circle(canvas, (int(k[0] * sw), int(k[1] * sh)), 4, col, thickness=-1)
        for hand in (p.get("left_hand") or [], p.get("right_hand") or []):
            if not hand:
                continue
            sw, sh = scale_of(hand, w, h)
            for e, (a, b) in enumerate(HAND):
                if hand[a] is None or hand[b] is None:
                    continue
                p1 = (int(hand[a][0] * sw), int(hand[a][1] * sh))
                p2 = (int(hand[b][0] * sw), int(hand[b][1] * sh))
                if min(p1 + p2) > 0:
                    cv2.line(canvas, p1, p2, hue(e, len(HAND)), thickness=2)
            for k in hand:
                if k is not None and int(k[0] * sw) > 0 and int(k[1] * sh) > 0:
                    cv2.circle(canvas, (int(k[0] * sw), int(k[1] * sh)), 4, (0, 0, 255), thickness=-1)
        face = p.get("face") or []
        if face:
            sw, sh = scale_of(face, w, h)
            for k in face:
                if k is not None and int(k[0] * sw) > 0 and int(k[1] * sh) > 0:
                    cv2.circle(canvas, (int(k[0] * sw), int(k[1] * sh)), 3, (255, 255, 255), thickness=-1)
    return canvas


def draw_controlnet_aux(poses: list[dict], w: int, h: int) -> np.ndarray:
    from controlnet_aux.open_pose import draw_poses, PoseResult
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    def kps(points):
        if not points:
            return None
        return [None if p is None else Keypoint(p[0], p[1]) for p in points]

    res = [PoseResult(BodyResult(kps(p["body"]), 0.0, 0), kps(p.get("left_hand")), kps(p.get("right_hand")),
                      kps(p.get("face"))) for p in poses]
    return draw_poses(res, h, w)


def pose_cases() -> list[tuple[str, list[dict], int, int, bool]]:
    rng = np.random.default_rng(77)

    def person(cx, cy, s, hidden=(), hands=True, face=True, jitter=0.0):
        body = [(144, 70), (144, 110), (112, 110), (92, 160), (82, 205), (176, 110), (196, 160), (206, 210),
                (124, 220), (120, 290), (118, 352), (164, 220), (168, 290), (170, 352), (136, 62), (152, 62),
                (126, 66), (162, 66)]
        body = [(round((x - 144) * s + cx + rng.uniform(-jitter, jitter), 2),
                 round((y - 200) * s + cy + rng.uniform(-jitter, jitter), 2)) for x, y in body]
        body = [None if i in hidden else p for i, p in enumerate(body)]
        out = {"body": body}
        if hands:
            for key, (wx, wy), side in (("right_hand", body[4] or (0, 0), -1), ("left_hand", body[7] or (0, 0), 1)):
                pts = [(wx, wy)]
                for f in range(5):
                    for j in range(1, 5):
                        pts.append((round(wx + side * (2 + 3 * j) * s * math.cos(0.3 * (f - 2)), 2),
                                    round(wy + 3 * j * s * (1 + 0.2 * f), 2)))
                out[key] = pts
        if face and body[0] is not None:
            fx, fy = body[0]
            out["face"] = [(round(fx + 14 * s * math.cos(2 * math.pi * i / 68), 2),
                            round(fy - 4 * s + 18 * s * math.sin(2 * math.pi * i / 68), 2)) for i in range(68)]
            out["face"] += [body[14], body[15]]
        return out

    w, h = 256, 192
    one = [person(128.3, 100.7, 0.45, jitter=2.0)]
    two = [person(110.2, 96.6, 0.45, jitter=2.0), person(150.9, 104.1, 0.5, jitter=2.0)]
    missing = [person(128.5, 95.5, 0.45, hidden=(4, 9, 10, 16), hands=False, face=False, jitter=2.0)]
    edge = [person(20.5, 180.25, 0.6, jitter=1.0), person(250.0, 20.0, 0.6, jitter=1.0)]
    # hidden points inside hands and face (the extension skips them; controlnet_aux cannot draw these)
    partial = [person(128.4, 98.9, 0.45, jitter=2.0)]
    partial[0]["left_hand"][6] = None
    partial[0]["left_hand"][13] = None
    partial[0]["face"][3] = None
    partial[0]["face"][69] = None

    def normalise(poses):
        def n(points):
            return None if points is None else [None if p is None else (round(p[0] / w, 6), round(p[1] / h, 6))
                                                for p in points]
        return [{k: n(v) for k, v in p.items()} for p in poses]

    return [
        ("one_person", normalise(one), w, h, True),
        ("two_overlapping", normalise(two), w, h, True),
        ("missing_points", normalise(missing), w, h, True),
        ("at_the_edges", edge, w, h, False),
        ("pixels_two", two, w, h, False),
        ("pixels_partial", partial, w, h, False),
    ]


# ---------------------------------------------------------------------------------------------
# DWPose, re-implemented from the extension's behaviour, on onnxruntime


def dw_detect(sess, img: np.ndarray):
    ih, iw = 640, 640
    r = min(ih / img.shape[0], iw / img.shape[1])
    rw, rh = int(img.shape[1] * r), int(img.shape[0] * r)
    canvas = np.full((ih, iw, 3), 114, np.uint8)
    canvas[:rh, :rw] = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
    x = np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32)[None]
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    grid, strides = [], []
    for s in (8, 16, 32):
        gy, gx = np.mgrid[0:ih // s, 0:iw // s]
        grid.append(np.stack([gx.ravel(), gy.ravel()], 1))
        strides.append(np.full((gx.size, 1), s))
    grid, strides = np.concatenate(grid), np.concatenate(strides)
    out[:, :2] = (out[:, :2] + grid) * strides
    out[:, 2:4] = np.exp(out[:, 2:4]) * strides
    boxes = np.empty_like(out[:, :4])
    boxes[:, 0] = out[:, 0] - out[:, 2] / 2.0
    boxes[:, 1] = out[:, 1] - out[:, 3] / 2.0
    boxes[:, 2] = out[:, 0] + out[:, 2] / 2.0
    boxes[:, 3] = out[:, 1] + out[:, 3] / 2.0
    boxes /= r
    scores = out[:, 4:5] * out[:, 5:]
    found, people = False, []
    for c in range(scores.shape[1]):
        keep = scores[:, c] > 0.1
        if not keep.any():
            continue
        found = True
        if c != 0:
            continue
        b, s = boxes[keep], scores[keep, c]
        order = np.argsort(-s, kind="stable")
        area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        while order.size:
            i = order[0]
            if float(s[i]) > 0.3:
                people.append(b[i].astype(np.float64))
            rest = order[1:]
            iw_ = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
            ih_ = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
            inter = iw_ * ih_
            order = rest[inter / (area[i] + area[rest] - inter) <= np.float32(0.45)]
    return people if found else None


def dw_pose(sess, img: np.ndarray, box: np.ndarray) -> np.ndarray:
    iw, ih = 288, 384
    center = np.array([box[0] + box[2], box[1] + box[3]]) * 0.5
    scale = np.array([box[2] - box[0], box[3] - box[1]]) * 1.25
    aspect = iw / ih
    scale = np.array([scale[0], scale[0] / aspect]) if scale[0] > scale[1] * aspect else np.array([scale[1] * aspect, scale[1]])
    src = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, -0.5 * scale[0]])
    d = src[0] - src[1]
    src[2] = src[1] + np.array([-d[1], d[0]], np.float32)
    dst = np.array([[iw * 0.5, ih * 0.5], [iw * 0.5, ih * 0.5 - iw * 0.5], [0, ih * 0.5 - iw * 0.5]], np.float32)
    m = cv2.getAffineTransform(src, dst)
    crop = cv2.warpAffine(img, m, (iw, ih), flags=cv2.INTER_LINEAR)
    x = (crop - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    x = x.transpose(2, 0, 1)[None].astype(np.float32)
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    sx, sy = (outs[0], outs[1]) if outs[0].shape[-1] == 2 * iw else (outs[1], outs[0])
    sx, sy = sx[0], sy[0]
    loc = np.stack([sx.argmax(1), sy.argmax(1)], -1).astype(np.float32)
    score = np.minimum(sx.max(1), sy.max(1))
    loc[score <= 0] = -1
    kp = (loc / np.float32(2.0)) / np.array([iw, ih]) * scale + center - scale / 2
    return np.concatenate([kp, score[:, None].astype(np.float64)], 1)


def to_openpose(p: np.ndarray) -> dict:
    def kp(v):
        return None if v[2] < 0.3 else [float(v[0]), float(v[1]), float(v[2])]

    neck = (p[5] + p[6]) / 2
    neck[2] = 1.0 if (p[5, 2] > 0.3 and p[6, 2] > 0.3) else 0.0
    order = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    body = [kp(neck) if i is None else kp(p[i]) for i in order]

    def part(a, b):
        v = [kp(q) for q in p[a:b]]
        return [] if all(q is None for q in v) else v

    face = part(23, 91)
    if face:
        face += [body[14], body[15]]
    return {"body": body, "left_hand": part(91, 112), "right_hand": part(112, 133), "face": face}


def dwpose_refs(img: np.ndarray) -> tuple[list[dict], np.ndarray, np.ndarray]:
    import onnxruntime as ort

    det = ort.InferenceSession(str(DWPOSE / "yolox.onnx"), providers=["CPUExecutionProvider"])
    pose = ort.InferenceSession(str(DWPOSE / "pose.onnx"), providers=["CPUExecutionProvider"])

    def detect(image):
        boxes = dw_detect(det, image)
        if boxes is None:
            return []
        if not boxes:
            boxes = [np.array([0, 0, image.shape[1], image.shape[0]], np.float64)]
        return [to_openpose(dw_pose(pose, image, b)) for b in boxes]

    poses = detect(img)
    drawn = draw([{k: [None if q is None else q[:2] for q in v] if isinstance(v, list) else v for k, v in p.items()}
                  for p in poses], img.shape[1], img.shape[0])
    padded, tw, th = resize_with_pad(img, 256)
    pp = detect(padded)
    a1111 = draw([{k: [None if q is None else q[:2] for q in v] for k, v in p.items()} for p in pp],
                 padded.shape[1], padded.shape[0])[:th, :tw]
    return poses, drawn, a1111


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cases: dict[str, list] = {"canny": [], "a1111_canny": [], "fit": [], "pose": [], "depth": [], "dwpose": []}
    inputs = {**synthetic(), **photos()}
    for name, img in inputs.items():
        save_rgb(f"in_{name}.png", img)

    thresholds = {"coffee": [(100, 200), (64, 64), (50, 150), (200, 100)],
                  "chelsea": [(100, 200), (64, 64), (1, 255)]}
    for name in inputs:
        for low, high in thresholds.get(name, [(100, 200), (64, 64)]):
            edges = cv2.Canny(inputs[name], low, high)
            cases["canny"].append({"input": f"in_{name}.png", "low": low, "high": high,
                                   "expected": save_rgb(f"canny_{name}_{low}_{high}.png", edges)})
    for name, res, low, high in [("coffee", 64, 64, 64), ("coffee", 512, 100, 200), ("coffee", 150, 100, 200),
                                 ("chelsea", 96, 100, 200), ("chelsea", 300, 64, 64), ("noise", 40, 100, 200)]:
        m = a1111_canny(inputs[name], res, low, high)
        cases["a1111_canny"].append({"input": f"in_{name}.png", "res": res, "low": low, "high": high,
                                     "expected": save_rgb(f"a1111_canny_{name}_{res}.png", m[:, :, 0])})

    # maps to fit: soft (many colours), segmentation-like (few), one-pixel edges, thick binary
    soft = cv2.resize(cv2.GaussianBlur(inputs["coffee"], (0, 0), 1.5), (80, 60), interpolation=cv2.INTER_AREA)
    seg = (cv2.resize(inputs["chelsea"], (100, 75), interpolation=cv2.INTER_AREA) // 64 * 64 + 32).astype(np.uint8)
    edges64 = a1111_canny(inputs["coffee"], 64, 64, 64)
    thick = np.zeros((70, 90, 3), np.uint8)
    cv2.circle(thick, (40, 35), 20, (255, 255, 255), -1)
    cv2.rectangle(thick, (60, 5), (85, 60), (255, 255, 255), -1)
    maps = {"soft": soft, "seg": seg, "edges64": edges64, "thick": thick}
    for name, m in maps.items():
        save_rgb(f"map_{name}.png", m)
    targets = {"soft": [(160, 120), (50, 40), (90, 150)], "seg": [(256, 192), (64, 96)],
               "edges64": [(512, 512), (512, 384), (48, 40)], "thick": [(256, 256), (45, 35)]}
    for name, m in maps.items():
        for w, h in targets[name]:
            for mode in ("Just Resize", "Crop and Resize", "Resize and Fill"):
                out = fit(m, mode, w, h)
                tag = mode.split()[0].lower()
                cases["fit"].append({"map": f"map_{name}.png", "mode": mode, "width": w, "height": h,
                                     "expected": save_rgb(f"fit_{name}_{tag}_{w}x{h}.png", out)})

    for name, poses, w, h, via_aux in pose_cases():
        img = draw_controlnet_aux(poses, w, h) if via_aux else draw(poses, w, h)
        if via_aux:
            assert (img == draw(poses, w, h)).all(), name
        cases["pose"].append({"name": name, "width": w, "height": h, "poses": poses,
                              "reference": "controlnet_aux" if via_aux else "extension rules",
                              "expected": save_rgb(f"pose_{name}.png", img)})

    d = (np.random.default_rng(3).normal(5.0, 2.0, (24, 32)) ** 2).astype(np.float32)
    t = d - d.min()
    t /= t.max()
    depth = (t * np.float32(255.0)).clip(0, 255).astype(np.uint8)
    values = [float(np.format_float_positional(v, unique=True)) for v in d.ravel()]
    assert (np.array(values, np.float32) == d.ravel()).all()
    cases["depth"].append({"width": 32, "height": 24, "values": values,
                           "expected": save_rgb("depth.png", depth)})

    img = inputs["coffee"]
    poses, drawn, a1111 = dwpose_refs(img)
    def rounded(v):
        if isinstance(v, float):
            return round(v, 6)
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    cases["dwpose"].append({"input": "in_coffee.png", "poses": rounded(poses), "expected": save_rgb("dwpose_map.png", drawn),
                            "a1111_res": 256, "a1111_expected": save_rgb("dwpose_a1111_256.png", a1111)})

    (OUT / "cases.json").write_text(json.dumps(cases, separators=(",", ":")) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"{len(list(OUT.iterdir()))} files, {total // 1024} KB in {OUT}")


if __name__ == "__main__":
    main()
