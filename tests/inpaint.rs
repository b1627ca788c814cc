//! Inpainting models: the tiny 9-channel model (models/tiny-inpaint) against diffusers'
//! StableDiffusionInpaintPipeline (tests/data/inpaint-ref, models/make_inpaint_refs.py),
//! detection by input channels, errors, and a masked Deforum render with the model.

mod common;

use std::path::{Path, PathBuf};

use anim::diffusion::inpaint;
use anim::diffusion::{Pipeline, PromptSyntax, Request, SamplerKind, TorchRng, UnetKind};
use common::sd::{json, npy_f32, npy_u8, psnr_u8};
use image::{GrayImage, RgbImage};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn refs() -> PathBuf {
    root().join("tests/data/inpaint-ref")
}

fn model() -> PathBuf {
    root().join("models/tiny-inpaint")
}

fn source(name: &str) -> RgbImage {
    image::open(refs().join(name)).unwrap().to_rgb8()
}

fn mask(name: &str) -> GrayImage {
    image::open(refs().join(name)).unwrap().to_luma8()
}

fn request<'a>(init: Option<&'a RgbImage>, mask: Option<&'a GrayImage>) -> Request<'a> {
    Request {
        prompt: "a red fox sitting in the snow",
        negative: "",
        width: 64,
        height: 64,
        init,
        denoise: 0.75,
        steps: 4,
        cfg_scale: 6.0,
        sampler: SamplerKind::Euler,
        eta: 0.0,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        noise_multiplier: 1.0,
        travel: None,
        pix2pix: None,
        mask: mask.map(anim::diffusion::Inpaint::new),
    }
}

/// A model folder in `dir`: tiny-sd's parts with `unet` copied from `unet_src`.
fn folder_with_unet(dir: &Path, unet_src: &Path) -> PathBuf {
    folder_of(dir, "tiny-sd", unet_src)
}

/// A model folder in `dir`: `models/<base>`'s parts but `unet`, copied from `unet_src`.
fn folder_of(dir: &Path, base: &str, unet_src: &Path) -> PathBuf {
    let f = dir.join("model");
    std::fs::create_dir_all(f.join("unet")).unwrap();
    for e in std::fs::read_dir(root().join("models").join(base)).unwrap() {
        let name = e.unwrap().file_name();
        if !["unet", "manifest.json"].contains(&name.to_str().unwrap()) {
            let target = root().join("models").join(base).join(&name);
            std::os::unix::fs::symlink(target, f.join(&name)).unwrap();
        }
    }
    for e in std::fs::read_dir(unet_src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), f.join("unet").join(e.file_name())).unwrap();
    }
    f
}

#[test]
fn unet_kind_is_read_from_the_input_channels() {
    let p = Pipeline::load(&model()).unwrap();
    assert!(p.is_inpaint() && !p.is_pix2pix());
    assert_eq!(p.unet_kind(), UnetKind::Inpaint);
    let sd = Pipeline::load(&root().join("models/tiny-sd")).unwrap();
    assert_eq!(sd.unet_kind(), UnetKind::Plain);
    assert!(!sd.is_inpaint());
    let p2p = Pipeline::load(&root().join("models/tiny-pix2pix")).unwrap();
    assert_eq!(p2p.unet_kind(), UnetKind::Pix2Pix);
}

/// A dynamic channel axis: `in_channels` of unet/config.json decides.
#[test]
fn dynamic_channel_axis_reads_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let f = folder_with_unet(dir.path(), &refs().join("unet_dynamic"));
    assert!(Pipeline::load(&f).unwrap().is_inpaint());
}

#[test]
fn other_channel_counts_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = folder_with_unet(dir.path(), &refs().join("unet_5ch"));
    let e = format!("{:#}", Pipeline::load(&f).err().unwrap());
    assert!(
        e.contains("unet/model.onnx")
            && e.contains("takes 5 input channels")
            && e.contains("9 (inpainting"),
        "{e}"
    );
}

#[test]
fn sdxl_inpainting_unet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = folder_of(dir.path(), "tiny-sdxl", &refs().join("unet_sdxl_9ch"));
    let e = format!("{:#}", Pipeline::load(&f).err().unwrap());
    assert!(
        e.contains("unet/model.onnx")
            && e.contains("SDXL UNet with 9 input channels (inpainting)")
            && e.contains("SD 1.x/2.x"),
        "{e}"
    );
}

/// The mask channel (binarised at 0.5, nearest to the latent size) equals diffusers'.
#[test]
fn mask_channel_matches_diffusers() {
    for name in [
        "half_64x64",
        "half_64x48",
        "soft_64x64",
        "soft_64x48",
        "none_64x64",
    ] {
        let m = mask(&format!("mask_{name}.png"));
        let (w, h) = m.dimensions();
        let got = inpaint::latent_mask(&inpaint::binarize(&m), w, h);
        let want = npy_f32(&refs(), &format!("mask_{name}.npy"));
        assert_eq!(got, want.as_slice().unwrap(), "{name}");
    }
}

/// One diffusers case: (max difference in levels, values that differ, PSNR). `txt2img`: run
/// without the init image (only for unmasked strength-1 cases, where diffusers never reads it).
fn run_case(p: &mut Pipeline, name: &str, txt2img: bool) -> (u8, usize, f64) {
    let dir = refs().join(name);
    let meta = json(&dir, "meta.json");
    let src = source(meta["source"].as_str().unwrap());
    let m = meta["mask"].as_str().map(mask);
    let req = Request {
        prompt: meta["prompt"].as_str().unwrap(),
        negative: meta["negative_prompt"].as_str().unwrap_or(""),
        width: meta["width"].as_u64().unwrap() as u32,
        height: meta["height"].as_u64().unwrap() as u32,
        denoise: meta["strength"].as_f64().unwrap(),
        steps: meta["num_inference_steps"].as_u64().unwrap() as usize,
        cfg_scale: meta["guidance_scale"].as_f64().unwrap() as f32,
        sampler: SamplerKind::from_name(meta["sampler"].as_str().unwrap()).unwrap(),
        ..request((!txt2img).then_some(&src), m.as_ref())
    };
    let mut rng = TorchRng::new(meta["seed"].as_u64().unwrap());
    let (img, times) = p.generate(&req, &mut rng).unwrap();
    assert_eq!(
        times.steps_run as u64,
        meta["unet_calls"].as_u64().unwrap(),
        "{name}: UNet calls"
    );
    let want = npy_u8(&dir, "image_uint8.npy");
    let want = want.as_slice().unwrap();
    let got = img.as_raw();
    assert_eq!(got.len(), want.len(), "{name}: size");
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    let differing = got.iter().zip(want).filter(|(a, b)| a != b).count();
    (max, differing, psnr_u8(got, want))
}

#[test]
fn matches_diffusers_inpaint_pipeline() {
    let mut p = Pipeline::load(&model()).unwrap();
    let mut failed = Vec::new();
    // (case, txt2img, most levels apart, most differing values of 64·64·3 or 64·48·3):
    // measured (x86-64, ONNX Runtime CPU) 1 level in 0, 1, 2, 0, 5, 0, 0 and 2 values (82 dB and
    // up); the bars leave room for float jitter of other CPUs. The issue's bar is 45 dB
    for (name, txt2img, max_levels, max_differing) in [
        ("euler_half_s0.75", false, 1, 2),
        ("euler_soft_s1", false, 1, 3),
        ("ddim_soft_s0.6", false, 1, 4),
        ("ddim_half_s1", false, 1, 2),
        ("euler_nomask_s0.5", false, 1, 8),
        ("ddim_nomask_s1", false, 1, 2),
        ("ddim_nomask_s1", true, 1, 2),
        ("euler_half_nocfg", false, 1, 4),
    ] {
        let (max, differing, psnr) = run_case(&mut p, name, txt2img);
        let line = format!(
            "{name}{}: max {max} levels, {differing} values differ, {psnr:.1} dB",
            if txt2img { " (txt2img)" } else { "" }
        );
        eprintln!("{line}");
        if max > max_levels || differing > max_differing || psnr < 45.0 {
            failed.push(line);
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The mask reaches the model: another mask gives another picture, and a 4-channel model's
/// masked img2img keeps the init latents where a 9-channel model does not blend them back.
#[test]
fn the_mask_conditions_the_unet() {
    let mut p = Pipeline::load(&model()).unwrap();
    let src = source("source_64x64.png");
    let (half, soft) = (mask("mask_half_64x64.png"), mask("mask_soft_64x64.png"));
    let a = p
        .generate(&request(Some(&src), Some(&half)), &mut TorchRng::new(3))
        .unwrap()
        .0;
    let b = p
        .generate(&request(Some(&src), Some(&soft)), &mut TorchRng::new(3))
        .unwrap()
        .0;
    let c = p
        .generate(&request(Some(&src), None), &mut TorchRng::new(3))
        .unwrap()
        .0;
    assert!(a != b && a != c && b != c);
}

/// A1111 fills the init latents of an inpainting model too (`fill` latent noise / nothing): the
/// frame changes, and a mask with nothing to paint leaves it as the plain fill gives it.
#[test]
fn latent_fill_starts_an_inpainting_models_init_latents() {
    use anim::diffusion::Inpaint;
    use anim::mask::LatentFill;
    let mut p = Pipeline::load(&model()).unwrap();
    let src = source("source_64x64.png");
    let half = mask("mask_half_64x64.png");
    let run = |p: &mut Pipeline, m: &GrayImage, fill: LatentFill| {
        let mut req = request(Some(&src), None);
        req.mask = Some(Inpaint { image: m, fill });
        p.generate(&req, &mut TorchRng::new(3)).unwrap().0
    };
    let original = run(&mut p, &half, LatentFill::Original);
    let nothing = run(&mut p, &half, LatentFill::Nothing);
    let noise = run(&mut p, &half, LatentFill::Noise);
    assert!(original != nothing && original != noise && nothing != noise);
    let black = GrayImage::new(64, 64);
    assert_eq!(
        run(&mut p, &black, LatentFill::Nothing),
        run(&mut p, &black, LatentFill::Original)
    );
}

#[test]
fn a_mask_without_an_init_image_is_an_error() {
    let mut p = Pipeline::load(&model()).unwrap();
    let half = mask("mask_half_64x64.png");
    let e = format!(
        "{:#}",
        p.generate(&request(None, Some(&half)), &mut TorchRng::new(1))
            .unwrap_err()
    );
    assert!(e.contains("init image") && e.contains("use_mask"), "{e}");
    let small = GrayImage::new(32, 32);
    let src = source("source_64x64.png");
    let e = format!(
        "{:#}",
        p.generate(&request(Some(&src), Some(&small)), &mut TorchRng::new(1))
            .unwrap_err()
    );
    assert!(
        e.contains("mask is 32x32, expected the frame size 64x64"),
        "{e}"
    );
}

/// ControlNet conditioning cannot go with an inpainting model's UNet.
#[test]
fn controlnet_with_an_inpainting_model_is_an_error() {
    let mut p = Pipeline::load(&model()).unwrap();
    let src = source("source_64x64.png");
    let mut control = anim::diffusion::Control {
        nets: &mut [],
        units: &[],
    };
    let e = format!(
        "{:#}",
        p.generate_with(
            &request(Some(&src), None),
            &mut TorchRng::new(1),
            Some(&mut control)
        )
        .unwrap_err()
    );
    assert!(
        e.contains("tiny-inpaint") && e.contains("ControlNet") && e.contains("9 input channels"),
        "{e}"
    );
}

/// A Deforum settings file with use_mask rendered with the inpainting model: frame 0 inpaints the
/// init image, later frames the warped previous frame; two renders are byte-identical, and the
/// frames differ from tiny-sd's masked img2img (the model's conditioning reached it).
#[test]
fn deforum_masked_render_with_an_inpainting_model_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    source("source_64x64.png")
        .save(dir.path().join("init.png"))
        .unwrap();
    mask("mask_soft_64x64.png")
        .save(dir.path().join("mask.png"))
        .unwrap();
    let settings = dir.path().join("settings.txt");
    std::fs::write(
        &settings,
        r#"{"W": 64, "H": 64, "max_frames": 3, "animation_mode": "2D", "steps": 4, "seed": 5,
        "sampler": "Euler", "prompts": {"0": "a red fox in the snow"}, "zoom": "0:(1.02)",
        "use_init": true, "init_image": "init.png", "strength": 0.5,
        "use_mask": true, "mask_file": "mask.png", "overlay_mask": false, "full_res_mask": false,
        "mask_overlay_blur": 2, "mask_schedule": "0: (\"{video_mask}\")"}"#,
    )
    .unwrap();
    let (scene, _) = anim::scene::deforum::read_file(&settings).unwrap();
    let run = |name: &str, model: &Path| {
        let out = dir.path().join(name);
        let opts = anim::render::RenderOptions {
            out: Some(out.clone()),
            quiet: true,
            no_video: true,
            model: Some(model.to_path_buf()),
            ..Default::default()
        };
        anim::render::render(&scene, &opts).unwrap();
        (0..3)
            .map(|i| std::fs::read(anim::output::frame_path(&out, i)).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (run("a", &model()), run("b", &model()));
    assert_eq!(a, b, "two renders");
    let sd = run("sd", &root().join("models/tiny-sd"));
    for (i, (x, y)) in a.iter().zip(&sd).enumerate() {
        assert!(
            x != y,
            "frame {i}: the inpainting model gave tiny-sd's frame"
        );
    }
}

/// A 2D scene without an init image or a mask: frame 0 is txt2img with the inpainting model
/// (all-ones mask, zero masked picture), later frames img2img.
#[test]
fn unmasked_scene_renders_with_an_inpainting_model() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("s.toml");
    std::fs::write(
        &scene,
        format!(
            "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 2\n\
             [generation]\nseed = 3\nsteps = 3\nsampler = \"DDIM\"\n[model]\nfolder = \"{}\"\n",
            model().display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anim"))
        .args([
            "render",
            scene.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--no-video",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("frames/000001.png").is_file());
}
