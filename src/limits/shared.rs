//! `redis_url`: the limits and cooldowns that the replicas of one router share.
//!
//! **Limits.** Each check is one Lua script (`LIMIT_SCRIPT`), atomic in Redis and timed by Redis's own
//! clock (`TIME`), so replicas with skewed clocks agree: the request window of `rpm` and the token bucket of `tpm`
//! are checked together and written only when both let the request through. Settlement is a second script.
//! Every key expires on its own (`PX`/`PEXPIRE`) once its limiter is back to idle.
//!
//! **Cooldowns.** A request never waits on Redis for them. A background task, every
//! [`COOLDOWN_SYNC_INTERVAL`], sends one script with every deployment's local cooldown: a cooldown this
//! replica started is written as `llmrouter:cooldown:<deployment>` with `PX` (it expires when the cooldown
//! ends), and the script answers with each deployment's shared cooldown, which the task applies to local
//! health. So a cooldown one replica starts is seen by all within about that interval, the request path
//! only reads local atomics, and with Redis gone each replica keeps its own cooldowns.
//!
//! **Redis down.** Every call has a [`REDIS_TIMEOUT`]; a failed call counts in `llmrouter_redis_errors_total`,
//! logs a warning at most once a minute, and the caller goes on with the per-process limiters. Requests then
//! skip Redis for [`BACK_OFF`] (or until the cooldown exchange gets an answer again).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Limit;
use crate::config::{KeyLimits, Secret};
use crate::routing::Snapshot;

/// How long a request waits on Redis before it is decided locally.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(150);
/// How often the cooldowns are exchanged with the other replicas.
pub const COOLDOWN_SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// After a failed call, requests skip Redis for this long (the cooldown exchange keeps probing it), so that
/// an unreachable Redis costs one request a timeout now and then, not every request.
const BACK_OFF: Duration = Duration::from_secs(1);
/// At most one warning about Redis in this long.
const WARN_EVERY: Duration = Duration::from_secs(60);
const PREFIX: &str = "llmrouter";

/// The request window and the token bucket in one step. KEYS: the rpm key (a hash: second → requests let
/// through in it, as [`super::local::RequestWindow`] counts them), the tpm key. ARGV: rpm (0: none), capacity
/// and tokens (capacity 0: no tpm). Answers `{0, 0}`, or `{1 (rpm) | 2 (tpm), wait in ms}`.
const LIMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local second = tonumber(t[1])
local rpm = tonumber(ARGV[1])
local capacity, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 then
  local counts = redis.call('HGETALL', KEYS[1])
  local seconds, total = {}, 0
  for i = 1, #counts, 2 do
    local s, n = tonumber(counts[i]), tonumber(counts[i + 1])
    if s + 60 < second then
      redis.call('HDEL', KEYS[1], counts[i])
    else
      seconds[#seconds + 1] = {s, n}
      total = total + n
    end
  end
  if total >= rpm then
    table.sort(seconds, function(a, b) return a[1] < b[1] end)
    for _, entry in ipairs(seconds) do
      total = total - entry[2]
      if total < rpm then
        return {1, math.max(1, math.ceil(((entry[1] + 61) * 1000000 - now) / 1000))}
      end
    end
  end
end
if capacity > 0 then
  local rate = capacity / 60000000
  local state = redis.call('HMGET', KEYS[2], 'level', 'at')
  local level = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  if now > at then level = math.min(capacity, level + (now - at) * rate) end
  tokens = math.min(tokens, capacity)
  if level < tokens then return {2, math.max(1, math.ceil((tokens - level) / rate / 1000))} end
  level = level - tokens
  redis.call('HSET', KEYS[2], 'level', tostring(level), 'at', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[2], math.ceil((capacity - level) / rate / 1000) + 1000)
end
if rpm > 0 then
  redis.call('HINCRBY', KEYS[1], tostring(second), 1)
  redis.call('PEXPIRE', KEYS[1], 62000)
end
return {0, 0}
";

/// Settles a token reservation. KEYS: the tpm key. ARGV: capacity, tokens given back (negative: taken).
const SETTLE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local capacity = tonumber(ARGV[1])
local rate = capacity / 60000000
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then level = math.min(capacity, level + (now - at) * rate) end
level = math.max(-capacity, math.min(capacity, level + tonumber(ARGV[2])))
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / rate / 1000) + 1000)
return 0
";

/// Exchanges cooldowns. KEYS: one cooldown key per deployment. ARGV: this replica's cooldown left on each, in
/// ms (0: none). A longer one than Redis holds is written; answers each key's cooldown left in ms (<= 0: none).
const COOLDOWN_SCRIPT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local mine = tonumber(ARGV[i])
  local shared = redis.call('PTTL', key)
  if mine > shared + 100 then
    redis.call('SET', key, '1', 'PX', mine)
    shared = mine
  end
  out[i] = shared
end
return out
";

/// The connection to `redis_url`, when it is set, and what it costs when it fails.
pub struct SharedStore {
    connection: ArcSwapOption<Connection>,
    errors: Counter,
    /// Milliseconds since `started` of the last warning; `u64::MAX`: none yet.
    last_warning: AtomicU64,
    /// Milliseconds since `started` until which requests do not ask Redis.
    backing_off_until: AtomicU64,
    started: Instant,
    limit: redis::Script,
    settle: redis::Script,
    cooldowns: redis::Script,
}

struct Connection {
    url: Secret,
    manager: ConnectionManager,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    pub fn new(errors: Counter) -> Self {
        Self {
            connection: ArcSwapOption::empty(),
            errors,
            last_warning: AtomicU64::new(u64::MAX),
            backing_off_until: AtomicU64::new(0),
            started: Instant::now(),
            limit: redis::Script::new(LIMIT_SCRIPT),
            settle: redis::Script::new(SETTLE_SCRIPT),
            cooldowns: redis::Script::new(COOLDOWN_SCRIPT),
        }
    }

    /// Whether `redis_url` is set (Redis itself may still be down: calls then fail fast and fall back).
    pub fn is_connected(&self) -> bool {
        self.connection.load().is_some()
    }

    /// Follows the config's `redis_url`: a new URL gets a new connection (made lazily, in the background),
    /// none drops it.
    pub fn follow(&self, url: Option<&Secret>) {
        let current = self.connection.load();
        if current.as_ref().map(|c| &c.url) == url {
            return;
        }
        let Some(url) = url else {
            self.connection.store(None);
            return;
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = redis::Client::open(url.expose())
            .and_then(|client| ConnectionManager::new_lazy_with_config(client, config));
        match manager {
            Ok(manager) => self.connection.store(Some(Arc::new(Connection {
                url: url.clone(),
                manager,
            }))),
            Err(error) => {
                self.connection.store(None);
                self.failed("cannot use redis_url", &error);
            }
        }
    }

    /// `rpm` and `tpm` of the key `name` in Redis: `None` when Redis did not answer in time.
    pub async fn check(&self, name: &str, limits: KeyLimits, tokens: u64) -> Option<Result<(), (Limit, Duration)>> {
        if self.elapsed_ms() < self.backing_off_until.load(Ordering::Relaxed) {
            return None;
        }
        let connection = self.connection.load_full()?;
        let mut manager = connection.manager.clone();
        let mut invocation = self.limit.key(format!("{PREFIX}:rpm:{name}"));
        invocation
            .key(format!("{PREFIX}:tpm:{name}"))
            .arg(limits.rpm.unwrap_or(0))
            .arg(limits.tpm.unwrap_or(0))
            .arg(tokens);
        let answer = tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<(u8, u64)>(&mut manager)).await;
        match self.answer(answer)? {
            (0, _) => Some(Ok(())),
            (which, wait) => {
                let limit = if which == 1 { Limit::Rpm } else { Limit::Tpm };
                Some(Err((limit, Duration::from_millis(wait.max(1)))))
            }
        }
    }

    /// Gives back (or takes, when negative) tokens of the key `name`'s shared bucket.
    pub async fn settle(&self, name: &str, capacity: u64, give_back: i64) {
        let Some(connection) = self.connection.load_full() else {
            return;
        };
        let mut manager = connection.manager.clone();
        let mut invocation = self.settle.key(format!("{PREFIX}:tpm:{name}"));
        invocation.arg(capacity).arg(give_back);
        let answer = tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut manager)).await;
        self.answer(answer);
    }

    /// One exchange of cooldowns for the deployments of `snapshot` (see the module's comment).
    pub async fn sync_cooldowns(&self, snapshot: &Snapshot) {
        let Some(connection) = self.connection.load_full() else {
            return;
        };
        let deployments = snapshot.deployments();
        if deployments.is_empty() {
            return;
        }
        let mut manager = connection.manager.clone();
        let mut invocation = self.cooldowns.prepare_invoke();
        for deployment in deployments {
            let left = deployment.health.cooldown_left().map_or(0, |d| d.as_millis() as u64);
            invocation
                .key(format!("{PREFIX}:cooldown:{}", deployment.name))
                .arg(left);
        }
        let answer = tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<Vec<i64>>(&mut manager)).await;
        let Some(shared) = self.answer(answer) else { return };
        // Redis answers again: requests may ask it at once.
        self.backing_off_until.store(0, Ordering::Relaxed);
        for (deployment, left) in deployments.iter().zip(shared) {
            if left > 0 {
                deployment.health.cool_at_least(Duration::from_millis(left as u64));
            }
        }
    }

    /// The script's answer, or `None` with the failure counted (and, once a minute, logged).
    fn answer<T>(&self, answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match answer {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.failed("redis call failed", &error);
                None
            }
            Err(_) => {
                self.failed(
                    "redis call timed out",
                    &format!("no answer in {} ms", REDIS_TIMEOUT.as_millis()),
                );
                None
            }
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.inc();
        let now = self.elapsed_ms();
        self.backing_off_until
            .store(now + BACK_OFF.as_millis() as u64, Ordering::Relaxed);
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // The error's text names the failure (refused, timed out), never the URL with its password.
            tracing::warn!(
                error = %error,
                "{what}: going on with per-process limits and cooldowns (this warning repeats at most once a minute)"
            );
        }
    }
}

/// Follows `redis_url` across reloads and exchanges cooldowns, for as long as the router runs.
pub fn spawn(store: Arc<SharedStore>, live: Arc<ArcSwap<Snapshot>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COOLDOWN_SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snapshot = live.load_full();
            store.follow(snapshot.config.redis_url.as_ref());
            store.sync_cooldowns(&snapshot).await;
        }
    })
}
