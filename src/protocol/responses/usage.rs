//! Usage and the first content of a Responses API answer relayed as the upstream wrote it: the usage is in
//! the terminal event's `response` (`response.completed`, `.incomplete`, `.failed`), content starts with the
//! first `*.delta` event (output text, reasoning, refusal or function-call arguments).

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::response::{InputDetails, OutputDetails, UpstreamUsage};
use crate::protocol::hub::Usage;
use crate::protocol::json::{count_of, key_finder, value_of_last_key};
use crate::protocol::sse::EventView;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""usage""#));

/// The `usage` of a whole `response` object.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key(body, &USAGE, read_usage).map(|usage: UpstreamUsage| usage.to_hub())
}

/// The usage object as serde reads it into [`UpstreamUsage`], for the usual shapes; `None` hands it to
/// serde.
fn read_usage(json: &[u8]) -> Option<UpstreamUsage> {
    static KEYS: LazyLock<[Finder<'static>; 5]> = LazyLock::new(|| {
        [
            &br#""input_tokens""#[..],
            br#""output_tokens""#,
            br#""cached_tokens""#,
            br#""cache_write_tokens""#,
            br#""reasoning_tokens""#,
        ]
        .map(key_finder)
    });
    let [input, output, cached, cache_write, reasoning] = &*KEYS;
    let (cached, cache_write) = (count_of(json, cached)?, count_of(json, cache_write)?);
    let reasoning = count_of(json, reasoning)?;
    Some(UpstreamUsage {
        input_tokens: count_of(json, input)?.unwrap_or(0),
        output_tokens: count_of(json, output)?.unwrap_or(0),
        input_tokens_details: (cached.is_some() || cache_write.is_some()).then_some(InputDetails {
            cached_tokens: cached,
            cache_write_tokens: cache_write,
        }),
        output_tokens_details: reasoning.map(|n| OutputDetails {
            reasoning_tokens: Some(n),
        }),
    })
}

/// What a relayed stream has shown: the terminal event's usage and whether a delta has arrived.
#[derive(Debug, Default)]
pub struct UsageWatch {
    usage: Option<Usage>,
    content: bool,
}

impl UsageWatch {
    /// Reads one event; `true` when it carried usage.
    pub fn observe(&mut self, event: &impl EventView) -> bool {
        match super::event_type(event) {
            Some(kind) if kind.ends_with(".delta") => self.content = true,
            Some("response.completed" | "response.incomplete" | "response.failed") => {
                let usage = answer_usage(event.data());
                self.usage = usage.or(self.usage);
                return usage.is_some();
            }
            _ => {}
        }
        false
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
    use crate::protocol::sse::SseEvent;

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
