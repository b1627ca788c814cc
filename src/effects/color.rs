//! Colour coherence: histogram matching of a frame to a colour sample, per channel, in RGB, HSV or
//! LAB, as Deforum's `maintain_colors` (scikit-image `match_histograms` over OpenCV's 8-bit colour
//! spaces).
//!
//! HSV follows OpenCV's 8-bit integer conversion exactly; LAB uses OpenCV's formulas in floating
//! point (OpenCV's 8-bit LAB goes through lookup tables, so single values may differ by one level).
//! Deforum converts BGR arrays with RGB codes, so its LAB/HSV are computed from swapped channels;
//! anim converts the true colours (docs/deforum-differences.md).

use image::RgbImage;

/// The colour space histograms are matched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchSpace {
    /// Per R, G, B channel.
    Rgb,
    /// Per H, S, V channel (OpenCV 8-bit HSV, H in 0..180).
    Hsv,
    /// Per L, a, b channel (OpenCV 8-bit LAB).
    Lab,
}

/// Matches the histogram of each channel of `img` (in `space`) to the same channel of `sample`.
pub fn match_colors(img: &RgbImage, sample: &RgbImage, space: MatchSpace) -> RgbImage {
    let (to, from): (fn([u8; 3]) -> [u8; 3], fn([u8; 3]) -> [u8; 3]) = match space {
        MatchSpace::Rgb => (|p| p, |p| p),
        MatchSpace::Hsv => (rgb_to_hsv, hsv_to_rgb),
        MatchSpace::Lab => (rgb_to_lab, lab_to_rgb),
    };
    let src: Vec<[u8; 3]> = img.pixels().map(|p| to(p.0)).collect();
    let tmpl: Vec<[u8; 3]> = sample.pixels().map(|p| to(p.0)).collect();
    let mut luts = [[0u8; 256]; 3];
    for (c, lut) in luts.iter_mut().enumerate() {
        *lut = match_channel(src.iter().map(|p| p[c]), tmpl.iter().map(|p| p[c]));
    }
    let mut out = RgbImage::new(img.width(), img.height());
    for (o, s) in out.pixels_mut().zip(&src) {
        o.0 = from([luts[0][s[0] as usize], luts[1][s[1] as usize], luts[2][s[2] as usize]]);
    }
    out
}

/// scikit-image's `_match_cumulative_cdf` for uint8 data, as a lookup table (values truncated to
/// uint8 as `match_histograms` does when it writes into a uint8 array).
fn match_channel(src: impl Iterator<Item = u8>, tmpl: impl Iterator<Item = u8>) -> [u8; 256] {
    let mut sc = [0u64; 256];
    let mut tc = [0u64; 256];
    let mut sn = 0u64;
    let mut tn = 0u64;
    for v in src {
        sc[v as usize] += 1;
        sn += 1;
    }
    for v in tmpl {
        tc[v as usize] += 1;
        tn += 1;
    }
    let mut lut = [0u8; 256];
    if sn == 0 || tn == 0 {
        return std::array::from_fn(|i| i as u8);
    }
    // template: quantiles of the values that occur
    let mut tq = Vec::new();
    let mut tv = Vec::new();
    let mut acc = 0u64;
    for (v, &c) in tc.iter().enumerate() {
        if c > 0 {
            acc += c;
            tq.push(acc as f64 / tn as f64);
            tv.push(v as f64);
        }
    }
    let mut acc = 0u64;
    for (v, slot) in lut.iter_mut().enumerate() {
        acc += sc[v];
        let q = acc as f64 / sn as f64;
        *slot = interp(q, &tq, &tv) as u8;
    }
    lut
}

/// `numpy.interp` for increasing `xp`.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[xp.len() - 1] {
        return fp[fp.len() - 1];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

const HSV_SHIFT: i32 = 12;

fn hsv_tables() -> &'static ([i32; 256], [i32; 256]) {
    static T: std::sync::OnceLock<([i32; 256], [i32; 256])> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut sdiv = [0i32; 256];
        let mut hdiv = [0i32; 256];
        for i in 1..256 {
            sdiv[i] = ((255 << HSV_SHIFT) as f64 / i as f64).round() as i32;
            hdiv[i] = ((180 << HSV_SHIFT) as f64 / (6.0 * i as f64)).round() as i32;
        }
        (sdiv, hdiv)
    })
}

/// OpenCV `COLOR_RGB2HSV` for 8-bit data (integer arithmetic, H in 0..180).
pub fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (sdiv, hdiv) = hsv_tables();
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let v = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let diff = v - vmin;
    let vr = if v == r { -1 } else { 0 };
    let vg = if v == g { -1 } else { 0 };
    let s = (diff * sdiv[v as usize] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    let mut h = (vr & (g - b)) + (!vr & ((vg & (b - r + 2 * diff)) + (!vg & (r - g + 4 * diff))));
    h = (h * hdiv[diff as usize] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h as u8, s as u8, v as u8]
}

/// OpenCV `COLOR_HSV2RGB` for 8-bit data.
pub fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    let (mut h, s, v) = (h as f32, s as f32 * (1.0 / 255.0), v as f32 * (1.0 / 255.0));
    let (r, g, b);
    if s == 0.0 {
        (r, g, b) = (v, v, v);
    } else {
        const SECTORS: [[usize; 3]; 6] = [[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]];
        h *= 6.0 / 180.0;
        while h < 0.0 {
            h += 6.0;
        }
        while h >= 6.0 {
            h -= 6.0;
        }
        let sector = (h.floor() as usize).min(5);
        h -= sector as f32;
        let tab = [v, v * (1.0 - s), v * (1.0 - s * h), v * (1.0 - s * (1.0 - h))];
        let idx = SECTORS[sector];
        (b, g, r) = (tab[idx[0]], tab[idx[1]], tab[idx[2]]);
    }
    let q = |x: f32| (x * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

const RGB2XYZ: [f64; 9] = [0.412453, 0.357580, 0.180423, 0.212671, 0.715160, 0.072169, 0.019334, 0.119193, 0.950227];
const XYZ2RGB: [f64; 9] = [3.240479, -1.53715, -0.498535, -0.969256, 1.875991, 0.041556, 0.055648, -0.204043, 1.057311];
const WHITE: [f64; 3] = [0.950456, 1.0, 1.088754];

fn srgb_to_linear(x: f64) -> f64 {
    if x <= 0.04045 { x / 12.92 } else { ((x + 0.055) / 1.055).powf(2.4) }
}

fn linear_to_srgb(x: f64) -> f64 {
    if x <= 0.0031308 { 12.92 * x } else { 1.055 * x.powf(1.0 / 2.4) - 0.055 }
}

/// OpenCV `COLOR_RGB2Lab` for 8-bit data (L scaled to 0..255, a and b offset by 128).
pub fn rgb_to_lab(p: [u8; 3]) -> [u8; 3] {
    let c: Vec<f64> = p.iter().map(|&v| srgb_to_linear(v as f64 / 255.0)).collect();
    let xyz: [f64; 3] = std::array::from_fn(|i| (RGB2XYZ[3 * i] * c[0] + RGB2XYZ[3 * i + 1] * c[1] + RGB2XYZ[3 * i + 2] * c[2]) / WHITE[i]);
    let f = |t: f64| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(xyz[0]), f(xyz[1]), f(xyz[2]));
    let l = if xyz[1] > 0.008856 { 116.0 * fy - 16.0 } else { 903.3 * xyz[1] };
    let a = 500.0 * (fx - fy);
    let b = 200.0 * (fy - fz);
    let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    [q(l * 255.0 / 100.0), q(a + 128.0), q(b + 128.0)]
}

/// OpenCV `COLOR_Lab2RGB` for 8-bit data.
pub fn lab_to_rgb([l, a, b]: [u8; 3]) -> [u8; 3] {
    let l = l as f64 * 100.0 / 255.0;
    let (a, b) = (a as f64 - 128.0, b as f64 - 128.0);
    let (y, fy) = if l <= 8.0 {
        let y = l / 903.3;
        (y, 7.787 * y + 16.0 / 116.0)
    } else {
        let fy = (l + 16.0) / 116.0;
        (fy * fy * fy, fy)
    };
    let fx = a / 500.0 + fy;
    let fz = fy - b / 200.0;
    let inv = |f: f64| if f > 0.206893 { f * f * f } else { (f - 16.0 / 116.0) / 7.787 };
    let xyz = [inv(fx) * WHITE[0], y, inv(fz) * WHITE[2]];
    let q = |i: usize| {
        let lin = XYZ2RGB[3 * i] * xyz[0] + XYZ2RGB[3 * i + 1] * xyz[1] + XYZ2RGB[3 * i + 2] * xyz[2];
        (linear_to_srgb(lin.clamp(0.0, 1.0)) * 255.0).round().clamp(0.0, 255.0) as u8
    };
    [q(0), q(1), q(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_known_values() {
        assert_eq!(rgb_to_hsv([255, 0, 0]), [0, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 255, 0]), [60, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 0, 255]), [120, 255, 255]);
        assert_eq!(rgb_to_hsv([128, 128, 128]), [0, 0, 128]);
        for p in [[255, 0, 0], [10, 200, 30], [77, 77, 200], [0, 0, 0]] {
            let back = hsv_to_rgb(rgb_to_hsv(p));
            for c in 0..3 {
                assert!((back[c] as i32 - p[c] as i32).abs() <= 3, "{p:?} -> {back:?}");
            }
        }
    }

    /// (rgb, cv2 RGB2LAB, cv2 RGB2HSV, cv2 LAB2RGB of that LAB, cv2 HSV2RGB of that HSV), from
    /// opencv-python-headless 5.0.0.
    const CV: &[([u8; 3], [u8; 3], [u8; 3], [u8; 3], [u8; 3])] = &[
        ([171, 206, 5], [198, 95, 205], [35, 249, 206], [170, 206, 2], [172, 206, 5]),
        ([206, 120, 131], [153, 163, 137], [176, 106, 206], [206, 120, 130], [206, 120, 132]),
        ([161, 73, 250], [130, 195, 54], [135, 181, 250], [160, 74, 250], [161, 73, 250]),
        ([13, 71, 98], [72, 120, 107], [100, 221, 98], [8, 72, 99], [13, 70, 98]),
        ([146, 104, 33], [120, 138, 172], [19, 197, 146], [146, 104, 34], [146, 105, 33]),
        ([11, 0, 12], [2, 134, 124], [148, 255, 12], [13, 0, 13], [11, 0, 12]),
        ([38, 255, 48], [225, 45, 205], [61, 217, 255], [41, 255, 47], [38, 255, 45]),
        ([167, 192, 60], [188, 102, 189], [36, 175, 192], [168, 192, 59], [166, 192, 60]),
        ([72, 111, 67], [110, 105, 148], [57, 101, 111], [73, 111, 68], [71, 111, 67]),
        ([249, 45, 229], [152, 217, 80], [153, 209, 249], [249, 44, 230], [249, 45, 229]),
        ([204, 216, 29], [212, 104, 207], [32, 221, 216], [204, 217, 29], [204, 216, 29]),
        ([100, 160, 126], [156, 101, 140], [73, 96, 160], [101, 160, 126], [100, 160, 126]),
    ];

    #[test]
    fn matches_opencv() {
        let close = |a: [u8; 3], b: [u8; 3], tol: i32| (0..3).all(|c| (a[c] as i32 - b[c] as i32).abs() <= tol);
        for &(rgb, lab, hsv, lab_back, hsv_back) in CV {
            assert_eq!(rgb_to_hsv(rgb), hsv, "{rgb:?} to HSV");
            assert_eq!(hsv_to_rgb(hsv), hsv_back, "{hsv:?} to RGB");
            assert!(close(rgb_to_lab(rgb), lab, 1), "{rgb:?} to LAB: {:?} vs {lab:?}", rgb_to_lab(rgb));
            assert!(close(lab_to_rgb(lab), lab_back, 1), "{lab:?} to RGB: {:?} vs {lab_back:?}", lab_to_rgb(lab));
        }
        assert_eq!(rgb_to_lab([255, 255, 255]), [255, 128, 128]);
        assert_eq!(rgb_to_lab([0, 0, 0]), [0, 128, 128]);
    }

    #[test]
    fn matching_to_itself_is_identity() {
        let img = RgbImage::from_fn(16, 8, |x, y| image::Rgb([(x * 16) as u8, (y * 30) as u8, 90]));
        assert_eq!(match_colors(&img, &img, MatchSpace::Rgb), img);
    }
}
