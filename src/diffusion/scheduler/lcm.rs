//! `LCMScheduler` (latent consistency models): each step predicts the clean latents with the
//! consistency boundary conditions and re-noises them to the next timestep.

use anyhow::{Result, bail};

use super::ddim::ddpm_add_noise;
use super::{Algorithm, SchedulerConfig, sigmas};

/// diffusers' `original_inference_steps` default (the distillation schedule).
const ORIGINAL_STEPS: usize = 50;
/// diffusers' `timestep_scaling` default.
const TIMESTEP_SCALING: f32 = 10.0;

/// LCM multistep sampling.
#[derive(Debug, Clone)]
pub(super) struct Lcm {
    v_pred: bool,
    alphas_cumprod: Vec<f32>,
    final_alpha: f32,
    timesteps: Vec<f32>,
    num_steps: usize,
}

impl Lcm {
    /// `LCMScheduler.from_config(cfg)` then `set_timesteps(n, strength=strength)` (strength 1 for
    /// the full schedule).
    ///
    /// # Errors
    /// When `n` exceeds the 50-step distillation schedule or the part of it that `strength` keeps.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize, strength: f64) -> Result<Lcm> {
        let k = cfg.num_train_timesteps / ORIGINAL_STEPS;
        let kept = (ORIGINAL_STEPS as f64 * strength) as usize;
        let origin: Vec<i64> = (1..=kept).rev().map(|i| (i * k) as i64 - 1).collect();
        if n > ORIGINAL_STEPS {
            bail!(
                "LCM runs at most {ORIGINAL_STEPS} steps (its distillation schedule); {n} were asked for"
            );
        }
        if origin.len() / n < 1 {
            bail!(
                "LCM: {n} steps at strength {strength} leave fewer than one distillation step each; lower the steps or raise the strength"
            );
        }
        let timesteps = sigmas::np_linspace_open(0.0, origin.len() as f64, n)
            .iter()
            .map(|&x| origin[x.floor() as usize] as f32)
            .collect();
        let alphas_cumprod = cfg.alphas_cumprod();
        let final_alpha = if cfg.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Lcm {
            v_pred: cfg.prediction_type == "v_prediction",
            alphas_cumprod,
            final_alpha,
            timesteps,
            num_steps: n,
        })
    }
}

impl Algorithm for Lcm {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]) {
        ddpm_add_noise(&self.alphas_cumprod, self.timesteps[i], x0, noise);
    }

    fn draws_noise(&self, i: usize) -> bool {
        i != self.num_steps - 1
    }

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>) {
        let t = self.timesteps[i];
        let prev_t = self.timesteps.get(i + 1).copied().unwrap_or(t);
        let a_t = self.alphas_cumprod[t as usize];
        let a_prev = if prev_t >= 0.0 {
            self.alphas_cumprod[prev_t as usize]
        } else {
            self.final_alpha
        };
        let (b_t, b_prev) = (1.0 - a_t, 1.0 - a_prev);
        let scaled = t * TIMESTEP_SCALING;
        let c_skip = 0.25 / (scaled * scaled + 0.25);
        let c_out = scaled / (scaled * scaled + 0.25).sqrt();
        let (sa, sb) = (a_t.sqrt(), b_t.sqrt());
        let (sap, sbp) = (a_prev.sqrt(), b_prev.sqrt());
        let renoise = self.draws_noise(i);
        for (k, x) in sample.iter_mut().enumerate() {
            let m = model_output[k];
            let x0 = if self.v_pred {
                sa * *x - sb * m
            } else {
                (*x - sb * m) / sa
            };
            let denoised = c_out * x0 + c_skip * *x;
            *x = match noise {
                Some(n) if renoise => sap * denoised + sbp * n[k],
                _ => denoised,
            };
        }
    }
}
