//! OpenCV's DIS dense optical flow (`DISOpticalFlow`, Kroeger et al. 2016), ported from
//! `modules/video/src/dis_flow.cpp` (CPU path) value for value where the arithmetic allows.
//!
//! Per pyramid level, coarse to fine: patch sums of the I0 gradients, an inverse search of each
//! patch (spatial propagation in 8 fixed row stripes, a raster then a reverse pass, Gauss–Newton
//! steps), densification of the patch flows, then the variational refinement
//! ([`variational`]). Hand-written: no crate offers DIS, and parity with OpenCV needs its exact
//! order of operations (the 8×8 patch sums follow OpenCV's 4-lane SIMD accumulation, since the
//! candidate choice and the stop rule are discrete decisions that summation order can flip).

pub mod variational;

use super::{Flow, MAX_SIDE};
use crate::controlnet::preprocess::resize::{Interpolation, resize};
use anyhow::{Result, bail};
use image::GrayImage;
use rayon::prelude::*;

/// OpenCV's `border_size`: the replicated border around I1 at each level.
const BORDER: usize = 16;
/// OpenCV's fixed stripe count for the inverse search with spatial propagation.
const STRIPES: usize = 8;
/// OpenCV's `EPS` (determinant floor, densification clamp).
const EPS: f32 = 0.001;
/// OpenCV's `INF`.
const INF: f32 = 1e10;
/// The most gradient-descent iterations accepted (the inner loop's size).
pub const MAX_GD_ITERATIONS: u32 = 10_000;
/// The most variational-refinement iterations accepted.
pub const MAX_VR_ITERATIONS: u32 = 1_000;

/// DIS parameters, named as OpenCV's setters name them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// The finest pyramid level computed (0: full resolution).
    pub finest_scale: u32,
    /// Patch side.
    pub patch_size: u32,
    /// Distance between patches.
    pub patch_stride: u32,
    /// Gradient-descent iterations per patch.
    pub gradient_descent_iterations: u32,
    /// Variational refinement iterations (0: none).
    pub variational_refinement_iterations: u32,
    /// Smoothness weight α.
    pub variational_refinement_alpha: f32,
    /// Colour-constancy weight δ.
    pub variational_refinement_delta: f32,
    /// Gradient-constancy weight γ.
    pub variational_refinement_gamma: f32,
    /// Charbonnier ε of the variational refinement: OpenCV 5's `DISOpticalFlow` sets 0.01 (its
    /// `setVariationalRefinementEpsilon`); OpenCV 4.x hard-codes 0.001.
    pub variational_refinement_epsilon: f32,
    /// Mean normalisation of patches.
    pub use_mean_normalization: bool,
    /// Spatial propagation of patch flows.
    pub use_spatial_propagation: bool,
}

impl Params {
    /// OpenCV's PRESET_ULTRAFAST.
    pub const ULTRAFAST: Params = Params {
        finest_scale: 2,
        patch_size: 8,
        patch_stride: 4,
        gradient_descent_iterations: 12,
        variational_refinement_iterations: 0,
        ..Params::MEDIUM
    };
    /// OpenCV's PRESET_FAST (the default of `DISOpticalFlow_create`).
    pub const FAST: Params = Params {
        finest_scale: 2,
        patch_size: 8,
        patch_stride: 4,
        gradient_descent_iterations: 16,
        variational_refinement_iterations: 5,
        ..Params::MEDIUM
    };
    /// OpenCV's PRESET_MEDIUM.
    pub const MEDIUM: Params = Params {
        finest_scale: 1,
        patch_size: 8,
        patch_stride: 3,
        gradient_descent_iterations: 25,
        variational_refinement_iterations: 5,
        variational_refinement_alpha: 20.0,
        variational_refinement_delta: 5.0,
        variational_refinement_gamma: 10.0,
        variational_refinement_epsilon: 0.01,
        use_mean_normalization: true,
        use_spatial_propagation: true,
    };
    /// Deforum's "DIS Fine": PRESET_FAST with 192 iterations, finest scale 0, patch 8, stride 4.
    pub const DEFORUM_FINE: Params = Params {
        finest_scale: 0,
        patch_size: 8,
        patch_stride: 4,
        gradient_descent_iterations: 192,
        ..Params::FAST
    };

    /// Checks every value that sizes a buffer or a loop.
    ///
    /// # Errors
    /// A value out of its range, named with the range.
    pub fn check(&self) -> Result<()> {
        if !(2..=BORDER as u32).contains(&self.patch_size) {
            bail!(
                "DIS patch_size {} is out of range: use 2 to {BORDER} (OpenCV's border is {BORDER} px)",
                self.patch_size
            );
        }
        if !(1..=self.patch_size).contains(&self.patch_stride) {
            bail!(
                "DIS patch_stride {} is out of range: use 1 to the patch size ({})",
                self.patch_stride,
                self.patch_size
            );
        }
        if self.finest_scale > 9 {
            bail!(
                "DIS finest_scale {} is out of range: use 0 to 9",
                self.finest_scale
            );
        }
        if !(1..=MAX_GD_ITERATIONS).contains(&self.gradient_descent_iterations) {
            bail!(
                "DIS gradient_descent_iterations {} is out of range: use 1 to {MAX_GD_ITERATIONS}",
                self.gradient_descent_iterations
            );
        }
        if self.variational_refinement_iterations > MAX_VR_ITERATIONS {
            bail!(
                "DIS variational_refinement_iterations {} is out of range: use 0 to {MAX_VR_ITERATIONS}",
                self.variational_refinement_iterations
            );
        }
        for (name, v) in [
            ("alpha", self.variational_refinement_alpha),
            ("delta", self.variational_refinement_delta),
            ("gamma", self.variational_refinement_gamma),
            ("epsilon", self.variational_refinement_epsilon),
        ] {
            if !v.is_finite() || v < 0.0 {
                bail!("DIS variational_refinement_{name} {v} must be a finite number >= 0");
            }
        }
        Ok(())
    }
}

/// OpenCV's coarsest pyramid level for a `w`×`h` frame and patch `ps` (may be negative).
fn coarsest_scale(w: u32, h: u32, ps: u32) -> i32 {
    let a = ((f64::from(w.max(h)) / (4.0 * f64::from(ps))).ln() / 2f64.ln() + 0.5) as i32;
    let b = (f64::from(w.min(h) / ps).ln() / 2f64.ln()) as i32;
    a.min(b)
}

/// `x.floor()` with the same bits for every input (±0, NaN, infinities, large values), inline:
/// x86_64's baseline has no SSE4.1 `roundss`, so `f32::floor` is a call into libm, which cost
/// about 3% of a flow.
#[inline]
pub(crate) fn floor(x: f32) -> f32 {
    // NaN, infinities and |x| >= 2^23 (already integers) are their own floor.
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = (x as i32) as f32;
    let f = if t > x { t - 1.0 } else { t };
    // The sign of x: floor(-0.0) is -0.0, floor(-0.5) is -1.
    f.copysign(x)
}

/// Levels of fewer pixels than this run each parallel pass as one task: splitting them costs
/// more in thread hand-offs than it gains (the results do not depend on it).
const SERIAL_PIXELS: usize = 128 * 128;

/// The smallest number of items rayon may hand one task for a level of `pixels` pixels:
/// all of them ([`SERIAL_PIXELS`]), or 1.
#[inline]
pub(crate) fn min_len(pixels: usize) -> usize {
    if pixels < SERIAL_PIXELS {
        usize::MAX
    } else {
        1
    }
}

/// A row-major single-channel plane.
#[derive(Clone)]
struct Plane<T> {
    w: usize,
    h: usize,
    data: Vec<T>,
}

/// One pyramid level's images.
struct Level {
    i0: Plane<u8>,
    i1: Plane<u8>,
    /// The initial flow at this level (temporal candidates), when given.
    init: Option<(Plane<f32>, Plane<f32>)>,
    /// I0's Sobel gradients, I0 and I1 with its replicated border, as f32: u8 and i16 convert
    /// exactly, so the patch sums and the structure tensor see OpenCV's values while skipping
    /// its per-row widening (`v_expand`, `v_cvt_f32`).
    f: LevelF32,
}

/// A level's planes as f32 (see [`Level::f`]).
struct LevelF32 {
    i0: Vec<f32>,
    /// I1 with a [`BORDER`]-px replicated border, `ext_w` wide.
    i1_ext: Vec<f32>,
    ext_w: usize,
    gx: Vec<f32>,
    gy: Vec<f32>,
}

/// `copyMakeBorder(BORDER_REPLICATE)` by [`BORDER`] px, as f32; returns the plane and its width.
fn replicate_border(p: &Plane<u8>) -> (Vec<f32>, usize) {
    let (w, h) = (p.w, p.h);
    let (we, he) = (w + 2 * BORDER, h + 2 * BORDER);
    let mut data = vec![0f32; we * he];
    data.par_chunks_mut(we)
        .enumerate()
        .with_min_len(min_len(we * he))
        .for_each(|(y, row)| {
            let sy = y.saturating_sub(BORDER).min(h - 1);
            let src = &p.data[sy * w..(sy + 1) * w];
            let (left, rest) = row.split_at_mut(BORDER);
            let (mid, right) = rest.split_at_mut(w);
            left.fill(f32::from(src[0]));
            for (o, &v) in mid.iter_mut().zip(src) {
                *o = f32::from(v);
            }
            right.fill(f32::from(src[w - 1]));
        });
    (data, we)
}

/// `BORDER_REFLECT_101` index.
fn reflect101(p: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let q = if p < 0 {
        -p
    } else if p >= n {
        2 * n - 2 - p
    } else {
        p
    };
    q.clamp(0, n - 1) as usize
}

/// `spatialGradient`: 3×3 Sobel x and y (OpenCV's int16 values, held exactly as f32) with
/// `BORDER_REFLECT_101`.
fn spatial_gradient(p: &Plane<u8>) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = (p.w, p.h);
    let mut gx = vec![0f32; w * h];
    let mut gy = vec![0f32; w * h];
    gx.par_chunks_mut(w)
        .zip(gy.par_chunks_mut(w))
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, (rx, ry))| {
            let row = |r: usize| &p.data[r * w..(r + 1) * w];
            let (up, mid, down) = (
                row(reflect101(y as isize - 1, h)),
                row(y),
                row(reflect101(y as isize + 1, h)),
            );
            let at = |x: usize, xm: usize, xp: usize| {
                let px = |r: &[u8], x: usize| i32::from(r[x]);
                let dx = (px(up, xp) - px(up, xm))
                    + 2 * (px(mid, xp) - px(mid, xm))
                    + (px(down, xp) - px(down, xm));
                let dy = (px(down, xm) + 2 * px(down, x) + px(down, xp))
                    - (px(up, xm) + 2 * px(up, x) + px(up, xp));
                (dx as f32, dy as f32)
            };
            for x in [0, w - 1] {
                (rx[x], ry[x]) = at(
                    x,
                    reflect101(x as isize - 1, w),
                    reflect101(x as isize + 1, w),
                );
            }
            for x in 1..w.saturating_sub(1) {
                (rx[x], ry[x]) = at(x, x - 1, x + 1);
            }
        });
    (gx, gy)
}

/// The 8-bit pyramid of a `w`×`h` frame: levels `fs..=coarsest`, each `resize(INTER_AREA)` of
/// the one before (the first of the frame itself).
fn pyramid(frame: &[u8], w: usize, h: usize, fs: usize, coarsest: usize) -> Vec<Plane<u8>> {
    let mut levels: Vec<Plane<u8>> = Vec::with_capacity(coarsest + 1 - fs);
    for i in fs..=coarsest {
        let (src, sw, sh) = match levels.last() {
            Some(prev) => (&prev.data[..], prev.w, prev.h),
            None => (frame, w, h),
        };
        let (lw, lh) = if i == fs {
            (w >> i, h >> i)
        } else {
            (sw / 2, sh / 2)
        };
        let data = resize(src, sw, sh, 1, lw, lh, Interpolation::Area);
        levels.push(Plane { w: lw, h: lh, data });
    }
    levels
}

/// One axis of OpenCV's float `INTER_LINEAR` resize: source index and the weight of the next.
fn linear_axis(src: usize, dst: usize) -> Vec<(usize, f32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = floor(f);
            let (mut si, mut fr) = (s as isize, f - s);
            if si < 0 {
                si = 0;
                fr = 0.0;
            }
            if si as usize >= src - 1 {
                si = src as isize - 1;
                fr = 0.0;
            }
            (si as usize, fr)
        })
        .collect()
}

/// `resize(INTER_LINEAR)` of a float plane to `w`×`h`, one output row at a time (OpenCV's
/// float path: weights `1 − f, f`, clamped at the edges; an exact 2× shrink is OpenCV's 2×2
/// area mean; the same size is a copy).
enum Resized<'a> {
    Same(&'a Plane<f32>),
    Half(&'a Plane<f32>),
    /// The horizontal pass of every source row (`w` wide), and each output row's source row
    /// and the weight of the next.
    Linear {
        hp: Vec<f32>,
        yt: Vec<(usize, f32)>,
        src_h: usize,
    },
}

impl<'a> Resized<'a> {
    fn new(p: &'a Plane<f32>, w: usize, h: usize) -> Self {
        if (p.w, p.h) == (w, h) {
            return Resized::Same(p);
        }
        if p.w == 2 * w && p.h == 2 * h {
            // OpenCV turns INTER_LINEAR at an exact 2× shrink into the fast area mean.
            return Resized::Half(p);
        }
        let xt = linear_axis(p.w, w);
        // Horizontal pass once per source row; the rows blend two of them.
        let mut hp = vec![0f32; p.h * w];
        hp.par_chunks_mut(w)
            .enumerate()
            .with_min_len(min_len(w * h))
            .for_each(|(sy, out)| {
                let r = &p.data[sy * p.w..(sy + 1) * p.w];
                for (o, &(sx, fx)) in out.iter_mut().zip(&xt) {
                    *o = if fx == 0.0 && sx + 1 >= p.w {
                        r[sx]
                    } else {
                        r[sx] * (1.0 - fx) + r[(sx + 1).min(p.w - 1)] * fx
                    };
                }
            });
        Resized::Linear {
            hp,
            yt: linear_axis(p.h, h),
            src_h: p.h,
        }
    }

    /// Output row `y` (`w` wide), each value handed to `put(x, value)`.
    #[inline(always)]
    fn row(&self, y: usize, w: usize, mut put: impl FnMut(usize, f32)) {
        match self {
            Resized::Same(p) => {
                for (x, &v) in p.data[y * w..(y + 1) * w].iter().enumerate() {
                    put(x, v);
                }
            }
            Resized::Half(p) => {
                let r0 = &p.data[2 * y * p.w..];
                let r1 = &p.data[(2 * y + 1) * p.w..];
                for x in 0..w {
                    put(
                        x,
                        (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]) * 0.25,
                    );
                }
            }
            Resized::Linear { hp, yt, src_h } => {
                let (sy, fy) = yt[y];
                let a = &hp[sy * w..(sy + 1) * w];
                let sb = (sy + 1).min(src_h - 1);
                let b = &hp[sb * w..(sb + 1) * w];
                let (b0, b1) = (1.0 - fy, fy);
                for (x, (&a, &b)) in a.iter().zip(b).enumerate() {
                    put(x, a * b0 + b * b1);
                }
            }
        }
    }
}

/// `resize(INTER_LINEAR)` of a float plane ([`Resized`]), each value then mapped by `post`
/// (the flow's scaling, fused into the same pass).
fn resize_f32(p: &Plane<f32>, w: usize, h: usize, post: impl Fn(f32) -> f32 + Sync) -> Plane<f32> {
    let src = Resized::new(p, w, h);
    let mut data = vec![0f32; w * h];
    data.par_chunks_mut(w)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, row)| src.row(y, w, |x, v| row[x] = post(v)));
    Plane { w, h, data }
}

/// The forward flow from `a` to `b`, as `cv2.DISOpticalFlow.calc(a, b, init)` computes it;
/// `init` is OpenCV's initial flow (its vectors become temporal candidates at every level).
///
/// # Errors
/// Bad parameters ([`Params::check`]), frames of different sizes, frames too small for the
/// patch size and finest scale, or an `init` flow of another size.
pub fn dis(a: &GrayImage, b: &GrayImage, p: &Params, init: Option<&Flow>) -> Result<Flow> {
    // On a worker of the current rayon pool: the small levels' passes, which run as one task
    // ([`min_len`]), then stay on that thread instead of each going from the caller's thread to
    // the pool and back.
    rayon::scope(|_| dis_on_worker(a, b, p, init))
}

/// [`dis`], on a rayon worker.
fn dis_on_worker(a: &GrayImage, b: &GrayImage, p: &Params, init: Option<&Flow>) -> Result<Flow> {
    p.check()?;
    let (w, h) = a.dimensions();
    if b.dimensions() != (w, h) {
        bail!(
            "DIS needs two frames of one size, got {w}x{h} and {}x{}",
            b.width(),
            b.height()
        );
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        bail!("DIS frames of {w}x{h}: each side must be at most {MAX_SIDE}");
    }
    let ps = p.patch_size;
    let fs = p.finest_scale as i32;
    let coarsest = coarsest_scale(w, h, ps);
    if w < ps || h < ps || coarsest < fs {
        let need = ps << p.finest_scale;
        bail!(
            "DIS frames of {w}x{h} are too small for patch size {ps} at finest scale {fs}: \
             each side must be at least {need} px (and the longer one about {} px)",
            4 * need
        );
    }
    if let Some(f) = init
        && (f.width(), f.height()) != (w, h)
    {
        bail!(
            "the DIS initial flow is {}x{} but the frames are {w}x{h}; pass a flow of the frames' size",
            f.width(),
            f.height()
        );
    }
    let (fs, coarsest) = (fs as usize, coarsest as usize);
    let init_planes = init.map(|f| {
        let n = w as usize * h as usize;
        let (mut u, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for c in f.as_slice().chunks_exact(2) {
            u.push(c[0]);
            v.push(c[1]);
        }
        let mk = |data| Plane {
            w: w as usize,
            h: h as usize,
            data,
        };
        (mk(u), mk(v))
    });
    // Pyramid (prepareBuffers): the two frames' sides side by side.
    let (w, h) = (w as usize, h as usize);
    let (side0, side1) = rayon::join(
        || {
            pyramid(a.as_raw(), w, h, fs, coarsest)
                .into_par_iter()
                .map(|i0| {
                    let (gx, gy) = spatial_gradient(&i0);
                    let f = i0.data.iter().map(|&v| f32::from(v)).collect::<Vec<f32>>();
                    (i0, f, gx, gy)
                })
                .collect::<Vec<_>>()
        },
        || {
            pyramid(b.as_raw(), w, h, fs, coarsest)
                .into_par_iter()
                .map(|i1| {
                    let ext = replicate_border(&i1);
                    (i1, ext)
                })
                .collect::<Vec<_>>()
        },
    );
    let levels: Vec<Level> = side0
        .into_iter()
        .zip(side1)
        .zip(fs..)
        .map(|(((i0, fi0, gx, gy), (i1, (i1_ext, ext_w))), i)| {
            let init = init_planes.as_ref().map(|(u, v)| {
                let frac = (1u32 << i) as f32;
                (
                    resize_f32(u, i0.w, i0.h, |x| x / frac),
                    resize_f32(v, i0.w, i0.h, |x| x / frac),
                )
            });
            Level {
                f: LevelF32 {
                    i0: fi0,
                    i1_ext,
                    ext_w,
                    gx,
                    gy,
                },
                i0,
                i1,
                init,
            }
        })
        .collect();
    // Coarse to fine.
    let top = &levels[coarsest - fs];
    let mut ux = Plane {
        w: top.i0.w,
        h: top.i0.h,
        data: vec![0f32; top.i0.w * top.i0.h],
    };
    let mut uy = ux.clone();
    for li in (0..levels.len()).rev() {
        let lv = &levels[li];
        let (lw, lh) = (lv.i0.w, lv.i0.h);
        let psz = ps as usize;
        let stride = p.patch_stride as usize;
        let ws = 1 + (lw - psz) / stride;
        let hs = 1 + (lh - psz) / stride;
        let tensor = structure_tensor(&lv.f.gx, &lv.f.gy, lw, lh, psz, stride, ws, hs);
        let (sx, sy) = inverse_search(lv, &tensor, &ux, &uy, p, ws, hs);
        densify(lv, &sx, &sy, &mut ux, &mut uy, psz, stride, ws, hs);
        if p.variational_refinement_iterations > 0 {
            variational::refine(
                &lv.i0.data,
                &lv.i1.data,
                lw,
                lh,
                &mut ux.data,
                &mut uy.data,
                p,
            );
        }
        if li > 0 {
            let next = &levels[li - 1].i0;
            ux = resize_f32(&ux, next.w, next.h, |x| x * 2.0);
            uy = resize_f32(&uy, next.w, next.h, |x| x * 2.0);
        }
    }
    let scale = (1u32 << fs) as f32;
    let (su, sv) = (Resized::new(&ux, w, h), Resized::new(&uy, w, h));
    let mut data = vec![0f32; 2 * w * h];
    data.par_chunks_mut(2 * w)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(y, row)| {
            su.row(y, w, |x, v| row[2 * x] = v * scale);
            sv.row(y, w, |x, v| row[2 * x + 1] = v * scale);
        });
    Flow::from_vec(w as u32, h as u32, data)
}

/// Per-patch sums over the patch grid: `ΣIx², ΣIy², ΣIxIy, ΣIx, ΣIy` (OpenCV's running sums).
struct Tensor {
    xx: Vec<f32>,
    yy: Vec<f32>,
    xy: Vec<f32>,
    x: Vec<f32>,
    y: Vec<f32>,
}

/// `precomputeStructureTensor`: a separable box filter sampled on the patch grid, in OpenCV's
/// order (integer products, f32 running sums).
#[allow(clippy::too_many_arguments)]
fn structure_tensor(
    gx: &[f32],
    gy: &[f32],
    w: usize,
    h: usize,
    psz: usize,
    stride: usize,
    ws: usize,
    hs: usize,
) -> Tensor {
    // Horizontal pass: [h][ws] of 5 sums.
    let mut aux = vec![[0f32; 5]; h * ws];
    aux.par_chunks_mut(ws)
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(i, out)| {
            // The gradients are int16 values held exactly in f32: back to integers.
            let xr: Vec<i32> = gx[i * w..(i + 1) * w].iter().map(|&v| v as i32).collect();
            let yr: Vec<i32> = gy[i * w..(i + 1) * w].iter().map(|&v| v as i32).collect();
            let mut s = [0f32; 5];
            for j in 0..psz {
                let (x, y) = (xr[j], yr[j]);
                s[0] += (x * x) as f32;
                s[1] += (y * y) as f32;
                s[2] += (x * y) as f32;
                s[3] += x as f32;
                s[4] += y as f32;
            }
            out[0] = s;
            let mut js = 1;
            for j in psz..w {
                let (x, y) = (xr[j], yr[j]);
                let (xo, yo) = (xr[j - psz], yr[j - psz]);
                s[0] += (x * x - xo * xo) as f32;
                s[1] += (y * y - yo * yo) as f32;
                s[2] += (x * y - xo * yo) as f32;
                s[3] += (x - xo) as f32;
                s[4] += (y - yo) as f32;
                if (j - psz + 1).is_multiple_of(stride) {
                    out[js] = s;
                    js += 1;
                }
            }
        });
    // Vertical pass.
    let mut t = vec![[0f32; 5]; hs * ws];
    let mut sum = vec![[0f32; 5]; ws];
    for i in 0..psz {
        for j in 0..ws {
            for k in 0..5 {
                sum[j][k] += aux[i * ws + j][k];
            }
        }
    }
    t[..ws].copy_from_slice(&sum);
    let mut is = 1;
    for i in psz..h {
        for j in 0..ws {
            for k in 0..5 {
                sum[j][k] += aux[i * ws + j][k] - aux[(i - psz) * ws + j][k];
            }
        }
        if (i - psz + 1).is_multiple_of(stride) {
            t[is * ws..(is + 1) * ws].copy_from_slice(&sum);
            is += 1;
        }
    }
    Tensor {
        xx: t.iter().map(|s| s[0]).collect(),
        yy: t.iter().map(|s| s[1]).collect(),
        xy: t.iter().map(|s| s[2]).collect(),
        x: t.iter().map(|s| s[3]).collect(),
        y: t.iter().map(|s| s[4]).collect(),
    }
}

/// What one patch evaluation returns: `Σd²`, `Σd`, `Σd·Ix`, `Σd·Iy`.
#[derive(Clone, Copy, Default)]
struct Sums {
    sq: f32,
    d: f32,
    dx: f32,
    dy: f32,
}

/// OpenCV's `v_reduce_sum` of four f32 lanes on SSE3: `(a0 + a1) + (a2 + a3)`.
#[inline]
fn reduce4(a: [f32; 4]) -> f32 {
    (a[0] + a[2]) + (a[1] + a[3])
}

/// The patch at `(i, j)` of the level against I1 displaced by `(u, v)`.
struct PatchCtx<'a> {
    lv: &'a Level,
    psz: usize,
    mean_norm: bool,
}

impl PatchCtx<'_> {
    /// OpenCV's `INIT_BILINEAR_WEIGHTS`: top-left of the I1 window and the weights.
    #[inline]
    fn weights(&self, i: usize, j: usize, u: f32, v: f32) -> (usize, [f32; 4]) {
        let (w, h) = (self.lv.i0.w, self.lv.i0.h);
        let b = BORDER as f32;
        let lo = b - self.psz as f32 + 1.0;
        let ii = (i as f32 + v + b).max(lo).min(b + h as f32 - 1.0);
        let jj = (j as f32 + u + b).max(lo).min(b + w as f32 - 1.0);
        let (fi, fj) = (floor(ii), floor(jj));
        let w11 = (ii - fi) * (jj - fj);
        let w10 = (ii - fi) * (fj + 1.0 - jj);
        let w01 = (fi + 1.0 - ii) * (jj - fj);
        let w00 = (fi + 1.0 - ii) * (fj + 1.0 - jj);
        (
            ii as usize * self.lv.f.ext_w + jj as usize,
            [w00, w01, w10, w11],
        )
    }

    /// The sums over the patch; `GRAD` also sums `d·∇I0`. `AVX2`: the 8×8 sums in AVX2 lanes
    /// (true only inside [`search_stripe_avx2`]).
    #[inline(always)]
    fn sums<const GRAD: bool, const AVX2: bool>(&self, i: usize, j: usize, u: f32, v: f32) -> Sums {
        let (off1, wt) = self.weights(i, j, u, v);
        let lw = self.lv.i0.w;
        let we = self.lv.f.ext_w;
        let f = &self.lv.f;
        let o0 = i * lw + j;
        let (i0, i1, gx, gy) = (&f.i0[o0..], &f.i1_ext[off1..], &f.gx[o0..], &f.gy[o0..]);
        if self.psz == 8 {
            #[cfg(target_arch = "x86_64")]
            {
                if AVX2 {
                    debug_assert!(crate::cpu::has("avx2"));
                    // SAFETY: `AVX2` is true only in `search_stripe_avx2`, which
                    // `inverse_search` calls after `crate::cpu::has("avx2")`.
                    unsafe { sums8_avx2::<GRAD>(i0, i1, gx, gy, lw, we, wt) }
                } else {
                    sums8_sse2::<GRAD>(i0, i1, gx, gy, lw, we, wt)
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                sums8_scalar::<GRAD>(i0, i1, gx, gy, lw, we, wt)
            }
        } else {
            let [w00, w01, w10, w11] = wt;
            let mut s = Sums::default();
            for r in 0..self.psz {
                for c in 0..self.psz {
                    let d = w00 * i1[r * we + c]
                        + w01 * i1[r * we + c + 1]
                        + w10 * i1[(r + 1) * we + c]
                        + w11 * i1[(r + 1) * we + c + 1]
                        - i0[r * lw + c];
                    s.d += d;
                    s.sq += d * d;
                    if GRAD {
                        s.dx += d * gx[r * lw + c];
                        s.dy += d * gy[r * lw + c];
                    }
                }
            }
            s
        }
    }

    /// `computeSSD` / `computeSSDMeanNorm`.
    #[inline(always)]
    fn cost<const AVX2: bool>(&self, i: usize, j: usize, u: f32, v: f32) -> f32 {
        let s = self.sums::<false, AVX2>(i, j, u, v);
        if self.mean_norm {
            let n = (self.psz * self.psz) as f32;
            s.sq - s.d * s.d / n
        } else {
            s.sq
        }
    }
}

/// The 8×8 patch sums in OpenCV's `CV_SIMD128` order, lane by lane: lane `k` accumulates
/// columns `k` and `k + 4` of each row (`left + right` per row), then [`reduce4`]. `i0`, `gx`,
/// `gy` start at the patch's top-left (row stride `lw`), `i1` at the I1 window's (stride `we`),
/// `wt` holds the bilinear weights `w00, w01, w10, w11`. The reference for [`sums8_sse2`],
/// and the path on other architectures.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn sums8_scalar<const GRAD: bool>(
    i0: &[f32],
    i1: &[f32],
    gx: &[f32],
    gy: &[f32],
    lw: usize,
    we: usize,
    wt: [f32; 4],
) -> Sums {
    let [w00, w01, w10, w11] = wt;
    let diff = |r: usize, c: usize| {
        w00 * i1[r * we + c]
            + w01 * i1[r * we + c + 1]
            + w10 * i1[(r + 1) * we + c]
            + w11 * i1[(r + 1) * we + c + 1]
            - i0[r * lw + c]
    };
    let (mut sq, mut sd, mut sx, mut sy) = ([0f32; 4], [0f32; 4], [0f32; 4], [0f32; 4]);
    for r in 0..8 {
        for k in 0..4 {
            let dl = diff(r, k);
            let dr = diff(r, k + 4);
            if GRAD {
                sx[k] += dl * gx[r * lw + k] + dr * gx[r * lw + k + 4];
                sy[k] += dl * gy[r * lw + k] + dr * gy[r * lw + k + 4];
            }
            sq[k] += dl * dl + dr * dr;
            sd[k] += dl + dr;
        }
    }
    Sums {
        sq: reduce4(sq),
        d: reduce4(sd),
        dx: reduce4(sx),
        dy: reduce4(sy),
    }
}

/// The parts of the slices an 8×8 patch evaluation reads (I1 rows 0..=8 at columns 0..9, the
/// others rows 0..8 at columns 0..8; the gradients only with `GRAD`): one bounds check each, so
/// that the SIMD loads below stay inside them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn patch_slices<'a, const GRAD: bool>(
    i0: &'a [f32],
    i1: &'a [f32],
    gx: &'a [f32],
    gy: &'a [f32],
    lw: usize,
    we: usize,
) -> (&'a [f32], &'a [f32], &'a [f32], &'a [f32]) {
    let (gx, gy) = if GRAD {
        (&gx[..7 * lw + 8], &gy[..7 * lw + 8])
    } else {
        (gx, gy)
    };
    (&i0[..7 * lw + 8], &i1[..8 * we + 9], gx, gy)
}

/// [`reduce4`] of an SSE register's four lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes(v: std::arch::x86_64::__m128) -> f32 {
    let mut a = [0f32; 4];
    // SAFETY: SSE2 is part of the x86_64 baseline; `a` holds 4 f32.
    unsafe { std::arch::x86_64::_mm_storeu_ps(a.as_mut_ptr(), v) };
    reduce4(a)
}

/// [`sums8_scalar`] in SSE2 lanes (baseline on x86_64, so no runtime check): the same
/// operations in the same order per lane, hence the same bits. OpenCV's SIMD path for the
/// default patch size (`processPatchMeanNorm`, `computeSSDMeanNorm`, ...).
#[cfg(target_arch = "x86_64")]
#[inline]
fn sums8_sse2<const GRAD: bool>(
    i0: &[f32],
    i1: &[f32],
    gx: &[f32],
    gy: &[f32],
    lw: usize,
    we: usize,
    wt: [f32; 4],
) -> Sums {
    use std::arch::x86_64::{
        _mm_add_ps, _mm_loadu_ps, _mm_mul_ps, _mm_set1_ps, _mm_setzero_ps, _mm_sub_ps,
    };
    let (i0, i1, gx, gy) = patch_slices::<GRAD>(i0, i1, gx, gy, lw, we);
    // SAFETY: SSE2 is part of the x86_64 baseline; every load reads 4 f32 inside the slices
    // checked above (I1 rows 0..=8 at columns 0..9, the others rows 0..8 at columns 0..8).
    unsafe {
        let [w00, w01, w10, w11] = wt.map(|x| _mm_set1_ps(x));
        let p1 = i1.as_ptr();
        let (mut a_l, mut a_r) = (_mm_loadu_ps(p1), _mm_loadu_ps(p1.add(4)));
        let (mut b_l, mut b_r) = (_mm_loadu_ps(p1.add(1)), _mm_loadu_ps(p1.add(5)));
        let zero = _mm_setzero_ps();
        let (mut sq, mut sd, mut sx, mut sy) = (zero, zero, zero, zero);
        for r in 0..8 {
            let q = p1.add((r + 1) * we);
            let (c_l, c_r) = (_mm_loadu_ps(q), _mm_loadu_ps(q.add(4)));
            let (d_l, d_r) = (_mm_loadu_ps(q.add(1)), _mm_loadu_ps(q.add(5)));
            let z = i0.as_ptr().add(r * lw);
            let diff = |a, b, c, d, z| {
                let s = _mm_add_ps(_mm_mul_ps(w00, a), _mm_mul_ps(w01, b));
                let s = _mm_add_ps(s, _mm_mul_ps(w10, c));
                _mm_sub_ps(_mm_add_ps(s, _mm_mul_ps(w11, d)), z)
            };
            let dl = diff(a_l, b_l, c_l, d_l, _mm_loadu_ps(z));
            let dr = diff(a_r, b_r, c_r, d_r, _mm_loadu_ps(z.add(4)));
            if GRAD {
                let (x, y) = (gx.as_ptr().add(r * lw), gy.as_ptr().add(r * lw));
                let px = _mm_add_ps(
                    _mm_mul_ps(dl, _mm_loadu_ps(x)),
                    _mm_mul_ps(dr, _mm_loadu_ps(x.add(4))),
                );
                let py = _mm_add_ps(
                    _mm_mul_ps(dl, _mm_loadu_ps(y)),
                    _mm_mul_ps(dr, _mm_loadu_ps(y.add(4))),
                );
                sx = _mm_add_ps(sx, px);
                sy = _mm_add_ps(sy, py);
            }
            sq = _mm_add_ps(sq, _mm_add_ps(_mm_mul_ps(dl, dl), _mm_mul_ps(dr, dr)));
            sd = _mm_add_ps(sd, _mm_add_ps(dl, dr));
            (a_l, a_r, b_l, b_r) = (c_l, c_r, d_l, d_r);
        }
        Sums {
            sq: lanes(sq),
            d: lanes(sd),
            dx: lanes(sx),
            dy: lanes(sy),
        }
    }
}

/// [`sums8_sse2`] with both halves of each row in one AVX2 register (columns 0–3 low, 4–7
/// high): the bilinear differences and the products eight wide, then, per row, the high half
/// added to the low one and that to the 4-lane sums, as OpenCV's `left + right` (the same
/// operations on the same operands in the same order, hence the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn sums8_avx2<const GRAD: bool>(
    i0: &[f32],
    i1: &[f32],
    gx: &[f32],
    gy: &[f32],
    lw: usize,
    we: usize,
    wt: [f32; 4],
) -> Sums {
    use std::arch::x86_64::{
        __m256, _mm_add_ps, _mm_setzero_ps, _mm256_add_ps, _mm256_castps256_ps128,
        _mm256_extractf128_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_sub_ps,
    };
    let (i0, i1, gx, gy) = patch_slices::<GRAD>(i0, i1, gx, gy, lw, we);
    // Low plus high half of each lane pair: OpenCV's `left + right`.
    let halves = |v: __m256| _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    // SAFETY: AVX2 is enabled; every load reads 8 f32 inside the slices checked above (I1 rows
    // 0..=8 at columns 0..9, the others rows 0..8 at columns 0..8).
    unsafe {
        let [w00, w01, w10, w11] = wt.map(|x| _mm256_set1_ps(x));
        let p1 = i1.as_ptr();
        let (mut a, mut b) = (_mm256_loadu_ps(p1), _mm256_loadu_ps(p1.add(1)));
        let zero = _mm_setzero_ps();
        let (mut sq, mut sd, mut sx, mut sy) = (zero, zero, zero, zero);
        for r in 0..8 {
            let q = p1.add((r + 1) * we);
            let (c, d) = (_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(1)));
            let z = _mm256_loadu_ps(i0.as_ptr().add(r * lw));
            let s = _mm256_add_ps(_mm256_mul_ps(w00, a), _mm256_mul_ps(w01, b));
            let s = _mm256_add_ps(s, _mm256_mul_ps(w10, c));
            let diff = _mm256_sub_ps(_mm256_add_ps(s, _mm256_mul_ps(w11, d)), z);
            if GRAD {
                let x = _mm256_loadu_ps(gx.as_ptr().add(r * lw));
                let y = _mm256_loadu_ps(gy.as_ptr().add(r * lw));
                sx = _mm_add_ps(sx, halves(_mm256_mul_ps(diff, x)));
                sy = _mm_add_ps(sy, halves(_mm256_mul_ps(diff, y)));
            }
            sq = _mm_add_ps(sq, halves(_mm256_mul_ps(diff, diff)));
            sd = _mm_add_ps(sd, halves(diff));
            (a, b) = (c, d);
        }
        Sums {
            sq: lanes(sq),
            d: lanes(sd),
            dx: lanes(sx),
            dy: lanes(sy),
        }
    }
}

/// `PatchInverseSearch_ParBody` over all stripes: the sparse flow on the patch grid.
fn inverse_search(
    lv: &Level,
    t: &Tensor,
    ux: &Plane<f32>,
    uy: &Plane<f32>,
    p: &Params,
    ws: usize,
    hs: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut sx = vec![0f32; ws * hs];
    let mut sy = vec![0f32; ws * hs];
    let stripe = hs.div_ceil(STRIPES).max(1);
    let num_iter = if p.use_spatial_propagation { 2 } else { 1 };
    let ctx = PatchCtx {
        lv,
        psz: p.patch_size as usize,
        mean_norm: p.use_mean_normalization,
    };
    sx.par_chunks_mut(stripe * ws)
        .zip(sy.par_chunks_mut(stripe * ws))
        .enumerate()
        .with_min_len(1)
        .for_each(|(n, (sx, sy))| {
            let start = n * stripe;
            let end = (start + stripe).min(hs);
            let job = Stripe {
                ctx: &ctx,
                t,
                ux,
                uy,
                p,
                ws,
                start,
                end,
                num_iter,
            };
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has("avx2") {
                // SAFETY: the processor has AVX2, the feature `search_stripe_avx2` is compiled with
                unsafe { search_stripe_avx2(&job, sx, sy) };
                return;
            }
            search_stripe::<false>(&job, sx, sy);
        });
    (sx, sy)
}

/// One stripe's work: patch rows `start..end` of a level's `ws`-wide patch grid, searched from
/// the flow `ux`, `uy` of the level above, with `num_iter` passes.
struct Stripe<'a> {
    ctx: &'a PatchCtx<'a>,
    t: &'a Tensor,
    ux: &'a Plane<f32>,
    uy: &'a Plane<f32>,
    p: &'a Params,
    ws: usize,
    start: usize,
    end: usize,
    num_iter: usize,
}

/// [`search_stripe`] with AVX2 enabled: the 8×8 patch sums in 8-wide lanes ([`sums8_avx2`]),
/// the same values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn search_stripe_avx2(job: &Stripe, sx: &mut [f32], sy: &mut [f32]) {
    search_stripe::<true>(job, sx, sy);
}

/// One stripe ([`Stripe`]), whose patch rows `sx`, `sy` hold.
#[inline(always)]
fn search_stripe<const AVX2: bool>(job: &Stripe, sx: &mut [f32], sy: &mut [f32]) {
    let Stripe {
        ctx,
        t,
        ux,
        uy,
        p,
        ws,
        start,
        end,
        num_iter,
    } = *job;
    let psz = ctx.psz;
    let psz2 = psz / 2;
    let stride = p.patch_stride as usize;
    let lw = ctx.lv.i0.w;
    let inner = (p.gradient_descent_iterations as f32 / num_iter as f32).floor() as usize;
    let init = ctx.lv.init.as_ref();
    let spatial = p.use_spatial_propagation;
    let rows: Vec<usize> = (start..end).collect();
    let cols: Vec<usize> = (0..ws).collect();
    for iter in 0..num_iter {
        let fwd = iter.is_multiple_of(2);
        let row_order: Vec<usize> = if fwd {
            rows.clone()
        } else {
            rows.iter().rev().copied().collect()
        };
        let col_order: Vec<usize> = if fwd {
            cols.clone()
        } else {
            cols.iter().rev().copied().collect()
        };
        for (ri, &is) in row_order.iter().enumerate() {
            let i = is * stride;
            for (ci, &js) in col_order.iter().enumerate() {
                let j = js * stride;
                let k = (is - start) * ws + js;
                let centre = (i + psz2) * lw + j + psz2;
                if iter == 0 {
                    sx[k] = ux.data[centre];
                    sy[k] = uy.data[centre];
                }
                let mut min = INF;
                if init.is_some() || spatial {
                    min = ctx.cost::<AVX2>(i, j, sx[k], sy[k]);
                }
                if let Some((iu, iv)) = init {
                    let (cu, cv) = (iu.data[centre], iv.data[centre]);
                    let c = ctx.cost::<AVX2>(i, j, cu, cv);
                    if c < min {
                        min = c;
                        sx[k] = cu;
                        sy[k] = cv;
                    }
                }
                if spatial {
                    if ci > 0 {
                        let kp = if fwd { k - 1 } else { k + 1 };
                        let c = ctx.cost::<AVX2>(i, j, sx[kp], sy[kp]);
                        if c < min {
                            min = c;
                            sx[k] = sx[kp];
                            sy[k] = sy[kp];
                        }
                    }
                    if ri > 0 {
                        let kp = if fwd { k - ws } else { k + ws };
                        let c = ctx.cost::<AVX2>(i, j, sx[kp], sy[kp]);
                        if c < min {
                            sx[k] = sx[kp];
                            sy[k] = sy[kp];
                        }
                    }
                }
                let g = is * ws + js;
                let (mut cu, mut cv) = (sx[k], sy[k]);
                let mut det = t.xx[g] * t.yy[g] - t.xy[g] * t.xy[g];
                if det.abs() < EPS {
                    det = EPS;
                }
                let h11 = t.yy[g] / det;
                let h12 = -t.xy[g] / det;
                let h22 = t.xx[g] / det;
                let n = (psz * psz) as f32;
                let mut prev = INF;
                for _ in 0..inner {
                    let s = ctx.sums::<true, AVX2>(i, j, cu, cv);
                    let (du, dv, ssd) = if ctx.mean_norm {
                        (
                            s.dx - s.d * t.x[g] / n,
                            s.dy - s.d * t.y[g] / n,
                            s.sq - s.d * s.d / n,
                        )
                    } else {
                        (s.dx, s.dy, s.sq)
                    };
                    cu -= h11 * du + h12 * dv;
                    cv -= h12 * du + h22 * dv;
                    if ssd >= prev {
                        break;
                    }
                    prev = ssd;
                }
                let (eu, ev) = (cu - sx[k], cv - sy[k]);
                if (eu * eu + ev * ev).sqrt() <= psz as f32 {
                    sx[k] = cu;
                    sy[k] = cv;
                }
            }
        }
    }
}

/// OpenCV's running ranges of the patches (along one axis) that cover each pixel.
fn cover_ranges(n: usize, psz: usize, stride: usize) -> Vec<(isize, isize)> {
    let (mut start, mut end) = (0isize, -1isize);
    (0..n)
        .map(|i| {
            if i.is_multiple_of(stride) && i + psz <= n {
                end += 1;
            }
            if i >= psz && (i - psz).is_multiple_of(stride) && start < end {
                start += 1;
            }
            (start, end)
        })
        .collect()
}

/// `Densification_ParBody`: each pixel's flow is the mean of the patch flows covering it,
/// weighted by `1 / max(1, |photometric error|)`.
#[allow(clippy::too_many_arguments)]
fn densify(
    lv: &Level,
    sx: &[f32],
    sy: &[f32],
    ux: &mut Plane<f32>,
    uy: &mut Plane<f32>,
    psz: usize,
    stride: usize,
    ws: usize,
    _hs: usize,
) {
    let (w, h) = (lv.i0.w, lv.i0.h);
    let ri = cover_ranges(h, psz, stride);
    let rj = cover_ranges(w, psz, stride);
    let i0 = &lv.i0.data;
    let i1 = &lv.i1.data;
    ux.w = w;
    ux.h = h;
    uy.w = w;
    uy.h = h;
    ux.data.resize(w * h, 0.0);
    uy.data.resize(w * h, 0.0);
    let ctx = Dense {
        i1,
        w,
        sx,
        sy,
        ws,
        wmax: w as f32 - 1.0 - EPS,
        hmax: h as f32 - 1.0 - EPS,
        rj: &rj,
    };
    ux.data
        .par_chunks_mut(w)
        .zip(uy.data.par_chunks_mut(w))
        .enumerate()
        .with_min_len(min_len(w * h))
        .for_each(|(i, (ru, rv))| {
            let row0 = &i0[i * w..(i + 1) * w];
            #[allow(unused_mut)]
            let mut j = 0;
            #[cfg(target_arch = "x86_64")]
            while j + 4 <= w {
                let (u, v) = ctx.four(i, j, ri[i], row0);
                ru[j..j + 4].copy_from_slice(&u);
                rv[j..j + 4].copy_from_slice(&v);
                j += 4;
            }
            for j in j..w {
                (ru[j], rv[j]) = ctx.one(i, j, ri[i], f32::from(row0[j]));
            }
        });
}

/// What the densification of one level reads: I1, the patch flows and their covering ranges.
struct Dense<'a> {
    i1: &'a [u8],
    w: usize,
    sx: &'a [f32],
    sy: &'a [f32],
    ws: usize,
    wmax: f32,
    hmax: f32,
    rj: &'a [(isize, isize)],
}

impl Dense<'_> {
    /// Pixel `(i, j)` (I0 value `z`, patch rows `ri`): OpenCV's per-pixel loop, the reference
    /// for [`Dense::four`].
    #[inline]
    fn one(&self, i: usize, j: usize, ri: (isize, isize), z: f32) -> (f32, f32) {
        let (w, i1, sx, sy) = (self.w, self.i1, self.sx, self.sy);
        let (s_js, e_js) = self.rj[j];
        let (mut su, mut sv, mut sc) = (0f32, 0f32, 0f32);
        for is in ri.0..=ri.1 {
            for js in s_js..=e_js {
                let k = is as usize * self.ws + js as usize;
                let jm = (j as f32 + sx[k]).max(0.0).min(self.wmax);
                let im = (i as f32 + sy[k]).max(0.0).min(self.hmax);
                let (jl, il) = (jm as usize, im as usize);
                let (ju, iu) = (jl + 1, il + 1);
                let (jlf, ilf, juf, iuf) = (jl as f32, il as f32, ju as f32, iu as f32);
                let px = |y: usize, x: usize| f32::from(i1[y * w + x]);
                let diff = (jm - jlf) * (im - ilf) * px(iu, ju)
                    + (juf - jm) * (im - ilf) * px(iu, jl)
                    + (jm - jlf) * (iuf - im) * px(il, ju)
                    + (juf - jm) * (iuf - im) * px(il, jl)
                    - z;
                let c = 1.0 / diff.abs().max(1.0);
                su += c * sx[k];
                sv += c * sy[k];
                sc += c;
            }
        }
        (su / sc, sv / sc)
    }

    /// Pixels `(i, j..j + 4)` in SSE2 lanes, with [`Dense::one`]'s operations in its order per
    /// lane (hence its bits): the lanes walk the union of their covering patch columns, and a
    /// lane outside its own range keeps its sums (a blend, not an added zero). The bilinear
    /// samples are gathered lane by lane; the weights, the error and its division are vector.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn four(&self, i: usize, j: usize, ri: (isize, isize), row0: &[u8]) -> ([f32; 4], [f32; 4]) {
        use std::arch::x86_64::{
            __m128, _mm_add_ps, _mm_and_ps, _mm_andnot_ps, _mm_castsi128_ps, _mm_cvtepi32_ps,
            _mm_cvttps_epi32, _mm_div_ps, _mm_loadu_si128, _mm_max_ps, _mm_min_ps, _mm_mul_ps,
            _mm_or_ps, _mm_set1_ps, _mm_setr_ps, _mm_setzero_ps, _mm_storeu_ps, _mm_storeu_si128,
            _mm_sub_ps,
        };
        let (w, i1, sx, sy) = (self.w, self.i1, self.sx, self.sy);
        let r = [self.rj[j], self.rj[j + 1], self.rj[j + 2], self.rj[j + 3]];
        // Both ends of the running ranges grow with j.
        let (lo, hi) = (r[0].0, r[3].1);
        let z = [row0[j], row0[j + 1], row0[j + 2], row0[j + 3]].map(f32::from);
        let lanes = |v: __m128| {
            let mut a = [0f32; 4];
            // SAFETY: `a` holds 4 f32.
            unsafe { _mm_storeu_ps(a.as_mut_ptr(), v) };
            a
        };
        // SAFETY: SSE2 is part of the x86_64 baseline; the loads and stores go through arrays
        // of 4 lanes, and every I1 index is checked by slice indexing.
        unsafe {
            let zero = _mm_setzero_ps();
            let one = _mm_set1_ps(1.0);
            let sign = _mm_set1_ps(-0.0);
            let wmax = _mm_set1_ps(self.wmax);
            let jf = _mm_setr_ps(j as f32, (j + 1) as f32, (j + 2) as f32, (j + 3) as f32);
            let z = _mm_setr_ps(z[0], z[1], z[2], z[3]);
            let (mut su, mut sv, mut sc) = (zero, zero, zero);
            for is in ri.0..=ri.1 {
                for js in lo..=hi {
                    let mask: [u32; 4] =
                        r.map(|(s, e)| if s <= js && js <= e { u32::MAX } else { 0 });
                    let m = _mm_castsi128_ps(_mm_loadu_si128(mask.as_ptr().cast()));
                    let k = is as usize * self.ws + js as usize;
                    let (skx, sky) = (sx[k], sy[k]);
                    let jm = _mm_min_ps(_mm_max_ps(_mm_add_ps(jf, _mm_set1_ps(skx)), zero), wmax);
                    let im = (i as f32 + sky).max(0.0).min(self.hmax);
                    let il = im as usize;
                    let (ilf, iuf) = (il as f32, (il + 1) as f32);
                    let jl = _mm_cvttps_epi32(jm);
                    let jlf = _mm_cvtepi32_ps(jl);
                    let juf = _mm_add_ps(jlf, one);
                    let mut jli = [0i32; 4];
                    _mm_storeu_si128(jli.as_mut_ptr().cast(), jl);
                    let (top, bot) = (&i1[il * w..(il + 1) * w], &i1[(il + 1) * w..(il + 2) * w]);
                    let g = |row: &[u8], d: usize| {
                        let p = jli.map(|x| f32::from(row[x as usize + d]));
                        _mm_setr_ps(p[0], p[1], p[2], p[3])
                    };
                    let (p_ll, p_lu, p_ul, p_uu) = (g(top, 0), g(top, 1), g(bot, 0), g(bot, 1));
                    let a = _mm_sub_ps(jm, jlf);
                    let c = _mm_sub_ps(juf, jm);
                    let b = _mm_set1_ps(im - ilf);
                    let d = _mm_set1_ps(iuf - im);
                    let t = _mm_add_ps(
                        _mm_mul_ps(_mm_mul_ps(a, b), p_uu),
                        _mm_mul_ps(_mm_mul_ps(c, b), p_ul),
                    );
                    let t = _mm_add_ps(t, _mm_mul_ps(_mm_mul_ps(a, d), p_lu));
                    let t = _mm_add_ps(t, _mm_mul_ps(_mm_mul_ps(c, d), p_ll));
                    let diff = _mm_sub_ps(t, z);
                    // max(|diff|, 1) gives 1 for NaN, as f32::max does.
                    let cw = _mm_div_ps(one, _mm_max_ps(_mm_andnot_ps(sign, diff), one));
                    let blend = |new: __m128, old: __m128| {
                        _mm_or_ps(_mm_and_ps(m, new), _mm_andnot_ps(m, old))
                    };
                    su = blend(_mm_add_ps(su, _mm_mul_ps(cw, _mm_set1_ps(skx))), su);
                    sv = blend(_mm_add_ps(sv, _mm_mul_ps(cw, _mm_set1_ps(sky))), sv);
                    sc = blend(_mm_add_ps(sc, cw), sc);
                }
            }
            (lanes(_mm_div_ps(su, sc)), lanes(_mm_div_ps(sv, sc)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence (64-bit LCG, high bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
        fn unit(&mut self) -> f32 {
            self.next() as f32 / (1u64 << 31) as f32
        }
    }

    /// The inline floor gives `f32::floor`'s bits: signed zeros, halves, integers, the 2^23
    /// edge, infinities, NaN and a sweep of random values.
    #[test]
    fn inline_floor_is_f32_floor() {
        let mut rng = Lcg(3);
        let mut xs = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.5,
            -2.5,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            -8_388_608.0,
            3e9,
            -3e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
        ];
        xs.extend((0..100_000).map(|_| f32::from_bits(rng.next() << 1 | (rng.next() & 1))));
        xs.extend((0..100_000).map(|_| (rng.unit() - 0.5) * 2000.0));
        for x in xs {
            let (a, b) = (floor(x), x.floor());
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{x}: {a} vs {b}"
            );
        }
        assert!(floor(f32::NAN).is_nan());
    }

    /// The 4-lane densification gives the per-pixel loop's bits (for infinite or NaN patch
    /// flows, which DIS does not produce, NaN for NaN).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn four_lane_densification_matches_the_scalar_loop() {
        let mut rng = Lcg(11);
        let (w, h, psz, stride) = (41usize, 30usize, 8usize, 3usize);
        let (ws, hs) = (1 + (w - psz) / stride, 1 + (h - psz) / stride);
        let i0: Vec<u8> = (0..w * h).map(|_| rng.next() as u8).collect();
        let i1: Vec<u8> = (0..w * h).map(|_| rng.next() as u8).collect();
        let mut flow = |_| match rng.next() % 50 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            _ => (rng.unit() - 0.5) * 60.0,
        };
        let sx: Vec<f32> = (0..ws * hs).map(&mut flow).collect();
        let sy: Vec<f32> = (0..ws * hs).map(&mut flow).collect();
        let (ri, rj) = (cover_ranges(h, psz, stride), cover_ranges(w, psz, stride));
        let ctx = Dense {
            i1: &i1,
            w,
            sx: &sx,
            sy: &sy,
            ws,
            wmax: w as f32 - 1.0 - EPS,
            hmax: h as f32 - 1.0 - EPS,
            rj: &rj,
        };
        for i in 0..h {
            let row0 = &i0[i * w..(i + 1) * w];
            for j in 0..w - 3 {
                let (u, v) = ctx.four(i, j, ri[i], row0);
                for l in 0..4 {
                    let (su, sv) = ctx.one(i, j + l, ri[i], f32::from(row0[j + l]));
                    // Bit for bit, but a NaN (from infinite flows) may differ in its sign bit.
                    let same =
                        |a: f32, b: f32| a.to_bits() == b.to_bits() || a.is_nan() && b.is_nan();
                    assert!(
                        same(u[l], su) && same(v[l], sv),
                        "({i}, {}): {u:?} {v:?} vs {su} {sv}",
                        j + l
                    );
                }
            }
        }
    }

    /// The SSE2 patch sums give the scalar reference's bits, with and without gradients.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sse2_and_avx2_patch_sums_match_the_scalar_order() {
        let mut rng = Lcg(7);
        let (lw, lh) = (40usize, 30usize);
        let (we, he) = (lw + 2 * BORDER, lh + 2 * BORDER);
        let i0: Vec<f32> = (0..lw * lh).map(|_| (rng.next() % 256) as f32).collect();
        let i1: Vec<f32> = (0..we * he).map(|_| (rng.next() % 256) as f32).collect();
        let gx: Vec<f32> = (0..lw * lh)
            .map(|_| (rng.next() % 2041) as f32 - 1020.0)
            .collect();
        let gy: Vec<f32> = (0..lw * lh)
            .map(|_| (rng.next() % 2041) as f32 - 1020.0)
            .collect();
        for _ in 0..2000 {
            let (i, j) = (
                rng.next() as usize % (lh - 8),
                rng.next() as usize % (lw - 8),
            );
            let (r, c) = (
                rng.next() as usize % (he - 9),
                rng.next() as usize % (we - 9),
            );
            let (fy, fx) = (rng.unit(), rng.unit());
            let wt = [
                (1.0 - fy) * (1.0 - fx),
                (1.0 - fy) * fx,
                fy * (1.0 - fx),
                fy * fx,
            ];
            let o0 = i * lw + j;
            let args = (&i0[o0..], &i1[r * we + c..], &gx[o0..], &gy[o0..]);
            let a = sums8_sse2::<true>(args.0, args.1, args.2, args.3, lw, we, wt);
            let b = sums8_scalar::<true>(args.0, args.1, args.2, args.3, lw, we, wt);
            let bits = |s: Sums| [s.sq, s.d, s.dx, s.dy].map(f32::to_bits);
            assert_eq!(bits(a), bits(b));
            let a = sums8_sse2::<false>(args.0, args.1, args.2, args.3, lw, we, wt);
            let b = sums8_scalar::<false>(args.0, args.1, args.2, args.3, lw, we, wt);
            assert_eq!(bits(a), bits(b));
            if crate::cpu::has("avx2") {
                // SAFETY: the processor has AVX2, the feature `sums8_avx2` is compiled with
                let (a, c) = unsafe {
                    (
                        sums8_avx2::<true>(args.0, args.1, args.2, args.3, lw, we, wt),
                        sums8_avx2::<false>(args.0, args.1, args.2, args.3, lw, we, wt),
                    )
                };
                assert_eq!(
                    bits(a),
                    bits(sums8_scalar::<true>(
                        args.0, args.1, args.2, args.3, lw, we, wt
                    ))
                );
                assert_eq!(bits(c), bits(b));
            }
        }
    }
}
