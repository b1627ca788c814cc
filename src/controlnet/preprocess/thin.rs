//! The A1111 ControlNet extension's treatment of binary control maps (Canny edges and the like)
//! when they are resized: after the resize the map is averaged to one channel, then either
//! thresholded with Otsu's method, or, for maps of one-pixel edges, thinned back to one-pixel
//! edges: a non-maximum suppression along four directions, Otsu, then a hit-or-miss thinning.
//! Written from the extension's description of `high_quality_resize`, `nake_nms` and
//! `lvmin_thin`; the morphology and Otsu steps are OpenCV's (`erode`, `dilate`,
//! `MORPH_HITMISS`, `THRESH_OTSU`) on 8-bit data.

/// Per-value minimum (`erode`) or maximum (`dilate`) over the 3x3 neighbourhood of each pixel
/// of a `w`×`h` image with `cn` interleaved channels; neighbours outside the image are ignored,
/// as with OpenCV's default border for morphology.
pub(crate) fn morph3x3(src: &[u8], w: usize, h: usize, cn: usize, max: bool) -> Vec<u8> {
    let pick = |a: u8, b: u8| if max { a.max(b) } else { a.min(b) };
    // rows first, then columns
    let mut rows = vec![0u8; src.len()];
    for y in 0..h {
        for x in 0..w {
            for c in 0..cn {
                let i = (y * w + x) * cn + c;
                let mut v = src[i];
                if x > 0 {
                    v = pick(v, src[i - cn]);
                }
                if x + 1 < w {
                    v = pick(v, src[i + cn]);
                }
                rows[i] = v;
            }
        }
    }
    let stride = w * cn;
    let mut out = vec![0u8; src.len()];
    for y in 0..h {
        for i in y * stride..(y + 1) * stride {
            let mut v = rows[i];
            if y > 0 {
                v = pick(v, rows[i - stride]);
            }
            if y + 1 < h {
                v = pick(v, rows[i + stride]);
            }
            out[i] = v;
        }
    }
    out
}

/// Whether a binary map is made of one-pixel edges: more than half of its bright values
/// (> 127) disappear under a 3x3 opening (erode, then dilate).
pub(crate) fn is_one_pixel_edge(src: &[u8], w: usize, h: usize, cn: usize) -> bool {
    let opened = morph3x3(&morph3x3(src, w, h, cn, false), w, h, cn, true);
    let lost = opened.iter().zip(src).filter(|(o, s)| o < s).count();
    let bright = src.iter().filter(|&&v| v > 127).count();
    lost * 2 > bright
}

/// Keeps a pixel where it is a maximum (ties included) along at least one of the four
/// directions (horizontal, vertical, both diagonals) among its two neighbours there, else 0;
/// neighbours outside the image are ignored (the extension's `nake_nms`).
pub(crate) fn nake_nms(src: &[u8], w: usize, h: usize) -> Vec<u8> {
    let at = |x: isize, y: isize| -> Option<u8> {
        (x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h)
            .then(|| src[y as usize * w + x as usize])
    };
    let mut out = vec![0u8; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let v = src[y as usize * w + x as usize];
            let keep = [(1, 0), (0, 1), (1, 1), (1, -1)].iter().any(|&(dx, dy)| {
                at(x - dx, y - dy).is_none_or(|n| n <= v)
                    && at(x + dx, y + dy).is_none_or(|n| n <= v)
            });
            if keep {
                out[y as usize * w + x as usize] = v;
            }
        }
    }
    out
}

/// Otsu's threshold of an 8-bit image as OpenCV's `THRESH_OTSU` computes it (in double, the
/// first maximum of the between-class variance wins).
pub(crate) fn otsu(src: &[u8]) -> u8 {
    let mut hist = [0u64; 256];
    for &v in src {
        hist[v as usize] += 1;
    }
    let scale = 1.0 / src.len().max(1) as f64;
    let mut mu = 0.0;
    for (i, &n) in hist.iter().enumerate() {
        mu += i as f64 * n as f64;
    }
    mu *= scale;
    let (mut mu1, mut q1) = (0.0f64, 0.0f64);
    let (mut max_sigma, mut max_val) = (0.0f64, 0u8);
    for (i, &n) in hist.iter().enumerate() {
        let p = n as f64 * scale;
        mu1 *= q1;
        q1 += p;
        let q2 = 1.0 - q1;
        if q1.min(q2) < f32::EPSILON as f64 || q1.max(q2) > 1.0 - f32::EPSILON as f64 {
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

/// Binary threshold at Otsu's level: 255 above it, 0 elsewhere.
pub(crate) fn otsu_binary(src: &[u8]) -> Vec<u8> {
    let t = otsu(src);
    src.iter().map(|&v| if v > t { 255 } else { 0 }).collect()
}

/// A 3x3 hit-or-miss pattern: 1 foreground, -1 background, 0 either.
type Pattern = [[i8; 3]; 3];

/// `m` rotated by 90° counter-clockwise `k` times (numpy's `rot90`).
fn rot90(m: Pattern, k: usize) -> Pattern {
    let mut r = m;
    for _ in 0..k {
        let p = r;
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = p[j][2 - i];
            }
        }
    }
    r
}

/// The two base patterns and their four rotations each, in the extension's order.
fn rotations(raw: [Pattern; 2]) -> Vec<Pattern> {
    (0..4)
        .flat_map(|k| raw.iter().map(move |&m| rot90(m, k)))
        .collect()
}

/// Thinning patterns: a foreground pixel with background on one side and foreground on the
/// other is removed.
fn thin_patterns() -> Vec<Pattern> {
    rotations([
        [[-1, -1, -1], [0, 1, 0], [1, 1, 1]],
        [[0, -1, -1], [1, 1, -1], [0, 1, 0]],
    ])
}

/// Pruning patterns: the end pixels of one-pixel spurs.
fn prune_patterns() -> Vec<Pattern> {
    rotations([
        [[-1, -1, -1], [-1, 1, -1], [0, 0, -1]],
        [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]],
    ])
}

/// Sets to 0 every pixel of the binary image `img` (0 or 255) where `p` matches (OpenCV's
/// `MORPH_HITMISS`, which counts pixels outside the image as matching either way); whether
/// any pixel was removed.
fn remove_pattern(img: &mut [u8], w: usize, h: usize, p: &Pattern) -> bool {
    let mut hits = Vec::new();
    for y in 0..h as isize {
        'px: for x in 0..w as isize {
            for (dy, row) in p.iter().enumerate() {
                for (dx, &k) in row.iter().enumerate() {
                    if k == 0 {
                        continue;
                    }
                    let (sx, sy) = (x + dx as isize - 1, y + dy as isize - 1);
                    if sx < 0 || sy < 0 || sx as usize >= w || sy as usize >= h {
                        continue;
                    }
                    let fg = img[sy as usize * w + sx as usize] != 0;
                    if fg != (k == 1) {
                        continue 'px;
                    }
                }
            }
            hits.push(y as usize * w + x as usize);
        }
    }
    for &i in &hits {
        img[i] = 0;
    }
    !hits.is_empty()
}

/// One pass of every pattern in turn; whether nothing changed.
fn thin_once(img: &mut [u8], w: usize, h: usize, patterns: &[Pattern]) -> bool {
    let mut done = true;
    for p in patterns {
        if remove_pattern(img, w, h, p) {
            done = false;
        }
    }
    done
}

/// The extension's `lvmin_thin` on a binary image: up to 32 thinning passes until one changes
/// nothing, then one pruning pass when `prune`.
pub(crate) fn lvmin_thin(img: &mut [u8], w: usize, h: usize, prune: bool) {
    let thin = thin_patterns();
    for _ in 0..32 {
        if thin_once(img, w, h, &thin) {
            break;
        }
    }
    if prune {
        thin_once(img, w, h, &prune_patterns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rot90_turns_counter_clockwise() {
        let m: Pattern = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];
        assert_eq!(rot90(m, 1), [[3, 6, 9], [2, 5, 8], [1, 4, 7]]);
        assert_eq!(rot90(m, 4), m);
    }

    #[test]
    fn otsu_splits_two_levels() {
        let v: Vec<u8> = (0..100).map(|i| if i < 60 { 10 } else { 200 }).collect();
        assert_eq!(otsu(&v), 10);
        assert_eq!(otsu(&[7; 9]), 0);
    }

    #[test]
    fn a_thick_line_thins_to_one_pixel() {
        let (w, h) = (12, 7);
        let mut img = vec![0u8; w * h];
        for y in 2..5 {
            for x in 1..11 {
                img[y * w + x] = 255;
            }
        }
        lvmin_thin(&mut img, w, h, false);
        for x in 3..9 {
            let col: u32 = (0..h).map(|y| (img[y * w + x] != 0) as u32).sum();
            assert_eq!(col, 1, "column {x}");
        }
    }
}
