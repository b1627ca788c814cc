//! Dense optical flow between two frames: the methods Deforum offers (Farneback, DIS Medium,
//! DIS Fine, RAFT), the flow field type, and its files (Middlebury `.flo`, colour-wheel PNG).
//!
//! A flow is forward: pixel `(x, y)` of frame A is at `(x + u, y + v)` in frame B.

pub mod dis;
pub mod farneback;
pub mod io;
pub mod raft;
pub mod warp;

use anyhow::{Result, bail};
use image::{GrayImage, RgbImage};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The largest side a flow field may have (frames above this are refused before allocating).
pub const MAX_SIDE: u32 = 16384;

/// A dense flow field: `u, v` per pixel, row-major, interleaved (`[u0, v0, u1, v1, …]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    width: u32,
    height: u32,
    data: Vec<f32>,
}

impl Flow {
    /// A zero flow of `width` × `height`.
    ///
    /// # Panics
    /// A side of 0 or above [`MAX_SIDE`] (callers check sizes where they read them).
    pub fn zeros(width: u32, height: u32) -> Self {
        assert!((1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height));
        Self {
            width,
            height,
            data: vec![0.0; 2 * width as usize * height as usize],
        }
    }

    /// A flow from interleaved `u, v` values.
    ///
    /// # Errors
    /// A side out of 1..=[`MAX_SIDE`] or a `data` length other than `2 · width · height`.
    pub fn from_vec(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            bail!("a flow of {width}x{height}: each side must be 1 to {MAX_SIDE}");
        }
        let want = 2 * width as usize * height as usize;
        if data.len() != want {
            bail!(
                "a {width}x{height} flow needs {want} values, got {}",
                data.len()
            );
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The flow `[u, v]` at pixel `(x, y)`.
    pub fn at(&self, x: u32, y: u32) -> [f32; 2] {
        let i = 2 * (y as usize * self.width as usize + x as usize);
        [self.data[i], self.data[i + 1]]
    }

    /// The interleaved values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The interleaved values, to change in place.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The interleaved values, taken.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

/// How a flow is computed; the names are Deforum's (`hybrid_flow_method`, `optical_flow_cadence`,
/// `optical_flow_redo_generation`) and the CLI's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// OpenCV's `calcOpticalFlowFarneback` with the parameters Deforum passes.
    Farneback,
    /// OpenCV's `DISOpticalFlow`, preset Medium.
    DisMedium,
    /// Deforum's "DIS Fine": the Fast preset with 192 gradient-descent iterations, finest scale
    /// 0, patch 8, stride 4.
    DisFine,
    /// RAFT through an ONNX export (a model folder is needed).
    Raft,
}

impl Method {
    /// Every method, in the order Deforum's menu lists them.
    pub const ALL: [Method; 4] = [
        Method::Raft,
        Method::DisMedium,
        Method::DisFine,
        Method::Farneback,
    ];

    /// The CLI name (`farneback`, `dis-medium`, `dis-fine`, `raft`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Method::Farneback => "farneback",
            Method::DisMedium => "dis-medium",
            Method::DisFine => "dis-fine",
            Method::Raft => "raft",
        }
    }

    /// Deforum's name (`Farneback`, `DIS Medium`, `DIS Fine`, `RAFT`).
    pub fn deforum_name(self) -> &'static str {
        match self {
            Method::Farneback => "Farneback",
            Method::DisMedium => "DIS Medium",
            Method::DisFine => "DIS Fine",
            Method::Raft => "RAFT",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.deforum_name())
    }
}

impl FromStr for Method {
    type Err = anyhow::Error;

    /// Either name, case and `-`/`_`/space insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Method::ALL
            .into_iter()
            .find(|m| m.cli_name().replace('-', "") == key)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL
                    .iter()
                    .map(|m| format!("{} ({})", m.cli_name(), m.deforum_name()))
                    .collect();
                anyhow::anyhow!("unknown flow method {s:?}; use one of {}", names.join(", "))
            })
    }
}

/// Grey levels as OpenCV's `cvtColor(BGR2GRAY)` makes them from the frame Deforum holds (BGR):
/// `(R·9798 + G·19235 + B·3735 + 2^14) >> 15`.
pub fn gray(img: &RgbImage) -> GrayImage {
    let data = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| {
            let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
            ((r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15) as u8
        })
        .collect();
    GrayImage::from_raw(img.width(), img.height(), data).expect("one grey value per pixel")
}

/// Computes flows with one [`Method`], holding what the method needs between calls (RAFT's
/// session).
pub struct Estimator {
    method: Method,
    raft: Option<raft::Raft>,
}

impl Estimator {
    /// An estimator for `method`; RAFT loads its ONNX export from `raft_model` (a folder).
    ///
    /// # Errors
    /// RAFT without a model folder, or a model that does not load.
    pub fn new(method: Method, raft_model: Option<&Path>) -> Result<Self> {
        let raft = match (method, raft_model) {
            (Method::Raft, Some(dir)) => Some(raft::Raft::load(dir)?),
            (Method::Raft, None) => bail!(
                "the RAFT flow method needs a model folder (an ONNX export of RAFT, made with \
                 scripts/export_raft.py): set `[model] raft` in the scene, ANIM_RAFT_MODEL, or put \
                 it in ~/.local/share/anim/models/raft"
            ),
            _ => None,
        };
        Ok(Self { method, raft })
    }

    /// The method this estimator runs.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The forward flow from `a` to `b` (same size). `init` is the previous flow, which DIS takes
    /// as its initial field as Deforum passes it; Farneback and RAFT ignore it, as Deforum's calls
    /// end up doing.
    ///
    /// # Errors
    /// Frames of different sizes, or a model that fails.
    pub fn flow(&mut self, a: &RgbImage, b: &RgbImage, init: Option<&Flow>) -> Result<Flow> {
        same_size(a, b)?;
        let grey = (self.method != Method::Raft).then(|| (gray(a), gray(b)));
        self.run(a, b, grey.as_ref().map(|(ga, gb)| (ga, gb)), init)
    }

    /// The forward flow `a → b` (with `init` as [`Estimator::flow`] takes it) and the backward
    /// flow `b → a`, as two [`Estimator::flow`] calls give them, each frame turned grey once.
    ///
    /// # Errors
    /// Frames of different sizes, or a model that fails.
    pub fn flows_both_ways(
        &mut self,
        a: &RgbImage,
        b: &RgbImage,
        init: Option<&Flow>,
    ) -> Result<(Flow, Flow)> {
        same_size(a, b)?;
        let grey = (self.method != Method::Raft).then(|| (gray(a), gray(b)));
        let fwd = self.run(a, b, grey.as_ref().map(|(ga, gb)| (ga, gb)), init)?;
        let bwd = self.run(b, a, grey.as_ref().map(|(ga, gb)| (gb, ga)), None)?;
        Ok((fwd, bwd))
    }

    /// The flow `a → b` by this estimator's method; `grey` holds the frames' grey levels for
    /// the methods that read them (all but RAFT).
    fn run(
        &mut self,
        a: &RgbImage,
        b: &RgbImage,
        grey: Option<(&GrayImage, &GrayImage)>,
        init: Option<&Flow>,
    ) -> Result<Flow> {
        let grey = || grey.expect("grey frames for a classical method");
        match self.method {
            Method::Farneback => {
                let (ga, gb) = grey();
                farneback::farneback(ga, gb, &farneback::Params::DEFORUM, None)
            }
            Method::DisMedium => {
                let (ga, gb) = grey();
                dis::dis(ga, gb, &dis::Params::MEDIUM, init)
            }
            Method::DisFine => {
                let (ga, gb) = grey();
                dis::dis(ga, gb, &dis::Params::DEFORUM_FINE, init)
            }
            Method::Raft => self.raft.as_mut().expect("loaded in new").flow(a, b),
        }
    }
}

/// Refuses two frames of different sizes.
fn same_size(a: &RgbImage, b: &RgbImage) -> Result<()> {
    if a.dimensions() != b.dimensions() {
        bail!(
            "optical flow needs two frames of one size, got {}x{} and {}x{}",
            a.width(),
            a.height(),
            b.width(),
            b.height()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.cli_name().parse::<Method>().unwrap(), m);
            assert_eq!(m.deforum_name().parse::<Method>().unwrap(), m);
        }
        let err = "lucas-kanade".parse::<Method>().unwrap_err().to_string();
        assert!(err.contains("dis-medium (DIS Medium)"), "{err}");
    }

    #[test]
    fn flow_sizes_are_checked() {
        assert!(Flow::from_vec(2, 2, vec![0.0; 8]).is_ok());
        assert!(Flow::from_vec(2, 2, vec![0.0; 7]).is_err());
        assert!(Flow::from_vec(0, 2, vec![]).is_err());
        let f = Flow::from_vec(2, 1, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(f.at(1, 0), [3.0, 4.0]);
    }
}
