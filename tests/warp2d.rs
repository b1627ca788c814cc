//! The 2D camera against OpenCV: references from scripts/make_warp_refs.py (cv2.warpPerspective with
//! Deforum's matrix on a photograph), see tests/data/warp2d/README.md.

use std::path::PathBuf;

use anim::warp::{self, Motion2D};
use image::RgbImage;

mod common;
use common::{border, psnr};

fn data() -> PathBuf {
    common::data("warp2d")
}

fn cases() -> Vec<serde_json::Value> {
    common::cases("warp2d")
}

fn motion(c: &serde_json::Value) -> Motion2D {
    common::motion_2d(c)
}

fn load(name: &str) -> RgbImage {
    image::open(data().join(name)).unwrap().to_rgb8()
}

#[test]
fn matrices_match_opencv() {
    for c in cases() {
        let m = motion(&c).matrix(96, 64);
        let want: Vec<f64> = c["M"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got: Vec<f64> = m.iter().flatten().copied().collect();
        // cos/sin may differ from the wheel's libm by one ulp
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 4.0 * f64::EPSILON * w.abs().max(1.0),
                "{}: forward {got:?} vs {want:?}",
                c["name"]
            );
        }
        let inv = warp::invert(&m).unwrap();
        let want: Vec<f64> = c["M_inv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got: Vec<f64> = inv.iter().flatten().copied().collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-15 * w.abs().max(1.0),
                "{}: inverse {got:?} vs {want:?}",
                c["name"]
            );
        }
    }
}

#[test]
fn every_case_matches_opencv() {
    let input = load("input.png");
    let mut report = Vec::new();
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let mut img = input.clone();
        for _ in 0..c["frames"].as_u64().unwrap() {
            img = warp::warp_2d(&img, &motion(&c), border(&c));
        }
        let want = load(&format!("{name}.png"));
        let p = psnr(&img, &want);
        let max = img
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        report.push(format!("{name}: PSNR {p:.1} dB, max diff {max}"));
        let floor = if c["frames"].as_u64().unwrap() > 1 {
            30.0
        } else {
            40.0
        };
        assert!(p >= floor, "{name}: PSNR {p:.1} dB < {floor}");
        // our kernel reproduces OpenCV's AVX2+FMA kernel exactly
        assert_eq!(
            max, 0,
            "{name}: not bit-identical to OpenCV (max diff {max})"
        );
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn preview_frame_one_matches_opencv() {
    // `anim preview` with the reference photo as init image: frame 1 is one Deforum 2D warp
    let dir = tempfile::tempdir().unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "combined")
        .unwrap();
    let scene = format!(
        "[image]\nwidth = 96\nheight = 64\n[animation]\nmax_frames = 3\n[init]\nimage = \"{}\"\n\
         [motion]\nangle = {}\nzoom = {}\ntranslation_x = {}\ntranslation_y = {}\ntransform_center_x = \"0:({})\"\ntransform_center_y = \"0:({})\"\n",
        data().join("input.png").display(),
        c["angle"],
        c["zoom"],
        c["translation_x"],
        c["translation_y"],
        c["transform_center_x"],
        c["transform_center_y"]
    );
    let path = dir.path().join("scene.toml");
    std::fs::write(&path, scene).unwrap();
    let out = dir.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "preview",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frame0 = image::open(out.join("frames/000000.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(frame0, load("input.png"));
    let frame1 = image::open(out.join("frames/000001.png"))
        .unwrap()
        .to_rgb8();
    let p = psnr(&frame1, &load("combined.png"));
    assert!(p >= 40.0, "preview frame 1: PSNR {p:.1} dB");
    assert!(out.join("video.mp4").is_file());
}
