//! Where a render writes, and what it does when it cannot: a scene's output folder stays below
//! the scene's folder (no `..`, absolute path or symbolic link leading out, unless `--out` names
//! the place), nothing inside the output folder is a symbolic link, and a read-only output folder
//! is refused before the model loads.

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

/// A 64x64, 3-frame scene on the tiny model, with `extra` appended, at `path`.
fn scene(path: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = format!(
        "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 3\n[generation]\nseed = 7\n\
         steps = 2\n[prompts]\n\"0\" = \"a test\"\n[model]\nfolder = \"{}\"\n{extra}",
        root().join("models/tiny-sd").display()
    );
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn refused(args: &[&str], needles: &[&str]) {
    let o = anim(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: message lacks {n:?}:\n{err}");
    }
}

#[test]
fn a_scene_writes_only_below_its_own_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = d.join("scenes");
    // `..` out of the scene's folder: refused by preview and render, a note from validate
    let esc = scene(
        &s.join("escape.toml"),
        "[output]\nfolder = \"../escaped\"\n",
    );
    let esc = esc.to_str().unwrap();
    for cmd in ["preview", "render"] {
        refused(
            &[cmd, esc, "-q", "--no-video"],
            &[
                "escape.toml",
                "[output] folder = \"../escaped\"",
                "climbs out",
                "--out",
            ],
        );
    }
    assert!(!d.join("escaped").exists(), "the folder outside was made");
    let o = anim(&["validate", esc]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("note:") && out.contains("climbs out"),
        "{out}{}",
        stderr(&o)
    );
    // --out names the place on purpose
    let o = anim(&[
        "preview",
        esc,
        "-q",
        "--no-video",
        "--out",
        d.join("escaped").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.join("escaped/frames/000002.png").is_file());
    // an absolute folder
    let abs = scene(
        &s.join("absolute.toml"),
        &format!("[output]\nfolder = \"{}\"\n", d.join("abs").display()),
    );
    refused(
        &["preview", abs.to_str().unwrap(), "-q"],
        &["absolute.toml", "[output] folder", "absolute path", "--out"],
    );
    // `..` that stays inside is fine
    let inside = scene(
        &s.join("inside.toml"),
        "[output]\nfolder = \"a/../b/out\"\n",
    );
    let o = anim(&["preview", inside.to_str().unwrap(), "-q", "--no-video"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.join("b/out/frames/000000.png").is_file());
    // a symbolic link on the way out
    #[cfg(unix)]
    {
        std::fs::create_dir_all(d.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.join("elsewhere"), s.join("link")).unwrap();
        let linked = scene(&s.join("linked.toml"), "[output]\nfolder = \"link/out\"\n");
        refused(
            &["preview", linked.to_str().unwrap(), "-q"],
            &["linked.toml", "symbolic link", "elsewhere"],
        );
        // the default folder, output/<scene name>, through a linked `output`
        let s2 = d.join("scenes2");
        let plain = scene(&s2.join("plain.toml"), "");
        std::os::unix::fs::symlink(d.join("elsewhere"), s2.join("output")).unwrap();
        refused(
            &["render", plain.to_str().unwrap(), "-q"],
            &["plain.toml", "default output folder", "symbolic link"],
        );
        assert_eq!(std::fs::read_dir(d.join("elsewhere")).unwrap().count(), 0);
    }
}

#[cfg(unix)]
#[test]
fn symbolic_links_inside_the_output_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = scene(&d.join("s.toml"), "");
    let out = d.join("out");
    std::fs::create_dir_all(d.join("elsewhere")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), out.join("frames")).unwrap();
    for cmd in ["preview", "render"] {
        refused(
            &[
                cmd,
                s.to_str().unwrap(),
                "-q",
                "--out",
                out.to_str().unwrap(),
            ],
            &["frames", "is a symbolic link", "remove the link"],
        );
    }
    // a link to a file one level down (state/state.json -> a file elsewhere) too
    std::fs::remove_file(out.join("frames")).unwrap();
    std::fs::create_dir_all(out.join("state")).unwrap();
    std::fs::write(d.join("victim.json"), "keep me").unwrap();
    std::os::unix::fs::symlink(d.join("victim.json"), out.join("state/state.json")).unwrap();
    refused(
        &[
            "preview",
            s.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        &["state.json", "is a symbolic link"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("victim.json")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(d.join("elsewhere")).unwrap().count(), 0);
}

/// A read-only folder at `dir`: a read-only tmpfs when running as root (root writes through
/// permission bits), else a folder without write permission. `None` (with the reason printed)
/// where neither can be made.
#[cfg(unix)]
struct ReadOnly {
    dir: PathBuf,
    mounted: bool,
}

#[cfg(unix)]
impl ReadOnly {
    fn make(dir: &Path) -> Option<ReadOnly> {
        std::fs::create_dir_all(dir).unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if root {
            let o = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
                .arg(dir)
                .output();
            match o {
                Ok(o) if o.status.success() => Some(ReadOnly {
                    dir: dir.to_path_buf(),
                    mounted: true,
                }),
                other => {
                    eprintln!(
                        "skipped: running as root and cannot mount a read-only tmpfs ({other:?})"
                    );
                    None
                }
            }
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            Some(ReadOnly {
                dir: dir.to_path_buf(),
                mounted: false,
            })
        }
    }
}

#[cfg(unix)]
impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        } else {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_output_folder_is_refused_before_the_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let Some(ro) = ReadOnly::make(&d.join("ro")) else {
        return;
    };
    let s = scene(&d.join("s.toml"), "");
    let s = s.to_str().unwrap();
    // the read-only folder itself, and a folder to be made inside it; the model is a broken one,
    // so a refusal that names the folder came before the model loaded
    let broken = root().join("tests/data/bad-input/models/truncated-unet");
    for out in [ro.dir.clone(), ro.dir.join("new")] {
        let out = out.to_str().unwrap();
        refused(
            &[
                "render",
                s,
                "-q",
                "--out",
                out,
                "--model",
                broken.to_str().unwrap(),
            ],
            &[out],
        );
        for cmd in ["render", "preview"] {
            let err = stderr(&anim(&[cmd, s, "-q", "--out", out]));
            assert!(
                err.contains("not writable") || err.contains("cannot create the output folder"),
                "{cmd}: {err}"
            );
            assert!(
                !err.contains("panicked") && !err.contains("unet"),
                "{cmd}: {err}"
            );
        }
    }
    drop(ro);
    assert_eq!(std::fs::read_dir(d.join("ro")).unwrap().count(), 0);
}

/// The render the kill and disk tests interrupt: `frames` frames with every kind of loop state
/// (a colour sample, seeds, cadence tweens, noise) and the video.
fn long_scene(path: &Path, frames: usize) -> PathBuf {
    let p = scene(
        path,
        "[cadence]\ndiffusion_cadence = 2\n[motion]\nzoom = \"0:(1.03)\"\nangle = \"0:(1.5)\"\n\
         [coherence]\ncolor_coherence = \"LAB\"\n[noise]\nnoise = \"0:(0.05)\"\n\
         [output]\nfps = 8\n",
    );
    let t = std::fs::read_to_string(&p)
        .unwrap()
        .replace("max_frames = 3", &format!("max_frames = {frames}"))
        .replace("steps = 2", "steps = 8\nstrength = \"0:(0.5)\"");
    std::fs::write(&p, t).unwrap();
    p
}

/// xorshift64: the fixed pseudo-random choices of the kill test.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where the next run of the kill test is stopped.
#[derive(Debug, Clone)]
enum Kill {
    /// After this many milliseconds (while the model loads or the loop starts).
    Startup(u64),
    /// Inside the write of this file (`ANIM_HALT_IN_WRITE`): its temporary file is complete,
    /// the rename not done. `relative` names `OUT/relative.tmp`.
    InWrite { name: String, relative: String },
    /// Right after this frame is written, before its key frame's checkpoint.
    AfterFrame(usize),
    /// This many milliseconds after this frame appears.
    AtFrame(usize, u64),
    /// Once the last frame is written, while the video is finished (`ANIM_HALT_IN_WRITE`).
    InVideo,
}

/// Whether `p` was modified at or after `since`.
fn newer(p: &Path, since: std::time::SystemTime) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m >= since)
}

/// The last checkpointed key frame of the render in `out`, if any.
fn checkpoint(out: &Path) -> Option<usize> {
    let t = std::fs::read_to_string(out.join("state/state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&t).ok()?;
    v["key_frame"].as_u64().map(|k| k as usize)
}

/// Starts `anim render` into `out` (resuming when a checkpoint is there), stops it as `kill`
/// says with SIGKILL; whether it was still running when killed.
fn run_and_kill(s: &Path, out: &Path, frames: usize, kill: &Kill) -> bool {
    use std::time::{Duration, Instant, SystemTime};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anim"));
    cmd.args([
        "render",
        s.to_str().unwrap(),
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    if checkpoint(out).is_some() {
        cmd.arg("--resume");
    }
    match kill {
        Kill::InWrite { name, .. } => {
            cmd.env("ANIM_HALT_IN_WRITE", name);
        }
        Kill::InVideo => {
            cmd.env("ANIM_HALT_IN_WRITE", "video.mp4");
        }
        Kill::AfterFrame(f) => {
            cmd.env("ANIM_HALT_AFTER_FRAME", f.to_string());
        }
        _ => {}
    }
    let since = SystemTime::now() - Duration::from_millis(50);
    let mut child = cmd.stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let frame = |f: usize| out.join(format!("frames/{f:06}.png"));
    let reached = || match kill {
        Kill::Startup(ms) => start.elapsed() >= Duration::from_millis(*ms),
        Kill::InWrite { relative, .. } => newer(&out.join(format!("{relative}.tmp")), since),
        Kill::AfterFrame(f) => newer(&frame(*f), since),
        Kill::AtFrame(f, _) => newer(&frame(*f), since),
        Kill::InVideo => newer(&frame(frames - 1), since),
    };
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if reached() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{kill:?} never came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    match kill {
        Kill::AtFrame(_, ms) => std::thread::sleep(Duration::from_millis(*ms)),
        // the halt comes after the last frames are queued and encoded
        Kill::InVideo => std::thread::sleep(Duration::from_millis(300)),
        _ => {}
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    running
}

/// A render SIGKILLed at a dozen moments, each time resumed: inside a frame's PNG write, inside
/// checkpoint writes, between a frame and its checkpoint, while the model loads, at seeded random
/// moments of the loop, while the video is finished and inside the manifest's write. The frames
/// and the video end byte-identical to an uninterrupted render's, with no temporary file left.
#[test]
fn renders_killed_at_any_moment_resume_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let n = 40;
    let s = long_scene(&d.join("s.toml"), n);
    let full = d.join("full");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "-q",
        "--out",
        full.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let out = d.join("part");
    let mut rng = Rng(0x5EED_2026);
    let mut kills = Vec::new();
    let png = |f: usize| Kill::InWrite {
        name: format!("{f:06}.png"),
        relative: format!("frames/{f:06}.png"),
    };
    let state = |k: usize| Kill::InWrite {
        name: format!("state.json#{k}"),
        relative: "state/state.json".into(),
    };
    for step in 0..13 {
        // the next frames after the checkpoint, so every kill lands in work still to do
        let p = checkpoint(&out).map_or(0, |k| k + 1);
        let ahead = |k: usize| (p + k).min(n - 1);
        let kill = match step {
            0 => Kill::Startup(20),
            1 => png(ahead(2)),
            2 => Kill::AtFrame(ahead(2), rng.below(40)),
            3 => state(2),
            4 => Kill::AfterFrame(ahead(3)),
            5 => Kill::Startup(100 + rng.below(400)),
            6 => png(ahead(1)),
            7 => Kill::AtFrame(ahead(3), rng.below(40)),
            8 => state(3),
            9 => Kill::AtFrame(ahead(2), rng.below(40)),
            10 => png(ahead(4)),
            11 => Kill::InVideo,
            _ => Kill::InWrite {
                name: "manifest.json".into(),
                relative: "manifest.json".into(),
            },
        };
        let killed = run_and_kill(&s, &out, n, &kill);
        kills.push((kill, killed, checkpoint(&out)));
    }
    let survived = kills.iter().filter(|(_, k, _)| *k).count();
    assert!(survived >= 10, "only {survived} kills landed: {kills:#?}");
    // the last run completes
    let mut args = vec![
        "render",
        s.to_str().unwrap(),
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    if checkpoint(&out).is_some() {
        args.push("--resume");
    }
    let o = anim(&args);
    assert!(o.status.success(), "{}\nkills: {kills:#?}", stderr(&o));
    for i in 0..n {
        let f = format!("frames/{i:06}.png");
        assert!(
            std::fs::read(out.join(&f)).unwrap() == std::fs::read(full.join(&f)).unwrap(),
            "{f} differs after the kills {kills:#?}"
        );
    }
    assert!(
        std::fs::read(out.join("video.mp4")).unwrap()
            == std::fs::read(full.join("video.mp4")).unwrap(),
        "the videos differ after the kills {kills:#?}"
    );
    let leftovers: Vec<PathBuf> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!out.join("state").exists());
    eprintln!("{survived} kills survived: {kills:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A tmpfs of `size` at `dir` (root only: CI runs as root); `None` with the reason printed where
/// it cannot be mounted. Unmounted when dropped.
#[cfg(unix)]
struct SmallDisk(PathBuf);

#[cfg(unix)]
impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(SmallDisk(dir.to_path_buf())),
            other => {
                eprintln!("skipped: cannot mount a tmpfs (needs root): {other:?}");
                None
            }
        }
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot resize the tmpfs");
    }
}

#[cfg(unix)]
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Output on a small tmpfs that fills up mid-render: a clear error naming the file, no corrupt
/// or partial frame; once space is freed, `--resume` completes byte-identical to an
/// uninterrupted render (frames and video).
#[cfg(unix)]
#[test]
fn a_full_disk_stops_the_render_cleanly_and_resume_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let n = 40;
    let s = long_scene(&d.join("s.toml"), n);
    let full = d.join("full");
    let o = anim(&[
        "render",
        s.to_str().unwrap(),
        "-q",
        "--out",
        full.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let Some(disk) = SmallDisk::mount(&d.join("disk"), "256k") else {
        return;
    };
    let out = disk.0.join("out");
    let render = |resume: bool| {
        let mut a = vec![
            "render",
            s.to_str().unwrap(),
            "-q",
            "--out",
            out.to_str().unwrap(),
        ];
        if resume {
            a.push("--resume");
        }
        anim(&a)
    };
    let o = render(false);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("No space left on device")
            && err.contains(out.to_str().unwrap())
            && err.contains("--resume"),
        "{err}"
    );
    let written: Vec<PathBuf> = walk(&out.join("frames"));
    assert!(
        !written.is_empty() && written.len() < n,
        "the disk was to fill mid-render: {} frames",
        written.len()
    );
    for f in &written {
        assert!(
            f.extension().is_some_and(|e| e == "png"),
            "{} left behind",
            f.display()
        );
        image::open(f).unwrap_or_else(|e| panic!("{} is damaged: {e}", f.display()));
    }
    // space freed: the render resumes from its last checkpoint
    disk.resize("16m");
    let o = render(true);
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..n {
        let f = format!("frames/{i:06}.png");
        assert!(
            std::fs::read(out.join(&f)).unwrap() == std::fs::read(full.join(&f)).unwrap(),
            "{f} differs after the resume"
        );
    }
    assert!(
        std::fs::read(out.join("video.mp4")).unwrap()
            == std::fs::read(full.join("video.mp4")).unwrap(),
        "the videos differ after the resume"
    );
    let leftovers: Vec<PathBuf> = walk(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!(
        "the disk filled after {} of {n} frames: {}",
        written.len(),
        err.lines().find(|l| l.contains("caused by")).unwrap_or("")
    );
}
