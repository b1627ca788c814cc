//! Helpers shared by the camera reference tests (tests/warp2d.rs, tests/flip.rs, tests/warp3d.rs);
//! `sd` holds those of the diffusion parity tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anim::scene::Border;
use anim::warp::Motion2D;
use image::RgbImage;

/// `tests/data/<sub>`.
pub fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

/// The `cases` array of `tests/data/<sub>/cases.json`.
pub fn cases(sub: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data(sub).join("cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// The 2D motion of a reference case.
pub fn motion_2d(c: &serde_json::Value) -> Motion2D {
    let f = |k: &str| c[k].as_f64().unwrap();
    Motion2D {
        angle: f("angle"),
        zoom: f("zoom"),
        translation_x: f("translation_x"),
        translation_y: f("translation_y"),
        transform_center_x: f("transform_center_x"),
        transform_center_y: f("transform_center_y"),
    }
}

/// The border mode of a reference case.
pub fn border(c: &serde_json::Value) -> Border {
    match c["border"].as_str().unwrap() {
        "replicate" => Border::Replicate,
        "wrap" => Border::Wrap,
        "reflect" => Border::Reflect,
        _ => Border::Zero,
    }
}

/// An image file as RGB8.
pub fn load_rgb(p: &Path) -> RgbImage {
    image::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

pub mod sd;

/// Peak signal-to-noise ratio in dB (infinite when identical).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}
