//! RAFT optical flow through an ONNX export.

use super::Flow;
use anyhow::{Result, bail};
use image::RgbImage;
use std::path::Path;

/// A loaded RAFT export (to be written).
pub struct Raft {
    _private: (),
}

impl Raft {
    /// Loads the export in `dir` (to be written).
    ///
    /// # Errors
    /// Not implemented yet.
    pub fn load(dir: &Path) -> Result<Self> {
        bail!("RAFT ({}) is not built yet", dir.display())
    }

    /// The forward flow from `a` to `b`.
    ///
    /// # Errors
    /// Not implemented yet.
    pub fn flow(&mut self, a: &RgbImage, b: &RgbImage) -> Result<Flow> {
        let _ = (a, b);
        bail!("RAFT is not built yet")
    }
}
