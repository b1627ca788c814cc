//! Hybrid motion "Perspective" and "Affine": the video's motion between two frames as a matrix
//! (Deforum's `get_transformation_matrix_from_images`), found by feature matching and RANSAC.
//!
//! Deforum uses OpenCV's SIFT, a brute-force k=2 matcher with Lowe's ratio 0.75, then
//! `findHomography(RANSAC, 5 px)` or `estimateAffinePartial2D(RANSAC, 3 px)`; with 8 good
//! matches or fewer the motion is the identity. anim keeps the matcher, the ratio, the identity
//! rule and the estimators' thresholds, iteration caps and confidences, and replaces SIFT with a
//! single-scale detector and descriptor written here: Shi-Tomasi corners (sub-pixel peaks) with a
//! SIFT-like 4x4x8 gradient-orientation histogram. Hand-written because no crate the project
//! already depends on has one (imageproc is not a dependency; `akaze`/`cv-*` pull large trees
//! and are little kept), and consecutive video frames differ by small rotations and zooms, which
//! an upright single-scale descriptor matches well. It is not rotation- or scale-invariant:
//! motions beyond about 10 degrees or 20 % zoom between two frames find few matches (then the
//! identity). Exact parity with SIFT's keypoints is not a goal; the matrix is (tests/hybrid.rs).
//!
//! Everything is deterministic: RANSAC draws from a fixed-seed Mersenne Twister created for
//! each estimate, so a frame is the same across runs and after a resume.

use image::{GrayImage, RgbImage};
use nalgebra::{DMatrix, Matrix3, Matrix4, SymmetricEigen, Vector4};
use rand_mt::Mt64;
use rayon::prelude::*;

use crate::camera::warp2d::{self, Mat3};
use crate::scene::Border;

/// The identity homography.
pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
/// At most this many keypoints per image (the strongest corners).
pub const MAX_KEYPOINTS: usize = 1000;
/// With this many good matches or fewer, the motion is the identity (Deforum's rule).
pub const MIN_MATCHES: usize = 8;
/// Lowe's ratio test: the best match's distance below this times the second best's.
pub const RATIO: f32 = 0.75;
/// RANSAC's iteration cap (OpenCV's default for both estimators).
pub const MAX_ITERS: usize = 2000;
/// `findHomography`'s reprojection threshold in pixels (Deforum passes 5.0).
pub const HOMOGRAPHY_THRESHOLD: f64 = 5.0;
/// `estimateAffinePartial2D`'s default reprojection threshold in pixels.
pub const AFFINE_THRESHOLD: f64 = 3.0;
/// Frames larger than this on either side are refused by [`matches`] (it returns none).
pub const MAX_SIDE: u32 = 16384;

/// Pixels kept clear of the border for the descriptor's 16x16 window.
const MARGIN: u32 = 10;
/// Descriptor length: 4x4 cells of 8 orientation bins.
const DESC: usize = 128;
/// RANSAC's seed (any fixed value).
const SEED: u64 = 0x5eed_0fab_c0ff_ee00;

/// A corner and its descriptor.
struct Keypoint {
    x: f64,
    y: f64,
    desc: [f32; DESC],
}

/// Separable Gaussian blur of a float image (edges replicated), radius `ceil(3σ)`.
fn blur(src: &[f32], w: usize, h: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let mut tmp = vec![0f32; w * h];
    tmp.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x as isize + j as isize - r).clamp(0, w as isize - 1) as usize;
                acc += kv * src[y * w + xx];
            }
            *out = acc;
        }
    });
    let mut out = vec![0f32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - r).clamp(0, h as isize - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            *o = acc;
        }
    });
    out
}

/// Corners and descriptors of `img`, strongest first, at most [`MAX_KEYPOINTS`].
fn keypoints(img: &GrayImage) -> Vec<Keypoint> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.width() <= 2 * MARGIN + 2 || img.height() <= 2 * MARGIN + 2 {
        return Vec::new();
    }
    let raw: Vec<f32> = img.as_raw().iter().map(|&v| f32::from(v)).collect();
    let smooth = blur(&raw, w, h, 1.0);
    // central-difference gradients (zero on the outer ring)
    let mut gx = vec![0f32; w * h];
    let mut gy = vec![0f32; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            gx[i] = 0.5 * (smooth[i + 1] - smooth[i - 1]);
            gy[i] = 0.5 * (smooth[i + w] - smooth[i - w]);
        }
    }
    let xx = blur(&gx.iter().map(|v| v * v).collect::<Vec<_>>(), w, h, 1.5);
    let yy = blur(&gy.iter().map(|v| v * v).collect::<Vec<_>>(), w, h, 1.5);
    let xy = blur(
        &gx.iter().zip(&gy).map(|(a, b)| a * b).collect::<Vec<_>>(),
        w,
        h,
        1.5,
    );
    // Shi-Tomasi: the smaller eigenvalue of the structure tensor
    let resp: Vec<f32> = (0..w * h)
        .map(|i| {
            let (a, b, c) = (xx[i], yy[i], xy[i]);
            0.5 * (a + b) - (0.25 * (a - b) * (a - b) + c * c).sqrt()
        })
        .collect();
    let max = resp.iter().copied().fold(0f32, f32::max);
    // flat images: nothing above a small absolute floor (grey levels squared per pixel²)
    let floor = (0.001 * max).max(0.5);
    let m = MARGIN as usize;
    let mut cands: Vec<(f32, usize, usize)> = Vec::new();
    for y in m..h - m {
        for x in m..w - m {
            let r = resp[y * w + x];
            if r <= floor {
                continue;
            }
            // 3x3 non-maximum suppression; ties broken by position so the result is unique
            let mut peak = true;
            'n: for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    if dx == 0 && dy == 0 {
                        continue;
                    }
                    let j = ((y as isize + dy) as usize) * w + (x as isize + dx) as usize;
                    if resp[j] > r || (resp[j] == r && (dy, dx) < (0, 0)) {
                        peak = false;
                        break 'n;
                    }
                }
            }
            if peak {
                cands.push((r, x, y));
            }
        }
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.2, a.1).cmp(&(b.2, b.1))));
    cands.truncate(MAX_KEYPOINTS);
    cands
        .par_iter()
        .map(|&(_, x, y)| {
            // sub-pixel peak: a parabola through the response along each axis
            let at = |x: usize, y: usize| f64::from(resp[y * w + x]);
            let sub = |l: f64, c: f64, r: f64| {
                let d = l - 2.0 * c + r;
                if d < 0.0 {
                    (0.5 * (l - r) / d).clamp(-0.5, 0.5)
                } else {
                    0.0
                }
            };
            let ox = sub(at(x - 1, y), at(x, y), at(x + 1, y));
            let oy = sub(at(x, y - 1), at(x, y), at(x, y + 1));
            Keypoint {
                x: x as f64 + ox,
                y: y as f64 + oy,
                desc: describe(&gx, &gy, w, x, y),
            }
        })
        .collect()
}

/// A SIFT-like descriptor at (x, y), upright, over a 16x16 window: 4x4 cells of 8 orientation
/// bins, Gaussian-weighted, bilinear in space and orientation, normalised, clipped at 0.2 and
/// normalised again.
fn describe(gx: &[f32], gy: &[f32], w: usize, x: usize, y: usize) -> [f32; DESC] {
    let mut d = [0f32; DESC];
    for dy in -8i32..8 {
        for dx in -8i32..8 {
            let i = (y as i32 + dy) as usize * w + (x as i32 + dx) as usize;
            let (u, v) = (gx[i], gy[i]);
            let mag = (u * u + v * v).sqrt();
            if mag == 0.0 {
                continue;
            }
            let (cx, cy) = (dx as f32 + 0.5, dy as f32 + 0.5);
            let wgt = mag * (-(cx * cx + cy * cy) / (2.0 * 8.0 * 8.0)).exp();
            // cell coordinates: centres at -6, -2, 2, 6
            let fx = (cx + 8.0) / 4.0 - 0.5;
            let fy = (cy + 8.0) / 4.0 - 0.5;
            let mut ang = v.atan2(u);
            if ang < 0.0 {
                ang += std::f32::consts::TAU;
            }
            let fo = ang / std::f32::consts::TAU * 8.0;
            let (x0, y0, o0) = (fx.floor(), fy.floor(), fo.floor());
            let (ax, ay, ao) = (fx - x0, fy - y0, fo - o0);
            for (iy, wy) in [(y0 as i32, 1.0 - ay), (y0 as i32 + 1, ay)] {
                if !(0..4).contains(&iy) {
                    continue;
                }
                for (ix, wx) in [(x0 as i32, 1.0 - ax), (x0 as i32 + 1, ax)] {
                    if !(0..4).contains(&ix) {
                        continue;
                    }
                    for (io, wo) in [(o0 as i32, 1.0 - ao), (o0 as i32 + 1, ao)] {
                        let io = io.rem_euclid(8) as usize;
                        d[(iy as usize * 4 + ix as usize) * 8 + io] += wgt * wy * wx * wo;
                    }
                }
            }
        }
    }
    for _ in 0..2 {
        let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            d.iter_mut().for_each(|v| *v = (*v / n).min(0.2));
        }
    }
    let n = d.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n > 0.0 {
        d.iter_mut().for_each(|v| *v /= n);
    }
    d
}

/// Point correspondences from `a` to `b`: each keypoint of `a` with its nearest neighbour in
/// `b` (L2 between descriptors) where that is nearer than [`RATIO`] times the second nearest.
/// Images of different sizes, or larger than [`MAX_SIDE`], give none.
pub fn matches(a: &GrayImage, b: &GrayImage) -> Vec<([f64; 2], [f64; 2])> {
    if a.dimensions() != b.dimensions() || a.width() > MAX_SIDE || a.height() > MAX_SIDE {
        return Vec::new();
    }
    let (ka, kb) = rayon::join(|| keypoints(a), || keypoints(b));
    if kb.len() < 2 {
        return Vec::new();
    }
    ka.par_iter()
        .filter_map(|p| {
            let (mut d1, mut d2, mut best) = (f32::INFINITY, f32::INFINITY, 0);
            for (j, q) in kb.iter().enumerate() {
                let d: f32 = p
                    .desc
                    .iter()
                    .zip(&q.desc)
                    .map(|(u, v)| (u - v) * (u - v))
                    .sum();
                if d < d1 {
                    (d2, d1, best) = (d1, d, j);
                } else if d < d2 {
                    d2 = d;
                }
            }
            (d1 < RATIO * RATIO * d2).then(|| ([p.x, p.y], [kb[best].x, kb[best].y]))
        })
        .collect()
}

/// Deforum's Perspective matrix from `a` (video frame t-1) to `b` (frame t): a homography by
/// [`find_homography`]; the identity with [`MIN_MATCHES`] good matches or fewer, or when RANSAC
/// finds no model (Deforum crashes there).
pub fn perspective(a: &GrayImage, b: &GrayImage) -> Mat3 {
    let m = matches(a, b);
    if m.len() <= MIN_MATCHES {
        return IDENTITY;
    }
    find_homography(&m, HOMOGRAPHY_THRESHOLD, MAX_ITERS, 0.995).unwrap_or(IDENTITY)
}

/// Deforum's Affine matrix (2x3) from `a` to `b`: a 4-DoF similarity by
/// [`estimate_affine_partial`]; the identity as [`perspective`].
pub fn affine(a: &GrayImage, b: &GrayImage) -> [[f64; 3]; 2] {
    let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let m = matches(a, b);
    if m.len() <= MIN_MATCHES {
        return id;
    }
    estimate_affine_partial(&m, AFFINE_THRESHOLD, MAX_ITERS, 0.99).unwrap_or(id)
}

/// A 2x3 affine matrix as a 3x3 homography.
pub fn affine_to_3x3(m: &[[f64; 3]; 2]) -> Mat3 {
    [m[0], m[1], [0.0, 0.0, 1.0]]
}

/// `m·p` in Cartesian coordinates (`None` at infinity).
pub fn project(m: &Mat3, p: [f64; 2]) -> Option<[f64; 2]> {
    let z = m[2][0] * p[0] + m[2][1] * p[1] + m[2][2];
    if z.abs() < 1e-12 {
        return None;
    }
    Some([
        (m[0][0] * p[0] + m[0][1] * p[1] + m[0][2]) / z,
        (m[1][0] * p[0] + m[1][1] * p[1] + m[1][2]) / z,
    ])
}

/// How many RANSAC iterations reach `confidence` with an inlier fraction `inliers/n` and
/// minimal sets of `k` (OpenCV's `RANSACUpdateNumIters`), at most `max`.
fn iterations(confidence: f64, inliers: usize, n: usize, k: i32, max: usize) -> usize {
    let ep = 1.0 - inliers as f64 / n as f64;
    let num = (1.0 - confidence).max(f64::MIN_POSITIVE).ln();
    let denom = 1.0 - (1.0 - ep).powi(k);
    if denom < f64::MIN_POSITIVE {
        return 0;
    }
    let denom = denom.ln();
    if denom >= 0.0 || -num >= max as f64 * (-denom) {
        return max;
    }
    (num / denom).round().clamp(0.0, max as f64) as usize
}

/// `k` distinct indices below `n` from `rng`.
fn sample(rng: &mut Mt64, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = Vec::with_capacity(k);
    while idx.len() < k {
        let i = (rng.next_u64() % n as u64) as usize;
        if !idx.contains(&i) {
            idx.push(i);
        }
    }
    idx
}

/// Generic RANSAC: `fit` a model to a minimal set of `k` (or to all inliers), count inliers
/// within `threshold` px, adaptive iteration count; then refit on the inliers until they no
/// longer change (at most 10 rounds). `None` when no minimal set gives a model.
fn ransac(
    pts: &[([f64; 2], [f64; 2])],
    k: usize,
    threshold: f64,
    max_iters: usize,
    confidence: f64,
    fit: impl Fn(&[([f64; 2], [f64; 2])]) -> Option<Mat3>,
) -> Option<Mat3> {
    let n = pts.len();
    if n < k {
        return None;
    }
    let t2 = threshold * threshold;
    let inliers = |m: &Mat3| -> Vec<bool> {
        pts.iter()
            .map(|(s, d)| {
                project(m, *s).is_some_and(|p| (p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2) <= t2)
            })
            .collect()
    };
    let mut rng = Mt64::new(SEED);
    let mut best: Option<(Mat3, usize)> = None;
    let mut needed = max_iters;
    let mut it = 0;
    while it < needed {
        it += 1;
        let set: Vec<_> = sample(&mut rng, n, k).iter().map(|&i| pts[i]).collect();
        let Some(m) = fit(&set) else { continue };
        let count = inliers(&m).iter().filter(|&&b| b).count();
        if best.as_ref().is_none_or(|b| count > b.1) {
            best = Some((m, count));
            needed = iterations(confidence, count, n, k as i32, max_iters);
        }
    }
    let (mut m, _) = best?;
    let mut mask = inliers(&m);
    for _ in 0..10 {
        let set: Vec<_> = pts
            .iter()
            .zip(&mask)
            .filter(|(_, b)| **b)
            .map(|(p, _)| *p)
            .collect();
        if set.len() < k {
            break;
        }
        let Some(refit) = fit(&set) else { break };
        let next = inliers(&refit);
        m = refit;
        if next == mask {
            break;
        }
        mask = next;
    }
    Some(m)
}

/// Whether three of the points in `p` lie on a line (a degenerate minimal set).
fn collinear(p: &[[f64; 2]]) -> bool {
    for i in 0..p.len() {
        for j in i + 1..p.len() {
            for l in j + 1..p.len() {
                let (a, b, c) = (p[i], p[j], p[l]);
                let cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
                let scale = ((b[0] - a[0]).hypot(b[1] - a[1])) * ((c[0] - a[0]).hypot(c[1] - a[1]));
                if cross.abs() <= 1e-6 * scale.max(1e-12) {
                    return true;
                }
            }
        }
    }
    false
}

/// Hartley's normalisation of `p`: the centroid to the origin, mean distance √2.
fn normaliser(p: impl Iterator<Item = [f64; 2]> + Clone) -> Matrix3<f64> {
    let n = p.clone().count() as f64;
    let (cx, cy) = p.clone().fold((0.0, 0.0), |a, q| (a.0 + q[0], a.1 + q[1]));
    let (cx, cy) = (cx / n, cy / n);
    let mean = p.map(|q| (q[0] - cx).hypot(q[1] - cy)).sum::<f64>() / n;
    let s = if mean > 0.0 { 2f64.sqrt() / mean } else { 1.0 };
    Matrix3::new(s, 0.0, -s * cx, 0.0, s, -s * cy, 0.0, 0.0, 1.0)
}

/// The normalised DLT homography through `pts` (least squares in the algebraic error for more
/// than four); `None` for degenerate sets.
fn homography_dlt(pts: &[([f64; 2], [f64; 2])]) -> Option<Mat3> {
    if pts.len() < 4 {
        return None;
    }
    if pts.len() == 4 {
        let s: Vec<_> = pts.iter().map(|p| p.0).collect();
        let d: Vec<_> = pts.iter().map(|p| p.1).collect();
        if collinear(&s) || collinear(&d) {
            return None;
        }
    }
    let ts = normaliser(pts.iter().map(|p| p.0));
    let td = normaliser(pts.iter().map(|p| p.1));
    let mut ata = DMatrix::<f64>::zeros(9, 9);
    for (s, d) in pts {
        let a = ts * nalgebra::Vector3::new(s[0], s[1], 1.0);
        let b = td * nalgebra::Vector3::new(d[0], d[1], 1.0);
        let (x, y, u, v) = (a[0], a[1], b[0], b[1]);
        let r1 = [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u];
        let r2 = [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v];
        for r in [r1, r2] {
            for i in 0..9 {
                for j in 0..9 {
                    ata[(i, j)] += r[i] * r[j];
                }
            }
        }
    }
    let eig = SymmetricEigen::new(ata);
    let (imin, _) = eig
        .eigenvalues
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))?;
    let h = eig.eigenvectors.column(imin);
    let hn = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    let m = td.try_inverse()? * hn * ts;
    let z = m[(2, 2)];
    if z.abs() < 1e-12 || !m.iter().all(|v| v.is_finite()) {
        return None;
    }
    let m = m / z;
    Some([
        [m[(0, 0)], m[(0, 1)], m[(0, 2)]],
        [m[(1, 0)], m[(1, 1)], m[(1, 2)]],
        [m[(2, 0)], m[(2, 1)], m[(2, 2)]],
    ])
}

/// A homography from the correspondences `(src, dst)` by RANSAC (4-point normalised DLT,
/// inliers within `threshold` px of `dst`, at most `max_iters` draws, adaptive to
/// `confidence`), refit by least squares on the inliers: `cv2.findHomography(src, dst, RANSAC,
/// threshold)`. `None` with fewer than 4 points or no model.
pub fn find_homography(
    pts: &[([f64; 2], [f64; 2])],
    threshold: f64,
    max_iters: usize,
    confidence: f64,
) -> Option<Mat3> {
    ransac(pts, 4, threshold, max_iters, confidence, homography_dlt)
}

/// The 4-DoF similarity `[[a, -b, tx], [b, a, ty]]` through `pts` by linear least squares
/// (exact for two distinct points); `None` when degenerate.
fn similarity_fit(pts: &[([f64; 2], [f64; 2])]) -> Option<Mat3> {
    let mut ata = Matrix4::<f64>::zeros();
    let mut atb = Vector4::<f64>::zeros();
    for (s, d) in pts {
        let r1 = Vector4::new(s[0], -s[1], 1.0, 0.0);
        let r2 = Vector4::new(s[1], s[0], 0.0, 1.0);
        ata += r1 * r1.transpose() + r2 * r2.transpose();
        atb += r1 * d[0] + r2 * d[1];
    }
    if pts.len() == 2 {
        let (a, b) = (pts[0].0, pts[1].0);
        if (a[0] - b[0]).hypot(a[1] - b[1]) < 1e-9 {
            return None;
        }
    }
    let p = ata.lu().solve(&atb)?;
    if !p.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some([[p[0], -p[1], p[2]], [p[1], p[0], p[3]], [0.0, 0.0, 1.0]])
}

/// A 4-DoF similarity (rotation, uniform scale, translation) from `(src, dst)` by RANSAC
/// (2-point minimal sets, inliers within `threshold` px, at most `max_iters` draws, adaptive
/// to `confidence`), refit by least squares on the inliers: `cv2.estimateAffinePartial2D`.
/// `None` with fewer than 2 points or no model.
pub fn estimate_affine_partial(
    pts: &[([f64; 2], [f64; 2])],
    threshold: f64,
    max_iters: usize,
    confidence: f64,
) -> Option<[[f64; 3]; 2]> {
    ransac(pts, 2, threshold, max_iters, confidence, similarity_fit).map(|m| [m[0], m[1]])
}

/// `cv2.warpPerspective(img, m, (w, h), INTER_LINEAR, BORDER_REFLECT_101)`: the frame padded
/// with mirrored pixels (the edge pixel not repeated) as far as `m` reaches, then warped with
/// [`warp2d::warp_perspective`] and cropped. warp2d has no REFLECT_101 border; the padding
/// gives the same samples (the coordinates pass through the resampler's float32 arithmetic
/// shifted by the pad, which can move a value by one grey level).
pub fn warp_reflect101(img: &RgbImage, m: &Mat3) -> RgbImage {
    let (w, h) = img.dimensions();
    if w < 2 || h < 2 || *m == IDENTITY {
        return img.clone();
    }
    let Some(inv) = warp2d::invert(m) else {
        return RgbImage::new(w, h);
    };
    // how far outside the frame the warp samples (corners; a homography folding through
    // infinity samples everywhere: the pad is capped at the frame size)
    let (mut reach_x, mut reach_y) = (0f64, 0f64);
    for (x, y) in [
        (0.0, 0.0),
        (w as f64, 0.0),
        (0.0, h as f64),
        (w as f64, h as f64),
    ] {
        match project(&inv, [x, y]) {
            Some(p) => {
                reach_x = reach_x.max(-p[0]).max(p[0] - w as f64);
                reach_y = reach_y.max(-p[1]).max(p[1] - h as f64);
            }
            None => (reach_x, reach_y) = (f64::INFINITY, f64::INFINITY),
        }
    }
    let px = (reach_x.ceil() as i64 + 2).clamp(2, i64::from(w)) as u32;
    let py = (reach_y.ceil() as i64 + 2).clamp(2, i64::from(h)) as u32;
    let fold = |p: i64, n: i64| -> u32 {
        // REFLECT_101: gfedcb|abcdefgh|gfedcba
        let period = 2 * n - 2;
        let q = p.rem_euclid(period);
        (if q < n { q } else { period - q }) as u32
    };
    let (pw, ph) = (w + 2 * px, h + 2 * py);
    let padded = RgbImage::from_fn(pw, ph, |x, y| {
        *img.get_pixel(
            fold(i64::from(x) - i64::from(px), i64::from(w)),
            fold(i64::from(y) - i64::from(py), i64::from(h)),
        )
    });
    let t = |dx: f64, dy: f64| [[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]];
    let shifted = warp2d::matmul(
        &warp2d::matmul(&t(f64::from(px), f64::from(py)), m),
        &t(-f64::from(px), -f64::from(py)),
    );
    let out = warp2d::warp_perspective(&padded, &shifted, Border::Reflect);
    image::imageops::crop_imm(&out, px, py, w, h).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_count_follows_opencv() {
        assert_eq!(iterations(0.995, 100, 100, 4, 2000), 0);
        assert_eq!(iterations(0.995, 0, 100, 4, 2000), 2000);
        // half inliers, 4-point sets: log(0.005) / log(1 - 1/16) = 82.1
        assert_eq!(iterations(0.995, 50, 100, 4, 2000), 82);
    }

    #[test]
    fn exact_models_from_minimal_sets() {
        let h: Mat3 = [[1.01, 0.02, -2.0], [-0.015, 0.995, 1.5], [4e-5, -3e-5, 1.0]];
        let src = [
            [10.0, 12.0],
            [200.0, 15.0],
            [190.0, 170.0],
            [20.0, 180.0],
            [90.0, 70.0],
        ];
        let pts: Vec<_> = src.iter().map(|&s| (s, project(&h, s).unwrap())).collect();
        let got = homography_dlt(&pts).unwrap();
        for (a, b) in got.iter().flatten().zip(h.iter().flatten()) {
            assert!((a - b).abs() < 1e-9, "{got:?}");
        }
        let s: Mat3 = [[0.99, -0.03, 4.0], [0.03, 0.99, -2.5], [0.0, 0.0, 1.0]];
        let pts: Vec<_> = src[..2]
            .iter()
            .map(|&p| (p, project(&s, p).unwrap()))
            .collect();
        let got = similarity_fit(&pts).unwrap();
        for (a, b) in got.iter().flatten().zip(s.iter().flatten()) {
            assert!((a - b).abs() < 1e-9, "{got:?}");
        }
        assert!(collinear(&[[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]));
    }

    #[test]
    fn reflect101_padding_is_a_no_op_for_the_identity_and_mirrors_without_the_edge() {
        let img = RgbImage::from_fn(8, 6, |x, y| image::Rgb([(x * 30) as u8, (y * 40) as u8, 7]));
        assert_eq!(warp_reflect101(&img, &IDENTITY), img);
        // a whole-pixel shift right by 2: column 0 takes source column -2 -> 2 (REFLECT_101)
        let out = warp_reflect101(&img, &[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        assert_eq!(out.get_pixel(0, 3), img.get_pixel(2, 3));
        assert_eq!(out.get_pixel(1, 3), img.get_pixel(1, 3));
        assert_eq!(out.get_pixel(5, 3), img.get_pixel(3, 3));
    }
}
