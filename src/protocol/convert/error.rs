//! Upstream errors in the client's protocol (spec §4): HTTP error bodies both ways, the in-band error of a
//! stream that has already started, and the check of a stream's first event (§3.5.1).
//!
//! Both SDKs pick their exception class from the status code, so the status is mapped with more care than
//! the `type` string (§4.1).

use std::borrow::Cow;
use std::sync::LazyLock;

use serde_json::Value;

use crate::protocol::json::key_finder;
use crate::protocol::sse::EventView;
#[cfg(test)]
use crate::protocol::sse::SseEvent;
use crate::protocol::{ErrorShape, Protocol, anthropic, gemini, openai};

/// An error response ready for the client: status, body in the client's protocol, and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    pub body: Vec<u8>,
    /// Extra response headers, e.g. `x-should-retry`. The server adds `retry-after*` and request ids (§4.5).
    pub headers: Vec<(&'static str, String)>,
}

/// How many bytes of a non-JSON upstream error body are shown to the client (§4.2).
const RAW_BODY_LIMIT: usize = 500;

// ---------------------------------------------------------------------------------------------------------
// §4.2: OAI upstream error → ANT client
// ---------------------------------------------------------------------------------------------------------

/// Converts an OpenAI-style upstream error response into an Anthropic error response (Route B, §4.2).
pub fn openai_error_to_anthropic(status: u16, body: &[u8], request_id: Option<&str>) -> ClientError {
    let info = match serde_json::from_slice::<Value>(body) {
        Ok(json) => OpenAiErrorInfo::from_json(&json),
        Err(_) => OpenAiErrorInfo::raw(body),
    };
    let mapped = info.to_anthropic(status);
    ClientError {
        status: mapped.status,
        body: anthropic::error_body(mapped.kind, &mapped.message, request_id),
        headers: Vec::new(),
    }
}

/// Whether an upstream's error body (any protocol's shape) says the prompt does not fit the model's context
/// window: OpenAI's `context_length_exceeded`, Anthropic's "prompt is too long", Google's "input token count
/// … exceeds", and the wordings of the OpenAI-compatible hosts. `context_window_fallback` acts on it.
pub fn says_context_too_long(body: &[u8]) -> bool {
    let info = match serde_json::from_slice::<Value>(body) {
        Ok(json) => OpenAiErrorInfo::from_json(&json),
        Err(_) => OpenAiErrorInfo::raw(body),
    };
    info.says_context_too_long()
}

/// An Anthropic error, as mapped from an OpenAI one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnthropicError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

/// What an OpenAI-compatible host says about an error. Hosts vary: `{"error":{"message","type","code"}}`
/// (OpenAI), `{"error":"text"}`, `{"object":"error","message","type","code":400}` (vLLM), `{"detail":…}`
/// (FastAPI servers), `{"message":…}`.
#[derive(Debug, Default)]
pub(crate) struct OpenAiErrorInfo {
    message: String,
    kind: Option<String>,
    code: Option<String>,
    param: Option<String>,
    /// An HTTP status the body itself names (numeric `code`/`status`, used by vLLM and OpenRouter).
    status: Option<u16>,
}

impl OpenAiErrorInfo {
    pub(crate) fn from_json(json: &Value) -> Self {
        let inner = match json.get("error") {
            Some(Value::String(message)) => {
                return Self {
                    message: message.clone(),
                    ..Self::default()
                };
            }
            Some(inner @ Value::Object(_)) => inner,
            _ => json,
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let message = ["message", "detail", "msg", "error"]
            .iter()
            .find_map(|key| match inner.get(*key) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(v @ (Value::Array(_) | Value::Object(_))) => Some(v.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let status = ["code", "status", "status_code"]
            .iter()
            .filter_map(|key| inner.get(*key).or_else(|| json.get(*key)))
            .find_map(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (400..=599).contains(n));
        Self {
            message,
            kind: text(inner.get("type")),
            code: inner.get("code").and_then(Value::as_str).map(str::to_owned),
            param: text(inner.get("param")),
            status,
        }
    }

    fn raw(body: &[u8]) -> Self {
        Self {
            message: raw_prefix(body),
            ..Self::default()
        }
    }

    fn hints(&self, needle: &str) -> bool {
        let has = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains(needle));
        has(&self.code) || has(&self.kind)
    }

    /// The HTTP status an error seen inside a stream stands for: the body's own number, else its type/code.
    pub(crate) fn implied_status(&self) -> u16 {
        if let Some(status) = self.status {
            return status;
        }
        let lower = |s: &Option<String>| s.as_deref().unwrap_or("").to_ascii_lowercase();
        let words = format!("{} {}", lower(&self.kind), lower(&self.code));
        let message = self.message.to_ascii_lowercase();
        if words.contains("insufficient_quota") || words.contains("rate_limit") {
            429
        } else if words.contains("overloaded") || words.contains("service_unavailable") {
            503
        } else if words.contains("context_length") || words.contains("invalid_request") {
            400
        } else if words.contains("auth") || words.contains("invalid_api_key") {
            401
        } else if words.contains("permission") {
            403
        } else if words.contains("not_found") {
            404
        } else if words.contains("timeout") {
            504
        } else if message.contains("overloaded") {
            503
        } else {
            500
        }
    }

    /// This error in the hub's vocabulary (OpenAI's codes): its own code when it names one, else the code
    /// its status stands for. With its message, scrubbed of secrets.
    pub(crate) fn to_hub(&self) -> (String, String) {
        let code = match (self.code.as_deref(), self.implied_status()) {
            (Some(code), _) if !code.is_empty() && code.parse::<u16>().is_err() => code,
            (_, 429) if self.hints("insufficient_quota") => "insufficient_quota",
            (_, 429) => "rate_limit_exceeded",
            (_, 503 | 529) => "server_is_overloaded",
            (_, 401) => "invalid_api_key",
            (_, 403) => "permission_error",
            (_, 504) => "timeout",
            (_, 400..=499) => "invalid_request_error",
            _ => "server_error",
        };
        let message = match self.message.is_empty() {
            true => "upstream error".to_owned(),
            false => scrub_secrets(&self.message).into_owned(),
        };
        (code.to_owned(), message)
    }

    /// The §4.2 table.
    pub(crate) fn to_anthropic(&self, status: u16) -> AnthropicError {
        let overloaded = self.hints("overloaded") || contains_ci(&self.message, "overloaded");
        let (status, kind) = match status {
            400 | 422 => (400, "invalid_request_error"),
            401 => (401, "authentication_error"),
            402 => (402, "billing_error"),
            403 => (403, "permission_error"),
            404 => (404, "not_found_error"),
            408 | 504 => (504, "timeout_error"),
            409 => (409, "invalid_request_error"),
            413 => (413, "request_too_large"),
            429 if self.hints("insufficient_quota") => (402, "billing_error"),
            429 => (429, "rate_limit_error"),
            503 | 529 => (529, "overloaded_error"),
            500..=599 if overloaded => (529, "overloaded_error"),
            s @ 500..=599 => (s, "api_error"),
            s @ 400..=499 => (s, "invalid_request_error"),
            // A non-error status handed in as an error: the upstream misbehaved.
            _ => (502, "api_error"),
        };
        let mut message = scrub_secrets(&self.message).into_owned();
        if status == 400 && self.says_context_too_long() {
            message = anthropic_prompt_too_long(&message);
        }
        if message.is_empty() {
            message = format!("upstream returned HTTP {status}");
        }
        AnthropicError { status, kind, message }
    }

    fn says_context_too_long(&self) -> bool {
        self.hints("context_length_exceeded")
            || [
                "context length",
                "context_length",
                "context window",
                "maximum context",
                "prompt is too long",
                "input token count",
            ]
            .iter()
            .any(|needle| contains_ci(&self.message, needle))
    }

    /// The normalised OpenAI body `{"error":{"message","type","param","code"}}` for this error.
    fn to_openai_body(&self, status: u16) -> Vec<u8> {
        let message = scrub_secrets(&self.message);
        openai::error_body(
            &message,
            self.kind
                .as_deref()
                .unwrap_or_else(|| openai::error_type_for_status(status)),
            self.param.as_deref(),
            self.code.as_deref(),
        )
    }
}

/// Rewords a context-overflow message the way Anthropic words it (`prompt is too long: N tokens > M
/// maximum`), because clients such as Claude Code recognise overflow (and compact) by that message.
fn anthropic_prompt_too_long(message: &str) -> String {
    let numbers = integers(message);
    let lower = message.to_ascii_lowercase();
    // The limit is the first number after "maximum"/"context length"; the prompt size the first one above it.
    let limit_at = ["maximum", "context length", "context window", "limit"]
        .iter()
        .filter_map(|k| lower.find(k))
        .min();
    let limit = limit_at.and_then(|at| numbers.iter().find(|(pos, _)| *pos > at).map(|&(_, n)| n));
    let size = limit.and_then(|max| numbers.iter().map(|&(_, n)| n).find(|&n| n > max));
    match (size, limit) {
        (Some(size), Some(limit)) => format!("prompt is too long: {size} tokens > {limit} maximum"),
        _ if lower.starts_with("prompt is too long") => message.to_owned(),
        _ => format!("prompt is too long: {message}"),
    }
}

/// Integers in a text with their byte positions; `128,000` counts as one number.
fn integers(text: &str) -> Vec<(usize, u64)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            let mut value: u64 = 0;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || (bytes[i] == b',' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                if bytes[i] != b',' {
                    value = value.saturating_mul(10).saturating_add(u64::from(bytes[i] - b'0'));
                }
                i += 1;
            }
            found.push((start, value));
        } else {
            i += 1;
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------------------
// §4.3: ANT upstream error → OAI client
// ---------------------------------------------------------------------------------------------------------

/// Converts an Anthropic upstream error response into an OpenAI error response (Route A, §4.3).
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> ClientError {
    let (kind, message) = match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            let error = json.get("error").unwrap_or(&json);
            (
                error.get("type").and_then(Value::as_str).map(str::to_owned),
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_default(),
            )
        }
        Err(_) => (None, raw_prefix(body)),
    };
    let kind = kind.unwrap_or_else(|| anthropic::error_type_for_status(status).to_owned());
    openai_error_for_anthropic(Some(status), &kind, &message).into_client_error()
}

/// An OpenAI error, as mapped from an Anthropic one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenAiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    /// `x-should-retry` to send (billing errors must not be retried although they become 429).
    pub should_retry: Option<bool>,
}

impl OpenAiError {
    /// The `{"error":{…}}` body; also the `data` of an in-band stream error (§3.2).
    pub(crate) fn body(&self) -> Vec<u8> {
        openai::error_body(&self.message, self.kind, None, self.code)
    }

    fn into_client_error(self) -> ClientError {
        let headers = self
            .should_retry
            .map(|retry| vec![("x-should-retry", retry.to_string())])
            .unwrap_or_default();
        ClientError {
            status: self.status,
            body: self.body(),
            headers,
        }
    }
}

/// The §4.3 table. `status` is the upstream HTTP status (absent for an error event inside a stream). The
/// upstream status is kept where the table allows it (status fidelity, §4.1): 409, 422, 502 … stay as they are.
pub(crate) fn openai_error_for_anthropic(status: Option<u16>, ant_kind: &str, message: &str) -> OpenAiError {
    let about_model = contains_ci(message, "model");
    let too_long = contains_ci(message, "prompt is too long");
    let (table_status, kind, code) = match ant_kind {
        "invalid_request_error" => (
            400,
            "invalid_request_error",
            too_long.then_some("context_length_exceeded"),
        ),
        "authentication_error" => (401, "invalid_request_error", Some("invalid_api_key")),
        "billing_error" => (429, "insufficient_quota", Some("insufficient_quota")),
        "permission_error" => (403, "permission_error", None),
        "not_found_error" => (404, "invalid_request_error", about_model.then_some("model_not_found")),
        "request_too_large" => (413, "invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        "api_error" => (500, "server_error", None),
        "timeout_error" => (504, "server_error", Some("timeout")),
        "overloaded_error" => (503, "service_unavailable_error", Some("server_is_overloaded")),
        _ => {
            let s = status.unwrap_or(500);
            (s, openai::error_type_for_status(s), None)
        }
    };
    let status = match (ant_kind, status) {
        ("billing_error" | "overloaded_error", _) | (_, None | Some(529)) => table_status,
        (_, Some(s)) if (400..=599).contains(&s) => s,
        _ => table_status,
    };
    let status = if status == 529 { 503 } else { status };
    let message = scrub_secrets(message);
    OpenAiError {
        status,
        kind,
        code,
        message: if message.is_empty() {
            format!("upstream returned HTTP {status}")
        } else {
            message.into_owned()
        },
        should_retry: (ant_kind == "billing_error").then_some(false),
    }
}

// ---------------------------------------------------------------------------------------------------------
// §3.5.1: an error as the first event of a 2xx stream
// ---------------------------------------------------------------------------------------------------------

/// An error that an upstream sent inside a 2xx stream, expressed as the HTTP error response it stands for in
/// the upstream's own protocol. The server turns it into the client's answer with [`Self::to_client_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStartError {
    pub upstream: Protocol,
    pub status: u16,
    pub body: Vec<u8>,
}

impl StreamStartError {
    /// The HTTP error response for a client speaking `client` (same protocol: relayed; otherwise §4.2/§4.3).
    /// `retry_after` (seconds, from the upstream's `Retry-After`) goes into a Gemini client's `RetryInfo`.
    pub fn to_client_error(&self, client: Protocol, request_id: Option<&str>, retry_after: Option<u64>) -> ClientError {
        // The Responses API's errors have OpenAI's shape.
        match (self.upstream.error_shape(), client.error_shape()) {
            (ErrorShape::OpenAi, ErrorShape::Anthropic) => {
                openai_error_to_anthropic(self.status, &self.body, request_id)
            }
            (ErrorShape::Anthropic, ErrorShape::OpenAi) => anthropic_error_to_openai(self.status, &self.body),
            (ErrorShape::Google, ErrorShape::OpenAi | ErrorShape::Anthropic) => {
                google_error_to_client(self.status, &self.body, client.error_shape(), request_id)
            }
            (ErrorShape::OpenAi | ErrorShape::Anthropic, ErrorShape::Google) => {
                error_to_google(self.status, &self.body, retry_after)
            }
            _ => ClientError {
                status: self.status,
                body: self.body.clone(),
                headers: Vec::new(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Google errors ⇄ the others (reference protocol-gemini.md §6.2, §6.3)
// ---------------------------------------------------------------------------------------------------------

/// An OpenAI or Anthropic error body's message (`error.message` in both shapes, or a bare string `error`),
/// else its first bytes.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().map(|v| &v["error"]) {
        Some(Value::Object(error)) => error.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
        Some(Value::String(message)) => message.clone(),
        _ => String::from_utf8_lossy(&body[..body.len().min(RAW_BODY_LIMIT)])
            .trim()
            .to_owned(),
    }
}

/// A Gemini upstream's error for an OpenAI or Anthropic client (reference protocol-gemini.md §6.2): the
/// status kept (a 503 is Anthropic's `overloaded_error` 529), the code from Google's status and message,
/// and `RetryInfo` as `retry-after`.
fn google_error_to_client(status: u16, body: &[u8], shape: ErrorShape, request_id: Option<&str>) -> ClientError {
    let error = gemini::read_error(status, body);
    let (status, body) = match shape {
        ErrorShape::Anthropic => {
            let status = if error.status == 503 { 529 } else { error.status };
            let kind = anthropic::error_type_for_status(status);
            (status, anthropic::error_body(kind, &error.message, request_id))
        }
        _ => {
            let code = error.hub_code();
            let kind = openai::error_type_for_code(code);
            // A plain bad request or server error has no code of its own in OpenAI's shape.
            let code = Some(code).filter(|code| !matches!(*code, "invalid_request_error" | "server_error"));
            (error.status, openai::error_body(&error.message, kind, None, code))
        }
    };
    let headers = error
        .retry_after_secs
        .map(|seconds| vec![("retry-after", seconds.to_string())])
        .unwrap_or_default();
    ClientError { status, body, headers }
}

/// An OpenAI or Anthropic upstream's error for a Gemini client (§6.3). A rate limit or overload with a known
/// delay says it the way the Gemini CLI times its retry: `RetryInfo` and "Please retry in Ns.".
fn error_to_google(status: u16, body: &[u8], retry_after: Option<u64>) -> ClientError {
    let message = error_message(body);
    let body = match retry_after {
        Some(seconds) if matches!(status, 429 | 503 | 529) => gemini::retry_error_body(status, &message, seconds),
        _ => gemini::error_body(status, &message),
    };
    ClientError {
        status: gemini::client_status(status),
        body,
        headers: Vec::new(),
    }
}

/// Whether an event from an OpenAI-compatible stream is an error (`{"error":…}` with a non-empty value, or
/// vLLM's `{"object":"error",…}`); the OpenAI SDK raises on the same condition (§3.2).
/// A cheap test run on every stream event before any JSON is parsed: an error event is named `error` or
/// has an `"error"` key or value somewhere in its data.
fn may_be_error(event: &impl EventView) -> bool {
    event.name() == Some("error") || has_error_key(event.data())
}

/// Whether `"error"` appears anywhere in `json`.
pub(crate) fn has_error_key(json: &[u8]) -> bool {
    // Built once: making a searcher costs more than running it over an event.
    static ERROR_KEY: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| key_finder(br#""error""#));
    ERROR_KEY.find(json).is_some()
}

pub(crate) fn openai_event_error(event: &impl EventView) -> Option<OpenAiErrorInfo> {
    if event.is_done_marker() || !may_be_error(event) {
        return None;
    }
    let json: Value = match serde_json::from_slice(event.data()) {
        Ok(json) => json,
        Err(_) if event.name() == Some("error") => {
            return Some(OpenAiErrorInfo::raw(event.data()));
        }
        Err(_) => return None,
    };
    let has_error = match json.get("error") {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    };
    let is_error =
        has_error || json.get("object").and_then(Value::as_str) == Some("error") || event.name() == Some("error");
    is_error.then(|| OpenAiErrorInfo::from_json(&json))
}

/// The first event of a 2xx stream from an OpenAI-compatible upstream: `Some` when it is really an error.
pub fn openai_stream_event_error(event: &impl EventView) -> Option<StreamStartError> {
    let info = openai_event_error(event)?;
    let status = info.implied_status();
    Some(StreamStartError {
        upstream: Protocol::OpenAi,
        status,
        body: info.to_openai_body(status),
    })
}

/// Whether an event from an Anthropic stream is an error event; returns its (type, message).
pub(crate) fn anthropic_event_error(event: &impl EventView) -> Option<(String, String)> {
    if !may_be_error(event) {
        return None;
    }
    let json: Option<Value> = serde_json::from_slice(event.data()).ok();
    let typed_error = json.as_ref().and_then(|j| j.get("type")).and_then(Value::as_str) == Some("error");
    if event.name() != Some("error") && !typed_error {
        return None;
    }
    let Some(json) = json else {
        return Some(("api_error".into(), raw_prefix(event.data())));
    };
    let error = json.get("error").unwrap_or(&json);
    let field = |key| error.get(key).and_then(Value::as_str).unwrap_or("");
    let kind = match field("type") {
        "" | "error" => "api_error",
        kind => kind,
    };
    Some((kind.to_owned(), field("message").to_owned()))
}

/// The first event of a 2xx stream from an Anthropic upstream: `Some` when it is an `error` event.
pub fn anthropic_stream_event_error(event: &impl EventView) -> Option<StreamStartError> {
    let (kind, message) = anthropic_event_error(event)?;
    let request_id: Option<String> = serde_json::from_slice::<Value>(event.data())
        .ok()
        .and_then(|j| j.get("request_id")?.as_str().map(str::to_owned));
    Some(StreamStartError {
        upstream: Protocol::Anthropic,
        status: anthropic_status_for_type(&kind),
        body: anthropic::error_body(&kind, &message, request_id.as_deref()),
    })
}

/// The HTTP status Anthropic uses for an error type (inverse of `anthropic::error_type_for_status`).
fn anthropic_status_for_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn raw_prefix(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(RAW_BODY_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    scrub_secrets(text[..end].trim()).into_owned()
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

/// Hides URLs and API keys in upstream messages (§4.2: never leak upstream credentials or URLs). OpenAI's
/// own 401 message, for one, quotes part of the key and a URL.
fn scrub_secrets(message: &str) -> Cow<'_, str> {
    let secret = |word: &str| {
        let w = word.trim_start_matches(['(', '"', '\'', '<', '[']);
        w.starts_with("http://")
            || w.starts_with("https://")
            || w.starts_with("sk-")
            || w.starts_with("sk_")
            || w.starts_with("Bearer")
    };
    if !message.split_whitespace().any(secret) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len());
    let mut after_bearer = false;
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_start_matches(['(', '"', '\'', '<', '[']);
        if after_bearer || (secret(word) && !bare.starts_with("Bearer")) {
            let trailing: String = word
                .chars()
                .rev()
                .take_while(|c| matches!(c, '.' | ',' | ')' | '"' | '\'' | '>' | ']'))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str("[redacted]");
            out.push_str(&trailing);
            after_bearer = false;
        } else {
            after_bearer = bare.starts_with("Bearer");
            out.push_str(word);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn oai_body(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
        json!({"error":{"message":message,"type":kind,"param":null,"code":code}})
            .to_string()
            .into_bytes()
    }

    fn ant_fields(err: &ClientError) -> (u16, String, String) {
        let v: Value = serde_json::from_slice(&err.body).unwrap();
        assert_eq!(v["type"], "error");
        (
            err.status,
            v["error"]["type"].as_str().unwrap().to_owned(),
            v["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    /// Every row of §4.2.
    #[test]
    fn openai_errors_to_anthropic_table() {
        let rows: &[(u16, &[u8], u16, &str)] = &[
            (
                400,
                &oai_body("bad param", "invalid_request_error", None),
                400,
                "invalid_request_error",
            ),
            (
                422,
                br#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#,
                400,
                "invalid_request_error",
            ),
            (
                401,
                &oai_body("no key", "invalid_request_error", Some("invalid_api_key")),
                401,
                "authentication_error",
            ),
            (
                402,
                br#"{"error":{"message":"Insufficient credits","code":402}}"#,
                402,
                "billing_error",
            ),
            (
                429,
                &oai_body("quota", "insufficient_quota", Some("insufficient_quota")),
                402,
                "billing_error",
            ),
            (
                403,
                &oai_body("denied", "permission_error", None),
                403,
                "permission_error",
            ),
            (
                404,
                &oai_body("no model", "invalid_request_error", Some("model_not_found")),
                404,
                "not_found_error",
            ),
            (408, b"", 504, "timeout_error"),
            (
                504,
                &oai_body("gateway timeout", "server_error", None),
                504,
                "timeout_error",
            ),
            (
                409,
                &oai_body("conflict", "invalid_request_error", None),
                409,
                "invalid_request_error",
            ),
            (
                413,
                &oai_body("too big", "invalid_request_error", None),
                413,
                "request_too_large",
            ),
            (
                429,
                &oai_body("slow down", "requests", Some("rate_limit_exceeded")),
                429,
                "rate_limit_error",
            ),
            (
                503,
                &oai_body("unavailable", "server_error", None),
                529,
                "overloaded_error",
            ),
            (
                500,
                &oai_body("The engine is currently overloaded", "server_error", None),
                529,
                "overloaded_error",
            ),
            (
                502,
                &oai_body("busy", "server_error", Some("server_is_overloaded")),
                529,
                "overloaded_error",
            ),
            (500, &oai_body("internal", "server_error", None), 500, "api_error"),
            (502, &oai_body("bad gateway", "server_error", None), 502, "api_error"),
            (520, b"", 520, "api_error"),
            (418, b"", 418, "invalid_request_error"),
        ];
        for (status, body, want_status, want_type) in rows {
            let err = openai_error_to_anthropic(*status, body, None);
            let (got_status, got_type, _) = ant_fields(&err);
            assert_eq!(
                (got_status, got_type.as_str()),
                (*want_status, *want_type),
                "{status} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn openai_error_messages_from_various_hosts() {
        let cases: &[(&[u8], &str)] = &[
            (&oai_body("OpenAI says", "x", None), "OpenAI says"),
            (br#"{"error":"plain string"}"#, "plain string"),
            (
                br#"{"object":"error","message":"vLLM says","type":"BadRequestError","code":400}"#,
                "vLLM says",
            ),
            (br#"{"detail":"FastAPI says"}"#, "FastAPI says"),
            (br#"{"message":"bare message"}"#, "bare message"),
        ];
        for (body, want) in cases {
            let (_, _, message) = ant_fields(&openai_error_to_anthropic(400, body, None));
            assert_eq!(message, *want);
        }
    }

    #[test]
    fn request_id_goes_into_the_anthropic_body() {
        let err = openai_error_to_anthropic(500, &oai_body("x", "server_error", None), Some("req_123"));
        let v: Value = serde_json::from_slice(&err.body).unwrap();
        assert_eq!(v["request_id"], "req_123");
        assert!(err.headers.is_empty());
    }

    #[test]
    fn non_json_body_becomes_the_first_500_bytes() {
        let body = format!("<html>{}</html>", "é".repeat(400));
        let (status, kind, message) = ant_fields(&openai_error_to_anthropic(502, body.as_bytes(), None));
        assert_eq!((status, kind.as_str()), (502, "api_error"));
        assert!(message.len() <= 500 && message.starts_with("<html>ééé"));
        let (_, _, empty) = ant_fields(&openai_error_to_anthropic(503, b"", None));
        assert_eq!(empty, "upstream returned HTTP 529");
    }

    #[test]
    fn context_overflow_is_worded_like_anthropic() {
        let cases: &[(&[u8], &str)] = &[
            (
                &oai_body(
                    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                    Some("context_length_exceeded"),
                ),
                "prompt is too long: 130532 tokens > 128000 maximum",
            ),
            (
                br#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 33000 tokens (32000 in the messages, 1000 in the completion).","type":"BadRequestError","code":400}"#,
                "prompt is too long: 33000 tokens > 32768 maximum",
            ),
            (
                &oai_body("Input exceeds the context window", "invalid_request_error", Some("context_length_exceeded")),
                "prompt is too long: Input exceeds the context window",
            ),
        ];
        for (body, want) in cases {
            let (status, kind, message) = ant_fields(&openai_error_to_anthropic(400, body, None));
            assert_eq!(
                (status, kind.as_str(), message.as_str()),
                (400, "invalid_request_error", *want)
            );
        }
    }

    #[test]
    fn upstream_keys_and_urls_are_not_leaked() {
        let body = oai_body(
            "Incorrect API key provided: sk-proj-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
        let (_, _, message) = ant_fields(&openai_error_to_anthropic(401, &body, None));
        assert_eq!(
            message,
            "Incorrect API key provided: [redacted]. You can find your API key at [redacted]."
        );
        assert!(!scrub_secrets("Authorization: Bearer abc.def failed").contains("abc.def"));
        assert_eq!(scrub_secrets("nothing secret"), "nothing secret");
    }

    fn oai_fields(err: &ClientError) -> (u16, String, Value) {
        let v: Value = serde_json::from_slice(&err.body).unwrap();
        assert!(v["error"]["message"].is_string());
        assert_eq!(v["error"]["param"], Value::Null);
        (
            err.status,
            v["error"]["type"].as_str().unwrap().to_owned(),
            v["error"]["code"].clone(),
        )
    }

    fn ant_body(kind: &str, message: &str) -> Vec<u8> {
        anthropic::error_body(kind, message, Some("req_1"))
    }

    /// Every row of §4.3.
    #[test]
    fn anthropic_errors_to_openai_table() {
        let rows: &[(u16, &str, &str, u16, &str, Value)] = &[
            (
                400,
                "invalid_request_error",
                "max_tokens: too large",
                400,
                "invalid_request_error",
                Value::Null,
            ),
            (
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
                400,
                "invalid_request_error",
                json!("context_length_exceeded"),
            ),
            (
                401,
                "authentication_error",
                "invalid x-api-key",
                401,
                "invalid_request_error",
                json!("invalid_api_key"),
            ),
            (
                402,
                "billing_error",
                "credit balance too low",
                429,
                "insufficient_quota",
                json!("insufficient_quota"),
            ),
            (
                403,
                "permission_error",
                "no access",
                403,
                "permission_error",
                Value::Null,
            ),
            (
                404,
                "not_found_error",
                "model: claude-nope",
                404,
                "invalid_request_error",
                json!("model_not_found"),
            ),
            (
                404,
                "not_found_error",
                "file not found",
                404,
                "invalid_request_error",
                Value::Null,
            ),
            (
                413,
                "request_too_large",
                "too large",
                413,
                "invalid_request_error",
                json!("request_too_large"),
            ),
            (
                429,
                "rate_limit_error",
                "slow down",
                429,
                "rate_limit_error",
                json!("rate_limit_exceeded"),
            ),
            (500, "api_error", "internal", 500, "server_error", Value::Null),
            (504, "timeout_error", "timed out", 504, "server_error", json!("timeout")),
            (
                529,
                "overloaded_error",
                "Overloaded",
                503,
                "service_unavailable_error",
                json!("server_is_overloaded"),
            ),
        ];
        for (status, kind, message, want_status, want_type, want_code) in rows {
            let err = anthropic_error_to_openai(*status, &ant_body(kind, message));
            assert_eq!(
                oai_fields(&err),
                (*want_status, want_type.to_string(), want_code.clone()),
                "{status} {kind}"
            );
            let retry = err.headers.iter().find(|(h, _)| *h == "x-should-retry");
            assert_eq!(retry.is_some(), *kind == "billing_error", "{kind}");
        }
    }

    #[test]
    fn billing_forbids_retries_of_its_429() {
        let err = anthropic_error_to_openai(402, &ant_body("billing_error", "pay up"));
        assert_eq!(err.headers, vec![("x-should-retry", "false".to_owned())]);
    }

    #[test]
    fn anthropic_status_is_kept_where_the_table_allows() {
        let err = anthropic_error_to_openai(409, &ant_body("invalid_request_error", "conflict"));
        assert_eq!(err.status, 409);
        let err = anthropic_error_to_openai(502, &ant_body("api_error", "bad gateway"));
        assert_eq!(oai_fields(&err).0, 502);
        // No recognisable body: the type follows the status.
        let err = anthropic_error_to_openai(529, b"upstream overloaded");
        let (status, kind, code) = oai_fields(&err);
        assert_eq!(
            (status, kind.as_str(), code),
            (503, "service_unavailable_error", json!("server_is_overloaded"))
        );
        let err = anthropic_error_to_openai(401, b"");
        assert_eq!(oai_fields(&err).2, json!("invalid_api_key"));
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn first_event_errors_from_openai_streams() {
        let ok = event(
            None,
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}],"error":null}"#,
        );
        assert!(openai_stream_event_error(&ok).is_none());
        assert!(openai_stream_event_error(&event(None, "[DONE]")).is_none());

        let quota = event(
            None,
            r#"{"error":{"message":"You exceeded your quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        let err = openai_stream_event_error(&quota).unwrap();
        assert_eq!((err.upstream, err.status), (Protocol::OpenAi, 429));
        let ant = err.to_client_error(Protocol::Anthropic, Some("req_9"), None);
        assert_eq!(ant_fields(&ant).0, 402);
        let same = err.to_client_error(Protocol::OpenAi, None, None);
        assert_eq!(oai_fields(&same).0, 429);

        let vllm = event(
            None,
            r#"{"object":"error","message":"boom","type":"InternalServerError","code":500}"#,
        );
        assert_eq!(openai_stream_event_error(&vllm).unwrap().status, 500);
        let openrouter = event(None, r#"{"error":{"code":502,"message":"Provider returned error"}}"#);
        assert_eq!(openai_stream_event_error(&openrouter).unwrap().status, 502);
        let overloaded = event(
            None,
            r#"{"error":{"message":"Server overloaded","type":"server_error"}}"#,
        );
        let err = openai_stream_event_error(&overloaded).unwrap();
        assert_eq!(ant_fields(&err.to_client_error(Protocol::Anthropic, None, None)).0, 529);
        let named = event(Some("error"), "not json at all");
        assert!(openai_stream_event_error(&named).is_some());
    }

    #[test]
    fn first_event_errors_from_anthropic_streams() {
        let start = event(Some("message_start"), r#"{"type":"message_start","message":{}}"#);
        assert!(anthropic_stream_event_error(&start).is_none());

        let overloaded = event(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_7"}"#,
        );
        let err = anthropic_stream_event_error(&overloaded).unwrap();
        assert_eq!((err.upstream, err.status), (Protocol::Anthropic, 529));
        let relayed = err.to_client_error(Protocol::Anthropic, None, None);
        let v: Value = serde_json::from_slice(&relayed.body).unwrap();
        assert_eq!(v["request_id"], "req_7");
        assert_eq!(relayed.status, 529);
        let converted = err.to_client_error(Protocol::OpenAi, None, None);
        assert_eq!(oai_fields(&converted).0, 503);

        // Without an event: line the data's type still says error.
        let unnamed = event(
            None,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
        );
        assert_eq!(anthropic_stream_event_error(&unnamed).unwrap().status, 429);
    }

    #[test]
    fn google_errors_for_other_clients_and_theirs_for_gemini_clients() {
        let google = br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"51.2s"}]}}]"#;
        let error = StreamStartError {
            upstream: Protocol::Gemini,
            status: 429,
            body: google.to_vec(),
        };
        let oai = error.to_client_error(Protocol::OpenAi, None, None);
        assert_eq!(oai.status, 429);
        assert_eq!(oai.headers, [("retry-after", "52".to_owned())]);
        let body: Value = serde_json::from_slice(&oai.body).unwrap();
        assert_eq!(body["error"]["message"], "Quota exceeded");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let busy = StreamStartError {
            upstream: Protocol::Gemini,
            status: 503,
            body: br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#.to_vec(),
        };
        let ant = busy.to_client_error(Protocol::Anthropic, Some("req_1"), None);
        assert_eq!(ant.status, 529);
        let body: Value = serde_json::from_slice(&ant.body).unwrap();
        assert_eq!(body["error"]["type"], "overloaded_error");

        let from_anthropic = StreamStartError {
            upstream: Protocol::Anthropic,
            status: 413,
            body: br#"{"type":"error","error":{"type":"request_too_large","message":"too big"}}"#.to_vec(),
        };
        let gem = from_anthropic.to_client_error(Protocol::Gemini, None, None);
        assert_eq!(gem.status, 400);
        let body: Value = serde_json::from_slice(&gem.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error":{"code":400,"message":"too big","status":"INVALID_ARGUMENT"}})
        );
        let limited = StreamStartError {
            upstream: Protocol::OpenAi,
            status: 429,
            body: br#"{"error":{"message":"Slow down.","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#
                .to_vec(),
        };
        let body: Value =
            serde_json::from_slice(&limited.to_client_error(Protocol::Gemini, None, Some(7)).body).unwrap();
        assert_eq!(body["error"]["message"], "Slow down. Please retry in 7s.");
        assert_eq!(body["error"]["details"][0]["retryDelay"], "7s");
    }
}
