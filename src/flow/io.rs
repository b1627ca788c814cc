//! Flow files: Middlebury `.flo` (read and write), the Middlebury colour wheel picture, and the
//! body of `anim flow` (two frames in, a `.flo` and optionally a PNG out).

use super::{Estimator, Flow, MAX_SIDE, Method};
use anyhow::{Context, Result, bail};
use image::{Rgb, RgbImage};
use std::io::{BufWriter, Read, Write};
use std::path::Path;

/// The `.flo` tag: the float 202021.25, whose little-endian bytes read `PIEH`.
pub const FLO_TAG: f32 = 202021.25;

/// Writes `flow` as a Middlebury `.flo`: tag, width, height (little-endian f32, i32, i32), then
/// `u, v` per pixel as little-endian f32, row by row.
///
/// # Errors
/// The file cannot be written (named in the error).
pub fn write_flo(path: &Path, flow: &Flow) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        out.write_all(&FLO_TAG.to_le_bytes())?;
        out.write_all(&(flow.width() as i32).to_le_bytes())?;
        out.write_all(&(flow.height() as i32).to_le_bytes())?;
        let mut bytes = Vec::with_capacity(flow.as_slice().len() * 4);
        for v in flow.as_slice() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&bytes)?;
        out.flush()
    };
    write().with_context(|| format!("cannot write the flow file {}", path.display()))
}

/// Reads a Middlebury `.flo` file.
///
/// # Errors
/// A missing or unreadable file, a wrong tag, sizes out of 1..=[`MAX_SIDE`], or a file shorter
/// or longer than its sizes say; the error names the file.
pub fn read_flo(path: &Path) -> Result<Flow> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the flow file {}", path.display()))?;
    read_flo_from(file).with_context(|| format!("bad flow file {}", path.display()))
}

/// Reads a `.flo` from any reader (a file, a decompressor); errors do not name a file.
///
/// # Errors
/// As [`read_flo`].
pub fn read_flo_from(mut r: impl Read) -> Result<Flow> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head)
        .context("shorter than the 12-byte .flo header")?;
    let tag = f32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    if tag != FLO_TAG {
        bail!(
            "not a Middlebury .flo file: it starts with {:?}, not \"PIEH\"",
            String::from_utf8_lossy(&head[0..4])
        );
    }
    let w = i32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let h = i32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let side = 1..=MAX_SIDE as i32;
    if !side.contains(&w) || !side.contains(&h) {
        bail!("its header says {w}x{h}; each side must be 1 to {MAX_SIDE}");
    }
    let n = 2 * w as usize * h as usize;
    let mut bytes = Vec::with_capacity(n * 4);
    r.take(n as u64 * 4 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > n * 4 {
        bail!(
            "longer than a {w}x{h} flow ({} bytes of values after the header)",
            n * 4
        );
    }
    if bytes.len() < n * 4 {
        bail!(
            "truncated: a {w}x{h} flow needs {} bytes after the header, the file has {}",
            n * 4,
            bytes.len()
        );
    }
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Flow::from_vec(w as u32, h as u32, data)
}

/// The 55 colours of the Middlebury wheel (Baker et al. 2007): red→yellow 15, yellow→green 6,
/// green→cyan 4, cyan→blue 11, blue→magenta 13, magenta→red 6, each ramp `floor(255·i/n)`.
fn wheel() -> Vec<[f64; 3]> {
    // (length, channel held at 255, ramped channel, rising)
    const SEGMENTS: [(usize, usize, usize, bool); 6] = [
        (15, 0, 1, true),
        (6, 1, 0, false),
        (4, 1, 2, true),
        (11, 2, 1, false),
        (13, 2, 0, true),
        (6, 0, 2, false),
    ];
    let mut out = Vec::with_capacity(55);
    for (n, full, ramp, rising) in SEGMENTS {
        for i in 0..n {
            let mut c = [0.0; 3];
            c[full] = 255.0;
            let step = (255.0 * i as f64 / n as f64).floor();
            c[ramp] = if rising { step } else { 255.0 - step };
            out.push(c);
        }
    }
    out
}

/// The flow as a picture on the Middlebury colour wheel, as `flow_vis.flow_to_color` makes it:
/// hue from the direction, saturation from the magnitude over the largest magnitude (+1e-5).
/// Float32 where flow_vis computes in float32, float64 where it does.
pub fn color_wheel(flow: &Flow) -> RgbImage {
    let wheel = wheel();
    let n = wheel.len();
    let uv = flow.as_slice();
    let rad_max = uv
        .chunks_exact(2)
        .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
        .fold(f32::NEG_INFINITY, f32::max);
    let norm = rad_max + 1e-5f32;
    let pi = std::f64::consts::PI as f32;
    let mut img = RgbImage::new(flow.width(), flow.height());
    for (px, p) in img.pixels_mut().zip(uv.chunks_exact(2)) {
        let (u, v) = (p[0] / norm, p[1] / norm);
        let rad = (u * u + v * v).sqrt();
        let a = (-v).atan2(-u) / pi;
        let fk = (a + 1.0) / 2.0 * (n - 1) as f32;
        if !fk.is_finite() {
            *px = Rgb([0, 0, 0]);
            continue;
        }
        let k0 = fk.floor() as usize;
        let k1 = if k0 + 1 == n { 0 } else { k0 + 1 };
        let f = f64::from(fk) - k0 as f64;
        let mut out = [0u8; 3];
        for (i, o) in out.iter_mut().enumerate() {
            let col0 = wheel[k0.min(n - 1)][i] / 255.0;
            let col1 = wheel[k1][i] / 255.0;
            let mut col = (1.0 - f) * col0 + f * col1;
            if rad <= 1.0 {
                col = 1.0 - f64::from(rad) * (1.0 - col);
            } else {
                col *= 0.75;
            }
            *o = (255.0 * col).floor() as u8;
        }
        *px = Rgb(out);
    }
    img
}

/// What `anim flow` computed.
pub struct FlowRun {
    /// The flow written to the `.flo` file.
    pub flow: Flow,
    /// The largest flow magnitude in pixels.
    pub max_magnitude: f32,
    /// The mean flow magnitude in pixels.
    pub mean_magnitude: f32,
}

/// `anim flow`: the forward flow from `frame_a` to `frame_b` with `method` (RAFT reads its model
/// from `model`), written to `out` as `.flo` and, with `png`, as a colour-wheel picture.
///
/// # Errors
/// A missing or unreadable frame or frames of different sizes (named), a method that fails, or
/// an output that cannot be written.
pub fn flow_files(
    frame_a: &Path,
    frame_b: &Path,
    method: Method,
    model: Option<&Path>,
    out: &Path,
    png: Option<&Path>,
) -> Result<FlowRun> {
    let read = |p: &Path| -> Result<RgbImage> {
        let img =
            image::open(p).with_context(|| format!("cannot read the frame {}", p.display()))?;
        if img.width() > MAX_SIDE || img.height() > MAX_SIDE {
            bail!(
                "the frame {} is {}x{}; each side must be at most {MAX_SIDE}",
                p.display(),
                img.width(),
                img.height()
            );
        }
        Ok(img.to_rgb8())
    };
    let (a, b) = (read(frame_a)?, read(frame_b)?);
    if a.dimensions() != b.dimensions() {
        bail!(
            "the frames differ in size: {} is {}x{}, {} is {}x{}; resize one to the other",
            frame_a.display(),
            a.width(),
            a.height(),
            frame_b.display(),
            b.width(),
            b.height()
        );
    }
    let mut est = Estimator::new(method, model)?;
    let flow = est
        .flow(&a, &b, None)
        .with_context(|| format!("the {} flow failed", method.cli_name()))?;
    write_flo(out, &flow)?;
    if let Some(png) = png {
        color_wheel(&flow)
            .save(png)
            .with_context(|| format!("cannot write the picture {}", png.display()))?;
    }
    let mags: Vec<f32> = flow
        .as_slice()
        .chunks_exact(2)
        .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
        .collect();
    let max_magnitude = mags.iter().copied().fold(0.0, f32::max);
    let mean_magnitude =
        (mags.iter().map(|&m| f64::from(m)).sum::<f64>() / mags.len() as f64) as f32;
    Ok(FlowRun {
        flow,
        max_magnitude,
        mean_magnitude,
    })
}
