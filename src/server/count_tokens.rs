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
use crate::protocol::convert::error::StreamStartError;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens_of;
use crate::protocol::{Protocol, hub};
use crate::relay::record::RequestRecord;
use crate::relay::{MAX_ERROR_BODY, MAX_RESPONSE_BODY};
use crate::routing::{Deployment, ModelGroup};
use crate::upstream;

const ROUTE: &str = "/v1/messages/count_tokens";

pub async fn count_tokens(state: AppState, request: Request) -> Response {
    let mut record = RequestRecord::new(Protocol::Anthropic, ROUTE, &state);
    let snapshot = state.snapshot.load_full();
    let (parts, body) = request.into_parts();
    record.caller(&parts.extensions);
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
    let group = match crate::relay::route(
        &snapshot,
        Protocol::Anthropic,
        &request,
        &parts.headers,
        &bytes,
        &mut record,
    ) {
        Ok(group) => group,
        Err(error) => return record.answered(error.into_response(Protocol::Anthropic)),
    };
    let Some(deployment) = counting_deployment(group, &request.model) else {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no deployment available");
        return record.answered(error.into_response(Protocol::Anthropic));
    };
    if deployment.protocol == Protocol::Gemini {
        record.attempt(deployment);
        let answer = match anthropic_count_for_gemini(&bytes, deployment.upstream_model(&request.model), deployment) {
            Ok(body) => forward(deployment, &request.model, &parts.headers, body, Protocol::Anthropic).await,
            Err(error) => error.into_response(Protocol::Anthropic),
        };
        return record.answered(answer);
    }
    if deployment.protocol != Protocol::Anthropic {
        record.chose(deployment);
        let answer = match estimate_anthropic_input_tokens_of(&bytes, deployment.spec.options.token_count_factor) {
            Some(tokens) => estimated(count_body(Protocol::Anthropic, tokens)),
            // Only a body that is not JSON has no estimate: serde_json says what is wrong with it.
            None => serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                .err()
                .map_or_else(|| ApiError::bad_request("request body is not valid JSON"), not_json)
                .into_response(Protocol::Anthropic),
        };
        return record.answered(answer);
    }
    record.attempt(deployment);
    // Only `model` changes: `rewrite_body` is meant for generation requests and may carry fields such as
    // `max_tokens` that the counting endpoint rejects.
    let model = deployment.upstream_model(&request.model);
    let model = serde_json::value::to_raw_value(model).expect("a string serialises");
    let body = raw.write_with(&[("model", &model)]);
    let answer = forward(deployment, &request.model, &parts.headers, body, Protocol::Anthropic).await;
    record.answered(answer)
}

/// Gemini's `POST …/models/{model}:countTokens`: forwarded to a Gemini deployment, converted to
/// `count_tokens` for an Anthropic one; for the other kinds estimated locally from the request converted
/// to Messages, as `count_tokens` is for OpenAI-protocol deployments (reference protocol-gemini.md §7.1).
/// `{"contents":…}` and `{"generateContentRequest":…}` are both taken.
pub async fn gemini_count_tokens(state: AppState, request: Request) -> Response {
    let mut record = RequestRecord::new(Protocol::Gemini, "/v1beta/models/{model}:countTokens", &state);
    let snapshot = state.snapshot.load_full();
    let (parts, body) = request.into_parts();
    record.caller(&parts.extensions);
    let config = &snapshot.config;
    let bytes = match read_body(&parts.headers, body, config.body_limit, config.body_read_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return record.answered(error.into_response(Protocol::Gemini)),
    };
    let request = match ClientRequest::gemini(&bytes, &parts.uri) {
        Ok(request) => request,
        Err(error) => return record.answered(error.into_response(Protocol::Gemini)),
    };
    let group = match crate::relay::route(
        &snapshot,
        Protocol::Gemini,
        &request,
        &parts.headers,
        &bytes,
        &mut record,
    ) {
        Ok(group) => group,
        Err(error) => return record.answered(error.into_response(Protocol::Gemini)),
    };
    let Some(deployment) = counting_deployment(group, &request.model) else {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no deployment available");
        return record.answered(error.into_response(Protocol::Gemini));
    };
    if deployment.protocol == Protocol::Gemini {
        record.attempt(deployment);
        let body = gemini_count_body(&bytes, deployment.upstream_model(&request.model));
        let answer = forward(deployment, &request.model, &parts.headers, body, Protocol::Gemini).await;
        return record.answered(answer);
    }
    if deployment.protocol == Protocol::Anthropic {
        record.attempt(deployment);
        let answer = match gemini_count_for_anthropic(&bytes, deployment) {
            Ok(body) => forward(deployment, &request.model, &parts.headers, body, Protocol::Gemini).await,
            Err(error) => error.into_response(Protocol::Gemini),
        };
        return record.answered(answer);
    }
    record.chose(deployment);
    let answer = match gemini_as_messages(&bytes, deployment) {
        Ok(messages) => {
            let tokens = estimate_anthropic_input_tokens_of(&messages, deployment.spec.options.token_count_factor)
                .expect("the Messages encoder writes JSON");
            estimated(count_body(Protocol::Gemini, tokens))
        }
        Err(error) => error.into_response(Protocol::Gemini),
    };
    record.answered(answer)
}

/// The fields Anthropic's `count_tokens` takes; it refuses any other (`max_tokens` included).
const ANTHROPIC_COUNT_FIELDS: [&str; 6] = ["model", "messages", "system", "tools", "tool_choice", "thinking"];

/// A Gemini count as the body of an Anthropic deployment's `count_tokens`: the request converted to
/// Messages, keeping only what counting takes.
fn gemini_count_for_anthropic(bytes: &[u8], deployment: &Deployment) -> Result<Vec<u8>, ApiError> {
    let messages = gemini_as_messages(bytes, deployment)?;
    let Ok(mut messages) = serde_json::from_slice::<serde_json::Map<String, Value>>(&messages) else {
        unreachable!("the Messages encoder writes an object");
    };
    messages.retain(|key, _| ANTHROPIC_COUNT_FIELDS.contains(&key.as_str()));
    Ok(serde_json::to_vec(&messages).expect("a JSON map serialises"))
}

/// An Anthropic `count_tokens` body as a Gemini deployment's `countTokens` (reference §7.1): converted to
/// a generation request, system prompt and tools included, inside `generateContentRequest`, which names
/// its model. Counting has no `max_tokens`, which the Messages decoder needs, so a token stands in.
fn anthropic_count_for_gemini(bytes: &[u8], model: &str, deployment: &Deployment) -> Result<Vec<u8>, ApiError> {
    let mut body: serde_json::Map<String, Value> = serde_json::from_slice(bytes).map_err(not_json)?;
    body.entry("max_tokens").or_insert(Value::from(1));
    let body = serde_json::to_vec(&body).expect("a JSON map serialises");
    let ctx = count_context(deployment);
    let converted = hub::convert_request(Protocol::Anthropic, Protocol::Gemini, &body, &ctx)?;
    let mut out = Vec::with_capacity(converted.body.len() + 64);
    out.extend_from_slice(br#"{"generateContentRequest":{"model":"#);
    serde_json::to_writer(&mut out, &format!("models/{model}")).expect("a string serialises");
    out.push(b',');
    // The converted body is a JSON object: its members go on after `model`.
    out.extend_from_slice(&converted.body[1..]);
    out.push(b'}');
    Ok(out)
}

/// A count's answer in the client's protocol.
fn count_body(client: Protocol, tokens: u64) -> String {
    match client {
        Protocol::Gemini => format!(r#"{{"totalTokens":{tokens}}}"#),
        _ => format!(r#"{{"input_tokens":{tokens}}}"#),
    }
}

/// The count in a deployment's answer to a counting request.
fn answered_count(upstream: Protocol, body: &[u8]) -> Option<u64> {
    let field = match upstream {
        Protocol::Gemini => "totalTokens",
        _ => "input_tokens",
    };
    serde_json::from_slice::<Value>(body).ok()?.get(field)?.as_u64()
}

fn count_context(deployment: &Deployment) -> ConvertContext<'_> {
    ConvertContext {
        client_model: "",
        upstream_model: &deployment.upstream_model,
        options: &deployment.spec.options,
        created: 0,
        response_id: "",
        signing_key: b"",
        route_stream: false,
    }
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

/// A Gemini count's request (or its `generateContentRequest`) read by the Gemini decoder and written as
/// Messages: the shape the local estimator counts and Anthropic's `count_tokens` takes.
fn gemini_as_messages(bytes: &[u8], deployment: &Deployment) -> Result<Vec<u8>, ApiError> {
    let body: Value = serde_json::from_slice(bytes).map_err(not_json)?;
    let inner = body
        .get("generateContentRequest")
        .map(|inner| serde_json::to_vec(inner).expect("a JSON value serialises"));
    let ctx = count_context(deployment);
    let converted = hub::convert_request(
        Protocol::Gemini,
        Protocol::Anthropic,
        inner.as_deref().unwrap_or(bytes),
        &ctx,
    )?;
    Ok(converted.body)
}

/// A client body that is not JSON, in serde_json's own words.
fn not_json(error: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("request body is not valid JSON: {error}"))
}

/// The deployment a count goes to. Counting is cheap and must not disturb the balancing of real traffic
/// (Claude Code sends many), so it takes the first usable member instead of a turn of the group's strategy.
fn counting_deployment<'g>(group: &'g ModelGroup, model: &str) -> Option<&'g Arc<Deployment>> {
    let usable = |i: &usize| group.weights[*i] > 0 && group.members[*i].serves(model);
    (0..group.members.len())
        .filter(usable)
        .find(|i| !group.members[*i].health.is_cooling())
        .or_else(|| (0..group.members.len()).find(usable))
        .map(|i| &group.members[i])
}

/// A count forwarded to the deployment's counting endpoint, its answer relayed, or written in `client`'s
/// protocol when the deployment speaks another (an error in `client`'s shape either way).
async fn forward(
    deployment: &Deployment,
    client_model: &str,
    client_headers: &http::HeaderMap,
    body: Vec<u8>,
    client: Protocol,
) -> Response {
    let deadline = tokio::time::Instant::now() + deployment.spec.timeouts.first_byte;
    let Some(endpoints) = deployment.endpoints(client_model) else {
        let message = format!("model '{client_model}' cannot be written into the upstream's URL");
        return ApiError::bad_request(message).into_response(client);
    };
    let key = deployment.health.keys.pick(deployment.spec.api_keys.len()).unwrap_or(0);
    match upstream::send(deployment, key, &endpoints.count_tokens, client_headers, body, deadline).await {
        Err(error) => upstream_failure(&error, client),
        Ok(response) => {
            let status = response.status();
            let headers = upstream::relayed_headers(response.headers());
            // A success is read whole (a cut one would be invalid JSON); of an error, only its start matters.
            let converted = deployment.protocol != client;
            let body = if status.is_success() {
                let body = upstream::read_limited(deployment, response, MAX_RESPONSE_BODY, deadline).await;
                match body {
                    Ok(body) if converted => match answered_count(deployment.protocol, &body) {
                        Some(tokens) => Ok((status, count_body(client, tokens).into_bytes())),
                        None => {
                            let error = ApiError::new(StatusCode::BAD_GATEWAY, "upstream count has no token count");
                            return error.into_response(client);
                        }
                    },
                    body => body.map(|body| (status, Vec::from(body))),
                }
            } else {
                upstream::read_capped(deployment, response, MAX_ERROR_BODY, deadline)
                    .await
                    .map(|body| {
                        let body = deployment.redact(body);
                        match converted {
                            false => (status, same_protocol_error_body(client, status, &body)),
                            true => {
                                let error = StreamStartError {
                                    upstream: deployment.protocol,
                                    status: status.as_u16(),
                                    body,
                                }
                                .to_client_error(client, None, None);
                                let status = StatusCode::from_u16(error.status).unwrap_or(status);
                                (status, error.body)
                            }
                        }
                    })
            };
            match body {
                Ok((status, body)) => {
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
