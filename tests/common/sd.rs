//! Helpers shared by the diffusion parity tests (tests/parity.rs, tests/sdxl.rs): reference
//! files, recorded noise played back, and a pipeline run from a reference's `meta.json`.

use std::path::Path;

use anim::diffusion::{NoiseSource, Pipeline, PromptSyntax, Request, SamplerKind, TorchRng};
use image::RgbImage;
use ndarray::ArrayD;

/// The error of loading the pipeline folder `dir`, with its causes; panics if it loads.
pub fn load_err(dir: &Path) -> String {
    match Pipeline::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// `dir/rel` as a float32 array.
pub fn npy_f32(dir: &Path, rel: &str) -> ArrayD<f32> {
    ndarray_npy::read_npy(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `dir/rel` as a uint8 array.
pub fn npy_u8(dir: &Path, rel: &str) -> ArrayD<u8> {
    ndarray_npy::read_npy(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A reference JSON file; Python's non-finite floats (`-Infinity` in scheduler configs) read as null.
pub fn json(dir: &Path, rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// PSNR in dB of two RGB8 buffers of the same size (infinite when equal).
pub fn psnr_u8(got: &[u8], want: &[u8]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mse = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / got.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Plays back fixed arrays as noise, checking the sizes asked for.
pub struct Fixed(pub Vec<Vec<f32>>);

impl NoiseSource for Fixed {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        assert!(!self.0.is_empty(), "more noise drawn than diffusers draws");
        let v = self.0.remove(0);
        assert_eq!(v.len(), n, "noise draw of unexpected size");
        v
    }
}

/// Runs the pipeline reference in `dir` (its `meta.json`: prompt, negative prompt, strength,
/// steps, guidance, seed, UNet calls) at `w`×`h` with `sampler`, as img2img of `init` when given.
/// Noise comes from the seed (`from_seed`) or from the draws diffusers recorded in `noise.npy`;
/// checks that every recorded draw was used and the number of UNet calls.
pub fn run_reference(
    p: &mut Pipeline,
    dir: &Path,
    sampler: SamplerKind,
    (w, h): (u32, u32),
    init: Option<&RgbImage>,
    from_seed: bool,
) -> RgbImage {
    let meta = json(dir, "meta.json");
    let req = Request {
        prompt: meta["prompt"].as_str().unwrap(),
        // null: diffusers' negative_prompt=None, which anim's empty negative prompt is
        negative: meta["negative_prompt"].as_str().unwrap_or(""),
        width: w,
        height: h,
        init,
        denoise: meta["strength"].as_f64().unwrap_or(1.0),
        steps: meta["num_inference_steps"].as_u64().unwrap() as usize,
        cfg_scale: meta["guidance_scale"].as_f64().unwrap() as f32,
        sampler,
        eta: 0.0,
        noise_multiplier: 1.0,
        travel: None,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: None,
    };
    let name = dir.display();
    let (img, times) = if from_seed {
        p.generate(&req, &mut TorchRng::new(meta["seed"].as_u64().unwrap()))
            .unwrap()
    } else {
        let draws = npy_f32(dir, "noise.npy");
        let per = draws.shape()[1];
        let list = (0..draws.shape()[0])
            .map(|k| draws.as_slice().unwrap()[k * per..(k + 1) * per].to_vec())
            .collect();
        let mut src = Fixed(list);
        let r = p.generate(&req, &mut src).unwrap();
        assert!(src.0.is_empty(), "{name}: {} draws left over", src.0.len());
        r
    };
    assert_eq!(
        times.steps_run as u64,
        meta["unet_calls"].as_u64().unwrap(),
        "{name}: UNet calls"
    );
    img
}
