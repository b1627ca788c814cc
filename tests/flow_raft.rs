//! RAFT through ONNX with the tiny random-weight export (models/make_tiny_raft.py): the flow of
//! crops of real-photo pairs (tests/data/flow/pairs/) against torchvision's RAFT with the same
//! weights (tests/data/flow/raft/, written by the same script), in both IO flavours, and the
//! errors for folders that are not RAFT exports.

use std::path::{Path, PathBuf};

use anim::flow::raft::{ChannelOrder, Flavour, Raft};
use anim::flow::{Estimator, Flow, Method};
use image::RgbImage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("models/tiny-raft")
}

/// A Middlebury `.flo` file: (width, height, interleaved u, v).
fn read_flo(path: &Path) -> (u32, u32, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"PIEH", "{}", path.display());
    let w = u32::from_le_bytes(b[4..8].try_into().unwrap());
    let h = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let data: Vec<f32> = b[12..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), 2 * (w * h) as usize);
    (w, h, data)
}

/// Reference case `name` of tests/data/flow/raft/cases.json: the two cropped frames and
/// torch's flow.
fn case(name: &str) -> (RgbImage, RgbImage, (u32, u32, Vec<f32>)) {
    let dir = root().join("tests/data/flow/raft");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let c = &cases[name];
    let n = |k: &str| c[k].as_u64().unwrap() as u32;
    let pair = c["pair"].as_str().unwrap();
    let load = |s: &str| {
        let img = image::open(root().join(format!("tests/data/flow/pairs/{pair}_{s}.png")))
            .unwrap()
            .to_rgb8();
        image::imageops::crop_imm(&img, n("x0"), n("y0"), n("width"), n("height")).to_image()
    };
    (
        load("a"),
        load("b"),
        read_flo(&dir.join(format!("{name}.flo"))),
    )
}

/// The largest |anim − torch| over all u and v, and how many differ by more than `tol`.
fn compare(flow: &Flow, want: &(u32, u32, Vec<f32>), tol: f32) -> (f32, usize) {
    assert_eq!((flow.width(), flow.height()), (want.0, want.1));
    let diffs = flow
        .as_slice()
        .iter()
        .zip(&want.2)
        .map(|(a, b)| (a - b).abs());
    let max = diffs.clone().fold(0.0f32, f32::max);
    (max, diffs.filter(|d| *d > tol).count())
}

/// The pass bar: the issue asks for 1e-4 px; anim and ORT reach 4e-6 px against torch here,
/// with under 2.3 % of the values more than 2e-6 px off (float32 reassociation).
fn check(max: f32, over: usize, n: usize) {
    assert!(max < 1e-5, "max |anim - torch| {max} px (bar 1e-5)");
    assert!(
        over * 100 <= 3 * n,
        "{over} of {n} values differ by more than 2e-6 px (bar 3 %)"
    );
}

/// A copy of the tiny export's model.onnx (and `config`, when given) in a temporary folder.
fn copy_export(model: &Path, config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model, dir.path().join("model.onnx")).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.path().join("config.json"), c).unwrap();
    }
    dir
}

#[test]
fn tiny_export_matches_torchvision_on_a_photo_pair() {
    let (a, b, want) = case("shift");
    let mut raft = Raft::load(&tiny()).unwrap();
    assert_eq!(raft.flavour(), Flavour::Torchvision);
    assert_eq!(raft.channel_order(), ChannelOrder::Bgr);
    assert_eq!(raft.fixed_size(), None);
    let flow = raft.flow(&a, &b).unwrap();
    let (max, over) = compare(&flow, &want, 2e-6);
    check(max, over, want.2.len());
    // the flow is not trivial: it moves pixels by several pixels
    assert!(want.2.iter().any(|v| v.abs() > 3.0));

    // the estimator the rest of anim calls gives the same flow
    let mut est = Estimator::new(Method::Raft, Some(&tiny())).unwrap();
    assert_eq!(est.flow(&a, &b, None).unwrap(), flow);
}

#[test]
fn sides_not_multiples_of_8_are_padded_by_replication_and_cropped_back() {
    let (a, b, want) = case("bigshift_odd");
    assert_eq!(a.dimensions(), (123, 126));
    let flow = Raft::load(&tiny()).unwrap().flow(&a, &b).unwrap();
    let (max, over) = compare(&flow, &want, 2e-6);
    check(max, over, want.2.len());
}

#[test]
fn pinto_flavour_is_detected_from_the_graph_and_resized_to_its_size() {
    let (a, b, want) = case("subject_pinto");
    assert_eq!(a.dimensions(), (144, 136));
    let dir = tiny().join("pinto");
    assert!(!dir.join("config.json").exists());
    let mut raft = Raft::load(&dir).unwrap();
    assert_eq!(raft.flavour(), Flavour::Pinto);
    assert_eq!(raft.channel_order(), ChannelOrder::Rgb);
    assert_eq!(raft.fixed_size(), Some((128, 128)));
    let flow = raft.flow(&a, &b).unwrap();
    let (max, over) = compare(&flow, &want, 2e-6);
    check(max, over, want.2.len());
}

#[test]
fn torchvision_flavour_is_detected_from_the_graph_without_config() {
    let (a, b, _) = case("shift");
    let dir = copy_export(&tiny().join("model.onnx"), None);
    let mut raft = Raft::load(dir.path()).unwrap();
    assert_eq!(raft.flavour(), Flavour::Torchvision);
    assert_eq!(raft.channel_order(), ChannelOrder::Bgr);
    let want = Raft::load(&tiny()).unwrap().flow(&a, &b).unwrap();
    assert_eq!(raft.flow(&a, &b).unwrap(), want);
}

#[test]
fn rgb_channel_order_feeds_the_channels_swapped() {
    let (a, b, _) = case("shift");
    let bgr = Raft::load(&tiny()).unwrap().flow(&a, &b).unwrap();
    let dir = copy_export(
        &tiny().join("model.onnx"),
        Some(r#"{"flavour": "torchvision", "channel_order": "rgb"}"#),
    );
    let mut rgb = Raft::load(dir.path()).unwrap();
    assert_eq!(rgb.channel_order(), ChannelOrder::Rgb);
    let swap = |img: &RgbImage| {
        let mut s = img.clone();
        s.pixels_mut().for_each(|p| p.0.swap(0, 2));
        s
    };
    assert_eq!(rgb.flow(&swap(&a), &swap(&b)).unwrap(), bgr);
}

#[test]
fn a_folder_without_model_onnx_is_named_with_how_to_export() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", Raft::load(dir.path()).err().unwrap());
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(err.contains("no model.onnx"), "{err}");
    assert!(err.contains("scripts/export_raft.py"), "{err}");
    let err = format!("{:#}", Estimator::new(Method::Raft, None).err().unwrap());
    assert!(err.contains("model folder"), "{err}");
}

#[test]
fn a_model_with_other_inputs_is_refused_naming_them() {
    // the tiny depth model: one input `pixel_values`, one output
    let dir = copy_export(&root().join("models/tiny-depth/model.onnx"), None);
    let err = format!("{:#}", Raft::load(dir.path()).err().unwrap());
    assert!(err.contains("is not a RAFT export"), "{err}");
    assert!(err.contains("`pixel_values`"), "{err}");
    assert!(err.contains("scripts/export_raft.py"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");

    // a config.json naming inputs the model lacks
    let dir = copy_export(
        &tiny().join("model.onnx"),
        Some(r#"{"flavour": "torchvision", "inputs": ["left", "right"]}"#),
    );
    let err = format!("{:#}", Raft::load(dir.path()).err().unwrap());
    assert!(err.contains("`left`") && err.contains("`image1`"), "{err}");

    // an unknown flavour or channel order
    for (config, what) in [
        (r#"{"flavour": "princeton"}"#, "flavour \"princeton\""),
        (
            r#"{"flavour": "torchvision", "channel_order": "bgra"}"#,
            "channel_order \"bgra\"",
        ),
        (r#"{"flavour": 3}"#, "config.json"),
    ] {
        let dir = copy_export(&tiny().join("model.onnx"), Some(config));
        let err = format!("{:#}", Raft::load(dir.path()).err().unwrap());
        assert!(err.contains(what), "{config}: {err}");
    }
}

#[test]
fn frames_of_different_sizes_are_refused() {
    let mut raft = Raft::load(&tiny()).unwrap();
    let err = raft
        .flow(&RgbImage::new(128, 128), &RgbImage::new(136, 128))
        .unwrap_err()
        .to_string();
    assert!(err.contains("128x128 and 136x128"), "{err}");
    let err = raft
        .flow(&RgbImage::new(0, 8), &RgbImage::new(0, 8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("0x8"), "{err}");
}
