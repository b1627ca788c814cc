#!/usr/bin/env python3
"""Export torchvision's RAFT to ONNX for anim's `--method raft` / `hybrid_flow_method = "RAFT"`.

    python3 -m venv venv && venv/bin/pip install torch torchvision onnx
    venv/bin/python scripts/export_raft.py models/raft-large            # what Deforum runs
    venv/bin/python scripts/export_raft.py models/raft-small --small --updates 12

Deforum's RAFT is torchvision's `raft_large` with its default weights (C_T_SKHT_V2) and 50 flow
updates, the last prediction kept. This writes:

  OUT/model.onnx   inputs `image1`, `image2`: float32 [1, 3, H, W] in [-1, 1] (H, W dynamic,
                   multiples of 8); output `flow`: float32 [1, 2, H, W], forward flow in pixels
                   (the last of the N updates; the update loop is unrolled, opset 17)
  OUT/config.json  how anim feeds it: {"flavour": "torchvision", "channel_order": "bgr", ...}

`channel_order` is "bgr" because Deforum hands RAFT its OpenCV (BGR) frames unchanged; set it to
"rgb" in config.json to feed the channel order the weights were trained on (anim documents the
difference in docs/deforum-differences.md).

Weights: `--weights default` (the default) takes torchvision's default weights from the torch
cache (`$TORCH_HOME/hub/checkpoints`, usually ~/.cache/torch/hub/checkpoints), downloading them
there when absent (needs internet); `--weights FILE.pth` loads a state dict; `--weights none`
keeps random weights (for tests only). Exporting raft_large with 50 updates takes a few minutes
and about 4 GB of memory; the file is about 22 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

#: anim's name for the IO convention of this export (see src/flow/raft.rs).
FLAVOUR = "torchvision"


class LastFlow(nn.Module):
    """RAFT that returns only its last prediction (what Deforum keeps)."""

    def __init__(self, raft: nn.Module, updates: int):
        super().__init__()
        self.raft = raft
        self.updates = updates

    def forward(self, image1, image2):
        return self.raft(image1, image2, num_flow_updates=self.updates)[-1]


def export(raft: nn.Module, out: Path, updates: int, *, model: str, weights: str,
           height: int = 128, width: int = 128, opset: int = 17, extra: dict | None = None) -> Path:
    """Export `raft` (a torchvision RAFT in eval mode) to OUT/model.onnx + OUT/config.json."""
    out.mkdir(parents=True, exist_ok=True)
    wrapped = LastFlow(raft.eval(), updates).eval()
    a = torch.zeros(1, 3, height, width)
    b = torch.zeros(1, 3, height, width)
    path = out / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            wrapped, (a, b), str(path),
            input_names=["image1", "image2"], output_names=["flow"],
            dynamic_axes={"image1": {2: "height", 3: "width"}, "image2": {2: "height", 3: "width"},
                          "flow": {2: "height", 3: "width"}},
            opset_version=opset, dynamo=False)
    config = {
        "flavour": FLAVOUR,
        "channel_order": "bgr",
        "input_range": [-1.0, 1.0],
        "multiple_of": 8,
        "inputs": ["image1", "image2"],
        "output": "flow",
        "model": model,
        "weights": weights,
        "updates": updates,
        "opset": opset,
        "torch": torch.__version__,
    }
    config.update(extra or {})
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return path


def load_weights(raft: nn.Module, spec: str, small: bool) -> str:
    """Load the weights `spec` names into `raft`; returns the name written to config.json."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    if spec == "none":
        return "random"
    if spec == "default":
        w = (Raft_Small_Weights if small else Raft_Large_Weights).DEFAULT
        cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
        if not cache.is_file():
            print(f"{cache} is not there: downloading {w.url}", file=sys.stderr)
        try:
            raft.load_state_dict(w.get_state_dict(progress=True, check_hash=True))
        except OSError as e:  # no network (URLError is an OSError)
            sys.exit(f"cannot download {w.url} ({e}); copy that file to {cache} or pass --weights FILE.pth")
        return str(w).split(".")[-1]
    raft.load_state_dict(torch.load(spec, map_location="cpu", weights_only=True))
    return os.path.basename(spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="folder to write model.onnx and config.json into")
    ap.add_argument("--small", action="store_true", help="raft_small instead of raft_large")
    ap.add_argument("--updates", type=int, default=50, help="flow updates (Deforum: 50)")
    ap.add_argument("--weights", default="default", help="default | none | FILE.pth")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 16 for GridSample)")
    a = ap.parse_args()
    if not 1 <= a.updates <= 1000:
        sys.exit("--updates must be 1 to 1000")
    if a.opset < 16:
        sys.exit("--opset must be 16 or more (GridSample)")
    from torchvision.models.optical_flow import raft_large, raft_small

    raft = (raft_small if a.small else raft_large)(weights=None)
    name = load_weights(raft, a.weights, a.small)
    path = export(raft, a.out, a.updates, model="raft_small" if a.small else "raft_large",
                  weights=name, opset=a.opset)
    print(f"{path}: {path.stat().st_size} bytes ({name}, {a.updates} updates)")


if __name__ == "__main__":
    main()
