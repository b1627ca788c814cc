//! The 3D camera against Deforum's own `anim_frame_warp_3d` run under PyTorch (flat depth and a
//! fixed synthetic depth map, every padding and sampling mode): references from
//! scripts/make_camera_refs.py, see tests/data/warp3d/README.md.

use std::path::{Path, PathBuf};

use anim::camera3d::{self, Motion3D};
use anim::scene::{Border, PaddingMode, SamplingMode};
use anim::warp::{self, Flip};
use image::RgbImage;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/warp3d")
}

fn cases() -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(data().join("cases.json")).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn motion(c: &serde_json::Value) -> Motion3D {
    let f = |k: &str| c[k].as_f64().unwrap();
    Motion3D {
        translation_x: f("translation_x"),
        translation_y: f("translation_y"),
        translation_z: f("translation_z"),
        rotation_x: f("rotation_3d_x"),
        rotation_y: f("rotation_3d_y"),
        rotation_z: f("rotation_3d_z"),
        fov: f("fov"),
        near: f("near"),
        far: f("far"),
        aspect_ratio: f("aspect_ratio"),
    }
}

fn modes(c: &serde_json::Value) -> (PaddingMode, SamplingMode) {
    let p = serde_json::from_value(c["padding_mode"].clone()).unwrap();
    let s = serde_json::from_value(c["sampling_mode"].clone()).unwrap();
    (p, s)
}

fn load(p: &Path) -> RgbImage {
    image::open(p).unwrap().to_rgb8()
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.as_raw().len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

fn depth_map() -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(data().join("depth.npy")).unwrap();
    a.iter().copied().collect()
}

/// One Deforum 3D frame: optional perspective-flip pre-warp, then the depth warp.
fn step(img: &RgbImage, c: &serde_json::Value, z: Option<&[f32]>) -> RgbImage {
    let (p, s) = modes(c);
    let img = if c["enable_perspective_flip"].as_bool().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        let flip = Flip { theta: f("perspective_flip_theta"), phi: f("perspective_flip_phi"), gamma: f("perspective_flip_gamma"), fv: f("perspective_flip_fv") };
        warp::warp_perspective(img, &flip.matrix(img.width(), img.height()).unwrap(), Border::Replicate)
    } else {
        img.clone()
    };
    camera3d::warp_3d(&img, &motion(c), z, p, s)
}

#[test]
fn every_3d_case_matches_deforum() {
    let input = load(&data().join("../warp2d/input.png"));
    let depth = depth_map();
    let mut report = Vec::new();
    let mut seen = Vec::new();
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let z = match c["depth"].as_str().unwrap() {
            "synthetic" => Some(anim::depth::depth_to_z(&depth).unwrap()),
            "constant" => {
                assert!(anim::depth::depth_to_z(&[7.0; 96 * 64]).is_none());
                None
            }
            _ => None,
        };
        let mut img = input.clone();
        for _ in 0..c["frames"].as_u64().unwrap() {
            img = step(&img, &c, z.as_deref());
        }
        let want = load(&data().join(format!("{name}.png")));
        let p = psnr(&img, &want);
        let max = img.as_raw().iter().zip(want.as_raw()).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
        let off = img.as_raw().iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
        report.push(format!("{name}: PSNR {p:.1} dB, max diff {max}, {off} values differ"));
        let floor = if c["frames"].as_u64().unwrap() > 1 { 30.0 } else { 35.0 };
        assert!(p >= floor, "{name}: PSNR {p:.1} dB < {floor}");
        if !seen.contains(&modes(&c)) {
            seen.push(modes(&c));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(seen.len(), 9, "every padding x sampling mode has a reference");
}
