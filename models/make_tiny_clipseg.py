#!/usr/bin/env python3
"""Build a TINY random-weight CLIPSeg (transformers' CLIPSegForImageSegmentation) and export it
with scripts/export_clipseg.py into models/tiny-clipseg/ (for anim's word-mask tests).

    python3 -m venv venv && venv/bin/pip install torch transformers onnx onnxruntime
    venv/bin/python models/make_tiny_clipseg.py [--out models/tiny-clipseg]

The shapes are CLIPSeg's (ViT with 16-pixel patches at 224, position embedding interpolated to the
512-pixel input, decoder with FiLM conditioning and a 16x16 transposed convolution), the sizes
tiny: vision and text width 16, 3 and 2 layers, decoder width 8. The tokenizer is
models/tiny-sdxl/tokenizer (CLIP's BPE cut to a vocabulary of 4096: see make_tiny_sdxl.py),
copied. Weights: transformers' initialisation with seed 0, then the decoder's transposed
convolution halved so the logits span about ±5 and the sigmoid keeps grey levels. Same versions +
same seed => identical weights. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import export_clipseg  # noqa: E402

VOCAB = 4096


def build() -> torch.nn.Module:
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    torch.manual_seed(0)
    config = CLIPSegConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=VOCAB - 2,
                         eos_token_id=VOCAB - 1, pad_token_id=VOCAB - 1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                           image_size=224, patch_size=16),
        projection_dim=16, extract_layers=[1, 2], reduce_dim=8, decoder_num_attention_heads=2,
        decoder_intermediate_size=16, conditional_layer=0, use_complex_transposed_convolution=False,
    )
    model = CLIPSegForImageSegmentation(config).eval()
    with torch.no_grad():
        # transformers' init gives logits of about ±10, which saturate the sigmoid: halve them
        model.decoder.transposed_convolution.weight.mul_(0.5)
        model.decoder.transposed_convolution.bias.fill_(0.0)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "tiny-clipseg")
    args = ap.parse_args()
    import transformers

    model = build()
    path = export_clipseg.export(model, ROOT / "models" / "tiny-sdxl" / "tokenizer", args.out,
                                 extra={"checkpoint": "random (models/make_tiny_clipseg.py, seed 0)",
                                        "transformers": transformers.__version__})
    params = sum(p.numel() for p in model.parameters())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{params} parameters; {path} {path.stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
