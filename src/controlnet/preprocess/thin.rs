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
    // framed by zeros: a missing neighbour never exceeds the pixel
    let stride = w + 2;
    let mut f = vec![0u8; stride * (h + 2)];
    for (y, row) in src.chunks_exact(w).enumerate() {
        f[(y + 1) * stride + 1..(y + 1) * stride + 1 + w].copy_from_slice(row);
    }
    let mut out = vec![0u8; w * h];
    for (y, orow) in out.chunks_exact_mut(w).enumerate() {
        let up = &f[y * stride..(y + 1) * stride];
        let mid = &f[(y + 1) * stride..(y + 2) * stride];
        let down = &f[(y + 2) * stride..(y + 3) * stride];
        for (x, o) in orow.iter_mut().enumerate() {
            let v = mid[x + 1];
            let keep = (mid[x] <= v && mid[x + 2] <= v)
                || (up[x + 1] <= v && down[x + 1] <= v)
                || (up[x] <= v && down[x + 2] <= v)
                || (up[x + 2] <= v && down[x] <= v);
            if keep {
                *o = v;
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

/// A binary image as bit rows, framed by one pixel that matches either way (OpenCV's
/// `MORPH_HITMISS` counts pixels outside the image as both foreground and background): 64
/// pixels per word, so each pattern is a few word-wide ANDs per row.
struct Bits {
    /// Words per row of `w + 2` bits (bit x + 1 is column x).
    words: usize,
    h: usize,
    /// Foreground or outside, `(h + 2)` rows.
    fg: Vec<u64>,
    /// Background or outside.
    bg: Vec<u64>,
    /// The image's own pixels in a row (the frame excluded).
    inside: Vec<u64>,
}

impl Bits {
    fn new(img: &[u8], w: usize, h: usize) -> Bits {
        let words = (w + 2).div_ceil(64);
        let mut fg = vec![u64::MAX; words * (h + 2)];
        let mut bg = vec![u64::MAX; words * (h + 2)];
        let mut inside = vec![0u64; words];
        for x in 0..w {
            inside[(x + 1) / 64] |= 1 << ((x + 1) % 64);
        }
        for y in 0..h {
            for x in 0..w {
                let (i, bit) = ((y + 1) * words + (x + 1) / 64, 1u64 << ((x + 1) % 64));
                if img[y * w + x] != 0 {
                    bg[i] &= !bit;
                } else {
                    fg[i] &= !bit;
                }
            }
        }
        Bits {
            words,
            h,
            fg,
            bg,
            inside,
        }
    }

    /// `plane` with every row shifted so that bit x holds the pixel at x + dx (beyond the
    /// row's ends: outside, which matches either way), into `out`.
    fn shift(words: usize, plane: &[u64], dx: isize, out: &mut [u64]) {
        for (o, row) in out.chunks_exact_mut(words).zip(plane.chunks_exact(words)) {
            for i in 0..words {
                o[i] = match dx {
                    1 => (row[i] >> 1) | row.get(i + 1).map_or(1 << 63, |v| v << 63),
                    -1 => (row[i] << 1) | if i > 0 { row[i - 1] >> 63 } else { 1 },
                    _ => row[i],
                };
            }
        }
    }

    /// Removes every foreground pixel where `p` matches, all matches found before any is
    /// removed; whether any was. `scratch` holds the six shifted planes.
    fn remove(&mut self, p: &Pattern, scratch: &mut [Vec<u64>; 6]) -> bool {
        let n = self.words;
        for (k, dx) in [-1isize, 0, 1].into_iter().enumerate() {
            Self::shift(n, &self.fg, dx, &mut scratch[k]);
            Self::shift(n, &self.bg, dx, &mut scratch[3 + k]);
        }
        let mut hit = vec![0u64; n];
        let mut any = false;
        for y in 1..=self.h {
            hit.copy_from_slice(&self.inside);
            for (dy, row) in p.iter().enumerate() {
                let r = (y + dy - 1) * n;
                for (dx, &k) in row.iter().enumerate() {
                    let plane = match k {
                        1 => &scratch[dx],
                        -1 => &scratch[3 + dx],
                        _ => continue,
                    };
                    for (h, s) in hit.iter_mut().zip(&plane[r..r + n]) {
                        *h &= s;
                    }
                }
            }
            for (i, &h) in hit.iter().enumerate() {
                if h != 0 {
                    any = true;
                    self.fg[y * n + i] &= !h;
                    self.bg[y * n + i] |= h;
                }
            }
        }
        any
    }

    /// One pass of every pattern in turn; whether nothing changed.
    fn pass(&mut self, patterns: &[Pattern]) -> bool {
        let mut scratch: [Vec<u64>; 6] = std::array::from_fn(|_| vec![0u64; self.fg.len()]);
        let mut done = true;
        for p in patterns {
            if self.remove(p, &mut scratch) {
                done = false;
            }
        }
        done
    }
}
/// The extension's `lvmin_thin` on a binary image (0 or 255): up to 32 passes of the thinning
/// patterns until one changes nothing, then one pass of the pruning patterns when `prune`.
/// Each pattern removes the pixels it matches (OpenCV's `MORPH_HITMISS`) before the next runs.
pub(crate) fn lvmin_thin(img: &mut [u8], w: usize, h: usize, prune: bool) {
    let mut bits = Bits::new(img, w, h);
    let thin = thin_patterns();
    for _ in 0..32 {
        if bits.pass(&thin) {
            break;
        }
    }
    if prune {
        bits.pass(&prune_patterns());
    }
    for y in 0..h {
        for x in 0..w {
            let word = bits.fg[(y + 1) * bits.words + (x + 1) / 64];
            if word >> ((x + 1) % 64) & 1 == 0 {
                img[y * w + x] = 0;
            }
        }
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
