//! `HeunDiscreteScheduler` (k-diffusion's `sample_heun`): two model calls per step, an Euler
//! step then its trapezoidal correction; the model-call timesteps repeat every interior one.

use super::euler::euler_x0;
use super::{Algorithm, SchedulerConfig, sigmas};

/// Heun's second-order method.
#[derive(Debug, Clone)]
pub(super) struct Heun {
    v_pred: bool,
    /// `[t0, t1, t1, t2, t2, …]`: one entry per model call.
    timesteps: Vec<f32>,
    /// `[s0, s1, s1, …, s_{n-1}, s_{n-1}, 0]`.
    sigmas: Vec<f32>,
    init_sigma: f32,
    /// First-order derivative, dt and sample kept for the correction (diffusers' `state_in_first_order` is `dt.is_none()`).
    prev_derivative: Vec<f32>,
    dt: Option<f32>,
    prev_sample: Vec<f32>,
}

impl Heun {
    /// `HeunDiscreteScheduler.from_config(cfg)` then `set_timesteps(n)`.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize) -> Heun {
        let spacing = cfg.spacing("linspace");
        let ts = sigmas::euler_timesteps(spacing, cfg.num_train_timesteps, n, cfg.steps_offset);
        let all = sigmas::train_sigmas(&cfg.alphas_cumprod());
        let mut s: Vec<f32> = ts
            .iter()
            .map(|&t| sigmas::np_interp(t as f64, &all) as f32)
            .collect();
        s.push(0.0);
        let mut sig = vec![s[0]];
        for &v in &s[1..s.len() - 1] {
            sig.extend([v, v]);
        }
        sig.push(0.0);
        let mut timesteps = vec![ts[0]];
        for &t in &ts[1..] {
            timesteps.extend([t, t]);
        }
        let max = sig.iter().cloned().fold(0.0f32, f32::max);
        let init_sigma = if matches!(spacing, "linspace" | "trailing") {
            max
        } else {
            (max * max + 1.0).sqrt()
        };
        Heun {
            v_pred: cfg.prediction_type == "v_prediction",
            timesteps,
            sigmas: sig,
            init_sigma,
            prev_derivative: Vec::new(),
            dt: None,
            prev_sample: Vec::new(),
        }
    }
}

impl Algorithm for Heun {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn order(&self) -> usize {
        2
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

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], _noise: Option<&[f32]>) {
        match self.dt.take() {
            None => {
                let (sigma, sigma_next) = (self.sigmas[i], self.sigmas[i + 1]);
                let dt = sigma_next - sigma;
                self.prev_derivative.clear();
                self.prev_sample.clear();
                self.prev_sample.extend_from_slice(sample);
                for (k, x) in sample.iter_mut().enumerate() {
                    let x0 = euler_x0(self.v_pred, sigma, *x, model_output[k]);
                    let d = (*x - x0) / sigma;
                    self.prev_derivative.push(d);
                    *x += d * dt;
                }
                self.dt = Some(dt);
            }
            Some(dt) => {
                let sigma_next = self.sigmas[i];
                for (k, x) in sample.iter_mut().enumerate() {
                    let x0 = euler_x0(self.v_pred, sigma_next, *x, model_output[k]);
                    let d = (*x - x0) / sigma_next;
                    let d = (self.prev_derivative[k] + d) / 2.0;
                    *x = self.prev_sample[k] + d * dt;
                }
            }
        }
    }
}
