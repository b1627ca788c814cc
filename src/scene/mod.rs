//! The scene file: a TOML description of an animation, with Deforum's setting names grouped in
//! tables (`_schedule` suffixes dropped). docs/scene-format.md documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schedule::{Context, Schedule};

/// A scene that cannot be used, with the file and the place in it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SceneError {
    /// The scene file.
    pub file: PathBuf,
    /// What is wrong, with line/column or key, and how to fix it.
    pub message: String,
}

/// A schedule as written: a plain number or a Deforum keyframe string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScheduleText {
    /// A constant.
    Number(f64),
    /// A keyframe string such as `"0:(1.0), 30:(1.02)"`.
    Text(String),
}

impl ScheduleText {
    fn text(s: &str) -> Self {
        ScheduleText::Text(s.to_string())
    }
}

impl fmt::Display for ScheduleText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleText::Number(v) => write!(f, "{v}"),
            ScheduleText::Text(s) => f.write_str(s),
        }
    }
}

/// Animation mode, as Deforum names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnimationMode {
    /// 2D warps (angle, zoom, translation).
    #[serde(rename = "2D")]
    TwoD,
    /// 3D camera moves (depth warps; until the camera issue lands, rendered with the 2D warp).
    #[serde(rename = "3D")]
    ThreeD,
    /// No motion: each frame is img2img of the previous one.
    None,
}

/// How pixels outside the frame are filled by the 2D warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Border {
    /// Repeat the edge pixel (Deforum's default, OpenCV BORDER_REPLICATE).
    Replicate,
    /// Tile the image (OpenCV BORDER_WRAP).
    Wrap,
    /// Mirror, repeating the edge pixel (OpenCV BORDER_REFLECT).
    Reflect,
    /// Black (OpenCV BORDER_CONSTANT 0).
    Zero,
}

/// `[image]`: frame size.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSettings {
    /// Width in pixels, a multiple of 8.
    pub width: u32,
    /// Height in pixels, a multiple of 8.
    pub height: u32,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings { width: 512, height: 512 }
    }
}

/// `[animation]`: mode and length.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnimationSettings {
    /// `2D`, `3D` or `None`.
    pub mode: AnimationMode,
    /// Number of frames to render.
    pub max_frames: usize,
    /// Border handling of the 2D warp.
    pub border: Border,
}

impl Default for AnimationSettings {
    fn default() -> Self {
        AnimationSettings { mode: AnimationMode::TwoD, max_frames: 120, border: Border::Replicate }
    }
}

/// `[generation]`: sampling settings; `steps`, `strength` and `cfg_scale` are schedules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationSettings {
    /// Seed; -1 picks a random one (recorded in the output).
    pub seed: i64,
    /// Sampler name (`Euler a`, `Euler`, `DDIM`).
    pub sampler: String,
    /// Sampling steps of a full (txt2img) schedule.
    pub steps: ScheduleText,
    /// Deforum strength: the share of the previous frame kept (diffusers' strength = 1 - this).
    pub strength: ScheduleText,
    /// Classifier-free guidance scale.
    pub cfg_scale: ScheduleText,
    /// DDIM eta (0 = deterministic DDIM).
    pub ddim_eta: f64,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            seed: -1,
            sampler: "Euler a".into(),
            steps: ScheduleText::Number(25.0),
            strength: ScheduleText::text("0: (0.65)"),
            cfg_scale: ScheduleText::text("0: (7)"),
            ddim_eta: 0.0,
        }
    }
}

/// `[init]`: an optional starting image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitSettings {
    /// Path of the init image (relative to the scene file); none means frame 0 is txt2img.
    pub image: Option<PathBuf>,
    /// Strength of frame 0 when an init image is used (Deforum's `strength`).
    pub strength: f64,
    /// With no init image, frame 0 is generated from pure noise (Deforum's `strength_0_no_init`).
    pub strength_0_no_init: bool,
}

impl Default for InitSettings {
    fn default() -> Self {
        InitSettings { image: None, strength: 0.8, strength_0_no_init: true }
    }
}

/// `[motion]`: the 2D camera schedules (per-frame increments, as in Deforum).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionSettings {
    /// Rotation in degrees per frame, counter-clockwise.
    pub angle: ScheduleText,
    /// Scale per frame (1 = static).
    pub zoom: ScheduleText,
    /// Pixels per frame, content moves right.
    pub translation_x: ScheduleText,
    /// Pixels per frame, content moves down.
    pub translation_y: ScheduleText,
    /// Rotation/zoom centre, fraction of the width.
    pub transform_center_x: ScheduleText,
    /// Rotation/zoom centre, fraction of the height.
    pub transform_center_y: ScheduleText,
}

impl Default for MotionSettings {
    fn default() -> Self {
        MotionSettings {
            angle: ScheduleText::text("0: (0)"),
            zoom: ScheduleText::text("0: (1.0025+0.002*sin(1.25*3.14*t/30))"),
            translation_x: ScheduleText::text("0: (0)"),
            translation_y: ScheduleText::text("0: (0)"),
            transform_center_x: ScheduleText::text("0: (0.5)"),
            transform_center_y: ScheduleText::text("0: (0.5)"),
        }
    }
}

/// `[model]`: the Stable Diffusion ONNX folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Folder in the optimum/diffusers ONNX layout (relative to the scene file).
    pub folder: Option<PathBuf>,
}

/// `[output]`: where frames and video go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSettings {
    /// Output folder (relative to the scene file); default `output/<scene name>`.
    pub folder: Option<PathBuf>,
    /// Frames per second of the video.
    pub fps: f64,
    /// Encode an mp4 after rendering.
    pub video: bool,
    /// x264 constant rate factor (0-51, lower is better).
    pub crf: u32,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings { folder: None, fps: 15.0, video: true, crf: 17 }
    }
}

/// A whole scene file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scene {
    /// Frame size.
    pub image: ImageSettings,
    /// Mode and length.
    pub animation: AnimationSettings,
    /// Sampling.
    pub generation: GenerationSettings,
    /// Init image.
    pub init: InitSettings,
    /// Camera schedules.
    pub motion: MotionSettings,
    /// The model folder.
    pub model: ModelSettings,
    /// Output.
    pub output: OutputSettings,
    /// Prompts keyed by frame (`"0" = "a forest --neg blurry"`).
    pub prompts: BTreeMap<String, String>,
    /// Where the scene was read from; relative paths resolve against its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

/// A prompt split at `--neg`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    /// Positive text.
    pub positive: String,
    /// Negative text (after `--neg`), possibly empty.
    pub negative: String,
}

impl Prompt {
    /// Splits `text` at the first `--neg`.
    pub fn parse(text: &str) -> Prompt {
        match text.split_once("--neg") {
            Some((p, n)) => Prompt { positive: p.trim().into(), negative: n.trim().into() },
            None => Prompt { positive: text.trim().into(), negative: String::new() },
        }
    }
}

/// Every schedule of a scene evaluated for every frame.
#[derive(Debug, Clone, Serialize)]
pub struct FrameSchedules {
    /// Degrees per frame.
    pub angle: Vec<f64>,
    /// Scale per frame.
    pub zoom: Vec<f64>,
    /// Pixels per frame.
    pub translation_x: Vec<f64>,
    /// Pixels per frame.
    pub translation_y: Vec<f64>,
    /// Fraction of the width.
    pub transform_center_x: Vec<f64>,
    /// Fraction of the height.
    pub transform_center_y: Vec<f64>,
    /// Deforum strength per frame.
    pub strength: Vec<f64>,
    /// CFG scale per frame.
    pub cfg_scale: Vec<f64>,
    /// Steps per frame.
    pub steps: Vec<f64>,
}

const SECTION_KEYS: &[(&str, &[&str])] = &[
    ("", &["image", "animation", "generation", "init", "motion", "model", "output", "prompts"]),
    ("image", &["width", "height"]),
    ("animation", &["mode", "max_frames", "border"]),
    ("generation", &["seed", "sampler", "steps", "strength", "cfg_scale", "ddim_eta"]),
    ("init", &["image", "strength", "strength_0_no_init"]),
    ("motion", &["angle", "zoom", "translation_x", "translation_y", "transform_center_x", "transform_center_y"]),
    ("model", &["folder"]),
    ("output", &["folder", "fps", "video", "crf"]),
];

/// Samplers the diffusion core implements, with accepted aliases.
pub const SAMPLERS: &[&str] = &["Euler a", "Euler", "DDIM"];

impl Scene {
    /// Reads and validates a scene file.
    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        let text = std::fs::read_to_string(path).map_err(|e| SceneError {
            file: path.to_path_buf(),
            message: format!("cannot read the scene file: {e}"),
        })?;
        let mut scene = Scene::from_toml(&text, path)?;
        scene.path = path.to_path_buf();
        Ok(scene)
    }

    /// Parses scene text; `path` is used for messages and relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Scene, SceneError> {
        let err = |message: String| SceneError { file: path.to_path_buf(), message };
        let mut scene: Scene = toml::from_str(text).map_err(|e| err(describe_toml_error(text, &e)))?;
        scene.path = path.to_path_buf();
        scene.validate().map_err(err)?;
        Ok(scene)
    }

    fn validate(&self) -> Result<(), String> {
        let (w, h) = (self.image.width, self.image.height);
        for (name, v) in [("width", w), ("height", h)] {
            if v == 0 || v % 8 != 0 {
                let lo = (v / 8 * 8).max(8);
                return Err(format!(
                    "[image] {name} = {v}: must be a positive multiple of 8 (try {lo} or {})",
                    lo + 8
                ));
            }
        }
        if self.animation.max_frames == 0 {
            return Err("[animation] max_frames = 0: render at least 1 frame".into());
        }
        if !(self.output.fps > 0.0 && self.output.fps.is_finite()) {
            return Err(format!("[output] fps = {}: must be a positive number", self.output.fps));
        }
        if self.output.crf > 51 {
            return Err(format!("[output] crf = {}: must be 0..=51", self.output.crf));
        }
        if !(0.0..=1.0).contains(&self.init.strength) {
            return Err(format!("[init] strength = {}: must be within 0..=1", self.init.strength));
        }
        sampler_name(&self.generation.sampler)?;
        for key in self.prompts.keys() {
            key.trim().parse::<usize>().map_err(|_| {
                format!("[prompts] key \"{key}\": must be a frame number such as \"0\" or \"30\"")
            })?;
        }
        self.schedules()?;
        Ok(())
    }

    /// The context expressions are evaluated in.
    pub fn context(&self) -> Context {
        Context::new(self.animation.max_frames, self.generation.seed, self.output.fps)
    }

    /// Evaluates every schedule for every frame; errors name the table and key.
    pub fn schedules(&self) -> Result<FrameSchedules, String> {
        let ctx = self.context();
        let eval = |table: &str, key: &str, s: &ScheduleText| -> Result<Vec<f64>, String> {
            let sched = match s {
                ScheduleText::Number(v) => Schedule::constant(*v),
                ScheduleText::Text(t) => {
                    Schedule::parse(t, &ctx).map_err(|e| format!("[{table}] {key} = \"{t}\": {e}"))?
                }
            };
            let values = sched.evaluate(&ctx);
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!("[{table}] {key}: the value at frame {i} is {} (not a finite number)", values[i]));
            }
            Ok(values)
        };
        let m = &self.motion;
        let g = &self.generation;
        let s = FrameSchedules {
            angle: eval("motion", "angle", &m.angle)?,
            zoom: eval("motion", "zoom", &m.zoom)?,
            translation_x: eval("motion", "translation_x", &m.translation_x)?,
            translation_y: eval("motion", "translation_y", &m.translation_y)?,
            transform_center_x: eval("motion", "transform_center_x", &m.transform_center_x)?,
            transform_center_y: eval("motion", "transform_center_y", &m.transform_center_y)?,
            strength: eval("generation", "strength", &g.strength)?,
            cfg_scale: eval("generation", "cfg_scale", &g.cfg_scale)?,
            steps: eval("generation", "steps", &g.steps)?,
        };
        if let Some(i) = s.steps.iter().position(|v| *v < 1.0 || *v > 1000.0) {
            return Err(format!("[generation] steps: {} at frame {i}; must be within 1..=1000", s.steps[i]));
        }
        Ok(s)
    }

    /// Resolves a path from the scene against the scene file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// The output folder: `[output] folder`, or `output/<scene name>` beside the scene.
    pub fn output_folder(&self) -> PathBuf {
        match &self.output.folder {
            Some(f) => self.resolve(f),
            None => {
                let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned());
                self.resolve(&Path::new("output").join(stem.unwrap_or_else(|| "scene".into())))
            }
        }
    }

    /// The prompt in force at `frame`: the one at the greatest key <= frame (the first one before
    /// any key).
    pub fn prompt_at(&self, frame: usize) -> Prompt {
        let mut keyed: Vec<(usize, &String)> =
            self.prompts.iter().filter_map(|(k, v)| k.trim().parse().ok().map(|k| (k, v))).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let chosen = keyed.iter().rev().find(|(k, _)| *k <= frame).or(keyed.first());
        chosen.map(|(_, t)| Prompt::parse(t)).unwrap_or(Prompt { positive: String::new(), negative: String::new() })
    }
}

/// Canonical sampler name for a user's spelling (case-insensitive; diffusers class names too).
pub fn sampler_name(name: &str) -> Result<&'static str, String> {
    let n = name.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let found = match n.as_str() {
        "euler a" | "euler ancestral" | "eulerancestraldiscretescheduler" | "k euler a" => Some("Euler a"),
        "euler" | "eulerdiscretescheduler" | "k euler" => Some("Euler"),
        "ddim" | "ddimscheduler" => Some("DDIM"),
        _ => None,
    };
    found.ok_or_else(|| {
        let hint = crate::schedule::expr::did_you_mean(name, SAMPLERS.iter().copied());
        format!("[generation] sampler = \"{name}\": unknown sampler{hint}; available: {}", SAMPLERS.join(", "))
    })
}

/// Turns a toml/serde error into `line L, column C: message`, with a did-you-mean for unknown keys.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim().to_string();
    let mut table = String::new();
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        // the table the error is in: the last `[name]` header above it
        table = before
            .lines()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && !l.starts_with("[[")).then(|| l.trim_matches(['[', ']']).trim().to_string())
            })
            .unwrap_or_default();
        let src_line = text.lines().nth(line - 1).unwrap_or("").trim();
        msg = format!("line {line}, column {col}: {msg}\n  | {src_line}");
    }
    if let Some(rest) = e.message().strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let known = SECTION_KEYS
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, k)| *k)
            .unwrap_or(&[]);
        let mut hint = crate::schedule::expr::did_you_mean(field, known.iter().copied());
        if hint.is_empty() {
            // perhaps the key belongs in another table
            for (t, keys) in SECTION_KEYS {
                if keys.contains(&field) && !t.is_empty() {
                    hint = format!(", did you mean to put it in [{t}]?");
                    break;
                }
            }
        }
        let where_ = if table.is_empty() { "at the top level".to_string() } else { format!("in [{table}]") };
        let head = msg.split(": unknown field").next().unwrap_or("").to_string();
        let src = msg.split_once('\n').map(|(_, l)| l.to_string()).unwrap_or_default();
        msg = format!("{head}: unknown key `{field}` {where_}{hint}\n{src}\n  keys allowed there: {}", known.join(", "));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Scene, SceneError> {
        Scene::from_toml(s, Path::new("scene.toml"))
    }

    #[test]
    fn defaults_follow_deforum() {
        let s = parse("").unwrap();
        assert_eq!((s.image.width, s.image.height, s.animation.max_frames), (512, 512, 120));
        assert_eq!(s.generation.sampler, "Euler a");
        let f = s.schedules().unwrap();
        assert_eq!(f.strength[5], 0.65);
        assert!((f.zoom[1] - (1.0025 + 0.002 * (1.25f64 * 3.14 / 30.0).sin())).abs() < 1e-12);
    }

    #[test]
    fn prompts_and_neg() {
        let s = parse("[prompts]\n\"0\" = \"a forest --neg blurry\"\n\"10\" = \"a city\"\n").unwrap();
        assert_eq!(s.prompt_at(3), Prompt { positive: "a forest".into(), negative: "blurry".into() });
        assert_eq!(s.prompt_at(10).positive, "a city");
    }

    #[test]
    fn unknown_key_did_you_mean() {
        let e = parse("[motion]\nzom = 1.0\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `zoom`") && e.contains("line 2"), "{e}");
        let e = parse("[image]\nzoom = 1.0\n").unwrap_err().to_string();
        assert!(e.contains("[motion]"), "{e}");
    }

    #[test]
    fn bad_values() {
        assert!(parse("[image]\nwidth = 100\n").unwrap_err().to_string().contains("multiple of 8"));
        assert!(parse("[image]\nwidth = \"wide\"\n").unwrap_err().to_string().contains("line 2"));
        let e = parse("[motion]\nzoom = \"0:(1.0), 5:(1+sinn(t))\"\n").unwrap_err().to_string();
        assert!(e.contains("[motion] zoom") && e.contains("sinn"), "{e}");
        assert!(parse("[generation]\nsampler = \"Eulr\"\n").unwrap_err().to_string().contains("did you mean `Euler`"));
        assert!(parse("[animation]\nmode = \"4D\"\n").unwrap_err().to_string().contains("line 2"));
        assert!(parse("[prompts]\nfirst = \"x\"\n").unwrap_err().to_string().contains("frame number"));
        assert!(parse("[image\nwidth = 1").unwrap_err().to_string().contains("line 1"));
    }
}
