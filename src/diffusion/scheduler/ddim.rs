//! `DDIMScheduler` (eta for stochasticity) and the DDPM `add_noise` it shares with LCM.

use super::{Algorithm, SchedulerConfig};

/// DDIM over `leading`/`linspace`/`trailing` timesteps.
#[derive(Debug, Clone)]
pub(super) struct Ddim {
    cfg: SchedulerConfig,
    alphas_cumprod: Vec<f32>,
    timesteps: Vec<f32>,
    num_steps: usize,
    pub(super) eta: f32,
}

impl Ddim {
    /// `DDIMScheduler.from_config(cfg)` then `set_timesteps(n)`.
    pub(super) fn new(cfg: &SchedulerConfig, n: usize) -> Ddim {
        let n_train = cfg.num_train_timesteps;
        let timesteps = match cfg.spacing("leading") {
            "linspace" => super::sigmas::np_linspace(0.0, (n_train - 1) as f64, n)
                .iter()
                .rev()
                .map(|t| t.round_ties_even() as f32)
                .collect(),
            "trailing" => {
                let ratio = n_train as f64 / n as f64;
                super::sigmas::np_arange_down(n_train as f64, 0.0, -ratio)
                    .iter()
                    .map(|t| t.round_ties_even() as f32 - 1.0)
                    .collect()
            }
            _ => {
                let ratio = n_train / n;
                (0..n)
                    .rev()
                    .map(|i| (i * ratio + cfg.steps_offset) as f32)
                    .collect()
            }
        };
        Ddim {
            cfg: cfg.clone(),
            alphas_cumprod: cfg.alphas_cumprod(),
            timesteps,
            num_steps: n,
            eta: 0.0,
        }
    }
}

/// DDPM `add_noise`: `sqrt(ᾱ_t) · x0 + sqrt(1 - ᾱ_t) · noise`.
pub(super) fn ddpm_add_noise(alphas_cumprod: &[f32], t: f32, x0: &mut [f32], noise: &[f32]) {
    let a = alphas_cumprod[(t as usize).min(alphas_cumprod.len() - 1)];
    let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
    x0.iter_mut()
        .zip(noise)
        .for_each(|(x, n)| *x = sa * *x + sb * n);
}

impl Algorithm for Ddim {
    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn set_eta(&mut self, eta: f32) {
        self.eta = eta;
    }

    fn add_noise(&self, i: usize, x0: &mut [f32], noise: &[f32]) {
        ddpm_add_noise(&self.alphas_cumprod, self.timesteps[i], x0, noise);
    }

    fn draws_noise(&self, _i: usize) -> bool {
        self.eta > 0.0
    }

    fn step(&mut self, i: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>) {
        let v_pred = self.cfg.prediction_type == "v_prediction";
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
        for (k, x) in sample.iter_mut().enumerate() {
            let m = model_output[k];
            let (x0, eps) = if v_pred {
                (sa * *x - sb * m, sa * m + sb * *x)
            } else {
                ((*x - sb * m) / sa, m)
            };
            let mut p = sap * x0 + dir_coef * eps;
            if let Some(n) = noise.filter(|_| self.eta > 0.0) {
                p += std_dev * n[k];
            }
            *x = p;
        }
    }
}
