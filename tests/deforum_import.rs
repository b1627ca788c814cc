//! Deforum settings files as first-class input: `anim schedule` reads them directly, and
//! `anim import deforum` writes an equivalent scene.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/deforum/default_settings.json")
}

fn anim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn import_round_trips_the_default_settings() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.toml");
    let o = anim(&[
        "import",
        "deforum",
        example().to_str().unwrap(),
        "-o",
        scene.to_str().unwrap(),
    ]);
    ok(&o);
    let warnings = String::from_utf8_lossy(&o.stderr);
    // keys anim does not implement are listed, never dropped silently (out of scope: with why)
    assert!(
        warnings.contains("out of anim's scope")
            && warnings.contains("hybrid_generate_human_masks (hybrid video human masks"),
        "{warnings}"
    );
    let from_settings = ok(&anim(&["schedule", example().to_str().unwrap()]));
    let from_scene = ok(&anim(&["schedule", scene.to_str().unwrap()]));
    assert_eq!(from_settings, from_scene);
    let header = from_settings.lines().next().unwrap();
    assert!(header.starts_with("frame,angle,zoom,"), "{header}");
    assert_eq!(from_settings.lines().count(), 121);
    // json and the selection work too
    let json: serde_json::Value = serde_json::from_str(&ok(&anim(&[
        "schedule",
        scene.to_str().unwrap(),
        "--format",
        "json",
        "--only",
        "zoom,strength",
    ])))
    .unwrap();
    assert_eq!(json["schedules"]["strength"][3], 0.65);
    assert_eq!(json["schedules"].as_object().unwrap().len(), 2);
    // the imported scene (3D mode, flat depth without a depth model) previews; 3 frames suffice
    let text = std::fs::read_to_string(&scene).unwrap();
    assert!(
        text.contains("mode = \"3D\"") && text.contains("max_frames = 120"),
        "{text}"
    );
    std::fs::write(&scene, text.replace("max_frames = 120", "max_frames = 3")).unwrap();
    let out = dir.path().join("p");
    ok(&anim(&[
        "preview",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--no-video",
    ]));
    assert!(out.join("frames/000002.png").is_file());
}

/// A scene written into another folder names the settings file's inputs by absolute path, so it
/// reads the same files, and the output folder stays beside the new scene.
#[test]
fn import_into_another_folder_keeps_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("deforum");
    std::fs::create_dir(&src).unwrap();
    let p = src.join("settings.txt");
    std::fs::write(
        &p,
        r#"{"max_frames": 3, "W": 64, "H": 64, "use_init": true, "init_image": "start.png",
            "use_mask": false, "mask_file": "masks/m.png",
            "use_looper": false, "color_coherence_image_path": "c/ref.png"}"#,
    )
    .unwrap();
    let scene = dir.path().join("elsewhere").join("s.toml");
    std::fs::create_dir(scene.parent().unwrap()).unwrap();
    ok(&anim(&[
        "import",
        "deforum",
        p.to_str().unwrap(),
        "-o",
        scene.to_str().unwrap(),
    ]));
    let s = anim::scene::Scene::load(&scene).unwrap();
    assert_eq!(
        s.init.image.as_deref(),
        Some(src.join("start.png").as_path())
    );
    assert_eq!(
        s.coherence.color_coherence_image_path.as_deref(),
        Some(src.join("c/ref.png").as_path())
    );
    assert_eq!(
        s.mask.mask_file.as_deref(),
        Some(src.join("masks/m.png").as_path())
    );
    assert!(s.output.folder.as_deref().is_none_or(Path::is_relative));
    // beside the settings file, the paths stay as written
    let beside = src.join("s.toml");
    ok(&anim(&[
        "import",
        "deforum",
        p.to_str().unwrap(),
        "-o",
        beside.to_str().unwrap(),
    ]));
    let s = anim::scene::Scene::load(&beside).unwrap();
    assert_eq!(s.init.image.as_deref(), Some(Path::new("start.png")));
}

/// Issue #17's measure of breadth: the complete settings file with every switch on and every
/// feature chosen (masks with a mask video, full resolution and fill, hybrid video with optical-flow
/// motion, flow cadence and redo, diffusion redo, looper, Camera Shakify, post-passes, subtitles)
/// validates with nothing "not supported yet" and no unknown key; only the two keys out of scope
/// are listed, apart, with their reasons.
#[test]
fn a_complete_settings_file_with_every_feature_on_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let local = |name: &str, from: &str| {
        std::fs::copy(root.join(from), dir.path().join(name)).unwrap();
        serde_json::Value::String(name.into())
    };
    let mut s: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(example()).unwrap()).unwrap();
    for v in s.values_mut() {
        if v.is_boolean() {
            *v = true.into();
        }
    }
    let png = "tests/data/looper/render/guide_0.png";
    let set = [
        ("init_image", local("init.png", png)),
        ("mask_file", local("mask.png", png)),
        (
            "video_init_path",
            local("video.mp4", "tests/data/hybrid/clip.mp4"),
        ),
        (
            "video_mask_path",
            local("mask.mp4", "tests/data/masks/mask_video.mp4"),
        ),
        (
            "soundtrack_path",
            local("song.m4a", "tests/data/audio/music.m4a"),
        ),
        ("add_soundtrack", "File".into()),
        (
            "init_images",
            serde_json::json!({"0": "init.png", "max_f-1": "mask.png"})
                .to_string()
                .into(),
        ),
        ("fill", 0.into()),
        ("shake_name", "Investigation".into()),
        ("shake_intensity", 1.5.into()),
        ("shake_speed", 1.0.into()),
        ("hybrid_composite", "Normal".into()),
        ("hybrid_comp_mask_type", "Difference".into()),
        ("hybrid_comp_mask_equalize", "Before".into()),
        ("hybrid_motion", "Optical Flow".into()),
        ("hybrid_flow_method", "DIS Medium".into()),
        ("optical_flow_cadence", "DIS Fine".into()),
        ("optical_flow_redo_generation", "Farneback".into()),
        ("diffusion_redo", "2".into()),
        ("frame_interpolation_engine", "RIFE v4.6".into()),
        ("deforum_embed_srt", true.into()),
        (
            "mask_schedule",
            r#"0: ("{video_mask} & [mask.png]")"#.into(),
        ),
        ("noise_mask_schedule", r#"0: ("!{video_mask}")"#.into()),
        // out of scope: listed apart (an error when on, without --allow-unsupported)
        ("restore_faces", false.into()),
        ("hybrid_generate_human_masks", "None".into()),
    ];
    for (k, v) in set {
        s.insert(k.into(), v);
    }
    let file = dir.path().join("all.txt");
    std::fs::write(&file, serde_json::Value::Object(s.clone()).to_string()).unwrap();
    let o = anim(&["validate", file.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    for bad in ["not supported", "unknown setting", "unimplemented"] {
        assert!(!text.to_lowercase().contains(bad), "{bad}: {text}");
    }
    assert!(
        text.contains("out of anim's scope, ignored (2): hybrid_generate_human_masks"),
        "{text}"
    );
    // switched on, the out-of-scope keys are errors unless --allow-unsupported
    s.insert("restore_faces".into(), true.into());
    std::fs::write(&file, serde_json::Value::Object(s).to_string()).unwrap();
    let o = anim(&["validate", file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("`restore_faces` = true"));
    ok(&anim(&[
        "validate",
        "--allow-unsupported",
        file.to_str().unwrap(),
    ]));
}

#[test]
fn partial_settings_take_deforum_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("partial.txt");
    std::fs::write(&p, r#"{"max_frames": 5, "zoom": "0:(1.1)", "flip_2d_perspective": true, "W": 100, "H": 64,
        "prompts": {"0": "a cat --neg dog", "2*2": "a bird"}, "animation_mode": "2D", "aspect_ratio_use_old_formula": true}"#).unwrap();
    let csv = ok(&anim(&[
        "schedule",
        p.to_str().unwrap(),
        "--only",
        "zoom,strength,noise",
    ]));
    assert_eq!(
        csv,
        "frame,zoom,strength,noise\n0,1.1,0.65,0.065\n1,1.1,0.65,0.065\n2,1.1,0.65,0.065\n3,1.1,0.65,0.065\n4,1.1,0.65,0.065\n"
    );
    let scene = dir.path().join("s.toml");
    let o = anim(&[
        "import",
        "deforum",
        p.to_str().unwrap(),
        "-o",
        scene.to_str().unwrap(),
    ]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("flip_2d_perspective") && err.contains("floored to 96"),
        "{err}"
    );
    let s = anim::scene::Scene::load(&scene).unwrap();
    assert!(s.motion.enable_perspective_flip);
    assert_eq!(s.image.width, 96);
    assert_eq!(
        s.motion.aspect_ratio,
        anim::scene::ScheduleText::Number(1.5),
        "W/H after flooring"
    );
    assert_eq!(s.prompt_at(4).positive, "a bird");
    assert_eq!(s.prompt_at(1).negative, "dog");
}

#[test]
fn schedule_png_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("s.png");
    ok(&anim(&[
        "schedule",
        example().to_str().unwrap(),
        "--format",
        "png",
        "-o",
        png.to_str().unwrap(),
        "--only",
        "zoom,angle",
    ]));
    let img = image::open(&png).unwrap();
    assert!(img.width() >= 400 && img.height() >= 150);
    let o = anim(&["schedule", example().to_str().unwrap(), "--only", "zom"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("did you mean `zoom`")
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"zoom\": \"0:(1.0), 5:(1+)\"}").unwrap();
    let o = anim(&["schedule", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("zoom") && err.contains("column"),
        "{err}"
    );
    std::fs::write(&bad, "{\"zoom\": ").unwrap();
    let o = anim(&["schedule", bad.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("line 1"));
}
