#!/usr/bin/env python3
"""Export a user's frame interpolation or upscaling PyTorch module to the ONNX contracts anim
reads (docs/post.md). Nothing is downloaded: the module's code and weights are yours.

  rife    IFNet-style module: forward(cat(img0, img1), timestep, scale_list=[8, 4, 2, 1]) whose
          result's last element (or last element of its last item) is the merged frame ->
          inputs img0, img1 [1,3,H,W], timestep [1,1,H,W]; output [1,3,H,W]
  film    module (or TorchScript file, --torchscript) called model(x0, x1, dt) ->
          inputs x0, x1 [1,3,H,W], time [1,1]; output image [1,3,H,W]
  esrgan  module image -> image x s -> input [1,3,H,W]; output [1,3,sH,sW]

Environment: python3 -m venv .venv && .venv/bin/pip install torch onnx (plus what the module
imports). Run from the folder that makes --module importable.

Not run against real RIFE/FILM/Real-ESRGAN weights in this repository (no network where it was
written): compare one exported model with the PyTorch module before relying on it.
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import torch
from torch import nn


def load_module(spec: str, kwargs: dict, weights: str | None) -> nn.Module:
    mod, cls = spec.split(":")
    net = getattr(importlib.import_module(mod), cls)(**kwargs)
    if weights:
        state = torch.load(weights, map_location="cpu")
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(state, dict) and key in state:
                state = state[key]
        # checkpoints saved from DataParallel prefix every key with "module."
        state = {k.removeprefix("module."): v for k, v in state.items()}
        net.load_state_dict(state)
    return net.eval()


class Rife(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, img0, img1, timestep):
        out = self.net(torch.cat([img0, img1], 1), timestep, scale_list=[8, 4, 2, 1])
        merged = out[-1] if isinstance(out, (tuple, list)) else out
        return merged[-1] if isinstance(merged, (tuple, list)) else merged


class Film(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x0, x1, time):
        return self.net(x0, x1, time).clamp(0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["rife", "film", "esrgan"])
    ap.add_argument("--module", help="package.module:Class of the network")
    ap.add_argument("--kwargs", default="{}", help="JSON constructor arguments")
    ap.add_argument("--weights", help="state dict file (.pth/.pkl)")
    ap.add_argument("--torchscript", help="a TorchScript file instead of --module (FILM's film_net_fp16.pt)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"),
                    help="trace size (a multiple of 128 for RIFE, 64 for FILM)")
    a = ap.parse_args()
    if a.torchscript:
        net = torch.jit.load(a.torchscript, map_location="cpu").float().eval()
    else:
        net = load_module(a.module, json.loads(a.kwargs), a.weights)
    h, w = a.size
    img = torch.rand(1, 3, h, w)
    hw = {2: "height", 3: "width"}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.kind == "rife":
        model, args = Rife(net), (img, img, torch.full((1, 1, h, w), 0.5))
        names, outs = ["img0", "img1", "timestep"], ["output"]
        dyn = {"img0": hw, "img1": hw, "timestep": hw, "output": hw}
    elif a.kind == "film":
        model, args = Film(net), (img, img, torch.full((1, 1), 0.5))
        names, outs = ["x0", "x1", "time"], ["image"]
        dyn = {"x0": hw, "x1": hw, "image": hw}
    else:
        model, args = net, (img,)
        names, outs = ["input"], ["output"]
        dyn = {"input": hw, "output": {2: "out_height", 3: "out_width"}}
    with torch.no_grad():
        torch.onnx.export(model, args, str(a.out), input_names=names, output_names=outs,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
