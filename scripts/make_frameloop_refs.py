#!/usr/bin/env python3
"""Generate reference data for anim's per-frame loop helpers (Deforum parity).

Covers colour coherence, grayscale forcing, contrast, anti-blur (unsharp
mask), frame noise, seed behaviours and cadence in-betweening.  The numbers
come from *running Deforum's own functions*: the Deforum files are loaded at
run time from the folder given with ``--deforum DIR`` (a flat folder holding
``colors.py``, ``image_sharpening.py``, ``noise.py``, ``animation.py``,
``seed.py`` and ``render.py`` from ``scripts/deforum_helpers/`` of
sd-webui-deforum).  No Deforum code is part of this repository (Deforum is
AGPL); the A1111 WebUI modules Deforum imports (``modules.shared`` ...) are
replaced by small stubs in ``sys.modules``.

Writes into ``--out`` (default ``<repo>/tests/data/frameloop``); see the
README.md there for the list of files and their exact meaning.  In short:

* colour coherence: ``colors.maintain_colors`` in LAB / HSV / RGB, once with
  BGR arrays exactly as Deforum calls it (``color_<mode>_deforum.png``) and
  once with true RGB arrays (``color_<mode>_rgb.png``); for HSV also the
  position-independent ``*_scalar.png`` variants (OpenCV's 8-bit HSV2RGB
  SIMD path differs by 1 from its scalar path); ``gray.png`` and
  ``gray_pil.png`` are Deforum's two ``color_force_grayscale`` conversions.
* contrast: ``(img * c).round().astype(np.uint8)`` (wraps) and a clipped
  variant.
* anti-blur: ``image_sharpening.unsharp_mask`` plus a variant with the
  threshold test done in signed arithmetic; ``gaussian_kernels.json``.
* noise: ``noise.add_noise`` with Deforum's own seeded CPU generator, with the
  intermediate tensors (``*.npy``, float32, seed 42 only to keep the folder
  small; every stage of every case also gets a sha256 in
  ``noise_cases.json``).
* ``seeds.json``: ``seed.next_seed`` sequences.
* ``cadence.json``: the real ``render.render_animation`` loop run with every
  heavy dependency stubbed, recording which frame indices are written, with
  which tween weight and from which diffused frames.

Everything is deterministic (single-threaded torch/OpenCV, fixed seeds); run
it twice and compare sha256 sums.

Regenerate (from the repo root)::

    python scripts/make_frameloop_refs.py --deforum /work/deforum-src

with a Python that has torch, numpy, opencv-python-headless, scikit-image and
Pillow (see tests/data/frameloop/README.md for the exact versions used).
``einops`` is used when installed; otherwise an equivalent shim for the one
pattern Deforum's ``sample_to_cv2`` uses (``"c h w -> h w c"``) is installed
and the fact is recorded in ``noise_cases.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import platform
import sys
import tempfile
import types
import warnings
from pathlib import Path

import cv2
import numpy as np
import PIL
import skimage
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "data" / "frameloop"
BASE_IMAGE = REPO / "tests" / "data" / "warp2d" / "input.png"

DEFORUM_FILES = ["colors.py", "image_sharpening.py", "noise.py", "animation.py",
                 "seed.py", "render.py"]

COLOR_MODES = ["LAB", "HSV", "RGB"]
CONTRASTS = [0.7, 1.3]
# (kernel, sigma, amount, threshold)
UNSHARP_CASES = [(5, 1.0, 0.1, 0), (5, 1.0, 0.8, 0), (3, 0.5, 0.5, 0),
                 (9, 2.0, 1.0, 0), (5, 1.0, 0.5, 10)]
NOISE_TYPES = ["uniform", "perlin"]
NOISE_AMTS = [0.065, 0.3]
NOISE_SEEDS = [42, 1234]
NOISE_SIZES = [(128, 64), (96, 64)]  # (W, H)
# Deforum defaults (args.py): perlin_w = perlin_h = 8, octaves 4, persistence
# 0.5; render.py passes (perlin_w, perlin_h, perlin_octaves, perlin_persistence).
PERLIN_ARGS = (8, 8, 4, 0.5)
NOISE_TENSOR_SEED = 42  # .npy files only for this seed (size budget)
SEED_START = 100
SEED_CALLS = 12
CADENCE_CASES = [(c, m) for m in (10, 13) for c in (1, 2, 3, 4)]


# --------------------------------------------------------------------------
# image helpers (files are RGB, Deforum works on OpenCV BGR arrays)

def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, (rgb.dtype, rgb.shape)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"cannot write {path}")


def rgb2bgr(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2BGR)


def bgr2rgb(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2RGB)


def _dumps(obj, depth: int, level: int = 0) -> str:
    """JSON, indented for the first `depth` levels, one line below that."""
    if (level >= depth or not isinstance(obj, (dict, list)) or not obj
            or (isinstance(obj, list) and not any(isinstance(v, (dict, list)) for v in obj))):
        return json.dumps(obj)
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, depth, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + _dumps(v, depth, level + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def write_json(path: Path, obj, depth: int = 99) -> None:
    path.write_text(_dumps(obj, depth) + "\n")


def save_f32(path: Path, t) -> None:
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    assert a.dtype == np.float32, a.dtype
    np.save(path, np.ascontiguousarray(a))


def f32_summary(t) -> dict:
    """shape, sha256 of the C-order little-endian float32 bytes, float64 sum, first values."""
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    assert a.dtype == np.float32, a.dtype
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
            "sum_f64": float(a.astype(np.float64).sum()),
            "first": [float(v) for v in a.reshape(-1)[:4]]}


def half_even_vs_half_up(x: np.ndarray) -> int:
    """How many values np.round (ties to even) rounds differently from floor(x + 0.5)."""
    return int((np.round(x) != np.floor(x + 0.5)).sum())


# --------------------------------------------------------------------------
# loading Deforum's files with the WebUI stubbed out

class _State:
    """Stand-in for modules.shared.state."""

    def __init__(self):
        self.skipped = False
        self.interrupted = False
        self.job = ""
        self.job_no = 0
        self.job_count = 0

    def assign_current_image(self, image):
        pass


def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


class _EinopsShim:
    """Only what Deforum's sample_to_cv2 uses: rearrange(x, "c h w -> h w c")."""

    @staticmethod
    def rearrange(x, pattern):
        if pattern.replace(" ", "") != "chw->hwc":
            raise NotImplementedError(pattern)
        return np.transpose(x, (1, 2, 0))


EINOPS = "einops"


def install_global_stubs() -> None:
    global EINOPS
    shared = _module("modules.shared",
                     opts=types.SimpleNamespace(data={}),
                     cmd_opts=types.SimpleNamespace(lowvram=False, medvram=False),
                     state=_State(), sd_model=None)
    subs = {
        "shared": shared,
        "lowvram": _module("modules.lowvram"),
        "devices": _module("modules.devices", torch_gc=lambda: None),
        "sd_hijack": _module("modules.sd_hijack"),
        "modelloader": _module("modules.modelloader", load_file_from_url=None),
    }
    modules_pkg = _module("modules")
    modules_pkg.__path__ = []
    sys.modules["modules"] = modules_pkg
    for k, v in subs.items():
        sys.modules[f"modules.{k}"] = v
        setattr(modules_pkg, k, v)

    class JobStatusTracker:
        def update_phase(self, *a, **k):
            pass

    sys.modules["deforum_api"] = _module("deforum_api", JobStatusTracker=JobStatusTracker)
    # 3D helpers (only used by the 3D warp, never here)
    sys.modules["py3d_tools"] = _module("py3d_tools")
    try:  # colors.py imports it without using it
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules["pkg_resources"] = _module("pkg_resources")
    try:
        import einops  # noqa: F401
        EINOPS = f"einops {einops.__version__}"
    except ImportError:
        sys.modules["einops"] = _module("einops", rearrange=_EinopsShim.rearrange)
        EINOPS = "shim (einops not installed): rearrange 'c h w -> h w c' == np.transpose(x, (1, 2, 0))"


def make_package(pkg: str, folder: Path, stubs: dict[str, dict]) -> None:
    """A package whose real submodules come from `folder`, others from stubs."""
    p = types.ModuleType(pkg)
    p.__path__ = [str(folder)]
    p.__package__ = pkg
    sys.modules[pkg] = p
    for sub, attrs in stubs.items():
        m = _module(f"{pkg}.{sub}", **attrs)
        sys.modules[f"{pkg}.{sub}"] = m
        setattr(p, sub, m)


def load(pkg: str, name: str) -> types.ModuleType:
    return importlib.import_module(f"{pkg}.{name}")


# --------------------------------------------------------------------------
# 1. colour coherence and grayscale

def make_color_ref(src_rgb: np.ndarray) -> np.ndarray:
    """Colour sample: src mirrored left-right, channels rotated (R'=G, G'=B, B'=R,
    a hue shift of about 120 degrees) and darkened/lifted: v' = (85*v + 2050) // 100
    (= round(0.85*v + 20)).  Integer numpy only, so it does not depend on the
    OpenCV version."""
    mirrored = src_rgb[:, ::-1][..., [1, 2, 0]].astype(np.int32)
    return np.ascontiguousarray((85 * mirrored + 2050) // 100).astype(np.uint8)


def case_colour(colors, src_rgb, out: Path, meta: dict) -> None:
    ref_rgb = make_color_ref(src_rgb)
    write_rgb(out / "color_src.png", src_rgb)
    write_rgb(out / "color_ref.png", ref_rgb)
    info = {}
    for mode in COLOR_MODES:
        # (a) as render.py calls it: prev_img and color_match_sample are BGR
        res_bgr = colors.maintain_colors(rgb2bgr(src_rgb), rgb2bgr(ref_rgb), mode)
        # (b) the same function fed true RGB arrays
        res_rgb = colors.maintain_colors(src_rgb.copy(), ref_rgb.copy(), mode)
        for tag, res, conv in (("deforum", res_bgr, bgr2rgb), ("rgb", res_rgb, lambda a: a)):
            assert res.dtype == np.uint8, (mode, tag, res.dtype)
            write_rgb(out / f"color_{mode}_{tag}.png", conv(res))
        a, b = bgr2rgb(res_bgr).astype(int), res_rgb.astype(int)
        info[mode] = {
            "files": {"deforum": f"color_{mode}_deforum.png", "rgb": f"color_{mode}_rgb.png"},
            "returned_dtype": str(res_bgr.dtype),
            "deforum_vs_rgb_max_abs_diff": int(np.abs(a - b).max()),
            "deforum_vs_rgb_differing_values": int((a != b).sum()),
        }
        # The same call on the image reshaped to one pixel per row: histogram
        # matching ignores the shape, but cv2.cvtColor then takes its scalar
        # (non-SIMD) path for every pixel.  OpenCV's 8-bit HSV2RGB SIMD and
        # scalar paths differ by 1, and how many columns of a row go through
        # SIMD depends on the OpenCV version/CPU, so the column files are the
        # position-independent variant.
        h, w = src_rgb.shape[:2]
        col = lambda x: np.ascontiguousarray(x).reshape(h * w, 1, 3)  # noqa: E731
        s_bgr = colors.maintain_colors(col(rgb2bgr(src_rgb)), col(rgb2bgr(ref_rgb)), mode).reshape(h, w, 3)
        s_rgb = colors.maintain_colors(col(src_rgb), col(ref_rgb), mode).reshape(h, w, 3)
        for tag, full, sc in (("deforum", res_bgr, s_bgr), ("rgb", res_rgb, s_rgb)):
            d = np.abs(full.astype(int) - sc.astype(int))
            info[mode][f"{tag}_vs_scalar_path_max_abs_diff"] = int(d.max())
            info[mode][f"{tag}_vs_scalar_path_differing_values"] = int((d > 0).sum())
            if d.max() > 0:
                conv = bgr2rgb if tag == "deforum" else (lambda x: x)
                write_rgb(out / f"color_{mode}_{tag}_scalar.png", conv(sc))
                info[mode]["files"][f"{tag}_scalar"] = f"color_{mode}_{tag}_scalar.png"
    # color_force_grayscale, as render.py does it on prev_img and cadence frames
    # (BGR array): cvtColor(BGR2GRAY) then cvtColor(GRAY2BGR)
    g = cv2.cvtColor(rgb2bgr(src_rgb), cv2.COLOR_BGR2GRAY)
    gray_bgr = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    write_rgb(out / "gray.png", bgr2rgb(gray_bgr))
    # ... and on the generated frame (PIL RGB image):
    # ImageOps.grayscale(image) then ImageOps.colorize(image, black="black", white="white")
    from PIL import ImageOps
    pil_g = ImageOps.colorize(ImageOps.grayscale(Image.fromarray(src_rgb)), black="black", white="white")
    gray_pil = np.asarray(pil_g.convert("RGB"))
    write_rgb(out / "gray_pil.png", gray_pil)
    meta["colour"] = {
        "src": "color_src.png", "ref": "color_ref.png", "modes": info,
        "gray": {"file": "gray.png", "how": "cv2.cvtColor(bgr, COLOR_BGR2GRAY) -> cv2.cvtColor(gray, COLOR_GRAY2BGR)"},
        "gray_pil": {"file": "gray_pil.png",
                     "how": "PIL ImageOps.grayscale(rgb) -> ImageOps.colorize(black='black', white='white')"},
        "gray_vs_gray_pil_differing_pixels": int((gray_bgr[..., 0] != gray_pil[..., 0]).sum()),
        "gray_vs_gray_pil_max_abs_diff": int(np.abs(gray_bgr[..., 0].astype(int) - gray_pil[..., 0].astype(int)).max()),
    }


# --------------------------------------------------------------------------
# 2. contrast

def case_contrast(src_rgb, out: Path, meta: dict) -> None:
    prev_img = rgb2bgr(src_rgb)
    info = {}
    for c in CONTRASTS:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            wrapped = (prev_img * c).round().astype(np.uint8)  # render.py's expression
        scaled = prev_img * c
        clipped = np.clip(scaled.round(), 0, 255).astype(np.uint8)
        write_rgb(out / f"contrast_{c}.png", bgr2rgb(wrapped))
        write_rgb(out / f"contrast_{c}_clipped.png", bgr2rgb(clipped))
        frac = scaled - np.floor(scaled)
        info[str(c)] = {
            "files": {"deforum": f"contrast_{c}.png", "clipped": f"contrast_{c}_clipped.png"},
            "values_over_255": int((scaled.round() > 255).sum()),
            "exact_half_ties": int((frac == 0.5).sum()),
            "half_even_vs_half_up_differing_values": half_even_vs_half_up(scaled),
            "numpy_warnings": sorted({str(x.message) for x in w}),
        }
    meta["contrast"] = info


# --------------------------------------------------------------------------
# 3. anti-blur

def blur_fixed_point_emulation(img: np.ndarray, k: int, sigma: float):
    """Integer model of OpenCV's bit-exact 8U GaussianBlur (ufixedpoint16 kernel,
    8 fraction bits, error-diffused rounding, BORDER_REFLECT_101).  Returned with
    the integer kernel so the json can record it; checked against cv2 below."""
    n2 = k // 2
    x = np.arange(k) - n2
    vals = np.exp(-(x.astype(np.float64) ** 2) / (2 * sigma * sigma))
    kern = vals / vals.sum()
    ik = np.zeros(k, np.int64)
    err, s = 0.0, 0
    for i in range(n2):
        adj = kern[i] * 256 + err
        v0 = int(np.floor(adj + 0.5))
        err = adj - v0
        ik[i] = ik[k - 1 - i] = v0
        s += v0
    ik[n2] = 256 - 2 * s
    pad = np.pad(img.astype(np.int64), ((n2, n2), (n2, n2), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    rows = sum(ik[j] * pad[:, j:j + w] for j in range(k))          # 8.8 fixed point
    full = sum(ik[i] * rows[i:i + h] for i in range(k))              # 16.16
    return ((full + (1 << 15)) >> 16).clip(0, 255).astype(np.uint8), [int(v) for v in ik]


def case_unsharp(sharp, src_rgb, out: Path, meta: dict) -> None:
    img = rgb2bgr(src_rgb)
    kernels, cases, blurs = {}, [], {}
    for k, sigma, amount, threshold in UNSHARP_CASES:
        name = f"unsharp_k{k}_s{sigma}_a{amount}_t{threshold}"
        res = sharp.unsharp_mask(img.copy(), (k, k), sigma, amount, threshold)
        assert res.dtype == np.uint8
        write_rgb(out / f"{name}.png", bgr2rgb(res))
        entry = {"name": name, "file": f"{name}.png", "kernel": k, "sigma": sigma,
                 "amount": amount, "threshold": threshold}
        blurred = cv2.GaussianBlur(img, (k, k), sigma)
        pre = np.clip(float(amount + 1) * img - float(amount) * blurred, 0, 255)
        entry["half_even_vs_half_up_differing_values"] = half_even_vs_half_up(pre)
        key = f"k{k}_s{sigma}"
        if key not in blurs:
            blurs[key] = blurred
            write_rgb(out / f"blur_{key}.png", bgr2rgb(blurred))
            emu, ik = blur_fixed_point_emulation(img, k, sigma)
            g = cv2.getGaussianKernel(k, sigma)  # CV_64F
            # float model: separable blur with the float64 kernel, round half up
            pad = np.pad(img.astype(np.float64), ((k // 2,) * 2, (k // 2,) * 2, (0, 0)), mode="reflect")
            gv = g[:, 0]
            h, w = img.shape[:2]
            rows = sum(gv[j] * pad[:, j:j + w] for j in range(k))
            flt = np.floor(sum(gv[i] * rows[i:i + h] for i in range(k)) + 0.5).astype(np.int64)
            kernels[key] = {
                "ksize": k, "sigma": sigma,
                "getGaussianKernel_float64": [float(v) for v in g[:, 0]],
                "fixed_point_u8_kernel_x256": ik,
                "blurred_file": f"blur_{key}.png",
                "fixed_point_model_max_abs_diff_vs_cv2": int(np.abs(emu.astype(int) - blurred.astype(int)).max()),
                "float_model_max_abs_diff_vs_cv2": int(np.abs(flt - blurred.astype(int)).max()),
                "float_model_differing_values": int((flt != blurred.astype(int)).sum()),
            }
        if threshold > 0:
            # Deforum: np.absolute(img - blurred) < threshold on uint8 (wraps).
            # Signed variant: the same unsharp result, then copy img where
            # |int(img) - int(blurred)| < threshold.
            signed = sharp.unsharp_mask(img.copy(), (k, k), sigma, amount, 0)
            low = np.abs(img.astype(np.int16) - blurred.astype(np.int16)) < threshold
            np.copyto(signed, img, where=low)
            write_rgb(out / f"{name}_signed.png", bgr2rgb(signed))
            wrapped_low = np.absolute(img - blurred) < threshold
            entry["signed_file"] = f"{name}_signed.png"
            entry["low_contrast_values_deforum_uint8"] = int(wrapped_low.sum())
            entry["low_contrast_values_signed"] = int(low.sum())
            entry["deforum_vs_signed_differing_values"] = int((res != signed).sum())
        cases.append(entry)
    write_json(out / "gaussian_kernels.json", {
        "note": "cv2.getGaussianKernel(k, sigma) (CV_64F) for every (k, sigma) used, and the "
                "integer kernel (sum 256) that OpenCV's bit-exact CV_8U GaussianBlur uses; "
                "blur = (sum_i k_i * sum_j k_j * p[y+i-r][x+j-r] + 2^15) >> 16 with BORDER_REFLECT_101.",
        "kernels": kernels,
    })
    meta["unsharp"] = {"input": "color_src.png", "cases": cases,
                       "kernels_file": "gaussian_kernels.json"}


# --------------------------------------------------------------------------
# 4. noise

class _GenProxy:
    """Wraps Deforum's module-level torch.Generator to log manual_seed."""

    def __init__(self, gen, log):
        self._gen, self._log = gen, log

    def manual_seed(self, seed):
        self._log.append({"call": "generator.manual_seed", "seed": int(seed)})
        self._gen.manual_seed(seed)
        return self

    def __getattr__(self, name):
        return getattr(self._gen, name)


class _TorchProxy:
    """Stands in for `torch` inside noise.py; logs every call that draws from a
    generator (result shape and dtype) and keeps the drawn tensors."""

    def __init__(self, log, draws):
        self._log, self._draws = log, draws

    def __getattr__(self, name):
        attr = getattr(torch, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def call(*a, **k):
            g = k.get("generator")
            if isinstance(g, _GenProxy):
                k["generator"] = g._gen
            r = attr(*a, **k)
            if g is not None:
                self._log.append({"call": f"torch.{name}", "shape": list(r.shape),
                                  "dtype": str(r.dtype).replace("torch.", "")})
                self._draws.append((name, r.clone()))
            return r
        return call


def interpolate_index_maps(src_hw, dst_hw) -> dict:
    """Source row / column picked by torch's default (nearest) interpolate for every
    destination row / column, found by interpolating index ramps."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    from torch.nn.functional import interpolate
    ramp_r = torch.arange(sh, dtype=torch.float32).view(1, 1, sh, 1).expand(1, 1, sh, sw)
    ramp_c = torch.arange(sw, dtype=torch.float32).view(1, 1, 1, sw).expand(1, 1, sh, sw)
    rows = interpolate(ramp_r.contiguous(), size=(dh, dw))[0, 0, :, 0]
    cols = interpolate(ramp_c.contiguous(), size=(dh, dw))[0, 0, 0, :]
    return {"rows": [int(v) for v in rows], "cols": [int(v) for v in cols]}


def case_noise(noise_mod, src_rgb, out: Path, meta: dict) -> None:
    orig_octaves = noise_mod.rand_perlin_2d_octaves
    orig_s2c = noise_mod.sample_to_cv2
    real_gen = noise_mod.deforum_noise_gen
    inputs = {(96, 64): ("color_src.png", src_rgb)}
    big = cv2.resize(src_rgb, (128, 64), interpolation=cv2.INTER_LINEAR)
    write_rgb(out / "noise_input_128x64.png", big)
    inputs[(128, 64)] = ("noise_input_128x64.png", big)
    stage_data: dict[str, np.ndarray] = {}  # stage key -> tensor (checked identical across cases)

    def stage(key, t, save):
        a = t.detach().cpu().numpy().copy() if isinstance(t, torch.Tensor) else np.asarray(t).copy()
        if key in stage_data:
            assert np.array_equal(stage_data[key], a), key  # same seed+size -> same tensor
        else:
            stage_data[key] = a
            if save:
                save_f32(out / f"{key}.npy", a)
        info = f32_summary(a)
        if save:
            info["file"] = f"{key}.npy"
        return info

    cases, extra_notes = [], []
    for (W, H) in NOISE_SIZES:
        in_file, rgb = inputs[(W, H)]
        for seed in NOISE_SEEDS:
            keep = seed == NOISE_TENSOR_SEED
            for ntype in NOISE_TYPES:
                for amt in NOISE_AMTS:
                    name = f"noise_{ntype}_a{amt}_s{seed}_{W}x{H}"
                    log, draws, stages = [], [], {}

                    def octaves(*a, **k):
                        r = orig_octaves(*a, **k)
                        stages["perlin"] = r.clone()
                        return r

                    def s2c(sample, *a, **k):
                        stages["noise"] = sample.clone()
                        r = orig_s2c(sample, *a, **k)
                        stages["noise_u8"] = r.copy()
                        return r

                    noise_mod.torch = _TorchProxy(log, draws)
                    noise_mod.deforum_noise_gen = _GenProxy(real_gen, log)
                    noise_mod.rand_perlin_2d_octaves = octaves
                    noise_mod.sample_to_cv2 = s2c
                    fh, fw = H - H % 64, W - W % 64
                    entry = {"name": name, "noise_type": ntype, "noise_amt": amt, "seed": seed,
                             "width": W, "height": H, "input": in_file,
                             "noise_args": list(PERLIN_ARGS), "floored_hw": [fh, fw]}
                    try:
                        res = noise_mod.add_noise(rgb2bgr(rgb), amt, seed, ntype, PERLIN_ARGS, None, False)
                        write_rgb(out / f"{name}.png", bgr2rgb(res))
                        entry["file"] = f"{name}.png"
                    except Exception as e:  # noqa: BLE001 -- recorded, not hidden
                        entry["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"
                    finally:
                        noise_mod.torch = torch
                        noise_mod.deforum_noise_gen = real_gen
                        noise_mod.rand_perlin_2d_octaves = orig_octaves
                        noise_mod.sample_to_cv2 = orig_s2c
                    entry["generator_calls"] = log
                    assert draws and draws[0][0] == "randn"
                    t = {"randn": stage(f"noise_s{seed}_{W}x{H}_randn", draws[0][1], keep)}
                    if ntype == "perlin":
                        assert [d[0] for d in draws[1:]] == ["rand"] * int(PERLIN_ARGS[2])
                        flat = torch.cat([d[1].reshape(-1) for d in draws[1:]])
                        t["rand"] = stage(f"noise_s{seed}_{W}x{H}_rand", flat, keep)
                        t["rand"]["parts"] = [list(d[1].shape) for d in draws[1:]]
                        t["perlin"] = stage(f"noise_s{seed}_{W}x{H}_perlin", stages["perlin"], keep)
                        # exactly randn * ((perlin + 1) / 2) resized (nearest): only its hash is kept
                        t["noise"] = stage(f"noise_perlin_s{seed}_{W}x{H}_noise", stages["noise"], False)
                        entry["interpolate_nearest"] = {"from_hw": [fh, fw], "to_hw": [H, W],
                                                        **interpolate_index_maps((fh, fw), (H, W))}
                    else:
                        assert torch.equal(stages["noise"], draws[0][1])
                        t["noise"] = "same as randn"
                    entry["noise_u8_hwc_shape"] = list(stages["noise_u8"].shape)
                    entry["tensors"] = t
                    cases.append(entry)
    for seed in NOISE_SEEDS:
        a = stage_data[f"noise_s{seed}_128x64_randn"].reshape(-1)
        b = stage_data[f"noise_s{seed}_96x64_randn"].reshape(-1)
        extra_notes.append(f"seed {seed}: the 96x64 randn draw (3x64x64) "
                           f"{'equals' if np.array_equal(a[:b.size], b) else 'does NOT equal'} the first "
                           f"{b.size} values of the 128x64 draw (3x64x128), flattened")
    write_json(out / "noise_cases.json", {
        "function": "noise.py::add_noise(sample_bgr, noise_amt, seed, noise_type, "
                    "(perlin_w, perlin_h, perlin_octaves, perlin_persistence), None, False)",
        "torch_version": torch.__version__,
        "einops": EINOPS,
        "generator": "module-level torch.Generator(device='cpu') (mt19937), re-seeded with "
                     "manual_seed(seed) at the start of every add_noise call",
        "notes": [
            "sample is an OpenCV BGR uint8 array (H, W, 3); sample.shape[0] is H although noise.py calls it perlin_w",
            "generator_calls: every call that draws from the generator, in order, as observed",
            "randn shape is (C, H - H % 64, W - W % 64), float32",
            "perlin: one torch.rand(res0*f + 1, res1*f + 1) per octave, f = 1, 2, 4, 8 (angles = 2*pi*rand); "
            "tensors.rand is those draws flattened and concatenated in call order (parts = shapes); "
            "perlin field = rand_perlin_2d_octaves(floored_hw, (8, 8), 4, 0.5) (float32, shape floored_hw)",
            "perlin noise = interpolate((randn * ((perlin + 1) / 2)).unsqueeze(1), size=(H, W)).squeeze(1) "
            "(default mode 'nearest'; interpolate_nearest gives the source row/column of every output row/column); "
            "uniform noise = randn (no resize)",
            "noise_u8 = (clip(noise * 0.5 + 0.5, 0, 1) * 255).astype(uint8) (truncation) in HWC order "
            "(animation.py::sample_to_cv2), then cv2.addWeighted(sample, 1 - amt, noise_u8, amt, 0)",
            "tensor stats: sha256 of the C-order little-endian float32 bytes, float64 sum, first values; "
            f"the .npy files (float32) exist for seed {NOISE_TENSOR_SEED} only (size budget). "
            "Stages depend only on seed and size, not on noise_amt or noise_type",
        ] + extra_notes,
        "cases": cases,
    }, depth=4)
    meta["noise"] = {"file": "noise_cases.json"}



# --------------------------------------------------------------------------
# 5. seeds

def case_seeds(seed_mod, out: Path) -> None:
    res = {}
    for key, behavior, n in (("iter_N1", "iter", 1), ("iter_N3", "iter", 3), ("fixed", "fixed", 1),
                             ("ladder", "ladder", 1), ("alternate", "alternate", 1)):
        args = types.SimpleNamespace(seed=SEED_START, seed_behavior=behavior, seed_iter_N=n)
        root = types.SimpleNamespace(seed_internal=0)
        seq = [seed_mod.next_seed(args, root) for _ in range(SEED_CALLS)]
        res[key] = {"seed_behavior": behavior, "seed_iter_N": n, "start": SEED_START,
                    "sequence": seq, "frame_seeds": [SEED_START] + seq[:-1]}
    write_json(out / "seeds.json", {
        "function": "seed.py::next_seed(args, root); root.seed_internal starts at 0",
        "note": "'sequence' = return values of 12 successive calls starting from args.seed = 100; "
                "render.py calls next_seed once after each diffused frame, so the seeds used by "
                "diffused frames 0, 1, 2, ... are 'frame_seeds' = [100] + sequence[:-1]. "
                "'random' is not recorded: it is random.randint(0, 2**32 - 1) from Python's global, "
                "unseeded random module. 'schedule' does not go through next_seed (render.py sets "
                "args.seed = int(seed_schedule_series[frame_idx]) before generating).",
        "behaviors": res,
    }, depth=3)


# --------------------------------------------------------------------------
# 6. cadence: run render.render_animation itself with everything stubbed

class _Series:
    DEFAULTS = {"noise_schedule_series": 0.065, "strength_schedule_series": 0.65,
                "cfg_scale_schedule_series": 7.0, "contrast_schedule_series": 1.0,
                "kernel_schedule_series": 5, "sigma_schedule_series": 1.0,
                "amount_schedule_series": 0.1, "threshold_schedule_series": 0.0,
                "prompts": "a prompt"}

    def __init__(self, name):
        self.name = name

    def __getitem__(self, idx):
        return self.DEFAULTS.get(self.name, 1.0)


class _Keys:
    def __init__(self, *a, **k):
        pass

    def __getattr__(self, name):
        return _Series(name)


class _Parseq:
    use_parseq = False

    def __init__(self, *a, **k):
        pass

    def manages_seed(self):
        return False

    def manages_prompts(self):  # keeps pandas/numexpr (prompt expansion) out of the run
        return True


ENC = 200  # pixel value marking the column of a diffused frame


class _CadenceRecorder:
    def __init__(self, render_src_lines):
        self.warp_roles = {}
        for i, line in enumerate(render_src_lines, 1):
            for needle, role in (("anim_frame_warp(turbo_prev_image", "prev"),
                                 ("anim_frame_warp(turbo_next_image", "next"),
                                 ("anim_frame_warp(prev_img", "main")):
                if needle in line:
                    self.warp_roles[i] = role
        assert sorted(self.warp_roles.values()) == ["main", "next", "prev"], self.warp_roles
        self.reset()

    def reset(self):
        self.hist = {}
        self.keep = []
        self.emitted = []
        self.generated = []
        self.main_warp = None

    @staticmethod
    def decode(img):
        if img is None:
            return None
        a = np.asarray(img, dtype=np.float64)[0, :, 0] / ENC
        return {str(i): round(float(w), 12) for i, w in enumerate(a) if w != 0}

    def source(self, img):
        if img is None:
            return None
        return {"diffused_frame": self.decode(img), "warped_with_frames": self.hist.get(id(img), [])}


def case_cadence(folder: Path, out: Path) -> None:
    R = None  # set below, used by the stubs

    def anim_frame_warp(prev_img, args, anim_args, keys, frame_idx, depth_model=None, depth=None,
                        device="cuda", half_precision=False):
        caller = sys._getframe(1)
        role = R.warp_roles.get(caller.f_lineno, f"line {caller.f_lineno}")
        new = np.array(prev_img, copy=True)
        R.hist[id(new)] = R.hist.get(id(prev_img), []) + [int(frame_idx)]
        R.keep += [prev_img, new]
        if role == "main":  # prev_img warped with the motion of the frame about to be diffused
            R.main_warp = R.source(new)
        return new, None

    def generate(args, keys, anim_args, loop_args, controlnet_args, root, parseq_adapter, frame_idx,
                 sampler_name=None):
        R.generated.append({"frame_idx": int(frame_idx), "seed": int(args.seed),
                            "use_init": bool(args.use_init),
                            "init_image": R.main_warp})
        R.main_warp = None
        arr = np.zeros((args.H, args.W, 3), np.uint8)
        arr[:, frame_idx, :] = ENC
        return Image.fromarray(arr)

    def imwrite(path, img):
        L = sys._getframe(1).f_locals
        tween = L["tween"]
        prev, nxt = L["turbo_prev_image"], L["turbo_next_image"]
        blended = prev is not None and tween < 1.0
        R.emitted.append({
            "frame_idx": int(L["tween_frame_idx"]),
            "file_index": int(Path(path).stem.rsplit("_", 1)[1]),
            "tween": tween,
            "from": "prev*(1-tween) + next*tween" if blended else "next",
            "written_during_diffused_frame": int(L["frame_idx"]),
            "tween_frame_start_idx": int(L["tween_frame_start_idx"]),
            "advance_prev": bool(L["advance_prev"]), "advance_next": bool(L["advance_next"]),
            "prev": R.source(prev), "next": R.source(nxt),
            "weights": R.decode(img),
        })
        return True

    def save_image(image, type_, filename, args, video_args, root):
        L = sys._getframe(1).f_locals
        R.emitted.append({"frame_idx": int(L["frame_idx"]),
                          "file_index": int(Path(filename).stem.rsplit("_", 1)[1]),
                          "tween": None, "from": "diffused frame, saved directly (cadence 1)",
                          "weights": R.decode(np.asarray(image))})

    class _Cv2:
        def __getattr__(self, name):
            return getattr(cv2, name)

    cv2_proxy = _Cv2()
    cv2_proxy.imwrite = imwrite

    noop = lambda *a, **k: None  # noqa: E731
    ident = lambda img, *a, **k: img  # noqa: E731
    stubs = {
        "generate": {"generate": generate, "isJson": lambda s: True},
        "noise": {"add_noise": ident},
        "animation": {"anim_frame_warp": anim_frame_warp},
        "animation_key_frames": {"DeformAnimKeys": _Keys, "LooperAnimKeys": _Keys},
        "video_audio_utilities": {"get_frame_name": noop, "get_next_frame": noop,
                                  "render_preview": lambda a, b, c, d, e, last: last},
        "depth": {"DepthModel": noop},
        "colors": {"maintain_colors": ident},
        "parseq_adapter": {"ParseqAdapter": _Parseq},
        "image_sharpening": {"unsharp_mask": ident},
        "load_images": {"get_mask": noop, "load_img": noop, "load_image": noop,
                        "get_mask_from_file": noop},
        "hybrid_video": {n: noop for n in (
            "hybrid_generation", "hybrid_composite", "get_matrix_for_hybrid_motion",
            "get_matrix_for_hybrid_motion_prev", "get_flow_for_hybrid_motion",
            "get_flow_for_hybrid_motion_prev", "image_transform_ransac",
            "image_transform_optical_flow", "get_flow_from_images", "abs_flow_to_rel_flow",
            "rel_flow_to_abs_flow")},
        "save_images": {"save_image": save_image},
        "composable_masks": {"compose_mask_with_check": noop},
        "settings": {"save_settings_from_animation_run": noop},
        "deforum_controlnet": {"unpack_controlnet_vids": noop, "is_controlnet_enabled": lambda a: False},
        "subtitle_handler": {"init_srt_file": noop, "write_frame_subtitle": noop,
                             "format_animation_params": noop},
        "resume": {"get_resume_vars": noop},
        "masks": {"do_overlay_mask": noop},
        "prompt": {"prepare_prompt": lambda prompt, *a: prompt},
        "RAFT": {"RAFT": noop},
    }
    make_package("dfm_render", folder, stubs)
    # render.py imports pandas and numexpr at module level; the prompt expansion that
    # uses them is bypassed (_Parseq.manages_prompts), so empty stand-ins are enough.
    added = []
    for mod in ("pandas", "numexpr"):
        try:
            importlib.import_module(mod)
        except ImportError:
            sys.modules[mod] = _module(mod)
            added.append(mod)
    try:
        render = load("dfm_render", "render")
    finally:
        for mod in added:
            del sys.modules[mod]
    render.cv2 = cv2_proxy
    R = _CadenceRecorder((folder / "render.py").read_text().splitlines())

    cases = []
    for cadence, max_frames in CADENCE_CASES:
        R.reset()
        with tempfile.TemporaryDirectory() as tmp:
            args = types.SimpleNamespace(
                W=max_frames + 3, H=2, seed=SEED_START, seed_behavior="iter", seed_iter_N=1,
                outdir=tmp, use_init=False, init_image=None, init_image_box=None, use_mask=False,
                motion_preview_mode=False, strength=0.65, strength_0_no_init=True,
                overlay_mask=False, invert_mask=False, use_alpha_as_mask=False)
            anim_args = types.SimpleNamespace(
                animation_mode="2D", max_frames=max_frames, diffusion_cadence=cadence,
                hybrid_composite="None", hybrid_motion="None", hybrid_comp_mask_type="None",
                optical_flow_cadence="None", optical_flow_redo_generation="None",
                diffusion_redo="0", resume_from_timestring=False, resume_timestring="",
                use_mask_video=False, use_noise_mask=False, color_coherence="None",
                color_force_grayscale=False, legacy_colormatch=False, use_depth_warping=False,
                save_depth_maps=False, depth_algorithm="Midas-3-Hybrid", midas_weight=0.2,
                noise_type="perlin", perlin_w=8, perlin_h=8, perlin_octaves=4,
                perlin_persistence=0.5, enable_steps_scheduling=False,
                enable_sampler_scheduling=False, enable_clipskip_scheduling=False,
                enable_noise_multiplier_scheduling=False, enable_ddim_eta_scheduling=False,
                enable_ancestral_eta_scheduling=False, enable_checkpoint_scheduling=False,
                enable_subseed_scheduling=False, flip_2d_perspective=False)
            root = types.SimpleNamespace(
                timestring="20240101000000", animation_prompts={"0": "a prompt"}, device="cpu",
                half_precision=False, noise_mask=None, init_sample=None, seed_internal=0,
                models_path=tmp, job_id="job", subseed=-1, subseed_strength=0)
            loop_args = types.SimpleNamespace(use_looper=False, init_images="{}")
            with contextlib.redirect_stdout(io.StringIO()):
                render.render_animation(args, anim_args, types.SimpleNamespace(fps=15), None,
                                        loop_args, None, root)
        written = [e["frame_idx"] for e in R.emitted]
        assert all(e["file_index"] == e["frame_idx"] for e in R.emitted)
        gen = [g["frame_idx"] for g in R.generated]
        cases.append({
            "cadence": cadence, "max_frames": max_frames,
            "diffused_frames": gen,
            "written_frame_indices": written,
            "never_written": [i for i in range(max_frames) if i not in written],
            "diffused_frames_never_visible": [
                f for f in gen if not any(str(f) in (e["weights"] or {}) for e in R.emitted)],
            "emitted": R.emitted,
            "generate_calls": R.generated,
        })
    write_json(out / "cadence.json", {
        "how": "render.py::render_animation run unmodified (2D mode, optical_flow_cadence None, "
               "no hybrid/masks/colour match) with all helpers stubbed: generate() returns a "
               f"{{W}}x2 image with value {ENC} in column frame_idx (all channels), anim_frame_warp is the "
               "identity but records its frame_idx, cv2.imwrite / save_image record what is written. "
               "'weights' decodes the written image as {diffused frame: weight}; 'prev'/'next' give the "
               "diffused frame held in turbo_prev_image/turbo_next_image and the frame indices whose "
               "motion has been applied to it (anim_frame_warp calls) at write time.",
        "generate_calls": "frame_idx passed to generate(), args.seed at that moment (seed_behavior iter, "
                          "seed_iter_N 1, start 100), and init_image: the diffused frame and motion history "
                          "of the warped prev_img that becomes the init (before contrast/anti-blur/noise)",
        "cases": cases,
    }, depth=4)


# --------------------------------------------------------------------------

def versions() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "opencv": cv2.__version__, "scikit-image": skimage.__version__,
            "torch": torch.__version__, "pillow": PIL.__version__, "einops": EINOPS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deforum", required=True, type=Path,
                    help="folder with Deforum's colors.py, image_sharpening.py, noise.py, "
                         "animation.py, seed.py, render.py")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()
    folder = a.deforum.resolve()
    missing = [f for f in DEFORUM_FILES if not (folder / f).is_file()]
    if missing:
        raise SystemExit(f"--deforum {folder}: missing {', '.join(missing)}")
    out = a.out
    out.mkdir(parents=True, exist_ok=True)

    sys.dont_write_bytecode = True
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    install_global_stubs()
    # real Deforum modules; relative imports they need that are not part of
    # this exercise are stubbed
    make_package("dfm", folder, {
        "prompt": {"check_is_number": lambda v: False},
        "general_utils": {"debug_print": lambda msg: None},
    })
    colors = load("dfm", "colors")
    sharp = load("dfm", "image_sharpening")
    noise_mod = load("dfm", "noise")
    seed_mod = load("dfm", "seed")

    src_rgb = read_rgb(BASE_IMAGE)
    assert src_rgb.shape == (64, 96, 3), src_rgb.shape
    meta = {"versions": versions(), "base_image": "tests/data/warp2d/input.png (copied as color_src.png)"}
    case_colour(colors, src_rgb, out, meta)
    case_contrast(src_rgb, out, meta)
    case_unsharp(sharp, src_rgb, out, meta)
    case_noise(noise_mod, src_rgb, out, meta)
    case_seeds(seed_mod, out)
    case_cadence(folder, out)
    write_json(out / "cases.json", meta)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {len(list(out.iterdir()))} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()
