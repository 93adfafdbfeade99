//! Per-deployment failure counting and cooldowns, and the keys of a key pool set aside. Lock-free but for a
//! pool's list of keys set aside; carried over a reload when the deployment did not change.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
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
    /// Which key of a pool goes next, and which are set aside.
    pub keys: KeyShelf,
}

/// The keys of a deployment's pool (`api_key` as a list): used in turn, each set aside on its own when the
/// upstream refuses it (401/403: until a reload changes the deployment) or limits it (429: for its
/// `Retry-After` or the cooldown), while the others keep serving.
#[derive(Debug, Default)]
pub struct KeyShelf {
    /// Counts up; the next key is this modulo the pool's size.
    next: AtomicUsize,
    aside: Mutex<Vec<SetAside>>,
}

/// A key set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAside {
    /// Its position in the pool, from 0.
    pub key: usize,
    /// The upstream's status that set it aside.
    pub status: u16,
    /// Milliseconds since [`ORIGIN`] until which it is not used; `u64::MAX`: until a reload changes the
    /// deployment.
    until: u64,
}

impl SetAside {
    /// How long it stays aside; `None`: until a reload changes the deployment.
    pub fn left(&self) -> Option<Duration> {
        (self.until != u64::MAX).then(|| Duration::from_millis(self.until.saturating_sub(now_ms())))
    }
}

impl KeyShelf {
    /// The next key in turn that is not set aside, of a pool of `count` keys; `None` when all are. A
    /// deployment with one key or none always has key 0.
    pub fn pick(&self, count: usize) -> Option<usize> {
        if count <= 1 {
            return Some(0);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let aside = self.current();
        (0..count)
            .map(|i| (start + i) % count)
            .find(|&key| !aside.iter().any(|a| a.key == key))
    }

    /// Sets `key` aside for `wait` (`None`: until a reload changes the deployment). Returns whether another
    /// key of the pool of `count` can be used now, or else how long until one can (`None`: not before a
    /// reload).
    pub fn set_aside(&self, key: usize, count: usize, status: u16, wait: Option<Duration>) -> KeysLeft {
        let until = wait.map_or(u64::MAX, |wait| now_ms() + wait.min(MAX_COOLDOWN).as_millis() as u64);
        let mut aside = self.aside.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        aside.retain(|a| a.until > now && a.key != key);
        aside.push(SetAside { key, status, until });
        if aside.len() < count {
            return KeysLeft::Some;
        }
        let first_back = aside.iter().map(|a| a.until).min().unwrap_or(u64::MAX);
        KeysLeft::None((first_back != u64::MAX).then(|| Duration::from_millis(first_back - now)))
    }

    /// The keys set aside now, by position.
    pub fn current(&self) -> Vec<SetAside> {
        let now = now_ms();
        let mut aside = self.aside.lock().unwrap_or_else(|e| e.into_inner());
        aside.retain(|a| a.until > now);
        aside.clone()
    }
}

/// What is left of a pool once a key is set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysLeft {
    /// Another key can be used now.
    Some,
    /// Every key is aside: the first comes back after this long (`None`: not before a reload).
    None(Option<Duration>),
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

    /// Cools the deployment down for `wait` at once (every key of its pool is set aside).
    pub fn cool_for(&self, wait: Duration) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.cooling_until
            .store(now_ms() + wait.min(MAX_COOLDOWN).as_millis() as u64, Ordering::Relaxed);
    }

    /// Cools the deployment for at least `wait` from now, as another replica did (see
    /// [`crate::limits::shared`]); a longer cooldown of its own, and its failure count, stay as they are.
    pub fn cool_at_least(&self, wait: Duration) {
        let until = now_ms() + wait.min(MAX_COOLDOWN).as_millis() as u64;
        self.cooling_until.fetch_max(until, Ordering::Relaxed);
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
            self.cool_for(wait);
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
    fn a_pool_goes_round_and_skips_keys_set_aside() {
        let shelf = KeyShelf::default();
        assert_eq!(shelf.pick(1), Some(0));
        assert_eq!(shelf.pick(0), Some(0));
        let turns: Vec<_> = (0..6).map(|_| shelf.pick(3).unwrap()).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2]);
        assert_eq!(shelf.set_aside(1, 3, 401, None), KeysLeft::Some);
        let turns: Vec<_> = (0..4).map(|_| shelf.pick(3).unwrap()).collect();
        assert!(!turns.contains(&1), "{turns:?}");
        assert_eq!(
            shelf.set_aside(0, 3, 429, Some(Duration::from_millis(50))),
            KeysLeft::Some
        );
        assert_eq!(shelf.pick(3), Some(2));
        // The last key out: the 429 key is the first back.
        let KeysLeft::None(Some(back)) = shelf.set_aside(2, 3, 403, None) else {
            panic!()
        };
        assert!(back <= Duration::from_millis(50));
        assert_eq!(shelf.pick(3), None);
        assert_eq!(shelf.current().len(), 3);
        std::thread::sleep(Duration::from_millis(70));
        assert_eq!(shelf.pick(3), Some(0), "the 429 key is back after its wait");
        assert_eq!(
            shelf
                .current()
                .iter()
                .map(|a| (a.key, a.status, a.left()))
                .collect::<Vec<_>>(),
            [(1, 401, None), (2, 403, None)]
        );
        // Refused keys stay aside: once every key is refused, none comes back before a reload.
        assert_eq!(shelf.set_aside(0, 3, 401, None), KeysLeft::None(None));
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
