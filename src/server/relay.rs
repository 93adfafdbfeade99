//! The request path of `POST /v1/chat/completions` and `POST /v1/messages`: read the body, pick a deployment
//! in the named group, send the request upstream, and relay the answer (streamed or not) back.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::error::{ApiError, json_response};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::sse_relay::{
    Converting, PassThrough, RelayBody, StreamLog, StreamProcessor, UpstreamBody,
};
use crate::protocol::convert::error::ClientError;
use crate::protocol::convert::request::{self, ConvertedRequest, RequestFacts};
use crate::protocol::convert::stream::{
    AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamConverter,
};
use crate::protocol::convert::{self, ConvertContext};
use crate::protocol::raw_body::RawBody;
use crate::protocol::{Protocol, anthropic, openai};
use crate::routing::Deployment;
use crate::upstream::{self, UpstreamError};

/// Time allowed until the upstream's response headers and first stream event.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(300);
/// An upstream error body is read up to this size; more is cut.
pub(super) const MAX_ERROR_BODY: usize = 1024 * 1024;
/// A non-streamed answer that must be converted is read whole, up to this size.
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::OpenAi, request).await
}

pub async fn messages(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::Anthropic, request).await
}

/// What one request log line says.
pub(super) struct Outcome<'a> {
    pub route: &'static str,
    pub group: &'a str,
    pub deployment: &'a str,
}

async fn handle(state: AppState, client: Protocol, request: Request) -> Response {
    let started = Instant::now();
    let route = match client {
        Protocol::OpenAi => "/v1/chat/completions",
        Protocol::Anthropic => "/v1/messages",
    };
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&parts.headers, body, state.body_limit).await {
        Ok(bytes) => bytes,
        Err(error) => return reject(route, client, error, started),
    };
    let request = match ClientRequest::parse(&bytes) {
        Ok(request) => request,
        Err(error) => return reject(route, client, error, started),
    };
    // One snapshot for the whole request: a reload while it runs changes nothing for it.
    let snapshot = state.snapshot.load_full();
    let Some(group) = snapshot.group(&request.model) else {
        return reject(
            route,
            client,
            ApiError::unknown_model(&request.model, &snapshot.listed),
            started,
        );
    };
    let Some((_, deployment)) = group.pick(|_| true) else {
        let error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no deployment available in '{}'", group.name),
        );
        return reject(route, client, error, started);
    };
    let outcome = Outcome {
        route,
        group: &group.name,
        deployment: &deployment.name,
    };
    let exchange = Exchange::new(client, deployment, &request.model, &state.signing_key);
    let (upstream_body, conversion) = match exchange.upstream_body(&request.body, &bytes) {
        Ok(prepared) => prepared,
        Err(error) => return finish(&outcome, error.into_response(client), false, started),
    };
    if let Some(facts) = &conversion
        && facts.cache_prewarm
    {
        // Claude Code's `max_tokens: 0` cache pre-warm has no OpenAI equivalent; answer it here.
        return finish(&outcome, exchange.cache_prewarm_answer(), false, started);
    }
    match send(&state.client, deployment, &parts.headers, upstream_body).await {
        Ok(response) => {
            exchange
                .relay(response, conversion, &outcome, started)
                .await
        }
        Err(error) => {
            tracing::warn!(deployment = %deployment.name, %error, "upstream call failed");
            let status = StatusCode::from_u16(error.status()).expect("valid status");
            finish(
                &outcome,
                ApiError::new(status, error.to_string()).into_response(client),
                false,
                started,
            )
        }
    }
}

/// One client request on its way to one deployment: what is converted, and how the answer comes back.
struct Exchange<'a> {
    client: Protocol,
    deployment: &'a Deployment,
    client_model: &'a str,
    signing_key: &'a [u8],
    response_id: String,
    created: u64,
}

impl<'a> Exchange<'a> {
    fn new(
        client: Protocol,
        deployment: &'a Deployment,
        client_model: &'a str,
        signing_key: &'a [u8],
    ) -> Self {
        Self {
            client,
            deployment,
            client_model,
            signing_key,
            response_id: random_id(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
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

    fn converts(&self) -> bool {
        self.client != self.deployment.protocol
    }

    /// The upstream body, and the conversion facts when the protocols differ. Same-protocol bodies are
    /// edited as raw top-level fields unless a fix-up needs the whole tree.
    fn upstream_body(
        &self,
        raw: &RawBody<'_>,
        bytes: &[u8],
    ) -> Result<(Vec<u8>, Option<RequestFacts>), ApiError> {
        let deployment = self.deployment;
        let options = &deployment.spec.options;
        let converted = match (self.client, deployment.protocol) {
            (Protocol::OpenAi, Protocol::OpenAi) => {
                let clamp = clamp_override(raw, options.max_output_tokens);
                let mut overrides = deployment.override_refs();
                overrides.extend(clamp.iter().map(|(k, v)| (*k, &**v)));
                return Ok((raw.write_with(&overrides), None));
            }
            (Protocol::Anthropic, Protocol::Anthropic) => {
                match request::anthropic_same_protocol_fixups(bytes, options) {
                    None => return Ok((raw.write_with(&deployment.override_refs()), None)),
                    Some(body) => ConvertedRequest {
                        body,
                        facts: RequestFacts::default(),
                    },
                }
            }
            (Protocol::OpenAi, Protocol::Anthropic) => {
                request::openai_to_anthropic(bytes, &self.context())?
            }
            (Protocol::Anthropic, Protocol::OpenAi) => {
                request::anthropic_to_openai(bytes, &self.context())?
            }
        };
        let ConvertedRequest { mut body, facts } = converted;
        body.insert(
            "model".into(),
            Value::String(deployment.upstream_model.clone()),
        );
        for (key, value) in &deployment.rewrite_values {
            body.insert(key.clone(), value.clone());
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON map serialises");
        Ok((bytes, self.converts().then_some(facts)))
    }

    /// Relays the upstream answer, converting it when the protocols differ.
    async fn relay(
        &self,
        response: reqwest::Response,
        conversion: Option<RequestFacts>,
        outcome: &Outcome<'_>,
        started: Instant,
    ) -> Response {
        let client = self.client;
        let status = response.status();
        let headers = relayed_headers(response.headers());
        let request_id = request_id(response.headers());
        if !status.is_success() {
            let body = read_capped(response, MAX_ERROR_BODY).await;
            let mut answer = match conversion {
                None => json_response(status, same_protocol_error_body(client, status, &body)),
                Some(_) => client_error_response(self.converted_error(
                    status.as_u16(),
                    &body,
                    request_id.as_deref(),
                )),
            };
            answer.headers_mut().extend(headers);
            return finish(outcome, answer, false, started);
        }
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut answer = match (is_stream, &conversion) {
            (false, None) => pass_through_json(response),
            (false, Some(facts)) => self.convert_json(response, facts).await,
            (true, None) => {
                self.stream(response, PassThrough::new(client), outcome, started)
                    .await
            }
            (true, Some(facts)) => {
                let ctx = self.context();
                let converter: Box<dyn StreamConverter> = match client {
                    Protocol::OpenAi => {
                        Box::new(AnthropicToOpenAiStream::new(&ctx, &response_facts(facts)))
                    }
                    Protocol::Anthropic => {
                        Box::new(OpenAiToAnthropicStream::new(&ctx, &response_facts(facts)))
                    }
                };
                let processor = Converting::new(self.deployment.protocol, client, converter);
                self.stream(response, processor, outcome, started).await
            }
        };
        let streamed_ok = is_stream && answer.status().is_success();
        answer.headers_mut().extend(headers);
        if streamed_ok {
            answer // logs when the stream ends
        } else {
            finish(outcome, answer, is_stream, started)
        }
    }

    fn converted_error(&self, status: u16, body: &[u8], request_id: Option<&str>) -> ClientError {
        match self.client {
            Protocol::Anthropic => {
                convert::error::openai_error_to_anthropic(status, body, request_id)
            }
            Protocol::OpenAi => convert::error::anthropic_error_to_openai(status, body),
        }
    }

    /// A whole upstream JSON answer in the other protocol.
    async fn convert_json(&self, response: reqwest::Response, facts: &RequestFacts) -> Response {
        let body = match read_limited(response, MAX_RESPONSE_BODY).await {
            Ok(body) => body,
            Err(message) => {
                return ApiError::new(StatusCode::BAD_GATEWAY, message).into_response(self.client);
            }
        };
        let ctx = self.context();
        let converted = match self.client {
            Protocol::OpenAi => {
                convert::response::anthropic_to_openai(&body, &ctx, &response_facts(facts))
            }
            Protocol::Anthropic => {
                convert::response::openai_to_anthropic(&body, &ctx, &response_facts(facts))
            }
        };
        match converted {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(error) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("unusable upstream answer: {}", error.message),
            )
            .into_response(self.client),
        }
    }

    /// A streamed answer. Commit late: the client's 200 goes out only once the first upstream event has shown
    /// the stream is not an error.
    async fn stream<P: StreamProcessor + Unpin>(
        &self,
        response: reqwest::Response,
        mut processor: P,
        outcome: &Outcome<'_>,
        started: Instant,
    ) -> Response {
        let mut upstream: UpstreamBody = Box::pin(response.bytes_stream());
        let head = match read_first_event(&mut upstream, &mut processor).await {
            Ok(head) => head,
            Err(message) => {
                return ApiError::new(StatusCode::BAD_GATEWAY, message).into_response(self.client);
            }
        };
        if let Some(early) = processor.early_error() {
            return json_response(early.status, early.body.clone());
        }
        let log = StreamLog {
            route: outcome.route,
            group: outcome.group.to_owned(),
            deployment: outcome.deployment.to_owned(),
            started,
        };
        let mut answer = Response::new(Body::from_stream(RelayBody::new(
            head, upstream, processor, log,
        )));
        let h = answer.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        answer
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

/// TODO(dedup merge): the response side will take `RequestFacts` directly.
fn response_facts(facts: &RequestFacts) -> convert::response::ResponseFacts {
    convert::response::ResponseFacts {
        include_usage: facts.include_usage,
        json_output_tool: facts.json_output_tool,
        input_tokens_estimate: facts.input_tokens_estimate,
        tool_names: Vec::new(),
        stop_sequences: Vec::new(),
    }
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
        .map(|key| {
            (
                key,
                RawValue::from_string(cap.to_string()).expect("a number is JSON"),
            )
        })
        .collect()
}

fn pass_through_json(response: reqwest::Response) -> Response {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let mut answer = Response::new(Body::from_stream(response.bytes_stream()));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json")),
    );
    answer
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

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok().map(str::to_owned))
}

/// 24 random hex digits for response ids.
fn random_id() -> String {
    format!("{:024x}", rand::random::<u128>() >> 32)
}

/// The few fields the router itself reads from a client body; the rest stays raw.
pub(super) struct ClientRequest<'a> {
    pub body: RawBody<'a>,
    pub model: String,
}

impl<'a> ClientRequest<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        let body = RawBody::parse(bytes).map_err(|e| {
            ApiError::bad_request(format!("request body is not a JSON object: {e}"))
        })?;
        let model = match body.decode::<String>("model") {
            Ok(Some(model)) => model,
            Ok(None) => {
                return Err(ApiError::bad_request("model: field is required").with_param("model"));
            }
            Err(_) => {
                return Err(ApiError::bad_request("model: must be a string").with_param("model"));
            }
        };
        if body.decode::<bool>("stream").is_err() {
            return Err(ApiError::bad_request("stream: must be a boolean").with_param("stream"));
        }
        match body.get("messages") {
            None => {
                return Err(
                    ApiError::bad_request("messages: field is required").with_param("messages")
                );
            }
            Some(raw) if !raw.get().starts_with('[') => {
                return Err(
                    ApiError::bad_request("messages: must be an array").with_param("messages")
                );
            }
            Some(_) => {}
        }
        Ok(Self { body, model })
    }
}

pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::body_too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read request body: {e}"
        ))),
    }
}

async fn send(
    client: &reqwest::Client,
    deployment: &Deployment,
    client_headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, UpstreamError> {
    send_to(
        client,
        deployment.endpoint.clone(),
        deployment,
        client_headers,
        body,
    )
    .await
}

/// POSTs `body` to `url` with the deployment's headers, waiting at most [`FIRST_BYTE_TIMEOUT`] for the
/// response headers.
pub(super) async fn send_to(
    client: &reqwest::Client,
    url: url::Url,
    deployment: &Deployment,
    client_headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, UpstreamError> {
    let request = client
        .post(url)
        .headers(upstream::request_headers(deployment, client_headers))
        .body(body);
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, request.send()).await {
        Ok(result) => result.map_err(|e| UpstreamError::from_reqwest(&deployment.name, e)),
        Err(_) => Err(UpstreamError::Timeout {
            deployment: deployment.name.clone(),
        }),
    }
}

/// Reads upstream chunks until the first complete event; returns the client bytes read so far.
async fn read_first_event(
    upstream: &mut UpstreamBody,
    processor: &mut impl StreamProcessor,
) -> Result<Bytes, String> {
    let mut head = Vec::new();
    while !processor.started() {
        match tokio::time::timeout(FIRST_BYTE_TIMEOUT, upstream.next()).await {
            Ok(Some(Ok(chunk))) => head.extend_from_slice(&processor.chunk(chunk)),
            Ok(Some(Err(e))) => {
                return Err(format!(
                    "upstream stream failed before its first event: {}",
                    e.without_url()
                ));
            }
            Ok(None) => return Err("upstream closed the stream without sending an event".into()),
            Err(_) => return Err("upstream sent no event in time".into()),
        }
    }
    Ok(head.into())
}

/// Reads a whole upstream body, refusing one larger than `limit`.
pub(super) async fn read_limited(
    response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| format!("upstream answer could not be read: {}", e.without_url()))?;
        if body.len() + chunk.len() > limit {
            return Err(format!("upstream answer exceeds {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads at most `cap` bytes of an upstream body.
pub(super) async fn read_capped(response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == cap {
            break;
        }
    }
    body
}

/// An upstream error body for a client of the same protocol: relayed as-is when it already has the protocol's
/// error shape, otherwise (an HTML page from a proxy, a bare string) wrapped into it.
pub(super) fn same_protocol_error_body(
    client: Protocol,
    status: StatusCode,
    body: &[u8],
) -> Vec<u8> {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let well_formed = parsed.as_ref().is_some_and(|v| match client {
        Protocol::OpenAi => v["error"].is_object(),
        Protocol::Anthropic => v["type"] == "error" && v["error"].is_object(),
    });
    if well_formed {
        return body.to_vec();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
    let message = format!(
        "upstream returned HTTP {}: {}",
        status.as_u16(),
        text.trim()
    );
    match client {
        Protocol::OpenAi => openai::error_body(
            &message,
            openai::error_type_for_status(status.as_u16()),
            None,
            None,
        ),
        Protocol::Anthropic => anthropic::error_body(
            anthropic::error_type_for_status(status.as_u16()),
            &message,
            None,
        ),
    }
}

pub(super) fn relayed_headers(upstream: &HeaderMap) -> HeaderMap {
    upstream
        .iter()
        .filter(|(name, _)| upstream::is_relayed_response_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

pub(super) fn reject(
    route: &'static str,
    client: Protocol,
    error: ApiError,
    started: Instant,
) -> Response {
    let outcome = Outcome {
        route,
        group: "-",
        deployment: "-",
    };
    finish(&outcome, error.into_response(client), false, started)
}

/// Logs the request line for answers that are complete once their headers are sent (streams log at their end).
pub(super) fn finish(
    outcome: &Outcome<'_>,
    response: Response,
    streamed: bool,
    started: Instant,
) -> Response {
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
    fn client_request_validation() {
        let err = |body: &str| ClientRequest::parse(body.as_bytes()).err().unwrap();
        assert_eq!(err("{").status, StatusCode::BAD_REQUEST);
        assert_eq!(err("[]").status, StatusCode::BAD_REQUEST);
        assert_eq!(err(r#"{"messages":[]}"#).param.as_deref(), Some("model"));
        assert_eq!(
            err(r#"{"model":1,"messages":[]}"#).param.as_deref(),
            Some("model")
        );
        assert_eq!(
            err(r#"{"model":"m","messages":[],"stream":"yes"}"#)
                .param
                .as_deref(),
            Some("stream")
        );
        assert_eq!(err(r#"{"model":"m"}"#).param.as_deref(), Some("messages"));
        assert_eq!(
            err(r#"{"model":"m","messages":{}}"#).param.as_deref(),
            Some("messages")
        );
        let ok = ClientRequest::parse(br#"{"model":"g","messages":[],"stream":true}"#).unwrap();
        assert_eq!(ok.model, "g");
    }

    #[test]
    fn upstream_error_bodies_keep_or_get_the_client_shape() {
        let oai = br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#;
        assert_eq!(
            same_protocol_error_body(Protocol::OpenAi, StatusCode::BAD_REQUEST, oai),
            oai
        );
        let wrapped = same_protocol_error_body(
            Protocol::Anthropic,
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        let v: serde_json::Value = serde_json::from_slice(&wrapped).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(
            v["error"]["message"],
            "upstream returned HTTP 502: <html>bad gateway</html>"
        );
    }
}
