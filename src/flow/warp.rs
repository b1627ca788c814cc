//! Moving pictures by a flow, as Deforum does: its optical-flow warp
//! (`image_transform_optical_flow`), the forward/backward consistency check that masks a flow
//! before it is applied (hybrid motion's `hybrid_flow_consistency`), the unit conversions of
//! optical-flow cadence, and [`FlowMotion`], hybrid motion "Optical Flow" between two video
//! frames.
//!
//! The warp reproduces OpenCV's (>= 4.11) `remap` with `INTER_LINEAR` on 8-bit images (float
//! weights, fused multiply-adds, rounding half to even), over the image padded by a quarter of
//! each side with `BORDER_REFLECT_101` as Deforum pads it; the padding is folded into the
//! coordinates, not allocated. It is hand-written for the same reasons as the camera's warp
//! (`camera::warp2d`): no crate resamples with OpenCV's rounding and reflected borders.

use anyhow::{Result, bail};
use image::RgbImage;
use rayon::prelude::*;

use super::{Estimator, Flow};

/// Value of the consistency mask at a pixel whose forward and backward flows disagree: Deforum
/// multiplies the flow there by it, reversing and shortening it, rather than dropping it.
pub const INCONSISTENT: f32 = -0.75;

/// The largest consistency blur (`[hybrid] consistency_blur`'s range).
pub const MAX_BLUR: u32 = 64;

/// `p` folded into `0..len` as OpenCV's `BORDER_REFLECT_101` does (`gfedcb|abcdefgh|gfedcba`).
#[inline]
fn reflect_101(p: i64, len: i64) -> i64 {
    if len == 1 {
        return 0;
    }
    let period = 2 * len - 2;
    let q = p.rem_euclid(period);
    if q < len { q } else { period - q }
}

/// Deforum's `image_transform_optical_flow(img, flow, factor)`: `out(x) = img(x − factor·flow(x))`,
/// sampled bilinearly from `img` padded by `int(0.25·h)` rows and `int(0.25·w)` columns with
/// reflected borders (`BORDER_REFLECT_101`, also beyond the padding). A forward flow from frame
/// A to frame B moves a picture of A along the motion towards B.
///
/// A factor of exactly 1 keeps the map in float32 at every step, as Deforum's float32 flow does;
/// another factor (a schedule's float64 value) computes the map in float64 and rounds it once.
///
/// # Panics
/// A flow of another size than `img` (callers make both from the same frames).
pub fn apply_flow(img: &RgbImage, flow: &Flow, factor: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    assert_eq!(
        (flow.width(), flow.height()),
        (w, h),
        "a flow is applied to a picture of its own size"
    );
    let map = FlowMap::new(img, flow, factor);
    let (src, stride) = (img.as_raw(), 3 * w as usize);
    let mut out = vec![0u8; src.len()];
    out.par_chunks_mut(stride).enumerate().for_each(|(y, row)| {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has("avx2,fma") {
            // SAFETY: the processor has AVX2 and FMA, the features `row_avx2_fma` is compiled with
            unsafe { map.row_avx2_fma(y, row) };
            return;
        }
        map.row(y, row);
    });
    RgbImage::from_raw(w, h, out).expect("the size of the picture")
}

/// What [`apply_flow`] samples from: the picture (`w` wide, RGB), the flow, the padding and
/// padded sizes, and the factor.
struct FlowMap<'a> {
    src: &'a [u8],
    f: &'a [f32],
    w: usize,
    wi: i64,
    hi: i64,
    pw: i64,
    ph: i64,
    bw: i64,
    bh: i64,
    factor: f64,
}

impl<'a> FlowMap<'a> {
    /// The map of `flow` (the picture's size) times `factor` over `img`, padded by a quarter
    /// of each side.
    fn new(img: &'a RgbImage, flow: &'a Flow, factor: f64) -> Self {
        let (wi, hi) = (i64::from(img.width()), i64::from(img.height()));
        let (pw, ph) = (wi / 4, hi / 4);
        FlowMap {
            src: img.as_raw(),
            f: flow.as_slice(),
            w: img.width() as usize,
            wi,
            hi,
            pw,
            ph,
            bw: wi + 2 * pw,
            bh: hi + 2 * ph,
            factor,
        }
    }

    /// Output row `y`.
    #[inline(always)]
    fn row(&self, y: usize, row: &mut [u8]) {
        let (src, f, w, factor) = (self.src, self.f, self.w, self.factor);
        let (wi, hi, pw, ph, bw, bh) = (self.wi, self.hi, self.pw, self.ph, self.bw, self.bh);
        let stride = 3 * w;
        for x in 0..w {
            let i = 2 * (y * w + x);
            let (mx, my) = if factor == 1.0 {
                (
                    (-f[i] + x as f32) + pw as f32,
                    (-f[i + 1] + y as f32) + ph as f32,
                )
            } else {
                (
                    (-(f64::from(f[i]) * factor) + x as f64 + pw as f64) as f32,
                    (-(f64::from(f[i + 1]) * factor) + y as f64 + ph as f64) as f32,
                )
            };
            // a non-finite position (a broken flow) samples the pixel itself
            let (mx, my) = if mx.is_finite() && my.is_finite() {
                (mx.clamp(-1e9, 1e9), my.clamp(-1e9, 1e9))
            } else {
                ((x as i64 + pw) as f32, (y as i64 + ph) as f32)
            };
            let (fx, fy) = (mx.floor(), my.floor());
            let (ax, ay) = (mx - fx, my - fy);
            let (ix, iy) = (fx as i64, fy as i64);
            // a position in the padded picture, then in the picture the padding reflects
            let col = |px: i64| 3 * reflect_101(reflect_101(px, bw) - pw, wi) as usize;
            let line = |py: i64| stride * reflect_101(reflect_101(py, bh) - ph, hi) as usize;
            let (c0, c1) = (col(ix), col(ix + 1));
            let (r0, r1) = (line(iy), line(iy + 1));
            for c in 0..3 {
                let p00 = f32::from(src[r0 + c0 + c]);
                let p01 = f32::from(src[r0 + c1 + c]);
                let p10 = f32::from(src[r1 + c0 + c]);
                let p11 = f32::from(src[r1 + c1 + c]);
                let v0 = ax.mul_add(p01 - p00, p00);
                let v1 = ax.mul_add(p11 - p10, p10);
                let v = ay.mul_add(v1 - v0, v0);
                row[3 * x + c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// [`FlowMap::row`] with AVX2 and FMA enabled: `mul_add`, `floor` and `round_ties_even`
    /// become single instructions instead of calls into libm, with the same results (a fused
    /// multiply-add and these roundings are exact operations either way).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_avx2_fma(&self, y: usize, row: &mut [u8]) {
        self.row(y, row);
    }
}

/// The consistency of a forward flow `fwd` (A → B) with the backward flow `bwd` (B → A), as
/// Deforum's `make_consistency` (after Ruder et al.) computes it in float64: for each pixel p,
/// `q = p + fwd(p)` clamped to `[0, w−2] × [0, h−2]`, `b = bwd` sampled bilinearly at q, and p is
/// inconsistent where `|fwd(p) + b|² ≥ 0.01·(|b|² + |fwd(p)|²) + 0.5`. The mask is
/// [`INCONSISTENT`] there and 1 elsewhere, one value per pixel, row-major.
///
/// # Errors
/// Flows of different sizes, or a side under 2 pixels.
pub fn make_consistency(fwd: &Flow, bwd: &Flow) -> Result<Vec<f32>> {
    let (w, h) = (fwd.width(), fwd.height());
    if (bwd.width(), bwd.height()) != (w, h) {
        bail!(
            "the consistency check needs two flows of one size, got {w}x{h} and {}x{}",
            bwd.width(),
            bwd.height()
        );
    }
    if w < 2 || h < 2 {
        bail!("the consistency check needs frames of at least 2x2 pixels, got {w}x{h}");
    }
    let (w, h) = (w as usize, h as usize);
    let (f, b) = (fwd.as_slice(), bwd.as_slice());
    let mut mask = vec![1.0f32; w * h];
    mask.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has("avx2") {
            // SAFETY: the processor has AVX2, the feature `consistency_row_avx2` is compiled with
            unsafe { consistency_row_avx2(f, b, w, h, y, row) };
            return;
        }
        consistency_row(f, b, w, h, y, row);
    });
    Ok(mask)
}

/// Row `y` of [`make_consistency`]'s mask (`row`, preset to 1) from the flows' values `f`, `b`.
#[inline(always)]
fn consistency_row(f: &[f32], b: &[f32], w: usize, h: usize, y: usize, row: &mut [f32]) {
    for (x, m) in row.iter_mut().enumerate() {
        let i = 2 * (y * w + x);
        let (fx, fy) = (f64::from(f[i]), f64::from(f[i + 1]));
        let qx = (x as f64 + fx).clamp(0.0, (w - 2) as f64);
        let qy = (y as f64 + fy).clamp(0.0, (h - 2) as f64);
        let (x0, y0) = (qx.floor(), qy.floor());
        let (ax, ay) = (qx - x0, qy - y0);
        let (x0, y0) = (x0 as usize, y0 as usize);
        let at = |xx: usize, yy: usize, c: usize| f64::from(b[2 * (yy * w + xx) + c]);
        let mut bt = [0.0f64; 2];
        for (c, v) in bt.iter_mut().enumerate() {
            let top = (1.0 - ax) * at(x0, y0, c) + ax * at(x0 + 1, y0, c);
            let bot = (1.0 - ax) * at(x0, y0 + 1, c) + ax * at(x0 + 1, y0 + 1, c);
            *v = (1.0 - ay) * top + ay * bot;
        }
        let (dx, dy) = (fx + bt[0], fy + bt[1]);
        let diff = dx * dx + dy * dy;
        let thr = 0.01 * ((bt[0] * bt[0] + fx * fx) + (bt[1] * bt[1] + fy * fy)) + 0.5;
        if diff >= thr {
            *m = INCONSISTENT;
        }
    }
}

/// [`consistency_row`] with AVX2 enabled: `floor` becomes one instruction instead of a call
/// into libm (an exact operation either way, so the same mask).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn consistency_row_avx2(f: &[f32], b: &[f32], w: usize, h: usize, y: usize, row: &mut [f32]) {
    consistency_row(f, b, w, h, y, row);
}

/// scipy's `gaussian_filter1d` weights: σ, radius `int(truncate·σ + 0.5)` with `truncate` 1.
fn gaussian_weights(sigma: f64) -> Vec<f64> {
    let radius = (sigma + 0.5) as i64;
    let s2 = sigma * sigma;
    let phi: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / s2 * (x * x) as f64).exp())
        .collect();
    let sum: f64 = phi.iter().sum();
    phi.into_iter().map(|p| p / sum).collect()
}

/// One pass of scipy's `correlate1d` over float32 data with zero padding (`mode='constant'`),
/// summed in float64 with the symmetric kernel's pairing, stored as float32.
fn blur_line(input: &[f32], out: &mut [f32], weights: &[f64]) {
    let r = weights.len() / 2;
    let n = input.len() as i64;
    let at = |i: i64| {
        if (0..n).contains(&i) {
            f64::from(input[i as usize])
        } else {
            0.0
        }
    };
    for (i, o) in out.iter_mut().enumerate() {
        let i = i as i64;
        let mut acc = at(i) * weights[r];
        for j in 1..=r as i64 {
            acc += (at(i - j) + at(i + j)) * weights[r + j as usize];
        }
        *o = acc as f32;
    }
}

/// The consistency mask blurred as Deforum blurs it: scipy's `gaussian_filter` with σ = `blur`
/// on both image axes (rows first, then columns), `truncate` 1 (a radius of `int(σ + 0.5)`),
/// zero padding (the borders darken), each pass rounded to float32. A blur of 0 leaves the mask.
///
/// # Errors
/// A mask of another length than `width · height`, or a blur above [`MAX_BLUR`].
pub fn blur_consistency(mask: &[f32], width: u32, height: u32, blur: u32) -> Result<Vec<f32>> {
    let (w, h) = (width as usize, height as usize);
    if mask.len() != w * h {
        bail!(
            "a {width}x{height} consistency mask needs {} values, got {}",
            w * h,
            mask.len()
        );
    }
    if blur > MAX_BLUR {
        bail!("consistency blur {blur}: at most {MAX_BLUR}");
    }
    if blur == 0 {
        return Ok(mask.to_vec());
    }
    let weights = gaussian_weights(f64::from(blur));
    // axis 0 (down each column: [`blur_line`]'s sums, a whole row of them at a time), then
    // axis 1 (along each row)
    let r = weights.len() / 2;
    let mut cols = vec![0.0f32; w * h];
    cols.par_chunks_mut(w).enumerate().for_each_init(
        || vec![0.0f64; w],
        |acc, (y, o)| {
            let line = |yy: usize| &mask[yy * w..(yy + 1) * w];
            for (a, &m) in acc.iter_mut().zip(line(y)) {
                *a = f64::from(m) * weights[r];
            }
            for j in 1..=r {
                let wj = weights[r + j];
                let up = y.checked_sub(j).map(line);
                let down = (y + j < h).then(|| line(y + j));
                for (x, a) in acc.iter_mut().enumerate() {
                    let u = up.map_or(0.0, |l| f64::from(l[x]));
                    let d = down.map_or(0.0, |l| f64::from(l[x]));
                    *a += (u + d) * wj;
                }
            }
            for (o, &a) in o.iter_mut().zip(acc.iter()) {
                *o = a as f32;
            }
        },
    );
    let mut out = vec![0.0f32; w * h];
    out.par_chunks_mut(w)
        .zip(cols.par_chunks(w))
        .for_each(|(o, i)| blur_line(i, o, &weights));
    Ok(out)
}

/// Deforum's `filter_flow`: the flow multiplied by the mask (float32), so a flow marked
/// [`INCONSISTENT`] is reversed and shortened to three quarters.
///
/// # Errors
/// A mask of another length than the flow's pixel count.
pub fn filter_flow(flow: &Flow, mask: &[f32]) -> Result<Flow> {
    let n = flow.width() as usize * flow.height() as usize;
    if mask.len() != n {
        bail!(
            "a {}x{} flow needs a mask of {n} values, got {}",
            flow.width(),
            flow.height(),
            mask.len()
        );
    }
    let mut out = flow.clone();
    for (uv, m) in out.as_mut_slice().chunks_exact_mut(2).zip(mask) {
        uv[0] *= m;
        uv[1] *= m;
    }
    Ok(out)
}

/// The forward flow `a → b` (with `init` as DIS's initial field), masked by its consistency
/// with the backward flow `b → a` blurred by `blur` (Deforum's `get_reliable_flow_from_images`).
///
/// # Errors
/// Frames of different sizes, a flow method that fails, or a blur above [`MAX_BLUR`].
pub fn reliable_flow(
    estimator: &mut Estimator,
    a: &RgbImage,
    b: &RgbImage,
    init: Option<&Flow>,
    blur: u32,
) -> Result<Flow> {
    let (fwd, bwd) = estimator.flows_both_ways(a, b, init)?;
    let mask = make_consistency(&fwd, &bwd)?;
    let mask = blur_consistency(&mask, fwd.width(), fwd.height(), blur)?;
    filter_flow(&fwd, &mask)
}

/// The largest component of a flow, `max(|u|, |v|)` over the field (0 for a zero flow).
fn max_component(flow: &Flow) -> f32 {
    flow.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Deforum's `abs_flow_to_rel_flow`: `(u / (M·w), v / (M·h))` with M the largest component of
/// the whole field. A zero flow stays zero (Deforum divides 0 by 0 there and gets NaN).
pub fn abs_flow_to_rel_flow(flow: &Flow, width: u32, height: u32) -> Flow {
    let m = max_component(flow);
    let mut out = flow.clone();
    if m == 0.0 || !m.is_finite() {
        out.as_mut_slice().fill(0.0);
        return out;
    }
    let (sx, sy) = (m * width as f32, m * height as f32);
    for uv in out.as_mut_slice().chunks_exact_mut(2) {
        uv[0] /= sx;
        uv[1] /= sy;
    }
    out
}

/// Deforum's `rel_flow_to_abs_flow`: `(u·M·w, v·M·h)` with `M = max(|u·w|, |v·h|)` over the
/// field. It does not undo [`abs_flow_to_rel_flow`]: the pair scales a flow to a largest
/// component of 1 pixel, the behaviour of Deforum's optical-flow cadence (docs/deforum-differences.md).
pub fn rel_flow_to_abs_flow(rel: &Flow, width: u32, height: u32) -> Flow {
    let (w, h) = (width as f32, height as f32);
    let m = rel.as_slice().chunks_exact(2).fold(0.0f32, |m, uv| {
        m.max((uv[0] * w).abs()).max((uv[1] * h).abs())
    });
    let mut out = rel.clone();
    let (sx, sy) = (m * w, m * h);
    for uv in out.as_mut_slice().chunks_exact_mut(2) {
        uv[0] *= sx;
        uv[1] *= sy;
    }
    out
}

/// The flow increment of one cadence tween, as Deforum's optical-flow cadence makes it:
/// `rel_flow_to_abs_flow(abs_flow_to_rel_flow(flow)) · tween`, i.e. the flow scaled to a
/// largest component of 1 pixel, times `tween` (the tween's position, 0 to 1).
pub fn cadence_increment(flow: &Flow, tween: f64) -> Flow {
    let (w, h) = (flow.width(), flow.height());
    let mut inc = rel_flow_to_abs_flow(&abs_flow_to_rel_flow(flow, w, h), w, h);
    let t = tween as f32;
    for v in inc.as_mut_slice() {
        *v *= t;
    }
    inc
}

/// Deforum's optical-flow cadence between two key frames: half the flow from the earlier key
/// frame to the later one pulls the later one back once, and each tween nudges both along the
/// flow by [`cadence_increment`]-sized steps (largest component `tween` pixels; from the second
/// tween on the field is renormalised again, which scales x by 1/width and y by 1/height
/// relative to each other, as Deforum's repeated `abs_flow_to_rel_flow` does).
pub struct CadenceFlow {
    half: Flow,
    /// The field as Deforum carries it from tween to tween (relative units after the first).
    carried: Flow,
    /// The increments so far, summed.
    moved: Flow,
}

impl CadenceFlow {
    /// The cadence of `flow`, the flow from the earlier key frame to the later one.
    pub fn new(flow: &Flow) -> Self {
        let mut half = flow.clone();
        for v in half.as_mut_slice() {
            *v *= 0.5;
        }
        let moved = Flow::zeros(flow.width(), flow.height());
        Self {
            carried: half.clone(),
            half,
            moved,
        }
    }

    /// The next tween, at position `tween` (0 to 1) between the key frames: adds its increment.
    pub fn advance(&mut self, tween: f64) {
        let (w, h) = (self.half.width(), self.half.height());
        self.carried = abs_flow_to_rel_flow(&self.carried, w, h);
        let t = tween as f32;
        let inc = rel_flow_to_abs_flow(&self.carried, w, h);
        for (m, v) in self.moved.as_mut_slice().iter_mut().zip(inc.as_slice()) {
            *m += v * t;
        }
    }

    /// The earlier key frame's picture at this tween: moved by the increments so far times
    /// `factor` (`cadence_flow_factor`).
    pub fn prev(&self, img: &RgbImage, factor: f64) -> RgbImage {
        apply_flow(img, &self.moved, factor)
    }

    /// The later key frame's picture at this tween: pulled back by half the flow, then moved by
    /// the increments so far times `factor`, in one resampling.
    pub fn next(&self, img: &RgbImage, factor: f64) -> RgbImage {
        let mut g = self.moved.clone();
        let f = factor as f32;
        for (v, hv) in g.as_mut_slice().iter_mut().zip(self.half.as_slice()) {
            *v = *v * f - hv;
        }
        apply_flow(img, &g, 1.0)
    }
}

/// Hybrid motion "Optical Flow": the motion between two video frames applied to a picture,
/// with what carries over between frames (the last flow, DIS's initial field).
pub struct FlowMotion {
    estimator: Estimator,
    /// Mask the flow by its forward/backward consistency (`hybrid_flow_consistency`).
    consistency: bool,
    /// Blur of the consistency mask (`hybrid_consistency_blur`).
    blur: u32,
    prev_flow: Option<Flow>,
}

impl FlowMotion {
    /// Motion measured by `estimator`, masked by consistency (blurred by `blur`) when asked.
    ///
    /// # Errors
    /// A blur above [`MAX_BLUR`].
    pub fn new(estimator: Estimator, consistency: bool, blur: u32) -> Result<Self> {
        if blur > MAX_BLUR {
            bail!("hybrid consistency blur {blur}: at most {MAX_BLUR}");
        }
        Ok(Self {
            estimator,
            consistency,
            blur,
            prev_flow: None,
        })
    }

    /// The flow `a → b` as Deforum's `get_flow_for_hybrid_motion` makes it (consistency-masked
    /// when asked, the previous flow as DIS's initial field); it becomes the previous flow.
    ///
    /// # Errors
    /// Frames of different sizes, or a flow method that fails.
    pub fn flow(&mut self, a: &RgbImage, b: &RgbImage) -> Result<Flow> {
        let init = self.prev_flow.take();
        let flow = if self.consistency {
            reliable_flow(&mut self.estimator, a, b, init.as_ref(), self.blur)?
        } else {
            self.estimator.flow(a, b, init.as_ref())?
        };
        self.prev_flow = Some(flow.clone());
        Ok(flow)
    }

    /// The flow the next frame passes to DIS as its initial field (`None` before the first).
    pub fn prev_flow(&self) -> Option<&Flow> {
        self.prev_flow.as_ref()
    }

    /// Sets the previous flow (a resumed render restoring its state).
    pub fn set_prev_flow(&mut self, flow: Option<Flow>) {
        self.prev_flow = flow;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_fma_flow_rows_match_the_baseline_rows() {
        if !crate::cpu::has("avx2,fma") {
            return;
        }
        let (w, h) = (37usize, 23usize);
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let src: Vec<u8> = (0..3 * w * h).map(|_| next() as u8).collect();
        // flows from sub-pixel to far outside, a few not finite
        let f: Vec<f32> = (0..2 * w * h)
            .map(|_| match next() % 97 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => (next() % 20_000) as f32 / 100.0 - 100.0,
            })
            .collect();
        let img = RgbImage::from_raw(w as u32, h as u32, src).unwrap();
        let flow = Flow::from_vec(w as u32, h as u32, f).unwrap();
        for factor in [1.0, 0.37, -2.5] {
            let map = FlowMap::new(&img, &flow, factor);
            for y in 0..h {
                let (mut a, mut b) = (vec![0u8; 3 * w], vec![0u8; 3 * w]);
                map.row(y, &mut a);
                // SAFETY: the processor has AVX2 and FMA, the features `row_avx2_fma` is compiled with
                unsafe { map.row_avx2_fma(y, &mut b) };
                assert_eq!(a, b, "row {y}, factor {factor}");
            }
        }
    }

    #[test]
    fn row_wise_vertical_blur_is_the_column_by_column_blur() {
        let (w, h) = (29usize, 41usize);
        let mask: Vec<f32> = (0..w * h)
            .map(|i| {
                if (i * 7919) % 13 < 4 {
                    INCONSISTENT
                } else {
                    1.0
                }
            })
            .collect();
        for blur in [1, 2, 3, 7] {
            let weights = gaussian_weights(f64::from(blur));
            // scipy's order, one column at a time through `blur_line`, then the rows
            let mut cols = vec![0.0f32; w * h];
            let (mut column, mut done) = (vec![0.0f32; h], vec![0.0f32; h]);
            for x in 0..w {
                for y in 0..h {
                    column[y] = mask[y * w + x];
                }
                blur_line(&column, &mut done, &weights);
                for y in 0..h {
                    cols[y * w + x] = done[y];
                }
            }
            let mut want = vec![0.0f32; w * h];
            for (o, i) in want.chunks_mut(w).zip(cols.chunks(w)) {
                blur_line(i, o, &weights);
            }
            let got = blur_consistency(&mask, w as u32, h as u32, blur).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "blur {blur}");
        }
    }

    #[test]
    fn reflect_101_folds_like_opencv() {
        let r: Vec<i64> = (-4..9).map(|p| reflect_101(p, 4)).collect();
        assert_eq!(r, vec![2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(reflect_101(-3, 1), 0);
    }

    #[test]
    fn zero_flow_is_the_identity() {
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        let out = apply_flow(&img, &Flow::zeros(7, 5), 1.0);
        assert_eq!(out, img);
        assert_eq!(apply_flow(&img, &Flow::zeros(7, 5), 0.3), img);
    }

    #[test]
    fn a_whole_pixel_flow_moves_the_picture() {
        let img = RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        let flow = Flow::from_vec(8, 6, [2.0f32, 1.0].repeat(48)).unwrap();
        let out = apply_flow(&img, &flow, 1.0);
        assert_eq!(out.get_pixel(5, 3), img.get_pixel(3, 2));
    }

    #[test]
    fn gaussian_weights_are_scipys() {
        let w = gaussian_weights(2.0);
        assert_eq!(w.len(), 5);
        assert!(
            (w[2] - 0.2507).abs() < 1e-3 && (w[0] - 0.1524).abs() < 1e-3,
            "{w:?}"
        );
        assert_eq!(gaussian_weights(1.0).len(), 3);
    }

    #[test]
    fn zero_flow_cadence_is_zero_not_nan() {
        let inc = cadence_increment(&Flow::zeros(4, 3), 0.5);
        assert!(inc.as_slice().iter().all(|v| *v == 0.0));
    }

    #[test]
    fn sizes_are_checked() {
        let a = Flow::zeros(4, 3);
        assert!(make_consistency(&a, &Flow::zeros(3, 3)).is_err());
        assert!(make_consistency(&Flow::zeros(1, 3), &Flow::zeros(1, 3)).is_err());
        assert!(blur_consistency(&[1.0; 11], 4, 3, 2).is_err());
        assert!(blur_consistency(&[1.0; 12], 4, 3, 65).is_err());
        assert!(filter_flow(&a, &[1.0; 5]).is_err());
    }
}
