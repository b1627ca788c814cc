//! The end of a farm job (`anim farm finish`, run by the job that depends on the array): scenes
//! rendered in parts get their manifests merged and their videos encoded ([`super::encode`]);
//! then `FARM_DIR/summary.json` (per task: scene, state, frames, seconds, output, log) and
//! `FARM_DIR/contact_sheet.png`, the last frame of each scene side by side.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::encode;
use super::slurm::{self, FarmPlan, TaskState, TaskStatus};
use crate::output;

/// Width of a contact-sheet tile in pixels.
const TILE: u32 = 128;

/// Most tiles on the contact sheet.
const MAX_TILES: usize = 400;

/// One output folder of the job (a scene, or a variant), with the tasks that rendered into it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SceneResult {
    /// The scene's name.
    pub name: String,
    /// Its output folder.
    pub output: PathBuf,
    /// Every task of it completed.
    pub complete: bool,
    /// Its mp4, where one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<PathBuf>,
    /// Its last frame (on the contact sheet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<PathBuf>,
    /// What went wrong when its parts were put together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `FARM_DIR/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The array's job id.
    pub job_id: u64,
    /// Tasks that completed.
    pub completed: usize,
    /// All tasks.
    pub total: usize,
    /// Every task: scene, state, frames, seconds, output, log (and a failed task's log tail).
    pub tasks: Vec<TaskStatus>,
    /// Every output folder.
    pub scenes: Vec<SceneResult>,
    /// The contact sheet of the last frames, where any frame exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<PathBuf>,
}

/// The highest `NNNNNN.png` in `out/frames`.
fn last_frame(out: &Path) -> Option<PathBuf> {
    let last = std::fs::read_dir(out.join("frames"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".png")?.parse::<usize>().ok()
        })
        .max()?;
    Some(output::frame_path(out, last))
}

/// Puts the folders of the job together and writes `summary.json` and the contact sheet into
/// `farm` (the job's folder, holding `plan.json`).
///
/// # Errors
/// No plan, `scontrol` cannot be run, or the summary cannot be written. A scene whose parts
/// cannot be put together is reported in the summary, not as an error.
pub fn finish(farm: &Path) -> Result<Summary> {
    let plan = FarmPlan::read(farm)?;
    let status = slurm::status_in(&plan, farm)?;
    let mut scenes: Vec<SceneResult> = Vec::new();
    for (t, st) in plan.tasks.iter().zip(&status.tasks) {
        let done = st.state == TaskState::Completed;
        match scenes.iter_mut().find(|s| s.output == t.out) {
            Some(s) => s.complete &= done,
            None => scenes.push(SceneResult {
                name: t.name.clone(),
                output: t.out.clone(),
                complete: done,
                video: None,
                last_frame: None,
                error: None,
            }),
        }
    }
    for s in &mut scenes {
        let split = plan
            .tasks
            .iter()
            .any(|t| t.out == s.output && t.frames.is_some());
        if split && s.complete {
            match encode::encode(&s.output, true) {
                Ok(e) => s.video = e.video,
                Err(e) => {
                    s.error = Some(format!("{e:#}"));
                    s.complete = false;
                }
            }
        } else if split {
            s.error = Some(
                "not every part completed: no video; resubmit the scene, then `anim encode`".into(),
            );
        }
        let mp4 = s.output.join("video.mp4");
        if s.video.is_none() && !split && mp4.is_file() {
            s.video = Some(mp4);
        }
        s.last_frame = last_frame(&s.output);
    }
    let tiles: Vec<&Path> = scenes
        .iter()
        .filter_map(|s| s.last_frame.as_deref())
        .take(MAX_TILES)
        .collect();
    let contact_sheet = if tiles.is_empty() {
        None
    } else {
        let path = farm.join("contact_sheet.png");
        output::write_png_atomic(&path, &contact_sheet(&tiles)?)?;
        Some(path)
    };
    let summary = Summary {
        job_id: plan.job_id,
        completed: status
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Completed)
            .count(),
        total: status.tasks.len(),
        tasks: status.tasks,
        scenes,
        contact_sheet,
    };
    output::write_atomic(&farm.join("summary.json"), |w| {
        Ok(serde_json::to_writer_pretty(w, &summary)?)
    })
    .with_context(|| format!("cannot write the summary of job {}", plan.job_id))?;
    Ok(summary)
}

/// The frames side by side, each scaled to 128 pixels wide, in rows of up to
/// ceil(sqrt(n)) tiles on a dark ground.
///
/// # Errors
/// An unreadable frame.
pub fn contact_sheet(frames: &[&Path]) -> Result<RgbImage> {
    const GAP: u32 = 4;
    let tiles: Vec<RgbImage> = frames
        .iter()
        .map(|p| {
            let img = output::read_rgb(p)?;
            let h = (u64::from(img.height()) * u64::from(TILE) / u64::from(img.width().max(1)))
                .clamp(1, u64::from(TILE) * 4) as u32;
            Ok(image::imageops::resize(
                &img,
                TILE,
                h,
                image::imageops::FilterType::Triangle,
            ))
        })
        .collect::<Result<_>>()?;
    let cols = (tiles.len() as f64).sqrt().ceil().max(1.0) as usize;
    let rows: Vec<&[RgbImage]> = tiles.chunks(cols).collect();
    let row_h: Vec<u32> = rows
        .iter()
        .map(|r| r.iter().map(RgbImage::height).max().unwrap_or(0))
        .collect();
    let width = cols as u32 * (TILE + GAP) + GAP;
    let height = row_h.iter().map(|h| h + GAP).sum::<u32>() + GAP;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));
    let mut y = GAP;
    for (r, h) in rows.iter().zip(&row_h) {
        for (c, tile) in r.iter().enumerate() {
            image::imageops::overlay(
                &mut sheet,
                tile,
                i64::from(GAP + c as u32 * (TILE + GAP)),
                i64::from(y),
            );
        }
        y += h + GAP;
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_sheet_tiles_in_a_square_grid() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                RgbImage::from_pixel(64, 32, Rgb([200, i * 50, 0]))
                    .save(&p)
                    .unwrap();
                p
            })
            .collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let sheet = contact_sheet(&refs).unwrap();
        // 2 columns of 128-wide tiles, 2 rows of 64-high tiles, 4-pixel gaps
        assert_eq!(sheet.dimensions(), (2 * 132 + 4, 2 * 68 + 4));
        assert_eq!(sheet.get_pixel(4 + 132 + 10, 4 + 10).0, [200, 50, 0]);
        assert_eq!(sheet.get_pixel(4 + 10, 4 + 68 + 10).0, [200, 100, 0]);
    }

    #[test]
    fn last_frame_is_the_highest_numbered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("frames")).unwrap();
        for n in ["000000.png", "000010.png", "000002.png", "000011.png.tmp"] {
            std::fs::write(dir.path().join("frames").join(n), b"").unwrap();
        }
        assert_eq!(
            last_frame(dir.path()).unwrap(),
            dir.path().join("frames/000010.png")
        );
    }
}
