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

/// A Deforum settings file with a hybrid composite over tests/data/hybrid/clip.mp4 (frames 0 to
/// 11: `max_frames` becomes 12), rendered with models/tiny-sd.
fn settings(dir: &Path) -> PathBuf {
    let body = serde_json::json!({
        "W": 64, "H": 64, "max_frames": 3, "seed": 11, "animation_mode": "2D",
        "steps": 8, "strength": 0.5, "strength_schedule": "0:(0.55)", "sampler": "Euler a",
        "zoom": "0:(1.02)", "angle": "0:(1)",
        "prompts": {"0": "an astronaut, photo"},
        "video_init_path": data("clip.mp4").to_str().unwrap(), "extract_to_frame": 11,
        "hybrid_composite": "Normal", "hybrid_comp_mask_type": "Difference",
        "hybrid_comp_mask_equalize": "After", "hybrid_comp_alpha_schedule": "0:(0.6)",
        "hybrid_comp_save_extra_frames": true,
    });
    let p = dir.join("hybrid_settings.txt");
    std::fs::write(&p, serde_json::to_string_pretty(&body).unwrap()).unwrap();
    p
}

fn render(s: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "render",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["-q", "--no-video", "--model", model.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

fn frames(out: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap_or_default())
        .collect()
}

#[test]
fn a_hybrid_composite_renders_the_clip_and_resumes_after_a_kill_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let full = dir.path().join("full");
    let o = render(&s, &full, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // max_frames is the clip's 12 frames, not the file's 3
    assert!(full.join("frames/000011.png").is_file());
    assert!(!full.join("frames/000012.png").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("manifest.json")).unwrap())
            .unwrap();
    let recs = manifest["frames"].as_array().unwrap();
    assert_eq!(recs.len(), 12);
    assert!(recs[1]["hybrid_ms"].is_number(), "{}", recs[1]);
    for name in ["video_000005.png", "mask_000005.png", "comp_000005.png"] {
        assert!(full.join("hybridframes").join(name).is_file(), "{name}");
    }
    let want = frames(&full, 12);
    // frames differ from each other: the video moves through them
    assert_ne!(want[3], want[4]);

    let part = dir.path().join("part");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "render",
            s.to_str().unwrap(),
            "--out",
            part.to_str().unwrap(),
        ])
        .args(["-q", "--no-video", "--model"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd"))
        .env("ANIM_HALT_AFTER_FRAME", "6")
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !part.join("frames/000006.png").is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the render ended early"
        );
        assert!(t.elapsed().as_secs() < 120, "frame 6 never came");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = render(&s, &part, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = frames(&part, 12);
    for i in 0..12 {
        assert_eq!(got[i], want[i], "frame {i} differs after the resume");
    }
}
