#!/usr/bin/env python3
"""A1111 references: emphasis parsing, 75-token chunks and weighted embeddings, clip skip, and variation
(subseed) noise, made by AUTOMATIC1111's own code (modules/prompt_parser.py parse_prompt_attention,
modules/sd_hijack_clip.py FrozenCLIPEmbedderWithCustomWords with the emphasis of modules/sd_emphasis.py,
modules/rng.py slerp) run on the tiny model's torch text encoder (rebuilt as make_reference.py does). A1111 is AGPL: its code is imported from a
checkout given on the command line, never copied here.

Writes tests/data/sd-ref-a1111/:
  prompts.json        per prompt: text, parsed [[text, weight], ...] (weights as Python floats), chunks
                      (tokens and multipliers per 77-token window), file names of the embeddings
  embed_<i>.npy       (1, 77*k, 32) float32: A1111's cond for the prompt (emphasis "Original",
                      CLIP_stop_at_last_layers = 1)
  embed_<i>_nonorm.npy       the same with emphasis "No norm" (weights applied, no re-normalisation)
  embed_<i>_nonorm_skip2.npy "No norm" with clip skip 2 (hidden_states[-2] + final_layer_norm)

  variation.json + variation_<i>.npy: A1111's create_random_tensors for one image: randn(seed) and
                      randn(subseed) of shape (4, h, w) from torch.manual_seed, then slerp(strength, noise, subnoise)

Options A1111 reads, set as its defaults: comma_padding_backtrack 20.
The tiny text encoder's final layer norm has weight 1 and bias 0, so every token vector has mean 0 and the
"Original" re-normalisation (z * mean_before / mean_after) divides rounding noise by rounding noise (the empty
prompt gives 0/0 = NaN): its values are not a usable reference on this fixture, the "No norm" ones are.

Usage:  /work/venv-torch/bin/python models/make_a1111_refs.py --a1111 /path/to/stable-diffusion-webui
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_tiny_sd as mts  # noqa: E402

LONG = ("a breathtaking ultra detailed matte painting of an ancient floating city above the clouds at sunset, "
        "volumetric light, god rays, intricate gothic towers, waterfalls pouring into the sky, flocks of birds, "
        "cinematic composition, trending on artstation, by greg rutkowski and alphonse mucha, 8k, octane render, "
        "unreal engine 5, hyperrealistic, sharp focus, award winning photograph")
PROMPTS = [
    "a photo of a cat",
    "",
    "a (red:1.3) fox in the [snow]",
    "a ((red)) fox, (((very))) [[small]]",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "\\(literal\\) parentheses and \\[brackets\\] and a \\\\ backslash",
    "(unbalanced open and [closing",
    "a cat BREAK a dog",
    "(masterpiece:1.2), best quality, (detailed face:0.8), [blurry:1.5]",
    LONG,
    "(" + LONG + ":1.1), " + LONG,
    " ".join(["word"] * 80),
    ", ".join(["red fox"] * 40),
    " ".join(["a"] * 74) + " (b:1.5), " + " ".join(["c"] * 30),
    "a fox (in the snow:-0.5)",
]


def a1111_modules(root: Path, skip: int, emphasis: str):
    """Imports A1111's prompt_parser, sd_emphasis and sd_hijack_clip with the web UI around them stubbed."""
    sys.modules.setdefault("lark", types.SimpleNamespace(Lark=lambda *a, **k: None, Transformer=object, Visitor=object))
    shared = types.ModuleType("modules.shared")
    shared.opts = types.SimpleNamespace(emphasis=emphasis, comma_padding_backtrack=20, CLIP_stop_at_last_layers=skip,
                                        use_old_emphasis_implementation=False,
                                        textual_inversion_add_hashes_to_infotext=False)
    devices = types.ModuleType("modules.devices")
    devices.device = torch.device("cpu")
    devices.torch_npu_set_device = lambda: None
    sys.modules["modules.shared"] = shared
    sys.modules["modules.devices"] = devices
    sys.modules["modules.sd_hijack"] = types.ModuleType("modules.sd_hijack")
    sys.path.insert(0, str(root))
    import modules  # noqa: F401
    for name in ["prompt_parser", "sd_emphasis", "sd_hijack_clip"]:
        sys.modules.pop(f"modules.{name}", None)
    import modules.prompt_parser as pp
    import modules.sd_hijack_clip as hc
    shared.opts.CLIP_stop_at_last_layers = skip
    hc.opts = shared.opts
    return pp, hc


class TransformerShim:
    """Calls the CLIPTextModel; `.text_model` reaches its final layer norm in transformers 4 and 5."""

    def __init__(self, model):
        self.model = model
        self.text_model = getattr(model, "text_model", model)

    def __call__(self, **kw):
        return self.model(**kw)


class Hijack:
    fixes = None
    extra_generation_params: dict = {}

    class embedding_db:  # noqa: N801
        @staticmethod
        def find_embedding_at_position(tokens, position):
            return None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", type=Path, required=True, help="a stable-diffusion-webui checkout")
    ap.add_argument("--fixture", type=Path, default=HERE / "tiny-sd")
    ap.add_argument("--out", type=Path, default=HERE.parent / "tests" / "data" / "sd-ref-a1111")
    args = ap.parse_args()
    from transformers import CLIPTokenizer

    manifest = json.loads((args.fixture / "manifest.json").read_text())
    mts.TEXT_CFG.update(manifest["configs"]["text"])
    for key, cfg in [("unet", mts.UNET_CFG), ("vae", mts.VAE_CFG), ("controlnet", mts.CONTROLNET_CFG)]:
        cfg.update({k: tuple(v) if isinstance(v, list) else v for k, v in manifest["configs"][key].items()})
    text_encoder = mts.build_models(manifest["seed"])["text_encoder"]
    tokenizer = CLIPTokenizer.from_pretrained(str(args.fixture / "tokenizer"))
    # A1111 reaches the final layer norm as transformer.text_model.final_layer_norm (transformers 4 layout)
    wrapped = types.SimpleNamespace(tokenizer=tokenizer, transformer=TransformerShim(text_encoder))
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    records = []
    for skip, emphasis, suffix in [(1, "Original", ""), (1, "No norm", "_nonorm"), (2, "No norm", "_nonorm_skip2")]:
        pp, hc = a1111_modules(args.a1111, skip, emphasis)
        emb = hc.FrozenCLIPEmbedderWithCustomWords(wrapped, Hijack())
        for i, text in enumerate(PROMPTS):
            with torch.no_grad():
                z = emb([text])
            np.save(args.out / f"embed_{i}{suffix}.npy", z.numpy().astype(np.float32))
            if not suffix:
                chunks, count = emb.tokenize_line(text)
                records.append(dict(text=text, parsed=pp.parse_prompt_attention(text), token_count=count,
                                    chunks=[dict(tokens=c.tokens, multipliers=c.multipliers) for c in chunks],
                                    embed=f"embed_{i}.npy", embed_nonorm=f"embed_{i}_nonorm.npy",
                                    embed_nonorm_skip2=f"embed_{i}_nonorm_skip2.npy", shape=list(z.shape)))
    import modules.rng as a1111_rng

    variations = []
    for i, (seed, subseed, strength, shape) in enumerate([(42, 7, 0.3, (4, 8, 8)), (1234, 99, 0.75, (4, 8, 12)),
                                                         (5, 6, 1.0, (4, 16, 8)), (5, 5, 0.5, (4, 8, 8))]):
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        sub = torch.randn(shape, generator=torch.Generator().manual_seed(subseed))
        np.save(args.out / f"variation_{i}.npy", a1111_rng.slerp(strength, noise, sub).numpy().astype(np.float32))
        variations.append(dict(seed=seed, subseed=subseed, strength=strength, shape=list(shape), file=f"variation_{i}.npy"))
    (args.out / "variation.json").write_text(json.dumps(variations, indent=1) + "\n")
    (args.out / "prompts.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(__doc__.split("Usage:")[0] + "\nVersions: " + json.dumps(mts.versions()) + "\n")
    print(f"{len(records)} prompts -> {args.out}")


if __name__ == "__main__":
    main()
