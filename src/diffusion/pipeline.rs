//! txt2img and img2img over an ONNX Stable Diffusion folder, with the semantics of diffusers'
//! `StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use image::RgbImage;
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType};

use super::prompt::{self, PromptSyntax};
use super::rng::TorchRng;
use super::scheduler::{SamplerKind, Scheduler, SchedulerConfig};
use super::session::{Model, SessionOptions, float_input, float_value};
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimestepInput {
    Int64Vec,
    Float32Vec,
    Float32Scalar,
}

/// A loaded Stable Diffusion 1.x/2.x ONNX pipeline.
pub struct Pipeline {
    folder: PathBuf,
    tokenizer: ClipTokenizer,
    text_encoder: Model,
    unet: Model,
    vae_encoder: Model,
    vae_decoder: Model,
    /// The model's scheduler configuration.
    pub scheduler_config: SchedulerConfig,
    /// VAE latent scaling factor (0.18215 for SD 1.x).
    pub vae_scaling: f32,
    ids_int64: bool,
    text_batch_dynamic: bool,
    timestep: TimestepInput,
    unet_batch_dynamic: bool,
    encoder_parameters: bool,
    /// float16 inputs of the UNet (`sample`, `encoder_hidden_states`) and the VAE.
    unet_f16: bool,
    vae_encoder_f16: bool,
    vae_decoder_f16: bool,
    /// Text encoder outputs `hidden_states.0..=N` (for clip skip), N = layers.
    hidden_layers: Option<usize>,
    /// The final layer norm (weight, bias) recovered from the encoder's outputs, once needed.
    final_norm: Option<(Vec<f64>, Vec<f64>)>,
    layer_norm_eps: f64,
    /// Provider fallbacks and other notes from loading.
    notes: Vec<String>,
    embed_cache: HashMap<EmbedKey, (Vec<usize>, Vec<f32>)>,
}

/// Prompt embeddings are cached per (syntax, clip skip, text).
type EmbedKey = (PromptSyntax, u32, String);

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
            },
        )
    }

    /// Loads every part of an optimum/diffusers ONNX folder with the given provider and cache,
    /// and checks its IO conventions (ids int32/int64, timestep int64 `[N]` or float `[]`,
    /// float32 or float16 tensors, VAE encoder `latent_parameters` or `latent_sample`).
    ///
    /// # Errors
    /// A missing or unreadable file, a model with unexpected inputs or outputs, or a provider that
    /// cannot run; the message names the file or the provider.
    pub fn load_with(folder: &Path, opts: &SessionOptions) -> Result<Pipeline> {
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
        let tokenizer = ClipTokenizer::load(&folder.join("tokenizer"))?;
        let sched_path = folder.join("scheduler").join("scheduler_config.json");
        let scheduler_config = SchedulerConfig::load(&sched_path)?;
        let vae_scaling = ["vae_decoder", "vae_encoder"]
            .iter()
            .filter_map(|d| std::fs::read_to_string(folder.join(d).join("config.json")).ok())
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .find_map(|v| v["scaling_factor"].as_f64())
            .unwrap_or(0.18215) as f32;
        let mut notes = Vec::new();
        let text_encoder = Model::load(folder, "text_encoder", opts, &mut notes)?;
        let unet = Model::load(folder, "unet", opts, &mut notes)?;
        let vae_encoder = Model::load(folder, "vae_encoder", opts, &mut notes)?;
        let vae_decoder = Model::load(folder, "vae_decoder", opts, &mut notes)?;

        let (ids_ty, _, text_batch_dynamic) = text_encoder.input("input_ids")?;
        let ids_int64 = match ids_ty {
            TensorElementType::Int64 => true,
            TensorElementType::Int32 => false,
            t => bail!(
                "{}: input_ids is {t:?}; expected int32 or int64",
                text_encoder.path.display()
            ),
        };
        let (_, _, unet_batch_dynamic) = unet.input("sample")?;
        let unet_f16 = unet.input_is_f16("sample")?;
        if unet.input_is_f16("encoder_hidden_states")? != unet_f16 {
            bail!(
                "{}: sample and encoder_hidden_states differ in float type",
                unet.path.display()
            );
        }
        let timestep = match unet.input("timestep")? {
            (TensorElementType::Int64, _, _) => TimestepInput::Int64Vec,
            (TensorElementType::Float32, 0, _) => TimestepInput::Float32Scalar,
            (TensorElementType::Float32, _, _) => TimestepInput::Float32Vec,
            (t, _, _) => bail!(
                "{}: timestep is {t:?}; expected int64 or float32",
                unet.path.display()
            ),
        };
        let vae_encoder_f16 = vae_encoder.input_is_f16("sample")?;
        let vae_decoder_f16 = vae_decoder.input_is_f16("latent_sample")?;
        let hidden_layers = (1..64)
            .take_while(|i| text_encoder.has_output(&format!("hidden_states.{i}")))
            .last();
        let layer_norm_eps =
            std::fs::read_to_string(folder.join("text_encoder").join("config.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["layer_norm_eps"].as_f64())
                .unwrap_or(1e-5);
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
            tokenizer,
            text_encoder,
            unet,
            vae_encoder,
            vae_decoder,
            scheduler_config,
            vae_scaling,
            ids_int64,
            text_batch_dynamic,
            timestep,
            unet_batch_dynamic,
            encoder_parameters,
            unet_f16,
            vae_encoder_f16,
            vae_decoder_f16,
            hidden_layers,
            final_norm: None,
            layer_norm_eps,
            notes,
            embed_cache: HashMap::new(),
        })
    }

    /// The folder the pipeline was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
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

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
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
    /// final layer norm applied, as A1111 does), and so on.
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
        let clip_skip = clip_skip.max(1);
        let key = (syntax, clip_skip, text.to_string());
        if let Some(hit) = self.embed_cache.get(&key) {
            return Ok(hit.clone());
        }
        let out = match syntax {
            PromptSyntax::Plain => {
                let ids = self.tokenizer.encode(text)?;
                self.run_text_encoder(&ids, 1, clip_skip)?
            }
            PromptSyntax::A1111 | PromptSyntax::A1111NoNorm => {
                let chunks = prompt::chunks(&self.tokenizer, text)?;
                let ids: Vec<u32> = chunks.iter().flat_map(|c| c.ids.iter().copied()).collect();
                let (shape, mut z) = self.run_text_encoder(&ids, chunks.len(), clip_skip)?;
                let per = z.len() / chunks.len();
                for (c, zc) in chunks.iter().zip(z.chunks_mut(per)) {
                    prompt::apply_emphasis(zc, &c.weights, syntax == PromptSyntax::A1111);
                }
                (vec![1, shape[0] * shape[1], shape[2]], z)
            }
        };
        self.embed_cache.insert(key, out.clone());
        Ok(out)
    }

    /// Hidden states `[batch, seq, D]` of `batch` id sequences of equal length (one call when the
    /// model's batch axis is dynamic, else one per sequence): `last_hidden_state`, or for clip
    /// skip k > 1 `hidden_states[-k]` through the final layer norm.
    fn run_text_encoder(
        &mut self,
        ids: &[u32],
        batch: usize,
        clip_skip: u32,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let seq = ids.len() / batch;
        let mut shape = vec![batch, seq, 0];
        let mut out = Vec::new();
        let per_call = if self.text_batch_dynamic { batch } else { 1 };
        let skip = clip_skip as usize;
        let names: Vec<String> = if skip <= 1 {
            vec!["last_hidden_state".into()]
        } else {
            let layers = self.hidden_layers.ok_or_else(|| {
                anyhow!(
                    "clip skip {clip_skip} needs the text encoder's hidden states, but {} has no `hidden_states.*` outputs;                      export it with them (optimum: --model-kwargs '{{\"output_hidden_states\": true}}') or set clipskip to 1",
                    self.text_encoder.path.display()
                )
            })?;
            if skip > layers {
                bail!(
                    "clip skip {clip_skip}: {} has only {layers} layers",
                    self.text_encoder.path.display()
                );
            }
            vec![
                "last_hidden_state".into(),
                format!("hidden_states.{layers}"),
                format!("hidden_states.{}", layers + 1 - skip),
            ]
        };
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for part in ids.chunks(seq * per_call) {
            let dims = vec![(part.len() / seq) as i64, seq as i64];
            let input: SessionInputValue<'static> = if self.ids_int64 {
                Tensor::from_array((dims, part.iter().map(|&i| i as i64).collect::<Vec<_>>()))
                    .map_err(|e| anyhow!("{e}"))?
                    .into()
            } else {
                Tensor::from_array((dims, part.iter().map(|&i| i as i32).collect::<Vec<_>>()))
                    .map_err(|e| anyhow!("{e}"))?
                    .into()
            };
            let mut res = self
                .text_encoder
                .run(vec![("input_ids".into(), input)], &name_refs)?;
            shape[2] = res[0].0.get(2).copied().unwrap_or(0);
            if skip <= 1 {
                out.extend(res.swap_remove(0).1);
                continue;
            }
            let dim = shape[2];
            if self.final_norm.is_none() {
                self.final_norm = Some(fit_layer_norm(
                    &res[1].1,
                    &res[0].1,
                    dim,
                    self.layer_norm_eps,
                )?);
            }
            let (w, b) = self
                .final_norm
                .as_ref()
                .ok_or_else(|| anyhow!("final layer norm missing"))?;
            out.extend(layer_norm(&res[2].1, dim, self.layer_norm_eps, w, b));
        }
        Ok((shape, out))
    }

    /// Image to latents: `scaling · (mean + std · noise)` from the VAE encoder's distribution.
    pub fn encode_image(
        &mut self,
        img: &RgbImage,
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>> {
        let (w, h) = img.dimensions();
        let data = image_to_nchw(img);
        let input = float_input(vec![1, 3, h as i64, w as i64], &data, self.vae_encoder_f16)?;
        let scaling = self.vae_scaling;
        if self.encoder_parameters {
            let (shape, params) = self
                .vae_encoder
                .run1(vec![("sample".into(), input)], "latent_parameters")?;
            if shape.len() != 4 || shape[1] != 8 {
                bail!(
                    "{}: latent_parameters has shape {shape:?}, expected [1, 8, h, w]",
                    self.vae_encoder.path.display()
                );
            }
            let n = params.len() / 2;
            let (mean, logvar) = params.split_at(n);
            let eps = noise.randn(n);
            Ok((0..n)
                .map(|i| (mean[i] + (0.5 * logvar[i].clamp(-30.0, 20.0)).exp() * eps[i]) * scaling)
                .collect())
        } else {
            let (_, sample) = self
                .vae_encoder
                .run1(vec![("sample".into(), input)], "latent_sample")?;
            Ok(sample.iter().map(|x| x * scaling).collect())
        }
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

    /// How the UNet is called for a generation: batches of latents with their text embeddings,
    /// built once. One batched call when the batch axis is dynamic and the sequence lengths
    /// agree, else one call per element (A1111 does the same for a prompt and negative prompt of
    /// different lengths).
    fn unet_plan(
        &self,
        embeds: &[(&[f32], usize)],
        dim: usize,
    ) -> Result<Vec<(usize, usize, DynValue)>> {
        let same_len = embeds.iter().all(|e| e.1 == embeds[0].1);
        if embeds.len() == 1 || (self.unet_batch_dynamic && same_len) {
            let emb: Vec<f32> = embeds.iter().flat_map(|e| e.0.iter().copied()).collect();
            let b = embeds.len();
            Ok(vec![(
                0,
                b,
                float_value(
                    vec![b as i64, embeds[0].1 as i64, dim as i64],
                    &emb,
                    self.unet_f16,
                )?,
            )])
        } else {
            embeds
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    Ok((
                        k,
                        1,
                        float_value(vec![1, e.1 as i64, dim as i64], e.0, self.unet_f16)?,
                    ))
                })
                .collect()
        }
    }

    /// One UNet evaluation of `latents` (`[batch, c, h, w]` flat) at timestep `t`, by `plan`.
    fn unet(
        &mut self,
        latents: &[f32],
        t: f32,
        plan: &[(usize, usize, DynValue)],
        lat_shape: [usize; 3],
    ) -> Result<Vec<f32>> {
        let [c, h, w] = lat_shape;
        let n = c * h * w;
        let mut out = Vec::with_capacity(latents.len());
        for (first, b, ehs) in plan {
            let sample = float_input(
                vec![*b as i64, c as i64, h as i64, w as i64],
                &latents[first * n..(first + b) * n],
                self.unet_f16,
            )?;
            let ts: SessionInputValue<'static> = match self.timestep {
                TimestepInput::Int64Vec => Tensor::from_array((vec![1i64], vec![t as i64]))
                    .map_err(|e| anyhow!("{e}"))?
                    .into(),
                TimestepInput::Float32Vec => Tensor::from_array((vec![1i64], vec![t]))
                    .map_err(|e| anyhow!("{e}"))?
                    .into(),
                TimestepInput::Float32Scalar => Tensor::from_array(((), vec![t]))
                    .map_err(|e| anyhow!("{e}"))?
                    .into(),
            };
            let (_, pred) = self.unet.run1(
                vec![
                    ("sample".into(), sample),
                    ("timestep".into(), ts),
                    ("encoder_hidden_states".into(), SessionInputValue::from(ehs)),
                ],
                "out_sample",
            )?;
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
        let base = noise.randn(n);
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
        let busy_before = self.busy();
        let (img, mut times) = self.generate_inner(req, noise)?;
        times.ort = self.busy() - busy_before;
        Ok((img, times))
    }

    /// Time all four sessions have spent in `Session::run`.
    fn busy(&self) -> Duration {
        self.text_encoder.busy + self.unet.busy + self.vae_encoder.busy + self.vae_decoder.busy
    }

    fn generate_inner(
        &mut self,
        req: &Request,
        noise: &mut dyn NoiseSource,
    ) -> Result<(RgbImage, StageTimes)> {
        let mut times = StageTimes::default();
        let (w, h) = (req.width, req.height);
        if w % 8 != 0 || h % 8 != 0 {
            bail!("image size {w}x{h} is not a multiple of 8");
        }
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
        let t0 = Instant::now();
        let guided = req.cfg_scale > 1.0;
        let (eshape, cond) = self
            .encode_skip(req.prompt, req.prompt_syntax, req.clip_skip)
            .with_context(|| format!("encoding prompt {:?}", req.prompt))?;
        let uncond = if guided {
            Some(
                self.encode_skip(req.negative, req.prompt_syntax, req.clip_skip)
                    .with_context(|| format!("encoding negative prompt {:?}", req.negative))?,
            )
        } else {
            None
        };
        let (mut eshape, mut cond, mut uncond) = (eshape, cond, uncond);
        if let Some(tr) = req.travel.filter(|t| t.weight > 0.0) {
            let (nshape, next) = self.encode_skip(tr.prompt, req.prompt_syntax, req.clip_skip)?;
            // prompts of different lengths (chunk counts) cannot be blended token by token:
            // take the nearer one
            if nshape == eshape {
                cond = blend_embeddings(&cond, &next, eshape[2], tr.weight, tr.slerp);
            } else if tr.weight >= 0.5 {
                (eshape, cond) = (nshape, next);
            }
            if let Some((ushape, u)) = uncond.as_mut() {
                let (nushape, nu) =
                    self.encode_skip(tr.negative, req.prompt_syntax, req.clip_skip)?;
                if nushape == *ushape {
                    *u = blend_embeddings(u, &nu, ushape[2], tr.weight, tr.slerp);
                } else if tr.weight >= 0.5 {
                    (*ushape, *u) = (nushape, nu);
                }
            }
        }
        let dim = eshape[2];
        let batch = if guided { 2 } else { 1 };
        times.text = t0.elapsed();
        let lat_shape = [4usize, (h / 8) as usize, (w / 8) as usize];
        let n = lat_shape.iter().product::<usize>();
        let mut latents = match req.init {
            Some(init) => {
                let t = Instant::now();
                let mut x0 = self.encode_image(init, noise)?;
                times.encode = t.elapsed();
                let mut eps = self.initial_noise(req, noise, lat_shape);
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
        let t = Instant::now();
        let plan = match &uncond {
            Some((ushape, u)) => self.unet_plan(&[(u, ushape[1]), (&cond, eshape[1])], dim)?,
            None => self.unet_plan(&[(&cond, eshape[1])], dim)?,
        };
        let mut input = vec![0.0f32; n * batch];
        while let Some(timestep) = sched.timestep() {
            for chunk in input.chunks_mut(n) {
                chunk.copy_from_slice(&latents);
            }
            sched.scale_model_input(&mut input);
            let mut pred = self.unet(&input, timestep, &plan, lat_shape)?;
            if guided {
                let (u, c) = pred.split_at_mut(n);
                u.iter_mut()
                    .zip(c.iter())
                    .for_each(|(u, c)| *u += req.cfg_scale * (c - *u));
                pred.truncate(n);
            }
            let step_noise = if sched.draws_noise() {
                Some(noise.randn(n))
            } else {
                None
            };
            sched.step(&pred, &mut latents, step_noise.as_deref())?;
            times.steps_run += 1;
        }
        times.denoise = t.elapsed();
        let t = Instant::now();
        let img = self.decode_latents(&latents, w, h)?;
        times.decode = t.elapsed();
        Ok((img, times))
    }
}

/// `(x - mean) / sqrt(var + eps)` of each `dim`-vector, in float64.
fn normalize_rows(x: &[f32], dim: usize, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(dim) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend(row.iter().map(|&v| (v as f64 - mean) * inv));
    }
    out
}

/// The text encoder's final layer norm `(weight, bias)`, recovered from one run's
/// `last_hidden_state = LayerNorm(hidden_states[-1])` by a least-squares fit per channel (exact up
/// to float32 rounding: the outputs are an affine function of the normalised inputs).
fn fit_layer_norm(
    hidden: &[f32],
    last: &[f32],
    dim: usize,
    eps: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let x = normalize_rows(hidden, dim, eps);
    let rows = x.len() / dim;
    let mut w = vec![0.0; dim];
    let mut b = vec![0.0; dim];
    for d in 0..dim {
        let xs: Vec<f64> = (0..rows).map(|r| x[r * dim + d]).collect();
        let ys: Vec<f64> = (0..rows).map(|r| last[r * dim + d] as f64).collect();
        let (mx, my) = (
            xs.iter().sum::<f64>() / rows as f64,
            ys.iter().sum::<f64>() / rows as f64,
        );
        let sxx: f64 = xs.iter().map(|v| (v - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(a, c)| (a - mx) * (c - my)).sum();
        if sxx <= 0.0 {
            bail!("cannot recover the text encoder's final layer norm (channel {d} is constant)");
        }
        w[d] = sxy / sxx;
        b[d] = my - w[d] * mx;
    }
    Ok((w, b))
}

/// LayerNorm with the recovered weight and bias, back to float32.
fn layer_norm(x: &[f32], dim: usize, eps: f64, w: &[f64], b: &[f64]) -> Vec<f32> {
    normalize_rows(x, dim, eps)
        .iter()
        .enumerate()
        .map(|(i, v)| (v * w[i % dim] + b[i % dim]) as f32)
        .collect()
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
