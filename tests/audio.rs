//! Audio-reactive schedules: the `[audio]` table's analysis (tempo, beats, bands), its variables
//! in schedule expressions and motion scripts, the plot, the soundtrack, and the errors.

use std::path::{Path, PathBuf};

use anim::scene::Scene;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A 16-bit PCM WAV written by hand (RIFF header + interleaved samples).
fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    let mut b = Vec::new();
    b.extend(b"RIFF");
    b.extend((36 + data.len() as u32).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(16u32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * u32::from(channels) * 2).to_le_bytes());
    b.extend((channels * 2).to_le_bytes());
    b.extend(16u16.to_le_bytes());
    b.extend(b"data");
    b.extend((data.len() as u32).to_le_bytes());
    b.extend(data);
    std::fs::write(path, b).unwrap();
}

/// Clicks (5 ms decaying bursts) every 60/bpm s from `first` s, stereo 44.1 kHz interleaved.
fn click_track(bpm: f64, first: f64, seconds: f64) -> Vec<f32> {
    let rate = 44_100.0;
    let n = (seconds * rate) as usize;
    let mut mono = vec![0.0f32; n];
    let mut k = 0;
    loop {
        let start = ((first + k as f64 * 60.0 / bpm) * rate).round() as usize;
        if start >= n {
            break;
        }
        for i in 0..220.min(n - start) {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            mono[start + i] = (0.8 * (-(i as f64) / 60.0).exp() * sign) as f32;
        }
        k += 1;
    }
    mono.iter().flat_map(|&s| [s, s]).collect()
}

/// Writes `scene.toml` with `body` into `dir` and loads it.
fn load(dir: &Path, body: &str) -> Result<Scene, String> {
    let path = dir.join("scene.toml");
    std::fs::write(&path, body).unwrap();
    Scene::load(&path).map_err(|e| e.to_string())
}

const CLICK_SCENE: &str = r#"
[image]
width = 64
height = 64
[animation]
max_frames = 240
[output]
fps = 24
[motion]
zoom = "0:(1 + 0.05*beat)"
[audio]
file = "clicks.wav"
"#;

#[test]
fn click_track_beats_fall_on_the_clicks_and_the_tempo_is_120() {
    let dir = tempfile::tempdir().unwrap();
    // clicks at 0.25 + 0.5k s: frames 6, 18, 30, … at 24 fps
    write_wav(
        &dir.path().join("clicks.wav"),
        44_100,
        2,
        &click_track(120.0, 0.25, 10.0),
    );
    let scene = load(dir.path(), CLICK_SCENE).unwrap();
    let a = scene.audio_features().expect("analysed");
    assert!((a.bpm - 120.0).abs() < 1.0, "bpm {}", a.bpm);
    let clicks: Vec<usize> = (0..20).map(|k| 6 + 12 * k).collect();
    let peaks: Vec<usize> = (0..a.beat.len()).filter(|&f| a.beat[f] == 1.0).collect();
    eprintln!(
        "bpm {}, beat peaks {peaks:?}, beat times {:?}",
        a.bpm, a.beat_times
    );
    // measured: all 20 clicks found, every peak on the click's frame, beat times 6-17 ms early
    // (beats fall on the 11.6 ms hop grid; 43 hops = 499.2 ms drift until the path corrects), bpm 120.06
    assert_eq!(peaks.len(), 20, "beat peaks {peaks:?}");
    for p in &peaks {
        let d = clicks.iter().map(|&c| c.abs_diff(*p)).min().unwrap();
        assert!(d <= 1, "beat peak at frame {p} is {d} frames from a click");
    }
    for (k, t) in a.beat_times.iter().enumerate() {
        let click = 0.25 + 0.5 * k as f64;
        assert!(
            (t - click).abs() < 0.018,
            "beat {k} at {t} s, click at {click} s"
        );
    }
    assert!((a.bpm - 120.0).abs() < 0.1, "bpm {}", a.bpm);
    // beats decay between the clicks
    let f = peaks[2];
    assert!(a.beat[f + 1] < 1.0 && a.beat[f + 4] < a.beat[f + 1]);
    assert!(a.amp.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(a.onset.iter().copied().fold(0.0, f64::max) > 0.99);
    // the expression sees them
    let s = scene.frame_schedules().unwrap();
    let zoom = &s
        .columns()
        .numeric()
        .iter()
        .find(|(n, _)| n == "zoom")
        .unwrap()
        .1;
    for (f, z) in zoom.iter().enumerate() {
        assert!((z - (1.0 + 0.05 * a.beat[f])).abs() < 1e-12, "frame {f}");
    }
}

#[test]
fn beats_at_a_frame_rate_that_does_not_divide_the_sample_rate() {
    // 29.97 fps: 735.7 samples per frame at 22 050 Hz
    let stereo = click_track(120.0, 0.25, 8.0);
    let mono: Vec<f32> = stereo.iter().step_by(2).copied().collect();
    // the analysis at 44.1 kHz (no decoding): sizes scale with the rate
    let settings = anim::audio::AudioSettings {
        fft_size: 2048,
        hop: 512,
        ..Default::default()
    };
    let fps = 29.97;
    let a = anim::audio::analyse(&mono, 44_100, &settings, 240, fps).unwrap();
    assert!((a.bpm - 120.0).abs() < 0.1, "bpm {}", a.bpm);
    let peaks: Vec<usize> = (0..240).filter(|&f| a.beat[f] == 1.0).collect();
    assert_eq!(peaks.len(), 16, "{peaks:?}");
    for (k, p) in peaks.iter().enumerate() {
        let click = ((0.25 + 0.5 * k as f64) * fps).round() as usize;
        assert!(
            p.abs_diff(click) <= 1,
            "beat {k} at frame {p}, click at {click}"
        );
    }
}

#[test]
fn music_bands_follow_the_instruments() {
    let dir = tempfile::tempdir().unwrap();
    let music = root().join("tests/data/audio/music.m4a");
    let body = format!(
        "[animation]\nmax_frames = 192\n[output]\nfps = 24\n[audio]\nfile = \"{}\"\n",
        music.display()
    );
    let scene = load(dir.path(), &body).unwrap();
    let a = scene.audio_features().unwrap();
    // sections of 48 frames: chords, chords + kick, chords + kick + hats, hats
    let mean = |v: &[f64], s: usize| v[s * 48 + 4..s * 48 + 44].iter().sum::<f64>() / 40.0;
    let (bass, mid, treble) = (&a.bass, &a.mid, &a.treble);
    eprintln!(
        "bass {:?}\nmid {:?}\ntreble {:?}\nbpm {}",
        (0..4).map(|s| mean(bass, s)).collect::<Vec<_>>(),
        (0..4).map(|s| mean(mid, s)).collect::<Vec<_>>(),
        (0..4).map(|s| mean(treble, s)).collect::<Vec<_>>(),
        a.bpm
    );
    assert!(mean(bass, 1) > 4.0 * mean(bass, 0), "the kick is bass");
    assert!(mean(bass, 3) < 0.1, "no bass under the hats alone");
    assert!(
        mean(mid, 0) > 0.3 && mean(mid, 3) < 0.1,
        "the chords are mid"
    );
    assert!(
        mean(treble, 2) > 4.0 * mean(treble, 1),
        "the hats are treble"
    );
    assert!((a.bpm - 120.0).abs() < 1.0, "bpm {}", a.bpm);
    for v in a.series() {
        assert!(v.1.iter().all(|x| x.is_finite()), "{}", v.0);
    }
}

#[test]
fn motion_scripts_and_prompts_read_the_audio_variables() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(
        &dir.path().join("clicks.wav"),
        44_100,
        2,
        &click_track(120.0, 0.25, 3.0),
    );
    std::fs::write(
        dir.path().join("pulse.rhai"),
        "fn frame(ctx) { #{ angle: 10.0 * ctx.beat + ctx.bpm * 0.0 } }\n",
    )
    .unwrap();
    let body = CLICK_SCENE
        .replace("max_frames = 240", "max_frames = 48")
        .replace("[motion]\n", "[motion]\nscript = \"pulse.rhai\"\n")
        + "[prompts]\n\"0\" = \"a (cat:`1 + beat`)\"\n";
    let scene = load(dir.path(), &body).unwrap();
    let a = scene.audio_features().unwrap();
    let s = scene.frame_schedules().unwrap();
    let angle = &s
        .columns()
        .numeric()
        .iter()
        .find(|(n, _)| n == "angle")
        .unwrap()
        .1;
    // a scene moved elsewhere (farm, batch) keeps its audio file
    let mut moved = scene.clone();
    moved.absolutize_paths().unwrap();
    assert_eq!(
        moved.audio.as_ref().unwrap().file,
        std::path::absolute(dir.path().join("clicks.wav")).unwrap()
    );
    // prompt math: the click of frame 6 is a beat
    assert_eq!(a.beat[6], 1.0);
    assert_eq!(scene.prompt_at(6).positive, "a (cat:2)");
    assert_eq!(angle.len(), 48);
    for (f, (v, b)) in angle.iter().zip(&a.beat).enumerate() {
        assert!((v - 10.0 * b).abs() < 1e-9, "frame {f}");
    }
}

#[test]
fn plot_has_the_audio_panels() {
    let dir = tempfile::tempdir().unwrap();
    let music = root().join("tests/data/audio/music.m4a");
    let body = format!(
        "[animation]\nmax_frames = 96\n[output]\nfps = 24\n[motion]\nzoom = \"0:(1 + 0.02*bass)\"\n[audio]\nfile = \"{}\"\n",
        music.display()
    );
    let scene = load(dir.path(), &body).unwrap();
    let out = dir.path().join("plot.png");
    anim::schedule::export::export(
        &scene,
        anim::schedule::export::Format::Png,
        &["zoom".to_string()],
        Some(&out),
    )
    .unwrap();
    let img = image::open(&out).unwrap();
    // zoom + 7 audio panels, 3 per row: 3 rows
    assert_eq!((img.width(), img.height()), (3 * 420, 3 * 200));
    // `anim validate` says what it found
    let report = anim::check::check(&scene, None).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("[audio]") && n.contains("120.0 BPM (estimated)")),
        "{:?}",
        report.notes
    );
}

#[test]
fn the_audio_file_is_the_soundtrack_and_lasts_as_long_as_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let music = root().join("tests/data/audio/music.m4a");
    let body = format!(
        "[image]\nwidth = 64\nheight = 64\n[animation]\nmax_frames = 60\n[output]\nfps = 24\n[audio]\nfile = \"{}\"\n",
        music.display()
    );
    let scene = load(dir.path(), &body).unwrap();
    assert_eq!(scene.soundtrack(), Some(music.as_path()));
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("frames")).unwrap();
    for i in 0..60 {
        let img = image::RgbImage::from_pixel(64, 64, image::Rgb([i as u8 * 4, 100, 50]));
        img.save(anim::output::frame_path(&out, i)).unwrap();
    }
    anim::render::check_settings(&scene).unwrap();
    let mp4 = anim::render::encode_videos(&scene, &out, 60).unwrap();
    let v = anim::output::probe_video(&mp4).unwrap();
    let video_s = v.frames as f64 / v.fps;
    let audio_s = anim::output::audio_duration(&mp4).unwrap();
    eprintln!("video {video_s} s, audio {audio_s} s");
    // cut at the video's end: within one AAC frame (1024 samples at 44.1 kHz)
    assert!(
        (audio_s - video_s).abs() <= 1024.0 / 44_100.0 + 1e-6,
        "audio {audio_s} s, video {video_s} s"
    );
    // [output] soundtrack wins
    let other = root().join("tests/data/audio/sine440_3s.m4a");
    let scene = load(
        dir.path(),
        &format!("{body}[output]\nsoundtrack = \"{}\"\n", other.display())
            .replace("[output]\nfps = 24\n", "")
            .replace("[output]\n", "[output]\nfps = 24\n"),
    )
    .unwrap();
    assert_eq!(scene.soundtrack(), Some(other.as_path()));
    // a WAV (PCM, which an mp4 cannot hold) is re-encoded as AAC
    write_wav(
        &dir.path().join("clicks.wav"),
        44_100,
        2,
        &click_track(120.0, 0.25, 4.0),
    );
    let scene = load(
        dir.path(),
        &body.replace(&music.display().to_string(), "clicks.wav"),
    )
    .unwrap();
    let mp4 = anim::render::encode_videos(&scene, &out, 60).unwrap();
    let audio_s = anim::output::audio_duration(&mp4).unwrap();
    eprintln!("wav soundtrack: audio {audio_s} s");
    assert!(
        (audio_s - video_s).abs() <= 1024.0 / 44_100.0 + 1e-6,
        "audio {audio_s} s, video {video_s} s"
    );
    let back = anim::output::decode_audio_mono(&mp4, 22_050).unwrap();
    let a = anim::audio::analyse(
        &back,
        22_050,
        &anim::audio::AudioSettings::default(),
        60,
        24.0,
    )
    .unwrap();
    let peaks: Vec<usize> = (0..60).filter(|&f| a.beat[f] == 1.0).collect();
    assert_eq!(
        peaks,
        [6, 18, 30, 42, 54],
        "the clicks survive the re-encoding"
    );
}

#[test]
fn example_scene_evaluates() {
    let scene = Scene::load(&root().join("examples/audio-reactive.toml")).unwrap();
    let a = scene.audio_features().unwrap();
    assert!((a.bpm - 120.0).abs() < 1.0, "bpm {}", a.bpm);
    scene.frame_schedules().unwrap();
}

#[test]
fn errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[animation]\nmax_frames = 10\n[motion]\nzoom = \"0:(1 + 0.05*beat)\"\n";
    // an audio variable without [audio]
    let e = load(dir.path(), base).unwrap_err();
    assert!(
        e.contains("`beat` is an audio variable") && e.contains("[audio]"),
        "{e}"
    );
    // … or in a motion script
    std::fs::write(
        dir.path().join("beat.rhai"),
        "fn frame(ctx) { #{ angle: 10.0 * ctx.beat } }\n",
    )
    .unwrap();
    let e = load(
        dir.path(),
        "[animation]\nmax_frames = 10\n[motion]\nscript = \"beat.rhai\"\n",
    )
    .unwrap_err();
    assert!(
        e.contains("beat.rhai")
            && e.contains("`ctx.beat`, an audio variable")
            && e.contains("[audio]"),
        "{e}"
    );
    // a missing file
    let e = load(dir.path(), &format!("{base}[audio]\nfile = \"nope.mp3\"\n")).unwrap_err();
    assert!(
        e.contains("[audio] file = \"nope.mp3\"") && e.contains("does not exist"),
        "{e}"
    );
    // an undecodable file
    std::fs::write(dir.path().join("bad.mp3"), b"this is not audio at all").unwrap();
    let e = load(dir.path(), &format!("{base}[audio]\nfile = \"bad.mp3\"\n")).unwrap_err();
    assert!(
        e.contains("[audio] file = \"bad.mp3\"") && e.contains("cannot read"),
        "{e}"
    );
    // a file without audio
    let img = dir.path().join("pic.png");
    image::RgbImage::new(8, 8).save(&img).unwrap();
    let e = load(dir.path(), &format!("{base}[audio]\nfile = \"pic.png\"\n")).unwrap_err();
    assert!(e.contains("no audio stream"), "{e}");
    // sizes out of range, before any decoding
    write_wav(&dir.path().join("a.wav"), 22_050, 1, &[0.0; 22_050]);
    for (key, v, want) in [
        ("fft_size", "1000", "power of two"),
        ("fft_size", "65536", "256..=8192"),
        ("hop", "0", "32..="),
        ("smooth", "0", "1..="),
        ("attack", "-1", "attack"),
        ("beat_decay", "0", "beat_decay"),
        ("bpm", "1000", "30..=300"),
    ] {
        let e = load(
            dir.path(),
            &format!("{base}[audio]\nfile = \"a.wav\"\n{key} = {v}\n"),
        )
        .unwrap_err();
        assert!(
            e.contains(&format!("[audio] {key}")) && e.contains(want),
            "{e}"
        );
    }
    // an unknown key
    let e = load(
        dir.path(),
        &format!("{base}[audio]\nfile = \"a.wav\"\nwindow = 3\n"),
    )
    .unwrap_err();
    assert!(e.contains("window"), "{e}");
    // silence: no beats, bpm 0, every value 0
    let scene = load(dir.path(), &format!("{base}[audio]\nfile = \"a.wav\"\n")).unwrap();
    let a = scene.audio_features().unwrap();
    assert_eq!(a.bpm, 0.0);
    assert!(a.beat.iter().all(|v| *v == 0.0));
    // a user variable of the same name
    let e = load(
        dir.path(),
        &format!("{base}[variables]\namp = 1\n[audio]\nfile = \"a.wav\"\n"),
    )
    .unwrap_err();
    assert!(e.contains("[variables] amp"), "{e}");
}
