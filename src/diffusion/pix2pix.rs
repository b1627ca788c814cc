//! InstructPix2Pix: SD 1.x UNets with 8 input channels (the 4 noisy latents, then the 4 latents of
//! the picture being edited), with the semantics of diffusers'
//! `StableDiffusionInstructPix2PixPipeline` and A1111's edit-model guidance.
//!
//! The image conditioning is the VAE encoder's mode (its mean), not multiplied by the scaling
//! factor, beside the scheduler-scaled latents. With guidance the batch is diffusers'
//! `[(text, img), (neg, img), (neg, zeros)]` and the three predictions `t, i, u` combine as
//! `u + g_t·(t − i) + g_i·(i − u)`.

use image::RgbImage;

/// diffusers' default `image_guidance_scale` (also Deforum's `pix2pix_img_cfg_scale_schedule`
/// default), used when a request for an InstructPix2Pix model does not set one.
pub const DEFAULT_IMAGE_CFG_SCALE: f32 = 1.5;

/// The image conditioning of one generation with an InstructPix2Pix model; ignored by other
/// models (Deforum: "only with a P2P ckpt").
#[derive(Debug, Clone, Copy)]
pub struct Pix2Pix<'a> {
    /// The picture being edited; `None`: the request's init image (what A1111 and Deforum use).
    pub image: Option<&'a RgbImage>,
    /// Image guidance scale (diffusers' `image_guidance_scale`, Deforum's
    /// `pix2pix_img_cfg_scale`): how closely the result keeps to the picture.
    pub image_cfg_scale: f32,
}

/// How the UNet's predictions of one step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guidance {
    /// One conditional pass (`cfg_scale <= 1`).
    Single,
    /// Classifier-free guidance over `[uncond, cond]` (for pix2pix: image guidance 1, both rows
    /// with the image latents; equal to diffusers' three-way formula at `g_i = 1`).
    Text,
    /// Pix2pix's three-way guidance over `[(text, img), (neg, img), (neg, zeros)]`.
    Edit,
}

impl Guidance {
    /// The guidance of a pix2pix generation: single pass when `cfg_scale <= 1` (diffusers),
    /// two-way when the image guidance is 1 (A1111), three-way otherwise (A1111's edit path; for
    /// `image_cfg_scale >= 1` the same as diffusers').
    pub fn of(cfg_scale: f32, image_cfg_scale: f32) -> Guidance {
        if cfg_scale <= 1.0 {
            Guidance::Single
        } else if image_cfg_scale == 1.0 {
            Guidance::Text
        } else {
            Guidance::Edit
        }
    }

    /// Rows of the UNet batch.
    pub fn batch(self) -> usize {
        match self {
            Guidance::Single => 1,
            Guidance::Text => 2,
            Guidance::Edit => 3,
        }
    }
}

/// The image latents of each batch row for `guidance`: `[img]`, `[img, img]` or
/// `[img, img, zeros]`.
pub fn batch_image_latents(image: &[f32], guidance: Guidance) -> Vec<f32> {
    let mut out = Vec::with_capacity(image.len() * guidance.batch());
    for row in 0..guidance.batch() {
        if guidance == Guidance::Edit && row == 2 {
            out.resize(out.len() + image.len(), 0.0);
        } else {
            out.extend_from_slice(image);
        }
    }
    out
}

/// The UNet input: per batch row, the `n` scaled latents then the `n` image latents (channel
/// concatenation of `[batch, 4, h, w]` tensors).
pub fn concat(scaled: &[f32], image: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(scaled.len() * 2);
    for (s, i) in scaled.chunks(n).zip(image.chunks(n)) {
        out.extend_from_slice(s);
        out.extend_from_slice(i);
    }
    out
}

/// Three-way guidance of `pred` (`[t, i, u]`, `n` values each):
/// `u + g_t·(t − i) + g_i·(i − u)`, in diffusers' order of operations.
pub fn combine(pred: &[f32], n: usize, cfg_scale: f32, image_cfg_scale: f32) -> Vec<f32> {
    let (t, rest) = pred.split_at(n);
    let (i, u) = rest.split_at(n);
    t.iter()
        .zip(i)
        .zip(u)
        .map(|((t, i), u)| u + cfg_scale * (t - i) + image_cfg_scale * (i - u))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_modes() {
        assert_eq!(Guidance::of(1.0, 1.5), Guidance::Single);
        assert_eq!(Guidance::of(0.5, 1.0), Guidance::Single);
        assert_eq!(Guidance::of(6.0, 1.0), Guidance::Text);
        assert_eq!(Guidance::of(6.0, 1.5), Guidance::Edit);
        assert_eq!(Guidance::of(6.0, 0.5), Guidance::Edit);
    }

    #[test]
    fn three_way_formula_and_rows() {
        let pred = [3.0, 1.0, 2.0, 0.5, 1.0, -1.0];
        // u + 6(t - i) + 1.5(i - u)
        assert_eq!(combine(&pred, 2, 6.0, 1.5), vec![8.5, 4.25]);
        // g_i = 1: i + g_t (t - i), two-way CFG with the image in both rows
        let got = combine(&pred, 2, 6.0, 1.0);
        assert_eq!(got, vec![2.0 + 6.0 * (3.0 - 2.0), 0.5 + 6.0 * 0.5]);
        assert_eq!(
            batch_image_latents(&[1.0, 2.0], Guidance::Edit),
            vec![1.0, 2.0, 1.0, 2.0, 0.0, 0.0]
        );
        assert_eq!(batch_image_latents(&[1.0], Guidance::Single), vec![1.0]);
        assert_eq!(
            concat(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2),
            vec![1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]
        );
    }
}
