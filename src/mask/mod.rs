//! Deforum's masks: mask expressions and their per-frame schedule (`expr.rs`), and the Pillow-exact
//! mask images (`image.rs`: `prepare_mask`, the init image's alpha, the overlay after generation),
//! A1111's steps around a masked generation (`a1111.rs`: fill, full-resolution crop, overlay, on
//! the Pillow ports in `pillow.rs`), its latent mask (`latent.rs`) and CLIPSeg word masks
//! (`clipseg.rs`).
//! The `[mask]` table is [`crate::scene::MaskSettings`]; docs/scene-format.md, "`[mask]`", says what
//! each key does and where anim differs from Deforum.

pub mod a1111;
pub mod clipseg;
pub mod expr;
pub mod image;
pub mod latent;
pub mod pillow;

pub use clipseg::ClipSeg;
pub use expr::{MASK_NESTING, MaskExpr, MaskOp, MaskSchedule, MaskSources};
pub use image::{alpha_mask, overlay, prepare_mask, resize_gray, threshold};
pub use latent::{LatentFill, blur_kernel_size, fill_latents, keep_outside, latent_mask};
pub mod frame;

pub use frame::FrameMasks;
