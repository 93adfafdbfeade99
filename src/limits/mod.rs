//! Client keys and their limits: who may send a request, to which groups, and how many.
//!
//! - [`ClientKeys`] is `router_settings.client_keys` as the snapshot holds it: each key with its limiters,
//!   carried over a reload when the key's name and limits did not change (so an edit elsewhere in the file
//!   does not hand every key a fresh minute). `--token` is one more key, named `default`, without limits.
//! - [`admit`] runs after routing, before anything is sent upstream: the key's groups (403), then
//!   `max_parallel`, `rpm` and `tpm` (429 with `retry-after`). Its [`Admission`] travels with the request's
//!   record, which settles the token reservation with the real usage and frees the parallel slot at the end.
//! - [`local`] holds the per-process limiters (a window of per-second request counts, a token bucket); [`shared`] the Redis scripts that take
//!   their place when `redis_url` is set, and the cooldowns replicas share. When Redis does not answer within
//!   a short timeout, the local limiters decide: a request is never refused because Redis is down.

pub mod local;
pub mod shared;

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::response::Response;
use http::{HeaderValue, StatusCode};
use subtle::ConstantTimeEq;

use self::local::{RequestWindow, TokenBucket};
use self::shared::SharedStore;
use crate::config::{ClientKeySpec, KeyLimits, TOKEN_KEY_NAME};
use crate::metrics::{KeyMetrics, Metrics};
use crate::protocol::Protocol;
use crate::protocol::hub::Usage;
use crate::server::error::ApiError;

/// The key a request was let in with.
pub type Caller = Arc<ClientKey>;

/// The output a request is assumed to ask for when it sets no `max_tokens` (or its protocol's equivalent),
/// for its token reservation.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// The local limiters' clock origin.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_micros() -> u64 {
    ORIGIN.elapsed().as_micros() as u64
}

/// One client key: its validated entry and its limiters.
#[derive(Debug)]
pub struct ClientKey {
    pub spec: ClientKeySpec,
    state: Arc<KeyState>,
}

/// What a key counts; shared with the previous snapshot's key of the same name and limits.
#[derive(Debug)]
struct KeyState {
    limits: KeyLimits,
    rpm: Option<RequestWindow>,
    tpm: Option<TokenBucket>,
    inflight: AtomicU32,
    metrics: KeyMetrics,
}

impl KeyState {
    fn new(name: &str, limits: KeyLimits, metrics: &Metrics) -> Self {
        Self {
            limits,
            rpm: limits.rpm.map(RequestWindow::new),
            tpm: limits.tpm.map(TokenBucket::new),
            inflight: AtomicU32::new(0),
            metrics: metrics.key(name),
        }
    }
}

impl ClientKey {
    fn new(spec: ClientKeySpec, previous: Option<&ClientKey>, metrics: &Metrics) -> Self {
        let state = previous
            .filter(|old| old.spec.name == spec.name && old.state.limits == spec.limits)
            .map(|old| old.state.clone())
            .unwrap_or_else(|| Arc::new(KeyState::new(&spec.name, spec.limits, metrics)));
        Self { spec, state }
    }

    /// The key `--token` stands for: `default`, every group, no limits.
    pub fn token(metrics: &Metrics) -> Self {
        let spec = ClientKeySpec {
            name: TOKEN_KEY_NAME.to_owned(),
            sha256: [0; 32],
            groups: None,
            limits: KeyLimits::default(),
            expires: None,
        };
        Self::new(spec, None, metrics)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn expired(&self) -> bool {
        self.spec.expires.is_some_and(|at| SystemTime::now() >= at)
    }

    pub fn metrics(&self) -> &KeyMetrics {
        &self.state.metrics
    }

    /// Its requests in flight (counted only for a key with `max_parallel`).
    pub fn inflight(&self) -> u32 {
        self.state.inflight.load(Ordering::Relaxed)
    }

    /// Counts a finished request and the tokens its upstream reported.
    pub fn record(&self, usage: Option<&Usage>) {
        let metrics = &self.state.metrics;
        metrics.requests.inc();
        if let Some(usage) = usage {
            crate::metrics::handles::count_tokens(&metrics.tokens, usage);
        }
    }
}

/// `client_keys` of one snapshot.
#[derive(Debug, Default)]
pub struct ClientKeys {
    keys: Vec<Arc<ClientKey>>,
}

impl ClientKeys {
    pub fn build(specs: &[ClientKeySpec], previous: Option<&ClientKeys>, metrics: &Metrics) -> Self {
        let keys = specs
            .iter()
            .map(|spec| {
                let old = previous.and_then(|p| p.keys.iter().find(|k| k.spec.name == spec.name));
                Arc::new(ClientKey::new(spec.clone(), old.map(|k| &**k), metrics))
            })
            .collect();
        Self { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ClientKey>> {
        self.keys.iter()
    }

    /// The key whose SHA-256 is `presented`. Every key is compared, each in constant time, so the time taken
    /// says nothing about how close a guess came.
    pub fn find(&self, presented: &[u8; 32]) -> Option<&Arc<ClientKey>> {
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.spec.sha256.ct_eq(presented)) {
                found = Some(key);
            }
        }
        found
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rpm,
    Tpm,
    MaxParallel,
}

impl Limit {
    fn index(self) -> usize {
        match self {
            Limit::Rpm => 0,
            Limit::Tpm => 1,
            Limit::MaxParallel => 2,
        }
    }
}

/// The answer to a key's request for a group it may not use: 403, naming the key (never its value).
pub fn forbidden(key: &ClientKey, group: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("the key '{}' may not use the model group '{group}'", key.name()),
    )
    .with_code("model_not_allowed")
}

/// A key's request over one of its limits: nothing is sent upstream.
#[derive(Debug)]
pub struct Refusal {
    key: String,
    limit: Limit,
    /// When the limit would let the request through.
    retry_after: Duration,
}

impl Refusal {
    /// The answer in the client's protocol: 429 with `retry-after` in whole seconds, naming the key.
    pub fn into_response(self, protocol: Protocol) -> Response {
        let seconds = (self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)).max(1);
        let what = match self.limit {
            Limit::Rpm => "requests per minute (rpm)",
            Limit::Tpm => "tokens per minute (tpm)",
            Limit::MaxParallel => "requests in flight (max_parallel)",
        };
        let message = format!(
            "the key '{}' is over its limit of {what}; retry in {seconds} s",
            self.key
        );
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
            .with_code("rate_limit_exceeded")
            .into_response(protocol);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// A request let through: its parallel slot and its token reservation, until the record settles it.
#[derive(Debug)]
pub struct Admission {
    key: Caller,
    holds_slot: bool,
    /// Tokens reserved, and where: `None` when the key has no `tpm`.
    reserved: Option<(u64, Reserved)>,
}

#[derive(Debug, Clone)]
enum Reserved {
    Local,
    Shared(Arc<SharedStore>),
}

impl Admission {
    /// Settles the token reservation with what the request used: the reported input plus output or, without
    /// a report, the whole reservation for an answer (it may have used it) and nothing for a refusal.
    pub fn settle(mut self, usage: Option<&Usage>, status: u16) {
        let Some((reserved, place)) = self.reserved.take() else {
            return;
        };
        let used = match usage {
            Some(usage) => usage.input + usage.output,
            None if status < 400 => reserved,
            None => 0,
        };
        if used == reserved {
            return;
        }
        match place {
            Reserved::Local => {
                if let Some(bucket) = &self.key.state.tpm {
                    bucket.settle(reserved, used, now_micros());
                }
            }
            Reserved::Shared(store) => {
                let (name, capacity) = (self.key.spec.name.clone(), self.key.state.limits.tpm.unwrap_or(1));
                let give_back = reserved.min(capacity) as i64 - used as i64;
                // The record finishes in a synchronous spot (a drop, a stream's end): the settlement goes on
                // its own, bounded by the store's timeout.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { store.settle(&name, capacity, give_back).await });
                }
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.holds_slot {
            self.key.state.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a request is expected to cost in tokens: the prompt estimate routing rules use (text, and inline
/// media by size) plus the output it asks for at most.
pub fn estimate_tokens(protocol: Protocol, body: &[u8]) -> u64 {
    let features = crate::protocol::features::read(protocol, body, false);
    let output = crate::protocol::features::max_output_tokens(protocol, body).unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    features.prompt_tokens + output
}

/// Lets `key`'s request through its limits, or says which one refuses it (its groups were checked when the
/// request was routed). `estimate` is called only for a key with `tpm`. Limits are checked in Redis when
/// `redis_url` is set, else (or when Redis does not answer in time) on this process's limiters.
pub async fn admit(
    key: &Caller,
    estimate: impl FnOnce() -> u64,
    shared: &Arc<SharedStore>,
) -> Result<Admission, Refusal> {
    let state = &key.state;
    let limits = state.limits;
    let refuse = |limit: Limit, retry_after: Duration| {
        state.metrics.rate_limited[limit.index()].inc();
        Refusal {
            key: key.spec.name.clone(),
            limit,
            retry_after,
        }
    };
    let mut admission = Admission {
        key: key.clone(),
        holds_slot: false,
        reserved: None,
    };
    if let Some(max) = limits.max_parallel {
        let taken = state
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1));
        if taken.is_err() {
            // A slot frees when a request ends, which nothing here can foresee: a short wait.
            return Err(refuse(Limit::MaxParallel, Duration::from_secs(1)));
        }
        admission.holds_slot = true;
    }
    if limits.rpm.is_none() && limits.tpm.is_none() {
        return Ok(admission);
    }
    let tokens = match &state.tpm {
        Some(bucket) => estimate().min(bucket.capacity()),
        None => 0,
    };
    let checked = match shared.is_connected() {
        true => shared.check(&key.spec.name, limits, tokens).await,
        false => None,
    };
    let (verdict, place) = match checked {
        Some(verdict) => (verdict, Reserved::Shared(shared.clone())),
        None => (check_locally(state, tokens), Reserved::Local),
    };
    match verdict {
        Ok(()) => {
            admission.reserved = limits.tpm.map(|_| (tokens, place));
            Ok(admission)
        }
        Err((limit, retry_after)) => Err(refuse(limit, retry_after)),
    }
}

/// `rpm` then `tpm` on this process's limiters; a request the token bucket refuses gives its request back.
fn check_locally(state: &KeyState, tokens: u64) -> Result<(), (Limit, Duration)> {
    let now = now_micros();
    if let Some(rpm) = &state.rpm {
        rpm.check(now).map_err(|wait| (Limit::Rpm, wait))?;
    }
    if let Some(tpm) = &state.tpm
        && let Err(wait) = tpm.reserve(tokens, now)
    {
        if let Some(rpm) = &state.rpm {
            rpm.give_back();
        }
        return Err((Limit::Tpm, wait));
    }
    Ok(())
}
