//! Why an attempt did not produce the client's answer. Failures stay typed (what went wrong, the upstream's
//! status and `Retry-After`, whether another deployment may do better) until the request path gives up, and
//! are rendered once, at the edge, into the client's protocol.

use std::time::Duration;

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::protocol::Protocol;
use crate::protocol::convert::error::{ClientError, StreamStartError};
use crate::server::error::{ApiError, json_response, same_protocol_error_body};
use crate::upstream::UpstreamError;

#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    /// The upstream's `Retry-After` on a 429/503/529: the deployment cools down that long.
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
pub enum FailureKind {
    /// The router would not send the request (a conversion refusal): the client's problem, never retried.
    Refused(ApiError),
    /// The upstream could not be reached, did not answer in time, or its answer broke or was unusable.
    Unreachable { status: StatusCode, message: String },
    /// The upstream answered with an error: an error status, or an error as its stream's first event.
    Answered(Box<UpstreamAnswer>),
}

/// An upstream error answer, in the upstream's protocol (its key already redacted).
#[derive(Debug)]
pub struct UpstreamAnswer {
    pub upstream: Protocol,
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub request_id: Option<String>,
    /// Relayed headers (rate limits, retry hints, request ids).
    pub headers: HeaderMap,
}

impl Failure {
    pub fn refused(error: ApiError) -> Self {
        Self {
            kind: FailureKind::Refused(error),
            retry_after: None,
        }
    }

    pub fn unreachable(status: StatusCode, message: String) -> Self {
        Self {
            kind: FailureKind::Unreachable { status, message },
            retry_after: None,
        }
    }

    pub fn answered(answer: UpstreamAnswer, retry_after: Option<Duration>) -> Self {
        Self {
            kind: FailureKind::Answered(Box::new(answer)),
            retry_after,
        }
    }

    /// A stream whose first event was an error: as an HTTP error, since nothing was sent yet.
    pub fn error_event(error: StreamStartError) -> Self {
        let answer = UpstreamAnswer {
            upstream: error.upstream,
            status: StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY),
            body: error.body,
            request_id: None,
            headers: HeaderMap::new(),
        };
        Self::answered(answer, None)
    }

    /// The status this failure stands for, for the attempt's metrics: the upstream's (or its first error
    /// event's), or the router's 502/504 when the upstream gave none.
    pub fn status(&self) -> u16 {
        match &self.kind {
            FailureKind::Refused(error) => error.status.as_u16(),
            FailureKind::Unreachable { status, .. } => status.as_u16(),
            FailureKind::Answered(answer) => answer.status.as_u16(),
        }
    }

    /// Another deployment may succeed: connect errors, timeouts, broken answers, 408, 429 and 5xx.
    pub fn retryable(&self) -> bool {
        match &self.kind {
            FailureKind::Refused(_) => false,
            FailureKind::Unreachable { .. } => true,
            FailureKind::Answered(answer) => is_retryable(answer.status),
        }
    }

    /// The upstream's status, when it answered with an error.
    pub fn answered_status(&self) -> Option<u16> {
        match &self.kind {
            FailureKind::Answered(answer) => Some(answer.status.as_u16()),
            _ => None,
        }
    }

    /// The upstream refused the prompt as longer than the model's context window.
    pub fn says_context_too_long(&self) -> bool {
        match &self.kind {
            FailureKind::Answered(answer) => {
                matches!(answer.status.as_u16(), 400 | 413 | 422)
                    && crate::protocol::convert::error::says_context_too_long(&answer.body)
            }
            _ => false,
        }
    }

    /// A short reason for the log.
    pub fn reason(&self) -> String {
        match &self.kind {
            FailureKind::Refused(error) => error.message.clone(),
            FailureKind::Unreachable { message, .. } => message.clone(),
            FailureKind::Answered(answer) => format!("upstream answered {}", answer.status.as_u16()),
        }
    }

    /// The client's answer, in its protocol.
    pub fn render(self, client: Protocol) -> Response {
        match self.kind {
            FailureKind::Refused(error) => error.into_response(client),
            FailureKind::Unreachable { status, message } => ApiError::new(status, message).into_response(client),
            FailureKind::Answered(answer) => {
                let mut response = if answer.upstream.error_shape() == client.error_shape() {
                    json_response(
                        answer.status,
                        same_protocol_error_body(client, answer.status, &answer.body),
                    )
                } else {
                    let error = StreamStartError {
                        upstream: answer.upstream,
                        status: answer.status.as_u16(),
                        body: answer.body,
                    };
                    let retry_after = self.retry_after.map(|delay| delay.as_secs_f64().ceil() as u64);
                    client_error_response(error.to_client_error(client, answer.request_id.as_deref(), retry_after))
                };
                response.headers_mut().extend(answer.headers);
                response
            }
        }
    }
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        let status = StatusCode::from_u16(error.status()).expect("valid status");
        Self::unreachable(status, error.to_string())
    }
}

pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
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
}
