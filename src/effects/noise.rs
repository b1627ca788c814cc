//! Deforum's per-frame noise: a seeded noise image blended into the warped frame,
//! `out = round((1 − a)·img + a·u8(clip(0.5·n + 0.5, 0, 1)·255))`.
//!
//! `perlin` is Deforum's: Gaussian noise from torch's generator (seeded with the frame seed)
//! multiplied by a Perlin field remapped to [0, 1], both drawn at the size floored to multiples
//! of 64 and resized back with nearest-neighbour. `uniform` is uniform noise, which Deforum's setting
//! promises (its code draws Gaussian noise; docs/deforum-differences.md).

use image::RgbImage;
use rayon::prelude::*;

use crate::diffusion::TorchRng;

/// The kind of noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseKind {
    /// Uniform noise in [-1, 1].
    Uniform,
    /// Gaussian noise times a Perlin field (octaves, persistence, grid resolution).
    Perlin {
        /// Number of octaves.
        octaves: u32,
        /// Amplitude factor per octave.
        persistence: f64,
        /// Grid cells across the (64-floored) width and height at the first octave.
        res: (usize, usize),
    },
}

/// Adds noise of weight `amount` to `img`, drawn from a generator seeded with `seed`.
pub fn add_noise(img: &RgbImage, amount: f64, seed: i64, kind: NoiseKind) -> RgbImage {
    add_noise_masked(img, amount, seed, kind, None)
}

/// [`add_noise`] with Deforum's noise mask: the noise is 0 where `mask` is below 128, so there the
/// frame is still blended toward grey 127 with weight `amount`, as Deforum does.
pub fn add_noise_masked(
    img: &RgbImage,
    amount: f64,
    seed: i64,
    kind: NoiseKind,
    mask: Option<&image::GrayImage>,
) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if amount == 0.0 || w == 0 || h == 0 {
        return img.clone();
    }
    let mut rng = TorchRng::new(seed as u64);
    // noise planes in Deforum's channel order (BGR): plane c belongs to RGB channel 2 - c
    let (nh, nw, planes): (usize, usize, Vec<f32>) = match kind {
        NoiseKind::Uniform => {
            let u = rng.rand(3 * h * w);
            (h, w, u.iter().map(|x| 2.0 * x - 1.0).collect())
        }
        NoiseKind::Perlin {
            octaves,
            persistence,
            res,
        } => {
            let (h64, w64) = ((h - h % 64).max(64.min(h)), (w - w % 64).max(64.min(w)));
            let mut n = rng.randn(3 * h64 * w64);
            let field = perlin_octaves(&mut rng, (h64, w64), res, octaves, persistence);
            n.par_chunks_mut(h64 * w64).for_each(|plane| {
                for (v, f) in plane.iter_mut().zip(&field) {
                    *v *= (f + 1.0) / 2.0;
                }
            });
            (h64, w64, n)
        }
    };
    let a = amount as f32;
    // torch's nearest interpolation: src = floor(dst · in / out)
    let nearest =
        |d: usize, n: usize, len: usize| ((d as f32 * (n as f32 / len as f32)) as usize).min(n - 1);
    let sxs: Vec<usize> = (0..w).map(|x| nearest(x, nw, w)).collect();
    let mut out = RgbImage::new(w as u32, h as u32);
    let src = img.as_raw();
    // the noise at full size and no mask: contiguous rows, a loop the compiler vectorises
    let direct = (nh, nw) == (h, w) && mask.is_none();
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::has("avx2");
    out.par_chunks_mut(w * 3).enumerate().for_each(|(y, dst)| {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        if direct {
            let n: [&[f32]; 3] =
                std::array::from_fn(|c| &planes[(c * h + y) * w..(c * h + y + 1) * w]);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the processor has AVX2, checked above
                unsafe { blend_row_avx2(row, dst, n, a) };
                return;
            }
            blend_row(row, dst, n, a);
            return;
        }
        let sy = nearest(y, nh, h);
        for (x, &sx) in sxs.iter().enumerate() {
            for c in 0..3 {
                let mut n = planes[c * nh * nw + sy * nw + sx];
                if let Some(m) = mask
                    && m.get_pixel(x as u32, y as u32).0[0] < 128
                {
                    n = 0.0;
                }
                let rgb = 2 - c;
                dst[x * 3 + rgb] = blend(row[x * 3 + rgb], n, a);
            }
        }
    });
    out
}

/// One value of the noise blend: the noise `n` as Deforum's uint8, then
/// `round((1 − a)·v + a·noise)`.
#[inline(always)]
fn blend(v: u8, n: f32, a: f32) -> u8 {
    let nu8 = ((n * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0) as u8 as f32;
    round_to_u8((1.0 - a) * v as f32 + a * nu8)
}

/// [`blend`] over a row: `noise[c]` is the noise of RGB channel `2 − c`, one value per pixel.
#[inline(always)]
fn blend_row(row: &[u8], dst: &mut [u8], noise: [&[f32]; 3], a: f32) {
    let w = dst.len() / 3;
    let (row, dst) = (&row[..w * 3], &mut dst[..w * 3]);
    let (n0, n1, n2) = (&noise[0][..w], &noise[1][..w], &noise[2][..w]);
    for x in 0..w {
        dst[x * 3 + 2] = blend(row[x * 3 + 2], n0[x], a);
        dst[x * 3 + 1] = blend(row[x * 3 + 1], n1[x], a);
        dst[x * 3] = blend(row[x * 3], n2[x], a);
    }
}

/// [`blend_row`] with AVX2 enabled, so that it vectorises (the same operations per value).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blend_row_avx2(row: &[u8], dst: &mut [u8], noise: [&[f32]; 3], a: f32) {
    blend_row(row, dst, noise, a);
}

/// `v.round_ties_even().clamp(0, 255) as u8`; adding and removing 1.5·2²³ rounds half to even
/// in float arithmetic, without the library call `round_ties_even` becomes on baseline x86-64.
fn round_to_u8(v: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0;
    let v = v.clamp(0.0, 255.0);
    ((v + MAGIC) - MAGIC) as u8
}

fn fade(t: f32) -> f32 {
    6.0 * t.powi(5) - 15.0 * t.powi(4) + 10.0 * t.powi(3)
}

/// One octave of `rand_perlin_2d` on a `shape` grid with `res` cells (gradient angles drawn from
/// `rng` with `torch.rand(res0 + 1, res1 + 1)`).
fn perlin(rng: &mut TorchRng, shape: (usize, usize), res: (usize, usize)) -> Vec<f32> {
    let (r0, r1) = (res.0.max(1), res.1.max(1));
    let grads: Vec<(f32, f32)> = rng
        .rand((r0 + 1) * (r1 + 1))
        .iter()
        .map(|u| {
            let a = 2.0 * std::f32::consts::PI * u;
            (a.cos(), a.sin())
        })
        .collect();
    let (d0, d1) = ((shape.0 / r0).max(1), (shape.1 / r1).max(1));
    let (delta0, delta1) = (r0 as f32 / shape.0 as f32, r1 as f32 / shape.1 as f32);
    // per column: position in its cell and its fade (the values the per-pixel formula would
    // compute, hoisted out of the rows); the runs of columns that share a cell
    let gxs: Vec<f32> = (0..shape.1).map(|x| (x as f32 * delta1) % 1.0).collect();
    let t1s: Vec<f32> = gxs.iter().map(|&g| fade(g)).collect();
    let mut cells: Vec<(usize, usize, usize)> = Vec::new();
    for x in 0..shape.1 {
        let cx = (x / d1).min(r1 - 1);
        match cells.last_mut() {
            Some(c) if c.2 == cx => c.1 = x + 1,
            _ => cells.push((x, x + 1, cx)),
        }
    }
    let cols = Cols {
        gxs: &gxs,
        t1s: &t1s,
        cells: &cells,
        grads: &grads,
        stride: r1 + 1,
    };
    let mut out = vec![0.0f32; shape.0 * shape.1];
    #[cfg(target_arch = "x86_64")]
    let avx2 = crate::cpu::has("avx2");
    out.par_chunks_exact_mut(shape.1)
        .enumerate()
        .for_each(|(y, row)| {
            let gy = (y as f32 * delta0) % 1.0;
            let t0 = fade(gy);
            let cy = (y / d0).min(r0 - 1);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the processor has AVX2, checked above
                unsafe { perlin_row_avx2(row, (gy, t0), cy, &cols) };
                return;
            }
            perlin_row(row, (gy, t0), cy, &cols);
        });
    out
}

/// What every row of one Perlin octave shares.
struct Cols<'a> {
    /// Per column: its position in its cell.
    gxs: &'a [f32],
    /// Per column: the fade of that position.
    t1s: &'a [f32],
    /// Runs of columns in one cell: start, end, cell.
    cells: &'a [(usize, usize, usize)],
    /// The gradients, `stride` per grid row.
    grads: &'a [(f32, f32)],
    stride: usize,
}

/// One row of a Perlin octave (`gy`: the row's position in its cell `cy`, `t0` its fade), cell
/// by cell, so that the four gradients are constant in the inner loop and it vectorises.
#[inline(always)]
fn perlin_row(row: &mut [f32], (gy, t0): (f32, f32), cy: usize, c: &Cols) {
    let grad = |i: usize, j: usize| c.grads[i * c.stride + j];
    for &(start, end, cx) in c.cells {
        let (g00, g10) = (grad(cy, cx), grad(cy + 1, cx));
        let (g01, g11) = (grad(cy, cx + 1), grad(cy + 1, cx + 1));
        let (gxs, t1s) = (&c.gxs[start..end], &c.t1s[start..end]);
        for ((o, &gx), &t1) in row[start..end].iter_mut().zip(gxs).zip(t1s) {
            let dot = |(g0, g1): (f32, f32), s0: f32, s1: f32| (gy + s0) * g0 + (gx + s1) * g1;
            let n00 = dot(g00, 0.0, 0.0);
            let n10 = dot(g10, -1.0, 0.0);
            let n01 = dot(g01, 0.0, -1.0);
            let n11 = dot(g11, -1.0, -1.0);
            let lerp = |a: f32, b: f32, t: f32| a + t * (b - a);
            *o = std::f32::consts::SQRT_2 * lerp(lerp(n00, n10, t0), lerp(n01, n11, t0), t1);
        }
    }
}

/// [`perlin_row`] with AVX2 enabled, so that it vectorises (the same operations per value).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn perlin_row_avx2(row: &mut [f32], g: (f32, f32), cy: usize, c: &Cols) {
    perlin_row(row, g, cy, c);
}

/// `rand_perlin_2d_octaves`: octaves of doubling frequency and `persistence`-scaled amplitude.
fn perlin_octaves(
    rng: &mut TorchRng,
    shape: (usize, usize),
    res: (usize, usize),
    octaves: u32,
    persistence: f64,
) -> Vec<f32> {
    let mut noise = vec![0.0f32; shape.0 * shape.1];
    let (mut freq, mut amp) = (1usize, 1.0f32);
    for _ in 0..octaves {
        let o = perlin(rng, shape, (freq * res.0, freq * res.1));
        noise
            .par_chunks_mut(shape.1.max(1))
            .zip(o.par_chunks(shape.1.max(1)))
            .for_each(|(n, o)| n.iter_mut().zip(o).for_each(|(n, v)| *n += amp * v));
        freq *= 2;
        amp *= persistence as f32;
    }
    noise
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames without pixels come back as they are (the nearest-index arithmetic underflowed).
    #[test]
    fn empty_frames_are_returned_as_they_are() {
        for (w, h) in [(0, 5), (5, 0), (0, 0)] {
            let img = RgbImage::new(w, h);
            for kind in [
                NoiseKind::Uniform,
                NoiseKind::Perlin {
                    octaves: 4,
                    persistence: 0.5,
                    res: (8, 8),
                },
            ] {
                assert_eq!(add_noise(&img, 0.3, 1, kind).dimensions(), (w, h));
            }
        }
    }

    #[test]
    fn deterministic_and_seeded() {
        let img = RgbImage::from_pixel(64, 64, image::Rgb([120, 60, 200]));
        let k = NoiseKind::Perlin {
            octaves: 4,
            persistence: 0.5,
            res: (8, 8),
        };
        let a = add_noise(&img, 0.3, 42, k);
        assert_eq!(a, add_noise(&img, 0.3, 42, k));
        assert_ne!(a, add_noise(&img, 0.3, 43, k));
        assert_eq!(add_noise(&img, 0.0, 42, k), img);
        let u = add_noise(&img, 0.5, 1, NoiseKind::Uniform);
        let mean = u.as_raw().iter().map(|v| *v as f64).sum::<f64>() / u.as_raw().len() as f64;
        assert!((mean - (0.5 * 126.67 + 0.5 * 127.5)).abs() < 3.0, "{mean}");
    }

    /// Deforum's noise mask: the noise only where the mask is white; elsewhere the frame is
    /// still blended toward grey 127 (noise 0 becomes `to_u8(0.5)`).
    #[test]
    fn the_noise_mask_confines_the_noise() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 90]));
        let k = NoiseKind::Uniform;
        let white = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
        let full = add_noise(&img, 0.4, 9, k);
        assert_eq!(add_noise_masked(&img, 0.4, 9, k, Some(&white)), full);
        let half =
            image::GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 0 } else { 200 }]));
        let got = add_noise_masked(&img, 0.4, 9, k, Some(&half));
        for (x, y, p) in got.enumerate_pixels() {
            if x < 32 {
                let want = img
                    .get_pixel(x, y)
                    .0
                    .map(|v| round_to_u8((1.0 - 0.4f32) * v as f32 + 0.4f32 * 127.0));
                assert_eq!(p.0, want, "({x}, {y})");
            } else {
                assert_eq!(p, full.get_pixel(x, y), "({x}, {y})");
            }
        }
    }
}
