//! Inpainting UNets (9 input channels: the 4 noisy latents, a 1-channel latent-size mask and the 4
//! latents of the masked picture), with the semantics of diffusers'
//! `StableDiffusionInpaintPipeline`; and [`UnetKind`], which tells the UNet flavours apart by their
//! input channels.
//!
//! The mask is binarised at 0.5 (diffusers' mask `VaeImageProcessor`, `do_binarize`; the same as
//! A1111's `round(mask)`), the masked picture is `image · (mask < 0.5)` in [-1, 1], encoded by the
//! VAE (a seeded sample times the scaling factor), and the mask is resized to the latent size by
//! nearest neighbour. The UNet input is `cat[scaled x_t, mask, masked latents]` per batch row; no
//! latents are blended back (the UNet itself keeps the unmasked part). Without a mask (a Deforum
//! frame without `use_mask`, or txt2img) the mask is all ones and the masked picture all zero, as
//! A1111 conditions an inpainting model then.
//!
//! Depends on nothing but `image` and the model's input description; the denoising loop
//! (`pipeline.rs`) calls it.

use std::path::Path;

use anyhow::{Result, bail};
use image::{GrayImage, RgbImage};

use super::session::Model;

/// The UNet flavours anim runs, told apart by the channels of the UNet's `sample` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum UnetKind {
    /// 4 channels: a Stable Diffusion UNet (txt2img, img2img, masked img2img).
    Plain,
    /// 8 channels: InstructPix2Pix (the latents, then the edited picture's latents).
    Pix2Pix,
    /// 9 channels: inpainting (the latents, the mask, then the masked picture's latents).
    Inpaint,
}

impl UnetKind {
    /// The kind of a UNet taking `channels` input channels (`None`: unknown, read as 4).
    ///
    /// # Errors
    /// Another count than 4, 8 or 9, with what each count means.
    pub fn from_channels(channels: Option<i64>) -> std::result::Result<UnetKind, String> {
        match channels {
            None | Some(4) => Ok(UnetKind::Plain),
            Some(8) => Ok(UnetKind::Pix2Pix),
            Some(9) => Ok(UnetKind::Inpaint),
            Some(c) => Err(format!(
                "the UNet takes {c} input channels; anim runs UNets with 4 (Stable Diffusion), 8 \
                 (InstructPix2Pix: latents + the edited picture's latents) or 9 (inpainting: latents + \
                 mask + the masked picture's latents); use an export of one of those"
            )),
        }
    }

    /// The kind of `unet` (from `folder`): the channels of its ONNX `sample` input, or, where that
    /// axis is dynamic, `in_channels` in `unet/config.json`.
    ///
    /// # Errors
    /// A count anim does not run, naming the file.
    pub(crate) fn detect(unet: &Model, folder: &Path) -> Result<UnetKind> {
        let dims = unet.input_dims("sample")?;
        let channels = match dims.get(1).copied() {
            Some(c) if c > 0 => Some(c),
            _ => std::fs::read_to_string(folder.join("unet").join("config.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["in_channels"].as_i64()),
        };
        UnetKind::from_channels(channels).or_else(|e| bail!("{}: {e}", unet.path.display()))
    }

    /// Input channels of the UNet's `sample`.
    pub fn channels(self) -> usize {
        match self {
            UnetKind::Plain => 4,
            UnetKind::Pix2Pix => 8,
            UnetKind::Inpaint => 9,
        }
    }
}

/// diffusers' mask preprocessing (`VaeImageProcessor(do_binarize=True)`): `v / 255` per pixel,
/// 0 below 0.5 and 1 from 0.5 up (grey 128 and above paint). Row-major, one value per pixel.
pub fn binarize(mask: &GrayImage) -> Vec<f32> {
    mask.pixels()
        .map(|p| if p[0] as f32 / 255.0 < 0.5 { 0.0 } else { 1.0 })
        .collect()
}

/// The masked picture, NCHW float in [-1, 1]: `image · (mask < 0.5)` (diffusers), zero where the
/// binarised `mask` paints; `image` `None` (txt2img): all zero. `mask` has `width · height` values.
pub fn masked_image(image: Option<&RgbImage>, mask: &[f32], width: u32, height: u32) -> Vec<f32> {
    let plane = (width * height) as usize;
    let Some(img) = image else {
        return vec![0.0; 3 * plane];
    };
    let mut out = super::pipeline::image_to_nchw(img);
    for c in out.chunks_exact_mut(plane) {
        for (v, &m) in c.iter_mut().zip(mask) {
            *v *= f32::from(u8::from(m < 0.5));
        }
    }
    out
}

/// The mask channel: the binarised `width`x`height` mask resized to `width / 8`x`height / 8` by
/// nearest neighbour (torch's `interpolate(mode="nearest")`: pixel `(8x, 8y)`), row-major.
pub fn latent_mask(mask: &[f32], width: u32, height: u32) -> Vec<f32> {
    let (w, lw, lh) = (width as usize, (width / 8) as usize, (height / 8) as usize);
    let mut out = Vec::with_capacity(lw * lh);
    for y in 0..lh {
        out.extend((0..lw).map(|x| mask[8 * y * w + 8 * x]));
    }
    out
}

/// The UNet input: per batch row, the `n` scheduler-scaled latents (4 channels), the mask (1
/// channel, `n / 4` values) and the masked picture's latents (`n` values): diffusers'
/// `cat([latent_model_input, mask, masked_image_latents], dim=1)`.
pub fn concat(scaled: &[f32], mask: &[f32], masked: &[f32], n: usize) -> Vec<f32> {
    let rows = scaled.len() / n;
    let mut out = Vec::with_capacity(rows * (2 * n + mask.len()));
    for s in scaled.chunks(n) {
        out.extend_from_slice(s);
        out.extend_from_slice(mask);
        out.extend_from_slice(masked);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts() {
        assert_eq!(UnetKind::from_channels(None), Ok(UnetKind::Plain));
        assert_eq!(UnetKind::from_channels(Some(4)), Ok(UnetKind::Plain));
        assert_eq!(UnetKind::from_channels(Some(8)), Ok(UnetKind::Pix2Pix));
        assert_eq!(UnetKind::from_channels(Some(9)), Ok(UnetKind::Inpaint));
        let e = UnetKind::from_channels(Some(5)).unwrap_err();
        assert!(
            e.contains("5 input channels") && e.contains("9 (inpainting"),
            "{e}"
        );
        assert_eq!(UnetKind::Inpaint.channels(), 9);
    }

    #[test]
    fn binarised_at_half() {
        let m = GrayImage::from_raw(4, 1, vec![0, 127, 128, 255]).unwrap();
        assert_eq!(binarize(&m), vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn masked_picture_and_nearest_mask() {
        let img = RgbImage::from_pixel(16, 8, image::Rgb([255, 0, 255]));
        let mut mask = vec![0.0; 16 * 8];
        mask[8] = 1.0; // (8, 0): the latent pixel (1, 0) samples it
        mask[1] = 1.0; // (1, 0): not sampled
        let m = masked_image(Some(&img), &mask, 16, 8);
        assert_eq!((m[0], m[1], m[8], m[128 + 8]), (1.0, 0.0, 0.0, -0.0));
        assert_eq!(latent_mask(&mask, 16, 8), vec![0.0, 1.0]);
        assert!(masked_image(None, &mask, 16, 8).iter().all(|v| *v == 0.0));
        assert_eq!(
            concat(&[1.0, 2.0, 3.0, 4.0], &[9.0], &[5.0, 6.0], 2),
            vec![1.0, 2.0, 9.0, 5.0, 6.0, 3.0, 4.0, 9.0, 5.0, 6.0]
        );
    }
}
