#!/usr/bin/env python3
"""Build a TINY random-weight inpainting model: tiny-sd with a 9-channel UNet, exported to ONNX.

An inpainting checkpoint (stable-diffusion-inpainting) is SD 1.x with a UNet whose `conv_in` takes 9
channels: the 4 noisy latents, the latent-size mask (1 channel) and the 4 latents of the masked picture.
Everything else is tiny-sd's.

Layout written to models/tiny-inpaint/ (--out):

  unet/model.onnx, unet/config.json    UNet2DConditionModel with tiny-sd's UNET_CFG but in_channels=9,
                                       torch.manual_seed(SEED + 6); IO as tiny-sd's unet/ (optimum 1.x):
                                       sample [B, 9, H, W] float32, timestep int64 [steps],
                                       encoder_hidden_states [B, 77, 32] -> out_sample [B, 4, H, W]
  model_index.json, scheduler, text_encoder, tokenizer, vae_decoder, vae_encoder
                                       relative symlinks into ../tiny-sd/ (as tiny-pix2pix has them)
  manifest.json                        seed, config, versions, ORT-vs-torch difference, sha256 of unet/

tiny-sd's own files are not touched. Venv: as models/make_tiny_sd.py's docstring says (torch, diffusers,
transformers, onnx, onnxruntime at the versions pinned in models/tiny-sd/manifest.json).

Usage:  python models/make_tiny_inpaint.py [--out models/tiny-inpaint]
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
import make_tiny_pix2pix as mtp  # noqa: E402
import make_tiny_sd as mts  # noqa: E402

SEED_OFFSET = 6  # tiny-sd uses SEED + 0..4 for its parts, tiny-pix2pix SEED + 5
LINKED = mtp.LINKED


def unet_config():
    return dict(mts.UNET_CFG, in_channels=9)


def build_unet(seed: int = mts.SEED):
    """The 9-channel UNet (eval, fp32, CPU)."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed + SEED_OFFSET)
    return UNet2DConditionModel(**unet_config()).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "tiny-inpaint")
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
    sample = torch.randn(2, 9, H, W, generator=g)
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

    # ORT vs torch: batch 2 (the guided batch), 4x8 latents
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(out / "unet" / "model.onnx"), so, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(99)
    x = torch.randn(2, 9, 4, 8, generator=g)
    e = torch.randn(2, 77, mts.TEXT_CFG["hidden_size"], generator=g)
    t = torch.tensor([801], dtype=torch.int64)
    with torch.no_grad():
        ref = unet(x, t, e).sample.numpy()
    got = s.run(None, {"sample": x.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    # the mask channel and the masked-image channels must each matter
    effects = {}
    for name, sl in (("mask_channel_effect", slice(4, 5)), ("masked_image_channels_effect", slice(5, 9))):
        x0 = x.clone()
        x0[:, sl] = 0
        got0 = s.run(None, {"sample": x0.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
        effects[name] = float(np.abs(got - got0).max())
    files = {}
    for p in sorted((out / "unet").iterdir()):
        files[f"unet/{p.name}"] = dict(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    manifest = dict(
        seed=mts.SEED + SEED_OFFSET,
        opset=mts.OPSET,
        versions=mtp.versions(),
        unet_config=unet_config(),
        linked={n: f"../tiny-sd/{n}" for n in LINKED},
        verify_max_abs_diff_ort_vs_torch=diff,
        **effects,
        onnx=mts.io_signature(out / "unet" / "model.onnx"),
        files=files,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    print(json.dumps(dict(ort_vs_torch=diff, **effects, files=files), indent=1))
    assert diff < 1e-4, diff
    assert min(effects.values()) > 1e-3, effects


if __name__ == "__main__":
    main()
