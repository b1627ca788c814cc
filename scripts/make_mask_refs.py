"""Makes the mask references tests/masks.rs measures anim against (tests/data/masks/).

Written from the description of Deforum's masks in the project's research notes (not from
Deforum's code):
- `prepare_mask`: the image as RGB, `resize((W, H), Image.LANCZOS)`, then
  `ImageEnhance.Brightness(b).enhance(b)` and `ImageEnhance.Contrast(c).enhance(c)` (each only
  when its factor is not 1), then `convert("L")`. anim's arguments are (brightness, contrast).
- mask expressions: each operand `convert("1", dither=Image.Dither.NONE)` (a threshold at 128),
  combined with `ImageChops.logical_and/logical_or/logical_xor` and `ImageChops.invert`
  (`a \\ b` = `a & !b`); the expressions and the tree each stands for are in cases.json.
- A1111's latent mask: the mask as RGB, `resize((W/8, H/8))` (Pillow's default BICUBIC), channel
  0 / 255, `np.around`; and a BICUBIC resize of the source photo.
- `do_overlay_mask`: the mask resized with LANCZOS and converted to L, inverted if asked, then
  `Image.composite(generated, base, mask)`.

Inputs are crops of the real photos in tests/data/flow/pairs/ (made by
scripts/make_flow_pairs.py). Run with a venv holding Pillow and numpy
(`python3 -m venv v && v/bin/pip install numpy pillow`): `v/bin/python scripts/make_mask_refs.py`.
"""
import json
import os

import numpy as np
from PIL import Image, ImageChops, ImageEnhance, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PAIRS = os.path.join(ROOT, "tests/data/flow/pairs")
OUT = os.path.join(ROOT, "tests/data/masks")
W, H = 64, 48


def photo(name, box):
    return Image.open(os.path.join(PAIRS, name)).convert("RGB").crop(box)


def prepare_mask(img, w, h, brightness, contrast):
    img = img.convert("RGB").resize((w, h), Image.LANCZOS)
    if brightness != 1:
        img = ImageEnhance.Brightness(img).enhance(brightness)
    if contrast != 1:
        img = ImageEnhance.Contrast(img).enhance(contrast)
    return img.convert("L")


def bit(img):
    return img.convert("1", dither=Image.Dither.NONE)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = {"prepare": [], "expr": [], "overlay": []}

    # prepare_mask: a downscale of a real photo with brightness/contrast factors
    src = photo("shift_a.png", (10, 5, 110, 80))
    src.save(os.path.join(OUT, "src.png"))
    for i, (b, c) in enumerate([(1.0, 1.0), (1.5, 1.0), (1.0, 0.6), (0.7, 1.8), (2.0, 2.5), (0.0, 1.3)]):
        name = f"prepare_{i}.png"
        prepare_mask(src, W, H, b, c).save(os.path.join(OUT, name))
        cases["prepare"].append({"file": name, "brightness": b, "contrast": c})

    # expressions over three grey masks from photos
    ops = {}
    for n, (f, box) in {"a": ("shift_a.png", (0, 0, W, H)), "b": ("rotzoom_a.png", (8, 8, 8 + W, 8 + H)),
                        "c": ("homography_a.png", (4, 12, 4 + W, 12 + H))}.items():
        g = photo(f, box).convert("L")
        g.save(os.path.join(OUT, f"{n}.png"))
        ops[n] = bit(g)
    every = Image.new("1", (W, H), 1)

    def AND(x, y):
        return ImageChops.logical_and(x, y)

    def OR(x, y):
        return ImageChops.logical_or(x, y)

    def XOR(x, y):
        return ImageChops.logical_xor(x, y)

    def NOT(x):
        return bit(ImageOps.invert(x.convert("L")))

    def MINUS(x, y):
        return AND(x, NOT(y))

    a, b, c = ops["a"], ops["b"], ops["c"]
    exprs = [
        ("[a.png] & [b.png]", AND(a, b)),
        ("[a.png] | [b.png]", OR(a, b)),
        ("[a.png] ^ [b.png]", XOR(a, b)),
        ("[a.png] \\ [b.png]", MINUS(a, b)),
        ("[a.png] | [b.png] & [c.png]", OR(a, AND(b, c))),
        ("[a.png] \\ [b.png] \\ [c.png]", MINUS(MINUS(a, b), c)),
        ("[a.png] ^ [b.png] | [c.png]", XOR(a, OR(b, c))),
        ("!([a.png] | [b.png]) & [c.png]", AND(NOT(OR(a, b)), c)),
        ("{everywhere} \\ [c.png]", MINUS(every, c)),
        ("![a.png] & [b.png]", AND(NOT(a), b)),
    ]
    for i, (e, img) in enumerate(exprs):
        name = f"expr_{i}.png"
        img.convert("L").save(os.path.join(OUT, name))
        cases["expr"].append({"file": name, "expr": e})

    # overlay: generated and base photos, a grey mask at another size
    gen = photo("rotzoom_b.png", (0, 0, W, H))
    base = photo("homography_b.png", (0, 0, W + 16, H + 12))
    mask = photo("shift_b.png", (0, 0, 40, 30)).convert("L")
    gen.save(os.path.join(OUT, "gen.png"))
    base.save(os.path.join(OUT, "base.png"))
    mask.save(os.path.join(OUT, "mask.png"))
    for inv in (False, True):
        m = mask.resize((W, H), Image.LANCZOS).convert("L")
        if inv:
            m = ImageOps.invert(m)
        out = Image.composite(gen, base.resize((W, H), Image.LANCZOS), m)
        name = f"overlay_{'inv' if inv else 'plain'}.png"
        out.save(os.path.join(OUT, name))
        cases["overlay"].append({"file": name, "invert": inv})

    # A1111's latent mask: the mask as RGB resized to the latent size with Pillow's default
    # (BICUBIC), channel 0 / 255, np.around
    latent = []
    for name in ("prepare_3.png", "expr_7.png"):
        m = Image.open(os.path.join(OUT, name)).convert("RGB").resize((W // 8, H // 8))
        lat = np.around(np.array(m, dtype=np.float32)[:, :, 0] / 255)
        latent.append({"file": name, "w": W // 8, "h": H // 8, "mask": lat.astype(int).flatten().tolist()})
    cases["latent"] = latent
    src.resize((40, 30), Image.BICUBIC).save(os.path.join(OUT, "bicubic.png"))

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print("wrote", OUT, np.__version__)


if __name__ == "__main__":
    main()
