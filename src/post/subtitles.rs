//! Subtitles: `video.srt` with one cue per frame carrying its parameters, as Deforum's
//! `deforum_save_gen_info_as_srt` writes them: `F#: n; Cadence: …; Seed: …; Short: value; …`,
//! timed `[n/fps, (n+1)/fps)` with Deforum's 20-digit decimal arithmetic, milliseconds
//! truncated.

use std::path::{Path, PathBuf};

use super::{PostError, io_err};
use crate::output;
use crate::scene::{SUBTITLE_PARAMS, Scene};

/// What one cue says about its frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleFrame {
    /// `Cadence: …`: `false` without cadence; with cadence `True`, or `False` on the frame
    /// before a key frame (Python's spelling, as Deforum writes it).
    pub cadence: &'static str,
    /// The seed shown (without cadence the frame's; with cadence the upcoming key frame's).
    pub seed: i64,
    /// `Short: value` pairs in Deforum's order.
    pub params: Vec<(String, String)>,
}

/// Deforum's value formatting: an integral number without a fraction, another with three
/// decimals.
pub fn format_value(v: f64) -> String {
    if v.is_finite() && v == v.trunc() {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Digits of `v` (at least 1).
fn digits(v: u128) -> u32 {
    v.checked_ilog10().map_or(1, |d| d + 1)
}

/// `v / 10^drop` rounded half to even (Python's decimal default).
fn round_div(v: u128, drop: u32) -> u128 {
    let d = 10u128.pow(drop);
    let (q, r) = (v / d, v % d);
    if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// `1/fps` as Python's `Decimal(1) / Decimal(fps)` at precision 20: (significand, scale) with
/// the value `significand · 10^-scale`. `fps` is read exactly, as `Decimal(float)` does (held
/// within 0.001..=10^6, beyond any video's rate).
fn frame_duration(fps: f64) -> (u128, u32) {
    // fps = m / 2^e exactly
    let fps = if fps.is_finite() {
        fps.clamp(1e-3, 1e6)
    } else {
        15.0
    };
    let (mut m, mut e) = (fps, 0u32);
    while m.fract() != 0.0 && e < 1074 {
        m *= 2.0;
        e += 1;
    }
    let m = m as u128;
    // long division of 2^e by m: the integer part bit by bit (2^e itself may not fit)
    let (mut q, mut r) = (1 / m, 1 % m);
    for _ in 0..e {
        r *= 2;
        q = q.saturating_mul(2) + r / m;
        r %= m;
    }
    let mut scale = 0u32;
    // then decimal digits until 21 significant ones (leading zeros do not count)
    while q == 0 || digits(q) < 21 {
        r *= 10;
        q = q * 10 + r / m;
        r %= m;
        scale += 1;
    }
    // q has 21 digits now (its leading zeros don't count); round the last off, with the
    // remainder deciding ties
    let last = q % 10;
    q /= 10;
    scale -= 1;
    let up = last > 5 || (last == 5 && (r > 0 || q % 2 == 1));
    if up {
        q += 1;
    }
    (q, scale)
}

/// The SRT time of `n · d` (d from [`frame_duration`], the product rounded to 20 digits as
/// Python's decimal does): `HH:MM:SS,mmm`, milliseconds truncated.
fn time_of(n: u128, d: (u128, u32)) -> String {
    let (q, scale) = d;
    let p = n * q;
    let (p, scale) = match digits(p).checked_sub(20) {
        Some(drop) if drop > 0 && p > 0 => (round_div(p, drop), scale as i64 - drop as i64),
        _ => (p, scale as i64),
    };
    // milliseconds = floor(p · 10^(3 - scale))
    let e = 3 - scale;
    let ms = if e >= 0 {
        p * 10u128.pow(e as u32)
    } else if -e > 38 {
        0
    } else {
        p / 10u128.pow((-e) as u32)
    };
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    format!(
        "{h:02}:{:02}:{:02},{:03}",
        rest / 60_000,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// The start and end times of frame `n`'s cue at `fps`, as Deforum writes them.
pub fn srt_timestamp(n: usize, fps: f64) -> (String, String) {
    let d = frame_duration(fps);
    (time_of(n as u128, d), time_of(n as u128 + 1, d))
}

/// The SRT text: one cue per frame, numbered from 1.
pub fn srt(frames: &[SubtitleFrame], fps: f64) -> String {
    let d = frame_duration(fps);
    let mut out = String::new();
    for (n, f) in frames.iter().enumerate() {
        let params: Vec<String> = f.params.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push_str(&format!(
            "{}\n{} --> {}\nF#: {n}; Cadence: {}; Seed: {}; {}\n\n",
            n + 1,
            time_of(n as u128, d),
            time_of(n as u128 + 1, d),
            f.cadence,
            f.seed,
            params.join("; ")
        ));
    }
    out
}

/// Each frame's record in a render's manifest.json: (kind, seed).
fn manifest_frames(out: &Path) -> Result<Vec<(String, i64)>, PostError> {
    let path = out.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
    let frames = v["frames"]
        .as_array()
        .ok_or_else(|| io_err(&path, "no `frames` list: not a render's manifest"))?;
    let default_seed = v["seed"].as_i64().unwrap_or(0);
    Ok(frames
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or("key").to_string(),
                f["seed"].as_i64().unwrap_or(default_seed),
            )
        })
        .collect())
}

/// The cues of a render's `n` frames from the scene's schedules and its manifest (kinds and
/// seeds). Without cadence (no `tween` frame) each cue is `Cadence: false` with its frame's
/// seed; with cadence, as Deforum's cadence loop writes them, `True` but `False` on the frame
/// before each key frame, and the seed of the next key frame.
///
/// # Errors
/// The scene's schedules fail to evaluate.
pub fn frames_for_render(
    scene: &Scene,
    records: &[(String, i64)],
    n: usize,
) -> Result<Vec<SubtitleFrame>, PostError> {
    let sched = scene.frame_schedules().map_err(|m| PostError::Setting {
        key: "subtitles",
        message: m,
    })?;
    let cadence = records.iter().any(|(k, _)| k == "tween");
    let wanted = &scene.output.subtitle_params;
    let mut out = Vec::with_capacity(n);
    for i in 0..n.min(sched.frames()) {
        let (cad, seed) = if cadence {
            let next = (i + 1..records.len()).find(|&j| records[j].0 != "tween");
            match next {
                Some(k) => (if k == i + 1 { "False" } else { "True" }, records[k].1),
                None => ("False", records.get(i).map_or(0, |r| r.1)),
            }
        } else {
            ("false", records.get(i).map_or(0, |r| r.1))
        };
        let at = sched.at(i);
        let mut params = Vec::new();
        for (label, short, name) in SUBTITLE_PARAMS {
            if !wanted.iter().any(|w| w == label) {
                continue;
            }
            let value = match *name {
                "sampler" => at.sampler.to_string(),
                "checkpoint" => at.checkpoint.to_string(),
                _ => sched
                    .get(name)
                    .map_or(String::new(), |v| format_value(v[i])),
            };
            params.push((short.to_string(), value));
        }
        if wanted.iter().any(|w| w == "Prompt") {
            let p = scene.prompt_at_with(i, &sched);
            let text = if p.negative.is_empty() {
                p.positive
            } else {
                format!("{} --neg {}", p.positive, p.negative)
            };
            params.push(("Prompt".into(), text));
        }
        out.push(SubtitleFrame {
            cadence: cad,
            seed,
            params,
        });
    }
    Ok(out)
}

/// Writes `OUT/video.srt` for a render's `n` frames; returns its path.
///
/// # Errors
/// No manifest.json in `out`, schedules that fail, a file that cannot be written.
pub fn write_for_render(scene: &Scene, out: &Path, n: usize) -> Result<PathBuf, PostError> {
    let records = manifest_frames(out)?;
    let frames = frames_for_render(scene, &records, n)?;
    let path = out.join("video.srt");
    let text = srt(&frames, scene.output.fps);
    output::write_atomic(&path, |w| {
        use std::io::Write as _;
        w.write_all(text.as_bytes())?;
        Ok(())
    })
    .map_err(|e| io_err(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deforum_timing() {
        // 1/30 at 20 digits is 0.033333…3, so frame 2 ends at 0.0999…9 s: ",099"
        assert_eq!(srt_timestamp(2, 30.0).1, "00:00:00,099");
        assert_eq!(
            srt_timestamp(0, 15.0),
            ("00:00:00,000".into(), "00:00:00,066".into())
        );
        assert_eq!(srt_timestamp(15, 15.0).0, "00:00:01,000");
        assert_eq!(srt_timestamp(24, 24.0).0, "00:00:01,000");
        assert_eq!(srt_timestamp(3600 * 24, 24.0).0, "01:00:00,000");
        // Decimal(29.97) is the float's exact value (models/make_tiny_post.py stamps_29_97)
        assert_eq!(srt_timestamp(2, 29.97).0, "00:00:00,066");
        assert_eq!(srt_timestamp(3, 29.97).0, "00:00:00,100");
        assert_eq!(srt_timestamp(1000, 29.97).0, "00:00:33,366");
        assert_eq!(srt_timestamp(107892, 29.97).0, "01:00:00,000");
    }

    #[test]
    fn values_as_deforum() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(1.0025), "1.002");
        assert_eq!(format_value(-0.5), "-0.500");
    }
}
