//! Motion scripts: the cost of one `fn frame(ctx)` call (building the context map with every
//! numeric schedule, the call, applying the result), measured over a 1,000-frame scene and
//! reported per frame. Also the bundled presets and the whole resolution of a scripted scene.

use std::path::Path;

use anim::motion::{MotionScript, ScriptLimits};
use anim::scene::Scene;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FRAMES: usize = 1000;

fn scene(body: &str) -> Scene {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = format!(
        "[animation]\nmax_frames = {FRAMES}\n[generation]\nseed = 7\n[variables]\norbit_period = 96\n{body}"
    );
    Scene::from_toml(&text, &dir.join("bench.toml")).unwrap()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = scene("");
    let keyframed = base.schedules().unwrap();
    let ctx = base.context();
    let mut g = c.benchmark_group("motion_script");
    g.throughput(Throughput::Elements(FRAMES as u64));
    for name in ["orbit", "shake", "pulse"] {
        let path = root.join(format!("scripts/{name}.rhai"));
        let script = MotionScript::load(&path, name, ScriptLimits::default()).unwrap();
        g.bench_function(format!("{name}_{FRAMES}_frames"), |b| {
            b.iter(|| {
                let mut numeric = keyframed.columns().numeric().to_vec();
                script.run(&ctx, &mut numeric).unwrap();
                numeric
            })
        });
    }
    // the fixed cost per frame: context map, call, empty result
    let noop = MotionScript::compile("fn frame(ctx) { }", "noop", ScriptLimits::default()).unwrap();
    g.bench_function(format!("noop_{FRAMES}_frames"), |b| {
        b.iter(|| {
            let mut numeric = keyframed.columns().numeric().to_vec();
            noop.run(&ctx, &mut numeric).unwrap();
            numeric
        })
    });
    g.finish();
    let scripted = scene("[motion]\nscript = \"../scripts/orbit.rhai\"\n");
    let presets = scene(
        "[[motion.preset]]\nname = \"orbit_left\"\n[[motion.preset]]\nname = \"handheld_shake\"\n",
    );
    let mut g = c.benchmark_group("scene_schedules");
    g.bench_function(format!("keyframes_{FRAMES}_frames"), |b| {
        b.iter(|| base.schedules().unwrap())
    });
    g.bench_function(format!("two_presets_{FRAMES}_frames"), |b| {
        b.iter(|| presets.schedules().unwrap())
    });
    g.bench_function(format!("orbit_script_{FRAMES}_frames"), |b| {
        b.iter(|| scripted.schedules().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
