//! The OpenAI Responses API (`POST /v1/responses`): what the Codex CLI, the OpenAI Agents SDK and
//! `client.responses.create/stream` speak, following `shared/protocol-responses.md`. Clients on this route
//! reach Chat Completions upstreams through the hub (`protocol::hub`), and Responses upstreams by the raw
//! same-protocol path. Errors use the OpenAI error shape.

pub mod envelope;
pub mod request;
pub mod response;
pub mod stream;
pub mod tools;
pub mod usage;

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::protocol::json::key_finder;
use crate::protocol::sse::EventView;

/// The events that end a Responses stream.
pub fn is_terminal(event: &impl EventView) -> bool {
    matches!(
        event_type(event),
        Some("response.completed" | "response.incomplete" | "response.failed" | "error")
    )
}

/// The event's type: its `event:` line, or the `type` in its JSON for hosts that omit the line.
pub(crate) fn event_type(event: &impl EventView) -> Option<&str> {
    if let Some(name) = event.name() {
        return Some(name);
    }
    let data = event.data();
    // Built once: making a searcher costs more than running it over an event.
    static TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""type":""#));
    let at = TYPE.find(data)? + 8;
    let end = memchr::memchr(b'"', &data[at..])?;
    std::str::from_utf8(&data[at..at + end]).ok()
}

/// The error a Responses upstream reports in a stream, as `(status, OpenAI error body)`: an `error` event, or
/// `response.failed` with its `response.error`.
pub fn stream_error(event: &impl EventView) -> Option<(u16, Vec<u8>)> {
    let kind = event_type(event)?;
    if kind != "error" && kind != "response.failed" {
        return None;
    }
    let data: serde_json::Value = serde_json::from_slice(event.data()).ok()?;
    let error = match kind {
        "error" => data.get("error").unwrap_or(&data),
        _ => data.get("response")?.get("error")?,
    };
    let message = error
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("upstream error");
    let code = error.get("code").and_then(|c| c.as_str());
    let status = match code {
        Some("rate_limit_exceeded") => 429,
        Some("context_length_exceeded" | "invalid_prompt" | "invalid_request_error") => 400,
        Some("server_is_overloaded" | "slow_down") => 503,
        _ => 500,
    };
    let body = crate::protocol::openai::error_body(
        message,
        crate::protocol::openai::error_type_for_status(status),
        None,
        code,
    );
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sse::SseEvent;

    #[test]
    fn terminal_and_error_events() {
        let named = |name: &str, data: &str| SseEvent {
            event: Some(name.into()),
            data: data.into(),
        };
        assert!(is_terminal(&named("response.completed", "{}")));
        assert!(!is_terminal(&named("response.output_text.delta", "{}")));
        let unnamed = SseEvent {
            event: None,
            data: r#"{"type":"response.incomplete","response":{}}"#.into(),
        };
        assert!(is_terminal(&unnamed));
        let failed = named(
            "response.failed",
            r#"{"type":"response.failed","response":{"error":{"code":"rate_limit_exceeded","message":"slow down"}}}"#,
        );
        let (status, body) = stream_error(&failed).unwrap();
        assert_eq!(status, 429);
        assert!(String::from_utf8(body).unwrap().contains("slow down"));
        assert!(stream_error(&named("response.created", "{}")).is_none());
    }
}
