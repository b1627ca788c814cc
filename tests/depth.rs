//! The depth path of 3D mode with the tiny random-weight ONNX depth model
//! (models/make_tiny_depth.py): prediction, saved 16-bit maps, the flat-depth fallback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anim::camera::depth::DepthModel;
use anim::scene::DepthSettings;
use image::RgbImage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn input() -> PathBuf {
    root().join("tests/data/warp2d/input.png")
}

fn load(p: &Path) -> RgbImage {
    image::open(p).unwrap().to_rgb8()
}

/// `anim preview` of a 3-frame 3D scene from the reference photo with `depth` as its `[depth]` table.
fn preview(dir: &Path, depth: &str) -> (Output, PathBuf) {
    let scene = format!(
        "[image]\nwidth = 96\nheight = 64\n[animation]\nmode = \"3D\"\nmax_frames = 3\n[init]\nimage = \"{}\"\n\
         [motion]\ntranslation_x = 4\ntranslation_z = 20\nrotation_3d_y = 2\n[depth]\ninput_size = 64\n{depth}",
        input().display()
    );
    let path = dir.join("scene.toml");
    std::fs::write(&path, scene).unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_anim"))
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
    (o, out)
}

#[test]
fn tiny_model_predicts_a_finite_map_at_frame_size() {
    let settings = DepthSettings {
        input_size: 64,
        ..DepthSettings::default()
    };
    let mut m = DepthModel::load(&root().join("models/tiny-depth"), &settings).unwrap();
    let img = load(&input());
    let a = m.predict(&img).unwrap();
    assert_eq!(a.len(), 96 * 64);
    assert!(a.iter().all(|v| v.is_finite()));
    let z = anim::camera::depth::depth_to_z(&a).expect("a varied map");
    assert!(z.iter().all(|v| (1.0..=2.0).contains(v)));
    assert_eq!(m.predict(&img).unwrap(), a, "deterministic");
}

#[test]
fn depth_changes_the_warp_and_maps_are_saved_as_16_bit() {
    let flat_dir = tempfile::tempdir().unwrap();
    let (_, flat) = preview(flat_dir.path(), "");
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = preview(
        dir.path(),
        &format!(
            "model = \"{}\"\nsave_depth_maps = true\n",
            root().join("models/tiny-depth/model.onnx").display()
        ),
    );
    let f = "frames/000002.png";
    assert_ne!(
        load(&out.join(f)),
        load(&flat.join(f)),
        "depth must change the 3D warp"
    );
    let map = image::open(out.join("depth/000001.png")).unwrap();
    assert_eq!(map.color(), image::ColorType::L16);
    assert_eq!((map.width(), map.height()), (96, 64));
    assert!(out.join("depth/000002.png").is_file());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let frame = &manifest["frames"][1];
    let (depth_ms, warp_ms) = (
        frame["depth_ms"].as_f64().unwrap(),
        frame["warp_ms"].as_f64().unwrap(),
    );
    assert!(depth_ms > 0.0 && depth_ms <= warp_ms, "{frame}");
    // switched off: flat depth, no maps
    let off = tempfile::tempdir().unwrap();
    let (_, o) = preview(
        off.path(),
        &format!(
            "model = \"{}\"\nuse_depth_warping = false\nsave_depth_maps = true\n",
            root().join("models/tiny-depth").display()
        ),
    );
    assert_eq!(load(&o.join(f)), load(&flat.join(f)));
    assert!(!o.join("depth").exists());
    // midas_weight 0 is flat depth
    let w0 = tempfile::tempdir().unwrap();
    let (_, o) = preview(
        w0.path(),
        &format!(
            "model = \"{}\"\nmidas_weight = 0\n",
            root().join("models/tiny-depth").display()
        ),
    );
    assert_eq!(load(&o.join(f)), load(&flat.join(f)));
}

#[test]
fn constant_depth_falls_back_to_flat_with_a_warning() {
    let flat_dir = tempfile::tempdir().unwrap();
    let (_, flat) = preview(flat_dir.path(), "");
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = preview(
        dir.path(),
        &format!(
            "model = \"{}\"\n",
            root().join("models/tiny-depth/constant.onnx").display()
        ),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("frame 1") && err.contains("flat depth"),
        "{err}"
    );
    assert_eq!(
        load(&out.join("frames/000002.png")),
        load(&flat.join("frames/000002.png"))
    );
}

#[test]
fn a_file_that_is_not_a_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not onnx").unwrap();
    let e = DepthModel::load(&bad, &DepthSettings::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("[depth] model") && e.contains("bad.onnx"), "{e}");
}

/// Largest difference between `got` and `want`, relative to `want`'s range.
fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let (lo, hi) = want
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    worst / (hi - lo)
}

/// MiDaS / Depth-Anything / Deforum preprocessing, the model through ONNX Runtime, torch's
/// bicubic resize back and Deforum's equalisation, all run in Python by
/// scripts/make_depth_refs.py: anim's maps and z agree to float rounding.
#[test]
fn depth_path_matches_python_onnxruntime_reference() {
    let dir = root().join("tests/data/depth");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let img = load(&dir.join("input.png"));
    assert_eq!(img.width() as u64, meta["width"].as_u64().unwrap());
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let settings: DepthSettings = toml::from_str(&format!(
            "input_size = {}\nmultiple_of = {}\nresize = \"{}\"\nnormalization = \"{}\"",
            case["input_size"],
            case["multiple_of"],
            case["resize"].as_str().unwrap(),
            case["normalization"].as_str().unwrap()
        ))
        .unwrap();
        let size = anim::camera::depth::input_size(
            img.width() as usize,
            img.height() as usize,
            settings.input_size,
            settings.multiple_of,
            settings.resize,
        );
        let want_size = (
            case["model_height"].as_u64().unwrap() as usize,
            case["model_width"].as_u64().unwrap() as usize,
        );
        assert_eq!(size, want_size, "{name}: model input size");
        let mut m = DepthModel::load(&root().join("models/tiny-depth"), &settings).unwrap();
        let depth = m.predict(&img).unwrap();
        let want: ndarray::Array2<f32> =
            ndarray_npy::read_npy(dir.join(format!("{name}_depth.npy"))).unwrap();
        let depth_err = max_rel_err(&depth, want.as_slice().unwrap());
        assert!(
            depth_err < 2e-5,
            "{name}: depth differs by {depth_err} of its range"
        );
        let z = anim::camera::depth::depth_to_z(&depth).unwrap();
        let want: ndarray::Array2<f32> =
            ndarray_npy::read_npy(dir.join(format!("{name}_z.npy"))).unwrap();
        let err = max_rel_err(&z, want.as_slice().unwrap());
        assert!(err < 5e-4, "{name}: z differs by {err}");
        eprintln!("{name}: model input {size:?}, depth err {depth_err:.2e}, z err {err:.2e}");
    }
}

/// MiDaS's size rules on frames Deforum users render (DPT at 384, multiple of 32; Depth-Anything
/// at 518, multiple of 14).
#[test]
fn model_input_sizes_follow_midas_rules() {
    use anim::camera::depth::input_size;
    use anim::scene::DepthResize::*;
    assert_eq!(input_size(512, 512, 384, 32, Minimal), (384, 384));
    assert_eq!(input_size(1280, 720, 384, 32, Minimal), (384, 672));
    assert_eq!(input_size(720, 1280, 384, 32, Minimal), (672, 384));
    assert_eq!(input_size(1280, 720, 518, 14, LowerBound), (518, 924));
    assert_eq!(input_size(512, 512, 518, 14, LowerBound), (518, 518));
    assert_eq!(input_size(1280, 720, 518, 14, Square), (518, 518));
}
