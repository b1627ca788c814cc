//! STUB (replaced by the preprocess branch): the API the unit code calls.
#![allow(missing_docs, dead_code)]

use anyhow::{Result, bail};
use image::{GrayImage, RgbImage};
use std::path::Path;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    None,
    Invert,
    Canny,
    Depth,
    Openpose,
}

impl Module {
    pub const NAMES: [&'static str; 8] = [
        "none",
        "invert",
        "canny",
        "depth",
        "depth_midas",
        "openpose",
        "openpose_full",
        "dw_openpose_full",
    ];
}

impl FromStr for Module {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" => Module::None,
            "invert" => Module::Invert,
            "canny" => Module::Canny,
            "depth" | "depth_midas" => Module::Depth,
            "openpose" | "dw_openpose_full" | "openpose_full" => Module::Openpose,
            _ => bail!(
                "unknown module {s:?}; accepted: {}",
                Module::NAMES.join(", ")
            ),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    JustResize,
    CropAndResize,
    ResizeAndFill,
}

impl ResizeMode {
    pub const NAMES: [&'static str; 8] = [
        "Just Resize",
        "Inner Fit (Scale to Fit)",
        "Outer Fit (Shrink to Fit)",
        "Crop and Resize",
        "Resize and Fill",
        "resize",
        "crop",
        "fill",
    ];
}

impl FromStr for ResizeMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "just resize" | "resize" => ResizeMode::JustResize,
            "inner fit (scale to fit)" | "crop and resize" | "crop" => ResizeMode::CropAndResize,
            "outer fit (shrink to fit)" | "resize and fill" | "fill" => ResizeMode::ResizeAndFill,
            _ => bail!(
                "unknown resize mode {s:?}; accepted: {}",
                ResizeMode::NAMES.join(", ")
            ),
        })
    }
}

pub fn fit(map: &RgbImage, _mode: ResizeMode, w: u32, h: u32) -> RgbImage {
    image::imageops::resize(map, w, h, image::imageops::FilterType::Triangle)
}

pub fn pixel_perfect_resolution(raw: (u32, u32), target: (u32, u32), mode: ResizeMode) -> u32 {
    let k0 = target.1 as f64 / raw.1 as f64;
    let k1 = target.0 as f64 / raw.0 as f64;
    let k = if mode == ResizeMode::ResizeAndFill {
        k0.min(k1)
    } else {
        k0.max(k1)
    };
    (k * raw.0.min(raw.1) as f64).round() as u32
}

pub fn canny(img: &RgbImage, _low: f32, _high: f32) -> GrayImage {
    image::imageops::grayscale(img)
}

pub fn a1111_canny(img: &RgbImage, _res: u32, low: f32, high: f32) -> RgbImage {
    let g = canny(img, low, high);
    image::DynamicImage::ImageLuma8(g).to_rgb8()
}

pub fn invert(img: &RgbImage) -> RgbImage {
    let mut o = img.clone();
    o.iter_mut().for_each(|v| *v = 255 - *v);
    o
}

pub fn depth_to_map(depth: &[f32], w: u32, h: u32) -> RgbImage {
    let (lo, hi) = depth
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    RgbImage::from_fn(w, h, |x, y| {
        let d = depth[(y * w + x) as usize];
        let v = (((d - lo) / (hi - lo).max(1e-12)) * 255.0).clamp(0.0, 255.0) as u8;
        image::Rgb([v, v, v])
    })
}

pub struct Pose;

pub struct DwPose;

impl DwPose {
    pub fn load(_detector: &Path, _pose: &Path) -> Result<DwPose> {
        bail!("openpose: not in this build yet")
    }
    pub fn detect(&mut self, _img: &RgbImage) -> Result<Vec<Pose>> {
        Ok(Vec::new())
    }
}

pub fn draw_poses(_p: &[Pose], w: u32, h: u32) -> RgbImage {
    RgbImage::new(w, h)
}
