//! Post passes with the tiny random-weight models of models/make_tiny_post.py against its
//! onnxruntime references (tests/data/post/): RIFE and FILM interpolation orders, the
//! Real-ESRGAN-style upscaler tiled and untiled, the subtitles file, and `anim post` end to end.
//!
//! Bars: every comparison is exact on the machine that made them (max diff 0); 1 level on at
//! most 0.1 % of the values is allowed for other CPUs' convolution kernels.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use anim::post::{Engine, Interpolator, Tiling, Upscaler, interpolate};
use common::{Diff, load_rgb};
use image::RgbImage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data(rel: &str) -> PathBuf {
    root().join("tests/data/post").join(rel)
}

fn frames() -> Vec<PathBuf> {
    (0..3)
        .map(|i| data(&format!("frames/{i:06}.png")))
        .collect()
}

fn interpolated(model: &str, engine: Engine, x: usize) -> Vec<RgbImage> {
    let mut m = Interpolator::load(&root().join(model)).unwrap();
    let mut out = Vec::new();
    let n = interpolate::interpolate_files(&mut m, engine, &frames(), x, |img| {
        out.push(img);
        Ok(())
    })
    .unwrap();
    assert_eq!(n, out.len());
    out
}

fn check_against(got: &[RgbImage], reference: &str, max: u8, share: f64) {
    for (i, g) in got.iter().enumerate() {
        let want = load_rgb(&data(&format!("{reference}/{i:06}.png")));
        Diff::images(g, &want).check(&format!("{reference} frame {i}"), max, share);
    }
    assert!(
        !data(&format!("{reference}/{:06}.png", got.len())).exists(),
        "{reference} has more frames than {}",
        got.len()
    );
}

#[test]
fn rife_x3_keeps_order_and_matches_reference() {
    let got = interpolated("models/tiny-rife", Engine::Rife, 3);
    // (N-1)·x + 1 frames, the originals at 0, x, 2x untouched
    assert_eq!(got.len(), 7);
    for (i, f) in frames().iter().enumerate() {
        assert_eq!(got[3 * i], load_rgb(f), "frame {i} is not at {}", 3 * i);
    }
    check_against(&got, "rife_x3", 1, 0.001);
}

#[test]
fn film_x2_recursive_order_matches_reference() {
    let got = interpolated("models/tiny-film", Engine::Film, 2);
    // k = round((3·2 − 3)/2) = 2 in-betweens per pair
    assert_eq!(got.len(), 7);
    check_against(&got, "film_x2", 1, 0.001);
}

fn upscaled(tiling: Tiling) -> RgbImage {
    let mut up = Upscaler::load(&root().join("models/tiny-esrgan")).unwrap();
    assert_eq!(up.factor(), 4);
    up.upscale(&load_rgb(&frames()[0]), tiling).unwrap()
}

#[test]
fn esrgan_untiled_matches_reference() {
    let got = upscaled(Tiling { tile: 0, pad: 0 });
    assert_eq!(got.dimensions(), (280, 184));
    let want = load_rgb(&data("esrgan_x4/000000.png"));
    Diff::images(&got, &want).check("untiled x4", 1, 0.001);
}

#[test]
fn esrgan_tiles_blend_to_the_untiled_result() {
    let want = load_rgb(&data("esrgan_x4/000000.png"));
    // 16-pixel tiles with 4 pixels of context: 5x3 tiles on the 70x46 frame; the tiny model
    // reaches 2 pixels (two 3x3 convolutions), so the fade over 4 pixels sees no border
    let got = upscaled(Tiling { tile: 16, pad: 4 });
    Diff::images(&got, &want).check("tiles 16 pad 4", 1, 0.001);
    let got = upscaled(Tiling { tile: 20, pad: 10 });
    Diff::images(&got, &want).check("tiles 20 pad 10", 1, 0.001);
    // without context the seams show where the model's border differs
    let hard = upscaled(Tiling { tile: 16, pad: 0 });
    assert!(
        Diff::images(&hard, &want).max > 1,
        "pad 0 should show seams"
    );
}

/// A finished render in `dir/out` (the three frames, a manifest with seeds 7, 8, 9) and a scene
/// with `extra` appended.
fn render_folder(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("frames")).unwrap();
    for (i, f) in frames().iter().enumerate() {
        std::fs::copy(f, out.join(format!("frames/{i:06}.png"))).unwrap();
    }
    let manifest = serde_json::json!({
        "seed": 7,
        "frames": (0..3).map(|i| serde_json::json!({"index": i, "kind": "key", "seed": 7 + i}))
            .collect::<Vec<_>>(),
    });
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    let scene = dir.join("scene.toml");
    let text = format!(
        "[image]\nwidth = 72\nheight = 48\n[animation]\nmax_frames = 3\n\
         [motion]\nangle = \"0:(0), 2:(1)\"\nzoom = \"0:(1.0025)\"\n\
         [prompts]\n0 = \"a red fox --neg blurry\"\n[output]\nfps = 30\npreset = \"ultrafast\"\n{extra}"
    );
    std::fs::write(&scene, text).unwrap();
    (scene, out)
}

fn anim_post(scene: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "post",
            scene.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

#[test]
fn post_command_writes_videos_and_srt() {
    let dir = tempfile::tempdir().unwrap();
    let models = root().join("models");
    let extra = format!(
        "subtitles = true\nsubtitle_params = [\"Prompt\", \"Zoom\", \"Angle\"]\n[post]\n\
         frame_interpolation_engine = \"RIFE v4.6\"\nframe_interpolation_model = \"{}\"\n\
         frame_interpolation_keep_imgs = true\nr_upscale_video = true\nr_upscale_factor = \"x4\"\n\
         r_upscale_model = \"{}\"\nr_upscale_tile = 32\nr_upscale_keep_imgs = false\n",
        models.join("tiny-rife").display(),
        models.join("tiny-esrgan").display()
    );
    let (scene, out) = render_folder(dir.path(), &extra);
    let o = anim_post(&scene, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the cues in Deforum's order (Angle, Zoom, then Prompt) whatever the list's order
    let srt = std::fs::read_to_string(out.join("video.srt")).unwrap();
    let want = std::fs::read_to_string(data("expected.srt")).unwrap();
    assert_eq!(srt, want);
    let up = anim::output::probe_video(&out.join("video_Upscaled_x4.mp4")).unwrap();
    assert_eq!((up.frames, up.width, up.height), (3, 280, 184));
    assert!(
        !out.join("frames_upscaled_x4").exists(),
        "upscaled frames not kept"
    );
    let v = anim::output::probe_video(&out.join("video_RIFE_x2.mp4")).unwrap();
    assert_eq!((v.frames, v.width, v.height), (5, 70, 46));
    assert!((v.fps - 60.0).abs() < 1e-6, "fps {}", v.fps);
    assert_eq!(
        std::fs::read_dir(out.join("frames_RIFE_x2"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn slow_mo_and_factor_errors() {
    let dir = tempfile::tempdir().unwrap();
    let models = root().join("models");
    let extra = format!(
        "[post]\nr_upscale_video = true\nr_upscale_factor = \"x2\"\nr_upscale_model = \"{}\"\n",
        models.join("tiny-esrgan").display()
    );
    let (scene, out) = render_folder(dir.path(), &extra);
    let o = anim_post(&scene, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("r_upscale_factor") && err.contains("x4"),
        "{err}"
    );

    let extra = "[post]\nframe_interpolation_engine = \"RIFE v4.6\"\n";
    let (scene, out) = render_folder(dir.path(), extra);
    let o = anim_post(&scene, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("RIFE46") && err.contains("frame_interpolation_model"),
        "{err}"
    );

    for (bad, key) in [
        (
            "frame_interpolation_x_amount = 11",
            "frame_interpolation_x_amount",
        ),
        ("r_upscale_factor = \"x8\"", "r_upscale_factor"),
        ("r_upscale_tile = 8", "r_upscale_tile"),
        (
            "r_upscale_tile = 32\nr_upscale_tile_pad = 20",
            "r_upscale_tile_pad",
        ),
        (
            "frame_interpolation_engine = \"RIFE\"",
            "frame_interpolation_engine",
        ),
    ] {
        let (scene, out) = render_folder(dir.path(), &format!("[post]\n{bad}\n"));
        let o = anim_post(&scene, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(key), "{bad}: {err}");
    }
}

#[test]
fn slow_mo_names_and_fps() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[post]\nframe_interpolation_engine = \"FILM\"\nframe_interpolation_model = \"{}\"\n\
         frame_interpolation_x_amount = 4\nframe_interpolation_slow_mo_enabled = true\n\
         frame_interpolation_slow_mo_amount = 2\n",
        root().join("models/tiny-film").display()
    );
    let (scene, out) = render_folder(dir.path(), &extra);
    let o = anim_post(&scene, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = anim::output::probe_video(&out.join("video_FILM_x4_slomo_x2.mp4")).unwrap();
    // FILM: k = round((3·4 − 3)/2) = round(4.5) = 4 per pair: 3 + 2·4 frames at 30·4/2 fps
    assert_eq!(v.frames, 11);
    assert!((v.fps - 60.0).abs() < 1e-6, "fps {}", v.fps);
    assert!(!out.join("frames_FILM_x4_slomo_x2").exists());
}

/// The cues of an SRT text: (start ms, end ms, text) per cue.
fn srt_cues(text: &str) -> Vec<anim::output::mov_text::Cue> {
    let ms = |t: &str| -> i64 {
        let (hms, milli) = t.trim().split_once(',').unwrap();
        let p: Vec<i64> = hms.split(':').map(|v| v.parse().unwrap()).collect();
        ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000 + milli.parse::<i64>().unwrap()
    };
    text.split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            let lines: Vec<&str> = c.lines().collect();
            let (a, b) = lines[1].split_once(" --> ").unwrap();
            anim::output::mov_text::Cue {
                start_ms: ms(a),
                end_ms: ms(b),
                text: lines[2..].join("\n"),
            }
        })
        .collect()
}

/// `[output] embed_subtitles` (Deforum's `deforum_embed_srt`): `anim post` puts the cues of
/// video.srt into video.mp4 and the upscaled video as a mov_text stream, read back equal to the .srt's (times and text); the video stream is copied untouched; two
/// folders give byte-identical files, and embedding again changes nothing.
#[test]
fn embed_subtitles_puts_the_srt_cues_in_the_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let models = root().join("models");
    let extra = format!(
        "subtitles = true\nembed_subtitles = true\nsubtitle_params = [\"Prompt\", \"Zoom\", \"Angle\"]\n\
         [post]\nr_upscale_video = true\nr_upscale_factor = \"x4\"\nr_upscale_model = \"{}\"\n\
         r_upscale_tile = 32\n",
        models.join("tiny-esrgan").display()
    );
    let mut videos = Vec::new();
    for name in ["a", "b"] {
        let (scene, out) = render_folder(&dir.path().join(name), &extra);
        let frames: Vec<PathBuf> = (0..3).map(|i| anim::output::frame_path(&out, i)).collect();
        let settings = anim::output::VideoSettings::h264(30.0, 17, "ultrafast");
        anim::output::encode_mp4(&frames, &out.join("video.mp4"), &settings).unwrap();
        let plain = anim::output::probe_video(&out.join("video.mp4")).unwrap();
        let o = anim_post(&scene, &out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let srt = srt_cues(&std::fs::read_to_string(out.join("video.srt")).unwrap());
        assert_eq!(srt.len(), 3);
        for v in ["video.mp4", "video_Upscaled_x4.mp4"] {
            // FFmpeg 5.1's mp4 muxer drops the track title, as with Deforum's command
            let (_, cues) = anim::output::mov_text::read_cues(&out.join(v)).unwrap();
            assert_eq!(cues, srt, "{v}: the cues of video.srt");
        }
        let p = anim::output::probe_video(&out.join("video.mp4")).unwrap();
        assert_eq!(
            (p.frames, p.width, p.height, p.fps),
            (plain.frames, plain.width, plain.height, plain.fps)
        );
        let bytes = std::fs::read(out.join("video.mp4")).unwrap();
        let o = anim_post(&scene, &out);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            std::fs::read(out.join("video.mp4")).unwrap(),
            bytes,
            "embedding twice"
        );
        videos.push((
            bytes,
            std::fs::read(out.join("video_Upscaled_x4.mp4")).unwrap(),
        ));
    }
    assert!(videos[0] == videos[1], "two folders give the same videos");
}

/// `deforum_embed_srt` is read into `[output] embed_subtitles` and no longer listed as not
/// supported.
#[test]
fn deforum_embed_srt_is_supported() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 3, "deforum_save_gen_info_as_srt": true,
        "deforum_embed_srt": true}"#,
    )
    .unwrap();
    let (scene, warnings) = anim::scene::deforum::read_file(&settings).unwrap();
    assert!(scene.output.subtitles && scene.output.embed_subtitles);
    assert!(
        !warnings.iter().any(|w| w.contains("deforum_embed_srt")),
        "{warnings:?}"
    );
}
