//! Per-frame seeds: Deforum's `seed_behavior` (iter, fixed, random, ladder, alternate, schedule).
//!
//! The sequence depends only on the initial seed, so a resumed render replays it exactly; "random"
//! seeds come from a generator seeded with the initial seed (Deforum draws them from Python's global
//! `random`, which no one can reproduce).

use rand_mt::Mt64;

/// A seed derived from `seed` and a number `k` (SplitMix64 of the two, within A1111's
/// 0..=2^32 − 2): the seeds Deforum draws from Python's unseeded generator (redo generations, a
/// subseed of -1), made reproducible from the render's seed.
pub fn derived(seed: i64, k: u64) -> i64 {
    let mut z = (seed as u64) ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % 4_294_967_295) as i64
}

/// `k` of [`derived`] for a frame's subseed of -1 (apart from the redo generations' 0..n).
const SUBSEED_K: u64 = 1 << 40;

/// The subseed of a frame: the schedule's value, or for -1 (A1111: a random subseed each
/// generation) one derived from the frame's seed and index.
pub fn subseed(scheduled: f64, frame_seed: i64, frame: usize) -> u64 {
    let s = scheduled as i64;
    if s == -1 {
        derived(frame_seed, SUBSEED_K + frame as u64) as u64
    } else {
        s as u64
    }
}

/// How the seed changes from one diffused frame to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedBehavior {
    /// +1 every `seed_iter_N` frames.
    Iter,
    /// Always the initial seed.
    Fixed,
    /// A new random seed per frame (reproducible from the initial seed).
    Random,
    /// +2, -1, +2, -1, ...
    Ladder,
    /// +1, -1, +1, -1, ...
    Alternate,
    /// The seed schedule's value per frame (-1: random).
    Schedule,
}

impl SeedBehavior {
    /// Names accepted in scene files.
    pub const NAMES: &[&str] = &["iter", "fixed", "random", "ladder", "alternate", "schedule"];
}

/// Generates the seed of each diffused frame in order.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    behavior: SeedBehavior,
    iter_n: u64,
    seed: i64,
    internal: u64,
    random: Mt64,
}

impl SeedSequence {
    /// Starts at `seed` (already resolved from -1).
    pub fn new(behavior: SeedBehavior, seed: i64, iter_n: u64) -> SeedSequence {
        SeedSequence {
            behavior,
            iter_n: iter_n.max(1),
            seed,
            internal: 0,
            random: Mt64::new(seed as u64 ^ 0x5EED_5EED_5EED_5EED),
        }
    }

    fn random_seed(&mut self) -> i64 {
        (self.random.next_u64() % (1u64 << 32)) as i64
    }

    /// The seed for the current frame; `scheduled` is the seed schedule's value at that frame
    /// (used with [`SeedBehavior::Schedule`]).
    pub fn current(&mut self, scheduled: f64) -> i64 {
        match self.behavior {
            SeedBehavior::Schedule => {
                let s = scheduled as i64;
                if s == -1 { self.random_seed() } else { s }
            }
            _ => self.seed,
        }
    }

    /// Deforum's `next_seed`, called once after each diffused frame.
    pub fn advance(&mut self) {
        match self.behavior {
            SeedBehavior::Iter => {
                if self.internal.is_multiple_of(self.iter_n) {
                    self.seed = self.seed.wrapping_add(1);
                }
                self.internal += 1;
            }
            SeedBehavior::Ladder => {
                // scene seeds are at most 2^32 - 1 (checked when the scene is read), so these
                // steps never overflow; wrapping keeps a library caller's huge seed from a panic
                self.seed = self
                    .seed
                    .wrapping_add(if self.internal == 0 { 2 } else { -1 });
                self.internal = u64::from(self.internal == 0);
            }
            SeedBehavior::Alternate => {
                self.seed = self
                    .seed
                    .wrapping_add(if self.internal == 0 { 1 } else { -1 });
                self.internal = u64::from(self.internal == 0);
            }
            SeedBehavior::Fixed | SeedBehavior::Schedule => {}
            SeedBehavior::Random => self.seed = self.random_seed(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// -1 gives a subseed per frame, the same on every call (a resume), within 0..2^32 − 1.
    #[test]
    fn a_subseed_of_minus_one_is_derived_per_frame() {
        assert_eq!(super::subseed(56.0, 7, 3), 56);
        let a: Vec<u64> = (0..4).map(|f| super::subseed(-1.0, 7, f)).collect();
        assert_eq!(
            a,
            (0..4)
                .map(|f| super::subseed(-1.0, 7, f))
                .collect::<Vec<_>>()
        );
        assert!(a.windows(2).all(|w| w[0] != w[1]));
        assert!(a.iter().all(|&s| s < 4_294_967_295 && s != u64::MAX));
        assert_ne!(super::subseed(-1.0, 8, 0), a[0]);
    }

    use super::*;

    fn seq(b: SeedBehavior, n: u64) -> Vec<i64> {
        let mut s = SeedSequence::new(b, 100, n);
        (0..6)
            .map(|_| {
                let v = s.current(0.0);
                s.advance();
                v
            })
            .collect()
    }

    #[test]
    fn behaviours() {
        assert_eq!(
            seq(SeedBehavior::Iter, 1),
            vec![100, 101, 102, 103, 104, 105]
        );
        assert_eq!(
            seq(SeedBehavior::Iter, 2),
            vec![100, 101, 101, 102, 102, 103]
        );
        assert_eq!(seq(SeedBehavior::Fixed, 1), vec![100; 6]);
        assert_eq!(
            seq(SeedBehavior::Ladder, 1),
            vec![100, 102, 101, 103, 102, 104]
        );
        assert_eq!(
            seq(SeedBehavior::Alternate, 1),
            vec![100, 101, 100, 101, 100, 101]
        );
        let r = seq(SeedBehavior::Random, 1);
        assert_eq!(
            r,
            seq(SeedBehavior::Random, 1),
            "random seeds replay from the initial seed"
        );
        assert!(r.iter().all(|s| (0..1i64 << 32).contains(s)));
        let mut s = SeedSequence::new(SeedBehavior::Schedule, 100, 1);
        assert_eq!(s.current(7.0), 7);
        assert!((0..1i64 << 32).contains(&s.current(-1.0)));
    }
}
