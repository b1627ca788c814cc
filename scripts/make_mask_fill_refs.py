"""Makes the references of A1111's img2img mask steps that tests/masks.rs measures anim against
(tests/data/masks/fill_*.png, fullres_*.png, a1111_overlay_*.png and fullres.json).

Written from the behaviour described in the project's research notes (docs/research §2.5) with
Pillow and numpy, not from A1111's code:
- `fill` (inpainting_fill 0, and before modes 2 and 3): the image as premultiplied RGBa pasted
  through the inverted mask onto a transparent canvas; that canvas Gaussian-blurred (Pillow's
  `ImageFilter.GaussianBlur`) with radii 256, 64, 16, 4, 2, 0, repeated 1, 1, 2, 4, 2, 1 times,
  each blur (back to straight RGBA) alpha-composited onto an empty RGBA image; the result as RGB.
- full-resolution inpainting: the bounding box of the mask's non-zero pixels grown by the padding
  and clipped to the frame, grown to the processing size's aspect ratio (centred, shifted back
  inside the frame), the crop resized to the processing size by "resize and fill" (LANCZOS to fit
  the larger side, the short side's gap filled by stretching the edge rows or columns), and the
  result resized back by "crop and resize", pasted at the crop on a transparent canvas under the
  overlay (the init image with alpha = 255 − the blurred mask).
- the overlay without full resolution: alpha = 255 − clip(2·mask).

Run with a venv holding Pillow and numpy (`python3 -m venv v && v/bin/pip install numpy pillow`):
`v/bin/python scripts/make_mask_fill_refs.py`.
"""
import json
import os

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests/data/masks")


def load(name, mode):
    return Image.open(os.path.join(OUT, name)).convert(mode)


def fill(image, mask):
    mod = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            mod.alpha_composite(blurred)
    return mod.convert("RGB")


def crop_region(mask, pad):
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    w, h = mask.size
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, w), min(y2 + pad, h)


def expand(region, pw, ph, iw, ih):
    x1, y1, x2, y2 = region
    ratio_crop = (x2 - x1) / (y2 - y1)
    ratio = pw / ph
    if ratio_crop > ratio:
        diff = int((x2 - x1) / ratio - (y2 - y1))
        y1 -= diff // 2
        y2 += diff - diff // 2
        if y2 >= ih:
            y1 -= y2 - ih
            y2 = ih
        if y1 < 0:
            y2 -= y1
            y1 = 0
        y2 = min(y2, ih)
    else:
        diff = int((y2 - y1) * ratio - (x2 - x1))
        x1 -= diff // 2
        x2 += diff - diff // 2
        if x2 >= iw:
            x1 -= x2 - iw
            x2 = iw
        if x1 < 0:
            x2 -= x1
            x1 = 0
        x2 = min(x2, iw)
    return x1, y1, x2, y2


def resize_fill(im, width, height):
    ratio, src_ratio = width / height, im.width / im.height
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), Image.LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fh = height // 2 - src_h // 2
        if fh > 0:
            res.paste(resized.resize((width, fh), box=(0, 0, width, 0)), box=(0, 0))
            res.paste(resized.resize((width, fh), box=(0, resized.height, width, resized.height)),
                      box=(0, fh + src_h))
    elif ratio > src_ratio:
        fw = width // 2 - src_w // 2
        if fw > 0:
            res.paste(resized.resize((fw, height), box=(0, 0, 0, height)), box=(0, 0))
            res.paste(resized.resize((fw, height), box=(resized.width, 0, resized.width, height)),
                      box=(fw + src_w, 0))
    return res


def resize_crop(im, width, height):
    ratio, src_ratio = width / height, im.width / im.height
    src_w = width if ratio > src_ratio else im.width * height // im.height
    src_h = height if ratio <= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), Image.LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    return res


def overlay_image(init, mask_for_overlay):
    masked = Image.new("RGBa", init.size)
    masked.paste(init.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay))
    return masked.convert("RGBA")


def apply_overlay(result, paste, overlay):
    if paste is not None:
        x, y, w, h = paste
        base = Image.new("RGBA", overlay.size)
        base.paste(resize_crop(result, w, h), (x, y))
        result = base
    result = result.convert("RGBA")
    result.alpha_composite(overlay)
    return result.convert("RGB")


def main():
    photo = load("src.png", "RGB").crop((10, 10, 74, 58))
    for name in ["hard_4", "grey_4", "hard_9"]:
        m = load(f"blur_{name}.png", "L")
        fill(photo, m).save(os.path.join(OUT, f"fill_{name}.png"))
        over = overlay_image(photo, Image.fromarray(np.clip(np.asarray(m, np.float32) * 2, 0, 255).astype(np.uint8)))
        apply_overlay(load("gen.png", "RGB"), None, over).save(os.path.join(OUT, f"a1111_overlay_{name}.png"))
    # full resolution: masks with a blob at several places, processed at several sizes
    cases = []
    gen = load("gen.png", "RGB")
    for i, (box, pad, pw, ph) in enumerate([
        ((20, 14, 30, 22), 4, 64, 48),   # inside, wider than the frame ratio after padding
        ((40, 5, 46, 40), 4, 64, 48),    # tall
        ((0, 0, 12, 6), 0, 64, 48),      # a corner, no padding
        ((50, 30, 64, 48), 6, 48, 64),   # the other corner, a portrait processing size
        ((8, 20, 56, 26), 2, 40, 40),    # a wide strip, square processing
    ]):
        a = np.zeros((48, 64), np.uint8)
        a[box[1]:box[3], box[0]:box[2]] = 255
        m = Image.fromarray(a).filter(ImageFilter.GaussianBlur(2))
        m.save(os.path.join(OUT, f"fullres_{i}_mask.png"))
        region = crop_region(m, pad)
        x1, y1, x2, y2 = expand(region, pw, ph, 64, 48)
        init_c = resize_fill(photo.crop((x1, y1, x2, y2)), pw, ph)
        mask_c = resize_fill(m.crop((x1, y1, x2, y2)), pw, ph).convert("L")
        init_c.save(os.path.join(OUT, f"fullres_{i}_init.png"))
        mask_c.save(os.path.join(OUT, f"fullres_{i}_cmask.png"))
        result = gen.resize((pw, ph), Image.LANCZOS)
        out = apply_overlay(result, (x1, y1, x2 - x1, y2 - y1), overlay_image(photo, m))
        out.save(os.path.join(OUT, f"fullres_{i}_out.png"))
        cases.append({"padding": pad, "size": [pw, ph], "crop": [x1, y1, x2, y2]})
    with open(os.path.join(OUT, "fullres.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
