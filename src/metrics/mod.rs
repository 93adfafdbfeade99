//! `GET /metrics`: the router's Prometheus metrics, with the `prometheus-client` crate.
//!
//! One [`Metrics`] lives as long as the router: its registry and families outlive every config snapshot,
//! so a counter never goes back to zero because of a reload. Each snapshot holds handles into it (see
//! [`handles`]), resolved when the snapshot is built, so that recording a request is a few atomic
//! increments and histogram observations: no label formatting and no map lookup on the request path.
//!
//! Labels only ever take values from the config (group and deployment names) or from closed lists
//! (ingress, status codes, token types, states), so clients cannot grow the number of series: a model that
//! names no group is counted under the group `_unknown`.

pub mod handles;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use self::handles::{GroupMetrics, IngressMetrics, MemberMetrics};
use crate::routing::Snapshot;

/// The group label of requests that reached no group: an unknown model, an unreadable body.
pub const UNKNOWN_GROUP: &str = "_unknown";

/// Time to first token: from 5 ms (a local model's first token) to 60 s (a long reasoning phase).
const TTFT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// Whole requests and attempts: from 10 ms to 10 minutes (long agentic answers stream for minutes).
const DURATION_BUCKETS: [f64; 16] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// The router's own time per request: from 10 µs to 1 s (a converted request with a big prompt).
const OVERHEAD_BUCKETS: [f64; 12] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub ingress: &'static str,
    pub group: String,
    pub code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestDurationLabels {
    pub ingress: &'static str,
    pub group: String,
    pub stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MemberLabels {
    pub group: String,
    pub deployment: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    pub group: String,
    pub deployment: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub group: String,
    pub deployment: String,
    pub token_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub group: String,
    pub deployment: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    group: String,
    to_group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    deployment: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyTokenLabels {
    key: String,
    token_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLimitLabels {
    key: String,
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The families, registered once per router.
pub(crate) struct Families {
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RequestDurationLabels>,
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    pub upstream_duration: HistogramFamily<MemberLabels>,
    pub ttft: HistogramFamily<MemberLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub retries: Family<MemberLabels, Counter>,
    cooldowns: Family<DeploymentLabels, Counter>,
    pub inflight: Family<MemberLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    rule_matches: Family<RuleLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    key_requests: Family<KeyLabels, Counter>,
    key_tokens: Family<KeyTokenLabels, Counter>,
    key_rate_limited: Family<KeyLimitLabels, Counter>,
}

/// One client key's handles, resolved when its snapshot is built.
#[derive(Debug, Clone)]
pub struct KeyMetrics {
    pub requests: Counter,
    /// By [`handles::TOKEN_TYPES`].
    pub tokens: [Counter; 5],
    /// By [`KeyMetrics::LIMITS`].
    pub rate_limited: [Counter; 3],
}

impl KeyMetrics {
    /// The `limit` label's values, in the order of `rate_limited`.
    pub const LIMITS: [&'static str; 3] = ["rpm", "tpm", "max_parallel"];
}

/// The router's metrics: the registry and the handles that belong to no snapshot.
pub struct Metrics {
    registry: Registry,
    pub(crate) families: Families,
    /// Requests that reached no group.
    pub unknown: Arc<GroupMetrics>,
    pub overhead: Histogram,
    pub auth_failures: Counter,
    /// Redis calls that failed or timed out (the router went on with per-process limits).
    pub redis_errors: Counter,
    reload_success: Counter,
    reload_failure: Counter,
    last_reload_success: Gauge<f64, AtomicU64>,
    /// Scrapes one at a time: each rebuilds the state family before encoding it.
    render_lock: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn ttft_histogram() -> Histogram {
    Histogram::new(TTFT_BUCKETS)
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("llmrouter");
        let families = Families {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            upstream_requests: Family::default(),
            upstream_duration: Family::new_with_constructor(duration_histogram),
            ttft: Family::new_with_constructor(ttft_histogram),
            tokens: Family::default(),
            retries: Family::default(),
            cooldowns: Family::default(),
            inflight: Family::default(),
            state: Family::default(),
            rule_matches: Family::default(),
            fallbacks: Family::default(),
            key_requests: Family::default(),
            key_tokens: Family::default(),
            key_rate_limited: Family::default(),
        };
        // prometheus-client appends `_total` to counters' names.
        registry.register(
            "requests",
            "Client-facing requests, by ingress protocol, model group and the HTTP status sent (for a stream that \
             ended in an in-band error, that error's status)",
            families.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Client-facing request duration, from the request's arrival to the end of its answer (a stream's last event)",
            families.request_duration.clone(),
        );
        registry.register(
            "upstream_requests",
            "Attempts sent to a deployment, by the upstream's HTTP status (502/504 when it gave none: unreachable, \
             timed out, broken answer)",
            families.upstream_requests.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Attempt duration, from sending the request to the end of the upstream's answer",
            families.upstream_duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Streams: from the request's arrival to the first content delta (text, reasoning or tool call)",
            families.ttft.clone(),
        );
        registry.register(
            "tokens",
            "Tokens as the upstream reported them. cache_read and cache_write are subsets of input; reasoning is a \
             subset of output",
            families.tokens.clone(),
        );
        registry.register(
            "retries",
            "Failed attempts that were retried on another deployment, by the deployment that failed",
            families.retries.clone(),
        );
        registry.register(
            "cooldowns",
            "Cooldowns started (allowed_fails consecutive failures, or a Retry-After)",
            families.cooldowns.clone(),
        );
        registry.register(
            "inflight_requests",
            "Requests whose current attempt is on this deployment (streams until their last event)",
            families.inflight.clone(),
        );
        registry.register(
            "deployment_state",
            "1 on the deployment's current state: healthy, failing (failures below allowed_fails) or cooling",
            families.state.clone(),
        );
        registry.register(
            "rule_matches",
            "Requests whose group a routing rule chose, by rule name",
            families.rule_matches.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests moved from a group to one of its fallbacks (every attempt failed, or the prompt was too long)",
            families.fallbacks.clone(),
        );
        registry.register(
            "key_requests",
            "Requests on the API routes, by client key (its name; --token is 'default')",
            families.key_requests.clone(),
        );
        registry.register(
            "key_tokens",
            "Tokens as the upstream reported them, by client key and token type",
            families.key_tokens.clone(),
        );
        registry.register(
            "key_rate_limited",
            "Requests refused with 429 for a client key's limit: rpm, tpm or max_parallel",
            families.key_rate_limited.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Calls to redis_url that failed or timed out; the router went on with per-process limits",
            redis_errors.clone(),
        );
        let overhead = Histogram::new(OVERHEAD_BUCKETS);
        registry.register(
            "overhead_seconds",
            "The router's own time per relayed request: its duration minus the time spent waiting on upstreams",
            overhead.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused for a missing or wrong token",
            auth_failures.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads applied (success) or refused (failure)",
            reloads.clone(),
        );
        let last_reload_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last config load or reload that was applied",
            last_reload_success.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version of the running router",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let reload_success = reloads.get_or_create_owned(&ResultLabels { result: "success" });
        let reload_failure = reloads.get_or_create_owned(&ResultLabels { result: "failure" });
        let unknown = Arc::new(GroupMetrics::new(&families, UNKNOWN_GROUP, &[]));
        let metrics = Self {
            registry,
            families,
            unknown,
            overhead,
            auth_failures,
            redis_errors,
            reload_success,
            reload_failure,
            last_reload_success,
            render_lock: Mutex::new(()),
        };
        metrics.last_reload_success.set(unix_seconds());
        metrics
    }

    /// The cooldown counter of a deployment.
    pub(crate) fn cooldowns(&self, deployment: &str) -> Counter {
        self.families.cooldowns.get_or_create_owned(&DeploymentLabels {
            deployment: deployment.to_owned(),
        })
    }

    /// A client key's handles (looked up once per key per snapshot).
    pub fn key(&self, key: &str) -> KeyMetrics {
        let families = &self.families;
        let owned = || key.to_owned();
        KeyMetrics {
            requests: families.key_requests.get_or_create_owned(&KeyLabels { key: owned() }),
            tokens: handles::TOKEN_TYPES.map(|token_type| {
                families.key_tokens.get_or_create_owned(&KeyTokenLabels {
                    key: owned(),
                    token_type,
                })
            }),
            rate_limited: KeyMetrics::LIMITS.map(|limit| {
                families
                    .key_rate_limited
                    .get_or_create_owned(&KeyLimitLabels { key: owned(), limit })
            }),
        }
    }

    /// The match counter of a routing rule.
    pub(crate) fn rule_matches(&self, rule: &str) -> Counter {
        self.families
            .rule_matches
            .get_or_create_owned(&RuleLabels { rule: rule.to_owned() })
    }

    /// Counts a request moved from `group` to `to_group` (a rare path: the series is looked up here).
    pub fn fell_back(&self, group: &str, to_group: &str) {
        let labels = FallbackLabels {
            group: group.to_owned(),
            to_group: to_group.to_owned(),
        };
        self.families.fallbacks.get_or_create(&labels).inc();
    }

    /// A reload was applied (`true`) or refused.
    pub fn reloaded(&self, applied: bool) {
        if applied {
            self.reload_success.inc();
            self.last_reload_success.set(unix_seconds());
        } else {
            self.reload_failure.inc();
        }
    }

    /// The text exposition of every family. The deployment states are read from `snapshot` now: they are
    /// a view of the health of the deployments configured at this moment, so a deployment removed by a reload
    /// leaves this family at once (its counters stay; see [`handles`]).
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let _one_at_a_time = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        let state = &self.families.state;
        state.clear();
        for group in snapshot.groups() {
            for member in &group.members {
                let current = member.health.state().name();
                for name in ["healthy", "failing", "cooling"] {
                    let labels = StateLabels {
                        group: group.name.clone(),
                        deployment: member.name.clone(),
                        state: name,
                    };
                    state.get_or_create(&labels).set(i64::from(current == name));
                }
            }
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Seconds as histograms take them.
pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
