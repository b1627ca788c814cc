//! Pillow's RGBA operations that A1111's inpainting steps are built from, bit-exact: premultiplied
//! alpha (`RGBA` ↔ `RGBa`), `paste` through an `L` mask, `GaussianBlur` (three box-blur passes
//! with a fractional radius, 8.24 fixed point) and `alpha_composite`. Hand-written because the
//! `image` crate's blur is a true Gaussian in `f32` and its overlay rounds differently: A1111's
//! fill and overlay are defined by Pillow's integer arithmetic.

use image::{GrayImage, RgbaImage};

/// Pillow's `(a + 128) / 255` approximation (`DIV255`).
#[inline]
fn div255(a: u32) -> u32 {
    let t = a + 128;
    ((t >> 8) + t) >> 8
}

/// `convert("RGBa")` of an RGBA image: each colour times alpha / 255, rounded (Pillow's
/// `MULDIV255`).
pub fn premultiply(img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let a = u32::from(p.0[3]);
        for c in &mut p.0[..3] {
            *c = div255(u32::from(*c) * a) as u8;
        }
    }
    out
}

/// `convert("RGBA")` of an `RGBa` image: each colour times 255 / alpha, truncated and clipped
/// (unchanged where alpha is 0 or 255).
pub fn unpremultiply(img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let a = u32::from(p.0[3]);
        if a != 0 && a != 255 {
            for c in &mut p.0[..3] {
                *c = ((255 * u32::from(*c)) / a).min(255) as u8;
            }
        }
    }
    out
}

/// `dst.paste(src, mask=mask)` of same-size images: every byte (alpha included) becomes
/// `DIV255(dst·(255 − m) + src·m)`.
pub fn paste_masked(dst: &mut RgbaImage, src: &RgbaImage, mask: &GrayImage) {
    assert_eq!(dst.dimensions(), src.dimensions(), "images of one size");
    assert_eq!(
        dst.dimensions(),
        mask.dimensions(),
        "a mask of the image's size"
    );
    for ((d, s), m) in dst.pixels_mut().zip(src.pixels()).zip(mask.pixels()) {
        let m = u32::from(m.0[0]);
        for (dc, &sc) in d.0.iter_mut().zip(&s.0) {
            *dc = div255(u32::from(*dc) * (255 - m) + u32::from(sc) * m) as u8;
        }
    }
}

/// `dst.alpha_composite(src)` of same-size straight-alpha images (Pillow's integer
/// `ImagingAlphaComposite`, 7 extra bits of precision).
pub fn alpha_composite(dst: &mut RgbaImage, src: &RgbaImage) {
    assert_eq!(dst.dimensions(), src.dimensions(), "images of one size");
    const BITS: u32 = 7;
    for (d, s) in dst.pixels_mut().zip(src.pixels()) {
        let sa = u32::from(s.0[3]);
        if sa == 0 {
            continue;
        }
        let blend = u32::from(d.0[3]) * (255 - sa);
        let outa255 = sa * 255 + blend;
        let coef1 = sa * 255 * 255 * (1 << BITS) / outa255;
        let coef2 = 255 * (1 << BITS) - coef1;
        for c in 0..3 {
            let t = u32::from(s.0[c]) * coef1 + u32::from(d.0[c]) * coef2 + (0x80 << BITS);
            d.0[c] = ((((t >> 8) + t) >> 8) >> BITS) as u8;
        }
        let t = outa255 + 0x80;
        d.0[3] = (((t >> 8) + t) >> 8) as u8;
    }
}

/// Pillow's box radius for `GaussianBlur(radius)` with three passes (`_gaussian_blur_radius`,
/// single-precision as in C).
fn box_radius(radius: f32) -> f32 {
    let sigma2 = radius * radius / 3.0;
    let big_l = (12.0 * f64::from(sigma2) + 1.0).sqrt() as f32;
    let l = ((f64::from(big_l) - 1.0) / 2.0).floor() as f32;
    let mut a = (2.0 * l + 1.0) * (l * (l + 1.0) - 3.0 * sigma2);
    a /= 6.0 * (sigma2 - (l + 1.0) * (l + 1.0));
    l + a
}

/// One horizontal box-blur pass over each row of 4-byte pixels (`ImagingHorizontalBoxBlur`).
fn box_pass(data: &mut [u8], w: usize, h: usize, float_radius: f32) {
    let radius = float_radius as i64;
    let ww = (16_777_216.0f32 / (float_radius * 2.0 + 1.0)) as u32;
    let fw = (16_777_216u32.wrapping_sub(((radius * 2 + 1) as u32).wrapping_mul(ww))) / 2;
    let wi = w as i64;
    let edge_a = (radius + 1).min(wi);
    let edge_b = (wi - radius - 1).max(0);
    let last = wi - 1;
    let mut line = vec![[0u8; 4]; w];
    for y in 0..h {
        let row = &mut data[y * w * 4..(y + 1) * w * 4];
        let px = |i: i64, c: usize| u32::from(row[i as usize * 4 + c]);
        let mut acc = [0u32; 4];
        for (c, a) in acc.iter_mut().enumerate() {
            *a = px(0, c).wrapping_mul((radius + 1) as u32);
            for x in 0..edge_a - 1 {
                *a = a.wrapping_add(px(x, c));
            }
            *a = a.wrapping_add(px(last, c).wrapping_mul((radius - edge_a + 1) as u32));
        }
        let mut step = |x: i64, sub: i64, add: i64, left: i64, right: i64| {
            for (c, a) in acc.iter_mut().enumerate() {
                *a = a.wrapping_add(px(add, c)).wrapping_sub(px(sub, c));
                let bulk = a
                    .wrapping_mul(ww)
                    .wrapping_add((px(left, c) + px(right, c)).wrapping_mul(fw));
                line[x as usize][c] = (bulk.wrapping_add(1 << 23) >> 24) as u8;
            }
        };
        if edge_a <= edge_b {
            for x in 0..edge_a {
                step(x, 0, x + radius, 0, x + radius + 1);
            }
            for x in edge_a..edge_b {
                step(
                    x,
                    x - radius - 1,
                    x + radius,
                    x - radius - 1,
                    x + radius + 1,
                );
            }
            for x in edge_b..=last {
                step(x, x - radius - 1, last, x - radius - 1, last);
            }
        } else {
            for x in 0..edge_b {
                step(x, 0, x + radius, 0, x + radius + 1);
            }
            for x in edge_b..edge_a {
                step(x, 0, last, 0, last);
            }
            for x in edge_a..=last {
                step(x, x - radius - 1, last, x - radius - 1, last);
            }
        }
        for (o, p) in row.chunks_exact_mut(4).zip(&line) {
            o.copy_from_slice(p);
        }
    }
}

/// The transpose of a `w` × `h` image of 4-byte pixels.
fn transpose(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for y in 0..h {
        for x in 0..w {
            let (s, d) = ((y * w + x) * 4, (x * h + y) * 4);
            out[d..d + 4].copy_from_slice(&data[s..s + 4]);
        }
    }
    out
}

/// `img.filter(ImageFilter.GaussianBlur(radius))` of a 4-band image (every band blurred alike,
/// as Pillow blurs `RGBA` and `RGBa`); radius 0 is a copy.
pub fn gaussian_blur(img: &RgbaImage, radius: f32) -> RgbaImage {
    if radius == 0.0 {
        return img.clone();
    }
    let r = box_radius(radius);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = img.as_raw().clone();
    for _ in 0..3 {
        box_pass(&mut data, w, h, r);
    }
    let mut t = transpose(&data, w, h);
    for _ in 0..3 {
        box_pass(&mut t, h, w, r);
    }
    let data = transpose(&t, h, w);
    RgbaImage::from_raw(img.width(), img.height(), data).expect("same size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiply_round_trips_opaque_pixels() {
        let img = RgbaImage::from_fn(3, 2, |x, y| {
            image::Rgba([x as u8 * 90, y as u8 * 200, 7, 255])
        });
        assert_eq!(premultiply(&img), img);
        assert_eq!(unpremultiply(&img), img);
    }

    #[test]
    fn blur_keeps_a_flat_image() {
        let img = RgbaImage::from_pixel(9, 5, image::Rgba([10, 200, 33, 255]));
        for r in [0.0, 2.0, 16.0, 256.0] {
            assert_eq!(gaussian_blur(&img, r), img, "radius {r}");
        }
    }
}
