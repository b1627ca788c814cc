#!/usr/bin/env python3
"""Build a TINY random-weight InstructPix2Pix model: tiny-sd with an 8-channel UNet, exported to ONNX.

InstructPix2Pix is SD 1.x with a UNet whose `conv_in` takes 8 channels: the 4 noisy latents and the
4 (unscaled, VAE-mode) latents of the image being edited. Everything else is tiny-sd's.

Layout written to models/tiny-pix2pix/ (--out):

  unet/model.onnx, unet/config.json    UNet2DConditionModel with tiny-sd's UNET_CFG but in_channels=8,
                                       torch.manual_seed(SEED + 5); IO as tiny-sd's unet/ (optimum 1.x):
                                       sample [B, 8, H, W] float32, timestep int64 [steps],
                                       encoder_hidden_states [B, 77, 32] -> out_sample [B, 4, H, W]
  model_index.json, scheduler, text_encoder, tokenizer, vae_decoder, vae_encoder
                                       relative symlinks into ../tiny-sd/ (as tiny-sd-merged has them)
  manifest.json                        seed, config, versions, ORT-vs-torch difference, sha256 of unet/

tiny-sd's own files are not touched. Venv: as models/make_tiny_sd.py's docstring says (torch, diffusers,
transformers, onnx, onnxruntime at the versions pinned in models/tiny-sd/manifest.json).

Usage:  python models/make_tiny_pix2pix.py [--out models/tiny-pix2pix]
Deterministic: same versions => the same unet/model.onnx bytes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tiny_sd as mts  # noqa: E402

SEED_OFFSET = 5  # tiny-sd uses SEED + 0..4 for its parts
LINKED = ["model_index.json", "scheduler", "text_encoder", "tokenizer", "vae_decoder", "vae_encoder"]


def unet_config():
    return dict(mts.UNET_CFG, in_channels=8)


def build_unet(seed: int = mts.SEED):
    """The 8-channel UNet (eval, fp32, CPU)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed + SEED_OFFSET)
    return UNet2DConditionModel(**unet_config()).eval()


def versions():
    import diffusers
    import onnx
    import onnxruntime
    import transformers

    return dict(python=sys.version.split()[0], torch=torch.__version__, diffusers=diffusers.__version__,
                transformers=transformers.__version__, onnx=onnx.__version__, onnxruntime=onnxruntime.__version__,
                numpy=np.__version__)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "tiny-pix2pix")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in LINKED:
        (out / name).symlink_to(Path("..") / "tiny-sd" / name)

    unet = build_unet()
    H = W = mts.UNET_CFG["sample_size"]
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 8, H, W, generator=g)
    ts = torch.tensor([500, 500], dtype=torch.int64)
    ehs = torch.randn(2, 77, mts.TEXT_CFG["hidden_size"], generator=g)
    axes = {
        "sample": {0: "batch_size", 2: "height", 3: "width"},
        "timestep": {0: "steps"},
        "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
        "out_sample": {0: "batch_size", 2: "height", 3: "width"},
    }
    mts.onnx_export(mts.UNetWrap(unet), (sample, ts, ehs), out / "unet" / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], axes)
    mts.save_config(unet, out / "unet")

    # ORT vs torch: batch 3 (pix2pix's guided batch), 4x8 latents
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(out / "unet" / "model.onnx"), so, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(99)
    x = torch.randn(3, 8, 4, 8, generator=g)
    e = torch.randn(3, 77, mts.TEXT_CFG["hidden_size"], generator=g)
    t = torch.tensor([801], dtype=torch.int64)
    with torch.no_grad():
        ref = unet(x, t, e).sample.numpy()
    got = s.run(None, {"sample": x.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    # the image channels must matter: zeroing them changes the output
    x0 = x.clone()
    x0[:, 4:] = 0
    got0 = s.run(None, {"sample": x0.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
    files = {}
    for p in sorted((out / "unet").iterdir()):
        files[f"unet/{p.name}"] = dict(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    manifest = dict(
        seed=mts.SEED + SEED_OFFSET,
        opset=mts.OPSET,
        versions=versions(),
        unet_config=unet_config(),
        linked={n: f"../tiny-sd/{n}" for n in LINKED},
        verify_max_abs_diff_ort_vs_torch=diff,
        image_channels_effect=float(np.abs(got - got0).max()),
        onnx=mts.io_signature(out / "unet" / "model.onnx"),
        files=files,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    print(json.dumps(dict(ort_vs_torch=diff, image_channels_effect=manifest["image_channels_effect"], files=files),
                     indent=1))
    assert diff < 1e-4, diff


if __name__ == "__main__":
    main()
