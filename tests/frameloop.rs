//! The frame-loop operations against Deforum's own functions (colors.py, image_sharpening.py,
//! noise.py, seed.py, render.py's contrast and cadence): tests/data/frameloop, made by
//! scripts/make_frameloop_refs.py. Where anim deliberately differs (docs/deforum-differences.md) the
//! reference is the colour-correct / clamped / signed variant the script also records.

use std::path::{Path, PathBuf};

use anim::diffusion::TorchRng;
use anim::effects::{self, color::MatchSpace, noise::NoiseKind, sharpen};
use anim::seeds::{SeedBehavior, SeedSequence};
use image::RgbImage;
use ndarray::ArrayD;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/frameloop")
}

fn img(name: &str) -> RgbImage {
    image::open(data().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_rgb8()
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data().join(name)).unwrap()).unwrap()
}

/// (max abs difference, number of differing values)
fn diff(a: &RgbImage, b: &RgbImage) -> (i32, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let d: Vec<i32> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as i32 - *y as i32).abs())
        .collect();
    (
        d.iter().copied().max().unwrap_or(0),
        d.iter().filter(|v| **v > 0).count(),
    )
}

#[test]
fn colour_matching_matches_skimage_and_opencv() {
    let (src, reference) = (img("color_src.png"), img("color_ref.png"));
    let rgb = effects::color::match_colors(&src, &reference, MatchSpace::Rgb);
    assert_eq!(diff(&rgb, &img("color_RGB_rgb.png")), (0, 0), "RGB");
    let hsv = effects::color::match_colors(&src, &reference, MatchSpace::Hsv);
    assert_eq!(
        diff(&hsv, &img("color_HSV_rgb_scalar.png")),
        (0, 0),
        "HSV (OpenCV's scalar path)"
    );
    // LAB: anim ports OpenCV's 8-bit fixed-point LAB paths and tables, so it is exact too
    let lab = effects::color::match_colors(&src, &reference, MatchSpace::Lab);
    assert_eq!(diff(&lab, &img("color_LAB_rgb.png")), (0, 0), "LAB");
}

#[test]
fn grayscale_matches_opencv() {
    let mut g = img("color_src.png");
    effects::grayscale(&mut g);
    assert_eq!(diff(&g, &img("gray.png")), (0, 0));
}

#[test]
fn contrast_clamps_where_deforum_wraps() {
    for c in [0.7, 1.3] {
        let mut x = img("color_src.png");
        effects::contrast(&mut x, c);
        assert_eq!(
            diff(&x, &img(&format!("contrast_{c}_clipped.png"))),
            (0, 0),
            "contrast {c}"
        );
    }
    // below 255 nothing wraps, so anim equals Deforum exactly
    let mut x = img("color_src.png");
    effects::contrast(&mut x, 0.7);
    assert_eq!(diff(&x, &img("contrast_0.7.png")), (0, 0));
}

#[test]
fn gaussian_blur_and_unsharp_match_opencv() {
    let src = img("color_src.png");
    for (k, s) in [(3, 0.5), (5, 1.0), (9, 2.0)] {
        let b = sharpen::gaussian_blur(&src, k, s);
        assert_eq!(
            diff(&b, &img(&format!("blur_k{k}_s{s:.1}.png"))),
            (0, 0),
            "blur k{k} s{s}"
        );
    }
    for (k, s, a) in [(5, 1.0, 0.1), (5, 1.0, 0.8), (3, 0.5, 0.5), (9, 2.0, 1.0)] {
        let out = sharpen::unsharp_mask(&src, k, s, a, 0.0);
        assert_eq!(
            diff(&out, &img(&format!("unsharp_k{k}_s{s:.1}_a{a:?}_t0.png"))),
            (0, 0),
            "unsharp k{k} s{s} a{a}"
        );
    }
    let out = sharpen::unsharp_mask(&src, 5, 1.0, 0.5, 10.0);
    assert_eq!(
        diff(&out, &img("unsharp_k5_s1.0_a0.5_t10_signed.png")),
        (0, 0),
        "threshold, signed"
    );
}

#[test]
fn perlin_noise_matches_deforum_given_the_same_draws() {
    // the generator draws: randn(3, H64, W64), then torch.rand per octave
    let randn: ArrayD<f32> =
        ndarray_npy::read_npy(data().join("noise_s42_128x64_randn.npy")).unwrap();
    let mut rng = TorchRng::new(42);
    let got = rng.randn(3 * 64 * 128);
    let d = got
        .iter()
        .zip(randn.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "randn differs by {d}");
    let rand: ArrayD<f32> =
        ndarray_npy::read_npy(data().join("noise_s42_128x64_rand.npy")).unwrap();
    let got = rng.rand(rand.len());
    assert_eq!(got.as_slice(), rand.as_slice().unwrap(), "torch.rand draws");

    let cases = json("noise_cases.json");
    let mut checked = 0;
    for c in cases["cases"].as_array().unwrap() {
        if c["noise_type"] != "perlin" || c.get("error").is_some() {
            continue;
        }
        let input = img(c["input"].as_str().unwrap());
        let (w, h) = (
            c["width"].as_u64().unwrap() as u32,
            c["height"].as_u64().unwrap() as u32,
        );
        let input = image::imageops::crop_imm(&input, 0, 0, w, h).to_image();
        let kind = NoiseKind::Perlin {
            octaves: 4,
            persistence: 0.5,
            res: (8, 8),
        };
        let out = effects::noise::add_noise(
            &input,
            c["noise_amt"].as_f64().unwrap(),
            c["seed"].as_i64().unwrap(),
            kind,
        );
        let want = img(c["file"].as_str().unwrap());
        let (max, n) = diff(&out, &want);
        assert!(
            max <= 1 && n * 200 < out.as_raw().len(),
            "{}: max diff {max}, {n} values differ",
            c["name"]
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn seed_behaviours_match_next_seed() {
    let seeds = json("seeds.json");
    let mut checked = 0;
    for (_, case) in seeds["behaviors"].as_object().unwrap() {
        let behavior = match case["seed_behavior"].as_str().unwrap() {
            "iter" => SeedBehavior::Iter,
            "fixed" => SeedBehavior::Fixed,
            "ladder" => SeedBehavior::Ladder,
            "alternate" => SeedBehavior::Alternate,
            _ => continue,
        };
        let n = case["seed_iter_N"].as_u64().unwrap_or(1);
        let mut s = SeedSequence::new(behavior, 100, n);
        let want: Vec<i64> = case["sequence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let got: Vec<i64> = (0..want.len())
            .map(|_| {
                s.advance();
                s.current(0.0)
            })
            .collect();
        assert_eq!(got, want, "{behavior:?} N={n}");
        checked += 1;
    }
    assert!(checked >= 5, "{checked} behaviours checked");
}
