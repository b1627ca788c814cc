//! End-to-end tests of the `anim` binary: a real render with the tiny model, and every kind of bad
//! input giving one clear message and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn anim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .output()
        .expect("run anim")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a scene into a fresh temp folder; `{model}` is replaced by the tiny model's path.
fn scene(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("scene.toml");
    let model = root().join("models/tiny-sd");
    std::fs::write(&path, body.replace("{model}", &model.display().to_string())).unwrap();
    path
}

const FOUR_FRAMES: &str = r#"
[image]
width = 64
height = 64
[animation]
max_frames = 4
[generation]
seed = 1234
sampler = "Euler a"
steps = 6
strength = "0:(0.6)"
cfg_scale = 7
[motion]
zoom = "0:(1.05)"
angle = "0:(2)"
[prompts]
"0" = "a forest --neg blurry"
"2" = "a city"
[model]
folder = "{model}"
[output]
fps = 4
"#;

#[test]
fn renders_four_frames_and_an_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(dir.path(), FOUR_FRAMES);
    let out = dir.path().join("out");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut frames = Vec::new();
    for i in 0..4 {
        let p = out.join(format!("frames/{i:06}.png"));
        let img = image::open(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .to_rgb8();
        assert_eq!(img.dimensions(), (64, 64));
        frames.push(img);
    }
    assert!(!out.join("frames/000004.png").exists());
    // frames differ from one another (the loop really moves and repaints)
    for w in frames.windows(2) {
        assert_ne!(w[0], w[1]);
    }
    let info = anim::output::probe_video(&out.join("video.mp4")).unwrap();
    assert_eq!((info.frames, info.width, info.height), (4, 64, 64));
    assert_eq!(info.codec, "h264");
    assert_eq!(info.pixel_format, "yuv420p");
    assert!((info.fps - 4.0).abs() < 1e-9, "fps {}", info.fps);
    // +faststart: the moov atom comes before mdat
    let bytes = std::fs::read(out.join("video.mp4")).unwrap();
    let (mut i, mut atoms) = (0usize, Vec::new());
    while i + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        atoms.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        if size < 8 {
            break;
        }
        i += size;
    }
    let pos = |a: &str| atoms.iter().position(|x| x == a).unwrap_or(usize::MAX);
    assert!(pos("moov") < pos("mdat"), "atoms {atoms:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["seed"], 1234);
    assert_eq!(manifest["frames"].as_array().unwrap().len(), 4);
    // frame 1 ran int(6 * (1 - 0.6)) = 2 steps
    assert_eq!(manifest["frames"][1]["steps_run"], 2);

    // same scene, same seed: bit-identical frames
    let out2 = dir.path().join("out2");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--quiet",
        "--no-video",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..4 {
        let a = std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap();
        let b = std::fs::read(out2.join(format!("frames/{i:06}.png"))).unwrap();
        assert_eq!(a, b, "frame {i} differs between runs");
    }
}

#[test]
fn init_image_starts_the_animation() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.png");
    image::RgbImage::from_fn(80, 48, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 128])
    })
    .save(&init)
    .unwrap();
    let body = FOUR_FRAMES.replace(
        "[model]",
        "[init]\nimage = \"init.png\"\nstrength = 0.9\n[model]",
    );
    let s = scene(dir.path(), &body);
    let out = dir.path().join("out");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--no-video",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::open(out.join("frames/000000.png"))
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (64, 64)
    );
}

#[test]
fn init_images_in_other_formats_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    });
    // lossless formats: frame 0 of the preview is the image itself
    for ext in ["webp", "bmp", "tiff"] {
        let file = format!("init.{ext}");
        img.save(dir.path().join(&file)).unwrap();
        let body = FOUR_FRAMES.replace("[model]", &format!("[init]\nimage = \"{file}\"\n[model]"));
        let s = scene(dir.path(), &body);
        let out = dir.path().join(ext);
        let o = anim(&[
            "preview",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--no-video",
        ]);
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        let first = image::open(out.join("frames/000000.png"))
            .unwrap()
            .to_rgb8();
        assert!(first == img, "{ext}: frame 0 is not the init image");
    }
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = anim(args);
    assert!(!o.status.success(), "expected failure for {args:?}");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "error for {args:?} lacks {n:?}:\n{err}");
    }
}

/// `render` of `scene` into `out` fails with `needles` before writing any frame.
fn render_refused(scene: &Path, out: &Path, needles: &[&str]) {
    fails_with(
        &[
            "render",
            scene.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        needles,
    );
    assert!(!out.join("frames").exists(), "frames were rendered first");
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // missing scene file
    fails_with(
        &["render", d.join("nope.toml").to_str().unwrap()],
        &["nope.toml", "cannot read"],
    );
    // malformed TOML: file, line, column
    let s = scene(d, "[image]\nwidth = 64\nheight = = 3\n");
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["scene.toml", "line 3", "column"],
    );
    // unknown key with did-you-mean
    let s = scene(d, "[motion]\nzom = \"0:(1.0)\"\n");
    fails_with(
        &["render", s.to_str().unwrap()],
        &["scene.toml", "line 2", "zom", "did you mean `zoom`"],
    );
    // bad number
    let s = scene(d, "[image]\nwidth = \"sixty\"\n");
    fails_with(
        &["preview", s.to_str().unwrap()],
        &["scene.toml", "line 2", "width"],
    );
    // bad schedule expression: table, key, column
    let s = scene(d, "[motion]\nangle = \"0:(0), 5:(2*sinn(t))\"\n");
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["[motion] angle", "sinn", "column", "did you mean `sin`"],
    );
    // missing model folder / files
    let s = scene(d, &FOUR_FRAMES.replace("{model}", "no-such-model"));
    fails_with(
        &["render", s.to_str().unwrap(), "-q"],
        &["no-such-model", "does not exist"],
    );
    let partial = d.join("partial-model");
    std::fs::create_dir_all(partial.join("scheduler")).unwrap();
    for f in ["model_index.json", "scheduler/scheduler_config.json"] {
        std::fs::copy(root().join("models/tiny-sd").join(f), partial.join(f)).unwrap();
    }
    copy_dir(
        &root().join("models/tiny-sd/tokenizer"),
        &partial.join("tokenizer"),
    );
    let s = scene(
        d,
        &FOUR_FRAMES.replace("{model}", partial.to_str().unwrap()),
    );
    fails_with(
        &["render", s.to_str().unwrap(), "-q"],
        &["text_encoder/model.onnx", "missing"],
    );
    // missing init image
    let s = scene(
        d,
        &FOUR_FRAMES.replace("[model]", "[init]\nimage = \"missing.png\"\n[model]"),
    );
    fails_with(
        &["render", s.to_str().unwrap(), "-q"],
        &["missing.png", "does not exist", "[init] image"],
    );
    fails_with(&["validate", s.to_str().unwrap()], &["missing.png"]);
    // a file that is not an image
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    let s = scene(
        d,
        &FOUR_FRAMES.replace("[model]", "[init]\nimage = \"bad.png\"\n[model]"),
    );
    fails_with(&["preview", s.to_str().unwrap(), "-q"], &["bad.png"]);
    // 3D camera values that cannot form a camera: schedule and frame named
    let s = scene(
        d,
        &FOUR_FRAMES
            .replace("[animation]", "[animation]\nmode = \"3D\"")
            .replace("[motion]", "[motion]\nfov = \"0:(70), 2:(0)\""),
    );
    fails_with(
        &["preview", s.to_str().unwrap(), "-q"],
        &["scene.toml", "frame 2", "fov = 0"],
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["scene.toml", "frame 2", "fov = 0"],
    );
    // wrong mode names list the options
    let s = scene(
        d,
        &FOUR_FRAMES.replace(
            "[animation]",
            "[animation]\nmode = \"3D\"\npadding_mode = \"edge\"",
        ),
    );
    fails_with(
        &["preview", s.to_str().unwrap(), "-q"],
        &["padding_mode", "edge", "border", "reflection", "zeros"],
    );
    let s = scene(
        d,
        &FOUR_FRAMES.replace("[animation]", "[animation]\nborder = \"mirror\""),
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["border", "mirror", "replicate", "wrap", "reflect", "zero"],
    );
    let s = scene(
        d,
        &FOUR_FRAMES.replace("[animation]", "[animation]\nsampling_mode = \"cubic\""),
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["sampling_mode", "cubic", "bicubic", "bilinear", "nearest"],
    );
    // a perspective flip with no field of view
    let s = scene(
        d,
        &FOUR_FRAMES.replace(
            "[motion]",
            "[motion]\nenable_perspective_flip = true\nperspective_flip_fv = 0",
        ),
    );
    fails_with(
        &["preview", s.to_str().unwrap(), "-q"],
        &["frame 1", "perspective flip", "fv = 0"],
    );
    // a missing depth model
    let s = scene(
        d,
        &FOUR_FRAMES
            .replace("[animation]", "[animation]\nmode = \"3D\"")
            .replace("[model]", "[depth]\nmodel = \"nope.onnx\"\n[model]"),
    );
    fails_with(
        &["preview", s.to_str().unwrap(), "-q"],
        &["[depth] model", "nope.onnx", "does not exist"],
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["[depth] model", "nope.onnx", "does not exist"],
    );
    // a soundtrack that is not audio: refused before the first frame, not after the last
    std::fs::write(d.join("song.mp3"), b"not audio").unwrap();
    let s = scene(
        d,
        &FOUR_FRAMES.replace("[output]", "[output]\nsoundtrack = \"song.mp3\""),
    );
    render_refused(
        &s,
        &d.join("with-song"),
        &[
            "scene.toml",
            "[output] soundtrack",
            "song.mp3",
            "cannot read",
        ],
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["[output] soundtrack", "song.mp3"],
    );
}

#[test]
fn sizes_and_lengths_out_of_reach_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a multiple of 8 the model's UNet cannot halve evenly (the tiny UNet needs 16): named with
    // the sizes that fit, by validate and by render before frame 0
    let s = scene(d, &FOUR_FRAMES.replace("width = 64", "width = 72"));
    let needles = [
        "scene.toml",
        "[image] width = 72, height = 64",
        "multiples of 16",
        "unet/config.json",
        "try width 64 or 80 and height 64",
    ];
    fails_with(&["validate", s.to_str().unwrap()], &needles);
    render_refused(&s, &d.join("size"), &needles);
    // a typo'd frame count or size: an error, not an allocation of terabytes
    let s = scene(
        d,
        &FOUR_FRAMES.replace("max_frames = 4", "max_frames = 99999999999"),
    );
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["[animation] max_frames = 99999999999", "at most 1000000"],
    );
    // a clip skip deeper than the text encoder: refused before frame 0, naming key and frame
    let s = scene(
        d,
        &FOUR_FRAMES.replace(
            "cfg_scale = 7",
            "cfg_scale = 7\nclipskip = \"0:(1), 2:(9)\"",
        ),
    );
    render_refused(
        &s,
        &d.join("skip"),
        &[
            "scene.toml",
            "[generation] clipskip = 5 at frame 1",
            "has only 2 layers",
        ],
    );
    let s = scene(d, &FOUR_FRAMES.replace("height = 64", "height = 80000"));
    fails_with(
        &["preview", s.to_str().unwrap(), "-q"],
        &["[image] height = 80000", "at most 8192"],
    );
}

/// The settings a code review found aborting a render (allocation failures, stack overflows,
/// integer overflow) that `validate` passed: each is refused by `validate` and by `render`
/// before frame 0, naming the key and the valid range.
#[test]
fn settings_that_aborted_renders_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let deep =
        |open: &str, close: &str, n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
    let zoom = "zoom = \"0:(1.05)\"";
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "kernel",
            FOUR_FRAMES.to_string()
                + "[anti_blur]\namount = 0.5\nkernel = \"0:(999999999999999)\"\n",
            vec![
                "[anti_blur] kernel is 999999999999999 at frame 0".into(),
                "1..=64".into(),
            ],
        ),
        (
            "even-kernel",
            FOUR_FRAMES.to_string()
                + "[anti_blur]\namount = 0.5\nkernel = \"0:(5), 1:(5), 2:(4)\"\n",
            vec![
                "[anti_blur] kernel is 4 at frame 2".into(),
                "odd number".into(),
            ],
        ),
        (
            "octaves",
            FOUR_FRAMES.to_string() + "[noise]\nperlin_octaves = 70\n",
            vec!["[noise] perlin_octaves = 70".into(), "1..=4 octaves".into()],
        ),
        (
            "nesting",
            // around `t`: parentheses around a plain number make a keyframe anchor, no expression
            FOUR_FRAMES.replace(
                zoom,
                &format!("zoom = \"0:(1+{}t{})\"", "(".repeat(7000), ")".repeat(7000)),
            ),
            vec!["[motion] zoom".into(), "nests more than 256 levels".into()],
        ),
        (
            "minuses",
            FOUR_FRAMES.replace(zoom, &format!("zoom = \"0:({})\"", deep("-", "", 50_000))),
            vec!["[motion] zoom".into(), "nests more than 256 levels".into()],
        ),
        (
            "seed",
            FOUR_FRAMES.replace("seed = 1234", "seed = 9223372036854775807"),
            vec![
                "[generation] seed = 9223372036854775807".into(),
                "0..=4294967295".into(),
            ],
        ),
        (
            "cadence",
            FOUR_FRAMES.to_string() + "[cadence]\ndiffusion_cadence = 5000\n",
            vec![
                "[cadence] diffusion_cadence = 5000".into(),
                "at most 50".into(),
            ],
        ),
        // zero where a count divides, and strength outside 0..=1, were silently replaced
        (
            "seed-iter",
            FOUR_FRAMES.replace("seed = 1234", "seed = 1234\nseed_iter_N = 0"),
            vec!["[generation] seed_iter_N = 0".into(), "at least 1".into()],
        ),
        (
            "cache",
            FOUR_FRAMES.replace(
                "folder = \"{model}\"",
                "folder = \"{model}\"\ncache_size = 0",
            ),
            vec!["[model] cache_size = 0".into(), "at least 1".into()],
        ),
        (
            "strength",
            FOUR_FRAMES.replace(
                "strength = \"0:(0.6)\"",
                "strength = \"0:(0.6), 1:(0.6), 2:(1.5)\"",
            ),
            vec![
                "[generation] strength: 1.5 at frame 2".into(),
                "0..=1".into(),
            ],
        ),
    ];
    for (name, text, needles) in cases {
        let s = scene(d, &text);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        fails_with(&["validate", s.to_str().unwrap()], &needles);
        render_refused(&s, &d.join(name), &needles);
    }
}

#[test]
fn missing_onnx_runtime_says_how_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(dir.path(), FOUR_FRAMES);
    let o = Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(["render", s.to_str().unwrap(), "-q"])
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("fetch-ort.sh") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn validate_accepts_the_examples() {
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let o = anim(&["validate", p.to_str().unwrap()]);
            assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
            // modes by the names scene files use, not Rust's (was "mode TwoD")
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                out.contains("mode 2D,") || out.contains("mode 3D,"),
                "{}: {out}",
                p.display()
            );
        }
    }
}

/// Small faults a review found: `--quiet` silenced the progress bar but not the device note,
/// `schedule --help` said `-o` was needed for png, a flip at phi = 90 blamed fv.
#[test]
fn quiet_help_and_flip_messages_say_what_is_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(dir.path(), FOUR_FRAMES);
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--quiet",
        "--no-video",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "--quiet prints nothing on success");
    let help = String::from_utf8_lossy(&anim(&["schedule", "--help"]).stdout).into_owned();
    assert!(help.contains("default ./schedule.png"), "{help}");
    assert!(!help.contains("needed for png"), "{help}");
    let flip = FOUR_FRAMES.replace(
        "angle = \"0:(2)\"",
        "angle = \"0:(2)\"\nenable_perspective_flip = true\nperspective_flip_phi = \"0:(90)\"\nperspective_flip_fv = \"0:(148)\"",
    );
    let s = scene(dir.path(), &flip);
    fails_with(
        &["validate", s.to_str().unwrap()],
        &["phi = 90", "fv = 148", "edge-on"],
    );
    let o = anim(&["validate", s.to_str().unwrap()]);
    assert!(!stderr(&o).contains("fv must be"), "{}", stderr(&o));
}

#[test]
fn validate_checks_a_deforum_file_against_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let settings = root().join("tests/data/deforum/default_settings.json");
    let model = root().join("models/tiny-sd");
    let o = anim(&[
        "validate",
        settings.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // W/H the model cannot make, and a folder that is not a model: both named
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    json["W"] = 600.into();
    json["H"] = 400.into();
    let odd = dir.path().join("odd.json");
    std::fs::write(&odd, json.to_string()).unwrap();
    fails_with(
        &[
            "validate",
            odd.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ],
        &[
            "odd.json",
            "W = 600, H = 400",
            "multiples of 16",
            "try width 592 or 608",
        ],
    );
    // errors in a settings file name Deforum's key where the scene's differs
    json["W"] = 512.into();
    json["H"] = 512.into();
    json["strength_schedule"] = "0:(2*sinn(t))".into();
    std::fs::write(&odd, json.to_string()).unwrap();
    fails_with(
        &["validate", odd.to_str().unwrap()],
        &[
            "odd.json",
            "sinn",
            "did you mean `sin`",
            "Deforum setting `strength_schedule`",
        ],
    );
    fails_with(
        &[
            "validate",
            settings.to_str().unwrap(),
            "--model",
            dir.path().to_str().unwrap(),
        ],
        &["--model", "model_index.json", "is missing"],
    );
}

#[test]
fn resume_of_a_finished_render_says_it_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(dir.path(), FOUR_FRAMES);
    let out = dir.path().join("out");
    let args = [
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--no-video",
    ];
    let o = anim(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut again = args.to_vec();
    again.push("--resume");
    fails_with(
        &again,
        &["nothing to resume", "complete", "without --resume"],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn soundtrack_is_muxed_and_cut_to_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let audio = root().join("tests/data/audio/sine440_3s.m4a");
    // 4 frames at 4 fps = 1 s of video; skip 0.5 s of the 3 s tone
    let body = FOUR_FRAMES.replace(
        "[output]\nfps = 4",
        &format!(
            "[output]\nfps = 4\nsoundtrack = \"{}\"\nsoundtrack_offset = 0.5",
            audio.display()
        ),
    );
    let s = scene(dir.path(), &body);
    let out = dir.path().join("out");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let video = out.join("video.mp4");
    assert_eq!(anim::output::probe_video(&video).unwrap().frames, 4);
    let a = anim::output::audio_duration(&video).unwrap();
    assert!(a > 0.5 && a <= 1.1, "audio lasts {a} s in a 1 s video");
    // a missing soundtrack is reported before rendering
    let s = scene(dir.path(), &body.replace("sine440_3s.m4a", "nope.m4a"));
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("nope.m4a"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn interpolation_mode_travels_between_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let body = |mode: &str, prompts: &str| {
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmode = \"{mode}\"\nmax_frames = 5\n\
             [generation]\nseed = 9\nseed_behavior = \"fixed\"\nsampler = \"Euler\"\nsteps = 4\n\
             [prompts]\n{prompts}\n[model]\nfolder = \"{{model}}\"\n[output]\nvideo = false\n"
        )
    };
    let frame =
        |out: &Path, i: usize| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap();
    let s = scene(
        dir.path(),
        &body(
            "Interpolation",
            "\"0\" = \"a red fox\"\n\"4\" = \"a blue whale\"",
        ),
    );
    let travel = dir.path().join("travel");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        travel.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // the end frames are the keyed prompts themselves (same seed), the middle ones differ
    let only_a = dir.path().join("a");
    let s = scene(dir.path(), &body("Interpolation", "\"0\" = \"a red fox\""));
    assert!(
        anim(&[
            "render",
            s.to_str().unwrap(),
            "--out",
            only_a.to_str().unwrap(),
            "-q"
        ])
        .status
        .success()
    );
    let only_b = dir.path().join("b");
    let s = scene(
        dir.path(),
        &body("Interpolation", "\"0\" = \"a blue whale\""),
    );
    assert!(
        anim(&[
            "render",
            s.to_str().unwrap(),
            "--out",
            only_b.to_str().unwrap(),
            "-q"
        ])
        .status
        .success()
    );
    assert_eq!(frame(&travel, 0), frame(&only_a, 0));
    assert_eq!(frame(&travel, 4), frame(&only_b, 4));
    assert_ne!(frame(&travel, 2), frame(&only_a, 2));
    assert_ne!(frame(&travel, 2), frame(&only_b, 2));
}

#[test]
fn video_formats_are_settable() {
    let dir = tempfile::tempdir().unwrap();
    let body = FOUR_FRAMES.replace("[output]\nfps = 4", "[output]\nfps = 4\ncodec = \"libx265\"\npixel_format = \"yuv444p\"\ngif = true\nwebm = true");
    let s = scene(dir.path(), &body);
    let out = dir.path().join("out");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mp4 = anim::output::probe_video(&out.join("video.mp4")).unwrap();
    assert_eq!(
        (mp4.codec.as_str(), mp4.pixel_format.as_str(), mp4.frames),
        ("hevc", "yuv444p", 4)
    );
    let webm = anim::output::probe_video(&out.join("video.webm")).unwrap();
    assert_eq!((webm.codec.as_str(), webm.frames), ("vp9", 4));
    let gif = anim::output::probe_video(&out.join("video.gif")).unwrap();
    assert_eq!((gif.codec.as_str(), gif.frames, gif.width), ("gif", 4, 64));
    let s = scene(
        dir.path(),
        &FOUR_FRAMES.replace(
            "[output]\nfps = 4",
            "[output]\nfps = 4\npixel_format = \"yuv999\"",
        ),
    );
    let o = anim(&["validate", s.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("yuv999"));
}

#[test]
fn checkpoint_schedule_switches_models_with_an_lru() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        std::os::unix::fs::symlink(root().join("models/tiny-sd"), dir.path().join(name)).unwrap();
    }
    let loads = |cache: usize| {
        let body = FOUR_FRAMES
            .replace("max_frames = 4", "max_frames = 5")
            .replace(
                "[motion]",
                "checkpoint = \"0: (\\\"a\\\"), 2: (\\\"b\\\"), 4: (\\\"a\\\")\"\n[motion]",
            )
            .replace(
                "folder = \"{model}\"",
                &format!("folder = \"{{model}}\"\ncache_size = {cache}"),
            );
        let s = scene(dir.path(), &body);
        let out = dir.path().join(format!("out{cache}"));
        let o = anim(&[
            "render",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--no-video",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        let used: Vec<String> = m["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["checkpoint"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(used, vec!["a", "a", "b", "b", "a"]);
        m["pipeline_loads"].as_u64().unwrap()
    };
    // the scene's model, then a and b; switching back to a is free with two slots
    assert_eq!(loads(3), 3);
    assert_eq!(loads(1), 4);
    // a missing checkpoint folder names the frame
    let body = FOUR_FRAMES.replace(
        "[motion]",
        "checkpoint = \"0: (\\\"\\\"), 2: (\\\"missing\\\")\"\n[motion]",
    );
    let s = scene(dir.path(), &body);
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
        "-q",
        "--no-video",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("checkpoint at frame 2"),
        "{}",
        stderr(&o)
    );
}
