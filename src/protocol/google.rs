//! Google API wire shapes shared by the server and the converters: the error body every Gemini endpoint
//! answers with (reference `protocol-gemini.md` §6), and the stream facts the relay watches for.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::protocol::sse::SseEvent;

/// `{"error":{"code","message","status","details"}}`. `details` is written only when there is one: a
/// `RetryInfo` on rate limits and overload, which the Gemini CLI honours.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<RetryInfo>,
}

#[derive(Debug, Serialize)]
struct RetryInfo {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "retryDelay")]
    retry_delay: String,
}

/// A Google error body for HTTP `status`. The status is mapped the way §6.3 says a Gemini client should
/// see it (413 is an `INVALID_ARGUMENT` 400, 502 an `INTERNAL` 500, 529 an `UNAVAILABLE` 503, 408 a
/// `DEADLINE_EXCEEDED` 504): [`client_status`] gives the HTTP status to answer with. `retry_after`
/// (seconds) adds a `RetryInfo` detail.
pub fn error_body(status: u16, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let code = client_status(status);
    let details = retry_after
        .into_iter()
        .map(|seconds| RetryInfo {
            kind: "type.googleapis.com/google.rpc.RetryInfo",
            retry_delay: format!("{seconds}s"),
        })
        .collect();
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            status: status_name(code),
            details,
        },
    };
    crate::protocol::json::to_vec(&body).expect("error body serialises")
}

/// The HTTP status a Gemini client gets for an error of `status` elsewhere (reference §6.3).
pub fn client_status(status: u16) -> u16 {
    match status {
        413 | 422 => 400,
        408 => 504,
        502 => 500,
        529 => 503,
        _ => status,
    }
}

/// Google's canonical status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 | 429 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status >= 500 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

/// The status of an error chunk in a Gemini stream (`{"error":{"code",…}}`), or `None` for a normal chunk.
pub fn stream_error(event: &SseEvent) -> Option<u16> {
    if !event.data.trim_start().starts_with(r#"{"error""#) {
        return None;
    }
    #[derive(Deserialize)]
    struct Chunk {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default)]
        code: Option<u16>,
    }
    let chunk: Chunk = serde_json::from_str(&event.data).ok()?;
    Some(chunk.error.code.filter(|code| (400..600).contains(code)).unwrap_or(500))
}

/// Whether a Gemini stream chunk is its last: the one that carries the `finishReason` (a Gemini stream has
/// no end marker of its own; reference §5.1).
pub fn is_last_chunk(event: &SseEvent) -> bool {
    // Built once: making a searcher costs more than running it over a chunk.
    static FINISH: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(br#""finishReason""#));
    FINISH.find(event.data.as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape_and_retry_info() {
        let body: serde_json::Value = serde_json::from_slice(&error_body(404, "no model 'x'", None)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":{"code":404,"message":"no model 'x'","status":"NOT_FOUND"}})
        );
        let body: serde_json::Value = serde_json::from_slice(&error_body(429, "slow down", Some(7))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED",
                "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}})
        );
    }

    #[test]
    fn statuses_as_a_gemini_client_sees_them() {
        let seen = |status| (client_status(status), status_name(client_status(status)));
        assert_eq!(seen(413), (400, "INVALID_ARGUMENT"));
        assert_eq!(seen(401), (401, "UNAUTHENTICATED"));
        assert_eq!(seen(502), (500, "INTERNAL"));
        assert_eq!(seen(529), (503, "UNAVAILABLE"));
        assert_eq!(seen(408), (504, "DEADLINE_EXCEEDED"));
        assert_eq!(seen(402), (402, "RESOURCE_EXHAUSTED"));
    }
}
