//! Masks against Pillow (tests/data/masks/, made by scripts/make_mask_refs.py from real photos):
//! `prepare_mask`, mask expressions and the overlay must be bit-exact.

use std::path::{Path, PathBuf};

use anim::mask::{self, MaskExpr, MaskSources};
use image::{GrayImage, RgbImage};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/masks")
        .join(name)
}

fn rgb(name: &str) -> RgbImage {
    image::open(data(name)).unwrap().to_rgb8()
}

fn gray(name: &str) -> GrayImage {
    image::open(data(name)).unwrap().to_luma8()
}

fn cases() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("cases.json")).unwrap()).unwrap()
}

/// (largest difference, number of differing values).
fn diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y));
    let max = d.clone().max().unwrap_or(0);
    (max, d.filter(|v| *v > 0).count())
}

#[test]
fn prepare_mask_matches_pillow_exactly() {
    let src = rgb("src.png");
    for c in cases()["prepare"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let want = gray(file);
        let ours = mask::prepare_mask(
            &src,
            want.width(),
            want.height(),
            c["brightness"].as_f64().unwrap(),
            c["contrast"].as_f64().unwrap(),
        );
        assert_eq!(diff(ours.as_raw(), want.as_raw()), (0, 0), "{file}");
    }
}

/// Operands from tests/data/masks/.
struct Files;

impl MaskSources for Files {
    fn var(&mut self, _name: &str) -> Option<GrayImage> {
        None
    }
    fn file(&mut self, path: &str) -> Result<GrayImage, String> {
        Ok(gray(path))
    }
}

#[test]
fn mask_expressions_match_pillow_logic_exactly() {
    let (w, h) = gray("a.png").dimensions();
    for c in cases()["expr"].as_array().unwrap() {
        let text = c["expr"].as_str().unwrap();
        let ours = MaskExpr::parse(text)
            .unwrap()
            .eval(w, h, &mut Files)
            .unwrap();
        let want = gray(c["file"].as_str().unwrap());
        assert_eq!(diff(ours.as_raw(), want.as_raw()), (0, 0), "{text}");
    }
}

#[test]
fn overlay_matches_pillow_composite_exactly() {
    let (generated, base, m) = (rgb("gen.png"), rgb("base.png"), gray("mask.png"));
    for c in cases()["overlay"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let ours = mask::overlay(&generated, &base, &m, c["invert"].as_bool().unwrap());
        assert_eq!(diff(ours.as_raw(), rgb(file).as_raw()), (0, 0), "{file}");
    }
}

#[test]
fn overlay_keeps_the_base_exactly_where_the_mask_is_black() {
    let (generated, base) = (rgb("gen.png"), rgb("base.png"));
    let (w, h) = generated.dimensions();
    let base = anim::hybrid::resize::lanczos_pil(&base, w, h);
    // left half black (keep the base), right half white (take the generated frame)
    let m = GrayImage::from_fn(w, h, |x, _| image::Luma([if x < w / 2 { 0 } else { 255 }]));
    let out = mask::overlay(&generated, &base, &m, false);
    for (x, y, p) in out.enumerate_pixels() {
        let want = if x < w / 2 {
            base.get_pixel(x, y)
        } else {
            generated.get_pixel(x, y)
        };
        assert_eq!(p, want, "pixel {x},{y}");
    }
}

#[test]
fn bicubic_resize_matches_pillow_exactly() {
    let want = rgb("bicubic.png");
    let ours = anim::hybrid::resize::bicubic_pil(&rgb("src.png"), want.width(), want.height());
    assert_eq!(diff(ours.as_raw(), want.as_raw()), (0, 0));
}

#[test]
fn latent_mask_matches_a1111_exactly() {
    for c in cases()["latent"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let (w, h) = (
            c["w"].as_u64().unwrap() as u32,
            c["h"].as_u64().unwrap() as u32,
        );
        let want: Vec<f32> = c["mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(mask::latent_mask(&gray(file), w, h), want, "{file}");
    }
}
