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
use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;

use crate::scene::{PaddingMode, SamplingMode};

/// Deforum's `TRANSLATION_SCALE`: scene translations are in 1/200 camera units.
const TRANSLATION_SCALE: f64 = 1.0 / 200.0;

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
    fn rotation(&self) -> Matrix3<f32> {
        let degrees = [self.rotation_x, self.rotation_y, self.rotation_z];
        let [rx, ry, rz] = super::rotations_xyz(degrees.map(|d| (d.to_radians() as f32).sin_cos()));
        rx * ry * rz
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
    /// the columns that give x, y and w: the rows of R, then T, with x scaled by `sx` and y by
    /// `sy`. Row-major arrays for the kernels ([`Grid`]).
    fn projection(&self) -> [[f32; 3]; 4] {
        let r = self.rotation();
        let t = Vector3::new(
            (-self.translation_x * TRANSLATION_SCALE) as f32,
            (self.translation_y * TRANSLATION_SCALE) as f32,
            (-self.translation_z * TRANSLATION_SCALE) as f32,
        );
        let (sx, sy) = self.scales();
        let mut m = r.insert_row(3, 0.0);
        m.set_row(3, &t.transpose());
        // scaled column by column, not multiplied by diag(sx, sy, 1): that would add signed zeros
        m.column_mut(0).scale_mut(sx);
        m.column_mut(1).scale_mut(sy);
        m.transpose().into()
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
                // `as` saturates far outside the frame (translation_z close to the near plane);
                // the wrapped neighbour of i32::MAX is outside too, so it reads as padding
                let (ix, iy) = (xw as i32, yn as i32);
                let (ix1, iy1) = (ix.wrapping_add(1), iy.wrapping_add(1));
                let (a, b, c, d) = (
                    tap(src, w, h, ix, iy),
                    tap(src, w, h, ix1, iy),
                    tap(src, w, h, ix, iy1),
                    tap(src, w, h, ix1, iy1),
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
                if ix >= 1
                    && iy >= 1
                    && ix.saturating_add(2) < w as i32
                    && iy.saturating_add(2) < h as i32
                {
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

/// The AVX2 kernels of [`warp_3d`]: eight output pixels per step, for every sampling and padding
/// mode. Each lane computes what [`Source::sample`] computes for its pixel, the same float32
/// operations in the same order (no fused multiply-adds), and taps outside the frame read as zero
/// as in [`tap`], so the output is identical to the scalar path (`vector_paths_match_scalar`).
/// Pixels are fetched with `vpgatherdd`: one gather reads one tap's three channels (plus one
/// spare byte) for all eight lanes.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Axis, Grid, Source};
    use crate::camera::simd::{
        channels_f32, offset, pack_rgb, pixels, pixels_inside, store_rgb, within,
    };
    use crate::scene::{PaddingMode, SamplingMode};

    /// Warps one row: the sampling grid (with AVX2 enabled, so the compiler vectorises
    /// [`Grid::row`] eight wide; the same operations, so the same values), then
    /// the kernel of `sampling`, eight pixels at a time; the last `w % 8` pixels are scalar.
    ///
    /// # Safety
    /// The CPU supports AVX2, [`crate::camera::simd::fits`] holds for the frame, and the slices are
    /// `w` long (`row` `3w`).
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn warp_row(
        source: &Source,
        sampling: SamplingMode,
        grid: &Grid,
        i: usize,
        zs: &[f32],
        gx: &mut [f32],
        gy: &mut [f32],
        row: &mut [u8],
    ) {
        grid.row(i, zs, gx, gy);
        let w = source.w;
        let mut j = 0;
        while j + 8 <= w {
            // SAFETY: j + 8 <= w = gx.len() = gy.len()
            let (vx, vy) = unsafe {
                (
                    _mm256_loadu_ps(gx.as_ptr().add(j)),
                    _mm256_loadu_ps(gy.as_ptr().add(j)),
                )
            };
            let x = unnormalize(&source.ax, vx);
            let y = unnormalize(&source.ay, vy);
            let rgb = match sampling {
                SamplingMode::Bicubic => bicubic(source, x, y),
                SamplingMode::Bilinear => bilinear(source, x, y),
                SamplingMode::Nearest => nearest(source, x, y),
            };
            store_rgb(&mut row[j * 3..j * 3 + 24], rgb);
            j += 8;
        }
        for j in j..w {
            super::sample_into(source, gx[j], gy[j], sampling, &mut row[j * 3..j * 3 + 3]);
        }
    }

    /// [`Axis::unnormalize`]: `(g + 1) * scale - 0.5`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn unnormalize(a: &Axis, g: __m256) -> __m256 {
        let s = _mm256_mul_ps(
            _mm256_add_ps(g, _mm256_set1_ps(1.0)),
            _mm256_set1_ps(a.scale),
        );
        _mm256_sub_ps(s, _mm256_set1_ps(0.5))
    }

    /// [`Axis::clip`]: `max.min(x.max(0))`. `maxps` returns its second operand when one is NaN,
    /// so NaN becomes 0 as with `f32::max`; the min then sees no NaN.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn clip(a: &Axis, x: __m256) -> __m256 {
        _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_set1_ps(a.max))
    }

    /// [`Axis::pad`], the same operations: clip for border; for reflection fold `|x + 0.5|` by
    /// `2 size` (division, truncation, product, difference), mirror with min, then clip.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pad(a: &Axis, x: __m256) -> __m256 {
        match a.padding {
            PaddingMode::Zeros => x,
            PaddingMode::Border => clip(a, x),
            PaddingMode::Reflection => {
                let twice = _mm256_set1_ps(2.0 * a.size as f32);
                let shifted = _mm256_add_ps(x, _mm256_set1_ps(0.5));
                let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), shifted);
                let turns = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(
                    _mm256_div_ps(abs, twice),
                );
                let extra = _mm256_sub_ps(abs, _mm256_mul_ps(turns, twice));
                // either operand order: a NaN extra makes both NaN, as f32::min then returns
                let mirrored = _mm256_min_ps(extra, _mm256_sub_ps(twice, extra));
                clip(a, _mm256_sub_ps(mirrored, _mm256_set1_ps(0.5)))
            }
        }
    }

    /// All bits set in the lanes where both `x` and `y` are finite (`x - x` is NaN otherwise).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finite(x: __m256, y: __m256) -> __m256i {
        let z = _mm256_setzero_ps();
        let fx = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(x, x), z);
        let fy = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(y, y), z);
        _mm256_castps_si256(_mm256_and_ps(fx, fy))
    }

    /// `Σ w[k] · v[k]` from the left, as `w[0] * v[0] + w[1] * v[1] + ...` in the scalar path.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot<const N: usize>(w: &[__m256; N], v: &[__m256; N]) -> __m256 {
        let mut s = _mm256_mul_ps(w[0], v[0]);
        for k in 1..N {
            s = _mm256_add_ps(s, _mm256_mul_ps(w[k], v[k]));
        }
        s
    }

    /// [`super::sample_into`]'s final step: clamp to 0..=255 (NaN to 0: `maxps` returns its
    /// second operand), truncate, and pack the channels as `0x00BBGGRR`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn to_rgb(v: [__m256; 3]) -> __m256i {
        pack_rgb(v.map(|c| {
            let c = _mm256_min_ps(_mm256_max_ps(c, _mm256_setzero_ps()), _mm256_set1_ps(255.0));
            _mm256_cvttps_epi32(c)
        }))
    }

    /// Keys cubic weights of the four taps, [`super::cubic_weights`] lane by lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn cubic_weights(t: __m256) -> [__m256; 4] {
        const A: f32 = -0.75;
        let s = _mm256_set1_ps;
        let far = |x: __m256| {
            let v = _mm256_sub_ps(_mm256_mul_ps(s(A), x), s(5.0 * A));
            let v = _mm256_add_ps(_mm256_mul_ps(v, x), s(8.0 * A));
            _mm256_sub_ps(_mm256_mul_ps(v, x), s(4.0 * A))
        };
        let near = |x: __m256| {
            let v = _mm256_sub_ps(_mm256_mul_ps(s(A + 2.0), x), s(A + 3.0));
            _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(v, x), x), s(1.0))
        };
        [
            far(_mm256_add_ps(t, s(1.0))),
            near(t),
            near(_mm256_sub_ps(s(1.0), t)),
            far(_mm256_sub_ps(s(2.0), t)),
        ]
    }

    /// Bicubic at pixel coordinates (x, y) (unpadded, as in the scalar path): the 4x4 taps
    /// from the floor minus 1 to plus 2, rows blended by the x weights, then the rows by the y
    /// weights, [`bicubic_inside`] when all taps of all lanes lie inside the frame, else
    /// [`bicubic_padded`].
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bicubic(source: &Source, x: __m256, y: __m256) -> __m256i {
        let (fx, fy) = (_mm256_floor_ps(x), _mm256_floor_ps(y));
        let cx = cubic_weights(_mm256_sub_ps(x, fx));
        let cy = cubic_weights(_mm256_sub_ps(y, fy));
        // NaN and huge values convert to i32::MIN and fail the test
        let (ix, iy) = (_mm256_cvttps_epi32(fx), _mm256_cvttps_epi32(fy));
        let one = _mm256_set1_epi32(1);
        let (left, top) = (_mm256_sub_epi32(ix, one), _mm256_sub_epi32(iy, one));
        // columns ix-1..=ix+2, rows iy-1..=iy+2 (not the last row, so that a gather of the
        // last tap's 4 bytes stays inside the frame)
        let (right, bottom) = (
            _mm256_add_epi32(left, _mm256_set1_epi32(3)),
            _mm256_add_epi32(top, _mm256_set1_epi32(4)),
        );
        let inside = _mm256_and_si256(
            _mm256_and_si256(within(left, source.w), within(right, source.w)),
            _mm256_and_si256(within(top, source.h), within(bottom, source.h)),
        );
        if _mm256_movemask_epi8(inside) == -1 {
            bicubic_inside(source, left, top, &cx, &cy)
        } else {
            bicubic_padded(source, x, y, fx, fy, &cx, &cy)
        }
    }

    /// Bicubic for lanes whose 4x4 taps all lie inside the frame (top-left tap at (left, top)):
    /// no padding, no masks, one plain gather per tap.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bicubic_inside(
        source: &Source,
        left: __m256i,
        top: __m256i,
        cx: &[__m256; 4],
        cy: &[__m256; 4],
    ) -> __m256i {
        let corner = offset(source.w, left, top);
        let mut acc = [_mm256_setzero_ps(); 3];
        for (r, &wy) in cy.iter().enumerate() {
            let line = _mm256_add_epi32(corner, _mm256_set1_epi32((r * source.w * 3) as i32));
            let taps: [[__m256; 3]; 4] = std::array::from_fn(|i| {
                let o = _mm256_add_epi32(line, _mm256_set1_epi32(3 * i as i32));
                // SAFETY: the tap is a pixel of the frame, not its last (the caller's test)
                channels_f32(unsafe { pixels_inside(source.px, o) })
            });
            for (c, a) in acc.iter_mut().enumerate() {
                let term = _mm256_mul_ps(wy, dot(cx, &taps.map(|t| t[c])));
                *a = if r == 0 {
                    term
                } else {
                    _mm256_add_ps(*a, term)
                };
            }
        }
        to_rgb(acc)
    }

    /// Bicubic for lanes near or outside the border: each tap column and row padded once
    /// (`pad(fx - 1.0 + i as f32) as i32`), taps outside the frame zero, lanes with a
    /// non-finite coordinate 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bicubic_padded(
        source: &Source,
        x: __m256,
        y: __m256,
        fx: __m256,
        fy: __m256,
        cx: &[__m256; 4],
        cy: &[__m256; 4],
    ) -> __m256i {
        let at = |a: &Axis, f: __m256, i: i32| {
            let p = _mm256_add_ps(
                _mm256_sub_ps(f, _mm256_set1_ps(1.0)),
                _mm256_set1_ps(i as f32),
            );
            _mm256_cvttps_epi32(pad(a, p))
        };
        let cols: [__m256i; 4] = std::array::from_fn(|i| at(&source.ax, fx, i as i32));
        let lines: [__m256i; 4] = std::array::from_fn(|j| at(&source.ay, fy, j as i32));
        let col_in = cols.map(|c| within(c, source.w));
        let mut acc = [_mm256_setzero_ps(); 3];
        for (r, &line) in lines.iter().enumerate() {
            let line_in = within(line, source.h);
            let taps: [[__m256; 3]; 4] = std::array::from_fn(|i| {
                let mask = _mm256_and_si256(line_in, col_in[i]);
                // SAFETY: the lanes in `mask` are pixels of the frame, which fits
                channels_f32(unsafe { pixels(source.px, offset(source.w, cols[i], line), mask) })
            });
            for (c, a) in acc.iter_mut().enumerate() {
                let row = dot(cx, &taps.map(|t| t[c]));
                let term = _mm256_mul_ps(cy[r], row);
                *a = if r == 0 {
                    term
                } else {
                    _mm256_add_ps(*a, term)
                };
            }
        }
        _mm256_and_si256(to_rgb(acc), finite(x, y))
    }

    /// Bilinear at pixel coordinates (x, y): padded first, then the four taps around the
    /// floor (zero outside) blended as `a·nw + b·ne + c·sw + d·se`; non-finite lanes give 0.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bilinear(source: &Source, x: __m256, y: __m256) -> __m256i {
        let (x, y) = (pad(&source.ax, x), pad(&source.ay, y));
        let (fx, fy) = (_mm256_floor_ps(x), _mm256_floor_ps(y));
        let one = _mm256_set1_ps(1.0);
        let (we, n) = (_mm256_sub_ps(x, fx), _mm256_sub_ps(y, fy));
        let (e, s) = (_mm256_sub_ps(one, we), _mm256_sub_ps(one, n));
        let weights = [
            _mm256_mul_ps(s, e),
            _mm256_mul_ps(s, we),
            _mm256_mul_ps(n, e),
            _mm256_mul_ps(n, we),
        ];
        let (ix, iy) = (_mm256_cvttps_epi32(fx), _mm256_cvttps_epi32(fy));
        let one_i = _mm256_set1_epi32(1);
        let (ix1, iy1) = (_mm256_add_epi32(ix, one_i), _mm256_add_epi32(iy, one_i));
        let (x0, x1) = (within(ix, source.w), within(ix1, source.w));
        let (y0, y1) = (within(iy, source.h), within(iy1, source.h));
        let taps = [
            (ix, x0, iy, y0),
            (ix1, x1, iy, y0),
            (ix, x0, iy1, y1),
            (ix1, x1, iy1, y1),
        ]
        .map(|(cx, mx, cy, my)| {
            let mask = _mm256_and_si256(mx, my);
            // SAFETY: the lanes in `mask` are pixels of the frame, which fits
            channels_f32(unsafe { pixels(source.px, offset(source.w, cx, cy), mask) })
        });
        let rgb: [__m256; 3] = std::array::from_fn(|c| dot(&taps.map(|t| t[c]), &weights));
        _mm256_and_si256(to_rgb(rgb), finite(x, y))
    }

    /// Nearest at pixel coordinates (x, y): padded, rounded half to even, the pixel there or
    /// zero outside the frame (a non-finite coordinate converts to i32::MIN, outside).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn nearest(source: &Source, x: __m256, y: __m256) -> __m256i {
        let round = |v: __m256| {
            _mm256_cvttps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(v))
        };
        let ix = round(pad(&source.ax, x));
        let iy = round(pad(&source.ay, y));
        let mask = _mm256_and_si256(within(ix, source.w), within(iy, source.h));
        // SAFETY: the lanes in `mask` are pixels of the frame, which fits
        unsafe { pixels(source.px, offset(source.w, ix, iy), mask) }
    }
}

/// The sampling grid of one frame: `affine_grid` plus the shift between the projections of each
/// pixel by the moved camera and by the still one.
struct Grid {
    /// `linspace(-1, 1, w)` and `linspace(-1, 1, h)`: the pixels' world x and y.
    xs: Vec<f32>,
    ys: Vec<f32>,
    /// `affine_grid(align_corners=False)`: `linspace * (n - 1) / n`, the pixel centres.
    bx: Vec<f32>,
    by: Vec<f32>,
    /// Projection scales of the still camera.
    sx: f32,
    sy: f32,
    /// Projection of the moved camera ([`Motion3D::projection`]), as arrays: the kernels read
    /// its entries as they are (nalgebra's indexing would change nothing but the kernels' code).
    m: [[f32; 3]; 4],
}

impl Grid {
    fn new(motion: &Motion3D, w: usize, h: usize) -> Grid {
        let (sx, sy) = motion.scales();
        let (xs, ys) = (linspace(w), linspace(h));
        let base = |l: &[f32], n: usize| -> Vec<f32> {
            l.iter().map(|v| v * (n - 1) as f32 / n as f32).collect()
        };
        let (bx, by) = (base(&xs, w), base(&ys, h));
        Grid {
            xs,
            ys,
            bx,
            by,
            sx,
            sy,
            m: motion.projection(),
        }
    }

    /// The normalised sampling position of each pixel of row `i` (depths `zs`): the pixel
    /// centre minus the shift between its projection by the moved camera and by the still one.
    /// Straight-line float code the compiler vectorises, the same operations in the same order
    /// as one pixel at a time.
    #[inline(always)]
    fn row(&self, i: usize, zs: &[f32], gx: &mut [f32], gy: &mut [f32]) {
        let (y, by, sx, sy, m) = (self.ys[i], self.by[i], self.sx, self.sy, &self.m);
        for ((((&x, &zz), &b), gx), gy) in self
            .xs
            .iter()
            .zip(zs)
            .zip(&self.bx)
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

    /// Row `i` pixel by pixel: the grid, then [`sample_into`] (the reference for the vector
    /// path). `gx` and `gy` are buffers of `w` values.
    #[allow(clippy::too_many_arguments)]
    fn warp_row_scalar(
        &self,
        source: &Source,
        sampling: SamplingMode,
        i: usize,
        zs: &[f32],
        gx: &mut [f32],
        gy: &mut [f32],
        row: &mut [u8],
    ) {
        self.row(i, zs, gx, gy);
        for (j, out) in row.chunks_exact_mut(3).enumerate() {
            sample_into(source, gx[j], gy[j], sampling, out);
        }
    }
}

/// Warps `img` by the 3D camera `motion`. `z` is the per-pixel depth (row-major, `w*h` values,
/// from [`super::depth::depth_to_z`]); `None` is Deforum's flat depth z = 1. The caller checks
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
    let grid = Grid::new(motion, w, h);
    let source = Source {
        px: img.as_raw(),
        w,
        h,
        ax: Axis::new(w, padding),
        ay: Axis::new(h, padding),
    };
    let ones = vec![1f32; w];
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::has("avx2") && super::simd::fits(source.px.len());
    out.as_mut()
        .par_chunks_mut(w * 3)
        .enumerate()
        .for_each_init(
            || (vec![0f32; w], vec![0f32; w]),
            |(gx, gy), (i, row)| {
                let zs = z.map_or(ones.as_slice(), |z| &z[i * w..(i + 1) * w]);
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU supports AVX2 and the frame fits (checked above); the
                    // buffers are w long, the row 3w
                    unsafe { avx2::warp_row(&source, sampling, &grid, i, zs, gx, gy, row) };
                    return;
                }
                grid.warp_row_scalar(&source, sampling, i, zs, gx, gy, row);
            },
        );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sampling position far outside the frame (translation_z close to the near plane)
    /// saturates to i32::MAX; its neighbour taps must read as padding, not overflow.
    #[test]
    fn taps_far_outside_the_frame_read_as_padding() {
        let px = vec![200u8; 5 * 4 * 3];
        for padding in [
            PaddingMode::Zeros,
            PaddingMode::Border,
            PaddingMode::Reflection,
        ] {
            let source = Source {
                px: &px,
                w: 5,
                h: 4,
                ax: Axis::new(5, padding),
                ay: Axis::new(4, padding),
            };
            for mode in [
                SamplingMode::Bilinear,
                SamplingMode::Bicubic,
                SamplingMode::Nearest,
            ] {
                for (gx, gy) in [(1e30, 0.0), (0.0, 1e30), (1e30, 1e30), (-1e30, 1e30)] {
                    let v = source.sample(gx, gy, mode);
                    assert!(
                        v.iter().all(|c| c.is_finite()),
                        "{padding:?} {mode:?}: {v:?}"
                    );
                    if padding == PaddingMode::Zeros {
                        assert_eq!(v, [0.0; 3], "{mode:?} at ({gx}, {gy})");
                    }
                }
            }
        }
    }

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

    /// [`warp_3d`] (the AVX2 kernels where the CPU has them) against the scalar path, pixel by
    /// pixel, in every sampling and padding mode, with and without depth, on moves that keep
    /// the samples inside and moves that send many outside, and on frames narrower than a block.
    #[test]
    fn vector_paths_match_scalar() {
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
            Motion3D {
                translation_x: -30.0,
                translation_z: -150.0,
                rotation_x: 20.0,
                rotation_z: 35.0,
                ..Motion3D::IDENTITY
            },
            Motion3D {
                translation_z: 199.0,
                rotation_y: 60.0,
                ..Motion3D::IDENTITY
            },
            Motion3D::IDENTITY,
        ];
        for (w, h) in [(203usize, 77usize), (16, 9), (7, 5), (1, 1)] {
            let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([(x * 31 + y * 7) as u8, (x * x + y) as u8, (x ^ y) as u8])
            });
            let z: Vec<f32> = (0..w * h)
                .map(|i| 1.0 + ((i % w) as f32 / w as f32) * 0.8)
                .collect();
            for m in moves {
                let grid = Grid::new(&m, w, h);
                for depth in [None, Some(z.as_slice())] {
                    for p in [
                        PaddingMode::Border,
                        PaddingMode::Reflection,
                        PaddingMode::Zeros,
                    ] {
                        for mode in [
                            SamplingMode::Bicubic,
                            SamplingMode::Bilinear,
                            SamplingMode::Nearest,
                        ] {
                            let fast = warp_3d(&img, &m, depth, p, mode);
                            let source = Source {
                                px: img.as_raw(),
                                w,
                                h,
                                ax: Axis::new(w, p),
                                ay: Axis::new(h, p),
                            };
                            let ones = vec![1f32; w];
                            let mut slow = RgbImage::new(w as u32, h as u32);
                            let (mut gx, mut gy) = (vec![0f32; w], vec![0f32; w]);
                            for (i, row) in slow.as_mut().chunks_mut(w * 3).enumerate() {
                                let zs = depth.map_or(ones.as_slice(), |z| &z[i * w..(i + 1) * w]);
                                grid.warp_row_scalar(&source, mode, i, zs, &mut gx, &mut gy, row);
                            }
                            assert_eq!(
                                fast,
                                slow,
                                "{w}x{h} {m:?} {p:?} {mode:?} depth {}",
                                depth.is_some()
                            );
                        }
                    }
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
