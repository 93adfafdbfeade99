//! Usage and the first content of a Gemini answer relayed as the upstream wrote it: chunks carry a running
//! `usageMetadata` (the last one counts), and content starts with the first chunk with a `text` or
//! `functionCall` part.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::response::UsageMetadata;
use crate::protocol::hub::Usage;
use crate::protocol::json::{count_of, has_non_empty, key_finder, value_of_last_key};
use crate::protocol::sse::EventView;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""usageMetadata""#));
static CONTENT: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [key_finder(br#""text""#), key_finder(br#""functionCall""#)]);

/// The `usageMetadata` of a whole `GenerateContentResponse`.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key(body, &USAGE, read_usage).map(UsageMetadata::to_hub)
}

/// The object as serde reads it into [`UsageMetadata`], for the usual shapes; `None` hands it to serde.
fn read_usage(json: &[u8]) -> Option<UsageMetadata> {
    static KEYS: LazyLock<[Finder<'static>; 6]> = LazyLock::new(|| {
        [
            &br#""promptTokenCount""#[..],
            br#""cachedContentTokenCount""#,
            br#""candidatesTokenCount""#,
            br#""thoughtsTokenCount""#,
            br#""toolUsePromptTokenCount""#,
            br#""totalTokenCount""#,
        ]
        .map(key_finder)
    });
    let [prompt, cached, candidates, thoughts, tool_use, total] = &*KEYS;
    let count = |key| count_of(json, key).map(|n| n.unwrap_or(0));
    Some(UsageMetadata {
        prompt_token_count: count(prompt)?,
        cached_content_token_count: count(cached)?,
        candidates_token_count: count(candidates)?,
        thoughts_token_count: count(thoughts)?,
        tool_use_prompt_token_count: count(tool_use)?,
        total_token_count: count(total)?,
    })
}

/// What a relayed stream has shown: the latest usage and whether content has arrived.
#[derive(Debug, Default)]
pub struct UsageWatch {
    usage: Option<Usage>,
    content: bool,
}

impl UsageWatch {
    /// Reads one event; `true` when it carried usage.
    pub fn observe(&mut self, event: &impl EventView) -> bool {
        let data = event.data();
        if !self.content {
            self.content = CONTENT.iter().any(|key| has_non_empty(data, key));
        }
        let usage = answer_usage(data);
        self.usage = usage.or(self.usage);
        usage.is_some()
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

    #[test]
    fn the_last_usage_metadata_counts() {
        let mut watch = UsageWatch::default();
        let chunk = |data: &str| SseEvent {
            event: None,
            data: data.to_owned(),
        };
        watch.observe(&chunk(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6}}"#,
        ));
        assert!(watch.content_started());
        watch.observe(&chunk(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":" there"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":2,"candidatesTokenCount":7,"totalTokenCount":12}}"#,
        ));
        let usage = watch.usage().unwrap();
        assert_eq!((usage.input, usage.cached, usage.output), (5, 2, 7));
    }

    #[test]
    fn the_fast_read_agrees_with_serde() {
        for usage in [
            r#"{"promptTokenCount":5,"candidatesTokenCount":7,"thoughtsTokenCount":3,"totalTokenCount":15,"promptTokensDetails":[{"modality":"TEXT","tokenCount":5}]}"#,
            r#"{"promptTokenCount":5,"candidatesTokenCount":7,"thoughtsTokenCount":3,"totalTokenCount":12}"#,
            r#"{"promptTokenCount":null}"#,
        ] {
            let fast = read_usage(usage.as_bytes()).map(UsageMetadata::to_hub);
            let serde = serde_json::from_str::<UsageMetadata>(usage)
                .ok()
                .map(UsageMetadata::to_hub);
            if fast.is_some() {
                assert_eq!(fast, serde, "{usage}");
            }
            let body = format!(r#"{{"candidates":[],"usageMetadata":{usage}}}"#);
            assert_eq!(answer_usage(body.as_bytes()), serde, "{usage}");
        }
    }
}
