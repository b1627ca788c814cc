//! OpenCV's Farneback dense optical flow (`calcOpticalFlowFarneback`, CPU path), ported.
//!
//! The steps and their float/double arithmetic follow OpenCV's `optflowgf.cpp`: a pyramid made by
//! blurring the full-resolution frame and resizing it bilinearly per level, a polynomial
//! expansion of each level (float rows, double sums), the per-pixel matrices of Farneback's
//! paper with OpenCV's border weights, and `iterations` rounds of a box (or Gaussian) window and a
//! 2×2 solve. Each pass is separable and runs row by row on rayon; every value is computed the
//! same way whatever the thread count, so the flow does not depend on it.

use super::{Flow, MAX_SIDE};
use anyhow::{Result, bail};
use image::GrayImage;
use rayon::prelude::*;

/// The most pyramid levels a call may ask for (OpenCV stops earlier where a level would be
/// under 32 pixels).
pub const MAX_LEVELS: u32 = 32;
/// The largest averaging window.
pub const MAX_WINSIZE: u32 = 1001;
/// The largest polynomial-expansion neighbourhood.
pub const MAX_POLY_N: u32 = 64;
/// The most iterations per level.
pub const MAX_ITERATIONS: u32 = 1000;

/// Farneback's parameters, named as OpenCV names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Scale between pyramid levels (0 < pyr_scale < 1).
    pub pyr_scale: f64,
    /// Pyramid levels above the finest (0: one level).
    pub levels: u32,
    /// Averaging window size.
    pub winsize: u32,
    /// Iterations per level.
    pub iterations: u32,
    /// Neighbourhood of the polynomial expansion.
    pub poly_n: u32,
    /// Gaussian σ of the polynomial expansion.
    pub poly_sigma: f64,
    /// A Gaussian averaging window instead of a box (`OPTFLOW_FARNEBACK_GAUSSIAN`).
    pub gaussian: bool,
}

impl Params {
    /// What Deforum passes: pyr 0.5, levels 5, window 21 (box), 5 iterations, poly_n 7, σ 1.2.
    pub const DEFORUM: Params = Params {
        pyr_scale: 0.5,
        levels: 5,
        winsize: 21,
        iterations: 5,
        poly_n: 7,
        poly_sigma: 1.2,
        gaussian: false,
    };

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// A parameter out of range, named with the range it must be in.
    pub fn check(&self) -> Result<()> {
        if !(self.pyr_scale > 0.0 && self.pyr_scale < 1.0) {
            bail!(
                "Farneback pyr_scale {} must be above 0 and below 1 (0.5 halves each level)",
                self.pyr_scale
            );
        }
        if self.levels > MAX_LEVELS {
            bail!("Farneback levels {} must be 0 to {MAX_LEVELS}", self.levels);
        }
        if !(1..=MAX_WINSIZE).contains(&self.winsize) {
            bail!(
                "Farneback winsize {} must be 1 to {MAX_WINSIZE}",
                self.winsize
            );
        }
        if self.iterations > MAX_ITERATIONS {
            bail!(
                "Farneback iterations {} must be 0 to {MAX_ITERATIONS}",
                self.iterations
            );
        }
        if !(1..=MAX_POLY_N).contains(&self.poly_n) {
            bail!(
                "Farneback poly_n {} must be 1 to {MAX_POLY_N} (5 or 7 are usual)",
                self.poly_n
            );
        }
        if !(self.poly_sigma.is_finite() && self.poly_sigma >= 0.0) {
            bail!(
                "Farneback poly_sigma {} must be a finite number >= 0 (0: 0.3·poly_n)",
                self.poly_sigma
            );
        }
        Ok(())
    }
}

/// Rows per work item of the box window (a constant, so results never depend on threads).
const STRIP: usize = 32;

/// Pixels per step of the vectorised per-pixel loops (eight f32 or two of four f64 in AVX2).
const LANES: usize = 8;

/// A float image or field: `cn` values per pixel, row-major.
struct Field {
    w: usize,
    h: usize,
    data: Vec<f32>,
}

/// The forward flow from `a` to `b` (same size), equal to
/// `cv2.calcOpticalFlowFarneback(a, b, None, …)`; with `init`, the flow starts from it as with
/// `OPTFLOW_USE_INITIAL_FLOW`.
///
/// # Errors
/// Parameters out of range, frames of different sizes, or an `init` of another size.
pub fn farneback(a: &GrayImage, b: &GrayImage, p: &Params, init: Option<&Flow>) -> Result<Flow> {
    p.check()?;
    if a.dimensions() != b.dimensions() {
        bail!(
            "Farneback flow needs two frames of one size, got {}x{} and {}x{}",
            a.width(),
            a.height(),
            b.width(),
            b.height()
        );
    }
    let (wu, hu) = a.dimensions();
    if !(1..=MAX_SIDE).contains(&wu) || !(1..=MAX_SIDE).contains(&hu) {
        bail!("Farneback flow of a {wu}x{hu} frame: each side must be 1 to {MAX_SIDE}");
    }
    if let Some(f) = init
        && (f.width(), f.height()) != (wu, hu)
    {
        bail!(
            "the initial flow is {}x{} but the frames are {wu}x{hu}",
            f.width(),
            f.height()
        );
    }
    let (w, h) = (wu as usize, hu as usize);
    let frames = [a, b].map(|img| {
        img.as_raw()
            .iter()
            .map(|&v| f32::from(v))
            .collect::<Vec<_>>()
    });

    let mut levels = 0;
    let mut scale = 1.0f64;
    while levels < p.levels {
        scale *= p.pyr_scale;
        if w as f64 * scale < 32.0 || h as f64 * scale < 32.0 {
            break;
        }
        levels += 1;
    }

    let poly = Poly::new(p.poly_n as usize, p.poly_sigma);
    let mut prev: Option<Field> = None;
    for k in (0..=levels).rev() {
        let mut scale = 1.0f64;
        for _ in 0..k {
            scale *= p.pyr_scale;
        }
        let sigma = (1.0 / scale - 1.0) * 0.5;
        let ksize = (((sigma * 5.0).round_ties_even() as i64) | 1).max(3) as usize;
        let lw = (w as f64 * scale).round_ties_even() as usize;
        let lh = (h as f64 * scale).round_ties_even() as usize;

        let mut flow = match (&prev, init) {
            (Some(pf), _) => {
                let mut f = resize_linear(pf, 2, lw, lh);
                let s = (1.0 / p.pyr_scale) as f32;
                f.iter_mut().for_each(|v| *v *= s);
                f
            }
            (None, Some(f0)) => {
                let src = Field {
                    w,
                    h,
                    data: f0.as_slice().to_vec(),
                };
                let mut f = if (lw, lh) == (w, h) {
                    src.data
                } else {
                    resize_area(&src, 2, lw, lh)
                };
                let s = scale as f32;
                f.iter_mut().for_each(|v| *v *= s);
                f
            }
            (None, None) => vec![0.0; lw * lh * 2],
        };

        let kern = gaussian_kernel(ksize, sigma);
        let [r0, r1] = [0, 1].map(|i| {
            let level = blur_resize(&frames[i], w, h, &kern, lw, lh);
            poly.expand(&level, lw, lh)
        });
        let mut m = vec![0.0f32; lw * lh * 5];
        update_matrices(&r0, &r1, &flow, &mut m, lw, lh);
        for i in 0..p.iterations {
            if p.gaussian {
                update_flow_gaussian(&m, &mut flow, lw, lh, p.winsize as usize);
            } else {
                update_flow_box(&m, &mut flow, lw, lh, p.winsize as usize);
            }
            if i + 1 < p.iterations {
                update_matrices(&r0, &r1, &flow, &mut m, lw, lh);
            }
        }
        prev = Some(Field {
            w: lw,
            h: lh,
            data: flow,
        });
    }
    let out = prev.expect("at least one level");
    Flow::from_vec(wu, hu, out.data)
}

/// `borderInterpolate(p, len, BORDER_REFLECT_101)`.
fn reflect101(mut p: isize, len: usize) -> usize {
    let n = len as isize;
    if n == 1 {
        return 0;
    }
    loop {
        if p < 0 {
            p = -p;
        } else if p >= n {
            p = 2 * n - 2 - p;
        } else {
            return p as usize;
        }
    }
}

/// `getGaussianKernel(n, sigma, CV_32F)`: the fixed [¼, ½, ¼] for n = 3 and σ ≤ 0, else
/// `exp(−x²/2σ²)` normalised.
fn gaussian_kernel(n: usize, sigma: f64) -> Vec<f32> {
    if n == 3 && sigma <= 0.0 {
        return vec![0.25, 0.5, 0.25];
    }
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        ((n as f64 - 1.0) * 0.5 - 1.0) * 0.3 + 0.8
    };
    let scale2x = -0.5 / (sigma * sigma);
    let c: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - (n as f64 - 1.0) * 0.5;
            (scale2x * x * x).exp()
        })
        .collect();
    let s = 1.0 / c.iter().sum::<f64>();
    c.iter().map(|v| (v * s) as f32).collect()
}

/// Bilinear taps of one axis as `cv::resize(INTER_LINEAR)` makes them: source `i0, i1` and weights.
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    a0: Vec<f32>,
    a1: Vec<f32>,
}

impl Axis {
    fn linear(src: usize, dst: usize) -> Self {
        let scale = 1.0 / (dst as f64 / src as f64);
        let mut ax = Axis {
            i0: Vec::with_capacity(dst),
            i1: Vec::with_capacity(dst),
            a0: Vec::with_capacity(dst),
            a1: Vec::with_capacity(dst),
        };
        for d in 0..dst {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                f = 0.0;
                s = 0;
            }
            if s >= src as i64 - 1 {
                f = 0.0;
                s = src as i64 - 1;
            }
            let s = s as usize;
            ax.i0.push(s);
            ax.i1.push((s + 1).min(src - 1));
            ax.a0.push(1.0 - f);
            ax.a1.push(f);
        }
        ax
    }
}

/// `cv::resize(INTER_LINEAR)` of a field with `cn` interleaved channels to `dw`×`dh`.
fn resize_linear(src: &Field, cn: usize, dw: usize, dh: usize) -> Vec<f32> {
    if (src.w, src.h) == (dw, dh) {
        return src.data.clone();
    }
    let xs = Axis::linear(src.w, dw);
    let ys = Axis::linear(src.h, dh);
    resample(&src.data, src.w * cn, cn, &xs, &ys, dw, dh)
}

/// Bilinear resampling: horizontal pass on the two source rows, then the vertical blend, in
/// float as OpenCV does. `xs`/`ys` index pixels of `src` (row stride `stride` values).
fn resample(
    src: &[f32],
    stride: usize,
    cn: usize,
    xs: &Axis,
    ys: &Axis,
    dw: usize,
    dh: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; dw * dh * cn];
    out.par_chunks_mut(dw * cn).enumerate().for_each_init(
        || (vec![0.0f32; dw * cn], vec![0.0f32; dw * cn]),
        |(t0, t1), (dy, drow)| {
            for (t, sy) in [(&mut *t0, ys.i0[dy]), (&mut *t1, ys.i1[dy])] {
                let srow = &src[sy * stride..];
                for dx in 0..dw {
                    let (o0, o1) = (xs.i0[dx] * cn, xs.i1[dx] * cn);
                    let (a0, a1) = (xs.a0[dx], xs.a1[dx]);
                    for c in 0..cn {
                        t[dx * cn + c] = srow[o0 + c] * a0 + srow[o1 + c] * a1;
                    }
                }
            }
            let (b0, b1) = (ys.a0[dy], ys.a1[dy]);
            for ((d, &s0), &s1) in drow.iter_mut().zip(t0.iter()).zip(t1.iter()) {
                *d = s0 * b0 + s1 * b1;
            }
        },
    );
    out
}

/// `cv::resize(INTER_AREA)` when shrinking (the initial flow to the coarsest level): each output
/// pixel is the area-weighted mean of the source pixels it covers.
fn resize_area(src: &Field, cn: usize, dw: usize, dh: usize) -> Vec<f32> {
    fn tab(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
        let scale = src as f64 / dst as f64;
        (0..dst)
            .map(|d| {
                let f1 = d as f64 * scale;
                let f2 = f1 + scale;
                let cell = scale.min(src as f64 - f1);
                let s2 = (f2.floor() as usize).min(src - 1);
                let s1 = (f1.ceil() as usize).min(s2);
                let mut t = Vec::new();
                if s1 as f64 - f1 > 1e-3 {
                    t.push((s1 - 1, (s1 as f64 - f1) / cell));
                }
                for s in s1..s2 {
                    t.push((s, 1.0 / cell));
                }
                if f2 - s2 as f64 > 1e-3 {
                    t.push((s2, (f2 - s2 as f64).min(1.0).min(cell) / cell));
                }
                t
            })
            .collect()
    }
    let xt = tab(src.w, dw);
    let yt = tab(src.h, dh);
    let mut out = vec![0.0f32; dw * dh * cn];
    out.par_chunks_mut(dw * cn)
        .enumerate()
        .for_each(|(dy, drow)| {
            for dx in 0..dw {
                for c in 0..cn {
                    let mut acc = 0.0f64;
                    for &(sy, wy) in &yt[dy] {
                        for &(sx, wx) in &xt[dx] {
                            acc += f64::from(src.data[(sy * src.w + sx) * cn + c]) * wy * wx;
                        }
                    }
                    drow[dx * cn + c] = acc as f32;
                }
            }
        });
    out
}

/// One pyramid level: `GaussianBlur(frame, kern, REFLECT_101)` then `resize(INTER_LINEAR)` to
/// `lw`×`lh`. Only the rows and columns the resize reads are blurred (the others are never
/// used), which keeps the wide blurs of the coarse levels cheap.
fn blur_resize(img: &[f32], w: usize, h: usize, kern: &[f32], lw: usize, lh: usize) -> Vec<f32> {
    let same = (lw, lh) == (w, h);
    let half = w == 2 * lw && h == 2 * lh;
    let (xs, ys) = (Axis::linear(w, lw), Axis::linear(h, lh));
    let need = |n: usize, ax: &Axis| -> Vec<bool> {
        let mut v = vec![same || half; n];
        for (&a, &b) in ax.i0.iter().zip(&ax.i1) {
            v[a] = true;
            v[b] = true;
        }
        v
    };
    let (col_need, row_need) = (need(w, &xs), need(h, &ys));
    let cols: Vec<usize> = (0..w).filter(|&x| col_need[x]).collect();
    let rows: Vec<usize> = (0..h).filter(|&y| row_need[y]).collect();
    let (nc, nr) = (cols.len(), rows.len());
    let r = kern.len() / 2;

    // Horizontal pass (OpenCV's row filter) at the needed columns of every row.
    let ctab: Vec<usize> = cols
        .iter()
        .flat_map(|&c| {
            (0..kern.len()).map(move |t| reflect101(c as isize - r as isize + t as isize, w))
        })
        .collect();
    let mut tmp = vec![0.0f32; h * nc];
    tmp.par_chunks_mut(nc).enumerate().for_each(|(y, trow)| {
        let srow = &img[y * w..(y + 1) * w];
        for (ci, t) in trow.iter_mut().enumerate() {
            let idx = &ctab[ci * kern.len()..(ci + 1) * kern.len()];
            let mut acc = 0.0f32;
            for (&k, &i) in kern.iter().zip(idx) {
                acc += k * srow[i];
            }
            *t = acc;
        }
    });
    // Vertical pass at the needed rows.
    let mut blurred = vec![0.0f32; nr * nc];
    blurred
        .par_chunks_mut(nc)
        .enumerate()
        .for_each(|(ri, brow)| {
            let y = rows[ri] as isize;
            for (t, &k) in kern.iter().enumerate() {
                let sy = reflect101(y - r as isize + t as isize, h);
                let trow = &tmp[sy * nc..(sy + 1) * nc];
                for (b, &v) in brow.iter_mut().zip(trow) {
                    *b += k * v;
                }
            }
        });
    if same {
        return blurred;
    }
    if half {
        // cv::resize turns an exact 2× INTER_LINEAR shrink into INTER_AREA's 2×2 mean.
        let mut out = vec![0.0f32; lw * lh];
        out.par_chunks_mut(lw).enumerate().for_each(|(y, orow)| {
            let s0 = &blurred[2 * y * w..(2 * y + 1) * w];
            let s1 = &blurred[(2 * y + 1) * w..(2 * y + 2) * w];
            for (x, o) in orow.iter_mut().enumerate() {
                *o = ((s0[2 * x] + s0[2 * x + 1]) + (s1[2 * x] + s1[2 * x + 1])) * 0.25;
            }
        });
        return out;
    }
    // Map the taps to the compact (needed-only) rows and columns.
    let mut cpos = vec![0usize; w];
    cols.iter().enumerate().for_each(|(i, &c)| cpos[c] = i);
    let mut rpos = vec![0usize; h];
    rows.iter().enumerate().for_each(|(i, &r)| rpos[r] = i);
    let remap = |ax: Axis, pos: &[usize]| Axis {
        i0: ax.i0.iter().map(|&i| pos[i]).collect(),
        i1: ax.i1.iter().map(|&i| pos[i]).collect(),
        a0: ax.a0,
        a1: ax.a1,
    };
    let (xs, ys) = (remap(xs, &cpos), remap(ys, &rpos));
    resample(&blurred, nc, 1, &xs, &ys, lw, lh)
}

/// `FarnebackPolyExp`'s kernels and the inverse moments it needs.
struct Poly {
    n: usize,
    g: Vec<f32>,
    xg: Vec<f32>,
    xxg: Vec<f32>,
    ig11: f64,
    ig03: f64,
    ig33: f64,
    ig55: f64,
}

impl Poly {
    /// `FarnebackPrepareGaussian(n, sigma)`; `g`, `xg`, `xxg` are indexed 0..=n (symmetric).
    fn new(n: usize, sigma: f64) -> Self {
        let sigma = if sigma < f64::from(f32::EPSILON) {
            n as f64 * 0.3
        } else {
            sigma
        };
        let ni = n as i64;
        let mut full = vec![0.0f32; 2 * n + 1];
        let mut s = 0.0f64;
        for x in -ni..=ni {
            let v = (-(x * x) as f64 / (2.0 * sigma * sigma)).exp() as f32;
            full[(x + ni) as usize] = v;
            s += f64::from(v);
        }
        let s = 1.0 / s;
        for v in &mut full {
            *v = (f64::from(*v) * s) as f32;
        }
        let gx = |x: i64| full[(x + ni) as usize];
        let mut gm = nalgebra::Matrix6::<f64>::zeros();
        for y in -ni..=ni {
            for x in -ni..=ni {
                let (xf, yf) = (x as f32, y as f32);
                let gg = gx(y) * gx(x);
                gm[(0, 0)] += f64::from(gg);
                gm[(1, 1)] += f64::from(gg * xf * xf);
                gm[(3, 3)] += f64::from(gg * xf * xf * xf * xf);
                gm[(5, 5)] += f64::from(gg * xf * xf * yf * yf);
            }
        }
        let g11 = gm[(1, 1)];
        gm[(2, 2)] = g11;
        gm[(0, 3)] = g11;
        gm[(0, 4)] = g11;
        gm[(3, 0)] = g11;
        gm[(4, 0)] = g11;
        gm[(4, 4)] = gm[(3, 3)];
        gm[(3, 4)] = gm[(5, 5)];
        gm[(4, 3)] = gm[(5, 5)];
        let inv = gm
            .cholesky()
            .map(|c| c.inverse())
            .unwrap_or_else(|| gm.try_inverse().unwrap_or_else(nalgebra::Matrix6::zeros));
        let g: Vec<f32> = (0..=ni).map(gx).collect();
        let xg = (0..=ni).map(|x| x as f32 * gx(x)).collect();
        let xxg = (0..=ni).map(|x| (x * x) as f32 * gx(x)).collect();
        Poly {
            n,
            g,
            xg,
            xxg,
            ig11: inv[(1, 1)],
            ig03: inv[(0, 3)],
            ig33: inv[(3, 3)],
            ig55: inv[(5, 5)],
        }
    }

    /// The expansion of a `w`×`h` image: per pixel `[y, x, yy, xx, xy]` coefficients.
    fn expand(&self, img: &[f32], w: usize, h: usize) -> Vec<f32> {
        let n = self.n;
        let mut out = vec![0.0f32; w * h * 5];
        #[cfg(target_arch = "x86_64")]
        let avx2 = crate::cpu::has("avx2");
        out.par_chunks_mut(w * 5).enumerate().for_each_init(
            || vec![0.0f32; (w + 2 * n) * 3],
            |buf, (y, drow)| {
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the processor has AVX2, checked above
                    unsafe { self.expand_row_avx2(img, w, h, y, buf, drow) };
                    return;
                }
                self.expand_row(img, w, h, y, buf, drow);
            },
        );
        out
    }

    /// [`Poly::expand_row`] with AVX2 enabled, so that its lane loops vectorise (the same
    /// operations per pixel, so the same values).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn expand_row_avx2(
        &self,
        img: &[f32],
        w: usize,
        h: usize,
        y: usize,
        buf: &mut [f32],
        drow: &mut [f32],
    ) {
        self.expand_row(img, w, h, y, buf, drow);
    }

    /// Row `y` of the expansion into `drow` (`5w` values). The vertical sums go into three
    /// planes of `buf` (`3(w + 2n)` values; OpenCV interleaves them, which changes no value),
    /// borders replicated; the horizontal sums run [`LANES`] pixels at a time, each pixel with
    /// OpenCV's operations in OpenCV's order.
    #[inline(always)]
    fn expand_row(
        &self,
        img: &[f32],
        w: usize,
        h: usize,
        y: usize,
        buf: &mut [f32],
        drow: &mut [f32],
    ) {
        let n = self.n;
        let len = w + 2 * n;
        let (t0, rest) = buf.split_at_mut(len);
        let (t1, t2) = rest.split_at_mut(len);
        {
            let (v0, v1, v2) = (&mut t0[n..n + w], &mut t1[n..n + w], &mut t2[n..n + w]);
            let g0 = self.g[0];
            let s0 = &img[y * w..(y + 1) * w];
            for x in 0..w {
                v0[x] = s0[x] * g0;
                v1[x] = 0.0;
                v2[x] = 0.0;
            }
            for k in 1..=n {
                let (g0, g1, g2) = (self.g[k], self.xg[k], self.xxg[k]);
                let ya = y.saturating_sub(k);
                let yb = (y + k).min(h - 1);
                let sa = &img[ya * w..(ya + 1) * w];
                let sb = &img[yb * w..(yb + 1) * w];
                for x in 0..w {
                    let p = sa[x] + sb[x];
                    v0[x] += g0 * p;
                    v1[x] += g1 * (sb[x] - sa[x]);
                    v2[x] += g2 * p;
                }
            }
        }
        for t in [&mut *t0, &mut *t1, &mut *t2] {
            let (first, last) = (t[n], t[n + w - 1]);
            t[..n].fill(first);
            t[n + w..].fill(last);
        }
        let (t0, t1, t2) = (&*t0, &*t1, &*t2);
        let mut x = 0;
        while x + LANES <= w {
            self.expand_pixels::<LANES>(t0, t1, t2, x, &mut drow[x * 5..(x + LANES) * 5]);
            x += LANES;
        }
        for x in x..w {
            self.expand_pixels::<1>(t0, t1, t2, x, &mut drow[x * 5..x * 5 + 5]);
        }
    }

    /// The horizontal sums of pixels `x..x + L` (planes from [`Poly::expand_row`]) into `d`.
    #[inline(always)]
    fn expand_pixels<const L: usize>(
        &self,
        t0: &[f32],
        t1: &[f32],
        t2: &[f32],
        x: usize,
        d: &mut [f32],
    ) {
        let n = self.n;
        let c = n + x;
        let g0 = self.g[0];
        let (mut b1, mut b2, mut b3) = ([0.0f64; L], [0.0f64; L], [0.0f64; L]);
        let (mut b4, mut b5, mut b6) = ([0.0f64; L], [0.0f64; L], [0.0f64; L]);
        let (c0, c1, c2) = (&t0[c..c + L], &t1[c..c + L], &t2[c..c + L]);
        for l in 0..L {
            b1[l] = f64::from(c0[l] * g0);
            b3[l] = f64::from(c1[l] * g0);
            b5[l] = f64::from(c2[l] * g0);
        }
        for k in 1..=n {
            let (gk, xgk) = (self.g[k], self.xg[k]);
            let (gkd, xxgkd) = (f64::from(gk), f64::from(self.xxg[k]));
            let (p0, q0) = (&t0[c + k..c + k + L], &t0[c - k..c - k + L]);
            let (p1, q1) = (&t1[c + k..c + k + L], &t1[c - k..c - k + L]);
            let (p2, q2) = (&t2[c + k..c + k + L], &t2[c - k..c - k + L]);
            for l in 0..L {
                let tg = f64::from(p0[l] + q0[l]);
                b1[l] += tg * gkd;
                b4[l] += tg * xxgkd;
                b2[l] += f64::from((p0[l] - q0[l]) * xgk);
                b3[l] += f64::from((p1[l] + q1[l]) * gk);
                b6[l] += f64::from((p1[l] - q1[l]) * xgk);
                b5[l] += f64::from((p2[l] + q2[l]) * gk);
            }
        }
        for l in 0..L {
            let d = &mut d[l * 5..l * 5 + 5];
            d[1] = (b2[l] * self.ig11) as f32;
            d[0] = (b3[l] * self.ig11) as f32;
            d[3] = (b1[l] * self.ig03 + b4[l] * self.ig33) as f32;
            d[2] = (b1[l] * self.ig03 + b5[l] * self.ig33) as f32;
            d[4] = (b6[l] * self.ig55) as f32;
        }
    }
}

/// `FarnebackUpdateMatrices`: the 5 matrix terms `[G11, G12, G22, h1, h2]` per pixel from the
/// two expansions and the current flow.
fn update_matrices(r0: &[f32], r1: &[f32], flow: &[f32], m: &mut [f32], w: usize, h: usize) {
    // per column: whether OpenCV's border test holds on the x side, and the x border weights
    let cols: Vec<(bool, f32)> = (0..w)
        .map(|x| {
            let (xi, wi) = (x as i64, w as i64);
            let test = ((xi - BORDER) as i32 as u32) >= ((wi - 2 * BORDER) as i32 as u32);
            let wx0 = if xi < BORDER { WEIGHT[x] } else { 1.0 };
            let wx1 = if xi >= wi - BORDER {
                WEIGHT[w - x - 1]
            } else {
                1.0
            };
            (test, wx0 * wx1)
        })
        .collect();
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::has("avx2");
    m.par_chunks_mut(w * 5).enumerate().for_each_init(
        || vec![0.0f32; w],
        |scale, (y, mrow)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the processor has AVX2, checked above
                unsafe { matrices_row_avx2(r0, r1, flow, mrow, w, h, y, &cols, scale) };
                return;
            }
            matrices_row(r0, r1, flow, mrow, w, h, y, &cols, scale);
        },
    );
}

/// OpenCV's border of [`update_matrices`]: pixels this close to an edge are down-weighted.
const BORDER: i64 = 5;
/// The weights of the border pixels, from the edge inward.
const WEIGHT: [f32; 5] = [0.14, 0.14, 0.4472, 0.4472, 0.4472];

/// [`matrices_row`] with AVX2: eight pixels at a time in vector registers (the same
/// operations per pixel, so the same values), the last `w % 8` as [`matrices_row`] does them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn matrices_row_avx2(
    r0: &[f32],
    r1: &[f32],
    flow: &[f32],
    mrow: &mut [f32],
    w: usize,
    h: usize,
    y: usize,
    cols: &[(bool, f32)],
    scale: &mut [f32],
) {
    row_scale(h, y, cols, scale);
    let frow = &flow[y * w * 2..(y + 1) * w * 2];
    let r0row = &r0[y * w * 5..(y + 1) * w * 5];
    let mut x = 0;
    while x + 8 <= w {
        matrices_8_avx2(r0row, r1, frow, mrow, w, h, y, x, scale);
        x += 8;
    }
    for x in x..w {
        matrices_pixels::<1>(r0row, r1, frow, mrow, w, h, y, x, scale);
    }
}

/// Pixels `x..x + 8` of row `y` of [`update_matrices`] in AVX2 registers: the corners and the
/// flow gathered per pixel, then [`matrices_pixels`]' arithmetic, lane by lane the same
/// operations (no fused multiply-adds), the outside branch chosen by a blend.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn matrices_8_avx2(
    r0row: &[f32],
    r1: &[f32],
    frow: &[f32],
    mrow: &mut [f32],
    w: usize,
    h: usize,
    y: usize,
    x: usize,
    scale: &[f32],
) {
    use std::arch::x86_64::*;
    const L: usize = 8;
    let (mut dx, mut dy) = ([0.0f32; L], [0.0f32; L]);
    let (mut fx, mut fy) = ([0.0f32; L], [0.0f32; L]);
    let (mut x1, mut y1) = ([0.0f32; L], [0.0f32; L]);
    let mut inside = [0i32; L];
    let mut q = [[0.0f32; L]; 5];
    let mut p = [[[0.0f32; L]; 5]; 4];
    let (wl, hl) = ((w - 1) as f32, (h - 1) as f32);
    for l in 0..L {
        dx[l] = frow[(x + l) * 2];
        dy[l] = frow[(x + l) * 2 + 1];
        fx[l] = (x + l) as f32 + dx[l];
        fy[l] = y as f32 + dy[l];
        x1[l] = if fx[l].is_nan() { 0.0 } else { fx[l].floor() };
        y1[l] = if fy[l].is_nan() { 0.0 } else { fy[l].floor() };
        let ins = x1[l] >= 0.0 && x1[l] < wl && y1[l] >= 0.0 && y1[l] < hl;
        inside[l] = -i32::from(ins);
        let r = &r0row[(x + l) * 5..(x + l) * 5 + 5];
        for c in 0..5 {
            q[c][l] = r[c];
        }
        if ins {
            let base = (y1[l] as usize * w + x1[l] as usize) * 5;
            let q0 = &r1[base..base + 10];
            let q1 = &r1[base + w * 5..base + w * 5 + 10];
            for c in 0..5 {
                p[0][c][l] = q0[c];
                p[1][c][l] = q0[c + 5];
                p[2][c][l] = q1[c];
                p[3][c][l] = q1[c + 5];
            }
        }
    }
    // SAFETY (every load and store below): the arrays and `scale[x..x + 8]` hold 8 floats
    let ld = |a: &[f32; L]| unsafe { _mm256_loadu_ps(a.as_ptr()) };
    let (add, sub, mul) = (_mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps);
    let set = _mm256_set1_ps;
    let one = set(1.0);
    let fxv = sub(ld(&fx), ld(&x1));
    let fyv = sub(ld(&fy), ld(&y1));
    let (ofx, ofy) = (sub(one, fxv), sub(one, fyv));
    let (a00, a01) = (mul(ofx, ofy), mul(fxv, ofy));
    let (a10, a11) = (mul(ofx, fyv), mul(fxv, fyv));
    let s = |c: usize| {
        add(
            add(
                add(mul(a00, ld(&p[0][c])), mul(a01, ld(&p[1][c]))),
                mul(a10, ld(&p[2][c])),
            ),
            mul(a11, ld(&p[3][c])),
        )
    };
    // SAFETY: `inside` holds 8 i32
    let mask = _mm256_castsi256_ps(unsafe { _mm256_loadu_si256(inside.as_ptr().cast()) });
    let sel = |outside: __m256, inside: __m256| _mm256_blendv_ps(outside, inside, mask);
    let zero = _mm256_setzero_ps();
    let (q0, q1, q2, q3, q4) = (ld(&q[0]), ld(&q[1]), ld(&q[2]), ld(&q[3]), ld(&q[4]));
    let r2 = sel(zero, s(0));
    let r3 = sel(zero, s(1));
    let r4 = sel(q2, mul(add(q2, s(2)), set(0.5)));
    let r5 = sel(q3, mul(add(q3, s(3)), set(0.5)));
    let r6 = sel(mul(q4, set(0.5)), mul(add(q4, s(4)), set(0.25)));
    let (dxv, dyv) = (ld(&dx), ld(&dy));
    let r2 = mul(sub(q0, r2), set(0.5));
    let r3 = mul(sub(q1, r3), set(0.5));
    let r2 = add(r2, add(mul(r4, dyv), mul(r6, dxv)));
    let r3 = add(r3, add(mul(r6, dyv), mul(r5, dxv)));
    // SAFETY: x + 8 <= w = scale.len() (checked by the slice)
    let sc = unsafe { _mm256_loadu_ps(scale[x..x + L].as_ptr()) };
    let (r2, r3, r4, r5, r6) = (
        mul(r2, sc),
        mul(r3, sc),
        mul(r4, sc),
        mul(r5, sc),
        mul(r6, sc),
    );
    let o = [
        add(mul(r4, r4), mul(r6, r6)),
        mul(add(r4, r5), r6),
        add(mul(r5, r5), mul(r6, r6)),
        add(mul(r4, r2), mul(r6, r3)),
        add(mul(r6, r2), mul(r5, r3)),
    ];
    let mut out = [[0.0f32; L]; 5];
    for (d, v) in out.iter_mut().zip(o) {
        // SAFETY: `d` holds 8 floats
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) };
    }
    let m = &mut mrow[x * 5..(x + L) * 5];
    for l in 0..L {
        for c in 0..5 {
            m[l * 5 + c] = out[c][l];
        }
    }
}

/// The border scale of each pixel of row `y` into `scale` (`cols` from [`update_matrices`]).
#[inline(always)]
fn row_scale(h: usize, y: usize, cols: &[(bool, f32)], scale: &mut [f32]) {
    let (yi, hi) = (y as i64, h as i64);
    let ytest = ((yi - BORDER) as i32 as u32) >= ((hi - 2 * BORDER) as i32 as u32);
    let wy0 = if yi < BORDER { WEIGHT[y] } else { 1.0 };
    let wy1 = if yi >= hi - BORDER {
        WEIGHT[h - y - 1]
    } else {
        1.0
    };
    for (s, &(xtest, wx)) in scale.iter_mut().zip(cols) {
        // OpenCV multiplies only where the test holds; elsewhere every weight is 1
        *s = if xtest || ytest { wx * wy0 * wy1 } else { 1.0 };
    }
}

/// Row `y` of [`update_matrices`]: the per-pixel border scale of the row, then [`LANES`]
/// pixels at a time, each with OpenCV's operations in OpenCV's order.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matrices_row(
    r0: &[f32],
    r1: &[f32],
    flow: &[f32],
    mrow: &mut [f32],
    w: usize,
    h: usize,
    y: usize,
    cols: &[(bool, f32)],
    scale: &mut [f32],
) {
    row_scale(h, y, cols, scale);
    let frow = &flow[y * w * 2..(y + 1) * w * 2];
    let r0row = &r0[y * w * 5..(y + 1) * w * 5];
    let mut x = 0;
    while x + LANES <= w {
        matrices_pixels::<LANES>(r0row, r1, frow, mrow, w, h, y, x, scale);
        x += LANES;
    }
    for x in x..w {
        matrices_pixels::<1>(r0row, r1, frow, mrow, w, h, y, x, scale);
    }
}

/// Pixels `x..x + L` of row `y` of [`update_matrices`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn matrices_pixels<const L: usize>(
    r0row: &[f32],
    r1: &[f32],
    frow: &[f32],
    mrow: &mut [f32],
    w: usize,
    h: usize,
    y: usize,
    x: usize,
    scale: &[f32],
) {
    let (mut dx, mut dy) = ([0.0f32; L], [0.0f32; L]);
    let (mut fx, mut fy) = ([0.0f32; L], [0.0f32; L]);
    let (mut x1, mut y1) = ([0.0f32; L], [0.0f32; L]);
    let mut inside = [false; L];
    // the bilinear corners of the five channels of `r1`, zero outside
    let mut p = [[[0.0f32; L]; 5]; 4];
    let (wl, hl) = ((w - 1) as f32, (h - 1) as f32);
    for l in 0..L {
        dx[l] = frow[(x + l) * 2];
        dy[l] = frow[(x + l) * 2 + 1];
        fx[l] = (x + l) as f32 + dx[l];
        fy[l] = y as f32 + dy[l];
        // `cvFloor` then `(unsigned)x1 < (unsigned)(width - 1)`; NaN floors to 0 there
        x1[l] = if fx[l].is_nan() { 0.0 } else { fx[l].floor() };
        y1[l] = if fy[l].is_nan() { 0.0 } else { fy[l].floor() };
        inside[l] = x1[l] >= 0.0 && x1[l] < wl && y1[l] >= 0.0 && y1[l] < hl;
    }
    for l in 0..L {
        if inside[l] {
            let base = (y1[l] as usize * w + x1[l] as usize) * 5;
            let q0 = &r1[base..base + 10];
            let q1 = &r1[base + w * 5..base + w * 5 + 10];
            for c in 0..5 {
                p[0][c][l] = q0[c];
                p[1][c][l] = q0[c + 5];
                p[2][c][l] = q1[c];
                p[3][c][l] = q1[c + 5];
            }
        }
    }
    let q = |c: usize, l: usize| r0row[(x + l) * 5 + c];
    for l in 0..L {
        let (fx, fy) = (fx[l] - x1[l], fy[l] - y1[l]);
        let (a00, a01) = ((1.0 - fx) * (1.0 - fy), fx * (1.0 - fy));
        let (a10, a11) = ((1.0 - fx) * fy, fx * fy);
        let s =
            |c: usize| a00 * p[0][c][l] + a01 * p[1][c][l] + a10 * p[2][c][l] + a11 * p[3][c][l];
        let (mut r2, mut r3, mut r4, mut r5, mut r6);
        if inside[l] {
            r2 = s(0);
            r3 = s(1);
            r4 = (q(2, l) + s(2)) * 0.5;
            r5 = (q(3, l) + s(3)) * 0.5;
            r6 = (q(4, l) + s(4)) * 0.25;
        } else {
            r2 = 0.0;
            r3 = 0.0;
            r4 = q(2, l);
            r5 = q(3, l);
            r6 = q(4, l) * 0.5;
        }
        r2 = (q(0, l) - r2) * 0.5;
        r3 = (q(1, l) - r3) * 0.5;
        r2 += r4 * dy[l] + r6 * dx[l];
        r3 += r6 * dy[l] + r5 * dx[l];
        let sc = scale[x + l];
        r2 *= sc;
        r3 *= sc;
        r4 *= sc;
        r5 *= sc;
        r6 *= sc;
        let o = &mut mrow[(x + l) * 5..(x + l) * 5 + 5];
        o[0] = r4 * r4 + r6 * r6;
        o[1] = (r4 + r5) * r6;
        o[2] = r5 * r5 + r6 * r6;
        o[3] = r4 * r2 + r6 * r3;
        o[4] = r6 * r2 + r5 * r3;
    }
}

/// Solves the blurred 2×2 system of one pixel (`g11, g12, g22, h1, h2`) into its flow.
#[inline]
fn solve(g11: f64, g12: f64, g22: f64, h1: f64, h2: f64, out: &mut [f32]) {
    let idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
    out[0] = ((g11 * h2 - g12 * h1) * idet) as f32;
    out[1] = ((g22 * h1 - g12 * h2) * idet) as f32;
}

/// `FarnebackUpdateFlow_Blur`: a `winsize` box over the matrices (double running sums, borders
/// replicated, scale `1/winsize²`), then the solve. Rows go in strips of [`STRIP`], each
/// starting its column sums afresh.
fn update_flow_box(m: &[f32], flow: &mut [f32], w: usize, h: usize, winsize: usize) {
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::has("avx2");
    flow.par_chunks_mut(STRIP * w * 2)
        .enumerate()
        .for_each(|(s, fchunk)| {
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the processor has AVX2, checked above
                unsafe { box_strip_avx2(m, fchunk, w, h, winsize, s * STRIP) };
                return;
            }
            box_strip(m, fchunk, w, h, winsize, s * STRIP);
        });
}

/// [`box_strip`] with AVX2 enabled, so that its loops vectorise (the same operations per
/// value, so the same values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn box_strip_avx2(m: &[f32], fchunk: &mut [f32], w: usize, h: usize, winsize: usize, y0: usize) {
    box_strip(m, fchunk, w, h, winsize, y0);
}

/// The strip of [`update_flow_box`] starting at row `y0` (`fchunk`: its flow rows).
#[inline(always)]
fn box_strip(m: &[f32], fchunk: &mut [f32], w: usize, h: usize, winsize: usize, y0: usize) {
    let mm = winsize / 2;
    let scale = 1.0 / (winsize * winsize) as f64;
    let row = |y: usize| &m[y * w * 5..(y + 1) * w * 5];
    let mut planes: [Vec<f64>; 5] = std::array::from_fn(|_| vec![0.0f64; w]);
    {
        {
            let off = (mm + 1) * 5;
            let mut ext = vec![0.0f64; (w + 2 * (mm + 1)) * 5];
            {
                let v = &mut ext[off..off + w * 5];
                if y0 == 0 {
                    // OpenCV's start: row 0 × (m+2) plus rows 1..m-1, then row 0's step.
                    for (d, &a) in v.iter_mut().zip(row(0)) {
                        *d = f64::from(a * (mm + 2) as f32);
                    }
                    for y in 1..mm {
                        for (d, &a) in v.iter_mut().zip(row(y.min(h - 1))) {
                            *d += f64::from(a);
                        }
                    }
                    let (a, b) = (row(mm.min(h - 1)), row(0));
                    for ((d, &p), &q) in v.iter_mut().zip(a).zip(b) {
                        *d += f64::from(p - q);
                    }
                } else if mm == 0 {
                    // OpenCV's sums with a window of 1 hold row 0 plus row y.
                    for ((d, &p), &q) in v.iter_mut().zip(row(0)).zip(row(y0)) {
                        *d = f64::from(p) + f64::from(q);
                    }
                } else {
                    v.fill(0.0);
                    for t in y0 as isize - mm as isize..=(y0 + mm) as isize {
                        let r = row(t.clamp(0, h as isize - 1) as usize);
                        for (d, &a) in v.iter_mut().zip(r) {
                            *d += f64::from(a);
                        }
                    }
                }
            }
            for (i, frow) in fchunk.chunks_mut(w * 2).enumerate() {
                let y = y0 + i;
                if i > 0 {
                    let a = row((y + mm).min(h - 1));
                    let b = row((y as isize - mm as isize - 1).max(0) as usize);
                    for ((d, &p), &q) in ext[off..off + w * 5].iter_mut().zip(a).zip(b) {
                        *d += f64::from(p - q);
                    }
                }
                for x in 0..off {
                    ext[off - 1 - x] = ext[off + 4 - x];
                    ext[off + w * 5 + x] = ext[off + w * 5 + x - 5];
                }
                let k = (mm + 2) as f64;
                let mut g = [0.0f64; 5];
                for c in 0..5 {
                    g[c] = ext[off + c] * k;
                }
                for x in 1..mm {
                    for c in 0..5 {
                        g[c] += ext[off + x * 5 + c];
                    }
                }
                // the running sums, scaled, into planes; then the solves, vectorised
                let [s0, s1, s2, s3, s4] = &mut planes;
                for x in 0..w {
                    let a = off + (x + mm) * 5;
                    let b = off + x * 5 - (mm + 1) * 5;
                    for c in 0..5 {
                        g[c] += ext[a + c] - ext[b + c];
                    }
                    s0[x] = g[0] * scale;
                    s1[x] = g[1] * scale;
                    s2[x] = g[2] * scale;
                    s3[x] = g[3] * scale;
                    s4[x] = g[4] * scale;
                }
                solve_row(&planes, frow);
            }
        }
    }
}

/// [`solve`] over a row: `p` holds the blurred `g11, g12, g22, h1, h2` planes, `frow` gets the
/// interleaved flow.
#[inline(always)]
fn solve_row(p: &[Vec<f64>; 5], frow: &mut [f32]) {
    let w = frow.len() / 2;
    let (g11, g12, g22) = (&p[0][..w], &p[1][..w], &p[2][..w]);
    let (h1, h2) = (&p[3][..w], &p[4][..w]);
    for x in 0..w {
        solve(
            g11[x],
            g12[x],
            g22[x],
            h1[x],
            h2[x],
            &mut frow[x * 2..x * 2 + 2],
        );
    }
}

/// `FarnebackUpdateFlow_GaussianBlur`: a Gaussian window (2m+1 taps, σ = 0.3m, float sums,
/// borders replicated) over the matrices, then the solve.
fn update_flow_gaussian(m: &[f32], flow: &mut [f32], w: usize, h: usize, winsize: usize) {
    let mm = winsize / 2;
    let sigma = mm as f64 * 0.3;
    let mut kernel = vec![1.0f32; mm + 1];
    let mut s = 1.0f64;
    for (i, k) in kernel.iter_mut().enumerate().skip(1) {
        let t = (-((i * i) as f64) / (2.0 * sigma * sigma)).exp() as f32;
        *k = t;
        s += f64::from(t) * 2.0;
    }
    let s = 1.0 / s;
    for k in &mut kernel {
        *k = (f64::from(*k) * s) as f32;
    }
    let row = |y: usize| &m[y * w * 5..(y + 1) * w * 5];
    flow.par_chunks_mut(w * 2).enumerate().for_each_init(
        || (vec![0.0f32; (w + 2 * mm) * 5], vec![0.0f32; w * 5]),
        |(ext, hsum), (y, frow)| {
            let off = mm * 5;
            {
                let v = &mut ext[off..off + w * 5];
                for (d, &a) in v.iter_mut().zip(row(y)) {
                    *d = a * kernel[0];
                }
                for (i, &k) in kernel.iter().enumerate().skip(1) {
                    let a = row((y + i).min(h - 1));
                    let b = row(y.saturating_sub(i));
                    for ((d, &p), &q) in v.iter_mut().zip(a).zip(b) {
                        *d += (p + q) * k;
                    }
                }
            }
            for x in 0..off {
                ext[off - 1 - x] = ext[off + 4 - x];
                ext[off + w * 5 + x] = ext[off + w * 5 + x - 5];
            }
            for (x, hs) in hsum.iter_mut().enumerate() {
                let c = off + x;
                let mut sum = ext[c] * kernel[0];
                for (i, &k) in kernel.iter().enumerate().skip(1) {
                    sum += k * (ext[c - i * 5] + ext[c + i * 5]);
                }
                *hs = sum;
            }
            for x in 0..w {
                let g = &hsum[x * 5..x * 5 + 5];
                solve(
                    f64::from(g[0]),
                    f64::from(g[1]),
                    f64::from(g[2]),
                    f64::from(g[3]),
                    f64::from(g[4]),
                    &mut frow[x * 2..x * 2 + 2],
                );
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_kernel_sizes_and_reflection() {
        let sizes: Vec<usize> = (0..6)
            .map(|k| {
                let s = 0.5f64.powi(k);
                let sigma = (1.0 / s - 1.0) * 0.5;
                (((sigma * 5.0).round_ties_even() as i64) | 1).max(3) as usize
            })
            .collect();
        assert_eq!(sizes, [3, 3, 9, 19, 39, 79]);
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(-3, 1), 0);
        assert_eq!(gaussian_kernel(3, 0.0), [0.25, 0.5, 0.25]);
    }

    #[test]
    fn parameters_are_checked() {
        let bad = [
            Params {
                pyr_scale: 1.0,
                ..Params::DEFORUM
            },
            Params {
                levels: 99,
                ..Params::DEFORUM
            },
            Params {
                winsize: 0,
                ..Params::DEFORUM
            },
            Params {
                poly_n: 0,
                ..Params::DEFORUM
            },
            Params {
                poly_sigma: f64::NAN,
                ..Params::DEFORUM
            },
        ];
        let img = GrayImage::new(8, 8);
        for p in bad {
            assert!(farneback(&img, &img, &p, None).is_err(), "{p:?}");
        }
        let other = GrayImage::new(8, 9);
        let err = farneback(&img, &other, &Params::DEFORUM, None).unwrap_err();
        assert!(err.to_string().contains("8x8 and 8x9"), "{err}");
    }

    #[test]
    fn tiny_and_flat_frames_give_zero_flow() {
        for (w, h) in [(1, 1), (3, 2), (40, 33)] {
            let img = GrayImage::from_pixel(w, h, image::Luma([90]));
            let f = farneback(&img, &img, &Params::DEFORUM, None).unwrap();
            assert!(f.as_slice().iter().all(|&v| v == 0.0));
        }
    }
}
