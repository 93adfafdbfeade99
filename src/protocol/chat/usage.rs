//! Usage and the first content of a Chat Completions answer relayed as the upstream wrote it: a byte scan
//! for the few keys that matter, and a decode of the `usage` object alone. The relay counts tokens and time
//! to first token without parsing the events it passes through.

use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};

use super::response::ChatUsage;
use crate::protocol::hub::Usage;
use crate::protocol::json::{has_non_empty, value_of_last_key};
use crate::protocol::sse::SseEvent;

// Built once: making a searcher costs more than running it over an event.
static USAGE: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(br#""usage""#));
static CONTENT: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
    [
        Finder::new(br#""content""#),
        Finder::new(br#""tool_calls""#),
        Finder::new(br#""reasoning_content""#),
        Finder::new(br#""reasoning""#),
    ]
});

/// The `usage` of a whole `chat.completion`.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key::<ChatUsage>(body, &USAGE).map(|usage| usage.to_hub())
}

/// What a relayed stream has shown: the usage chunk (sent when the client asked for
/// `stream_options.include_usage`; some hosts send usage on every chunk, the last one counts) and whether a
/// content delta has arrived.
#[derive(Debug, Default)]
pub struct UsageWatch {
    usage: Option<Usage>,
    content: bool,
}

impl UsageWatch {
    pub fn observe(&mut self, event: &SseEvent) {
        let data = event.data.as_bytes();
        if !self.content {
            // The role chunk has `"content":""`: only a non-empty delta is content.
            self.content = CONTENT.iter().any(|key| has_non_empty(data, key));
        }
        if let Some(usage) = value_of_last_key::<ChatUsage>(data, &USAGE) {
            self.usage = Some(usage.to_hub());
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

    fn event(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn the_usage_chunk_and_the_first_content_delta_are_seen() {
        let mut watch = UsageWatch::default();
        watch.observe(&event(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}"#,
        ));
        assert!(!watch.content_started() && watch.usage().is_none());
        watch.observe(&event(
            r#"{"choices":[{"index":0,"delta":{"content":"say \"usage\": 3"}}]}"#,
        ));
        assert!(watch.content_started() && watch.usage().is_none());
        watch.observe(&event(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,
               "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        ));
        let usage = watch.usage().unwrap();
        assert_eq!(
            (usage.input, usage.cached, usage.output, usage.reasoning),
            (12, 4, 5, 2)
        );
    }

    #[test]
    fn a_tool_call_delta_is_content() {
        let mut watch = UsageWatch::default();
        watch.observe(&event(
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
        ));
        assert!(watch.content_started());
    }

    #[test]
    fn whole_answer_usage() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"{\"usage\":1}"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let usage = answer_usage(body).unwrap();
        assert_eq!((usage.input, usage.output), (7, 3));
        assert!(answer_usage(br#"{"choices":[]}"#).is_none());
    }
}
