//! Execution providers (`--device`), the session cache folder and float16 exports.

use std::path::{Path, PathBuf};

use anim::diffusion::{Device, Pipeline, PromptSyntax, Request, SamplerKind, SessionOptions};
use ndarray::ArrayD;

mod common;
use common::sd::{Fixed, load_err, psnr_u8};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn model() -> PathBuf {
    root().join("models/tiny-sd")
}

fn npy(rel: &str) -> Vec<f32> {
    let a: ArrayD<f32> = ndarray_npy::read_npy(root().join("tests/data/sd-ref").join(rel)).unwrap();
    a.as_slice().unwrap().to_vec()
}

/// diffusers' img2img reference (tests/data/sd-ref/img2img_modern) run on `p`.
fn img2img(p: &mut Pipeline) -> image::RgbImage {
    let init = image::open(root().join("tests/data/sd-ref/img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8();
    let req = Request {
        prompt: "a red fox sitting in the snow, highly detailed",
        negative: "",
        width: 64,
        height: 64,
        init: Some(&init),
        denoise: 0.6,
        steps: 10,
        cfg_scale: 7.5,
        sampler: SamplerKind::Ddim,
        eta: 0.0,
        noise_multiplier: 1.0,
        travel: None,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: None,
    };
    let mut src = Fixed(vec![
        npy("img2img_modern/enc_noise.npy"),
        npy("img2img_modern/noise.npy"),
    ]);
    p.generate(&req, &mut src).unwrap().0
}

fn reference_image() -> Vec<u8> {
    let a: ArrayD<u8> = ndarray_npy::read_npy(
        root().join("tests/data/sd-ref/img2img_modern/final_image_uint8.npy"),
    )
    .unwrap();
    a.as_slice().unwrap().to_vec()
}

#[test]
fn explicit_devices_fail_clearly_when_missing() {
    let providers = anim::diffusion::session::available_providers().unwrap();
    for (device, name) in [
        (Device::Cuda, "CUDAExecutionProvider"),
        (Device::TensorRt, "TensorrtExecutionProvider"),
        (Device::DirectMl, "DmlExecutionProvider"),
        (Device::CoreMl, "CoreMLExecutionProvider"),
    ] {
        if providers.contains(&name) {
            continue; // a GPU machine: covered by the GPU benchmark run
        }
        let err = match Pipeline::load_with(
            &model(),
            &SessionOptions {
                device,
                cache: None,
                threads: None,
                cuda_graph: false,
            },
        ) {
            Ok(_) => panic!("{name}: loaded without the provider"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains(name) && err.contains("not in this ONNX Runtime build"),
            "{err}"
        );
    }
}

#[test]
fn auto_falls_back_with_a_note() {
    let p = Pipeline::load_with(
        &model(),
        &SessionOptions {
            device: Device::Auto,
            cache: None,
            threads: None,
            cuda_graph: false,
        },
    )
    .unwrap();
    let providers = anim::diffusion::session::available_providers().unwrap();
    if !providers.contains(&"CUDAExecutionProvider") {
        assert_eq!(p.provider(), "CPUExecutionProvider");
        assert!(
            p.notes()
                .iter()
                .any(|n| n.contains("CUDAExecutionProvider")),
            "{:?}",
            p.notes()
        );
    }
}

/// `--threads` changes speed, not pixels: the CPU provider gives the same bytes with 1, 2 and 3
/// intra-op threads.
#[test]
fn thread_count_does_not_change_the_image() {
    let run = |threads| {
        let opts = SessionOptions {
            device: Device::Cpu,
            cache: None,
            threads: Some(threads),
            cuda_graph: false,
        };
        img2img(&mut Pipeline::load_with(&model(), &opts).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

/// `cuda_graph` runs the UNet from fixed buffers (on CUDA, replayed graphs); on the CPU provider
/// the buffers alone are used, and the pictures must be the same bytes: SD img2img with and
/// without guidance in turns (batch 2 and 1: two sets of buffers), SDXL (pooled embeddings and
/// time ids), the export whose timestep is a float scalar, and a float16 UNet.
#[test]
fn fixed_unet_buffers_give_the_same_images() {
    let bound = |folder: &Path| {
        let opts = SessionOptions {
            device: Device::Cpu,
            cache: None,
            threads: None,
            cuda_graph: true,
        };
        Pipeline::load_with(folder, &opts).unwrap()
    };
    let init = image::open(root().join("tests/data/sd-ref/img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8();
    let req = |cfg_scale: f32, sampler| Request {
        prompt: "a lighthouse (at dusk:1.2)",
        negative: "fog",
        width: 64,
        height: 64,
        init: Some(&init),
        denoise: 0.7,
        steps: 8,
        cfg_scale,
        sampler,
        eta: 0.0,
        noise_multiplier: 1.0,
        travel: None,
        prompt_syntax: PromptSyntax::A1111,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: None,
    };
    let dir = with_parts(&[("unet", Some("unet_timestep_scalar_float/model.onnx"))]);
    let half = with_parts(&[("unet", Some("../tiny-sd-fp16/unet/model.onnx"))]);
    for folder in [
        model(),
        root().join("models/tiny-sdxl"),
        dir.path().to_path_buf(),
        half.path().to_path_buf(),
    ] {
        let mut plain = Pipeline::load(&folder).unwrap();
        let mut fixed = bound(&folder);
        assert_eq!(fixed.is_fp16(), folder == half.path());
        for (k, (cfg, sampler)) in [
            (7.5, SamplerKind::EulerAncestral),
            (1.0, SamplerKind::Ddim),
            (5.0, SamplerKind::DpmPp2M),
            (1.0, SamplerKind::EulerAncestral),
        ]
        .into_iter()
        .enumerate()
        {
            let r = req(cfg, sampler);
            let seed = 40 + k as u64;
            let a = plain
                .generate(&r, &mut anim::diffusion::TorchRng::new(seed))
                .unwrap()
                .0;
            let b = fixed
                .generate(&r, &mut anim::diffusion::TorchRng::new(seed))
                .unwrap()
                .0;
            assert!(a == b, "{}: call {k} (cfg {cfg}) differs", folder.display());
        }
    }
}

#[test]
fn cached_sessions_give_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SessionOptions {
        device: Device::Cpu,
        cache: Some(dir.path().to_path_buf()),
        threads: None,
        cuda_graph: false,
    };
    let plain = img2img(&mut Pipeline::load(&model()).unwrap());
    let first = img2img(&mut Pipeline::load_with(&model(), &opts).unwrap());
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("CPUExecutionProvider"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(cached.len(), 4, "one optimised model per part");
    let second = img2img(&mut Pipeline::load_with(&model(), &opts).unwrap());
    assert_eq!(plain, first);
    assert_eq!(first, second);
}

#[test]
fn fp16_exports_are_detected_and_run() {
    // the fp16 UNet and VAE with the fp32 text encoder and tokenizer
    let dir = tempfile::tempdir().unwrap();
    for part in ["text_encoder", "tokenizer", "scheduler"] {
        let to = dir.path().join(part);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(model().join(part)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(
        model().join("model_index.json"),
        dir.path().join("model_index.json"),
    )
    .unwrap();
    for part in ["unet", "vae_encoder", "vae_decoder"] {
        let to = dir.path().join(part);
        std::fs::create_dir_all(&to).unwrap();
        for f in ["model.onnx", "config.json"] {
            std::fs::copy(
                root().join("models/tiny-sd-fp16").join(part).join(f),
                to.join(f),
            )
            .unwrap();
        }
    }
    let mut p = Pipeline::load(dir.path()).unwrap();
    assert!(p.is_fp16());
    let img = img2img(&mut p);
    let db = psnr_u8(img.as_raw(), &reference_image());
    eprintln!("fp16 UNet/VAE img2img vs diffusers fp32: PSNR {db:.1} dB");
    assert!(db >= 45.0, "PSNR {db}");
}

/// The tiny model's folder with some parts replaced: `(part, Some(file))` puts that file in
/// as `part/model.onnx`, `(part, None)` writes a file that is not an ONNX model.
fn with_parts(parts: &[(&str, Option<&str>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(model()).unwrap() {
        let name = e.unwrap().file_name();
        let n = name.to_str().unwrap();
        if parts.iter().all(|(p, _)| *p != n) {
            std::os::unix::fs::symlink(model().join(n), dir.path().join(n)).unwrap();
        }
    }
    for (part, file) in parts {
        let sub = dir.path().join(part);
        std::fs::create_dir(&sub).unwrap();
        match file {
            Some(f) => std::os::unix::fs::symlink(model().join(f), sub.join("model.onnx")).unwrap(),
            None => std::fs::write(sub.join("model.onnx"), b"not an onnx model").unwrap(),
        }
    }
    dir
}

#[test]
fn wrong_model_files_name_the_file_and_what_was_expected() {
    // a file that is not an ONNX model
    let dir = with_parts(&[("unet", None)]);
    let err = load_err(dir.path());
    for want in ["unet/model.onnx", "not an ONNX model"] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    // a VAE decoder where the UNet should be: the message lists the inputs expected and found
    let dir = with_parts(&[("unet", Some("vae_decoder/model.onnx"))]);
    let err = load_err(dir.path());
    for want in ["unet/model.onnx", "latent_sample"] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    // a UNet where the VAE decoder should be
    let dir = with_parts(&[("vae_decoder", Some("unet/model.onnx"))]);
    let err = load_err(dir.path());
    for want in [
        "vae_decoder/model.onnx",
        "latent_sample",
        "sample, timestep",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    // a VAE encoder without either output kind
    let dir = with_parts(&[("vae_encoder", Some("vae_decoder/model.onnx"))]);
    let err = load_err(dir.path());
    assert!(err.contains("vae_encoder/model.onnx"), "{err}");
    // a UNet where the text encoder should be
    let dir = with_parts(&[("text_encoder", Some("unet/model.onnx"))]);
    let err = load_err(dir.path());
    for want in ["text_encoder/model.onnx", "input_ids"] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
}
