//! The 2D camera warp (OpenCV-exact bilinear warpPerspective) at 512x512 and 1024x1024.

use anim::camera::warp2d::{Motion2D, warp_2d};
use anim::scene::Border;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let m = Motion2D {
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
        c.bench_function(&format!("warp_2d/{size}x{size}/replicate"), |b| {
            b.iter(|| warp_2d(&img, &m, Border::Replicate))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
