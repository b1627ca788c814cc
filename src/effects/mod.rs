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
    // one entry per input value: the same arithmetic, done 256 times instead of per value
    let lut: [u8; 256] =
        std::array::from_fn(|v| (v as f64 * contrast).round_ties_even().clamp(0.0, 255.0) as u8);
    for v in img.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// OpenCV's `COLOR_RGB2GRAY` for 8-bit data (fixed point: `(9798 R + 19235 G + 3735 B + 2^14) >> 15`,
/// equal to cv2 on all 2^24 colours), written back to all three channels, as Deforum's
/// `color_force_grayscale` does.
pub fn grayscale(img: &mut RgbImage) {
    for p in img.pixels_mut() {
        let [r, g, b] = p.0;
        let y = ((r as u32 * 9798 + g as u32 * 19235 + b as u32 * 3735 + (1 << 14)) >> 15) as u8;
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
