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
