//! Everything but the neural networks, per frame at 512x512: warp, colour match, contrast,
//! anti-blur, noise, PNG write and video encode (compare with scripts/bench_deforum_frame_ops.py).

use anim::camera::warp2d::{Motion2D, warp_2d};
use anim::effects::{self, color::MatchSpace, noise::NoiseKind, sharpen};
use anim::scene::Border;
use criterion::{Criterion, criterion_group, criterion_main};
use image::RgbImage;

fn photo(size: u32, shift: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| {
        let v = ((x * 7 + y * 3 + shift) % 256) as u8;
        image::Rgb([v, ((x ^ y) % 256) as u8, ((x * y / 64 + shift) % 256) as u8])
    })
}

fn bench(c: &mut Criterion) {
    let img = photo(512, 0);
    let sample = photo(512, 40);
    let m = Motion2D {
        angle: 0.5,
        zoom: 1.01,
        translation_x: 1.0,
        ..Motion2D::IDENTITY
    };
    let mut g = c.benchmark_group("frame_ops_512");
    g.bench_function("warp_2d", |b| {
        b.iter(|| warp_2d(&img, &m, Border::Replicate))
    });
    g.bench_function("color_match_lab", |b| {
        b.iter(|| effects::color::match_colors(&img, &sample, MatchSpace::Lab))
    });
    // what the render loop pays per frame: the sample is prepared once
    let target = effects::color::ColorTarget::new(&sample, MatchSpace::Lab);
    g.bench_function("color_match_lab_prepared", |b| {
        b.iter(|| target.apply(&img))
    });
    g.bench_function("contrast", |b| {
        b.iter(|| {
            let mut x = img.clone();
            effects::contrast(&mut x, 1.05);
            x
        })
    });
    g.bench_function("unsharp_k5", |b| {
        b.iter(|| sharpen::unsharp_mask(&img, 5, 1.0, 0.1, 0.0))
    });
    let perlin = NoiseKind::Perlin {
        octaves: 4,
        persistence: 0.5,
        res: (8, 8),
    };
    g.bench_function("noise_perlin", |b| {
        b.iter(|| effects::noise::add_noise(&img, 0.065, 42, perlin))
    });
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("f.png");
    g.bench_function("png_write", |b| {
        b.iter(|| anim::output::write_png_atomic(&png, &img).unwrap())
    });
    let frames: Vec<_> = (0..10)
        .map(|i| {
            let p = dir.path().join(format!("{i}.png"));
            photo(512, i * 9).save(&p).unwrap();
            p
        })
        .collect();
    let settings = anim::output::VideoSettings::h264(15.0, 17, "slow");
    let mp4 = dir.path().join("v.mp4");
    g.sample_size(10);
    g.bench_function("video_encode_10_frames", |b| {
        b.iter(|| anim::output::encode_mp4(&frames, &mp4, &settings).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
