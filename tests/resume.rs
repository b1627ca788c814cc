//! A render killed part-way (SIGKILL) and resumed gives frames byte-identical to an uninterrupted
//! render; cadence and the effects are on, so every piece of loop state is exercised.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn scene(dir: &Path, frames: usize, cadence: usize) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let body = format!(
        r#"
[image]
width = 64
height = 64
[animation]
max_frames = {frames}
[generation]
seed = 77
seed_behavior = "ladder"
sampler = "Euler a"
steps = 20
strength = "0:(0.3)"
[motion]
zoom = "0:(1.03)"
angle = "0:(1.5)"
[coherence]
color_coherence = "LAB"
contrast = "0:(1.02)"
[anti_blur]
amount = "0:(0.2)"
[noise]
noise = "0:(0.05)"
[cadence]
diffusion_cadence = {cadence}
[prompts]
"0" = "a lake --neg fog"
[model]
folder = "{}"
"#,
        model.display()
    );
    let p = dir.join("scene.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn render(scene: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--no-video"];
    args.extend_from_slice(extra);
    render_video(scene, out, &args)
}

/// `anim render` with the video (unless `extra` says `--no-video`).
fn render_video(scene: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "render",
            scene.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn frames(out: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap_or_default())
        .collect()
}

/// Starts a render into `out` that stands still after writing frame `halt` (the loop's test hook),
/// and waits until it does.
fn start_halting(s: &Path, out: &Path, halt: usize, video: bool) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anim"));
    cmd.args([
        "render",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ])
    .env("ANIM_HALT_AFTER_FRAME", halt.to_string());
    if !video {
        cmd.arg("--no-video");
    }
    let mut child = cmd.spawn().unwrap();
    let frame = out.join(format!("frames/{halt:06}.png"));
    let t = Instant::now();
    while !frame.is_file() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the render ended ({status}) before frame {halt}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "frame {halt} never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Kills a render (SIGKILL) right after frame `halt` is written, resumes it and compares every
/// frame with an uninterrupted render's.
fn kill_and_resume(cadence: usize, halt: usize, edit: impl Fn(String) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    let s = scene(dir.path(), n, cadence);
    std::fs::write(&s, edit(std::fs::read_to_string(&s).unwrap())).unwrap();
    let full = dir.path().join("full");
    let o = render(&s, &full, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = frames(&full, n);

    let part = dir.path().join("part");
    let mut child = start_halting(&s, &part, halt, false);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = std::fs::read_dir(part.join("frames")).unwrap().count();
    assert_eq!(before, halt + 1, "frames on disk when killed");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("state/state.json")).unwrap())
            .unwrap();
    // the halt comes before the checkpoint of the key frame being made: the last checkpoint is
    // the key frame before the halted frame, and the frames after it are on disk but not in it
    assert_eq!(
        state["key_frame"].as_u64().unwrap() as usize,
        (halt - 1) / cadence * cadence,
        "{state}"
    );
    assert!(part.join("state/state.json").is_file());
    let o = render(&s, &part, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = frames(&part, n);
    for i in 0..n {
        assert!(!got[i].is_empty(), "frame {i} missing after resume");
        assert_eq!(
            got[i], want[i],
            "frame {i} differs after resume (killed at {before} frames, cadence {cadence})"
        );
    }
    // no temporary files left, state cleared after a complete run
    assert!(
        std::fs::read_dir(part.join("frames")).unwrap().all(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "png"))
    );
    assert!(!part.join("state").exists());
}

#[test]
fn resume_after_sigkill_is_bit_identical() {
    kill_and_resume(1, 8, |t| t);
}

#[test]
fn resume_with_cadence_is_bit_identical() {
    // frame 7 is a tween of key frame 9, written before 9's checkpoint
    kill_and_resume(3, 7, |t| t);
}

/// Optical-flow cadence (Farneback) moves the tweens along the flow between key frames; a
/// resume gives the same bytes.
#[test]
fn resume_with_optical_flow_cadence_is_bit_identical() {
    kill_and_resume(3, 7, |t| {
        t.replace(
            "[cadence]\n",
            "[cadence]\noptical_flow_cadence = \"Farneback\"\ncadence_flow_factor = \"0:(0.8)\"\n",
        )
    });
}

/// Optical-flow redo and diffusion redo draw their seeds from the frame's seed: a resume gives
/// the same bytes.
#[test]
fn resume_with_redo_generations_is_bit_identical() {
    kill_and_resume(1, 4, |t| {
        t.replace("steps = 20", "steps = 6").replace(
            "[cadence]\n",
            "[cadence]\noptical_flow_redo_generation = \"Farneback\"\nredo_flow_factor = \"0:(0.5)\"\ndiffusion_redo = 1\n",
        )
    });
}

/// Motion scripts carry state from frame to frame; schedules are resolved from frame 0 on resume,
/// so a stateful script (and presets) still give byte-identical frames.
#[test]
fn resume_with_a_motion_script_and_presets_is_bit_identical() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/shake.rhai");
    kill_and_resume(1, 8, |t| {
        t.replace(
            "[motion]\n",
            &format!("[motion]\nscript = \"{}\"\n", script.display()),
        ) + "[[motion.preset]]\nname = \"pulse_zoom\"\n[variables]\nshake_amount = 3\n"
    });
}

/// Checkpoints cost the same at every key frame: the state file does not grow with the frames
/// written (it held every frame's record before, rewritten at each key frame).
#[test]
fn checkpoint_state_does_not_grow_with_the_frame_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.toml");
    let sizes: Vec<u64> = [5usize, 60]
        .iter()
        .map(|&halt| {
            std::fs::write(
                &s,
                "[image]\nwidth = 8\nheight = 8\n[animation]\nmax_frames = 100\n[motion]\nzoom = \"0:(1.01)\"\n",
            )
            .unwrap();
            let out = dir.path().join(format!("o{halt}"));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_anim"));
            cmd.args(["preview", s.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--no-video"])
                .env("ANIM_HALT_AFTER_FRAME", halt.to_string());
            let mut child = cmd.spawn().unwrap();
            let state = out.join("state/state.json");
            let t = Instant::now();
            // the checkpoint of frame halt - 1 is the last before the halt
            while !std::fs::read_to_string(&state)
                .is_ok_and(|t| t.contains(&format!("\"key_frame\": {}", halt - 1)))
            {
                assert!(t.elapsed() < Duration::from_secs(60), "no checkpoint");
                std::thread::sleep(Duration::from_millis(5));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            std::fs::metadata(&state).unwrap().len()
        })
        .collect();
    assert!(
        sizes[1] <= sizes[0] + 8,
        "state.json grows with the frames: {sizes:?} bytes after 5 and 60 frames"
    );
}

#[test]
fn resume_refuses_a_changed_scene() {
    let dir = tempfile::tempdir().unwrap();
    let s = scene(dir.path(), 3, 1);
    let out = dir.path().join("o");
    let o = render(&s, &out, &["--resume"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nothing to resume")
    );
    std::fs::create_dir_all(out.join("state")).unwrap();
    std::fs::write(out.join("state/state.json"), r#"{"scene_hash":"x","seed":1,"key_frame":0,"seed_calls":1,"has_color_sample":false,"records_len":0}"#).unwrap();
    image::RgbImage::new(64, 64)
        .save(out.join("state/key_000000.png"))
        .unwrap();
    let o = render(&s, &out, &["--resume"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("scene changed"));
}

#[test]
fn ctrl_c_finishes_the_frame_writes_the_video_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    let s = scene(dir.path(), n, 1);
    let out = dir.path().join("out");
    let child = start_halting(&s, &out, 4, true);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = child;
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "Ctrl-C exits with 130");
    let written = std::fs::read_dir(out.join("frames")).unwrap().count();
    assert_eq!(
        written, 5,
        "the frame being made when Ctrl-C came is the last"
    );
    assert!(
        std::fs::read_dir(out.join("frames")).unwrap().all(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "png"))
    );
    let info = anim::output::probe_video(&out.join("video.mp4")).unwrap();
    assert_eq!(
        info.frames, written,
        "the video holds every frame written before the stop"
    );
    let o = render_video(&s, &out, &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(out.join("frames")).unwrap().count(), n);
    // the video is encoded while the frames are made; after the resume it is the same file an
    // uninterrupted render writes
    let whole = dir.path().join("whole");
    let o = render_video(&s, &whole, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(out.join("video.mp4")).unwrap()
            == std::fs::read(whole.join("video.mp4")).unwrap(),
        "resumed and uninterrupted videos differ"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
