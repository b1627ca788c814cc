//! A1111's masked img2img on latents: the latent mask (the pixel mask resized to the latent size
//! with Pillow's default BICUBIC, then rounded to 0 or 1), and the blend that keeps the original
//! latents outside the mask at each denoiser call (`x0 ← x0·m + z0·(1 − m)`) and after sampling.

use image::{GrayImage, RgbImage};

use crate::hybrid::resize::bicubic_pil;

/// A1111's latent mask: `round(resize(mask → lw × lh, BICUBIC) / 255)`, one value (0 or 1) per
/// latent pixel, row-major; 1 is where the model paints.
pub fn latent_mask(mask: &GrayImage, lw: u32, lh: u32) -> Vec<f32> {
    let rgb = RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        image::Rgb([v, v, v])
    });
    let small = if rgb.dimensions() == (lw, lh) {
        rgb
    } else {
        bicubic_pil(&rgb, lw, lh)
    };
    // v / 255 is never exactly 0.5 for 8-bit values, so rounding halves does not arise
    small
        .pixels()
        .map(|p| (f32::from(p.0[0]) / 255.0).round())
        .collect()
}

/// A1111's blend on `[channels, h, w]` latents: `x ← x·m + z0·(1 − m)` with the `h × w` mask
/// `m` repeated over the channels (outside the mask `x` becomes exactly `z0`).
pub fn keep_outside(x: &mut [f32], z0: &[f32], m: &[f32]) {
    assert_eq!(x.len(), z0.len(), "latents of one size");
    assert!(
        !m.is_empty() && x.len().is_multiple_of(m.len()),
        "a mask per latent pixel"
    );
    for (xc, zc) in x.chunks_exact_mut(m.len()).zip(z0.chunks_exact(m.len())) {
        for ((v, &z), &k) in xc.iter_mut().zip(zc).zip(m) {
            *v = *v * k + z * (1.0 - k);
        }
    }
}

/// How A1111 starts the masked latents before sampling (`inpainting_fill`; the picture fill of
/// mode 0 happens before encoding, [`super::a1111::fill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatentFill {
    /// The init image's latents (modes 0 "fill" and 1 "original").
    #[default]
    Original,
    /// Standard-normal noise in the mask (mode 2 "latent noise").
    Noise,
    /// Zeros in the mask (mode 3 "latent nothing").
    Nothing,
}

/// A1111's latent fill on `[channels, h, w]` init latents: `z0 ← z0·(1 − m) + noise·m` for
/// [`LatentFill::Noise`] (`noise` as long as `z0`), `z0 ← z0·(1 − m)` for
/// [`LatentFill::Nothing`], unchanged for [`LatentFill::Original`].
pub fn fill_latents(z0: &mut [f32], m: &[f32], fill: LatentFill, noise: &[f32]) {
    assert!(
        !m.is_empty() && z0.len().is_multiple_of(m.len()),
        "a mask per latent pixel"
    );
    let zeros;
    let noise = match fill {
        LatentFill::Original => return,
        LatentFill::Noise => {
            assert_eq!(noise.len(), z0.len(), "noise as long as the latents");
            noise
        }
        LatentFill::Nothing => {
            zeros = vec![0.0; z0.len()];
            &zeros
        }
    };
    for (zc, nc) in z0
        .chunks_exact_mut(m.len())
        .zip(noise.chunks_exact(m.len()))
    {
        for ((z, &n), &k) in zc.iter_mut().zip(nc).zip(m) {
            *z = *z * (1.0 - k) + n * k;
        }
    }
}

/// A1111's mask blur kernel width for sigma `mask_blur`: `2·int(2.5σ + 0.5) + 1`.
pub fn blur_kernel_size(mask_blur: u32) -> u32 {
    2 * (2.5 * f64::from(mask_blur) + 0.5) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_outside_is_exact_outside_and_untouched_inside() {
        let m = [1.0, 0.0, 1.0, 0.0];
        let z0: Vec<f32> = (0..8).map(|i| i as f32 * 0.37 - 1.0).collect();
        let mut x: Vec<f32> = (0..8).map(|i| 5.0 - i as f32 * 1.13).collect();
        let before = x.clone();
        keep_outside(&mut x, &z0, &m);
        for i in 0..8 {
            let want = if m[i % 4] == 1.0 { before[i] } else { z0[i] };
            assert_eq!(x[i].to_bits(), want.to_bits(), "value {i}");
        }
    }

    #[test]
    fn latent_fills() {
        let m = [1.0, 0.0];
        let noise = [0.5, -0.25, 2.0, 3.0];
        let mut z = [1.0, 2.0, 3.0, 4.0];
        fill_latents(&mut z, &m, LatentFill::Noise, &noise);
        assert_eq!(z, [0.5, 2.0, 2.0, 4.0]);
        let mut z = [1.0, 2.0, 3.0, 4.0];
        fill_latents(&mut z, &m, LatentFill::Nothing, &[]);
        assert_eq!(z, [0.0, 2.0, 0.0, 4.0]);
        fill_latents(&mut z, &m, LatentFill::Original, &[]);
        assert_eq!(z, [0.0, 2.0, 0.0, 4.0]);
    }

    #[test]
    fn blur_kernel_sizes() {
        assert_eq!([0, 1, 4, 64].map(blur_kernel_size), [1, 7, 21, 321]);
    }
}
