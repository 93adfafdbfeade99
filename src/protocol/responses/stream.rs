//! Encoding hub stream [`Event`]s as the Responses event grammar (reference §4.2, §4.5): `response.created`
//! and `response.in_progress`, then each output item opened with `output_item.added`, its deltas, and closed
//! with its `.done` events and `output_item.done`, one item open at a time, dense `output_index`, strictly
//! increasing `sequence_number`, and a terminal `response.completed` / `response.incomplete` carrying every
//! item and the usage. A stream that breaks ends with `response.failed`, and an item still open then is not
//! closed: a half-streamed tool call must never reach `output_item.done`, where Codex would execute it.

use serde::Serialize;
use serde_json::value::{RawValue, to_raw_value};

use super::request::ResponsesFacts;
use super::response::{AnswerContext, ContentPart, OutputItem, ResponseError, SummaryText, status};
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::{Event, Opaque, StopReason, StreamEncoder, ToolCall, ToolKind, Usage};

/// The Responses side of a converted stream.
pub struct ResponsesStreamEncoder {
    answer: Answer,
    /// The artefact of the reasoning item being streamed, once the upstream has sealed it.
    seal: Option<Opaque>,
    sequence: Sequence,
    started: bool,
    open: Open,
    /// Tool calls by the upstream's index.
    tools: Vec<ToolState>,
    /// The items closed so far, as the JSON their `output_item.done` carried: the terminal response lists
    /// them again, so each is serialized once.
    done_items: Vec<Box<RawValue>>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

/// What items and response objects are built from; a field of its own so that an item can borrow it while
/// an event is being written.
struct Answer {
    id_hex: String,
    /// Seals reasoning artefacts into `encrypted_content`.
    signing_key: Vec<u8>,
    created: u64,
    model: String,
    facts: ResponsesFacts,
}

impl Answer {
    fn ctx(&self) -> AnswerContext<'_> {
        AnswerContext {
            id_hex: &self.id_hex,
            signing_key: &self.signing_key,
            created: self.created,
            model: &self.model,
            facts: &self.facts,
        }
    }
}

/// About the size of a delta event.
const EVENT_BYTES: usize = 256;

/// The `sequence_number` of the next event. Every event starts here, so none is skipped or repeated.
struct Sequence(u64);

impl Sequence {
    /// Starts an event of type `kind`: its `event:` line, then its data up to `type` and `sequence_number`.
    fn event<'o>(&mut self, out: &'o mut Vec<u8>, kind: &str) -> EventData<'o> {
        // Room for a delta event in one go, rather than growing the buffer a few bytes at a time.
        out.reserve(EVENT_BYTES);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        crate::protocol::json::push_u64(out, self.0);
        self.0 += 1;
        EventData { out }
    }
}

/// `,"key":`, the start of a member after the first, for [`EventData::text`] and [`EventData::number`]: one
/// copy for the three pieces.
macro_rules! member {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}

/// The data of an event being written: each field goes straight into the output, in call order, which is
/// the key order clients see. No JSON tree is built, not even for the deltas that make up most of a stream.
#[must_use = "an event is complete only after `end`"]
struct EventData<'o> {
    out: &'o mut Vec<u8>,
}

impl EventData<'_> {
    /// `key` is a literal name: written as is.
    fn field(mut self, key: &str, value: impl Serialize) -> Self {
        self.key(key);
        crate::protocol::json::to_writer(&mut *self.out, &value).expect("an event field serialises");
        self
    }

    /// [`field`](Self::field) for text, as serde writes it without going through serde: the deltas that
    /// make up most of a stream are written in these. `member` is the key as [`member!`] writes it.
    fn text(self, member: &str, value: &str) -> Self {
        self.out.extend_from_slice(member.as_bytes());
        crate::protocol::json::push_str(self.out, value);
        self
    }

    /// [`field`](Self::field) for a count; `member` as for [`text`](Self::text).
    fn number(self, member: &str, value: usize) -> Self {
        self.out.extend_from_slice(member.as_bytes());
        crate::protocol::json::push_u64(self.out, value as u64);
        self
    }

    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn end(self) {
        self.out.extend_from_slice(b"}\n\n");
    }
}

/// An item as JSON, written once: into its `output_item.done`, then copied into the terminal response.
fn raw(item: &OutputItem<'_>) -> Box<RawValue> {
    to_raw_value(item).expect("an item serialises")
}

enum Open {
    None,
    Reasoning {
        oi: usize,
        id: String,
        text: String,
    },
    Message {
        oi: usize,
        id: String,
        text: String,
        refusal: bool,
    },
    Tool {
        position: usize,
    },
}

struct ToolState {
    index: usize,
    /// Set when the item was opened (its name is known).
    oi: Option<usize>,
    /// The item's id, from when it was opened.
    item_id: String,
    /// A custom tool's input is only known whole: it is sent when the item closes, not as deltas.
    custom: bool,
    call: ToolCall,
    closed: bool,
}

impl ResponsesStreamEncoder {
    pub fn new(id_hex: &str, created: u64, model: &str, facts: ResponsesFacts, signing_key: &[u8]) -> Self {
        Self {
            answer: Answer {
                id_hex: id_hex.to_owned(),
                signing_key: signing_key.to_owned(),
                created,
                model: model.to_owned(),
                facts,
            },
            seal: None,
            sequence: Sequence(0),
            started: false,
            open: Open::None,
            tools: Vec::new(),
            done_items: Vec::new(),
            stop: None,
            usage: None,
            finished: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        // One snapshot for both events.
        let ctx = self.answer.ctx();
        let snapshot = ctx.response_object("in_progress", [(); 0], None, StopReason::End);
        let snapshot = to_raw_value(&snapshot).expect("a Response serialises");
        self.sequence
            .event(out, "response.created")
            .field("response", &snapshot)
            .end();
        self.sequence
            .event(out, "response.in_progress")
            .field("response", &snapshot)
            .end();
    }

    fn next_output_index(&self) -> usize {
        self.done_items.len() + usize::from(!matches!(self.open, Open::None))
    }

    /// `output_item.done` for a finished item, which the terminal response lists again.
    fn item_done(&mut self, out: &mut Vec<u8>, oi: usize, item: Box<RawValue>) {
        self.sequence
            .event(out, "response.output_item.done")
            .field("output_index", oi)
            .field("item", &item)
            .end();
        self.done_items.push(item);
    }
}

impl StreamEncoder for ResponsesStreamEncoder {
    /// Feeds one hub event; appends the client's events to `out`.
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished {
            return StreamStatus::Finished;
        }
        // The Response has the router's own id.
        if let Event::MessageId(_) = event {
            return StreamStatus::Continue;
        }
        self.start(out);
        match event {
            Event::MessageId(_) | Event::StopSequence(_) => {}
            Event::ReasoningDelta(delta) => {
                if !matches!(self.open, Open::Reasoning { .. }) {
                    self.close_open(out);
                    let oi = self.next_output_index();
                    let id = self.answer.ctx().item_id("rs", oi);
                    self.sequence
                        .event(out, "response.output_item.added")
                        .field("output_index", oi)
                        .field("item", self.answer.ctx().reasoning_item(id.clone(), None, None))
                        .end();
                    self.sequence
                        .event(out, "response.reasoning_summary_part.added")
                        .field("item_id", &id)
                        .field("output_index", oi)
                        .field("summary_index", 0)
                        .field("part", SummaryText { text: "" })
                        .end();
                    self.open = Open::Reasoning {
                        oi,
                        id,
                        text: String::new(),
                    };
                }
                if let Open::Reasoning { oi, id, text } = &mut self.open {
                    text.push_str(&delta);
                    self.sequence
                        .event(out, "response.reasoning_summary_text.delta")
                        .text(member!("item_id"), id)
                        .number(member!("output_index"), *oi)
                        .number(member!("summary_index"), 0)
                        .text(member!("delta"), &delta)
                        .end();
                }
            }
            Event::ReasoningSeal(opaque) => {
                if matches!(self.open, Open::Reasoning { .. }) {
                    self.seal = Some(opaque);
                } else {
                    // Reasoning without text (redacted thinking): an item of its own, for the envelope only.
                    self.close_open(out);
                    let oi = self.next_output_index();
                    let ctx = self.answer.ctx();
                    let id = ctx.item_id("rs", oi);
                    self.sequence
                        .event(out, "response.output_item.added")
                        .field("output_index", oi)
                        .field("item", ctx.reasoning_item(id.clone(), None, None))
                        .end();
                    let item = raw(&ctx.reasoning_item(id, None, Some(&opaque)));
                    self.item_done(out, oi, item);
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
                let item = self.answer.ctx().tool_call_item(&self.tools[position].call, oi, false);
                let (item_id, custom) = (item.id().to_owned(), matches!(item, OutputItem::CustomToolCall { .. }));
                self.sequence
                    .event(out, "response.output_item.added")
                    .field("output_index", oi)
                    .field("item", item)
                    .end();
                let tool = &mut self.tools[position];
                tool.item_id = item_id;
                tool.custom = custom;
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
            let id = self.answer.ctx().item_id("msg", oi);
            self.sequence
                .event(out, "response.output_item.added")
                .field("output_index", oi)
                .field("item", OutputItem::message(id.clone(), None))
                .end();
            self.sequence
                .event(out, "response.content_part.added")
                .field("item_id", &id)
                .field("output_index", oi)
                .field("content_index", 0)
                .field("part", ContentPart::new("", refusal))
                .end();
            self.open = Open::Message {
                oi,
                id,
                text: String::new(),
                refusal,
            };
        }
        if let Open::Message { oi, id, text, .. } = &mut self.open {
            text.push_str(&delta);
            let kind = match refusal {
                true => "response.refusal.delta",
                false => "response.output_text.delta",
            };
            let event = self
                .sequence
                .event(out, kind)
                .text(member!("item_id"), id)
                .number(member!("output_index"), *oi)
                .number(member!("content_index"), 0)
                .text(member!("delta"), &delta);
            match refusal {
                true => event.end(),
                false => event.field("logprobs", [(); 0]).end(),
            }
        }
    }

    /// The position of the upstream's tool `index`, created (not yet opened) when new.
    fn tool(&mut self, index: usize) -> usize {
        if let Some(position) = self.tools.iter().position(|t| t.index == index) {
            return position;
        }
        // `call_llmr<hex>_<index>`: the shape of an item id, numbered by the upstream's index.
        let id = self.answer.ctx().item_id("call", index);
        self.tools.push(ToolState {
            index,
            oi: None,
            item_id: String::new(),
            custom: false,
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
        let (Some(oi), false, false) = (tool.oi, tool.closed, tool.custom) else {
            // Not opened yet (no name), already closed by an interleaving host, or a custom tool's input
            // (sent whole at the close): kept in the buffer only.
            return;
        };
        self.sequence
            .event(out, "response.function_call_arguments.delta")
            .text(member!("item_id"), &tool.item_id)
            .number(member!("output_index"), oi)
            .text(member!("delta"), &arguments)
            .end();
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning { oi, id, text } => {
                self.sequence
                    .event(out, "response.reasoning_summary_text.done")
                    .field("item_id", &id)
                    .field("output_index", oi)
                    .field("summary_index", 0)
                    .field("text", &text)
                    .end();
                self.sequence
                    .event(out, "response.reasoning_summary_part.done")
                    .field("item_id", &id)
                    .field("output_index", oi)
                    .field("summary_index", 0)
                    .field("part", SummaryText { text: &text })
                    .end();
                let seal = self.seal.take();
                let item = raw(&self.answer.ctx().reasoning_item(id, Some(&text), seal.as_ref()));
                self.item_done(out, oi, item);
            }
            Open::Message { oi, id, text, refusal } => {
                let done = self.sequence.event(
                    out,
                    match refusal {
                        true => "response.refusal.done",
                        false => "response.output_text.done",
                    },
                );
                let done = done
                    .field("item_id", &id)
                    .field("output_index", oi)
                    .field("content_index", 0);
                match refusal {
                    true => done.field("refusal", &text).end(),
                    false => done.field("text", &text).field("logprobs", [(); 0]).end(),
                }
                self.sequence
                    .event(out, "response.content_part.done")
                    .field("item_id", &id)
                    .field("output_index", oi)
                    .field("content_index", 0)
                    .field("part", ContentPart::new(&text, refusal))
                    .end();
                let item = raw(&OutputItem::message(id, Some(ContentPart::new(&text, refusal))));
                self.item_done(out, oi, item);
            }
            Open::Tool { position } => {
                let tool = &mut self.tools[position];
                tool.closed = true;
                let oi = tool.oi.expect("an open tool has its item");
                if tool.call.arguments.is_empty() {
                    tool.call.arguments = "{}".into();
                }
                let item = self.answer.ctx().tool_call_item(&self.tools[position].call, oi, true);
                match &item {
                    OutputItem::CustomToolCall { id, input, .. } => {
                        self.sequence
                            .event(out, "response.custom_tool_call_input.delta")
                            .field("item_id", id)
                            .field("output_index", oi)
                            .field("delta", input)
                            .end();
                        self.sequence
                            .event(out, "response.custom_tool_call_input.done")
                            .field("item_id", id)
                            .field("output_index", oi)
                            .field("input", input)
                            .end();
                    }
                    OutputItem::FunctionCall {
                        id, arguments, name, ..
                    } => self
                        .sequence
                        .event(out, "response.function_call_arguments.done")
                        .field("item_id", id)
                        .field("output_index", oi)
                        .field("arguments", arguments)
                        .field("name", name)
                        .end(),
                    _ => unreachable!("a tool call's item is a call item"),
                }
                let item = raw(&item);
                self.item_done(out, oi, item);
            }
        }
    }

    /// The normal end: every item closed, then `response.completed` (or `incomplete`) with all of them.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let stop = self.stop.unwrap_or(StopReason::End);
        let status = status(stop);
        let kind = match status {
            "incomplete" => "response.incomplete",
            _ => "response.completed",
        };
        let usage = self.usage.unwrap_or_default();
        let ctx = self.answer.ctx();
        let object = ctx.response_object(status, &self.done_items[..], Some(&usage), stop);
        self.sequence.event(out, kind).field("response", &object).end();
        self.finished = true;
    }

    /// `response.failed` with the items finished so far; an open item stays unfinished.
    fn write_error(&mut self, code: &str, message: &str, out: &mut Vec<u8>) {
        self.start(out);
        let ctx = self.answer.ctx();
        let mut object = ctx.response_object("failed", &self.done_items[..], self.usage.as_ref(), StopReason::End);
        object.error = Some(ResponseError { code, message });
        self.sequence
            .event(out, "response.failed")
            .field("response", &object)
            .end();
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
    use serde_json::Value;

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

    /// Clients and tests compare key order, so one short stream is checked byte for byte.
    #[test]
    fn a_text_stream_byte_for_byte() {
        let mut e = encoder(br#"{"model":"m","input":"x","instructions":"be brief"}"#);
        let mut out = Vec::new();
        for event in [Event::TextDelta("x".into()), Event::Stop(StopReason::End), Event::Done] {
            e.encode(event, &mut out);
        }
        let snapshot = |status: &str, output: &str, usage: &str| {
            let completed_at = match status {
                "completed" => r#""completed_at":1,"#,
                _ => "",
            };
            format!(
                r#"{{"id":"resp_llmr00ff","object":"response","created_at":1,"status":"{status}",{completed_at}"error":null,"incomplete_details":null,"instructions":"be brief","model":"g","output":[{output}],"parallel_tool_calls":true,"temperature":null,"top_p":null,"max_output_tokens":null,"tool_choice":"auto","tools":[],"reasoning":null,"text":{{"format":{{"type":"text"}}}},"truncation":"disabled","metadata":{{}},"store":false,"background":false,"previous_response_id":null,"prompt_cache_key":null,"user":null,"usage":{usage}}}"#
            )
        };
        let item = r#"{"type":"message","id":"msg_llmr00ff_0","role":"assistant","status":"completed","content":[{"type":"output_text","text":"x","annotations":[]}]}"#;
        let usage = r#"{"input_tokens":0,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":0}"#;
        let events = [
            format!(
                r#"{{"type":"response.created","sequence_number":0,"response":{}}}"#,
                snapshot("in_progress", "", "null")
            ),
            format!(
                r#"{{"type":"response.in_progress","sequence_number":1,"response":{}}}"#,
                snapshot("in_progress", "", "null")
            ),
            r#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"message","id":"msg_llmr00ff_0","role":"assistant","status":"in_progress","content":[]}}"#.into(),
            r#"{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_llmr00ff_0","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}"#.into(),
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_llmr00ff_0","output_index":0,"content_index":0,"delta":"x","logprobs":[]}"#.into(),
            r#"{"type":"response.output_text.done","sequence_number":5,"item_id":"msg_llmr00ff_0","output_index":0,"content_index":0,"text":"x","logprobs":[]}"#.into(),
            r#"{"type":"response.content_part.done","sequence_number":6,"item_id":"msg_llmr00ff_0","output_index":0,"content_index":0,"part":{"type":"output_text","text":"x","annotations":[]}}"#.into(),
            format!(r#"{{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{item}}}"#),
            format!(
                r#"{{"type":"response.completed","sequence_number":8,"response":{}}}"#,
                snapshot("completed", item, usage)
            ),
        ];
        let expected: String = events
            .iter()
            .map(|data| {
                let kind = &data[9..data[9..].find('"').unwrap() + 9];
                format!("event: {kind}\ndata: {data}\n\n")
            })
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
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
