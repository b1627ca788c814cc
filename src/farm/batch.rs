//! `anim batch`: several renders on this machine, N at a time. Each render is an `anim render`
//! process of its own (its model, its memory, its log in `OUT/render.log`), so a scene that
//! fails, or crashes, leaves the others running; the batch reports every scene at the end.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::plan::{self, Progress, RenderArgs, Task};
use crate::scene::{ReadOptions, Scene};

/// Most renders run at once.
pub const MAX_JOBS: usize = 64;

/// Lines of a failed render's log shown in the summary.
const TAIL_LINES: usize = 5;

/// How often the renders are checked for their end.
const POLL: Duration = Duration::from_millis(50);

/// Progress is read every this many polls.
const PROGRESS_EVERY: u32 = 10;

/// A scene of a batch: its task, or why it could not be planned (an unreadable scene fails on
/// its own, like a render that fails).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The scene file as given.
    pub scene: PathBuf,
    /// The task, or the error that kept the scene from being planned.
    pub task: std::result::Result<Task, String>,
}

impl Entry {
    /// The scene's name.
    pub fn name(&self) -> String {
        match &self.task {
            Ok(t) => t.name.clone(),
            Err(_) => plan::scene_name(&self.scene),
        }
    }
}

/// The entries of `scenes`: each rendered whole into `OUT_ROOT/<name>/`, or its own output
/// folder without `out_root`.
///
/// # Errors
/// More than [`plan::MAX_TASKS`] scenes, or two scenes writing into one folder.
pub fn entries(
    scenes: &[PathBuf],
    out_root: Option<&Path>,
    opts: ReadOptions,
) -> Result<Vec<Entry>> {
    let list: Vec<Entry> = scenes
        .iter()
        .map(|path| Entry {
            scene: path.clone(),
            task: Scene::load_with(path, opts)
                .map_err(anyhow::Error::from)
                .and_then(|s| plan::whole(path, &s, out_root))
                .map_err(|e| format!("{e:#}")),
        })
        .collect();
    let tasks: Vec<Task> = list.iter().filter_map(|e| e.task.clone().ok()).collect();
    if !tasks.is_empty() {
        plan::check_tasks(&tasks)?;
    } else if list.len() > plan::MAX_TASKS {
        bail!(
            "{} scenes: at most {} in one batch",
            list.len(),
            plan::MAX_TASKS
        );
    }
    Ok(list)
}

/// How a batch runs its renders.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Renders at once, 1..=[`MAX_JOBS`] (one model in memory each).
    pub jobs: usize,
    /// What every `anim render` gets; without `threads`, each of N renders gets the cores / N.
    pub render: RenderArgs,
    /// The `anim` binary the renders run.
    pub exe: PathBuf,
}

/// How a scene of a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Rendered (or found complete with `--resume`).
    Done,
    /// The render failed (or the scene could not be read).
    Failed,
    /// Stopped by Ctrl-C; continue with `--resume`.
    Interrupted,
    /// Not started: the batch was interrupted first.
    Skipped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
        })
    }
}

/// What one scene of a batch gave.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The scene's name.
    pub name: String,
    /// The scene file.
    pub scene: PathBuf,
    /// Its output folder, where it got one.
    pub out: Option<PathBuf>,
    /// How it ended.
    pub status: Status,
    /// Frames done (up to the last checkpoint where it did not finish).
    pub frames: usize,
    /// Wall time of its render.
    pub seconds: f64,
    /// The render's log (`OUT/render.log`).
    pub log: Option<PathBuf>,
    /// Why it failed: the error, or the last lines of its log.
    pub message: Option<String>,
}

/// What happens during a batch, for a progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// Entry `index` started rendering.
    Started {
        /// Position in the entries.
        index: usize,
        /// Its task.
        task: &'a Task,
    },
    /// Entry `index` passed a checkpoint.
    Progress {
        /// Position in the entries.
        index: usize,
        /// Frames done so far.
        progress: Progress,
    },
    /// Entry `index` ended.
    Finished {
        /// Position in the entries.
        index: usize,
        /// How.
        outcome: &'a Outcome,
    },
}

struct Running<'e> {
    index: usize,
    task: &'e Task,
    child: Child,
    started: Instant,
    log: PathBuf,
    progress: Progress,
}

/// Renders the entries, `opts.jobs` at a time, reporting to `on_event`; returns one outcome per
/// entry, in order. A failing render does not stop the others; Ctrl-C stops starting new ones
/// (the running ones finish their frame and stop, as `anim render` does).
///
/// # Errors
/// `jobs` out of range, or a render process that cannot be started.
pub fn run(
    entries: &[Entry],
    opts: &BatchOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Outcome>> {
    if !(1..=MAX_JOBS).contains(&opts.jobs) {
        bail!(
            "--jobs {}: expected 1 to {MAX_JOBS} renders at once",
            opts.jobs
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // the renders get the same Ctrl-C from the terminal and stop after their frame
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let mut render = opts.render.clone();
    if opts.jobs > 1 && render.threads.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        render.threads = Some((cores / opts.jobs).max(1));
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; entries.len()];
    let mut queue: VecDeque<usize> = VecDeque::new();
    for (i, e) in entries.iter().enumerate() {
        match &e.task {
            Ok(_) => queue.push_back(i),
            Err(message) => {
                let o = Outcome {
                    name: e.name(),
                    scene: e.scene.clone(),
                    out: None,
                    status: Status::Failed,
                    frames: 0,
                    seconds: 0.0,
                    log: None,
                    message: Some(message.clone()),
                };
                on_event(Event::Finished {
                    index: i,
                    outcome: &o,
                });
                outcomes[i] = Some(o);
            }
        }
    }
    let mut running: Vec<Running> = Vec::new();
    let mut polls: u32 = 0;
    loop {
        while running.len() < opts.jobs && !stop.load(Ordering::SeqCst) {
            let Some(i) = queue.pop_front() else { break };
            let Ok(task) = &entries[i].task else { continue };
            let r = start(i, task, &render, &opts.exe)?;
            on_event(Event::Started { index: i, task });
            running.push(r);
        }
        if running.is_empty() {
            break;
        }
        // a finished render is noticed within 50 ms; progress is read every 0.5 s
        std::thread::sleep(POLL);
        polls += 1;
        let mut k = 0;
        while k < running.len() {
            let r = &mut running[k];
            let task = r.task;
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    let r = running.swap_remove(k);
                    let o = ended(task, &r, status.code());
                    on_event(Event::Finished {
                        index: r.index,
                        outcome: &o,
                    });
                    outcomes[r.index] = Some(o);
                }
                Ok(None) if !polls.is_multiple_of(PROGRESS_EVERY) => k += 1,
                Ok(None) => {
                    let p = task.progress();
                    if p != r.progress {
                        r.progress = p;
                        on_event(Event::Progress {
                            index: r.index,
                            progress: p,
                        });
                    }
                    k += 1;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("waiting for the render of {}", task.name));
                }
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .zip(entries)
        .map(|(o, e)| {
            o.unwrap_or_else(|| Outcome {
                name: e.name(),
                scene: e.scene.clone(),
                out: e.task.as_ref().ok().map(|t| t.out.clone()),
                status: Status::Skipped,
                frames: 0,
                seconds: 0.0,
                log: None,
                message: Some("not started: the batch was interrupted".into()),
            })
        })
        .collect())
}

/// Starts the render of `task` with its output going to `OUT/render.log` (appended to when
/// resuming).
fn start<'e>(index: usize, task: &'e Task, render: &RenderArgs, exe: &Path) -> Result<Running<'e>> {
    std::fs::create_dir_all(&task.out)
        .with_context(|| format!("cannot create {}", task.out.display()))?;
    let log = task.out.join("render.log");
    let file = if render.resume {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
    } else {
        File::create(&log)
    }
    .with_context(|| format!("cannot write {}", log.display()))?;
    let child = Command::new(exe)
        .args(task.render_args(render))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    Ok(Running {
        index,
        task,
        child,
        started: Instant::now(),
        log,
        progress: Progress {
            done: 0,
            total: None,
            complete: false,
        },
    })
}

/// The outcome of a render that exited with `code`.
fn ended(task: &Task, r: &Running, code: Option<i32>) -> Outcome {
    let p = task.progress();
    let (status, message) = match code {
        Some(0) => (Status::Done, None),
        Some(130) => (
            Status::Interrupted,
            Some("interrupted; continue with --resume".to_string()),
        ),
        other => (
            Status::Failed,
            Some({
                let tail = log_tail(&r.log, TAIL_LINES).join("\n");
                match other {
                    Some(c) => format!("exit status {c}: {tail}"),
                    None => format!("killed by a signal: {tail}"),
                }
            }),
        ),
    };
    Outcome {
        name: task.name.clone(),
        scene: task.scene.clone(),
        out: Some(task.out.clone()),
        status,
        frames: p.done,
        seconds: r.started.elapsed().as_secs_f64(),
        log: Some(r.log.clone()),
        message,
    }
}

/// Bytes read from the end of a log for its tail.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `n` non-empty lines of a log file, from its last 64 KiB (none where it cannot be
/// read); progress-bar redraws (carriage returns) keep only their last state.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
        let _ = f.take(TAIL_BYTES).read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or("").trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The summary table of a batch: scene, frames, seconds, status, output; failed scenes
/// followed by their message.
pub fn table(outcomes: &[Outcome]) -> String {
    let rows: Vec<[String; 5]> = outcomes
        .iter()
        .map(|o| {
            [
                o.name.clone(),
                o.frames.to_string(),
                format!("{:.1}", o.seconds),
                o.status.to_string(),
                o.out
                    .as_ref()
                    .map_or_else(|| "-".into(), |p| p.display().to_string()),
            ]
        })
        .collect();
    let head = ["scene", "frames", "seconds", "status", "output"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            match k {
                1 | 2 => s.push_str(&format!("{}{c}", " ".repeat(pad))),
                4 => s.push_str(c),
                _ => s.push_str(&format!("{c}{}", " ".repeat(pad))),
            }
            if k < 4 {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for (r, o) in rows.iter().zip(outcomes) {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
        if o.status != Status::Done
            && let Some(m) = &o.message
        {
            for l in m.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_shows_why_a_scene_failed() {
        let o = |name: &str, status, message: Option<&str>| Outcome {
            name: name.into(),
            scene: format!("{name}.toml").into(),
            out: Some(format!("/out/{name}").into()),
            status,
            frames: 4,
            seconds: 2.5,
            log: None,
            message: message.map(Into::into),
        };
        let t = table(&[
            o("forest", Status::Done, None),
            o("b", Status::Failed, Some("exit status 1: error: no model")),
        ]);
        assert_eq!(
            t,
            "scene   frames  seconds  status  output\n\
             forest       4      2.5  done    /out/forest\n\
             b            4      2.5  failed  /out/b\n    exit status 1: error: no model\n"
        );
    }

    #[test]
    fn log_tail_keeps_the_last_lines_and_the_last_state_of_a_redrawn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nbar 1\rbar 2\n\nc\nd\n").unwrap();
        assert_eq!(log_tail(&p, 3), vec!["bar 2", "c", "d"]);
        assert!(log_tail(&dir.path().join("none"), 3).is_empty());
    }
}
