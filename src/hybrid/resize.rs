//! Pillow's `Image.resize(size, Image.LANCZOS)` (and `BICUBIC`) for 8-bit RGB, bit-exact: a separable Lanczos-3
//! filter whose support grows with the downscale factor, weights normalised and held in 22-bit
//! fixed point, the horizontal pass first and its rows rounded to 8 bits before the vertical
//! pass. Hand-written because the `image` crate's `Lanczos3` keeps `f32` sums, a fixed support
//! and no intermediate rounding (it differs from Pillow by up to several levels).

use image::RgbImage;

/// Bits of the fixed-point weights (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Pillow's BICUBIC kernel (`a = -0.5`).
fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// A resampling filter: its kernel and support (Pillow's `struct filter`).
type Filter = (fn(f64) -> f64, f64);

/// Per output index: the first input index and the fixed-point weights, from
/// Pillow's `precompute_coeffs` of the input span `in0..in1`.
fn coefficients_box(
    in_size: u32,
    (in0, in1): (f64, f64),
    out_size: u32,
    (kernel, radius): Filter,
) -> Vec<(usize, Vec<i32>)> {
    let scale = (in1 - in0) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = radius * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = in0 + (f64::from(xx) + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
            let mut k: Vec<f64> = (0..xmax.max(0))
                .map(|x| kernel((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for v in &mut k {
                    *v /= ww;
                }
            }
            let one = f64::from(1u32 << PRECISION_BITS);
            let kk = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin as usize, kk)
        })
        .collect()
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's LANCZOS resize of `img` to `w` × `h` (a copy where the size is already right).
pub fn lanczos_pil(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    resample(img, w, h, (lanczos, 3.0))
}

/// Pillow's BICUBIC resize (`Image.resize`'s default filter) of `img` to `w` × `h`.
pub fn bicubic_pil(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    resample(img, w, h, (bicubic, 2.0))
}

/// Pillow's BICUBIC `img.resize((w, h), box=(x0, y0, x1, y1))`: the box of `img` (it may have
/// zero width or height: its edge is then stretched) resized to `w` × `h`.
pub fn bicubic_pil_box(img: &RgbImage, w: u32, h: u32, bx: (f64, f64, f64, f64)) -> RgbImage {
    resample_box(img, w, h, bx, (bicubic, 2.0))
}

/// Pillow's two-pass fixed-point resample with `filter`.
fn resample(img: &RgbImage, w: u32, h: u32, filter: Filter) -> RgbImage {
    let (iw, ih) = img.dimensions();
    if (iw, ih) == (w, h) {
        return img.clone();
    }
    resample_box(img, w, h, (0.0, 0.0, f64::from(iw), f64::from(ih)), filter)
}

/// Pillow's two-pass fixed-point resample of the box `bx` of `img` with `filter` (each pass
/// only where the box or the size changes along its axis).
fn resample_box(
    img: &RgbImage,
    w: u32,
    h: u32,
    bx: (f64, f64, f64, f64),
    filter: Filter,
) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let half = 1i32 << (PRECISION_BITS - 1);
    // horizontal pass
    let mid = if iw != w || bx.0 != 0.0 || bx.2 != f64::from(iw) {
        let coef = coefficients_box(iw, (bx.0, bx.2), w, filter);
        let mut out = RgbImage::new(w, ih);
        let src = img.as_raw();
        for y in 0..ih as usize {
            let row = &src[y * iw as usize * 3..(y + 1) * iw as usize * 3];
            for (x, (xmin, k)) in coef.iter().enumerate() {
                let mut ss = [half; 3];
                for (i, &kv) in k.iter().enumerate() {
                    let p = &row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                    for (s, &v) in ss.iter_mut().zip(p) {
                        *s += i32::from(v) * kv;
                    }
                }
                let o = (y * w as usize + x) * 3;
                for (d, &s) in out.as_mut()[o..o + 3].iter_mut().zip(&ss) {
                    *d = clip8(s);
                }
            }
        }
        out
    } else {
        img.clone()
    };
    if ih == h && bx.1 == 0.0 && bx.3 == f64::from(ih) {
        return mid;
    }
    // vertical pass
    let coef = coefficients_box(ih, (bx.1, bx.3), h, filter);
    let mut out = RgbImage::new(w, h);
    let src = mid.as_raw();
    let stride = w as usize * 3;
    for (y, (ymin, k)) in coef.iter().enumerate() {
        for xc in 0..stride {
            let mut ss = half;
            for (i, &kv) in k.iter().enumerate() {
                ss += i32::from(src[(ymin + i) * stride + xc]) * kv;
            }
            out.as_mut()[y * stride + xc] = clip8(ss);
        }
    }
    out
}
