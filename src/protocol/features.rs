//! What a request asks for, read from its raw body without parsing it: the facts routing rules test
//! (`has: image`, `prompt_tokens: ">60000"`, ...). Only computed when a rule asks.
//!
//! One pass over the body finds every key: a key is the only place where a quote is followed by `:`
//! outside a string (inside one, every quote is escaped). Keys are found from the colons, a one-byte search
//! that runs at vector speed over text and base64 alike. Each key, with the first bytes of its value, is
//! looked up in the client protocol's vocabulary (`tools`, `"type": "image"`, `tool_call_id`, ...), and the
//! inline payloads met on the way (base64 images and files) are measured for the prompt estimate. Keys are
//! not told apart by depth: a nested key of the same name and shape (a `"stream": true` deep inside a tool's
//! schema) counts too, which costs a rule a rare false match and saves the parse.

use std::ops::BitOr;

use memchr::memmem;

use super::Protocol;

/// A set of request features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Features(u8);

impl Features {
    pub const NONE: Self = Self(0);
    /// An image anywhere in the conversation.
    pub const IMAGE: Self = Self(1);
    /// The request declares tools.
    pub const TOOLS: Self = Self(1 << 1);
    /// The conversation carries tool results.
    pub const TOOL_RESULTS: Self = Self(1 << 2);
    /// The client asked for reasoning (thinking, a reasoning effort).
    pub const THINKING: Self = Self(1 << 3);
    pub const STREAM: Self = Self(1 << 4);
    /// Structured output with a JSON schema.
    pub const JSON_SCHEMA: Self = Self(1 << 5);

    /// Each feature's name in the config file.
    pub const NAMES: [(&'static str, Self); 6] = [
        ("image", Self::IMAGE),
        ("tools", Self::TOOLS),
        ("tool_results", Self::TOOL_RESULTS),
        ("thinking", Self::THINKING),
        ("stream", Self::STREAM),
        ("json_schema", Self::JSON_SCHEMA),
    ];

    pub fn named(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the features in the set, in [`Features::NAMES`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(_, f)| self.contains(*f))
            .map(|(n, _)| n)
    }
}

impl BitOr for Features {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// What one pass over a request body found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub features: Features,
    /// The prompt-size estimate rules compare against: the body's bytes, less inline base64 data
    /// (images, files, audio), over four. No tokenizer runs on the request path; four bytes per token is
    /// close for English prose and code with current tokenizers, and the JSON around the text adds a
    /// little. Text in Chinese, Japanese or Korean has fewer bytes per token (about three), so it is
    /// under-counted by about a quarter.
    pub prompt_tokens: u64,
}

/// Reads `body`, a `protocol` request. `route_stream`: the route asked for a stream (Gemini says so in its
/// path).
pub fn read(protocol: Protocol, body: &[u8], route_stream: bool) -> Read {
    let mut found = Keys::default();
    let mut inline = 0usize;
    for colon in memchr::memchr_iter(b':', body) {
        // A known key's closing quote, unescaped, right before the colon.
        let Some(key) = colon
            .checked_sub(1)
            .filter(|&at| body[at] == b'"' && !escaped(body, at))
            .and_then(|at| known_key(&body[..at]))
        else {
            continue;
        };
        let value = body[colon + 1..].trim_ascii_start();
        if let (Key::Data | Key::DataUrl, Some(text)) = (key, value.strip_prefix(b"\"")) {
            // Base64 and data URLs hold no quote and no backslash: the string ends at the next quote. A short
            // `data` string is text someone wrote, not a payload.
            let payload = match key {
                Key::Data => memchr::memchr(b'"', text).filter(|&length| length >= 256),
                _ => text.starts_with(b"data:").then(|| memchr::memchr(b'"', text)).flatten(),
            };
            inline += payload.unwrap_or(0);
        }
        found.key(protocol, key, value);
    }
    let mut features = found.features();
    if route_stream {
        features = features | Features::STREAM;
    }
    Read {
        features,
        prompt_tokens: (body.len().saturating_sub(inline) / 4) as u64,
    }
}

/// The keys the scan acts on, in every protocol's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Type,
    Stream,
    Tools,
    Functions,
    ImageUrl,
    ToolCallId,
    ToolUseId,
    ReasoningEffort,
    Reasoning,
    Thinking,
    EnableThinking,
    MimeType,
    FunctionResponse,
    ResponseSchema,
    ThinkingConfig,
    ThinkingBudget,
    /// Base64 in a `data` field (Anthropic's and Gemini's inline sources, OpenAI's audio).
    Data,
    /// A field that may hold a data URL (OpenAI's `url`, the Responses API's `file_data`).
    DataUrl,
}

/// The known key that `before` (the body up to a key's closing quote) ends with. Keys are told apart by
/// their last two bytes first, so the frequent others (`role`, `content`, `model`, `text` ...) cost one
/// comparison and no search for where they start.
fn known_key(before: &[u8]) -> Option<Key> {
    let tail = before.get(before.len().checked_sub(2)?..)?;
    let candidates: &[(&[u8], Key)] = match tail {
        b"pe" => &[
            (b"type", Key::Type),
            (b"mimeType", Key::MimeType),
            (b"mime_type", Key::MimeType),
        ],
        b"am" => &[(b"stream", Key::Stream)],
        b"ls" => &[(b"tools", Key::Tools)],
        b"ns" => &[(b"functions", Key::Functions)],
        b"rl" => &[(b"image_url", Key::ImageUrl), (b"url", Key::DataUrl)],
        b"id" => &[(b"tool_call_id", Key::ToolCallId), (b"tool_use_id", Key::ToolUseId)],
        b"rt" => &[(b"reasoning_effort", Key::ReasoningEffort)],
        b"ng" => &[
            (b"reasoning", Key::Reasoning),
            (b"thinking", Key::Thinking),
            (b"enable_thinking", Key::EnableThinking),
        ],
        b"se" => &[
            (b"functionResponse", Key::FunctionResponse),
            (b"function_response", Key::FunctionResponse),
        ],
        b"ma" => &[
            (b"responseSchema", Key::ResponseSchema),
            (b"responseJsonSchema", Key::ResponseSchema),
            (b"response_schema", Key::ResponseSchema),
            (b"response_json_schema", Key::ResponseSchema),
        ],
        b"ig" => &[
            (b"thinkingConfig", Key::ThinkingConfig),
            (b"thinking_config", Key::ThinkingConfig),
        ],
        b"et" => &[
            (b"thinkingBudget", Key::ThinkingBudget),
            (b"thinking_budget", Key::ThinkingBudget),
        ],
        b"ta" => &[(b"data", Key::Data), (b"file_data", Key::DataUrl)],
        _ => return None,
    };
    candidates.iter().find_map(|&(name, key)| {
        let open = before.len().checked_sub(name.len() + 1)?;
        (before.ends_with(name) && before[open] == b'"' && !escaped(before, open)).then_some(key)
    })
}

/// Whether the byte at `at` is escaped: preceded by an odd number of backslashes.
fn escaped(body: &[u8], at: usize) -> bool {
    body[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

/// What the keys seen so far say.
#[derive(Default)]
struct Keys {
    features: Features,
    /// Gemini's `thinkingConfig`, and whether it turns thinking off (`thinkingBudget: 0`).
    thinking_config: bool,
    thinking_budget_zero: bool,
}

impl Keys {
    fn features(&self) -> Features {
        match self.thinking_config && !self.thinking_budget_zero {
            true => self.features | Features::THINKING,
            false => self.features,
        }
    }

    /// One key of a `protocol` body, and its value (from its first byte to the end of the body).
    fn key(&mut self, protocol: Protocol, key: Key, value: &[u8]) {
        use Protocol::{Anthropic, Gemini, OpenAi, Responses};
        let when = |holds: bool, feature: Features| if holds { feature } else { Features::NONE };
        let is = |text: &[u8]| is_string(value, text);
        let feature = match (key, protocol) {
            // The most frequent key (a Codex request has dozens): told apart by the value's first letter.
            (Key::Type, _) => match (protocol, value.get(1)) {
                (_, Some(b'j')) => when(is(b"json_schema"), Features::JSON_SCHEMA),
                (Anthropic, Some(b'i')) => when(is(b"image"), Features::IMAGE),
                (Responses, Some(b'i')) => when(is(b"input_image"), Features::IMAGE),
                (Responses, Some(b'f')) => when(is(b"function_call_output"), Features::TOOL_RESULTS),
                (Responses, Some(b'c')) => when(is(b"custom_tool_call_output"), Features::TOOL_RESULTS),
                _ => Features::NONE,
            },
            (Key::Stream, _) => when(value.starts_with(b"true"), Features::STREAM),
            (Key::Tools, _) | (Key::Functions, OpenAi) => when(non_empty_list(value), Features::TOOLS),
            (Key::ImageUrl, OpenAi) => Features::IMAGE,
            (Key::ToolCallId, OpenAi) | (Key::ToolUseId, Anthropic) => Features::TOOL_RESULTS,
            // OpenAI's effort, OpenRouter's `reasoning`, GLM's and DeepSeek's `thinking`, Qwen's switch.
            (Key::ReasoningEffort, OpenAi) => when(value.starts_with(b"\"") && !is(b"none"), Features::THINKING),
            (Key::Reasoning, OpenAi | Responses) => when(
                value.starts_with(b"{") && !flat_object_has(value, b"\"none\""),
                Features::THINKING,
            ),
            (Key::Thinking, OpenAi) => when(flat_object_has(value, b"\"enabled\""), Features::THINKING),
            (Key::Thinking, Anthropic) => when(
                flat_object_has(value, b"\"enabled\"") || flat_object_has(value, b"\"adaptive\""),
                Features::THINKING,
            ),
            (Key::EnableThinking, OpenAi) => when(value.starts_with(b"true"), Features::THINKING),
            (Key::MimeType, Gemini) => when(value.starts_with(b"\"image/"), Features::IMAGE),
            (Key::FunctionResponse, Gemini) => Features::TOOL_RESULTS,
            (Key::ResponseSchema, Gemini) => Features::JSON_SCHEMA,
            (Key::ThinkingConfig, Gemini) => {
                self.thinking_config = true;
                Features::NONE
            }
            (Key::ThinkingBudget, Gemini) => {
                self.thinking_budget_zero = value.starts_with(b"0") && !value.get(1).is_some_and(u8::is_ascii_digit);
                Features::NONE
            }
            _ => Features::NONE,
        };
        self.features = self.features | feature;
    }
}

/// The most output tokens a request asks for: `max_tokens` or `max_completion_tokens` (Chat Completions),
/// `max_tokens` (Messages), `max_output_tokens` (Responses), `generationConfig.maxOutputTokens` (Gemini).
/// Top-level keys only, read without parsing the body; for a client key's token reservation.
pub fn max_output_tokens(protocol: Protocol, body: &[u8]) -> Option<u64> {
    let (keys, nested): (&[&[u8]], Option<&[u8]>) = match protocol {
        Protocol::OpenAi => (&[b"max_completion_tokens", b"max_tokens"], None),
        Protocol::Anthropic => (&[b"max_tokens"], None),
        Protocol::Responses => (&[b"max_output_tokens"], None),
        Protocol::Gemini => (&[b"maxOutputTokens"], Some(b"generationConfig")),
    };
    let number = |value: &[u8]| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok();
    let mut found = None;
    super::raw_body::visit_top_level(body, |key, value| match nested {
        Some(outer) if key == outer => super::raw_body::visit_top_level(value, |key, value| {
            if keys.contains(&key) {
                found = found.or_else(|| number(value));
            }
        }),
        Some(_) => {}
        None if keys.contains(&key) => found = found.or_else(|| number(value)),
        None => {}
    });
    found
}

/// Whether `value` is the JSON string `text` (written without escapes, as every known `type` is).
fn is_string(value: &[u8], text: &[u8]) -> bool {
    value.len() >= text.len() + 2 && value[0] == b'"' && &value[1..=text.len()] == text && value[text.len() + 1] == b'"'
}

fn non_empty_list(value: &[u8]) -> bool {
    value.starts_with(b"[") && value[1..].trim_ascii_start().first() != Some(&b']')
}

/// Whether a flat object (`{"type": "enabled"}`) holds `needle` before its first closing brace.
fn flat_object_has(value: &[u8], needle: &[u8]) -> bool {
    value.starts_with(b"{")
        && memchr::memchr(b'}', value).is_some_and(|end| memmem::find(&value[..end], needle).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(protocol: Protocol, body: &str) -> Vec<&'static str> {
        read(protocol, body.as_bytes(), false).features.names().collect()
    }

    fn estimated_prompt_tokens(body: &[u8]) -> u64 {
        read(Protocol::OpenAi, body, false).prompt_tokens
    }

    #[test]
    fn the_output_a_request_asks_for() {
        let max = |protocol, body: &str| max_output_tokens(protocol, body.as_bytes());
        assert_eq!(max(Protocol::OpenAi, r#"{"model":"m","max_tokens":512}"#), Some(512));
        assert_eq!(
            max(Protocol::OpenAi, r#"{"max_completion_tokens": 64 ,"model":"m"}"#),
            Some(64)
        );
        assert_eq!(
            max(Protocol::Anthropic, r#"{"max_tokens":32000,"messages":[]}"#),
            Some(32000)
        );
        assert_eq!(max(Protocol::Responses, r#"{"max_output_tokens":100}"#), Some(100));
        assert_eq!(
            max(
                Protocol::Gemini,
                r#"{"contents":[],"generationConfig":{"temperature":1,"maxOutputTokens":77}}"#
            ),
            Some(77)
        );
        assert_eq!(max(Protocol::Gemini, r#"{"maxOutputTokens":77}"#), None);
        assert_eq!(
            max(Protocol::OpenAi, r#"{"messages":[{"max_tokens":5}]}"#),
            None,
            "top level only"
        );
        assert_eq!(max(Protocol::OpenAi, r#"{"max_tokens":null}"#), None);
    }

    #[test]
    fn chat_features() {
        let body = r#"{"model":"m","stream":true,"tools":[{"type":"function","function":{"name":"f"}}],
            "reasoning_effort":"high","response_format":{"type":"json_schema","json_schema":{"name":"x"}},
            "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
            {"role":"tool","tool_call_id":"c1","content":"ok"}]}"#;
        assert_eq!(
            all(Protocol::OpenAi, body),
            ["image", "tools", "tool_results", "thinking", "stream", "json_schema"]
        );
        let plain = r#"{"model":"m","stream":false,"tools":[],"reasoning_effort":"none","messages":[
            {"role":"user","content":"what does {\"image_url\": 1, \"tool_call_id\": 2} mean?"}]}"#;
        assert!(
            all(Protocol::OpenAi, plain).is_empty(),
            "{:?}",
            all(Protocol::OpenAi, plain)
        );
    }

    #[test]
    fn messages_features_with_python_style_spacing() {
        let body = r#"{"model": "m", "thinking": {"type": "enabled", "budget_tokens": 2048},
            "tools": [ {"name": "f", "input_schema": {}} ],
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AAAA"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}"#;
        assert_eq!(
            all(Protocol::Anthropic, body),
            ["image", "tools", "tool_results", "thinking"]
        );
        let disabled = r#"{"model":"m","thinking":{"type":"disabled"},"messages":[{"role":"user","content":"image"}]}"#;
        assert!(all(Protocol::Anthropic, disabled).is_empty());
    }

    #[test]
    fn responses_and_gemini_features() {
        let body = r#"{"model":"m","reasoning":{"effort":"medium"},"text":{"format":{"type":"json_schema","schema":{}}},
            "input":[{"type":"message","role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]},
            {"type":"function_call_output","call_id":"c","output":"ok"}]}"#;
        assert_eq!(
            all(Protocol::Responses, body),
            ["image", "tool_results", "thinking", "json_schema"]
        );
        let gemini = r#"{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]},
            {"role":"user","parts":[{"functionResponse":{"name":"f","response":{}}}]}],
            "tools":[{"functionDeclarations":[{"name":"f"}]}],
            "generationConfig":{"thinkingConfig":{"includeThoughts":true},"responseJsonSchema":{}}}"#;
        assert_eq!(
            all(Protocol::Gemini, gemini),
            ["image", "tools", "tool_results", "thinking", "json_schema"]
        );
        let streamed = read(Protocol::Gemini, b"{\"contents\":[]}", true).features;
        assert_eq!(streamed, Features::STREAM);
        let off = r#"{"generationConfig":{"thinkingConfig":{"thinkingBudget":0}},"contents":[]}"#;
        assert!(all(Protocol::Gemini, off).is_empty());
    }

    #[test]
    fn escaped_quotes_are_text_and_nested_thinking_blocks_are_not_a_setting() {
        // A thinking block replayed in history is `"thinking": "text"`, not the request's setting.
        let body = r#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"}]},
            {"role":"user","content":"a \\\"type\\\": \\\"image\\\" and a backslash \\\\"}],"stream":true}"#;
        assert_eq!(all(Protocol::Anthropic, body), ["stream"]);
    }

    #[test]
    fn keys_are_found_by_their_whole_name() {
        assert_eq!(known_key(br#"{"type"#), Some(Key::Type));
        assert_eq!(known_key(br#"{"mime_type"#), Some(Key::MimeType));
        assert_eq!(known_key(br#"{"prototype"#), None, "a longer key with a known ending");
        assert_eq!(known_key(br#"{"file_data"#), Some(Key::DataUrl));
        assert_eq!(known_key(br#"{"metadata"#), None);
        assert_eq!(known_key(br#"{"role"#), None);
        assert_eq!(known_key(br#"pe"#), None);
    }

    #[test]
    fn the_estimate_leaves_out_inline_data() {
        let text = "x".repeat(4000);
        let prompt = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let estimate = estimated_prompt_tokens(prompt.as_bytes());
        assert!((1000..1020).contains(&estimate), "{estimate}");
        let image = "A".repeat(400_000);
        let with_url = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"{text}"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}]}}"#
        );
        let estimate = estimated_prompt_tokens(with_url.as_bytes());
        assert!((1000..1040).contains(&estimate), "{estimate}");
        let with_data = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"{text}"}},{{"type":"image","source":{{"type":"base64","media_type":"image/png","data": "{image}"}}}}]}}]}}"#
        );
        let estimate = estimated_prompt_tokens(with_data.as_bytes());
        assert!((1000..1050).contains(&estimate), "{estimate}");
    }
}
