//! Non-streaming responses (spec §2), and the pieces the stream converters share with them: stop-reason
//! mapping (§2.3), usage arithmetic (§2.4), response ids and per-response tool ids (§1.3.5). Tool-id
//! sanitising and router-minted thinking signatures (§1.3.6) come from [`super::ids`] and
//! [`super::signature`], shared with the request side.
//!
//! Route A: an Anthropic `Message` becomes an OpenAI `ChatCompletion` ([`anthropic_to_openai`]).
//! Route B: an OpenAI `ChatCompletion` becomes an Anthropic `Message` ([`openai_to_anthropic`]).
//!
//! An `Err` from either function means the upstream's 2xx body was unusable (not JSON, no choices, …); the
//! server answers it like an upstream failure, 502 (`api_error` / `server_error`), not like a client mistake.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::ids::{push_collision_suffix, sanitize_tool_id, synthetic_tool_id};
use super::signature::mint_thinking_signature;
use super::tool_calls::{JSON_OUTPUT_TOOL, arguments_json, parse_tool_arguments};
use super::{ConvertContext, ConvertError, RequestFacts};

// ---------------------------------------------------------------------------------------------------------
// Route A: ANT Message → OAI ChatCompletion (§2.1)
// ---------------------------------------------------------------------------------------------------------

/// Converts an Anthropic `Message` body into an OpenAI `ChatCompletion` body (Route A, §2.1).
pub fn anthropic_to_openai(body: &[u8], ctx: &ConvertContext, facts: &RequestFacts) -> Result<Vec<u8>, ConvertError> {
    let message: Value = parse_upstream(body, "Anthropic message")?;
    if message.get("type").and_then(Value::as_str) == Some("error") {
        return Err(bad_upstream("upstream returned an error object with a success status"));
    }
    let blocks = message
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();

    let mut content = Joiner::text();
    let mut reasoning = Joiner::reasoning();
    let mut signature = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => content.push(str_field(block, "text")),
            Some("thinking") => {
                reasoning.push(str_field(block, "thinking"));
                if let Some(sig) = block.get("signature").and_then(Value::as_str) {
                    signature = Some(sig.to_owned());
                }
                content.mark_other_block();
            }
            Some("tool_use") => {
                let name = str_field(block, "name");
                let arguments = arguments_json(block.get("input"));
                if facts.json_output_tool && name == JSON_OUTPUT_TOOL {
                    content.push(&arguments);
                    continue;
                }
                content.mark_other_block();
                tool_calls.push(OaiToolCall {
                    id: str_field(block, "id").to_owned(),
                    kind: "function",
                    function: OaiFunction {
                        name: name.to_owned(),
                        arguments,
                    },
                });
            }
            // redacted_thinking, server tools and their results have no OAI form (§2.1).
            _ => content.mark_other_block(),
        }
    }

    let usage = message.get("usage").map(TokenUsage::from_anthropic).unwrap_or_default();
    let stop_reason = message.get("stop_reason").and_then(Value::as_str);
    let mut finish_reason = finish_reason_for(stop_reason);
    if finish_reason == "tool_calls" && tool_calls.is_empty() {
        // Only the json_output tool was called: that is the structured answer, not a tool call (§1.1.8).
        finish_reason = "stop";
    }
    let text = content.finish();
    let content = match text {
        Some(text) => Some(text),
        None if !tool_calls.is_empty() => None,
        None => Some(String::new()),
    };
    let completion = ChatCompletion {
        id: openai_completion_id(message.get("id").and_then(Value::as_str), ctx.response_id),
        object: "chat.completion",
        created: ctx.created,
        model: ctx.client_model,
        choices: [CompletionChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                reasoning_content: reasoning.finish(),
                reasoning_signature: signature,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
            },
            logprobs: None,
            finish_reason,
        }],
        usage: usage.to_openai(),
    };
    Ok(serde_json::to_vec(&completion).expect("completion serialises"))
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice; 1],
    usage: OaiUsage,
}

#[derive(Serialize)]
struct CompletionChoice {
    index: u32,
    message: AssistantMessage,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<OaiToolCall>>,
    refusal: Option<()>,
}

#[derive(Serialize)]
struct OaiToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OaiFunction,
}

#[derive(Serialize)]
struct OaiFunction {
    name: String,
    arguments: String,
}

/// Joins the segments of one message field. [`Joiner::text`] follows §1.2.2: nothing between adjacent text
/// blocks, `"\n\n"` when another block separated them. [`Joiner::reasoning`] joins thinking texts with `"\n"`
/// (§2.1 `reasoning_content`). The Route A stream uses the same rules so streamed and non-streamed content
/// are equal.
#[derive(Debug, Clone)]
pub(crate) struct Joiner {
    text: String,
    any: bool,
    separated: bool,
    /// What goes between two segments that are separated.
    between: &'static str,
    /// Adjacent segments are separated too, not only those with another block between them.
    always_separated: bool,
}

impl Joiner {
    /// Text blocks: `"\n\n"` only where another block came between.
    pub(crate) fn text() -> Self {
        Self::new("\n\n", false)
    }

    /// Thinking texts: `"\n"` between any two.
    pub(crate) fn reasoning() -> Self {
        Self::new("\n", true)
    }

    fn new(between: &'static str, always_separated: bool) -> Self {
        Self {
            text: String::new(),
            any: false,
            separated: false,
            between,
            always_separated,
        }
    }

    /// The separator to put before a new, non-empty segment, and records that the segment was added.
    pub(crate) fn separator(&mut self) -> &'static str {
        let sep = if self.any && (self.always_separated || self.separated) {
            self.between
        } else {
            ""
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

    fn push(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let sep = self.separator();
        self.text.push_str(sep);
        self.text.push_str(text);
    }

    fn finish(self) -> Option<String> {
        self.any.then_some(self.text)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Route B: OAI ChatCompletion → ANT Message (§2.2)
// ---------------------------------------------------------------------------------------------------------

/// Converts an OpenAI `ChatCompletion` body into an Anthropic `Message` body (Route B, §2.2).
pub fn openai_to_anthropic(body: &[u8], ctx: &ConvertContext, facts: &RequestFacts) -> Result<Vec<u8>, ConvertError> {
    let completion: Value = parse_upstream(body, "OpenAI chat completion")?;
    if completion.get("error").is_some_and(|e| !e.is_null()) {
        return Err(bad_upstream("upstream returned an error object with a success status"));
    }
    let choice = completion
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| bad_upstream("upstream response has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);

    let mut content = Vec::new();
    let reasoning = reasoning_text(message);
    if !reasoning.trim().is_empty() {
        content.push(AntBlock::Thinking {
            signature: mint_thinking_signature(ctx.signing_key, reasoning),
            thinking: reasoning.to_owned(),
        });
    }
    let text = message_text(message.get("content"));
    if !text.trim().is_empty() {
        content.push(AntBlock::Text { text });
    }
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty());
    if let Some(refusal) = refusal {
        content.push(AntBlock::Text {
            text: refusal.to_owned(),
        });
    }
    let mut tool_ids = ToolIds::new(ctx.response_id);
    let mut saw_tool = false;
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for call in tool_calls {
        let function = call.get("function").unwrap_or(&Value::Null);
        let Some(name) = function.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            tracing::warn!("dropping an upstream tool call without a name");
            continue;
        };
        let arguments = function
            .get("arguments")
            .map(|a| match a {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                // A few hosts send the arguments as an object instead of a JSON string.
                other => Cow::Owned(other.to_string()),
            })
            .unwrap_or_default();
        let id = tool_ids.assign(call.get("id").and_then(Value::as_str), content.len());
        content.push(AntBlock::ToolUse {
            id,
            name: facts.tool_names.original(name).to_owned(),
            input: parse_tool_arguments(&arguments),
        });
        saw_tool = true;
    }

    let finish_reason = choice.get("finish_reason").and_then(Value::as_str);
    let stop_sequence = facts.matched_stop_sequence(choice.get("stop_reason"));
    let stop_reason = stop_reason_for(finish_reason, saw_tool, refusal.is_some(), stop_sequence.is_some());
    let usage = match completion.get("usage").filter(|u| u.is_object()) {
        Some(usage) => TokenUsage::from_openai(usage),
        None => TokenUsage::estimated(facts.input_tokens_estimate),
    };
    let message = AntMessage {
        id: anthropic_message_id(completion.get("id").and_then(Value::as_str), ctx.response_id),
        kind: "message",
        role: "assistant",
        model: ctx.client_model,
        content,
        stop_reason,
        stop_sequence: if stop_reason == "stop_sequence" {
            stop_sequence
        } else {
            None
        },
        usage: usage.to_anthropic(),
    };
    Ok(serde_json::to_vec(&message).expect("message serialises"))
}

#[derive(Serialize)]
struct AntMessage<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<AntBlock>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    usage: AntUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AntBlock {
    Thinking { thinking: String, signature: String },
    Text { text: String },
    ToolUse { id: String, name: String, input: Value },
}

/// Reasoning text of an OAI message or delta: `reasoning_content` (DeepSeek, Qwen, most hosts), else
/// `reasoning` (OpenRouter, vLLM). Some hosts send both with the same text; only one is used.
pub(crate) fn reasoning_text(message: &Value) -> &str {
    let field = |name| message.get(name).and_then(Value::as_str).unwrap_or("");
    let primary = field("reasoning_content");
    if primary.is_empty() {
        field("reasoning")
    } else {
        primary
    }
}

/// `content` of an OAI message: a string, or (some hosts) an array of text parts.
fn message_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Stop reasons (§2.3)
// ---------------------------------------------------------------------------------------------------------

/// ANT `stop_reason` → OAI `finish_reason`.
pub(crate) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, null and unknown values.
        _ => "stop",
    }
}

/// OAI `finish_reason` → ANT `stop_reason`. Any surviving tool call wins: OpenAI and several hosts answer
/// `stop` with tool calls, and SDK tool loops only run tools on `tool_use` (§6 row 19).
pub(crate) fn stop_reason_for(
    finish_reason: Option<&str>,
    saw_tool: bool,
    saw_refusal: bool,
    stop_sequence_known: bool,
) -> &'static str {
    if saw_tool {
        return "tool_use";
    }
    if saw_refusal {
        return "refusal";
    }
    match finish_reason {
        Some("stop") if stop_sequence_known => "stop_sequence",
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        // stop, tool_calls/function_call with no tool left, null, unknown (`eos`, …).
        _ => "end_turn",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Usage (§2.4)
// ---------------------------------------------------------------------------------------------------------

/// Token counts in Anthropic's terms: `input` excludes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub input: u64,
    pub cache_read: u64,
    /// `None` when the upstream did not report cache writes at all.
    pub cache_creation: Option<u64>,
    pub output: u64,
    pub thinking: Option<u64>,
}

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl TokenUsage {
    /// Route B before (or without) the upstream's own counts: the request's local input estimate, nothing
    /// else (§5.2).
    pub(crate) fn estimated(input_tokens: u64) -> Self {
        Self {
            input: input_tokens,
            ..Self::default()
        }
    }

    pub(crate) fn from_anthropic(usage: &Value) -> Self {
        let mut u = Self::default();
        u.merge_anthropic(usage);
        u
    }

    /// Applies an ANT usage object; fields it carries replace earlier values (ANT counts are cumulative).
    pub(crate) fn merge_anthropic(&mut self, usage: &Value) {
        if let Some(n) = count(usage, "input_tokens") {
            self.input = n;
        }
        if let Some(n) = count(usage, "cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = count(usage, "cache_creation_input_tokens") {
            self.cache_creation = Some(n);
        }
        if let Some(n) = count(usage, "output_tokens") {
            self.output = n;
        }
        if let Some(n) = usage
            .get("output_tokens_details")
            .and_then(|d| count(d, "thinking_tokens"))
        {
            self.thinking = Some(n);
        }
    }

    /// OAI usage → ANT terms: cached and written tokens are taken out of `prompt_tokens`.
    pub(crate) fn from_openai(usage: &Value) -> Self {
        let prompt = count(usage, "prompt_tokens").unwrap_or(0);
        let details = usage.get("prompt_tokens_details").unwrap_or(&Value::Null);
        let cached = count(details, "cached_tokens")
            .or_else(|| count(usage, "prompt_cache_hit_tokens"))
            .unwrap_or(0);
        let written = count(details, "cache_write_tokens").unwrap_or(0);
        Self {
            input: prompt.saturating_sub(cached).saturating_sub(written),
            cache_read: cached,
            cache_creation: Some(written),
            output: count(usage, "completion_tokens").unwrap_or(0),
            thinking: usage
                .get("completion_tokens_details")
                .and_then(|d| count(d, "reasoning_tokens")),
        }
    }

    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_read + self.cache_creation.unwrap_or(0)
    }

    pub(crate) fn to_openai(self) -> OaiUsage {
        let prompt_tokens = self.prompt_tokens();
        OaiUsage {
            prompt_tokens,
            completion_tokens: self.output,
            total_tokens: prompt_tokens + self.output,
            prompt_tokens_details: OaiPromptDetails {
                cached_tokens: self.cache_read,
                // As the hub's whole answers report it: only when something was written.
                cache_write_tokens: self.cache_creation.filter(|n| *n > 0),
            },
            completion_tokens_details: self
                .thinking
                .map(|reasoning_tokens| OaiCompletionDetails { reasoning_tokens }),
        }
    }

    pub(crate) fn to_anthropic(self) -> AntUsage {
        AntUsage {
            input_tokens: self.input,
            cache_creation_input_tokens: self.cache_creation.unwrap_or(0),
            cache_read_input_tokens: self.cache_read,
            output_tokens: self.output,
            output_tokens_details: self
                .thinking
                .map(|thinking_tokens| AntOutputDetails { thinking_tokens }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct OaiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: OaiPromptDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<OaiCompletionDetails>,
}

#[derive(Debug, Serialize)]
struct OaiPromptDetails {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
struct OaiCompletionDetails {
    reasoning_tokens: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct AntUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens_details: Option<AntOutputDetails>,
}

#[derive(Debug, Serialize)]
struct AntOutputDetails {
    thinking_tokens: u64,
}

// ---------------------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------------------

/// OAI completion id: `chatcmpl-` + the ANT message id, else the injected id (§2.1).
pub(crate) fn openai_completion_id(upstream: Option<&str>, response_id: &str) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => with_prefix("chatcmpl-", response_id),
    }
}

/// ANT message id: `msg_` + the OAI id's alphanumerics, else the injected id (§2.2).
pub(crate) fn anthropic_message_id(upstream: Option<&str>, response_id: &str) -> String {
    let cleaned: String = upstream
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if cleaned.is_empty() {
        with_prefix("msg_", response_id)
    } else {
        format!("msg_{cleaned}")
    }
}

fn with_prefix(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) {
        id.to_owned()
    } else {
        format!("{prefix}{id}")
    }
}

/// Assigns client-facing tool ids within one response: sanitised (§1.3.5), de-duplicated when two different
/// upstream ids sanitise to the same string, and minted deterministically when the upstream sent none. The
/// rewriting rules are the shared ones of [`convert::ids`](super::ids).
#[derive(Debug, Clone)]
pub(crate) struct ToolIds {
    response_id: String,
    /// (client-facing id, upstream original)
    assigned: Vec<(String, String)>,
}

impl ToolIds {
    pub(crate) fn new(response_id: &str) -> Self {
        Self {
            response_id: response_id.to_owned(),
            assigned: Vec::new(),
        }
    }

    /// `seq` distinguishes id-less tool calls within the response (the block index is used).
    pub(crate) fn assign(&mut self, upstream: Option<&str>, seq: usize) -> String {
        let original = upstream.unwrap_or("");
        let mut id = if original.is_empty() {
            synthetic_tool_id(&format!("{}:{seq}", self.response_id))
        } else {
            sanitize_tool_id(original).into_owned()
        };
        if self
            .assigned
            .iter()
            .any(|(taken, from)| *taken == id && from != original)
        {
            push_collision_suffix(&mut id, original);
        }
        self.assigned.push((id.clone(), original.to_owned()));
        id
    }
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------

fn parse_upstream(body: &[u8], what: &str) -> Result<Value, ConvertError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad_upstream(format!("upstream {what} is not a JSON object"))),
        Err(e) => Err(bad_upstream(format!("upstream {what} is not valid JSON: {e}"))),
    }
}

fn bad_upstream(message: impl Into<String>) -> ConvertError {
    ConvertError {
        message: message.into(),
        param: None,
        code: Some("bad_upstream_response"),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
