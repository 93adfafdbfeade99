//! `POST /v1/messages/count_tokens` and Gemini's `…/models/{model}:countTokens`. Claude Code calls the first
//! constantly (context meter, auto-compaction), with `?beta=true`. Deployments of the client's own protocol
//! answer it themselves; for the others the router estimates locally with the o200k_base tokenizer, erring
//! high (spec §5.2).

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, json_response, same_protocol_error_body};
use super::request::{ClientRequest, read_body};
use crate::protocol::convert::ConvertContext;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::protocol::{Protocol, hub};
use crate::relay::record::RequestRecord;
use crate::relay::{MAX_ERROR_BODY, MAX_RESPONSE_BODY};
use crate::routing::{Deployment, ModelGroup};
use crate::upstream;

const ROUTE: &str = "/v1/messages/count_tokens";

pub async fn count_tokens(state: AppState, request: Request) -> Response {
    let mut record = RequestRecord::new(Protocol::Anthropic, ROUTE, &state.metrics);
    let snapshot = state.snapshot.load_full();
    let (parts, body) = request.into_parts();
    let config = &snapshot.config;
    let bytes = match read_body(&parts.headers, body, config.body_limit, config.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return record.answered(error.into_response(Protocol::Anthropic)),
    };
    let request = match ClientRequest::parse(&bytes, Protocol::Anthropic) {
        Ok(request) => request,
        Err(error) => return record.answered(error.into_response(Protocol::Anthropic)),
    };
    let raw = match request.raw() {
        Ok(raw) => raw,
        Err(error) => return record.answered(error.into_response(Protocol::Anthropic)),
    };
    let Some(group) = snapshot.group(&request.model) else {
        let error = ApiError::unknown_model(&request.model, &snapshot.listed);
        return record.answered(error.into_response(Protocol::Anthropic));
    };
    record.group(group);
    let Some(deployment) = counting_deployment(group) else {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no deployment available");
        return record.answered(error.into_response(Protocol::Anthropic));
    };
    if deployment.protocol != Protocol::Anthropic {
        record.chose(deployment);
        let answer = match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => {
                let tokens = estimate_anthropic_input_tokens(&body, deployment.spec.options.token_count_factor);
                estimated(format!(r#"{{"input_tokens":{tokens}}}"#))
            }
            Err(e) => {
                ApiError::bad_request(format!("request body is not valid JSON: {e}")).into_response(Protocol::Anthropic)
            }
        };
        return record.answered(answer);
    }
    record.attempt(deployment);
    // Only `model` changes: `rewrite_body` is meant for generation requests and may carry fields such as
    // `max_tokens` that the counting endpoint rejects.
    let model = serde_json::value::to_raw_value(&deployment.upstream_model).expect("a string serialises");
    let body = raw.write_with(&[("model", &model)]);
    let answer = forward(deployment, &parts.headers, body, Protocol::Anthropic).await;
    record.answered(answer)
}

/// Gemini's `POST …/models/{model}:countTokens`: forwarded to a Gemini deployment; for the other kinds
/// estimated locally from the request converted to Messages, as `count_tokens` is for OpenAI-protocol
/// deployments (reference protocol-gemini.md §7.1). `{"contents":…}` and `{"generateContentRequest":…}`
/// are both taken.
pub async fn gemini_count_tokens(state: AppState, request: Request) -> Response {
    let mut record = RequestRecord::new(Protocol::Gemini, "/v1beta/models/{model}:countTokens", &state.metrics);
    let snapshot = state.snapshot.load_full();
    let (parts, body) = request.into_parts();
    let config = &snapshot.config;
    let bytes = match read_body(&parts.headers, body, config.body_limit, config.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return record.answered(error.into_response(Protocol::Gemini)),
    };
    let request = match ClientRequest::gemini(&bytes, parts.uri.path()) {
        Ok(request) => request,
        Err(error) => return record.answered(error.into_response(Protocol::Gemini)),
    };
    let Some(group) = snapshot.group(&request.model) else {
        let error = ApiError::unknown_model(&request.model, &snapshot.listed);
        return record.answered(error.into_response(Protocol::Gemini));
    };
    record.group(group);
    let Some(deployment) = counting_deployment(group) else {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no deployment available");
        return record.answered(error.into_response(Protocol::Gemini));
    };
    if deployment.protocol == Protocol::Gemini {
        record.attempt(deployment);
        let body = gemini_count_body(&bytes, &deployment.upstream_model);
        let answer = forward(deployment, &parts.headers, body, Protocol::Gemini).await;
        return record.answered(answer);
    }
    record.chose(deployment);
    let answer = match gemini_estimate(&bytes, deployment) {
        Ok(tokens) => estimated(format!(r#"{{"totalTokens":{tokens}}}"#)),
        Err(error) => error.into_response(Protocol::Gemini),
    };
    record.answered(answer)
}

/// The body for a Gemini upstream's `countTokens`: the client's, with a `generateContentRequest`'s `model`
/// naming the upstream's model (the path already does).
fn gemini_count_body(bytes: &[u8], upstream_model: &str) -> Vec<u8> {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(bytes) else {
        return bytes.to_vec();
    };
    match body.get_mut("generateContentRequest").and_then(Value::as_object_mut) {
        Some(inner) => {
            inner.insert("model".into(), Value::String(format!("models/{upstream_model}")));
            serde_json::to_vec(&body).expect("a JSON map serialises")
        }
        None => bytes.to_vec(),
    }
}

/// The prompt's size by the local tokenizer: the Gemini request (or its `generateContentRequest`) read by
/// the Gemini decoder and written as Messages, the shape the estimator counts.
fn gemini_estimate(bytes: &[u8], deployment: &Deployment) -> Result<u64, ApiError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    let inner = body
        .get("generateContentRequest")
        .map(|inner| serde_json::to_vec(inner).expect("a JSON value serialises"));
    let options = &deployment.spec.options;
    let ctx = ConvertContext {
        client_model: "",
        upstream_model: &deployment.upstream_model,
        options,
        created: 0,
        response_id: "",
        signing_key: b"",
        route_stream: false,
    };
    let converted = hub::convert_request(
        Protocol::Gemini,
        Protocol::Anthropic,
        inner.as_deref().unwrap_or(bytes),
        &ctx,
    )?;
    let messages: Value = serde_json::from_slice(&converted.body).expect("the Messages encoder writes JSON");
    Ok(estimate_anthropic_input_tokens(&messages, options.token_count_factor))
}

/// The deployment a count goes to. Counting is cheap and must not disturb the balancing of real traffic
/// (Claude Code sends many), so it takes the first usable member instead of a turn of the group's strategy.
fn counting_deployment(group: &ModelGroup) -> Option<&Arc<Deployment>> {
    let usable = |i: &usize| group.weights[*i] > 0;
    (0..group.members.len())
        .filter(usable)
        .find(|i| !group.members[*i].health.is_cooling())
        .or_else(|| (0..group.members.len()).find(usable))
        .map(|i| &group.members[i])
}

/// A count forwarded to the deployment's counting endpoint, its answer relayed (an error in `client`'s
/// shape).
async fn forward(
    deployment: &Deployment,
    client_headers: &http::HeaderMap,
    body: Vec<u8>,
    client: Protocol,
) -> Response {
    let deadline = tokio::time::Instant::now() + deployment.spec.timeouts.first_byte;
    match upstream::send(
        deployment,
        &deployment.count_tokens_endpoint,
        client_headers,
        body,
        deadline,
    )
    .await
    {
        Err(error) => upstream_failure(&error, client),
        Ok(response) => {
            let status = response.status();
            let headers = upstream::relayed_headers(response.headers());
            // A success is read whole (a cut one would be invalid JSON); of an error, only its start matters.
            let body = if status.is_success() {
                upstream::read_limited(deployment, response, MAX_RESPONSE_BODY, deadline)
                    .await
                    .map(Vec::from)
            } else {
                upstream::read_capped(deployment, response, MAX_ERROR_BODY, deadline)
                    .await
                    .map(|body| {
                        let body = upstream::redact(body, deployment.spec.api_key.as_ref().map(|k| k.expose()));
                        same_protocol_error_body(client, status, &body)
                    })
            };
            match body {
                Ok(body) => {
                    let mut answer = json_response(status, body);
                    answer.headers_mut().extend(headers);
                    answer
                }
                Err(error) => upstream_failure(&error, client),
            }
        }
    }
}

fn upstream_failure(error: &upstream::UpstreamError, client: Protocol) -> Response {
    let status = StatusCode::from_u16(error.status()).expect("valid status");
    ApiError::new(status, error.to_string()).into_response(client)
}

/// A locally estimated count, marked as such.
fn estimated(body: String) -> Response {
    let mut answer = json_response(StatusCode::OK, body.into_bytes());
    answer
        .headers_mut()
        .insert("x-llm-router-token-count", HeaderValue::from_static("estimated"));
    answer
}
