#!/usr/bin/env python3
"""Write two tiny DWPose-shaped ONNX models for anim's tests (a few KB each, no torch needed).

models/tiny-dwpose/yolox.onnx: the interface of DWPose's `yolox_l.onnx` person detector
  input  `images`  float32 [1, 3, 640, 640]   (letterboxed RGB, raw 0-255)
  output `output`  float32 [1, 8400, 85]      (per anchor of strides 8/16/32: dx, dy, log w, log h,
                                               objectness, 80 class scores)
  The output is zero except for a handful of anchors (ScatterND into zeros):
    A  person at stride 32, grid (5, 6), score 0.9 * 0.95: the first pose;
    B  person overlapping A, score 0.5: removed by NMS (IoU > 0.45);
    C  person at stride 16, grid (28, 14), score 0.7 * 0.9: the second pose;
    D  person, score 0.2: above the NMS threshold 0.1, under the person threshold 0.3;
    E  class 2 (car), score 0.8: not a person.
  A's objectness also gets mean(input) / 25500 added, so the output depends on the input.

models/tiny-dwpose/pose.onnx: the interface of `dw-ll_ucoco_384.onnx`
  input  `input`    float32 [1, 3, 384, 288]  (ImageNet-normalised RGB crop)
  output `simcc_x`  float32 [1, 133, 576]     (2 bins per pixel)
         `simcc_y`  float32 [1, 133, 768]
  Each of the 133 COCO-WholeBody points is a one-hot peak at a fixed bin (a standing figure in
  the 288x384 crop, hands and face included) times a fixed score, plus a per-point offset
  W . mean_rgb(input) (W fixed, |W| <= 0.02) added to every bin: the argmax is fixed, the score
  depends on the crop. Scores: most 0.6-0.95, some under 0.3 (hidden), some <= 0 (position -1).

Same script, same onnx version => identical files. Needs only numpy and onnx:
    python3 -m venv .venv && .venv/bin/pip install numpy onnx
    .venv/bin/python models/make_tiny_dwpose.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)


def anchor_index(stride: int, gx: int, gy: int, size: int = 640) -> int:
    """Row of the detector output for grid cell (gx, gy) of `stride`."""
    base = 0
    for s in STRIDES:
        if s == stride:
            return base + gy * (size // s) + gx
        base += (size // s) ** 2
    raise ValueError(stride)


def detector() -> onnx.ModelProto:
    n = sum((640 // s) ** 2 for s in STRIDES)
    rows = []  # (anchor, [dx, dy, log w, log h, obj], class, class score)
    rows.append((anchor_index(32, 5, 6), [0.5, 0.25, np.log(3.2), np.log(7.5), 0.9], 0, 0.95))   # A
    rows.append((anchor_index(32, 5, 6) + 1, [-0.4, 0.3, np.log(3.0), np.log(7.2), 0.5], 0, 1.0))  # B
    rows.append((anchor_index(16, 28, 14), [0.2, 0.6, np.log(6.0), np.log(12.0), 0.7], 0, 0.9))  # C
    rows.append((anchor_index(8, 70, 60), [0.0, 0.0, np.log(4.0), np.log(8.0), 0.4], 0, 0.5))    # D
    rows.append((anchor_index(16, 5, 30), [0.5, 0.5, np.log(5.0), np.log(3.0), 0.8], 2, 1.0))    # E
    idx, upd = [], []
    for a, head, cls, score in rows:
        for k, v in enumerate(head):
            idx.append([0, a, k])
            upd.append(v)
        idx.append([0, a, 5 + cls])
        upd.append(score)
    indices = numpy_helper.from_array(np.array(idx, np.int64), "indices")
    updates = numpy_helper.from_array(np.array(upd, np.float32), "updates")
    shape = numpy_helper.from_array(np.array([1, n, 85], np.int64), "shape")
    # the input-dependent term: mean(input) / 25500 on A's objectness
    mask_idx = numpy_helper.from_array(np.array([[0, anchor_index(32, 5, 6), 4]], np.int64), "mask_idx")
    mask_val = numpy_helper.from_array(np.array([1.0 / 25500.0], np.float32), "mask_val")
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])),
        helper.make_node("ScatterND", ["zeros", "indices", "updates"], ["base"]),
        helper.make_node("ScatterND", ["zeros", "mask_idx", "mask_val"], ["mask"]),
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mask", "mean"], ["extra"]),
        helper.make_node("Add", ["base", "extra"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolox",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n, 85])],
        initializer=[indices, updates, shape, mask_idx, mask_val],
    )
    return finish(graph)


# A standing figure in the 288x384 crop (pixels): COCO body order
BODY = [(144, 70), (152, 62), (136, 62), (162, 66), (126, 66), (176, 110), (112, 110), (196, 160),
        (92, 160), (206, 210), (82, 205), (164, 220), (124, 220), (168, 290), (120, 290), (170, 352),
        (118, 352)]
BODY_SCORES = [0.95, 0.9, 0.9, 0.85, 0.2, 0.9, 0.88, 0.8, 0.8, 0.75, 0.7, 0.85, 0.85, 0.8, 0.8, 0.65, -0.1]


def whole_body() -> tuple[list[tuple[float, float]], list[float]]:
    pts = list(BODY)
    scores = list(BODY_SCORES)
    # 6 feet points
    for i, (x, y) in enumerate([(176, 366), (184, 368), (166, 370), (112, 366), (104, 368), (122, 370)]):
        pts.append((x, y))
        scores.append(0.5 if i < 3 else 0.2)
    # 68 face points on an ellipse around the nose
    for i in range(68):
        t = 2 * np.pi * i / 68
        pts.append((144 + 14 * np.cos(t), 66 + 18 * np.sin(t)))
        scores.append(0.7 if i % 9 else 0.1)
    # two hands of 21 points: a wrist and five fingers of four points
    for wx, wy, side in ((206, 210, 1), (82, 205, -1)):
        pts.append((wx, wy))
        scores.append(0.9)
        for f in range(5):
            for j in range(1, 5):
                pts.append((wx + side * (2 + 3 * j) * np.cos(0.3 * (f - 2)), wy + (3 * j) * (1 + 0.2 * f)))
                scores.append(0.8 if side > 0 or f != 4 else 0.05)
    assert len(pts) == 133
    return pts, scores


def pose_model() -> onnx.ModelProto:
    pts, scores = whole_body()
    bx = np.array([int(round(2 * x)) for x, _ in pts], np.int64)
    by = np.array([int(round(2 * y)) for _, y in pts], np.int64)
    rng = np.random.default_rng(133)
    w = (rng.uniform(-0.02, 0.02, (3, 133))).astype(np.float32)
    inits = [
        numpy_helper.from_array(bx, "bins_x"),
        numpy_helper.from_array(by, "bins_y"),
        numpy_helper.from_array(np.array([576], np.int64), "depth_x"),
        numpy_helper.from_array(np.array([768], np.int64), "depth_y"),
        numpy_helper.from_array(np.array([0.0, 1.0], np.float32), "onehot_values"),
        numpy_helper.from_array(np.array(scores, np.float32).reshape(1, 133, 1), "scores"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "shape_13"),
        numpy_helper.from_array(np.array([1, 133, 1], np.int64), "shape_offset"),
    ]
    nodes = [
        helper.make_node("OneHot", ["bins_x", "depth_x", "onehot_values"], ["hx"], axis=-1),
        helper.make_node("OneHot", ["bins_y", "depth_y", "onehot_values"], ["hy"], axis=-1),
        helper.make_node("Unsqueeze", ["hx", "zero_axis"], ["hx1"]),
        helper.make_node("Unsqueeze", ["hy", "zero_axis"], ["hy1"]),
        helper.make_node("Mul", ["hx1", "scores"], ["px"]),
        helper.make_node("Mul", ["hy1", "scores"], ["py"]),
        helper.make_node("GlobalAveragePool", ["input"], ["gap"]),
        helper.make_node("Reshape", ["gap", "shape_13"], ["mean_rgb"]),
        helper.make_node("MatMul", ["mean_rgb", "w"], ["off"]),
        helper.make_node("Reshape", ["off", "shape_offset"], ["off3"]),
        helper.make_node("Add", ["px", "off3"], ["simcc_x"]),
        helper.make_node("Add", ["py", "off3"], ["simcc_y"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "zero_axis"))
    graph = helper.make_graph(
        nodes, "tiny_rtmpose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 384, 288])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, 133, 576]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, 133, 768])],
        initializer=inits,
    )
    return finish(graph)


def finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="anim make_tiny_dwpose")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "tiny-dwpose")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    onnx.save(detector(), a.out / "yolox.onnx")
    onnx.save(pose_model(), a.out / "pose.onnx")
    for f in ("yolox.onnx", "pose.onnx"):
        print(f, (a.out / f).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
