//! What a deployment did in the last five minutes, for the status page: requests, errors, latency and
//! time-to-first-token percentiles, tokens. Each finished request adds one small sample to a bounded ring
//! under a mutex held for a push; the page's reads copy the ring and do the sorting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far back the page looks.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Samples kept per deployment: at 20 requests a second this is the whole window; beyond that the
/// figures cover the most recent requests only, which is what a person watching wants anyway.
const CAPACITY: usize = 6000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    duration_ms: u32,
    /// `u32::MAX` when the request had no first token (not a stream, or none came).
    ttft_ms: u32,
    error: bool,
    input_tokens: u64,
    output_tokens: u64,
}

/// One deployment's recent requests, and its token totals since the process started.
#[derive(Debug, Default)]
pub struct Recent {
    samples: Mutex<VecDeque<Sample>>,
}

/// A finished request as the window counts it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub duration: Duration,
    pub ttft: Option<Duration>,
    pub error: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The window's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    pub latency_p50_ms: Option<u32>,
    pub latency_p95_ms: Option<u32>,
    pub ttft_p50_ms: Option<u32>,
    pub ttft_p95_ms: Option<u32>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX - 1)
}

impl Recent {
    pub fn record(&self, outcome: Outcome) {
        self.record_at(Instant::now(), outcome);
    }

    /// [`Self::record`] with the caller's reading of the clock.
    pub fn record_at(&self, at: Instant, outcome: Outcome) {
        let sample = Sample {
            at,
            duration_ms: millis(outcome.duration),
            ttft_ms: outcome.ttft.map_or(u32::MAX, millis),
            error: outcome.error,
            input_tokens: outcome.input_tokens,
            output_tokens: outcome.output_tokens,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == CAPACITY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The figures of the samples younger than [`WINDOW`].
    pub fn figures(&self) -> Figures {
        self.figures_at(Instant::now())
    }

    fn figures_at(&self, now: Instant) -> Figures {
        let recent: Vec<Sample> = {
            let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            while samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > WINDOW)
            {
                samples.pop_front();
            }
            samples.iter().copied().collect()
        };
        let mut latencies: Vec<u32> = recent.iter().map(|s| s.duration_ms).collect();
        let mut ttfts: Vec<u32> = recent.iter().map(|s| s.ttft_ms).filter(|t| *t != u32::MAX).collect();
        latencies.sort_unstable();
        ttfts.sort_unstable();
        Figures {
            requests: recent.len() as u64,
            errors: recent.iter().filter(|s| s.error).count() as u64,
            latency_p50_ms: percentile(&latencies, 50),
            latency_p95_ms: percentile(&latencies, 95),
            ttft_p50_ms: percentile(&ttfts, 50),
            ttft_p95_ms: percentile(&ttfts, 95),
            input_tokens: recent.iter().map(|s| s.input_tokens).sum(),
            output_tokens: recent.iter().map(|s| s.output_tokens).sum(),
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: usize) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ms: u64, ttft: Option<u64>, error: bool) -> Outcome {
        Outcome {
            duration: Duration::from_millis(ms),
            ttft: ttft.map(Duration::from_millis),
            error,
            input_tokens: 10,
            output_tokens: 2,
        }
    }

    #[test]
    fn figures_cover_the_last_five_minutes_only() {
        let recent = Recent::default();
        let start = Instant::now();
        recent.record_at(start, outcome(9000, None, true));
        let later = start + Duration::from_secs(200);
        for ms in 1..=100 {
            recent.record_at(later, outcome(ms, Some(ms / 2), false));
        }
        let now = start + Duration::from_secs(301);
        let figures = recent.figures_at(now);
        assert_eq!((figures.requests, figures.errors), (100, 0), "the old failure aged out");
        assert_eq!((figures.latency_p50_ms, figures.latency_p95_ms), (Some(50), Some(95)));
        assert_eq!((figures.ttft_p50_ms, figures.ttft_p95_ms), (Some(25), Some(47)));
        assert_eq!((figures.input_tokens, figures.output_tokens), (1000, 200));
        assert_eq!(recent.figures_at(now + WINDOW), Figures::default());
    }

    #[test]
    fn the_ring_is_bounded() {
        let recent = Recent::default();
        for _ in 0..CAPACITY + 10 {
            recent.record(outcome(1, None, false));
        }
        assert_eq!(recent.figures().requests, CAPACITY as u64);
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
