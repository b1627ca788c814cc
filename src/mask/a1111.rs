//! A1111's img2img steps around a masked generation (docs/research §2.5), Pillow-exact:
//! `fill` (the masked area painted from its blurred surroundings: `inpainting_fill` 0, and
//! before the latent fills 2 and 3), full-resolution inpainting (`inpaint_full_res`: the crop
//! around the mask, grown to the frame's aspect ratio, resized to the frame and back), and the
//! overlay that pastes the init image back where the mask is black (`apply_overlay`).
//! Built on the Pillow ports in [`super::pillow`] and [`crate::hybrid::resize`].

use image::{GrayImage, Rgb, RgbImage, RgbaImage};

use super::image::resize_gray;
use super::pillow::{alpha_composite, gaussian_blur, paste_masked, premultiply, unpremultiply};
use crate::hybrid::resize::{bicubic_pil_box, lanczos_pil};

/// A crop box: left, top, right, bottom (exclusive), in pixels.
pub type CropBox = (u32, u32, u32, u32);

fn rgba(img: &RgbImage) -> RgbaImage {
    RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        image::Rgba([p[0], p[1], p[2], 255])
    })
}

fn rgb(img: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        Rgb([p[0], p[1], p[2]])
    })
}

fn inverted(mask: &GrayImage) -> GrayImage {
    let mut m = mask.clone();
    m.iter_mut().for_each(|v| *v = 255 - *v);
    m
}

/// A1111's `masking.fill`: the image (premultiplied) kept where `mask` is black, Gaussian-blurred
/// with radii 256, 64, 16, 4, 2 and 0 (repeated 1, 1, 2, 4, 2, 1 times), each blur composited
/// over the last; what was masked takes the colours of its surroundings. `mask` has the image's
/// size (white = filled).
pub fn fill(image: &RgbImage, mask: &GrayImage) -> RgbImage {
    let (w, h) = image.dimensions();
    let mut masked = RgbaImage::new(w, h);
    paste_masked(&mut masked, &premultiply(&rgba(image)), &inverted(mask));
    let mut out = RgbaImage::new(w, h);
    for (radius, repeats) in [
        (256.0, 1),
        (64.0, 1),
        (16.0, 2),
        (4.0, 4),
        (2.0, 2),
        (0.0, 1),
    ] {
        let blurred = unpremultiply(&gaussian_blur(&masked, radius));
        for _ in 0..repeats {
            alpha_composite(&mut out, &blurred);
        }
    }
    rgb(&out)
}

/// A1111's crop region: the bounding box of the mask's non-zero pixels grown by `pad` on every
/// side and clipped to the mask; `None` for an all-black mask (A1111 then inpaints the whole
/// frame without a mask).
pub fn crop_region(mask: &GrayImage, pad: u32) -> Option<CropBox> {
    let (w, h) = mask.dimensions();
    let (mut x1, mut y1, mut x2, mut y2) = (w, h, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] != 0 {
            x1 = x1.min(x);
            y1 = y1.min(y);
            x2 = x2.max(x + 1);
            y2 = y2.max(y + 1);
        }
    }
    (x2 > 0).then(|| {
        (
            x1.saturating_sub(pad),
            y1.saturating_sub(pad),
            x2.saturating_add(pad).min(w),
            y2.saturating_add(pad).min(h),
        )
    })
}

/// A1111's `expand_crop_region`: `region` grown on its short side to the processing size's
/// aspect ratio `pw:ph` (centred; shifted back inside the `iw` × `ih` image, and clipped to it).
pub fn expand_crop_region(region: CropBox, pw: u32, ph: u32, iw: u32, ih: u32) -> CropBox {
    let (x1, y1, x2, y2) = region;
    let (mut x1, mut y1, mut x2, mut y2) =
        (i64::from(x1), i64::from(y1), i64::from(x2), i64::from(y2));
    let ratio_crop = (x2 - x1) as f64 / (y2 - y1) as f64;
    let ratio = f64::from(pw) / f64::from(ph);
    let grow = |a: &mut i64, b: &mut i64, diff: i64, limit: i64| {
        *a -= diff.div_euclid(2);
        *b += diff - diff.div_euclid(2);
        if *b >= limit {
            *a -= *b - limit;
            *b = limit;
        }
        if *a < 0 {
            *b -= *a;
            *a = 0;
        }
        *b = (*b).min(limit);
    };
    if ratio_crop > ratio {
        let diff = ((x2 - x1) as f64 / ratio - (y2 - y1) as f64) as i64;
        grow(&mut y1, &mut y2, diff, i64::from(ih));
    } else {
        let diff = ((y2 - y1) as f64 * ratio - (x2 - x1) as f64) as i64;
        grow(&mut x1, &mut x2, diff, i64::from(iw));
    }
    (x1 as u32, y1 as u32, x2 as u32, y2 as u32)
}

/// Which way an image's aspect ratio differs from the target's in A1111's `resize_image`:
/// the size the image is resized to (before it is centred on the target).
fn fit(iw: u32, ih: u32, w: u32, h: u32, cover: bool) -> (u32, u32) {
    let ratio = f64::from(w) / f64::from(h);
    let src = f64::from(iw) / f64::from(ih);
    // "crop and resize" covers the target (the wider side is cut), "resize and fill" fits in it
    let wide = if cover { ratio > src } else { ratio < src };
    if wide {
        (w, (u64::from(ih) * u64::from(w) / u64::from(iw)) as u32)
    } else {
        ((u64::from(iw) * u64::from(h) / u64::from(ih)) as u32, h)
    }
}

/// `dst.paste(src, (x, y))` with `src` cut at `dst`'s edges (offsets may be negative).
fn paste(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
    for (sx, sy, p) in src.enumerate_pixels() {
        let (dx, dy) = (x + i64::from(sx), y + i64::from(sy));
        if dx >= 0 && dy >= 0 && dx < i64::from(dst.width()) && dy < i64::from(dst.height()) {
            dst.put_pixel(dx as u32, dy as u32, *p);
        }
    }
}

/// A1111's `resize_image` mode 2, "resize and fill": `img` resized with LANCZOS to fit in
/// `w` × `h`, centred, and the gap on the short side filled with its edge rows (or columns)
/// stretched (Pillow's resize of a zero-height box).
pub fn resize_fill(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let (sw, sh) = fit(iw, ih, w, h, false);
    let resized = lanczos_pil(img, sw, sh);
    let mut out = RgbImage::new(w, h);
    let (ox, oy) = (
        i64::from(w / 2) - i64::from(sw / 2),
        i64::from(h / 2) - i64::from(sh / 2),
    );
    paste(&mut out, &resized, ox, oy);
    let ratio = f64::from(w) / f64::from(h);
    let src = f64::from(iw) / f64::from(ih);
    if ratio < src && oy > 0 {
        let fh = oy as u32;
        let top = bicubic_pil_box(&resized, w, fh, (0.0, 0.0, f64::from(w), 0.0));
        let bottom = bicubic_pil_box(
            &resized,
            w,
            fh,
            (0.0, f64::from(sh), f64::from(w), f64::from(sh)),
        );
        paste(&mut out, &top, 0, 0);
        paste(&mut out, &bottom, 0, oy + i64::from(sh));
    } else if ratio > src && ox > 0 {
        let fw = ox as u32;
        let left = bicubic_pil_box(&resized, fw, h, (0.0, 0.0, 0.0, f64::from(h)));
        let right = bicubic_pil_box(
            &resized,
            fw,
            h,
            (f64::from(sw), 0.0, f64::from(sw), f64::from(h)),
        );
        paste(&mut out, &left, 0, 0);
        paste(&mut out, &right, ox + i64::from(sw), 0);
    }
    out
}

/// A1111's `resize_image` mode 1, "crop and resize": `img` resized with LANCZOS to cover
/// `w` × `h`, centred, the overflow cut.
pub fn resize_crop(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (sw, sh) = fit(img.width(), img.height(), w, h, true);
    let resized = lanczos_pil(img, sw, sh);
    let mut out = RgbImage::new(w, h);
    paste(
        &mut out,
        &resized,
        i64::from(w / 2) - i64::from(sw / 2),
        i64::from(h / 2) - i64::from(sh / 2),
    );
    out
}

fn gray_to_rgb(m: &GrayImage) -> RgbImage {
    RgbImage::from_fn(m.width(), m.height(), |x, y| {
        let v = m.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    })
}

/// A1111's overlay image: `init` with alpha = 255 − `mask_for_overlay` (the pixels to keep),
/// made through premultiplied alpha as A1111 does (`RGBa` paste, then back to `RGBA`).
pub fn overlay_image(init: &RgbImage, mask_for_overlay: &GrayImage) -> RgbaImage {
    let mut masked = RgbaImage::new(init.width(), init.height());
    paste_masked(
        &mut masked,
        &premultiply(&rgba(init)),
        &inverted(mask_for_overlay),
    );
    unpremultiply(&masked)
}

/// A1111's mask for the overlay without full resolution: `clip(2·mask)` (opaque init wherever
/// the blurred mask is below one half).
pub fn doubled(mask: &GrayImage) -> GrayImage {
    let mut m = mask.clone();
    m.iter_mut().for_each(|v| *v = v.saturating_mul(2));
    m
}

/// A1111's `apply_overlay`: with a crop, `result` resized to it ("crop and resize") and pasted
/// there on a transparent canvas of the overlay's size; then the overlay composited on top.
pub fn apply_overlay(result: &RgbImage, crop: Option<CropBox>, overlay: &RgbaImage) -> RgbImage {
    let mut base = match crop {
        Some((x1, y1, x2, y2)) => {
            let mut base = RgbaImage::new(overlay.width(), overlay.height());
            let r = resize_crop(result, x2 - x1, y2 - y1);
            for (x, y, p) in r.enumerate_pixels() {
                let p = p.0;
                base.put_pixel(x1 + x, y1 + y, image::Rgba([p[0], p[1], p[2], 255]));
            }
            base
        }
        None => rgba(result),
    };
    alpha_composite(&mut base, overlay);
    rgb(&base)
}

/// One masked generation as A1111's img2img prepares and finishes it: the init image and mask
/// the model gets (cropped to the mask with `inpaint_full_res`, filled with `fill`), and the
/// overlay put back afterwards.
pub struct Inpainting {
    /// The init image the model gets (the frame size).
    pub init: RgbImage,
    /// The mask the model gets (the frame size, white = repainted).
    pub mask: GrayImage,
    crop: Option<CropBox>,
    overlay: RgbaImage,
}

impl Inpainting {
    /// Prepares `init` (the frame) with its blurred `mask` (the frame's size): with `full_res`
    /// (the padding), the crop around the mask grown to the frame's aspect ratio and resized to
    /// the frame (an all-black mask gives `None`: no mask at all, as A1111); with `fill`, the
    /// masked area painted by [`fill`].
    pub fn new(
        init: &RgbImage,
        mask: &GrayImage,
        full_res: Option<u32>,
        fill_masked: bool,
    ) -> Option<Inpainting> {
        let (w, h) = init.dimensions();
        let (crop, mask_for_overlay, img, m) = match full_res {
            Some(pad) => {
                let region = crop_region(mask, pad)?;
                let c = expand_crop_region(region, w, h, w, h);
                let cut = |i: &RgbImage| {
                    image::imageops::crop_imm(i, c.0, c.1, c.2 - c.0, c.3 - c.1).to_image()
                };
                let img = resize_fill(&cut(init), w, h);
                let m = resize_fill(&cut(&gray_to_rgb(mask)), w, h);
                let m = GrayImage::from_fn(w, h, |x, y| image::Luma([m.get_pixel(x, y).0[0]]));
                (Some(c), mask.clone(), img, m)
            }
            None => (None, doubled(mask), init.clone(), resize_gray(mask, w, h)),
        };
        let overlay = overlay_image(init, &mask_for_overlay);
        let img = if fill_masked { fill(&img, &m) } else { img };
        Some(Inpainting {
            init: img,
            mask: m,
            crop,
            overlay,
        })
    }

    /// The crop box with full resolution.
    pub fn crop(&self) -> Option<CropBox> {
        self.crop
    }

    /// The generated picture (the frame size) put back: resized into the crop, under the
    /// overlay.
    pub fn finish(&self, generated: &RgbImage) -> RgbImage {
        apply_overlay(generated, self.crop, &self.overlay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_crop_region_cases() {
        // wide crop in a square frame: grown in height, centred
        assert_eq!(
            expand_crop_region((10, 10, 30, 14), 64, 64, 64, 64),
            (10, 2, 30, 22)
        );
        // at the bottom edge: shifted back inside
        assert_eq!(
            expand_crop_region((10, 60, 30, 64), 64, 64, 64, 64),
            (10, 44, 30, 64)
        );
        // tall crop at the left edge
        assert_eq!(
            expand_crop_region((0, 0, 4, 20), 64, 64, 64, 64),
            (0, 0, 20, 20)
        );
    }

    #[test]
    fn crop_region_of_a_blank_mask_is_none() {
        assert_eq!(crop_region(&GrayImage::new(8, 8), 4), None);
        let mut m = GrayImage::new(8, 8);
        m.put_pixel(3, 5, image::Luma([1]));
        assert_eq!(crop_region(&m, 2), Some((1, 3, 6, 8)));
    }
}
