//! ControlNet units for the render loop: each unit's input (an image, a folder of frames, a
//! video, or loopback), its preprocessor and resize mode, and its schedules, turned into one
//! control map per frame ([`ControlFrame`]) for the painter. The models themselves run inside
//! the denoising loop ([`crate::diffusion::control`]).

pub mod preprocess;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use image::RgbImage;

use crate::camera::depth::DepthModel;
use crate::diffusion::{ControlMode, SessionOptions, WindowRule};
use crate::output;
use crate::scene::{AnimationMode, ControlNetUnit, FrameSchedules, Scene};
use preprocess::{Module, ResizeMode};

pub use crate::diffusion::control::MAX_UNITS;

/// One unit's conditioning at one frame.
#[derive(Debug, Clone)]
pub struct ControlFrame {
    /// The unit's index among the scene's `[[controlnet]]` tables (0-based).
    pub unit: usize,
    /// The control map at the frame size.
    pub map: RgbImage,
    /// Conditioning scale.
    pub weight: f32,
    /// Guidance window start (share of the steps).
    pub start: f64,
    /// Guidance window end.
    pub end: f64,
    /// Control mode.
    pub mode: ControlMode,
    /// How the window is read.
    pub window: WindowRule,
}

/// Where a unit's pictures come from.
enum Source {
    /// One picture for every frame.
    Image(RgbImage),
    /// Picture files, frame i taking file i (the last one past the end).
    Files(Vec<PathBuf>),
    /// The frame's img2img source.
    Loopback,
}

/// A unit's settings, read and checked.
struct Settings {
    /// Index among the scene's units (0-based).
    index: usize,
    /// How messages name the unit's keys (`cn_1_` or `[[controlnet]] #1 `).
    prefix: String,
    module: Module,
    resize: ResizeMode,
    mode: ControlMode,
    window: WindowRule,
    processor_res: u32,
    threshold_a: f64,
    threshold_b: f64,
    pixel_perfect: bool,
}

/// A unit ready to make control maps.
struct Unit {
    settings: Settings,
    source: Source,
    /// openpose's detector and pose estimator.
    pose: Option<preprocess::DwPose>,
    /// depth: the scene's depth model.
    depth: Option<DepthModel>,
    /// Whether the "input is shorter than the animation" warning was given.
    warned_short: bool,
    /// The map of a still-picture input, made at its first frame.
    cached: Option<RgbImage>,
}

/// The key name of `key` of unit `i` (0-based) as the scene's file writes it: `cn_1_model` in a
/// Deforum settings file, `[[controlnet]] #1 model` in a scene file.
pub fn key_name(scene: &Scene, i: usize, key: &str) -> String {
    if scene.from_deforum {
        let deforum = match key {
            "input" => "vid_path",
            "loopback" => "loopback_mode",
            k => k,
        };
        format!("cn_{}_{deforum}", i + 1)
    } else {
        format!("[[controlnet]] #{} {key}", i + 1)
    }
}

impl Settings {
    /// Reads unit `i`'s enumerated settings and ranges; errors name the scene file and key.
    fn read(scene: &Scene, i: usize, u: &ControlNetUnit) -> Result<Settings> {
        let at = |key: &str, e: anyhow::Error| {
            anyhow!(
                "{}: {}: {e:#}",
                scene.path.display(),
                key_name(scene, i, key)
            )
        };
        // unknown names: the accepted ones (in the parser's message) and the nearest
        let near = |e: anyhow::Error, v: &str, names: &[&str]| {
            anyhow!(
                "{e:#}{}",
                crate::scene::nearest_value(v, names.iter().copied())
            )
        };
        let module: Module = u.module.parse().map_err(|e: preprocess::PreprocessError| {
            at("module", near(anyhow!(e), &u.module, &Module::NAMES))
        })?;
        let resize: ResizeMode =
            u.resize_mode
                .parse()
                .map_err(|e: preprocess::PreprocessError| {
                    at(
                        "resize_mode",
                        near(anyhow!(e), &u.resize_mode, &ResizeMode::NAMES),
                    )
                })?;
        let mode: ControlMode = u.control_mode.parse().map_err(|e| {
            at(
                "control_mode",
                near(e, &u.control_mode, &ControlMode::NAMES),
            )
        })?;
        let window: WindowRule = u
            .window
            .parse()
            .map_err(|e| at("window", near(e, &u.window, &WindowRule::NAMES)))?;
        if !(64..=2048).contains(&u.processor_res) {
            return Err(at(
                "processor_res",
                anyhow!(
                    "{} is outside 64..=2048 (the ControlNet extension's range)",
                    u.processor_res
                ),
            ));
        }
        if module == Module::Canny {
            for (k, t) in [
                ("threshold_a", u.threshold_a),
                ("threshold_b", u.threshold_b),
            ] {
                if !(1.0..=255.0).contains(&t) {
                    return Err(at(k, anyhow!("{t}: canny thresholds are within 1..=255")));
                }
            }
        }
        Ok(Settings {
            index: i,
            prefix: key_name(scene, i, ""),
            module,
            resize,
            mode,
            window,
            processor_res: u.processor_res,
            threshold_a: u.threshold_a,
            threshold_b: u.threshold_b,
            pixel_perfect: u.pixel_perfect,
        })
    }
}

/// Whether `p` names a still picture (else a video) by its extension.
fn is_picture(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .is_some_and(|e| ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"].contains(&e.as_str()))
}

/// The picture files of a folder, sorted by name.
fn pictures_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_picture(p))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "folder {} holds no pictures (PNG, JPEG, WebP, BMP or TIFF)",
            dir.display()
        );
    }
    Ok(files)
}

/// The units of `scene` that are on.
fn enabled(scene: &Scene) -> impl Iterator<Item = (usize, &ControlNetUnit)> {
    scene
        .controlnet
        .iter()
        .enumerate()
        .filter(|(_, u)| u.enabled)
}

/// Checks every unit of `scene` without opening models or extracting videos: at most
/// [`MAX_UNITS`], settings known, windows within 0..=1 with start ≤ end at every frame, inputs
/// that exist and read (a video's header), the models a preprocessor needs. `anim validate`
/// and `anim render` run it before frame 0.
///
/// # Errors
/// The first problem, naming the scene file, the unit's key and (schedules) the frame.
pub fn check(scene: &Scene, sched: &FrameSchedules) -> Result<()> {
    let file = scene.path.display();
    if scene.controlnet.len() > MAX_UNITS {
        bail!(
            "{file}: {} ControlNet units; at most {MAX_UNITS} (Deforum's cn_1 … cn_5)",
            scene.controlnet.len()
        );
    }
    for (i, u) in enabled(scene) {
        let s = Settings::read(scene, i, u)?;
        let key = |k: &str| key_name(scene, i, k);
        let col = |k: &str| {
            sched
                .get(&format!("cn_{}_{k}", i + 1))
                .ok_or_else(|| anyhow!("{file}: schedule {} was not evaluated", key(k)))
        };
        let (w, st, en) = (col("weight")?, col("guidance_start")?, col("guidance_end")?);
        for f in 0..sched.frames() {
            if !w[f].is_finite() {
                bail!(
                    "{file}: {} at frame {f} is {}: a weight is a finite number",
                    key("weight"),
                    w[f]
                );
            }
            for (k, v) in [("guidance_start", st[f]), ("guidance_end", en[f])] {
                if !(0.0..=1.0).contains(&v) {
                    bail!(
                        "{file}: {} at frame {f} is {v}: a share of the steps, within 0..=1",
                        key(k)
                    );
                }
            }
            if st[f] > en[f] {
                bail!(
                    "{file}: {} at frame {f} is {} but {} is {}: the window starts after it ends",
                    key("guidance_start"),
                    st[f],
                    key("guidance_end"),
                    en[f]
                );
            }
        }
        match (&u.input, u.loopback) {
            (Some(p), false) => {
                let p = scene.resolve(p);
                if p.is_dir() {
                    pictures_in(&p).with_context(|| format!("{file}: {}", key("input")))?;
                } else if is_picture(&p) {
                    output::read_rgb(&p).with_context(|| format!("{file}: {}", key("input")))?;
                } else {
                    output::probe_video(&p).with_context(|| {
                        format!(
                            "{file}: {}: not a picture, a folder of pictures or a readable video",
                            key("input")
                        )
                    })?;
                }
            }
            (None, false) if !scene.from_deforum => bail!(
                "{file}: {}: the unit has no input; set input = \"picture.png\", \"frames/\" or \"video.mp4\", or loopback = true",
                s.prefix.trim_end()
            ),
            _ => {}
        }
        match s.module {
            Module::Openpose(_) => {
                for (k, p) in [
                    ("pose_detector", &u.pose_detector),
                    ("pose_estimator", &u.pose_estimator),
                ] {
                    let Some(p) = p else {
                        bail!(
                            "{file}: {}: the openpose preprocessor needs the DWPose models: set pose_detector = \
                             \"yolox_l.onnx\" and pose_estimator = \"dw-ll_ucoco_384.onnx\"",
                            key(k)
                        );
                    };
                    if !scene.resolve(p).is_file() {
                        bail!(
                            "{file}: {}: {} does not exist",
                            key(k),
                            scene.resolve(p).display()
                        );
                    }
                }
            }
            Module::Depth if scene.depth.model.is_none() => bail!(
                "{file}: {}: the depth preprocessor runs the scene's depth model: set [depth] model",
                key("module")
            ),
            _ => {}
        }
    }
    Ok(())
}

/// The model folder of each enabled unit (`None` where the unit names none), in unit order,
/// with the unit's index.
pub fn model_folders(scene: &Scene) -> Vec<(usize, Option<PathBuf>)> {
    enabled(scene)
        .map(|(i, u)| (i, u.model.as_ref().map(|m| scene.resolve(m))))
        .collect()
}

/// Whether the scene has a unit that is on.
pub fn any_enabled(scene: &Scene) -> bool {
    enabled(scene).next().is_some()
}

/// The scene's units, ready to make control maps frame by frame.
pub struct Controls {
    units: Vec<Unit>,
    /// `OUT` when `[output] save_control_maps` is on.
    save: Option<PathBuf>,
    size: (u32, u32),
    /// Warnings for the loop to print.
    warnings: Vec<String>,
}

impl Controls {
    /// Opens the inputs of every enabled unit of `scene` (a video is extracted once to
    /// `WORK/controlnet_N_inputframes/`, reused when `resumed` or when `overwrite_frames` is off
    /// and frames are there; `work` is the output folder, or a range's own part folder so that
    /// ranges rendered side by side do not share it) and loads the preprocessors' models; maps
    /// are saved under `out`; `None` without units.
    ///
    /// # Errors
    /// As [`check`]; unreadable inputs or models, naming the unit's key.
    pub fn open(
        scene: &Scene,
        sched: &FrameSchedules,
        out: &Path,
        work: &Path,
        resumed: bool,
        session: &SessionOptions,
    ) -> Result<Option<Controls>> {
        check(scene, sched)?;
        let file = scene.path.display();
        let mut units = Vec::new();
        let mut warnings = Vec::new();
        for (i, u) in enabled(scene) {
            let settings = Settings::read(scene, i, u)?;
            let key = |k: &str| key_name(scene, i, k);
            let source = match (&u.input, u.loopback) {
                (_, true) => Source::Loopback,
                (None, false) => {
                    warnings.push(format!(
                        "{}: no input; the frame's img2img source is used, as the ControlNet extension does",
                        settings.prefix.trim_end()
                    ));
                    Source::Loopback
                }
                (Some(p), false) => {
                    let p = scene.resolve(p);
                    if p.is_dir() {
                        Source::Files(pictures_in(&p)?)
                    } else if is_picture(&p) {
                        Source::Image(
                            output::read_rgb(&p)
                                .with_context(|| format!("{file}: {}", key("input")))?,
                        )
                    } else {
                        let dir = work.join(format!("controlnet_{}_inputframes", i + 1));
                        let have = dir.is_dir()
                            && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
                        if !(have && (resumed || !u.overwrite_frames)) {
                            let _ = std::fs::remove_dir_all(&dir);
                            let (nth, from, to) =
                                if scene.animation.mode == AnimationMode::VideoInput {
                                    let vi = &scene.video_input;
                                    (
                                        vi.extract_nth_frame,
                                        vi.extract_from_frame,
                                        usize::try_from(vi.extract_to_frame).ok(),
                                    )
                                } else {
                                    (1, 0, Some(sched.frames().saturating_sub(1)))
                                };
                            output::extract_frames(&p, &dir, nth, from, to)
                                .with_context(|| format!("{file}: {}", key("input")))?;
                        }
                        Source::Files(pictures_in(&dir)?)
                    }
                }
            };
            let pose = match settings.module {
                Module::Openpose(_) => {
                    let mut notes = Vec::new();
                    let det = scene.resolve(u.pose_detector.as_deref().unwrap_or(Path::new("")));
                    let est = scene.resolve(u.pose_estimator.as_deref().unwrap_or(Path::new("")));
                    Some(
                        preprocess::DwPose::load(&det, &est, session, &mut notes)
                            .with_context(|| format!("{file}: {}", key("module")))?,
                    )
                }
                _ => None,
            };
            let depth = match (settings.module, &scene.depth.model) {
                (Module::Depth, Some(m)) => Some(
                    DepthModel::load(&scene.resolve(m), &scene.depth).map_err(|e| {
                        anyhow!("{file}: [depth] model (for {}): {e}", key("module"))
                    })?,
                ),
                _ => None,
            };
            units.push(Unit {
                settings,
                source,
                pose,
                depth,
                warned_short: false,
                cached: None,
            });
        }
        if units.is_empty() {
            return Ok(None);
        }
        Ok(Some(Controls {
            units,
            save: scene.output.save_control_maps.then(|| out.to_path_buf()),
            size: (scene.image.width, scene.image.height),
            warnings,
        }))
    }

    /// Warnings since the last call (inputs shorter than the animation, …).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The control maps of frame `f`: one per unit with a picture at this frame (a loopback
    /// unit has none at a txt2img frame), each fitted to the frame; written to
    /// `OUT/controlnet_N/` when the scene asks.
    ///
    /// # Errors
    /// Unreadable input pictures, preprocessor failures, naming the unit and frame.
    pub fn frame(
        &mut self,
        f: usize,
        sched: &FrameSchedules,
        init: Option<&RgbImage>,
    ) -> Result<Vec<ControlFrame>> {
        let mut out = Vec::with_capacity(self.units.len());
        for unit in &mut self.units {
            let (n, prefix) = (unit.settings.index + 1, unit.settings.prefix.clone());
            let map = match &unit.cached {
                // a still picture gives the same map every frame
                Some(map) => map.clone(),
                None => {
                    let picture: Option<Cow<RgbImage>> = match &unit.source {
                        Source::Image(img) => Some(Cow::Owned(img.clone())),
                        Source::Loopback => init.map(Cow::Borrowed),
                        Source::Files(files) => {
                            if f >= files.len() && !unit.warned_short {
                                unit.warned_short = true;
                                self.warnings.push(format!(
                                    "{prefix}input has {} frames; frame {f} and later use its last one",
                                    files.len()
                                ));
                            }
                            let p = &files[f.min(files.len() - 1)];
                            Some(Cow::Owned(
                                output::read_rgb(p)
                                    .with_context(|| format!("{prefix}input, frame {f}"))?,
                            ))
                        }
                    };
                    let Some(picture) = picture else { continue };
                    let map = unit.map(&picture, self.size).with_context(|| {
                        format!("ControlNet unit {n} ({}), frame {f}", prefix.trim_end())
                    })?;
                    if matches!(unit.source, Source::Image(_)) {
                        unit.cached = Some(map.clone());
                    }
                    map
                }
            };
            if let Some(dir) = &self.save {
                output::write_png_atomic(
                    &dir.join(format!("controlnet_{n}"))
                        .join(format!("{f:06}.png")),
                    &map,
                )?;
            }
            let col = |k: &str| sched.get(&format!("cn_{n}_{k}")).map_or(0.0, |v| v[f]);
            out.push(ControlFrame {
                unit: n - 1,
                map,
                weight: col("weight") as f32,
                start: col("guidance_start"),
                end: col("guidance_end"),
                mode: unit.settings.mode,
                window: unit.settings.window,
            });
        }
        Ok(out)
    }
}

impl Unit {
    /// The control map of `picture` for a frame of `size`: the preprocessor at its resolution,
    /// then the resize mode (A1111's `detectmap_proc`).
    fn map(&mut self, picture: &RgbImage, size: (u32, u32)) -> Result<RgbImage> {
        let s = &self.settings;
        let (w, h) = size;
        let res = if s.pixel_perfect {
            preprocess::pixel_perfect_resolution(picture.width(), picture.height(), w, h, s.resize)
        } else {
            s.processor_res
        };
        let detected = match s.module {
            Module::None => picture.clone(),
            Module::Invert => preprocess::invert(picture),
            Module::Canny => {
                preprocess::a1111_canny(picture, res, s.threshold_a as f32, s.threshold_b as f32)?
            }
            Module::Depth => {
                // the extension runs the depth model at the padded preprocessor resolution
                let model = self
                    .depth
                    .as_mut()
                    .ok_or_else(|| anyhow!("no depth model"))?;
                let padded = preprocess::resize_with_pad(picture, res)?;
                let (pw, ph) = padded.image.dimensions();
                let raw = model.predict(&padded.image).map_err(|e| anyhow!("{e}"))?;
                padded.crop(&preprocess::depth_to_map(&raw, pw, ph)?)
            }
            Module::Openpose(parts) => {
                let pose = self
                    .pose
                    .as_mut()
                    .ok_or_else(|| anyhow!("no pose models"))?;
                pose.a1111_map(picture, res, parts)?
            }
        };
        Ok(preprocess::fit(&detected, s.resize, w, h)?)
    }
}
