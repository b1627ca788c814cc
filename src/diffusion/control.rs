//! ControlNet inside the denoising loop: ONNX ControlNet models and how their residuals reach
//! the UNet.
//!
//! Two ONNX conventions, told apart by the models' inputs:
//! - **separate**: a ControlNet returning `down_block_{i}_additional_residual` …
//!   `mid_block_additional_residual` (Olive/OnnxStack names; `down_block_additional_residuals.{i}`
//!   and `down_block_{i}` are read too), and a UNet taking inputs of the same names;
//! - **merged**: diffusers' conversion script's UNet with the ControlNets inside
//!   (`controlnet_conds` `[n, batch, 3, H, W]`, `conditioning_scales` `[n, 1]`).
//!
//! Each separate ControlNet runs with conditioning scale 1; the unit's scale, its guidance window
//! and its control mode are applied here, residual by residual and batch row by batch row. That
//! is exact (the scale is the model's last multiplication), it covers diffusers' semantics and
//! A1111's control modes with one code path, and a unit outside its window costs nothing. The
//! residuals of all units are summed as diffusers' `MultiControlNetModel` sums them, into
//! buffers made once per generation.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Result, anyhow, bail};
use half::f16;
use image::RgbImage;
use ort::session::SessionInputValue;
use ort::value::{DynTensor, Tensor, TensorElementType};

use super::session::{Model, SessionOptions, float_tensor};

/// Most units a scene may have (Deforum's 5).
pub const MAX_UNITS: usize = 5;

/// How a unit's residuals are weighted against the prompt (A1111's ControlNet extension's
/// `control_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ControlMode {
    /// Every residual times the weight.
    #[default]
    #[serde(rename = "Balanced")]
    Balanced,
    /// Residual `k` times `weight · 0.825^(12 − k)` (the mid block's is the last), on both
    /// halves of the guidance batch.
    #[serde(rename = "My prompt is more important")]
    PromptImportant,
    /// The same soft weights, and the residuals zeroed on the unconditional rows.
    #[serde(rename = "ControlNet is more important")]
    ControlNetImportant,
}

impl ControlMode {
    /// The names a scene may use, A1111's first.
    pub const NAMES: [&'static str; 3] = [
        "Balanced",
        "My prompt is more important",
        "ControlNet is more important",
    ];

    /// The factor of residual `k` (0-based, down residuals first, mid last), times the weight.
    /// A1111 computes 13 soft scales `0.825^(12 − k)` and uses as many as the model has (so
    /// SDXL's mid residual, its 10th, gets `0.825³`).
    pub fn residual_factor(self, k: usize) -> f64 {
        match self {
            ControlMode::Balanced => 1.0,
            _ => 0.825f64.powi(12i32.saturating_sub(k.min(12) as i32)),
        }
    }

    /// Whether the unconditional rows get no residuals.
    pub fn zeroes_uncond(self) -> bool {
        self == ControlMode::ControlNetImportant
    }
}

impl FromStr for ControlMode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "balanced" | "0" => ControlMode::Balanced,
            "my prompt is more important" | "prompt" | "1" => ControlMode::PromptImportant,
            "controlnet is more important" | "controlnet" | "2" => ControlMode::ControlNetImportant,
            _ => bail!(
                "unknown control mode {s:?}; expected one of {} (or balanced, prompt, controlnet)",
                Self::NAMES
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

/// Which model calls of a generation a unit's guidance window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowRule {
    /// diffusers: call `i` of `N` runs unless `i/N < start` or `(i+1)/N > end`, `N` counting
    /// the calls actually run (img2img: after the strength cut; Heun: both calls of a step).
    #[default]
    Diffusers,
    /// A1111's extension (what Deforum drives): active iff `start ≤ s/T ≤ end`, where `s` is the
    /// sampling step the webui reports while the call runs (`max(step − 1, 0)`) and `T` is
    /// `steps` (txt2img) or `int(min(strength, 0.999)·steps) + 1` (img2img).
    A1111,
}

impl WindowRule {
    /// The names a scene may use.
    pub const NAMES: [&'static str; 2] = ["diffusers", "a1111"];
}

impl FromStr for WindowRule {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "diffusers" => Ok(WindowRule::Diffusers),
            "a1111" | "webui" | "deforum" => Ok(WindowRule::A1111),
            _ => bail!("unknown guidance window rule {s:?}; expected \"diffusers\" or \"a1111\""),
        }
    }
}

/// The shape of a generation's model calls, for the guidance windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallPlan {
    /// Model calls this generation runs.
    pub calls: usize,
    /// Model calls per sampler step (2 for Heun).
    pub order: usize,
    /// Steps of the full schedule.
    pub steps: usize,
    /// img2img strength (share repainted); `None` for txt2img.
    pub denoise: Option<f64>,
}

impl WindowRule {
    /// Whether a unit with window `start..=end` runs at model call `call` of `plan`.
    pub fn active(self, start: f64, end: f64, call: usize, plan: &CallPlan) -> bool {
        match self {
            WindowRule::Diffusers => {
                let n = plan.calls.max(1) as f64;
                let i = call as f64;
                !(i / n < start || (i + 1.0) / n > end)
            }
            WindowRule::A1111 => {
                let total = match plan.denoise {
                    Some(d) => (d.min(0.999) * plan.steps as f64) as usize + 1,
                    None => plan.steps,
                }
                .max(1);
                let step = call / plan.order.max(1);
                let s = step.saturating_sub(1) as f64 / total as f64;
                start <= s && s <= end
            }
        }
    }
}

/// One unit's conditioning for one generation.
#[derive(Debug, Clone)]
pub struct ControlUnit<'a> {
    /// Index of the unit's model in [`Control::nets`] (separate convention) or of its net inside
    /// a merged UNet.
    pub net: usize,
    /// The control map at the generation's size (RGB, read as `[0, 1]`).
    pub image: &'a RgbImage,
    /// Conditioning scale (the unit's weight at this frame).
    pub scale: f32,
    /// Guidance window start, as a share of the calls (0..=1).
    pub start: f64,
    /// Guidance window end.
    pub end: f64,
    /// Control mode.
    pub mode: ControlMode,
    /// How the window is read.
    pub window: WindowRule,
}

/// The ControlNet part of a generation: the loaded models and this generation's units.
pub struct Control<'a> {
    /// Separate-convention ControlNets (empty with a merged UNet).
    pub nets: &'a mut [ControlNet],
    /// The units, summed in this order.
    pub units: &'a [ControlUnit<'a>],
}

/// How ONNX Runtime wants a timestep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimestepInput {
    Int64Vec,
    Float32Vec,
    Float32Scalar,
}

impl TimestepInput {
    /// From a model's `timestep` input.
    pub(crate) fn of(model: &Model) -> Result<TimestepInput> {
        Ok(match model.input("timestep")? {
            (TensorElementType::Int64, _, _) => TimestepInput::Int64Vec,
            (TensorElementType::Float32, 0, _) => TimestepInput::Float32Scalar,
            (TensorElementType::Float32, _, _) => TimestepInput::Float32Vec,
            (t, _, _) => bail!(
                "{}: timestep is {t:?}; expected int64 or float32",
                model.path.display()
            ),
        })
    }

    /// Timestep `t` as this input wants it (int64 truncates, as numpy's `astype` does).
    pub(crate) fn tensor(self, t: f32) -> Result<DynTensor> {
        Ok(match self {
            TimestepInput::Int64Vec => Tensor::from_array((vec![1i64], vec![t as i64]))
                .map_err(|e| anyhow!("{e}"))?
                .upcast(),
            TimestepInput::Float32Vec => Tensor::from_array((vec![1i64], vec![t]))
                .map_err(|e| anyhow!("{e}"))?
                .upcast(),
            TimestepInput::Float32Scalar => Tensor::from_array(((), vec![t]))
                .map_err(|e| anyhow!("{e}"))?
                .upcast(),
        })
    }
}

/// The residual names of a model's inputs or outputs, in UNet order (down residuals by index,
/// the mid residual last), or `None` when there are none.
fn residual_order(names: &[&str], what: &str, path: &Path) -> Result<Option<Vec<String>>> {
    let mut down: Vec<(usize, String)> = Vec::new();
    let mut mid = None;
    for &n in names {
        if n.contains("mid_block") {
            mid = Some(n.to_string());
        } else if n.contains("down_block") {
            let digits: String = n
                .chars()
                .rev()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let k: usize = digits.parse().map_err(|_| {
                anyhow!(
                    "{}: {what} `{n}` names a down-block residual without an index",
                    path.display()
                )
            })?;
            down.push((k, n.to_string()));
        }
    }
    if down.is_empty() && mid.is_none() {
        return Ok(None);
    }
    down.sort();
    let found = || {
        names
            .iter()
            .filter(|n| n.contains("_block"))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    if down.iter().enumerate().any(|(i, (k, _))| i != *k) {
        bail!(
            "{}: the down-block residual {what}s are not numbered 0, 1, 2, …: found {}",
            path.display(),
            found()
        );
    }
    let Some(mid) = mid else {
        bail!(
            "{}: there are down-block residual {what}s but no mid-block one (mid_block_additional_residual): found {}",
            path.display(),
            found()
        );
    };
    let mut out: Vec<String> = down.into_iter().map(|(_, n)| n).collect();
    out.push(mid);
    Ok(Some(out))
}

/// The residual layout of a UNet encoder from a diffusers `config.json`: channels per level and
/// resnets per level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    channels: Vec<usize>,
    layers: usize,
}

impl Layout {
    /// From `config.json` beside a model file, when it has `block_out_channels` and
    /// `layers_per_block`.
    pub(crate) fn read(dir: &Path) -> Option<Layout> {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).ok()?).ok()?;
        let channels: Vec<usize> = v["block_out_channels"]
            .as_array()?
            .iter()
            .map(|c| c.as_u64().map(|c| c as usize))
            .collect::<Option<_>>()?;
        let layers = v["layers_per_block"].as_u64()? as usize;
        ((1..=8).contains(&channels.len()) && (1..=8).contains(&layers))
            .then_some(Layout { channels, layers })
    }

    /// `[channels, height, width]` of each residual (down residuals, then mid) for `h`x`w`
    /// latents: `conv_in`, then per level its resnets and (but the last level) a downsampler.
    pub(crate) fn shapes(&self, h: usize, w: usize) -> Vec<[usize; 3]> {
        let mut out = vec![[self.channels[0], h, w]];
        let (mut h, mut w) = (h, w);
        for (l, &c) in self.channels.iter().enumerate() {
            for _ in 0..self.layers {
                out.push([c, h, w]);
            }
            if l + 1 < self.channels.len() {
                h = h.div_ceil(2);
                w = w.div_ceil(2);
                out.push([c, h, w]);
            }
        }
        out.push([*self.channels.last().expect("1..=8 levels"), h, w]);
        out
    }
}

/// A separate ControlNet ONNX model (`model.onnx` and its diffusers `config.json`).
pub struct ControlNet {
    model: Model,
    folder: PathBuf,
    /// Residual outputs in UNet order.
    residuals: Vec<String>,
    sample_f16: bool,
    hidden_f16: bool,
    cond_f16: bool,
    /// `conditioning_scale` input: float16, and its rank; `None` when the export has none.
    scale: Option<(bool, usize)>,
    timestep: TimestepInput,
    /// SDXL's `text_embeds` and `time_ids` inputs (their float16 flags).
    sdxl: Option<(bool, bool)>,
    /// `controlnet_conditioning_channel_order == "bgr"`.
    bgr: bool,
    layout: Option<Layout>,
}

impl ControlNet {
    /// Loads `folder/model.onnx` and reads its IO: `sample`, `timestep`,
    /// `encoder_hidden_states`, `controlnet_cond`, optionally `conditioning_scale` (fed 1) and
    /// SDXL's `text_embeds` and `time_ids`; residual outputs.
    ///
    /// # Errors
    /// A missing folder or file, or a model that is not a ControlNet (the message lists the
    /// inputs and outputs expected and found).
    pub fn load(folder: &Path, opts: &SessionOptions) -> Result<ControlNet> {
        if !folder.is_dir() {
            bail!(
                "ControlNet folder {} does not exist (it should hold a ControlNet ONNX export: model.onnx and config.json)",
                folder.display()
            );
        }
        let mut notes = Vec::new();
        let file = folder.join("model.onnx");
        if !file.is_file() {
            bail!(
                "model file {} is missing; a ControlNet folder holds its ONNX export as model.onnx, with its \
                 diffusers config.json (README: \"ControlNet\")",
                file.display()
            );
        }
        let model = Model::load_file(&file, opts, &mut notes)?;
        let path = model.path.clone();
        let inputs = model.input_names();
        let need = [
            "sample",
            "timestep",
            "encoder_hidden_states",
            "controlnet_cond",
        ];
        let outputs: Vec<&str> = model.session.outputs().iter().map(|o| o.name()).collect();
        let residuals = residual_order(&outputs, "output", &path)?;
        let missing: Vec<&str> = need
            .iter()
            .copied()
            .filter(|n| !inputs.contains(n))
            .collect();
        let Some(residuals) = residuals.filter(|_| missing.is_empty()) else {
            bail!(
                "{}: not a ControlNet export: expected inputs {} (optionally conditioning_scale, and text_embeds, \
                 time_ids for SDXL) and outputs down_block_{{i}}_additional_residual … mid_block_additional_residual; \
                 found inputs {} and outputs {}",
                path.display(),
                need.join(", "),
                inputs.join(", "),
                outputs.join(", ")
            );
        };
        let scale = if model.has_input("conditioning_scale") {
            let (_, rank, _) = model.input("conditioning_scale")?;
            Some((model.input_is_f16("conditioning_scale")?, rank))
        } else {
            None
        };
        let sdxl = match (model.has_input("text_embeds"), model.has_input("time_ids")) {
            (true, true) => Some((
                model.input_is_f16("text_embeds")?,
                model.input_is_f16("time_ids")?,
            )),
            (false, false) => None,
            _ => bail!(
                "{}: an SDXL ControlNet takes both text_embeds and time_ids; found inputs {}",
                path.display(),
                inputs.join(", ")
            ),
        };
        let config: Option<serde_json::Value> = std::fs::read_to_string(folder.join("config.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let bgr = config
            .as_ref()
            .and_then(|c| c["controlnet_conditioning_channel_order"].as_str())
            == Some("bgr");
        Ok(ControlNet {
            folder: folder.to_path_buf(),
            sample_f16: model.input_is_f16("sample")?,
            hidden_f16: model.input_is_f16("encoder_hidden_states")?,
            cond_f16: model.input_is_f16("controlnet_cond")?,
            timestep: TimestepInput::of(&model)?,
            scale,
            sdxl,
            bgr,
            layout: Layout::read(folder),
            residuals,
            model,
        })
    }

    /// The folder it was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Number of residuals (down residuals plus the mid residual).
    pub fn residual_count(&self) -> usize {
        self.residuals.len()
    }

    /// Whether it is an SDXL ControlNet (takes `text_embeds` and `time_ids`).
    pub fn is_sdxl(&self) -> bool {
        self.sdxl.is_some()
    }

    /// The provider its session runs on.
    pub fn provider(&self) -> &'static str {
        self.model.provider
    }

    /// Time its session has spent running.
    pub fn busy(&self) -> std::time::Duration {
        self.model.busy
    }

    /// Static channel counts of its residual outputs (`None` for a dynamic axis).
    fn output_channels(&self) -> Vec<Option<usize>> {
        self.residuals
            .iter()
            .map(|n| {
                self.model
                    .session
                    .outputs()
                    .iter()
                    .find(|o| o.name() == n)
                    .and_then(|o| match o.dtype() {
                        ort::value::ValueType::Tensor { shape, .. } => shape.get(1).copied(),
                        _ => None,
                    })
                    .filter(|&c| c > 0)
                    .map(|c| c as usize)
            })
            .collect()
    }
}

/// How the loaded UNet takes ControlNet conditioning.
pub(crate) enum UnetControl {
    /// A plain UNet.
    None,
    /// Residual inputs (names in UNet order), their float16 flag, static channel counts and
    /// the encoder layout from `config.json`.
    Residuals {
        names: Vec<String>,
        f16: bool,
        channels: Vec<Option<usize>>,
        layout: Option<Layout>,
    },
    /// ControlNets merged in: how many, and the inputs' float16 flags and the scales' rank.
    Merged {
        nets: usize,
        conds_f16: bool,
        scales_f16: bool,
        scales_rank: usize,
    },
}

impl UnetControl {
    /// From a loaded UNet's inputs.
    pub(crate) fn of(unet: &Model) -> Result<UnetControl> {
        let inputs = unet.input_names();
        if unet.has_input("controlnet_conds") || unet.has_input("conditioning_scales") {
            let dims = unet.input_dims("controlnet_conds")?;
            let nets = match dims.first() {
                Some(&n) if n > 0 => n as usize,
                _ => bail!(
                    "{}: controlnet_conds has shape {dims:?}; a merged ControlNet UNet fixes its first axis (the number of ControlNets)",
                    unet.path.display()
                ),
            };
            let (_, scales_rank, _) = unet.input("conditioning_scales")?;
            return Ok(UnetControl::Merged {
                nets,
                conds_f16: unet.input_is_f16("controlnet_conds")?,
                scales_f16: unet.input_is_f16("conditioning_scales")?,
                scales_rank,
            });
        }
        let Some(names) = residual_order(&inputs, "input", &unet.path)? else {
            return Ok(UnetControl::None);
        };
        let f16 = unet.input_is_f16(&names[0])?;
        let channels = names
            .iter()
            .map(|n| {
                unet.input_dims(n)
                    .ok()
                    .and_then(|d| d.get(1).copied())
                    .filter(|&c| c > 0)
                    .map(|c| c as usize)
            })
            .collect();
        let layout = unet.path.parent().and_then(Layout::read);
        Ok(UnetControl::Residuals {
            names,
            f16,
            channels,
            layout,
        })
    }

    /// Whether the UNet takes ControlNet conditioning at all.
    pub(crate) fn takes_control(&self) -> bool {
        !matches!(self, UnetControl::None)
    }

    /// A one-line description for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            UnetControl::None => "no ControlNet inputs".into(),
            UnetControl::Residuals { names, .. } => {
                format!("{} residual inputs ({} …)", names.len(), names[0])
            }
            UnetControl::Merged { nets, .. } => {
                format!("{nets} ControlNet(s) merged in (controlnet_conds, conditioning_scales)")
            }
        }
    }

    /// Whether `net` can feed this UNet: the same number of residuals, the same channels where
    /// both models state them, and the same encoder layout where both configs give it.
    ///
    /// # Errors
    /// A mismatch, with what the UNet expects and what the ControlNet gives.
    pub(crate) fn check_net(&self, net: &ControlNet, unet_path: &Path) -> Result<()> {
        let UnetControl::Residuals {
            names,
            channels,
            layout,
            ..
        } = self
        else {
            bail!(
                "{}: takes {}; a separate ControlNet ({}) needs a UNet with residual inputs \
                 (down_block_{{i}}_additional_residual, mid_block_additional_residual)",
                unet_path.display(),
                self.describe(),
                net.folder.display()
            );
        };
        let show = |c: &[Option<usize>]| {
            c.iter()
                .map(|c| c.map_or("?".to_string(), |c| c.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let theirs = net.output_channels();
        let channels_differ = theirs.len() != channels.len()
            || theirs
                .iter()
                .zip(channels)
                .any(|(a, b)| matches!((a, b), (Some(a), Some(b)) if a != b));
        if names.len() != net.residuals.len() || channels_differ {
            bail!(
                "ControlNet {} does not fit the UNet {}: the UNet expects {} residuals with channels [{}], \
                 the ControlNet gives {} with channels [{}] (a ControlNet must be made for the same base \
                 model: SD 1.x, SD 2.x or SDXL)",
                net.model.path.display(),
                unet_path.display(),
                names.len(),
                show(channels),
                net.residuals.len(),
                show(&theirs)
            );
        }
        if let (Some(a), Some(b)) = (layout, &net.layout)
            && a != b
        {
            bail!(
                "ControlNet {} does not fit the UNet {}: the UNet's config.json has block_out_channels {:?} and \
                 layers_per_block {}, the ControlNet's {:?} and {}",
                net.model.path.display(),
                unet_path.display(),
                a.channels,
                a.layers,
                b.channels,
                b.layers
            );
        }
        Ok(())
    }
}

/// A float tensor's values as a mutable float32 slice, or (float16) through a float32 scratch.
enum Buffer {
    F32(DynTensor),
    F16(DynTensor, Vec<f32>),
}

impl Buffer {
    fn zeros(shape: Vec<i64>, half: bool) -> Result<Buffer> {
        let n: i64 = shape.iter().product();
        let n = usize::try_from(n).map_err(|_| anyhow!("negative residual shape {shape:?}"))?;
        let t = float_tensor(shape, &vec![0.0; n], half)?;
        Ok(if half {
            Buffer::F16(t, vec![0.0; n])
        } else {
            Buffer::F32(t)
        })
    }

    /// The float32 values to accumulate into.
    fn values(&mut self) -> Result<&mut [f32]> {
        match self {
            Buffer::F32(t) => Ok(t
                .try_extract_tensor_mut::<f32>()
                .map_err(|e| anyhow!("{e}"))?
                .1),
            Buffer::F16(_, v) => Ok(v),
        }
    }

    /// Makes the tensor hold the accumulated values (float16: converted from the scratch).
    fn finish(&mut self) -> Result<&DynTensor> {
        if let Buffer::F16(t, v) = self {
            let dst = t
                .try_extract_tensor_mut::<f16>()
                .map_err(|e| anyhow!("{e}"))?
                .1;
            for (d, s) in dst.iter_mut().zip(v.iter()) {
                *d = f16::from_f32(*s);
            }
        }
        Ok(match self {
            Buffer::F32(t) | Buffer::F16(t, _) => t,
        })
    }
}

/// A control map as `controlnet_cond` data: `[3, H, W]` in `[0, 1]` (`x / 255` in float32, as
/// diffusers' `pil_to_numpy`), channels reversed for a BGR model.
fn cond_data(img: &RgbImage, bgr: bool) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            let dst = if bgr { 2 - c } else { c };
            out[dst * plane + i] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// Hidden states and SDXL's added conditioning, in a ControlNet's float type.
type NetConditioning = (DynTensor, Option<(DynTensor, DynTensor)>);

/// One UNet call's share of the ControlNet work: its batch rows, and per unit the control map
/// tensor for those rows (separate convention) or the merged UNet's inputs.
pub(crate) struct CallControl {
    first: usize,
    len: usize,
    /// Separate convention: `controlnet_cond` per unit (`None` for merged).
    conds: Vec<DynTensor>,
    /// Residual sums fed to the UNet.
    sums: Vec<Buffer>,
    /// Per unit: hidden states, SDXL's added conditioning in the ControlNet's float type, when
    /// they differ from the UNet's.
    hidden: Vec<Option<NetConditioning>>,
    /// Merged convention: `controlnet_conds` and `conditioning_scales`.
    merged: Option<(DynTensor, DynTensor)>,
    /// Whether the sums hold residuals of an earlier model call (else they are zeros).
    dirty: bool,
}

/// The ControlNet state of one generation: per UNet call its tensors, made once and refilled at
/// every model call.
pub(crate) struct StepControl<'c, 'a> {
    control: Option<&'c mut Control<'a>>,
    calls: Vec<CallControl>,
    plan: CallPlan,
    /// Rows `0..uncond_rows` of the batch are the unconditional ones.
    uncond_rows: usize,
    /// UNet residual input names (separate convention).
    names: Vec<String>,
    /// Merged convention: the number of nets.
    merged_nets: usize,
    merged_scales_f16: bool,
    /// Latent `[c, h, w]` and the UNet's float type (for ControlNets whose type differs).
    lat_shape: [usize; 3],
    unet_f16: bool,
}

/// The conditioning tensors of one UNet call, as the pipeline built them.
pub(crate) struct CallInputs<'t> {
    pub first: usize,
    pub len: usize,
    pub hidden: &'t DynTensor,
    /// Hidden states as float32 values (for ControlNets whose float type differs).
    pub hidden_values: &'t [f32],
    pub hidden_shape: &'t [i64],
    pub added: Option<&'t (DynTensor, DynTensor)>,
    pub added_values: Option<(&'t [f32], &'t [f32])>,
}

impl<'c, 'a> StepControl<'c, 'a> {
    /// Prepares a generation's ControlNet tensors for the UNet calls `calls` of latents
    /// `[c, h, w]` (`h`, `w` in latent cells): control maps per call, residual sums (or the
    /// merged UNet's inputs). A UNet with ControlNet inputs and no `control` gets zeros.
    ///
    /// # Errors
    /// A control map of the wrong size, a unit naming a net that is not there, tensor failures.
    pub(crate) fn new(
        unet: &UnetControl,
        control: Option<&'c mut Control<'a>>,
        calls: &[CallInputs],
        lat_shape: [usize; 3],
        unet_f16: bool,
        plan: CallPlan,
        uncond_rows: usize,
    ) -> Result<StepControl<'c, 'a>> {
        let [_, lh, lw] = lat_shape;
        let units: &[ControlUnit] = control.as_ref().map_or(&[], |c| c.units);
        for (u, unit) in units.iter().enumerate() {
            if unit.image.dimensions() != (lw as u32 * 8, lh as u32 * 8) {
                bail!(
                    "ControlNet unit {}: control map is {}x{}, the frame is {}x{}",
                    u + 1,
                    unit.image.width(),
                    unit.image.height(),
                    lw * 8,
                    lh * 8
                );
            }
        }
        let mut out = Vec::with_capacity(calls.len());
        let mut names = Vec::new();
        let (mut merged_nets, mut merged_scales_f16) = (0, false);
        match unet {
            UnetControl::None => {
                if !units.is_empty() {
                    bail!("the UNet takes no ControlNet inputs");
                }
            }
            UnetControl::Residuals {
                names: n,
                f16,
                layout,
                channels,
            } => {
                names = n.clone();
                let nets: &[ControlNet] = control.as_ref().map_or(&[], |c| &*c.nets);
                let shapes = match (layout, nets.first().and_then(|n| n.layout.clone())) {
                    (Some(l), _) => l.shapes(lh, lw),
                    (None, Some(l)) => l.shapes(lh, lw),
                    (None, None) => bail!(
                        "the ControlNet UNet's residual shapes are unknown: put the UNet's diffusers config.json \
                         (block_out_channels, layers_per_block) beside its model.onnx"
                    ),
                };
                if shapes.len() != names.len()
                    || shapes
                        .iter()
                        .zip(channels)
                        .any(|(s, c)| c.is_some_and(|c| c != s[0]))
                {
                    bail!(
                        "the UNet's config.json gives {} residuals, its model {}",
                        shapes.len(),
                        names.len()
                    );
                }
                for call in calls {
                    let mut conds = Vec::with_capacity(units.len());
                    let mut hidden = Vec::with_capacity(units.len());
                    for unit in units {
                        let net = nets.get(unit.net).ok_or_else(|| {
                            anyhow!("ControlNet unit names model {} of {}", unit.net, nets.len())
                        })?;
                        let one = cond_data(unit.image, net.bgr);
                        let data: Vec<f32> =
                            (0..call.len).flat_map(|_| one.iter().copied()).collect();
                        conds.push(float_tensor(
                            vec![call.len as i64, 3, lh as i64 * 8, lw as i64 * 8],
                            &data,
                            net.cond_f16,
                        )?);
                        let unet_hidden_f16 =
                            *call.hidden.data_type() == TensorElementType::Float16;
                        let own = if net.hidden_f16 == unet_hidden_f16 {
                            None
                        } else {
                            let added = match (call.added_values, net.sdxl) {
                                (Some((te, ti)), Some((te16, ti16))) => Some((
                                    float_tensor(
                                        vec![call.len as i64, (te.len() / call.len) as i64],
                                        te,
                                        te16,
                                    )?,
                                    float_tensor(
                                        vec![call.len as i64, (ti.len() / call.len) as i64],
                                        ti,
                                        ti16,
                                    )?,
                                )),
                                _ => None,
                            };
                            Some((
                                float_tensor(
                                    call.hidden_shape.to_vec(),
                                    call.hidden_values,
                                    net.hidden_f16,
                                )?,
                                added,
                            ))
                        };
                        hidden.push(own);
                    }
                    let sums = shapes
                        .iter()
                        .map(|s| {
                            Buffer::zeros(
                                vec![call.len as i64, s[0] as i64, s[1] as i64, s[2] as i64],
                                *f16,
                            )
                        })
                        .collect::<Result<Vec<_>>>()?;
                    out.push(CallControl {
                        first: call.first,
                        len: call.len,
                        conds,
                        sums,
                        hidden,
                        merged: None,
                        dirty: false,
                    });
                }
            }
            UnetControl::Merged {
                nets,
                conds_f16,
                scales_f16,
                scales_rank,
            } => {
                if units.len() > *nets {
                    bail!(
                        "{} ControlNet units, but the UNet has {nets} ControlNet(s) merged in",
                        units.len()
                    );
                }
                merged_nets = *nets;
                merged_scales_f16 = *scales_f16;
                let (h8, w8) = (lh * 8, lw * 8);
                for call in calls {
                    let plane = 3 * h8 * w8;
                    let mut data = vec![0.0f32; nets * call.len * plane];
                    for (u, unit) in units.iter().enumerate() {
                        let one = cond_data(unit.image, false);
                        for r in 0..call.len {
                            let at = (u * call.len + r) * plane;
                            data[at..at + plane].copy_from_slice(&one);
                        }
                    }
                    let conds = float_tensor(
                        vec![*nets as i64, call.len as i64, 3, h8 as i64, w8 as i64],
                        &data,
                        *conds_f16,
                    )?;
                    let scale_shape = if *scales_rank == 1 {
                        vec![*nets as i64]
                    } else {
                        vec![*nets as i64, 1]
                    };
                    let scales = float_tensor(scale_shape, &vec![0.0; *nets], *scales_f16)?;
                    out.push(CallControl {
                        first: call.first,
                        len: call.len,
                        conds: Vec::new(),
                        sums: Vec::new(),
                        hidden: Vec::new(),
                        merged: Some((conds, scales)),
                        dirty: false,
                    });
                }
            }
        }
        Ok(StepControl {
            control,
            calls: out,
            plan,
            uncond_rows,
            names,
            merged_nets,
            merged_scales_f16,
            lat_shape,
            unet_f16,
        })
    }

    /// Fills call `k`'s ControlNet inputs for model call `step` (running the units whose window
    /// covers it on `sample` at timestep `t`) and returns them as UNet inputs.
    ///
    /// # Errors
    /// ONNX Runtime failures, naming the ControlNet file; residual shapes that do not fit.
    pub(crate) fn inputs(
        &mut self,
        k: usize,
        step: usize,
        t: f32,
        latents: &[f32],
        unet_sample: &DynTensor,
        call: &CallInputs,
    ) -> Result<Vec<(Cow<'static, str>, &DynTensor)>> {
        let Some(cc) = self.calls.get_mut(k) else {
            // a plain UNet
            return Ok(Vec::new());
        };
        let units: &[ControlUnit] = self.control.as_ref().map_or(&[], |c| c.units);
        if let Some((conds, scales)) = &mut cc.merged {
            let mut values = vec![0.0f32; self.merged_nets];
            for (u, unit) in units.iter().enumerate() {
                if unit.window.active(unit.start, unit.end, step, &self.plan) {
                    values[u] = unit.scale;
                }
            }
            if self.merged_scales_f16 {
                let dst = scales
                    .try_extract_tensor_mut::<f16>()
                    .map_err(|e| anyhow!("{e}"))?
                    .1;
                for (d, s) in dst.iter_mut().zip(&values) {
                    *d = f16::from_f32(*s);
                }
            } else {
                scales
                    .try_extract_tensor_mut::<f32>()
                    .map_err(|e| anyhow!("{e}"))?
                    .1
                    .copy_from_slice(&values);
            }
            return Ok(vec![
                (Cow::Borrowed("controlnet_conds"), &*conds),
                (Cow::Borrowed("conditioning_scales"), &*scales),
            ]);
        }
        if cc.dirty {
            for s in &mut cc.sums {
                s.values()?.fill(0.0);
            }
            cc.dirty = false;
        }
        if let Some(control) = self.control.as_deref_mut() {
            let [c, h, w] = self.lat_shape;
            let n = c * h * w;
            let unet_f16 = self.unet_f16;
            for (u, unit) in control.units.iter().enumerate() {
                if unit.scale == 0.0 || !unit.window.active(unit.start, unit.end, step, &self.plan)
                {
                    continue;
                }
                let net = &mut control.nets[unit.net];
                let own_sample;
                let sample = if net.sample_f16 == unet_f16 {
                    unet_sample
                } else {
                    own_sample = float_tensor(
                        vec![cc.len as i64, c as i64, h as i64, w as i64],
                        &latents[cc.first * n..(cc.first + cc.len) * n],
                        net.sample_f16,
                    )?;
                    &own_sample
                };
                let ts = net.timestep.tensor(t)?;
                let (hidden, added) = match &cc.hidden[u] {
                    Some((hd, ad)) => (hd, ad.as_ref()),
                    None => (call.hidden, call.added),
                };
                let mut inputs: Vec<(Cow<'static, str>, SessionInputValue)> = vec![
                    (Cow::Borrowed("sample"), sample.into()),
                    (Cow::Borrowed("timestep"), (&ts).into()),
                    (Cow::Borrowed("encoder_hidden_states"), hidden.into()),
                    (Cow::Borrowed("controlnet_cond"), (&cc.conds[u]).into()),
                ];
                let scale_one;
                if let Some((half, rank)) = net.scale {
                    let shape = if rank == 0 { vec![] } else { vec![1i64; rank] };
                    scale_one = float_tensor(shape, &[1.0], half)?;
                    inputs.push((Cow::Borrowed("conditioning_scale"), (&scale_one).into()));
                }
                if net.sdxl.is_some() {
                    let (te, ti) = added.ok_or_else(|| {
                        anyhow!(
                            "{}: an SDXL ControlNet needs an SDXL model",
                            net.model.path.display()
                        )
                    })?;
                    inputs.push((Cow::Borrowed("text_embeds"), te.into()));
                    inputs.push((Cow::Borrowed("time_ids"), ti.into()));
                }
                let rows = cc.len;
                let uncond = self.uncond_rows.saturating_sub(cc.first).min(rows);
                let mode = unit.mode;
                let scale = unit.scale;
                cc.dirty = true;
                let sums = &mut cc.sums;
                let path = net.model.path.clone();
                net.model
                    .run_each(inputs, &net.residuals, |r, shape, data| {
                        let dst = sums[r].values()?;
                        if data.len() != dst.len() {
                            bail!(
                                "{}: residual {r} has shape {shape:?}, the UNet takes {} values",
                                path.display(),
                                dst.len()
                            );
                        }
                        let f = (scale as f64 * mode.residual_factor(r)) as f32;
                        let per_row = dst.len() / rows;
                        let from = if mode.zeroes_uncond() { uncond } else { 0 };
                        for row in from..rows {
                            let span = row * per_row..(row + 1) * per_row;
                            for (d, x) in dst[span.clone()].iter_mut().zip(&data[span]) {
                                *d += x * f;
                            }
                        }
                        Ok(())
                    })?;
            }
        }
        let mut out = Vec::with_capacity(self.names.len());
        for (name, buf) in self.names.iter().zip(cc.sums.iter_mut()) {
            out.push((Cow::Owned(name.clone()), buf.finish()?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(calls: usize, steps: usize, denoise: Option<f64>) -> CallPlan {
        CallPlan {
            calls,
            order: 1,
            steps,
            denoise,
        }
    }

    #[test]
    fn windows_follow_each_rule_on_the_research_example() {
        // steps 25, strength 0.65: 16 calls; diffusers end 0.5 -> calls 0..=7, A1111 (T = 17) 0..=9
        let p = plan(16, 25, Some(0.65));
        let on = |rule: WindowRule, s: f64, e: f64| -> Vec<usize> {
            (0..16).filter(|&i| rule.active(s, e, i, &p)).collect()
        };
        assert_eq!(
            on(WindowRule::Diffusers, 0.0, 0.5),
            (0..=7).collect::<Vec<_>>()
        );
        assert_eq!(on(WindowRule::A1111, 0.0, 0.5), (0..=9).collect::<Vec<_>>());
        assert_eq!(
            on(WindowRule::Diffusers, 0.2, 1.0),
            (4..=15).collect::<Vec<_>>()
        );
        assert_eq!(
            on(WindowRule::A1111, 0.2, 1.0),
            (5..=15).collect::<Vec<_>>()
        );
    }

    #[test]
    fn soft_weights_are_a1111s() {
        let m = ControlMode::PromptImportant;
        assert_eq!(m.residual_factor(12), 1.0);
        assert!((m.residual_factor(0) - 0.0994).abs() < 1e-4);
        assert!((m.residual_factor(9) - 0.5615).abs() < 1e-4);
        assert_eq!(ControlMode::Balanced.residual_factor(3), 1.0);
        assert!(ControlMode::ControlNetImportant.zeroes_uncond());
    }

    #[test]
    fn modes_parse_by_name_and_alias() {
        for (s, m) in [
            ("Balanced", ControlMode::Balanced),
            ("my prompt is more important", ControlMode::PromptImportant),
            ("controlnet", ControlMode::ControlNetImportant),
        ] {
            assert_eq!(s.parse::<ControlMode>().unwrap(), m);
        }
        let e = "louder".parse::<ControlMode>().unwrap_err().to_string();
        assert!(e.contains("\"Balanced\"") && e.contains("louder"), "{e}");
    }

    #[test]
    fn residual_names_are_ordered_by_index_with_mid_last() {
        let p = Path::new("x.onnx");
        let names = [
            "sample",
            "down_block_additional_residuals.10",
            "mid_block_additional_residual",
            "down_block_additional_residuals.2",
        ];
        let e = residual_order(&names, "input", p).unwrap_err().to_string();
        assert!(e.contains("not numbered"), "{e}");
        let names = [
            "down_block_1_additional_residual",
            "mid_block_additional_residual",
            "down_block_0_additional_residual",
        ];
        assert_eq!(
            residual_order(&names, "output", p).unwrap().unwrap(),
            vec![
                "down_block_0_additional_residual",
                "down_block_1_additional_residual",
                "mid_block_additional_residual"
            ]
        );
        assert!(residual_order(&["sample"], "input", p).unwrap().is_none());
    }

    #[test]
    fn layouts_give_sd_and_sdxl_residual_shapes() {
        let sd = Layout {
            channels: vec![320, 640, 1280, 1280],
            layers: 2,
        };
        let s = sd.shapes(64, 64);
        assert_eq!(s.len(), 13);
        assert_eq!(s[3], [320, 32, 32]);
        assert_eq!(s[11], [1280, 8, 8]);
        assert_eq!(s[12], [1280, 8, 8]);
        let xl = Layout {
            channels: vec![320, 640, 1280],
            layers: 2,
        };
        let s = xl.shapes(128, 128);
        assert_eq!(s.len(), 10);
        assert_eq!(s[6], [640, 32, 32]);
        assert_eq!(s[9], [1280, 32, 32]);
    }
}
