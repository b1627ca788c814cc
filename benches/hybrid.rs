//! Hybrid video's per-frame work at 512x512 (no depth model): the video frame's LANCZOS resize
//! from 1280x720, the composite with a Difference mask, equalize and auto-contrast, and the
//! optical-flow motion's work besides the flows (the consistency check with its blur, and the
//! flow applied to the picture, at factor 1 and at another factor).

use anim::flow::Flow;
use anim::flow::warp::{apply_flow, blur_consistency, filter_flow, make_consistency};
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
    // a smooth flow (a slight rotation and zoom about the centre, up to ~20 px) and its inverse
    let field = |sign: f32| {
        let mut v = Vec::with_capacity(2 * 512 * 512);
        for y in 0..512 {
            for x in 0..512 {
                let (dx, dy) = (x as f32 - 256.0, y as f32 - 256.0);
                v.push(sign * (0.03 * dx - 0.05 * dy));
                v.push(sign * (0.05 * dx + 0.03 * dy));
            }
        }
        Flow::from_vec(512, 512, v).unwrap()
    };
    let (fwd, bwd) = (field(1.0), field(-1.0));
    g.bench_function("consistency_blur2_filter", |b| {
        b.iter(|| {
            let m = make_consistency(&fwd, &bwd).unwrap();
            let m = blur_consistency(&m, 512, 512, 2).unwrap();
            filter_flow(&fwd, &m).unwrap()
        })
    });
    g.bench_function("apply_flow_factor_1", |b| {
        b.iter(|| apply_flow(&prev, &fwd, 1.0))
    });
    g.bench_function("apply_flow_factor_0.8", |b| {
        b.iter(|| apply_flow(&prev, &fwd, 0.8))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
