//! OpenCV's Farneback dense optical flow (`calcOpticalFlowFarneback`), ported.

use super::Flow;
use anyhow::{Result, bail};
use image::GrayImage;

/// Farneback's parameters, named as OpenCV names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Scale between pyramid levels (0 < pyr_scale < 1).
    pub pyr_scale: f64,
    /// Pyramid levels above the finest (0: one level).
    pub levels: u32,
    /// Averaging window size.
    pub winsize: u32,
    /// Iterations per level.
    pub iterations: u32,
    /// Neighbourhood of the polynomial expansion.
    pub poly_n: u32,
    /// Gaussian σ of the polynomial expansion.
    pub poly_sigma: f64,
    /// A Gaussian averaging window instead of a box (`OPTFLOW_FARNEBACK_GAUSSIAN`).
    pub gaussian: bool,
}

impl Params {
    /// What Deforum passes: pyr 0.5, levels 5, window 21 (box), 5 iterations, poly_n 7, σ 1.2.
    pub const DEFORUM: Params = Params {
        pyr_scale: 0.5,
        levels: 5,
        winsize: 21,
        iterations: 5,
        poly_n: 7,
        poly_sigma: 1.2,
        gaussian: false,
    };
}

/// The forward flow from `a` to `b` (to be written).
///
/// # Errors
/// Not implemented yet.
pub fn farneback(a: &GrayImage, b: &GrayImage, p: &Params, init: Option<&Flow>) -> Result<Flow> {
    let _ = (a, b, p, init);
    bail!("the Farneback flow is not built yet")
}
