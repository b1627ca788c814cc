//! The scene file: a TOML description of an animation, with Deforum's setting names grouped in
//! tables (`_schedule` suffixes dropped). docs/scene-format.md documents every key; a Deforum
//! settings file (JSON) is read as a scene too ([`deforum`]).

pub mod deforum;
pub mod registry;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schedule::{Context, Interpolation, Schedule, StringSchedule};
pub use crate::seeds::SeedBehavior;
pub use registry::{FrameSchedules, FrameValues, ScheduleColumns};

/// A scene that cannot be used, with the file and the place in it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SceneError {
    /// The scene file.
    pub file: PathBuf,
    /// What is wrong, with line/column or key, and how to fix it.
    pub message: String,
}

/// A schedule as written: a plain number or a Deforum keyframe string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScheduleText {
    /// A constant.
    Number(f64),
    /// A keyframe string such as `"0:(1.0), 30:(1.02)"`, or a plain text value.
    Text(String),
}

impl ScheduleText {
    /// Wraps a string.
    pub fn text(s: &str) -> Self {
        ScheduleText::Text(s.to_string())
    }
}

impl fmt::Display for ScheduleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleText::Number(v) => write!(f, "{v}"),
            ScheduleText::Text(s) => f.write_str(s),
        }
    }
}

/// Animation mode, as Deforum names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnimationMode {
    /// 2D warps (angle, zoom, translation).
    #[serde(rename = "2D")]
    TwoD,
    /// 3D camera moves (Deforum's depth warp; flat depth without a depth model).
    #[serde(rename = "3D")]
    ThreeD,
    /// No motion: each frame is img2img of the previous one.
    None,
    /// Each frame is img2img of the matching frame of `[video_input] video_init_path`.
    #[serde(rename = "Video Input")]
    VideoInput,
    /// Each frame is txt2img, the prompt travelling between the keyed prompts (no motion).
    Interpolation,
}

impl fmt::Display for AnimationMode {
    /// Deforum's name of the mode, as scene files write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnimationMode::TwoD => "2D",
            AnimationMode::ThreeD => "3D",
            AnimationMode::None => "None",
            AnimationMode::VideoInput => "Video Input",
            AnimationMode::Interpolation => "Interpolation",
        })
    }
}

/// How pixels outside the frame are filled by the 2D warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Border {
    /// Repeat the edge pixel (Deforum's default, OpenCV BORDER_REPLICATE).
    Replicate,
    /// Tile the image (OpenCV BORDER_WRAP).
    Wrap,
    /// Mirror, repeating the edge pixel (OpenCV BORDER_REFLECT).
    Reflect,
    /// Black (OpenCV BORDER_CONSTANT 0).
    Zero,
}

/// How the 3D warp fills pixels that come from outside the frame (torch `grid_sample` padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    /// Repeat the edge pixel (Deforum's default).
    Border,
    /// Mirror about the frame edges.
    Reflection,
    /// Black.
    Zeros,
}

/// Resampling filter of the 3D warp (torch `grid_sample` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplingMode {
    /// Keys cubic convolution, a = -0.75 (Deforum's default).
    Bicubic,
    /// Bilinear.
    Bilinear,
    /// Nearest pixel.
    Nearest,
}

/// Declares a scene table: plain settings with their defaults, then schedules whose defaults come
/// from the [`registry`].
macro_rules! scene_table {
    (
        $(#[$meta:meta])*
        $name:ident ($table:literal) {
            $( $(#[$fdoc:meta])* $field:ident : $fty:ty = $fdef:expr, )*
        }
        schedules { $( $(#[$sdoc:meta])* $sched:ident, )* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: $fty, )*
            $( $(#[$sdoc])* pub $sched: ScheduleText, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $fdef, )*
                    $( $sched: ScheduleText::text(registry::default_of($table, stringify!($sched))), )*
                }
            }
        }

        impl $name {
            /// The table's name in the scene file.
            pub const TABLE: &'static str = $table;
            /// The keys allowed in the table.
            pub const KEYS: &'static [&'static str] = &[$( stringify!($field), )* $( stringify!($sched), )*];

            /// The schedules of this table, by key.
            pub fn schedules(&self) -> Vec<(&'static str, &ScheduleText)> {
                vec![$( (stringify!($sched), &self.$sched), )*]
            }

            /// Mutable access to a schedule by key.
            pub fn schedule_mut(&mut self, key: &str) -> Option<&mut ScheduleText> {
                match key {
                    $( stringify!($sched) => Some(&mut self.$sched), )*
                    _ => None,
                }
            }
        }
    };
}

scene_table! {
    /// `[image]`: frame size.
    ImageSettings ("image") {
        /// Width in pixels, a multiple of 8.
        width: u32 = 512,
        /// Height in pixels, a multiple of 8.
        height: u32 = 512,
    }
    schedules {}
}

scene_table! {
    /// `[animation]`: mode and length.
    AnimationSettings ("animation") {
        /// `2D`, `3D` or `None`.
        mode: AnimationMode = AnimationMode::TwoD,
        /// Number of frames to render.
        max_frames: usize = 120,
        /// Border handling of the 2D warp and of the perspective flip.
        border: Border = Border::Replicate,
        /// Padding of the 3D warp.
        padding_mode: PaddingMode = PaddingMode::Border,
        /// Sampling of the 3D warp.
        sampling_mode: SamplingMode = SamplingMode::Bicubic,
    }
    schedules {}
}

scene_table! {
    /// `[generation]`: sampling; every key but `seed`, `seed_behavior` and `seed_iter_N` is a schedule.
    #[allow(non_snake_case)]
    GenerationSettings ("generation") {
        /// Seed; -1 picks a random one (recorded in the output).
        seed: i64 = -1,
        /// How the seed changes per diffused frame: iter, fixed, random, ladder, alternate, schedule.
        seed_behavior: SeedBehavior = SeedBehavior::Iter,
        /// With `iter`: the seed grows by 1 every N diffused frames.
        seed_iter_N: u64 = 1,
    }
    schedules {
        /// Sampling steps of a full (txt2img) schedule.
        steps,
        /// Deforum strength: the share of the previous frame kept (diffusers' strength = 1 - this).
        strength,
        /// Classifier-free guidance scale.
        cfg_scale,
        /// Per-frame seed (Deforum's `seed_schedule`, used with seed_behavior "schedule").
        seed_schedule,
        /// Variation seed (A1111 subseed).
        subseed,
        /// Variation strength.
        subseed_strength,
        /// DDIM eta.
        ddim_eta,
        /// Ancestral samplers' eta.
        ancestral_eta,
        /// CLIP layers to skip (1 = none).
        clipskip,
        /// Multiplier of the img2img noise.
        noise_multiplier,
        /// Sampler name (`Euler a`, `Euler`, `DDIM`), or a keyframe string of names.
        sampler,
        /// Model checkpoint per frame (keyframe string of model folders); empty = `[model] folder`.
        checkpoint,
    }
}

scene_table! {
    /// `[init]`: an optional starting image.
    InitSettings ("init") {
        /// Path of the init image (relative to the scene file); none means frame 0 is txt2img.
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<PathBuf> = None,
        /// Strength of frame 0 when an init image is used (Deforum's `strength`).
        strength: f64 = 0.8,
        /// With no init image, frame 0 is generated from pure noise (Deforum's `strength_0_no_init`).
        strength_0_no_init: bool = true,
    }
    schedules {}
}

scene_table! {
    /// `[motion]`: camera schedules (per-frame increments, as in Deforum).
    MotionSettings ("motion") {
        /// Turn on the perspective-flip homography.
        enable_perspective_flip: bool = false,
        /// rhai motion script (relative to the scene file) defining `fn frame(ctx)`; see docs/motion-scripts.md.
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<PathBuf> = None,
        /// Camera presets applied to the schedules, in order (`[[motion.preset]]`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        preset: Vec<crate::motion::PresetUse> = Vec::new(),
        /// Extra preset folders (relative to the scene file), searched after the user folder.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        preset_dirs: Vec<PathBuf> = Vec::new(),
    }
    schedules {
        /// Rotation in degrees per frame, counter-clockwise (2D).
        angle,
        /// Scale per frame (2D; 1 = static).
        zoom,
        /// 2D: pixels per frame, content moves right. 3D: camera units x 200.
        translation_x,
        /// 2D: pixels per frame, content moves down. 3D: camera units x 200.
        translation_y,
        /// 3D: forward motion, camera units x 200.
        translation_z,
        /// Rotation/zoom centre, fraction of the width.
        transform_center_x,
        /// Rotation/zoom centre, fraction of the height.
        transform_center_y,
        /// 3D tilt, degrees per frame.
        rotation_3d_x,
        /// 3D pan, degrees per frame.
        rotation_3d_y,
        /// 3D roll, degrees per frame.
        rotation_3d_z,
        /// Perspective flip roll, degrees.
        perspective_flip_theta,
        /// Perspective flip tilt, degrees.
        perspective_flip_phi,
        /// Perspective flip pan, degrees.
        perspective_flip_gamma,
        /// Perspective flip field of view, degrees.
        perspective_flip_fv,
        /// 3D field of view, degrees.
        fov,
        /// 3D near plane.
        near,
        /// 3D far plane.
        far,
        /// 3D aspect ratio.
        aspect_ratio,
    }
}

scene_table! {
    /// `[noise]`: noise added to each warped frame before img2img.
    NoiseSettings ("noise") {
        /// `perlin` or `uniform`.
        noise_type: String = "perlin".into(),
        /// Perlin octaves.
        perlin_octaves: u32 = 4,
        /// Perlin persistence.
        perlin_persistence: f64 = 0.5,
    }
    schedules {
        /// Noise amount per frame.
        noise,
    }
}

/// Colour coherence mode (Deforum's `color_coherence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorCoherence {
    /// No colour matching.
    None,
    /// Match to the first frame in LAB.
    #[serde(rename = "LAB")]
    Lab,
    /// Match to the first frame in HSV.
    #[serde(rename = "HSV")]
    Hsv,
    /// Match to the first frame in RGB.
    #[serde(rename = "RGB")]
    Rgb,
    /// Match to `color_coherence_image_path` (in LAB).
    Image,
    /// Match to the frame of `[video_input] video_init_path` at the same index, refreshed every
    /// `color_coherence_video_every_N_frames` frames (in LAB).
    #[serde(rename = "Video Input")]
    VideoInput,
}

scene_table! {
    /// `[coherence]`: keeping frames consistent.
    #[allow(non_snake_case)]
    CoherenceSettings ("coherence") {
        /// None, LAB, HSV, RGB or Image.
        color_coherence: ColorCoherence = ColorCoherence::Lab,
        /// The colour reference for `Image` mode.
        #[serde(skip_serializing_if = "Option::is_none")]
        color_coherence_image_path: Option<PathBuf> = None,
        /// With `Video Input` colour coherence: take a new reference every N frames.
        color_coherence_video_every_N_frames: usize = 1,
        /// Make every frame grey.
        color_force_grayscale: bool = false,
        /// Deforum's old behaviour: match only before noising, not the generated frame too.
        legacy_colormatch: bool = false,
    }
    schedules {
        /// Contrast multiplier per frame.
        contrast,
    }
}

scene_table! {
    /// `[anti_blur]`: unsharp mask per frame.
    AntiBlurSettings ("anti_blur") {}
    schedules {
        /// Gaussian kernel size.
        kernel,
        /// Gaussian sigma.
        sigma,
        /// Sharpening amount (0 = off).
        amount,
        /// Threshold.
        threshold,
    }
}

scene_table! {
    /// `[cadence]`: diffusion cadence.
    CadenceSettings ("cadence") {
        /// Diffuse every Nth frame; the frames between are blends of warped diffused frames.
        diffusion_cadence: usize = 1,
    }
    schedules {
        /// Optical-flow factor of tween frames.
        cadence_flow_factor,
    }
}

/// `[[controlnet]]`: one ControlNet unit's schedules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlNetUnit {
    /// ControlNet model folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Conditioning weight per frame.
    pub weight: ScheduleText,
    /// Fraction of the steps where the unit starts.
    pub guidance_start: ScheduleText,
    /// Fraction of the steps where the unit ends.
    pub guidance_end: ScheduleText,
}

impl Default for ControlNetUnit {
    fn default() -> Self {
        let d = |k: &str| {
            ScheduleText::text(
                registry::CONTROLNET_SCHEDULES
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, d)| *d)
                    .unwrap_or("0:(1)"),
            )
        };
        ControlNetUnit {
            model: None,
            weight: d("weight"),
            guidance_start: d("guidance_start"),
            guidance_end: d("guidance_end"),
        }
    }
}

impl ControlNetUnit {
    const KEYS: &'static [&'static str] = &["model", "weight", "guidance_start", "guidance_end"];
}

/// Input normalisation of the depth model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepthNormalization {
    /// ImageNet mean and standard deviation (Depth-Anything, MiDaS v2.1).
    Imagenet,
    /// Mean 0.5, standard deviation 0.5 (MiDaS v3 DPT, Deforum's Midas-3-Hybrid).
    Half,
}

/// How a frame is resized for a depth model whose input size is dynamic (MiDaS's `Resize` rules:
/// keep the frame's aspect ratio, each side a multiple of `multiple_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepthResize {
    /// Both sides at least `input_size` (Depth-Anything).
    LowerBound,
    /// The side whose scale is closer to 1 becomes `input_size` (MiDaS v3 DPT, Deforum's
    /// Midas-3-Hybrid with `input_size = 384`, `multiple_of = 32`).
    Minimal,
    /// `input_size` × `input_size`, aspect ratio not kept.
    Square,
}

scene_table! {
    /// `[depth]`: the monocular depth model of 3D mode.
    DepthSettings ("depth") {
        /// ONNX depth model (relative inverse depth out): a `.onnx` file or a folder holding
        /// `model.onnx`, relative to the scene file; none = flat depth.
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<PathBuf> = None,
        /// Use the depth model in 3D mode (Deforum's `use_depth_warping`); off = flat depth.
        use_depth_warping: bool = true,
        /// Weight of the model's depth against flat depth, 0..=1 (1 = as Deforum's MiDaS path).
        midas_weight: f64 = 1.0,
        /// Write each frame's depth map as a 16-bit grey PNG under `OUT/depth/`.
        save_depth_maps: bool = false,
        /// Target side of the model input when the model's input size is dynamic.
        input_size: u32 = 518,
        /// How frames are resized for a dynamic-size model: `lower_bound`, `minimal` or `square`.
        resize: DepthResize = DepthResize::LowerBound,
        /// Model input sides are rounded to a multiple of this (14 for ViT-S/14, 32 for DPT).
        multiple_of: u32 = 14,
        /// Input normalisation: `imagenet` or `half`.
        normalization: DepthNormalization = DepthNormalization::Imagenet,
    }
    schedules {}
}

scene_table! {
    /// `[video_input]`: the video of `mode = "Video Input"`.
    VideoInputSettings ("video_input") {
        /// The video file (relative to the scene file).
        #[serde(skip_serializing_if = "Option::is_none")]
        video_init_path: Option<PathBuf> = None,
        /// Use every Nth frame of the video.
        extract_nth_frame: usize = 1,
        /// First video frame used.
        extract_from_frame: usize = 0,
        /// Last video frame used (-1: the end).
        extract_to_frame: i64 = -1,
        /// Video Input mode: apply the scene's camera to each video frame before img2img.
        motion: bool = false,
    }
    schedules {}
}

/// Prompt travel: how the text embeddings move between keyed prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptTravel {
    /// Each prompt holds until the next key (Deforum).
    None,
    /// Linear interpolation of the embeddings over the frames between two keys.
    Linear,
    /// Spherical interpolation of each token's embedding.
    Slerp,
}

scene_table! {
    /// `[animation_prompts]`: text added to every prompt (Deforum's
    /// `animation_prompts_positive` / `animation_prompts_negative`) and prompt travel.
    PromptAffixes ("animation_prompts") {
        /// Added after each positive prompt.
        positive: String = String::new(),
        /// Added to each negative prompt.
        negative: String = String::new(),
        /// Interpolate the text embeddings between keyed prompts: none, linear or slerp.
        travel: PromptTravel = PromptTravel::None,
    }
    schedules {}
}

scene_table! {
    /// `[model]`: the Stable Diffusion ONNX folder.
    ModelSettings ("model") {
        /// Folder in the optimum/diffusers ONNX layout (relative to the scene file).
        #[serde(skip_serializing_if = "Option::is_none")]
        folder: Option<PathBuf> = None,
        /// Pipelines kept loaded when the checkpoint schedule switches models (LRU).
        cache_size: usize = 2,
    }
    schedules {}
}

scene_table! {
    /// `[output]`: where frames and video go.
    OutputSettings ("output") {
        /// Output folder (relative to the scene file); default `output/<scene name>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        folder: Option<PathBuf> = None,
        /// Frames per second of the video.
        fps: f64 = 15.0,
        /// Encode an mp4 after rendering.
        video: bool = true,
        /// x264 constant rate factor (0-51, lower is better).
        crf: u32 = 17,
        /// x264 preset (ultrafast … veryslow).
        preset: String = "slow".into(),
        /// Video encoder: libx264, libx265 (both in the mp4).
        codec: String = "libx264".into(),
        /// Pixel format of the mp4: yuv420p (plays everywhere), yuv444p, …
        pixel_format: String = "yuv420p".into(),
        /// Also write `video.gif`.
        gif: bool = false,
        /// Also write `video.webm` (VP9).
        webm: bool = false,
        /// Audio file muxed into the mp4 (relative to the scene file).
        #[serde(skip_serializing_if = "Option::is_none")]
        soundtrack: Option<PathBuf> = None,
        /// Seconds of the soundtrack to skip (negative: delay it).
        soundtrack_offset: f64 = 0.0,
    }
    schedules {}
}

/// A whole scene file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scene {
    /// Frame size.
    pub image: ImageSettings,
    /// Mode and length.
    pub animation: AnimationSettings,
    /// Sampling.
    pub generation: GenerationSettings,
    /// Init image.
    pub init: InitSettings,
    /// Camera schedules.
    pub motion: MotionSettings,
    /// Noise.
    pub noise: NoiseSettings,
    /// Coherence.
    pub coherence: CoherenceSettings,
    /// Anti-blur.
    pub anti_blur: AntiBlurSettings,
    /// Cadence.
    pub cadence: CadenceSettings,
    /// Text added to every prompt.
    pub animation_prompts: PromptAffixes,
    /// The input video of Video Input mode.
    pub video_input: VideoInputSettings,
    /// The depth model of 3D mode.
    pub depth: DepthSettings,
    /// The model folder.
    pub model: ModelSettings,
    /// Output.
    pub output: OutputSettings,
    /// User constants visible in every expression.
    pub variables: BTreeMap<String, f64>,
    /// Interpolation per schedule (`zoom = "ease-in-out"`); default linear.
    pub interpolation: BTreeMap<String, String>,
    /// Prompts keyed by frame (`"0" = "a forest --neg blurry"`).
    pub prompts: BTreeMap<String, String>,
    /// ControlNet units.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controlnet: Vec<ControlNetUnit>,
    /// Where the scene was read from; relative paths resolve against its folder.
    #[serde(skip)]
    pub path: PathBuf,
    /// Notes from reading it (a Deforum settings file's unsupported keys), for the user.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Read from a Deforum settings file: messages name its keys.
    #[serde(skip)]
    pub from_deforum: bool,
    /// The schedules evaluated when the scene was read, for [`Scene::frame_schedules`].
    #[serde(skip)]
    evaluated: Option<Arc<Evaluated>>,
}

/// Schedules and the key of the scene state they were evaluated from.
struct Evaluated {
    key: String,
    schedules: Arc<FrameSchedules>,
}

impl fmt::Debug for Evaluated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Evaluated({} frames)", self.schedules.frames())
    }
}

/// A prompt split at `--neg`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    /// Positive text.
    pub positive: String,
    /// Negative text (after `--neg`), possibly empty.
    pub negative: String,
}

impl Prompt {
    /// Splits `text` at the first `--neg`.
    pub fn parse(text: &str) -> Prompt {
        match text.split_once("--neg") {
            Some((p, n)) => Prompt {
                positive: p.trim().into(),
                negative: n.trim().into(),
            },
            None => Prompt {
                positive: text.trim().into(),
                negative: String::new(),
            },
        }
    }
}

/// Keys allowed per table, for error messages.
fn table_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "image",
            "animation",
            "generation",
            "init",
            "motion",
            "noise",
            "coherence",
            "anti_blur",
            "cadence",
            "depth",
            "model",
            "output",
            "variables",
            "interpolation",
            "prompts",
            "controlnet",
            "animation_prompts",
            "video_input",
        ],
        "image" => ImageSettings::KEYS,
        "animation" => AnimationSettings::KEYS,
        "generation" => GenerationSettings::KEYS,
        "init" => InitSettings::KEYS,
        "motion" => MotionSettings::KEYS,
        "noise" => NoiseSettings::KEYS,
        "coherence" => CoherenceSettings::KEYS,
        "anti_blur" => AntiBlurSettings::KEYS,
        "cadence" => CadenceSettings::KEYS,
        "animation_prompts" => PromptAffixes::KEYS,
        "video_input" => VideoInputSettings::KEYS,
        "controlnet" => ControlNetUnit::KEYS,
        "depth" => DepthSettings::KEYS,
        "model" => ModelSettings::KEYS,
        "output" => OutputSettings::KEYS,
        _ => &[],
    }
}

/// The most frames one scene may have (every schedule holds a value per frame).
pub const MAX_FRAMES: usize = 1_000_000;
/// The largest frame side in pixels.
pub const MAX_SIDE: u32 = 8192;
/// The largest diffusion cadence (Deforum's slider: 1 to 50).
pub const MAX_CADENCE: usize = 50;
/// The largest seed: A1111 and Deforum draw and show seeds in `0..=2^32 - 1`; `-1` asks for a
/// random one.
pub const MAX_SEED: i64 = u32::MAX as i64;

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

const TABLES: &[&str] = &[
    "image",
    "animation",
    "generation",
    "init",
    "motion",
    "noise",
    "coherence",
    "anti_blur",
    "cadence",
    "animation_prompts",
    "video_input",
    "controlnet",
    "depth",
    "model",
    "output",
];

/// Samplers the diffusion core implements, with accepted aliases.
pub const SAMPLERS: &[&str] = &[
    "Euler a",
    "Euler",
    "DDIM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "LCM",
    "Heun",
    "UniPC",
];

impl Scene {
    /// Reads and validates a scene file: TOML, or a Deforum settings file (JSON, recognised by
    /// content).
    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        let text = std::fs::read_to_string(path).map_err(|e| SceneError {
            file: path.to_path_buf(),
            message: format!("cannot read the scene file: {e}"),
        })?;
        if deforum::looks_like_settings(&text) {
            let (mut scene, warnings) = deforum::from_settings(&text, path)?;
            scene.warnings = warnings;
            return Ok(scene);
        }
        let mut scene = Scene::from_toml(&text, path)?;
        scene.path = path.to_path_buf();
        Ok(scene)
    }

    /// The frame size as the user wrote it, for messages: `[image] width = W, height = H`, or
    /// Deforum's `W = …, H = …` for a settings file.
    pub fn size_keys(&self) -> String {
        let (w, h) = (self.image.width, self.image.height);
        if self.from_deforum {
            format!("W = {w}, H = {h}")
        } else {
            format!("[image] width = {w}, height = {h}")
        }
    }

    /// Parses scene text; `path` is used for messages and relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Scene, SceneError> {
        let err = |message: String| SceneError {
            file: path.to_path_buf(),
            message,
        };
        let mut scene: Scene =
            toml::from_str(text).map_err(|e| err(describe_toml_error(text, &e)))?;
        scene.path = path.to_path_buf();
        scene.validate().map_err(err)?;
        Ok(scene)
    }

    /// Checks every key and range, evaluates the schedules (kept for
    /// [`Scene::frame_schedules`]) and expands the prompts' math once.
    pub(crate) fn validate(&mut self) -> Result<(), String> {
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
        const PRESETS: &[&str] = &[
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
        if !PRESETS.contains(&self.output.preset.as_str()) {
            return Err(format!(
                "[output] preset = \"{}\": use one of {}",
                self.output.preset,
                PRESETS.join(", ")
            ));
        }
        if !matches!(self.output.codec.as_str(), "libx264" | "libx265") {
            return Err(format!(
                "[output] codec = \"{}\": use \"libx264\" or \"libx265\" (gif and webm have their own switches)",
                self.output.codec
            ));
        }
        if self
            .output
            .pixel_format
            .parse::<ffmpeg_next::format::Pixel>()
            .is_err()
        {
            return Err(format!(
                "[output] pixel_format = \"{}\": not a pixel format FFmpeg knows (e.g. yuv420p, yuv444p)",
                self.output.pixel_format
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
        if !matches!(self.noise.noise_type.as_str(), "perlin" | "uniform") {
            return Err(format!(
                "[noise] noise_type = \"{}\": use \"perlin\" or \"uniform\"",
                self.noise.noise_type
            ));
        }
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
        let ctx = self.context();
        for (key, text) in &self.prompts {
            key.trim().parse::<usize>().map_err(|_| {
                format!("[prompts] key \"{key}\": must be a frame number such as \"0\" or \"30\"")
            })?;
            let _ = text;
        }
        self.evaluated = None;
        let sched = self.schedules()?;
        let ctx = self.prompt_context(&ctx, Some(&sched), 0);
        for (key, text) in &self.prompts {
            expand_prompt_math(text, &ctx, 0).map_err(|e| format!("[prompts] \"{key}\": {e}"))?;
        }
        self.evaluated = Some(Arc::new(Evaluated {
            key: self.evaluation_key(),
            schedules: Arc::new(sched),
        }));
        Ok(())
    }

    /// sha256 (hex) of the resolved scene and of its motion script and preset files: scenes with
    /// equal fingerprints have the same schedules and frames (`--resume` compares it).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.extend(crate::motion::source_fingerprint(&self.motion_spec()));
        format!("{:x}", Sha256::digest(&bytes))
    }

    /// The fingerprint and the folder relative paths resolve against.
    fn evaluation_key(&self) -> String {
        format!("{} {}", self.fingerprint(), self.path.display())
    }

    /// [`Scene::schedules`] without evaluating twice: the schedules evaluated when the scene was
    /// read, while the scene and its motion files are unchanged since; else evaluated now.
    ///
    /// # Errors
    /// As [`Scene::schedules`].
    pub fn frame_schedules(&self) -> Result<Arc<FrameSchedules>, String> {
        if let Some(e) = &self.evaluated
            && e.key == self.evaluation_key()
        {
            return Ok(Arc::clone(&e.schedules));
        }
        Ok(Arc::new(self.schedules()?))
    }

    /// The context expressions are evaluated in.
    pub fn context(&self) -> Context {
        let mut ctx = Context::new(
            self.animation.max_frames,
            self.generation.seed,
            self.output.fps,
        );
        ctx.variables = self
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        ctx
    }

    /// Every schedule by table, as (column name, table, key, text), ControlNet units last.
    pub fn schedule_texts(&self) -> Vec<(String, String, String, &ScheduleText)> {
        let mut out = Vec::new();
        let tables: [(&str, Vec<(&'static str, &ScheduleText)>); 7] = [
            ("generation", self.generation.schedules()),
            ("motion", self.motion.schedules()),
            ("noise", self.noise.schedules()),
            ("coherence", self.coherence.schedules()),
            ("anti_blur", self.anti_blur.schedules()),
            ("cadence", self.cadence.schedules()),
            ("", Vec::new()),
        ];
        for def in registry::SCHEDULES {
            if let Some((_, list)) = tables.iter().find(|(t, _)| *t == def.table)
                && let Some((_, text)) = list.iter().find(|(k, _)| *k == def.key)
            {
                out.push((
                    def.name.to_string(),
                    def.table.to_string(),
                    def.key.to_string(),
                    *text,
                ));
            }
        }
        for (i, unit) in self.controlnet.iter().enumerate() {
            for (key, text) in [
                ("weight", &unit.weight),
                ("guidance_start", &unit.guidance_start),
                ("guidance_end", &unit.guidance_end),
            ] {
                out.push((
                    format!("cn_{}_{key}", i + 1),
                    format!("controlnet #{}", i + 1),
                    key.to_string(),
                    text,
                ));
            }
        }
        out
    }

    /// Evaluates every schedule for every frame; errors name the table and key.
    pub fn schedules(&self) -> Result<FrameSchedules, String> {
        let ctx = self.context();
        let mut numeric = Vec::new();
        let mut text = Vec::new();
        for (name, table, key, s) in self.schedule_texts() {
            let label = if table.starts_with("controlnet") {
                format!("[[{table}]] {key}")
            } else {
                format!("[{table}] {key}")
            };
            let is_text = registry::def(&name).is_some_and(|d| d.kind == registry::Kind::Text);
            if is_text {
                let values = match s {
                    ScheduleText::Text(t) if StringSchedule::is_keyframed(t) => {
                        StringSchedule::parse(t, &ctx)
                            .map_err(|e| format!("{label} = \"{t}\": {e}"))?
                            .evaluate(&ctx)
                    }
                    other => StringSchedule::constant(&other.to_string()).evaluate(&ctx),
                };
                text.push((name, values));
                continue;
            }
            let interp = match self.interpolation.get(&name) {
                Some(m) => Interpolation::from_name(m).ok_or_else(|| {
                    format!(
                        "[interpolation] {name} = \"{m}\": unknown mode; use one of {}",
                        Interpolation::NAMES.join(", ")
                    )
                })?,
                None => Interpolation::Linear,
            };
            let sched = match s {
                ScheduleText::Number(v) => Schedule::constant(*v),
                ScheduleText::Text(t) => {
                    Schedule::parse(t, &ctx).map_err(|e| format!("{label} = \"{t}\": {e}"))?
                }
            };
            let values = sched.evaluate_with(&ctx, interp);
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{label}: the value at frame {i} is {} (not a finite number); check the expression",
                    values[i]
                ));
            }
            numeric.push((name, values));
        }
        // presets, then the motion script, on top of the keyframed values
        crate::motion::apply(&self.motion_spec(), &ctx, &mut numeric).map_err(|e| e.to_string())?;
        for name in self.interpolation.keys() {
            if !numeric.iter().any(|(n, _)| n == name) {
                let hint = crate::schedule::expr::did_you_mean(
                    name,
                    numeric.iter().map(|(n, _)| n.as_str()),
                );
                return Err(format!(
                    "[interpolation] {name}: no numeric schedule of that name{hint}"
                ));
            }
        }
        let s = FrameSchedules::new(self.animation.max_frames, numeric, text)?;
        let (w, h) = (self.image.width, self.image.height);
        let max_kernel = u64::from(w.min(h));
        for i in 0..s.frames() {
            let v = s.at(i);
            if !(1.0..=1000.0).contains(&v.steps) {
                return Err(format!(
                    "[generation] steps: {} at frame {i}; must be within 1..=1000",
                    v.steps
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
            sampler_name(v.sampler).map_err(|e| format!("{e} (frame {i})"))?;
        }
        Ok(s)
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

    /// The scene's motion script and presets, for [`crate::motion`].
    pub fn motion_spec(&self) -> crate::motion::MotionSpec<'_> {
        crate::motion::MotionSpec {
            base_dir: self.path.parent().unwrap_or(Path::new(".")),
            script: self.motion.script.as_deref(),
            presets: &self.motion.preset,
            preset_dirs: &self.motion.preset_dirs,
            three_d: self.animation.mode == AnimationMode::ThreeD,
        }
    }

    /// Resolves a path from the scene against the scene file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// The output folder: `[output] folder`, or `output/<scene name>` beside the scene.
    pub fn output_folder(&self) -> PathBuf {
        match &self.output.folder {
            Some(f) => self.resolve(f),
            None => {
                let stem = self
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                self.resolve(&Path::new("output").join(stem.unwrap_or_else(|| "scene".into())))
            }
        }
    }

    /// With prompt travel on: the next keyed prompt after `frame` (as [`Scene::prompt_at`] gives
    /// it at that key) and the weight 0..1 of the way from the current key to it.
    pub fn travel_at(&self, frame: usize) -> Option<(Prompt, f32)> {
        self.travel_impl(frame, None)
    }

    /// [`Scene::travel_at`] with the prompt variables of a motion script (`sched`).
    pub fn travel_at_with(&self, frame: usize, sched: &FrameSchedules) -> Option<(Prompt, f32)> {
        self.travel_impl(frame, Some(sched))
    }

    fn travel_impl(&self, frame: usize, sched: Option<&FrameSchedules>) -> Option<(Prompt, f32)> {
        if self.animation_prompts.travel == PromptTravel::None
            && self.animation.mode != AnimationMode::Interpolation
        {
            return None;
        }
        let mut keys: Vec<usize> = self
            .prompts
            .keys()
            .filter_map(|k| k.trim().parse().ok())
            .collect();
        keys.sort();
        let cur = keys.iter().rev().find(|k| **k <= frame).copied()?;
        let next = keys.iter().find(|k| **k > frame).copied()?;
        let w = (frame - cur) as f32 / (next - cur) as f32;
        // the next prompt's math is evaluated at this frame, like the current one
        Some((self.prompt_keyed(next, frame, sched), w))
    }

    /// The expression context of prompt math at `frame`: the scene's, plus the prompt variables a
    /// motion script set for that frame.
    fn prompt_context(
        &self,
        base: &Context,
        sched: Option<&FrameSchedules>,
        frame: usize,
    ) -> Context {
        let mut ctx = base.clone();
        if let Some(s) = sched {
            for (name, values) in s.columns().numeric() {
                if let Some(var) = name.strip_prefix(crate::motion::script::PROMPT_PREFIX) {
                    ctx.variables.push((
                        var.to_string(),
                        values[frame.min(values.len().saturating_sub(1))],
                    ));
                }
            }
        }
        ctx
    }

    /// [`Scene::prompt_at`] with the prompt variables of a motion script (`sched`).
    pub fn prompt_at_with(&self, frame: usize, sched: &FrameSchedules) -> Prompt {
        self.prompt_impl(frame, Some(sched))
    }

    /// The prompt in force at `frame`: the one at the greatest key <= frame (the first one before
    /// any key).
    pub fn prompt_at(&self, frame: usize) -> Prompt {
        self.prompt_impl(frame, None)
    }

    fn prompt_impl(&self, frame: usize, sched: Option<&FrameSchedules>) -> Prompt {
        self.prompt_keyed(frame, frame, sched)
    }

    /// The prompt keyed at or before `select`, with its math evaluated at frame `at`.
    fn prompt_keyed(&self, select: usize, at: usize, sched: Option<&FrameSchedules>) -> Prompt {
        let frame = select;
        let mut keyed: Vec<(usize, &String)> = self
            .prompts
            .iter()
            .filter_map(|(k, v)| k.trim().parse().ok().map(|k| (k, v)))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let chosen = keyed
            .iter()
            .rev()
            .find(|(k, _)| *k <= frame)
            .or(keyed.first());
        let mut p = chosen.map(|(_, t)| Prompt::parse(t)).unwrap_or(Prompt {
            positive: String::new(),
            negative: String::new(),
        });
        let join = |a: &str, b: &str| match (a.trim().is_empty(), b.trim().is_empty()) {
            (_, true) => a.trim().to_string(),
            (true, false) => b.trim().to_string(),
            _ => format!("{}, {}", a.trim(), b.trim()),
        };
        p.positive = join(&p.positive, &self.animation_prompts.positive);
        p.negative = join(&p.negative, &self.animation_prompts.negative);
        // backtick math, validated when the scene was loaded
        let ctx = self.prompt_context(&self.context(), sched, at);
        p.positive = expand_prompt_math(&p.positive, &ctx, at).unwrap_or(p.positive);
        p.negative = expand_prompt_math(&p.negative, &ctx, at).unwrap_or(p.negative);
        p
    }
}

/// Replaces each `` `expression` `` in a prompt with its value at frame `t` (Deforum's prompt
/// math, e.g. `` (cat:`0.5*sin(t/10)+1`) ``), evaluated with the schedule expression language.
pub fn expand_prompt_math(text: &str, ctx: &Context, t: usize) -> Result<String, String> {
    if !text.contains('`') {
        return Ok(text.to_string());
    }
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return Err(format!(
            "unbalanced backtick in prompt {text:?}: prompt math is written `expression`"
        ));
    }
    let names = ctx.names();
    let mut vars = vec![
        t as f64,
        ctx.max_frames as f64 - 1.0,
        ctx.seed as f64,
        ctx.fps,
        t as f64 / ctx.fps,
    ];
    vars.extend(ctx.variables.iter().map(|(_, v)| *v));
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            let e = crate::schedule::Expr::parse(part, &names)
                .map_err(|e| format!("prompt math `{part}`: {e}"))?;
            let v = e.eval(&vars);
            if !v.is_finite() {
                return Err(format!("prompt math `{part}` is {v} at frame {t}"));
            }
            out.push_str(&registry::format_number((v * 1e6).round() / 1e6));
        }
    }
    Ok(out)
}

/// Canonical sampler name for a user's spelling: A1111/Deforum names, diffusers class names and
/// k-diffusion/ComfyUI names (`dpmpp_2m`, `uni_pc`), case-insensitive.
pub fn sampler_name(name: &str) -> Result<&'static str, String> {
    let n = name.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let n = n
        .strip_prefix("k ")
        .unwrap_or(&n)
        .replace("dpm++", "dpmpp")
        .replace("sample ", "");
    let found = match n.as_str() {
        "euler a" | "euler ancestral" | "eulerancestraldiscretescheduler" => Some("Euler a"),
        "euler" | "eulerdiscretescheduler" => Some("Euler"),
        "ddim" | "ddimscheduler" => Some("DDIM"),
        "dpmpp 2m" | "dpmsolvermultistepscheduler" => Some("DPM++ 2M"),
        "dpmpp 2m karras" | "dpmsolvermultistepscheduler karras" => Some("DPM++ 2M Karras"),
        "lcm" | "lcmscheduler" => Some("LCM"),
        "heun" | "heundiscretescheduler" => Some("Heun"),
        "unipc" | "uni pc" | "unipcmultistepscheduler" => Some("UniPC"),
        _ => None,
    };
    found.ok_or_else(|| {
        let hint = crate::schedule::expr::did_you_mean(name, SAMPLERS.iter().copied());
        format!(
            "[generation] sampler = \"{name}\": unknown sampler{hint}; available: {}",
            SAMPLERS.join(", ")
        )
    })
}

/// Turns a toml/serde error into `line L, column C: message`, with a did-you-mean for unknown keys.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim().to_string();
    let mut table = String::new();
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        // the table the error is in: the last `[name]` header above it
        table = before
            .lines()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && !l.starts_with("[["))
                    .then(|| l.trim_matches(['[', ']']).trim().to_string())
            })
            .unwrap_or_default();
        let src_line = text.lines().nth(line - 1).unwrap_or("").trim();
        msg = format!("line {line}, column {col}: {msg}\n  | {src_line}");
    }
    if let Some(rest) = e.message().strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let known = table_keys(&table);
        let mut hint = crate::schedule::expr::did_you_mean(field, known.iter().copied());
        if hint.is_empty() {
            // perhaps the key belongs in another table
            for t in TABLES {
                if table_keys(t).contains(&field) && *t != table {
                    hint = format!(", did you mean to put it in [{t}]?");
                    break;
                }
            }
        }
        let where_ = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{table}]")
        };
        let head = msg
            .split(": unknown field")
            .next()
            .unwrap_or("")
            .to_string();
        let src = msg
            .split_once('\n')
            .map(|(_, l)| l.to_string())
            .unwrap_or_default();
        msg = format!(
            "{head}: unknown key `{field}` {where_}{hint}\n{src}\n  keys allowed there: {}",
            known.join(", ")
        );
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_schedules_give_clear_errors() {
        let cases: &[(&str, &[&str])] = &[
            ("0:(1+sin(t)", &["[motion] zoom", "never closed"]),
            (
                "0:(1), 10:(1+sinn(t))",
                &[
                    "[motion] zoom",
                    "key 10",
                    "unknown function `sinn`",
                    "did you mean `sin`",
                    "column 14",
                ],
            ),
            ("0:(1+tt)", &["unknown variable `tt`", "variables here"]),
            ("0:()", &["[motion] zoom", "empty value"]),
            ("0:", &["[motion] zoom", "empty value"]),
            ("", &["[motion] zoom", "empty schedule"]),
            (
                "0:(1/0)",
                &["[motion] zoom", "frame 0", "not a finite number"],
            ),
            ("0:(sqrt(-1-t))", &["[motion] zoom", "frame 0", "NaN"]),
            ("0:(1) 5:(2)", &["[motion] zoom", "column"]),
            ("0:(1),,5:(2)", &["[motion] zoom", "stray comma"]),
            ("x:(1)", &["[motion] zoom", "key `x`"]),
        ];
        for (sched, needles) in cases {
            let text = format!("[motion]\nzoom = \"{sched}\"\n");
            let e = parse(&text).expect_err(sched).to_string();
            for n in *needles {
                assert!(e.contains(n), "schedule {sched:?}: error lacks {n:?}: {e}");
            }
        }
    }

    #[test]
    fn travel_weights() {
        let s = parse(
            "[animation_prompts]\ntravel = \"linear\"\n[prompts]\n\"0\" = \"a\"\n\"10\" = \"b\"\n",
        )
        .unwrap();
        let (p, w) = s.travel_at(5).unwrap();
        assert_eq!((p.positive.as_str(), w), ("b", 0.5));
        assert!(
            s.travel_at(10).is_none(),
            "after the last key there is nothing to travel to"
        );
        assert!(
            parse("[prompts]\n\"0\" = \"a\"\n\"10\" = \"b\"\n")
                .unwrap()
                .travel_at(5)
                .is_none()
        );
    }

    #[test]
    fn motion_script_prompt_weights() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("w.rhai"),
            "fn frame(ctx) { if ctx.frame >= 2 { #{ prompt: #{ catw: 1.0 + ctx.t / 10.0 } } } }",
        )
        .unwrap();
        let text = "[animation]\nmax_frames = 6\n[motion]\nscript = \"w.rhai\"\n[prompts]\n\"0\" = \"a (cat:`catw`)\"\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let sched = scene.schedules().unwrap();
        // frames before the first assignment take the first value; the column shows in `anim schedule`
        assert_eq!(
            sched.get("prompt.catw").unwrap(),
            &[1.2, 1.2, 1.2, 1.3, 1.4, 1.5]
        );
        assert_eq!(scene.prompt_at_with(5, &sched).positive, "a (cat:1.5)");
        assert_eq!(scene.prompt_at_with(0, &sched).positive, "a (cat:1.2)");
        // without the script the variable is unknown: a clear error at load
        let e = Scene::from_toml(
            "[prompts]\n\"0\" = \"a (cat:`catw`)\"\n",
            &dir.path().join("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("catw"), "{e}");
    }

    #[test]
    fn prompt_math() {
        let s = parse("[prompts]\n\"0\" = \"a (cat:`1+t/10`) --neg `t*2` dogs\"\n").unwrap();
        assert_eq!(s.prompt_at(5).positive, "a (cat:1.5)");
        assert_eq!(s.prompt_at(5).negative, "10 dogs");
        let e = parse("[prompts]\n\"0\" = \"a (cat:`1+sinn(t)`)\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[prompts] \"0\"") && e.contains("sinn"), "{e}");
        assert!(
            parse("[prompts]\n\"0\" = \"a `t\"\n")
                .unwrap_err()
                .to_string()
                .contains("backtick")
        );
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/scene-format.md");
        for table in TABLES.iter().chain([""].iter()) {
            for key in table_keys(table) {
                let documented = doc.contains(&format!("`{key}`"))
                    || doc.contains(&format!("`[{key}]`"))
                    || doc.contains(&format!("`[[{key}]]`"));
                assert!(
                    documented,
                    "docs/scene-format.md does not document `{key}` of [{table}]"
                );
            }
        }
    }

    #[test]
    fn registry_matches_tables() {
        let s = Scene::default();
        let texts = s.schedule_texts();
        assert_eq!(
            texts.len(),
            registry::SCHEDULES.len(),
            "every registry entry has a scene field"
        );
        for d in registry::SCHEDULES {
            assert!(
                table_keys(d.table).contains(&d.key),
                "{}.{} missing from the table",
                d.table,
                d.key
            );
        }
    }

    fn parse(s: &str) -> Result<Scene, SceneError> {
        Scene::from_toml(s, Path::new("scene.toml"))
    }

    #[test]
    fn schedules_are_evaluated_once_while_the_scene_is_unchanged() {
        let mut s =
            parse("[animation]\nmax_frames = 6\n[motion]\nzoom = \"0:(1+t/10)\"\n").unwrap();
        let a = s.frame_schedules().unwrap();
        assert!(
            Arc::ptr_eq(&a, &s.frame_schedules().unwrap()),
            "read once, reused"
        );
        assert!(Arc::ptr_eq(&a, &s.clone().frame_schedules().unwrap()));
        s.motion.zoom = ScheduleText::text("0:(2)");
        let b = s.frame_schedules().unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "a changed scene is evaluated anew");
        assert_eq!((a.at(3).zoom, b.at(3).zoom), (1.3, 2.0));
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is in Deforum's default zoom
    fn defaults_follow_deforum() {
        let s = parse("").unwrap();
        assert_eq!(
            (s.image.width, s.image.height, s.animation.max_frames),
            (512, 512, 120)
        );
        assert_eq!(s.generation.sampler, ScheduleText::text("Euler a"));
        let f = s.schedules().unwrap();
        assert_eq!(f.at(5).strength, 0.65);
        assert!((f.at(1).zoom - (1.0025 + 0.002 * (1.25f64 * 3.14 / 30.0).sin())).abs() < 1e-12);
    }

    #[test]
    fn prompts_and_neg() {
        let s =
            parse("[prompts]\n\"0\" = \"a forest --neg blurry\"\n\"10\" = \"a city\"\n").unwrap();
        assert_eq!(
            s.prompt_at(3),
            Prompt {
                positive: "a forest".into(),
                negative: "blurry".into()
            }
        );
        assert_eq!(s.prompt_at(10).positive, "a city");
    }

    #[test]
    fn unknown_key_did_you_mean() {
        let e = parse("[motion]\nzom = 1.0\n").unwrap_err().to_string();
        assert!(
            e.contains("did you mean `zoom`") && e.contains("line 2"),
            "{e}"
        );
        let e = parse("[image]\nzoom = 1.0\n").unwrap_err().to_string();
        assert!(e.contains("[motion]"), "{e}");
    }

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
