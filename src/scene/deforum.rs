//! Deforum settings files (the JSON Deforum saves as `*_settings.txt`) read as scenes.
//!
//! Missing keys take Deforum's defaults; renamed old keys are mapped as Deforum's own loader does;
//! `enable_*` switches decide between a schedule and the value Deforum uses when it is off. Keys
//! anim does not use yet are listed in warnings, never dropped silently. An unknown value of an
//! enumerated key, a value of the wrong type, a key that looks like a misspelt Deforum key, and a
//! known Deforum value anim does not implement (a feature switched on, a URL where a file is
//! needed, an old sampler index) are errors; with [`ReadOptions::allow_unsupported`] the last two
//! kinds are warnings and take the fallback docs/scene-format.md documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::registry::{self, Kind};
use super::validate::NOISE_TYPES;
use super::{
    AnimationMode, Border, ColorCoherence, ControlNetUnit, EMPTY_SCENE, HybridComposite,
    HybridEqualize, HybridMaskType, HybridMotion, MaskFill, PaddingMode, ReadOptions, SamplingMode,
    Scene, SceneError, ScheduleText, SeedBehavior, unknown_value,
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
    "tiling",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "reroll_blank_frames",
    "reroll_patience",
    "resume_from_timestring",
    "resume_timestring",
    "delete_imgs",
    "delete_input_frames",
    // anim extracts a new render's video frames into its own output folder and reuses them only
    // on --resume, so Deforum's choice between re-extracting and reusing old frames does not arise
    "overwrite_extracted_frames",
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

/// Deforum settings of features anim does not implement, with what they turn on: a value other
/// than "off" (`false`, `"None"`, `""`, `0`, `null`) is an error unless `--allow-unsupported`,
/// which renders without the feature.
const UNIMPLEMENTED_FEATURES: &[(&str, &str)] = &[];

/// Deforum settings of features out of anim's scope, with the reason: listed apart from the
/// unsupported ones, and, switched on, an error unless `--allow-unsupported` (rendered without).
const OUT_OF_SCOPE: &[(&str, &str)] = &[
    (
        "hybrid_generate_human_masks",
        "hybrid video human masks from RobustVideoMatting, a recurrent PyTorch model with no ONNX \
         export anim could load; make the masks with RVM and give them as mask files",
    ),
    (
        "restore_faces",
        "face restoration (GFPGAN/CodeFormer belong to the webui, not to Deforum); restore the \
         frames afterwards with a face-restoration tool",
    ),
];

/// Other Deforum settings anim does not implement: parameters of the features above (no effect
/// while the feature is off). Listed in a warning when present; with the keys anim reads and
/// [`NO_EFFECT`] they make the set of known keys a misspelt key is matched against.
const UNIMPLEMENTED_KEYS: &[&str] = &[];

/// Deforum's mask keys into `[mask]` (docs/research §2.1). A mask file or mask video given as a
/// URL (Deforum's defaults are) is refused only where it is used.
fn read_masks(
    scene: &mut Scene,
    get: &dyn Fn(&str) -> Option<Value>,
    flag: &dyn Fn(&str) -> Result<Option<bool>, SceneError>,
    number: &NumberReader,
    allow: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let m = &mut scene.mask;
    let msg = |e: SceneError| e.to_string();
    for (k, slot) in [
        ("use_mask", &mut m.use_mask),
        ("use_noise_mask", &mut m.use_noise_mask),
        ("use_mask_video", &mut m.use_mask_video),
        ("invert_mask", &mut m.invert_mask),
        ("overlay_mask", &mut m.overlay_mask),
        ("full_res_mask", &mut m.full_res_mask),
        ("use_alpha_as_mask", &mut m.use_alpha_as_mask),
    ] {
        if let Some(b) = flag(k).map_err(msg)? {
            *slot = b;
        }
    }
    for (k, slot) in [
        ("mask_contrast_adjust", &mut m.mask_contrast_adjust),
        ("mask_brightness_adjust", &mut m.mask_brightness_adjust),
    ] {
        if let Some(v) = number(k, "a factor (1 = unchanged)").map_err(msg)? {
            *slot = v;
        }
    }
    for (k, slot) in [
        ("mask_overlay_blur", &mut m.mask_overlay_blur),
        ("full_res_mask_padding", &mut m.full_res_mask_padding),
    ] {
        if let Some(v) = number(k, "a whole number of pixels").map_err(msg)? {
            if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX) {
                return Err(format!("`{k}` = {v}: expected a whole number of pixels"));
            }
            *slot = v as u32;
        }
    }
    for (k, slot) in [
        ("mask_schedule", &mut m.mask_schedule),
        ("noise_mask_schedule", &mut m.noise_mask_schedule),
    ] {
        match get(k) {
            Some(Value::String(t)) => *slot = t,
            None | Some(Value::Null) => {}
            Some(v) => return Err(format!("`{k}` = {v}: expected a mask schedule string")),
        }
    }
    if let Some(v) = get("fill") {
        // the UI saves the radio button's index (A1111's inpainting_fill)
        let fills = [
            MaskFill::Fill,
            MaskFill::Original,
            MaskFill::LatentNoise,
            MaskFill::LatentNothing,
        ];
        m.fill = match as_f64(&v) {
            Some(i) if i.fract() == 0.0 && (0.0..4.0).contains(&i) => fills[i as usize],
            _ => choose(
                "fill",
                &v,
                &[
                    ("fill", MaskFill::Fill),
                    ("original", MaskFill::Original),
                    ("latent noise", MaskFill::LatentNoise),
                    ("latent nothing", MaskFill::LatentNothing),
                ],
            )?,
        };
    }
    for (k, on, slot) in [
        ("mask_file", m.use_mask, &mut m.mask_file),
        ("video_mask_path", m.use_mask_video, &mut m.video_mask_path),
    ] {
        let p = match get(k) {
            Some(Value::String(s)) => s.trim().to_string(),
            None | Some(Value::Null) => continue,
            Some(v) => return Err(format!("`{k}` = {v}: expected a file path (a string)")),
        };
        if p.is_empty() {
            continue;
        }
        if is_url(&p) {
            if on {
                unsupported(
                    allow,
                    warnings,
                    &format!("`{k}` = \"{p}\" is a URL; anim reads local files only"),
                    &format!("download it and set `{k}` to the file's path"),
                    "render without it",
                )?;
            }
        } else {
            *slot = Some(p.into());
        }
    }
    if m.use_mask_video
        && m.video_mask_path.is_none()
        && matches!(get("video_mask_path"), Some(Value::String(p)) if is_url(p.trim()))
    {
        // a URL refused with --allow-unsupported: rendered without the mask video
        m.use_mask_video = false;
    }
    Ok(())
}

/// Deforum's default `video_init_path` (a URL: a file without the key asks for it).
const DEFAULT_VIDEO_INIT_PATH: &str = "https://deforum.github.io/a1/V1.mp4";

/// Deforum's `depth_algorithm` names (its versions from 0.7 on). anim runs the ONNX model of
/// `[depth] model` whatever the name; an unknown name is still refused, as a misspelling.
const DEPTH_ALGORITHMS: &[&str] = &[
    "Depth-Anything-V2-Small",
    "Midas-3-Hybrid",
    "Midas-3.1-BeitLarge",
    "Midas+AdaBins (old)",
    "Zoe+AdaBins (old)",
    "Zoe",
    "AdaBins",
    "Leres",
];

/// Whether a setting's value means "off": `false`, `0`, `""`, `"None"`, `"0"`, `null`.
fn is_off(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "none" | "0" | "false"
        ),
        _ => false,
    }
}

/// A known Deforum value anim does not implement: an error saying how to fix it, or with
/// `allow` a warning saying what anim does instead (`fallback`, an infinitive phrase).
fn unsupported(
    allow: bool,
    warnings: &mut Vec<String>,
    what: &str,
    fix: &str,
    fallback: &str,
) -> Result<(), String> {
    if allow {
        warnings.push(format!("{what}; --allow-unsupported: anim will {fallback}"));
        Ok(())
    } else {
        Err(format!(
            "{what}; {fix}, or pass --allow-unsupported to {fallback}"
        ))
    }
}

/// The variant named by an enumerated setting's string value; errors list the accepted names and
/// the nearest one.
fn choose<T: Copy>(key: &str, v: &Value, table: &[(&str, T)]) -> Result<T, String> {
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    match v {
        Value::String(s) => table
            .iter()
            .find(|(n, _)| *n == s.trim())
            .map(|(_, t)| *t)
            .ok_or_else(|| unknown_value(&format!("`{key}`"), s, &names)),
        other => Err(format!(
            "`{key}` = {other}: expected one of {} (a string)",
            names.join(", ")
        )),
    }
}

fn is_url(p: &str) -> bool {
    let p = p.trim().to_ascii_lowercase();
    p.starts_with("http://") || p.starts_with("https://")
}

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

/// Reads a number setting (key, what is expected) as `from_settings_with`'s `number`.
type NumberReader<'a> = dyn Fn(&str, &str) -> Result<Option<f64>, SceneError> + 'a;

/// Deforum's `hybrid_*` settings into `[hybrid]`; the video and its extraction range are
/// Deforum's shared `video_init_path` and `extract_*` keys (already read into `[video_input]`).
fn read_hybrid(
    scene: &mut Scene,
    get: &dyn Fn(&str) -> Option<Value>,
    flag: &dyn Fn(&str) -> Result<Option<bool>, SceneError>,
    number: &NumberReader,
    allow: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let h = &mut scene.hybrid;
    let text = |k: &str| -> Result<Option<Value>, String> {
        Ok(match get(k) {
            // old files write a boolean for `hybrid_composite`: true is "Normal"
            Some(Value::Bool(b)) if k == "hybrid_composite" => {
                Some(Value::from(if b { "Normal" } else { "None" }))
            }
            v => v,
        })
    };
    if let Some(v) = text("hybrid_composite")? {
        h.composite = choose(
            "hybrid_composite",
            &v,
            &[
                ("None", HybridComposite::None),
                ("Normal", HybridComposite::Normal),
                ("Before Motion", HybridComposite::BeforeMotion),
                ("After Generation", HybridComposite::AfterGeneration),
            ],
        )?;
    }
    if let Some(v) = text("hybrid_motion")? {
        h.motion = choose(
            "hybrid_motion",
            &v,
            &[
                ("None", HybridMotion::None),
                ("Optical Flow", HybridMotion::OpticalFlow),
                ("Perspective", HybridMotion::Perspective),
                ("Affine", HybridMotion::Affine),
            ],
        )?;
    }
    if let Some(v) = text("hybrid_comp_mask_type")? {
        h.comp_mask_type = choose(
            "hybrid_comp_mask_type",
            &v,
            &[
                ("None", HybridMaskType::None),
                ("Depth", HybridMaskType::Depth),
                ("Video Depth", HybridMaskType::VideoDepth),
                ("Blend", HybridMaskType::Blend),
                ("Difference", HybridMaskType::Difference),
            ],
        )?;
    }
    if let Some(v) = text("hybrid_comp_mask_equalize")? {
        h.comp_mask_equalize = choose(
            "hybrid_comp_mask_equalize",
            &v,
            &[
                ("None", HybridEqualize::None),
                ("Before", HybridEqualize::Before),
                ("After", HybridEqualize::After),
                ("Both", HybridEqualize::Both),
            ],
        )?;
    }
    if let Some(v) = text("hybrid_flow_method")? {
        let names: Vec<(&str, &str)> = super::validate::FLOW_METHODS
            .iter()
            .map(|n| (*n, *n))
            .collect();
        h.flow_method = choose("hybrid_flow_method", &v, &names)?.to_string();
    }
    let e = |e: SceneError| e.message;
    for (k, slot) in [
        ("hybrid_comp_mask_inverse", &mut h.comp_mask_inverse),
        (
            "hybrid_comp_mask_auto_contrast",
            &mut h.comp_mask_auto_contrast,
        ),
        (
            "hybrid_comp_save_extra_frames",
            &mut h.comp_save_extra_frames,
        ),
        ("hybrid_motion_use_prev_img", &mut h.motion_use_prev_img),
        ("hybrid_flow_consistency", &mut h.flow_consistency),
        (
            "hybrid_use_first_frame_as_init_image",
            &mut h.use_first_frame_as_init_image,
        ),
        ("hybrid_use_init_image", &mut h.use_init_image),
        ("hybrid_generate_inputframes", &mut h.generate_inputframes),
    ] {
        if let Some(b) = flag(k).map_err(e)? {
            *slot = b;
        }
    }
    if let Some(n) = number("hybrid_consistency_blur", "a blur sigma in pixels").map_err(e)? {
        if !(0.0..=f64::from(super::validate::MAX_CONSISTENCY_BLUR)).contains(&n) {
            return Err(format!(
                "`hybrid_consistency_blur` = {n}: must be within 0..={}",
                super::validate::MAX_CONSISTENCY_BLUR
            ));
        }
        h.consistency_blur = n as u32;
    }
    let active = h.composite != HybridComposite::None || h.motion != HybridMotion::None;
    let vi = &scene.video_input;
    h.extract_nth_frame = vi.extract_nth_frame;
    h.extract_from_frame = vi.extract_from_frame;
    h.extract_to_frame = vi.extract_to_frame;
    if !active {
        return Ok(());
    }
    if !matches!(
        scene.animation.mode,
        AnimationMode::TwoD | AnimationMode::ThreeD
    ) {
        warnings.push(format!(
            "hybrid video (`hybrid_composite`, `hybrid_motion`) works in 2D and 3D modes only; \
             `animation_mode` = \"{}\" renders without it, as Deforum does",
            scene.animation.mode
        ));
        h.composite = HybridComposite::None;
        h.motion = HybridMotion::None;
        return Ok(());
    }
    if h.use_init_image {
        return Ok(());
    }
    // what is on, in the file's words, for the messages
    let mut on = Vec::new();
    for k in ["hybrid_composite", "hybrid_motion"] {
        if let Some(v) = get(k).filter(|v| !is_off(v)) {
            on.push(format!("`{k}` = {v}"));
        }
    }
    let on = on.join(" and ");
    // Deforum's default `video_init_path` is a URL
    let video = match get("video_init_path") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.trim().to_string(),
        _ => DEFAULT_VIDEO_INIT_PATH.to_string(),
    };
    if is_url(&video) {
        unsupported(
            allow,
            warnings,
            &format!(
                "{on} turns on hybrid video, whose `video_init_path` = \"{video}\" is a URL \
                 (Deforum's default where the key is missing); anim reads local files only"
            ),
            "set `video_init_path` to a local video file",
            "render without hybrid video",
        )?;
        h.composite = HybridComposite::None;
        h.motion = HybridMotion::None;
    } else {
        h.video_init_path = Some(video.into());
    }
    Ok(())
}

/// Reads a Deforum settings file as a scene; returns the scene and its warnings.
///
/// # Errors
/// As [`from_settings_with`] without `--allow-unsupported`.
pub fn from_settings(text: &str, path: &Path) -> Result<(Scene, Vec<String>), SceneError> {
    from_settings_with(text, path, ReadOptions::default())
}

/// Reads a Deforum settings file as a scene with options (`--allow-unsupported`); returns the
/// scene and its warnings (also in [`Scene::warnings`]).
///
/// # Errors
/// Malformed JSON, a file without settings, a value of the wrong type or outside its range, an
/// unknown value of an enumerated setting, a misspelt key, and (unless `allow_unsupported`) a
/// known value anim does not implement: each naming the file and the Deforum key.
pub fn from_settings_with(
    text: &str,
    path: &Path,
    opts: ReadOptions,
) -> Result<(Scene, Vec<String>), SceneError> {
    let err = |message: String| SceneError {
        file: path.to_path_buf(),
        message,
    };
    let allow = opts.allow_unsupported;
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
    if map.is_empty() {
        return Err(err(EMPTY_SCENE.into()));
    }
    let mut warnings = Vec::new();
    rename_deprecated(&mut map, &mut warnings);
    let mut scene = Scene {
        path: path.to_path_buf(),
        from_deforum: true,
        allow_unsupported: allow,
        ..Scene::default()
    };
    let used: std::cell::RefCell<Vec<String>> = Default::default();
    let get = |k: &str| {
        used.borrow_mut().push(k.to_string());
        map.get(k).cloned()
    };
    let bad = |k: &str, v: &Value, want: &str| format!("`{k}` = {v}: expected {want}");
    // a switch: true/false (or 0/1, "true"/"false", as Deforum's UI saves some)
    let flag = |k: &str| -> Result<Option<bool>, SceneError> {
        get(k)
            .map(|v| as_bool(&v).ok_or_else(|| err(bad(k, &v, "true or false"))))
            .transpose()
    };
    let number = |k: &str, want: &str| -> Result<Option<f64>, SceneError> {
        get(k)
            .map(|v| {
                as_f64(&v)
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| err(bad(k, &v, want)))
            })
            .transpose()
    };
    let path_text = |k: &str| -> Result<Option<String>, SceneError> {
        match get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(v) => Err(err(bad(k, &v, "a file path (a string)"))),
        }
    };
    for (key, why) in OUT_OF_SCOPE {
        if let Some(v) = map.get(*key)
            && !is_off(v)
        {
            unsupported(
                allow,
                &mut warnings,
                &format!("`{key}` = {v} turns on a feature out of anim's scope: {why}"),
                &format!("set `{key}` to its off value (false, \"None\" or \"\")"),
                "render without it",
            )
            .map_err(err)?;
        }
    }
    for (key, what) in UNIMPLEMENTED_FEATURES {
        if let Some(v) = map.get(*key)
            && !is_off(v)
        {
            unsupported(
                allow,
                &mut warnings,
                &format!(
                    "`{key}` = {v} turns on a Deforum feature anim does not implement ({what})"
                ),
                &format!("set `{key}` to its off value (false, \"None\" or \"\")"),
                "render without it",
            )
            .map_err(err)?;
        }
    }

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
        scene.animation.mode = choose(
            "animation_mode",
            &v,
            &[
                ("2D", AnimationMode::TwoD),
                ("3D", AnimationMode::ThreeD),
                ("Video Input", AnimationMode::VideoInput),
                ("Interpolation", AnimationMode::Interpolation),
                ("None", AnimationMode::None),
            ],
        )
        .map_err(err)?;
    }
    if let Some(v) = get("border") {
        // Deforum offers replicate and wrap; anim's reflect and zero are accepted too
        scene.animation.border = choose(
            "border",
            &v,
            &[
                ("replicate", Border::Replicate),
                ("wrap", Border::Wrap),
                ("reflect", Border::Reflect),
                ("zero", Border::Zero),
            ],
        )
        .map_err(err)?;
    }
    if let Some(v) = get("padding_mode") {
        scene.animation.padding_mode = choose(
            "padding_mode",
            &v,
            &[
                ("border", PaddingMode::Border),
                ("reflection", PaddingMode::Reflection),
                ("zeros", PaddingMode::Zeros),
            ],
        )
        .map_err(err)?;
    }
    if let Some(v) = get("sampling_mode") {
        scene.animation.sampling_mode = choose(
            "sampling_mode",
            &v,
            &[
                ("bicubic", SamplingMode::Bicubic),
                ("bilinear", SamplingMode::Bilinear),
                ("nearest", SamplingMode::Nearest),
            ],
        )
        .map_err(err)?;
    }
    if let Some(b) = flag("use_depth_warping")? {
        scene.depth.use_depth_warping = b;
    }
    if let Some(b) = flag("save_depth_maps")? {
        scene.depth.save_depth_maps = b;
    }
    if let Some(v) = get("depth_algorithm") {
        let algo = match &v {
            Value::String(a) => a.clone(),
            other => return Err(err(bad("depth_algorithm", other, "a depth model's name"))),
        };
        if !DEPTH_ALGORITHMS.contains(&algo.as_str()) {
            // Deforum versions differ in their lists: a name anim does not know may be a newer one
            unsupported(
                allow,
                &mut warnings,
                &unknown_value("`depth_algorithm`", &algo, DEPTH_ALGORITHMS),
                "use one of these names",
                "read it as any other depth algorithm",
            )
            .map_err(err)?;
        }
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
    if let Some(b) = flag("strength_0_no_init")? {
        scene.init.strength_0_no_init = b;
    }
    let use_init = flag("use_init")?.unwrap_or(false);
    if let Some(p) = path_text("init_image")?
        && use_init
    {
        if is_url(&p) {
            unsupported(
                allow,
                &mut warnings,
                &format!("`init_image` = \"{p}\" is a URL; anim reads local files only"),
                "download it and set `init_image` to the file's path",
                "start from txt2img without the init image",
            )
            .map_err(err)?;
        } else {
            scene.init.image = Some(p.into());
        }
    }
    if let Some(v) = get("seed_behavior") {
        // Deforum writes these in lower case; other cases are read as the same names
        let lower = match &v {
            Value::String(s) => Value::String(s.to_lowercase()),
            other => other.clone(),
        };
        let table: Vec<(&str, SeedBehavior)> = SeedBehavior::NAMES
            .iter()
            .filter_map(|n| Some((*n, serde_json::from_value(Value::from(*n)).ok()?)))
            .collect();
        scene.generation.seed_behavior = choose("seed_behavior", &lower, &table).map_err(err)?;
    }
    if let Some(v) = get("seed_iter_N") {
        scene.generation.seed_iter_N = as_f64(&v)
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| err(bad("seed_iter_N", &v, "a positive integer")))?
            as u64;
    }
    if let Some(v) = get("color_coherence") {
        // old files write "Match Frame 0 LAB"
        let name = match &v {
            Value::String(s) => Value::String(s.trim_start_matches("Match Frame 0 ").to_string()),
            other => other.clone(),
        };
        scene.coherence.color_coherence = choose(
            "color_coherence",
            &name,
            &[
                ("None", ColorCoherence::None),
                ("LAB", ColorCoherence::Lab),
                ("HSV", ColorCoherence::Hsv),
                ("RGB", ColorCoherence::Rgb),
                ("Image", ColorCoherence::Image),
                ("Video Input", ColorCoherence::VideoInput),
            ],
        )
        .map_err(err)?;
    }
    if let Some(p) = path_text("color_coherence_image_path")? {
        scene.coherence.color_coherence_image_path = Some(p.into());
    }
    if let Some(n) = number(
        "color_coherence_video_every_N_frames",
        "a positive frame count",
    )? {
        if n < 1.0 {
            return Err(err(format!(
                "`color_coherence_video_every_N_frames` = {n}: must be at least 1"
            )));
        }
        scene.coherence.color_coherence_video_every_N_frames = n as usize;
    }
    if let Some(b) = flag("color_force_grayscale")? {
        scene.coherence.color_force_grayscale = b;
    }
    // Deforum's loader treats a file without the key as an old one: legacy colour matching
    scene.coherence.legacy_colormatch = flag("legacy_colormatch")?.unwrap_or(true);
    if let Some(v) = get("diffusion_cadence") {
        scene.cadence.diffusion_cadence = as_f64(&v)
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| err(bad("diffusion_cadence", &v, "a positive integer")))?
            as usize;
    }
    // old files write booleans: true meant "DIS Fine"
    for key in ["optical_flow_cadence", "optical_flow_redo_generation"] {
        if let Some(v) = get(key) {
            let name = match &v {
                Value::Bool(true) => "DIS Fine".to_string(),
                Value::Bool(false) => "None".to_string(),
                Value::String(s) => s.clone(),
                other => return Err(err(bad(key, other, "a flow method or \"None\""))),
            };
            super::flow_choice(&name).map_err(|e| err(format!("`{key}` = {v}: {e}")))?;
            match key {
                "optical_flow_cadence" => scene.cadence.optical_flow_cadence = name,
                _ => scene.cadence.optical_flow_redo_generation = name,
            }
        }
    }
    if let Some(v) = get("diffusion_redo") {
        // a string in Deforum's files ("0")
        let n = match &v {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            other => as_f64(other),
        };
        scene.cadence.diffusion_redo = n
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .ok_or_else(|| err(bad("diffusion_redo", &v, "a whole number of generations")))?
            as usize;
    }
    let video_mode = scene.animation.mode == AnimationMode::VideoInput;
    let video_coherence = scene.coherence.color_coherence == ColorCoherence::VideoInput;
    match path_text("video_init_path")? {
        Some(p) if is_url(&p) && (video_mode || video_coherence) => {
            unsupported(
                allow,
                &mut warnings,
                &format!("`video_init_path` = \"{p}\" is a URL; anim reads local files only"),
                "download it and set `video_init_path` to the file's path",
                "read Video Input mode as 2D and Video Input colour coherence as LAB",
            )
            .map_err(err)?;
            if video_mode {
                scene.animation.mode = AnimationMode::TwoD;
            }
            if video_coherence {
                scene.coherence.color_coherence = ColorCoherence::Lab;
            }
        }
        // a URL nothing uses (the mode is not Video Input) changes nothing
        Some(p) if is_url(&p) => {}
        Some(p) => scene.video_input.video_init_path = Some(p.into()),
        None => {}
    }
    // Parseq: JSON text or a file path (relative to the settings file); read when validated
    match path_text("parseq_manifest")? {
        Some(p) if is_url(&p) => unsupported(
            allow,
            &mut warnings,
            &format!(
                "`parseq_manifest` = \"{p}\" is a URL; anim fetches nothing over the network \
                 (Parseq manifests)"
            ),
            "download the manifest and set `parseq_manifest` to the file's path (or paste its JSON)",
            "render without the manifest, from the file's own schedules",
        )
        .map_err(err)?,
        Some(p) => scene.parseq.manifest = Some(p),
        None => {}
    }
    for (k, slot) in [
        ("parseq_use_deltas", &mut scene.parseq.use_deltas),
        (
            "parseq_non_schedule_overrides",
            &mut scene.parseq.non_schedule_overrides,
        ),
    ] {
        if let Some(b) = flag(k)? {
            *slot = b;
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
        return Err(err(
            "`animation_mode` = \"Video Input\" needs `video_init_path`: the path of a local video file".into(),
        ));
    }
    read_hybrid(&mut scene, &get, &flag, &number, allow, &mut warnings).map_err(err)?;
    if let Some(b) = flag("use_looper")? {
        scene.looper.use_looper = b;
    }
    match get("init_images") {
        Some(Value::String(t)) => scene.looper.init_images = t,
        Some(v @ Value::Object(_)) => scene.looper.init_images = v.to_string(),
        Some(Value::Null) | None => {}
        Some(v) => {
            return Err(err(bad(
                "init_images",
                &v,
                "JSON text of frame → image path",
            )));
        }
    }
    read_masks(&mut scene, &get, &flag, &number, allow, &mut warnings).map_err(err)?;
    if let Some(b) = flag("enable_perspective_flip")? {
        scene.motion.enable_perspective_flip = b;
    }
    // Camera Shakify (Forge Deforum): off where the file has no `shake_name` (other Deforums)
    match get("shake_name") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => scene.motion.shake.name = s.trim().to_string(),
        Some(v) => {
            return Err(err(bad(
                "shake_name",
                &v,
                "a camera shake's name (a string; \"None\" for none)",
            )));
        }
    }
    if let Some(x) = number("shake_intensity", "a number within 0..=3")? {
        scene.motion.shake.intensity = x;
    }
    if let Some(x) = number("shake_speed", "a number above 0, at most 3")? {
        scene.motion.shake.speed = x;
    }
    if let Some(v) = get("noise_type") {
        // Deforum writes these in lower case; other cases are read as the same names
        let lower = match &v {
            Value::String(s) => Value::String(s.to_lowercase()),
            other => other.clone(),
        };
        let table: Vec<(&str, &str)> = NOISE_TYPES.iter().map(|n| (*n, *n)).collect();
        scene.noise.noise_type = choose("noise_type", &lower, &table).map_err(err)?.into();
    }
    if let Some(n) = number("perlin_octaves", "a whole number of octaves")? {
        if n < 1.0 || n.fract() != 0.0 {
            return Err(err(format!(
                "`perlin_octaves` = {n}: a whole number of octaves, at least 1"
            )));
        }
        scene.noise.perlin_octaves = n.min(u32::MAX as f64) as u32;
    }
    if let Some(n) = number("perlin_persistence", "a number (Deforum's default is 0.5)")? {
        scene.noise.perlin_persistence = n;
    }
    if let Some(v) = get("fps") {
        scene.output.fps = as_f64(&v)
            .filter(|f| *f > 0.0)
            .ok_or_else(|| err(bad("fps", &v, "a positive number")))?;
    }
    if let Some(b) = flag("make_gif")? {
        scene.output.gif = b;
    }
    let soundtrack = match get("add_soundtrack") {
        Some(v) => choose(
            "add_soundtrack",
            &v,
            &[
                ("None", "None"),
                ("File", "File"),
                ("Init Video", "Init Video"),
            ],
        )
        .map_err(err)?,
        None => "None",
    };
    let soundtrack_path = path_text("soundtrack_path")?;
    match (soundtrack, soundtrack_path) {
        ("File", Some(p)) if is_url(&p) => unsupported(
            allow,
            &mut warnings,
            &format!("`soundtrack_path` = \"{p}\" is a URL; anim reads local files only"),
            "download it and set `soundtrack_path` to the file's path",
            "render without a soundtrack",
        )
        .map_err(err)?,
        ("File", Some(p)) => scene.output.soundtrack = Some(p.into()),
        ("File", None) => {
            return Err(err(
                "`add_soundtrack` = \"File\" needs `soundtrack_path`: the path of an audio file"
                    .into(),
            ));
        }
        ("Init Video", _) => unsupported(
            allow,
            &mut warnings,
            "`add_soundtrack` = \"Init Video\" is not implemented in anim",
            "set `add_soundtrack` to \"File\" and `soundtrack_path` to the video file",
            "render without a soundtrack",
        )
        .map_err(err)?,
        _ => {}
    }
    if let Some(b) = flag("skip_video_creation")? {
        scene.output.video = !b;
    }
    // post passes (Deforum's output tab) and the webui's subtitle options when present
    let post = &mut scene.post;
    if let Some(v) = get("frame_interpolation_engine") {
        let table: Vec<(&str, &str)> = super::INTERPOLATION_ENGINES
            .iter()
            .map(|n| (*n, *n))
            .collect();
        post.frame_interpolation_engine = choose("frame_interpolation_engine", &v, &table)
            .map_err(err)?
            .to_string();
    }
    for (k, slot) in [
        (
            "frame_interpolation_x_amount",
            &mut post.frame_interpolation_x_amount,
        ),
        (
            "frame_interpolation_slow_mo_amount",
            &mut post.frame_interpolation_slow_mo_amount,
        ),
    ] {
        if let Some(n) = number(k, "a whole number within 2..=10")? {
            if !(2.0..=10.0).contains(&n) || n.fract() != 0.0 {
                return Err(err(format!("`{k}` = {n}: a whole number within 2..=10")));
            }
            *slot = n as u32;
        }
    }
    for (k, slot) in [
        (
            "frame_interpolation_slow_mo_enabled",
            &mut post.frame_interpolation_slow_mo_enabled,
        ),
        (
            "frame_interpolation_keep_imgs",
            &mut post.frame_interpolation_keep_imgs,
        ),
        (
            "frame_interpolation_use_upscaled",
            &mut post.frame_interpolation_use_upscaled,
        ),
        ("r_upscale_video", &mut post.r_upscale_video),
        ("r_upscale_keep_imgs", &mut post.r_upscale_keep_imgs),
        ("deforum_save_gen_info_as_srt", &mut scene.output.subtitles),
        ("deforum_embed_srt", &mut scene.output.embed_subtitles),
    ] {
        if let Some(b) = flag(k)? {
            *slot = b;
        }
    }
    if let Some(v) = get("r_upscale_factor") {
        let table: Vec<(&str, &str)> = super::UPSCALE_FACTORS.iter().map(|n| (*n, *n)).collect();
        post.r_upscale_factor = choose("r_upscale_factor", &v, &table)
            .map_err(err)?
            .to_string();
    }
    if let Some(m) = path_text("r_upscale_model")? {
        post.r_upscale_model = m;
    }
    match get("deforum_save_gen_info_as_srt_params") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            scene.output.subtitle_params = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(err(bad(
                        "deforum_save_gen_info_as_srt_params",
                        other,
                        "a parameter's label (a string)",
                    ))),
                })
                .collect::<Result<_, _>>()?;
        }
        Some(v) => {
            return Err(err(bad(
                "deforum_save_gen_info_as_srt_params",
                &v,
                "a list of parameter labels",
            )));
        }
    }

    // schedules, with Deforum's enable switches
    for def in registry::SCHEDULES {
        let enabled = match def.enabled_by {
            Some((switch, _)) => flag(switch)?.unwrap_or(switch_default(switch)),
            None => true,
        };
        let value = if enabled {
            // the base setting the switch sets aside is Deforum's own, not an unknown key
            if matches!(def.name, "steps" | "sampler") {
                used.borrow_mut().push(def.name.to_string());
            }
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
                    .map(|v| {
                        as_f64(&v)
                            .map(ScheduleText::Number)
                            .ok_or_else(|| err(bad("steps", &v, "a number of steps")))
                    })
                    .transpose()?,
                ("sampler", _) => match get("sampler") {
                    Some(Value::String(s)) => Some(ScheduleText::Text(s)),
                    Some(v @ Value::Number(_)) => {
                        unsupported(
                            allow,
                            &mut warnings,
                            &format!("`sampler` = {v} is an old sampler index"),
                            "write the sampler's name instead (e.g. \"Euler a\")",
                            "render with \"Euler a\"",
                        )
                        .map_err(err)?;
                        None
                    }
                    Some(v) => return Err(err(bad("sampler", &v, "a sampler name"))),
                    None => None,
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
                "hybrid" => scene.hybrid.schedule_mut(def.key),
                "looper" => scene.looper.schedule_mut(def.key),
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
    if flag("aspect_ratio_use_old_formula")?.unwrap_or(false) {
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
        let on = flag(&format!("cn_{i}_enabled"))?.unwrap_or(false);
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
    let mut not_implemented: Vec<&str> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    let mut out_of_scope: Vec<String> = Vec::new();
    for k in map.keys() {
        if used.iter().any(|u| u == k) {
            continue;
        }
        if let Some((_, why)) = OUT_OF_SCOPE.iter().find(|(f, _)| f == k) {
            out_of_scope.push(format!("{k} ({why})"));
        } else if NO_EFFECT.contains(&k.as_str()) {
            ignored.push(k);
        } else if UNIMPLEMENTED_KEYS.contains(&k.as_str())
            || UNIMPLEMENTED_FEATURES.iter().any(|(f, _)| f == k)
        {
            not_implemented.push(k);
        } else {
            unknown.push(k);
        }
    }
    // a key close to a known one is a misspelling, not a setting of another Deforum version
    let known = || {
        used.iter()
            .map(String::as_str)
            .chain(NO_EFFECT.iter().copied())
            .chain(UNIMPLEMENTED_KEYS.iter().copied())
            .chain(UNIMPLEMENTED_FEATURES.iter().map(|(f, _)| *f))
            .chain(OUT_OF_SCOPE.iter().map(|(f, _)| *f))
    };
    for k in &unknown {
        let near = known()
            .map(|c| {
                (
                    strsim::jaro_winkler(&k.to_lowercase(), &c.to_lowercase()),
                    c,
                )
            })
            .filter(|(score, _)| *score >= 0.9)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, c)) = near {
            unsupported(
                allow,
                &mut warnings,
                &format!("unknown setting `{k}`, did you mean `{c}`?"),
                &format!("rename it to `{c}` (or remove it)"),
                "ignore it",
            )
            .map_err(err)?;
        }
    }
    if !not_implemented.is_empty() {
        warnings.push(format!(
            "not supported yet, ignored ({}): {}",
            not_implemented.len(),
            not_implemented.join(", ")
        ));
    }
    if !out_of_scope.is_empty() {
        warnings.push(format!(
            "out of anim's scope, ignored ({}): {}",
            out_of_scope.len(),
            out_of_scope.join("; ")
        ));
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "unknown settings (not Deforum's, or of a Deforum version anim does not know), ignored ({}): {}",
            unknown.len(),
            unknown.join(", ")
        ));
    }
    if !ignored.is_empty() {
        warnings.push(format!(
            "no effect in anim ({}): {}",
            ignored.len(),
            ignored.join(", ")
        ));
    }
    scene.warnings = warnings;
    scene.validate().map_err(|m| err(with_deforum_name(m)))?;
    let warnings = scene.warnings.clone();
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
        ("output", "subtitles", "deforum_save_gen_info_as_srt"),
        ("output", "embed_subtitles", "deforum_embed_srt"),
        (
            "output",
            "subtitle_params",
            "deforum_save_gen_info_as_srt_params",
        ),
        ("motion", "shake.name", "shake_name"),
        ("motion", "shake.intensity", "shake_intensity"),
        ("motion", "shake.speed", "shake_speed"),
        ("parseq", "manifest", "parseq_manifest"),
        ("parseq", "use_deltas", "parseq_use_deltas"),
        (
            "parseq",
            "non_schedule_overrides",
            "parseq_non_schedule_overrides",
        ),
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
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        deforum_name(table, key.trim_end_matches('.'))
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
    read_file_with(settings, ReadOptions::default())
}

/// [`read_file`] with options (`--allow-unsupported`).
///
/// # Errors
/// As [`read_file`].
pub fn read_file_with(settings: &Path, opts: ReadOptions) -> anyhow::Result<(Scene, Vec<String>)> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(settings)
        .with_context(|| format!("cannot read {}", settings.display()))?;
    Ok(from_settings_with(&text, settings, opts)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str, allow: bool) -> Result<(Scene, Vec<String>), String> {
        let opts = ReadOptions {
            allow_unsupported: allow,
        };
        from_settings_with(json, Path::new("s.json"), opts).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_values_and_wrong_types_are_errors() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"animation_mode": "4D"}"#,
                &["s.json", "`animation_mode` = \"4D\"", "accepted: 2D, 3D"],
            ),
            (r#"{"animation_mode": "3d"}"#, &["did you mean `3D`"]),
            (
                r#"{"animation_mode": 2}"#,
                &["`animation_mode` = 2", "a string"],
            ),
            (r#"{"color_coherence": "Lab"}"#, &["did you mean `LAB`"]),
            (r#"{"border": "mirror"}"#, &["`border`", "replicate, wrap"]),
            (
                r#"{"noise_type": "gauss"}"#,
                &["`noise_type`", "perlin, uniform"],
            ),
            (r#"{"seed_behavior": "iterat"}"#, &["did you mean `iter`"]),
            (
                r#"{"add_soundtrack": "Mic"}"#,
                &["`add_soundtrack`", "Init Video"],
            ),
            (
                r#"{"use_depth_warping": "maybe"}"#,
                &["`use_depth_warping`", "true or false"],
            ),
            (r#"{"perlin_octaves": "four"}"#, &["`perlin_octaves`"]),
            (r#"{"steps": "many"}"#, &["`steps`", "number"]),
            (
                r#"{"animation_mode": "Video Input"}"#,
                &["`video_init_path`"],
            ),
            (r#"{"add_soundtrack": "File"}"#, &["`soundtrack_path`"]),
        ];
        for (json, needles) in cases {
            let e = read(json, false).unwrap_err();
            for n in *needles {
                assert!(e.contains(n), "{json}: error lacks {n:?}: {e}");
            }
        }
    }

    #[test]
    fn hybrid_keys_map_to_the_hybrid_table() {
        use crate::scene::{HybridEqualize, HybridMaskType};
        let (s, _) = read(
            r#"{"animation_mode": "2D", "video_init_path": "clip.mp4", "extract_nth_frame": 2,
                "hybrid_composite": "Before Motion", "hybrid_comp_mask_type": "Difference",
                "hybrid_comp_mask_inverse": true, "hybrid_comp_mask_equalize": "Both",
                "hybrid_comp_mask_auto_contrast": true, "hybrid_comp_alpha_schedule": "0:(0.7)",
                "hybrid_comp_mask_auto_contrast_cutoff_low_schedule": "0:(5.9)",
                "hybrid_motion": "Perspective", "hybrid_flow_method": "DIS Fine",
                "hybrid_consistency_blur": 3, "hybrid_use_first_frame_as_init_image": false,
                "hybrid_generate_inputframes": true}"#,
            false,
        )
        .unwrap();
        let h = &s.hybrid;
        assert_eq!(h.composite, HybridComposite::BeforeMotion);
        assert_eq!(h.comp_mask_type, HybridMaskType::Difference);
        assert_eq!(h.comp_mask_equalize, HybridEqualize::Both);
        assert!(
            h.comp_mask_inverse && h.comp_mask_auto_contrast && !h.use_first_frame_as_init_image
        );
        assert_eq!(h.motion, HybridMotion::Perspective);
        assert_eq!(h.flow_method, "DIS Fine");
        assert_eq!(h.consistency_blur, 3);
        assert_eq!(h.extract_nth_frame, 2);
        assert_eq!(h.video_init_path.as_deref(), Some(Path::new("clip.mp4")));
        let f = s.frame_schedules().unwrap();
        assert_eq!(f.at(0).hybrid_comp_alpha, 0.7);
        assert_eq!(f.at(0).hybrid_comp_mask_auto_contrast_cutoff_low, 5.9);
        // an old file's boolean composite is "Normal"
        let (s, _) = read(
            r#"{"video_init_path": "clip.mp4", "hybrid_composite": true}"#,
            false,
        )
        .unwrap();
        assert_eq!(s.hybrid.composite, HybridComposite::Normal);
        // outside 2D/3D hybrid video is off, with a warning
        let (s, w) = read(
            r#"{"animation_mode": "None", "video_init_path": "clip.mp4", "hybrid_composite": "Normal"}"#,
            false,
        )
        .unwrap();
        assert_eq!(s.hybrid.composite, HybridComposite::None);
        assert!(w.iter().any(|w| w.contains("2D and 3D")), "{w:?}");
        let e = read(r#"{"hybrid_comp_mask_type": "Depthh"}"#, false).unwrap_err();
        assert!(
            e.contains("hybrid_comp_mask_type") && e.contains("Depth"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_values_need_the_flag_and_then_take_their_fallback() {
        let cases: &[(&str, &str)] = &[
            (r#"{"hybrid_motion": "Optical Flow"}"#, "`hybrid_motion`"),
            (r#"{"hybrid_generate_human_masks": "PNGs"}"#, "human masks"),
            (r#"{"parseq_manifest": "https://x/m.json"}"#, "Parseq"),
            (r#"{"sampler": 3}"#, "sampler index"),
            (r#"{"zom": "0:(1.1)"}"#, "did you mean `zoom`"),
            (r#"{"add_soundtrack": "Init Video"}"#, "`add_soundtrack`"),
            (
                r#"{"animation_mode": "Video Input", "video_init_path": "https://x/v.mp4"}"#,
                "URL",
            ),
            (
                r#"{"use_init": true, "init_image": "http://x/i.png"}"#,
                "URL",
            ),
        ];
        for (json, needle) in cases {
            let e = read(json, false).unwrap_err();
            assert!(
                e.contains(needle) && e.contains("--allow-unsupported"),
                "{json}: {e}"
            );
            let (_, warnings) = read(json, true).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(needle) && w.contains("--allow-unsupported")),
                "{json}: {warnings:?}"
            );
        }
        let (s, _) = read(
            r#"{"animation_mode": "Video Input", "video_init_path": "https://x/v.mp4"}"#,
            true,
        )
        .unwrap();
        assert_eq!(s.animation.mode, AnimationMode::TwoD);
        let (s, _) = read(r#"{"sampler": 3}"#, true).unwrap();
        assert_eq!(s.generation.sampler, ScheduleText::text("Euler a"));
        // `steps` and `sampler` set aside by their schedules' switches are Deforum's keys
        let (_, w) = read(
            r#"{"steps": 20, "sampler": "Euler", "enable_steps_scheduling": true,
                "enable_sampler_scheduling": true}"#,
            false,
        )
        .unwrap();
        assert!(!w.iter().any(|w| w.contains("unknown")), "{w:?}");
        // off values and a URL nothing uses are no errors; far unknown keys are warnings
        let (_, warnings) = read(
            r#"{"hybrid_motion": "None", "use_mask": false, "parseq_manifest": "",
                "video_init_path": "https://x/v.mp4", "some_future_setting": 1}"#,
            false,
        )
        .unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("unknown settings") && w.contains("some_future_setting")),
            "{warnings:?}"
        );
    }
}
