#!/usr/bin/env python3
"""Reference word masks for anim's CLIPSeg (tests/clipseg.rs), from models/tiny-clipseg.

    python3 -m venv venv && venv/bin/pip install torch torchvision transformers onnx onnxruntime \
        opencv-python-headless pillow
    venv/bin/python models/make_tiny_clipseg.py        # if models/tiny-clipseg is missing
    venv/bin/python scripts/make_clipseg_refs.py

Deforum's word-mask chain (its word_masking.py, read as the specification), on the tiny
transformers CLIPSeg instead of CLIPDensePredT: the PIL RGB frame -> torchvision ToTensor ->
Normalize(ImageNet mean, std) -> Resize((512, 512)) (bilinear, antialias as this torchvision does
by default) -> the model with the words (CLIP tokens padded to 77) -> sigmoid of the logits ->
torch bicubic interpolate back to the frame size (align_corners False) -> x255 -> .to(uint8)
(truncation, wrapping out-of-range values as torch does) -> cv2.threshold(..., 32, 255,
THRESH_BINARY + THRESH_OTSU).

Writes tests/data/clipseg/:
  CASE_logits.npy   float32 [128, 128]: the torch model's logits at every 4th pixel ([::4, ::4])
  CASE_pixels.npy   float32 [3, 64, 64]: the normalised, resized input at every 8th pixel
  CASE_u8.png       the sigmoid resized back and truncated (before Otsu; subject_cat, odd_sky)
  CASE_mask.png     the final mask (0/255)
  refs.json         per case: frame, words, token ids, Otsu's threshold, logits' range, max
                    |onnx - torch| of the logits, versions
Frames: tests/data/flow/pairs/*.png; "wide" is odd_a and odd_b side by side (922x347, so the
Resize shrinks one axis, where antialiasing matters).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import PIL
import torch
import torchvision
import transformers
from PIL import Image
from torch.nn.functional import interpolate
from torchvision import transforms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "models"))
import make_tiny_clipseg  # noqa: E402

PAIRS = ROOT / "tests" / "data" / "flow" / "pairs"
OUT = ROOT / "tests" / "data" / "clipseg"
MODEL = ROOT / "models" / "tiny-clipseg"

PRE = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    transforms.Resize((512, 512)),
])


def frame(name: str) -> Image.Image:
    if name == "wide":
        a = np.asarray(Image.open(PAIRS / "odd_a.png").convert("RGB"))
        b = np.asarray(Image.open(PAIRS / "odd_b.png").convert("RGB"))
        return Image.fromarray(np.concatenate([a, b], axis=1))
    return Image.open(PAIRS / f"{name}.png").convert("RGB")


CASES = [
    ("subject_cat", "subject_a", "a cat"),
    ("subject_dog", "subject_a", "a dog"),
    ("odd_sky", "odd_a", "the sky"),
    ("wide_car", "wide", "red car"),
]


#: the cases whose pre-Otsu picture is kept (the others' files would only add size)
U8 = {"subject_cat", "odd_sky"}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = make_tiny_clipseg.build().eval()
    tok = transformers.CLIPTokenizer.from_pretrained(str(MODEL / "tokenizer"))
    sess = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    refs = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                         "transformers": transformers.__version__, "opencv": cv2.__version__,
                         "pillow": PIL.__version__, "onnxruntime": ort.__version__},
            "cases": {}}
    torch.set_num_threads(1)
    for case, fname, words in CASES:
        img = frame(fname)
        x = PRE(img).to(dtype=torch.float32).unsqueeze(0)
        enc = tok([words], padding="max_length", max_length=77, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_ids=enc.input_ids, pixel_values=x, attention_mask=enc.attention_mask,
                           interpolate_pos_encoding=True).logits
        logits = logits.reshape(512, 512)
        onnx_logits = sess.run(["logits"], {"input_ids": enc.input_ids.numpy(), "pixel_values": x.numpy(),
                                            "attention_mask": enc.attention_mask.numpy()})[0].reshape(512, 512)
        mask = torch.sigmoid(logits).unsqueeze(0).unsqueeze(0)
        resized = interpolate(mask, size=(img.size[1], img.size[0]), mode="bicubic").squeeze()
        u8 = resized.multiply(255).to(dtype=torch.uint8).numpy()
        thresh, final = cv2.threshold(u8, 32, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        np.save(OUT / f"{case}_logits.npy", logits.numpy()[::4, ::4].astype(np.float32).copy())
        np.save(OUT / f"{case}_pixels.npy", x[0].numpy()[:, ::8, ::8].astype(np.float32).copy())
        if case in U8:
            Image.fromarray(u8).save(OUT / f"{case}_u8.png")
        Image.fromarray(final).save(OUT / f"{case}_mask.png")
        refs["cases"][case] = {
            "frame": fname, "size": list(img.size), "words": words,
            "input_ids": enc.input_ids[0].tolist(), "attention_mask": enc.attention_mask[0].tolist(),
            "otsu": float(thresh), "logits_min": float(logits.min()), "logits_max": float(logits.max()),
            "onnx_vs_torch_max_abs": float(np.abs(onnx_logits - logits.numpy()).max()),
            "mask_white": int((final == 255).sum()),
        }
        print(case, refs["cases"][case]["otsu"], refs["cases"][case]["logits_min"],
              refs["cases"][case]["logits_max"], refs["cases"][case]["onnx_vs_torch_max_abs"],
              refs["cases"][case]["mask_white"], img.size)
    (OUT / "refs.json").write_text(json.dumps(refs, indent=1) + "\n")


if __name__ == "__main__":
    main()
