//! Hybrid video against Pillow (tests/data/hybrid/, made by scripts/make_hybrid_refs.py from
//! real photos): each Pillow operation, the LANCZOS resize and every composite case must be
//! bit-exact; and a render of a Deforum settings file with a hybrid composite over a real clip.

use std::path::{Path, PathBuf};

use anim::hybrid::{self, CompositeValues, mask, resize};
use anim::scene::{HybridComposite, HybridEqualize, HybridMaskType, HybridSettings};
use image::{GrayImage, RgbImage};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hybrid")
        .join(name)
}

fn rgb(name: &str) -> RgbImage {
    image::open(data(name)).unwrap().to_rgb8()
}

fn gray(name: &str) -> GrayImage {
    image::open(data(name)).unwrap().to_luma8()
}

/// (largest difference, number of differing values).
fn diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y));
    let max = d.clone().max().unwrap_or(0);
    (max, d.filter(|v| *v > 0).count())
}

fn exact(what: &str, ours: &[u8], want: &[u8]) {
    assert_eq!(
        diff(ours, want),
        (0, 0),
        "{what}: (max diff, differing values)"
    );
}

#[test]
fn pillow_operations_are_bit_exact() {
    let prev = rgb("prev.png");
    let video = rgb("lanczos_down.png");
    let g = mask::gray(&prev);
    exact("convert L", g.as_raw(), gray("op_gray.png").as_raw());
    for a in [0.3, 1.7, -0.4] {
        let ours = mask::blend(prev.as_raw(), video.as_raw(), a);
        exact(
            &format!("blend {a}"),
            &ours,
            rgb(&format!("op_blend_{a}.png")).as_raw(),
        );
    }
    for f in [0.5, 2.0] {
        let ours = mask::contrast(&g, f);
        exact(
            &format!("contrast {f}"),
            ours.as_raw(),
            gray(&format!("op_contrast_{f:.1}.png")).as_raw(),
        );
    }
    exact(
        "equalize",
        mask::equalize(&g).as_raw(),
        gray("op_equalize.png").as_raw(),
    );
    exact(
        "percentile auto-contrast",
        mask::autocontrast(&g, 2, 97).as_raw(),
        gray("op_autocontrast.png").as_raw(),
    );
    exact(
        "composite",
        mask::composite(&prev, &video, &gray("depth.png")).as_raw(),
        rgb("op_composite.png").as_raw(),
    );
}

#[test]
fn lanczos_matches_pillow_down_and_up() {
    let src = rgb("video_src.png");
    for (name, w, h) in [("lanczos_down.png", 96, 64), ("lanczos_up.png", 161, 101)] {
        let ours = resize::lanczos_pil(&src, w, h);
        exact(name, ours.as_raw(), rgb(name).as_raw());
    }
    // the image crate's Lanczos3 is not Pillow's: what a port avoids
    let theirs = image::imageops::resize(&src, 96, 64, image::imageops::FilterType::Lanczos3);
    let (max, n) = diff(theirs.as_raw(), rgb("lanczos_down.png").as_raw());
    assert!(max > 0 && n > 0, "image's Lanczos3 now equals Pillow's");
}

#[test]
fn every_composite_case_is_bit_exact() {
    let prev = rgb("prev.png");
    let video = resize::lanczos_pil(&rgb("video_src.png"), 96, 64);
    let depth = gray("depth.png");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 11);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let settings = HybridSettings {
            composite: HybridComposite::Normal,
            comp_mask_type: match c["mask_type"].as_str().unwrap() {
                "none" => HybridMaskType::None,
                "blend" => HybridMaskType::Blend,
                "difference" => HybridMaskType::Difference,
                "depth" => HybridMaskType::Depth,
                _ => HybridMaskType::VideoDepth,
            },
            comp_mask_inverse: c["inverse"].as_bool().unwrap(),
            comp_mask_equalize: match c["equalize"].as_str().unwrap() {
                "before" => HybridEqualize::Before,
                "after" => HybridEqualize::After,
                "both" => HybridEqualize::Both,
                _ => HybridEqualize::None,
            },
            comp_mask_auto_contrast: c["auto_contrast"].as_bool().unwrap(),
            ..HybridSettings::default()
        };
        let values = CompositeValues {
            alpha: c["alpha"].as_f64().unwrap(),
            mask_blend_alpha: c["blend_alpha"].as_f64().unwrap(),
            mask_contrast: c["contrast"].as_f64().unwrap(),
            cutoff_low: c["low"].as_f64().unwrap() as i64,
            cutoff_high: c["high"].as_f64().unwrap() as i64,
        };
        let done = hybrid::composite::composite(&prev, &video, Some(&depth), &settings, &values);
        exact(
            &format!("{name}: frame"),
            done.image.as_raw(),
            rgb(&format!("comp_{name}.png")).as_raw(),
        );
        if let Some(m) = &done.mask {
            exact(
                &format!("{name}: mask"),
                m.as_raw(),
                gray(&format!("mask_{name}.png")).as_raw(),
            );
        }
    }
}
