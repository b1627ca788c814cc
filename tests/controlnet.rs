//! ControlNet parity with diffusers' ControlNet pipelines (tests/data/controlnet-ref, made by
//! models/make_controlnet_refs.py from the tiny models of models/make_tiny_controlnet.py):
//! txt2img and img2img, one and two units with different weights and guidance windows, both ONNX
//! conventions (separate ControlNets with a residual UNet, diffusers' merged UNet), SD and SDXL,
//! and A1111's guidance windows and control modes (an own-code reference).

mod common;

use std::path::PathBuf;

use anim::diffusion::{
    Control, ControlMode, ControlNet, ControlUnit, Pipeline, PromptSyntax, Request, SamplerKind,
    SessionOptions, TorchRng, WindowRule,
};
use common::sd::{json, npy_u8};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn refdir(case: &str) -> PathBuf {
    root().join("tests/data/controlnet-ref").join(case)
}

fn cpu() -> SessionOptions {
    SessionOptions {
        device: anim::diffusion::Device::Cpu,
        ..Default::default()
    }
}

/// Runs reference `case` as its `meta.json` describes it and returns the image.
fn run_case(case: &str) -> image::RgbImage {
    let dir = refdir(case);
    let meta = json(&dir, "meta.json");
    let models = &meta["models"];
    let mut p =
        Pipeline::load_controlled(&root().join(models["pipeline"].as_str().unwrap()), &cpu())
            .unwrap_or_else(|e| panic!("{case}: {e:#}"));
    let merged = meta["convention"] == "b";
    assert_eq!(
        p.merged_controlnets().is_some(),
        merged,
        "{case}: convention"
    );
    // separate ControlNets, each folder loaded once
    let mut folders: Vec<String> = Vec::new();
    let mut net_of = Vec::new();
    for f in models["controlnets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let f = f.as_str().unwrap().to_string();
        let k = folders.iter().position(|x| *x == f).unwrap_or_else(|| {
            folders.push(f.clone());
            folders.len() - 1
        });
        net_of.push(k);
    }
    let mut nets: Vec<ControlNet> = folders
        .iter()
        .map(|f| ControlNet::load(&root().join(f), &cpu()).unwrap())
        .collect();
    for n in &nets {
        p.check_controlnet(n).unwrap();
    }
    let images: Vec<image::RgbImage> = meta["control_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| common::load_rgb(&dir.join(f.as_str().unwrap())))
        .collect();
    let f = |k: &str, u: usize| meta[k][u].as_f64().unwrap();
    let window: WindowRule = meta["window_semantics"].as_str().unwrap().parse().unwrap();
    let units: Vec<ControlUnit> = images
        .iter()
        .enumerate()
        .map(|(u, image)| ControlUnit {
            net: if merged { u } else { net_of[u] },
            image,
            scale: f("controlnet_conditioning_scale", u) as f32,
            start: f("control_guidance_start", u),
            end: f("control_guidance_end", u),
            mode: meta["control_modes"][u]
                .as_str()
                .map_or(ControlMode::Balanced, |m| m.parse().unwrap()),
            window,
        })
        .collect();
    let init = meta["init_image"]
        .as_str()
        .filter(|_| meta["mode"] == "img2img")
        .map(|p| common::load_rgb(&dir.join(p)));
    let sampler = match meta["scheduler_class"].as_str().unwrap() {
        "DDIMScheduler" => SamplerKind::Ddim,
        "EulerDiscreteScheduler" => SamplerKind::Euler,
        "EulerAncestralDiscreteScheduler" => SamplerKind::EulerAncestral,
        other => panic!("{case}: scheduler {other}"),
    };
    let req = Request {
        prompt: meta["prompt"].as_str().unwrap(),
        negative: meta["negative_prompt"].as_str().unwrap_or(""),
        width: meta["width"].as_u64().unwrap() as u32,
        height: meta["height"].as_u64().unwrap() as u32,
        init: init.as_ref(),
        denoise: meta["strength"].as_f64().unwrap_or(1.0),
        steps: meta["num_inference_steps"].as_u64().unwrap() as usize,
        cfg_scale: meta["guidance_scale"].as_f64().unwrap() as f32,
        sampler,
        eta: meta["eta"].as_f64().unwrap_or(0.0) as f32,
        prompt_syntax: PromptSyntax::Plain,
        clip_skip: 1,
        subseed: None,
        noise_multiplier: 1.0,
        travel: None,
        pix2pix: None,
        mask: None,
    };
    let mut control = Control {
        nets: &mut nets,
        units: &units,
    };
    let (img, times) = p
        .generate_with(
            &req,
            &mut TorchRng::new(meta["seed"].as_u64().unwrap()),
            Some(&mut control),
        )
        .unwrap_or_else(|e| panic!("{case}: {e:#}"));
    assert_eq!(
        times.steps_run,
        meta["unet_calls"].as_u64().unwrap() as usize,
        "{case}: UNet calls"
    );
    img
}

/// Runs `case` and compares with diffusers' image: at most `max` levels apart on at most
/// `share` % of the values.
fn check(case: &str, max: u8, share: f64) {
    let img = run_case(case);
    let want = npy_u8(&refdir(case), "image_uint8.npy");
    let d = common::Diff::of(img.as_raw(), want.as_slice().unwrap());
    eprintln!("{case}: {d}");
    d.check(case, max, share);
}

#[test]
fn sd_separate_controlnets_match_diffusers() {
    for case in [
        "sd_txt2img_1unit",
        "sd_img2img_1unit",
        "sd_img2img_2units_ddim",
        "sd_img2img_2units_euler_a",
        "sd_txt2img_2units",
    ] {
        check(case, 1, 0.02);
    }
}

#[test]
fn sd_merged_unet_matches_diffusers() {
    for case in ["sd_merged_img2img_2units_ddim", "sd_merged_txt2img_2units"] {
        check(case, 1, 0.02);
    }
}

#[test]
fn sdxl_controlnets_match_diffusers() {
    for case in [
        "sdxl_txt2img_1unit",
        "sdxl_img2img_2units",
        "sdxl_merged_img2img_1unit",
    ] {
        check(case, 1, 0.02);
    }
}

#[test]
fn a1111_windows_and_control_modes_match_the_reference() {
    for case in [
        "a1111_balanced",
        "a1111_prompt_more_important",
        "a1111_controlnet_more_important",
        "a1111_mixed_modes",
    ] {
        check(case, 1, 0.02);
    }
}

#[test]
fn keep_masks_follow_both_rules() {
    use anim::diffusion::control::CallPlan;
    let t = json(&root().join("tests/data/controlnet-ref"), "keep_masks.json");
    let windows: Vec<(f64, f64)> = t["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w[0].as_f64().unwrap(), w[1].as_f64().unwrap()))
        .collect();
    let mut n = 0;
    for table in t["tables"].as_array().unwrap() {
        let calls = table["steps_run"].as_u64().unwrap() as usize;
        let a1111 = |k: &str| {
            let total = table[k]["total_sampling_steps"].as_u64().unwrap() as usize;
            (total, &table[k]["keep"])
        };
        let (t_img, keep_img) = a1111("a1111_img2img");
        let (t_txt, keep_txt) = a1111("a1111_txt2img");
        let plans = [
            (
                WindowRule::Diffusers,
                CallPlan {
                    calls,
                    order: 1,
                    steps: calls,
                    denoise: None,
                },
                &table["diffusers"],
            ),
            // img2img: int(strength · steps) + 1 = T
            (
                WindowRule::A1111,
                CallPlan {
                    calls,
                    order: 1,
                    steps: 1000,
                    denoise: Some((t_img - 1) as f64 / 1000.0 + 1e-9),
                },
                keep_img,
            ),
            (
                WindowRule::A1111,
                CallPlan {
                    calls,
                    order: 1,
                    steps: t_txt,
                    denoise: None,
                },
                keep_txt,
            ),
        ];
        for (rule, plan, keep) in plans {
            for (w, &(start, end)) in windows.iter().enumerate() {
                if rule == WindowRule::Diffusers && start >= end {
                    continue; // diffusers refuses such a window
                }
                let want: Vec<bool> = (0..calls).map(|i| keep[i][w].as_u64() == Some(1)).collect();
                let got: Vec<bool> = (0..calls)
                    .map(|i| rule.active(start, end, i, &plan))
                    .collect();
                assert_eq!(
                    got, want,
                    "{rule:?} N {calls} window {start}..{end} plan {plan:?}"
                );
                n += 1;
            }
        }
    }
    assert!(n >= 60, "{n} cases");
}

#[test]
fn a_controlnet_of_another_family_is_refused_with_both_named() {
    let p = Pipeline::load_controlled(&root().join("models/tiny-sd"), &cpu()).unwrap();
    let xl = ControlNet::load(&root().join("models/tiny-controlnet/sdxl-1"), &cpu()).unwrap();
    let e = format!("{:#}", p.check_controlnet(&xl).unwrap_err());
    assert!(e.contains("sdxl-1") && e.contains("SD 1.x/2.x"), "{e}");
}
