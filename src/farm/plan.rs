//! The tasks of a batch or a farm job: scenes (or sweep variants) with absolute paths and an
//! output folder each; a scene whose frames do not depend on each other can be split into
//! ranges of frames, one task each, all writing into the scene's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::render;
use crate::scene::{AnimationMode, ReadOptions, Scene};

/// Most tasks one batch or farm job takes (array indices, progress lines, summary rows).
pub const MAX_TASKS: usize = 10_000;

/// Most parts one scene is split into.
pub const MAX_SPLIT: usize = 1_000;

/// One render: a scene into a folder, whole or a range of its frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Short name: the scene file's stem, or a sweep variant's values (`seed=3,strength=0.6`).
    pub name: String,
    /// The scene file, absolute.
    pub scene: PathBuf,
    /// The output folder, absolute.
    pub out: PathBuf,
    /// The frames of this task (first, last; 0-based, inclusive); `None`: the whole scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<[usize; 2]>,
    /// Frames of the whole scene, where known when the task was planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
}

/// What every task's `anim render` gets besides its scene and folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RenderArgs {
    /// Model folder for every scene (`--model`), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Execution provider (`--device`): cpu, cuda, tensorrt, directml, coreml or auto.
    pub device: String,
    /// Continue interrupted renders and skip complete ones (`--resume=auto`) instead of
    /// starting each afresh.
    pub resume: bool,
    /// ONNX Runtime threads per model (`--threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Render known but unimplemented Deforum/A1111 values with their fallback
    /// (`--allow-unsupported`), as the farm command that planned the task was told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unsupported: bool,
}

/// How far a task is, from what its render leaves in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Frames done up to the last checkpoint (all of them once complete).
    pub done: usize,
    /// Frames of the task, where known.
    pub total: Option<usize>,
    /// Its manifest says the render is complete.
    pub complete: bool,
}

impl Task {
    /// The frames of the task as a range.
    pub fn range(&self) -> Option<std::ops::RangeInclusive<usize>> {
        self.frames.map(|[a, b]| a..=b)
    }

    /// Where the task's render keeps its checkpoints and manifest: the output folder, or the
    /// part folder of its frames ([`render::part_folder`]).
    pub fn book(&self) -> PathBuf {
        match self.range() {
            Some(r) => render::part_folder(&self.out, &r),
            None => self.out.clone(),
        }
    }

    /// The arguments of the task's `anim render` (after the binary's name).
    pub fn render_args(&self, common: &RenderArgs) -> Vec<String> {
        let mut args = vec![
            "render".to_string(),
            self.scene.display().to_string(),
            "--out".into(),
            self.out.display().to_string(),
            "--quiet".into(),
            "--device".into(),
            common.device.clone(),
        ];
        if let Some(m) = &common.model {
            args.extend(["--model".into(), m.display().to_string()]);
        }
        if common.resume {
            args.push("--resume=auto".into());
        }
        if let Some([a, b]) = self.frames {
            args.extend(["--frames".into(), format!("{a}..{b}"), "--no-video".into()]);
        }
        if let Some(t) = common.threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
        if common.allow_unsupported {
            args.push("--allow-unsupported".into());
        }
        args
    }

    /// Frames done, from the render's manifest (complete) or its last checkpoint.
    pub fn progress(&self) -> Progress {
        let book = self.book();
        let first = self.frames.map_or(0, |[a, _]| a);
        let own_total = self.frames.map(|[a, b]| b - a + 1).or(self.total);
        if let Some(m) = read_manifest(&book)
            && m["complete"] == serde_json::Value::Bool(true)
        {
            let done = m["frames"].as_array().map_or(0, Vec::len);
            return Progress {
                done,
                total: Some(done),
                complete: true,
            };
        }
        let done = render::state::read_checkpoint(&book)
            .map_or(0, |cp| (cp.key_frame + 1).saturating_sub(first));
        Progress {
            done,
            total: own_total,
            complete: false,
        }
    }
}

/// The manifest of a render in `book`, where there is a readable one.
pub(crate) fn read_manifest(book: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(book.join("manifest.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// `p` made absolute against the current folder (not resolving links; `p` need not exist).
///
/// # Errors
/// The current folder cannot be read.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
}

/// The name of a scene file: its stem (`forest` for `scenes/forest.toml`).
pub fn scene_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "scene".into(), |s| s.to_string_lossy().into_owned())
}

/// The task rendering the whole scene at `path`, read as `scene`: into `OUT_ROOT/<name>/`, or
/// the scene's own output folder without `out_root`.
///
/// # Errors
/// A path that cannot be made absolute.
pub fn whole(path: &Path, scene: &Scene, out_root: Option<&Path>) -> Result<Task> {
    let name = scene_name(path);
    let out = match out_root {
        Some(root) => root.join(&name),
        None => scene.output_folder(),
    };
    Ok(Task {
        name,
        scene: absolute(path)?,
        out: absolute(&out)?,
        frames: None,
        total: (scene.animation.mode != AnimationMode::VideoInput)
            .then_some(scene.animation.max_frames),
    })
}

/// How many frames `scene` renders: its `max_frames`, or for Video Input the frames extracted
/// from its video (found by decoding it).
///
/// # Errors
/// The input video cannot be decoded.
pub fn frame_count(scene: &Scene) -> Result<usize> {
    if scene.animation.mode != AnimationMode::VideoInput {
        return Ok(scene.animation.max_frames);
    }
    let vi = &scene.video_input;
    let video = scene.resolve(vi.video_init_path.as_deref().unwrap_or(Path::new("")));
    crate::output::count_extracted_frames(
        &video,
        vi.extract_nth_frame,
        vi.extract_from_frame,
        usize::try_from(vi.extract_to_frame).ok(),
    )
    .with_context(|| format!("{}: [video_input] video_init_path", scene.path.display()))
}

/// `task` (a whole scene) as `parts` tasks of consecutive frame ranges of nearly equal length.
///
/// # Errors
/// A scene whose frames depend on the previous ones ([`render::frames_apart`]), fewer frames
/// than parts, or `parts` outside 1..=[`MAX_SPLIT`].
pub fn split(task: Task, scene: &Scene, parts: usize) -> Result<Vec<Task>> {
    if !(1..=MAX_SPLIT).contains(&parts) {
        bail!("--split {parts}: expected 1 to {MAX_SPLIT} parts per scene");
    }
    if parts == 1 {
        return Ok(vec![task]);
    }
    render::frames_apart(scene).with_context(|| format!("--split {parts}"))?;
    let n = frame_count(scene)?;
    if parts > n {
        bail!(
            "{}: --split {parts}: the scene has only {n} frames; split it into at most {n} parts",
            scene.path.display()
        );
    }
    Ok((0..parts)
        .map(|k| Task {
            frames: Some([k * n / parts, (k + 1) * n / parts - 1]),
            total: Some(n),
            ..task.clone()
        })
        .collect())
}

/// The tasks of `scenes`: each whole (into `OUT_ROOT/<name>/` or its own output folder), or in
/// `split` parts.
///
/// # Errors
/// A scene that cannot be read or split, two scenes writing into one folder, or more than
/// [`MAX_TASKS`] tasks.
pub fn tasks(
    scenes: &[PathBuf],
    out_root: Option<&Path>,
    split_into: usize,
    opts: ReadOptions,
) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for path in scenes {
        let scene = Scene::load_with(path, opts)?;
        let task = whole(path, &scene, out_root)?;
        tasks.extend(split(task, &scene, split_into)?);
    }
    check_tasks(&tasks)?;
    Ok(tasks)
}

/// Checks that there are 1 to [`MAX_TASKS`] tasks and that no two scenes write into one folder.
///
/// # Errors
/// The first problem, naming both scene files of a shared folder.
pub fn check_tasks(tasks: &[Task]) -> Result<()> {
    if tasks.is_empty() {
        bail!("no scenes given");
    }
    if tasks.len() > MAX_TASKS {
        bail!(
            "{} tasks: at most {MAX_TASKS} in one batch or farm job; submit the scenes in several jobs",
            tasks.len()
        );
    }
    let mut by_out: BTreeMap<&Path, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        let same = by_out.entry(&t.out).or_default();
        if let Some(other) = same.iter().find(|o| o.scene != t.scene) {
            bail!(
                "{} and {} would both render into {}; rename one, or give each its own [output] folder",
                other.scene.display(),
                t.scene.display(),
                t.out.display()
            );
        }
        let overlaps = |o: &&Task| match (o.frames, t.frames) {
            (Some([a, b]), Some([c, d])) => a <= d && c <= b,
            _ => true,
        };
        if same.iter().any(overlaps) {
            bail!(
                "{} is given twice (both would render into {}); give each scene once",
                t.scene.display(),
                t.out.display()
            );
        }
        same.push(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(frames: Option<[usize; 2]>) -> Task {
        Task {
            name: "s".into(),
            scene: "/scenes/s.toml".into(),
            out: "/out/s".into(),
            frames,
            total: Some(12),
        }
    }

    #[test]
    fn render_args_of_a_part_resume_and_skip_the_video() {
        let common = RenderArgs {
            model: Some("/models/m".into()),
            device: "cpu".into(),
            resume: true,
            threads: Some(1),
            allow_unsupported: false,
        };
        assert_eq!(
            task(Some([4, 7])).render_args(&common).join(" "),
            "render /scenes/s.toml --out /out/s --quiet --device cpu --model /models/m \
             --resume=auto --frames 4..7 --no-video --threads 1"
        );
        let allow = RenderArgs {
            allow_unsupported: true,
            ..common.clone()
        };
        assert!(
            task(None)
                .render_args(&allow)
                .ends_with(&["--allow-unsupported".to_string()])
        );
        assert_eq!(
            task(Some([4, 7])).book(),
            Path::new("/out/s/parts/000004-000007")
        );
        assert_eq!(task(None).book(), Path::new("/out/s"));
    }

    #[test]
    fn split_covers_every_frame_once() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "[animation]\nmode = \"Interpolation\"\nmax_frames = 10\n[generation]\nseed = 4\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let parts = split(task(None), &scene, 3).unwrap();
        let ranges: Vec<[usize; 2]> = parts.iter().map(|t| t.frames.unwrap()).collect();
        assert_eq!(ranges, vec![[0, 2], [3, 5], [6, 9]]);
        let err = split(task(None), &scene, 11).unwrap_err().to_string();
        assert!(err.contains("only 10 frames"), "{err}");
        let moving =
            Scene::from_toml("[generation]\nseed = 4\n", &dir.path().join("m.toml")).unwrap();
        let err = format!("{:#}", split(task(None), &moving, 2).unwrap_err());
        assert!(err.contains("depends on the one before"), "{err}");
        let random = Scene::from_toml(
            "[animation]\nmode = \"Interpolation\"\n[generation]\nseed = -1\n",
            &dir.path().join("r.toml"),
        )
        .unwrap();
        let err = format!("{:#}", split(task(None), &random, 2).unwrap_err());
        assert!(err.contains("fixed seed"), "{err}");
    }

    #[test]
    fn two_scenes_into_one_folder_are_refused() {
        let mut b = task(None);
        b.scene = "/other/s.toml".into();
        let err = check_tasks(&[task(None), b]).unwrap_err().to_string();
        assert!(err.contains("would both render into /out/s"), "{err}");
        assert!(check_tasks(&[task(Some([0, 1])), task(Some([2, 3]))]).is_ok());
        let err = check_tasks(&[task(None), task(None)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("given twice"), "{err}");
        assert!(check_tasks(&[task(Some([0, 2])), task(Some([2, 3]))]).is_err());
    }
}
