//! The shared representation that protocol codecs meet in, owned by no protocol. A client request is decoded
//! from its protocol into a [`Request`] and encoded into the upstream's; an upstream answer is decoded into a
//! [`Response`] (or, streamed, into [`Event`]s) and encoded into the client's protocol. It is a superset of
//! what the protocols carry: tool calls with their ids and namespaces, reasoning with where its opaque
//! signature came from, media, stop reasons, and usage with cached and reasoning tokens.
//!
//! Tool schemas and tool arguments stay raw JSON text: no codec needs to look inside them, and keeping the
//! text keeps the key order models rely on.
//!
//! Each protocol has its codecs in its own module (`protocol::chat`, `protocol::messages`,
//! `protocol::responses`); [`convert_request`], [`convert_answer`] and [`convert_stream`] pair them.

use serde_json::value::RawValue;

use crate::protocol::convert::ids::ToolNameMap;
use crate::protocol::convert::stream::{StreamConverter, StreamFailure, StreamStatus};
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens_of;
use crate::protocol::convert::tool_calls::JSON_OUTPUT_TOOL;
use crate::protocol::convert::{ConvertContext, ConvertError, RequestFacts};
use crate::protocol::sse::SseEvent;
use crate::protocol::{Protocol, chat, gemini, messages, responses};

/// A client request re-encoded for an upstream of another protocol.
#[derive(Debug)]
pub struct Converted {
    /// The upstream body, with the upstream's `model` (`rewrite_body` is the caller's).
    pub body: Vec<u8>,
    /// What the answer's conversion back needs.
    pub facts: RequestFacts,
}

/// Decodes a client request from its protocol into the hub, with the facts its answer will need.
pub fn decode_request(
    client: Protocol,
    body: &[u8],
    ctx: &ConvertContext<'_>,
) -> Result<(Request, RequestFacts), ConvertError> {
    let mut facts = RequestFacts::default();
    let request = match client {
        Protocol::Responses => {
            let decoded = responses::request::decode(body, ctx.signing_key)?;
            facts.responses = Some(Box::new(decoded.facts));
            decoded.request
        }
        Protocol::OpenAi => {
            let (request, chat) = chat::request::decode(body)?;
            facts.include_usage = chat.include_usage;
            request
        }
        Protocol::Gemini => {
            let (mut request, gemini) = gemini::request::decode(body)?;
            // A Gemini client asks for a stream by its URL, not in the body.
            request.stream = ctx.route_stream;
            facts.include_thoughts = gemini.include_thoughts;
            request
        }
        Protocol::Anthropic => {
            let request = messages::request::decode(body)?;
            // What a Chat upstream can be sent: its first four.
            facts.stop_sequences = request.stop.iter().take(4).cloned().collect();
            request
        }
    };
    facts.stream = request.stream;
    if facts.responses.is_none() {
        // Names too long or odd for an upstream are shortened by the encoders; the answer gets them back.
        facts.tool_names = ToolNameMap::from_tool_names(request.tools.iter().map(|t| t.name.as_str()));
    }
    Ok((request, facts))
}

/// Decodes a client request from its protocol and encodes it in the upstream's, through the hub.
pub fn convert_request(
    client: Protocol,
    upstream: Protocol,
    body: &[u8],
    ctx: &ConvertContext<'_>,
) -> Result<Converted, ConvertError> {
    let options = ctx.options;
    let (mut request, mut facts) = decode_request(client, body, ctx)?;
    if client == Protocol::Anthropic && request.stream {
        // An Anthropic stream states the prompt's size in its first event, before the upstream's count
        // arrives. Only a stream needs it, and tokenizing costs more than the conversion.
        facts.input_tokens_estimate = estimate_anthropic_input_tokens_of(body, options.token_count_factor).unwrap_or(0);
    }
    if request.max_output_tokens == Some(0) {
        // Claude Code's cache pre-warm: answered locally; the body stays a valid request.
        facts.cache_prewarm = true;
        request.max_output_tokens = Some(1);
    }
    let body = match upstream {
        Protocol::OpenAi => {
            let encoded = chat::request::encode(&request, ctx.upstream_model, options)?;
            facts.thinking_enabled = encoded.thinking_enabled;
            encoded.body
        }
        Protocol::Anthropic => {
            let encoded = messages::request::encode(&request, ctx.upstream_model, options)?;
            facts.thinking_enabled = encoded.thinking_enabled;
            facts.json_output_tool = encoded.json_output_tool;
            encoded.body
        }
        Protocol::Responses => responses::request::encode(&request, ctx.upstream_model, options),
        // The model goes into the URL, which the deployment has.
        Protocol::Gemini => {
            let encoded = gemini::request::encode(&request, ctx.upstream_model, options)?;
            facts.thinking_enabled = encoded.thinking_enabled;
            encoded.body
        }
    };
    Ok(Converted { body, facts })
}

/// Decodes an upstream's whole answer from its protocol and encodes it in the client's, through the hub.
pub fn convert_answer(
    client: Protocol,
    upstream: Protocol,
    body: &[u8],
    ctx: &ConvertContext<'_>,
    facts: &RequestFacts,
) -> Result<Vec<u8>, ConvertError> {
    convert_answer_with_usage(client, upstream, body, ctx, facts).map(|(body, _)| body)
}

/// [`convert_answer`], and the usage as the upstream reported it (before a local estimate stands in for a
/// missing input count), for the request's record.
pub fn convert_answer_with_usage(
    client: Protocol,
    upstream: Protocol,
    body: &[u8],
    ctx: &ConvertContext<'_>,
    facts: &RequestFacts,
) -> Result<(Vec<u8>, Usage), ConvertError> {
    let mut response = match upstream {
        Protocol::OpenAi => chat::response::decode(body)?,
        Protocol::Anthropic => messages::response::decode(body)?,
        Protocol::Responses => responses::response::decode(body)?,
        Protocol::Gemini => gemini::response::decode(body)?,
    };
    facts.restore(&mut response, upstream);
    let reported = response.usage;
    if response.usage.input == 0 {
        // The upstream reported no usage; the local estimate, when there is one, beats a zero.
        response.usage.input = facts.input_tokens_estimate;
    }
    if client != Protocol::Anthropic {
        // An id-less call still needs an id to be answered by (the Anthropic encoder mints its own kind).
        for (i, part) in response.output.iter_mut().enumerate() {
            if let Part::ToolCall(call) = part
                && call.id.is_empty()
            {
                call.id = format!("call_llmr_{i}");
            }
        }
    }
    Ok((encode_answer(client, &response, ctx, facts), reported))
}

/// Encodes a whole answer in the client's protocol, with the ids and echoes of `ctx` and `facts`.
pub fn encode_answer(client: Protocol, response: &Response, ctx: &ConvertContext<'_>, facts: &RequestFacts) -> Vec<u8> {
    match client {
        Protocol::Responses => {
            let fallback;
            let responses = match &facts.responses {
                Some(responses) => &**responses,
                None => {
                    fallback = responses::request::ResponsesFacts::default();
                    &fallback
                }
            };
            responses::response::encode(
                response,
                &responses::response::AnswerContext {
                    id_hex: ctx.response_id,
                    signing_key: ctx.signing_key,
                    created: ctx.created,
                    model: ctx.client_model,
                    facts: responses,
                },
            )
        }
        Protocol::Anthropic => messages::response::encode(response, &messages_answer(ctx, 0)),
        Protocol::OpenAi => chat::response::encode(response, &chat_answer(ctx, facts)),
        Protocol::Gemini => gemini::response::encode(response, &gemini_answer(ctx, facts)),
    }
}

/// The stream converter from the upstream's protocol to the client's, through the hub.
pub fn convert_stream(
    client: Protocol,
    upstream: Protocol,
    ctx: &ConvertContext<'_>,
    mut facts: RequestFacts,
) -> Box<dyn StreamConverter> {
    let encoder = stream_encoder(client, ctx, &mut facts);
    stream_from(upstream, encoder, facts)
}

/// The encoder of the client's stream, with the ids and echoes of `ctx` and `facts` (a Responses client's
/// facts move into it).
pub fn stream_encoder(client: Protocol, ctx: &ConvertContext<'_>, facts: &mut RequestFacts) -> Box<dyn StreamEncoder> {
    match client {
        Protocol::Responses => Box::new(responses::stream::ResponsesStreamEncoder::new(
            ctx.response_id,
            ctx.created,
            ctx.client_model,
            facts.responses.take().map(|r| *r).unwrap_or_default(),
            ctx.signing_key,
        )),
        Protocol::Anthropic => Box::new(messages::stream::MessagesStreamEncoder::new(&messages_answer(
            ctx,
            facts.input_tokens_estimate,
        ))),
        Protocol::OpenAi => Box::new(chat::stream::ChatStreamEncoder::new(&chat_answer(ctx, facts))),
        Protocol::Gemini => Box::new(gemini::stream::GeminiStreamEncoder::new(&gemini_answer(ctx, facts))),
    }
}

fn stream_from<E: StreamEncoder + 'static>(
    upstream: Protocol,
    encoder: E,
    facts: RequestFacts,
) -> Box<dyn StreamConverter> {
    match upstream {
        Protocol::OpenAi => Box::new(HubStream::new(chat::response::ChatChunks::default(), encoder, facts)),
        Protocol::Anthropic => Box::new(HubStream::new(
            messages::response::MessagesEvents::default(),
            encoder,
            facts,
        )),
        Protocol::Responses => Box::new(HubStream::new(
            responses::stream::ResponsesEvents::default(),
            encoder,
            facts,
        )),
        Protocol::Gemini => Box::new(HubStream::new(
            gemini::response::GeminiChunks::default(),
            encoder,
            facts,
        )),
    }
}

fn gemini_answer<'a>(ctx: &ConvertContext<'a>, facts: &RequestFacts) -> gemini::response::GeminiAnswer<'a> {
    gemini::response::GeminiAnswer {
        id_hex: ctx.response_id,
        model: ctx.client_model,
        include_thoughts: facts.include_thoughts,
    }
}

fn chat_answer<'a>(ctx: &ConvertContext<'a>, facts: &RequestFacts) -> chat::response::ChatAnswer<'a> {
    chat::response::ChatAnswer {
        id_hex: ctx.response_id,
        created: ctx.created,
        model: ctx.client_model,
        include_usage: facts.include_usage,
    }
}

fn messages_answer<'a>(ctx: &ConvertContext<'a>, input_estimate: u64) -> messages::response::MessagesAnswer<'a> {
    messages::response::MessagesAnswer {
        id_hex: ctx.response_id,
        model: ctx.client_model,
        signing_key: ctx.signing_key,
        input_estimate,
    }
}

/// A generation request, whatever protocol it came in.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Instructions that lead the conversation (Responses `instructions`), before any message.
    pub instructions: Vec<String>,
    /// A prompt-cache breakpoint ends the instructions (an Anthropic client's marked `system`).
    pub cache_instructions: bool,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Anthropic's `top_k`, for the upstreams that take it.
    pub top_k: Option<u64>,
    /// Stop sequences (Chat `stop`, Anthropic `stop_sequences`); the Responses API has none.
    pub stop: Vec<String>,
    pub reasoning: ReasoningRequest,
    /// A thinking budget in tokens, when the client gave one (Anthropic `budget_tokens`).
    pub reasoning_budget: Option<u64>,
    pub format: Option<OutputFormat>,
    pub stream: bool,
    /// An end-user id for the provider's abuse monitoring.
    pub user: Option<String>,
    /// A provider prompt-cache key (Codex sends its session id).
    pub prompt_cache_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// A system or developer message at its position in the conversation.
    System,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    /// A refusal in assistant history: replayed as text.
    Refusal(String),
    /// An image as a `data:` URL or an http(s) URL.
    Image {
        url: String,
        detail: Option<String>,
    },
    /// A file as a `data:` URL.
    File {
        data_url: String,
        filename: Option<String>,
    },
    Reasoning(Reasoning),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
    /// A prompt-cache breakpoint after the part before it (Anthropic `cache_control`).
    CacheBreakpoint,
}

/// Model reasoning (thinking). `text` is what can be shown; `opaque` is what must go back verbatim to the
/// upstream kind that produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasoning {
    pub text: String,
    pub opaque: Option<Opaque>,
}

/// An opaque reasoning artefact, tagged with the kind of upstream that made it, so it only ever goes back
/// there.
#[derive(Debug, Clone)]
pub enum Opaque {
    /// An Anthropic `thinking` (with its signature) or `redacted_thinking` block, exactly as Anthropic sent it.
    Anthropic { block: Box<RawValue> },
    /// A Gemini `thoughtSignature` found on a thought or text part, in standard base64. (A signature on a
    /// `functionCall` part travels in the call's id instead: clients of other protocols replay ids, not
    /// reasoning; see `protocol::gemini`.)
    Gemini { signature: String },
}

impl PartialEq for Opaque {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Opaque::Anthropic { block: a }, Opaque::Anthropic { block: b }) => a.get() == b.get(),
            (Opaque::Gemini { signature: a }, Opaque::Gemini { signature: b }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Opaque {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolKind {
    #[default]
    Function,
    /// A free-form tool whose single input is a string (Codex's `apply_patch`).
    Custom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The join key between a call and its result (Responses `call_id`, Chat `id`, Anthropic `id`).
    pub id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub kind: ToolKind,
    /// JSON text of the arguments (a custom tool's input is the plain string, in `input`).
    pub arguments: String,
}

#[derive(Debug, Clone)]
pub struct ToolResult {
    pub call_id: String,
    /// Text, images and files the tool returned.
    pub content: Vec<Part>,
    pub is_error: bool,
}

/// The messages that answer the tool calls of the assistant turn before `from`: those up to the next
/// assistant turn. Encoders that must put every result right after its call (Chat, Gemini) take the
/// results from here and write whatever else these messages hold after them.
pub fn answering_messages(messages: &[Message], from: usize) -> &[Message] {
    let end = messages[from..]
        .iter()
        .position(|m| m.role == Role::Assistant)
        .map_or(messages.len(), |p| from + p);
    &messages[from..end]
}

/// The result of the call `id` among `messages`.
pub fn result_of<'m>(messages: &'m [Message], id: &str) -> Option<&'m ToolResult> {
    messages.iter().flat_map(|m| &m.parts).find_map(|part| match part {
        Part::ToolResult(result) if result.call_id == id => Some(result),
        _ => None,
    })
}

#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub namespace: Option<String>,
    pub description: Option<String>,
    pub kind: ToolKind,
    /// The JSON schema of a function's arguments, as the client wrote it.
    pub parameters: Option<Box<RawValue>>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    /// One tool by name (and namespace).
    Named {
        name: String,
        namespace: Option<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReasoningRequest {
    /// The client said nothing: the upstream's default.
    #[default]
    Unspecified,
    Disabled,
    /// An effort level: `minimal`, `low`, `medium`, `high`, `xhigh`, ...
    Effort(String),
}

#[derive(Debug, Clone)]
pub enum OutputFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Box<RawValue>,
        strict: Option<bool>,
        description: Option<String>,
    },
}

/// A whole answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The upstream's id for the answer, from which Chat and Messages answers derive theirs.
    pub id: Option<String>,
    /// In the order the upstream produced them: reasoning, text, refusals and tool calls.
    pub output: Vec<Part>,
    pub stop: StopReason,
    /// The stop sequence that ended the answer, when the upstream says which.
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopReason {
    /// A natural end (or a stop sequence).
    #[default]
    End,
    ToolUse,
    MaxTokens,
    ContentFilter,
}

/// Token counts. `input` includes `cached` and `cache_write`; `output` includes `reasoning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// One step of a streamed answer, as decoded from an upstream event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The upstream's id for the answer, from its first event; the client's ids derive from it.
    MessageId(String),
    ReasoningDelta(String),
    /// The reasoning just streamed is complete; this is its artefact, to replay to the upstream that made it.
    /// Reasoning with no text (Anthropic's `redacted_thinking`) has only this event.
    ReasoningSeal(Opaque),
    TextDelta(String),
    RefusalDelta(String),
    /// A tool call begins; `index` identifies it among the answer's calls.
    ToolCallStart {
        index: usize,
        id: Option<String>,
        name: String,
    },
    ToolCallDelta {
        index: usize,
        arguments: String,
    },
    Stop(StopReason),
    /// The stop sequence that ended the answer, when the upstream says which.
    StopSequence(String),
    Usage(Usage),
    /// The upstream's stream ended normally.
    Done,
    /// The upstream reported an error in the stream.
    Error {
        message: String,
        code: Option<String>,
    },
}

/// Decodes an upstream's stream events into hub events.
pub trait StreamDecoder: Send {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>);

    /// The protocol ends every complete stream with its own marker (Anthropic's `message_stop`), so a
    /// stream cut before it is incomplete even if it said why it stopped. Chat hosts often omit `[DONE]`.
    fn needs_end_marker(&self) -> bool {
        false
    }
}

/// Encodes hub events as the client's stream.
pub trait StreamEncoder: Send {
    /// Appends the client's bytes for one event; anything but `Continue` ends the stream.
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus;
    /// The stream's last event (its end or an error) has been written.
    fn finished(&self) -> bool;
    /// The upstream has said why it stopped.
    fn stopped(&self) -> bool;
    /// Writes the in-band error that ends the client's stream.
    fn fail(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>);
    /// Bytes that keep a silent stream alive.
    fn keep_alive(&self, out: &mut Vec<u8>);

    /// The upstream's body ended: the normal end if it had said why it stopped (some hosts omit their end
    /// marker), else an in-band error. A truncated stream never gets a normal end.
    fn eof(&mut self, out: &mut Vec<u8>) -> StreamStatus {
        if self.finished() {
            StreamStatus::Finished
        } else if self.stopped() {
            self.encode(Event::Done, out)
        } else {
            self.fail(StreamFailure::Upstream, "upstream stream ended before completion", out);
            StreamStatus::Failed
        }
    }

    /// The upstream failed or stalled after the client's stream began.
    fn failed(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        if !self.finished() {
            self.fail(failure, message, out);
        }
    }
}

/// The client's encoder is picked per request; one indirect call per event is nothing next to its JSON.
impl<E: StreamEncoder + ?Sized> StreamEncoder for Box<E> {
    fn encode(&mut self, event: Event, out: &mut Vec<u8>) -> StreamStatus {
        (**self).encode(event, out)
    }
    fn finished(&self) -> bool {
        (**self).finished()
    }
    fn stopped(&self) -> bool {
        (**self).stopped()
    }
    fn fail(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        (**self).fail(failure, message, out)
    }
    fn keep_alive(&self, out: &mut Vec<u8>) {
        (**self).keep_alive(out)
    }
    fn eof(&mut self, out: &mut Vec<u8>) -> StreamStatus {
        (**self).eof(out)
    }
    fn failed(&mut self, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        (**self).failed(failure, message, out)
    }
}

/// A stream converter made of a decoder (upstream protocol → hub) and an encoder (hub → client protocol), with
/// the request's facts between them (tool names the upstream knew shortened, the `json_output` tool).
pub struct HubStream<D, E> {
    decoder: D,
    encoder: E,
    facts: RequestFacts,
    events: Vec<Event>,
    /// The index of the `json_output` call, whose arguments are the answer's text.
    json_output: Option<usize>,
    /// How the stream ended, once it has: later events change nothing and get the same answer.
    ended: Option<StreamStatus>,
    /// The upstream's latest usage (each protocol reports it cumulatively), for the request's record.
    usage: Option<Usage>,
    content: bool,
}

impl<D: StreamDecoder, E: StreamEncoder> HubStream<D, E> {
    pub fn new(decoder: D, encoder: E, facts: RequestFacts) -> Self {
        Self {
            decoder,
            encoder,
            facts,
            events: Vec::new(),
            json_output: None,
            ended: None,
            usage: None,
            content: false,
        }
    }

    /// The event as the client must see it, or `None` when it has no counterpart.
    fn restore(&mut self, event: Event) -> Option<Event> {
        Some(match event {
            Event::ToolCallStart { index, name, .. } if self.facts.json_output_tool && name == JSON_OUTPUT_TOOL => {
                self.json_output = Some(index);
                return None;
            }
            Event::ToolCallStart { index, id, mut name } => {
                self.facts.tool_names.restore_name(&mut name);
                Event::ToolCallStart { index, id, name }
            }
            Event::ToolCallDelta { index, arguments } if self.json_output == Some(index) => Event::TextDelta(arguments),
            Event::Stop(StopReason::ToolUse) if self.json_output.is_some() => Event::Stop(StopReason::End),
            // Hosts name the stop string or token that ended the answer; only one the client asked for is a
            // stop sequence to it.
            Event::StopSequence(matched) if !self.facts.stop_sequences.contains(&matched) => return None,
            event => event,
        })
    }
}

impl<D: StreamDecoder, E: StreamEncoder> StreamConverter for HubStream<D, E> {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> StreamStatus {
        if let Some(ended) = self.ended {
            return ended;
        }
        let mut events = std::mem::take(&mut self.events);
        self.decoder.decode(event, &mut events);
        let mut status = StreamStatus::Continue;
        for event in events.drain(..) {
            match &event {
                Event::Usage(usage) => self.usage = Some(*usage),
                Event::TextDelta(_)
                | Event::ReasoningDelta(_)
                | Event::RefusalDelta(_)
                | Event::ToolCallStart { .. }
                | Event::ToolCallDelta { .. } => self.content = true,
                _ => {}
            }
            let Some(event) = self.restore(event) else { continue };
            status = self.encoder.encode(event, out);
            if status != StreamStatus::Continue {
                break;
            }
        }
        events.clear();
        self.events = events;
        if status != StreamStatus::Continue {
            self.ended = Some(status);
        }
        status
    }

    fn on_eof(&mut self, out: &mut Vec<u8>) -> StreamStatus {
        if let Some(ended) = self.ended {
            return ended;
        }
        let status = if self.decoder.needs_end_marker() && !self.encoder.finished() {
            self.encoder
                .fail(StreamFailure::Upstream, "upstream stream ended before completion", out);
            StreamStatus::Failed
        } else {
            self.encoder.eof(out)
        };
        self.ended = Some(status);
        status
    }

    fn on_error(&mut self, kind: StreamFailure, message: &str, out: &mut Vec<u8>) {
        if self.ended.is_none() {
            self.encoder.failed(kind, message, out);
            self.ended = Some(StreamStatus::Failed);
        }
    }

    fn keep_alive(&self, out: &mut Vec<u8>) {
        self.encoder.keep_alive(out);
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn content_started(&self) -> bool {
        self.content
    }
}

/// A `data:` URL (how the hub carries inline images and files) split into its media type and payload.
pub struct DataUrl<'a> {
    /// Lower-cased, e.g. `image/png`.
    pub media_type: String,
    pub base64: bool,
    pub data: &'a str,
}

impl<'a> DataUrl<'a> {
    pub fn parse(url: &'a str) -> Option<Self> {
        let rest = url
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("data:"))
            .and(url.get(5..))?;
        let (header, data) = rest.split_once(',')?;
        let mut params = header.split(';');
        let media_type = params.next().unwrap_or_default().trim().to_ascii_lowercase();
        let base64 = params.any(|p| p.trim().eq_ignore_ascii_case("base64"));
        Some(DataUrl {
            media_type,
            base64,
            data,
        })
    }
}

/// The hub event for an upstream stream event that cannot be read: the stream ends in an error.
pub fn unreadable_event(error: &serde_json::Error) -> Event {
    Event::Error {
        message: format!("the upstream sent an event that is not JSON: {error}"),
        code: None,
    }
}
