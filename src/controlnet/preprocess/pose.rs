//! OpenPose skeletons drawn from keypoints as the A1111 ControlNet extension (v1.1.455) and
//! controlnet_aux draw them (`draw_poses`): person by person, body limbs as filled ellipses in
//! 60 % colours, then body joints, left hand, right hand, face. Pixel-exact through the
//! OpenCV ports of [`super::draw`].

use image::RgbImage;

use super::draw::{Canvas, ellipse2poly};
use super::{PreprocessError, check_side};

/// One keypoint: position (pixels of the canvas, or fractions of its size when every visible
/// point of a part lies in [0, 1], as the extension decides) and the model's confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Confidence in [0, 1] (drawing ignores it; hidden points are `None`).
    pub score: f32,
}

impl Keypoint {
    /// A keypoint with confidence 1.
    pub fn new(x: f64, y: f64) -> Keypoint {
        Keypoint { x, y, score: 1.0 }
    }
}

/// One person in OpenPose order: 18 body points (0 nose, 1 neck, 2-4 right shoulder, elbow,
/// wrist, 5-7 left, 8-10 right hip, knee, ankle, 11-13 left, 14 right eye, 15 left eye, 16 right
/// ear, 17 left ear), 21 points per hand and 68 or 70 face points; `None` for a point not seen,
/// an empty list for a part not detected.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pose {
    /// The body points.
    pub body: [Option<Keypoint>; 18],
    /// The left hand's 21 points, or empty.
    pub left_hand: Vec<Option<Keypoint>>,
    /// The right hand's 21 points, or empty.
    pub right_hand: Vec<Option<Keypoint>>,
    /// The face points (68, plus the two eyes the extension appends), or empty.
    pub face: Vec<Option<Keypoint>>,
}

/// Which parts of the poses are drawn (the extension's `openpose`, `openpose_hand`,
/// `openpose_face`, `openpose_faceonly`, `openpose_full` / `dw_openpose_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoseParts {
    /// Limbs and joints.
    pub body: bool,
    /// Both hands.
    pub hands: bool,
    /// The face points.
    pub face: bool,
}

impl PoseParts {
    /// Body, hands and face (`dw_openpose_full`).
    pub const FULL: PoseParts = PoseParts {
        body: true,
        hands: true,
        face: true,
    };
    /// The body alone (`openpose`).
    pub const BODY: PoseParts = PoseParts {
        body: true,
        hands: false,
        face: false,
    };
}

impl Default for PoseParts {
    fn default() -> Self {
        PoseParts::FULL
    }
}

/// Limbs as pairs of body points (OpenPose's order; limb k takes colour k).
const LIMBS: [(usize, usize); 17] = [
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
];

/// Limb and joint colours (RGB).
const COLOURS: [[u8; 3]; 18] = [
    [255, 0, 0],
    [255, 85, 0],
    [255, 170, 0],
    [255, 255, 0],
    [170, 255, 0],
    [85, 255, 0],
    [0, 255, 0],
    [0, 255, 85],
    [0, 255, 170],
    [0, 255, 255],
    [0, 170, 255],
    [0, 85, 255],
    [0, 0, 255],
    [85, 0, 255],
    [170, 0, 255],
    [255, 0, 255],
    [255, 0, 170],
    [255, 0, 85],
];

/// Hand bones: the wrist to each finger's base, then along each finger (20 edges).
const HAND_EDGES: [(usize, usize); 20] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (0, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (0, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
];

/// Half-width of a limb's ellipse in pixels.
const STICK_WIDTH: i64 = 4;

/// Colour of hand edge `e` of `n`: matplotlib's `hsv_to_rgb([e / n, 1, 1]) · 255`, rounded
/// half to even as OpenCV converts a float colour.
fn hand_colour(e: usize, n: usize) -> [u8; 3] {
    let h = e as f64 / n as f64;
    let i = (h * 6.0) as i64;
    let f = h * 6.0 - i as f64;
    let (v, p, q, t) = (1.0, 0.0, 1.0 - f, 1.0 - (1.0 - f));
    let (r, g, b) = match i % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [r, g, b].map(|c: f64| (c * 255.0).round_ties_even().clamp(0.0, 255.0) as u8)
}

/// The extension's `is_normalized`: every visible point of the part has |x| ≤ 1 and |y| ≤ 1
/// (then coordinates are fractions of the canvas), false for a part with no visible point.
fn is_normalized(points: &[Option<Keypoint>]) -> bool {
    let mut any = false;
    for k in points.iter().flatten() {
        any = true;
        if !(k.x.abs() <= 1.0 && k.y.abs() <= 1.0) {
            return false;
        }
    }
    any
}

/// Scale factors (width, height) for a part's coordinates.
fn scale_of(points: &[Option<Keypoint>], w: u32, h: u32) -> (f64, f64) {
    if is_normalized(points) {
        (w as f64, h as f64)
    } else {
        (1.0, 1.0)
    }
}

/// Python's `int()` of a float: truncation toward zero (NaN gives 0).
fn trunc(v: f64) -> i64 {
    v as i64
}

/// Farthest a coordinate may lie from the canvas origin: beyond it OpenCV's integer drawing
/// overflows (Python raises); anim moves such points there, far off any canvas.
const FAR: f64 = 32768.0;

/// A keypoint coordinate times its part's scale, kept within ±[`FAR`].
fn scaled(v: f64, s: f64) -> f64 {
    (v * s).clamp(-FAR, FAR)
}

/// The body: each limb with both ends visible as a filled ellipse (centre the mean of its
/// ends, half-axes half its length and 4, angle in whole degrees) in 60 % of its colour, then a
/// filled circle of radius 4 on each visible joint.
fn draw_body(c: &mut Canvas, body: &[Option<Keypoint>; 18], w: u32, h: u32) {
    let (sw, sh) = scale_of(body, w, h);
    for (&(a, b), colour) in LIMBS.iter().zip(COLOURS) {
        let (Some(k1), Some(k2)) = (body[a], body[b]) else {
            continue;
        };
        let (y0, y1) = (scaled(k1.x, sw), scaled(k2.x, sw));
        let (x0, x1) = (scaled(k1.y, sh), scaled(k2.y, sh));
        let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let length = ((x0 - x1) * (x0 - x1) + (y0 - y1) * (y0 - y1)).sqrt();
        let angle = (x0 - x1).atan2(y0 - y1).to_degrees();
        let poly = ellipse2poly(
            (trunc(my), trunc(mx)),
            (trunc(length / 2.0), STICK_WIDTH),
            trunc(angle) as i32,
            0,
            360,
            1,
        );
        let dim = colour.map(|v| (v as f64 * 0.6) as u8);
        c.fill_convex_poly(&poly, dim, 0);
    }
    for (k, colour) in body.iter().zip(COLOURS) {
        if let Some(k) = k {
            c.fill_circle((trunc(scaled(k.x, sw)), trunc(scaled(k.y, sh))), 4, colour);
        }
    }
}

/// A hand: each bone with both ends visible and on the canvas side of pixel 0 as a line of
/// width 2 in its hue, then blue dots of radius 4 on the visible points.
fn draw_hand(c: &mut Canvas, hand: &[Option<Keypoint>], w: u32, h: u32) {
    if hand.is_empty() {
        return;
    }
    let (sw, sh) = scale_of(hand, w, h);
    for (e, &(a, b)) in HAND_EDGES.iter().enumerate() {
        let (Some(Some(k1)), Some(Some(k2))) = (hand.get(a), hand.get(b)) else {
            continue;
        };
        let p1 = (trunc(scaled(k1.x, sw)), trunc(scaled(k1.y, sh)));
        let p2 = (trunc(scaled(k2.x, sw)), trunc(scaled(k2.y, sh)));
        // the extension's `> eps` on integer coordinates
        if p1.0 > 0 && p1.1 > 0 && p2.0 > 0 && p2.1 > 0 {
            c.thick_line(p1, p2, 2, hand_colour(e, HAND_EDGES.len()));
        }
    }
    for k in hand.iter().flatten() {
        let p = (trunc(scaled(k.x, sw)), trunc(scaled(k.y, sh)));
        if p.0 > 0 && p.1 > 0 {
            c.fill_circle(p, 4, [0, 0, 255]);
        }
    }
}

/// The face: white dots of radius 3 on the visible points.
fn draw_face(c: &mut Canvas, face: &[Option<Keypoint>], w: u32, h: u32) {
    if face.is_empty() {
        return;
    }
    let (sw, sh) = scale_of(face, w, h);
    for k in face.iter().flatten() {
        let p = (trunc(scaled(k.x, sw)), trunc(scaled(k.y, sh)));
        if p.0 > 0 && p.1 > 0 {
            c.fill_circle(p, 3, [255, 255, 255]);
        }
    }
}

/// The OpenPose control map of `poses` on a black `width`×`height` canvas, drawn as the
/// A1111 extension and controlnet_aux do: person by person, the body (limbs, then joints), the
/// left hand, the right hand, the face, each as `parts` asks.
///
/// # Errors
/// A side outside 1..=[`super::MAX_SIDE`].
pub fn draw_poses(
    poses: &[Pose],
    width: u32,
    height: u32,
    parts: PoseParts,
) -> Result<RgbImage, PreprocessError> {
    check_side("pose canvas width", width)?;
    check_side("pose canvas height", height)?;
    let mut img = RgbImage::new(width, height);
    let mut c = Canvas::new(&mut img);
    for p in poses {
        if parts.body {
            draw_body(&mut c, &p.body, width, height);
        }
        if parts.hands {
            draw_hand(&mut c, &p.left_hand, width, height);
            draw_hand(&mut c, &p.right_hand, width, height);
        }
        if parts.face {
            draw_face(&mut c, &p.face, width, height);
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_colours_follow_the_hue_circle() {
        assert_eq!(hand_colour(0, 20), [255, 0, 0]);
        // h = 0.1: i = 0, f = 0.6, t = 0.6 → 153
        assert_eq!(hand_colour(2, 20), [255, 153, 0]);
        assert_eq!(hand_colour(10, 20), [0, 255, 255]);
    }

    #[test]
    fn nothing_visible_draws_nothing() {
        let img = draw_poses(&[Pose::default()], 16, 8, PoseParts::FULL).unwrap();
        assert!(img.pixels().all(|p| p.0 == [0; 3]));
        assert!(draw_poses(&[], 0, 8, PoseParts::FULL).is_err());
    }

    #[test]
    fn wild_keypoints_do_not_panic() {
        let mut pose = Pose::default();
        for (i, v) in [f64::NAN, 1e300, -1e300, f64::INFINITY, 40.0]
            .iter()
            .enumerate()
        {
            pose.body[i] = Some(Keypoint::new(*v, -*v));
            pose.body[i + 5] = Some(Keypoint::new(20.0, *v));
        }
        pose.left_hand = (0..21)
            .map(|i| Some(Keypoint::new(1e12 * i as f64, 5.0)))
            .collect();
        pose.face = vec![Some(Keypoint::new(f64::NAN, 3.0)); 70];
        assert!(draw_poses(&[pose], 64, 48, PoseParts::FULL).is_ok());
    }

    #[test]
    fn a_limb_is_dimmed_and_joints_are_full_colour() {
        let mut pose = Pose::default();
        pose.body[1] = Some(Keypoint::new(20.0, 10.0));
        pose.body[2] = Some(Keypoint::new(40.0, 10.0));
        let img = draw_poses(&[pose], 64, 32, PoseParts::BODY).unwrap();
        assert_eq!(img.get_pixel(30, 10).0, [153, 0, 0]);
        assert_eq!(img.get_pixel(20, 10).0, [255, 85, 0]);
        assert_eq!(img.get_pixel(40, 10).0, [255, 170, 0]);
    }
}
