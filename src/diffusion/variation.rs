//! A1111's variation seeds: the initial noise of a seed blended with the noise of a subseed by
//! spherical interpolation (`subseed_strength`), so that small strengths give small variations of
//! one picture. Matches A1111's `modules/rng.py` `slerp`, including its quirks: vectors are taken
//! along the height axis of the `[channels, height, width]` noise, and nearly parallel noises fall
//! back to `low · val + high · (1 - val)`.

/// `slerp(val, low, high)` over noise of shape `[c, h, w]` (flat): `val` 0 gives `low`, 1 `high`.
pub fn slerp(val: f32, low: &[f32], high: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    let at = |ci: usize, hi: usize, wi: usize| (ci * h + hi) * w + wi;
    // per (channel, column): norms over the height axis and the dot product of the unit vectors
    let mut dot = vec![0.0f32; c * w];
    for ci in 0..c {
        for wi in 0..w {
            let (mut nl, mut nh) = (0.0f32, 0.0f32);
            for hi in 0..h {
                nl += low[at(ci, hi, wi)] * low[at(ci, hi, wi)];
                nh += high[at(ci, hi, wi)] * high[at(ci, hi, wi)];
            }
            let (nl, nh) = (nl.sqrt(), nh.sqrt());
            dot[ci * w + wi] = (0..h)
                .map(|hi| (low[at(ci, hi, wi)] / nl) * (high[at(ci, hi, wi)] / nh))
                .sum();
        }
    }
    let mean = dot.iter().map(|&d| d as f64).sum::<f64>() / dot.len() as f64;
    if mean > 0.9995 {
        return low
            .iter()
            .zip(high)
            .map(|(l, hv)| l * val + hv * (1.0 - val))
            .collect();
    }
    let mut out = vec![0.0f32; low.len()];
    for ci in 0..c {
        for wi in 0..w {
            let omega = dot[ci * w + wi].clamp(-1.0, 1.0).acos();
            let so = omega.sin();
            let (a, b) = (((1.0 - val) * omega).sin() / so, (val * omega).sin() / so);
            for hi in 0..h {
                let i = at(ci, hi, wi);
                out[i] = a * low[i] + b * high[i];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_the_inputs() {
        let low: Vec<f32> = (0..32).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let high: Vec<f32> = (0..32).map(|i| ((i * 104729) % 11) as f32 - 5.0).collect();
        let a = slerp(0.0, &low, &high, [2, 4, 4]);
        let b = slerp(1.0, &low, &high, [2, 4, 4]);
        assert!(a.iter().zip(&low).all(|(x, y)| (x - y).abs() < 1e-5));
        assert!(b.iter().zip(&high).all(|(x, y)| (x - y).abs() < 1e-5));
    }
}
