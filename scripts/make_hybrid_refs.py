"""Makes the hybrid-video references tests/hybrid.rs measures anim against, and the short clip
its end-to-end render uses.

The composite follows Deforum's `hybrid_composite` as docs/research describes it (written from
that description, not from Deforum's code): the mask (none, depth image, video depth image,
`Image.blend(grey(prev), grey(video), a)`, `ImageChops.difference(grey(prev), grey(video))`),
then invert, `convert("L")`, equalize (before), `ImageEnhance.Contrast`, Deforum's percentile
auto-contrast (numpy `percentile`, clip, stored as Pillow `F`, converted to `L`), equalize
(after), `Image.composite(prev, video, mask)` and `Image.blend(prev, composite, alpha)`; the
video frame resized to the frame with Pillow's LANCZOS.

Inputs are real photographs: crops of tests/data/flow/pairs/ (scikit-image's bundled photos,
made by scripts/make_flow_pairs.py). The clip is a pan across scikit-image's `astronaut` with a
patch of `coffee` sliding the other way, 16 frames of 64x64, H.264 (ffmpeg's libx264).

Run with a venv holding numpy, Pillow, opencv-python-headless and scikit-image
(`python3 -m venv v && v/bin/pip install numpy pillow opencv-python-headless scikit-image`) and
the ffmpeg command: `v/bin/python scripts/make_hybrid_refs.py` writes tests/data/hybrid/;
`... make_hybrid_refs.py motion` writes only the hybrid-motion references (`motion_*`).

Hybrid motion Perspective/Affine follows Deforum's `get_transformation_matrix_from_images` as
docs/research describes it: grey frames, `cv2.SIFT_create()`, `BFMatcher().knnMatch(k=2)`, Lowe's
ratio 0.75, the identity with 8 good matches or fewer, `findHomography(RANSAC, 5.0)` applied with
`warpPerspective(..., BORDER_REFLECT_101)` or `estimateAffinePartial2D` applied with
`warpAffine(..., BORDER_REFLECT_101)`; the video frames are two photo pairs of
tests/data/flow/pairs/ and the warped frame a third photo of the same size.
"""
import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image, ImageChops, ImageEnhance, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
PAIRS = os.path.join(HERE, "..", "tests", "data", "flow", "pairs")
OUT = os.path.join(HERE, "..", "tests", "data", "hybrid")


def crop(name, x, y, w, h):
    return Image.open(os.path.join(PAIRS, name)).convert("RGB").crop((x, y, x + w, y + h))


def autocontrast_grayscale(img, low, high):
    """Deforum's percentile stretch, as described: numpy percentiles, clip, F -> L."""
    a = np.array(img).astype(np.float64)
    lo = np.percentile(a, low)
    hi = np.percentile(a, high)
    a = np.clip(255.0 * (a - lo) / (hi - lo), 0, 255)
    return Image.fromarray(a).convert("L")


def composite(prev, video, case, depth=None):
    """Deforum's hybrid_composite from the research's description; returns (out, mask)."""
    kind = case["mask_type"]
    if kind == "none":
        return Image.blend(prev, video, case["alpha"]), None
    if kind in ("depth", "video depth"):
        mask = depth.convert("RGB")
    elif kind == "blend":
        mask = Image.blend(prev.convert("L"), video.convert("L"), case["blend_alpha"])
    else:
        mask = ImageChops.difference(prev.convert("L"), video.convert("L"))
    if case["inverse"]:
        mask = ImageOps.invert(mask)
    mask = mask.convert("L")
    if case["equalize"] in ("before", "both"):
        mask = ImageOps.equalize(mask)
    mask = ImageEnhance.Contrast(mask).enhance(case["contrast"])
    if case["auto_contrast"]:
        mask = autocontrast_grayscale(mask, int(case["low"]), int(case["high"]))
    if case["equalize"] in ("after", "both"):
        mask = ImageOps.equalize(mask)
    comp = Image.composite(prev, video, mask)
    return Image.blend(prev, comp, case["alpha"]), mask


CASES = [
    dict(name="none", mask_type="none", alpha=0.5),
    dict(name="none_alpha1", mask_type="none", alpha=1.0),
    dict(name="none_extrapolate", mask_type="none", alpha=1.3),
    dict(name="blend", mask_type="blend", blend_alpha=0.5, alpha=0.5),
    dict(name="blend_inverse_eq_both", mask_type="blend", blend_alpha=0.3, alpha=0.8,
         inverse=True, equalize="both"),
    dict(name="difference", mask_type="difference", alpha=1.0),
    dict(name="difference_auto", mask_type="difference", alpha=0.7, auto_contrast=True,
         low=5.7, high=95.2, contrast=1.5),
    dict(name="difference_eq_after", mask_type="difference", alpha=0.6, equalize="after",
         contrast=0.5),
    dict(name="depth", mask_type="depth", alpha=0.9, contrast=2.0),
    dict(name="depth_eq_before_auto", mask_type="depth", alpha=0.5, equalize="before",
         auto_contrast=True, low=0, high=100, inverse=True),
    dict(name="video_depth", mask_type="video depth", alpha=0.75, auto_contrast=True, low=10,
         high=90),
]


def full(case):
    c = dict(blend_alpha=0.5, inverse=False, equalize="none", auto_contrast=False, low=0,
             high=100, contrast=1.0)
    c.update(case)
    return c


def make_clip(path):
    import cv2
    import skimage.data as data

    photo = data.astronaut()  # 512x512 RGB
    patch = cv2.resize(data.coffee()[100:300, 150:350], (24, 24), interpolation=cv2.INTER_AREA)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(16):
            x, y = 180 + 4 * i, 60 + 2 * i
            frame = cv2.resize(photo[y:y + 192, x:x + 192], (64, 64), interpolation=cv2.INTER_AREA)
            px, py = 36 - 2 * i, 20 + i
            frame[py:py + 24, max(px, 0):px + 24] = patch[:, max(-px, 0):]
            cv2.imwrite(os.path.join(tmp, f"{i:03}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-framerate", "8", "-i",
             os.path.join(tmp, "%03d.png"), "-c:v", "libx264", "-preset", "veryslow", "-crf",
             "20", "-pix_fmt", "yuv420p", "-bitexact", path],
            check=True)


def motion_matrix(a, b, kind):
    """Deforum's matrix from frame a (t-1) to frame b (t), both RGB arrays."""
    import cv2

    ga = cv2.cvtColor(cv2.cvtColor(a, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2GRAY)
    gb = cv2.cvtColor(cv2.cvtColor(b, cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2GRAY)
    sift = cv2.SIFT_create()
    k1, d1 = sift.detectAndCompute(ga, None)
    k2, d2 = sift.detectAndCompute(gb, None)
    good = [m for m, n in cv2.BFMatcher().knnMatch(d1, d2, k=2) if m.distance < 0.75 * n.distance]
    if len(good) <= 8:
        return (np.eye(3) if kind == "perspective" else np.eye(2, 3)), len(good)
    src = np.float32([k1[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([k2[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    if kind == "perspective":
        m, _ = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    else:
        m, _ = cv2.estimateAffinePartial2D(src, dst)
    return m, len(good)


def motion_refs():
    """Hybrid motion: cv2's matrix between two video frames applied to a previous frame."""
    import cv2

    def load(name):
        return np.array(Image.open(os.path.join(PAIRS, name)).convert("RGB"))

    refs = {}
    for kind, frames, prev in (("perspective", "homography", "shift_b.png"),
                               ("affine", "rotzoom", "bigshift_a.png")):
        a, b, p = load(f"{frames}_a.png"), load(f"{frames}_b.png"), load(prev)
        m, good = motion_matrix(a, b, kind)
        h, w = p.shape[:2]
        bgr = cv2.cvtColor(p, cv2.COLOR_RGB2BGR)
        if kind == "perspective":
            out = cv2.warpPerspective(bgr, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        else:
            out = cv2.warpAffine(bgr, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        Image.fromarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB)).save(
            os.path.join(OUT, f"motion_{kind}.png"))
        refs[kind] = {"frames": frames, "prev": prev, "good_matches": good,
                      "matrix": np.asarray(m).tolist(), "opencv": cv2.__version__}
    with open(os.path.join(OUT, "motion.json"), "w") as f:
        json.dump(refs, f, indent=1)


def main():
    import sys

    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["motion"]:
        motion_refs()
        return
    motion_refs()
    prev = crop("subject_a.png", 40, 30, 96, 64)
    video_src = crop("subject_b.png", 30, 20, 130, 90)
    video = video_src.resize((96, 64), Image.LANCZOS)
    depth = crop("rotzoom_a.png", 60, 50, 96, 64).convert("L")
    prev.save(os.path.join(OUT, "prev.png"))
    video_src.save(os.path.join(OUT, "video_src.png"))
    depth.save(os.path.join(OUT, "depth.png"))
    # Pillow's LANCZOS: down (130x90 -> 96x64) and up (-> 161x101)
    video.save(os.path.join(OUT, "lanczos_down.png"))
    video_src.resize((161, 101), Image.LANCZOS).save(os.path.join(OUT, "lanczos_up.png"))
    # single operations
    g = prev.convert("L")
    g.save(os.path.join(OUT, "op_gray.png"))
    for a in (0.3, 1.7, -0.4):
        Image.blend(prev, video, a).save(os.path.join(OUT, f"op_blend_{a}.png"))
    for f in (0.5, 2.0):
        ImageEnhance.Contrast(g).enhance(f).save(os.path.join(OUT, f"op_contrast_{f}.png"))
    ImageOps.equalize(g).save(os.path.join(OUT, "op_equalize.png"))
    autocontrast_grayscale(g, 2, 97).save(os.path.join(OUT, "op_autocontrast.png"))
    Image.composite(prev, video, depth).save(os.path.join(OUT, "op_composite.png"))
    cases = []
    for case in CASES:
        c = full(case)
        out, mask = composite(prev, video, c, depth)
        out.save(os.path.join(OUT, f"comp_{c['name']}.png"))
        if mask is not None:
            mask.save(os.path.join(OUT, f"mask_{c['name']}.png"))
        cases.append(c)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    make_clip(os.path.join(OUT, "clip.mp4"))


if __name__ == "__main__":
    main()
