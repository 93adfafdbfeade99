//! Google Gemini API (`generativelanguage` v1beta) codecs around the hub, per `shared/protocol-gemini.md`:
//! the request decoder for Gemini clients (the Gemini CLI, the google-genai SDKs) and the encoder for
//! `api_type: gemini` upstreams ([`request`]), the answer decoder and encoder and the `alt=sse` chunk
//! decoder ([`response`]), the stream encoder ([`stream`]), and Google's error shape (here).
//!
//! Gemini differs from the other three protocols in ways every codec here depends on: the model travels in
//! the URL path, not the body; parsers must accept snake_case as well as camelCase names (proto3 JSON);
//! function calls have no required id; and Gemini 3 signs its reasoning into `thoughtSignature`s that must
//! come back on the replayed `functionCall` part. How those signatures cross clients of other protocols is
//! in [`thought`].

pub mod request;
pub mod response;
pub mod stream;
pub mod thought;
pub mod usage;

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::sse::EventView;

use crate::protocol::json::{push_plain, push_str, push_u64};

/// The canonical status name Google puts next to an HTTP status (reference §6.1).
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        // Exhausted prepaid credits, as Google answers them.
        402 | 429 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// The HTTP status a Gemini client gets for an upstream or router status (reference §6.3): 413 and 422 are
/// 400s to Google, 408 a 504, 502 a 500, Anthropic's 529 a 503, and anything outside 400–599 is internal.
pub fn client_status(status: u16) -> u16 {
    match status {
        413 | 422 => 400,
        408 => 504,
        502 => 500,
        529 => 503,
        400..=599 => status,
        _ => 500,
    }
}

/// `{"error":{"code":<status>,"message":…,"status":"<NAME>"}}`, Google's error body, also the `data` of an
/// in-band stream error (reference §6.1, §5.6).
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    write_error(status, message, None)
}

/// The error body of a rate limit or an overload whose cool-down is known: `message` gets "Please retry in
/// Ns." and `details` a `google.rpc.RetryInfo`, both of which the Gemini CLI reads to time its retry
/// (reference §6.1, §6.3).
pub fn retry_error_body(status: u16, message: &str, retry_after_secs: u64) -> Vec<u8> {
    write_error(status, message, Some(retry_after_secs))
}

fn write_error(status: u16, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let status = client_status(status);
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(br#"{"error":{"code":"#);
    push_u64(&mut out, u64::from(status));
    out.extend_from_slice(br#","message":"#);
    match retry_after {
        Some(secs) => {
            let sep = if message.is_empty() || message.ends_with(' ') {
                ""
            } else {
                " "
            };
            push_str(&mut out, &format!("{message}{sep}Please retry in {secs}s."));
        }
        None => push_str(&mut out, message),
    }
    out.extend_from_slice(br#","status":"#);
    push_plain(&mut out, status_name(status));
    if let Some(secs) = retry_after {
        out.extend_from_slice(br#","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":""#);
        push_u64(&mut out, secs);
        out.extend_from_slice(br#"s"}]"#);
    }
    out.extend_from_slice(b"}}");
    out
}

/// The status of an error chunk in a Gemini stream (`{"error":{"code",…}}`), or `None` for a normal chunk.
pub fn stream_error(event: &impl EventView) -> Option<u16> {
    if !event.data().trim_ascii_start().starts_with(br#"{"error""#) {
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
    let chunk: Chunk = serde_json::from_slice(event.data()).ok()?;
    Some(chunk.error.code.filter(|code| (400..600).contains(code)).unwrap_or(500))
}

/// Whether a Gemini stream chunk is its last: the one that carries the `finishReason` (a Gemini stream has
/// no end marker of its own; reference §5.1).
pub fn is_last_chunk(event: &impl EventView) -> bool {
    // Built once: making a searcher costs more than running it over a chunk.
    static FINISH: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| crate::protocol::json::key_finder(br#""finishReason""#));
    FINISH.find(event.data()).is_some()
}

/// What a Gemini upstream said about an error, for conversion into another client's error shape.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    /// The HTTP status: the body's `code` when it names one in 400–599, else the response's own.
    pub status: u16,
    /// Google's status name (`RESOURCE_EXHAUSTED`), when the body gives one.
    pub status_name: Option<String>,
    pub message: String,
    /// `RetryInfo.retryDelay` in seconds, rounded up, for `retry-after`.
    pub retry_after_secs: Option<u64>,
}

impl UpstreamError {
    /// This error in the hub's error vocabulary (OpenAI's codes, which the Chat and Messages encoders map
    /// into their own shapes; reference §6.2).
    pub fn hub_code(&self) -> &'static str {
        hub_code(self.status, &self.message)
    }
}

/// The hub error code for a Gemini status, with the message's hints (reference §6.2).
pub fn hub_code(status: u16, message: &str) -> &'static str {
    match status {
        400 if message.contains("input token count") && message.contains("exceeds") => "context_length_exceeded",
        401 => "invalid_api_key",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "model_not_found",
        // Per-day quotas and "limit: 0" are not worth retrying.
        429 if message.contains("PerDay") || message.contains("limit: 0") => "insufficient_quota",
        429 => "rate_limit_exceeded",
        503 => "server_is_overloaded",
        504 => "timeout",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// The HTTP status a hub error code stands for, for a Gemini client (reference §6.3).
pub fn status_for_hub_code(code: &str) -> u16 {
    match code {
        "rate_limit_exceeded" | "rate_limit_error" => 429,
        "insufficient_quota" => 402,
        "server_is_overloaded" | "service_unavailable_error" | "overloaded_error" => 503,
        "invalid_api_key" | "authentication_error" => 401,
        "permission_error" => 403,
        "model_not_found" | "not_found_error" => 404,
        "timeout" | "timeout_error" => 504,
        "stream_incomplete" => 502,
        "context_length_exceeded" | "invalid_request_error" | "request_too_large" => 400,
        _ => 500,
    }
}

/// Reads a Gemini error body: `{"error":{…}}`, the same wrapped in a one-element array (as some Google
/// endpoints answer), or anything else (its first bytes become the message). Never fails.
pub fn read_error(http_status: u16, body: &[u8]) -> UpstreamError {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        error: Option<Detail<'a>>,
    }
    #[derive(Deserialize)]
    struct Detail<'a> {
        #[serde(default)]
        code: Option<serde_json::Number>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        status: Option<String>,
        #[serde(borrow, default)]
        details: Vec<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct RetryInfo<'a> {
        #[serde(rename = "@type", default)]
        kind: &'a str,
        #[serde(rename = "retryDelay", default)]
        retry_delay: Option<String>,
    }
    let trimmed = body.trim_ascii();
    let detail = match trimmed.first() {
        Some(b'[') => crate::protocol::json::parse::<Vec<Body>>(trimmed)
            .ok()
            .and_then(|list| list.into_iter().next()),
        _ => crate::protocol::json::parse::<Body>(trimmed).ok(),
    }
    .and_then(|b| b.error);
    let Some(detail) = detail else {
        return UpstreamError {
            status: http_status,
            status_name: None,
            message: raw_prefix(body),
            retry_after_secs: None,
        };
    };
    let status = detail
        .code
        .and_then(|n| n.as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (400..=599).contains(n))
        .unwrap_or(http_status);
    let retry_after_secs = detail.details.iter().find_map(|raw| {
        let info: RetryInfo = serde_json::from_str(raw.get()).ok()?;
        if !info.kind.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        parse_duration_secs(info.retry_delay.as_deref()?)
    });
    UpstreamError {
        status,
        status_name: detail.status,
        message: detail.message.map(|m| scrub(&m)).unwrap_or_default(),
        retry_after_secs,
    }
}

/// A protobuf `Duration` in JSON (`"51.8s"`), rounded up to whole seconds.
fn parse_duration_secs(text: &str) -> Option<u64> {
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    (0.0..1.0e9).contains(&secs).then(|| secs.ceil() as u64)
}

/// At most this many bytes of a body that is not a Google error are shown.
const RAW_BODY_LIMIT: usize = 500;

fn raw_prefix(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(RAW_BODY_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    scrub(text[..end].trim())
}

/// Hides words that look like Google API keys (`AIza…`) or URLs carrying a `key=` query: Google quotes the
/// request URL in some errors, and a key in a URL would otherwise reach the client (reference §6.3).
fn scrub(message: &str) -> String {
    let secret = |w: &str| {
        let w = w.trim_start_matches(['(', '"', '\'', '<', '[']);
        w.starts_with("AIza") || w.contains("key=") || w.starts_with("http://") || w.starts_with("https://")
    };
    if !message.split_whitespace().any(secret) {
        return message.to_owned();
    }
    message
        .split(' ')
        .map(|w| if secret(w) { "[redacted]" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_googles_shape_and_status_names() {
        assert_eq!(
            String::from_utf8(error_body(400, "Bad \"x\"")).unwrap(),
            r#"{"error":{"code":400,"message":"Bad \"x\"","status":"INVALID_ARGUMENT"}}"#
        );
        for (status, name) in [
            (401, "UNAUTHENTICATED"),
            (403, "PERMISSION_DENIED"),
            (404, "NOT_FOUND"),
            (429, "RESOURCE_EXHAUSTED"),
            (402, "RESOURCE_EXHAUSTED"),
            (500, "INTERNAL"),
            (503, "UNAVAILABLE"),
            (504, "DEADLINE_EXCEEDED"),
            (409, "ABORTED"),
        ] {
            let body: serde_json::Value = serde_json::from_slice(&error_body(status, "m")).unwrap();
            assert_eq!(body["error"]["status"], name, "{status}");
            assert_eq!(body["error"]["code"], status, "{status}");
        }
        // Anthropic's 529 and a 422 become what Google would answer.
        let body: serde_json::Value = serde_json::from_slice(&error_body(529, "busy")).unwrap();
        assert_eq!(
            (body["error"]["code"].as_u64(), body["error"]["status"].as_str()),
            (Some(503), Some("UNAVAILABLE"))
        );
        assert_eq!(status_name(client_status(422)), "INVALID_ARGUMENT");
    }

    #[test]
    fn rate_limits_carry_retry_info() {
        assert_eq!(
            String::from_utf8(retry_error_body(429, "Slow down.", 12)).unwrap(),
            r#"{"error":{"code":429,"message":"Slow down. Please retry in 12s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#
        );
        // What the router writes, it reads back.
        let read = read_error(429, &retry_error_body(429, "Slow down.", 12));
        assert_eq!(read.retry_after_secs, Some(12));
        assert_eq!(read.hub_code(), "rate_limit_exceeded");
    }

    #[test]
    fn upstream_errors_are_read_plain_wrapped_or_raw() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"51.8s"}]}}"#;
        let read = read_error(429, body);
        assert_eq!(
            read,
            UpstreamError {
                status: 429,
                status_name: Some("RESOURCE_EXHAUSTED".into()),
                message: "Resource has been exhausted (e.g. check quota).".into(),
                retry_after_secs: Some(52),
            }
        );
        let wrapped = br#"[{"error":{"code":400,"message":"Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.","status":"INVALID_ARGUMENT"}}]"#;
        let read = read_error(400, wrapped);
        assert_eq!((read.status, read.hub_code()), (400, "invalid_request_error"));
        assert!(read.message.starts_with("Please ensure"));
        let overflow = read_error(
            400,
            br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(overflow.hub_code(), "context_length_exceeded");
        let raw = read_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(
            (raw.status, raw.message.as_str(), raw.hub_code()),
            (502, "<html>Bad Gateway</html>", "server_error")
        );
        // A code outside the error range is not believed over the response's status.
        assert_eq!(read_error(503, br#"{"error":{"code":200,"message":"x"}}"#).status, 503);
    }

    #[test]
    fn keys_and_urls_never_reach_the_message() {
        let read = read_error(
            400,
            br#"{"error":{"code":400,"message":"API key not valid: AIzaSyA-secret. See https://x.googleapis.com/v1beta/models?key=AIzaSyA-secret","status":"INVALID_ARGUMENT"}}"#,
        );
        assert!(!read.message.contains("AIza"), "{}", read.message);
        assert!(!read.message.contains("googleapis"), "{}", read.message);
        assert!(
            read.message.starts_with("API key not valid: [redacted]"),
            "{}",
            read.message
        );
    }

    #[test]
    fn hub_codes_and_statuses_map_both_ways() {
        assert_eq!(hub_code(503, ""), "server_is_overloaded");
        assert_eq!(
            hub_code(429, "Quota exceeded for GenerateRequestsPerDayPerProject"),
            "insufficient_quota"
        );
        assert_eq!(hub_code(504, ""), "timeout");
        for code in [
            "rate_limit_exceeded",
            "server_is_overloaded",
            "timeout",
            "invalid_api_key",
            "permission_error",
        ] {
            assert_eq!(hub_code(status_for_hub_code(code), ""), code);
        }
        assert_eq!(status_for_hub_code("stream_incomplete"), 502);
        assert_eq!(status_name(502), "UNAVAILABLE");
    }
}
