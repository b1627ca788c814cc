"""Makes the masked img2img references tests/masks.rs measures anim's denoising loop against
(tests/data/masks/inpaint_<sampler>.npy, final images as uint8 HWC).

Written from diffusers' documented `StableDiffusionInpaintPipeline` semantics for a 4-channel UNet
(not from A1111's code): img2img of the init image at `strength` (`get_timesteps`, noise added at
the first timestep), and after every scheduler step the latents outside the mask are replaced by
the init latents noised to the next timestep with the initial noise
(`latents = (1 − m)·add_noise(z0, ε, t_next) + m·latents`; after the last step `z0` itself).
A1111 instead blends the denoised prediction (`x0 ← x0·m + z0·(1 − m)`); for these ε-predicting
samplers both give the same latents, which is what the test checks. The models are
models/tiny-sd (ONNX Runtime); the prompt, the encoder sample and the noise are those of
tests/data/sd-ref/img2img_modern. The mask is the right half of the frame (white = repainted),
aligned to the latent grid so nearest and Pillow-bicubic latent masks agree.

Run with a venv holding numpy, torch, diffusers, transformers and onnxruntime
(`python3 -m venv v && v/bin/pip install numpy torch diffusers transformers onnxruntime`):
`v/bin/python scripts/make_masked_img2img_ref.py`.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler
from transformers import CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models/tiny-sd")
REF = os.path.join(ROOT, "tests/data/sd-ref/img2img_modern")
OUT = os.path.join(ROOT, "tests/data/masks")
PROMPT = "a red fox sitting in the snow, highly detailed"
STRENGTH, STEPS, GS = 0.6, 10, 7.5


def session(name):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(os.path.join(MODEL, name, "model.onnx"), so, providers=["CPUExecutionProvider"])


S = {n: session(n) for n in ["text_encoder", "unet", "vae_encoder", "vae_decoder"]}
tok = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
sched_cfg = {k: v for k, v in json.load(open(os.path.join(MODEL, "scheduler/scheduler_config.json"))).items()
             if not k.startswith("_")}
sf = json.load(open(os.path.join(MODEL, "vae_decoder/config.json")))["scaling_factor"]


def embed(p):
    ids = tok([p], padding="max_length", max_length=77, truncation=True, return_tensors="np").input_ids
    return S["text_encoder"].run(None, {"input_ids": ids.astype(np.int32)})[0]


def run(sched):
    init_u8 = np.load(os.path.join(REF, "init_image_uint8.npy"))
    enc_noise = np.load(os.path.join(REF, "enc_noise.npy"))
    noise = torch.from_numpy(np.load(os.path.join(REF, "noise.npy")))
    sched.set_timesteps(STEPS)
    t_start = STEPS - min(int(STEPS * STRENGTH), STEPS)
    timesteps = sched.timesteps[t_start * sched.order:]
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    image = (init_u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None] * 2.0 - 1.0
    params = S["vae_encoder"].run(None, {"sample": image})[0]
    mean, logvar = np.split(params, 2, axis=1)
    std = np.exp(0.5 * np.clip(logvar, -30.0, 20.0))
    z0 = torch.from_numpy(((mean + std * enc_noise) * sf).astype(np.float32))
    m = torch.zeros(1, 1, 8, 8)
    m[..., 4:] = 1.0
    ehs = np.concatenate([embed(""), embed(PROMPT)])
    latents = sched.add_noise(z0, noise, timesteps[:1])
    for i, t in enumerate(timesteps):
        lmi = sched.scale_model_input(torch.cat([latents] * 2), t).numpy()
        out = S["unet"].run(None, {"sample": lmi, "timestep": np.array([int(t)], np.int64),
                                   "encoder_hidden_states": ehs})[0]
        u, c = np.split(out, 2)
        latents = sched.step(torch.from_numpy(u + GS * (c - u)), t, latents).prev_sample
        proper = z0
        if i < len(timesteps) - 1:
            proper = sched.add_noise(z0, noise, timesteps[i + 1:i + 2])
        latents = (1 - m) * proper + m * latents
    dec = S["vae_decoder"].run(None, {"latent_sample": (latents / sf).numpy().astype(np.float32)})[0]
    img = np.clip(dec / 2 + 0.5, 0, 1)[0].transpose(1, 2, 0)
    return (img * 255).round().astype(np.uint8)


for name, cls in [("euler", EulerDiscreteScheduler), ("ddim", DDIMScheduler)]:
    np.save(os.path.join(OUT, f"inpaint_{name}.npy"), run(cls.from_config(sched_cfg)))
