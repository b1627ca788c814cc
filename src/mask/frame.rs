//! A render's masks frame by frame (docs/research §2.4): `{video_mask}` (the mask file, or the
//! init image's alpha with `use_alpha_as_mask`), each frame's composed inpainting mask (frame 0:
//! the mask file) with A1111's blur, the noise mask and the overlay after generation. Word masks
//! (`<words>`) run CLIPSeg on the frame being composed: the noise mask's on the frame the noise
//! stage receives, the inpainting mask's on the prepared (noised) frame, as in Deforum.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use image::{GrayImage, RgbImage};

use super::clipseg::{ClipSeg, require_model};
use super::expr::{MaskSchedule, MaskSources};
use super::image::{alpha_mask, overlay, prepare_mask, resize_gray, threshold};
use super::latent::blur_kernel_size;
use crate::hybrid::mask::invert;
use crate::scene::{MaskSettings, Scene};

/// The masks of one render (`[mask] use_mask = true`).
pub struct FrameMasks {
    settings: MaskSettings,
    scene_file: PathBuf,
    base: PathBuf,
    size: (u32, u32),
    masks: MaskSchedule,
    noise: MaskSchedule,
    /// The mask file, prepared: frame 0's mask.
    first: GrayImage,
    /// `{video_mask}`.
    video_mask: GrayImage,
    files: HashMap<String, GrayImage>,
    /// The mask video's extracted frames (`000000.png` …) and how many there are.
    video: Option<(PathBuf, usize)>,
    /// The latest composed mask and the one before it, with their frames (the overlay of a key
    /// frame and of the tweens after it).
    latest: (usize, GrayImage),
    before: Option<(usize, GrayImage)>,
    /// The CLIPSeg model, when an expression has a word mask.
    clipseg: Option<ClipSeg>,
    /// The frame word masks are made of, and the word masks made of it so far.
    frame: Option<RgbImage>,
    words: HashMap<String, GrayImage>,
}

impl FrameMasks {
    /// The masks of `scene`, or `None` when masks are off ([`MaskSettings::active`]).
    /// `video`: the folder of the mask video's extracted frames and their number (a scene
    /// with a mask video), whose frame `f` is `{video_mask}` and frame 0's mask at frame `f`.
    ///
    /// # Errors
    /// No `mask_file` (and no mask video), a mask or init file that cannot be read, or a schedule
    /// that does not parse.
    pub fn new(scene: &Scene, video: Option<(PathBuf, usize)>) -> Result<Option<FrameMasks>> {
        let m = &scene.mask;
        if !m.active() {
            return Ok(None);
        }
        let at = scene.path.display();
        let size = (scene.image.width, scene.image.height);
        let first = match (&m.mask_file, &video) {
            (_, Some((dir, _))) => load(&dir.join(format!("{:06}.png", 0)), size, m)
                .with_context(|| format!("{at}: [mask] the mask video's first frame"))?,
            (Some(file), None) => load(&scene.resolve(file), size, m)
                .with_context(|| format!("{at}: [mask] mask_file"))?,
            (None, None) => bail!(
                "{at}: [mask] use_mask = true needs mask_file (frame 0's mask and `{{video_mask}}`) \
                 or a mask video ([mask] video)"
            ),
        };
        let parse = |k: &str, t: &str| {
            MaskSchedule::parse(t).map_err(|e| anyhow::anyhow!("{at}: [mask] {k}: {e}"))
        };
        let masks = parse("mask_schedule", &m.mask_schedule)?;
        let noise = parse("noise_mask_schedule", &m.noise_mask_schedule)?;
        // word masks: the model is loaded now, so a missing or bad one fails before frame 1
        let mut keys = vec![("mask_schedule", &masks)];
        if m.use_noise_mask {
            keys.push(("noise_mask_schedule", &noise));
        }
        let first_word = keys.iter().find_map(|(k, s)| {
            s.keys
                .iter()
                .find_map(|(f, e)| e.words().first().map(|w| (*k, *f, w.to_string())))
        });
        let clipseg = match first_word {
            Some((k, f, w)) => {
                let dir = require_model(scene.clipseg_model().as_deref(), &w)
                    .with_context(|| format!("{at}: [mask] {k}, key frame {f}"))?;
                Some(ClipSeg::load(&dir).with_context(|| {
                    format!("{at}: [mask] {k}, key frame {f}: word mask `<{w}>`")
                })?)
            }
            None => None,
        };
        let base = scene.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut video_mask = first.clone();
        if video.is_none()
            && m.use_alpha_as_mask
            && let Some(p) = &scene.init.image
        {
            let p = scene.resolve(p);
            let img = image::open(&p)
                .with_context(|| format!("{at}: [init] image {}", p.display()))?
                .to_rgba8();
            if let Some(a) = alpha_mask(&img) {
                video_mask = resize_gray(&a, size.0, size.1);
            }
        }
        Ok(Some(FrameMasks {
            settings: m.clone(),
            scene_file: scene.path.clone(),
            base,
            size,
            masks,
            noise,
            latest: (0, first.clone()),
            before: None,
            first,
            video_mask,
            files: HashMap::new(),
            video,
            clipseg,
            frame: None,
            words: HashMap::new(),
        }))
    }

    /// Moves to frame `f`: with a mask video, its frame `f` (the last one past its end) through
    /// `prepare_mask` becomes `{video_mask}` for the inpainting and the noise mask alike (Deforum
    /// refreshes only the inpainting one: docs/deforum-differences.md) and frame 0's mask.
    ///
    /// # Errors
    /// A mask-video frame that cannot be read.
    pub fn at_frame(&mut self, f: usize) -> Result<()> {
        if let Some((dir, n)) = &self.video {
            let i = f.min(n.saturating_sub(1));
            let m = load(&dir.join(format!("{i:06}.png")), self.size, &self.settings)
                .with_context(|| {
                    format!("{}: [mask] mask video frame {i}", self.scene_file.display())
                })?;
            if f == 0 {
                self.first = m.clone();
            }
            self.video_mask = m;
        }
        Ok(())
    }

    /// The inpainting mask of frame `f` as the painter takes it: frame 0's mask file, later
    /// frames' `mask_schedule` composed, inverted with `invert_mask`, blurred by
    /// `mask_overlay_blur` (A1111's mask blur). It also becomes the overlay mask.
    ///
    /// `frame` is the prepared (warped, noised) frame, which word masks see.
    ///
    /// # Errors
    /// An expression that cannot be evaluated (unknown mask, unreadable file, a word mask whose
    /// model fails).
    pub fn inpaint(&mut self, f: usize, frame: &RgbImage) -> Result<GrayImage> {
        let mask = if f == 0 {
            self.first.clone()
        } else {
            self.see(frame);
            let e = self.masks.at(f).clone();
            let (w, h) = self.size;
            e.eval(w, h, self).map_err(|e| {
                anyhow::anyhow!(
                    "{}: [mask] mask_schedule at frame {f}: {e}",
                    self.scene_file.display()
                )
            })?
        };
        let prev = std::mem::replace(&mut self.latest, (f, mask.clone()));
        self.before = Some(prev).filter(|p| p.0 != f);
        let mut m = mask;
        if self.settings.invert_mask {
            invert(&mut m);
        }
        Ok(blur(&m, self.settings.mask_overlay_blur))
    }

    /// The noise mask of frame `f` (`noise_mask_schedule` with `use_noise_mask`, else
    /// `mask_schedule`), rounded to 0/255 and inverted with `invert_mask`: the noise goes where
    /// it is white. `frame` is the frame the noise is added to, which word masks see.
    ///
    /// # Errors
    /// As [`FrameMasks::inpaint`].
    pub fn noise(&mut self, f: usize, frame: &RgbImage) -> Result<GrayImage> {
        self.see(frame);
        let (k, sched) = if self.settings.use_noise_mask {
            ("noise_mask_schedule", &self.noise)
        } else {
            ("mask_schedule", &self.masks)
        };
        let e = sched.at(f).clone();
        let (w, h) = self.size;
        let mut m = threshold(&e.eval(w, h, self).map_err(|e| {
            anyhow::anyhow!(
                "{}: [mask] {k} at frame {f}: {e}",
                self.scene_file.display()
            )
        })?);
        if self.settings.invert_mask {
            invert(&mut m);
        }
        Ok(m)
    }

    /// Word masks from now on are made of `frame` (kept only when a word mask may need it).
    fn see(&mut self, frame: &RgbImage) {
        if self.clipseg.is_some() && self.frame.as_ref() != Some(frame) {
            self.frame = Some(frame.clone());
            self.words.clear();
        }
    }

    /// Deforum's overlay after generation (with `overlay_mask`): `base` (the init image) where
    /// the mask of key frame `key` (the latest composed mask if `key` is older) is black;
    /// `generated` unchanged when the overlay is off or there is no base. Tweens take their
    /// earlier key frame's mask, as Deforum's cadence loop does.
    pub fn overlay(&self, key: usize, generated: RgbImage, base: Option<&RgbImage>) -> RgbImage {
        let mask = match &self.before {
            Some((k, m)) if *k == key => m,
            _ => &self.latest.1,
        };
        match base {
            Some(b) if self.settings.overlay_mask => {
                overlay(&generated, b, mask, self.settings.invert_mask)
            }
            _ => generated,
        }
    }
}

impl MaskSources for FrameMasks {
    fn var(&mut self, name: &str) -> Option<GrayImage> {
        (name == "video_mask").then(|| self.video_mask.clone())
    }

    fn file(&mut self, path: &str) -> Result<GrayImage, String> {
        if let Some(m) = self.files.get(path) {
            return Ok(m.clone());
        }
        let p = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            self.base.join(path)
        };
        let m = load(&p, self.size, &self.settings).map_err(|e| format!("{e:#}"))?;
        self.files.insert(path.to_string(), m.clone());
        Ok(m)
    }

    fn words(&mut self, words: &str) -> Result<GrayImage, String> {
        if let Some(m) = self.words.get(words) {
            return Ok(m.clone());
        }
        let (Some(model), Some(frame)) = (self.clipseg.as_mut(), self.frame.as_ref()) else {
            return Err(format!(
                "word mask `<{words}>` has no CLIPSeg model loaded (its schedule was not checked)"
            ));
        };
        let m = model
            .mask(frame, words)
            .map_err(|e| format!("word mask `<{words}>`: {e:#}"))?;
        self.words.insert(words.to_string(), m.clone());
        Ok(m)
    }
}

/// A mask file through `prepare_mask` at the frame size.
fn load(path: &Path, (w, h): (u32, u32), m: &MaskSettings) -> Result<GrayImage> {
    let img = image::open(path)
        .with_context(|| format!("cannot read mask {}", path.display()))?
        .to_rgb8();
    Ok(prepare_mask(
        &img,
        w,
        h,
        m.mask_brightness_adjust,
        m.mask_contrast_adjust,
    ))
}

/// A1111's mask blur: `cv2.GaussianBlur(m, (k, 1), sigma)` then `cv2.GaussianBlur(m, (1, k),
/// sigma)` with `k` = [`blur_kernel_size`], each pass OpenCV's 8-bit fixed-point path (the kernel
/// in 8 fraction bits, reflect-101 border, rounded to 8 bits between the passes).
pub fn blur(mask: &GrayImage, sigma: u32) -> GrayImage {
    if sigma == 0 {
        return mask.clone();
    }
    let k = blur_kernel_size(sigma) as usize;
    let kern = crate::effects::sharpen::fixed_point_kernel(k, f64::from(sigma));
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let pass = |src: &[u8], stride: usize, step: usize, len: usize, lines: usize| {
        let mut out = vec![0u8; src.len()];
        let half = (k / 2) as isize;
        for line in 0..lines {
            let at = |i: usize| line * stride + i * step;
            for i in 0..len {
                let acc: i64 = kern
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| {
                        let q = reflect101(i as isize + j as isize - half, len as isize);
                        c * i64::from(src[at(q)])
                    })
                    .sum();
                // the other axis' kernel is [256]: (256·acc + 2^15) >> 16
                out[at(i)] = ((acc + 128) >> 8).clamp(0, 255) as u8;
            }
        }
        out
    };
    let across = pass(mask.as_raw(), w, 1, w, h);
    let down = pass(&across, 1, w, h, w);
    GrayImage::from_raw(w as u32, h as u32, down).expect("same size")
}

/// OpenCV's BORDER_REFLECT_101 index of `p` in `0..len`.
fn reflect101(p: isize, len: isize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let q = p.rem_euclid(period);
    (if q < len { q } else { period - q }) as usize
}
