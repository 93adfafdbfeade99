//! Usage and the first content of a Gemini answer relayed as the upstream wrote it: chunks carry a running
//! `usageMetadata` (the last one counts), and content starts with the first chunk with a `text` or
//! `functionCall` part.

use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};

use super::response::UsageMetadata;
use crate::protocol::hub::Usage;
use crate::protocol::json::{has_non_empty, value_of_last_key};
use crate::protocol::sse::SseEvent;

static USAGE: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(br#""usageMetadata""#));
static CONTENT: LazyLock<[Finder<'static>; 2]> =
    LazyLock::new(|| [Finder::new(br#""text""#), Finder::new(br#""functionCall""#)]);

/// The `usageMetadata` of a whole `GenerateContentResponse`.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    value_of_last_key::<UsageMetadata>(body, &USAGE).map(UsageMetadata::to_hub)
}

/// What a relayed stream has shown: the latest usage and whether content has arrived.
#[derive(Debug, Default)]
pub struct UsageWatch {
    usage: Option<Usage>,
    content: bool,
}

impl UsageWatch {
    pub fn observe(&mut self, event: &SseEvent) {
        let data = event.data.as_bytes();
        if !self.content {
            self.content = CONTENT.iter().any(|key| has_non_empty(data, key));
        }
        self.usage = answer_usage(data).or(self.usage);
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
}
