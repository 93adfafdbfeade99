//! One attempt of a client request on one deployment: the upstream body (a raw same-protocol edit or a
//! conversion), the call within the deployment's deadline, and the answer: read whole and relayed or
//! converted, or handed to the stream stages. Every failure comes back typed (see `failure`).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::commit::{CommittedStream, start_stream};
use super::failure::{Failure, UpstreamAnswer};
use super::processor::{Converting, PassThrough};
use super::record::RequestRecord;
use super::{MAX_ERROR_BODY, MAX_RESPONSE_BODY};
use crate::protocol::convert::request;
use crate::protocol::convert::{ConvertContext, ConvertError, RequestFacts};
use crate::protocol::hub;
use crate::protocol::hub::Usage;
use crate::protocol::raw_body::RawBody;
use crate::protocol::{Protocol, chat, gemini, messages, responses};
use crate::routing::Deployment;
use crate::server::error::{ApiError, json_response};
use crate::server::request::ClientRequest;
use crate::upstream::{self, UpstreamResponse};

/// The client's answer from a successful attempt.
pub enum Answer {
    /// A whole answer from the upstream.
    Upstream(Response),
    /// A stream past its commit boundary.
    Stream(CommittedStream),
    /// The router answered without contacting the upstream (Claude Code's cache pre-warm).
    Local(Response),
}

/// What an attempt needs to know besides the request itself.
pub struct Attempt<'a> {
    pub client: Protocol,
    pub deployment: &'a std::sync::Arc<Deployment>,
    /// Which key of the deployment's pool the request goes with (0 without a pool).
    pub key: usize,
    /// The group name the client asked for, echoed in converted answers.
    pub client_model: &'a str,
    pub signing_key: &'a [u8],
    pub client_headers: &'a HeaderMap,
    /// `router_settings.max_event_size_mb`, in bytes.
    pub max_event: usize,
}

/// Ids and times the router makes up for converted answers (same-protocol answers keep the upstream's).
struct Minted {
    response_id: String,
    created: u64,
}

impl Attempt<'_> {
    pub async fn run(
        &self,
        request: &ClientRequest<'_>,
        bytes: &[u8],
        record: &mut RequestRecord,
    ) -> Result<Answer, Failure> {
        let deployment = &**self.deployment;
        let upstream_protocol = deployment.protocol_for(self.client);
        // A mock makes its answers up, ids and all.
        let minted = match self.client != upstream_protocol || deployment.spec.mock.is_some() {
            true => Minted {
                response_id: random_id(),
                created: unix_time(),
            },
            false => Minted {
                response_id: String::new(),
                created: 0,
            },
        };
        let ctx = self.context(&minted, request.route_stream);
        let (body, conversion) = self.upstream_body(request, bytes, &ctx)?;
        let Some(endpoints) = deployment.endpoints(self.client_model) else {
            let message = format!(
                "model '{}' cannot be written into the upstream's URL",
                self.client_model
            );
            return Err(Failure::refused(ApiError::bad_request(message)));
        };
        if conversion.as_ref().is_some_and(|facts| facts.cache_prewarm) {
            // Claude Code's `max_tokens: 0` cache pre-warm has no OpenAI equivalent; answer it here.
            record.chose(self.deployment);
            return Ok(Answer::Local(cache_prewarm_answer(&ctx)));
        }
        record.attempt(self.deployment);
        record.key(self.key);
        // For a whole answer the deadline covers headers and body; for a stream, the first event.
        let deadline = tokio::time::Instant::now() + deployment.spec.timeouts.first_byte;
        // Gemini asks for a stream by its URL: a converted request says so in its facts, a Gemini one in its
        // route.
        let stream = conversion.as_ref().map_or(request.route_stream, |facts| facts.stream);
        let endpoint = match &endpoints.stream {
            Some(stream_endpoint) if stream => stream_endpoint,
            _ => &endpoints.generate,
        };
        let response = match &deployment.spec.mock {
            Some(mock) => {
                upstream::mock::answer(&deployment.name, mock, upstream_protocol, &body, &ctx, deadline).await?
            }
            None => upstream::send(deployment, self.key, endpoint, self.client_headers, body, deadline).await?,
        };

        let status = response.status();
        record.upstream_status(status.as_u16());
        let headers = upstream::relayed_headers(response.headers());
        if !status.is_success() {
            let retry_after = matches!(status.as_u16(), 429 | 503 | 529)
                .then(|| upstream::retry_after(response.headers()))
                .flatten();
            let request_id = upstream::request_id(response.headers());
            let body = upstream::read_capped(deployment, response, MAX_ERROR_BODY, deadline).await?;
            let answer = UpstreamAnswer {
                upstream: upstream_protocol,
                status,
                body: deployment.redact(body),
                request_id,
                headers,
            };
            return Err(Failure::answered(answer, retry_after));
        }

        let content_type = response.headers().get(header::CONTENT_TYPE);
        let is_stream = content_type
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        // Kept for a whole answer relayed as it is, which says what it is in the upstream's words.
        let content_type = content_type.filter(|_| !is_stream && conversion.is_none()).cloned();
        let mut answer = match (is_stream, conversion) {
            (false, None) => {
                let (answer, usage) =
                    pass_through_json(deployment, upstream_protocol, response, content_type, deadline).await?;
                record.usage(usage);
                answer
            }
            (false, Some(facts)) => {
                let (answer, usage) = self.convert_json(response, &ctx, &facts, deadline).await?;
                record.usage(Some(usage));
                answer
            }
            (true, None) => {
                let processor = PassThrough::new(self.client, self.max_event);
                return start_stream(deployment, self.key, response, processor, deadline, headers)
                    .await
                    .map(Answer::Stream);
            }
            (true, Some(facts)) => {
                let converter = hub::convert_stream(self.client, deployment.protocol, &ctx, facts);
                let processor = Converting::new(deployment.protocol, converter, self.max_event);
                return start_stream(deployment, self.key, response, processor, deadline, headers)
                    .await
                    .map(Answer::Stream);
            }
        };
        answer.headers_mut().extend(headers);
        Ok(Answer::Upstream(answer))
    }

    fn context<'c>(&'c self, minted: &'c Minted, route_stream: bool) -> ConvertContext<'c> {
        ConvertContext {
            route_stream,
            client_model: self.client_model,
            upstream_model: self.deployment.upstream_model(self.client_model),
            options: &self.deployment.spec.options,
            created: minted.created,
            response_id: &minted.response_id,
            signing_key: self.signing_key,
        }
    }

    /// The upstream body, and the facts its answer's conversion needs (`None`: same protocol). Same-protocol
    /// bodies are edited as raw top-level fields unless a fix-up needs the whole tree; other pairs meet in
    /// the hub.
    fn upstream_body(
        &self,
        request: &ClientRequest<'_>,
        bytes: &[u8],
        ctx: &ConvertContext<'_>,
    ) -> Result<(Vec<u8>, Option<RequestFacts>), Failure> {
        let deployment = &**self.deployment;
        let options = &deployment.spec.options;
        let raw = || request.raw().map_err(Failure::refused);
        let body = match (self.client, deployment.protocol_for(self.client)) {
            (Protocol::OpenAi, Protocol::OpenAi) | (Protocol::Responses, Protocol::Responses) => {
                let raw = raw()?;
                let clamp = clamp_override(raw, options.max_output_tokens);
                let mut overrides = deployment.override_refs();
                overrides.extend(clamp.iter().map(|(k, v)| (*k, &**v)));
                raw.write_with(&overrides)
            }
            (Protocol::Anthropic, Protocol::Anthropic) => match request::anthropic_same_protocol_fixups(bytes, options)
            {
                None => raw()?.write_with(&deployment.override_refs()),
                Some(body) => self.tree_body(body, Some(deployment.upstream_model(self.client_model))),
            },
            // The model is in the URL; only `rewrite_body` touches the body.
            (Protocol::Gemini, Protocol::Gemini) => match gemini::request::same_protocol_fixups(bytes) {
                None => raw()?.write_with(&deployment.override_refs()),
                Some(body) => self.tree_body(body, None),
            },
            (client, upstream) => {
                let converted = hub::convert_request(client, upstream, bytes, ctx).map_err(refused)?;
                // `model` is the upstream's already; `rewrite_body` still applies on top.
                let body = match deployment.spec.rewrite_body.is_empty() {
                    true => converted.body,
                    false => RawBody::parse(&converted.body)
                        .expect("the encoders write a JSON object")
                        .write_with(&deployment.override_refs()),
                };
                return Ok((body, Some(converted.facts)));
            }
        };
        Ok((body, None))
    }

    /// A body built as a JSON tree, with `model` (for protocols whose body names it) and `rewrite_body` set.
    fn tree_body(&self, mut body: serde_json::Map<String, Value>, model: Option<&str>) -> Vec<u8> {
        if let Some(model) = model {
            body.insert("model".into(), Value::String(model.to_owned()));
        }
        for (key, value) in &self.deployment.rewrite_values {
            body.insert(key.clone(), value.clone());
        }
        serde_json::to_vec(&body).expect("a JSON map serialises")
    }

    /// A whole upstream JSON answer in the other protocol, and its usage as the hub decoded it. An unusable
    /// body is an upstream failure.
    async fn convert_json(
        &self,
        response: UpstreamResponse,
        ctx: &ConvertContext<'_>,
        facts: &RequestFacts,
        deadline: tokio::time::Instant,
    ) -> Result<(Response, Usage), Failure> {
        let body = read_whole(self.deployment, response, deadline).await?;
        let converted = hub::convert_answer_with_usage(self.client, self.deployment.protocol, &body, ctx, facts);
        match converted {
            Ok((body, usage)) => Ok((json_response(StatusCode::OK, body), usage)),
            Err(error) => Err(Failure::unreachable(
                StatusCode::BAD_GATEWAY,
                format!("unusable upstream answer: {}", error.message),
            )),
        }
    }
}

fn refused(error: ConvertError) -> Failure {
    Failure::refused(error.into())
}

/// A whole same-protocol answer, read before it is relayed: a body that stalls or breaks is a failed
/// attempt that can still fail over. Its usage is read by a scan for the usage object alone.
async fn pass_through_json(
    deployment: &Deployment,
    protocol: Protocol,
    response: UpstreamResponse,
    content_type: Option<HeaderValue>,
    deadline: tokio::time::Instant,
) -> Result<(Response, Option<Usage>), Failure> {
    let status = response.status();
    let body = read_whole(deployment, response, deadline).await?;
    let usage = answer_usage(protocol, &body);
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    Ok((answer, usage))
}

/// The usage of a whole answer relayed as the upstream wrote it.
fn answer_usage(protocol: Protocol, body: &[u8]) -> Option<Usage> {
    match protocol {
        Protocol::OpenAi => chat::usage::answer_usage(body),
        Protocol::Anthropic => messages::usage::answer_usage(body),
        Protocol::Responses => responses::usage::answer_usage(body),
        Protocol::Gemini => gemini::usage::answer_usage(body),
    }
}

async fn read_whole(
    deployment: &Deployment,
    response: UpstreamResponse,
    deadline: tokio::time::Instant,
) -> Result<Bytes, Failure> {
    Ok(upstream::read_limited(deployment, response, MAX_RESPONSE_BODY, deadline).await?)
}

/// The answer to a `max_tokens: 0` request: an empty message stopped by `max_tokens`.
fn cache_prewarm_answer(ctx: &ConvertContext<'_>) -> Response {
    let body = json!({
        "id": format!("msg_{}", ctx.response_id),
        "type": "message",
        "role": "assistant",
        "model": ctx.client_model,
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// A `max_tokens` / `max_completion_tokens` / `max_output_tokens` above the deployment's cap, lowered to it.
fn clamp_override(raw: &RawBody<'_>, cap: Option<u32>) -> Vec<(&'static str, Box<RawValue>)> {
    let Some(cap) = cap else { return Vec::new() };
    ["max_tokens", "max_completion_tokens", "max_output_tokens"]
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

fn unix_time() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 24 random hex digits for response ids. One `u128` is the cheapest draw (random bytes cost more), and
/// writing its hex by hand costs about half what `format!` does.
fn random_id() -> String {
    crate::protocol::convert::ids::hex(&rand::random::<u128>().to_le_bytes()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_lowers_only_values_above_the_cap() {
        let body = RawBody::parse(br#"{"max_tokens":32000,"max_completion_tokens":100}"#).unwrap();
        let clamp = clamp_override(&body, Some(8192));
        assert_eq!(clamp.len(), 1);
        assert_eq!((clamp[0].0, clamp[0].1.get()), ("max_tokens", "8192"));
        assert!(clamp_override(&body, None).is_empty());
    }
}
