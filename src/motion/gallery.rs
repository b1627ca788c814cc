//! `anim presets preview`: a short motion-only clip of each preset on the built-in test pattern
//! (the `preview` frame loop on a generated scene), and a contact sheet of all of them.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::motion::PresetUse;
use crate::render::{self, RenderOptions};
use crate::scene::{AnimationMode, Scene, ScheduleText};

/// Frames shown per preset on the contact sheet (evenly spaced, first and last included).
pub const SHEET_FRAMES: usize = 5;

/// Options of a preset preview.
#[derive(Debug, Clone)]
pub struct GalleryOptions {
    /// Output folder: one sub-folder per preset plus `contact_sheet.png`.
    pub out: PathBuf,
    /// Frames per clip.
    pub frames: usize,
    /// Frame width and height in pixels (a multiple of 8).
    pub size: u32,
    /// Frames per second of the clips.
    pub fps: f64,
    /// Encode an mp4 per clip.
    pub video: bool,
    /// No progress bars.
    pub quiet: bool,
    /// Extra preset folders (after the user folder).
    pub preset_dirs: Vec<PathBuf>,
}

impl Default for GalleryOptions {
    fn default() -> Self {
        GalleryOptions {
            out: PathBuf::from("presets-preview"),
            frames: 48,
            size: 256,
            fps: 12.0,
            video: true,
            quiet: false,
            preset_dirs: Vec::new(),
        }
    }
}

/// What a preview produced.
#[derive(Debug, Clone)]
pub struct GallerySummary {
    /// (preset name, clip folder with `frames/` and `video.mp4`).
    pub clips: Vec<(String, PathBuf)>,
    /// The contact sheet PNG.
    pub contact_sheet: PathBuf,
}

/// A motion-only 2D scene: neutral camera (zoom 1, no rotation or translation) plus `name` with
/// its default parameters over every frame, on the test pattern.
pub fn preset_scene(name: &str, opts: &GalleryOptions) -> Scene {
    let mut s = Scene::default();
    s.image.width = opts.size;
    s.image.height = opts.size;
    s.animation.mode = AnimationMode::TwoD;
    s.animation.max_frames = opts.frames;
    s.generation.seed = 0;
    s.motion.zoom = ScheduleText::Number(1.0);
    s.motion.preset = vec![PresetUse {
        name: name.to_string(),
        from: None,
        to: None,
        params: Default::default(),
    }];
    // the scene lives in the output folder, so make the folders independent of it
    s.motion.preset_dirs = opts
        .preset_dirs
        .iter()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        .collect();
    s.output.fps = opts.fps;
    s.output.video = opts.video;
    s.path = opts.out.join(name).join("scene.toml");
    s
}

/// Renders a clip per preset of `names` into `opts.out/NAME/` (with the generated `scene.toml`)
/// and a contact sheet `opts.out/contact_sheet.png`.
///
/// # Errors
/// An unknown preset, a frame count or size that is not usable, or a file that cannot be written.
pub fn preview(names: &[String], opts: &GalleryOptions) -> Result<GallerySummary> {
    if opts.frames < 2 {
        anyhow::bail!(
            "--frames {}: a preview needs at least 2 frames",
            opts.frames
        );
    }
    if opts.size == 0 || !opts.size.is_multiple_of(8) {
        anyhow::bail!("--size {}: must be a positive multiple of 8", opts.size);
    }
    let mut clips = Vec::new();
    for name in names {
        let scene = preset_scene(name, opts);
        let dir = opts.out.join(name);
        scene
            .schedules()
            .map_err(|e| anyhow!("preset {name}: {e}"))?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let toml = toml::to_string(&scene)
            .map_err(|e| anyhow!("preset {name}: cannot write its scene: {e}"))?;
        std::fs::write(&scene.path, toml)
            .with_context(|| format!("cannot write {}", scene.path.display()))?;
        let ropts = RenderOptions {
            out: Some(dir.clone()),
            quiet: opts.quiet,
            no_video: !opts.video,
            ..Default::default()
        };
        render::preview(&scene, &ropts).with_context(|| format!("preset {name}"))?;
        clips.push((name.clone(), dir));
    }
    let sheet = contact_sheet(&clips, opts.frames)?;
    let path = opts.out.join("contact_sheet.png");
    sheet
        .save(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(GallerySummary {
        clips,
        contact_sheet: path,
    })
}

const LABEL_W: u32 = 190;
const PAD: u32 = 6;

/// One row per clip: its name, then [`SHEET_FRAMES`] frames from first to last.
pub fn contact_sheet(clips: &[(String, PathBuf)], frames: usize) -> Result<RgbImage> {
    let picks: Vec<usize> = (0..SHEET_FRAMES)
        .map(|k| k * (frames - 1) / (SHEET_FRAMES - 1))
        .collect();
    let mut rows: Vec<Vec<RgbImage>> = Vec::new();
    for (_, dir) in clips {
        let mut row = Vec::new();
        for &i in &picks {
            let img = crate::output::read_rgb(&crate::output::frame_path(dir, i))
                .with_context(|| format!("contact sheet: {}", dir.display()))?;
            let t = 128.min(img.width());
            row.push(image::imageops::resize(
                &img,
                t,
                t * img.height() / img.width().max(1),
                image::imageops::FilterType::Triangle,
            ));
        }
        rows.push(row);
    }
    let (tw, th) = rows
        .first()
        .and_then(|r| r.first())
        .map(|i| i.dimensions())
        .unwrap_or((128, 128));
    let header = 24;
    let w = LABEL_W + SHEET_FRAMES as u32 * (tw + PAD) + PAD;
    let h = header + rows.len() as u32 * (th + PAD) + PAD;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        crate::schedule::plot::register_font();
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = ("sans-serif", 16).into_font().color(&BLACK);
        let small = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
        for (k, &i) in picks.iter().enumerate() {
            let x = (LABEL_W + PAD + k as u32 * (tw + PAD)) as i32;
            root.draw(&Text::new(format!("frame {i}"), (x, 6), small.clone()))
                .map_err(|e| anyhow!("contact sheet: {e}"))?;
        }
        for (r, (name, _)) in clips.iter().enumerate() {
            let y = (header + PAD + r as u32 * (th + PAD) + th / 2) as i32 - 8;
            root.draw(&Text::new(name.clone(), (PAD as i32, y), style.clone()))
                .map_err(|e| anyhow!("contact sheet: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("contact sheet: {e}"))?;
    }
    let mut sheet = RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| anyhow!("contact sheet buffer has the wrong size"))?;
    for (r, row) in rows.iter().enumerate() {
        for (k, img) in row.iter().enumerate() {
            let x = LABEL_W + PAD + k as u32 * (tw + PAD);
            let y = header + PAD + r as u32 * (th + PAD);
            image::imageops::overlay(&mut sheet, img, x as i64, y as i64);
        }
    }
    // a thin rule between rows
    for r in 1..rows.len() as u32 {
        let y = header + r * (th + PAD) + PAD / 2;
        for x in 0..w {
            sheet.put_pixel(x, y.min(h - 1), Rgb([220, 220, 220]));
        }
    }
    Ok(sheet)
}
