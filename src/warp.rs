//! Image warps: Deforum's 2D camera matrix and an OpenCV-exact `warpPerspective`.
//!
//! The resampler reproduces OpenCV's `INTER_LINEAR` path for 8-bit images: the inverse matrix maps
//! each destination pixel to a source position that is rounded to 1/32 pixel, and the four taps are
//! blended with 15-bit fixed-point weights. That makes Deforum's 2D motion bit-identical to what
//! `cv2.warpPerspective` gives (tests/data/warp2d). Hand-written because imageproc's warp has no
//! replicate/wrap/reflect borders and uses float weights.

use image::RgbImage;
use rayon::prelude::*;

use crate::scene::Border;

/// A 3x3 homogeneous matrix, row-major.
pub type Mat3 = [[f64; 3]; 3];

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
        let (cx, cy) = (width as f64 * self.transform_center_x, height as f64 * self.transform_center_y);
        let theta = self.angle.to_radians();
        let (a, b) = (self.zoom * theta.cos(), self.zoom * theta.sin());
        let rot = [[a, b, (1.0 - a) * cx - b * cy], [-b, a, b * cx + (1.0 - a) * cy], [0.0, 0.0, 1.0]];
        let trans = [[1.0, 0.0, self.translation_x], [0.0, 1.0, self.translation_y], [0.0, 0.0, 1.0]];
        matmul(&rot, &trans)
    }
}

/// Product of two 3x3 matrices.
pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    r
}

/// Inverse of a 3x3 matrix by cofactors (OpenCV's `invert` with DECOMP_LU gives the same to
/// rounding); `None` when singular.
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

const INTER_BITS: i32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
const COEF_BITS: i32 = 15;
const COEF_SCALE: i32 = 1 << COEF_BITS;

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

/// `dst(x, y) = src(M⁻¹ · (x, y))` with bilinear sampling, like `cv2.warpPerspective(src, M,
/// (w, h), INTER_LINEAR, border)`. A singular matrix yields a black frame.
pub fn warp_perspective(src: &RgbImage, m: &Mat3, border: Border) -> RgbImage {
    let (w, h) = src.dimensions();
    let mut dst = RgbImage::new(w, h);
    let Some(inv) = invert(m) else { return dst };
    let (sw, sh) = (w as i32, h as i32);
    let src_raw = src.as_raw();
    let stride = w as usize * 3;
    // bilinear weight table for the 32x32 sub-pixel positions, as OpenCV's initInterTab2D
    let mut tab = [[0i32; 4]; (INTER_TAB_SIZE * INTER_TAB_SIZE) as usize];
    for (i, t) in tab.iter_mut().enumerate() {
        let fy = (i as i32 / INTER_TAB_SIZE) as f32 / INTER_TAB_SIZE as f32;
        let fx = (i as i32 % INTER_TAB_SIZE) as f32 / INTER_TAB_SIZE as f32;
        let wf = [(1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx, fy * (1.0 - fx), fy * fx];
        let mut sum = 0;
        for k in 0..4 {
            t[k] = (wf[k] * COEF_SCALE as f32).round_ties_even() as i32;
            sum += t[k];
        }
        // put the rounding residue on the largest weight, as OpenCV does
        if sum != COEF_SCALE {
            let diff = sum - COEF_SCALE;
            let (mut imax, mut imin) = (0, 0);
            for k in 0..4 {
                if t[k] > t[imax] {
                    imax = k;
                }
                if t[k] < t[imin] {
                    imin = k;
                }
            }
            if diff < 0 {
                t[imax] -= diff;
            } else {
                t[imin] -= diff;
            }
        }
    }
    dst.as_mut()
        .par_chunks_mut(stride)
        .enumerate()
        .for_each(|(y, row)| {
            let yf = y as f64;
            for x in 0..w as usize {
                let xf = x as f64;
                let wv = inv[2][0] * xf + inv[2][1] * yf + inv[2][2];
                let wv = if wv != 0.0 { INTER_TAB_SIZE as f64 / wv } else { 0.0 };
                let fx = ((inv[0][0] * xf + inv[0][1] * yf + inv[0][2]) * wv).clamp(i32::MIN as f64, i32::MAX as f64);
                let fy = ((inv[1][0] * xf + inv[1][1] * yf + inv[1][2]) * wv).clamp(i32::MIN as f64, i32::MAX as f64);
                let (ix, iy) = (fx.round_ties_even() as i32, fy.round_ties_even() as i32);
                let (x0, y0) = (ix >> INTER_BITS, iy >> INTER_BITS);
                let wt = &tab[(((iy & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE) + (ix & (INTER_TAB_SIZE - 1))) as usize];
                let taps = [(x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)];
                let out = &mut row[x * 3..x * 3 + 3];
                let inside = x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh;
                if !inside && border == Border::Zero && (x0 >= sw || y0 >= sh || x0 + 1 < 0 || y0 + 1 < 0) {
                    out.fill(0);
                    continue;
                }
                let mut acc = [0i32; 3];
                for (k, &(tx, ty)) in taps.iter().enumerate() {
                    let (Some(bx), Some(by)) = (border_index(tx, sw, border), border_index(ty, sh, border)) else {
                        continue;
                    };
                    let off = by as usize * stride + bx as usize * 3;
                    for c in 0..3 {
                        acc[c] += wt[k] * src_raw[off + c] as i32;
                    }
                }
                for c in 0..3 {
                    out[c] = ((acc[c] + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255) as u8;
                }
            }
        });
    dst
}

/// Warps `img` by the 2D camera `motion`, as Deforum's `anim_frame_warp_2d`.
pub fn warp_2d(img: &RgbImage, motion: &Motion2D, border: Border) -> RgbImage {
    let m = motion.matrix(img.width(), img.height());
    warp_perspective(img, &m, border)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_exact() {
        let img = RgbImage::from_fn(16, 8, |x, y| image::Rgb([(x * 13) as u8, (y * 29) as u8, (x * y) as u8]));
        for b in [Border::Replicate, Border::Wrap, Border::Reflect, Border::Zero] {
            assert_eq!(warp_2d(&img, &Motion2D::IDENTITY, b), img);
        }
    }

    #[test]
    fn translation_moves_content_right_and_down() {
        let mut img = RgbImage::new(16, 16);
        img.put_pixel(4, 4, image::Rgb([255, 255, 255]));
        let m = Motion2D { translation_x: 3.0, translation_y: 2.0, ..Motion2D::IDENTITY };
        let out = warp_2d(&img, &m, Border::Zero);
        assert_eq!(out.get_pixel(7, 6).0, [255, 255, 255]);
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
