#!/usr/bin/env python3
"""Reference depth maps for tests/depth_parity.rs: the depth path of MiDaS / Depth-Anything / Deforum
run in Python with ONNX Runtime on the committed tiny depth model (models/tiny-depth/model.onnx).

For each case the photograph (scikit-image's `chelsea`, cropped to a non-square frame) goes
through the preprocessing those projects use:

  1. RGB scaled to float32 [0, 1]                              (Deforum: `astype(np.float32) / 255.0`)
  2. MiDaS's `Resize` rules: keep the aspect ratio by `resize_method` ("minimal" for DPT/Deforum,
     "lower_bound" for Depth-Anything), each side rounded to a multiple of `ensure_multiple_of`
     (np.round, half to even), then `cv2.resize(..., INTER_CUBIC)`
  3. `NormalizeImage` with the model's mean and std, HWC -> CHW
  4. onnxruntime (CPU) on the model
  5. the output resized to the frame with `torch.nn.functional.interpolate(mode="bicubic",
     align_corners=False)` (Deforum's `MidasDepth.predict`)
  6. Deforum's `prepare_depth_tensor` + `depth_equalization` (1024-bin np.histogram on [0, 1],
     np.interp over the left bin edges) and the MiDaS scaling z = 2 - d (`transform_image_3d_new`)

The `Resize` size rules are re-implemented here from MiDaS's documented behaviour (MIT). Deforum feeds
its frames to MiDaS in BGR order; these references, like anim, feed RGB (docs/deforum-differences.md).

Writes tests/data/depth/: input.png, and per case <name>_depth.npy (float32 H x W, step 5) and
<name>_z.npy (float32, step 6), plus cases.json with the settings and the model input size.

Usage:  /work/venv-torch/bin/python scripts/make_depth_refs.py   (numpy, opencv, torch, onnxruntime,
        scikit-image)
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import skimage.data
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/depth"
MODEL = ROOT / "models/tiny-depth/model.onnx"

MEAN_STD = {
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "half": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
}

# name, input_size, multiple_of, resize, normalization
CASES = [
    ("midas_minimal", 96, 32, "minimal", "half"),
    ("anything_lower_bound", 70, 14, "lower_bound", "imagenet"),
    ("square", 64, 32, "square", "imagenet"),
]


def model_size(width, height, target, multiple, method):
    """(height, width) of the model input, by MiDaS's Resize rules with keep_aspect_ratio."""
    sh, sw = target / height, target / width
    if method == "lower_bound":
        if sw > sh:
            sh = sw
        else:
            sw = sh
    elif method == "minimal":
        if abs(1 - sw) < abs(1 - sh):
            sh = sw
        else:
            sw = sh

    def side(x, min_val):
        y = np.round(x / multiple) * multiple
        if y < min_val:
            y = np.ceil(x / multiple) * multiple
        return int(y)

    low = target if method == "lower_bound" else 0
    return side(sh * height, low), side(sw * width, low)


def equalize_to_z(depth):
    t = torch.from_numpy(depth)
    t = (t - t.min()) / (t.max() - t.min())
    a = t.numpy()
    hist, edges = np.histogram(a, bins=1024, range=(0, 1))
    cdf = hist.cumsum()
    cdf = cdf / float(cdf[-1])
    eq = np.interp(a, edges[:-1], cdf)
    return (-(eq - 2.0)).astype(np.float32)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.chelsea()[40:176, 100:300]  # 200 x 136, RGB
    Image.fromarray(photo).save(OUT / "input.png")
    height, width = photo.shape[:2]
    rgb = photo.astype(np.float32) / 255.0
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    cases = []
    for case, target, multiple, method, norm in CASES:
        mh, mw = model_size(width, height, target, multiple, method)
        x = cv2.resize(rgb, (mw, mh), interpolation=cv2.INTER_CUBIC)
        mean, std = (np.array(v, dtype=np.float32) for v in MEAN_STD[norm])
        x = ((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        (out,) = session.run(None, {name: np.ascontiguousarray(x)})
        out = torch.from_numpy(out.reshape(1, 1, out.shape[-2], out.shape[-1]))
        depth = torch.nn.functional.interpolate(out, size=(height, width), mode="bicubic",
                                                align_corners=False)[0, 0].numpy()
        np.save(OUT / f"{case}_depth.npy", depth.astype(np.float32))
        np.save(OUT / f"{case}_z.npy", equalize_to_z(depth))
        cases.append(dict(name=case, input_size=target, multiple_of=multiple, resize=method,
                          normalization=norm, model_height=mh, model_width=mw))
        print(case, (mh, mw), float(depth.min()), float(depth.max()))
    meta = dict(model="models/tiny-depth/model.onnx", width=width, height=height, cases=cases,
                versions=dict(onnxruntime=ort.__version__, opencv=cv2.__version__,
                              torch=torch.__version__, numpy=np.__version__))
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
