//! Encoding hub stream events as Chat Completions chunks for a Chat client: a role chunk first, then
//! content, reasoning and tool-call deltas (tool calls numbered densely from 0 in the order they start), the
//! finish reason, a usage chunk when the client asked for one, and `[DONE]`. A failure ends the stream with
//! a `data: {"error":…}` line and no `[DONE]`.

use serde_json::{Value, json};

use super::response::{ChatAnswer, finish_reason, usage_json};
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, StopReason, StreamEncoder, Usage};
use crate::protocol::sse::write_data_event;

pub struct ChatStreamEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    /// Upstream tool index → the client's tool index.
    tools: Vec<usize>,
    /// Text pieces are joined as whole answers join them: a blank line where a call or reasoning came between.
    texts: super::response::Joiner,
    text_open: bool,
    /// Reasoning blocks are joined with a newline, as whole answers join them.
    reasonings: super::response::Joiner,
    reasoning_open: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

impl ChatStreamEncoder {
    pub fn new(answer: &ChatAnswer<'_>) -> Self {
        Self {
            id: format!("chatcmpl-{}", answer.id_hex),
            created: answer.created,
            model: answer.model.to_owned(),
            include_usage: answer.include_usage,
            started: false,
            tools: Vec::new(),
            texts: super::response::Joiner::text(),
            text_open: false,
            reasonings: super::response::Joiner::reasoning(),
            reasoning_open: false,
            stop: None,
            usage: None,
            finished: false,
        }
    }

    /// One chunk. `usage` is on every chunk (null until the last) only when the client asked for usage, as
    /// OpenAI does.
    fn chunk(&self, choices: Value, usage: Value, out: &mut Vec<u8>) {
        let mut chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices});
        if self.include_usage {
            chunk["usage"] = usage;
        }
        write_data_event(out, chunk.to_string().as_bytes());
    }

    fn delta(&mut self, delta: Value, out: &mut Vec<u8>) {
        self.start(out);
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
            Value::Null,
            out,
        );
    }

    /// A block of another kind than text: the next text is a new paragraph.
    fn other_block(&mut self) {
        self.text_open = false;
        self.texts.mark_other_block();
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
                Value::Null,
                out,
            );
        }
    }

    fn tool_index(&mut self, upstream: usize) -> usize {
        match self.tools.iter().position(|&u| u == upstream) {
            Some(k) => k,
            None => {
                self.tools.push(upstream);
                self.tools.len() - 1
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        self.chunk(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish_reason(stop)}]),
            Value::Null,
            out,
        );
        if self.include_usage {
            let usage = self.usage.unwrap_or_default();
            self.chunk(json!([]), usage_json(&usage), out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }

    fn write_error(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        self.start(out);
        let kind = crate::protocol::openai::error_type_for_code(code);
        let error = crate::protocol::openai::error_body(message, kind, None, Some(code));
        write_data_event(out, &error);
        self.finished = true;
    }
}

impl StreamEncoder for ChatStreamEncoder {
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        match event {
            Event::MessageId(id) if !self.started => {
                self.id = super::response::completion_id(Some(&id), &self.id);
            }
            // Chat has no field for it: `stop` says enough.
            Event::MessageId(_) | Event::StopSequence(_) => {}
            Event::ReasoningDelta(mut d) => {
                self.other_block();
                if !self.reasoning_open {
                    self.reasoning_open = true;
                    d.insert_str(0, self.reasonings.separator());
                }
                self.delta(json!({"reasoning_content": d}), out)
            }
            // Chat clients cannot carry the artefact (the text was streamed); it ends a reasoning block.
            Event::ReasoningSeal(_) => self.reasoning_open = false,
            Event::TextDelta(mut d) => {
                if !self.text_open {
                    self.text_open = true;
                    d.insert_str(0, self.texts.separator());
                }
                self.delta(json!({"content": d}), out)
            }
            Event::RefusalDelta(d) => self.delta(json!({"refusal": d}), out),
            Event::ToolCallStart { index, id, name } => {
                self.other_block();
                let k = self.tool_index(index);
                let id = id.unwrap_or_else(|| format!("call_{}_{k}", self.id));
                self.delta(
                    json!({"tool_calls": [{"index": k, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                    out,
                );
            }
            Event::ToolCallDelta { index, arguments } => {
                let k = self.tool_index(index);
                self.delta(
                    json!({"tool_calls": [{"index": k, "function": {"arguments": arguments}}]}),
                    out,
                );
            }
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Done => {
                self.complete(out);
                return StreamStatus::Finished;
            }
            Event::Error { message, code } => {
                self.write_error(&message, code.as_deref().unwrap_or("server_error"), out);
                return StreamStatus::Failed;
            }
        }
        StreamStatus::Continue
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    fn fail(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        let code = match failure {
            StreamFailure::Timeout => "timeout",
            StreamFailure::Upstream => "stream_incomplete",
        };
        self.write_error(message, code, out);
    }

    /// An SSE comment: OpenAI decoders ignore it.
    fn keep_alive(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}
