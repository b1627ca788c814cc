//! What a ControlNet unit costs per model call, against the time its own ONNX session runs:
//! img2img at 512x512 with the tiny SD model's ControlNet UNet, guidance on (batch of 2), with
//! 0, 1 and 2 units, runs interleaved, medians of `ROUNDS`. The unit's cost is
//! `(t(1 unit) − t(0 units)) / calls`; the ControlNet's own time is its session's run time per
//! call. Their ratio is anim's overhead per unit (building its inputs, summing the residuals).
//! Also: a unit outside its window (guidance_end 0) against no unit.
//!
//! `cargo bench --bench controlnet` (`ANIM_BENCH_SIZE=256` for a quicker run)

use std::path::Path;
use std::time::{Duration, Instant};

use anim::diffusion::{
    Control, ControlMode, ControlNet, ControlUnit, Device, Pipeline, PromptSyntax, Request,
    SamplerKind, SessionOptions, TorchRng, WindowRule,
};

const ROUNDS: usize = 9;

/// Frame side: 512, or `ANIM_BENCH_SIZE` (a multiple of 64).
fn size() -> u32 {
    std::env::var("ANIM_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &u32| s.is_multiple_of(64) && (64..=1024).contains(s))
        .unwrap_or(512)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let size = size();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let opts = SessionOptions {
        device: Device::Cpu,
        threads: Some(1),
        ..Default::default()
    };
    let mut p = Pipeline::load_controlled(&root.join("models/tiny-sd"), &opts).unwrap();
    let mut nets = vec![
        ControlNet::load(&root.join("models/tiny-controlnet/sd-1"), &opts).unwrap(),
        ControlNet::load(&root.join("models/tiny-controlnet/sd-2"), &opts).unwrap(),
    ];
    let init = image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    });
    let map = image::RgbImage::from_fn(size, size, |x, y| {
        let v = if (x / 32 + y / 32) % 2 == 0 { 255 } else { 0 };
        image::Rgb([v, v, v])
    });
    let req = Request {
        prompt: "a lake",
        negative: "",
        width: size,
        height: size,
        init: Some(&init),
        denoise: 0.5,
        steps: 10,
        cfg_scale: 7.0,
        sampler: SamplerKind::Ddim,
        eta: 0.0,
        prompt_syntax: PromptSyntax::A1111,
        clip_skip: 1,
        subseed: None,
        noise_multiplier: 1.0,
        travel: None,
        pix2pix: None,
        mask: None,
    };
    let unit = |net: usize, end: f64| ControlUnit {
        net,
        image: &map,
        scale: 0.8,
        start: 0.0,
        end,
        mode: ControlMode::Balanced,
        window: WindowRule::Diffusers,
    };
    let configs: Vec<(&str, Vec<ControlUnit>)> = vec![
        ("no unit", vec![]),
        ("1 unit", vec![unit(0, 1.0)]),
        ("2 units", vec![unit(0, 1.0), unit(1, 1.0)]),
        ("1 unit outside its window", vec![unit(0, 0.0)]),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    let mut net_time: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    let mut calls = 0;
    for round in 0..=ROUNDS {
        for (k, (_, units)) in configs.iter().enumerate() {
            let before: Duration = nets.iter().map(ControlNet::busy).sum();
            let t = Instant::now();
            let mut control = Control {
                nets: &mut nets,
                units,
            };
            let (_, st) = p
                .generate_with(&req, &mut TorchRng::new(1), Some(&mut control))
                .unwrap();
            let took = t.elapsed();
            calls = st.steps_run;
            let after: Duration = nets.iter().map(ControlNet::busy).sum();
            if round > 0 {
                times[k].push(took);
                net_time[k].push(after - before);
            }
        }
    }
    let base = median(times[0].clone());
    println!("img2img {size}x{size}, {calls} model calls (batch 2), medians of {ROUNDS}:");
    for (k, (name, units)) in configs.iter().enumerate() {
        let t = median(times[k].clone());
        let own = median(net_time[k].clone());
        let per_call = (t.saturating_sub(base)).as_secs_f64() * 1e3 / calls as f64;
        let own_call = own.as_secs_f64() * 1e3 / calls as f64;
        let ratio = if own_call > 0.0 {
            format!(", {:.3}x the ControlNet's own time", per_call / own_call)
        } else {
            String::new()
        };
        println!(
            "  {name:<26} {:8.1} ms; cost per call {per_call:6.2} ms, ControlNet session {own_call:6.2} ms{ratio} ({} unit(s))",
            t.as_secs_f64() * 1e3,
            units.len()
        );
    }
}
