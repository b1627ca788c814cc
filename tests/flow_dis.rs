//! DIS optical flow against OpenCV's `DISOpticalFlow` (references from scripts/make_dis_refs.py,
//! opencv-python-headless 5.1.0) on the real-photo pairs of tests/data/flow/pairs/.

use anim::flow::dis::{Params, dis};
use anim::flow::{Flow, gray};
use image::GrayImage;
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flow")
}

/// A Middlebury `.flo` file (a small local reader; src/flow/io.rs will replace it).
fn read_flo(path: &Path) -> Flow {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(f32::from_le_bytes(b[0..4].try_into().unwrap()), 202021.25);
    let w = u32::from_le_bytes(b[4..8].try_into().unwrap());
    let h = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let vals: Vec<f32> = b[12..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Flow::from_vec(w, h, vals).unwrap()
}

fn frame(pair: &str, side: &str) -> GrayImage {
    let p = data().join(format!("pairs/{pair}_{side}.png"));
    gray(&image::open(&p).unwrap().to_rgb8())
}

/// Bilinear backward warp of `img` by `flow` (`out(x) = img(x + flow(x))`), edges clamped.
fn warp(img: &GrayImage, flow: &Flow) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let px = |x: i64, y: i64| {
        let x = x.clamp(0, w as i64 - 1) as u32;
        let y = y.clamp(0, h as i64 - 1) as u32;
        f32::from(img.get_pixel(x, y).0[0])
    };
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let [u, v] = flow.at(x, y);
            let (mx, my) = (x as f32 + u, y as f32 + v);
            let (fx, fy) = (mx.floor(), my.floor());
            let (ax, ay) = (mx - fx, my - fy);
            let (x0, y0) = (fx as i64, fy as i64);
            let top = px(x0, y0) * (1.0 - ax) + px(x0 + 1, y0) * ax;
            let bot = px(x0, y0 + 1) * (1.0 - ax) + px(x0 + 1, y0 + 1) * ax;
            out.push(top * (1.0 - ay) + bot * ay);
        }
    }
    out
}

struct Stats {
    mean: f64,
    p99: f64,
    max: f64,
    psnr: f64,
}

fn compare(ours: &Flow, cv: &Flow, b: &GrayImage) -> Stats {
    let mut epe: Vec<f64> = ours
        .as_slice()
        .chunks_exact(2)
        .zip(cv.as_slice().chunks_exact(2))
        .map(|(a, c)| f64::from((a[0] - c[0]).hypot(a[1] - c[1])))
        .collect();
    let mean = epe.iter().sum::<f64>() / epe.len() as f64;
    epe.sort_by(f64::total_cmp);
    let p99 = epe[(epe.len() * 99) / 100];
    let max = *epe.last().unwrap();
    let (wa, wb) = (warp(b, ours), warp(b, cv));
    let mse = wa
        .iter()
        .zip(&wb)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / wa.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
    Stats {
        mean,
        p99,
        max,
        psnr,
    }
}

/// Runs one case and checks it against bars: mean EPE, 99th percentile, max EPE (px) and the
/// PSNR (dB) between frame B warped by each flow. The issue asks for mean <= 0.1 px and >= 35 dB;
/// the bars sit just above what the port reaches (float summation order in the resizes).
fn case(preset: &str, pair: &str, init: Option<&str>, bars: [f64; 4]) {
    let [mean_bar, p99_bar, max_bar, psnr_bar] = bars;
    let params = match preset {
        "medium" => Params::MEDIUM,
        _ => Params::DEFORUM_FINE,
    };
    let (a, b) = (frame(pair, "a"), frame(pair, "b"));
    let init = init.map(|n| read_flo(&data().join(format!("dis/{n}.flo"))));
    let ours = dis(&a, &b, &params, init.as_ref()).unwrap();
    let name = match init {
        Some(_) => format!("{preset}_{pair}_init"),
        None => format!("{preset}_{pair}"),
    };
    let cv = read_flo(&data().join(format!("dis/{name}.flo")));
    let s = compare(&ours, &cv, &b);
    eprintln!(
        "{name}: mean EPE {:.2e} px, p99 {:.2e} px, max {:.2e} px, warp PSNR {:.1} dB",
        s.mean, s.p99, s.max, s.psnr
    );
    assert!(
        s.mean <= mean_bar,
        "{name}: mean EPE {} > {mean_bar}",
        s.mean
    );
    assert!(s.p99 <= p99_bar, "{name}: p99 EPE {} > {p99_bar}", s.p99);
    assert!(s.max <= max_bar, "{name}: max EPE {} > {max_bar}", s.max);
    assert!(
        s.psnr >= psnr_bar,
        "{name}: warp PSNR {} < {psnr_bar}",
        s.psnr
    );
}

#[test]
fn medium_shift() {
    case("medium", "shift", None, [1.5e-5, 2e-4, 1e-3, 125.0]);
}

#[test]
fn medium_rotzoom() {
    case("medium", "rotzoom", None, [1e-5, 1.5e-4, 1e-3, 115.0]);
}

#[test]
fn medium_odd_size() {
    case("medium", "odd", None, [3e-5, 5e-4, 4e-3, 115.0]);
}

#[test]
fn medium_subject() {
    case("medium", "subject", None, [1e-5, 2e-4, 5e-4, 115.0]);
}

#[test]
fn fine_bigshift() {
    case("fine", "bigshift", None, [2e-6, 2e-5, 5e-4, 130.0]);
}

#[test]
fn fine_homography() {
    case("fine", "homography", None, [1.5e-5, 2.5e-4, 1.5e-3, 115.0]);
}

#[test]
fn fine_stereo() {
    case("fine", "stereo", None, [5e-5, 6e-4, 2.5e-2, 90.0]);
}

#[test]
fn fine_subject_with_initial_flow() {
    case(
        "fine",
        "subject",
        Some("medium_subject"),
        [1e-6, 1e-5, 2.5e-4, 125.0],
    );
}

#[test]
fn thread_count_does_not_change_the_flow() {
    let (a, b) = (frame("subject", "a"), frame("subject", "b"));
    let many = dis(&a, &b, &Params::MEDIUM, None).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one = pool.install(|| dis(&a, &b, &Params::MEDIUM, None).unwrap());
    assert_eq!(many, one);
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let small = GrayImage::new(20, 12);
    let err = dis(&small, &small, &Params::MEDIUM, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("too small"), "{err}");
    let (a, b) = (frame("subject", "a"), frame("shift", "b"));
    let err = dis(&a, &b, &Params::MEDIUM, None).unwrap_err().to_string();
    assert!(err.contains("one size"), "{err}");
    let a = frame("subject", "a");
    let wrong = Flow::zeros(10, 10);
    let err = dis(&a, &a, &Params::MEDIUM, Some(&wrong))
        .unwrap_err()
        .to_string();
    assert!(err.contains("initial flow"), "{err}");
    let mut p = Params::MEDIUM;
    p.patch_size = 40;
    let err = dis(&a, &a, &p, None).unwrap_err().to_string();
    assert!(err.contains("patch_size"), "{err}");
    p = Params::MEDIUM;
    p.gradient_descent_iterations = 0;
    assert!(dis(&a, &a, &p, None).is_err());
    p = Params::MEDIUM;
    p.patch_stride = 9;
    assert!(dis(&a, &a, &p, None).is_err());
}

#[test]
fn presets_are_opencvs() {
    assert_eq!(
        (
            Params::ULTRAFAST.finest_scale,
            Params::ULTRAFAST.gradient_descent_iterations
        ),
        (2, 12)
    );
    assert_eq!(Params::ULTRAFAST.variational_refinement_iterations, 0);
    assert_eq!(
        (
            Params::FAST.finest_scale,
            Params::FAST.patch_stride,
            Params::FAST.gradient_descent_iterations
        ),
        (2, 4, 16)
    );
    assert_eq!(
        (
            Params::MEDIUM.finest_scale,
            Params::MEDIUM.patch_stride,
            Params::MEDIUM.gradient_descent_iterations
        ),
        (1, 3, 25)
    );
    let f = Params::DEFORUM_FINE;
    assert_eq!(
        (
            f.finest_scale,
            f.patch_size,
            f.patch_stride,
            f.gradient_descent_iterations
        ),
        (0, 8, 4, 192)
    );
}
