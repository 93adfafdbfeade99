//! Route A stream (§3.3): Anthropic Messages events in, OpenAI `chat.completion.chunk`s out.
//!
//! The OpenAI SDK concatenates every string it sees in a delta, so `role`, tool `id` and tool `name` go out
//! exactly once, and `tool_calls[].index` counts tool calls (0, 1, 2 …), not Anthropic block indexes. Content
//! is joined exactly as the non-streaming converter joins it (`"\n\n"` where another block separated two text
//! blocks, `"\n"` between thinking blocks), so a client that accumulates the stream gets the same message.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::{INCOMPLETE_MESSAGE, Phase, StreamConverter, StreamFailure, StreamStatus};
use crate::protocol::chat::response::Joiner;
use crate::protocol::chat::response::completion_id;
use crate::protocol::convert::error::{OpenAiError, anthropic_event_error, openai_error_for_anthropic};
use crate::protocol::convert::response::{OaiUsage, TokenUsage, finish_reason_for};
use crate::protocol::convert::tool_calls::{JSON_OUTPUT_TOOL, arguments_json};
use crate::protocol::convert::{ConvertContext, RequestFacts};
use crate::protocol::sse::{SseEvent, write_data_event};

/// Route A: converts an Anthropic event stream into an OpenAI chunk stream.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    model: String,
    created: u64,
    response_id: String,
    include_usage: bool,
    json_output_tool: bool,
    /// Set when the role chunk went out; every chunk carries this id.
    chunk_id: Option<String>,
    /// Upstream block index → what the block is.
    blocks: Vec<(u64, Block)>,
    next_tool: u32,
    text: Joiner,
    reasoning: Joiner,
    usage: TokenUsage,
    stop_reason: Option<String>,
    saw_tool_call: bool,
    phase: Phase,
}

#[derive(Debug)]
enum Block {
    /// `json_output` counts as text: its input is the structured answer (§1.1.8). `json_input` holds such a
    /// block's input from `content_block_start`, sent at the stop if no input streamed.
    Text {
        started: bool,
        json_input: Option<String>,
    },
    Thinking {
        started: bool,
    },
    /// `input` is the `content_block_start` input (`{}` from Anthropic itself), sent if none streams.
    Tool {
        ordinal: u32,
        sent_arguments: bool,
        input: String,
    },
    Other,
}

impl AnthropicToOpenAiStream {
    pub fn new(ctx: &ConvertContext, facts: &RequestFacts) -> Self {
        Self {
            model: ctx.client_model.to_owned(),
            created: ctx.created,
            response_id: ctx.response_id.to_owned(),
            include_usage: facts.include_usage,
            json_output_tool: facts.json_output_tool,
            chunk_id: None,
            blocks: Vec::new(),
            next_tool: 0,
            text: Joiner::text(),
            reasoning: Joiner::reasoning(),
            usage: TokenUsage::default(),
            stop_reason: None,
            saw_tool_call: false,
            phase: Phase::Open,
        }
    }

    fn handle(&mut self, event: &SseEvent, data: &Value, out: &mut Vec<u8>) {
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                if let Some(usage) = message.get("usage") {
                    self.usage.merge_anthropic(usage);
                }
                if self.chunk_id.is_none() {
                    let id = message.get("id").and_then(Value::as_str);
                    self.start(id, out);
                }
            }
            "content_block_start" => {
                self.start(None, out);
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").unwrap_or(&Value::Null);
                self.block_start(index, block, out);
            }
            "content_block_delta" => {
                self.start(None, out);
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                self.block_delta(index, delta, out);
            }
            "content_block_stop" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                self.block_stop(index, out);
            }
            "message_delta" => {
                if let Some(reason) = data
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage") {
                    self.usage.merge_anthropic(usage);
                }
            }
            "message_stop" => {
                self.start(None, out);
                self.finish(out);
            }
            // ping and event types added later carry nothing for an OAI client.
            _ => {}
        }
    }

    fn block_start(&mut self, index: u64, block: &Value, out: &mut Vec<u8>) {
        let field = |key| block.get(key).and_then(Value::as_str).unwrap_or("");
        let kind = match field("type") {
            "text" => {
                self.blocks.push((
                    index,
                    Block::Text {
                        started: false,
                        json_input: None,
                    },
                ));
                self.emit_text(index, field("text"), out);
                return;
            }
            "tool_use" if self.json_output_tool && field("name") == JSON_OUTPUT_TOOL => Block::Text {
                started: false,
                json_input: Some(arguments_json(block.get("input"))),
            },
            "tool_use" => {
                let ordinal = self.next_tool;
                self.next_tool += 1;
                self.saw_tool_call = true;
                self.text.mark_other_block();
                let call = ToolCallDelta {
                    index: ordinal,
                    id: Some(field("id")),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(field("name")),
                        arguments: "",
                    },
                };
                self.emit(out, Delta::tool_call(call), None);
                Block::Tool {
                    ordinal,
                    sent_arguments: false,
                    input: arguments_json(block.get("input")),
                }
            }
            "thinking" => {
                self.text.mark_other_block();
                self.blocks.push((index, Block::Thinking { started: false }));
                self.emit_reasoning(index, field("thinking"), out);
                return;
            }
            // redacted_thinking, server tools and their results: not representable, but they separate text.
            _ => {
                self.text.mark_other_block();
                Block::Other
            }
        };
        self.blocks.push((index, kind));
    }

    fn block_delta(&mut self, index: u64, delta: &Value, out: &mut Vec<u8>) {
        let field = |key| delta.get(key).and_then(Value::as_str).unwrap_or("");
        match (field("type"), self.block(index)) {
            ("text_delta", Some(Block::Text { .. })) => self.emit_text(index, field("text"), out),
            ("thinking_delta", Some(Block::Thinking { .. })) => self.emit_reasoning(index, field("thinking"), out),
            ("input_json_delta", Some(Block::Text { .. })) => self.emit_text(index, field("partial_json"), out),
            ("input_json_delta", Some(Block::Tool { .. })) => self.emit_arguments(index, field("partial_json"), out),
            // signature_delta, citations_delta and deltas that do not fit their block carry nothing here.
            _ => {}
        }
    }

    /// A tool whose input never streamed still needs its `arguments` (`"{}"` for no input), as in the
    /// non-streaming answer.
    fn block_stop(&mut self, index: u64, out: &mut Vec<u8>) {
        match self.block(index) {
            Some(Block::Tool {
                sent_arguments: false,
                input,
                ..
            }) => {
                let input = std::mem::take(input);
                self.emit_arguments(index, &input, out);
            }
            Some(Block::Text {
                started: false,
                json_input: Some(input),
            }) => {
                let input = std::mem::take(input);
                self.emit_text(index, &input, out);
            }
            _ => {}
        }
    }

    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, block)| block)
    }

    fn emit_text(&mut self, index: u64, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let first = match self.block(index) {
            Some(Block::Text { started, .. }) => !std::mem::replace(started, true),
            _ => return,
        };
        let content = if first {
            prefixed(self.text.separator(), text)
        } else {
            Cow::Borrowed(text)
        };
        self.emit(out, Delta::content(content), None);
    }

    fn emit_reasoning(&mut self, index: u64, thinking: &str, out: &mut Vec<u8>) {
        if thinking.is_empty() {
            return;
        }
        let first = match self.block(index) {
            Some(Block::Thinking { started }) => !std::mem::replace(started, true),
            _ => return,
        };
        let reasoning = if first {
            prefixed(self.reasoning.separator(), thinking)
        } else {
            Cow::Borrowed(thinking)
        };
        let delta = Delta {
            reasoning_content: Some(reasoning),
            ..Delta::default()
        };
        self.emit(out, delta, None);
    }

    fn emit_arguments(&mut self, index: u64, arguments: &str, out: &mut Vec<u8>) {
        if arguments.is_empty() {
            return;
        }
        let ordinal = match self.block(index) {
            Some(Block::Tool {
                ordinal,
                sent_arguments,
                ..
            }) => {
                *sent_arguments = true;
                *ordinal
            }
            _ => return,
        };
        let call = ToolCallDelta {
            index: ordinal,
            id: None,
            kind: None,
            function: FunctionDelta { name: None, arguments },
        };
        self.emit(out, Delta::tool_call(call), None);
    }

    /// Emits the role chunk once; `upstream_id` is the ANT message id when known.
    fn start(&mut self, upstream_id: Option<&str>, out: &mut Vec<u8>) {
        if self.chunk_id.is_some() {
            return;
        }
        self.chunk_id = Some(completion_id(upstream_id, &self.response_id));
        let delta = Delta {
            role: Some("assistant"),
            content: Some(Cow::Borrowed("")),
            ..Delta::default()
        };
        self.emit(out, delta, None);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut finish_reason = finish_reason_for(self.stop_reason.as_deref());
        if finish_reason == "tool_calls" && !self.saw_tool_call {
            // Only json_output was called: the structured answer, not a tool call (§1.1.8).
            finish_reason = "stop";
        }
        self.emit(out, Delta::default(), Some(finish_reason));
        if self.include_usage {
            let usage = self.usage.to_openai();
            self.write_chunk(out, &[], Some(Some(&usage)));
        }
        write_data_event(out, b"[DONE]");
        self.phase = Phase::Finished;
    }

    fn fail(&mut self, error: &OpenAiError, out: &mut Vec<u8>) {
        write_data_event(out, &error.body());
        self.phase = Phase::Failed;
    }

    fn emit(&self, out: &mut Vec<u8>, delta: Delta, finish_reason: Option<&str>) {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        let usage = self.include_usage.then_some(None);
        self.write_chunk(out, std::slice::from_ref(&choice), usage);
    }

    fn write_chunk(&self, out: &mut Vec<u8>, choices: &[ChunkChoice], usage: Option<Option<&OaiUsage>>) {
        let chunk = Chunk {
            id: self.chunk_id.as_deref().unwrap_or_default(),
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        write_data_event(out, &serde_json::to_vec(&chunk).expect("chunk serialises"));
    }
}

impl StreamConverter for AnthropicToOpenAiStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> StreamStatus {
        if self.phase != Phase::Open {
            return self.phase.status();
        }
        if let Some((kind, message)) = anthropic_event_error(event) {
            let error = openai_error_for_anthropic(None, &kind, &message);
            self.fail(&error, out);
            return self.phase.status();
        }
        match serde_json::from_str::<Value>(&event.data) {
            Ok(data) => self.handle(event, &data, out),
            Err(_) => {
                let error = server_error("upstream sent an invalid stream event", "bad_upstream_response");
                self.fail(&error, out);
            }
        }
        self.phase.status()
    }

    /// Anthropic streams end with `message_stop`; EOF before it is a truncated answer (§3.3).
    fn on_eof(&mut self, out: &mut Vec<u8>) -> StreamStatus {
        if self.phase == Phase::Open {
            self.fail(&server_error(INCOMPLETE_MESSAGE, "stream_incomplete"), out);
        }
        self.phase.status()
    }

    fn on_error(&mut self, kind: StreamFailure, message: &str, out: &mut Vec<u8>) {
        if self.phase != Phase::Open {
            return;
        }
        let code = match kind {
            StreamFailure::Timeout => "timeout",
            StreamFailure::Upstream => "stream_incomplete",
        };
        self.fail(&server_error(message, code), out);
    }

    /// An SSE comment: OpenAI decoders ignore it, proxies see traffic.
    fn keep_alive(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}

fn server_error(message: &str, code: &'static str) -> OpenAiError {
    OpenAiError {
        status: 500,
        kind: "server_error",
        code: Some(code),
        message: message.to_owned(),
        should_retry: None,
    }
}

fn prefixed<'a>(separator: &str, text: &'a str) -> Cow<'a, str> {
    if separator.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{separator}{text}"))
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on ordinary chunks and the totals on the last one with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a OaiUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

impl<'a> Delta<'a> {
    fn content(text: Cow<'a, str>) -> Self {
        Self {
            content: Some(text),
            ..Self::default()
        }
    }

    fn tool_call(call: ToolCallDelta<'a>) -> Self {
        Self {
            tool_calls: Some([call]),
            ..Self::default()
        }
    }
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::convert::test_support::{
        OpenAiResult, ant, check_openai, converted, ctx, data_values, has_multibyte,
    };

    /// The whole answer (through the hub) that the stream must agree with.
    fn anthropic_to_openai(
        body: &[u8],
        ctx: &crate::protocol::convert::ConvertContext,
        facts: &RequestFacts,
    ) -> Result<Vec<u8>, crate::protocol::convert::ConvertError> {
        use crate::protocol::Protocol;
        crate::protocol::hub::convert_answer(Protocol::OpenAi, Protocol::Anthropic, body, ctx, facts)
    }

    fn facts(include_usage: bool) -> RequestFacts {
        RequestFacts {
            include_usage,
            ..RequestFacts::default()
        }
    }

    /// Runs the Route A converter over `input` at every kind of split, checks the OAI grammar, and returns
    /// the bytes with what a client rebuilds from them.
    fn run(facts: &RequestFacts, input: &str) -> (Vec<u8>, OpenAiResult) {
        let make = || Box::new(AnthropicToOpenAiStream::new(&ctx(), facts)) as Box<dyn StreamConverter>;
        let out = converted(&make, input);
        let result = check_openai(&out, facts.include_usage);
        (out, result)
    }

    fn message_start() -> String {
        ant(
            json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",
            "model":"claude-upstream","content":[],"stop_reason":null,"stop_sequence":null,
            "usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":1}}}),
        )
    }
    fn block_start(i: u64, block: Value) -> String {
        ant(json!({"type":"content_block_start","index":i,"content_block":block}))
    }
    fn text_start(i: u64) -> String {
        block_start(i, json!({"type":"text","text":""}))
    }
    fn thinking_start(i: u64) -> String {
        block_start(i, json!({"type":"thinking","thinking":"","signature":""}))
    }
    fn tool_start(i: u64, id: &str, name: &str) -> String {
        block_start(i, json!({"type":"tool_use","id":id,"name":name,"input":{}}))
    }
    fn delta(i: u64, delta: Value) -> String {
        ant(json!({"type":"content_block_delta","index":i,"delta":delta}))
    }
    fn text(i: u64, t: &str) -> String {
        delta(i, json!({"type":"text_delta","text":t}))
    }
    fn thinking(i: u64, t: &str) -> String {
        delta(i, json!({"type":"thinking_delta","thinking":t}))
    }
    fn signature(i: u64) -> String {
        delta(
            i,
            json!({"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxZ"}),
        )
    }
    fn partial(i: u64, p: &str) -> String {
        delta(i, json!({"type":"input_json_delta","partial_json":p}))
    }
    fn stop(i: u64) -> String {
        ant(json!({"type":"content_block_stop","index":i}))
    }
    fn message_delta(reason: &str, output: u64) -> String {
        ant(
            json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":{"output_tokens":output}}),
        )
    }
    fn message_stop() -> String {
        ant(json!({"type":"message_stop"}))
    }
    fn ping() -> String {
        ant(json!({"type":"ping"}))
    }

    /// An expected chunk; `usage: null` is added when the client asked for usage.
    fn chunk(include_usage: bool, delta: Value, finish_reason: Value) -> Value {
        let mut chunk = json!({"id":"chatcmpl-msg_01","object":"chat.completion.chunk","created":1_700_000_000,
            "model":"client-model","choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish_reason}]});
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }
    fn role(u: bool) -> Value {
        chunk(u, json!({"role":"assistant","content":""}), Value::Null)
    }
    fn content(u: bool, t: &str) -> Value {
        chunk(u, json!({"content":t}), Value::Null)
    }
    fn reasoning(u: bool, t: &str) -> Value {
        chunk(u, json!({"reasoning_content":t}), Value::Null)
    }
    fn call_start(u: bool, k: u64, id: &str, name: &str) -> Value {
        chunk(
            u,
            json!({"tool_calls":[{"index":k,"id":id,"type":"function","function":{"name":name,"arguments":""}}]}),
            Value::Null,
        )
    }
    fn arguments(u: bool, k: u64, a: &str) -> Value {
        chunk(
            u,
            json!({"tool_calls":[{"index":k,"function":{"arguments":a}}]}),
            Value::Null,
        )
    }
    fn finish(u: bool, reason: &str) -> Value {
        chunk(u, json!({}), json!(reason))
    }
    fn usage_chunk(prompt: u64, completion: u64, cached: u64, written: u64) -> Value {
        let mut chunk = json!({"id":"chatcmpl-msg_01","object":"chat.completion.chunk","created":1_700_000_000,
            "model":"client-model","choices":[],"usage":{"prompt_tokens":prompt,"completion_tokens":completion,
            "total_tokens":prompt + completion,"prompt_tokens_details":{"cached_tokens":cached}}});
        // Reported only when something was written, as in whole answers.
        if written > 0 {
            chunk["usage"]["prompt_tokens_details"]["cache_write_tokens"] = json!(written);
        }
        chunk
    }
    fn done() -> Value {
        json!("[DONE]")
    }

    fn assert_usage_invariant(result: &OpenAiResult, input: u64, read: u64, write: u64) {
        let usage = result.usage.as_ref().expect("usage chunk");
        assert_eq!(usage["prompt_tokens"], input + read + write);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
    }

    #[test]
    fn text_only() {
        let input = [
            message_start(),
            text_start(0),
            ping(),
            text(0, "Hel"),
            text(0, "lo, héllo 你好 🎉"),
            stop(0),
            message_delta("end_turn", 15),
            message_stop(),
        ]
        .concat();
        assert!(has_multibyte(&input));
        let (out, result) = run(&facts(true), &input);
        assert_eq!(
            data_values(&out),
            vec![
                role(true),
                content(true, "Hel"),
                content(true, "lo, héllo 你好 🎉"),
                finish(true, "stop"),
                usage_chunk(135, 15, 100, 10),
                done(),
            ]
        );
        assert_eq!(result.content.as_deref(), Some("Hello, héllo 你好 🎉"));
        assert_usage_invariant(&result, 25, 100, 10);
    }

    #[test]
    fn without_include_usage_no_chunk_has_usage() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "Hi"),
            stop(0),
            message_delta("end_turn", 2),
            message_stop(),
        ]
        .concat();
        let (out, result) = run(&facts(false), &input);
        assert_eq!(
            data_values(&out),
            vec![role(false), content(false, "Hi"), finish(false, "stop"), done()]
        );
        assert!(result.usage.is_none());
    }

    #[test]
    fn thinking_then_text() {
        let input = [
            message_start(),
            thinking_start(0),
            thinking(0, "Let me "),
            thinking(0, "think → ok"),
            signature(0),
            stop(0),
            text_start(1),
            text(1, "Answer"),
            stop(1),
            message_delta("end_turn", 40),
            message_stop(),
        ]
        .concat();
        let (out, result) = run(&facts(false), &input);
        assert_eq!(
            data_values(&out),
            vec![
                role(false),
                reasoning(false, "Let me "),
                reasoning(false, "think → ok"),
                content(false, "Answer"),
                finish(false, "stop"),
                done(),
            ]
        );
        assert_eq!(result.reasoning.as_deref(), Some("Let me think → ok"));
    }

    #[test]
    fn text_tool_text() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "Let me check."),
            stop(0),
            tool_start(1, "toolu_a", "weather"),
            partial(1, ""),
            partial(1, "{\"city\":"),
            partial(1, "\"Paris\"}"),
            stop(1),
            text_start(2),
            text(2, "Done."),
            stop(2),
            message_delta("tool_use", 30),
            message_stop(),
        ]
        .concat();
        let (out, result) = run(&facts(true), &input);
        assert_eq!(
            data_values(&out),
            vec![
                role(true),
                content(true, "Let me check."),
                call_start(true, 0, "toolu_a", "weather"),
                arguments(true, 0, "{\"city\":"),
                arguments(true, 0, "\"Paris\"}"),
                // A tool block separated the two texts: joined with "\n\n" as in the non-streaming answer.
                content(true, "\n\nDone."),
                finish(true, "tool_calls"),
                usage_chunk(135, 30, 100, 10),
                done(),
            ]
        );
        assert_eq!(result.tool_calls[0].2, "{\"city\":\"Paris\"}");
    }

    #[test]
    fn three_parallel_tool_calls_count_tool_indexes_not_block_indexes() {
        let mut parts = vec![message_start(), text_start(0), text(0, "Checking."), stop(0)];
        for (k, city) in ["Paris", "Rome", "Kraków"].iter().enumerate() {
            let i = k as u64 + 1;
            parts.push(tool_start(i, &format!("toolu_{k}"), "weather"));
            parts.push(partial(i, "{\"ci"));
            parts.push(partial(i, "ty\": \""));
            parts.push(partial(i, &format!("{city}\"}}")));
            parts.push(stop(i));
        }
        parts.push(message_delta("tool_use", 60));
        parts.push(message_stop());
        let (out, result) = run(&facts(false), &parts.concat());
        let chunks = data_values(&out);
        assert_eq!(chunks[2], call_start(false, 0, "toolu_0", "weather"));
        assert_eq!(chunks[6], call_start(false, 1, "toolu_1", "weather"));
        assert_eq!(chunks[10], call_start(false, 2, "toolu_2", "weather"));
        assert_eq!(chunks[13], arguments(false, 2, "Kraków\"}"));
        let args: Vec<&str> = result.tool_calls.iter().map(|t| t.2.as_str()).collect();
        assert_eq!(
            args,
            [
                "{\"city\": \"Paris\"}",
                "{\"city\": \"Rome\"}",
                "{\"city\": \"Kraków\"}"
            ]
        );
        assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn tool_without_streamed_input_gets_empty_object_arguments() {
        let input = [
            message_start(),
            tool_start(0, "toolu_n", "now"),
            stop(0),
            message_delta("tool_use", 5),
            message_stop(),
        ]
        .concat();
        let (out, result) = run(&facts(false), &input);
        assert_eq!(data_values(&out)[2], arguments(false, 0, "{}"));
        assert_eq!(result.tool_calls[0].2, "{}");
    }

    #[test]
    fn tool_input_given_whole_in_content_block_start_is_sent_once() {
        // Some Anthropic-compatible hosts put the whole input into content_block_start.
        let input = [
            message_start(),
            block_start(
                0,
                json!({"type":"tool_use","id":"toolu_w","name":"calc","input":{"x":1}}),
            ),
            stop(0),
            tool_start(1, "toolu_v", "calc"),
            partial(1, "{\"y\":2}"),
            stop(1),
            message_delta("tool_use", 5),
            message_stop(),
        ]
        .concat();
        let (_, result) = run(&facts(false), &input);
        let args: Vec<&str> = result.tool_calls.iter().map(|t| t.2.as_str()).collect();
        assert_eq!(args, ["{\"x\":1}", "{\"y\":2}"]);
    }

    #[test]
    fn usage_chunk_is_last_before_done_with_empty_choices() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "x"),
            stop(0),
            // Newer API versions repeat the cumulative input counts at the end; they replace the start values.
            ant(json!({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},
                "usage":{"input_tokens":30,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":7,
                "output_tokens_details":{"thinking_tokens":3}}})),
            message_stop(),
        ]
        .concat();
        let (out, result) = run(&facts(true), &input);
        let chunks = data_values(&out);
        let mut expected = usage_chunk(130, 7, 100, 0);
        expected["usage"]["completion_tokens_details"] = json!({"reasoning_tokens":3});
        assert_eq!(chunks[chunks.len() - 2], expected);
        assert_eq!(result.finish_reason.as_deref(), Some("length"));
        assert_usage_invariant(&result, 30, 100, 0);
    }

    #[test]
    fn message_stop_without_message_delta_finishes_with_stop() {
        // The Route A counterpart of `[DONE]` without finish_reason.
        let input = [message_start(), text_start(0), text(0, "x"), stop(0), message_stop()].concat();
        let (_, result) = run(&facts(false), &input);
        assert_eq!(result.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn eof_mid_tool_is_an_in_band_error_without_done() {
        let input = [
            message_start(),
            tool_start(0, "toolu_e", "bash"),
            partial(0, "{\"cmd\":"),
        ]
        .concat();
        let (out, result) = run(&facts(true), &input);
        assert_eq!(
            *data_values(&out).last().unwrap(),
            json!({"error":{"message":"upstream stream ended before completion","type":"server_error",
                "param":null,"code":"stream_incomplete"}})
        );
        assert!(result.finish_reason.is_none());
    }

    #[test]
    fn eof_after_message_delta_but_before_message_stop_is_incomplete() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "x"),
            stop(0),
            message_delta("end_turn", 1),
        ]
        .concat();
        let (_, result) = run(&facts(false), &input);
        assert_eq!(result.error.unwrap()["code"], "stream_incomplete");
    }

    #[test]
    fn error_event_after_two_deltas() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "one "),
            text(0, "two"),
            ant(json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})),
            text(0, "ignored"),
        ]
        .concat();
        let (out, _) = run(&facts(true), &input);
        assert_eq!(
            data_values(&out),
            vec![
                role(true),
                content(true, "one "),
                content(true, "two"),
                json!({"error":{"message":"Overloaded","type":"service_unavailable_error","param":null,
                    "code":"server_is_overloaded"}}),
            ]
        );
    }

    #[test]
    fn events_without_event_lines_are_dispatched_by_type() {
        let input = [
            message_start(),
            text_start(0),
            text(0, "Hi"),
            stop(0),
            message_delta("end_turn", 1),
            message_stop(),
        ]
        .concat()
        .lines()
        .filter(|l| !l.starts_with("event:"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
        let (_, result) = run(&facts(false), &input);
        assert_eq!(result.content.as_deref(), Some("Hi"));
    }

    #[test]
    fn json_output_tool_becomes_content_and_finish_stop() {
        let facts = RequestFacts {
            json_output_tool: true,
            ..facts(false)
        };
        let input = [
            message_start(),
            tool_start(0, "toolu_j", "json_output"),
            partial(0, "{\"answer\":"),
            partial(0, "42}"),
            stop(0),
            message_delta("tool_use", 9),
            message_stop(),
        ]
        .concat();
        let (_, result) = run(&facts, &input);
        assert_eq!(result.content.as_deref(), Some("{\"answer\":42}"));
        assert!(result.tool_calls.is_empty());
        assert_eq!(result.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn stop_reason_table_in_streams() {
        for (stop_reason, expected) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("pause_turn", "stop"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ] {
            let input = [
                message_start(),
                text_start(0),
                text(0, "a"),
                stop(0),
                message_delta(stop_reason, 1),
                message_stop(),
            ]
            .concat();
            let (_, result) = run(&facts(false), &input);
            assert_eq!(result.finish_reason.as_deref(), Some(expected), "{stop_reason}");
        }
    }

    #[test]
    fn transport_failures_and_keep_alive() {
        let mut conv = AnthropicToOpenAiStream::new(&ctx(), &facts(true));
        let mut out = Vec::new();
        conv.keep_alive(&mut out);
        assert_eq!(out, b": keep-alive\n\n");
        assert!(data_values(&out).is_empty(), "decoders ignore the keep-alive");
        out.clear();
        let event = SseEvent {
            event: Some("message_start".into()),
            data: json!({"type":"message_start","message":{"id":"msg_01","usage":{"input_tokens":1}}}).to_string(),
        };
        assert_eq!(conv.on_event(&event, &mut out), StreamStatus::Continue);
        conv.on_error(StreamFailure::Timeout, "upstream idle", &mut out);
        let result = check_openai(&out, true);
        assert_eq!(result.error.unwrap()["code"], "timeout");
        let len = out.len();
        conv.on_eof(&mut out);
        conv.on_error(StreamFailure::Upstream, "again", &mut out);
        assert_eq!(out.len(), len);
        assert_eq!(conv.on_event(&event, &mut out), StreamStatus::Failed);
    }

    /// §7: what an OpenAI client accumulates from the stream equals the non-streaming answer for the same
    /// upstream data, including the joining of text and thinking blocks.
    #[test]
    fn stream_accumulates_to_the_non_streaming_answer() {
        let input = [
            message_start(),
            thinking_start(0),
            thinking(0, "First."),
            signature(0),
            stop(0),
            text_start(1),
            text(1, "A"),
            stop(1),
            text_start(2),
            text(2, "B"),
            stop(2),
            block_start(3, json!({"type":"redacted_thinking","data":"xyz"})),
            stop(3),
            thinking_start(4),
            thinking(4, "Second."),
            signature(4),
            stop(4),
            text_start(5),
            text(5, "C"),
            stop(5),
            tool_start(6, "toolu_z", "calc"),
            partial(6, "{\"x\":1}"),
            stop(6),
            message_delta("tool_use", 20),
            message_stop(),
        ]
        .concat();
        let (_, streamed) = run(&facts(true), &input);
        let body = json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-upstream",
            "content":[{"type":"thinking","thinking":"First.","signature":"s1"},{"type":"text","text":"A"},
                {"type":"text","text":"B"},{"type":"redacted_thinking","data":"xyz"},
                {"type":"thinking","thinking":"Second.","signature":"s2"},{"type":"text","text":"C"},
                {"type":"tool_use","id":"toolu_z","name":"calc","input":{"x":1}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":20}});
        let completion: Value =
            serde_json::from_slice(&anthropic_to_openai(body.to_string().as_bytes(), &ctx(), &facts(true)).unwrap())
                .unwrap();
        let message = &completion["choices"][0]["message"];
        assert_eq!(streamed.content.as_deref(), message["content"].as_str());
        assert_eq!(streamed.content.as_deref(), Some("AB\n\nC"));
        assert_eq!(streamed.reasoning.as_deref(), message["reasoning_content"].as_str());
        assert_eq!(streamed.reasoning.as_deref(), Some("First.\nSecond."));
        let call = &message["tool_calls"][0];
        assert_eq!(
            streamed.tool_calls,
            vec![(
                call["id"].as_str().unwrap().to_owned(),
                call["function"]["name"].as_str().unwrap().to_owned(),
                call["function"]["arguments"].as_str().unwrap().to_owned()
            )]
        );
        assert_eq!(
            streamed.finish_reason.as_deref(),
            completion["choices"][0]["finish_reason"].as_str()
        );
        assert_eq!(streamed.usage.as_ref(), Some(&completion["usage"]));
        assert_eq!(completion["id"], "chatcmpl-msg_01");
    }
}
