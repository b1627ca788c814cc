//! `DPMSolverMultistepScheduler` as DPM++ 2M (`algorithm_type="dpmsolver++"`, `solver_order=2`,
//! midpoint, `final_sigmas_type="zero"`, `lower_order_final`), with or without Karras sigmas.

use super::sigmas::{self, alpha_sigma, lambda};
use super::{Algorithm, SchedulerConfig};

/// DPM++ 2M: a data-prediction multistep solver keeping the previous step's x0 prediction.
#[derive(Debug, Clone)]
pub(super) struct DpmPp2M {
    v_pred: bool,
    timesteps: Vec<f32>,
    /// One more than the timesteps, ending at 0.
    sigmas: Vec<f32>,
    /// The x0 predictions of the previous and the current step.
    prev_x0: Vec<f32>,
    x0: Vec<f32>,
    lower_order_nums: usize,
}

impl DpmPp2M {
    /// `DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2,
    /// use_karras_sigmas=karras)` then `set_timesteps(n)`.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize, karras: bool) -> DpmPp2M {
        let (timesteps, sigmas) = multistep_schedule(cfg, n, karras);
        DpmPp2M {
            v_pred: cfg.prediction_type == "v_prediction",
            timesteps,
            sigmas,
            prev_x0: Vec::new(),
            x0: Vec::new(),
            lower_order_nums: 0,
        }
    }
}

/// Timesteps and sigmas (one more, ending at 0) of diffusers' multistep solvers (DPM-Solver,
/// UniPC): integer timesteps; Karras sigmas with their timesteps rounded from `_sigma_to_t`.
pub(super) fn multistep_schedule(
    cfg: &SchedulerConfig,
    n: usize,
    karras: bool,
) -> (Vec<f32>, Vec<f32>) {
    let all = sigmas::train_sigmas(&cfg.alphas_cumprod());
    let (timesteps, mut s): (Vec<f64>, Vec<f32>) = if karras {
        let log_sigmas: Vec<f32> = all.iter().map(|s| s.ln()).collect();
        let k = sigmas::karras(all[0] as f64, all[all.len() - 1] as f64, n);
        let t = k
            .iter()
            .map(|&s| sigmas::sigma_to_t(s, &log_sigmas).round_ties_even())
            .collect();
        (t, k.iter().map(|&s| s as f32).collect())
    } else {
        let t = sigmas::multistep_timesteps(
            cfg.spacing("linspace"),
            cfg.num_train_timesteps,
            n,
            cfg.steps_offset,
        );
        let s = t
            .iter()
            .map(|&t| sigmas::np_interp(t, &all) as f32)
            .collect();
        (t, s)
    };
    s.push(0.0);
    (timesteps.iter().map(|&t| t as f32).collect(), s)
}

/// Multistep `add_noise`: `alpha_t · x0 + sigma_t · noise` at sigma `s`.
pub(super) fn vp_add_noise(s: f32, x0: &mut [f32], noise: &[f32]) {
    let (a, st) = alpha_sigma(s);
    x0.iter_mut()
        .zip(noise)
        .for_each(|(x, n)| *x = a * *x + st * n);
}

/// Data prediction (`convert_model_output`) at sigma `s`, written into `out`.
pub(super) fn data_prediction(
    v_pred: bool,
    s: f32,
    sample: &[f32],
    model_output: &[f32],
    out: &mut Vec<f32>,
) {
    let (a, st) = alpha_sigma(s);
    out.clear();
    out.extend(sample.iter().zip(model_output).map(|(&x, &m)| {
        if v_pred {
            a * x - st * m
        } else {
            (x - st * m) / a
        }
    }));
}

impl Algorithm for DpmPp2M {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]) {
        vp_add_noise(self.sigmas[i], x0, noise);
    }

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], _noise: Option<&[f32]>) {
        // with final_sigmas_type "zero" the last step is always first order
        let lower_order_final = i == self.timesteps.len() - 1;
        std::mem::swap(&mut self.prev_x0, &mut self.x0);
        data_prediction(
            self.v_pred,
            self.sigmas[i],
            sample,
            model_output,
            &mut self.x0,
        );
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let (lambda_t, lambda_s0) = (lambda(alpha_t, sigma_t), lambda(alpha_s0, sigma_s0));
        let h = lambda_t - lambda_s0;
        let a = sigma_t / sigma_s0;
        let b = alpha_t * ((-h).exp() - 1.0);
        if self.lower_order_nums < 1 || lower_order_final {
            for (x, &m) in sample.iter_mut().zip(&self.x0) {
                *x = a * *x - b * m;
            }
        } else {
            let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
            let h_0 = lambda_s0 - lambda(alpha_s1, sigma_s1);
            let r0 = h_0 / h;
            let inv_r0 = 1.0 / r0;
            let c = 0.5 * b;
            for (k, x) in sample.iter_mut().enumerate() {
                let (m0, m1) = (self.x0[k], self.prev_x0[k]);
                let d1 = inv_r0 * (m0 - m1);
                *x = a * *x - b * m0 - c * d1;
            }
        }
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
    }
}
