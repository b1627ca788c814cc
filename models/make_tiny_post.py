#!/usr/bin/env python3
"""Tiny random-weight post-pass models (frame interpolation, upscaling) and the references
anim's tests (tests/post.rs) compare against.

Models, each a few convolutions with the IO contract anim's loader accepts (docs/post.md):

  models/tiny-rife/model.onnx   RIFE style: img0, img1 float32 [1, 3, H, W] RGB in [0, 1],
                                timestep float32 [1, 1, H, W] (a plane of t) -> [1, 3, H, W]
  models/tiny-film/model.onnx   FILM style: x0, x1 float32 [1, 3, H, W], time float32 [1, 1]
                                -> image [1, 3, H, W]
  models/tiny-esrgan/model.onnx Real-ESRGAN style (SRVGGNetCompact shape): input float32
                                [1, 3, H, W] RGB in [0, 1] -> [1, 3, 4H, 4W] (conv body,
                                PixelShuffle, plus the nearest-upsampled input)

References (tests/data/post/), from the committed frames tests/data/post/frames/*.png:

  rife_x3/NNNNNN.png      Deforum's RIFE order for x_amount 3: frame i, then t = 1/3, 2/3,
                          ..., frame i+1 last; frames zero-padded right/bottom to a multiple
                          of 128, outputs cropped, (v * 255) truncated to u8
  film_x2/NNNNNN.png      FILM with Deforum's count k = round((N*x - N)/(N - 1)) per pair and
                          its recursive order (the in-between nearest 0.5 of its current
                          neighbours first, float results kept), centred zero padding to 64,
                          outputs clamped and truncated
  esrgan_x4/000000.png    frame 0 upscaled untiled, clamp [0, 1], *255 rounded
  expected.srt            Deforum's subtitle cues and decimal timing for tests/post.rs's scene

All runs use onnxruntime on CPU (the same ONNX files anim loads). Same versions + same seed =>
identical files.

Environment (Python 3.11): python3 -m venv VENV && VENV/bin/pip install torch==2.15.0
onnx==1.23.2 onnxruntime==1.32.0 numpy pillow

Usage:  VENV/bin/python models/make_tiny_post.py
"""
from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "post"


class TinyRife(nn.Module):
    """Two frames and a timestep plane -> a blend weighted by a learned mask, plus a residual."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(7, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1)

    def merge(self, a, b, t_plane):
        x = torch.relu(self.c1(torch.cat([a, b, t_plane], 1)))
        x = self.c2(x)
        m = torch.sigmoid(x[:, 3:4] + 4.0 * (0.5 - t_plane))
        return torch.clamp(m * a + (1 - m) * b + 0.1 * torch.tanh(x[:, :3]), 0.0, 1.0)

    def forward(self, img0, img1, timestep):
        return self.merge(img0, img1, timestep)


class TinyFilm(nn.Module):
    def __init__(self, rife: TinyRife):
        super().__init__()
        self.rife = rife

    def forward(self, x0, x1, time):
        plane = time.view(-1, 1, 1, 1).expand(-1, 1, x0.shape[2], x0.shape[3])
        return self.rife.merge(x0, x1, plane)


class TinyEsrgan(nn.Module):
    """SRVGGNetCompact's shape at toy size: conv, PReLU, conv, PixelShuffle(4) + nearest input."""

    def __init__(self, scale=4):
        super().__init__()
        self.scale = scale
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.PReLU(8)
        self.c2 = nn.Conv2d(8, 3 * scale * scale, 3, padding=1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        y = self.up(self.c2(self.act(self.c1(x))))
        return y + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


def export(model, args, names, outs, dyn, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, args, str(path), input_names=names, output_names=outs,
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    print(f"{path}: {path.stat().st_size} bytes")


def frames():
    """Three 70x46 frames (even, for H.264; not multiples of 64): a moving disc and bars on a
    gradient."""
    h, w = 46, 70
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(3):
        r = 60 + 120 * x / w
        g = 40 + 150 * y / h
        b = 128 + 100 * np.sin((x + 7 * i) / 6.0)
        disc = (x - 20 - 12 * i) ** 2 + (y - 22 + 3 * i) ** 2 < 100
        r = np.where(disc, 250, r)
        g = np.where(disc, 220 - 30 * i, g)
        bars = ((x.astype(int) + 3 * i) // 5) % 4 == 0
        b = np.where(bars & (y > 30), 20, b)
        img = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
        out.append(img)
    return out


def to_t(img):
    return img.astype(np.float32).transpose(2, 0, 1)[None] / 255.0


def save(img: np.ndarray, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def pad_rb(a, m):
    h, w = a.shape[2:]
    ph, pw = (m - h % m) % m, (m - w % m) % m
    return np.pad(a, ((0, 0), (0, 0), (0, ph), (0, pw)))


def rife_ref(sess, imgs, x):
    h, w = imgs[0].shape[:2]
    out = []
    for a, b in zip(imgs, imgs[1:]):
        out.append(a)
        p0, p1 = pad_rb(to_t(a), 128), pad_rb(to_t(b), 128)
        for i in range(x - 1):
            t = np.float32((i + 1) / x)
            plane = np.full((1, 1) + p0.shape[2:], t, np.float32)
            y = sess.run(None, {"img0": p0, "img1": p1, "timestep": plane})[0]
            out.append((y[0, :, :h, :w].transpose(1, 2, 0) * 255).astype(np.uint8))
    out.append(imgs[-1])
    return out


def pad_centre(a, m):
    h, w = a.shape[2:]
    ph, pw = (m - h % m) % m, (m - w % m) % m
    return np.pad(a, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))), (ph // 2, pw // 2)


def film_ref(sess, imgs, x):
    n = len(imgs)
    k = round((n * x - n) / (n - 1))
    h, w = imgs[0].shape[:2]
    out = []
    splits = np.linspace(0, 1, k + 2)
    for a, b in zip(imgs, imgs[1:]):
        (p0, (top, left)), (p1, _) = pad_centre(to_t(a), 64), pad_centre(to_t(b), 64)
        results, idxes, remains = [p0, p1], [0, k + 1], list(range(1, k + 1))
        while remains:
            best = None
            for s in range(len(idxes) - 1):
                st, en = splits[idxes[s]], splits[idxes[s + 1]]
                for j, r in enumerate(remains):
                    d = abs((splits[r] - st) / (en - st) - 0.5)
                    if best is None or d < best[0]:
                        best = (d, s, j)
            _, s, j = best
            r = remains[j]
            st, en = splits[idxes[s]], splits[idxes[s + 1]]
            dt = np.array([[(splits[r] - st) / (en - st)]], np.float32)
            y = sess.run(None, {"x0": results[s], "x1": results[s + 1], "time": dt})[0]
            pos = bisect.bisect_left(idxes, r)
            idxes.insert(pos, r)
            results.insert(pos, np.clip(y, 0, 1))
            del remains[j]
        out.append(a)
        for y in results[1:-1]:
            out.append((y[0, :, top:top + h, left:left + w].transpose(1, 2, 0) * 255).astype(np.uint8))
    out.append(imgs[-1])
    return out


def esrgan_ref(sess, imgs):
    out = []
    for a in imgs:
        y = sess.run(None, {"input": to_t(a)})[0]
        out.append((np.clip(y[0], 0, 1).transpose(1, 2, 0) * 255.0).round().astype(np.uint8))
    return out


def main():
    torch.manual_seed(0)
    rife = TinyRife().eval()
    film = TinyFilm(rife).eval()
    esrgan = TinyEsrgan(4).eval()
    img = torch.zeros(1, 3, 32, 48)
    hw = {2: "height", 3: "width"}
    export(rife, (img, img, torch.zeros(1, 1, 32, 48)), ["img0", "img1", "timestep"], ["output"],
           {"img0": hw, "img1": hw, "timestep": hw, "output": hw}, ROOT / "models/tiny-rife/model.onnx")
    export(film, (img, img, torch.zeros(1, 1)), ["x0", "x1", "time"], ["image"],
           {"x0": hw, "x1": hw, "image": hw}, ROOT / "models/tiny-film/model.onnx")
    export(esrgan, (img,), ["input"], ["output"], {"input": hw, "output": {2: "h4", 3: "w4"}},
           ROOT / "models/tiny-esrgan/model.onnx")

    imgs = frames()
    for i, f in enumerate(imgs):
        save(f, DATA / "frames" / f"{i:06}.png")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    load = lambda p: ort.InferenceSession(str(ROOT / p), opts, providers=["CPUExecutionProvider"])
    for name, out in [
        ("rife_x3", rife_ref(load("models/tiny-rife/model.onnx"), imgs, 3)),
        ("film_x2", film_ref(load("models/tiny-film/model.onnx"), imgs, 2)),
        ("esrgan_x4", esrgan_ref(load("models/tiny-esrgan/model.onnx"), imgs[:1])),
    ]:
        for i, f in enumerate(out):
            save(f, DATA / name / f"{i:06}.png")
        print(f"{name}: {len(out)} frames")
    srt_reference(DATA / "expected.srt")




def srt_reference(path: Path):
    """tests/data/post/expected.srt: Deforum's cue format and decimal timing (precision 20,
    milliseconds truncated) for the scene of tests/post.rs `post_command_writes_videos_and_srt`:
    3 frames at 30 fps, seeds 7, 8, 9, no cadence, params Angle (0:(0), 2:(1)), Zoom (1.0025)
    and Prompt."""
    from decimal import Decimal, getcontext

    getcontext().prec = 20
    d = Decimal(1) / Decimal(30)

    def stamp(t):
        h, rest = divmod(t, 3600)
        m, rest = divmod(rest, 60)
        s, frac = divmod(rest, 1)
        return f"{int(h):02}:{int(m):02}:{int(s):02},{int(frac * 1000):03}"

    def fmt(v):
        return str(int(v)) if v == int(v) else f"{v:.3f}"

    out = ""
    for n in range(3):
        params = f"Angle: {fmt(0.5 * n)}; Zoom: {fmt(1.0025)}; Prompt: a red fox --neg blurry"
        out += f"{n + 1}\n{stamp(Decimal(n) * d)} --> {stamp((Decimal(n) + Decimal(1)) * d)}\n"
        out += f"F#: {n}; Cadence: false; Seed: {7 + n}; {params}\n\n"
    path.write_text(out)


def stamps_29_97():
    """Start times of a few frames at 29.97 fps (Decimal(float), as Deforum), for the unit test."""
    from decimal import Decimal, getcontext

    getcontext().prec = 20
    d = Decimal(1) / Decimal(29.97)
    return [(n, Decimal(n) * d) for n in (1, 2, 3, 1000, 107892)]


if __name__ == "__main__":
    main()
