//! Usage and the first content of a Chat Completions answer relayed as the upstream wrote it: a byte scan
//! for the few keys that matter, and a decode of the `usage` object alone. The relay counts tokens and time
//! to first token without parsing the events it passes through.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::response::{ChatUsage, CompletionDetails, PromptDetails};
use crate::protocol::hub::Usage;
use crate::protocol::json::{count_of, has_non_empty, key_finder, value_of_last_key};
use crate::protocol::sse::EventView;

// Built once: making a searcher costs more than running it over an event.
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""usage""#));
static CONTENT: LazyLock<[Finder<'static>; 4]> = LazyLock::new(|| {
    [
        key_finder(br#""content""#),
        key_finder(br#""tool_calls""#),
        key_finder(br#""reasoning_content""#),
        key_finder(br#""reasoning""#),
    ]
});

/// The `usage` of a whole `chat.completion`.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key(body, &USAGE, read_usage).map(|usage: ChatUsage| usage.to_hub())
}

/// The usage object as serde reads it into [`ChatUsage`], for the usual shapes; `None` hands it to serde.
fn read_usage(json: &[u8]) -> Option<ChatUsage> {
    static KEYS: LazyLock<[Finder<'static>; 6]> = LazyLock::new(|| {
        [
            &br#""prompt_tokens""#[..],
            br#""completion_tokens""#,
            br#""prompt_cache_hit_tokens""#,
            br#""cached_tokens""#,
            br#""cache_write_tokens""#,
            br#""reasoning_tokens""#,
        ]
        .map(key_finder)
    });
    let [prompt, completion, hit, cached, cache_write, reasoning] = &*KEYS;
    let (cached, cache_write) = (count_of(json, cached)?, count_of(json, cache_write)?);
    let reasoning = count_of(json, reasoning)?;
    Some(ChatUsage {
        prompt_tokens: count_of(json, prompt)?.unwrap_or(0),
        completion_tokens: count_of(json, completion)?.unwrap_or(0),
        // DeepSeek's figure only counts when the details have none (`to_hub`): no search otherwise.
        prompt_cache_hit_tokens: match cached {
            None => count_of(json, hit)?,
            Some(_) => None,
        },
        prompt_tokens_details: (cached.is_some() || cache_write.is_some()).then_some(PromptDetails {
            cached_tokens: cached,
            cache_write_tokens: cache_write,
        }),
        completion_tokens_details: reasoning.map(|n| CompletionDetails {
            reasoning_tokens: Some(n),
        }),
    })
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
    /// Reads one event; `true` when it carried usage.
    pub fn observe(&mut self, event: &impl EventView) -> bool {
        let data = event.data();
        if !self.content {
            // The role chunk has `"content":""`: only a non-empty delta is content.
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

    #[test]
    fn the_fast_read_agrees_with_serde() {
        for usage in [
            r#"{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"accepted_prediction_tokens":0}}"#,
            r#"{"prompt_tokens":5,"completion_tokens":1,"prompt_cache_hit_tokens":4,"prompt_tokens_details":null}"#,
            r#"{ "prompt_tokens" : 2 , "completion_tokens" : 3 , "prompt_tokens_details" : { "cache_write_tokens" : 1 } }"#,
            r#"{"prompt_tokens":1.5,"completion_tokens":1}"#,
            r#"{"prompt_tokens":null}"#,
        ] {
            let fast = read_usage(usage.as_bytes()).map(|u| u.to_hub());
            let serde = serde_json::from_str::<ChatUsage>(usage).ok().map(|u| u.to_hub());
            if fast.is_some() {
                assert_eq!(fast, serde, "{usage}");
            }
            let body = format!(r#"{{"choices":[],"usage":{usage}}}"#);
            assert_eq!(answer_usage(body.as_bytes()), serde, "{usage}");
        }
    }
}
