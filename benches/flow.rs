//! Farneback optical flow at 512x512 with Deforum's parameters, on one thread (a local rayon
//! pool) and on the default pool; scripts/bench_flow.py times OpenCV the same way.

use anim::flow::farneback::{Params, farneback};
use anim::flow::gray;
use criterion::{Criterion, criterion_group, criterion_main};
use image::imageops::FilterType;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flow/pairs");
    let load = |name: &str| {
        let img = image::open(dir.join(name)).unwrap().to_rgb8();
        gray(&image::imageops::resize(
            &img,
            512,
            512,
            FilterType::Triangle,
        ))
    };
    let (a, b) = (load("shift_a.png"), load("shift_b.png"));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("farneback/512x512/deforum");
    g.sample_size(20);
    g.bench_function("1 thread", |bch| {
        bch.iter(|| one.install(|| farneback(&a, &b, &Params::DEFORUM, None).unwrap()))
    });
    g.bench_function("default threads", |bch| {
        bch.iter(|| farneback(&a, &b, &Params::DEFORUM, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
