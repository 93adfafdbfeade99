//! Usage and the first content of an Anthropic Messages answer relayed as the upstream wrote it. A stream
//! reports usage twice: `message_start` (input and cache counts, a first output count) and `message_delta`
//! (the final output count, sometimes corrected input counts); only those two events are decoded, and only
//! their `usage` object.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::response::{AnthropicUsage, OutputDetails};
use crate::protocol::hub::Usage;
use crate::protocol::json::{count_of, key_finder, value_of_last_key};
use crate::protocol::sse::EventView;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""usage""#));

/// The `usage` of a whole `message`.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    wire_usage(body).map(AnthropicUsage::to_hub)
}

fn wire_usage(json: &[u8]) -> Option<AnthropicUsage> {
    value_of_last_key(json, &USAGE, read_usage)
}

/// The usage object as serde reads it into [`AnthropicUsage`], for the usual shapes; `None` hands it to
/// serde.
fn read_usage(json: &[u8]) -> Option<AnthropicUsage> {
    static KEYS: LazyLock<[Finder<'static>; 5]> = LazyLock::new(|| {
        [
            &br#""input_tokens""#[..],
            br#""output_tokens""#,
            br#""cache_read_input_tokens""#,
            br#""cache_creation_input_tokens""#,
            br#""thinking_tokens""#,
        ]
        .map(key_finder)
    });
    let [input, output, cache_read, cache_creation, thinking] = &*KEYS;
    Some(AnthropicUsage {
        input_tokens: count_of(json, input)?,
        output_tokens: count_of(json, output)?,
        cache_read_input_tokens: count_of(json, cache_read)?,
        cache_creation_input_tokens: count_of(json, cache_creation)?,
        output_tokens_details: count_of(json, thinking)?.map(|n| OutputDetails {
            thinking_tokens: Some(n),
        }),
    })
}

/// What a relayed stream has shown: the usage so far and whether a content delta has arrived.
#[derive(Default)]
pub struct UsageWatch {
    usage: Option<AnthropicUsage>,
    content: bool,
}

impl UsageWatch {
    /// Reads one event; `true` when it carried usage.
    pub fn observe(&mut self, event: &impl EventView) -> bool {
        match event.name() {
            Some("content_block_delta") => self.content = true,
            Some("message_start" | "message_delta") => {
                if let Some(later) = wire_usage(event.data()) {
                    self.usage.get_or_insert_default().merge(&later);
                    return true;
                }
            }
            _ => {}
        }
        false
    }

    pub fn usage(&self) -> Option<Usage> {
        self.usage.map(AnthropicUsage::to_hub)
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
    fn message_start_and_message_delta_make_the_usage() {
        let mut watch = UsageWatch::default();
        watch.observe(&event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":30,"cache_creation_input_tokens":5,"output_tokens":1}}}"#,
        ));
        assert!(!watch.content_started());
        watch.observe(&event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
        ));
        assert!(watch.content_started());
        watch.observe(&event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#,
        ));
        let usage = watch.usage().unwrap();
        assert_eq!(
            (usage.input, usage.cached, usage.cache_write, usage.output),
            (45, 30, 5, 42)
        );
    }

    #[test]
    fn whole_answer_usage() {
        let body = br#"{"id":"m","content":[{"type":"tool_use","input":{"usage":"x"}}],"usage":{"input_tokens":7,"output_tokens":3}}"#;
        let usage = answer_usage(body).unwrap();
        assert_eq!((usage.input, usage.output), (7, 3));
    }

    #[test]
    fn the_fast_read_agrees_with_serde() {
        for usage in [
            r#"{"input_tokens":25,"cache_creation_input_tokens":4,"cache_read_input_tokens":5,"output_tokens":13,"service_tier":"standard","server_tool_use":{"web_search_requests":1}}"#,
            r#"{"output_tokens":9,"output_tokens_details":{"thinking_tokens":4}}"#,
            r#"{"input_tokens":null,"output_tokens":2}"#,
            r#"{"input_tokens":-1}"#,
        ] {
            let fast = read_usage(usage.as_bytes()).map(AnthropicUsage::to_hub);
            let serde = serde_json::from_str::<AnthropicUsage>(usage)
                .ok()
                .map(AnthropicUsage::to_hub);
            if fast.is_some() {
                assert_eq!(fast, serde, "{usage}");
            }
            let body = format!(r#"{{"content":[],"usage":{usage}}}"#);
            assert_eq!(answer_usage(body.as_bytes()), serde, "{usage}");
        }
    }
}
