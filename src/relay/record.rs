//! One record per request: filled in as the request goes (its group, the attempts and their deployments,
//! the time to first token, the usage the upstream reported) and finished once, at the very end, into a
//! [`FinishedRequest`] that feeds the request's log line and its metrics, so the two never disagree. A
//! stream's record travels with its body and is finished when the stream ends, with the stream's real
//! outcome; a request dropped midway (the client left) is finished as 499 when its record is dropped.
//!
//! Recording is on every request's path, so it costs what the atomics cost: the metric handles come from
//! the snapshot (resolved when it was built), the request id is a counter, and nothing is formatted unless
//! the log line is enabled.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::response::Response;

use crate::limits::{Admission, Caller};
use crate::metrics::{Metrics, seconds};
use crate::protocol::Protocol;
use crate::protocol::hub::Usage;
use crate::routing::{Deployment, ModelGroup};
use crate::server::Shared;
use crate::status::Status;

/// Request ids: a random half per process, so that ids from two runs do not collide in one log, and a
/// counter, which costs one atomic increment per request.
static PROCESS_ID: LazyLock<u32> = LazyLock::new(rand::random);
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn next_request_id() -> u64 {
    (u64::from(*PROCESS_ID) << 32) | u64::from(NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

#[derive(Debug)]
pub struct RequestRecord {
    id: u64,
    client: Protocol,
    route: &'static str,
    started: Instant,
    metrics: Arc<Metrics>,
    /// The status page's windows and error list, and the usage log.
    status: Arc<Status>,
    /// The group the request was routed to (by a rule, or by its model).
    group: Option<Arc<ModelGroup>>,
    /// The fallback group whose members are being tried, once the request left `group`.
    serving: Option<Arc<ModelGroup>>,
    /// The routing rule that chose `group`.
    rule: Option<Arc<str>>,
    /// The groups the request fell back to, in order.
    fallbacks: Vec<Arc<ModelGroup>>,
    /// For a request with a session key: whether its last attempt went to the session's first choice.
    affinity_hit: Option<bool>,
    /// A whole answer's time counts as its deployment's time to first token (generation requests; a
    /// count's would flatter the deployment that takes the counts).
    feeds_latency: bool,
    /// The deployment of the last attempt: after failover, the one that gave the answer.
    deployment: Option<Arc<Deployment>>,
    /// `deployment`'s index among the group's members, for its metric handles.
    member: Option<usize>,
    /// The key of `deployment`'s pool the last attempt went with (only for a deployment with a pool).
    key: Option<usize>,
    /// Attempts sent upstream; 0 for a request refused, or answered, by the router itself.
    attempts: u32,
    /// The attempt in progress, if any; closed by its failure or, for the answering one, at the end.
    current: Option<OpenAttempt>,
    /// The member whose attempt failed last: a retry of it is counted when the next attempt starts.
    failed: Option<usize>,
    /// Time spent in closed attempts: what the request waited on upstreams.
    upstream_wait: Duration,
    ttft: Option<Duration>,
    usage: Option<Usage>,
    /// The client key the request came with (`--token`'s is `default`); `None` on an open router.
    client_key: Option<Caller>,
    /// Its parallel slot and token reservation, settled at the end.
    admission: Option<Admission>,
    finished: bool,
}

#[derive(Debug, Clone, Copy)]
struct OpenAttempt {
    started: Instant,
    /// The upstream's HTTP status, once it answered.
    status: Option<u16>,
}

/// How a request ended, for its record: `status` is the HTTP status the answer stands for (for a stream
/// that ended in an in-band error, that error's status, not the 200 already sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub status: u16,
    /// For streams: how the stream ended (`complete`, `upstream stream stalled`, ...).
    pub outcome: Option<&'static str>,
}

/// A finished request, as its log line, its metrics and any later consumer (a usage log, a status page)
/// see it. Borrowed from the record: a consumer that keeps it copies what it needs.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRequest<'a> {
    /// Unique within the process (and very likely across restarts); shown as 16 hex digits.
    pub request_id: u64,
    /// The client's protocol: `chat`, `messages`, `responses`, `gemini`.
    pub ingress: &'static str,
    pub route: &'static str,
    /// The model group; `None` when the request reached none (unknown model, unreadable body).
    pub group: Option<&'a str>,
    /// The deployment that answered (after failover, the last one tried).
    pub deployment: Option<&'a str>,
    /// Which key of the deployment's pool, from 1 (`key #2`); `None` without a pool.
    pub key: Option<usize>,
    /// The routing rule that chose `group`.
    pub rule: Option<&'a str>,
    /// The name of the client key the request came with (`default` for `--token`).
    pub client_key: Option<&'a str>,
    /// The groups the request fell back to after `group`, in order.
    pub fallbacks: &'a [Arc<ModelGroup>],
    /// With a session key: `hit` when the session's first choice served the last attempt, else `miss`.
    pub affinity: Option<&'static str>,
    pub status: u16,
    /// `complete`, `error`, `client disconnected`, or how a stream ended.
    pub outcome: &'static str,
    pub stream: bool,
    pub attempts: u32,
    /// Streams: from the request's arrival to the first content delta.
    pub ttft: Option<Duration>,
    pub duration: Duration,
    /// The part of `duration` spent waiting on upstreams (every attempt, a stream to its end).
    pub upstream_wait: Duration,
    /// As the upstream reported it; `None` when it reported none.
    pub usage: Option<Usage>,
}

impl FinishedRequest<'_> {
    /// The router's own time: the duration minus the time waiting on upstreams.
    pub fn overhead(&self) -> Duration {
        self.duration.saturating_sub(self.upstream_wait)
    }
}

impl RequestRecord {
    pub fn new(client: Protocol, route: &'static str, shared: &Shared) -> Self {
        Self {
            id: next_request_id(),
            client,
            route,
            started: Instant::now(),
            metrics: shared.metrics.clone(),
            status: shared.status.clone(),
            group: None,
            serving: None,
            rule: None,
            fallbacks: Vec::new(),
            affinity_hit: None,
            feeds_latency: false,
            deployment: None,
            member: None,
            key: None,
            attempts: 0,
            current: None,
            failed: None,
            upstream_wait: Duration::ZERO,
            ttft: None,
            usage: None,
            client_key: None,
            admission: None,
            finished: false,
        }
    }

    pub fn route(&self) -> &'static str {
        self.route
    }

    /// The client key the server let the request in with, from the request's extensions.
    pub fn caller(&mut self, extensions: &http::Extensions) {
        self.client_key = extensions.get::<Caller>().cloned();
    }

    pub fn client_key(&self) -> Option<&Caller> {
        self.client_key.as_ref()
    }

    /// The key's limits let the request through; the record settles them when the request ends.
    pub fn admitted(&mut self, admission: Admission) {
        self.admission = Some(admission);
    }

    pub fn group(&mut self, group: &Arc<ModelGroup>) {
        self.group = Some(group.clone());
    }

    /// This request's whole answer feeds its deployment's time-to-first-token average (see `latency`).
    pub fn feeds_latency(&mut self) {
        self.feeds_latency = true;
    }

    pub fn rule(&mut self, name: Arc<str>) {
        self.rule = Some(name);
    }

    /// The request moved on to `group` (a fallback): the next attempts are on its members.
    pub fn fell_back(&mut self, group: &Arc<ModelGroup>) {
        self.fallbacks.push(group.clone());
        self.serving = Some(group.clone());
    }

    /// The next attempt goes to the session's first choice (`true`) or, that one being unavailable, another.
    pub fn affinity(&mut self, hit: bool) {
        self.affinity_hit = Some(hit);
    }

    /// An attempt on `deployment` (a member of the record's group) is about to be sent.
    pub fn attempt(&mut self, deployment: &Arc<Deployment>) {
        self.chose(deployment);
        self.attempts += 1;
        self.current = Some(OpenAttempt {
            started: Instant::now(),
            status: None,
        });
        if deployment.tracks_load {
            deployment.health.started();
        }
        if let Some(member) = self.member_metrics() {
            member.inflight.inc();
        }
        if let Some(failed) = self.failed.take()
            && let Some(group) = self.serving()
        {
            group.metrics.members[failed].retries.inc();
        }
    }

    /// The deployment chosen without an attempt (count_tokens answered locally, Claude Code's pre-warm).
    pub fn chose(&mut self, deployment: &Arc<Deployment>) {
        // A pointer comparison over a handful of members: no name is compared.
        self.member = self
            .serving()
            .and_then(|g| g.members.iter().position(|m| Arc::ptr_eq(m, deployment)));
        self.deployment = Some(deployment.clone());
        self.key = None;
    }

    /// The current attempt goes with key `key` of its deployment's pool (noted only for a pool).
    pub fn key(&mut self, key: usize) {
        if self.deployment.as_ref().is_some_and(|d| d.has_key_pool()) {
            self.key = Some(key);
        }
    }

    /// The upstream answered the current attempt with this HTTP status.
    pub fn upstream_status(&mut self, status: u16) {
        if let Some(attempt) = &mut self.current {
            attempt.status = Some(status);
        }
    }

    /// The current attempt failed with this status (the upstream's, or the router's 502/504 for an upstream
    /// that gave none, or the error event's for a stream that began with one), for this reason, which the
    /// status page lists.
    pub fn attempt_failed(&mut self, status: u16, reason: &str) {
        let Some(attempt) = self.current.as_mut() else { return };
        attempt.status = Some(status);
        let took = self.close_attempt(Instant::now());
        self.failed = self.member;
        if let (Some(deployment), Some(took)) = (&self.deployment, took) {
            let group = self.serving().map(|g| g.name.as_str());
            self.status.attempt_failed(group, deployment, status, took, reason);
        }
    }

    /// The first content delta of a stream reached the client.
    pub fn first_token(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.started.elapsed());
            // The deployment's own figure starts with its attempt, not with the request.
            if let (Some(attempt), Some(deployment)) = (&self.current, &self.deployment)
                && deployment.tracks_load
            {
                deployment.health.record_ttft(attempt.started.elapsed());
            }
        }
    }

    pub fn usage(&mut self, usage: Option<Usage>) {
        if usage.is_some() {
            self.usage = usage;
        }
    }

    /// Finishes the record of an answer that is complete once its headers are sent, and passes it on. An
    /// attempt still open gave this answer (a forwarded `count_tokens`): the status is the upstream's.
    pub fn answered(mut self, response: Response) -> Response {
        let status = response.status().as_u16();
        if let Some(attempt) = &mut self.current {
            attempt.status.get_or_insert(status);
        }
        self.finish(Ending { status, outcome: None });
        response
    }

    /// Finishes the record: the request's log line and its metrics.
    pub fn emit(mut self, ending: Ending) {
        self.finish(ending);
    }

    /// The group whose members are being tried: the fallback the request moved to, else its own.
    fn serving(&self) -> Option<&Arc<ModelGroup>> {
        self.serving.as_ref().or(self.group.as_ref())
    }

    fn member_metrics(&self) -> Option<&crate::metrics::MemberMetrics> {
        Some(&self.serving()?.metrics.members[self.member?])
    }

    /// Counts the current attempt as answered with its status and adds its time to the upstream wait;
    /// returns how long it took.
    fn close_attempt(&mut self, now: Instant) -> Option<Duration> {
        let attempt = self.current.take()?;
        let took = now.saturating_duration_since(attempt.started);
        self.upstream_wait += took;
        if let Some(deployment) = self.deployment.as_ref().filter(|d| d.tracks_load) {
            deployment.health.finished();
        }
        if let Some(member) = self.member_metrics() {
            member.upstream_answered(attempt.status.unwrap_or(502));
            member.upstream_duration.observe(seconds(took));
            member.inflight.dec();
        }
        Some(took)
    }

    fn finish(&mut self, ending: Ending) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let now = Instant::now();
        let answered = self.current.and_then(|attempt| attempt.status);
        let took = self.close_attempt(now);
        let stream = ending.outcome.is_some();
        // A whole answer's first token comes with the rest of it (a stream's is timed as it reaches the client).
        if let (false, true, Some(200..=299), Some(took), Some(deployment)) =
            (stream, self.feeds_latency, answered, took, &self.deployment)
            && deployment.tracks_load
        {
            deployment.health.record_ttft(took);
        }
        let outcome = ending.outcome.unwrap_or(match ending.status {
            ..400 => "complete",
            499 => "client disconnected",
            _ => "error",
        });
        let finished = FinishedRequest {
            request_id: self.id,
            ingress: self.client.ingress(),
            route: self.route,
            group: self.group.as_ref().map(|g| g.name.as_str()),
            deployment: self.deployment.as_ref().map(|d| d.name.as_str()),
            key: self.key.map(|k| k + 1),
            rule: self.rule.as_deref(),
            client_key: self.client_key.as_ref().map(|k| k.name()),
            fallbacks: &self.fallbacks,
            affinity: self.affinity_hit.map(|hit| if hit { "hit" } else { "miss" }),
            status: ending.status,
            outcome,
            stream,
            attempts: self.attempts,
            ttft: self.ttft,
            duration: now.saturating_duration_since(self.started),
            upstream_wait: self.upstream_wait,
            usage: self.usage,
        };
        self.record_metrics(&finished);
        if let Some(key) = &self.client_key {
            key.record(self.usage.as_ref());
        }
        if let Some(admission) = self.admission.take() {
            admission.settle(self.usage.as_ref(), ending.status);
        }
        // A last attempt that failed is on the status page already, as a failed attempt.
        let answered_by = self.deployment.as_deref().filter(|_| self.failed.is_none());
        self.status.finished(&finished, answered_by, now);
        log(&finished);
    }

    fn record_metrics(&self, finished: &FinishedRequest<'_>) {
        let group = self.group.as_ref().map_or(&*self.metrics.unknown, |g| &g.metrics);
        let ingress = group.ingress(self.client);
        ingress.answered(finished.status);
        ingress.duration(finished.stream).observe(seconds(finished.duration));
        if finished.attempts > 0 {
            self.metrics.overhead.observe(seconds(finished.overhead()));
        }
        let Some(member) = self.member_metrics() else { return };
        if let Some(ttft) = finished.ttft {
            member.ttft.observe(seconds(ttft));
        }
        if let Some(usage) = &finished.usage {
            crate::metrics::handles::count_tokens(&member.tokens, usage);
        }
    }
}

impl Drop for RequestRecord {
    /// A request whose handler was dropped before it answered: the client went away (499, nginx's "client
    /// closed request"). Its attempt in flight is closed too, so the in-flight gauge comes back down.
    fn drop(&mut self) {
        self.finish(Ending {
            status: 499,
            outcome: None,
        });
    }
}

/// `main>backup>last`: the routed group and the groups it fell back to.
fn fallback_path(finished: &FinishedRequest<'_>) -> String {
    let mut path = finished.group.unwrap_or("-").to_owned();
    for group in finished.fallbacks {
        path.push('>');
        path.push_str(&group.name);
    }
    path
}

/// The request's log line. Its fields are the record's, never a body, a key or the token (of a client key,
/// only its name); in `--log-format json` each is a key of the line's object.
fn log(finished: &FinishedRequest<'_>) {
    let usage = finished.usage.unwrap_or_default();
    tracing::info!(
        request_id = %format_args!("{:016x}", finished.request_id),
        ingress = finished.ingress,
        route = finished.route,
        group = finished.group.unwrap_or("-"),
        deployment = finished.deployment.unwrap_or("-"),
        key = finished.key,
        client_key = finished.client_key,
        rule = finished.rule,
        fallbacks = (!finished.fallbacks.is_empty()).then(|| fallback_path(finished)).as_deref(),
        affinity = finished.affinity,
        status = finished.status,
        outcome = finished.outcome,
        stream = finished.stream,
        attempts = finished.attempts,
        ttft_ms = finished.ttft.map(|t| t.as_millis() as u64),
        duration_ms = finished.duration.as_millis() as u64,
        input_tokens = finished.usage.map(|_| usage.input),
        output_tokens = finished.usage.map(|_| usage.output),
        cache_read_tokens = finished.usage.map(|_| usage.cached),
        cache_write_tokens = finished.usage.map(|_| usage.cache_write),
        reasoning_tokens = finished.usage.map(|_| usage.reasoning),
        "request finished"
    );
}
