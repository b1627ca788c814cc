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

/// A masked img2img of the 64×64 tiny-sd model: the init image (tests/data/sd-ref) with the
/// right half masked (white = repainted), Euler, seed 7.
fn masked_generation(mask: &GrayImage, sampler: anim::diffusion::SamplerKind) -> RgbImage {
    use anim::diffusion::{Pipeline, PromptSyntax, Request, TorchRng};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let init = image::open(root.join("tests/data/sd-ref/img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8();
    let mut p = Pipeline::load(&root.join("models/tiny-sd")).unwrap();
    let req = Request {
        prompt: "a red fox sitting in the snow, highly detailed",
        negative: "",
        width: 64,
        height: 64,
        init: Some(&init),
        denoise: 0.75,
        steps: 8,
        cfg_scale: 7.5,
        sampler,
        eta: 0.0,
        noise_multiplier: 1.0,
        travel: None,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: Some(anim::diffusion::Inpaint::new(mask)),
    };
    p.generate(&req, &mut TorchRng::new(7)).unwrap().0
}

fn sd_init() -> RgbImage {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    image::open(root.join("tests/data/sd-ref/img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8()
}

#[test]
fn masked_img2img_keeps_the_init_outside_the_mask() {
    use anim::diffusion::{Pipeline, SamplerKind, TorchRng};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let half = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x >= 32 { 255 } else { 0 }]));
    let none = GrayImage::new(64, 64);
    let init = sd_init();
    for sampler in [SamplerKind::Euler, SamplerKind::Ddim, SamplerKind::DpmPp2M] {
        let out = masked_generation(&half, sampler);
        // deterministic
        assert_eq!(
            out,
            masked_generation(&half, sampler),
            "{sampler:?}: two runs"
        );
        // an all-black mask keeps every latent: the VAE round trip of the init image
        // after the overlay the black part is the init image exactly, the white part is new
        let o = mask::overlay(&out, &init, &half, false);
        let (mut same_outside, mut differ_inside) = (0usize, 0usize);
        for (x, y, px) in o.enumerate_pixels() {
            let i = init.get_pixel(x, y);
            if x < 32 {
                same_outside += usize::from(px == i);
            } else {
                differ_inside += usize::from(px != i);
            }
        }
        assert_eq!(same_outside, 32 * 64, "{sampler:?}: init pixels kept");
        assert!(
            differ_inside > 32 * 64 * 9 / 10,
            "{sampler:?}: {differ_inside} repainted"
        );
        // an all-black mask keeps every latent: exactly the VAE round trip of the init image
        // (the same seed draws the same encoder sample first)
        let kept = masked_generation(&none, sampler);
        let mut p = Pipeline::load(&root.join("models/tiny-sd")).unwrap();
        let z0 = p.encode_image(&init, &mut TorchRng::new(7)).unwrap();
        assert_eq!(kept, p.decode_latents(&z0, 64, 64).unwrap(), "{sampler:?}");
    }
}

/// The Deforum mask keys map to `[mask]` (the `fill` radio index included).
#[test]
fn deforum_mask_keys_map_to_the_mask_table() {
    let text = r#"{"use_mask": true, "mask_file": "m.png", "invert_mask": true, "fill": 1,
        "mask_contrast_adjust": 1.5, "mask_brightness_adjust": 0.8, "mask_overlay_blur": 6,
        "overlay_mask": false, "full_res_mask": false, "full_res_mask_padding": 8,
        "use_alpha_as_mask": true, "mask_schedule": "0: (\"{video_mask} & [a.png]\")",
        "use_noise_mask": true, "noise_mask_schedule": "0: (\"[b.png]\")",
        "video_mask_path": "https://deforum.github.io/a1/VM1.mp4", "use_mask_video": false}"#;
    let (s, warnings) = anim::scene::deforum::from_settings(text, Path::new("d.txt")).unwrap();
    let m = &s.mask;
    assert!(m.use_mask && m.invert_mask && m.use_alpha_as_mask && m.use_noise_mask);
    assert!(!m.overlay_mask && !m.full_res_mask && !m.use_mask_video);
    assert_eq!(m.mask_file.as_deref(), Some(Path::new("m.png")));
    assert_eq!(
        m.video_mask_path, None,
        "a URL of an unused mask video is dropped"
    );
    assert_eq!(m.fill, anim::scene::MaskFill::Original);
    assert_eq!(
        (m.mask_contrast_adjust, m.mask_brightness_adjust),
        (1.5, 0.8)
    );
    assert_eq!((m.mask_overlay_blur, m.full_res_mask_padding), (6, 8));
    assert_eq!(m.mask_schedule, "0: (\"{video_mask} & [a.png]\")");
    assert_eq!(m.noise_mask_schedule, "0: (\"[b.png]\")");
    assert!(
        !warnings.iter().any(|w| w.contains("mask")),
        "mask keys are read: {warnings:?}"
    );
    // a mask video is read; a URL is refused, naming the key
    let (s, _) = anim::scene::deforum::from_settings(
        r#"{"use_mask_video": true, "video_mask_path": "vm.mp4"}"#,
        Path::new("d.txt"),
    )
    .unwrap();
    assert_eq!(s.mask.mask_video(), Some(Path::new("vm.mp4")));
    let e = anim::scene::deforum::from_settings(
        r#"{"use_mask_video": true, "video_mask_path": "https://x/VM1.mp4"}"#,
        Path::new("d.txt"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("video_mask_path"), "{e}");
}

/// A Deforum settings file with use_mask, a mask file and the overlay, rendered with tiny-sd:
/// two runs are byte-identical, and every frame (key frames and cadence tweens) keeps the init
/// image where the mask is black.
#[test]
fn deforum_masked_render_is_reproducible_and_keeps_the_unmasked_init() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let init = sd_init();
    init.save(dir.path().join("init.png")).unwrap();
    let half = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x >= 32 { 255 } else { 0 }]));
    half.save(dir.path().join("mask.png")).unwrap();
    let settings = dir.path().join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 5, "diffusion_cadence": 2, "animation_mode": "2D",
        "steps": 4, "seed": 5,
        "sampler": "Euler", "prompts": {"0": "a red fox in the snow"}, "zoom": "0:(1.02)",
        "use_init": true, "init_image": "init.png", "strength": 0.5,
        "use_mask": true, "mask_file": "mask.png", "overlay_mask": true, "full_res_mask": false,
        "mask_overlay_blur": 2, "mask_schedule": "0: (\"{video_mask}\")"}"#,
    )
    .unwrap();
    let (scene, _) = anim::scene::deforum::read_file(&settings).unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let opts = anim::render::RenderOptions {
            out: Some(out.clone()),
            quiet: true,
            no_video: true,
            model: Some(root.join("models/tiny-sd")),
            ..Default::default()
        };
        anim::render::render(&scene, &opts).unwrap();
        let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"tween\""), "cadence 2 makes tweens");
        (0..5)
            .map(|i| {
                image::open(anim::output::frame_path(&out, i))
                    .unwrap()
                    .to_rgb8()
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (run("a"), run("b"));
    for (i, (fa, fb)) in a.iter().zip(&b).enumerate() {
        assert_eq!(fa.as_raw(), fb.as_raw(), "frame {i}: two runs");
        let (mut kept, mut changed) = (0, 0);
        for (x, y, p) in fa.enumerate_pixels() {
            if x < 32 {
                kept += usize::from(p == init.get_pixel(x, y));
            } else {
                changed += usize::from(p != init.get_pixel(x, y));
            }
        }
        assert_eq!(
            kept,
            32 * 64,
            "frame {i}: the unmasked half is the init image"
        );
        assert!(
            changed > 32 * 64 / 2,
            "frame {i}: {changed} masked pixels changed"
        );
    }
}

/// A1111's mask blur against OpenCV's two 1-D passes (scripts/make_mask_blur_refs.py): exact.
#[test]
fn mask_blur_matches_opencv_exactly() {
    let hard = gray("blur_in.png");
    let grey = gray("prepare_0.png");
    for s in [1, 4, 9] {
        for (name, m) in [("hard", &hard), ("grey", &grey)] {
            let got = mask::frame::blur(m, s);
            let want = gray(&format!("blur_{name}_{s}.png"));
            assert_eq!(
                diff(got.as_raw(), want.as_raw()),
                (0, 0),
                "{name} sigma {s}"
            );
        }
    }
    assert_eq!(mask::frame::blur(&hard, 0), hard);
}

/// Masked img2img against diffusers' inpainting loop for a 4-channel UNet (re-noised init latents
/// blended in after every step; scripts/make_masked_img2img_ref.py), same models, prompt and
/// noise (tests/data/sd-ref/img2img_modern), right half masked.
#[test]
fn masked_img2img_matches_diffusers_inpainting_loop() {
    use anim::diffusion::{NoiseSource, Pipeline, PromptSyntax, Request, SamplerKind};
    struct Fixed(Vec<Vec<f32>>);
    impl NoiseSource for Fixed {
        fn randn(&mut self, n: usize) -> Vec<f32> {
            let v = self.0.remove(0);
            assert_eq!(v.len(), n);
            v
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let npy = |rel: &str| -> ndarray::ArrayD<f32> {
        ndarray_npy::read_npy(root.join("tests/data/sd-ref/img2img_modern").join(rel)).unwrap()
    };
    let init = sd_init();
    let half = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x >= 32 { 255 } else { 0 }]));
    let mut p = Pipeline::load(&root.join("models/tiny-sd")).unwrap();
    for (name, sampler) in [("euler", SamplerKind::Euler), ("ddim", SamplerKind::Ddim)] {
        let req = Request {
            prompt: "a red fox sitting in the snow, highly detailed",
            negative: "",
            width: 64,
            height: 64,
            init: Some(&init),
            denoise: 0.6,
            steps: 10,
            cfg_scale: 7.5,
            sampler,
            eta: 0.0,
            noise_multiplier: 1.0,
            travel: None,
            prompt_syntax: PromptSyntax::Plain,
            clip_skip: 1,
            subseed: None,
            pix2pix: None,
            mask: Some(anim::diffusion::Inpaint::new(&half)),
        };
        let mut noise = Fixed(vec![
            npy("enc_noise.npy").into_raw_vec_and_offset().0,
            npy("noise.npy").into_raw_vec_and_offset().0,
        ]);
        let got = p.generate(&req, &mut noise).unwrap().0;
        let want: ndarray::ArrayD<u8> =
            ndarray_npy::read_npy(data(&format!("inpaint_{name}.npy"))).unwrap();
        // the two formulations agree to the last 8-bit value here
        assert_eq!(
            diff(got.as_raw(), want.as_slice().unwrap()),
            (0, 0),
            "{name}"
        );
    }
}

/// A1111's `masking.fill` (the masked area painted from its blurred surroundings) against
/// Pillow (scripts/make_mask_fill_refs.py), on a hard and a grey blurred mask: exact.
#[test]
fn a1111_fill_matches_pillow_exactly() {
    let photo = image::imageops::crop_imm(&rgb("src.png"), 10, 10, 64, 48).to_image();
    for name in ["hard_4", "grey_4", "hard_9"] {
        let m = gray(&format!("blur_{name}.png"));
        let got = mask::a1111::fill(&photo, &m);
        let want = rgb(&format!("fill_{name}.png"));
        assert_eq!(diff(got.as_raw(), want.as_raw()), (0, 0), "fill {name}");
        // A1111's overlay without full resolution: the init where clip(2·mask) is black
        let over = mask::a1111::overlay_image(&photo, &mask::a1111::doubled(&m));
        let got = mask::a1111::apply_overlay(&rgb("gen.png"), None, &over);
        let want = rgb(&format!("a1111_overlay_{name}.png"));
        assert_eq!(diff(got.as_raw(), want.as_raw()), (0, 0), "overlay {name}");
    }
}

/// A1111's full-resolution inpainting (crop region, expand_crop_region, "resize and fill" of the
/// init and the mask, then "crop and resize" back under the overlay) against Pillow
/// (scripts/make_mask_fill_refs.py): five masks and processing sizes, exact.
#[test]
fn a1111_full_res_crop_and_paste_match_pillow_exactly() {
    let photo = image::imageops::crop_imm(&rgb("src.png"), 10, 10, 64, 48).to_image();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("fullres.json")).unwrap()).unwrap();
    for (i, c) in cases.as_array().unwrap().iter().enumerate() {
        let m = gray(&format!("fullres_{i}_mask.png"));
        let pad = c["padding"].as_u64().unwrap() as u32;
        let (pw, ph) = (
            c["size"][0].as_u64().unwrap() as u32,
            c["size"][1].as_u64().unwrap() as u32,
        );
        let region = mask::a1111::crop_region(&m, pad).unwrap();
        let cb = mask::a1111::expand_crop_region(region, pw, ph, 64, 48);
        let want: Vec<u32> = c["crop"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(vec![cb.0, cb.1, cb.2, cb.3], want, "case {i}: crop box");
        let cut = |img: &RgbImage| {
            image::imageops::crop_imm(img, cb.0, cb.1, cb.2 - cb.0, cb.3 - cb.1).to_image()
        };
        let init = mask::a1111::resize_fill(&cut(&photo), pw, ph);
        let d = diff(
            init.as_raw(),
            rgb(&format!("fullres_{i}_init.png")).as_raw(),
        );
        assert_eq!(d, (0, 0), "case {i}: cropped init");
        let mrgb = image::DynamicImage::ImageLuma8(m.clone()).to_rgb8();
        let cm = image::DynamicImage::ImageRgb8(mask::a1111::resize_fill(&cut(&mrgb), pw, ph))
            .to_luma8();
        let d = diff(
            cm.as_raw(),
            gray(&format!("fullres_{i}_cmask.png")).as_raw(),
        );
        assert_eq!(d, (0, 0), "case {i}: cropped mask");
        let result = anim::hybrid::resize::lanczos_pil(&rgb("gen.png"), pw, ph);
        let over = mask::a1111::overlay_image(&photo, &m);
        let out = mask::a1111::apply_overlay(&result, Some(cb), &over);
        let d = diff(out.as_raw(), rgb(&format!("fullres_{i}_out.png")).as_raw());
        assert_eq!(d, (0, 0), "case {i}: pasted back");
    }
    // the same through `Inpainting` at the frame size (case 0: 64×48)
    let m = gray("fullres_0_mask.png");
    let inp = mask::a1111::Inpainting::new(&photo, &m, Some(4), false).unwrap();
    assert_eq!(inp.crop(), Some((8, 5, 42, 31)));
    assert_eq!(inp.init.as_raw(), rgb("fullres_0_init.png").as_raw());
    assert_eq!(inp.mask.as_raw(), gray("fullres_0_cmask.png").as_raw());
    assert!(
        mask::a1111::Inpainting::new(&photo, &GrayImage::new(64, 48), Some(4), false).is_none()
    );
}

/// `anim render` of `settings` into `out` (`halt`: stand still after that frame, for a kill).
fn anim_render(settings: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_anim"));
    cmd.args(["render", settings.to_str().unwrap(), "--out"])
        .arg(out)
        .args(["-q", "--no-video"])
        .args(extra);
    cmd
}

/// A Deforum settings file with a mask video (tests/data/masks/mask_video.mp4, made by
/// scripts/make_mask_video.py), full-resolution inpainting (Deforum's default) and latent-noise
/// fill, rendered with tiny-sd: max_frames becomes the mask video's 6 frames, the area black in
/// every mask frame keeps the init image, and a render killed after frame 2 and resumed is
/// byte-identical to an uninterrupted one.
#[test]
fn deforum_mask_video_full_res_render_resumes_byte_identical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let init = sd_init();
    init.save(dir.path().join("init.png")).unwrap();
    std::fs::copy(data("mask_video.mp4"), dir.path().join("vm.mp4")).unwrap();
    let settings = dir.path().join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 20, "diffusion_cadence": 1, "animation_mode": "2D",
        "steps": 4, "seed": 5, "sampler": "Euler a", "prompts": {"0": "a red fox in the snow"},
        "zoom": "0:(1.0)", "use_init": true, "init_image": "init.png", "strength": 0.5,
        "use_mask": false, "use_mask_video": true, "video_mask_path": "vm.mp4",
        "full_res_mask": true, "full_res_mask_padding": 4, "fill": 2, "overlay_mask": true,
        "mask_overlay_blur": 2, "mask_schedule": "0: (\"{video_mask}\")"}"#,
    )
    .unwrap();
    let model = root.join("models/tiny-sd");
    let model = model.to_str().unwrap();
    let full = dir.path().join("full");
    let o = anim_render(&settings, &full, &["--model", model])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |out: &Path| -> Vec<Vec<u8>> {
        (0..6)
            .map(|i| std::fs::read(anim::output::frame_path(out, i)).unwrap_or_default())
            .collect()
    };
    let want = read(&full);
    assert!(
        !anim::output::frame_path(&full, 6).exists(),
        "max_frames is the mask video's 6 frames"
    );
    for (i, bytes) in want.iter().enumerate() {
        let f = image::load_from_memory(bytes).unwrap().to_rgb8();
        for y in 0..18 {
            for x in 0..64 {
                assert_eq!(
                    f.get_pixel(x, y),
                    init.get_pixel(x, y),
                    "frame {i} ({x}, {y})"
                );
            }
        }
        assert!(
            f.enumerate_pixels()
                .filter(|(x, y, p)| (20..44).contains(y) && *p != init.get_pixel(*x, *y))
                .count()
                > 200,
            "frame {i}: the masked square is repainted"
        );
    }
    let part = dir.path().join("part");
    let mut child = anim_render(&settings, &part, &["--model", model])
        .env("ANIM_HALT_AFTER_FRAME", "2")
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !anim::output::frame_path(&part, 2).is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the render ended early"
        );
        assert!(t.elapsed().as_secs() < 120, "frame 2 never came");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = anim_render(&settings, &part, &["--model", model, "--resume"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&part), want, "resumed frames");
}

/// `anim validate` on a Deforum file with every mask feature on (mask video, full resolution,
/// each fill) names none of them as unsupported.
#[test]
fn validate_lists_no_mask_feature_as_unsupported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    sd_init().save(dir.path().join("init.png")).unwrap();
    sd_init().save(dir.path().join("m.png")).unwrap();
    std::fs::copy(data("mask_video.mp4"), dir.path().join("vm.mp4")).unwrap();
    for fill in 0..4 {
        let settings = dir.path().join(format!("s{fill}.txt"));
        std::fs::write(
            &settings,
            format!(
                r#"{{"W": 64, "H": 64, "max_frames": 4, "use_init": true, "init_image": "init.png",
                "use_mask": true, "mask_file": "m.png", "use_mask_video": true,
                "video_mask_path": "vm.mp4", "full_res_mask": true, "full_res_mask_padding": 8,
                "fill": {fill}, "invert_mask": true, "overlay_mask": true,
                "use_alpha_as_mask": true, "use_noise_mask": true,
                "noise_mask_schedule": "0: (\"{{video_mask}}\")"}}"#
            ),
        )
        .unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
            .args(["validate", settings.to_str().unwrap(), "--model"])
            .arg(root.join("models/tiny-sd"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "fill {fill}: {text}");
        for key in ["mask", "fill", "full_res"] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.contains(key) && l.to_lowercase().contains("not supported")),
                "fill {fill}: {text}"
            );
        }
    }
}

/// `anim render` of `settings` into `out`, killed after frame `halt` was written and resumed.
fn render_killed_and_resumed(settings: &Path, out: &Path, model: &str, halt: usize) {
    let mut child = anim_render(settings, out, &["--model", model])
        .env("ANIM_HALT_AFTER_FRAME", halt.to_string())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !anim::output::frame_path(out, halt).is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the render ended early"
        );
        assert!(t.elapsed().as_secs() < 120, "frame {halt} never came");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = anim_render(settings, out, &["--model", model, "--resume"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The mask video's square on frame `i` (scripts/make_mask_video.py): rows 20..44, columns
/// 8 + 6i .. 32 + 6i.
fn square(i: usize, x: u32, y: u32) -> bool {
    (20..44).contains(&y) && (8 + 6 * i as u32..32 + 6 * i as u32).contains(&x)
}

/// A 2D render with a mask video (and no `use_mask`: the video turns masks on) and
/// `diffusion_cadence` 2: each tween (frames 1 and 3) is overlaid on the init image with the
/// latest composed mask when it is written in Deforum's loop, its earlier key frame's (Deforum
/// §2.4 step 9): the init image exactly outside that key frame's square, even where the next key
/// frame's square is; the blended frames inside it. Killed after frame 2 and resumed, the render
/// is byte-identical to an uninterrupted one.
#[test]
fn deforum_mask_video_cadence_overlays_tweens_and_resumes_byte_identical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let init = sd_init();
    init.save(dir.path().join("init.png")).unwrap();
    std::fs::copy(data("mask_video.mp4"), dir.path().join("vm.mp4")).unwrap();
    let settings = dir.path().join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 20, "diffusion_cadence": 2, "animation_mode": "2D",
        "steps": 4, "seed": 5, "sampler": "Euler", "prompts": {"0": "a red fox in the snow"},
        "zoom": "0:(1.02)", "use_init": true, "init_image": "init.png", "strength": 0.5,
        "use_mask": false, "use_mask_video": true, "video_mask_path": "vm.mp4",
        "full_res_mask": false, "overlay_mask": true, "mask_overlay_blur": 2,
        "mask_schedule": "0: (\"{video_mask}\")"}"#,
    )
    .unwrap();
    let model = root.join("models/tiny-sd");
    let model = model.to_str().unwrap();
    let full = dir.path().join("full");
    let o = anim_render(&settings, &full, &["--model", model])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = std::fs::read_to_string(full.join("manifest.json")).unwrap();
    let kinds: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&manifest).unwrap()["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(kinds, ["key", "tween", "key", "tween", "key", "key"]);
    let read = |out: &Path| -> Vec<Vec<u8>> {
        (0..6)
            .map(|i| std::fs::read(anim::output::frame_path(out, i)).unwrap_or_default())
            .collect()
    };
    let want = read(&full);
    for (i, bytes) in want.iter().enumerate() {
        let f = image::load_from_memory(bytes).unwrap().to_rgb8();
        // a tween takes its earlier key frame's mask, a key frame its own
        let key = if kinds[i] == "tween" { i - 1 } else { i };
        let (mut outside, mut inside) = (0, 0);
        for (x, y, p) in f.enumerate_pixels() {
            if !square(key, x, y) {
                assert_eq!(p, init.get_pixel(x, y), "frame {i} ({x}, {y})");
                outside += usize::from(kinds[i] == "tween" && square(i + 1, x, y));
            } else {
                inside += usize::from(p != init.get_pixel(x, y));
            }
        }
        assert!(inside > 200, "frame {i}: {inside} pixels repainted");
        if kinds[i] == "tween" {
            assert_eq!(
                outside,
                12 * 24,
                "frame {i}: the next key's square is not used"
            );
        }
    }
    let part = dir.path().join("part");
    render_killed_and_resumed(&settings, &part, model, 2);
    assert_eq!(read(&part), want, "resumed frames");
}

/// Video Input with a mask video (and no `use_mask`): the mask video turns masks on, and each
/// frame is overlaid on its input video frame (Deforum's `inputframes/`), not on `[init] image`:
/// outside the frame's mask square every pixel is the extracted input frame's.
#[test]
fn video_input_mask_video_overlays_on_the_input_frames() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    sd_init().save(dir.path().join("init.png")).unwrap();
    std::fs::copy(data("mask_video.mp4"), dir.path().join("vm.mp4")).unwrap();
    let paths: Vec<PathBuf> = (0..6u32)
        .map(|k| {
            let img = RgbImage::from_fn(64, 64, |x, y| {
                image::Rgb([(x * 4) as u8, (y * 4) as u8, (k * 40) as u8])
            });
            let p = dir.path().join(format!("src{k}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect();
    let settings = anim::output::VideoSettings::h264(12.0, 10, "fast");
    anim::output::encode_mp4(&paths, &dir.path().join("in.mp4"), &settings).unwrap();
    let file = dir.path().join("settings.txt");
    std::fs::write(
        &file,
        r#"{"W": 64, "H": 64, "max_frames": 20, "animation_mode": "Video Input",
        "video_init_path": "in.mp4", "extract_nth_frame": 1, "steps": 4, "seed": 5,
        "sampler": "Euler", "prompts": {"0": "a red fox in the snow"}, "use_init": true,
        "init_image": "init.png", "strength": 0.5, "use_mask": false, "use_mask_video": true,
        "video_mask_path": "vm.mp4", "full_res_mask": false, "overlay_mask": true,
        "mask_overlay_blur": 2, "mask_schedule": "0: (\"{video_mask}\")"}"#,
    )
    .unwrap();
    let model = root.join("models/tiny-sd");
    let out = dir.path().join("out");
    let o = anim_render(&file, &out, &["--model", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !anim::output::frame_path(&out, 6).exists(),
        "6 input frames"
    );
    for i in 0..6 {
        let f = image::open(anim::output::frame_path(&out, i))
            .unwrap()
            .to_rgb8();
        let input = image::open(out.join(format!("inputframes/{i:06}.png")))
            .unwrap()
            .to_rgb8();
        let mut inside = 0;
        for (x, y, p) in f.enumerate_pixels() {
            if square(i, x, y) {
                inside += usize::from(p != input.get_pixel(x, y));
            } else {
                assert_eq!(p, input.get_pixel(x, y), "frame {i} ({x}, {y})");
            }
        }
        assert!(inside > 200, "frame {i}: {inside} pixels repainted");
    }
}
