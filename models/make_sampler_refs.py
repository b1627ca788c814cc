#!/usr/bin/env python3
"""Sampler and pipeline references (diffusers, torch) for the samplers anim adds to DDIM/Euler/Euler a.

Writes tests/data/sd-ref-samplers/ (never touched by make_reference.py, which rewrites tests/data/sd-ref/):

  schedulers/<name>/<scenario>/      step-by-step runs, the same format as sd-ref/schedulers (see its README):
                                     meta.json, init_latents, sample_in, model_input, prev_sample per model call;
                                     inputs schedulers/{model_outputs,step_noise,noise_init,x0}.npy (numpy
                                     default_rng(20240601 + k), k = 41..44); names dpmpp_2m, heun, unipc
  schedulers_vpred/<name>/<scenario>/ the same for all eight samplers with prediction_type "v_prediction";
                                     stochastic draws are ../sd-ref/schedulers/step_noise.npy[min(i, 9)]
  pipelines/<name>/<txt2img|img2img>/ full runs of diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline
                                     in torch with the tiny model's weights (rebuilt as make_reference.py does),
                                     torch.Generator("cpu").manual_seed(seed); every randn_tensor draw is recorded
                                     (noise.npy, stacked in draw order) and the image saved (image_uint8.npy);
                                     meta.json: prompt, negative, steps, guidance, strength, seed, timesteps,
                                     model calls, draws

Usage:  /work/venv-torch/bin/python models/make_sampler_refs.py [--fixture models/tiny-sd] [--out DIR]
"""
from __future__ import annotations

import argparse
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
import make_tiny_sd as mts  # noqa: E402

warnings.filterwarnings("ignore")

PROMPT = "a red fox sitting in the snow, highly detailed"
NEGATIVE = "blurry, low quality"
SEED = 31337
STRENGTH = 0.6


def cfg_of(fx):
    return {k: v for k, v in fx.scheduler_config.items() if not k.startswith("_")}


def samplers(cfg):
    """A1111 name -> (factory, steps, step kwargs, guidance). Same configuration anim uses for each name."""
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, HeunDiscreteScheduler, LCMScheduler, UniPCMultistepScheduler)

    return {
        "ddim": (lambda: DDIMScheduler.from_config(cfg), 10, 7.5),
        "euler": (lambda: EulerDiscreteScheduler.from_config(cfg), 10, 7.5),
        "euler_ancestral": (lambda: EulerAncestralDiscreteScheduler.from_config(cfg), 10, 7.5),
        "dpmpp_2m": (lambda: DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2), 10, 7.5),
        "dpmpp_2m_karras": (lambda: DPMSolverMultistepScheduler.from_config(
            cfg, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True), 10, 7.5),
        "lcm": (lambda: LCMScheduler.from_config(cfg), 4, 1.0),
        "heun": (lambda: HeunDiscreteScheduler.from_config(cfg), 10, 7.5),
        "unipc": (lambda: UniPCMultistepScheduler.from_config(cfg), 10, 7.5),
    }


# ----------------------------------------------------------------------------- step by step
def ref_steps(fx, sv):
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as mod_ea
    import diffusers.schedulers.scheduling_lcm as mod_lcm

    nmax = 20
    shape = (1, 4, 8, 8)
    outs = sv.npy("schedulers/model_outputs.npy", mr.rng_normal((nmax, *shape), 41))
    noise_init = sv.npy("schedulers/noise_init.npy", mr.rng_normal(shape, 43))
    x0 = sv.npy("schedulers/x0.npy", mr.rng_normal(shape, 44) * 0.8)
    # the stochastic samplers' draw at call i: sd-ref's schedulers/step_noise.npy[min(i, 9)]
    step_noise = np.load(HERE.parent / "tests" / "data" / "sd-ref" / "schedulers" / "step_noise.npy")
    runs = [("schedulers", name, cfg_of(fx)) for name in ["dpmpp_2m", "heun", "unipc", "dpmpp_2m_karras"]]
    vcfg = dict(cfg_of(fx), prediction_type="v_prediction")
    runs += [("schedulers_vpred", name, vcfg) for name in samplers(vcfg)]
    for root, name, cfg in runs:
        make, n, _ = samplers(cfg)[name]
        for scenario in ["txt2img", "img2img"]:
            s = make()
            s.set_timesteps(n)
            if scenario == "txt2img":
                timesteps, t_start = s.timesteps, 0
            elif name == "lcm":
                s = make()
                s.set_timesteps(n, strength=STRENGTH)
                timesteps, t_start = s.timesteps, None
            else:
                init_timestep = min(int(n * STRENGTH), n)
                t_start = max(n - init_timestep, 0)
                timesteps = s.timesteps[t_start * s.order:]
                if hasattr(s, "set_begin_index"):
                    s.set_begin_index(t_start * s.order)
            all_t = s.timesteps.clone()
            if scenario == "txt2img":
                latents = torch.from_numpy(noise_init) * s.init_noise_sigma
            else:
                latents = s.add_noise(torch.from_numpy(x0), torch.from_numpy(noise_init), timesteps[:1])
            init = latents.clone()
            rec = dict(sample_in=[], model_input=[], prev_sample=[])
            for i, t in enumerate(timesteps):
                q = mr.NoiseQueue([step_noise[min(i, 9)]])
                mod_ea.randn_tensor = q
                mod_lcm.randn_tensor = q
                rec["sample_in"].append(latents.numpy().copy())
                rec["model_input"].append(s.scale_model_input(latents, t).numpy().copy())
                latents = s.step(torch.from_numpy(outs[i]), t, latents).prev_sample
                rec["prev_sample"].append(latents.numpy().copy())
            from diffusers.utils.torch_utils import randn_tensor

            mod_ea.randn_tensor = randn_tensor
            mod_lcm.randn_tensor = randn_tensor
            d = f"{root}/{name}/{scenario}"
            sv.npy(f"{d}/init_latents.npy", init)
            for k, v in rec.items():
                sv.npy(f"{d}/{k}.npy", np.stack(v))
            sv.json(f"{d}/meta.json", dict(
                scheduler_class=type(s).__name__, config=mr.clean_config(s.config), num_inference_steps=n,
                scenario=scenario, strength=STRENGTH if scenario == "img2img" else None, t_start=t_start,
                order=s.order, init_noise_sigma=float(s.init_noise_sigma), all_timesteps=all_t.tolist(),
                timesteps_run=[float(t) for t in timesteps],
                sigmas=s.sigmas.tolist() if getattr(s, "sigmas", None) is not None else None,
                model_output_index_per_step=list(range(len(timesteps)))))


# ----------------------------------------------------------------------------- full pipelines
class Recorder:
    """Wraps diffusers' randn_tensor: the real seeded draw, recorded in order."""

    def __init__(self, real):
        self.real = real
        self.draws = []

    def __call__(self, *a, **kw):
        x = self.real(*a, **kw)
        self.draws.append(x.detach().cpu().numpy().copy())
        return x


def ref_pipelines(fx, sv, torch_models):
    import importlib

    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor

    mods = [importlib.import_module(m) for m in [
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img",
        "diffusers.models.autoencoders.vae",
        "diffusers.schedulers.scheduling_euler_ancestral_discrete",
        "diffusers.schedulers.scheduling_lcm",
        "diffusers.schedulers.scheduling_ddim",
    ]]
    init_u8 = mr.make_init_image()
    sv.npy("pipelines/init_image_uint8.npy", init_u8)
    summary = {}
    for name, (make, n, guidance) in samplers(cfg_of(fx)).items():
        for mode in ["txt2img", "img2img"]:
            sched = make()
            common = dict(vae=torch_models["vae"], text_encoder=torch_models["text_encoder"], tokenizer=fx.tokenizer,
                          unet=torch_models["unet"], scheduler=sched, safety_checker=None, feature_extractor=None,
                          requires_safety_checker=False)
            cls = StableDiffusionPipeline if mode == "txt2img" else StableDiffusionImg2ImgPipeline
            pipe = cls(**common)
            pipe.set_progress_bar_config(disable=True)
            rec = Recorder(randn_tensor)
            for m in mods:
                m.randn_tensor = rec
            calls = []
            unet_forward = torch_models["unet"].forward

            def counting(*a, **kw):
                calls.append(float(a[1]) if len(a) > 1 else float(kw["timestep"]))
                return unet_forward(*a, **kw)

            torch_models["unet"].forward = counting
            args = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=n, guidance_scale=guidance,
                        generator=torch.Generator("cpu").manual_seed(SEED), output_type="np")
            if mode == "txt2img":
                args.update(height=64, width=64)
            else:
                args.update(image=mr.pil_from_uint8(init_u8), strength=STRENGTH)
            try:
                with torch.no_grad():
                    img = pipe(**args).images[0]
            finally:
                for m in mods:
                    m.randn_tensor = randn_tensor
                torch_models["unet"].forward = unet_forward
            d = f"pipelines/{name}/{mode}"
            u8 = mr.to_uint8_image(img)
            sv.npy(f"{d}/image_uint8.npy", u8)
            mr.pil_from_uint8(u8).save(sv.root / d / "image.png")
            sv.npy(f"{d}/noise.npy", np.stack(rec.draws).reshape(len(rec.draws), -1))
            meta = dict(pipeline=cls.__name__, scheduler_class=type(sched).__name__,
                        scheduler_config=mr.clean_config(sched.config), prompt=PROMPT, negative_prompt=NEGATIVE,
                        num_inference_steps=n, guidance_scale=guidance,
                        strength=STRENGTH if mode == "img2img" else None, seed=SEED, width=64, height=64,
                        unet_timesteps=calls, unet_calls=len(calls), draws=len(rec.draws))
            sv.json(f"{d}/meta.json", meta)
            summary[f"{name}/{mode}"] = dict(unet_calls=len(calls), draws=len(rec.draws), mean=float(img.mean()))
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", type=Path, default=HERE / "tiny-sd")
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "sd-ref-samplers")
    ap.add_argument("--steps-only", action="store_true", help="only the step-by-step references (no pipelines)")
    args = ap.parse_args()
    for sub in (["schedulers", "schedulers_vpred"] if args.steps_only else ["."]):
        if (args.out / sub).exists():
            shutil.rmtree(args.out / sub)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    fx = mr.Fixture.__new__(mr.Fixture)
    from transformers import CLIPTokenizer

    fx.tokenizer = CLIPTokenizer.from_pretrained(str(args.fixture / "tokenizer"))
    fx.scheduler_config = json.loads((args.fixture / "scheduler" / "scheduler_config.json").read_text())
    manifest = json.loads((args.fixture / "manifest.json").read_text())
    for key, cfg in [("text", mts.TEXT_CFG), ("unet", mts.UNET_CFG), ("vae", mts.VAE_CFG),
                     ("controlnet", mts.CONTROLNET_CFG)]:
        cfg.update({k: tuple(v) if isinstance(v, list) else v for k, v in manifest["configs"][key].items()})
    torch_models = mts.build_models(manifest["seed"])
    sv = mr.Saver(args.out)
    ref_steps(fx, sv)
    if args.steps_only:
        return
    summary = ref_pipelines(fx, sv, torch_models)
    sv.json("manifest.json", dict(versions=mts.versions(), seed=SEED, summary=summary, files=sv.index))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
