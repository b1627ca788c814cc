#!/usr/bin/env python3
"""Export a transformers CLIPSeg checkpoint to ONNX for anim's word masks (`<words>` in a mask
expression).

    python3 -m venv venv && venv/bin/pip install torch transformers onnx
    venv/bin/python scripts/export_clipseg.py CHECKPOINT_DIR ~/.local/share/anim/models/clipseg

CHECKPOINT_DIR is a local transformers checkpoint folder of `CLIPSegForImageSegmentation` with its
tokenizer files (for example a download of CIDAS/clipseg-rd64-refined; nothing is fetched here).
This writes:

  OUT/model.onnx       inputs `input_ids` int64 [1, 77], `attention_mask` int64 [1, 77],
                       `pixel_values` float32 [1, 3, 512, 512] (ImageNet-normalised RGB);
                       output `logits` float32 [1, 512, 512] (before the sigmoid)
  OUT/tokenizer/       the checkpoint's CLIP tokenizer (vocab.json, merges.txt, ...)
  OUT/config.json      {"size": 512, ...}: informative

512x512 is what Deforum feeds its CLIPSeg (CLIPDensePredT, ViT-B/16): the 14x14 position
embedding of the 224-pixel ViT is interpolated bicubically to 32x32, as both the original model
and transformers' `interpolate_pos_encoding` do. `--size` exports another size (352 is what
transformers' CLIPSegProcessor uses); anim feeds whatever size the export takes.

Deforum's weights are the original repository's `rd64-uni.pth` (decoder only; CLIP ViT-B/16 comes
from OpenAI's `clip` package). transformers' conversion script
(src/transformers/models/clipseg/convert_clipseg_original_pytorch_to_hf.py in the transformers
source tree, `--model_name clipseg-rd64`) converts it into a checkpoint folder this script
exports, but it expects one file holding both CLIP and the decoder: save the `state_dict()` of the
original `CLIPDensePredT(version="ViT-B/16", reduce_dim=64)` after loading `rd64-uni.pth` into it
(strict=False, as Deforum does) and pass that file as `--checkpoint_path`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

#: the text length anim pads to (CLIP's context).
SEQ = 77
#: the pixel size Deforum feeds.
SIZE = 512
#: tokenizer files copied when present.
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.json")


class Logits(nn.Module):
    """CLIPSegForImageSegmentation returning only its logits, [B, H, W]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, pixel_values, attention_mask):
        out = self.model(input_ids=input_ids, pixel_values=pixel_values,
                         attention_mask=attention_mask, interpolate_pos_encoding=True)
        logits = out.logits
        if logits.dim() == 2:  # some transformers versions squeeze a batch of one
            logits = logits.unsqueeze(0)
        return logits


def export(model: nn.Module, tokenizer_dir: Path, out: Path, size: int = SIZE,
           opset: int = 17, extra: dict | None = None) -> Path:
    """Export `model` (CLIPSegForImageSegmentation, eval) to OUT/model.onnx, copy the tokenizer
    files of `tokenizer_dir` into OUT/tokenizer/ and write OUT/config.json."""
    out.mkdir(parents=True, exist_ok=True)
    wrapped = Logits(model.eval()).eval()
    ids = torch.zeros(1, SEQ, dtype=torch.int64)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    pixels = torch.zeros(1, 3, size, size)
    path = out / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(wrapped, (ids, pixels, mask), str(path),
                          input_names=["input_ids", "pixel_values", "attention_mask"],
                          output_names=["logits"], opset_version=opset, dynamo=False)
    tok = out / "tokenizer"
    tok.mkdir(exist_ok=True)
    copied = [f for f in TOKENIZER_FILES if (tokenizer_dir / f).is_file()]
    if not {"vocab.json", "merges.txt"} <= set(copied) and "tokenizer.json" not in copied:
        sys.exit(f"{tokenizer_dir}: no CLIP tokenizer files (vocab.json + merges.txt or tokenizer.json)")
    for f in copied:
        shutil.copy(tokenizer_dir / f, tok / f)
    config = {"size": size, "seq": SEQ, "inputs": ["input_ids", "pixel_values", "attention_mask"],
              "output": "logits", "opset": opset, "torch": torch.__version__}
    config.update(extra or {})
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="transformers CLIPSeg checkpoint folder")
    ap.add_argument("out", type=Path, help="output folder (model.onnx, tokenizer/, config.json)")
    ap.add_argument("--size", type=int, default=SIZE, help="pixel size the export takes (Deforum: 512)")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    from transformers import CLIPSegForImageSegmentation, __version__ as tv

    model = CLIPSegForImageSegmentation.from_pretrained(str(args.checkpoint))
    path = export(model, args.checkpoint, args.out, args.size, args.opset,
                  {"checkpoint": args.checkpoint.name, "transformers": tv})
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
