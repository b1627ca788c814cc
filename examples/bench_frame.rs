//! Per-frame time of anim's img2img (one Deforum frame: the pipeline's `generate`) on a model
//! folder, and the share of it spent outside ONNX Runtime's session runs. Prints one JSON line.
//!
//! `cargo run --release --example bench_frame -- [MODEL_DIR] [RUNS] [DEVICE] [SAMPLER] [STEPS] [THREADS] [auto] [SIZE]`
//! (defaults: models/tiny-sd, 50, cpu, DDIM, 10, ORT's default threads, -, 64: the 64x64 test
//! image, each pixel repeated SIZE / 64 times both ways); `scripts/bench_frame.py` runs it beside
//! diffusers' ONNX pipeline. `deterministic` in the output says whether seed 0 gave the same bytes
//! before and after the timed frames; `ANIM_BENCH_FRAME_PNG=path` saves that frame.

use std::path::PathBuf;
use std::time::Instant;

use anim::diffusion::{
    Device, Pipeline, PromptSyntax, Request, SamplerKind, SessionOptions, TorchRng,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let folder = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/tiny-sd"));
    let runs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(50);
    let device = Device::parse(args.get(2).map(String::as_str).unwrap_or("cpu"))?;
    let sampler = SamplerKind::from_name(args.get(3).map(String::as_str).unwrap_or("DDIM"))?;
    let steps: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let threads: Option<usize> = args
        .get(5)
        .map(|s| s.parse())
        .transpose()?
        .filter(|&n| n > 0);
    let load = Instant::now();
    let mut p = Pipeline::load_with(
        &folder,
        &SessionOptions {
            device,
            cache: None,
            threads,
            // the kit's CUDA runs compare with and without graphs
            cuda_graph: std::env::var_os("ANIM_CUDA_GRAPH").is_some_and(|v| v == "1"),
        },
    )?;
    let load_ms = load.elapsed().as_secs_f64() * 1e3;
    let small =
        image::open(root.join("tests/data/sd-ref/img2img_modern/init_image.png"))?.to_rgb8();
    let size: u32 = args
        .get(7)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(small.width());
    let k = (size / small.width()).max(1);
    let init = image::RgbImage::from_fn(small.width() * k, small.height() * k, |x, y| {
        *small.get_pixel(x / k, y / k)
    });
    let (w, h) = init.dimensions();
    let req = Request {
        prompt: "a red fox sitting in the snow, highly detailed",
        negative: "",
        width: w,
        height: h,
        init: Some(&init),
        denoise: 0.6,
        steps,
        cfg_scale: 7.5,
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
    let (first, _) = p.generate(&req, &mut TorchRng::new(0))?;
    for seed in 1..3 {
        p.generate(&req, &mut TorchRng::new(seed))?;
    }
    let mut frames = Vec::with_capacity(runs);
    let mut ort = Vec::with_capacity(runs);
    let mut calls = 0;
    for seed in 0..runs as u64 {
        let t = Instant::now();
        let (_, times) = p.generate(&req, &mut TorchRng::new(seed))?;
        frames.push(t.elapsed().as_secs_f64() * 1e3);
        ort.push(times.ort.as_secs_f64() * 1e3);
        calls = times.steps_run;
    }
    // same seed, same sessions, after all the timed frames: must be the same bytes
    let (again, _) = p.generate(&req, &mut TorchRng::new(0))?;
    let deterministic = again.as_raw() == first.as_raw();
    if let Some(path) = std::env::var_os("ANIM_BENCH_FRAME_PNG") {
        first.save(&path)?;
    }
    let total: f64 = frames.iter().sum();
    let outside = (total - ort.iter().sum::<f64>()) / total;
    let mut sorted = frames.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{{\"anim_frame_median_ms\": {:.4}, \"anim_frame_mean_ms\": {:.4}, \"anim_ort_mean_ms\": {:.4}, \"anim_outside_ort_share\": {:.4}, \"unet_calls\": {calls}, \"runs\": {runs}, \"provider\": \"{}\", \"load_ms\": {load_ms:.1}, \"deterministic\": {deterministic}}}",
        sorted[sorted.len() / 2],
        total / runs as f64,
        ort.iter().sum::<f64>() / runs as f64,
        outside,
        p.provider()
    );
    Ok(())
}
