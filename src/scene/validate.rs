//! Range checks of a scene: the limits, the checks made when a scene is read
//! (`Scene::validate`) and those of its evaluated schedules.

use std::sync::Arc;

use super::prompts::expand_prompt_math;
use super::{
    AnimationMode, ColorCoherence, Evaluated, FrameSchedules, HybridComposite, HybridMaskType,
    HybridMotion, INTERPOLATION_ENGINES, Scene, ScheduleText, UPSCALE_FACTORS, nearest_value,
    sampler_fallback, sampler_name, unknown_value,
};
use crate::schedule::StringSchedule;

/// The most frames one scene may have (every schedule holds a value per frame).
pub const MAX_FRAMES: usize = 1_000_000;
/// The largest frame side in pixels.
pub const MAX_SIDE: u32 = 8192;
/// The largest diffusion cadence (Deforum's slider: 1 to 50).
pub const MAX_CADENCE: usize = 50;

/// The most redo generations per frame (Deforum's slider: 0 to 50).
pub const MAX_REDO: usize = 50;

/// Checks an optical-flow cadence or redo setting: `None` (off) or one of [`FLOW_METHODS`] (case, `-`, `_` and
/// spaces ignored, so the CLI's `dis-medium` is accepted too); `Ok(false)` for `None`.
///
/// # Errors
/// Any other text, with the names that are accepted.
pub fn flow_choice(text: &str) -> Result<bool, String> {
    let key = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    if key(text) == "none" {
        return Ok(false);
    }
    if FLOW_METHODS.iter().any(|m| key(m) == key(text)) {
        return Ok(true);
    }
    Err(format!(
        "unknown flow method {text:?}; use \"None\" (off) or one of {}",
        FLOW_METHODS
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
/// The largest seed: A1111 and Deforum draw and show seeds in `0..=2^32 - 1`; `-1` asks for a
/// random one.
pub const MAX_SEED: i64 = u32::MAX as i64;

/// x264/x265 presets, fastest first.
pub const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// Video encoders of the mp4 (`[output] codec`).
pub const CODECS: &[&str] = &["libx264", "libx265"];

/// Pixel formats suggested for `[output] pixel_format` (any FFmpeg name is accepted).
pub const PIXEL_FORMATS: &[&str] = &[
    "yuv420p",
    "yuv422p",
    "yuv444p",
    "yuv420p10le",
    "yuv422p10le",
    "yuv444p10le",
    "yuvj420p",
    "nv12",
    "gray",
];

/// Noise types (`[noise] noise_type`, Deforum's `noise_type`).
pub const NOISE_TYPES: &[&str] = &["perlin", "uniform"];

/// The largest `[mask] mask_overlay_blur` (a Gaussian sigma in pixels; A1111's kernel is
/// `2·int(2.5σ + 0.5) + 1` wide).
pub const MAX_MASK_BLUR: u32 = 64;
/// The largest `[mask] full_res_mask_padding`, in pixels (the largest frame side).
pub const MAX_MASK_PADDING: u32 = 8192;
/// Flow methods of `[hybrid] flow_method` (Deforum's `hybrid_flow_method` names).
pub const FLOW_METHODS: &[&str] = &["RAFT", "DIS Medium", "DIS Fine", "Farneback"];

/// The largest `[hybrid] consistency_blur` (a Gaussian sigma in pixels; its kernel reaches
/// `round(sigma)` pixels each way).
pub const MAX_CONSISTENCY_BLUR: u32 = 64;

/// A scheduled seed `-1` (random) or within `0..=MAX_SEED`, as A1111 takes them.
fn check_seed(key: &str, x: f64) -> Result<(), String> {
    if x == -1.0 || (x >= 0.0 && x <= MAX_SEED as f64 && x.fract() == 0.0) {
        return Ok(());
    }
    Err(format!(
        "{key} = {x}: a seed is -1 (random) or a whole number within 0..={MAX_SEED}, as A1111 takes them"
    ))
}

/// The most Perlin octaves a frame of `width` x `height` can hold: the noise is drawn at the size
/// floored to a multiple of 64, and the finest octave's grid (8 cells at the first octave,
/// doubling each octave) must not have more cells than that size's longer side has pixels (the
/// grid's gradients take memory with the square of its cells).
pub fn max_perlin_octaves(width: u32, height: u32) -> u32 {
    let floor64 = |v: u32| (v - v % 64).max(64.min(v));
    let side = floor64(width).max(floor64(height)).max(1);
    let mut octaves = 1;
    while 8u64 << octaves <= u64::from(side) {
        octaves += 1;
    }
    octaves
}

impl Scene {
    /// Checks every key and range, evaluates the schedules (kept for
    /// [`Scene::frame_schedules`]) and expands the prompts' math once.
    pub(crate) fn validate(&mut self) -> Result<(), String> {
        // first: with its overrides, the manifest sets max_frames, fps and cadence
        self.load_parseq()?;
        let (w, h) = (self.image.width, self.image.height);
        for (name, v) in [("width", w), ("height", h)] {
            if v > MAX_SIDE {
                return Err(format!(
                    "[image] {name} = {v}: at most {MAX_SIDE} pixels (Stable Diffusion models are \
                     trained at 512 to 1024; upscale the frames afterwards for larger video)"
                ));
            }
            if v == 0 || v % 8 != 0 {
                let lo = (v / 8 * 8).max(8);
                return Err(format!(
                    "[image] {name} = {v}: must be a positive multiple of 8 (try {lo} or {})",
                    lo + 8
                ));
            }
        }
        if self.animation.max_frames == 0 {
            return Err("[animation] max_frames = 0: render at least 1 frame".into());
        }
        if self.animation.max_frames > MAX_FRAMES {
            return Err(format!(
                "[animation] max_frames = {}: at most {MAX_FRAMES} frames in one scene (every schedule \
                 holds a value per frame); split a longer animation into several scenes",
                self.animation.max_frames
            ));
        }
        if !(self.output.fps > 0.0 && self.output.fps.is_finite()) {
            return Err(format!(
                "[output] fps = {}: must be a positive number",
                self.output.fps
            ));
        }
        if self.animation.mode == AnimationMode::VideoInput
            && self.video_input.video_init_path.is_none()
        {
            return Err("[animation] mode = \"Video Input\" needs [video_input] video_init_path = \"path/to/video.mp4\"".into());
        }
        if let Some(shake) = self.motion.shake.shake()?
            && self.animation.mode != AnimationMode::ThreeD
        {
            let (key, mode) = if self.from_deforum {
                ("`shake_name`", "`animation_mode`")
            } else {
                ("[motion] shake", "[animation] mode")
            };
            self.warn(format!(
                "{key} = \"{}\": the camera shake moves the 3D camera only; {mode} = \"{}\" \
                 renders without it (as Deforum)",
                shake.name, self.animation.mode
            ));
        }
        if self.cadence.diffusion_cadence == 0 {
            return Err("[cadence] diffusion_cadence = 0: use 1 to diffuse every frame".into());
        }
        if self.cadence.diffusion_cadence > MAX_CADENCE {
            return Err(format!(
                "[cadence] diffusion_cadence = {}: at most {MAX_CADENCE} (Deforum's range; the \
                 frames between two diffused frames are held in memory)",
                self.cadence.diffusion_cadence
            ));
        }
        for (key, v) in [
            (
                "[cadence] optical_flow_cadence",
                &self.cadence.optical_flow_cadence,
            ),
            (
                "[cadence] optical_flow_redo_generation",
                &self.cadence.optical_flow_redo_generation,
            ),
        ] {
            if let Err(e) = flow_choice(v) {
                return Err(format!("{key}: {e}"));
            }
        }
        if self.cadence.diffusion_redo > MAX_REDO {
            return Err(format!(
                "[cadence] diffusion_redo = {}: at most {MAX_REDO} (Deforum's range; each redo is \
                 one more full generation per frame)",
                self.cadence.diffusion_redo
            ));
        }
        // counts that divide: 0 makes Deforum fail with a division by zero; anim says so
        for (key, v) in [
            (
                "[generation] seed_iter_N",
                self.generation.seed_iter_N as usize,
            ),
            (
                "[coherence] color_coherence_video_every_N_frames",
                self.coherence.color_coherence_video_every_N_frames,
            ),
            (
                "[video_input] extract_nth_frame",
                self.video_input.extract_nth_frame,
            ),
            ("[model] cache_size", self.model.cache_size),
        ] {
            if v == 0 {
                return Err(format!("{key} = 0: must be at least 1"));
            }
        }
        if self.video_input.extract_to_frame < -1 {
            return Err(format!(
                "[video_input] extract_to_frame = {}: -1 (to the end) or a frame number",
                self.video_input.extract_to_frame
            ));
        }
        self.check_hybrid()?;
        self.check_looper()?;
        self.check_mask()?;
        if !self.output.soundtrack_offset.is_finite() {
            return Err(format!(
                "[output] soundtrack_offset = {}: must be a finite number of seconds",
                self.output.soundtrack_offset
            ));
        }
        let seed = self.generation.seed;
        if seed != -1 && !(0..=MAX_SEED).contains(&seed) {
            return Err(format!(
                "[generation] seed = {seed}: a seed is -1 (random) or a whole number within \
                 0..={MAX_SEED}, as A1111 takes them"
            ));
        }
        if !self.noise.perlin_persistence.is_finite() {
            return Err(format!(
                "[noise] perlin_persistence = {}: must be a finite number (Deforum's default is 0.5)",
                self.noise.perlin_persistence
            ));
        }
        if self.depth.input_size > MAX_SIDE {
            return Err(format!(
                "[depth] input_size = {}: at most {MAX_SIDE} pixels",
                self.depth.input_size
            ));
        }
        if !PRESETS.contains(&self.output.preset.as_str()) {
            return Err(unknown_value(
                "[output] preset",
                &self.output.preset,
                PRESETS,
            ));
        }
        if !CODECS.contains(&self.output.codec.as_str()) {
            return Err(format!(
                "{} (gif and webm have their own switches)",
                unknown_value("[output] codec", &self.output.codec, CODECS)
            ));
        }
        if self
            .output
            .pixel_format
            .parse::<ffmpeg_next::format::Pixel>()
            .is_err()
        {
            return Err(format!(
                "[output] pixel_format = \"{}\": not a pixel format FFmpeg knows{}; common ones: {}",
                self.output.pixel_format,
                nearest_value(&self.output.pixel_format, PIXEL_FORMATS.iter().copied()),
                PIXEL_FORMATS.join(", ")
            ));
        }
        if self.coherence.color_coherence == ColorCoherence::VideoInput
            && self.video_input.video_init_path.is_none()
        {
            return Err(
                "[coherence] color_coherence = \"Video Input\" needs [video_input] video_init_path"
                    .into(),
            );
        }
        if self.coherence.color_coherence == ColorCoherence::Image
            && self.coherence.color_coherence_image_path.is_none()
        {
            return Err(
                "[coherence] color_coherence = \"Image\" needs color_coherence_image_path".into(),
            );
        }
        if !NOISE_TYPES.contains(&self.noise.noise_type.as_str()) {
            return Err(unknown_value(
                "[noise] noise_type",
                &self.noise.noise_type,
                NOISE_TYPES,
            ));
        }
        self.validate_post()?;
        if self.output.crf > 51 {
            return Err(format!(
                "[output] crf = {}: must be 0..=51",
                self.output.crf
            ));
        }
        if !(0.0..=1.0).contains(&self.init.strength) {
            return Err(format!(
                "[init] strength = {}: must be within 0..=1",
                self.init.strength
            ));
        }
        if !(0.0..=1.0).contains(&self.depth.midas_weight) {
            return Err(format!(
                "[depth] midas_weight = {}: must be within 0..=1",
                self.depth.midas_weight
            ));
        }
        if self.depth.input_size < 14 {
            return Err(format!(
                "[depth] input_size = {}: must be at least 14 pixels",
                self.depth.input_size
            ));
        }
        if self.depth.multiple_of == 0 || self.depth.multiple_of > self.depth.input_size {
            return Err(format!(
                "[depth] multiple_of = {}: must be within 1..=input_size ({}); 14 for \
                 Depth-Anything, 32 for MiDaS DPT",
                self.depth.multiple_of, self.depth.input_size
            ));
        }
        for name in self.variables.keys() {
            let builtin = crate::schedule::VARIABLES.contains(&name.as_str())
                || ["pi", "e"].contains(&name.as_str());
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            if builtin
                || !valid
                || crate::schedule::expr::FUNCTIONS
                    .iter()
                    .any(|(f, _)| f == name)
            {
                return Err(format!(
                    "[variables] {name}: not usable as a variable name (built-in name or not an identifier)"
                ));
            }
        }
        if self.audio.is_some() {
            for name in self.variables.keys() {
                if crate::audio::VARIABLES.contains(&name.as_str()) {
                    return Err(format!(
                        "[variables] {name}: the [audio] analysis defines `{name}`; rename the variable"
                    ));
                }
            }
        }
        self.analyse_audio()?;
        let ctx = self.context();
        for (key, text) in &self.prompts {
            key.trim().parse::<usize>().map_err(|_| {
                format!("[prompts] key \"{key}\": must be a frame number such as \"0\" or \"30\"")
            })?;
            let _ = text;
        }
        self.evaluated = None;
        if self.allow_unsupported {
            for (name, fallback, frame) in self.unimplemented_samplers(&ctx)? {
                self.warn(format!(
                    "[generation] sampler = \"{name}\" (from frame {frame}) is an A1111 sampler anim \
                     does not implement; rendered with {fallback} (--allow-unsupported)"
                ));
            }
        }
        let sched = self.schedules()?;
        let ctx = self.prompt_context(&ctx, Some(&sched), 0);
        for (key, text) in &self.prompts {
            expand_prompt_math(text, &ctx, 0).map_err(|e| format!("[prompts] \"{key}\": {e}"))?;
        }
        // kept for the render, unless the seed is random: a render resolves it first, and the
        // schedules (which may read `s`) are evaluated again with it
        if self.generation.seed != -1 {
            self.evaluated = Some(Arc::new(Evaluated {
                key: self.evaluation_key(),
                schedules: Arc::new(sched),
            }));
        }
        Ok(())
    }

    /// Whether hybrid video is on: a composite or a hybrid motion (Deforum's test).
    pub fn hybrid_active(&self) -> bool {
        self.hybrid.composite != HybridComposite::None || self.hybrid.motion != HybridMotion::None
    }

    /// The `[mask]` keys: finite adjustments, the blur and padding in range, parseable mask
    /// expressions.
    fn check_mask(&self) -> Result<(), String> {
        let m = &self.mask;
        for (k, v) in [
            ("mask_contrast_adjust", m.mask_contrast_adjust),
            ("mask_brightness_adjust", m.mask_brightness_adjust),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "[mask] {k} = {v}: must be a finite factor of at least 0 (1 leaves the mask as it is)"
                ));
            }
        }
        if m.mask_overlay_blur > MAX_MASK_BLUR {
            return Err(format!(
                "[mask] mask_overlay_blur = {}: must be within 0..={MAX_MASK_BLUR}",
                m.mask_overlay_blur
            ));
        }
        if m.full_res_mask_padding > MAX_MASK_PADDING {
            return Err(format!(
                "[mask] full_res_mask_padding = {}: must be within 0..={MAX_MASK_PADDING}",
                m.full_res_mask_padding
            ));
        }
        for (k, text) in [
            ("mask_schedule", &m.mask_schedule),
            ("noise_mask_schedule", &m.noise_mask_schedule),
        ] {
            crate::mask::MaskSchedule::parse(text).map_err(|e| format!("[mask] {k}: {e}"))?;
        }
        if m.use_mask_video && m.video.is_none() && m.video_mask_path.is_none() {
            return Err(if self.from_deforum {
                "`use_mask_video` = true needs `video_mask_path` (the mask video's file)".into()
            } else {
                "[mask] use_mask_video = true needs video_mask_path (the mask video's file), or \
                 set [mask] video = \"mask.mp4\""
                    .into()
            });
        }
        Ok(())
    }

    /// The `[hybrid]` keys and what they need (2D/3D, a video or the init image, a depth model
    /// for the depth masks).
    fn check_hybrid(&self) -> Result<(), String> {
        let h = &self.hybrid;
        let deforum = self.from_deforum;
        let key = |k: &str, d: &str| {
            if deforum {
                format!("`{d}`")
            } else {
                format!("[hybrid] {k}")
            }
        };
        if !FLOW_METHODS.contains(&h.flow_method.as_str()) {
            return Err(unknown_value(
                &key("flow_method", "hybrid_flow_method"),
                &h.flow_method,
                FLOW_METHODS,
            ));
        }
        if h.consistency_blur > MAX_CONSISTENCY_BLUR {
            return Err(format!(
                "{} = {}: must be within 0..={MAX_CONSISTENCY_BLUR}",
                key("consistency_blur", "hybrid_consistency_blur"),
                h.consistency_blur
            ));
        }
        if h.extract_nth_frame == 0 {
            return Err(format!(
                "{} = 0: must be at least 1",
                key("extract_nth_frame", "extract_nth_frame")
            ));
        }
        if h.extract_to_frame < -1 {
            return Err(format!(
                "{} = {}: -1 (to the end) or a frame number",
                key("extract_to_frame", "extract_to_frame"),
                h.extract_to_frame
            ));
        }
        if !self.hybrid_active() {
            return Ok(());
        }
        if !deforum
            && !matches!(
                self.animation.mode,
                AnimationMode::TwoD | AnimationMode::ThreeD
            )
        {
            return Err(format!(
                "[hybrid] composite = \"{}\", motion = \"{}\": hybrid video works with \
                 [animation] mode \"2D\" or \"3D\" (mode is \"{}\"); set both to \"none\" or change the mode",
                h.composite, h.motion, self.animation.mode
            ));
        }
        if h.use_init_image {
            if self.init.image.is_none() {
                return Err(format!(
                    "{} = true needs an init image ({})",
                    key("use_init_image", "hybrid_use_init_image"),
                    if deforum {
                        "`init_image` with `use_init`"
                    } else {
                        "[init] image"
                    }
                ));
            }
        } else if self.hybrid_video().is_none() {
            return Err(if deforum {
                "hybrid video needs `video_init_path`: the path of a local video file".into()
            } else {
                "[hybrid] composite or motion needs a video: [hybrid] video_init_path (or \
                 [video_input] video_init_path) = \"path/to/video.mp4\", or use_init_image = true"
                    .into()
            });
        }
        let depth_mask = matches!(
            h.comp_mask_type,
            HybridMaskType::Depth | HybridMaskType::VideoDepth
        );
        if h.composite != HybridComposite::None && depth_mask && self.depth.model.is_none() {
            return Err(format!(
                "{} = \"{}\" needs a depth model: set [depth] model = \"path/to/depth.onnx\"",
                key("comp_mask_type", "hybrid_comp_mask_type"),
                if h.comp_mask_type == HybridMaskType::Depth {
                    "depth"
                } else {
                    "video depth"
                }
            ));
        }
        Ok(())
    }

    /// The video of hybrid video: `[hybrid] video_init_path`, else `[video_input]`'s.
    pub fn hybrid_video(&self) -> Option<&std::path::Path> {
        self.hybrid
            .video_init_path
            .as_deref()
            .or(self.video_input.video_init_path.as_deref())
    }

    /// Adds a note for the user, once.
    pub(super) fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// The unimplemented samplers the sampler schedule names, as written: (name, fallback,
    /// first frame).
    fn unimplemented_samplers(
        &self,
        ctx: &crate::schedule::Context,
    ) -> Result<Vec<(String, &'static str, usize)>, String> {
        let values = match &self.generation.sampler {
            ScheduleText::Text(t) if StringSchedule::is_keyframed(t) => {
                StringSchedule::parse(t, ctx)
                    .map_err(|e| format!("[generation] sampler = \"{t}\": {e}"))?
                    .evaluate(ctx)
            }
            other => vec![other.to_string()],
        };
        let mut out: Vec<(String, &'static str, usize)> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if let Some((_, fallback)) = sampler_fallback(v)
                && !out.iter().any(|(n, _, _)| n == v)
            {
                out.push((v.clone(), fallback, i));
            }
        }
        Ok(out)
    }

    /// The per-frame ranges of evaluated schedules: steps, the anti-blur kernel, seeds and
    /// sampler names.
    pub(super) fn check_frames(&self, s: &FrameSchedules) -> Result<(), String> {
        let (w, h) = (self.image.width, self.image.height);
        let max_kernel = u64::from(w.min(h));
        let guides = self.looper_guides()?;
        for i in 0..s.frames() {
            let v = s.at(i);
            if !(1.0..=1000.0).contains(&v.steps) {
                return Err(format!(
                    "[generation] steps: {} at frame {i}; must be within 1..=1000",
                    v.steps
                ));
            }
            if !(0.0..=1.0).contains(&v.strength) {
                return Err(format!(
                    "[generation] strength: {} at frame {i}; must be within 0..=1 (the share of \
                     the previous frame kept)",
                    v.strength
                ));
            }
            let k = v.kernel;
            if v.amount > 0.0 && (k < 1.0 || k > max_kernel as f64 || (k as u64).is_multiple_of(2))
            {
                return Err(format!(
                    "[anti_blur] kernel is {k} at frame {i}: the Gaussian kernel size must be an \
                     odd number within 1..={max_kernel} (the frame's shorter side)"
                ));
            }
            if self.generation.seed_behavior == crate::seeds::SeedBehavior::Schedule {
                let key = format!("[generation] seed_schedule at frame {i}");
                check_seed(&key, v.seed.trunc())?;
            }
            check_seed(
                &format!("[generation] subseed at frame {i}"),
                v.subseed.trunc(),
            )?;
            if self.hybrid.composite != HybridComposite::None {
                self.check_hybrid_frame(i, &v)?;
            }
            if let Some(g) = &guides {
                self.check_looper_frame(i, &v, g)?;
            }
            sampler_name(v.sampler).map_err(|e| format!("{e} (frame {i})"))?;
        }
        Ok(())
    }

    /// A looper key's name as the user wrote it: `[looper] key`, or Deforum's name.
    fn looper_key(&self, key: &str, deforum: &str) -> String {
        if self.from_deforum {
            format!("`{deforum}`")
        } else {
            format!("[looper] {key}")
        }
    }

    /// The guide images of `[looper] init_images`, parsed (`None` when the looper is off).
    ///
    /// # Errors
    /// Bad JSON, keys or URLs, naming the key.
    pub fn looper_guides(&self) -> Result<Option<crate::looper::Guides>, String> {
        if !self.looper.use_looper {
            return Ok(None);
        }
        let frames = self.animation.max_frames;
        crate::looper::Guides::parse(&self.looper.init_images, frames)
            .map(Some)
            .map_err(|e| format!("{} {e}", self.looper_key("init_images", "init_images")))
    }

    /// `[looper]`: guide images that parse and exist, in a mode that carries frames over.
    fn check_looper(&self) -> Result<(), String> {
        let Some(guides) = self.looper_guides()? else {
            return Ok(());
        };
        if !matches!(
            self.animation.mode,
            AnimationMode::TwoD | AnimationMode::ThreeD | AnimationMode::None
        ) {
            return Err(format!(
                "{} is on in mode \"{}\": guided images blend the previous frame, so they work \
                 in 2D, 3D and None modes only",
                self.looper_key("use_looper", "use_looper"),
                self.animation.mode
            ));
        }
        for (k, img) in guides.frames().iter().zip(guides.images()) {
            let p = self.resolve(std::path::Path::new(img));
            if !p.is_file() {
                return Err(format!(
                    "{} key {k}: guide image {} not found (paths are relative to the scene file)",
                    self.looper_key("init_images", "init_images"),
                    p.display()
                ));
            }
        }
        Ok(())
    }

    /// The looper's schedules at frame `i`: finite, a strength within 0..=1, a tween length
    /// other than 0 and a blend factor Deforum's formula can give.
    fn check_looper_frame(
        &self,
        i: usize,
        v: &super::FrameValues,
        g: &crate::looper::Guides,
    ) -> Result<(), String> {
        for (k, d, x) in [
            ("blend_factor_max", "blendFactorMax", v.blend_factor_max),
            (
                "blend_factor_slope",
                "blendFactorSlope",
                v.blend_factor_slope,
            ),
            (
                "color_correction_factor",
                "color_correction_factor",
                v.color_correction_factor,
            ),
        ] {
            if !x.is_finite() {
                return Err(format!(
                    "{}: {x} at frame {i}; must be a finite number",
                    self.looper_key(k, d)
                ));
            }
        }
        if !(0.0..=1.0).contains(&v.image_strength) {
            return Err(format!(
                "{}: {} at frame {i}; must be within 0..=1 (the share of the init kept)",
                self.looper_key("image_strength", "image_strength_schedule"),
                v.image_strength
            ));
        }
        let tw = v.tweening_frames;
        if tw == 0.0 || !tw.is_finite() {
            return Err(format!(
                "{}: {tw} at frame {i}; must be a finite number of frames other than 0",
                self.looper_key("tweening_frames", "tweening_frames_schedule")
            ));
        }
        g.factor_at(i, tw, v.blend_factor_max, v.blend_factor_slope)
            .map_err(|e| format!("{}: {e}", self.looper_key("init_images", "init_images")))?;
        Ok(())
    }

    /// The hybrid composite's schedules at frame `i`: finite, and percentiles within 0..=100
    /// (numpy's range) when the auto-contrast is on.
    fn check_hybrid_frame(&self, i: usize, v: &super::FrameValues) -> Result<(), String> {
        let d = self.from_deforum;
        let name = |k: &str| {
            if d {
                format!("`hybrid_{k}_schedule`")
            } else {
                format!("[hybrid] {k}")
            }
        };
        for (k, x) in [
            ("comp_alpha", v.hybrid_comp_alpha),
            ("comp_mask_blend_alpha", v.hybrid_comp_mask_blend_alpha),
            ("comp_mask_contrast", v.hybrid_comp_mask_contrast),
        ] {
            if !x.is_finite() {
                return Err(format!(
                    "{}: {x} at frame {i}; must be a finite number",
                    name(k)
                ));
            }
        }
        if self.hybrid.comp_mask_auto_contrast {
            for (k, x) in [
                (
                    "comp_mask_auto_contrast_cutoff_low",
                    v.hybrid_comp_mask_auto_contrast_cutoff_low,
                ),
                (
                    "comp_mask_auto_contrast_cutoff_high",
                    v.hybrid_comp_mask_auto_contrast_cutoff_high,
                ),
            ] {
                if !(x.is_finite() && (0.0..101.0).contains(&x)) {
                    return Err(format!(
                        "{}: {x} at frame {i}; a percentile within 0..=100 (cast to a whole number)",
                        name(k)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the noise the render loop draws fits the frame: the Perlin octaves (checked by
    /// `render` and `validate`; `preview`, Video Input and Interpolation modes draw no noise, nor
    /// does frame 0).
    pub fn check_noise(&self, s: &FrameSchedules) -> Result<(), String> {
        let (w, h) = (self.image.width, self.image.height);
        let octaves = self.noise.perlin_octaves;
        let max_octaves = max_perlin_octaves(w, h);
        let noised = matches!(
            self.animation.mode,
            AnimationMode::TwoD | AnimationMode::ThreeD | AnimationMode::None
        );
        if noised
            && self.noise.noise_type == "perlin"
            && !(1..=max_octaves).contains(&octaves)
            && let Some(i) = (1..s.frames()).find(|&i| s.at(i).noise != 0.0)
        {
            return Err(format!(
                "[noise] perlin_octaves = {octaves}: a {w}x{h} frame holds 1..={max_octaves} octaves \
                 (noise is drawn from frame {i} on)"
            ));
        }
        Ok(())
    }
}

/// Largest `[post] r_upscale_tile` (input pixels per side).
pub const MAX_UPSCALE_TILE: u32 = 4096;

/// The parameters a subtitle cue can show, in Deforum's order (its `param_dict`): Deforum's
/// label (what `[output] subtitle_params` names), the short name written in the cue, and anim's
/// schedule. "Prompt" (always last) is handled apart.
pub const SUBTITLE_PARAMS: &[(&str, &str, &str)] = &[
    ("Angle", "Angle", "angle"),
    ("Trans Center X", "Tr.C.X", "transform_center_x"),
    ("Trans Center Y", "Tr.C.Y", "transform_center_y"),
    ("Zoom", "Zoom", "zoom"),
    ("Trans X", "TrX", "translation_x"),
    ("Trans Y", "TrY", "translation_y"),
    ("Trans Z", "TrZ", "translation_z"),
    ("Rot 3D X", "RotX", "rotation_3d_x"),
    ("Rot 3D Y", "RotY", "rotation_3d_y"),
    ("Rot 3D Z", "RotZ", "rotation_3d_z"),
    ("Per Fl Theta", "PerFlT", "perspective_flip_theta"),
    ("Per Fl Phi", "PerFlP", "perspective_flip_phi"),
    ("Per Fl Gamma", "PerFlG", "perspective_flip_gamma"),
    ("Per Fl FV", "PerFlFV", "perspective_flip_fv"),
    ("Noise Sch", "Noise", "noise"),
    ("Str Sch", "StrSch", "strength"),
    ("Contrast Sch", "CtrstSch", "contrast"),
    ("CFG Sch", "CFGSch", "cfg_scale"),
    ("P2P Img CFG Sch", "P2PCfgSch", "pix2pix_img_cfg_scale"),
    ("Subseed Sch", "SubSSch", "subseed"),
    ("Subseed Str Sch", "SubSStrSch", "subseed_strength"),
    ("Ckpt Sch", "CkptSch", "checkpoint"),
    ("Steps Sch", "StepsSch", "steps"),
    ("Seed Sch", "SeedSch", "seed"),
    ("Sampler Sch", "SamplerSchedule", "sampler"),
    ("Clipskip Sch", "ClipskipSchedule", "clipskip"),
    (
        "Noise Multp Sch",
        "NoiseMultiplierSchedule",
        "noise_multiplier",
    ),
    ("Ant.Blr Amount Sch", "AmountSchedule", "amount"),
    ("Ant.Blr Kernel Sch", "KernelSchedule", "kernel"),
    ("Ant.Blr Sigma Sch", "SigmaSchedule", "sigma"),
    ("Ant.Blr Threshold Sch", "ThresholdSchedule", "threshold"),
    ("Aspect Ratio Sch", "AspectRatioSchedule", "aspect_ratio"),
    ("FOV Sch", "FieldOfViewSchedule", "fov"),
    ("Near Sch", "NearSchedule", "near"),
    (
        "Cadence Flow Factor Sch",
        "CadenceFlowFactorSchedule",
        "cadence_flow_factor",
    ),
    ("Far Sch", "FarSchedule", "far"),
];

impl Scene {
    /// Ranges and names of the `[post]` keys and `[output] subtitle_params`.
    fn validate_post(&self) -> Result<(), String> {
        let p = &self.post;
        if !INTERPOLATION_ENGINES.contains(&p.frame_interpolation_engine.as_str()) {
            return Err(unknown_value(
                "[post] frame_interpolation_engine",
                &p.frame_interpolation_engine,
                INTERPOLATION_ENGINES,
            ));
        }
        for (key, v) in [
            (
                "frame_interpolation_x_amount",
                p.frame_interpolation_x_amount,
            ),
            (
                "frame_interpolation_slow_mo_amount",
                p.frame_interpolation_slow_mo_amount,
            ),
        ] {
            if !(2..=10).contains(&v) {
                return Err(format!(
                    "[post] {key} = {v}: must be within 2..=10 (Deforum's range)"
                ));
            }
        }
        if !UPSCALE_FACTORS.contains(&p.r_upscale_factor.as_str()) {
            return Err(unknown_value(
                "[post] r_upscale_factor",
                &p.r_upscale_factor,
                UPSCALE_FACTORS,
            ));
        }
        if p.r_upscale_model.trim().is_empty() {
            return Err(
                "[post] r_upscale_model is empty: name a model folder (\"realesr-animevideov3\") or an .onnx file"
                    .into(),
            );
        }
        if p.r_upscale_tile > MAX_UPSCALE_TILE || (p.r_upscale_tile != 0 && p.r_upscale_tile < 16) {
            return Err(format!(
                "[post] r_upscale_tile = {}: must be 0 (whole frames) or within 16..={MAX_UPSCALE_TILE}",
                p.r_upscale_tile
            ));
        }
        if p.r_upscale_tile_pad > 64
            || (p.r_upscale_tile != 0 && 2 * p.r_upscale_tile_pad > p.r_upscale_tile)
        {
            return Err(format!(
                "[post] r_upscale_tile_pad = {}: must be within 0..=64 and at most half of r_upscale_tile ({})",
                p.r_upscale_tile_pad, p.r_upscale_tile
            ));
        }
        let labels: Vec<&str> = SUBTITLE_PARAMS
            .iter()
            .map(|(l, _, _)| *l)
            .chain(["Prompt"])
            .collect();
        for l in &self.output.subtitle_params {
            if !labels.contains(&l.as_str()) {
                return Err(unknown_value("[output] subtitle_params", l, &labels));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::scene::tests::parse;

    #[test]
    fn bad_values() {
        assert!(
            parse("[image]\nwidth = 100\n")
                .unwrap_err()
                .to_string()
                .contains("multiple of 8")
        );
        assert!(
            parse("[image]\nwidth = \"wide\"\n")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        let e = parse("[motion]\nzoom = \"0:(1.0), 5:(1+sinn(t))\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[motion] zoom") && e.contains("sinn"), "{e}");
        assert!(
            parse("[generation]\nsampler = \"Eulr\"\n")
                .unwrap_err()
                .to_string()
                .contains("did you mean `Euler`")
        );
        assert!(
            parse("[animation]\nmode = \"4D\"\n")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        assert!(
            parse("[prompts]\nfirst = \"x\"\n")
                .unwrap_err()
                .to_string()
                .contains("frame number")
        );
        assert!(
            parse("[image\nwidth = 1")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
