//! Depth for the 3D camera: a monocular depth map (relative inverse depth, larger = nearer, as
//! MiDaS and Depth-Anything give it) turned into the per-pixel z of [`crate::camera3d`] the way
//! Deforum's `transform_image_3d_new` does for its MiDaS algorithms.

/// Per-pixel z from a raw inverse-depth map, as Deforum's `prepare_depth_tensor` +
/// `depth_equalization` + the MiDaS scaling: normalise to [0, 1] by min and max, equalise with a
/// 1024-bin histogram (`np.interp` over the bins' left edges and the normalised CDF), then
/// `z = 2 - d`, so the nearest pixels have z = 1 and the farthest z = 2.
///
/// `None` when the map is empty or holds NaN, ±inf or a single value: Deforum then falls back
/// to flat depth (z = 1), and so does the caller.
pub fn depth_to_z(raw: &[f32]) -> Option<Vec<f32>> {
    if raw.is_empty() || raw.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let min = raw.iter().copied().fold(f32::INFINITY, f32::min);
    let max = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = max - min;
    if range == 0.0 || !range.is_finite() {
        return None;
    }
    const BINS: usize = 1024;
    let norm: Vec<f32> = raw.iter().map(|v| (v - min) / range).collect();
    let mut hist = [0u64; BINS];
    for d in &norm {
        // np.histogram on [0, 1]: the last bin is closed
        let k = ((d * BINS as f32) as usize).min(BINS - 1);
        hist[k] += 1;
    }
    let total = norm.len() as f64;
    let mut cdf = [0f64; BINS];
    let mut acc = 0u64;
    for (c, h) in cdf.iter_mut().zip(hist) {
        acc += h;
        *c = acc as f64 / total;
    }
    let edge = |k: usize| k as f64 / BINS as f64;
    Some(
        norm.iter()
            .map(|&d| {
                let x = d as f64;
                let k = (x * BINS as f64) as usize;
                // np.interp: exact at and beyond the last left edge, linear in between
                let eq = if k >= BINS - 1 || x == edge(k) {
                    cdf[k.min(BINS - 1)]
                } else {
                    let slope = (cdf[k + 1] - cdf[k]) / (edge(k + 1) - edge(k));
                    slope * (x - edge(k)) + cdf[k]
                };
                (-(eq - 2.0)) as f32
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_maps_fall_back() {
        assert!(depth_to_z(&[]).is_none());
        assert!(depth_to_z(&[3.0; 16]).is_none());
        assert!(depth_to_z(&[1.0, f32::NAN, 2.0]).is_none());
        assert!(depth_to_z(&[1.0, f32::INFINITY, 2.0]).is_none());
        assert!(depth_to_z(&[-f32::MAX, f32::MAX]).is_none());
    }

    #[test]
    fn nearest_is_one_farthest_is_two() {
        let z = depth_to_z(&[10.0, 0.0, 5.0, 2.5]).unwrap();
        assert_eq!(z[0], 1.0);
        assert!(z[1] > 1.7 && z[1] <= 2.0, "{z:?}");
        assert!(z[2] > z[0] && z[2] < z[3] && z[3] < z[1], "{z:?}");
    }
}
