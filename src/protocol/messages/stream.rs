//! Encoding hub stream events as Anthropic Messages events for an Anthropic client: `message_start`, one
//! content block open at a time with dense indexes (thinking closed with the router's signature, text, tool
//! use with `input_json_delta`), `message_delta` with the stop reason and usage, `message_stop`. A failure
//! ends the stream with an `error` event and no `message_stop`.

use serde::Serialize;

use super::response::{MessagesAnswer, UsageOut};
use crate::protocol::convert::signature::mint_thinking_signature;
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, StopReason, StreamEncoder, Usage};
use crate::protocol::sse::write_named_event;

/// The events around the deltas, each once or once a block; field order is the key order on the wire.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FrameOut<'a> {
    MessageStart { message: StartOut<'a> },
    ContentBlockStart { index: usize, content_block: BlockOut<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: StopOut<'a>, usage: UsageOut },
    MessageStop,
}

impl FrameOut<'_> {
    fn name(&self) -> &'static str {
        match self {
            FrameOut::MessageStart { .. } => "message_start",
            FrameOut::ContentBlockStart { .. } => "content_block_start",
            FrameOut::ContentBlockStop { .. } => "content_block_stop",
            FrameOut::MessageDelta { .. } => "message_delta",
            FrameOut::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
struct StartOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

/// A block as `content_block_start` opens it, empty.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

/// A block delta; its `type` is the variant's name with `_delta` (`text_delta`, ...).
#[derive(serde::Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

pub struct MessagesStreamEncoder {
    id: String,
    tool_ids: super::tool_ids::AnswerToolIds,
    /// Whitespace that came while no text block was open, held until real text follows.
    blank: String,
    model: String,
    signing_key: Vec<u8>,
    input_estimate: u64,
    started: bool,
    next_index: usize,
    open: Open,
    stop: Option<StopReason>,
    stop_sequence: Option<String>,
    usage: Option<Usage>,
    finished: bool,
}

enum Open {
    None,
    Thinking { index: usize, text: String },
    Text { index: usize },
    Tool { index: usize, upstream: usize },
}

impl MessagesStreamEncoder {
    pub fn new(answer: &MessagesAnswer<'_>) -> Self {
        Self {
            id: format!("msg_{}", answer.id_hex),
            tool_ids: super::tool_ids::AnswerToolIds::new(answer.id_hex),
            blank: String::new(),
            model: answer.model.to_owned(),
            signing_key: answer.signing_key.to_owned(),
            input_estimate: answer.input_estimate,
            started: false,
            next_index: 0,
            open: Open::None,
            stop: None,
            stop_sequence: None,
            usage: None,
            finished: false,
        }
    }

    fn event(&self, frame: FrameOut<'_>, out: &mut Vec<u8>) {
        crate::protocol::json::write_event(out, Some(frame.name()), &frame);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        // As Anthropic does: `message_start` counts one output token; the input is the estimate until the
        // upstream says.
        let mut usage = self.usage.unwrap_or_default();
        if usage.input == 0 {
            usage.input = self.input_estimate;
        }
        usage.output = usage.output.max(1);
        let message = StartOut {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: UsageOut::new(&usage),
        };
        self.event(FrameOut::MessageStart { message }, out);
    }

    fn open_block(&mut self, block: BlockOut<'_>, open: impl FnOnce(usize) -> Open, out: &mut Vec<u8>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        let frame = FrameOut::ContentBlockStart {
            index,
            content_block: block,
        };
        self.event(frame, out);
        self.open = open(index);
        index
    }

    /// A `content_block_delta`: the events a stream is mostly made of, so written by hand, in the bytes serde
    /// writes for a `BlockDeltaOut` (a test holds the two together).
    fn delta(&self, index: usize, delta: DeltaOut<'_>, out: &mut Vec<u8>) {
        let (kind_and_field, text): (&[u8], &str) = match delta {
            DeltaOut::Text { text } => (br#"text_delta","text":"#, text),
            DeltaOut::Thinking { thinking } => (br#"thinking_delta","thinking":"#, thinking),
            DeltaOut::Signature { signature } => (br#"signature_delta","signature":"#, signature),
            DeltaOut::InputJson { partial_json } => (br#"input_json_delta","partial_json":"#, partial_json),
        };
        out.reserve(text.len() + 128);
        out.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":");
        crate::protocol::json::push_u64(out, index as u64);
        out.extend_from_slice(br#","delta":{"type":""#);
        out.extend_from_slice(kind_and_field);
        crate::protocol::json::push_str(out, text);
        out.extend_from_slice(b"}}\n\n");
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let index = match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Thinking { index, text } => {
                let signature = mint_thinking_signature(&self.signing_key, &text);
                self.delta(index, DeltaOut::Signature { signature: &signature }, out);
                index
            }
            Open::Text { index } | Open::Tool { index, .. } => index,
        };
        self.event(FrameOut::ContentBlockStop { index }, out);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        let mut usage = self.usage.unwrap_or_default();
        if usage.input == 0 {
            // The upstream reported no usage; the local estimate beats a zero.
            usage.input = self.input_estimate;
        }
        let delta = StopOut {
            stop_reason: super::response::stop_reason_of(stop, self.stop_sequence.as_deref()),
            stop_sequence: self.stop_sequence.as_deref(),
        };
        let usage = UsageOut::new(&usage);
        self.event(FrameOut::MessageDelta { delta, usage }, out);
        self.event(FrameOut::MessageStop, out);
        self.finished = true;
    }

    fn write_error(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        // The block being streamed ends before the error, so the client's grammar stays whole.
        self.close(out);
        write_named_event(
            out,
            "error",
            &crate::protocol::anthropic::error_body(kind, message, None),
        );
        self.finished = true;
    }
}

impl StreamEncoder for MessagesStreamEncoder {
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        if let Event::MessageId(id) = &event {
            if !self.started {
                self.id = super::response::message_id(Some(id), &self.id);
            }
            return StreamStatus::Continue;
        }
        if matches!(event, Event::Done) && !self.started && self.stop.is_none() && self.usage.is_none() {
            // The end with nothing before it: the upstream said nothing, which is no answer.
            let error =
                crate::protocol::anthropic::error_body("api_error", "upstream stream ended without a response", None);
            write_named_event(out, "error", &error);
            self.finished = true;
            return StreamStatus::Failed;
        }
        if !matches!(event, Event::Usage(_)) {
            self.start(out);
        }
        match event {
            Event::MessageId(_) => {}
            Event::ReasoningDelta(d) => {
                let index = match &mut self.open {
                    Open::Thinking { index, text } => {
                        text.push_str(&d);
                        *index
                    }
                    _ => {
                        let text = d.clone();
                        self.open_block(
                            BlockOut::Thinking {
                                thinking: "",
                                signature: "",
                            },
                            |index| Open::Thinking { index, text },
                            out,
                        )
                    }
                };
                self.delta(index, DeltaOut::Thinking { thinking: &d }, out);
            }
            Event::TextDelta(d) | Event::RefusalDelta(d) => {
                let index = match self.open {
                    Open::Text { index } => index,
                    // Whitespace alone opens no block: Anthropic clients reject blank text blocks, and a
                    // call often follows it.
                    _ if d.trim().is_empty() => {
                        self.blank.push_str(&d);
                        return StreamStatus::Continue;
                    }
                    _ => self.open_block(BlockOut::Text { text: "" }, |index| Open::Text { index }, out),
                };
                let d = match self.blank.is_empty() {
                    true => d,
                    false => std::mem::take(&mut self.blank) + &d,
                };
                self.delta(index, DeltaOut::Text { text: &d }, out);
            }
            Event::ToolCallStart {
                index: upstream,
                id,
                name,
            } => {
                self.blank.clear();
                let id = self.tool_ids.assign(id.as_deref(), upstream);
                self.open_block(
                    BlockOut::ToolUse {
                        id: &id,
                        name: &name,
                        input: Empty {},
                    },
                    |index| Open::Tool { index, upstream },
                    out,
                );
            }
            Event::ToolCallDelta {
                index: upstream,
                arguments,
            } => {
                if let Open::Tool { index, upstream: open } = self.open
                    && open == upstream
                {
                    self.delta(
                        index,
                        DeltaOut::InputJson {
                            partial_json: &arguments,
                        },
                        out,
                    );
                }
            }
            // An Anthropic client gets the router's own signature instead (`close`).
            Event::ReasoningSeal(_) => {}
            Event::Stop(stop) => self.stop = Some(stop),
            Event::StopSequence(matched) => self.stop_sequence = Some(matched),
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Done => {
                self.complete(out);
                return StreamStatus::Finished;
            }
            Event::Error { message, code } => {
                // From the hub's vocabulary (OpenAI's codes and types) into Anthropic's error types.
                let kind = match code.as_deref() {
                    Some("rate_limit_exceeded" | "rate_limit_error") => "rate_limit_error",
                    Some("server_is_overloaded" | "service_unavailable_error") => "overloaded_error",
                    Some("insufficient_quota") => "billing_error",
                    Some("invalid_api_key" | "authentication_error") => "authentication_error",
                    Some("permission_error") => "permission_error",
                    Some("context_length_exceeded" | "invalid_request_error") => "invalid_request_error",
                    Some("timeout") => "timeout_error",
                    _ => "api_error",
                };
                self.write_error(kind, &message, out);
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
        let kind = match failure {
            StreamFailure::Timeout => "timeout_error",
            StreamFailure::Upstream => "api_error",
        };
        self.write_error(kind, message, out);
    }

    fn keep_alive(&self, out: &mut Vec<u8>) {
        write_named_event(out, "ping", br#"{"type":"ping"}"#);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`MessagesStreamEncoder::delta`] writes by hand, as serde would write it.
    #[derive(Serialize)]
    struct BlockDeltaOut<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        index: usize,
        delta: DeltaOut<'a>,
    }

    #[test]
    fn deltas_by_hand_equal_serde() {
        let answer = MessagesAnswer {
            id_hex: "0123",
            model: "claude-x",
            signing_key: b"key",
            input_estimate: 9,
        };
        let encoder = MessagesStreamEncoder::new(&answer);
        let text = "line\nand \"quotes\", \\ tab\t \u{1} é 😀";
        let deltas = || {
            [
                DeltaOut::Text { text },
                DeltaOut::Thinking { thinking: text },
                DeltaOut::Signature { signature: text },
                DeltaOut::InputJson { partial_json: text },
            ]
        };
        for (fast, tree) in deltas().into_iter().zip(deltas()) {
            let mut by_hand = Vec::new();
            encoder.delta(12, fast, &mut by_hand);
            let mut by_serde = Vec::new();
            let event = BlockDeltaOut {
                kind: "content_block_delta",
                index: 12,
                delta: tree,
            };
            crate::protocol::json::write_event(&mut by_serde, Some("content_block_delta"), &event);
            assert_eq!(
                String::from_utf8(by_hand).unwrap(),
                String::from_utf8(by_serde).unwrap()
            );
        }
    }

    #[test]
    fn the_frames_around_the_deltas_are_written_in_the_wire_key_order() {
        let answer = MessagesAnswer {
            id_hex: "0123",
            model: "claude-x",
            signing_key: b"key",
            input_estimate: 9,
        };
        let mut encoder = MessagesStreamEncoder::new(&answer);
        let mut out = Vec::new();
        encoder.encode(Event::TextDelta("Hi".into()), &mut out);
        let call = Event::ToolCallStart {
            index: 0,
            id: Some("call_1".into()),
            name: "f\"x".into(),
        };
        encoder.encode(call, &mut out);
        encoder.encode(Event::Stop(StopReason::ToolUse), &mut out);
        encoder.encode(Event::Done, &mut out);
        let text = String::from_utf8(out).unwrap();
        let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(
            data,
            [
                r#"{"type":"message_start","message":{"id":"msg_0123","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
                r#"{"type":"content_block_stop","index":0}"#,
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_1","name":"f\"x","input":{}}}"#,
                r#"{"type":"content_block_stop","index":1}"#,
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#,
                r#"{"type":"message_stop"}"#,
            ]
        );
        assert!(text.starts_with("event: message_start\n"));
    }
}
