//! Bit-exact port of OpenCV's 8-bit sRGB <-> L*a*b* conversion (`cv::cvtColor` with
//! `COLOR_RGB2Lab` / `COLOR_Lab2RGB` on `CV_8UC3`), as OpenCV 5.0 runs it on x86-64: no HAL or
//! IPP function handles sRGB Lab, so `cv::hal::cvtBGRtoLab` runs `RGB2Lab_b` (sRGB gamma table,
//! fixed-point XYZ, cube-root table; the trilinear-interpolation LUT is only used for float
//! input) and `cv::hal::cvtLabtoBGR` runs `Lab2RGB_b`, which with `enableBitExactness` is
//! `Lab2RGBinteger` (L and a/b lookup tables, fixed-point XYZ to RGB, inverse gamma table).
//! The SIMD loops compute the same values as the scalar code ported here.
//!
//! The row functions ([`rgb_to_lab_row`], [`LabToRgb`]) run eight pixels at a time with AVX2
//! where the processor has it (run-time check): the same i32 operations lane by lane, table
//! reads as gathers of the same tables, widened to i32; the tests compare both paths on every
//! 8-bit input. [`LabToRgb`] also folds the histogram match's per-channel tables into its L, a
//! and b terms.
//!
//! The tables are built as OpenCV's `createLabTabs` builds them with its `softfloat`/`softdouble`
//! types: IEEE single/double arithmetic rounded to nearest-even (reproduced with `f32`/`f64`,
//! including the fused `mulAdd`), and OpenCV's own `pow` (through its table-based `exp` and
//! `log`) and `cbrt`, whose results differ from the platform libm's in the last bits, so they are
//! ported too.
//!
//! Ported from OpenCV (<https://github.com/opencv/opencv>, 5.0.0):
//! `modules/imgproc/src/color_lab.cpp` (`RGB2Lab_b`, `Lab2RGBinteger`, `createLabTabs`,
//! `initLUTforABXZ`, `applyGamma`, `applyInvGamma`) and `modules/core/src/softfloat.cpp`
//! (`f64_exp`, `f64_log`, `f64_pow`, `f32_cbrt`, and their `expTab`/`icvLogTab` constants).
//! Copyright (C) 2000-2025, Intel Corporation, OpenCV Foundation, and other contributors;
//! licensed under the Apache License, Version 2.0.

use std::sync::OnceLock;

// ------------------------------------------------------------------------------------------
// OpenCV's softdouble exp / log / pow and softfloat cbrt

/// `EXPPOLY_32F_A0` (~0.009670371139572337).
const EXPPOLY_A0: f64 = f64::from_bits(0x3f83ce0f3e46f431);
/// `EXPTAB_SCALE`.
const EXPTAB_SCALE: i32 = 6;

/// OpenCV's `f64_exp`.
fn cv_exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return if x > 0.0 { x } else { 0.0 };
    }
    let scale = (1 << EXPTAB_SCALE) as f64;
    let a5 = 1.0 / EXPPOLY_A0;
    let a4 = f64::from_bits(0x3fe62e42fefa39f1) / EXPPOLY_A0;
    let a3 = f64::from_bits(0x3fcebfbdff82a45a) / EXPPOLY_A0;
    let a2 = f64::from_bits(0x3fac6b08d81fec75) / EXPPOLY_A0;
    let a1 = f64::from_bits(0x3f83b2a72b4f3cd3) / EXPPOLY_A0;
    let a0 = f64::from_bits(0x3f55e7aa1566c2a4) / EXPPOLY_A0;
    let prescale = f64::from_bits(0x3ff71547652b82fe) * scale;
    let postscale = 1.0 / scale;
    let max_val = 3000.0 * scale;

    let biased_exp = ((x.to_bits() >> 52) & 0x7ff) as i32;
    let x0 = if biased_exp > 1023 + 10 {
        if x.is_sign_negative() {
            -max_val
        } else {
            max_val
        }
    } else {
        x * prescale
    };
    // |x0| <= 3000 * 64, so the conversion is exact (cvRound: nearest, ties to even)
    let val0 = x0.round_ties_even() as i32;
    let t = ((val0 >> EXPTAB_SCALE) + 1023).clamp(0, 2047);
    let buf = f64::from_bits((t as u64) << 52);
    let x0 = (x0 - x0.round_ties_even()) * postscale;
    let tab = f64::from_bits(EXP_TAB[(val0 & ((1 << EXPTAB_SCALE) - 1)) as usize]);
    buf * EXPPOLY_A0 * tab * (((((a0 * x0 + a1) * x0 + a2) * x0 + a3) * x0 + a4) * x0 + a5)
}

/// OpenCV's `f64_log`.
fn cv_log(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (a7, a6, a5, a4) = (1.0, -1.0 / 2.0, 1.0 / 3.0, -1.0 / 4.0);
    let (a3, a2, a1, a0) = (1.0 / 5.0, -1.0 / 6.0, 1.0 / 7.0, -1.0 / 8.0);
    let ln_2 = f64::from_bits(0x3fe62e42fefa39ef);

    let bits = x.to_bits();
    // first 8 bits of the mantissa, and 1.0 + the remaining bits, minus 1
    let h0 = ((bits >> 44) & 0xff) as usize;
    let buf = f64::from_bits((1023u64 << 52) | (bits & ((1u64 << 44) - 1))) - 1.0;
    let tab0 = f64::from_bits(LOG_TAB[2 * h0]);
    let tab1 = f64::from_bits(LOG_TAB[2 * h0 + 1]);
    let mut x0 = buf * tab1;
    if h0 == 255 {
        x0 += -1.0 / 512.0;
    }
    let xq = x0 * x0;
    let e = ((bits >> 52) & 0x7ff) as i32 - 1023;
    ln_2 * e as f64
        + tab0
        + (((a0 * xq + a2) * xq + a4) * xq + a6) * xq
        + (((a1 * xq + a3) * xq + a5) * xq + a7) * x0
}

/// OpenCV's `f64_pow` for finite `x > 0` and finite, non-integer `y` (the only case the tables
/// need): `exp(y * log(x))` with OpenCV's `exp` and `log`.
fn cv_pow(x: f64, y: f64) -> f64 {
    cv_exp(y * cv_log(x))
}

/// OpenCV's `f32_cbrt` (Ken Turkowski's rational approximation; the mantissa is truncated).
fn cv_cbrt(x: f32) -> f32 {
    if x.is_nan() {
        return f32::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    let bits = x.to_bits();
    if bits & 0x7fff_ffff == 0 {
        return 0.0;
    }
    let s = bits >> 31;
    let mut ex = ((bits >> 23) & 0xff) as i32 - 127;
    let mut shx = ex % 3;
    if shx >= 0 {
        shx -= 3;
    }
    ex = (ex - shx) / 3 - 1;
    let mut fr =
        f64::from_bits((((shx + 1023) as u64) << 52) | (((bits & 0x7f_ffff) as u64) << 29));
    let a1 = f64::from_bits(0x4046a09e6653ba70);
    let a2 = f64::from_bits(0x406808f46c6116e0);
    let a3 = f64::from_bits(0x405dca97439cae14);
    let a4 = f64::from_bits(0x402add70d2827500);
    let a5 = f64::from_bits(0x3fc4f15f83f55d2d);
    let a6 = f64::from_bits(0x402d9e20660edb21);
    let a7 = f64::from_bits(0x4062ff15c0285815);
    let a8 = f64::from_bits(0x406510d06a8112ce);
    let a9 = f64::from_bits(0x4040fecbc9e2c375);
    let a10 = 1.0;
    fr = ((((a1 * fr + a2) * fr + a3) * fr + a4) * fr + a5)
        / ((((a6 * fr + a7) * fr + a8) * fr + a9) * fr + a10);
    let frac = ((fr.to_bits() & ((1u64 << 52) - 1)) >> 29) as u32;
    f32::from_bits(
        (s << 31)
            .wrapping_add(((ex + 127) as u32) << 23)
            .wrapping_add(frac),
    )
}

/// `cvRound` of a `softfloat`: nearest integer, ties to even.
fn round_f32(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// `cvRound` of a `softdouble`: nearest integer, ties to even.
fn round_f64(x: f64) -> i32 {
    x.round_ties_even() as i32
}

// ------------------------------------------------------------------------------------------
// color_lab.cpp constants and tables

/// D65 white point (0.950456, 1, 1.088754) as OpenCV stores it.
const D65: [f64; 3] = [
    f64::from_bits(0x3fee6a22b3892ee8),
    1.0,
    f64::from_bits(0x3ff16b8950763a19),
];

/// `sRGB2XYZ_D65`, row-major (X, Y, Z rows; R, G, B columns).
const SRGB2XYZ_D65: [u64; 9] = [
    0x3fda65a14488c60d,
    0x3fd6e297396d0918,
    0x3fc71819d2391d58,
    0x3fcb38cda6e75ff6,
    0x3fe6e297396d0918,
    0x3fb279aae6c8f755,
    0x3f93cc4ac6cdaf4b,
    0x3fbe836eb4e98138,
    0x3fee68427418d691,
];

/// `XYZ2sRGB_D65`, row-major (R, G, B rows; X, Y, Z columns).
const XYZ2SRGB_D65: [u64; 9] = [
    0x4009ec804102ff8f,
    0xbff8982a9930be0e,
    0xbfdfe7ff583a53b9,
    0xbfef042528ae74f3,
    0x3ffe040f23897204,
    0x3fa546d3f9e7b80b,
    0x3fac7de5082cf52c,
    0xbfca1e14bdfd2631,
    0x3ff0eabef06b3786,
];

/// `xyz_shift` (= `lab_shift`).
const LAB_SHIFT: i32 = 12;
/// `gamma_shift`.
const GAMMA_SHIFT: i32 = 3;
/// `lab_shift2`.
const LAB_SHIFT2: i32 = LAB_SHIFT + GAMMA_SHIFT;
/// `LAB_CBRT_TAB_SIZE_B`.
const CBRT_TAB_SIZE: usize = 256 * 3 / 2 * (1 << GAMMA_SHIFT);
/// `inv_gamma_shift`.
const INV_GAMMA_SHIFT: i32 = 12;
/// `INV_GAMMA_TAB_SIZE`.
const INV_GAMMA_TAB_SIZE: usize = 1 << INV_GAMMA_SHIFT;
/// `LUT_BASE` / `Lab2RGBinteger::BASE`.
const BASE: i32 = 1 << 14;
/// `minABvalue`.
const MIN_AB: i32 = -8145;
/// `Lab2RGBinteger::shift`.
const LAB2RGB_SHIFT: i32 = LAB_SHIFT + (14 - INV_GAMMA_SHIFT);

/// `CV_DESCALE`.
fn descale(x: i32, n: i32) -> i32 {
    (x + (1 << (n - 1))) >> n
}

/// Length of `abToXZ_b`.
const XZ_LEN: usize = (BASE * 9 / 4) as usize;

/// The tables and fixed-point coefficients of `createLabTabs`, `RGB2Lab_b` and `Lab2RGBinteger`.
/// The 16-bit tables are widened to i32 (the same values) so that AVX2 gathers can read them,
/// and have fixed lengths so that clamped indices need no bounds check.
struct Tables {
    /// `sRGBGammaTab_b`.
    gamma: [i32; 256],
    /// `LabCbrtTab_b`.
    cbrt: Box<[i32; CBRT_TAB_SIZE]>,
    /// `sRGBInvGammaTab_b`.
    inv_gamma: Box<[i32; INV_GAMMA_TAB_SIZE]>,
    /// `LabToYF_b`: (y, ify) per L.
    lab_to_yf: [(i32, i32); 256],
    /// `abToXZ_b`, indexed from `minABvalue`.
    ab_to_xz: Box<[i32; XZ_LEN]>,
    /// `RGB2Lab_b::coeffs` for R, G, B input order (X, Y, Z rows).
    to_xyz: [i32; 9],
    /// `Lab2RGBinteger::coeffs` for R, G, B output order (R, G, B rows).
    to_rgb: [i32; 9],
}

/// A table of exactly `N` values from `values`.
fn boxed<const N: usize>(values: impl Iterator<Item = i32>) -> Box<[i32; N]> {
    let v: Box<[i32]> = values.collect();
    v.try_into()
        .unwrap_or_else(|_| unreachable!("every table is built from a range of its length"))
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(build_tables)
}

fn build_tables() -> Tables {
    let gamma_threshold = 809.0 / 20000.0;
    let gamma_inv_threshold = 7827.0 / 2500000.0;
    let gamma_low_scale = 323.0 / 25.0;
    let gamma_power = 12.0 / 5.0;
    let gamma_xshift = 11.0 / 200.0;
    let apply_gamma = |x: f32| -> f32 {
        let xd = x as f64;
        let r = if xd <= gamma_threshold {
            xd / gamma_low_scale
        } else {
            cv_pow((xd + gamma_xshift) / (1.0 + gamma_xshift), gamma_power)
        };
        r as f32
    };
    let apply_inv_gamma = |x: f32| -> f32 {
        let xd = x as f64;
        let r = if xd <= gamma_inv_threshold {
            xd * gamma_low_scale
        } else {
            cv_pow(xd, 1.0 / gamma_power) * (1.0 + gamma_xshift) - gamma_xshift
        };
        r as f32
    };
    let lthresh = 216.0f32 / 24389.0;
    let lscale = 841.0f32 / 108.0;
    let lbias = 16.0f32 / 116.0;
    let f255 = 255.0f32;

    let int_scale = (255 * (1 << GAMMA_SHIFT)) as f32;
    let gamma: [i32; 256] =
        std::array::from_fn(|i| round_f32(int_scale * apply_gamma(i as f32 / f255)) as u16 as i32);

    let inv_scale = 1.0f32 / INV_GAMMA_TAB_SIZE as f32;
    let inv_gamma = boxed(
        (0..INV_GAMMA_TAB_SIZE)
            .map(|i| round_f32(f255 * apply_inv_gamma(inv_scale * i as f32)) as u16 as i32),
    );

    let cb_tab_scale = 1.0f32 / (f255 * (1 << GAMMA_SHIFT) as f32);
    let lshift2 = (1 << LAB_SHIFT2) as f32;
    let cbrt = boxed((0..CBRT_TAB_SIZE).map(|i| {
        let x = cb_tab_scale * i as f32;
        let f = if x < lthresh {
            x.mul_add(lscale, lbias)
        } else {
            cv_cbrt(x)
        };
        round_f32(lshift2 * f) as u16 as i32
    }));

    let lab_to_yf = std::array::from_fn(|i| {
        let i = i as i32;
        if i <= 20 {
            let y = round_f32((i * BASE * 20 * 9) as f32 / (17 * 29 * 29 * 29) as f32);
            let ify =
                round_f32(BASE as f32 * (16.0f32 / 116.0 + (i * 5) as f32 / (3 * 17 * 29) as f32));
            (y, ify)
        } else {
            let fy = (i * 100 * BASE) as f32 / (255 * 116) as f32 + (16 * BASE) as f32 / 116.0;
            (
                round_f32(fy * fy * fy / (BASE * BASE) as f32),
                round_f32(fy),
            )
        }
    });

    let ab_to_xz = boxed((MIN_AB..BASE * 9 / 4 + MIN_AB).map(|i| {
        let i = i as i64;
        let base = BASE as i64;
        let v = if i <= 3390 {
            i * 108 / 841 - base * 16 / 116 * 108 / 841
        } else {
            i * i / base * i / base
        };
        v as i32
    }));

    let lshift = (1 << LAB_SHIFT) as f64;
    let to_xyz = std::array::from_fn(|k| {
        let (i, j) = (k / 3, k % 3);
        round_f64(lshift * f64::from_bits(SRGB2XYZ_D65[i * 3 + j]) / D65[i])
    });
    let to_rgb = std::array::from_fn(|k| {
        let (row, i) = (k / 3, k % 3);
        round_f64(lshift * f64::from_bits(XYZ2SRGB_D65[row * 3 + i]) * D65[i])
    });

    Tables {
        gamma,
        cbrt,
        inv_gamma,
        lab_to_yf,
        ab_to_xz,
        to_xyz,
        to_rgb,
    }
}

/// `RGB2Lab_b`'s L: `descale(L_SCALE * fy + L_SHIFT, lab_shift2)`.
const L_SCALE: i32 = (116 * 255 + 50) / 100;
/// See [`L_SCALE`].
const L_SHIFT: i32 = -((16 * 255 * (1 << LAB_SHIFT2) + 50) / 100);
/// The offset of a and b in `RGB2Lab_b`, scaled.
const AB_BIAS: i32 = 128 * (1 << LAB_SHIFT2);

/// `RGB2Lab_b` for one sRGB pixel (L scaled to 0..=255, a and b offset by 128).
pub(super) fn rgb_to_lab(p: [u8; 3]) -> [u8; 3] {
    rgb_to_lab_in(tables(), p)
}

#[inline(always)]
fn rgb_to_lab_in(t: &Tables, [r, g, b]: [u8; 3]) -> [u8; 3] {
    let c = &t.to_xyz;
    let (r, g, b) = (
        t.gamma[r as usize],
        t.gamma[g as usize],
        t.gamma[b as usize],
    );
    let f = |k: usize| {
        let idx = descale(r * c[k] + g * c[k + 1] + b * c[k + 2], LAB_SHIFT);
        t.cbrt[idx.clamp(0, CBRT_TAB_SIZE as i32 - 1) as usize]
    };
    let (fx, fy, fz) = (f(0), f(3), f(6));
    let l = descale(L_SCALE * fy + L_SHIFT, LAB_SHIFT2);
    let a = descale(500 * (fx - fy) + AB_BIAS, LAB_SHIFT2);
    let b = descale(200 * (fy - fz) + AB_BIAS, LAB_SHIFT2);
    [
        l.clamp(0, 255) as u8,
        a.clamp(0, 255) as u8,
        b.clamp(0, 255) as u8,
    ]
}

/// `Lab2RGBinteger`'s `adiv` of an 8-bit a.
fn a_div(a: i32) -> i32 {
    ((5 * a * 53687 + (1 << 7)) >> 13) - 128 * BASE / 500
}

/// `Lab2RGBinteger`'s `bdiv` of an 8-bit b.
fn b_div(b: i32) -> i32 {
    ((b * 41943 + (1 << 4)) >> 9) - 128 * BASE / 200 + 1
}

/// `Lab2RGBinteger` for one 8-bit L*a*b* pixel to sRGB.
pub(super) fn lab_to_rgb([l, a, b]: [u8; 3]) -> [u8; 3] {
    let t = tables();
    let (y, ify) = t.lab_to_yf[l as usize];
    lab_to_rgb_in(t, y, ify, a_div(a as i32), b_div(b as i32))
}

/// `Lab2RGBinteger` from L's `y` and `ify` and the `adiv` and `bdiv` of a and b.
#[inline(always)]
fn lab_to_rgb_in(t: &Tables, y: i32, ify: i32, adiv: i32, bdiv: i32) -> [u8; 3] {
    let xz = |v: i32| t.ab_to_xz[(v - MIN_AB).clamp(0, XZ_LEN as i32 - 1) as usize];
    let (x, z) = (xz(ify + adiv), xz(ify - bdiv));
    let c = &t.to_rgb;
    let out = |k: usize| {
        let v = descale(
            c[k].wrapping_mul(x)
                .wrapping_add(c[k + 1].wrapping_mul(y))
                .wrapping_add(c[k + 2].wrapping_mul(z)),
            LAB2RGB_SHIFT,
        );
        t.inv_gamma[v.clamp(0, INV_GAMMA_TAB_SIZE as i32 - 1) as usize].min(255) as u8
    };
    [out(0), out(3), out(6)]
}

/// [`rgb_to_lab`] over interleaved RGB bytes `src` into `dst` (the first `min` of both lengths,
/// in whole pixels): eight pixels at a time with AVX2 where the processor has it.
pub(super) fn rgb_to_lab_row(src: &[u8], dst: &mut [u8]) {
    rgb_to_lab_row_with(src, dst, true);
}

/// [`rgb_to_lab_row`], with the AVX2 path only if `simd` (the tests compare both).
fn rgb_to_lab_row_with(src: &[u8], dst: &mut [u8], simd: bool) {
    let t = tables();
    let len = src.len().min(dst.len()) / 3 * 3;
    let (src, dst) = (&src[..len], &mut dst[..len]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if simd && crate::cpu::has("avx2") {
        // SAFETY: the processor has AVX2, checked above
        done = unsafe { avx2::rgb_to_lab(t, src, dst) };
    }
    let _ = simd;
    for (s, d) in src[done..]
        .chunks_exact(3)
        .zip(dst[done..].chunks_exact_mut(3))
    {
        d.copy_from_slice(&rgb_to_lab_in(t, [s[0], s[1], s[2]]));
    }
}

/// [`lab_to_rgb`] over rows, each L, a and b first mapped through its own 256-entry table (the
/// histogram match), with the tables' `Lab2RGBinteger` terms precomputed per value.
pub(super) struct LabToRgb {
    /// Per L: `y | ify << 16` of the mapped L (both are in 0..=16384).
    yf: [i32; 256],
    /// Per a: `adiv` of the mapped a.
    adiv: [i32; 256],
    /// Per b: `bdiv` of the mapped b.
    bdiv: [i32; 256],
}

impl LabToRgb {
    /// The conversion of `[luts[0][l], luts[1][a], luts[2][b]]` for each pixel `[l, a, b]`.
    pub(super) fn new(luts: &[[u8; 256]; 3]) -> LabToRgb {
        let t = tables();
        LabToRgb {
            yf: std::array::from_fn(|i| {
                let (y, ify) = t.lab_to_yf[luts[0][i] as usize];
                y | (ify << 16)
            }),
            adiv: std::array::from_fn(|i| a_div(luts[1][i] as i32)),
            bdiv: std::array::from_fn(|i| b_div(luts[2][i] as i32)),
        }
    }

    /// Converts interleaved L*a*b* bytes `src` into RGB `dst` (the first `min` of both lengths,
    /// in whole pixels): eight pixels at a time with AVX2 where the processor has it.
    pub(super) fn row(&self, src: &[u8], dst: &mut [u8]) {
        self.row_with(src, dst, true);
    }

    /// [`LabToRgb::row`], with the AVX2 path only if `simd` (the tests compare both).
    fn row_with(&self, src: &[u8], dst: &mut [u8], simd: bool) {
        let t = tables();
        let len = src.len().min(dst.len()) / 3 * 3;
        let (src, dst) = (&src[..len], &mut dst[..len]);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if simd && crate::cpu::has("avx2") {
            // SAFETY: the processor has AVX2, checked above
            done = unsafe { avx2::lab_to_rgb(t, self, src, dst) };
        }
        let _ = simd;
        for (s, d) in src[done..]
            .chunks_exact(3)
            .zip(dst[done..].chunks_exact_mut(3))
        {
            let yf = self.yf[s[0] as usize];
            let (adiv, bdiv) = (self.adiv[s[1] as usize], self.bdiv[s[2] as usize]);
            d.copy_from_slice(&lab_to_rgb_in(t, yf & 0xffff, yf >> 16, adiv, bdiv));
        }
    }
}

/// The AVX2 kernels: eight pixels per step, each lane the scalar code's integer operations
/// (i32 products wrap as `wrapping_mul` does, `max`/`min` clamp, table reads are gathers of the
/// same i32 tables), so the bytes are the scalar path's.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{
        AB_BIAS, CBRT_TAB_SIZE, INV_GAMMA_TAB_SIZE, L_SCALE, L_SHIFT, LAB_SHIFT, LAB_SHIFT2,
        LAB2RGB_SHIFT, LabToRgb, MIN_AB, Tables, XZ_LEN,
    };

    /// A shuffle that puts byte `3i + c` of each 128-bit lane in the low byte of its i32 `i`
    /// (zeros above): channel `c` of the lane's four pixels.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn channel_mask(c: i8) -> __m256i {
        let mut m = [-1i8; 32];
        for lane in 0..2 {
            for i in 0..4 {
                m[lane * 16 + i * 4] = 3 * i as i8 + c;
            }
        }
        // SAFETY: `m` is 32 bytes
        unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
    }

    /// Pixels `[p, p + 8)` of `src` (24 bytes from byte `3p`) as the i32 lanes of R, G and B.
    ///
    /// # Safety
    /// `3p + 28 <= src.len()` (the second 16-byte load ends 4 bytes past the pixels).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(src: &[u8], at: usize, masks: &[__m256i; 3]) -> [__m256i; 3] {
        // SAFETY: bytes at..at + 28 are in src (caller's contract)
        let v = unsafe {
            let p = src.as_ptr().add(at);
            _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadu_si128(p.cast())),
                _mm_loadu_si128(p.add(12).cast()),
            )
        };
        masks.map(|m| _mm256_shuffle_epi8(v, m))
    }

    /// Packs lanes of three channels already in 0..=255 as eight interleaved pixels: bytes
    /// 0..12 of each 128-bit lane are its four pixels.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pack(c: [__m256i; 3]) -> __m256i {
        let v = _mm256_or_si256(
            _mm256_or_si256(c[0], _mm256_slli_epi32::<8>(c[1])),
            _mm256_slli_epi32::<16>(c[2]),
        );
        let keep = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, //
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
        );
        _mm256_shuffle_epi8(v, keep)
    }

    /// Stores the eight pixels of [`pack`] at `out[..24]` (written out in each kernel, where
    /// the compiler did not inline a function doing it).
    macro_rules! store {
        ($out:expr, $packed:expr) => {{
            let out: &mut [u8] = $out;
            assert!(out.len() >= 24);
            let packed = $packed;
            let (lo, hi) = (
                _mm256_castsi256_si128(packed),
                _mm256_extracti128_si256::<1>(packed),
            );
            // SAFETY: `out` holds 24 bytes: 8 + 4 from each lane
            unsafe {
                let p = out.as_mut_ptr();
                _mm_storel_epi64(p.cast(), lo);
                p.add(8)
                    .cast::<i32>()
                    .write_unaligned(_mm_extract_epi32::<2>(lo));
                _mm_storel_epi64(p.add(12).cast(), hi);
                p.add(20)
                    .cast::<i32>()
                    .write_unaligned(_mm_extract_epi32::<2>(hi));
            }
        }};
    }

    /// `table[clamp(i, 0, N - 1)]` in each lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lookup<const N: usize>(table: &[i32; N], i: __m256i) -> __m256i {
        let i = _mm256_min_epi32(
            _mm256_max_epi32(i, _mm256_setzero_si256()),
            _mm256_set1_epi32(N as i32 - 1),
        );
        // SAFETY: every lane is clamped into the table
        unsafe { _mm256_i32gather_epi32::<4>(table.as_ptr(), i) }
    }

    /// `table[i]` in each lane.
    ///
    /// # Safety
    /// Every lane of `i` is in 0..=255 (a byte from [`load`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lookup_byte(table: &[i32; 256], i: __m256i) -> __m256i {
        // SAFETY: every lane indexes the table (caller's contract)
        unsafe { _mm256_i32gather_epi32::<4>(table.as_ptr(), i) }
    }

    /// `CV_DESCALE(x, N)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn descale<const N: i32>(x: __m256i) -> __m256i {
        _mm256_srai_epi32::<N>(_mm256_add_epi32(x, _mm256_set1_epi32(1 << (N - 1))))
    }

    /// `c0 * a + c1 * b + c2 * d` in wrapping i32 arithmetic.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot3(c: &[i32], v: [__m256i; 3]) -> __m256i {
        let m = |k: usize| _mm256_mullo_epi32(_mm256_set1_epi32(c[k]), v[k]);
        _mm256_add_epi32(_mm256_add_epi32(m(0), m(1)), m(2))
    }

    /// Clamps each lane to 0..=255.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn to_u8(x: __m256i) -> __m256i {
        _mm256_min_epi32(
            _mm256_max_epi32(x, _mm256_setzero_si256()),
            _mm256_set1_epi32(255),
        )
    }

    /// [`super::rgb_to_lab_in`] over the whole pixels of `src` into `dst` (the same length)
    /// while eight more and 4 spare bytes remain; returns the bytes done.
    ///
    /// # Safety
    /// The processor has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rgb_to_lab(t: &Tables, src: &[u8], dst: &mut [u8]) -> usize {
        let masks = [channel_mask(0), channel_mask(1), channel_mask(2)];
        let len = src.len().min(dst.len());
        let mut at = 0;
        while at + 28 <= len {
            // SAFETY: at + 28 <= src.len()
            let rgb = unsafe { load(src, at, &masks) };
            // SAFETY: the lanes are bytes from `load`
            let g = rgb.map(|v| unsafe { lookup_byte(&t.gamma, v) });
            let f = |k: usize| {
                let xyz = descale::<LAB_SHIFT>(dot3(&t.to_xyz[k..k + 3], g));
                lookup::<CBRT_TAB_SIZE>(&t.cbrt, xyz)
            };
            let (fx, fy, fz) = (f(0), f(3), f(6));
            let l = _mm256_add_epi32(
                _mm256_mullo_epi32(_mm256_set1_epi32(L_SCALE), fy),
                _mm256_set1_epi32(L_SHIFT),
            );
            let a = _mm256_add_epi32(
                _mm256_mullo_epi32(_mm256_set1_epi32(500), _mm256_sub_epi32(fx, fy)),
                _mm256_set1_epi32(AB_BIAS),
            );
            let b = _mm256_add_epi32(
                _mm256_mullo_epi32(_mm256_set1_epi32(200), _mm256_sub_epi32(fy, fz)),
                _mm256_set1_epi32(AB_BIAS),
            );
            let lab = [l, a, b].map(|v| to_u8(descale::<LAB_SHIFT2>(v)));
            store!(&mut dst[at..], pack(lab));
            at += 24;
        }
        at
    }

    /// [`LabToRgb::row`]'s pixels over `src` into `dst` (the same length) while eight more and
    /// 4 spare bytes remain; returns the bytes done.
    ///
    /// # Safety
    /// The processor has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lab_to_rgb(t: &Tables, m: &LabToRgb, src: &[u8], dst: &mut [u8]) -> usize {
        let masks = [channel_mask(0), channel_mask(1), channel_mask(2)];
        let len = src.len().min(dst.len());
        let min_ab = _mm256_set1_epi32(MIN_AB);
        let mut at = 0;
        while at + 28 <= len {
            // SAFETY: at + 28 <= src.len()
            let [l, a, b] = unsafe { load(src, at, &masks) };
            // SAFETY: the lanes are bytes from `load`
            let (yf, adiv, bdiv) = unsafe {
                (
                    lookup_byte(&m.yf, l),
                    lookup_byte(&m.adiv, a),
                    lookup_byte(&m.bdiv, b),
                )
            };
            let y = _mm256_and_si256(yf, _mm256_set1_epi32(0xffff));
            let ify = _mm256_srli_epi32::<16>(yf);
            let x = lookup::<XZ_LEN>(
                &t.ab_to_xz,
                _mm256_sub_epi32(_mm256_add_epi32(ify, adiv), min_ab),
            );
            let z = lookup::<XZ_LEN>(
                &t.ab_to_xz,
                _mm256_sub_epi32(_mm256_sub_epi32(ify, bdiv), min_ab),
            );
            let out = |k: usize| {
                let v = descale::<LAB2RGB_SHIFT>(dot3(&t.to_rgb[k..k + 3], [x, y, z]));
                _mm256_min_epi32(
                    lookup::<INV_GAMMA_TAB_SIZE>(&t.inv_gamma, v),
                    _mm256_set1_epi32(255),
                )
            };
            store!(&mut dst[at..], pack([out(0), out(3), out(6)]));
            at += 24;
        }
        at
    }
}

/// `expTab` of OpenCV's `softfloat.cpp`: 2^(i/64).
const EXP_TAB: [u64; 64] = [
    0x3ff0000000000000,
    0x3ff02c9a3e778061,
    0x3ff059b0d3158574,
    0x3ff0874518759bc8,
    0x3ff0b5586cf9890f,
    0x3ff0e3ec32d3d1a2,
    0x3ff11301d0125b51,
    0x3ff1429aaea92de0,
    0x3ff172b83c7d517b,
    0x3ff1a35beb6fcb75,
    0x3ff1d4873168b9aa,
    0x3ff2063b88628cd6,
    0x3ff2387a6e756238,
    0x3ff26b4565e27cdd,
    0x3ff29e9df51fdee1,
    0x3ff2d285a6e4030b,
    0x3ff306fe0a31b715,
    0x3ff33c08b26416ff,
    0x3ff371a7373aa9cb,
    0x3ff3a7db34e59ff7,
    0x3ff3dea64c123422,
    0x3ff4160a21f72e2a,
    0x3ff44e086061892d,
    0x3ff486a2b5c13cd0,
    0x3ff4bfdad5362a27,
    0x3ff4f9b2769d2ca7,
    0x3ff5342b569d4f82,
    0x3ff56f4736b527da,
    0x3ff5ab07dd485429,
    0x3ff5e76f15ad2148,
    0x3ff6247eb03a5585,
    0x3ff6623882552225,
    0x3ff6a09e667f3bcd,
    0x3ff6dfb23c651a2f,
    0x3ff71f75e8ec5f74,
    0x3ff75feb564267c9,
    0x3ff7a11473eb0187,
    0x3ff7e2f336cf4e62,
    0x3ff82589994cce13,
    0x3ff868d99b4492ed,
    0x3ff8ace5422aa0db,
    0x3ff8f1ae99157736,
    0x3ff93737b0cdc5e5,
    0x3ff97d829fde4e50,
    0x3ff9c49182a3f090,
    0x3ffa0c667b5de565,
    0x3ffa5503b23e255d,
    0x3ffa9e6b5579fdbf,
    0x3ffae89f995ad3ad,
    0x3ffb33a2b84f15fb,
    0x3ffb7f76f2fb5e47,
    0x3ffbcc1e904bc1d2,
    0x3ffc199bdd85529c,
    0x3ffc67f12e57d14b,
    0x3ffcb720dcef9069,
    0x3ffd072d4a07897c,
    0x3ffd5818dcfba487,
    0x3ffda9e603db3285,
    0x3ffdfc97337b9b5f,
    0x3ffe502ee78b3ff6,
    0x3ffea4afa2a490da,
    0x3ffefa1bee615a27,
    0x3fff50765b6e4540,
    0x3fffa7c1819e90d8,
];
/// `icvLogTab` of OpenCV's `softfloat.cpp`: pairs (ln(1 + i/256), 1 / (1 + i/256)) for
/// i = 0..=254, then the pair for i = 256.
const LOG_TAB: [u64; 512] = [
    0x0000000000000000,
    0x3ff0000000000000,
    0x3f6ff00aa2b10bc0,
    0x3fefe01fe01fe020,
    0x3f7fe02a6b106788,
    0x3fefc07f01fc07f0,
    0x3f87dc475f810a76,
    0x3fefa11caa01fa12,
    0x3f8fc0a8b0fc03e3,
    0x3fef81f81f81f820,
    0x3f93cea44346a574,
    0x3fef6310aca0dbb5,
    0x3f97b91b07d5b11a,
    0x3fef44659e4a4271,
    0x3f9b9fc027af9197,
    0x3fef25f644230ab5,
    0x3f9f829b0e783300,
    0x3fef07c1f07c1f08,
    0x3fa1b0d98923d97f,
    0x3feee9c7f8458e02,
    0x3fa39e87b9febd5f,
    0x3feecc07b301ecc0,
    0x3fa58a5bafc8e4d4,
    0x3feeae807aba01eb,
    0x3fa77458f632dcfc,
    0x3fee9131abf0b767,
    0x3fa95c830ec8e3eb,
    0x3fee741aa59750e4,
    0x3fab42dd711971be,
    0x3fee573ac901e574,
    0x3fad276b8adb0b52,
    0x3fee3a9179dc1a73,
    0x3faf0a30c01162a6,
    0x3fee1e1e1e1e1e1e,
    0x3fb075983598e471,
    0x3fee01e01e01e01e,
    0x3fb16536eea37ae0,
    0x3fede5d6e3f8868a,
    0x3fb253f62f0a1416,
    0x3fedca01dca01dca,
    0x3fb341d7961bd1d0,
    0x3fedae6076b981db,
    0x3fb42edcbea646f0,
    0x3fed92f2231e7f8a,
    0x3fb51b073f06183f,
    0x3fed77b654b82c34,
    0x3fb60658a93750c3,
    0x3fed5cac807572b2,
    0x3fb6f0d28ae56b4b,
    0x3fed41d41d41d41d,
    0x3fb7da766d7b12cc,
    0x3fed272ca3fc5b1a,
    0x3fb8c345d6319b20,
    0x3fed0cb58f6ec074,
    0x3fb9ab42462033ac,
    0x3fecf26e5c44bfc6,
    0x3fba926d3a4ad563,
    0x3fecd85689039b0b,
    0x3fbb78c82bb0eda1,
    0x3fecbe6d9601cbe7,
    0x3fbc5e548f5bc743,
    0x3feca4b3055ee191,
    0x3fbd4313d66cb35d,
    0x3fec8b265afb8a42,
    0x3fbe27076e2af2e5,
    0x3fec71c71c71c71c,
    0x3fbf0a30c01162a6,
    0x3fec5894d10d4986,
    0x3fbfec9131dbeaba,
    0x3fec3f8f01c3f8f0,
    0x3fc0671512ca596e,
    0x3fec26b5392ea01c,
    0x3fc0d77e7cd08e59,
    0x3fec0e070381c0e0,
    0x3fc14785846742ac,
    0x3febf583ee868d8b,
    0x3fc1b72ad52f67a0,
    0x3febdd2b899406f7,
    0x3fc2266f190a5acb,
    0x3febc4fd65883e7b,
    0x3fc29552f81ff523,
    0x3febacf914c1bad0,
    0x3fc303d718e47fd2,
    0x3feb951e2b18ff23,
    0x3fc371fc201e8f74,
    0x3feb7d6c3dda338b,
    0x3fc3dfc2b0ecc629,
    0x3feb65e2e3beee05,
    0x3fc44d2b6ccb7d1e,
    0x3feb4e81b4e81b4f,
    0x3fc4ba36f39a55e5,
    0x3feb37484ad806ce,
    0x3fc526e5e3a1b437,
    0x3feb2036406c80d9,
    0x3fc59338d9982085,
    0x3feb094b31d922a4,
    0x3fc5ff3070a793d3,
    0x3feaf286bca1af28,
    0x3fc66acd4272ad50,
    0x3feadbe87f94905e,
    0x3fc6d60fe719d21c,
    0x3feac5701ac5701b,
    0x3fc740f8f54037a4,
    0x3feaaf1d2f87ebfd,
    0x3fc7ab890210d909,
    0x3fea98ef606a63be,
    0x3fc815c0a14357ea,
    0x3fea82e65130e159,
    0x3fc87fa06520c910,
    0x3fea6d01a6d01a6d,
    0x3fc8e928de886d40,
    0x3fea574107688a4a,
    0x3fc9525a9cf456b4,
    0x3fea41a41a41a41a,
    0x3fc9bb362e7dfb83,
    0x3fea2c2a87c51ca0,
    0x3fca23bc1fe2b563,
    0x3fea16d3f97a4b02,
    0x3fca8becfc882f18,
    0x3fea01a01a01a01a,
    0x3fcaf3c94e80bff2,
    0x3fe9ec8e951033d9,
    0x3fcb5b519e8fb5a4,
    0x3fe9d79f176b682d,
    0x3fcbc286742d8cd6,
    0x3fe9c2d14ee4a102,
    0x3fcc2968558c18c0,
    0x3fe9ae24ea5510da,
    0x3fcc8ff7c79a9a21,
    0x3fe999999999999a,
    0x3fccf6354e09c5dc,
    0x3fe9852f0d8ec0ff,
    0x3fcd5c216b4fbb91,
    0x3fe970e4f80cb872,
    0x3fcdc1bca0abec7d,
    0x3fe95cbb0be377ae,
    0x3fce27076e2af2e5,
    0x3fe948b0fcd6e9e0,
    0x3fce8c0252aa5a5f,
    0x3fe934c67f9b2ce6,
    0x3fcef0adcbdc5936,
    0x3fe920fb49d0e229,
    0x3fcf550a564b7b37,
    0x3fe90d4f120190d5,
    0x3fcfb9186d5e3e2a,
    0x3fe8f9c18f9c18fa,
    0x3fd00e6c45ad501c,
    0x3fe8e6527af1373f,
    0x3fd0402594b4d040,
    0x3fe8d3018d3018d3,
    0x3fd071b85fcd590d,
    0x3fe8bfce8062ff3a,
    0x3fd0a324e27390e3,
    0x3fe8acb90f6bf3aa,
    0x3fd0d46b579ab74b,
    0x3fe899c0f601899c,
    0x3fd1058bf9ae4ad5,
    0x3fe886e5f0abb04a,
    0x3fd136870293a8b0,
    0x3fe87427bcc092b9,
    0x3fd1675cababa60e,
    0x3fe8618618618618,
    0x3fd1980d2dd4236f,
    0x3fe84f00c2780614,
    0x3fd1c898c16999fa,
    0x3fe83c977ab2bedd,
    0x3fd1f8ff9e48a2f2,
    0x3fe82a4a0182a4a0,
    0x3fd22941fbcf7965,
    0x3fe8181818181818,
    0x3fd2596010df7639,
    0x3fe8060180601806,
    0x3fd2895a13de86a3,
    0x3fe7f405fd017f40,
    0x3fd2b9303ab89d24,
    0x3fe7e225515a4f1d,
    0x3fd2e8e2bae11d30,
    0x3fe7d05f417d05f4,
    0x3fd31871c9544184,
    0x3fe7beb3922e017c,
    0x3fd347dd9a987d54,
    0x3fe7ad2208e0ecc3,
    0x3fd3772662bfd85a,
    0x3fe79baa6bb6398b,
    0x3fd3a64c556945e9,
    0x3fe78a4c8178a4c8,
    0x3fd3d54fa5c1f70f,
    0x3fe77908119ac60d,
    0x3fd404308686a7e3,
    0x3fe767dce434a9b1,
    0x3fd432ef2a04e813,
    0x3fe756cac201756d,
    0x3fd4618bc21c5ec2,
    0x3fe745d1745d1746,
    0x3fd49006804009d0,
    0x3fe734f0c541fe8d,
    0x3fd4be5f957778a0,
    0x3fe724287f46debc,
    0x3fd4ec9732600269,
    0x3fe713786d9c7c09,
    0x3fd51aad872df82d,
    0x3fe702e05c0b8170,
    0x3fd548a2c3add262,
    0x3fe6f26016f26017,
    0x3fd5767717455a6c,
    0x3fe6e1f76b4337c7,
    0x3fd5a42ab0f4cfe1,
    0x3fe6d1a62681c861,
    0x3fd5d1bdbf5809ca,
    0x3fe6c16c16c16c17,
    0x3fd5ff3070a793d3,
    0x3fe6b1490aa31a3d,
    0x3fd62c82f2b9c795,
    0x3fe6a13cd1537290,
    0x3fd659b57303e1f2,
    0x3fe691473a88d0c0,
    0x3fd686c81e9b14ae,
    0x3fe6816816816817,
    0x3fd6b3bb2235943d,
    0x3fe6719f3601671a,
    0x3fd6e08eaa2ba1e3,
    0x3fe661ec6a5122f9,
    0x3fd70d42e2789235,
    0x3fe6524f853b4aa3,
    0x3fd739d7f6bbd006,
    0x3fe642c8590b2164,
    0x3fd7664e1239dbce,
    0x3fe63356b88ac0de,
    0x3fd792a55fdd47a2,
    0x3fe623fa77016240,
    0x3fd7bede0a37afbf,
    0x3fe614b36831ae94,
    0x3fd7eaf83b82afc3,
    0x3fe6058160581606,
    0x3fd816f41da0d495,
    0x3fe5f66434292dfc,
    0x3fd842d1da1e8b17,
    0x3fe5e75bb8d015e7,
    0x3fd86e919a330ba0,
    0x3fe5d867c3ece2a5,
    0x3fd89a3386c1425a,
    0x3fe5c9882b931057,
    0x3fd8c5b7c858b48a,
    0x3fe5babcc647fa91,
    0x3fd8f11e873662c7,
    0x3fe5ac056b015ac0,
    0x3fd91c67eb45a83d,
    0x3fe59d61f123ccaa,
    0x3fd947941c2116fa,
    0x3fe58ed2308158ed,
    0x3fd972a341135158,
    0x3fe5805601580560,
    0x3fd99d958117e08a,
    0x3fe571ed3c506b3a,
    0x3fd9c86b02dc0862,
    0x3fe56397ba7c52e2,
    0x3fd9f323ecbf984b,
    0x3fe5555555555555,
    0x3fda1dc064d5b995,
    0x3fe54725e6bb82fe,
    0x3fda484090e5bb0a,
    0x3fe5390948f40feb,
    0x3fda72a4966bd9ea,
    0x3fe52aff56a8054b,
    0x3fda9cec9a9a0849,
    0x3fe51d07eae2f815,
    0x3fdac718c258b0e4,
    0x3fe50f22e111c4c5,
    0x3fdaf1293247786b,
    0x3fe5015015015015,
    0x3fdb1b1e0ebdfc5b,
    0x3fe4f38f62dd4c9b,
    0x3fdb44f77bcc8f62,
    0x3fe4e5e0a72f0539,
    0x3fdb6eb59d3cf35d,
    0x3fe4d843bedc2c4c,
    0x3fdb9858969310fb,
    0x3fe4cab88725af6e,
    0x3fdbc1e08b0dad0a,
    0x3fe4bd3edda68fe1,
    0x3fdbeb4d9da71b7b,
    0x3fe4afd6a052bf5b,
    0x3fdc149ff115f026,
    0x3fe4a27fad76014a,
    0x3fdc3dd7a7cdad4d,
    0x3fe49539e3b2d067,
    0x3fdc66f4e3ff6ff7,
    0x3fe4880522014880,
    0x3fdc8ff7c79a9a21,
    0x3fe47ae147ae147b,
    0x3fdcb8e0744d7ac9,
    0x3fe46dce34596066,
    0x3fdce1af0b85f3eb,
    0x3fe460cbc7f5cf9a,
    0x3fdd0a63ae721e64,
    0x3fe453d9e2c776ca,
    0x3fdd32fe7e00ebd5,
    0x3fe446f86562d9fb,
    0x3fdd5b7f9ae2c683,
    0x3fe43a2730abee4d,
    0x3fdd83e7258a2f3e,
    0x3fe42d6625d51f87,
    0x3fddac353e2c5954,
    0x3fe420b5265e5951,
    0x3fddd46a04c1c4a0,
    0x3fe4141414141414,
    0x3fddfc859906d5b5,
    0x3fe40782d10e6566,
    0x3fde24881a7c6c26,
    0x3fe3fb013fb013fb,
    0x3fde4c71a8687704,
    0x3fe3ee8f42a5af07,
    0x3fde744261d68787,
    0x3fe3e22cbce4a902,
    0x3fde9bfa659861f5,
    0x3fe3d5d991aa75c6,
    0x3fdec399d2468cc0,
    0x3fe3c995a47babe7,
    0x3fdeeb20c640ddf4,
    0x3fe3bd60d9232955,
    0x3fdf128f5faf06ec,
    0x3fe3b13b13b13b14,
    0x3fdf39e5bc811e5b,
    0x3fe3a524387ac822,
    0x3fdf6123fa7028ac,
    0x3fe3991c2c187f63,
    0x3fdf884a36fe9ec2,
    0x3fe38d22d366088e,
    0x3fdfaf588f78f31e,
    0x3fe3813813813814,
    0x3fdfd64f20f61571,
    0x3fe3755bd1c945ee,
    0x3fdffd2e0857f498,
    0x3fe3698df3de0748,
    0x3fe011fab125ff8a,
    0x3fe35dce5f9f2af8,
    0x3fe02552a5a5d0fe,
    0x3fe3521cfb2b78c1,
    0x3fe0389eefce633b,
    0x3fe34679ace01346,
    0x3fe04bdf9da926d2,
    0x3fe33ae45b57bcb2,
    0x3fe05f14bd26459c,
    0x3fe32f5ced6a1dfa,
    0x3fe0723e5c1cdf40,
    0x3fe323e34a2b10bf,
    0x3fe0855c884b450e,
    0x3fe3187758e9ebb6,
    0x3fe0986f4f573520,
    0x3fe30d190130d190,
    0x3fe0ab76bece14d1,
    0x3fe301c82ac40260,
    0x3fe0be72e4252a82,
    0x3fe2f684bda12f68,
    0x3fe0d163ccb9d6b7,
    0x3fe2eb4ea1fed14b,
    0x3fe0e44985d1cc8b,
    0x3fe2e025c04b8097,
    0x3fe0f7241c9b497d,
    0x3fe2d50a012d50a0,
    0x3fe109f39e2d4c96,
    0x3fe2c9fb4d812ca0,
    0x3fe11cb81787ccf8,
    0x3fe2bef98e5a3711,
    0x3fe12f719593efbc,
    0x3fe2b404ad012b40,
    0x3fe1422025243d44,
    0x3fe2a91c92f3c105,
    0x3fe154c3d2f4d5e9,
    0x3fe29e4129e4129e,
    0x3fe1675cababa60e,
    0x3fe293725bb804a5,
    0x3fe179eabbd899a0,
    0x3fe288b01288b013,
    0x3fe18c6e0ff5cf06,
    0x3fe27dfa38a1ce4d,
    0x3fe19ee6b467c96e,
    0x3fe27350b8812735,
    0x3fe1b154b57da29e,
    0x3fe268b37cd60127,
    0x3fe1c3b81f713c24,
    0x3fe25e22708092f1,
    0x3fe1d610fe677003,
    0x3fe2539d7e9177b2,
    0x3fe1e85f5e7040d0,
    0x3fe2492492492492,
    0x3fe1faa34b87094c,
    0x3fe23eb79717605b,
    0x3fe20cdcd192ab6d,
    0x3fe23456789abcdf,
    0x3fe21f0bfc65beeb,
    0x3fe22a0122a0122a,
    0x3fe23130d7bebf42,
    0x3fe21fb78121fb78,
    0x3fe2434b6f483933,
    0x3fe21579804855e6,
    0x3fe2555bce98f7cb,
    0x3fe20b470c67c0d9,
    0x3fe26762013430df,
    0x3fe2012012012012,
    0x3fe2795e1289b11a,
    0x3fe1f7047dc11f70,
    0x3fe28b500df60782,
    0x3fe1ecf43c7fb84c,
    0x3fe29d37fec2b08a,
    0x3fe1e2ef3b3fb874,
    0x3fe2af15f02640ad,
    0x3fe1d8f5672e4abd,
    0x3fe2c0e9ed448e8b,
    0x3fe1cf06ada2811d,
    0x3fe2d2b4012edc9d,
    0x3fe1c522fc1ce059,
    0x3fe2e47436e40268,
    0x3fe1bb4a4046ed29,
    0x3fe2f62a99509546,
    0x3fe1b17c67f2bae3,
    0x3fe307d7334f10be,
    0x3fe1a7b9611a7b96,
    0x3fe3197a0fa7fe6a,
    0x3fe19e0119e0119e,
    0x3fe32b1339121d71,
    0x3fe19453808ca29c,
    0x3fe33ca2ba328994,
    0x3fe18ab083902bdb,
    0x3fe34e289d9ce1d3,
    0x3fe1811811811812,
    0x3fe35fa4edd36ea0,
    0x3fe1778a191bd684,
    0x3fe37117b54747b5,
    0x3fe16e0689427379,
    0x3fe38280fe58797e,
    0x3fe1648d50fc3201,
    0x3fe393e0d3562a19,
    0x3fe15b1e5f75270d,
    0x3fe3a5373e7ebdf9,
    0x3fe151b9a3fdd5c9,
    0x3fe3b68449fffc22,
    0x3fe1485f0e0acd3b,
    0x3fe3c7c7fff73205,
    0x3fe13f0e8d344724,
    0x3fe3d9026a7156fa,
    0x3fe135c81135c811,
    0x3fe3ea33936b2f5b,
    0x3fe12c8b89edc0ac,
    0x3fe3fb5b84d16f42,
    0x3fe12358e75d3033,
    0x3fe40c7a4880dce9,
    0x3fe11a3019a74826,
    0x3fe41d8fe84672ae,
    0x3fe1111111111111,
    0x3fe42e9c6ddf80bf,
    0x3fe107fbbe011080,
    0x3fe43f9fe2f9ce67,
    0x3fe0fef010fef011,
    0x3fe4509a5133bb0a,
    0x3fe0f5edfab325a2,
    0x3fe4618bc21c5ec2,
    0x3fe0ecf56be69c90,
    0x3fe472743f33aaad,
    0x3fe0e40655826011,
    0x3fe48353d1ea88df,
    0x3fe0db20a88f4696,
    0x3fe4942a83a2fc07,
    0x3fe0d24456359e3a,
    0x3fe4a4f85db03ebb,
    0x3fe0c9714fbcda3b,
    0x3fe4b5bd6956e273,
    0x3fe0c0a7868b4171,
    0x3fe4c679afccee39,
    0x3fe0b7e6ec259dc8,
    0x3fe4d72d3a39fd00,
    0x3fe0af2f722eecb5,
    0x3fe4e7d811b75bb0,
    0x3fe0a6810a6810a7,
    0x3fe4f87a3f5026e8,
    0x3fe09ddba6af8360,
    0x3fe50913cc01686b,
    0x3fe0953f39010954,
    0x3fe519a4c0ba3446,
    0x3fe08cabb37565e2,
    0x3fe52a2d265bc5aa,
    0x3fe0842108421084,
    0x3fe53aad05b99b7c,
    0x3fe07b9f29b8eae2,
    0x3fe54b2467999497,
    0x3fe073260a47f7c6,
    0x3fe55b9354b40bcd,
    0x3fe06ab59c7912fb,
    0x3fe56bf9d5b3f399,
    0x3fe0624dd2f1a9fc,
    0x3fe57c57f336f190,
    0x3fe059eea0727586,
    0x3fe58cadb5cd7989,
    0x3fe05197f7d73404,
    0x3fe59cfb25fae87d,
    0x3fe04949cc1664c5,
    0x3fe5ad404c359f2c,
    0x3fe0410410410410,
    0x3fe5bd7d30e71c73,
    0x3fe038c6b78247fc,
    0x3fe5cdb1dc6c1764,
    0x3fe03091b51f5e1a,
    0x3fe5ddde57149923,
    0x3fe02864fc7729e9,
    0x3fe5ee02a9241675,
    0x3fe0204081020408,
    0x3fe5fe1edad18918,
    0x3fe0182436517a37,
    0x3fe60e32f44788d8,
    0x3fe0101010101010,
    0x3fe62e42fefa39ef,
    0x3fe0000000000000,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels of many lengths (around the 8-pixel steps and their 4 spare bytes) from a
    /// xorshift stream.
    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        (0..len * 3)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 7) as u8
            })
            .collect()
    }

    const LENS: [usize; 12] = [0, 1, 7, 8, 9, 10, 11, 12, 17, 63, 1000, 4099];

    #[test]
    fn rgb_to_lab_rows_avx2_and_scalar_give_the_same_bytes() {
        // every G and B for R = 0, 5, ..., 255 (a fifth of all colours: the whole cube takes
        // seconds in an unoptimised test build), B fastest, in rows of 65536 pixels
        let mut row = Vec::with_capacity(65536 * 3);
        let (mut fast, mut slow) = (vec![0u8; 65536 * 3], vec![0u8; 65536 * 3]);
        for r in (0..=255u8).step_by(5) {
            row.clear();
            for g in 0..=255u8 {
                for b in 0..=255u8 {
                    row.extend_from_slice(&[r, g, b]);
                }
            }
            rgb_to_lab_row_with(&row, &mut fast, true);
            rgb_to_lab_row_with(&row, &mut slow, false);
            assert!(fast == slow, "R = {r}: the AVX2 and scalar rows differ");
            if r % 85 == 0 {
                for (p, q) in row.chunks_exact(3).zip(slow.chunks_exact(3)).step_by(97) {
                    assert_eq!(rgb_to_lab([p[0], p[1], p[2]]), [q[0], q[1], q[2]]);
                }
            }
        }
        for (i, len) in LENS.into_iter().enumerate() {
            let src = noise(len, i as u32);
            let (mut fast, mut slow) = (vec![0u8; len * 3], vec![0u8; len * 3]);
            rgb_to_lab_row_with(&src, &mut fast, true);
            rgb_to_lab_row_with(&src, &mut slow, false);
            assert_eq!(fast, slow, "{len} pixels");
        }
    }

    #[test]
    fn lab_to_rgb_rows_avx2_and_scalar_give_the_same_bytes_with_match_tables() {
        let identity: [[u8; 256]; 3] = [std::array::from_fn(|i| i as u8); 3];
        let conv = LabToRgb::new(&identity);
        let mut row = Vec::with_capacity(65536 * 3);
        let (mut fast, mut slow) = (vec![0u8; 65536 * 3], vec![0u8; 65536 * 3]);
        // every a and b for L = 0, 5, ..., 255
        for l in (0..=255u8).step_by(5) {
            row.clear();
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    row.extend_from_slice(&[l, a, b]);
                }
            }
            conv.row_with(&row, &mut fast, true);
            conv.row_with(&row, &mut slow, false);
            assert!(fast == slow, "L = {l}: the AVX2 and scalar rows differ");
            if l % 85 == 0 {
                for (p, q) in row.chunks_exact(3).zip(slow.chunks_exact(3)).step_by(97) {
                    assert_eq!(lab_to_rgb([p[0], p[1], p[2]]), [q[0], q[1], q[2]]);
                }
            }
        }
        // histogram-match tables: the row maps each channel first
        for (i, len) in LENS.into_iter().enumerate() {
            let t = noise(256, 100 + i as u32);
            let luts: [[u8; 256]; 3] =
                std::array::from_fn(|c| std::array::from_fn(|v| t[v * 3 + c]));
            let conv = LabToRgb::new(&luts);
            let src = noise(len, i as u32);
            let (mut fast, mut slow) = (vec![0u8; len * 3], vec![0u8; len * 3]);
            conv.row_with(&src, &mut fast, true);
            conv.row_with(&src, &mut slow, false);
            assert_eq!(fast, slow, "{len} pixels");
            for (p, q) in src.chunks_exact(3).zip(slow.chunks_exact(3)) {
                let mapped = [
                    luts[0][p[0] as usize],
                    luts[1][p[1] as usize],
                    luts[2][p[2] as usize],
                ];
                assert_eq!(lab_to_rgb(mapped), [q[0], q[1], q[2]], "{len} pixels");
            }
        }
    }
}
