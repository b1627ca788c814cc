//! The ControlNet preprocessors against their references: OpenCV 4.12 (`cv2.Canny`, resizes,
//! drawing), controlnet_aux's pose drawing, and the A1111 extension's resize, depth and DWPose
//! behaviour re-implemented in Python; all from models/make_preprocess_refs.py, listed in
//! tests/data/preprocess/cases.json. DWPose runs the tiny models of models/make_tiny_dwpose.py.

use std::path::{Path, PathBuf};

use anim::controlnet::preprocess::{
    self, DwPose, Keypoint, Pose, PoseParts, PreprocessError, ResizeMode,
};
use anim::diffusion::SessionOptions;
use image::{GrayImage, RgbImage};

mod common;
use common::Diff;

fn data() -> PathBuf {
    common::data("preprocess")
}

fn cases(kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data().join("cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[kind].as_array().unwrap().clone()
}

fn rgb(name: &serde_json::Value) -> RgbImage {
    common::load_rgb(&data().join(name.as_str().unwrap()))
}

fn gray(name: &serde_json::Value) -> GrayImage {
    let p = data().join(name.as_str().unwrap());
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_luma8()
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

/// Pixels that differ, and the edge IoU, of two edge maps.
fn edge_stats(got: &[u8], want: &[u8]) -> (usize, f64) {
    assert_eq!(got.len(), want.len());
    let differ = got.iter().zip(want).filter(|(a, b)| a != b).count();
    let both = got
        .iter()
        .zip(want)
        .filter(|(a, b)| **a > 0 && **b > 0)
        .count();
    let any = got
        .iter()
        .zip(want)
        .filter(|(a, b)| **a > 0 || **b > 0)
        .count();
    (
        differ,
        if any == 0 {
            1.0
        } else {
            both as f64 / any as f64
        },
    )
}

#[test]
fn canny_equals_opencv() {
    let cases = cases("canny");
    assert!(cases.len() >= 15);
    for c in cases {
        let img = rgb(&c["input"]);
        let (low, high) = (num(&c["low"]) as f32, num(&c["high"]) as f32);
        let want = gray(&c["expected"]);
        let got = preprocess::canny(&img, low, high);
        let (differ, iou) = edge_stats(got.as_raw(), want.as_raw());
        assert_eq!(
            differ, 0,
            "{} at {low}/{high}: {differ} pixels differ (edge IoU {iou:.4})",
            c["input"]
        );
    }
}

#[test]
fn a1111_canny_path_equals_the_extension() {
    for c in cases("a1111_canny") {
        let img = rgb(&c["input"]);
        let res = num(&c["res"]) as u32;
        let (low, high) = (num(&c["low"]) as f32, num(&c["high"]) as f32);
        let want = gray(&c["expected"]);
        let got = preprocess::a1111_canny(&img, res, low, high).unwrap();
        assert_eq!(
            got.dimensions(),
            want.dimensions(),
            "{} at {res}",
            c["input"]
        );
        let got: Vec<u8> = got.pixels().map(|p| p.0[0]).collect();
        let (differ, iou) = edge_stats(&got, want.as_raw());
        // measured: 0 on every case, the INTER_CUBIC upscales (res 300, 512) included
        assert_eq!(
            differ,
            0,
            "{} at {res}: {differ} of {} pixels differ (edge IoU {iou:.4})",
            c["input"],
            got.len()
        );
    }
}

#[test]
fn resize_modes_equal_the_extension() {
    let cases = cases("fit");
    assert_eq!(cases.len(), 30);
    for c in cases {
        let map = rgb(&c["map"]);
        let mode: ResizeMode = c["mode"].as_str().unwrap().parse().unwrap();
        let (w, h) = (num(&c["width"]) as u32, num(&c["height"]) as u32);
        let want = rgb(&c["expected"]);
        let got = preprocess::fit(&map, mode, w, h).unwrap();
        assert_eq!(
            got.dimensions(),
            want.dimensions(),
            "{} {mode} {w}x{h}",
            c["map"]
        );
        let d = Diff::images(&got, &want);
        // INTER_CUBIC upscaling of a soft map: OpenCV hands it to Intel IPP, whose rounding
        // differs by one level on a few values (measured: at most 5 of 40500)
        assert!(
            d.max <= 1 && d.differing <= 8,
            "{} {mode} {w}x{h}: {d}",
            c["map"]
        );
        if c["map"] != "map_soft.png" {
            assert_eq!(d.differing, 0, "{} {mode} {w}x{h}: {d}", c["map"]);
        }
    }
}

/// Keypoints of a reference pose part: `[x, y]` or `[x, y, score]` per point, `null` when
/// hidden; a missing or null part is empty.
fn points(v: &serde_json::Value) -> Vec<Option<Keypoint>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    p.as_array().map(|p| Keypoint {
                        x: num(&p[0]),
                        y: num(&p[1]),
                        score: p.get(2).map_or(1.0, |s| num(s) as f32),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pose(v: &serde_json::Value) -> Pose {
    let body = points(&v["body"]);
    assert_eq!(body.len(), 18);
    Pose {
        body: std::array::from_fn(|i| body[i]),
        left_hand: points(&v["left_hand"]),
        right_hand: points(&v["right_hand"]),
        face: points(&v["face"]),
    }
}

#[test]
fn pose_drawing_equals_controlnet_aux_and_the_extension() {
    let cases = cases("pose");
    assert!(cases.len() >= 6);
    for c in cases {
        let poses: Vec<Pose> = c["poses"].as_array().unwrap().iter().map(pose).collect();
        let (w, h) = (num(&c["width"]) as u32, num(&c["height"]) as u32);
        let want = rgb(&c["expected"]);
        let got = preprocess::draw_poses(&poses, w, h, PoseParts::FULL).unwrap();
        let d = Diff::images(&got, &want);
        // the issue asks for 40 dB against controlnet_aux; the drawing is exact
        assert_eq!(d.differing, 0, "{} ({}): {d}", c["name"], c["reference"]);
    }
}

#[test]
fn depth_normalisation_equals_the_extension() {
    for c in cases("depth") {
        let values: Vec<f32> = c["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| num(v) as f32)
            .collect();
        let (w, h) = (num(&c["width"]) as u32, num(&c["height"]) as u32);
        let got = preprocess::depth_to_map(&values, w, h).unwrap();
        let want = gray(&c["expected"]);
        let got: Vec<u8> = got.pixels().map(|p| p.0[0]).collect();
        assert_eq!(&got, want.as_raw());
    }
}

fn tiny_dwpose() -> DwPose {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-dwpose");
    let opts = SessionOptions {
        device: anim::diffusion::Device::Cpu,
        cache: None,
        threads: Some(1),
        cuda_graph: false,
    };
    DwPose::load(
        &dir.join("yolox.onnx"),
        &dir.join("pose.onnx"),
        &opts,
        &mut Vec::new(),
    )
    .unwrap()
}

#[test]
fn dwpose_on_tiny_models_equals_the_reference_pipeline() {
    let c = &cases("dwpose")[0];
    let img = rgb(&c["input"]);
    let mut dw = tiny_dwpose();
    let got = dw.detect(&img).unwrap();
    let want: Vec<Pose> = c["poses"].as_array().unwrap().iter().map(pose).collect();
    assert_eq!(got.len(), want.len(), "number of people");
    assert_eq!(
        got.len(),
        2,
        "the tiny detector has two confident, separate people"
    );
    let close = |a: &[Option<Keypoint>], b: &[Option<Keypoint>], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}: point count");
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            match (p, q) {
                (None, None) => {}
                (Some(p), Some(q)) => {
                    // numpy's float32 exp (box sizes) is not correctly rounded: an ulp there
                    // moves a point by ~1e-5 px
                    assert!(
                        (p.x - q.x).abs() < 1e-4 && (p.y - q.y).abs() < 1e-4,
                        "{what} point {i}: {p:?} vs {q:?}"
                    );
                    assert!(
                        (p.score - q.score).abs() < 2e-6,
                        "{what} point {i} score: {p:?} vs {q:?}"
                    );
                }
                _ => panic!("{what} point {i}: visibility differs: {p:?} vs {q:?}"),
            }
        }
    };
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        close(&g.body, &w.body, &format!("person {k} body"));
        close(&g.left_hand, &w.left_hand, &format!("person {k} left hand"));
        close(
            &g.right_hand,
            &w.right_hand,
            &format!("person {k} right hand"),
        );
        close(&g.face, &w.face, &format!("person {k} face"));
    }
    let map = preprocess::draw_poses(&got, img.width(), img.height(), PoseParts::FULL).unwrap();
    let d = Diff::images(&map, &rgb(&c["expected"]));
    assert_eq!(d.differing, 0, "drawn map: {d}");

    let res = num(&c["a1111_res"]) as u32;
    let map = dw.a1111_map(&img, res, PoseParts::FULL).unwrap();
    let d = Diff::images(&map, &rgb(&c["a1111_expected"]));
    // the upscale to the processor resolution is INTER_CUBIC, which OpenCV rounds through Intel
    // IPP: ~1e-5 of the detector's input values differ by one level, a keypoint moves by a
    // fraction of an ulp-scale pixel, and one pixel on a limb's outline can flip (measured: 1)
    assert!(d.differing <= 6, "dw_openpose_full at {res}: {d}");
}

#[test]
fn dwpose_errors_name_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let opts = SessionOptions::default();
    let e = DwPose::load(
        &dir.join("tiny-dwpose/missing.onnx"),
        &dir.join("tiny-dwpose/pose.onnx"),
        &opts,
        &mut Vec::new(),
    )
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("missing.onnx") && msg.contains("detector") && msg.contains("yolox_l.onnx"),
        "{msg}"
    );
    // a model with another interface: the tiny depth model as the pose model
    let e = DwPose::load(
        &dir.join("tiny-dwpose/yolox.onnx"),
        &dir.join("tiny-depth/constant.onnx"),
        &opts,
        &mut Vec::new(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, PreprocessError::Model { role: "pose", .. }),
        "{e}"
    );
}

#[test]
fn sizes_out_of_range_are_errors_not_panics() {
    let img = RgbImage::new(8, 8);
    for e in [
        preprocess::a1111_canny(&img, 0, 1.0, 2.0).err(),
        preprocess::a1111_canny(&img, 100_000, 1.0, 2.0).err(),
        preprocess::fit(&img, ResizeMode::CropAndResize, 0, 64).err(),
        preprocess::fit(&RgbImage::new(0, 5), ResizeMode::JustResize, 64, 64).err(),
        preprocess::draw_poses(&[], 64, 0, PoseParts::FULL).err(),
        preprocess::depth_to_map(&[0.0; 3], 2, 2).err(),
    ] {
        let e = e.expect("an error");
        assert!(!e.to_string().is_empty());
    }
    // a map that rounds to nothing at the target scale
    let thin = RgbImage::new(1, 200);
    assert!(preprocess::fit(&thin, ResizeMode::ResizeAndFill, 64, 64).is_err());
}
