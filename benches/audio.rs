//! The `[audio]` analysis: decoding the 8 s fixture (AAC, 44.1 kHz stereo) to mono 22 050 Hz,
//! and analysing 60 s of audio into 1,440 frames at 24 fps (STFT, bands, onsets, tempo, beats).

use criterion::{Criterion, criterion_group, criterion_main};

/// 60 s of a 120 BPM click train over a two-note drone, mono at 22 050 Hz.
fn signal() -> Vec<f32> {
    let rate = anim::audio::SAMPLE_RATE as usize;
    (0..60 * rate)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let beat = (i % (rate / 2)) as f32 / rate as f32;
            0.1 * (2.0 * std::f32::consts::PI * 330.0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 55.0 * t).sin()
                + 0.8 * (-beat / 0.005).exp() * (2.0 * std::f32::consts::PI * 3000.0 * t).sin()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let music = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/audio/music.m4a");
    c.bench_function("audio/decode_8s_aac_to_mono_22050", |b| {
        b.iter(|| anim::output::decode_audio_mono(&music, anim::audio::SAMPLE_RATE).unwrap())
    });
    let x = signal();
    let settings = anim::audio::AudioSettings::default();
    c.bench_function("audio/analyse_60s_1440_frames", |b| {
        b.iter(|| {
            anim::audio::analyse(&x, anim::audio::SAMPLE_RATE, &settings, 1440, 24.0).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
