//! Deforum settings files (the JSON Deforum saves as `*_settings.txt`) read as scenes.
//!
//! Missing keys take Deforum's defaults; renamed old keys are mapped as Deforum's own loader does;
//! `enable_*` switches decide between a schedule and the value Deforum uses when it is off. Keys
//! anim does not use yet are listed in warnings, never dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::registry::{self, Kind};
use super::{
    AnimationMode, Border, ColorCoherence, ControlNetUnit, Scene, SceneError, ScheduleText,
};
use crate::schedule::Expr;

/// True when `text` is a Deforum settings file (a JSON object) rather than a scene TOML.
pub fn looks_like_settings(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Keys Deforum writes that only concern its UI, the webui or bookkeeping: no effect on frames.
const NO_EFFECT: &[&str] = &[
    "show_info_on_ui",
    "sd_model_name",
    "sd_model_hash",
    "deforum_git_commit_id",
    "batch_name",
    "motion_preview_mode",
    "restore_faces",
    "tiling",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "reroll_blank_frames",
    "reroll_patience",
    "resume_from_timestring",
    "resume_timestring",
    "delete_imgs",
    "delete_input_frames",
    "store_frames_in_ram",
    "fetched_parseq_manifest_summary",
    "positive_prompts",
    "negative_prompts",
    "outdir",
    "init_sample",
    "perlin_w",
    "perlin_h",
    "image_path",
    "init_image_box",
    "use_init",
    "enable_steps_scheduling",
    "enable_sampler_scheduling",
    "enable_checkpoint_scheduling",
    "enable_subseed_scheduling",
    "enable_clipskip_scheduling",
    "enable_noise_multiplier_scheduling",
    "enable_ddim_eta_scheduling",
    "enable_ancestral_eta_scheduling",
];

/// Deforum's defaults for the switches (args.py): only the noise multiplier is on.
fn switch_default(name: &str) -> bool {
    name == "enable_noise_multiplier_scheduling"
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_schedule(v: &Value) -> Option<ScheduleText> {
    match v {
        Value::String(s) => Some(ScheduleText::Text(s.clone())),
        Value::Number(n) => n.as_f64().map(|x| ScheduleText::Text(format!("0:({x})"))),
        _ => None,
    }
}

/// Applies Deforum's `handle_deprecated_settings` renames.
fn rename_deprecated(map: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    for (old, new) in [
        ("flip_2d_perspective", "enable_perspective_flip"),
        ("skip_video_for_run_all", "skip_video_creation"),
        ("animation_prompts", "prompts"),
    ] {
        if let Some(v) = map.remove(old) {
            map.entry(new.to_string()).or_insert(v);
            warnings.push(format!("old key `{old}` read as `{new}`"));
        }
    }
    if map.remove("histogram_matching").is_some() {
        warnings.push("old key `histogram_matching` dropped (Deforum drops it too)".into());
    }
    for i in 1..=5 {
        for k in ["weight", "guidance_start", "guidance_end"] {
            let key = format!("cn_{i}_{k}");
            if let Some(Value::Number(n)) = map.get(&key) {
                let text = format!("0:({n})");
                map.insert(key, Value::String(text));
            }
        }
    }
}

/// Reads a Deforum settings file as a scene; returns the scene and its warnings.
pub fn from_settings(text: &str, path: &Path) -> Result<(Scene, Vec<String>), SceneError> {
    let err = |message: String| SceneError {
        file: path.to_path_buf(),
        message,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(format!(
            "line {}, column {}: not valid JSON: {e} (a Deforum settings file is one JSON object)",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut map) = value else {
        return Err(err("a Deforum settings file must be a JSON object".into()));
    };
    let mut warnings = Vec::new();
    rename_deprecated(&mut map, &mut warnings);
    let mut scene = Scene {
        path: path.to_path_buf(),
        from_deforum: true,
        ..Scene::default()
    };
    let used: std::cell::RefCell<Vec<String>> = Default::default();
    let get = |k: &str| {
        used.borrow_mut().push(k.to_string());
        map.get(k).cloned()
    };
    let bad = |k: &str, v: &Value, want: &str| format!("`{k}` = {v}: expected {want}");

    // size, floored to multiples of 8 as Deforum's pipeline does
    for (k, slot) in [
        ("W", &mut scene.image.width),
        ("H", &mut scene.image.height),
    ] {
        if let Some(v) = get(k) {
            let n = as_f64(&v)
                .filter(|n| *n >= 8.0)
                .ok_or_else(|| err(bad(k, &v, "a size in pixels")))? as u32;
            *slot = n / 8 * 8;
            if *slot != n {
                warnings.push(format!(
                    "`{k}` = {n} floored to {} (a multiple of 8), as Deforum does",
                    *slot
                ));
            }
        }
    }
    if let Some(v) = get("max_frames") {
        scene.animation.max_frames = as_f64(&v)
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| err(bad("max_frames", &v, "a frame count")))?
            as usize;
    }
    // video_input is read before the mode check below
    if let Some(v) = get("animation_mode") {
        scene.animation.mode = match v.as_str().unwrap_or("") {
            "2D" => AnimationMode::TwoD,
            "3D" => AnimationMode::ThreeD,
            "None" => AnimationMode::None,
            "Video Input" => AnimationMode::VideoInput,
            "Interpolation" => AnimationMode::Interpolation,
            other => {
                warnings.push(format!("animation_mode \"{other}\" is not supported yet; read as \"2D\" for its schedules"));
                AnimationMode::TwoD
            }
        };
    }
    if let Some(v) = get("border") {
        scene.animation.border = match v.as_str().unwrap_or("") {
            "wrap" => Border::Wrap,
            "replicate" => Border::Replicate,
            _ => return Err(err(bad("border", &v, "\"replicate\" or \"wrap\""))),
        };
    }
    if let Some(v) = get("padding_mode") {
        scene.animation.padding_mode = serde_json::from_value(v.clone()).map_err(|_| {
            err(bad(
                "padding_mode",
                &v,
                "\"border\", \"reflection\" or \"zeros\"",
            ))
        })?;
    }
    if let Some(v) = get("sampling_mode") {
        scene.animation.sampling_mode = serde_json::from_value(v.clone()).map_err(|_| {
            err(bad(
                "sampling_mode",
                &v,
                "\"bicubic\", \"bilinear\" or \"nearest\"",
            ))
        })?;
    }
    if let Some(v) = get("use_depth_warping") {
        scene.depth.use_depth_warping = as_bool(&v).unwrap_or(true);
    }
    if let Some(v) = get("save_depth_maps") {
        scene.depth.save_depth_maps = as_bool(&v).unwrap_or(false);
    }
    if let Some(Value::String(algo)) = get("depth_algorithm") {
        get("midas_weight");
        if scene.animation.mode == AnimationMode::ThreeD && scene.depth.use_depth_warping {
            warnings.push(format!(
                "depth_algorithm \"{algo}\": anim runs an ONNX depth model named by [depth] model (see README, \"Depth models\"); \
                 without one, 3D mode uses flat depth"
            ));
        }
    }
    if let Some(v) = get("seed") {
        scene.generation.seed =
            as_f64(&v).ok_or_else(|| err(bad("seed", &v, "an integer")))? as i64;
    }
    if let Some(v) = get("strength") {
        scene.init.strength =
            as_f64(&v).ok_or_else(|| err(bad("strength", &v, "a number in 0..1")))?;
    }
    if let Some(v) = get("strength_0_no_init") {
        scene.init.strength_0_no_init = as_bool(&v).unwrap_or(true);
    }
    let use_init = get("use_init").and_then(|v| as_bool(&v)).unwrap_or(false);
    if let Some(Value::String(p)) = get("init_image")
        && use_init
        && !p.is_empty()
    {
        if p.starts_with("http://") || p.starts_with("https://") {
            warnings.push(format!("init_image {p} is a URL; anim reads local files only: download it and set [init] image"));
        } else {
            scene.init.image = Some(p.into());
        }
    }
    if let Some(v) = get("seed_behavior") {
        let name = v.as_str().unwrap_or("").to_lowercase();
        scene.generation.seed_behavior = serde_json::from_value(Value::String(name.clone()))
            .map_err(|_| {
                err(bad(
                    "seed_behavior",
                    &v,
                    &format!("one of {}", crate::seeds::SeedBehavior::NAMES.join(", ")),
                ))
            })?;
    }
    if let Some(v) = get("seed_iter_N") {
        scene.generation.seed_iter_N = as_f64(&v)
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| err(bad("seed_iter_N", &v, "a positive integer")))?
            as u64;
    }
    if let Some(v) = get("color_coherence") {
        let name = v
            .as_str()
            .unwrap_or("")
            .trim_start_matches("Match Frame 0 ")
            .to_string();
        scene.coherence.color_coherence = match name.as_str() {
            "None" => ColorCoherence::None,
            "LAB" => ColorCoherence::Lab,
            "HSV" => ColorCoherence::Hsv,
            "RGB" => ColorCoherence::Rgb,
            "Image" => ColorCoherence::Image,
            "Video Input" => ColorCoherence::VideoInput,
            other => {
                warnings.push(format!(
                    "color_coherence \"{other}\" is not supported yet; using None"
                ));
                ColorCoherence::None
            }
        };
    }
    if let Some(Value::String(p)) = get("color_coherence_image_path")
        && !p.is_empty()
    {
        scene.coherence.color_coherence_image_path = Some(p.into());
    }
    if let Some(v) = get("color_coherence_video_every_N_frames") {
        scene.coherence.color_coherence_video_every_N_frames =
            as_f64(&v).filter(|n| *n >= 1.0).unwrap_or(1.0) as usize;
    }
    if let Some(v) = get("color_force_grayscale") {
        scene.coherence.color_force_grayscale = as_bool(&v).unwrap_or(false);
    }
    // Deforum's loader treats a file without the key as an old one: legacy colour matching
    scene.coherence.legacy_colormatch = get("legacy_colormatch")
        .and_then(|v| as_bool(&v))
        .unwrap_or(true);
    if let Some(v) = get("diffusion_cadence") {
        scene.cadence.diffusion_cadence = as_f64(&v)
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| err(bad("diffusion_cadence", &v, "a positive integer")))?
            as usize;
    }
    if let Some(Value::String(p)) = get("video_init_path") {
        if p.starts_with("http://") || p.starts_with("https://") {
            warnings.push(format!("video_init_path {p} is a URL; anim reads local files only: download it and set [video_input] video_init_path"));
        } else if !p.is_empty() {
            scene.video_input.video_init_path = Some(p.into());
        }
    }
    for (k, slot) in [
        (
            "extract_nth_frame",
            &mut scene.video_input.extract_nth_frame,
        ),
        (
            "extract_from_frame",
            &mut scene.video_input.extract_from_frame,
        ),
    ] {
        if let Some(v) = get(k) {
            *slot = as_f64(&v)
                .filter(|n| *n >= 0.0)
                .ok_or_else(|| err(bad(k, &v, "a frame number")))? as usize;
        }
    }
    if let Some(v) = get("extract_to_frame") {
        scene.video_input.extract_to_frame = as_f64(&v)
            .ok_or_else(|| err(bad("extract_to_frame", &v, "a frame number or -1")))?
            as i64;
    }
    if scene.animation.mode == AnimationMode::VideoInput
        && scene.video_input.video_init_path.is_none()
    {
        warnings.push("Video Input mode without a local video_init_path: read as 2D".into());
        scene.animation.mode = AnimationMode::TwoD;
    }
    if let Some(v) = get("enable_perspective_flip") {
        scene.motion.enable_perspective_flip = as_bool(&v).unwrap_or(false);
    }
    if let Some(Value::String(t)) = get("noise_type") {
        scene.noise.noise_type = t.to_lowercase();
    }
    if let Some(v) = get("perlin_octaves") {
        scene.noise.perlin_octaves = as_f64(&v).unwrap_or(4.0) as u32;
    }
    if let Some(v) = get("perlin_persistence") {
        scene.noise.perlin_persistence = as_f64(&v).unwrap_or(0.5);
    }
    if let Some(v) = get("fps") {
        scene.output.fps = as_f64(&v)
            .filter(|f| *f > 0.0)
            .ok_or_else(|| err(bad("fps", &v, "a positive number")))?;
    }
    if let Some(v) = get("make_gif") {
        scene.output.gif = as_bool(&v).unwrap_or(false);
    }
    let soundtrack = get("add_soundtrack")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if let Some(Value::String(p)) = get("soundtrack_path") {
        if soundtrack == "File" {
            if p.starts_with("http://") || p.starts_with("https://") {
                warnings.push(format!("soundtrack_path {p} is a URL; anim reads local files only: download it and set [output] soundtrack"));
            } else if !p.is_empty() {
                scene.output.soundtrack = Some(p.into());
            }
        } else if soundtrack == "Init Video" {
            warnings.push("add_soundtrack = \"Init Video\" is not supported yet; set [output] soundtrack to the video file".into());
        }
    }
    if let Some(v) = get("skip_video_creation") {
        scene.output.video = !as_bool(&v).unwrap_or(false);
    }

    // schedules, with Deforum's enable switches
    for def in registry::SCHEDULES {
        let enabled = match def.enabled_by {
            Some((switch, _)) => get(switch)
                .and_then(|v| as_bool(&v))
                .unwrap_or(switch_default(switch)),
            None => true,
        };
        let value = if enabled {
            get(def.deforum)
                .map(|v| {
                    as_schedule(&v).ok_or_else(|| err(bad(def.deforum, &v, "a keyframe string")))
                })
                .transpose()?
        } else {
            used.borrow_mut().push(def.deforum.to_string());
            let (_, off) = def.enabled_by.unwrap_or(("", ""));
            match (def.name, off) {
                // the base setting stands in for the disabled schedule
                ("steps", _) => get("steps")
                    .and_then(|v| as_f64(&v))
                    .map(ScheduleText::Number),
                ("sampler", _) => match get("sampler") {
                    Some(Value::String(s)) => Some(ScheduleText::Text(s)),
                    Some(v @ Value::Number(_)) => {
                        warnings.push(format!("sampler = {v} is an old sampler index; anim needs a name, using \"Euler a\""));
                        None
                    }
                    _ => None,
                },
                (_, off) => Some(ScheduleText::text(off)),
            }
        };
        if let Some(v) = value {
            let slot = match def.table {
                "generation" => scene.generation.schedule_mut(def.key),
                "motion" => scene.motion.schedule_mut(def.key),
                "noise" => scene.noise.schedule_mut(def.key),
                "coherence" => scene.coherence.schedule_mut(def.key),
                "anti_blur" => scene.anti_blur.schedule_mut(def.key),
                "cadence" => scene.cadence.schedule_mut(def.key),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = if def.kind == Kind::Text && def.name == "checkpoint" && !enabled {
                    ScheduleText::text("")
                } else {
                    v
                };
            }
        }
    }
    // Deforum's "old formula": the 3D aspect ratio is W/H instead of the schedule
    if get("aspect_ratio_use_old_formula")
        .and_then(|v| as_bool(&v))
        .unwrap_or(false)
    {
        let ratio = scene.image.width as f64 / scene.image.height as f64;
        scene.motion.aspect_ratio = ScheduleText::Number(ratio);
        warnings.push(format!(
            "aspect_ratio_use_old_formula: aspect_ratio set to W/H = {ratio}, as Deforum does"
        ));
    }
    if scene.generation.checkpoint != ScheduleText::text("") {
        warnings.push("checkpoint_schedule names webui checkpoints; in anim each must be an ONNX model folder".into());
    }

    // ControlNet units that are on
    for i in 1..=5 {
        let on = get(&format!("cn_{i}_enabled"))
            .and_then(|v| as_bool(&v))
            .unwrap_or(false);
        for k in [
            "overwrite_frames",
            "vid_path",
            "mask_vid_path",
            "low_vram",
            "pixel_perfect",
            "module",
            "model",
            "processor_res",
            "threshold_a",
            "threshold_b",
            "resize_mode",
            "control_mode",
            "loopback_mode",
            "weight",
            "guidance_start",
            "guidance_end",
        ] {
            used.borrow_mut().push(format!("cn_{i}_{k}"));
        }
        if !on {
            continue;
        }
        let mut unit = ControlNetUnit {
            // what the webui extension does: its window per sampling step
            window: "a1111".into(),
            // Deforum's saved defaults
            processor_res: 64,
            threshold_a: 64.0,
            threshold_b: 64.0,
            ..ControlNetUnit::default()
        };
        for (k, slot) in [
            ("weight", &mut unit.weight),
            ("guidance_start", &mut unit.guidance_start),
            ("guidance_end", &mut unit.guidance_end),
        ] {
            if let Some(v) = map.get(&format!("cn_{i}_{k}")) {
                *slot = as_schedule(v)
                    .ok_or_else(|| err(bad(&format!("cn_{i}_{k}"), v, "a keyframe string")))?;
            }
        }
        let text = |k: &str| -> Result<Option<String>, SceneError> {
            match map.get(&format!("cn_{i}_{k}")) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(v) => Err(err(bad(&format!("cn_{i}_{k}"), v, "a string"))),
            }
        };
        let flag = |k: &str| -> Result<Option<bool>, SceneError> {
            map.get(&format!("cn_{i}_{k}"))
                .map(|v| {
                    as_bool(v).ok_or_else(|| err(bad(&format!("cn_{i}_{k}"), v, "true or false")))
                })
                .transpose()
        };
        let number = |k: &str| -> Result<Option<f64>, SceneError> {
            map.get(&format!("cn_{i}_{k}"))
                .map(|v| {
                    as_f64(v)
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| err(bad(&format!("cn_{i}_{k}"), v, "a number")))
                })
                .transpose()
        };
        if let Some(m) = text("model")?.filter(|m| !m.is_empty() && m != "None") {
            unit.model = Some(PathBuf::from(m));
        }
        if let Some(m) = text("module")?.filter(|m| !m.is_empty()) {
            unit.module = m;
        }
        if let Some(p) = text("vid_path")?.filter(|p| !p.is_empty()) {
            unit.input = Some(PathBuf::from(p));
        }
        if let Some(m) = text("resize_mode")?.filter(|m| !m.is_empty()) {
            unit.resize_mode = m;
        }
        if let Some(m) = text("control_mode")?.filter(|m| !m.is_empty()) {
            unit.control_mode = m;
        }
        if let Some(b) = flag("loopback_mode")? {
            unit.loopback = b;
        }
        if let Some(b) = flag("pixel_perfect")? {
            unit.pixel_perfect = b;
        }
        if let Some(b) = flag("overwrite_frames")? {
            unit.overwrite_frames = b;
        }
        // the extension's bound check: a value outside the preprocessor slider's range is
        // replaced by its default (resolution 64..=2048 -> 512, thresholds 1..=255 -> 100/200)
        if let Some(r) = number("processor_res")? {
            unit.processor_res = if (64.0..=2048.0).contains(&r) {
                r as u32
            } else {
                warnings.push(format!(
                    "cn_{i}_processor_res = {r} is outside 64..=2048; 512 used, as the ControlNet extension does"
                ));
                512
            };
        }
        for (k, slot, default) in [
            ("threshold_a", &mut unit.threshold_a, 100.0),
            ("threshold_b", &mut unit.threshold_b, 200.0),
        ] {
            if let Some(t) = number(k)? {
                *slot = if (1.0..=255.0).contains(&t) {
                    t
                } else {
                    warnings.push(format!(
                        "cn_{i}_{k} = {t} is outside 1..=255; {default} used, as the ControlNet extension does"
                    ));
                    default
                };
            }
        }
        if text("mask_vid_path")?.is_some_and(|p| !p.is_empty()) {
            warnings.push(format!(
                "cn_{i}_mask_vid_path is not used (Deforum's own interface marks ControlNet masks as not working)"
            ));
        }
        scene.controlnet.push(unit);
    }

    // prompts, with the global positive/negative prompts merged as Deforum does at run start
    for k in [
        "prompts",
        "animation_prompts_positive",
        "animation_prompts_negative",
    ] {
        used.borrow_mut().push(k.to_string());
    }
    if let Some(Value::String(p)) = map.get("animation_prompts_positive") {
        scene.animation_prompts.positive = p.clone();
    }
    if let Some(Value::String(n)) = map.get("animation_prompts_negative") {
        scene.animation_prompts.negative = n.clone();
    }
    if let Some(prompts) = map.get("prompts") {
        let Value::Object(p) = prompts else {
            return Err(err(bad("prompts", prompts, "an object of frame: prompt")));
        };
        let mut out = BTreeMap::new();
        for (k, v) in p {
            let text = v
                .as_str()
                .ok_or_else(|| err(bad(&format!("prompts.{k}"), v, "a prompt string")))?;
            let frame = match k.trim().parse::<usize>() {
                Ok(f) => f,
                Err(_) => {
                    let e =
                        Expr::parse(k, &[]).map_err(|e| err(format!("prompt key \"{k}\": {e}")))?;
                    let f = e.eval(&[]);
                    if !(f.is_finite() && f >= 0.0) {
                        return Err(err(format!("prompt key \"{k}\" evaluates to {f}")));
                    }
                    f as usize
                }
            };
            out.insert(frame.to_string(), text.to_string());
        }
        scene.prompts = out;
    }

    // everything else: listed, never dropped silently
    let used = used.into_inner();
    let mut ignored: Vec<&str> = Vec::new();
    let mut unsupported: Vec<&str> = Vec::new();
    for k in map.keys() {
        if used.iter().any(|u| u == k) {
            continue;
        }
        if NO_EFFECT.contains(&k.as_str()) {
            ignored.push(k);
        } else {
            unsupported.push(k);
        }
    }
    if !unsupported.is_empty() {
        warnings.push(format!(
            "not supported yet, ignored ({}): {}",
            unsupported.len(),
            unsupported.join(", ")
        ));
    }
    if !ignored.is_empty() {
        warnings.push(format!(
            "no effect in anim ({}): {}",
            ignored.len(),
            ignored.join(", ")
        ));
    }
    scene.validate().map_err(|m| err(with_deforum_name(m)))?;
    Ok((scene, warnings))
}

/// The Deforum settings key behind scene key `[table] key`, where the names differ.
pub fn deforum_name(table: &str, key: &str) -> Option<&'static str> {
    const RENAMED: &[(&str, &str, &str)] = &[
        ("image", "width", "W"),
        ("image", "height", "H"),
        ("animation", "mode", "animation_mode"),
        ("init", "image", "init_image"),
        ("output", "fps", "fps"),
    ];
    RENAMED
        .iter()
        .find(|(t, k, _)| *t == table && *k == key)
        .map(|(_, _, d)| *d)
        .or_else(|| {
            registry::SCHEDULES
                .iter()
                .find(|d| d.table == table && d.key == key)
                .map(|d| d.deforum)
        })
        .filter(|d| *d != key)
}

/// A scene message that starts with `[table] key`, with the Deforum key it came from added.
fn with_deforum_name(message: String) -> String {
    let named = message.strip_prefix('[').and_then(|rest| {
        let (table, rest) = rest.split_once("] ")?;
        let key: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        deforum_name(table, &key)
    });
    match named {
        Some(d) => format!("{message} (Deforum setting `{d}`)"),
        None => message,
    }
}

/// Writes a scene as TOML, with the warnings of its import as comments at the top.
pub fn to_toml(scene: &Scene, source: &Path, warnings: &[String]) -> Result<String, String> {
    let body =
        toml::to_string(scene).map_err(|e| format!("cannot write the scene as TOML: {e}"))?;
    let mut out = format!(
        "# Scene imported from the Deforum settings file {} by `anim import deforum`.\n",
        source.display()
    );
    for w in warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

/// Reads a Deforum settings file from disk (`anim import deforum`): the scene and its warnings.
///
/// # Errors
/// An unreadable file, or settings that do not make a valid scene.
pub fn read_file(settings: &Path) -> anyhow::Result<(Scene, Vec<String>)> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(settings)
        .with_context(|| format!("cannot read {}", settings.display()))?;
    Ok(from_settings(&text, settings)?)
}

/// Writes `scene`, imported from `settings` with `warnings`, as a scene TOML file at `output`
/// ([`to_toml`]).
///
/// # Errors
/// A scene that cannot be written as TOML, or a file that cannot be written.
pub fn write_toml(
    scene: &Scene,
    settings: &Path,
    warnings: &[String],
    output: &Path,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let toml = to_toml(scene, settings, warnings).map_err(anyhow::Error::msg)?;
    std::fs::write(output, toml).with_context(|| format!("cannot write {}", output.display()))
}
