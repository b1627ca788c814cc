#!/usr/bin/env python3
"""Build a TINY random-weight RAFT (torchvision's architecture, raft_large's blocks with narrow
channels), export it the way scripts/export_raft.py exports the real one, and write the flows
torch computes with the same weights, for anim's RAFT tests (tests/flow_raft.rs).

Writes:

  models/tiny-raft/model.onnx, config.json   torchvision flavour (what export_raft.py writes):
                                             `image1`, `image2` [1,3,H,W] in [-1,1] -> `flow`
  models/tiny-raft/pinto/model.onnx          PINTO / opencv_zoo flavour of the SAME weights, no
                                             config.json: inputs `0`, `1` [1,3,128,128] RGB in
                                             [0,255] (fixed size), outputs [1/8 flow, full flow]
  tests/data/flow/raft/*.flo                 torch's flows (Middlebury .flo) for crops of
                                             tests/data/flow/pairs/ (see CASES)
  tests/data/flow/raft/cases.json            what each .flo is

It also runs each export with onnxruntime and checks it against torch.

    python3 -m venv venv && venv/bin/pip install torch torchvision onnx onnxruntime pillow
    venv/bin/python models/make_tiny_raft.py

Same versions + same seed => identical weights.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models.optical_flow import raft as tvraft

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import export_raft  # noqa: E402

UPDATES = 4
PINTO_HW = (128, 128)

#: (name, pair, crop x0, y0, w, h, flavour). `odd` sizes are padded by replication to a
#: multiple of 8 and the flow cropped back, as anim does; `pinto` is resized to PINTO_HW.
#: Sides are at least 128: RAFT's 4-level correlation pyramid needs 16 cells at 1/8.
CASES = [
    ("shift", "shift", 64, 64, 128, 128, "torchvision"),
    ("bigshift_odd", "bigshift", 40, 30, 123, 126, "torchvision"),
    ("subject_pinto", "subject", 60, 40, 144, 136, "pinto"),
]


def tiny_raft() -> nn.Module:
    """raft_large's blocks (residual encoders, InstanceNorm / BatchNorm, radius 4, separable
    GRU, convex upsampling) with a few channels each."""
    torch.manual_seed(0)
    hidden = 8
    m = tvraft._raft(
        feature_encoder_layers=(4, 4, 8, 8, 16),
        feature_encoder_block=tvraft.ResidualBlock,
        feature_encoder_norm_layer=nn.InstanceNorm2d,
        context_encoder_layers=(4, 4, 8, 8, hidden + 4),
        context_encoder_block=tvraft.ResidualBlock,
        context_encoder_norm_layer=nn.BatchNorm2d,
        corr_block_num_levels=4,
        corr_block_radius=4,
        motion_encoder_corr_layers=(8, 8),
        motion_encoder_flow_layers=(8, 4),
        motion_encoder_out_channels=8,
        recurrent_block_hidden_state_size=hidden,
        recurrent_block_kernel_size=((1, 5), (5, 1)),
        recurrent_block_padding=((0, 2), (2, 0)),
        flow_head_hidden_size=8,
        use_mask_predictor=False,
        mask_predictor=tvraft.MaskPredictor(in_channels=hidden, hidden_size=8, multiplier=0.25),
    )
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


class Pinto(nn.Module):
    """princeton RAFT's IO as PINTO_model_zoo / opencv_zoo export it: RGB [0, 255] in, the
    normalisation inside, [1/8-resolution flow, full flow] out."""

    def __init__(self, raft: nn.Module, updates: int):
        super().__init__()
        self.raft = raft
        self.updates = updates

    def forward(self, a, b):
        full = self.raft(2 * (a / 255.0) - 1.0, 2 * (b / 255.0) - 1.0, num_flow_updates=self.updates)[-1]
        h, w = full.shape[-2:]
        low = F.interpolate(full, size=(h // 8, w // 8), mode="bilinear", align_corners=False) / 8
        return low, full


def rewrite(path: Path, names: dict):
    """Rename graph inputs (torch's exporter does not keep purely numeric names) and drop node
    names (a third of a tiny file; ONNX Runtime does not need them)."""
    import onnx

    m = onnx.load(str(path))
    for n in m.graph.node:
        n.name = ""
        n.doc_string = ""
    for i in m.graph.input:
        i.name = names.get(i.name, i.name)
    for n in m.graph.node:
        for k, x in enumerate(n.input):
            n.input[k] = names.get(x, x)
    onnx.save(m, str(path))


def write_flo(path: Path, flow: np.ndarray):
    """flow: (H, W, 2) float32 -> Middlebury .flo."""
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        np.array([202021.25], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        flow.astype("<f4").tofile(f)


def bilinear(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize NCHW float: bilinear with half-pixel centres, no antialiasing (OpenCV's
    INTER_LINEAR on float images; anim's resize for fixed-size exports)."""
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)


def main():
    import onnxruntime as ort

    out = ROOT / "models" / "tiny-raft"
    refs = ROOT / "tests" / "data" / "flow" / "raft"
    refs.mkdir(parents=True, exist_ok=True)
    raft = tiny_raft()
    params = sum(p.numel() for p in raft.parameters())
    path = export_raft.export(raft, out, UPDATES, model="tiny (make_tiny_raft.py)", weights="random, seed 0",
                              height=128, width=128)
    pinto_dir = out / "pinto"
    pinto_dir.mkdir(exist_ok=True)
    pinto = Pinto(raft, UPDATES).eval()
    z = torch.zeros(1, 3, *PINTO_HW)
    with torch.no_grad():
        torch.onnx.export(pinto, (z, z), str(pinto_dir / "model.onnx"), input_names=["a", "b"],
                          output_names=["flow_low", "flow_up"], opset_version=17, dynamo=False)
    rewrite(path, {})
    rewrite(pinto_dir / "model.onnx", {"a": "0", "b": "1"})
    print(f"{params} parameters; {path.stat().st_size} + {(pinto_dir / 'model.onnx').stat().st_size} bytes")


    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    psess = ort.InferenceSession(str(pinto_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = {}
    for name, pair, x0, y0, w, h, flavour in CASES:
        imgs = [np.asarray(Image.open(ROOT / "tests/data/flow/pairs" / f"{pair}_{s}.png").convert("RGB"))
                [y0:y0 + h, x0:x0 + w] for s in "ab"]
        with torch.no_grad():
            if flavour == "torchvision":
                # Deforum: the BGR uint8 frame -> to_tensor -> (x - 0.5) / 0.5
                t = [((torch.from_numpy(i[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255) - 0.5) / 0.5
                     for i in imgs]
                ph, pw = -h % 8, -w % 8
                t = [F.pad(x, (0, pw, 0, ph), mode="replicate") for x in t]
                flow = raft(t[0], t[1], num_flow_updates=UPDATES)[-1]
                onnx = sess.run(None, {"image1": t[0].numpy(), "image2": t[1].numpy()})[0]
                flow, onnx = flow[..., :h, :w], torch.from_numpy(onnx)[..., :h, :w]
            else:
                t = [bilinear(torch.from_numpy(i.copy()).permute(2, 0, 1)[None].float(), *PINTO_HW) for i in imgs]
                _, small = pinto(t[0], t[1])
                onnx = torch.from_numpy(psess.run(None, {"0": t[0].numpy(), "1": t[1].numpy()})[1])
                scale = torch.tensor([w / PINTO_HW[1], h / PINTO_HW[0]]).view(1, 2, 1, 1)
                flow, onnx = bilinear(small, h, w) * scale, bilinear(onnx, h, w) * scale
        diff = (flow - onnx).abs().max().item()
        f = flow[0].permute(1, 2, 0).numpy()
        write_flo(refs / f"{name}.flo", f)
        meta[name] = dict(pair=pair, x0=x0, y0=y0, width=w, height=h, flavour=flavour,
                          max_abs_flow=float(np.abs(f).max()), ort_vs_torch=diff)
        print(f"{name}: |flow| max {np.abs(f).max():.3f} px, ORT vs torch {diff:.2e} px")
        assert diff < 1e-4, name
    meta["_"] = dict(updates=UPDATES, pinto_size=list(PINTO_HW), torch=torch.__version__, onnxruntime=ort.__version__,
                     note="flows are torch's (Middlebury .flo); crops of tests/data/flow/pairs/ at (x0, y0, width, height)")
    (refs / "cases.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
