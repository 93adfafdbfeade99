//! Decoding Chat Completions answers into the hub: a whole `chat.completion` into a [`Response`], and each
//! `chat.completion.chunk` of a stream into [`Event`]s. Typed and borrowed; tool arguments stay text.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::protocol::convert::ConvertError;
use crate::protocol::hub::{Event, Part, Reasoning, Response, StopReason, ToolCall, ToolKind, Usage};
use crate::protocol::json::{Reader, Seen, push_opt_str, push_str, push_u64};
use crate::protocol::sse::{EventView, SseEvent};

#[derive(Deserialize, Default, Debug)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize, Default, Debug)]
struct Choice {
    #[serde(default, alias = "delta")]
    message: Option<ChatMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    /// vLLM and some others name the stop string that ended the answer here (or the stop token's id).
    #[serde(default)]
    stop_reason: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, Debug)]
struct ChatMessage {
    #[serde(default)]
    content: Option<ChatContent>,
    #[serde(default)]
    refusal: Option<String>,
    /// DeepSeek, Qwen and vLLM call it `reasoning_content`; OpenRouter and Ollama `reasoning`. vLLM may
    /// send both with the same text: it counts once.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
}

/// A string by the spec; some hosts send a list of text parts. Read in one pass: `#[serde(untagged)]` would
/// buffer every content into a tree first.
#[derive(Debug)]
enum ChatContent {
    Text(String),
    Parts(Vec<TextPart>),
}

impl<'de> Deserialize<'de> for ChatContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> serde::de::Visitor<'de> for ContentVisitor {
            type Value = ChatContent;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of text parts")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ChatContent, E> {
                Ok(ChatContent::Text(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<ChatContent, E> {
                Ok(ChatContent::Text(text))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ChatContent, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(ChatContent::Parts(parts))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

#[derive(Deserialize, Debug)]
struct TextPart {
    #[serde(default)]
    text: Option<String>,
}

impl ChatContent {
    fn into_text(self) -> String {
        match self {
            ChatContent::Text(text) => text,
            ChatContent::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
        }
    }
}

#[derive(Deserialize, Debug)]
struct ChatToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionCall>,
}

#[derive(Deserialize, Debug)]
struct FunctionCall {
    #[serde(default)]
    name: Option<String>,
    /// A string by the spec; a few hosts send the object itself.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, Debug)]
pub(super) struct ChatUsage {
    #[serde(default)]
    pub(super) prompt_tokens: u64,
    #[serde(default)]
    pub(super) completion_tokens: u64,
    #[serde(default)]
    pub(super) prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub(super) completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here.
    #[serde(default)]
    pub(super) prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
pub(super) struct PromptDetails {
    #[serde(default)]
    pub(super) cached_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_write_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
pub(super) struct CompletionDetails {
    #[serde(default)]
    pub(super) reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    pub(super) fn to_hub(&self) -> Usage {
        let prompt = self.prompt_tokens_details.as_ref();
        let cached = prompt
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0);
        Usage {
            input: self.prompt_tokens,
            cached: cached.min(self.prompt_tokens),
            cache_write: prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0),
            output: self.completion_tokens,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

fn stop_reason(finish_reason: &str) -> StopReason {
    match finish_reason {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::End,
    }
}

/// Why an answer stopped. Several hosts say `stop` (or `length`) for an answer that calls tools, and
/// `tool_calls` for one that calls none: what the answer holds decides, whole or streamed.
fn settled_stop(called: bool, refused: bool, finish_reason: Option<&str>) -> StopReason {
    match (called, refused, finish_reason.map(stop_reason)) {
        (true, _, _) => StopReason::ToolUse,
        (false, true, _) => StopReason::ContentFilter,
        (false, false, Some(StopReason::ToolUse) | None) => StopReason::End,
        (false, false, Some(stop)) => stop,
    }
}

fn arguments_text(arguments: Option<serde_json::Value>) -> String {
    match arguments {
        Some(serde_json::Value::String(text)) => text,
        None | Some(serde_json::Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Decodes a whole `chat.completion`. An answer without choices is unusable.
pub fn decode(body: &[u8]) -> Result<Response, ConvertError> {
    let completion = match std::str::from_utf8(body).ok().and_then(completion_by_hand) {
        Some(completion) => completion,
        None => crate::protocol::json::parse(body)
            .map_err(|e| ConvertError::bad_upstream(format!("the upstream's answer is not a chat completion: {e}")))?,
    };
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(ConvertError::bad_upstream("the upstream's answer has no choices"));
    };
    let message = choice.message.unwrap_or_default();
    let mut output = Vec::new();
    if let Some(text) = message
        .reasoning_content
        .or(message.reasoning)
        .filter(|t| !t.is_empty())
    {
        output.push(Part::Reasoning(Reasoning { text, opaque: None }));
    }
    // Whitespace alone says nothing (and Anthropic clients reject blank text blocks).
    if let Some(text) = message
        .content
        .map(ChatContent::into_text)
        .filter(|t| !t.trim().is_empty())
    {
        output.push(Part::Text(text));
    }
    let refused = message.refusal.as_deref().is_some_and(|t| !t.trim().is_empty());
    if let Some(text) = message.refusal.filter(|_| refused) {
        output.push(Part::Refusal(text));
    }
    let called = !message.tool_calls.is_empty();
    for call in message.tool_calls {
        let function = call.function.unwrap_or(FunctionCall {
            name: None,
            arguments: None,
        });
        // A call without a name cannot be run or answered.
        if function.name.as_deref().is_none_or(str::is_empty) {
            continue;
        }
        output.push(Part::ToolCall(ToolCall {
            // An id-less call gets one from the client's encoder.
            id: call.id.unwrap_or_default(),
            name: function.name.unwrap_or_default(),
            namespace: None,
            kind: ToolKind::Function,
            arguments: arguments_text(function.arguments),
        }));
    }
    Ok(Response {
        id: completion.id,
        output,
        stop: settled_stop(called, refused, choice.finish_reason.as_deref()),
        stop_sequence: match choice.stop_reason {
            Some(serde_json::Value::String(matched)) => Some(matched),
            _ => None,
        },
        usage: completion.usage.unwrap_or_default().to_hub(),
    })
}

/// Chat Completions chunks, decoded one event at a time. Hosts differ in how they stream a tool call: the
/// name can arrive in pieces, the id and name can be repeated on every chunk, and an index can be reused
/// for a new call (with a new id). So a call starts (hub [`Event::ToolCallStart`]) once its name is whole:
/// when its arguments begin or anything else arrives; repeated ids and names are ignored; a call whose name
/// never comes is dropped. The stop reason follows what the answer held, as for whole answers.
#[derive(Default)]
pub struct ChatChunks {
    calls: Vec<StreamedCall>,
    /// The hub index the next new call gets.
    next_index: usize,
    called: bool,
    refused: bool,
    /// The upstream's id was passed on (every chunk repeats it).
    seen_id: bool,
    /// How the last chunk's start read, for the next (see [`chunk_by_hand`]).
    start: Option<ChunkStart>,
}

struct StreamedCall {
    upstream_index: usize,
    id: Option<String>,
    hub_index: usize,
    name: String,
    /// Arguments that came before the name was known to be whole.
    pending: String,
    started: bool,
}

impl ChatChunks {
    /// The call an upstream fragment belongs to: a new id on a started index is a new call.
    fn call_for(&mut self, upstream_index: usize, id: Option<&str>) -> usize {
        let found = self.calls.iter().rposition(|c| c.upstream_index == upstream_index);
        if let Some(i) = found {
            let call = &self.calls[i];
            let new_id = id.is_some_and(|id| call.id.as_deref().is_some_and(|known| known != id));
            if !new_id {
                return i;
            }
        }
        self.calls.push(StreamedCall {
            upstream_index,
            id: None,
            hub_index: self.next_index,
            name: String::new(),
            pending: String::new(),
            started: false,
        });
        self.next_index += 1;
        self.calls.len() - 1
    }

    /// Starts every named call that has not started yet, except `keep_open` (whose name may still grow).
    fn start_named(&mut self, keep_open: Option<usize>, out: &mut Vec<Event>) {
        for (i, call) in self.calls.iter_mut().enumerate() {
            if call.started || call.name.is_empty() || Some(i) == keep_open {
                continue;
            }
            Self::start(call, out);
            self.called = true;
        }
    }

    fn start(call: &mut StreamedCall, out: &mut Vec<Event>) {
        call.started = true;
        out.push(Event::ToolCallStart {
            index: call.hub_index,
            id: call.id.clone(),
            name: std::mem::take(&mut call.name),
        });
        if !call.pending.is_empty() {
            out.push(Event::ToolCallDelta {
                index: call.hub_index,
                arguments: std::mem::take(&mut call.pending),
            });
        }
    }
}

/// One `chat.completion.chunk`. Borrowed where only compared or used once: every chunk repeats them.
#[derive(Deserialize, Default, Debug)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// A chunk of the shape nearly every chunk of a stream has, read by the hand-written JSON reader: its
/// choices' deltas carry text, reasoning or nothing, with no tool calls and no error, in any key order and
/// with any other keys (which every host adds: `created`, `model`, `logprobs`...). serde's walk over the
/// nested structs of optional fields cost several times the whole rest of a converted event. Anything else
/// (`None`) goes to serde, which reads it the same way.
///
/// Every chunk of a stream starts with the same bytes up to its `choices` (its id, object, creation time
/// and model), and the same bytes read the same: `start` keeps how the last chunk's start read, and a chunk
/// that begins with it is read from its `choices` on. Likewise the choices of a text delta differ from the
/// last text delta's only in the text: when they are laid out byte for byte as those were around it, only
/// the text is read.
fn chunk_by_hand<'a>(data: &'a str, start: &mut Option<ChunkStart>) -> Option<Chunk<'a>> {
    if let Some(known) = start.as_mut().filter(|known| data.starts_with(&known.text)) {
        return chunk_after_start(data, known);
    }
    let mut r = Reader::new(data);
    let mut chunk = Chunk::default();
    let mut seen = Seen::default();
    let mut layout = Layout::default();
    let mut choices_at = None;
    r.object(|r, key| {
        if key == "choices" && choices_at.is_none() {
            choices_at = Some((r.position(), seen));
        }
        chunk_member(r, key, &mut chunk, &mut seen, &mut layout)
    })?;
    r.end()?;
    *start = choices_at.and_then(|(at, seen)| ChunkStart::of(data, at, &chunk, seen, &layout));
    Some(chunk)
}

/// A chunk that begins with `known.text`, read from its `choices` on.
fn chunk_after_start<'a>(data: &'a str, known: &mut ChunkStart) -> Option<Chunk<'a>> {
    let borrowed = |span: &Option<Range<usize>>| match span {
        Some(span) => data.get(span.clone()).map(|text| Some(Cow::Borrowed(text))),
        None => Some(None),
    };
    let mut chunk = Chunk {
        id: borrowed(&known.id)?,
        object: borrowed(&known.object)?,
        ..Chunk::default()
    };
    let mut seen = known.seen;
    let at = known.text.len();
    let mut layout = None;
    let mut r = match known
        .text_choice
        .as_ref()
        .and_then(|around| text_choice(data, at, around))
    {
        Some((text, end)) => {
            seen.first(2)?;
            chunk.choices.push(Choice {
                message: Some(ChatMessage {
                    content: Some(ChatContent::Text(text)),
                    ..ChatMessage::default()
                }),
                ..Choice::default()
            });
            Reader::inside_object(data, end)
        }
        None => {
            let mut r = Reader::inside_object(data, at);
            chunk_member(
                &mut r,
                "choices",
                &mut chunk,
                &mut seen,
                layout.insert(Layout::default()),
            )?;
            r
        }
    };
    r.rest_of_object(|r, key| chunk_member(r, key, &mut chunk, &mut seen, &mut Layout::default()))?;
    r.end()?;
    if let Some(layout) = layout {
        known.text_choice = text_choice_around(data, &chunk, &layout).or(known.text_choice.take());
    }
    Some(chunk)
}

/// The text of a text delta's `choices` at byte `at` of `data`, laid out as `around` says, and where the
/// choices end.
fn text_choice(data: &str, at: usize, (before, after): &(String, String)) -> Option<(String, usize)> {
    if !data.get(at..)?.starts_with(before.as_str()) {
        return None;
    }
    let mut r = Reader::inside_object(data, at + before.len());
    let text = r.string()?;
    let end = r.position();
    data[end..]
        .starts_with(after.as_str())
        .then(|| (text, end + after.len()))
}

/// The bytes of a chunk's `choices` around its text (see [`chunk_by_hand`]), when they are one choice whose
/// delta holds nothing but text.
fn text_choice_around(data: &str, chunk: &Chunk<'_>, layout: &Layout) -> Option<(String, String)> {
    let [
        Choice {
            message: Some(delta),
            finish_reason: None,
            stop_reason: None,
        },
    ] = &chunk.choices[..]
    else {
        return None;
    };
    let only_text = matches!(delta.content, Some(ChatContent::Text(_)))
        && delta.refusal.is_none()
        && delta.reasoning_content.is_none()
        && delta.reasoning.is_none()
        && delta.tool_calls.is_empty();
    let (choices, text) = (layout.choices.clone()?, layout.text.clone()?);
    (only_text && choices.start <= text.start && text.end <= choices.end).then(|| {
        (
            data[choices.start..text.start].to_owned(),
            data[text.end..choices.end].to_owned(),
        )
    })
}

/// Where a chunk's `choices` value lies in its text, and the text of the last delta read in it.
#[derive(Default)]
struct Layout {
    choices: Option<Range<usize>>,
    text: Option<Range<usize>>,
}

/// How a chunk's text before its `choices` value read (see [`chunk_by_hand`]): its id and object where
/// they lie in the text, the fields it set, and how the last text delta's choices were laid out.
#[derive(Clone)]
struct ChunkStart {
    text: String,
    id: Option<Range<usize>>,
    object: Option<Range<usize>>,
    seen: Seen,
    text_choice: Option<(String, String)>,
}

impl ChunkStart {
    /// The start of `data` up to byte `at`, where its `choices` value begins; `None` when that start set
    /// more than the id and object, or holds them with escapes (not slices of the text).
    fn of(data: &str, at: usize, chunk: &Chunk<'_>, seen: Seen, layout: &Layout) -> Option<Self> {
        if !seen.only(&[0, 1]) {
            return None;
        }
        let span = |field: &Option<Cow<'_, str>>| match field {
            None => Some(None),
            Some(Cow::Borrowed(text)) => {
                // A slice of `data`: where it lies in it.
                let offset = text.as_ptr() as usize - data.as_ptr() as usize;
                Some(Some(offset..offset + text.len()))
            }
            Some(Cow::Owned(_)) => None,
        };
        Some(Self {
            text: data[..at].to_owned(),
            id: span(&chunk.id)?,
            object: span(&chunk.object)?,
            seen,
            text_choice: text_choice_around(data, chunk, layout),
        })
    }
}

/// One member of a chunk, as [`chunk_by_hand`] reads it.
fn chunk_member<'a>(
    r: &mut Reader<'a>,
    key: &str,
    chunk: &mut Chunk<'a>,
    seen: &mut Seen,
    layout: &mut Layout,
) -> Option<()> {
    match key {
        "id" => {
            seen.first(0)?;
            chunk.id = r.nullable(Reader::str)?;
        }
        "object" => {
            seen.first(1)?;
            chunk.object = r.nullable(Reader::str)?;
        }
        "choices" => {
            seen.first(2)?;
            let start = r.position();
            r.array(|r| {
                chunk.choices.push(choice_by_hand(r, &mut layout.text)?);
                Some(())
            })?;
            layout.choices = Some(start..r.position());
        }
        "usage" => {
            seen.first(3)?;
            chunk.usage = r.nullable(usage_by_hand)?;
        }
        // An error goes to serde.
        "error" => {
            seen.first(4)?;
            r.null().then_some(())?;
        }
        _ => r.skip()?,
    }
    Some(())
}

/// A whole `chat.completion` of the usual shape, as [`chunk_by_hand`] reads a chunk: its message has
/// text, reasoning or a refusal, no tool calls. Anything else goes to serde.
fn completion_by_hand(text: &str) -> Option<Completion> {
    let mut r = Reader::new(text);
    let mut completion = Completion::default();
    let mut seen = Seen::default();
    r.object(|r, key| match key {
        "id" => {
            seen.first(0)?;
            completion.id = r.nullable(Reader::string)?;
            Some(())
        }
        "choices" => {
            seen.first(1)?;
            r.array(|r| {
                completion.choices.push(choice_by_hand(r, &mut None)?);
                Some(())
            })
        }
        "usage" => {
            seen.first(2)?;
            completion.usage = r.nullable(usage_by_hand)?;
            Some(())
        }
        _ => r.skip(),
    })?;
    r.end()?;
    Some(completion)
}

/// A usage object, with the details objects OpenAI adds (their other counts skipped).
fn usage_by_hand(r: &mut Reader<'_>) -> Option<ChatUsage> {
    let mut usage = ChatUsage::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        match key {
            "prompt_tokens" => {
                seen.first(0)?;
                usage.prompt_tokens = r.u64()?;
            }
            "completion_tokens" => {
                seen.first(1)?;
                usage.completion_tokens = r.u64()?;
            }
            "prompt_tokens_details" => {
                seen.first(2)?;
                usage.prompt_tokens_details = r.nullable(|r| {
                    let mut details = PromptDetails::default();
                    r.counts(&mut [
                        ("cached_tokens", &mut details.cached_tokens),
                        ("cache_write_tokens", &mut details.cache_write_tokens),
                    ])?;
                    Some(details)
                })?;
            }
            "completion_tokens_details" => {
                seen.first(3)?;
                usage.completion_tokens_details = r.nullable(|r| {
                    let mut details = CompletionDetails::default();
                    r.counts(&mut [("reasoning_tokens", &mut details.reasoning_tokens)])?;
                    Some(details)
                })?;
            }
            "prompt_cache_hit_tokens" => {
                seen.first(4)?;
                usage.prompt_cache_hit_tokens = r.nullable(Reader::u64)?;
            }
            _ => return r.skip(),
        }
        Some(())
    })?;
    Some(usage)
}

/// A choice; `text_at` is set to where its delta's text lies, if it has one.
fn choice_by_hand(r: &mut Reader<'_>, text_at: &mut Option<Range<usize>>) -> Option<Choice> {
    let mut choice = Choice::default();
    let mut seen = Seen::default();
    r.object(|r, key| match key {
        // One field under two names, as serde's alias.
        "delta" | "message" => {
            seen.first(0)?;
            choice.message = r.nullable(|r| delta_by_hand(r, text_at))?;
            Some(())
        }
        "finish_reason" => {
            seen.first(1)?;
            choice.finish_reason = r.nullable(Reader::string)?;
            Some(())
        }
        "stop_reason" => {
            seen.first(2)?;
            r.null().then_some(())
        }
        _ => r.skip(),
    })?;
    Some(choice)
}

fn delta_by_hand(r: &mut Reader<'_>, text_at: &mut Option<Range<usize>>) -> Option<ChatMessage> {
    let mut delta = ChatMessage::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        let (field, index) = match key {
            "content" => {
                seen.first(0)?;
                let start = r.peek().map(|_| r.position());
                delta.content = r.nullable(|r| r.string().map(ChatContent::Text))?;
                *text_at = start.map(|start| start..r.position());
                return Some(());
            }
            "refusal" => (&mut delta.refusal, 1),
            "reasoning_content" => (&mut delta.reasoning_content, 2),
            "reasoning" => (&mut delta.reasoning, 3),
            "tool_calls" => return None,
            _ => return r.skip(),
        };
        seen.first(index)?;
        *field = r.nullable(Reader::string)?;
        Some(())
    })?;
    Some(delta)
}

impl crate::protocol::hub::StreamDecoder for ChatChunks {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        if event.is_done_marker() {
            self.start_named(None, out);
            out.push(Event::Done);
            return;
        }
        let chunk = match chunk_by_hand(&event.data, &mut self.start) {
            Some(chunk) => chunk,
            None => match serde_json::from_str(&event.data) {
                Ok(chunk) => chunk,
                Err(e) => {
                    out.push(crate::protocol::hub::unreadable_event(&e));
                    return;
                }
            },
        };
        // `{"error":…}` (OpenAI) or `{"object":"error",…}` (vLLM), read by the §4.2 rules.
        if (chunk.error.as_ref().is_some_and(|e| !e.is_null()) || chunk.object.as_deref() == Some("error"))
            && let Some(info) = crate::protocol::convert::error::openai_event_error(event)
        {
            let (code, message) = info.to_hub();
            out.push(Event::Error {
                message,
                code: Some(code),
            });
            return;
        }
        if !self.seen_id
            && let Some(id) = chunk.id.filter(|id| !id.is_empty())
        {
            self.seen_id = true;
            out.push(Event::MessageId(id.into_owned()));
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.message {
                let mut touched = None;
                for (position, call) in delta.tool_calls.into_iter().enumerate() {
                    let upstream_index = call.index.unwrap_or(position);
                    let id = call.id.filter(|id| !id.is_empty());
                    let i = self.call_for(upstream_index, id.as_deref());
                    // Another call's fragment: the calls before it are whole.
                    self.start_named(Some(i), out);
                    let function = call.function.unwrap_or(FunctionCall {
                        name: None,
                        arguments: None,
                    });
                    let streamed = &mut self.calls[i];
                    if !streamed.started {
                        if streamed.id.is_none() {
                            streamed.id = id;
                        }
                        if let Some(name) = function.name.filter(|n| !n.is_empty())
                            && !streamed.name.ends_with(name.as_str())
                        {
                            streamed.name.push_str(&name);
                        }
                    }
                    let arguments = arguments_text(function.arguments);
                    if arguments.is_empty() {
                        touched = Some(i);
                        continue;
                    }
                    if streamed.started {
                        out.push(Event::ToolCallDelta {
                            index: streamed.hub_index,
                            arguments,
                        });
                    } else if streamed.name.is_empty() {
                        streamed.pending.push_str(&arguments);
                    } else {
                        // Arguments begin: the name is whole.
                        streamed.pending.push_str(&arguments);
                        Self::start(streamed, out);
                        self.called = true;
                    }
                    touched = Some(i);
                }
                let reasoning = delta.reasoning_content.or(delta.reasoning).filter(|t| !t.is_empty());
                let text = delta.content.map(ChatContent::into_text).filter(|t| !t.is_empty());
                let refusal = delta.refusal.filter(|t| !t.is_empty());
                // Anything but a tool fragment means every named call is whole.
                if touched.is_none() || reasoning.is_some() || text.is_some() || refusal.is_some() {
                    self.start_named(None, out);
                }
                if let Some(text) = reasoning {
                    out.push(Event::ReasoningDelta(text));
                }
                if let Some(text) = text {
                    out.push(Event::TextDelta(text));
                }
                if let Some(text) = refusal {
                    self.refused |= !text.trim().is_empty();
                    out.push(Event::RefusalDelta(text));
                }
            }
            if let Some(serde_json::Value::String(matched)) = choice.stop_reason {
                out.push(Event::StopSequence(matched));
            }
            if let Some(reason) = choice.finish_reason {
                self.start_named(None, out);
                out.push(Event::Stop(settled_stop(self.called, self.refused, Some(&reason))));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(Event::Usage(usage.to_hub()));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding for a Chat client (a Chat client on another protocol's upstream)

/// What a Chat answer needs besides the hub response.
pub struct ChatAnswer<'a> {
    /// 24 hex digits; the answer's id is `chatcmpl-<hex>`.
    pub id_hex: &'a str,
    pub created: u64,
    /// The model the client asked for.
    pub model: &'a str,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

pub(crate) fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::End => "stop",
        StopReason::ToolUse => "tool_calls",
        StopReason::MaxTokens => "length",
        StopReason::ContentFilter => "content_filter",
    }
}

/// Usage as Chat reports it: cache writes and reasoning tokens only when there are some; whole answers and
/// stream chunks alike.
#[derive(Serialize)]
pub(crate) struct ChatUsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetailsOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetailsOut>,
}

#[derive(Serialize)]
struct PromptDetailsOut {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
}

#[derive(Serialize)]
struct CompletionDetailsOut {
    reasoning_tokens: u64,
}

impl ChatUsageOut {
    pub(crate) fn new(usage: &Usage) -> Self {
        Self {
            prompt_tokens: usage.input,
            completion_tokens: usage.output,
            total_tokens: usage.input + usage.output,
            prompt_tokens_details: PromptDetailsOut {
                cached_tokens: usage.cached,
                cache_write_tokens: (usage.cache_write > 0).then_some(usage.cache_write),
            },
            completion_tokens_details: (usage.reasoning > 0).then_some(CompletionDetailsOut {
                reasoning_tokens: usage.reasoning,
            }),
        }
    }
}

/// The answer's id: `chatcmpl-` + the upstream's id, else the one minted for it.
pub(crate) fn completion_id(upstream: Option<&str>, id_hex: &str) -> String {
    const PREFIX: &str = "chatcmpl-";
    let id = match upstream.filter(|id| !id.is_empty()) {
        Some(id) => id,
        None if id_hex.starts_with(PREFIX) => return id_hex.to_owned(),
        None => id_hex,
    };
    let mut out = String::with_capacity(PREFIX.len() + id.len());
    out.push_str(PREFIX);
    out.push_str(id);
    out
}

/// Joins the pieces of one message field. [`Joiner::text`]: nothing between adjacent text pieces, a blank
/// line where another block (reasoning, a call) came between them. [`Joiner::reasoning`]: a newline between
/// any two. The stream encoder follows the same rules, so streamed and whole answers agree.
#[derive(Debug, Clone)]
pub(crate) struct Joiner {
    any: bool,
    separated: bool,
    between: &'static str,
    always_separated: bool,
}

impl Joiner {
    pub(crate) fn text() -> Self {
        Self {
            any: false,
            separated: false,
            between: "\n\n",
            always_separated: false,
        }
    }

    pub(crate) fn reasoning() -> Self {
        Self {
            between: "\n",
            always_separated: true,
            ..Self::text()
        }
    }

    /// What goes before a new, non-empty piece; records that it was added.
    pub(crate) fn separator(&mut self) -> &'static str {
        let sep = match self.any && (self.always_separated || self.separated) {
            true => self.between,
            false => "",
        };
        self.any = true;
        self.separated = false;
        sep
    }

    /// A block of another kind passed by.
    pub(crate) fn mark_other_block(&mut self) {
        if self.any {
            self.separated = true;
        }
    }

    fn push(&mut self, out: &mut String, piece: &str) {
        if !piece.is_empty() {
            out.push_str(self.separator());
            out.push_str(piece);
        }
    }
}

/// The signature inside an Anthropic thinking block.
pub(crate) fn anthropic_signature(opaque: Option<&crate::protocol::hub::Opaque>) -> Option<String> {
    #[derive(Deserialize)]
    struct Signed {
        #[serde(default)]
        signature: Option<String>,
    }
    let crate::protocol::hub::Opaque::Anthropic { block } = opaque? else {
        return None;
    };
    serde_json::from_str::<Signed>(block.get()).ok()?.signature
}

/// Encodes a whole answer as a `chat.completion`, written straight into the body.
pub fn encode(response: &Response, answer: &ChatAnswer<'_>) -> Vec<u8> {
    let (mut text, mut refusal, mut reasoning) = (String::new(), String::new(), String::new());
    let (mut texts, mut reasonings) = (Joiner::text(), Joiner::reasoning());
    let mut signature = None;
    let mut calls = Vec::new();
    for part in &response.output {
        match part {
            Part::Text(t) => texts.push(&mut text, t),
            Part::Refusal(t) => refusal.push_str(t),
            Part::Reasoning(r) => {
                reasonings.push(&mut reasoning, &r.text);
                signature = anthropic_signature(r.opaque.as_ref()).or(signature);
                texts.mark_other_block();
            }
            Part::ToolCall(call) => {
                texts.mark_other_block();
                calls.push(call);
            }
            _ => texts.mark_other_block(),
        }
    }
    let arguments_len: usize = calls.iter().map(|c| c.arguments.len() + TOOL_CALL_BYTES).sum();
    let mut out = Vec::with_capacity(COMPLETION_BYTES + text.len() + refusal.len() + reasoning.len() + arguments_len);
    out.extend_from_slice(br#"{"id":"#);
    push_str(&mut out, &completion_id(response.id.as_deref(), answer.id_hex));
    out.extend_from_slice(br#","object":"chat.completion","created":"#);
    push_u64(&mut out, answer.created);
    out.extend_from_slice(br#","model":"#);
    push_str(&mut out, answer.model);
    out.extend_from_slice(br#","choices":[{"index":0,"message":{"role":"assistant","content":"#);
    push_opt_str(
        &mut out,
        Some(text.as_str()).filter(|t| !t.is_empty() || calls.is_empty()),
    );
    out.extend_from_slice(br#","refusal":"#);
    push_opt_str(&mut out, Some(refusal.as_str()).filter(|t| !t.is_empty()));
    if !reasoning.is_empty() {
        out.extend_from_slice(br#","reasoning_content":"#);
        push_str(&mut out, &reasoning);
    }
    // The signature of Anthropic thinking, so the client can replay it to an Anthropic upstream.
    if let Some(signature) = &signature {
        out.extend_from_slice(br#","reasoning_signature":"#);
        push_str(&mut out, signature);
    }
    for (i, call) in calls.iter().enumerate() {
        out.extend_from_slice(match i {
            0 => br#","tool_calls":[{"id":"#,
            _ => br#",{"id":"#,
        });
        push_str(&mut out, &call.id);
        out.extend_from_slice(br#","type":"function","function":{"name":"#);
        push_str(&mut out, &call.name);
        out.extend_from_slice(br#","arguments":"#);
        push_str(
            &mut out,
            match call.arguments.is_empty() {
                true => "{}",
                false => &call.arguments,
            },
        );
        out.extend_from_slice(b"}}");
    }
    if !calls.is_empty() {
        out.push(b']');
    }
    out.extend_from_slice(br#"},"logprobs":null,"finish_reason":""#);
    out.extend_from_slice(finish_reason(response.stop).as_bytes());
    out.extend_from_slice(br#""}],"usage":"#);
    crate::protocol::json::to_writer(&mut out, &ChatUsageOut::new(&response.usage)).expect("usage serialises");
    out.push(b'}');
    out
}

/// About the size of a completion without its message's text, and what a tool call adds to its arguments.
const COMPLETION_BYTES: usize = 384;
const TOOL_CALL_BYTES: usize = 96;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_read_chunk_agrees_with_serde() {
        let typical = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" caf\u00e9 \"q\"\n"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#"{"id":"d","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"think"},"finish_reason":null}],"created":2,"model":"deepseek-reasoner"}"#,
            r#"{"choices":[{"delta":{"reasoning":"hm","content":"ok"},"stop_reason":null,"index":0}],"id":"x","object":"chat.completion.chunk"}"#,
            r#" { "id" : "s" , "choices" : [ { "message" : { "content" : "whole" } } ] , "error" : null } "#,
            r#"{"id":"e","choices":[]}"#,
            r#"{"id":"u","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        ];
        let edge = [
            r#"{"id":"t","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"id":"e","error":{"message":"boom"}}"#,
            r#"{"id":"p","choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}"#,
            r#"{"id":"a","choices":[{"delta":{"content":"x"},"message":{"content":"y"}}]}"#,
            r#"{"id":"a","id":"b","choices":null}"#,
            r#"{"id":1,"choices":[{"delta":null,"finish_reason":7,"stop_reason":"</s>"}],"extra":{"deep":[1,2]}}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = chunk_by_hand(text, &mut None)?;
            let slow = serde_json::from_str::<Chunk>(text).map_err(|_| ());
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    #[test]
    fn a_chunk_with_the_last_one_s_start_reads_as_serde_reads_it() {
        let first = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
        let mut start = None;
        chunk_by_hand(first, &mut start).unwrap();
        let known = start.clone().expect("the start is kept");
        assert!(known.text.ends_with(r#""choices":"#));
        let typical = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel\"lo"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"delta":{},"finish_reason":"stop"}] , "x":[1,{"y":null}]}"#,
        ];
        for chunk in typical {
            assert!(chunk_after_start(chunk, &mut known.clone()).is_some(), "{chunk}");
        }
        let edge = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"id":"again"}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"choices":[]}"#,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":null}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = chunk_by_hand(text, &mut Some(known.clone()))?;
            let slow = serde_json::from_str::<Chunk>(text).map_err(|_| ());
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
        // A start with an escaped id is not kept: its id is no slice of the text.
        let mut start = None;
        chunk_by_hand(r#"{"id":"a\u0062","choices":[]}"#, &mut start).unwrap();
        assert!(start.is_none());
    }

    #[test]
    fn a_text_delta_laid_out_as_the_last_one_reads_as_serde_reads_it() {
        let role = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        let text = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        let mut start = None;
        chunk_by_hand(role, &mut start).unwrap();
        // The role chunk's layout is kept, then replaced by the first text's, which does not match it.
        assert!(start.as_ref().unwrap().text_choice.as_ref().unwrap().0.contains("role"));
        chunk_by_hand(text, &mut start).unwrap();
        let known = start.clone().unwrap();
        let (before, after) = known.text_choice.clone().expect("a text delta's layout is kept");
        assert_eq!(
            (before.as_str(), after.as_str()),
            (r#"[{"index":0,"delta":{"content":"#, r#"},"finish_reason":null}]"#)
        );
        let typical = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo \"w\"\n"},"finish_reason":null}]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ];
        let edge = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}],"choices":[]}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":1},"finish_reason":null}]}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = chunk_by_hand(text, &mut Some(known.clone()))?;
            let slow = serde_json::from_str::<Chunk>(text).map_err(|_| ());
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
        // The finish chunk does not match the layout, and leaves it as it was.
        let mut start = Some(known.clone());
        chunk_by_hand(typical[2], &mut start).unwrap();
        assert_eq!(start.unwrap().text_choice, known.text_choice);
    }

    #[test]
    fn the_hand_read_answer_agrees_with_serde() {
        let typical = [
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\"\n","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0}},"service_tier":"default"}"#,
            r#"{"id":"d","choices":[{"index":0,"message":{"role":"assistant","content":"ok","reasoning_content":"think"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_cache_hit_tokens":2,"prompt_cache_miss_tokens":1}}"#,
            r#"{"choices":[{"message":{"content":null,"refusal":"No."},"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null},"completion_tokens":0,"prompt_tokens":0}}"#,
            r#"{"id":null,"choices":[],"usage":null}"#,
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":null,"cache_write_tokens":7}}}"#,
        ];
        let edge = [
            r#"{"id":"t","choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"id":"n","usage":{"prompt_tokens":null}}"#,
            r#"{"id":"f","usage":{"prompt_tokens":1.0}}"#,
            r#"{"id":"f","usage":{"prompt_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"}]}}]}"#,
            r#"{"choices":[{"message":{"content":"x"},"stop_reason":"</s>"}]}"#,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = completion_by_hand(text)?;
            let slow = serde_json::from_str::<Completion>(text).map_err(|_| ());
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
    }

    #[test]
    fn a_whole_answer_with_reasoning_text_and_calls() {
        let response = decode(br#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
            "content":"Running it","reasoning_content":"Think","tool_calls":[{"id":"call_a","type":"function","function":{"name":"exec_command","arguments":"{\"cmd\":\"ls\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":900,"completion_tokens":40,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":12}}}"#).unwrap();
        assert_eq!(response.stop, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input: 900,
                cached: 800,
                cache_write: 0,
                output: 40,
                reasoning: 12
            }
        );
        assert!(matches!(&response.output[0], Part::Reasoning(r) if r.text == "Think"));
        assert!(matches!(&response.output[1], Part::Text(t) if t == "Running it"));
        assert!(
            matches!(&response.output[2], Part::ToolCall(c) if c.id == "call_a" && c.arguments == r#"{"cmd":"ls"}"#)
        );
        assert!(decode(br#"{"choices":[]}"#).is_err());
    }

    #[test]
    fn a_whole_answer_is_written_in_the_wire_key_order_and_escaped_as_serde_json_escapes() {
        let block = serde_json::value::to_raw_value(&serde_json::json!({"type": "thinking", "signature": "s\"1"}));
        let call = crate::protocol::convert::test_support::tool_call;
        let response = Response {
            id: Some("up-1é".into()),
            output: vec![
                Part::Reasoning(Reasoning {
                    text: "Think\n\"hard\"".into(),
                    opaque: Some(crate::protocol::hub::Opaque::Anthropic { block: block.unwrap() }),
                }),
                Part::Text("Hi\t\u{1}\\ é🦀".into()),
                call("call_a", "exec", r#"{"cmd": "ls"}"#),
                call("", "f", ""),
                Part::Refusal("no".into()),
            ],
            stop: StopReason::ToolUse,
            stop_sequence: None,
            usage: Usage {
                input: 900,
                cached: 800,
                cache_write: 5,
                output: 40,
                reasoning: 12,
            },
        };
        let answer = ChatAnswer {
            id_hex: "0123",
            created: 7,
            model: "m\"x",
            include_usage: false,
        };
        assert_eq!(
            String::from_utf8(encode(&response, &answer)).unwrap(),
            r#"{"id":"chatcmpl-up-1é","object":"chat.completion","created":7,"model":"m\"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi\t\u0001\\ é🦀","refusal":"no","reasoning_content":"Think\n\"hard\"","reasoning_signature":"s\"1","tool_calls":[{"id":"call_a","type":"function","function":{"name":"exec","arguments":"{\"cmd\": \"ls\"}"}},{"id":"","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":900,"completion_tokens":40,"total_tokens":940,"prompt_tokens_details":{"cached_tokens":800,"cache_write_tokens":5},"completion_tokens_details":{"reasoning_tokens":12}}}"#
        );
        let empty = Response::default();
        assert_eq!(
            String::from_utf8(encode(&empty, &answer)).unwrap(),
            r#"{"id":"chatcmpl-0123","object":"chat.completion","created":7,"model":"m\"x","choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}"#
        );
    }

    fn decoded(chunks: &[&str]) -> Vec<Event> {
        use crate::protocol::hub::StreamDecoder;
        let mut decoder = ChatChunks::default();
        let mut out = Vec::new();
        for data in chunks {
            let event = SseEvent {
                event: None,
                data: (*data).into(),
            };
            decoder.decode(&event, &mut out);
        }
        out
    }

    fn start(index: usize, id: &str, name: &str) -> Event {
        Event::ToolCallStart {
            index,
            id: Some(id.into()),
            name: name.into(),
        }
    }

    fn args(index: usize, arguments: &str) -> Event {
        Event::ToolCallDelta {
            index,
            arguments: arguments.into(),
        }
    }

    #[test]
    fn stream_chunks_become_events() {
        let out = decoded(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_cache_hit_tokens":1}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            out,
            [
                start(0, "call_a", "f"),
                args(0, "{}"),
                Event::Stop(StopReason::ToolUse),
                Event::Usage(Usage {
                    input: 3,
                    cached: 1,
                    cache_write: 0,
                    output: 2,
                    reasoning: 0
                }),
                Event::Done,
            ]
        );
    }

    #[test]
    fn host_quirks_in_streamed_tool_calls() {
        // The name in pieces, then the id and name repeated on every chunk.
        let out = decoded(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_x","function":{"name":"get_"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"weather"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_x","function":{"name":"get_weather","arguments":"{\"c"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_x","function":{"name":"get_weather","arguments":"\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(
            out,
            [
                start(0, "call_x", "get_weather"),
                args(0, "{\"c"),
                args(0, "\":1}"),
                Event::Stop(StopReason::ToolUse),
            ],
            "one call, named whole; `stop` with a call is a tool-use stop"
        );
        // Index 0 reused with a new id is a second call; a call that never gets a name is dropped.
        let out = decoded(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert_eq!(
            out,
            [
                start(0, "a", "f"),
                args(0, "{}"),
                start(1, "b", "g"),
                args(1, "{}"),
                Event::Stop(StopReason::ToolUse)
            ]
        );
        // `tool_calls` without a call, and a refusal.
        let out = decoded(&[r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"tool_calls"}]}"#]);
        assert_eq!(out.last(), Some(&Event::Stop(StopReason::End)));
        let out = decoded(&[r#"{"choices":[{"index":0,"delta":{"refusal":"No."},"finish_reason":"stop"}]}"#]);
        assert_eq!(out.last(), Some(&Event::Stop(StopReason::ContentFilter)));
    }
}
