//! Pillow's 8-bit image operations as Deforum's hybrid composite uses them, bit-exact (checked
//! against Pillow by tests/hybrid.rs): `convert("L")`, `Image.blend`, `Image.composite`,
//! `ImageEnhance.Contrast`, `ImageOps.equalize`, and Deforum's percentile auto-contrast.
//! Hand-written: the `image` and `imageproc` crates round differently (their grey is Rec. 709,
//! their blends round to nearest), and the composite must match Pillow's integer maths.

use image::{GrayImage, RgbImage};

/// Pillow's `convert("L")`: `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16` (ITU-R 601).
pub fn gray(img: &RgbImage) -> GrayImage {
    let (w, h) = img.dimensions();
    let data = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| {
            ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000)
                >> 16) as u8
        })
        .collect();
    GrayImage::from_raw(w, h, data).expect("one value per pixel")
}

/// One value of Pillow's `Image.blend(a, b, alpha)`: `a + alpha·(b − a)` in `f32`, truncated
/// and clamped to 0..=255 (`alpha` may lie outside 0..=1).
#[inline]
pub fn blend_value(a: u8, b: u8, alpha: f32) -> u8 {
    let t = f32::from(a) + alpha * (f32::from(b) - f32::from(a));
    if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// Pillow's `Image.blend(a, b, alpha)` over equal-length buffers (any mode).
pub fn blend(a: &[u8], b: &[u8], alpha: f64) -> Vec<u8> {
    let alpha = alpha as f32;
    a.iter()
        .zip(b)
        .map(|(&x, &y)| blend_value(x, y, alpha))
        .collect()
}

/// Pillow's `Image.composite(a, b, mask)` for RGB images: `a` where the mask is white, `b`
/// where it is black, `round(b + (a − b)·m/255)` between.
pub fn composite(a: &RgbImage, b: &RgbImage, mask: &GrayImage) -> RgbImage {
    let (w, h) = a.dimensions();
    let mut out = b.clone();
    for ((o, pa), m) in out
        .as_mut()
        .chunks_exact_mut(3)
        .zip(a.as_raw().chunks_exact(3))
        .zip(mask.as_raw())
    {
        let m = u32::from(*m);
        for c in 0..3 {
            // Pillow's DIV255: round((a·m + b·(255 − m)) / 255), exact for 16-bit sums
            let v = u32::from(pa[c]) * m + u32::from(o[c]) * (255 - m) + 128;
            o[c] = (((v >> 8) + v) >> 8) as u8;
        }
    }
    debug_assert_eq!(out.dimensions(), (w, h));
    out
}

/// Pillow's `ImageEnhance.Contrast(img).enhance(factor)` on a grey image: a blend from the
/// solid image of the rounded mean (`int(mean + 0.5)`) towards the image.
pub fn contrast(img: &GrayImage, factor: f64) -> GrayImage {
    let n = img.as_raw().len().max(1) as f64;
    let sum: u64 = img.as_raw().iter().map(|&v| u64::from(v)).sum();
    let mean = (sum as f64 / n + 0.5) as u8;
    let alpha = factor as f32;
    let data = img
        .as_raw()
        .iter()
        .map(|&v| blend_value(mean, v, alpha))
        .collect();
    GrayImage::from_raw(img.width(), img.height(), data).expect("same size")
}

/// The 256-bin histogram of a grey image.
fn histogram(img: &GrayImage) -> [u64; 256] {
    let mut h = [0u64; 256];
    for &v in img.as_raw() {
        h[v as usize] += 1;
    }
    h
}

/// Pillow's `ImageOps.equalize` (no mask): the identity where the histogram has at most one
/// non-empty bin or where `step` is 0.
pub fn equalize(img: &GrayImage) -> GrayImage {
    let h = histogram(img);
    let nz: Vec<u64> = h.iter().copied().filter(|&c| c > 0).collect();
    if nz.len() <= 1 {
        return img.clone();
    }
    let step = (nz.iter().sum::<u64>() - nz[nz.len() - 1]) / 255;
    if step == 0 {
        return img.clone();
    }
    let mut lut = [0u8; 256];
    let mut n = step / 2;
    for (i, l) in lut.iter_mut().enumerate() {
        *l = (n / step).min(255) as u8;
        n += h[i];
    }
    let data = img.as_raw().iter().map(|&v| lut[v as usize]).collect();
    GrayImage::from_raw(img.width(), img.height(), data).expect("same size")
}

/// `255 − v`: Pillow's `ImageOps.invert`.
pub fn invert(img: &mut GrayImage) {
    for v in img.iter_mut() {
        *v = 255 - *v;
    }
}

/// `|a − b|`: Pillow's `ImageChops.difference`.
pub fn difference(a: &GrayImage, b: &GrayImage) -> GrayImage {
    let data = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| x.abs_diff(y))
        .collect();
    GrayImage::from_raw(a.width(), a.height(), data).expect("same size")
}

/// numpy's `percentile(values, q)` with linear interpolation (its `_lerp`, which counts from
/// the upper end when the fraction is at least 0.5), from a histogram of `n` values.
fn percentile(h: &[u64; 256], n: u64, q: f64) -> f64 {
    let at = |k: u64| -> f64 {
        // the k-th smallest value (0-based)
        let mut seen = 0;
        for (v, &c) in h.iter().enumerate() {
            seen += c;
            if seen > k {
                return v as f64;
            }
        }
        255.0
    };
    let virtual_index = (q / 100.0) * (n - 1) as f64;
    let below = virtual_index.floor().clamp(0.0, (n - 1) as f64);
    let gamma = virtual_index - below;
    let k = below as u64;
    let a = at(k);
    let b = at((k + 1).min(n - 1));
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Deforum's `autocontrast_grayscale(img, low, high)`: the `low`th and `high`th percentiles
/// (numpy, linear) stretched to 0 and 255, clipped, then stored through Pillow's `F` mode
/// (`f32`) and truncated to 8 bits. Where both percentiles are equal (Deforum divides by zero)
/// values above them become 255 and the others 0.
pub fn autocontrast(img: &GrayImage, low: i64, high: i64) -> GrayImage {
    let h = histogram(img);
    let n = img.as_raw().len() as u64;
    if n == 0 {
        return img.clone();
    }
    let lo = percentile(&h, n, low as f64);
    let hi = percentile(&h, n, high as f64);
    let data = img
        .as_raw()
        .iter()
        .map(|&v| {
            let v = f64::from(v);
            let s = if hi == lo {
                if v > lo { 255.0 } else { 0.0 }
            } else {
                (255.0 * (v - lo) / (hi - lo)).clamp(0.0, 255.0)
            };
            (s as f32) as u8
        })
        .collect();
    GrayImage::from_raw(img.width(), img.height(), data).expect("same size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_truncates_and_extrapolates() {
        assert_eq!(blend_value(10, 20, 0.55), 15);
        assert_eq!(blend_value(20, 10, 0.55), 14);
        assert_eq!(blend_value(100, 200, 1.7), 255);
        assert_eq!(blend_value(100, 200, -1.2), 0);
    }

    #[test]
    fn equalize_of_one_value_is_the_identity() {
        let img = GrayImage::from_pixel(4, 4, image::Luma([77]));
        assert_eq!(equalize(&img), img);
    }

    #[test]
    fn percentile_is_numpys_linear() {
        // np.percentile([0, 10, 20, 30], 50) = 15; 25 -> 7.5
        let mut h = [0u64; 256];
        for v in [0, 10, 20, 30] {
            h[v] += 1;
        }
        assert_eq!(percentile(&h, 4, 50.0), 15.0);
        assert_eq!(percentile(&h, 4, 25.0), 7.5);
        assert_eq!(percentile(&h, 4, 100.0), 30.0);
        assert_eq!(percentile(&h, 4, 0.0), 0.0);
    }
}
