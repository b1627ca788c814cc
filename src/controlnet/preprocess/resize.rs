//! `cv2.resize` on 8-bit images, value for value: nearest, linear, cubic and area
//! interpolation as OpenCV computes them for `uint8` (fixed-point coefficients, its rounding),
//! which the A1111 ControlNet extension's resizes go through. Hand-written because neither
//! `image` nor `imageproc` has these kernels: their filters (`image::imageops::resize`) widen
//! when shrinking and round differently, and ControlNet maps are compared with the extension's
//! pixel for pixel (a one-pixel Canny edge moves when a grey level does).
//!
//! Images are interleaved rows of `cn` channels; sizes are (width, height).

use rayon::prelude::*;

/// Fixed-point bits of OpenCV's 8-bit resize coefficients (`INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;
/// `1 << COEF_BITS`.
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// Rounds half to even (as `cvRound`) for |v| < 2^51: adding and removing 1.5·2^52 leaves the
/// value rounded by the FPU's default mode. `f64::round_ties_even` is a libm call on baseline
/// x86-64, several times slower in these loops.
#[inline]
fn rne64(v: f64) -> f64 {
    const M: f64 = 6_755_399_441_055_744.0;
    (v + M) - M
}

/// [`rne64`] for f32, |v| < 2^22.
#[inline]
fn rne32(v: f32) -> f32 {
    const M: f32 = 12_582_912.0;
    (v + M) - M
}

/// An OpenCV interpolation flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// `INTER_NEAREST`: the pixel at `floor(x · src / dst)`.
    Nearest,
    /// `INTER_LINEAR`: bilinear, pixel centres aligned.
    Linear,
    /// `INTER_CUBIC`: Keys cubic with a = −0.75, pixel centres aligned.
    Cubic,
    /// `INTER_AREA`: the mean over each destination pixel's footprint when shrinking;
    /// bilinear-like when enlarging.
    Area,
}

/// `cv2.resize(src, (dw, dh), interpolation)` for a `w`×`h` image of `cn` interleaved 8-bit
/// channels. The same size returns a copy, as OpenCV does. Sizes must be non-zero.
pub fn resize(
    src: &[u8],
    w: usize,
    h: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    interpolation: Interpolation,
) -> Vec<u8> {
    debug_assert_eq!(src.len(), w * h * cn);
    if (w, h) == (dw, dh) {
        return src.to_vec();
    }
    if w == 0 || h == 0 || dw == 0 || dh == 0 {
        return vec![0; dw * dh * cn];
    }
    let inv_sx = dw as f64 / w as f64;
    let inv_sy = dh as f64 / h as f64;
    match interpolation {
        Interpolation::Nearest => nearest(src, w, h, cn, dw, dh),
        Interpolation::Area => {
            let (sx, sy) = (1.0 / inv_sx, 1.0 / inv_sy);
            if sx >= 1.0 && sy >= 1.0 {
                let (ix, iy) = (sx.round(), sy.round());
                if (sx - ix).abs() < f64::EPSILON && (sy - iy).abs() < f64::EPSILON {
                    area_fast(src, w, h, cn, dw, dh, ix as usize, iy as usize)
                } else {
                    area_general(src, w, h, cn, dw, dh)
                }
            } else {
                separable(src, w, h, cn, dw, dh, Kernel::AreaUp)
            }
        }
        Interpolation::Linear => {
            // OpenCV: halving both sides bilinearly is the fast 2x2 area mean
            if inv_sx == 0.5 && inv_sy == 0.5 {
                area_fast(src, w, h, cn, dw, dh, 2, 2)
            } else {
                separable(src, w, h, cn, dw, dh, Kernel::Linear)
            }
        }
        Interpolation::Cubic => cubic(src, w, h, cn, dw, dh),
    }
}

/// `INTER_NEAREST`: source index `min(floor(x / scale), size - 1)` with the scale in double.
fn nearest(src: &[u8], w: usize, h: usize, cn: usize, dw: usize, dh: usize) -> Vec<u8> {
    let ifx = 1.0 / (dw as f64 / w as f64);
    let ify = 1.0 / (dh as f64 / h as f64);
    let xofs: Vec<usize> = (0..dw)
        .map(|x| ((x as f64 * ifx).floor() as usize).min(w - 1) * cn)
        .collect();
    let mut out = vec![0u8; dw * dh * cn];
    for (y, row) in out.chunks_mut(dw * cn).enumerate() {
        let sy = ((y as f64 * ify).floor() as usize).min(h - 1);
        let s = &src[sy * w * cn..(sy + 1) * w * cn];
        for (d, &o) in row.chunks_mut(cn).zip(&xofs) {
            d.copy_from_slice(&s[o..o + cn]);
        }
    }
    out
}

/// The two-tap kernels of OpenCV's generic resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Linear,
    /// `INTER_AREA` when a side grows: OpenCV's area-mode fractions.
    AreaUp,
}

/// Rounds half to even and saturates, as OpenCV's `saturate_cast<short>(float)`.
fn round_i16(v: f32) -> i16 {
    v.round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

/// Per destination index along one axis: the first source tap and the two fixed-point weights,
/// as OpenCV's resize tables (`xofs`/`ialpha`, `yofs`/`ibeta`). Along x (`clamp`) a tap left
/// of the image or on its last pixel takes that pixel whole; along y OpenCV keeps the weights
/// and reads the edge row twice.
fn axis_table(src: usize, dst: usize, kernel: Kernel, clamp: bool) -> Vec<(isize, [i32; 2])> {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    (0..dst)
        .map(|d| {
            let (mut s, mut f) = if kernel == Kernel::AreaUp {
                let s = (d as f64 * scale).floor() as isize;
                let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
                (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
            } else {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let s = f.floor();
                (s as isize, f - s)
            };
            if clamp {
                if s < 0 {
                    (s, f) = (0, 0.0);
                }
                if s >= src as isize - 1 {
                    (s, f) = (src as isize - 1, 0.0);
                }
            }
            let w = [1.0 - f, f].map(|c| round_i16(c * COEF_SCALE) as i32);
            (s, w)
        })
        .collect()
}

/// OpenCV's generic two-tap resize for 8-bit images: a horizontal pass into 32-bit sums of
/// 11-bit fixed-point products, then a vertical pass as OpenCV's vector code rounds it (which
/// `cv2.resize` uses for every output value: measured equal to it on all sizes tried).
fn separable(
    src: &[u8],
    w: usize,
    h: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    kernel: Kernel,
) -> Vec<u8> {
    let xt = axis_table(w, dw, kernel, true);
    let yt = axis_table(h, dh, kernel, false);
    // horizontal taps as byte offsets
    let xs: Vec<([usize; 2], [i32; 2])> = xt
        .iter()
        .map(|&(s, wts)| {
            let s = s as usize;
            ([s * cn, (s + 1).min(w - 1) * cn], wts)
        })
        .collect();
    let hrow = |y: usize, out: &mut [i32]| {
        let s = &src[y * w * cn..(y + 1) * w * cn];
        for (([o0, o1], [w0, w1]), d) in xs.iter().zip(out.chunks_exact_mut(cn)) {
            let (a, b) = (&s[*o0..*o0 + cn], &s[*o1..*o1 + cn]);
            for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
                *d = a as i32 * w0 + b as i32 * w1;
            }
        }
    };
    let width = dw * cn;
    let mut out = vec![0u8; width * dh];
    let rows_per_task = if width * dh >= 1 << 16 { 16 } else { dh };
    out.par_chunks_mut(width * rows_per_task)
        .enumerate()
        .for_each(|(t, block)| {
            let mut a = vec![0i32; width];
            let mut b = vec![0i32; width];
            let mut have = [usize::MAX; 2];
            for (r, drow) in block.chunks_mut(width).enumerate() {
                let (s, [b0, b1]) = yt[t * rows_per_task + r];
                let y0 = s.clamp(0, h as isize - 1) as usize;
                let y1 = (s + 1).clamp(0, h as isize - 1) as usize;
                if have[0] != y0 {
                    if have[1] == y0 {
                        std::mem::swap(&mut a, &mut b);
                        have.swap(0, 1);
                    } else {
                        hrow(y0, &mut a);
                        have[0] = y0;
                    }
                }
                if have[1] != y1 {
                    hrow(y1, &mut b);
                    have[1] = y1;
                }
                vertical_linear(&a, &b, b0, b1, drow);
            }
        });
    out
}

/// Vertical two-tap pass as OpenCV's vector loop computes it: each row's sums shifted right by
/// 4, multiplied by the weight keeping the high 16 bits of the product, added, then
/// `(v + 2) >> 2`.
fn vertical_linear(s0: &[i32], s1: &[i32], b0: i32, b1: i32, out: &mut [u8]) {
    // the horizontal sums are 0..=255·2048, so `>> 4` fits 16 bits without saturating and the
    // result 0..=255 without clamping; 16-bit lanes as OpenCV's
    let (b0, b1) = (b0 as i16, b1 as i16);
    let mul_hi = |a: i32, b: i16| -> i16 { (((a >> 4) as i16 as i32 * b as i32) >> 16) as i16 };
    for ((o, &a), &b) in out.iter_mut().zip(s0).zip(s1) {
        let v = mul_hi(a, b0) + mul_hi(b, b1);
        *o = ((v + 2) >> 2) as u8;
    }
}

/// Keys' cubic weights (a = −0.75) of the four taps around a sample at fraction `t` ∈ [0, 1).
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// `INTER_CUBIC` as the x86 builds of OpenCV compute it for 8-bit images: they hand it to
/// Intel IPP (`ippiResizeCubic`, B = 0, C = 0.75), which evaluates Keys' kernel without OpenCV's
/// 11-bit coefficients: rows first, then columns, in double, edge pixels repeated, rounded once.
/// Measured against opencv-python 4.10 and 5.1 (with IPP): equal on all but about 1 value in
/// 10⁵ (one level). Builds without IPP (e.g. ARM) quantise the weights and differ by one
/// level on a few per cent of values.
fn cubic(src: &[u8], w: usize, h: usize, cn: usize, dw: usize, dh: usize) -> Vec<u8> {
    let table = |s: usize, d: usize| -> Vec<([usize; 4], [f64; 4])> {
        let scale = s as f64 / d as f64;
        (0..d)
            .map(|i| {
                let f = (i as f64 + 0.5) * scale - 0.5;
                let base = f.floor();
                let wts = cubic_weights(f - base);
                let base = base as isize;
                let taps = [0, 1, 2, 3].map(|k| (base - 1 + k).clamp(0, s as isize - 1) as usize);
                (taps, wts)
            })
            .collect()
    };
    let xt: Vec<([usize; 4], [f64; 4])> = table(w, dw)
        .into_iter()
        .map(|(t, wts)| (t.map(|t| t * cn), wts))
        .collect();
    let yt = table(h, dh);
    let width = dw * cn;
    // rows first: every source row resized horizontally
    let mut rows = vec![0f64; width * h];
    rows.par_chunks_mut(width * 8)
        .enumerate()
        .for_each(|(t, block)| {
            for (r, out) in block.chunks_exact_mut(width).enumerate() {
                let y = t * 8 + r;
                let s = &src[y * w * cn..(y + 1) * w * cn];
                for ((taps, wt), d) in xt.iter().zip(out.chunks_exact_mut(cn)) {
                    let p = taps.map(|t| &s[t..t + cn]);
                    for (c, d) in d.iter_mut().enumerate() {
                        *d = wt[0] * p[0][c] as f64
                            + wt[1] * p[1][c] as f64
                            + wt[2] * p[2][c] as f64
                            + wt[3] * p[3][c] as f64;
                    }
                }
            }
        });
    let mut out = vec![0u8; width * dh];
    out.par_chunks_mut(width * 8)
        .enumerate()
        .for_each(|(t, block)| {
            for (r, o) in block.chunks_exact_mut(width).enumerate() {
                let (taps, wt) = &yt[t * 8 + r];
                let [r0, r1, r2, r3] = taps.map(|t| &rows[t * width..(t + 1) * width]);
                for ((((o, a), b), c), d) in o.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
                    let v = wt[0] * a + wt[1] * b + wt[2] * c + wt[3] * d;
                    *o = rne64(v).clamp(0.0, 255.0) as u8;
                }
            }
        });
    out
}

/// `INTER_AREA` for integer factors `sx`×`sy`: the mean of each block (f32 product with
/// `1 / area`, rounded half to even); blocks cut by the right or bottom edge average what they
/// have. Halving uses OpenCV's vector rounding, `(sum + 2) >> 2`.
#[allow(clippy::too_many_arguments)]
fn area_fast(
    src: &[u8],
    w: usize,
    h: usize,
    cn: usize,
    dw: usize,
    dh: usize,
    sx: usize,
    sy: usize,
) -> Vec<u8> {
    let scale = 1.0f32 / (sx * sy) as f32;
    let full_w = (w / sx).min(dw);
    let stride = w * cn;
    let mut out = vec![0u8; dw * dh * cn];
    out.par_chunks_mut(dw * cn)
        .enumerate()
        .for_each(|(dy, row)| {
            let y0 = dy * sy;
            if y0 >= h {
                return;
            }
            let y1 = (y0 + sy).min(h);
            // column sums over the block's rows
            let mut cols = vec![0u32; stride];
            for line in src[y0 * stride..y1 * stride].chunks_exact(stride) {
                for (c, &v) in cols.iter_mut().zip(line) {
                    *c += v as u32;
                }
            }
            let full_row = y1 - y0 == sy;
            for (dx, d) in row.chunks_exact_mut(cn).enumerate() {
                let x0 = dx * sx;
                let x1 = (x0 + sx).min(w);
                for (c, d) in d.iter_mut().enumerate() {
                    let mut sum = 0u32;
                    for x in x0..x1 {
                        sum += cols[x * cn + c];
                    }
                    *d = if full_row && dx < full_w {
                        if sx == 2 && sy == 2 {
                            ((sum + 2) >> 2) as u8
                        } else {
                            rne32(sum as f32 * scale).min(255.0) as u8
                        }
                    } else {
                        let count = ((x1 - x0) * (y1 - y0)) as f32;
                        rne32(sum as f32 / count).min(255.0) as u8
                    };
                }
            }
        });
    out
}

/// One weight of OpenCV's area table: destination index, source index, weight.
#[derive(Debug, Clone, Copy)]
struct AreaTap {
    d: usize,
    s: usize,
    alpha: f32,
}

/// OpenCV's `computeResizeAreaTab`: the source cells each destination cell covers, with the
/// covered fraction of a cell as weight (divided by the cell width), in double, stored as f32.
fn area_table(src: usize, dst: usize) -> Vec<AreaTap> {
    let scale = src as f64 / dst as f64;
    let mut tab = Vec::with_capacity(src * 2);
    for d in 0..dst {
        let f1 = d as f64 * scale;
        let f2 = f1 + scale;
        let cell = scale.min(src as f64 - f1);
        let mut s2 = f2.floor() as isize;
        s2 = s2.min(src as isize - 1);
        let s1 = (f1.ceil() as isize).min(s2);
        if s1 as f64 - f1 > 1e-3 {
            tab.push(AreaTap {
                d,
                s: (s1 - 1) as usize,
                alpha: ((s1 as f64 - f1) / cell) as f32,
            });
        }
        for s in s1..s2 {
            tab.push(AreaTap {
                d,
                s: s as usize,
                alpha: (1.0 / cell) as f32,
            });
        }
        if f2 - s2 as f64 > 1e-3 {
            tab.push(AreaTap {
                d,
                s: s2 as usize,
                alpha: ((f2 - s2 as f64).min(1.0).min(cell) / cell) as f32,
            });
        }
    }
    tab
}

/// `INTER_AREA` for non-integer shrinking: weighted sums in f32 over the area tables, in
/// OpenCV's order (rows accumulated source row by source row), rounded half to even.
fn area_general(src: &[u8], w: usize, h: usize, cn: usize, dw: usize, dh: usize) -> Vec<u8> {
    let xtab = area_table(w, dw);
    let ytab = area_table(h, dh);
    let width = dw * cn;
    // the entries of each destination row (the table is ordered by destination)
    let mut starts = vec![ytab.len(); dh + 1];
    for (i, t) in ytab.iter().enumerate().rev() {
        starts[t.d] = i;
    }
    for d in (0..dh).rev() {
        starts[d] = starts[d].min(starts[d + 1]);
    }
    let mut out = vec![0u8; width * dh];
    out.par_chunks_mut(width).enumerate().for_each(|(dy, row)| {
        let mut buf = vec![0f32; width];
        let mut sum = vec![0f32; width];
        for t in &ytab[starts[dy]..starts[dy + 1]] {
            let s = &src[t.s * w * cn..(t.s + 1) * w * cn];
            buf.iter_mut().for_each(|v| *v = 0.0);
            for x in &xtab {
                let (b, p) = (
                    &mut buf[x.d * cn..x.d * cn + cn],
                    &s[x.s * cn..x.s * cn + cn],
                );
                for (b, &p) in b.iter_mut().zip(p) {
                    *b += p as f32 * x.alpha;
                }
            }
            for (s, b) in sum.iter_mut().zip(&buf) {
                *s += t.alpha * b;
            }
        }
        for (o, s) in row.iter_mut().zip(&sum) {
            *o = rne32(*s).clamp(0.0, 255.0) as u8;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| i as u8).collect();
        for i in [
            Interpolation::Nearest,
            Interpolation::Linear,
            Interpolation::Cubic,
            Interpolation::Area,
        ] {
            assert_eq!(resize(&src, 5, 4, 3, 5, 4, i), src);
            let flat = vec![77u8; 7 * 5 * 3];
            for (dw, dh) in [(3, 2), (14, 10), (9, 3), (2, 11)] {
                let r = resize(&flat, 7, 5, 3, dw, dh, i);
                assert!(r.iter().all(|&v| v == 77), "{i:?} {dw}x{dh}");
            }
        }
    }
}
