//! The 2D camera against OpenCV: references from scripts/make_warp_refs.py (cv2.warpPerspective with
//! Deforum's matrix on a photograph), see tests/data/warp2d/README.md.

use std::path::PathBuf;

use anim::camera::warp2d::{self, Motion2D};
use image::RgbImage;

mod common;
use common::{Diff, border};

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

/// Checks each case's forward matrix against the one passed to OpenCV and the inverse against
/// `cv2.invert`'s, at frame size `w`x`h`.
fn check_matrices(cases: &[serde_json::Value], w: u32, h: u32, prefix: &str) {
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    for c in cases {
        let name = format!("{prefix}{}", c["name"].as_str().unwrap());
        let m = motion(c).matrix(w, h);
        let want = floats(&c["M"]);
        let got: Vec<f64> = m.iter().flatten().copied().collect();
        // cos/sin may differ from the wheel's libm by one ulp
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 4.0 * f64::EPSILON * w.abs().max(1.0),
                "{name}: forward {got:?} vs {want:?}"
            );
        }
        let inv = warp2d::invert(&m).unwrap();
        let want = floats(&c["M_inv"]);
        let got: Vec<f64> = inv.iter().flatten().copied().collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-15 * w.abs().max(1.0),
                "{name}: inverse {got:?} vs {want:?}"
            );
        }
    }
}

/// Warps `input` by each case (chained `frames` times) and requires OpenCV's pixels exactly:
/// the kernel reproduces OpenCV's AVX2+FMA kernel, vector body and scalar tail alike.
fn check_warps(input: &RgbImage, cases: &[serde_json::Value], prefix: &str) {
    for c in cases {
        let name = format!("{prefix}{}", c["name"].as_str().unwrap());
        let mut img = input.clone();
        for _ in 0..c["frames"].as_u64().unwrap() {
            img = warp2d::warp_2d(&img, &motion(c), border(c));
        }
        let d = Diff::images(&img, &load(&format!("{name}.png")));
        eprintln!("{name}: {d}");
        d.check(&name, 0, 0.0);
    }
}

#[test]
fn matrices_match_opencv() {
    check_matrices(&cases(), 96, 64, "");
}

#[test]
fn every_case_matches_opencv() {
    check_warps(&load("input.png"), &cases(), "");
}

/// Widths that are not multiples of 16 (72 and 200: `W % 16 == 8`; 99, 127, 13), whose last
/// columns OpenCV warps in its scalar tail: tests/data/warp2d/widths.json.
#[test]
fn widths_with_a_scalar_tail_match_opencv() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("widths.json")).unwrap())
            .unwrap();
    let sizes = doc["sizes"].as_array().unwrap();
    let mut eights = 0;
    for s in sizes {
        let (w, h) = (
            s["width"].as_u64().unwrap() as u32,
            s["height"].as_u64().unwrap() as u32,
        );
        let prefix = s["prefix"].as_str().unwrap();
        let cases = s["cases"].as_array().unwrap();
        let input = load(&format!("{prefix}input.png"));
        assert_eq!(input.dimensions(), (w, h), "{prefix}input.png");
        check_matrices(cases, w, h, prefix);
        check_warps(&input, cases, prefix);
        eights += usize::from(w % 16 == 8);
    }
    assert!(eights >= 2, "{eights} sizes with W % 16 == 8");
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
    Diff::images(&frame1, &load("combined.png")).check("preview frame 1", 0, 0.0);
    assert!(out.join("video.mp4").is_file());
}
