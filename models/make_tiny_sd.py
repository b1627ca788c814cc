#!/usr/bin/env python3
"""Build a TINY random-weight Stable Diffusion 1.x pipeline and export it to ONNX.

Layout written (the "optimum 1.x" ONNX layout for SD, plus a few documented extras):

  OUT/model_index.json                 diffusers StableDiffusionPipeline index (what optimum-cli writes)
  OUT/text_encoder/{model.onnx,config.json}
  OUT/unet/{model.onnx,config.json}
  OUT/vae_encoder/{model.onnx,config.json}    output latent_parameters (mean|logvar), optimum >= 1.23
  OUT/vae_decoder/{model.onnx,config.json}
  OUT/tokenizer/{vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json[,tokenizer.json]}
  OUT/scheduler/scheduler_config.json  SD 1.5's PNDM config
  extras (not part of any standard exporter's output, documented in the report):
  OUT/vae_encoder_legacy_sample/       output latent_sample = latent_dist.sample() (RandomNormalLike in graph),
                                       as optimum <= 1.22 and diffusers' convert script export it
  OUT/controlnet/                      ControlNetModel: sample,timestep,encoder_hidden_states,controlnet_cond,
                                       conditioning_scale -> down_block_{i}_additional_residual, mid_block_additional_residual
  OUT/unet_controlnet/                 the SAME unet weights with residual inputs (Olive naming)
  OUT/unet_timestep_scalar_float/      the SAME unet weights, timestep float32 shape [] (optimum >= 1.24 / optimum-onnx)
  OUT/manifest.json                    versions, seed, sizes, sha256, IO signature of every ONNX file

Everything is configured in code; nothing is downloaded (the CLIP BPE merges come from the
open_clip_torch wheel). Same versions + same seed => identical weights.

Usage:  python make_tiny_sd.py [--out DIR] [--tokenizer-json] [--text-hidden 32]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "tiny-sd"  # anim: the committed fixture folder
SEED = 1234
OPSET = 14  # optimum's DEFAULT_ONNX_OPSET for every SD part

# ----------------------------------------------------------------------------- configs
# CLIP text encoder: real CLIP vocab (49408) so that real tokenizer ids can be fed.
# bos/eos/pad ids of SD 1.x's text_encoder/config.json (eos_token_id=2 => legacy pooler: argmax(input_ids)).
TEXT_CFG = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    projection_dim=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    attention_dropout=0.0,
    dropout=0.0,
    initializer_range=0.02,
    initializer_factor=1.0,
    bos_token_id=0,
    eos_token_id=2,
    pad_token_id=1,
)

# UNet: same block pattern as SD 1.x (cross-attn down blocks first, plain last; mirrored up), 2 levels.
UNET_CFG = dict(
    sample_size=8,  # 8x8 latents = 64x64 px
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False,
    block_out_channels=(16, 32),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=8,
    norm_eps=1e-5,
    cross_attention_dim=32,
    attention_head_dim=4,  # SD 1.x quirk: this is the number of heads (8 in SD 1.x)
    use_linear_projection=False,
)

# VAE: 4 levels => downscale 8 like the real one; latent 4 ch; SD 1.x scaling factor.
VAE_CFG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 32, 32),
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=4,
    sample_size=64,
    scaling_factor=0.18215,
)

CONTROLNET_CFG = dict(
    in_channels=4,
    conditioning_channels=3,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=UNET_CFG["down_block_types"],
    only_cross_attention=False,
    block_out_channels=UNET_CFG["block_out_channels"],
    layers_per_block=UNET_CFG["layers_per_block"],
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=UNET_CFG["norm_num_groups"],
    norm_eps=1e-5,
    cross_attention_dim=UNET_CFG["cross_attention_dim"],
    attention_head_dim=UNET_CFG["attention_head_dim"],
    use_linear_projection=False,
    controlnet_conditioning_channel_order="rgb",
    conditioning_embedding_out_channels=(8, 16, 32, 32),  # 3 stride-2 convs: 64 px cond -> 8x8
)

# SD 1.5's scheduler/scheduler_config.json (PNDM), written verbatim. It has no "timestep_spacing" and no
# "prediction_type" key, so every scheduler built from it with from_config() gets its own class defaults
# (DDIM/PNDM/LCM: "leading", Euler/EulerA/DPM-Solver: "linspace"; epsilon prediction).
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

TOKENIZER_CONFIG_EXTRA = dict(
    model_max_length=77,
    do_lower_case=True,
    errors="replace",
    add_prefix_space=False,
)


# ----------------------------------------------------------------------------- tokenizer
def bytes_to_unicode():
    """GPT-2/CLIP byte -> printable unicode char table (same order as openai/CLIP simple_tokenizer)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def open_clip_bpe_path() -> Path:
    import open_clip

    p = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not p.is_file():
        raise FileNotFoundError(p)
    return p


def clip_vocab_and_merges(bpe_path: Path):
    """Exactly what openai/CLIP's SimpleTokenizer builds: 256 bytes, 256 bytes+</w>, 48894 merges, 2 specials."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merges:
        vocab.append("".join(m))
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    assert len(vocab) == 49408, len(vocab)
    encoder = {tok: i for i, tok in enumerate(vocab)}
    assert len(encoder) == 49408
    return encoder, merges


def write_tokenizer(tok_dir: Path, with_tokenizer_json: bool = False):
    from transformers import CLIPTokenizer

    tok_dir.mkdir(parents=True, exist_ok=True)
    encoder, merges = clip_vocab_and_merges(open_clip_bpe_path())
    tok = CLIPTokenizer(
        vocab=dict(encoder),
        merges=[tuple(m) for m in merges],
        unk_token="<|endoftext|>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        **TOKENIZER_CONFIG_EXTRA,
    )
    assert len(tok) == 49408, len(tok)
    ids = tok("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407], ids
    tok.save_pretrained(str(tok_dir))
    # The exact vocab.json / merges.txt derived from open_clip (save_pretrained may re-serialise them).
    with open(tok_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(tok_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    # transformers 5 no longer writes special_tokens_map.json; SD 1.5's tokenizer/ folder has one.
    (tok_dir / "special_tokens_map.json").write_text(json.dumps(dict(
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>"), indent=2) + "\n")
    if not with_tokenizer_json and (tok_dir / "tokenizer.json").exists():
        (tok_dir / "tokenizer.json").unlink()
    # sanity: reload from the written folder
    tok2 = CLIPTokenizer.from_pretrained(str(tok_dir))
    assert tok2("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    return tok2


# ----------------------------------------------------------------------------- models
def _randomize_(module: torch.nn.Module, std: float, gen: torch.Generator):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def build_models(seed: int = SEED):
    """Build all torch models deterministically. Returns dict of modules (eval mode, fp32, CPU)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CFG, attn_implementation="eager")).eval()
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(**UNET_CFG).eval()
    torch.manual_seed(seed + 2)
    vae = AutoencoderKL(**VAE_CFG).eval()
    torch.manual_seed(seed + 3)
    controlnet = ControlNetModel(**CONTROLNET_CFG).eval()
    # ControlNet's "zero convolutions" are zero-initialised (so a fresh ControlNet is a no-op);
    # give them random weights so that the residuals are non-zero and testable.
    gen = torch.Generator().manual_seed(seed + 4)
    for m in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block, controlnet.controlnet_cond_embedding.conv_out]:
        _randomize_(m, 0.05, gen)
    return dict(text_encoder=text_encoder, unet=unet, vae=vae, controlnet=controlnet)


# wrappers with plain tensor in/out (what optimum's model patchers boil down to)
class TextEncoderWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids=input_ids)
        return o.last_hidden_state, o.pooler_output


class UNetWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.m(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class UNetControlNetWrap(torch.nn.Module):
    """UNet taking the ControlNet residuals as separate inputs (Olive's ControlNetUNet2DConditionModel naming)."""

    def __init__(self, m, n_down):
        super().__init__()
        self.m = m
        self.n_down = n_down

    def forward(self, sample, timestep, encoder_hidden_states, *residuals):
        down = tuple(residuals[: self.n_down])
        mid = residuals[self.n_down]
        return self.m(
            sample,
            timestep,
            encoder_hidden_states,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


class ControlNetWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale):
        down, mid = self.m(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            controlnet_cond=controlnet_cond,
            conditioning_scale=conditioning_scale,
            return_dict=False,
        )
        return (*down, mid)


class VaeEncoderParamsWrap(torch.nn.Module):
    """optimum >= 1.23: {"latent_parameters": vae.encode(x)["latent_dist"].parameters}  (B, 2*C, H/8, W/8)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample):
        return self.m.encode(sample).latent_dist.parameters


class VaeEncoderSampleWrap(torch.nn.Module):
    """optimum <= 1.22 and diffusers' convert script: latent_dist.sample() (noise drawn INSIDE the graph)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample):
        return self.m.encode(sample).latent_dist.sample()


class VaeDecoderWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, latent_sample):
        return self.m.decode(latent_sample, return_dict=False)[0]


def n_down_residuals(cfg=UNET_CFG):
    nb = len(cfg["block_out_channels"])
    return 1 + nb * cfg["layers_per_block"] + (nb - 1)


def residual_shapes(batch, h, w, cfg=UNET_CFG):
    """Shapes of ControlNet down residuals (in order) + mid residual, for latent size h x w."""
    ch = cfg["block_out_channels"]
    shapes = [(batch, ch[0], h, w)]
    for i, c in enumerate(ch):
        for _ in range(cfg["layers_per_block"]):
            shapes.append((batch, c, h, w))
        if i < len(ch) - 1:
            h, w = h // 2, w // 2
            shapes.append((batch, c, h, w))
    mid = (batch, ch[-1], h, w)
    return shapes, mid


# ----------------------------------------------------------------------------- export
def onnx_export(module, args, path: Path, input_names, output_names, dynamic_axes):
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # TorchScript exporter, what optimum 1.x / diffusers scripts used
        )
    import onnx

    m = onnx.load(str(path))
    _strip_wrapper_prefix(m)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))  # single self-contained file (no external data)


def _strip_wrapper_prefix(m):
    """The wrappers hold the real model as `self.m`; rename 'm.conv_in.weight' -> 'conv_in.weight' and
    '/m/conv_in/Conv' -> '/conv_in/Conv' so names look like a direct export of the diffusers/transformers
    module (as optimum does it)."""

    def ren(n: str) -> str:
        if n.startswith("m."):
            return n[2:]
        if n.startswith("/m/"):
            return n[2:]
        return n

    g = m.graph
    for i in g.initializer:
        i.name = ren(i.name)
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.name = ren(v.name)
    for node in g.node:
        node.name = ren(node.name)
        node.doc_string = ""
        for k in range(len(node.input)):
            node.input[k] = ren(node.input[k])
        for k in range(len(node.output)):
            node.output[k] = ren(node.output[k])


def io_signature(path: Path):
    import onnx

    m = onnx.load(str(path))
    init = {i.name for i in m.graph.initializer}

    def t(v):
        tt = v.type.tensor_type
        dims = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
        return dict(name=v.name, dtype=onnx.TensorProto.DataType.Name(tt.elem_type).lower(), shape=dims)

    ops = sorted({n.op_type for n in m.graph.node})
    return dict(
        inputs=[t(v) for v in m.graph.input if v.name not in init],
        outputs=[t(v) for v in m.graph.output],
        opset=[dict(domain=o.domain or "ai.onnx", version=o.version) for o in m.opset_import],
        ops=ops,
        n_nodes=len(m.graph.node),
        n_params=int(sum(np.prod(i.dims) for i in m.graph.initializer)),
    )


def save_config(obj, folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(obj, "save_config"):  # diffusers
        obj.save_config(str(folder))
    else:  # transformers
        obj.config.save_pretrained(str(folder))


def export_all(models, out: Path):
    te, unet, vae, cn = models["text_encoder"], models["unet"], models["vae"], models["controlnet"]
    H = W = UNET_CFG["sample_size"]
    g = torch.Generator().manual_seed(0)
    B = 2

    # text encoder -- optimum 1.x CLIPTextOnnxConfig: input_ids int32 (dummy inputs cast to int32)
    ids = torch.randint(0, TEXT_CFG["vocab_size"], (B, 77), generator=g, dtype=torch.int64).to(torch.int32)
    onnx_export(
        TextEncoderWrap(te),
        (ids,),
        out / "text_encoder" / "model.onnx",
        ["input_ids"],
        ["last_hidden_state", "pooler_output"],
        {
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
            "pooler_output": {0: "batch_size"},
        },
    )
    save_config(te, out / "text_encoder")

    # unet -- optimum 1.x UNetOnnxConfig: timestep int64 of shape [steps]
    sample = torch.randn(B, 4, H, W, generator=g)
    ts = torch.tensor([500, 500], dtype=torch.int64)
    ehs = torch.randn(B, 77, TEXT_CFG["hidden_size"], generator=g)
    unet_axes = {
        "sample": {0: "batch_size", 2: "height", 3: "width"},
        "timestep": {0: "steps"},
        "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
        "out_sample": {0: "batch_size", 2: "height", 3: "width"},
    }
    onnx_export(UNetWrap(unet), (sample, ts, ehs), out / "unet" / "model.onnx",
                ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], unet_axes)
    save_config(unet, out / "unet")

    # unet variant with the timestep convention of optimum >= 1.24 / optimum-onnx: float32 scalar (shape [])
    onnx_export(UNetWrap(unet), (sample, torch.tensor(500.0), ehs), out / "unet_timestep_scalar_float" / "model.onnx",
                ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
                {k: v for k, v in unet_axes.items() if k != "timestep"})
    save_config(unet, out / "unet_timestep_scalar_float")

    # vae encoder -- optimum >= 1.23: latent_parameters
    img = torch.randn(1, 3, 8 * H, 8 * W, generator=g)
    onnx_export(
        VaeEncoderParamsWrap(vae),
        (img,),
        out / "vae_encoder" / "model.onnx",
        ["sample"],
        ["latent_parameters"],
        {"sample": {0: "batch_size", 2: "height", 3: "width"},
         "latent_parameters": {0: "batch_size", 2: "height_latent", 3: "width_latent"}},
    )
    save_config(vae, out / "vae_encoder")

    # vae encoder, legacy: latent_sample (sampled in graph)
    onnx_export(
        VaeEncoderSampleWrap(vae),
        (img,),
        out / "vae_encoder_legacy_sample" / "model.onnx",
        ["sample"],
        ["latent_sample"],
        {"sample": {0: "batch_size", 2: "height", 3: "width"},
         "latent_sample": {0: "batch_size", 2: "height_latent", 3: "width_latent"}},
    )
    save_config(vae, out / "vae_encoder_legacy_sample")

    # vae decoder
    lat = torch.randn(1, 4, H, W, generator=g)
    onnx_export(
        VaeDecoderWrap(vae),
        (lat,),
        out / "vae_decoder" / "model.onnx",
        ["latent_sample"],
        ["sample"],
        {"latent_sample": {0: "batch_size", 2: "height_latent", 3: "width_latent"},
         "sample": {0: "batch_size", 2: "height", 3: "width"}},
    )
    save_config(vae, out / "vae_decoder")

    # controlnet
    nd = n_down_residuals()
    res_names = [f"down_block_{i}_additional_residual" for i in range(nd)] + ["mid_block_additional_residual"]
    cond = torch.rand(B, 3, 8 * H, 8 * W, generator=g)
    scale = torch.tensor(1.0, dtype=torch.float32)
    cn_axes = {
        "sample": {0: "batch_size", 2: "height", 3: "width"},
        "timestep": {0: "steps"},
        "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
        "controlnet_cond": {0: "batch_size", 2: "cond_height", 3: "cond_width"},
    }
    shapes, mid_shape = residual_shapes(B, H, W)
    for i, n in enumerate(res_names):
        f = H // (shapes[i][2] if i < nd else mid_shape[2])
        cn_axes[n] = {0: "batch_size", 2: f"height/{f}" if f > 1 else "height", 3: f"width/{f}" if f > 1 else "width"}
    onnx_export(
        ControlNetWrap(cn),
        (sample, ts, ehs, cond, scale),
        out / "controlnet" / "model.onnx",
        ["sample", "timestep", "encoder_hidden_states", "controlnet_cond", "conditioning_scale"],
        res_names,
        cn_axes,
    )
    save_config(cn, out / "controlnet")

    # unet with residual inputs (same weights as unet/)
    residuals = tuple(torch.randn(*s, generator=g) for s in shapes) + (torch.randn(*mid_shape, generator=g),)
    ucn_axes = {k: v for k, v in unet_axes.items()}
    for n in res_names:
        ucn_axes[n] = cn_axes[n]
    onnx_export(
        UNetControlNetWrap(unet, nd),
        (sample, ts, ehs, *residuals),
        out / "unet_controlnet" / "model.onnx",
        ["sample", "timestep", "encoder_hidden_states", *res_names],
        ["out_sample"],
        ucn_axes,
    )
    save_config(unet, out / "unet_controlnet")


def write_pipeline_files(out: Path, tok_json: bool):
    tok = write_tokenizer(out / "tokenizer", with_tokenizer_json=tok_json)
    (out / "scheduler").mkdir(parents=True, exist_ok=True)
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2) + "\n")
    import diffusers
    import transformers

    # What `optimum-cli export onnx` writes: the source StableDiffusionPipeline's model_index.json.
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n")
    return tok


# ----------------------------------------------------------------------------- verification
def verify(models, out: Path):
    """ORT vs torch on fresh inputs, incl. shapes different from the export dummies."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3

    def sess(name):
        return ort.InferenceSession(str(out / name / "model.onnx"), so, providers=["CPUExecutionProvider"])

    g = torch.Generator().manual_seed(99)
    report = {}
    te, unet, vae, cn = models["text_encoder"], models["unet"], models["vae"], models["controlnet"]
    with torch.no_grad():
        # text encoder: batch 3, real-ish ids (bos ... eos pad)
        ids = torch.full((3, 77), 49407, dtype=torch.int64)
        ids[:, 0] = 49406
        for b, n in enumerate([5, 20, 75]):
            ids[b, 1 : 1 + n] = torch.randint(0, 49406, (n,), generator=g)
        ref = te(input_ids=ids)
        o = sess("text_encoder").run(None, {"input_ids": ids.numpy().astype(np.int32)})
        report["text_encoder"] = dict(
            last_hidden_state=float(np.abs(o[0] - ref.last_hidden_state.numpy()).max()),
            pooler_output=float(np.abs(o[1] - ref.pooler_output.numpy()).max()),
        )
        # unet: batch 2, 16x8 latents, timestep shape [1]
        s = torch.randn(2, 4, 16, 8, generator=g)
        e = torch.randn(2, 77, TEXT_CFG["hidden_size"], generator=g)
        t = torch.tensor([981], dtype=torch.int64)
        r = unet(s, t, e).sample.numpy()
        o = sess("unet").run(None, {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
        report["unet"] = float(np.abs(o - r).max())
        report["unet_output_std"] = float(r.std())
        o5 = sess("unet_timestep_scalar_float").run(None, {"sample": s.numpy(), "timestep": np.array(981.0, np.float32),
                                                          "encoder_hidden_states": e.numpy()})[0]
        report["unet_timestep_scalar_float_vs_unet"] = float(np.abs(o5 - o).max())
        # vae
        x = torch.rand(1, 3, 128, 64, generator=g) * 2 - 1
        d = vae.encode(x).latent_dist
        o = sess("vae_encoder").run(None, {"sample": x.numpy()})[0]
        report["vae_encoder"] = float(np.abs(o - d.parameters.numpy()).max())
        s_leg = sess("vae_encoder_legacy_sample")
        o = s_leg.run(None, {"sample": x.numpy()})[0]
        o2 = s_leg.run(None, {"sample": x.numpy()})[0]
        z_ = (o - d.mean.numpy()) / d.std.numpy()  # should be ~N(0,1): the in-graph RandomNormalLike draw
        report["vae_encoder_legacy_sample_shape"] = list(o.shape)
        report["vae_encoder_legacy_sample_two_runs_differ"] = bool(np.abs(o - o2).max() > 0)
        report["vae_encoder_legacy_sample_noise_std_about_1"] = bool(0.7 < z_.std() < 1.3)
        z = torch.randn(1, 4, 16, 8, generator=g)
        r = vae.decode(z).sample.numpy()
        o = sess("vae_decoder").run(None, {"latent_sample": z.numpy()})[0]
        report["vae_decoder"] = float(np.abs(o - r).max())
        # controlnet + unet_controlnet
        c = torch.rand(2, 3, 128, 64, generator=g)
        sc = torch.tensor(0.7)
        down, mid = cn(s, t, encoder_hidden_states=e, controlnet_cond=c, conditioning_scale=sc, return_dict=False)
        o = sess("controlnet").run(None, {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy(),
                                          "controlnet_cond": c.numpy(), "conditioning_scale": np.array(0.7, np.float32)})
        report["controlnet"] = float(max(np.abs(a - b.numpy()).max() for a, b in zip(o, list(down) + [mid])))
        report["controlnet_residual_std"] = [float(b.std()) for b in list(down) + [mid]]
        r = unet(s, t, e, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample.numpy()
        nd = n_down_residuals()
        feed = {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()}
        for i in range(nd):
            feed[f"down_block_{i}_additional_residual"] = o[i]
        feed["mid_block_additional_residual"] = o[nd]
        o2 = sess("unet_controlnet").run(None, feed)[0]
        report["unet_controlnet"] = float(np.abs(o2 - r).max())
        # zero residuals == plain unet
        for k in list(feed):
            if k.endswith("additional_residual"):
                feed[k] = np.zeros_like(feed[k])
        o3 = sess("unet_controlnet").run(None, feed)[0]
        o4 = sess("unet").run(None, {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy()})[0]
        report["unet_controlnet_zero_residuals_vs_unet"] = float(np.abs(o3 - o4).max())
    return report


def file_manifest(out: Path):
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files[str(p.relative_to(out))] = dict(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    return files


def versions():
    import diffusers
    import onnx
    import onnxruntime
    import open_clip
    import tokenizers
    import transformers

    return dict(
        python=sys.version.split()[0],
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        tokenizers=tokenizers.__version__,
        onnx=onnx.__version__,
        onnxruntime=onnxruntime.__version__,
        numpy=np.__version__,
        open_clip_torch=open_clip.__version__,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tokenizer-json", action="store_true",
                    help="also write tokenizer/tokenizer.json (3.6 MB; SD 1.5 repos ship only vocab.json+merges.txt)")
    ap.add_argument("--text-hidden", type=int, default=TEXT_CFG["hidden_size"],
                    help="CLIP hidden size (= UNet/ControlNet cross_attention_dim). 32 => text_encoder 6.4 MB, 16 => 3.2 MB")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    if args.text_hidden != TEXT_CFG["hidden_size"]:
        h = args.text_hidden
        TEXT_CFG.update(hidden_size=h, intermediate_size=2 * h, projection_dim=h)
        UNET_CFG["cross_attention_dim"] = h
        CONTROLNET_CFG["cross_attention_dim"] = h
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    write_pipeline_files(out, tok_json=args.tokenizer_json)
    models = build_models(args.seed)
    export_all(models, out)
    rep = verify(models, out)
    onnx_files = sorted(p for p in out.rglob("model.onnx"))
    manifest = dict(
        seed=args.seed,
        opset=OPSET,
        versions=versions(),
        configs=dict(text=TEXT_CFG, unet=UNET_CFG, vae=VAE_CFG, controlnet=CONTROLNET_CFG),
        verify_max_abs_diff_ort_vs_torch=rep,
        onnx={str(p.parent.relative_to(out)): io_signature(p) for p in onnx_files},
        files=file_manifest(out),
    )
    manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    print(json.dumps(rep, indent=1))
    for k, v in manifest["files"].items():
        print(f"{v['bytes']:>10}  {k}")
    print(f"total {manifest['total_bytes']} bytes")


if __name__ == "__main__":
    main()
