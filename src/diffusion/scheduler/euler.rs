//! `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler` (k-diffusion's `sample_euler`
//! and `sample_euler_ancestral`).

use super::{Algorithm, SchedulerConfig, sigmas};

/// Euler, optionally ancestral.
#[derive(Debug, Clone)]
pub(super) struct Euler {
    v_pred: bool,
    ancestral: bool,
    timesteps: Vec<f32>,
    /// One more than the timesteps, ending at 0.
    sigmas: Vec<f32>,
    init_sigma: f32,
}

impl Euler {
    /// `from_config(cfg)` then `set_timesteps(n)`.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize, ancestral: bool) -> Euler {
        let spacing = cfg.spacing("linspace");
        let timesteps =
            sigmas::euler_timesteps(spacing, cfg.num_train_timesteps, n, cfg.steps_offset);
        let all = sigmas::train_sigmas(&cfg.alphas_cumprod());
        let mut s: Vec<f32> = timesteps
            .iter()
            .map(|&t| sigmas::np_interp(t as f64, &all) as f32)
            .collect();
        s.push(0.0);
        let max = s.iter().cloned().fold(0.0f32, f32::max);
        let init_sigma = if matches!(spacing, "linspace" | "trailing") {
            max
        } else {
            (max * max + 1.0).sqrt()
        };
        Euler {
            v_pred: cfg.prediction_type == "v_prediction",
            ancestral,
            timesteps,
            sigmas: s,
            init_sigma,
        }
    }
}

/// x0 prediction of the Euler family: `x - σ·ε`, or the v-prediction form.
pub(super) fn euler_x0(v_pred: bool, sigma: f32, x: f32, m: f32) -> f32 {
    if v_pred {
        m * (-sigma / (sigma * sigma + 1.0).sqrt()) + x / (sigma * sigma + 1.0)
    } else {
        x - sigma * m
    }
}

impl Algorithm for Euler {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_sigma
    }

    fn scale_model_input(&self, i: usize, x: &mut [f32]) {
        let s = self.sigmas[i];
        let d = (s * s + 1.0).sqrt();
        x.iter_mut().for_each(|v| *v /= d);
    }

    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]) {
        let s = self.sigmas[i];
        x0.iter_mut().zip(noise).for_each(|(x, n)| *x += n * s);
    }

    fn draws_noise(&self, _i: usize) -> bool {
        self.ancestral
    }

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>) {
        let sigma = self.sigmas[i];
        let sigma_next = self.sigmas[i + 1];
        let (dt, sigma_up) = if self.ancestral {
            let (sf2, st2) = (sigma * sigma, sigma_next * sigma_next);
            let up = (st2 * (sf2 - st2) / sf2).sqrt();
            let down = (st2 - up * up).sqrt();
            (down - sigma, up)
        } else {
            (sigma_next - sigma, 0.0)
        };
        for (k, x) in sample.iter_mut().enumerate() {
            let x0 = euler_x0(self.v_pred, sigma, *x, model_output[k]);
            let d = (*x - x0) / sigma;
            let mut p = *x + d * dt;
            if let Some(n) = noise.filter(|_| self.ancestral) {
                p += n[k] * sigma_up;
            }
            *x = p;
        }
    }
}
