//! The 3D camera (Deforum's depth warp) and the perspective flip at 512x512 and 1024x1024.
//! Deforum's PyTorch path and OpenCV on the same inputs: scripts/bench_camera.py, both run by
//! scripts/bench_camera.sh.

use anim::camera::warp2d::{Flip, Motion2D, warp_2d_flip};
use anim::camera::warp3d::{Motion3D, warp_3d};
use anim::scene::{Border, PaddingMode, SamplingMode};
use criterion::{Criterion, criterion_group, criterion_main};

/// The same pattern as benches/warp.rs and scripts/bench_camera.py.
fn image(size: u32) -> image::RgbImage {
    image::RgbImage::from_fn(size, size, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8])
    })
}

/// A smooth inverse-depth map, turned into z as Deforum does.
fn depth(size: u32) -> Vec<f32> {
    let raw: Vec<f32> = (0..size * size)
        .map(|i| {
            let (x, y) = (
                (i % size) as f32 / size as f32,
                (i / size) as f32 / size as f32,
            );
            2.0 + 3.0 * y + 4.0 * (-((x - 0.35) / 0.18).powi(2) - ((y - 0.45) / 0.25).powi(2)).exp()
        })
        .collect();
    anim::camera::depth::depth_to_z(&raw).expect("varied map")
}

fn bench(c: &mut Criterion) {
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
        let img = image(size);
        let z = depth(size);
        for (name, s) in [
            ("bicubic", SamplingMode::Bicubic),
            ("bilinear", SamplingMode::Bilinear),
            ("nearest", SamplingMode::Nearest),
        ] {
            c.bench_function(&format!("warp_3d/{size}x{size}/flat/{name}"), |b| {
                b.iter(|| warp_3d(&img, &m, None, PaddingMode::Border, s))
            });
        }
        c.bench_function(&format!("warp_3d/{size}x{size}/depth/bicubic"), |b| {
            b.iter(|| {
                warp_3d(
                    &img,
                    &m,
                    Some(&z),
                    PaddingMode::Border,
                    SamplingMode::Bicubic,
                )
            })
        });
        c.bench_function(&format!("depth_to_z/{size}x{size}"), |b| {
            b.iter(|| anim::camera::depth::depth_to_z(&z))
        });
        let bm = flip.matrix(size, size).expect("valid flip");
        c.bench_function(&format!("flip_2d/{size}x{size}/replicate"), |b| {
            b.iter(|| warp_2d_flip(&img, &m2, &bm, Border::Replicate))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
