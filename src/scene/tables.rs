//! The scene's tables: the `scene_table!` macro, one settings struct per table with its
//! defaults, the enums their keys take, and the keys allowed per table.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::registry;
use crate::seeds::SeedBehavior;

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
        /// InstructPix2Pix image guidance scale (only read by a model whose UNet takes 8 channels).
        pix2pix_img_cfg_scale,
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
        /// Camera Shakify shake added to the 3D camera (`{ name = "Investigation", intensity = 1.0, speed = 1.0 }`).
        #[serde(skip_serializing_if = "crate::motion::ShakeSettings::is_off")]
        shake: crate::motion::ShakeSettings = crate::motion::ShakeSettings::default(),
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
    /// `[cadence]`: diffusion cadence, its optical flow, and the redo generations.
    CadenceSettings ("cadence") {
        /// Diffuse every Nth frame; the frames between are blends of warped diffused frames.
        diffusion_cadence: usize = 1,
        /// Optical-flow cadence: `None`, or the flow method (`RAFT`, `DIS Medium`, `DIS Fine`,
        /// `Farneback`) that moves the tweens along the flow between the two key frames
        /// (2D and 3D modes).
        optical_flow_cadence: String = "None".into(),
        /// Optical-flow redo: `None`, or the flow method of a throw-away generation whose
        /// flow from the previous frame, applied to it, becomes the init picture.
        optical_flow_redo_generation: String = "None".into(),
        /// Extra generations before each diffused frame, each one the next one's init.
        diffusion_redo: usize = 0,
    }
    schedules {
        /// Optical-flow factor of tween frames.
        cadence_flow_factor,
        /// Optical-flow factor of the redo generation's warp.
        redo_flow_factor,
    }
}

/// `[[controlnet]]`: one ControlNet unit (at most 5; Deforum's `cn_1_*` … `cn_5_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlNetUnit {
    /// Whether the unit runs (an off unit is still plotted by `anim schedule`).
    pub enabled: bool,
    /// ControlNet model folder (`model.onnx` + `config.json`), relative to the scene file; not
    /// needed when the model's UNet has its ControlNets merged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Preprocessor: `none`, `invert`, `canny`, `depth`, `openpose` (A1111 names such as
    /// `depth_midas` and `dw_openpose_full` too).
    pub module: String,
    /// The control input: an image, a folder of frames (sorted by name), or a video; frame i
    /// takes input frame i, and a shorter input holds its last frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<PathBuf>,
    /// Use the frame's img2img source (the previous frame, moved and prepared) as the input
    /// (Deforum's `loopback_mode`); off at a txt2img frame 0.
    pub loopback: bool,
    /// Conditioning weight per frame.
    pub weight: ScheduleText,
    /// Share of the steps where the unit starts.
    pub guidance_start: ScheduleText,
    /// Share of the steps where the unit ends.
    pub guidance_end: ScheduleText,
    /// Preprocessor resolution: the input's short side is resized to it.
    pub processor_res: u32,
    /// First preprocessor parameter (canny: low threshold).
    pub threshold_a: f64,
    /// Second preprocessor parameter (canny: high threshold).
    pub threshold_b: f64,
    /// How the control map is fitted to the frame: `Just Resize`, `Inner Fit (Scale to Fit)`,
    /// `Outer Fit (Shrink to Fit)` (or `resize`, `crop`, `fill`).
    pub resize_mode: String,
    /// `Balanced`, `My prompt is more important` or `ControlNet is more important`.
    pub control_mode: String,
    /// Preprocessor resolution from the input and frame sizes (A1111's pixel perfect).
    pub pixel_perfect: bool,
    /// How the guidance window is read: `diffusers` (per model call) or `a1111` (per sampling
    /// step, as Deforum's ControlNet extension; Deforum settings files use it).
    pub window: String,
    /// Extract a video input's frames again at each render (else reuse the extracted frames
    /// when their count matches).
    pub overwrite_frames: bool,
    /// openpose: the person detector (YOLOX, `yolox_l.onnx`), relative to the scene file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pose_detector: Option<PathBuf>,
    /// openpose: the whole-body pose estimator (DWPose, `dw-ll_ucoco_384.onnx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pose_estimator: Option<PathBuf>,
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
            enabled: true,
            model: None,
            module: "none".into(),
            input: None,
            loopback: false,
            weight: d("weight"),
            guidance_start: d("guidance_start"),
            guidance_end: d("guidance_end"),
            processor_res: 512,
            threshold_a: 100.0,
            threshold_b: 200.0,
            resize_mode: "Inner Fit (Scale to Fit)".into(),
            control_mode: "Balanced".into(),
            pixel_perfect: false,
            window: "diffusers".into(),
            overwrite_frames: true,
            pose_detector: None,
            pose_estimator: None,
        }
    }
}

impl ControlNetUnit {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "model",
        "module",
        "input",
        "loopback",
        "weight",
        "guidance_start",
        "guidance_end",
        "processor_res",
        "threshold_a",
        "threshold_b",
        "resize_mode",
        "control_mode",
        "pixel_perfect",
        "window",
        "overwrite_frames",
        "pose_detector",
        "pose_estimator",
    ];
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

/// When the hybrid-video composite runs (Deforum's `hybrid_composite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybridComposite {
    /// No composite.
    #[serde(rename = "none", alias = "None")]
    None,
    /// After the hybrid motion, before the colour match (Deforum's `Normal`).
    #[serde(rename = "normal", alias = "Normal")]
    Normal,
    /// After the camera warp, before the hybrid motion.
    #[serde(rename = "before motion", alias = "Before Motion")]
    BeforeMotion,
    /// On the painted frame (from frame 1 on), before the colour match.
    #[serde(rename = "after generation", alias = "After Generation")]
    AfterGeneration,
}

/// The mask of the hybrid-video composite (Deforum's `hybrid_comp_mask_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybridMaskType {
    /// No mask: the composite is the video frame.
    #[serde(rename = "none", alias = "None")]
    None,
    /// The depth of the previous frame (the `[depth]` model, run-wide min/max).
    #[serde(rename = "depth", alias = "Depth")]
    Depth,
    /// The depth of the video frame (through a JPEG, as Deforum).
    #[serde(rename = "video depth", alias = "Video Depth")]
    VideoDepth,
    /// `blend(gray(prev), gray(video), comp_mask_blend_alpha)`.
    #[serde(rename = "blend", alias = "Blend")]
    Blend,
    /// `|gray(prev) - gray(video)|`.
    #[serde(rename = "difference", alias = "Difference")]
    Difference,
}

/// When the composite mask is equalized (Deforum's `hybrid_comp_mask_equalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybridEqualize {
    /// Never.
    #[serde(rename = "none", alias = "None")]
    None,
    /// Before the contrast.
    #[serde(rename = "before", alias = "Before")]
    Before,
    /// After the auto-contrast.
    #[serde(rename = "after", alias = "After")]
    After,
    /// Both.
    #[serde(rename = "both", alias = "Both")]
    Both,
}

/// The hybrid-video motion (Deforum's `hybrid_motion`): the video's motion from frame t-1 to t
/// applied to the previous frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybridMotion {
    /// No hybrid motion.
    #[serde(rename = "none", alias = "None")]
    None,
    /// Dense optical flow (`flow_method`, `flow_factor`).
    #[serde(rename = "optical flow", alias = "Optical Flow")]
    OpticalFlow,
    /// A homography from matched features (RANSAC).
    #[serde(rename = "perspective", alias = "Perspective")]
    Perspective,
    /// A similarity (rotation, uniform scale, shift) from matched features (RANSAC).
    #[serde(rename = "affine", alias = "Affine")]
    Affine,
}

/// How A1111 fills the masked area before encoding (Deforum's `fill`, A1111's `inpainting_fill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskFill {
    /// Paint the masked area from its blurred surroundings (A1111 mode 0).
    #[serde(rename = "fill", alias = "Fill")]
    Fill,
    /// Keep the init image's pixels (A1111 mode 1).
    #[serde(rename = "original", alias = "Original")]
    Original,
    /// Replace the masked latents by seeded noise (A1111 mode 2).
    #[serde(rename = "latent noise", alias = "Latent Noise")]
    LatentNoise,
    /// Zero the masked latents (A1111 mode 3).
    #[serde(rename = "latent nothing", alias = "Latent Nothing")]
    LatentNothing,
}

scene_table! {
    /// `[mask]`: Deforum's masks (docs/scene-format.md, "`[mask]`"): where img2img may change the
    /// frame, where the noise goes, and the overlay that pins the rest to the init image.
    MaskSettings ("mask") {
        /// Masked img2img, mask composition and the noise mask.
        use_mask: bool = false,
        /// The mask of frame 0 and the value of `{video_mask}` (relative to the scene file).
        #[serde(skip_serializing_if = "Option::is_none")]
        mask_file: Option<PathBuf> = None,
        /// Read `{video_mask}` from a video, one frame per rendered frame.
        use_mask_video: bool = false,
        /// The mask video (relative to the scene file).
        #[serde(skip_serializing_if = "Option::is_none")]
        video_mask_path: Option<PathBuf> = None,
        /// The mask video, one frame per rendered frame as `{video_mask}` (relative to the scene
        /// file): the same as `use_mask_video = true` with `video_mask_path`.
        #[serde(skip_serializing_if = "Option::is_none")]
        video: Option<PathBuf> = None,
        /// Invert the noise mask and the overlay mask.
        invert_mask: bool = false,
        /// Contrast factor of a loaded mask (Pillow's `ImageEnhance.Contrast`).
        mask_contrast_adjust: f64 = 1.0,
        /// Brightness factor of a loaded mask (Pillow's `ImageEnhance.Brightness`).
        mask_brightness_adjust: f64 = 1.0,
        /// Gaussian sigma of A1111's mask blur, in pixels.
        mask_overlay_blur: u32 = 4,
        /// Paste the init image back outside the mask after generation.
        overlay_mask: bool = true,
        /// Inpaint a crop around the mask at full resolution (A1111's `inpaint_full_res`).
        full_res_mask: bool = true,
        /// Pixels added around the mask's bounding box by `full_res_mask`.
        full_res_mask_padding: u32 = 4,
        /// The init image's alpha is `{video_mask}`.
        use_alpha_as_mask: bool = false,
        /// Mask expression per frame, held until the next key (`0: ("{video_mask}")`).
        mask_schedule: String = "0: (\"{video_mask}\")".into(),
        /// Use `noise_mask_schedule` for the noise mask (else `mask_schedule`).
        use_noise_mask: bool = false,
        /// Noise-mask expression per frame, held until the next key.
        noise_mask_schedule: String = "0: (\"{video_mask}\")".into(),
        /// How the masked area starts: fill, original, latent noise, latent nothing.
        fill: MaskFill = MaskFill::Original,
        /// The CLIPSeg ONNX export for `<words>` masks (a folder from scripts/export_clipseg.py,
        /// relative to the scene file); default: `ANIM_CLIPSEG_MODEL`, else
        /// `~/.local/share/anim/models/clipseg` if it exists.
        #[serde(skip_serializing_if = "Option::is_none")]
        clipseg: Option<PathBuf> = None,
    }
    schedules {}
}

impl MaskSettings {
    /// The mask video in use: `video`, else `video_mask_path` with `use_mask_video`.
    pub fn mask_video(&self) -> Option<&std::path::Path> {
        self.video.as_deref().or(self
            .video_mask_path
            .as_deref()
            .filter(|_| self.use_mask_video))
    }

    /// Whether masks are on: `use_mask`, or a mask video (which turns them on, as in Deforum).
    pub fn active(&self) -> bool {
        self.use_mask || self.mask_video().is_some()
    }
}

impl fmt::Display for HybridComposite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HybridComposite::None => "none",
            HybridComposite::Normal => "normal",
            HybridComposite::BeforeMotion => "before motion",
            HybridComposite::AfterGeneration => "after generation",
        })
    }
}

impl fmt::Display for HybridMotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HybridMotion::None => "none",
            HybridMotion::OpticalFlow => "optical flow",
            HybridMotion::Perspective => "perspective",
            HybridMotion::Affine => "affine",
        })
    }
}

scene_table! {
    /// `[hybrid]`: Deforum's hybrid video (2D and 3D modes): a video composited into each frame
    /// and its motion applied to it (docs/scene-format.md, "Hybrid video").
    HybridSettings ("hybrid") {
        /// When the video frame is composited: none, normal, before motion, after generation.
        composite: HybridComposite = HybridComposite::None,
        /// The composite's mask: none, depth, video depth, blend, difference.
        comp_mask_type: HybridMaskType = HybridMaskType::None,
        /// Invert the mask.
        comp_mask_inverse: bool = false,
        /// Equalize the mask: none, before (the contrast), after (the auto-contrast), both.
        comp_mask_equalize: HybridEqualize = HybridEqualize::None,
        /// Stretch the mask between the two cut-off percentiles.
        comp_mask_auto_contrast: bool = false,
        /// Write each frame's mask and composite under `OUT/hybridframes/`.
        comp_save_extra_frames: bool = false,
        /// The video's motion applied to each frame: none, optical flow, perspective, affine.
        motion: HybridMotion = HybridMotion::None,
        /// Measure the motion from the previous frame (moved by the camera) to video frame t,
        /// not from video frame t-1.
        motion_use_prev_img: bool = false,
        /// Flow method of `motion = "optical flow"`: RAFT, DIS Medium, DIS Fine, Farneback.
        flow_method: String = "RAFT".into(),
        /// Forward/backward consistency check of the flow.
        flow_consistency: bool = false,
        /// Gaussian sigma of the consistency mask's blur (0: none).
        consistency_blur: u32 = 2,
        /// Frame 0 is img2img of the video's first frame at `[init] strength`.
        use_first_frame_as_init_image: bool = true,
        /// Use `[init] image` in place of every video frame (`max_frames` is then kept).
        use_init_image: bool = false,
        /// The video (relative to the scene file); default `[video_input] video_init_path`.
        #[serde(skip_serializing_if = "Option::is_none")]
        video_init_path: Option<PathBuf> = None,
        /// Extract the video's frames at each render (off: reuse the frames an earlier render
        /// left in `OUT/hybridinput/`, extracting them where there are none).
        generate_inputframes: bool = true,
        /// Use every Nth video frame.
        extract_nth_frame: usize = 1,
        /// First video frame used.
        extract_from_frame: usize = 0,
        /// Last video frame used (-1: the end).
        extract_to_frame: i64 = -1,
    }
    schedules {
        /// Share of the composite blended into the frame (0: none; outside 0..1 extrapolates).
        comp_alpha,
        /// `blend` mask: share of the video frame's grey.
        comp_mask_blend_alpha,
        /// Contrast factor of the mask.
        comp_mask_contrast,
        /// Auto-contrast low percentile (cast to a whole number, as Deforum).
        comp_mask_auto_contrast_cutoff_low,
        /// Auto-contrast high percentile (cast to a whole number, as Deforum).
        comp_mask_auto_contrast_cutoff_high,
        /// Multiplier of the hybrid optical flow.
        flow_factor,
    }
}

scene_table! {
    /// `[looper]`: Deforum's guided images: each frame's init blended with a keyed guide image
    /// (docs/scene-format.md, "Guided images").
    LooperSettings ("looper") {
        /// Turn guided images on (Deforum's `use_looper`).
        use_looper: bool = false,
        /// Deforum's `init_images`: JSON text of frame (a number or an expression in `max_f`)
        /// → image path (relative to the scene file; URLs are refused).
        init_images: String = String::new(),
    }
    schedules {
        /// Strength (share of the init kept) while guided images are on; replaces
        /// `[generation] strength` (Deforum's `image_strength_schedule`).
        image_strength,
        /// Blend factor peak (Deforum's `blendFactorMax`).
        blend_factor_max,
        /// Blend factor swing (Deforum's `blendFactorSlope`).
        blend_factor_slope,
        /// Tween length in frames (Deforum's `tweening_frames_schedule`); never 0.
        tweening_frames,
        /// Share of the guide image in the colour-correction target.
        color_correction_factor,
    }
}

impl LooperSettings {
    /// True when guided images are off.
    pub fn is_off(&self) -> bool {
        !self.use_looper
    }
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
        /// The RAFT ONNX export (a folder from scripts/export_raft.py, relative to the scene
        /// file) used where a flow method is `RAFT`; default: `ANIM_RAFT_MODEL`, else
        /// `~/.local/share/anim/models/raft` if it exists.
        #[serde(skip_serializing_if = "Option::is_none")]
        raft: Option<PathBuf> = None,
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
        /// Write each ControlNet unit's control map per frame to `OUT/controlnet_N/`.
        save_control_maps: bool = false,
        /// Write `video.srt` beside the video: one cue per frame with its number, seed and the
        /// parameters of `subtitle_params` (Deforum's `deforum_save_gen_info_as_srt`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        subtitles: bool = false,
        /// Deforum's labels of the parameters each cue shows ("Angle", "Zoom", "Str Sch",
        /// "Prompt", …: docs/scene-format.md lists them); Deforum's
        /// `deforum_save_gen_info_as_srt_params`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        subtitle_params: Vec<String> = Vec::new(),
        /// With `subtitles`, also put the cues into `video.mp4` (and the upscaled and
        /// interpolated videos, not slow motion) as a mov_text subtitle stream (Deforum's
        /// `deforum_embed_srt`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        embed_subtitles: bool = false,
    }
    schedules {}
}

/// Deforum's frame interpolation engines (`[post] frame_interpolation_engine`).
pub const INTERPOLATION_ENGINES: &[&str] = &["None", "RIFE v4.6", "FILM"];

/// Deforum's upscale factors (`[post] r_upscale_factor`).
pub const UPSCALE_FACTORS: &[&str] = &["x2", "x3", "x4"];

scene_table! {
    /// `[post]`: passes over the finished frames, each writing a video beside `video.mp4`:
    /// upscaling, then frame interpolation (Deforum's order). Keys keep Deforum's names.
    PostSettings ("post") {
        /// "None", "RIFE v4.6" (RIFE's order and padding) or "FILM" (FILM's recursive order).
        frame_interpolation_engine: String = "None".into(),
        /// The interpolation model (`.onnx` or a folder holding `model.onnx`, relative to the
        /// scene file); default `models/RIFE46` or `models/film_net` beside the scene.
        #[serde(skip_serializing_if = "Option::is_none")]
        frame_interpolation_model: Option<PathBuf> = None,
        /// Frames out per frame in, 2..=10.
        frame_interpolation_x_amount: u32 = 2,
        /// Slow motion: the interpolated video plays at fps·x / slow_mo_amount.
        frame_interpolation_slow_mo_enabled: bool = false,
        /// The slow-motion divisor, 2..=10.
        frame_interpolation_slow_mo_amount: u32 = 2,
        /// Keep the interpolated frames (`OUT/frames_<ENGINE>_x<X>/`).
        frame_interpolation_keep_imgs: bool = false,
        /// Interpolate the upscaled frames (when upscaling runs and keeps them).
        frame_interpolation_use_upscaled: bool = false,
        /// Upscale the frames into `video_Upscaled_x<N>.mp4`.
        r_upscale_video: bool = false,
        /// "x2", "x3" or "x4": must be the model's own factor.
        r_upscale_factor: String = "x2".into(),
        /// A Deforum model name (the folder `models/<name>` beside the scene) or a path to an
        /// `.onnx` file or a folder holding `model.onnx`.
        r_upscale_model: String = "realesr-animevideov3".into(),
        /// Keep the upscaled frames (`OUT/frames_upscaled_x<N>/`).
        r_upscale_keep_imgs: bool = true,
        /// Tile side in input pixels (0: whole frames); memory is bounded by the tile.
        r_upscale_tile: u32 = 256,
        /// Context around each tile, in input pixels; tiles overlap by twice this and are
        /// cross-faded there.
        r_upscale_tile_pad: u32 = 10,
    }
    schedules {}
}

impl PostSettings {
    /// True when no post pass is asked for.
    pub fn is_off(&self) -> bool {
        self.frame_interpolation_engine == "None" && !self.r_upscale_video
    }
}

scene_table! {
    /// `[parseq]`: a Parseq manifest whose rendered values replace the schedules they cover
    /// (docs/scene-format.md, "Parseq").
    ParseqSettings ("parseq") {
        /// The manifest: a file path (relative to the scene file) or the JSON text itself.
        #[serde(skip_serializing_if = "Option::is_none")]
        manifest: Option<String> = None,
        /// Motion schedules take Parseq's `<field>_delta` values (else the absolute values).
        use_deltas: bool = true,
        /// The manifest's frame count, `options.output_fps` and `options.cadence` replace
        /// max_frames, fps and diffusion_cadence.
        non_schedule_overrides: bool = true,
    }
    schedules {}
}

/// Keys allowed per table, for error messages.
pub(super) fn table_keys(table: &str) -> &'static [&'static str] {
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
            "parseq",
            "audio",
            "hybrid",
            "mask",
            "post",
            "looper",
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
        "parseq" => ParseqSettings::KEYS,
        "post" => PostSettings::KEYS,
        "audio" => crate::audio::AudioSettings::KEYS,
        "hybrid" => HybridSettings::KEYS,
        "looper" => LooperSettings::KEYS,
        "mask" => MaskSettings::KEYS,
        _ => &[],
    }
}

/// Every table a scene file may have.
pub(super) const TABLES: &[&str] = &[
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
    "parseq",
    "audio",
    "hybrid",
    "mask",
    "post",
    "looper",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::Scene;
    use crate::scene::tests::parse;

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
    fn hybrid_table_reads_lower_case_names_and_checks_its_needs() {
        let s = parse(
            "[hybrid]\ncomposite = \"before motion\"\ncomp_mask_type = \"blend\"\n\
             comp_alpha = \"0:(0.25)\"\nvideo_init_path = \"clip.mp4\"\n",
        )
        .unwrap();
        assert_eq!(s.hybrid.composite, HybridComposite::BeforeMotion);
        assert_eq!(s.hybrid.comp_mask_type, HybridMaskType::Blend);
        assert_eq!(s.schedules().unwrap().at(3).hybrid_comp_alpha, 0.25);
        for (toml, needle) in [
            ("[hybrid]\ncomposite = \"normal\"\n", "needs a video"),
            (
                "[animation]\nmode = \"None\"\n[hybrid]\ncomposite = \"normal\"\nvideo_init_path = \"v.mp4\"\n",
                "\"2D\" or \"3D\"",
            ),
            ("[hybrid]\nflow_method = \"raft\"\n", "[hybrid] flow_method"),
            ("[hybrid]\nconsistency_blur = 65\n", "0..=64"),
            (
                "[hybrid]\ncomposite = \"normal\"\ncomp_mask_type = \"depth\"\nvideo_init_path = \"v.mp4\"\n",
                "[depth] model",
            ),
            (
                "[hybrid]\ncomposite = \"normal\"\nvideo_init_path = \"v.mp4\"\ncomp_mask_auto_contrast = true\ncomp_mask_auto_contrast_cutoff_high = \"0:(100), 5:(101)\"\n",
                "frame 5",
            ),
            ("[hybrid]\ncomposite = \"Sometimes\"\n", "composite"),
        ] {
            let e = parse(toml).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml}: {e}");
        }
    }

    #[test]
    fn mask_table_reads_deforum_keys_and_checks_ranges() {
        let s = parse(
            "[mask]\nmask_file = \"m.png\"\ninvert_mask = true\nmask_contrast_adjust = 1.5\n\
             mask_overlay_blur = 0\nfill = \"latent noise\"\n\
             mask_schedule = '0: (\"{video_mask}\"), 10: (\"[C:/m.png] & !{video_mask}\")'\n",
        )
        .unwrap();
        assert_eq!(s.mask.fill, MaskFill::LatentNoise);
        assert!(s.mask.invert_mask && s.mask.overlay_mask && s.mask.full_res_mask);
        assert_eq!(
            s.mask.mask_file.as_deref(),
            Some(std::path::Path::new("m.png"))
        );
        assert_eq!(s.mask.mask_contrast_adjust, 1.5);
        assert_eq!(s.mask.full_res_mask_padding, 4);
        for (toml, needle) in [
            (
                "[mask]\nmask_overlay_blur = 65\n",
                "[mask] mask_overlay_blur = 65: must be within 0..=64",
            ),
            (
                "[mask]\nfull_res_mask_padding = 9000\n",
                "[mask] full_res_mask_padding",
            ),
            (
                "[mask]\nmask_contrast_adjust = -1\n",
                "[mask] mask_contrast_adjust",
            ),
            (
                "[mask]\nmask_brightness_adjust = nan\n",
                "[mask] mask_brightness_adjust",
            ),
            (
                "[mask]\nmask_schedule = '0: (\"[a] &\")'\n",
                "[mask] mask_schedule",
            ),
            (
                "[mask]\nnoise_mask_schedule = '0: (\"{a\")'\n",
                "[mask] noise_mask_schedule",
            ),
            (
                "[mask]\nuse_mask_video = true\n",
                "[mask] use_mask_video = true needs video_mask_path",
            ),
            ("[mask]\nfill = \"nothing\"\n", "fill"),
            ("[mask]\nmask_blur = 3\n", "mask_blur"),
        ] {
            let e = parse(toml).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml}: {e}");
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

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is in Deforum's default zoom
    fn defaults_follow_deforum() {
        let s = parse("[image]").unwrap();
        assert_eq!(
            (s.image.width, s.image.height, s.animation.max_frames),
            (512, 512, 120)
        );
        assert_eq!(s.generation.sampler, ScheduleText::text("Euler a"));
        let f = s.schedules().unwrap();
        assert_eq!(f.at(5).strength, 0.65);
        assert!((f.at(1).zoom - (1.0025 + 0.002 * (1.25f64 * 3.14 / 30.0).sin())).abs() < 1e-12);
    }
}
