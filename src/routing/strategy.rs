//! Load-balancing strategies. Each group owns one balancer; the only shared state is the group's own small
//! mutex (held for a few nanoseconds, never across an await), so groups never contend with each other.
//! `leastconn` and `latency` read each member's live figures from its [`Health`].

use std::sync::Mutex;

use rand::Rng;

use super::Health;
use crate::config::Strategy;

/// The share of `latency` picks that go to a member other than the fastest, so its figure stays current.
const EXPLORE: f64 = 0.05;

/// A group's balancer. `pick` takes a filter so callers can exclude deployments (already tried, cooling down)
/// without the balancer knowing why.
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(SmoothWeightedRoundRobin),
    Random(WeightedRandom),
    /// Fewest in flight; the tied members take turns by weight.
    LeastConn(SmoothWeightedRoundRobin),
    /// Lowest time-to-first-token average; the others are explored by weight.
    Latency(WeightedRandom),
}

impl Balancer {
    pub fn new(strategy: Strategy, weights: Vec<u32>) -> Self {
        match strategy {
            Strategy::RoundRobin => Balancer::RoundRobin(SmoothWeightedRoundRobin::new(weights)),
            Strategy::Random => Balancer::Random(WeightedRandom::new(weights)),
            Strategy::LeastConn => Balancer::LeastConn(SmoothWeightedRoundRobin::new(weights)),
            Strategy::Latency => Balancer::Latency(WeightedRandom::new(weights)),
        }
    }

    /// The index of the next member among those `eligible` with a non-zero weight, or `None` if there is none.
    /// `health` gives a member's live figures (in flight, time to first token).
    pub fn pick<'h>(&self, eligible: impl Fn(usize) -> bool, health: impl Fn(usize) -> &'h Health) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.pick(eligible),
            Balancer::Random(b) => b.pick(eligible, &mut rand::rng()),
            Balancer::LeastConn(b) => {
                // Other requests start and end meanwhile: each member is read once, then the picks use that.
                let load = Figures::read(b.weights.len(), |i| {
                    (b.weights[i] > 0 && eligible(i)).then(|| u64::from(health(i).inflight()))
                });
                let least = load.min()?;
                b.pick(|i| load.get(i) == Some(least))
            }
            Balancer::Latency(b) => {
                // Members without a figure come first (0), so that a new member is measured at once.
                let ttft = Figures::read(b.weights.len(), |i| {
                    eligible(i).then(|| health(i).ttft().map_or(0, |t| t.as_micros() as u64))
                });
                let fastest = (0..b.weights.len())
                    .filter(|&i| b.weights[i] > 0)
                    .filter_map(|i| Some((ttft.get(i)?, i)))
                    .min()?
                    .1;
                if ttft.get(fastest) == Some(0) {
                    return Some(fastest);
                }
                let mut rng = rand::rng();
                if rng.random_bool(EXPLORE)
                    && let Some(other) = b.pick(|i| i != fastest && ttft.get(i).is_some(), &mut rng)
                {
                    return Some(other);
                }
                Some(fastest)
            }
        }
    }
}

/// One figure per eligible member, read once per pick; on the stack for groups of up to 16 members.
// It lives for one pick, on the stack: the big variant is the point (no allocation per request).
#[allow(clippy::large_enum_variant)]
enum Figures {
    Inline([Option<u64>; 16], usize),
    Heap(Vec<Option<u64>>),
}

impl Figures {
    fn read(n: usize, figure: impl Fn(usize) -> Option<u64>) -> Self {
        if n <= 16 {
            let mut inline = [None; 16];
            for (i, slot) in inline.iter_mut().enumerate().take(n) {
                *slot = figure(i);
            }
            Figures::Inline(inline, n)
        } else {
            Figures::Heap((0..n).map(figure).collect())
        }
    }

    fn all(&self) -> &[Option<u64>] {
        match self {
            Figures::Inline(inline, n) => &inline[..*n],
            Figures::Heap(heap) => heap,
        }
    }

    fn get(&self, i: usize) -> Option<u64> {
        self.all().get(i).copied().flatten()
    }

    fn min(&self) -> Option<u64> {
        self.all().iter().flatten().min().copied()
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

    fn healths(n: usize) -> Vec<Health> {
        (0..n).map(|_| Health::default()).collect()
    }

    #[test]
    fn leastconn_picks_the_least_busy_and_splits_ties_by_weight() {
        let b = Balancer::new(Strategy::LeastConn, vec![1, 1, 2]);
        let h = healths(3);
        h[0].started();
        h[2].started();
        assert_eq!(b.pick(|_| true, |i| &h[i]), Some(1));
        assert_eq!(
            b.pick(|i| i != 1, |i| &h[i]),
            Some(2),
            "0 and 2 tie on 1 in flight: the heavier first"
        );
        h[1].started();
        // All tied at one in flight: picks follow the weights 1:1:2.
        let mut counts = [0u32; 3];
        for _ in 0..400 {
            counts[b.pick(|_| true, |i| &h[i]).unwrap()] += 1;
        }
        assert!(
            counts[0].abs_diff(100) <= 1 && counts[1].abs_diff(100) <= 1,
            "{counts:?}"
        );
        let zero = Balancer::new(Strategy::LeastConn, vec![0, 1]);
        let idle = healths(2);
        idle[1].started();
        assert_eq!(
            zero.pick(|_| true, |i| &idle[i]),
            Some(1),
            "weight 0 is never picked, even when idle"
        );
        assert_eq!(zero.pick(|i| i == 0, |i| &idle[i]), None);
    }

    #[test]
    fn latency_prefers_the_fastest_and_keeps_measuring_the_others() {
        let b = Balancer::new(Strategy::Latency, vec![1, 1, 1]);
        let h = healths(3);
        h[0].record_ttft(std::time::Duration::from_millis(300));
        h[1].record_ttft(std::time::Duration::from_millis(100));
        assert_eq!(
            b.pick(|_| true, |i| &h[i]),
            Some(2),
            "a member without a figure is measured first"
        );
        h[2].record_ttft(std::time::Duration::from_millis(200));
        let mut counts = [0; 3];
        for _ in 0..20_000 {
            counts[b.pick(|_| true, |i| &h[i]).unwrap()] += 1;
        }
        let share = |i: usize| counts[i] as f64 / 20_000.0;
        assert!((share(1) - 0.95).abs() < 0.01, "{counts:?}");
        assert!((share(0) - 0.025).abs() < 0.01, "{counts:?}");
        assert!((share(2) - 0.025).abs() < 0.01, "{counts:?}");
        assert_eq!(b.pick(|i| i != 1, |i| &h[i]).map(|i| i == 1), Some(false));
        // The fastest alone: it is always picked.
        assert!((0..1000).all(|_| b.pick(|i| i == 1, |i| &h[i]) == Some(1)));
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
