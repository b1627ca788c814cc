//! RAFT through ONNX: one flow of a 256x256 real-photo pair (tests/data/flow/pairs/shift_*),
//! everything `Raft::flow` does (BGR planes in [-1, 1], the run, the interleaved flow). The model
//! is the tiny test export unless `RAFT_MODEL` names an export folder (e.g. raft_large from
//! scripts/export_raft.py; random weights time the same as real ones). Compare with
//! scripts/bench_raft.py, which times onnxruntime's Python API on the same file and frames.

use std::path::{Path, PathBuf};

use anim::flow::raft::Raft;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let load = |s: &str| {
        image::open(root.join(format!("tests/data/flow/pairs/shift_{s}.png")))
            .unwrap()
            .to_rgb8()
    };
    let (a, b) = (load("a"), load("b"));
    let dir = std::env::var_os("RAFT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/tiny-raft"));
    let mut raft = Raft::load(&dir).unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut g = c.benchmark_group("raft");
    g.sample_size(10);
    g.bench_function(format!("flow 256x256 {name}"), |bench| {
        bench.iter(|| raft.flow(&a, &b).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
