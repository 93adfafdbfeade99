//! Decoding a Responses request (`POST /v1/responses`) into the hub (reference §1). Typed and borrowed:
//! schemas stay raw JSON. `input` is read item by item with `type` as the tag (Codex mixes messages, calls
//! and outputs in one list), hosted tools and item kinds without a counterpart are dropped rather than
//! refused, and only what would change the shape of the answer is refused (§1.9).

use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::tools::ToolDirectory;
use crate::protocol::convert::ConvertError;
use crate::protocol::hub::{
    Message, OutputFormat, Part, Reasoning, ReasoningRequest, Request, Role, Tool, ToolCall, ToolChoice, ToolKind,
    ToolResult,
};
use crate::protocol::json::{self, Reader, Seen};

/// A decoded Responses request and what its answer needs to know about it.
#[derive(Debug)]
pub struct Decoded {
    pub request: Request,
    pub facts: ResponsesFacts,
}

/// What the answer to a Responses client needs from its request: how to name tool calls again, what to
/// echo, and whether reasoning items carry `encrypted_content`.
#[derive(Debug, Clone, Default)]
pub struct ResponsesFacts {
    pub tools: ToolDirectory,
    pub include_encrypted_reasoning: bool,
    /// Settings echoed in the Response object (reference §3.1).
    pub echo: Echo,
}

#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    pub tools: Option<Box<RawValue>>,
    pub tool_choice: Option<Box<RawValue>>,
    pub parallel_tool_calls: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u64>,
    pub reasoning: Option<Box<RawValue>>,
    pub text: Option<Box<RawValue>>,
    pub prompt_cache_key: Option<String>,
    pub user: Option<String>,
}

/// The request body, with `input` as `I`: read in the same pass as the rest ([`Input`]), or kept raw to be
/// read item by item when that pass failed (see [`decode`]).
#[derive(Deserialize)]
struct Body<'a, I> {
    #[serde(default = "Option::default")]
    input: Option<I>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    safety_identifier: Option<String>,
    #[serde(default)]
    prompt_cache_key: Option<String>,
    #[serde(borrow, default)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
}

/// Decodes a Responses request body. `key` opens the router's own reasoning envelopes.
///
/// The body is read by hand first ([`read_body`]), `input` in the same pass as the rest. What that read
/// does not take, serde reads into the same [`Body`], again in one pass; a body that fails that pass too is
/// read with `input` item by item: slower, but it names the item at fault, and an item of a kind the
/// router drops is skipped whatever its fields hold.
pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Decoded, ConvertError> {
    match std::str::from_utf8(bytes).ok().and_then(|text| read_body(text, key)) {
        Some(body) => decode_body(body, Ok),
        None => decode_with_serde(bytes, key),
    }
}

fn decode_with_serde(bytes: &[u8], key: &[u8]) -> Result<Decoded, ConvertError> {
    match json::parse::<Body<Input>>(bytes) {
        Ok(body) => decode_body(body, |input| decode_input(input, key)),
        Err(_) => {
            let body: Body<&RawValue> = serde_json::from_slice(bytes).map_err(|e| ConvertError {
                message: format!("request body is not a valid Responses request: {e}"),
                param: None,
                code: None,
            })?;
            decode_body(body, |raw| decode_input(read_items(raw)?, key))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The hand-written read: the same fields as the serde derives of `Body`, `InputItem` and `PartItem`, each
// read as serde reads it (`null` is `None` for an `Option`, a field given twice is refused), unknown ones
// skipped. `input` is decoded item by item as it is read, with no list of items in between. Anything else,
// and an item that does not decode, is `None`, for serde to read (and to name the error).

/// The body as serde reads it into `Body<Input>`, with `input` decoded into messages, or `None`.
fn read_body<'a>(text: &'a str, envelope_key: &[u8]) -> Option<Body<'a, Vec<Message>>> {
    let mut body = Body {
        input: None,
        instructions: None,
        tools: None,
        tool_choice: None,
        parallel_tool_calls: None,
        max_output_tokens: None,
        temperature: None,
        top_p: None,
        reasoning: None,
        text: None,
        stream: None,
        include: Vec::new(),
        user: None,
        safety_identifier: None,
        prompt_cache_key: None,
        previous_response_id: None,
        conversation: None,
        background: None,
        prompt: None,
    };
    let mut seen = Seen::default();
    let mut r = Reader::new(text);
    r.object(|r, key| {
        match key {
            "input" => {
                body.input = seen
                    .first(0)
                    .and_then(|()| r.nullable(|r| read_input(r, envelope_key)))?
            }
            "instructions" => body.instructions = seen.first(1).and_then(|()| r.nullable(Reader::string))?,
            "tools" => body.tools = seen.first(2).and_then(|()| r.nullable(Reader::raw))?,
            "tool_choice" => body.tool_choice = seen.first(3).and_then(|()| r.nullable(Reader::raw))?,
            "parallel_tool_calls" => {
                body.parallel_tool_calls = seen.first(4).and_then(|()| r.nullable(Reader::bool))?
            }
            "max_output_tokens" => body.max_output_tokens = seen.first(5).and_then(|()| r.nullable(Reader::u64))?,
            "temperature" => body.temperature = seen.first(6).and_then(|()| r.nullable(Reader::f64))?,
            "top_p" => body.top_p = seen.first(7).and_then(|()| r.nullable(Reader::f64))?,
            "reasoning" => body.reasoning = seen.first(8).and_then(|()| r.nullable(Reader::raw))?,
            "text" => body.text = seen.first(9).and_then(|()| r.nullable(Reader::raw))?,
            "stream" => body.stream = seen.first(10).and_then(|()| r.nullable(Reader::bool))?,
            "include" => body.include = seen.first(11).and_then(|()| read_strings(r))?,
            "user" => body.user = seen.first(12).and_then(|()| r.nullable(Reader::string))?,
            "safety_identifier" => body.safety_identifier = seen.first(13).and_then(|()| r.nullable(Reader::string))?,
            "prompt_cache_key" => body.prompt_cache_key = seen.first(14).and_then(|()| r.nullable(Reader::string))?,
            "previous_response_id" => {
                body.previous_response_id = seen.first(15).and_then(|()| r.nullable(Reader::raw))?
            }
            "conversation" => body.conversation = seen.first(16).and_then(|()| r.nullable(Reader::raw))?,
            "background" => body.background = seen.first(17).and_then(|()| r.nullable(Reader::bool))?,
            "prompt" => body.prompt = seen.first(18).and_then(|()| r.nullable(Reader::raw))?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    r.end()?;
    Some(body)
}

fn read_strings(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut strings = Vec::new();
    r.array(|r| r.string().map(|s| strings.push(s)))?;
    Some(strings)
}

/// `input` as [`Input`]'s `Deserialize` reads it, decoded.
fn read_input(r: &mut Reader<'_>, key: &[u8]) -> Option<Vec<Message>> {
    match r.peek()? {
        b'"' => r.string().map(text_input),
        _ => {
            let mut messages = Vec::new();
            let mut i = 0;
            r.array(|r| {
                decode_item(&mut messages, i, read_item(r)?, key).ok()?;
                i += 1;
                Some(())
            })?;
            Some(messages)
        }
    }
}

fn read_item<'a>(r: &mut Reader<'a>) -> Option<InputItem<'a>> {
    let mut item = InputItem::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "type" => item.kind = seen.first(0).and_then(|()| r.nullable(Reader::plain_str))?,
            "role" => item.role = seen.first(1).and_then(|()| r.nullable(Reader::plain_str))?,
            "content" => {
                // Decoded as it is read when the item is known to be a message (`type` usually comes first).
                let decode = item.kind == Some("message");
                item.content = seen.first(2).and_then(|()| read_content(r, decode))?
            }
            "call_id" => item.call_id = seen.first(3).and_then(|()| r.nullable(Reader::string))?,
            "name" => item.name = seen.first(4).and_then(|()| r.nullable(Reader::string))?,
            "namespace" => item.namespace = seen.first(5).and_then(|()| r.nullable(Reader::string))?,
            "arguments" => item.arguments = seen.first(6).and_then(|()| r.nullable(Reader::string))?,
            "input" => item.input = seen.first(7).and_then(|()| r.nullable(Reader::string))?,
            "output" => {
                let decode = matches!(item.kind, Some("function_call_output" | "custom_tool_call_output"));
                item.output = seen.first(8).and_then(|()| read_content(r, decode))?
            }
            "summary" => item.summary = seen.first(9).and_then(|()| r.nullable(read_parts))?,
            "encrypted_content" => item.encrypted_content = seen.first(10).and_then(|()| r.nullable(Reader::string))?,
            _ => r.skip()?,
        }
        Some(())
    })?;
    Some(item)
}

/// A value as [`Content`]'s `Deserialize` reads it; a list of parts `decode`d into hub parts as it is read
/// when asked.
fn read_content<'a>(r: &mut Reader<'a>, decode: bool) -> Option<Content<'a>> {
    Some(match r.peek()? {
        b'"' => Content::Text(r.string()?),
        b'[' if decode => {
            // Most contents hold one part; a first block of four is one the allocator serves slowly.
            let mut parts = Vec::with_capacity(1);
            let mut j = 0;
            r.array(|r| {
                parts.extend(decode_part(read_part(r)?, &String::new, j).ok()?);
                j += 1;
                Some(())
            })?;
            Content::Decoded(parts)
        }
        b'[' => Content::Parts(read_parts(r)?),
        b'n' => r.null().then_some(Content::Null)?,
        _ => r.raw().map(|_| Content::Other)?,
    })
}

fn read_parts<'a>(r: &mut Reader<'a>) -> Option<Vec<PartItem<'a>>> {
    let mut parts = Vec::new();
    r.array(|r| read_part(r).map(|part| parts.push(part)))?;
    Some(parts)
}

fn read_part<'a>(r: &mut Reader<'a>) -> Option<PartItem<'a>> {
    let mut part = PartItem::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        let slot = match key {
            "type" => {
                part.kind = seen.first(0).and_then(|()| r.nullable(Reader::plain_str))?;
                return Some(());
            }
            "text" => (1, &mut part.text),
            "refusal" => (2, &mut part.refusal),
            "image_url" => (3, &mut part.image_url),
            "detail" => (4, &mut part.detail),
            "file_id" => (5, &mut part.file_id),
            "file_data" => (6, &mut part.file_data),
            "file_url" => (7, &mut part.file_url),
            "filename" => (8, &mut part.filename),
            _ => return r.skip(),
        };
        *slot.1 = seen.first(slot.0).and_then(|()| r.nullable(Reader::string))?;
        Some(())
    })?;
    Some(part)
}

/// The rest of [`decode`], with `read_input` to turn the body's `input` into messages.
fn decode_body<'a, I>(
    body: Body<'a, I>,
    read_input: impl FnOnce(I) -> Result<Vec<Message>, ConvertError>,
) -> Result<Decoded, ConvertError> {
    refuse_stateful(&body)?;
    let tools = match body.tools {
        Some(raw) => decode_tools(raw)?,
        None => Vec::new(),
    };
    let directory = ToolDirectory::new(&tools);
    let messages = match body.input {
        Some(input) => read_input(input)?,
        None => return Err(invalid("input: field is required", "input")),
    };
    let tool_choice = match body.tool_choice {
        Some(raw) => decode_tool_choice(raw, &tools)?,
        None => None,
    };
    let reasoning = match body.reasoning {
        Some(raw) => decode_reasoning(raw)?,
        None => ReasoningRequest::Unspecified,
    };
    let format = match body.text {
        Some(raw) => decode_format(raw)?,
        None => None,
    };
    let user = body.safety_identifier.clone().or_else(|| body.user.clone());
    let request = Request {
        instructions: body.instructions.iter().filter(|s| !s.is_empty()).cloned().collect(),
        cache_instructions: false,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: body.parallel_tool_calls,
        max_output_tokens: body.max_output_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: None,
        stop: Vec::new(),
        reasoning,
        reasoning_budget: None,
        format,
        stream: body.stream.unwrap_or(false),
        user: user.clone(),
        prompt_cache_key: body.prompt_cache_key.clone(),
    };
    let facts = ResponsesFacts {
        tools: directory,
        include_encrypted_reasoning: body.include.iter().any(|i| i == "reasoning.encrypted_content"),
        echo: Echo {
            instructions: body.instructions,
            tools: body.tools.map(compact),
            tool_choice: body.tool_choice.map(compact),
            parallel_tool_calls: body.parallel_tool_calls,
            temperature: body.temperature,
            top_p: body.top_p,
            max_output_tokens: body.max_output_tokens,
            reasoning: body.reasoning.map(compact),
            text: body.text.map(compact),
            prompt_cache_key: body.prompt_cache_key,
            user,
        },
    };
    Ok(Decoded { request, facts })
}

/// A copy of `raw` without whitespace between tokens. Echoed settings are written into SSE `data:` lines,
/// which a pretty-printed value's newlines would break, and compact JSON is what the router writes
/// everywhere else. A value with nothing to remove (the usual case) is copied as is.
fn compact(raw: &RawValue) -> Box<RawValue> {
    let json = raw.get();
    let bytes = json.as_bytes();
    let mut out = String::new();
    // Start of the bytes not copied yet; `out` stays empty until the first whitespace is found.
    let mut kept = 0;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                // To the closing quote, over escaped characters.
                at += 1;
                while let Some(skip) = memchr::memchr2(b'"', b'\\', &bytes[at..]) {
                    at += skip + 1;
                    if bytes[at - 1] == b'"' {
                        break;
                    }
                    at += 1;
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push_str(&json[kept..at]);
                at += 1;
                kept = at;
            }
            _ => at += 1,
        }
    }
    if kept == 0 {
        return raw.to_owned();
    }
    out.push_str(&json[kept..]);
    RawValue::from_string(out).expect("JSON without its insignificant whitespace is JSON")
}

fn invalid(message: impl Into<String>, param: &str) -> ConvertError {
    ConvertError::invalid(message, param)
}

fn unsupported(message: impl Into<String>, param: &str) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: Some(param.to_owned()),
        code: Some("unsupported_parameter"),
    }
}

/// The router keeps no conversation (reference §5): state-dependent requests get a clear 400.
fn refuse_stateful<I>(body: &Body<'_, I>) -> Result<(), ConvertError> {
    let present = |raw: Option<&RawValue>| raw.is_some_and(|r| r.get() != "null");
    if present(body.previous_response_id) {
        return Err(ConvertError {
            message: "previous_response_id is not supported: this router keeps no conversation state; send the \
                      whole conversation in `input` (as Codex does with `store: false`)"
                .into(),
            param: Some("previous_response_id".into()),
            code: Some("previous_response_not_found"),
        });
    }
    if present(body.conversation) {
        return Err(unsupported(
            "conversation is not supported: this router keeps no conversation state; send the whole \
             conversation in `input`",
            "conversation",
        ));
    }
    if body.background == Some(true) {
        return Err(unsupported("background responses are not supported", "background"));
    }
    if present(body.prompt) {
        return Err(unsupported("stored prompt templates are not supported", "prompt"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// input (§1.2–§1.5)

/// `input`: a string is one user message; a list holds items, each tagged by `type` (`message` when absent).
enum Input<'a> {
    Text(String),
    Items(Vec<InputItem<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InputVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for InputVisitor<'a> {
            type Value = Input<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of items")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Input::Text(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Input::Text(text))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Input::Items(items))
            }
        }

        deserializer.deserialize_any(InputVisitor(PhantomData))
    }
}

/// One item of `input`, whatever its `type`: the fields of every kind the router reads, so that the list is
/// read in one pass. Which fields a kind requires is checked when the item is decoded.
#[derive(Deserialize, Default)]
struct InputItem<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    role: Option<&'a str>,
    /// A message's content, or a reasoning item's `reasoning_text` parts.
    #[serde(borrow, default)]
    content: Content<'a>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
    /// A custom tool call's input.
    #[serde(default)]
    input: Option<String>,
    /// A tool call's output.
    #[serde(borrow, default)]
    output: Content<'a>,
    #[serde(borrow, default)]
    summary: Option<Vec<PartItem<'a>>>,
    #[serde(default)]
    encrypted_content: Option<String>,
}

/// The item kinds [`decode_input`] reads; any other is dropped (or, for `item_reference`, refused) by its
/// `type` alone.
const READ_KINDS: [&str; 6] = [
    "message",
    "function_call",
    "custom_tool_call",
    "function_call_output",
    "custom_tool_call_output",
    "reasoning",
];

/// Message content or tool output as sent. `Other` (a number, an object…) is refused where content is
/// read, and ignored in items that are dropped.
#[derive(Default)]
enum Content<'a> {
    #[default]
    Absent,
    Null,
    Text(String),
    Parts(Vec<PartItem<'a>>),
    /// Parts decoded as they were read: message content and tool output, by the hand-written read.
    Decoded(Vec<Part>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(text.to_owned()))
            }

            fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Content::Text(text))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::Other)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
        }

        deserializer.deserialize_any(ContentVisitor(PhantomData))
    }
}

#[derive(Deserialize, Default)]
struct PartItem<'a> {
    /// Required in message content; reasoning parts are read for their text only.
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    file_id: Option<String>,
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    file_url: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

/// The tag of an item, read alone on the slow path of [`read_items`].
#[derive(Deserialize)]
struct ItemHead<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
}

/// `input` read item by item, once the one-pass read of the body failed: the error names the item, and an
/// item of a kind that is dropped is kept by its `type` only, whatever else it holds.
fn read_items(raw: &RawValue) -> Result<Input<'_>, ConvertError> {
    if raw.get().starts_with('"') {
        let text = serde_json::from_str(raw.get()).map_err(|e| invalid(e.to_string(), "input"))?;
        return Ok(Input::Text(text));
    }
    let raw_items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| invalid("input: must be a string or an array of items", "input"))?;
    let mut items = Vec::with_capacity(raw_items.len());
    for (i, item) in raw_items.into_iter().enumerate() {
        let bad = |e: serde_json::Error| invalid(format!("input[{i}]: {e}"), &format!("input[{i}]"));
        let head: ItemHead = serde_json::from_str(item.get()).map_err(bad)?;
        match READ_KINDS.contains(&head.kind.unwrap_or("message")) {
            true => items.push(serde_json::from_str(item.get()).map_err(bad)?),
            false => items.push(InputItem {
                kind: head.kind,
                ..InputItem::default()
            }),
        }
    }
    Ok(Input::Items(items))
}

/// The messages of `input`.
fn decode_input(input: Input<'_>, key: &[u8]) -> Result<Vec<Message>, ConvertError> {
    let items = match input {
        Input::Text(text) => return Ok(text_input(text)),
        Input::Items(items) => items,
    };
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        decode_item(&mut messages, i, item, key)?;
    }
    Ok(messages)
}

/// A string `input`: one user message.
fn text_input(text: String) -> Vec<Message> {
    vec![Message {
        role: Role::User,
        parts: vec![Part::Text(text)],
    }]
}

/// Adds item `i` of `input` to `messages`.
fn decode_item(messages: &mut Vec<Message>, i: usize, item: InputItem<'_>, key: &[u8]) -> Result<(), ConvertError> {
    {
        // Paths in errors are only formatted for an error.
        let at = || format!("input[{i}]");
        let missing = |field: &str| invalid(format!("input[{i}]: missing field `{field}`"), &at());
        match item.kind.unwrap_or("message") {
            "message" => {
                let role = match item.role {
                    Some("user") => Role::User,
                    Some("assistant") => Role::Assistant,
                    Some("system" | "developer") => Role::System,
                    Some(other) => {
                        return Err(invalid(
                            format!("input[{i}].role: unknown role '{other}'"),
                            &format!("input[{i}].role"),
                        ));
                    }
                    None => return Err(missing("role")),
                };
                if matches!(item.content, Content::Absent) {
                    return Err(missing("content"));
                }
                let parts = decode_parts(item.content, || format!("input[{i}].content"))?;
                if !parts.is_empty() {
                    messages.push(Message { role, parts });
                }
            }
            kind @ ("function_call" | "custom_tool_call") => {
                let call_id = item.call_id.ok_or_else(|| missing("call_id"))?;
                let name = item.name.ok_or_else(|| missing("name"))?;
                let (tool_kind, arguments) = match kind {
                    "custom_tool_call" => (ToolKind::Custom, item.input.unwrap_or_default()),
                    _ => (ToolKind::Function, item.arguments.unwrap_or_default()),
                };
                push_assistant(
                    messages,
                    Part::ToolCall(ToolCall {
                        id: call_id,
                        name,
                        namespace: item.namespace,
                        kind: tool_kind,
                        arguments,
                    }),
                );
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = item.call_id.ok_or_else(|| missing("call_id"))?;
                if matches!(item.output, Content::Absent) {
                    return Err(missing("output"));
                }
                let content = decode_parts(item.output, || format!("input[{i}].output"))?;
                messages.push(Message {
                    role: Role::User,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id,
                        content,
                        is_error: false,
                    })],
                });
            }
            "reasoning" => {
                let texts: Vec<String> = match item.content {
                    Content::Parts(content) if !content.is_empty() => content,
                    _ => item.summary.unwrap_or_default(),
                }
                .into_iter()
                .map(|p| p.text.unwrap_or_default())
                .collect();
                let text = texts.join("\n\n");
                // Only the router's own envelopes open; OpenAI's blobs mean nothing to other upstreams.
                let opaque = item
                    .encrypted_content
                    .as_deref()
                    .and_then(|e| super::envelope::open(key, e));
                if !text.is_empty() || opaque.is_some() {
                    push_assistant(messages, Part::Reasoning(Reasoning { text, opaque }));
                }
            }
            "item_reference" => {
                return Err(invalid(
                    format!("input[{i}]: item_reference is not supported: this router keeps no stored items"),
                    &at(),
                ));
            }
            other => tracing::debug!(item_type = other, "dropping a Responses input item with no counterpart"),
        }
    }
    Ok(())
}

/// Adds a part to the assistant turn being built, or starts one.
fn push_assistant(messages: &mut Vec<Message>, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == Role::Assistant => last.parts.push(part),
        _ => messages.push(Message {
            role: Role::Assistant,
            parts: vec![part],
        }),
    }
}

/// Message content or tool output: a string, or a list of parts. `at` is the content's path, for errors.
fn decode_parts(content: Content<'_>, at: impl Fn() -> String) -> Result<Vec<Part>, ConvertError> {
    let parts = match content {
        Content::Absent | Content::Null => return Ok(Vec::new()),
        Content::Text(text) if text.is_empty() => return Ok(Vec::new()),
        Content::Text(text) => return Ok(vec![Part::Text(text)]),
        Content::Other => {
            return Err(invalid(
                format!("{}: must be a string or an array of content parts", at()),
                &at(),
            ));
        }
        Content::Parts(parts) => parts,
        Content::Decoded(parts) => return Ok(parts),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        out.extend(decode_part(part, &at, j)?);
    }
    Ok(out)
}

/// Part `j` of the content at `at`, or nothing for a part of a kind that is dropped.
fn decode_part(part: PartItem<'_>, at: &dyn Fn() -> String, j: usize) -> Result<Option<Part>, ConvertError> {
    let p = || format!("{}[{j}]", at());
    let Some(kind) = part.kind else {
        return Err(invalid(format!("{}: missing field `type`", at()), &at()));
    };
    Ok(match kind {
        "input_text" | "output_text" | "text" | "summary_text" => part.text.filter(|t| !t.is_empty()).map(Part::Text),
        "refusal" => part.refusal.filter(|t| !t.is_empty()).map(Part::Refusal),
        "input_image" => match part.image_url {
            Some(url) => Some(Part::Image {
                url,
                detail: part.detail.filter(|d| d != "original"),
            }),
            None if part.file_id.is_some() => {
                return Err(invalid(
                    format!(
                        "{}: images by file_id are not supported; send a data: or https: URL",
                        p()
                    ),
                    &p(),
                ));
            }
            None => return Err(invalid(format!("{}.image_url: field is required", p()), &p())),
        },
        "input_file" => match (part.file_data, part.file_url) {
            (Some(data_url), _) => Some(Part::File {
                data_url,
                filename: part.filename,
            }),
            (None, Some(_)) => {
                return Err(unsupported(
                    format!(
                        "{}: files by URL are not supported by this model's provider; send file_data",
                        p()
                    ),
                    &p(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    format!("{}: files by file_id are not supported; send file_data", p()),
                    &p(),
                ));
            }
        },
        "input_audio" => return Err(unsupported(format!("{}: audio input is not supported", p()), &p())),
        other => {
            tracing::debug!(
                part_type = other,
                "dropping a Responses content part with no counterpart"
            );
            None
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// tools, tool_choice, reasoning, text.format (§1.6–§1.8)

#[derive(Deserialize)]
struct ToolItem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(borrow, default)]
    format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct CustomFormat {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    syntax: Option<String>,
    #[serde(default)]
    definition: Option<String>,
}

fn decode_tools(raw: &RawValue) -> Result<Vec<Tool>, ConvertError> {
    let list: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| invalid("tools: must be an array", "tools"))?;
    let mut tools = Vec::with_capacity(list.len());
    for (i, raw) in list.into_iter().enumerate() {
        decode_tool(raw, &format!("tools[{i}]"), None, &mut tools)?;
    }
    Ok(tools)
}

fn decode_tool(
    raw: &RawValue,
    at: &str,
    namespace: Option<&ToolItem>,
    out: &mut Vec<Tool>,
) -> Result<(), ConvertError> {
    let tool: ToolItem = serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at}: {e}"), at))?;
    let name = || {
        tool.name
            .clone()
            .ok_or_else(|| invalid(format!("{at}.name: field is required"), at))
    };
    let namespaced = |description: Option<String>| match namespace {
        None => description,
        Some(ns) => match (&ns.description, description) {
            (Some(outer), Some(inner)) => Some(format!("{outer}\n\n{inner}")),
            (outer, inner) => inner.or_else(|| outer.clone()),
        },
    };
    match tool.kind {
        "function" => out.push(Tool {
            name: name()?,
            namespace: namespace.and_then(|ns| ns.name.clone()),
            description: namespaced(tool.description.clone()),
            kind: ToolKind::Function,
            parameters: tool.parameters.filter(|p| p.get() != "null").map(|p| p.to_owned()),
            strict: tool.strict,
        }),
        "custom" => {
            let mut description = tool.description.clone().unwrap_or_default();
            if let Some(format) = tool.format
                && let Ok(format) = serde_json::from_str::<CustomFormat>(format.get())
                && format.kind == "grammar"
                && let Some(definition) = format.definition
            {
                let syntax = format.syntax.unwrap_or_else(|| "grammar".into());
                description.push_str(&format!(
                    "\n\n# Format\nThe `input` must follow this {syntax} grammar:\n{definition}"
                ));
            }
            out.push(Tool {
                name: name()?,
                namespace: namespace.and_then(|ns| ns.name.clone()),
                description: namespaced(Some(description).filter(|d| !d.is_empty())),
                kind: ToolKind::Custom,
                parameters: None,
                strict: None,
            });
        }
        "namespace" if namespace.is_none() => {
            for (j, inner) in tool.tools.iter().flatten().enumerate() {
                decode_tool(inner, &format!("{at}.tools[{j}]"), Some(&tool), out)?;
            }
        }
        hosted => tracing::debug!(tool_type = hosted, "dropping a hosted Responses tool"),
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoiceValue<'a> {
    Mode(&'a str),
    Object {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        mode: Option<&'a str>,
    },
}

fn decode_tool_choice(raw: &RawValue, tools: &[Tool]) -> Result<Option<ToolChoice>, ConvertError> {
    let bad = || invalid("tool_choice: unrecognised value", "tool_choice");
    let value: ToolChoiceValue = serde_json::from_str(raw.get()).map_err(|_| bad())?;
    let choice = match value {
        ToolChoiceValue::Mode("auto") => ToolChoice::Auto,
        ToolChoiceValue::Mode("none") => ToolChoice::None,
        ToolChoiceValue::Mode("required") => ToolChoice::Required,
        ToolChoiceValue::Mode(_) => return Err(bad()),
        ToolChoiceValue::Object {
            kind: "function" | "custom",
            name: Some(name),
            ..
        } => {
            let namespace = tools.iter().find(|t| t.name == name).and_then(|t| t.namespace.clone());
            ToolChoice::Named { name, namespace }
        }
        ToolChoiceValue::Object {
            kind: "allowed_tools",
            mode,
            ..
        } => match mode {
            Some("required") => ToolChoice::Required,
            _ => ToolChoice::Auto,
        },
        ToolChoiceValue::Object { kind, .. } => {
            return Err(ConvertError {
                message: format!("tool_choice: forcing the hosted tool '{kind}' is not supported"),
                param: Some("tool_choice".into()),
                code: Some("unsupported_value"),
            });
        }
    };
    Ok(Some(choice))
}

#[derive(Deserialize)]
struct ReasoningParam {
    #[serde(default)]
    effort: Option<String>,
}

fn decode_reasoning(raw: &RawValue) -> Result<ReasoningRequest, ConvertError> {
    if raw.get() == "null" {
        return Ok(ReasoningRequest::Unspecified);
    }
    let reasoning: ReasoningParam =
        serde_json::from_str(raw.get()).map_err(|e| invalid(format!("reasoning: {e}"), "reasoning"))?;
    Ok(match reasoning.effort.as_deref() {
        None => ReasoningRequest::Unspecified,
        Some("none") => ReasoningRequest::Disabled,
        Some(effort) => ReasoningRequest::Effort(effort.to_owned()),
    })
}

#[derive(Deserialize)]
struct TextParam<'a> {
    #[serde(borrow, default)]
    format: Option<FormatParam<'a>>,
}

#[derive(Deserialize)]
struct FormatParam<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

fn decode_format(raw: &RawValue) -> Result<Option<OutputFormat>, ConvertError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    let text: TextParam = serde_json::from_str(raw.get()).map_err(|e| invalid(format!("text: {e}"), "text"))?;
    let Some(format) = text.format else { return Ok(None) };
    Ok(Some(match format.kind {
        "text" => OutputFormat::Text,
        "json_object" => OutputFormat::JsonObject,
        "json_schema" => OutputFormat::JsonSchema {
            name: format.name.unwrap_or_else(|| "output".into()),
            schema: format
                .schema
                .map(|s| s.to_owned())
                .ok_or_else(|| invalid("text.format.schema: field is required", "text.format.schema"))?,
            strict: format.strict,
            description: format.description,
        },
        other => {
            return Err(invalid(
                format!("text.format.type: unknown format '{other}'"),
                "text.format.type",
            ));
        }
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Encoding a hub request for a Responses upstream (Routes E and F, reference §2)

/// A Responses request for `model`. Stateless (`store: false`): the whole conversation goes in `input`.
/// System messages stay at their position as `developer` messages; reasoning without an artefact the
/// upstream made is dropped (it cannot be replayed to it).
pub fn encode(request: &Request, model: &str, options: &crate::protocol::convert::ModelOptions) -> Vec<u8> {
    let mut input = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "developer",
        };
        let mut content = Vec::new();
        // Calls and results are items of their own: the message so far goes before them.
        let flush = |content: &mut Vec<_>, input: &mut Vec<_>| {
            if !content.is_empty() {
                input.push(UpstreamInput::Message {
                    role,
                    content: std::mem::take(content),
                });
            }
        };
        for part in &message.parts {
            match part {
                Part::Text(text) | Part::Refusal(text) => content.push(match message.role {
                    Role::Assistant => UpstreamPart::OutputText { text },
                    _ => UpstreamPart::InputText { text },
                }),
                Part::Image { url, detail } => content.push(UpstreamPart::InputImage {
                    image_url: url,
                    detail: detail.as_deref(),
                }),
                Part::File { data_url, filename } => content.push(UpstreamPart::InputFile {
                    file_data: data_url,
                    filename: filename.as_deref(),
                }),
                Part::Reasoning(_) | Part::CacheBreakpoint => {}
                Part::ToolCall(call) => {
                    flush(&mut content, &mut input);
                    input.push(match call.kind {
                        ToolKind::Custom => UpstreamInput::CustomToolCall {
                            call_id: &call.id,
                            name: &call.name,
                            input: &call.arguments,
                        },
                        ToolKind::Function => UpstreamInput::FunctionCall {
                            call_id: &call.id,
                            name: &call.name,
                            arguments: if call.arguments.is_empty() {
                                "{}"
                            } else {
                                &call.arguments
                            },
                        },
                    });
                }
                Part::ToolResult(result) => {
                    flush(&mut content, &mut input);
                    input.push(UpstreamInput::FunctionCallOutput {
                        call_id: &result.call_id,
                        output: tool_output(result),
                    });
                }
            }
        }
        flush(&mut content, &mut input);
    }
    let max = request.max_output_tokens.or(options.default_max_tokens.map(u64::from));
    let tools: Vec<UpstreamTool> = request
        .tools
        .iter()
        .map(|tool| {
            let name = super::tools::flat_name(&tool.name, tool.namespace.as_deref());
            match tool.kind {
                ToolKind::Custom => UpstreamTool::Custom {
                    name,
                    description: tool.description.as_deref(),
                    strict: tool.strict,
                },
                ToolKind::Function => UpstreamTool::Function {
                    name,
                    parameters: tool.parameters.as_deref().unwrap_or(&EMPTY_PARAMETERS),
                    description: tool.description.as_deref(),
                    strict: tool.strict,
                },
            }
        })
        .collect();
    let has_tools = !tools.is_empty();
    let body = UpstreamRequest {
        model,
        instructions: (!request.instructions.is_empty()).then(|| request.instructions.join("\n\n")),
        input,
        tools,
        tool_choice: request
            .tool_choice
            .as_ref()
            .filter(|_| has_tools)
            .map(|choice| match choice {
                ToolChoice::Auto => UpstreamToolChoice::Mode("auto"),
                ToolChoice::None => UpstreamToolChoice::Mode("none"),
                ToolChoice::Required => UpstreamToolChoice::Mode("required"),
                ToolChoice::Named { name, namespace } => UpstreamToolChoice::Function {
                    kind: "function",
                    name: super::tools::flat_name(name, namespace.as_deref()),
                },
            }),
        parallel_tool_calls: request.parallel_tool_calls.filter(|_| has_tools),
        // The API's smallest accepted value.
        max_output_tokens: max.map(|n| options.max_output_tokens.map_or(n, |cap| n.min(u64::from(cap))).max(16)),
        temperature: request.temperature,
        top_p: request.top_p,
        reasoning: match &request.reasoning {
            ReasoningRequest::Unspecified => None,
            ReasoningRequest::Disabled => Some(UpstreamReasoning {
                effort: "none",
                summary: None,
            }),
            ReasoningRequest::Effort(effort) => Some(UpstreamReasoning {
                effort,
                summary: Some("auto"),
            }),
        },
        text: match &request.format {
            None | Some(OutputFormat::Text) => None,
            Some(OutputFormat::JsonObject) => Some(UpstreamText {
                format: UpstreamFormat::JsonObject,
            }),
            Some(OutputFormat::JsonSchema {
                name,
                schema,
                strict,
                description,
            }) => Some(UpstreamText {
                format: UpstreamFormat::JsonSchema {
                    name,
                    schema,
                    strict: *strict,
                    description: description.as_deref(),
                },
            }),
        },
        safety_identifier: request.user.as_deref(),
        prompt_cache_key: request.prompt_cache_key.as_deref(),
        store: false,
        stream: request.stream.then_some(true),
    };
    crate::protocol::json::to_vec(&body).expect("a Responses request serialises")
}

/// A tool result as `function_call_output.output`: its text, or parts when it carries images or files.
fn tool_output(result: &ToolResult) -> UpstreamOutput<'_> {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let mut text = texts.join("\n");
    if result.is_error {
        text.insert_str(0, "Error: ");
    }
    let media = result
        .content
        .iter()
        .any(|p| matches!(p, Part::Image { .. } | Part::File { .. }));
    if !media {
        return UpstreamOutput::Text(text);
    }
    let mut parts = vec![UpstreamOutputPart::Text { text }];
    for part in &result.content {
        match part {
            Part::Image { url, .. } => parts.push(UpstreamOutputPart::Image { image_url: url }),
            Part::File { data_url, filename } => parts.push(UpstreamOutputPart::File {
                file_data: data_url,
                filename: filename.as_deref(),
            }),
            _ => {}
        }
    }
    UpstreamOutput::Parts(parts)
}

/// A function tool declared without a schema takes no arguments.
static EMPTY_PARAMETERS: LazyLock<Box<RawValue>> =
    LazyLock::new(|| RawValue::from_string(r#"{"type":"object","properties":{}}"#.into()).expect("a JSON literal"));

/// The request sent to a Responses upstream; field order is the key order on the wire.
#[derive(Serialize)]
struct UpstreamRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    input: Vec<UpstreamInput<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<UpstreamTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<UpstreamToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<UpstreamReasoning<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<UpstreamText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a str>,
    store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum UpstreamInput<'a> {
    Message {
        role: &'static str,
        content: Vec<UpstreamPart<'a>>,
    },
    CustomToolCall {
        call_id: &'a str,
        name: &'a str,
        input: &'a str,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: UpstreamOutput<'a>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum UpstreamPart<'a> {
    InputText {
        text: &'a str,
    },
    OutputText {
        text: &'a str,
    },
    InputImage {
        image_url: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a str>,
    },
    /// `filename` is written even when unknown (`null`).
    InputFile {
        file_data: &'a str,
        filename: Option<&'a str>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UpstreamOutput<'a> {
    Text(String),
    Parts(Vec<UpstreamOutputPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum UpstreamOutputPart<'a> {
    #[serde(rename = "input_text")]
    Text { text: String },
    #[serde(rename = "input_image")]
    Image { image_url: &'a str },
    #[serde(rename = "input_file")]
    File {
        file_data: &'a str,
        filename: Option<&'a str>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum UpstreamTool<'a> {
    Custom {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
    Function {
        name: String,
        parameters: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UpstreamToolChoice {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: String,
    },
}

#[derive(Serialize)]
struct UpstreamReasoning<'a> {
    effort: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'static str>,
}

#[derive(Serialize)]
struct UpstreamText<'a> {
    format: UpstreamFormat<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum UpstreamFormat<'a> {
    JsonObject,
    JsonSchema {
        name: &'a str,
        schema: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written read of the body gives what serde gives, or leaves the body to serde: for typical
    /// bodies (which it must take), for edge cases, and for every prefix and many one-byte changes of them.
    #[test]
    fn the_hand_written_read_agrees_with_serde() {
        let key = b"key";
        let typical: &[&str] = &[
            include_str!("../../../bench/requests/responses.json"),
            r#"{"model":"m","stream":true,"store":false,"tool_choice":"auto","parallel_tool_calls":true,
               "reasoning":{"effort":"high","summary":"auto"},"include":["reasoning.encrypted_content"],
               "prompt_cache_key":"sess","client_metadata":{"x":"y"},"text":{"verbosity":"low"},
               "instructions":"You are Codex.\nBe \"brief\" \u00e9 \ud83d\ude00",
               "input":[
                 {"type":"message","id":"msg_1","role":"developer","content":[{"type":"input_text","text":"rules"}]},
                 {"type":"message","role":"user","content":[{"type":"input_text","text":"Run echo"},
                   {"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"high"}]},
                 {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"think"}],
                  "content":null,"encrypted_content":"gAAAA"},
                 {"type":"function_call","id":"fc_1","status":"completed","name":"exec_command",
                  "arguments":"{\"cmd\": \"echo hi\"}","call_id":"call_1"},
                 {"type":"function_call_output","call_id":"call_1","output":"hi\n"},
                 {"type":"custom_tool_call","call_id":"call_2","name":"apply_patch","input":"*** Begin Patch"},
                 {"type":"custom_tool_call_output","call_id":"call_2","output":[{"type":"input_text","text":"ok"}]},
                 {"type":"message","role":"assistant","content":[{"type":"output_text","text":"done",
                   "annotations":[],"logprobs":[]},{"type":"refusal","refusal":"no"}]},
                 {"type":"future_item","x":1}],
               "tools":[{"type":"function","name":"exec_command","parameters":{"type":"object"}},
                        {"type":"web_search"}],
               "max_output_tokens":1024,"temperature":0.7,"top_p":1,"user":"u","safety_identifier":"s"}"#,
            r#"{"model":"m","input":"hello","instructions":null,"tools":null,"temperature":null,"stream":null}"#,
            r#"{"input":[{"role":"user","content":"plain"},{"role":"system","content":[]}],"metadata":{}}"#,
            "{ \"input\" :\t[ { \"role\" : \"user\" , \"content\" : \"x\" } ] ,\n \"top_p\" : 0.25 }",
        ];
        let edge: &[&str] = &[
            r#"{"input":"a","input":"b"}"#,
            r#"{"input":[{"role":"user","content":"a","content":"b"}]}"#,
            r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"a","text":"b"}]}]}"#,
            r#"{"input":[{"role":"user","content":{"type":"input_text"}}]}"#,
            r#"{"input":[{"role":"user","content":5}]}"#,
            r#"{"input":[{"role":"tool","content":"x"}]}"#,
            r#"{"input":[{"type":"mes\u0073age","role":"user","content":"x"}]}"#,
            r#"{"\u0069nput":"x"}"#,
            r#"{"input":5}"#,
            r#"{"input":["x"]}"#,
            r#"{"input":"x","max_output_tokens":1.5}"#,
            r#"{"input":"x","max_output_tokens":-1}"#,
            r#"{"input":"x","max_output_tokens":18446744073709551616}"#,
            r#"{"input":"x","temperature":1e-2,"top_p":0.30000000000000004}"#,
            r#"{"input":"x","temperature":"hot"}"#,
            r#"{"input":"x","include":null}"#,
            r#"{"input":"x","include":["a",1]}"#,
            r#"{"input":"x","stream":1}"#,
            r#"{"input":"x","previous_response_id":"resp_1"}"#,
            r#"{"input":"x","background":true}"#,
            r#"{"input":"x","unknown":[1,{"a":nul}]}"#,
            r#"{"input":"x"} trailing"#,
            r#"["input"]"#,
            r#"{"input":[{"type":"function_call","call_id":"c"}]}"#,
            r#"{"input":[{"type":"item_reference","id":"x"}]}"#,
            "{\"input\":\"raw\ncontrol\"}",
            r#"{"input":"x","tools":[{"type":"function","name":"a","parameters":{"type":"object"}}],"tools":[]}"#,
        ];
        let both = |body: &[u8]| -> Option<(String, String)> {
            let fast = std::str::from_utf8(body).ok().and_then(|text| read_body(text, key))?;
            Some((
                format!("{:?}", decode_body(fast, Ok)),
                format!("{:?}", decode_with_serde(body, key)),
            ))
        };
        crate::protocol::json::check_agreement(typical, edge, both);
    }

    #[test]
    fn codex_after_one_tool_call() {
        let body = br#"{"model":"m","stream":true,"store":false,"tool_choice":"auto","parallel_tool_calls":true,
            "reasoning":{"summary":"auto"},"include":["reasoning.encrypted_content"],"prompt_cache_key":"sess",
            "client_metadata":{"x":"y"},
            "input":[
              {"type":"message","id":"msg_1","role":"developer","content":[{"type":"input_text","text":"You are a coding agent"}]},
              {"type":"message","role":"user","content":[{"type":"input_text","text":"Run echo"}]},
              {"type":"function_call","id":"fc_1","status":"completed","name":"exec_command","arguments":"{\"cmd\": \"echo hi\"}","call_id":"call_1"},
              {"type":"function_call_output","id":"fco_1","call_id":"call_1","output":"hi\n"},
              {"type":"future_item","x":1}],
            "tools":[{"type":"function","name":"exec_command","description":"run","strict":false,"parameters":{"type":"object","properties":{"cmd":{"type":"string"}}}},
                     {"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]},
                     {"type":"web_search","external_web_access":true}]}"#;
        let Decoded { request, facts } = decode(body, b"key").unwrap();
        assert!(request.stream);
        assert_eq!(request.messages.len(), 4);
        assert_eq!(request.messages[0].role, Role::System);
        assert!(
            matches!(&request.messages[2].parts[0], Part::ToolCall(c) if c.id == "call_1" && c.name == "exec_command")
        );
        assert!(matches!(&request.messages[3].parts[0], Part::ToolResult(r) if r.call_id == "call_1"));
        assert_eq!(request.tools.len(), 2, "the hosted web_search tool is dropped");
        assert_eq!(request.tools[1].namespace.as_deref(), Some("multi_agent_v1"));
        assert_eq!(request.tool_choice, Some(ToolChoice::Auto));
        assert_eq!(request.reasoning, ReasoningRequest::Unspecified);
        assert!(facts.include_encrypted_reasoning);
        assert_eq!(request.prompt_cache_key.as_deref(), Some("sess"));
    }

    #[test]
    fn a_string_input_is_one_user_message_and_state_is_refused() {
        let Decoded { request, .. } =
            decode(br#"{"model":"m","input":"hi","instructions":"be brief"}"#, b"key").unwrap();
        assert_eq!(request.instructions, ["be brief"]);
        assert!(
            matches!(&request.messages[..], [Message { role: Role::User, parts }] if matches!(&parts[0], Part::Text(t) if t == "hi"))
        );
        let error = decode(br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#, b"key").unwrap_err();
        assert_eq!(error.param.as_deref(), Some("previous_response_id"));
        assert_eq!(error.code, Some("previous_response_not_found"));
        let error = decode(br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#, b"key").unwrap_err();
        assert_eq!(error.param.as_deref(), Some("input[0]"));
        assert!(decode(br#"{"model":"m"}"#, b"key").is_err());
    }

    #[test]
    fn dropped_items_may_hold_anything_and_a_bad_item_is_named() {
        // Fields a read kind would need typed: the one-pass read fails, the item-by-item one drops the item.
        let body = br#"{"model":"m","input":[{"type":"future_call","role":5,"content":[1]},
            {"role":"user","content":"hi"}]}"#;
        let Decoded { request, .. } = decode(body, b"key").unwrap();
        assert!(matches!(&request.messages[..], [Message { role: Role::User, .. }]));
        let body = br#"{"model":"m","input":[{"role":"user","content":"hi"},{"type":"function_call","name":7}]}"#;
        assert_eq!(decode(body, b"key").unwrap_err().param.as_deref(), Some("input[1]"));
        let body = br#"{"model":"m","input":[{"role":"user","content":{"text":"hi"}}]}"#;
        assert_eq!(
            decode(body, b"key").unwrap_err().param.as_deref(),
            Some("input[0].content")
        );
    }

    #[test]
    fn echoed_settings_lose_only_the_whitespace_between_tokens() {
        let raw = |json: &str| RawValue::from_string(json.into()).unwrap();
        let pretty = raw("{ \"a\" : [1, 2],\n\t\"b\": \"x y \\\" \\\\\" ,\r\n \"c\": {} }");
        assert_eq!(compact(&pretty).get(), r#"{"a":[1,2],"b":"x y \" \\","c":{}}"#);
        assert_eq!(compact(&raw(r#"{"s":"a b"}"#)).get(), r#"{"s":"a b"}"#);
    }

    #[test]
    fn custom_tools_carry_their_grammar_in_the_description() {
        let Decoded { request, .. } = decode(
            br#"{"model":"m","input":"x","tools":[{"type":"custom","name":"apply_patch","description":"Patch files","format":{"type":"grammar","syntax":"lark","definition":"start: x"}}]}"#,
            b"key",
        )
        .unwrap();
        let tool = &request.tools[0];
        assert_eq!(tool.kind, ToolKind::Custom);
        let description = tool.description.as_deref().unwrap();
        assert!(description.starts_with("Patch files") && description.contains("lark grammar:\nstart: x"));
    }
}
