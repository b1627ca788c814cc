//! The scene file: a TOML description of an animation, with Deforum's setting names grouped in
//! tables (`_schedule` suffixes dropped). docs/scene-format.md documents every key; a Deforum
//! settings file (JSON) is read as a scene too ([`deforum`]).

pub mod deforum;
pub mod parseq;
mod prompts;
pub mod registry;
mod samplers;
mod tables;
mod toml_error;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schedule::{Context, Interpolation, Schedule, StringSchedule};
pub use crate::seeds::SeedBehavior;
pub use prompts::{Prompt, expand_prompt_math};
pub use registry::{FrameSchedules, FrameValues, ScheduleColumns};
pub use samplers::{SAMPLERS, UNIMPLEMENTED_SAMPLERS, sampler_fallback, sampler_name};
pub use tables::{
    AnimationMode, AnimationSettings, AntiBlurSettings, Border, CadenceSettings, CoherenceSettings,
    ColorCoherence, ControlNetUnit, DepthNormalization, DepthResize, DepthSettings,
    GenerationSettings, HybridComposite, HybridEqualize, HybridMaskType, HybridMotion,
    HybridSettings, INTERPOLATION_ENGINES, ImageSettings, InitSettings, LooperSettings, MaskFill,
    MaskSettings, ModelSettings, MotionSettings, NoiseSettings, OutputSettings, PaddingMode,
    ParseqSettings, PostSettings, PromptAffixes, PromptTravel, SamplingMode, ScheduleText,
    UPSCALE_FACTORS, VideoInputSettings,
};
use toml_error::describe_toml_error;
pub use toml_error::{nearest_value, unknown_value};
pub use validate::{
    FLOW_METHODS, MAX_CADENCE, MAX_CONSISTENCY_BLUR, MAX_FRAMES, MAX_REDO, MAX_SEED, MAX_SIDE,
    MAX_UPSCALE_TILE, PRESETS, SUBTITLE_PARAMS, flow_choice, max_perlin_octaves,
};

/// The message for a scene or settings file without a single setting.
const EMPTY_SCENE: &str = "the file holds no settings (empty, blank or only comments); anim never \
     reads an empty file as \"all defaults\": write at least the settings that differ from the \
     defaults (docs/scene-format.md lists every key, `anim import deforum` converts a Deforum \
     settings file)";

/// A scene that cannot be used, with the file and the place in it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SceneError {
    /// The scene file.
    pub file: PathBuf,
    /// What is wrong, with line/column or key, and how to fix it.
    pub message: String,
}

/// How a scene file is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// A known Deforum/A1111 value anim does not implement (a sampler, hybrid video, a URL
    /// where a file is needed) is a warning and takes its documented fallback
    /// (docs/scene-format.md, "Unsupported values") instead of being an error
    /// (`--allow-unsupported`).
    pub allow_unsupported: bool,
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
    /// Noise.
    pub noise: NoiseSettings,
    /// Coherence.
    pub coherence: CoherenceSettings,
    /// Anti-blur.
    pub anti_blur: AntiBlurSettings,
    /// Cadence.
    pub cadence: CadenceSettings,
    /// Text added to every prompt.
    pub animation_prompts: PromptAffixes,
    /// The input video of Video Input mode.
    pub video_input: VideoInputSettings,
    /// The depth model of 3D mode.
    pub depth: DepthSettings,
    /// Hybrid video: a video composited into the frames and its motion.
    pub hybrid: HybridSettings,
    /// Guided images (Deforum's looper).
    #[serde(skip_serializing_if = "LooperSettings::is_off")]
    pub looper: LooperSettings,
    /// Masks: masked img2img, the noise mask and the overlay.
    pub mask: MaskSettings,
    /// The model folder.
    pub model: ModelSettings,
    /// Output.
    pub output: OutputSettings,
    /// User constants visible in every expression.
    pub variables: BTreeMap<String, f64>,
    /// The audio file whose analysis gives the per-frame variables `amp`, `beat`, … (and the
    /// soundtrack, unless `[output] soundtrack` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<crate::audio::AudioSettings>,
    /// Interpolation per schedule (`zoom = "ease-in-out"`); default linear.
    pub interpolation: BTreeMap<String, String>,
    /// Prompts keyed by frame (`"0" = "a forest --neg blurry"`).
    pub prompts: BTreeMap<String, String>,
    /// ControlNet units.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controlnet: Vec<ControlNetUnit>,
    /// A Parseq manifest replacing the schedules it covers.
    #[serde(skip_serializing_if = "ParseqSettings::is_off")]
    pub parseq: ParseqSettings,
    /// Post passes: upscaling and frame interpolation.
    #[serde(skip_serializing_if = "PostSettings::is_off")]
    pub post: PostSettings,
    /// Where the scene was read from; relative paths resolve against its folder.
    #[serde(skip)]
    pub path: PathBuf,
    /// Notes from reading it (a Deforum settings file's unsupported keys), for the user.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Read from a Deforum settings file: messages name its keys.
    #[serde(skip)]
    pub from_deforum: bool,
    /// Read with [`ReadOptions::allow_unsupported`]: unimplemented samplers take their fallback.
    #[serde(skip)]
    pub allow_unsupported: bool,
    /// The schedules evaluated when the scene was read, for [`Scene::frame_schedules`].
    #[serde(skip)]
    evaluated: Option<Arc<Evaluated>>,
    /// The `[parseq]` manifest, read when the scene was validated.
    #[serde(skip)]
    parseq_data: Option<Arc<parseq::Loaded>>,
    /// The `[audio]` analysis made when the scene was validated.
    #[serde(skip)]
    audio_features: Option<Arc<crate::audio::AudioFeatures>>,
}

/// Schedules and the key of the scene state they were evaluated from.
struct Evaluated {
    key: String,
    schedules: Arc<FrameSchedules>,
}

impl fmt::Debug for Evaluated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Evaluated({} frames)", self.schedules.frames())
    }
}

impl Scene {
    /// Reads and validates a scene file: TOML, or a Deforum settings file (JSON, recognised by
    /// content).
    pub fn load(path: &Path) -> Result<Scene, SceneError> {
        Scene::load_with(path, ReadOptions::default())
    }

    /// [`Scene::load`] with options (`--allow-unsupported`).
    ///
    /// # Errors
    /// An unreadable, empty or invalid file, naming the file and the key or line.
    pub fn load_with(path: &Path, opts: ReadOptions) -> Result<Scene, SceneError> {
        let bytes = std::fs::read(path).map_err(|e| SceneError {
            file: path.to_path_buf(),
            message: format!("cannot read the scene file: {e}"),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..at];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            SceneError {
                file: path.to_path_buf(),
                message: format!(
                    "line {line}: not UTF-8 text (byte {at}); save the scene file as UTF-8"
                ),
            }
        })?;
        if deforum::looks_like_settings(&text) {
            let (scene, _) = deforum::from_settings_with(&text, path, opts)?;
            return Ok(scene);
        }
        let mut scene = Scene::from_toml_with(&text, path, opts)?;
        scene.path = path.to_path_buf();
        Ok(scene)
    }

    /// The frame size as the user wrote it, for messages: `[image] width = W, height = H`, or
    /// Deforum's `W = …, H = …` for a settings file.
    pub fn size_keys(&self) -> String {
        let (w, h) = (self.image.width, self.image.height);
        if self.from_deforum {
            format!("W = {w}, H = {h}")
        } else {
            format!("[image] width = {w}, height = {h}")
        }
    }

    /// Parses scene text; `path` is used for messages and relative paths.
    ///
    /// # Errors
    /// Malformed TOML, unknown keys or values, out-of-range values, and a file without any
    /// setting (an empty file is never read as "all defaults").
    pub fn from_toml(text: &str, path: &Path) -> Result<Scene, SceneError> {
        Scene::from_toml_with(text, path, ReadOptions::default())
    }

    /// [`Scene::from_toml`] with options (`--allow-unsupported`).
    ///
    /// # Errors
    /// As [`Scene::from_toml`].
    pub fn from_toml_with(text: &str, path: &Path, opts: ReadOptions) -> Result<Scene, SceneError> {
        let err = |message: String| SceneError {
            file: path.to_path_buf(),
            message,
        };
        if toml::from_str::<toml::Table>(text).is_ok_and(|t| t.is_empty()) {
            return Err(err(EMPTY_SCENE.into()));
        }
        let mut scene: Scene =
            toml::from_str(text).map_err(|e| err(describe_toml_error(text, &e)))?;
        scene.path = path.to_path_buf();
        scene.allow_unsupported = opts.allow_unsupported;
        scene.validate().map_err(err)?;
        Ok(scene)
    }

    /// sha256 (hex) of the resolved scene and of its motion script and preset files: scenes with
    /// equal fingerprints have the same schedules and frames (`--resume` compares it).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.extend(crate::motion::source_fingerprint(&self.motion_spec()));
        if let Some(p) = &self.parseq_data {
            bytes.extend(p.manifest.digest().as_bytes());
        }
        if let Some(a) = &self.audio_features {
            bytes.extend(a.digest.as_bytes());
        }
        format!("{:x}", Sha256::digest(&bytes))
    }

    /// The fingerprint and the folder relative paths resolve against.
    fn evaluation_key(&self) -> String {
        format!("{} {}", self.fingerprint(), self.path.display())
    }

    /// [`Scene::schedules`] without evaluating twice: the schedules evaluated when the scene was
    /// read, while the scene and its motion files are unchanged since; else evaluated now.
    ///
    /// # Errors
    /// As [`Scene::schedules`].
    pub fn frame_schedules(&self) -> Result<Arc<FrameSchedules>, String> {
        if let Some(e) = &self.evaluated
            && e.key == self.evaluation_key()
        {
            return Ok(Arc::clone(&e.schedules));
        }
        Ok(Arc::new(self.schedules()?))
    }

    /// The context expressions are evaluated in.
    pub fn context(&self) -> Context {
        let mut ctx = Context::new(
            self.animation.max_frames,
            self.generation.seed,
            self.output.fps,
        );
        ctx.variables = self
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if let Some(a) = &self.audio_features {
            ctx.series = a
                .series()
                .into_iter()
                .map(|(n, v)| (n.to_string(), Arc::from(v)))
                .collect();
        }
        ctx
    }

    /// The `[audio]` analysis, one value per frame for each of [`crate::audio::VARIABLES`]
    /// (`None` without `[audio]`).
    pub fn audio_features(&self) -> Option<&crate::audio::AudioFeatures> {
        self.audio_features.as_deref()
    }

    /// Decodes and analyses the `[audio]` file again (after a change to the scene's frames,
    /// fps or `[audio]` table); without `[audio]`, clears the analysis.
    ///
    /// # Errors
    /// A missing or undecodable file, or an `[audio]` key out of range, naming the key.
    pub fn analyse_audio(&mut self) -> Result<(), String> {
        let frames = self.animation.max_frames;
        let features = crate::audio::for_scene(
            self.audio.as_ref(),
            |p| self.resolve(p),
            frames,
            self.output.fps,
        )?;
        self.audio_features = features.map(Arc::new);
        Ok(())
    }

    /// The file muxed into the mp4: `[output] soundtrack`, else the `[audio]` file.
    pub fn soundtrack(&self) -> Option<&Path> {
        self.output
            .soundtrack
            .as_deref()
            .or(self.audio.as_ref().map(|a| a.file.as_path()))
    }

    /// Every schedule by table, as (column name, table, key, text), ControlNet units last.
    pub fn schedule_texts(&self) -> Vec<(String, String, String, &ScheduleText)> {
        let mut out = Vec::new();
        let tables: [(&str, Vec<(&'static str, &ScheduleText)>); 9] = [
            ("generation", self.generation.schedules()),
            ("motion", self.motion.schedules()),
            ("noise", self.noise.schedules()),
            ("coherence", self.coherence.schedules()),
            ("anti_blur", self.anti_blur.schedules()),
            ("cadence", self.cadence.schedules()),
            ("hybrid", self.hybrid.schedules()),
            ("looper", self.looper.schedules()),
            ("", Vec::new()),
        ];
        for def in registry::SCHEDULES {
            if let Some((_, list)) = tables.iter().find(|(t, _)| *t == def.table)
                && let Some((_, text)) = list.iter().find(|(k, _)| *k == def.key)
            {
                out.push((
                    def.name.to_string(),
                    def.table.to_string(),
                    def.key.to_string(),
                    *text,
                ));
            }
        }
        for (i, unit) in self.controlnet.iter().enumerate() {
            for (key, text) in [
                ("weight", &unit.weight),
                ("guidance_start", &unit.guidance_start),
                ("guidance_end", &unit.guidance_end),
            ] {
                out.push((
                    format!("cn_{}_{key}", i + 1),
                    format!("controlnet #{}", i + 1),
                    key.to_string(),
                    text,
                ));
            }
        }
        out
    }

    /// Evaluates every schedule for every frame; errors name the table and key.
    pub fn schedules(&self) -> Result<FrameSchedules, String> {
        let ctx = self.context();
        let mut numeric = Vec::new();
        let mut text = Vec::new();
        for (name, table, key, s) in self.schedule_texts() {
            let label = if table.starts_with("controlnet") {
                format!("[[{table}]] {key}")
            } else {
                format!("[{table}] {key}")
            };
            let is_text = registry::def(&name).is_some_and(|d| d.kind == registry::Kind::Text);
            if is_text {
                let mut values = match s {
                    ScheduleText::Text(t) if StringSchedule::is_keyframed(t) => {
                        StringSchedule::parse(t, &ctx)
                            .map_err(|e| format!("{label} = \"{t}\": {e}"))?
                            .evaluate(&ctx)
                    }
                    other => StringSchedule::constant(&other.to_string()).evaluate(&ctx),
                };
                if name == "sampler" && self.allow_unsupported {
                    for v in values.iter_mut() {
                        if let Some((_, fallback)) = sampler_fallback(v) {
                            *v = fallback.to_string();
                        }
                    }
                }
                text.push((name, values));
                continue;
            }
            let interp = match self.interpolation.get(&name) {
                Some(m) => Interpolation::from_name(m).ok_or_else(|| {
                    unknown_value(&format!("[interpolation] {name}"), m, Interpolation::NAMES)
                })?,
                None => Interpolation::Linear,
            };
            let sched = match s {
                ScheduleText::Number(v) => Schedule::constant(*v),
                ScheduleText::Text(t) => {
                    Schedule::parse(t, &ctx).map_err(|e| format!("{label} = \"{t}\": {e}"))?
                }
            };
            let values = sched
                .evaluate_checked(&ctx, interp)
                .map_err(|e| format!("{label} = \"{s}\": {e}"))?;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "{label}: the value at frame {i} is {} (not a finite number); check the expression",
                    values[i]
                ));
            }
            numeric.push((name, values));
        }
        // a Parseq manifest's values replace the keyframed ones they cover
        self.apply_parseq(&mut numeric)?;
        // presets, then the motion script, on top of the keyframed values
        crate::motion::apply(&self.motion_spec(), &ctx, &mut numeric).map_err(|e| e.to_string())?;
        for name in self.interpolation.keys() {
            if !numeric.iter().any(|(n, _)| n == name) {
                let hint = crate::schedule::expr::did_you_mean(
                    name,
                    numeric.iter().map(|(n, _)| n.as_str()),
                );
                return Err(format!(
                    "[interpolation] {name}: no numeric schedule of that name{hint}"
                ));
            }
        }
        let s = FrameSchedules::new(self.animation.max_frames, numeric, text)?;
        self.check_frames(&s)?;
        Ok(s)
    }

    /// The scene's motion script and presets, for [`crate::motion`].
    pub fn motion_spec(&self) -> crate::motion::MotionSpec<'_> {
        crate::motion::MotionSpec {
            base_dir: self.path.parent().unwrap_or(Path::new(".")),
            script: self.motion.script.as_deref(),
            presets: &self.motion.preset,
            preset_dirs: &self.motion.preset_dirs,
            three_d: self.animation.mode == AnimationMode::ThreeD,
            shake: &self.motion.shake,
        }
    }

    /// The RAFT export that flow method `RAFT` uses: `[model] raft`, else the folder in
    /// `ANIM_RAFT_MODEL`, else `~/.local/share/anim/models/raft` (`$XDG_DATA_HOME` honoured) if it
    /// exists; `None` when there is none (the flow then says where to put one).
    pub fn raft_model(&self) -> Option<PathBuf> {
        if let Some(p) = &self.model.raft {
            return Some(self.resolve(p));
        }
        if let Some(p) = std::env::var_os("ANIM_RAFT_MODEL").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
        Some(data.join("anim/models/raft")).filter(|p| p.is_dir())
    }

    /// The CLIPSeg export that `<words>` masks use: `[mask] clipseg`, else the folder in
    /// `ANIM_CLIPSEG_MODEL`, else `~/.local/share/anim/models/clipseg` (`$XDG_DATA_HOME`
    /// honoured) if it exists; `None` when there is none (a word mask then says where to put one).
    pub fn clipseg_model(&self) -> Option<PathBuf> {
        if let Some(p) = &self.mask.clipseg {
            return Some(self.resolve(p));
        }
        if let Some(p) = std::env::var_os("ANIM_CLIPSEG_MODEL").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
        Some(data.join("anim/models/clipseg")).filter(|p| p.is_dir())
    }

    /// Resolves a path from the scene against the scene file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// Makes every path the scene names absolute, resolved as [`Scene::resolve`] resolves it (the
    /// init and colour images, the input and hybrid videos, the mask file, mask video and CLIPSeg
    /// model, the model, RAFT, depth, ControlNet and post-pass models, the motion script and
    /// preset folders, the soundtrack and `[audio]` file, the output folder, a plain checkpoint
    /// value), so the
    /// scene can be written into another folder and mean the same. Paths inside a mask
    /// expression or Deforum's `init_images` text are left as written.
    ///
    /// # Errors
    /// A keyframed checkpoint schedule that names a relative folder (its text is not rewritten:
    /// write the folders as absolute paths), or a schedule that does not evaluate.
    pub fn absolutize_paths(&mut self) -> Result<(), SceneError> {
        let base = std::path::absolute(self.path.parent().unwrap_or(Path::new("")))
            .unwrap_or_else(|_| self.path.parent().unwrap_or(Path::new(".")).to_path_buf());
        // a URL (Deforum's default inputs are) stays as written: it is refused where it is used
        let abs = |p: &mut PathBuf| {
            if p.is_relative() && !p.to_string_lossy().contains("://") {
                *p = base.join(&*p);
            }
        };
        let checkpoint = match &self.generation.checkpoint {
            ScheduleText::Text(t) if crate::schedule::StringSchedule::is_keyframed(t) => {
                let sched = self.frame_schedules().map_err(|message| SceneError {
                    file: self.path.clone(),
                    message,
                })?;
                let relative = (0..sched.frames())
                    .map(|i| sched.at(i).checkpoint.trim().to_string())
                    .find(|c| !c.is_empty() && Path::new(c).is_relative());
                if let Some(c) = relative {
                    return Err(SceneError {
                        file: self.path.clone(),
                        message: format!(
                            "[generation] checkpoint names the relative folder `{c}` in a keyframe \
                             string, which cannot be moved with the scene; write it as an absolute path"
                        ),
                    });
                }
                None
            }
            ScheduleText::Text(t) if !t.trim().is_empty() => Some(ScheduleText::Text(
                base.join(t.trim()).display().to_string(),
            )),
            _ => None,
        };
        if let Some(c) = checkpoint {
            self.generation.checkpoint = c;
        }
        for p in [
            &mut self.init.image,
            &mut self.motion.script,
            &mut self.coherence.color_coherence_image_path,
            &mut self.depth.model,
            &mut self.video_input.video_init_path,
            &mut self.model.folder,
            &mut self.model.raft,
            &mut self.output.folder,
            &mut self.output.soundtrack,
            &mut self.mask.mask_file,
            &mut self.mask.video_mask_path,
            &mut self.mask.clipseg,
            &mut self.hybrid.video_init_path,
            &mut self.post.frame_interpolation_model,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
        self.motion.preset_dirs.iter_mut().for_each(abs);
        if self.post.r_upscale_video {
            let model = crate::post::model_path(self, &self.post.r_upscale_model);
            self.post.r_upscale_model = std::path::absolute(&model)
                .unwrap_or(model)
                .display()
                .to_string();
        }
        if let Some(m) = &mut self.parseq.manifest
            && !m.trim_start().starts_with('{')
            && !parseq::is_url(m)
            && Path::new(m.trim()).is_relative()
        {
            *m = base.join(m.trim()).display().to_string();
        }
        if let Some(a) = &mut self.audio {
            abs(&mut a.file);
        }
        for u in &mut self.controlnet {
            [
                &mut u.model,
                &mut u.input,
                &mut u.pose_detector,
                &mut u.pose_estimator,
            ]
            .into_iter()
            .flatten()
            .for_each(abs);
        }
        Ok(())
    }

    /// [`Scene::output_folder`], checked to stay in the scene's lane: a scene's `[output] folder`
    /// is relative, does not climb out of the scene's folder with `..`, and no symbolic link on
    /// its way leads out of it. (`--out DIR`, the user's explicit choice, is not checked.)
    ///
    /// # Errors
    /// An absolute folder, one that climbs out of the scene's folder, or one that a symbolic link
    /// leads out of, with how to write there on purpose.
    pub fn checked_output_folder(&self) -> Result<PathBuf, SceneError> {
        use std::path::Component;
        let full = self.output_folder();
        let base = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let written = self
            .output
            .folder
            .as_ref()
            .map(|f| format!("[output] folder = \"{}\"", f.display()))
            .unwrap_or_else(|| format!("the default output folder {}", full.display()));
        let err = |why: String| SceneError {
            file: self.path.clone(),
            message: format!(
                "{written}: {why}; a scene file writes only below its own folder ({}): pass \
                 --out {} to write there on purpose",
                base.display(),
                full.display()
            ),
        };
        let mut depth = 0usize;
        for c in self.output.folder.iter().flat_map(|f| f.components()) {
            match c {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir if depth > 0 => depth -= 1,
                Component::ParentDir => {
                    return Err(err("it climbs out of the scene's folder with `..`".into()));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(err("it is an absolute path".into()));
                }
            }
        }
        // the deepest part that exists, with its symbolic links resolved, is inside the scene's
        // (resolved) folder
        let resolved = |p: &Path| {
            std::fs::canonicalize(p)
                .map_err(|e| err(format!("cannot resolve {}: {e}", p.display())))
        };
        let root = resolved(base)?;
        let mut existing = full.clone();
        while existing.symlink_metadata().is_err() && existing.pop() {}
        if existing.as_os_str().is_empty() {
            existing = PathBuf::from(".");
        }
        let inside = resolved(&existing)?;
        if !inside.starts_with(&root) {
            return Err(err(format!(
                "{} leads to {} through a symbolic link",
                existing.display(),
                inside.display()
            )));
        }
        Ok(full)
    }

    /// The output folder: `[output] folder`, or `output/<scene name>` beside the scene.
    pub fn output_folder(&self) -> PathBuf {
        match &self.output.folder {
            Some(f) => self.resolve(f),
            None => {
                let stem = self
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                self.resolve(&Path::new("output").join(stem.unwrap_or_else(|| "scene".into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_resolve_as_the_scene_file_does() {
        let text = "[init]\nimage = \"a/start.png\"\n[model]\nfolder = \"/abs/model\"\n\
                    [motion]\npreset_dirs = [\"presets\"]\n[generation]\ncheckpoint = \"models/b\"\n";
        let mut s = Scene::from_toml(text, Path::new("/scenes/s.toml")).unwrap();
        s.absolutize_paths().unwrap();
        assert_eq!(
            s.init.image.as_deref(),
            Some(Path::new("/scenes/a/start.png"))
        );
        assert_eq!(s.model.folder.as_deref(), Some(Path::new("/abs/model")));
        assert_eq!(s.motion.preset_dirs, [PathBuf::from("/scenes/presets")]);
        assert_eq!(
            s.generation.checkpoint,
            ScheduleText::text("/scenes/models/b")
        );
        // a keyframed checkpoint schedule is not rewritten: relative folders are refused
        let keyed = "[generation]\ncheckpoint = \"0: (models/a), 5: (/abs/b)\"\n";
        let mut s = Scene::from_toml(keyed, Path::new("/scenes/k.toml")).unwrap();
        let err = s.absolutize_paths().unwrap_err().to_string();
        assert!(
            err.contains("`models/a`") && err.contains("absolute"),
            "{err}"
        );
    }

    #[test]
    fn bad_schedules_give_clear_errors() {
        let cases: &[(&str, &[&str])] = &[
            ("0:(1+sin(t)", &["[motion] zoom", "never closed"]),
            (
                "0:(1), 10:(1+sinn(t))",
                &[
                    "[motion] zoom",
                    "key 10",
                    "unknown function `sinn`",
                    "did you mean `sin`",
                    "column 14",
                ],
            ),
            ("0:(1+tt)", &["unknown variable `tt`", "variables here"]),
            ("0:()", &["[motion] zoom", "empty value"]),
            ("0:", &["[motion] zoom", "empty value"]),
            ("", &["[motion] zoom", "empty schedule"]),
            (
                "0:(1/0)",
                &["[motion] zoom", "frame 0", "not a finite number"],
            ),
            ("0:(sqrt(-1-t))", &["[motion] zoom", "frame 0", "NaN"]),
            ("0:(1) 5:(2)", &["[motion] zoom", "column"]),
            ("0:(1),,5:(2)", &["[motion] zoom", "stray comma"]),
            ("x:(1)", &["[motion] zoom", "key `x`"]),
        ];
        for (sched, needles) in cases {
            let text = format!("[motion]\nzoom = \"{sched}\"\n");
            let e = parse(&text).expect_err(sched).to_string();
            for n in *needles {
                assert!(e.contains(n), "schedule {sched:?}: error lacks {n:?}: {e}");
            }
        }
    }

    #[test]
    fn empty_files_are_errors_not_defaults() {
        for text in ["", "  \n\t\n", "# only\n# comments\n"] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("no settings"), "{text:?}: {e}");
        }
        for text in ["{}", " {\n }\n"] {
            let e = deforum::from_settings(text, Path::new("s.json"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("s.json") && e.contains("no settings"), "{e}");
        }
    }

    #[test]
    fn unimplemented_samplers_take_their_fallback_only_when_allowed() {
        let text = "[animation]\nmax_frames = 4\n[generation]\nseed = 1\n\
                    sampler = \"0: (Euler), 2: (DPM++ SDE Karras)\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("DPM++ SDE Karras") && e.contains("--allow-unsupported"),
            "{e}"
        );
        let allow = ReadOptions {
            allow_unsupported: true,
        };
        let s = Scene::from_toml_with(text, Path::new("scene.toml"), allow).unwrap();
        let f = s.frame_schedules().unwrap();
        let samplers: Vec<&str> = (0..4).map(|i| f.at(i).sampler).collect();
        assert_eq!(
            samplers,
            ["Euler", "Euler", "DPM++ 2M Karras", "DPM++ 2M Karras"]
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("DPM++ SDE Karras")
                && w.contains("frame 2")
                && w.contains("DPM++ 2M Karras")),
            "{:?}",
            s.warnings
        );
    }

    pub(super) fn parse(s: &str) -> Result<Scene, SceneError> {
        Scene::from_toml(s, Path::new("scene.toml"))
    }

    #[test]
    fn schedules_are_evaluated_once_while_the_scene_is_unchanged() {
        let mut s =
            parse("[generation]\nseed = 7\n[animation]\nmax_frames = 6\n[motion]\nzoom = \"0:(1+t/10)\"\n").unwrap();
        let a = s.frame_schedules().unwrap();
        assert!(
            Arc::ptr_eq(&a, &s.frame_schedules().unwrap()),
            "read once, reused"
        );
        assert!(Arc::ptr_eq(&a, &s.clone().frame_schedules().unwrap()));
        s.motion.zoom = ScheduleText::text("0:(2)");
        let b = s.frame_schedules().unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "a changed scene is evaluated anew");
        assert_eq!((a.at(3).zoom, b.at(3).zoom), (1.3, 2.0));
    }
}
