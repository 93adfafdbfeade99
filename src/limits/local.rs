//! The per-process limiters: a window of per-second counts for requests per minute and a token bucket for
//! tokens per minute. Both take the time as an argument (microseconds on the process's monotonic clock), so
//! that tests can drive them, and neither holds a lock beyond a few arithmetic operations (never across an
//! await).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// A minute, in microseconds: the window of `rpm` and `tpm`.
pub const MINUTE_MICROS: u64 = 60_000_000;
const SECOND_MICROS: u64 = 1_000_000;
/// The seconds before the current one that a request window counts: with the current one, 61 seconds, so
/// every 60 s window, wherever it starts, lies inside what is counted.
pub const WINDOW_SECONDS: u64 = 60;

/// At most `n` requests in any 60 s window, and no more at once than `n`: the requests let through in each
/// of the last 61 whole seconds are counted, and one more is let through only while they number fewer than
/// `n`. Counting whole seconds refuses a request up to a second early, never late, in 61 counts of memory.
/// (GCRA, the usual choice, lets an idle key send `n` at once and then one every `60 s / n`: nearly `2n` in
/// the minute after a burst.)
#[derive(Debug)]
pub struct RequestWindow {
    limit: u32,
    /// (second, requests let through in it), oldest first, only seconds still in the window.
    seconds: Mutex<VecDeque<(u64, u32)>>,
}

impl RequestWindow {
    pub fn new(per_minute: u32) -> Self {
        Self {
            limit: per_minute.max(1),
            seconds: Mutex::new(VecDeque::with_capacity(WINDOW_SECONDS as usize + 1)),
        }
    }

    /// Takes one request at `now`, or says how long until one would be let through.
    pub fn check(&self, now: u64) -> Result<(), Duration> {
        let second = now / SECOND_MICROS;
        let mut seconds = self.seconds.lock().unwrap_or_else(|e| e.into_inner());
        while seconds.front().is_some_and(|(s, _)| s + WINDOW_SECONDS < second) {
            seconds.pop_front();
        }
        let mut counted: u32 = seconds.iter().map(|(_, n)| n).sum();
        if counted >= self.limit {
            // Wait until enough of the oldest seconds have left the window.
            for (s, n) in seconds.iter() {
                counted -= n;
                if counted < self.limit {
                    let free_at = (s + WINDOW_SECONDS + 1) * SECOND_MICROS;
                    return Err(Duration::from_micros(free_at.saturating_sub(now).max(1)));
                }
            }
        }
        match seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => seconds.push_back((second, 1)),
        }
        Ok(())
    }

    /// Undoes one [`RequestWindow::check`] that let a request through which another limit then refused.
    pub fn give_back(&self) {
        let mut seconds = self.seconds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = seconds.back_mut() {
            *n -= 1;
            if *n == 0 {
                seconds.pop_back();
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
    fn a_window_lets_a_burst_of_n_through_and_no_more_in_any_minute() {
        let limit = RequestWindow::new(6);
        let start = 100 * SECOND + SECOND / 2;
        for _ in 0..6 {
            assert_eq!(limit.check(start), Ok(()));
        }
        // The burst's second (100) leaves the window when second 161 begins.
        assert_eq!(
            limit.check(start).unwrap_err(),
            Duration::from_micros(60 * SECOND + SECOND / 2)
        );
        assert!(
            limit.check(start + 59 * SECOND).is_err(),
            "not one more within the minute"
        );
        assert!(limit.check(161 * SECOND - 1).is_err());
        for _ in 0..6 {
            assert_eq!(limit.check(161 * SECOND), Ok(()));
        }
        assert!(limit.check(161 * SECOND).is_err());
    }

    #[test]
    fn a_window_frees_the_oldest_seconds_first() {
        let limit = RequestWindow::new(3);
        assert_eq!(limit.check(10 * SECOND), Ok(()));
        assert_eq!(limit.check(20 * SECOND), Ok(()));
        assert_eq!(limit.check(30 * SECOND), Ok(()));
        // Second 10 leaves at 71: one more then, the next at 81.
        assert_eq!(limit.check(40 * SECOND).unwrap_err(), Duration::from_secs(31));
        assert_eq!(limit.check(71 * SECOND), Ok(()));
        assert_eq!(limit.check(72 * SECOND).unwrap_err(), Duration::from_secs(9));
        // A request given back (another limit refused it) frees its place at once.
        limit.give_back();
        assert_eq!(limit.check(72 * SECOND), Ok(()));
    }

    #[test]
    fn a_window_from_many_threads_lets_exactly_n_through() {
        let limit = std::sync::Arc::new(RequestWindow::new(1000));
        let passed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (limit, passed) = (limit.clone(), passed.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        if limit.check(SECOND).is_ok() {
                            passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(passed.load(std::sync::atomic::Ordering::Relaxed), 1000);
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
