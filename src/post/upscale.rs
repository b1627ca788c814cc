//! Upscaling with a Real-ESRGAN-style ONNX model: `[1, 3, H, W]` RGB in [0, 1] in,
//! `[1, 3, s·H, s·W]` out (s read from the model's shapes, or from a probe run when they are
//! dynamic), run on overlapping tiles so memory follows the tile, not the frame.
//!
//! Tiles: the frame is cut into `tile`×`tile` squares; each runs with `pad` pixels of context
//! on every side inside the frame, and neighbouring tiles are cross-faded over the `pad` pixels
//! centred on their common edge with linear weights that sum to 1, so each tile's outer
//! `pad / 2` pixels only give context (Real-ESRGAN's `tile_pad` crops the whole context
//! instead; the fade also hides what a model with a wider reach than the context would show as
//! a seam). A model whose reach is at most `pad / 2` gives the untiled result up to float
//! rounding. Rows of tiles are accumulated in one band of `(tile + 2·pad)·s` output rows at a
//! time.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::{Planar, PostError, round_u8};

/// How a frame is cut for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Tile side in input pixels; 0 runs whole frames.
    pub tile: usize,
    /// Context on each side of a tile, in input pixels (at most `tile / 2`).
    pub pad: usize,
}

/// A loaded upscaling model.
pub struct Upscaler {
    session: Session,
    path: PathBuf,
    input: String,
    factor: u32,
}

/// Side of the probe run that measures a dynamic model's factor.
const PROBE: usize = 16;

impl Upscaler {
    /// Loads `path` (an `.onnx` file or a folder holding `model.onnx`) and reads its factor:
    /// the output/input ratio of its static shapes, else of a 16×16 probe run.
    ///
    /// # Errors
    /// A missing file, a model ONNX Runtime cannot load, an input that is not `[1, 3, H, W]`,
    /// a ratio that is not a whole factor 1..=8 equal on both sides.
    pub fn load(path: &Path) -> Result<Upscaler, PostError> {
        let (session, path) = super::load_session(path, "r_upscale_model")?;
        let load = |message: String| PostError::Load {
            path: path.clone(),
            message,
        };
        let dims = |v: &ValueType| match v {
            ValueType::Tensor { shape, .. } => shape.iter().copied().collect::<Vec<i64>>(),
            _ => Vec::new(),
        };
        let (input, in_dims) = match session.inputs() {
            [i] => (i.name().to_string(), dims(i.dtype())),
            other => {
                return Err(load(format!(
                    "{} inputs, expected one image [1, 3, H, W] (RGB in [0, 1])",
                    other.len()
                )));
            }
        };
        if in_dims.len() != 4 || (in_dims[1] > 0 && in_dims[1] != 3) {
            return Err(load(format!(
                "input `{input}` has shape {in_dims:?}, expected [1, 3, H, W]"
            )));
        }
        let out_dims = session
            .outputs()
            .first()
            .map(|o| dims(o.dtype()))
            .unwrap_or_default();
        let mut up = Upscaler {
            session,
            path: path.clone(),
            input,
            factor: 0,
        };
        let ratio = |o: i64, i: i64| (o > 0 && i > 0 && o % i == 0).then_some(o / i);
        let fixed = (out_dims.len() == 4)
            .then(|| {
                (
                    ratio(out_dims[2], in_dims[2]),
                    ratio(out_dims[3], in_dims[3]),
                )
            })
            .and_then(|(a, b)| Some((a?, b?)));
        let (fy, fx) = match fixed {
            Some(f) => f,
            None => {
                let probe = Planar {
                    width: PROBE,
                    height: PROBE,
                    data: vec![0.5; 3 * PROBE * PROBE],
                };
                let (w, h, _) = up.run(&probe)?;
                ((h / PROBE) as i64, (w / PROBE) as i64)
            }
        };
        if fx != fy || !(1..=8).contains(&fx) {
            return Err(load(format!(
                "output/input size ratio is {fx}x{fy}: expected one whole factor 1..=8"
            )));
        }
        up.factor = fx as u32;
        Ok(up)
    }

    /// The model's factor (2, 3, 4, …).
    pub fn factor(&self) -> u32 {
        self.factor
    }

    /// Runs the model on `p`: (width, height, planes) of its output.
    fn run(&mut self, p: &Planar) -> Result<(usize, usize, Vec<f32>), PostError> {
        let err = |message: String| PostError::Run {
            path: self.path.clone(),
            message,
        };
        let x = Tensor::from_array((
            vec![1i64, 3, p.height as i64, p.width as i64],
            p.data.clone(),
        ))
        .map_err(|e| err(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(|e| err(e.to_string()))?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| err(e.to_string()))?;
        let d: Vec<i64> = shape.iter().copied().collect();
        match d.as_slice() {
            [1, 3, h, w] if *h > 0 && *w > 0 => Ok((*w as usize, *h as usize, values.to_vec())),
            _ => Err(err(format!(
                "output has shape {d:?}, expected [1, 3, H, W]"
            ))),
        }
    }

    /// Runs on a whole picture, checking the output is `factor` times its size.
    fn run_checked(&mut self, p: &Planar) -> Result<Vec<f32>, PostError> {
        let s = self.factor as usize;
        let (w, h, data) = self.run(p)?;
        if (w, h) != (p.width * s, p.height * s) {
            return Err(PostError::Run {
                path: self.path.clone(),
                message: format!(
                    "a {}x{} input gave {w}x{h}, not x{s} (a model of one fixed size cannot be tiled: \
                     export it with dynamic height and width)",
                    p.width, p.height
                ),
            });
        }
        Ok(data)
    }

    /// `img` upscaled by [`Upscaler::factor`], tiled as `tiling` says; values clamped to
    /// [0, 1], ×255, rounded half to even (Real-ESRGAN's conversion).
    ///
    /// # Errors
    /// The model fails or gives an output of the wrong size.
    pub fn upscale(&mut self, img: &RgbImage, tiling: Tiling) -> Result<RgbImage, PostError> {
        let src = Planar::from_rgb(img);
        let (w, h) = (src.width, src.height);
        let s = self.factor as usize;
        let (ow, oh) = (w * s, h * s);
        if tiling.tile == 0 || (tiling.tile >= w && tiling.tile >= h) {
            let data = self.run_checked(&src)?;
            let out = Planar {
                width: ow,
                height: oh,
                data,
            };
            return Ok(out.to_rgb(0, 0, ow, oh, round_u8));
        }
        let (t, p) = (tiling.tile, tiling.pad.min(tiling.tile / 2));
        let mut out = RgbImage::new(ow as u32, oh as u32);
        // the band: output rows [band_y0, band_y0 + rows) of interleaved RGB sums
        let mut band: Vec<f32> = Vec::new();
        let mut band_y0 = 0usize;
        let row_len = ow * 3;
        let mut y0 = 0;
        while y0 < h {
            let y1 = (y0 + t).min(h);
            let (ey0, ey1) = (y0.saturating_sub(p), (y1 + p).min(h));
            // keep the rows the previous band shares with this one
            let mut next = vec![0f32; (ey1 - ey0) * s * row_len];
            if !band.is_empty() {
                let from = ey0 * s - band_y0;
                let kept = &band[from * row_len..];
                next[..kept.len()].copy_from_slice(kept);
            }
            band = next;
            band_y0 = ey0 * s;
            let wy = weights(y0, y1, h, p, s);
            let mut x0 = 0;
            while x0 < w {
                let x1 = (x0 + t).min(w);
                let (ex0, ex1) = (x0.saturating_sub(p), (x1 + p).min(w));
                let tile = src.crop(ex0, ey0, ex1 - ex0, ey1 - ey0);
                let data = self.run_checked(&tile)?;
                let wx = weights(x0, x1, w, p, s);
                let (tw, th) = (tile.width * s, tile.height * s);
                let plane = tw * th;
                for ty in 0..th {
                    let gy = ey0 * s + ty;
                    let fy = wy(gy);
                    if fy == 0.0 {
                        continue;
                    }
                    let row = &mut band[(gy - band_y0) * row_len..][..row_len];
                    for tx in 0..tw {
                        let gx = ex0 * s + tx;
                        let f = fy * wx(gx);
                        if f == 0.0 {
                            continue;
                        }
                        let i = ty * tw + tx;
                        for c in 0..3 {
                            row[gx * 3 + c] += f * data[c * plane + i];
                        }
                    }
                }
                x0 = x1;
            }
            // rows no later band reaches are final
            let done = if y1 == h { oh } else { (y1 - p) * s };
            for gy in band_y0..done {
                let row = &band[(gy - band_y0) * row_len..][..row_len];
                for gx in 0..ow {
                    let px = out.get_pixel_mut(gx as u32, gy as u32);
                    for c in 0..3 {
                        px.0[c] = round_u8(row[gx * 3 + c]);
                    }
                }
            }
            y0 = y1;
        }
        Ok(out)
    }
}

/// The weight, along one axis, of the tile whose own span is input pixels [`a`, `b`) (of `n`),
/// at output pixel `g` (factor `s`): 1 inside, ramping linearly over the `pad` input pixels
/// centred on each edge shared with a neighbour (the neighbour's ramp is its complement), 0
/// beyond; the outer `pad / 2` pixels of each tile's context only feed the model.
fn weights(a: usize, b: usize, n: usize, pad: usize, s: usize) -> impl Fn(usize) -> f32 {
    move |g: usize| {
        // the output pixel's centre in input coordinates
        let u = (g as f64 + 0.5) / s as f64;
        let ramp = |edge: usize, rising: bool| -> f64 {
            if pad == 0 {
                let inside = if rising {
                    u >= edge as f64
                } else {
                    u < edge as f64
                };
                return if inside { 1.0 } else { 0.0 };
            }
            let half = pad as f64 / 2.0;
            let r = ((u - (edge as f64 - half)) / pad as f64).clamp(0.0, 1.0);
            if rising { r } else { 1.0 - r }
        };
        let left = if a == 0 { 1.0 } else { ramp(a, true) };
        let right = if b == n { 1.0 } else { ramp(b, false) };
        left.min(right) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_weights_sum_to_one() {
        let (n, t, p, s) = (100, 30, 5, 4);
        for g in 0..n * s {
            let mut sum = 0.0;
            let mut a = 0;
            while a < n {
                let b = (a + t).min(n);
                sum += weights(a, b, n, p, s)(g);
                a = b;
            }
            assert!((sum - 1.0).abs() < 1e-6, "output pixel {g}: {sum}");
        }
    }
}
