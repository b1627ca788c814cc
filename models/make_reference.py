#!/usr/bin/env python3
"""Reference outputs (Python diffusers / transformers / onnxruntime) for the tiny SD ONNX fixture.

Reads the fixture written by make_tiny_sd.py (default ./tiny-sd-onnx) and writes ./ref/ :

  ref/README.md                        what every file is, with the exact inputs
  ref/manifest.json                    versions, fixture sha256s, shape/dtype of every .npy
  ref/text_encoder/...                 (a) CLIP hidden states for 5 prompts
  ref/tokenizer/tokens.json            (b) token ids for ~35 prompts (HF tokenizers backend + open_clip reference)
  ref/schedulers/...                   (c) DDIM, Euler, Euler a, DPM++ 2M Karras, LCM step-by-step
  ref/img2img_onnx/...                 (d) diffusers OnnxStableDiffusionImg2ImgPipeline run, noise supplied
  ref/img2img_modern/...               (d') same inputs, StableDiffusionImg2ImgPipeline semantics (ORT loop,
                                            cross-checked against the torch pipeline)
  ref/controlnet/...                   one ControlNet step + a ControlNet img2img run (ORT loop, torch-checked)
  ref/timing.json                      (3) per-frame and per-component CPU timings

All randomness is supplied explicitly (saved .npy); nothing depends on a RNG implementation.

Usage:  python make_reference.py [--fixture DIR] [--ref DIR] [--timing-runs 30]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tiny_sd as mts  # noqa: E402

warnings.filterwarnings("ignore")

# ----------------------------------------------------------------------------- inputs (all fixed)
TE_PROMPTS = [
    "a photo of a cat",
    "",
    "A majestic lion at golden hour, 35mm photo, (masterpiece:1.2), [blurry]",
    "Café naïve — über straße 東京 🚀",
    # > 77 tokens: truncated by the pipeline to 75 content tokens + eos
    "a breathtaking ultra detailed matte painting of an ancient floating city above the clouds at sunset, "
    "volumetric light, god rays, intricate gothic towers, waterfalls pouring into the sky, flocks of birds, "
    "cinematic composition, trending on artstation, by greg rutkowski and alphonse mucha, 8k, octane render, "
    "unreal engine 5, hyperrealistic, sharp focus, award winning photograph",
]

TOKEN_PROMPTS = [
    "a photo of a cat",
    "",
    "A Photo Of A CAT",
    "hello, world! how are you?",
    "don't stop: it's John's car, we'll see; they're here? I'm sure I'd go, you've been",
    "(masterpiece:1.3), best quality, [blurry], {extra}, <lora:foo_bar:0.8>",
    "a cat AND a dog",
    "((red)) (((blue))) [[green]] (word:1.3) (two words:0.7)",
    "prompt with   multiple    spaces\tand\ttabs\nand newlines",
    "  leading and trailing spaces  ",
    "Café naïve façade résumé",
    "Cafe\u0301 with a combining accent (NFD)",
    "über straße ÄÖÜ ẞ",
    "東京タワー、夜景",
    "한국어 텍스트",
    "Привет мир",
    "emoji 🚀🔥 😀 👍🏽",
    "numbers 1234567890 3.14159 1,000,000 2nd 3rd 4th",
    "hyphenated-word under_score camelCase CONSTANT_CASE",
    "url https://example.com/path?x=1&y=2 and email a.b@c.de",
    "html entities &amp; &lt;tag&gt; &quot;quoted&quot;",
    "smart \u201cquotes\u201d and \u2018apostrophes\u2019 \u2014 em-dash \u2013 en-dash \u2026 ellipsis",
    "mojibake Ã©tÃ© cafÃ©",
    "<|startoftext|> special tokens in text <|endoftext|>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    TE_PROMPTS[4],
    " ".join(["a"] * 75),  # exactly 75 content tokens -> 77 with bos/eos, no truncation
    " ".join(["a"] * 76),  # one too many -> truncated
    "a castle on a hill --neg blurry, lowres",
    "photo of a cat, 8k, uhd, dslr, soft lighting, high quality, film grain, Fujifilm XT3",
    "non\u00a0breaking\u00a0space and zero\u200bwidth space",
    "TAB\tand\r\nCRLF line",
    "1girl, solo, looking at viewer, :) ;-) <3 ^_^",
    "a photo of an astronaut riding a horse on mars",
]

IMG2IMG = dict(
    prompt="a red fox sitting in the snow, highly detailed",
    negative_prompt=None,  # => "" (unconditional)
    strength=0.6,
    num_inference_steps=10,
    guidance_scale=7.5,
    eta=0.0,
    height=64,
    width=64,
)
CONTROLNET_SCALE = 0.8
NOISE_SEED = 20240601  # numpy default_rng seed for every supplied noise array


# ----------------------------------------------------------------------------- helpers
class Saver:
    def __init__(self, root: Path):
        self.root = root
        self.index = {}

    def npy(self, rel: str, arr, dtype=None):
        a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
        if dtype is not None:
            a = a.astype(dtype)
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, a)
        self.index[rel] = dict(shape=list(a.shape), dtype=str(a.dtype))
        return a

    def json(self, rel: str, obj):
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8")
        self.index[rel] = dict(kind="json")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, set):
        return sorted(o, key=str)
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def clean_config(cfg):
    """Scheduler config as a plain dict, without diffusers' private bookkeeping keys ('_use_default_values')."""
    return {k: v for k, v in dict(cfg).items() if not k.startswith("_") or k == "_class_name"}


def rng_normal(shape, seed_offset):
    return np.random.default_rng(NOISE_SEED + seed_offset).standard_normal(shape).astype(np.float32)


def ort_session(path: Path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Fixture:
    def __init__(self, root: Path, threads: int = 0):
        self.root = root
        self.s = {name: ort_session(root / name / "model.onnx", threads)
                  for name in ["text_encoder", "unet", "vae_encoder", "vae_decoder", "controlnet", "unet_controlnet",
                               "unet_timestep_scalar_float"]}
        from transformers import CLIPTokenizer

        self.tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"))
        self.scheduler_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
        self.vae_config = json.loads((root / "vae_decoder" / "config.json").read_text())

    def tokenize77(self, prompts):
        t = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                           truncation=True, return_tensors="np")
        return t.input_ids.astype(np.int32)

    def encode_text(self, prompts):
        ids = self.tokenize77(prompts)
        return self.s["text_encoder"].run(None, {"input_ids": ids})

    def unet(self, sample, t, ehs):
        return self.s["unet"].run(None, {"sample": sample, "timestep": np.array([t], dtype=np.int64),
                                         "encoder_hidden_states": ehs})[0]


def pil_from_uint8(a):
    import PIL.Image

    return PIL.Image.fromarray(a)


def make_init_image(h=64, w=64):
    """Deterministic synthetic RGB test image (uint8 HxWx3): gradients + a disc + a bar."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 255 * x / (w - 1)
    g = 255 * y / (h - 1)
    b = 255 * (0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0))
    img = np.stack([r, g, b], -1)
    disc = (x - 0.62 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.2 * w) ** 2
    img[disc] = [250, 240, 40]
    img[int(0.75 * h): int(0.85 * h), int(0.1 * w): int(0.7 * w)] = [30, 30, 200]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_control_image(h=64, w=64):
    """Deterministic 'canny-like' control image: white edges on black (uint8 HxWx3)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.uint8)
    ring = np.abs(np.sqrt((x - w / 2) ** 2 + (y - h / 2) ** 2) - 0.3 * w) < 1.0
    img[ring] = 255
    img[h // 5, :] = 255
    img[:, (3 * w) // 4] = 255
    return np.repeat(img[..., None], 3, -1)


def to_uint8_image(x01):
    """diffusers numpy_to_pil: (images * 255).round().astype('uint8')."""
    return (x01 * 255).round().astype(np.uint8)


class NoiseQueue:
    """Stand-in for diffusers.utils.torch_utils.randn_tensor: returns the supplied arrays in order."""

    def __init__(self, arrays):
        self.arrays = list(arrays)
        self.calls = []

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        a = self.arrays.pop(0)
        assert tuple(shape) == tuple(a.shape), (shape, a.shape)
        self.calls.append(tuple(shape))
        return torch.from_numpy(a).to(dtype=dtype or torch.float32)


# ----------------------------------------------------------------------------- (a) text encoder
def ref_text_encoder(fx: Fixture, sv: Saver, torch_models):
    ids = fx.tokenize77(TE_PROMPTS)
    lhs, pooled = fx.s["text_encoder"].run(None, {"input_ids": ids})
    sv.json("text_encoder/prompts.json", TE_PROMPTS)
    sv.npy("text_encoder/input_ids.npy", ids)
    sv.npy("text_encoder/last_hidden_state.npy", lhs)
    sv.npy("text_encoder/pooler_output.npy", pooled)
    # batch-1 vs batch-5, int64 vs int32 ids, torch vs ORT
    single = np.concatenate([fx.s["text_encoder"].run(None, {"input_ids": ids[i: i + 1]})[0] for i in range(len(ids))])
    with torch.no_grad():
        t = torch_models["text_encoder"](input_ids=torch.from_numpy(ids.astype(np.int64)))
    return dict(
        batch1_vs_batch5_max_abs=float(np.abs(single - lhs).max()),
        torch_vs_ort_last_hidden_state_max_abs=float(np.abs(t.last_hidden_state.numpy() - lhs).max()),
        torch_vs_ort_pooler_max_abs=float(np.abs(t.pooler_output.numpy() - pooled).max()),
        last_hidden_state_std=float(lhs.std()),
    )


# ----------------------------------------------------------------------------- (b) tokenizer
def ref_tokens(fx: Fixture, sv: Saver):
    from open_clip.tokenizer import SimpleTokenizer

    oc = SimpleTokenizer()
    tok = fx.tokenizer
    out = []
    n_diff = 0
    for p in TOKEN_PROMPTS:
        full = tok(p, truncation=False).input_ids
        p77 = tok(p, padding="max_length", max_length=77, truncation=True).input_ids
        ref = [49406] + oc.encode(p) + [49407]
        same = full == ref
        n_diff += not same
        out.append(dict(
            prompt=p,
            prompt_utf8_hex=p.encode("utf-8").hex(),
            ids=full,
            n_tokens=len(full),
            ids_77=p77,
            truncated=len(full) > 77,
            tokens=tok.convert_ids_to_tokens(full),
            open_clip_ids=ref,
            hf_equals_open_clip=same,
        ))
    sv.json("tokenizer/tokens.json", out)
    return dict(n_prompts=len(out), n_hf_vs_open_clip_differ=n_diff,
                differ=[o["prompt"] for o in out if not o["hf_equals_open_clip"]])


# ----------------------------------------------------------------------------- (c) schedulers
def make_schedulers(base_cfg):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, LCMScheduler)

    cfg = {k: v for k, v in base_cfg.items() if not k.startswith("_")}
    return {
        "ddim": (lambda: DDIMScheduler.from_config(cfg), dict(eta=0.0), 10),
        "ddim_eta1": (lambda: DDIMScheduler.from_config(cfg), dict(eta=1.0), 10),
        "euler": (lambda: EulerDiscreteScheduler.from_config(cfg), {}, 10),
        "euler_ancestral": (lambda: EulerAncestralDiscreteScheduler.from_config(cfg), {}, 10),
        "dpmpp_2m_karras": (lambda: DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True), {}, 10),
        "lcm": (lambda: LCMScheduler.from_config(cfg), {}, 4),
    }


def ref_schedulers(fx: Fixture, sv: Saver):
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as mod_ea
    import diffusers.schedulers.scheduling_lcm as mod_lcm

    NMAX = 10
    shape = (1, 4, 8, 8)
    model_outputs = sv.npy("schedulers/model_outputs.npy", rng_normal((NMAX, *shape), 1))
    step_noise = sv.npy("schedulers/step_noise.npy", rng_normal((NMAX, *shape), 2))
    noise_init = sv.npy("schedulers/noise_init.npy", rng_normal(shape, 3))
    x0 = sv.npy("schedulers/x0.npy", rng_normal(shape, 4) * 0.8)
    summary = {}
    for name, (make, kw, N) in make_schedulers(fx.scheduler_config).items():
        for scenario in ["txt2img", "img2img"]:
            s = make()
            strength = IMG2IMG["strength"]
            if name == "lcm" and scenario == "img2img":
                s.set_timesteps(N, strength=strength)
                timesteps = s.timesteps
                t_start = None
            else:
                s.set_timesteps(N)
                if scenario == "txt2img":
                    timesteps = s.timesteps
                    t_start = 0
                else:  # StableDiffusionImg2ImgPipeline.get_timesteps
                    init_timestep = min(int(N * strength), N)
                    t_start = max(N - init_timestep, 0)
                    timesteps = s.timesteps[t_start * s.order:]
                    if hasattr(s, "set_begin_index"):
                        s.set_begin_index(t_start * s.order)
            all_timesteps = s.timesteps.clone()
            sigmas = s.sigmas.clone() if hasattr(s, "sigmas") and s.sigmas is not None else None
            if scenario == "txt2img":
                latents = torch.from_numpy(noise_init) * s.init_noise_sigma
            else:
                latents = s.add_noise(torch.from_numpy(x0), torch.from_numpy(noise_init), timesteps[:1])
            init_latents = latents.clone()
            rec = dict(sample_in=[], model_input=[], prev_sample=[], pred_original_sample=[], noise_used=[])
            noise_drawn = []
            for i, t in enumerate(timesteps):
                q = NoiseQueue([step_noise[i]])
                mod_ea.randn_tensor = q
                mod_lcm.randn_tensor = q
                rec["sample_in"].append(latents.numpy().copy())
                mi = s.scale_model_input(latents, t)
                rec["model_input"].append(mi.numpy().copy())
                eps = torch.from_numpy(model_outputs[i])
                kwargs = dict(kw)
                if name == "ddim_eta1":
                    kwargs["variance_noise"] = torch.from_numpy(step_noise[i])
                out = s.step(eps, t, latents, **kwargs)
                latents = out.prev_sample
                rec["prev_sample"].append(latents.numpy().copy())
                po = getattr(out, "pred_original_sample", None)
                if po is None:
                    po = getattr(out, "denoised", None)
                rec["pred_original_sample"].append(po.numpy().copy() if po is not None else np.full(shape, np.nan, np.float32))
                drawn = bool(q.calls) or name == "ddim_eta1"
                noise_drawn.append(drawn)
            from diffusers.schedulers import scheduling_utils  # noqa: F401  restore
            from diffusers.utils.torch_utils import randn_tensor

            mod_ea.randn_tensor = randn_tensor
            mod_lcm.randn_tensor = randn_tensor
            d = f"schedulers/{name}/{scenario}"
            sv.npy(f"{d}/init_latents.npy", init_latents)
            for k in ["sample_in", "model_input", "prev_sample", "pred_original_sample"]:
                sv.npy(f"{d}/{k}.npy", np.stack(rec[k]))
            meta = dict(
                scheduler_class=type(s).__name__,
                config=clean_config(s.config),
                num_inference_steps=N,
                scenario=scenario,
                strength=strength if scenario == "img2img" else None,
                t_start=t_start,
                order=s.order,
                init_noise_sigma=float(s.init_noise_sigma),
                all_timesteps=all_timesteps.tolist(),
                all_timesteps_dtype=str(all_timesteps.dtype),
                timesteps_run=[float(t) if t.dtype.is_floating_point else int(t) for t in timesteps],
                sigmas=sigmas.tolist() if sigmas is not None else None,
                step_kwargs=kw,
                noise_used_per_step=noise_drawn,
                model_output_index_per_step=list(range(len(timesteps))),
                step_noise_index_per_step=[i if u else None for i, u in enumerate(noise_drawn)],
            )
            sv.json(f"{d}/meta.json", meta)
            summary[f"{name}/{scenario}"] = dict(steps=len(timesteps), timesteps=meta["timesteps_run"],
                                                 final_std=float(latents.std()))
    sv.npy("schedulers/alphas_cumprod.npy", make_schedulers(fx.scheduler_config)["ddim"][0]().alphas_cumprod)
    return summary


# ----------------------------------------------------------------------------- (d) img2img (diffusers ONNX pipeline)
class SampledVaeEncoder:
    """vae_encoder for OnnxStableDiffusionImg2ImgPipeline on an optimum>=1.23 export: runs the ONNX model
    (latent_parameters = mean|logvar) and samples with SUPPLIED noise exactly like
    diffusers' DiagonalGaussianDistribution.sample (logvar clamped to [-30, 20], x = mean + exp(0.5*logvar)*noise)."""

    def __init__(self, session, noise):
        self.session = session
        self.noise = noise
        self.last_params = None

    def __call__(self, sample):
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        params = self.session.run(None, {"sample": np.asarray(sample, dtype=np.float32)})[0]
        self.last_params = params
        dist = DiagonalGaussianDistribution(torch.from_numpy(params))
        return [(dist.mean + dist.std * torch.from_numpy(self.noise)).numpy()]


class FixedNumpyGenerator:
    """Stands in for np.random.RandomState: .randn(*shape) returns the supplied array."""

    def __init__(self, arr):
        self.arr = arr

    def randn(self, *shape):
        assert tuple(shape) == self.arr.shape, (shape, self.arr.shape)
        return self.arr.copy()


def onnx_pipeline(fx: Fixture, enc_noise):
    from diffusers import DDIMScheduler, OnnxRuntimeModel, OnnxStableDiffusionImg2ImgPipeline

    pipe = OnnxStableDiffusionImg2ImgPipeline(
        vae_encoder=SampledVaeEncoder(fx.s["vae_encoder"], enc_noise),
        vae_decoder=OnnxRuntimeModel(model=fx.s["vae_decoder"]),
        text_encoder=OnnxRuntimeModel(model=fx.s["text_encoder"]),
        tokenizer=fx.tokenizer,
        unet=OnnxRuntimeModel(model=fx.s["unet"]),
        scheduler=DDIMScheduler.from_config({k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")}),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ref_img2img_onnx(fx: Fixture, sv: Saver, init_u8, enc_noise, noise):
    """(d) diffusers' OnnxStableDiffusionImg2ImgPipeline + the identical hand-written loop for intermediates."""
    from diffusers import DDIMScheduler

    P = IMG2IMG
    pipe = onnx_pipeline(fx, enc_noise)
    lat_steps = []
    res = pipe(prompt=P["prompt"], image=pil_from_uint8(init_u8), strength=P["strength"],
               num_inference_steps=P["num_inference_steps"], guidance_scale=P["guidance_scale"], eta=P["eta"],
               generator=FixedNumpyGenerator(noise), output_type="np",
               callback=lambda i, t, l: lat_steps.append(l.copy()), callback_steps=1)
    img_pipe = res.images  # (1,64,64,3) float in [0,1]

    # ---- hand loop, same semantics as pipeline_onnx_stable_diffusion_img2img.py
    d = "img2img_onnx"
    sched = DDIMScheduler.from_config({k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")})
    N, strength = P["num_inference_steps"], P["strength"]
    sched.set_timesteps(N)
    image = (init_u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None] * 2.0 - 1.0
    cond_ids = fx.tokenize77([P["prompt"]])
    uncond_ids = fx.tokenize77([""])
    cond = fx.s["text_encoder"].run(None, {"input_ids": cond_ids})[0]
    uncond = fx.s["text_encoder"].run(None, {"input_ids": uncond_ids})[0]
    ehs = np.concatenate([uncond, cond])
    params = fx.s["vae_encoder"].run(None, {"sample": image})[0]
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    dist = DiagonalGaussianDistribution(torch.from_numpy(params))
    lat0 = (dist.mean + dist.std * torch.from_numpy(enc_noise)).numpy()
    init_latents = 0.18215 * lat0
    offset = sched.config.get("steps_offset", 0)
    init_timestep = min(int(N * strength) + offset, N)
    t_noise = sched.timesteps.numpy()[-init_timestep]
    noisy = sched.add_noise(torch.from_numpy(init_latents), torch.from_numpy(noise),
                            torch.from_numpy(np.array([t_noise]))).numpy()
    t_start = max(N - init_timestep + offset, 0)
    timesteps = sched.timesteps[t_start:].numpy()
    latents = noisy
    rec = dict(latent_model_input=[], noise_pred_batch=[], noise_pred=[], latents=[])
    for t in timesteps:
        lmi = np.concatenate([latents] * 2)
        lmi = sched.scale_model_input(torch.from_numpy(lmi), t).numpy()
        npred = fx.unet(lmi, int(t), ehs)
        u, c = np.split(npred, 2)
        g = u + P["guidance_scale"] * (c - u)
        latents = sched.step(torch.from_numpy(g), t, torch.from_numpy(latents), eta=P["eta"]).prev_sample.numpy()
        rec["latent_model_input"].append(lmi)
        rec["noise_pred_batch"].append(npred)
        rec["noise_pred"].append(g)
        rec["latents"].append(latents)
    dec_in = 1 / 0.18215 * latents  # exactly as the pipeline writes it (differs from latents/0.18215 in the last bit)
    dec = fx.s["vae_decoder"].run(None, {"latent_sample": dec_in})[0]
    img = np.clip(dec / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)

    sv.npy(f"{d}/init_image_uint8.npy", init_u8)
    pil_from_uint8(init_u8).save(sv.root / d / "init_image.png")
    sv.npy(f"{d}/enc_noise.npy", enc_noise)
    sv.npy(f"{d}/noise.npy", noise)
    sv.npy(f"{d}/image_preprocessed.npy", image)
    sv.npy(f"{d}/cond_input_ids.npy", cond_ids)
    sv.npy(f"{d}/uncond_input_ids.npy", uncond_ids)
    sv.npy(f"{d}/prompt_embeds.npy", ehs)
    sv.npy(f"{d}/latent_parameters.npy", params)
    sv.npy(f"{d}/init_latents_unscaled.npy", lat0)
    sv.npy(f"{d}/init_latents.npy", init_latents)
    sv.npy(f"{d}/noisy_latents.npy", noisy)
    sv.npy(f"{d}/timesteps.npy", timesteps.astype(np.int64))
    for k, v in rec.items():
        sv.npy(f"{d}/step_{k}.npy", np.stack(v))
    sv.npy(f"{d}/decoder_input.npy", dec_in)
    sv.npy(f"{d}/decoder_output.npy", dec)
    sv.npy(f"{d}/final_image.npy", img_pipe.astype(np.float32))
    u8 = to_uint8_image(img_pipe[0])
    sv.npy(f"{d}/final_image_uint8.npy", u8)
    pil_from_uint8(u8).save(sv.root / d / "final_image.png")
    meta = dict(IMG2IMG, scheduler="DDIMScheduler (from scheduler/scheduler_config.json)",
                scheduler_config=clean_config(sched.config), noise_timestep=int(t_noise), init_timestep=init_timestep,
                t_start=t_start, timesteps=timesteps.tolist(), unet_timestep_input="np.array([t], int64)",
                vae_scaling_factor=0.18215)
    sv.json(f"{d}/meta.json", meta)
    return dict(
        pipeline_vs_hand_loop_final_image_max_abs=float(np.abs(img_pipe - img).max()),
        pipeline_vs_hand_loop_latents_max_abs=float(max(np.abs(a - b).max() for a, b in zip(lat_steps, rec["latents"]))),
        noise_timestep=int(t_noise), timesteps=timesteps.tolist(),
        final_image_mean=float(img_pipe.mean()), final_image_std=float(img_pipe.std()),
        final_saturated_fraction=float(((img_pipe <= 0) | (img_pipe >= 1)).mean()),
    )


# ----------------------------------------------------------------------------- (d') modern img2img semantics
def modern_loop(fx: Fixture, init_u8, enc_noise, noise, scheduler, control=None, record=None):
    """StableDiffusionImg2ImgPipeline (and ...ControlNetImg2ImgPipeline when control is given) semantics, ORT models."""
    P = IMG2IMG
    N, strength, gs = P["num_inference_steps"], P["strength"], P["guidance_scale"]
    sched = scheduler
    sched.set_timesteps(N)
    init_timestep = min(int(N * strength), N)
    t_start = max(N - init_timestep, 0)
    timesteps = sched.timesteps[t_start * sched.order:]
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(t_start * sched.order)
    image = (init_u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None] * 2.0 - 1.0
    cond = fx.encode_text([P["prompt"]])[0]
    uncond = fx.encode_text([""])[0]
    ehs = np.concatenate([uncond, cond])
    params = fx.s["vae_encoder"].run(None, {"sample": image})[0]
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    dist = DiagonalGaussianDistribution(torch.from_numpy(params))
    sf = fx.vae_config["scaling_factor"]
    init_latents = (dist.mean + dist.std * torch.from_numpy(enc_noise)) * sf
    latents = sched.add_noise(init_latents, torch.from_numpy(noise), timesteps[:1])
    if record is not None:
        record.update(image_preprocessed=image, prompt_embeds=ehs, latent_parameters=params,
                      init_latents=init_latents.numpy(), noisy_latents=latents.numpy(),
                      timesteps=timesteps.numpy(), steps=dict(latent_model_input=[], noise_pred_batch=[],
                                                              noise_pred=[], latents=[]))
        if control is not None:
            record["steps"]["controlnet_residuals"] = []
    for t in timesteps:
        lmi = torch.cat([latents] * 2)
        lmi = sched.scale_model_input(lmi, t).numpy()
        tt = np.array([int(t)], dtype=np.int64)
        if control is None:
            npred = fx.s["unet"].run(None, {"sample": lmi, "timestep": tt, "encoder_hidden_states": ehs})[0]
        else:
            cimg, cscale = control
            res = fx.s["controlnet"].run(None, {"sample": lmi, "timestep": tt, "encoder_hidden_states": ehs,
                                                "controlnet_cond": cimg, "conditioning_scale": np.array(cscale, np.float32)})
            feed = {"sample": lmi, "timestep": tt, "encoder_hidden_states": ehs}
            names = [o.name for o in fx.s["controlnet"].get_outputs()]
            feed.update(dict(zip(names, res)))
            npred = fx.s["unet_controlnet"].run(None, feed)[0]
            if record is not None:
                record["steps"]["controlnet_residuals"].append(res)
        u, c = np.split(npred, 2)
        g = u + gs * (c - u)
        latents = sched.step(torch.from_numpy(g), t, latents, eta=P["eta"]).prev_sample
        if record is not None:
            for k, v in [("latent_model_input", lmi), ("noise_pred_batch", npred), ("noise_pred", g),
                         ("latents", latents.numpy())]:
                record["steps"][k].append(v)
    dec_in = (latents / sf).numpy()
    dec = fx.s["vae_decoder"].run(None, {"latent_sample": dec_in})[0]
    img = np.clip(dec / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)
    if record is not None:
        record.update(decoder_input=dec_in, decoder_output=dec)
    return img


def torch_pipeline_run(torch_models, fx: Fixture, init_u8, enc_noise, noise, control_u8=None):
    """The real diffusers torch pipeline with the same weights; randn_tensor replaced by the supplied noise."""
    import diffusers.models.autoencoders.vae as mod_vae
    from diffusers import DDIMScheduler

    P = IMG2IMG
    sched = DDIMScheduler.from_config({k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")})
    common = dict(vae=torch_models["vae"], text_encoder=torch_models["text_encoder"], tokenizer=fx.tokenizer,
                  unet=torch_models["unet"], scheduler=sched, safety_checker=None, feature_extractor=None,
                  requires_safety_checker=False)
    if control_u8 is None:
        import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as mod_pipe
        from diffusers import StableDiffusionImg2ImgPipeline

        pipe = StableDiffusionImg2ImgPipeline(**common)
        extra = {}
    else:
        import diffusers.pipelines.controlnet.pipeline_controlnet_img2img as mod_pipe
        from diffusers import StableDiffusionControlNetImg2ImgPipeline

        pipe = StableDiffusionControlNetImg2ImgPipeline(controlnet=torch_models["controlnet"], **common)
        extra = dict(control_image=pil_from_uint8(control_u8), controlnet_conditioning_scale=CONTROLNET_SCALE)
    pipe.set_progress_bar_config(disable=True)
    q = NoiseQueue([enc_noise, noise])
    old_vae, old_pipe = mod_vae.randn_tensor, mod_pipe.randn_tensor
    mod_vae.randn_tensor = q
    mod_pipe.randn_tensor = q
    try:
        with torch.no_grad():
            out = pipe(prompt=P["prompt"], image=pil_from_uint8(init_u8), strength=P["strength"],
                       num_inference_steps=P["num_inference_steps"], guidance_scale=P["guidance_scale"],
                       eta=P["eta"], output_type="np", **extra)
    finally:
        mod_vae.randn_tensor, mod_pipe.randn_tensor = old_vae, old_pipe
    assert not q.arrays, "pipeline did not consume all supplied noise"
    return out.images


def save_modern(sv: Saver, d: str, rec, img, init_u8, enc_noise, noise, extra_meta):
    sv.npy(f"{d}/init_image_uint8.npy", init_u8)
    pil_from_uint8(init_u8).save(sv.root / d / "init_image.png")
    sv.npy(f"{d}/enc_noise.npy", enc_noise)
    sv.npy(f"{d}/noise.npy", noise)
    for k in ["image_preprocessed", "prompt_embeds", "latent_parameters", "init_latents", "noisy_latents",
              "decoder_input", "decoder_output"]:
        sv.npy(f"{d}/{k}.npy", rec[k])
    sv.npy(f"{d}/timesteps.npy", rec["timesteps"].astype(np.int64))
    for k, v in rec["steps"].items():
        if k == "controlnet_residuals":
            for j in range(len(v[0])):
                sv.npy(f"{d}/step_controlnet_residual_{j}.npy", np.stack([r[j] for r in v]))
        else:
            sv.npy(f"{d}/step_{k}.npy", np.stack(v))
    sv.npy(f"{d}/final_image.npy", img.astype(np.float32))
    u8 = to_uint8_image(img[0])
    sv.npy(f"{d}/final_image_uint8.npy", u8)
    pil_from_uint8(u8).save(sv.root / d / "final_image.png")
    sv.json(f"{d}/meta.json", dict(IMG2IMG, **extra_meta))


def ref_img2img_modern(fx, sv, torch_models, init_u8, enc_noise, noise):
    from diffusers import DDIMScheduler

    rec = {}
    sched = DDIMScheduler.from_config({k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")})
    img = modern_loop(fx, init_u8, enc_noise, noise, sched, record=rec)
    timg = torch_pipeline_run(torch_models, fx, init_u8, enc_noise, noise)
    save_modern(sv, "img2img_modern", rec, img, init_u8, enc_noise, noise, dict(
        semantics="diffusers StableDiffusionImg2ImgPipeline (get_timesteps): noise added at timesteps[t_start]",
        scheduler_config=clean_config(sched.config), timesteps=rec["timesteps"].tolist(), vae_scaling_factor=0.18215))
    return dict(ort_loop_vs_torch_pipeline_final_image_max_abs=float(np.abs(img - timg).max()),
                timesteps=rec["timesteps"].tolist(), final_image_mean=float(img.mean()),
                final_saturated_fraction=float(((img <= 0) | (img >= 1)).mean()))


def ref_controlnet(fx, sv, torch_models, init_u8, enc_noise, noise):
    from diffusers import DDIMScheduler

    ctrl_u8 = make_control_image()
    d = "controlnet"
    # single step, fixed inputs
    sample = rng_normal((2, 4, 8, 8), 10)
    cond01 = (ctrl_u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    cond = np.concatenate([cond01, cond01])
    ehs = np.concatenate([fx.encode_text([""])[0], fx.encode_text([IMG2IMG["prompt"]])[0]])
    tt = np.array([501], dtype=np.int64)
    res = fx.s["controlnet"].run(None, {"sample": sample, "timestep": tt, "encoder_hidden_states": ehs,
                                        "controlnet_cond": cond, "conditioning_scale": np.array(CONTROLNET_SCALE, np.float32)})
    names = [o.name for o in fx.s["controlnet"].get_outputs()]
    feed = {"sample": sample, "timestep": tt, "encoder_hidden_states": ehs, **dict(zip(names, res))}
    out = fx.s["unet_controlnet"].run(None, feed)[0]
    plain = fx.s["unet"].run(None, {"sample": sample, "timestep": tt, "encoder_hidden_states": ehs})[0]
    sv.npy(f"{d}/step/sample.npy", sample)
    sv.npy(f"{d}/step/timestep.npy", tt)
    sv.npy(f"{d}/step/encoder_hidden_states.npy", ehs)
    sv.npy(f"{d}/step/controlnet_cond.npy", cond)
    sv.npy(f"{d}/step/conditioning_scale.npy", np.array(CONTROLNET_SCALE, np.float32))
    for n, r in zip(names, res):
        sv.npy(f"{d}/step/{n}.npy", r)
    sv.npy(f"{d}/step/unet_controlnet_out_sample.npy", out)
    sv.npy(f"{d}/step/unet_plain_out_sample.npy", plain)
    with torch.no_grad():
        down, mid = torch_models["controlnet"](torch.from_numpy(sample), torch.from_numpy(tt),
                                               encoder_hidden_states=torch.from_numpy(ehs),
                                               controlnet_cond=torch.from_numpy(cond),
                                               conditioning_scale=CONTROLNET_SCALE, return_dict=False)
        tout = torch_models["unet"](torch.from_numpy(sample), torch.from_numpy(tt), torch.from_numpy(ehs),
                                    down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    step_diff = float(max(np.abs(a - b.numpy()).max() for a, b in zip(res, list(down) + [mid])))
    # full controlnet img2img run
    rec = {}
    sched = DDIMScheduler.from_config({k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")})
    img = modern_loop(fx, init_u8, enc_noise, noise, sched, control=(cond, CONTROLNET_SCALE), record=rec)
    timg = torch_pipeline_run(torch_models, fx, init_u8, enc_noise, noise, control_u8=ctrl_u8)
    sv.npy(f"{d}/img2img/control_image_uint8.npy", ctrl_u8)
    pil_from_uint8(ctrl_u8).save(sv.root / d / "control_image.png")
    save_modern(sv, f"{d}/img2img", rec, img, init_u8, enc_noise, noise, dict(
        semantics="diffusers StableDiffusionControlNetImg2ImgPipeline: guess_mode False, control_guidance 0..1, "
                  "controlnet_cond = control image in [0,1] (no [-1,1] normalisation), duplicated for CFG",
        controlnet_conditioning_scale=CONTROLNET_SCALE, timesteps=rec["timesteps"].tolist()))
    return dict(step_torch_vs_ort_residual_max_abs=step_diff,
                step_torch_vs_ort_unet_max_abs=float(np.abs(tout.numpy() - out).max()),
                step_unet_controlnet_minus_plain_std=float((out - plain).std()),
                img2img_ort_loop_vs_torch_pipeline_max_abs=float(np.abs(img - timg).max()),
                img2img_vs_plain_img2img_mean_abs=None)


def ref_unet_variants(fx, sv):
    """unet (int64 [steps]) vs unet_timestep_scalar_float (float32 []) on the same inputs."""
    d = "unet_variants"
    sample = rng_normal((2, 4, 8, 8), 30)
    ehs = rng_normal((2, 77, mts.TEXT_CFG["hidden_size"]), 31)
    sv.npy(f"{d}/sample.npy", sample)
    sv.npy(f"{d}/encoder_hidden_states.npy", ehs)
    out = {}
    for t in [999.0, 555.0, 555.5, 0.0]:
        f = fx.s["unet_timestep_scalar_float"].run(None, {"sample": sample, "timestep": np.array(t, np.float32),
                                                          "encoder_hidden_states": ehs})[0]
        i = fx.s["unet"].run(None, {"sample": sample, "timestep": np.array([int(t)], np.int64),
                                    "encoder_hidden_states": ehs})[0]
        tag = str(t).replace(".", "p")
        sv.npy(f"{d}/out_float_t{tag}.npy", f)
        sv.npy(f"{d}/out_int64_t{int(t)}.npy", i)
        out[str(t)] = float(np.abs(f - i).max())
    return dict(max_abs_float_vs_int64_same_t=out)


# ----------------------------------------------------------------------------- (3) timing
def timeit(fn, runs, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return dict(median_ms=1000 * statistics.median(ts), mean_ms=1000 * statistics.fmean(ts),
                min_ms=1000 * min(ts), max_ms=1000 * max(ts), runs=runs)


def ref_timing(fixture_dir: Path, torch_models, init_u8, enc_noise, noise, runs):
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler

    out = {}
    for threads in [0, 1]:
        fx = Fixture(fixture_dir, threads)
        key = "ort_default_threads" if threads == 0 else "ort_1_thread"
        P = IMG2IMG
        pipe = onnx_pipeline(fx, enc_noise)
        pil = pil_from_uint8(init_u8)
        r = {}
        r["frame_diffusers_OnnxStableDiffusionImg2ImgPipeline"] = timeit(lambda: pipe(
            prompt=P["prompt"], image=pil, strength=P["strength"], num_inference_steps=P["num_inference_steps"],
            guidance_scale=P["guidance_scale"], eta=P["eta"], generator=FixedNumpyGenerator(noise), output_type="np"), runs)
        cfg = {k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")}
        r["frame_modern_ort_loop_ddim"] = timeit(lambda: modern_loop(fx, init_u8, enc_noise, noise, DDIMScheduler.from_config(cfg)), runs)
        ids = fx.tokenize77([P["prompt"]])
        r["tokenizer_1_prompt_pad77"] = timeit(lambda: fx.tokenize77([P["prompt"]]), runs * 10)
        r["text_encoder_b1"] = timeit(lambda: fx.s["text_encoder"].run(None, {"input_ids": ids}), runs * 5)
        ids2 = np.concatenate([ids, ids])
        r["text_encoder_b2"] = timeit(lambda: fx.s["text_encoder"].run(None, {"input_ids": ids2}), runs * 5)
        lmi = rng_normal((2, 4, 8, 8), 20)
        ehs = rng_normal((2, 77, mts.TEXT_CFG["hidden_size"]), 21)
        r["unet_b2_8x8"] = timeit(lambda: fx.s["unet"].run(None, {"sample": lmi, "timestep": np.array([501]), "encoder_hidden_states": ehs}), runs * 5)
        cond = np.zeros((2, 3, 64, 64), np.float32)
        r["controlnet_b2_8x8"] = timeit(lambda: fx.s["controlnet"].run(None, {"sample": lmi, "timestep": np.array([501]), "encoder_hidden_states": ehs,
                                                                            "controlnet_cond": cond, "conditioning_scale": np.array(1.0, np.float32)}), runs * 5)
        img = rng_normal((1, 3, 64, 64), 22)
        r["vae_encoder_64px"] = timeit(lambda: fx.s["vae_encoder"].run(None, {"sample": img}), runs * 5)
        lat = rng_normal((1, 4, 8, 8), 23)
        r["vae_decoder_8x8"] = timeit(lambda: fx.s["vae_decoder"].run(None, {"latent_sample": lat}), runs * 5)
        s = DDIMScheduler.from_config(cfg)
        s.set_timesteps(10)
        x = torch.from_numpy(lat)
        r["ddim_step_torch"] = timeit(lambda: s.step(x, s.timesteps[3], x, eta=0.0), runs * 10)
        out[key] = r
    # torch pipeline for comparison
    fx = Fixture(fixture_dir)
    torch.set_num_threads(os.cpu_count() or 1)
    out["torch_default_threads"] = dict(frame_diffusers_StableDiffusionImg2ImgPipeline_torch=timeit(
        lambda: torch_pipeline_run(torch_models, fx, init_u8, enc_noise, noise), runs))
    out["calls_per_frame"] = dict(text_encoder="2 calls batch 1 (prompt, '') in both pipelines",
                                  unet="6 calls, batch 2 (CFG), 8x8 latents (strength 0.6 x 10 steps)",
                                  vae_encoder=1, vae_decoder=1)
    return out


# ----------------------------------------------------------------------------- README
def write_readme(ref: Path, summary, idx):
    import textwrap

    P = IMG2IMG
    lines = []
    A = lines.append
    A("# Reference outputs for the tiny SD 1.x ONNX fixture")
    A("")
    A("Generated by `make_reference.py` (same folder) from the ONNX files in `../tiny-sd-onnx/` with")
    A("Python diffusers + onnxruntime (CPU). Every random input is an explicit `.npy` here, drawn with")
    A(f"`numpy.random.default_rng({NOISE_SEED} + k).standard_normal(shape).astype(float32)` (k given per file),")
    A("so a re-implementation never needs a matching RNG. All float arrays are float32, NCHW unless said.")
    A("Versions and the fixture's sha256 are in `manifest.json`; shapes/dtypes of every file too.")
    A("")
    A("Differences seen between independent paths (`manifest.json` -> `summary`): ORT vs torch 1e-7..3e-6.")
    A("A Rust port feeding identical inputs to the same ONNX files through ORT should get the same numbers to")
    A("~1e-6; suggested test tolerance 1e-4 abs on latents/images (scheduler math done in f64 instead of f32 drifts")
    A("by ~1e-6 relative), and the uint8 images equal or off by one in a few pixels.")
    A("")
    A("## (a) text_encoder/")
    A("- `prompts.json`: the 5 prompts (the 5th is > 77 tokens and gets truncated).")
    A("- `input_ids.npy` int32 (5,77): `tokenizer(prompts, padding='max_length', max_length=77, truncation=True)`;")
    A("  pad id = 49407 (`<|endoftext|>`), bos 49406. Truncation keeps 75 content tokens + eos.")
    A("- `last_hidden_state.npy` (5,77,32) and `pooler_output.npy` (5,32): `text_encoder/model.onnx` on those ids")
    A("  (batch of 5). `pooler_output` = hidden state at argmax(input_ids) (legacy eos_token_id=2 config, like SD 1.x).")
    A("")
    A("## (b) tokenizer/tokens.json")
    A("A list of objects, one per prompt: `prompt`, `prompt_utf8_hex` (exact bytes), `ids` (no padding, no")
    A("truncation, with bos/eos), `n_tokens`, `ids_77` (what the pipelines feed: padded with 49407 / truncated")
    A("to 77 with eos last), `truncated`, `tokens` (BPE strings), `open_clip_ids` (OpenAI's original")
    A("SimpleTokenizer via open_clip: ftfy + html.unescape + whitespace clean + lower), `hf_equals_open_clip`.")
    A("`ids`/`ids_77` come from transformers' `CLIPTokenizer` (tokenizers backend, i.e. the same code as the Rust")
    A("`tokenizers` crate with NFC + `\\s+`->' ' + lowercase normalizer and the CLIP split regex); diffusers uses this.")
    A("Prompts where open_clip differs: " + "; ".join(repr(p) for p in summary["tokens"]["differ"]) + ".")
    A("Weights syntax such as `(word:1.3)` is tokenized raw (diffusers has no prompt-weight parser).")
    A("")
    A("## (c) schedulers/")
    A("Shared inputs: `model_outputs.npy` (10,1,4,8,8) k=1 — model output (epsilon) fed at step i is")
    A("`model_outputs[i]`; `step_noise.npy` (10,1,4,8,8) k=2 — noise for step i of ancestral/stochastic")
    A("samplers (Euler a, LCM, DDIM eta=1); `noise_init.npy` (1,4,8,8) k=3; `x0.npy` (1,4,8,8) = 0.8*N(0,1) k=4,")
    A("the clean latents for the img2img scenario; `alphas_cumprod.npy` (1000,) from the config.")
    A("All schedulers are `Class.from_config(scheduler/scheduler_config.json)` (SD 1.5's PNDM config: scaled_linear")
    A("0.00085..0.012, 1000 steps, steps_offset 1, no timestep_spacing key => each class's default spacing).")
    A("Per `<name>/<scenario>/`: `meta.json` (class, full effective config, timesteps, sigmas, which step drew noise),")
    A("`init_latents.npy`, and per step i (stacked on axis 0): `sample_in` (latents before step), `model_input`")
    A("(`scale_model_input(sample_in, t)`), `prev_sample` (`step(model_outputs[i], t, sample_in).prev_sample`),")
    A("`pred_original_sample` (x0 prediction; LCM: `denoised`; NaN where the scheduler returns none).")
    A("- `txt2img`: `init_latents = noise_init * init_noise_sigma`, all N steps.")
    A("- `img2img`: strength 0.6 with StableDiffusionImg2ImgPipeline semantics: `init_timestep=min(int(N*0.6),N)`,")
    A("  `t_start=N-init_timestep`, run `timesteps[t_start*order:]`, `set_begin_index(t_start*order)`,")
    A("  `init_latents = add_noise(x0, noise_init, timesteps[t_start])`. LCM instead uses `set_timesteps(4, strength=0.6)`.")
    A("Schedulers (N): `ddim` (10, eta 0), `ddim_eta1` (10, eta 1, `variance_noise=step_noise[i]`), `euler` (10),")
    A("`euler_ancestral` (10; its internal randn replaced by `step_noise[i]`), `dpmpp_2m_karras` (10;")
    A("DPMSolverMultistep, dpmsolver++, order 2, Karras sigmas, final_sigmas_type zero, lower_order_final),")
    A("`lcm` (4; noise `step_noise[i]` is used on every step but the last).")
    for k, v in summary["schedulers"].items():
        A(f"  - `{k}`: {v['steps']} steps, timesteps {v['timesteps']}")
    A("")
    A("## (d) img2img_onnx/ — diffusers `OnnxStableDiffusionImg2ImgPipeline` (the ONNX pipeline itself)")
    A(f"Prompt {P['prompt']!r}, negative prompt none (=> '' for CFG), strength {P['strength']}, "
      f"{P['num_inference_steps']} steps, guidance {P['guidance_scale']}, DDIM eta {P['eta']}, 64x64.")
    A("Inputs: `init_image.png` / `init_image_uint8.npy` (64,64,3) synthetic; `enc_noise.npy` (1,4,8,8) k=5 — the")
    A("VAE posterior sample noise: `latents = mean + exp(0.5*clamp(logvar,-30,20)) * enc_noise` where")
    A("`mean, logvar = split(latent_parameters, 2, axis=1)`; `noise.npy` (1,4,8,8) k=6 — the img2img noise")
    A("(the pipeline's `generator.randn`). The pipeline was given a vae_encoder wrapper doing exactly that sampling,")
    A("because this fixture's vae_encoder returns `latent_parameters` (optimum >= 1.23) while the diffusers ONNX")
    A("pipeline expects an already-sampled `latent_sample`.")
    A("IMPORTANT quirk of this legacy pipeline: `init_timestep = int(N*strength) + steps_offset` = 7, noise is added")
    A(f"at `timesteps[-7]` = {summary['img2img_onnx']['noise_timestep']}, but denoising runs timesteps "
      f"{summary['img2img_onnx']['timesteps']} (it skips the noise level it added). The modern pipeline does not (below).")
    A("Files: `image_preprocessed` (1,3,64,64) in [-1,1]; `cond_input_ids`/`uncond_input_ids` (1,77) int32;")
    A("`prompt_embeds` (2,77,32) = [uncond, cond]; `latent_parameters` (1,8,8,8); `init_latents_unscaled` (sampled);")
    A("`init_latents` (*0.18215); `noisy_latents`; `timesteps` int64; per step (axis 0): `step_latent_model_input`")
    A("(2,4,8,8), `step_noise_pred_batch` (2,4,8,8 raw UNet out), `step_noise_pred` (after CFG), `step_latents`")
    A("(after DDIM step); `decoder_input` (= `1 / 0.18215 * latents`, i.e. multiply by the f32-rounded constant")
    A("1/0.18215 — the pipeline's own expression; `latents / 0.18215` differs in the last bit), `decoder_output`")
    A("(1,3,64,64 raw), `final_image.npy`")
    A("(1,64,64,3) float = clip(dec/2+0.5, 0, 1) NHWC — the pipeline's `output_type='np'` result —,")
    A("`final_image_uint8.npy`/`final_image.png` = round(x*255). UNet timestep input: `np.array([t], int64)`.")
    A("")
    A("## (d') img2img_modern/ — same inputs, `StableDiffusionImg2ImgPipeline` semantics")
    A(f"Hand-written ORT loop: noise added at `timesteps[t_start]` and the same {len(summary['img2img_modern']['timesteps'])} "
      f"timesteps denoised: {summary['img2img_modern']['timesteps']}. Cross-checked against the real torch")
    A("`StableDiffusionImg2ImgPipeline` with the same weights and the same supplied noise (`randn_tensor` replaced):")
    A(f"max |ORT - torch| on the final image = {summary['img2img_modern']['ort_loop_vs_torch_pipeline_final_image_max_abs']:.2e}.")
    A("Same file names as img2img_onnx (without the *_input_ids and init_latents_unscaled); here")
    A("`init_latents = 0.18215 * (mean + std*enc_noise)` and `decoder_input = latents / 0.18215` (division).")
    A("optimum's own `ORTStableDiffusionImg2ImgPipeline` (optimum-onnx 0.1.0) loading `../tiny-sd-onnx` with the same")
    A("noise reproduces `final_image.npy` exactly (`../check_optimum_load.py`).")
    A("")
    A("## controlnet/")
    A(f"- `step/`: one ControlNet + UNet call. Inputs `sample` (2,4,8,8) k=10, `timestep` [501] int64,")
    A(f"  `encoder_hidden_states` (2,77,32) = [uncond '', cond prompt], `controlnet_cond` (2,3,64,64) = control image")
    A(f"  / 255 in [0,1] (diffusers does not map control images to [-1,1]), `conditioning_scale` {CONTROLNET_SCALE}")
    A("  (float32 scalar, shape []).")
    A("  Outputs: `down_block_{i}_additional_residual.npy`, `mid_block_additional_residual.npy` (controlnet/model.onnx),")
    A("  `unet_controlnet_out_sample.npy` (unet_controlnet/model.onnx fed those residuals), `unet_plain_out_sample.npy`.")
    A("- `control_image.png`, `img2img/`: ControlNet img2img run with img2img_modern's inputs plus the control image,")
    A("  semantics of `StableDiffusionControlNetImg2ImgPipeline` (ControlNet sees the CFG batch of 2, scale 0.8 every")
    A("  step). Extra per-step files `step_controlnet_residual_{j}.npy` (j = output order of controlnet/model.onnx).")
    A(f"  Cross-check vs the torch pipeline: max abs {summary['controlnet']['img2img_ort_loop_vs_torch_pipeline_max_abs']:.2e}.")
    A("")
    A("## unet_variants/")
    A("`sample.npy` (2,4,8,8) k=30 and `encoder_hidden_states.npy` (2,77,32) k=31 fed to `unet_timestep_scalar_float`")
    A("with timestep t as a float32 scalar (`out_float_t999p0.npy`, `_t555p0`, `_t555p5`, `_t0p0`) and to `unet` with")
    A("`[int(t)]` int64 (`out_int64_t999.npy`, `_t555`, `_t0`). Same weights: equal for integral t; t=555.5 shows what")
    A("truncating a fractional (Euler/Karras) timestep to an int64-timestep model changes.")
    A("")
    A("## timing.json")
    A("Wall-clock per img2img frame and per component on this machine (2 cores), ORT CPU EP with default")
    A("threads and with 1 intra-op thread, plus the torch pipeline. See the report for the table.")
    A("")
    A("## File index (shape, dtype)")
    for k in sorted(idx):
        v = idx[k]
        if "shape" in v:
            A(f"- `{k}`: {tuple(v['shape'])} {v['dtype']}")
    (ref / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", type=Path, default=HERE / "tiny-sd")
    ap.add_argument("--ref", type=Path, default=HERE.parent / "tests" / "data" / "sd-ref")
    ap.add_argument("--timing-runs", type=int, default=30)
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args()
    if args.ref.exists():
        shutil.rmtree(args.ref)
    args.ref.mkdir(parents=True)
    torch.manual_seed(0)
    fx = Fixture(args.fixture)
    sv = Saver(args.ref)
    fixture_manifest = json.loads((args.fixture / "manifest.json").read_text())
    # rebuild the identical torch models (same configs + seed as the fixture) for the torch cross-checks
    for key, cfg in [("text", mts.TEXT_CFG), ("unet", mts.UNET_CFG), ("vae", mts.VAE_CFG), ("controlnet", mts.CONTROLNET_CFG)]:
        cfg.update({k: tuple(v) if isinstance(v, list) else v for k, v in fixture_manifest["configs"][key].items()})
    torch_models = mts.build_models(fixture_manifest["seed"])
    # the fixture must be the one these torch weights were exported to
    summary = {}
    summary["text_encoder"] = ref_text_encoder(fx, sv, torch_models)
    summary["tokens"] = ref_tokens(fx, sv)
    summary["schedulers"] = ref_schedulers(fx, sv)
    init_u8 = make_init_image()
    enc_noise = rng_normal((1, 4, 8, 8), 5)
    noise = rng_normal((1, 4, 8, 8), 6)
    summary["img2img_onnx"] = ref_img2img_onnx(fx, sv, init_u8, enc_noise, noise)
    summary["img2img_modern"] = ref_img2img_modern(fx, sv, torch_models, init_u8, enc_noise, noise)
    summary["controlnet"] = ref_controlnet(fx, sv, torch_models, init_u8, enc_noise, noise)
    summary["unet_variants"] = ref_unet_variants(fx, sv)
    a = np.load(args.ref / "controlnet/img2img/final_image.npy")
    b = np.load(args.ref / "img2img_modern/final_image.npy")
    summary["controlnet"]["img2img_vs_plain_img2img_mean_abs"] = float(np.abs(a - b).mean())
    if not args.skip_timing:
        timing = ref_timing(args.fixture, torch_models, init_u8, enc_noise, noise, args.timing_runs)
        timing["machine"] = dict(cpu_count=os.cpu_count(), platform=platform.platform(),
                                 processor=_cpu_model())
        sv.json("timing.json", timing)
        summary["timing"] = {k: {n: round(v["median_ms"], 3) for n, v in d.items() if isinstance(v, dict) and "median_ms" in v}
                             for k, d in timing.items() if isinstance(d, dict)}
    manifest = dict(
        versions=mts.versions(),
        fixture=str(args.fixture),
        fixture_files_sha256={k: v["sha256"] for k, v in fixture_manifest["files"].items()},
        noise_seed=NOISE_SEED,
        summary=summary,
        files=sv.index,
    )
    sv.json("manifest.json", manifest)
    write_readme(args.ref, summary, sv.index)
    print(json.dumps(summary, indent=1, default=_jsonable))


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
