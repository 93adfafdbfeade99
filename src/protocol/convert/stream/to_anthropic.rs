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
use crate::protocol::convert::error::{OpenAiErrorInfo, openai_event_error};
use crate::protocol::convert::response::{AntUsage, TokenUsage, reasoning_text, stop_reason_for};
use crate::protocol::convert::signature::mint_thinking_signature;
use crate::protocol::convert::{ConvertContext, RequestFacts};
use crate::protocol::messages::response::message_id;
use crate::protocol::messages::tool_ids::AnswerToolIds;
use crate::protocol::sse::{SseEvent, write_named_event};

/// Route B: converts an OpenAI chunk stream into an Anthropic event stream.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    model: String,
    response_id: String,
    signing_key: Vec<u8>,
    facts: RequestFacts,
    started: bool,
    next_index: usize,
    open: Open,
    /// Text of the open thinking block, to sign it.
    thinking: String,
    /// Whitespace-only content held back until something visible follows, so no blank block is emitted.
    pending_blank: Option<(Kind, String)>,
    tools: Vec<Tool>,
    tool_ids: AnswerToolIds,
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
    pub fn new(ctx: &ConvertContext, facts: &RequestFacts) -> Self {
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
            tool_ids: AnswerToolIds::new(ctx.response_id),
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
        let upstream_index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = function.get("name").and_then(Value::as_str).unwrap_or("");
        let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("");
        if !(id.is_empty() && name.is_empty() && arguments.is_empty()) {
            self.saw_content = true;
        }

        let known = self.tools.iter().rposition(|t| t.upstream_index == upstream_index);
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
            tracing::warn!(upstream_index, "tool-call fragment after its block was closed; dropped");
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
        let name = self.facts.tool_names.original(&tool.name).to_owned();
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
                let delta = BlockDelta::Signature { signature: &signature };
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
        let id = message_id(upstream_id, &self.response_id);
        let mut usage = self.usage_so_far();
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

    /// The upstream's cumulative usage, or the input estimate while it has reported none.
    fn usage_so_far(&self) -> TokenUsage {
        self.usage
            .unwrap_or(TokenUsage::estimated(self.facts.input_tokens_estimate))
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
        let usage = self.usage_so_far();
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

    /// An upstream error chunk mid-stream, mapped per §4.2 by the status it implies.
    fn fail_with(&mut self, info: &OpenAiErrorInfo, out: &mut Vec<u8>) {
        let mapped = info.to_anthropic(info.implied_status());
        self.fail(mapped.kind, &mapped.message, out);
    }

    fn text_delta(&self, index: usize, text: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::Text { text };
        self.emit(out, &Event::BlockDelta { index, delta });
    }

    fn thinking_delta(&self, index: usize, thinking: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::Thinking { thinking };
        self.emit(out, &Event::BlockDelta { index, delta });
    }

    fn json_delta(&self, index: usize, partial_json: &str, out: &mut Vec<u8>) {
        let delta = BlockDelta::InputJson { partial_json };
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
    fn on_eof(&mut self, out: &mut Vec<u8>) -> StreamStatus {
        if self.phase == Phase::Open {
            if self.finish_reason.is_some() {
                self.finish(out);
            } else {
                self.fail("api_error", INCOMPLETE_MESSAGE, out);
            }
        }
        self.phase.status()
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
        Event::BlockStart { index, content_block }
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
#[serde(tag = "type")]
enum BlockDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaBody<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::convert::ids::ToolNameMap;
    use crate::protocol::convert::test_support::{
        AnthropicResult, SIGNING_KEY, check_anthropic, converted, ctx, data_values, has_multibyte, oai,
    };

    /// The whole answer (through the hub) that the stream must agree with.
    fn openai_to_anthropic(
        body: &[u8],
        ctx: &crate::protocol::convert::ConvertContext,
        facts: &RequestFacts,
    ) -> Result<Vec<u8>, crate::protocol::convert::ConvertError> {
        use crate::protocol::Protocol;
        crate::protocol::hub::convert_answer(Protocol::Anthropic, Protocol::OpenAi, body, ctx, facts)
    }

    fn facts() -> RequestFacts {
        RequestFacts {
            input_tokens_estimate: 42,
            ..RequestFacts::default()
        }
    }

    /// Runs the Route B converter over `input` at every kind of split, checks the ANT grammar, and returns
    /// the bytes with what a client rebuilds from them.
    fn run(facts: &RequestFacts, input: &str) -> (Vec<u8>, AnthropicResult) {
        let make = || Box::new(OpenAiToAnthropicStream::new(&ctx(), facts)) as Box<dyn StreamConverter>;
        let out = converted(&make, input);
        let result = check_anthropic(&out);
        (out, result)
    }

    fn chunk(delta: Value, finish_reason: Value) -> String {
        oai(
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up",
            "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish_reason}]}),
        )
    }

    fn delta(delta: Value) -> String {
        chunk(delta, Value::Null)
    }

    fn finish(reason: &str) -> String {
        chunk(json!({}), json!(reason))
    }

    fn usage_chunk(usage: Value) -> String {
        oai(
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up",
            "choices":[],"usage":usage}),
        )
    }

    fn tool(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
        let mut function = json!({"arguments": args});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        let mut call = json!({"index": index, "function": function});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        json!({"tool_calls":[call]})
    }

    const DONE: &str = "data: [DONE]\n\n";

    fn start(input: u64) -> Value {
        json!({"type":"message_start","message":{"id":"msg_chatcmpl1","type":"message","role":"assistant",
            "model":"client-model","content":[],"stop_reason":null,"stop_sequence":null,
            "usage":{"input_tokens":input,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})
    }
    fn text_start(i: u64) -> Value {
        json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}})
    }
    fn thinking_start(i: u64) -> Value {
        json!({"type":"content_block_start","index":i,"content_block":{"type":"thinking","thinking":"","signature":""}})
    }
    fn tool_start(i: u64, id: &str, name: &str) -> Value {
        json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}})
    }
    fn text(i: u64, t: &str) -> Value {
        json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":t}})
    }
    fn thinking(i: u64, t: &str) -> Value {
        json!({"type":"content_block_delta","index":i,"delta":{"type":"thinking_delta","thinking":t}})
    }
    fn signature(i: u64, signed_text: &str) -> Value {
        let sig = mint_thinking_signature(SIGNING_KEY, signed_text);
        json!({"type":"content_block_delta","index":i,"delta":{"type":"signature_delta","signature":sig}})
    }
    fn partial(i: u64, p: &str) -> Value {
        json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":p}})
    }
    fn stop(i: u64) -> Value {
        json!({"type":"content_block_stop","index":i})
    }
    fn message_delta(reason: &str, usage: Value) -> Value {
        json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":usage})
    }
    fn usage(input: u64, read: u64, write: u64, output: u64) -> Value {
        json!({"input_tokens":input,"cache_creation_input_tokens":write,"cache_read_input_tokens":read,"output_tokens":output})
    }
    fn message_stop() -> Value {
        json!({"type":"message_stop"})
    }
    fn error(kind: &str, message: &str) -> Value {
        json!({"type":"error","error":{"type":kind,"message":message},"request_id":null})
    }

    fn assert_usage_invariant(result: &AnthropicResult, prompt_tokens: u64) {
        let u = &result.message["usage"];
        let sum = u["input_tokens"].as_u64().unwrap()
            + u["cache_read_input_tokens"].as_u64().unwrap()
            + u["cache_creation_input_tokens"].as_u64().unwrap();
        assert_eq!(
            sum, prompt_tokens,
            "input + cache_read + cache_creation == prompt_tokens"
        );
    }

    #[test]
    fn text_only() {
        let input = [
            delta(json!({"role":"assistant","content":""})),
            delta(json!({"content":"Hel"})),
            delta(json!({"content":"lo, héllo 你好 🎉"})),
            finish("stop"),
            usage_chunk(json!({"prompt_tokens":9,"completion_tokens":12,"total_tokens":21})),
            DONE.into(),
        ]
        .concat();
        assert!(has_multibyte(&input));
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                text_start(0),
                text(0, "Hel"),
                text(0, "lo, héllo 你好 🎉"),
                stop(0),
                message_delta("end_turn", usage(9, 0, 0, 12)),
                message_stop(),
            ]
        );
        assert_eq!(
            result.message["content"],
            json!([{"type":"text","text":"Hello, héllo 你好 🎉"}])
        );
        assert_usage_invariant(&result, 9);
    }

    #[test]
    fn thinking_then_text_from_reasoning_content() {
        let input = [
            delta(json!({"role":"assistant","content":null,"reasoning_content":""})),
            delta(json!({"reasoning_content":"Let me "})),
            delta(json!({"reasoning_content":"think → ok"})),
            delta(json!({"content":"\n\n"})),
            delta(json!({"content":"Answer"})),
            finish("stop"),
            usage_chunk(json!({"prompt_tokens":50,"completion_tokens":30,
                "prompt_tokens_details":{"cached_tokens":40},"completion_tokens_details":{"reasoning_tokens":20}})),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        let mut final_usage = usage(10, 40, 0, 30);
        final_usage["output_tokens_details"] = json!({"thinking_tokens":20});
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                thinking_start(0),
                thinking(0, "Let me "),
                thinking(0, "think → ok"),
                signature(0, "Let me think → ok"),
                stop(0),
                text_start(1),
                text(1, "\n\nAnswer"),
                stop(1),
                message_delta("end_turn", final_usage),
                message_stop(),
            ]
        );
        assert_usage_invariant(&result, 50);
    }

    #[test]
    fn reasoning_field_of_openrouter_and_vllm_is_thinking_too() {
        // vLLM may send both fields with the same text; it must appear once.
        let input = [
            delta(json!({"reasoning":"Plan","reasoning_content":"Plan"})),
            delta(json!({"reasoning":" more"})),
            delta(json!({"content":"Done"})),
            finish("stop"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        let content = &result.message["content"];
        assert_eq!(content[0]["type"], "thinking");
        assert_eq!(content[0]["thinking"], "Plan more");
        assert_eq!(
            content[0]["signature"],
            mint_thinking_signature(SIGNING_KEY, "Plan more")
        );
        assert_eq!(content[1], json!({"type":"text","text":"Done"}));
    }

    #[test]
    fn text_tool_text() {
        let input = [
            delta(json!({"role":"assistant","content":"Let me check."})),
            delta(tool(0, Some("call_a"), Some("weather"), "")),
            delta(tool(0, None, None, "{\"city\":")),
            delta(tool(0, None, None, "\"Paris\"}")),
            delta(json!({"content":"Checking now."})),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                text_start(0),
                text(0, "Let me check."),
                stop(0),
                tool_start(1, "call_a", "weather"),
                partial(1, "{\"city\":"),
                partial(1, "\"Paris\"}"),
                stop(1),
                text_start(2),
                text(2, "Checking now."),
                stop(2),
                message_delta("tool_use", usage(42, 0, 0, 0)),
                message_stop(),
            ]
        );
        assert_eq!(result.message["content"][1]["input"], json!({"city":"Paris"}));
    }

    #[test]
    fn three_parallel_tool_calls_with_fragmented_arguments() {
        let mut parts = vec![delta(json!({"role":"assistant","content":null}))];
        for (i, city) in ["Paris", "Rome", "Kraków"].iter().enumerate() {
            let i = i as u64;
            parts.push(delta(tool(i, Some(&format!("call_{i}")), Some("weather"), "")));
            parts.push(delta(tool(i, None, None, "{\"ci")));
            parts.push(delta(tool(i, None, None, "ty\": \"")));
            parts.push(delta(tool(i, None, None, &format!("{city}\"}}"))));
        }
        parts.push(finish("tool_calls"));
        parts.push(usage_chunk(
            json!({"prompt_tokens":100,"completion_tokens":60,"total_tokens":160}),
        ));
        parts.push(DONE.into());
        let (out, result) = run(&facts(), &parts.concat());
        let events = data_values(&out);
        assert_eq!(events[1], tool_start(0, "call_0", "weather"));
        assert_eq!(events[2], partial(0, "{\"ci"));
        assert_eq!(events[6], tool_start(1, "call_1", "weather"));
        assert_eq!(events[11], tool_start(2, "call_2", "weather"));
        assert_eq!(events.len(), 18);
        let inputs: Vec<&Value> = result.message["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| &b["input"])
            .collect();
        assert_eq!(
            inputs,
            [
                &json!({"city":"Paris"}),
                &json!({"city":"Rome"}),
                &json!({"city":"Kraków"})
            ]
        );
        assert_eq!(result.message["stop_reason"], "tool_use");
        assert_usage_invariant(&result, 100);
    }

    #[test]
    fn tool_name_split_across_chunks_comes_out_whole() {
        let input = [
            delta(tool(0, Some("call_x"), Some("get_"), "")),
            delta(tool(0, None, Some("weather"), "")),
            delta(tool(0, None, None, "{}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (out, _) = run(&facts(), &input);
        assert_eq!(
            data_values(&out)[1..4],
            [tool_start(0, "call_x", "get_weather"), partial(0, "{}"), stop(0)]
        );
    }

    #[test]
    fn upstream_repeating_id_and_name_on_every_chunk_produces_them_once() {
        let input = [
            delta(tool(0, Some("call_r"), Some("search"), "")),
            delta(tool(0, Some("call_r"), Some("search"), "{\"q\":")),
            delta(tool(0, Some("call_r"), Some("search"), "\"rust\"}")),
            delta(tool(1, Some("call_s"), Some("search"), "{\"q\":\"go\"}")),
            delta(tool(1, Some("call_s"), Some("search"), "")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                tool_start(0, "call_r", "search"),
                partial(0, "{\"q\":"),
                partial(0, "\"rust\"}"),
                stop(0),
                tool_start(1, "call_s", "search"),
                partial(1, "{\"q\":\"go\"}"),
                stop(1),
                message_delta("tool_use", usage(42, 0, 0, 0)),
                message_stop(),
            ]
        );
        assert_eq!(result.message["content"][1]["input"], json!({"q":"go"}));
    }

    #[test]
    fn host_reusing_index_zero_with_new_ids_gets_separate_blocks() {
        let input = [
            delta(tool(0, Some("call_1"), Some("a"), "{\"x\":1}")),
            delta(tool(0, Some("call_2"), Some("b"), "{\"y\":2}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        let content = &result.message["content"];
        assert_eq!(content[0]["name"], "a");
        assert_eq!(content[1]["name"], "b");
        assert_eq!(content[1]["input"], json!({"y":2}));
    }

    #[test]
    fn usage_only_final_chunk_sets_cumulative_usage() {
        let input = [
            delta(json!({"content":"Hi"})),
            finish("length"),
            usage_chunk(json!({"prompt_tokens":1200,"completion_tokens":5,"total_tokens":1205,
                "prompt_tokens_details":{"cached_tokens":1000,"cache_write_tokens":150}})),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            *data_values(&out).iter().rev().nth(1).unwrap(),
            message_delta("max_tokens", usage(50, 1000, 150, 5))
        );
        assert_usage_invariant(&result, 1200);
    }

    #[test]
    fn deepseek_cache_hit_tokens_count_as_cache_reads() {
        let input = [
            delta(json!({"content":"Hi"})),
            finish("stop"),
            usage_chunk(json!({"prompt_tokens":300,"completion_tokens":2,"prompt_cache_hit_tokens":256,"prompt_cache_miss_tokens":44})),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.message["usage"]["cache_read_input_tokens"], 256);
        assert_usage_invariant(&result, 300);
    }

    #[test]
    fn usage_on_the_first_chunk_replaces_the_estimate_in_message_start() {
        let first = oai(
            json!({"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],
            "usage":{"prompt_tokens":77,"completion_tokens":0}}),
        );
        let input = [first, delta(json!({"content":"ok"})), finish("stop"), DONE.into()].concat();
        let (out, _) = run(&facts(), &input);
        assert_eq!(data_values(&out)[0], start(77));
    }

    #[test]
    fn done_without_finish_reason_ends_normally() {
        let input = [delta(json!({"content":"partial but complete"})), DONE.into()].concat();
        let (out, result) = run(&facts(), &input);
        assert!(result.error.is_none());
        assert_eq!(
            data_values(&out)[3..],
            [stop(0), message_delta("end_turn", usage(42, 0, 0, 0)), message_stop()]
        );
    }

    #[test]
    fn done_with_nothing_before_it_is_an_upstream_failure() {
        let (out, result) = run(&facts(), DONE);
        assert_eq!(
            data_values(&out),
            vec![error("api_error", "upstream stream ended without a response")]
        );
        assert!(result.message.is_null());
    }

    #[test]
    fn eof_mid_tool_is_an_in_band_error_not_a_normal_end() {
        let input = [
            delta(json!({"content":"Running"})),
            delta(tool(0, Some("call_t"), Some("bash"), "{\"cmd\":")),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                text_start(0),
                text(0, "Running"),
                stop(0),
                tool_start(1, "call_t", "bash"),
                partial(1, "{\"cmd\":"),
                stop(1),
                error("api_error", "upstream stream ended before completion"),
            ]
        );
        assert!(result.error.is_some());
    }

    #[test]
    fn eof_after_finish_reason_without_done_ends_normally() {
        let input = [delta(json!({"content":"ok"})), finish("stop")].concat();
        let (out, result) = run(&facts(), &input);
        assert!(result.error.is_none());
        assert_eq!(*data_values(&out).last().unwrap(), message_stop());
    }

    #[test]
    fn error_event_after_two_deltas() {
        let input = [
            delta(json!({"content":"one "})),
            delta(json!({"content":"two"})),
            oai(json!({"error":{"message":"The server is overloaded","type":"server_error","code":"server_is_overloaded"}})),
            delta(json!({"content":"ignored"})),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(
            data_values(&out),
            vec![
                start(42),
                text_start(0),
                text(0, "one "),
                text(0, "two"),
                stop(0),
                error("overloaded_error", "The server is overloaded"),
            ]
        );
        assert_eq!(result.error.unwrap()["type"], "overloaded_error");
    }

    #[test]
    fn vllm_error_object_mid_stream_maps_by_its_code() {
        let input = [
            delta(json!({"content":"x"})),
            oai(json!({"object":"error","message":"rate limited","type":"RateLimitError","code":429})),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.error.unwrap()["type"], "rate_limit_error");
    }

    #[test]
    fn whitespace_only_content_before_a_tool_call_makes_no_text_block() {
        let input = [
            delta(json!({"content":"\n\n"})),
            delta(json!({"content":" "})),
            delta(tool(0, Some("call_w"), Some("ls"), "")),
            finish("stop"),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(data_values(&out)[1], tool_start(0, "call_w", "ls"));
        // OpenAI answers "stop" with tool calls; any tool call means tool_use (§2.3).
        assert_eq!(result.message["stop_reason"], "tool_use");
        assert_eq!(result.message["content"][0]["input"], json!({}));
    }

    #[test]
    fn kimi_style_tool_ids_are_sanitised_and_missing_ids_minted() {
        let input = [
            delta(tool(0, Some("functions.Bash:0"), Some("Bash"), "{}")),
            delta(tool(1, None, Some("Read"), "{}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        let content = &result.message["content"];
        assert_eq!(content[0]["id"], "functions_Bash_0");
        let minted = content[1]["id"].as_str().unwrap();
        assert!(minted.starts_with("toolu_") && minted.len() == 30, "{minted}");
    }

    #[test]
    fn shortened_tool_names_are_mapped_back() {
        let facts = RequestFacts {
            tool_names: ToolNameMap::from_renamed([("mcp__srv__short_1a2b3c4d", "mcp__srv__a_very_long_name")]),
            ..facts()
        };
        let input = [
            delta(tool(0, Some("c"), Some("mcp__srv__short_1a2b3c4d"), "{}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts, &input);
        assert_eq!(result.message["content"][0]["name"], "mcp__srv__a_very_long_name");
    }

    #[test]
    fn fragments_for_an_already_closed_tool_do_not_reopen_it() {
        let input = [
            delta(tool(0, Some("c0"), Some("a"), "{}")),
            delta(tool(1, Some("c1"), Some("b"), "{}")),
            delta(tool(0, None, None, "{\"late\":1}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (out, result) = run(&facts(), &input);
        assert_eq!(result.message["content"][0]["input"], json!({}));
        assert_eq!(result.message["content"].as_array().unwrap().len(), 2);
        assert_eq!(data_values(&out).len(), 9);
    }

    #[test]
    fn a_tool_call_that_never_gets_a_name_is_dropped() {
        let input = [
            delta(json!({"content":"hi"})),
            delta(tool(0, Some("c"), None, "{}")),
            finish("tool_calls"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.message["content"].as_array().unwrap().len(), 1);
        assert_eq!(result.message["stop_reason"], "end_turn");
    }

    #[test]
    fn refusal_is_text_and_stop_reason_refusal() {
        let input = [
            delta(json!({"refusal":"I can't help with that."})),
            finish("stop"),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.message["content"][0]["text"], "I can't help with that.");
        assert_eq!(result.message["stop_reason"], "refusal");
    }

    #[test]
    fn vllm_stop_reason_string_is_the_matched_stop_sequence() {
        let facts = RequestFacts {
            stop_sequences: vec!["END".into()],
            ..facts()
        };
        let stop_chunk = oai(
            json!({"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}),
        );
        let input = [delta(json!({"content":"a"})), stop_chunk, DONE.into()].concat();
        let (_, result) = run(&facts, &input);
        assert_eq!(result.message["stop_reason"], "stop_sequence");
        assert_eq!(result.message["stop_sequence"], "END");
    }

    #[test]
    fn finish_reason_table_in_streams() {
        for (finish_reason, expected) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
            ("tool_calls", "end_turn"),
            ("function_call", "end_turn"),
            ("eos", "end_turn"),
        ] {
            let input = [delta(json!({"content":"a"})), finish(finish_reason), DONE.into()].concat();
            let (_, result) = run(&facts(), &input);
            assert_eq!(result.message["stop_reason"], expected, "{finish_reason}");
        }
    }

    #[test]
    fn transport_failures_and_keep_alive() {
        let mut conv = OpenAiToAnthropicStream::new(&ctx(), &facts());
        let mut out = Vec::new();
        conv.keep_alive(&mut out);
        assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        out.clear();
        let status = conv.on_event(
            &SseEvent {
                event: None,
                data: json!({"id":"x","choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}).to_string(),
            },
            &mut out,
        );
        assert_eq!(status, StreamStatus::Continue);
        conv.on_error(StreamFailure::Timeout, "upstream idle for 300 s", &mut out);
        let result = check_anthropic(&out);
        assert_eq!(result.error.unwrap()["type"], "timeout_error");
        // The open thinking block was signed and closed before the error.
        assert_eq!(result.message["content"][0]["thinking"], "hm");
        let len = out.len();
        conv.on_error(StreamFailure::Upstream, "again", &mut out);
        conv.on_eof(&mut out);
        assert_eq!(out.len(), len, "nothing after a terminal error");
    }

    #[test]
    fn invalid_json_event_is_an_in_band_error() {
        let input = [delta(json!({"content":"a"})), "data: {not json\n\n".into()].concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.error.unwrap()["type"], "api_error");
    }

    /// §7: what an Anthropic client accumulates from the stream equals the non-streaming answer for the same
    /// upstream data.
    #[test]
    fn stream_accumulates_to_the_non_streaming_answer() {
        let input = [
            delta(json!({"role":"assistant","reasoning_content":"Check both"})),
            delta(json!({"content":"Looking up."})),
            delta(tool(0, Some("c0"), Some("weather"), "{\"city\":\"Paris\"}")),
            delta(tool(1, Some("c1"), Some("weather"), "{\"city\":")),
            delta(tool(1, None, None, "\"Rome\"}")),
            finish("tool_calls"),
            usage_chunk(
                json!({"prompt_tokens":50,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":40}}),
            ),
            DONE.into(),
        ]
        .concat();
        let (_, result) = run(&facts(), &input);
        let body = json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up",
            "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
                "reasoning_content":"Check both","content":"Looking up.","tool_calls":[
                {"id":"c0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]}}],
            "usage":{"prompt_tokens":50,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":40}}});
        let message: Value =
            serde_json::from_slice(&openai_to_anthropic(body.to_string().as_bytes(), &ctx(), &facts()).unwrap())
                .unwrap();
        assert_eq!(result.message, message);
    }
}
