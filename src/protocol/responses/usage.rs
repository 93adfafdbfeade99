//! Usage and the first content of a Responses API answer relayed as the upstream wrote it: the usage is in
//! the terminal event's `response` (`response.completed`, `.incomplete`, `.failed`), content starts with the
//! first `*.delta` event (output text, reasoning, refusal or function-call arguments).

use std::sync::LazyLock;

use memchr::memmem::FinderRev;

use super::response::UpstreamUsage;
use crate::protocol::hub::Usage;
use crate::protocol::json::value_of_last_key;
use crate::protocol::sse::SseEvent;

static USAGE: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(br#""usage""#));

/// The `usage` of a whole `response` object.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key::<UpstreamUsage>(body, &USAGE).map(|usage| usage.to_hub())
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
