//! The frame loop, in Deforum's order. For each diffused (key) frame the [`mode`] says what it
//! starts from (the previous key frame moved by the camera, a frame of the input video, or
//! nothing), the pre-diffusion [`stages`] prepare it (colour match, grayscale, contrast,
//! anti-blur, noise) and the [`painter`] repaints it from a [`painter::FrameRequest`]; with a
//! diffusion cadence the frames between two key frames are blends of the two key frames, each
//! moved to the in-between frame's camera. `preview` runs the motion alone.
//!
//! After every key frame the loop state is checkpointed ([`state`]), so `--resume` continues
//! with frames bit-identical to an uninterrupted run; Ctrl-C finishes the current key frame,
//! encodes the video from what exists and stops. Where no frame depends on the one before
//! (Video Input, Interpolation), [`RenderOptions::frames`] renders a range of the frames alone,
//! with its own checkpoints and manifest in [`part_folder`], so several machines can share one
//! scene; [`encode_videos`] then makes the videos of the whole folder. docs/architecture.md shows
//! where new modes, stages and conditioning inputs plug in.

mod manifest;
mod mode;
mod painter;
mod report;
mod stages;
pub mod state;
mod writer;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use image::{Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::camera::Camera;
use crate::controlnet::Controls;
use crate::diffusion::{Pipeline, SessionOptions};
use crate::effects::{
    self,
    color::{ColorTarget, MatchSpace},
};
use crate::flow::warp::{CadenceFlow, apply_flow};
use crate::flow::{Estimator, Method};
use crate::output::{self, VideoSettings};
use crate::scene::{
    AnimationMode, ColorCoherence, FrameSchedules, FrameValues, PromptTravel, Scene,
};
use crate::seeds::SeedSequence;
use manifest::{FrameRecord, Manifest, ms};
use mode::{Mode, Start};
pub use painter::check_model_size;
use painter::{Diffuse, FrameRequest, Painter};
pub use report::StageReport;
use stages::{Stage, StageInput};
use writer::{Writer, Written};

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Overrides the scene's output folder.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Skip the video even when the scene asks for one.
    pub no_video: bool,
    /// The x264/x265 preset of the videos, in place of the scene's `[output] preset` (a render)
    /// or of [`PREVIEW_PRESET`] (a preview).
    pub video_preset: Option<String>,
    /// Overrides the scene's model folder.
    pub model: Option<PathBuf>,
    /// Continue an interrupted render in the same output folder.
    pub resume: bool,
    /// With `resume`: start afresh where the output folder holds no interrupted render (or one
    /// of another scene), and return at once where it holds this scene's complete render: what
    /// a farm task wants when it runs again after a requeue.
    pub resume_auto: bool,
    /// Render only these frames (0-based, inclusive) into the output folder, with their own
    /// checkpoints and manifest in [`part_folder`]; never encodes a video. Only for scenes whose
    /// frames do not depend on the previous ones ([`frames_apart`]).
    pub frames: Option<RangeInclusive<usize>>,
    /// Execution provider and cache folder.
    pub session: SessionOptions,
}

/// Why the frames of `scene` cannot be rendered apart from each other (a range with
/// [`RenderOptions::frames`], or split between machines), or `Ok` where they can: each frame
/// must start from something other than the previous frame (Video Input: the input video's
/// frame; Interpolation: nothing) and the seed must be fixed.
///
/// # Errors
/// The reason, naming the scene file and the key, and what would allow it.
pub fn frames_apart(scene: &Scene) -> Result<()> {
    let file = scene.path.display();
    let (mode_key, seed_key) = if scene.from_deforum {
        ("`animation_mode`", "`seed`")
    } else {
        ("[animation] mode", "[generation] seed")
    };
    let mode = scene.animation.mode;
    if mode::for_scene(scene).carries_over() {
        let what = if mode == AnimationMode::None {
            "repaints the previous frame (img2img without motion)"
        } else {
            "moves the previous frame by the camera and repaints it"
        };
        bail!(
            "{file}: {mode_key} = \"{mode}\" {what}, so each frame depends on the one before and \
             the frames can only be made in order, on one machine; rendering a range of frames \
             (--frames, --split) needs mode \"Video Input\" or \"Interpolation\""
        );
    }
    if scene.generation.seed == -1 {
        bail!(
            "{file}: {seed_key} = -1 draws a random seed for each render, so frames rendered apart \
             would not belong together; set a fixed seed to render a range of frames"
        );
    }
    Ok(())
}

/// Where a render of `frames` only keeps its checkpoints and manifest:
/// `OUT/parts/AAAAAA-BBBBBB/`.
pub fn part_folder(out: &Path, frames: &RangeInclusive<usize>) -> PathBuf {
    out.join("parts")
        .join(format!("{:06}-{:06}", frames.start(), frames.end()))
}

/// Parses a frame range `A..B` (0-based, both ends included, A ≤ B).
///
/// # Errors
/// Text that is not two frame numbers around `..`, or A > B.
pub fn parse_frame_range(text: &str) -> Result<RangeInclusive<usize>> {
    let parse = |s: &str| s.trim().parse::<usize>().ok();
    match text.split_once("..").map(|(a, b)| (parse(a), parse(b))) {
        Some((Some(a), Some(b))) if a <= b => Ok(a..=b),
        Some((Some(a), Some(b))) => {
            bail!("frames {text}: the first frame {a} is after the last frame {b}")
        }
        _ => bail!(
            "frames `{text}`: expected A..B, the first and last frame (0-based, both included), e.g. 0..9"
        ),
    }
}

/// What a render produced.
#[derive(Debug, Clone, Serialize)]
pub struct RenderSummary {
    /// Output folder.
    pub out: PathBuf,
    /// Frames written.
    pub frames: usize,
    /// The mp4, when encoded.
    pub video: Option<PathBuf>,
    /// The seed used (resolved when the scene says -1).
    pub seed: i64,
    /// Wall time.
    pub seconds: f64,
    /// Stopped by Ctrl-C before the last frame.
    pub interrupted: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                // second Ctrl-C: give up at once
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing the current frame, then writing the video (Ctrl-C again to quit now)");
        });
    });
}

fn load_init(scene: &Scene, p: &Path) -> Result<RgbImage> {
    let path = scene.resolve(p);
    let img = output::read_rgb(&path)
        .with_context(|| format!("{}: [init] image", scene.path.display()))?;
    Ok(fit(img, scene))
}

fn fit(img: RgbImage, scene: &Scene) -> RgbImage {
    let (w, h) = (scene.image.width, scene.image.height);
    if img.dimensions() == (w, h) {
        img
    } else {
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Lanczos3)
    }
}

/// A colourful pattern with a grid, a ring and an off-centre marker, so that zoom, rotation and
/// translation are all visible in a preview.
pub fn test_pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let grid = x % 32 == 0 || y % 32 == 0;
        let (dx, dy) = (fx - 0.5, fy - 0.5);
        let r = (dx * dx + dy * dy).sqrt();
        let ring = (r - 0.3).abs() < 0.015;
        let marker = (fx - 0.7).abs() < 0.06 && (fy - 0.3).abs() < 0.06;
        if marker {
            Rgb([255, 255, 255])
        } else if grid || ring {
            Rgb([20, 20, 20])
        } else {
            Rgb([
                (fx * 255.0) as u8,
                (fy * 255.0) as u8,
                ((1.0 - fx) * 160.0 + 60.0) as u8,
            ])
        }
    })
}

/// A random seed for `seed = -1`, from the clock and process id.
fn random_seed() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    ((nanos as u64 ^ ((std::process::id() as u64) << 32)) % 4_294_967_295) as i64
}

fn progress(quiet: bool, n: usize, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    let style = ProgressStyle::with_template(&format!(
        "{what} [{{bar:30}}] frame {{pos}}/{{len}}  {{spf}}  ETA {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("spf", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let per = s.per_sec();
        let _ = if per > 0.0 {
            write!(w, "{:.2} s/frame", 1.0 / per)
        } else {
            write!(w, "-- s/frame")
        };
    })
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Test hook for kills at a known moment: with `ANIM_HALT_AFTER_FRAME=N` in the environment, the
/// loop stands still right after writing frame N (before its key frame's checkpoint) until it is
/// killed or interrupted (Ctrl-C then stops the render as usual). The writing thread writes
/// frame N first, so the whole render stands still, as when the loop wrote its frames itself.
fn halt_after_frame(i: usize, writer: &mut Writer) -> Result<()> {
    static AT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("ANIM_HALT_AFTER_FRAME")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(i) {
        writer.flush()?;
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// What a flow estimator of the loop is for.
#[derive(Clone, Copy)]
enum FlowUse {
    /// `optical_flow_cadence`.
    Cadence,
    /// `optical_flow_redo_generation`.
    Redo,
}

/// The flow estimator `scene` asks for `what`, where `active` (the feature applies to this
/// render) and the setting is not `None`.
///
/// # Errors
/// A method that cannot be set up (RAFT without a model), naming the scene file and key.
fn flow_estimator(scene: &Scene, what: FlowUse, active: bool) -> Result<Option<Estimator>> {
    let (text, key) = match what {
        FlowUse::Cadence => (&scene.cadence.optical_flow_cadence, "optical_flow_cadence"),
        FlowUse::Redo => (
            &scene.cadence.optical_flow_redo_generation,
            "optical_flow_redo_generation",
        ),
    };
    let key = if scene.from_deforum {
        format!("`{key}`")
    } else {
        format!("[cadence] {key}")
    };
    let file = scene.path.display();
    if !active
        || !crate::scene::flow_choice(text).map_err(|e| anyhow::anyhow!("{file}: {key}: {e}"))?
    {
        return Ok(None);
    }
    let method: Method = text.parse()?;
    Estimator::new(method, scene.raft_model().as_deref())
        .map(Some)
        .with_context(|| format!("{file}: {key} = \"{text}\""))
}

/// The seed of redo generation `k` of a frame whose seed is `seed` (0: optical-flow redo, 1 to
/// n: diffusion redo). Deforum draws these from Python's unseeded global random generator; anim
/// derives them ([`crate::seeds::derived`]), so a render and its resume stay byte-identical.
fn redo_seed(seed: i64, k: usize) -> i64 {
    crate::seeds::derived(seed, k as u64)
}

/// The frames that are diffused: every `cadence`th frame and the last one.
fn key_frames(n: usize, cadence: usize) -> Vec<usize> {
    let mut keys: Vec<usize> = (0..n).step_by(cadence.max(1)).collect();
    if keys.last() != Some(&(n - 1)) {
        keys.push(n - 1);
    }
    keys
}

/// The state of the loop between frames.
struct Loop<'s, 'p> {
    scene: &'s Scene,
    camera: Camera<'s>,
    sched: Arc<FrameSchedules>,
    /// Where the checkpoints, the manifest and the extracted input video go: `out`, or the
    /// part folder of a range of frames.
    book: PathBuf,
    painter: Option<&'p mut dyn Painter>,
    /// The operations before img2img, in order.
    stages: Vec<Box<dyn Stage>>,
    color_sample: Option<RgbImage>,
    /// The colour sample prepared for matching (its histograms), rebuilt when the sample changes.
    color_target: Option<ColorTarget>,
    /// Writes the frames, their records and the checkpoints on a thread of its own.
    writer: Writer,
    bar: ProgressBar,
    /// Depth-model time of the warps since the last frame record took it.
    depth_ms: f64,
    /// The ControlNet units' inputs and preprocessors (renders with units only).
    controls: Option<Controls>,
    /// Optical-flow cadence's flow method (2D and 3D renders with a cadence, when set).
    cadence_flow: Option<Estimator>,
    /// Optical-flow redo's flow method (renders, when set).
    redo_flow: Option<Estimator>,
    /// Hybrid video's state (scenes with a hybrid composite or motion only).
    hybrid: Option<crate::hybrid::Hybrid>,
    /// Guided images: the keys and each guide image at the frame size (looper scenes only).
    looper: Option<(crate::looper::Guides, Vec<RgbImage>)>,
    /// The masks and the overlay's base (the init image; `None` in Video Input, whose base is
    /// each input frame), with `[mask] use_mask` or a mask video.
    masks: Option<(crate::mask::FrameMasks, Option<RgbImage>)>,
}

/// The mask video's frames extracted into `book/maskframes/` (reused on a resume), with their
/// number; `None` without a mask video. In Video Input, every `extract_nth_frame`th frame from
/// `extract_from_frame` to `extract_to_frame`, as the input video's (Deforum's `vid2frames`).
fn extract_mask_video(
    scene: &Scene,
    book: &Path,
    resumed: bool,
) -> Result<Option<(PathBuf, usize)>> {
    let Some(video) = scene.mask.mask_video() else {
        return Ok(None);
    };
    let dir = book.join("maskframes");
    let count = output::count_pngs;
    let n = if resumed && count(&dir) > 0 {
        count(&dir)
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        let key = if scene.mask.video.is_some() {
            "[mask] video"
        } else {
            "[mask] video_mask_path"
        };
        // Video Input extracts the mask video as the input video (every nth frame, from/to)
        let vi = &scene.video_input;
        let (nth, from, to) = match scene.animation.mode {
            AnimationMode::VideoInput => (
                vi.extract_nth_frame,
                vi.extract_from_frame,
                usize::try_from(vi.extract_to_frame).ok(),
            ),
            _ => (1, 0, None),
        };
        output::extract_frames(&scene.resolve(video), &dir, nth, from, to)
            .with_context(|| format!("{}: {key}", scene.path.display()))?
    };
    if n == 0 {
        bail!(
            "{}: the mask video {} has no frames",
            scene.path.display(),
            video.display()
        );
    }
    Ok(Some((dir, n)))
}

/// The guide images of a looper scene, each read and resized as Deforum (Pillow's LANCZOS).
fn load_guides(scene: &Scene) -> Result<Option<(crate::looper::Guides, Vec<RgbImage>)>> {
    let Some(guides) = scene
        .looper_guides()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?
    else {
        return Ok(None);
    };
    let (w, h) = (scene.image.width, scene.image.height);
    let images = guides
        .images()
        .iter()
        .map(|p| {
            let p = scene.resolve(Path::new(p));
            let img = output::read_rgb(&p)
                .with_context(|| format!("{}: [looper] init_images", scene.path.display()))?;
            Ok(crate::hybrid::resize::lanczos_pil(&img, w, h))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((guides, images)))
}

impl Loop<'_, '_> {
    /// Moves `img` by the camera of frame `i`.
    fn warp(&mut self, i: usize, img: RgbImage) -> Result<RgbImage> {
        let (out, info) = self
            .camera
            .warp(i, &self.sched.at(i), img)
            .with_context(|| format!("frame {i}"))?;
        self.depth_ms += info.depth_ms;
        if info.depth_fallback {
            self.bar.suspend(|| eprintln!("warning: frame {i}: the depth map is NaN, infinite or constant; flat depth used"));
        }
        Ok(out)
    }

    /// Undoes the camera of frame `i` on `img`.
    fn unwarp(&mut self, i: usize, img: RgbImage) -> Result<RgbImage> {
        self.camera
            .unwarp(i, &self.sched.at(i), img)
            .with_context(|| format!("frame {i}"))
    }

    /// Sets the colour sample and prepares it for matching once.
    fn set_color_sample(&mut self, sample: Option<RgbImage>) {
        self.color_target = match (self.match_space(), &sample) {
            (Some(space), Some(img)) => Some(ColorTarget::new(img, space)),
            _ => None,
        };
        self.color_sample = sample;
    }

    fn match_space(&self) -> Option<MatchSpace> {
        match self.scene.coherence.color_coherence {
            ColorCoherence::None => None,
            ColorCoherence::Rgb => Some(MatchSpace::Rgb),
            ColorCoherence::Hsv => Some(MatchSpace::Hsv),
            ColorCoherence::Lab | ColorCoherence::Image | ColorCoherence::VideoInput => {
                Some(MatchSpace::Lab)
            }
        }
    }

    /// Queues frame `i` for writing (with its record; the writer fills in `write_ms`).
    fn write(&mut self, i: usize, img: RgbImage, rec: FrameRecord) -> Result<()> {
        self.writer.frame(i, img, rec)?;
        halt_after_frame(i, &mut self.writer)
    }

    /// Checkpoints the loop after key frame `f` (its picture, the frame file just queued, and
    /// the colour sample).
    fn checkpoint(
        &mut self,
        scene_hash: &str,
        seed: i64,
        f: usize,
        seed_calls: usize,
    ) -> Result<()> {
        let cp = state::Checkpoint {
            scene_hash: scene_hash.to_string(),
            seed,
            key_frame: f,
            seed_calls,
            has_color_sample: self.color_sample.is_some(),
            records_len: 0,
            has_prev_flow: false,
        };
        let prev_flow = self.hybrid.as_ref().and_then(|h| h.prev_flow().cloned());
        self.writer
            .checkpoint(cp, self.color_sample.clone(), prev_flow)
    }

    /// Frame `i` of the extracted input video (the last one when the video is shorter).
    fn input_frame(&self, i: usize) -> Result<RgbImage> {
        let dir = self.book.join("inputframes");
        let mut p = dir.join(format!("{i:06}.png"));
        if !p.is_file() {
            let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            p = dir.join(format!("{:06}.png", n.saturating_sub(1)));
        }
        Ok(fit(output::read_rgb(&p)?, self.scene))
    }

    /// Diffused frame `f` after the previous one `p` (`prev`, `None` at frame 0), as `mode`
    /// starts it; writes it and, with cadence, the tweens before it; returns its picture.
    fn key(
        &mut self,
        mode: &mut dyn Mode,
        p: usize,
        f: usize,
        prev: Option<&RgbImage>,
        seed: i64,
    ) -> Result<RgbImage> {
        let mut start = mode.start(self, p, f, prev)?;
        let mut rec = FrameRecord {
            seed: Some(seed),
            warp_ms: start.warp_ms,
            depth_ms: std::mem::take(&mut self.depth_ms),
            ..FrameRecord::new(&self.sched, f, start.kind)
        };
        if start.hybrid_ms > 0.0 {
            rec.stage_ms.insert("hybrid_ms".into(), start.hybrid_ms);
        }
        let between = std::mem::take(&mut start.between);
        let img = match self.painter.take() {
            None => match start.image {
                Some(img) => img,
                // what a preview shows where the model would paint from nothing
                None => match &self.scene.init.image {
                    Some(path) => load_init(self.scene, path)?,
                    None => test_pattern(self.scene.image.width, self.scene.image.height),
                },
            },
            Some(painter) => {
                let result = self.paint(painter, f, seed, start, &mut rec);
                self.painter = Some(painter);
                result?
            }
        };
        if f == 0 && mode.carries_over() && self.painter.is_some() && self.match_space().is_some() {
            let sample = self.first_color_sample(&img)?;
            self.set_color_sample(Some(sample));
        }
        self.tweens(p, f, between, &img)?;
        self.write(f, img.clone(), rec)?;
        Ok(img)
    }

    /// The colour-coherence sample taken at frame 0: the input video's first frame, the
    /// reference image, or frame 0 itself.
    fn first_color_sample(&self, frame0: &RgbImage) -> Result<RgbImage> {
        let scene = self.scene;
        Ok(
            match (
                &scene.coherence.color_coherence,
                &scene.coherence.color_coherence_image_path,
            ) {
                (ColorCoherence::VideoInput, _) => self.input_frame(0)?,
                (ColorCoherence::Image, Some(p)) => fit(
                    output::read_rgb(&scene.resolve(p)).with_context(|| {
                        format!(
                            "{}: [coherence] color_coherence_image_path",
                            scene.path.display()
                        )
                    })?,
                    scene,
                ),
                _ => frame0.clone(),
            },
        )
    }

    /// Prepares the start of frame `f` (the stages, when the mode asks) and repaints it.
    fn paint(
        &mut self,
        painter: &mut dyn Painter,
        f: usize,
        seed: i64,
        start: Start,
        rec: &mut FrameRecord,
    ) -> Result<RgbImage> {
        let scene = self.scene;
        let mut start = start;
        if f == 0
            && let Some((g, images)) = &self.looper
        {
            // Deforum's looper: frame 0 is img2img of the first guide image at the init strength
            start.image = Some(images[g.index_at(0)].clone());
            start.denoise = 1.0 - scene.init.strength;
        }
        let mut img = start.image;
        if start.prepare
            && scene.coherence.color_coherence == ColorCoherence::VideoInput
            && f.is_multiple_of(scene.coherence.color_coherence_video_every_N_frames.max(1))
        {
            let sample = self.input_frame(f)?;
            self.set_color_sample(Some(sample));
        }
        let sched = Arc::clone(&self.sched);
        let v = sched.at(f);
        // the previous frame colour-matched, before contrast and noise: optical-flow redo's
        // flow starts from it
        let mut matched = None;
        if let Some((m, _)) = &mut self.masks {
            m.at_frame(f)?;
        }
        if start.prepare
            && let Some(mut picture) = img.take()
        {
            // the noise mask is composed on the frame the noise stage receives (word masks see it)
            let mut noise_mask = None;
            for stage in &self.stages {
                if stage.name() == "noise"
                    && let Some((m, _)) = &mut self.masks
                {
                    noise_mask = Some(m.noise(f, &picture)?);
                }
                let input = StageInput {
                    values: &v,
                    seed,
                    color: self.color_target.as_ref(),
                    noise_mask: noise_mask.as_ref(),
                };
                if stage.name() == "contrast" && self.redo_flow.is_some() {
                    matched = Some(picture.clone());
                }
                let t = Instant::now();
                picture = stage.apply(picture, &input);
                rec.stage_ms
                    .insert(format!("{}_ms", stage.name()), ms(t.elapsed()));
            }
            img = Some(picture);
        }
        // guided images: the prepared (warped, noised) init blended with the frame's guide image;
        // image_strength replaces strength (docs/deforum-differences.md); the painted frame is
        // colour-corrected toward blend(init, guide, color_correction_factor)
        let mut correction = None;
        if start.prepare
            && let (Some((g, images)), Some(init)) = (&self.looper, img.as_mut())
        {
            let guide = &images[g.index_at(f)];
            let bf = g
                .factor_at(
                    f,
                    v.tweening_frames,
                    v.blend_factor_max,
                    v.blend_factor_slope,
                )
                .map_err(|e| anyhow::anyhow!("{}: [looper] {e}", scene.path.display()))?;
            *init = crate::looper::pil_blend(init, guide, bf);
            correction = Some(crate::looper::correction_target(
                init,
                guide,
                v.color_correction_factor,
            ));
            start.denoise = 1.0 - v.image_strength.clamp(0.0, 1.0);
        }
        let control = match &mut self.controls {
            Some(c) => {
                let t = Instant::now();
                let maps = c.frame(f, &sched, img.as_ref())?;
                rec.stage_ms.insert("controlnet_ms".into(), ms(t.elapsed()));
                for w in c.take_warnings() {
                    self.bar.suspend(|| eprintln!("warning: {w}"));
                }
                maps
            }
            None => Vec::new(),
        };
        // the redo generations (Deforum's order: optical-flow redo, then diffusion redo), each
        // on a seed of its own derived from the frame's seed
        // the inpainting mask (img2img only; frame 0: the mask file)
        let inpaint = match (&mut self.masks, img.as_ref()) {
            (Some((m, _)), Some(picture)) => Some(m.inpaint(f, picture)?),
            _ => None,
        };
        let redo = start.prepare && start.denoise > 0.0 && img.is_some();
        if redo && let (Some(est), Some(prev)) = (self.redo_flow.as_mut(), matched.as_ref()) {
            let t = Instant::now();
            let mut req = Self::request_for(
                scene,
                &sched,
                f,
                &v,
                redo_seed(seed, 0),
                img.as_ref(),
                start.denoise,
            );
            req.control = &control;
            let (d, _) = painter::paint_masked(painter, &req, inpaint.as_ref(), &scene.mask)?;
            let flow = est
                .flow(prev, &d, None)
                .with_context(|| format!("frame {f}: optical-flow redo"))?;
            img = Some(apply_flow(&d, &flow, v.redo_flow_factor));
            rec.stage_ms.insert("flow_redo_ms".into(), ms(t.elapsed()));
        }
        if redo && scene.cadence.diffusion_redo > 0 {
            let t = Instant::now();
            for k in 1..=scene.cadence.diffusion_redo {
                let mut req = Self::request_for(
                    scene,
                    &sched,
                    f,
                    &v,
                    redo_seed(seed, k),
                    img.as_ref(),
                    start.denoise,
                );
                req.control = &control;
                let (d, _) = painter::paint_masked(painter, &req, inpaint.as_ref(), &scene.mask)?;
                img = Some(d);
            }
            rec.stage_ms
                .insert("diffusion_redo_ms".into(), ms(t.elapsed()));
        }
        let mut req = self.request(f, &v, seed, img.as_ref(), start.denoise);
        req.control = &control;
        let (mut out, times) = painter::paint_masked(painter, &req, inpaint.as_ref(), &scene.mask)?;
        rec.painted(&times);
        if let Some(target) = &correction {
            out = crate::looper::color_correct(&out, target);
        }
        if start.prepare
            && f > 0
            && let Some(h) = self.hybrid.as_mut()
        {
            let t = Instant::now();
            out = h.composite(crate::scene::HybridComposite::AfterGeneration, f, out, &v)?;
            rec.stage_ms
                .insert("hybrid_after_ms".into(), ms(t.elapsed()));
        }
        if start.prepare
            && !scene.coherence.legacy_colormatch
            && let Some(target) = &self.color_target
        {
            out = target.apply(&out);
        }
        if start.finish_gray && scene.coherence.color_force_grayscale {
            effects::grayscale(&mut out);
        }
        if inpaint.is_some() && self.masks.is_some() {
            // Deforum's overlay base: the init image, in Video Input the input video's frame
            // (docs/research §2.6)
            let input = match scene.animation.mode {
                AnimationMode::VideoInput => Some(self.input_frame(f)?),
                _ => None,
            };
            if let Some((m, base)) = &self.masks {
                out = m.overlay(f, out, input.as_ref().or(base.as_ref()));
            }
        }
        Ok(out)
    }

    /// What the painter gets for frame `f`.
    fn request<'a>(
        &self,
        f: usize,
        v: &'a FrameValues<'a>,
        seed: i64,
        init: Option<&'a RgbImage>,
        denoise: f64,
    ) -> FrameRequest<'a> {
        Self::request_for(self.scene, &self.sched, f, v, seed, init, denoise)
    }

    /// What the painter gets for frame `f` of `scene`.
    fn request_for<'a>(
        scene: &Scene,
        sched: &FrameSchedules,
        f: usize,
        v: &'a FrameValues<'a>,
        seed: i64,
        init: Option<&'a RgbImage>,
        denoise: f64,
    ) -> FrameRequest<'a> {
        FrameRequest {
            frame: f,
            values: v,
            prompt: scene.prompt_at_with(f, sched),
            travel: scene.travel_at_with(f, sched),
            // Interpolation mode blends linearly unless the scene asks for slerp
            slerp: scene.animation_prompts.travel == PromptTravel::Slerp,
            seed,
            size: (scene.image.width, scene.image.height),
            checkpoint: match v.checkpoint.trim() {
                "" => None,
                c => Some(scene.resolve(Path::new(c))),
            },
            init,
            denoise,
            control: &[],
            mask: None,
            fill: crate::mask::LatentFill::Original,
        }
    }

    /// Writes the frames between key frames `p` and `f`: both key frames seen from frame i's
    /// camera, cross-faded by distance (`between` holds key frame `p` moved to each frame).
    ///
    /// With optical-flow cadence (and a strength above 0 at `p`), the flow between the two key
    /// frames at the first tween moves both along it as Deforum's does ([`CadenceFlow`]).
    fn tweens(&mut self, p: usize, f: usize, between: Vec<RgbImage>, key: &RgbImage) -> Result<()> {
        let flow_on = self.cadence_flow.is_some() && self.sched.at(p).strength > 0.0;
        let factor = self.sched.at(f).cadence_flow_factor;
        let mut cadence: Option<CadenceFlow> = None;
        // the later key frame moved back to each frame in between: through the hybrid motion
        // of each frame (undone) and then its camera, the reverse of the way forward
        let steps = match self.hybrid.as_mut() {
            Some(h) => h.take_steps(),
            None => Vec::new(),
        };
        let t = Instant::now();
        let mut back = Vec::with_capacity(f.saturating_sub(p + 1));
        let mut b = key.clone();
        for j in (p + 2..=f).rev() {
            for (_, s) in steps.iter().filter(|(k, _)| *k == j) {
                b = s.undo(&b);
            }
            b = self.unwarp(j, b)?;
            back.push(b.clone());
        }
        back.reverse();
        let mut back_ms = ms(t.elapsed());
        for ((i, a), b) in (p + 1..f).zip(between).zip(back) {
            let t = Instant::now();
            let w = (i - p) as f32 / (f - p) as f32;
            let (a, b) = match self.cadence_flow.as_mut().filter(|_| flow_on) {
                Some(est) => {
                    let c = match &mut cadence {
                        Some(c) => c,
                        None => cadence.insert(CadenceFlow::new(
                            &est.flow(&a, &b, None)
                                .with_context(|| format!("frame {i}: optical-flow cadence"))?,
                        )),
                    };
                    c.advance(f64::from(w));
                    (c.prev(&a, factor), c.next(&b, factor))
                }
                None => (a, b),
            };
            let mut tween = a;
            for (x, y) in tween.iter_mut().zip(b.iter()) {
                *x = ((1.0 - w) * *x as f32 + w * *y as f32)
                    .round_ties_even()
                    .clamp(0.0, 255.0) as u8;
            }
            // Deforum overlays the tweens too (with `use_mask` or a mask video), with the
            // latest composed mask when the tween is written: the earlier key frame's
            if let Some((m, base)) = &self.masks {
                tween = m.overlay(p, tween, base.as_ref());
            }
            let trec = FrameRecord {
                blend_ms: ms(t.elapsed()) + std::mem::take(&mut back_ms),
                depth_ms: std::mem::take(&mut self.depth_ms),
                ..FrameRecord::new(&self.sched, i, "tween")
            };
            self.write(i, tween, trec)?;
        }
        Ok(())
    }
}

/// Checks what the loop will need before it starts (the soundtrack, the colour
/// reference image), so a long render does not fail half-way; `anim validate` runs it too.
///
/// # Errors
/// The first problem, naming the scene file and key.
pub fn check_settings(scene: &Scene) -> Result<()> {
    let file = scene.path.display();
    if let Some(a) = scene.soundtrack() {
        let key = soundtrack_key(scene);
        let audio = scene.resolve(a);
        if !audio.is_file() {
            bail!("{file}: {key} {} does not exist", audio.display());
        }
        output::check_audio(&audio).with_context(|| format!("{file}: {key}"))?;
    }
    crate::hybrid::check(scene)?;
    if let (ColorCoherence::Image, Some(p)) = (
        &scene.coherence.color_coherence,
        &scene.coherence.color_coherence_image_path,
    ) {
        output::read_rgb(&scene.resolve(p))
            .with_context(|| format!("{file}: [coherence] color_coherence_image_path"))?;
    }
    Ok(())
}

/// The checkpoint `opts` asks to continue from in `book`, if any. `Err(Some(summary))`: with
/// [`RenderOptions::resume_auto`], `book` already holds this scene's complete render.
#[allow(clippy::type_complexity)]
fn resume_point(
    scene: &Scene,
    opts: &RenderOptions,
    out: &Path,
    book: &Path,
    hash: &str,
) -> Result<Result<Option<(state::Checkpoint, RgbImage, Option<RgbImage>)>, RenderSummary>> {
    if !opts.resume {
        return Ok(Ok(None));
    }
    if opts.resume_auto && !state::has_checkpoint(book) {
        return Ok(match complete_render(out, book, hash) {
            Some(summary) => Err(summary),
            None => Ok(None),
        });
    }
    let (cp, key, sample) = state::load(book)?;
    if cp.scene_hash != hash {
        if opts.resume_auto {
            eprintln!(
                "warning: {}: the scene changed since the interrupted render in {}; starting again",
                scene.path.display(),
                out.display()
            );
            return Ok(Ok(None));
        }
        bail!(
            "{}: the scene changed since the interrupted render in {}; render again without --resume (or restore the scene)",
            scene.path.display(),
            out.display()
        );
    }
    Ok(Ok(Some((cp, key, sample))))
}

/// The summary of a complete render of the scene with fingerprint `hash` whose manifest is in
/// `book`, or `None` where there is none.
fn complete_render(out: &Path, book: &Path, hash: &str) -> Option<RenderSummary> {
    let text = std::fs::read_to_string(book.join("manifest.json")).ok()?;
    let m: serde_json::Value = serde_json::from_str(&text).ok()?;
    if m["complete"] != serde_json::Value::Bool(true) || m["scene_hash"].as_str() != Some(hash) {
        return None;
    }
    let video = out.join("video.mp4");
    Some(RenderSummary {
        out: out.to_path_buf(),
        frames: m["frames"].as_array().map_or(0, Vec::len),
        video: (book == out && video.is_file()).then_some(video),
        seed: m["seed"].as_i64().unwrap_or(0),
        seconds: 0.0,
        interrupted: false,
    })
}

fn run_loop(
    scene: &Scene,
    opts: &RenderOptions,
    mut painter: Option<&mut dyn Painter>,
    kind: &str,
    model: Option<&Path>,
) -> Result<RenderSummary> {
    let start = Instant::now();
    install_ctrlc();
    let hash = scene.fingerprint();
    let out = output_folder(scene, opts)?;
    let frames_dir = out.join("frames");
    if opts.frames.is_some() {
        frames_apart(scene)?;
    }
    let book = match &opts.frames {
        Some(r) => part_folder(&out, r),
        None => out.clone(),
    };
    let resumed = match resume_point(scene, opts, &out, &book, &hash)? {
        Ok(r) => r,
        Err(done) => return Ok(done),
    };
    let mut scene = scene.clone();
    scene.generation.seed = match &resumed {
        Some((cp, _, _)) => cp.seed,
        None if scene.generation.seed == -1 => random_seed(),
        None => scene.generation.seed,
    };
    let seed = scene.generation.seed;
    let needs_video = scene.animation.mode == AnimationMode::VideoInput
        || scene.coherence.color_coherence == ColorCoherence::VideoInput;
    if needs_video {
        // Deforum: max_frames becomes the number of extracted frames
        let vi = &scene.video_input;
        let video = scene.resolve(vi.video_init_path.as_deref().unwrap_or(Path::new("")));
        let dir = book.join("inputframes");
        let count = if resumed.is_some() && dir.is_dir() {
            output::count_pngs(&dir)
        } else {
            let _ = std::fs::remove_dir_all(&dir);
            let to = usize::try_from(vi.extract_to_frame).ok();
            output::extract_frames(
                &video,
                &dir,
                vi.extract_nth_frame,
                vi.extract_from_frame,
                to,
            )
            .with_context(|| format!("{}: [video_input] video_init_path", scene.path.display()))?
        };
        if scene.animation.mode == AnimationMode::VideoInput {
            scene.animation.max_frames = count;
        }
    }
    if scene.hybrid_active() {
        // Deforum's hybrid setup: the video's frames, and max_frames becomes their number
        crate::hybrid::check(&scene)?;
        let count = crate::hybrid::extract(&scene, &book, resumed.is_some())?;
        if !scene.hybrid.use_init_image {
            scene.animation.max_frames = count;
        }
    }
    let mask_video = extract_mask_video(&scene, &book, resumed.is_some())?;
    if let Some((_, count)) = &mask_video
        && matches!(
            scene.animation.mode,
            AnimationMode::TwoD | AnimationMode::ThreeD
        )
    {
        // Deforum's 2D/3D render with a mask video: one frame per mask frame
        scene.animation.max_frames = *count;
    }
    let n = scene.animation.max_frames;
    let (first, last) = match &opts.frames {
        Some(r) if *r.end() >= n => bail!(
            "{}: --frames {}..{}: the scene has {n} frames (0..{})",
            scene.path.display(),
            r.start(),
            r.end(),
            n - 1
        ),
        Some(r) => (*r.start(), *r.end()),
        None => (0, n - 1),
    };
    let sched = scene
        .frame_schedules()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    check_settings(&scene)?;
    if let Some(p) = &mut painter {
        scene
            .check_noise(&sched)
            .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
        p.check(&scene, &sched)?;
    }
    let controls = match &painter {
        Some(_) => Controls::open(
            &scene,
            &sched,
            &out,
            &book,
            resumed.is_some(),
            &opts.session,
        )?,
        None => None,
    };
    std::fs::create_dir_all(&frames_dir)
        .with_context(|| format!("cannot create output folder {}", frames_dir.display()))?;
    let journal = match &resumed {
        Some((cp, _, _)) => {
            // a kill inside a write leaves its temporary file (a range of frames leaves them:
            // other ranges may be writing into the same folder)
            if opts.frames.is_none() {
                remove_stale_frames(&frames_dir, usize::MAX)?;
            }
            state::Journal::reopen(&book, cp)?
        }
        None => {
            // the folder no longer holds a complete render of its own: no manifest says so
            let _ = std::fs::remove_file(out.join("manifest.json"));
            let _ = std::fs::remove_file(book.join("manifest.json"));
            if opts.frames.is_none() {
                remove_stale_frames(&frames_dir, 0)?;
                let _ = std::fs::remove_dir_all(out.join("parts"));
            }
            state::Journal::create(&book)?
        }
    };
    let mut mode = mode::for_scene(&scene);
    // cadence: the frames between diffused frames are tweens, where a frame carries over
    let cadence = if painter.is_some() && mode.carries_over() {
        scene.cadence.diffusion_cadence
    } else {
        1
    };
    let keys = key_frames(n, cadence);
    let mut seeds = SeedSequence::new(
        scene.generation.seed_behavior,
        seed,
        scene.generation.seed_iter_N,
    );
    // the seeds of the first `calls` key frames, drawn as an uninterrupted render draws them, so
    // a resume or a range of frames continues the same sequence
    let replay = |seeds: &mut SeedSequence, calls: usize| {
        for &k in &keys[..calls.min(keys.len())] {
            seeds.current(sched.at(k).seed);
            seeds.advance();
        }
    };
    let bar = progress(opts.quiet, last + 1 - first, kind);
    let painter_absent = painter.is_none();
    // the videos are encoded while the loop goes on, from the frames as they are written
    let video_path = out.join("video.mp4");
    let video_job = (scene.output.video && !opts.no_video && opts.frames.is_none()).then(|| {
        let preset = video_preset(opts, painter_absent);
        let mut job = output::BackgroundVideo::start(video_outputs(&scene, &video_path, preset));
        if let Some((cp, _, _)) = &resumed {
            for i in 0..=cp.key_frame {
                job.push(output::frame_path(&out, i));
            }
        }
        job
    });
    let writer = Writer::start(out.clone(), journal, video_job, bar.clone());
    let camera = Camera::new(&scene, &sched, &out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    let mut lp = Loop {
        scene: &scene,
        camera,
        sched: Arc::clone(&sched),
        book: book.clone(),
        painter: painter.take(),
        stages: stages::pre_diffusion(&scene),
        color_sample: None,
        color_target: None,
        writer,
        bar,
        depth_ms: 0.0,
        controls,
        cadence_flow: flow_estimator(
            &scene,
            FlowUse::Cadence,
            cadence > 1
                && matches!(
                    scene.animation.mode,
                    AnimationMode::TwoD | AnimationMode::ThreeD
                ),
        )?,
        redo_flow: flow_estimator(&scene, FlowUse::Redo, !painter_absent)?,
        hybrid: crate::hybrid::Hybrid::open(&scene, &book, &out)?,
        looper: load_guides(&scene)?,
        masks: match crate::mask::FrameMasks::new(&scene, mask_video)? {
            Some(m) => {
                // Video Input overlays each frame on its input frame instead
                let base = match &scene.init.image {
                    Some(p) if scene.animation.mode != AnimationMode::VideoInput => {
                        Some(load_init(&scene, p)?)
                    }
                    _ => None,
                };
                Some((m, base))
            }
            None => None,
        },
    };
    let (mut prev, mut done_key, mut seed_calls) = match resumed {
        Some((cp, key, sample)) => {
            replay(&mut seeds, cp.seed_calls);
            lp.set_color_sample(sample);
            if let Some(h) = lp.hybrid.as_mut() {
                let done: Vec<usize> = keys
                    .iter()
                    .copied()
                    .take_while(|&k| k <= cp.key_frame)
                    .collect();
                h.replay(&done, &out)?;
                h.set_prev_flow(state::load_prev_flow(&book, &cp)?);
            }
            lp.bar
                .set_position((cp.key_frame + 1).saturating_sub(first) as u64);
            (key, cp.key_frame, cp.seed_calls)
        }
        None => {
            // a range starts at a key frame: its frames do not carry over, so every frame is one
            let calls = keys
                .iter()
                .position(|&k| k == first)
                .expect("the first frame of a render is a key frame");
            replay(&mut seeds, calls);
            let s = seeds.current(lp.sched.at(first).seed);
            let img = lp.key(mode.as_mut(), first, first, None, s)?;
            seeds.advance();
            lp.checkpoint(&hash, seed, first, calls + 1)?;
            (img, first, calls + 1)
        }
    };
    let mut interrupted = false;
    for w in keys.windows(2) {
        let (p, f) = (w[0], w[1]);
        if f <= done_key {
            continue;
        }
        if f > last {
            break;
        }
        if STOP.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let s = seeds.current(lp.sched.at(f).seed);
        prev = lp.key(mode.as_mut(), p, f, Some(&prev), s)?;
        seeds.advance();
        seed_calls += 1;
        done_key = f;
        lp.checkpoint(&hash, seed, f, seed_calls)?;
    }
    let Written { mut journal, video } = lp.writer.finish()?;
    lp.bar.finish_and_clear();
    let written = (done_key + 1).saturating_sub(first);
    let video = match video {
        Some(job) => {
            finish_videos(&scene, job, &video_path)?;
            Some(video_path)
        }
        None => None,
    };
    let manifest = Manifest {
        pipeline_loads: lp.painter.as_ref().map(|p| p.loads()).unwrap_or(0),
        anim_version: env!("CARGO_PKG_VERSION"),
        kind,
        scene_file: &scene.path,
        scene_hash: &hash,
        part: opts.frames.as_ref().map(|_| [first, last]),
        seed,
        provider: lp.painter.as_ref().map(|p| p.provider()).unwrap_or("none"),
        model_folder: model,
        model_files_sha256: match model {
            Some(m) => manifest::model_hashes(m)?,
            None => Vec::new(),
        },
        controlnet_files_sha256: match model {
            Some(_) => crate::controlnet::model_folders(&scene)
                .into_iter()
                .filter_map(|(i, f)| f.map(|f| (i, f)))
                .map(|(i, f)| Ok((format!("cn_{}", i + 1), manifest::model_hashes(&f)?)))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        },
        complete: !interrupted,
        scene: &scene,
        frames: journal.records()?,
    };
    manifest.write(&book.join("manifest.json"))?;
    if !interrupted {
        state::clear(&book);
        if opts.frames.is_some() {
            // the part's own copy of the input video is not needed any more
            let _ = std::fs::remove_dir_all(book.join("inputframes"));
        }
    }
    Ok(RenderSummary {
        out,
        frames: written,
        video,
        seed,
        seconds: start.elapsed().as_secs_f64(),
        interrupted,
    })
}

/// Waits for the videos of `job` and muxes the scene's soundtrack into the mp4 at `mp4`.
fn finish_videos(scene: &Scene, job: output::BackgroundVideo, mp4: &Path) -> Result<()> {
    job.finish()?;
    if let Some(audio) = scene.soundtrack() {
        // the [audio] file keeps the analysis' alignment: its own offset
        let offset = match (&scene.output.soundtrack, &scene.audio) {
            (None, Some(a)) => a.offset,
            _ => scene.output.soundtrack_offset,
        };
        output::mux_soundtrack(mp4, &scene.resolve(audio), offset)
            .with_context(|| format!("{}: {}", scene.path.display(), soundtrack_key(scene)))?;
    }
    Ok(())
}

/// The key that names the soundtrack: `[output] soundtrack`, or `[audio] file` standing in.
fn soundtrack_key(scene: &Scene) -> &'static str {
    if scene.output.soundtrack.is_some() {
        "[output] soundtrack"
    } else {
        "[audio] file (the soundtrack, as [output] soundtrack is not set)"
    }
}

/// Encodes the videos `scene` asks for (the mp4, and gif/webm on request) from frames `0..n` of
/// `out` and muxes its soundtrack, exactly as a render does at its end; returns the mp4's path.
///
/// # Errors
/// A missing or unreadable frame, an encoder or write error, or an unusable soundtrack.
pub fn encode_videos(scene: &Scene, out: &Path, n: usize) -> Result<PathBuf> {
    let path = out.join("video.mp4");
    let mut job = output::BackgroundVideo::start(video_outputs(scene, &path, None));
    for i in 0..n {
        job.push(output::frame_path(out, i));
    }
    finish_videos(scene, job, &path)?;
    Ok(path)
}

/// The x264/x265 preset of a preview's videos (the scene's `[output] preset`, Deforum's `slow`
/// by default, is for the final render; it costs several times the whole preview).
pub const PREVIEW_PRESET: &str = "ultrafast";

/// The preset of the videos: `--video-preset`, else [`PREVIEW_PRESET`] for a preview (no
/// painter), else `None` (the scene's).
fn video_preset(opts: &RenderOptions, preview: bool) -> Option<&str> {
    opts.video_preset
        .as_deref()
        .or(preview.then_some(PREVIEW_PRESET))
}

/// The videos a scene asks for, `mp4` (at `mp4`) last: each file with its encoder settings
/// (`preset` in place of the scene's).
fn video_outputs(scene: &Scene, mp4: &Path, preset: Option<&str>) -> Vec<(PathBuf, VideoSettings)> {
    let o = &scene.output;
    let settings = VideoSettings {
        fps: o.fps,
        crf: o.crf,
        preset: preset.unwrap_or(&o.preset).to_string(),
        codec: o.codec.clone(),
        pixel_format: o.pixel_format.clone(),
    };
    let variant = |ext: &str, codec: &str, pixel_format: &str| {
        let s = VideoSettings {
            codec: codec.into(),
            pixel_format: pixel_format.into(),
            ..settings.clone()
        };
        (mp4.with_extension(ext), s)
    };
    let mut videos = Vec::new();
    if o.gif {
        videos.push(variant("gif", "gif", "rgb8"));
    }
    if o.webm {
        videos.push(variant("webm", "libvpx-vp9", "yuv420p"));
    }
    videos.push((mp4.to_path_buf(), settings));
    videos
}

/// Removes `NNNNNN.png` files at or beyond `n` (and temporary files) left by an earlier render,
/// so the folder holds exactly this render's frames.
fn remove_stale_frames(dir: &Path, n: usize) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let stale = name.ends_with(".tmp")
            || name
                .strip_suffix(".png")
                .and_then(|s| s.parse::<usize>().ok())
                .is_some_and(|i| i >= n);
        if stale {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove stale frame {}", path.display()))?;
        }
    }
    Ok(())
}

/// Settings of `scene` that change Deforum's output but that the render loop does not apply yet,
/// each with its value, so that a user is never misled by a silently ignored setting.
pub fn unapplied_settings(scene: &Scene) -> Vec<String> {
    let _ = scene;
    Vec::new()
}

/// Loads the model in `folder` and the scene's ControlNets as a render would, and checks that
/// they fit one another (residual inputs and shapes, SD or SDXL, merged nets and modes); for
/// `anim validate`. Scenes without units load nothing.
///
/// # Errors
/// The first problem, naming the scene file and the unit.
pub fn check_controlnets(scene: &Scene, folder: &Path, session: &SessionOptions) -> Result<()> {
    if !crate::controlnet::any_enabled(scene) {
        return Ok(());
    }
    let pipeline = Pipeline::load_controlled(folder, session).with_context(|| {
        format!(
            "{}: [[controlnet]] units need a ControlNet UNet",
            scene.path.display()
        )
    })?;
    let mut painter = Diffuse::new(folder.to_path_buf(), pipeline, 1, session.clone(), true);
    let sched = scene
        .frame_schedules()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    painter.check(scene, &sched)
}

/// With `--resume=auto`: the summary of this scene's complete render in the output folder
/// (or the part folder of `frames`), where it holds one.
fn complete_already(scene: &Scene, opts: &RenderOptions) -> Option<RenderSummary> {
    if !(opts.resume && opts.resume_auto) {
        return None;
    }
    let out = match &opts.out {
        Some(o) => o.clone(),
        None => scene.checked_output_folder().ok()?,
    };
    let book = match &opts.frames {
        Some(r) => part_folder(&out, r),
        None => out.clone(),
    };
    if state::has_checkpoint(&book) {
        return None;
    }
    complete_render(&out, &book, &scene.fingerprint())
}

/// The output folder of a render or preview (`--out`, else the scene's, which must stay below the
/// scene's folder: [`Scene::checked_output_folder`]), created and checked to be writable with no
/// symbolic link leading out of it ([`output::prepare_folder`]).
///
/// # Errors
/// A scene's folder outside its lane, or a folder that cannot be written.
pub fn output_folder(scene: &Scene, opts: &RenderOptions) -> Result<PathBuf> {
    let out = match &opts.out {
        Some(o) => o.clone(),
        None => scene.checked_output_folder()?,
    };
    output::prepare_folder(&out)?;
    if scene.output.video && !opts.no_video {
        output::check_ffmpeg_path(&out.join("video.mp4"))?;
    }
    Ok(out)
}

/// Renders a scene with its model: the full img2img animation.
pub fn render(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    // a complete render is not loaded again for nothing (a farm task run after it finished)
    if let Some(done) = complete_already(scene, opts) {
        return Ok(done);
    }
    let folder = opts.model.clone().or_else(|| scene.model.folder.as_ref().map(|f| scene.resolve(f))).ok_or_else(|| {
        anyhow::anyhow!("{}: no model; set [model] folder = \"path/to/onnx-model\" in the scene, or pass --model DIR", scene.path.display())
    })?;
    if let Some(p) = &scene.init.image {
        load_init(scene, p)?;
    }
    // a folder that cannot take the frames is refused before the model loads
    output_folder(scene, opts)?;
    let controlled = crate::controlnet::any_enabled(scene);
    let load = if controlled {
        Pipeline::load_controlled
    } else {
        Pipeline::load_with
    };
    let pipeline = load(&folder, &opts.session).with_context(|| {
        format!(
            "{}: cannot load the model of [model] folder = {}",
            scene.path.display(),
            folder.display()
        )
    })?;
    if !opts.quiet {
        for note in pipeline.notes() {
            eprintln!("note: {note}");
        }
    }
    let mut painter = Diffuse::new(
        folder.clone(),
        pipeline,
        scene.model.cache_size,
        opts.session.clone(),
        controlled,
    );
    run_loop(scene, opts, Some(&mut painter), "render", Some(&folder))
}

/// Renders `scene` (its first `frames` frames where given) as [`render`] does, without the
/// video, and reports where the time went: each stage's mean time per frame from the manifest,
/// the share inside ONNX Runtime and the frame loop's wall time per frame (`anim bench`).
///
/// # Errors
/// `frames` of 0, or any error of [`render`] or of reading its manifest.
pub fn bench(scene: &Scene, opts: &RenderOptions, frames: Option<usize>) -> Result<StageReport> {
    let mut scene = scene.clone();
    if let Some(n) = frames {
        if n == 0 {
            bail!("--frames 0: bench at least one frame");
        }
        scene.animation.max_frames = scene.animation.max_frames.min(n);
    }
    let opts = RenderOptions {
        no_video: true,
        resume: false,
        frames: None,
        ..opts.clone()
    };
    let summary = render(&scene, &opts)?;
    let book = summary.out.join("manifest.json");
    let mut report = StageReport::from_manifest(&book)?;
    report.wall_ms = Some(summary.seconds * 1000.0 / summary.frames.max(1) as f64);
    Ok(report)
}

/// Renders the motion alone: frame 0 is the init image or a test pattern, each next frame is the
/// previous one warped exactly as `render` warps it (no model, no noise, no colour matching).
pub fn preview(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    run_loop(scene, opts, None, "preview", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::StageTimes;

    /// Paints frame i as a flat image of value 10·i.
    struct Flat;

    impl Painter for Flat {
        fn paint(&mut self, req: &FrameRequest) -> Result<(RgbImage, StageTimes)> {
            let (w, h) = req.size;
            Ok((
                RgbImage::from_pixel(w, h, Rgb([10 * req.frame as u8; 3])),
                StageTimes::default(),
            ))
        }
    }

    #[test]
    fn cadence_saves_key_frames_and_cross_fades_between() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[image]\nwidth = 16\nheight = 8\n[animation]\nmode = \"None\"\nmax_frames = 8\n[generation]\nseed = 5\n\
                    [coherence]\ncolor_coherence = \"None\"\n[noise]\nnoise = 0\n[anti_blur]\namount = 0\n[cadence]\ndiffusion_cadence = 3\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let opts = RenderOptions {
            out: Some(dir.path().join("out")),
            quiet: true,
            no_video: true,
            ..Default::default()
        };
        let summary = run_loop(&scene, &opts, Some(&mut Flat), "render", None).unwrap();
        assert_eq!(summary.frames, 8);
        // keys 0, 3, 6 and the last frame 7; tweens blend their neighbours by distance
        let values: Vec<u8> = (0..8)
            .map(|i| {
                output::read_rgb(&output::frame_path(&dir.path().join("out"), i))
                    .unwrap()
                    .get_pixel(3, 3)
                    .0[0]
            })
            .collect();
        assert_eq!(values, vec![0, 10, 20, 30, 40, 50, 60, 70]);
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/manifest.json")).unwrap(),
        )
        .unwrap();
        let kinds: Vec<&str> = manifest["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec![
                "key", "tween", "tween", "key", "tween", "tween", "key", "key"
            ]
        );
        let seeds: Vec<i64> = manifest["frames"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["seed"].as_i64())
            .collect();
        assert_eq!(
            seeds,
            vec![5, 6, 7, 8],
            "iter: one seed step per diffused frame"
        );
    }

    /// A range of frames draws the seeds a whole render draws for them, also where the seed
    /// schedule asks for random seeds (each drawn from the sequence in order).
    #[test]
    fn a_range_of_frames_gets_the_seeds_of_a_whole_render() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[image]\nwidth = 16\nheight = 8\n[animation]\nmode = \"Interpolation\"\nmax_frames = 5\n\
                    [generation]\nseed = 5\nseed_behavior = \"schedule\"\nseed_schedule = \"0:(-1), 2:(7), 3:(-1)\"\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let seeds = |out: &Path| -> Vec<i64> {
            let m: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                    .unwrap();
            m["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["seed"].as_i64().unwrap())
                .collect()
        };
        let whole = dir.path().join("whole");
        let opts = RenderOptions {
            out: Some(whole.clone()),
            quiet: true,
            no_video: true,
            ..Default::default()
        };
        run_loop(&scene, &opts, Some(&mut Flat), "render", None).unwrap();
        let all = seeds(&whole);
        assert_eq!(all[2], 7);
        let part = dir.path().join("part");
        let opts = RenderOptions {
            out: Some(part.clone()),
            frames: Some(3..=4),
            ..opts
        };
        let summary = run_loop(&scene, &opts, Some(&mut Flat), "render", None).unwrap();
        assert_eq!(summary.frames, 2);
        assert_eq!(seeds(&part_folder(&part, &(3..=4))), all[3..]);
        assert!(!output::frame_path(&part, 2).exists());
        assert!(output::frame_path(&part, 4).is_file());
    }

    /// A preview encodes with the fast preset unless told otherwise; a render keeps the scene's.
    #[test]
    fn previews_encode_fast_and_renders_keep_the_scene_preset() {
        let dir = tempfile::tempdir().unwrap();
        let scene =
            Scene::from_toml("[output]\npreset = \"slow\"\n", &dir.path().join("s.toml")).unwrap();
        let mp4 = dir.path().join("video.mp4");
        let preset = |opts: &RenderOptions, preview| {
            video_outputs(&scene, &mp4, video_preset(opts, preview))
                .pop()
                .unwrap()
                .1
                .preset
        };
        let plain = RenderOptions::default();
        assert_eq!(preset(&plain, true), PREVIEW_PRESET);
        assert_eq!(preset(&plain, false), "slow");
        let given = RenderOptions {
            video_preset: Some("medium".into()),
            ..Default::default()
        };
        assert_eq!(preset(&given, true), "medium");
        assert_eq!(preset(&given, false), "medium");
    }

    /// Paints frame i flat, and makes a folder where frame `block` is to be written, so that the
    /// writing thread fails on it.
    struct Blocking {
        frames: PathBuf,
        block: usize,
    }

    impl Painter for Blocking {
        fn paint(&mut self, req: &FrameRequest) -> Result<(RgbImage, StageTimes)> {
            if req.frame == self.block {
                std::fs::create_dir_all(self.frames.join(format!("{:06}.png", self.block)))
                    .unwrap();
            }
            Flat.paint(req)
        }
    }

    /// A write that fails on the writing thread stops the render with an error naming the file;
    /// the frames before it are on disk and the checkpoint names the last of them.
    #[test]
    fn a_failed_frame_write_stops_the_render_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[image]\nwidth = 16\nheight = 8\n[animation]\nmode = \"None\"\nmax_frames = 8\n[generation]\nseed = 5\n\
                    [coherence]\ncolor_coherence = \"None\"\n[noise]\nnoise = 0\n[anti_blur]\namount = 0\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let out = dir.path().join("out");
        let opts = RenderOptions {
            out: Some(out.clone()),
            quiet: true,
            no_video: true,
            ..Default::default()
        };
        let mut painter = Blocking {
            frames: out.join("frames"),
            block: 3,
        };
        let err = run_loop(&scene, &opts, Some(&mut painter), "render", None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("000003.png"), "{msg}");
        for i in 0..3 {
            assert!(output::frame_path(&out, i).is_file(), "frame {i}");
        }
        let cp = state::read_checkpoint(&out).unwrap();
        assert_eq!(cp.key_frame, 2);
    }

    /// Paints frame i as a texture moved 2·i pixels to the right.
    struct Moving;

    impl Painter for Moving {
        fn paint(&mut self, req: &FrameRequest) -> Result<(RgbImage, StageTimes)> {
            let (w, h) = req.size;
            let shift = 2.0 * req.frame as f32;
            Ok((
                RgbImage::from_fn(w, h, |x, y| {
                    let (fx, fy) = (x as f32 - shift, y as f32);
                    let v = 128.0 + 60.0 * (fx * 0.35).sin() + 50.0 * (fy * 0.3 + fx * 0.1).cos();
                    Rgb([v as u8, (255.0 - v) as u8, (v * 0.5) as u8])
                }),
                StageTimes::default(),
            ))
        }
    }

    /// Optical-flow cadence changes the tweens (not the key frames) and gives the same bytes on
    /// a second run; redo generations run with seeds derived from the frame's.
    #[test]
    fn optical_flow_cadence_moves_the_tweens_only() {
        let dir = tempfile::tempdir().unwrap();
        let base = "[image]\nwidth = 48\nheight = 32\n[animation]\nmode = \"2D\"\nmax_frames = 7\n\
                    [generation]\nseed = 5\n[motion]\nzoom = \"0:(1)\"\n[coherence]\ncolor_coherence = \"None\"\n\
                    [noise]\nnoise = 0\n[anti_blur]\namount = 0\n[cadence]\ndiffusion_cadence = 3\n";
        let run = |extra: &str, name: &str| -> Vec<RgbImage> {
            let scene =
                Scene::from_toml(&format!("{base}{extra}"), &dir.path().join("s.toml")).unwrap();
            let out = dir.path().join(name);
            let opts = RenderOptions {
                out: Some(out.clone()),
                quiet: true,
                no_video: true,
                ..Default::default()
            };
            run_loop(&scene, &opts, Some(&mut Moving), "render", None).unwrap();
            (0..7)
                .map(|i| output::read_rgb(&output::frame_path(&out, i)).unwrap())
                .collect()
        };
        let plain = run("", "plain");
        let flow = run("optical_flow_cadence = \"Farneback\"\n", "flow");
        let again = run("optical_flow_cadence = \"Farneback\"\n", "again");
        assert_eq!(flow, again);
        for i in [0, 3, 6] {
            assert_eq!(flow[i], plain[i], "key frame {i}");
        }
        for i in [1, 2, 4, 5] {
            assert_ne!(flow[i], plain[i], "tween {i}");
        }
        let redo = run(
            "optical_flow_redo_generation = \"Farneback\"\ndiffusion_redo = 2\n",
            "redo",
        );
        assert_eq!(redo.len(), 7);
        let manifest = std::fs::read_to_string(dir.path().join("redo/manifest.json")).unwrap();
        assert!(manifest.contains("flow_redo_ms") && manifest.contains("diffusion_redo_ms"));
    }

    #[test]
    fn redo_seeds_are_derived_and_distinct() {
        let s: Vec<i64> = (0..4).map(|k| redo_seed(77, k)).collect();
        assert!(s.iter().all(|v| (0..4_294_967_295).contains(v)));
        assert_ne!(s[0], s[1]);
        assert_ne!(s[1], s[2]);
        assert_eq!(redo_seed(77, 2), s[2]);
        assert_ne!(redo_seed(78, 0), s[0]);
    }

    #[test]
    fn keys_cover_every_frame() {
        assert_eq!(key_frames(10, 1), (0..10).collect::<Vec<_>>());
        assert_eq!(key_frames(10, 3), vec![0, 3, 6, 9]);
        assert_eq!(key_frames(10, 4), vec![0, 4, 8, 9]);
        assert_eq!(key_frames(1, 2), vec![0]);
    }
}
