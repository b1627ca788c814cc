//! Hybrid video's per-frame work at 512x512 (no depth model): the video frame's LANCZOS resize
//! from 1280x720 and the composite with a Difference mask, equalize and auto-contrast.

use anim::hybrid::{CompositeValues, composite::composite, resize::lanczos_pil};
use anim::scene::{HybridComposite, HybridEqualize, HybridMaskType, HybridSettings};
use criterion::{Criterion, criterion_group, criterion_main};
use image::RgbImage;

fn photo(w: u32, h: u32, shift: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 7 + y * 3 + shift) % 256) as u8;
        image::Rgb([v, ((x ^ y) % 256) as u8, ((x * y / 64 + shift) % 256) as u8])
    })
}

fn bench(c: &mut Criterion) {
    let video = photo(1280, 720, 9);
    let prev = photo(512, 512, 0);
    let mut g = c.benchmark_group("hybrid_512");
    g.bench_function("lanczos_1280x720_to_512", |b| {
        b.iter(|| lanczos_pil(&video, 512, 512))
    });
    let frame = lanczos_pil(&video, 512, 512);
    let settings = HybridSettings {
        composite: HybridComposite::Normal,
        comp_mask_type: HybridMaskType::Difference,
        comp_mask_equalize: HybridEqualize::Both,
        comp_mask_auto_contrast: true,
        ..HybridSettings::default()
    };
    let values = CompositeValues {
        alpha: 0.5,
        mask_blend_alpha: 0.5,
        mask_contrast: 1.2,
        cutoff_low: 5,
        cutoff_high: 95,
    };
    g.bench_function("composite_difference_eq_auto", |b| {
        b.iter(|| composite(&prev, &frame, None, &settings, &values))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
