#!/usr/bin/env python3
"""References for the tiny SDXL fixture (models/tiny-sdxl), made by diffusers' PyTorch SDXL pipelines on the same
weights (rebuilt from the seed by make_tiny_sdxl.build_models; the ONNX files are checked against them here).

Writes tests/data/sdxl-ref/:

  tokenizer/tokens.json          per prompt (make_reference.TOKEN_PROMPTS, 35 of them): ids_77 of tokenizer/ and
                                 tokenizer_2/ (padding="max_length", truncation=True), as transformers gives them
  text/prompts.json              the text-encoder prompts (make_reference.TE_PROMPTS)
  text/prompt_embeds.npy         (n, 77, 80) StableDiffusionXLPipeline.encode_prompt: both encoders'
                                 hidden_states[-2] concatenated on the feature axis
  text/pooled.npy                (n, 40) text_encoder_2's text_embeds
  text/prompt_embeds_clip_skip1.npy  the same with diffusers' clip_skip=1 (hidden_states[-3])
  pipelines/<sampler>/<mode>/    full runs of StableDiffusionXLPipeline (txt2img) / StableDiffusionXLImg2ImgPipeline
                                 (img2img, strength 0.6) with torch.Generator("cpu").manual_seed(SEED):
                                 image_uint8.npy (H, W, 3), noise.npy (every randn_tensor draw in order, flattened),
                                 meta.json (prompt, negative prompt or null = diffusers' None, size, steps, guidance,
                                 strength, seed, UNet timesteps, time ids); txt2img runs have no negative prompt
                                 (force_zeros_for_empty_prompt: zero embeddings), img2img runs have one; two extra
                                 runs are not square (time ids (H, W, 0, 0, H, W))
  refiner/img2img/                the same for StableDiffusionXLImg2ImgPipeline as the refiner (text_encoder_2 and
                                 unet_refiner/, requires_aesthetics_score, Euler; the init image is
                                 pipelines/init_image_uint8.npy)
  pipelines/init_image_uint8.npy, init_image_h64_w96_uint8.npy   the img2img inputs (make_reference.make_init_image)
  manifest.json                  versions, ORT-vs-torch differences, file index

Usage:  /work/venv-torch/bin/python models/make_sdxl_refs.py [--fixture models/tiny-sdxl] [--out DIR]
"""
from __future__ import annotations

import argparse
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
import make_sampler_refs as msr  # noqa: E402
import make_tiny_sd as mts  # noqa: E402
import make_tiny_sdxl as mtx  # noqa: E402

warnings.filterwarnings("ignore")

PROMPT = "a red fox sitting in the snow, highly detailed"
NEGATIVE = "blurry, low quality"
SEED = 4242
STRENGTH = 0.6
# (sampler, mode, height, width, negative prompt)
EXTRA_RUNS = [("euler", "txt2img", 64, 128, NEGATIVE), ("dpmpp_2m_karras", "img2img", 64, 96, None)]


def tokens(fx_dir: Path, sv):
    from transformers import CLIPTokenizer

    t1 = CLIPTokenizer.from_pretrained(str(fx_dir / "tokenizer"))
    t2 = CLIPTokenizer.from_pretrained(str(fx_dir / "tokenizer_2"))
    out = []
    for p in mr.TOKEN_PROMPTS:
        out.append(dict(prompt=p, ids_77=t1(p, padding="max_length", max_length=77, truncation=True).input_ids,
                        ids_77_2=t2(p, padding="max_length", max_length=77, truncation=True).input_ids,
                        tokens_2=t2.convert_ids_to_tokens(t2(p).input_ids)))
    sv.json("tokenizer/tokens.json", out)
    return dict(n_prompts=len(out), pad_1=t1.pad_token_id, pad_2=t2.pad_token_id)


def text(fx_dir: Path, sv, models):
    """encode_prompt in torch, and the same assembled from the ONNX encoders' outputs (ORT) for the manifest."""
    pipe = mtx.torch_pipeline(models, fx_dir)
    embeds, pooled, skip = [], [], []
    with torch.no_grad():
        for p in mr.TE_PROMPTS:
            e, _, po, _ = pipe.encode_prompt(p, device="cpu", do_classifier_free_guidance=False)
            e1, _, _, _ = pipe.encode_prompt(p, device="cpu", do_classifier_free_guidance=False, clip_skip=1)
            embeds.append(e[0].numpy())
            pooled.append(po[0].numpy())
            skip.append(e1[0].numpy())
    sv.json("text/prompts.json", mr.TE_PROMPTS)
    embeds = sv.npy("text/prompt_embeds.npy", np.stack(embeds))
    pooled = sv.npy("text/pooled.npy", np.stack(pooled))
    sv.npy("text/prompt_embeds_clip_skip1.npy", np.stack(skip))
    # the ONNX path
    s1, s2 = (mr.ort_session(fx_dir / n / "model.onnx") for n in ["text_encoder", "text_encoder_2"])
    ids1 = np.array([pipe.tokenizer(p, padding="max_length", max_length=77, truncation=True).input_ids
                     for p in mr.TE_PROMPTS], np.int32)
    ids2 = np.array([pipe.tokenizer_2(p, padding="max_length", max_length=77, truncation=True).input_ids
                     for p in mr.TE_PROMPTS], np.int32)
    n1, n2 = TEXT_LAYERS = (mtx.TEXT1_CFG["num_hidden_layers"], mtx.TEXT2_CFG["num_hidden_layers"])
    o1 = dict(zip([o.name for o in s1.get_outputs()], s1.run(None, {"input_ids": ids1})))
    o2 = dict(zip([o.name for o in s2.get_outputs()], s2.run(None, {"input_ids": ids2})))
    ort_embeds = np.concatenate([o1[f"hidden_states.{n1 - 1}"], o2[f"hidden_states.{n2 - 1}"]], -1)
    return dict(text_layers=list(TEXT_LAYERS),
                ort_vs_torch_prompt_embeds_max_rel=float(np.abs(ort_embeds - embeds).max() / np.abs(embeds).max()),
                ort_vs_torch_pooled_max_rel=float(np.abs(o2["text_embeds"] - pooled).max() / np.abs(pooled).max()),
                prompt_embeds_std=float(embeds.std()), pooled_std=float(pooled.std()))


def pipelines(fx_dir: Path, sv, models):
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from diffusers.utils.torch_utils import randn_tensor

    mods = [importlib.import_module(m) for m in [
        "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl",
        "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img",
        "diffusers.models.autoencoders.vae",
        "diffusers.schedulers.scheduling_euler_ancestral_discrete",
        "diffusers.schedulers.scheduling_lcm",
        "diffusers.schedulers.scheduling_ddim",
    ]]
    cfg = {k: v for k, v in mtx.SCHEDULER_CONFIG.items() if not k.startswith("_")}
    inits = {(64, 64): mr.make_init_image(64, 64), (64, 96): mr.make_init_image(64, 96)}
    sv.npy("pipelines/init_image_uint8.npy", inits[(64, 64)])
    sv.npy("pipelines/init_image_h64_w96_uint8.npy", inits[(64, 96)])
    runs = [(name, mode, 64, 64, None if mode == "txt2img" else NEGATIVE)
            for name in msr.samplers(cfg) for mode in ["txt2img", "img2img"]] + EXTRA_RUNS
    summary = {}
    unet = models["unet"]
    for name, mode, h, w, negative in runs:
        make, n, guidance = msr.samplers(cfg)[name]
        sched = make()
        txt = mtx.torch_pipeline(models, fx_dir, sched)
        pipe = txt if mode == "txt2img" else StableDiffusionXLImg2ImgPipeline(
            **txt.components, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
            add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        rec = msr.Recorder(randn_tensor)
        for m in mods:
            m.randn_tensor = rec
        calls, time_ids = [], []
        forward = unet.forward

        def counting(*a, **kw):
            calls.append(float(a[1]) if len(a) > 1 else float(kw["timestep"]))
            time_ids.append(kw["added_cond_kwargs"]["time_ids"].tolist())
            return forward(*a, **kw)

        unet.forward = counting
        args = dict(prompt=PROMPT, negative_prompt=negative, num_inference_steps=n, guidance_scale=guidance,
                    generator=torch.Generator("cpu").manual_seed(SEED), output_type="np")
        if mode == "txt2img":
            args.update(height=h, width=w)
        else:
            args.update(image=mr.pil_from_uint8(inits[(h, w)]), strength=STRENGTH)
        try:
            with torch.no_grad():
                img = pipe(**args).images[0]
        finally:
            for m in mods:
                m.randn_tensor = randn_tensor
            unet.forward = forward
        d = f"pipelines/{name}/{mode}" + ("" if (h, w) == (64, 64) else f"_h{h}_w{w}")
        u8 = mr.to_uint8_image(img)
        assert u8.shape == (h, w, 3), u8.shape
        sv.npy(f"{d}/image_uint8.npy", u8)
        sv.npy(f"{d}/noise.npy", np.stack(rec.draws).reshape(len(rec.draws), -1))
        sv.json(f"{d}/meta.json", dict(
            pipeline=type(pipe).__name__, scheduler_class=type(sched).__name__,
            scheduler_config=mr.clean_config(sched.config), prompt=PROMPT, negative_prompt=negative,
            num_inference_steps=n, guidance_scale=guidance, strength=STRENGTH if mode == "img2img" else None,
            seed=SEED, width=w, height=h, unet_timesteps=calls, unet_calls=len(calls), draws=len(rec.draws),
            time_ids=time_ids[0]))
        summary[d] = dict(unet_calls=len(calls), draws=len(rec.draws), mean=float(img.mean()), std=float(img.std()))
    return summary


def refiner(fx_dir: Path, sv, models):
    """StableDiffusionXLImg2ImgPipeline as the refiner: text_encoder_2 alone, requires_aesthetics_score (time ids
    (H, W, 0, 0, 6.0) and (H, W, 0, 0, 2.5) for the negative prompt), Euler, strength 0.6."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline
    from diffusers.utils.torch_utils import randn_tensor
    from transformers import CLIPTokenizer

    mods = [importlib.import_module(m) for m in [
        "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img",
        "diffusers.models.autoencoders.vae"]]
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=models["vae"], text_encoder=None, text_encoder_2=models["text_encoder_2"], tokenizer=None,
        tokenizer_2=CLIPTokenizer.from_pretrained(str(fx_dir / "tokenizer_2")), unet=models["unet_refiner"],
        scheduler=EulerDiscreteScheduler.from_config(mtx.SCHEDULER_CONFIG), requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    rec = msr.Recorder(randn_tensor)
    for m in mods:
        m.randn_tensor = rec
    unet = models["unet_refiner"]
    forward, time_ids = unet.forward, []

    def spy(*a, **kw):
        time_ids.append(kw["added_cond_kwargs"]["time_ids"].tolist())
        return forward(*a, **kw)

    unet.forward = spy
    init = mr.make_init_image(64, 64)
    try:
        with torch.no_grad():
            img = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=mr.pil_from_uint8(init), strength=STRENGTH,
                       num_inference_steps=10, guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(SEED),
                       output_type="np").images[0]
    finally:
        for m in mods:
            m.randn_tensor = randn_tensor
        unet.forward = forward
    d = "refiner/img2img"
    sv.npy(f"{d}/image_uint8.npy", mr.to_uint8_image(img))
    sv.npy(f"{d}/noise.npy", np.stack(rec.draws).reshape(len(rec.draws), -1))
    sv.json(f"{d}/meta.json", dict(
        pipeline="StableDiffusionXLImg2ImgPipeline (text_encoder_2 only, requires_aesthetics_score)",
        prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, guidance_scale=7.5, strength=STRENGTH,
        seed=SEED, width=64, height=64, unet_calls=len(time_ids), draws=len(rec.draws), time_ids=time_ids[0]))
    return dict(unet_calls=len(time_ids), time_ids=time_ids[0], mean=float(img.mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", type=Path, default=HERE / "tiny-sdxl")
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "sdxl-ref")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    manifest = json.loads((args.fixture / "manifest.json").read_text())
    models = mtx.build_models(manifest["seed"])
    sv = mr.Saver(args.out)
    summary = dict(tokens=tokens(args.fixture, sv), text=text(args.fixture, sv, models))
    summary["pipelines"] = pipelines(args.fixture, sv, models)
    summary["refiner"] = refiner(args.fixture, sv, models)
    sv.json("manifest.json", dict(versions=mts.versions(), seed=SEED, summary=summary, files=sv.index))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
