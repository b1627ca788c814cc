//! Samplers with diffusers' semantics, configured from the model's `scheduler_config.json` as
//! `from_config` does: one file per algorithm (DDIM, Euler, Euler a, DPM++ 2M (Karras), LCM, Heun,
//! UniPC) behind [`Scheduler`], which runs any of them one model call at a time and keeps the
//! multistep state between calls. Arithmetic is float32 in torch's order of operations, so step
//! outputs match diffusers to ~1e-6 relative. Depends on nothing but the config file.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

mod ddim;
mod dpm;
mod euler;
mod heun;
mod lcm;
mod sigmas;
mod unipc;
use serde::Deserialize;

/// The fields of `scheduler_config.json` the samplers use (others are ignored, as diffusers does).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Training timesteps (1000 for SD).
    pub num_train_timesteps: usize,
    /// First beta.
    pub beta_start: f64,
    /// Last beta.
    pub beta_end: f64,
    /// `scaled_linear` (SD) or `linear`.
    pub beta_schedule: String,
    /// `epsilon` or `v_prediction`.
    pub prediction_type: String,
    /// Added to `leading` timesteps.
    pub steps_offset: usize,
    /// `leading`, `linspace` or `trailing`; absent means each sampler's own default.
    pub timestep_spacing: Option<String>,
    /// DDIM: whether the final step goes to alpha 1.
    pub set_alpha_to_one: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: "linear".into(),
            prediction_type: "epsilon".into(),
            steps_offset: 0,
            timestep_spacing: None,
            set_alpha_to_one: true,
        }
    }
}

impl SchedulerConfig {
    /// The configured `timestep_spacing`, or `default` (each sampler's own) when the file has none.
    fn spacing<'a>(&'a self, default: &'a str) -> &'a str {
        self.timestep_spacing.as_deref().unwrap_or(default)
    }

    /// Reads `scheduler_config.json`.
    pub fn load(path: &Path) -> Result<SchedulerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: SchedulerConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid scheduler config", path.display()))?;
        if !matches!(cfg.beta_schedule.as_str(), "scaled_linear" | "linear") {
            bail!(
                "{}: beta_schedule `{}` is not supported (scaled_linear, linear)",
                path.display(),
                cfg.beta_schedule
            );
        }
        if !matches!(cfg.prediction_type.as_str(), "epsilon" | "v_prediction") {
            bail!(
                "{}: prediction_type `{}` is not supported (epsilon, v_prediction)",
                path.display(),
                cfg.prediction_type
            );
        }
        Ok(cfg)
    }

    /// `alphas_cumprod` in float32, as torch computes it.
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let n = self.num_train_timesteps;
        let betas: Vec<f32> = match self.beta_schedule.as_str() {
            "scaled_linear" => torch_linspace(
                self.beta_start.sqrt() as f32,
                self.beta_end.sqrt() as f32,
                n,
            )
            .into_iter()
            .map(|b| b * b)
            .collect(),
            _ => torch_linspace(self.beta_start as f32, self.beta_end as f32, n),
        };
        // torch's CPU cumprod accumulates in double
        let mut acc = 1.0f64;
        betas
            .iter()
            .map(|b| {
                acc *= (1.0 - b) as f64;
                acc as f32
            })
            .collect()
    }
}

/// `torch.linspace(start, end, n, dtype=float32)`: forward from the start for the first half,
/// backward from the end for the rest.
fn torch_linspace(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let half = (n / 2) as i64;
    (0..n as i64)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (n as i64 - i - 1) as f32
            }
        })
        .collect()
}

/// Which algorithm; names as A1111/Deforum users know them ([`SamplerKind::name`]), diffusers'
/// scheduler classes and ComfyUI names accepted by [`SamplerKind::from_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerKind {
    /// DDIM (`DDIMScheduler`; eta for stochasticity).
    Ddim,
    /// Euler (`EulerDiscreteScheduler`).
    Euler,
    /// Euler ancestral (`EulerAncestralDiscreteScheduler`).
    EulerAncestral,
    /// DPM++ 2M (`DPMSolverMultistepScheduler`, dpmsolver++, order 2).
    DpmPp2M,
    /// DPM++ 2M with Karras sigmas (`use_karras_sigmas=True`).
    DpmPp2MKarras,
    /// LCM (`LCMScheduler`), for latent-consistency models and LoRAs.
    Lcm,
    /// Heun (`HeunDiscreteScheduler`): two model calls per step.
    Heun,
    /// UniPC (`UniPCMultistepScheduler`, bh2, order 2).
    UniPc,
}

impl SamplerKind {
    /// Every sampler, in the order the docs list them.
    pub const ALL: [SamplerKind; 8] = [
        SamplerKind::EulerAncestral,
        SamplerKind::Euler,
        SamplerKind::Ddim,
        SamplerKind::DpmPp2M,
        SamplerKind::DpmPp2MKarras,
        SamplerKind::Lcm,
        SamplerKind::Heun,
        SamplerKind::UniPc,
    ];

    /// The A1111/Deforum name (`"DPM++ 2M Karras"`).
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "DDIM",
            SamplerKind::Euler => "Euler",
            SamplerKind::EulerAncestral => "Euler a",
            SamplerKind::DpmPp2M => "DPM++ 2M",
            SamplerKind::DpmPp2MKarras => "DPM++ 2M Karras",
            SamplerKind::Lcm => "LCM",
            SamplerKind::Heun => "Heun",
            SamplerKind::UniPc => "UniPC",
        }
    }

    /// The diffusers scheduler class it matches.
    pub fn diffusers_class(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "DDIMScheduler",
            SamplerKind::Euler => "EulerDiscreteScheduler",
            SamplerKind::EulerAncestral => "EulerAncestralDiscreteScheduler",
            SamplerKind::DpmPp2M | SamplerKind::DpmPp2MKarras => "DPMSolverMultistepScheduler",
            SamplerKind::Lcm => "LCMScheduler",
            SamplerKind::Heun => "HeunDiscreteScheduler",
            SamplerKind::UniPc => "UniPCMultistepScheduler",
        }
    }

    /// From a user's spelling (see [`crate::scene::sampler_name`]).
    ///
    /// # Errors
    /// An unknown name, with a did-you-mean and the list of names.
    pub fn from_name(name: &str) -> Result<SamplerKind> {
        let canonical = crate::scene::sampler_name(name).map_err(anyhow::Error::msg)?;
        SamplerKind::ALL
            .into_iter()
            .find(|k| k.name() == canonical)
            .ok_or_else(|| anyhow::anyhow!("sampler {canonical} has no implementation"))
    }

    /// True when the sampler is ancestral (its `eta` is Deforum's `ancestral_eta`).
    pub fn is_ancestral(self) -> bool {
        self == SamplerKind::EulerAncestral
    }
}

/// One algorithm: its model-call timesteps and the update it applies after each call.
trait Algorithm: Send + std::fmt::Debug {
    /// Timesteps of the model calls of the full schedule (Heun repeats the interior ones).
    fn timesteps(&self) -> &[f32];
    /// Model calls per step (diffusers' `order`): 2 for Heun.
    fn order(&self) -> usize {
        1
    }
    /// diffusers' `init_noise_sigma`.
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }
    /// DDIM's eta; ignored by the others.
    fn set_eta(&mut self, _eta: f32) {}
    /// `scale_model_input` for call `i`, in place.
    fn scale_model_input(&self, _i: usize, _x: &mut [f32]) {}
    /// `add_noise` at call `i`'s noise level, in place on `x0`.
    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]);
    /// Whether `step` at call `i` draws from the generator.
    fn draws_noise(&self, _i: usize) -> bool {
        false
    }
    /// `step` after call `i`: `sample` becomes `prev_sample`.
    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>);
}

/// A sampler set up for a run, stepped one model call at a time (diffusers' `step_index`); it
/// keeps whatever the algorithm carries between calls (previous predictions, Heun's first half).
#[derive(Debug)]
pub struct Scheduler {
    kind: SamplerKind,
    algo: Box<dyn Algorithm>,
    begin: usize,
    index: usize,
}

impl Scheduler {
    /// `Class.from_config(cfg)` then `set_timesteps(steps)`, for a full (txt2img) run.
    ///
    /// # Errors
    /// Zero steps, or more than the sampler can run (LCM: 50).
    pub fn new(kind: SamplerKind, cfg: &SchedulerConfig, steps: usize) -> Result<Scheduler> {
        if steps == 0 {
            bail!("{}: the number of steps must be at least 1", kind.name());
        }
        if steps > cfg.num_train_timesteps {
            bail!(
                "{}: {steps} steps is more than the model's {} training timesteps",
                kind.name(),
                cfg.num_train_timesteps
            );
        }
        let algo: Box<dyn Algorithm> = match kind {
            SamplerKind::Ddim => Box::new(ddim::Ddim::new(cfg, steps)),
            SamplerKind::Euler => Box::new(euler::Euler::new(cfg, steps, false)),
            SamplerKind::EulerAncestral => Box::new(euler::Euler::new(cfg, steps, true)),
            SamplerKind::DpmPp2M => Box::new(dpm::DpmPp2M::new(cfg, steps, false)),
            SamplerKind::DpmPp2MKarras => Box::new(dpm::DpmPp2M::new(cfg, steps, true)),
            SamplerKind::Lcm => Box::new(lcm::Lcm::new(cfg, steps, 1.0)?),
            SamplerKind::Heun => Box::new(heun::Heun::new(cfg, steps)),
            SamplerKind::UniPc => Box::new(unipc::UniPc::new(cfg, steps)),
        };
        Ok(Scheduler {
            kind,
            algo,
            begin: 0,
            index: 0,
        })
    }

    /// A run of `StableDiffusionImg2ImgPipeline` at strength `denoise` (0..=1): `new`, then
    /// `get_timesteps` (`t_start = steps - min(int(steps · denoise), steps)`) and
    /// `set_begin_index(t_start · order)`. [`Scheduler::remaining`] is 0 when nothing is denoised.
    ///
    /// # Errors
    /// As [`Scheduler::new`].
    pub fn img2img(
        kind: SamplerKind,
        cfg: &SchedulerConfig,
        steps: usize,
        denoise: f64,
    ) -> Result<Scheduler> {
        let mut s = Scheduler::new(kind, cfg, steps)?;
        let init = ((steps as f64 * denoise.clamp(0.0, 1.0)) as usize).min(steps);
        let begin = ((steps - init) * s.algo.order()).min(s.algo.timesteps().len());
        s.begin = begin;
        s.index = begin;
        Ok(s)
    }

    /// LCM as diffusers' `LatentConsistencyModelImg2ImgPipeline` runs it: `set_timesteps(steps,
    /// strength=denoise)` spreads all `steps` over the part of the distillation schedule below the
    /// strength.
    ///
    /// # Errors
    /// When the steps do not fit in that part of the schedule.
    pub fn lcm_with_strength(
        cfg: &SchedulerConfig,
        steps: usize,
        denoise: f64,
    ) -> Result<Scheduler> {
        if steps == 0 {
            bail!("LCM: the number of steps must be at least 1");
        }
        Ok(Scheduler {
            kind: SamplerKind::Lcm,
            algo: Box::new(lcm::Lcm::new(cfg, steps, denoise)?),
            begin: 0,
            index: 0,
        })
    }

    /// Sets DDIM's eta (0 = deterministic); other samplers ignore it.
    pub fn with_eta(mut self, eta: f32) -> Scheduler {
        self.algo.set_eta(eta);
        self
    }

    /// The sampler kind.
    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// Timesteps of every model call of the full schedule, highest first.
    pub fn timesteps(&self) -> &[f32] {
        self.algo.timesteps()
    }

    /// Index of the first model call of this run (non-zero for img2img).
    pub fn begin_index(&self) -> usize {
        self.begin
    }

    /// Model calls per sampler step (diffusers' `order`: 2 for Heun).
    pub fn order(&self) -> usize {
        self.algo.order()
    }

    /// Model calls left.
    pub fn remaining(&self) -> usize {
        self.algo.timesteps().len().saturating_sub(self.index)
    }

    /// Timestep of the next model call; `None` when the run is over.
    pub fn timestep(&self) -> Option<f32> {
        self.algo.timesteps().get(self.index).copied()
    }

    /// Factor of txt2img's initial noise (diffusers' `init_noise_sigma`).
    pub fn init_noise_sigma(&self) -> f32 {
        self.algo.init_noise_sigma()
    }

    /// `add_noise(x0, noise, timesteps[begin])` in place on `x0` (img2img's starting latents).
    pub fn add_noise(&self, x0: &mut [f32], noise: &[f32]) {
        if self.begin < self.algo.timesteps().len() {
            self.algo.add_noise(self.begin, x0, noise);
        }
    }

    /// `(a, b)` with `add_noise(x0, ε)` = `a·x0 + b·ε` at the next model call's noise level
    /// (`None` when the run is over): what masked img2img needs to turn "the original latents"
    /// into the noise prediction that gives them.
    pub fn noise_coefficients(&self) -> Option<(f32, f32)> {
        if self.index >= self.algo.timesteps().len() {
            return None;
        }
        let mut a = [1.0f32];
        self.algo.add_noise(self.index, &mut a, &[0.0]);
        let mut b = [0.0f32];
        self.algo.add_noise(self.index, &mut b, &[1.0]);
        Some((a[0], b[0]))
    }

    /// `scale_model_input` for the next model call, in place.
    pub fn scale_model_input(&self, x: &mut [f32]) {
        if self.index < self.algo.timesteps().len() {
            self.algo.scale_model_input(self.index, x);
        }
    }

    /// Whether the next [`Scheduler::step`] needs a noise draw (of the latents' size), in the
    /// order diffusers draws from its generator.
    pub fn draws_noise(&self) -> bool {
        self.index < self.algo.timesteps().len() && self.algo.draws_noise(self.index)
    }

    /// `step(model_output, timestep, sample)`: `sample` becomes the previous (less noisy) sample.
    ///
    /// # Errors
    /// When the run is over, a size mismatch, or a missing noise draw.
    pub fn step(
        &mut self,
        model_output: &[f32],
        sample: &mut [f32],
        noise: Option<&[f32]>,
    ) -> Result<()> {
        if self.index >= self.algo.timesteps().len() {
            bail!("{}: step called after the last timestep", self.kind.name());
        }
        if model_output.len() != sample.len() || noise.is_some_and(|n| n.len() != sample.len()) {
            bail!(
                "{}: model output, sample and noise differ in size",
                self.kind.name()
            );
        }
        if self.algo.draws_noise(self.index) && noise.is_none() {
            bail!("{}: this step needs a noise draw", self.kind.name());
        }
        self.algo.step(self.index, model_output, sample, noise);
        self.index += 1;
        Ok(())
    }
}
