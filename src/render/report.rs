//! Where a render's time goes, from its manifest (`anim bench`): the mean time per frame of each
//! stage the frame records hold, and the share of it spent inside ONNX Runtime.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// The fields of a frame record that are not stage times, though their names end in `_ms`.
const NOT_STAGES: &[&str] = &["ort_ms"];

/// The stages in the order a frame goes through them; others (new stages) follow by name.
const ORDER: &[&str] = &[
    "warp",
    "depth",
    "color",
    "grayscale",
    "contrast",
    "sharpen",
    "noise",
    "controlnet",
    "text",
    "encode",
    "denoise",
    "decode",
    "blend",
    "write",
];

/// Mean time per frame of each stage of a render, from its manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct StageReport {
    /// Frames in the manifest.
    pub frames: usize,
    /// Diffused (key) frames among them.
    pub key_frames: usize,
    /// Each stage (the record's `<name>_ms` field, without `_ms`) and its mean ms per frame,
    /// in the order a frame goes through them, stages that never took time left out.
    pub stages: Vec<(String, f64)>,
    /// Mean ms per frame inside ONNX Runtime's `Session::run` (the diffusion models' `ort_ms`
    /// and the depth model's `depth_ms`).
    pub ort_ms: f64,
    /// Wall time of the frame loop per frame, when known (the render that `anim bench` ran).
    pub wall_ms: Option<f64>,
}

impl StageReport {
    /// Reads the frame records of the manifest at `path`.
    ///
    /// # Errors
    /// A missing or unreadable manifest, or one without frame records.
    pub fn from_manifest(path: &Path) -> Result<StageReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let m: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a manifest (JSON)", path.display()))?;
        let Some(records) = m["frames"].as_array().filter(|r| !r.is_empty()) else {
            bail!("{}: no frame records (`frames`)", path.display());
        };
        let n = records.len();
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        let mut ort = 0.0;
        let mut keys = 0;
        for r in records {
            let Some(fields) = r.as_object() else {
                bail!("{}: a frame record is not an object", path.display());
            };
            if r["kind"].as_str() != Some("tween") {
                keys += 1;
            }
            ort += r["ort_ms"].as_f64().unwrap_or(0.0) + r["depth_ms"].as_f64().unwrap_or(0.0);
            for (k, v) in fields {
                let (Some(name), Some(x)) = (k.strip_suffix("_ms"), v.as_f64()) else {
                    continue;
                };
                if NOT_STAGES.contains(&k.as_str()) {
                    continue;
                }
                *sums.entry(name.to_string()).or_insert(0.0) += x;
            }
        }
        let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
        let mut stages: Vec<(String, f64)> = sums
            .into_iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(k, s)| (k, s / n as f64))
            .collect();
        // stable: stages not in ORDER stay sorted by name
        stages.sort_by_key(|(k, _)| rank(k));
        Ok(StageReport {
            frames: n,
            key_frames: keys,
            stages,
            ort_ms: ort / n as f64,
            wall_ms: None,
        })
    }

    /// The sum of the stages' mean times: the frame time the records account for. The depth
    /// model's time is part of `warp`, so `depth` is not added again.
    pub fn recorded_ms(&self) -> f64 {
        self.stages
            .iter()
            .filter(|(k, _)| k != "depth")
            .map(|(_, v)| v)
            .sum()
    }
}

impl fmt::Display for StageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.recorded_ms();
        writeln!(
            f,
            "{} frames ({} diffused); mean ms per frame over all frames:",
            self.frames, self.key_frames
        )?;
        writeln!(f, "{:<16} {:>10} {:>7}", "stage", "ms/frame", "share")?;
        for (k, v) in &self.stages {
            let note = if k == "depth" { " (part of warp)" } else { "" };
            let share = if total > 0.0 { 100.0 * v / total } else { 0.0 };
            writeln!(f, "{k:<16} {v:>10.2} {share:>6.1}%{note}")?;
        }
        writeln!(f, "{:<16} {total:>10.2} {:>6.1}%", "recorded", 100.0)?;
        let of = |x: f64| {
            if x > 0.0 {
                100.0 * self.ort_ms / x
            } else {
                0.0
            }
        };
        write!(
            f,
            "inside ONNX Runtime: {:.2} ms/frame, {:.1}% of the recorded time",
            self.ort_ms,
            of(total)
        )?;
        if let Some(w) = self.wall_ms {
            write!(
                f,
                "\nwall time of the frame loop: {w:.2} ms/frame (ONNX Runtime {:.1}% of it)",
                of(w)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Means over all frames, tweens included; the ONNX Runtime share from `ort_ms` and
    /// `depth_ms`; stages that never took time are left out.
    #[test]
    fn stage_means_and_onnx_share_come_from_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        std::fs::write(
            &p,
            r#"{"frames": [
                {"kind": "key", "warp_ms": 2.0, "depth_ms": 1.0, "contrast_ms": 1.0,
                 "denoise_ms": 30.0, "decode_ms": 6.0, "ort_ms": 33.0, "blend_ms": 0.0,
                 "write_ms": 3.0},
                {"kind": "tween", "warp_ms": 4.0, "depth_ms": 1.0, "blend_ms": 2.0,
                 "write_ms": 3.0, "ort_ms": 0.0}
            ]}"#,
        )
        .unwrap();
        let r = StageReport::from_manifest(&p).unwrap();
        assert_eq!((r.frames, r.key_frames), (2, 1));
        assert_eq!(
            r.stages,
            [
                ("warp".to_string(), 3.0),
                ("depth".to_string(), 1.0),
                ("contrast".to_string(), 0.5),
                ("denoise".to_string(), 15.0),
                ("decode".to_string(), 3.0),
                ("blend".to_string(), 1.0),
                ("write".to_string(), 3.0),
            ]
        );
        assert_eq!(r.ort_ms, 17.5);
        assert_eq!(r.recorded_ms(), 25.5);
        let text = r.to_string();
        assert!(
            text.contains("inside ONNX Runtime: 17.50 ms/frame"),
            "{text}"
        );
    }

    #[test]
    fn a_manifest_without_frames_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        std::fs::write(&p, r#"{"frames": []}"#).unwrap();
        let e = StageReport::from_manifest(&p).unwrap_err().to_string();
        assert!(e.contains("no frame records"), "{e}");
    }
}
