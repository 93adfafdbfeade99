//! Encoding hub stream [`Event`]s as the Responses event grammar (reference §4.2, §4.5): `response.created`
//! and `response.in_progress`, then each output item opened with `output_item.added`, its deltas, and closed
//! with its `.done` events and `output_item.done`, one item open at a time, dense `output_index`, strictly
//! increasing `sequence_number`, and a terminal `response.completed` / `response.incomplete` carrying every
//! item and the usage. A stream that breaks ends with `response.failed`, and an item still open then is not
//! closed: a half-streamed tool call must never reach `output_item.done`, where Codex would execute it.

use serde_json::{Map, Value, json};

use super::request::ResponsesFacts;
use super::response::{AnswerContext, message_item, refusal_part, status, text_part};
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, Opaque, StopReason, StreamEncoder, ToolCall, ToolKind, Usage};
use crate::protocol::sse::write_named_event;

/// The Responses side of a converted stream.
pub struct ResponsesStreamEncoder {
    id_hex: String,
    /// Seals reasoning artefacts into `encrypted_content`.
    signing_key: Vec<u8>,
    /// The artefact of the reasoning item being streamed, once the upstream has sealed it.
    seal: Option<Opaque>,
    created: u64,
    model: String,
    facts: ResponsesFacts,
    sequence: u64,
    started: bool,
    open: Open,
    /// Tool calls by the upstream's index.
    tools: Vec<ToolState>,
    done_items: Vec<Value>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

/// Where a delta event goes: its type, its item (id prefix and output index) and its part index field
/// (`content_index`, `summary_index`, or none for call arguments), always 0 here.
struct Delta {
    kind: &'static str,
    prefix: &'static str,
    oi: usize,
    index: &'static str,
    logprobs: bool,
}

enum Open {
    None,
    Reasoning { oi: usize, text: String },
    Message { oi: usize, text: String, refusal: bool },
    Tool { position: usize },
}

struct ToolState {
    index: usize,
    /// Set when the item was opened (its name is known).
    oi: Option<usize>,
    call: ToolCall,
    closed: bool,
}

impl ResponsesStreamEncoder {
    pub fn new(id_hex: &str, created: u64, model: &str, facts: ResponsesFacts, signing_key: &[u8]) -> Self {
        Self {
            id_hex: id_hex.to_owned(),
            signing_key: signing_key.to_owned(),
            seal: None,
            created,
            model: model.to_owned(),
            facts,
            sequence: 0,
            started: false,
            open: Open::None,
            tools: Vec::new(),
            done_items: Vec::new(),
            stop: None,
            usage: None,
            finished: false,
        }
    }

    fn ctx(&self) -> AnswerContext<'_> {
        AnswerContext {
            id_hex: &self.id_hex,
            signing_key: &self.signing_key,
            created: self.created,
            model: &self.model,
            facts: &self.facts,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, fields: Value) {
        let mut data = Map::new();
        data.insert("type".into(), Value::from(kind));
        data.insert("sequence_number".into(), Value::from(self.sequence));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        self.sequence += 1;
        let data = serde_json::to_vec(&Value::Object(data)).expect("an event serialises");
        write_named_event(out, kind, &data);
    }

    /// A delta event, the bulk of a stream, written straight into the output: no JSON tree per token.
    fn emit_delta(&mut self, out: &mut Vec<u8>, at: Delta, delta: &str) {
        use std::io::Write;
        let _ = write!(
            out,
            "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq},\"item_id\":\"{prefix}_llmr{hex}_{oi}\",\"output_index\":{oi},",
            kind = at.kind,
            seq = self.sequence,
            prefix = at.prefix,
            hex = self.id_hex,
            oi = at.oi,
        );
        if !at.index.is_empty() {
            let _ = write!(out, "\"{}\":0,", at.index);
        }
        out.extend_from_slice(b"\"delta\":");
        serde_json::to_writer(&mut *out, delta).expect("a string serialises");
        if at.logprobs {
            out.extend_from_slice(b",\"logprobs\":[]");
        }
        out.extend_from_slice(b"}\n\n");
        self.sequence += 1;
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let snapshot = self
            .ctx()
            .response_object("in_progress", Vec::new(), None, StopReason::End);
        self.emit(out, "response.created", json!({"response": snapshot.clone()}));
        self.emit(out, "response.in_progress", json!({"response": snapshot}));
    }

    fn next_output_index(&self) -> usize {
        self.done_items.len() + usize::from(!matches!(self.open, Open::None))
    }
}

impl StreamEncoder for ResponsesStreamEncoder {
    /// Feeds one hub event; appends the client's events to `out`.
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        self.start(out);
        match event {
            Event::ReasoningDelta(delta) => {
                if !matches!(self.open, Open::Reasoning { .. }) {
                    self.close_open(out);
                    let oi = self.next_output_index();
                    let id = self.ctx().item_id("rs", oi);
                    self.emit(
                        out,
                        "response.output_item.added",
                        json!({"output_index": oi,
                        "item": {"type": "reasoning", "id": id, "summary": []}}),
                    );
                    self.emit(
                        out,
                        "response.reasoning_summary_part.added",
                        json!({"item_id": id, "output_index": oi,
                        "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                    );
                    self.open = Open::Reasoning {
                        oi,
                        text: String::new(),
                    };
                }
                if let Open::Reasoning { oi, text } = &mut self.open {
                    text.push_str(&delta);
                    let oi = *oi;
                    let delta_at = Delta {
                        kind: "response.reasoning_summary_text.delta",
                        prefix: "rs",
                        oi,
                        index: "summary_index",
                        logprobs: false,
                    };
                    self.emit_delta(out, delta_at, &delta);
                }
            }
            Event::ReasoningSeal(opaque) => {
                if matches!(self.open, Open::Reasoning { .. }) {
                    self.seal = Some(opaque);
                } else {
                    // Reasoning without text (redacted thinking): an item of its own, for the envelope only.
                    self.close_open(out);
                    let oi = self.next_output_index();
                    let id = self.ctx().item_id("rs", oi);
                    self.emit(
                        out,
                        "response.output_item.added",
                        json!({"output_index": oi,
                        "item": {"type": "reasoning", "id": id, "summary": []}}),
                    );
                    let item = self.ctx().reasoning_item(id, None, Some(&opaque));
                    self.emit(
                        out,
                        "response.output_item.done",
                        json!({"output_index": oi, "item": item}),
                    );
                    self.done_items.push(item);
                }
            }
            Event::TextDelta(delta) => self.message_delta(false, delta, out),
            Event::RefusalDelta(delta) => self.message_delta(true, delta, out),
            Event::ToolCallStart { index, id, name } => {
                let position = self.tool(index);
                if self.tools[position].oi.is_some() {
                    return StreamStatus::Continue; // a repeated name: nothing new
                }
                self.close_open(out);
                let oi = self.next_output_index();
                let tool = &mut self.tools[position];
                tool.oi = Some(oi);
                tool.call.name = name;
                if let Some(id) = id {
                    tool.call.id = id;
                }
                let buffered = std::mem::take(&mut tool.call.arguments);
                let item = self.ctx().tool_call_item(&self.tools[position].call, oi, false);
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": oi, "item": item}),
                );
                self.open = Open::Tool { position };
                if !buffered.is_empty() {
                    self.tool_delta(position, buffered, out);
                }
            }
            Event::ToolCallDelta { index, arguments } => {
                let position = self.tool(index);
                self.tool_delta(position, arguments, out);
            }
            Event::Stop(stop) => {
                self.stop = Some(stop);
                self.close_open(out);
            }
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Done => {
                self.complete(out);
                return StreamStatus::Finished;
            }
            Event::Error { message, code } => {
                self.write_error(code.as_deref().unwrap_or("server_error"), &message, out);
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
            StreamFailure::Upstream => "server_error",
        };
        self.write_error(code, message, out);
    }

    /// An SSE comment: Responses parsers (Codex's and the SDK's) skip it.
    fn keep_alive(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": keep-alive\n\n");
    }
}

impl ResponsesStreamEncoder {
    fn message_delta(&mut self, refusal: bool, delta: String, out: &mut Vec<u8>) {
        let same = matches!(self.open, Open::Message { refusal: r, .. } if r == refusal);
        if !same {
            self.close_open(out);
            let oi = self.next_output_index();
            let id = self.ctx().item_id("msg", oi);
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": oi,
                "item": message_item(id.clone(), Value::Null, false)}),
            );
            let part = if refusal { refusal_part("") } else { text_part("") };
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": oi,
                "content_index": 0, "part": part}),
            );
            self.open = Open::Message {
                oi,
                text: String::new(),
                refusal,
            };
        }
        if let Open::Message { oi, text, .. } = &mut self.open {
            text.push_str(&delta);
            let oi = *oi;
            let (kind, logprobs) = match refusal {
                true => ("response.refusal.delta", false),
                false => ("response.output_text.delta", true),
            };
            let delta_at = Delta {
                kind,
                prefix: "msg",
                oi,
                index: "content_index",
                logprobs,
            };
            self.emit_delta(out, delta_at, &delta);
        }
    }

    /// The position of the upstream's tool `index`, created (not yet opened) when new.
    fn tool(&mut self, index: usize) -> usize {
        if let Some(position) = self.tools.iter().position(|t| t.index == index) {
            return position;
        }
        let id = format!("call_llmr{}_{index}", self.id_hex);
        self.tools.push(ToolState {
            index,
            oi: None,
            call: ToolCall {
                id,
                name: String::new(),
                namespace: None,
                kind: ToolKind::Function,
                arguments: String::new(),
            },
            closed: false,
        });
        self.tools.len() - 1
    }

    fn tool_delta(&mut self, position: usize, arguments: String, out: &mut Vec<u8>) {
        let tool = &mut self.tools[position];
        tool.call.arguments.push_str(&arguments);
        let (Some(oi), false) = (tool.oi, tool.closed) else {
            // Not opened yet (no name) or already closed by an interleaving host: kept in the buffer only.
            return;
        };
        let custom = self.facts.tools.client_tool(&tool.call.name).kind == ToolKind::Custom;
        // A custom tool's input is only known whole: it is sent when the item closes.
        if !custom {
            let delta_at = Delta {
                kind: "response.function_call_arguments.delta",
                prefix: "fc",
                oi,
                index: "",
                logprobs: false,
            };
            self.emit_delta(out, delta_at, &arguments);
        }
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning { oi, text } => {
                let id = self.ctx().item_id("rs", oi);
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": oi,
                    "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": oi,
                    "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                );
                let seal = self.seal.take();
                let item = self.ctx().reasoning_item(id, Some(&text), seal.as_ref());
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                self.done_items.push(item);
            }
            Open::Message { oi, text, refusal } => {
                let id = self.ctx().item_id("msg", oi);
                let part = if refusal {
                    self.emit(
                        out,
                        "response.refusal.done",
                        json!({"item_id": id, "output_index": oi,
                        "content_index": 0, "refusal": text}),
                    );
                    refusal_part(&text)
                } else {
                    self.emit(
                        out,
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": oi,
                        "content_index": 0, "text": text, "logprobs": []}),
                    );
                    text_part(&text)
                };
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": oi,
                    "content_index": 0, "part": part}),
                );
                let item = message_item(id, part, true);
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                self.done_items.push(item);
            }
            Open::Tool { position } => {
                let tool = &mut self.tools[position];
                tool.closed = true;
                let oi = tool.oi.expect("an open tool has its item");
                if tool.call.arguments.is_empty() {
                    tool.call.arguments = "{}".into();
                }
                let item = self.ctx().tool_call_item(&self.tools[position].call, oi, true);
                let id = item["id"].clone();
                if item["type"] == "custom_tool_call" {
                    let input = item["input"].clone();
                    self.emit(
                        out,
                        "response.custom_tool_call_input.delta",
                        json!({"item_id": id, "output_index": oi,
                        "delta": input}),
                    );
                    self.emit(
                        out,
                        "response.custom_tool_call_input.done",
                        json!({"item_id": id, "output_index": oi,
                        "input": input}),
                    );
                } else {
                    self.emit(
                        out,
                        "response.function_call_arguments.done",
                        json!({"item_id": id,
                        "output_index": oi, "arguments": item["arguments"], "name": item["name"]}),
                    );
                }
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": oi, "item": item}),
                );
                self.done_items.push(item);
            }
        }
    }

    /// The normal end: every item closed, then `response.completed` (or `incomplete`) with all of them.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        let status = status(stop);
        let usage = self.usage.unwrap_or_default();
        let object = self
            .ctx()
            .response_object(status, self.done_items.clone(), Some(&usage), stop);
        self.emit(out, &format!("response.{status}"), json!({"response": object}));
        self.finished = true;
    }

    /// `response.failed` with the items finished so far; an open item stays unfinished.
    fn write_error(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        let mut object =
            self.ctx()
                .response_object("failed", self.done_items.clone(), self.usage.as_ref(), StopReason::End);
        object["error"] = json!({"code": code, "message": message});
        self.emit(out, "response.failed", json!({"response": object}));
        self.finished = true;
    }
}

/// Decodes a Responses upstream's events into hub events (reference §4.7): lenient about missing
/// `output_item.added` and `sequence_number`, arguments that arrive only at `done`, and an empty `output` in
/// `response.completed`.
#[derive(Default)]
pub struct ResponsesEvents {
    /// Per tool item (by output index): the arguments streamed so far.
    tools: Vec<(usize, String)>,
    /// The summary index of the last reasoning delta, to separate summary parts.
    summary_index: Option<u64>,
}

impl ResponsesEvents {
    fn tool(&mut self, index: usize) -> Option<&mut String> {
        self.tools.iter_mut().find(|(i, _)| *i == index).map(|(_, args)| args)
    }

    fn open_tool(&mut self, index: usize, item: &super::response::UpstreamItem, out: &mut Vec<Event>) {
        if self.tool(index).is_some() {
            return;
        }
        self.tools.push((index, String::new()));
        out.push(Event::ToolCallStart {
            index,
            id: item.call_id.clone(),
            name: item.name.clone().unwrap_or_default(),
        });
    }
}

impl crate::protocol::hub::StreamDecoder for ResponsesEvents {
    fn decode(&mut self, event: &crate::protocol::sse::SseEvent, out: &mut Vec<Event>) {
        #[derive(serde::Deserialize)]
        struct Data {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            output_index: Option<usize>,
            #[serde(default)]
            summary_index: Option<u64>,
            #[serde(default)]
            delta: Option<String>,
            #[serde(default)]
            arguments: Option<String>,
            #[serde(default)]
            item: Option<super::response::UpstreamItem>,
            #[serde(default)]
            response: Option<super::response::UpstreamResponse>,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            code: Option<String>,
        }
        let data: Data = match serde_json::from_str(&event.data) {
            Ok(data) => data,
            Err(e) => {
                out.push(crate::protocol::hub::unreadable_event(&e));
                return;
            }
        };
        let index = data.output_index.unwrap_or(0);
        let delta = data.delta.filter(|d| !d.is_empty());
        match data.kind.as_str() {
            "response.output_item.added" => {
                if let Some(item) = &data.item
                    && matches!(item.kind.as_str(), "function_call" | "custom_tool_call")
                {
                    self.open_tool(index, item, out);
                }
            }
            "response.output_text.delta" => out.extend(delta.map(Event::TextDelta)),
            "response.refusal.delta" => out.extend(delta.map(Event::RefusalDelta)),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = delta {
                    let part = data.summary_index.unwrap_or(0);
                    if self.summary_index.is_some_and(|last| last != part) {
                        out.push(Event::ReasoningDelta("\n\n".into()));
                    }
                    self.summary_index = Some(part);
                    out.push(Event::ReasoningDelta(delta));
                }
            }
            "response.function_call_arguments.delta" => {
                if let (Some(delta), Some(streamed)) = (delta, self.tool(index)) {
                    streamed.push_str(&delta);
                    out.push(Event::ToolCallDelta {
                        index,
                        arguments: delta,
                    });
                }
            }
            "response.function_call_arguments.done" | "response.output_item.done" => {
                let item = data.item.as_ref();
                if let Some(item) = item
                    && matches!(item.kind.as_str(), "function_call" | "custom_tool_call")
                {
                    self.open_tool(index, item, out);
                }
                let is_tool = item.is_none_or(|i| matches!(i.kind.as_str(), "function_call" | "custom_tool_call"));
                let full = match item {
                    Some(item) if item.kind == "custom_tool_call" => {
                        Some(serde_json::json!({"input": item.input.clone().unwrap_or_default()}).to_string())
                    }
                    Some(item) => item.arguments.clone(),
                    None => data.arguments,
                };
                // Only what was not streamed yet (some models stream nothing and send it all here).
                if is_tool
                    && let (Some(full), Some(streamed)) = (full, self.tool(index))
                    && full.len() > streamed.len()
                    && full.starts_with(streamed.as_str())
                {
                    let rest = full[streamed.len()..].to_owned();
                    streamed.push_str(&rest);
                    out.push(Event::ToolCallDelta { index, arguments: rest });
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = data.response.unwrap_or_default();
                let stop = super::response::stop_of(
                    response
                        .status
                        .as_deref()
                        .or(Some(if data.kind == "response.incomplete" {
                            "incomplete"
                        } else {
                            "completed"
                        })),
                    response.incomplete_details.as_ref().and_then(|d| d.reason.as_deref()),
                    !self.tools.is_empty(),
                );
                out.push(Event::Stop(stop));
                if let Some(usage) = &response.usage {
                    out.push(Event::Usage(usage.to_hub()));
                }
                out.push(Event::Done);
            }
            "response.failed" => {
                let error = data.response.and_then(|r| r.error);
                let field = |key: &str| {
                    error
                        .as_ref()
                        .and_then(|e| e.get(key))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                out.push(Event::Error {
                    message: field("message").unwrap_or_else(|| "the upstream response failed".into()),
                    code: field("code"),
                });
            }
            "error" => out.push(Event::Error {
                message: data.message.unwrap_or_else(|| "upstream error".into()),
                code: data.code,
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::responses::request::decode;
    use crate::protocol::sse::SseParser;

    fn parse(out: &[u8]) -> Vec<Value> {
        let mut parsed = Vec::new();
        SseParser::new().feed(out, |e| {
            let data: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(e.event.as_deref(), data["type"].as_str(), "event line and type agree");
            parsed.push(data);
        });
        parsed
    }

    fn encoder(body: &[u8]) -> ResponsesStreamEncoder {
        ResponsesStreamEncoder::new("00ff", 1, "g", decode(body, b"key").unwrap().facts, b"key")
    }

    #[test]
    fn the_worked_example_of_the_reference() {
        let mut e = encoder(br#"{"model":"m","input":"x","tools":[{"type":"function","name":"exec_command"}]}"#);
        let mut out = Vec::new();
        for event in [
            Event::ReasoningDelta("Check it".into()),
            Event::ToolCallStart {
                index: 0,
                id: Some("call_a".into()),
                name: "exec_command".into(),
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: r#"{"cmd":"ls"}"#.into(),
            },
            Event::Stop(StopReason::ToolUse),
            Event::Usage(Usage {
                input: 900,
                cached: 800,
                cache_write: 0,
                output: 40,
                reasoning: 12,
            }),
            Event::Done,
        ] {
            e.encode(event, &mut out);
        }
        let events = parse(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let sequence: Vec<u64> = events.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(sequence, (0..13).collect::<Vec<_>>());
        assert_eq!(events[8]["output_index"], 1);
        assert_eq!(events[11]["item"]["call_id"], "call_a");
        let completed = &events[12]["response"];
        assert_eq!(completed["output"].as_array().unwrap().len(), 2);
        assert_eq!(completed["usage"]["total_tokens"], 940);
    }

    #[test]
    fn custom_tools_stream_their_input_whole_and_a_broken_stream_fails_without_closing() {
        let mut e = encoder(br#"{"model":"m","input":"x","tools":[{"type":"custom","name":"apply_patch"}]}"#);
        let mut out = Vec::new();
        e.encode(
            Event::ToolCallStart {
                index: 0,
                id: Some("c".into()),
                name: "apply_patch".into(),
            },
            &mut out,
        );
        e.encode(
            Event::ToolCallDelta {
                index: 0,
                arguments: r#"{"input":"*** Be"#.into(),
            },
            &mut out,
        );
        e.encode(
            Event::ToolCallDelta {
                index: 0,
                arguments: r#"gin Patch"}"#.into(),
            },
            &mut out,
        );
        e.encode(Event::Stop(StopReason::ToolUse), &mut out);
        assert_eq!(e.encode(Event::Done, &mut out), StreamStatus::Finished);
        let events = parse(&out);
        let delta = events
            .iter()
            .find(|e| e["type"] == "response.custom_tool_call_input.delta")
            .unwrap();
        assert_eq!(delta["delta"], "*** Begin Patch");
        let done = events
            .iter()
            .find(|e| e["type"] == "response.output_item.done")
            .unwrap();
        assert_eq!(done["item"]["type"], "custom_tool_call");

        let mut e = encoder(br#"{"model":"m","input":"x"}"#);
        let mut out = Vec::new();
        e.encode(
            Event::ToolCallStart {
                index: 0,
                id: None,
                name: "exec_command".into(),
            },
            &mut out,
        );
        e.encode(
            Event::ToolCallDelta {
                index: 0,
                arguments: r#"{"cmd":"#.into(),
            },
            &mut out,
        );
        assert_eq!(e.eof(&mut out), StreamStatus::Failed);
        let events = parse(&out);
        assert!(events.iter().all(|e| e["type"] != "response.output_item.done"));
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["error"]["code"], "server_error");
        assert!(
            last.get("error").is_none(),
            "no top-level error key (the SDK would raise)"
        );
    }
}
