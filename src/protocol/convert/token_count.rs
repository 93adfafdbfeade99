//! Local input-token estimate for an Anthropic Messages body (§5.2), used for `count_tokens` against
//! OpenAI-compatible upstreams and for `message_start.usage.input_tokens` on Route B streams (§3.4).
//!
//! Clients act on this number (Claude Code compacts its context by it), so it counts everything the
//! upstream will see and errs high: an undercount overflows the context window, an overcount only compacts
//! a little early.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{LazyLock, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use memchr::memmem;
use serde_json::Value;
use serde_json::value::RawValue;

use body::{Block, Body, Content, Source};
use vocabulary::Vocabulary;

mod body;
mod vocabulary;

/// Chat-format overhead per message (role markers and separators).
const PER_MESSAGE: u64 = 4;
/// Per tool definition, on top of its JSON.
const PER_TOOL: u64 = 8;
/// An image whose size is unknown; also the most any image costs, since providers downscale large images
/// (Anthropic to about 1.15 megapixels, ≈1600 tokens).
const IMAGE_TOKENS: u64 = 1600;
/// Anthropic's published cost of an image: width × height / 750.
const PIXELS_PER_IMAGE_TOKEN: u64 = 750;
const PDF_TOKENS_PER_PAGE: u64 = 1500;
/// A PDF whose pages cannot be counted cheaply.
const PDF_TOKENS: u64 = 3000;
/// Base64 characters decoded to find image dimensions: enough for PNG/GIF headers and for a JPEG's frame
/// header behind a typical EXIF block.
const IMAGE_HEADER_BASE64_CHARS: usize = 96 * 1024;

/// Texts shorter than this are encoded every time; longer ones are remembered by hash. Low: BPE costs about
/// a hundred instructions a byte of ASCII (several hundred where the regex splits the text), a memo lookup
/// a few per byte, and a conversation resends every earlier message, short ones included, on every turn.
const MEMO_MIN_BYTES: usize = 32;
/// Entries per memo generation (two generations are kept, so at most twice this many).
const MEMO_GENERATION_ENTRIES: usize = 4096;

/// Built on the first estimate: indexing the 200k-entry vocabulary takes longer than encoding a prompt.
static O200K_BASE: LazyLock<Option<Vocabulary>> = LazyLock::new(Vocabulary::o200k_base);

/// Token counts of texts seen recently. Agents resend the same system prompt, tool definitions and
/// history on every turn, and BPE costs about a hundred instructions a byte, so remembering counts turns
/// milliseconds per request into a hash of the text. It only saves work: a count is a pure function of the text.
static MEMO: LazyLock<Mutex<TokenMemo>> = LazyLock::new(|| Mutex::new(TokenMemo::default()));

/// Local input-token estimate for an Anthropic Messages (or `count_tokens`) body: o200k_base tokens of the
/// system prompt, every message's content (text, thinking, tool-call names and arguments, tool results)
/// and each tool definition's JSON; +4 per message and +8 per tool; images 1600 or `ceil(w·h/750)` when
/// the PNG/GIF/JPEG header gives the size (at most 1600); PDFs 1500 per countable page, else 3000; times
/// `factor`, rounded up. Never 0.
pub fn estimate_anthropic_input_tokens(body: &Value, factor: f64) -> u64 {
    // Read back from its text, as a body not parsed yet is: the tools and tool inputs stay raw text there.
    estimate_anthropic_input_tokens_of(body.to_string().as_bytes(), factor).unwrap_or(1)
}

/// [`estimate_anthropic_input_tokens`] of a body not parsed yet, read without a `Value` tree; `None` when
/// it is not JSON.
pub fn estimate_anthropic_input_tokens_of(body: &[u8], factor: f64) -> Option<u64> {
    crate::protocol::json::parse::<Body>(body)
        .ok()
        .map(|body| estimate(&body, factor))
}

fn estimate(body: &Body, factor: f64) -> u64 {
    let mut tokens = body.system.as_ref().map_or(0, content_tokens);
    for message in &body.messages {
        tokens += PER_MESSAGE + message.content.as_ref().map_or(0, content_tokens);
    }
    for tool in &body.tools {
        tokens += PER_TOOL + json_tokens(tool);
    }
    scale(tokens, factor).max(1)
}

/// `tokens × factor`, rounded up; a factor that is not a positive number counts as 1.
fn scale(tokens: u64, factor: f64) -> u64 {
    let factor = if factor.is_finite() && factor > 0.0 {
        factor
    } else {
        1.0
    };
    // Float to integer casts saturate, so an absurd factor cannot wrap around.
    (tokens as f64 * factor).ceil() as u64
}

fn text_tokens(text: &str) -> u64 {
    remembered(Counted::Text, text, || encode_len(text))
}

/// Tokens of a JSON value's compact text as a `Value` writes it, remembered by its raw text: an agent resends
/// the same tool definitions on every turn, and making their trees cost more than the rest of the estimate.
fn json_tokens(raw: &RawValue) -> u64 {
    remembered(Counted::Json, raw.get(), || {
        // Raw values are JSON: serde_json read them.
        serde_json::from_str::<Value>(raw.get()).map_or(0, |value| text_tokens(&value.to_string()))
    })
}

/// What a memo entry counted: a text, or the compact form of a JSON text (whose count differs from the
/// text's own when it has spaces between its tokens).
#[derive(Clone, Copy)]
enum Counted {
    Text = 0,
    Json = 1,
}

/// `count()` of `text`, from the memo when `text` was counted recently.
fn remembered(counted: Counted, text: &str, count: impl FnOnce() -> u64) -> u64 {
    if text.len() < MEMO_MIN_BYTES {
        return count();
    }
    // The hash plus the length identify the text (and the low bit of the hash what was counted, which costs
    // less than hashing it too); a collision could only skew an estimate.
    let key = (
        BuildHasherDefault::<DefaultHasher>::default().hash_one(text) ^ counted as u64,
        text.len(),
    );
    if let Some(count) = MEMO.lock().ok().and_then(|mut memo| memo.get(key)) {
        return count;
    }
    // Counted without the lock, which `count` may take itself.
    let count = count();
    if let Ok(mut memo) = MEMO.lock() {
        memo.insert(key, count);
    }
    count
}

/// A bounded memo with two generations: when the current one fills up it becomes the previous one, so
/// entries in use survive (they are promoted on lookup) and stale ones age out.
#[derive(Default)]
struct TokenMemo {
    current: HashMap<(u64, usize), u64>,
    previous: HashMap<(u64, usize), u64>,
}

impl TokenMemo {
    fn get(&mut self, key: (u64, usize)) -> Option<u64> {
        if let Some(count) = self.current.get(&key) {
            return Some(*count);
        }
        let count = self.previous.remove(&key)?;
        self.insert(key, count);
        Some(count)
    }

    fn insert(&mut self, key: (u64, usize), count: u64) {
        if self.current.len() >= MEMO_GENERATION_ENTRIES {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, count);
    }
}

fn encode_len(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match &*O200K_BASE {
        Some(vocabulary) => vocabulary.count(text),
        // Unreachable in practice (the vocabulary and its pattern are compiled in); ~3 bytes per token errs high.
        None => (text.len() as u64).div_ceil(3),
    }
}

fn content_tokens(content: &Content) -> u64 {
    match content {
        Content::Text(text) => text_tokens(text),
        Content::Blocks(blocks) => blocks.iter().map(block_tokens).sum(),
        Content::Other => 0,
    }
}

fn block_tokens(block: &Block) -> u64 {
    let content = || block.content.as_ref().map_or(0, content_tokens);
    match block.kind.get() {
        "text" => text_tokens(block.text.get()),
        "thinking" => text_tokens(block.thinking.get()),
        "tool_use" | "server_tool_use" => text_tokens(block.name.get()) + block.input.map_or(0, json_tokens),
        "tool_result" | "mid_conv_system" => content(),
        "tool_reference" => text_tokens(&format!("Tool loaded: {}", block.tool_name.get())),
        "search_result" => {
            text_tokens(block.title.get())
                + text_tokens(block.source.as_ref().map_or("", |source| source.text.get()))
                + content()
        }
        "image" => image_tokens(block.source.as_ref()),
        "document" => document_tokens(block),
        _ => 0,
    }
}

fn image_tokens(source: Option<&Source>) -> u64 {
    let Some(source) = source else {
        return IMAGE_TOKENS;
    };
    if source.kind.get() != "base64" {
        return IMAGE_TOKENS;
    }
    match image_dimensions(source.data.get()) {
        Some((width, height)) => (u64::from(width) * u64::from(height))
            .div_ceil(PIXELS_PER_IMAGE_TOKEN)
            .clamp(1, IMAGE_TOKENS),
        None => IMAGE_TOKENS,
    }
}

fn document_tokens(block: &Block) -> u64 {
    let title = text_tokens(block.title.get());
    let Some(source) = &block.source else {
        return title + PDF_TOKENS;
    };
    title
        + match source.kind.get() {
            "text" => text_tokens(source.data.get()),
            "content" => source.content.as_ref().map_or(0, content_tokens),
            "base64" => {
                pdf_page_count(source.data.get()).map_or(PDF_TOKENS, |pages| pages.saturating_mul(PDF_TOKENS_PER_PAGE))
            }
            _ => PDF_TOKENS,
        }
}

/// Width and height from the first bytes of a base64 PNG, GIF or JPEG.
fn image_dimensions(base64: &str) -> Option<(u32, u32)> {
    // A prefix whose length is a multiple of 4 decodes on its own; a short image decodes whole.
    let prefix = if base64.len() > IMAGE_HEADER_BASE64_CHARS {
        base64.get(..IMAGE_HEADER_BASE64_CHARS)?
    } else {
        base64
    };
    let bytes = STANDARD.decode(prefix.trim()).ok()?;
    png_dimensions(&bytes)
        .or_else(|| gif_dimensions(&bytes))
        .or_else(|| jpeg_dimensions(&bytes))
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..8)? != b"\x89PNG\r\n\x1a\n" || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

fn gif_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if !matches!(bytes.get(..6)?, b"GIF87a" | b"GIF89a") {
        return None;
    }
    let width = u16::from_le_bytes(bytes.get(6..8)?.try_into().ok()?);
    let height = u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?);
    Some((u32::from(width), u32::from(height)))
}

/// Walks the JPEG segments to the first start-of-frame marker, which holds the size.
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            // Markers without a length field.
            0x01 | 0xD0..=0xD7 => at += 2,
            // Start of frame (every SOFn except DHT, JPG and DAC, which share the range).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let height = be_u16(bytes, at + 5)?;
                let width = be_u16(bytes, at + 7)?;
                return Some((u32::from(width), u32::from(height)));
            }
            _ => at += 2 + usize::from(be_u16(bytes, at + 2)?),
        }
    }
}

/// Pages of a base64 PDF, counted from its uncompressed page objects, else from the page tree's `/Count`.
/// `None` when neither is visible (page objects inside compressed object streams).
fn pdf_page_count(base64: &str) -> Option<u64> {
    let bytes = STANDARD.decode(base64.trim()).ok()?;
    let mut pages = 0u64;
    for needle in [b"/Type /Page".as_slice(), b"/Type/Page".as_slice()] {
        for at in memmem::find_iter(&bytes, needle) {
            // `/Type /Pages` is the page tree, not a page.
            if bytes.get(at + needle.len()) != Some(&b's') {
                pages += 1;
            }
        }
    }
    if pages == 0 {
        pages = memmem::find_iter(&bytes, b"/Count ")
            .filter_map(|at| leading_number(bytes.get(at + 7..)?))
            .max()
            .unwrap_or(0);
    }
    (pages > 0).then_some(pages)
}

fn leading_number(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(bytes.get(..digits)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn estimate(body: Value) -> u64 {
        estimate_anthropic_input_tokens(&body, 1.0)
    }

    fn user(content: Value) -> Value {
        json!({"messages": [{"role": "user", "content": content}]})
    }

    #[test]
    fn counts_text_with_the_o200k_vocabulary() {
        // "Hello world" is two o200k_base tokens; +4 for the message.
        assert_eq!(estimate(user(json!("Hello world"))), 6);
        assert_eq!(estimate(user(json!([{"type": "text", "text": "Hello world"}]))), 6);
    }

    #[test]
    fn system_prompt_and_tools_are_counted() {
        let bare = estimate(user(json!("hi")));
        let mut with_system = user(json!("hi"));
        with_system["system"] = json!([{"type": "text", "text": "You are a careful assistant who writes Rust."}]);
        let with_system = estimate(with_system);
        assert!(with_system > bare + 5, "{with_system} vs {bare}");

        let mut with_tool = user(json!("hi"));
        let tool = json!({"name": "Bash", "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}});
        with_tool["tools"] = json!([tool]);
        let with_tool = estimate(with_tool);
        let tool_json_tokens = text_tokens(&tool.to_string());
        assert_eq!(with_tool, bare + PER_TOOL + tool_json_tokens);
    }

    #[test]
    fn tools_count_as_their_compact_json_however_they_are_written() {
        let tool = json!({"name": "Bash", "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}});
        let expected = PER_TOOL + text_tokens(&tool.to_string());
        let compact = format!(r#"{{"tools":[{tool}]}}"#);
        let spaced = r#"{"tools": [ {"name": "Bash", "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type" : "string"}}}} ]}"#;
        // Twice each: the second count comes from the memo.
        for body in [compact.as_str(), spaced, compact.as_str(), spaced] {
            assert_eq!(
                estimate_anthropic_input_tokens_of(body.as_bytes(), 1.0),
                Some(expected),
                "{body}"
            );
        }
        let call = r#"{"messages":[{"content":[{"type":"tool_use","name":"f","input":{ "b": 1, "a": [ 2 ] }}]}]}"#;
        let expected = PER_MESSAGE + text_tokens("f") + text_tokens(r#"{"b":1,"a":[2]}"#);
        assert_eq!(estimate_anthropic_input_tokens_of(call.as_bytes(), 1.0), Some(expected));
    }

    #[test]
    fn tool_calls_results_and_thinking_are_counted() {
        let base = estimate(json!({"messages": [{"role": "assistant", "content": []}]}));
        let with_call = estimate(json!({"messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me list the files first.", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls -la"}}]}]}));
        assert!(with_call >= base + 10, "{with_call}");
        let result = estimate(user(json!([{"type": "tool_result", "tool_use_id": "t1",
            "content": [{"type": "text", "text": "a.rs b.rs c.rs"}, {"type": "tool_reference", "tool_name": "Grep"}]}])));
        assert!(result > 4 + 5, "{result}");
    }

    #[test]
    fn odd_kinds_count_nothing_and_bytes_read_as_values() {
        let hello = estimate(user(json!("Hello world")));
        for (body, expected) in [
            (json!([1, 2]), 1),
            (json!({"messages": "x", "system": 7, "tools": {"a": 1}}), 1),
            // Each element of `messages` is a message, whatever it holds.
            (json!({"messages": [1, null, {"content": {"text": "x"}}]}), 12),
            (
                user(
                    json!([{"type": "text", "text": 5}, {"type": 3}, "loose", {"type": "text", "text": "Hello world"}]),
                ),
                hello,
            ),
            // The last of a repeated key counts.
            (
                json!({"messages": [{"content": "ignored ignored ignored", "content": "Hello world"}]}),
                hello,
            ),
        ] {
            let text = body.to_string();
            assert_eq!(estimate(body), expected, "{text}");
            assert_eq!(
                estimate_anthropic_input_tokens_of(text.as_bytes(), 1.0),
                Some(expected),
                "{text}"
            );
        }
        // A tool call's `null` input is counted as written; a search result's source is its text.
        let call = |input: Value| estimate(user(json!([{"type": "tool_use", "name": "f", "input": input}])));
        assert_eq!(call(Value::Null), 4 + text_tokens("f") + text_tokens("null"));
        let search = estimate(user(
            json!([{"type": "search_result", "title": "T", "source": "https://example.com/a"}]),
        ));
        assert_eq!(search, 4 + text_tokens("T") + text_tokens("https://example.com/a"));
        let escaped = br#"{"messages":[{"content":[{"type":"text","text":"Hello\u0020world"}]}]}"#;
        assert_eq!(estimate_anthropic_input_tokens_of(escaped, 1.0), Some(hello));
        assert_eq!(estimate_anthropic_input_tokens_of(b"{", 1.0), None);
    }

    #[test]
    fn never_zero_and_grows_with_content() {
        assert_eq!(estimate(json!({})), 1);
        assert_eq!(estimate(json!({"messages": []})), 1);
        let short = estimate(user(json!("one two three")));
        let long = estimate(user(json!("one two three ".repeat(100))));
        assert!(long > short * 10, "{long} vs {short}");
    }

    #[test]
    fn factor_scales_and_rounds_up() {
        let body = user(json!("Hello world"));
        assert_eq!(estimate_anthropic_input_tokens(&body, 1.0), 6);
        assert_eq!(estimate_anthropic_input_tokens(&body, 1.15), 7, "6 × 1.15 = 6.9 → 7");
        assert_eq!(estimate_anthropic_input_tokens(&body, 2.0), 12);
        assert_eq!(
            estimate_anthropic_input_tokens(&body, f64::NAN),
            6,
            "nonsense factor counts as 1"
        );
        assert_eq!(estimate_anthropic_input_tokens(&body, -3.0), 6);
    }

    #[test]
    fn long_texts_count_the_same_whether_remembered_or_not() {
        let text = "Some long system prompt with enough words to be remembered. ".repeat(40);
        let fresh = encode_len(&text);
        assert_eq!(text_tokens(&text), fresh);
        assert_eq!(text_tokens(&text), fresh, "second lookup comes from the memo");
        let mut memo = TokenMemo::default();
        for i in 0..MEMO_GENERATION_ENTRIES as u64 {
            memo.insert((i, 1), i);
        }
        memo.insert((u64::MAX, 1), 7);
        assert_eq!(memo.current.len(), 1, "a full generation rolls over");
        assert_eq!(memo.get((3, 1)), Some(3), "still found in the previous generation");
        assert_eq!(memo.current.get(&(3, 1)), Some(&3), "and promoted");
    }

    fn png(width: u32, height: u32) -> String {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
        STANDARD.encode(bytes)
    }

    fn image(data: String, media_type: &str) -> Value {
        user(json!([{"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}]))
    }

    #[test]
    fn images_cost_by_size_when_the_header_gives_it() {
        assert_eq!(estimate(image(png(300, 250), "image/png")), 4 + 100);
        assert_eq!(
            estimate(image(png(4000, 3000), "image/png")),
            4 + IMAGE_TOKENS,
            "capped"
        );
        assert_eq!(estimate(image("not an image".into(), "image/png")), 4 + IMAGE_TOKENS);
        let url = user(json!([{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]));
        assert_eq!(estimate(url), 4 + IMAGE_TOKENS);

        let gif = STANDARD.encode(b"GIF89a\x96\x00\x64\x00\x00\x00\x00");
        assert_eq!(estimate(image(gif, "image/gif")), 4 + 20, "150 × 100 / 750");

        // SOI, an APP0 segment, then SOF0 with height 600 and width 800.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0x58, 0x03, 0x20, 0x03]);
        assert_eq!(estimate(image(STANDARD.encode(jpeg), "image/jpeg")), 4 + 640);
    }

    #[test]
    fn pdfs_cost_per_page_when_countable() {
        let pdf = |text: &str| {
            user(json!([{"type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": STANDARD.encode(text)}}]))
        };
        let three_pages = "%PDF-1.4 /Type /Pages /Count 3 /Type /Page /Type /Page /Type/Page";
        assert_eq!(estimate(pdf(three_pages)), 4 + 3 * PDF_TOKENS_PER_PAGE);
        assert_eq!(
            estimate(pdf("%PDF-1.7 /Type /Pages /Count 2 compressed")),
            4 + 2 * PDF_TOKENS_PER_PAGE
        );
        assert_eq!(estimate(pdf("%PDF-1.7 all compressed")), 4 + PDF_TOKENS);
        let text_doc = user(
            json!([{"type": "document", "source": {"type": "text", "media_type": "text/plain",
            "data": "Hello world"}}]),
        );
        assert_eq!(estimate(text_doc), 4 + 2);
    }
}
