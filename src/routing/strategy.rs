//! Load-balancing strategies. Each group owns one balancer; the only shared state is the group's own small
//! mutex (held for a few nanoseconds, never across an await), so groups never contend with each other.

use std::sync::Mutex;

use rand::Rng;

use crate::config::Strategy;

/// A group's balancer. `pick` takes a filter so callers can exclude deployments (already tried, cooling down)
/// without the balancer knowing why.
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(SmoothWeightedRoundRobin),
    Random(WeightedRandom),
}

impl Balancer {
    pub fn new(strategy: Strategy, weights: Vec<u32>) -> Self {
        match strategy {
            Strategy::RoundRobin => Balancer::RoundRobin(SmoothWeightedRoundRobin::new(weights)),
            Strategy::Random => Balancer::Random(WeightedRandom::new(weights)),
        }
    }

    /// The index of the next member among those `eligible` with a non-zero weight, or `None` if there is none.
    pub fn pick(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.pick(eligible),
            Balancer::Random(b) => b.pick(eligible, &mut rand::rng()),
        }
    }
}

/// nginx's smooth weighted round-robin: every pick adds each weight to its member's running score, takes the
/// highest score and subtracts the total from it. Weights 5,1,1 give `a a b a c a a`, spreading the heavy
/// member out instead of sending it five requests in a row.
#[derive(Debug)]
pub struct SmoothWeightedRoundRobin {
    weights: Vec<i64>,
    current: Mutex<Vec<i64>>,
}

impl SmoothWeightedRoundRobin {
    pub fn new(weights: Vec<u32>) -> Self {
        let current = Mutex::new(vec![0; weights.len()]);
        Self {
            weights: weights.into_iter().map(i64::from).collect(),
            current,
        }
    }

    pub fn pick(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        // A poisoned lock only means another thread panicked mid-update of plain integers; keep going.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (i, &weight) in self.weights.iter().enumerate() {
            if weight == 0 || !eligible(i) {
                continue;
            }
            current[i] += weight;
            total += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }
}

/// Weighted random choice; lock-free.
#[derive(Debug)]
pub struct WeightedRandom {
    weights: Vec<u64>,
}

impl WeightedRandom {
    pub fn new(weights: Vec<u32>) -> Self {
        Self {
            weights: weights.into_iter().map(u64::from).collect(),
        }
    }

    /// One pass, asking `eligible` once per member: other requests change deployment health concurrently, so
    /// a second look could disagree with the first. Each eligible member replaces the choice so far with
    /// probability `weight / running total`, which picks member `i` with probability `weight_i / total`.
    pub fn pick(&self, eligible: impl Fn(usize) -> bool, rng: &mut impl Rng) -> Option<usize> {
        let mut total = 0u64;
        let mut chosen = None;
        for (i, &weight) in self.weights.iter().enumerate() {
            if weight == 0 || !eligible(i) {
                continue;
            }
            total += weight;
            if rng.random_range(0..total) < weight {
                chosen = Some(i);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn sequence(weights: &[u32], n: usize) -> String {
        let b = SmoothWeightedRoundRobin::new(weights.to_vec());
        (0..n)
            .map(|_| (b'a' + b.pick(|_| true).unwrap() as u8) as char)
            .collect()
    }

    #[test]
    fn swrr_matches_nginx() {
        assert_eq!(sequence(&[5, 1, 1], 7), "aabacaa");
        assert_eq!(sequence(&[5, 1, 1], 14), "aabacaaaabacaa");
        assert_eq!(sequence(&[1, 2], 6), "babbab");
        assert_eq!(sequence(&[100, 100], 4), "abab");
    }

    #[test]
    fn swrr_never_picks_zero_weight() {
        assert_eq!(sequence(&[0, 3, 0], 5), "bbbbb");
        assert_eq!(SmoothWeightedRoundRobin::new(vec![0, 0]).pick(|_| true), None);
    }

    #[test]
    fn swrr_skips_ineligible_members() {
        let b = SmoothWeightedRoundRobin::new(vec![5, 1, 1]);
        let picks: Vec<usize> = (0..4).map(|_| b.pick(|i| i != 0).unwrap()).collect();
        assert_eq!(picks, [1, 2, 1, 2]);
        assert_eq!(b.pick(|_| false), None);
    }

    #[test]
    fn random_follows_weights() {
        let b = WeightedRandom::new(vec![1, 3, 0, 6]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0usize; 4];
        for _ in 0..100_000 {
            counts[b.pick(|_| true, &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = |i: usize| counts[i] as f64 / 100_000.0;
        assert!((share(0) - 0.1).abs() < 0.01, "{counts:?}");
        assert!((share(1) - 0.3).abs() < 0.01, "{counts:?}");
        assert!((share(3) - 0.6).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn random_respects_filter() {
        let b = WeightedRandom::new(vec![1, 1]);
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| b.pick(|i| i == 1, &mut rng) == Some(1)));
        assert_eq!(b.pick(|_| false, &mut rng), None);
    }

    /// Another request can flip a deployment into cooldown while a pick runs: `eligible` must be asked once
    /// per member, and a flip must never panic.
    #[test]
    fn random_survives_eligibility_flipping_mid_pick() {
        use std::cell::Cell;
        let b = WeightedRandom::new(vec![1, 1, 1]);
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..1_000 {
            let calls = Cell::new(0);
            // Eligible on the first question about each member, ineligible on any later one.
            let picked = b.pick(
                |_| {
                    calls.set(calls.get() + 1);
                    calls.get() <= 3
                },
                &mut rng,
            );
            assert!(picked.is_some());
            assert_eq!(calls.get(), 3, "eligibility is evaluated once per member");
        }
    }
}
