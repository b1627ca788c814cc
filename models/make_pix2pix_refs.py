#!/usr/bin/env python3
"""InstructPix2Pix references: diffusers' StableDiffusionInstructPix2PixPipeline (PyTorch) on the tiny pix2pix
model's weights (models/make_tiny_pix2pix.py: tiny-sd's text encoder, tokenizer and VAE, an 8-channel UNet).

Two paths, as anim runs them:
  full      diffusers' own call: pure noise (randn * init_noise_sigma) over the whole schedule, no strength.
  strength  A1111's img2img path (which Deforum drives): the source image's VAE sample * scaling_factor plus noise
            at the strength's first timestep (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps and
            prepare_latents, reproduced here), then the same pix2pix pipeline over the remaining timesteps (its
            scheduler's set_timesteps is wrapped to cut the schedule as img2img does; `latents=` carries the noised
            init latents, divided by init_noise_sigma, which the pipeline multiplies back).
In both, the image conditioning is the source image's VAE mode (mean), unscaled: [img, img, zeros] beside
[text, neg, neg] when guidance is on (g_t > 1 and g_i >= 1), a single [text]+[img] pass otherwise.

Writes tests/data/pix2pix-ref/:
  source_{W}x{H}.png            the source (= init) images: make_reference.make_init_image at that size
  image_latents_{W}x{H}.npy     (1, 4, H/8, W/8) VAE mode latents of the source (unscaled)
  <case>/meta.json              every input: prompt, negative (null = diffusers' None = ""), steps, guidance,
                                image guidance, strength (null: full path), seed (torch.Generator("cpu")),
                                scheduler class, size, source file, UNet calls
  <case>/image_uint8.npy        the pipeline's image (H, W, 3), diffusers' rounding
  manifest.json                 versions and the sha256 of every file written

Venv: as models/make_tiny_sd.py's docstring says (torch, diffusers 0.42.1, transformers, onnx, onnxruntime).
Usage:  python models/make_pix2pix_refs.py [--out tests/data/pix2pix-ref]
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
import make_tiny_pix2pix as mtp  # noqa: E402
import make_tiny_sd as mts  # noqa: E402

warnings.filterwarnings("ignore")

PROMPT = "turn the sky into a watercolor sunset"
NEGATIVE = "blurry, low quality"

# Euler runs 4 steps: its timesteps (linspace over 0..999) are then whole numbers. The tiny UNet's ONNX timestep
# input is int64 (optimum 1.x), so a fractional timestep (499.5 at 5 steps) reaches it truncated, while the torch
# UNet here embeds the fraction: no reference could say what an int64 export should give for it.
# name: (scheduler, steps, g_t, g_i, strength or None, negative or None, seed, (W, H))
CASES = {
    "euler_g6_i1.5": ("euler", 4, 6.0, 1.5, None, NEGATIVE, 7, (64, 64)),
    "ddim_g6_i1": ("ddim", 4, 6.0, 1.0, None, None, 11, (64, 64)),
    "euler_off": ("euler", 4, 1.0, 1.5, None, None, 5, (64, 64)),
    "euler_strength0.75": ("euler", 4, 6.0, 1.5, 0.75, NEGATIVE, 21, (64, 64)),
    "ddim_strength0.8": ("ddim", 5, 7.5, 1.3, 0.8, None, 33, (64, 48)),
}


def scheduler(name, cfg):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    cls = dict(euler=EulerDiscreteScheduler, ddim=DDIMScheduler)[name]
    return cls.from_config(cfg)


def cut_schedule(sched, strength):
    """Wrap set_timesteps so that it keeps img2img's last int(steps * strength) timesteps."""
    orig = sched.set_timesteps

    def set_timesteps(n, device=None, **kw):
        orig(n, device=device, **kw)
        init_t = min(int(n * strength), n)
        t_start = max(n - init_t, 0)
        sched.timesteps = sched.timesteps[t_start * sched.order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)

    sched.set_timesteps = set_timesteps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "pix2pix-ref")
    args = ap.parse_args()
    from diffusers import StableDiffusionInstructPix2PixPipeline
    from diffusers.utils.torch_utils import randn_tensor
    from PIL import Image
    from transformers import CLIPTokenizer

    torch.set_num_threads(2)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    root = HERE / "tiny-sd"
    models = mts.build_models(mts.SEED)
    unet = mtp.build_unet(mts.SEED)
    tok = CLIPTokenizer.from_pretrained(str(root / "tokenizer"))
    cfg = {k: v for k, v in json.loads((root / "scheduler" / "scheduler_config.json").read_text()).items()
           if not k.startswith("_")}
    vae = models["vae"]
    written = []

    sources = {}
    for (w, h) in sorted({c[7] for c in CASES.values()}):
        src = mr.make_init_image(h=h, w=w)
        p = out / f"source_{w}x{h}.png"
        Image.fromarray(src).save(p)
        written.append(p)
        x = torch.from_numpy(src.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
        with torch.no_grad():
            mode = vae.encode(x).latent_dist.mode()
        p = out / f"image_latents_{w}x{h}.npy"
        np.save(p, mode.numpy().astype(np.float32))
        written.append(p)
        sources[(w, h)] = (src, x)

    for name, (sname, steps, g_t, g_i, strength, negative, seed, (w, h)) in CASES.items():
        sched = scheduler(sname, cfg)
        pipe = StableDiffusionInstructPix2PixPipeline(
            vae=vae, text_encoder=models["text_encoder"], tokenizer=tok, unet=unet, scheduler=sched,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        src, x = sources[(w, h)]
        gen = torch.Generator("cpu").manual_seed(seed)
        latents = None
        if strength is not None:
            cut_schedule(sched, strength)
            sched.set_timesteps(steps)
            with torch.no_grad():
                x0 = vae.encode(x).latent_dist.sample(gen) * vae.config.scaling_factor
            noise = randn_tensor(x0.shape, generator=gen, dtype=x0.dtype)
            latents = sched.add_noise(x0, noise, sched.timesteps[:1]) / sched.init_noise_sigma
        calls = []
        with torch.no_grad():
            img = pipe(PROMPT, image=Image.fromarray(src), num_inference_steps=steps, guidance_scale=g_t,
                       image_guidance_scale=g_i, negative_prompt=negative, generator=gen, latents=latents,
                       output_type="np",
                       callback_on_step_end=lambda p, i, t, kw: (calls.append(int(t)), kw)[1]).images[0]
        d = out / name
        d.mkdir()
        u8 = mr.to_uint8_image(img)
        np.save(d / "image_uint8.npy", u8)
        meta = dict(
            prompt=PROMPT, negative_prompt=negative, num_inference_steps=steps, guidance_scale=g_t,
            image_guidance_scale=g_i, strength=strength, seed=seed, scheduler=type(sched).__name__,
            sampler=dict(euler="Euler", ddim="DDIM")[sname], width=w, height=h, source=f"source_{w}x{h}.png",
            guided=bool(g_t > 1.0 and g_i >= 1.0), timesteps=calls, unet_calls=len(calls))
        (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        written += [d / "image_uint8.npy", d / "meta.json"]
        print(name, meta["timesteps"], float(img.mean()))

    import diffusers
    import transformers

    manifest = dict(
        versions=dict(torch=torch.__version__, diffusers=diffusers.__version__, transformers=transformers.__version__,
                      numpy=np.__version__),
        model="models/tiny-pix2pix",
        files={str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in written})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
