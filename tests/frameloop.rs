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

mod common;
use common::Diff;

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
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    let d = Diff::images(a, b);
    (d.max, d.differing)
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

/// The keys of a Deforum `weights` record ({diffused frame: weight}) as (frame, weight) pairs,
/// oldest frame first.
fn weights(v: &serde_json::Value) -> Vec<(usize, f64)> {
    let mut w: Vec<(usize, f64)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_f64().unwrap()))
        .collect();
    w.sort_by_key(|p| p.0);
    w
}

/// Diffusion cadence against Deforum's own `render_animation` (cadence.json: cadence 1-4 x 10
/// and 13 frames), rendered with the tiny model and seed behaviour iter from 100 as the
/// reference was. Checked exactly: which frames are diffused, the seed of each, and the blend
/// every in-between frame shows. Where anim deliberately differs (docs/deforum-differences.md)
/// the test states the difference: the last frame is always diffused and every frame written,
/// and the blends come N - 1 frames earlier (the diffused frame is saved at its own index).
#[test]
fn cadence_matches_deforums_render_loop() {
    let doc = json("cadence.json");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sd");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let (n, frames) = (
            c["cadence"].as_u64().unwrap() as usize,
            c["max_frames"].as_u64().unwrap() as usize,
        );
        let what = format!("cadence {n}, {frames} frames");
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmode = \"None\"\nmax_frames = {frames}\n\
             [generation]\nseed = 100\nseed_behavior = \"iter\"\nsampler = \"Euler\"\nsteps = 2\n\
             [coherence]\ncolor_coherence = \"None\"\n[cadence]\ndiffusion_cadence = {n}\n\
             [prompts]\n\"0\" = \"a fox\"\n[model]\nfolder = \"{}\"\n",
            model.display()
        );
        let scene = anim::scene::Scene::from_toml(&text, &dir.path().join("s.toml")).unwrap();
        let opts = anim::render::RenderOptions {
            out: Some(dir.path().join("out")),
            quiet: true,
            no_video: true,
            ..Default::default()
        };
        let summary = anim::render::render(&scene, &opts).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/manifest.json")).unwrap(),
        )
        .unwrap();
        let records = manifest["frames"].as_array().unwrap();
        let record = |i: usize| {
            records
                .iter()
                .find(|r| r["index"] == i)
                .unwrap_or_else(|| panic!("{what}: no record of frame {i}"))
        };
        let frame =
            |i: usize| common::load_rgb(&anim::output::frame_path(&dir.path().join("out"), i));

        // diffused frames: Deforum's, plus the last frame where Deforum's cadence skips it
        let mut want_keys = usizes(&c["diffused_frames"]);
        if want_keys.last() != Some(&(frames - 1)) {
            want_keys.push(frames - 1);
        }
        let keys: Vec<usize> = (0..frames)
            .filter(|&i| record(i)["kind"] == "key")
            .collect();
        assert_eq!(keys, want_keys, "{what}: diffused frames");

        // one seed step per diffused frame, as next_seed is called once per generate()
        let calls = c["generate_calls"].as_array().unwrap();
        for call in calls {
            let f = call["frame_idx"].as_u64().unwrap() as usize;
            assert_eq!(
                record(f)["seed"].as_i64(),
                call["seed"].as_i64(),
                "{what}: seed of diffused frame {f}"
            );
        }
        let last_seed = calls.last().unwrap()["seed"].as_i64().unwrap();
        if !c["diffused_frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_u64() == Some(frames as u64 - 1))
        {
            assert_eq!(record(frames - 1)["seed"].as_i64(), Some(last_seed + 1));
        }

        // at cadence N > 1 Deforum writes the first N * floor((max_frames - 1) / N) frames;
        // anim writes every frame
        let written = usizes(&c["written_frame_indices"]);
        let deforum_writes = if n == 1 {
            frames
        } else {
            n * ((frames - 1) / n)
        };
        assert_eq!(written, (0..deforum_writes).collect::<Vec<_>>(), "{what}");
        assert_eq!(summary.frames, frames, "{what}: frames written");

        // Deforum's frame k shows what anim shows at k - (N - 1); its first N - 1 frames hold
        // diffused frame 0 alone
        for e in c["emitted"].as_array().unwrap() {
            let k = e["file_index"].as_u64().unwrap() as usize;
            let w = weights(&e["weights"]);
            let Some(i) = (k + 1).checked_sub(n) else {
                assert_eq!(w, vec![(0, 1.0)], "{what}: Deforum frame {k}");
                continue;
            };
            let got = frame(i);
            let want = match w[..] {
                [(f, t)] => {
                    assert_eq!((i, t), (f, 1.0), "{what}: Deforum frame {k} is frame {f}");
                    frame(f)
                }
                [(p, _), (f, t)] => {
                    assert_eq!(f - p, n, "{what}: Deforum frame {k} blends {w:?}");
                    // anim's cross-fade: (1 - t)·older + t·newer in f32, rounded half to even
                    let t = t as f32;
                    let (a, b) = (frame(p), frame(f));
                    let mut out = a.clone();
                    for (o, y) in out.iter_mut().zip(b.iter()) {
                        *o = ((1.0 - t) * *o as f32 + t * *y as f32)
                            .round_ties_even()
                            .clamp(0.0, 255.0) as u8;
                    }
                    assert_eq!(
                        (i - p) as f32 / n as f32,
                        t,
                        "{what}: tween weight of frame {i}"
                    );
                    out
                }
                _ => panic!("{what}: Deforum frame {k} blends {w:?}"),
            };
            assert!(
                got == want,
                "{what}: frame {i} is not Deforum's frame {k} ({w:?})"
            );
        }
    }
}

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}
