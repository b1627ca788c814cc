//! `UniPCMultistepScheduler` with diffusers' defaults (`solver_order=2`, `bh2`, `predict_x0`,
//! `lower_order_final`, no disabled corrector): a predictor step, corrected on the next call once
//! the model has been evaluated at the predicted point.

use super::dpm::{data_prediction, multistep_schedule, vp_add_noise};
use super::sigmas::{alpha_sigma, lambda};
use super::{Algorithm, SchedulerConfig};

/// UniPC (bh2, order 2).
#[derive(Debug, Clone)]
pub(super) struct UniPc {
    v_pred: bool,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    /// diffusers' `model_outputs`: the data predictions of the two latest calls, and a spare buffer.
    older: Vec<f32>,
    newer: Vec<f32>,
    scratch: Vec<f32>,
    /// The sample the last predictor started from (`last_sample`), and its order.
    last_sample: Vec<f32>,
    has_last: bool,
    this_order: usize,
    lower_order_nums: usize,
}

impl UniPc {
    /// `UniPCMultistepScheduler.from_config(cfg)` then `set_timesteps(n)`.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize) -> UniPc {
        let (timesteps, sigmas) = multistep_schedule(cfg, n, false);
        UniPc {
            v_pred: cfg.prediction_type == "v_prediction",
            timesteps,
            sigmas,
            older: Vec::new(),
            newer: Vec::new(),
            scratch: Vec::new(),
            last_sample: Vec::new(),
            has_last: false,
            this_order: 1,
            lower_order_nums: 0,
        }
    }

    /// `(lambda_t - lambda_s0, alpha_t, sigma_t / sigma_s0)` from sigma `s0` to sigma `t`.
    fn span(&self, t: usize, s0: usize) -> (f32, f32, f32) {
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[t]);
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[s0]);
        (
            lambda(alpha_t, sigma_t) - lambda(alpha_s0, sigma_s0),
            alpha_t,
            sigma_t / sigma_s0,
        )
    }

    /// `rk = (lambda_si - lambda_s0) / h`.
    fn rk(&self, si: usize, s0: usize, h: f32) -> f32 {
        let (a_si, s_si) = alpha_sigma(self.sigmas[si]);
        let (a_s0, s_s0) = alpha_sigma(self.sigmas[s0]);
        (lambda(a_si, s_si) - lambda(a_s0, s_s0)) / h
    }
}

/// `(h_phi_1, B_h, b)` of bh2 for `hh = -h`, with `b` of orders 1 and 2.
fn phis(hh: f32) -> (f32, f32, [f32; 2]) {
    let h_phi_1 = hh.exp_m1();
    let b_h = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let b1 = (h_phi_k * 1.0) / b_h;
    h_phi_k = h_phi_k / hh - 0.5;
    let b2 = (h_phi_k * 2.0) / b_h;
    (h_phi_1, b_h, [b1, b2])
}

/// `torch.linalg.solve([[1, 1], [rk, 1]], b)` by LU with partial pivoting, as LAPACK's `sgesv`.
fn solve2(rk: f32, b: [f32; 2]) -> [f32; 2] {
    let (mut a, mut rhs) = ([[1.0f32, 1.0], [rk, 1.0]], b);
    if rk.abs() > 1.0 {
        a.swap(0, 1);
        rhs.swap(0, 1);
    }
    let l = a[1][0] * (1.0 / a[0][0]);
    let u11 = a[1][1] - l * a[0][1];
    let y1 = rhs[1] - l * rhs[0];
    let x1 = y1 / u11;
    let x0 = (rhs[0] - a[0][1] * x1) / a[0][0];
    [x0, x1]
}

impl Algorithm for UniPc {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]) {
        vp_add_noise(self.sigmas[i], x0, noise);
    }

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], _noise: Option<&[f32]>) {
        let use_corrector = i > 0 && self.has_last;
        let mut model_t = std::mem::take(&mut self.scratch);
        data_prediction(
            self.v_pred,
            self.sigmas[i],
            sample,
            model_output,
            &mut model_t,
        );
        if use_corrector {
            // multistep_uni_c_bh_update: from last_sample at sigma[i-1] to sigma[i]
            let (h, alpha_t, ratio) = self.span(i, i - 1);
            let (h_phi_1, b_h, b) = phis(-h);
            let (c1, c2) = (alpha_t * h_phi_1, alpha_t * b_h);
            let m0 = &self.newer;
            if self.this_order == 1 {
                for (k, x) in sample.iter_mut().enumerate() {
                    let x_t_ = ratio * self.last_sample[k] - c1 * m0[k];
                    *x = x_t_ - c2 * (0.5 * (model_t[k] - m0[k]));
                }
            } else {
                let rk = self.rk(i - 2, i - 1, h);
                let rhos = solve2(rk, b);
                for (k, x) in sample.iter_mut().enumerate() {
                    let x_t_ = ratio * self.last_sample[k] - c1 * m0[k];
                    let corr = rhos[0] * ((self.older[k] - m0[k]) / rk);
                    *x = x_t_ - c2 * (corr + rhos[1] * (model_t[k] - m0[k]));
                }
            }
        }
        // model_outputs shift: older <- newer <- this call
        std::mem::swap(&mut self.older, &mut self.newer);
        self.scratch = std::mem::replace(&mut self.newer, model_t);
        self.this_order = 2
            .min(self.timesteps.len() - i)
            .min(self.lower_order_nums + 1);
        self.last_sample.clear();
        self.last_sample.extend_from_slice(sample);
        self.has_last = true;
        // multistep_uni_p_bh_update: from sample at sigma[i] to sigma[i+1]
        let (h, alpha_t, ratio) = self.span(i + 1, i);
        let (h_phi_1, b_h, _) = phis(-h);
        let (c1, c2) = (alpha_t * h_phi_1, alpha_t * b_h);
        let m0 = &self.newer;
        if self.this_order == 1 {
            for (k, x) in sample.iter_mut().enumerate() {
                *x = ratio * *x - c1 * m0[k];
            }
        } else {
            let rk = self.rk(i - 1, i, h);
            for (k, x) in sample.iter_mut().enumerate() {
                let x_t_ = ratio * *x - c1 * m0[k];
                *x = x_t_ - c2 * (0.5 * ((self.older[k] - m0[k]) / rk));
            }
        }
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
    }
}
