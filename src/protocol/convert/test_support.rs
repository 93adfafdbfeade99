//! Test helpers shared by the converter tests: the [`ConvertContext`] every test converts with, feeding a
//! byte stream through `SseParser` at awkward split points, and mechanical checkers of the stream output
//! grammar that also rebuild the message the way the SDK accumulators do.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::protocol::convert::stream::{StreamConverter, StreamStatus};
use crate::protocol::convert::{ConvertContext, ModelOptions};
use crate::protocol::hub::{Part, ToolCall, ToolKind};
use crate::protocol::sse::{SseEvent, SseParser};

static OPTIONS: LazyLock<ModelOptions> = LazyLock::new(ModelOptions::default);

pub(crate) const SIGNING_KEY: &[u8] = b"test-signing-key";

/// A function call part of the hub.
pub(crate) fn tool_call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        namespace: None,
        kind: ToolKind::Function,
        arguments: arguments.into(),
    })
}

/// The context every response and stream test uses: the client asked for `client-model`.
pub(crate) fn ctx() -> ConvertContext<'static> {
    context(&OPTIONS, "upstream-model")
}

/// The same context for a deployment with these options and upstream model (the request tests).
pub(crate) fn context<'a>(options: &'a ModelOptions, upstream_model: &'a str) -> ConvertContext<'a> {
    ConvertContext {
        client_model: "client-model",
        upstream_model,
        options,
        created: 1_700_000_000,
        response_id: "resp01",
        signing_key: SIGNING_KEY,
        route_stream: false,
    }
}

/// `data: <json>\n\n`, an OpenAI-style upstream frame.
pub(crate) fn oai(data: Value) -> String {
    format!("data: {data}\n\n")
}

/// `event: <type>\ndata: <json>\n\n`, an Anthropic upstream frame named after its `type`.
pub(crate) fn ant(data: Value) -> String {
    let name = data["type"].as_str().expect("type").to_owned();
    format!("event: {name}\ndata: {data}\n\n")
}

/// Feeds `input` cut at `cuts` through a fresh parser into a fresh converter, the way the I/O layer does:
/// stop at a terminal status, hand the parser's unterminated rest over at EOF, then call `on_eof`.
pub(crate) fn run_with_cuts(make: &dyn Fn() -> Box<dyn StreamConverter>, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut converter = make();
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut status = StreamStatus::Continue;
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        parser.feed(&input[last..cut], |event| {
            if status == StreamStatus::Continue {
                status = converter.on_event(event, &mut out);
            }
        });
        last = cut;
    }
    if status == StreamStatus::Continue {
        if let Some(event) = parser.finish() {
            status = converter.on_event(&event, &mut out);
        }
        if status == StreamStatus::Continue {
            converter.on_eof(&mut out);
        }
    }
    // A second EOF must not add anything once terminal.
    let len = out.len();
    converter.on_eof(&mut out);
    assert_eq!(out.len(), len, "on_eof after the end wrote more bytes");
    out
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `input` whole, byte by byte, at every single split point and at many random sets of split points
/// (which land inside UTF-8 sequences and `data:` lines), asserts every run produced identical bytes, and
/// returns them.
pub(crate) fn converted(make: &dyn Fn() -> Box<dyn StreamConverter>, input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let whole = run_with_cuts(make, bytes, &[]);
    let every: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(
        String::from_utf8_lossy(&run_with_cuts(make, bytes, &every)),
        String::from_utf8_lossy(&whole),
        "byte-by-byte feed differs"
    );
    for cut in 1..bytes.len() {
        assert!(
            run_with_cuts(make, bytes, &[cut]) == whole,
            "single split at {cut} differs"
        );
    }
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..64 {
        let count = 1 + (rng.next() % 24) as usize;
        let mut cuts: Vec<usize> = (0..count)
            .map(|_| 1 + (rng.next() as usize) % (bytes.len() - 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        assert!(
            run_with_cuts(make, bytes, &cuts) == whole,
            "random split round {round} at {cuts:?} differs"
        );
    }
    whole
}

/// Whether `input` contains a multi-byte character, i.e. the split feeds really cut inside UTF-8 sequences.
pub(crate) fn has_multibyte(input: &str) -> bool {
    input.len() != input.chars().count()
}

pub(crate) fn parse_events(out: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    parser.feed(out, |e| events.push(e.clone()));
    assert_eq!(parser.pending_bytes(), 0, "output ends inside a line");
    assert!(parser.finish().is_none(), "output ends inside an event");
    events
}

/// The data of every event as JSON (`[DONE]` as the string `"[DONE]"`), for golden comparisons.
pub(crate) fn data_values(out: &[u8]) -> Vec<Value> {
    parse_events(out)
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or_else(|_| Value::String(e.data.clone())))
        .collect()
}

/// What an Anthropic client rebuilds from a stream.
#[derive(Debug)]
pub(crate) struct AnthropicResult {
    /// The accumulated message (content blocks, stop reason, usage), as the SDK's accumulator builds it.
    pub message: Value,
    /// The `error` object of a terminal error event.
    pub error: Option<Value>,
}

/// Checks the Anthropic stream grammar of §3.1 and accumulates the message:
/// every event named after its `type`; exactly one `message_start`, first; blocks started at dense indexes
/// in order, one open at a time, never empty; deltas of the open block's kind; each thinking block signed by
/// one `signature_delta` right before its stop; `message_delta` (with stop reason and `output_tokens`) after
/// all blocks closed, then `message_stop`, last; or an `error` event, last, and no `message_stop`.
pub(crate) fn check_anthropic(out: &[u8]) -> AnthropicResult {
    let events = parse_events(out);
    let mut message: Option<Value> = None;
    let mut open: Option<(usize, String, String, bool)> = None; // (index, type, text/json, signed)
    let mut saw_delta = false;
    let mut stopped = false;
    let mut error = None;
    let mut truncated_tool = false;
    for (n, event) in events.iter().enumerate() {
        let name = event.event.as_deref().expect("every ANT event has an event: line");
        let data: Value = serde_json::from_str(&event.data).expect("event data is JSON");
        assert_eq!(data["type"], name, "event name matches data.type");
        assert!(error.is_none() && !stopped, "event after the stream ended: {name}");
        if name == "ping" {
            continue;
        }
        if name == "error" {
            assert!(data["error"]["type"].is_string() && data["error"]["message"].is_string());
            error = Some(data["error"].clone());
            continue;
        }
        if name == "message_start" {
            assert!(message.is_none(), "second message_start");
            let msg = &data["message"];
            assert_eq!(msg["content"], json!([]));
            assert_eq!(msg["model"], "client-model");
            assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
            assert!(msg["usage"]["input_tokens"].is_u64());
            message = Some(msg.clone());
            continue;
        }
        let msg = message
            .as_mut()
            .unwrap_or_else(|| panic!("{name} before message_start (event {n})"));
        match name {
            "content_block_start" => {
                assert!(open.is_none(), "block started while another is open");
                assert!(!saw_delta, "block after message_delta");
                let index = data["index"].as_u64().unwrap() as usize;
                let content = msg["content"].as_array_mut().unwrap();
                assert_eq!(index, content.len(), "block indexes dense and in order");
                let block = data["content_block"].clone();
                let kind = block["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "text" => assert_eq!(block["text"], ""),
                    "thinking" => assert_eq!(block["thinking"], ""),
                    "tool_use" => {
                        let id = block["id"].as_str().unwrap();
                        assert!(!id.is_empty());
                        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
                        assert!(!block["name"].as_str().unwrap().is_empty());
                        assert_eq!(block["input"], json!({}));
                    }
                    other => panic!("unexpected block type {other}"),
                }
                content.push(block);
                open = Some((index, kind, String::new(), false));
            }
            "content_block_delta" => {
                let (index, kind, acc, signed) = open.as_mut().expect("delta with no open block");
                assert_eq!(data["index"], *index as u64, "delta for the open block");
                let delta = &data["delta"];
                match (kind.as_str(), delta["type"].as_str().unwrap()) {
                    ("text", "text_delta") => acc.push_str(delta["text"].as_str().unwrap()),
                    ("thinking", "thinking_delta") => {
                        assert!(!*signed, "thinking_delta after the signature");
                        acc.push_str(delta["thinking"].as_str().unwrap());
                    }
                    ("thinking", "signature_delta") => {
                        assert!(!*signed, "two signatures");
                        let sig = delta["signature"].as_str().unwrap();
                        assert!(sig.starts_with("llmr1."));
                        msg["content"][*index]["signature"] = json!(sig);
                        *signed = true;
                    }
                    ("tool_use", "input_json_delta") => acc.push_str(delta["partial_json"].as_str().unwrap()),
                    (k, d) => panic!("{d} inside a {k} block"),
                }
            }
            "content_block_stop" => {
                let (index, kind, acc, signed) = open.take().expect("stop with no open block");
                assert_eq!(data["index"], index as u64, "stop for the open block");
                let block = &mut msg["content"][index];
                match kind.as_str() {
                    "text" => {
                        assert!(!acc.trim().is_empty(), "blank text block");
                        block["text"] = json!(acc);
                    }
                    "thinking" => {
                        assert!(signed, "thinking block without signature_delta");
                        block["thinking"] = json!(acc);
                    }
                    _ => {
                        block["input"] = match serde_json::from_str(&acc) {
                            _ if acc.is_empty() => json!({}),
                            Ok(input) => input,
                            // Only a stream that then ends in an error may carry a cut-off input.
                            Err(_) => {
                                truncated_tool = true;
                                json!({"_truncated": acc})
                            }
                        }
                    }
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with an open block");
                assert!(data["delta"]["stop_reason"].is_string(), "stop_reason set");
                assert!(data["usage"]["output_tokens"].is_u64());
                msg["stop_reason"] = data["delta"]["stop_reason"].clone();
                msg["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for (k, v) in data["usage"].as_object().unwrap() {
                    msg["usage"][k] = v.clone();
                }
                saw_delta = true;
            }
            "message_stop" => {
                assert!(saw_delta, "message_stop without message_delta");
                stopped = true;
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert!(stopped || error.is_some(), "stream ends with message_stop or error");
    assert!(
        !truncated_tool || error.is_some(),
        "tool input is not JSON in a complete stream"
    );
    AnthropicResult {
        message: message.unwrap_or(Value::Null),
        error,
    }
}

/// What an OpenAI client rebuilds from a stream.
#[derive(Debug, Default)]
pub(crate) struct OpenAiResult {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    /// `(id, name, arguments)` by tool index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
    pub chunks: usize,
}

/// Checks the OpenAI stream grammar of §3.2 and accumulates the message: every chunk a
/// `chat.completion.chunk` with the same id/created/model; `role` once, in the first chunk; each tool index
/// new in order 0, 1, 2 … with `id`, `type` and `name` on its first fragment only; one `finish_reason`, nothing
/// after it but the usage chunk; with `include_usage` every chunk has `usage`, `null` except on the last
/// chunk, which has `choices: []`, and without it no chunk has `usage`; `[DONE]` last, or an error last and
/// no `[DONE]`.
pub(crate) fn check_openai(out: &[u8], include_usage: bool) -> OpenAiResult {
    let events = parse_events(out);
    let mut result = OpenAiResult::default();
    let mut identity: Option<(Value, Value, Value)> = None;
    let mut done = false;
    let mut roles = 0;
    for (n, event) in events.iter().enumerate() {
        assert!(event.event.is_none(), "OAI events carry no event: line");
        assert!(!done && result.error.is_none(), "event after the end");
        if event.data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&event.data).expect("chunk is JSON");
        if let Some(error) = chunk.get("error") {
            assert!(error["message"].is_string() && error["type"].is_string());
            assert!(error.get("param").is_some() && error.get("code").is_some());
            result.error = Some(error.clone());
            continue;
        }
        result.chunks += 1;
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "client-model");
        assert!(chunk["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let id = (chunk["id"].clone(), chunk["created"].clone(), chunk["model"].clone());
        assert_eq!(identity.get_or_insert_with(|| id.clone()), &id, "same id/created/model");
        assert!(result.usage.is_none(), "chunk after the usage chunk");
        if include_usage {
            let usage = chunk.get("usage").expect("usage key on every chunk");
            if !usage.is_null() {
                assert_eq!(chunk["choices"], json!([]), "usage chunk has no choices");
                result.usage = Some(usage.clone());
                continue;
            }
        } else {
            assert!(chunk.get("usage").is_none(), "usage without include_usage");
        }
        let choices = chunk["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 1);
        let choice = &choices[0];
        assert_eq!(choice["index"], 0);
        let delta = &choice["delta"];
        assert!(result.finish_reason.is_none(), "chunk after finish_reason");
        if let Some(reason) = choice["finish_reason"].as_str() {
            assert_eq!(delta, &json!({}), "finish chunk has an empty delta");
            result.finish_reason = Some(reason.to_owned());
        }
        if delta.get("role").is_some() {
            assert_eq!(n, 0, "role only in the first chunk");
            roles += 1;
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            result.content.get_or_insert_default().push_str(text);
        }
        if let Some(text) = delta.get("reasoning_content").and_then(Value::as_str) {
            result.reasoning.get_or_insert_default().push_str(text);
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            let function = &call["function"];
            if index == result.tool_calls.len() {
                let id = call["id"].as_str().expect("id on the first fragment");
                assert_eq!(call["type"], "function");
                let name = function["name"].as_str().expect("name on the first fragment");
                result.tool_calls.push((id.into(), name.into(), String::new()));
            } else {
                assert!(index < result.tool_calls.len(), "tool index skipped");
                assert!(call.get("id").is_none(), "tool id repeated");
                assert!(function.get("name").is_none(), "tool name repeated");
            }
            result.tool_calls[index]
                .2
                .push_str(function["arguments"].as_str().unwrap_or(""));
        }
    }
    assert!(done || result.error.is_some(), "stream ends with [DONE] or an error");
    if result.error.is_none() {
        assert_eq!(roles, 1, "role exactly once");
        assert!(result.finish_reason.is_some(), "finish_reason before [DONE]");
        assert_eq!(include_usage, result.usage.is_some(), "usage chunk iff include_usage");
    }
    result
}

/// The checkers must reject what the converters must never produce.
mod checker_tests {
    use super::*;

    fn rejects(check: impl FnOnce() + std::panic::UnwindSafe) -> bool {
        std::panic::catch_unwind(check).is_err()
    }

    const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"client-model\",\"content\":[],\"usage\":{\"input_tokens\":1}}}\n\n";
    const END: &str = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn text_block(index: u64, delta_type: &str) -> String {
        format!(
            "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{delta_type}\",\"text\":\"x\",\"thinking\":\"x\"}}}}\n\n\
             event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\n"
        )
    }

    #[test]
    fn anthropic_checker_accepts_a_good_stream_and_rejects_bad_ones() {
        let good = format!("{START}{}{END}", text_block(0, "text_delta"));
        assert_eq!(check_anthropic(good.as_bytes()).message["content"][0]["text"], "x");
        let bad = [
            format!("{}{END}", text_block(0, "text_delta")), // no message_start
            format!("{START}{START}{END}"),                  // two message_start
            format!("{START}{}{END}", text_block(1, "text_delta")), // index not dense
            format!("{START}{}{END}", text_block(0, "thinking_delta")), // delta kind mismatch
            format!("{START}{}", text_block(0, "text_delta")), // no message_stop
            format!("{START}{END}{END}"),                    // events after message_stop
            START.replace("event: message_start\n", ""),     // missing event line
        ];
        for stream in bad {
            assert!(rejects(move || {
                check_anthropic(stream.as_bytes());
            }));
        }
    }

    fn chunk(delta: &str, finish: &str) -> String {
        format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"client-model\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    }

    #[test]
    fn openai_checker_accepts_a_good_stream_and_rejects_bad_ones() {
        let role = chunk(r#"{"role":"assistant","content":""}"#, "null");
        let tool = chunk(
            r#"{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":""}}]}"#,
            "null",
        );
        let stop = chunk("{}", "\"stop\"");
        let done = "data: [DONE]\n\n";
        let good = format!("{role}{tool}{stop}{done}");
        assert_eq!(check_openai(good.as_bytes(), false).tool_calls.len(), 1);
        let bad = [
            format!("{role}{role}{stop}{done}"),       // role twice
            format!("{role}{tool}{tool}{stop}{done}"), // tool id/name repeated
            format!("{role}{}{stop}{done}", tool.replace("\"index\":0", "\"index\":1")), // index skips 0
            format!("{role}{stop}"),                   // no [DONE]
            format!("{role}{stop}{done}{stop}"),       // chunk after [DONE]
            format!("{role}{stop}{done}"),             // include_usage but no usage chunk (checked below)
        ];
        for (n, stream) in bad.into_iter().enumerate() {
            let include_usage = n == 5;
            assert!(rejects(move || {
                check_openai(stream.as_bytes(), include_usage);
            }));
        }
    }
}
