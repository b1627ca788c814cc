//! txt2img and img2img over an ONNX Stable Diffusion folder, with the semantics of diffusers'
//! `StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline`, and for SDXL folders
//! `StableDiffusionXLPipeline` and `StableDiffusionXLImg2ImgPipeline`; a 9-channel (inpainting)
//! UNet runs with `StableDiffusionInpaintPipeline`'s ([`super::inpaint`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use image::{GrayImage, RgbImage};
use ort::value::DynTensor;

use super::control::{CallInputs, CallPlan, Control, StepControl, TimestepInput, UnetControl};
use super::inpaint::{self, UnetKind};
use super::pix2pix::{self, Guidance, Pix2Pix};
use super::prompt::{self, PromptSyntax};
use super::rng::TorchRng;
use super::scheduler::{SamplerKind, Scheduler, SchedulerConfig};
use super::session::{Model, SessionOptions, float_input, float_tensor};
use super::text::{Layer, TextEncoder, concat_features};
use super::tokenizer::ClipTokenizer;
use super::variation;

/// A source of standard-normal noise: torch's generator in production, fixed arrays in tests.
pub trait NoiseSource {
    /// `n` standard-normal draws, in the order diffusers makes them.
    fn randn(&mut self, n: usize) -> Vec<f32>;
}

impl NoiseSource for TorchRng {
    fn randn(&mut self, n: usize) -> Vec<f32> {
        TorchRng::randn(self, n)
    }
}

/// One generation.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Positive prompt.
    pub prompt: &'a str,
    /// Negative prompt (empty for none).
    pub negative: &'a str,
    /// Output width (multiple of 8).
    pub width: u32,
    /// Output height (multiple of 8).
    pub height: u32,
    /// img2img source; `None` for txt2img.
    pub init: Option<&'a RgbImage>,
    /// diffusers strength (share of the schedule re-noised), 0..=1; ignored for txt2img.
    pub denoise: f64,
    /// Steps of the full schedule.
    pub steps: usize,
    /// Classifier-free guidance scale; <= 1 skips the unconditional pass.
    pub cfg_scale: f32,
    /// Sampler.
    pub sampler: SamplerKind,
    /// DDIM eta (ancestral samplers: their eta).
    pub eta: f32,
    /// How the prompts are read: A1111 emphasis and 75-token chunks, or diffusers' plain text.
    pub prompt_syntax: PromptSyntax,
    /// A1111 clip skip (1 = last layer; 2 = the layer before, as SD 1.x anime models want).
    pub clip_skip: u32,
    /// A1111 variation seed: `(subseed, strength)`; the initial noise becomes
    /// `slerp(strength, noise, randn(subseed))`. `None` or strength 0 for none.
    pub subseed: Option<(u64, f32)>,
    /// Multiplier of the img2img noise before it is added (A1111's `initial_noise_multiplier`,
    /// Deforum's noise_multiplier schedule); 1 = diffusers.
    pub noise_multiplier: f32,
    /// Prompt travel: the next keyed prompt, its negative, and how far towards it (0..1) the text
    /// embeddings are interpolated.
    pub travel: Option<Travel<'a>>,
    /// InstructPix2Pix image conditioning (the edited picture and its guidance scale); only read
    /// by a model whose UNet takes 8 channels ([`Pipeline::is_pix2pix`]); `None` there: the init
    /// image at diffusers' default image guidance.
    pub pix2pix: Option<Pix2Pix<'a>>,
    /// A1111's inpainting mask for img2img and how the masked latents start. The mask is grey,
    /// of the frame's size, already blurred, white where the model paints. It is rounded to a
    /// latent mask ([`crate::mask::latent_mask`]); at every model call the prediction outside it
    /// is replaced by the one that gives the init latents, and after sampling the init latents are
    /// put back there. Needs an init image; `None`: the whole frame is repainted.
    ///
    /// An inpainting model (9-channel UNet, [`Pipeline::is_inpaint`]) takes it as diffusers'
    /// `StableDiffusionInpaintPipeline` does instead: binarised at 0.5, as the UNet's mask and
    /// masked-picture conditioning, nothing blended back; `None` there: an all-ones mask and an
    /// all-zero masked picture (A1111's conditioning without a mask).
    pub mask: Option<Inpaint<'a>>,
}

/// A masked img2img's mask and latent fill ([`Request::mask`]).
#[derive(Debug, Clone, Copy)]
pub struct Inpaint<'a> {
    /// The blurred mask, the frame's size, white where the model paints.
    pub image: &'a GrayImage,
    /// The masked latents' start (A1111's `inpainting_fill` 2 and 3: the initial noise before
    /// variation seeds and the noise multiplier, as A1111 draws it from the frame's seed, or
    /// zeros).
    pub fill: crate::mask::LatentFill,
}

impl<'a> Inpaint<'a> {
    /// A mask with the init latents kept (`inpainting_fill` 0 and 1).
    pub fn new(image: &'a GrayImage) -> Inpaint<'a> {
        Inpaint {
            image,
            fill: crate::mask::LatentFill::Original,
        }
    }
}

/// Interpolation of the text embeddings towards another prompt (prompt travel).
#[derive(Debug, Clone, Copy)]
pub struct Travel<'a> {
    /// The prompt travelled to.
    pub prompt: &'a str,
    /// Its negative prompt.
    pub negative: &'a str,
    /// 0 = the request's prompt, 1 = `prompt`.
    pub weight: f32,
    /// Spherical (true) or linear (false) interpolation.
    pub slerp: bool,
}

/// Interpolates two embeddings of the same shape; `slerp` treats each token vector as a direction
/// (spherical interpolation, falling back to linear for nearly parallel vectors).
pub fn blend_embeddings(a: &[f32], b: &[f32], dim: usize, w: f32, slerp: bool) -> Vec<f32> {
    if !slerp {
        return a.iter().zip(b).map(|(x, y)| x + w * (y - x)).collect();
    }
    let mut out = Vec::with_capacity(a.len());
    for (ra, rb) in a.chunks(dim).zip(b.chunks(dim)) {
        let (na, nb) = (
            ra.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt(),
            rb.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt(),
        );
        let dot = ra
            .iter()
            .zip(rb)
            .map(|(x, y)| *x as f64 * *y as f64)
            .sum::<f64>()
            / (na * nb).max(1e-12);
        let omega = dot.clamp(-1.0, 1.0).acos();
        if omega.abs() < 1e-4 || na == 0.0 || nb == 0.0 {
            out.extend(ra.iter().zip(rb).map(|(x, y)| x + w * (y - x)));
        } else {
            let (s0, s1) = (
                ((1.0 - w as f64) * omega).sin() / omega.sin(),
                (w as f64 * omega).sin() / omega.sin(),
            );
            out.extend(
                ra.iter()
                    .zip(rb)
                    .map(|(x, y)| (s0 * *x as f64 + s1 * *y as f64) as f32),
            );
        }
    }
    out
}

/// Time spent per stage of one generation.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageTimes {
    /// Tokenizer + text encoder (zero when cached).
    pub text: Duration,
    /// VAE encoder.
    pub encode: Duration,
    /// All UNet calls and sampler steps.
    pub denoise: Duration,
    /// VAE decoder.
    pub decode: Duration,
    /// UNet calls made (Heun makes two per step, except the first).
    pub steps_run: usize,
    /// Time inside ONNX Runtime's `Session::run` (all models); the rest of the stages' time is
    /// anim's own work (tokenizing, samplers, tensor copies, image conversion).
    pub ort: Duration,
}

/// The model family of a loaded folder, told apart by its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ModelFamily {
    /// SD 1.x/2.x: one text encoder, a UNet conditioned on its hidden states only.
    Sd,
    /// SDXL: `text_encoder/` and `text_encoder_2/` (or `text_encoder_2/` alone, as the refiner),
    /// a UNet that also takes the pooled `text_embeds` and the `time_ids`.
    Sdxl,
}

/// SDXL's added conditioning, read from the UNet and `model_index.json`.
struct SdxlConfig {
    /// Entries of `time_ids`: 6 (original size, crop, target size) or 5 (original size, crop,
    /// aesthetic score: the refiner).
    time_ids: usize,
    /// `force_zeros_for_empty_prompt`: an empty negative prompt gives zero embeddings.
    force_zeros: bool,
    text_embeds_f16: bool,
    time_ids_f16: bool,
}

/// SDXL's aesthetic score for the prompt (diffusers' `aesthetic_score` default).
pub const AESTHETIC_SCORE: f32 = 6.0;
/// SDXL's aesthetic score for the negative prompt (diffusers' `negative_aesthetic_score` default).
pub const NEGATIVE_AESTHETIC_SCORE: f32 = 2.5;

/// The text embeddings of one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbedding {
    /// `[1, tokens, dim]`: 77 tokens per 75-token chunk.
    pub shape: Vec<usize>,
    /// Hidden states, flat; SDXL: both encoders' concatenated on the feature axis.
    pub hidden: Vec<f32>,
    /// SDXL's pooled embedding (`text_encoder_2`'s `text_embeds`, of the first chunk); empty for
    /// SD 1.x/2.x.
    pub pooled: Vec<f32>,
}

impl TextEmbedding {
    /// Zeros of the same shape (SDXL's empty negative prompt).
    fn zeros_like(&self) -> TextEmbedding {
        TextEmbedding {
            shape: self.shape.clone(),
            hidden: vec![0.0; self.hidden.len()],
            pooled: vec![0.0; self.pooled.len()],
        }
    }

    /// Interpolation towards `other` by `w` (prompt travel); embeddings of different lengths
    /// (chunk counts) cannot be blended token by token, so the nearer one is taken.
    fn blend(&self, other: &TextEmbedding, w: f32, slerp: bool) -> TextEmbedding {
        if self.shape != other.shape || self.pooled.len() != other.pooled.len() {
            return if w >= 0.5 { other } else { self }.clone();
        }
        TextEmbedding {
            shape: self.shape.clone(),
            hidden: blend_embeddings(&self.hidden, &other.hidden, self.shape[2], w, slerp),
            pooled: if self.pooled.is_empty() {
                Vec::new()
            } else {
                blend_embeddings(&self.pooled, &other.pooled, self.pooled.len(), w, slerp)
            },
        }
    }
}

/// A loaded Stable Diffusion 1.x/2.x or SDXL ONNX pipeline.
pub struct Pipeline {
    folder: PathBuf,
    /// `text_encoder` (SD), `text_encoder` + `text_encoder_2` (SDXL) or `text_encoder_2` (refiner).
    encoders: Vec<TextEncoder>,
    unet: Model,
    vae_encoder: Model,
    vae_decoder: Model,
    /// The model's scheduler configuration.
    pub scheduler_config: SchedulerConfig,
    /// VAE latent scaling factor (0.18215 for SD 1.x, 0.13025 for SDXL).
    pub vae_scaling: f32,
    timestep: TimestepInput,
    unet_batch_dynamic: bool,
    encoder_parameters: bool,
    /// float16 inputs of the UNet (`sample`, `encoder_hidden_states`) and the VAE.
    unet_f16: bool,
    vae_encoder_f16: bool,
    vae_decoder_f16: bool,
    /// SDXL's added conditioning; `None` for SD 1.x/2.x.
    sdxl: Option<SdxlConfig>,
    /// Provider fallbacks and other notes from loading.
    notes: Vec<String>,
    embed_cache: HashMap<EmbedKey, TextEmbedding>,
    /// What width and height must be multiples of, and why (from `unet/config.json`).
    size_rule: SizeRule,
    /// How the UNet takes ControlNet conditioning.
    unet_control: UnetControl,
    /// The UNet's output: `out_sample` (optimum) or `noise_pred` (diffusers' merged export).
    unet_output: &'static str,
    /// The UNet's flavour: plain (4 input channels), InstructPix2Pix (8) or inpainting (9).
    kind: UnetKind,
}

/// Whether the model in `folder` can make `width`x`height` frames, from its `unet/config.json`
/// (without loading the model): both must be multiples of 64 for SD 1.x/2.x and SDXL exports
/// (8 for the VAE times 2 per halving in the UNet). [`Pipeline::generate`] checks the same.
///
/// # Errors
/// A size that does not fit, with the nearest sizes that do.
pub fn check_frame_size(folder: &Path, width: u32, height: u32) -> Result<()> {
    SizeRule::read(folder).check(width, height)
}

/// The frame sizes a UNet export accepts: its down blocks halve the latents (all but the last
/// block), and an ONNX export upsamples by plain doubling, so the latent sides must divide evenly.
#[derive(Debug, Clone, Copy)]
struct SizeRule {
    /// Pixels: 8 (the VAE) times 2 per halving.
    multiple: u32,
    /// Down blocks in `unet/config.json` (`None`: no config, the VAE's 8 assumed).
    down_blocks: Option<usize>,
}

impl SizeRule {
    fn read(folder: &Path) -> SizeRule {
        let down_blocks = std::fs::read_to_string(folder.join("unet").join("config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["block_out_channels"].as_array().map(Vec::len))
            .filter(|&n| (1..=8).contains(&n));
        SizeRule {
            multiple: 8 << down_blocks.map_or(0, |n| n - 1),
            down_blocks,
        }
    }

    /// An error for `w`x`h` when it does not fit, with the nearest sizes that do.
    fn check(&self, w: u32, h: u32) -> Result<()> {
        let m = self.multiple;
        if w.is_multiple_of(m) && h.is_multiple_of(m) && w > 0 && h > 0 {
            return Ok(());
        }
        let near = |v: u32| match v / m * m {
            lo if lo == v => format!("{v}"),
            0 => format!("{m}"),
            lo => format!("{lo} or {}", lo + m),
        };
        let why = match self.down_blocks {
            Some(n) => format!(
                "its UNet (unet/config.json) has {n} down blocks, which halve the latents {} time{}",
                n - 1,
                if n == 2 { "" } else { "s" }
            ),
            None => "the VAE works on 8x8 pixel cells".to_string(),
        };
        bail!(
            "image size {w}x{h} does not fit this model: width and height must be multiples of {m} \
             pixels ({why}); try width {} and height {}",
            near(w),
            near(h)
        )
    }
}

/// Prompt embeddings are cached per (syntax, clip skip, text).
type EmbedKey = (PromptSyntax, u32, String);

/// One UNet call of a generation: `len` batch elements from `first`, with their conditioning.
struct UnetCall {
    first: usize,
    len: usize,
    encoder_hidden_states: DynTensor,
    /// The hidden states' values and shape (for ControlNets of another float type).
    hidden: Vec<f32>,
    hidden_shape: Vec<i64>,
    /// SDXL: `text_embeds` and `time_ids`, and their values.
    added: Option<(DynTensor, DynTensor)>,
    added_values: Option<(Vec<f32>, Vec<f32>)>,
}

impl UnetCall {
    /// This call's conditioning, as the ControlNet step sees it.
    fn inputs(&self) -> CallInputs<'_> {
        CallInputs {
            first: self.first,
            len: self.len,
            hidden: &self.encoder_hidden_states,
            hidden_values: &self.hidden,
            hidden_shape: &self.hidden_shape,
            added: self.added.as_ref(),
            added_values: self.added_values.as_ref().map(|(a, b)| (&a[..], &b[..])),
        }
    }
}

/// The UNet inputs SDXL adds to SD's.
const SDXL_UNET_INPUTS: [&str; 2] = ["text_embeds", "time_ids"];

impl Pipeline {
    /// Loads every part of an optimum/diffusers ONNX folder on the CPU, without a cache.
    ///
    /// # Errors
    /// As [`Pipeline::load_with`].
    pub fn load(folder: &Path) -> Result<Pipeline> {
        Pipeline::load_with(
            folder,
            &SessionOptions {
                device: super::session::Device::Cpu,
                cache: None,
                threads: None,
                cuda_graph: false,
            },
        )
    }

    /// Loads every part of an optimum/diffusers ONNX folder (SD 1.x/2.x, or SDXL when it has
    /// `text_encoder_2/`) with the given provider and cache, and checks its IO conventions (ids
    /// int32/int64, timestep int64 `[N]` or float `[]`, float32 or float16 tensors, VAE encoder
    /// `latent_parameters` or `latent_sample`, SDXL's `text_embeds` and `time_ids`).
    ///
    /// # Errors
    /// A missing or unreadable file, a model with unexpected inputs or outputs, a folder mixing
    /// SD and SDXL parts, or a provider that cannot run; the message names the file or the
    /// provider.
    pub fn load_with(folder: &Path, opts: &SessionOptions) -> Result<Pipeline> {
        Pipeline::load_parts(folder, opts, false)
    }

    /// [`Pipeline::load_with`] with a UNet that takes ControlNet conditioning: `unet/` when it
    /// takes residual inputs or has ControlNets merged in, else `unet_controlnet/` beside it.
    ///
    /// # Errors
    /// As [`Pipeline::load_with`]; a folder without such a UNet (the message lists the UNet's
    /// inputs and what a ControlNet UNet takes).
    pub fn load_controlled(folder: &Path, opts: &SessionOptions) -> Result<Pipeline> {
        Pipeline::load_parts(folder, opts, true)
    }

    fn load_parts(folder: &Path, opts: &SessionOptions, controlled: bool) -> Result<Pipeline> {
        if !folder.is_dir() {
            bail!("model folder {} does not exist", folder.display());
        }
        let index = folder.join("model_index.json");
        if !index.is_file() {
            bail!(
                "{} is missing: {} is not a diffusers/optimum ONNX pipeline folder (expected model_index.json, \
                 text_encoder/, unet/, vae_encoder/, vae_decoder/, tokenizer/, scheduler/)",
                index.display(),
                folder.display()
            );
        }
        let model_index: serde_json::Value = std::fs::read_to_string(&index)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        let sched_path = folder.join("scheduler").join("scheduler_config.json");
        let scheduler_config = SchedulerConfig::load(&sched_path)?;
        let vae_scaling = ["vae_decoder", "vae_encoder"]
            .iter()
            .filter_map(|d| std::fs::read_to_string(folder.join(d).join("config.json")).ok())
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .find_map(|v| v["scaling_factor"].as_f64())
            .unwrap_or(0.18215) as f32;
        let mut notes = Vec::new();
        let has_part = |sub: &str| folder.join(sub).join("model.onnx").is_file();
        let second = has_part("text_encoder_2");
        let mut encoders = Vec::new();
        if !second || has_part("text_encoder") {
            encoders.push(TextEncoder::load(
                folder,
                "text_encoder",
                "tokenizer",
                opts,
                &mut notes,
            )?);
        }
        if second {
            encoders.push(TextEncoder::load(
                folder,
                "text_encoder_2",
                "tokenizer_2",
                opts,
                &mut notes,
            )?);
        }
        let mut unet = Model::load(folder, "unet", opts, &mut notes)?;
        let mut unet_control = UnetControl::of(&unet)?;
        if controlled && !unet_control.takes_control() {
            let alt = folder.join("unet_controlnet").join("model.onnx");
            if !alt.is_file() {
                bail!(
                    "{}: the scene has ControlNet units, but this UNet takes no ControlNet conditioning (inputs {}) and there \
                     is no unet_controlnet/model.onnx beside it; a ControlNet UNet takes the residual inputs \
                     down_block_{{i}}_additional_residual … mid_block_additional_residual, or controlnet_conds and \
                     conditioning_scales (diffusers' merged export); README: exporting a ControlNet",
                    unet.path.display(),
                    unet.input_names().join(", ")
                );
            }
            unet = Model::load(folder, "unet_controlnet", opts, &mut notes)?;
            unet_control = UnetControl::of(&unet)?;
            if !unet_control.takes_control() {
                bail!(
                    "{}: takes no ControlNet conditioning (inputs {}); expected the residual inputs \
                     down_block_{{i}}_additional_residual … mid_block_additional_residual",
                    unet.path.display(),
                    unet.input_names().join(", ")
                );
            }
        }
        if opts.cuda_graph {
            unet.bind_buffers();
        }
        let kind = UnetKind::detect(&unet, folder)?;
        let added: Vec<&str> = SDXL_UNET_INPUTS
            .into_iter()
            .filter(|n| unet.has_input(n))
            .collect();
        let complete = added.len() == SDXL_UNET_INPUTS.len();
        if (second && !complete) || (!second && !added.is_empty()) {
            bail!(layout_error(folder, &unet, second));
        }
        if second && kind != UnetKind::Plain {
            bail!(
                "{}: an SDXL UNet with {} input channels ({}) is not supported yet; anim runs \
                 InstructPix2Pix and inpainting UNets of SD 1.x/2.x: use an SD 1.x/2.x export, or the \
                 SDXL base model (with a mask: masked img2img)",
                unet.path.display(),
                kind.channels(),
                if kind == UnetKind::Inpaint {
                    "inpainting"
                } else {
                    "InstructPix2Pix"
                }
            );
        }
        let sdxl = if second {
            for enc in &encoders {
                if enc.hidden_layers().is_none() {
                    bail!(
                        "{}: SDXL reads the text encoders' penultimate layer, but it has no `hidden_states.*` \
                         outputs (optimum exports them for SDXL)",
                        enc.model.path.display()
                    );
                }
            }
            if let Some(last) = encoders.last().filter(|e| !e.has_pooled()) {
                bail!(
                    "{}: expected an output `text_embeds` (SDXL's pooled text embedding, from \
                     CLIPTextModelWithProjection)",
                    last.model.path.display()
                );
            }
            let dims = unet.input_dims("time_ids")?;
            let time_ids = match dims.get(1).copied() {
                Some(n @ (5 | 6)) => n as usize,
                Some(n) if n < 0 => {
                    if model_index["requires_aesthetics_score"].as_bool() == Some(true) {
                        5
                    } else {
                        6
                    }
                }
                _ => bail!(
                    "{}: time_ids has shape {dims:?}; expected [batch, 6] (sizes and crop) or [batch, 5] \
                     (with the aesthetic score)",
                    unet.path.display()
                ),
            };
            Some(SdxlConfig {
                time_ids,
                force_zeros: model_index["force_zeros_for_empty_prompt"]
                    .as_bool()
                    .unwrap_or(true),
                text_embeds_f16: unet.input_is_f16("text_embeds")?,
                time_ids_f16: unet.input_is_f16("time_ids")?,
            })
        } else {
            None
        };
        let vae_encoder = Model::load(folder, "vae_encoder", opts, &mut notes)?;
        let vae_decoder = Model::load(folder, "vae_decoder", opts, &mut notes)?;

        let (_, _, unet_batch_dynamic) = unet.input("sample")?;
        let unet_f16 = unet.input_is_f16("sample")?;
        if unet.input_is_f16("encoder_hidden_states")? != unet_f16 {
            bail!(
                "{}: sample and encoder_hidden_states differ in float type",
                unet.path.display()
            );
        }
        let timestep = TimestepInput::of(&unet)?;
        let unet_output = match ["out_sample", "noise_pred"]
            .into_iter()
            .find(|n| unet.has_output(n))
        {
            Some(n) => n,
            None => bail!(
                "{}: expected an output `out_sample` (or `noise_pred`, diffusers' ControlNet export)",
                unet.path.display()
            ),
        };
        let vae_encoder_f16 = vae_encoder.input_is_f16("sample")?;
        let vae_decoder_f16 = vae_decoder.input_is_f16("latent_sample")?;
        let encoder_parameters = if vae_encoder.has_output("latent_parameters") {
            true
        } else if vae_encoder.has_output("latent_sample") {
            false
        } else {
            bail!(
                "{}: expected an output `latent_parameters` or `latent_sample`",
                vae_encoder.path.display()
            );
        };
        Ok(Pipeline {
            folder: folder.to_path_buf(),
            encoders,
            unet,
            vae_encoder,
            vae_decoder,
            scheduler_config,
            vae_scaling,
            timestep,
            unet_batch_dynamic,
            encoder_parameters,
            unet_f16,
            vae_encoder_f16,
            vae_decoder_f16,
            sdxl,
            notes,
            embed_cache: HashMap::new(),
            size_rule: SizeRule::read(folder),
            unet_control,
            unet_output,
            kind,
        })
    }

    /// The text encoder layer clip skip `k` (1 = last) reads: SD's through the final layer norm
    /// as A1111 does, SDXL's raw (diffusers' convention).
    fn clip_layer(&self, k: u32) -> Layer {
        match (self.sdxl.is_some(), k.max(1)) {
            (true, k) => Layer::Raw(k as usize),
            (false, 1) => Layer::Last,
            (false, k) => Layer::Normed(k as usize),
        }
    }

    /// Whether every text encoder can give clip skip `k`, without running them.
    ///
    /// # Errors
    /// A layer the export does not have (too few layers, or no `hidden_states.*` outputs).
    pub fn check_clip_skip(&self, k: u32) -> Result<()> {
        let layer = self.clip_layer(k);
        self.encoders.iter().try_for_each(|e| e.check_layer(layer))
    }

    /// The folder the pipeline was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// SD 1.x/2.x or SDXL.
    pub fn family(&self) -> ModelFamily {
        if self.sdxl.is_some() {
            ModelFamily::Sdxl
        } else {
            ModelFamily::Sd
        }
    }

    /// Whether the model is an InstructPix2Pix one (its UNet takes 8 input channels: the latents
    /// and the edited picture's); its generations need a source image.
    pub fn is_pix2pix(&self) -> bool {
        self.kind == UnetKind::Pix2Pix
    }

    /// Whether the model is an inpainting one (its UNet takes 9 input channels: the latents, the
    /// mask and the masked picture's latents); see [`Request::mask`].
    pub fn is_inpaint(&self) -> bool {
        self.kind == UnetKind::Inpaint
    }

    /// The UNet's flavour, from its input channels.
    pub fn unet_kind(&self) -> UnetKind {
        self.kind
    }

    /// Notes from loading (providers that `--device auto` could not use).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The execution provider the UNet runs on.
    pub fn provider(&self) -> &'static str {
        self.unet.provider
    }

    /// Whether the UNet takes float16 tensors (an fp16 export).
    pub fn is_fp16(&self) -> bool {
        self.unet_f16
    }

    /// The (first) text encoder's tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.encoders[0].tokenizer
    }

    /// Text embeddings `[1, 77, D]` (flat, with shape) of a prompt read as diffusers reads it (no
    /// emphasis, truncated to 77 tokens); cached per text.
    ///
    /// # Errors
    /// Tokenizer or text encoder failures, naming the model file.
    pub fn encode_prompt(&mut self, text: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.encode(text, PromptSyntax::Plain)
    }

    /// Text embeddings `[1, 77·k, D]` of a prompt in the given syntax (A1111: one 77-token window
    /// per 75-token chunk, emphasis applied per chunk); cached per (syntax, text).
    ///
    /// # Errors
    /// Tokenizer or text encoder failures, naming the model file.
    pub fn encode(&mut self, text: &str, syntax: PromptSyntax) -> Result<(Vec<usize>, Vec<f32>)> {
        self.encode_skip(text, syntax, 1)
    }

    /// [`Pipeline::encode`] with A1111's clip skip: 1 is the last layer, 2 the one before (with the
    /// final layer norm applied, as A1111 does), and so on. SDXL counts from its penultimate
    /// layer, as diffusers does: 1 is `hidden_states[-2]`, 2 is `hidden_states[-3]`, no final norm.
    ///
    /// # Errors
    /// As [`Pipeline::encode`]; clip skip above 1 also needs a text encoder exported with
    /// `hidden_states.*` outputs and at most as many layers as it has.
    pub fn encode_skip(
        &mut self,
        text: &str,
        syntax: PromptSyntax,
        clip_skip: u32,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let e = self.embed(text, syntax, clip_skip)?;
        Ok((e.shape, e.hidden))
    }

    /// The text embeddings of a prompt (hidden states and, for SDXL, the pooled embedding), as
    /// [`Pipeline::encode_skip`] reads it; cached per (syntax, clip skip, text).
    ///
    /// SDXL: each encoder reads the prompt with its own tokenizer (and its own padding); with the
    /// A1111 syntax each encoder's hidden states get the emphasis of their chunk, and the pooled
    /// embedding is the first chunk's.
    ///
    /// # Errors
    /// As [`Pipeline::encode_skip`]; SDXL tokenizers that cut a prompt into different numbers of
    /// chunks.
    pub fn embed(
        &mut self,
        text: &str,
        syntax: PromptSyntax,
        clip_skip: u32,
    ) -> Result<TextEmbedding> {
        let clip_skip = clip_skip.max(1);
        let key = (syntax, clip_skip, text.to_string());
        if let Some(hit) = self.embed_cache.get(&key) {
            return Ok(hit.clone());
        }
        let sdxl = self.sdxl.is_some();
        let layer = self.clip_layer(clip_skip);
        // A1111: each encoder's chunks; one with fewer (SDXL's tokenizer_2 reads "!" as its pad
        // token, so the two can differ) gets empty chunks, as A1111 pads a batch
        let mut all_chunks = Vec::new();
        if syntax != PromptSyntax::Plain {
            for enc in &self.encoders {
                all_chunks.push(prompt::chunks(&enc.tokenizer, text)?);
            }
            let most = all_chunks.iter().map(Vec::len).max().unwrap_or(1);
            for (enc, chunks) in self.encoders.iter().zip(all_chunks.iter_mut()) {
                while chunks.len() < most {
                    chunks.extend(prompt::chunks(&enc.tokenizer, "")?);
                }
            }
        }
        let mut parts = Vec::with_capacity(self.encoders.len());
        for (k, enc) in self.encoders.iter_mut().enumerate() {
            let pooled = sdxl && enc.has_pooled();
            let part = match syntax {
                PromptSyntax::Plain => {
                    let ids = enc.tokenizer.encode(text)?;
                    enc.run(&ids, 1, layer, pooled)?
                }
                PromptSyntax::A1111 | PromptSyntax::A1111NoNorm => {
                    let chunks = &all_chunks[k];
                    let ids: Vec<u32> = chunks.iter().flat_map(|c| c.ids.iter().copied()).collect();
                    let mut e = enc.run(&ids, chunks.len(), layer, pooled)?;
                    let per = e.hidden.len() / chunks.len();
                    for (c, zc) in chunks.iter().zip(e.hidden.chunks_mut(per)) {
                        prompt::apply_emphasis(zc, &c.weights, syntax == PromptSyntax::A1111);
                    }
                    if let Some(p) = e.pooled.as_mut() {
                        p.truncate(p.len() / chunks.len());
                    }
                    e.shape = vec![1, e.shape[0] * e.shape[1], e.shape[2]];
                    e
                }
            };
            parts.push(part);
        }
        let mut shape = parts[0].shape.clone();
        let mut hidden = std::mem::take(&mut parts[0].hidden);
        for (k, p) in parts.iter().enumerate().skip(1) {
            if p.shape[..2] != shape[..2] {
                bail!(
                    "prompt {text:?}: {} gives {} tokens, {} gives {}",
                    self.encoders[0].model.path.display(),
                    shape[1],
                    self.encoders[k].model.path.display(),
                    p.shape[1]
                );
            }
            hidden = concat_features(&hidden, shape[2], &p.hidden, p.shape[2]);
            shape[2] += p.shape[2];
        }
        let pooled = parts
            .iter_mut()
            .rev()
            .find_map(|p| p.pooled.take())
            .unwrap_or_default();
        let out = TextEmbedding {
            shape,
            hidden,
            pooled,
        };
        self.embed_cache.insert(key, out.clone());
        Ok(out)
    }

    /// The negative prompt's embeddings: SDXL with `force_zeros_for_empty_prompt` reads an empty
    /// negative prompt as zeros shaped like the prompt's (diffusers' `negative_prompt=None`),
    /// otherwise the text is encoded like a prompt.
    fn negative_embedding(
        &mut self,
        negative: &str,
        like: &TextEmbedding,
        syntax: PromptSyntax,
        clip_skip: u32,
    ) -> Result<TextEmbedding> {
        if negative.is_empty() && self.sdxl.as_ref().is_some_and(|s| s.force_zeros) {
            return Ok(like.zeros_like());
        }
        self.embed(negative, syntax, clip_skip)
    }

    /// SDXL's `time_ids` for an image of `width`x`height`: original size, crop (0, 0), target
    /// size `(H, W, 0, 0, H, W)`, or with a 5-entry UNet (the refiner) `(H, W, 0, 0, score)`.
    /// Matches diffusers `StableDiffusionXLImg2ImgPipeline._get_add_time_ids` with its defaults.
    fn time_ids(&self, width: u32, height: u32, negative: bool) -> Vec<f32> {
        let (h, w) = (height as f32, width as f32);
        match &self.sdxl {
            Some(s) if s.time_ids == 5 => {
                let score = if negative {
                    NEGATIVE_AESTHETIC_SCORE
                } else {
                    AESTHETIC_SCORE
                };
                vec![h, w, 0.0, 0.0, score]
            }
            Some(_) => vec![h, w, 0.0, 0.0, h, w],
            None => Vec::new(),
        }
    }

    /// Image to latents: `scaling · (mean + std · noise)` from the VAE encoder's distribution.
    pub fn encode_image(
        &mut self,
        img: &RgbImage,
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>> {
        let (w, h) = img.dimensions();
        self.encode_nchw(&image_to_nchw(img), w, h, noise)
    }

    /// [`Pipeline::encode_image`] of a picture given as NCHW float in [-1, 1], `w`x`h`.
    fn encode_nchw(
        &mut self,
        data: &[f32],
        w: u32,
        h: u32,
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>> {
        if self.encoder_parameters {
            let params = self.distribution_nchw(data, w, h)?;
            Ok(self.sample_latents(&params, noise))
        } else {
            let input = float_input(vec![1, 3, h as i64, w as i64], data, self.vae_encoder_f16)?;
            let scaling = self.vae_scaling;
            let (_, sample) = self
                .vae_encoder
                .run1(vec![("sample".into(), input)], "latent_sample")?;
            Ok(sample.iter().map(|x| x * scaling).collect())
        }
    }

    /// The VAE encoder's distribution of `img`: `[mean, logvar]` (`latent_parameters`).
    fn encoder_distribution(&mut self, img: &RgbImage) -> Result<Vec<f32>> {
        let (w, h) = img.dimensions();
        self.distribution_nchw(&image_to_nchw(img), w, h)
    }

    /// The VAE encoder's distribution of an NCHW picture in [-1, 1], `w`x`h`.
    fn distribution_nchw(&mut self, data: &[f32], w: u32, h: u32) -> Result<Vec<f32>> {
        let input = float_input(vec![1, 3, h as i64, w as i64], data, self.vae_encoder_f16)?;
        let (shape, params) = self
            .vae_encoder
            .run1(vec![("sample".into(), input)], "latent_parameters")?;
        if shape.len() != 4 || shape[1] != 8 {
            bail!(
                "{}: latent_parameters has shape {shape:?}, expected [1, 8, h, w]",
                self.vae_encoder.path.display()
            );
        }
        Ok(params)
    }

    /// `scaling · (mean + std · noise)` from the encoder's `[mean, logvar]`.
    fn sample_latents(&self, params: &[f32], noise: &mut dyn NoiseSource) -> Vec<f32> {
        let n = params.len() / 2;
        let (mean, logvar) = params.split_at(n);
        let eps = noise.randn(n);
        (0..n)
            .map(|i| {
                (mean[i] + (0.5 * logvar[i].clamp(-30.0, 20.0)).exp() * eps[i]) * self.vae_scaling
            })
            .collect()
    }

    /// Image to the VAE encoder's mode (its mean), not scaled: InstructPix2Pix's image
    /// conditioning (diffusers' `retrieve_latents(..., sample_mode="argmax")`).
    ///
    /// # Errors
    /// A VAE encoder that exports only a sample (`latent_sample`, optimum <= 1.22), whose mean
    /// cannot be read; model failures.
    pub fn encode_image_mode(&mut self, img: &RgbImage) -> Result<Vec<f32>> {
        self.check_mode_readable()?;
        let mut params = self.encoder_distribution(img)?;
        params.truncate(params.len() / 2);
        Ok(params)
    }

    /// InstructPix2Pix needs the encoder's mean, which a `latent_sample` export hides.
    fn check_mode_readable(&self) -> Result<()> {
        if !self.encoder_parameters {
            bail!(
                "{}: exports only `latent_sample` (a sample drawn inside the graph), but InstructPix2Pix \
                 needs the encoder's mean: re-export the VAE encoder with optimum >= 1.23 (output \
                 `latent_parameters`)",
                self.vae_encoder.path.display()
            );
        }
        Ok(())
    }

    /// Latents to image: decode `latents / scaling`, then `round(clamp(x/2 + 0.5) · 255)`.
    pub fn decode_latents(&mut self, latents: &[f32], width: u32, height: u32) -> Result<RgbImage> {
        let data: Vec<f32> = latents.iter().map(|x| x / self.vae_scaling).collect();
        let input = float_input(
            vec![1, 4, (height / 8) as i64, (width / 8) as i64],
            &data,
            self.vae_decoder_f16,
        )?;
        let (shape, out) = self
            .vae_decoder
            .run1(vec![("latent_sample".into(), input)], "sample")?;
        if shape != [1, 3, height as usize, width as usize] {
            bail!(
                "{}: decoded image has shape {shape:?}, expected [1, 3, {height}, {width}]",
                self.vae_decoder.path.display()
            );
        }
        Ok(nchw_to_image(&out, width, height))
    }

    /// The UNet's conditioning tensors for `len` batch elements: hidden states, and for SDXL the
    /// pooled embeddings and time ids.
    fn unet_call(&self, first: usize, elems: &[(&TextEmbedding, Vec<f32>)]) -> Result<UnetCall> {
        let e0 = elems[0].0;
        let b = elems.len() as i64;
        let hidden: Vec<f32> = elems
            .iter()
            .flat_map(|e| e.0.hidden.iter().copied())
            .collect();
        let hidden_shape = vec![b, e0.shape[1] as i64, e0.shape[2] as i64];
        let encoder_hidden_states = float_tensor(hidden_shape.clone(), &hidden, self.unet_f16)?;
        let (added, added_values) = match &self.sdxl {
            Some(s) => {
                let pooled: Vec<f32> = elems
                    .iter()
                    .flat_map(|e| e.0.pooled.iter().copied())
                    .collect();
                let ids: Vec<f32> = elems.iter().flat_map(|e| e.1.iter().copied()).collect();
                (
                    Some((
                        float_tensor(vec![b, e0.pooled.len() as i64], &pooled, s.text_embeds_f16)?,
                        float_tensor(vec![b, s.time_ids as i64], &ids, s.time_ids_f16)?,
                    )),
                    Some((pooled, ids)),
                )
            }
            None => (None, None),
        };
        Ok(UnetCall {
            first,
            len: elems.len(),
            encoder_hidden_states,
            hidden,
            hidden_shape,
            added,
            added_values,
        })
    }

    /// How the UNet is called for a generation: batches of latents with their conditioning
    /// (text embeddings; SDXL: and time ids), built once. One batched call when the batch axis is
    /// dynamic and the sequence lengths agree, else one call per element (A1111 does the same for
    /// a prompt and negative prompt of different lengths).
    fn unet_plan(&self, elems: &[(&TextEmbedding, Vec<f32>)]) -> Result<Vec<UnetCall>> {
        let same_len = elems.iter().all(|e| e.0.shape == elems[0].0.shape);
        if elems.len() == 1 || (self.unet_batch_dynamic && same_len) {
            Ok(vec![self.unet_call(0, elems)?])
        } else {
            (0..elems.len())
                .map(|k| self.unet_call(k, &elems[k..k + 1]))
                .collect()
        }
    }

    /// One UNet evaluation (model call `step` of the generation) of `latents`
    /// (`[batch, c, h, w]` flat) at timestep `t`, by `plan`, with the ControlNet conditioning of
    /// `control`.
    fn unet(
        &mut self,
        latents: &[f32],
        t: f32,
        step: usize,
        plan: &[UnetCall],
        control: &mut StepControl,
        lat_shape: [usize; 3],
    ) -> Result<Vec<f32>> {
        let [c, h, w] = lat_shape;
        let n = c * h * w;
        let mut out = Vec::with_capacity(latents.len());
        for (k, call) in plan.iter().enumerate() {
            let (first, b) = (call.first, call.len);
            let shape = vec![b as i64, c as i64, h as i64, w as i64];
            let sample = float_tensor(
                shape.clone(),
                &latents[first * n..(first + b) * n],
                self.unet_f16,
            )?;
            let ts: DynTensor = self.timestep.tensor(t)?;
            let mut inputs: Vec<(Cow<'static, str>, &DynTensor)> = vec![
                (Cow::Borrowed("sample"), &sample),
                (Cow::Borrowed("timestep"), &ts),
                (
                    Cow::Borrowed("encoder_hidden_states"),
                    &call.encoder_hidden_states,
                ),
            ];
            if let Some((text_embeds, time_ids)) = &call.added {
                inputs.push((Cow::Borrowed("text_embeds"), text_embeds));
                inputs.push((Cow::Borrowed("time_ids"), time_ids));
            }
            let call_inputs = call.inputs();
            inputs.extend(control.inputs(k, step, t, latents, &sample, &call_inputs)?);
            let output = self.unet_output;
            let out_shape = [b as i64, 4, h as i64, w as i64];
            let result = self.unet.run_tensors(&inputs, output, &out_shape);
            let (_, pred) = result.map_err(|e| {
                if format!("{e:#}").contains("Concat") {
                    e.context(format!(
                        "the UNet's skip connections do not line up at {}x{} pixels: use a width and \
                         height that are multiples of 64 (Stable Diffusion exports need it)",
                        w * 8,
                        h * 8
                    ))
                } else {
                    e
                }
            })?;
            out.extend(pred);
        }
        Ok(out)
    }

    /// The initial noise draw (txt2img's latents, img2img's added noise), blended with the
    /// subseed's noise when the request asks for a variation.
    fn initial_noise(
        &self,
        req: &Request,
        noise: &mut dyn NoiseSource,
        shape: [usize; 3],
    ) -> Vec<f32> {
        let n = shape.iter().product();
        self.vary_noise(req, noise.randn(n), shape)
    }

    /// `base` noise with the request's variation seed slerped in (A1111's subseed).
    fn vary_noise(&self, req: &Request, base: Vec<f32>, shape: [usize; 3]) -> Vec<f32> {
        let n = shape.iter().product();
        match req.subseed {
            Some((sub, strength)) if strength != 0.0 => {
                variation::slerp(strength, &base, &TorchRng::new(sub).randn(n), shape)
            }
            _ => base,
        }
    }

    /// Runs one txt2img or img2img generation; noise is drawn from `noise` in diffusers' order
    /// (VAE encoder sample, initial noise, then per-step noise of stochastic samplers).
    pub fn generate(
        &mut self,
        req: &Request,
        noise: &mut dyn NoiseSource,
    ) -> Result<(RgbImage, StageTimes)> {
        self.generate_with(req, noise, None)
    }

    /// [`Pipeline::generate`] with ControlNet conditioning (diffusers' ControlNet pipelines:
    /// txt2img without an init image, img2img with one); the pipeline must have been loaded
    /// with [`Pipeline::load_controlled`] or have a UNet that takes ControlNet inputs.
    ///
    /// # Errors
    /// As [`Pipeline::generate`]; control maps of another size; ControlNet failures.
    pub fn generate_with(
        &mut self,
        req: &Request,
        noise: &mut dyn NoiseSource,
        mut control: Option<&mut Control>,
    ) -> Result<(RgbImage, StageTimes)> {
        let net_busy = |c: &Option<&mut Control>| -> Duration {
            c.as_ref()
                .map(|c| c.nets.iter().map(|n| n.busy()).sum())
                .unwrap_or_default()
        };
        let busy_before = self.busy() + net_busy(&control);
        let (img, mut times) = self.generate_inner(req, noise, control.as_deref_mut())?;
        times.ort = self.busy() + net_busy(&control) - busy_before;
        Ok((img, times))
    }

    /// How the UNet takes ControlNet conditioning, for messages ("no ControlNet inputs", …).
    pub fn control_inputs(&self) -> String {
        self.unet_control.describe()
    }

    /// The number of ControlNets merged into the UNet (diffusers' merged export), if it is one.
    pub fn merged_controlnets(&self) -> Option<usize> {
        match self.unet_control {
            UnetControl::Merged { nets, .. } => Some(nets),
            _ => None,
        }
    }

    /// Whether `net` can feed this pipeline's UNet (residual count and shapes).
    ///
    /// # Errors
    /// What the UNet expects and what the ControlNet gives.
    pub fn check_controlnet(&self, net: &super::control::ControlNet) -> Result<()> {
        self.unet_control.check_net(net, &self.unet.path)?;
        if net.is_sdxl() != self.sdxl.is_some() {
            bail!(
                "ControlNet {} is {} but the model {} is {}",
                net.folder().display(),
                if net.is_sdxl() {
                    "an SDXL one"
                } else {
                    "an SD 1.x/2.x one"
                },
                self.folder.display(),
                if self.sdxl.is_some() {
                    "SDXL"
                } else {
                    "SD 1.x/2.x"
                }
            );
        }
        Ok(())
    }

    /// Time all sessions have spent in `Session::run`.
    fn busy(&self) -> Duration {
        self.encoders.iter().map(|e| e.model.busy).sum::<Duration>()
            + self.unet.busy
            + self.vae_encoder.busy
            + self.vae_decoder.busy
    }

    fn generate_inner(
        &mut self,
        req: &Request,
        noise: &mut dyn NoiseSource,
        control: Option<&mut Control>,
    ) -> Result<(RgbImage, StageTimes)> {
        let mut times = StageTimes::default();
        let (w, h) = (req.width, req.height);
        self.size_rule.check(w, h)?;
        let mut sched = match req.init {
            Some(_) => {
                Scheduler::img2img(req.sampler, &self.scheduler_config, req.steps, req.denoise)?
            }
            None => Scheduler::new(req.sampler, &self.scheduler_config, req.steps)?,
        }
        .with_eta(req.eta);
        if let Some(init) = req.init {
            if init.dimensions() != (w, h) {
                bail!(
                    "init image is {}x{}, expected {w}x{h}",
                    init.width(),
                    init.height()
                );
            }
            if sched.remaining() == 0 {
                // nothing to denoise: diffusers would refuse; keep the image as it is
                return Ok((init.clone(), times));
            }
        }
        let inpainting = self.kind == UnetKind::Inpaint;
        if inpainting && control.is_some() {
            bail!(
                "{}: ControlNet units with an inpainting model (its UNet takes 9 input channels) are not \
                 supported; remove the [controlnet] units or use a Stable Diffusion model",
                self.folder.display()
            );
        }
        // 4 channels: A1111's latent mask, blended at every call; 9: the binarised pixel mask,
        // all ones without one (the UNet's conditioning)
        let (mask, inpaint_mask) = match req.mask {
            Some(m) if inpainting => {
                self.check_mask(req, m.image)?;
                (None, Some(inpaint::binarize(m.image)))
            }
            Some(m) => (Some(self.latent_mask(req, m.image)?), None),
            None if inpainting => (None, Some(vec![1.0; (w * h) as usize])),
            None => (None, None),
        };
        let edit = self.edit_image(req, control.is_some())?;
        let guidance = match edit {
            Some((_, g_i)) => Guidance::of(req.cfg_scale, g_i),
            None if req.cfg_scale > 1.0 => Guidance::Text,
            None => Guidance::Single,
        };
        let t0 = Instant::now();
        let guided = guidance != Guidance::Single;
        let (syntax, skip) = (req.prompt_syntax, req.clip_skip);
        let mut cond = self
            .embed(req.prompt, syntax, skip)
            .with_context(|| format!("encoding prompt {:?}", req.prompt))?;
        let mut uncond = if guided {
            Some(
                self.negative_embedding(req.negative, &cond, syntax, skip)
                    .with_context(|| format!("encoding negative prompt {:?}", req.negative))?,
            )
        } else {
            None
        };
        if let Some(tr) = req.travel.filter(|t| t.weight > 0.0) {
            let next = self.embed(tr.prompt, syntax, skip)?;
            if let Some(u) = uncond.as_mut() {
                let next_u = self.negative_embedding(tr.negative, &next, syntax, skip)?;
                *u = u.blend(&next_u, tr.weight, tr.slerp);
            }
            cond = cond.blend(&next, tr.weight, tr.slerp);
        }
        let batch = guidance.batch();
        times.text = t0.elapsed();
        let lat_shape = [4usize, (h / 8) as usize, (w / 8) as usize];
        let n = lat_shape.iter().product::<usize>();
        // the pix2pix picture is the init image unless the request names another: then one
        // encoder run gives both its mean (the image conditioning) and the init latents' sample
        let mut init_params = None;
        let image_latents = match edit {
            Some((img, _)) => {
                let t = Instant::now();
                let mode = if req.init.is_some_and(|init| std::ptr::eq(init, img)) {
                    self.check_mode_readable()?;
                    let params = self.encoder_distribution(img)?;
                    let mode = params[..params.len() / 2].to_vec();
                    init_params = Some(params);
                    mode
                } else {
                    self.encode_image_mode(img)?
                };
                times.encode += t.elapsed();
                Some(pix2pix::batch_image_latents(&mode, guidance))
            }
            None => None,
        };
        // the init latents, kept outside the mask
        let mut z0 = Vec::new();
        // diffusers' inpainting pipeline starts from pure noise at strength 1 (without encoding
        // the init image)
        let init = req.init.filter(|_| !(inpainting && req.denoise >= 1.0));
        let mut latents = match init {
            Some(init) => {
                let t = Instant::now();
                let mut x0 = match &init_params {
                    Some(params) => self.sample_latents(params, noise),
                    None => self.encode_image(init, noise)?,
                };
                times.encode += t.elapsed();
                let base = noise.randn(n);
                match (&mask, &req.mask) {
                    (Some(m), Some(inp)) => {
                        crate::mask::fill_latents(&mut x0, m, inp.fill, &base);
                        z0 = x0.clone();
                    }
                    // an inpainting UNet blends nothing back, but A1111 fills its init latents
                    // all the same (`inpainting_fill` 2 and 3)
                    (None, Some(inp)) if inp.fill != crate::mask::LatentFill::Original => {
                        let m = crate::mask::latent_mask(inp.image, w / 8, h / 8);
                        crate::mask::fill_latents(&mut x0, &m, inp.fill, &base);
                    }
                    _ => {}
                }
                let mut eps = self.vary_noise(req, base, lat_shape);
                if req.noise_multiplier != 1.0 {
                    eps.iter_mut().for_each(|e| *e *= req.noise_multiplier);
                }
                sched.add_noise(&mut x0, &eps);
                x0
            }
            None => {
                let s = sched.init_noise_sigma();
                self.initial_noise(req, noise, lat_shape)
                    .into_iter()
                    .map(|x| x * s)
                    .collect()
            }
        };
        // the inpainting UNet's conditioning: the mask at latent size and the masked picture's
        // latents (sampled after the initial noise, as diffusers draws them)
        let inpaint_cond = match &inpaint_mask {
            Some(pm) => {
                let t = Instant::now();
                let masked = inpaint::masked_image(req.init, pm, w, h);
                let masked = self.encode_nchw(&masked, w, h, noise)?;
                times.encode += t.elapsed();
                Some((inpaint::latent_mask(pm, w, h), masked))
            }
            None => None,
        };
        let t = Instant::now();
        let plan = match &uncond {
            // diffusers' pix2pix order: (text, img), (neg, img), (neg, zeros)
            Some(u) if guidance == Guidance::Edit => self.unet_plan(&[
                (&cond, self.time_ids(w, h, false)),
                (u, self.time_ids(w, h, true)),
                (u, self.time_ids(w, h, true)),
            ])?,
            Some(u) => self.unet_plan(&[
                (u, self.time_ids(w, h, true)),
                (&cond, self.time_ids(w, h, false)),
            ])?,
            None => self.unet_plan(&[(&cond, self.time_ids(w, h, false))])?,
        };
        let call_plan = CallPlan {
            calls: sched.remaining(),
            order: sched.order(),
            steps: req.steps,
            denoise: req.init.map(|_| req.denoise),
        };
        let call_inputs: Vec<CallInputs> = plan.iter().map(UnetCall::inputs).collect();
        let mut step_control = StepControl::new(
            &self.unet_control,
            control,
            &call_inputs,
            lat_shape,
            self.unet_f16,
            call_plan,
            usize::from(guided),
        )?;
        drop(call_inputs);
        let mut input = vec![0.0f32; n * batch];
        let mut call = 0;
        while let Some(timestep) = sched.timestep() {
            for chunk in input.chunks_mut(n) {
                chunk.copy_from_slice(&latents);
            }
            sched.scale_model_input(&mut input);
            let [c, lh, lw] = lat_shape;
            let mut pred = match (&image_latents, &inpaint_cond) {
                (Some(img), _) => {
                    let unet_in = pix2pix::concat(&input, img, n);
                    let shape = [2 * c, lh, lw];
                    self.unet(&unet_in, timestep, call, &plan, &mut step_control, shape)?
                }
                (None, Some((m, masked))) => {
                    let unet_in = inpaint::concat(&input, m, masked, n);
                    let shape = [2 * c + 1, lh, lw];
                    self.unet(&unet_in, timestep, call, &plan, &mut step_control, shape)?
                }
                (None, None) => {
                    self.unet(&input, timestep, call, &plan, &mut step_control, lat_shape)?
                }
            };
            call += 1;
            if let (Guidance::Edit, Some((_, g_i))) = (guidance, edit) {
                pred = pix2pix::combine(&pred, n, req.cfg_scale, g_i);
            } else if guided {
                let (u, c) = pred.split_at_mut(n);
                u.iter_mut()
                    .zip(c.iter())
                    .for_each(|(u, c)| *u += req.cfg_scale * (c - *u));
                pred.truncate(n);
            }
            if let (Some(m), Some((a, b))) = (&mask, sched.noise_coefficients()) {
                keep_prediction(&mut pred, &latents, &z0, m, a, b);
            }
            let step_noise = if sched.draws_noise() {
                Some(noise.randn(n))
            } else {
                None
            };
            sched.step(&pred, &mut latents, step_noise.as_deref())?;
            times.steps_run += 1;
        }
        if let Some(m) = &mask {
            crate::mask::keep_outside(&mut latents, &z0, m);
        }
        times.denoise = t.elapsed();
        let t = Instant::now();
        let img = self.decode_latents(&latents, w, h)?;
        times.decode = t.elapsed();
        Ok((img, times))
    }
}

impl Pipeline {
    /// The latent mask of a masked img2img request, after checking that it can run.
    ///
    /// # Errors
    /// No init image, a mask of another size, or a v-prediction model.
    fn latent_mask(&self, req: &Request, mask: &GrayImage) -> Result<Vec<f32>> {
        self.check_mask(req, mask)?;
        if self.scheduler_config.prediction_type != "epsilon" {
            bail!(
                "{}: masks with a {} model are not supported yet (epsilon-prediction models only); \
                 turn the mask off ([mask] use_mask = false) or use another model",
                self.folder.display(),
                self.scheduler_config.prediction_type
            );
        }
        Ok(crate::mask::latent_mask(
            mask,
            req.width / 8,
            req.height / 8,
        ))
    }

    /// Whether a request's mask can be used: it needs an init image and the frame's size.
    ///
    /// # Errors
    /// No init image, or a mask of another size.
    fn check_mask(&self, req: &Request, mask: &GrayImage) -> Result<()> {
        if req.init.is_none() {
            bail!(
                "an inpainting mask needs an init image (img2img); this generation is txt2img: give frame 0 \
                 an init image ([init] image) or turn the mask off ([mask] use_mask = false)"
            );
        }
        if mask.dimensions() != (req.width, req.height) {
            bail!(
                "mask is {}x{}, expected the frame size {}x{}",
                mask.width(),
                mask.height(),
                req.width,
                req.height
            );
        }
        Ok(())
    }

    /// The picture an InstructPix2Pix model edits and the image guidance scale, or `None` for
    /// other models (which ignore `req.pix2pix`).
    ///
    /// # Errors
    /// A pix2pix model with no source image (neither `req.pix2pix.image` nor an init image), a
    /// source of another size, or ControlNet units (not supported with pix2pix).
    fn edit_image<'r>(
        &self,
        req: &Request<'r>,
        controlled: bool,
    ) -> Result<Option<(&'r RgbImage, f32)>> {
        if self.kind != UnetKind::Pix2Pix {
            return Ok(None);
        }
        let p = req.pix2pix.unwrap_or(Pix2Pix {
            image: None,
            image_cfg_scale: pix2pix::DEFAULT_IMAGE_CFG_SCALE,
        });
        let Some(img) = p.image.or(req.init) else {
            bail!(
                "{}: an InstructPix2Pix model (its UNet takes 8 input channels) edits a picture, and this \
                 generation has none: give the frame an init image (`[init] image`, Deforum's init_image) or \
                 use Video Input mode, or use a Stable Diffusion model for txt2img",
                self.folder.display()
            );
        };
        if img.dimensions() != (req.width, req.height) {
            bail!(
                "InstructPix2Pix source image is {}x{}, expected {}x{}",
                img.width(),
                img.height(),
                req.width,
                req.height
            );
        }
        if controlled {
            bail!(
                "{}: ControlNet units with an InstructPix2Pix model are not supported; remove the \
                 [controlnet] units or use a Stable Diffusion model",
                self.folder.display()
            );
        }
        if !p.image_cfg_scale.is_finite() {
            bail!(
                "pix2pix_img_cfg_scale is {}, expected a finite number",
                p.image_cfg_scale
            );
        }
        Ok(Some((img, p.image_cfg_scale)))
    }
}

/// A1111's `x0 ← x0·m + z0·(1 − m)` on the prediction of one model call, for an ε-predicting
/// model whose noising at this call is `x = a·x0 + b·ε`: outside the latent mask `m` the noise
/// prediction becomes `(x − a·z0)/b`, the one whose predicted original is exactly `z0`.
fn keep_prediction(pred: &mut [f32], x: &[f32], z0: &[f32], m: &[f32], a: f32, b: f32) {
    for ((pc, xc), zc) in pred
        .chunks_exact_mut(m.len())
        .zip(x.chunks_exact(m.len()))
        .zip(z0.chunks_exact(m.len()))
    {
        for (((p, &x), &z), &k) in pc.iter_mut().zip(xc).zip(zc).zip(m) {
            if k == 0.0 {
                *p = (x - a * z) / b;
            }
        }
    }
}

/// The message for a folder mixing SD and SDXL parts: what an SDXL folder has, and what was found.
fn layout_error(folder: &Path, unet: &Model, second_encoder: bool) -> String {
    let mut parts: Vec<String> = std::fs::read_dir(folder)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("model.onnx").is_file())
                .map(|e| format!("{}/", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    let expected = "an SDXL folder has text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/ and a UNet with \
                    inputs sample, timestep, encoder_hidden_states, text_embeds, time_ids; an SD 1.x/2.x folder has \
                    no text_encoder_2/ and a UNet without text_embeds and time_ids";
    let found = format!(
        "found models {} and UNet inputs {}",
        parts.join(", "),
        unet.input_names().join(", ")
    );
    if second_encoder {
        format!(
            "{}: text_encoder_2/ is there (SDXL), but {} does not take both text_embeds and time_ids: {expected}; {found}",
            folder.display(),
            unet.path.display()
        )
    } else {
        format!(
            "{}: {} takes SDXL's added conditioning (text_embeds, time_ids), but there is no text_encoder_2/model.onnx: \
             {expected}; {found}",
            folder.display(),
            unet.path.display()
        )
    }
}

/// RGB8 to NCHW float in [-1, 1] (diffusers' `VaeImageProcessor.preprocess`).
pub fn image_to_nchw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 / 255.0) * 2.0 - 1.0;
        }
    }
    out
}

/// NCHW float in [-1, 1] to RGB8: `round(clamp(x / 2 + 0.5, 0, 1) · 255)`, ties to even as numpy.
pub fn nchw_to_image(data: &[f32], width: u32, height: u32) -> RgbImage {
    let plane = (width * height) as usize;
    let mut img = RgbImage::new(width, height);
    for (i, px) in img.pixels_mut().enumerate() {
        for c in 0..3 {
            let v = (data[c * plane + i] / 2.0 + 0.5).clamp(0.0, 1.0);
            px[c] = (v * 255.0).round_ties_even() as u8;
        }
    }
    img
}
