//! Guided images (Deforum's "looper"): which guide image applies at a frame, the blend factor,
//! the blend of a frame's init with its guide image and the colour correction toward it.
//!
//! Pure functions on images and numbers: no file reading, no scene, no render loop (the loop
//! in `render` calls them). Formulas follow Deforum's `generate_inner` and A1111's colour
//! correction, as ../docs/deforum-differences.md and docs/scene-format.md ("Guided images") state.

use image::RgbImage;

use crate::effects::color::{ColorTarget, MatchSpace};
use crate::schedule::expr::Expr;

/// Deforum's segment length where no two keys enclose a frame.
const DEFAULT_SEGMENT: i64 = 25;
/// Deforum's blend factor outside the tween of a segment.
const REST_FACTOR: f64 = 0.07;
/// The most guide images a scene may key (each is loaded once per render).
pub const MAX_GUIDES: usize = 1000;

/// The guide images of `init_images`, in the order the JSON writes them (not sorted, as Deforum).
#[derive(Debug, Clone, PartialEq)]
pub struct Guides {
    /// Each key's frame (Deforum's `swap`).
    frames: Vec<i64>,
    /// Each key's image as written (a path relative to the scene file).
    images: Vec<String>,
}

impl Guides {
    /// Parses Deforum's `init_images` JSON text (`{"0": "a.png", "max_f/2": "b.png"}`): a
    /// whole-number key is the frame; any other key is an expression in `max_f` (=
    /// `max_frames - 1`) truncated to a whole number, as Deforum's `int(numexpr(key))`.
    ///
    /// # Errors
    /// Text that is not a JSON object of strings, no key, more than [`MAX_GUIDES`] keys, a key
    /// that does not evaluate to a finite number, a URL (download it and give the file), or an
    /// empty image name. Messages say which key.
    pub fn parse(json: &str, max_frames: usize) -> Result<Guides, String> {
        let pairs = ordered_pairs(json)?;
        if pairs.is_empty() {
            return Err("has no key: give at least `{\"0\": \"image.png\"}`".into());
        }
        if pairs.len() > MAX_GUIDES {
            return Err(format!(
                "has {} keys: at most {MAX_GUIDES} guide images",
                pairs.len()
            ));
        }
        let max_f = max_frames.saturating_sub(1) as f64;
        let mut frames = Vec::with_capacity(pairs.len());
        let mut images = Vec::with_capacity(pairs.len());
        for (key, image) in pairs {
            let frame = match key.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    let e = Expr::parse(&key, &["max_f"])
                        .map_err(|e| format!("key \"{key}\": {}", e.message))?;
                    let v = e.eval(&[max_f]).trunc();
                    if !v.is_finite() || v.abs() > 1e12 {
                        return Err(format!(
                            "key \"{key}\" gives {v}: a key must be a frame number"
                        ));
                    }
                    v as i64
                }
            };
            let lower = image.trim().to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                return Err(format!(
                    "key \"{key}\": \"{image}\" is a URL; anim fetches nothing over the network: \
                     download the image and give its path (relative to the scene file)"
                ));
            }
            if image.trim().is_empty() {
                return Err(format!("key \"{key}\": the image path is empty"));
            }
            frames.push(frame);
            images.push(image);
        }
        Ok(Guides { frames, images })
    }

    /// Each key's frame, in the JSON's order.
    pub fn frames(&self) -> &[i64] {
        &self.frames
    }

    /// Each key's image as written, in the JSON's order.
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// The index of the guide image used at frame `f`: the number of keys after the first one
    /// whose frame is at most `f` (Deforum's `choose`), so it is always a valid index.
    pub fn index_at(&self, f: usize) -> usize {
        let f = f as i64;
        let n = self.frames[1..].iter().filter(|&&k| f >= k).count();
        n.min(self.frames.len() - 1)
    }

    /// The segment length at frame `f`: `fe - fs` of the last consecutive pair of keys with
    /// `fs <= f <= fe`, else 25 (Deforum's `skipFrame`). May be 0 (two equal keys).
    pub fn segment_at(&self, f: usize) -> i64 {
        let f = f as i64;
        let mut seg = DEFAULT_SEGMENT;
        for w in self.frames.windows(2) {
            if w[0] <= f && f <= w[1] {
                seg = w[1] - w[0];
            }
        }
        seg
    }

    /// Deforum's blend factor at frame `f` (see [`blend_factor`]).
    ///
    /// # Errors
    /// A zero segment (two consecutive keys on the same frame) or tween length, where Deforum
    /// divides by zero.
    pub fn factor_at(&self, f: usize, tweening: f64, max: f64, slope: f64) -> Result<f64, String> {
        blend_factor(f, self.segment_at(f), tweening, max, slope)
    }
}

/// Reads a JSON object of strings keeping the keys' order.
fn ordered_pairs(json: &str) -> Result<Vec<(String, String)>, String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object of frame → image path")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                out.push((k, v));
                if out.len() > MAX_GUIDES {
                    break;
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.deserialize_map(Pairs)
        .map_err(|e| format!("is not a JSON object of frame → image path ({e})"))
}

/// Python's `%` for floats: the remainder with the divisor's sign.
fn py_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

/// Deforum's blend factor at frame `f` with segment length `seg` and tween length `tweening`:
/// `max - slope·cos((f mod tweening) / (tweening / 2))` when `f mod seg <= tweening`, else 0.07.
///
/// # Errors
/// `seg == 0` or `tweening == 0` (Deforum divides by zero), or a non-finite input.
pub fn blend_factor(
    f: usize,
    seg: i64,
    tweening: f64,
    max: f64,
    slope: f64,
) -> Result<f64, String> {
    if seg == 0 {
        return Err(format!(
            "frame {f}: two consecutive guide-image keys are the same frame (segment of 0 \
             frames); give each key its own frame"
        ));
    }
    if tweening == 0.0 || !tweening.is_finite() {
        return Err(format!(
            "frame {f}: tweening_frames is {tweening}; it must be a finite number other than 0"
        ));
    }
    let fm = py_mod(f as f64, seg as f64);
    let bf = if fm <= tweening {
        max - slope * (py_mod(f as f64, tweening) / (tweening / 2.0)).cos()
    } else {
        REST_FACTOR
    };
    if !bf.is_finite() {
        return Err(format!("frame {f}: the blend factor is {bf}"));
    }
    Ok(bf)
}

/// Pillow's `Image.blend(a, b, alpha)`: per value `a + alpha·(b − a)` in 32-bit floats,
/// truncated to u8; outside `0..=1` (extrapolation) clamped to 0..=255 first. Sizes must match.
pub fn pil_blend(a: &RgbImage, b: &RgbImage, alpha: f64) -> RgbImage {
    assert_eq!(a.dimensions(), b.dimensions(), "pil_blend: sizes differ");
    let al = alpha as f32;
    let inside = (0.0..=1.0).contains(&alpha);
    let mut out = a.clone();
    for (o, &y) in out.iter_mut().zip(b.iter()) {
        let x = *o;
        let t = x as f32 + al * (y as f32 - x as f32);
        *o = if inside {
            t as u8
        } else if t <= 0.0 {
            0
        } else if t >= 255.0 {
            255
        } else {
            t as u8
        };
    }
    out
}

/// The colour-correction target of a looper frame: `blend(init, guide, factor)`, with `init`
/// the already blended init (Deforum's `color_correction_factor`).
pub fn correction_target(init: &RgbImage, guide: &RgbImage, factor: f64) -> RgbImage {
    pil_blend(init, guide, factor)
}

/// A1111's colour correction of a painted frame `out` toward `target`: the histograms of
/// OpenCV's 8-bit LAB matched to the target's (scikit-image `match_histograms`), then the
/// painted frame's luminosity put back (blendmodes' LUMINOSITY: W3C SetLum with luma weights
/// 0.299, 0.587, 0.114, truncated to u8 as A1111's pinned blendmodes 2022 does).
pub fn color_correct(out: &RgbImage, target: &RgbImage) -> RgbImage {
    let matched = ColorTarget::new(target, MatchSpace::Lab).apply(out);
    keep_luminosity(&matched, out)
}

fn lum(c: [f64; 3]) -> f64 {
    c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114
}

/// blendmodes' luminosity blend: the colours of `colors` with the luminosity of `luma`.
fn keep_luminosity(colors: &RgbImage, luma: &RgbImage) -> RgbImage {
    let mut res = colors.clone();
    for (p, q) in res.pixels_mut().zip(luma.pixels()) {
        let mut c = p.0.map(|v| v as f64 / 255.0);
        let l = lum(q.0.map(|v| v as f64 / 255.0));
        let d = l - lum(c);
        for v in &mut c {
            *v += d;
        }
        let l = lum(c);
        let mn = c[0].min(c[1]).min(c[2]);
        let mx = c[0].max(c[1]).max(c[2]);
        if mn < 0.0 {
            c = c.map(|v| l + (v - l) * l / (l - mn));
        }
        if mx > 1.0 {
            c = c.map(|v| l + (v - l) * (1.0 - l) / (mx - l));
        }
        // blendmodes 2022 (A1111's pinned version): clipped to 0..=1, times 255, truncated
        // (`astype(np.uint8)`; later versions round); NaN (a zero division) gives 0
        p.0 = c.map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = r#"{"0": "a.png", "max_f/4-5": "b.png", "max_f/2-10": "c.png", "3*max_f/4-15": "d.png", "max_f-20": "e.png"}"#;

    #[test]
    fn default_keys_and_factors_match_deforum() {
        let g = Guides::parse(DEFAULT, 120).unwrap();
        assert_eq!(g.frames(), &[0, 24, 49, 74, 99]);
        let bf = |f| g.factor_at(f, 20.0, 0.35, 0.25).unwrap();
        for (f, want) in [
            (1, 0.101),
            (10, 0.215),
            (19, 0.431),
            (20, 0.10),
            (21, 0.07),
            (24, 0.07),
            (25, 0.131),
        ] {
            assert!((bf(f) - want).abs() < 5e-4, "frame {f}: {}", bf(f));
        }
        assert_eq!(g.index_at(0), 0);
        assert_eq!(g.index_at(23), 0);
        assert_eq!(g.index_at(24), 1);
        assert_eq!(g.index_at(119), 4);
        assert_eq!(g.segment_at(110), 25);
    }

    #[test]
    fn bad_keys_are_refused_naming_them() {
        for (json, want) in [
            (r#"{"0": "https://x/a.png"}"#, "URL"),
            (r#"{}"#, "no key"),
            (r#"{"max_g": "a.png"}"#, "max_g"),
            (r#"["a.png"]"#, "JSON object"),
            (r#"{"0": ""}"#, "empty"),
        ] {
            let e = Guides::parse(json, 10).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
        let g = Guides::parse(r#"{"0": "a.png", "0 ": "b.png"}"#, 10).unwrap();
        assert!(
            g.factor_at(0, 5.0, 0.3, 0.2)
                .unwrap_err()
                .contains("same frame")
        );
        assert!(blend_factor(3, 10, 0.0, 0.3, 0.2).is_err());
    }

    #[test]
    fn blend_truncates_and_clamps_as_pillow() {
        let a = RgbImage::from_raw(1, 1, vec![10, 200, 255]).unwrap();
        let b = RgbImage::from_raw(1, 1, vec![20, 100, 0]).unwrap();
        assert_eq!(pil_blend(&a, &b, 0.35).into_raw(), vec![13, 165, 165]);
        assert_eq!(pil_blend(&a, &b, 1.5).into_raw(), vec![25, 50, 0]);
        assert_eq!(pil_blend(&a, &b, -2.0).into_raw(), vec![0, 255, 255]);
    }
}
