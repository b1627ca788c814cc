//! Timestep and sigma tables shared by the samplers, computed as diffusers computes them (numpy in
//! float64 where diffusers uses numpy, float32 where it uses torch).

/// `np.linspace(start, stop, num)` (endpoint included): `i * step + start`, the last value `stop`.
pub(super) fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// `np.arange(start, stop, step)` for a negative float step.
pub(super) fn np_arange_down(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * step).collect()
}

/// Timesteps of the Euler-family samplers (`EulerDiscreteScheduler`, `HeunDiscreteScheduler`):
/// float32 values, highest first.
pub(super) fn euler_timesteps(
    spacing: &str,
    n_train: usize,
    n: usize,
    steps_offset: usize,
) -> Vec<f32> {
    match spacing {
        "leading" => {
            let ratio = n_train / n;
            (0..n)
                .rev()
                .map(|i| (i * ratio) as f32 + steps_offset as f32)
                .collect()
        }
        "trailing" => {
            let ratio = n_train as f64 / n as f64;
            np_arange_down(n_train as f64, 0.0, -ratio)
                .iter()
                .map(|t| t.round_ties_even() as f32 - 1.0)
                .collect()
        }
        _ => np_linspace(0.0, (n_train - 1) as f64, n)
            .iter()
            .rev()
            .map(|&t| t as f32)
            .collect(),
    }
}

/// Timesteps of the multistep solvers (`DPMSolverMultistepScheduler`, `UniPCMultistepScheduler`):
/// integers, highest first, from a grid of `n + 1` points without its last.
pub(super) fn multistep_timesteps(
    spacing: &str,
    n_train: usize,
    n: usize,
    steps_offset: usize,
) -> Vec<f64> {
    match spacing {
        "leading" => {
            let ratio = n_train / (n + 1);
            (0..=n)
                .rev()
                .take(n)
                .map(|i| (i * ratio + steps_offset) as f64)
                .collect()
        }
        "trailing" => {
            let ratio = n_train as f64 / n as f64;
            np_arange_down(n_train as f64, 0.0, -ratio)
                .iter()
                .map(|t| t.round_ties_even() - 1.0)
                .collect()
        }
        _ => {
            let grid = np_linspace(0.0, (n_train - 1) as f64, n + 1);
            grid.iter()
                .rev()
                .take(n)
                .map(|t| t.round_ties_even())
                .collect()
        }
    }
}

/// `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5` in float32, one per training timestep.
pub(super) fn train_sigmas(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod
        .iter()
        .map(|&a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// `np.interp(t, arange(len(fp)), fp)` in float64, numpy's formula.
pub(super) fn np_interp(t: f64, fp: &[f32]) -> f64 {
    let last = fp.len() - 1;
    if t <= 0.0 {
        return fp[0] as f64;
    }
    if t >= last as f64 {
        return fp[last] as f64;
    }
    let j = t.floor() as usize;
    if j as f64 == t {
        return fp[j] as f64;
    }
    let slope = (fp[j + 1] as f64 - fp[j] as f64) / 1.0;
    slope * (t - j as f64) + fp[j] as f64
}

/// Karras et al. (2022) sigmas with rho 7 between `sigma_max` and `sigma_min` (diffusers'
/// `_convert_to_karras`, float64).
pub(super) fn karras(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0f64;
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    np_linspace(0.0, 1.0, n)
        .iter()
        .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the (fractional) training timestep of a sigma, interpolating in log
/// sigma over `log_sigmas` (float32 logs of the training sigmas, increasing).
pub(super) fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // numpy: argmax(cumsum(dists >= 0)), the last index whose log sigma is <= log_sigma (the
    // training sigmas increase with t), 0 when there is none
    let count = log_sigmas
        .iter()
        .filter(|&&l| log_sigma - l as f64 >= 0.0)
        .count();
    let low_idx = count.saturating_sub(1).min(log_sigmas.len() - 2);
    let high_idx = low_idx + 1;
    let (low, high) = (log_sigmas[low_idx] as f64, log_sigmas[high_idx] as f64);
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// `(alpha_t, sigma_t)` of a sigma in float32 (`_sigma_to_alpha_sigma_t`: `1 / sqrt(sigma² + 1)`, `sigma · alpha_t`).
pub(super) fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// `log(alpha_t) - log(sigma_t)` in float32.
pub(super) fn lambda(alpha: f32, sigma: f32) -> f32 {
    alpha.ln() - sigma.ln()
}

/// `np.linspace(start, stop, num, endpoint=False)`: `i * step + start` with `step = (stop - start) / num`.
pub(super) fn np_linspace_open(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / num as f64;
    (0..num).map(|i| i as f64 * step + start).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_grid_matches_diffusers() {
        // DPMSolverMultistepScheduler.set_timesteps(10) on SD's config (linspace)
        assert_eq!(
            multistep_timesteps("linspace", 1000, 10, 1),
            vec![
                999.0, 899.0, 799.0, 699.0, 599.0, 500.0, 400.0, 300.0, 200.0, 100.0
            ]
        );
        assert_eq!(
            multistep_timesteps("leading", 1000, 4, 1),
            vec![801.0, 601.0, 401.0, 201.0]
        );
    }

    #[test]
    fn interp_hits_grid_points_exactly() {
        let fp = [1.0f32, 2.0, 4.0];
        assert_eq!(np_interp(1.0, &fp), 2.0);
        assert_eq!(np_interp(1.5, &fp), 3.0);
        assert_eq!(np_interp(9.0, &fp), 4.0);
    }
}
