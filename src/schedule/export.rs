//! `anim schedule`: every schedule of a scene, one value per frame, as CSV, JSON or a PNG plot.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, Result, anyhow};

use crate::scene::Scene;

/// Output format of [`export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per frame, one column per schedule.
    Csv,
    /// One array per schedule.
    Json,
    /// A plot, one panel per numeric schedule.
    Png,
}

impl FromStr for Format {
    type Err = String;

    /// `csv`, `json` or `png`.
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "png" => Ok(Format::Png),
            other => Err(format!("unknown format `{other}`: use csv, json or png")),
        }
    }
}

/// Where [`export`] put the schedules.
#[derive(Debug, Clone, PartialEq)]
pub enum Exported {
    /// CSV or JSON text for standard output (no output file was given).
    Text(String),
    /// CSV or JSON written to the output file.
    Written(PathBuf),
    /// The PNG plot written to this file.
    Plot(PathBuf),
}

/// Evaluates the scene's schedules (`only` these, when not empty) and writes them in `format` to
/// `output`; without one, CSV and JSON come back as text and the plot goes to `schedule.png`.
///
/// # Errors
/// A schedule that does not evaluate, an unknown name in `only`, or a file that cannot be written.
pub fn export(
    scene: &Scene,
    format: Format,
    only: &[String],
    output: Option<&Path>,
) -> Result<Exported> {
    let mut s = scene
        .frame_schedules()
        .map_err(|e| anyhow!("{}: {e}", scene.path.display()))?
        .columns()
        .clone();
    if !only.is_empty() {
        s = s.select(only).map_err(anyhow::Error::msg)?;
    }
    let text = match format {
        Format::Png => {
            let out = output.unwrap_or(Path::new("schedule.png"));
            let img = super::plot::plot_with_audio(&s, scene.audio_features())?;
            img.save(out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            return Ok(Exported::Plot(out.to_path_buf()));
        }
        Format::Json => s.to_json() + "\n",
        Format::Csv => s.to_csv(),
    };
    match output {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
            Ok(Exported::Written(out.to_path_buf()))
        }
        None => Ok(Exported::Text(text)),
    }
}
