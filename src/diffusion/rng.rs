//! PyTorch's CPU generator: `torch.Generator("cpu").manual_seed(seed)` then `torch.randn`, so a seed
//! gives the same noise here as in diffusers or ComfyUI on CPU.
//!
//! Torch draws 32-bit words from an MT19937 seeded with the low 32 bits of the seed. `randn` of a
//! float32 tensor with 16 or more elements fills it with 24-bit uniforms, then turns each block of 16
//! into normals by Box-Muller (first 8 as `u1`, next 8 as `u2`), redoing the last 16 when the size is
//! not a multiple of 16. Smaller tensors use the double-precision Box-Muller that caches its second
//! value.

use rand_mt::Mt;

/// A seeded generator with torch's CPU semantics.
#[derive(Clone)]
pub struct TorchRng {
    mt: Mt,
    cached_normal: Option<f64>,
}

impl TorchRng {
    /// `torch.Generator("cpu").manual_seed(seed)`.
    pub fn new(seed: u64) -> TorchRng {
        TorchRng {
            mt: Mt::new(seed as u32),
            cached_normal: None,
        }
    }

    fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & ((1 << 24) - 1)) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    fn uniform_f64(&mut self) -> f64 {
        // torch's random64(): the first word is the high half
        let hi = self.next_u32() as u64;
        let lo = self.next_u32() as u64;
        let v = (hi << 32) | lo;
        (v & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn normal_f64(&mut self) -> f64 {
        if let Some(v) = self.cached_normal.take() {
            return v;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.cached_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `torch.rand(n, generator=self)`: uniform float32 in [0, 1) with 24 random bits each.
    pub fn rand(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform_f32()).collect()
    }

    /// `torch.randn(n, generator=self)` as a flat vector (standard normal, float32).
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        if n < 16 {
            return (0..n).map(|_| self.normal_f64() as f32).collect();
        }
        let mut data: Vec<f32> = (0..n).map(|_| self.uniform_f32()).collect();
        for start in (0..n - 15).step_by(16) {
            normal_fill_16(&mut data[start..start + 16]);
        }
        if !n.is_multiple_of(16) {
            let tail = n - 16;
            for v in &mut data[tail..] {
                *v = self.uniform_f32();
            }
            normal_fill_16(&mut data[tail..]);
        }
        data
    }
}

fn normal_fill_16(d: &mut [f32]) {
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = (2.0 * std::f64::consts::PI * u2 as f64) as f32;
        d[j] = radius * theta.cos();
        d[j + 8] = radius * theta.sin();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // torch.manual_seed(0); torch.randn(16)[:2] = [-1.1258, -1.1524]
        let v = TorchRng::new(0).randn(16);
        assert!(
            (v[0] + 1.1258).abs() < 1e-4 && (v[1] + 1.1524).abs() < 1e-4,
            "{:?}",
            &v[..2]
        );
    }
}
