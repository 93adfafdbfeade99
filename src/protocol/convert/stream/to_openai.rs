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
use crate::protocol::convert::ConvertContext;
use crate::protocol::convert::error::{
    OpenAiError, anthropic_event_error, openai_error_for_anthropic,
};
use crate::protocol::convert::response::{
    JSON_OUTPUT_TOOL, OaiUsage, ReasoningJoiner, ResponseFacts, TextJoiner, TokenUsage,
    finish_reason_for, openai_completion_id,
};
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
    text: TextJoiner,
    reasoning: ReasoningJoiner,
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
    pub fn new(ctx: &ConvertContext, facts: &ResponseFacts) -> Self {
        Self {
            model: ctx.client_model.to_owned(),
            created: ctx.created,
            response_id: ctx.response_id.to_owned(),
            include_usage: facts.include_usage,
            json_output_tool: facts.json_output_tool,
            chunk_id: None,
            blocks: Vec::new(),
            next_tool: 0,
            text: TextJoiner::default(),
            reasoning: ReasoningJoiner::default(),
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
            "tool_use" if self.json_output_tool && field("name") == JSON_OUTPUT_TOOL => {
                Block::Text {
                    started: false,
                    json_input: Some(initial_input(block)),
                }
            }
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
                    input: initial_input(block),
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
            ("thinking_delta", Some(Block::Thinking { .. })) => {
                self.emit_reasoning(index, field("thinking"), out)
            }
            ("input_json_delta", Some(Block::Text { .. })) => {
                self.emit_text(index, field("partial_json"), out)
            }
            ("input_json_delta", Some(Block::Tool { .. })) => {
                self.emit_arguments(index, field("partial_json"), out)
            }
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
            function: FunctionDelta {
                name: None,
                arguments,
            },
        };
        self.emit(out, Delta::tool_call(call), None);
    }

    /// Emits the role chunk once; `upstream_id` is the ANT message id when known.
    fn start(&mut self, upstream_id: Option<&str>, out: &mut Vec<u8>) {
        if self.chunk_id.is_some() {
            return;
        }
        self.chunk_id = Some(openai_completion_id(upstream_id, &self.response_id));
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

    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        choices: &[ChunkChoice],
        usage: Option<Option<&OaiUsage>>,
    ) {
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
    fn on_eof(&mut self, out: &mut Vec<u8>) {
        if self.phase == Phase::Open {
            self.fail(&server_error(INCOMPLETE_MESSAGE, "stream_incomplete"), out);
        }
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

/// A `tool_use` block's starting input as compact JSON; `{}` when absent.
fn initial_input(block: &Value) -> String {
    match block.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input) => input.to_string(),
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
