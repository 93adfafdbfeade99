//! The request path of `POST /v1/chat/completions` and `POST /v1/messages`: read the body, pick a deployment
//! in the named group, send the request upstream (converted when the protocols differ), and relay the answer.
//!
//! Commit late, fail over early: the client's status line is sent only once an upstream has answered with
//! a success and, for streams, a first event that is not an error. Until then a failed attempt (connect
//! error, timeout, 408/429/5xx, an error as first event) is retried on another deployment of the group;
//! after it, failures can only be reported in-band (see `sse_relay`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, json_response, same_protocol_error_body};
use super::request::{ClientRequest, read_body};
use super::sse_relay::{Converting, PassThrough, RelayBody, StreamLog, StreamProcessor, UpstreamBody};
use crate::protocol::Protocol;
use crate::protocol::convert::RequestFacts;
use crate::protocol::convert::error::ClientError;
use crate::protocol::convert::request::{self, ConvertedRequest};
use crate::protocol::convert::stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamConverter};
use crate::protocol::convert::{self, ConvertContext};
use crate::protocol::raw_body::RawBody;
use crate::routing::{Deployment, ModelGroup};
use crate::upstream::{self, UpstreamError};

/// An upstream error body is read up to this size; more is cut.
pub(super) const MAX_ERROR_BODY: usize = 1024 * 1024;
/// A non-streamed answer that must be converted is read whole, up to this size.
pub(super) const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::OpenAi, request).await
}

pub async fn messages(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::Anthropic, request).await
}

async fn handle(state: AppState, client: Protocol, request: Request) -> Response {
    let started = Instant::now();
    let route = match client {
        Protocol::OpenAi => "/v1/chat/completions",
        Protocol::Anthropic => "/v1/messages",
    };
    // One snapshot for the whole request: a reload while it runs changes nothing for it.
    let snapshot = state.snapshot.load_full();
    let (parts, body) = request.into_parts();
    let config = &snapshot.config;
    let bytes = match read_body(&parts.headers, body, config.body_limit, config.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return reject(route, client, error, started),
    };
    let request = match ClientRequest::parse(&bytes) {
        Ok(request) => request,
        Err(error) => return reject(route, client, error, started),
    };
    let Some(group) = snapshot.group(&request.model) else {
        return reject(
            route,
            client,
            ApiError::unknown_model(&request.model, &snapshot.listed),
            started,
        );
    };
    let reliability = snapshot.config.reliability;
    let mut tried = Vec::with_capacity(1);
    let mut last_failure: Option<(Failure, &str)> = None;
    for _ in 0..=reliability.num_retries {
        let Some((index, deployment)) = choose(group, &tried) else {
            break;
        };
        tried.push(index);
        let outcome = Outcome {
            route,
            group: &group.name,
            deployment: &deployment.name,
        };
        let exchange = Exchange::new(client, deployment, &request.model, &state.signing_key);
        match exchange
            .attempt(
                &request,
                &bytes,
                &parts.headers,
                &outcome,
                started,
                config.max_event_size,
            )
            .await
        {
            Ok(Answer::Upstream(response)) => {
                deployment.health.record_success();
                return response;
            }
            // The deployment was never contacted, so its health says nothing new.
            Ok(Answer::Local(response)) => return response,
            Err(failure) if !failure.retryable => return finish(&outcome, failure.response, false, started),
            Err(failure) => {
                let cooldown = deployment.health.record_failure(&reliability, failure.retry_after);
                tracing::info!(
                    group = %group.name,
                    deployment = %deployment.name,
                    reason = %failure.reason,
                    cooldown_ms = cooldown.map(|c| c.as_millis() as u64),
                    "attempt failed"
                );
                last_failure = Some((failure, &deployment.name));
            }
        }
    }
    match last_failure {
        Some((failure, deployment)) => {
            let outcome = Outcome {
                route,
                group: &group.name,
                deployment,
            };
            finish(&outcome, failure.response, false, started)
        }
        None => {
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no deployment available in '{}'", group.name),
            );
            reject(route, client, error, started)
        }
    }
}

/// The next deployment to try: the group's strategy among those not tried and not cooling down; when all
/// untried ones are cooling, the one whose cooldown ends first (better a likely failure than a certain one).
fn choose<'g>(group: &'g ModelGroup, tried: &[usize]) -> Option<(usize, &'g std::sync::Arc<Deployment>)> {
    group
        .pick(|i| !tried.contains(&i) && !group.members[i].health.is_cooling())
        .or_else(|| {
            let index = (0..group.members.len())
                .filter(|i| !tried.contains(i) && group.weights[*i] > 0)
                .min_by_key(|i| group.members[*i].health.cooldown_left())?;
            Some((index, &group.members[index]))
        })
}

/// The client's answer from a successful attempt.
enum Answer {
    /// The upstream answered.
    Upstream(Response),
    /// The router answered without contacting the upstream (Claude Code's cache pre-warm).
    Local(Response),
}

/// An attempt that did not produce the client's answer.
struct Failure {
    /// What the client gets if no other attempt succeeds, already in its protocol.
    response: Response,
    /// Another deployment may succeed (connect errors, timeouts, 408, 429, 5xx); otherwise the answer is the
    /// client's problem and goes out at once.
    retryable: bool,
    /// The upstream's `Retry-After` on a 429/503/529: the deployment cools down that long.
    retry_after: Option<Duration>,
    reason: String,
}

impl Failure {
    /// A request the router refuses to send (conversion refusal): never retried.
    fn refused(error: ApiError, client: Protocol) -> Self {
        Self {
            reason: error.message.clone(),
            response: error.into_response(client),
            retryable: false,
            retry_after: None,
        }
    }

    /// The upstream could not be reached or did not answer in time, or broke before its first event.
    fn unreachable(status: StatusCode, message: String, client: Protocol) -> Self {
        Self {
            response: ApiError::new(status, message.clone()).into_response(client),
            retryable: true,
            retry_after: None,
            reason: message,
        }
    }

    /// The upstream answered with an error status (or an error as its first stream event).
    fn answered(status: StatusCode, response: Response, retry_after: Option<Duration>) -> Self {
        Self {
            response,
            retryable: is_retryable(status),
            retry_after,
            reason: format!("upstream answered {}", status.as_u16()),
        }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// One attempt of a client request on one deployment: what is converted, and how the answer comes back.
struct Exchange<'a> {
    client: Protocol,
    deployment: &'a Deployment,
    client_model: &'a str,
    signing_key: &'a [u8],
    response_id: String,
    created: u64,
}

impl<'a> Exchange<'a> {
    fn new(client: Protocol, deployment: &'a Deployment, client_model: &'a str, signing_key: &'a [u8]) -> Self {
        let converts = client != deployment.protocol;
        Self {
            client,
            deployment,
            client_model,
            signing_key,
            // Only converted answers carry ids and times the router makes up.
            response_id: if converts { random_id() } else { String::new() },
            created: if converts { unix_time() } else { 0 },
        }
    }

    fn context(&self) -> ConvertContext<'_> {
        ConvertContext {
            client_model: self.client_model,
            upstream_model: &self.deployment.upstream_model,
            options: &self.deployment.spec.options,
            created: self.created,
            response_id: &self.response_id,
            signing_key: self.signing_key,
        }
    }

    async fn attempt(
        &self,
        request: &ClientRequest<'_>,
        bytes: &[u8],
        client_headers: &HeaderMap,
        outcome: &Outcome<'_>,
        started: Instant,
        max_event: usize,
    ) -> Result<Answer, Failure> {
        let client = self.client;
        let deployment = self.deployment;
        let (body, conversion) = self
            .upstream_body(&request.body, bytes)
            .map_err(|e| Failure::refused(e, client))?;
        if conversion.as_ref().is_some_and(|facts| facts.cache_prewarm) {
            // Claude Code's `max_tokens: 0` cache pre-warm has no OpenAI equivalent; answer it here.
            return Ok(Answer::Local(finish(
                outcome,
                self.cache_prewarm_answer(),
                false,
                started,
            )));
        }
        // For a whole answer the deadline covers headers and body; for a stream, the first event.
        let deadline = tokio::time::Instant::now() + deployment.spec.timeouts.first_byte;
        let unreachable = |e: UpstreamError| Failure::unreachable(upstream_status(&e), e.to_string(), client);
        let response = upstream::send(deployment, &deployment.endpoint, client_headers, body, deadline)
            .await
            .map_err(unreachable)?;

        let status = response.status();
        let headers = upstream::relayed_headers(response.headers());
        if !status.is_success() {
            let retry_after = matches!(status.as_u16(), 429 | 503 | 529)
                .then(|| upstream::retry_after(response.headers()))
                .flatten();
            let request_id = upstream::request_id(response.headers());
            let body = upstream::read_capped(deployment, response, MAX_ERROR_BODY, deadline)
                .await
                .map_err(unreachable)?;
            let body = upstream::redact(body, deployment.spec.api_key.as_ref().map(|k| k.expose()));
            let mut answer = match conversion {
                None => json_response(status, same_protocol_error_body(client, status, &body)),
                Some(_) => client_error_response(self.converted_error(status.as_u16(), &body, request_id.as_deref())),
            };
            answer.headers_mut().extend(headers);
            return Err(Failure::answered(status, answer, retry_after));
        }

        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let secret = deployment.secret.clone();
        let mut answer = match (is_stream, &conversion) {
            (false, None) => self.pass_through_json(response, deadline).await?,
            (false, Some(facts)) => self.convert_json(response, facts, deadline).await?,
            (true, None) => {
                let processor = PassThrough::new(client, max_event).redacting(secret);
                self.stream(response, processor, deadline, outcome, started).await?
            }
            (true, Some(facts)) => {
                let ctx = self.context();
                let converter: Box<dyn StreamConverter> = match client {
                    Protocol::OpenAi => Box::new(AnthropicToOpenAiStream::new(&ctx, facts)),
                    Protocol::Anthropic => Box::new(OpenAiToAnthropicStream::new(&ctx, facts)),
                };
                let processor = Converting::new(deployment.protocol, client, converter, max_event).redacting(secret);
                self.stream(response, processor, deadline, outcome, started).await?
            }
        };
        answer.headers_mut().extend(headers);
        // A stream logs its request line when it ends.
        Ok(Answer::Upstream(if is_stream {
            answer
        } else {
            finish(outcome, answer, false, started)
        }))
    }

    /// The upstream body, and the conversion facts when the protocols differ. Same-protocol bodies are
    /// edited as raw top-level fields unless a fix-up needs the whole tree.
    fn upstream_body(&self, raw: &RawBody<'_>, bytes: &[u8]) -> Result<(Vec<u8>, Option<RequestFacts>), ApiError> {
        let deployment = self.deployment;
        let options = &deployment.spec.options;
        let converted = match (self.client, deployment.protocol) {
            (Protocol::OpenAi, Protocol::OpenAi) => {
                let clamp = clamp_override(raw, options.max_output_tokens);
                let mut overrides = deployment.override_refs();
                overrides.extend(clamp.iter().map(|(k, v)| (*k, &**v)));
                return Ok((raw.write_with(&overrides), None));
            }
            (Protocol::Anthropic, Protocol::Anthropic) => match request::anthropic_same_protocol_fixups(bytes, options)
            {
                None => return Ok((raw.write_with(&deployment.override_refs()), None)),
                Some(body) => ConvertedRequest {
                    body,
                    facts: RequestFacts::default(),
                },
            },
            (Protocol::OpenAi, Protocol::Anthropic) => request::openai_to_anthropic(bytes, &self.context())?,
            (Protocol::Anthropic, Protocol::OpenAi) => request::anthropic_to_openai(bytes, &self.context())?,
        };
        let ConvertedRequest { mut body, facts } = converted;
        body.insert("model".into(), Value::String(deployment.upstream_model.clone()));
        for (key, value) in &deployment.rewrite_values {
            body.insert(key.clone(), value.clone());
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON map serialises");
        let converts = self.client != deployment.protocol;
        Ok((bytes, converts.then_some(facts)))
    }

    fn converted_error(&self, status: u16, body: &[u8], request_id: Option<&str>) -> ClientError {
        match self.client {
            Protocol::Anthropic => convert::error::openai_error_to_anthropic(status, body, request_id),
            Protocol::OpenAi => convert::error::anthropic_error_to_openai(status, body),
        }
    }

    /// A whole same-protocol answer, read before it is relayed: a body that stalls or breaks is a failed
    /// attempt that can still fail over.
    async fn pass_through_json(
        &self,
        response: upstream::UpstreamResponse,
        deadline: tokio::time::Instant,
    ) -> Result<Response, Failure> {
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = self.read_whole(response, deadline).await?;
        let mut answer = Response::new(Body::from(body));
        *answer.status_mut() = status;
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        Ok(answer)
    }

    async fn read_whole(
        &self,
        response: upstream::UpstreamResponse,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, Failure> {
        upstream::read_limited(self.deployment, response, MAX_RESPONSE_BODY, deadline)
            .await
            .map_err(|e| Failure::unreachable(upstream_status(&e), e.to_string(), self.client))
    }

    /// A whole upstream JSON answer in the other protocol. An unusable body is an upstream failure.
    async fn convert_json(
        &self,
        response: upstream::UpstreamResponse,
        facts: &RequestFacts,
        deadline: tokio::time::Instant,
    ) -> Result<Response, Failure> {
        let broken = |message: String| Failure::unreachable(StatusCode::BAD_GATEWAY, message, self.client);
        let body = self.read_whole(response, deadline).await?;
        let ctx = self.context();
        let converted = match self.client {
            Protocol::OpenAi => convert::response::anthropic_to_openai(&body, &ctx, facts),
            Protocol::Anthropic => convert::response::openai_to_anthropic(&body, &ctx, facts),
        };
        match converted {
            Ok(body) => Ok(json_response(StatusCode::OK, body)),
            Err(error) => Err(broken(format!("unusable upstream answer: {}", error.message))),
        }
    }

    /// A streamed answer, committed only once the first upstream event shows the stream is not an error.
    async fn stream<P: StreamProcessor + Unpin>(
        &self,
        response: upstream::UpstreamResponse,
        mut processor: P,
        deadline: tokio::time::Instant,
        outcome: &Outcome<'_>,
        started: Instant,
    ) -> Result<Response, Failure> {
        let mut upstream = UpstreamBody::new(response.into_body());
        let head = read_first_event(&mut upstream, &mut processor, deadline)
            .await
            .map_err(|(status, message)| Failure::unreachable(status, message, self.client))?;
        if !processor.started() {
            // The stream ended before a first event: an event over the size cap.
            let message = "upstream's first stream event exceeds router_settings.max_event_size_mb".to_owned();
            return Err(Failure::unreachable(StatusCode::BAD_GATEWAY, message, self.client));
        }
        if let Some(early) = processor.early_error() {
            let secret = self.deployment.spec.api_key.as_ref().map(|k| k.expose());
            let body = upstream::redact(early.body.clone(), secret);
            return Err(Failure::answered(early.status, json_response(early.status, body), None));
        }
        let log = StreamLog {
            route: outcome.route,
            group: outcome.group.to_owned(),
            deployment: outcome.deployment.to_owned(),
            started,
        };
        let idle = self.deployment.spec.timeouts.stream_idle;
        let mut answer = Response::new(Body::from_stream(RelayBody::new(head, upstream, processor, idle, log)));
        let h = answer.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(answer)
    }

    /// The answer to a `max_tokens: 0` request: an empty message stopped by `max_tokens`.
    fn cache_prewarm_answer(&self) -> Response {
        let body = json!({
            "id": format!("msg_{}", self.response_id),
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": "max_tokens",
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        json_response(StatusCode::OK, body.to_string().into_bytes())
    }
}

fn upstream_status(error: &UpstreamError) -> StatusCode {
    StatusCode::from_u16(error.status()).expect("valid status")
}

/// Reads upstream chunks until the first complete event; returns the client bytes read so far.
async fn read_first_event(
    upstream: &mut UpstreamBody,
    processor: &mut impl StreamProcessor,
    deadline: tokio::time::Instant,
) -> Result<Bytes, (StatusCode, String)> {
    let mut head = Vec::new();
    while !processor.started() && processor.end().is_none() {
        match tokio::time::timeout_at(deadline, upstream.next()).await {
            Ok(Some(Ok(chunk))) => head.extend_from_slice(&processor.chunk(chunk)),
            Ok(Some(Err(e))) => {
                let message = format!(
                    "upstream stream failed before its first event: {}",
                    upstream::describe(&e)
                );
                return Err((StatusCode::BAD_GATEWAY, message));
            }
            Ok(None) => {
                let message = "upstream closed the stream without sending an event".to_owned();
                return Err((StatusCode::BAD_GATEWAY, message));
            }
            Err(_) => return Err((StatusCode::GATEWAY_TIMEOUT, "upstream sent no event in time".to_owned())),
        }
    }
    Ok(head.into())
}

/// A `max_tokens` / `max_completion_tokens` above the deployment's cap, lowered to it (§1.1.4).
fn clamp_override(raw: &RawBody<'_>, cap: Option<u32>) -> Vec<(&'static str, Box<RawValue>)> {
    let Some(cap) = cap else { return Vec::new() };
    ["max_tokens", "max_completion_tokens"]
        .into_iter()
        .filter(|key| {
            raw.decode::<u64>(key)
                .ok()
                .flatten()
                .is_some_and(|v| v > u64::from(cap))
        })
        .map(|key| (key, RawValue::from_string(cap.to_string()).expect("a number is JSON")))
        .collect()
}

fn client_error_response(error: ClientError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut answer = json_response(status, error.body);
    for (name, value) in error.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

fn unix_time() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 24 random hex digits for response ids.
fn random_id() -> String {
    format!("{:024x}", rand::random::<u128>() >> 32)
}

/// What one request log line says.
pub(super) struct Outcome<'a> {
    pub route: &'static str,
    pub group: &'a str,
    pub deployment: &'a str,
}

/// Answers an error before any deployment was chosen.
pub(super) fn reject(route: &'static str, client: Protocol, error: ApiError, started: Instant) -> Response {
    let outcome = Outcome {
        route,
        group: "-",
        deployment: "-",
    };
    finish(&outcome, error.into_response(client), false, started)
}

/// Logs the request line for answers that are complete once their headers are sent (streams log at their end).
pub(super) fn finish(outcome: &Outcome<'_>, response: Response, streamed: bool, started: Instant) -> Response {
    tracing::info!(
        route = outcome.route,
        group = %outcome.group,
        deployment = %outcome.deployment,
        status = response.status().as_u16(),
        streamed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request finished"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for code in [408, 429, 500, 502, 503, 504, 529] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn clamp_lowers_only_values_above_the_cap() {
        let body = RawBody::parse(br#"{"max_tokens":32000,"max_completion_tokens":100}"#).unwrap();
        let clamp = clamp_override(&body, Some(8192));
        assert_eq!(clamp.len(), 1);
        assert_eq!((clamp[0].0, clamp[0].1.get()), ("max_tokens", "8192"));
        assert!(clamp_override(&body, None).is_empty());
    }
}
