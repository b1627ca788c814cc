//! `OUT/manifest.json`: the resolved scene, seeds, provider, model files' sha256, and a record
//! per frame (parameters, time per stage in milliseconds).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::state;
use crate::diffusion::StageTimes;
use crate::scene::{FrameSchedules, Scene};

/// Per-frame record: parameters and time per stage in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct FrameRecord {
    pub index: usize,
    pub checkpoint: String,
    pub kind: &'static str,
    pub seed: Option<i64>,
    pub strength: f64,
    pub cfg_scale: f64,
    pub steps: usize,
    pub steps_run: usize,
    pub warp_ms: f64,
    /// Part of `warp_ms` spent in the depth model (3D mode with `[depth] model`).
    pub depth_ms: f64,
    /// Each pre-diffusion stage's time, as `<stage name>_ms` (`color_ms`, `contrast_ms`, ...).
    #[serde(flatten)]
    pub stage_ms: BTreeMap<String, f64>,
    pub text_ms: f64,
    pub encode_ms: f64,
    pub denoise_ms: f64,
    pub decode_ms: f64,
    pub blend_ms: f64,
    pub write_ms: f64,
    /// Part of `text_ms` + `encode_ms` + `denoise_ms` + `decode_ms` (and `controlnet_ms`'s
    /// preprocessors aside) spent inside ONNX Runtime's `Session::run`.
    pub ort_ms: f64,
}

impl FrameRecord {
    /// The record of frame `i` with its schedule values filled in.
    pub fn new(sched: &FrameSchedules, i: usize, kind: &'static str) -> FrameRecord {
        let v = sched.at(i);
        FrameRecord {
            index: i,
            kind,
            checkpoint: v.checkpoint.to_string(),
            strength: v.strength,
            cfg_scale: v.cfg_scale,
            steps: v.steps as usize,
            ..FrameRecord::default()
        }
    }

    /// Takes the painter's stage times.
    pub fn painted(&mut self, t: &StageTimes) {
        self.text_ms = ms(t.text);
        self.encode_ms = ms(t.encode);
        self.denoise_ms = ms(t.denoise);
        self.decode_ms = ms(t.decode);
        self.ort_ms = ms(t.ort);
        self.steps_run = t.steps_run;
    }
}

/// Milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The manifest of a render or preview.
#[derive(Serialize)]
pub(crate) struct Manifest<'a> {
    pub pipeline_loads: usize,
    pub anim_version: &'a str,
    pub kind: &'a str,
    #[serde(serialize_with = "lossy")]
    pub scene_file: &'a Path,
    /// The scene's fingerprint: `--resume=auto` skips a complete render of the same scene.
    pub scene_hash: &'a str,
    /// The frames of a render of a range (first, last), absent for a whole render.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<[usize; 2]>,
    pub seed: i64,
    pub provider: &'a str,
    #[serde(serialize_with = "lossy_opt")]
    pub model_folder: Option<&'a Path>,
    pub model_files_sha256: Vec<(String, String)>,
    /// Per ControlNet unit that is on (`cn_N`): its model folder's files and their sha256.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controlnet_files_sha256: Vec<(String, Vec<(String, String)>)>,
    pub complete: bool,
    pub scene: &'a Scene,
    pub frames: state::Records,
}

/// A path as text; one that is not UTF-8 with U+FFFD for its other bytes (serde refuses it).
fn lossy<S: serde::Serializer>(p: &&Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

fn lossy_opt<S: serde::Serializer>(p: &Option<&Path>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

impl Manifest<'_> {
    /// Writes the manifest through a temporary file, streaming the frame records.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::output::write_atomic(path, |w| Ok(serde_json::to_writer_pretty(w, self)?))
    }
}

/// sha256 of every model file under `folder` (`.onnx`, and external weights: `.onnx_data`,
/// diffusers' `weights.pb`), for the manifest.
pub(crate) fn model_hashes(folder: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut dirs = vec![folder.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "onnx" || x == "onnx_data" || x == "pb")
            {
                let mut h = Sha256::new();
                let mut f = std::fs::File::open(&p)?;
                std::io::copy(&mut f, &mut h)?;
                let rel = p.strip_prefix(folder).unwrap_or(&p).display().to_string();
                out.push((rel, format!("{:x}", h.finalize())));
            }
        }
    }
    out.sort();
    Ok(out)
}
