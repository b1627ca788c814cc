#!/usr/bin/env python3
"""Reference data for anim's perspective flip and 3D camera, from Deforum's own code.

Deforum (sd-webui-deforum) is AGPL: nothing of it is copied here. This script *imports* Deforum's
``scripts/deforum_helpers/animation.py`` (and its vendored ``src/py3d_tools.py``) from a checkout
given with ``--deforum`` and runs them, with small stand-ins for the AUTOMATIC1111 modules that
file imports (``modules.shared``, ``.prompt``, ``.general_utils``) and for ``einops.rearrange``.

Writes (default ``<repo>/tests/data``):

* ``flip/``: the 2D camera with perspective flip. The flip matrix ``bM`` is Deforum's
  ``get_flip_perspective_matrix``; the image is warped with ``cv2.warpPerspective`` by
  ``bM @ Rot @ T`` (anim's semantics: Deforum itself drops ``T`` through an ``np.matmul`` bug,
  see docs/deforum-differences.md), INTER_LINEAR, the case's border.
* ``warp3d/``: Deforum's ``anim_frame_warp_3d`` (the non-legacy ``transform_image_3d_new`` path,
  ``depth_algorithm = "Midas-3-Hybrid"``) under PyTorch on the CPU, flat depth (``depth=None``)
  or a fixed synthetic depth map (``depth.npy``), every padding and sampling mode.

Both use ``tests/data/warp2d/input.png`` (skimage's astronaut photo at 96x64) as the first frame;
chains warp the previous uint8 result again. Run with the torch venv::

    /work/venv-torch/bin/python scripts/make_camera_refs.py --deforum /path/to/sd-webui-deforum
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
BORDERS = {"replicate": cv2.BORDER_REPLICATE, "wrap": cv2.BORDER_WRAP, "reflect": cv2.BORDER_REFLECT, "zero": cv2.BORDER_CONSTANT}


def rearrange(t, pattern):
    """The two einops patterns animation.py uses."""
    if pattern == "h w c -> c h w":
        return t.permute(2, 0, 1)
    if pattern == "c h w -> h w c":
        return t.permute(1, 2, 0)
    raise ValueError(pattern)


def load_deforum(root: Path):
    helpers = root / "scripts" / "deforum_helpers"
    sys.path.insert(0, str(helpers / "src"))  # py3d_tools
    einops = types.ModuleType("einops")
    einops.rearrange = rearrange
    sys.modules["einops"] = einops
    modules = types.ModuleType("modules")
    shared = types.ModuleType("modules.shared")
    shared.state = types.SimpleNamespace()
    shared.opts = types.SimpleNamespace()
    modules.shared = shared
    sys.modules["modules"] = modules
    sys.modules["modules.shared"] = shared
    pkg = types.ModuleType("deforum_helpers")
    pkg.__path__ = [str(helpers)]
    sys.modules["deforum_helpers"] = pkg
    prompt = types.ModuleType("deforum_helpers.prompt")
    prompt.check_is_number = lambda v: False
    sys.modules["deforum_helpers.prompt"] = prompt
    gu = types.ModuleType("deforum_helpers.general_utils")
    gu.debug_print = lambda *a, **k: None
    sys.modules["deforum_helpers.general_utils"] = gu
    spec = importlib.util.spec_from_file_location("deforum_helpers.animation", helpers / "animation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def keys_for(c):
    """Deforum's per-frame series, one frame (index 0)."""
    names = ["translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
             "fov", "near", "far", "aspect_ratio", "perspective_flip_theta", "perspective_flip_phi",
             "perspective_flip_gamma", "perspective_flip_fv"]
    return types.SimpleNamespace(**{f"{n}_series": [float(c[n])] for n in names})


FLIP_DEFAULTS = dict(perspective_flip_theta=0.0, perspective_flip_phi=0.0, perspective_flip_gamma=0.0,
                     perspective_flip_fv=53.0)
MOTION2D_DEFAULTS = dict(angle=0.0, zoom=1.0, translation_x=0.0, translation_y=0.0, transform_center_x=0.5,
                         transform_center_y=0.5)


def flip_case(name, border="replicate", frames=1, **kw):
    c = dict(name=name, border=border, frames=frames, **MOTION2D_DEFAULTS, **FLIP_DEFAULTS)
    c.update(kw)
    return c


def flip_cases():
    tilt = dict(perspective_flip_phi=12.0, perspective_flip_gamma=-8.0, perspective_flip_theta=5.0, perspective_flip_fv=60.0)
    return [
        flip_case("rest"),
        flip_case("theta", perspective_flip_theta=10.0),
        flip_case("phi", perspective_flip_phi=15.0),
        flip_case("gamma", perspective_flip_gamma=-12.0),
        flip_case("fv_wide", perspective_flip_phi=10.0, perspective_flip_fv=90.0),
        flip_case("with_motion", angle=5.0, zoom=1.02, translation_x=3.0, translation_y=-2.0,
                  transform_center_x=0.4, transform_center_y=0.55, **tilt),
        flip_case("border_wrap", border="wrap", **tilt),
        flip_case("border_reflect", border="reflect", **tilt),
        flip_case("border_zero", border="zero", **tilt),
        flip_case("chain10_with_motion", frames=10, angle=2.0, zoom=1.01, translation_x=1.5, translation_y=1.0,
                  perspective_flip_phi=3.0, perspective_flip_gamma=2.0),
    ]


def rot_trans(c, w, h):
    """Deforum's 2D matrix getRotationMatrix2D(center, angle, zoom) @ T, plain double."""
    rot = cv2.getRotationMatrix2D((w * c["transform_center_x"], h * c["transform_center_y"]), c["angle"], c["zoom"])
    rot = np.vstack([rot, [0, 0, 1]])
    tr = np.array([[1, 0, c["translation_x"]], [0, 1, c["translation_y"]], [0, 0, 1]], dtype=np.float64)
    return rot @ tr


def make_flip(anim, img, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    h, w = img.shape[:2]
    cases = []
    for c in flip_cases():
        bm = anim.get_flip_perspective_matrix(w, h, keys_for({**c, **{k: 0.0 for k in [
            "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
            "fov", "near", "far", "aspect_ratio"]}}), 0)
        m = bm @ rot_trans(c, w, h)
        cur = img
        for _ in range(c["frames"]):
            cur = cv2.warpPerspective(cur, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=BORDERS[c["border"]],
                                      borderValue=(0, 0, 0, 0))
        cv2.imwrite(str(out / f"{c['name']}.png"), cv2.cvtColor(cur, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        cases.append({**c, "bM": [float(v) for v in bm.flatten()], "M": [float(v) for v in m.flatten()]})
    return cases


D3_DEFAULTS = dict(translation_x=0.0, translation_y=0.0, translation_z=0.0, rotation_3d_x=0.0, rotation_3d_y=0.0,
                   rotation_3d_z=0.0, fov=70.0, near=200.0, far=10000.0, aspect_ratio=1.0, padding_mode="border",
                   sampling_mode="bicubic", depth="flat", border="replicate", enable_perspective_flip=False,
                   **FLIP_DEFAULTS)


def d3_case(name, frames=1, **kw):
    c = dict(name=name, frames=frames, **D3_DEFAULTS)
    c.update(kw)
    return c


def d3_cases():
    combo = dict(translation_x=3.0, translation_y=-2.0, translation_z=10.0, rotation_3d_x=1.0, rotation_3d_y=-1.5,
                 rotation_3d_z=2.0, fov=60.0)
    out_motion = dict(translation_x=6.0, translation_z=-40.0, rotation_3d_z=4.0)  # zoom out: padding shows
    cases = [
        d3_case("identity"),
        d3_case("deforum_default", translation_z=1.75),
        d3_case("tx", translation_x=10.0),
        d3_case("ty", translation_y=10.0),
        d3_case("tz", translation_z=10.0),
        d3_case("rx", rotation_3d_x=3.0),
        d3_case("ry", rotation_3d_y=3.0),
        d3_case("rz", rotation_3d_z=5.0),
        d3_case("combined", **combo),
        d3_case("fov_aspect", fov=40.0, aspect_ratio=1.5, near=50.0, far=500.0, **{k: v for k, v in combo.items() if k != "fov"}),
        d3_case("flip", enable_perspective_flip=True, perspective_flip_phi=8.0, perspective_flip_gamma=-5.0,
                perspective_flip_theta=3.0, perspective_flip_fv=60.0, **combo),
        d3_case("depth_combined", depth="synthetic", **combo),
        d3_case("depth_constant", depth="constant", **combo),
        d3_case("chain10_combined", frames=10, translation_x=1.0, translation_y=-0.5, translation_z=3.0,
                rotation_3d_x=0.3, rotation_3d_y=-0.4, rotation_3d_z=0.5),
        d3_case("chain10_depth", frames=10, depth="synthetic", translation_x=1.0, translation_y=-0.5,
                translation_z=3.0, rotation_3d_y=-0.4, rotation_3d_z=0.5),
    ]
    for pad in ["border", "reflection", "zeros"]:
        for samp in ["bicubic", "bilinear", "nearest"]:
            cases.append(d3_case(f"pad_{pad}_{samp}", padding_mode=pad, sampling_mode=samp, **out_motion))
    cases.append(d3_case("depth_pad_zeros_bilinear", depth="synthetic", padding_mode="zeros", sampling_mode="bilinear",
                         **out_motion))
    return cases


def synthetic_depth(w, h):
    """A smooth MiDaS-like inverse depth map (larger = nearer): a near blob left of centre over a
    slope that recedes towards the top."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / (w - 1), y / (h - 1)
    d = 2.0 + 3.0 * v + 4.0 * np.exp(-(((u - 0.35) / 0.18) ** 2 + ((v - 0.45) / 0.25) ** 2))
    return (d * 10.0).astype(np.float32)


def make_3d(anim, img, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    h, w = img.shape[:2]
    depth = synthetic_depth(w, h)
    np.save(out / "depth.npy", depth)
    dev = torch.device("cpu")
    cases = []
    for c in d3_cases():
        args = types.SimpleNamespace(enable_perspective_flip=c["enable_perspective_flip"], border=c["border"],
                                     depth_algorithm="Midas-3-Hybrid", aspect_ratio_use_old_formula=False,
                                     padding_mode=c["padding_mode"], sampling_mode=c["sampling_mode"])
        d = {"flat": None, "synthetic": torch.from_numpy(depth), "constant": torch.full((h, w), 7.0)}[c["depth"]]
        cur = img
        for _ in range(c["frames"]):
            cur = anim.anim_frame_warp_3d(dev, cur, d, args, keys_for(c), 0)
        cv2.imwrite(str(out / f"{c['name']}.png"), cv2.cvtColor(cur, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        cases.append(c)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deforum", required=True, type=Path, help="sd-webui-deforum checkout")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data")
    a = ap.parse_args()
    torch.set_num_threads(1)
    anim = load_deforum(a.deforum)
    img = cv2.cvtColor(cv2.imread(str(REPO / "tests/data/warp2d/input.png")), cv2.COLOR_BGR2RGB)
    versions = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                "torch": torch.__version__}
    flips = make_flip(anim, img, a.out / "flip")
    (a.out / "flip" / "cases.json").write_text(json.dumps(
        {"versions": versions, "width": img.shape[1], "height": img.shape[0], "cases": flips}, indent=1) + "\n")
    d3 = make_3d(anim, img, a.out / "warp3d")
    (a.out / "warp3d" / "cases.json").write_text(json.dumps(
        {"versions": versions, "width": img.shape[1], "height": img.shape[0], "cases": d3}, indent=1) + "\n")
    print(f"{len(flips)} flip cases, {len(d3)} 3D cases")


if __name__ == "__main__":
    main()
