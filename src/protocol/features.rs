//! What a request asks for, read from its raw body without parsing it: the facts routing rules test
//! (`has: image`, `prompt_tokens: ">60000"`, ...). Only computed when a rule needs them.
//!
//! Two cheap reads, each only when a rule needs it:
//! - the top-level fields, found by a structural scan that skips their values (tools, stream, thinking,
//!   structured output);
//! - a substring search for the marker keys and `type` values of images and tool results, anywhere in the
//!   body. A marker counts only as JSON structure: inside a string every quote is escaped, so a quote preceded
//!   by a backslash is text a user wrote, not a key.

use std::ops::BitOr;

use memchr::memmem;

use super::Protocol;
use super::raw_body::visit_top_level;

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

    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
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

/// The features among `wanted` that `body` (a `protocol` request) has. `route_stream`: the route asked for a
/// stream (Gemini says so in its path).
pub fn read(protocol: Protocol, body: &[u8], route_stream: bool, wanted: Features) -> Features {
    let mut found = Features::NONE;
    let top_level = Features::TOOLS | Features::THINKING | Features::STREAM | Features::JSON_SCHEMA;
    if wanted.intersects(top_level) {
        visit_top_level(body, |key, value| {
            found = found | top_level_feature(protocol, key, value)
        });
    }
    if route_stream {
        found = found | Features::STREAM;
    }
    let markers = markers(protocol);
    if wanted.contains(Features::IMAGE) && markers.image.iter().any(|m| m.found_in(body)) {
        found = found | Features::IMAGE;
    }
    if wanted.contains(Features::TOOL_RESULTS) && markers.tool_results.iter().any(|m| m.found_in(body)) {
        found = found | Features::TOOL_RESULTS;
    }
    Features(found.0 & wanted.0)
}

/// What one top-level field says, in `protocol`'s vocabulary.
fn top_level_feature(protocol: Protocol, key: &[u8], value: &[u8]) -> Features {
    let has = |needle: &str| memmem::find(value, needle.as_bytes()).is_some();
    let non_empty_list = value.starts_with(b"[") && value[1..].iter().any(|b| !b.is_ascii_whitespace() && *b != b']');
    match (protocol, key) {
        (_, b"stream") if value == b"true" => Features::STREAM,
        (Protocol::OpenAi, b"tools" | b"functions") if non_empty_list => Features::TOOLS,
        (_, b"tools") if non_empty_list => Features::TOOLS,
        // OpenAI's effort, OpenRouter's `reasoning`, GLM's and DeepSeek's `thinking`, Qwen's switch.
        (Protocol::OpenAi, b"reasoning_effort") if !matches!(value, b"null" | b"\"none\"") => Features::THINKING,
        (Protocol::OpenAi, b"reasoning") if value.starts_with(b"{") && !has("\"none\"") => Features::THINKING,
        (Protocol::OpenAi, b"thinking") if has("\"enabled\"") => Features::THINKING,
        (Protocol::OpenAi, b"enable_thinking") if value == b"true" => Features::THINKING,
        (Protocol::OpenAi, b"response_format") if has("\"json_schema\"") => Features::JSON_SCHEMA,
        (Protocol::Anthropic, b"thinking") if has("\"enabled\"") || has("\"adaptive\"") => Features::THINKING,
        (Protocol::Anthropic, b"output_format" | b"output_config") if has("\"json_schema\"") => Features::JSON_SCHEMA,
        (Protocol::Responses, b"reasoning") if value.starts_with(b"{") && !has("\"none\"") => Features::THINKING,
        (Protocol::Responses, b"text") if has("\"json_schema\"") => Features::JSON_SCHEMA,
        (Protocol::Gemini, b"generationConfig" | b"generation_config") => {
            let mut features = Features::NONE;
            let budget_zero = has("\"thinkingBudget\":0") || has("\"thinking_budget\":0");
            if (has("\"thinkingConfig\"") || has("\"thinking_config\"")) && !budget_zero {
                features = features | Features::THINKING;
            }
            if [
                "responseSchema",
                "responseJsonSchema",
                "response_schema",
                "response_json_schema",
            ]
            .iter()
            .any(|k| has(&format!("\"{k}\"")))
            {
                features = features | Features::JSON_SCHEMA;
            }
            features
        }
        _ => Features::NONE,
    }
}

/// A key or a string value that only a feature's JSON has.
enum Marker {
    /// `"name":` anywhere (written with its quotes).
    Key(&'static str),
    /// `"key": "text…`: a string value of `key` that starts with this text (a `type` with its closing
    /// quote, a MIME type).
    Value(&'static str, &'static str),
}

struct Markers {
    image: &'static [Marker],
    tool_results: &'static [Marker],
}

fn markers(protocol: Protocol) -> &'static Markers {
    match protocol {
        Protocol::OpenAi => &Markers {
            image: &[Marker::Key("\"image_url\"")],
            tool_results: &[Marker::Key("\"tool_call_id\"")],
        },
        Protocol::Anthropic => &Markers {
            image: &[Marker::Value("\"type\"", "\"image\"")],
            tool_results: &[Marker::Key("\"tool_use_id\"")],
        },
        Protocol::Responses => &Markers {
            image: &[Marker::Value("\"type\"", "\"input_image\"")],
            tool_results: &[
                Marker::Value("\"type\"", "\"function_call_output\""),
                Marker::Value("\"type\"", "\"custom_tool_call_output\""),
            ],
        },
        Protocol::Gemini => &Markers {
            image: &[
                Marker::Value("\"mimeType\"", "\"image/"),
                Marker::Value("\"mime_type\"", "\"image/"),
            ],
            tool_results: &[
                Marker::Key("\"functionResponse\""),
                Marker::Key("\"function_response\""),
            ],
        },
    }
}

impl Marker {
    fn found_in(&self, body: &[u8]) -> bool {
        let quoted = match self {
            Marker::Key(text) | Marker::Value(_, text) => text.as_bytes(),
        };
        memmem::find_iter(body, quoted).any(|at| {
            let before = body[..at].trim_ascii_end();
            match self {
                // A key follows `{` or `,` and precedes `:`; a quote inside a string follows a backslash.
                Marker::Key(_) => {
                    let after = body[at + quoted.len()..].trim_ascii_start();
                    matches!(before.last(), Some(b'{' | b',')) && after.first() == Some(&b':')
                }
                Marker::Value(key, _) => before
                    .strip_suffix(b":")
                    .is_some_and(|before| before.trim_ascii_end().ends_with(key.as_bytes())),
            }
        })
    }
}

/// The prompt-size estimate rules compare against: the body's bytes, less inline base64 data (images,
/// files, audio), over four. No tokenizer runs on the request path; four bytes per token is close for
/// English prose and code with current tokenizers, and the JSON around the text adds a little. Text in
/// Chinese, Japanese or Korean has fewer bytes per token (about three), so it is under-counted by a quarter.
pub fn estimated_prompt_tokens(body: &[u8]) -> u64 {
    let mut inline = 0usize;
    // Data URLs (`data:image/png;base64,…`) and bare base64 fields (`"data": "…"`), which are long strings
    // without escapes: each is measured to its closing quote.
    for at in memmem::find_iter(body, b";base64,") {
        let start = at + b";base64,".len();
        inline += memchr::memchr(b'"', &body[start..]).unwrap_or(body.len() - start);
    }
    for at in memmem::find_iter(body, b"\"data\"") {
        let rest = &body[at + b"\"data\"".len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let Some(open) = rest[colon + 1..].iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        let value = &rest[colon + 1 + open..];
        if value.first() != Some(&b'"') {
            continue;
        }
        let length = memchr::memchr(b'"', &value[1..]).unwrap_or(value.len() - 1);
        // Short `data` strings are text someone wrote, not a payload.
        if length >= 256 && !value[1..1 + length].contains(&b'\\') {
            inline += length;
        }
    }
    (body.len().saturating_sub(inline) / 4) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(protocol: Protocol, body: &str) -> Vec<&'static str> {
        read(protocol, body.as_bytes(), false, Features(0x3f)).names().collect()
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
        let streamed = read(Protocol::Gemini, b"{\"contents\":[]}", true, Features::STREAM);
        assert_eq!(streamed, Features::STREAM);
        let off = r#"{"generationConfig":{"thinkingConfig":{"thinkingBudget":0}},"contents":[]}"#;
        assert!(all(Protocol::Gemini, off).is_empty());
    }

    #[test]
    fn only_wanted_features_are_reported() {
        let body = br#"{"stream":true,"tools":[{"name":"f"}],"messages":[]}"#;
        assert_eq!(read(Protocol::Anthropic, body, false, Features::TOOLS), Features::TOOLS);
        assert_eq!(read(Protocol::Anthropic, body, false, Features::IMAGE), Features::NONE);
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
