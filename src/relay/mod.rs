//! The request path of `POST /v1/chat/completions` and `POST /v1/messages`, stage by stage:
//!
//! 1. `handle` reads the client's body, finds the model group (a routing rule's, or the one `model` names)
//!    and runs the group's attempts: its strategy (or the session's affinity) picks a deployment not yet
//!    tried, and a failed attempt that another deployment may do better on (connect error, timeout,
//!    408/429/5xx, an error as first event) is retried on the next one. When every attempt failed, the
//!    request moves on to the group's `fallbacks`; a prompt too long moves it to `context_window_fallback`.
//! 2. [`attempt`] is one attempt on one deployment: the upstream body (raw same-protocol edit or
//!    conversion), the upstream call, and the answer, read whole or handed to the stream stages.
//! 3. [`commit`] is the commit boundary of a stream: the client's status is sent only once the upstream's
//!    first event shows the stream is not an error. Until then a failure is still a failed attempt.
//! 4. [`pump`] moves the rest of a stream to the client, and [`processor`] says what happens to each
//!    upstream chunk (passed through or converted, watched for errors and the end).
//! 5. [`failure`] keeps failures typed until they are rendered, once, in the client's protocol, and
//!    [`record`] is the one record of the request, finished once at its end into its log line and metrics.

pub mod attempt;
pub mod commit;
pub mod failure;
pub mod processor;
pub mod pump;
pub mod record;

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;

use self::attempt::{Answer, Attempt};
use self::failure::Failure;
use self::record::RequestRecord;
use crate::config::{Affinity, Reliability};
use crate::protocol::Protocol;
use crate::routing::health::KeysLeft;
use crate::routing::{Deployment, ModelGroup, Snapshot, affinity};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::request::{ClientRequest, read_body};

/// An upstream error body is read up to this size; more is cut.
pub const MAX_ERROR_BODY: usize = 1024 * 1024;
/// A non-streamed answer is read whole, up to this size, before the client gets its status.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// One request on a relayed route (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`, Gemini's).
pub async fn handle(state: AppState, client: Protocol, request: Request) -> Response {
    let mut record = RequestRecord::new(client, client.route(), &state);
    // One snapshot for the whole request: a reload while it runs changes nothing for it.
    let snapshot = state.snapshot.load_full();
    let config = &snapshot.config;
    let (parts, body) = request.into_parts();
    record.caller(&parts.extensions);
    let bytes = match read_body(&parts.headers, body, config.body_limit, config.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return record.answered(error.into_response(client)),
    };
    let parsed = match client {
        Protocol::Gemini => ClientRequest::gemini(&bytes, &parts.uri),
        _ => ClientRequest::parse(&bytes, client),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(error) => return record.answered(error.into_response(client)),
    };
    record.feeds_latency();
    let first = match route(&snapshot, client, &request, &parts.headers, &bytes, &mut record) {
        Ok(group) => group,
        Err(error) => return record.answered(error.into_response(client)),
    };
    if let Some(key) = record.client_key().cloned() {
        let estimate = || crate::limits::estimate_tokens(client, &bytes);
        match crate::limits::admit(&key, estimate, &state.shared_limits).await {
            Ok(admission) => record.admitted(admission),
            Err(refusal) => return record.answered(refusal.into_response(client)),
        }
    }
    let mut run = GroupRun {
        client,
        request: &request,
        bytes: &bytes,
        headers: &parts.headers,
        state: &state,
        max_event: config.max_event_size,
        reliability: config.reliability,
        session: None,
    };
    let mut fallbacks = Fallbacks::new(first);
    let mut group = first;
    // The last failure of any group: a fallback without a usable member does not hide it.
    let mut last_failure = None;
    loop {
        let (failure, context_too_long) = match run.attempts(group, &mut record).await {
            Outcome::Answer(Answer::Upstream(response) | Answer::Local(response)) => return record.answered(response),
            // The record goes with the stream's body and is emitted when the stream ends.
            Outcome::Answer(Answer::Stream(stream)) => return stream.respond(record),
            Outcome::Final(failure) => return record.answered(failure.render(client)),
            Outcome::Exhausted(failure) => (failure, false),
            Outcome::ContextTooLong(failure) => (Some(failure), true),
        };
        let next = match context_too_long {
            true => fallbacks.context_window(group, &snapshot),
            false => fallbacks.next(&snapshot),
        };
        last_failure = failure.or(last_failure);
        let Some(next) = next else {
            let answer = match last_failure {
                Some(failure) => failure.render(client),
                None => no_deployment(group, &request.model).into_response(client),
            };
            return record.answered(answer);
        };
        state.metrics.fell_back(&group.name, &next.name);
        tracing::info!(group = %group.name, to_group = %next.name, context_too_long, "falling back");
        record.fell_back(next);
        group = next;
    }
}

/// The group that serves a request (a routing rule's, or the one its model names), noted in its record with
/// the rule that chose it; 403 when the request's client key may not use it.
pub fn route<'s>(
    snapshot: &'s Snapshot,
    client: Protocol,
    request: &ClientRequest<'_>,
    headers: &http::HeaderMap,
    bytes: &[u8],
    record: &mut RequestRecord,
) -> Result<&'s Arc<ModelGroup>, ApiError> {
    let routed = snapshot.route(client, &request.model, headers, bytes, request.route_stream);
    let Some((group, rule)) = routed else {
        return Err(ApiError::unknown_model(&request.model, &snapshot.listed));
    };
    record.group(group);
    if let Some(key) = record.client_key()
        && !key.spec.allows(&group.name)
    {
        return Err(crate::limits::forbidden(key, &group.name));
    }
    if let Some(rule) = rule {
        rule.matches.inc();
        record.rule(rule.name.clone());
    }
    Ok(group)
}

/// How a group's attempts ended.
enum Outcome {
    Answer(Answer),
    /// A failure no other deployment would do better on (a 400, a refused conversion): the client's answer.
    Final(Failure),
    /// Every attempt failed in a way another deployment may not (the last failure), or no member could be
    /// tried (`None`).
    Exhausted(Option<Failure>),
    /// An upstream said the prompt is too long, and the group has a `context_window_fallback`.
    ContextTooLong(Failure),
}

/// What every group a request goes through needs to know of it.
struct GroupRun<'r, 'b> {
    client: Protocol,
    request: &'r ClientRequest<'b>,
    bytes: &'r [u8],
    headers: &'r http::HeaderMap,
    state: &'r AppState,
    max_event: usize,
    reliability: Reliability,
    /// The session key, read on the first group with `affinity: session` (`Some(None)`: the request has none).
    session: Option<Option<Cow<'r, str>>>,
}

impl GroupRun<'_, '_> {
    /// The group's attempts: its strategy picks a deployment not yet tried, and a failed attempt that another
    /// deployment may do better on (connect error, timeout, 408/429/5xx, an error as first event) is retried
    /// on the next one, up to `num_retries` times.
    async fn attempts(&mut self, group: &Arc<ModelGroup>, record: &mut RequestRecord) -> Outcome {
        let session = match group.affinity {
            Affinity::Session => self
                .session
                .get_or_insert_with(|| affinity::session_key(self.headers, self.bytes))
                .as_deref(),
            Affinity::None => None,
        };
        let mut tried = Vec::with_capacity(1);
        let mut last_failure = None;
        for _ in 0..=self.reliability.num_retries {
            let Some((index, deployment, hit)) = choose(group, &tried, &self.request.model, session) else {
                break;
            };
            tried.push(index);
            if let Some(hit) = hit {
                record.affinity(hit);
            }
            let Some(key) = deployment.health.keys.pick(deployment.spec.api_keys.len()) else {
                // Chosen once its cooldown ran out, but no key of its pool came back: only a reload can help.
                deployment.health.cool_for(self.reliability.cooldown);
                let message = format!(
                    "every API key of '{}' is set aside; fix them and reload",
                    deployment.name
                );
                last_failure = Some(Failure::unreachable(StatusCode::SERVICE_UNAVAILABLE, message));
                continue;
            };
            let attempt = Attempt {
                client: self.client,
                deployment,
                key,
                client_model: &self.request.model,
                signing_key: &self.state.signing_key,
                client_headers: self.headers,
                max_event: self.max_event,
            };
            let failure = match attempt.run(self.request, self.bytes, record).await {
                Ok(answer) => {
                    // A local answer never contacted the deployment, so its health says nothing new.
                    if !matches!(answer, Answer::Local(_)) {
                        deployment.health.record_success();
                    }
                    return Outcome::Answer(answer);
                }
                Err(failure) => failure,
            };
            let reason = failure.reason();
            record.attempt_failed(failure.status(), &reason);
            if group.context_window_fallback.is_some() && failure.says_context_too_long() {
                return Outcome::ContextTooLong(failure);
            }
            if deployment.has_key_pool()
                && let Some(left) = set_key_aside(deployment, key, &failure, &self.reliability)
            {
                match left {
                    // Another key of the same deployment may serve: it can be picked again.
                    KeysLeft::Some => {
                        tried.pop();
                    }
                    KeysLeft::None(_) if !failure.retryable() => return Outcome::Final(failure),
                    KeysLeft::None(_) => {}
                }
                last_failure = Some(failure);
                continue;
            }
            if !failure.retryable() {
                return Outcome::Final(failure);
            }
            let cooldown = deployment.health.record_failure(&self.reliability, failure.retry_after);
            if cooldown.is_some() {
                deployment.cooldowns.inc();
            }
            tracing::info!(
                group = %group.name,
                deployment = %deployment.name,
                %reason,
                cooldown_ms = cooldown.map(|c| c.as_millis() as u64),
                "attempt failed"
            );
            last_failure = Some(failure);
        }
        Outcome::Exhausted(last_failure)
    }
}

/// Sets the key aside that the upstream refused (401/403, until a reload changes the deployment) or limited
/// (429, for its `Retry-After` or the cooldown); `None` for other failures, which count against the
/// deployment as usual. When no key is left, the deployment cools down until the first comes back (or for
/// the cooldown, when none will).
fn set_key_aside(
    deployment: &Deployment,
    key: usize,
    failure: &Failure,
    reliability: &Reliability,
) -> Option<KeysLeft> {
    let status = failure.answered_status()?;
    let wait = match status {
        401 | 403 => None,
        429 => Some(failure.retry_after.unwrap_or(reliability.cooldown)),
        _ => return None,
    };
    let left = deployment
        .health
        .keys
        .set_aside(key, deployment.spec.api_keys.len(), status, wait);
    // A refused key needs the operator; a rate-limited one is routine for a pool.
    let for_ms = wait.map(|w| w.as_millis() as u64);
    match wait {
        None => tracing::warn!(deployment = %deployment.name, key = key + 1, status, "API key set aside until reload"),
        Some(_) => tracing::info!(deployment = %deployment.name, key = key + 1, status, for_ms, "API key set aside"),
    }
    if let KeysLeft::None(back) = left {
        let cooldown = back.unwrap_or(reliability.cooldown);
        deployment.health.cool_for(cooldown);
        deployment.cooldowns.inc();
        tracing::warn!(
            deployment = %deployment.name,
            cooldown_ms = cooldown.as_millis() as u64,
            "every API key is set aside: cooling down"
        );
    }
    Some(left)
}

/// The order in which a request moves through groups: each group's `fallbacks` in turn, depth first (a
/// fallback's own fallbacks come before the next in the list), each group at most once.
struct Fallbacks<'s> {
    first: &'s str,
    /// The groups entered after `first` (nothing is allocated for a request that never falls back).
    visited: Vec<&'s str>,
    /// Groups still to try, the next one last.
    pending: Vec<&'s str>,
}

impl<'s> Fallbacks<'s> {
    fn new(first: &'s ModelGroup) -> Self {
        Self {
            first: &first.name,
            visited: Vec::new(),
            pending: first.fallbacks.iter().rev().map(String::as_str).collect(),
        }
    }

    /// The next group after every attempt in the current one failed.
    fn next(&mut self, snapshot: &'s Snapshot) -> Option<&'s Arc<ModelGroup>> {
        while let Some(name) = self.pending.pop() {
            if let Some(group) = self.enter(name, snapshot) {
                return Some(group);
            }
        }
        None
    }

    /// The group for a prompt too long for `group`; the fallbacks pending before no longer apply (they were
    /// chosen for the shorter context).
    fn context_window(&mut self, group: &'s ModelGroup, snapshot: &'s Snapshot) -> Option<&'s Arc<ModelGroup>> {
        self.pending.clear();
        self.enter(group.context_window_fallback.as_deref()?, snapshot)
    }

    fn enter(&mut self, name: &'s str, snapshot: &'s Snapshot) -> Option<&'s Arc<ModelGroup>> {
        if name == self.first || self.visited.contains(&name) {
            return None;
        }
        // Validation checked the name; a group is looked up by its own name, never by alias.
        let group = snapshot.group(name)?;
        self.visited.push(name);
        self.pending.extend(group.fallbacks.iter().rev().map(String::as_str));
        Some(group)
    }
}

/// The answer when no member of the group could be tried.
fn no_deployment(group: &ModelGroup, model: &str) -> ApiError {
    if group.members.iter().all(|m| !m.serves(model)) {
        return ApiError::bad_request(format!("no deployment in '{}' serves model '{model}'", group.name));
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no deployment available in '{}'", group.name),
    )
}

/// The next deployment to try among those not tried that serve `model`: the session's choice when there is
/// a session key (and whether it is the session's first choice), else the group's strategy, among those not
/// cooling down; when all are cooling, the one whose cooldown ends first (better a likely failure than a
/// certain one).
fn choose<'g>(
    group: &'g ModelGroup,
    tried: &[usize],
    model: &str,
    session: Option<&str>,
) -> Option<(usize, &'g Arc<Deployment>, Option<bool>)> {
    let untried = |i: usize| !tried.contains(&i) && group.members[i].serves(model);
    let healthy = |i: usize| untried(i) && !group.members[i].health.is_cooling();
    let picked = match session {
        Some(key) => group
            .pick_for_session(key, healthy)
            .map(|(i, deployment, hit)| (i, deployment, Some(hit))),
        None => group.pick(healthy).map(|(i, deployment)| (i, deployment, None)),
    };
    picked.or_else(|| {
        let index = (0..group.members.len())
            .filter(|&i| untried(i) && group.weights[i] > 0)
            .min_by_key(|&i| group.members[i].health.cooldown_left())?;
        Some((index, &group.members[index], session.map(|_| false)))
    })
}
