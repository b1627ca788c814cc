//! Audio-reactive schedules: the scene's `[audio]` file analysed into per-frame variables
//! (`amp`, `onset`, `beat`, `bass`, `mid`, `treble`, `bpm`) that every schedule expression and
//! motion script can read.
//!
//! The file is decoded to mono at [`SAMPLE_RATE`] by [`crate::output::decode_audio_mono`]; a
//! short-time Fourier transform (Hann window of `fft_size` samples, `hop` samples apart, centred
//! with zero padding, realfft) gives the band energies and a spectral-flux onset envelope; the
//! tempo is the autocorrelation peak of that envelope weighted by librosa's log-normal prior
//! around 120 BPM, and the beats come from Ellis' dynamic-programming tracker (librosa's
//! `beat_track`), both written here from their published definitions.

use std::path::{Path, PathBuf};

use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

/// Rate the audio is resampled to before the analysis (librosa's default).
pub const SAMPLE_RATE: u32 = 22_050;

/// The per-frame variables, in the order they are added to expressions.
pub const VARIABLES: &[&str] = &["amp", "onset", "beat", "bass", "mid", "treble", "bpm"];

/// Allowed FFT sizes (powers of two).
pub const FFT_SIZES: std::ops::RangeInclusive<usize> = 256..=8192;
/// Largest smoothing window, attack, release or beat decay, in frames.
pub const MAX_SMOOTH_FRAMES: f64 = 1000.0;
/// Most STFT frames one analysis makes (`samples / hop + 1`): bounds the beat tracker's work.
pub const MAX_ANALYSIS_FRAMES: usize = 1 << 20;
/// Highest frame rate the analysis takes (22 samples per frame at 22 050 Hz).
pub const MAX_FPS: f64 = 1000.0;
/// Tempo range searched, in BPM; an override `bpm` must lie in it too.
pub const BPM_RANGE: std::ops::RangeInclusive<f64> = 30.0..=300.0;

/// The scene's `[audio]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSettings {
    /// The audio file (any format FFmpeg reads), relative to the scene file.
    pub file: PathBuf,
    /// Seconds of the file to skip before frame 0 (negative: the audio starts that much later).
    pub offset: f64,
    /// FFT window in samples at 22 050 Hz, a power of two within 256..=8192.
    pub fft_size: usize,
    /// Samples between two FFT windows, within 32..=`fft_size`.
    pub hop: usize,
    /// Centred moving average over this many frames (1 = none), within 1..=1000; applied to
    /// `amp`, `onset`, `bass`, `mid`, `treble` before attack/release.
    pub smooth: usize,
    /// Attack time constant in frames (0 = follow rises at once), within 0..=1000.
    pub attack: f64,
    /// Release time constant in frames (0 = follow falls at once), within 0..=1000.
    pub release: f64,
    /// `beat` decays as `exp(-frames since the beat / beat_decay)`, within 0.1..=1000 frames.
    pub beat_decay: f64,
    /// Upper edge of `bass` in Hz (from 20 Hz).
    pub bass_max_hz: f64,
    /// Lower edge of `treble` in Hz (up to 11 025 Hz); `mid` lies between the two edges.
    pub treble_min_hz: f64,
    /// A known tempo instead of the estimate (beats are then tracked at this tempo), 30..=300.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpm: Option<f64>,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            file: PathBuf::new(),
            offset: 0.0,
            fft_size: 1024,
            hop: 256,
            smooth: 1,
            attack: 0.0,
            release: 0.0,
            beat_decay: 4.0,
            bass_max_hz: 250.0,
            treble_min_hz: 4000.0,
            bpm: None,
        }
    }
}

impl AudioSettings {
    /// The keys of the `[audio]` table.
    pub const KEYS: &'static [&'static str] = &[
        "file",
        "offset",
        "fft_size",
        "hop",
        "smooth",
        "attack",
        "release",
        "beat_decay",
        "bass_max_hz",
        "treble_min_hz",
        "bpm",
    ];

    /// Checks every size and range; the message names the `[audio]` key and the allowed range.
    ///
    /// # Errors
    /// The first key out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.file.as_os_str().is_empty() {
            return Err("[audio] file is missing: write e.g. `file = \"song.mp3\"`".into());
        }
        self.check_ranges()
    }

    /// [`AudioSettings::validate`] without the file: every size and range.
    ///
    /// # Errors
    /// The first key out of range.
    pub fn check_ranges(&self) -> Result<(), String> {
        if !self.offset.is_finite() || self.offset.abs() > crate::output::MAX_AUDIO_SECONDS {
            return Err(format!(
                "[audio] offset = {}: must be a number of seconds within ±{}",
                self.offset,
                crate::output::MAX_AUDIO_SECONDS
            ));
        }
        if !FFT_SIZES.contains(&self.fft_size) || !self.fft_size.is_power_of_two() {
            return Err(format!(
                "[audio] fft_size = {}: must be a power of two within {}..={} (samples at {} Hz)",
                self.fft_size,
                FFT_SIZES.start(),
                FFT_SIZES.end(),
                SAMPLE_RATE
            ));
        }
        if !(32..=self.fft_size).contains(&self.hop) {
            return Err(format!(
                "[audio] hop = {}: must be within 32..={} (fft_size)",
                self.hop, self.fft_size
            ));
        }
        if !(1..=MAX_SMOOTH_FRAMES as usize).contains(&self.smooth) {
            return Err(format!(
                "[audio] smooth = {}: must be within 1..={MAX_SMOOTH_FRAMES} frames (1 = none)",
                self.smooth
            ));
        }
        for (key, v, lo) in [
            ("attack", self.attack, 0.0),
            ("release", self.release, 0.0),
            ("beat_decay", self.beat_decay, 0.1),
        ] {
            if !(lo..=MAX_SMOOTH_FRAMES).contains(&v) {
                return Err(format!(
                    "[audio] {key} = {v}: must be within {lo}..={MAX_SMOOTH_FRAMES} frames"
                ));
            }
        }
        let nyquist = f64::from(SAMPLE_RATE) / 2.0;
        if !(self.bass_max_hz > 20.0
            && self.bass_max_hz < self.treble_min_hz
            && self.treble_min_hz < nyquist)
        {
            return Err(format!(
                "[audio] bass_max_hz = {}, treble_min_hz = {}: need 20 < bass_max_hz < \
                 treble_min_hz < {nyquist}",
                self.bass_max_hz, self.treble_min_hz
            ));
        }
        if let Some(b) = self.bpm
            && !BPM_RANGE.contains(&b)
        {
            return Err(format!(
                "[audio] bpm = {b}: must be within {}..={}",
                BPM_RANGE.start(),
                BPM_RANGE.end()
            ));
        }
        Ok(())
    }
}

/// The analysis of an audio file: one value per video frame for each of [`VARIABLES`].
#[derive(Clone, PartialEq, Serialize)]
pub struct AudioFeatures {
    /// RMS of the frame's samples over the loudest frame's, 0..1.
    pub amp: Vec<f64>,
    /// Strongest spectral flux within the frame over the file's strongest, 0..1.
    pub onset: Vec<f64>,
    /// 1 at a frame holding a detected beat, then `exp(-frames since / beat_decay)`; 0 before
    /// the first beat.
    pub beat: Vec<f64>,
    /// RMS magnitude of 20 Hz..bass_max_hz over its loudest frame's, 0..1.
    pub bass: Vec<f64>,
    /// RMS magnitude of bass_max_hz..treble_min_hz, normalised as `bass`.
    pub mid: Vec<f64>,
    /// RMS magnitude of treble_min_hz..11 025 Hz, normalised as `bass`.
    pub treble: Vec<f64>,
    /// Tempo estimate (or the `[audio] bpm` override); 0 when the file has no onsets.
    pub bpm: f64,
    /// Times of the detected beats, in seconds from frame 0.
    pub beat_times: Vec<f64>,
    /// sha256 (hex) of every value above: scenes whose audio analyses differ have different
    /// [`crate::scene::Scene::fingerprint`]s.
    pub digest: String,
}

impl std::fmt::Debug for AudioFeatures {
    /// A summary: a scene's `{:?}` should not print a value per frame.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AudioFeatures({} frames, {:.2} BPM, {} beats, {})",
            self.amp.len(),
            self.bpm,
            self.beat_times.len(),
            &self.digest[..self.digest.len().min(12)]
        )
    }
}

impl AudioFeatures {
    /// The variables as (name, one value per frame), in [`VARIABLES`] order (`bpm` repeated).
    pub fn series(&self) -> Vec<(&'static str, Vec<f64>)> {
        let n = self.amp.len();
        vec![
            ("amp", self.amp.clone()),
            ("onset", self.onset.clone()),
            ("beat", self.beat.clone()),
            ("bass", self.bass.clone()),
            ("mid", self.mid.clone()),
            ("treble", self.treble.clone()),
            ("bpm", vec![self.bpm; n]),
        ]
    }
}

/// Decodes `path` and analyses it for `frames` frames at `fps`.
///
/// # Errors
/// A missing or unreadable file, or one without samples (as [`crate::output::decode_audio_mono`]),
/// or settings out of range.
pub fn analyse_file(
    path: &Path,
    settings: &AudioSettings,
    frames: usize,
    fps: f64,
) -> Result<AudioFeatures, String> {
    settings.validate()?;
    let samples =
        crate::output::decode_audio_mono(path, SAMPLE_RATE).map_err(|e| format!("{e:#}"))?;
    analyse(&samples, SAMPLE_RATE, settings, frames, fps)
}

/// Analyses mono `samples` at `rate` Hz for `frames` video frames at `fps`; frame f covers the
/// samples `[(f/fps + offset)·rate, ((f+1)/fps + offset)·rate)`; frames past the end are silent.
///
/// # Errors
/// Settings out of range, an `fps` outside 0..=[`MAX_FPS`], more than an hour of samples,
/// more frames than [`crate::scene::MAX_FRAMES`] or more STFT frames than [`MAX_ANALYSIS_FRAMES`].
pub fn analyse(
    samples: &[f32],
    rate: u32,
    settings: &AudioSettings,
    frames: usize,
    fps: f64,
) -> Result<AudioFeatures, String> {
    settings.check_ranges()?;
    if !(fps > 0.0 && fps <= MAX_FPS) {
        return Err(format!(
            "[output] fps = {fps}: the [audio] analysis needs a frame rate within 0..={MAX_FPS}"
        ));
    }
    if samples.len() > (crate::output::MAX_AUDIO_SECONDS * f64::from(rate)) as usize + 1 {
        return Err(format!(
            "audio analysis: more than {} s of samples",
            crate::output::MAX_AUDIO_SECONDS
        ));
    }
    if frames > crate::scene::MAX_FRAMES {
        return Err(format!(
            "audio analysis: {frames} frames, at most {}",
            crate::scene::MAX_FRAMES
        ));
    }
    let sr = f64::from(rate);
    let (n_fft, hop) = (settings.fft_size, settings.hop);
    let frames_j = samples.len() / hop + 1;
    if frames_j > MAX_ANALYSIS_FRAMES {
        return Err(format!(
            "[audio] hop = {hop}: {:.0} s of audio gives {frames_j} analysis frames, at most \
             {MAX_ANALYSIS_FRAMES}; raise hop (256 covers an hour)",
            samples.len() as f64 / sr
        ));
    }
    let bin_hz = sr / n_fft as f64;
    let bins = |lo: f64, hi: f64| {
        let a = ((lo / bin_hz).ceil() as usize).clamp(1, n_fft / 2);
        let b = ((hi / bin_hz).floor() as usize).clamp(a, n_fft / 2);
        a..=b
    };
    let bands = [
        bins(20.0, settings.bass_max_hz),
        bins(settings.bass_max_hz, settings.treble_min_hz),
        bins(settings.treble_min_hz, sr / 2.0),
    ];
    let stft = stft_features(samples, n_fft, hop, &bands);
    let [bass_j, mid_j, treble_j] = stft.bands;
    let onset_j = stft.flux;
    let frame_rate = sr / hop as f64;

    // video frame f -> its sample range and the STFT frames centred in it
    let start = |f: usize| ((f as f64 / fps + settings.offset) * sr).floor();
    let per_frame = |series: &[f64], reduce: fn(&[f64]) -> f64| -> Vec<f64> {
        (0..frames)
            .map(|f| {
                let (a, b) = (start(f), start(f + 1));
                let (ja, jb) = ((a / hop as f64).ceil(), (b / hop as f64).ceil());
                if jb <= 0.0 || ja >= series.len() as f64 {
                    return 0.0;
                }
                let (ja, jb) = (ja.max(0.0) as usize, (jb as usize).min(series.len()));
                if ja < jb {
                    reduce(&series[ja..jb])
                } else {
                    // a hop longer than a frame: the nearest STFT frame
                    let j = (((a + b) / 2.0 / hop as f64).round() as usize).min(series.len() - 1);
                    series[j]
                }
            })
            .collect()
    };
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let max = |s: &[f64]| s.iter().copied().fold(0.0, f64::max);
    let amp: Vec<f64> = (0..frames)
        .map(|f| {
            let (a, b) = (start(f).max(0.0) as usize, start(f + 1).max(0.0) as usize);
            let (a, b) = (a.min(samples.len()), b.min(samples.len()));
            if a >= b {
                return 0.0;
            }
            let s: f64 = samples[a..b].iter().map(|&x| f64::from(x).powi(2)).sum();
            (s / (b - a) as f64).sqrt()
        })
        .collect();
    // normalised against the whole file, so the values do not depend on the frame count
    let whole = |series: &[f64]| max(series);
    let amp_ref = {
        let n = (samples.len() as f64 / sr * fps).ceil() as usize;
        let step = sr / fps;
        (0..n)
            .map(|f| {
                let (a, b) = (
                    (f as f64 * step) as usize,
                    (((f + 1) as f64 * step) as usize).min(samples.len()),
                );
                if a >= b {
                    return 0.0;
                }
                let s: f64 = samples[a..b].iter().map(|&x| f64::from(x).powi(2)).sum();
                (s / (b - a) as f64).sqrt()
            })
            .fold(0.0, f64::max)
    };
    let norm = |v: Vec<f64>, by: f64| -> Vec<f64> {
        v.into_iter()
            .map(|x| {
                if by > 0.0 {
                    (x / by).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    };
    // (clamped again: the running sums of the moving average may leave -1e-17)
    let smooth = |v: Vec<f64>| -> Vec<f64> {
        smooth(&v, settings.smooth, settings.attack, settings.release)
            .into_iter()
            .map(|x| x.clamp(0.0, 1.0))
            .collect()
    };
    let amp = smooth(norm(amp, amp_ref));
    let onset = smooth(norm(per_frame(&onset_j, max), whole(&onset_j)));
    let bass = smooth(norm(per_frame(&bass_j, mean), whole(&bass_j)));
    let mid = smooth(norm(per_frame(&mid_j, mean), whole(&mid_j)));
    let treble = smooth(norm(per_frame(&treble_j, mean), whole(&treble_j)));

    let bpm = match settings.bpm {
        Some(b) => b,
        None => estimate_tempo(&onset_j, frame_rate),
    };
    let beat_frames = if bpm > 0.0 {
        track_beats(&onset_j, frame_rate, bpm)
    } else {
        Vec::new()
    };
    let beat_times: Vec<f64> = beat_frames
        .iter()
        .map(|&j| j as f64 * hop as f64 / sr - settings.offset)
        .collect();
    let mut beat = vec![0.0; frames];
    let mut beats = beat_times
        .iter()
        .map(|t| (t * fps).round())
        .filter(|&f| f >= 0.0)
        .peekable();
    let mut last: Option<f64> = None;
    for (f, b) in beat.iter_mut().enumerate() {
        while beats.peek().is_some_and(|&k| k <= f as f64) {
            last = beats.next();
        }
        if let Some(k) = last {
            *b = (-(f as f64 - k) / settings.beat_decay).exp();
        }
    }
    let digest = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for v in [&amp, &onset, &beat, &bass, &mid, &treble, &beat_times] {
            for x in v.iter() {
                h.update(x.to_le_bytes());
            }
        }
        h.update(bpm.to_le_bytes());
        format!("{:x}", h.finalize())
    };
    Ok(AudioFeatures {
        amp,
        onset,
        beat,
        bass,
        mid,
        treble,
        bpm,
        beat_times,
        digest,
    })
}

/// A centred moving average over `window` frames, then a one-pole follower with separate attack
/// and release time constants (in frames): `y += (1 - exp(-1/τ))·(x - y)`.
pub fn smooth(x: &[f64], window: usize, attack: f64, release: f64) -> Vec<f64> {
    let n = x.len();
    let mut v = if window > 1 && n > 0 {
        let half_lo = (window - 1) / 2;
        let half_hi = window / 2;
        // prefix sums: O(n) whatever the window
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0.0);
        for v in x {
            prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
        }
        (0..n)
            .map(|i| {
                let (a, b) = (i.saturating_sub(half_lo), (i + half_hi + 1).min(n));
                (prefix[b] - prefix[a]) / (b - a) as f64
            })
            .collect()
    } else {
        x.to_vec()
    };
    let alpha = |tau: f64| {
        if tau > 0.0 {
            1.0 - (-1.0 / tau).exp()
        } else {
            1.0
        }
    };
    let (up, down) = (alpha(attack), alpha(release));
    if up < 1.0 || down < 1.0 {
        let mut y = v.first().copied().unwrap_or(0.0);
        for s in v.iter_mut() {
            let a = if *s > y { up } else { down };
            y += a * (*s - y);
            *s = y;
        }
    }
    v
}

/// What the short-time Fourier transform gives per analysis frame.
struct StftFeatures {
    /// RMS magnitude of each band's bins.
    bands: [Vec<f64>; 3],
    /// Spectral flux of the log-compressed magnitude: `mean_k max(0, L[j,k] - L[j-1,k])` with
    /// `L = ln(1 + 100·|X|)`; 0 at frame 0.
    flux: Vec<f64>,
}

/// Centred, Hann-windowed frames `hop` apart (zero padding at both ends), each reduced to its
/// band magnitudes and flux at once, so memory grows with the frame count only.
fn stft_features(
    samples: &[f32],
    n_fft: usize,
    hop: usize,
    bands: &[std::ops::RangeInclusive<usize>; 3],
) -> StftFeatures {
    let mut planner = RealFftPlanner::<f32>::new();
    let fft = planner.plan_fft_forward(n_fft);
    let window: Vec<f32> = (0..n_fft)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos()) as f32)
        .collect();
    let frames = samples.len() / hop + 1;
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut log = vec![0.0f32; output.len()];
    let mut prev = vec![0.0f32; output.len()];
    let half = (n_fft / 2) as isize;
    let mut out = StftFeatures {
        bands: [
            Vec::with_capacity(frames),
            Vec::with_capacity(frames),
            Vec::with_capacity(frames),
        ],
        flux: Vec::with_capacity(frames),
    };
    for j in 0..frames {
        let c = (j * hop) as isize;
        for (i, slot) in input.iter_mut().enumerate() {
            let k = c - half + i as isize;
            *slot = if k >= 0 && (k as usize) < samples.len() {
                samples[k as usize] * window[i]
            } else {
                0.0
            };
        }
        // lengths come from the same plan, so the transform cannot fail
        let _ = fft.process_with_scratch(&mut input, &mut output, &mut scratch);
        for (band, range) in out.bands.iter_mut().zip(bands) {
            let s: f64 = output[range.clone()]
                .iter()
                .map(|c| f64::from(c.norm_sqr()))
                .sum();
            band.push((s / range.clone().count() as f64).sqrt());
        }
        for (l, c) in log.iter_mut().zip(&output) {
            *l = (100.0 * c.norm()).ln_1p();
        }
        out.flux.push(if j == 0 {
            0.0
        } else {
            let s: f32 = prev.iter().zip(&log).map(|(a, b)| (b - a).max(0.0)).sum();
            f64::from(s) / log.len() as f64
        });
        std::mem::swap(&mut prev, &mut log);
    }
    out
}

/// Tempo of an onset envelope sampled at `frame_rate` Hz: the lag maximising its
/// autocorrelation weighted by `exp(-½·log2(bpm/120)²)` (librosa's prior), refined by a parabola
/// through the peak; 0 when the envelope is flat.
fn estimate_tempo(onset: &[f64], frame_rate: f64) -> f64 {
    let m = onset.iter().sum::<f64>() / onset.len().max(1) as f64;
    let x: Vec<f64> = onset.iter().map(|v| v - m).collect();
    let lag_of = |bpm: f64| 60.0 * frame_rate / bpm;
    let (lo, hi) = (
        lag_of(*BPM_RANGE.end()).floor().max(1.0) as usize,
        (lag_of(*BPM_RANGE.start()).ceil() as usize).min(x.len().saturating_sub(1)),
    );
    if lo + 2 > hi {
        return 0.0;
    }
    let acf = |lag: usize| -> f64 { x.iter().zip(&x[lag..]).map(|(a, b)| a * b).sum() };
    let values: Vec<f64> = (lo - 1..=hi + 1).map(|l| acf(l.min(x.len() - 1))).collect();
    let score = |i: usize| {
        let bpm = 60.0 * frame_rate / (lo - 1 + i) as f64;
        values[i] * (-0.5 * (bpm / 120.0).log2().powi(2)).exp()
    };
    let best = (1..values.len() - 1)
        .max_by(|&a, &b| score(a).total_cmp(&score(b)))
        .unwrap_or(1);
    if values[best] <= 0.0 {
        return 0.0;
    }
    let (a, b, c) = (values[best - 1], values[best], values[best + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom < 0.0 {
        (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let lag = (lo - 1 + best) as f64 + shift;
    60.0 * frame_rate / lag
}

/// Beat positions (envelope frames) by Ellis' dynamic programming: a Gaussian-smoothed envelope,
/// each beat scoring its envelope plus the best earlier beat's score less
/// `100·ln(gap/period)²`, backtracked from the last strong candidate.
fn track_beats(onset: &[f64], frame_rate: f64, bpm: f64) -> Vec<usize> {
    let n = onset.len();
    let period = 60.0 * frame_rate / bpm;
    if n < 2 || period < 1.0 {
        return Vec::new();
    }
    let mean = onset.iter().sum::<f64>() / n as f64;
    let sd = (onset.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    if sd <= 0.0 {
        return Vec::new();
    }
    let p = period.round() as isize;
    let kernel: Vec<f64> = (-p..=p)
        .map(|k| (-0.5 * (k as f64 * 32.0 / period).powi(2)).exp())
        .collect();
    let local: Vec<f64> = (0..n as isize)
        .map(|i| {
            kernel
                .iter()
                .enumerate()
                .filter_map(|(ki, w)| {
                    let j = i + ki as isize - p;
                    (0..n as isize)
                        .contains(&j)
                        .then(|| w * onset[j as usize] / sd)
                })
                .sum()
        })
        .collect();
    let local_max = local.iter().copied().fold(0.0, f64::max);
    let (min_gap, max_gap) = (
        (period / 2.0).round().max(1.0) as usize,
        (2.0 * period).round() as usize,
    );
    let mut cum = vec![0.0; n];
    let mut back: Vec<Option<usize>> = vec![None; n];
    let mut started = false;
    for i in 0..n {
        let mut best: Option<(f64, usize)> = None;
        if i >= min_gap {
            for gap in min_gap..=max_gap.min(i) {
                let j = i - gap;
                let s = cum[j] - 100.0 * (gap as f64 / period).ln().powi(2);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, j));
                }
            }
        }
        // frames before the envelope first rises start chains of their own
        started |= local[i] >= 0.01 * local_max;
        match best {
            Some((s, j)) if started => {
                cum[i] = local[i] + s;
                back[i] = Some(j);
            }
            _ => cum[i] = local[i],
        }
    }
    // the last beat: the last local maximum of `cum` above half the median of its maxima
    let maxima: Vec<usize> = (1..n.saturating_sub(1))
        .filter(|&i| cum[i] > cum[i - 1] && cum[i] >= cum[i + 1])
        .collect();
    if maxima.is_empty() {
        return Vec::new();
    }
    let mut vals: Vec<f64> = maxima.iter().map(|&i| cum[i]).collect();
    vals.sort_by(f64::total_cmp);
    let median = vals[vals.len() / 2];
    let Some(&last) = maxima.iter().rev().find(|&&i| cum[i] >= 0.5 * median) else {
        return Vec::new();
    };
    let mut beats = vec![last];
    while let Some(j) = back[*beats.last().unwrap_or(&0)] {
        beats.push(j);
    }
    beats.reverse();
    // trim leading and trailing beats on a weak envelope (silence before and after the music)
    let rms = (local.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
    let strong = |&&b: &&usize| local[b] > 0.5 * rms;
    let first = beats.iter().position(|b| strong(&b)).unwrap_or(beats.len());
    let end = beats
        .iter()
        .rposition(|b| strong(&b))
        .map_or(first, |i| i + 1);
    beats[first..end.max(first)].to_vec()
}

/// The audio file of a scene analysed for its frames: `None` without `[audio]`.
///
/// # Errors
/// As [`analyse_file`], naming the `[audio] file` key.
pub fn for_scene(
    settings: Option<&AudioSettings>,
    resolve: impl Fn(&Path) -> PathBuf,
    frames: usize,
    fps: f64,
) -> Result<Option<AudioFeatures>, String> {
    let Some(s) = settings else { return Ok(None) };
    s.validate()?;
    let path = resolve(&s.file);
    analyse_file(&path, s, frames, fps)
        .map(Some)
        .map_err(|e| format!("[audio] file = \"{}\": {e}", s.file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clicks(bpm: f64, seconds: f64, rate: u32) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        let mut x = vec![0.0f32; n];
        let step = 60.0 / bpm * f64::from(rate);
        let mut k = 0.0;
        while (k as usize) < n {
            for i in 0..200.min(n - k as usize) {
                x[k as usize + i] =
                    (0.9 * (-(i as f64) / 40.0).exp()) as f32 * if i % 2 == 0 { 1.0 } else { -1.0 };
            }
            k += step;
        }
        x
    }

    #[test]
    fn click_track_tempo_and_beats() {
        let x = clicks(120.0, 10.0, SAMPLE_RATE);
        let f = analyse(&x, SAMPLE_RATE, &AudioSettings::default(), 240, 24.0).unwrap();
        assert!((f.bpm - 120.0).abs() < 1.0, "bpm {}", f.bpm);
        assert!(f.beat_times.len() >= 18, "{:?}", f.beat_times);
    }

    #[test]
    fn offset_shifts_and_bpm_overrides() {
        // clicks at 0.5k s; skipping 0.25 s puts them at 0.25 + 0.5k s: frames 6, 18, … at 24 fps
        let x = clicks(120.0, 10.0, SAMPLE_RATE);
        let s = AudioSettings {
            offset: 0.25,
            ..AudioSettings::default()
        };
        let f = analyse(&x, SAMPLE_RATE, &s, 216, 24.0).unwrap();
        let peaks: Vec<usize> = (0..216).filter(|&i| f.beat[i] == 1.0).collect();
        assert_eq!(peaks, (0..18).map(|k| 6 + 12 * k).collect::<Vec<_>>());
        // a known tempo is taken as it is, and the beats follow it
        let s = AudioSettings {
            bpm: Some(60.0),
            ..AudioSettings::default()
        };
        let f = analyse(&x, SAMPLE_RATE, &s, 240, 24.0).unwrap();
        assert_eq!(f.bpm, 60.0);
        let gaps: Vec<f64> = f.beat_times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (g - 1.0).abs() < 0.02), "{gaps:?}");
    }

    #[test]
    fn ranges_are_checked() {
        let base = AudioSettings {
            file: "a.wav".into(),
            ..AudioSettings::default()
        };
        for (s, key) in [
            (
                AudioSettings {
                    fft_size: 1000,
                    ..base.clone()
                },
                "fft_size",
            ),
            (
                AudioSettings {
                    fft_size: 1 << 20,
                    ..base.clone()
                },
                "fft_size",
            ),
            (
                AudioSettings {
                    hop: 0,
                    ..base.clone()
                },
                "hop",
            ),
            (
                AudioSettings {
                    hop: 4096,
                    ..base.clone()
                },
                "hop",
            ),
            (
                AudioSettings {
                    smooth: 0,
                    ..base.clone()
                },
                "smooth",
            ),
            (
                AudioSettings {
                    smooth: 5000,
                    ..base.clone()
                },
                "smooth",
            ),
            (
                AudioSettings {
                    attack: -1.0,
                    ..base.clone()
                },
                "attack",
            ),
            (
                AudioSettings {
                    release: f64::NAN,
                    ..base.clone()
                },
                "release",
            ),
            (
                AudioSettings {
                    beat_decay: 0.0,
                    ..base.clone()
                },
                "beat_decay",
            ),
            (
                AudioSettings {
                    bass_max_hz: 5000.0,
                    ..base.clone()
                },
                "bass_max_hz",
            ),
            (
                AudioSettings {
                    treble_min_hz: 20000.0,
                    ..base.clone()
                },
                "treble_min_hz",
            ),
            (
                AudioSettings {
                    bpm: Some(1000.0),
                    ..base.clone()
                },
                "bpm",
            ),
            (
                AudioSettings {
                    offset: f64::INFINITY,
                    ..base.clone()
                },
                "offset",
            ),
        ] {
            let e = s.validate().unwrap_err();
            assert!(
                e.contains(&format!("[audio] {key}")) || e.contains(key),
                "{e}"
            );
        }
        assert!(base.validate().is_ok());
    }

    #[test]
    fn smoothing() {
        let x = [0.0, 0.0, 1.0, 0.0, 0.0];
        assert_eq!(smooth(&x, 1, 0.0, 0.0), x.to_vec());
        let m = smooth(&x, 3, 0.0, 0.0);
        assert!((m[1] - 1.0 / 3.0).abs() < 1e-12 && (m[3] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m[0], 0.0);
        // an even window leans one frame ahead; the ends average what they have
        let e = smooth(&x, 2, 0.0, 0.0);
        assert_eq!(e, [0.0, 0.5, 0.5, 0.0, 0.0]);
        let r = smooth(&x, 1, 0.0, 2.0);
        assert_eq!(r[2], 1.0);
        assert!((r[3] - (-0.5f64).exp()).abs() < 1e-12);
        let a = smooth(&x, 1, 2.0, 0.0);
        assert!(a[2] < 0.5 && a[3] == 0.0);
    }

    #[test]
    fn silence_has_no_beats() {
        let f = analyse(
            &vec![0.0; 22050],
            SAMPLE_RATE,
            &AudioSettings::default(),
            24,
            24.0,
        )
        .unwrap();
        assert_eq!(f.bpm, 0.0);
        assert!(
            f.beat
                .iter()
                .chain(&f.amp)
                .chain(&f.bass)
                .all(|v| *v == 0.0)
        );
    }
}
