//! What a render needs to continue after an interruption, in `OUT/state/`, read by
//! `anim render --resume`:
//!
//! - `frames.jsonl`: the per-frame records for the manifest, one JSON line per written frame,
//!   only ever appended to;
//! - `state.json`: a small checkpoint rewritten after every key frame: the key frame, the seed
//!   state and how many bytes of `frames.jsonl` belong to it;
//! - `key_NNNNNN.png` (the last key frame's image) and `color_sample.png`;
//! - `flow_NNNNNN.flo` (hybrid motion's last optical flow, when there is one).
//!
//! Each key frame costs the same whatever the frame count (no file grows on every save), and
//! a kill at any moment leaves a consistent checkpoint: a resume cuts `frames.jsonl` back to the
//! length the checkpoint names.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use image::RgbImage;
use serde::{Deserialize, Serialize, Serializer, ser::SerializeSeq as _};

use crate::flow::Flow;
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
    /// Bytes of `frames.jsonl` that hold the records of the frames up to `key_frame`.
    pub records_len: u64,
    /// Whether hybrid motion's last optical flow is stored (`flow_NNNNNN.flo`: DIS's initial
    /// field for the next frame).
    #[serde(default)]
    pub has_prev_flow: bool,
}

/// The state folder of a render: the append-only frame records and the checkpoints.
pub struct Journal {
    dir: PathBuf,
    records: BufWriter<File>,
}

fn dir(out: &Path) -> PathBuf {
    out.join("state")
}

fn key_path(d: &Path, key_frame: usize) -> PathBuf {
    d.join(format!("key_{key_frame:06}.png"))
}

fn flow_path(d: &Path, key_frame: usize) -> PathBuf {
    d.join(format!("flow_{key_frame:06}.flo"))
}

fn records_path(d: &Path) -> PathBuf {
    d.join("frames.jsonl")
}

impl Journal {
    /// Starts the state of a new render in `out`, removing an earlier one.
    pub fn create(out: &Path) -> Result<Journal> {
        clear(out);
        let d = dir(out);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let path = records_path(&d);
        let file =
            File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Journal {
            dir: d,
            records: BufWriter::new(file),
        })
    }

    /// Reopens the records of an interrupted render in `out` whose checkpoint is `cp` (from
    /// [`load`]); records written after the checkpoint are dropped.
    pub fn reopen(out: &Path, cp: &Checkpoint) -> Result<Journal> {
        let d = dir(out);
        let rpath = records_path(&d);
        let file = OpenOptions::new()
            .append(true)
            .open(&rpath)
            .with_context(|| format!("cannot open {}", rpath.display()))?;
        if file.metadata()?.len() < cp.records_len {
            bail!(
                "{} is shorter than its checkpoint says; delete the output folder and render again",
                rpath.display()
            );
        }
        file.set_len(cp.records_len)
            .with_context(|| format!("cannot cut {} back to its checkpoint", rpath.display()))?;
        Ok(Journal {
            dir: d,
            records: BufWriter::new(file),
        })
    }

    /// Appends one frame's record.
    pub fn record<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        serde_json::to_writer(&mut self.records, rec)?;
        self.records
            .write_all(b"\n")
            .with_context(|| format!("cannot write {}", records_path(&self.dir).display()))
    }

    /// Saves the checkpoint with the key frame's image, the colour sample and hybrid motion's
    /// last flow (`cp.has_prev_flow` is set from it); `records_len` is
    /// set from the records written so far. The key frame's image is copied from `key_png`, the
    /// frame file already written for it (the same bytes a second PNG encoding would give). The
    /// images get new names, the JSON that names them is renamed into place last, and only then
    /// is the older key image removed, so a kill at any moment leaves a consistent checkpoint.
    pub fn save(
        &mut self,
        cp: &mut Checkpoint,
        key_png: &Path,
        color_sample: Option<&RgbImage>,
        prev_flow: Option<&Flow>,
    ) -> Result<()> {
        let d = &self.dir;
        cp.has_prev_flow = prev_flow.is_some();
        if let Some(flow) = prev_flow {
            // a new name per key frame, as the key image: state.json names it only once written
            crate::flow::io::write_flo(&flow_path(d, cp.key_frame), flow)?;
        }
        self.records
            .flush()
            .with_context(|| format!("cannot write {}", records_path(d).display()))?;
        cp.records_len = self.records.get_ref().metadata()?.len();
        output::write_atomic(&key_path(d, cp.key_frame), |w| {
            let mut src = File::open(key_png)
                .with_context(|| format!("cannot read {}", key_png.display()))?;
            std::io::copy(&mut src, w)
                .with_context(|| format!("cannot copy {}", key_png.display()))?;
            Ok(())
        })?;
        if let Some(s) = color_sample
            && !d.join("color_sample.png").is_file()
        {
            // the sample is fixed for a whole run once taken
            output::write_png_atomic(&d.join("color_sample.png"), s)?;
        }
        output::write_atomic(&d.join("state.json"), |w| {
            Ok(serde_json::to_writer_pretty(w, cp)?)
        })?;
        // the folder holds a handful of files whatever the frame count
        for e in std::fs::read_dir(d)?.flatten() {
            let p = e.path();
            let stale = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                (n.starts_with("key_") && p != key_path(d, cp.key_frame))
                    || (n.starts_with("flow_") && p != flow_path(d, cp.key_frame))
            });
            if stale {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(())
    }

    /// The records written so far, to serialise as a JSON array without holding them in memory.
    pub fn records(&mut self) -> Result<Records> {
        let path = records_path(&self.dir);
        self.records
            .flush()
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Records(path))
    }
}

/// The frame records of a render, read from `frames.jsonl` one at a time as they are serialised.
pub struct Records(PathBuf);

impl Serialize for Records {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let file = File::open(&self.0)
            .map_err(|e| S::Error::custom(format!("{}: {e}", self.0.display())))?;
        let mut seq = s.serialize_seq(None)?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| S::Error::custom(format!("{}: {e}", self.0.display())))?;
            let v: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| S::Error::custom(format!("{}: {e}", self.0.display())))?;
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// Loads the checkpoint of an interrupted render in `out`, with the last key frame's image and
/// the colour sample.
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
                "{} is damaged or from another anim version; delete the output folder and render again",
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

/// Hybrid motion's last optical flow stored with checkpoint `cp` in `out` (`None` when it has
/// none).
///
/// # Errors
/// A missing or damaged flow file (named).
pub fn load_prev_flow(out: &Path, cp: &Checkpoint) -> Result<Option<Flow>> {
    if !cp.has_prev_flow {
        return Ok(None);
    }
    let p = flow_path(&dir(out), cp.key_frame);
    crate::flow::io::read_flo(&p).map(Some).with_context(|| {
        format!(
            "{}: the checkpoint's hybrid flow; delete the output folder and render again",
            p.display()
        )
    })
}

/// The checkpoint of an interrupted render in `out`, where there is a readable one (for
/// progress reports; [`load`] is what a resume uses).
pub fn read_checkpoint(out: &Path) -> Option<Checkpoint> {
    let text = std::fs::read_to_string(dir(out).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `out` holds the checkpoint of an interrupted render.
pub fn has_checkpoint(out: &Path) -> bool {
    dir(out).join("state.json").is_file()
}

/// Removes the state of a render in `out` (after a complete render, or before a new one).
pub fn clear(out: &Path) {
    let _ = std::fs::remove_dir_all(dir(out));
}
