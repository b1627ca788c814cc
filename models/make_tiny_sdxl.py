#!/usr/bin/env python3
"""Build a TINY random-weight SDXL pipeline and export it to ONNX in optimum's SDXL layout.

Layout written (what `optimum-cli export onnx` writes for an SDXL checkpoint, optimum 1.23 generation
like models/tiny-sd: int32 input_ids, int64 timestep [N], VAE encoder latent_parameters):

  OUT/model_index.json                   diffusers StableDiffusionXLPipeline index (force_zeros_for_empty_prompt)
  OUT/text_encoder/{model.onnx,config.json}    CLIPTextModel: input_ids -> last_hidden_state, pooler_output,
                                               hidden_states.0..N
  OUT/text_encoder_2/{model.onnx,config.json}  CLIPTextModelWithProjection: input_ids -> text_embeds,
                                               last_hidden_state, hidden_states.0..N
  OUT/unet/{model.onnx,config.json}      sample, timestep, encoder_hidden_states, text_embeds, time_ids -> out_sample
  OUT/vae_encoder/, OUT/vae_decoder/     as models/tiny-sd (scaling_factor 0.13025, SDXL's)
  OUT/tokenizer/, OUT/tokenizer_2/       CLIP BPE (vocab.json + merges.txt); tokenizer_2 pads with "!" as SDXL base
  OUT/scheduler/scheduler_config.json    SDXL base's EulerDiscreteScheduler config ("leading" spacing)
  OUT/unet_refiner/                      extra (no exporter writes it): a refiner-style UNet, text_encoder_2's width,
                                         time_ids [batch, 5] (sizes, crop, aesthetic score); tests assemble a
                                         refiner folder from it, text_encoder_2/, tokenizer_2/ and the VAE
  OUT/manifest.json                      versions, seed, configs, ORT-vs-torch checks, IO signatures, sha256

The vocabulary is CLIP's real BPE cut to its first MERGES merges (plus the 512 byte tokens and the two specials,
4096 entries), so both text encoders stay small; the tokenizer is still CLIP's algorithm, only coarser. With the
whole vocabulary the folder would be ~20 MB.

The torch modules are rebuilt bit-identically from the seed by `build_models` (make_sdxl_refs.py does so), and
`--torch-out DIR` also saves them as a diffusers pipeline outside the repo.

Usage:  /work/venv-torch/bin/python models/make_tiny_sdxl.py [--out models/tiny-sdxl] [--torch-out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tiny_sd as mts  # noqa: E402

DEFAULT_OUT = HERE / "tiny-sdxl"
SEED = 4321
MERGES = 4096 - 512 - 2  # BPE merges kept => vocabulary of 4096
VOCAB = 512 + MERGES + 2

# CLIP ViT-L-like (quick_gelu) and OpenCLIP bigG-like (gelu, projection) encoders, tiny, with different widths so
# that the feature-axis concatenation is visible. bos/eos/pad ids as SDXL's configs (eos 2 => pooled at argmax(ids)).
TEXT1_CFG = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=3,
    num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
    attention_dropout=0.0, dropout=0.0, initializer_range=0.02, initializer_factor=1.0,
    bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
TEXT2_CFG = dict(TEXT1_CFG, hidden_size=48, intermediate_size=96, projection_dim=40, hidden_act="gelu")

TIME_EMBED = 8
# SDXL's UNet pattern (plain down block first, cross-attention deeper, linear projections, text_time embedding)
UNET_CFG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 32),
    layers_per_block=2,
    transformer_layers_per_block=(1, 1),
    attention_head_dim=(2, 4),
    norm_num_groups=8,
    cross_attention_dim=TEXT1_CFG["hidden_size"] + TEXT2_CFG["hidden_size"],
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=TIME_EMBED,
    projection_class_embeddings_input_dim=6 * TIME_EMBED + TEXT2_CFG["projection_dim"],
    act_fn="silu",
)

# refiner-style UNet (extra folder unet_refiner/): conditioned on text_encoder_2 alone, 5 time ids (original size,
# crop, aesthetic score) as stabilityai/stable-diffusion-xl-refiner-1.0; narrower to stay small
REFINER_UNET_CFG = dict(
    UNET_CFG,
    block_out_channels=(8, 16),
    norm_num_groups=4,
    cross_attention_dim=TEXT2_CFG["hidden_size"],
    projection_class_embeddings_input_dim=5 * TIME_EMBED + TEXT2_CFG["projection_dim"],
)

VAE_CFG = dict(mts.VAE_CFG, scaling_factor=0.13025, force_upcast=True)

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.19.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": "0.19.0.dev0",
    "force_zeros_for_empty_prompt": True,
    "add_watermarker": None,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


# ----------------------------------------------------------------------------- tokenizers
def tiny_vocab_and_merges():
    """CLIP's vocabulary built as openai/CLIP's SimpleTokenizer does, cut to the first MERGES merges (each merge
    only joins tokens made by earlier merges, so the cut is a consistent BPE)."""
    encoder, merges = mts.clip_vocab_and_merges(mts.open_clip_bpe_path())
    merges = merges[:MERGES]
    vocab = list(mts.bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB and len(set(vocab)) == VOCAB
    return {t: i for i, t in enumerate(vocab)}, merges


def write_tokenizer(tok_dir: Path, pad_token: str):
    from transformers import CLIPTokenizer

    tok_dir.mkdir(parents=True, exist_ok=True)
    encoder, merges = tiny_vocab_and_merges()
    tok = CLIPTokenizer(vocab=dict(encoder), merges=[tuple(m) for m in merges], unk_token="<|endoftext|>",
                        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token=pad_token,
                        **mts.TOKENIZER_CONFIG_EXTRA)
    tok.save_pretrained(str(tok_dir))
    with open(tok_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(tok_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    (tok_dir / "special_tokens_map.json").write_text(json.dumps(dict(
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token=pad_token, unk_token="<|endoftext|>"),
        indent=2) + "\n")
    if (tok_dir / "tokenizer.json").exists():
        (tok_dir / "tokenizer.json").unlink()
    tok2 = CLIPTokenizer.from_pretrained(str(tok_dir))
    ids = tok2("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert ids[0] == VOCAB - 2 and VOCAB - 1 in ids, ids[:10]
    assert tok2.pad_token == pad_token
    return tok2


# ----------------------------------------------------------------------------- models
def build_models(seed: int = SEED):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    te1 = CLIPTextModel(CLIPTextConfig(**TEXT1_CFG, attn_implementation="eager")).eval()
    torch.manual_seed(seed + 1)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT2_CFG, attn_implementation="eager")).eval()
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(**UNET_CFG).eval()
    torch.manual_seed(seed + 3)
    vae = AutoencoderKL(**VAE_CFG).eval()
    torch.manual_seed(seed + 4)
    refiner = UNet2DConditionModel(**REFINER_UNET_CFG).eval()
    return dict(text_encoder=te1, text_encoder_2=te2, unet=unet, vae=vae, unet_refiner=refiner)


class TextEncoderWrap(torch.nn.Module):
    """optimum's CLIPTextOnnxConfig with output_hidden_states: last_hidden_state, pooler_output, hidden_states.*"""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids=input_ids, output_hidden_states=True)
        return (o.last_hidden_state, o.pooler_output, *o.hidden_states)


class TextEncoder2Wrap(torch.nn.Module):
    """optimum's CLIPTextWithProjectionOnnxConfig: text_embeds, last_hidden_state, hidden_states.*"""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids=input_ids, output_hidden_states=True)
        return (o.text_embeds, o.last_hidden_state, *o.hidden_states)


class UNetWrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        return self.m(sample, timestep, encoder_hidden_states,
                      added_cond_kwargs=dict(text_embeds=text_embeds, time_ids=time_ids), return_dict=False)[0]


def export_all(models, out: Path):
    H = W = UNET_CFG["sample_size"]
    g = torch.Generator().manual_seed(0)
    B = 2
    ids = torch.randint(0, VOCAB, (B, 77), generator=g, dtype=torch.int64).to(torch.int32)
    for name, wrap, first in [("text_encoder", TextEncoderWrap, ["last_hidden_state", "pooler_output"]),
                              ("text_encoder_2", TextEncoder2Wrap, ["text_embeds", "last_hidden_state"])]:
        n = models[name].config.num_hidden_layers
        hidden = [f"hidden_states.{i}" for i in range(n + 1)]
        axes = {"input_ids": {0: "batch_size", 1: "sequence_length"}}
        for o in first + hidden:
            axes[o] = {0: "batch_size"} if o in ("pooler_output", "text_embeds") else \
                {0: "batch_size", 1: "sequence_length"}
        mts.onnx_export(wrap(models[name]), (ids,), out / name / "model.onnx", ["input_ids"], first + hidden, axes)
        mts.save_config(models[name], out / name)

    sample = torch.randn(B, 4, H, W, generator=g)
    ts = torch.tensor([500, 500], dtype=torch.int64)
    ehs = torch.randn(B, 77, UNET_CFG["cross_attention_dim"], generator=g)
    te = torch.randn(B, TEXT2_CFG["projection_dim"], generator=g)
    tid = torch.tensor([[64.0, 64, 0, 0, 64, 64]] * B)
    mts.onnx_export(UNetWrap(models["unet"]), (sample, ts, ehs, te, tid), out / "unet" / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"], ["out_sample"],
                    {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                     "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                     "text_embeds": {0: "batch_size"}, "time_ids": {0: "batch_size"},
                     "out_sample": {0: "batch_size", 2: "height", 3: "width"}})
    mts.save_config(models["unet"], out / "unet")
    # the refiner-style UNet: time_ids [batch, 5]
    ehs2 = torch.randn(B, 77, REFINER_UNET_CFG["cross_attention_dim"], generator=g)
    tid5 = torch.tensor([[64.0, 64, 0, 0, 6.0]] * B)
    mts.onnx_export(UNetWrap(models["unet_refiner"]), (sample, ts, ehs2, te, tid5), out / "unet_refiner" / "model.onnx",
                    ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"], ["out_sample"],
                    {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                     "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                     "text_embeds": {0: "batch_size"}, "time_ids": {0: "batch_size"},
                     "out_sample": {0: "batch_size", 2: "height", 3: "width"}})
    mts.save_config(models["unet_refiner"], out / "unet_refiner")

    vae = models["vae"]
    img = torch.randn(1, 3, 8 * H, 8 * W, generator=g)
    mts.onnx_export(mts.VaeEncoderParamsWrap(vae), (img,), out / "vae_encoder" / "model.onnx", ["sample"],
                    ["latent_parameters"],
                    {"sample": {0: "batch_size", 2: "height", 3: "width"},
                     "latent_parameters": {0: "batch_size", 2: "height_latent", 3: "width_latent"}})
    mts.save_config(vae, out / "vae_encoder")
    lat = torch.randn(1, 4, H, W, generator=g)
    mts.onnx_export(mts.VaeDecoderWrap(vae), (lat,), out / "vae_decoder" / "model.onnx", ["latent_sample"], ["sample"],
                    {"latent_sample": {0: "batch_size", 2: "height_latent", 3: "width_latent"},
                     "sample": {0: "batch_size", 2: "height", 3: "width"}})
    mts.save_config(vae, out / "vae_decoder")


def verify(models, out: Path):
    """ORT vs torch on inputs other than the export dummies (batch 3, 16x8 latents, timestep [1])."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3

    def sess(name):
        return ort.InferenceSession(str(out / name / "model.onnx"), so, providers=["CPUExecutionProvider"])

    g = torch.Generator().manual_seed(99)
    rep = {}
    with torch.no_grad():
        ids = torch.full((3, 77), VOCAB - 1, dtype=torch.int64)
        ids[:, 0] = VOCAB - 2
        for b, n in enumerate([5, 20, 75]):
            ids[b, 1: 1 + n] = torch.randint(0, VOCAB - 2, (n,), generator=g)
        for name in ["text_encoder", "text_encoder_2"]:
            s = sess(name)
            o = dict(zip([x.name for x in s.get_outputs()], s.run(None, {"input_ids": ids.numpy().astype(np.int32)})))
            r = models[name](input_ids=ids, output_hidden_states=True)
            pooled = "pooler_output" if name == "text_encoder" else "text_embeds"
            rep[name] = dict(
                last_hidden_state=float(np.abs(o["last_hidden_state"] - r.last_hidden_state.numpy()).max()),
                pooled=float(np.abs(o[pooled] - getattr(r, pooled).numpy()).max()),
                hidden_states=float(max(np.abs(o[f"hidden_states.{i}"] - h.numpy()).max()
                                        for i, h in enumerate(r.hidden_states))))
        s = torch.randn(2, 4, 16, 8, generator=g)
        e = torch.randn(2, 77, UNET_CFG["cross_attention_dim"], generator=g)
        te = torch.randn(2, TEXT2_CFG["projection_dim"], generator=g)
        tid = torch.tensor([[128.0, 64, 0, 0, 128, 64], [128.0, 64, 0, 0, 128, 64]])
        t = torch.tensor([981], dtype=torch.int64)
        r = models["unet"](s, t, e, added_cond_kwargs=dict(text_embeds=te, time_ids=tid)).sample.numpy()
        feed = {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy(),
                "text_embeds": te.numpy(), "time_ids": tid.numpy()}
        o = sess("unet").run(None, feed)[0]
        rep["unet"] = float(np.abs(o - r).max())
        rep["unet_output_std"] = float(r.std())
        # the added conditioning must matter
        feed2 = dict(feed, time_ids=(tid * 0.5).numpy())
        rep["unet_time_ids_effect"] = float(np.abs(sess("unet").run(None, feed2)[0] - o).max())
        feed3 = dict(feed, text_embeds=np.zeros_like(te.numpy()))
        rep["unet_text_embeds_effect"] = float(np.abs(sess("unet").run(None, feed3)[0] - o).max())
        e2 = torch.randn(2, 77, REFINER_UNET_CFG["cross_attention_dim"], generator=g)
        tid5 = torch.tensor([[128.0, 64, 0, 0, 6.0], [128.0, 64, 0, 0, 2.5]])
        r = models["unet_refiner"](s, t, e2, added_cond_kwargs=dict(text_embeds=te, time_ids=tid5)).sample.numpy()
        o = sess("unet_refiner").run(None, dict(feed, encoder_hidden_states=e2.numpy(), time_ids=tid5.numpy()))[0]
        rep["unet_refiner"] = float(np.abs(o - r).max())
        x = torch.rand(1, 3, 128, 64, generator=g) * 2 - 1
        d = models["vae"].encode(x).latent_dist
        rep["vae_encoder"] = float(np.abs(sess("vae_encoder").run(None, {"sample": x.numpy()})[0]
                                          - d.parameters.numpy()).max())
        z = torch.randn(1, 4, 16, 8, generator=g)
        rep["vae_decoder"] = float(np.abs(sess("vae_decoder").run(None, {"latent_sample": z.numpy()})[0]
                                          - models["vae"].decode(z).sample.numpy()).max())
    assert rep["unet_time_ids_effect"] > 1e-3 and rep["unet_text_embeds_effect"] > 1e-3, rep
    return rep


def torch_pipeline(models, folder: Path, scheduler=None):
    """diffusers' StableDiffusionXLPipeline over the torch models and the fixture's tokenizers and scheduler."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    return StableDiffusionXLPipeline(
        vae=models["vae"], text_encoder=models["text_encoder"], text_encoder_2=models["text_encoder_2"],
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
        tokenizer_2=CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2")), unet=models["unet"],
        scheduler=scheduler or EulerDiscreteScheduler.from_config(SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True, add_watermarker=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--torch-out", type=Path, default=None,
                    help="also save the torch pipeline (diffusers save_pretrained) there; keep it outside the repo")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_tokenizer(out / "tokenizer", "<|endoftext|>")
    write_tokenizer(out / "tokenizer_2", "!")
    (out / "scheduler").mkdir()
    (out / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2) + "\n")
    (out / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
    models = build_models(args.seed)
    export_all(models, out)
    rep = verify(models, out)
    if args.torch_out:
        torch_pipeline(models, out).save_pretrained(str(args.torch_out))
    manifest = dict(
        seed=args.seed, opset=mts.OPSET, merges=MERGES, versions=mts.versions(),
        configs=dict(text=TEXT1_CFG, text_2=TEXT2_CFG, unet=UNET_CFG, unet_refiner=REFINER_UNET_CFG, vae=VAE_CFG),
        verify_max_abs_diff_ort_vs_torch=rep,
        onnx={str(p.parent.relative_to(out)): mts.io_signature(p) for p in sorted(out.rglob("model.onnx"))},
        files=mts.file_manifest(out),
    )
    manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    print(json.dumps(rep, indent=1))
    for k, v in manifest["files"].items():
        print(f"{v['bytes']:>10}  {k}")
    print(f"total {manifest['total_bytes']} bytes")


if __name__ == "__main__":
    main()
