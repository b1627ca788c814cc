#!/usr/bin/env python3
"""Generate reference data for anim's 2D camera warp (Deforum "2D" animation mode).

Writes into ``--out`` (default: ``<repo>/tests/data/warp2d``):

* ``input.png``  -- ``skimage.data.astronaut()`` resized with ``cv2.INTER_AREA``
  to 96x64 (width x height, non-square on purpose), RGB 8-bit.
* ``<case>.png`` -- ``input.png`` warped ``frames`` times in a chain (each step
  warps the previous uint8 result, like an animation) with the Deforum 2D warp::

      center = (W * transform_center_x, H * transform_center_y)
      rot    = cv2.getRotationMatrix2D(center, angle, zoom)   # 2x3 (+ row [0,0,1])
      trans  = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]
      M      = rot3x3 @ trans                                 # translation first
      out    = cv2.warpPerspective(img, M, (W, H), flags=cv2.INTER_LINEAR,
                                   borderMode=B)

  with B = BORDER_REPLICATE / BORDER_WRAP / BORDER_REFLECT / BORDER_CONSTANT(0).
* ``cases.json`` -- ``{"versions": {...}, "width": 96, "height": 64,
  "cases": [...]}``; every case carries its parameters, the forward 3x3 matrix
  ``M`` (row-major, float64) that was passed to ``cv2.warpPerspective`` and the
  inverse matrix ``M_inv`` that OpenCV actually samples with.
* ``w<W>x<H>_input.png``, ``w<W>x<H>_<case>.png`` and ``widths.json`` -- the
  same at the sizes in ``WIDTHS`` (72x48, 200x40, 99x61, 127x33, 13x9), whose
  widths are not multiples of 16, so OpenCV's AVX2 kernel warps the last
  ``W % 16`` columns of each row in its scalar tail; ``widths.json`` is
  ``{"versions": {...}, "sizes": [{"width", "height", "prefix", "cases"}]}``.

The outputs depend only on OpenCV (never on the emulation below).  After
writing, the script runs a self-check: ``emulate_warp`` re-implements OpenCV's
``warpPerspective`` INTER_LINEAR / CV_8UC3 in numpy and the maximum absolute
difference to cv2 is printed per case (expected: 0).

Two OpenCV algorithms exist and the emulation models both:

* OpenCV >= 4.11 (incl. 5.x, the version used for the committed files):
  float32 pipeline (``warpPerspectiveLinearInvoker_8UC3``).  On CPUs where
  OpenCV dispatches its AVX2 kernel (AVX2+FMA3) every ``v_fma`` is a fused
  multiply-add; on CPUs without AVX2/FMA3 the SSE kernel does a separate
  mul + add.  The self-check picks the model matching the running CPU
  (``--no-fma`` forces the SSE model).  Rare pixels differ by 1 between the
  two kernels, so the committed PNGs record ``opencv_warp_kernel``.
* OpenCV <= 4.10: double coordinates rounded to 1/32 pixel + 15-bit
  fixed-point bilinear weights (``WarpPerspectiveInvoker`` + ``remap``).

Regenerate (from the repo root, with a virtual environment outside the repo,
at the versions in tests/data/warp2d/README.md)::

    python3 -m venv VENV
    VENV/bin/pip install numpy==2.4.6 opencv-python-headless==5.0.0.93 scikit-image==0.26.0
    VENV/bin/python scripts/make_warp_refs.py
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import skimage
import skimage.data

W, H = 96, 64

BORDERS = {
    "replicate": cv2.BORDER_REPLICATE,
    "wrap": cv2.BORDER_WRAP,
    "reflect": cv2.BORDER_REFLECT,
    "zero": cv2.BORDER_CONSTANT,
}

# Deforum's default zoom schedule "0:(1.0025+0.002*sin(1.25*3.14*t/30))" at t=1.
DEFORUM_DEFAULT_ZOOM_T1 = 1.0025 + 0.002 * math.sin(1.25 * 3.14 * 1 / 30)


def _case(name, angle=0.0, zoom=1.0, tx=0.0, ty=0.0, cx=0.5, cy=0.5,
          border="replicate", frames=1):
    return {
        "name": name,
        "angle": float(angle),
        "zoom": float(zoom),
        "translation_x": float(tx),
        "translation_y": float(ty),
        "transform_center_x": float(cx),
        "transform_center_y": float(cy),
        "border": border,
        "frames": int(frames),
    }


def build_cases():
    combined = dict(angle=7.0, zoom=1.05, tx=3.0, ty=2.0, cx=0.3, cy=0.6)
    exposing = dict(angle=10.0, zoom=0.8, tx=7.0, ty=0.0)
    return [
        _case("identity"),
        _case("zoom_in", zoom=1.1),
        _case("zoom_out", zoom=0.9),
        _case("rotate", angle=15.0),
        _case("translate", tx=5.5, ty=-3.25),
        _case("combined", **combined),
        _case("border_replicate", border="replicate", **exposing),
        _case("border_wrap", border="wrap", **exposing),
        _case("border_reflect", border="reflect", **exposing),
        _case("border_zero", border="zero", **exposing),
        _case("deforum_default_zoom_t1", zoom=DEFORUM_DEFAULT_ZOOM_T1),
        _case("chain10_combined_replicate", border="replicate", frames=10, **combined),
        _case("chain10_zoom_out_wrap", zoom=0.9, border="wrap", frames=10),
        _case("chain10_rotate_reflect", angle=15.0, border="reflect", frames=10),
        _case("chain10_translate_zero", tx=5.5, ty=-3.25, border="zero", frames=10),
    ]


# Frame sizes (W, H) beyond 96x64, whose W % 16 != 0: OpenCV's AVX2 kernel
# warps the last W % 16 columns of each row in its scalar tail (all of them
# when W < 16).  72 and 200 leave 8 columns there, 99 leaves 3, 127 leaves 15.
WIDTHS = [(72, 48), (200, 40), (99, 61), (127, 33), (13, 9)]


# Motions for which OpenCV's scalar tail and its vector formula round a
# sample differently (found by a random search over 300 motions per size,
# about 1 in 20 differs): without them a wrong tail model could pass.
TAIL_MOTIONS = {
    (72, 48): dict(angle=-8.3, zoom=1.06, tx=0.45, ty=-2.31, cx=0.58, cy=0.61),
    (200, 40): dict(angle=-21.0, zoom=1.008, tx=-0.52, ty=1.96, cx=0.6, cy=0.44),
}


def build_width_cases(w, h):
    combined = dict(angle=7.0, zoom=1.05, tx=3.0, ty=2.0, cx=0.3, cy=0.6)
    exposing = dict(angle=10.0, zoom=0.8, tx=7.0, ty=0.0)
    cases = [
        _case("combined", **combined),
        _case("rotate_reflect", angle=15.0, border="reflect"),
        _case("exposing_zero", border="zero", **exposing),
        _case("exposing_wrap", border="wrap", **exposing),
        _case("chain10_combined_replicate", border="replicate", frames=10, **combined),
    ]
    if (w, h) in TAIL_MOTIONS:
        tail = TAIL_MOTIONS[(w, h)]
        cases += [_case("tail_reflect", border="reflect", **tail),
                  _case("chain10_tail_reflect", border="reflect", frames=10, **tail)]
    return cases


def matmul3(a, b):
    """3x3 product with a fixed evaluation order ((a0*b0 + a1*b1) + a2*b2),
    plain IEEE double ops (no FMA), so M is identical on every machine."""
    return [[(a[i][0] * b[0][j] + a[i][1] * b[1][j]) + a[i][2] * b[2][j]
             for j in range(3)] for i in range(3)]


def deforum_matrix(case, w=W, h=H):
    center = (w * case["transform_center_x"], h * case["transform_center_y"])
    # NB: cv2 takes the center as Point2f, i.e. it is rounded to float32.
    rot = cv2.getRotationMatrix2D(center, case["angle"], case["zoom"])
    rot3 = [[float(v) for v in rot[0]], [float(v) for v in rot[1]], [0.0, 0.0, 1.0]]
    trans = [[1.0, 0.0, case["translation_x"]],
             [0.0, 1.0, case["translation_y"]],
             [0.0, 0.0, 1.0]]
    return np.array(matmul3(rot3, trans), dtype=np.float64)


def rotation_matrix_like_cv(cx, cy, angle, scale):
    """cv::getRotationMatrix2D_ (geometry.cpp): center is a Point2f, so
    cx/cy are rounded to float32 first; everything else is double."""
    cx = float(np.float32(cx))
    cy = float(np.float32(cy))
    a = angle * (math.pi / 180)
    alpha = math.cos(a) * scale
    beta = math.sin(a) * scale
    return [[alpha, beta, (1 - alpha) * cx - beta * cy],
            [-beta, alpha, beta * cx + (1 - alpha) * cy]]


def warp_cv2(img, m, border):
    return cv2.warpPerspective(img, m, (img.shape[1], img.shape[0]),
                               flags=cv2.INTER_LINEAR, borderMode=BORDERS[border],
                               borderValue=(0, 0, 0, 0))


def make_input(w=W, h=H):
    src = skimage.data.astronaut()  # RGB uint8 512x512
    return cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)


def write_png_rgb(path, rgb):
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"failed to write {path}")


# --------------------------------------------------------------------------
# Emulation of OpenCV (self-check only; outputs never depend on it)
# --------------------------------------------------------------------------

def invert3x3_like_cv(m):
    """cv::invert(DECOMP_LU) for a 3x3 CV_64F matrix: closed-form adjugate /
    det3, evaluated in double in exactly OpenCV's order (lapack.cpp)."""
    s = [[float(v) for v in row] for row in m]
    det = (s[0][0] * (s[1][1] * s[2][2] - s[1][2] * s[2][1])
           - s[0][1] * (s[1][0] * s[2][2] - s[1][2] * s[2][0])
           + s[0][2] * (s[1][0] * s[2][1] - s[1][1] * s[2][0]))
    d = 1.0 / det
    t = [
        (s[1][1] * s[2][2] - s[1][2] * s[2][1]) * d,
        (s[0][2] * s[2][1] - s[0][1] * s[2][2]) * d,
        (s[0][1] * s[1][2] - s[0][2] * s[1][1]) * d,
        (s[1][2] * s[2][0] - s[1][0] * s[2][2]) * d,
        (s[0][0] * s[2][2] - s[0][2] * s[2][0]) * d,
        (s[0][2] * s[1][0] - s[0][0] * s[1][2]) * d,
        (s[1][0] * s[2][1] - s[1][1] * s[2][0]) * d,
        (s[0][1] * s[2][0] - s[0][0] * s[2][1]) * d,
        (s[0][0] * s[1][1] - s[0][1] * s[1][0]) * d,
    ]
    return t


def _fma32(a, b, c):
    """Correctly rounded float32 fma(a, b, c) (like vfmadd*ps), in numpy.

    a*b is exact in float64; the float64 sum is corrected with TwoSum so the
    final rounding to float32 is a single correct rounding."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    c = np.asarray(c, np.float32)
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    # Only a float64 sum lying exactly on a float32 midpoint can be misrounded.
    other = np.nextafter(r, np.where(s > r64, np.float32(np.inf), np.float32(-np.inf)))
    mid = (r64 + other.astype(np.float64)) * 0.5
    fix = (s != r64) & (s == mid) & (err != 0)
    if np.any(fix):
        toward_other = np.sign(err) == np.sign(other.astype(np.float64) - s)
        r = np.where(fix & toward_other, other, r)
    return r


def _muladd32(a, b, c, fused):
    if fused:
        return _fma32(a, b, c)
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    c = np.asarray(c, np.float32)
    return (a * b).astype(np.float32) + c


def _border_index(p, n, border):
    """borderInterpolate_fast (warp_kernels.simd.hpp) for taps outside [0, n)."""
    p = p.copy()
    if border == "replicate":
        return np.clip(p, 0, n - 1)
    if border == "wrap":
        return np.mod(p, n)  # == OpenCV's C formula (true modulo)
    if border == "reflect":  # BORDER_REFLECT: fedcba|abcdef, period 2n
        p = np.mod(p, 2 * n)
        return np.where(p >= n, 2 * n - 1 - p, p)
    raise ValueError(border)


def _fetch_taps(img, ix, iy, border):
    """Return the 4 taps (p00, p01, p10, p11) as float32 arrays (..., C)."""
    h, w = img.shape[:2]
    taps = []
    for dy in (0, 1):
        for dx in (0, 1):
            x = ix + dx
            y = iy + dy
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            if border == "zero":
                v = img[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.float32)
                v = np.where(inside[..., None], v, np.float32(0))
            else:
                v = img[_border_index(y, h, border), _border_index(x, w, border)]
                v = v.astype(np.float32)
            taps.append(v)
    return taps


def _emulate_float(img, m_inv, border, fused):
    """OpenCV >= 4.11 warpPerspectiveLinearInvoker_8UC3.

    Columns [0, W - W % uf) go through the SIMD path, the remaining W % uf
    columns through the scalar tail; uf = 2 * float32 lanes = 16 for the AVX2
    kernel (fused=True), 8 for the SSE4.1 kernel (fused=False)."""
    h, w = img.shape[:2]
    uf = 16 if fused else 8
    xv = w - w % uf  # first column handled by the scalar tail
    mf = np.array(m_inv, dtype=np.float64).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]

    def mul(a, b):
        return (np.asarray(a, np.float32) * np.asarray(b, np.float32)).astype(np.float32)

    # SIMD path: per-row constant (float)(y*M[1] + M[2]) computed unfused,
    # then v_fma(M[0], x, rowconst) (fused on AVX2), then v_div by w.
    def vec(a, b, c):
        return _muladd32(a, xs, mul(ys, b) + c, fused)

    # scalar tail: (x*M[0] + y*M[1] + M[2]); GCC contracts it to
    # fma(x, M[0], y*M[1]) + M[2] in the AVX2/FMA3 build.
    def tail(a, b, c):
        return _muladd32(xs, a, mul(ys, b), fused) + c

    coords = []
    for k in (0, 3, 6):
        a, b, c = mf[k], mf[k + 1], mf[k + 2]
        coords.append(np.where(xs < xv, vec(a, b, c), tail(a, b, c)).astype(np.float32))
    sx, sy, sw = coords
    sx = (sx / sw).astype(np.float32)
    sy = (sy / sw).astype(np.float32)
    fx = np.floor(sx)
    fy = np.floor(sy)
    ix = fx.astype(np.int64)
    iy = fy.astype(np.int64)
    ax = (sx - fx).astype(np.float32)[..., None]
    ay = (sy - fy).astype(np.float32)[..., None]
    p00, p01, p10, p11 = _fetch_taps(img, ix, iy, border)
    # v_fma / contracted scalar: v0 = p00 + ax*(p01-p00), v1 likewise,
    # v = v0 + ay*(v1 - v0); then round half-to-even and saturate.
    v0 = _muladd32(ax, p01 - p00, p00, fused)
    v1 = _muladd32(ax, p11 - p10, p10, fused)
    v = _muladd32(ay, (v1 - v0).astype(np.float32), v0, fused)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def _emulate_fixed(img, m_inv, border):
    """OpenCV <= 4.10 WarpPerspectiveInvoker + remap (fixed point)."""
    h, w = img.shape[:2]
    m = [float(v) for v in m_inv]
    bh0 = min(16, h)
    bw0 = min(1024 // bh0, w)
    xs = np.arange(w)
    xblk = (xs // bw0) * bw0  # block start column
    x1 = (xs - xblk).astype(np.float64)
    xblk = xblk.astype(np.float64)
    ys = np.arange(h, dtype=np.float64)[:, None]
    X0 = (m[0] * xblk + m[1] * ys) + m[2]
    Y0 = (m[3] * xblk + m[4] * ys) + m[5]
    W0 = (m[6] * xblk + m[7] * ys) + m[8]
    Wd = W0 + m[6] * x1
    with np.errstate(divide="ignore"):
        Wd = np.where(Wd != 0, 32.0 / Wd, 0.0)
    fX = np.clip((X0 + m[0] * x1) * Wd, -2.0**31, 2.0**31 - 1)
    fY = np.clip((Y0 + m[3] * x1) * Wd, -2.0**31, 2.0**31 - 1)
    X = np.rint(fX).astype(np.int64)  # cvRound / cvtpd2dq: half-even
    Y = np.rint(fY).astype(np.int64)
    ix = np.clip(X >> 5, -32768, 32767)
    iy = np.clip(Y >> 5, -32768, 32767)
    ax = (X & 31)[..., None]
    ay = (Y & 31)[..., None]
    p00, p01, p10, p11 = [t.astype(np.int64) for t in _fetch_taps(img, ix, iy, border)]
    # BilinearTab_i: (1-ay)(1-ax)*32768 etc.; all exact, sum == 32768.
    w00 = (32 - ax) * (32 - ay) * 32
    w01 = ax * (32 - ay) * 32
    w10 = (32 - ax) * ay * 32
    w11 = ax * ay * 32
    acc = p00 * w00 + p01 * w01 + p10 * w10 + p11 * w11
    return np.clip((acc + (1 << 14)) >> 15, 0, 255).astype(np.uint8)


def emulate_warp(img, m, border, algo="float", fused=True):
    """Numpy re-implementation of cv2.warpPerspective(img, m, (W, H),
    INTER_LINEAR, border) for uint8 HxWxC images.

    algo="float": OpenCV >= 4.11 (fused=True: AVX2/FMA3 kernel,
    fused=False: SSE4.1 kernel).  algo="fixed": OpenCV <= 4.10."""
    m_inv = invert3x3_like_cv(m)  # WARP_INVERSE_MAP not set -> cv::invert
    if algo == "float":
        return _emulate_float(img, m_inv, border, fused)
    if algo == "fixed":
        return _emulate_fixed(img, m_inv, border)
    raise ValueError(algo)


def default_algo():
    major, minor = (int(v) for v in cv2.__version__.split(".")[:2])
    return "float" if (major, minor) >= (4, 11) else "fixed"


# --------------------------------------------------------------------------


def cpu_has_avx2_fma3():
    # cv::CPU_AVX2 == 11, cv::CPU_FMA3 == 12 (honours OPENCV_CPU_DISABLE)
    return bool(cv2.checkHardwareSupport(11) and cv2.checkHardwareSupport(12))


def versions():
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-image": skimage.__version__,
        # which warp_kernels dispatch produced the PNGs (matters for rare
        # +-1 differences with OpenCV >= 4.11)
        "opencv_warp_kernel": "AVX2+FMA3" if cpu_has_avx2_fma3() else "SSE (no FMA)",
    }


def dump_json(doc):
    """json.dumps(indent=2) with numeric lists kept on one line."""
    text = json.dumps(doc, indent=2)
    return re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]",
                  lambda mm: "[" + ", ".join(v.strip() for v in mm.group(1).split(",")) + "]",
                  text) + "\n"


def run_chain(img, m, border, frames, fn):
    cur = img
    for _ in range(frames):
        cur = fn(cur, m, border)
    return cur


def warp_set(img, cases, w, h, out, prefix=""):
    """Fills in each case's M and M_inv, writes ``<prefix><name>.png`` (the
    cv2 chain) and returns {name: result}."""
    results = {}
    for case in cases:
        m = deforum_matrix(case, w, h)
        # sanity: same as numpy's matmul of the two 3x3 matrices
        rot = np.vstack([cv2.getRotationMatrix2D(
            (w * case["transform_center_x"], h * case["transform_center_y"]),
            case["angle"], case["zoom"]), [0.0, 0.0, 1.0]])
        trans = np.array([[1.0, 0.0, case["translation_x"]],
                          [0.0, 1.0, case["translation_y"]], [0.0, 0.0, 1.0]])
        npm = rot @ trans
        if not np.array_equal(npm, m):
            print(f"note: {prefix}{case['name']}: numpy matmul differs from matmul3 by "
                  f"{np.abs(npm - m).max():.3g}", file=sys.stderr)
        rot_py = rotation_matrix_like_cv(w * case["transform_center_x"],
                                         h * case["transform_center_y"],
                                         case["angle"], case["zoom"])
        assert np.array_equal(np.array(rot_py), rot[:2]), "rotation emulation mismatch"
        ok, m_inv_cv = cv2.invert(m)
        assert ok
        assert np.array_equal(np.array(invert3x3_like_cv(m)).reshape(3, 3), m_inv_cv), \
            "inverse emulation mismatch"
        case["M"] = [float(v) for v in m.reshape(-1)]
        case["M_inv"] = [float(v) for v in m_inv_cv.reshape(-1)]
        res = run_chain(img, m, case["border"], case["frames"], warp_cv2)
        results[case["name"]] = res
        write_png_rgb(out / f"{prefix}{case['name']}.png", res)
    return results


def self_check(img, cases, results, algo, fused, prefix=""):
    """Max |diff| of emulate_warp against cv2 per case; returns the worst."""
    worst = 0
    for case in cases:
        m = np.array(case["M"]).reshape(3, 3)
        # chained: compare each step on cv2's own previous frame, and the
        # fully emulated chain at the end
        cur = img
        step_max = 0
        for _ in range(case["frames"]):
            ref = warp_cv2(cur, m, case["border"])
            emu = emulate_warp(cur, m, case["border"], algo, fused)
            step_max = max(step_max, int(np.abs(ref.astype(int) - emu).max()))
            cur = ref
        chain = run_chain(img, m, case["border"], case["frames"],
                          lambda a, mm, b: emulate_warp(a, mm, b, algo, fused))
        chain_max = int(np.abs(chain.astype(int) - results[case["name"]]).max())
        worst = max(worst, step_max, chain_max)
        print(f"  {prefix + case['name']:36s} per-step max |diff| = {step_max}"
              f"   full-chain max |diff| = {chain_max}")
    return worst


def main(argv=None):
    repo_root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=repo_root / "tests" / "data" / "warp2d",
                    help="output directory (default: <repo>/tests/data/warp2d)")
    ap.add_argument("--no-self-check", action="store_true",
                    help="skip the numpy emulation self-check")
    ap.add_argument("--algo", choices=["float", "fixed"], default=None,
                    help="emulation model for the self-check (default: by cv2 version)")
    ap.add_argument("--no-fma", action="store_true",
                    help="self-check with the unfused SSE model even on AVX2+FMA3 "
                         "CPUs (the SSE model is chosen automatically otherwise)")
    args = ap.parse_args(argv)

    cv2.setNumThreads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    img = make_input()
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    write_png_rgb(out / "input.png", img)

    cases = build_cases()
    results = warp_set(img, cases, W, H, out)
    doc = {"versions": versions(), "width": W, "height": H, "cases": cases}
    (out / "cases.json").write_text(dump_json(doc))
    assert json.loads((out / "cases.json").read_text()) == doc

    # other widths: W % 16 != 0 puts columns in OpenCV's scalar tail
    sizes = []
    width_results = {}
    for w, h in WIDTHS:
        prefix = f"w{w}x{h}_"
        simg = make_input(w, h)
        write_png_rgb(out / f"{prefix}input.png", simg)
        scases = build_width_cases(w, h)
        width_results[(w, h)] = (simg, scases, warp_set(simg, scases, w, h, out, prefix))
        sizes.append({"width": w, "height": h, "prefix": prefix, "cases": scases})
    wdoc = {"versions": versions(), "sizes": sizes}
    (out / "widths.json").write_text(dump_json(wdoc))
    assert json.loads((out / "widths.json").read_text()) == wdoc

    if not args.no_self_check:
        algo = args.algo or default_algo()
        fused = cpu_has_avx2_fma3() and not args.no_fma
        print(f"self-check: emulate_warp(algo={algo!r}, fused={fused}) vs "
              f"cv2 {cv2.__version__}; max abs diff per case")
        worst = self_check(img, cases, results, algo, fused)
        for (w, h), (simg, scases, sres) in width_results.items():
            worst = max(worst, self_check(simg, scases, sres, algo, fused, f"w{w}x{h}_"))
        print(f"self-check worst max |diff| = {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
