#!/usr/bin/env python3
"""Tiny random-weight ControlNets for the tests, SD 1.x and SDXL, in both ONNX conventions anim reads.

Convention (a), a separate ControlNet returning residuals plus a UNet taking them (the Olive / OnnxStack names):

  models/tiny-controlnet/sd-1/{model.onnx,config.json}    SD ControlNet (the one make_tiny_sd.py exports as
                                                          controlnet/, byte for byte): sample, timestep int64
                                                          [steps], encoder_hidden_states, controlnet_cond,
                                                          conditioning_scale (float32 []) ->
                                                          down_block_{0..5}_additional_residual,
                                                          mid_block_additional_residual
  models/tiny-controlnet/sd-2/                            a second SD ControlNet (other seed), same IO except
                                                          timestep float32 [steps] (as Olive exports have it)
  models/tiny-controlnet/sdxl-1/                          SDXL ControlNet for models/tiny-sdxl: sample, timestep
                                                          int64 [steps], encoder_hidden_states, text_embeds,
                                                          time_ids, controlnet_cond, conditioning_scale -> the
                                                          same 7 residual names
  models/tiny-sd/unet_controlnet/                         tiny-sd's UNet weights taking the residuals (the
                                                          file make_tiny_sd.py exports, byte for byte)
  models/tiny-sdxl/unet_controlnet/                       tiny-sdxl's UNet weights taking the residuals (after
                                                          text_embeds, time_ids)

Convention (b), diffusers' merged UNet (scripts/convert_stable_diffusion_controlnet_to_onnx.py's
UNet2DConditionControlNetModel / UNet2DConditionXLControlNetModel; own wrappers with the same IO):

  models/tiny-sd-merged/unet/{model.onnx,weights.pb,config.json}   tiny-sd's UNet with sd-1 and sd-2 inside:
                                 sample, timestep float32 [1], encoder_hidden_states, controlnet_conds
                                 [2, 2B, 3, 8H, 8W], conditioning_scales [2, 1] -> noise_pred
  models/tiny-sdxl-merged/unet/  tiny-sdxl's UNet with sdxl-1 inside: sample, timestep float32 [1],
                                 encoder_hidden_states, controlnet_conds [1, 2B, 3, 8H, 8W], conditioning_scales
                                 [1, 1], text_embeds, time_ids -> noise_pred
  the other parts of both merged folders are relative symlinks to ../tiny-sd/... and ../tiny-sdxl/...

  models/tiny-controlnet/manifest.json   versions, seeds, configs, IO signatures, ORT-vs-torch checks and the
                                         sha256 of every file written here

Every ControlNet is diffusers' ControlNetModel with the UNet's encoder layout, a conditioning embedding
(8, 16, 32, 32) (a 64 px control image maps to 8x8 latents), and its zero-initialised convolutions (and the
embedding's conv_out) redrawn from N(0, 0.05^2), so that the residuals are not zero. Same versions + same seeds =>
identical bytes (the script checks sd-1 and tiny-sd/unet_controlnet against tiny-sd/manifest.json).

How to make the venv (torch from PyPI runs on the CPU; these are the pinned versions):

  python3 -m venv VENV
  VENV/bin/pip install torch==2.15.0 diffusers==0.42.1 transformers==5.24.0 onnx==1.23.2 onnxruntime==1.32.0 \
      numpy pillow
  VENV/bin/python models/make_tiny_controlnet.py      # 1-2 min on 2 cores; rewrites only the folders above

Usage:  python models/make_tiny_controlnet.py [--models DIR]   (DIR defaults to this script's folder)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tiny_sd as mts  # noqa: E402
import make_tiny_sdxl as mtx  # noqa: E402

warnings.filterwarnings("ignore")

# sd-1 is make_tiny_sd.build_models' ControlNet: torch.manual_seed(1234 + 3), zero convs from Generator(1234 + 4).
SD_SEEDS = {"sd-1": mts.SEED + 3, "sd-2": 2345}
SDXL_SEEDS = {"sdxl-1": 5432}
ZERO_CONV_STD = 0.05
COND_EMBED = (8, 16, 32, 32)

RESIDUAL_NAMES = [f"down_block_{i}_additional_residual" for i in range(mts.n_down_residuals())] + [
    "mid_block_additional_residual"]


# ----------------------------------------------------------------------------- models
def _randomize_zero_convs(cn, seed: int):
    gen = torch.Generator().manual_seed(seed)
    for m in list(cn.controlnet_down_blocks) + [cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
        mts._randomize_(m, ZERO_CONV_STD, gen)
    return cn


def build_sd_controlnet(name: str):
    """SD ControlNet `name` ("sd-1", "sd-2"): torch.manual_seed(seed), ControlNetModel(**CONTROLNET_CFG), zero
    convolutions from Generator(seed + 1)."""
    from diffusers import ControlNetModel

    seed = SD_SEEDS[name]
    torch.manual_seed(seed)
    cn = ControlNetModel(**mts.CONTROLNET_CFG).eval()
    return _randomize_zero_convs(cn, seed + 1)


def build_sdxl_controlnet(name: str, unet):
    """SDXL ControlNet `name` for the tiny SDXL `unet`: ControlNetModel.from_unet's configuration (text_time
    addition embedding, same blocks), random weights from torch.manual_seed(seed), zero convolutions from
    Generator(seed + 1)."""
    from diffusers import ControlNetModel

    seed = SDXL_SEEDS[name]
    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=COND_EMBED,
                                   load_weights_from_unet=False).eval()
    return _randomize_zero_convs(cn, seed + 1)


def build_all():
    """Every torch model the fixtures and references use: SD (tiny-sd's text encoder, UNet, VAE), sd-1, sd-2, SDXL
    (tiny-sdxl's), sdxl-1."""
    sd = mts.build_models(mts.SEED)
    xl = mtx.build_models(mtx.SEED)
    nets = {n: build_sd_controlnet(n) for n in SD_SEEDS}
    # sd-1 must be the ControlNet make_tiny_sd.py builds
    for (k, a), (_, b) in zip(nets["sd-1"].state_dict().items(), sd["controlnet"].state_dict().items()):
        assert torch.equal(a, b), k
    nets.update({n: build_sdxl_controlnet(n, xl["unet"]) for n in SDXL_SEEDS})
    return sd, xl, nets


# ----------------------------------------------------------------------------- wrappers (plain tensors in/out)
class XLControlNetWrap(torch.nn.Module):
    """SDXL ControlNet, convention (a): the residuals of ControlNetModel.forward as separate outputs."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids, controlnet_cond,
                conditioning_scale):
        down, mid = self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                           controlnet_cond=controlnet_cond, conditioning_scale=conditioning_scale,
                           added_cond_kwargs=dict(text_embeds=text_embeds, time_ids=time_ids), return_dict=False)
        return (*down, mid)


class XLUNetResidualWrap(torch.nn.Module):
    """SDXL UNet taking the residuals as inputs after text_embeds and time_ids."""

    def __init__(self, m, n_down):
        super().__init__()
        self.m = m
        self.n_down = n_down

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids, *residuals):
        return self.m(sample, timestep, encoder_hidden_states,
                      added_cond_kwargs=dict(text_embeds=text_embeds, time_ids=time_ids),
                      down_block_additional_residuals=tuple(residuals[: self.n_down]),
                      mid_block_additional_residual=residuals[self.n_down], return_dict=False)[0]


def _sum_residuals(nets, sample, timestep, ehs, conds, scales, added=None):
    down, mid = None, None
    for k, net in enumerate(nets):
        kw = dict(added_cond_kwargs=added) if added is not None else {}
        d, m = net(sample, timestep, encoder_hidden_states=ehs, controlnet_cond=conds[k],
                   conditioning_scale=scales[k], return_dict=False, **kw)
        if down is None:
            down, mid = list(d), m
        else:
            down = [a + b for a, b in zip(down, d)]
            mid = mid + m
    return down, mid


class MergedUNet(torch.nn.Module):
    """diffusers' merged convention (b), SD: every ControlNet scaled by its row of conditioning_scales, the
    residuals summed, then the UNet."""

    def __init__(self, unet, nets):
        super().__init__()
        self.unet = unet
        self.controlnets = torch.nn.ModuleList(nets)

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_conds, conditioning_scales):
        down, mid = _sum_residuals(self.controlnets, sample, timestep, encoder_hidden_states, controlnet_conds,
                                   conditioning_scales)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid,
                         return_dict=False)[0]


class MergedXLUNet(torch.nn.Module):
    """diffusers' merged convention (b), SDXL: inputs in the order of UNet2DConditionXLControlNetModel."""

    def __init__(self, unet, nets):
        super().__init__()
        self.unet = unet
        self.controlnets = torch.nn.ModuleList(nets)

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_conds, conditioning_scales, text_embeds,
                time_ids):
        added = dict(text_embeds=text_embeds, time_ids=time_ids)
        down, mid = _sum_residuals(self.controlnets, sample, timestep, encoder_hidden_states, controlnet_conds,
                                   conditioning_scales, added)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, added_cond_kwargs=added,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid,
                         return_dict=False)[0]


# ----------------------------------------------------------------------------- export
def residual_axes(h):
    """Dynamic axes of the residual tensors (names as make_tiny_sd.py gives them)."""
    shapes, mid = mts.residual_shapes(2, h, h)
    axes = {}
    for i, n in enumerate(RESIDUAL_NAMES):
        f = h // (shapes[i][2] if i < len(shapes) else mid[2])
        axes[n] = {0: "batch_size", 2: f"height/{f}" if f > 1 else "height", 3: f"width/{f}" if f > 1 else "width"}
    return axes


def save_external(path: Path):
    """Re-save `path` with its weights in `weights.pb` beside it, as the diffusers script saves the merged UNet."""
    import onnx

    m = onnx.load(str(path))
    path.unlink()
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.pb",
                    convert_attribute=False)
    os.chmod(path.parent / "weights.pb", 0o644)  # onnx creates it 0600


def export_sd_parts(sd, nets, models: Path, tmp: Path):
    """tiny-sd/unet_controlnet and tiny-controlnet/sd-1 as make_tiny_sd.py exports them; sd-2."""
    mts.export_all(sd, tmp)
    want = json.loads((models / "tiny-sd" / "manifest.json").read_text())["files"]
    for src, dst in [("unet_controlnet", models / "tiny-sd" / "unet_controlnet"),
                     ("controlnet", models / "tiny-controlnet" / "sd-1")]:
        for f in ["model.onnx", "config.json"]:
            got = hashlib.sha256((tmp / src / f).read_bytes()).hexdigest()
            assert got == want[f"{src}/{f}"]["sha256"], f"{src}/{f} differs from tiny-sd/manifest.json"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(tmp / src, dst)

    H = mts.UNET_CFG["sample_size"]
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, H, H, generator=g)
    ehs = torch.randn(2, 77, mts.TEXT_CFG["hidden_size"], generator=g)
    cond = torch.rand(2, 3, 8 * H, 8 * H, generator=g)
    axes = {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
            "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
            "controlnet_cond": {0: "batch_size", 2: "cond_height", 3: "cond_width"}, **residual_axes(H)}
    out = models / "tiny-controlnet" / "sd-2"
    mts.onnx_export(mts.ControlNetWrap(nets["sd-2"]),
                    (sample, torch.tensor([500.0, 500.0]), ehs, cond, torch.tensor(1.0)), out / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "controlnet_cond", "conditioning_scale"],
                    RESIDUAL_NAMES, axes)
    mts.save_config(nets["sd-2"], out)

    # merged: sd-1 + sd-2 inside tiny-sd's UNet
    out = models / "tiny-sd-merged" / "unet"
    n = 2
    mts.onnx_export(MergedUNet(sd["unet"], [nets["sd-1"], nets["sd-2"]]),
                    (sample, torch.tensor([1.0]), ehs, torch.rand(n, 2, 3, 8 * H, 8 * H, generator=g),
                     torch.rand(n, 1, generator=g)), out / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "controlnet_conds", "conditioning_scales"],
                    ["noise_pred"],
                    {"sample": {0: "2B", 2: "H", 3: "W"}, "encoder_hidden_states": {0: "2B"},
                     "controlnet_conds": {1: "2B", 3: "8H", 4: "8W"}})
    save_external(out / "model.onnx")
    mts.save_config(sd["unet"], out)


def export_sdxl_parts(xl, nets, models: Path):
    H = mtx.UNET_CFG["sample_size"]
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, H, H, generator=g)
    ts = torch.tensor([500, 500], dtype=torch.int64)
    ehs = torch.randn(2, 77, mtx.UNET_CFG["cross_attention_dim"], generator=g)
    te = torch.randn(2, mtx.TEXT2_CFG["projection_dim"], generator=g)
    tid = torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)
    cond = torch.rand(2, 3, 8 * H, 8 * H, generator=g)
    base_axes = {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                 "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                 "text_embeds": {0: "batch_size"}, "time_ids": {0: "batch_size"}}
    cn = nets["sdxl-1"]
    out = models / "tiny-controlnet" / "sdxl-1"
    mts.onnx_export(XLControlNetWrap(cn), (sample, ts, ehs, te, tid, cond, torch.tensor(1.0)), out / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids", "controlnet_cond",
                     "conditioning_scale"], RESIDUAL_NAMES,
                    {**base_axes, "controlnet_cond": {0: "batch_size", 2: "cond_height", 3: "cond_width"},
                     **residual_axes(H)})
    mts.save_config(cn, out)

    with torch.no_grad():
        down, mid = cn(sample, ts, encoder_hidden_states=ehs, controlnet_cond=cond, return_dict=False,
                       added_cond_kwargs=dict(text_embeds=te, time_ids=tid))
    res = tuple(torch.randn(r.shape, generator=g) for r in list(down) + [mid])
    out = models / "tiny-sdxl" / "unet_controlnet"
    mts.onnx_export(XLUNetResidualWrap(xl["unet"], len(down)), (sample, ts, ehs, te, tid, *res), out / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids", *RESIDUAL_NAMES],
                    ["out_sample"],
                    {**base_axes, **residual_axes(H), "out_sample": {0: "batch_size", 2: "height", 3: "width"}})
    mts.save_config(xl["unet"], out)

    out = models / "tiny-sdxl-merged" / "unet"
    mts.onnx_export(MergedXLUNet(xl["unet"], [cn]),
                    (sample, torch.tensor([1.0]), ehs, torch.rand(1, 2, 3, 8 * H, 8 * H, generator=g),
                     torch.rand(1, 1, generator=g), te, tid), out / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "controlnet_conds", "conditioning_scales",
                     "text_embeds", "time_ids"], ["noise_pred"],
                    {"sample": {0: "2B", 2: "H", 3: "W"}, "encoder_hidden_states": {0: "2B"},
                     "controlnet_conds": {1: "2B", 3: "8H", 4: "8W"}, "text_embeds": {0: "2B"},
                     "time_ids": {0: "2B"}})
    save_external(out / "model.onnx")
    mts.save_config(xl["unet"], out)


MERGED_LINKS = {
    "tiny-sd-merged": ("tiny-sd", ["model_index.json", "scheduler", "text_encoder", "tokenizer", "vae_decoder",
                                   "vae_encoder"]),
    "tiny-sdxl-merged": ("tiny-sdxl", ["model_index.json", "scheduler", "text_encoder", "text_encoder_2",
                                       "tokenizer", "tokenizer_2", "vae_decoder", "vae_encoder"]),
}


def link_merged(models: Path):
    for folder, (base, parts) in MERGED_LINKS.items():
        for p in parts:
            link = models / folder / p
            if link.is_symlink() or link.exists():
                link.unlink() if link.is_symlink() or link.is_file() else shutil.rmtree(link)
            link.symlink_to(Path("..") / base / p)


# ----------------------------------------------------------------------------- checks
def verify(sd, xl, nets, models: Path):
    """ORT vs torch on inputs other than the export dummies (batch 3 or 4, 16x8 latents, timestep [1])."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3

    def sess(rel):
        return ort.InferenceSession(str(models / rel / "model.onnx"), so, providers=["CPUExecutionProvider"])

    def mx(a, b):
        return float(np.abs(np.asarray(a) - np.asarray(b)).max())

    g = torch.Generator().manual_seed(99)
    rep = {}
    with torch.no_grad():
        s = torch.randn(4, 4, 16, 8, generator=g)
        c = torch.rand(4, 3, 128, 64, generator=g)
        t = torch.tensor([981], dtype=torch.int64)
        # SD
        e = torch.randn(4, 77, mts.TEXT_CFG["hidden_size"], generator=g)
        feeds, outs = {}, {}
        for name, tdt in [("sd-1", np.int64), ("sd-2", np.float32)]:
            d, m = nets[name](s, t, encoder_hidden_states=e, controlnet_cond=c, conditioning_scale=0.7,
                              return_dict=False)
            o = sess(f"tiny-controlnet/{name}").run(None, {
                "sample": s.numpy(), "timestep": t.numpy().astype(tdt), "encoder_hidden_states": e.numpy(),
                "controlnet_cond": c.numpy(), "conditioning_scale": np.array(0.7, np.float32)})
            rep[name] = mx(np.concatenate([x.ravel() for x in o]),
                           np.concatenate([x.numpy().ravel() for x in list(d) + [m]]))
            rep[f"{name}_residual_std"] = [float(x.std()) for x in o]
            outs[name] = o
        res = [a + b for a, b in zip(outs["sd-1"], outs["sd-2"])]
        plain = {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()}
        u = sess("tiny-sd/unet_controlnet").run(None, {**plain, **dict(zip(RESIDUAL_NAMES, res))})[0]
        r = sd["unet"](s, t, e, down_block_additional_residuals=[torch.from_numpy(x) for x in res[:-1]],
                       mid_block_additional_residual=torch.from_numpy(res[-1])).sample
        rep["tiny-sd/unet_controlnet"] = mx(u, r)
        z = sess("tiny-sd/unet_controlnet").run(None, {**plain, **{k: np.zeros_like(v) for k, v in
                                                                  zip(RESIDUAL_NAMES, res)}})[0]
        rep["tiny-sd/unet_controlnet_zero_residuals_vs_unet"] = mx(z, sess("tiny-sd/unet").run(None, plain)[0])
        conds = np.stack([c.numpy(), np.flip(c.numpy(), 3).copy()])
        scales = np.array([[0.7], [0.4]], np.float32)
        feed = {"sample": s.numpy(), "timestep": np.array([981.0], np.float32), "encoder_hidden_states": e.numpy(),
                "controlnet_conds": conds, "conditioning_scales": scales}
        mo = sess("tiny-sd-merged/unet").run(None, feed)[0]
        mr_ = MergedUNet(sd["unet"], [nets["sd-1"], nets["sd-2"]])(
            s, torch.tensor([981.0]), e, torch.from_numpy(conds), torch.from_numpy(scales))
        rep["tiny-sd-merged"] = mx(mo, mr_)
        # merged == convention (a) with the same scales
        sep = None
        for k, name in enumerate(["sd-1", "sd-2"]):
            o = sess(f"tiny-controlnet/{name}").run(None, {
                "sample": s.numpy(), "timestep": np.array([981]).astype(np.int64 if k == 0 else np.float32),
                "encoder_hidden_states": e.numpy(), "controlnet_cond": conds[k],
                "conditioning_scale": np.array(scales[k, 0], np.float32)})
            sep = o if sep is None else [a + b for a, b in zip(sep, o)]
        a = sess("tiny-sd/unet_controlnet").run(None, {**plain, **dict(zip(RESIDUAL_NAMES, sep))})[0]
        rep["tiny-sd-merged_vs_convention_a"] = mx(mo, a)
        z = sess("tiny-sd-merged/unet").run(None, {**feed, "conditioning_scales": np.zeros_like(scales)})[0]
        rep["tiny-sd-merged_scales_0_vs_unet"] = mx(z, sess("tiny-sd/unet").run(None, plain)[0])

        # SDXL
        e = torch.randn(4, 77, mtx.UNET_CFG["cross_attention_dim"], generator=g)
        te = torch.randn(4, mtx.TEXT2_CFG["projection_dim"], generator=g)
        tid = torch.tensor([[128.0, 64, 0, 0, 128, 64]] * 4)
        added = dict(text_embeds=te, time_ids=tid)
        cn = nets["sdxl-1"]
        d, m = cn(s, t, encoder_hidden_states=e, controlnet_cond=c, conditioning_scale=0.7, return_dict=False,
                  added_cond_kwargs=added)
        xplain = {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy(),
                  "text_embeds": te.numpy(), "time_ids": tid.numpy()}
        o = sess("tiny-controlnet/sdxl-1").run(None, {**xplain, "controlnet_cond": c.numpy(),
                                                      "conditioning_scale": np.array(0.7, np.float32)})
        rep["sdxl-1"] = mx(np.concatenate([x.ravel() for x in o]),
                           np.concatenate([x.numpy().ravel() for x in list(d) + [m]]))
        rep["sdxl-1_residual_std"] = [float(x.std()) for x in o]
        d2, m2 = cn(s, t, encoder_hidden_states=e, controlnet_cond=c, conditioning_scale=0.7, return_dict=False,
                    added_cond_kwargs=dict(text_embeds=te, time_ids=tid * 0.5))
        rep["sdxl-1_time_ids_effect"] = float((m2 - m).abs().max())
        u = sess("tiny-sdxl/unet_controlnet").run(None, {**xplain, **dict(zip(RESIDUAL_NAMES, o))})[0]
        r = xl["unet"](s, t, e, added_cond_kwargs=added,
                       down_block_additional_residuals=[torch.from_numpy(x) for x in o[:-1]],
                       mid_block_additional_residual=torch.from_numpy(o[-1])).sample
        rep["tiny-sdxl/unet_controlnet"] = mx(u, r)
        z = sess("tiny-sdxl/unet_controlnet").run(None, {**xplain, **{k: np.zeros_like(v) for k, v in
                                                                     zip(RESIDUAL_NAMES, o)}})[0]
        rep["tiny-sdxl/unet_controlnet_zero_residuals_vs_unet"] = mx(z, sess("tiny-sdxl/unet").run(None, xplain)[0])
        feed = {**xplain, "timestep": np.array([981.0], np.float32), "controlnet_conds": c.numpy()[None],
                "conditioning_scales": np.array([[0.7]], np.float32)}
        mo = sess("tiny-sdxl-merged/unet").run(None, feed)[0]
        rep["tiny-sdxl-merged"] = mx(mo, MergedXLUNet(xl["unet"], [cn])(
            s, torch.tensor([981.0]), e, c[None], torch.tensor([[0.7]]), te, tid))
        rep["tiny-sdxl-merged_vs_convention_a"] = mx(mo, u)
        z = sess("tiny-sdxl-merged/unet").run(None, {**feed, "conditioning_scales": np.zeros((1, 1), np.float32)})[0]
        rep["tiny-sdxl-merged_scales_0_vs_unet"] = mx(z, sess("tiny-sdxl/unet").run(None, xplain)[0])
    return rep


OUTPUTS = ["tiny-controlnet/sd-1", "tiny-controlnet/sd-2", "tiny-controlnet/sdxl-1", "tiny-sd/unet_controlnet",
           "tiny-sdxl/unet_controlnet", "tiny-sd-merged/unet", "tiny-sdxl-merged/unet"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=HERE, help="the folder holding tiny-sd/ and tiny-sdxl/")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    models: Path = args.models
    for rel in OUTPUTS:
        if (models / rel).exists():
            shutil.rmtree(models / rel)
    sd, xl, nets = build_all()
    with tempfile.TemporaryDirectory() as tmp:
        export_sd_parts(sd, nets, models, Path(tmp))
    export_sdxl_parts(xl, nets, models)
    link_merged(models)
    rep = verify(sd, xl, nets, models)
    files = {}
    for rel in OUTPUTS:
        for p in sorted((models / rel).iterdir()):
            files[f"{rel}/{p.name}"] = dict(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    manifest = dict(
        versions=versions(),
        seeds=dict(SD_SEEDS, **SDXL_SEEDS, zero_conv_std=ZERO_CONV_STD),
        configs={n: {k: v for k, v in dict(nets[n].config).items() if not k.startswith("_")} for n in nets},
        links={f: dict(base=b, parts=p) for f, (b, p) in MERGED_LINKS.items()},
        verify_max_abs_diff_ort_vs_torch=rep,
        onnx={rel: mts.io_signature(models / rel / "model.onnx") for rel in OUTPUTS},
        files=files,
        total_bytes=sum(f["bytes"] for f in files.values()),
    )
    (models / "tiny-controlnet" / "manifest.json").write_text(
        json.dumps(manifest, indent=1, default=_jsonable) + "\n")
    print(json.dumps(rep, indent=1))
    for k, v in files.items():
        print(f"{v['bytes']:>10}  {k}")
    print(f"total {manifest['total_bytes']} bytes")


def versions():
    """The versions that decide the bytes written (make_tiny_sd.versions() without open_clip, unused here)."""
    import diffusers
    import onnx
    import onnxruntime
    import transformers

    return dict(python=sys.version.split()[0], torch=torch.__version__, diffusers=diffusers.__version__,
                transformers=transformers.__version__, onnx=onnx.__version__, onnxruntime=onnxruntime.__version__,
                numpy=np.__version__)


def _jsonable(o):
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


if __name__ == "__main__":
    main()
