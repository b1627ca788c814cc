//! Motion above keyframes: named camera presets ([`presets`]), rhai motion scripts ([`script`])
//! and Camera Shakify's recorded shakes ([`shakify`]). [`apply`] runs them over a scene's
//! resolved numeric schedules (presets first, then the script, then the shake, which Deforum
//! adds last, in its 3D warp), so every consumer of `Scene::schedules` sees the final curves;
//! [`gallery`] renders preset previews. Depends on `schedule` (and `render` for the gallery), never on the CLI.

pub mod gallery;
pub mod presets;
pub mod script;
pub mod shakify;

use std::path::{Path, PathBuf};

pub use presets::{ParamDef, Preset, PresetError, PresetLibrary, PresetSource, PresetUse};
pub use script::{MotionScript, ScriptError, ScriptLimits};
pub use shakify::ShakeSettings;

use crate::schedule::Context;

/// What a scene asks of this module: its `[motion] script`, `preset` and `preset_dirs`.
#[derive(Debug, Clone, Copy)]
pub struct MotionSpec<'a> {
    /// Folder relative paths are resolved against (the scene file's folder).
    pub base_dir: &'a Path,
    /// The motion script, as written in the scene.
    pub script: Option<&'a Path>,
    /// Presets to apply, in order.
    pub presets: &'a [PresetUse],
    /// Extra preset folders, as written in the scene.
    pub preset_dirs: &'a [PathBuf],
    /// 3D animation mode: presets use their `[3d]` schedules (otherwise `[2d]`); only 3D mode
    /// shakes the camera.
    pub three_d: bool,
    /// The camera shake (`[motion] shake`), added last in 3D mode.
    pub shake: &'a ShakeSettings,
}

/// A preset or script that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MotionError {
    /// A preset problem (unknown name or parameter, bad window, bad preset file).
    #[error("{0}")]
    Preset(#[from] PresetError),
    /// A script problem (syntax, runtime error, exceeded limit, bad result).
    #[error("[motion] script {0}")]
    Script(#[from] ScriptError),
    /// A camera shake that cannot be used (unknown name, value out of range, fps too low).
    #[error("{0}")]
    Shake(String),
}

impl MotionSpec<'_> {
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The preset library for this scene: bundled, the user folder, then `preset_dirs`.
    ///
    /// # Errors
    /// An unreadable folder or a preset file that does not parse.
    pub fn library(&self) -> Result<PresetLibrary, PresetError> {
        let extra: Vec<PathBuf> = self.preset_dirs.iter().map(|d| self.resolve(d)).collect();
        PresetLibrary::load(&PresetLibrary::search_dirs(&extra))
    }
}

/// Applies the presets (in order), the script, then (3D mode) the camera shake to `numeric`
/// (column name, one value per frame).
///
/// # Errors
/// See [`MotionError`]; messages name the preset or the script, the frame and the line.
pub fn apply(
    spec: &MotionSpec,
    ctx: &Context,
    numeric: &mut Vec<(String, Vec<f64>)>,
) -> Result<(), MotionError> {
    if !spec.presets.is_empty() {
        let lib = spec.library()?;
        for usage in spec.presets {
            let preset = lib.get(&usage.name).map_err(|e| PresetError {
                message: format!("[[motion.preset]] name = \"{}\": {e}", usage.name),
            })?;
            preset.apply(usage, ctx, spec.three_d, numeric)?;
        }
    }
    if let Some(p) = spec.script {
        let script = MotionScript::load(
            &spec.resolve(p),
            &p.display().to_string(),
            ScriptLimits::default(),
        )?;
        script.run(ctx, numeric)?;
    }
    shakify::apply(spec.shake, ctx.fps, spec.three_d, numeric).map_err(MotionError::Shake)?;
    Ok(())
}

/// The text of every file `spec` reads (the script, the preset files of the presets it uses), so
/// that a resumed render can tell that they changed. Unreadable files contribute their error.
pub fn source_fingerprint(spec: &MotionSpec) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(p) = spec.script {
        match std::fs::read(spec.resolve(p)) {
            Ok(b) => out.extend(b),
            Err(e) => out.extend(e.to_string().into_bytes()),
        }
    }
    if !spec.presets.is_empty() {
        let lib = spec.library();
        for usage in spec.presets {
            let source = lib
                .as_ref()
                .ok()
                .and_then(|l| l.get(&usage.name).ok())
                .map(|p| p.source.clone());
            match source {
                Some(PresetSource::File(path)) => {
                    out.extend(std::fs::read(path).unwrap_or_default())
                }
                Some(PresetSource::Bundled) => {
                    let text = presets::BUNDLED
                        .iter()
                        .find(|(n, _)| *n == usage.name)
                        .map(|(_, t)| *t)
                        .unwrap_or("");
                    out.extend(text.as_bytes());
                }
                None => out.extend(usage.name.as_bytes()),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.rhai"), "fn frame(ctx) { #{} }").unwrap();
        let presets = [PresetUse {
            name: "roll".into(),
            from: None,
            to: None,
            params: Default::default(),
        }];
        let script = Path::new("a.rhai");
        let spec = MotionSpec {
            base_dir: dir.path(),
            script: Some(script),
            presets: &presets,
            preset_dirs: &[],
            three_d: false,
            shake: &ShakeSettings::default(),
        };
        let before = source_fingerprint(&spec);
        assert!(
            before.ends_with(
                presets::BUNDLED
                    .iter()
                    .find(|(n, _)| *n == "roll")
                    .unwrap()
                    .1
                    .as_bytes()
            )
        );
        std::fs::write(dir.path().join("a.rhai"), "fn frame(ctx) { #{ zoom: 2 } }").unwrap();
        assert_ne!(source_fingerprint(&spec), before);
        let none = MotionSpec {
            script: None,
            presets: &[],
            ..spec
        };
        assert!(
            source_fingerprint(&none).is_empty(),
            "scenes without motion hash as before"
        );
    }
}
