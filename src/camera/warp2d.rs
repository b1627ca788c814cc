//! Image warps: Deforum's 2D camera matrix and an OpenCV-exact `warpPerspective`.
//!
//! The resampler reproduces OpenCV's (>= 4.11) `INTER_LINEAR` kernel for 8-bit images on AVX2+FMA
//! CPUs: the inverse matrix in float32, source positions from fused multiply-adds, the four taps
//! blended with fused multiply-adds and rounded half-to-even. That makes Deforum's 2D motion
//! bit-identical to `cv2.warpPerspective` (tests/data/warp2d, scripts/make_warp_refs.py).
//! Hand-written because imageproc's warp has no replicate/wrap/reflect borders and rounds
//! differently. Three implementations give the same bytes on every CPU: a scalar one, an AVX2
//! kernel and, where AVX-512 (F/BW/VBMI) is there, a sixteen-wide kernel for blocks inside the
//! frame.

use image::RgbImage;
use nalgebra::{Matrix3, Matrix4, Vector2, Vector3};
use rayon::prelude::*;

use crate::scene::Border;

/// A 3x3 homogeneous matrix, row-major: what the resampler takes and the references hold (the
/// matrices are composed as nalgebra `Matrix3`s).
pub type Mat3 = [[f64; 3]; 3];

/// `m` as row-major arrays.
fn rows(m: &Matrix3<f64>) -> Mat3 {
    m.transpose().into()
}

/// Row-major arrays as a matrix.
fn matrix(m: &Mat3) -> Matrix3<f64> {
    Matrix3::from(*m).transpose()
}

/// Per-frame 2D camera parameters (Deforum's 2D motion schedules at one frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion2D {
    /// Degrees, counter-clockwise.
    pub angle: f64,
    /// Scale factor about the centre.
    pub zoom: f64,
    /// Pixels, positive moves content right.
    pub translation_x: f64,
    /// Pixels, positive moves content down.
    pub translation_y: f64,
    /// Centre as a fraction of the width.
    pub transform_center_x: f64,
    /// Centre as a fraction of the height.
    pub transform_center_y: f64,
}

impl Motion2D {
    /// No motion.
    pub const IDENTITY: Motion2D = Motion2D {
        angle: 0.0,
        zoom: 1.0,
        translation_x: 0.0,
        translation_y: 0.0,
        transform_center_x: 0.5,
        transform_center_y: 0.5,
    };

    /// Deforum's forward matrix: `getRotationMatrix2D(center, angle, zoom) · T(tx, ty)`.
    pub fn matrix(&self, width: u32, height: u32) -> Mat3 {
        // OpenCV takes the centre as a float32 point
        let cx = (width as f64 * self.transform_center_x) as f32 as f64;
        let cy = (height as f64 * self.transform_center_y) as f32 as f64;
        let theta = self.angle * (std::f64::consts::PI / 180.0);
        let (a, b) = (self.zoom * theta.cos(), self.zoom * theta.sin());
        #[rustfmt::skip]
        let rot = Matrix3::new(
            a, b, (1.0 - a) * cx - b * cy,
            -b, a, b * cx + (1.0 - a) * cy,
            0.0, 0.0, 1.0,
        );
        let trans = Vector2::new(self.translation_x, self.translation_y);
        rows(&(rot * Matrix3::new_translation(&trans)))
    }
}

/// Per-frame perspective-flip parameters (Deforum's `perspective_flip_*` schedules at one frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flip {
    /// Roll about the view axis, degrees.
    pub theta: f64,
    /// Tilt about the horizontal axis, degrees.
    pub phi: f64,
    /// Pan about the vertical axis, degrees.
    pub gamma: f64,
    /// Field of view, degrees.
    pub fv: f64,
}

impl Flip {
    /// Deforum's `get_flip_perspective_matrix`: the image plane rotated by phi (x), gamma (y) and
    /// theta (z), seen through a camera of field of view `fv` at the distance where the diagonal
    /// fills it, as the homography between the four corners, then shifted by the side-length
    /// margin. `None` when the corners do not determine a homography (e.g. fv = 0 or 180).
    pub fn matrix(&self, width: u32, height: u32) -> Option<Mat3> {
        let (w, h) = (width as f64, height as f64);
        let half = (self.fv / 2.0).to_radians();
        let d = (w * w + h * h).sqrt();
        let side = d / half.cos();
        let dist = d / (2.0 * half.sin());
        let (near, far) = (dist - d / 2.0, dist + d / 2.0);
        let angles = [self.phi, self.gamma, self.theta].map(|d| d.to_radians().sin_cos());
        // as Deforum: 4x4 factors, multiplied P · Tz · (Rx · Ry · Rz)
        let [rx, ry, rz] = super::rotations_xyz(angles).map(|r| r.to_homogeneous());
        let t = 1.0 / half.tan();
        // Deforum starts P from the identity, so P[3][3] = 1 stays: w = dist + 1, not dist. That
        // one is why an untilted flip still shrinks the picture slightly; kept for fidelity.
        #[rustfmt::skip]
        let p = Matrix4::new(
            t, 0.0, 0.0, 0.0,
            0.0, t, 0.0, 0.0,
            0.0, 0.0, -(far + near) / (far - near), -(2.0 * far * near) / (far - near),
            0.0, 0.0, -1.0, 1.0,
        );
        let f = p * Matrix4::new_translation(&Vector3::new(0.0, 0.0, -dist)) * (rx * ry * rz);
        // the corners are the points (x, y, 0, 1): f's x and y columns, plus its last
        let (fxy, f1) = (f.fixed_columns::<2>(0), f.column(3));
        let centre = Vector2::new(w / 2.0, h / 2.0);
        let corners = [
            Vector2::new(-w / 2.0, h / 2.0),
            Vector2::new(w / 2.0, h / 2.0),
            Vector2::new(w / 2.0, -h / 2.0),
            Vector2::new(-w / 2.0, -h / 2.0),
        ];
        let mut src = [[0f32; 2]; 4];
        let mut dst = [[0f32; 2]; 4];
        for (k, c) in corners.iter().enumerate() {
            let v = fxy * c + f1;
            // cv2.perspectiveTransform: multiply by the reciprocal of w, zero when |w| <= FLT_EPSILON
            let o = if v.w.abs() > f32::EPSILON as f64 {
                v.xy() * (1.0 / v.w)
            } else {
                Vector2::zeros()
            };
            src[k] = (c + centre).cast::<f32>().into();
            dst[k] = (o.add_scalar(1.0) * (0.5 * side)).cast::<f32>().into();
        }
        let m = perspective_transform(&src, &dst)?;
        // numpy float32 post-translation, then a float64 product
        let post = Vector2::new(
            ((w - side) / 2.0) as f32 as f64,
            ((h - side) / 2.0) as f32 as f64,
        );
        let bm = matrix(&m) * Matrix3::new_translation(&post);
        bm.iter().all(|v| v.is_finite()).then(|| rows(&bm))
    }
}

/// The homography taking the four `src` points to `dst`, like `cv2.getPerspectiveTransform`
/// (an 8x8 system in double solved by Gaussian elimination with partial pivoting); `None` when
/// the points are degenerate. Arrays, not nalgebra's LU: that one divides by the pivot and
/// eliminates in another order, which moves the last bits of the homography.
fn perspective_transform(src: &[[f32; 2]; 4], dst: &[[f32; 2]; 4]) -> Option<Mat3> {
    let mut a = [[0f64; 8]; 8];
    let mut b = [0f64; 8];
    for i in 0..4 {
        let (sx, sy) = (src[i][0] as f64, src[i][1] as f64);
        let (dx, dy) = (dst[i][0] as f64, dst[i][1] as f64);
        a[i] = [sx, sy, 1.0, 0.0, 0.0, 0.0, -sx * dx, -sy * dx];
        a[i + 4] = [0.0, 0.0, 0.0, sx, sy, 1.0, -sx * dy, -sy * dy];
        b[i] = dx;
        b[i + 4] = dy;
    }
    for i in 0..8 {
        let k = (i..8).fold(i, |k, j| if a[j][i].abs() > a[k][i].abs() { j } else { k });
        if a[k][i].abs() < f64::EPSILON * 100.0 || !a[k][i].is_finite() {
            return None;
        }
        a.swap(i, k);
        b.swap(i, k);
        let d = -1.0 / a[i][i];
        for j in i + 1..8 {
            let alpha = a[j][i] * d;
            let (top, rest) = a.split_at_mut(j);
            for (x, p) in rest[0][i + 1..].iter_mut().zip(&top[i][i + 1..]) {
                *x += alpha * p;
            }
            b[j] += alpha * b[i];
        }
    }
    for i in (0..8).rev() {
        let mut s = b[i];
        for k in i + 1..8 {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some([[b[0], b[1], b[2]], [b[3], b[4], b[5]], [b[6], b[7], 1.0]])
}

/// Product of two 3x3 matrices.
pub(crate) fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    rows(&(matrix(a) * matrix(b)))
}

/// Inverse of a 3x3 matrix by cofactors (OpenCV's `invert` with DECOMP_LU gives the same to
/// rounding); `None` when singular. Hand-written rather than nalgebra's `try_inverse`: OpenCV
/// multiplies the cofactors by `1 / det`, nalgebra divides them by `det`, which differs in the
/// last bit and so, now and then, in the float32 matrix the resampler uses.
pub fn invert(m: &Mat3) -> Option<Mat3> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let d = 1.0 / det;
    Some([
        [
            (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * d,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * d,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * d,
        ],
        [
            (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * d,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * d,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * d,
        ],
        [
            (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * d,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * d,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * d,
        ],
    ])
}

/// Maps a possibly out-of-range coordinate into `0..len` per the border mode; `None` for zero.
#[inline]
fn border_index(p: i32, len: i32, border: Border) -> Option<i32> {
    if (0..len).contains(&p) {
        return Some(p);
    }
    match border {
        Border::Zero => None,
        Border::Replicate => Some(p.clamp(0, len - 1)),
        Border::Wrap => Some(p.rem_euclid(len)),
        Border::Reflect => {
            if len == 1 {
                return Some(0);
            }
            let period = 2 * len;
            let q = p.rem_euclid(period);
            Some(if q < len { q } else { period - 1 - q })
        }
    }
}

/// The parts of `m·(x, y, 1)` that are the same along row `y`: `y·m1 + m2`, `y·m4 + m5`,
/// `y·m7 + m8` (unfused, as OpenCV computes them). Every kernel starts from these.
#[inline(always)]
fn row_terms(y: usize, m: &[f32; 9]) -> [f32; 3] {
    let yf = y as f32;
    [yf * m[1] + m[2], yf * m[4] + m[5], yf * m[7] + m[8]]
}

/// Width of OpenCV's vector loop on AVX2+FMA; the last `W % 16` columns take its scalar tail,
/// which orders the coordinate arithmetic differently.
const VECTOR_WIDTH: usize = 16;

#[inline(always)]
fn sample_row(
    row: &mut [u8],
    y: usize,
    w: usize,
    h: usize,
    src: &[u8],
    m: &[f32; 9],
    border: Border,
) {
    sample_span(row, y, 0..w, w, h, src, m, border)
}

/// Pixels `xs` of row `y`, one at a time.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sample_span(
    row: &mut [u8],
    y: usize,
    xs: std::ops::Range<usize>,
    w: usize,
    h: usize,
    src: &[u8],
    m: &[f32; 9],
    border: Border,
) {
    let (sw, sh) = (w as i32, h as i32);
    let stride = w * 3;
    let yf = y as f32;
    let [bx, by, bw] = row_terms(y, m);
    let vector_end = w - w % VECTOR_WIDTH;
    let fetch = |x: i32, y: i32| -> Option<usize> {
        let bx = border_index(x, sw, border)?;
        let by = border_index(y, sh, border)?;
        Some(by as usize * stride + bx as usize * 3)
    };
    for x in xs {
        let xf = x as f32;
        let (mut sx, mut sy, sw_) = if x < vector_end {
            (
                m[0].mul_add(xf, bx),
                m[3].mul_add(xf, by),
                m[6].mul_add(xf, bw),
            )
        } else {
            (
                xf.mul_add(m[0], yf * m[1]) + m[2],
                xf.mul_add(m[3], yf * m[4]) + m[5],
                xf.mul_add(m[6], yf * m[7]) + m[8],
            )
        };
        sx /= sw_;
        sy /= sw_;
        let (fx, fy) = (sx.floor(), sy.floor());
        let (ax, ay) = (sx - fx, sy - fy);
        let (ix, iy) = (fx as i32, fy as i32);
        let out = &mut row[x * 3..x * 3 + 3];
        let inside = ix >= 0 && iy >= 0 && ix < sw - 1 && iy < sh - 1;
        if inside {
            // fast path: all four taps in the image
            let o = iy as usize * stride + ix as usize * 3;
            let (r0, r1) = (&src[o..o + 6], &src[o + stride..o + stride + 6]);
            for c in 0..3 {
                let (p00, p01, p10, p11) = (
                    r0[c] as f32,
                    r0[c + 3] as f32,
                    r1[c] as f32,
                    r1[c + 3] as f32,
                );
                let v0 = ax.mul_add(p01 - p00, p00);
                let v1 = ax.mul_add(p11 - p10, p10);
                let v = ay.mul_add(v1 - v0, v0);
                out[c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
            continue;
        }
        let taps: [Option<usize>; 4] = if !sx.is_finite() || !sy.is_finite() {
            [None; 4]
        } else {
            [
                // wrapping as in release builds (i32::MAX + 1 for a position beyond i32)
                fetch(ix, iy),
                fetch(ix.wrapping_add(1), iy),
                fetch(ix, iy.wrapping_add(1)),
                fetch(ix.wrapping_add(1), iy.wrapping_add(1)),
            ]
        };
        for c in 0..3 {
            let p = |t: Option<usize>| t.map_or(0.0, |o| src[o + c] as f32);
            let (p00, p01, p10, p11) = (p(taps[0]), p(taps[1]), p(taps[2]), p(taps[3]));
            let v0 = ax.mul_add(p01 - p00, p00);
            let v1 = ax.mul_add(p11 - p10, p10);
            let v = ay.mul_add(v1 - v0, v0);
            out[c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
}

/// The AVX2+FMA kernel of [`warp_perspective`]: eight pixels per step, inside the frame, near
/// its border or outside it, in every border mode. Each lane does what [`sample_span`] does for
/// its pixel (the same fused multiply-adds and divisions, the taps chosen by [`border_index`]),
/// so the output is identical to the scalar path and to OpenCV (`vector_path_matches_scalar_path`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Border, VECTOR_WIDTH, row_terms, sample_span};
    use crate::camera::simd::{channels_f32, offset, pack_rgb, pixels, store_rgb, within};

    /// Row `y`: blocks of eight up to OpenCV's vector width, then its scalar tail one by one.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA, [`crate::camera::simd::fits`]`(src.len())`, `src` is `w`x`h`
    /// RGB, `row` is `3w` long.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sample_row(
        row: &mut [u8],
        y: usize,
        w: usize,
        h: usize,
        src: &[u8],
        m: &[f32; 9],
        border: Border,
    ) {
        let vector_end = w - w % VECTOR_WIDTH;
        // SAFETY: the caller's contract; 0..vector_end is a whole number of blocks
        unsafe { sample_blocks(row, y, 0..vector_end, w, h, src, m, border) };
        sample_span(row, y, vector_end..w, w, h, src, m, border);
    }

    /// Columns `xs` of row `y` (whole blocks of eight, below OpenCV's scalar tail).
    ///
    /// # Safety
    /// As [`sample_row`]; `xs` starts at a multiple of eight, has a length that is one, and
    /// ends at or before `w - w % VECTOR_WIDTH`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sample_blocks(
        row: &mut [u8],
        y: usize,
        xs: std::ops::Range<usize>,
        w: usize,
        h: usize,
        src: &[u8],
        m: &[f32; 9],
        border: Border,
    ) {
        let splat = _mm256_set1_ps;
        let (m0, m3, m6) = (splat(m[0]), splat(m[3]), splat(m[6]));
        let [bx, by, bw] = row_terms(y, m);
        let (bx, by, bw) = (splat(bx), splat(by), splat(bw));
        let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
        // Two passes over chunks of up to eight blocks: the positions of all blocks first, then
        // their taps and blends. Each pass's blocks are independent of each other, so the CPU
        // overlaps them; one pass per block made a dependency chain (divide, floor, address,
        // load, blend) too long for the out-of-order window to cover.
        const BLOCKS: usize = 8;
        let zero = _mm256_setzero_ps();
        let zeroi = _mm256_setzero_si256();
        let mut x = xs.start;
        while x < xs.end {
            let n = ((xs.end - x) / 8).min(BLOCKS);
            let mut pos = [(zero, zero, zeroi, zeroi, false); BLOCKS];
            for (b, p) in pos.iter_mut().enumerate().take(n) {
                // source position: m·(x, y, 1) with the x term fused, then divided by w
                let xf = _mm256_add_ps(splat((x + 8 * b) as f32), lanes);
                let sw = _mm256_fmadd_ps(m6, xf, bw);
                let sx = _mm256_div_ps(_mm256_fmadd_ps(m0, xf, bx), sw);
                let sy = _mm256_div_ps(_mm256_fmadd_ps(m3, xf, by), sw);
                let (ix, iy) = (to_i32(_mm256_floor_ps(sx)), to_i32(_mm256_floor_ps(sy)));
                *p = (sx, sy, ix, iy, all_inside(ix, iy, w, h));
            }
            for (b, &(sx, sy, ix, iy, inside)) in pos.iter().enumerate().take(n) {
                let taps = if inside {
                    // SAFETY: `all_inside` holds for these lanes; `src` is the w x h frame
                    unsafe { taps_inside(src, w, ix, iy) }
                } else {
                    taps_border(src, w, h, sx, sy, ix, iy, border)
                };
                let (ax, ay) = (
                    _mm256_sub_ps(sx, _mm256_floor_ps(sx)),
                    _mm256_sub_ps(sy, _mm256_floor_ps(sy)),
                );
                let at = (x + 8 * b) * 3;
                store_rgb(&mut row[at..at + 24], blend(taps, ax, ay));
            }
            x += 8 * n;
        }
    }

    /// `f as i32` lane by lane: truncation, saturating at i32::MAX (NaN gives i32::MIN, where
    /// Rust gives 0; such lanes read no pixel either way).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn to_i32(f: __m256) -> __m256i {
        let big = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(f, _mm256_set1_ps(2147483648.0)));
        _mm256_blendv_epi8(_mm256_cvttps_epi32(f), _mm256_set1_epi32(i32::MAX), big)
    }

    /// Whether every lane's four taps (ix..=ix+1, iy..=iy+1) lie inside the frame, above its last
    /// row (so that a 4-byte gather of the last tap stays inside).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn all_inside(ix: __m256i, iy: __m256i, w: usize, h: usize) -> bool {
        let one = _mm256_set1_epi32(1);
        let two = _mm256_set1_epi32(2);
        let xs = _mm256_and_si256(within(ix, w), within(_mm256_add_epi32(ix, one), w));
        let ys = _mm256_and_si256(within(iy, h), within(_mm256_add_epi32(iy, two), h));
        _mm256_movemask_epi8(_mm256_and_si256(xs, ys)) == -1
    }

    /// The four taps p00, p01, p10, p11 of lanes that are all inside: one unaligned 8-byte load
    /// per lane and row gives both horizontal taps.
    ///
    /// # Safety
    /// `src` is a `w`-pixel-wide RGB frame and [`all_inside`]`(ix, iy, w, h)` holds for its
    /// height `h`: the loads read raw memory at those positions.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn taps_inside(src: &[u8], w: usize, ix: __m256i, iy: __m256i) -> [__m256i; 4] {
        let o = offset(w, ix, iy);
        let stride = (3 * w) as i32;
        // the lanes one by one (an explicit store and reload of `o`, or a plain list of
        // extracts, measured 5-10 % slower in this kernel)
        let lane = |l: i32| match l {
            0 => _mm256_extract_epi32::<0>(o),
            1 => _mm256_extract_epi32::<1>(o),
            2 => _mm256_extract_epi32::<2>(o),
            3 => _mm256_extract_epi32::<3>(o),
            4 => _mm256_extract_epi32::<4>(o),
            5 => _mm256_extract_epi32::<5>(o),
            6 => _mm256_extract_epi32::<6>(o),
            _ => _mm256_extract_epi32::<7>(o),
        };
        let offs: [i32; 8] = std::array::from_fn(|l| lane(l as i32));
        // SAFETY: the caller's contract: the taps are pixels of the frame above its last row
        // ([`all_inside`]), so the 8 bytes from either tap row's p00 end inside the next row
        let load =
            |at: i32| unsafe { src.as_ptr().add(at as usize).cast::<i64>().read_unaligned() };
        let quads = |d: i32| {
            let at = |l: usize| load(offs[l] + d);
            (
                _mm256_set_epi64x(at(3), at(2), at(1), at(0)),
                _mm256_set_epi64x(at(7), at(6), at(5), at(4)),
            )
        };
        let split = |(a, b): (__m256i, __m256i)| {
            // low dwords of the eight qwords in order: the left tap; shifted by 3 bytes: the right
            let low = |a: __m256i, b: __m256i| {
                let even = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(
                    _mm256_castsi256_ps(a),
                    _mm256_castsi256_ps(b),
                ));
                _mm256_permute4x64_epi64::<0b11_01_10_00>(even)
            };
            (
                low(a, b),
                low(_mm256_srli_epi64::<24>(a), _mm256_srli_epi64::<24>(b)),
            )
        };
        let ((p00, p01), (p10, p11)) = (split(quads(0)), split(quads(stride)));
        [p00, p01, p10, p11]
    }

    /// The four taps of lanes near or outside the border: each tap's column and row mapped by
    /// [`border_index`], zero where the border mode gives none or the position is not finite
    /// (the scalar path reads no tap there).
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    fn taps_border(
        src: &[u8],
        w: usize,
        h: usize,
        sx: __m256,
        sy: __m256,
        ix: __m256i,
        iy: __m256i,
        border: Border,
    ) -> [__m256i; 4] {
        let zero = _mm256_setzero_ps();
        let finite = _mm256_castps_si256(_mm256_and_ps(
            _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(sx, sx), zero),
            _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_sub_ps(sy, sy), zero),
        ));
        let one = _mm256_set1_epi32(1);
        let (x0, x1) = (
            border_index(ix, w, border),
            border_index(_mm256_add_epi32(ix, one), w, border),
        );
        let (y0, y1) = (
            border_index(iy, h, border),
            border_index(_mm256_add_epi32(iy, one), h, border),
        );
        [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|((cx, mx), (cy, my))| {
            let mask = _mm256_and_si256(finite, _mm256_and_si256(mx, my));
            // SAFETY: the lanes in `mask` are pixels of the frame, which fits
            unsafe { pixels(src, offset(w, cx, cy), mask) }
        })
    }

    /// [`super::border_index`] lane by lane: the index in `0..len`, and all bits set where
    /// there is a pixel (not for [`Border::Zero`] outside). Coordinates inside come back as
    /// they are in every mode.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn border_index(p: __m256i, len: usize, border: Border) -> (__m256i, __m256i) {
        let all = _mm256_set1_epi32(-1);
        let n = len as i32;
        match border {
            Border::Zero => (p, within(p, len)),
            Border::Replicate => (
                _mm256_min_epi32(
                    _mm256_max_epi32(p, _mm256_setzero_si256()),
                    _mm256_set1_epi32(n - 1),
                ),
                all,
            ),
            Border::Wrap => (rem_euclid(p, n), all),
            Border::Reflect => {
                // q < len stays, else mirrored to period - 1 - q (len 1 gives 0 either way)
                let q = rem_euclid(p, 2 * n);
                let mirrored = _mm256_sub_epi32(_mm256_set1_epi32(2 * n - 1), q);
                let low = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), q);
                (_mm256_blendv_epi8(mirrored, q, low), all)
            }
        }
    }

    /// `p.rem_euclid(n)` lane by lane (n > 0): the quotient from a float64 division, floored
    /// (exact, or one off when the quotient rounds onto an integer), then the remainder
    /// brought into `0..n` by one n either way.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rem_euclid(p: __m256i, n: i32) -> __m256i {
        let nd = _mm256_set1_pd(n as f64);
        let quotient = |half: __m128i| {
            let q = _mm256_floor_pd(_mm256_div_pd(_mm256_cvtepi32_pd(half), nd));
            _mm256_cvttpd_epi32(q)
        };
        let q = _mm256_set_m128i(
            quotient(_mm256_extracti128_si256::<1>(p)),
            quotient(_mm256_castsi256_si128(p)),
        );
        let vn = _mm256_set1_epi32(n);
        let r = _mm256_sub_epi32(p, _mm256_mullo_epi32(q, vn));
        let r = _mm256_add_epi32(
            r,
            _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), r), vn),
        );
        let over = _mm256_cmpgt_epi32(r, _mm256_set1_epi32(n - 1));
        _mm256_sub_epi32(r, _mm256_and_si256(over, vn))
    }

    /// OpenCV's blend of the taps p00, p01, p10, p11 per channel: `v0 = ax·(p01 − p00) + p00`,
    /// `v1 = ax·(p11 − p10) + p10`, `v = ay·(v1 − v0) + v0` (fused), rounded half to even,
    /// clamped to 0..=255 (NaN to 0: `maxps` returns its second operand); packed as RGB.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn blend(taps: [__m256i; 4], ax: __m256, ay: __m256) -> __m256i {
        let [p00, p01, p10, p11] = taps.map(|t| channels_f32(t));
        pack_rgb(std::array::from_fn(|c| {
            let v0 = _mm256_fmadd_ps(ax, _mm256_sub_ps(p01[c], p00[c]), p00[c]);
            let v1 = _mm256_fmadd_ps(ax, _mm256_sub_ps(p11[c], p10[c]), p10[c]);
            let v = _mm256_fmadd_ps(ay, _mm256_sub_ps(v1, v0), v0);
            let v = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(255.0));
            _mm256_cvtps_epi32(v)
        }))
    }
}

/// The AVX-512 kernel of [`warp_perspective`]: sixteen pixels per step where all their taps lie
/// inside the frame (most of a camera move), the AVX2 kernel for the other blocks. The same
/// operations lane by lane as [`sample_span`], so the output is identical.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Border, VECTOR_WIDTH, avx2, row_terms, sample_span};

    /// Row `y`: sixteen-pixel blocks up to OpenCV's vector width, then its scalar tail.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F, BW and VBMI, AVX2 and FMA;
    /// [`crate::camera::simd::fits`]`(src.len())`, `src` is `w`x`h` RGB, `row` is `3w` long.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sample_row(
        row: &mut [u8],
        y: usize,
        w: usize,
        h: usize,
        src: &[u8],
        m: &[f32; 9],
        border: Border,
    ) {
        let vector_end = w - w % VECTOR_WIDTH;
        let splat = _mm512_set1_ps;
        let (m0, m3, m6) = (splat(m[0]), splat(m[3]), splat(m[6]));
        let [bx, by, bw] = row_terms(y, m).map(|v| splat(v));
        let lanes = _mm512_setr_ps(
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
        );
        // positions of up to four blocks first, then their taps and blends (as the AVX2 kernel)
        const BLOCKS: usize = 4;
        let zero = _mm512_setzero_ps();
        let zeroi = _mm512_setzero_si512();
        let mut x = 0;
        while x < vector_end {
            let n = ((vector_end - x) / 16).min(BLOCKS);
            let mut pos = [(zero, zero, zeroi, zeroi, false); BLOCKS];
            for (b, p) in pos.iter_mut().enumerate().take(n) {
                let xf = _mm512_add_ps(splat((x + 16 * b) as f32), lanes);
                let sw = _mm512_fmadd_ps(m6, xf, bw);
                let sx = _mm512_div_ps(_mm512_fmadd_ps(m0, xf, bx), sw);
                let sy = _mm512_div_ps(_mm512_fmadd_ps(m3, xf, by), sw);
                let floor =
                    |v| _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v);
                let (fx, fy) = (floor(sx), floor(sy));
                // NaN and values beyond i32 become i32::MIN: never inside
                let (ix, iy) = (_mm512_cvttps_epi32(fx), _mm512_cvttps_epi32(fy));
                let inside = all_inside(ix, iy, w, h);
                *p = (_mm512_sub_ps(sx, fx), _mm512_sub_ps(sy, fy), ix, iy, inside);
            }
            for (b, &(ax, ay, ix, iy, inside)) in pos.iter().enumerate().take(n) {
                let x0 = x + 16 * b;
                if inside {
                    // SAFETY: `all_inside` holds for these lanes; `src` is the w x h frame
                    let taps = unsafe { taps_inside(src, w, ix, iy) };
                    store_rgb(&mut row[x0 * 3..x0 * 3 + 48], blend(taps, ax, ay));
                } else {
                    // SAFETY: the caller's contract; x0..x0 + 16 is two whole AVX2 blocks
                    unsafe { avx2::sample_blocks(row, y, x0..x0 + 16, w, h, src, m, border) };
                }
            }
            x += 16 * n;
        }
        sample_span(row, y, vector_end..w, w, h, src, m, border);
    }

    /// `0 <= i < n` lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn within(i: __m512i, n: usize) -> __mmask16 {
        _mm512_cmpge_epi32_mask(i, _mm512_setzero_si512())
            & _mm512_cmplt_epi32_mask(i, _mm512_set1_epi32(n as i32))
    }

    /// Whether every lane's taps (ix..=ix+1, iy..=iy+1) are inside the frame and above its last
    /// row, so that an 8-byte load at either tap row stays inside.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn all_inside(ix: __m512i, iy: __m512i, w: usize, h: usize) -> bool {
        let one = _mm512_set1_epi32(1);
        let two = _mm512_set1_epi32(2);
        let xs = within(ix, w) & within(_mm512_add_epi32(ix, one), w);
        let ys = within(iy, h) & within(_mm512_add_epi32(iy, two), h);
        xs & ys == 0xffff
    }

    /// The taps p00, p01, p10, p11 of sixteen lanes that are all inside, as `0x??BBGGRR`: one
    /// unaligned 8-byte load per lane and row gives both horizontal taps.
    ///
    /// # Safety
    /// `src` is a `w`-pixel-wide RGB frame and [`all_inside`]`(ix, iy, w, h)` holds for its
    /// height `h`: the loads read raw memory at those positions.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn taps_inside(src: &[u8], w: usize, ix: __m512i, iy: __m512i) -> [__m512i; 4] {
        let p = _mm512_add_epi32(_mm512_mullo_epi32(iy, _mm512_set1_epi32(w as i32)), ix);
        let o = _mm512_add_epi32(p, _mm512_add_epi32(p, p));
        let mut offs = [0i32; 16];
        // SAFETY: `offs` holds sixteen i32
        unsafe { _mm512_storeu_si512(offs.as_mut_ptr().cast(), o) };
        // SAFETY: the caller's contract: the taps are pixels of the frame above its last row
        // ([`all_inside`]), so the 8 bytes from either tap row's p00 end inside the next row
        let load =
            |at: i32| unsafe { src.as_ptr().add(at as usize).cast::<i64>().read_unaligned() };
        let quads = |d: i32| {
            let at = |l: usize| load(offs[l] + d);
            (
                _mm512_set_epi64(at(7), at(6), at(5), at(4), at(3), at(2), at(1), at(0)),
                _mm512_set_epi64(at(15), at(14), at(13), at(12), at(11), at(10), at(9), at(8)),
            )
        };
        // the low dwords of the sixteen qwords in order: the left tap; shifted by 3 bytes: the right
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let split = |(a, b): (__m512i, __m512i)| {
            (
                _mm512_permutex2var_epi32(a, even, b),
                _mm512_permutex2var_epi32(
                    _mm512_srli_epi64::<24>(a),
                    even,
                    _mm512_srli_epi64::<24>(b),
                ),
            )
        };
        let ((p00, p01), (p10, p11)) = (split(quads(0)), split(quads((3 * w) as i32)));
        [p00, p01, p10, p11]
    }

    /// The blend of the AVX2 kernel (`avx2::blend`) sixteen lanes wide.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blend(taps: [__m512i; 4], ax: __m512, ay: __m512) -> __m512i {
        let byte = _mm512_set1_epi32(0xff);
        let channels = |t: __m512i| {
            [
                _mm512_cvtepi32_ps(_mm512_and_si512(t, byte)),
                _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32::<8>(t), byte)),
                _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32::<16>(t), byte)),
            ]
        };
        let [p00, p01, p10, p11] = taps.map(channels);
        let c: [__m512i; 3] = std::array::from_fn(|c| {
            let v0 = _mm512_fmadd_ps(ax, _mm512_sub_ps(p01[c], p00[c]), p00[c]);
            let v1 = _mm512_fmadd_ps(ax, _mm512_sub_ps(p11[c], p10[c]), p10[c]);
            let v = _mm512_fmadd_ps(ay, _mm512_sub_ps(v1, v0), v0);
            let v = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(255.0));
            _mm512_cvtps_epi32(v)
        });
        _mm512_or_si512(
            _mm512_or_si512(c[0], _mm512_slli_epi32::<8>(c[1])),
            _mm512_slli_epi32::<16>(c[2]),
        )
    }

    /// Stores the low three bytes of each lane as sixteen RGB pixels, `out[..48]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn store_rgb(out: &mut [u8], v: __m512i) {
        // byte i of the output is byte i % 3 of lane i / 3
        const IDX: [u8; 64] = {
            let mut idx = [0u8; 64];
            let mut i = 0;
            while i < 48 {
                idx[i] = (i / 3 * 4 + i % 3) as u8;
                i += 1;
            }
            idx
        };
        assert!(out.len() >= 48);
        // SAFETY: `IDX` holds 64 bytes; the masked store writes out[..48]
        unsafe {
            let packed = _mm512_permutexvar_epi8(_mm512_loadu_si512(IDX.as_ptr().cast()), v);
            _mm512_mask_storeu_epi8(out.as_mut_ptr().cast(), (1u64 << 48) - 1, packed);
        }
    }
}

/// `dst(x, y) = src(M⁻¹ · (x, y))` with bilinear sampling, like `cv2.warpPerspective(src, M,
/// (w, h), INTER_LINEAR, border)`. A singular matrix yields a black frame.
pub fn warp_perspective(src: &RgbImage, m: &Mat3, border: Border) -> RgbImage {
    let (w, h) = src.dimensions();
    let mut dst = RgbImage::new(w, h);
    if w == 0 || h == 0 {
        return dst;
    }
    let Some(inv) = invert(m) else { return dst };
    let mf: [f32; 9] = std::array::from_fn(|i| inv[i / 3][i % 3] as f32);
    let src_raw = src.as_raw();
    let (wu, hu) = (w as usize, h as usize);
    #[cfg(target_arch = "x86_64")]
    let fma = crate::cpu::has("avx2,fma") && super::simd::fits(src_raw.len());
    #[cfg(target_arch = "x86_64")]
    let avx512 =
        crate::cpu::has("avx512f,avx512bw,avx512vbmi,avx2,fma") && super::simd::fits(src_raw.len());
    dst.as_mut()
        .par_chunks_mut(wu * 3)
        .enumerate()
        .for_each(|(y, row)| {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: the CPU supports AVX-512 F/BW/VBMI, AVX2 and FMA and the frame fits
                unsafe { avx512::sample_row(row, y, wu, hu, src_raw, &mf, border) };
                return;
            }
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU supports AVX2 and FMA and the frame fits (checked above);
                // results are identical either way (mul_add is always fused; the vector path
                // does the same operations).
                unsafe { avx2::sample_row(row, y, wu, hu, src_raw, &mf, border) };
                return;
            }
            sample_row(row, y, wu, hu, src_raw, &mf, border);
        });
    dst
}

/// Warps `img` by the 2D camera `motion`, as Deforum's `anim_frame_warp_2d`.
pub fn warp_2d(img: &RgbImage, motion: &Motion2D, border: Border) -> RgbImage {
    let m = motion.matrix(img.width(), img.height());
    warp_perspective(img, &m, border)
}

/// The 2D camera with perspective flip: `bM · Rot · T`, one resampling. Deforum drops `T` here
/// (an `np.matmul` argument bug); anim keeps the translation. `flip` is [`Flip::matrix`].
pub fn warp_2d_flip(img: &RgbImage, motion: &Motion2D, flip: &Mat3, border: Border) -> RgbImage {
    let m = matmul(flip, &motion.matrix(img.width(), img.height()));
    warp_perspective(img, &m, border)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames without pixels give frames without pixels (a zero chunk size panicked).
    #[test]
    fn empty_frames_stay_empty() {
        let m = Motion2D {
            angle: 3.0,
            zoom: 1.1,
            translation_x: 1.0,
            translation_y: 0.0,
            transform_center_x: 0.5,
            transform_center_y: 0.5,
        };
        for (w, h) in [(0, 5), (5, 0), (0, 0)] {
            let img = RgbImage::new(w, h);
            let mat = m.matrix(w.max(1), h.max(1));
            assert_eq!(
                warp_perspective(&img, &mat, Border::Zero).dimensions(),
                (w, h)
            );
        }
    }

    #[test]
    fn identity_is_exact() {
        let img = RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([(x * 13) as u8, (y * 29) as u8, (x * y) as u8])
        });
        for b in [
            Border::Replicate,
            Border::Wrap,
            Border::Reflect,
            Border::Zero,
        ] {
            assert_eq!(warp_2d(&img, &Motion2D::IDENTITY, b), img);
        }
    }

    #[test]
    fn translation_moves_content_right_and_down() {
        let mut img = RgbImage::new(16, 16);
        img.put_pixel(4, 4, image::Rgb([255, 255, 255]));
        let m = Motion2D {
            translation_x: 3.0,
            translation_y: 2.0,
            ..Motion2D::IDENTITY
        };
        let out = warp_2d(&img, &m, Border::Zero);
        assert_eq!(out.get_pixel(7, 6).0, [255, 255, 255]);
    }

    /// [`warp_perspective`] (the AVX2 kernel where the CPU has it) against the scalar path in
    /// every border mode: rotations and zooms, perspective flips whose horizon crosses the
    /// frame, a frame moved far outside, coordinates beyond i32 (1e-8 zoom), and frames too
    /// small for a block or one pixel tall.
    #[test]
    fn vector_path_matches_scalar_path() {
        for (w, h) in [(203u32, 77u32), (64, 48), (40, 1), (7, 5)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 31 + y * 7) as u8, (x * x + y) as u8, (x ^ y) as u8])
            });
            let flip = |theta, phi, gamma, fv| {
                Flip {
                    theta,
                    phi,
                    gamma,
                    fv,
                }
                .matrix(w, h)
                .unwrap()
            };
            let motion = |angle, zoom, translation_x, translation_y| {
                Motion2D {
                    angle,
                    zoom,
                    translation_x,
                    translation_y,
                    ..Motion2D::IDENTITY
                }
                .matrix(w, h)
            };
            let moves = [
                motion(7.0, 1.3, 3.5, 0.0),
                motion(-20.0, 0.7, 0.0, -9.25),
                motion(0.0, 1.0, 0.5, 0.25),
                motion(45.0, 1.0, 5000.0, -3000.0),
                motion(3.0, 1e-8, 0.0, 0.0),
                motion(170.0, 4.0, 0.0, 0.0),
                matmul(&flip(5.0, 12.0, -8.0, 60.0), &motion(0.0, 1.01, 0.0, 0.0)),
                matmul(&flip(30.0, 60.0, 45.0, 90.0), &motion(3.0, 1.04, 2.5, -1.5)),
                flip(0.0, 85.0, 0.0, 120.0),
            ];
            for m in moves {
                let inv = invert(&m).unwrap();
                let mf: [f32; 9] = std::array::from_fn(|i| inv[i / 3][i % 3] as f32);
                for b in [
                    Border::Replicate,
                    Border::Wrap,
                    Border::Reflect,
                    Border::Zero,
                ] {
                    let mut scalar = RgbImage::new(w, h);
                    for (y, row) in scalar.as_mut().chunks_mut(w as usize * 3).enumerate() {
                        sample_row(row, y, w as usize, h as usize, img.as_raw(), &mf, b);
                    }
                    assert_eq!(warp_perspective(&img, &m, b), scalar, "{w}x{h} {m:?} {b:?}");
                    // the AVX2 kernel alone too, where warp_perspective takes AVX-512
                    #[cfg(target_arch = "x86_64")]
                    if crate::cpu::has("avx2,fma") {
                        let mut avx2 = RgbImage::new(w, h);
                        for (y, row) in avx2.as_mut().chunks_mut(w as usize * 3).enumerate() {
                            // SAFETY: AVX2 and FMA are there; the frame is small
                            unsafe {
                                avx2::sample_row(
                                    row,
                                    y,
                                    w as usize,
                                    h as usize,
                                    img.as_raw(),
                                    &mf,
                                    b,
                                )
                            };
                        }
                        assert_eq!(avx2, scalar, "AVX2 {w}x{h} {m:?} {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn flip_at_rest_is_deforum_shrink() {
        // deforum.md §3.3: all angles 0, fv 53, 512x512 -> about 0.9988 scale and a half-pixel shift
        let m = Flip {
            theta: 0.0,
            phi: 0.0,
            gamma: 0.0,
            fv: 53.0,
        }
        .matrix(512, 512)
        .unwrap();
        assert!(
            (m[0][0] - 0.9988).abs() < 1e-4 && (m[1][1] - 0.9988).abs() < 1e-4,
            "{m:?}"
        );
        assert!(
            (m[0][2] - 0.498).abs() < 1e-3 && (m[1][2] - 0.498).abs() < 1e-3,
            "{m:?}"
        );
        assert!(m[2][0].abs() < 1e-9 && m[2][1].abs() < 1e-9);
    }

    #[test]
    fn flip_degenerate_fov_is_none() {
        assert!(
            Flip {
                theta: 0.0,
                phi: 0.0,
                gamma: 0.0,
                fv: 0.0
            }
            .matrix(64, 64)
            .is_none()
        );
        assert!(
            Flip {
                theta: 0.0,
                phi: 0.0,
                gamma: 0.0,
                fv: 180.0
            }
            .matrix(64, 64)
            .is_none()
        );
    }

    #[test]
    fn border_index_modes() {
        assert_eq!(border_index(-1, 5, Border::Replicate), Some(0));
        assert_eq!(border_index(-1, 5, Border::Wrap), Some(4));
        assert_eq!(border_index(-1, 5, Border::Reflect), Some(0));
        assert_eq!(border_index(-2, 5, Border::Reflect), Some(1));
        assert_eq!(border_index(5, 5, Border::Reflect), Some(4));
        assert_eq!(border_index(6, 5, Border::Reflect), Some(3));
        assert_eq!(border_index(5, 5, Border::Zero), None);
    }
}
