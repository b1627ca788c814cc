//! ControlNet through the whole program: a complete Deforum settings file with two units (canny
//! from a video, loopback) renders, resumes byte-identically after a kill, saves its control
//! maps; and every kind of bad unit is refused before frame 0 with a message naming the unit and
//! key.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn anim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .output()
        .unwrap()
}

/// A short video of a moving white ring on black (something for canny to find).
fn ring_video(dir: &Path, frames: usize) -> PathBuf {
    let mut paths = Vec::new();
    for k in 0..frames {
        let cx = 20.0 + 2.0 * k as f32;
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            let r = ((x as f32 - cx).powi(2) + (y as f32 - 32.0).powi(2)).sqrt();
            let v = if (12.0..16.0).contains(&r) { 255 } else { 0 };
            image::Rgb([v, v, v])
        });
        let p = dir.join(format!("ring{k:03}.png"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let video = dir.join("ring.mp4");
    anim::output::encode_mp4(
        &paths,
        &video,
        &anim::output::VideoSettings::h264(12.0, 10, "fast"),
    )
    .unwrap();
    video
}

/// The project's complete Deforum settings file, 64x64 and `frames` frames, with unit 1 canny
/// on `video` and unit 2 loopback.
fn settings(dir: &Path, video: &Path, frames: usize) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("tests/data/deforum/default_settings.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cn = |name: &str| root().join("models/tiny-controlnet").join(name);
    for (k, x) in [
        ("W", serde_json::json!(64)),
        ("H", serde_json::json!(64)),
        ("max_frames", serde_json::json!(frames)),
        ("animation_mode", serde_json::json!("2D")),
        ("steps", serde_json::json!(8)),
        ("seed", serde_json::json!(11)),
        ("cn_1_enabled", serde_json::json!(true)),
        ("cn_1_module", serde_json::json!("canny")),
        ("cn_1_model", serde_json::json!(cn("sd-1"))),
        ("cn_1_vid_path", serde_json::json!(video)),
        ("cn_1_weight", serde_json::json!("0:(0.9), 6:(0.5)")),
        ("cn_2_enabled", serde_json::json!(true)),
        ("cn_2_module", serde_json::json!("none")),
        ("cn_2_model", serde_json::json!(cn("sd-2"))),
        ("cn_2_loopback_mode", serde_json::json!(true)),
        ("cn_2_weight", serde_json::json!("0:(0.6)")),
        ("cn_2_guidance_start", serde_json::json!("0:(0.2)")),
        ("cn_2_guidance_end", serde_json::json!("0:(0.8)")),
        (
            "cn_2_control_mode",
            serde_json::json!("My prompt is more important"),
        ),
    ] {
        v[k] = x;
    }
    let p = dir.join("settings.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

fn render(s: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let model = root().join("models/tiny-sd");
    let mut args = vec![
        "render",
        s.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-video",
        "-q",
    ];
    args.extend_from_slice(extra);
    anim(&args)
}

fn frames(out: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap_or_default())
        .collect()
}

#[test]
fn deforum_file_with_two_units_renders_and_resumes_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let n = 12;
    let video = ring_video(dir.path(), n);
    let s = settings(dir.path(), &video, n);
    let o = anim(&[
        "validate",
        s.to_str().unwrap(),
        "--model",
        root().join("models/tiny-sd").to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.status.success(), "{text}");
    assert!(
        !text.contains("cn_1"),
        "cn_* keys are supported now: {text}"
    );

    let full = dir.path().join("full");
    let o = render(&s, &full, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = frames(&full, n);
    assert!(want.iter().all(|f| !f.is_empty()));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("manifest.json")).unwrap())
            .unwrap();
    let key = m["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "key" && f["index"].as_u64() > Some(0))
        .unwrap();
    assert!(key["controlnet_ms"].as_f64().is_some(), "{key}");
    let nets = m["controlnet_files_sha256"].as_array().unwrap();
    assert_eq!(nets.len(), 2, "{nets:?}");
    assert_eq!(nets[0][0], "cn_1");
    assert_eq!(nets[1][1][0][0], "model.onnx");

    // the same render without the units differs (they do condition the frames)
    let mut plain: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s).unwrap()).unwrap();
    plain["cn_1_enabled"] = false.into();
    plain["cn_2_enabled"] = false.into();
    let ps = dir.path().join("plain.json");
    std::fs::write(&ps, plain.to_string()).unwrap();
    let po = dir.path().join("plain");
    let o = render(&ps, &po, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(frames(&po, n)[0], want[0], "unit 1 changes frame 0");
    assert_ne!(frames(&po, n)[4], want[4]);

    // kill after frame 5 (the loop's test hook holds it there), resume
    let part = dir.path().join("part");
    let model = root().join("models/tiny-sd");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "render",
            s.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            part.to_str().unwrap(),
            "--no-video",
            "-q",
        ])
        .env("ANIM_HALT_AFTER_FRAME", "5")
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !part.join("frames/000005.png").is_file() {
        assert!(child.try_wait().unwrap().is_none(), "ended before frame 5");
        assert!(t.elapsed() < Duration::from_secs(120), "frame 5 never came");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = render(&s, &part, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(frames(&part, n), want, "resumed frames differ");
}

#[test]
fn control_maps_are_saved_per_unit_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.png");
    image::RgbImage::from_fn(64, 64, |x, _| image::Rgb([(x * 4) as u8, 0, 0]))
        .save(&ring)
        .unwrap();
    let s = dir.path().join("scene.toml");
    std::fs::write(
        &s,
        format!(
            r#"
[image]
width = 64
height = 64
[animation]
max_frames = 3
[generation]
seed = 3
steps = 4
[output]
save_control_maps = true
[prompts]
0 = "a ring"
[[controlnet]]
model = "{}"
input = "ring.png"
module = "invert"
resize_mode = "resize"
"#,
            root().join("models/tiny-controlnet/sd-1").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = render(&s, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in 0..3 {
        let map = image::open(out.join(format!("controlnet_1/{f:06}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(
            map.get_pixel(10, 5).0,
            [255 - 40, 255, 255],
            "frame {f}: inverted"
        );
    }
}

/// A scene with one unit whose TOML lines are `unit`, and extra top-level tables.
fn bad_scene(dir: &Path, name: &str, unit: &str) -> PathBuf {
    let s = dir.join(format!("{name}.toml"));
    std::fs::write(
        &s,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 2\n[prompts]\n0 = \"x\"\n{unit}\n"
        ),
    )
    .unwrap();
    s
}

#[test]
fn bad_units_are_refused_before_frame_0_naming_unit_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    image::RgbImage::new(64, 64).save(d.join("c.png")).unwrap();
    std::fs::write(d.join("broken.mp4"), b"not a video at all").unwrap();
    let sd1 = root().join("models/tiny-controlnet/sd-1");
    let unit = |extra: &str| format!("[[controlnet]]\ninput = \"c.png\"\n{extra}");
    let six = (0..6)
        .map(|_| unit(&format!("model = \"{}\"", sd1.display())))
        .collect::<Vec<_>>()
        .join("\n");
    // the tiny SD model without its unet_controlnet/
    let plain_model = d.join("plain-sd");
    std::fs::create_dir(&plain_model).unwrap();
    for part in [
        "model_index.json",
        "scheduler",
        "text_encoder",
        "tokenizer",
        "unet",
        "vae_encoder",
        "vae_decoder",
    ] {
        std::os::unix::fs::symlink(
            root().join("models/tiny-sd").join(part),
            plain_model.join(part),
        )
        .unwrap();
    }
    let cases: Vec<(&str, String, Vec<&str>, Option<&Path>)> = vec![
        (
            "missing_folder",
            unit("model = \"no/such/folder\""),
            vec!["#1", "no/such/folder", "does not exist"],
            None,
        ),
        (
            "not_a_controlnet",
            unit(&format!(
                "model = \"{}\"",
                root().join("models/tiny-sd/vae_decoder").display()
            )),
            vec![
                "not a ControlNet export",
                "controlnet_cond",
                "latent_sample",
            ],
            None,
        ),
        (
            "unet_without_residuals",
            unit(&format!("model = \"{}\"", sd1.display())),
            vec!["takes no ControlNet conditioning", "unet_controlnet"],
            Some(plain_model.as_path()),
        ),
        (
            "unreadable_video",
            format!(
                "[[controlnet]]\ninput = \"broken.mp4\"\nmodel = \"{}\"",
                sd1.display()
            ),
            vec!["[[controlnet]] #1 input", "broken.mp4"],
            None,
        ),
        (
            "six_units",
            six,
            vec!["6 ControlNet units", "at most 5"],
            None,
        ),
        (
            "unknown_mode",
            unit(&format!(
                "model = \"{}\"\ncontrol_mode = \"loud\"",
                sd1.display()
            )),
            vec!["[[controlnet]] #1 control_mode", "\"Balanced\""],
            None,
        ),
        (
            "window_backwards",
            unit(&format!(
                "model = \"{}\"\nguidance_start = 0.8\nguidance_end = 0.2",
                sd1.display()
            )),
            vec!["#1 guidance_start at frame 0", "starts after it ends"],
            None,
        ),
        (
            "no_input",
            format!("[[controlnet]]\nmodel = \"{}\"", sd1.display()),
            vec!["[[controlnet]] #1", "no input"],
            None,
        ),
    ];
    for (name, body, want, model) in cases {
        let s = bad_scene(d, name, &body);
        let model = model.map_or_else(|| root().join("models/tiny-sd"), Path::to_path_buf);
        for cmd in ["validate", "render"] {
            let out = d.join(format!("out-{name}"));
            let mut args = vec![cmd, s.to_str().unwrap(), "--model", model.to_str().unwrap()];
            if cmd == "render" {
                args.extend(["--out", out.to_str().unwrap(), "-q"]);
            }
            let o = anim(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{name} {cmd}: succeeded");
            assert!(!err.contains("panicked"), "{name} {cmd}: {err}");
            for w in &want {
                assert!(err.contains(w), "{name} {cmd}: {w:?} not in: {err}");
            }
            assert!(
                !out.join("frames/000000.png").exists(),
                "{name}: a frame was written"
            );
        }
    }
}

#[test]
fn a_folder_input_gives_frame_i_its_picture_and_holds_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("poses");
    std::fs::create_dir(&frames).unwrap();
    for (k, v) in [(0u8, 40u8), (1, 200)] {
        image::RgbImage::from_pixel(64, 64, image::Rgb([v, 0, 255 - v]))
            .save(frames.join(format!("pose{k}.png")))
            .unwrap();
    }
    let s = dir.path().join("scene.toml");
    std::fs::write(
        &s,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 4\n[generation]\nseed = 2\nsteps = 4\n\
             [output]\nsave_control_maps = true\n[prompts]\n0 = \"a pose\"\n[[controlnet]]\nmodel = \"{}\"\n\
             input = \"poses\"\nresize_mode = \"Just Resize\"\n",
            root().join("models/tiny-controlnet/sd-2").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = render(&s, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("input has 2 frames; frame 2 and later use its last one"),
        "{err}"
    );
    let red = |f: usize| {
        image::open(out.join(format!("controlnet_1/{f:06}.png")))
            .unwrap()
            .to_rgb8()
            .get_pixel(3, 3)
            .0[0]
    };
    assert_eq!([red(0), red(1), red(2), red(3)], [40, 200, 200, 200]);
}
