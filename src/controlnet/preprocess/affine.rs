//! The affine crop of DWPose's pose model input: `cv2.getAffineTransform` (a 6x6 system in
//! double, Gaussian elimination with partial pivoting, as `camera::warp2d` solves OpenCV's
//! perspective system) and `cv2.warpAffine(..., INTER_LINEAR)` on 8-bit images with a black
//! border (OpenCV's fixed point: coordinates in 1/1024 then 1/32 pixel, 15-bit bilinear
//! weights).

/// A 2x3 affine matrix, row-major.
pub(crate) type Affine = [[f64; 3]; 2];

/// The affine map taking the three `src` points to `dst`, as `cv2.getAffineTransform`;
/// `None` when the points are collinear.
pub(crate) fn affine_transform(src: &[[f32; 2]; 3], dst: &[[f32; 2]; 3]) -> Option<Affine> {
    let mut a = [[0f64; 6]; 6];
    let mut b = [0f64; 6];
    for i in 0..3 {
        let (sx, sy) = (src[i][0] as f64, src[i][1] as f64);
        a[2 * i] = [sx, sy, 1.0, 0.0, 0.0, 0.0];
        a[2 * i + 1] = [0.0, 0.0, 0.0, sx, sy, 1.0];
        b[2 * i] = dst[i][0] as f64;
        b[2 * i + 1] = dst[i][1] as f64;
    }
    for i in 0..6 {
        let k = (i..6).fold(i, |k, j| if a[j][i].abs() > a[k][i].abs() { j } else { k });
        if a[k][i].abs() < f64::EPSILON * 100.0 || !a[k][i].is_finite() {
            return None;
        }
        a.swap(i, k);
        b.swap(i, k);
        let d = -1.0 / a[i][i];
        for j in i + 1..6 {
            let alpha = a[j][i] * d;
            let (top, rest) = a.split_at_mut(j);
            for (x, p) in rest[0][i + 1..].iter_mut().zip(&top[i][i + 1..]) {
                *x += alpha * p;
            }
            b[j] += alpha * b[i];
        }
    }
    for i in (0..6).rev() {
        let mut s = b[i];
        for k in i + 1..6 {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some([[b[0], b[1], b[2]], [b[3], b[4], b[5]]])
}

/// Rounds half to even and saturates to i32, as `saturate_cast<int>(double)` (NaN gives 0).
fn round_i32(v: f64) -> i64 {
    v.round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i64
}

/// `cv2.warpAffine(src, m, (dw, dh), flags=INTER_LINEAR)` for a `w`×`h` image of 3 interleaved
/// 8-bit channels: each destination pixel samples the source at `m⁻¹ · (x, y)` bilinearly, taps
/// outside the source reading black.
pub(crate) fn warp_affine(
    src: &[u8],
    w: usize,
    h: usize,
    m: &Affine,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    const AB_BITS: i64 = 10;
    const AB_SCALE: f64 = (1 << AB_BITS) as f64;
    const INTER_BITS: i64 = 5;
    const TAB: i64 = 1 << INTER_BITS;
    const ROUND_DELTA: i64 = (1 << AB_BITS) / TAB / 2;
    // the inverse map, as OpenCV inverts it
    let (mut m0, mut m1, mut m2) = (m[0][0], m[0][1], m[0][2]);
    let (mut m3, mut m4, mut m5) = (m[1][0], m[1][1], m[1][2]);
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m4 * d, m0 * d);
    m0 = a11;
    m1 *= -d;
    m3 *= -d;
    m4 = a22;
    let b1 = -m0 * m2 - m1 * m5;
    let b2 = -m3 * m2 - m4 * m5;
    m2 = b1;
    m5 = b2;

    // OpenCV keeps these in 32-bit ints (a map far outside the image overflows there); in 64
    // bits the sums cannot overflow, and far coordinates read black either way
    let adelta: Vec<i64> = (0..dw)
        .map(|x| round_i32(m0 * x as f64 * AB_SCALE))
        .collect();
    let bdelta: Vec<i64> = (0..dw)
        .map(|x| round_i32(m3 * x as f64 * AB_SCALE))
        .collect();
    let (wi, hi) = (w as i64, h as i64);
    let px = |x: i64, y: i64, c: usize| -> i64 {
        if x >= 0 && y >= 0 && x < wi && y < hi {
            src[(y as usize * w + x as usize) * 3 + c] as i64
        } else {
            0
        }
    };
    let mut out = vec![0u8; dw * dh * 3];
    for (y, row) in out.chunks_mut(dw * 3).enumerate() {
        let x0 = round_i32((m1 * y as f64 + m2) * AB_SCALE) + ROUND_DELTA;
        let y0 = round_i32((m4 * y as f64 + m5) * AB_SCALE) + ROUND_DELTA;
        for (x, d) in row.chunks_mut(3).enumerate() {
            let xx = (x0 + adelta[x]) >> (AB_BITS - INTER_BITS);
            let yy = (y0 + bdelta[x]) >> (AB_BITS - INTER_BITS);
            let sx = (xx >> INTER_BITS).clamp(i16::MIN as i64, i16::MAX as i64);
            let sy = (yy >> INTER_BITS).clamp(i16::MIN as i64, i16::MAX as i64);
            let (fx, fy) = (xx & (TAB - 1), yy & (TAB - 1));
            // 15-bit weights: (1 - fx)(1 - fy), fx(1 - fy), (1 - fx)fy, fx·fy
            let w = [
                (TAB - fx) * (TAB - fy) * 32,
                fx * (TAB - fy) * 32,
                (TAB - fx) * fy * 32,
                fx * fy * 32,
            ];
            if sx >= wi || sx + 1 < 0 || sy >= hi || sy + 1 < 0 {
                continue;
            }
            for (c, d) in d.iter_mut().enumerate() {
                let v = px(sx, sy, c) * w[0]
                    + px(sx + 1, sy, c) * w[1]
                    + px(sx, sy + 1, c) * w[2]
                    + px(sx + 1, sy + 1, c) * w[3];
                *d = ((v + (1 << 14)) >> 15).clamp(0, 255) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_and_shift_is_solved_exactly() {
        let src = [[10.0, 20.0], [10.0, 0.0], [-10.0, 0.0]];
        let dst = [[144.0, 192.0], [144.0, 48.0], [0.0, 48.0]];
        let m = affine_transform(&src, &dst).unwrap();
        assert!((m[0][0] - 7.2).abs() < 1e-12 && m[0][1].abs() < 1e-12);
        assert!((m[0][2] - 72.0).abs() < 1e-9 && (m[1][2] - 48.0).abs() < 1e-9);
        assert!(affine_transform(&[[0.0, 0.0]; 3], &dst).is_none());
    }

    #[test]
    fn a_map_far_outside_reads_black() {
        let src = vec![200u8; 4 * 4 * 3];
        for m in [
            [[1e-9, 0.0, 5e8], [0.0, 1e-9, 5e8]],
            [[1e9, 0.0, -3e9], [0.0, 1e9, 7e9]],
            [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0]],
        ] {
            assert!(
                warp_affine(&src, 4, 4, &m, 6, 5)
                    .iter()
                    .all(|&v| v == 0 || v == 200)
            );
        }
    }

    #[test]
    fn identity_warp_is_a_copy() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert_eq!(warp_affine(&src, 4, 3, &id, 4, 3), src);
    }
}
