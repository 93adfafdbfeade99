//! `POST /v1/messages/count_tokens`. Claude Code calls it constantly (context meter, auto-compaction), with
//! `?beta=true`. Anthropic-protocol deployments answer it themselves; for OpenAI-protocol deployments the
//! router estimates locally with the o200k_base tokenizer, erring high (spec §5.2).

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, json_response, same_protocol_error_body};
use super::request::{ClientRequest, read_body};
use crate::protocol::Protocol;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::relay::record::RequestRecord;
use crate::relay::{MAX_ERROR_BODY, MAX_RESPONSE_BODY};
use crate::upstream;

const ROUTE: &str = "/v1/messages/count_tokens";

pub async fn count_tokens(state: AppState, request: Request) -> Response {
    let mut record = RequestRecord::new(ROUTE);
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
    // Counting is cheap and must not disturb the balancing of real traffic (Claude Code sends many), so it
    // takes the first usable member instead of a turn of the group's strategy.
    let usable = |i: &usize| group.weights[*i] > 0;
    let Some(deployment) = (0..group.members.len())
        .filter(usable)
        .find(|i| !group.members[*i].health.is_cooling())
        .or_else(|| (0..group.members.len()).find(usable))
        .map(|i| &group.members[i])
    else {
        let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no deployment available");
        return record.answered(error.into_response(Protocol::Anthropic));
    };
    if deployment.protocol == Protocol::OpenAi {
        record.chose(deployment);
        let answer = match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) => estimated(estimate_anthropic_input_tokens(
                &body,
                deployment.spec.options.token_count_factor,
            )),
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
    let deadline = tokio::time::Instant::now() + deployment.spec.timeouts.first_byte;
    let answer = match upstream::send(
        deployment,
        &deployment.count_tokens_endpoint,
        &parts.headers,
        body,
        deadline,
    )
    .await
    {
        Err(error) => upstream_failure(&error),
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
                        same_protocol_error_body(Protocol::Anthropic, status, &body)
                    })
            };
            match body {
                Ok(body) => {
                    let mut answer = json_response(status, body);
                    answer.headers_mut().extend(headers);
                    answer
                }
                Err(error) => upstream_failure(&error),
            }
        }
    };
    record.answered(answer)
}

fn upstream_failure(error: &upstream::UpstreamError) -> Response {
    let status = StatusCode::from_u16(error.status()).expect("valid status");
    ApiError::new(status, error.to_string()).into_response(Protocol::Anthropic)
}

fn estimated(tokens: u64) -> Response {
    let mut answer = json_response(StatusCode::OK, format!(r#"{{"input_tokens":{tokens}}}"#).into_bytes());
    answer
        .headers_mut()
        .insert("x-llm-router-token-count", HeaderValue::from_static("estimated"));
    answer
}
