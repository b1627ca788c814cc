//! Depth for the 3D camera: a monocular depth model run through ONNX Runtime (MiDaS/DPT or
//! Depth-Anything style: RGB in, relative inverse depth out, larger = nearer), and its map turned
//! into the per-pixel z of [`super::warp3d`] the way Deforum's `transform_image_3d_new` does for
//! its MiDaS algorithms.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, RgbImage};
use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::warp3d::cubic_weights;
use crate::scene::{DepthNormalization, DepthResize, DepthSettings};

/// A depth model that cannot be loaded or run, or a depth map that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum DepthError {
    /// The model file does not exist.
    #[error("[depth] model: {} does not exist (a .onnx file, or a folder holding model.onnx)", .path.display())]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// ONNX Runtime could not load the model, or it is not an image → depth model.
    #[error("[depth] model {}: {message}", .path.display())]
    Load {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Running the model failed or gave an output of an unexpected shape.
    #[error("depth model {}: {message}", .path.display())]
    Run {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A depth map could not be written.
    #[error("cannot write depth map {}: {message}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A loaded ONNX depth model.
pub struct DepthModel {
    session: Session,
    path: PathBuf,
    input: String,
    /// (height, width) of the model input when the model fixes it.
    fixed: Option<(usize, usize)>,
    settings: DepthSettings,
}

impl DepthModel {
    /// Loads `path` (a `.onnx` file or a folder with `model.onnx`). The model takes one float
    /// tensor `[1, 3, H, W]` (RGB); H and W are the model's own when fixed, else chosen per
    /// frame by [`input_size`] from `settings`.
    pub fn load(path: &Path, settings: &DepthSettings) -> Result<DepthModel, DepthError> {
        let path = if path.is_dir() {
            path.join("model.onnx")
        } else {
            path.to_path_buf()
        };
        if !path.is_file() {
            return Err(DepthError::Missing { path });
        }
        let load = |message: String| DepthError::Load {
            path: path.clone(),
            message,
        };
        let env = crate::runtime::environment().map_err(|e| load(format!("{e:#}")))?;
        let session = crate::runtime::session_builder(env)
            .map_err(|e| load(e.to_string()))?
            .commit_from_file(&path)
            .map_err(|e| load(e.to_string()))?;
        let first = session
            .inputs()
            .first()
            .ok_or_else(|| load("the model has no input".into()))?;
        let input = first.name().to_string();
        let dims = match first.dtype() {
            ValueType::Tensor { shape, .. } => shape.iter().copied().collect::<Vec<i64>>(),
            other => {
                return Err(load(format!(
                    "input `{input}` is {other:?}, expected a float tensor [1, 3, H, W]"
                )));
            }
        };
        if dims.len() != 4 || (dims[1] > 0 && dims[1] != 3) {
            return Err(load(format!(
                "input `{input}` has shape {dims:?}, expected [1, 3, H, W]"
            )));
        }
        let fixed = (dims[2] > 0 && dims[3] > 0).then(|| (dims[2] as usize, dims[3] as usize));
        Ok(DepthModel {
            session,
            path,
            input,
            fixed,
            settings: settings.clone(),
        })
    }

    /// The model's inverse depth for `img`, resized back to the image, row-major.
    ///
    /// The preprocessing of MiDaS and Depth-Anything (and so Deforum's): the RGB image scaled to
    /// [0, 1], resized to the model input ([`input_size`]) with OpenCV's `INTER_CUBIC`,
    /// normalised; the output resized to the frame as torch's bicubic `interpolate` does.
    pub fn predict(&mut self, img: &RgbImage) -> Result<Vec<f32>, DepthError> {
        let run = |message: String| DepthError::Run {
            path: self.path.clone(),
            message,
        };
        let (fw, fh) = (img.width() as usize, img.height() as usize);
        let (h, w) = self.fixed.unwrap_or_else(|| {
            let s = &self.settings;
            input_size(fw, fh, s.input_size, s.multiple_of, s.resize)
        });
        let (mean, std) = match self.settings.normalization {
            DepthNormalization::Imagenet => ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]),
            DepthNormalization::Half => ([0.5; 3], [0.5; 3]),
        };
        let mut data = Vec::with_capacity(3 * h * w);
        for c in 0..3 {
            let plane: Vec<f32> = img.pixels().map(|p| p.0[c] as f32 / 255.0).collect();
            let resized = resize_cubic(&plane, fw, fh, w, h);
            data.extend(resized.iter().map(|v| (v - mean[c]) / std[c]));
        }
        let tensor = Tensor::from_array((vec![1i64, 3, h as i64, w as i64], data))
            .map_err(|e| run(e.to_string()))?;
        let input = self.input.clone();
        let outputs = self
            .session
            .run(ort::inputs![input => tensor])
            .map_err(|e| run(e.to_string()))?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| run(e.to_string()))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let (oh, ow) = match dims.as_slice() {
            [.., oh, ow] if oh * ow == values.len() && *oh > 0 && *ow > 0 => (*oh, *ow),
            _ => {
                return Err(run(format!(
                    "output has shape {dims:?}, expected [1, H, W] or [1, 1, H, W]"
                )));
            }
        };
        Ok(resize_cubic(values, ow, oh, fw, fh))
    }
}

/// The model input (height, width) for a `width`×`height` frame by MiDaS's `Resize` rules
/// (`keep_aspect_ratio`, `ensure_multiple_of`, `resize_method`): scale so that `target` fits
/// as `resize` says, then round each side to the nearest multiple of `multiple_of` (half to
/// even, as numpy), never below `target` for `lower_bound`.
pub fn input_size(
    width: usize,
    height: usize,
    target: u32,
    multiple_of: u32,
    resize: DepthResize,
) -> (usize, usize) {
    let (t, m) = (target as f64, multiple_of.max(1) as f64);
    let (mut sh, mut sw) = (t / height as f64, t / width as f64);
    match resize {
        DepthResize::LowerBound if sw > sh => sh = sw,
        DepthResize::LowerBound => sw = sh,
        DepthResize::Minimal if (1.0 - sw).abs() < (1.0 - sh).abs() => sh = sw,
        DepthResize::Minimal => sw = sh,
        DepthResize::Square => {}
    }
    let min = if resize == DepthResize::LowerBound {
        t
    } else {
        0.0
    };
    let side = |x: f64| {
        let mut y = (x / m).round_ties_even() * m;
        if y < min {
            y = (x / m).ceil() * m;
        }
        y.max(m) as usize
    };
    (side(sh * height as f64), side(sw * width as f64))
}

/// Bicubic resize of one `w`×`h` plane to `ow`×`oh`, as OpenCV's `resize(INTER_CUBIC)` and
/// torch's `interpolate(mode = "bicubic", align_corners = False)` compute it: Keys weights with
/// a = −0.75, pixel centres aligned, edge pixels repeated, no antialiasing when shrinking.
/// Separable (rows, then columns) in f32. Neither `image` nor `imageproc` offers this kernel:
/// their bicubic filters widen when shrinking, which the depth models were not trained with.
fn resize_cubic(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    if (w, h) == (ow, oh) {
        return src.to_vec();
    }
    let taps = |n: usize, out: usize| -> Vec<([usize; 4], [f32; 4])> {
        let scale = n as f64 / out as f64;
        (0..out)
            .map(|d| {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let s = f.floor();
                let idx = [-1, 0, 1, 2].map(|k| (s as i64 + k).clamp(0, n as i64 - 1) as usize);
                (idx, cubic_weights(f - s))
            })
            .collect()
    };
    let (tx, ty) = (taps(w, ow), taps(h, oh));
    let mut rows = vec![0f32; h * ow];
    for (src_row, row) in src.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
        for (o, (i, k)) in row.iter_mut().zip(&tx) {
            *o = (0..4).map(|j| src_row[i[j]] * k[j]).sum();
        }
    }
    let mut out = vec![0f32; oh * ow];
    for (row, (i, k)) in out.chunks_exact_mut(ow).zip(&ty) {
        for (x, o) in row.iter_mut().enumerate() {
            *o = (0..4).map(|j| rows[i[j] * ow + x] * k[j]).sum();
        }
    }
    out
}

/// Blends z with flat depth: `1 + weight · (z − 1)` (weight 1 keeps z as it is).
pub fn weighted(z: Vec<f32>, weight: f64) -> Vec<f32> {
    if weight == 1.0 {
        return z;
    }
    let w = weight as f32;
    z.into_iter().map(|v| 1.0 + w * (v - 1.0)).collect()
}

/// Writes a raw depth map as a 16-bit grey PNG, min → 0 and max → 65535 (nearer = brighter for
/// inverse depth); a constant or non-finite map is written black.
pub fn save_depth_png(path: &Path, raw: &[f32], width: u32, height: u32) -> Result<(), DepthError> {
    let finite = raw.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let range = max - min;
    let px: Vec<u16> = raw
        .iter()
        .map(|v| {
            if range > 0.0 && range.is_finite() && v.is_finite() {
                ((v - min) / range * 65535.0).round() as u16
            } else {
                0
            }
        })
        .collect();
    let io = |message: String| DepthError::Io {
        path: path.to_path_buf(),
        message,
    };
    let img: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_raw(width, height, px).ok_or_else(|| io("size mismatch".into()))?;
    img.save(path).map_err(|e| io(e.to_string()))
}

/// Per-pixel z from a raw inverse-depth map, as Deforum's `prepare_depth_tensor` +
/// `depth_equalization` + the MiDaS scaling: normalise to [0, 1] by min and max, equalise with a
/// 1024-bin histogram (`np.interp` over the bins' left edges and the normalised CDF), then
/// `z = 2 - d`, so the nearest pixels have z = 1 and the farthest z = 2.
///
/// `None` when the map is empty or holds NaN, ±inf or a single value: Deforum then falls back
/// to flat depth (z = 1), and so does the caller.
pub fn depth_to_z(raw: &[f32]) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has("avx2") && raw.len() < i32::MAX as usize {
        // SAFETY: the CPU supports AVX2
        return unsafe { avx2::depth_to_z(raw) };
    }
    depth_to_z_scalar(raw)
}

/// Histogram bins of the equalisation.
const BINS: usize = 1024;

/// [`depth_to_z`] one value at a time (the fallback without AVX2).
fn depth_to_z_scalar(raw: &[f32]) -> Option<Vec<f32>> {
    if raw.is_empty() || raw.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let min = raw.iter().copied().fold(f32::INFINITY, f32::min);
    let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    if range == 0.0 || !range.is_finite() {
        return None;
    }
    let mut z: Vec<f32> = raw.iter().map(|v| (v - min) / range).collect();
    let mut hist = Histogram::new();
    for &d in &z {
        hist.add(0, bin(d));
    }
    let eq = Equalisation::new(&hist, z.len());
    for d in &mut z {
        *d = eq.z(*d);
    }
    Some(z)
}

/// The bin of a normalised depth d in [0, 1] (`np.histogram` on [0, 1]: the last bin is closed).
#[inline(always)]
fn bin(d: f32) -> usize {
    ((d * BINS as f32) as usize).min(BINS - 1)
}

/// Bin counts, kept in four interleaved copies so that runs of the same bin (a smooth map) do
/// not all wait on one counter.
struct Histogram([[u64; BINS]; 4]);

impl Histogram {
    fn new() -> Histogram {
        Histogram([[0; BINS]; 4])
    }

    #[inline(always)]
    fn add(&mut self, copy: usize, bin: usize) {
        self.0[copy][bin] += 1;
    }

    fn count(&self, bin: usize) -> u64 {
        self.0.iter().map(|h| h[bin]).sum()
    }
}

/// `np.interp(d, left edges, normalised CDF)` as a table: per bin its CDF and the slope to the
/// next bin, each computed once with the same division `np.interp` does per value.
struct Equalisation {
    cdf: [f64; BINS],
    /// `(cdf[k + 1] − cdf[k]) / (edge(k + 1) − edge(k))`; 0 for the last bin, so values at and
    /// beyond its left edge get `cdf[last]`, as `np.interp` gives past its last point.
    slope: [f64; BINS],
}

impl Equalisation {
    fn new(hist: &Histogram, total: usize) -> Equalisation {
        let mut cdf = [0f64; BINS];
        let mut acc = 0u64;
        for (k, c) in cdf.iter_mut().enumerate() {
            acc += hist.count(k);
            *c = acc as f64 / total as f64;
        }
        let slope = std::array::from_fn(|k| {
            if k + 1 < BINS {
                (cdf[k + 1] - cdf[k]) / (edge(k + 1) - edge(k))
            } else {
                0.0
            }
        });
        Equalisation { cdf, slope }
    }

    /// z of a normalised depth d: `2 − (slope · (x − edge) + cdf)` in float64 for d's bin. At
    /// an edge `x − edge = 0` gives the CDF exactly, as `np.interp` returns there.
    #[inline(always)]
    fn z(&self, d: f32) -> f32 {
        let x = d as f64;
        let k = ((x * BINS as f64) as usize).min(BINS - 1);
        let eq = self.slope[k] * (x - edge(k)) + self.cdf[k];
        (-(eq - 2.0)) as f32
    }
}

/// Left edge of bin k.
fn edge(k: usize) -> f64 {
    k as f64 / BINS as f64
}

/// [`depth_to_z`] eight (or four, in float64) values at a time: the same operations as
/// [`depth_to_z_scalar`] lane by lane, so the same bits (`fast_path_matches_reference`).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BINS, Equalisation, Histogram, bin};

    /// # Safety
    /// The CPU supports AVX2 and `raw.len() < i32::MAX`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn depth_to_z(raw: &[f32]) -> Option<Vec<f32>> {
        let (min, max) = finite_min_max(raw)?;
        let range = max - min;
        if range == 0.0 || !range.is_finite() {
            return None;
        }
        let mut z = vec![0f32; raw.len()];
        let hist = normalise(raw, min, range, &mut z);
        equalise(&Equalisation::new(&hist, z.len()), &mut z);
        Some(z)
    }

    /// Minimum and maximum, `None` when `raw` is empty or holds a non-finite value (then the
    /// NaN rules of `minps` do not matter: the result is not used).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finite_min_max(raw: &[f32]) -> Option<(f32, f32)> {
        let mut lo = _mm256_set1_ps(f32::INFINITY);
        let mut hi = _mm256_set1_ps(f32::NEG_INFINITY);
        // the largest |v| bit pattern: finite values stay below that of infinity
        let mut top = _mm256_setzero_si256();
        let abs = _mm256_set1_epi32(i32::MAX);
        let mut blocks = raw.chunks_exact(8);
        for b in &mut blocks {
            // SAFETY: the block holds eight f32
            let v = unsafe { _mm256_loadu_ps(b.as_ptr()) };
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
            top = _mm256_max_epu32(top, _mm256_and_si256(_mm256_castps_si256(v), abs));
        }
        let (mut lows, mut highs, mut tops) = ([0f32; 8], [0f32; 8], [0u32; 8]);
        // SAFETY: each array holds eight values
        unsafe {
            _mm256_storeu_ps(lows.as_mut_ptr(), lo);
            _mm256_storeu_ps(highs.as_mut_ptr(), hi);
            _mm256_storeu_si256(tops.as_mut_ptr().cast(), top);
        }
        let rest = blocks.remainder();
        let finite =
            tops.iter().all(|&t| t < f32::INFINITY.to_bits()) && rest.iter().all(|v| v.is_finite());
        let min = lows
            .iter()
            .chain(rest)
            .copied()
            .fold(f32::INFINITY, f32::min);
        let max = highs
            .iter()
            .chain(rest)
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        (finite && !raw.is_empty()).then_some((min, max))
    }

    /// `z = (raw − min) / range`, and the histogram of z's bins.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn normalise(raw: &[f32], min: f32, range: f32, z: &mut [f32]) -> Histogram {
        let mut hist = Histogram::new();
        let (vmin, vrange) = (_mm256_set1_ps(min), _mm256_set1_ps(range));
        let (scale, last) = (
            _mm256_set1_ps(BINS as f32),
            _mm256_set1_epi32(BINS as i32 - 1),
        );
        let mut bins = [0i32; 8];
        let mut blocks = raw.chunks_exact(8).zip(z.chunks_exact_mut(8));
        for (r, out) in &mut blocks {
            // SAFETY: both blocks hold eight f32, `bins` eight i32
            unsafe {
                let d = _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(r.as_ptr()), vmin), vrange);
                _mm256_storeu_ps(out.as_mut_ptr(), d);
                // d >= 0, so truncation is the scalar `as usize`
                let k = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_mul_ps(d, scale)), last);
                _mm256_storeu_si256(bins.as_mut_ptr().cast(), k);
            }
            for (l, &k) in bins.iter().enumerate() {
                hist.add(l % 4, k as usize);
            }
        }
        let done = raw.len() / 8 * 8;
        for (r, out) in raw[done..].iter().zip(&mut z[done..]) {
            *out = (r - min) / range;
            hist.add(0, bin(*out));
        }
        hist
    }

    /// Replaces each normalised depth by its z ([`Equalisation::z`]), four float64 lanes at a
    /// time with the table looked up by gathers. The left edge `k / 1024` is computed as
    /// `k · 2⁻¹⁰`, the same exact value.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn equalise(eq: &Equalisation, z: &mut [f32]) {
        let (scale, last) = (_mm256_set1_pd(BINS as f64), _mm_set1_epi32(BINS as i32 - 1));
        let first = _mm_setzero_si128();
        let (inv, two, sign) = (
            _mm256_set1_pd(1.0 / BINS as f64),
            _mm256_set1_pd(2.0),
            _mm256_set1_pd(-0.0),
        );
        let mut blocks = z.chunks_exact_mut(4);
        for b in &mut blocks {
            // SAFETY: the block holds four f32; k is clamped to 0..BINS, inside both tables,
            // whatever the values (a NaN or negative one included)
            unsafe {
                let x = _mm256_cvtps_pd(_mm_loadu_ps(b.as_ptr()));
                let k = _mm256_cvttpd_epi32(_mm256_mul_pd(x, scale));
                let k = _mm_max_epi32(_mm_min_epi32(k, last), first);
                let slope = _mm256_i32gather_pd::<8>(eq.slope.as_ptr(), k);
                let cdf = _mm256_i32gather_pd::<8>(eq.cdf.as_ptr(), k);
                let edge = _mm256_mul_pd(_mm256_cvtepi32_pd(k), inv);
                let e = _mm256_add_pd(_mm256_mul_pd(slope, _mm256_sub_pd(x, edge)), cdf);
                let v = _mm256_xor_pd(_mm256_sub_pd(e, two), sign);
                _mm_storeu_ps(b.as_mut_ptr(), _mm256_cvtpd_ps(v));
            }
        }
        for d in blocks.into_remainder() {
            *d = eq.z(*d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector equalisation clamps its table index: a NaN or negative value (which its
    /// caller never passes today) reads bin 0 as the scalar path does, not memory before it.
    #[test]
    fn equalisation_index_is_clamped_inside_the_table() {
        let mut hist = Histogram::new();
        for k in 0..BINS {
            hist.add(0, k);
        }
        let eq = Equalisation::new(&hist, BINS);
        let values = [-1.0e9f32, -0.5, f32::NAN, 0.25, 0.999, 1.0, 2.0, -3.0];
        let want: Vec<u32> = values.iter().map(|&d| eq.z(d).to_bits()).collect();
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has("avx2") {
            let mut got = values.to_vec();
            // SAFETY: the CPU supports AVX2, checked just above
            unsafe { avx2::equalise(&eq, &mut got) };
            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn invalid_maps_fall_back() {
        assert!(depth_to_z(&[]).is_none());
        assert!(depth_to_z(&[3.0; 16]).is_none());
        assert!(depth_to_z(&[1.0, f32::NAN, 2.0]).is_none());
        assert!(depth_to_z(&[1.0, f32::INFINITY, 2.0]).is_none());
        assert!(depth_to_z(&[-f32::MAX, f32::MAX]).is_none());
    }

    /// The straightforward form of [`depth_to_z`] (`np.interp` per pixel with its division):
    /// the AVX2 and the scalar path must give the same bits.
    fn depth_to_z_reference(raw: &[f32]) -> Option<Vec<f32>> {
        if raw.is_empty() || raw.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let min = raw.iter().copied().fold(f32::INFINITY, f32::min);
        let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let range = max - min;
        if range == 0.0 || !range.is_finite() {
            return None;
        }
        let norm: Vec<f32> = raw.iter().map(|v| (v - min) / range).collect();
        let mut hist = [0u64; BINS];
        for d in &norm {
            hist[((d * BINS as f32) as usize).min(BINS - 1)] += 1;
        }
        let total = norm.len() as f64;
        let mut cdf = [0f64; BINS];
        let mut acc = 0u64;
        for (c, h) in cdf.iter_mut().zip(hist) {
            acc += h;
            *c = acc as f64 / total;
        }
        let edge = |k: usize| k as f64 / BINS as f64;
        Some(
            norm.iter()
                .map(|&d| {
                    let x = d as f64;
                    let k = (x * BINS as f64) as usize;
                    let eq = if k >= BINS - 1 || x == edge(k) {
                        cdf[k.min(BINS - 1)]
                    } else {
                        let slope = (cdf[k + 1] - cdf[k]) / (edge(k + 1) - edge(k));
                        slope * (x - edge(k)) + cdf[k]
                    };
                    (-(eq - 2.0)) as f32
                })
                .collect(),
        )
    }

    #[test]
    fn fast_path_matches_reference() {
        let smooth: Vec<f32> = (0..517 * 301)
            .map(|i| {
                let (x, y) = ((i % 517) as f32 / 517.0, (i / 517) as f32 / 301.0);
                2.0 + 3.0 * y
                    + 4.0 * (-((x - 0.35) / 0.18).powi(2) - ((y - 0.45) / 0.25).powi(2)).exp()
            })
            .collect();
        // values on the bin edges exactly, a few bins only, negative values, odd lengths
        let edges: Vec<f32> = (0..4099).map(|i| (i % 1025) as f32 / 1024.0).collect();
        let steps: Vec<f32> = (0..999).map(|i| -5.0 + (i / 100) as f32).collect();
        let noise: Vec<f32> = (0..12345u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 8) as f32 * 1e-3 - 7.0)
            .collect();
        for map in [
            smooth,
            edges,
            steps,
            noise,
            vec![1.0, 2.0],
            vec![0.0, -0.0, 1.0],
            (0..37)
                .map(|i| if i == 30 { f32::NAN } else { i as f32 })
                .collect(),
            (0..37)
                .map(|i| if i == 3 { f32::INFINITY } else { i as f32 })
                .collect(),
            vec![-f32::MAX, 0.0, f32::MAX, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        ] {
            let bits =
                |z: Option<Vec<f32>>| z.map(|z| z.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            let slow = bits(depth_to_z_reference(&map));
            assert!(
                bits(depth_to_z(&map)) == slow,
                "map of {} values",
                map.len()
            );
            assert!(
                bits(depth_to_z_scalar(&map)) == slow,
                "map of {} values",
                map.len()
            );
        }
    }

    #[test]
    fn nearest_is_one_farthest_is_two() {
        let z = depth_to_z(&[10.0, 0.0, 5.0, 2.5]).unwrap();
        assert_eq!(z[0], 1.0);
        assert!(z[1] > 1.7 && z[1] <= 2.0, "{z:?}");
        assert!(z[2] > z[0] && z[2] < z[3] && z[3] < z[1], "{z:?}");
    }
}
