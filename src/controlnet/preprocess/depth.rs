//! The pixel-wise preprocessors: `invert`, and the depth map the A1111 extension makes from a
//! MiDaS-style model's relative inverse depth (`depth_midas`). The model itself runs elsewhere
//! (the camera's ONNX depth model); this module only turns its output into the control map.

use image::RgbImage;

use super::{PreprocessError, check_side};

/// `255 - x` on every channel (the extension's `invert` preprocessor, for white-background
/// line art).
pub fn invert(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    out.iter_mut().for_each(|v| *v = 255 - *v);
    out
}

/// A depth control map from a depth model's output, normalised as the extension's
/// `apply_midas`: `d − min(d)`, divided by its maximum, times 255, truncated to 8 bits, the
/// same value in all three channels; all in f32 as torch computes it. `depth` is row-major
/// `width`×`height`, larger = nearer. A constant map gives black.
///
/// # Errors
/// A size outside 1..=[`super::MAX_SIDE`], a length that is not `width·height`, or a value
/// that is not finite.
pub fn depth_to_map(depth: &[f32], width: u32, height: u32) -> Result<RgbImage, PreprocessError> {
    check_side("depth width", width)?;
    check_side("depth height", height)?;
    let n = width as usize * height as usize;
    if depth.len() != n {
        return Err(PreprocessError::Shape {
            what: "depth map".into(),
            expected: format!("{width}x{height} = {n} values"),
            found: format!("{} values", depth.len()),
        });
    }
    if let Some(i) = depth.iter().position(|v| !v.is_finite()) {
        return Err(PreprocessError::NotFinite {
            what: "depth map".into(),
            index: i,
        });
    }
    let min = depth.iter().copied().fold(f32::INFINITY, f32::min);
    let max = depth.iter().map(|&v| v - min).fold(0.0f32, f32::max);
    let mut raw = vec![0u8; n * 3];
    if max > 0.0 {
        for (p, &d) in raw.chunks_exact_mut(3).zip(depth) {
            // in [0, 255] by construction; `as` truncates as numpy's astype does
            let v = ((d - min) / max * 255.0) as u8;
            p.copy_from_slice(&[v, v, v]);
        }
    }
    let out = RgbImage::from_raw(width, height, raw).expect("w·h·3 values");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invert_flips_every_channel() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([0, 100, 255]));
        assert_eq!(invert(&img).get_pixel(1, 0).0, [255, 155, 0]);
    }

    #[test]
    fn depth_is_stretched_and_truncated() {
        let m = depth_to_map(&[2.0, 3.0, 4.0, 2.5], 2, 2).unwrap();
        let v: Vec<u8> = m.pixels().map(|p| p.0[0]).collect();
        // (1/2)·255 = 127.5 → 127; (0.5/2)·255 = 63.75 → 63
        assert_eq!(v, vec![0, 127, 255, 63]);
        assert!(
            depth_to_map(&[1.0; 4], 2, 2)
                .unwrap()
                .pixels()
                .all(|p| p.0 == [0; 3])
        );
        assert!(depth_to_map(&[1.0, f32::NAN, 0.0, 0.0], 2, 2).is_err());
        assert!(depth_to_map(&[1.0; 3], 2, 2).is_err());
    }
}
