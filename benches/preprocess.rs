//! ControlNet preprocessors at 512x512 (compare with scripts/bench_preprocess.py, which times
//! OpenCV, the extension's path re-implemented in Python, and controlnet_aux on the same
//! inputs): Canny, the A1111 canny path at processor resolutions 512 and Deforum's 64 (with the
//! fit back to 512 and its edge thinning), the resize modes, pose drawing and the depth map.

use std::path::Path;

use anim::controlnet::preprocess::{self, Keypoint, Pose, PoseParts, ResizeMode};
use criterion::{Criterion, criterion_group, criterion_main};
use image::RgbImage;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// tests/data/preprocess/in_coffee.png (160x120) enlarged to 512x512 with OpenCV's
/// INTER_CUBIC (the Python script makes the same image).
fn photo() -> RgbImage {
    let small = image::open(root().join("tests/data/preprocess/in_coffee.png"))
        .unwrap()
        .to_rgb8();
    preprocess::fit(&small, ResizeMode::JustResize, 512, 512).unwrap()
}

/// The `two_overlapping` pose case (normalised keypoints, so it draws at any size).
fn poses() -> Vec<Pose> {
    let text = std::fs::read_to_string(root().join("tests/data/preprocess/cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = v["pose"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "two_overlapping")
        .unwrap()
        .clone();
    let points = |v: &serde_json::Value| -> Vec<Option<Keypoint>> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        p.as_array()
                            .map(|p| Keypoint::new(p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    case["poses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let body = points(&p["body"]);
            Pose {
                body: std::array::from_fn(|i| body[i]),
                left_hand: points(&p["left_hand"]),
                right_hand: points(&p["right_hand"]),
                face: points(&p["face"]),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let img = photo();
    let mut g = c.benchmark_group("preprocess_512");
    g.bench_function("canny_rgb", |b| {
        b.iter(|| preprocess::canny(&img, 100.0, 200.0))
    });
    g.bench_function("a1111_canny_res512", |b| {
        b.iter(|| preprocess::a1111_canny(&img, 512, 100.0, 200.0).unwrap())
    });
    g.bench_function("a1111_canny_res64", |b| {
        b.iter(|| preprocess::a1111_canny(&img, 64, 64.0, 64.0).unwrap())
    });
    // Deforum's defaults: Canny at 64 px, the map brought back to the 512x512 frame
    let edges64 = preprocess::a1111_canny(&img, 64, 64.0, 64.0).unwrap();
    g.bench_function("fit_edges64_to_512_thinned", |b| {
        b.iter(|| preprocess::fit(&edges64, ResizeMode::CropAndResize, 512, 512).unwrap())
    });
    // a soft map (a depth map at processor resolution 384) up, and the frame down
    let soft = preprocess::fit(&img, ResizeMode::JustResize, 384, 384).unwrap();
    g.bench_function("fit_soft_384_to_512_cubic", |b| {
        b.iter(|| preprocess::fit(&soft, ResizeMode::JustResize, 512, 512).unwrap())
    });
    g.bench_function("fit_512_to_256_area", |b| {
        b.iter(|| preprocess::fit(&img, ResizeMode::JustResize, 256, 256).unwrap())
    });
    g.bench_function("fit_512_to_384_area", |b| {
        b.iter(|| preprocess::fit(&img, ResizeMode::JustResize, 384, 384).unwrap())
    });
    g.bench_function("fit_512_to_768x512_fill", |b| {
        b.iter(|| preprocess::fit(&img, ResizeMode::ResizeAndFill, 768, 512).unwrap())
    });
    let people = poses();
    g.bench_function("draw_poses_two_full", |b| {
        b.iter(|| preprocess::draw_poses(&people, 512, 512, PoseParts::FULL).unwrap())
    });
    let depth: Vec<f32> = img.pixels().map(|p| p.0[1] as f32 * 0.37 + 2.0).collect();
    g.bench_function("depth_to_map", |b| {
        b.iter(|| preprocess::depth_to_map(&depth, 512, 512).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
