//! Per-deployment failure counting and cooldowns. Lock-free: two atomics per deployment, carried over a
//! reload when the deployment did not change.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Reliability;
use crate::status::window::Recent;

/// The process's own clock origin; cooldown deadlines are stored as milliseconds since it.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    ORIGIN.elapsed().as_millis() as u64
}

/// A cooldown never lasts longer than this, whatever `Retry-After` says.
const MAX_COOLDOWN: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct Health {
    consecutive_failures: AtomicU32,
    /// Milliseconds since [`ORIGIN`] until which the deployment is skipped; 0 when it is not cooling.
    cooling_until: AtomicU64,
    /// The last five minutes of finished requests, for the status page.
    pub recent: Recent,
    /// Attempts on this deployment in flight (streams until their last event), from every group.
    inflight: AtomicU32,
    /// The moving average of the time to first token, in microseconds; 0 before the first figure.
    ttft_micros: AtomicU64,
}

/// The weight of the newest figure in the time-to-first-token average: the last few requests dominate,
/// so a deployment that slows down loses its traffic within a handful of requests.
const TTFT_ALPHA: f64 = 0.3;

/// What the status page says of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Healthy,
    /// Failed this many times in a row, short of `allowed_fails`.
    Failing(u32),
    Cooling(Duration),
}

impl State {
    /// The state's name in metrics and on the status page.
    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Failing(_) => "failing",
            State::Cooling(_) => "cooling",
        }
    }
}

impl Health {
    /// `cooling`, `failing` (failures counted, below `allowed_fails`) or `healthy`.
    pub fn state(&self) -> State {
        match (self.cooldown_left(), self.consecutive_failures.load(Ordering::Relaxed)) {
            (Some(left), _) => State::Cooling(left),
            (None, 0) => State::Healthy,
            (None, failures) => State::Failing(failures),
        }
    }

    /// How long the deployment still cools down, if it does.
    pub fn cooldown_left(&self) -> Option<Duration> {
        let until = self.cooling_until.load(Ordering::Relaxed);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    pub fn is_cooling(&self) -> bool {
        self.cooldown_left().is_some()
    }

    /// An attempt on this deployment starts; [`Health::finished`] ends it.
    pub fn started(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self) {
        // Never below zero, even if a start was counted by a snapshot's twin that was replaced.
        let _ = self
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Adds a time to first token (a whole answer's time, for answers that are not streamed) to the average.
    /// Two requests finishing at once may each overwrite the other's update; either figure is recent.
    pub fn record_ttft(&self, ttft: Duration) {
        let sample = (ttft.as_micros() as u64).max(1);
        let old = self.ttft_micros.load(Ordering::Relaxed);
        let new = match old {
            0 => sample,
            _ => (old as f64 * (1.0 - TTFT_ALPHA) + sample as f64 * TTFT_ALPHA) as u64,
        };
        self.ttft_micros.store(new.max(1), Ordering::Relaxed);
    }

    /// The average time to first token, once there is a figure.
    pub fn ttft(&self) -> Option<Duration> {
        match self.ttft_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Counts a failure. A `Retry-After` from a 429/503/529 cools the deployment for that long at once;
    /// otherwise `allowed_fails` consecutive failures cool it for `cooldown`. Returns the cooldown started.
    pub fn record_failure(&self, reliability: &Reliability, retry_after: Option<Duration>) -> Option<Duration> {
        let cooldown = match retry_after {
            Some(wait) => Some(wait.min(MAX_COOLDOWN)),
            None => {
                let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                (failures >= reliability.allowed_fails.max(1)).then_some(reliability.cooldown)
            }
        };
        if let Some(wait) = cooldown {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            self.cooling_until
                .store(now_ms() + wait.as_millis() as u64, Ordering::Relaxed);
        }
        cooldown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reliability(allowed_fails: u32) -> Reliability {
        Reliability {
            allowed_fails,
            cooldown: Duration::from_secs(30),
            ..Reliability::default()
        }
    }

    #[test]
    fn cools_after_allowed_fails_consecutive_failures() {
        let h = Health::default();
        let r = reliability(3);
        assert_eq!(h.record_failure(&r, None), None);
        assert_eq!(h.record_failure(&r, None), None);
        assert!(!h.is_cooling());
        assert_eq!(h.record_failure(&r, None), Some(Duration::from_secs(30)));
        assert!(h.is_cooling());
        assert_eq!(h.state().name(), "cooling");
        assert!(h.cooldown_left().unwrap() > Duration::from_secs(29));
    }

    #[test]
    fn success_resets_the_count() {
        let h = Health::default();
        let r = reliability(2);
        h.record_failure(&r, None);
        assert_eq!(h.state(), State::Failing(1));
        h.record_success();
        assert_eq!(h.state(), State::Healthy);
        assert_eq!(h.record_failure(&r, None), None);
        assert!(!h.is_cooling());
    }

    #[test]
    fn inflight_and_the_ttft_average() {
        let h = Health::default();
        h.started();
        h.started();
        h.finished();
        assert_eq!(h.inflight(), 1);
        h.finished();
        h.finished();
        assert_eq!(h.inflight(), 0, "never below zero");
        assert_eq!(h.ttft(), None);
        h.record_ttft(Duration::from_millis(100));
        assert_eq!(h.ttft(), Some(Duration::from_millis(100)));
        h.record_ttft(Duration::from_millis(200));
        assert_eq!(h.ttft(), Some(Duration::from_millis(130)));
    }

    #[test]
    fn retry_after_cools_at_once_for_that_long() {
        let h = Health::default();
        assert_eq!(
            h.record_failure(&reliability(3), Some(Duration::from_millis(40))),
            Some(Duration::from_millis(40))
        );
        assert!(h.is_cooling());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!h.is_cooling());
        let capped = h
            .record_failure(&reliability(3), Some(Duration::from_secs(1_000_000)))
            .unwrap();
        assert_eq!(capped, MAX_COOLDOWN);
    }
}
