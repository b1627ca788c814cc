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
