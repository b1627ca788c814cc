//! The frame loop: frame 0 from txt2img (or the init image), each next frame the previous one
//! warped by the camera and repainted by img2img; `preview` runs the same loop without a model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use image::{Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::diffusion::{Pipeline, PromptSyntax, Request, SamplerKind, SessionOptions, StageTimes, TorchRng};
use crate::output::{self, VideoSettings};
use crate::scene::{AnimationMode, FrameSchedules, Scene};
use crate::warp::{self, Motion2D};

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
}

/// Per-frame record written to the manifest.
#[derive(Debug, Clone, Serialize)]
struct FrameRecord {
    index: usize,
    seed: i64,
    strength: f64,
    cfg_scale: f64,
    steps: usize,
    warp_ms: f64,
    text_ms: f64,
    encode_ms: f64,
    denoise_ms: f64,
    decode_ms: f64,
    steps_run: usize,
    write_ms: f64,
}

#[derive(Serialize)]
struct Manifest<'a> {
    anim_version: &'a str,
    kind: &'a str,
    scene_file: &'a Path,
    seed: i64,
    model_folder: Option<&'a Path>,
    scene: &'a Scene,
    frames: &'a [FrameRecord],
}

/// Produces the picture of each frame from the warped previous one.
trait Painter {
    /// Frame 0.
    fn first(&mut self, scene: &Scene, sched: &FrameSchedules, seed: i64) -> Result<(RgbImage, StageTimes)>;
    /// Frame `i` > 0 from the warped previous frame.
    fn next(&mut self, scene: &Scene, sched: &FrameSchedules, i: usize, seed: i64, warped: RgbImage) -> Result<(RgbImage, StageTimes)>;
}

/// Frame 0 for the motion preview: the init image or the built-in test pattern.
struct MotionOnly;

impl Painter for MotionOnly {
    fn first(&mut self, scene: &Scene, _: &FrameSchedules, _seed: i64) -> Result<(RgbImage, StageTimes)> {
        Ok((init_or_pattern(scene)?, StageTimes::default()))
    }
    fn next(&mut self, _: &Scene, _: &FrameSchedules, _: usize, _: i64, warped: RgbImage) -> Result<(RgbImage, StageTimes)> {
        Ok((warped, StageTimes::default()))
    }
}

struct Diffuse {
    pipeline: Pipeline,
}

impl Diffuse {
    fn generate(&mut self, scene: &Scene, sched: &FrameSchedules, i: usize, seed: i64, init: Option<&RgbImage>, denoise: f64) -> Result<(RgbImage, StageTimes)> {
        let prompt = scene.prompt_at(i);
        let sampler_name = sched.text("sampler").map(|s| s[i].clone()).unwrap_or_else(|| "Euler a".into());
        let sampler = SamplerKind::from_name(&sampler_name)?;
        let eta = match sampler {
            SamplerKind::Ddim => sched.get("ddim_eta")[i],
            _ => sched.get("ancestral_eta")[i],
        };
        let req = Request {
            prompt: &prompt.positive,
            negative: &prompt.negative,
            width: scene.image.width,
            height: scene.image.height,
            init,
            denoise,
            steps: sched.get("steps")[i] as usize,
            cfg_scale: sched.get("cfg_scale")[i] as f32,
            sampler,
            eta: eta as f32,
            noise_multiplier: sched.get("noise_multiplier")[i] as f32,
            prompt_syntax: PromptSyntax::A1111,
            clip_skip: sched.get("clipskip")[i].round().max(1.0) as u32,
            subseed: Some((sched.get("subseed")[i] as i64 as u64, sched.get("subseed_strength")[i] as f32)),
        };
        self.pipeline.generate(&req, &mut TorchRng::new(seed as u64)).with_context(|| format!("generating frame {i}"))
    }
}

impl Painter for Diffuse {
    fn first(&mut self, scene: &Scene, sched: &FrameSchedules, seed: i64) -> Result<(RgbImage, StageTimes)> {
        let init = match &scene.init.image {
            Some(p) => Some(load_init(scene, p)?),
            None => None,
        };
        self.generate(scene, sched, 0, seed, init.as_ref(), 1.0 - scene.init.strength)
    }

    fn next(&mut self, scene: &Scene, sched: &FrameSchedules, i: usize, seed: i64, warped: RgbImage) -> Result<(RgbImage, StageTimes)> {
        let denoise = 1.0 - sched.get("strength")[i].clamp(0.0, 1.0);
        self.generate(scene, sched, i, seed, Some(&warped), denoise)
    }
}

fn load_init(scene: &Scene, p: &Path) -> Result<RgbImage> {
    let path = scene.resolve(p);
    let img = output::read_rgb(&path).with_context(|| format!("{}: [init] image", scene.path.display()))?;
    let (w, h) = (scene.image.width, scene.image.height);
    Ok(if img.dimensions() == (w, h) {
        img
    } else {
        image::imageops::resize(&img, w, h, image::imageops::FilterType::Lanczos3)
    })
}

fn init_or_pattern(scene: &Scene) -> Result<RgbImage> {
    match &scene.init.image {
        Some(p) => load_init(scene, p),
        None => Ok(test_pattern(scene.image.width, scene.image.height)),
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
            Rgb([(fx * 255.0) as u8, (fy * 255.0) as u8, ((1.0 - fx) * 160.0 + 60.0) as u8])
        }
    })
}

/// A random seed for `seed = -1`, from the clock and process id.
fn random_seed() -> i64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
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
        let _ = if per > 0.0 { write!(w, "{:.2} s/frame", 1.0 / per) } else { write!(w, "-- s/frame") };
    })
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_loop(scene: &Scene, opts: &RenderOptions, painter: &mut dyn Painter, kind: &str, model: Option<&Path>) -> Result<RenderSummary> {
    let start = Instant::now();
    if scene.animation.mode == AnimationMode::ThreeD {
        bail!(
            "{}: [animation] mode = \"3D\" is not implemented yet (depth warps come with the 3D camera); use \"2D\" or \"None\"",
            scene.path.display()
        );
    }
    let mut scene = scene.clone();
    if scene.generation.seed == -1 {
        scene.generation.seed = random_seed();
    }
    let seed = scene.generation.seed;
    let sched = scene.schedules().map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?;
    let out = opts.out.clone().unwrap_or_else(|| scene.output_folder());
    let frames_dir = out.join("frames");
    std::fs::create_dir_all(&frames_dir).with_context(|| format!("cannot create output folder {}", frames_dir.display()))?;
    let n = scene.animation.max_frames;
    remove_stale_frames(&frames_dir, n)?;
    let bar = progress(opts.quiet, n, kind);
    let (w, h) = (scene.image.width, scene.image.height);
    let mut records = Vec::with_capacity(n);
    let mut paths = Vec::with_capacity(n);
    let mut prev: Option<RgbImage> = None;
    for i in 0..n {
        let frame_seed = seed.wrapping_add(i as i64);
        let t_warp = Instant::now();
        let (img, times) = match prev.take() {
            None => painter.first(&scene, &sched, frame_seed)?,
            Some(p) => {
                let warped = match scene.animation.mode {
                    AnimationMode::None => p,
                    _ => {
                        let m = Motion2D {
                            angle: sched.get("angle")[i],
                            zoom: sched.get("zoom")[i],
                            translation_x: sched.get("translation_x")[i],
                            translation_y: sched.get("translation_y")[i],
                            transform_center_x: sched.get("transform_center_x")[i],
                            transform_center_y: sched.get("transform_center_y")[i],
                        };
                        warp::warp_2d(&p, &m, scene.animation.border)
                    }
                };
                let warp_time = t_warp.elapsed();
                let (img, times) = painter.next(&scene, &sched, i, frame_seed, warped)?;
                records.push(FrameRecord { warp_ms: ms(warp_time), ..record(i, frame_seed, &sched, &times) });
                (img, times)
            }
        };
        if i == 0 {
            records.push(record(0, frame_seed, &sched, &times));
        }
        if img.dimensions() != (w, h) {
            bail!("frame {i} came out {}x{}, expected {w}x{h}", img.width(), img.height());
        }
        let t_write = Instant::now();
        let path = output::frame_path(&out, i);
        output::write_png_atomic(&path, &img)?;
        if let Some(r) = records.last_mut() {
            r.write_ms = ms(t_write.elapsed());
        }
        paths.push(path);
        prev = Some(img);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let video = if scene.output.video && !opts.no_video {
        let path = out.join("video.mp4");
        let settings = VideoSettings { fps: scene.output.fps, crf: scene.output.crf, preset: "medium".into() };
        output::encode_mp4(&paths, &path, &settings).with_context(|| format!("encoding {}", path.display()))?;
        Some(path)
    } else {
        None
    };
    let manifest = Manifest {
        anim_version: env!("CARGO_PKG_VERSION"),
        kind,
        scene_file: &scene.path,
        seed,
        model_folder: model,
        scene: &scene,
        frames: &records,
    };
    let json = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(out.join("manifest.json"), json).with_context(|| format!("cannot write {}", out.join("manifest.json").display()))?;
    Ok(RenderSummary { out, frames: n, video, seed, seconds: start.elapsed().as_secs_f64() })
}

fn record(i: usize, seed: i64, sched: &FrameSchedules, t: &StageTimes) -> FrameRecord {
    FrameRecord {
        index: i,
        seed,
        strength: sched.get("strength")[i],
        cfg_scale: sched.get("cfg_scale")[i],
        steps: sched.get("steps")[i] as usize,
        warp_ms: 0.0,
        text_ms: ms(t.text),
        encode_ms: ms(t.encode),
        denoise_ms: ms(t.denoise),
        decode_ms: ms(t.decode),
        steps_run: t.steps_run,
        write_ms: 0.0,
    }
}

/// Removes `NNNNNN.png` files at or beyond `n` left by an earlier, longer render, so the folder
/// holds exactly this render's frames.
fn remove_stale_frames(dir: &Path, n: usize) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let stale = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".png").or_else(|| f.strip_suffix(".png.tmp")))
            .and_then(|stem| stem.parse::<usize>().ok())
            .is_some_and(|idx| idx >= n || path.extension().is_some_and(|e| e == "tmp"));
        if stale {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove stale frame {}", path.display()))?;
        }
    }
    Ok(())
}

/// Settings of `scene` that change Deforum's output but that the render loop does not apply yet,
/// each with its value, so that a user is never misled by a silently ignored setting.
pub fn unapplied_settings(scene: &Scene) -> Vec<String> {
    let Ok(s) = scene.schedules() else { return Vec::new() };
    let mut out = Vec::new();
    let mut check = |name: &str, label: &str, neutral: f64| {
        if let Some(v) = s.get(name).iter().find(|v| **v != neutral) {
            out.push(format!("{label} (e.g. {v}; {neutral} means off)"));
        }
    };
    check("noise", "[noise] noise", 0.0);
    check("contrast", "[coherence] contrast", 1.0);
    check("amount", "[anti_blur] amount", 0.0);
    if scene.motion.enable_perspective_flip {
        out.push("[motion] enable_perspective_flip".into());
    }
    if s.text("checkpoint").is_some_and(|c| c.iter().any(|v| !v.is_empty())) {
        out.push("[generation] checkpoint".into());
    }
    if !scene.controlnet.is_empty() {
        out.push("[[controlnet]] units".into());
    }
    out
}

/// Renders a scene with its model: the full img2img animation.
pub fn render(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    let folder = opts.model.clone().or_else(|| scene.model.folder.as_ref().map(|f| scene.resolve(f))).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no model; set [model] folder = \"path/to/onnx-model\" in the scene, or pass --model DIR",
            scene.path.display()
        )
    })?;
    if let Some(p) = &scene.init.image {
        load_init(scene, p)?;
    }
    let pipeline = Pipeline::load_with(&folder, &opts.session)
        .with_context(|| format!("{}: cannot load the model of [model] folder = {}", scene.path.display(), folder.display()))?;
    for note in pipeline.notes() {
        eprintln!("note: {note}");
    }
    let mut painter = Diffuse { pipeline };
    run_loop(scene, opts, &mut painter, "render", Some(&folder))
}

/// Renders the motion alone: frame 0 is the init image or a test pattern, each next frame is the
/// previous one warped exactly as `render` warps it.
pub fn preview(scene: &Scene, opts: &RenderOptions) -> Result<RenderSummary> {
    run_loop(scene, opts, &mut MotionOnly, "preview", None)
}
