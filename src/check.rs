//! `anim validate`: every check of a read scene short of rendering it (init image, schedules,
//! camera, render settings, noise, depth model, model folder layout and frame size).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::scene::{AnimationMode, Scene};

/// What [`check`] found in a scene that passed every check.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scene file.
    pub path: PathBuf,
    /// Frame width and height in pixels.
    pub size: (u32, u32),
    /// Number of frames.
    pub frames: usize,
    /// Frames per second of the video.
    pub fps: f64,
    /// The animation mode.
    pub mode: AnimationMode,
    /// The sampler as written (a name or a keyframe string of names).
    pub sampler: String,
    /// Number of numeric schedules.
    pub schedules: usize,
    /// Things the user may want to know that are not errors (e.g. no model folder).
    pub notes: Vec<String>,
}

impl fmt::Display for Report {
    /// The summary line: `scene.toml: ok — 512x512, 120 frames at 15 fps, …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ok — {}x{}, {} frames at {} fps, mode {}, sampler {}, {} schedules",
            self.path.display(),
            self.size.0,
            self.size.1,
            self.frames,
            self.fps,
            self.mode,
            self.sampler,
            self.schedules
        )
    }
}

/// Checks a read scene against everything a render would refuse before frame 0: the init image
/// reads, the schedules evaluate, the camera forms, the render settings and the noise fit, the
/// depth model exists in 3D mode, and the model folder (`model`, else the scene's `[model]
/// folder`) has the optimum/diffusers ONNX layout and takes the frame size.
///
/// # Errors
/// The first check that fails, naming the scene file and the setting.
pub fn check(scene: &Scene, model: Option<&Path>) -> Result<Report> {
    let path = &scene.path;
    let at = |e: String| anyhow!("{}: {e}", path.display());
    if let Some(p) = &scene.init.image {
        let full = scene.resolve(p);
        crate::output::read_rgb(&full)
            .with_context(|| format!("{}: [init] image", path.display()))?;
    }
    let sched = scene.frame_schedules().map_err(at)?;
    crate::camera::check(scene, &sched).map_err(|e| at(e.to_string()))?;
    crate::render::check_settings(scene)?;
    scene.check_noise(&sched).map_err(at)?;
    crate::controlnet::check(scene, &sched)?;
    let uses_video = scene.animation.mode == AnimationMode::VideoInput
        || scene.coherence.color_coherence == crate::scene::ColorCoherence::VideoInput;
    if let (true, Some(v)) = (uses_video, &scene.video_input.video_init_path) {
        let video = scene.resolve(v);
        if !video.is_file() {
            bail!(
                "{}: [video_input] video_init_path: {} does not exist",
                path.display(),
                video.display()
            );
        }
        crate::output::probe_video(&video)
            .with_context(|| format!("{}: [video_input] video_init_path", path.display()))?;
    }
    if let (AnimationMode::ThreeD, Some(m)) = (scene.animation.mode, &scene.depth.model) {
        let p = scene.resolve(m);
        let file = if p.is_dir() { p.join("model.onnx") } else { p };
        if !file.is_file() {
            bail!(
                "{}: [depth] model: {} does not exist (a .onnx file, or a folder holding model.onnx)",
                path.display(),
                file.display()
            );
        }
    }
    let mut notes = Vec::new();
    if let (Some(a), Some(s)) = (scene.audio_features(), &scene.audio) {
        let beats = a.beat_times.iter().filter(|t| **t >= 0.0).count();
        notes.push(format!(
            "[audio] {}: {:.1} BPM{}, {beats} beats{}",
            s.file.display(),
            a.bpm,
            if s.bpm.is_some() {
                " (set)"
            } else {
                " (estimated)"
            },
            if scene.output.soundtrack.is_none() {
                "; also the soundtrack"
            } else {
                ""
            }
        ));
    }
    if let Err(e) = scene.checked_output_folder() {
        notes.push(format!(
            "{}; `anim render` and `anim preview` need --out DIR for this scene",
            e.message
        ));
    }
    let folder = model
        .map(Path::to_path_buf)
        .or_else(|| scene.model.folder.as_ref().map(|f| scene.resolve(f)));
    match folder {
        Some(folder) => {
            if let Some(missing) = missing_model_part(&folder) {
                bail!(
                    "{}: {}: {} is missing (expected the optimum/diffusers ONNX layout)",
                    path.display(),
                    if model.is_some() {
                        "--model"
                    } else {
                        "[model] folder"
                    },
                    missing.display()
                );
            }
            crate::render::check_model_size(scene, &folder)?;
            let cpu = crate::diffusion::SessionOptions {
                device: crate::diffusion::Device::Cpu,
                ..Default::default()
            };
            crate::render::check_controlnets(scene, &folder, &cpu)?;
        }
        None => notes.push(
            "no [model] folder: `anim preview` works, `anim render` needs one (or --model DIR)"
                .to_string(),
        ),
    }
    Ok(Report {
        path: path.clone(),
        size: (scene.image.width, scene.image.height),
        frames: scene.animation.max_frames,
        fps: scene.output.fps,
        mode: scene.animation.mode,
        sampler: scene.generation.sampler.to_string(),
        schedules: sched.columns().numeric().len(),
        notes,
    })
}

/// The first file or folder of the optimum/diffusers ONNX layout that `folder` lacks (SDXL's
/// `text_encoder_2/` and `tokenizer_2/` included; its refiner has them instead of the first pair).
pub fn missing_model_part(folder: &Path) -> Option<PathBuf> {
    let sdxl = folder.join("text_encoder_2/model.onnx").is_file();
    let first = !sdxl || folder.join("text_encoder").exists();
    let mut parts = vec![
        "model_index.json",
        "scheduler/scheduler_config.json",
        "unet/model.onnx",
        "vae_encoder/model.onnx",
        "vae_decoder/model.onnx",
    ];
    if first {
        parts.extend(["tokenizer", "text_encoder/model.onnx"]);
    }
    if sdxl {
        parts.push("tokenizer_2");
    }
    parts
        .into_iter()
        .map(|part| folder.join(part))
        .find(|p| !p.exists())
}
