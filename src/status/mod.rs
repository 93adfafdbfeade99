//! The live status page (`GET /`, `/status`) and its data (`GET /status.json`): what an operator wants to
//! see without reading logs. The page is one HTML file compiled into the binary ([`PAGE`]); it holds no
//! data itself and fetches `/status.json` every few seconds, so with `--token` it shows nothing before its
//! login form has set the session cookie.
//!
//! What it shows comes from where the router keeps it anyway: each deployment's [`Health`] (state, and the
//! five-minute [`window::Recent`] that every finished request feeds), the last reload, the last errors,
//! and, with `usage_db`, tokens per group per day from the usage log.
//!
//! [`Health`]: crate::routing::Health

pub mod usage_db;
pub mod window;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use ring::hmac;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use self::usage_db::{DayTokens, Tokens, UsageDb, UsageRow, now_ms};
use crate::config::{Affinity, Config};
use crate::relay::record::FinishedRequest;
use crate::routing::health::State;
use crate::routing::{Deployment, ModelGroup, Snapshot, rules};

/// The page: HTML, CSS and a little JavaScript, no external assets.
pub const PAGE: &str = include_str!("page.html");

/// The errors the page lists.
const ERRORS_KEPT: usize = 50;
/// An error's message is cut to this many characters on the page.
const MESSAGE_CHARS: usize = 300;
/// The usage chart's days.
pub const CHART_DAYS: u32 = 7;
/// The name of the page's session cookie.
pub const COOKIE: &str = "llmr_status";

/// The outcome of the last reload.
#[derive(Debug, Clone)]
struct Reload {
    at_ms: i64,
    accepted: bool,
    /// Why it was refused (the validation message), or what changed.
    message: String,
}

#[derive(Debug, Clone)]
struct ErrorNote {
    at_ms: i64,
    group: Option<String>,
    deployment: Option<String>,
    status: u16,
    message: String,
}

/// What the page shows beyond the snapshot. One per process.
#[derive(Debug)]
pub struct Status {
    started: Instant,
    started_ms: i64,
    config_path: PathBuf,
    reload: Mutex<Option<Reload>>,
    errors: Mutex<VecDeque<ErrorNote>>,
    usage: ArcSwapOption<UsageDb>,
}

impl Status {
    pub fn new(config_path: PathBuf) -> Self {
        Self {
            started: Instant::now(),
            started_ms: now_ms(),
            config_path,
            reload: Mutex::new(None),
            errors: Mutex::new(VecDeque::with_capacity(ERRORS_KEPT)),
            usage: ArcSwapOption::empty(),
        }
    }

    /// A reload was accepted (with what changed) or refused (with why).
    pub fn reloaded(&self, accepted: bool, message: String) {
        let reload = Reload {
            at_ms: now_ms(),
            accepted,
            message,
        };
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(reload);
    }

    /// A request that ended in an error; `message` has no secrets (upstream bodies are redacted before
    /// they become messages).
    pub fn failed(&self, group: Option<&str>, deployment: Option<&str>, status: u16, message: &str) {
        let note = ErrorNote {
            at_ms: now_ms(),
            group: group.map(str::to_owned),
            deployment: deployment.map(str::to_owned),
            status,
            message: message.chars().take(MESSAGE_CHARS).collect(),
        };
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() == ERRORS_KEPT {
            errors.pop_back();
        }
        errors.push_front(note);
    }

    /// An attempt on `deployment` failed: a failed request in its window, and an error in the list.
    pub fn attempt_failed(
        &self,
        group: Option<&str>,
        deployment: &Deployment,
        status: u16,
        took: Duration,
        reason: &str,
    ) {
        deployment.health.recent.record(window::Outcome {
            duration: took,
            error: true,
            ..window::Outcome::default()
        });
        self.failed(group, Some(&deployment.name), status, reason);
    }

    /// A request's end. `answered_by` is the deployment whose attempt gave the answer (none when the
    /// router answered itself, or when the last attempt failed and was counted as such already).
    /// `now` is the record's own clock reading of the end.
    pub fn finished(&self, request: &FinishedRequest<'_>, answered_by: Option<&Deployment>, now: Instant) {
        // A client that went away says nothing about the deployment.
        let error = request.status >= 400 && request.status != 499;
        let usage = request.usage.unwrap_or_default();
        if let Some(deployment) = answered_by
            && request.attempts > 0
        {
            deployment.health.recent.record_at(
                now,
                window::Outcome {
                    duration: request.duration,
                    ttft: request.ttft,
                    error,
                    input_tokens: usage.input,
                    output_tokens: usage.output,
                },
            );
        }
        if error && (answered_by.is_some() || request.attempts == 0) {
            let message = match request.attempts {
                0 => "answered by the router",
                _ => request.outcome,
            };
            self.failed(request.group, request.deployment, request.status, message);
        }
        if let Some(db) = &*self.usage.load() {
            db.record(UsageRow {
                ts_ms: now_ms(),
                request_id: format!("{:016x}", request.request_id),
                ingress: request.ingress,
                group: request.group.map(str::to_owned),
                deployment: request.deployment.map(str::to_owned),
                status: request.status,
                outcome: request.outcome,
                stream: request.stream,
                attempts: request.attempts,
                ttft_ms: request.ttft.map(|t| t.as_millis() as u64),
                duration_ms: request.duration.as_millis() as u64,
                tokens: request.usage.map(|u| Tokens {
                    input: u.input,
                    output: u.output,
                    cache_read: u.cached,
                    cache_write: u.cache_write,
                    reasoning: u.reasoning,
                }),
                client_key: request.client_key.map(str::to_owned),
            });
        }
    }

    /// The usage log, when `usage_db` is set.
    pub fn usage_db(&self) -> Option<Arc<UsageDb>> {
        self.usage.load_full()
    }

    /// Opens, reopens or closes the usage log as `config` says; a log that stays the same is kept. The
    /// writer of a log closed here finishes its queued rows and stops.
    pub fn apply_config(&self, config: &Config) -> Result<(), String> {
        let current = self.usage.load();
        let same = match (&config.usage_db, current.as_deref()) {
            (None, None) => true,
            (Some(spec), Some(db)) => spec.path == db.path() && spec.retention_days == db.retention_days(),
            _ => false,
        };
        if same {
            return Ok(());
        }
        let db = match &config.usage_db {
            None => None,
            Some(spec) => Some(Arc::new(UsageDb::open(&spec.path, spec.retention_days)?)),
        };
        self.usage.store(db);
        Ok(())
    }

    /// `/status.json`: everything the page shows. `days` is the usage chart, when there is a usage log.
    pub fn to_json(&self, snapshot: &Snapshot, days: Option<Result<Vec<DayTokens>, String>>) -> Value {
        let now = now_ms();
        let reload = self.reload.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let errors: Vec<Value> = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| {
                json!({"at_ms": e.at_ms, "group": e.group, "deployment": e.deployment, "status": e.status,
                    "message": e.message})
            })
            .collect();
        let allowed_fails = snapshot.config.reliability.allowed_fails.max(1);
        // In flight counts the group's requests on the deployment, from the group's metric handles.
        let deployment = |d: &Deployment, in_flight: i64| deployment_json(d, in_flight, now, allowed_fails);
        let in_group = |group: &ModelGroup| -> Vec<Value> {
            let members = group.members.iter().zip(&group.metrics.members);
            members.map(|(d, m)| deployment(d, m.inflight.get())).collect()
        };
        let mut grouped: Vec<&str> = Vec::new();
        let mut groups: Vec<Value> = snapshot
            .listed
            .iter()
            .filter_map(|name| snapshot.group(name))
            .map(|group| {
                grouped.extend(group.members.iter().map(|m| m.name.as_str()));
                json!({"name": group.name, "strategy": group.strategy.name(),
                    "affinity": matches!(group.affinity, Affinity::Session).then_some("session"),
                    "fallbacks": group.fallbacks, "context_window_fallback": group.context_window_fallback,
                    "deployments": in_group(group)})
            })
            .collect();
        // `model_list` entries in no group are served under their own names: each is a group of one.
        for spec in &snapshot.config.deployments {
            if !grouped.contains(&spec.name.as_str())
                && let Some(group) = snapshot.group(&spec.name)
            {
                groups.push(json!({"name": group.name, "strategy": "direct", "deployments": in_group(group)}));
            }
        }
        let rules: Vec<Value> = snapshot
            .rules
            .iter()
            .map(|rule| {
                json!({"name": rule.spec.name, "when": rules::describe(&rule.spec.when), "route": rule.spec.route,
                    "matches": rule.matches.get()})
            })
            .collect();
        // Names and limits only: a key's value is never kept, and its hash is not shown either.
        let keys: Vec<Value> = snapshot
            .keys
            .iter()
            .map(|key| {
                let spec = &key.spec;
                let metrics = key.metrics();
                let expires_ms = spec
                    .expires
                    .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                json!({"name": spec.name,
                    "groups": spec.groups.as_ref().map(|g| g.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
                    "rpm": spec.limits.rpm, "tpm": spec.limits.tpm, "max_parallel": spec.limits.max_parallel,
                    "expires_ms": expires_ms, "in_flight": key.inflight(), "requests": metrics.requests.get(),
                    "rate_limited": metrics.rate_limited.iter().map(|c| c.get()).sum::<u64>(),
                    "input_tokens": metrics.tokens[0].get(), "output_tokens": metrics.tokens[1].get()})
            })
            .collect();
        let usage = days.map(|days| match days {
            Ok(days) => json!({"days": days.iter().map(|d| json!({"day": d.day, "group": d.group,
                "input": d.input, "output": d.output})).collect::<Vec<_>>()}),
            Err(error) => json!({"error": error}),
        });
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "now_ms": now,
            "started_ms": self.started_ms,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "config": {
                "path": self.config_path.display().to_string(),
                "last_reload": reload.map(|r| json!({"at_ms": r.at_ms, "accepted": r.accepted, "message": r.message})),
            },
            "window_seconds": window::WINDOW.as_secs(),
            "groups": groups,
            "rules": rules,
            "keys": keys,
            "shared_limits": snapshot.config.redis_url.is_some(),
            "errors": errors,
            "usage": usage,
        })
    }
}

/// One deployment on the page. Its `api_base` is shown as host and port only: a URL can carry credentials
/// in its user info or query.
fn deployment_json(d: &Deployment, in_flight: i64, now: i64, allowed_fails: u32) -> Value {
    let url = &d.spec.endpoint;
    let host = match (url.host_str(), url.port()) {
        _ if d.spec.mock.is_some() => "built in".to_owned(),
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    };
    let (state, failures, cooling_until_ms) = match d.health.state() {
        State::Healthy => ("healthy", 0, None),
        State::Failing(n) => ("failing", n, None),
        State::Cooling(left) => ("cooling", 0, Some(now + left.as_millis() as i64)),
    };
    let f = d.health.recent.figures();
    let keys_aside: Vec<Value> = match d.has_key_pool() {
        false => Vec::new(),
        true => d
            .health
            .keys
            .current()
            .iter()
            .map(
                |a| json!({"key": a.key + 1, "status": a.status, "back_in_ms": a.left().map(|l| l.as_millis() as u64)}),
            )
            .collect(),
    };
    json!({
        "name": d.name,
        "api_type": d.spec.api_type(),
        "model": d.upstream_model,
        "host": host,
        "keys": d.spec.api_keys.len(),
        "keys_aside": keys_aside,
        "state": state,
        "failures": failures,
        "allowed_fails": allowed_fails,
        "cooling_until_ms": cooling_until_ms,
        "in_flight": in_flight,
        "requests": f.requests,
        "errors": f.errors,
        "latency_p50_ms": f.latency_p50_ms,
        "latency_p95_ms": f.latency_p95_ms,
        "ttft_p50_ms": f.ttft_p50_ms,
        "ttft_p95_ms": f.ttft_p95_ms,
        "input_tokens": f.input_tokens,
        "output_tokens": f.output_tokens,
    })
}

/// The session cookie's value for `token`: an HMAC of a fixed text under the token, so the cookie names
/// no secret, survives restarts, and stops working when the token changes.
pub fn cookie_value(token: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token);
    let tag = hmac::sign(&key, b"llm-router status page session");
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request's cookies hold the session cookie for `token`.
pub fn cookie_accepts(headers: &http::HeaderMap, token: &[u8]) -> bool {
    let want = cookie_value(token);
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .fold(false, |found, (_, value)| {
            found | bool::from(value.as_bytes().ct_eq(want.as_bytes()))
        })
}

/// The `Set-Cookie` of a login: the browser sends it back to this host only, never to scripts.
pub fn set_cookie(token: &[u8]) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        cookie_value(token),
        Duration::from_secs(30 * 86_400).as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_names_no_secret_and_only_its_token_opens_it() {
        let value = cookie_value(b"s3cret");
        assert_eq!(value.len(), 64);
        assert!(!value.contains("s3cret"));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, format!("a=b; {COOKIE}={value}").parse().unwrap());
        assert!(cookie_accepts(&headers, b"s3cret"));
        assert!(!cookie_accepts(&headers, b"other"));
        assert!(!cookie_accepts(&http::HeaderMap::new(), b"s3cret"));
        let set = set_cookie(b"s3cret");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    }

    #[test]
    fn errors_keep_the_latest_fifty_cut_short() {
        let status = Status::new("c.yaml".into());
        for i in 0..60 {
            status.failed(Some("g"), None, 502, &format!("{i} {}", "x".repeat(400)));
        }
        let errors = status.errors.lock().unwrap();
        assert_eq!(errors.len(), ERRORS_KEPT);
        assert!(errors[0].message.starts_with("59 "));
        assert_eq!(errors[0].message.chars().count(), MESSAGE_CHARS);
    }
}
