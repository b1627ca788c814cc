//! Hybrid motion Perspective/Affine: the matrix between two real photos (features, matching,
//! RANSAC) and the REFLECT_101 warp, on tests/data/flow/pairs/'s 461x347 `odd` pair.

use std::path::Path;

use anim::flow::gray;
use anim::hybrid::matrix;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flow/pairs");
    let load = |n: &str| image::open(dir.join(n)).unwrap().to_rgb8();
    let (a, b) = (load("odd_a.png"), load("odd_b.png"));
    let (ga, gb) = (gray(&a), gray(&b));
    let mut g = c.benchmark_group("hybrid_matrix_461x347");
    g.sample_size(20);
    g.bench_function("perspective", |x| x.iter(|| matrix::perspective(&ga, &gb)));
    g.bench_function("affine", |x| x.iter(|| matrix::affine(&ga, &gb)));
    let m = matrix::perspective(&ga, &gb);
    g.bench_function("warp_reflect101", |x| {
        x.iter(|| matrix::warp_reflect101(&a, &m))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
