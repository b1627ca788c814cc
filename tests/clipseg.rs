//! CLIPSeg word masks with the tiny random-weight export (models/make_tiny_clipseg.py) against
//! Deforum's chain run in Python on the same model (tests/data/clipseg/, written by
//! scripts/make_clipseg_refs.py): the resized input, the logits, the mask before Otsu and the
//! final mask; word masks in expressions and in a render; the errors for missing and bad models.

use std::path::{Path, PathBuf};

use anim::mask::clipseg::{self, ClipSeg};
use image::{GrayImage, RgbImage};
use ndarray::ArrayD;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> PathBuf {
    root().join("models/tiny-clipseg")
}

fn refs() -> PathBuf {
    root().join("tests/data/clipseg")
}

fn npy(rel: &str) -> ArrayD<f32> {
    ndarray_npy::read_npy(refs().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn gray(rel: &str) -> GrayImage {
    image::open(refs().join(rel)).unwrap().to_luma8()
}

/// The reference frame `name` (tests/data/flow/pairs; "wide" is odd_a and odd_b side by side).
fn frame(name: &str) -> RgbImage {
    let pairs = root().join("tests/data/flow/pairs");
    let open = |n: &str| {
        image::open(pairs.join(format!("{n}.png")))
            .unwrap()
            .to_rgb8()
    };
    if name != "wide" {
        return open(name);
    }
    let (a, b) = (open("odd_a"), open("odd_b"));
    let mut out = RgbImage::new(a.width() + b.width(), a.height());
    image::imageops::replace(&mut out, &a, 0, 0);
    image::imageops::replace(&mut out, &b, i64::from(a.width()), 0);
    out
}

fn cases() -> Vec<(String, serde_json::Value)> {
    let text = std::fs::read_to_string(refs().join("refs.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Pixels differing between two masks of one size.
fn differing(got: &GrayImage, want: &GrayImage) -> usize {
    assert_eq!(got.dimensions(), want.dimensions());
    got.as_raw()
        .iter()
        .zip(want.as_raw())
        .filter(|(a, b)| a != b)
        .count()
}

#[test]
fn tokens_match_transformers() {
    let m = ClipSeg::load(&tiny()).unwrap();
    assert_eq!(m.size(), clipseg::DEFORUM_SIZE);
    for (name, c) in cases() {
        let (ids, mask) = m.tokens(c["words"].as_str().unwrap()).unwrap();
        let want = |k: &str| -> Vec<i64> {
            c[k].as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect()
        };
        assert_eq!(ids, want("input_ids"), "{name}");
        assert_eq!(mask, want("attention_mask"), "{name}");
    }
}

#[test]
fn resized_input_matches_torchvision() {
    for (name, c) in cases() {
        let img = frame(c["frame"].as_str().unwrap());
        let got = clipseg::pixel_values(&img, 512);
        let want = npy(&format!("{name}_pixels.npy"));
        let mut max = 0f32;
        for ch in 0..3 {
            for y in 0..64 {
                for x in 0..64 {
                    let g = got[ch * 512 * 512 + y * 8 * 512 + x * 8];
                    max = max.max((g - want[[ch, y, x]]).abs());
                }
            }
        }
        // float32 rounding of the weights and sums: 2 ulp at most here
        assert!(max < 1e-6, "{name}: pixels differ by {max}");
    }
}

#[test]
fn logits_and_masks_match_deforums_chain() {
    let mut m = ClipSeg::load(&tiny()).unwrap();
    for (name, c) in cases() {
        let img = frame(c["frame"].as_str().unwrap());
        let words = c["words"].as_str().unwrap();
        let logits = m.logits(&img, words).unwrap();
        let want = npy(&format!("{name}_logits.npy"));
        let mut max = 0f32;
        for y in 0..128 {
            for x in 0..128 {
                max = max.max((logits[y * 4 * 512 + x * 4] - want[[y, x]]).abs());
            }
        }
        let u8s = clipseg::probability_u8(&logits, 512, img.width(), img.height());
        let thresh = clipseg::otsu_threshold(&u8s);
        let mask = clipseg::otsu(&u8s);
        // ONNX Runtime's logits are within 2e-5 of torch's (1.7e-5 reached); a level of the
        // mask before Otsu then differs by one where torch's value lies that close to an integer
        // (7 of 160 000 pixels in odd_sky), and a final pixel only where such a level is
        // Otsu's threshold itself (1 pixel in odd_sky)
        assert!(max < 3e-5, "{name}: logits differ by {max}");
        if refs().join(format!("{name}_u8.png")).is_file() {
            let want = gray(&format!("{name}_u8.png"));
            let worst = u8s
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst <= 1, "{name}: a level before Otsu differs by {worst}");
            let d = differing(&u8s, &want);
            assert!(d <= 16, "{name}: {d} levels before Otsu differ");
        }
        assert_eq!(f64::from(thresh), c["otsu"].as_f64().unwrap(), "{name}");
        let d = differing(&mask, &gray(&format!("{name}_mask.png")));
        assert!(d <= 4, "{name}: {d} mask pixels differ");
        assert_eq!(m.mask(&img, words).unwrap(), mask, "{name}");
    }
}

/// The error of loading `dir` as a CLIPSeg export.
fn load_err(dir: &Path) -> String {
    match ClipSeg::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn missing_and_bad_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // no model.onnx
    let e = load_err(dir.path());
    assert!(
        e.contains("no model.onnx") && e.contains("export_clipseg.py"),
        "{e}"
    );
    // a model without its tokenizer
    std::fs::copy(tiny().join("model.onnx"), dir.path().join("model.onnx")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("no tokenizer/"), "{e}");
    // another model (RAFT's) with a tokenizer
    let tok = dir.path().join("tokenizer");
    std::fs::create_dir(&tok).unwrap();
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        std::fs::copy(tiny().join("tokenizer").join(f), tok.join(f)).unwrap();
    }
    std::fs::copy(
        root().join("models/tiny-raft/model.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("is not a CLIPSeg export") && e.contains("input_ids"),
        "{e}"
    );
    // not an ONNX file at all
    std::fs::write(dir.path().join("model.onnx"), b"not onnx").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.onnx"), "{e}");
    // no model folder: the expression and where to put one are named
    let e = format!("{:#}", clipseg::require_model(None, "a cat").unwrap_err());
    assert!(
        e.contains("<a cat>") && e.contains("[mask] clipseg") && e.contains("ANIM_CLIPSEG_MODEL"),
        "{e}"
    );
    // too many words
    let m = ClipSeg::load(&tiny()).unwrap();
    let e = format!("{:#}", m.tokens(&"cat ".repeat(80)).unwrap_err());
    assert!(e.contains("at most 75"), "{e}");
}

/// A scene whose mask schedule has a word mask, with `[mask] clipseg` set to `model`.
fn word_scene(dir: &Path, model: Option<&Path>) -> anim::scene::Scene {
    let init = image::open(root().join("tests/data/flow/pairs/subject_a.png"))
        .unwrap()
        .to_rgb8();
    let init = image::imageops::resize(&init, 64, 64, image::imageops::FilterType::Triangle);
    init.save(dir.join("init.png")).unwrap();
    let half = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x >= 32 { 255 } else { 0 }]));
    half.save(dir.join("mask.png")).unwrap();
    let settings = dir.join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 3, "diffusion_cadence": 1, "animation_mode": "2D",
        "steps": 4, "seed": 5,
        "sampler": "Euler", "prompts": {"0": "a cat on a sofa"}, "zoom": "0:(1.02)",
        "use_init": true, "init_image": "init.png", "strength": 0.5,
        "use_mask": true, "mask_file": "mask.png", "overlay_mask": true, "full_res_mask": false,
        "mask_overlay_blur": 0, "mask_schedule": "0: (\"<cat> & !{video_mask}\")"}"#,
    )
    .unwrap();
    let (mut scene, _) = anim::scene::deforum::read_file(&settings).unwrap();
    scene.mask.clipseg = model.map(Path::to_path_buf);
    scene
}

/// `<cat> & !{video_mask}` in a render with tiny-sd and tiny-clipseg: two renders are
/// byte-identical, and after frame 0 (the mask file) the right half, black in the composed mask,
/// keeps the init image (the overlay), while the cat mask lets the left half change.
#[test]
fn word_mask_render_is_reproducible_and_composes() {
    let dir = tempfile::tempdir().unwrap();
    let scene = word_scene(dir.path(), Some(&tiny()));
    let init = image::open(dir.path().join("init.png")).unwrap().to_rgb8();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let opts = anim::render::RenderOptions {
            out: Some(out.clone()),
            quiet: true,
            no_video: true,
            model: Some(root().join("models/tiny-sd")),
            ..Default::default()
        };
        anim::render::render(&scene, &opts).unwrap();
        (0..3)
            .map(|i| {
                image::open(anim::output::frame_path(&out, i))
                    .unwrap()
                    .to_rgb8()
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (run("a"), run("b"));
    for (i, (fa, fb)) in a.iter().zip(&b).enumerate().skip(1) {
        assert_eq!(fa.as_raw(), fb.as_raw(), "frame {i}: two runs");
        let (mut kept, mut changed) = (0, 0);
        for (x, y, p) in fa.enumerate_pixels() {
            if x >= 32 {
                kept += usize::from(p == init.get_pixel(x, y));
            } else {
                changed += usize::from(p != init.get_pixel(x, y));
            }
        }
        assert_eq!(kept, 32 * 64, "frame {i}: the right half is the init image");
        assert!(changed > 0, "frame {i}: the cat mask changed nothing");
    }
    // without a model the render stops before frame 0, naming the schedule and the expression
    if std::env::var_os("ANIM_CLIPSEG_MODEL").is_none() {
        let scene = word_scene(dir.path(), None);
        if scene.clipseg_model().is_none() {
            let opts = anim::render::RenderOptions {
                out: Some(dir.path().join("none")),
                quiet: true,
                no_video: true,
                model: Some(root().join("models/tiny-sd")),
                ..Default::default()
            };
            let e = format!("{:#}", anim::render::render(&scene, &opts).unwrap_err());
            assert!(
                e.contains("mask_schedule") && e.contains("<cat>") && e.contains("clipseg"),
                "{e}"
            );
        }
    }
}
