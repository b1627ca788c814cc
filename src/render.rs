//! The frame loop, in Deforum's order: for each diffused (key) frame the previous key frame is
//! warped by the camera, colour-matched, contrast-adjusted, sharpened and noised, then repainted by
//! img2img; with a diffusion cadence the frames between two key frames are blends of the two key
//! frames, each warped to the in-between frame's camera. `preview` runs the motion alone.
//!
//! After every key frame the loop state is checkpointed (`state` module), so `--resume` continues
//! with frames bit-identical to an uninterrupted run; Ctrl-C finishes the current key frame, encodes
//! the video from what exists and stops.

pub mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use image::{Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::camera::Camera;
use crate::diffusion::{
    Pipeline, PromptSyntax, Request, SamplerKind, SessionOptions, StageTimes, TorchRng, Travel,
};
use crate::effects::{
    self,
    color::{ColorTarget, MatchSpace},
    noise::NoiseKind,
};
use crate::output::{self, VideoSettings};
use crate::scene::{AnimationMode, ColorCoherence, FrameSchedules, PromptTravel, Scene};
use crate::seeds::SeedSequence;

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Overrides the scene's output folder.
    pub out: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Skip the video even when the scene asks for one.
    pub no_video: bool,
    /// Overrides the scene's model folder.
    pub model: Option<PathBuf>,
    /// Continue an interrupted render in the same output folder.
    pub resume: bool,
    /// Execution provider and cache folder.
    pub session: SessionOptions,
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

/// Per-frame record written to the manifest: parameters and time per stage in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
struct FrameRecord {
    index: usize,
    checkpoint: String,
    kind: &'static str,
    seed: Option<i64>,
    strength: f64,
    cfg_scale: f64,
    steps: usize,
    steps_run: usize,
    warp_ms: f64,
    /// Part of `warp_ms` spent in the depth model (3D mode with `[depth] model`).
    depth_ms: f64,
    color_ms: f64,
    contrast_ms: f64,
    sharpen_ms: f64,
    noise_ms: f64,
    text_ms: f64,
    encode_ms: f64,
    denoise_ms: f64,
    decode_ms: f64,
    blend_ms: f64,
    write_ms: f64,
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

/// Repaints a prepared frame: txt2img when `init` is `None`, img2img otherwise.
trait Painter {
    /// The execution provider doing the work, for the manifest.
    fn provider(&self) -> &'static str {
        "none"
    }
    /// Model loads so far, for the manifest.
    fn loads(&self) -> usize {
        0
    }
    /// Checks, before the first frame, that the models can do what the scene asks of them.
    fn check(&self, _scene: &Scene, _sched: &FrameSchedules) -> Result<()> {
        Ok(())
    }
    fn paint(
        &mut self,
        scene: &Scene,
        sched: &FrameSchedules,
        i: usize,
        seed: i64,
        init: Option<&RgbImage>,
        denoise: f64,
    ) -> Result<(RgbImage, StageTimes)>;
}

/// The loaded pipelines: the scene's model plus the checkpoint schedule's, most recently used
/// last, at most `capacity` of them.
struct Diffuse {
    default_folder: PathBuf,
    pipelines: Vec<(PathBuf, Pipeline)>,
    capacity: usize,
    session: SessionOptions,
    /// Pipeline loads so far (for the manifest and tests).
    loads: usize,
}

impl Diffuse {
    fn new(
        folder: PathBuf,
        pipeline: Pipeline,
        capacity: usize,
        session: SessionOptions,
    ) -> Diffuse {
        Diffuse {
            default_folder: folder.clone(),
            pipelines: vec![(folder, pipeline)],
            capacity: capacity.max(1),
            session,
            loads: 1,
        }
    }

    /// The pipeline for frame `i`: the checkpoint schedule's folder, or the scene's model.
    fn pipeline_for(
        &mut self,
        scene: &Scene,
        sched: &FrameSchedules,
        i: usize,
    ) -> Result<&mut Pipeline> {
        let folder = match sched.at(i).checkpoint.trim() {
            "" => self.default_folder.clone(),
            c => scene.resolve(Path::new(c)),
        };
        if let Some(pos) = self.pipelines.iter().position(|(f, _)| *f == folder) {
            let entry = self.pipelines.remove(pos);
            self.pipelines.push(entry);
        } else {
            if self.pipelines.len() >= self.capacity {
                self.pipelines.remove(0);
            }
            let p = Pipeline::load_with(&folder, &self.session).with_context(|| {
                format!(
                    "{}: [generation] checkpoint at frame {i}: cannot load {}",
                    scene.path.display(),
                    folder.display()
                )
            })?;
            check_fit(scene, sched, &folder, &p)
                .with_context(|| format!("[generation] checkpoint at frame {i}"))?;
            self.loads += 1;
            self.pipelines.push((folder, p));
        }
        Ok(&mut self.pipelines.last_mut().expect("just pushed").1)
    }
}

impl Painter for Diffuse {
    fn provider(&self) -> &'static str {
        self.pipelines
            .last()
            .map(|(_, p)| p.provider())
            .unwrap_or("none")
    }

    fn loads(&self) -> usize {
        self.loads
    }

    fn check(&self, scene: &Scene, sched: &FrameSchedules) -> Result<()> {
        let (folder, pipeline) = &self.pipelines[0];
        check_fit(scene, sched, folder, pipeline)
    }

    fn paint(
        &mut self,
        scene: &Scene,
        sched: &FrameSchedules,
        i: usize,
        seed: i64,
        init: Option<&RgbImage>,
        denoise: f64,
    ) -> Result<(RgbImage, StageTimes)> {
        let prompt = scene.prompt_at_with(i, sched);
        let travel_to = scene.travel_at_with(i, sched);
        let travel = travel_to.as_ref().map(|(p, w)| Travel {
            prompt: &p.positive,
            negative: &p.negative,
            weight: *w,
            slerp: scene.animation_prompts.travel == PromptTravel::Slerp,
            // Interpolation mode blends linearly unless the scene asks for slerp
        });
        let v = sched.at(i);
        let sampler = SamplerKind::from_name(v.sampler)?;
        let eta = match sampler {
            SamplerKind::Ddim => v.ddim_eta,
            _ => v.ancestral_eta,
        };
        let req = Request {
            prompt: &prompt.positive,
            negative: &prompt.negative,
            width: scene.image.width,
            height: scene.image.height,
            init,
            denoise,
            steps: v.steps as usize,
            cfg_scale: v.cfg_scale as f32,
            sampler,
            eta: eta as f32,
            noise_multiplier: v.noise_multiplier as f32,
            prompt_syntax: PromptSyntax::A1111,
            clip_skip: v.clipskip.round().max(1.0) as u32,
            subseed: Some((v.subseed as i64 as u64, v.subseed_strength as f32)),
            travel,
        };
        self.pipeline_for(scene, sched, i)?
            .generate(&req, &mut TorchRng::new(seed as u64))
            .with_context(|| format!("generating frame {i}"))
    }
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Test hook for kills at a known moment: with `ANIM_HALT_AFTER_FRAME=N` in the environment, the
/// loop stands still right after writing frame N (before its key frame's checkpoint) until it is
/// killed or interrupted (Ctrl-C then stops the render as usual).
fn halt_after_frame(i: usize) {
    static AT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("ANIM_HALT_AFTER_FRAME")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(i) {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The frames that are diffused: every `cadence`th frame and the last one.
fn key_frames(n: usize, cadence: usize) -> Vec<usize> {
    let mut keys: Vec<usize> = (0..n).step_by(cadence.max(1)).collect();
    if keys.last() != Some(&(n - 1)) {
        keys.push(n - 1);
    }
    keys
}

struct Loop<'s, 'p> {
    scene: &'s Scene,
    camera: Camera<'s>,
    sched: std::sync::Arc<FrameSchedules>,
    out: PathBuf,
    painter: Option<&'p mut dyn Painter>,
    color_sample: Option<RgbImage>,
    /// The colour sample prepared for matching (its histograms), rebuilt when the sample changes.
    color_target: Option<ColorTarget>,
    /// The per-frame records and checkpoints.
    journal: state::Journal,
    bar: ProgressBar,
    /// Depth-model time of the warps since the last frame record took it.
    depth_ms: f64,
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

    fn write(&mut self, i: usize, img: &RgbImage, mut rec: FrameRecord) -> Result<()> {
        let t = Instant::now();
        output::write_png_atomic(&output::frame_path(&self.out, i), img)?;
        rec.write_ms = ms(t.elapsed());
        self.journal.record(&rec)?;
        self.bar.inc(1);
        halt_after_frame(i);
        Ok(())
    }

    /// Frame 0: the init image or txt2img (preview: the init image or the test pattern).
    fn first(&mut self, seed: i64) -> Result<RgbImage> {
        let scene = self.scene;
        let init = match &scene.init.image {
            Some(p) => Some(load_init(scene, p)?),
            None => None,
        };
        let mut rec = FrameRecord {
            index: 0,
            kind: "key",
            seed: Some(seed),
            ..record(&self.sched, 0)
        };
        let img = match self.painter.as_mut() {
            None => init.unwrap_or_else(|| test_pattern(scene.image.width, scene.image.height)),
            Some(p) => {
                let (img, t) = p.paint(
                    scene,
                    &self.sched,
                    0,
                    seed,
                    init.as_ref(),
                    1.0 - scene.init.strength,
                )?;
                stage_times(&mut rec, &t);
                let mut img = img;
                if scene.coherence.color_force_grayscale {
                    effects::grayscale(&mut img);
                }
                img
            }
        };
        if self.painter.is_some() && self.match_space().is_some() {
            let sample = Some(
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
                    _ => img.clone(),
                },
            );
            self.set_color_sample(sample);
        }
        self.write(0, &img, rec)?;
        Ok(img)
    }

    /// Interpolation mode: frame `i` is txt2img with the prompt travelling between keyed prompts
    /// (preview: the test pattern or init image, unchanged).
    fn txt2img_frame(&mut self, i: usize, seed: i64) -> Result<RgbImage> {
        let scene = self.scene;
        let mut rec = FrameRecord {
            index: i,
            kind: "txt2img",
            seed: Some(seed),
            ..record(&self.sched, i)
        };
        let img = match self.painter.as_mut() {
            None => match &scene.init.image {
                Some(p) => load_init(scene, p)?,
                None => test_pattern(scene.image.width, scene.image.height),
            },
            Some(p) => {
                let (img, t) = p.paint(scene, &self.sched, i, seed, None, 1.0)?;
                stage_times(&mut rec, &t);
                img
            }
        };
        self.write(i, &img, rec)?;
        Ok(img)
    }

    /// Frame `i` of the extracted input video (the last one when the video is shorter).
    fn input_frame(&self, i: usize) -> Result<RgbImage> {
        let dir = self.out.join("inputframes");
        let mut p = dir.join(format!("{i:06}.png"));
        if !p.is_file() {
            let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            p = dir.join(format!("{:06}.png", n.saturating_sub(1)));
        }
        Ok(fit(output::read_rgb(&p)?, self.scene))
    }

    /// Video Input mode: frame `i` is img2img of the video's frame `i` (no warp, no noise, no
    /// colour match, as Deforum).
    fn video_frame(&mut self, i: usize, seed: i64) -> Result<RgbImage> {
        let scene = self.scene;
        let mut input = self.input_frame(i)?;
        if scene.video_input.motion && i > 0 {
            input = self.warp(i, input)?;
        }
        let mut rec = FrameRecord {
            index: i,
            kind: "video",
            seed: Some(seed),
            ..record(&self.sched, i)
        };
        let img = match self.painter.as_mut() {
            None => input,
            Some(p) => {
                let denoise = 1.0 - self.sched.at(i).strength.clamp(0.0, 1.0);
                let (img, t) = p.paint(scene, &self.sched, i, seed, Some(&input), denoise)?;
                stage_times(&mut rec, &t);
                img
            }
        };
        self.write(i, &img, rec)?;
        Ok(img)
    }

    /// Key frame `f` from the previous key frame `p`; returns the new key image and writes the
    /// frames `p + 1 ..= f`.
    fn key(&mut self, p: usize, f: usize, prev: &RgbImage, seed: i64) -> Result<RgbImage> {
        let mut rec = FrameRecord {
            index: f,
            kind: "key",
            seed: Some(seed),
            ..record(&self.sched, f)
        };
        // the previous key frame moved through the camera of every frame up to this one; the
        // in-between steps are kept for the tweens (the same warps, not repeated)
        let t = Instant::now();
        let mut img = prev.clone();
        let mut steps = Vec::with_capacity(f - p - 1);
        for i in p + 1..=f {
            img = self.warp(i, img)?;
            if i < f {
                steps.push(img.clone());
            }
        }
        rec.warp_ms = ms(t.elapsed());
        rec.depth_ms = std::mem::take(&mut self.depth_ms);
        let key = match self.painter.take() {
            None => img,
            Some(painter) => {
                let result = self.prepare_and_paint(painter, f, seed, img, &mut rec);
                self.painter = Some(painter);
                result?
            }
        };
        // in-between frames: both key frames seen from frame i's camera, cross-faded
        for (i, a) in (p + 1..f).zip(steps) {
            let t = Instant::now();
            let mut b = key.clone();
            for j in (i + 1..=f).rev() {
                b = self.unwarp(j, b)?;
            }
            let w = (i - p) as f32 / (f - p) as f32;
            let mut tween = a;
            for (x, y) in tween.iter_mut().zip(b.iter()) {
                *x = ((1.0 - w) * *x as f32 + w * *y as f32)
                    .round_ties_even()
                    .clamp(0.0, 255.0) as u8;
            }
            let trec = FrameRecord {
                index: i,
                kind: "tween",
                blend_ms: ms(t.elapsed()),
                depth_ms: std::mem::take(&mut self.depth_ms),
                ..record(&self.sched, i)
            };
            self.write(i, &tween, trec)?;
        }
        self.write(f, &key, rec)?;
        Ok(key)
    }

    fn prepare_and_paint(
        &mut self,
        painter: &mut dyn Painter,
        f: usize,
        seed: i64,
        mut img: RgbImage,
        rec: &mut FrameRecord,
    ) -> Result<RgbImage> {
        let scene = self.scene;
        let t = Instant::now();
        if scene.coherence.color_coherence == ColorCoherence::VideoInput
            && f.is_multiple_of(scene.coherence.color_coherence_video_every_N_frames.max(1))
        {
            let sample = self.input_frame(f)?;
            self.set_color_sample(Some(sample));
        }
        let sched = &self.sched;
        let v = sched.at(f);
        if let Some(target) = &self.color_target {
            img = target.apply(&img);
        }
        if scene.coherence.color_force_grayscale {
            effects::grayscale(&mut img);
        }
        rec.color_ms = ms(t.elapsed());
        let t = Instant::now();
        effects::contrast(&mut img, v.contrast);
        rec.contrast_ms = ms(t.elapsed());
        let t = Instant::now();
        let amount = v.amount;
        if amount > 0.0 {
            let k = v.kernel as usize;
            img = effects::sharpen::unsharp_mask(&img, k, v.sigma, amount, v.threshold);
        }
        rec.sharpen_ms = ms(t.elapsed());
        let t = Instant::now();
        let kind = match scene.noise.noise_type.as_str() {
            "uniform" => NoiseKind::Uniform,
            _ => NoiseKind::Perlin {
                octaves: scene.noise.perlin_octaves,
                persistence: scene.noise.perlin_persistence,
                res: (8, 8),
            },
        };
        img = effects::noise::add_noise(&img, v.noise, seed, kind);
        rec.noise_ms = ms(t.elapsed());
        let denoise = 1.0 - v.strength.clamp(0.0, 1.0);
        let (mut out, times) = painter.paint(scene, sched, f, seed, Some(&img), denoise)?;
        stage_times(rec, &times);
        if !scene.coherence.legacy_colormatch
            && let Some(target) = &self.color_target
        {
            out = target.apply(&out);
        }
        if scene.coherence.color_force_grayscale {
            effects::grayscale(&mut out);
        }
        Ok(out)
    }
}

fn stage_times(rec: &mut FrameRecord, t: &StageTimes) {
    rec.text_ms = ms(t.text);
    rec.encode_ms = ms(t.encode);
    rec.denoise_ms = ms(t.denoise);
    rec.decode_ms = ms(t.decode);
    rec.steps_run = t.steps_run;
}

fn record(sched: &FrameSchedules, i: usize) -> FrameRecord {
    let v = sched.at(i);
    FrameRecord {
        index: i,
        checkpoint: v.checkpoint.to_string(),
        strength: v.strength,
        cfg_scale: v.cfg_scale,
        steps: v.steps as usize,
        ..FrameRecord::default()
    }
}

/// Checks what the loop will need before it starts (the soundtrack, the colour
/// reference image), so a long render does not fail half-way; `anim validate` runs it too.
///
/// # Errors
/// The first problem, naming the scene file and key.
pub fn check_settings(scene: &Scene) -> Result<()> {
    let file = scene.path.display();
    if let Some(a) = &scene.output.soundtrack {
        let audio = scene.resolve(a);
        if !audio.is_file() {
            bail!(
                "{file}: [output] soundtrack {} does not exist",
                audio.display()
            );
        }
        output::check_audio(&audio).with_context(|| format!("{file}: [output] soundtrack"))?;
    }
    if let (ColorCoherence::Image, Some(p)) = (
        &scene.coherence.color_coherence,
        &scene.coherence.color_coherence_image_path,
    ) {
        output::read_rgb(&scene.resolve(p))
            .with_context(|| format!("{file}: [coherence] color_coherence_image_path"))?;
    }
    Ok(())
}

/// sha256 of every `.onnx` file under `folder`, for the manifest.
fn model_hashes(folder: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dirs = vec![folder.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "onnx" || x == "onnx_data")
            {
                let mut h = Sha256::new();
                let mut f = std::fs::File::open(&p)?;
                std::io::copy(&mut f, &mut h)?;
                let rel = p.strip_prefix(folder).unwrap_or(&p).display().to_string();
                out.push((rel, format!("{:x}", h.finalize())));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Serialize)]
struct Manifest<'a> {
    pipeline_loads: usize,
    anim_version: &'a str,
    kind: &'a str,
    scene_file: &'a Path,
    seed: i64,
    provider: &'a str,
    model_folder: Option<&'a Path>,
    model_files_sha256: Vec<(String, String)>,
    complete: bool,
    scene: &'a Scene,
    frames: state::Records,
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
    let out = opts.out.clone().unwrap_or_else(|| scene.output_folder());
    let frames_dir = out.join("frames");
    let resumed = if opts.resume {
        let (cp, key, sample) = state::load(&out)?;
        if cp.scene_hash != hash {
            bail!(
                "{}: the scene changed since the interrupted render in {}; render again without --resume (or restore the scene)",
                scene.path.display(),
                out.display()
            );
        }
        Some((cp, key, sample))
    } else {
        None
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
        let dir = out.join("inputframes");
        let count = if resumed.is_some() && dir.is_dir() {
            std::fs::read_dir(&dir)?
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png"))
                })
                .count()
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
    let n = scene.animation.max_frames;
    let sched = scene
        .frame_schedules()
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    check_settings(&scene)?;
    if let Some(p) = &painter {
        scene
            .check_noise(&sched)
            .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
        p.check(&scene, &sched)?;
    }
    std::fs::create_dir_all(&frames_dir)
        .with_context(|| format!("cannot create output folder {}", frames_dir.display()))?;
    let journal = match &resumed {
        Some((cp, _, _)) => state::Journal::reopen(&out, cp)?,
        None => {
            remove_stale_frames(&frames_dir, 0)?;
            state::Journal::create(&out)?
        }
    };
    let video_mode = scene.animation.mode == AnimationMode::VideoInput;
    let interpolation = scene.animation.mode == AnimationMode::Interpolation;
    let cadence = if painter.is_some() && !video_mode && !interpolation {
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
    let bar = progress(opts.quiet, n, kind);
    let camera = Camera::new(&scene, &sched, &out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    let mut lp = Loop {
        scene: &scene,
        camera,
        sched,
        out: out.clone(),
        painter: painter.take(),
        color_sample: None,
        color_target: None,
        journal,
        bar,
        depth_ms: 0.0,
    };
    let (mut prev, mut done_key, mut seed_calls) = match resumed {
        Some((cp, key, sample)) => {
            for _ in 0..cp.seed_calls {
                seeds.advance();
            }
            lp.set_color_sample(sample);
            lp.bar.set_position(cp.key_frame as u64 + 1);
            (key, cp.key_frame, cp.seed_calls)
        }
        None => {
            let s = seeds.current(lp.sched.at(0).seed);
            let img = if video_mode {
                lp.video_frame(0, s)?
            } else if interpolation {
                lp.txt2img_frame(0, s)?
            } else {
                lp.first(s)?
            };
            seeds.advance();
            let mut cp = state::Checkpoint {
                scene_hash: hash.clone(),
                seed,
                key_frame: 0,
                seed_calls: 1,
                has_color_sample: lp.color_sample.is_some(),
                records_len: 0,
            };
            lp.journal.save(&mut cp, &img, lp.color_sample.as_ref())?;
            (img, 0, 1)
        }
    };
    // the videos are encoded while the loop goes on, from the frames as they are written
    let mut video_job = (scene.output.video && !opts.no_video).then(|| {
        let path = out.join("video.mp4");
        let job = output::BackgroundVideo::start(video_outputs(&scene, &path));
        (job, path)
    });
    let mut queued = 0;
    let mut queue = |upto: usize| {
        if let Some((job, _)) = &mut video_job {
            for i in queued..upto {
                job.push(output::frame_path(&out, i));
            }
        }
        queued = queued.max(upto);
    };
    queue(done_key + 1);
    let mut interrupted = false;
    for w in keys.windows(2) {
        let (p, f) = (w[0], w[1]);
        if f <= done_key {
            continue;
        }
        if STOP.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let s = seeds.current(lp.sched.at(f).seed);
        prev = if video_mode {
            lp.video_frame(f, s)?
        } else if interpolation {
            lp.txt2img_frame(f, s)?
        } else {
            lp.key(p, f, &prev, s)?
        };
        seeds.advance();
        seed_calls += 1;
        done_key = f;
        let mut cp = state::Checkpoint {
            scene_hash: hash.clone(),
            seed,
            key_frame: f,
            seed_calls,
            has_color_sample: lp.color_sample.is_some(),
            records_len: 0,
        };
        lp.journal.save(&mut cp, &prev, lp.color_sample.as_ref())?;
        queue(done_key + 1);
    }
    lp.bar.finish_and_clear();
    let written = done_key + 1;
    let video = match video_job {
        Some((job, path)) => {
            job.finish()?;
            if let Some(audio) = &scene.output.soundtrack {
                output::mux_soundtrack(
                    &path,
                    &scene.resolve(audio),
                    scene.output.soundtrack_offset,
                )
                .with_context(|| format!("{}: [output] soundtrack", scene.path.display()))?;
            }
            Some(path)
        }
        None => None,
    };
    let manifest = Manifest {
        pipeline_loads: lp.painter.as_ref().map(|p| p.loads()).unwrap_or(0),
        anim_version: env!("CARGO_PKG_VERSION"),
        kind,
        scene_file: &scene.path,
        seed,
        provider: lp.painter.as_ref().map(|p| p.provider()).unwrap_or("none"),
        model_folder: model,
        model_files_sha256: match model {
            Some(m) => model_hashes(m)?,
            None => Vec::new(),
        },
        complete: !interrupted,
        scene: &scene,
        frames: lp.journal.records()?,
    };
    write_manifest(&out.join("manifest.json"), &manifest)?;
    if !interrupted {
        state::clear(&out);
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

/// Writes the manifest through a temporary file, streaming the frame records from the journal.
fn write_manifest(path: &Path, manifest: &Manifest) -> Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let what = || format!("cannot write {}", path.display());
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(what)?);
    serde_json::to_writer_pretty(&mut file, manifest).with_context(what)?;
    file.flush().with_context(what)?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(what)
}

/// The videos a scene asks for, `mp4` (at `mp4`) last: each file with its encoder settings.
fn video_outputs(scene: &Scene, mp4: &Path) -> Vec<(PathBuf, VideoSettings)> {
    let o = &scene.output;
    let settings = VideoSettings {
        fps: o.fps,
        crf: o.crf,
        preset: o.preset.clone(),
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
    let mut out = Vec::new();
    if !scene.controlnet.is_empty() {
        out.push("[[controlnet]] units".into());
    }
    out
}

/// Whether the model in `folder` (loaded as `pipeline`) can make the scene's frames: their size,
/// and every clip skip the schedule asks for.
fn check_fit(
    scene: &Scene,
    sched: &FrameSchedules,
    folder: &Path,
    pipeline: &Pipeline,
) -> Result<()> {
    check_model_size(scene, folder)?;
    let mut seen = Vec::new();
    for frame in 0..sched.frames() {
        let k = sched.at(frame).clipskip.round().max(1.0) as u32;
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        pipeline.check_clip_skip(k).with_context(|| {
            format!(
                "{}: [generation] clipskip = {k} at frame {frame}: the text encoder in {} cannot give it",
                scene.path.display(),
                folder.display()
            )
        })?;
    }
    Ok(())
}

/// Whether the model in `folder` can make the scene's frame size (from its `unet/config.json`,
/// without loading it); the error names the scene's keys and the sizes that fit.
///
/// # Errors
/// A size the model cannot make.
pub fn check_model_size(scene: &Scene, folder: &Path) -> Result<()> {
    crate::diffusion::pipeline::check_frame_size(folder, scene.image.width, scene.image.height)
        .with_context(|| {
            format!(
                "{}: {}: not a size the model in {} can make",
                scene.path.display(),
                scene.size_keys(),
                folder.display()
            )
        })
}

/// Renders a scene with its model: the full img2img animation.
pub fn render(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    let folder = opts.model.clone().or_else(|| scene.model.folder.as_ref().map(|f| scene.resolve(f))).ok_or_else(|| {
        anyhow::anyhow!("{}: no model; set [model] folder = \"path/to/onnx-model\" in the scene, or pass --model DIR", scene.path.display())
    })?;
    if let Some(p) = &scene.init.image {
        load_init(scene, p)?;
    }
    let pipeline = Pipeline::load_with(&folder, &opts.session).with_context(|| {
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
    );
    run_loop(scene, opts, Some(&mut painter), "render", Some(&folder))
}

/// Renders the motion alone: frame 0 is the init image or a test pattern, each next frame is the
/// previous one warped exactly as `render` warps it (no model, no noise, no colour matching).
pub fn preview(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    run_loop(scene, opts, None, "preview", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paints frame i as a flat image of value 10·i.
    struct Flat;

    impl Painter for Flat {
        fn paint(
            &mut self,
            scene: &Scene,
            _: &FrameSchedules,
            i: usize,
            _: i64,
            _: Option<&RgbImage>,
            _: f64,
        ) -> Result<(RgbImage, StageTimes)> {
            Ok((
                RgbImage::from_pixel(
                    scene.image.width,
                    scene.image.height,
                    Rgb([10 * i as u8; 3]),
                ),
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

    #[test]
    fn keys_cover_every_frame() {
        assert_eq!(key_frames(10, 1), (0..10).collect::<Vec<_>>());
        assert_eq!(key_frames(10, 3), vec![0, 3, 6, 9]);
        assert_eq!(key_frames(10, 4), vec![0, 4, 8, 9]);
        assert_eq!(key_frames(1, 2), vec![0]);
    }
}
