//! CLIPSeg word masks (`<words>` in a mask expression) through an ONNX export of transformers'
//! `CLIPSegForImageSegmentation` (scripts/export_clipseg.py: inputs `input_ids`,
//! `pixel_values`, `attention_mask`; output `logits`), with Deforum's pre- and post-processing
//! (its `word_masking.py`, read as the specification):
//!
//! 1. the RGB frame → torchvision `ToTensor` → `Normalize` (ImageNet mean and std) →
//!    `Resize((512, 512))`: bilinear with antialiasing, as torchvision ≥ 0.17 resizes tensors
//!    ([`resize_aa_bilinear`], torch's `_upsample_bilinear2d_aa`);
//! 2. the model with the words as its text (CLIP tokens, padded to 77);
//! 3. sigmoid of the logits → torch's bicubic `interpolate` back to the frame size
//!    (align_corners False, A = −0.75) → ×255 → `.to(uint8)`, which truncates and wraps values
//!    outside 0..=255 as torch does on the CPU ([`probability_u8`]);
//! 4. OpenCV's `threshold(…, 32, 255, THRESH_BINARY + THRESH_OTSU)`: Otsu's threshold decides
//!    ([`otsu_threshold`], OpenCV's `getThreshVal_Otsu_8u`), pixels above it become 255.
//!
//! Deforum runs the original repository's `CLIPDensePredT` (ViT-B/16, `rd64-uni`) at 512x512; the
//! transformers model interpolates its 14x14 position embedding to the 32x32 grid of a 512-pixel
//! input the same way (bicubic, align_corners False), so anim feeds 512x512 too, or the size an
//! export fixes (docs/deforum-differences.md). Depends on `diffusion` (sessions, tokenizer) only.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use image::{GrayImage, RgbImage};
use ort::value::Tensor;

use crate::diffusion::ClipTokenizer;
use crate::diffusion::session::{Model, SessionOptions, float_input};

/// The text length the model is fed (CLIP's context).
pub const SEQ: usize = 77;
/// The pixel size Deforum feeds CLIPSeg (and anim feeds an export with dynamic sizes).
pub const DEFORUM_SIZE: u32 = 512;
/// The largest pixel size an export may fix.
pub const MAX_SIZE: u32 = 2048;
/// The largest frame side a word mask is made for.
pub const MAX_SIDE: u32 = 16384;
/// ImageNet's mean, torchvision's `Normalize` in Deforum's transform.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's standard deviation.
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How to make an export anim reads (named in errors).
pub const EXPORT_HINT: &str = "export a transformers CLIPSeg checkpoint with `python \
                               scripts/export_clipseg.py CHECKPOINT DIR` (README, \"Word masks\")";

/// A loaded CLIPSeg export and its tokenizer.
pub struct ClipSeg {
    model: Model,
    tokenizer: ClipTokenizer,
    size: u32,
    ids_int64: bool,
    half: bool,
}

impl ClipSeg {
    /// Loads `dir/model.onnx` with the tokenizer in `dir/tokenizer/` on ONNX Runtime's default
    /// provider choice.
    ///
    /// # Errors
    /// A folder without `model.onnx` or `tokenizer/`, a model ONNX Runtime rejects, or one
    /// without CLIPSeg's inputs and output (each naming the folder and how to export one).
    pub fn load(dir: &Path) -> Result<ClipSeg> {
        Self::load_with(dir, &SessionOptions::default(), &mut Vec::new())
    }

    /// [`ClipSeg::load`] with session options; `notes` collects provider fallbacks.
    ///
    /// # Errors
    /// As [`ClipSeg::load`].
    pub fn load_with(dir: &Path, opts: &SessionOptions, notes: &mut Vec<String>) -> Result<Self> {
        let path = dir.join("model.onnx");
        if !path.is_file() {
            bail!(
                "CLIPSeg model folder {}: no model.onnx there; {EXPORT_HINT}",
                dir.display()
            );
        }
        let tok_dir = dir.join("tokenizer");
        if !tok_dir.is_dir() {
            bail!(
                "CLIPSeg model folder {}: no tokenizer/ folder (vocab.json and merges.txt) there; \
                 {EXPORT_HINT}",
                dir.display()
            );
        }
        let tokenizer = ClipTokenizer::load(&tok_dir)
            .with_context(|| format!("CLIPSeg model folder {}", dir.display()))?;
        let model = Model::load_file(&path, opts, notes)?;
        let not_clipseg = |why: String| {
            anyhow!(
                "{} is not a CLIPSeg export anim can run: {why}; {EXPORT_HINT}",
                path.display()
            )
        };
        for name in ["input_ids", "pixel_values", "attention_mask"] {
            if !model.has_input(name) {
                return Err(not_clipseg(format!(
                    "it has no input `{name}` (inputs: {})",
                    model.input_names().join(", ")
                )));
            }
        }
        if !model.has_output("logits") {
            return Err(not_clipseg("it has no output `logits`".into()));
        }
        let ids_int64 = match model.input("input_ids")?.0 {
            ort::value::TensorElementType::Int64 => true,
            ort::value::TensorElementType::Int32 => false,
            t => {
                return Err(not_clipseg(format!(
                    "input_ids is {t:?}, not int64 or int32"
                )));
            }
        };
        let dims = model.input_dims("pixel_values")?;
        if dims.len() != 4 || !(dims[1] < 0 || dims[1] == 3) {
            return Err(not_clipseg(format!(
                "pixel_values has dimensions {dims:?}, not [1, 3, H, W]"
            )));
        }
        let size = match (dims[2], dims[3]) {
            (h, w) if h < 0 || w < 0 => DEFORUM_SIZE,
            (h, w) if h == w && (16..=i64::from(MAX_SIZE)).contains(&h) => h as u32,
            (h, w) => {
                return Err(not_clipseg(format!(
                    "its fixed input size {w}x{h} is not a square of 16 to {MAX_SIZE} pixels"
                )));
            }
        };
        for name in ["input_ids", "attention_mask"] {
            let d = model.input_dims(name)?;
            if d.len() != 2 || !(d[1] < 0 || d[1] == SEQ as i64) {
                return Err(not_clipseg(format!(
                    "{name} has dimensions {d:?}, not [1, {SEQ}]"
                )));
            }
        }
        let half = model.input_is_f16("pixel_values")?;
        Ok(ClipSeg {
            model,
            tokenizer,
            size,
            ids_int64,
            half,
        })
    }

    /// The square pixel size the frame is resized to (512 unless the export fixes another).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The ONNX Runtime provider the model runs on.
    pub fn provider(&self) -> &'static str {
        self.model.provider
    }

    /// `words` as CLIP token ids padded to [`SEQ`] and their attention mask (1 up to and with
    /// the end token), as transformers' tokenizer gives them with `padding="max_length"`.
    ///
    /// # Errors
    /// Words that do not tokenize, or more than `SEQ − 2` tokens (Deforum's `clip.tokenize`
    /// refuses them too).
    pub fn tokens(&self, words: &str) -> Result<(Vec<i64>, Vec<i64>)> {
        let content = self.tokenizer.content_ids(words)?;
        if content.len() > SEQ - 2 {
            bail!(
                "word mask `<{words}>` is {} tokens long; CLIPSeg takes at most {}: use fewer words",
                content.len(),
                SEQ - 2
            );
        }
        let mut ids = Vec::with_capacity(SEQ);
        ids.push(i64::from(self.tokenizer.bos_id()));
        ids.extend(content.iter().map(|&t| i64::from(t)));
        ids.push(i64::from(self.tokenizer.eos_id()));
        let mut mask = vec![1i64; ids.len()];
        ids.resize(SEQ, i64::from(self.tokenizer.pad_id));
        mask.resize(SEQ, 0);
        Ok((ids, mask))
    }

    /// The model's logits for `frame` and `words`: [`ClipSeg::size`]² values, row-major.
    ///
    /// # Errors
    /// An empty frame or one above [`MAX_SIDE`], words as [`ClipSeg::tokens`], a model that fails
    /// to run or returns another shape (naming the file).
    pub fn logits(&mut self, frame: &RgbImage, words: &str) -> Result<Vec<f32>> {
        check_frame(frame)?;
        let (ids, mask) = self.tokens(words)?;
        let pixels = pixel_values(frame, self.size);
        let s = i64::from(self.size);
        let int = |v: Vec<i64>| -> Result<ort::session::SessionInputValue<'static>> {
            Ok(if self.ids_int64 {
                Tensor::from_array((vec![1i64, SEQ as i64], v))
                    .map_err(|e| anyhow!("{e}"))?
                    .upcast()
                    .into()
            } else {
                let v: Vec<i32> = v.into_iter().map(|x| x as i32).collect();
                Tensor::from_array((vec![1i64, SEQ as i64], v))
                    .map_err(|e| anyhow!("{e}"))?
                    .upcast()
                    .into()
            })
        };
        let inputs = vec![
            ("input_ids".into(), int(ids)?),
            (
                "pixel_values".into(),
                float_input(vec![1, 3, s, s], &pixels, self.half)?,
            ),
            ("attention_mask".into(), int(mask)?),
        ];
        let path = self.model.path.display().to_string();
        let (dims, data) = self
            .model
            .run1(inputs, "logits")
            .with_context(|| format!("CLIPSeg on a {}x{} frame", frame.width(), frame.height()))?;
        let n = self.size as usize * self.size as usize;
        if data.len() != n || dims.iter().rev().take(2).any(|&d| d != self.size as usize) {
            bail!(
                "{path}: output `logits` has shape {dims:?}, expected [1, {s}, {s}]",
                s = self.size
            );
        }
        Ok(data)
    }

    /// Deforum's word mask of `frame`: 255 where CLIPSeg finds `words`, else 0, at the frame's
    /// size.
    ///
    /// # Errors
    /// As [`ClipSeg::logits`].
    pub fn mask(&mut self, frame: &RgbImage, words: &str) -> Result<GrayImage> {
        let logits = self.logits(frame, words)?;
        let p = probability_u8(&logits, self.size, frame.width(), frame.height());
        Ok(otsu(&p))
    }
}

fn check_frame(frame: &RgbImage) -> Result<()> {
    let (w, h) = frame.dimensions();
    if !(1..=MAX_SIDE).contains(&w) || !(1..=MAX_SIDE).contains(&h) {
        bail!("CLIPSeg: a {w}x{h} frame; each side must be 1 to {MAX_SIDE}");
    }
    Ok(())
}

/// Where a word mask's model is looked for, for errors: the scene key, the variable and the
/// default folder.
pub fn where_to_put() -> String {
    "set `[mask] clipseg = \"DIR\"` in the scene, ANIM_CLIPSEG_MODEL, or put it in \
     ~/.local/share/anim/models/clipseg"
        .to_string()
}

/// Deforum's `ToTensor → Normalize(ImageNet) → Resize((size, size))` of an RGB frame: planar
/// float32 `[3, size, size]`, in float32 as torch computes it.
pub fn pixel_values(frame: &RgbImage, size: u32) -> Vec<f32> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let n = w * h;
    let mut planes = vec![0f32; 3 * n];
    for (i, px) in frame.pixels().enumerate() {
        for c in 0..3 {
            planes[c * n + i] = (f32::from(px[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    let s = size as usize;
    planes
        .chunks_exact(n)
        .flat_map(|p| resize_aa_bilinear(p, w, h, s, s))
        .collect()
}

/// One axis of torch's antialiased bilinear resize: for each output index, the first input
/// index and the normalised weights.
fn aa_weights(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = input as f32 / output as f32;
    let support = if scale >= 1.0 { scale } else { 1.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..output)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(0) as usize;
            let mut w: Vec<f32> = (xmin..xmax.max(xmin))
                .map(|j| {
                    let x = (j as f32 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f32 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// torch's `interpolate(mode="bilinear", align_corners=False, antialias=True)` of one plane of
/// `w`×`h` to `tw`×`th` (what torchvision's `Resize` does to a tensor): the width first, then the
/// height, an axis whose size does not change left as it is. Hand-written: no crate resizes
/// float planes with torch's weights.
pub fn resize_aa_bilinear(src: &[f32], w: usize, h: usize, tw: usize, th: usize) -> Vec<f32> {
    let across = if tw == w {
        src.to_vec()
    } else {
        let wx = aa_weights(w, tw);
        let mut out = vec![0f32; tw * h];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (x, (x0, ws)) in wx.iter().enumerate() {
                let mut t = 0f32;
                for (k, &c) in ws.iter().enumerate() {
                    t += row[x0 + k] * c;
                }
                out[y * tw + x] = t;
            }
        }
        out
    };
    if th == h {
        return across;
    }
    let wy = aa_weights(h, th);
    let mut out = vec![0f32; tw * th];
    for (y, (y0, ws)) in wy.iter().enumerate() {
        for x in 0..tw {
            let mut t = 0f32;
            for (k, &c) in ws.iter().enumerate() {
                t += across[(y0 + k) * tw + x] * c;
            }
            out[y * tw + x] = t;
        }
    }
    out
}

/// torch's cubic convolution weights (A = −0.75) at fraction `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let u = 1.0 - t;
    [far(t + 1.0), near(t), near(u), far(u + 1.0)]
}

/// One axis of torch's bicubic upsampling (align_corners False): the four clamped input indices
/// and their weights per output index.
fn cubic_taps(input: usize, output: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let idx = (real.floor() as i64).min(input as i64 - 1);
            let t = (real - idx as f32).clamp(0.0, 1.0);
            let at = |k: i64| (idx - 1 + k).clamp(0, input as i64 - 1) as usize;
            ([at(0), at(1), at(2), at(3)], cubic_weights(t))
        })
        .collect()
}

/// Deforum's mask before Otsu: sigmoid of the `size`² logits, torch's bicubic `interpolate` to
/// `w`×`h` (align_corners False, no antialiasing), ×255, then torch's float → uint8 cast, which
/// truncates toward zero and wraps modulo 256 (an overshoot of the bicubic above 255.99 becomes a
/// dark pixel, as in Deforum).
pub fn probability_u8(logits: &[f32], size: u32, w: u32, h: u32) -> GrayImage {
    let s = size as usize;
    let sig: Vec<f32> = logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
    let (wu, hu) = (w as usize, h as usize);
    let tx = cubic_taps(s, wu);
    let ty = cubic_taps(s, hu);
    let mut out = Vec::with_capacity(wu * hu);
    for (ys, wy) in &ty {
        for (xs, wx) in &tx {
            let mut v = 0f32;
            for (k, &y) in ys.iter().enumerate() {
                let row = &sig[y * s..(y + 1) * s];
                let mut r = 0f32;
                for (j, &x) in xs.iter().enumerate() {
                    r += row[x] * wx[j];
                }
                v += r * wy[k];
            }
            out.push((v * 255.0) as i32 as u8);
        }
    }
    GrayImage::from_raw(w, h, out).expect("one value per pixel")
}

/// Otsu's threshold of an 8-bit picture as OpenCV computes it (`getThreshVal_Otsu_8u`, in f64:
/// the first level maximising the between-class variance; 0 for a picture of one level).
pub fn otsu_threshold(img: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for &v in img.as_raw() {
        hist[v as usize] += 1;
    }
    let n = img.as_raw().len();
    if n == 0 {
        return 0;
    }
    let scale = 1.0 / n as f64;
    let mu = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum::<f64>()
        * scale;
    let (mut mu1, mut q1) = (0f64, 0f64);
    let (mut max_sigma, mut max_val) = (0f64, 0u8);
    let eps = f64::from(f32::EPSILON);
    for (i, &c) in hist.iter().enumerate() {
        let p = c as f64 * scale;
        mu1 *= q1;
        q1 += p;
        let q2 = 1.0 - q1;
        if q1.min(q2) < eps || q1.max(q2) > 1.0 - eps {
            continue;
        }
        mu1 = (mu1 + i as f64 * p) / q1;
        let mu2 = (mu - q1 * mu1) / q2;
        let sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if sigma > max_sigma {
            max_sigma = sigma;
            max_val = i as u8;
        }
    }
    max_val
}

/// `cv2.threshold(img, 32, 255, THRESH_BINARY + THRESH_OTSU)`: 255 above Otsu's threshold, else 0.
pub fn otsu(img: &GrayImage) -> GrayImage {
    let t = otsu_threshold(img);
    let data = img
        .as_raw()
        .iter()
        .map(|&v| if v > t { 255 } else { 0 })
        .collect();
    GrayImage::from_raw(img.width(), img.height(), data).expect("same size")
}

/// The model folder for a word mask, or an error naming the expression and where to put one.
///
/// # Errors
/// `dir` is `None`.
pub fn require_model(dir: Option<&Path>, expression: &str) -> Result<PathBuf> {
    dir.map(Path::to_path_buf).ok_or_else(|| {
        anyhow!(
            "word mask `<{expression}>` needs a CLIPSeg model (an ONNX export: {EXPORT_HINT}): {}",
            where_to_put()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_of_one_level_is_zero_and_splits_two_levels() {
        let one = GrayImage::from_raw(3, 1, vec![7, 7, 7]).unwrap();
        assert_eq!(otsu_threshold(&one), 0);
        assert_eq!(otsu(&one).as_raw(), &[255, 255, 255]);
        let two = GrayImage::from_raw(4, 1, vec![10, 10, 200, 200]).unwrap();
        assert_eq!(otsu_threshold(&two), 10);
        assert_eq!(otsu(&two).as_raw(), &[0, 0, 255, 255]);
    }

    #[test]
    fn resize_keeps_constants_and_same_sizes() {
        let p = vec![0.25f32; 7 * 5];
        for (tw, th) in [(3, 2), (16, 16), (7, 5), (11, 3)] {
            let r = resize_aa_bilinear(&p, 7, 5, tw, th);
            assert_eq!(r.len(), tw * th);
            assert!(r.iter().all(|v| (v - 0.25).abs() < 1e-6), "{tw}x{th}");
        }
        let ramp: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(resize_aa_bilinear(&ramp, 4, 3, 4, 3), ramp);
    }

    #[test]
    fn cast_truncates_and_wraps_like_torch() {
        // a logit of 0 is 0.5 → 127.5 → 127; large logits saturate at 255
        let m = probability_u8(&[0.0; 4], 2, 3, 3);
        assert!(m.as_raw().iter().all(|&v| v == 127));
        let m = probability_u8(&[40.0; 4], 2, 2, 2);
        assert!(m.as_raw().iter().all(|&v| v == 255));
    }
}
