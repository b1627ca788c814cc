//! Helpers shared by the image reference tests (tests/warp2d.rs, tests/flip.rs, tests/warp3d.rs,
//! tests/frameloop.rs; `Diff` also tests/parity.rs);
//! `sd` holds those of the diffusion parity tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anim::camera::warp2d::Motion2D;
use anim::scene::Border;
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

/// How an 8-bit result differs from its reference: the pass criterion of the image reference
/// tests (a largest difference in levels and a cap on the share of values that differ), with
/// the PSNR for information.
#[derive(Debug, Clone, Copy)]
pub struct Diff {
    /// Largest absolute difference, in levels.
    pub max: u8,
    /// Number of values (pixels x channels) that differ.
    pub differing: usize,
    /// Number of values compared.
    pub total: usize,
    /// Peak signal-to-noise ratio in dB (infinite when identical).
    pub psnr: f64,
}

impl Diff {
    /// Compares `got` with `want` value by value; they must have the same length.
    pub fn of(got: &[u8], want: &[u8]) -> Diff {
        assert_eq!(got.len(), want.len(), "sizes differ");
        let (mut max, mut differing, mut sq) = (0u8, 0usize, 0f64);
        for (a, b) in got.iter().zip(want) {
            let d = a.abs_diff(*b);
            max = max.max(d);
            differing += usize::from(d > 0);
            sq += f64::from(d) * f64::from(d);
        }
        let mse = sq / got.len().max(1) as f64;
        let psnr = if mse == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (255.0f64 * 255.0 / mse).log10()
        };
        Diff {
            max,
            differing,
            total: got.len(),
            psnr,
        }
    }

    /// Two images of the same size.
    pub fn images(got: &RgbImage, want: &RgbImage) -> Diff {
        assert_eq!(got.dimensions(), want.dimensions(), "image sizes differ");
        Diff::of(got.as_raw(), want.as_raw())
    }

    /// The share of values that differ.
    pub fn share(&self) -> f64 {
        self.differing as f64 / self.total.max(1) as f64
    }

    /// Panics, naming `what`, unless no value differs by more than `max` levels and at most
    /// `share` of the values differ at all.
    pub fn check(&self, what: &str, max: u8, share: f64) {
        assert!(
            self.max <= max && self.share() <= share,
            "{what}: {self}; allowed: max diff {max}, {:.3} % differing",
            share * 100.0
        );
    }
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max diff {}, {} of {} values differ ({:.3} %), PSNR {:.1} dB",
            self.max,
            self.differing,
            self.total,
            self.share() * 100.0,
            self.psnr
        )
    }
}
