//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`).
//!
//! Search order: `ORT_DYLIB_PATH`; the folder `scripts/setup.sh` installs into
//! (`$XDG_DATA_HOME/anim/onnxruntime`, default `~/.local/share/anim/onnxruntime`); an `onnxruntime`
//! folder beside the executable; a Python installation's `onnxruntime` package.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, Result, bail};

const LIB_NAMES: &[&str] = &[
    "libonnxruntime.so",
    "libonnxruntime.so.1",
    "libonnxruntime.dylib",
    "onnxruntime.dll",
];

/// How to install ONNX Runtime, shown whenever it cannot be found.
pub const INSTALL_HINT: &str = "install it with `scripts/fetch-ort.sh` (downloads the `onnxruntime` wheel from PyPI \
into ~/.local/share/anim/onnxruntime), or `pip install onnxruntime`, or point ORT_DYLIB_PATH at libonnxruntime.so";

fn find_in_dir(dir: &Path) -> Option<PathBuf> {
    if let Some(found) = LIB_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        return Some(found);
    }
    // a versioned file only, e.g. libonnxruntime.so.1.32.0 from a wheel
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so.1."))
        })
        .collect();
    versioned.sort();
    versioned.pop()
}

/// The folder `scripts/fetch-ort.sh` installs into by default.
pub fn default_install_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("anim").join("onnxruntime"))
}

fn python_package_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for py in ["python3", "python"] {
        let out = std::process::Command::new(py)
            .args(["-c", "import importlib.util as u, os; s = u.find_spec('onnxruntime'); print(os.path.join(os.path.dirname(s.origin), 'capi') if s else '')"])
            .stderr(std::process::Stdio::null())
            .output();
        if let Ok(out) = out {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !s.is_empty() {
                dirs.push(PathBuf::from(s));
                break;
            }
        }
    }
    dirs
}

/// Locates the ONNX Runtime library, or explains where it looked and how to install it.
pub fn find_library() -> Result<PathBuf> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        if p.is_dir()
            && let Some(found) = find_in_dir(&p)
        {
            return Ok(found);
        }
        bail!(
            "ORT_DYLIB_PATH={} does not name an ONNX Runtime library; {INSTALL_HINT}",
            p.display()
        );
    }
    let mut dirs: Vec<PathBuf> = default_install_dir().into_iter().collect();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("onnxruntime"));
    }
    for d in &dirs {
        if let Some(found) = find_in_dir(d) {
            return Ok(found);
        }
        looked.push(d.display().to_string());
    }
    // Python is asked only when the usual places have no library (starting it costs a run time)
    for d in python_package_dirs() {
        if let Some(found) = find_in_dir(&d) {
            return Ok(found);
        }
        looked.push(d.display().to_string());
    }
    bail!(
        "ONNX Runtime was not found (looked in ORT_DYLIB_PATH, {}, and Python's onnxruntime package); {INSTALL_HINT}",
        looked.join(", ")
    )
}

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Loads ONNX Runtime once per process and returns its environment.
pub fn environment() -> Result<&'static ort::environment::Environment> {
    let env = ENVIRONMENT.get_or_init(|| {
        let path = find_library().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&path).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e}; {INSTALL_HINT}",
                path.display()
            )
        })?;
        builder
            .with_name("anim")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    });
    env.as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("ONNX Runtime is needed to run models")
}

/// A session builder with anim's defaults for every model: deterministic kernels, and intra-op
/// threads that spin between the operators of a run but stop when it ends (an idle pool that
/// spins takes the cores the next model, the warp or the encoder needs).
///
/// # Errors
/// ONNX Runtime refusing an option.
pub(crate) fn session_builder(
    env: &ort::environment::Environment,
) -> ort::Result<ort::session::builder::SessionBuilder> {
    Ok(ort::session::Session::builder(env)?
        .with_deterministic_compute(true)?
        .with_config_entry("session.force_spinning_stop", "1")?)
}
