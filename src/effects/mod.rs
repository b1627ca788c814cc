//! Per-frame image operations of Deforum's loop, applied between the warp and img2img in this
//! order: colour match, grayscale, contrast, anti-blur, noise.

pub mod color;
pub mod noise;
mod opencv_lab;
pub mod sharpen;

use image::RgbImage;

/// Multiplies every value by `contrast`, rounding half to even and clamping to 0..=255.
/// (Deforum casts without clamping, so values above 255 wrap around; anim clamps.)
pub fn contrast(img: &mut RgbImage, contrast: f64) {
    if contrast == 1.0 {
        return;
    }
    for v in img.iter_mut() {
        *v = (*v as f64 * contrast).round_ties_even().clamp(0.0, 255.0) as u8;
    }
}

/// OpenCV's `COLOR_RGB2GRAY` (fixed point: `(4899 R + 9617 G + 1868 B + 8192) >> 14`), written
/// back to all three channels, as Deforum's `color_force_grayscale` does.
pub fn grayscale(img: &mut RgbImage) {
    for p in img.pixels_mut() {
        let [r, g, b] = p.0;
        let y = ((r as u32 * 4899 + g as u32 * 9617 + b as u32 * 1868 + 8192) >> 14) as u8;
        p.0 = [y, y, y];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_clamps() {
        let mut img = RgbImage::from_raw(1, 1, vec![200, 100, 1]).unwrap();
        contrast(&mut img, 1.5);
        assert_eq!(img.as_raw(), &vec![255, 150, 2]);
    }

    #[test]
    fn gray_weights() {
        let mut img = RgbImage::from_raw(1, 1, vec![255, 0, 0]).unwrap();
        grayscale(&mut img);
        assert_eq!(img.as_raw(), &vec![76, 76, 76]);
    }
}
