//! DIS Medium at 512x512 (a real photo pair, bilinearly upscaled), one thread and default
//! threads; scripts/bench_dis.py times OpenCV the same way.

use anim::flow::dis::{Params, dis};
use anim::flow::gray;
use criterion::{Criterion, criterion_group, criterion_main};
use image::imageops::FilterType;
use std::hint::black_box;
use std::path::Path;

fn frame(side: &str) -> image::GrayImage {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/flow/pairs/shift_{side}.png"));
    let img = image::open(p).unwrap().to_rgb8();
    gray(&image::imageops::resize(
        &img,
        512,
        512,
        FilterType::Triangle,
    ))
}

fn bench(c: &mut Criterion) {
    let (a, b) = (frame("a"), frame("b"));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    c.bench_function("dis_medium_512_1thread", |bn| {
        bn.iter(|| {
            one.install(|| dis(black_box(&a), black_box(&b), &Params::MEDIUM, None).unwrap())
        })
    });
    c.bench_function("dis_medium_512_default_threads", |bn| {
        bn.iter(|| dis(black_box(&a), black_box(&b), &Params::MEDIUM, None).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
