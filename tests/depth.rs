//! The depth path of 3D mode with the tiny random-weight ONNX depth model
//! (models/make_tiny_depth.py): prediction, saved 16-bit maps, the flat-depth fallback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anim::depth::DepthModel;
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
    let z = anim::depth::depth_to_z(&a).expect("a varied map");
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
