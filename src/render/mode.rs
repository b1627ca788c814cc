//! The animation modes: what each diffused frame starts from, and whether a frame carries over
//! to the next. 2D, 3D and None move the previous frame by the camera; Video Input starts each
//! frame from the input video's; Interpolation paints each frame from the prompt alone.

use std::time::Instant;

use anyhow::Result;
use image::RgbImage;

use super::Loop;
use crate::scene::{AnimationMode, Scene};

/// What a frame starts from, as a mode says.
pub(crate) struct Start {
    /// The picture img2img starts from; `None`: txt2img (a preview shows the init image or the
    /// test pattern instead).
    pub image: Option<RgbImage>,
    /// The frames after the previous key frame and before this one, each the previous key frame
    /// moved by its own camera (their tweens are cross-faded from these).
    pub between: Vec<RgbImage>,
    /// Share of the picture repainted (diffusers' strength: 1 - Deforum's).
    pub denoise: f64,
    /// Run the pre-diffusion stages on the picture, and colour-match the painted frame.
    pub prepare: bool,
    /// Grey the painted frame when the scene forces grayscale.
    pub finish_gray: bool,
    /// The frame's kind in the manifest.
    pub kind: &'static str,
    /// Milliseconds spent moving the picture.
    pub warp_ms: f64,
    /// Milliseconds spent on hybrid video (composites and motion before img2img).
    pub hybrid_ms: f64,
}

impl Default for Start {
    /// txt2img from nothing: no picture, no tweens, no stages.
    fn default() -> Start {
        Start {
            image: None,
            between: Vec::new(),
            denoise: 1.0,
            prepare: false,
            finish_gray: false,
            kind: "key",
            warp_ms: 0.0,
            hybrid_ms: 0.0,
        }
    }
}

/// One animation mode.
pub(crate) trait Mode {
    /// Whether a frame's picture is where the next frame starts (then frames between diffused
    /// frames can be tweens: diffusion cadence).
    fn carries_over(&self) -> bool;
    /// What frame `f` starts from; `prev` is the last diffused frame `p` (`None` at frame 0).
    fn start(
        &mut self,
        lp: &mut Loop,
        p: usize,
        f: usize,
        prev: Option<&RgbImage>,
    ) -> Result<Start>;
}

/// The mode of `scene`.
pub(crate) fn for_scene(scene: &Scene) -> Box<dyn Mode> {
    match scene.animation.mode {
        AnimationMode::VideoInput => Box::new(VideoInput),
        AnimationMode::Interpolation => Box::new(Interpolation),
        AnimationMode::TwoD | AnimationMode::ThreeD | AnimationMode::None => Box::new(Motion),
    }
}

/// 2D, 3D and None: frame 0 is the init image (or txt2img), every next one the previous one
/// moved by the camera of each frame in between.
struct Motion;

impl Mode for Motion {
    fn carries_over(&self) -> bool {
        true
    }

    fn start(
        &mut self,
        lp: &mut Loop,
        p: usize,
        f: usize,
        prev: Option<&RgbImage>,
    ) -> Result<Start> {
        let scene = lp.scene;
        let Some(prev) = prev else {
            // hybrid video: frame 0 is img2img of the video's first frame (Deforum's
            // `hybrid_use_first_frame_as_init_image`)
            let first = match &lp.hybrid {
                Some(h) => h.first_frame_init()?,
                None => None,
            };
            let image = match (first, &scene.init.image) {
                (Some(img), _) => Some(img),
                (None, Some(path)) => Some(super::load_init(scene, path)?),
                (None, None) => None,
            };
            return Ok(Start {
                image,
                denoise: 1.0 - scene.init.strength,
                finish_gray: true,
                ..Start::default()
            });
        };
        // the previous key frame moved through the camera of every frame up to this one; the
        // in-between steps are kept for the tweens (the same warps, not repeated). With hybrid
        // motion each frame in between is also moved by the video's motion after its camera, as
        // Deforum moves its tweens (the measured steps are kept to move the key frame back)
        let t = Instant::now();
        let mut img = prev.clone();
        let mut between = Vec::with_capacity(f - p - 1);
        let mut hybrid_ms = 0.0;
        if let Some(h) = lp.hybrid.as_mut() {
            h.take_steps();
        }
        for i in p + 1..=f {
            img = lp.warp(i, img)?;
            if i < f {
                if let Some(h) = lp.hybrid.as_mut().filter(|h| h.moves()) {
                    let t = Instant::now();
                    let sched = std::sync::Arc::clone(&lp.sched);
                    img = h.motion(i, img, &sched.at(i))?;
                    hybrid_ms += super::ms(t.elapsed());
                }
                between.push(img.clone());
            }
        }
        let warp_ms = super::ms(t.elapsed()) - hybrid_ms;
        // hybrid video: the composites and the video's motion, after the camera warp
        if let Some(h) = lp.hybrid.as_mut() {
            let t = Instant::now();
            let sched = std::sync::Arc::clone(&lp.sched);
            let v = sched.at(f);
            h.set_previous(f, prev)?;
            img = h.before_diffusion(f, img, &v)?;
            hybrid_ms += super::ms(t.elapsed());
        }
        Ok(Start {
            image: Some(img),
            between,
            denoise: 1.0 - lp.sched.at(f).strength.clamp(0.0, 1.0),
            prepare: true,
            finish_gray: true,
            kind: "key",
            warp_ms,
            hybrid_ms,
        })
    }
}

/// Video Input: each frame is img2img of the video's frame (no noise, no colour match, as
/// Deforum), moved by the camera when `[video_input] motion` is on.
struct VideoInput;

impl Mode for VideoInput {
    fn carries_over(&self) -> bool {
        false
    }

    fn start(&mut self, lp: &mut Loop, _: usize, f: usize, _: Option<&RgbImage>) -> Result<Start> {
        let t = Instant::now();
        let mut input = lp.input_frame(f)?;
        if lp.scene.video_input.motion && f > 0 {
            input = lp.warp(f, input)?;
        }
        Ok(Start {
            image: Some(input),
            denoise: 1.0 - lp.sched.at(f).strength.clamp(0.0, 1.0),
            kind: "video",
            warp_ms: super::ms(t.elapsed()),
            ..Start::default()
        })
    }
}

/// Interpolation: each frame is txt2img with the prompt travelling between keyed prompts.
struct Interpolation;

impl Mode for Interpolation {
    fn carries_over(&self) -> bool {
        false
    }

    fn start(&mut self, _: &mut Loop, _: usize, _: usize, _: Option<&RgbImage>) -> Result<Start> {
        Ok(Start {
            kind: "txt2img",
            ..Start::default()
        })
    }
}
