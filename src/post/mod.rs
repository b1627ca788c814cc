//! Passes over a finished render's frames (Deforum's post-processing, in its order): the
//! subtitles file, upscaling with a Real-ESRGAN-style ONNX model ([`upscale`]), then frame
//! interpolation with a RIFE- or FILM-style ONNX model ([`interpolate`]); each pass writes its
//! video beside `video.mp4`. The IO contracts the models must follow are in docs/post.md.
//!
//! Uses `scene` (settings, schedules), `output` (PNG and video files) and `runtime` (ONNX
//! Runtime); never `render`: it reads only what a render leaves in its folder (frames and
//! manifest.json).

pub mod interpolate;
pub mod subtitles;
pub mod upscale;

use std::path::{Path, PathBuf};

use image::RgbImage;
use ort::session::Session;

use crate::output::{self, VideoSettings};
use crate::scene::Scene;

pub use interpolate::{Engine, Interpolator};
pub use subtitles::{SubtitleFrame, srt, srt_timestamp};
pub use upscale::{Tiling, Upscaler};

/// A post pass that cannot run: a model missing or of the wrong shape, a file that cannot be
/// read or written.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// A scene key whose value cannot be used (a model that does not exist, a factor the model
    /// does not have).
    #[error("[post] {key}: {message}")]
    Setting {
        /// The key, as the scene names it.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// ONNX Runtime could not load the model, or its inputs/outputs are not a contract anim
    /// knows.
    #[error("post model {}: {message}", .path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Running the model failed or gave an output of an unexpected shape.
    #[error("post model {}: {message}", .path.display())]
    Run {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file or folder of the render could not be read or written.
    #[error("{}: {message}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> PostError {
    PostError::Io {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    }
}

/// An RGB picture as planes: `data` is `[3, height, width]` f32 in [0, 1] (the NCHW layout of
/// the models' inputs, batch 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Planar {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// R, G and B planes, row-major.
    pub data: Vec<f32>,
}

impl Planar {
    /// `img` scaled to [0, 1] (`v / 255`).
    pub fn from_rgb(img: &RgbImage) -> Planar {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                data[c * w * h + i] = p.0[c] as f32 / 255.0;
            }
        }
        Planar {
            width: w,
            height: h,
            data,
        }
    }

    /// The `w`×`h` window at (`x`, `y`) of this picture (inside it).
    fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> Planar {
        let mut data = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for r in y..y + h {
                let row = c * self.width * self.height + r * self.width;
                data.extend_from_slice(&self.data[row + x..row + x + w]);
            }
        }
        Planar {
            width: w,
            height: h,
            data,
        }
    }

    /// This picture placed at (`left`, `top`) of a zero `w`×`h` canvas.
    fn pad(&self, w: usize, h: usize, left: usize, top: usize) -> Planar {
        let mut data = vec![0f32; 3 * w * h];
        for c in 0..3 {
            for r in 0..self.height {
                let src = c * self.width * self.height + r * self.width;
                let dst = c * w * h + (r + top) * w + left;
                data[dst..dst + self.width].copy_from_slice(&self.data[src..src + self.width]);
            }
        }
        Planar {
            width: w,
            height: h,
            data,
        }
    }

    /// The `w`×`h` window at (`x`, `y`) as 8-bit RGB, each value clamped to [0, 1] and
    /// converted by `to_u8`.
    fn to_rgb(&self, x: usize, y: usize, w: usize, h: usize, to_u8: fn(f32) -> u8) -> RgbImage {
        let plane = self.width * self.height;
        RgbImage::from_fn(w as u32, h as u32, |px, py| {
            let i = (py as usize + y) * self.width + px as usize + x;
            image::Rgb([
                to_u8(self.data[i]),
                to_u8(self.data[plane + i]),
                to_u8(self.data[2 * plane + i]),
            ])
        })
    }
}

/// `v` clamped to [0, 1], times 255, truncated: torch's `(x * 255).byte()` (RIFE and FILM in
/// Deforum).
pub fn truncate_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0) as u8
}

/// `v` clamped to [0, 1], times 255, rounded half to even: Real-ESRGAN's
/// `(x * 255.0).round().astype(np.uint8)`.
pub fn round_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8
}

/// Loads an ONNX model: `path` is an `.onnx` file or a folder holding `model.onnx`. `key` names
/// the scene key for a missing file.
fn load_session(path: &Path, key: &'static str) -> Result<(Session, PathBuf), PostError> {
    let file = if path.is_dir() {
        path.join("model.onnx")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(PostError::Setting {
            key,
            message: format!(
                "{} does not exist (an .onnx file, or a folder holding model.onnx; docs/post.md \
                 says how to export one)",
                file.display()
            ),
        });
    }
    let load = |message: String| PostError::Load {
        path: file.clone(),
        message,
    };
    let env = crate::runtime::environment().map_err(|e| load(format!("{e:#}")))?;
    let session = crate::runtime::session_builder(env)
        .map_err(|e| load(e.to_string()))?
        .commit_from_file(&file)
        .map_err(|e| load(e.to_string()))?;
    Ok((session, file))
}

/// What [`run`] wrote.
#[derive(Debug, Default, Clone)]
pub struct PostSummary {
    /// `video.srt`, when subtitles are on.
    pub subtitles: Option<PathBuf>,
    /// The upscaled video and its frame count.
    pub upscaled: Option<(PathBuf, usize)>,
    /// The interpolated video and its frame count.
    pub interpolated: Option<(PathBuf, usize)>,
}

/// The number of frames `OUT/frames/000000.png`, `000001.png`, … (contiguous from 0).
pub fn count_frames(out: &Path) -> usize {
    (0..)
        .take_while(|&i| output::frame_path(out, i).is_file())
        .count()
}

/// The scene's video settings at `fps`.
fn video_settings(scene: &Scene, fps: f64) -> VideoSettings {
    let o = &scene.output;
    VideoSettings {
        fps,
        crf: o.crf,
        preset: o.preset.clone(),
        codec: o.codec.clone(),
        pixel_format: o.pixel_format.clone(),
    }
}

/// The model a `[post]` key names: a path (relative to the scene file) when it has a path
/// separator or ends in `.onnx`, else Deforum's model name as the folder `models/<name>` beside
/// the scene.
pub fn model_path(scene: &Scene, name: &str) -> PathBuf {
    let p = Path::new(name);
    if name.contains('/') || name.contains('\\') || name.ends_with(".onnx") {
        scene.resolve(p)
    } else {
        scene.resolve(&Path::new("models").join(p))
    }
}

/// Runs the post passes the scene asks for over the render in `out` (frames in `OUT/frames/`,
/// records in `OUT/manifest.json`): `video.srt`, then the upscaled frames and
/// `video_Upscaled_x<N>.mp4`, then the interpolated frames and `video_<ENGINE>_x<X>.mp4`
/// (`_slomo_x<S>` with slow motion). Frames a pass does not keep are removed after its video.
///
/// # Errors
/// No frames, a model that is missing or does not follow its contract, a factor the model does
/// not have, a file that cannot be read or written.
pub fn run(scene: &Scene, out: &Path) -> Result<PostSummary, PostError> {
    let n = count_frames(out);
    let mut summary = PostSummary::default();
    if n == 0 && (scene.output.subtitles || !scene.post.is_off()) {
        return Err(io_err(
            &out.join("frames"),
            "no frames (000000.png …) to post-process: render the scene first",
        ));
    }
    if scene.output.subtitles {
        let srt = subtitles::write_for_render(scene, out, n)?;
        let video = out.join("video.mp4");
        if scene.output.embed_subtitles && video.is_file() {
            embed(&video, &srt)?;
        }
        summary.subtitles = Some(srt);
    }
    // Deforum embeds the cues in the upscaled and interpolated videos too (not in slow motion)
    let srt = summary
        .subtitles
        .clone()
        .filter(|_| scene.output.embed_subtitles);
    let post = &scene.post;
    let mut upscaled_frames: Option<PathBuf> = None;
    if post.r_upscale_video {
        let factor: u32 = post
            .r_upscale_factor
            .trim_start_matches('x')
            .parse()
            .unwrap_or(0);
        let path = model_path(scene, &post.r_upscale_model);
        let mut up = Upscaler::load(&path)?;
        if up.factor() != factor {
            return Err(PostError::Setting {
                key: "r_upscale_factor",
                message: format!(
                    "\"{}\" but the model {} upscales x{}: set r_upscale_factor = \"x{}\" or use a x{factor} model",
                    post.r_upscale_factor,
                    path.display(),
                    up.factor(),
                    up.factor()
                ),
            });
        }
        let dir = out.join(format!("frames_upscaled_x{factor}"));
        let tiling = Tiling {
            tile: post.r_upscale_tile as usize,
            pad: post.r_upscale_tile_pad as usize,
        };
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let src = output::frame_path(out, i);
            let img = output::read_rgb(&src).map_err(|e| io_err(&src, e))?;
            let big = up.upscale(&img, tiling)?;
            let dst = dir.join(format!("{i:06}.png"));
            output::write_png_atomic(&dst, &big).map_err(|e| io_err(&dst, e))?;
            frames.push(dst);
        }
        let video = out.join(format!("video_Upscaled_x{factor}.mp4"));
        encode(
            scene,
            &frames,
            &video,
            scene.output.fps,
            true,
            srt.as_deref(),
        )?;
        summary.upscaled = Some((video, n));
        if post.r_upscale_keep_imgs {
            upscaled_frames = Some(dir);
        } else {
            std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
    }
    if let Some(engine) = Engine::from_name(&post.frame_interpolation_engine) {
        let model = match &post.frame_interpolation_model {
            Some(p) => scene.resolve(p),
            None => scene.resolve(&Path::new("models").join(engine.default_folder())),
        };
        let mut interp = Interpolator::load(&model)?;
        // Deforum interpolates the upscaled frames only while they are kept
        let src: Vec<PathBuf> = match (&upscaled_frames, post.frame_interpolation_use_upscaled) {
            (Some(dir), true) => (0..n).map(|i| dir.join(format!("{i:06}.png"))).collect(),
            _ => (0..n).map(|i| output::frame_path(out, i)).collect(),
        };
        let x = post.frame_interpolation_x_amount as usize;
        let slow = post
            .frame_interpolation_slow_mo_enabled
            .then_some(post.frame_interpolation_slow_mo_amount);
        let name = interpolated_name(engine, x, slow);
        let dir = out.join(format!("frames_{name}"));
        let mut frames = Vec::new();
        interpolate::interpolate_files(&mut interp, engine, &src, x, |img| {
            let dst = dir.join(format!("{:06}.png", frames.len()));
            output::write_png_atomic(&dst, &img).map_err(|e| io_err(&dst, e))?;
            frames.push(dst);
            Ok(())
        })?;
        let fps = scene.output.fps * x as f64 / slow.map_or(1.0, f64::from);
        let video = out.join(format!("video_{name}.mp4"));
        // slow motion drops the soundtrack, as Deforum does
        let cues = srt.as_deref().filter(|_| slow.is_none());
        encode(scene, &frames, &video, fps, slow.is_none(), cues)?;
        summary.interpolated = Some((video, frames.len()));
        if !post.frame_interpolation_keep_imgs {
            std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
    }
    Ok(summary)
}

/// Deforum's name of an interpolated video: `RIFE_x2`, `FILM_x4_slomo_x2`.
pub fn interpolated_name(engine: Engine, x: usize, slow_mo: Option<u32>) -> String {
    let mut s = format!("{}_x{x}", engine.label());
    if let Some(m) = slow_mo {
        s.push_str(&format!("_slomo_x{m}"));
    }
    s
}

/// The mp4 track name of embedded subtitles, as Deforum's `-metadata:s:s:0 title=...`.
pub const SUBTITLE_TITLE: &str = "Deforum Data";

/// Embeds the cues of `srt` in the mp4 `video` as a mov_text stream ([`SUBTITLE_TITLE`]).
fn embed(video: &Path, srt: &Path) -> Result<(), PostError> {
    output::mov_text::embed_srt(video, srt, SUBTITLE_TITLE).map_err(|e| PostError::Io {
        path: video.to_path_buf(),
        message: format!("[output] embed_subtitles: {e:#}"),
    })
}

/// Encodes `frames` into `video` with the scene's settings at `fps`, the scene's soundtrack
/// muxed when `audio`, the cues of `srt` embedded when given.
fn encode(
    scene: &Scene,
    frames: &[PathBuf],
    video: &Path,
    fps: f64,
    audio: bool,
    srt: Option<&Path>,
) -> Result<(), PostError> {
    if !scene.output.video {
        return Ok(());
    }
    output::encode_mp4(frames, video, &video_settings(scene, fps)).map_err(|e| io_err(video, e))?;
    if audio && let Some(track) = scene.soundtrack() {
        output::mux_soundtrack(video, track, scene.output.soundtrack_offset)
            .map_err(|e| io_err(video, e))?;
    }
    if let Some(srt) = srt {
        embed(video, srt)?;
    }
    Ok(())
}
