//! Parity with diffusers/torch on the tiny model: references in tests/data/sd-ref, made by
//! models/make_reference.py (see tests/data/sd-ref/README.md).

use std::path::{Path, PathBuf};

use anim::diffusion::{
    ClipTokenizer, Pipeline, PromptSyntax, Request, SamplerKind, Scheduler, SchedulerConfig,
    TorchRng,
};
use ndarray::ArrayD;

mod common;
use common::sd::{self, Fixed};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn refdir() -> PathBuf {
    root().join("tests/data/sd-ref")
}

fn model() -> PathBuf {
    root().join("models/tiny-sd")
}

fn npy_f32(rel: &str) -> ArrayD<f32> {
    sd::npy_f32(&refdir(), rel)
}

fn json(rel: &str) -> serde_json::Value {
    sd::json(&refdir(), rel)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn torch_randn_matches_reference() {
    let readme = json("rng/README.json");
    let mut checked = 0;
    for case in readme["cases"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let seed = case["seed"].as_u64().unwrap();
        let expected = npy_f32(&format!("rng/{file}"));
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let mut rng = TorchRng::new(seed);
        let got: Vec<f32> = if file.starts_with("seq_") {
            let per: usize = shape[1..].iter().product();
            (0..shape[0]).flat_map(|_| rng.randn(per)).collect()
        } else {
            rng.randn(shape.iter().product())
        };
        let want = expected.as_slice().unwrap();
        let differ = got
            .iter()
            .zip(want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert!(
            got.len() == want.len() && differ == 0,
            "{file}: {differ} of {} values differ from torch's (max abs diff {})",
            want.len(),
            max_abs_diff(&got, want)
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} rng cases");
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = ClipTokenizer::load(&model().join("tokenizer")).unwrap();
    let cases = json("tokenizer/tokens.json");
    let mut mismatches = Vec::new();
    for case in cases.as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<u32> = case["ids_77"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(prompt).unwrap();
        if got != want {
            mismatches.push(format!(
                "{prompt:?}: got {:?}, want {:?}",
                &got[..12],
                &want[..12]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} prompts differ:\n{}",
        mismatches.len(),
        cases.as_array().unwrap().len(),
        mismatches.join("\n")
    );
}

#[test]
fn scheduler_alphas_cumprod() {
    let cfg = SchedulerConfig::load(&model().join("scheduler/scheduler_config.json")).unwrap();
    let want = npy_f32("schedulers/alphas_cumprod.npy");
    let d = max_abs_diff(&cfg.alphas_cumprod(), want.as_slice().unwrap());
    assert!(d < 1e-7, "alphas_cumprod max abs diff {d}");
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    max_abs_diff(got, want) / max_abs(want).max(1e-30)
}

/// Replays a sampler reference (`<refdir>/<name>/<scenario>/`) step by step; returns the worst
/// relative difference of the step outputs.
fn check_scheduler_in(root: &str, name: &str, kind: SamplerKind, eta: f32, scenario: &str) -> f32 {
    let mut cfg = SchedulerConfig::load(&model().join("scheduler/scheduler_config.json")).unwrap();
    if root.ends_with("_vpred") {
        cfg.prediction_type = "v_prediction".into();
    }
    let dir = format!("{root}/{name}/{scenario}");
    let meta = json(&format!("{dir}/meta.json"));
    let n = meta["num_inference_steps"].as_u64().unwrap() as usize;
    let strength = meta["strength"].as_f64();
    let mut s = match (scenario, kind) {
        ("img2img", SamplerKind::Lcm) => {
            Scheduler::lcm_with_strength(&cfg, n, strength.unwrap()).unwrap()
        }
        ("img2img", _) => Scheduler::img2img(kind, &cfg, n, strength.unwrap()).unwrap(),
        _ => Scheduler::new(kind, &cfg, n).unwrap(),
    }
    .with_eta(eta);
    let all: Vec<f32> = meta["all_timesteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(s.timesteps(), &all[..], "{dir}: timesteps");
    if let Some(sigma) = meta["init_noise_sigma"].as_f64() {
        assert!(
            (s.init_noise_sigma() as f64 - sigma).abs() < 1e-5 * sigma.max(1.0),
            "{dir}: init_noise_sigma"
        );
    }
    // the v-prediction runs share the epsilon runs' inputs
    let inputs = root.trim_end_matches("_vpred");
    let outputs = npy_f32(&format!("{inputs}/model_outputs.npy"));
    let step_noise = npy_f32("schedulers/step_noise.npy");
    let sample_in = npy_f32(&format!("{dir}/sample_in.npy"));
    let model_input = npy_f32(&format!("{dir}/model_input.npy"));
    let prev = npy_f32(&format!("{dir}/prev_sample.npy"));
    let init = npy_f32(&format!("{dir}/init_latents.npy"));
    let per = 4 * 8 * 8;
    let x0 = npy_f32(&format!("{inputs}/x0.npy"));
    let noise = npy_f32(&format!("{inputs}/noise_init.npy"));
    let mut latents: Vec<f32> = if scenario == "img2img" {
        let mut l = x0.as_slice().unwrap().to_vec();
        s.add_noise(&mut l, noise.as_slice().unwrap());
        l
    } else {
        noise.iter().map(|x| x * s.init_noise_sigma()).collect()
    };
    let mut worst = rel_diff(&latents, init.as_slice().unwrap());
    assert!(worst < 1e-5, "{dir}: init latents rel diff {worst}");
    let calls = prev.shape()[0];
    assert_eq!(s.remaining(), calls, "{dir}: model calls");
    for k in 0..calls {
        let sl = |a: &ArrayD<f32>, j: usize| a.as_slice().unwrap()[j * per..(j + 1) * per].to_vec();
        let d = rel_diff(&latents, &sl(&sample_in, k));
        assert!(d < 1e-5, "{dir}: call {k} sample_in rel diff {d}");
        let mut mi = latents.clone();
        s.scale_model_input(&mut mi);
        let d = rel_diff(&mi, &sl(&model_input, k));
        assert!(d < 1e-5, "{dir}: call {k} model_input rel diff {d}");
        let noise = sl(&step_noise, k.min(9));
        s.step(&sl(&outputs, k), &mut latents, Some(&noise))
            .unwrap();
        let d = rel_diff(&latents, &sl(&prev, k));
        assert!(d < 1e-5, "{dir}: call {k} prev_sample rel diff {d}");
        worst = worst.max(d);
    }
    assert_eq!(s.remaining(), 0);
    worst
}

fn check_scheduler(name: &str, kind: SamplerKind, eta: f32, scenario: &str) -> f32 {
    check_scheduler_in("schedulers", name, kind, eta, scenario)
}

#[test]
fn ddim_matches_diffusers() {
    for sc in ["txt2img", "img2img"] {
        check_scheduler("ddim", SamplerKind::Ddim, 0.0, sc);
        check_scheduler("ddim_eta1", SamplerKind::Ddim, 1.0, sc);
    }
}

#[test]
fn euler_matches_diffusers() {
    for sc in ["txt2img", "img2img"] {
        check_scheduler("euler", SamplerKind::Euler, 0.0, sc);
        check_scheduler("euler_ancestral", SamplerKind::EulerAncestral, 0.0, sc);
    }
}

#[test]
fn dpmpp_2m_karras_matches_diffusers() {
    for sc in ["txt2img", "img2img"] {
        let d = check_scheduler("dpmpp_2m_karras", SamplerKind::DpmPp2MKarras, 0.0, sc);
        let e = check_scheduler_in(
            "../sd-ref-samplers/schedulers",
            "dpmpp_2m_karras",
            SamplerKind::DpmPp2MKarras,
            0.0,
            sc,
        );
        eprintln!("dpmpp_2m_karras/{sc}: worst relative step difference {d:.2e}, {e:.2e}");
    }
}

#[test]
fn lcm_matches_diffusers() {
    for sc in ["txt2img", "img2img"] {
        let d = check_scheduler("lcm", SamplerKind::Lcm, 0.0, sc);
        eprintln!("lcm/{sc}: worst relative step difference {d:.2e}");
    }
}

#[test]
fn dpmpp_2m_heun_unipc_match_diffusers() {
    for (name, kind) in [
        ("dpmpp_2m", SamplerKind::DpmPp2M),
        ("heun", SamplerKind::Heun),
        ("unipc", SamplerKind::UniPc),
    ] {
        for sc in ["txt2img", "img2img"] {
            let d = check_scheduler_in("../sd-ref-samplers/schedulers", name, kind, 0.0, sc);
            eprintln!("{name}/{sc}: worst relative step difference {d:.2e}");
        }
    }
}

#[test]
fn every_sampler_matches_diffusers_with_v_prediction() {
    for (name, kind) in [
        ("ddim", SamplerKind::Ddim),
        ("euler", SamplerKind::Euler),
        ("euler_ancestral", SamplerKind::EulerAncestral),
        ("dpmpp_2m", SamplerKind::DpmPp2M),
        ("dpmpp_2m_karras", SamplerKind::DpmPp2MKarras),
        ("lcm", SamplerKind::Lcm),
        ("heun", SamplerKind::Heun),
        ("unipc", SamplerKind::UniPc),
    ] {
        for sc in ["txt2img", "img2img"] {
            let d = check_scheduler_in("../sd-ref-samplers/schedulers_vpred", name, kind, 0.0, sc);
            eprintln!("v_prediction {name}/{sc}: worst relative step difference {d:.2e}");
        }
    }
}

#[test]
fn sampler_names_and_aliases() {
    for (spelling, kind) in [
        ("DPM++ 2M Karras", SamplerKind::DpmPp2MKarras),
        ("dpmpp_2m_karras", SamplerKind::DpmPp2MKarras),
        ("k_dpmpp_2m", SamplerKind::DpmPp2M),
        ("DPMSolverMultistepScheduler", SamplerKind::DpmPp2M),
        ("UniPCMultistepScheduler", SamplerKind::UniPc),
        ("uni_pc", SamplerKind::UniPc),
        ("heun", SamplerKind::Heun),
        ("HeunDiscreteScheduler", SamplerKind::Heun),
        ("LCMScheduler", SamplerKind::Lcm),
        ("lcm", SamplerKind::Lcm),
        ("Euler a", SamplerKind::EulerAncestral),
    ] {
        assert_eq!(
            SamplerKind::from_name(spelling).unwrap(),
            kind,
            "{spelling}"
        );
    }
    for kind in SamplerKind::ALL {
        assert_eq!(SamplerKind::from_name(kind.name()).unwrap(), kind);
        assert_eq!(
            SamplerKind::from_name(kind.diffusers_class())
                .unwrap()
                .diffusers_class(),
            kind.diffusers_class()
        );
    }
    assert!(
        SamplerKind::from_name("DPM++ 3M")
            .unwrap_err()
            .to_string()
            .contains("DPM++ 2M")
    );
}

#[test]
fn text_encoder_matches_transformers() {
    let mut p = Pipeline::load(&model()).unwrap();
    let prompts = json("text_encoder/prompts.json");
    let want = npy_f32("text_encoder/last_hidden_state.npy");
    let per = 77 * 32;
    for (i, prompt) in prompts.as_array().unwrap().iter().enumerate() {
        let (shape, got) = p.encode_prompt(prompt.as_str().unwrap()).unwrap();
        assert_eq!(shape, vec![1, 77, 32]);
        let d = max_abs_diff(&got, &want.as_slice().unwrap()[i * per..(i + 1) * per]);
        assert!(d < 1e-5, "prompt {i}: max abs diff {d}");
    }
}

#[test]
fn img2img_matches_diffusers_pipeline() {
    let mut p = Pipeline::load(&model()).unwrap();
    let meta = json("img2img_modern/meta.json");
    let init = image::open(refdir().join("img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8();
    let enc_noise = npy_f32("img2img_modern/enc_noise.npy");
    let noise = npy_f32("img2img_modern/noise.npy");
    let req = Request {
        prompt: meta["prompt"].as_str().unwrap(),
        negative: "",
        width: 64,
        height: 64,
        init: Some(&init),
        denoise: meta["strength"].as_f64().unwrap(),
        steps: meta["num_inference_steps"].as_u64().unwrap() as usize,
        cfg_scale: meta["guidance_scale"].as_f64().unwrap() as f32,
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
        enc_noise.as_slice().unwrap().to_vec(),
        noise.as_slice().unwrap().to_vec(),
    ]);
    let (img, times) = p.generate(&req, &mut src).unwrap();
    assert_eq!(times.steps_run, 6);
    let want = ndarray_npy::read_npy::<_, ArrayD<u8>>(
        refdir().join("img2img_modern/final_image_uint8.npy"),
    )
    .unwrap();
    let want = want.as_slice().unwrap();
    let d = common::Diff::of(img.as_raw(), want);
    eprintln!("img2img: {d}");
    d.check("img2img", 1, 0.01);
}

#[test]
fn same_seed_same_image() {
    let mut p = Pipeline::load(&model()).unwrap();
    let req = Request {
        prompt: "a red fox",
        negative: "blurry",
        width: 64,
        height: 64,
        init: None,
        denoise: 1.0,
        steps: 4,
        cfg_scale: 7.0,
        sampler: SamplerKind::EulerAncestral,
        eta: 0.0,
        noise_multiplier: 1.0,
        travel: None,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: None,
    };
    let a = p.generate(&req, &mut TorchRng::new(7)).unwrap().0;
    let b = p.generate(&req, &mut TorchRng::new(7)).unwrap().0;
    let c = p.generate(&req, &mut TorchRng::new(8)).unwrap().0;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn noise_multiplier_scales_the_img2img_noise() {
    // A1111/Deforum semantics: the img2img noise is multiplied before it is added
    let mut p = Pipeline::load(&model()).unwrap();
    let init = image::open(refdir().join("img2img_modern/init_image.png"))
        .unwrap()
        .to_rgb8();
    let enc = npy_f32("img2img_modern/enc_noise.npy")
        .as_slice()
        .unwrap()
        .to_vec();
    let noise = npy_f32("img2img_modern/noise.npy")
        .as_slice()
        .unwrap()
        .to_vec();
    let mut req = Request {
        prompt: "a fox",
        negative: "",
        width: 64,
        height: 64,
        init: Some(&init),
        denoise: 0.6,
        steps: 10,
        cfg_scale: 7.5,
        sampler: SamplerKind::Ddim,
        eta: 0.0,
        noise_multiplier: 1.05,
        travel: None,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        pix2pix: None,
        mask: None,
    };
    let a = p
        .generate(&req, &mut Fixed(vec![enc.clone(), noise.clone()]))
        .unwrap()
        .0;
    req.noise_multiplier = 1.0;
    let scaled: Vec<f32> = noise.iter().map(|x| x * 1.05).collect();
    let b = p
        .generate(&req, &mut Fixed(vec![enc.clone(), scaled]))
        .unwrap()
        .0;
    let c = p.generate(&req, &mut Fixed(vec![enc, noise])).unwrap().0;
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// Runs every sampler's txt2img and img2img reference (diffusers' torch pipelines on the same
/// weights, `torch.Generator("cpu").manual_seed(seed)`) with `noise` built from the recorded draws
/// or the seed; returns (name, PSNR) per run.
fn pipeline_runs(from_seed: bool) -> Vec<(String, f64)> {
    let mut p = Pipeline::load(&model()).unwrap();
    let init_u8 = ndarray_npy::read_npy::<_, ArrayD<u8>>(
        refdir().join("../sd-ref-samplers/pipelines/init_image_uint8.npy"),
    )
    .unwrap();
    let init = image::RgbImage::from_raw(64, 64, init_u8.as_slice().unwrap().to_vec()).unwrap();
    let mut out = Vec::new();
    for (name, kind) in [
        ("ddim", SamplerKind::Ddim),
        ("euler", SamplerKind::Euler),
        ("euler_ancestral", SamplerKind::EulerAncestral),
        ("dpmpp_2m", SamplerKind::DpmPp2M),
        ("dpmpp_2m_karras", SamplerKind::DpmPp2MKarras),
        ("lcm", SamplerKind::Lcm),
        ("heun", SamplerKind::Heun),
        ("unipc", SamplerKind::UniPc),
    ] {
        for mode in ["txt2img", "img2img"] {
            let dir = format!("../sd-ref-samplers/pipelines/{name}/{mode}");
            let img = sd::run_reference(
                &mut p,
                &refdir().join(&dir),
                kind,
                (64, 64),
                (mode == "img2img").then_some(&init),
                from_seed,
            );
            let want = ndarray_npy::read_npy::<_, ArrayD<u8>>(
                refdir().join(format!("{dir}/image_uint8.npy")),
            )
            .unwrap();
            out.push((
                format!("{name}/{mode}"),
                sd::psnr_u8(img.as_raw(), want.as_slice().unwrap()),
            ));
        }
    }
    out
}

#[test]
fn every_sampler_matches_diffusers_pipelines() {
    let runs = pipeline_runs(false);
    for (name, db) in &runs {
        eprintln!("{name}: PSNR {db:.1} dB (recorded noise)");
    }
    assert!(runs.iter().all(|(_, db)| *db >= 45.0), "{runs:?}");
}

#[test]
fn every_sampler_matches_diffusers_pipelines_from_the_seed() {
    let runs = pipeline_runs(true);
    for (name, db) in &runs {
        eprintln!("{name}: PSNR {db:.1} dB (torch generator seed)");
    }
    assert!(runs.iter().all(|(_, db)| *db >= 45.0), "{runs:?}");
}

#[test]
fn every_sampler_runs_any_schedule_without_panicking() {
    let cfg = SchedulerConfig::load(&model().join("scheduler/scheduler_config.json")).unwrap();
    for kind in SamplerKind::ALL {
        assert!(
            Scheduler::new(kind, &cfg, 0).is_err(),
            "{kind:?}: zero steps"
        );
        for steps in [1usize, 2, 3, 7, 25] {
            for denoise in [None, Some(0.0), Some(0.3), Some(0.999), Some(1.0)] {
                let s = match denoise {
                    None => Scheduler::new(kind, &cfg, steps),
                    Some(d) => Scheduler::img2img(kind, &cfg, steps, d),
                };
                let Ok(mut s) = s else {
                    assert_eq!(kind, SamplerKind::Lcm, "{kind:?} {steps} steps refused");
                    continue;
                };
                let mut rng = TorchRng::new(steps as u64);
                let mut x = rng.randn(64);
                s.add_noise(&mut x, &rng.randn(64));
                while s.timestep().is_some() {
                    let mut input = x.clone();
                    s.scale_model_input(&mut input);
                    let noise = s.draws_noise().then(|| rng.randn(64));
                    s.step(&rng.randn(64), &mut x, noise.as_deref()).unwrap();
                }
                assert!(
                    x.iter().all(|v| v.is_finite()),
                    "{kind:?} {steps} steps, denoise {denoise:?}: non-finite latents"
                );
                assert!(
                    s.step(&x.clone(), &mut x, None).is_err(),
                    "{kind:?}: step after the end"
                );
            }
        }
    }
}
