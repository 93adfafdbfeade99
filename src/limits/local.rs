//! The per-process limiters: GCRA for requests per minute and a token bucket for tokens per minute. Both take
//! the time as an argument (microseconds on the process's monotonic clock), so that tests can drive them, and
//! neither holds a lock beyond a few arithmetic operations (never across an await).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A minute, in microseconds: the window of `rpm` and `tpm`.
pub const MINUTE_MICROS: u64 = 60_000_000;

/// The generic cell rate algorithm (a leaky bucket kept as one number, the theoretical arrival time): `n`
/// requests per minute are one every `60 s / n`, with a tolerance that lets an idle key send up to `n` at
/// once and never more; after that, requests are let through at the even rate. One atomic, no lock.
#[derive(Debug)]
pub struct Gcra {
    /// When the next request would be due if requests came at the even rate, in microseconds.
    tat: AtomicU64,
    /// Microseconds between two requests at the even rate.
    interval: u64,
    /// How far ahead of `tat` a request may come: `n - 1` intervals, a burst of `n`.
    tolerance: u64,
}

impl Gcra {
    pub fn new(per_minute: u32) -> Self {
        let (interval, tolerance) = super::gcra_figures(per_minute);
        Self {
            tat: AtomicU64::new(0),
            interval,
            tolerance,
        }
    }

    /// Undoes one [`Gcra::check`] that let a request through which another limit then refused.
    pub fn give_back(&self) {
        let _ = self.tat.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
            Some(tat.saturating_sub(self.interval))
        });
    }

    /// Takes one request at `now`, or says how long until one would be let through.
    pub fn check(&self, now: u64) -> Result<(), Duration> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let allowed_at = tat.saturating_sub(self.tolerance);
            if now < allowed_at {
                return Err(Duration::from_micros(allowed_at - now));
            }
            let next = tat.max(now) + self.interval;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

/// A token bucket of `per_minute` tokens, refilled continuously at `per_minute` a minute. A request reserves
/// its estimate before it is sent and settles with what it really used after, so the bucket may go below
/// zero (down to minus a minute's worth) when an answer used more than its estimate.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    /// Tokens per microsecond.
    rate: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug, Clone, Copy)]
struct BucketState {
    level: f64,
    /// When `level` was last brought up to date, in microseconds.
    at: u64,
}

impl TokenBucket {
    pub fn new(per_minute: u64) -> Self {
        let capacity = per_minute.max(1) as f64;
        Self {
            capacity,
            rate: capacity / MINUTE_MICROS as f64,
            state: Mutex::new(BucketState { level: capacity, at: 0 }),
        }
    }

    /// The largest reservation the bucket can ever grant: a bigger estimate is cut to this, so that one
    /// large request is not refused for ever.
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    /// Reserves `tokens` at `now`, or says how long until the bucket holds that many.
    pub fn reserve(&self, tokens: u64, now: u64) -> Result<(), Duration> {
        let tokens = (tokens as f64).min(self.capacity);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut state, now);
        if state.level < tokens {
            let wait = ((tokens - state.level) / self.rate).ceil() as u64;
            return Err(Duration::from_micros(wait.max(1)));
        }
        state.level -= tokens;
        Ok(())
    }

    /// Gives back what a request reserved but did not use (`reserved > used`), or takes what it used beyond
    /// its reservation.
    pub fn settle(&self, reserved: u64, used: u64, now: u64) {
        let reserved = (reserved as f64).min(self.capacity);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut state, now);
        state.level = (state.level + reserved - used as f64).clamp(-self.capacity, self.capacity);
    }

    fn refill(&self, state: &mut BucketState, now: u64) {
        let elapsed = now.saturating_sub(state.at);
        state.level = (state.level + elapsed as f64 * self.rate).min(self.capacity);
        state.at = state.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn gcra_lets_a_burst_of_n_through_then_the_even_rate() {
        let limit = Gcra::new(6); // one every 10 s
        let start = 100 * SECOND;
        for _ in 0..6 {
            assert_eq!(limit.check(start), Ok(()));
        }
        let wait = limit.check(start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(limit.check(start + 9 * SECOND).is_err());
        assert_eq!(limit.check(start + 10 * SECOND), Ok(()));
        assert!(
            limit.check(start + 10 * SECOND).is_err(),
            "one per interval, no second burst"
        );
        // Idle for a minute: the whole burst is back, and no more.
        let later = start + 80 * SECOND;
        for _ in 0..6 {
            assert_eq!(limit.check(later), Ok(()));
        }
        assert!(limit.check(later).is_err());
    }

    #[test]
    fn gcra_from_many_threads_lets_exactly_n_through() {
        let limit = std::sync::Arc::new(Gcra::new(1000));
        let passed = std::sync::Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (limit, passed) = (limit.clone(), passed.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        if limit.check(SECOND).is_ok() {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(passed.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn bucket_reserves_refills_and_settles() {
        let bucket = TokenBucket::new(600); // 10 a second
        let start = 5 * SECOND;
        assert_eq!(bucket.reserve(500, start), Ok(()));
        let wait = bucket.reserve(200, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10), "100 left, 100 more at 10 a second");
        // The answer used 50 of its 500: 450 come back.
        bucket.settle(500, 50, start);
        assert_eq!(bucket.reserve(550, start), Ok(()));
        assert!(bucket.reserve(1, start).is_err());
        assert_eq!(bucket.reserve(10, start + SECOND), Ok(()), "refilled 10 in a second");
    }

    #[test]
    fn bucket_goes_into_debt_and_caps_an_estimate_at_its_capacity() {
        let bucket = TokenBucket::new(100);
        assert_eq!(bucket.capacity(), 100);
        // An estimate above the capacity takes the whole bucket, so that it can pass at all.
        assert_eq!(bucket.reserve(10_000, 0), Ok(()));
        // It used 150: the bucket owes 50, a further 30 s before it holds anything.
        bucket.settle(10_000, 150, 0);
        let wait = bucket.reserve(1, 0).unwrap_err();
        assert!(
            wait > Duration::from_secs(30) && wait < Duration::from_secs(31),
            "{wait:?}"
        );
        // Debt is bounded: a minute's worth at most.
        bucket.settle(0, 1_000_000, 0);
        assert!(bucket.reserve(1, 0).unwrap_err() <= Duration::from_secs(121));
    }
}
