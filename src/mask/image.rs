//! Mask images as Deforum makes them, Pillow-exact: `prepare_mask` (LANCZOS resize, brightness,
//! contrast, grey), the init image's alpha as a mask, and `do_overlay_mask` (the init image pasted
//! back where the mask is black). Built on the Pillow ports in [`crate::hybrid::mask`] and
//! [`crate::hybrid::resize`].

use image::{GrayImage, RgbImage, RgbaImage};

use crate::hybrid::mask::{blend_value, composite, gray, invert};
use crate::hybrid::resize::lanczos_pil;

/// Deforum's `prepare_mask`: resize `img` to `w` × `h` with Pillow's LANCZOS, then
/// `ImageEnhance.Brightness(brightness)`, then `ImageEnhance.Contrast(contrast)` (each only when
/// its factor is not 1), then `convert("L")`.
///
/// Deforum passes `mask_contrast_adjust` as the brightness and `mask_brightness_adjust` as the
/// contrast (its call sites swap them); anim passes each to its own step.
pub fn prepare_mask(img: &RgbImage, w: u32, h: u32, brightness: f64, contrast: f64) -> GrayImage {
    let mut img = lanczos_pil(img, w, h);
    if brightness != 1.0 {
        // `Image.blend(black, img, factor)`
        let f = brightness as f32;
        img.iter_mut().for_each(|v| *v = blend_value(0, *v, f));
    }
    if contrast != 1.0 {
        // `Image.blend(solid grey of the rounded mean luma, img, factor)`
        let l = gray(&img);
        let n = l.as_raw().len().max(1) as f64;
        let sum: u64 = l.as_raw().iter().map(|&v| u64::from(v)).sum();
        let mean = (sum as f64 / n + 0.5) as u8;
        let f = contrast as f32;
        img.iter_mut().for_each(|v| *v = blend_value(mean, *v, f));
    }
    gray(&img)
}

/// Pillow's `convert("1")` without dithering, back to 8 bits: 255 where `v >= 128`, else 0.
pub fn threshold(mask: &GrayImage) -> GrayImage {
    let data = mask
        .as_raw()
        .iter()
        .map(|&v| if v >= 128 { 255 } else { 0 })
        .collect();
    GrayImage::from_raw(mask.width(), mask.height(), data).expect("same size")
}

/// The init image's alpha as a mask (`use_alpha_as_mask`); `None` where the alpha is all 0 or all
/// 255 (Deforum ignores such an alpha).
pub fn alpha_mask(img: &RgbaImage) -> Option<GrayImage> {
    let alpha: Vec<u8> = img.pixels().map(|p| p.0[3]).collect();
    let first = *alpha.first()?;
    if (first == 0 || first == 255) && alpha.iter().all(|&a| a == first) {
        return None;
    }
    GrayImage::from_raw(img.width(), img.height(), alpha)
}

/// Deforum's `do_overlay_mask`: the mask resized to the frame with LANCZOS (grey), inverted if
/// `invert`, then `Image.composite(generated, base, mask)`: the generated frame where the mask is
/// white, `base` (the init image, resized with LANCZOS) where it is black.
pub fn overlay(
    generated: &RgbImage,
    base: &RgbImage,
    mask: &GrayImage,
    invert_mask: bool,
) -> RgbImage {
    let (w, h) = generated.dimensions();
    let base = lanczos_pil(base, w, h);
    let mut m = resize_gray(mask, w, h);
    if invert_mask {
        invert(&mut m);
    }
    composite(generated, &base, &m)
}

/// Pillow's LANCZOS resize of a grey image (each channel is resized on its own, so the grey
/// goes through the RGB port unchanged).
pub fn resize_gray(mask: &GrayImage, w: u32, h: u32) -> GrayImage {
    if mask.dimensions() == (w, h) {
        return mask.clone();
    }
    let rgb = RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let out = lanczos_pil(&rgb, w, h);
    GrayImage::from_fn(w, h, |x, y| image::Luma([out.get_pixel(x, y).0[0]]))
}
