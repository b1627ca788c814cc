//! `anim batch`, `anim sweep`, `anim render --frames`, `anim encode` and `anim farm`: local batches
//! and sweeps (a failing scene does not stop the others, exit status 1), frame ranges
//! byte-identical to a whole render, Kubernetes manifests checked structurally, and the Slurm
//! acceptance list against a real single-node Slurm that `scripts/slurm/start.sh` installs and
//! starts (each Slurm test is skipped, saying so, only where the packages cannot be installed).
//! Every scene uses the tiny model at 64x64 with 4 frames.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_anim"));
    c.args(args);
    // the test cluster's configuration, once a Slurm test has started it
    if let Some(Some(conf)) = SLURM_CONF.get() {
        c.env("SLURM_CONF", conf);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run anim")
}

fn anim(args: &[&str]) -> Output {
    run(args, &[])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 2D scene of the tiny model, 64x64, 4 frames, written as `dir/<name>.toml`.
fn scene(dir: &Path, name: &str, seed: i64) -> PathBuf {
    scene_with(dir, name, seed, "")
}

fn scene_with(dir: &Path, name: &str, seed: i64, extra: &str) -> PathBuf {
    let model = root().join("models/tiny-sd");
    let body = format!(
        "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 4\n[generation]\nseed = {seed}\n\
         steps = 4\nstrength = \"0:(0.6)\"\n[motion]\nzoom = \"0:(1.04)\"\n[prompts]\n\"0\" = \"a forest\"\n\
         [model]\nfolder = \"{}\"\n[output]\nfps = 4\n{extra}",
        model.display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

/// The scene file of a Video Input scene over a 12-frame generated video (fixed seed).
fn video_scene(dir: &Path) -> PathBuf {
    let mut paths = Vec::new();
    for k in 0..12u8 {
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([k * 20, (x * 4) as u8, (y * 4) as u8])
        });
        let p = dir.join(format!("src{k:02}.png"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let video = dir.join("input.mp4");
    let settings = anim::output::VideoSettings::h264(12.0, 10, "fast");
    anim::output::encode_mp4(&paths, &video, &settings).unwrap();
    let model = root().join("models/tiny-sd");
    let p = dir.join("clip.toml");
    std::fs::write(
        &p,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmode = \"Video Input\"\nmax_frames = 99\n\
             [video_input]\nvideo_init_path = \"input.mp4\"\n[generation]\nseed = 9\nsteps = 4\n\
             strength = \"0:(0.5)\"\n[prompts]\n\"0\" = \"a river\"\n[model]\nfolder = \"{}\"\n[output]\nfps = 12\n",
            model.display()
        ),
    )
    .unwrap();
    p
}

/// The bytes of frames `0..n` of a render in `out`.
fn frames(out: &Path, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let p = out.join(format!("frames/{i:06}.png"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

fn assert_same_frames(got: &Path, want: &Path, n: usize) {
    let (g, w) = (frames(got, n), frames(want, n));
    for i in 0..n {
        assert!(
            g[i] == w[i],
            "frame {i} of {} differs from {}",
            got.display(),
            want.display()
        );
    }
    assert!(!got.join(format!("frames/{n:06}.png")).exists());
}

fn render(scene: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["render", s(scene), "--out", s(out), "--quiet"];
    args.extend_from_slice(extra);
    let o = anim(&args);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn batch_renders_every_scene_and_a_failing_one_makes_the_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let a = scene(dir.path(), "a", 1);
    // fails at render time: no model there
    let bad = scene_with(dir.path(), "bad", 2, "");
    let t = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(
        &bad,
        t.replace(s(&root().join("models/tiny-sd")), "/no/such/model"),
    )
    .unwrap();
    let c = scene(dir.path(), "c", 3);
    let runs = dir.path().join("runs");
    let o = anim(&[
        "batch",
        s(&a),
        s(&bad),
        s(&c),
        "--jobs",
        "2",
        "--out-root",
        s(&runs),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for name in ["a", "c"] {
        assert_eq!(frames(&runs.join(name), 4).len(), 4);
        assert!(runs.join(name).join("video.mp4").is_file());
    }
    let table = String::from_utf8_lossy(&o.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("scene"),
        ["scene", "frames", "seconds", "status", "output"]
    );
    assert_eq!((row("a")[1].as_str(), row("a")[3].as_str()), ("4", "done"));
    assert_eq!(row("bad")[3], "failed");
    assert_eq!(row("c")[3], "done");
    assert!(
        table.contains("/no/such/model"),
        "the failure is explained:\n{table}"
    );
    assert!(runs.join("bad/render.log").is_file());
    // frames equal a render of the scene alone
    let alone = dir.path().join("alone");
    render(&a, &alone, &["--no-video"]);
    assert_same_frames(&runs.join("a"), &alone, 4);

    // --resume skips what is complete
    let o = anim(&["batch", s(&a), "--out-root", s(&runs), "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_same_frames(&runs.join("a"), &alone, 4);
}

#[test]
fn sweep_renders_every_variant_and_a_failing_one_makes_the_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let base = scene(dir.path(), "forest", 1);
    let model = root().join("models/tiny-sd");
    let vary_model = format!("model.folder={},/no/such/model", model.display());
    let o = anim(&[
        "sweep",
        s(&base),
        "--vary",
        &vary_model,
        "--vary",
        "seed=5",
        "--out-root",
        s(dir.path()),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let sweep = dir.path().join("forest-sweep");
    let names: Vec<String> = std::fs::read_dir(sweep.join("variants"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let good = std::fs::read_dir(&sweep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("manifest.json").is_file())
        .expect("the variant with the real model rendered");
    let name = good.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("folder=") && name.ends_with(",seed=5"),
        "{name}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["seed"], 5);
    assert_eq!(frames(&good, 4).len(), 4);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("failed"),
        "{}",
        text(&o)
    );
}

#[test]
fn sweep_dry_run_lists_the_variants_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = scene(dir.path(), "forest", 1);
    let out = dir.path().join("runs");
    let o = anim(&[
        "sweep",
        s(&base),
        "--vary",
        "seed=3..4",
        "--vary",
        "strength_schedule=\"0:(0.5)\",\"0:(0.6)\"",
        "--out-root",
        s(&out),
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout);
    let labels: Vec<&str> = listing
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "seed=3,strength=0.5",
            "seed=3,strength=0.6",
            "seed=4,strength=0.5",
            "seed=4,strength=0.6"
        ],
        "{listing}"
    );
    assert!(listing.contains(s(&out.join("forest-sweep/seed=4,strength=0.6"))));
    assert!(!out.exists(), "a dry run writes nothing");
    // a key the scene does not have is refused before anything is written
    let o = anim(&[
        "sweep",
        s(&base),
        "--vary",
        "generation.sed=1,2",
        "--dry-run",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sed"),
        "{}",
        text(&o)
    );
}

/// Interpolation frames rendered as two ranges equal a whole render, and `anim encode` makes the
/// same video; modes whose frames depend on the previous ones refuse `--frames`, saying why.
#[test]
fn frame_ranges_are_byte_identical_and_encode_makes_the_same_video() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scene_with(dir.path(), "travel", 11, "");
    let t = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("[animation]\n", "[animation]\nmode = \"Interpolation\"\n")
        + "[animation_prompts]\ntravel = \"linear\"\n";
    let t = t.replace(
        "\"0\" = \"a forest\"",
        "\"0\" = \"a forest\"\n\"3\" = \"a city\"",
    );
    std::fs::write(&sc, t).unwrap();
    let whole = dir.path().join("whole");
    render(&sc, &whole, &[]);
    let parts = dir.path().join("parts");
    render(&sc, &parts, &["--frames", "2..3"]);
    render(&sc, &parts, &["--frames", "0..1"]);
    assert!(!parts.join("video.mp4").exists(), "--frames makes no video");
    assert_same_frames(&parts, &whole, 4);
    // a range whose render is complete is skipped by --resume=auto
    render(&sc, &parts, &["--frames", "0..1", "--resume=auto"]);
    let o = anim(&["encode", s(&parts)]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(parts.join("video.mp4")).unwrap(),
        std::fs::read(whole.join("video.mp4")).unwrap(),
        "the video of the parts equals the whole render's"
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parts.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(merged["complete"], true);
    assert_eq!(merged["frames"].as_array().unwrap().len(), 4);
    assert_eq!(merged["parts"], serde_json::json!([[0, 1], [2, 3]]));

    let moving = scene(dir.path(), "moving", 1);
    let o = anim(&["render", s(&moving), "--frames", "0..1", "--quiet"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("each frame depends on the one before"),
        "{}",
        text(&o)
    );
    let o = anim(&[
        "farm",
        "submit",
        s(&moving),
        "--slurm",
        "--split",
        "2",
        "--dry-run",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--split 2"),
        "{}",
        text(&o)
    );
}

#[test]
fn farm_submit_dry_run_prints_the_array_and_the_summary_job() {
    let dir = tempfile::tempdir().unwrap();
    let a = scene(dir.path(), "a", 1);
    let b = scene(dir.path(), "b", 2);
    let out = dir.path().join("out");
    let o = anim(&[
        "farm",
        "submit",
        s(&a),
        s(&b),
        "--slurm",
        "--out-root",
        s(&out),
        "--max-parallel",
        "1",
        "--partition",
        "gpu",
        "--gpus-per-task",
        "1",
        "--time",
        "01:00:00",
        "--sbatch-arg=--qos=high",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let script = String::from_utf8_lossy(&o.stdout);
    for want in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --requeue",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:00:00",
        "#SBATCH --qos=high",
        "'--resume=auto'",
        &format!(
            "#SBATCH --output={}/farm-%A/logs/task-%a.log",
            out.display()
        ),
        &format!("'{}' '--out' '{}'", a.display(), out.join("a").display()),
        "farm finish",
    ] {
        assert!(script.contains(want), "`{want}` not in\n{script}");
    }
    assert!(!out.join("a").exists());
}

#[test]
fn k8s_manifests_are_an_indexed_job_and_a_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let a = scene(dir.path(), "a", 1);
    let clip = video_scene(dir.path());
    let out = dir.path().join("out");
    let o = anim(&[
        "farm",
        "submit",
        s(&a),
        s(&clip),
        "--k8s",
        "--image",
        "registry.example/anim:1",
        "--gpu",
        "1",
        "--pvc",
        "shared",
        "--namespace",
        "render",
        "--max-parallel",
        "2",
        "--split",
        "1",
        "--out-root",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let yaml = String::from_utf8_lossy(&o.stdout).into_owned();
    let docs: Vec<yaml_serde::Value> = yaml
        .split("\n---\n")
        .map(|d| yaml_serde::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect();
    assert_eq!(docs.len(), 2);
    let (cm, job) = (&docs[0], &docs[1]);
    let str_at = |v: &yaml_serde::Value, path: &[&str]| -> String {
        let mut v = v;
        for k in path {
            v = match k.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[*k],
            };
        }
        match v {
            yaml_serde::Value::String(s) => s.clone(),
            yaml_serde::Value::Number(n) => n.to_string(),
            other => panic!("{path:?}: {other:?}"),
        }
    };
    assert_eq!(str_at(cm, &["kind"]), "ConfigMap");
    assert_eq!(str_at(cm, &["metadata", "namespace"]), "render");
    let tasks = str_at(cm, &["data", "tasks.tsv"]);
    let lines: Vec<Vec<&str>> = tasks.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], ["0", s(&a), s(&out.join("a")), "-"]);
    assert_eq!(lines[1][1], s(&clip));
    assert!(str_at(cm, &["data", "run.sh"]).contains("--resume=auto"));
    assert_eq!(str_at(job, &["apiVersion"]), "batch/v1");
    assert_eq!(str_at(job, &["kind"]), "Job");
    assert_eq!(str_at(job, &["spec", "completionMode"]), "Indexed");
    assert_eq!(str_at(job, &["spec", "completions"]), "2");
    assert_eq!(str_at(job, &["spec", "parallelism"]), "2");
    let pod = ["spec", "template", "spec"];
    let c = [&pod[..], &["containers", "0"]].concat();
    assert_eq!(
        str_at(job, &[&c[..], &["image"]].concat()),
        "registry.example/anim:1"
    );
    assert_eq!(
        str_at(
            job,
            &[&c[..], &["resources", "limits", "nvidia.com/gpu"]].concat()
        ),
        "1"
    );
    assert_eq!(
        str_at(job, &[&pod[..], &["restartPolicy"]].concat()),
        "Never"
    );
    let volumes = &job["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        str_at(volumes, &["1", "persistentVolumeClaim", "claimName"]),
        "shared"
    );
    assert_eq!(
        str_at(volumes, &["0", "configMap", "name"]),
        str_at(cm, &["metadata", "name"])
    );
    // the claim is mounted where the scenes and outputs are, so their absolute paths hold
    let mount = str_at(job, &[&c[..], &["volumeMounts", "1", "mountPath"]].concat());
    assert!(a.starts_with(&mount) && out.starts_with(&mount), "{mount}");

    // a split Video Input scene: one index per part
    let dir2 = dir.path().join("k8s");
    let o = anim(&[
        "farm",
        "submit",
        s(&clip),
        "--k8s",
        "--image",
        "anim",
        "--split",
        "3",
        "--out-root",
        s(&out),
        "--k8s-out",
        s(&dir2),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let job: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(dir2.join("job.yaml")).unwrap()).unwrap();
    assert_eq!(str_at(&job, &["spec", "completions"]), "3");
    let cm: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(dir2.join("configmap.yaml")).unwrap())
            .unwrap();
    let ranges: Vec<String> = str_at(&cm, &["data", "tasks.tsv"])
        .lines()
        .map(|l| l.split('\t').nth(3).unwrap().to_string())
        .collect();
    assert_eq!(ranges, ["0..3", "4..7", "8..11"]);
}

// ---------------------------------------------------------------- Slurm

/// `SLURM_CONF` of the test cluster once started.
static SLURM_CONF: OnceLock<Option<String>> = OnceLock::new();

/// `SLURM_CONF` of the test cluster, started once per test process by scripts/slurm/start.sh;
/// `None` (with a message) where Slurm cannot be installed here.
fn slurm_conf() -> Option<&'static str> {
    SLURM_CONF.get_or_init(|| {
        let base = std::env::var("SLURM_BASE").unwrap_or_else(|_| "/tmp/anim-slurm".into());
        let o = Command::new("bash")
            .arg(root().join("scripts/slurm/start.sh"))
            .output()
            .expect("run scripts/slurm/start.sh");
        match o.status.code() {
            Some(0) => Some(format!("{base}/etc/slurm.conf")),
            Some(3) => {
                eprintln!(
                    "SKIPPED: the Slurm tests need slurmctld, slurmd and munge, which cannot be \
                     installed here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            _ => panic!(
                "scripts/slurm/start.sh failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
    })
    .as_deref()
}

/// Whether the Slurm tests can run (prints why not).
fn have_slurm() -> bool {
    slurm_conf().is_some()
}

/// The job id `anim farm submit` / `anim sweep --farm slurm` printed.
fn submitted(o: &Output) -> u64 {
    assert!(o.status.success(), "{}", text(o));
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|r| r.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no job id in\n{}", text(o)))
}

fn status(job: u64) -> serde_json::Value {
    let o = anim(&["farm", "status", &job.to_string(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Polls `cond` every 200 ms for up to `secs` seconds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > end {
            let base = std::env::var("SLURM_BASE").unwrap_or_else(|_| "/tmp/anim-slurm".into());
            let log =
                std::fs::read_to_string(format!("{base}/log/slurmctld.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let queue = Command::new("squeue")
                .env("SLURM_CONF", slurm_conf().unwrap_or(""))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what}\nsqueue:\n{queue}\nslurmctld.log (last lines first):\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every task of `job` has ended and its summary is written; the last status.
fn wait_done(job: u64) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_for(240, &format!("job {job} and its summary"), || {
        last = status(job);
        let ended =
            last["tasks"].as_array().unwrap().iter().all(|t| {
                ["completed", "failed", "cancelled"].contains(&t["state"].as_str().unwrap())
            });
        ended && last["summary"].is_string()
    });
    last
}

fn states(st: &serde_json::Value) -> Vec<String> {
    st["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn slurm_three_scenes_complete_and_the_summary_lists_them() {
    if !have_slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenes: Vec<PathBuf> = (0..3)
        .map(|i| scene(dir.path(), &format!("s{i}"), 10 + i))
        .collect();
    let out = dir.path().join("out");
    let mut args = vec!["farm", "submit"];
    args.extend(scenes.iter().map(|p| s(p)));
    args.extend(["--slurm", "--out-root", s(&out), "--max-parallel", "2"]);
    let o = anim(&args);
    let job = submitted(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("farm-{job}/logs/task-")),
        "the logs' place is printed: {}",
        text(&o)
    );
    let st = wait_done(job);
    assert_eq!(states(&st), ["completed"; 3], "{st:#}");
    for (i, t) in st["tasks"].as_array().unwrap().iter().enumerate() {
        assert_eq!(t["frames"], 4);
        assert_eq!(t["frames_total"], 4);
        assert_eq!(t["output"].as_str().unwrap(), s(&out.join(format!("s{i}"))));
    }
    let human = anim(&["farm", "status", &job.to_string()]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("completed"),
        "{}",
        text(&human)
    );
    let farm = out.join(format!("farm-{job}"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(farm.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed"], 3);
    for (i, t) in summary["tasks"].as_array().unwrap().iter().enumerate() {
        let name = format!("s{i}");
        assert_eq!(t["scene"].as_str().unwrap(), s(&scenes[i]));
        assert_eq!(t["state"], "completed");
        assert_eq!(t["frames"], 4);
        assert!(t["seconds"].as_f64().is_some(), "{t}");
        assert_eq!(
            t["log"].as_str().unwrap(),
            s(&farm.join(format!("logs/task-{i}.log")))
        );
        assert_eq!(frames(&out.join(&name), 4).len(), 4);
        assert!(out.join(&name).join("video.mp4").is_file());
    }
    let sheet = image::open(farm.join("contact_sheet.png")).unwrap();
    assert_eq!(sheet.width(), 2 * 132 + 4, "3 last frames in 2 columns");
    // the outputs are those of a render on this machine
    let alone = dir.path().join("alone");
    render(&scenes[1], &alone, &["--no-video"]);
    assert_same_frames(&out.join("s1"), &alone, 4);
}

#[test]
fn slurm_a_failing_scene_is_reported_with_its_log_tail_and_the_others_complete() {
    if !have_slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = scene(dir.path(), "a", 1);
    // fails at render time (the scene reads fine): its init image does not exist
    let bad = scene_with(dir.path(), "bad", 2, "[init]\nimage = \"missing.png\"\n");
    let c = scene(dir.path(), "c", 3);
    let out = dir.path().join("out");
    let job = submitted(&anim(&[
        "farm",
        "submit",
        s(&a),
        s(&bad),
        s(&c),
        "--slurm",
        "--out-root",
        s(&out),
    ]));
    let st = wait_done(job);
    assert_eq!(states(&st), ["completed", "failed", "completed"], "{st:#}");
    let tail = st["tasks"][1]["log_tail"].as_array().unwrap();
    assert!(
        tail.iter()
            .any(|l| l.as_str().unwrap().contains("missing.png")),
        "the log tail says why: {tail:?}"
    );
    let human =
        String::from_utf8_lossy(&anim(&["farm", "status", &job.to_string()]).stdout).into_owned();
    assert!(
        human.contains("failed") && human.contains("missing.png"),
        "{human}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("farm-{job}/summary.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["tasks"][1]["state"], "failed");
    assert!(
        !summary["tasks"][1]["log_tail"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(summary["completed"], 2);
}

#[test]
fn slurm_a_task_cancelled_mid_render_and_resubmitted_resumes_byte_identical() {
    if !have_slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sc = scene(dir.path(), "long", 21);
    let out = dir.path().join("out");
    // the task stands still after writing frame 1 (the hook of tests/resume.rs) until cancelled
    let job = submitted(&run(
        &["farm", "submit", s(&sc), "--slurm", "--out-root", s(&out)],
        &[("ANIM_HALT_AFTER_FRAME", "1")],
    ));
    wait_for(120, "frame 1 of the first run", || {
        out.join("long/frames/000001.png").is_file()
    });
    assert_eq!(status(job)["tasks"][0]["state"], "running");
    let o = anim(&["farm", "cancel", &job.to_string(), "--task", "0"]);
    assert!(o.status.success(), "{}", text(&o));
    let st = wait_done(job);
    assert_eq!(states(&st), ["cancelled"], "{st:#}");
    assert!(!out.join("long/frames/000003.png").exists());
    assert!(
        out.join("long/state/state.json").is_file(),
        "a checkpoint to resume from"
    );
    let first = out.join("long/frames/000000.png");
    let written = std::fs::metadata(&first).unwrap().modified().unwrap();

    let again = submitted(&anim(&[
        "farm",
        "submit",
        s(&sc),
        "--slurm",
        "--out-root",
        s(&out),
    ]));
    let st = wait_done(again);
    assert_eq!(states(&st), ["completed"], "{st:#}");
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        written,
        "resumed: frame 0 was not made again"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("long/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["frames"].as_array().unwrap().len(), 4);
    let alone = dir.path().join("alone");
    render(&sc, &alone, &["--no-video"]);
    assert_same_frames(&out.join("long"), &alone, 4);
}

#[test]
fn slurm_a_2x2_sweep_renders_four_variants() {
    if !have_slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = scene(dir.path(), "forest", 1);
    let root_dir = dir.path().join("runs");
    let job = submitted(&anim(&[
        "sweep",
        s(&base),
        "--vary",
        "seed=3..4",
        "--vary",
        "strength_schedule=\"0:(0.5)\",\"0:(0.6)\"",
        "--out-root",
        s(&root_dir),
        "--farm",
        "slurm",
        "--max-parallel",
        "2",
    ]));
    let st = wait_done(job);
    assert_eq!(states(&st), ["completed"; 4], "{st:#}");
    let sweep = root_dir.join("forest-sweep");
    for label in [
        "seed=3,strength=0.5",
        "seed=3,strength=0.6",
        "seed=4,strength=0.5",
        "seed=4,strength=0.6",
    ] {
        assert_eq!(frames(&sweep.join(label), 4).len(), 4, "{label}");
        assert!(
            sweep
                .join("variants")
                .join(format!("{label}.toml"))
                .is_file()
        );
    }
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sweep.join("seed=4,strength=0.6/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["seed"], 4);
    assert_eq!(m["scene"]["generation"]["strength"], "0:(0.6)");
    assert!(sweep.join(format!("farm-{job}/summary.json")).is_file());
}

#[test]
fn slurm_a_video_input_scene_split_in_3_tasks_equals_one_machine() {
    if !have_slurm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clip = video_scene(dir.path());
    let out = dir.path().join("out");
    let job = submitted(&anim(&[
        "farm",
        "submit",
        s(&clip),
        "--slurm",
        "--split",
        "3",
        "--out-root",
        s(&out),
    ]));
    let st = wait_done(job);
    assert_eq!(states(&st), ["completed"; 3], "{st:#}");
    let parts: Vec<serde_json::Value> = st["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["part"].clone())
        .collect();
    assert_eq!(
        parts,
        [
            serde_json::json!([0, 3]),
            serde_json::json!([4, 7]),
            serde_json::json!([8, 11])
        ]
    );
    let alone = dir.path().join("alone");
    render(&clip, &alone, &[]);
    assert_same_frames(&out.join("clip"), &alone, 12);
    assert_eq!(
        std::fs::read(out.join("clip/video.mp4")).expect("the summary job encoded the video"),
        std::fs::read(alone.join("video.mp4")).unwrap(),
        "the video equals the single-machine render's"
    );
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("farm-{job}/summary.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["scenes"].as_array().unwrap().len(), 1);
    assert_eq!(summary["scenes"][0]["complete"], true);
    assert_eq!(
        summary["scenes"][0]["video"].as_str().unwrap(),
        s(&out.join("clip/video.mp4"))
    );
}
