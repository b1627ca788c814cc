//! Camera Shakify: the sampled shake tables against SciPy references made by
//! scripts/make_shakify_refs.py (Deforum's `Shaker` semantics: not-a-knot cubic splines sampled
//! at `linspace(0, n + 1, int((n + 1) · fps / 24))`, looped), the shake in a 3D scene's motion
//! values and in its preview, 2D scenes ignoring it, Deforum settings keys, and bad input.

use std::path::Path;

use anim::motion::shakify::{self, AXES, ShakeSettings};
use anim::render::{RenderOptions, preview};
use anim::scene::Scene;
use anim::scene::deforum;

fn refs() -> Vec<serde_json::Value> {
    let p = format!(
        "{}/tests/data/shakify/refs.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).expect(&p)).unwrap()
}

fn series(case: &serde_json::Value, axis: &str) -> Vec<f64> {
    case["values"][axis]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn shake_tables_match_scipy() {
    let mut worst = 0.0f64;
    for case in refs() {
        let settings = ShakeSettings {
            name: case["name"].as_str().unwrap().into(),
            intensity: case["intensity"].as_f64().unwrap(),
            speed: case["speed"].as_f64().unwrap(),
        };
        let fps = case["fps"].as_f64().unwrap();
        let shake = settings.shake().unwrap().unwrap();
        let looped = shake
            .looped(settings.intensity, settings.speed, fps)
            .unwrap();
        for (k, axis) in AXES.iter().enumerate() {
            for (i, want) in series(&case, axis).into_iter().enumerate() {
                let got = looped.at(i)[k];
                let d = (got - want).abs();
                worst = worst.max(d);
                assert!(
                    d <= 2e-16,
                    "{} x{} speed {} at {fps} fps, {axis} frame {i}: {got} vs {want}",
                    settings.name,
                    settings.intensity,
                    settings.speed
                );
            }
        }
    }
    eprintln!("largest difference from SciPy: {worst:e}");
}

/// A 3D scene (flat depth) of `frames` frames at `fps` with `extra` lines in `[motion]`.
fn scene_3d(mode: &str, frames: usize, fps: f64, extra: &str) -> String {
    format!(
        "[image]\nwidth = 64\nheight = 64\n[animation]\nmode = \"{mode}\"\nmax_frames = {frames}\n\
         [generation]\nseed = 1\n[output]\nfps = {fps}\n[motion]\n{extra}\n"
    )
}

#[test]
fn three_d_motion_values_include_the_shake() {
    let case = refs()
        .into_iter()
        .find(|c| c["name"] == "Investigation" && c["fps"] == 1.0)
        .unwrap();
    let text = scene_3d(
        "3D",
        40,
        1.0,
        "translation_x = \"0:(2)\"\nrotation_3d_z = \"0:(t/10)\"\nzoom = 1.5\n\
         shake = { name = \"Investigation\", intensity = 2.5 }",
    );
    let scene = Scene::from_toml(&text, Path::new("shake.toml")).unwrap();
    assert!(scene.warnings.is_empty(), "{:?}", scene.warnings);
    let s = scene.frame_schedules().unwrap();
    let (tx, rz) = (
        series(&case, "translation_x"),
        series(&case, "rotation_3d_z"),
    );
    let (ty, rx) = (
        series(&case, "translation_y"),
        series(&case, "rotation_3d_x"),
    );
    for i in 0..40 {
        let v = s.at(i);
        assert!((v.translation_x - (2.0 + tx[i])).abs() < 1e-15, "frame {i}");
        assert!((v.translation_y - ty[i]).abs() < 1e-15, "frame {i}");
        assert!((v.rotation_3d_x - rx[i]).abs() < 1e-15, "frame {i}");
        assert!((v.rotation_3d_z - (i as f64 / 10.0 + rz[i])).abs() < 1e-15);
        assert_eq!(v.zoom, 1.5, "2D schedules are left alone");
    }
    // the shake loops: 15 entries at 1 fps
    assert_eq!(s.at(3).translation_y, s.at(18).translation_y);
}

#[test]
fn preview_warps_with_the_shaken_values() {
    // the preview of a shaken scene is byte for byte the preview of a scene keyed to the shaken
    // values: the camera reads the shake through the schedules, on every frame
    let dir = tempfile::tempdir().unwrap();
    let frames = 5;
    let shaken = scene_3d(
        "3D",
        frames,
        24.0,
        "translation_z = 3\nshake = { name = \"HandyCam Run\", intensity = 3.0, speed = 1.7 }",
    );
    let path = dir.path().join("shaken.toml");
    let scene = Scene::from_toml(&shaken, &path).unwrap();
    let s = scene.frame_schedules().unwrap();
    let keyed: Vec<String> = AXES
        .iter()
        .enumerate()
        .map(|(k, axis)| {
            let keys: Vec<String> = (0..frames)
                .map(|i| {
                    let v = s.at(i);
                    let x = [
                        v.translation_x,
                        v.translation_y,
                        v.translation_z,
                        v.rotation_3d_x,
                        v.rotation_3d_y,
                        v.rotation_3d_z,
                    ][k];
                    format!("{i}:({x:?})")
                })
                .collect();
            format!("{axis} = \"{}\"", keys.join(", "))
        })
        .collect();
    let plain = scene_3d("3D", frames, 24.0, &keyed.join("\n"));
    let plain = Scene::from_toml(&plain, &dir.path().join("plain.toml")).unwrap();
    let run = |scene: &Scene, out: &str| {
        let opts = RenderOptions {
            out: Some(dir.path().join(out)),
            quiet: true,
            no_video: true,
            ..Default::default()
        };
        preview(scene, &opts).unwrap();
        (0..frames)
            .map(|i| std::fs::read(dir.path().join(format!("{out}/frames/{i:06}.png"))).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(&scene, "a"), run(&plain, "b"));
    assert_eq!(a, b, "the preview uses the shaken values");
    let still = Scene::from_toml(
        &scene_3d("3D", frames, 24.0, "translation_z = 3"),
        &dir.path().join("still.toml"),
    )
    .unwrap();
    assert_ne!(run(&still, "c")[2], a[2], "and the shake moves the picture");
}

#[test]
fn two_d_ignores_the_shake_with_a_warning() {
    let body = "translation_x = \"0:(2)\"\nshake = { name = \"THE_ZEEK_2D\" }";
    let scene = Scene::from_toml(&scene_3d("2D", 10, 24.0, body), Path::new("s.toml")).unwrap();
    let w: Vec<_> = scene
        .warnings
        .iter()
        .filter(|w| w.contains("shake"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", scene.warnings);
    assert!(w[0].contains("The Zeek (2D)") && w[0].contains("3D camera only"));
    let s = scene.frame_schedules().unwrap();
    for i in 0..10 {
        assert_eq!(
            (s.at(i).translation_x, s.at(i).rotation_3d_z),
            (2.0, 0.0),
            "frame {i}"
        );
    }
}

#[test]
fn bad_shakes_are_clear_errors() {
    for (shake, needles) in [
        (
            "{ name = \"Investigaton\" }",
            &["shake.name", "Investigaton", "The Closeup", "HANDYCAM_RUN"][..],
        ),
        (
            "{ name = \"Investigation\", speed = 0 }",
            &["shake.speed", "above 0"],
        ),
        (
            "{ name = \"Investigation\", speed = 3.5 }",
            &["shake.speed"],
        ),
        (
            "{ name = \"Investigation\", intensity = -1 }",
            &["shake.intensity", "0..=3"],
        ),
        ("{ name = \"Investigation\", size = 2 }", &["size"]),
    ] {
        let text = scene_3d("3D", 10, 24.0, &format!("shake = {shake}"));
        let e = Scene::from_toml(&text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{shake}: lacks {n:?}: {e}");
        }
    }
    // an fps too low for the loop
    let text = scene_3d("3D", 10, 0.2, "shake = { name = \"HandyCam Run\" }");
    let e = Scene::from_toml(&text, Path::new("s.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fps") && e.contains("HandyCam Run"), "{e}");
    // off: the other values are not checked, as Deforum ignores them
    let text = scene_3d("3D", 10, 24.0, "shake = { name = \"None\", speed = 0 }");
    assert!(Scene::from_toml(&text, Path::new("s.toml")).is_ok());
}

fn settings(extra: &str) -> String {
    format!(
        r#"{{"W": 64, "H": 64, "animation_mode": "3D", "max_frames": 20, "seed": 1, "fps": 12,
        "translation_x": "0:(0)", {extra}}}"#
    )
}

#[test]
fn deforum_shake_keys_are_read() {
    let (scene, warnings) = deforum::from_settings(
        &settings(r#""shake_name": "The Wedding", "shake_intensity": 0.8, "shake_speed": 2.7"#),
        Path::new("s.json"),
    )
    .unwrap();
    assert_eq!(
        scene.motion.shake,
        ShakeSettings {
            name: "The Wedding".into(),
            intensity: 0.8,
            speed: 2.7
        }
    );
    assert!(
        !warnings.iter().any(|w| w.contains("shake")),
        "{warnings:?}"
    );
    let s = scene.frame_schedules().unwrap();
    let looped = shakify::find("THE_WEDDING")
        .unwrap()
        .looped(0.8, 2.7, 12.0)
        .unwrap();
    assert!((s.at(7).translation_x - looped.at(7)[0]).abs() < 1e-15);
    // "None" and a missing key are off
    for extra in [
        r#""shake_name": "None", "shake_speed": 0"#,
        r#""seed_behavior": "iter""#,
    ] {
        let (scene, _) = deforum::from_settings(&settings(extra), Path::new("s.json")).unwrap();
        assert_eq!(scene.frame_schedules().unwrap().at(5).translation_x, 0.0);
    }
    // errors name the Deforum key
    for (extra, needles) in [
        (
            r#""shake_name": "Earthquake""#,
            &["Earthquake", "Investigation"][..],
        ),
        (
            r#""shake_name": "INVESTIGATION", "shake_speed": 0"#,
            &["shake_speed"],
        ),
        (
            r#""shake_name": "INVESTIGATION", "shake_intensity": 4"#,
            &["shake_intensity"],
        ),
        (r#""shake_name": 3"#, &["shake_name"]),
    ] {
        let e = deforum::from_settings(&settings(extra), Path::new("s.json"))
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{extra}: lacks {n:?}: {e}");
        }
    }
}
