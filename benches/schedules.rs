//! Resolving every schedule of a 10,000-frame scene: Deforum's default settings file with its five
//! ControlNet units switched on (so the schedule set matches scripts/bench_deforum_schedules.py).

use criterion::{Criterion, criterion_group, criterion_main};

fn scene_10k() -> anim::scene::Scene {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/deforum/default_settings.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["max_frames"] = 10_000.into();
    for i in 1..=5 {
        v[format!("cn_{i}_enabled")] = true.into();
    }
    let (scene, _) = anim::scene::deforum::from_settings(&v.to_string(), &path).unwrap();
    scene
}

fn bench(c: &mut Criterion) {
    let scene = scene_10k();
    let n = scene.schedules().unwrap().columns().numeric().len();
    eprintln!("{n} numeric schedules x 10000 frames");
    c.bench_function("schedules/deforum_defaults_10k_frames", |b| {
        b.iter(|| scene.schedules().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
