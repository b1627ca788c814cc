//! What a render needs to continue after an interruption: written after every key frame to
//! `OUT/state/`, read by `anim render --resume`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::output;

/// The loop's state after a completed key frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Hash of the resolved scene; a resume refuses a changed scene.
    pub scene_hash: String,
    /// The resolved initial seed.
    pub seed: i64,
    /// The last completed key frame (every frame up to it is written).
    pub key_frame: usize,
    /// `SeedSequence::advance` calls made so far.
    pub seed_calls: usize,
    /// Whether a colour sample image is stored.
    pub has_color_sample: bool,
    /// Per-frame records so far, for the manifest.
    pub frames: Vec<serde_json::Value>,
}

fn dir(out: &Path) -> PathBuf {
    out.join("state")
}

fn key_path(d: &Path, key_frame: usize) -> PathBuf {
    d.join(format!("key_{key_frame:06}.png"))
}

/// Saves the checkpoint with the key frame's image and the colour sample. The images get new
/// names, the JSON that names them is renamed into place last, and only then are older images
/// removed, so a kill at any moment leaves a consistent checkpoint.
pub fn save(
    out: &Path,
    cp: &Checkpoint,
    key_image: &RgbImage,
    color_sample: Option<&RgbImage>,
) -> Result<()> {
    let d = dir(out);
    output::write_png_atomic(&key_path(&d, cp.key_frame), key_image)?;
    if let Some(s) = color_sample
        && !d.join("color_sample.png").is_file()
    {
        // the sample is fixed for a whole run once taken
        output::write_png_atomic(&d.join("color_sample.png"), s)?;
    }
    let tmp = d.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(cp)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, d.join("state.json"))
        .with_context(|| format!("cannot write {}", d.join("state.json").display()))?;
    for e in std::fs::read_dir(&d)?.flatten() {
        let p = e.path();
        let stale = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("key_") && p != key_path(&d, cp.key_frame));
        if stale {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(())
}

/// Loads the checkpoint of an earlier run in `out`.
pub fn load(out: &Path) -> Result<(Checkpoint, RgbImage, Option<RgbImage>)> {
    let d = dir(out);
    let path = d.join("state.json");
    if !path.is_file() {
        // a finished render clears its state but leaves a manifest that says it is complete
        let complete = std::fs::read_to_string(out.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|m| m["complete"] == serde_json::Value::Bool(true));
        if complete {
            bail!(
                "nothing to resume in {}: the render there is complete (its manifest.json says so); \
                 render again without --resume to start over",
                out.display()
            );
        }
        bail!(
            "nothing to resume in {}: no {} (was the render started with this output folder?)",
            out.display(),
            path.display()
        );
    }
    let cp: Checkpoint =
        serde_json::from_str(&std::fs::read_to_string(&path)?).with_context(|| {
            format!(
                "{} is damaged; delete the output folder and render again",
                path.display()
            )
        })?;
    let key = output::read_rgb(&key_path(&d, cp.key_frame))?;
    let sample = if cp.has_color_sample {
        Some(output::read_rgb(&d.join("color_sample.png"))?)
    } else {
        None
    };
    Ok((cp, key, sample))
}

/// Removes the checkpoint (after a complete render).
pub fn clear(out: &Path) {
    let _ = std::fs::remove_dir_all(dir(out));
}
