//! The `anim` command line: a thin layer over the library.

use std::io::{IsTerminal as _, Write as _};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use anim::diffusion::{Device, SessionOptions};
use anim::farm::{self, Task, batch, k8s, plan::RenderArgs, slurm, sweep};
use anim::render::{self, RenderOptions};
use anim::scene::{ReadOptions, Scene};

/// The execution providers `--device` takes.
const DEVICES: [&str; 6] = ["cpu", "cuda", "tensorrt", "directml", "coreml", "auto"];

/// Deforum-style scripted animation over Stable Diffusion ONNX models.
#[derive(Parser)]
#[command(name = "anim", version, about)]
struct Cli {
    /// Read known Deforum/A1111 values anim does not implement (samplers, hybrid video, URLs
    /// where a file is needed) as warnings with their documented fallback instead
    /// of errors.
    #[arg(long, global = true)]
    allow_unsupported: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a scene: frames as PNGs, an mp4 and a manifest in the output folder.
    Render {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// Model folder (overrides the scene's [model] folder).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where the models run: cpu, cuda, tensorrt, directml, coreml, or auto (the first GPU
        /// provider that starts, else the CPU).
        #[arg(long, default_value = "auto", value_parser = ["cpu", "cuda", "tensorrt", "directml", "coreml", "auto"])]
        device: String,
        /// Cache folder for ONNX Runtime's optimised models and TensorRT engines (default
        /// ~/.cache/anim/ort); `none` disables it.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// ONNX Runtime threads per model (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Run the UNet from fixed buffers and, on CUDA, replay each step as a captured CUDA graph
        /// (experimental: not yet measured on a GPU)
        #[arg(long)]
        cuda_graph: bool,
        /// Output folder (default: the scene's [output] folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Do not encode the mp4.
        #[arg(long)]
        no_video: bool,
        /// x264/x265 preset of the videos, in place of the scene's [output] preset.
        #[arg(long, value_name = "P", value_parser = clap::builder::PossibleValuesParser::new(anim::scene::PRESETS))]
        video_preset: Option<String>,
        /// Continue an interrupted render in the same output folder (bit-identical frames).
        /// `--resume=auto` also starts afresh where there is nothing to resume and does nothing
        /// where the render is complete (what farm tasks run).
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "on",
              value_parser = ["on", "auto"], value_name = "auto")]
        resume: Option<String>,
        /// Render only frames A..B (0-based, both included) and no video: for Video Input and
        /// Interpolation scenes with a fixed seed, whose frames do not depend on each other.
        /// The frames are the same bytes as those of a whole render; `anim encode OUT` makes
        /// the video once every frame is there.
        #[arg(long, value_name = "A..B", value_parser = parse_frames)]
        frames: Option<RangeInclusive<usize>>,
    },
    /// Render several scenes on this machine, N at a time, each into its own folder; a summary
    /// table at the end, exit status 1 if any scene failed.
    Batch {
        /// Scene files (TOML or Deforum settings).
        #[arg(required = true)]
        scenes: Vec<PathBuf>,
        /// Render each scene into OUT_ROOT/<scene name>/ (default: each scene's own output folder).
        #[arg(long)]
        out_root: Option<PathBuf>,
        #[command(flatten)]
        local: LocalRenders,
    },
    /// Render the variants of a scene, the Cartesian product of the --vary values, as a batch or
    /// on a Slurm farm.
    Sweep {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// A key and its values: `generation.seed=1,2,3`, `seed=1..8`, `strength_schedule=0.4..0.8:0.2`,
        /// `motion.zoom="0:(1.0)","0:(1.02)"`; the key is a dotted scene key or a Deforum name.
        #[arg(long = "vary", required = true, value_name = "KEY=VALUES")]
        vary: Vec<String>,
        /// The variants go to OUT_ROOT/<scene name>-sweep/ (default: beside the scene's own
        /// output folder).
        #[arg(long)]
        out_root: Option<PathBuf>,
        /// List the variants (with --farm: print the sbatch scripts) and stop.
        #[arg(long)]
        dry_run: bool,
        /// Submit the variants to a farm instead of rendering them here.
        #[arg(long, value_parser = ["slurm"])]
        farm: Option<String>,
        #[command(flatten)]
        local: LocalRenders,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Renders on a cluster: Slurm job arrays (submit, status, cancel) or Kubernetes manifests.
    Farm {
        #[command(subcommand)]
        what: FarmCommand,
    },
    /// Run the scene's post passes over a finished render: [output] subtitles (video.srt),
    /// [post] upscaling (video_Upscaled_xN.mp4) and frame interpolation (video_RIFE_xN.mp4);
    /// `render` runs them itself at the end of a whole render.
    Post {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// The render's output folder (default: the scene's [output] folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Encode the videos of a finished frames folder exactly as render would (after renders of
    /// parts with --frames: the parts' manifests are merged first).
    Encode {
        /// The render's output folder (holding frames/ and manifest.json or parts/).
        out: PathBuf,
    },
    /// Optical flow between two frames: a Middlebury .flo file and, with --png, a colour-wheel
    /// picture.
    Flow {
        /// The first frame (the flow goes from it).
        frame_a: PathBuf,
        /// The second frame (same size).
        frame_b: PathBuf,
        /// farneback, dis-medium, dis-fine or raft (Deforum's names also work).
        #[arg(long, default_value = "farneback")]
        method: String,
        /// RAFT's model folder (an ONNX export).
        #[arg(long)]
        model: Option<PathBuf>,
        /// The .flo file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Also write the flow as a Middlebury colour-wheel PNG.
        #[arg(long, value_name = "VIS.png")]
        png: Option<PathBuf>,
    },
    /// Render the camera motion alone (no model), for quick checks of a camera path.
    Preview {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// Output folder (default: the scene's [output] folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Do not encode the mp4.
        #[arg(long)]
        no_video: bool,
        /// x264/x265 preset of the video (default: ultrafast, whatever the scene's [output]
        /// preset, which is for the final render).
        #[arg(long, value_name = "P", value_parser = clap::builder::PossibleValuesParser::new(anim::scene::PRESETS))]
        video_preset: Option<String>,
    },
    /// Render a scene (or its first N frames) without the video and print where the time goes:
    /// each stage's mean time per frame (from the manifest) and the share inside ONNX Runtime.
    Bench {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// Model folder (overrides the scene's [model] folder).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Only the first N frames (default: all of the scene's).
        #[arg(long, value_name = "N")]
        frames: Option<usize>,
        /// Output folder (default: the scene's [output] folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the models run (as for render).
        #[arg(long, default_value = "auto", value_parser = DEVICES)]
        device: String,
        /// ONNX Runtime intra-op threads (as for render).
        #[arg(long)]
        threads: Option<usize>,
        /// Run the UNet from fixed buffers, on CUDA as a CUDA graph (as for render).
        #[arg(long)]
        cuda_graph: bool,
    },
    /// Check a scene file (keys, schedules, prompts, init image, model folder) without rendering.
    Validate {
        /// Scene file (TOML) or Deforum settings file (JSON).
        scene: PathBuf,
        /// Model folder to check against (overrides the scene's [model] folder; Deforum settings
        /// files name none).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Print or plot every schedule of a scene or Deforum settings file, one value per frame.
    Schedule {
        /// Scene file (TOML) or Deforum settings file (JSON, .txt or .json).
        scene: PathBuf,
        /// csv (default), json, or png (a plot, one panel per schedule).
        #[arg(long, default_value = "csv", value_parser = ["csv", "json", "png"])]
        format: String,
        /// Only these schedules, comma-separated (e.g. zoom,angle).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Write to this file instead of standard output (png: default ./schedule.png).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Camera presets: list them, show one, render preview clips and a contact sheet.
    Presets {
        #[command(subcommand)]
        what: PresetsCommand,
    },
    /// Convert from other tools' formats.
    Import {
        #[command(subcommand)]
        what: ImportKind,
    },
}

// parsed once per run: the size of a variant does not matter
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum FarmCommand {
    /// Submit scenes as a Slurm job array (one task per scene or part), with a dependent job
    /// writing OUT_ROOT/farm-<jobid>/summary.json; or write Kubernetes manifests.
    Submit {
        /// Scene files (TOML or Deforum settings).
        #[arg(required = true)]
        scenes: Vec<PathBuf>,
        /// Submit to Slurm (sbatch).
        #[arg(long, required_unless_present = "k8s", conflicts_with = "k8s")]
        slurm: bool,
        /// Write a Kubernetes Indexed Job and ConfigMap instead.
        #[arg(long)]
        k8s: bool,
        /// Outputs go to OUT_ROOT/<scene name>/, the job's folder to OUT_ROOT/farm-<jobid>/.
        #[arg(long, default_value = "output")]
        out_root: PathBuf,
        /// Split each scene into N tasks of consecutive frames (Video Input and Interpolation
        /// scenes with a fixed seed); the dependent job encodes the video.
        #[arg(long, default_value_t = 1)]
        split: usize,
        /// Print the sbatch scripts without submitting.
        #[arg(long)]
        dry_run: bool,
        /// Model folder for every scene.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Where the models run on the nodes (as for render).
        #[arg(long, default_value = "auto", value_parser = DEVICES)]
        device: String,
        #[command(flatten)]
        slurm_args: SlurmArgs,
        #[command(flatten)]
        k8s_args: K8sArgs,
    },
    /// Each task's state (from Slurm), frames done and, for failed tasks, the end of their log.
    Status {
        /// The job id `farm submit` printed.
        job: u64,
        /// As JSON.
        #[arg(long)]
        json: bool,
        /// Where to look for the job's folder once Slurm has forgotten the job.
        #[arg(long, default_value = "output")]
        out_root: PathBuf,
    },
    /// Cancel a farm job, or one of its tasks (resubmitting resumes it).
    Cancel {
        /// The job id.
        job: u64,
        /// Only this array task.
        #[arg(long)]
        task: Option<usize>,
    },
    /// Run by the dependent job: merge split scenes, encode their videos, write summary.json and
    /// the contact sheet.
    #[command(hide = true)]
    Finish {
        /// OUT_ROOT/farm-<jobid>.
        farm_dir: PathBuf,
    },
}

/// How `anim batch` and `anim sweep` render on this machine.
#[derive(clap::Args)]
struct LocalRenders {
    /// Renders at once on this machine (each loads its own model: one per GPU).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Model folder for every scene.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the models run (as for render).
    #[arg(long, default_value = "auto", value_parser = DEVICES)]
    device: String,
    /// Continue interrupted renders, skip complete ones.
    #[arg(long)]
    resume: bool,
}

impl LocalRenders {
    /// What each render is run with (the model folder made absolute).
    fn render_args(&self, read: ReadOptions) -> Result<RenderArgs> {
        Ok(RenderArgs {
            model: self
                .model
                .as_deref()
                .map(farm::plan::absolute)
                .transpose()?,
            device: self.device.clone(),
            resume: self.resume,
            threads: None,
            allow_unsupported: read.allow_unsupported,
        })
    }
}

/// sbatch options.
#[derive(clap::Args)]
struct SlurmArgs {
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// GPUs per task (--gres=gpu:N); none requested by default.
    #[arg(long)]
    gpus_per_task: Option<u32>,
    /// CPUs per task.
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Memory per task (sbatch --mem, e.g. 32G).
    #[arg(long)]
    mem: Option<String>,
    /// Time limit per task (sbatch --time, e.g. 04:00:00).
    #[arg(long)]
    time: Option<String>,
    /// Tasks running at once (the array's %K; with --k8s the Job's parallelism).
    #[arg(long)]
    max_parallel: Option<usize>,
    /// Slurm account.
    #[arg(long)]
    account: Option<String>,
    /// Another sbatch option, as sbatch takes it (`--sbatch-arg=--qos=high`); repeatable.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true, value_name = "ARG")]
    sbatch_arg: Vec<String>,
}

impl SlurmArgs {
    fn options(&self) -> slurm::SlurmOptions {
        slurm::SlurmOptions {
            partition: self.partition.clone(),
            gpus_per_task: self.gpus_per_task,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            time: self.time.clone(),
            max_parallel: self.max_parallel,
            account: self.account.clone(),
            sbatch_args: self.sbatch_arg.clone(),
        }
    }
}

/// Kubernetes manifest options.
#[derive(clap::Args)]
struct K8sArgs {
    /// Container image with anim (on PATH) and ONNX Runtime.
    #[arg(long)]
    image: Option<String>,
    /// GPUs per pod (nvidia.com/gpu limit).
    #[arg(long, default_value_t = 1)]
    gpu: u32,
    /// PersistentVolumeClaim with the scenes, models and outputs.
    #[arg(long)]
    pvc: Option<String>,
    /// Where the claim is mounted (default: the deepest folder holding every scene, output and
    /// model path, so the paths are the same in the pods).
    #[arg(long)]
    mount_path: Option<PathBuf>,
    /// Namespace of the Job and ConfigMap.
    #[arg(long)]
    namespace: Option<String>,
    /// Write configmap.yaml and job.yaml into this folder instead of standard output.
    #[arg(long)]
    k8s_out: Option<PathBuf>,
}

fn parse_frames(text: &str) -> Result<RangeInclusive<usize>, String> {
    render::parse_frame_range(text).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum ImportKind {
    /// A Deforum settings file (JSON) to a scene TOML; unsupported keys are listed as warnings.
    Deforum {
        /// The settings file.
        settings: PathBuf,
        /// The scene file to write.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum PresetsCommand {
    /// Every preset (bundled, then user folders) with its source and description.
    List {
        /// Extra preset folder (after $XDG_CONFIG_HOME/anim/presets); repeatable.
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// A preset's parameters (with defaults) and schedules per mode.
    Show {
        /// Preset name.
        name: String,
        /// Extra preset folder; repeatable.
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
    /// Render a short motion-only clip of a preset (or all) on the test pattern, plus a contact sheet.
    Preview {
        /// Preset name.
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Every preset.
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// Output folder: one sub-folder per preset and contact_sheet.png.
        #[arg(long, default_value = "presets-preview")]
        out: PathBuf,
        /// Frames per clip.
        #[arg(long, default_value_t = 48)]
        frames: usize,
        /// Frame size in pixels (square, a multiple of 8).
        #[arg(long, default_value_t = 256)]
        size: u32,
        /// Frames per second of the clips.
        #[arg(long, default_value_t = 12.0)]
        fps: f64,
        /// Do not encode an mp4 per clip.
        #[arg(long)]
        no_video: bool,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Extra preset folder; repeatable.
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
    },
}

fn presets(cmd: PresetsCommand) -> Result<()> {
    use anim::motion::{PresetLibrary, gallery};
    let lib = |dirs: &[PathBuf]| {
        PresetLibrary::load(&PresetLibrary::search_dirs(dirs)).map_err(anyhow::Error::msg)
    };
    match cmd {
        PresetsCommand::List { dirs } => print!("{}", lib(&dirs)?.listing()),
        PresetsCommand::Show { name, dirs } => {
            print!("{}", lib(&dirs)?.get(&name).map_err(anyhow::Error::msg)?);
        }
        PresetsCommand::Preview {
            name,
            all,
            out,
            frames,
            size,
            fps,
            no_video,
            quiet,
            dirs,
        } => {
            let names: Vec<String> = if all {
                lib(&dirs)?.iter().map(|p| p.name.clone()).collect()
            } else {
                name.into_iter().collect()
            };
            let opts = gallery::GalleryOptions {
                out,
                frames,
                size,
                fps,
                video: !no_video,
                quiet,
                preset_dirs: dirs,
            };
            let summary = gallery::preview(&names, &opts)?;
            for (n, dir) in &summary.clips {
                eprintln!("{n}: {}", dir.display());
            }
            eprintln!("contact sheet: {}", summary.contact_sheet.display());
        }
    }
    Ok(())
}

fn load(path: &Path, opts: ReadOptions) -> Result<Scene> {
    let scene = Scene::load_with(path, opts)?;
    for w in &scene.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(scene)
}

fn schedule(
    path: &Path,
    format: &str,
    only: &[String],
    output: Option<&Path>,
    opts: ReadOptions,
) -> Result<()> {
    use anim::schedule::export::{self, Exported};
    let scene = load(path, opts)?;
    let format = format.parse().map_err(anyhow::Error::msg)?;
    match export::export(&scene, format, only, output)? {
        Exported::Text(text) => print!("{text}"),
        Exported::Written(_) => {}
        Exported::Plot(out) => eprintln!("wrote {}", out.display()),
    }
    Ok(())
}

fn import_deforum(settings: &Path, output: &Path, opts: ReadOptions) -> Result<()> {
    use anim::scene::deforum;
    let (mut scene, warnings) = deforum::read_file_with(settings, opts)?;
    for w in &warnings {
        eprintln!("warning: {}: {w}", settings.display());
    }
    // a scene written into another folder names the settings file's inputs by absolute path
    // (its output folder stays relative to where it is written)
    let dir =
        |p: &Path| std::path::absolute(p.parent().unwrap_or(Path::new(""))).unwrap_or_default();
    if dir(settings) != dir(output) {
        let out = scene.output.folder.clone();
        scene.absolutize_paths()?;
        scene.output.folder = out;
    }
    deforum::write_toml(&scene, settings, &warnings, output)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

fn validate(path: &Path, model: Option<&Path>, opts: ReadOptions) -> Result<()> {
    let report = anim::check::check(&load(path, opts)?, model)?;
    println!("{report}");
    for n in &report.notes {
        println!("note: {n}");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let read = ReadOptions {
        allow_unsupported: cli.allow_unsupported,
    };
    match cli.command {
        Command::Render {
            scene,
            model,
            device,
            cache_dir,
            threads,
            cuda_graph,
            out,
            quiet,
            no_video,
            video_preset,
            resume,
            frames,
        } => {
            let s = load(&scene, read)?;
            for w in render::unapplied_settings(&s) {
                eprintln!(
                    "warning: {}: not applied by the render loop yet: {w}",
                    scene.display()
                );
            }
            let session = SessionOptions {
                device: Device::parse(&device)?,
                cache: SessionOptions::cache_from_arg(cache_dir),
                threads,
                cuda_graph,
            };
            let summary = render::render(
                &s,
                &RenderOptions {
                    out,
                    quiet,
                    no_video,
                    video_preset,
                    model,
                    session,
                    resume: resume.is_some(),
                    resume_auto: resume.as_deref() == Some("auto"),
                    frames: frames.clone(),
                },
            )?;
            report(&summary, quiet);
            if summary.interrupted {
                let range = frames
                    .map(|r| format!(" --frames {}..{}", r.start(), r.end()))
                    .unwrap_or_default();
                eprintln!(
                    "interrupted after {} frames; continue with `anim render {}{range} --resume`",
                    summary.frames,
                    scene.display()
                );
                std::process::exit(130);
            }
            // the post passes need every frame and the videos
            if frames.is_none() && !no_video {
                run_post(&s, &summary.out, quiet)?;
            }
        }
        Command::Preview {
            scene,
            out,
            quiet,
            no_video,
            video_preset,
        } => {
            let s = load(&scene, read)?;
            let summary = render::preview(
                &s,
                &RenderOptions {
                    out,
                    quiet,
                    no_video,
                    video_preset,
                    ..RenderOptions::default()
                },
            )?;
            report(&summary, quiet);
        }
        Command::Bench {
            scene,
            model,
            frames,
            out,
            device,
            threads,
            cuda_graph,
        } => {
            let s = load(&scene, read)?;
            let session = SessionOptions {
                device: Device::parse(&device)?,
                cache: SessionOptions::cache_from_arg(None),
                threads,
                cuda_graph,
            };
            let report = render::bench(
                &s,
                &RenderOptions {
                    out,
                    quiet: true,
                    model,
                    session,
                    ..RenderOptions::default()
                },
                frames,
            )?;
            println!("{report}");
        }
        Command::Validate { scene, model } => validate(&scene, model.as_deref(), read)?,
        Command::Schedule {
            scene,
            format,
            only,
            output,
        } => schedule(&scene, &format, &only, output.as_deref(), read)?,
        Command::Import {
            what: ImportKind::Deforum { settings, output },
        } => import_deforum(&settings, &output, read)?,
        Command::Presets { what } => presets(what)?,
        Command::Batch {
            scenes,
            out_root,
            local,
        } => {
            let entries = batch::entries(&scenes, out_root.as_deref(), read)?;
            run_batch(&entries, local.jobs, local.render_args(read)?)?;
        }
        Command::Sweep {
            scene,
            vary,
            out_root,
            dry_run,
            farm: on_farm,
            local,
            slurm: slurm_args,
        } => {
            let varies = vary
                .iter()
                .map(|v| sweep::parse_vary(v))
                .collect::<Result<Vec<_>>>()?;
            let sweep = sweep::plan(&scene, &varies, out_root.as_deref(), read)?;
            let render = local.render_args(read)?;
            if dry_run {
                print!("{}", sweep.listing());
            } else {
                sweep.write()?;
                eprintln!(
                    "wrote {} variants into {}",
                    sweep.variants.len(),
                    sweep.dir.join("variants").display()
                );
            }
            let tasks = sweep.tasks();
            match on_farm {
                Some(_) => submit_slurm(&tasks, &render, &sweep.dir, &slurm_args, dry_run)?,
                None if dry_run => {}
                None => {
                    let entries: Vec<batch::Entry> = tasks
                        .into_iter()
                        .map(|t| batch::Entry {
                            scene: t.scene.clone(),
                            task: Ok(t),
                        })
                        .collect();
                    run_batch(&entries, local.jobs, render)?;
                }
            }
        }
        Command::Farm { what } => farm_command(what, read)?,
        Command::Post { scene, out } => {
            let s = load(&scene, read)?;
            let out = match out {
                Some(o) => o,
                None => s.checked_output_folder()?,
            };
            run_post(&s, &out, false)?;
        }
        Command::Encode { out } => {
            let e = farm::encode::encode(&out, false)?;
            if e.parts > 0 {
                eprintln!(
                    "merged {} parts into {}",
                    e.parts,
                    out.join("manifest.json").display()
                );
            }
            if let Some(v) = &e.video {
                eprintln!("{} frames -> {}", e.frames, v.display());
            }
        }
        Command::Flow {
            frame_a,
            frame_b,
            method,
            model,
            out,
            png,
        } => {
            let method: anim::flow::Method = method
                .parse()
                .map_err(|e: anyhow::Error| e.context("bad --method"))?;
            let run = anim::flow::io::flow_files(
                &frame_a,
                &frame_b,
                method,
                model.as_deref(),
                &out,
                png.as_deref(),
            )?;
            eprintln!(
                "{} flow {}x{}: mean {:.3} px, max {:.3} px -> {}",
                method.cli_name(),
                run.flow.width(),
                run.flow.height(),
                run.mean_magnitude,
                run.max_magnitude,
                out.display()
            );
        }
    }
    Ok(())
}

/// Runs the scene's post passes over the render in `out` and names what they wrote.
fn run_post(scene: &Scene, out: &Path, quiet: bool) -> Result<()> {
    if scene.post.is_off() && !scene.output.subtitles {
        return Ok(());
    }
    let done = anim::post::run(scene, out)?;
    if !quiet {
        if let Some(p) = &done.subtitles {
            eprintln!("subtitles -> {}", p.display());
        }
        for (what, v) in [
            ("upscaled", &done.upscaled),
            ("interpolated", &done.interpolated),
        ] {
            if let Some((p, n)) = v {
                eprintln!("{what}: {n} frames -> {}", p.display());
            }
        }
    }
    Ok(())
}

/// Runs a batch with one progress line per scene, prints the summary table and exits 1 when a
/// scene failed (130 when interrupted).
fn run_batch(entries: &[batch::Entry], jobs: usize, render: RenderArgs) -> Result<()> {
    let opts = batch::BatchOptions {
        jobs,
        render,
        exe: std::env::current_exe()?,
    };
    let tty = std::io::stderr().is_terminal();
    let width = entries
        .iter()
        .map(|e| e.name().chars().count())
        .max()
        .unwrap_or(0);
    let multi = indicatif::MultiProgress::new();
    let lines: Vec<indicatif::ProgressBar> = if tty {
        entries
            .iter()
            .map(|e| {
                let b = multi.add(indicatif::ProgressBar::new(0));
                b.set_style(
                    indicatif::ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.set_message(format!("{:width$}  queued", e.name()));
                b
            })
            .collect()
    } else {
        Vec::new()
    };
    let n = entries.len();
    let mut on_event = |ev: batch::Event| {
        let (index, text, milestone) = match ev {
            batch::Event::Started { index, task } => {
                (index, format!("rendering -> {}", task.out.display()), true)
            }
            batch::Event::Progress { index, progress } => {
                let total = progress.total.map_or_else(|| "?".into(), |t| t.to_string());
                (index, format!("frame {}/{total}", progress.done), false)
            }
            batch::Event::Finished { index, outcome } => (
                index,
                format!(
                    "{}: {} frames in {:.1} s",
                    outcome.status, outcome.frames, outcome.seconds
                ),
                true,
            ),
        };
        let name = entries[index].name();
        if let Some(line) = lines.get(index) {
            line.set_message(format!("{name:width$}  {text}"));
        } else if milestone {
            eprintln!("[{}/{n}] {name}: {text}", index + 1);
        }
    };
    let outcomes = batch::run(entries, &opts, &mut on_event)?;
    for l in &lines {
        l.finish();
    }
    print!("{}", batch::table(&outcomes));
    std::io::stdout().flush()?;
    if outcomes.iter().any(|o| o.status == batch::Status::Failed) {
        std::process::exit(1);
    }
    if outcomes.iter().any(|o| o.status != batch::Status::Done) {
        std::process::exit(130);
    }
    Ok(())
}

/// Submits `tasks` as a Slurm job array into `out_root` (or prints the scripts).
fn submit_slurm(
    tasks: &[Task],
    render: &RenderArgs,
    out_root: &Path,
    args: &SlurmArgs,
    dry_run: bool,
) -> Result<()> {
    let exe = std::env::current_exe()?;
    let out_root = farm::plan::absolute(out_root)?;
    let opts = args.options();
    let job = slurm::Job {
        tasks,
        render,
        exe: &exe,
        out_root: &out_root,
        slurm: &opts,
    };
    if dry_run {
        print!("{}", slurm::dry_run(&job)?);
        return Ok(());
    }
    let (plan, dir) = slurm::submit(&job)?;
    println!(
        "submitted job {}: {} task{}{}",
        plan.job_id,
        tasks.len(),
        if tasks.len() == 1 { "" } else { "s" },
        opts.max_parallel
            .map(|k| format!(", at most {k} at once"))
            .unwrap_or_default()
    );
    println!("logs: {}", dir.join("logs/task-<index>.log").display());
    if let Some(f) = plan.finish_job_id {
        println!(
            "summary: {} (job {f}, after the last task)",
            dir.join("summary.json").display()
        );
    }
    println!("follow it with: anim farm status {}", plan.job_id);
    Ok(())
}

fn farm_command(cmd: FarmCommand, read: ReadOptions) -> Result<()> {
    match cmd {
        FarmCommand::Submit {
            scenes,
            slurm: _,
            k8s: on_k8s,
            out_root,
            split,
            dry_run,
            model,
            device,
            slurm_args,
            k8s_args,
        } => {
            let root = farm::plan::absolute(&out_root)?;
            let tasks = farm::plan::tasks(&scenes, Some(&root), split, read)?;
            let render = RenderArgs {
                model: model.as_deref().map(farm::plan::absolute).transpose()?,
                device,
                resume: true,
                threads: None,
                allow_unsupported: read.allow_unsupported,
            };
            if !on_k8s {
                return submit_slurm(&tasks, &render, &root, &slurm_args, dry_run);
            }
            let names: std::collections::BTreeSet<&str> =
                tasks.iter().map(|t| t.name.as_str()).collect();
            let name = match names.iter().next() {
                Some(n) if names.len() == 1 => format!("anim-{n}"),
                _ => "anim-farm".into(),
            };
            let opts = k8s::K8sOptions {
                image: k8s_args.image.unwrap_or_default(),
                gpus: k8s_args.gpu,
                pvc: k8s_args.pvc,
                mount_path: k8s_args.mount_path,
                namespace: k8s_args.namespace,
                max_parallel: slurm_args.max_parallel,
                name,
            };
            let (config, job) = k8s::manifests(&tasks, &render, &opts)?;
            match k8s_args.k8s_out {
                Some(dir) => {
                    for p in k8s::write(&dir, &config, &job)? {
                        eprintln!("wrote {}", p.display());
                    }
                }
                None => print!("{}", k8s::to_yaml(&config, &job)?),
            }
        }
        FarmCommand::Status {
            job,
            json,
            out_root,
        } => {
            let s = slurm::status(job, &farm::plan::absolute(&out_root)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", slurm::status_table(&s));
            }
        }
        FarmCommand::Cancel { job, task } => {
            slurm::cancel(job, task)?;
            match task {
                Some(t) => eprintln!("cancelled task {t} of job {job}"),
                None => eprintln!("cancelled job {job}"),
            }
        }
        FarmCommand::Finish { farm_dir } => {
            let s = farm::summary::finish(&farm_dir)?;
            eprintln!(
                "{} of {} tasks completed; {}",
                s.completed,
                s.total,
                farm_dir.join("summary.json").display()
            );
        }
    }
    Ok(())
}

fn report(s: &render::RenderSummary, quiet: bool) {
    if quiet {
        return;
    }
    eprintln!(
        "{} frames in {:.1} s ({:.2} s/frame), seed {} -> {}{}",
        s.frames,
        s.seconds,
        s.seconds / s.frames.max(1) as f64,
        s.seed,
        s.out.display(),
        s.video
            .as_ref()
            .map(|v| format!(", video {}", v.display()))
            .unwrap_or_default()
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            // an io::Error, or one an encoder (PNG, FFmpeg) reports in its own type
            let enospc = std::io::Error::from(std::io::ErrorKind::StorageFull).to_string();
            let full = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
                    || c.to_string().contains("(os error 28)")
                    || c.to_string().contains(&enospc)
            });
            if full {
                eprintln!(
                    "hint: the disk is full; the frames written so far are kept: free space, then \
                     continue with the same command and --resume"
                );
            }
            ExitCode::FAILURE
        }
    }
}
