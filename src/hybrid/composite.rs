//! Deforum's hybrid composite (`hybrid_composite`): the video frame pasted into the frame
//! through a mask, then blended in by `comp_alpha`. The mask steps run in Deforum's order:
//! invert, grey, equalize (before), contrast, auto-contrast, equalize (after).

use image::{GrayImage, RgbImage};

use super::mask;
use crate::scene::{HybridEqualize, HybridMaskType, HybridSettings};

/// The per-frame values the composite reads (from the `[hybrid]` schedules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompositeValues {
    /// `comp_alpha`: share of the composite blended into the frame.
    pub alpha: f64,
    /// `comp_mask_blend_alpha`: the `blend` mask's share of the video frame.
    pub mask_blend_alpha: f64,
    /// `comp_mask_contrast`: the mask's contrast factor.
    pub mask_contrast: f64,
    /// `comp_mask_auto_contrast_cutoff_low`, cast to a whole number as Deforum does.
    pub cutoff_low: i64,
    /// `comp_mask_auto_contrast_cutoff_high`, cast to a whole number.
    pub cutoff_high: i64,
}

impl CompositeValues {
    /// The values of frame `v`.
    pub fn at(v: &crate::scene::FrameValues) -> CompositeValues {
        CompositeValues {
            alpha: v.hybrid_comp_alpha,
            mask_blend_alpha: v.hybrid_comp_mask_blend_alpha,
            mask_contrast: v.hybrid_comp_mask_contrast,
            cutoff_low: v.hybrid_comp_mask_auto_contrast_cutoff_low as i64,
            cutoff_high: v.hybrid_comp_mask_auto_contrast_cutoff_high as i64,
        }
    }
}

/// A composite and what it was made of (for `comp_save_extra_frames`).
pub struct Composited {
    /// The frame after the composite.
    pub image: RgbImage,
    /// The mask after all its steps (`None` for mask type `none`).
    pub mask: Option<GrayImage>,
    /// `composite(prev, video, mask)` before the final blend.
    pub comp: RgbImage,
}

/// The composite of `video` into `prev` as `settings` and `values` say. `depth` is the depth
/// image of the depth mask types (grey, 0..=255), required for them.
pub fn composite(
    prev: &RgbImage,
    video: &RgbImage,
    depth: Option<&GrayImage>,
    settings: &HybridSettings,
    values: &CompositeValues,
) -> Composited {
    let mut m = match settings.comp_mask_type {
        HybridMaskType::None => None,
        HybridMaskType::Depth | HybridMaskType::VideoDepth => depth.cloned(),
        HybridMaskType::Blend => {
            let (a, b) = (mask::gray(prev), mask::gray(video));
            let data = mask::blend(a.as_raw(), b.as_raw(), values.mask_blend_alpha);
            GrayImage::from_raw(a.width(), a.height(), data)
        }
        HybridMaskType::Difference => Some(mask::difference(&mask::gray(prev), &mask::gray(video))),
    };
    if let Some(mk) = &mut m {
        if settings.comp_mask_inverse {
            mask::invert(mk);
        }
        let eq = settings.comp_mask_equalize;
        if matches!(eq, HybridEqualize::Before | HybridEqualize::Both) {
            *mk = mask::equalize(mk);
        }
        *mk = mask::contrast(mk, values.mask_contrast);
        if settings.comp_mask_auto_contrast {
            *mk = mask::autocontrast(mk, values.cutoff_low, values.cutoff_high);
        }
        if matches!(eq, HybridEqualize::After | HybridEqualize::Both) {
            *mk = mask::equalize(mk);
        }
    }
    let comp = match &m {
        Some(mk) => mask::composite(prev, video, mk),
        None => video.clone(),
    };
    let data = mask::blend(prev.as_raw(), comp.as_raw(), values.alpha);
    let image = RgbImage::from_raw(prev.width(), prev.height(), data).expect("same size");
    Composited {
        image,
        mask: m,
        comp,
    }
}
