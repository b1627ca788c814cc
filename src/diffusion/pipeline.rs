//! txt2img and img2img over an ONNX Stable Diffusion folder, with the semantics of diffusers'
//! `StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use image::RgbImage;
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};

use super::prompt::{self, PromptSyntax};
use super::rng::TorchRng;
use super::scheduler::{SamplerKind, Scheduler, SchedulerConfig};
use super::tokenizer::ClipTokenizer;

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
    /// Multiplier of the img2img noise before it is added (A1111's `initial_noise_multiplier`,
    /// Deforum's noise_multiplier schedule); 1 = diffusers.
    pub noise_multiplier: f32,
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
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimestepInput {
    Int64Vec,
    Float32Vec,
    Float32Scalar,
}

struct Model {
    session: Session,
    path: PathBuf,
}

impl Model {
    fn load(folder: &Path, sub: &str) -> Result<Model> {
        let path = folder.join(sub).join("model.onnx");
        if !path.is_file() {
            bail!(
                "model file {} is missing; a Stable Diffusion ONNX folder needs text_encoder/, unet/, vae_encoder/ and \
                 vae_decoder/, each with a model.onnx (export one with `optimum-cli export onnx`)",
                path.display()
            );
        }
        let env = crate::runtime::environment()?;
        let session = Session::builder(env)
            .map_err(|e| anyhow!("{e}"))?
            .with_deterministic_compute(true)
            .map_err(|e| anyhow!("{e}"))?
            .commit_from_file(&path)
            .map_err(|e| anyhow!("cannot load {}: {e}", path.display()))?;
        Ok(Model { session, path })
    }

    fn input(&self, name: &str) -> Result<(TensorElementType, usize, bool)> {
        let outlet = self
            .session
            .inputs()
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| {
                let found: Vec<&str> = self.session.inputs().iter().map(|o| o.name()).collect();
                anyhow!("{}: expected an input named `{name}`, found {}", self.path.display(), found.join(", "))
            })?;
        match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } => Ok((*ty, shape.len(), shape.first().is_some_and(|d| *d < 0))),
            other => bail!("{}: input `{name}` is {other:?}, expected a tensor", self.path.display()),
        }
    }

    fn has_output(&self, name: &str) -> bool {
        self.session.outputs().iter().any(|o| o.name() == name)
    }

    fn run(&mut self, inputs: Vec<(Cow<'static, str>, SessionInputValue<'static>)>, output: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let path = self.path.display().to_string();
        let outputs = self.session.run(inputs).map_err(|e| anyhow!("running {path}: {e}"))?;
        let value = outputs.get(output).ok_or_else(|| anyhow!("{path}: no output named `{output}`"))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| anyhow!("{path}: output `{output}`: {e}"))?;
        Ok((shape.iter().map(|&d| d as usize).collect(), data.to_vec()))
    }
}

fn f32_input(shape: Vec<i64>, data: Vec<f32>) -> Result<SessionInputValue<'static>> {
    Ok(Tensor::from_array((shape, data)).map_err(|e| anyhow!("{e}"))?.into())
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
    embed_cache: HashMap<(PromptSyntax, String), (Vec<usize>, Vec<f32>)>,
}

impl Pipeline {
    /// Loads every part of an optimum/diffusers ONNX folder and checks its IO conventions.
    pub fn load(folder: &Path) -> Result<Pipeline> {
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
        let text_encoder = Model::load(folder, "text_encoder")?;
        let unet = Model::load(folder, "unet")?;
        let vae_encoder = Model::load(folder, "vae_encoder")?;
        let vae_decoder = Model::load(folder, "vae_decoder")?;

        let (ids_ty, _, text_batch_dynamic) = text_encoder.input("input_ids")?;
        let ids_int64 = match ids_ty {
            TensorElementType::Int64 => true,
            TensorElementType::Int32 => false,
            t => bail!("{}: input_ids is {t:?}; expected int32 or int64", text_encoder.path.display()),
        };
        let (sample_ty, _, unet_batch_dynamic) = unet.input("sample")?;
        if sample_ty != TensorElementType::Float32 {
            bail!(
                "{}: the UNet takes {sample_ty:?}; only float32 exports are supported so far (fp16 support is planned)",
                unet.path.display()
            );
        }
        let timestep = match unet.input("timestep")? {
            (TensorElementType::Int64, _, _) => TimestepInput::Int64Vec,
            (TensorElementType::Float32, 0, _) => TimestepInput::Float32Scalar,
            (TensorElementType::Float32, _, _) => TimestepInput::Float32Vec,
            (t, _, _) => bail!("{}: timestep is {t:?}; expected int64 or float32", unet.path.display()),
        };
        unet.input("encoder_hidden_states")?;
        vae_encoder.input("sample")?;
        vae_decoder.input("latent_sample")?;
        let encoder_parameters = if vae_encoder.has_output("latent_parameters") {
            true
        } else if vae_encoder.has_output("latent_sample") {
            false
        } else {
            bail!("{}: expected an output `latent_parameters` or `latent_sample`", vae_encoder.path.display());
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
            embed_cache: HashMap::new(),
        })
    }

    /// The folder the pipeline was loaded from.
    pub fn folder(&self) -> &Path {
        &self.folder
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
        let key = (syntax, text.to_string());
        if let Some(hit) = self.embed_cache.get(&key) {
            return Ok(hit.clone());
        }
        let out = match syntax {
            PromptSyntax::Plain => {
                let ids = self.tokenizer.encode(text)?;
                self.run_text_encoder(&ids, 1)?
            }
            PromptSyntax::A1111 | PromptSyntax::A1111NoNorm => {
                let chunks = prompt::chunks(&self.tokenizer, text)?;
                let ids: Vec<u32> = chunks.iter().flat_map(|c| c.ids.iter().copied()).collect();
                let (shape, mut z) = self.run_text_encoder(&ids, chunks.len())?;
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

    /// `last_hidden_state` `[batch, seq, D]` of `batch` id sequences of equal length (one call
    /// when the model's batch axis is dynamic, else one per sequence).
    fn run_text_encoder(&mut self, ids: &[u32], batch: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let seq = ids.len() / batch;
        let mut shape = vec![0, seq, 0];
        let mut out = Vec::new();
        let per_call = if self.text_batch_dynamic { batch } else { 1 };
        for part in ids.chunks(seq * per_call) {
            let dims = vec![(part.len() / seq) as i64, seq as i64];
            let input: SessionInputValue<'static> = if self.ids_int64 {
                Tensor::from_array((dims, part.iter().map(|&i| i as i64).collect::<Vec<_>>())).map_err(|e| anyhow!("{e}"))?.into()
            } else {
                Tensor::from_array((dims, part.iter().map(|&i| i as i32).collect::<Vec<_>>())).map_err(|e| anyhow!("{e}"))?.into()
            };
            let (s, data) = self.text_encoder.run(vec![("input_ids".into(), input)], "last_hidden_state")?;
            shape[2] = s.get(2).copied().unwrap_or(0);
            out.extend(data);
        }
        shape[0] = batch;
        Ok((shape, out))
    }

    /// Image to latents: `scaling · (mean + std · noise)` from the VAE encoder's distribution.
    pub fn encode_image(&mut self, img: &RgbImage, noise: &mut dyn NoiseSource) -> Result<Vec<f32>> {
        let (w, h) = img.dimensions();
        let data = image_to_nchw(img);
        let input = f32_input(vec![1, 3, h as i64, w as i64], data)?;
        let scaling = self.vae_scaling;
        if self.encoder_parameters {
            let (shape, params) = self.vae_encoder.run(vec![("sample".into(), input)], "latent_parameters")?;
            if shape.len() != 4 || shape[1] != 8 {
                bail!("{}: latent_parameters has shape {shape:?}, expected [1, 8, h, w]", self.vae_encoder.path.display());
            }
            let n = params.len() / 2;
            let (mean, logvar) = params.split_at(n);
            let eps = noise.randn(n);
            Ok((0..n).map(|i| (mean[i] + (0.5 * logvar[i].clamp(-30.0, 20.0)).exp() * eps[i]) * scaling).collect())
        } else {
            let (_, sample) = self.vae_encoder.run(vec![("sample".into(), input)], "latent_sample")?;
            Ok(sample.iter().map(|x| x * scaling).collect())
        }
    }

    /// Latents to image: decode `latents / scaling`, then `round(clamp(x/2 + 0.5) · 255)`.
    pub fn decode_latents(&mut self, latents: &[f32], width: u32, height: u32) -> Result<RgbImage> {
        let data: Vec<f32> = latents.iter().map(|x| x / self.vae_scaling).collect();
        let input = f32_input(vec![1, 4, (height / 8) as i64, (width / 8) as i64], data)?;
        let (shape, out) = self.vae_decoder.run(vec![("latent_sample".into(), input)], "sample")?;
        if shape != [1, 3, height as usize, width as usize] {
            bail!("{}: decoded image has shape {shape:?}, expected [1, 3, {height}, {width}]", self.vae_decoder.path.display());
        }
        Ok(nchw_to_image(&out, width, height))
    }

    /// One UNet evaluation of `latents` (`[batch, c, h, w]` flat, one image per embedding) at
    /// timestep `t`; `embeds` holds each batch element's text embeddings and sequence length. One
    /// batched call when the batch axis is dynamic and the sequence lengths agree, else one call
    /// per element (A1111 does the same for a prompt and negative prompt of different lengths).
    fn unet(&mut self, latents: &[f32], t: f32, embeds: &[(&[f32], usize)], lat_shape: [usize; 3], dim: usize) -> Result<Vec<f32>> {
        let [c, h, w] = lat_shape;
        let batch = embeds.len();
        let timestep = self.timestep;
        let call = |this: &mut Self, lat: &[f32], emb: Vec<f32>, b: usize, seq: usize| -> Result<Vec<f32>> {
            let sample = f32_input(vec![b as i64, c as i64, h as i64, w as i64], lat.to_vec())?;
            let ehs = f32_input(vec![b as i64, seq as i64, dim as i64], emb)?;
            let ts: SessionInputValue<'static> = match timestep {
                TimestepInput::Int64Vec => Tensor::from_array((vec![1i64], vec![t as i64])).map_err(|e| anyhow!("{e}"))?.into(),
                TimestepInput::Float32Vec => Tensor::from_array((vec![1i64], vec![t])).map_err(|e| anyhow!("{e}"))?.into(),
                TimestepInput::Float32Scalar => Tensor::from_array(((), vec![t])).map_err(|e| anyhow!("{e}"))?.into(),
            };
            let (_, out) = this.unet.run(
                vec![("sample".into(), sample), ("timestep".into(), ts), ("encoder_hidden_states".into(), ehs)],
                "out_sample",
            )?;
            Ok(out)
        };
        let same_len = embeds.iter().all(|e| e.1 == embeds[0].1);
        if batch == 1 || (self.unet_batch_dynamic && same_len) {
            let emb: Vec<f32> = embeds.iter().flat_map(|e| e.0.iter().copied()).collect();
            call(self, latents, emb, batch, embeds[0].1)
        } else {
            let n = latents.len() / batch;
            let mut out = Vec::with_capacity(latents.len());
            for (k, e) in embeds.iter().enumerate() {
                out.extend(call(self, &latents[k * n..(k + 1) * n], e.0.to_vec(), 1, e.1)?);
            }
            Ok(out)
        }
    }

    /// Runs one txt2img or img2img generation; noise is drawn from `noise` in diffusers' order
    /// (VAE encoder sample, initial noise, then per-step noise of stochastic samplers).
    pub fn generate(&mut self, req: &Request, noise: &mut dyn NoiseSource) -> Result<(RgbImage, StageTimes)> {
        let mut times = StageTimes::default();
        let (w, h) = (req.width, req.height);
        if w % 8 != 0 || h % 8 != 0 {
            bail!("image size {w}x{h} is not a multiple of 8");
        }
        let mut sched = match req.init {
            Some(_) => Scheduler::img2img(req.sampler, &self.scheduler_config, req.steps, req.denoise)?,
            None => Scheduler::new(req.sampler, &self.scheduler_config, req.steps)?,
        }
        .with_eta(req.eta);
        if let Some(init) = req.init {
            if init.dimensions() != (w, h) {
                bail!("init image is {}x{}, expected {w}x{h}", init.width(), init.height());
            }
            if sched.remaining() == 0 {
                // nothing to denoise: diffusers would refuse; keep the image as it is
                return Ok((init.clone(), times));
            }
        }
        let t0 = Instant::now();
        let guided = req.cfg_scale > 1.0;
        let (eshape, cond) =
            self.encode(req.prompt, req.prompt_syntax).with_context(|| format!("encoding prompt {:?}", req.prompt))?;
        let uncond = if guided {
            Some(self.encode(req.negative, req.prompt_syntax).with_context(|| format!("encoding negative prompt {:?}", req.negative))?)
        } else {
            None
        };
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
                let mut eps = noise.randn(n);
                if req.noise_multiplier != 1.0 {
                    eps.iter_mut().for_each(|e| *e *= req.noise_multiplier);
                }
                sched.add_noise(&mut x0, &eps);
                x0
            }
            None => {
                let s = sched.init_noise_sigma();
                noise.randn(n).into_iter().map(|x| x * s).collect()
            }
        };
        let t = Instant::now();
        let mut input = vec![0.0f32; n * batch];
        while let Some(timestep) = sched.timestep() {
            for chunk in input.chunks_mut(n) {
                chunk.copy_from_slice(&latents);
            }
            sched.scale_model_input(&mut input);
            let mut pred = match &uncond {
                Some((ushape, u)) => self.unet(&input, timestep, &[(u, ushape[1]), (&cond, eshape[1])], lat_shape, dim)?,
                None => self.unet(&input, timestep, &[(&cond, eshape[1])], lat_shape, dim)?,
            };
            if guided {
                let (u, c) = pred.split_at_mut(n);
                u.iter_mut().zip(c.iter()).for_each(|(u, c)| *u += req.cfg_scale * (c - *u));
                pred.truncate(n);
            }
            let step_noise = if sched.draws_noise() { Some(noise.randn(n)) } else { None };
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
