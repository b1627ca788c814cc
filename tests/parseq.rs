//! Parseq manifests: the schedules they replace against the series Deforum's adapter builds
//! (tests/data/parseq/expected.json, from make_parseq.py), delta and absolute modes, prompts, the
//! fps/cadence/max_frames overrides, a manifest shorter than the scene, Deforum settings files,
//! and bad manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anim::scene::{ReadOptions, Scene, SeedBehavior};
use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parseq")
}

/// A scene read as if it lay in tests/data/parseq (the manifest path resolves there).
fn scene(body: &str) -> Result<Scene, String> {
    Scene::from_toml(body, &data().join("scene.toml")).map_err(|e| e.to_string())
}

fn expected(case: &str) -> Value {
    let text = std::fs::read_to_string(data().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v[case].clone()
}

/// Every schedule of `case` equals anim's column exactly; returns how many were compared.
fn assert_schedules(s: &Scene, case: &str) -> usize {
    let f = s.frame_schedules().unwrap();
    let exp = expected(case);
    let cols = exp["schedules"].as_object().unwrap();
    for (name, values) in cols {
        let want: Vec<f64> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = f
            .get(name)
            .unwrap_or_else(|| panic!("{case}: no column {name}"));
        assert_eq!(got, want.as_slice(), "{case}: column {name}");
    }
    cols.len()
}

const MOTION: &str = "[animation]\nmax_frames = 30\n[generation]\nseed = 7\n\
    [[controlnet]]\nmodel = \"cn\"\ninput = \"in.png\"\n[parseq]\nmanifest = \"motion.json\"\n";

#[test]
fn deltas_replace_the_motion_schedules_as_deforum_does() {
    let s = scene(MOTION).unwrap();
    // the manifest's 16 fields but `loopback_frames`, plus subseed and subseed_strength (from
    // its seed)
    assert_eq!(assert_schedules(&s, "motion_deltas"), 17);
    let f = s.frame_schedules().unwrap();
    // zoom's delta is 1 + Δ (not the ratio), frame 0 takes the value itself
    assert_eq!(f.at(0).zoom, 1.0);
    assert!((f.at(1).zoom - 1.05).abs() < 1e-12);
    // unmanaged schedules keep the scene's values
    assert_eq!(f.at(3).translation_y, 0.0);
    assert_eq!(f.at(3).cadence_flow_factor, 1.0);
    // the seed 55.1: seed schedule (truncated when used), subseed 56, strength 0.1
    assert_eq!(s.generation.seed_behavior, SeedBehavior::Schedule);
    assert_eq!(f.at(0).seed, 55.1);
    assert_eq!(f.at(0).subseed, 56.0);
    assert!((f.at(0).subseed_strength - 0.1).abs() < 1e-9);
}

#[test]
fn absolute_mode_takes_the_values_themselves() {
    let body = MOTION.replace("[parseq]\n", "[parseq]\nuse_deltas = false\n");
    let s = scene(&body).unwrap();
    assert_schedules(&s, "motion_absolute");
    let f = s.frame_schedules().unwrap();
    assert_eq!(f.at(9).angle, 45.0);
}

#[test]
fn overrides_on_and_off() {
    let s = scene(MOTION).unwrap();
    assert_eq!(s.animation.max_frames, 10, "len(rendered_frames)");
    assert_eq!(s.output.fps, 24.0, "options.output_fps");
    assert_eq!(s.cadence.diffusion_cadence, 2, "options.cadence");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("max_frames 10") && w.contains("non_schedule_overrides")),
        "{:?}",
        s.warnings
    );
    let off = MOTION.replace("[parseq]\n", "[parseq]\nnon_schedule_overrides = false\n");
    let off = off.replace("max_frames = 30", "max_frames = 16");
    let s = scene(&off).unwrap();
    assert_eq!(
        (
            s.animation.max_frames,
            s.output.fps,
            s.cadence.diffusion_cadence
        ),
        (16, 15.0, 1)
    );
    // the last rendered frame's values (deltas too: the motion goes on) held to frame 15
    assert_schedules(&s, "motion_16_frames");
}

#[test]
fn a_shorter_manifest_holds_its_last_values() {
    // options.output_fps and cadence are 0 there: no override (Deforum's "if truthy")
    let s = scene(
        "[animation]\nmax_frames = 12\n[output]\nfps = 12\n[parseq]\nmanifest = \"short.json\"\n\
         non_schedule_overrides = false\n",
    )
    .unwrap();
    assert_eq!(s.output.fps, 12.0);
    assert_schedules(&s, "short_12_frames");
    // with the overrides on, max_frames is the manifest's 6
    let s = scene("[output]\nfps = 12\n[parseq]\nmanifest = \"short.json\"\n").unwrap();
    assert_eq!((s.animation.max_frames, s.output.fps), (6, 12.0));
}

#[test]
fn prompts_come_from_deforum_prompt() {
    let off = MOTION.replace("[parseq]\n", "[parseq]\nnon_schedule_overrides = false\n");
    let off = off.replace("max_frames = 30", "max_frames = 16");
    let s = scene(&format!("{off}[prompts]\n\"0\" = \"ignored\"\n")).unwrap();
    let exp = expected("motion_16_frames");
    for (i, p) in exp["prompts"].as_array().unwrap().iter().enumerate() {
        let (pos, neg) = p.as_str().unwrap().split_once("--neg").unwrap();
        let got = s.prompt_at(i);
        assert_eq!(
            (got.positive.as_str(), got.negative.as_str()),
            (pos.trim(), neg.trim()),
            "frame {i}"
        );
        assert!(s.travel_at(i).is_none(), "Parseq blends its own prompts");
    }
    // a manifest without deforum_prompt leaves the scene's prompts
    let s = scene("[prompts]\n\"0\" = \"mine\"\n[parseq]\nmanifest = \"short.json\"\n").unwrap();
    assert_eq!(s.prompt_at(3).positive, "mine");
}

#[test]
fn fields_without_a_schedule_are_listed() {
    let s = scene(MOTION).unwrap();
    let w = s.warnings.join("\n");
    assert!(
        w.contains("loopback_frames") && w.contains("no schedule"),
        "{w}"
    );
    assert!(!w.contains("zoom"), "{w}");
}

#[test]
fn the_manifest_is_part_of_the_fingerprint_and_moves_with_the_scene() {
    let a = scene(MOTION).unwrap();
    let b = scene(&MOTION.replace("motion.json", "short.json")).unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    let mut c = a.clone();
    c.absolutize_paths().unwrap();
    let m = c.parseq.manifest.clone().unwrap();
    assert!(
        Path::new(&m).is_absolute() && m.ends_with("motion.json"),
        "{m}"
    );
}

#[test]
fn bad_manifests_name_the_field_and_frame() {
    let cases: &[(&str, &[&str])] = &[
        (
            "bad/not-json.json",
            &[
                "[parseq] manifest",
                "not-json.json",
                "not valid JSON",
                "line",
            ],
        ),
        (
            "bad/no-rendered-frames.json",
            &["no-rendered-frames.json", "`rendered_frames`"],
        ),
        (
            "bad/missing-frames.json",
            &["missing-frames.json", "no frame 2..=3"],
        ),
        (
            "bad/non-numeric.json",
            &["`strength`", "rendered frame 3", "\"high\"", "a number"],
        ),
        (
            "bad/missing-field.json",
            &["rendered frame 4", "no `zoom_delta`"],
        ),
        (
            "absent.json",
            &["cannot read the manifest file", "absent.json"],
        ),
        (
            "https://sd-parseq.web.app/api/manifest?docId=x",
            &["URL", "download"],
        ),
    ];
    for (file, needles) in cases {
        let e = scene(&format!("[parseq]\nmanifest = \"{file}\"\n")).unwrap_err();
        for n in *needles {
            assert!(e.contains(n), "{file}: error lacks {n:?}: {e}");
        }
    }
    // inline JSON text with a bad frame number
    let e = scene("[parseq]\nmanifest = '{\"rendered_frames\": [{\"frame\": -1}]}'\n").unwrap_err();
    assert!(
        e.contains("rendered_frames[0]") && e.contains("`frame` = -1"),
        "{e}"
    );
}

#[test]
fn deforum_settings_files_read_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data().join("short.json"), dir.path().join("m.json")).unwrap();
    let inline = std::fs::read_to_string(data().join("short.json")).unwrap();
    for manifest in [Value::from("m.json"), Value::from(inline)] {
        let settings = serde_json::json!({
            "max_frames": 12, "parseq_manifest": manifest, "parseq_use_deltas": true,
            "parseq_non_schedule_overrides": false, "seed": 5,
        });
        let path = dir.path().join("s.json");
        std::fs::write(&path, settings.to_string()).unwrap();
        let s = Scene::load(&path).unwrap();
        assert!(
            !s.warnings.iter().any(|w| w.contains("parseq")),
            "{:?}",
            s.warnings
        );
        assert_schedules(&s, "short_12_frames");
    }
    // a URL: refused (download it), or without the manifest under --allow-unsupported
    let path = dir.path().join("u.json");
    std::fs::write(&path, r#"{"parseq_manifest": "https://x/m.json"}"#).unwrap();
    let e = Scene::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("`parseq_manifest`") && e.contains("download"),
        "{e}"
    );
    let allow = ReadOptions {
        allow_unsupported: true,
    };
    let s = Scene::load_with(&path, allow).unwrap();
    assert!(s.parseq_manifest().is_none());
    // a bad manifest names the Deforum key
    std::fs::write(&path, r#"{"parseq_manifest": "{\"rendered_frames\": []}"}"#).unwrap();
    let e = Scene::load(&path).unwrap_err().to_string();
    assert!(e.contains("parseq_manifest") && e.contains("empty"), "{e}");
}

#[test]
fn anim_schedule_shows_the_parseq_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data().join("short.json"), dir.path().join("short.json")).unwrap();
    let path = dir.path().join("scene.toml");
    std::fs::write(
        &path,
        "[animation]\nmax_frames = 12\n[parseq]\nmanifest = \"short.json\"\nnon_schedule_overrides = false\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_anim"))
        .args(["schedule", "--format", "json", "--only", "zoom,strength"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let exp = expected("short_12_frames");
    for name in ["zoom", "strength"] {
        assert_eq!(v["schedules"][name], exp["schedules"][name], "{name}");
    }
}

/// A render reads the Parseq values: the same frames as a scene that writes the manifest's
/// per-frame values (and prompt, and seed behaviour) as its own keyframes.
#[test]
fn a_render_with_a_manifest_equals_one_with_the_same_keyframes() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let frames = 3;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    fn push(tables: &mut BTreeMap<String, Vec<String>>, t: &str, line: String) {
        tables.entry(t.to_string()).or_default().push(line);
    }
    push(&mut tables, "image", "width = 64\nheight = 64".into());
    push(&mut tables, "animation", format!("max_frames = {frames}"));
    push(&mut tables, "generation", "seed = 3".into());
    push(
        &mut tables,
        "model",
        format!("folder = {:?}", model.display().to_string()),
    );
    push(&mut tables, "output", "video = false".into());
    let with_parseq = {
        let mut t = tables.clone();
        t.entry("parseq".into()).or_default().push(format!(
            "manifest = {:?}\nnon_schedule_overrides = false",
            data().join("motion.json").display().to_string()
        ));
        t
    };
    let exp = expected("motion_16_frames");
    for (name, values) in exp["schedules"].as_object().unwrap() {
        let Some(def) = anim::scene::registry::def(name) else {
            continue; // cn_1_weight: the scene has no unit
        };
        let keys: Vec<String> = values.as_array().unwrap()[..frames]
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{i}:({:?})", v.as_f64().unwrap()))
            .collect();
        push(
            &mut tables,
            def.table,
            format!("{} = \"{}\"", def.key, keys.join(", ")),
        );
    }
    push(
        &mut tables,
        "generation",
        "seed_behavior = \"schedule\"".into(),
    );
    let prompt = exp["prompts"][0].as_str().unwrap().to_string();
    push(&mut tables, "prompts", format!("\"0\" = {prompt:?}"));
    let toml = |t: &BTreeMap<String, Vec<String>>| {
        t.iter()
            .map(|(k, v)| format!("[{k}]\n{}\n", v.join("\n")))
            .collect::<String>()
    };
    let mut outs = Vec::new();
    for (name, t) in [("parseq", &with_parseq), ("keys", &tables)] {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml(t)).unwrap();
        let s = Scene::load(&path).unwrap_or_else(|e| panic!("{}: {e}", toml(t)));
        outs.push((s, dir.path().join(name)));
    }
    let (a, b) = (&outs[0].0, &outs[1].0);
    let (fa, fb) = (a.frame_schedules().unwrap(), b.frame_schedules().unwrap());
    for i in 0..frames {
        assert_eq!(fa.at(i), fb.at(i), "frame {i}");
        assert_eq!(a.prompt_at(i), b.prompt_at(i), "frame {i}");
    }
    for (s, out) in &outs {
        let o = Command::new(env!("CARGO_BIN_EXE_anim"))
            .args(["render", "--quiet", "--out"])
            .arg(out)
            .arg(&s.path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for i in 0..frames {
        let read = |o: &Path| std::fs::read(o.join(format!("frames/{i:06}.png"))).unwrap();
        assert_eq!(read(&outs[0].1), read(&outs[1].1), "frame {i}");
    }
}
