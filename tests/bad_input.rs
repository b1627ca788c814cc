//! The bad-input corpus (tests/data/bad-input/, README.md there): every scene, Deforum settings
//! file and motion script of it goes through `anim validate`, `anim preview` and `anim render`
//! (the tiny model, 64x64, 3 frames). Each must end with a non-zero exit, no panic, a message
//! holding what `expect.toml` lists for it (the file's name and the key, line or frame), and no
//! frame or temporary file in the output folder. Non-UTF-8 paths are made at test time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn corpus() -> PathBuf {
    root().join("tests/data/bad-input")
}

fn anim(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .env("ANIM_LOG", "off")
        .output()
        .expect("run anim")
}

/// expect.toml.
#[derive(Deserialize)]
struct Expect {
    case: Vec<Case>,
}

/// One file of the corpus and what its error must say.
#[derive(Deserialize)]
struct Case {
    /// Relative to the corpus folder.
    file: String,
    /// Substrings of the message.
    error: Vec<String>,
    /// The commands that must refuse it.
    #[serde(default = "all_commands")]
    commands: Vec<String>,
    /// A known value anim does not implement: `--allow-unsupported` accepts it.
    #[serde(default)]
    unsupported: bool,
}

fn all_commands() -> Vec<String> {
    ["validate", "preview", "render"].map(String::from).to_vec()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join("expect.toml")).unwrap();
    toml::from_str::<Expect>(&text).unwrap().case
}

/// The files under `dir` (recursively), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The arguments of `command` on `file`, writing into `out`; a Deforum settings file names no
/// model, so validate and render get the tiny one.
fn args(command: &str, file: &Path, out: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![command.into(), file.into()];
    let deforum = file.extension().is_some_and(|e| e == "json");
    if command != "validate" {
        a.extend(["-q".into(), "--no-video".into(), "--out".into(), out.into()]);
    }
    if command == "render" {
        a.extend([
            "--device".into(),
            "cpu".into(),
            "--threads".into(),
            "1".into(),
        ]);
    }
    if deforum && command != "preview" {
        a.extend(["--model".into(), root().join("models/tiny-sd").into()]);
    }
    a
}

/// What is wrong with `command`'s refusal of `case` (empty when it is as expected).
fn check(case: &Case, command: &str, work: &Path) -> Vec<String> {
    let file = corpus().join(&case.file);
    let out = work.join(format!("{}-{command}", case.file.replace('/', "-")));
    let a = args(command, &file, &out);
    let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let o = anim(&refs);
    let err = String::from_utf8_lossy(&o.stderr);
    let what = format!("{} {}", command, case.file);
    let mut problems = Vec::new();
    if o.status.success() {
        problems.push(format!("{what}: succeeded; stderr:\n{err}"));
        return problems;
    }
    if o.status.code().is_none() {
        problems.push(format!("{what}: killed by a signal ({:?})", o.status));
    }
    if err.contains("panicked") {
        problems.push(format!("{what}: panicked:\n{err}"));
    }
    for n in &case.error {
        if !err.contains(n.as_str()) {
            problems.push(format!("{what}: message lacks {n:?}:\n{err}"));
        }
    }
    for f in files_under(&out) {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        let frame = f.parent().is_some_and(|p| p.ends_with("frames")) && name.ends_with(".png");
        if frame || name.ends_with(".tmp") {
            problems.push(format!("{what}: left {} behind", f.display()));
        }
    }
    problems
}

/// Runs `job` over `items` on a few threads.
fn parallel<T: Sync>(items: &[T], job: impl Fn(&T) -> Vec<String> + Sync) -> Vec<String> {
    let next = Mutex::new(0usize);
    let problems = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(item) = items.get(i) else { break };
                    let p = job(item);
                    problems.lock().unwrap().extend(p);
                }
            });
        }
    });
    problems.into_inner().unwrap()
}

#[test]
fn every_bad_file_is_refused_clearly_by_every_command() {
    let cases = cases();
    let work = tempfile::tempdir().unwrap();
    let runs: Vec<(&Case, &str)> = cases
        .iter()
        .flat_map(|c| c.commands.iter().map(move |cmd| (c, cmd.as_str())))
        .collect();
    let problems = parallel(&runs, |(case, command)| check(case, command, work.path()));
    assert!(
        problems.is_empty(),
        "{} of {} runs went wrong:\n\n{}",
        problems.len(),
        runs.len(),
        problems.join("\n\n")
    );
}

#[test]
fn unsupported_values_are_warnings_with_allow_unsupported() {
    let cases = cases();
    let unsupported: Vec<&Case> = cases.iter().filter(|c| c.unsupported).collect();
    assert!(
        unsupported.len() >= 10,
        "{} unsupported cases",
        unsupported.len()
    );
    let problems = parallel(&unsupported, |case| {
        let file = corpus().join(&case.file);
        let mut a: Vec<std::ffi::OsString> =
            vec!["validate".into(), "--allow-unsupported".into(), file.into()];
        if case.file.ends_with(".json") {
            a.extend(["--model".into(), root().join("models/tiny-sd").into()]);
        }
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let o = anim(&refs);
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() || !err.contains("warning") || !err.contains("--allow-unsupported") {
            vec![format!(
                "validate --allow-unsupported {}: {:?}\n{err}",
                case.file, o.status
            )]
        } else {
            Vec::new()
        }
    });
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_corpus_is_complete_and_large_enough() {
    let cases = cases();
    let listed: Vec<PathBuf> = cases.iter().map(|c| corpus().join(&c.file)).collect();
    for c in &listed {
        assert!(
            c.is_file(),
            "expect.toml lists {} which does not exist",
            c.display()
        );
    }
    // every scene and settings file is a case; every script is used by a case's scene
    for dir in ["toml", "deforum"] {
        for f in files_under(&corpus().join(dir)) {
            assert!(
                listed.contains(&f),
                "{} has no [[case]] in expect.toml",
                f.display()
            );
        }
    }
    let scenes: String = listed
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    for f in files_under(&corpus().join("scripts")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(scenes.contains(&name), "no scene runs scripts/{name}");
    }
    let files = ["toml", "deforum", "scripts", "assets", "models"]
        .iter()
        .map(|d| files_under(&corpus().join(d)).len())
        .sum::<usize>();
    assert!(files >= 80, "{files} files in the corpus");
}

/// Paths that are not UTF-8 (possible on Linux): a scene in such a folder validates and
/// previews into such a folder, and an error about one names it (lossily), without a panic.
#[cfg(unix)]
#[test]
fn non_utf8_paths_work_and_are_named() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(OsStr::from_bytes(b"scenes-\xff\xfe"));
    std::fs::create_dir(&dir).unwrap();
    let scene = dir.join(OsStr::from_bytes(b"caf\xe9.toml"));
    let model = root().join("models/tiny-sd");
    std::fs::write(
        &scene,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 2\n[generation]\nseed = 7\n\
             steps = 2\n[prompts]\n\"0\" = \"a test\"\n[model]\nfolder = \"{}\"\n",
            model.display()
        ),
    )
    .unwrap();
    let o = anim(&[OsStr::new("validate"), scene.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join(OsStr::from_bytes(b"out-\xff"));
    let preview = |extra: &[&str]| {
        let mut a = vec![
            OsStr::new("preview"),
            scene.as_os_str(),
            OsStr::new("-q"),
            OsStr::new("--out"),
            out.as_os_str(),
        ];
        a.extend(extra.iter().map(OsStr::new));
        anim(&a)
    };
    // FFmpeg's Rust binding takes only UTF-8 paths: the video is refused before frame 0
    let o = preview(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && !err.contains("panicked") && err.contains("UTF-8"),
        "{err}"
    );
    assert!(err.contains("out-\u{FFFD}/video.mp4"), "{err}");
    assert!(!out.join("frames/000000.png").exists());
    // frames alone are fine
    let o = preview(&["--no-video"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("panicked"), "{err}");
    assert!(out.join("frames/000001.png").is_file());
    // an error about a file in such a folder names it
    std::fs::write(&scene, "[animation]\nmax_frames = 0\n").unwrap();
    let o = anim(&[OsStr::new("validate"), scene.as_os_str()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        err.contains("scenes-\u{FFFD}\u{FFFD}") && err.contains("max_frames = 0"),
        "{err}"
    );
    // and an init image at such a path that is missing
    std::fs::write(
        &scene,
        "[animation]\nmax_frames = 2\n[init]\nimage = \"pic-\\u00e9.png\"\n",
    )
    .unwrap();
    let o = preview(&["--no-video"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && !err.contains("panicked") && err.contains("[init] image"),
        "{err}"
    );
}
