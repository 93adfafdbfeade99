//! Gemini `GenerateContentResponse`s and the hub: decoding a Gemini upstream's whole answer into a
//! [`Response`] and each chunk of its `alt=sse` stream into [`Event`]s ([`GeminiChunks`]), and encoding a
//! hub answer for a Gemini client (reference §4, §5.1–§5.3).
//!
//! Only `candidates[0]` is read (`candidateCount` is 1). Function calls have no required id: one is minted
//! from the answer's `responseId`, the call's position, name and arguments, so the same answer always gets
//! the same ids; a call's `thoughtSignature` rides in its id (see [`super::thought`]).
//!
//! `MALFORMED_FUNCTION_CALL` (and `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`) with nothing usable is a
//! failed attempt, not an empty success: [`decode`] returns an error with code [`RETRYABLE_FINISH`] and a
//! stream an [`Event::Error`] with code `server_error`. Agents given an empty 200 instead loop forever
//! (reference §4.4, §8 #12); Gemini's own CLI retries such turns.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::request::{InCode, InCodeResult, InFunctionCall};
use super::thought::{carry_signature, mint_call_id, open_reasoning, seal_reasoning};
use crate::protocol::convert::ConvertError;
use crate::protocol::hub::{
    Event, Opaque, Part, Reasoning, Response, StopReason, StreamDecoder, ToolCall, ToolKind, Usage,
};
use crate::protocol::json::{push_plain, push_str, push_u64};
use crate::protocol::sse::SseEvent;

/// The [`ConvertError::code`] of an answer Gemini ended with a malformed or unexpected function call and
/// nothing else: the attempt failed and is worth retrying (on this or another deployment).
pub const RETRYABLE_FINISH: &str = "malformed_function_call";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    #[serde(borrow, default)]
    candidates: Vec<Candidate<'a>>,
    #[serde(borrow, default)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(borrow, default)]
    response_id: Option<Cow<'a, str>>,
    /// An error sent as a stream chunk.
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Vec<AnswerPart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerPart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: bool,
    #[serde(borrow, default)]
    thought_signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function_call: Option<InFunctionCall<'a>>,
    #[serde(borrow, default)]
    executable_code: Option<InCode<'a>>,
    #[serde(borrow, default)]
    code_execution_result: Option<InCodeResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(borrow, default)]
    block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub(super) prompt_token_count: u64,
    #[serde(default)]
    pub(super) cached_content_token_count: u64,
    #[serde(default)]
    pub(super) candidates_token_count: u64,
    #[serde(default)]
    pub(super) thoughts_token_count: u64,
    #[serde(default)]
    pub(super) tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub(super) total_token_count: u64,
}

impl UsageMetadata {
    /// Gemini's `candidatesTokenCount` leaves thoughts out; the hub's output counts them (reference §4.5).
    /// Some responses count them in already (`prompt + candidates == total`), as LiteLLM also found.
    pub(super) fn to_hub(self) -> Usage {
        let input = self.prompt_token_count + self.tool_use_prompt_token_count;
        let included = self.thoughts_token_count > 0 && input + self.candidates_token_count == self.total_token_count;
        let output = match included {
            true => self.candidates_token_count,
            false => self.candidates_token_count + self.thoughts_token_count,
        };
        Usage {
            input,
            cached: self.cached_content_token_count.min(input),
            cache_write: 0,
            output,
            reasoning: self.thoughts_token_count.min(output),
        }
    }
}

/// How a finish reason ends an answer; `None` for the retryable function-call failures.
fn stop_reason(finish_reason: &str) -> Option<StopReason> {
    Some(match finish_reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "LANGUAGE"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => StopReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => return None,
        // STOP (also for calls), OTHER, unspecified, and reasons added later.
        _ => StopReason::End,
    })
}

/// What the answer holds decides: Gemini says `STOP` for an answer that calls tools.
fn settled_stop(called: bool, stop: StopReason) -> StopReason {
    match (called, stop) {
        (true, StopReason::End) => StopReason::ToolUse,
        (_, stop) => stop,
    }
}

fn malformed(finish_reason: &str, finish_message: Option<&str>) -> String {
    match finish_message.filter(|m| !m.is_empty()) {
        Some(detail) => format!("the upstream model ended with {finish_reason}: {detail}"),
        None => format!("the upstream model ended with {finish_reason}"),
    }
}

/// A call's client-facing id: Gemini's own when it gave one, else minted from the answer's id, the call's
/// position among the answer's calls, its name and arguments (the name and arguments keep calls of
/// different turns apart when an upstream sends no `responseId`), with the signature carried after it.
fn call_id(response_id: &str, ordinal: usize, call: &InFunctionCall<'_>, signature: Option<&str>) -> String {
    let name = call.name.as_deref().unwrap_or("");
    let base = match call.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => crate::protocol::convert::ids::sanitize_tool_id(id).into_owned(),
        None => mint_call_id(&format!(
            "{response_id}:{ordinal}:{name}:{}",
            call.args.map_or("{}", RawValue::get)
        )),
    };
    carry_signature(&base, signature)
}

/// A part's signature, if Gemini made it: the router's own envelope (another router's answer, or a test's
/// round trip) is not Gemini's and is never carried back to it.
fn gemini_signature(signature: Option<&str>) -> Option<&str> {
    signature.filter(|s| !s.is_empty() && open_reasoning(s).is_none())
}

fn args_text(args: Option<&RawValue>) -> String {
    match args {
        Some(args) if args.get() != "null" => args.get().to_owned(),
        _ => "{}".to_owned(),
    }
}

fn code_text(code: &InCode<'_>) -> String {
    let language = code.language.as_deref().unwrap_or("").to_ascii_lowercase();
    let language = if language == "language_unspecified" {
        ""
    } else {
        &language
    };
    format!("```{language}\n{}\n```", code.code.as_deref().unwrap_or(""))
}

/// Decodes a Gemini upstream's whole `GenerateContentResponse`. A blocked prompt (no candidates,
/// `promptFeedback.blockReason`) is a content-filter stop with no output; an answer with neither is
/// unusable; a malformed function call with nothing usable is an error with code [`RETRYABLE_FINISH`].
pub fn decode(body: &[u8]) -> Result<Response, ConvertError> {
    let answer: Answer = crate::protocol::json::parse(body)
        .map_err(|e| ConvertError::bad_upstream(format!("the upstream's answer is not a Gemini response: {e}")))?;
    let usage = answer.usage_metadata.unwrap_or_default().to_hub();
    let id = answer
        .response_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let Some(candidate) = answer.candidates.into_iter().next() else {
        if answer.prompt_feedback.and_then(|f| f.block_reason).is_some() {
            return Ok(Response {
                id,
                output: Vec::new(),
                stop: StopReason::ContentFilter,
                stop_sequence: None,
                usage,
            });
        }
        return Err(ConvertError::bad_upstream("the upstream's answer has no candidates"));
    };
    let response_id = id.as_deref().unwrap_or("");
    let mut output = Vec::new();
    let mut calls = 0;
    for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
        let signature = gemini_signature(part.thought_signature.as_deref());
        if let Some(call) = &part.function_call {
            if call.name.as_deref().is_none_or(str::is_empty) {
                continue;
            }
            output.push(Part::ToolCall(ToolCall {
                id: call_id(response_id, calls, call, signature),
                name: call.name.as_deref().unwrap_or("").to_owned(),
                namespace: None,
                kind: ToolKind::Function,
                arguments: args_text(call.args),
            }));
            calls += 1;
            continue;
        }
        let opaque = signature.map(|s| Opaque::Gemini {
            signature: s.to_owned(),
        });
        let text = match (&part.executable_code, &part.code_execution_result, part.text) {
            (Some(code), _, _) => code_text(code),
            (_, Some(result), _) => format!("```\n{}\n```", result.output.as_deref().unwrap_or("")),
            (_, _, Some(text)) => text.into_owned(),
            _ => String::new(),
        };
        if part.thought {
            if !text.is_empty() || opaque.is_some() {
                output.push(Part::Reasoning(Reasoning { text, opaque }));
            }
            continue;
        }
        // A signature on an answer part is kept as reasoning of its own just before it, which is where the
        // Gemini encoder puts it back.
        if let Some(opaque) = opaque {
            output.push(Part::Reasoning(Reasoning {
                text: String::new(),
                opaque: Some(opaque),
            }));
        }
        if !text.trim().is_empty() {
            output.push(Part::Text(text));
        }
    }
    let finish = candidate.finish_reason.as_deref().unwrap_or("STOP");
    let usable = output.iter().any(|p| matches!(p, Part::Text(_) | Part::ToolCall(_)));
    let stop = match stop_reason(finish) {
        Some(stop) => stop,
        None if usable => StopReason::End,
        None => {
            return Err(ConvertError {
                message: malformed(finish, candidate.finish_message.as_deref()),
                param: None,
                code: Some(RETRYABLE_FINISH),
            });
        }
    };
    Ok(Response {
        id,
        output,
        stop: settled_stop(calls > 0, stop),
        stop_sequence: None,
        usage,
    })
}

/// A Gemini upstream's `alt=sse` stream, decoded one chunk at a time. Each chunk is a partial
/// `GenerateContentResponse` with only the new parts: text deltas, thought parts, and function calls that
/// arrive whole (one [`Event::ToolCallStart`] and one [`Event::ToolCallDelta`] each). `usageMetadata` holds
/// running totals: each one is passed on, the last wins. The stream has no end marker: the finish reason
/// says it stopped and its EOF ends it, so a stream cut before a finish reason ends in an error.
#[derive(Default)]
pub struct GeminiChunks {
    /// The upstream's id, from the first chunk that has one (every chunk repeats it).
    response_id: Option<String>,
    calls: usize,
    /// Text or a call came: a malformed call after them is only a stop.
    usable: bool,
    stopped: bool,
}

impl StreamDecoder for GeminiChunks {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        let answer: Answer = match serde_json::from_str(&event.data) {
            Ok(answer) => answer,
            Err(e) => {
                out.push(crate::protocol::hub::unreadable_event(&e));
                return;
            }
        };
        if let Some(error) = answer.error.filter(|e| e.get() != "null") {
            let read = super::read_error(500, error_envelope(error).as_bytes());
            out.push(Event::Error {
                code: Some(read.hub_code().to_owned()),
                message: match read.message.is_empty() {
                    true => "upstream error".to_owned(),
                    false => read.message,
                },
            });
            return;
        }
        if self.response_id.is_none()
            && let Some(id) = answer.response_id.as_deref().filter(|id| !id.is_empty())
        {
            self.response_id = Some(id.to_owned());
            out.push(Event::MessageId(id.to_owned()));
        }
        let usage = answer.usage_metadata.map(UsageMetadata::to_hub);
        let Some(candidate) = answer.candidates.into_iter().next() else {
            out.extend(usage.map(Event::Usage));
            if !self.stopped && answer.prompt_feedback.and_then(|f| f.block_reason).is_some() {
                self.stopped = true;
                out.push(Event::Stop(StopReason::ContentFilter));
            }
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            self.part(part, out);
        }
        out.extend(usage.map(Event::Usage));
        let Some(finish) = candidate.finish_reason.filter(|f| !f.is_empty()) else {
            return;
        };
        if self.stopped {
            return;
        }
        self.stopped = true;
        let stop = match stop_reason(&finish) {
            Some(stop) => stop,
            None if self.usable => StopReason::End,
            None => {
                out.push(Event::Error {
                    message: malformed(&finish, candidate.finish_message.as_deref()),
                    code: Some("server_error".to_owned()),
                });
                return;
            }
        };
        out.push(Event::Stop(settled_stop(self.calls > 0, stop)));
    }
}

impl GeminiChunks {
    fn part(&mut self, part: AnswerPart<'_>, out: &mut Vec<Event>) {
        let signature = gemini_signature(part.thought_signature.as_deref());
        if let Some(call) = &part.function_call {
            let Some(name) = call.name.as_deref().filter(|n| !n.is_empty()) else {
                return;
            };
            let index = self.calls;
            self.calls += 1;
            self.usable = true;
            let id = call_id(self.response_id.as_deref().unwrap_or(""), index, call, signature);
            out.push(Event::ToolCallStart {
                index,
                id: Some(id),
                name: name.to_owned(),
            });
            out.push(Event::ToolCallDelta {
                index,
                arguments: args_text(call.args),
            });
            return;
        }
        let text = match (&part.executable_code, &part.code_execution_result, part.text) {
            (Some(code), _, _) => Cow::Owned(code_text(code)),
            (_, Some(result), _) => Cow::Owned(format!("```\n{}\n```", result.output.as_deref().unwrap_or(""))),
            (_, _, Some(text)) => text,
            _ => Cow::Borrowed(""),
        };
        let seal = signature.map(|s| {
            Event::ReasoningSeal(Opaque::Gemini {
                signature: s.to_owned(),
            })
        });
        if part.thought {
            if !text.is_empty() {
                out.push(Event::ReasoningDelta(text.into_owned()));
            }
            out.extend(seal);
            return;
        }
        // As in whole answers: an answer part's signature comes just before its text.
        out.extend(seal);
        if !text.is_empty() {
            self.usable |= !text.trim().is_empty();
            out.push(Event::TextDelta(text.into_owned()));
        }
    }
}

/// `{"error": <raw>}`, so that a stream chunk's error reads like an error body.
fn error_envelope(error: &RawValue) -> String {
    let mut out = String::with_capacity(error.get().len() + 10);
    out.push_str(r#"{"error":"#);
    out.push_str(error.get());
    out.push('}');
    out
}

// ---------------------------------------------------------------------------------------------------------
// Encoding for a Gemini client

/// What a Gemini answer needs besides the hub response.
pub struct GeminiAnswer<'a> {
    /// The answer's `responseId` when the upstream gave none.
    pub id_hex: &'a str,
    /// The model segment of the request path, echoed as `modelVersion`.
    pub model: &'a str,
    /// The request's `thinkingConfig.includeThoughts`: reasoning is shown as thought parts only then.
    pub include_thoughts: bool,
}

/// A stop reason as Gemini's `finishReason` (reference §4.4): Gemini says `STOP` for calls too.
pub(crate) fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::End | StopReason::ToolUse => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
    }
}

/// Appends `"usageMetadata":{…}` (reference §4.5): candidates leave thoughts out, the total adds them.
pub(crate) fn push_usage(out: &mut Vec<u8>, usage: &Usage) {
    let reasoning = usage.reasoning.min(usage.output);
    out.extend_from_slice(br#""usageMetadata":{"promptTokenCount":"#);
    push_u64(out, usage.input);
    out.extend_from_slice(br#","candidatesTokenCount":"#);
    push_u64(out, usage.output - reasoning);
    if reasoning > 0 {
        out.extend_from_slice(br#","thoughtsTokenCount":"#);
        push_u64(out, reasoning);
    }
    out.extend_from_slice(br#","totalTokenCount":"#);
    push_u64(out, usage.input + usage.output);
    if usage.cached > 0 {
        out.extend_from_slice(br#","cachedContentTokenCount":"#);
        push_u64(out, usage.cached);
    }
    out.push(b'}');
}

/// Appends a text part: `{"text":…}`, with `"thought":true` for reasoning, and a `thoughtSignature`.
pub(crate) fn push_text_part(out: &mut Vec<u8>, text: &str, thought: bool, signature: Option<&str>) {
    out.extend_from_slice(br#"{"text":"#);
    push_str(out, text);
    if thought {
        out.extend_from_slice(br#","thought":true"#);
    }
    push_signature(out, signature);
    out.push(b'}');
}

/// Appends `,"thoughtSignature":…` inside a part, when there is one.
fn push_signature(out: &mut Vec<u8>, signature: Option<&str>) {
    if let Some(signature) = signature {
        out.extend_from_slice(br#","thoughtSignature":"#);
        push_str(out, signature);
    }
}

/// A function call part: `args` is the arguments' object as written, or `{"_raw_arguments": text}` for
/// arguments that are not an object (reference §4.6).
pub(crate) fn push_call_part(out: &mut Vec<u8>, call: &ToolCall, signature: Option<&str>) {
    let ToolCall {
        id,
        name,
        kind,
        arguments,
        ..
    } = call;
    out.extend_from_slice(br#"{"functionCall":{"id":"#);
    push_str(out, id);
    out.extend_from_slice(br#","name":"#);
    push_str(out, name);
    out.extend_from_slice(br#","args":"#);
    match *kind {
        ToolKind::Custom => {
            out.extend_from_slice(br#"{"input":"#);
            push_str(out, arguments);
            out.push(b'}');
        }
        ToolKind::Function if arguments.trim().is_empty() => out.extend_from_slice(b"{}"),
        ToolKind::Function => match serde_json::from_str::<&RawValue>(arguments) {
            Ok(raw) if raw.get().starts_with('{') => out.extend_from_slice(raw.get().as_bytes()),
            _ => {
                let parsed = crate::protocol::convert::tool_calls::parse_tool_arguments(arguments);
                crate::protocol::json::to_writer(out, &parsed).expect("JSON serialises");
            }
        },
    }
    out.push(b'}');
    push_signature(out, signature);
    out.push(b'}');
}

/// Appends `"modelVersion":…,"responseId":…`.
pub(crate) fn push_ids(out: &mut Vec<u8>, model: &str, response_id: &str) {
    out.extend_from_slice(br#""modelVersion":"#);
    push_str(out, model);
    out.extend_from_slice(br#","responseId":"#);
    push_str(out, response_id);
}

/// Encodes a whole answer as a `GenerateContentResponse`, written straight into the body. `finishReason`
/// is always there: without one the Gemini CLI discards the turn and retries it (reference §4.4).
pub fn encode(response: &Response, answer: &GeminiAnswer<'_>) -> Vec<u8> {
    let size: usize = response
        .output
        .iter()
        .map(|p| match p {
            Part::Text(t) | Part::Refusal(t) => t.len() + 16,
            Part::Reasoning(r) => r.text.len() + 32,
            Part::ToolCall(c) => c.arguments.len() + c.id.len() + c.name.len() + 64,
            _ => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(256 + size);
    out.extend_from_slice(br#"{"candidates":[{"content":{"role":"model","parts":["#);
    let mut first = true;
    let mut comma = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    // The turn's reasoning, sealed for the client to send back (see `thought::seal_reasoning`), rides on
    // the first call, or on the last text part of an answer without one.
    let reasoning = response.output.iter().filter_map(|p| match p {
        Part::Reasoning(r) => Some(r),
        _ => None,
    });
    let mut envelope = seal_reasoning(reasoning);
    let carrier = envelope.as_ref().and_then(|_| {
        let is_text = |p: &Part| matches!(p, Part::Text(t) | Part::Refusal(t) if !t.is_empty());
        let output = &response.output;
        (output.iter().position(|p| matches!(p, Part::ToolCall(_)))).or_else(|| output.iter().rposition(is_text))
    });
    for (i, part) in response.output.iter().enumerate() {
        let signature = match carrier == Some(i) {
            true => envelope.take(),
            false => None,
        };
        match part {
            Part::Reasoning(r) if answer.include_thoughts && !r.text.is_empty() => {
                comma(&mut out);
                push_text_part(&mut out, &r.text, true, None);
            }
            Part::Text(t) | Part::Refusal(t) if !t.is_empty() => {
                comma(&mut out);
                push_text_part(&mut out, t, false, signature.as_deref());
            }
            Part::ToolCall(call) => {
                comma(&mut out);
                push_call_part(&mut out, call, signature.as_deref());
            }
            _ => {}
        }
    }
    out.extend_from_slice(br#"]},"finishReason":"#);
    push_plain(&mut out, finish_reason(response.stop));
    out.extend_from_slice(br#","index":0}],"#);
    push_usage(&mut out, &response.usage);
    out.push(b',');
    let id = response
        .id
        .as_deref()
        .filter(|id| !id.is_empty())
        .unwrap_or(answer.id_hex);
    push_ids(&mut out, answer.model, id);
    out.push(b'}');
    out
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
