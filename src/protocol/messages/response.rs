//! Decoding Anthropic Messages answers into the hub: a whole `message` into a [`Response`], and the events
//! of a stream into [`Event`]s. Server-tool blocks have no counterpart and are skipped.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Block;
use crate::protocol::convert::ConvertError;
use crate::protocol::convert::error::openai_error_for_anthropic;
use crate::protocol::hub::{
    Event, Opaque, Part, Reasoning, Response, StopReason, StreamDecoder, ToolCall, ToolKind, Usage,
};
use crate::protocol::json::{Reader, Seen, push_opt_str, push_str};
use crate::protocol::sse::SseEvent;

#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(super) struct AnthropicUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(super) struct OutputDetails {
    #[serde(default)]
    pub(super) thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Later figures replace earlier ones (a `message_delta` repeats or corrects `message_start`).
    pub(super) fn merge(&mut self, later: &AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.output_tokens_details = later.output_tokens_details.or(self.output_tokens_details);
    }

    /// Anthropic counts cached tokens apart from `input_tokens`; the hub's `input` includes them.
    pub(super) fn to_hub(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input: self.input_tokens.unwrap_or(0) + cached + cache_write,
            cached,
            cache_write,
            output: self.output_tokens.unwrap_or(0),
            reasoning: self.output_tokens_details.and_then(|d| d.thinking_tokens).unwrap_or(0),
        }
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::End,
    }
}

/// A whole `message`, as serde reads it; its content blocks are left raw, each read on its own.
#[derive(Deserialize, Default, Debug)]
struct Message<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    content: Vec<&'a RawValue>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A message read by the hand-written JSON reader, in any key order and with any other keys; `None` (the
/// rare shapes it does not take) goes to serde, which reads it the same way. serde's walk over the nested
/// structs of optional fields cost more than the whole rest of a converted answer. Its content blocks are
/// read in the same pass, each with its JSON text (its `content` is left empty).
fn message_by_hand(text: &str) -> Option<(Message<'_>, Vec<(Block<'_>, &str)>)> {
    let mut r = Reader::new(text);
    let mut message = Message::default();
    let mut blocks = Vec::new();
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "id" => {
                seen.first(0)?;
                message.id = r.nullable(Reader::string)?;
            }
            "type" => {
                seen.first(1)?;
                message.kind = r.nullable(Reader::plain_str)?;
            }
            "content" => {
                seen.first(2)?;
                r.array(|r| {
                    r.peek()?;
                    let start = r.position();
                    let block = read_block(r)?;
                    blocks.push((block, &text[start..r.position()]));
                    Some(())
                })?;
            }
            "stop_reason" => {
                seen.first(3)?;
                message.stop_reason = r.nullable(Reader::string)?;
            }
            "stop_sequence" => {
                seen.first(4)?;
                message.stop_sequence = r.nullable(Reader::string)?;
            }
            "usage" => {
                seen.first(5)?;
                message.usage = usage_by_hand(r)?;
            }
            _ => return r.skip(),
        }
        Some(())
    })?;
    r.end()?;
    Some((message, blocks))
}

/// A usage object, as [`message_by_hand`] reads it.
pub(super) fn usage_by_hand(r: &mut Reader<'_>) -> Option<AnthropicUsage> {
    let mut usage = AnthropicUsage::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        let (field, index) = match key {
            "input_tokens" => (&mut usage.input_tokens, 0),
            "output_tokens" => (&mut usage.output_tokens, 1),
            "cache_read_input_tokens" => (&mut usage.cache_read_input_tokens, 2),
            "cache_creation_input_tokens" => (&mut usage.cache_creation_input_tokens, 3),
            "output_tokens_details" => {
                seen.first(4)?;
                usage.output_tokens_details = r.nullable(|r| {
                    let mut details = OutputDetails::default();
                    r.counts(&mut [("thinking_tokens", &mut details.thinking_tokens)])?;
                    Some(details)
                })?;
                return Some(());
            }
            _ => return r.skip(),
        };
        seen.first(index)?;
        *field = r.nullable(Reader::u64)?;
        Some(())
    })?;
    Some(usage)
}

/// A content block, as [`message_by_hand`] reads a message.
fn block_by_hand(text: &str) -> Option<Block<'_>> {
    let mut r = Reader::new(text);
    let block = read_block(&mut r)?;
    r.end()?;
    Some(block)
}

fn read_block<'a>(r: &mut Reader<'a>) -> Option<Block<'a>> {
    let mut kind = None;
    let mut block = Block::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        let (field, index) = match key {
            "type" => {
                seen.first(0)?;
                kind = Some(r.plain_str()?);
                return Some(());
            }
            "input" => {
                seen.first(1)?;
                block.input = r.nullable(Reader::raw)?;
                return Some(());
            }
            "text" => (&mut block.text, 2),
            "thinking" => (&mut block.thinking, 3),
            "id" => (&mut block.id, 4),
            "name" => (&mut block.name, 5),
            "data" => (&mut block.data, 6),
            _ => return r.skip(),
        };
        seen.first(index)?;
        *field = r.nullable(Reader::string)?;
        Some(())
    })?;
    // `type` is required.
    block.kind = kind?;
    Some(block)
}

/// Decodes a whole `message`.
pub fn decode(body: &[u8]) -> Result<Response, ConvertError> {
    let (message, blocks) = match std::str::from_utf8(body).ok().and_then(message_by_hand) {
        Some((message, blocks)) => (message, Some(blocks)),
        None => {
            let message: Message = crate::protocol::json::parse(body)
                .map_err(|e| ConvertError::bad_upstream(format!("the upstream's answer is not a message: {e}")))?;
            (message, None)
        }
    };
    if message.kind == Some("error") {
        return Err(ConvertError::bad_upstream(
            "the upstream sent an error object with a success status",
        ));
    }
    let unreadable = |e: serde_json::Error| {
        ConvertError::bad_upstream(format!("the upstream's answer has an unreadable content block: {e}"))
    };
    let blocks = match blocks {
        Some(blocks) => blocks,
        None => message
            .content
            .iter()
            .map(|raw| {
                let block = block_by_hand(raw.get()).map_or_else(|| serde_json::from_str(raw.get()), Ok);
                Ok((block.map_err(unreadable)?, raw.get()))
            })
            .collect::<Result<_, ConvertError>>()?,
    };
    let mut output = Vec::with_capacity(blocks.len());
    // Server-tool blocks have no counterpart; the text on either side of them stays two paragraphs.
    let mut skipped = false;
    for (block, raw) in blocks {
        match block.kind {
            // Kept exactly as sent: Anthropic accepts its thinking back only unchanged.
            "thinking" | "redacted_thinking" => output.push(Part::Reasoning(Reasoning {
                text: block.thinking.unwrap_or_default(),
                opaque: Some(Opaque::Anthropic {
                    block: RawValue::from_string(raw.to_owned()).map_err(unreadable)?,
                }),
            })),
            "text" => {
                if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                    match output.last_mut() {
                        Some(Part::Text(before)) if skipped => {
                            before.push_str("\n\n");
                            before.push_str(&text);
                        }
                        _ => output.push(Part::Text(text)),
                    }
                    skipped = false;
                }
                continue;
            }
            "tool_use" => output.push(Part::ToolCall(ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                namespace: None,
                kind: ToolKind::Function,
                arguments: block.input.map_or_else(|| "{}".to_owned(), |raw| raw.get().to_owned()),
            })),
            _ => {
                skipped = true;
                continue;
            }
        }
        skipped = false;
    }
    Ok(Response {
        id: message.id,
        output,
        stop: message.stop_reason.as_deref().map_or(StopReason::End, stop_reason),
        stop_sequence: message.stop_sequence,
        usage: message.usage.to_hub(),
    })
}

/// The events of an Anthropic stream, one at a time. Keeps the running usage (input counts arrive in
/// `message_start`, output counts in `message_delta`).
#[derive(Default)]
pub struct MessagesEvents {
    usage: AnthropicUsage,
    /// The tool call being streamed and whether any input arrived for it (an input given whole in
    /// `content_block_start` counts): one without input gets `{}` when it stops.
    tool: Option<(usize, bool)>,
    /// A text block was streamed, then a block without a counterpart (a server tool): the next text starts
    /// a new paragraph.
    text_then_skipped: (bool, bool),
    /// The thinking block being streamed (its index, text and signature), or a redacted one (its data),
    /// sealed into a [`Event::ReasoningSeal`] when it stops.
    thinking: Option<(usize, ThinkingBlock)>,
}

enum ThinkingBlock {
    Signed { text: String, signature: String },
    Redacted { data: String },
}

impl MessagesEvents {
    fn text_delta(&mut self, mut text: String, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        if self.text_then_skipped == (true, true) {
            text.insert_str(0, "\n\n");
        }
        self.text_then_skipped = (true, false);
        out.push(Event::TextDelta(text));
    }
}

/// The text of a text delta written as Anthropic writes one,
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`: most of a stream's
/// events. The fixed parts are matched as bytes and the index and text read by the hand-written JSON reader,
/// which costs a fraction of serde's walk over a struct of optional fields (and of the reader's own walk over
/// the objects). Any other shape, spacing or order is `None` and goes to serde.
fn text_delta_by_hand(data: &str) -> Option<String> {
    let mut r = Reader::new(data.strip_prefix(r#"{"type":"content_block_delta","index":"#)?);
    usize::try_from(r.u64()?).ok()?;
    let mut r = Reader::new(r.rest().strip_prefix(r#","delta":{"type":"text_delta","text":"#)?);
    let text = r.string()?;
    (r.rest().trim_ascii_end() == "}}").then_some(text)
}

impl StreamDecoder for MessagesEvents {
    fn needs_end_marker(&self) -> bool {
        true
    }

    fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        match text_delta_by_hand(&event.data) {
            Some(text) => self.text_delta(text, out),
            None => self.decode_event(event, out),
        }
    }
}

/// A stream event other than a text delta, as serde reads it.
#[derive(Deserialize, Default, Debug)]
struct Data<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    content_block: Option<Block<'a>>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize, Default, Debug)]
struct Delta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize, Default, Debug)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// An event read by the hand-written JSON reader, as [`message_by_hand`] reads a whole message; `None`
/// (an error event, the rare shapes it does not take) goes to serde, which reads it the same way.
fn data_by_hand(text: &str) -> Option<Data<'_>> {
    let mut r = Reader::new(text);
    let mut kind = None;
    let mut data = Data::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "type" => {
                seen.first(0)?;
                kind = Some(r.plain_str()?);
            }
            "index" => {
                seen.first(1)?;
                data.index = usize::try_from(r.u64()?).ok()?;
            }
            "content_block" => {
                seen.first(2)?;
                data.content_block = r.nullable(read_block)?;
            }
            "delta" => {
                seen.first(3)?;
                data.delta = r.nullable(|r| {
                    let mut delta = Delta::default();
                    let mut seen = Seen::default();
                    r.object(|r, key| {
                        let (field, index) = match key {
                            "type" => (&mut delta.kind, 0),
                            "text" => (&mut delta.text, 1),
                            "thinking" => (&mut delta.thinking, 2),
                            "partial_json" => (&mut delta.partial_json, 3),
                            "signature" => (&mut delta.signature, 4),
                            "stop_reason" => (&mut delta.stop_reason, 5),
                            _ => return r.skip(),
                        };
                        seen.first(index)?;
                        *field = r.nullable(Reader::string)?;
                        Some(())
                    })?;
                    Some(delta)
                })?;
            }
            "message" => {
                seen.first(4)?;
                data.message = r.nullable(|r| {
                    let mut message = StartMessage::default();
                    let mut seen = Seen::default();
                    r.object(|r, key| {
                        match key {
                            "id" => {
                                seen.first(0)?;
                                message.id = r.nullable(Reader::string)?;
                            }
                            "usage" => {
                                seen.first(1)?;
                                message.usage = usage_by_hand(r)?;
                            }
                            _ => return r.skip(),
                        }
                        Some(())
                    })?;
                    Some(message)
                })?;
            }
            "usage" => {
                seen.first(5)?;
                data.usage = r.nullable(usage_by_hand)?;
            }
            "error" => {
                seen.first(6)?;
                r.null().then_some(())?;
            }
            _ => return r.skip(),
        }
        Some(())
    })?;
    r.end()?;
    // `type` is required.
    data.kind = kind?;
    Some(data)
}

impl MessagesEvents {
    fn decode_event(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        let data = match data_by_hand(&event.data) {
            Some(data) => data,
            None => match serde_json::from_str(&event.data) {
                Ok(data) => data,
                Err(e) => {
                    out.push(crate::protocol::hub::unreadable_event(&e));
                    return;
                }
            },
        };
        match data.kind {
            "message_start" => {
                if let Some(message) = data.message {
                    self.usage.merge(&message.usage);
                    out.extend(message.id.filter(|id| !id.is_empty()).map(Event::MessageId));
                }
            }
            "content_block_start" => match data.content_block {
                Some(block) if block.kind == "tool_use" => {
                    out.push(Event::ToolCallStart {
                        index: data.index,
                        id: block.id,
                        name: block.name.unwrap_or_default(),
                    });
                    // Some hosts give the whole input here and send no deltas.
                    let input = block.input.map(RawValue::get).filter(|i| *i != "{}" && *i != "null");
                    out.extend(input.map(|arguments| Event::ToolCallDelta {
                        index: data.index,
                        arguments: arguments.to_owned(),
                    }));
                    self.tool = Some((data.index, input.is_some()));
                }
                Some(block) if block.kind == "text" => {}
                Some(block) if block.kind == "thinking" => {
                    let text = block.thinking.unwrap_or_default();
                    let signature = String::new();
                    self.thinking = Some((data.index, ThinkingBlock::Signed { text, signature }));
                }
                Some(block) if block.kind == "redacted_thinking" => {
                    let data_field = block.data.unwrap_or_default();
                    self.thinking = Some((data.index, ThinkingBlock::Redacted { data: data_field }));
                }
                _ => self.text_then_skipped.1 = self.text_then_skipped.0,
            },
            "content_block_stop" => {
                if let Some((index, had_input)) = self.tool
                    && index == data.index
                {
                    self.tool = None;
                    if !had_input {
                        out.push(Event::ToolCallDelta {
                            index,
                            arguments: "{}".into(),
                        });
                    }
                }
                if let Some((index, block)) = self.thinking.take() {
                    if index != data.index {
                        self.thinking = Some((index, block));
                        return;
                    }
                    let block = match block {
                        ThinkingBlock::Signed { text, signature } => {
                            serde_json::json!({"type": "thinking", "thinking": text, "signature": signature})
                        }
                        ThinkingBlock::Redacted { data } => {
                            serde_json::json!({"type": "redacted_thinking", "data": data})
                        }
                    };
                    let block = serde_json::value::to_raw_value(&block).expect("a block serialises");
                    out.push(Event::ReasoningSeal(Opaque::Anthropic { block }));
                }
            }
            "content_block_delta" => {
                let Some(delta) = data.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text {
                            self.text_delta(text, out);
                        }
                    }
                    Some("thinking_delta") => {
                        if let (Some(text), Some((_, ThinkingBlock::Signed { text: kept, .. }))) =
                            (&delta.thinking, &mut self.thinking)
                        {
                            kept.push_str(text);
                        }
                        out.extend(delta.thinking.filter(|t| !t.is_empty()).map(Event::ReasoningDelta))
                    }
                    Some("signature_delta") => {
                        if let (Some(signature), Some((_, ThinkingBlock::Signed { signature: kept, .. }))) =
                            (&delta.signature, &mut self.thinking)
                        {
                            kept.push_str(signature);
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(arguments) = delta.partial_json.filter(|t| !t.is_empty()) {
                            if let Some((_, had_input)) = &mut self.tool {
                                *had_input = true;
                            }
                            out.push(Event::ToolCallDelta {
                                index: data.index,
                                arguments,
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = &data.usage {
                    self.usage.merge(usage);
                }
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    out.push(Event::Stop(stop_reason(&reason)));
                }
                out.push(Event::Usage(self.usage.to_hub()));
            }
            "message_stop" => out.push(Event::Done),
            "error" => {
                let error = data.error.unwrap_or(ErrorBody {
                    kind: None,
                    message: None,
                });
                // Into the hub's vocabulary (OpenAI's codes), by the table of `shared/protocol-conversion.md` §4.3.
                let message = error.message.unwrap_or_else(|| "upstream error".into());
                let mapped = openai_error_for_anthropic(None, error.kind.as_deref().unwrap_or("api_error"), &message);
                out.push(Event::Error {
                    message,
                    code: Some(mapped.code.unwrap_or(mapped.kind).to_owned()),
                });
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding for an Anthropic client (an Anthropic client on another protocol's upstream)

/// What a Messages answer needs besides the hub response.
pub struct MessagesAnswer<'a> {
    /// 24 hex digits; the answer's id is `msg_<hex>`.
    pub id_hex: &'a str,
    /// The model the client asked for.
    pub model: &'a str,
    /// Key for the router's own thinking signatures: Anthropic clients replay thinking only with one.
    pub signing_key: &'a [u8],
    /// For a stream: the prompt's estimated size, for `message_start` (the upstream reports it only at the end).
    pub input_estimate: u64,
}

pub(crate) fn stop_reason_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::End => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ContentFilter => "refusal",
    }
}

/// Usage as Anthropic reports it: cached tokens apart from `input_tokens`, thinking tokens when known;
/// whole answers and stream events alike.
#[derive(serde::Serialize)]
pub(crate) struct UsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens_details: Option<OutputDetailsOut>,
}

#[derive(serde::Serialize)]
struct OutputDetailsOut {
    thinking_tokens: u64,
}

impl UsageOut {
    pub(crate) fn new(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input.saturating_sub(usage.cached + usage.cache_write),
            cache_creation_input_tokens: usage.cache_write,
            cache_read_input_tokens: usage.cached,
            output_tokens: usage.output,
            output_tokens_details: (usage.reasoning > 0).then_some(OutputDetailsOut {
                thinking_tokens: usage.reasoning,
            }),
        }
    }
}

/// The answer's id: `msg_` + the upstream id's letters and digits, else the one minted for it.
pub(crate) fn message_id(upstream: Option<&str>, id_hex: &str) -> String {
    let upstream = upstream.unwrap_or("");
    let mut id = String::with_capacity(4 + upstream.len().max(id_hex.len()));
    id.push_str("msg_");
    // ASCII letters and digits are whole characters: no byte of a longer UTF-8 sequence is one.
    id.extend(upstream.bytes().filter(u8::is_ascii_alphanumeric).map(char::from));
    if id.len() == 4 {
        match id_hex.strip_prefix("msg_") {
            Some(hex) => id.push_str(hex),
            None => id.push_str(id_hex),
        }
    }
    id
}

/// `end_turn`, unless the upstream says which stop sequence ended the answer.
pub(crate) fn stop_reason_of(stop: StopReason, stop_sequence: Option<&str>) -> &'static str {
    match (stop, stop_sequence) {
        (StopReason::End, Some(_)) => "stop_sequence",
        (stop, _) => stop_reason_name(stop),
    }
}

/// Encodes a whole answer as a `message`, written straight into the body. Reasoning gets the router's own
/// signature: an Anthropic client replays thinking only with one, and only the router can check it.
pub fn encode(response: &Response, answer: &MessagesAnswer<'_>) -> Vec<u8> {
    use super::tool_ids::AnswerToolIds;
    use crate::protocol::convert::signature::mint_thinking_signature;
    let mut ids = AnswerToolIds::new(answer.id_hex);
    // One allocation of about the answer's size rather than a doubling series.
    let texts: usize = response.output.iter().map(text_len).sum();
    let mut out = Vec::with_capacity(MESSAGE_BYTES + texts);
    out.extend_from_slice(br#"{"id":"#);
    push_str(&mut out, &message_id(response.id.as_deref(), answer.id_hex));
    out.extend_from_slice(br#","type":"message","role":"assistant","model":"#);
    push_str(&mut out, answer.model);
    out.extend_from_slice(br#","content":["#);
    let mut first = true;
    for (i, part) in response.output.iter().enumerate() {
        let block_start = |out: &mut Vec<u8>, first: &mut bool| {
            if !std::mem::take(first) {
                out.push(b',');
            }
        };
        match part {
            Part::Reasoning(r) if !r.text.is_empty() => {
                block_start(&mut out, &mut first);
                out.extend_from_slice(br#"{"type":"thinking","thinking":"#);
                push_str(&mut out, &r.text);
                out.extend_from_slice(br#","signature":"#);
                push_str(&mut out, &mint_thinking_signature(answer.signing_key, &r.text));
                out.push(b'}');
            }
            Part::Text(t) | Part::Refusal(t) if !t.trim().is_empty() => {
                block_start(&mut out, &mut first);
                out.extend_from_slice(br#"{"type":"text","text":"#);
                push_str(&mut out, t);
                out.push(b'}');
            }
            Part::ToolCall(call) => {
                block_start(&mut out, &mut first);
                out.extend_from_slice(br#"{"type":"tool_use","id":"#);
                push_str(&mut out, &ids.assign(Some(&call.id), i));
                out.extend_from_slice(br#","name":"#);
                push_str(&mut out, &call.name);
                out.extend_from_slice(br#","input":"#);
                serde_json::to_writer(&mut out, &super::request::input(call)).expect("a tool input serialises");
                out.push(b'}');
            }
            _ => {}
        }
    }
    out.extend_from_slice(br#"],"stop_reason":""#);
    out.extend_from_slice(stop_reason_of(response.stop, response.stop_sequence.as_deref()).as_bytes());
    out.extend_from_slice(br#"","stop_sequence":"#);
    push_opt_str(&mut out, response.stop_sequence.as_deref());
    out.extend_from_slice(br#","usage":"#);
    crate::protocol::json::to_writer(&mut out, &UsageOut::new(&response.usage)).expect("usage serialises");
    out.push(b'}');
    out
}

/// About the size of a message without its blocks' text.
const MESSAGE_BYTES: usize = 384;

/// The length of the text a part puts into an answer, before escaping.
fn text_len(part: &Part) -> usize {
    match part {
        Part::Text(text) | Part::Refusal(text) => text.len(),
        Part::Reasoning(reasoning) => reasoning.text.len() + SIGNATURE_BYTES,
        Part::ToolCall(call) => call.arguments.len() + TOOL_USE_BYTES,
        _ => 0,
    }
}

/// About what a thinking block's signature and a tool_use block's keys and id add.
const SIGNATURE_BYTES: usize = 128;
const TOOL_USE_BYTES: usize = 96;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_read_event_agrees_with_serde() {
        let typical = [
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type":"ping"}"#,
        ];
        let edge = [
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            r#"{"index":0}"#,
            r#"{"type":"content_block_stop","index":-1}"#,
            r#"{"type":"content_block_stop","index":null}"#,
            r#"{"type":"message_start","message":{"usage":null}}"#,
            r#"{"type":"content_block_delta","delta":{"text":"a","text":"b"}}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = data_by_hand(text)?;
            let slow = serde_json::from_str::<Data>(text).map_err(drop);
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    #[test]
    fn the_hand_read_answer_agrees_with_serde() {
        let typical = [
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hi \"there\"\n"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":5,"service_tier":"standard"}}"#,
            r#"{"content":[{"type":"thinking","thinking":"hm","signature":"sig"},{"type":"tool_use","id":"t","name":"f","input":{"a":[1]}}],"stop_reason":"tool_use","usage":{"output_tokens_details":{"thinking_tokens":3},"output_tokens":9}}"#,
            r#"{"type":"message","content":[],"usage":{"input_tokens":null,"output_tokens_details":null}}"#,
            r#"{"id":null,"type":null,"stop_reason":null}"#,
        ];
        let edge = [
            r#"{"type":"e\u0072ror"}"#,
            r#"{"content":null}"#,
            r#"{"usage":null}"#,
            r#"{"usage":{"input_tokens":1.5}}"#,
            r#"{"usage":{"input_tokens":1,"input_tokens":2}}"#,
            r#"{"id":"a","id":"b"}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = message_by_hand(text)?;
            // serde's message, its blocks read from their raw text, as `decode` reads them.
            let slow = serde_json::from_str::<Message>(text)
                .map_err(drop)
                .and_then(|mut message| {
                    let blocks = std::mem::take(&mut message.content)
                        .into_iter()
                        .map(|raw| Ok((serde_json::from_str::<Block>(raw.get()).map_err(drop)?, raw.get())))
                        .collect::<Result<Vec<_>, ()>>()?;
                    Ok((message, blocks))
                });
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    #[test]
    fn a_hand_read_block_agrees_with_serde() {
        let typical = [
            r#"{"type":"text","text":"Hi \"there\"\n","citations":null}"#,
            r#"{"type":"thinking","thinking":"hm","signature":"sig"}"#,
            r#"{"type":"redacted_thinking","data":"opaque"}"#,
            r#"{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris","days":[1,2]}}"#,
            r#"{"type":"server_tool_use","id":"s","name":"web_search","input":null}"#,
        ];
        let edge = [
            r#"{"text":"no type"}"#,
            r#"{"type":"t\u0065xt","text":"a"}"#,
            r#"{"type":"text","text":"a","text":"b"}"#,
            r#"{"type":"text","text":1}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = block_by_hand(text)?;
            let slow = serde_json::from_str::<Block>(text).map_err(drop);
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    /// The hand-written text delta reads what serde reads, and leaves every other shape to serde.
    #[test]
    fn text_deltas_by_hand_read_like_serde() {
        let typical = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"plain"}}"#,
            r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"esc \"q\" \\ \n \u00e9 \ud83d\ude00"}}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"raw é 😀"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":""}}"#,
            r#"{"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"A longer piece of an answer, as a model streams it: words, commas, and a newline\n."}}"#,
        ];
        let edge = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"a"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"x":1}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a","type":"x"}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"delta":{"text":"a","type":"text_delta"},"index":3,"type":"content_block_delta"}"#,
            r#"{ "type": "content_block_delta", "index": 1, "delta": { "type": "text_delta", "text": "a" } }"#,
        ];
        let both = |body: &[u8]| {
            let data = std::str::from_utf8(body).ok()?;
            let text = text_delta_by_hand(data)?;
            let mut fast = Vec::new();
            MessagesEvents::default().text_delta(text, &mut fast);
            let mut slow = Vec::new();
            let event = SseEvent {
                event: None,
                data: data.to_owned(),
            };
            MessagesEvents::default().decode_event(&event, &mut slow);
            Some((format!("Ok({fast:?})"), format!("Ok({slow:?})")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    #[test]
    fn a_whole_message_keeps_block_order_and_counts_cached_tokens_in_the_input() {
        let response = decode(br#"{"id":"msg_1","type":"message","role":"assistant","content":[
            {"type":"thinking","thinking":"Hmm","signature":"sig"},{"type":"text","text":"Running"},
            {"type":"tool_use","id":"toolu_1","name":"exec_command","input":{"zeta":1,"alpha":2}}],
            "stop_reason":"tool_use","usage":{"input_tokens":100,"cache_read_input_tokens":800,"cache_creation_input_tokens":0,"output_tokens":40}}"#).unwrap();
        assert_eq!(response.stop, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input: 900,
                cached: 800,
                cache_write: 0,
                output: 40,
                reasoning: 0
            }
        );
        assert!(matches!(&response.output[2], Part::ToolCall(c) if c.arguments == r#"{"zeta":1,"alpha":2}"#));
    }

    #[test]
    fn a_whole_answer_is_written_in_the_wire_key_order_and_escaped_as_serde_json_escapes() {
        let call = crate::protocol::convert::test_support::tool_call;
        let response = Response {
            id: Some("up-1é".into()),
            output: vec![
                Part::Reasoning(Reasoning {
                    text: "Think\n\"hard\"".into(),
                    opaque: None,
                }),
                Part::Text("Hi\t\u{1}\\ é🦀".into()),
                call("call_a", "exec", r#"{"cmd": "ls"}"#),
                call("", "f", ""),
                Part::Text(" ".into()),
                Part::Refusal("no".into()),
            ],
            stop: StopReason::End,
            stop_sequence: Some("END\"".into()),
            usage: Usage {
                input: 900,
                cached: 800,
                cache_write: 5,
                output: 40,
                reasoning: 12,
            },
        };
        let answer = MessagesAnswer {
            id_hex: "0123",
            model: "m\"x",
            signing_key: b"k",
            input_estimate: 0,
        };
        assert_eq!(
            String::from_utf8(encode(&response, &answer)).unwrap(),
            r#"{"id":"msg_up1","type":"message","role":"assistant","model":"m\"x","content":[{"type":"thinking","thinking":"Think\n\"hard\"","signature":"llmr1.eML3Z4XNAPOf41GKkvxMYm2rLV--uTtARctsz_71gnk"},{"type":"text","text":"Hi\t\u0001\\ é🦀"},{"type":"tool_use","id":"call_a","name":"exec","input":{"cmd": "ls"}},{"type":"tool_use","id":"toolu_a0c3e819a4c919446a880179","name":"f","input":{}},{"type":"text","text":"no"}],"stop_reason":"stop_sequence","stop_sequence":"END\"","usage":{"input_tokens":95,"cache_creation_input_tokens":5,"cache_read_input_tokens":800,"output_tokens":40,"output_tokens_details":{"thinking_tokens":12}}}"#
        );
        assert_eq!(
            String::from_utf8(encode(&Response::default(), &answer)).unwrap(),
            r#"{"id":"msg_0123","type":"message","role":"assistant","model":"m\"x","content":[],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#
        );
    }

    #[test]
    fn message_ids_keep_the_upstreams_letters_and_digits() {
        assert_eq!(message_id(Some("msg_01-ab.é9"), "ff"), "msg_msg01ab9");
        assert_eq!(message_id(Some("--"), "msg_ff"), "msg_ff");
        assert_eq!(message_id(None, "ff"), "msg_ff");
    }

    #[test]
    fn stream_events_become_hub_events_with_running_usage() {
        let event = |name: &str, data: &str| SseEvent {
            event: Some(name.into()),
            data: data.into(),
        };
        let mut decoder = MessagesEvents::default();
        let mut out = Vec::new();
        for (name, data) in [
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hm"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            decoder.decode(&event(name, data), &mut out);
        }
        assert_eq!(
            out,
            [
                Event::ReasoningDelta("Hm".into()),
                Event::ToolCallStart {
                    index: 1,
                    id: Some("toolu_1".into()),
                    name: "f".into()
                },
                Event::ToolCallDelta {
                    index: 1,
                    arguments: "{}".into()
                },
                Event::Stop(StopReason::ToolUse),
                Event::Usage(Usage {
                    input: 15,
                    cached: 5,
                    cache_write: 0,
                    output: 7,
                    reasoning: 0
                }),
                Event::Done,
            ]
        );
    }

    #[test]
    fn stream_quirks_whole_tool_inputs_missing_inputs_and_server_tools() {
        let event = |name: &str, data: serde_json::Value| SseEvent {
            event: Some(name.into()),
            data: data.to_string(),
        };
        let mut decoder = MessagesEvents::default();
        let mut out = Vec::new();
        for (name, data) in [
            (
                "message_start",
                serde_json::json!({"type": "message_start", "message": {"id": "msg_9", "usage": {}}}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "A"}}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}}}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 2,
                "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 2,
                "delta": {"type": "text_delta", "text": "B"}}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 3,
                "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}}),
            ),
            (
                "content_block_stop",
                serde_json::json!({"type": "content_block_stop", "index": 3}),
            ),
            (
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 4,
                "content_block": {"type": "tool_use", "id": "t2", "name": "g", "input": {}}}),
            ),
            (
                "content_block_stop",
                serde_json::json!({"type": "content_block_stop", "index": 4}),
            ),
        ] {
            decoder.decode(&event(name, data), &mut out);
        }
        let start = |index, id: &str, name: &str| Event::ToolCallStart {
            index,
            id: Some(id.into()),
            name: name.into(),
        };
        let args = |index, arguments: &str| Event::ToolCallDelta {
            index,
            arguments: arguments.into(),
        };
        assert_eq!(
            out,
            [
                Event::MessageId("msg_9".into()),
                Event::TextDelta("A".into()),
                Event::TextDelta("\n\nB".into()),
                start(3, "t1", "f"),
                args(3, r#"{"x":1}"#),
                start(4, "t2", "g"),
                args(4, "{}"),
            ],
            "text across a server tool is two paragraphs; a whole input is sent once; no input is {{}}"
        );
    }
}
