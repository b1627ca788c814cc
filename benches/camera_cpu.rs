//! CPU time per call (all threads, from /proc/self/stat) of the 3D camera, the perspective flip and
//! the 2D warp, for comparisons on a shared machine where wall time is noisy; scripts/bench_camera.py
//! --cpu measures Deforum and OpenCV the same way. Linux only; run with
//! `cargo bench --bench camera_cpu [-- NAME_FILTER...]`.

use std::time::{Duration, Instant};

use anim::camera::warp2d::{Flip, Motion2D, warp_2d, warp_2d_flip};
use anim::camera::warp3d::{Motion3D, warp_3d};
use anim::scene::{Border, PaddingMode, SamplingMode};

/// User + system CPU seconds of this process so far (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // fields 14 and 15 of the line are utime and stime; `after` starts at field 3
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Runs `f` for at least 3 s (unless a name filter given on the command line, as
/// `cargo bench --bench camera_cpu -- bicubic`, leaves it out) and prints its CPU time per call.
fn measure(name: &str, mut f: impl FnMut()) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|p| name.contains(p.as_str())) {
        return;
    }
    f();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(3) || n < 5 {
        f();
        n += 1;
    }
    let cpu = (cpu_seconds() - c0) / n as f64 * 1000.0;
    println!("anim {name}: {cpu:.2} ms CPU per call ({n} calls)");
}

fn main() {
    let m = Motion3D {
        translation_x: 3.0,
        translation_y: -2.0,
        translation_z: 10.0,
        rotation_x: 1.0,
        rotation_y: -1.5,
        rotation_z: 2.0,
        fov: 60.0,
        ..Motion3D::IDENTITY
    };
    let flip = Flip {
        theta: 5.0,
        phi: 12.0,
        gamma: -8.0,
        fv: 60.0,
    };
    let m2 = Motion2D {
        angle: 3.0,
        zoom: 1.04,
        translation_x: 2.5,
        translation_y: -1.5,
        ..Motion2D::IDENTITY
    };
    for size in [512u32, 1024] {
        let img = image::RgbImage::from_fn(size, size, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
        });
        let raw: Vec<f32> = (0..size * size)
            .map(|i| {
                let (x, y) = (
                    (i % size) as f32 / size as f32,
                    (i / size) as f32 / size as f32,
                );
                2.0 + 3.0 * y
                    + 4.0 * (-((x - 0.35) / 0.18).powi(2) - ((y - 0.45) / 0.25).powi(2)).exp()
            })
            .collect();
        for (n, s) in [
            ("bicubic", SamplingMode::Bicubic),
            ("bilinear", SamplingMode::Bilinear),
            ("nearest", SamplingMode::Nearest),
        ] {
            measure(&format!("warp_3d/{size}x{size}/flat/{n}"), || {
                drop(warp_3d(&img, &m, None, PaddingMode::Border, s))
            });
        }
        measure(&format!("warp_3d/{size}x{size}/depth/bicubic"), || {
            let z = anim::camera::depth::depth_to_z(&raw);
            drop(warp_3d(
                &img,
                &m,
                z.as_deref(),
                PaddingMode::Border,
                SamplingMode::Bicubic,
            ))
        });
        measure(&format!("depth_to_z/{size}x{size}"), || {
            drop(anim::camera::depth::depth_to_z(&raw))
        });
        let bm = flip.matrix(size, size).expect("valid flip");
        measure(&format!("flip_2d/{size}x{size}/replicate"), || {
            drop(warp_2d_flip(&img, &m2, &bm, Border::Replicate))
        });
        measure(&format!("warp_2d/{size}x{size}/replicate"), || {
            drop(warp_2d(&img, &m2, Border::Replicate))
        });
    }
}
