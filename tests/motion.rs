//! Motion scripts and presets through the `anim` binary: `anim presets list|show|preview`,
//! `anim schedule` showing the final curves, and errors naming the script, line and frame.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs `anim` with an empty user preset folder, so the user's own presets never interfere.
fn anim_in(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .output()
        .expect("run anim")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const BUNDLED: &[&str] = &[
    "dolly_in",
    "dolly_out",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "roll",
    "orbit_left",
    "orbit_right",
    "crane_up",
    "spiral_zoom",
    "handheld_shake",
    "ken_burns",
    "dolly_zoom",
    "fly_through",
    "rise_and_reveal",
    "pulse_zoom",
];

#[test]
fn presets_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let o = anim_in(dir.path(), &["presets", "list"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for name in BUNDLED {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{out}"
        );
    }
    let o = anim_in(dir.path(), &["presets", "show", "orbit_left"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for needle in [
        "orbit_left (bundled)",
        "speed = 1",
        "translation_x += 3*speed",
        "rotation_3d_y += 0.5*speed",
        "2D",
        "3D",
    ] {
        assert!(out.contains(needle), "show lacks {needle:?}:\n{out}");
    }
    let o = anim_in(dir.path(), &["presets", "show", "dolly_in"]);
    assert!(
        text(&o).0.contains("zoom *= 1 + 0.01*speed"),
        "{}",
        text(&o).0
    );
    let o = anim_in(dir.path(), &["presets", "show", "orbit_lft"]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("did you mean `orbit_left`"),
        "{err}"
    );
}

#[test]
fn user_presets_override_bundled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("anim/presets");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("roll.toml"), "description = \"my roll\"\n[params.speed]\ndefault = 4\ndoc = \"d\"\n[2d]\nangle = \"speed\"\n[3d]\nrotation_3d_z = \"speed\"\n").unwrap();
    let o = anim_in(dir.path(), &["presets", "list"]);
    let (out, _) = text(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with("roll") && l.contains("my roll") && l.contains("roll.toml")),
        "{out}"
    );
    let scene = dir.path().join("s.toml");
    std::fs::write(
        &scene,
        "[animation]\nmax_frames = 3\n[motion]\nangle = 1\n[[motion.preset]]\nname = \"roll\"\n",
    )
    .unwrap();
    let o = anim_in(
        dir.path(),
        &["schedule", scene.to_str().unwrap(), "--only", "angle"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out, "frame,angle\n0,5\n1,5\n2,5\n");
    // the scene's preset_dirs (relative to the scene) override the user folder
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(
        dir.path().join("mine/roll.toml"),
        "description = \"scene roll\"\n[2d]\nangle = \"-1\"\n",
    )
    .unwrap();
    std::fs::write(&scene, "[animation]\nmax_frames = 2\n[motion]\nangle = 1\npreset_dirs = [\"mine\"]\n[[motion.preset]]\nname = \"roll\"\n").unwrap();
    let o = anim_in(
        dir.path(),
        &["schedule", scene.to_str().unwrap(), "--only", "angle"],
    );
    assert_eq!(text(&o).0, "frame,angle\n0,0\n1,0\n", "{}", text(&o).1);
}

#[test]
fn schedule_shows_presets_and_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("scripts")).unwrap();
    std::fs::write(
        d.join("scripts/wave.rhai"),
        "fn frame(ctx) {\n    #{ zoom: 1.0 + 0.01 * sin(ctx.t), add: #{ angle: ctx.vars.k } }\n}\n",
    )
    .unwrap();
    let scene = d.join("s.toml");
    std::fs::write(
        &scene,
        "[animation]\nmax_frames = 6\n[variables]\nk = 0.25\n[motion]\ntranslation_x = 1\nangle = 0\nscript = \"scripts/wave.rhai\"\n\
         [[motion.preset]]\nname = \"pan_left\"\nspeed = 2\nfrom = 2\nto = 4\n[[motion.preset]]\nname = \"pan_right\"\n",
    )
    .unwrap();
    // CSV: shortest round-trip numbers, read back exactly
    let o = anim_in(
        d,
        &[
            "schedule",
            scene.to_str().unwrap(),
            "--only",
            "zoom,angle,translation_x",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let rows: Vec<Vec<f64>> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    let col = |k: usize| -> Vec<f64> { rows.iter().map(|r| r[k]).collect() };
    let (zoom, angle, tx) = (1, 2, 3);
    assert!(out.starts_with("frame,zoom,angle,translation_x\n"), "{out}");
    for (i, z) in col(zoom).iter().enumerate() {
        assert_eq!(*z, 1.0 + 0.01 * (i as f64).sin(), "zoom at frame {i}");
    }
    assert_eq!(col(angle), vec![0.25; 6]);
    // keyframed 1, pan_left speed 2 (+6) on frames 2..4, pan_right (-3) everywhere
    assert_eq!(col(tx), vec![-2.0, -2.0, 4.0, 4.0, -2.0, -2.0]);
}

#[test]
fn script_and_preset_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad.rhai"),
        "fn frame(ctx) {\n    if ctx.frame == 4 {\n        throw \"too far\";\n    }\n    #{}\n}\n",
    )
    .unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "[motion]\nscript = \"bad.rhai\"\n",
            &[
                "s.toml",
                "[motion] script bad.rhai",
                "line 3",
                "frame 4",
                "too far",
            ],
        ),
        (
            "[motion]\nscript = \"missing.rhai\"\n",
            &["missing.rhai", "cannot read"],
        ),
        (
            "[[motion.preset]]\nname = \"dolly_inn\"\n",
            &["unknown preset `dolly_inn`", "did you mean `dolly_in`"],
        ),
        (
            "[[motion.preset]]\nname = \"dolly_in\"\nsped = 2\n",
            &[
                "dolly_in",
                "unknown parameter `sped`",
                "did you mean `speed`",
            ],
        ),
        (
            "[motion]\nscrpt = \"bad.rhai\"\n",
            &["did you mean `script`"],
        ),
    ];
    for (body, needles) in cases {
        let scene = d.join("s.toml");
        std::fs::write(&scene, format!("[animation]\nmax_frames = 8\n{body}")).unwrap();
        let o = anim_in(d, &["schedule", scene.to_str().unwrap()]);
        let (_, err) = text(&o);
        assert!(
            !o.status.success() && !err.contains("panicked"),
            "{body}: {err}"
        );
        for n in *needles {
            assert!(err.contains(n), "{body}: error lacks {n:?}:\n{err}");
        }
    }
}

#[test]
fn presets_preview_renders_clips_and_a_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gallery");
    let o = anim_in(
        dir.path(),
        &[
            "presets",
            "preview",
            "--all",
            "--frames",
            "5",
            "--size",
            "32",
            "--no-video",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for name in BUNDLED {
        let last = out.join(name).join("frames/000004.png");
        assert!(last.exists(), "{}", last.display());
        assert!(out.join(name).join("scene.toml").exists());
    }
    // every preset moves the picture: its last frame differs from the first (the test pattern)
    for name in BUNDLED {
        let a = image::open(out.join(name).join("frames/000000.png"))
            .unwrap()
            .to_rgb8();
        let b = image::open(out.join(name).join("frames/000004.png"))
            .unwrap()
            .to_rgb8();
        assert_ne!(a, b, "{name} does not move");
    }
    let sheet = image::open(out.join("contact_sheet.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(sheet.width(), 190 + 5 * (32 + 6) + 6);
    assert!(sheet.height() >= BUNDLED.len() as u32 * 32);

    let one = dir.path().join("one");
    let o = anim_in(
        dir.path(),
        &[
            "presets",
            "preview",
            "roll",
            "--frames",
            "4",
            "--size",
            "32",
            "-q",
            "--out",
            one.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(one.join("roll/video.mp4").exists() && one.join("contact_sheet.png").exists());
    let o = anim_in(
        dir.path(),
        &["presets", "preview", "rol", "--out", one.to_str().unwrap()],
    );
    assert!(
        !o.status.success() && text(&o).1.contains("did you mean `roll`"),
        "{}",
        text(&o).1
    );
}

#[test]
fn example_scenes_resolve() {
    let dir = tempfile::tempdir().unwrap();
    for ex in ["examples/presets.toml", "examples/motion-script.toml"] {
        let o = anim_in(dir.path(), &["validate", root().join(ex).to_str().unwrap()]);
        assert!(o.status.success(), "{ex}: {}", text(&o).1);
    }
    // every example script runs over a whole scene
    for script in ["orbit", "shake", "pulse"] {
        let scene = dir.path().join(format!("{script}.toml"));
        let path = root().join(format!("scripts/{script}.rhai"));
        std::fs::write(
            &scene,
            format!(
                "[animation]\nmax_frames = 50\n[generation]\nseed = 3\n[motion]\nscript = \"{}\"\n",
                path.display()
            ),
        )
        .unwrap();
        let o = anim_in(
            dir.path(),
            &[
                "schedule",
                scene.to_str().unwrap(),
                "--only",
                "zoom,angle,translation_x",
            ],
        );
        assert!(o.status.success(), "{script}: {}", text(&o).1);
        let o2 = anim_in(
            dir.path(),
            &[
                "schedule",
                scene.to_str().unwrap(),
                "--only",
                "zoom,angle,translation_x",
            ],
        );
        assert_eq!(o.stdout, o2.stdout, "{script} is deterministic");
    }
}

/// The 3D signs the presets rely on, checked on the real 3D camera: the white marker of the test
/// pattern (at about (90, 38) in a 128x128 frame) moves the way the preset docs say.
#[test]
fn three_d_signs_match_the_preset_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let marker = |p: &std::path::Path| {
        let img = image::open(p).unwrap().to_rgb8();
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (x, y, px) in img.enumerate_pixels() {
            if px.0.iter().all(|v| *v > 250) {
                sx += x as f64;
                sy += y as f64;
                n += 1.0;
            }
        }
        (sx / n, sy / n, n)
    };
    let run = |motion: &str| {
        let s = dir.path().join("s.toml");
        std::fs::write(&s, format!("[image]\nwidth = 128\nheight = 128\n[animation]\nmode = \"3D\"\nmax_frames = 2\n[motion]\n{motion}\n[output]\nvideo = false\n")).unwrap();
        let out = dir.path().join("o");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
            .args([
                "preview",
                s.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "-q",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            marker(&out.join("frames/000000.png")),
            marker(&out.join("frames/000001.png")),
        )
    };
    let (a, b) = run("translation_z = 0\nrotation_3d_y = 5");
    assert!(
        b.0 < a.0 - 4.0,
        "pan right: content moves left ({a:?} -> {b:?})"
    );
    let (a, b) = run("translation_z = 0\nrotation_3d_x = 5");
    assert!(
        b.1 > a.1 + 4.0,
        "tilt up: content moves down ({a:?} -> {b:?})"
    );
    let (a, b) = run("translation_z = 20");
    assert!(
        b.2 > a.2 && b.0 > a.0 && b.1 < a.1,
        "forward: content grows and leaves the centre ({a:?} -> {b:?})"
    );
}
