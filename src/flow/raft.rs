//! RAFT optical flow through an ONNX export, in the two IO conventions found in the wild:
//!
//! * [`Flavour::Torchvision`]: torchvision's RAFT as `scripts/export_raft.py` exports it (what
//!   Deforum runs: `raft_large`, C_T_SKHT_V2 weights, 50 updates, the last prediction). Inputs
//!   `image1`, `image2` `[1, 3, H, W]` in `[-1, 1]` (`(x/255 − 0.5)/0.5`), H and W dynamic
//!   multiples of 8; one output, the flow `[1, 2, H, W]`. Deforum feeds its OpenCV frames, so the
//!   channels are **BGR** unless `config.json` says `"channel_order": "rgb"`.
//! * [`Flavour::Pinto`]: PINTO_model_zoo / opencv_zoo exports of princeton-vl RAFT. Two inputs
//!   `[1, 3, H, W]` RGB in `[0, 255]` (usually a fixed size), two outputs `[1/8 flow, full flow]`.
//!
//! The flavour comes from `config.json` beside `model.onnx` (written by the export script), else
//! from the graph: two image inputs and one output is torchvision's, two outputs PINTO's.
//!
//! Frame sizes: for an export with dynamic H and W the frames are padded by replicating their
//! last row and column up to a multiple of 8 and the flow is cropped back (Deforum refuses sizes
//! that are not multiples of 8; padding keeps every pixel and the flow's scale exact). For an
//! export with a fixed size the frames are resized to it (bilinear, half-pixel centres, as
//! OpenCV's `INTER_LINEAR` and torch's `interpolate` without antialiasing) and the flow resized
//! back, its u scaled by the width ratio and v by the height ratio.

use super::{Flow, MAX_SIDE};
use crate::diffusion::session::{Model, SessionOptions, float_input};
use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;
use ort::value::ValueType;
use std::fmt;
use std::path::{Path, PathBuf};

/// How to make a RAFT export anim reads (named in errors).
const EXPORT_HINT: &str = "export torchvision's RAFT with `python scripts/export_raft.py DIR` \
                           (see README, \"Optical flow models\"), or use a PINTO_model_zoo / \
                           opencv_zoo RAFT (two RGB inputs in [0, 255], outputs [1/8 flow, full flow])";

/// The IO convention of a RAFT export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// torchvision's RAFT (`scripts/export_raft.py`): inputs in `[-1, 1]`, one output, the flow.
    Torchvision,
    /// PINTO_model_zoo / opencv_zoo: RGB inputs in `[0, 255]`, outputs `[1/8 flow, full flow]`.
    Pinto,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Torchvision => "torchvision",
            Flavour::Pinto => "pinto",
        })
    }
}

/// The channel order the model is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Blue, green, red: Deforum's RAFT input (its frames are OpenCV arrays).
    Bgr,
    /// Red, green, blue: what RAFT's weights were trained on.
    Rgb,
}

/// `config.json` as `scripts/export_raft.py` writes it (other keys are informative).
#[derive(serde::Deserialize)]
struct Config {
    flavour: String,
    channel_order: Option<String>,
    inputs: Option<[String; 2]>,
    output: Option<String>,
    multiple_of: Option<u32>,
}

/// A loaded RAFT export.
pub struct Raft {
    model: Model,
    flavour: Flavour,
    order: ChannelOrder,
    inputs: [String; 2],
    /// The output holding the full-resolution flow.
    output: String,
    /// `(width, height)` when the export fixes the input size.
    fixed: Option<(u32, u32)>,
    /// Padded sides are multiples of this (dynamic sizes).
    multiple_of: u32,
    half: bool,
}

/// An input or output's name and dimensions (−1 for dynamic), for errors.
fn describe(name: &str, ty: &ValueType) -> String {
    match ty {
        ValueType::Tensor { shape, .. } => {
            format!("`{name}` {:?}", shape.iter().collect::<Vec<_>>())
        }
        other => format!("`{name}` ({other:?})"),
    }
}

fn dims(ty: &ValueType) -> Option<Vec<i64>> {
    match ty {
        ValueType::Tensor { shape, .. } => Some(shape.iter().copied().collect()),
        _ => None,
    }
}

/// Whether `d` (−1 dynamic) may be `want`.
fn fits(d: i64, want: i64) -> bool {
    d < 0 || d == want
}

impl Raft {
    /// Loads `dir/model.onnx` (with `dir/config.json` when present) on ONNX Runtime's default
    /// provider choice ([`SessionOptions::default`]).
    ///
    /// # Errors
    /// A folder without `model.onnx`, an unreadable `config.json`, a model ONNX Runtime rejects,
    /// or one whose inputs and outputs are not a RAFT flavour (naming the folder, the inputs
    /// found, and how to export one).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, &SessionOptions::default(), &mut Vec::new())
    }

    /// [`Raft::load`] with session options (device, cache, threads); `notes` collects provider
    /// fallbacks.
    ///
    /// # Errors
    /// As [`Raft::load`], and a provider that does not start (explicit devices).
    pub fn load_with(dir: &Path, opts: &SessionOptions, notes: &mut Vec<String>) -> Result<Self> {
        let path = dir.join("model.onnx");
        if !path.is_file() {
            bail!(
                "RAFT model folder {}: no model.onnx there; {EXPORT_HINT}",
                dir.display()
            );
        }
        let config = read_config(dir)?;
        let model = Model::load_file(&path, opts, notes)?;
        Self::from_model(dir, model, config)
    }

    fn from_model(dir: &Path, model: Model, config: Option<Config>) -> Result<Self> {
        let ins: Vec<(String, ValueType)> = model
            .session
            .inputs()
            .iter()
            .map(|o| (o.name().to_string(), o.dtype().clone()))
            .collect();
        let outs: Vec<(String, ValueType)> = model
            .session
            .outputs()
            .iter()
            .map(|o| (o.name().to_string(), o.dtype().clone()))
            .collect();
        let found = || {
            let list = |v: &[(String, ValueType)]| {
                v.iter()
                    .map(|(n, t)| describe(n, t))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("inputs {}; outputs {}", list(&ins), list(&outs))
        };
        let not_raft = |why: &str| {
            anyhow!(
                "{}/model.onnx is not a RAFT export anim can run: {why} (found {}); {EXPORT_HINT}",
                dir.display(),
                found()
            )
        };
        // the flavour and the names: from config.json, else from the graph
        let (flavour, order, inputs, output) = match &config {
            Some(c) => {
                let flavour = match c.flavour.as_str() {
                    "torchvision" => Flavour::Torchvision,
                    "pinto" => Flavour::Pinto,
                    f => bail!(
                        "{}/config.json: flavour {f:?} is not one anim knows (\"torchvision\" or \"pinto\")",
                        dir.display()
                    ),
                };
                let order = match c.channel_order.as_deref() {
                    None if flavour == Flavour::Torchvision => ChannelOrder::Bgr,
                    None => ChannelOrder::Rgb,
                    Some(s) if s.eq_ignore_ascii_case("bgr") => ChannelOrder::Bgr,
                    Some(s) if s.eq_ignore_ascii_case("rgb") => ChannelOrder::Rgb,
                    Some(s) => bail!(
                        "{}/config.json: channel_order {s:?} must be \"bgr\" or \"rgb\"",
                        dir.display()
                    ),
                };
                let inputs = match &c.inputs {
                    Some(names) => names.clone(),
                    None if ins.len() == 2 => [ins[0].0.clone(), ins[1].0.clone()],
                    None => return Err(not_raft("it needs two image inputs")),
                };
                for name in &inputs {
                    if !ins.iter().any(|(n, _)| n == name) {
                        return Err(not_raft(&format!(
                            "config.json names input `{name}`, which the model lacks"
                        )));
                    }
                }
                let output = match &c.output {
                    Some(name) if outs.iter().any(|(n, _)| n == name) => name.clone(),
                    Some(name) => {
                        return Err(not_raft(&format!(
                            "config.json names output `{name}`, which the model lacks"
                        )));
                    }
                    None => full_output(flavour, &ins, &outs).ok_or_else(|| {
                        not_raft("config.json names no output and none has the flow's shape")
                    })?,
                };
                (flavour, order, inputs, output)
            }
            None => {
                if ins.len() != 2 {
                    return Err(not_raft("a RAFT export takes two images"));
                }
                let flavour = match outs.len() {
                    1 => Flavour::Torchvision,
                    2 => Flavour::Pinto,
                    _ => {
                        return Err(not_raft(
                            "a RAFT export has one output (torchvision) or two (PINTO)",
                        ));
                    }
                };
                let order = match flavour {
                    Flavour::Torchvision => ChannelOrder::Bgr,
                    Flavour::Pinto => ChannelOrder::Rgb,
                };
                let output = full_output(flavour, &ins, &outs)
                    .ok_or_else(|| not_raft("no output has the flow's shape [1, 2, H, W]"))?;
                (flavour, order, [ins[0].0.clone(), ins[1].0.clone()], output)
            }
        };
        // shapes: each input [1, 3, H, W] of one size, the output [1, 2, H, W]
        let shape_of = |name: &str, list: &[(String, ValueType)]| {
            list.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, t)| dims(t))
        };
        let in_dims: Vec<Vec<i64>> = inputs
            .iter()
            .map(|n| shape_of(n, &ins).unwrap_or_default())
            .collect();
        for (name, d) in inputs.iter().zip(&in_dims) {
            if d.len() != 4 || !fits(d[0], 1) || !fits(d[1], 3) {
                return Err(not_raft(&format!(
                    "input `{name}` should be an image [1, 3, H, W]"
                )));
            }
        }
        if in_dims[0][2..] != in_dims[1][2..] {
            return Err(not_raft("the two inputs have different sizes"));
        }
        match shape_of(&output, &outs) {
            Some(d) if d.len() == 4 && fits(d[0], 1) && fits(d[1], 2) => {}
            _ => {
                return Err(not_raft(&format!(
                    "output `{output}` should be a flow [1, 2, H, W]"
                )));
            }
        }
        let (h, w) = (in_dims[0][2], in_dims[0][3]);
        let fixed = if h > 0 && w > 0 {
            let (w, h) = (
                u32::try_from(w).unwrap_or(u32::MAX),
                u32::try_from(h).unwrap_or(u32::MAX),
            );
            if w > MAX_SIDE || h > MAX_SIDE {
                return Err(not_raft(&format!(
                    "its input size {w}x{h} is above {MAX_SIDE}"
                )));
            }
            Some((w, h))
        } else {
            None
        };
        let multiple_of = config.as_ref().and_then(|c| c.multiple_of).unwrap_or(8);
        if !(1..=64).contains(&multiple_of) {
            bail!(
                "{}/config.json: multiple_of {multiple_of} must be 1 to 64 (RAFT: 8)",
                dir.display()
            );
        }
        let half = model.input_is_f16(&inputs[0])?;
        Ok(Self {
            model,
            flavour,
            order,
            inputs,
            output,
            fixed,
            multiple_of,
            half,
        })
    }

    /// The export's IO convention.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The channel order the model is fed.
    pub fn channel_order(&self) -> ChannelOrder {
        self.order
    }

    /// `(width, height)` when the export fixes its input size (frames are resized to it).
    pub fn fixed_size(&self) -> Option<(u32, u32)> {
        self.fixed
    }

    /// The ONNX Runtime provider the model runs on.
    pub fn provider(&self) -> &'static str {
        self.model.provider
    }

    /// The forward flow from `a` to `b` (same size), in pixels of the frames.
    ///
    /// # Errors
    /// Frames of different sizes, empty or above [`MAX_SIDE`]; a model that fails to run or
    /// returns another shape (naming the file).
    pub fn flow(&mut self, a: &RgbImage, b: &RgbImage) -> Result<Flow> {
        let (w, h) = a.dimensions();
        if b.dimensions() != (w, h) {
            bail!(
                "RAFT needs two frames of one size, got {w}x{h} and {}x{}",
                b.width(),
                b.height()
            );
        }
        if !(1..=MAX_SIDE).contains(&w) || !(1..=MAX_SIDE).contains(&h) {
            bail!("RAFT: a {w}x{h} frame; each side must be 1 to {MAX_SIDE}");
        }
        let (tw, th) = match self.fixed {
            Some(size) => size,
            None => (
                w.next_multiple_of(self.multiple_of),
                h.next_multiple_of(self.multiple_of),
            ),
        };
        let planes = |img: &RgbImage| {
            let x = self.planes(img);
            if self.fixed.is_some() && (tw, th) != (w, h) {
                x.chunks_exact(w as usize * h as usize)
                    .flat_map(|p| {
                        resize_bilinear(p, w as usize, h as usize, tw as usize, th as usize)
                    })
                    .collect()
            } else if (tw, th) != (w, h) {
                pad_replicate(&x, w as usize, h as usize, tw as usize, th as usize)
            } else {
                x
            }
        };
        let (pa, pb) = (planes(a), planes(b));
        let shape = vec![1, 3, i64::from(th), i64::from(tw)];
        let inputs = vec![
            (
                self.inputs[0].clone().into(),
                float_input(shape.clone(), &pa, self.half)?,
            ),
            (
                self.inputs[1].clone().into(),
                float_input(shape, &pb, self.half)?,
            ),
        ];
        let path = self.model.path.display().to_string();
        let (dims, data) = self.model.run1(inputs, &self.output).with_context(|| {
            if self.fixed.is_none() && (tw < 128 || th < 128) {
                format!(
                    "RAFT on {w}x{h} frames (fed as {tw}x{th}): torchvision's RAFT needs sides of at \
                     least 128 (its correlation pyramid halves the 1/8 grid 3 times)"
                )
            } else {
                format!("RAFT on {w}x{h} frames (fed as {tw}x{th})")
            }
        })?;
        let (tw, th) = (tw as usize, th as usize);
        if dims != [1, 2, th, tw] {
            bail!(
                "{path}: output `{}` has shape {dims:?}, expected [1, 2, {th}, {tw}]",
                self.output
            );
        }
        let (w, h) = (w as usize, h as usize);
        let (u, v) = data.split_at(tw * th);
        let (u, v) = if (tw, th) == (w, h) {
            (u.to_vec(), v.to_vec())
        } else if self.fixed.is_some() {
            let (sx, sy) = ((w as f64 / tw as f64) as f32, (h as f64 / th as f64) as f32);
            let mut u = resize_bilinear(u, tw, th, w, h);
            let mut v = resize_bilinear(v, tw, th, w, h);
            u.iter_mut().for_each(|x| *x *= sx);
            v.iter_mut().for_each(|x| *x *= sy);
            (u, v)
        } else {
            (crop(u, tw, w, h), crop(v, tw, w, h))
        };
        let data = u.iter().zip(&v).flat_map(|(&u, &v)| [u, v]).collect();
        Flow::from_vec(w as u32, h as u32, data)
    }

    /// The frame as three planes in the model's channel order and value range.
    fn planes(&self, img: &RgbImage) -> Vec<f32> {
        let n = img.width() as usize * img.height() as usize;
        let mut out = vec![0.0; 3 * n];
        let (p0, rest) = out.split_at_mut(n);
        let (p1, p2) = rest.split_at_mut(n);
        let torchvision = self.flavour == Flavour::Torchvision;
        // torchvision's to_tensor then Normalize(0.5, 0.5), in float32 as torch computes it
        let value = |v: u8| {
            if torchvision {
                (f32::from(v) / 255.0 - 0.5) / 0.5
            } else {
                f32::from(v)
            }
        };
        let (c0, c2) = match self.order {
            ChannelOrder::Rgb => (0, 2),
            ChannelOrder::Bgr => (2, 0),
        };
        for (i, px) in img.pixels().enumerate() {
            p0[i] = value(px.0[c0]);
            p1[i] = value(px.0[1]);
            p2[i] = value(px.0[c2]);
        }
        out
    }
}

/// The output with the full-resolution flow: the only one (torchvision), else the one whose
/// H and W are the inputs' (PINTO: `[1/8 flow, full flow]`), else the last.
fn full_output(
    flavour: Flavour,
    ins: &[(String, ValueType)],
    outs: &[(String, ValueType)],
) -> Option<String> {
    match flavour {
        Flavour::Torchvision => (outs.len() == 1).then(|| outs[0].0.clone()),
        Flavour::Pinto => {
            let hw = ins
                .first()
                .and_then(|(_, t)| dims(t))
                .filter(|d| d.len() == 4)?;
            outs.iter()
                .find(|(_, t)| {
                    dims(t).is_some_and(|d| d.len() == 4 && d[2..] == hw[2..] && hw[2] > 0)
                })
                .or(outs.last())
                .map(|(n, _)| n.clone())
        }
    }
}

fn read_config(dir: &Path) -> Result<Option<Config>> {
    let path: PathBuf = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        anyhow!(
            "{}: {e} (scripts/export_raft.py writes this file)",
            path.display()
        )
    })
}

/// Each of the three `w`×`h` planes padded to `pw`×`ph` by repeating the last column and row.
fn pad_replicate(x: &[f32], w: usize, h: usize, pw: usize, ph: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * pw * ph);
    for plane in x.chunks_exact(w * h) {
        for y in 0..ph {
            let row = &plane[y.min(h - 1) * w..][..w];
            out.extend_from_slice(row);
            out.extend(std::iter::repeat_n(row[w - 1], pw - w));
        }
    }
    out
}

/// The top-left `w`×`h` of a plane `stride` wide.
fn crop(x: &[f32], stride: usize, w: usize, h: usize) -> Vec<f32> {
    x.chunks_exact(stride)
        .take(h)
        .flat_map(|row| &row[..w])
        .copied()
        .collect()
}

/// Source index pairs and weights of bilinear sampling along one axis: half-pixel centres,
/// clamped at the edges, no antialiasing (torch's `interpolate(mode="bilinear",
/// align_corners=False)`, OpenCV's `INTER_LINEAR`), computed in float32 as torch does.
fn taps(from: usize, to: usize) -> Vec<(usize, usize, f32)> {
    let scale = from as f32 / to as f32;
    (0..to)
        .map(|d| {
            let s = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (s as usize).min(from - 1);
            let i1 = if i0 < from - 1 { i0 + 1 } else { i0 };
            (i0, i1, s - i0 as f32)
        })
        .collect()
}

/// A `w`×`h` plane resized to `ow`×`oh` by [`taps`]. Hand-written: `image`'s filters widen
/// when shrinking (antialiasing), which torch's and OpenCV's bilinear resizes do not.
fn resize_bilinear(x: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let (tx, ty) = (taps(w, ow), taps(h, oh));
    let mut out = Vec::with_capacity(ow * oh);
    for &(y0, y1, ly) in &ty {
        let (r0, r1) = (&x[y0 * w..][..w], &x[y1 * w..][..w]);
        for &(x0, x1, lx) in &tx {
            let top = r0[x0] * (1.0 - lx) + r0[x1] * lx;
            let bottom = r1[x0] * (1.0 - lx) + r1[x1] * lx;
            out.push(top * (1.0 - ly) + bottom * ly);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_repeats_the_last_row_and_column() {
        let x: Vec<f32> = (0..3 * 6).map(|v| v as f32).collect();
        let p = pad_replicate(&x, 3, 2, 4, 3);
        assert_eq!(&p[..12], &[0., 1., 2., 2., 3., 4., 5., 5., 3., 4., 5., 5.]);
        assert_eq!(p.len(), 36);
        assert_eq!(crop(&p[..12], 4, 3, 2), &x[..6]);
    }

    #[test]
    fn bilinear_halves_and_doubles_like_torch() {
        // torch.nn.functional.interpolate([[0, 1, 2, 3]], size=2 / 8, bilinear, align_corners=False)
        let x = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(resize_bilinear(&x, 4, 1, 2, 1), [0.5, 2.5]);
        let up = resize_bilinear(&x, 4, 1, 8, 1);
        assert_eq!(up, [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        assert_eq!(resize_bilinear(&x, 4, 1, 4, 1), x);
    }
}
