//! Frame interpolation with an ONNX model: Deforum's RIFE order (frame i, the in-betweens at
//! t = 1/x … (x−1)/x, frame i+1; right/bottom zero padding to 128) and its FILM order (k
//! in-betweens per pair, each from its nearest neighbours made so far, centred padding to 64).
//!
//! Model IO contracts, detected from the model's inputs (docs/post.md):
//! - three inputs: two frames `[1, 3, H, W]` RGB in [0, 1] and the time, either a plane
//!   `[1, 1, H, W]` (RIFE exports) or `[1, 1]` (FILM exports); the time input is the one with one
//!   channel or rank 2, the frames are the others in order;
//! - one input `[1, 7, H, W]`: frame 0, frame 1, the time plane (vs-mlrt's RIFE v2 exports);
//! - one input `[1, 11, H, W]`: those 7 channels, then grid x `2j/(W−1)−1`, grid y `2i/(H−1)−1`
//!   and the constant planes `2/(W−1)`, `2/(H−1)` (vs-mlrt's RIFE v1 exports).
//!
//! The output is the frame at t, `[1, 3, H, W]` RGB in [0, 1].

use std::path::{Path, PathBuf};

use image::RgbImage;
use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::{Planar, PostError, io_err, truncate_u8};
use crate::output;

/// Deforum's interpolation engines: the order in-betweens are made in and the padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// RIFE v4.6 as Deforum runs it: x−1 in-betweens per pair at t = (i+1)/x, each from the
    /// pair itself; zero padding right/bottom to a multiple of 128.
    Rife,
    /// FILM as Deforum runs it: k = round((N·x − N)/(N − 1)) in-betweens per pair, each from
    /// the two nearest frames made so far; zero padding centred to a multiple of 64.
    Film,
}

impl Engine {
    /// The engine of Deforum's `frame_interpolation_engine` value; `None` for "None".
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "RIFE v4.6" => Some(Engine::Rife),
            "FILM" => Some(Engine::Film),
            _ => None,
        }
    }

    /// The name in Deforum's file names: `RIFE` or `FILM`.
    pub fn label(self) -> &'static str {
        match self {
            Engine::Rife => "RIFE",
            Engine::Film => "FILM",
        }
    }

    /// The model folder looked for under `models/` beside the scene when
    /// `[post] frame_interpolation_model` is not set (Deforum's own folder names).
    pub fn default_folder(self) -> &'static str {
        match self {
            Engine::Rife => "RIFE46",
            Engine::Film => "film_net",
        }
    }

    /// Frames are padded to a multiple of this.
    fn multiple(self) -> usize {
        match self {
            Engine::Rife => 128,
            Engine::Film => 64,
        }
    }

    /// Padding (left, top) of a `w`×`h` frame inside its padded size.
    fn offset(self, w: usize, h: usize) -> (usize, usize, usize, usize) {
        let m = self.multiple();
        let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
        match self {
            Engine::Rife => (pw, ph, 0, 0),
            Engine::Film => (pw, ph, (pw - w) / 2, (ph - h) / 2),
        }
    }
}

/// The model's input layout (see the module docs).
#[derive(Debug, Clone)]
enum Io {
    /// Frame 0, frame 1 and the time as separate inputs; `plane`: time is `[1, 1, H, W]`.
    Three {
        a: String,
        b: String,
        t: String,
        plane: bool,
    },
    /// One input of 7 or 11 channels.
    Packed { name: String, channels: usize },
}

/// A loaded interpolation model.
pub struct Interpolator {
    session: Session,
    path: PathBuf,
    io: Io,
}

fn shape_of(v: &ValueType) -> Option<Vec<i64>> {
    match v {
        ValueType::Tensor { shape, .. } => Some(shape.iter().copied().collect()),
        _ => None,
    }
}

impl Interpolator {
    /// Loads `path` (an `.onnx` file or a folder holding `model.onnx`) and detects its IO
    /// contract from its inputs.
    ///
    /// # Errors
    /// A missing file, a model ONNX Runtime cannot load, inputs that match no contract.
    pub fn load(path: &Path) -> Result<Interpolator, PostError> {
        let (session, path) = super::load_session(path, "frame_interpolation_model")?;
        let inputs: Vec<(String, Vec<i64>)> = session
            .inputs()
            .iter()
            .map(|i| {
                (
                    i.name().to_string(),
                    shape_of(i.dtype()).unwrap_or_default(),
                )
            })
            .collect();
        let bad = |why: &str| PostError::Load {
            path: path.clone(),
            message: format!(
                "inputs {inputs:?}: {why}; expected two frames [1, 3, H, W] and a time [1, 1, H, W] \
                 or [1, 1], or one [1, 7|11, H, W] input (docs/post.md)"
            ),
        };
        let io = match inputs.as_slice() {
            [(name, dims)] if dims.len() == 4 && (dims[1] == 7 || dims[1] == 11) => Io::Packed {
                name: name.clone(),
                channels: dims[1] as usize,
            },
            [_, _, _] => {
                let is_time = |d: &Vec<i64>| d.len() == 2 || (d.len() == 4 && d[1] == 1);
                let times: Vec<usize> = (0..3).filter(|&i| is_time(&inputs[i].1)).collect();
                let [ti] = times.as_slice() else {
                    return Err(bad("not exactly one time input"));
                };
                let frames: Vec<&(String, Vec<i64>)> =
                    (0..3).filter(|i| i != ti).map(|i| &inputs[i]).collect();
                if frames
                    .iter()
                    .any(|(_, d)| d.len() != 4 || d[1] > 0 && d[1] != 3)
                {
                    return Err(bad("the frame inputs are not [1, 3, H, W]"));
                }
                Io::Three {
                    a: frames[0].0.clone(),
                    b: frames[1].0.clone(),
                    t: inputs[*ti].0.clone(),
                    plane: inputs[*ti].1.len() == 4,
                }
            }
            _ => return Err(bad("no contract has this many inputs")),
        };
        Ok(Interpolator { session, path, io })
    }

    /// The frame at time `t` (0 = `a`, 1 = `b`) between two frames of the same (padded) size.
    ///
    /// # Errors
    /// The model fails or its output is not `[1, 3, H, W]`.
    pub fn predict(&mut self, a: &Planar, b: &Planar, t: f32) -> Result<Planar, PostError> {
        let run = |message: String| PostError::Run {
            path: self.path.clone(),
            message,
        };
        let (w, h) = (a.width, a.height);
        let hw = w * h;
        let frame = |p: &Planar| {
            Tensor::from_array((vec![1i64, 3, h as i64, w as i64], p.data.clone()))
                .map_err(|e| run(e.to_string()))
        };
        let outputs = match &self.io {
            Io::Three {
                a: na,
                b: nb,
                t: nt,
                plane,
            } => {
                let time = if *plane {
                    Tensor::from_array((vec![1i64, 1, h as i64, w as i64], vec![t; hw]))
                } else {
                    Tensor::from_array((vec![1i64, 1], vec![t]))
                }
                .map_err(|e| run(e.to_string()))?;
                let inputs = ort::inputs![na.as_str() => frame(a)?, nb.as_str() => frame(b)?, nt.as_str() => time];
                self.session.run(inputs)
            }
            Io::Packed { name, channels } => {
                let mut data = Vec::with_capacity(channels * hw);
                data.extend_from_slice(&a.data);
                data.extend_from_slice(&b.data);
                data.extend(std::iter::repeat_n(t, hw));
                if *channels == 11 {
                    let sx = 2.0 / (w.max(2) - 1) as f32;
                    let sy = 2.0 / (h.max(2) - 1) as f32;
                    for _ in 0..h {
                        data.extend((0..w).map(|j| j as f32 * sx - 1.0));
                    }
                    for i in 0..h {
                        data.extend(std::iter::repeat_n(i as f32 * sy - 1.0, w));
                    }
                    data.extend(std::iter::repeat_n(sx, hw));
                    data.extend(std::iter::repeat_n(sy, hw));
                }
                let x = Tensor::from_array((vec![1i64, *channels as i64, h as i64, w as i64], data))
                    .map_err(|e| run(e.to_string()))?;
                self.session.run(ort::inputs![name.as_str() => x])
            }
        }
        .map_err(|e| run(e.to_string()))?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| run(e.to_string()))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims != [1, 3, h as i64, w as i64] {
            return Err(run(format!(
                "output has shape {dims:?}, expected [1, 3, {h}, {w}] (the input frames' size)"
            )));
        }
        Ok(Planar {
            width: w,
            height: h,
            data: values.to_vec(),
        })
    }
}

/// The number of frames [`interpolate`] makes from `n` frames: `(n−1)·x + 1` for RIFE,
/// `n + (n−1)·k` with k = round((n·x − n)/(n − 1)) for FILM.
pub fn output_count(engine: Engine, n: usize, x: usize) -> usize {
    if n < 2 {
        return n;
    }
    (n - 1) * (per_pair(engine, n, x)) + n
}

/// In-betweens per pair.
fn per_pair(engine: Engine, n: usize, x: usize) -> usize {
    match engine {
        Engine::Rife => x - 1,
        // Python's round: half to even
        Engine::Film => ((n * x - n) as f64 / (n - 1) as f64).round_ties_even() as usize,
    }
}

/// numpy's `linspace(0, 1, num)`.
fn linspace(num: usize) -> Vec<f64> {
    let step = 1.0 / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step).collect();
    v[num - 1] = 1.0;
    v
}

/// The in-betweens of one padded pair, in time order.
fn between(
    model: &mut Interpolator,
    engine: Engine,
    a: &Planar,
    b: &Planar,
    count: usize,
) -> Result<Vec<Planar>, PostError> {
    match engine {
        Engine::Rife => (0..count)
            .map(|i| {
                let t = ((i + 1) as f64 / (count + 1) as f64) as f32;
                model.predict(a, b, t)
            })
            .collect(),
        Engine::Film => {
            // each step makes the frame whose position within its current neighbours is
            // nearest the middle (first such in (neighbour pair, frame) order); results stay
            // float and clamped, as the FILM port Deforum runs does
            let splits = linspace(count + 2);
            let mut idxes = vec![0, count + 1];
            let mut results: Vec<Planar> = vec![a.clone(), b.clone()];
            let mut remains: Vec<usize> = (1..=count).collect();
            while !remains.is_empty() {
                let mut best = (f64::INFINITY, 0, 0);
                for s in 0..idxes.len() - 1 {
                    let (st, en) = (splits[idxes[s]], splits[idxes[s + 1]]);
                    for (j, &r) in remains.iter().enumerate() {
                        let d = ((splits[r] - st) / (en - st) - 0.5).abs();
                        if d < best.0 {
                            best = (d, s, j);
                        }
                    }
                }
                let (_, s, j) = best;
                let r = remains[j];
                let (st, en) = (splits[idxes[s]], splits[idxes[s + 1]]);
                let dt = ((splits[r] - st) / (en - st)) as f32;
                let mut y = model.predict(&results[s], &results[s + 1], dt)?;
                y.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
                let pos = idxes.partition_point(|&i| i < r);
                idxes.insert(pos, r);
                results.insert(pos, y);
                remains.remove(j);
            }
            results.pop();
            results.remove(0);
            Ok(results)
        }
    }
}

/// Interpolates `frames` (all the same size) by `x` (2..=10) in the engine's order, handing
/// each output frame to `emit` in order: frame 0, its in-betweens, frame 1, …, the last frame.
/// Two frames are held at a time. Returns the number of frames emitted.
///
/// # Errors
/// A frame that cannot be read or differs in size, the model failing, or `emit`'s error.
pub fn interpolate(
    model: &mut Interpolator,
    engine: Engine,
    frames: &mut dyn Iterator<Item = Result<RgbImage, PostError>>,
    n: usize,
    x: usize,
    mut emit: impl FnMut(RgbImage) -> Result<(), PostError>,
) -> Result<usize, PostError> {
    let mut count = 0;
    let Some(first) = frames.next().transpose()? else {
        return Ok(0);
    };
    let (w, h) = (first.width() as usize, first.height() as usize);
    let (pw, ph, left, top) = engine.offset(w, h);
    let k = if n >= 2 { per_pair(engine, n, x) } else { 0 };
    let mut prev_img = first;
    let mut prev = Planar::from_rgb(&prev_img).pad(pw, ph, left, top);
    for next_img in frames {
        let next_img = next_img?;
        if (next_img.width() as usize, next_img.height() as usize) != (w, h) {
            return Err(PostError::Run {
                path: model.path.clone(),
                message: format!(
                    "frame {} is {}x{}, the first frame {w}x{h}: all frames must have one size",
                    count,
                    next_img.width(),
                    next_img.height()
                ),
            });
        }
        let next = Planar::from_rgb(&next_img).pad(pw, ph, left, top);
        emit(prev_img)?;
        count += 1;
        for mid in between(model, engine, &prev, &next, k)? {
            emit(mid.to_rgb(left, top, w, h, truncate_u8))?;
            count += 1;
        }
        prev_img = next_img;
        prev = next;
    }
    emit(prev_img)?;
    Ok(count + 1)
}

/// [`interpolate`] over frame files.
///
/// # Errors
/// As [`interpolate`]; an unreadable file is named.
pub fn interpolate_files(
    model: &mut Interpolator,
    engine: Engine,
    files: &[PathBuf],
    x: usize,
    emit: impl FnMut(RgbImage) -> Result<(), PostError>,
) -> Result<usize, PostError> {
    let mut frames = files
        .iter()
        .map(|f| output::read_rgb(f).map_err(|e| io_err(f, e)));
    interpolate(model, engine, &mut frames, files.len(), x, emit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_deforum() {
        assert_eq!(output_count(Engine::Rife, 10, 3), 28);
        // FILM: k = round((3*2 - 3) / 2) = round(1.5) = 2 (half to even)
        assert_eq!(output_count(Engine::Film, 3, 2), 7);
        assert_eq!(output_count(Engine::Film, 10, 2), 19);
        assert_eq!(output_count(Engine::Rife, 1, 4), 1);
    }

    #[test]
    fn padding() {
        assert_eq!(Engine::Rife.offset(70, 45), (128, 128, 0, 0));
        assert_eq!(Engine::Film.offset(70, 45), (128, 64, 29, 9));
        assert_eq!(Engine::Rife.offset(130, 64), (256, 128, 0, 0));
        assert_eq!(linspace(4), vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
    }
}
