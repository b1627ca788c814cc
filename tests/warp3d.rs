//! The 3D camera against Deforum's own `anim_frame_warp_3d` run under PyTorch (flat depth and a
//! fixed synthetic depth map, every padding and sampling mode): references from
//! scripts/make_camera_refs.py, see tests/data/warp3d/README.md.

use std::path::{Path, PathBuf};

use anim::camera::warp2d::{self, Flip};
use anim::camera::warp3d::{self, Motion3D};
use anim::scene::{Border, PaddingMode, SamplingMode};
use image::RgbImage;

mod common;
use common::{Diff, load_rgb as load};

fn data() -> PathBuf {
    common::data("warp3d")
}

fn cases() -> Vec<serde_json::Value> {
    common::cases("warp3d")
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

fn depth_map() -> Vec<f32> {
    let a: ndarray::Array2<f32> = ndarray_npy::read_npy(data().join("depth.npy")).unwrap();
    a.iter().copied().collect()
}

/// One Deforum 3D frame: optional perspective-flip pre-warp, then the depth warp.
fn step(img: &RgbImage, c: &serde_json::Value, z: Option<&[f32]>) -> RgbImage {
    let (p, s) = modes(c);
    let img = if c["enable_perspective_flip"].as_bool().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        let flip = Flip {
            theta: f("perspective_flip_theta"),
            phi: f("perspective_flip_phi"),
            gamma: f("perspective_flip_gamma"),
            fv: f("perspective_flip_fv"),
        };
        warp2d::warp_perspective(
            img,
            &flip.matrix(img.width(), img.height()).unwrap(),
            Border::Replicate,
        )
    } else {
        img.clone()
    };
    warp3d::warp_3d(&img, &motion(c), z, p, s)
}

#[test]
fn every_3d_case_matches_deforum() {
    let input = load(&data().join("../warp2d/input.png"));
    let depth = depth_map();
    let mut seen = Vec::new();
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let z = match c["depth"].as_str().unwrap() {
            "synthetic" => Some(anim::camera::depth::depth_to_z(&depth).unwrap()),
            "constant" => {
                assert!(anim::camera::depth::depth_to_z(&[7.0; 96 * 64]).is_none());
                None
            }
            _ => None,
        };
        let mut img = input.clone();
        for _ in 0..c["frames"].as_u64().unwrap() {
            img = step(&img, &c, z.as_deref());
        }
        let d = Diff::images(&img, &load(&data().join(format!("{name}.png"))));
        eprintln!("{name}: {d}");
        // measured: one frame max diff 1 and at most 46 of 18432 values (0.25 %, bicubic with
        // border padding); ten frames max diff 2 and 23 values (0.125 %, synthetic depth)
        let (max, share) = if c["frames"].as_u64().unwrap() > 1 {
            (2, 0.0015)
        } else {
            (1, 0.003)
        };
        d.check(name, max, share);
        if !seen.contains(&modes(&c)) {
            seen.push(modes(&c));
        }
    }
    assert_eq!(
        seen.len(),
        9,
        "every padding x sampling mode has a reference"
    );
}

/// Runs `anim preview` on a scene whose frame 0 is the reference input; `animation` is added to
/// the `[animation]` table, `body` after it.
fn preview(dir: &Path, animation: &str, body: &str, frames: usize) -> PathBuf {
    let scene = format!(
        "[image]\nwidth = 96\nheight = 64\n[animation]\nmode = \"3D\"\nmax_frames = {frames}\n{animation}[init]\nimage = \"{}\"\n{body}",
        data().join("../warp2d/input.png").display()
    );
    let path = dir.join("scene.toml");
    std::fs::write(&path, scene).unwrap();
    let out = dir.join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "preview",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--no-video",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn motion_toml(c: &serde_json::Value) -> String {
    let mut s = String::from("[motion]\n");
    for k in [
        "translation_x",
        "translation_y",
        "translation_z",
        "rotation_3d_x",
        "rotation_3d_y",
        "rotation_3d_z",
        "fov",
        "near",
        "far",
        "aspect_ratio",
    ] {
        s.push_str(&format!("{k} = {}\n", c[k]));
    }
    s
}

#[test]
fn preview_3d_matches_deforum() {
    let all = cases();
    let case = |n: &str| all.iter().find(|c| c["name"] == n).unwrap().clone();
    // (max diff, share of differing values) allowed: what the warp alone reaches, checked above
    let check =
        |name: &str, animation: &str, body: &str, frames: usize, (max, share): (u8, f64)| {
            let dir = tempfile::tempdir().unwrap();
            let out = preview(dir.path(), animation, body, frames);
            let got = load(&out.join(format!("frames/{:06}.png", frames - 1)));
            let d = Diff::images(&got, &load(&data().join(format!("{name}.png"))));
            eprintln!("preview {name}: {d}");
            d.check(&format!("preview {name}, frame {}", frames - 1), max, share);
        };
    // frame 1: one Deforum 3D warp (default padding border, sampling bicubic, flat depth)
    check("combined", "", &motion_toml(&case("combined")), 2, (0, 0.0));
    // a 10-frame chain
    check(
        "chain10_combined",
        "",
        &motion_toml(&case("chain10_combined")),
        11,
        (0, 0.0),
    );
    // perspective flip before the 3D warp
    let c = case("flip");
    let mut body = motion_toml(&c);
    for k in [
        "perspective_flip_theta",
        "perspective_flip_phi",
        "perspective_flip_gamma",
        "perspective_flip_fv",
    ] {
        body.push_str(&format!("{k} = {}\n", c[k]));
    }
    body.push_str("enable_perspective_flip = true\n");
    // measured: 33 of 18432 values differ by 1 (0.18 %)
    check("flip", "", &body, 2, (1, 0.002));
    // non-default modes reach the warp
    let modes = "padding_mode = \"zeros\"\nsampling_mode = \"nearest\"\n";
    check(
        "pad_zeros_nearest",
        modes,
        &motion_toml(&case("pad_zeros_nearest")),
        2,
        (0, 0.0),
    );
}
