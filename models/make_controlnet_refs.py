#!/usr/bin/env python3
"""ControlNet references: diffusers' own ControlNet pipelines (PyTorch) on the tiny models' weights, each cross-checked
with an ONNX Runtime loop over the exported files (models/make_tiny_controlnet.py), plus an own-code reference of
A1111's control modes and guidance windows and a keep-mask table.

Writes tests/data/controlnet-ref/ (its README.md, written by hand, describes every file and is kept):

  control/edges.png, control/pose.png   the control images (64x64 RGB uint8; edges is grey, pose coloured)
  init_image.png                        the img2img input (make_reference.make_init_image, 64x64)
  keep_masks.json                       keep[i][u] for N in {1, 6, 10, 16, 25} steps and 5 windows, diffusers' and
                                        A1111's semantics
  <case>/meta.json                      every input (prompt, negative, seed, steps, strength, guidance, scheduler
                                        class and config, size, model folders, control images, scales, windows,
                                        control modes), the per-step keep and residual multipliers, UNet timesteps,
                                        ORT-vs-torch differences and the sensitivity table
  <case>/image_uint8.npy, image.png     the pipeline's image (H, W, 3)
  <case>/latents.npy                    the final latents (1, 4, 8, 8), before the VAE decoder
  <case>/step_latents.npy               latents after each step (N, 1, 4, 8, 8)
  <case>/step_noise_pred.npy            the guided noise prediction of each step (N, 1, 4, 8, 8)
  <case>/noise.npy                      every randn_tensor draw of torch.Generator("cpu").manual_seed(seed), in
                                        order, flattened (draws, 256)
  some cases also: step_unet_out.npy (N, 2, 4, 8, 8) the UNet's raw [uncond, cond] output, step_residual_{k}.npy
  (N, 2, C, h, w) the summed, scaled residual k the UNet received (k = 6 is the mid block's)

Venv: as models/make_tiny_controlnet.py's docstring says (same pinned versions).
Usage:  python models/make_controlnet_refs.py [--models models] [--out tests/data/controlnet-ref]
Deterministic: same versions => byte-identical .npy files.
"""
from __future__ import annotations

import argparse
import functools
import importlib
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
import make_tiny_controlnet as mtc  # noqa: E402
import make_tiny_sd as mts  # noqa: E402
import make_tiny_sdxl as mtx  # noqa: E402

warnings.filterwarnings("ignore")

PROMPT = "a red fox sitting in the snow, highly detailed"
NEGATIVE = "blurry, low quality"
SEED = 1414
STRENGTH = 0.6
STEPS = 10
GUIDANCE = 7.5
N_RES = mts.n_down_residuals() + 1  # 6 down + mid, for both tiny UNets
MODES = ["Balanced", "My prompt is more important", "ControlNet is more important"]

# model folders, relative to the repository root
SD_BASE, SDXL_BASE = "models/tiny-sd", "models/tiny-sdxl"
NET_DIR = {n: f"models/tiny-controlnet/{n}" for n in ["sd-1", "sd-2", "sdxl-1"]}
UNET_A = {"sd": "models/tiny-sd/unet_controlnet", "sdxl": "models/tiny-sdxl/unet_controlnet"}
MERGED = {"sd": "models/tiny-sd-merged", "sdxl": "models/tiny-sdxl-merged"}

TWO = dict(nets=["sd-1", "sd-2"], controls=["edges.png", "pose.png"])
CASES = [
    dict(name="sd_txt2img_1unit", family="sd", mode="txt2img", convention="a", sampler="ddim", nets=["sd-1"],
         controls=["edges.png"], scales=[1.0], windows=[(0.0, 1.0)]),
    dict(name="sd_img2img_1unit", family="sd", mode="img2img", convention="a", sampler="ddim", nets=["sd-1"],
         controls=["pose.png"], scales=[0.8], windows=[(0.0, 1.0)]),
    dict(name="sd_img2img_2units_ddim", family="sd", mode="img2img", convention="a", sampler="ddim", **TWO,
         scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)], residuals=True),
    dict(name="sd_img2img_2units_euler_a", family="sd", mode="img2img", convention="a", sampler="euler_a", **TWO,
         scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)]),
    dict(name="sd_txt2img_2units", family="sd", mode="txt2img", convention="a", sampler="euler", **TWO,
         scales=[0.9, 0.6], windows=[(0.0, 0.6), (0.4, 1.0)]),
    dict(name="sd_merged_img2img_2units_ddim", family="sd", mode="img2img", convention="b", sampler="ddim", **TWO,
         scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)], same_as="sd_img2img_2units_ddim"),
    dict(name="sd_merged_txt2img_2units", family="sd", mode="txt2img", convention="b", sampler="euler", **TWO,
         scales=[0.9, 0.6], windows=[(0.0, 0.6), (0.4, 1.0)], same_as="sd_txt2img_2units"),
    dict(name="sdxl_txt2img_1unit", family="sdxl", mode="txt2img", convention="a", sampler="euler", nets=["sdxl-1"],
         controls=["pose.png"], scales=[1.0], windows=[(0.0, 1.0)], negative=None),
    dict(name="sdxl_img2img_2units", family="sdxl", mode="img2img", convention="a", sampler="euler",
         nets=["sdxl-1", "sdxl-1"], controls=["edges.png", "pose.png"], scales=[0.7, 0.4],
         windows=[(0.0, 0.6), (0.2, 1.0)]),
    dict(name="sdxl_merged_img2img_1unit", family="sdxl", mode="img2img", convention="b", sampler="euler",
         nets=["sdxl-1"], controls=["pose.png"], scales=[0.8], windows=[(0.0, 0.8)]),
    dict(name="a1111_balanced", family="sd", mode="img2img", convention="a", sampler="ddim", **TWO,
         scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)], semantics="a1111", control_modes=[MODES[0]] * 2),
    dict(name="a1111_prompt_more_important", family="sd", mode="img2img", convention="a", sampler="ddim", **TWO,
         scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)], semantics="a1111", control_modes=[MODES[1]] * 2),
    dict(name="a1111_controlnet_more_important", family="sd", mode="img2img", convention="a", sampler="ddim",
         **TWO, scales=[0.8, 0.5], windows=[(0.0, 0.5), (0.3, 1.0)], semantics="a1111",
         control_modes=[MODES[2]] * 2),
    dict(name="a1111_mixed_modes", family="sd", mode="img2img", convention="a", sampler="euler_a", **TWO,
         scales=[1.0, 0.7], windows=[(0.0, 0.7), (0.2, 1.0)], semantics="a1111",
         control_modes=[MODES[2], MODES[1]], residuals=True),
]


# ----------------------------------------------------------------------------- semantics (shared by both paths)
def keep_diffusers(i, n, start, end):
    """diffusers' pipelines: 1 - float(i / N < start or (i + 1) / N > end) over the N steps run."""
    return 1.0 - float(i / n < start or (i + 1) / n > end)


def a1111_total(mode, steps, strength):
    """A1111's total_sampling_steps T: steps for txt2img, int(min(strength, 0.999) * steps) + 1 for img2img."""
    return steps if mode == "txt2img" else int(min(strength, 0.999) * steps) + 1


def keep_a1111(i, total, start, end):
    """sd-webui-controlnet: active iff start <= s / T <= end with s = max(i - 1, 0) (the webui's sampling_step
    lags the model call by one step)."""
    s = max(i - 1, 0)
    return float(start <= s / total <= end)


def soft_scales(n_res):
    """A1111's 'soft injection' scales 0.825^(12 - k), k = 0..12, cut to the model's residual count (the extension
    computes 13 and keeps the first n: SDXL's 10, the tiny models' 7). Residual k of a model with n residuals
    (mid last) gets 0.825^(12 - k)."""
    return [0.825 ** float(12 - k) for k in range(13)][:n_res]


def plan_for(case, n_steps):
    """Per step i and unit u: (multipliers of residuals 0..K as float32, row mask [uncond, cond] as float32).
    diffusers: scale * keep on every residual and row. A1111: weight * keep * (1 or soft scale k), and 0 on the
    uncond row for 'ControlNet is more important'."""
    plan = []
    semantics = case.get("semantics", "diffusers")
    total = a1111_total(case["mode"], STEPS, STRENGTH)
    for i in range(n_steps):
        row = []
        for u, ((s, e), w) in enumerate(zip(case["windows"], case["scales"])):
            if semantics == "diffusers":
                k = keep_diffusers(i, n_steps, s, e)
                mult = np.full(N_RES, np.float32(w * k), np.float32)
                rows = np.ones(2, np.float32)
            else:
                mode = case["control_modes"][u]
                k = keep_a1111(i, total, s, e)
                soft = soft_scales(N_RES) if mode != "Balanced" else [1.0] * N_RES
                mult = np.array([w * k * f for f in soft], np.float32)
                rows = np.array([0.0 if mode == "ControlNet is more important" else 1.0, 1.0], np.float32)
            row.append((mult, rows))
        plan.append(row)
    return plan


# ----------------------------------------------------------------------------- inputs
def make_pose_image(h=64, w=64):
    """A coloured stick figure on black (uint8 HxWx3): sticks in distinct RGB colours so that a channel-order
    mistake shows."""
    img = np.zeros((h, w, 3), np.uint8)
    pts = {"head": (0.5, 0.15), "neck": (0.5, 0.3), "hip": (0.5, 0.6), "lh": (0.25, 0.45), "rh": (0.78, 0.4),
           "lf": (0.33, 0.92), "rf": (0.68, 0.9)}
    sticks = [("head", "neck", (255, 0, 0)), ("neck", "hip", (255, 170, 0)), ("neck", "lh", (0, 255, 85)),
              ("neck", "rh", (0, 85, 255)), ("hip", "lf", (170, 0, 255)), ("hip", "rf", (255, 0, 170))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for a, b, col in sticks:
        (x0, y0), (x1, y1) = [(pts[p][0] * (w - 1), pts[p][1] * (h - 1)) for p in (a, b)]
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        img[d <= 2.0] = col
    for p, col in [("head", (255, 255, 0)), ("lh", (0, 255, 255)), ("rh", (255, 0, 255))]:
        x0, y0 = pts[p][0] * (w - 1), pts[p][1] * (h - 1)
        img[np.hypot(xx - x0, yy - y0) <= 3.0] = col
    return img


def load_png(path: Path):
    import PIL.Image

    return np.array(PIL.Image.open(path).convert("RGB"))


def control_tensor(u8):
    """What the pipelines feed the ControlNet: RGB / 255 in [0, 1], NCHW, the two CFG rows identical."""
    x = (u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return np.concatenate([x, x])


# ----------------------------------------------------------------------------- schedulers
def make_scheduler(family, sampler):
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler

    base = mts.SCHEDULER_CONFIG if family == "sd" else mtx.SCHEDULER_CONFIG
    cfg = {k: v for k, v in base.items() if not k.startswith("_")}
    cls = dict(ddim=DDIMScheduler, euler=EulerDiscreteScheduler, euler_a=EulerAncestralDiscreteScheduler)[sampler]
    return cls.from_config(cfg)


RANDN_MODULES = [
    "diffusers.pipelines.controlnet.pipeline_controlnet",
    "diffusers.pipelines.controlnet.pipeline_controlnet_img2img",
    "diffusers.pipelines.controlnet.pipeline_controlnet_sd_xl",
    "diffusers.pipelines.controlnet.pipeline_controlnet_sd_xl_img2img",
    "diffusers.models.autoencoders.vae",
    "diffusers.schedulers.scheduling_euler_ancestral_discrete",
    "diffusers.schedulers.scheduling_ddim",
]


class Recorder:
    """Wraps diffusers' randn_tensor: the real seeded draw, recorded in order."""

    def __init__(self, real):
        self.real = real
        self.draws = []

    def __call__(self, *a, **kw):
        x = self.real(*a, **kw)
        self.draws.append(x.detach().cpu().numpy().copy())
        return x


class Playback:
    """Stands in for randn_tensor in the ORT loop: the recorded draws, in order."""

    def __init__(self, draws):
        self.draws = list(draws)

    def __call__(self, shape, generator=None, device=None, dtype=None, layout=None):
        a = self.draws.pop(0).reshape(shape)
        return torch.from_numpy(a.copy()).to(dtype=dtype or torch.float32)


def patch_randn(fn):
    from diffusers.utils.torch_utils import randn_tensor

    mods = [importlib.import_module(m) for m in RANDN_MODULES]
    for m in mods:
        m.randn_tensor = fn

    def restore():
        for m in mods:
            m.randn_tensor = randn_tensor

    return restore


# ----------------------------------------------------------------------------- torch (diffusers pipelines)
def planned_multicontrolnet(nets, plan):
    """A MultiControlNetModel that runs each net at scale 1 and applies `plan` (A1111's semantics) itself; the
    pipeline's own conditioning_scale (diffusers' keep) is ignored. One call per step (first-order samplers)."""
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    class Planned(MultiControlNetModel):
        def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale,
                    added_cond_kwargs=None, return_dict=True, **_):
            i = self.calls
            self.calls += 1
            total = None
            for u, (image, net) in enumerate(zip(controlnet_cond, self.nets)):
                mult, rows = self.plan[i][u]
                d, m = net(sample, timestep, encoder_hidden_states=encoder_hidden_states, controlnet_cond=image,
                           conditioning_scale=1.0, added_cond_kwargs=added_cond_kwargs, return_dict=False)
                rm = torch.from_numpy(rows).view(-1, 1, 1, 1)
                res = [r * float(mult[k]) * rm for k, r in enumerate(list(d) + [m])]
                total = res if total is None else [a + b for a, b in zip(total, res)]
            return total[:-1], total[-1]

    mc = Planned(nets)
    mc.plan, mc.calls = plan, 0
    return mc


def torch_run(case, sd, xl, nets, refdir: Path, planned=False):
    """The diffusers pipeline for `case` with spies: returns images, latents, per-step records and draws.
    `planned` uses the own-code scaler even for diffusers' semantics (a check of that scaler)."""
    from diffusers import (StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetPipeline,
                           StableDiffusionXLControlNetImg2ImgPipeline, StableDiffusionXLControlNetPipeline)
    from diffusers.utils.torch_utils import randn_tensor
    from transformers import CLIPTokenizer

    fam, mode = case["family"], case["mode"]
    sched = make_scheduler(fam, case["sampler"])
    cnets = [nets[n] for n in case["nets"]]
    if case.get("semantics") == "a1111" or planned:
        n_run = min(int(STEPS * STRENGTH), STEPS) if mode == "img2img" else STEPS
        controlnet = planned_multicontrolnet(cnets, plan_for(case, n_run))
    else:
        controlnet = cnets[0] if len(cnets) == 1 else cnets
    if fam == "sd":
        models = sd
        parts = dict(vae=sd["vae"], text_encoder=sd["text_encoder"], unet=sd["unet"], scheduler=sched,
                     tokenizer=CLIPTokenizer.from_pretrained(str(ROOT / SD_BASE / "tokenizer")),
                     controlnet=controlnet, safety_checker=None, feature_extractor=None,
                     requires_safety_checker=False)
        cls = StableDiffusionControlNetPipeline if mode == "txt2img" else StableDiffusionControlNetImg2ImgPipeline
    else:
        models = xl
        parts = dict(vae=xl["vae"], text_encoder=xl["text_encoder"], text_encoder_2=xl["text_encoder_2"],
                     tokenizer=CLIPTokenizer.from_pretrained(str(ROOT / SDXL_BASE / "tokenizer")),
                     tokenizer_2=CLIPTokenizer.from_pretrained(str(ROOT / SDXL_BASE / "tokenizer_2")),
                     unet=xl["unet"], controlnet=controlnet, scheduler=sched, force_zeros_for_empty_prompt=True,
                     add_watermarker=False)
        cls = StableDiffusionXLControlNetPipeline if mode == "txt2img" else StableDiffusionXLControlNetImg2ImgPipeline
    pipe = cls(**parts)
    pipe.set_progress_bar_config(disable=True)

    rec = dict(step_latents=[], step_noise_pred=[], step_unet_out=[], residuals=[], timesteps=[], time_ids=[],
               ehs=[])
    unet = models["unet"]
    forward = unet.forward

    def unet_spy(*a, **kw):
        rec["timesteps"].append(float(a[1]) if len(a) > 1 else float(kw["timestep"]))
        if kw.get("added_cond_kwargs") and "time_ids" in kw["added_cond_kwargs"]:
            rec["time_ids"].append(kw["added_cond_kwargs"]["time_ids"].tolist())
        d, m = kw["down_block_additional_residuals"], kw["mid_block_additional_residual"]
        rec["residuals"].append([x.detach().numpy().copy() for x in list(d) + [m]])
        out = forward(*a, **kw)
        rec["step_unet_out"].append(out[0].detach().numpy().copy())
        return out

    step = sched.step

    @functools.wraps(step)  # keeps step's signature: the pipeline passes `generator` / `eta` only if step takes them
    def step_spy(model_output, *a, **kw):
        rec["step_noise_pred"].append(model_output.detach().numpy().copy())
        return step(model_output, *a, **kw)

    def on_step_end(p, i, t, kw):
        rec["step_latents"].append(kw["latents"].detach().numpy().copy())
        return {}

    unet.forward = unet_spy
    sched.step = step_spy
    draws = Recorder(randn_tensor)
    restore = patch_randn(draws)
    controls = [mr.pil_from_uint8(load_png(refdir / "control" / c)) for c in case["controls"]]
    control = controls[0] if len(controls) == 1 else controls
    args = dict(prompt=PROMPT, negative_prompt=case.get("negative", NEGATIVE), num_inference_steps=STEPS,
                guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
                controlnet_conditioning_scale=case["scales"][0] if len(cnets) == 1 else list(case["scales"]),
                control_guidance_start=[w[0] for w in case["windows"]] if len(cnets) > 1 else case["windows"][0][0],
                control_guidance_end=[w[1] for w in case["windows"]] if len(cnets) > 1 else case["windows"][0][1],
                callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
    if case["sampler"] == "ddim":
        args["eta"] = 0.0
    if mode == "txt2img":
        args.update(image=control, height=64, width=64)
    else:
        args.update(image=mr.pil_from_uint8(load_png(refdir / "init_image.png")), control_image=control,
                    strength=STRENGTH)
    try:
        with torch.no_grad():
            img = pipe(**args).images[0]
    finally:
        restore()
        unet.forward = forward
    sched.step = step
    return dict(image=img, image_u8=mr.to_uint8_image(img), draws=draws.draws, sched=sched, pipeline=cls.__name__,
                **rec)


# ----------------------------------------------------------------------------- ORT loop
class Ort:
    def __init__(self, root: Path):
        self.root = root
        self.cache = {}

    def sess(self, rel):
        if rel not in self.cache:
            self.cache[rel] = mr.ort_session(self.root / rel / "model.onnx")
        return self.cache[rel]

    def run(self, rel, feed):
        s = self.sess(rel)
        names = [o.name for o in s.get_outputs()]
        return dict(zip(names, s.run(None, feed)))

    def timestep(self, rel, t):
        """The timestep as the model declares it: int64 (truncated, as numpy's astype) or float32, shape [1]."""
        kind = next(i for i in self.sess(rel).get_inputs() if i.name == "timestep").type
        return np.array([t], np.int64 if kind == "tensor(int64)" else np.float32)


def ort_text(ort, case):
    """Prompt embeddings from the ONNX text encoders ([uncond, cond]), SDXL's pooled text_embeds and time ids."""
    from transformers import CLIPTokenizer

    def ids(tok_dir, text):
        tok = CLIPTokenizer.from_pretrained(str(ROOT / tok_dir))
        return np.array([tok(text, padding="max_length", max_length=77, truncation=True).input_ids], np.int32)

    neg = case.get("negative", NEGATIVE)
    if case["family"] == "sd":
        enc = [ort.run(f"{SD_BASE}/text_encoder", {"input_ids": ids(f"{SD_BASE}/tokenizer", p)})["last_hidden_state"]
               for p in [neg or "", PROMPT]]
        return dict(ehs=np.concatenate(enc))
    n1, n2 = mtx.TEXT1_CFG["num_hidden_layers"], mtx.TEXT2_CFG["num_hidden_layers"]

    def enc(p):
        o1 = ort.run(f"{SDXL_BASE}/text_encoder", {"input_ids": ids(f"{SDXL_BASE}/tokenizer", p)})
        o2 = ort.run(f"{SDXL_BASE}/text_encoder_2", {"input_ids": ids(f"{SDXL_BASE}/tokenizer_2", p)})
        return np.concatenate([o1[f"hidden_states.{n1 - 1}"], o2[f"hidden_states.{n2 - 1}"]], -1), o2["text_embeds"]

    e, pooled = enc(PROMPT)
    if neg is None:  # force_zeros_for_empty_prompt
        ne, npool = np.zeros_like(e), np.zeros_like(pooled)
    else:
        ne, npool = enc(neg)
    tid = np.array([[64.0, 64, 0, 0, 64, 64]] * 2, np.float32)
    return dict(ehs=np.concatenate([ne, e]), text_embeds=np.concatenate([npool, pooled]), time_ids=tid)


def ort_run(ort, case, draws, plan_fn, refdir: Path, record=False):
    """The pipeline's loop over the ONNX files: convention (a) runs each ControlNet at conditioning_scale 1 and
    applies the plan's multipliers to its residuals (a unit whose multipliers are all 0 is not run), then
    unet_controlnet; convention (b) feeds scale * keep as conditioning_scales to the merged UNet."""
    fam, mode = case["family"], case["mode"]
    base = SD_BASE if fam == "sd" else SDXL_BASE
    sf = json.loads((ROOT / base / "vae_decoder" / "config.json").read_text())["scaling_factor"]
    sched = make_scheduler(fam, case["sampler"])
    sched.set_timesteps(STEPS)
    restore = patch_randn(Playback(draws))
    try:
        if mode == "img2img":
            init_timestep = min(int(STEPS * STRENGTH), STEPS)
            t_start = max(STEPS - init_timestep, 0)
            timesteps = sched.timesteps[t_start * sched.order:]
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(t_start * sched.order)
            init = load_png(refdir / "init_image.png")
            image = (init.astype(np.float32) / 255.0).transpose(2, 0, 1)[None] * 2.0 - 1.0
            params = torch.from_numpy(ort.run(f"{base}/vae_encoder", {"sample": image})["latent_parameters"])
            from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

            dist = DiagonalGaussianDistribution(params)
            z = dist.mean + dist.std * torch.from_numpy(draws[0].reshape(dist.mean.shape))
            latents = sched.add_noise(sf * z, torch.from_numpy(draws[1].reshape(z.shape)), timesteps[:1])
            used = 2
        else:
            timesteps = sched.timesteps
            latents = torch.from_numpy(draws[0].reshape(1, 4, 8, 8)) * sched.init_noise_sigma
            used = 1
        pb = Playback(draws[used:])
        restore()
        restore = patch_randn(pb)
        text = ort_text(ort, case)
        conds = [control_tensor(load_png(refdir / "control" / c)) for c in case["controls"]]
        plan = plan_fn(len(timesteps))
        out = dict(step_latents=[], step_noise_pred=[], step_residuals=[], conditioning_scales=[])
        for i, t in enumerate(timesteps):
            lmi = sched.scale_model_input(torch.cat([latents] * 2), t).numpy()
            base_feed = dict(sample=lmi, encoder_hidden_states=text["ehs"])
            if fam == "sdxl":
                base_feed.update(text_embeds=text["text_embeds"], time_ids=text["time_ids"])
            if case["convention"] == "b":
                scales = []
                for mult, rows in plan[i]:
                    assert np.all(mult == mult[0]) and np.all(rows == 1), "merged models take one scale per net"
                    scales.append([mult[0]])
                sc = np.array(scales, np.float32)
                out["conditioning_scales"].append(sc)
                npred = ort.run(f"{MERGED[fam]}/unet", dict(base_feed, timestep=np.array([float(t)], np.float32),
                                                             controlnet_conds=np.stack(conds),
                                                             conditioning_scales=sc))["noise_pred"]
            else:
                total = None
                for u, (mult, rows) in enumerate(plan[i]):
                    if not mult.any():
                        continue
                    rel = NET_DIR[case["nets"][u]]
                    o = ort.run(rel, dict(base_feed, timestep=ort.timestep(rel, float(t)), controlnet_cond=conds[u],
                                          conditioning_scale=np.array(1.0, np.float32)))
                    res = [o[n] * mult[k] * rows.reshape(2, 1, 1, 1) for k, n in enumerate(mtc.RESIDUAL_NAMES)]
                    total = res if total is None else [a + b for a, b in zip(total, res)]
                if total is None:
                    shapes, mid = mts.residual_shapes(2, 8, 8)
                    total = [np.zeros(s, np.float32) for s in shapes + [mid]]
                out["step_residuals"].append(total)
                rel = UNET_A[fam]
                npred = ort.run(rel, dict(base_feed, timestep=ort.timestep(rel, float(t)),
                                          **dict(zip(mtc.RESIDUAL_NAMES, total))))["out_sample"]
            u_, c_ = torch.from_numpy(npred).chunk(2)
            g = u_ + GUIDANCE * (c_ - u_)
            kw = dict(eta=0.0) if case["sampler"] == "ddim" else {}
            latents = sched.step(g, t, latents, **kw, return_dict=False)[0]
            out["step_noise_pred"].append(g.numpy())
            out["step_latents"].append(latents.numpy())
        assert not pb.draws, f"{len(pb.draws)} draws left over"
    finally:
        restore()
    dec = ort.run(f"{base}/vae_decoder", {"latent_sample": (latents / sf).numpy()})["sample"]
    img = torch.from_numpy(dec / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()[0]
    out.update(image=img, image_u8=mr.to_uint8_image(img), latents=latents.numpy(), n_steps=len(timesteps))
    return out


# ----------------------------------------------------------------------------- comparison helpers
def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def compare(got, want):
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    p = psnr(got, want)
    return dict(max=int(d.max()), differing=int((d > 0).sum()), total=int(d.size),
                psnr_db=None if np.isinf(p) else round(p, 2))


def variants(case):
    """Deliberately wrong plans, to show what each test bar tells apart (PSNR against the reference)."""
    out = {"no controlnet": lambda n: [[(np.zeros(N_RES, np.float32), np.ones(2, np.float32))] * len(case["nets"])
                                       for _ in range(n)]}
    flip = dict(case, windows=[(0.0, 1.0)] * len(case["nets"]))
    out["windows ignored (every step active)"] = lambda n: plan_for(flip, n)
    if case.get("semantics") == "a1111":
        out["diffusers' windows instead of A1111's"] = lambda n: _diffusers_windows(case, n)
        out["modes ignored (Balanced)"] = lambda n: plan_for(dict(case, control_modes=["Balanced"] * len(case["nets"])),
                                                             n)
        if any(m == MODES[2] for m in case["control_modes"]):
            out["uncond rows kept"] = lambda n: [[(m, np.ones(2, np.float32)) for m, r in row]
                                                 for row in plan_for(case, n)]
        if any(m != "Balanced" for m in case["control_modes"]):
            out["soft scales aligned to the mid (0.825^(6-k))"] = lambda n: _aligned(case, n)
    else:
        out["A1111's windows instead of diffusers'"] = lambda n: plan_for(
            dict(case, semantics="a1111", control_modes=["Balanced"] * len(case["nets"])), n)
    if len(case["nets"]) == 2:
        out["scales swapped"] = lambda n: plan_for(dict(case, scales=case["scales"][::-1]), n)
    return out


def _same_plan(a, b):
    return all(np.array_equal(ma, mb) and np.array_equal(ra, rb)
               for ra_, rb_ in zip(a, b) for (ma, ra), (mb, rb) in zip(ra_, rb_))


def _diffusers_windows(case, n):
    """A1111's scales and row masks, switched on and off by diffusers' keep."""
    on = plan_for(dict(case, windows=[(0.0, 1.0)] * len(case["nets"])), n)  # A1111 keep is 1 on every step
    return [[(m if keep_diffusers(i, n, *case["windows"][u]) else np.zeros_like(m), r)
             for u, (m, r) in enumerate(row)] for i, row in enumerate(on)]


def _aligned(case, n):
    """The other reading of the soft scales for a model with K+1 < 13 residuals: 0.825^(K-k), mid = 1."""
    plan = plan_for(case, n)
    out = []
    for i, row in enumerate(plan):
        r2 = []
        for u, (m, r) in enumerate(row):
            if case["control_modes"][u] == "Balanced":
                r2.append((m, r))
            else:
                base = plan_for(dict(case, control_modes=["Balanced"] * len(case["nets"])), n)[i][u][0]
                r2.append((np.array([b * 0.825 ** float(N_RES - 1 - k) for k, b in enumerate(base)], np.float32), r))
        out.append(r2)
    return out


# ----------------------------------------------------------------------------- keep-mask table
def keep_table():
    windows = [(0.0, 1.0), (0.0, 0.5), (0.2, 1.0), (0.3, 0.7), (0.5, 0.5)]
    tables = []
    for n in [1, 6, 10, 16, 25]:
        tables.append(dict(
            steps_run=n,
            diffusers=[[int(keep_diffusers(i, n, s, e)) for s, e in windows] for i in range(n)],
            a1111_img2img=dict(total_sampling_steps=n + 1,
                               keep=[[int(keep_a1111(i, n + 1, s, e)) for s, e in windows] for i in range(n)]),
            a1111_txt2img=dict(total_sampling_steps=n,
                               keep=[[int(keep_a1111(i, n, s, e)) for s, e in windows] for i in range(n)]),
        ))
    return dict(
        windows=[list(w) for w in windows],
        diffusers="keep[i][u] = 1 - int(i / N < start_u or (i + 1) / N > end_u), N = steps run (img2img: after "
                  "strength); the pipelines refuse start >= end, so window (0.5, 0.5) is never accepted there "
                  "(the formula gives 0 on every step)",
        a1111="keep[i][u] = int(start_u <= s / T <= end_u), s = max(i - 1, 0); img2img: N = t_enc = "
              "int(min(strength, 0.999) * steps) steps run and T = t_enc + 1; txt2img: N = T = steps",
        example="steps 25, strength 0.65: N = int(0.65 * 25) = 16 steps run, T = 17 -> tables[3] (steps_run 16)",
        tables=tables,
    )


# ----------------------------------------------------------------------------- main
ROOT = HERE.parent


def write_case(sv, case, t, o, ort_extra, sens, refdir):
    d = case["name"]
    n = len(t["step_latents"])
    plan = plan_for(case, n)
    sv.npy(f"{d}/image_uint8.npy", t["image_u8"])
    mr.pil_from_uint8(t["image_u8"]).save(refdir / d / "image.png")
    sv.npy(f"{d}/latents.npy", t["step_latents"][-1])
    sv.npy(f"{d}/step_latents.npy", np.stack(t["step_latents"]))
    sv.npy(f"{d}/step_noise_pred.npy", np.stack(t["step_noise_pred"]))
    sv.npy(f"{d}/noise.npy", np.stack(t["draws"]).reshape(len(t["draws"]), -1))
    if case.get("semantics") == "a1111" or case.get("residuals"):
        sv.npy(f"{d}/step_unet_out.npy", np.stack(t["step_unet_out"]))
    if case.get("residuals"):
        for k in range(N_RES):
            sv.npy(f"{d}/step_residual_{k}.npy", np.stack([r[k] for r in t["residuals"]]))
    fam = case["family"]
    sched = t["sched"]
    models = dict(pipeline=MERGED[fam] if case["convention"] == "b" else (SD_BASE if fam == "sd" else SDXL_BASE))
    if case["convention"] == "a":
        models.update(unet_controlnet=UNET_A[fam], controlnets=[NET_DIR[x] for x in case["nets"]])
    total = a1111_total(case["mode"], STEPS, STRENGTH)
    meta = dict(
        pipeline=t["pipeline"] + (" with its MultiControlNetModel replaced by an own-code A1111 scaler"
                                  if case.get("semantics") == "a1111" else ""),
        convention=case["convention"], family=fam, mode=case["mode"], models=models,
        same_inputs_as=case.get("same_as"),
        prompt=PROMPT, negative_prompt=case.get("negative", NEGATIVE), seed=SEED,
        generator='torch.Generator("cpu").manual_seed(seed)', num_inference_steps=STEPS,
        strength=STRENGTH if case["mode"] == "img2img" else None, guidance_scale=GUIDANCE,
        eta=0.0 if case["sampler"] == "ddim" else None, width=64, height=64,
        scheduler_class=type(sched).__name__, scheduler_config=mr.clean_config(sched.config),
        init_image="../init_image.png" if case["mode"] == "img2img" else None,
        control_images=[f"../control/{c}" for c in case["controls"]],
        controlnet_conditioning_scale=case["scales"], control_guidance_start=[w[0] for w in case["windows"]],
        control_guidance_end=[w[1] for w in case["windows"]],
        window_semantics=case.get("semantics", "diffusers"), control_modes=case.get("control_modes"),
        a1111_total_sampling_steps=total if case.get("semantics") == "a1111" else None,
        steps_run=n, unet_timesteps=t["timesteps"], unet_calls=len(t["timesteps"]), draws=len(t["draws"]),
        time_ids=t["time_ids"][0] if t["time_ids"] else None,
        keep=[[float(m.any()) for m, _ in row] for row in plan],
        residual_multipliers=[[m.tolist() for m, _ in row] for row in plan],
        cfg_row_mask=[[r.tolist() for _, r in row] for row in plan],
        ort_vs_torch=ort_extra, sensitivity=sens or None,
    )
    if case["convention"] == "b":
        meta["conditioning_scales_per_step"] = [s.tolist() for s in o["conditioning_scales"]]
    sv.json(f"{d}/meta.json", meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=HERE)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "controlnet-ref")
    ap.add_argument("--only", nargs="*", help="case names (for a quick look; the manifest then lists only those)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    refdir = args.out
    if refdir.exists():  # everything but the hand-written README.md
        for p in refdir.iterdir():
            if p.name != "README.md":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    (refdir / "control").mkdir(parents=True)
    sv = mr.Saver(refdir)
    for name, img in [("control/edges.png", mr.make_control_image()), ("control/pose.png", make_pose_image()),
                      ("init_image.png", mr.make_init_image())]:
        mr.pil_from_uint8(img).save(refdir / name)
    sv.json("keep_masks.json", keep_table())
    sd, xl, nets = mtc.build_all()
    ort = Ort(ROOT)
    summary = {}
    done = {}
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        (refdir / case["name"]).mkdir()
        t = torch_run(case, sd, xl, nets, refdir)
        o = ort_run(ort, case, t["draws"], lambda n, c=case: plan_for(c, n), refdir)
        extra = dict(image_uint8=compare(o["image_u8"], t["image_u8"]),
                     image_float_max_abs=float(np.abs(o["image"] - t["image"]).max()),
                     latents_max_abs=float(np.abs(o["latents"] - t["step_latents"][-1]).max()),
                     step_noise_pred_max_abs=float(np.abs(np.stack(o["step_noise_pred"]) -
                                                          np.stack(t["step_noise_pred"])).max()))
        if case["convention"] == "a":
            extra["step_residuals_max_abs"] = float(max(np.abs(a - b).max() for ro, rt in zip(o["step_residuals"],
                                                                                            t["residuals"])
                                                        for a, b in zip(ro, rt)))
        if case.get("same_as") in done:
            extra["torch_vs_same_inputs_case_image_uint8"] = compare(t["image_u8"], done[case["same_as"]])
        sens = {}
        if case["convention"] == "a":
            n_run = len(t["step_latents"])
            ref_plan = plan_for(case, n_run)
            for label, fn in variants(case).items():
                if _same_plan(fn(n_run), ref_plan):
                    continue
                v = ort_run(ort, case, t["draws"], fn, refdir)
                sens[label] = compare(v["image_u8"], t["image_u8"])
        if case["name"] == "sd_img2img_2units_ddim":
            p = torch_run(case, sd, xl, nets, refdir, planned=True)
            extra["own_code_scaler_vs_diffusers_multicontrolnet"] = dict(
                image_uint8=compare(p["image_u8"], t["image_u8"]),
                latents_max_abs=float(np.abs(p["step_latents"][-1] - t["step_latents"][-1]).max()))
        done[case["name"]] = t["image_u8"]
        write_case(sv, case, t, o, extra, sens, refdir)
        summary[case["name"]] = dict(ort_vs_torch=extra, sensitivity=sens)
        print(case["name"], json.dumps(extra), json.dumps(sens), flush=True)
    fx = json.loads((args.models / "tiny-controlnet" / "manifest.json").read_text())
    sv.json("manifest.json", dict(
        versions=mtc.versions(), seed=SEED, fixture_files_sha256={k: v["sha256"] for k, v in fx["files"].items()},
        summary=summary, files=sv.index))


if __name__ == "__main__":
    main()
