//! Slurm: a farm job is an sbatch job array, one array task per [`Task`] (`%K` limits how many
//! run at once), each running `anim render … --resume=auto` with `--requeue`, so a preempted or
//! requeued task continues from its last checkpoint; and a dependent job (`afterany`) running
//! the hidden `anim farm finish`, which writes `OUT_ROOT/farm-<jobid>/summary.json` and a contact
//! sheet ([`super::summary`]).
//!
//! The array is submitted held, its folder `OUT_ROOT/farm-<jobid>/` (plan, scripts, `logs/`)
//! made, the dependent job submitted, then the array released: no task starts before its log
//! folder exists. Status comes from `scontrol` (and `sacct` where accounting keeps jobs Slurm
//! itself has forgotten), frames from each task's checkpoint. Every path is made absolute at
//! submit time: the nodes must see the same file system (docs/farm.md).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::batch::log_tail;
use super::plan::{RenderArgs, Task, check_tasks};

/// Lines of a failed task's log shown by `anim farm status` and the summary.
pub const TAIL_LINES: usize = 10;

/// sbatch options of the array's tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// GPUs per task (`--gres=gpu:N`); none requested when `None`.
    pub gpus_per_task: Option<u32>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem` (`32G`).
    pub mem: Option<String>,
    /// `--time` (`04:00:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// Tasks running at once (the array's `%K`).
    pub max_parallel: Option<usize>,
    /// `--account`.
    pub account: Option<String>,
    /// More `#SBATCH` lines, each one option as sbatch takes it (`--qos=high`); they go to the
    /// dependent job too.
    pub sbatch_args: Vec<String>,
}

/// Most GPUs or CPUs one task may ask for.
pub const MAX_PER_TASK: u32 = 1024;

/// A farm job to submit.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// The tasks, one array index each, in order.
    pub tasks: &'a [Task],
    /// What each `anim render` gets (`resume` is always on for farm tasks).
    pub render: &'a RenderArgs,
    /// The `anim` binary the nodes run (absolute; the same path on every node).
    pub exe: &'a Path,
    /// `OUT_ROOT`: the job's folder is `OUT_ROOT/farm-<jobid>/`.
    pub out_root: &'a Path,
    /// sbatch options.
    pub slurm: &'a SlurmOptions,
}

/// What `OUT_ROOT/farm-<jobid>/plan.json` records of a submitted job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FarmPlan {
    /// The array's job id.
    pub job_id: u64,
    /// The dependent job writing the summary.
    pub finish_job_id: Option<u64>,
    /// Seconds since the Unix epoch at submission.
    pub submitted_unix: u64,
    /// `OUT_ROOT`.
    pub out_root: PathBuf,
    /// The binary the tasks run.
    pub exe: PathBuf,
    /// What each `anim render` gets.
    pub render: RenderArgs,
    /// The tasks, by array index.
    pub tasks: Vec<Task>,
}

impl FarmPlan {
    /// Reads `farm_dir/plan.json`.
    ///
    /// # Errors
    /// A missing or unreadable plan.
    pub fn read(farm_dir: &Path) -> Result<FarmPlan> {
        let path = farm_dir.join("plan.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }
}

/// `OUT_ROOT/farm-<jobid>`.
pub fn farm_dir(out_root: &Path, job_id: u64) -> PathBuf {
    out_root.join(format!("farm-{job_id}"))
}

/// The log of array task `index`: `FARM_DIR/logs/task-<index>.log`.
pub fn task_log(farm_dir: &Path, index: usize) -> PathBuf {
    farm_dir.join("logs").join(format!("task-{index}.log"))
}

/// `s` quoted for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Checks an option value that goes into an `#SBATCH` line.
fn check_value(option: &str, v: &str, spaces_ok: bool) -> Result<()> {
    if v.is_empty()
        || v.chars().any(char::is_control)
        || (!spaces_ok && v.chars().any(char::is_whitespace))
    {
        bail!("{option} `{v}`: expected one word without spaces or line breaks");
    }
    Ok(())
}

/// The `#SBATCH` lines shared by the array and the dependent job.
fn common_lines(o: &SlurmOptions) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (name, v) in [
        ("--partition", &o.partition),
        ("--account", &o.account),
        ("--time", &o.time),
    ] {
        if let Some(v) = v {
            check_value(name, v, false)?;
            lines.push(format!("{name}={v}"));
        }
    }
    for a in &o.sbatch_args {
        check_value("--sbatch-arg", a, true)?;
        lines.push(a.clone());
    }
    Ok(lines)
}

/// The sbatch script of the array: `%A` in its paths is the array's job id.
///
/// # Errors
/// No tasks or too many, or an option value that does not fit an `#SBATCH` line.
pub fn array_script(job: &Job) -> Result<String> {
    check_tasks(job.tasks)?;
    let o = job.slurm;
    let n = job.tasks.len();
    let mut array = format!("0-{}", n - 1);
    if let Some(k) = o.max_parallel {
        if k == 0 || k > super::plan::MAX_TASKS {
            bail!(
                "--max-parallel {k}: expected 1 to {}",
                super::plan::MAX_TASKS
            );
        }
        array.push_str(&format!("%{k}"));
    }
    let mut sb = vec![
        "--job-name=anim-farm".to_string(),
        format!("--array={array}"),
        // a preempted or failed node's task runs again and resumes from its checkpoint
        "--requeue".into(),
        "--open-mode=append".into(),
        format!(
            "--output={}",
            job.out_root.join("farm-%A/logs/task-%a.log").display()
        ),
    ];
    if let Some(g) = o.gpus_per_task {
        if g > MAX_PER_TASK {
            bail!("--gpus-per-task {g}: at most {MAX_PER_TASK}");
        }
        if g > 0 {
            sb.push(format!("--gres=gpu:{g}"));
        }
    }
    if let Some(c) = o.cpus_per_task {
        if c == 0 || c > MAX_PER_TASK {
            bail!("--cpus-per-task {c}: expected 1 to {MAX_PER_TASK}");
        }
        sb.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &o.mem {
        check_value("--mem", m, false)?;
        sb.push(format!("--mem={m}"));
    }
    sb.extend(common_lines(o)?);
    let render = RenderArgs {
        resume: true,
        ..job.render.clone()
    };
    let mut s = String::from("#!/bin/bash\n");
    for l in &sb {
        s.push_str(&format!("#SBATCH {l}\n"));
    }
    s.push_str(
        "# anim farm: one array task per scene (or part of a scene). Each runs\n\
         # `anim render --resume=auto`: a task that runs again (requeued, resubmitted)\n\
         # continues from its last checkpoint, and one already complete does nothing.\n\
         set -euo pipefail\n\
         i=${SLURM_ARRAY_TASK_ID:?this script runs as a Slurm array task}\n\
         case \"$i\" in\n",
    );
    for (i, t) in job.tasks.iter().enumerate() {
        let args: Vec<String> = t.render_args(&render).iter().map(|a| sh_quote(a)).collect();
        s.push_str(&format!("  {i}) set -- {} ;;\n", args.join(" ")));
    }
    s.push_str(
        "  *) echo \"anim farm: this job has no task $i\" >&2; exit 2 ;;\nesac\n\
         echo \"anim farm: task $i of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname), \
         $(date -u +%Y-%m-%dT%H:%M:%SZ), restart ${SLURM_RESTART_COUNT:-0}: $2\"\n",
    );
    s.push_str(&format!(
        "exec {} \"$@\"\n",
        sh_quote(&job.exe.display().to_string())
    ));
    Ok(s)
}

/// The sbatch script of the dependent job that summarises the array's job folder `farm`.
///
/// # Errors
/// An option value that does not fit an `#SBATCH` line.
pub fn finish_script(job: &Job, farm: &Path) -> Result<String> {
    let mut s = String::from("#!/bin/bash\n#SBATCH --job-name=anim-farm-finish\n");
    s.push_str(&format!(
        "#SBATCH --output={}\n",
        farm.join("logs/finish.log").display()
    ));
    for l in common_lines(job.slurm)? {
        s.push_str(&format!("#SBATCH {l}\n"));
    }
    s.push_str(
        "# anim farm: after every array task has ended (afterany), summary.json and the contact\n\
         # sheet; scenes rendered in parts get their manifest merged and their videos encoded.\n\
         set -euo pipefail\n",
    );
    s.push_str(&format!(
        "exec {} farm finish {}\n",
        sh_quote(&job.exe.display().to_string()),
        sh_quote(&farm.display().to_string())
    ));
    Ok(s)
}

/// The scripts `submit` would hand to sbatch, for `--dry-run`.
///
/// # Errors
/// As [`array_script`].
pub fn dry_run(job: &Job) -> Result<String> {
    let farm = job.out_root.join("farm-<jobid>");
    Ok(format!(
        "# {} tasks; `sbatch --hold` of this array, then the job below with \
         --dependency=afterany:<jobid>, then `scontrol release <jobid>`\n{}\n{}",
        job.tasks.len(),
        array_script(job)?,
        finish_script(job, &farm)?
    ))
}

/// Runs a Slurm command (with `input` on its standard input); its standard output.
fn slurm_cmd(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow!(
                "cannot run `{cmd}`: {e}; is Slurm's client installed on this machine and on PATH \
                 (Debian: slurm-client), with SLURM_CONF set where the cluster needs it?"
            )
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let o = child.wait_with_output()?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let hint = if err.contains("fetch_config") || err.contains("DNS SRV") {
            "; Slurm's client found no configuration: set SLURM_CONF to the cluster's slurm.conf"
        } else {
            ""
        };
        bail!("`{cmd} {}` failed: {}{hint}", args.join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The job id `sbatch --parsable` printed (`123` or `123;cluster`).
fn parse_job_id(text: &str) -> Result<u64> {
    text.trim()
        .split(';')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| anyhow!("sbatch printed `{}`, not a job id", text.trim()))
}

/// Submits the job: the array (held), its folder with `plan.json` and the scripts, the
/// dependent summary job, then releases the array. Returns the plan and the job's folder.
///
/// # Errors
/// sbatch or scontrol failing (the message is Slurm's), or a folder that cannot be written; a
/// half-submitted job is cancelled.
pub fn submit(job: &Job) -> Result<(FarmPlan, PathBuf)> {
    let script = array_script(job)?;
    std::fs::create_dir_all(job.out_root)
        .with_context(|| format!("cannot create {}", job.out_root.display()))?;
    let id = parse_job_id(&slurm_cmd(
        "sbatch",
        &["--parsable", "--hold"],
        Some(&script),
    )?)?;
    let cancel = |ids: &[u64]| {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let _ = slurm_cmd("scancel", &refs, None);
    };
    let farm = farm_dir(job.out_root, id);
    let prepared = (|| -> Result<(FarmPlan, u64)> {
        if farm.exists() {
            bail!(
                "{} already exists (from a job of a cluster whose job ids started again?); move it away",
                farm.display()
            );
        }
        std::fs::create_dir_all(farm.join("logs"))
            .with_context(|| format!("cannot create {}", farm.join("logs").display()))?;
        std::fs::write(farm.join("array.sbatch"), &script)?;
        let finish = finish_script(job, &farm)?;
        std::fs::write(farm.join("finish.sbatch"), &finish)?;
        let mut plan = FarmPlan {
            job_id: id,
            finish_job_id: None,
            submitted_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            out_root: job.out_root.to_path_buf(),
            exe: job.exe.to_path_buf(),
            render: RenderArgs {
                resume: true,
                ..job.render.clone()
            },
            tasks: job.tasks.to_vec(),
        };
        write_plan(&farm, &plan)?;
        let dep = format!("--dependency=afterany:{id}");
        let fid = parse_job_id(&slurm_cmd("sbatch", &["--parsable", &dep], Some(&finish))?)?;
        plan.finish_job_id = Some(fid);
        write_plan(&farm, &plan)?;
        Ok((plan, fid))
    })();
    let (plan, fid) = match prepared {
        Ok(p) => p,
        Err(e) => {
            cancel(&[id]);
            return Err(e.context(format!("job {id} cancelled")));
        }
    };
    if let Err(e) = slurm_cmd("scontrol", &["release", &id.to_string()], None) {
        cancel(&[id, fid]);
        return Err(e.context(format!("jobs {id} and {fid} cancelled")));
    }
    Ok((plan, farm))
}

fn write_plan(farm: &Path, plan: &FarmPlan) -> Result<()> {
    crate::output::write_atomic(&farm.join("plan.json"), |w| {
        Ok(serde_json::to_writer_pretty(w, plan)?)
    })
}

/// A farm task's state, from Slurm's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for resources (or for its turn under `%K`).
    Pending,
    /// Running (or completing, suspended).
    Running,
    /// Exited 0.
    Completed,
    /// Exited non-zero, timed out, ran out of memory, or its node failed.
    Failed,
    /// Cancelled (`anim farm cancel`, scancel).
    Cancelled,
    /// Put back in the queue (preempted, node failure, `scontrol requeue`): it resumes.
    Requeued,
    /// Slurm no longer knows the task (and keeps no accounting) and its output is not complete.
    Unknown,
}

impl TaskState {
    /// The state of a task in Slurm's `state` (`COMPLETED`, `CANCELLED by 0`), run `restarts`
    /// times before.
    pub fn from_slurm(state: &str, restarts: u32) -> TaskState {
        match state.split_whitespace().next().unwrap_or("") {
            "PENDING" if restarts > 0 => TaskState::Requeued,
            "PENDING" => TaskState::Pending,
            "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "PREEMPTED" => TaskState::Requeued,
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "STAGE_OUT" | "RESIZING"
            | "SIGNALING" => TaskState::Running,
            "COMPLETED" => TaskState::Completed,
            "CANCELLED" => TaskState::Cancelled,
            "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
            | "SPECIAL_EXIT" => TaskState::Failed,
            _ => TaskState::Unknown,
        }
    }

    /// Whether the task has ended for good (it will not run again by itself).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled | TaskState::Unknown
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// What Slurm says of some tasks of a job.
#[derive(Debug, Clone, Default, PartialEq)]
struct Record {
    /// The array indices it covers (pending tasks come as one record).
    tasks: Vec<usize>,
    state: String,
    exit_code: Option<String>,
    restarts: u32,
    seconds: Option<f64>,
    stdout: Option<PathBuf>,
}

/// `key=value` fields of one `scontrol -o` line; a value with spaces continues over the words
/// that hold no `=`.
fn fields(line: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":/_".contains(c)) =>
            {
                map.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            _ => {
                if let Some(k) = &last
                    && let Some(v) = map.get_mut(k)
                {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    map
}

/// Array indices in Slurm's notation: `3`, `0-9`, `0-9%2`, `[1,4-6]`; at most `limit` of them.
fn expand_ids(text: &str, limit: usize) -> Vec<usize> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    let t = t.split('%').next().unwrap_or("");
    let mut ids = Vec::new();
    for part in t.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.trim().parse(), part.trim().parse()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for i in a..=b.min(a.saturating_add(limit)) {
                if ids.len() >= limit {
                    return ids;
                }
                ids.push(i);
            }
        }
    }
    ids
}

/// `[D-]HH:MM:SS` (or `MM:SS`) in seconds.
fn duration(text: &str) -> Option<f64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, text),
    };
    let parts: Vec<f64> = rest
        .split(':')
        .map(|p| p.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    let secs = parts.iter().fold(0.0, |acc, p| acc * 60.0 + p);
    Some(days * 86400.0 + secs)
}

/// Records of `scontrol -o show job` output.
fn parse_scontrol(text: &str, limit: usize) -> Vec<Record> {
    text.lines()
        .filter(|l| l.contains("JobId="))
        .map(|l| {
            let f = fields(l);
            Record {
                tasks: f
                    .get("ArrayTaskId")
                    .map(|ids| expand_ids(ids, limit))
                    .unwrap_or_default(),
                state: f.get("JobState").cloned().unwrap_or_default(),
                exit_code: f.get("ExitCode").cloned(),
                restarts: f.get("Restarts").and_then(|r| r.parse().ok()).unwrap_or(0),
                seconds: f.get("RunTime").and_then(|t| duration(t)),
                stdout: f.get("StdOut").map(PathBuf::from),
            }
        })
        .collect()
}

/// Records of `sacct -n -P -X -o JobID,State,ExitCode,ElapsedRaw` output.
fn parse_sacct(text: &str, limit: usize) -> Vec<Record> {
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            let [id, state, exit, elapsed, ..] = cols[..] else {
                return None;
            };
            let tasks = id
                .split_once('_')
                .map_or_else(Vec::new, |(_, t)| expand_ids(t, limit));
            Some(Record {
                tasks,
                state: state.to_string(),
                exit_code: Some(exit.to_string()),
                restarts: 0,
                seconds: elapsed.parse().ok(),
                stdout: None,
            })
        })
        .collect()
}

/// What Slurm says of job `id`: `None` where it does not know the job (any more).
///
/// # Errors
/// `scontrol` cannot be run, or fails for another reason than an unknown job.
fn records(id: u64, limit: usize) -> Result<Option<Vec<Record>>> {
    match slurm_cmd("scontrol", &["-o", "show", "job", &id.to_string()], None) {
        Ok(text) => return Ok(Some(parse_scontrol(&text, limit))),
        Err(e) if format!("{e:#}").contains("Invalid job id") => {}
        Err(e) => return Err(e),
    }
    // Slurm forgets finished jobs after MinJobAge; accounting (where there is any) keeps them
    let args = [
        "-j",
        &id.to_string(),
        "-n",
        "-P",
        "-X",
        "-o",
        "JobID,State,ExitCode,ElapsedRaw",
    ];
    Ok(slurm_cmd("sacct", &args, None)
        .ok()
        .map(|t| parse_sacct(&t, limit))
        .filter(|r| !r.is_empty()))
}

/// One task of a farm job, as `anim farm status` and the summary show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Array index.
    pub index: usize,
    /// The scene's (or variant's) name.
    pub name: String,
    /// The scene file.
    pub scene: PathBuf,
    /// The output folder.
    pub output: PathBuf,
    /// The frames of a part of a split scene (first, last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<[usize; 2]>,
    /// The state.
    pub state: TaskState,
    /// Slurm's own state (`COMPLETED`, `CANCELLED by 0`), empty where Slurm does not know it.
    pub slurm_state: String,
    /// Slurm's exit code (`code:signal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    /// Times the task was requeued.
    pub restarts: u32,
    /// Run time so far (the last run's), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Frames done, from the task's checkpoint or manifest.
    pub frames: usize,
    /// Frames of the task, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_total: Option<usize>,
    /// The task's log.
    pub log: PathBuf,
    /// The end of the log of a failed task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

/// A farm job's tasks and its summary job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    /// The array's job id.
    pub job_id: u64,
    /// `OUT_ROOT/farm-<jobid>`.
    pub farm_dir: PathBuf,
    /// Every task, by index.
    pub tasks: Vec<TaskStatus>,
    /// The dependent job writing the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_job_id: Option<u64>,
    /// Its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_state: Option<TaskState>,
    /// `summary.json`, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PathBuf>,
}

impl JobStatus {
    /// Whether every task has ended for good and the summary is written.
    pub fn is_done(&self) -> bool {
        self.tasks.iter().all(|t| t.state.is_final()) && self.summary.is_some()
    }
}

/// The status of the job whose plan is in `farm`.
///
/// # Errors
/// `scontrol` cannot be run.
pub fn status_in(plan: &FarmPlan, farm: &Path) -> Result<JobStatus> {
    let n = plan.tasks.len();
    let recs = records(plan.job_id, n)?;
    let tasks = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let rec = recs
                .as_ref()
                .and_then(|r| r.iter().find(|r| r.tasks.contains(&i)));
            let progress = t.progress();
            let state = match rec {
                Some(r) => TaskState::from_slurm(&r.state, r.restarts),
                None if progress.complete => TaskState::Completed,
                None => TaskState::Unknown,
            };
            let log = task_log(farm, i);
            TaskStatus {
                index: i,
                name: t.name.clone(),
                scene: t.scene.clone(),
                output: t.out.clone(),
                part: t.frames,
                state,
                slurm_state: rec.map(|r| r.state.clone()).unwrap_or_default(),
                exit_code: rec.and_then(|r| r.exit_code.clone()),
                restarts: rec.map_or(0, |r| r.restarts),
                seconds: rec.and_then(|r| r.seconds),
                frames: progress.done,
                frames_total: progress.total,
                log_tail: if state == TaskState::Failed {
                    log_tail(&log, TAIL_LINES)
                } else {
                    Vec::new()
                },
                log,
            }
        })
        .collect();
    let finish_state = match plan.finish_job_id {
        Some(f) => records(f, 1)?
            .and_then(|r| r.into_iter().next())
            .map(|r| TaskState::from_slurm(&r.state, r.restarts)),
        None => None,
    };
    let summary = farm.join("summary.json");
    Ok(JobStatus {
        job_id: plan.job_id,
        farm_dir: farm.to_path_buf(),
        tasks,
        finish_job_id: plan.finish_job_id,
        finish_state,
        summary: summary.is_file().then_some(summary),
    })
}

/// The status of farm job `id`: its folder found from Slurm's record of the job (the tasks'
/// log paths), or in `out_root` (`OUT_ROOT/farm-<id>`) where Slurm has forgotten it.
///
/// # Errors
/// No folder for the job, or `scontrol` cannot be run.
pub fn status(id: u64, out_root: &Path) -> Result<JobStatus> {
    let from_slurm = records(id, 1)?.and_then(|recs| {
        recs.iter()
            .filter_map(|r| r.stdout.as_ref()?.parent()?.parent().map(Path::to_path_buf))
            .find(|d| d.join("plan.json").is_file())
    });
    let farm = from_slurm.unwrap_or_else(|| farm_dir(out_root, id));
    let plan = FarmPlan::read(&farm).with_context(|| {
        format!(
            "job {id}: not an anim farm job Slurm knows, and there is no {}; pass the --out-root it was submitted with",
            farm.join("plan.json").display()
        )
    })?;
    status_in(&plan, &farm)
}

/// A status as a table: one line per task (state, frames, name, output), a failed task's log
/// tail under it, then the summary job.
pub fn status_table(s: &JobStatus) -> String {
    let mut out = format!(
        "job {}: {} tasks; folder {}\n",
        s.job_id,
        s.tasks.len(),
        s.farm_dir.display()
    );
    let state_w = s
        .tasks
        .iter()
        .map(|t| t.state.to_string().len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!("task  {:state_w$}  frames  scene\n", "state"));
    for t in &s.tasks {
        let total = t
            .frames_total
            .map_or_else(|| "?".to_string(), |n| n.to_string());
        let part = t
            .part
            .map(|[a, b]| format!(" frames {a}..{b}"))
            .unwrap_or_default();
        let restarts = if t.restarts > 0 {
            format!(" (requeued {}x)", t.restarts)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<4}  {:state_w$}  {:>6}  {}{part}{restarts} -> {}\n",
            t.index,
            t.state.to_string(),
            format!("{}/{total}", t.frames),
            t.name,
            t.output.display()
        ));
        if !t.log_tail.is_empty() {
            out.push_str(&format!("      log {}:\n", t.log.display()));
            for l in &t.log_tail {
                out.push_str(&format!("      | {l}\n"));
            }
        }
    }
    if let Some(f) = s.finish_job_id {
        let st = s
            .finish_state
            .map_or_else(|| "unknown".into(), |st| st.to_string());
        out.push_str(&format!("summary job {f}: {st}"));
        if let Some(p) = &s.summary {
            out.push_str(&format!("; {}", p.display()));
        }
        out.push('\n');
    }
    out
}

/// Cancels farm job `id`, or only its array task `task`.
///
/// # Errors
/// A job Slurm does not know, a task the job does not have, or scancel failing (its message).
pub fn cancel(id: u64, task: Option<usize>) -> Result<()> {
    // scancel says nothing of an unknown job: ask first
    let recs = records(id, super::plan::MAX_TASKS)?
        .ok_or_else(|| anyhow!("job {id}: Slurm does not know this job (any more)"))?;
    if let Some(t) = task
        && !recs.iter().any(|r| r.tasks.contains(&t))
    {
        bail!("job {id} has no array task {t}");
    }
    let target = match task {
        Some(t) => format!("{id}_{t}"),
        None => id.to_string(),
    };
    slurm_cmd("scancel", &[&target], None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_give_each_task_its_state() {
        let text = "JobId=7 ArrayJobId=7 ArrayTaskId=3-5%2 ArrayTaskThrottle=2 JobName=anim-farm JobState=PENDING Reason=JobArrayTaskLimit Restarts=0 ExitCode=0:0 RunTime=00:00:00 StdOut=/o/farm-7/logs/task-4294967294.log\n\
                    JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName=anim farm JobState=FAILED Reason=NonZeroExitCode Restarts=1 ExitCode=1:0 RunTime=1-00:01:05 StdOut=/o/farm-7/logs/task-1.log\n";
        let r = parse_scontrol(text, 100);
        assert_eq!(r[0].tasks, [3, 4, 5]);
        assert_eq!(r[0].state, "PENDING");
        assert_eq!(r[1].tasks, [1]);
        assert_eq!(r[1].exit_code.as_deref(), Some("1:0"));
        assert_eq!(r[1].seconds, Some(86465.0));
        assert_eq!(r[1].restarts, 1);
        assert_eq!(
            fields("JobName=anim farm JobState=X")["JobName"],
            "anim farm"
        );
        assert_eq!(
            r[1].stdout.as_deref(),
            Some(Path::new("/o/farm-7/logs/task-1.log"))
        );
        assert_eq!(expand_ids("[1,4-6]", 100), [1, 4, 5, 6]);
        assert_eq!(expand_ids("0-1000000", 3), [0, 1, 2]);
    }

    #[test]
    fn sacct_lines_and_states() {
        let r = parse_sacct("7_0|COMPLETED|0:0|12\n7_[1-2]|CANCELLED by 0|0:15|0\n", 10);
        assert_eq!(r[1].tasks, [1, 2]);
        assert_eq!(TaskState::from_slurm(&r[1].state, 0), TaskState::Cancelled);
        assert_eq!(TaskState::from_slurm("PENDING", 2), TaskState::Requeued);
        assert_eq!(TaskState::from_slurm("TIMEOUT", 0), TaskState::Failed);
        assert_eq!(TaskState::Requeued.to_string(), "requeued");
    }

    #[test]
    fn the_array_script_runs_each_task_resumable_with_its_own_arguments() {
        let tasks = vec![
            Task {
                name: "it's".into(),
                scene: "/s/it's.toml".into(),
                out: "/o/it's".into(),
                frames: None,
                total: Some(4),
            },
            Task {
                name: "v".into(),
                scene: "/s/v.toml".into(),
                out: "/o/v".into(),
                frames: Some([0, 5]),
                total: Some(12),
            },
        ];
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            gpus_per_task: Some(1),
            max_parallel: Some(2),
            mem: Some("16G".into()),
            sbatch_args: vec!["--qos=high".into()],
            ..Default::default()
        };
        let render = RenderArgs {
            device: "cuda".into(),
            ..Default::default()
        };
        let job = Job {
            tasks: &tasks,
            render: &render,
            exe: Path::new("/bin/anim"),
            out_root: Path::new("/o"),
            slurm: &opts,
        };
        let s = array_script(&job).unwrap();
        for line in [
            "#SBATCH --array=0-1%2\n",
            "#SBATCH --requeue\n",
            "#SBATCH --output=/o/farm-%A/logs/task-%a.log\n",
            "#SBATCH --gres=gpu:1\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --mem=16G\n",
            "#SBATCH --qos=high\n",
            "  0) set -- 'render' '/s/it'\\''s.toml' '--out' '/o/it'\\''s' '--quiet' '--device' 'cuda' '--resume=auto' ;;\n",
            "'--frames' '0..5' '--no-video' ;;\n",
            "exec '/bin/anim' \"$@\"\n",
        ] {
            assert!(s.contains(line), "{line} not in\n{s}");
        }
        let f = finish_script(&job, Path::new("/o/farm-7")).unwrap();
        assert!(
            f.contains("exec '/bin/anim' farm finish '/o/farm-7'\n"),
            "{f}"
        );
        assert!(!f.contains("gres"), "{f}");
        let bad = SlurmOptions {
            partition: Some("a b".into()),
            ..Default::default()
        };
        assert!(
            array_script(&Job {
                slurm: &bad,
                ..job.clone()
            })
            .is_err()
        );
        let newline = SlurmOptions {
            sbatch_args: vec!["--qos=x\n#SBATCH --wrap".into()],
            ..Default::default()
        };
        assert!(
            array_script(&Job {
                slurm: &newline,
                ..job
            })
            .is_err()
        );
    }
}
