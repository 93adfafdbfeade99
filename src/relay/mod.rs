//! The request path of `POST /v1/chat/completions` and `POST /v1/messages`, stage by stage:
//!
//! 1. `handle` reads the client's body, finds the model group and runs the attempt loop: the group's
//!    strategy picks a deployment not yet tried, and a failed attempt that another deployment may do better
//!    on (connect error, timeout, 408/429/5xx, an error as first event) is retried on the next one.
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

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;

use self::attempt::{Answer, Attempt};
use self::failure::Failure;
use self::record::RequestRecord;
use crate::protocol::Protocol;
use crate::routing::{Deployment, ModelGroup};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::request::{ClientRequest, read_body};

/// An upstream error body is read up to this size; more is cut.
pub const MAX_ERROR_BODY: usize = 1024 * 1024;
/// A non-streamed answer is read whole, up to this size, before the client gets its status.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// One request on a relayed route (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`).
pub async fn handle(state: AppState, client: Protocol, request: Request) -> Response {
    let mut record = RequestRecord::new(client, client.route(), &state);
    // One snapshot for the whole request: a reload while it runs changes nothing for it.
    let snapshot = state.snapshot.load_full();
    let config = &snapshot.config;
    let (parts, body) = request.into_parts();
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
    let Some(group) = snapshot.group(&request.model) else {
        let error = ApiError::unknown_model(&request.model, &snapshot.listed);
        return record.answered(error.into_response(client));
    };
    record.group(group);
    let reliability = config.reliability;
    let mut tried = Vec::with_capacity(1);
    let mut last_failure: Option<Failure> = None;
    for _ in 0..=reliability.num_retries {
        let Some((index, deployment)) = choose(group, &tried) else {
            break;
        };
        tried.push(index);
        let attempt = Attempt {
            client,
            deployment,
            client_model: &request.model,
            signing_key: &state.signing_key,
            client_headers: &parts.headers,
            max_event: config.max_event_size,
        };
        let failure = match attempt.run(&request, &bytes, &mut record).await {
            Ok(Answer::Upstream(response)) => {
                deployment.health.record_success();
                return record.answered(response);
            }
            Ok(Answer::Stream(stream)) => {
                deployment.health.record_success();
                // The record goes with the stream's body and is emitted when the stream ends.
                return stream.respond(record);
            }
            // The deployment was never contacted, so its health says nothing new.
            Ok(Answer::Local(response)) => return record.answered(response),
            Err(failure) => failure,
        };
        let reason = failure.reason();
        record.attempt_failed(failure.status(), &reason);
        if !failure.retryable() {
            return record.answered(failure.render(client));
        }
        let cooldown = deployment.health.record_failure(&reliability, failure.retry_after);
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
    let answer = match last_failure {
        Some(failure) => failure.render(client),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no deployment available in '{}'", group.name),
        )
        .into_response(client),
    };
    record.answered(answer)
}

/// The next deployment to try: the group's strategy among those not tried and not cooling down; when all
/// untried ones are cooling, the one whose cooldown ends first (better a likely failure than a certain one).
fn choose<'g>(group: &'g ModelGroup, tried: &[usize]) -> Option<(usize, &'g Arc<Deployment>)> {
    group
        .pick(|i| !tried.contains(&i) && !group.members[i].health.is_cooling())
        .or_else(|| {
            let index = (0..group.members.len())
                .filter(|i| !tried.contains(i) && group.weights[*i] > 0)
                .min_by_key(|i| group.members[*i].health.cooldown_left())?;
            Some((index, &group.members[index]))
        })
}
