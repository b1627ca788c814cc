//! `anim encode OUT`: the videos of a finished frames folder, made as `anim render` makes them
//! (the same encoder code, [`crate::render::encode_videos`]). A folder rendered in parts
//! (`anim render --frames A..B` per machine) first gets one `manifest.json` merged from its parts'
//! manifests, checked to cover every frame once.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use crate::output;
use crate::render;
use crate::scene::Scene;

/// What [`encode`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Encoded {
    /// The frames folder's parent (the render's output folder).
    pub out: PathBuf,
    /// Frames in the video.
    pub frames: usize,
    /// The mp4 (gif/webm beside it where the scene asks), `None` where not asked to encode.
    pub video: Option<PathBuf>,
    /// Parts merged into `manifest.json` (0: a whole render).
    pub parts: usize,
}

/// Merges the manifests of a render made in parts (`OUT/parts/*/manifest.json`) into
/// `OUT/manifest.json`; returns the merged manifest and the number of parts, or `None` where
/// `out` has no parts.
///
/// # Errors
/// A part that is not complete, parts that overlap or leave frames out, or unreadable files.
pub fn merge_parts(out: &Path) -> Result<Option<(Value, usize)>> {
    let dir = out.join("parts");
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut parts: Vec<([usize; 2], Value)> = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let book = e?.path();
        let path = book.join("manifest.json");
        if !path.is_file() {
            bail!(
                "{}: no manifest.json: the part was never rendered to the end; render it (with --resume) first",
                book.display()
            );
        }
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{} is not a manifest", path.display()))?;
        let range = m["part"]
            .as_array()
            .and_then(|a| Some([a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize]))
            .ok_or_else(|| anyhow!("{}: no `part` range", path.display()))?;
        if m["complete"] != Value::Bool(true) {
            bail!(
                "{}: frames {}..{} are not complete; render them with `anim render --frames {}..{} --resume` first",
                path.display(),
                range[0],
                range[1],
                range[0],
                range[1]
            );
        }
        parts.push((range, m));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    parts.sort_by_key(|(r, _)| *r);
    let n = parts[0].1["scene"]["animation"]["max_frames"]
        .as_u64()
        .ok_or_else(|| anyhow!("{}: the part manifests name no frame count", dir.display()))?
        as usize;
    let mut next = 0;
    for (r, m) in &parts {
        if m["scene_hash"] != parts[0].1["scene_hash"] {
            bail!(
                "{}: the parts {}..{} and {}..{} were rendered from different scenes; render the folder again",
                dir.display(),
                parts[0].0[0],
                parts[0].0[1],
                r[0],
                r[1]
            );
        }
        if r[0] < next {
            bail!(
                "{}: frames {}..{} are in two parts; remove one of the overlapping part folders and render again",
                dir.display(),
                r[0],
                next - 1
            );
        }
        if r[0] != next {
            bail!(
                "{}: frames {next}..{} are in no part; render them with `anim render --frames`",
                dir.display(),
                r[0] - 1
            );
        }
        next = r[1] + 1;
    }
    if next != n {
        bail!(
            "{}: frames {next}..{} are in no part; render them with `anim render --frames {next}..{}`",
            dir.display(),
            n - 1,
            n - 1
        );
    }
    let mut merged = parts[0].1.clone();
    let frames: Vec<Value> = parts
        .iter()
        .flat_map(|(_, m)| m["frames"].as_array().cloned().unwrap_or_default())
        .collect();
    let loads: u64 = parts
        .iter()
        .map(|(_, m)| m["pipeline_loads"].as_u64().unwrap_or(0))
        .sum();
    if let Value::Object(o) = &mut merged {
        o.remove("part");
        o.insert("frames".into(), Value::Array(frames));
        o.insert("complete".into(), Value::Bool(true));
        o.insert("pipeline_loads".into(), loads.into());
        o.insert(
            "parts".into(),
            parts.iter().map(|(r, _)| serde_json::json!(r)).collect(),
        );
    }
    output::write_atomic(&out.join("manifest.json"), |w| {
        Ok(serde_json::to_writer_pretty(w, &merged)?)
    })?;
    Ok(Some((merged, parts.len())))
}

/// The scene a manifest records (resolved: its seed, its frame count), with relative paths
/// resolving as in the scene file it names.
///
/// # Errors
/// A manifest without a readable scene.
pub fn manifest_scene(m: &Value, path: &Path) -> Result<Scene> {
    let mut scene: Scene = serde_json::from_value(m["scene"].clone()).with_context(|| {
        format!(
            "{}: cannot read the scene it records (made by another anim version?)",
            path.display()
        )
    })?;
    scene.path = m["scene_file"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_default();
    Ok(scene)
}

/// Makes the videos of the finished render in `out` as `anim render` makes them: mp4 (and
/// gif/webm where the scene asks) from every frame, the soundtrack muxed in. A folder rendered
/// in parts gets its merged `manifest.json` first. With `only_if_asked`, a scene with
/// `[output] video = false` gets no video (as a render), else the video is always made.
///
/// # Errors
/// No manifest (not a render's folder), an incomplete render, a missing frame, or an encoder
/// error.
pub fn encode(out: &Path, only_if_asked: bool) -> Result<Encoded> {
    let (m, parts) = match merge_parts(out)? {
        Some((m, parts)) => (m, parts),
        None => {
            let path = out.join("manifest.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "{} has no manifest.json: not the output folder of a render",
                    out.display()
                )
            })?;
            let m: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a manifest", path.display()))?;
            if m["complete"] != Value::Bool(true) {
                bail!(
                    "{}: the render is not complete; finish it with `anim render --resume` first",
                    out.display()
                );
            }
            (m, 0)
        }
    };
    let scene = manifest_scene(&m, &out.join("manifest.json"))?;
    let n = scene.animation.max_frames;
    if let Some(i) = (0..n).find(|&i| !output::frame_path(out, i).is_file()) {
        bail!(
            "{}: frame {i} of {n} is missing ({})",
            out.display(),
            output::frame_path(out, i).display()
        );
    }
    let video = if only_if_asked && !scene.output.video {
        None
    } else {
        Some(render::encode_videos(&scene, out, n)?)
    };
    Ok(Encoded {
        out: out.to_path_buf(),
        frames: n,
        video,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(dir: &Path, a: usize, b: usize, complete: bool) {
        let book = render::part_folder(dir, &(a..=b));
        std::fs::create_dir_all(&book).unwrap();
        let frames: Vec<Value> = (a..=b).map(|i| serde_json::json!({"index": i})).collect();
        let m = serde_json::json!({
            "scene_hash": "h", "part": [a, b], "complete": complete, "pipeline_loads": 1,
            "scene": {"animation": {"max_frames": 6}}, "frames": frames,
        });
        std::fs::write(book.join("manifest.json"), m.to_string()).unwrap();
    }

    #[test]
    fn parts_merge_in_frame_order_and_must_cover_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        part(out, 3, 5, true);
        part(out, 0, 2, true);
        let (m, parts) = merge_parts(out).unwrap().unwrap();
        assert_eq!(parts, 2);
        let idx: Vec<u64> = m["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
        assert_eq!(m["pipeline_loads"], 2);
        assert!(m.get("part").is_none());
        assert!(out.join("manifest.json").is_file());

        let gap = tempfile::tempdir().unwrap();
        part(gap.path(), 0, 1, true);
        part(gap.path(), 3, 5, true);
        let err = merge_parts(gap.path()).unwrap_err().to_string();
        assert!(err.contains("frames 2..2 are in no part"), "{err}");

        let short = tempfile::tempdir().unwrap();
        part(short.path(), 0, 3, true);
        let err = merge_parts(short.path()).unwrap_err().to_string();
        assert!(err.contains("frames 4..5 are in no part"), "{err}");

        let unfinished = tempfile::tempdir().unwrap();
        part(unfinished.path(), 0, 2, true);
        part(unfinished.path(), 3, 5, false);
        let err = merge_parts(unfinished.path()).unwrap_err().to_string();
        assert!(err.contains("3..5 are not complete"), "{err}");
    }
}
