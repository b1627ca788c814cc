//! Flow motion against references made with numpy, scipy and OpenCV from the research's formulas
//! (scripts/make_flowmotion_refs.py → tests/data/flowmotion): Deforum's optical-flow warp, the
//! consistency mask and its blur, one hybrid-motion "Optical Flow" frame from OpenCV's flows, and
//! the units of optical-flow cadence.

use std::path::PathBuf;

use anim::flow::Flow;
use anim::flow::warp::{
    INCONSISTENT, apply_flow, blur_consistency, cadence_increment, filter_flow, make_consistency,
};
use image::RgbImage;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/flowmotion")
        .join(name)
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("meta.json")).unwrap()).unwrap()
}

fn png(name: &str) -> RgbImage {
    image::open(data(name)).unwrap().to_rgb8()
}

fn floats(name: &str) -> Vec<f32> {
    std::fs::read(data(name))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn flow(name: &str, w: u32, h: u32) -> Flow {
    Flow::from_vec(w, h, floats(name)).unwrap()
}

/// (largest difference, count of differing values) of two pictures.
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0, 0), |(m, n), (x, y)| {
            let d = x.abs_diff(*y);
            (m.max(d), n + usize::from(d > 0))
        })
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// The warp equals OpenCV's padded remap, for flows reaching 0.3 and 0.45 of the size outside
/// the frame (beyond the quarter padding too), factors 1, 0.7 and -1.3.
#[test]
fn warp_matches_opencv_padded_remap() {
    let src = png("warp_src.png");
    for case in meta()["warp"].as_array().unwrap() {
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let f = flow(case["flow"].as_str().unwrap(), w, h);
        let out = apply_flow(&src, &f, case["factor"].as_f64().unwrap());
        let want = png(case["out"].as_str().unwrap());
        let (max, n) = diff(&out, &want);
        assert!(
            max == 0,
            "{}: max difference {max} on {n} values",
            case["out"]
        );
    }
}

/// The consistency mask is exactly OpenCV/numpy's (-0.75 or 1 per pixel), its blur scipy's
/// gaussian_filter (σ 1, 2, 3, truncate 1, zero padding) and the masked flow the product.
#[test]
fn consistency_mask_blur_and_filter_match_numpy() {
    let m = meta();
    let size = m["consistency_size"].as_array().unwrap();
    let (w, h) = (
        size[0].as_u64().unwrap() as u32,
        size[1].as_u64().unwrap() as u32,
    );
    let fwd = flow("cons_fwd.bin", w, h);
    let bwd = flow("cons_bwd.bin", w, h);
    let mask = make_consistency(&fwd, &bwd).unwrap();
    let want: Vec<f32> = floats("cons_mask0.bin")
        .iter()
        .step_by(2)
        .copied()
        .collect();
    assert_eq!(mask, want);
    let bad = mask.iter().filter(|v| **v == INCONSISTENT).count();
    assert_eq!(bad as u64, m["consistency_inconsistent"].as_u64().unwrap());
    for case in m["consistency"].as_array().unwrap() {
        let blur = case["blur"].as_u64().unwrap() as u32;
        let got = blur_consistency(&mask, w, h, blur).unwrap();
        let want: Vec<f32> = floats(case["mask"].as_str().unwrap())
            .iter()
            .step_by(2)
            .copied()
            .collect();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "blur {blur}: largest difference {worst}");
        let filtered = filter_flow(&fwd, &got).unwrap();
        let want = floats(case["filtered"].as_str().unwrap());
        let worst = filtered
            .as_slice()
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "blur {blur}: filtered flow off by {worst}");
    }
}

/// One hybrid-motion "Optical Flow" frame from OpenCV's Farneback flows (forward and backward
/// between two video frames): consistency, blur 2, factor 1 and 0.8, and no consistency.
#[test]
fn hybrid_optical_flow_frame_matches_python() {
    let m = meta();
    let prev = png("hyb_prev.png");
    let (w, h) = prev.dimensions();
    let fwd = flow("hyb_fwd.bin", w, h);
    let bwd = flow("hyb_bwd.bin", w, h);
    for case in m["hybrid"].as_array().unwrap() {
        let f = if case["consistency"].as_bool().unwrap() {
            let mask = make_consistency(&fwd, &bwd).unwrap();
            let mask =
                blur_consistency(&mask, w, h, case["blur"].as_u64().unwrap() as u32).unwrap();
            filter_flow(&fwd, &mask).unwrap()
        } else {
            fwd.clone()
        };
        let out = apply_flow(&prev, &f, case["factor"].as_f64().unwrap());
        let want = png(case["out"].as_str().unwrap());
        let (max, n) = diff(&out, &want);
        let db = psnr(&out, &want);
        assert!(
            max == 0 && db >= 40.0,
            "{}: max {max} on {n} values, {db:.1} dB",
            case["out"]
        );
    }
}

/// Deforum's cadence units: a flow whose largest component is 12 px gives per-tween increments
/// whose largest component is `tween` px (the factor then scales the warp); the direction is
/// kept; a zero flow gives zero, not NaN.
#[test]
fn cadence_increments_are_normalised_to_one_pixel() {
    let (w, h) = (16u32, 12u32);
    let data: Vec<f32> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            [16.0 * x / (w - 1) as f32 - 4.0, 3.0 - 0.5 * y]
        })
        .collect();
    let f = Flow::from_vec(w, h, data).unwrap();
    for tween in [0.25, 0.5, 1.0] {
        let inc = cadence_increment(&f, tween);
        let max = inc.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            (f64::from(max) - tween).abs() < 1e-6,
            "tween {tween}: {max}"
        );
        let (a, b) = (f.at(3, 4), inc.at(3, 4));
        assert!((a[0] / 12.0 * tween as f32 - b[0]).abs() < 1e-6);
        assert!((a[1] / 12.0 * tween as f32 - b[1]).abs() < 1e-6);
    }
    let zero = cadence_increment(&Flow::zeros(w, h), 0.5);
    assert!(zero.as_slice().iter().all(|v| *v == 0.0));
}

/// Frames of the hybrid renders: the clip's first 12.
const FRAMES: usize = 12;

/// A Deforum settings file with hybrid motion `motion` (flow `method`, consistency check, blur
/// 2, factor 0.9) over the first 12 frames of tests/data/hybrid/clip.mp4 with diffusion cadence
/// `cadence`, composited with a Difference mask at alpha 0.3, rendered with models/tiny-sd.
fn hybrid_settings(dir: &std::path::Path, motion: &str, method: &str, cadence: u32) -> PathBuf {
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hybrid/clip.mp4");
    let body = serde_json::json!({
        "W": 64, "H": 64, "max_frames": 3, "seed": 11, "animation_mode": "2D",
        "steps": 6, "strength_schedule": "0:(0.6)", "sampler": "Euler a",
        "zoom": "0:(1.02)", "prompts": {"0": "an astronaut, photo"},
        "video_init_path": clip.to_str().unwrap(), "extract_to_frame": FRAMES - 1,
        "diffusion_cadence": cadence,
        "hybrid_motion": motion, "hybrid_flow_method": method,
        "hybrid_flow_consistency": true, "hybrid_consistency_blur": 2,
        "hybrid_flow_factor_schedule": "0:(0.9)",
        // composite and motion together, as Deforum users run hybrid video; the render without
        // motion keeps the same composite, so the two differ by the motion only
        "hybrid_composite": "Normal", "hybrid_comp_alpha_schedule": "0:(0.3)",
        "hybrid_comp_mask_type": "Difference", "hybrid_comp_mask_auto_contrast": true,
    });
    let p = dir.join(format!(
        "{}_{}_{cadence}.txt",
        motion.replace(' ', "_"),
        method.replace(' ', "_")
    ));
    std::fs::write(&p, serde_json::to_string_pretty(&body).unwrap()).unwrap();
    p
}
fn render(s: &std::path::Path, out: &std::path::Path, halt: Option<usize>) -> Vec<Vec<u8>> {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_anim"));
    cmd.args([
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["-q", "--no-video", "--model", model.to_str().unwrap()]);
    match halt {
        None => {
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        Some(h) => {
            let mut child = cmd
                .env("ANIM_HALT_AFTER_FRAME", h.to_string())
                .spawn()
                .unwrap();
            let t = std::time::Instant::now();
            while !out.join(format!("frames/{h:06}.png")).is_file() {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the render ended early"
                );
                assert!(t.elapsed().as_secs() < 120, "frame {h} never came");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
                .args([
                    "render",
                    s.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ])
                .args([
                    "-q",
                    "--no-video",
                    "--model",
                    model.to_str().unwrap(),
                    "--resume",
                ])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    (0..FRAMES)
        .map(|i| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap())
        .collect()
}

/// Hybrid motion "Optical Flow" with `method` renders the clip's 12 frames, moves the frames
/// (they differ from a render without hybrid motion from frame 1 on), and a render killed after
/// frame 5 and resumed gives the same bytes.
fn optical_flow_renders_and_resumes(method: &str) {
    let dir = tempfile::tempdir().unwrap();
    let flow = hybrid_settings(dir.path(), "Optical Flow", method, 1);
    let none = hybrid_settings(dir.path(), "None", method, 1);
    let want = render(&flow, &dir.path().join("full"), None);
    let plain = render(&none, &dir.path().join("plain"), None);
    assert_eq!(want[0], plain[0], "frame 0 has no motion");
    for i in 1..FRAMES {
        assert_ne!(want[i], plain[i], "frame {i} is moved by the video's flow");
    }
    let got = render(&flow, &dir.path().join("part"), Some(5));
    assert_eq!(got, want, "a resumed render differs");
}

#[test]
fn hybrid_optical_flow_renders_and_resumes_bit_identical() {
    optical_flow_renders_and_resumes("Farneback");
}

/// DIS takes the previous hybrid flow as its initial field: the checkpoint keeps it, so a
/// resumed render is byte-identical.
#[test]
fn hybrid_dis_flow_resumes_bit_identical_with_its_previous_flow() {
    optical_flow_renders_and_resumes("DIS Medium");
}

/// With diffusion cadence 3, hybrid motion moves the tweens too: every frame after 0 differs
/// from the render without hybrid motion (the tweens and the key frames, whose inputs carry the
/// video's motion of every frame in between), two renders give the same bytes, and a render
/// killed after key frame 6 and resumed gives them too.
#[test]
fn hybrid_motion_moves_the_cadence_tweens_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    for (motion, method) in [("Optical Flow", "DIS Medium"), ("Perspective", "Farneback")] {
        let d = dir.path().join(motion.replace(' ', "_"));
        std::fs::create_dir_all(&d).unwrap();
        let moved = hybrid_settings(&d, motion, method, 3);
        let none = hybrid_settings(&d, "None", method, 3);
        let want = render(&moved, &d.join("full"), None);
        let plain = render(&none, &d.join("plain"), None);
        assert_eq!(want[0], plain[0], "{motion}: frame 0 has no motion");
        for i in 1..FRAMES {
            assert_ne!(
                want[i], plain[i],
                "{motion}: frame {i} is moved by the video's motion"
            );
        }
        let again = render(&moved, &d.join("again"), None);
        assert_eq!(again, want, "{motion}: a second render differs");
        let got = render(&moved, &d.join("part"), Some(6));
        assert_eq!(got, want, "{motion}: a resumed render differs");
    }
}
