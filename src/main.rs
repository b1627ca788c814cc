//! The `anim` command line: a thin layer over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use anim::diffusion::{Device, SessionOptions};
use anim::render::{self, RenderOptions};
use anim::scene::{ReadOptions, Scene};

/// Deforum-style scripted animation over Stable Diffusion ONNX models.
#[derive(Parser)]
#[command(name = "anim", version, about)]
struct Cli {
    /// Read known Deforum/A1111 values anim does not implement (samplers, hybrid video, Parseq
    /// manifests, URLs where a file is needed) as warnings with their documented fallback instead
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
        /// Continue an interrupted render in the same output folder (bit-identical frames).
        #[arg(long)]
        resume: bool,
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
    let (scene, warnings) = deforum::read_file_with(settings, opts)?;
    for w in &warnings {
        eprintln!("warning: {}: {w}", settings.display());
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
            resume,
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
                    model,
                    session,
                    resume,
                },
            )?;
            report(&summary, quiet);
            if summary.interrupted {
                eprintln!(
                    "interrupted after {} frames; continue with `anim render {} --resume`",
                    summary.frames,
                    scene.display()
                );
                std::process::exit(130);
            }
        }
        Command::Preview {
            scene,
            out,
            quiet,
            no_video,
        } => {
            let s = load(&scene, read)?;
            let summary = render::preview(
                &s,
                &RenderOptions {
                    out,
                    quiet,
                    no_video,
                    ..RenderOptions::default()
                },
            )?;
            report(&summary, quiet);
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
