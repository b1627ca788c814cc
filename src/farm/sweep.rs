//! `anim sweep`: the variants of one scene over the Cartesian product of `--vary KEY=VALUES`.
//! Each variant is written as a standalone scene file (every path absolute, its output folder
//! named by its values) into `OUT_ROOT/<scene name>-sweep/variants/`, then rendered as a batch or
//! submitted to a farm like any scene.
//!
//! KEY is a dotted scene key (`generation.seed`, `motion.zoom`, `prompts.0`) or a Deforum
//! settings name (`seed`, `strength_schedule`, `cfg_scale_schedule`); VALUES is `a,b,c` (a value
//! in quotes may hold commas: a keyframe string), `A..B` (inclusive) or `A..B:STEP`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use super::plan::{self, Task};
use crate::scene::{ReadOptions, Scene, deforum, registry};

/// Most values one `--vary` takes.
pub const MAX_VALUES: usize = 10_000;

/// Most variants one sweep makes (the product of the value counts).
pub const MAX_VARIANTS: usize = 10_000;

/// Deforum settings names that are not schedules, and their scene keys.
const DEFORUM_KEYS: &[(&str, &str)] = &[
    ("seed", "generation.seed"),
    ("seed_behavior", "generation.seed_behavior"),
    ("seed_iter_N", "generation.seed_iter_N"),
    ("W", "image.width"),
    ("H", "image.height"),
    ("max_frames", "animation.max_frames"),
    ("animation_mode", "animation.mode"),
    ("diffusion_cadence", "cadence.diffusion_cadence"),
    ("steps", "generation.steps"),
    ("sampler", "generation.sampler"),
    ("scale", "generation.cfg_scale"),
];

/// One value of a `--vary`, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number, kept as written (`0.6`, `3`).
    Number(String),
    /// Text: a keyframe string, a sampler name, a path.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
}

impl Value {
    fn of(item: &str) -> Value {
        let t = item.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| t.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)));
        if let Some(u) = unquoted {
            return Value::Text(u.to_string());
        }
        match t {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ if t.parse::<f64>().is_ok_and(f64::is_finite) => Value::Number(t.to_string()),
            _ => Value::Text(t.to_string()),
        }
    }

    fn to_toml(&self) -> toml::Value {
        match self {
            Value::Number(n) => match n.parse::<i64>() {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => toml::Value::Float(n.parse().unwrap_or(0.0)),
            },
            Value::Text(t) => toml::Value::String(t.clone()),
            Value::Bool(b) => toml::Value::Boolean(*b),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Number(n) => n
                .parse::<i64>()
                .map(Into::into)
                .unwrap_or_else(|_| serde_json::json!(n.parse::<f64>().unwrap_or(0.0))),
            Value::Text(t) => t.clone().into(),
            Value::Bool(b) => (*b).into(),
        }
    }

    /// The value in a folder name: a single keyframe `0:(x)` as `x`; runs of characters other
    /// than letters, digits and `.+-_` as one `_`; at most 40 characters.
    fn label(&self) -> String {
        let raw = match self {
            Value::Number(n) => n.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Text(t) => {
                let t: String = t.chars().filter(|c| !c.is_whitespace()).collect();
                match t.strip_prefix("0:(").and_then(|r| r.strip_suffix(')')) {
                    Some(inner) if !inner.contains([',', '(', ')']) => inner.to_string(),
                    _ => t,
                }
            }
        };
        let mut s: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".+-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        while s.contains("__") {
            s = s.replace("__", "_");
        }
        s = s.trim_matches('_').to_string();
        if s.is_empty() {
            s = "_".into();
        }
        s.chars().take(40).collect()
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) => f.write_str(n),
            Value::Text(t) => write!(f, "{t:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One `--vary KEY=VALUES`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    /// The key as given.
    pub key: String,
    /// Its values, in order.
    pub values: Vec<Value>,
}

impl Vary {
    /// The key in folder names: its last part, without Deforum's `_schedule`
    /// (`generation.seed` → `seed`, `strength_schedule` → `strength`).
    pub fn label(&self) -> &str {
        let last = self.key.rsplit('.').next().unwrap_or(&self.key);
        last.strip_suffix("_schedule").unwrap_or(last)
    }
}

/// Parses `KEY=VALUES`.
///
/// # Errors
/// No `=`, an empty key or value list, a bad range, or more than [`MAX_VALUES`] values.
pub fn parse_vary(arg: &str) -> Result<Vary> {
    let usage = "expected KEY=VALUES: `generation.seed=1,2,3`, `seed=1..8`, `strength_schedule=0.4..0.8:0.2` or `strength_schedule=\"0:(0.5)\",\"0:(0.6)\"`";
    let (key, values) = arg
        .split_once('=')
        .ok_or_else(|| anyhow!("--vary `{arg}`: {usage}"))?;
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("--vary `{arg}`: `{key}` is not a key; {usage}");
    }
    let values = match range(values).with_context(|| format!("--vary `{arg}`"))? {
        Some(v) => v,
        None => split_list(values)
            .with_context(|| format!("--vary `{arg}`"))?
            .iter()
            .map(|v| Value::of(v))
            .collect(),
    };
    if values.is_empty() || values.iter().any(|v| *v == Value::Text(String::new())) {
        bail!("--vary `{arg}`: an empty value; {usage}");
    }
    if values.len() > MAX_VALUES {
        bail!(
            "--vary `{arg}`: {} values, at most {MAX_VALUES}",
            values.len()
        );
    }
    Ok(Vary {
        key: key.to_string(),
        values,
    })
}

/// `A..B` or `A..B:STEP` (integers, or decimals written with as many digits as the values get),
/// or `None` where `text` is not a range.
fn range(text: &str) -> Result<Option<Vec<Value>>> {
    let t = text.trim();
    let Some((a, rest)) = t.split_once("..") else {
        return Ok(None);
    };
    let (b, step) = match rest.split_once(':') {
        Some((b, s)) => (b, Some(s)),
        None => (rest, None),
    };
    let num = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        return Ok(None);
    };
    let s = match step {
        Some(s) => num(s).ok_or_else(|| anyhow!("step `{s}` is not a number"))?,
        None => 1.0,
    };
    if s <= 0.0 {
        bail!("the step must be positive");
    }
    if x > y {
        bail!("the range {a}..{b} is empty: the first value is above the last");
    }
    let count = ((y - x) / s + 1e-9).floor() + 1.0;
    if count > MAX_VALUES as f64 {
        bail!("{count} values, at most {MAX_VALUES}");
    }
    let decimals = [a, b, step.unwrap_or("1")]
        .iter()
        .map(|s| s.trim().split_once('.').map_or(0, |(_, f)| f.len()))
        .max()
        .unwrap_or(0);
    Ok(Some(
        (0..count as usize)
            .map(|k| Value::Number(format!("{:.*}", decimals, x + k as f64 * s)))
            .collect(),
    ))
}

/// Splits at commas outside quotes; quotes are kept (they mark text).
fn split_list(text: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), _) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, ',') => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if let Some(q) = quote {
        bail!("a {q} is not closed");
    }
    items.push(cur);
    Ok(items)
}

/// One variant of a sweep.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Its values in folder-name form: `seed=3,strength=0.6`.
    pub label: String,
    /// Each key and its value.
    pub values: Vec<(String, Value)>,
    /// The variant's scene file: `variants/<label>.toml`.
    pub scene_file: PathBuf,
    /// Its scene text (TOML, every path absolute).
    pub text: String,
    /// Its output folder: `<sweep folder>/<label>`.
    pub out: PathBuf,
    /// Its frame count, where known without decoding a video.
    pub frames: Option<usize>,
}

/// The variants of a scene.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The scene swept.
    pub scene: PathBuf,
    /// `OUT_ROOT/<scene name>-sweep`, absolute.
    pub dir: PathBuf,
    /// Every combination of the values, the first `--vary` changing slowest.
    pub variants: Vec<Variant>,
}

/// The scene-file path (table names then key) of `key` in a TOML scene.
fn scene_path(key: &str) -> Result<Vec<String>> {
    if key.contains('.') {
        return Ok(key.split('.').map(str::to_string).collect());
    }
    // Deforum's plain settings first: `seed` is the seed, not the seed schedule's column
    if let Some((_, k)) = DEFORUM_KEYS.iter().find(|(d, _)| *d == key) {
        return Ok(k.split('.').map(str::to_string).collect());
    }
    let by_deforum = registry::SCHEDULES.iter().find(|d| d.deforum == key);
    if let Some(d) = by_deforum.or_else(|| registry::SCHEDULES.iter().find(|d| d.name == key)) {
        return Ok(vec![d.table.to_string(), d.key.to_string()]);
    }
    bail!(
        "`{key}` is neither a dotted scene key (`generation.seed`, `motion.zoom`: docs/scene-format.md \
         lists them) nor a Deforum settings name anim knows"
    )
}

/// Sets `path` in a TOML table, making the tables on the way.
fn set_toml(table: &mut toml::Table, path: &[String], value: toml::Value, key: &str) -> Result<()> {
    let (last, tables) = path.split_last().ok_or_else(|| anyhow!("empty key"))?;
    let mut t = table;
    for name in tables {
        t = t
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("`{key}`: `{name}` is not a table of the scene"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

/// Plans the sweep of the scene at `path` (TOML or Deforum settings) into
/// `OUT_ROOT/<scene name>-sweep/` (`OUT_ROOT`: the folder of the scene's own output folder
/// without `out_root`). Every variant is read back as a scene, so a bad key or value is reported
/// before anything renders.
///
/// # Errors
/// An unreadable scene, an unknown key, a value the scene refuses (naming the key and value),
/// or more than [`MAX_VARIANTS`] variants.
pub fn plan(
    path: &Path,
    varies: &[Vary],
    out_root: Option<&Path>,
    opts: ReadOptions,
) -> Result<Sweep> {
    if varies.is_empty() {
        bail!("no --vary KEY=VALUES given");
    }
    let count = varies
        .iter()
        .try_fold(1usize, |n, v| n.checked_mul(v.values.len()))
        .filter(|n| *n <= MAX_VARIANTS)
        .ok_or_else(|| anyhow!("the --vary values make more than {MAX_VARIANTS} variants"))?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scene file {}", path.display()))?;
    let base = Scene::load_with(path, opts)?;
    let name = plan::scene_name(path);
    let root = match out_root {
        Some(r) => r.to_path_buf(),
        None => base
            .output_folder()
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let dir = plan::absolute(&root.join(format!("{name}-sweep")))?;
    let settings: Option<serde_json::Map<String, serde_json::Value>> = if base.from_deforum {
        serde_json::from_str(&text).ok()
    } else {
        None
    };
    // the base scene as a TOML table: the file itself, or a Deforum file's scene
    let toml_base: Option<toml::Table> = match &settings {
        Some(_) => None,
        None => Some(
            toml::from_str(&text)
                .with_context(|| format!("cannot read {} as TOML", path.display()))?,
        ),
    };
    for v in varies {
        let deforum_name = settings.is_some() && !v.key.contains('.');
        if deforum_name {
            let known = settings.as_ref().is_some_and(|m| m.contains_key(&v.key))
                || registry::SCHEDULES.iter().any(|d| d.deforum == v.key)
                || DEFORUM_KEYS.iter().any(|(d, _)| *d == v.key);
            if !known {
                bail!(
                    "--vary {}: `{}` is not a key of the Deforum settings file {} nor a Deforum setting anim knows",
                    v.key,
                    v.key,
                    path.display()
                );
            }
        } else {
            scene_path(&v.key).with_context(|| format!("--vary {}", v.key))?;
        }
    }
    let mut labels = BTreeSet::new();
    let mut variants = Vec::with_capacity(count);
    for k in 0..count {
        // the k-th combination, the last --vary changing fastest
        let mut rest = k;
        let mut picks = vec![0; varies.len()];
        for (slot, v) in picks.iter_mut().zip(varies).rev() {
            *slot = rest % v.values.len();
            rest /= v.values.len();
        }
        let values: Vec<(String, Value)> = varies
            .iter()
            .zip(&picks)
            .map(|(v, &i)| (v.key.clone(), v.values[i].clone()))
            .collect();
        let mut label = varies
            .iter()
            .zip(&values)
            .map(|(v, (_, x))| format!("{}={}", v.label(), x.label()))
            .collect::<Vec<_>>()
            .join(",");
        if !labels.insert(label.clone()) {
            label = format!("{label},{}", k + 1);
            labels.insert(label.clone());
        }
        let what = || {
            values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut scene = variant_scene(path, &settings, &toml_base, &values, opts)
            .with_context(|| format!("variant {}", what()))?;
        let out = dir.join(&label);
        scene.output.folder = Some(out.clone());
        scene
            .absolutize_paths()
            .with_context(|| format!("variant {}", what()))?;
        let scene_file = dir.join("variants").join(format!("{label}.toml"));
        let body = toml::to_string(&scene)
            .with_context(|| format!("variant {}: cannot write it as TOML", what()))?;
        let text = format!(
            "# variant of {} with {}, written by `anim sweep`\n{body}",
            plan::absolute(path)?.display(),
            what()
        );
        // what is written must read back as the same scene
        Scene::from_toml_with(&text, &scene_file, opts)
            .with_context(|| format!("variant {}", what()))?;
        variants.push(Variant {
            label,
            values,
            scene_file,
            text,
            out,
            frames: (scene.animation.mode != crate::scene::AnimationMode::VideoInput)
                .then_some(scene.animation.max_frames),
        });
    }
    Ok(Sweep {
        scene: path.to_path_buf(),
        dir,
        variants,
    })
}

/// The scene of one combination of values, relative paths still resolving against the base
/// scene's folder.
fn variant_scene(
    path: &Path,
    settings: &Option<serde_json::Map<String, serde_json::Value>>,
    toml_base: &Option<toml::Table>,
    values: &[(String, Value)],
    opts: ReadOptions,
) -> Result<Scene> {
    let (mut table, rest): (toml::Table, Vec<&(String, Value)>) = match (settings, toml_base) {
        (Some(map), _) => {
            let mut map = map.clone();
            let mut dotted = Vec::new();
            for kv in values {
                if kv.0.contains('.') {
                    dotted.push(kv);
                } else {
                    map.insert(kv.0.clone(), kv.1.to_json());
                }
            }
            let text = serde_json::to_string(&serde_json::Value::Object(map))?;
            let (scene, _) = deforum::from_settings_with(&text, path, opts)?;
            (toml::Table::try_from(&scene)?, dotted)
        }
        (None, Some(t)) => (t.clone(), values.iter().collect()),
        (None, None) => unreachable!("a scene is TOML or Deforum settings"),
    };
    for (key, value) in rest {
        set_toml(&mut table, &scene_path(key)?, value.to_toml(), key)?;
    }
    let text = toml::to_string(&table)?;
    Ok(Scene::from_toml_with(&text, path, opts)?)
}

impl Sweep {
    /// The tasks rendering the variants (their files written by [`Sweep::write`]).
    pub fn tasks(&self) -> Vec<Task> {
        self.variants
            .iter()
            .map(|v| Task {
                name: v.label.clone(),
                scene: v.scene_file.clone(),
                out: v.out.clone(),
                frames: None,
                total: v.frames,
            })
            .collect()
    }

    /// Writes every variant's scene file into `variants/`.
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn write(&self) -> Result<()> {
        for v in &self.variants {
            crate::output::write_atomic(&v.scene_file, |w| {
                use std::io::Write as _;
                Ok(w.write_all(v.text.as_bytes())?)
            })?;
        }
        Ok(())
    }

    /// One line per variant: its label, values and output folder.
    pub fn listing(&self) -> String {
        let mut s = format!(
            "{} variants of {} into {}\n",
            self.variants.len(),
            self.scene.display(),
            self.dir.display()
        );
        for v in &self.variants {
            s.push_str(&format!("{}  ->  {}\n", v.label, v.out.display()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_ranges_and_quoted_keyframe_strings() {
        let v = parse_vary("seed=1..3").unwrap();
        assert_eq!(v.values, ["1", "2", "3"].map(|s| Value::Number(s.into())));
        let v = parse_vary("strength_schedule=0.4..0.8:0.2").unwrap();
        assert_eq!(
            v.values,
            ["0.4", "0.6", "0.8"].map(|s| Value::Number(s.into()))
        );
        assert_eq!(v.label(), "strength");
        let v = parse_vary(r#"motion.zoom="0:(1.0), 10:(1.02)",'0:(1.05)',1"#).unwrap();
        assert_eq!(
            v.values,
            vec![
                Value::Text("0:(1.0), 10:(1.02)".into()),
                Value::Text("0:(1.05)".into()),
                Value::Number("1".into())
            ]
        );
        assert_eq!(v.label(), "zoom");
        assert_eq!(v.values[1].label(), "1.05");
        assert_eq!(v.values[0].label(), "0_1.0_10_1.02");
        for bad in [
            "seed",
            "=1",
            "seed=",
            "seed=3..1",
            "seed=1..4:0",
            "seed=\"1",
        ] {
            assert!(parse_vary(bad).is_err(), "{bad}");
        }
        assert!(parse_vary("seed=0..20000").is_err());
    }

    #[test]
    fn keys_by_dotted_path_or_deforum_name() {
        assert_eq!(
            scene_path("generation.seed").unwrap(),
            ["generation", "seed"]
        );
        assert_eq!(scene_path("seed").unwrap(), ["generation", "seed"]);
        assert_eq!(
            scene_path("strength_schedule").unwrap(),
            ["generation", "strength"]
        );
        assert_eq!(
            scene_path("cfg_scale_schedule").unwrap(),
            ["generation", "cfg_scale"]
        );
        assert_eq!(scene_path("W").unwrap(), ["image", "width"]);
        assert!(scene_path("sed").is_err());
    }

    #[test]
    fn variants_are_standalone_scenes_named_by_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let scene = dir.path().join("forest.toml");
        std::fs::write(
            &scene,
            "[animation]\nmax_frames = 3\n[generation]\nseed = 1\nstrength = \"0:(0.65)\"\n\
             [init]\nimage = \"pics/start.png\"\n[model]\nfolder = \"models/m\"\n",
        )
        .unwrap();
        let varies = [
            parse_vary("seed=3,4").unwrap(),
            parse_vary("strength_schedule=\"0:(0.5)\",\"0:(0.6)\"").unwrap(),
        ];
        let sweep = plan(
            &scene,
            &varies,
            Some(&dir.path().join("runs")),
            ReadOptions::default(),
        )
        .unwrap();
        let labels: Vec<&str> = sweep.variants.iter().map(|v| v.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "seed=3,strength=0.5",
                "seed=3,strength=0.6",
                "seed=4,strength=0.5",
                "seed=4,strength=0.6"
            ]
        );
        let v = &sweep.variants[1];
        assert_eq!(
            v.out,
            dir.path().join("runs/forest-sweep/seed=3,strength=0.6")
        );
        let s = Scene::from_toml(&v.text, &v.scene_file).unwrap();
        assert_eq!(s.generation.seed, 3);
        assert_eq!(
            s.generation.strength,
            crate::scene::ScheduleText::text("0:(0.6)")
        );
        assert_eq!(s.model.folder.clone().unwrap(), dir.path().join("models/m"));
        assert_eq!(
            s.init.image.clone().unwrap(),
            dir.path().join("pics/start.png")
        );
        assert_eq!(s.output_folder(), v.out);
        // a value the scene refuses is reported before anything is written
        let err = format!(
            "{:#}",
            plan(
                &scene,
                &[parse_vary("image.width=64,63").unwrap()],
                None,
                ReadOptions::default(),
            )
            .unwrap_err()
        );
        assert!(err.contains("image.width=63"), "{err}");
        assert!(!dir.path().join("output").exists());
    }

    #[test]
    fn a_deforum_settings_file_is_swept_by_its_own_names() {
        let dir = tempfile::tempdir().unwrap();
        let scene = dir.path().join("d.txt");
        std::fs::write(
            &scene,
            r#"{"W": 64, "H": 64, "max_frames": 2, "seed": 5, "cfg_scale_schedule": "0:(7)"}"#,
        )
        .unwrap();
        let sweep = plan(
            &scene,
            &[parse_vary("cfg_scale_schedule=\"0:(5)\",\"0:(9)\"").unwrap()],
            None,
            ReadOptions::default(),
        )
        .unwrap();
        let s = Scene::from_toml(&sweep.variants[1].text, &sweep.variants[1].scene_file).unwrap();
        assert_eq!(
            s.generation.cfg_scale,
            crate::scene::ScheduleText::text("0:(9)")
        );
        assert_eq!(s.generation.seed, 5);
        // a value anim does not implement: an error, unless the sweep is told to allow it
        std::fs::write(
            &scene,
            r#"{"W": 64, "H": 64, "max_frames": 2, "restore_faces": true}"#,
        )
        .unwrap();
        let vary = [parse_vary("seed=1,2").unwrap()];
        assert!(plan(&scene, &vary, None, ReadOptions::default()).is_err());
        let allow = ReadOptions {
            allow_unsupported: true,
        };
        assert_eq!(plan(&scene, &vary, None, allow).unwrap().variants.len(), 2);
        assert!(
            plan(
                &scene,
                &[parse_vary("no_such_key=1,2").unwrap()],
                None,
                ReadOptions::default()
            )
            .is_err()
        );
    }
}
