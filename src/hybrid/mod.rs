//! Deforum's hybrid video for 2D and 3D modes: a video's frames composited into each frame
//! ([`composite`], with Pillow-exact [`mask`] operations and [`resize`]), and the video's motion
//! from frame t-1 to t applied to the frame (hybrid motion). [`Hybrid`] is the per-render state:
//! the extracted video frames, the depth model of the depth masks and its running range.
//!
//! Where it runs in the frame loop (as Deforum's `render_animation`): after the camera warp of
//! a key frame, `before motion` composite → hybrid motion → `normal` composite, then the
//! pre-diffusion stages; the `after generation` composite on the painted frame (from frame 1
//! on) before its colour match. Frame 0 is img2img of video frame 0 with
//! `use_first_frame_as_init_image`.

pub mod composite;
pub mod mask;
pub mod matrix;
pub mod resize;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use image::{GrayImage, RgbImage};

use crate::camera::depth::{DepthModel, depth_to_z};
use crate::camera::warp2d::Mat3;
use crate::flow::warp::{FlowMotion, apply_flow};
use crate::flow::{Estimator, Flow, Method};
use crate::output;
use crate::scene::{
    FrameValues, HybridComposite, HybridMaskType, HybridMotion, HybridSettings, Scene,
};
pub use composite::{CompositeValues, Composited};

/// The folder (below the output folder, or a part's) that holds the extracted video frames.
pub const FRAMES_DIR: &str = "hybridinput";
/// The folder of `comp_save_extra_frames`.
pub const EXTRA_DIR: &str = "hybridframes";

/// Checks what hybrid video needs before a render starts: the settings anim implements, the
/// video file or init image. `anim validate` runs it too.
///
/// # Errors
/// The first problem, naming the scene file and the key.
pub fn check(scene: &Scene) -> Result<()> {
    if !scene.hybrid_active() {
        return Ok(());
    }
    let file = scene.path.display();
    let h = &scene.hybrid;
    let key = |k: &str, d: &str| {
        if scene.from_deforum {
            format!("`{d}`")
        } else {
            format!("[hybrid] {k}")
        }
    };
    match h.motion {
        HybridMotion::None => {}
        HybridMotion::OpticalFlow | HybridMotion::Perspective | HybridMotion::Affine => {}
    }
    if !h.use_init_image {
        let video = scene.resolve(scene.hybrid_video().unwrap_or(Path::new("")));
        if !video.is_file() {
            bail!(
                "{file}: the hybrid video {} does not exist ({})",
                video.display(),
                key("video_init_path", "video_init_path")
            );
        }
    }
    Ok(())
}

/// Extracts the hybrid video's frames into `book/hybridinput/` (or, with
/// `generate_inputframes` off or on a resume, reuses those there); returns how many there are.
/// Deforum's `hybrid_generation` setup.
///
/// # Errors
/// An unreadable video, or a video without frames in the extraction range.
pub fn extract(scene: &Scene, book: &Path, resumed: bool) -> Result<usize> {
    let h = &scene.hybrid;
    let dir = book.join(FRAMES_DIR);
    let count = crate::output::count_pngs;
    let reuse = (resumed || !h.generate_inputframes) && count(&dir) > 0;
    let n = if reuse {
        count(&dir)
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        let video = scene.resolve(scene.hybrid_video().unwrap_or(Path::new("")));
        let to = usize::try_from(h.extract_to_frame).ok();
        output::extract_frames(&video, &dir, h.extract_nth_frame, h.extract_from_frame, to)
            .with_context(|| {
                format!(
                    "{}: the hybrid video ({})",
                    scene.path.display(),
                    if scene.from_deforum {
                        "`video_init_path`"
                    } else {
                        "[hybrid] video_init_path"
                    }
                )
            })?
    };
    if n == 0 {
        bail!(
            "{}: the hybrid video has no frames in the extraction range (extract_from_frame {}, \
             extract_to_frame {}, extract_nth_frame {})",
            scene.path.display(),
            h.extract_from_frame,
            h.extract_to_frame,
            h.extract_nth_frame
        );
    }
    Ok(n)
}

/// Hybrid video's state through a render.
pub struct Hybrid {
    settings: HybridSettings,
    size: (u32, u32),
    frames: PathBuf,
    count: usize,
    /// `use_init_image`: the init image stands in for every video frame.
    init: Option<RgbImage>,
    depth: Option<DepthModel>,
    /// The running minimum and maximum of every depth made into an image (Deforum's
    /// `DepthModel.to_image`).
    depth_range: Option<(f32, f32)>,
    /// The depth mask of the current frame (`depth`: made from the previous frame).
    prev_depth: Option<GrayImage>,
    extra: Option<PathBuf>,
    /// Hybrid motion "Optical Flow": the flow method and the previous flow.
    flow: Option<FlowMotion>,
    /// The motion steps measured since [`Hybrid::take_steps`] (the tweens undo them).
    steps: Vec<(usize, MotionStep)>,
    /// The last two motion frames read (frame t's motion reads t - 1 and t, the next t and
    /// t + 1), so each video frame is decoded and resized once.
    motion_frames: std::cell::RefCell<Vec<(usize, RgbImage)>>,
}

/// One frame's hybrid motion as measured (video frame t-1 → t), kept so the later key frame can
/// be moved back through it for the tweens before it.
pub enum MotionStep {
    /// Optical flow and the `hybrid_flow_factor` it was applied with.
    Flow(Flow, f64),
    /// A Perspective or Affine matrix (3×3).
    Matrix(Mat3),
}

impl MotionStep {
    /// `img` moved back through this step: the flow applied with the opposite factor (as
    /// Deforum's optical-flow cadence pulls `turbo_next` back), or the inverse matrix.
    pub fn undo(&self, img: &RgbImage) -> RgbImage {
        match self {
            MotionStep::Flow(flow, factor) => apply_flow(img, flow, -factor),
            MotionStep::Matrix(m) => match crate::camera::warp2d::invert(m) {
                Some(inv) => matrix::warp_reflect101(img, &inv),
                None => img.clone(),
            },
        }
    }
}

impl Hybrid {
    /// The state of `scene`'s hybrid video whose frames [`extract`] put in `book` (`None` when
    /// hybrid video is off); `out` is the output folder (for `hybridframes/`).
    ///
    /// # Errors
    /// An unreadable init image or depth model.
    pub fn open(scene: &Scene, book: &Path, out: &Path) -> Result<Option<Hybrid>> {
        if !scene.hybrid_active() {
            return Ok(None);
        }
        let h = &scene.hybrid;
        let size = (scene.image.width, scene.image.height);
        let init = match (&scene.init.image, h.use_init_image) {
            (Some(p), true) => {
                let img = output::read_rgb(&scene.resolve(p))
                    .with_context(|| format!("{}: [init] image", scene.path.display()))?;
                Some(resize::lanczos_pil(&img, size.0, size.1))
            }
            _ => None,
        };
        let depth = match (h.comp_mask_type, &scene.depth.model) {
            (HybridMaskType::Depth | HybridMaskType::VideoDepth, Some(m))
                if h.composite != HybridComposite::None =>
            {
                Some(
                    DepthModel::load(&scene.resolve(m), &scene.depth)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", scene.path.display()))?,
                )
            }
            _ => None,
        };
        let extra = h.comp_save_extra_frames.then(|| out.join(EXTRA_DIR));
        if let Some(d) = &extra {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let flow = match h.motion {
            HybridMotion::OpticalFlow => {
                let key = if scene.from_deforum {
                    "`hybrid_flow_method`"
                } else {
                    "[hybrid] flow_method"
                };
                let method: Method = h
                    .flow_method
                    .parse()
                    .with_context(|| format!("{}: {key}", scene.path.display()))?;
                let est =
                    Estimator::new(method, scene.raft_model().as_deref()).with_context(|| {
                        format!("{}: {key} = \"{}\"", scene.path.display(), h.flow_method)
                    })?;
                Some(FlowMotion::new(
                    est,
                    h.flow_consistency,
                    h.consistency_blur,
                )?)
            }
            _ => None,
        };
        let frames = book.join(FRAMES_DIR);
        let count = if init.is_some() {
            usize::MAX
        } else {
            std::fs::read_dir(&frames)
                .with_context(|| format!("cannot list {}", frames.display()))?
                .count()
        };
        Ok(Some(Hybrid {
            settings: h.clone(),
            size,
            frames,
            count,
            init,
            depth,
            depth_range: None,
            prev_depth: None,
            extra,
            flow,
            steps: Vec::new(),
            motion_frames: std::cell::RefCell::new(Vec::with_capacity(2)),
        }))
    }

    /// Video frame `t` at the frame size, resized as Deforum's composite does (Pillow's
    /// LANCZOS); the init image with `use_init_image`. A shorter video holds its last frame.
    ///
    /// # Errors
    /// An unreadable frame file.
    pub fn video_frame(&self, t: usize) -> Result<RgbImage> {
        if let Some(img) = &self.init {
            return Ok(img.clone());
        }
        let i = t.min(self.count.saturating_sub(1));
        let img = output::read_rgb(&self.frames.join(format!("{i:06}.png")))?;
        Ok(resize::lanczos_pil(&img, self.size.0, self.size.1))
    }

    /// Video frame `t` as Deforum reads it for hybrid motion: resized to the frame size with
    /// `cv2.resize`'s bilinear filter (Deforum passes `INTER_AREA` in the place of `dst`, so the
    /// default `INTER_LINEAR` runs); the init image with `use_init_image`.
    ///
    /// # Errors
    /// An unreadable frame file.
    pub fn motion_frame(&self, t: usize) -> Result<RgbImage> {
        if let Some(img) = &self.init {
            return Ok(img.clone());
        }
        let i = t.min(self.count.saturating_sub(1));
        if let Some((_, img)) = self.motion_frames.borrow().iter().find(|(k, _)| *k == i) {
            return Ok(img.clone());
        }
        let img = output::read_rgb(&self.frames.join(format!("{i:06}.png")))?;
        let (w, h) = self.size;
        let data = crate::controlnet::preprocess::resize(
            img.as_raw(),
            img.width() as usize,
            img.height() as usize,
            3,
            w as usize,
            h as usize,
            crate::controlnet::preprocess::Interpolation::Linear,
        );
        let img = RgbImage::from_raw(w, h, data)
            .ok_or_else(|| anyhow::anyhow!("frame {t}: the resized video frame does not fit"))?;
        let mut cache = self.motion_frames.borrow_mut();
        if cache.len() == 2 {
            cache.remove(0);
        }
        cache.push((i, img.clone()));
        Ok(img)
    }

    /// Frame 0's init image (`use_first_frame_as_init_image`), or `None` when it is off.
    ///
    /// # Errors
    /// As [`Hybrid::video_frame`].
    pub fn first_frame_init(&self) -> Result<Option<RgbImage>> {
        if self.settings.use_first_frame_as_init_image {
            Ok(Some(self.video_frame(0)?))
        } else {
            Ok(None)
        }
    }

    /// A depth map as Deforum's `DepthModel.to_image`: scaled by the running minimum and
    /// maximum of all maps so far, truncated to 8 bits.
    fn depth_image(&mut self, img: &RgbImage, what: &str) -> Result<GrayImage> {
        let model = self
            .depth
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("the depth masks need a [depth] model"))?;
        let raw = model
            .predict(img)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let z = depth_to_z(&raw).unwrap_or_else(|| vec![1.0; raw.len()]);
        let (lo, hi) = z
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = match self.depth_range {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        };
        self.depth_range = Some((lo, hi));
        let denom = (hi - lo).max(1e-8);
        let data = z
            .iter()
            .map(|&v| ((v - lo) / denom * 255.0) as u8)
            .collect();
        GrayImage::from_raw(img.width(), img.height(), data)
            .ok_or_else(|| anyhow::anyhow!("{what}: the depth map does not fit the frame"))
    }

    /// Notes the previous key frame before frame `t` is made from it: its depth is the
    /// `depth` mask of frame `t`.
    ///
    /// # Errors
    /// A depth model failure.
    pub fn set_previous(&mut self, t: usize, prev: &RgbImage) -> Result<()> {
        if self.settings.composite != HybridComposite::None
            && self.settings.comp_mask_type == HybridMaskType::Depth
        {
            self.prev_depth = Some(self.depth_image(prev, &format!("frame {t}: depth mask"))?);
        }
        Ok(())
    }

    /// On a resume: rebuilds the running depth range from the key frames already made
    /// (`keys`, in order, their pictures in `out`'s frames), as the uninterrupted render built
    /// it, so the depth masks after the resume are the same.
    ///
    /// # Errors
    /// An unreadable frame or a depth model failure.
    pub fn replay(&mut self, keys: &[usize], out: &Path) -> Result<()> {
        if self.settings.composite == HybridComposite::None {
            return Ok(());
        }
        for w in keys.windows(2) {
            let (p, f) = (w[0], w[1]);
            match self.settings.comp_mask_type {
                HybridMaskType::Depth => {
                    let prev = output::read_rgb(&output::frame_path(out, p))?;
                    self.depth_image(&prev, &format!("frame {f}: depth mask"))?;
                }
                HybridMaskType::VideoDepth => {
                    let video = self.video_frame(f)?;
                    self.depth_image(&video, &format!("frame {f}: video depth mask"))?;
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// The composite of video frame `t` into `img` if the scene's composite runs `when`.
    ///
    /// # Errors
    /// An unreadable video frame, a depth model failure, or a file that cannot be written.
    pub fn composite(
        &mut self,
        when: HybridComposite,
        t: usize,
        img: RgbImage,
        values: &FrameValues,
    ) -> Result<RgbImage> {
        if self.settings.composite != when || when == HybridComposite::None {
            return Ok(img);
        }
        let video = self.video_frame(t)?;
        let depth = match self.settings.comp_mask_type {
            HybridMaskType::Depth => self.prev_depth.clone(),
            HybridMaskType::VideoDepth => {
                Some(self.depth_image(&video, &format!("frame {t}: video depth mask"))?)
            }
            _ => None,
        };
        let v = CompositeValues::at(values);
        let done = composite::composite(&img, &video, depth.as_ref(), &self.settings, &v);
        if let Some(dir) = &self.extra {
            output::write_png_atomic(&dir.join(format!("video_{t:06}.png")), &video)?;
            output::write_png_atomic(&dir.join(format!("comp_{t:06}.png")), &done.comp)?;
            if let Some(m) = &done.mask {
                let rgb = image::DynamicImage::ImageLuma8(m.clone()).to_rgb8();
                output::write_png_atomic(&dir.join(format!("mask_{t:06}.png")), &rgb)?;
            }
        }
        Ok(done.image)
    }

    /// The hybrid motion of frame `t` (the video's motion from frame t-1 to t) applied to
    /// `img`; the step measured is kept for [`Hybrid::take_steps`].
    ///
    /// # Errors
    /// An unreadable video frame or a flow method that fails.
    pub fn motion(&mut self, t: usize, img: RgbImage, values: &FrameValues) -> Result<RgbImage> {
        if t == 0 {
            return Ok(img);
        }
        let step = match self.settings.motion {
            HybridMotion::None => return Ok(img),
            // the flow from video frame t-1 (or the picture itself with `motion_use_prev_img`)
            // to video frame t, masked by its consistency when asked, applied to the picture
            // (Deforum's `get_flow_for_hybrid_motion[_prev]` + `image_transform_optical_flow`)
            HybridMotion::OpticalFlow => {
                let b = self.motion_frame(t)?;
                let a = if self.settings.motion_use_prev_img {
                    img.clone()
                } else {
                    self.motion_frame(t - 1)?
                };
                if a.dimensions() != img.dimensions() {
                    bail!(
                        "frame {t}: hybrid motion: the video frame is {}x{}, the picture {}x{}",
                        a.width(),
                        a.height(),
                        img.width(),
                        img.height()
                    );
                }
                let flow = self.flow.as_mut().expect("made in open for optical flow");
                let flow = flow
                    .flow(&a, &b)
                    .with_context(|| format!("frame {t}: hybrid motion (optical flow)"))?;
                MotionStep::Flow(flow, values.hybrid_flow_factor)
            }
            HybridMotion::Perspective | HybridMotion::Affine => {
                // Deforum: video frame t-1 -> t; with `motion_use_prev_img` the previous frame
                // (moved by the camera) -> video frame t, where Deforum's own code returns the
                // identity or fails (docs/deforum-differences.md)
                let to = crate::flow::gray(&self.motion_frame(t)?);
                let from = if self.settings.motion_use_prev_img {
                    crate::flow::gray(&img)
                } else {
                    crate::flow::gray(&self.motion_frame(t - 1)?)
                };
                MotionStep::Matrix(if self.settings.motion == HybridMotion::Perspective {
                    matrix::perspective(&from, &to)
                } else {
                    matrix::affine_to_3x3(&matrix::affine(&from, &to))
                })
            }
        };
        let out = match &step {
            MotionStep::Flow(flow, factor) => apply_flow(&img, flow, *factor),
            MotionStep::Matrix(m) => matrix::warp_reflect101(&img, m),
        };
        self.steps.push((t, step));
        Ok(out)
    }

    /// Whether hybrid motion is on (the frames between key frames are moved too).
    pub fn moves(&self) -> bool {
        self.settings.motion != HybridMotion::None
    }

    /// The motion steps measured since the last call, by frame, in the order measured.
    pub fn take_steps(&mut self) -> Vec<(usize, MotionStep)> {
        std::mem::take(&mut self.steps)
    }

    /// The last optical flow of hybrid motion (DIS's initial field for the next), to checkpoint.
    pub fn prev_flow(&self) -> Option<&Flow> {
        self.flow.as_ref().and_then(FlowMotion::prev_flow)
    }

    /// Restores the last optical flow of hybrid motion (a resumed render).
    pub fn set_prev_flow(&mut self, flow: Option<Flow>) {
        if let Some(f) = self.flow.as_mut() {
            f.set_prev_flow(flow);
        }
    }

    /// Frame `t`'s picture before img2img, after the camera warp: the `before motion`
    /// composite, the hybrid motion, the `normal` composite.
    ///
    /// # Errors
    /// As [`Hybrid::composite`] and [`Hybrid::motion`].
    pub fn before_diffusion(
        &mut self,
        t: usize,
        img: RgbImage,
        values: &FrameValues,
    ) -> Result<RgbImage> {
        let img = self.composite(HybridComposite::BeforeMotion, t, img, values)?;
        let img = self.motion(t, img, values)?;
        self.composite(HybridComposite::Normal, t, img, values)
    }
}
