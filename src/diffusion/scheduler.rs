//! Samplers with diffusers' semantics (`DDIMScheduler`, `EulerDiscreteScheduler`,
//! `EulerAncestralDiscreteScheduler`), configured from the model's `scheduler_config.json` as
//! `from_config` does. Arithmetic is float32 like torch's, so results match diffusers to ~1e-6.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
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
    /// Reads `scheduler_config.json`.
    pub fn load(path: &Path) -> Result<SchedulerConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: SchedulerConfig =
            serde_json::from_str(&text).with_context(|| format!("{} is not a valid scheduler config", path.display()))?;
        if !matches!(cfg.beta_schedule.as_str(), "scaled_linear" | "linear") {
            bail!("{}: beta_schedule `{}` is not supported (scaled_linear, linear)", path.display(), cfg.beta_schedule);
        }
        if !matches!(cfg.prediction_type.as_str(), "epsilon" | "v_prediction") {
            bail!("{}: prediction_type `{}` is not supported (epsilon, v_prediction)", path.display(), cfg.prediction_type);
        }
        Ok(cfg)
    }

    /// `alphas_cumprod` in float32, as torch computes it.
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let n = self.num_train_timesteps;
        let betas: Vec<f32> = match self.beta_schedule.as_str() {
            "scaled_linear" => torch_linspace(self.beta_start.sqrt() as f32, self.beta_end.sqrt() as f32, n)
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
        .map(|i| if i < half { start + step * i as f32 } else { end - step * (n as i64 - i - 1) as f32 })
        .collect()
}

/// Which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// DDIM (eta for stochasticity).
    Ddim,
    /// Euler (k-diffusion's `sample_euler`).
    Euler,
    /// Euler ancestral.
    EulerAncestral,
}

impl SamplerKind {
    /// From a canonical name (see [`crate::scene::sampler_name`]).
    pub fn from_name(name: &str) -> Result<SamplerKind> {
        Ok(match crate::scene::sampler_name(name).map_err(anyhow::Error::msg)? {
            "DDIM" => SamplerKind::Ddim,
            "Euler" => SamplerKind::Euler,
            _ => SamplerKind::EulerAncestral,
        })
    }

    /// True when `step` draws noise.
    pub fn is_stochastic(self, eta: f32) -> bool {
        match self {
            SamplerKind::Ddim => eta > 0.0,
            SamplerKind::Euler => false,
            SamplerKind::EulerAncestral => true,
        }
    }
}

/// A sampler set up for a number of steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: SamplerKind,
    cfg: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    num_steps: usize,
    /// Timesteps of the full schedule, highest first.
    pub timesteps: Vec<f32>,
    /// Euler sigmas (one more than timesteps, ending at 0); empty for DDIM.
    sigmas: Vec<f32>,
    /// The effective timestep spacing.
    spacing: String,
    /// DDIM eta.
    pub eta: f32,
}

impl Scheduler {
    /// `Class.from_config(cfg)` then `set_timesteps(num_steps)`.
    pub fn new(kind: SamplerKind, cfg: &SchedulerConfig, num_steps: usize) -> Scheduler {
        let alphas_cumprod = cfg.alphas_cumprod();
        let n_train = cfg.num_train_timesteps;
        let n = num_steps.max(1);
        let default_spacing = match kind {
            SamplerKind::Ddim => "leading",
            _ => "linspace",
        };
        let spacing = cfg.timestep_spacing.as_deref().unwrap_or(default_spacing);
        let timesteps: Vec<f64> = match spacing {
            "linspace" => (0..n)
                .rev()
                .map(|i| if n == 1 { 0.0 } else { i as f64 * (n_train - 1) as f64 / (n - 1) as f64 })
                .map(|t| if kind == SamplerKind::Ddim { t.round_ties_even() } else { t })
                .collect(),
            "trailing" => {
                let ratio = n_train as f64 / n as f64;
                (0..n).map(|i| (n_train as f64 - i as f64 * ratio).round_ties_even() - 1.0).collect()
            }
            _ => {
                let ratio = n_train / n;
                (0..n).rev().map(|i| (i * ratio) as f64 + cfg.steps_offset as f64).collect()
            }
        };
        let timesteps: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
        let sigmas = match kind {
            SamplerKind::Ddim => Vec::new(),
            _ => {
                let all: Vec<f32> = alphas_cumprod.iter().map(|&a| ((1.0 - a) / a).sqrt()).collect();
                let mut s: Vec<f32> = timesteps
                    .iter()
                    .map(|&t| {
                        // np.interp over integer positions, in float64
                        let t = t as f64;
                        let lo = (t.floor() as usize).min(all.len() - 1);
                        let hi = (lo + 1).min(all.len() - 1);
                        let f = t - lo as f64;
                        (all[lo] as f64 * (1.0 - f) + all[hi] as f64 * f) as f32
                    })
                    .collect();
                s.push(0.0);
                s
            }
        };
        Scheduler { kind, cfg: cfg.clone(), alphas_cumprod, num_steps: n, timesteps, sigmas, spacing: spacing.to_string(), eta: 0.0 }
    }

    /// The sampler kind.
    pub fn kind(&self) -> SamplerKind {
        self.kind
    }

    /// Factor for txt2img's initial noise (diffusers' `init_noise_sigma`).
    pub fn init_noise_sigma(&self) -> f32 {
        match self.kind {
            SamplerKind::Ddim => 1.0,
            _ => {
                let max = self.sigmas.iter().cloned().fold(0.0f32, f32::max);
                if matches!(self.spacing.as_str(), "linspace" | "trailing") { max } else { (max * max + 1.0).sqrt() }
            }
        }
    }

    /// The first step index of an img2img run at diffusers strength `denoise` (0..=1):
    /// `t_start = steps - min(int(steps * denoise), steps)`.
    pub fn img2img_start(&self, denoise: f64) -> usize {
        let init = ((self.num_steps as f64 * denoise) as usize).min(self.num_steps);
        self.num_steps - init
    }

    /// `scale_model_input` for step `i`.
    pub fn scale_model_input(&self, sample: &mut [f32], i: usize) {
        if self.kind == SamplerKind::Ddim {
            return;
        }
        let s = self.sigmas[i];
        let d = (s * s + 1.0).sqrt();
        sample.iter_mut().for_each(|x| *x /= d);
    }

    /// `add_noise(x0, noise, timesteps[i])` in place on `x0`.
    pub fn add_noise(&self, x0: &mut [f32], noise: &[f32], i: usize) {
        match self.kind {
            SamplerKind::Ddim => {
                let a = self.alphas_cumprod[self.timesteps[i] as usize];
                let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
                x0.iter_mut().zip(noise).for_each(|(x, n)| *x = sa * *x + sb * n);
            }
            _ => {
                let s = self.sigmas[i];
                x0.iter_mut().zip(noise).for_each(|(x, n)| *x += n * s);
            }
        }
    }

    /// One step from `sample` at step index `i` with the model output; `noise` supplies the
    /// stochastic samplers' draw (same shape). Returns (prev_sample, pred_original_sample).
    pub fn step(&self, model_output: &[f32], i: usize, sample: &[f32], noise: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let v_pred = self.cfg.prediction_type == "v_prediction";
        match self.kind {
            SamplerKind::Ddim => {
                let t = self.timesteps[i] as i64;
                let prev_t = t - (self.cfg.num_train_timesteps / self.num_steps) as i64;
                let a_t = self.alphas_cumprod[t as usize];
                let a_prev = if prev_t >= 0 {
                    self.alphas_cumprod[prev_t as usize]
                } else if self.cfg.set_alpha_to_one {
                    1.0
                } else {
                    self.alphas_cumprod[0]
                };
                let b_t = 1.0 - a_t;
                let b_prev = 1.0 - a_prev;
                let variance = (b_prev / b_t) * (1.0 - a_t / a_prev);
                let std_dev = self.eta * variance.sqrt();
                let dir_coef = (1.0 - a_prev - std_dev * std_dev).sqrt();
                let (sa, sb, sap) = (a_t.sqrt(), b_t.sqrt(), a_prev.sqrt());
                let mut prev = Vec::with_capacity(sample.len());
                let mut x0s = Vec::with_capacity(sample.len());
                for k in 0..sample.len() {
                    let (x, m) = (sample[k], model_output[k]);
                    let (x0, eps) = if v_pred { (sa * x - sb * m, sa * m + sb * x) } else { ((x - sb * m) / sa, m) };
                    let mut p = sap * x0 + dir_coef * eps;
                    if self.eta > 0.0 {
                        if let Some(n) = noise {
                            p += std_dev * n[k];
                        }
                    }
                    prev.push(p);
                    x0s.push(x0);
                }
                (prev, x0s)
            }
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let sigma = self.sigmas[i];
                let sigma_next = self.sigmas[i + 1];
                let x0s: Vec<f32> = sample
                    .iter()
                    .zip(model_output)
                    .map(|(&x, &m)| {
                        if v_pred {
                            m * (-sigma / (sigma * sigma + 1.0).sqrt()) + x / (sigma * sigma + 1.0)
                        } else {
                            x - sigma * m
                        }
                    })
                    .collect();
                let (dt, sigma_up) = if self.kind == SamplerKind::Euler {
                    (sigma_next - sigma, 0.0)
                } else {
                    let (sf2, st2) = (sigma * sigma, sigma_next * sigma_next);
                    let up = (st2 * (sf2 - st2) / sf2).sqrt();
                    let down = (st2 - up * up).sqrt();
                    (down - sigma, up)
                };
                let prev = sample
                    .iter()
                    .zip(&x0s)
                    .enumerate()
                    .map(|(k, (&x, &x0))| {
                        let d = (x - x0) / sigma;
                        let mut p = x + d * dt;
                        if self.kind == SamplerKind::EulerAncestral {
                            if let Some(n) = noise {
                                p += n[k] * sigma_up;
                            }
                        }
                        p
                    })
                    .collect();
                (prev, x0s)
            }
        }
    }
}

