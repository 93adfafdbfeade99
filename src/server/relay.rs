//! The request path of `POST /v1/chat/completions` and `POST /v1/messages`: read the body, pick a deployment
//! in the named group, send the request upstream, and relay the answer (streamed or not) back.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::error::{ApiError, json_response};
use super::sse_relay::{PassThrough, RelayBody, StreamLog, StreamProcessor, UpstreamBody};
use crate::protocol::raw_body::RawBody;
use crate::protocol::{Protocol, anthropic, openai};
use crate::routing::Deployment;
use crate::upstream::{self, UpstreamError};

/// Time allowed until the upstream's response headers and first stream event.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(300);
/// An upstream error body is read up to this size; more is cut.
const MAX_ERROR_BODY: usize = 1024 * 1024;

pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::OpenAi, request).await
}

pub async fn messages(State(state): State<AppState>, request: Request) -> Response {
    handle(state, Protocol::Anthropic, request).await
}

/// What one request log line says.
struct Outcome<'a> {
    route: &'static str,
    group: &'a str,
    deployment: &'a str,
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
    if deployment.protocol != client {
        let error = ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "deployment '{}' speaks the {} protocol; conversion from {} is not available yet",
                deployment.name, deployment.protocol, client
            ),
        );
        return finish(&outcome, error.into_response(client), false, started);
    }
    let upstream_body = request.body.write_with(&deployment.override_refs());
    match send(&state.client, deployment, &parts.headers, upstream_body).await {
        Ok(response) => relay(response, client, &outcome, started).await,
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

/// The few fields the router itself reads from a client body; the rest stays raw.
struct ClientRequest<'a> {
    body: RawBody<'a>,
    model: String,
}

impl<'a> ClientRequest<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
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

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
    let request = client
        .post(deployment.endpoint.clone())
        .headers(upstream::request_headers(deployment, client_headers))
        .body(body);
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, request.send()).await {
        Ok(result) => result.map_err(|e| UpstreamError::from_reqwest(&deployment.name, e)),
        Err(_) => Err(UpstreamError::Timeout {
            deployment: deployment.name.clone(),
        }),
    }
}

/// Relays an upstream answer in the same protocol.
async fn relay(
    response: reqwest::Response,
    client: Protocol,
    outcome: &Outcome<'_>,
    started: Instant,
) -> Response {
    let status = response.status();
    let headers = relayed_headers(response.headers());
    if !status.is_success() {
        let body = read_capped(response, MAX_ERROR_BODY).await;
        let mut answer = json_response(status, same_protocol_error_body(client, status, &body));
        answer.headers_mut().extend(headers);
        return finish(outcome, answer, false, started);
    }
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream {
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let mut answer = Response::new(Body::from_stream(response.bytes_stream()));
        *answer.status_mut() = status;
        answer.headers_mut().extend(headers);
        answer.headers_mut().insert(
            header::CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        return finish(outcome, answer, false, started);
    }

    let mut upstream: UpstreamBody = Box::pin(response.bytes_stream());
    let mut processor = PassThrough::new(client);
    // Commit late: the client's 200 goes out only once the first event has shown the stream is not an error.
    let head = match read_first_event(&mut upstream, &mut processor).await {
        Ok(head) => head,
        Err(message) => {
            let error = ApiError::new(StatusCode::BAD_GATEWAY, message);
            return finish(outcome, error.into_response(client), true, started);
        }
    };
    if let Some(early) = processor.early_error() {
        let answer = json_response(early.status, early.body.clone());
        return finish(outcome, answer, true, started);
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
    answer.headers_mut().extend(headers);
    let h = answer.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    answer
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

/// Reads at most `cap` bytes of an upstream body.
async fn read_capped(response: reqwest::Response, cap: usize) -> Vec<u8> {
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
fn same_protocol_error_body(client: Protocol, status: StatusCode, body: &[u8]) -> Vec<u8> {
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

fn relayed_headers(upstream: &HeaderMap) -> HeaderMap {
    upstream
        .iter()
        .filter(|(name, _)| upstream::is_relayed_response_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn reject(route: &'static str, client: Protocol, error: ApiError, started: Instant) -> Response {
    let outcome = Outcome {
        route,
        group: "-",
        deployment: "-",
    };
    finish(&outcome, error.into_response(client), false, started)
}

/// Logs the request line for answers that are complete once their headers are sent (streams log at their end).
fn finish(outcome: &Outcome<'_>, response: Response, streamed: bool, started: Instant) -> Response {
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
