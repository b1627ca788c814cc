#!/usr/bin/env python3
"""Inpainting references: diffusers' StableDiffusionInpaintPipeline (PyTorch) on the tiny inpainting model's
weights (models/make_tiny_inpaint.py: tiny-sd's text encoder, tokenizer and VAE, a 9-channel UNet), which are the
weights of the ONNX files anim runs.

Each case is one plain pipeline call, seeded with torch.Generator("cpu").manual_seed(seed): the generator gives, in
order, the init image's VAE sample (strength < 1 only: at strength 1 the latents are pure noise and the init image
is not encoded), the initial noise, the masked image's VAE sample, then the per-step noise of stochastic samplers.
The mask is binarised at 0.5 (VaeImageProcessor with do_binarize), the masked image is image * (mask < 0.5), the
UNet input is cat[scaled latents, nearest-resized mask, masked-image latents], and nothing is blended back.

"No mask" (a Deforum frame without use_mask, A1111's behaviour): an all-white mask, so the masked image is all zero
(mid-grey) and the mask channel all ones; at strength 1 the init image plays no part, so the same reference is what
anim's txt2img with this model gives.

Writes tests/data/inpaint-ref/:
  source_{W}x{H}.png            the init images: make_reference.make_init_image at that size
  mask_<name>_{W}x{H}.png       the masks (L): "half" (hard edge off the 8-pixel grid), "soft" (a radial ramp
                                through every grey level), "none" (all white)
  mask_<name>_{W}x{H}.npy       (1, 1, H/8, W/8) float32: the mask channel as the UNet gets it
  <case>/meta.json              every input: prompt, negative (null = ""), steps, guidance, strength, seed,
                                scheduler class, size, source and mask files, the timesteps of the UNet calls
  <case>/image_uint8.npy        the pipeline's image (H, W, 3), diffusers' rounding
  unet_5ch/model.onnx           a stand-in UNet (sample [B, 5, H, W]: a Slice to 4 channels) for the error on
                                channel counts anim does not run
  unet_dynamic/model.onnx       the same graph with a dynamic channel axis, beside a config.json saying
                                in_channels 9: detection falls back to the config
  unet_sdxl_9ch/model.onnx      the same with tiny-sdxl's UNet IO and 9 channels: the error on SDXL inpainting UNets
  manifest.json                 versions and the sha256 of every file written

Venv: as models/make_tiny_sd.py's docstring says (torch, diffusers 0.42.1, transformers, onnx, onnxruntime).
Usage:  python models/make_inpaint_refs.py [--out tests/data/inpaint-ref]
Deterministic: same versions => byte-identical .npy files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_reference as mr  # noqa: E402
import make_tiny_inpaint as mti  # noqa: E402
import make_tiny_sd as mts  # noqa: E402

warnings.filterwarnings("ignore")

PROMPT = "a red fox sitting in the snow"
NEGATIVE = "blurry, low quality"

# Euler runs 4 steps so that its timesteps are whole numbers (the tiny UNet's ONNX timestep input is int64, see
# make_pix2pix_refs.py).
# name: (scheduler, steps, guidance, strength, negative or None, mask, seed, (W, H))
CASES = {
    "euler_half_s0.75": ("euler", 4, 6.0, 0.75, NEGATIVE, "half", 7, (64, 64)),
    "euler_soft_s1": ("euler", 4, 7.5, 1.0, None, "soft", 11, (64, 64)),
    "ddim_soft_s0.6": ("ddim", 5, 7.5, 0.6, NEGATIVE, "soft", 21, (64, 48)),
    "ddim_half_s1": ("ddim", 5, 5.0, 1.0, None, "half", 33, (64, 48)),
    "euler_nomask_s0.5": ("euler", 4, 6.0, 0.5, None, "none", 5, (64, 64)),
    "ddim_nomask_s1": ("ddim", 5, 7.5, 1.0, NEGATIVE, "none", 9, (64, 64)),
    "euler_half_nocfg": ("euler", 4, 1.0, 0.75, None, "half", 13, (64, 64)),
}


def make_mask(name, w, h):
    """uint8 (H, W) masks, white where the model paints."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if name == "half":
        return np.where(x >= 27, 255, 0).astype(np.uint8)
    if name == "soft":
        r = np.sqrt((x - 0.4 * w) ** 2 + (y - 0.55 * h) ** 2)
        r0, r1 = 0.12 * w, 0.42 * w
        return np.clip(np.round(255 * (r1 - r) / (r1 - r0)), 0, 255).astype(np.uint8)
    if name == "none":
        return np.full((h, w), 255, np.uint8)
    raise ValueError(name)


def stand_in_unet(path: Path, channels, sdxl=False):
    """A tiny ONNX graph with the UNet's IO (sample, timestep, encoder_hidden_states -> out_sample): the first 4
    channels of `sample`. `channels` None: a dynamic channel axis. `sdxl`: tiny-sdxl's UNet IO (hidden size 80,
    text_embeds [B, 40], time_ids [B, 6]), the extra inputs unused."""
    import onnx
    from onnx import TensorProto, helper

    c = channels if channels is not None else "channels"
    inputs = [
        helper.make_tensor_value_info("sample", TensorProto.FLOAT, ["batch_size", c, "height", "width"]),
        helper.make_tensor_value_info("timestep", TensorProto.INT64, ["steps"]),
        helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT,
                                      ["batch_size", "sequence_length", 80 if sdxl else mts.TEXT_CFG["hidden_size"]]),
    ]
    if sdxl:
        inputs += [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch_size", 40]),
                   helper.make_tensor_value_info("time_ids", TensorProto.FLOAT, ["batch_size", 6])]
    out = helper.make_tensor_value_info("out_sample", TensorProto.FLOAT, ["batch_size", 4, "height", "width"])
    consts = [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
              (("starts", 0), ("ends", 4), ("axes", 1))]
    node = helper.make_node("Slice", ["sample", "starts", "ends", "axes"], ["out_sample"])
    graph = helper.make_graph([node], "stand_in_unet", inputs, [out], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", mts.OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def scheduler(name, cfg):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    cls = dict(euler=EulerDiscreteScheduler, ddim=DDIMScheduler)[name]
    return cls.from_config(cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "inpaint-ref")
    args = ap.parse_args()
    from diffusers import StableDiffusionInpaintPipeline
    from PIL import Image
    from transformers import CLIPTokenizer

    torch.set_num_threads(2)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    root = HERE / "tiny-sd"
    models = mts.build_models(mts.SEED)
    unet = mti.build_unet(mts.SEED)
    tok = CLIPTokenizer.from_pretrained(str(root / "tokenizer"))
    cfg = {k: v for k, v in json.loads((root / "scheduler" / "scheduler_config.json").read_text()).items()
           if not k.startswith("_")}
    vae = models["vae"]
    written = []

    sources, masks = {}, {}
    for (w, h) in sorted({c[7] for c in CASES.values()}):
        src = mr.make_init_image(h=h, w=w)
        p = out / f"source_{w}x{h}.png"
        Image.fromarray(src).save(p)
        written.append(p)
        sources[(w, h)] = src
    for (mname, (w, h)) in sorted({(c[5], c[7]) for c in CASES.values()}):
        m = make_mask(mname, w, h)
        p = out / f"mask_{mname}_{w}x{h}.png"
        Image.fromarray(m, mode="L").save(p)
        written.append(p)
        masks[(mname, (w, h))] = m

    for name, (sname, steps, g, strength, negative, mname, seed, (w, h)) in CASES.items():
        sched = scheduler(sname, cfg)
        pipe = StableDiffusionInpaintPipeline(
            vae=vae, text_encoder=models["text_encoder"], tokenizer=tok, unet=unet, scheduler=sched,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        src, m = sources[(w, h)], masks[(mname, (w, h))]
        # the mask channel as the UNet gets it (prepare_mask_latents of the binarised mask)
        cond = pipe.mask_processor.preprocess(Image.fromarray(m, mode="L"), height=h, width=w)
        lat = torch.nn.functional.interpolate(cond, size=(h // 8, w // 8))
        p = out / f"mask_{mname}_{w}x{h}.npy"
        if p not in written:
            np.save(p, lat.numpy().astype(np.float32))
            written.append(p)
        gen = torch.Generator("cpu").manual_seed(seed)
        calls = []
        with torch.no_grad():
            img = pipe(PROMPT, image=Image.fromarray(src), mask_image=Image.fromarray(m, mode="L"), height=h,
                       width=w, strength=strength, num_inference_steps=steps, guidance_scale=g,
                       negative_prompt=negative, generator=gen, output_type="np",
                       callback_on_step_end=lambda p, i, t, kw: (calls.append(int(t)), kw)[1]).images[0]
        d = out / name
        d.mkdir()
        u8 = mr.to_uint8_image(img)
        np.save(d / "image_uint8.npy", u8)
        meta = dict(
            prompt=PROMPT, negative_prompt=negative, num_inference_steps=steps, guidance_scale=g,
            strength=strength, seed=seed, scheduler=type(sched).__name__,
            sampler=dict(euler="Euler", ddim="DDIM")[sname], width=w, height=h, source=f"source_{w}x{h}.png",
            mask=None if mname == "none" else f"mask_{mname}_{w}x{h}.png", timesteps=calls, unet_calls=len(calls))
        (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        written += [d / "image_uint8.npy", d / "meta.json"]
        print(name, meta["timesteps"], float(img.mean()))

    stand_in_unet(out / "unet_5ch" / "model.onnx", 5)
    stand_in_unet(out / "unet_dynamic" / "model.onnx", None)
    stand_in_unet(out / "unet_sdxl_9ch" / "model.onnx", 9, sdxl=True)
    (out / "unet_dynamic" / "config.json").write_text(json.dumps(mti.unet_config(), indent=1) + "\n")
    written += [out / "unet_5ch" / "model.onnx", out / "unet_dynamic" / "model.onnx",
                out / "unet_dynamic" / "config.json", out / "unet_sdxl_9ch" / "model.onnx"]

    import diffusers
    import transformers

    manifest = dict(
        versions=dict(torch=torch.__version__, diffusers=diffusers.__version__, transformers=transformers.__version__,
                      numpy=np.__version__),
        model="models/tiny-inpaint",
        files={str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in written})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
