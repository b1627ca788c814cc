//! The OpenCV drawing primitives the OpenPose skeleton is drawn with, pixel for pixel as
//! OpenCV's `drawing.cpp` computes them for 8-bit 3-channel images with `LINE_8`:
//! `ellipse2Poly` (float32 sine table, `cvRound`, consecutive duplicates dropped),
//! `fillConvexPoly` (outline lines, then a scanline fill in 16.16 fixed point), filled
//! `circle` (integer midpoint circle) and `line` of thickness > 1 (a filled quadrilateral with
//! round caps), as OpenCV 4.x draws them. Written from OpenCV's description of these routines; `imageproc`'s drawing
//! functions rasterise differently (other edge rules and circle shapes), and the ControlNet
//! pose models were trained on OpenCV's pixels.

use image::RgbImage;

/// Fixed-point bits of OpenCV's sub-pixel drawing coordinates (`XY_SHIFT`).
const XY_SHIFT: u32 = 16;
/// 1.0 in those coordinates.
const XY_ONE: i64 = 1 << XY_SHIFT;

/// OpenCV's table of sin(0°), sin(1°), … sin(90°) as float32 literals of 7 decimals (written
/// as OpenCV writes them: the literals, not the true sines, define the drawn pixels).
#[rustfmt::skip]
#[allow(clippy::excessive_precision, clippy::approx_constant)]
const SIN_TABLE_90: [f32; 91] = [
    0.0000000, 0.0174524, 0.0348995, 0.0523360, 0.0697565, 0.0871557,
    0.1045285, 0.1218693, 0.1391731, 0.1564345, 0.1736482, 0.1908090,
    0.2079117, 0.2249511, 0.2419219, 0.2588190, 0.2756374, 0.2923717,
    0.3090170, 0.3255682, 0.3420201, 0.3583679, 0.3746066, 0.3907311,
    0.4067366, 0.4226183, 0.4383711, 0.4539905, 0.4694716, 0.4848096,
    0.5000000, 0.5150381, 0.5299193, 0.5446390, 0.5591929, 0.5735764,
    0.5877853, 0.6018150, 0.6156615, 0.6293204, 0.6427876, 0.6560590,
    0.6691306, 0.6819984, 0.6946584, 0.7071068, 0.7193398, 0.7313537,
    0.7431448, 0.7547096, 0.7660444, 0.7771460, 0.7880108, 0.7986355,
    0.8090170, 0.8191520, 0.8290376, 0.8386706, 0.8480481, 0.8571673,
    0.8660254, 0.8746197, 0.8829476, 0.8910065, 0.8987940, 0.9063078,
    0.9135455, 0.9205049, 0.9271839, 0.9335804, 0.9396926, 0.9455186,
    0.9510565, 0.9563048, 0.9612617, 0.9659258, 0.9702957, 0.9743701,
    0.9781476, 0.9816272, 0.9848078, 0.9876883, 0.9902681, 0.9925462,
    0.9945219, 0.9961947, 0.9975641, 0.9986295, 0.9993908, 0.9998477,
    1.0000000,
];

/// sin(`deg`°) for `deg` in 0..=450 from the quarter table (the full table is its mirror
/// images).
fn sin_deg(deg: i32) -> f32 {
    let d = deg.rem_euclid(360);
    match d {
        0..=90 => SIN_TABLE_90[d as usize],
        91..=180 => SIN_TABLE_90[(180 - d) as usize],
        181..=270 => -SIN_TABLE_90[(d - 180) as usize],
        _ => -SIN_TABLE_90[(360 - d) as usize],
    }
}

/// Rounds half to even, as `cvRound` on a double.
fn cv_round(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// `cv2.ellipse2Poly(center, axes, angle, arc_start, arc_end, delta)`: the vertices of an
/// elliptic arc, rounded to integers, consecutive duplicates dropped (a degenerate arc gives
/// the centre twice). `delta` is the angle step in degrees (≥ 1).
pub(crate) fn ellipse2poly(
    center: (i64, i64),
    axes: (i64, i64),
    angle: i32,
    arc_start: i32,
    arc_end: i32,
    delta: i32,
) -> Vec<(i64, i64)> {
    let mut angle = angle;
    while angle < 0 {
        angle += 360;
    }
    while angle > 360 {
        angle -= 360;
    }
    let (mut start, mut end) = if arc_start > arc_end {
        (arc_end, arc_start)
    } else {
        (arc_start, arc_end)
    };
    while start < 0 {
        start += 360;
        end += 360;
    }
    while end > 360 {
        end -= 360;
        start -= 360;
    }
    if end - start > 360 {
        (start, end) = (0, 360);
    }
    let alpha = sin_deg(450 - angle) as f64; // cos
    let beta = sin_deg(angle) as f64; // sin
    let delta = delta.max(1);
    let mut pts = Vec::new();
    let mut prev = None;
    let mut i = start;
    while i < end + delta {
        let mut a = i.min(end);
        if a < 0 {
            a += 360;
        }
        let x = axes.0 as f64 * sin_deg(450 - a) as f64;
        let y = axes.1 as f64 * sin_deg(a) as f64;
        let px = center.0 as f64 + x * alpha - y * beta;
        let py = center.1 as f64 + x * beta + y * alpha;
        let p = (cv_round(px), cv_round(py));
        if prev != Some(p) {
            pts.push(p);
            prev = Some(p);
        }
        i += delta;
    }
    if pts.len() == 1 {
        pts = vec![center, center];
    }
    pts
}

/// A canvas with OpenCV's drawing routines.
pub(crate) struct Canvas<'a> {
    img: &'a mut RgbImage,
    w: i64,
    h: i64,
}

impl<'a> Canvas<'a> {
    pub(crate) fn new(img: &'a mut RgbImage) -> Canvas<'a> {
        let (w, h) = (img.width() as i64, img.height() as i64);
        Canvas { img, w, h }
    }

    /// Sets one pixel; outside the canvas nothing happens.
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && x < self.w && y < self.h {
            self.img.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    }

    /// Pixels `xl..=xr` of row `y` (already inside the canvas).
    fn hline(&mut self, y: i64, xl: i64, xr: i64, c: [u8; 3]) {
        let w = self.img.width() as usize;
        let row = &mut self.img.as_mut()[y as usize * w * 3..(y as usize + 1) * w * 3];
        for x in xl.max(0)..=xr.min(self.w - 1) {
            row[x as usize * 3..x as usize * 3 + 3].copy_from_slice(&c);
        }
    }

    /// OpenCV's `clipLine` on a `w`×`h` area: cuts the segment to the area (Cohen-Sutherland
    /// with integer division); false when nothing of it is inside.
    fn clip_line(w: i64, h: i64, p1: &mut (i64, i64), p2: &mut (i64, i64)) -> bool {
        if w <= 0 || h <= 0 {
            return false;
        }
        let (right, bottom) = (w - 1, h - 1);
        let code = |p: &(i64, i64)| {
            (p.0 < 0) as i32
                + (p.0 > right) as i32 * 2
                + (p.1 < 0) as i32 * 4
                + (p.1 > bottom) as i32 * 8
        };
        let (mut c1, mut c2) = (code(p1), code(p2));
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 & 12 != 0 {
                let a = if c1 < 8 { 0 } else { bottom };
                p1.0 += (a - p1.1) * (p2.0 - p1.0) / (p2.1 - p1.1);
                p1.1 = a;
                c1 = (p1.0 < 0) as i32 + (p1.0 > right) as i32 * 2;
            }
            if c2 & 12 != 0 {
                let a = if c2 < 8 { 0 } else { bottom };
                p2.0 += (a - p2.1) * (p2.0 - p1.0) / (p2.1 - p1.1);
                p2.1 = a;
                c2 = (p2.0 < 0) as i32 + (p2.0 > right) as i32 * 2;
            }
            if (c1 & c2) == 0 && (c1 | c2) != 0 {
                if c1 != 0 {
                    let a = if c1 == 1 { 0 } else { right };
                    p1.1 += (a - p1.0) * (p2.1 - p1.1) / (p2.0 - p1.0);
                    p1.0 = a;
                    c1 = 0;
                }
                if c2 != 0 {
                    let a = if c2 == 1 { 0 } else { right };
                    p2.1 += (a - p2.0) * (p2.1 - p1.1) / (p2.0 - p1.0);
                    p2.0 = a;
                    c2 = 0;
                }
            }
        }
        (c1 | c2) == 0
    }

    /// An 8-connected one-pixel line between integer points (OpenCV's `Line` through its
    /// `LineIterator`, drawn left to right).
    fn line(&mut self, mut p1: (i64, i64), mut p2: (i64, i64), c: [u8; 3]) {
        let inside = |p: &(i64, i64)| p.0 >= 0 && p.0 < self.w && p.1 >= 0 && p.1 < self.h;
        if (!inside(&p1) || !inside(&p2)) && !Self::clip_line(self.w, self.h, &mut p1, &mut p2) {
            return;
        }
        let (mut dx, mut dy) = (p2.0 - p1.0, p2.1 - p1.1);
        let mut pt = p1;
        if dx < 0 {
            (dx, dy, pt) = (-dx, -dy, p2);
        }
        let sy = if dy < 0 { -1 } else { 1 };
        dy = dy.abs();
        // major and minor steps
        let (major, minor, dmaj, dmin) = if dy > dx {
            ((0, sy), (1, 0), dy, dx)
        } else {
            ((1, 0), (0, sy), dx, dy)
        };
        let mut err = dmaj - 2 * dmin;
        for _ in 0..=dmaj {
            self.put(pt.0, pt.1, c);
            let diag = err < 0;
            err += -2 * dmin + if diag { 2 * dmaj } else { 0 };
            pt.0 += major.0 + if diag { minor.0 } else { 0 };
            pt.1 += major.1 + if diag { minor.1 } else { 0 };
        }
    }

    /// A one-pixel line between 16.16 fixed-point points (OpenCV's `Line2`, used for the
    /// outline of sub-pixel polygons).
    fn line_fixed(&mut self, mut p1: (i64, i64), mut p2: (i64, i64), c: [u8; 3]) {
        if !Self::clip_line(self.w << XY_SHIFT, self.h << XY_SHIFT, &mut p1, &mut p2) {
            return;
        }
        let (dx, dy) = (p2.0 - p1.0, p2.1 - p1.1);
        let (ax, ay) = (dx.abs(), dy.abs());
        let (x_step, y_step, mut ecount);
        if ax > ay {
            if dx < 0 {
                std::mem::swap(&mut p1, &mut p2);
            }
            let dy = if dx < 0 { -dy } else { dy };
            x_step = XY_ONE;
            y_step = (dy << XY_SHIFT) / (ax | 1);
            ecount = (p2.0 - p1.0) >> XY_SHIFT;
        } else {
            if dy < 0 {
                std::mem::swap(&mut p1, &mut p2);
            }
            let dx = if dy < 0 { -dx } else { dx };
            x_step = (dx << XY_SHIFT) / (ay | 1);
            y_step = XY_ONE;
            ecount = (p2.1 - p1.1) >> XY_SHIFT;
        }
        p1.0 += XY_ONE >> 1;
        p1.1 += XY_ONE >> 1;
        self.put(
            (p2.0 + (XY_ONE >> 1)) >> XY_SHIFT,
            (p2.1 + (XY_ONE >> 1)) >> XY_SHIFT,
            c,
        );
        if ax > ay {
            p1.0 >>= XY_SHIFT;
            while ecount >= 0 {
                self.put(p1.0, p1.1 >> XY_SHIFT, c);
                p1.0 += 1;
                p1.1 += y_step;
                ecount -= 1;
            }
        } else {
            p1.1 >>= XY_SHIFT;
            while ecount >= 0 {
                self.put(p1.0 >> XY_SHIFT, p1.1, c);
                p1.0 += x_step;
                p1.1 += 1;
                ecount -= 1;
            }
        }
    }

    /// `cv2.fillConvexPoly` with `LINE_8`: the outline, then the rows between the left and the
    /// right edge. `shift` is the number of fractional bits of the vertices (0 or 16).
    pub(crate) fn fill_convex_poly(&mut self, v: &[(i64, i64)], c: [u8; 3], shift: u32) {
        let n = v.len();
        if n == 0 {
            return;
        }
        let delta: i64 = (1 << shift) >> 1;
        let (delta1, delta2) = (XY_ONE >> 1, XY_ONE >> 1);
        let up = XY_SHIFT - shift;
        let mut p0 = (v[n - 1].0 << up, v[n - 1].1 << up);
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (v[0].0, v[0].0, v[0].1, v[0].1);
        let mut imin = 0;
        for (i, &q) in v.iter().enumerate() {
            if q.1 < ymin {
                ymin = q.1;
                imin = i;
            }
            ymax = ymax.max(q.1);
            xmax = xmax.max(q.0);
            xmin = xmin.min(q.0);
            let p = (q.0 << up, q.1 << up);
            if shift == 0 {
                self.line(
                    (p0.0 >> XY_SHIFT, p0.1 >> XY_SHIFT),
                    (p.0 >> XY_SHIFT, p.1 >> XY_SHIFT),
                    c,
                );
            } else {
                self.line_fixed(p0, p, c);
            }
            p0 = p;
        }
        let xmin = (xmin + delta) >> shift;
        let xmax = (xmax + delta) >> shift;
        let ymin = (ymin + delta) >> shift;
        let mut ymax = (ymax + delta) >> shift;
        if n < 3 || xmax < 0 || ymax < 0 || xmin >= self.w || ymin >= self.h {
            return;
        }
        ymax = ymax.min(self.h - 1);

        #[derive(Clone, Copy)]
        struct Edge {
            idx: usize,
            di: usize,
            x: i64,
            dx: i64,
            ye: i64,
        }
        let mut edge = [
            Edge {
                idx: imin,
                di: 1,
                x: -XY_ONE,
                dx: 0,
                ye: ymin,
            },
            Edge {
                idx: imin,
                di: n - 1,
                x: -XY_ONE,
                dx: 0,
                ye: ymin,
            },
        ];
        let mut edges = n as i64;
        let mut y = ymin;
        loop {
            for e in edge.iter_mut() {
                if y >= e.ye {
                    let mut idx0 = e.idx;
                    let mut idx = (idx0 + e.di) % n;
                    loop {
                        let left = edges;
                        edges -= 1;
                        if left <= 0 {
                            break;
                        }
                        let ty = (v[idx].1 + delta) >> shift;
                        if ty > y {
                            let xs = v[idx0].0 << up;
                            let xe = v[idx].0 << up;
                            e.ye = ty;
                            e.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                            e.x = xs;
                            e.idx = idx;
                            break;
                        }
                        idx0 = idx;
                        idx = (idx + e.di) % n;
                    }
                }
            }
            if edges < 0 {
                break;
            }
            if y >= 0 {
                let (l, r) = if edge[0].x > edge[1].x {
                    (1, 0)
                } else {
                    (0, 1)
                };
                let x1 = (edge[l].x + delta1) >> XY_SHIFT;
                let x2 = (edge[r].x + delta2) >> XY_SHIFT;
                if x2 >= 0 && x1 < self.w {
                    self.hline(y, x1.max(0), x2.min(self.w - 1), c);
                }
            }
            edge[0].x += edge[0].dx;
            edge[1].x += edge[1].dx;
            y += 1;
            if y > ymax {
                break;
            }
        }
    }

    /// `cv2.circle(img, center, radius, color, thickness=-1)` with `LINE_8`: OpenCV's filled
    /// midpoint circle.
    pub(crate) fn fill_circle(&mut self, center: (i64, i64), radius: i64, c: [u8; 3]) {
        let (cx, cy) = center;
        let (w, h) = (self.w, self.h);
        let (mut err, mut dx, mut dy, mut plus, mut minus) =
            (0i64, radius, 0i64, 1i64, (radius << 1) - 1);
        let inside = cx >= radius && cx < w - radius && cy >= radius && cy < h - radius;
        while dx >= dy {
            let (y11, y12, y21, y22) = (cy - dy, cy + dy, cy - dx, cy + dx);
            let (mut x11, mut x12, mut x21, mut x22) = (cx - dx, cx + dx, cx - dy, cx + dy);
            if inside {
                self.hline(y11, x11, x12, c);
                self.hline(y12, x11, x12, c);
                self.hline(y21, x21, x22, c);
                self.hline(y22, x21, x22, c);
            } else if x11 < w && x12 >= 0 && y21 < h && y22 >= 0 {
                x11 = x11.max(0);
                x12 = x12.min(w - 1);
                if (0..h).contains(&y11) {
                    self.hline(y11, x11, x12, c);
                }
                if (0..h).contains(&y12) {
                    self.hline(y12, x11, x12, c);
                }
                if x21 < w && x22 >= 0 {
                    x21 = x21.max(0);
                    x22 = x22.min(w - 1);
                    if (0..h).contains(&y21) {
                        self.hline(y21, x21, x22, c);
                    }
                    if (0..h).contains(&y22) {
                        self.hline(y22, x21, x22, c);
                    }
                }
            }
            dy += 1;
            err += plus;
            plus += 2;
            if err > 0 {
                err -= minus;
                dx -= 1;
                minus -= 2;
            }
        }
    }

    /// `cv2.line(img, p0, p1, color, thickness)` for thickness ≥ 2 with `LINE_8`: a
    /// quadrilateral of the line's width in 16.16 fixed point, and filled circles of radius
    /// `round(thickness / 2)` at both ends. (OpenCV 5 first clips the segment to the canvas grown
    /// by the thickness, which moves the pixels of lines that leave the canvas; the extension
    /// runs on OpenCV 4.)
    pub(crate) fn thick_line(
        &mut self,
        p0: (i64, i64),
        p1: (i64, i64),
        thickness: i64,
        c: [u8; 3],
    ) {
        let p0 = (p0.0 << XY_SHIFT, p0.1 << XY_SHIFT);
        let p1 = (p1.0 << XY_SHIFT, p1.1 << XY_SHIFT);
        let inv = 1.0 / XY_ONE as f64;
        let dx = (p0.0 - p1.0) as f64 * inv;
        let dy = (p1.1 - p0.1) as f64 * inv;
        let r2 = dx * dx + dy * dy;
        let odd = thickness & 1;
        let t = thickness << (XY_SHIFT - 1);
        if r2.abs() > f64::EPSILON {
            let r = (t as f64 + odd as f64 * XY_ONE as f64 * 0.5) / r2.sqrt();
            let dp = (cv_round(dy * r), cv_round(dx * r));
            let quad = [
                (p0.0 + dp.0, p0.1 + dp.1),
                (p0.0 - dp.0, p0.1 - dp.1),
                (p1.0 - dp.0, p1.1 - dp.1),
                (p1.0 + dp.0, p1.1 + dp.1),
            ];
            self.fill_convex_poly(&quad, c, XY_SHIFT);
        }
        let radius = (t + (XY_ONE >> 1)) >> XY_SHIFT;
        for p in [p0, p1] {
            let center = (
                (p.0 + (XY_ONE >> 1)) >> XY_SHIFT,
                (p.1 + (XY_ONE >> 1)) >> XY_SHIFT,
            );
            self.fill_circle(center, radius, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_table_is_symmetric() {
        assert_eq!(sin_deg(90), 1.0);
        assert_eq!(sin_deg(450), 1.0);
        assert_eq!(sin_deg(210), -0.5);
        assert_eq!(sin_deg(360), 0.0);
    }

    #[test]
    fn a_degenerate_ellipse_is_its_centre_twice() {
        assert_eq!(
            ellipse2poly((5, 6), (0, 0), 0, 0, 360, 1),
            vec![(5, 6), (5, 6)]
        );
        let p = ellipse2poly((10, 10), (3, 0), 0, 0, 360, 1);
        assert_eq!(p.first(), Some(&(13, 10)));
        assert!(p.iter().all(|&(x, y)| (7..=13).contains(&x) && y == 10));
    }

    #[test]
    fn filled_circle_of_radius_one_is_a_plus() {
        let mut img = RgbImage::new(5, 5);
        Canvas::new(&mut img).fill_circle((2, 2), 1, [9, 9, 9]);
        let set: Vec<(u32, u32)> = (0..5)
            .flat_map(|y| (0..5).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] == 9)
            .collect();
        assert_eq!(set, vec![(2, 1), (1, 2), (2, 2), (3, 2), (2, 3)]);
    }
}
