//! Fitting images and control maps to sizes as the A1111 ControlNet extension does: the
//! preprocessors' input resize (`resize_image_with_pad`: short side to the processor
//! resolution, edge padding to a multiple of 64), the three resize modes that bring a map to the
//! generation size (`detectmap_proc`), its `high_quality_resize` (including the binary-map
//! path: Otsu, edge NMS and thinning) and `pixel_perfect_resolution`. Written from the
//! extension's behaviour; every resize is OpenCV's ([`super::resize`]).

use std::fmt;
use std::str::FromStr;

use image::RgbImage;

#[cfg(doc)]
use super::MAX_SIDE;
use super::resize::{Interpolation, resize};
use super::thin;
use super::{PreprocessError, check_side};

/// How a control map is brought to the generation size (the A1111 extension's resize modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ResizeMode {
    /// "Just Resize": stretched to the target size, aspect ratio not kept.
    JustResize,
    /// "Crop and Resize" (Deforum's "Inner Fit (Scale to Fit)"): scaled to cover the target,
    /// the overflow cropped evenly from both sides.
    #[default]
    CropAndResize,
    /// "Resize and Fill" (Deforum's "Outer Fit (Shrink to Fit)"): scaled to fit inside the
    /// target, the rest filled with the median colour of the map's border pixels.
    ResizeAndFill,
}

impl ResizeMode {
    /// Every accepted name, for messages: the extension's names, Deforum's, the extension's
    /// other aliases and the short ones (case and surrounding spaces are ignored).
    pub const NAMES: [&'static str; 11] = [
        "Just Resize",
        "Crop and Resize",
        "Resize and Fill",
        "Inner Fit (Scale to Fit)",
        "Outer Fit (Shrink to Fit)",
        "Scale to Fit (Inner Fit)",
        "Envelope (Outer Fit)",
        "Just Resize (Latent upscale)",
        "resize",
        "crop",
        "fill",
    ];

    /// The extension's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            ResizeMode::JustResize => "Just Resize",
            ResizeMode::CropAndResize => "Crop and Resize",
            ResizeMode::ResizeAndFill => "Resize and Fill",
        }
    }
}

impl fmt::Display for ResizeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ResizeMode {
    type Err = PreprocessError;

    /// From any name in [`ResizeMode::NAMES`] (also the numbers 0-3 the extension's API takes,
    /// 3 being its latent-upscale variant of Just Resize).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase();
        Ok(match key.as_str() {
            "just resize" | "resize" | "just resize (latent upscale)" | "0" | "3" => {
                ResizeMode::JustResize
            }
            "crop and resize"
            | "inner fit (scale to fit)"
            | "scale to fit (inner fit)"
            | "crop"
            | "inner fit"
            | "1" => ResizeMode::CropAndResize,
            "resize and fill"
            | "outer fit (shrink to fit)"
            | "envelope (outer fit)"
            | "fill"
            | "outer fit"
            | "2" => ResizeMode::ResizeAndFill,
            _ => {
                return Err(PreprocessError::UnknownName {
                    what: "resize mode",
                    name: s.to_string(),
                    accepted: format!(
                        "{} (or the extension's numbers 0-3)",
                        ResizeMode::NAMES.join(", ")
                    ),
                });
            }
        })
    }
}

/// Rounds half to even, as numpy's `np.round` (the extension's `int(np.round(x))`).
fn round_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// The processor resolution the extension's "Pixel Perfect" picks for a `raw_w`×`raw_h` input
/// and a `target_w`×`target_h` generation: the input's short side scaled by the factor that
/// fits the target (`min` of the two axis factors for Resize and Fill, `max` otherwise),
/// rounded half to even.
pub fn pixel_perfect_resolution(
    raw_w: u32,
    raw_h: u32,
    target_w: u32,
    target_h: u32,
    mode: ResizeMode,
) -> u32 {
    let (rw, rh) = (raw_w.max(1) as f64, raw_h.max(1) as f64);
    let k0 = target_h as f64 / rh;
    let k1 = target_w as f64 / rw;
    let k = if mode == ResizeMode::ResizeAndFill {
        k0.min(k1)
    } else {
        k0.max(k1)
    };
    round_even(k * rw.min(rh)).clamp(0, u32::MAX as i64) as u32
}

/// An image prepared for a preprocessor the way the extension's `resize_image_with_pad` does
/// it: the short side scaled to the processor resolution, then the right and bottom edges
/// repeated up to multiples of 64. [`Padded::crop`] takes the result back to the scaled size.
#[derive(Debug, Clone)]
pub struct Padded {
    /// The scaled and padded image (both sides multiples of 64).
    pub image: RgbImage,
    /// Width of the scaled image before padding.
    pub width: u32,
    /// Height of the scaled image before padding.
    pub height: u32,
}

impl Padded {
    /// The top-left `width`×`height` of `map` (a preprocessor's output at the padded size, or
    /// larger); a smaller map comes back as it is.
    pub fn crop(&self, map: &RgbImage) -> RgbImage {
        let (w, h) = (self.width.min(map.width()), self.height.min(map.height()));
        let (row, stride) = (w as usize * 3, map.width() as usize * 3);
        let mut out = Vec::with_capacity(row * h as usize);
        for line in map.as_raw().chunks_exact(stride).take(h as usize) {
            out.extend_from_slice(&line[..row]);
        }
        RgbImage::from_raw(w, h, out).expect("w·h·3 values")
    }
}

/// The extension's `resize_image_with_pad(img, res)`: factor `k = res / min(w, h)`, size
/// `round(w·k)`×`round(h·k)` (half to even), OpenCV `INTER_CUBIC` when `k > 1` else
/// `INTER_AREA`, then edge padding to multiples of 64.
///
/// # Errors
/// An empty image, `res` outside 1..=[`MAX_SIDE`], or a scaled side beyond [`MAX_SIDE`].
pub fn resize_with_pad(img: &RgbImage, res: u32) -> Result<Padded, PreprocessError> {
    let (w, h) = img.dimensions();
    check_side("image width", w)?;
    check_side("image height", h)?;
    check_side("processor resolution", res)?;
    let k = res as f64 / w.min(h) as f64;
    let tw = round_even(w as f64 * k);
    let th = round_even(h as f64 * k);
    let side = |what, v: i64| -> Result<u32, PreprocessError> {
        let v = u32::try_from(v).unwrap_or(u32::MAX);
        check_side(what, v)?;
        Ok(v)
    };
    let (tw, th) = (side("scaled width", tw)?, side("scaled height", th)?);
    let interpolation = if k > 1.0 {
        Interpolation::Cubic
    } else {
        Interpolation::Area
    };
    // at the same size OpenCV copies; here the padding copies straight from the input
    let resized;
    let scaled: &[u8] = if (tw, th) == (w, h) {
        img.as_raw()
    } else {
        resized = resize(
            img.as_raw(),
            w as usize,
            h as usize,
            3,
            tw as usize,
            th as usize,
            interpolation,
        );
        &resized
    };
    let (pw, ph) = (tw.div_ceil(64) * 64, th.div_ceil(64) * 64);
    let (twu, pwu) = (tw as usize * 3, pw as usize * 3);
    let mut padded = vec![0u8; pwu * ph as usize];
    for (y, row) in padded.chunks_exact_mut(pwu).enumerate() {
        let sy = y.min(th as usize - 1);
        let src = &scaled[sy * twu..(sy + 1) * twu];
        row[..twu].copy_from_slice(src);
        let last = &src[twu - 3..];
        for px in row[twu..].chunks_exact_mut(3) {
            px.copy_from_slice(last);
        }
    }
    let image = RgbImage::from_raw(pw, ph, padded).expect("pw·ph·3 values");
    Ok(Padded {
        image,
        width: tw,
        height: th,
    })
}

/// Number of distinct colours of `map`, counted up to `limit` (larger counts come back as
/// `limit`). Runs of one colour cost one comparison per pixel.
fn colour_count(map: &RgbImage, limit: usize) -> usize {
    let mut seen: Vec<[u8; 3]> = Vec::new();
    let mut last = None;
    for p in map.pixels() {
        if last == Some(p.0) {
            continue;
        }
        last = Some(p.0);
        if !seen.contains(&p.0) {
            seen.push(p.0);
            if seen.len() >= limit {
                break;
            }
        }
    }
    seen.len()
}

/// The extension's `high_quality_resize` of a control map to `w`×`h`: nothing when the size
/// matches; OpenCV `INTER_NEAREST` for maps of 3 to 199 colours (segmentation-like), else
/// `INTER_AREA` when the pixel count shrinks and `INTER_CUBIC` otherwise. Binary maps (two
/// colours, one below 16 and one above 240, such as Canny edges) are then averaged to one
/// channel and made binary again: with Otsu's threshold, or, when they are one-pixel edges,
/// by an edge NMS, Otsu and a thinning (plus pruning when enlarging).
///
/// # Errors
/// A target side outside 1..=[`MAX_SIDE`] or an empty map.
pub fn high_quality_resize(map: &RgbImage, w: u32, h: u32) -> Result<RgbImage, PreprocessError> {
    check_side("map width", map.width())?;
    check_side("map height", map.height())?;
    check_side("target width", w)?;
    check_side("target height", h)?;
    let (ow, oh) = map.dimensions();
    if (ow, oh) == (w, h) {
        return Ok(map.clone());
    }
    let (old_px, new_px) = (ow as u64 * oh as u64, w as u64 * h as u64);
    let colours = colour_count(map, 200);
    let raw = map.as_raw();
    let binary = colours == 2
        && raw.iter().copied().min().unwrap_or(0) < 16
        && raw.iter().copied().max().unwrap_or(0) > 240;
    let interpolation = if colours > 2 && colours < 200 {
        Interpolation::Nearest
    } else if new_px < old_px {
        Interpolation::Area
    } else {
        Interpolation::Cubic
    };
    let (wu, hu) = (w as usize, h as usize);
    let (owu, ohu) = (ow as usize, oh as usize);
    if !binary {
        let resized = resize(raw, owu, ohu, 3, wu, hu, interpolation);
        return Ok(RgbImage::from_raw(w, h, resized).expect("w·h·3 values"));
    }
    // a grey map (the usual Canny edges) is resized as one channel: each channel would come
    // out the same, and their mean is that channel
    let grey_map = raw.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]);
    let (one_pixel_edge, grey) = if grey_map {
        let g: Vec<u8> = raw.iter().step_by(3).copied().collect();
        (
            thin::is_one_pixel_edge(&g, owu, ohu, 1),
            resize(&g, owu, ohu, 1, wu, hu, interpolation),
        )
    } else {
        let resized = resize(raw, owu, ohu, 3, wu, hu, interpolation);
        // mean of the channels in f32, truncated: the integer division of their sum by 3
        let g = resized
            .chunks_exact(3)
            .map(|p| ((p[0] as u16 + p[1] as u16 + p[2] as u16) / 3) as u8)
            .collect();
        (thin::is_one_pixel_edge(raw, owu, ohu, 3), g)
    };
    let binary = if one_pixel_edge {
        let mut b = thin::otsu_binary(&thin::nake_nms(&grey, wu, hu));
        thin::lvmin_thin(&mut b, wu, hu, new_px > old_px);
        b
    } else {
        thin::otsu_binary(&grey)
    };
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let v = binary[y as usize * wu + x as usize];
        image::Rgb([v, v, v])
    }))
}

/// Per-channel median of the map's border (top row, bottom row, left column, right column,
/// corners counted twice), as numpy's `median` gives it (the mean of the two middle values of
/// an even count), truncated to 8 bits.
fn border_median(map: &RgbImage) -> [u8; 3] {
    let (w, h) = map.dimensions();
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut v: Vec<u8> = Vec::with_capacity(2 * (w + h) as usize);
        for x in 0..w {
            v.push(map.get_pixel(x, 0).0[c]);
        }
        for x in 0..w {
            v.push(map.get_pixel(x, h - 1).0[c]);
        }
        for y in 0..h {
            v.push(map.get_pixel(0, y).0[c]);
        }
        for y in 0..h {
            v.push(map.get_pixel(w - 1, y).0[c]);
        }
        v.sort_unstable();
        let n = v.len();
        *o = if n % 2 == 1 {
            v[n / 2]
        } else {
            ((v[n / 2 - 1] as u16 + v[n / 2] as u16) / 2) as u8
        };
    }
    out
}

/// A control map brought to the generation size `w`×`h` as the extension's `detectmap_proc`
/// does: [`high_quality_resize`] to the target (Just Resize), to the covering size then a
/// centred crop (Crop and Resize), or to the fitting size pasted centred on the median border
/// colour (Resize and Fill). Scaled sizes are `round(side·k)`, half to even.
///
/// # Errors
/// A side outside 1..=[`MAX_SIDE`] (map, target, or the scaled map).
pub fn fit(map: &RgbImage, mode: ResizeMode, w: u32, h: u32) -> Result<RgbImage, PreprocessError> {
    check_side("map width", map.width())?;
    check_side("map height", map.height())?;
    check_side("target width", w)?;
    check_side("target height", h)?;
    if mode == ResizeMode::JustResize {
        return high_quality_resize(map, w, h);
    }
    let (ow, oh) = (map.width() as f64, map.height() as f64);
    let k0 = h as f64 / oh;
    let k1 = w as f64 / ow;
    let k = if mode == ResizeMode::ResizeAndFill {
        k0.min(k1)
    } else {
        k0.max(k1)
    };
    let side = |v: f64| u32::try_from(round_even(v)).unwrap_or(0);
    let (nw, nh) = (side(ow * k), side(oh * k));
    let scaled = high_quality_resize(map, nw, nh)?;
    Ok(if mode == ResizeMode::ResizeAndFill {
        let mut out = RgbImage::from_pixel(w, h, image::Rgb(border_median(map)));
        let (px, py) = (w.saturating_sub(nw) / 2, h.saturating_sub(nh) / 2);
        image::imageops::replace(&mut out, &scaled, px as i64, py as i64);
        out
    } else {
        let (px, py) = (nw.saturating_sub(w) / 2, nh.saturating_sub(h) / 2);
        // the extension slices, so a scaled map a pixel short stays short; pad it instead
        let crop = image::imageops::crop_imm(&scaled, px, py, w, h).to_image();
        if crop.dimensions() == (w, h) {
            crop
        } else {
            RgbImage::from_fn(w, h, |x, y| {
                *crop.get_pixel(x.min(crop.width() - 1), y.min(crop.height() - 1))
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_mode_names_and_aliases() {
        for (name, mode) in [
            ("Just Resize", ResizeMode::JustResize),
            ("resize", ResizeMode::JustResize),
            ("Inner Fit (Scale to Fit)", ResizeMode::CropAndResize),
            ("crop", ResizeMode::CropAndResize),
            ("Crop and Resize", ResizeMode::CropAndResize),
            ("Outer Fit (Shrink to Fit)", ResizeMode::ResizeAndFill),
            (" FILL ", ResizeMode::ResizeAndFill),
            ("Envelope (Outer Fit)", ResizeMode::ResizeAndFill),
            ("2", ResizeMode::ResizeAndFill),
        ] {
            assert_eq!(name.parse::<ResizeMode>().unwrap(), mode, "{name}");
            assert_eq!(mode.name().parse::<ResizeMode>().unwrap(), mode);
        }
        let e = "stretch".parse::<ResizeMode>().unwrap_err().to_string();
        assert!(
            e.contains("stretch") && e.contains("Outer Fit (Shrink to Fit)"),
            "{e}"
        );
    }

    #[test]
    fn pixel_perfect_follows_the_mode() {
        // 1024x768 input, 512x512 generation
        assert_eq!(
            pixel_perfect_resolution(1024, 768, 512, 512, ResizeMode::JustResize),
            512
        );
        assert_eq!(
            pixel_perfect_resolution(1024, 768, 512, 512, ResizeMode::CropAndResize),
            512
        );
        assert_eq!(
            pixel_perfect_resolution(1024, 768, 512, 512, ResizeMode::ResizeAndFill),
            384
        );
    }

    #[test]
    fn padding_repeats_the_edges_to_multiples_of_64() {
        let img = RgbImage::from_fn(100, 50, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let p = resize_with_pad(&img, 50).unwrap();
        assert_eq!((p.width, p.height), (100, 50));
        assert_eq!(p.image.dimensions(), (128, 64));
        assert_eq!(p.image.get_pixel(120, 60).0, [99, 49, 7]);
        assert_eq!(p.crop(&p.image), img);
        assert!(resize_with_pad(&img, 0).is_err());
    }

    #[test]
    fn fill_uses_the_border_median() {
        let mut map = RgbImage::from_pixel(4, 2, image::Rgb([10, 20, 30]));
        map.put_pixel(0, 0, image::Rgb([200, 200, 200]));
        let out = fit(&map, ResizeMode::ResizeAndFill, 8, 8).unwrap();
        assert_eq!(out.dimensions(), (8, 8));
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30]);
    }
}
