#!/usr/bin/env python3
"""Build a TINY random-weight monocular depth model and export it to ONNX, for anim's tests.

It has the interface of a MiDaS / Depth-Anything export (what `anim` expects from `[depth] model`):

  input  `pixel_values`     float32 [1, 3, H, W]  (RGB, normalised; H and W dynamic)
  output `predicted_depth`  float32 [1, H, W]     (relative inverse depth, >= 0, larger = nearer)

The network is a few convolutions (3 -> 8 -> 8 at half resolution -> 1), bilinear upsampling
back to H x W and a softplus, with random weights from a fixed seed: its "depth" is texture, not
geometry, which is all the tests need (shape, determinism, the depth path end to end).

Also writes `constant.onnx`: the same interface with an all-zero output, for the flat-depth
fallback test. Same versions + same seed => identical files.

Usage:  /work/venv-torch/bin/python models/make_tiny_depth.py [--out models/tiny-depth]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn


class TinyDepth(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, pixel_values):
        h, w = pixel_values.shape[-2:]
        x = torch.relu(self.c1(pixel_values))
        x = torch.relu(self.c2(x))
        x = nn.functional.interpolate(self.c3(x), size=(h, w), mode="bilinear", align_corners=False)
        return nn.functional.softplus(x)[:, 0]


class Constant(nn.Module):
    def forward(self, pixel_values):
        return pixel_values[:, 0] * 0.0


def export(model, path: Path):
    x = torch.zeros(1, 3, 32, 48)
    torch.onnx.export(model, (x,), str(path), input_names=["pixel_values"], output_names=["predicted_depth"],
                      dynamic_axes={"pixel_values": {2: "height", 3: "width"}, "predicted_depth": {1: "height", 2: "width"}},
                      opset_version=17, dynamo=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "tiny-depth")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = TinyDepth().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        export(model, a.out / "model.onnx")
        export(Constant().eval(), a.out / "constant.onnx")
    for f in ["model.onnx", "constant.onnx"]:
        print(f, (a.out / f).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
