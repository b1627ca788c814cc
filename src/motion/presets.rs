//! Named camera moves: `presets/*.toml` (bundled into the binary) and user folders. A preset has
//! parameters with defaults and, per animation mode, schedule expressions in the schedule
//! language ([`crate::schedule::Expr`]) whose variables are the parameters plus the window
//! variables `lt`, `len` and `u`. Applied presets add their values to the keyframed schedules
//! (`zoom` multiplies). Depends on `schedule` only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schedule::expr::did_you_mean;
use crate::schedule::{Context, Expr, VARIABLES};

/// The presets shipped with anim, embedded in the binary: (name, TOML text).
pub const BUNDLED: &[(&str, &str)] = &[
    ("crane_up", include_str!("../../presets/crane_up.toml")),
    ("dolly_in", include_str!("../../presets/dolly_in.toml")),
    ("dolly_out", include_str!("../../presets/dolly_out.toml")),
    ("dolly_zoom", include_str!("../../presets/dolly_zoom.toml")),
    (
        "fly_through",
        include_str!("../../presets/fly_through.toml"),
    ),
    (
        "handheld_shake",
        include_str!("../../presets/handheld_shake.toml"),
    ),
    ("ken_burns", include_str!("../../presets/ken_burns.toml")),
    ("orbit_left", include_str!("../../presets/orbit_left.toml")),
    (
        "orbit_right",
        include_str!("../../presets/orbit_right.toml"),
    ),
    ("pan_left", include_str!("../../presets/pan_left.toml")),
    ("pan_right", include_str!("../../presets/pan_right.toml")),
    ("pulse_zoom", include_str!("../../presets/pulse_zoom.toml")),
    (
        "rise_and_reveal",
        include_str!("../../presets/rise_and_reveal.toml"),
    ),
    ("roll", include_str!("../../presets/roll.toml")),
    (
        "spiral_zoom",
        include_str!("../../presets/spiral_zoom.toml"),
    ),
    ("tilt_down", include_str!("../../presets/tilt_down.toml")),
    ("tilt_up", include_str!("../../presets/tilt_up.toml")),
];

/// Variables a preset expression sees besides its parameters: the schedule variables, then
/// `lt` (frame within the window, from 0), `len` (window length in frames) and `u` (progress
/// through the window, 0 at its first frame and 1 at its last).
pub const WINDOW_VARIABLES: &[&str] = &["lt", "len", "u"];

/// Schedules that presets combine by multiplication (neutral value 1); every other schedule adds
/// (neutral value 0).
pub const MULTIPLICATIVE: &[&str] = &["zoom"];

/// A preset error: which preset (and file), and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PresetError {
    /// Description naming the preset, its file, key or frame.
    pub message: String,
}

fn err(message: String) -> PresetError {
    PresetError { message }
}

/// One parameter of a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    /// Value used when the scene does not set it.
    pub default: f64,
    /// What it means, with units.
    #[serde(default)]
    pub doc: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Value {
    Number(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    description: String,
    #[serde(default)]
    params: BTreeMap<String, ParamDef>,
    #[serde(default, rename = "2d")]
    two_d: BTreeMap<String, Value>,
    #[serde(default, rename = "3d")]
    three_d: BTreeMap<String, Value>,
}

/// A `[2d]` or `[3d]` table: (schedule, text) and (schedule, compiled expression).
type Compiled = (Vec<(String, String)>, Vec<(String, Expr)>);

/// Where a preset was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresetSource {
    /// Embedded in the binary (`presets/NAME.toml` of the source tree).
    Bundled,
    /// A user file.
    File(PathBuf),
}

impl std::fmt::Display for PresetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PresetSource::Bundled => f.write_str("bundled"),
            PresetSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A named camera move: parameters and the schedule expressions it adds per animation mode.
#[derive(Debug, Clone)]
pub struct Preset {
    /// Name (the file stem).
    pub name: String,
    /// One-line description of the motion.
    pub description: String,
    /// Parameters by name.
    pub params: BTreeMap<String, ParamDef>,
    /// Schedules set in 2D (and `None`) mode: (schedule column name, expression text).
    pub two_d: Vec<(String, String)>,
    /// Schedules set in 3D mode.
    pub three_d: Vec<(String, String)>,
    /// The file it came from.
    pub source: PresetSource,
    compiled_2d: Vec<(String, Expr)>,
    compiled_3d: Vec<(String, Expr)>,
}

/// A preset applied by a scene: `[[motion.preset]] name = "orbit_left", speed = 2, from = 0, to = 60`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresetUse {
    /// Preset name.
    pub name: String,
    /// First frame of the window (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<usize>,
    /// Frame after the last one of the window (exclusive; default and upper bound: max_frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<usize>,
    /// Parameter values; missing ones take the preset's defaults.
    #[serde(flatten)]
    pub params: BTreeMap<String, f64>,
}

/// Names of the numeric schedules presets and scripts may set (column names of `anim schedule`).
pub fn numeric_schedule_names() -> impl Iterator<Item = &'static str> {
    crate::scene::registry::SCHEDULES
        .iter()
        .filter(|d| d.kind == crate::scene::registry::Kind::Numeric)
        .map(|d| d.name)
}

impl Preset {
    /// Parses a preset file; `name` is its file stem.
    ///
    /// # Errors
    /// Bad TOML, an unknown schedule, a parameter shadowing a built-in name, or an expression that
    /// does not parse; the message names the preset, its source and the key.
    pub fn parse(name: &str, text: &str, source: PresetSource) -> Result<Preset, PresetError> {
        let at = format!("preset `{name}` ({source})");
        let file: PresetFile =
            toml::from_str(text).map_err(|e| err(format!("{at}: {}", e.to_string().trim())))?;
        for p in file.params.keys() {
            let reserved = VARIABLES.contains(&p.as_str())
                || WINDOW_VARIABLES.contains(&p.as_str())
                || ["pi", "e", "name", "from", "to"].contains(&p.as_str())
                || crate::schedule::expr::FUNCTIONS.iter().any(|(f, _)| f == p);
            let ident = p
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_alphanumeric() || c == '_');
            if reserved || !ident {
                return Err(err(format!(
                    "{at}: parameter `{p}` is not usable (a built-in name or not an identifier)"
                )));
            }
            if !file.params[p].default.is_finite() {
                return Err(err(format!(
                    "{at}: parameter `{p}` has a default that is not a finite number"
                )));
            }
        }
        let names = Self::names_for(file.params.keys().map(String::as_str));
        let compile =
            |table: &str, src: &BTreeMap<String, Value>| -> Result<Compiled, PresetError> {
                let mut texts = Vec::new();
                let mut exprs = Vec::new();
                for (key, v) in src {
                    if !numeric_schedule_names().any(|n| n == key) {
                        let hint = did_you_mean(key, numeric_schedule_names());
                        return Err(err(format!(
                            "{at}: [{table}] {key}: not a numeric schedule{hint}"
                        )));
                    }
                    let text = match v {
                        Value::Number(x) => crate::scene::registry::format_number(*x),
                        Value::Text(t) => t.clone(),
                    };
                    let e = Expr::parse(&text, &names)
                        .map_err(|e| err(format!("{at}: [{table}] {key} = \"{text}\": {e}")))?;
                    texts.push((key.clone(), text));
                    exprs.push((key.clone(), e));
                }
                Ok((texts, exprs))
            };
        let (two_d, compiled_2d) = compile("2d", &file.two_d)?;
        let (three_d, compiled_3d) = compile("3d", &file.three_d)?;
        Ok(Preset {
            name: name.to_string(),
            description: file.description,
            params: file.params,
            two_d,
            three_d,
            source,
            compiled_2d,
            compiled_3d,
        })
    }

    fn names_for<'a>(params: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        VARIABLES
            .iter()
            .copied()
            .chain(WINDOW_VARIABLES.iter().copied())
            .chain(params)
            .collect()
    }

    /// Adds this preset's motion to `numeric` (column name, one value per frame) over the window
    /// of `usage`; `three_d` picks the `[3d]` schedules, otherwise `[2d]`.
    ///
    /// # Errors
    /// An unknown parameter (with a did-you-mean), a window outside the scene, or an expression
    /// that is not finite at some frame.
    pub fn apply(
        &self,
        usage: &PresetUse,
        ctx: &Context,
        three_d: bool,
        numeric: &mut [(String, Vec<f64>)],
    ) -> Result<(), PresetError> {
        let at = format!("[[motion.preset]] {}", self.name);
        for (k, v) in &usage.params {
            if !self.params.contains_key(k) {
                let hint = did_you_mean(
                    k,
                    self.params.keys().map(String::as_str).chain(["from", "to"]),
                );
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                return Err(err(format!(
                    "{at}: unknown parameter `{k}`{hint}; parameters: {} (and the window: from, to)",
                    known.join(", ")
                )));
            }
            if !v.is_finite() {
                return Err(err(format!(
                    "{at}: parameter `{k}` = {v} is not a finite number"
                )));
            }
        }
        let n = ctx.max_frames;
        let from = usage.from.unwrap_or(0);
        let to = usage.to.unwrap_or(n).min(n);
        if from >= to {
            return Err(err(format!(
                "{at}: the window from = {from}, to = {to} is empty (max_frames = {n}; `to` is exclusive)"
            )));
        }
        let len = to - from;
        let mut vars = vec![
            0.0,
            n as f64 - 1.0,
            ctx.seed as f64,
            ctx.fps,
            0.0,
            0.0,
            len as f64,
            0.0,
        ];
        vars.extend(
            self.params
                .iter()
                .map(|(k, d)| usage.params.get(k).copied().unwrap_or(d.default)),
        );
        let exprs = if three_d {
            &self.compiled_3d
        } else {
            &self.compiled_2d
        };
        for (key, e) in exprs {
            let Some((_, series)) = numeric.iter_mut().find(|(c, _)| c == key) else {
                continue;
            };
            let multiply = MULTIPLICATIVE.contains(&key.as_str());
            for (f, slot) in series.iter_mut().enumerate().take(to).skip(from) {
                let lt = (f - from) as f64;
                vars[0] = f as f64;
                vars[4] = f as f64 / ctx.fps;
                vars[5] = lt;
                vars[7] = if len > 1 { lt / (len - 1) as f64 } else { 0.0 };
                let v = e.eval(&vars);
                if !v.is_finite() {
                    return Err(err(format!(
                        "{at}: {key} is {v} at frame {f} (not a finite number); check the parameters"
                    )));
                }
                if multiply { *slot *= v } else { *slot += v }
            }
        }
        Ok(())
    }
}

/// `anim presets show`: the preset's name, source and description, its parameters with defaults,
/// and its schedules per mode (`zoom *= …`, others `+= …`), one per line.
impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({})\n  {}\n",
            self.name, self.source, self.description
        )?;
        writeln!(f, "parameters:")?;
        if self.params.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (k, d) in &self.params {
            let default = crate::scene::registry::format_number(d.default);
            writeln!(f, "  {k} = {default}  {}", d.doc)?;
        }
        writeln!(
            f,
            "  from = 0, to = max_frames  (window: first frame, frame after the last)"
        )?;
        for (mode, table) in [("2D (and None)", &self.two_d), ("3D", &self.three_d)] {
            writeln!(f, "\nschedules in {mode} mode:")?;
            for (k, e) in table {
                let how = if MULTIPLICATIVE.contains(&k.as_str()) {
                    "*="
                } else {
                    "+="
                };
                writeln!(f, "  {k} {how} {e}")?;
            }
        }
        Ok(())
    }
}

/// The presets available to a scene: bundled ones, overridden by name by user files.
#[derive(Debug, Clone)]
pub struct PresetLibrary {
    presets: BTreeMap<String, Preset>,
}

impl PresetLibrary {
    /// The bundled presets only.
    ///
    /// # Errors
    /// Only if a bundled file is broken (a bug, caught by the tests).
    pub fn bundled() -> Result<PresetLibrary, PresetError> {
        let mut presets = BTreeMap::new();
        for (name, text) in BUNDLED {
            presets.insert(
                name.to_string(),
                Preset::parse(name, text, PresetSource::Bundled)?,
            );
        }
        Ok(PresetLibrary { presets })
    }

    /// Bundled presets, then every `*.toml` of each folder in `dirs` in order (a later folder
    /// overrides an earlier one and the bundled presets by name). Missing folders are skipped.
    ///
    /// # Errors
    /// An unreadable folder or file, or a preset file that does not parse.
    pub fn load(dirs: &[PathBuf]) -> Result<PresetLibrary, PresetError> {
        let mut lib = Self::bundled()?;
        for dir in dirs {
            if !dir.is_dir() {
                continue;
            }
            let entries = std::fs::read_dir(dir)
                .map_err(|e| err(format!("cannot list preset folder {}: {e}", dir.display())))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err(format!("cannot read preset {}: {e}", path.display())))?;
                let p = Preset::parse(&name, &text, PresetSource::File(path.clone()))?;
                lib.presets.insert(name, p);
            }
        }
        Ok(lib)
    }

    /// The user folder: `$XDG_CONFIG_HOME/anim/presets`, or `~/.config/anim/presets`.
    pub fn user_dir() -> Option<PathBuf> {
        match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => Some(PathBuf::from(x).join("anim/presets")),
            None => std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/anim/presets")),
        }
    }

    /// Folders searched for a scene: the user folder, then the scene's `[motion] preset_dirs`.
    pub fn search_dirs(extra: &[PathBuf]) -> Vec<PathBuf> {
        Self::user_dir()
            .into_iter()
            .chain(extra.iter().cloned())
            .collect()
    }

    /// A preset by name.
    ///
    /// # Errors
    /// An unknown name, with a did-you-mean and the list of known presets.
    pub fn get(&self, name: &str) -> Result<&Preset, PresetError> {
        self.presets.get(name).ok_or_else(|| {
            let hint = did_you_mean(name, self.presets.keys().map(String::as_str));
            err(format!(
                "unknown preset `{name}`{hint}; `anim presets list` shows them all"
            ))
        })
    }

    /// Every preset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.presets.values()
    }

    /// `anim presets list`: one line per preset, the names padded to one width, then the
    /// description and, for a user file, `[its path]`.
    pub fn listing(&self) -> String {
        let width = self.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for p in self.iter() {
            let src = match &p.source {
                PresetSource::Bundled => String::new(),
                other => format!(" [{other}]"),
            };
            out.push_str(&format!("{:width$}  {}{src}\n", p.name, p.description));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n: usize) -> Context {
        Context::new(n, 42, 12.0)
    }

    fn neutral(n: usize) -> Vec<(String, Vec<f64>)> {
        numeric_schedule_names()
            .map(|k| (k.to_string(), vec![if k == "zoom" { 1.0 } else { 0.0 }; n]))
            .collect()
    }

    fn get<'a>(s: &'a [(String, Vec<f64>)], k: &str) -> &'a [f64] {
        &s.iter().find(|(c, _)| c == k).unwrap().1
    }

    fn use_(name: &str) -> PresetUse {
        PresetUse {
            name: name.into(),
            from: None,
            to: None,
            params: BTreeMap::new(),
        }
    }

    /// Applies `name` with defaults to a neutral 48-frame scene in `mode`; returns the series.
    fn applied(name: &str, three_d: bool) -> Vec<(String, Vec<f64>)> {
        let lib = PresetLibrary::bundled().unwrap();
        let mut s = neutral(48);
        lib.get(name)
            .unwrap()
            .apply(&use_(name), &ctx(48), three_d, &mut s)
            .unwrap();
        s
    }

    /// Sign and magnitude of the documented motion (docs/motion-scripts.md, "Presets"): for each
    /// preset, (3D mode?, schedule, expected relation). `Mean(x)` is the mean over all
    /// frames within 5 %, `Const(x)` every frame equal, `Pos` every frame positive (after
    /// removing the neutral value), `Osc(a)` a zero-mean oscillation with amplitude at most a.
    #[derive(Debug, Clone, Copy)]
    enum Rel {
        Const(f64),
        Mean(f64),
        Pos,
        Osc(f64),
    }
    use Rel::*;

    type Checks = &'static [(bool, &'static str, Rel)];

    const EXPECTED: &[(&str, Checks)] = &[
        (
            "dolly_in",
            &[
                (false, "zoom", Const(1.01)),
                (true, "translation_z", Const(5.0)),
            ],
        ),
        (
            "dolly_out",
            &[
                (false, "zoom", Const(0.99)),
                (true, "translation_z", Const(-5.0)),
            ],
        ),
        (
            "pan_left",
            &[
                (false, "translation_x", Const(3.0)),
                (true, "rotation_3d_y", Const(-0.5)),
            ],
        ),
        (
            "pan_right",
            &[
                (false, "translation_x", Const(-3.0)),
                (true, "rotation_3d_y", Const(0.5)),
            ],
        ),
        (
            "tilt_up",
            &[
                (false, "translation_y", Const(3.0)),
                (true, "rotation_3d_x", Const(0.5)),
            ],
        ),
        (
            "tilt_down",
            &[
                (false, "translation_y", Const(-3.0)),
                (true, "rotation_3d_x", Const(-0.5)),
            ],
        ),
        (
            "roll",
            &[
                (false, "angle", Const(0.5)),
                (true, "rotation_3d_z", Const(0.5)),
            ],
        ),
        (
            "orbit_left",
            &[
                (false, "translation_x", Const(3.0)),
                (false, "angle", Const(0.25)),
                (true, "translation_x", Const(-3.0)),
                (true, "rotation_3d_y", Const(0.5)),
            ],
        ),
        (
            "orbit_right",
            &[
                (false, "translation_x", Const(-3.0)),
                (false, "angle", Const(-0.25)),
                (true, "translation_x", Const(3.0)),
                (true, "rotation_3d_y", Const(-0.5)),
            ],
        ),
        (
            "crane_up",
            &[
                (false, "translation_y", Mean(3.0)),
                (false, "translation_y", Pos),
                (true, "translation_y", Mean(3.0)),
                (true, "translation_y", Pos),
            ],
        ),
        (
            "spiral_zoom",
            &[
                (false, "zoom", Const(1.01)),
                (false, "angle", Const(1.0)),
                (true, "translation_z", Const(5.0)),
                (true, "rotation_3d_z", Const(1.0)),
            ],
        ),
        (
            "handheld_shake",
            &[
                (false, "translation_x", Osc(2.0)),
                (false, "translation_y", Osc(2.0)),
                (false, "angle", Osc(0.2)),
                (true, "translation_x", Osc(2.0)),
                (true, "rotation_3d_z", Osc(0.2)),
            ],
        ),
        (
            "ken_burns",
            &[
                (false, "zoom", Const(1.003)),
                (false, "translation_x", Const(0.5)),
                (true, "translation_z", Const(1.5)),
                (true, "translation_x", Const(-0.5)),
            ],
        ),
        (
            "dolly_zoom",
            &[
                (false, "zoom", Const(0.995)),
                (true, "translation_z", Const(5.0)),
                (true, "fov", Pos),
            ],
        ),
        (
            "fly_through",
            &[
                (false, "zoom", Const(1.02)),
                (false, "angle", Osc(0.3)),
                (true, "translation_z", Const(10.0)),
                (true, "rotation_3d_y", Osc(0.3)),
            ],
        ),
        (
            "rise_and_reveal",
            &[
                (false, "translation_y", Const(2.0)),
                (false, "zoom", Const(0.995)),
                (true, "translation_y", Const(2.0)),
                (true, "rotation_3d_x", Const(-0.2)),
                (true, "translation_z", Const(-2.0)),
            ],
        ),
        (
            "pulse_zoom",
            &[
                (false, "zoom", Osc(0.02)),
                (true, "translation_z", Osc(4.0)),
            ],
        ),
    ];

    #[test]
    fn bundled_presets_parse_and_cover_the_list() {
        let lib = PresetLibrary::bundled().unwrap();
        assert!(lib.iter().count() >= 15);
        for (name, _) in EXPECTED {
            lib.get(name).unwrap();
        }
        assert_eq!(
            lib.iter().count(),
            EXPECTED.len(),
            "every bundled preset has expectations here"
        );
        for p in lib.iter() {
            assert!(
                !p.description.is_empty() && !p.two_d.is_empty() && !p.three_d.is_empty(),
                "{}",
                p.name
            );
            for (k, d) in &p.params {
                assert!(!d.doc.is_empty(), "{}.{k} undocumented", p.name);
            }
        }
    }

    #[test]
    fn each_preset_produces_its_documented_motion() {
        for (name, checks) in EXPECTED {
            for (three_d, key, rel) in *checks {
                let s = applied(name, *three_d);
                let neutral = if *key == "zoom" { 1.0 } else { 0.0 };
                let v: Vec<f64> = get(&s, key).iter().map(|x| x - neutral).collect();
                let mode = if *three_d { "3d" } else { "2d" };
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                match *rel {
                    Const(x) => assert!(
                        v.iter().all(|y| (y - (x - neutral)).abs() < 1e-12),
                        "{name} {mode} {key}: {v:?} != {x}"
                    ),
                    Mean(x) => assert!(
                        (mean - (x - neutral)).abs() < 0.05 * (x - neutral).abs(),
                        "{name} {mode} {key}: mean {mean} != {x}"
                    ),
                    // the window's first and last frames may be neutral (envelopes start and end at 0)
                    Pos => assert!(
                        v[1..v.len() - 1].iter().all(|y| *y > 0.0),
                        "{name} {mode} {key}: not all positive: {v:?}"
                    ),
                    Osc(a) => {
                        let max = v.iter().fold(0.0f64, |m, y| m.max(y.abs()));
                        assert!(
                            max <= a + 1e-12 && max > 0.2 * a,
                            "{name} {mode} {key}: amplitude {max} vs {a}"
                        );
                        assert!(
                            v.iter().any(|y| *y > 0.0) && v.iter().any(|y| *y < 0.0),
                            "{name} {mode} {key}: not oscillating"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn presets_leave_other_schedules_and_frames_alone() {
        let lib = PresetLibrary::bundled().unwrap();
        let mut s = neutral(20);
        let u = PresetUse {
            from: Some(5),
            to: Some(10),
            ..use_("pan_left")
        };
        lib.get("pan_left")
            .unwrap()
            .apply(&u, &ctx(20), false, &mut s)
            .unwrap();
        let tx = get(&s, "translation_x");
        assert!(
            tx[..5].iter().chain(&tx[10..]).all(|v| *v == 0.0)
                && tx[5..10].iter().all(|v| *v == 3.0),
            "{tx:?}"
        );
        assert!(get(&s, "angle").iter().all(|v| *v == 0.0));
    }

    #[test]
    fn composition_adds_and_zoom_multiplies() {
        let lib = PresetLibrary::bundled().unwrap();
        let mut s = neutral(10);
        let c = ctx(10);
        for (name, speed) in [("pan_left", 1.0), ("pan_left", 2.0), ("pan_right", 0.5)] {
            let u = PresetUse {
                params: [("speed".to_string(), speed)].into(),
                ..use_(name)
            };
            lib.get(name).unwrap().apply(&u, &c, false, &mut s).unwrap();
        }
        assert!(
            get(&s, "translation_x")
                .iter()
                .all(|v| (*v - (3.0 + 6.0 - 1.5)).abs() < 1e-12)
        );
        for name in ["dolly_in", "dolly_in"] {
            lib.get(name)
                .unwrap()
                .apply(&use_(name), &c, false, &mut s)
                .unwrap();
        }
        assert!(
            get(&s, "zoom")
                .iter()
                .all(|v| (*v - 1.01 * 1.01).abs() < 1e-12)
        );
    }

    #[test]
    fn parameters_change_magnitude() {
        let lib = PresetLibrary::bundled().unwrap();
        let mut s = neutral(10);
        let u = PresetUse {
            params: [("speed".to_string(), 2.0)].into(),
            ..use_("roll")
        };
        lib.get("roll")
            .unwrap()
            .apply(&u, &ctx(10), false, &mut s)
            .unwrap();
        assert!(get(&s, "angle").iter().all(|v| *v == 1.0));
    }

    #[test]
    fn errors_name_the_preset_and_suggest() {
        let lib = PresetLibrary::bundled().unwrap();
        let e = lib.get("orbit_lft").unwrap_err().message;
        assert!(
            e.contains("unknown preset `orbit_lft`") && e.contains("did you mean `orbit_left`"),
            "{e}"
        );
        let u = PresetUse {
            params: [("sped".to_string(), 2.0)].into(),
            ..use_("orbit_left")
        };
        let e = lib
            .get("orbit_left")
            .unwrap()
            .apply(&u, &ctx(10), false, &mut neutral(10))
            .unwrap_err()
            .message;
        assert!(
            e.contains("orbit_left")
                && e.contains("unknown parameter `sped`")
                && e.contains("did you mean `speed`"),
            "{e}"
        );
        let u = PresetUse {
            params: [("form".to_string(), 2.0)].into(),
            ..use_("roll")
        };
        let e = lib
            .get("roll")
            .unwrap()
            .apply(&u, &ctx(10), false, &mut neutral(10))
            .unwrap_err()
            .message;
        assert!(e.contains("did you mean `from`"), "{e}");
        let u = PresetUse {
            from: Some(8),
            to: Some(4),
            ..use_("roll")
        };
        let e = lib
            .get("roll")
            .unwrap()
            .apply(&u, &ctx(10), false, &mut neutral(10))
            .unwrap_err()
            .message;
        assert!(e.contains("window"), "{e}");
        let e = Preset::parse(
            "x",
            "description = \"d\"\n[2d]\nzom = \"1\"\n",
            PresetSource::Bundled,
        )
        .unwrap_err()
        .message;
        assert!(
            e.contains("preset `x`") && e.contains("did you mean `zoom`"),
            "{e}"
        );
        let e = Preset::parse(
            "x",
            "description = \"d\"\n[2d]\nzoom = \"1+sped\"\n",
            PresetSource::Bundled,
        )
        .unwrap_err()
        .message;
        assert!(
            e.contains("[2d] zoom") && e.contains("unknown variable `sped`"),
            "{e}"
        );
        let e = Preset::parse(
            "x",
            "description = \"d\"\n[params.t]\ndefault = 1\n",
            PresetSource::Bundled,
        )
        .unwrap_err()
        .message;
        assert!(e.contains("parameter `t`"), "{e}");
    }

    #[test]
    fn user_folders_override_bundled_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("roll.toml"), "description = \"mine\"\n[params.speed]\ndefault = 3\ndoc = \"d\"\n[2d]\nangle = \"speed\"\n[3d]\nrotation_3d_z = \"speed\"\n").unwrap();
        std::fs::write(
            dir.path().join("wobble.toml"),
            "description = \"new\"\n[2d]\nangle = \"sin(t)\"\n",
        )
        .unwrap();
        let lib =
            PresetLibrary::load(&[dir.path().to_path_buf(), dir.path().join("missing")]).unwrap();
        let roll = lib.get("roll").unwrap();
        assert_eq!(roll.description, "mine");
        assert_eq!(
            roll.source,
            PresetSource::File(dir.path().join("roll.toml"))
        );
        assert!(lib.get("wobble").is_ok() && lib.get("dolly_in").is_ok());
    }

    #[test]
    fn window_variables() {
        let p = Preset::parse(
            "w",
            "description = \"d\"\n[2d]\nangle = \"u\"\ntranslation_x = \"lt + 100*len\"\n",
            PresetSource::Bundled,
        )
        .unwrap();
        let mut s = neutral(10);
        p.apply(
            &PresetUse {
                from: Some(2),
                to: Some(7),
                ..use_("w")
            },
            &ctx(10),
            false,
            &mut s,
        )
        .unwrap();
        assert_eq!(&get(&s, "angle")[2..7], &[0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(&get(&s, "translation_x")[2..4], &[500.0, 501.0]);
    }
}
