//! Usage and the first content of a Responses API answer relayed as the upstream wrote it: the usage is in
//! the terminal event's `response` (`response.completed`, `.incomplete`, `.failed`), content starts with the
//! first `*.delta` event (output text, reasoning, refusal or function-call arguments).

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::response::{InputDetails, OutputDetails, UpstreamUsage};
use crate::protocol::hub::Usage;
use crate::protocol::json::{read_counts, value_of_last_key};
use crate::protocol::sse::SseEvent;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""usage""#));

/// The `usage` of a whole `response` object.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key(body, &USAGE, read_usage).map(|usage: UpstreamUsage| usage.to_hub())
}

/// The counts the reader takes; any other value under one of these names is left to serde.
const KEYS: &[&[u8]] = &[
    b"input_tokens",
    b"output_tokens",
    b"cached_tokens",
    b"cache_write_tokens",
    b"reasoning_tokens",
];

/// The usage object as serde reads it into [`UpstreamUsage`], for the usual shapes; `None` hands it to
/// serde.
fn read_usage(json: &[u8]) -> Option<UpstreamUsage> {
    let mut usage = UpstreamUsage::default();
    let mut input: Option<InputDetails> = None;
    let mut output: Option<OutputDetails> = None;
    read_counts(json, KEYS, |key, n| match key {
        b"input_tokens" => usage.input_tokens = n,
        b"output_tokens" => usage.output_tokens = n,
        b"cached_tokens" => input.get_or_insert_default().cached_tokens = Some(n),
        b"cache_write_tokens" => input.get_or_insert_default().cache_write_tokens = Some(n),
        b"reasoning_tokens" => output.get_or_insert_default().reasoning_tokens = Some(n),
        _ => {}
    })?;
    usage.input_tokens_details = input;
    usage.output_tokens_details = output;
    Some(usage)
}

/// What a relayed stream has shown: the terminal event's usage and whether a delta has arrived.
#[derive(Debug, Default)]
pub struct UsageWatch {
    usage: Option<Usage>,
    content: bool,
}

impl UsageWatch {
    pub fn observe(&mut self, event: &SseEvent) {
        match super::event_type(event) {
            Some(kind) if kind.ends_with(".delta") => self.content = true,
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                self.usage = answer_usage(event.data.as_bytes()).or(self.usage);
            }
            _ => {}
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    pub fn content_started(&self) -> bool {
        self.content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.to_owned()),
            data: data.to_owned(),
        }
    }

    #[test]
    fn the_terminal_event_carries_the_usage() {
        let mut watch = UsageWatch::default();
        watch.observe(&event(
            "response.created",
            r#"{"type":"response.created","response":{"usage":null}}"#,
        ));
        assert!(!watch.content_started() && watch.usage().is_none());
        watch.observe(&event(
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","delta":"hi"}"#,
        ));
        assert!(watch.content_started());
        watch.observe(&event(
            "response.completed",
            r#"{"type":"response.completed","response":{"id":"r","output":[],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":29}}}"#,
        ));
        let usage = watch.usage().unwrap();
        assert_eq!(
            (usage.input, usage.cached, usage.output, usage.reasoning),
            (20, 8, 9, 4)
        );
    }
}
