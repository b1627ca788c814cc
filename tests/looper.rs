//! Guided images (looper): the blend factor and Pillow's blend against references made by
//! scripts/make_looper_refs.py (Deforum's formulas with Pillow on real-photo frames).

use anim::looper::{Guides, pil_blend};
use image::RgbImage;

fn png(name: &str) -> RgbImage {
    let p = format!("{}/tests/data/looper/{name}", env!("CARGO_MANIFEST_DIR"));
    image::open(&p).expect(&p).to_rgb8()
}

fn init() -> RgbImage {
    let p = format!(
        "{}/tests/data/flow/pairs/rotzoom_a.png",
        env!("CARGO_MANIFEST_DIR")
    );
    image::open(&p).expect(&p).to_rgb8()
}

#[test]
fn looper_blend_exact() {
    let factors: std::collections::BTreeMap<String, f64> = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/data/looper/factors.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let g = Guides::parse(
        r#"{"0": "a.png", "max_f/4-5": "b.png", "max_f/2-10": "c.png", "3*max_f/4-15": "d.png", "max_f-20": "e.png"}"#,
        120,
    )
    .unwrap();
    let (a, guide) = (init(), png("guide.png"));
    for (key, want_bf) in &factors {
        let (bf, file) = match key.parse::<usize>() {
            Ok(f) => (
                g.factor_at(f, 20.0, 0.35, 0.25).unwrap(),
                format!("blend_{f:03}.png"),
            ),
            Err(_) => (*want_bf, format!("blend_{key}.png")),
        };
        assert_eq!(bf, *want_bf, "blend factor at {key}");
        let got = pil_blend(&a, &guide, bf);
        assert_eq!(got.as_raw(), png(&file).as_raw(), "{file}: not bit-exact");
    }
}

/// The colour correction of a looper frame (Deforum's `color_correction_factor`, A1111's
/// correction with its pinned blendmodes 2022) against scripts/make_looper_color_refs.py.
#[test]
fn looper_color_correction_matches_a1111() {
    use anim::looper::{color_correct, correction_target};
    let cases: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/data/looper/cc.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(cases.len(), 3);
    let (a, guide, painted) = (init(), png("guide.png"), png("cc_painted.png"));
    for (name, c) in &cases {
        let bf = c["blend_factor"].as_f64().unwrap();
        let ccf = c["color_correction_factor"].as_f64().unwrap();
        let target = correction_target(&pil_blend(&a, &guide, bf), &guide, ccf);
        let want_target = png(&format!("cc_target_{name}.png"));
        assert_eq!(target.as_raw(), want_target.as_raw(), "{name}: target");
        let got = color_correct(&painted, &target);
        let want = png(&format!("cc_{name}.png"));
        let diffs: Vec<i32> = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(&g, &w)| (g as i32 - w as i32).abs())
            .collect();
        let max = diffs.iter().max().copied().unwrap_or(0);
        let differing = diffs.iter().filter(|&&d| d > 0).count();
        eprintln!(
            "{name}: max diff {max}, {differing} of {} values differ",
            diffs.len()
        );
        assert!(
            max == 0,
            "{name}: max diff {max}, {differing} values differ"
        );
    }
}

/// `tests/data/looper/render/` copied into a temp folder, with `edit` applied to the settings.
fn looper_settings(
    dir: &std::path::Path,
    edit: impl Fn(&mut serde_json::Value),
) -> std::path::PathBuf {
    let src = format!("{}/tests/data/looper/render", env!("CARGO_MANIFEST_DIR"));
    for k in 0..3 {
        let name = format!("guide_{k}.png");
        std::fs::copy(format!("{src}/{name}"), dir.join(&name)).unwrap();
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{src}/settings.json")).unwrap())
            .unwrap();
    edit(&mut v);
    let p = dir.join("settings.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p
}

/// Renders a settings file with the tiny model on one CPU thread; the frames' PNG bytes.
fn render_frames(settings: &std::path::Path, out: &std::path::Path) -> Vec<Vec<u8>> {
    let scene = anim::scene::Scene::load(settings).unwrap();
    let mut opts = anim::render::RenderOptions {
        out: Some(out.to_path_buf()),
        quiet: true,
        no_video: true,
        model: Some(format!("{}/models/tiny-sd", env!("CARGO_MANIFEST_DIR")).into()),
        ..Default::default()
    };
    opts.session.threads = Some(1);
    opts.session.cache = None;
    let summary = anim::render::render(&scene, &opts).unwrap();
    assert_eq!(summary.frames, scene.animation.max_frames);
    (0..summary.frames)
        .map(|i| std::fs::read(out.join(format!("frames/{i:06}.png"))).unwrap())
        .collect()
}

/// A Deforum settings file with guided images (keys 0, 2 and `max_f-1`), rendered with the tiny
/// model. With `image_strength` 1 and `strength` 1 nothing is denoised, so every frame is what
/// the looper makes of the previous one, computed here with the looper's functions: frame 0 the
/// first guide, frame f `color_correct(blend(frame f-1, guide, bf), blend(that, guide, ccf))`
/// with the guide and blend factor of frame f. With denoising on, two renders are the same
/// bytes.
#[test]
fn looper_render_follows_the_guides() {
    use anim::looper::{Guides, color_correct, correction_target};
    let dir = tempfile::tempdir().unwrap();
    let settings = looper_settings(dir.path(), |_| {});
    let frames = render_frames(&settings, &dir.path().join("still"));
    let decode = |b: &[u8]| image::load_from_memory(b).unwrap().to_rgb8();
    let guides: Vec<RgbImage> = (0..3)
        .map(|k| {
            let g = image::open(dir.path().join(format!("guide_{k}.png")))
                .unwrap()
                .to_rgb8();
            anim::hybrid::resize::lanczos_pil(&g, 64, 64)
        })
        .collect();
    let keys = Guides::parse(
        r#"{"0": "guide_0.png", "2": "guide_1.png", "max_f-1": "guide_2.png"}"#,
        6,
    )
    .unwrap();
    assert_eq!(keys.frames(), &[0, 2, 4]);
    assert_eq!(decode(&frames[0]), guides[0], "frame 0 is the first guide");
    let mut prev = guides[0].clone();
    for (f, bytes) in frames.iter().enumerate().skip(1) {
        let guide = &guides[keys.index_at(f)];
        let bf = keys.factor_at(f, 3.0, 0.35, 0.25).unwrap();
        let init = pil_blend(&prev, guide, bf);
        let want = color_correct(&init, &correction_target(&init, guide, 0.3));
        let got = decode(bytes);
        assert!(
            got == want,
            "frame {f}: not the looper's blend of frame {}",
            f - 1
        );
        prev = got;
    }
    // the guides change the picture: frame 5 is far from frame 0
    assert_ne!(frames[5], frames[0]);

    // denoised by the tiny model: the same bytes twice
    let settings = looper_settings(dir.path(), |v| {
        v["image_strength_schedule"] = "0:(0.5)".into();
        v["strength"] = 0.6.into();
    });
    let a = render_frames(&settings, &dir.path().join("a"));
    let b = render_frames(&settings, &dir.path().join("b"));
    assert!(a == b, "two renders differ");
    assert_ne!(a[3], frames[3], "the model painted the frames");
}
