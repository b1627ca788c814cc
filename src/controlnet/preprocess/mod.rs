//! ControlNet preprocessors in Rust, matching the A1111 ControlNet extension (v1.1.455) that
//! Deforum drives, and the OpenCV routines it calls, value for value where measured
//! (tests/preprocess.rs, references from models/make_preprocess_refs.py):
//! - [`canny`]: `cv2.Canny` on RGB; [`a1111_canny`] adds the extension's resize and padding;
//! - [`fit`](mod@fit): the resize modes that bring a map to the generation size, the
//!   extension's `high_quality_resize` and pixel-perfect resolution;
//! - [`invert`], [`depth_to_map`]: the pixel-wise maps (the depth model runs elsewhere);
//! - [`draw_poses`]: OpenPose skeletons from keypoints; [`DwPose`]: the DWPose ONNX detector
//!   and whole-body pose model that find them.
//!
//! Knows nothing of scenes, units or diffusion: images in, control maps (RGB, 8 bits) out.
//! Depends on `image`, `rayon`, and ONNX Runtime sessions (`diffusion::session`) for DWPose.

mod affine;
pub mod canny;
mod depth;
mod draw;
pub mod dwpose;
pub mod fit;
mod pose;
pub(crate) mod resize;
mod thin;

use std::fmt;
use std::str::FromStr;

use image::RgbImage;

pub use canny::{canny, canny_gray};
pub use depth::{depth_to_map, invert};
pub use dwpose::DwPose;
pub use fit::{
    Padded, ResizeMode, fit, high_quality_resize, pixel_perfect_resolution, resize_with_pad,
};
pub use pose::{Keypoint, Pose, PoseParts, draw_poses};
pub use resize::{Interpolation, resize};

/// The largest image side (pixels) the preprocessors accept: sizes beyond it are refused
/// before anything is allocated.
pub const MAX_SIDE: u32 = 16384;

/// A preprocessor input that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A name (module, resize mode) that is not known.
    #[error("unknown {what} `{name}`; expected one of: {accepted}")]
    UnknownName {
        /// What was being named.
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        accepted: String,
    },
    /// A size outside 1..=[`MAX_SIDE`].
    #[error("{what} {value} is out of range; expected 1 to {MAX_SIDE} pixels")]
    Size {
        /// Which size.
        what: &'static str,
        /// The value given.
        value: u64,
    },
    /// Data whose length or shape does not fit its stated size.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// What was given.
        what: String,
        /// The shape expected.
        expected: String,
        /// The shape found.
        found: String,
    },
    /// A NaN or infinite value.
    #[error("{what}: value {index} is not finite (NaN or infinite)")]
    NotFinite {
        /// What was given.
        what: String,
        /// Index of the first such value.
        index: usize,
    },
    /// A DWPose model that cannot be loaded or run, or gives outputs of another shape.
    #[error("DWPose {role} model {}: {message}", path.display())]
    Model {
        /// `detector` or `pose`.
        role: &'static str,
        /// The model file.
        path: std::path::PathBuf,
        /// What went wrong, and how to fix it where known.
        message: String,
    },
}

/// Checks that a side is in 1..=[`MAX_SIDE`].
pub(crate) fn check_side(what: &'static str, value: u32) -> Result<(), PreprocessError> {
    if value == 0 || value > MAX_SIDE {
        return Err(PreprocessError::Size {
            what,
            value: value as u64,
        });
    }
    Ok(())
}

/// A ControlNet unit's preprocessor (`module`), by the A1111 extension's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Module {
    /// `none`: the input image is the control map (prepared maps such as pose skeletons).
    #[default]
    None,
    /// `invert`: 255 − x, for white-background line drawings ([`invert`]).
    Invert,
    /// `canny`: OpenCV Canny edges, thresholds `threshold_a` / `threshold_b`
    /// ([`a1111_canny`]).
    Canny,
    /// `depth` / `depth_midas`: a depth model's output normalised to 0-255 ([`depth_to_map`]).
    Depth,
    /// `openpose*` / `dw_openpose_full`: DWPose keypoints drawn as a skeleton ([`DwPose`],
    /// [`draw_poses`]); the name picks the parts drawn.
    Openpose(PoseParts),
}

impl Module {
    /// Every accepted name (case and surrounding spaces are ignored).
    pub const NAMES: [&'static str; 12] = [
        "none",
        "invert",
        "invert (from white bg & black line)",
        "canny",
        "depth",
        "depth_midas",
        "openpose",
        "openpose_hand",
        "openpose_face",
        "openpose_faceonly",
        "openpose_full",
        "dw_openpose_full",
    ];

    /// The extension's name of the module.
    pub fn name(self) -> &'static str {
        match self {
            Module::None => "none",
            Module::Invert => "invert",
            Module::Canny => "canny",
            Module::Depth => "depth_midas",
            Module::Openpose(p) => match (p.body, p.hands, p.face) {
                (true, false, false) => "openpose",
                (true, true, false) => "openpose_hand",
                (true, false, true) => "openpose_face",
                (false, false, true) => "openpose_faceonly",
                _ => "dw_openpose_full",
            },
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Module {
    type Err = PreprocessError;

    /// From any name in [`Module::NAMES`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = |body, hands, face| Module::Openpose(PoseParts { body, hands, face });
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Module::None,
            "invert" | "invert (from white bg & black line)" => Module::Invert,
            "canny" => Module::Canny,
            "depth" | "depth_midas" => Module::Depth,
            "openpose" => parts(true, false, false),
            "openpose_hand" => parts(true, true, false),
            "openpose_face" => parts(true, false, true),
            "openpose_faceonly" => parts(false, false, true),
            "openpose_full" | "dw_openpose_full" => parts(true, true, true),
            _ => {
                return Err(PreprocessError::UnknownName {
                    what: "ControlNet module",
                    name: s.to_string(),
                    accepted: Module::NAMES.join(", "),
                });
            }
        })
    }
}

/// The extension's `canny` preprocessor: [`resize_with_pad`] to the processor resolution
/// `res`, [`canny`] with thresholds `low` / `high` on the padded RGB image, the padding cropped
/// off, the edges as an RGB map of the scaled size.
///
/// # Errors
/// As [`resize_with_pad`]: an empty image or `res` / the scaled size out of range.
pub fn a1111_canny(
    img: &RgbImage,
    res: u32,
    low: f32,
    high: f32,
) -> Result<RgbImage, PreprocessError> {
    let padded = resize_with_pad(img, res)?;
    let edges = canny(&padded.image, low, high);
    let (w, h, pw) = (
        padded.width as usize,
        padded.height as usize,
        padded.image.width() as usize,
    );
    let mut out = Vec::with_capacity(w * h * 3);
    for line in edges.as_raw().chunks_exact(pw).take(h) {
        for &v in &line[..w] {
            out.extend_from_slice(&[v, v, v]);
        }
    }
    Ok(RgbImage::from_raw(padded.width, padded.height, out).expect("w·h·3 values"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_round_trip() {
        for n in Module::NAMES {
            let m: Module = n.parse().unwrap();
            assert_eq!(m.name().parse::<Module>().unwrap(), m, "{n}");
        }
        assert_eq!(" Canny ".parse::<Module>().unwrap(), Module::Canny);
        assert_eq!(
            "dw_openpose_full".parse::<Module>().unwrap(),
            Module::Openpose(PoseParts::FULL)
        );
        let e = "scribble".parse::<Module>().unwrap_err().to_string();
        assert!(
            e.contains("`scribble`") && e.contains("dw_openpose_full"),
            "{e}"
        );
    }

    #[test]
    fn a1111_canny_keeps_the_scaled_size() {
        let img = RgbImage::from_fn(120, 80, |x, _| image::Rgb([(x * 2) as u8; 3]));
        let map = a1111_canny(&img, 64, 100.0, 200.0).unwrap();
        assert_eq!(map.dimensions(), (96, 64));
        assert!(a1111_canny(&img, 0, 100.0, 200.0).is_err());
    }
}
