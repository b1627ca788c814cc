//! Deforum's 3D camera (`anim_frame_warp_3d` → `transform_image_3d_new`).
//!
//! Each pixel is a point of the world: x and y span `[-1, 1]` over the frame (inclusive, like
//! `torch.linspace`), z is its depth (1 when flat). It is projected by a still camera and by the
//! camera moved by this frame's rotation and translation, both PyTorch3D `FoVPerspectiveCameras`;
//! the image is resampled at the pixel's centre shifted by the difference of the two projections,
//! as `torch.nn.functional.grid_sample(align_corners=False)` does, with its padding and sampling
//! modes. Arithmetic is float32 in PyTorch's order, so the result follows Deforum to within
//! rounding (tests/warp3d.rs, references from scripts/make_camera_refs.py).

use image::RgbImage;
use rayon::prelude::*;

use crate::scene::{PaddingMode, SamplingMode};

/// Deforum's `TRANSLATION_SCALE`: scene translations are in 1/200 camera units.
pub const TRANSLATION_SCALE: f64 = 1.0 / 200.0;

/// Per-frame 3D camera parameters (Deforum's 3D motion schedules at one frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion3D {
    /// Camera units × 200; positive moves content left (Deforum negates it).
    pub translation_x: f64,
    /// Camera units × 200; positive moves content down.
    pub translation_y: f64,
    /// Camera units × 200; positive moves the camera forward (zoom in).
    pub translation_z: f64,
    /// Tilt, degrees.
    pub rotation_x: f64,
    /// Pan, degrees.
    pub rotation_y: f64,
    /// Roll, degrees.
    pub rotation_z: f64,
    /// Vertical field of view, degrees.
    pub fov: f64,
    /// Near plane (cancels out of the warp; kept for the projection matrix).
    pub near: f64,
    /// Far plane (cancels out of the warp; kept for the projection matrix).
    pub far: f64,
    /// Aspect ratio of the projection (x is divided by it).
    pub aspect_ratio: f64,
}

impl Motion3D {
    /// No motion with Deforum's default camera (fov 70, near 200, far 10000, aspect 1).
    pub const IDENTITY: Motion3D = Motion3D {
        translation_x: 0.0,
        translation_y: 0.0,
        translation_z: 0.0,
        rotation_x: 0.0,
        rotation_y: 0.0,
        rotation_z: 0.0,
        fov: 70.0,
        near: 200.0,
        far: 10000.0,
        aspect_ratio: 1.0,
    };

    /// `euler_angles_to_matrix([rx, ry, rz], "XYZ")` = Rx·Ry·Rz, float32 as PyTorch3D.
    fn rotation(&self) -> [[f32; 3]; 3] {
        let r = |deg: f64| deg.to_radians() as f32;
        let (sx, cx) = r(self.rotation_x).sin_cos();
        let (sy, cy) = r(self.rotation_y).sin_cos();
        let (sz, cz) = r(self.rotation_z).sin_cos();
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        mul3(&mul3(&rx, &ry), &rz)
    }

    /// The projection scales (K[0][0], K[1][1]) of `FoVPerspectiveCameras`, float32.
    fn scales(&self) -> (f32, f32) {
        let fov = (std::f64::consts::PI / 180.0) as f32 * self.fov as f32;
        let tan_half = (fov / 2.0).tan();
        let n = self.near as f32;
        let max_y = tan_half * n;
        let max_x = max_y * self.aspect_ratio as f32;
        (2.0 * n / (max_x - -max_x), 2.0 * n / (max_y - -max_y))
    }

    /// The 4x4 row-vector matrix `Rotate(R) · Translate(T) · Kᵀ` of the moved camera, keeping
    /// the columns that give x, y and w.
    fn projection(&self) -> [[f32; 3]; 4] {
        let r = self.rotation();
        let t = [
            (-self.translation_x * TRANSLATION_SCALE) as f32,
            (self.translation_y * TRANSLATION_SCALE) as f32,
            (-self.translation_z * TRANSLATION_SCALE) as f32,
        ];
        let (sx, sy) = self.scales();
        let mut m = [[0f32; 3]; 4];
        for i in 0..3 {
            m[i] = [r[i][0] * sx, r[i][1] * sy, r[i][2]];
        }
        m[3] = [t[0] * sx, t[1] * sy, t[2]];
        m
    }

    /// Checks the parameters can form a camera: finite, fov in (0, 180), near ≠ far, aspect > 0.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            self.translation_x,
            self.translation_y,
            self.translation_z,
            self.rotation_x,
            self.rotation_y,
            self.rotation_z,
            self.fov,
            self.near,
            self.far,
            self.aspect_ratio,
        ];
        if all.iter().any(|v| !v.is_finite()) {
            return Err("a 3D camera value is not finite".into());
        }
        if !(self.fov > 0.0 && self.fov < 180.0) {
            return Err(format!(
                "fov = {} (must be between 0 and 180 degrees)",
                self.fov
            ));
        }
        if self.aspect_ratio <= 0.0 {
            return Err(format!(
                "aspect_ratio = {} (must be positive)",
                self.aspect_ratio
            ));
        }
        if self.near <= 0.0 || self.near == self.far {
            return Err(format!(
                "near = {}, far = {} (near must be positive and differ from far)",
                self.near, self.far
            ));
        }
        Ok(())
    }
}

fn mul3(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let mut r = [[0f32; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    r
}

/// `torch.linspace(-1, 1, n)` in float32: forward from -1 for the first half, backward from 1,
/// each value one fused multiply-add (PyTorch's CPU kernel).
fn linspace(n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![-1.0];
    }
    let step = 2.0 / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                step.mul_add(i as f32, -1.0)
            } else {
                (-step).mul_add((n - 1 - i) as f32, 1.0)
            }
        })
        .collect()
}

/// Coordinate handling of `grid_sample` for one axis (align_corners = false).
#[derive(Clone, Copy)]
struct Axis {
    size: i32,
    max: f32,
    scale: f32,
    padding: PaddingMode,
}

impl Axis {
    fn new(size: usize, padding: PaddingMode) -> Axis {
        Axis {
            size: size as i32,
            max: (size - 1) as f32,
            scale: size as f32 / 2.0,
            padding,
        }
    }

    /// Normalised [-1, 1] → pixel coordinate.
    #[inline(always)]
    fn unnormalize(&self, g: f32) -> f32 {
        (g + 1.0) * self.scale - 0.5
    }

    /// Padding applied to a (pixel) coordinate: clip for border, reflect about the edges then
    /// clip for reflection, nothing for zeros.
    #[inline(always)]
    fn pad(&self, x: f32) -> f32 {
        match self.padding {
            PaddingMode::Zeros => x,
            PaddingMode::Border => self.clip(x),
            PaddingMode::Reflection => {
                let twice = 2.0 * self.size as f32;
                let a = (x + 0.5).abs();
                let extra = a - (a / twice).trunc() * twice;
                self.clip(extra.min(twice - extra) - 0.5)
            }
        }
    }

    #[inline(always)]
    fn clip(&self, x: f32) -> f32 {
        self.max.min(x.max(0.0))
    }
}

/// Reads channel values at integer pixel (x, y), or zero outside the frame.
#[inline(always)]
fn tap(src: &[u8], w: usize, h: usize, x: i32, y: i32) -> [f32; 3] {
    if x < 0 || y < 0 || x >= w as i32 || y >= h as i32 {
        return [0.0; 3];
    }
    let o = (y as usize * w + x as usize) * 3;
    [src[o] as f32, src[o + 1] as f32, src[o + 2] as f32]
}

/// Keys cubic convolution weights (A = -0.75) for fractional offset `t`, PyTorch's formulas.
#[inline(always)]
pub(crate) fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The frame being resampled, with its two axes.
struct Source<'a> {
    px: &'a [u8],
    w: usize,
    h: usize,
    ax: Axis,
    ay: Axis,
}

impl Source<'_> {
    /// `grid_sample` at normalised (gx, gy).
    #[inline(always)]
    fn sample(&self, gx: f32, gy: f32, mode: SamplingMode) -> [f32; 3] {
        let (src, w, h, ax, ay) = (self.px, self.w, self.h, &self.ax, &self.ay);
        match mode {
            SamplingMode::Bilinear => {
                let (x, y) = (ax.pad(ax.unnormalize(gx)), ay.pad(ay.unnormalize(gy)));
                if !x.is_finite() || !y.is_finite() {
                    return [0.0; 3];
                }
                let (xw, yn) = (x.floor(), y.floor());
                let (we, n) = (x - xw, y - yn);
                let (e, s) = (1.0 - we, 1.0 - n);
                let (nw, ne, sw, se) = (s * e, s * we, n * e, n * we);
                let (ix, iy) = (xw as i32, yn as i32);
                let (a, b, c, d) = (
                    tap(src, w, h, ix, iy),
                    tap(src, w, h, ix + 1, iy),
                    tap(src, w, h, ix, iy + 1),
                    tap(src, w, h, ix + 1, iy + 1),
                );
                std::array::from_fn(|k| a[k] * nw + b[k] * ne + c[k] * sw + d[k] * se)
            }
            SamplingMode::Nearest => {
                let (x, y) = (ax.pad(ax.unnormalize(gx)), ay.pad(ay.unnormalize(gy)));
                if !x.is_finite() || !y.is_finite() {
                    return [0.0; 3];
                }
                tap(
                    src,
                    w,
                    h,
                    x.round_ties_even() as i32,
                    y.round_ties_even() as i32,
                )
            }
            SamplingMode::Bicubic => {
                let (x, y) = (ax.unnormalize(gx), ay.unnormalize(gy));
                if !x.is_finite() || !y.is_finite() {
                    return [0.0; 3];
                }
                let (fx, fy) = (x.floor(), y.floor());
                let (cx, cy) = (cubic_weights(x - fx), cubic_weights(y - fy));
                let (ix, iy) = (fx as i32, fy as i32);
                if ix >= 1 && iy >= 1 && ix + 2 < w as i32 && iy + 2 < h as i32 {
                    // the 4x4 taps are inside: no padding, no bounds checks per tap
                    let o = ((iy - 1) as usize * w + (ix - 1) as usize) * 3;
                    let mut rows = [[0f32; 3]; 4];
                    for (j, row) in rows.iter_mut().enumerate() {
                        let line = &src[o + j * w * 3..o + j * w * 3 + 12];
                        *row = std::array::from_fn(|k| {
                            let v = |i: usize| line[i * 3 + k] as f32;
                            cx[0] * v(0) + cx[1] * v(1) + cx[2] * v(2) + cx[3] * v(3)
                        });
                    }
                    return std::array::from_fn(|k| {
                        cy[0] * rows[0][k]
                            + cy[1] * rows[1][k]
                            + cy[2] * rows[2][k]
                            + cy[3] * rows[3][k]
                    });
                }
                // padding is per axis, so the 4 columns and 4 rows are padded once each
                let cols: [i32; 4] = std::array::from_fn(|i| ax.pad(fx - 1.0 + i as f32) as i32);
                let lines: [i32; 4] = std::array::from_fn(|j| ay.pad(fy - 1.0 + j as f32) as i32);
                let mut rows = [[0f32; 3]; 4];
                for (row, &ty) in rows.iter_mut().zip(&lines) {
                    let v: [[f32; 3]; 4] = std::array::from_fn(|i| tap(src, w, h, cols[i], ty));
                    *row = std::array::from_fn(|k| {
                        cx[0] * v[0][k] + cx[1] * v[1][k] + cx[2] * v[2][k] + cx[3] * v[3][k]
                    });
                }
                std::array::from_fn(|k| {
                    cy[0] * rows[0][k]
                        + cy[1] * rows[1][k]
                        + cy[2] * rows[2][k]
                        + cy[3] * rows[3][k]
                })
            }
        }
    }
}

/// One output pixel: `grid_sample` at (gx, gy), clamped to 0..=255 and truncated like numpy's
/// `astype(uint8)`.
#[inline(always)]
fn sample_into(source: &Source, gx: f32, gy: f32, sampling: SamplingMode, out: &mut [u8]) {
    let v = source.sample(gx, gy, sampling);
    for k in 0..3 {
        out[k] = v[k].clamp(0.0, 255.0) as u8;
    }
}

/// Bicubic pixels of one row with AVX2, eight at a time where all 4x4 taps of all eight are inside
/// the frame; the other blocks pixel by pixel. The same float32 operations in the same order as
/// [`Source::sample`] (no fused multiply-adds), so the output is identical. Returns how many
/// pixels it wrote (a multiple of 8); the caller does the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bicubic_row_avx2(source: &Source, gx: &[f32], gy: &[f32], row: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let (w, h, src) = (source.w, source.h, source.px);
    let splat = _mm256_set1_ps;
    let (one, half) = (splat(1.0), splat(0.5));
    let (scale_x, scale_y) = (splat(source.ax.scale), splat(source.ay.scale));
    const A: f32 = -0.75;
    let far = |x: __m256| {
        let v = _mm256_sub_ps(_mm256_mul_ps(splat(A), x), splat(5.0 * A));
        let v = _mm256_add_ps(_mm256_mul_ps(v, x), splat(8.0 * A));
        _mm256_sub_ps(_mm256_mul_ps(v, x), splat(4.0 * A))
    };
    let near = |x: __m256| {
        let v = _mm256_sub_ps(_mm256_mul_ps(splat(A + 2.0), x), splat(A + 3.0));
        _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(v, x), x), one)
    };
    let blocks = w / 8 * 8;
    let mut j = 0;
    while j < blocks {
        // SAFETY: j + 8 <= w = gx.len() = gy.len()
        let (vx, vy) = unsafe {
            (
                _mm256_loadu_ps(gx.as_ptr().add(j)),
                _mm256_loadu_ps(gy.as_ptr().add(j)),
            )
        };
        let x = _mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vx, one), scale_x), half);
        let y = _mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vy, one), scale_y), half);
        let (fx, fy) = (_mm256_floor_ps(x), _mm256_floor_ps(y));
        // NaN and huge values convert to i32::MIN and fail the test
        let (ix, iy) = (_mm256_cvttps_epi32(fx), _mm256_cvttps_epi32(fy));
        let zero = _mm256_setzero_si256();
        let inside = _mm256_and_si256(
            _mm256_and_si256(
                _mm256_cmpgt_epi32(ix, zero),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32 - 2), ix),
            ),
            _mm256_and_si256(
                _mm256_cmpgt_epi32(iy, zero),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(h as i32 - 2), iy),
            ),
        );
        if _mm256_movemask_epi8(inside) != -1 {
            for k in j..j + 8 {
                sample_into(
                    source,
                    gx[k],
                    gy[k],
                    SamplingMode::Bicubic,
                    &mut row[k * 3..k * 3 + 3],
                );
            }
            j += 8;
            continue;
        }
        let (tx, ty) = (_mm256_sub_ps(x, fx), _mm256_sub_ps(y, fy));
        let two = splat(2.0);
        let cx = [
            far(_mm256_add_ps(tx, one)),
            near(tx),
            near(_mm256_sub_ps(one, tx)),
            far(_mm256_sub_ps(two, tx)),
        ];
        let cy = [
            far(_mm256_add_ps(ty, one)),
            near(ty),
            near(_mm256_sub_ps(one, ty)),
            far(_mm256_sub_ps(two, ty)),
        ];
        let mut xi = [0i32; 8];
        let mut yi = [0i32; 8];
        // SAFETY: both arrays hold eight i32
        unsafe {
            _mm256_storeu_si256(xi.as_mut_ptr().cast(), ix);
            _mm256_storeu_si256(yi.as_mut_ptr().cast(), iy);
        }
        // taps[r][i][c][lane]: row r, column i, channel c
        let mut taps = [[[[0f32; 8]; 3]; 4]; 4];
        for l in 0..8 {
            let o = ((yi[l] - 1) as usize * w + (xi[l] - 1) as usize) * 3;
            for (r, tr) in taps.iter_mut().enumerate() {
                let line = &src[o + r * w * 3..o + r * w * 3 + 12];
                for (i, ti) in tr.iter_mut().enumerate() {
                    for (c, tc) in ti.iter_mut().enumerate() {
                        tc[l] = line[i * 3 + c] as f32;
                    }
                }
            }
        }
        let mut out = [[0i32; 8]; 3];
        for (c, oc) in out.iter_mut().enumerate() {
            // SAFETY: every tap row holds eight f32, every output row eight i32
            unsafe {
                let rows: [__m256; 4] = std::array::from_fn(|r| {
                    let v = |i: usize| _mm256_loadu_ps(taps[r][i][c].as_ptr());
                    let s = _mm256_add_ps(_mm256_mul_ps(cx[0], v(0)), _mm256_mul_ps(cx[1], v(1)));
                    let s = _mm256_add_ps(s, _mm256_mul_ps(cx[2], v(2)));
                    _mm256_add_ps(s, _mm256_mul_ps(cx[3], v(3)))
                });
                let s = _mm256_add_ps(_mm256_mul_ps(cy[0], rows[0]), _mm256_mul_ps(cy[1], rows[1]));
                let s = _mm256_add_ps(s, _mm256_mul_ps(cy[2], rows[2]));
                let s = _mm256_add_ps(s, _mm256_mul_ps(cy[3], rows[3]));
                // clamp like f32::clamp (NaN stays NaN, then 0), then truncate
                let v = _mm256_min_ps(_mm256_max_ps(s, _mm256_setzero_ps()), splat(255.0));
                _mm256_storeu_si256(oc.as_mut_ptr().cast(), _mm256_cvttps_epi32(v));
            }
        }
        for l in 0..8 {
            for c in 0..3 {
                row[(j + l) * 3 + c] = out[c][l] as u8;
            }
        }
        j += 8;
    }
    j
}

/// Bilinear pixels of one row with AVX2 (border or zeros padding), eight at a time where all four
/// taps of all eight are inside the frame (there padding changes nothing); the same float32
/// operations in the same order as [`Source::sample`]. Returns how many pixels it wrote.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bilinear_row_avx2(source: &Source, gx: &[f32], gy: &[f32], row: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let (w, h, src) = (source.w, source.h, source.px);
    let splat = _mm256_set1_ps;
    let (one, half) = (splat(1.0), splat(0.5));
    let (scale_x, scale_y) = (splat(source.ax.scale), splat(source.ay.scale));
    let blocks = w / 8 * 8;
    let mut j = 0;
    while j < blocks {
        // SAFETY: j + 8 <= w = gx.len() = gy.len()
        let (vx, vy) = unsafe {
            (
                _mm256_loadu_ps(gx.as_ptr().add(j)),
                _mm256_loadu_ps(gy.as_ptr().add(j)),
            )
        };
        let x = _mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vx, one), scale_x), half);
        let y = _mm256_sub_ps(_mm256_mul_ps(_mm256_add_ps(vy, one), scale_y), half);
        let (fx, fy) = (_mm256_floor_ps(x), _mm256_floor_ps(y));
        let (ix, iy) = (_mm256_cvttps_epi32(fx), _mm256_cvttps_epi32(fy));
        let lo = _mm256_set1_epi32(-1);
        let inside = _mm256_and_si256(
            _mm256_and_si256(
                _mm256_cmpgt_epi32(ix, lo),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(w as i32 - 1), ix),
            ),
            _mm256_and_si256(
                _mm256_cmpgt_epi32(iy, lo),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(h as i32 - 1), iy),
            ),
        );
        if _mm256_movemask_epi8(inside) != -1 {
            for k in j..j + 8 {
                sample_into(
                    source,
                    gx[k],
                    gy[k],
                    SamplingMode::Bilinear,
                    &mut row[k * 3..k * 3 + 3],
                );
            }
            j += 8;
            continue;
        }
        let (we, n) = (_mm256_sub_ps(x, fx), _mm256_sub_ps(y, fy));
        let (e, s) = (_mm256_sub_ps(one, we), _mm256_sub_ps(one, n));
        let (nw, ne, sw, se) = (
            _mm256_mul_ps(s, e),
            _mm256_mul_ps(s, we),
            _mm256_mul_ps(n, e),
            _mm256_mul_ps(n, we),
        );
        let mut xi = [0i32; 8];
        let mut yi = [0i32; 8];
        // SAFETY: both arrays hold eight i32
        unsafe {
            _mm256_storeu_si256(xi.as_mut_ptr().cast(), ix);
            _mm256_storeu_si256(yi.as_mut_ptr().cast(), iy);
        }
        // taps[k][c][lane]: k = nw, ne, sw, se
        let mut taps = [[[0f32; 8]; 3]; 4];
        for l in 0..8 {
            let o = (yi[l] as usize * w + xi[l] as usize) * 3;
            let (t, u) = (&src[o..o + 6], &src[o + w * 3..o + w * 3 + 6]);
            for c in 0..3 {
                taps[0][c][l] = t[c] as f32;
                taps[1][c][l] = t[3 + c] as f32;
                taps[2][c][l] = u[c] as f32;
                taps[3][c][l] = u[3 + c] as f32;
            }
        }
        let mut out = [[0i32; 8]; 3];
        for (c, oc) in out.iter_mut().enumerate() {
            // SAFETY: every tap row holds eight f32, every output row eight i32
            unsafe {
                let v = |k: usize| _mm256_loadu_ps(taps[k][c].as_ptr());
                let s = _mm256_add_ps(_mm256_mul_ps(v(0), nw), _mm256_mul_ps(v(1), ne));
                let s = _mm256_add_ps(s, _mm256_mul_ps(v(2), sw));
                let s = _mm256_add_ps(s, _mm256_mul_ps(v(3), se));
                let v = _mm256_min_ps(_mm256_max_ps(s, _mm256_setzero_ps()), splat(255.0));
                _mm256_storeu_si256(oc.as_mut_ptr().cast(), _mm256_cvttps_epi32(v));
            }
        }
        for l in 0..8 {
            for c in 0..3 {
                row[(j + l) * 3 + c] = out[c][l] as u8;
            }
        }
        j += 8;
    }
    j
}

/// The normalised sampling position of each pixel of one row: the pixel centre minus the shift
/// between its projection by the moved camera and by the still one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn grid_row(
    xs: &[f32],
    y: f32,
    zs: &[f32],
    bx: &[f32],
    by: f32,
    sx: f32,
    sy: f32,
    m: &[[f32; 3]; 4],
    gx: &mut [f32],
    gy: &mut [f32],
) {
    for ((((&x, &zz), &b), gx), gy) in xs
        .iter()
        .zip(zs)
        .zip(bx)
        .zip(gx.iter_mut())
        .zip(gy.iter_mut())
    {
        let old_x = x * sx / zz;
        let old_y = y * sy / zz;
        let pw = x * m[0][2] + y * m[1][2] + zz * m[2][2] + m[3][2];
        let new_x = (x * m[0][0] + y * m[1][0] + zz * m[2][0] + m[3][0]) / pw;
        let new_y = (x * m[0][1] + y * m[1][1] + zz * m[2][1] + m[3][1]) / pw;
        *gx = b - (new_x - old_x);
        *gy = by - (new_y - old_y);
    }
}

/// Warps `img` by the 3D camera `motion`. `z` is the per-pixel depth (row-major, `w*h` values,
/// from [`crate::depth::depth_to_z`]); `None` is Deforum's flat depth z = 1. The caller checks
/// `motion` with [`Motion3D::validate`]; values it rejects give a black frame rather than a panic.
pub fn warp_3d(
    img: &RgbImage,
    motion: &Motion3D,
    z: Option<&[f32]>,
    padding: PaddingMode,
    sampling: SamplingMode,
) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = RgbImage::new(img.width(), img.height());
    if w == 0 || h == 0 || motion.validate().is_err() || z.is_some_and(|z| z.len() != w * h) {
        return out;
    }
    let (sx, sy) = motion.scales();
    let m = motion.projection();
    let (xs, ys) = (linspace(w), linspace(h));
    // affine_grid(align_corners=False): linspace * (n - 1) / n
    let base = |l: &[f32], n: usize| -> Vec<f32> {
        l.iter().map(|v| v * (n - 1) as f32 / n as f32).collect()
    };
    let (bx, by) = (base(&xs, w), base(&ys, h));
    let source = Source {
        px: img.as_raw(),
        w,
        h,
        ax: Axis::new(w, padding),
        ay: Axis::new(h, padding),
    };
    let ones = vec![1f32; w];
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    out.as_mut()
        .par_chunks_mut(w * 3)
        .enumerate()
        .for_each(|(i, row)| {
            let zs = z.map_or(ones.as_slice(), |z| &z[i * w..(i + 1) * w]);
            // first the sampling grid of the whole row (straight-line float code the compiler
            // vectorises; the same operations in the same order as one pixel at a time)
            let mut gx = vec![0f32; w];
            let mut gy = vec![0f32; w];
            grid_row(&xs, ys[i], zs, &bx, by[i], sx, sy, &m, &mut gx, &mut gy);
            let mut j = 0;
            #[cfg(target_arch = "x86_64")]
            if sampling == SamplingMode::Bicubic && avx2 {
                // SAFETY: the CPU supports AVX2 (checked above)
                j = unsafe { bicubic_row_avx2(&source, &gx, &gy, row) };
            } else if sampling == SamplingMode::Bilinear
                && padding != PaddingMode::Reflection
                && avx2
            {
                // reflection moves interior coordinates by a rounding, so it stays scalar
                // SAFETY: the CPU supports AVX2 (checked above)
                j = unsafe { bilinear_row_avx2(&source, &gx, &gy, row) };
            }
            for j in j..w {
                sample_into(&source, gx[j], gy[j], sampling, &mut row[j * 3..j * 3 + 3]);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 11 % 256) as u8,
                ((x + y) * 5 % 256) as u8,
            ])
        })
    }

    #[test]
    fn identity_is_within_one_level_in_every_mode() {
        // like Deforum's: pixel centres land a float32 rounding off the integers, and the result
        // is truncated, so a few values come out one lower
        let img = pattern(24, 16);
        for p in [
            PaddingMode::Border,
            PaddingMode::Reflection,
            PaddingMode::Zeros,
        ] {
            for s in [
                SamplingMode::Bilinear,
                SamplingMode::Bicubic,
                SamplingMode::Nearest,
            ] {
                let out = warp_3d(&img, &Motion3D::IDENTITY, None, p, s);
                let max = out
                    .as_raw()
                    .iter()
                    .zip(img.as_raw())
                    .map(|(a, b)| (*a as i32 - *b as i32).abs())
                    .max();
                assert!(max <= Some(1), "{p:?} {s:?}: {max:?}");
            }
        }
    }

    #[test]
    fn vector_paths_match_scalar() {
        let img = RgbImage::from_fn(203, 77, |x, y| {
            image::Rgb([(x * 31 + y * 7) as u8, (x * x + y) as u8, (x ^ y) as u8])
        });
        let (w, h) = (203usize, 77usize);
        let z: Vec<f32> = (0..w * h)
            .map(|i| 1.0 + ((i % w) as f32 / w as f32) * 0.8)
            .collect();
        let moves = [
            Motion3D {
                translation_x: 4.0,
                translation_z: 25.0,
                rotation_z: 3.0,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                translation_z: -40.0,
                rotation_y: 5.0,
                fov: 40.0,
                aspect_ratio: 1.3,
                ..Motion3D::IDENTITY
            },
        ];
        for m in moves {
            for depth in [None, Some(z.as_slice())] {
                for (p, mode) in [
                    PaddingMode::Border,
                    PaddingMode::Reflection,
                    PaddingMode::Zeros,
                ]
                .into_iter()
                .flat_map(|p| [(p, SamplingMode::Bicubic), (p, SamplingMode::Bilinear)])
                {
                    let fast = warp_3d(&img, &m, depth, p, mode);
                    // the same pipeline, pixel by pixel
                    let (sx, sy) = m.scales();
                    let pm = m.projection();
                    let (xs, ys) = (linspace(w), linspace(h));
                    let bx: Vec<f32> = xs.iter().map(|v| v * (w - 1) as f32 / w as f32).collect();
                    let by: Vec<f32> = ys.iter().map(|v| v * (h - 1) as f32 / h as f32).collect();
                    let source = Source {
                        px: img.as_raw(),
                        w,
                        h,
                        ax: Axis::new(w, p),
                        ay: Axis::new(h, p),
                    };
                    let ones = vec![1f32; w];
                    let mut slow = RgbImage::new(w as u32, h as u32);
                    for (i, row) in slow.as_mut().chunks_mut(w * 3).enumerate() {
                        let zs = depth.map_or(ones.as_slice(), |z| &z[i * w..(i + 1) * w]);
                        let (mut gx, mut gy) = (vec![0f32; w], vec![0f32; w]);
                        grid_row(&xs, ys[i], zs, &bx, by[i], sx, sy, &pm, &mut gx, &mut gy);
                        for j in 0..w {
                            sample_into(&source, gx[j], gy[j], mode, &mut row[j * 3..j * 3 + 3]);
                        }
                    }
                    assert_eq!(fast, slow, "{m:?} {p:?} {mode:?} depth {}", depth.is_some());
                }
            }
        }
    }

    #[test]
    fn linspace_matches_torch_endpoints() {
        let l = linspace(5);
        assert_eq!(l, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(linspace(1), vec![-1.0]);
    }

    #[test]
    fn near_and_far_cancel_out() {
        let img = pattern(24, 16);
        let m = Motion3D {
            translation_x: 4.0,
            translation_z: 12.0,
            rotation_y: 2.0,
            ..Motion3D::IDENTITY
        };
        let a = warp_3d(&img, &m, None, PaddingMode::Border, SamplingMode::Bilinear);
        let b = warp_3d(
            &img,
            &Motion3D {
                near: 50.0,
                far: 70.0,
                ..m
            },
            None,
            PaddingMode::Border,
            SamplingMode::Bilinear,
        );
        let diff = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .filter(|(x, y)| x != y)
            .count();
        assert!(diff * 100 < a.as_raw().len(), "{diff} values differ");
    }

    #[test]
    fn bad_camera_is_rejected_not_panicking() {
        let img = pattern(8, 8);
        for m in [
            Motion3D {
                fov: 0.0,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                fov: 180.0,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                aspect_ratio: 0.0,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                translation_z: f64::NAN,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                translation_z: 200.0,
                ..Motion3D::IDENTITY
            },
        ] {
            let _ = m.validate();
            let _ = warp_3d(&img, &m, None, PaddingMode::Zeros, SamplingMode::Bicubic);
        }
        assert!(
            Motion3D {
                fov: 0.0,
                ..Motion3D::IDENTITY
            }
            .validate()
            .is_err()
        );
        let _ = warp_3d(
            &img,
            &Motion3D::IDENTITY,
            Some(&[1.0; 3]),
            PaddingMode::Zeros,
            SamplingMode::Bicubic,
        );
    }

    #[test]
    fn cubic_weights_sum_to_one() {
        for t in [0.0f32, 0.25, 0.5, 0.9] {
            let s: f32 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }
}
