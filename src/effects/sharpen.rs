//! Anti-blur: Deforum's unsharp mask, `clip((1 + amount)·img − amount·GaussianBlur(img))`, with
//! OpenCV's Gaussian kernel and reflect-101 border. The low-contrast threshold is computed in signed
//! arithmetic (Deforum subtracts uint8 arrays, which wraps around).

use image::RgbImage;

/// OpenCV's `getGaussianKernel(ksize, sigma)` (double precision, normalised).
pub fn gaussian_kernel(ksize: usize, sigma: f64) -> Vec<f64> {
    const SMALL: [&[f64]; 4] = [
        &[1.0],
        &[0.25, 0.5, 0.25],
        &[0.0625, 0.25, 0.375, 0.25, 0.0625],
        &[
            0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
        ],
    ];
    if ksize % 2 == 1 && ksize <= 7 && sigma <= 0.0 {
        return SMALL[ksize / 2].to_vec();
    }
    let sigma = if sigma > 0.0 {
        sigma
    } else {
        ((ksize as f64 - 1.0) * 0.5 - 1.0) * 0.3 + 0.8
    };
    let scale = -0.5 / (sigma * sigma);
    let mut k: Vec<f64> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale * x * x).exp()
        })
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// OpenCV's BORDER_REFLECT_101 index.
fn reflect101(p: isize, len: isize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let q = p.rem_euclid(period);
    (if q < len { q } else { period - q }) as usize
}

/// OpenCV's fixed-point kernel for 8-bit Gaussian blur (`getGaussianKernelBitExact` then error
/// diffusion to 8 fraction bits; the centre takes the remainder so the weights sum to 256).
pub fn fixed_point_kernel(ksize: usize, sigma: f64) -> Vec<i64> {
    let k = gaussian_kernel(ksize, sigma);
    let half = ksize / 2;
    let mut out = vec![0i64; ksize];
    let mut err = 0.0f64;
    let mut sum = 0i64;
    for i in 0..half {
        let adj = k[i] * 256.0 + err;
        let v = adj.round_ties_even() as i64;
        err = adj - v as f64;
        out[i] = v;
        out[ksize - 1 - i] = v;
        sum += v;
    }
    out[half] = 256 - 2 * sum;
    out
}

/// OpenCV's `GaussianBlur` of an 8-bit RGB image (bit-exact path: integer kernels, reflect-101
/// border, `(Σ ky·Σ kx·p + 2^15) >> 16`). Rows run in parallel; border indices are precomputed.
pub fn gaussian_blur(img: &RgbImage, ksize: usize, sigma: f64) -> RgbImage {
    use rayon::prelude::*;
    let k: Vec<i32> = fixed_point_kernel(ksize, sigma)
        .iter()
        .map(|v| *v as i32)
        .collect();
    let r = (ksize / 2) as isize;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let xs: Vec<usize> = (-r..w as isize + r)
        .map(|x| reflect101(x, w as isize))
        .collect();
    let ys: Vec<usize> = (-r..h as isize + r)
        .map(|y| reflect101(y, h as isize))
        .collect();
    // horizontal pass, kept exact (8 fraction bits): at most 255·256, fits i32
    let mut tmp = vec![0i32; src.len()];
    tmp.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
        let srow = &src[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            let mut acc = [0i32; 3];
            for (i, kv) in k.iter().enumerate() {
                let o = xs[x + i] * 3;
                acc[0] += kv * srow[o] as i32;
                acc[1] += kv * srow[o + 1] as i32;
                acc[2] += kv * srow[o + 2] as i32;
            }
            row[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    });
    let mut out = RgbImage::new(img.width(), img.height());
    out.as_mut()
        .par_chunks_mut(w * 3)
        .enumerate()
        .for_each(|(y, row)| {
            // i32 is exact: the weights are non-negative and sum to 256 in both passes, so
            // acc <= 255·256·256 < 2³¹
            let mut acc = vec![0i32; w * 3];
            for (i, kv) in k.iter().enumerate() {
                let trow = &tmp[ys[y + i] * w * 3..(ys[y + i] + 1) * w * 3];
                for (a, t) in acc.iter_mut().zip(trow) {
                    *a += kv * t;
                }
            }
            for (o, a) in row.iter_mut().zip(&acc) {
                *o = ((a + (1 << 15)) >> 16).clamp(0, 255) as u8;
            }
        });
    out
}

/// `v.clamp(0, 255).round_ties_even() as u8` (NaN gives 0): adding and removing 1.5·2⁵² rounds
/// half to even in double arithmetic, without the library call `round_ties_even` becomes on
/// baseline x86-64.
#[inline(always)]
fn round_to_u8(v: f64) -> u8 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let v = v.clamp(0.0, 255.0);
    ((v + MAGIC) - MAGIC) as u8
}

/// Deforum's `unsharp_mask(img, (k, k), sigma, amount, threshold)`; `ksize` must be odd.
pub fn unsharp_mask(
    img: &RgbImage,
    ksize: usize,
    sigma: f64,
    amount: f64,
    threshold: f64,
) -> RgbImage {
    use rayon::prelude::*;
    let blurred = gaussian_blur(img, ksize, sigma);
    let mut out = img.clone();
    out.par_chunks_mut(1 << 15)
        .zip(blurred.par_chunks(1 << 15))
        .for_each(|(px, bl)| {
            for (v, &b) in px.iter_mut().zip(bl) {
                let (orig, b) = (*v as f64, b as f64);
                if threshold > 0.0 && (orig - b).abs() < threshold {
                    continue;
                }
                let s = (amount + 1.0) * orig - amount * b;
                *v = round_to_u8(s);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels() {
        assert_eq!(gaussian_kernel(3, 0.0), vec![0.25, 0.5, 0.25]);
        let k = gaussian_kernel(5, 1.0);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((k[2] - 0.402619947).abs() < 1e-8, "{k:?}");
    }

    #[test]
    fn opencv_fixed_point_kernels() {
        assert_eq!(fixed_point_kernel(5, 1.0), vec![14, 62, 104, 62, 14]);
        assert_eq!(fixed_point_kernel(3, 0.5), vec![27, 202, 27]);
        assert_eq!(
            fixed_point_kernel(9, 2.0),
            vec![7, 17, 32, 46, 52, 46, 32, 17, 7]
        );
    }

    #[test]
    fn rounding_matches_round_ties_even() {
        for i in -4000..=300_000 {
            let v = f64::from(i) * 0.001 - 1.0;
            let want = v.clamp(0.0, 255.0).round_ties_even() as u8;
            assert_eq!(round_to_u8(v), want, "{v}");
        }
        for v in [0.5, 1.5, 2.5, 254.5, 255.5, -0.5, 1e300, -1e300, f64::NAN] {
            assert_eq!(
                round_to_u8(v),
                v.clamp(0.0, 255.0).round_ties_even() as u8,
                "{v}"
            );
        }
    }

    #[test]
    fn flat_image_unchanged() {
        let img = RgbImage::from_pixel(9, 7, image::Rgb([100, 50, 200]));
        assert_eq!(unsharp_mask(&img, 5, 1.0, 0.5, 0.0), img);
    }
}
