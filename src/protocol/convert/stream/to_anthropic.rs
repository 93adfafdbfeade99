//! Route B stream (§3.4): OpenAI `chat.completion.chunk`s in, Anthropic Messages events out.
//!
//! Anthropic clients rebuild the message from `content_block_*` events by index, so the converter keeps one
//! block open at a time, numbers blocks densely in start order, starts a block only when its first non-blank
//! content arrives, and closes the open block before any switch of kind (thinking → text → tool_use). A thinking
//! block gets a router-minted `signature_delta` just before its stop.
//!
//! Tool calls: a block starts once the tool's name is complete, which is when its first argument fragment
//! arrives or when the call ends. That makes names split across chunks come out whole, and hosts that repeat
//! `id`/`name` on every chunk produce them once. A repeated name is recognised by being equal to the name so
//! far; a different non-empty `id` at a known index starts a new call (hosts that reuse index 0).
//!
//! Not done here (documented in `docs/spec-deviations-response.md`): `<think>` tags inside `content` and the
//! `buffered` tool mode for hosts that interleave tool calls.

use serde::Serialize;
use serde_json::Value;

use super::{INCOMPLETE_MESSAGE, Phase, StreamConverter, StreamFailure, StreamStatus};
use crate::protocol::anthropic;
use crate::protocol::convert::ConvertContext;
use crate::protocol::convert::error::{OpenAiErrorInfo, openai_event_error};
use crate::protocol::convert::response::{
    AntUsage, ResponseFacts, TokenUsage, ToolIds, anthropic_message_id, mint_thinking_signature,
    reasoning_text, stop_reason_for,
};
use crate::protocol::sse::{SseEvent, write_named_event};

/// Route B: converts an OpenAI chunk stream into an Anthropic event stream.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    response_id: String,
    signing_key: Vec<u8>,
    facts: ResponseFacts,
    started: bool,
    next_index: usize,
    open: Open,
    /// Text of the open thinking block, to sign it.
    thinking: String,
    /// Whitespace-only content held back until something visible follows, so no blank block is emitted.
    pending_blank: Option<(Kind, String)>,
    tools: Vec<Tool>,
    tool_ids: ToolIds,
    finish_reason: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<TokenUsage>,
    saw_content: bool,
    saw_tool: bool,
    saw_refusal: bool,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text(usize),
    Thinking(usize),
    /// Position in `tools`.
    Tool(usize),
}

#[derive(Debug)]
struct Tool {
    /// The upstream's `index` for this call.
    upstream_index: u64,
    upstream_id: String,
    name: String,
    /// Arguments received before the block could start.
    buffered: String,
    /// ANT block index once started.
    block: Option<usize>,
    closed: bool,
}

impl OpenAiToAnthropicStream {
    pub fn new(ctx: &ConvertContext, facts: &ResponseFacts) -> Self {
        Self {
            model: ctx.client_model.to_owned(),
            response_id: ctx.response_id.to_owned(),
            signing_key: ctx.signing_key.to_vec(),
            facts: facts.clone(),
            started: false,
            next_index: 0,
            open: Open::None,
            thinking: String::new(),
            pending_blank: None,
            tools: Vec::new(),
            tool_ids: ToolIds::new(ctx.response_id),
            finish_reason: None,
            stop_sequence: None,
            usage: None,
            saw_content: false,
            saw_tool: false,
            saw_refusal: false,
            phase: Phase::Open,
        }
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(TokenUsage::from_openai(usage));
        }
        self.start(chunk.get("id").and_then(Value::as_str), out);
        let choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Only choice 0 is converted (n > 1 is refused on the request side).
        let Some(choice) = choices
            .iter()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            self.on_delta(delta, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
            self.stop_sequence = self.facts.matched_stop_sequence(choice.get("stop_reason"));
            self.close_open(out);
        }
    }

    fn on_delta(&mut self, delta: &Value, out: &mut Vec<u8>) {
        let reasoning = reasoning_text(delta);
        self.on_text(Kind::Thinking, reasoning, out);
        if let Some(content) = delta.get("content").and_then(Value::as_str) {
            self.on_text(Kind::Text, content, out);
        }
        if let Some(refusal) = delta.get("refusal").and_then(Value::as_str) {
            if !refusal.is_empty() {
                self.saw_refusal = true;
            }
            self.on_text(Kind::Text, refusal, out);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (position, call) in calls.iter().enumerate() {
                self.on_tool_call(position, call, out);
            }
        }
    }

    fn on_text(&mut self, kind: Kind, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.saw_content = true;
        match (kind, self.open) {
            (Kind::Text, Open::Text(index)) => self.text_delta(index, text, out),
            (Kind::Thinking, Open::Thinking(index)) => {
                self.thinking.push_str(text);
                self.thinking_delta(index, text, out);
            }
            _ if text.trim().is_empty() => match &mut self.pending_blank {
                Some((pending_kind, blank)) if *pending_kind == kind => blank.push_str(text),
                pending => *pending = Some((kind, text.to_owned())),
            },
            _ => {
                self.close_open(out);
                let mut text = text.to_owned();
                if let Some((pending_kind, blank)) = self.pending_blank.take()
                    && pending_kind == kind
                {
                    text.insert_str(0, &blank);
                }
                let index = self.next_block_index();
                match kind {
                    Kind::Text => {
                        self.emit(out, &Event::block_start(index, StartBlock::Text { text: "" }));
                        self.open = Open::Text(index);
                        self.text_delta(index, &text, out);
                    }
                    Kind::Thinking => {
                        let block = StartBlock::Thinking {
                            thinking: "",
                            signature: "",
                        };
                        self.emit(out, &Event::block_start(index, block));
                        self.open = Open::Thinking(index);
                        self.thinking_delta(index, &text, out);
                        self.thinking = text;
                    }
                }
            }
        }
    }

    fn on_tool_call(&mut self, position: usize, call: &Value, out: &mut Vec<u8>) {
        let upstream_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !(id.is_empty() && name.is_empty() && arguments.is_empty()) {
            self.saw_content = true;
        }

        let known = self
            .tools
            .iter()
            .rposition(|t| t.upstream_index == upstream_index);
        let is_new = match known {
            None => true,
            Some(slot) => {
                let tool = &self.tools[slot];
                !id.is_empty() && !tool.upstream_id.is_empty() && tool.upstream_id != id
            }
        };
        let slot = if is_new {
            self.close_open(out);
            self.pending_blank = None;
            self.tools.push(Tool {
                upstream_index,
                upstream_id: id.to_owned(),
                name: String::new(),
                buffered: String::new(),
                block: None,
                closed: false,
            });
            self.open = Open::Tool(self.tools.len() - 1);
            self.tools.len() - 1
        } else {
            known.expect("known tool")
        };

        let tool = &mut self.tools[slot];
        if tool.closed {
            // Out-of-order upstream: the block is already stopped, so these arguments cannot be delivered.
            tracing::warn!(
                upstream_index,
                "tool-call fragment after its block was closed; dropped"
            );
            return;
        }
        if tool.upstream_id.is_empty() {
            tool.upstream_id = id.to_owned();
        }
        // Before the block starts the name may still arrive in fragments; a value equal to the name so far is
        // a host repeating it.
        if tool.block.is_none() && !name.is_empty() && name != tool.name {
            tool.name.push_str(name);
        }
        if arguments.is_empty() {
            return;
        }
        match tool.block {
            Some(index) => self.json_delta(index, arguments, out),
            None => {
                tool.buffered.push_str(arguments);
                if !tool.name.is_empty() {
                    self.start_tool(slot, out);
                }
            }
        }
    }

    /// Starts a tool's block and flushes the arguments buffered so far as one delta.
    fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
        let index = self.next_block_index();
        let tool = &mut self.tools[slot];
        tool.block = Some(index);
        let upstream_id = (!tool.upstream_id.is_empty()).then_some(tool.upstream_id.as_str());
        let id = self.tool_ids.assign(upstream_id, index);
        let name = self.facts.original_tool_name(&tool.name).to_owned();
        let buffered = std::mem::take(&mut tool.buffered);
        self.saw_tool = true;
        let block = StartBlock::ToolUse {
            id: &id,
            name: &name,
            input: EmptyObject {},
        };
        self.emit(out, &Event::block_start(index, block));
        if !buffered.is_empty() {
            self.json_delta(index, &buffered, out);
        }
    }

    /// Closes the open block (§3.4 `close_open`): a thinking block first gets its signature; a tool that never
    /// started is started now if it has a name, and dropped if it has none.
    fn close_open(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Text(index) => self.emit(out, &Event::BlockStop { index }),
            Open::Thinking(index) => {
                let signature = mint_thinking_signature(&self.signing_key, &self.thinking);
                self.thinking.clear();
                let delta = BlockDelta::SignatureDelta {
                    signature: &signature,
                };
                self.emit(out, &Event::BlockDelta { index, delta });
                self.emit(out, &Event::BlockStop { index });
            }
            Open::Tool(slot) => {
                if self.tools[slot].block.is_none() {
                    if self.tools[slot].name.is_empty() {
                        tracing::warn!("dropping an upstream tool call that never got a name");
                    } else {
                        self.start_tool(slot, out);
                    }
                }
                let tool = &mut self.tools[slot];
                tool.closed = true;
                if let Some(index) = tool.block {
                    self.emit(out, &Event::BlockStop { index });
                }
            }
        }
    }

    fn next_block_index(&mut self) -> usize {
        self.pending_blank = None;
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// Emits `message_start` once, before anything else. Usage on the first chunk beats the estimate.
    fn start(&mut self, upstream_id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = anthropic_message_id(upstream_id, &self.response_id);
        let mut usage = self.usage.unwrap_or(TokenUsage {
            input: self.facts.input_tokens_estimate,
            ..TokenUsage::default()
        });
        usage.output = 1;
        usage.thinking = None;
        let message = StartMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: usage.to_anthropic(),
        };
        self.emit(out, &Event::MessageStart { message });
    }

    /// The normal end: `message_delta` with the stop reason and cumulative usage, then `message_stop`.
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let stop_reason = stop_reason_for(
            self.finish_reason.as_deref(),
            self.saw_tool,
            self.saw_refusal,
            self.stop_sequence.is_some(),
        );
        let stop_sequence = if stop_reason == "stop_sequence" {
            self.stop_sequence.as_deref()
        } else {
            None
        };
        let usage = self.usage.unwrap_or(TokenUsage {
            input: self.facts.input_tokens_estimate,
            ..TokenUsage::default()
        });
        let event = Event::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason,
                stop_sequence,
            },
            usage: usage.to_anthropic(),
        };
        self.emit(out, &event);
        self.emit(out, &Event::MessageStop);
        self.phase = Phase::Finished;
    }

    /// The in-band error (§3.5.2): the open block is closed so what arrived stays well-formed, then
    /// `event: error` ends the stream (no `message_stop`).
    fn fail(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        if self.started {
            self.close_open(out);
        }
        write_named_event(out, "error", &anthropic::error_body(kind, message, None));
        self.phase = Phase::Failed;
    }

    fn text_delta(&self, index: usize, text: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::TextDelta { text };
        self.emit(out, &Event::BlockDelta { index, delta });
    }

    fn thinking_delta(&self, index: usize, thinking: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::ThinkingDelta { thinking };
        self.emit(out, &Event::BlockDelta { index, delta });
    }

    fn json_delta(&self, index: usize, partial_json: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::InputJsonDelta { partial_json };
        self.emit(out, &Event::BlockDelta { index, delta });
    }

    fn emit(&self, out: &mut Vec<u8>, event: &Event) {
        let data = serde_json::to_vec(event).expect("event serialises");
        write_named_event(out, event.name(), &data);
    }
}

impl StreamConverter for OpenAiToAnthropicStream {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> StreamStatus {
        if self.phase != Phase::Open {
            return self.phase.status();
        }
        if event.is_done_marker() {
            // `[DONE]` is the upstream saying it finished; without any content or finish_reason there is no
            // answer at all, which is an upstream failure (§3.4).
            if self.finish_reason.is_some() || self.saw_content {
                self.start(None, out);
                self.finish(out);
            } else {
                self.fail("api_error", "upstream stream ended without a response", out);
            }
            return self.phase.status();
        }
        if let Some(info) = openai_event_error(event) {
            self.fail_with(&info, out);
            return self.phase.status();
        }
        if event.data.trim().is_empty() {
            return StreamStatus::Continue;
        }
        match serde_json::from_str::<Value>(&event.data) {
            Ok(chunk) if chunk.is_object() => self.on_chunk(&chunk, out),
            _ => self.fail("api_error", "upstream sent an invalid stream event", out),
        }
        self.phase.status()
    }

    /// Clean end without `[DONE]`: a `finish_reason` was seen (some hosts omit `[DONE]`). Anything else,
    /// including EOF in the middle of a tool call, is a truncated answer and gets an in-band error.
    fn on_eof(&mut self, out: &mut Vec<u8>) {
        if self.phase != Phase::Open {
            return;
        }
        if self.finish_reason.is_some() {
            self.finish(out);
        } else {
            self.fail("api_error", INCOMPLETE_MESSAGE, out);
        }
    }

    fn on_error(&mut self, kind: StreamFailure, message: &str, out: &mut Vec<u8>) {
        if self.phase != Phase::Open {
            return;
        }
        let kind = match kind {
            StreamFailure::Timeout => "timeout_error",
            StreamFailure::Upstream => "api_error",
        };
        self.fail(kind, message, out);
    }

    fn keep_alive(&self, out: &mut Vec<u8>) {
        write_named_event(out, "ping", br#"{"type":"ping"}"#);
    }
}

impl OpenAiToAnthropicStream {
    fn fail_with(&mut self, info: &OpenAiErrorInfo, out: &mut Vec<u8>) {
        let mapped = info.to_anthropic(info.implied_status());
        self.fail(mapped.kind, &mapped.message, out);
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart {
        message: StartMessage<'a>,
    },
    #[serde(rename = "content_block_start")]
    BlockStart {
        index: usize,
        content_block: StartBlock<'a>,
    },
    #[serde(rename = "content_block_delta")]
    BlockDelta {
        index: usize,
        delta: BlockDelta<'a>,
    },
    #[serde(rename = "content_block_stop")]
    BlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaBody<'a>,
        usage: AntUsage,
    },
    MessageStop,
}

impl<'a> Event<'a> {
    fn block_start(index: usize, content_block: StartBlock<'a>) -> Self {
        Event::BlockStart {
            index,
            content_block,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::BlockStart { .. } => "content_block_start",
            Event::BlockDelta { .. } => "content_block_delta",
            Event::BlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'a str>,
    stop_sequence: Option<&'a str>,
    usage: AntUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta<'a> {
    TextDelta { text: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaBody<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}
