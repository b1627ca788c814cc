//! Deforum's masks: mask expressions and their per-frame schedule (`expr.rs`), and the Pillow-exact
//! mask images (`image.rs`: `prepare_mask`, the init image's alpha, the overlay after generation).
//! The `[mask]` table is [`crate::scene::MaskSettings`]; docs/scene-format.md, "`[mask]`", says what
//! each key does and where anim differs from Deforum.

pub mod expr;
pub mod image;
pub mod latent;

pub use expr::{MASK_NESTING, MaskExpr, MaskOp, MaskSchedule, MaskSources};
pub use image::{alpha_mask, overlay, prepare_mask, resize_gray, threshold};
pub use latent::{blur_kernel_size, keep_outside, latent_mask};
pub mod frame;

pub use frame::FrameMasks;
