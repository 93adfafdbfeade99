//! Encoding a hub [`Request`] as an Anthropic Messages request (reference §1, Route D): instructions and
//! system messages into `system`, turns merged by role with tool results opening the user turn that follows
//! their calls (a call without a result gets an error result; a result without a call is dropped), media as
//! image and document blocks, tools with their schemas as written, reasoning effort as `thinking` per the
//! deployment's `thinking_mode`. The rules every Anthropic upstream needs (router-minted thinking, the
//! unsigned open tool loop, cache `ttl`, sampling exclusivity, the output cap) are applied afterwards by
//! `convert::request::apply_anthropic_fixups`, as on every other route to Anthropic.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::Block;
use super::Source;
use super::tool_ids::AnthropicToolIds;
use crate::protocol::convert::ids::user_id_within;
use crate::protocol::convert::request::{apply_anthropic_fixups, open_tool_loop_lacks_thinking};
use crate::protocol::convert::tool_calls::RAW_ARGUMENTS_KEY;
use crate::protocol::convert::tool_calls::{JSON_OUTPUT_TOOL, parse_tool_arguments};
use crate::protocol::convert::{ConvertError, ModelOptions, ThinkingMode};
use crate::protocol::hub::{
    Message, Opaque, OutputFormat, Part, Reasoning, ReasoningRequest, Request, Role, Tool, ToolCall, ToolChoice,
    ToolKind, ToolResult, plain_text,
};
use crate::protocol::responses::tools::flat_name;

/// `max_tokens` is required by Anthropic; this is used when neither the client nor the deployment says.
const FALLBACK_MAX_TOKENS: u64 = 4096;
/// Anthropic's smallest accepted thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;
const USER_ID_MAX_CHARS: usize = 256;
/// Anthropic has no JSON mode; a JSON-object format is asked for in words.
const JSON_OBJECT_INSTRUCTION: &str = "Reply with a single JSON object and nothing else.";
/// The content of an error result for a call whose result never came.
const MISSING_RESULT: &str = "(no result)";
/// The text of a user turn that would otherwise be empty.
const EMPTY_TURN: &str = "(empty)";
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The upstream body (model and `rewrite_body` not yet applied) and whether thinking is on.
pub struct Encoded {
    pub body: Map<String, Value>,
    pub thinking_enabled: bool,
    /// A JSON schema output is asked for as a forced call of the `json_output` tool (the deployment has no
    /// `output_config.format`); the answer's call becomes its text.
    pub json_output_tool: bool,
}

pub fn encode(request: &Request, options: &ModelOptions) -> Result<Encoded, ConvertError> {
    let mut system: Vec<Value> = request
        .instructions
        .iter()
        .filter(|t| !is_blank(t))
        .map(|t| text_block(t))
        .collect();
    if request.cache_instructions {
        mark_cache_breakpoint(&mut system);
    }
    let mut ids = AnthropicToolIds::default();
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::System => {
                for part in &message.parts {
                    match part {
                        Part::Text(t) | Part::Refusal(t) if !is_blank(t) => system.push(text_block(t)),
                        Part::CacheBreakpoint => mark_cache_breakpoint(&mut system),
                        _ => {}
                    }
                }
            }
            role => {
                let blocks = blocks(message, i, &mut ids)?;
                // Anthropic rejects an empty assistant turn; an empty user turn gets a placeholder below.
                if role == Role::Assistant && blocks.is_empty() {
                    continue;
                }
                match turns.last_mut() {
                    Some((last, existing)) if *last == role => existing.extend(blocks),
                    _ => turns.push((role, blocks)),
                }
            }
        }
    }
    let mut messages = pair_tool_results(turns);

    let mut tools: Vec<Value> = request.tools.iter().map(|t| declare(t, options)).collect();
    let json_output_tool =
        matches!(request.format, Some(OutputFormat::JsonSchema { .. })) && !options.supports_output_format;
    let mut json_choice = None;
    match &request.format {
        Some(OutputFormat::JsonObject) => system.push(text_block(JSON_OBJECT_INSTRUCTION)),
        Some(OutputFormat::JsonSchema { schema, .. }) if json_output_tool => {
            let schema: Value = serde_json::from_str(schema.get()).expect("a raw value is JSON");
            tools.push(json!({"name": JSON_OUTPUT_TOOL, "input_schema": schema}));
            json_choice = Some(json!({"type": "tool", "name": JSON_OUTPUT_TOOL}));
        }
        _ => {}
    }
    let choice = json_choice
        .or_else(|| tool_choice(request))
        .filter(|_| !tools.is_empty());
    let forced = choice
        .as_ref()
        .is_some_and(|c| matches!(c["type"].as_str(), Some("any" | "tool")));
    let mut body = Map::new();
    let mut max_tokens = request
        .max_output_tokens
        .or(options.default_max_tokens.map(u64::from))
        .or(options.max_output_tokens.map(u64::from))
        .unwrap_or(FALLBACK_MAX_TOKENS);
    if let Some(cap) = options.max_output_tokens {
        max_tokens = max_tokens.min(u64::from(cap));
    }
    // Anthropic refuses thinking next to a forced tool, and in a tool loop whose turns lack signed thinking.
    let thinking = match forced || open_tool_loop_lacks_thinking(&messages) {
        true => None,
        false => thinking(&request.reasoning, options.thinking_mode, &mut max_tokens, options),
    };
    let thinking_enabled = thinking.as_ref().is_some_and(|(t, _)| t["type"] != "disabled");
    settle_prefill(&mut messages, thinking_enabled);
    body.insert("max_tokens".into(), Value::from(max_tokens.max(1)));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some((thinking, effort)) = thinking {
        body.insert("thinking".into(), thinking);
        if let Some(effort) = effort {
            body.insert("output_config".into(), json!({"effort": effort}));
        }
    }
    if let Some(OutputFormat::JsonSchema { schema, .. }) = &request.format
        && !json_output_tool
    {
        let schema: Value = serde_json::from_str(schema.get()).expect("a raw value is JSON");
        let config = body.entry("output_config").or_insert_with(|| json!({}));
        config["format"] = json!({"type": "json_schema", "schema": schema});
    }
    match (thinking_enabled, request.temperature) {
        // With thinking on, Anthropic accepts only its default temperature.
        (true, _) | (_, None) => {}
        (false, Some(t)) => {
            body.insert("temperature".into(), Value::from(t.clamp(0.0, 1.0)));
        }
    }
    if let Some(top_p) = request.top_p
        && (!thinking_enabled || (0.95..=1.0).contains(&top_p))
    {
        body.insert("top_p".into(), Value::from(top_p));
    }
    if let Some(top_k) = request.top_k {
        body.insert("top_k".into(), Value::from(top_k));
    }
    let stop: Vec<&str> = request
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !is_blank(s))
        .collect();
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), json!(stop));
    }
    if request.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = request.user.as_deref().filter(|u| !u.is_empty()) {
        body.insert(
            "metadata".into(),
            json!({"user_id": user_id_within(user, USER_ID_MAX_CHARS)}),
        );
    }
    apply_anthropic_fixups(&mut body, options);
    Ok(Encoded {
        thinking_enabled: body.get("thinking").is_some_and(|t| t["type"] != "disabled"),
        json_output_tool,
        body,
    })
}

/// A cache breakpoint on the last block so far; the TTL cannot be carried across protocols.
fn mark_cache_breakpoint(blocks: &mut [Value]) {
    if let Some(Value::Object(block)) = blocks.last_mut() {
        block.insert("cache_control".into(), json!({"type": "ephemeral"}));
    }
}

/// Text Anthropic would reject as content: empty or only whitespace.
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// The content blocks of one user or assistant message (the `i`th). Reasoning without a signature Anthropic
/// made is dropped: Anthropic rejects unsigned thinking.
fn blocks(message: &Message, i: usize, ids: &mut AnthropicToolIds) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::with_capacity(message.parts.len());
    for (j, part) in message.parts.iter().enumerate() {
        match part {
            Part::Text(t) | Part::Refusal(t) if !is_blank(t) => out.push(text_block(t)),
            // Anthropic's own thinking goes back exactly as it came; anything else cannot be replayed.
            Part::Reasoning(reasoning) => {
                if let Some(Opaque::Anthropic { block }) = &reasoning.opaque {
                    out.push(serde_json::from_str(block.get()).expect("a raw value is JSON"));
                }
            }
            Part::Text(_) | Part::Refusal(_) => {}
            Part::CacheBreakpoint => mark_cache_breakpoint(&mut out),
            Part::Image { url, .. } => out.push(image_block(url)?),
            Part::File { data_url, filename } => out.push(document_block(data_url, filename.as_deref())?),
            Part::ToolCall(call) => {
                let input = match call.kind {
                    ToolKind::Function => parse_tool_arguments(&call.arguments),
                    ToolKind::Custom => json!({"input": call.arguments}),
                };
                out.push(json!({
                    "type": "tool_use",
                    "id": ids.get(&call.id, || format!("{i}:{j}")),
                    "name": flat_name(&call.name, call.namespace.as_deref()),
                    "input": input,
                }));
            }
            Part::ToolResult(result) => out.push(tool_result(result, ids.get(&result.call_id, || format!("{i}:{j}")))?),
        }
    }
    Ok(out)
}

/// A tool result: one text is a string; several parts (text or media) are a list of blocks, so their
/// boundaries survive; an empty result has no `content`.
fn tool_result(result: &ToolResult, id: String) -> Result<Value, ConvertError> {
    let mut block = Map::new();
    block.insert("type".into(), Value::from("tool_result"));
    block.insert("tool_use_id".into(), Value::from(id));
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) if !is_blank(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let media = result
        .content
        .iter()
        .any(|p| matches!(p, Part::Image { .. } | Part::File { .. }));
    if media || texts.len() > 1 {
        let mut content = Vec::with_capacity(result.content.len());
        for part in &result.content {
            match part {
                Part::Text(t) if !is_blank(t) => content.push(text_block(t)),
                Part::Image { url, .. } => content.push(image_block(url)?),
                Part::File { data_url, filename } => content.push(document_block(data_url, filename.as_deref())?),
                _ => {}
            }
        }
        block.insert("content".into(), Value::Array(content));
    } else if let [text] = texts[..] {
        block.insert("content".into(), Value::from(text));
    }
    if result.is_error {
        block.insert("is_error".into(), Value::Bool(true));
    }
    Ok(Value::Object(block))
}

/// Each assistant turn's calls are answered by tool results at the start of the next user turn, in the order
/// of the calls; a call without a result gets an error result, and results that answer no call are dropped
/// (Anthropic rejects both orphans). No user turn is empty, and the conversation opens with a user turn
/// (Anthropic's own API accepts an assistant turn first; Bedrock and other Messages hosts do not).
fn pair_tool_results(turns: Vec<(Role, Vec<Value>)>) -> Vec<Value> {
    let mut out = Vec::with_capacity(turns.len() + 2);
    let mut calls: Vec<String> = Vec::new();
    let mut turns = turns.into_iter().peekable();
    while let Some((role, blocks)) = turns.next() {
        match role {
            Role::Assistant => {
                if out.is_empty() {
                    out.push(json!({"role": "user", "content": [text_block(EMPTY_TURN)]}));
                }
                calls = blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str().map(str::to_owned))
                    .collect();
                out.push(json!({"role": "assistant", "content": blocks}));
                if !calls.is_empty() && !matches!(turns.peek(), Some((Role::User, _))) {
                    // The results never came: the next turn starts with them.
                    out.push(json!({"role": "user", "content": results_for(&calls, Vec::new())}));
                    calls.clear();
                }
            }
            Role::User | Role::System => {
                let mut content = results_for(&calls, blocks);
                calls.clear();
                if content.is_empty() {
                    content.push(text_block(EMPTY_TURN));
                }
                out.push(json!({"role": "user", "content": content}));
            }
        }
    }
    if out.is_empty() {
        out.push(json!({"role": "user", "content": [text_block(EMPTY_TURN)]}));
    }
    out
}

/// The blocks of a user turn following `calls`: one result per call, in call order, then the rest.
fn results_for(calls: &[String], blocks: Vec<Value>) -> Vec<Value> {
    let (results, rest): (Vec<Value>, Vec<Value>) = blocks.into_iter().partition(|b| b["type"] == "tool_result");
    let mut results: Vec<Option<Value>> = results.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(calls.len() + rest.len());
    for id in calls {
        let answer = results
            .iter_mut()
            .find(|r| r.as_ref().is_some_and(|r| r["tool_use_id"] == id.as_str()))
            .and_then(Option::take);
        out.push(answer.unwrap_or_else(
            || json!({"type": "tool_result", "tool_use_id": id, "content": MISSING_RESULT, "is_error": true}),
        ));
    }
    for result in results.into_iter().flatten() {
        tracing::debug!(tool_use_id = %result["tool_use_id"], "dropping a tool result that answers no call");
    }
    out.extend(rest);
    out
}

/// A final assistant turn (a prefill) may not end in whitespace, and cannot be combined with thinking, in
/// which case it is dropped.
fn settle_prefill(messages: &mut Vec<Value>, thinking_on: bool) {
    if messages.last().is_none_or(|m| m["role"] != "assistant") {
        return;
    }
    if thinking_on {
        messages.pop();
        return;
    }
    let last_block = messages
        .last_mut()
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
        .and_then(|blocks| blocks.last_mut());
    if let Some(block) = last_block
        && block["type"] == "text"
        && let Some(Value::String(text)) = block.get_mut("text")
    {
        let trimmed_len = text.trim_end().len();
        text.truncate(trimmed_len);
    }
}

/// A `data:` URL split into media type and base64 data.
fn data_url(url: &str) -> Option<(String, &str)> {
    let rest = url
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("data:"))
        .and(url.get(5..))?;
    let (header, data) = rest.split_once(',')?;
    let mut params = header.split(';');
    let media_type = params.next().unwrap_or_default().trim().to_ascii_lowercase();
    params
        .any(|p| p.trim().eq_ignore_ascii_case("base64"))
        .then_some((media_type, data))
}

fn image_block(url: &str) -> Result<Value, ConvertError> {
    if let Some((media_type, data)) = data_url(url) {
        let media_type = if media_type == "image/jpg" {
            "image/jpeg".to_owned()
        } else {
            media_type
        };
        if !IMAGE_MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(ConvertError {
                message: format!("image media type '{media_type}' is not supported by this model's provider"),
                param: Some("input".into()),
                code: Some("unsupported_value"),
            });
        }
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(ConvertError::invalid(
        "image URLs must be http(s) URLs or base64 data URLs",
        "input",
    ))
}

fn document_block(url: &str, filename: Option<&str>) -> Result<Value, ConvertError> {
    let Some((media_type, data)) = data_url(url) else {
        return Err(ConvertError::invalid("file_data must be a base64 data URL", "input"));
    };
    let mut block = match media_type.as_str() {
        "application/pdf" => {
            json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
        _ => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| ConvertError::invalid("file_data is not valid base64", "input"))?;
            let text = String::from_utf8(bytes).map_err(|_| ConvertError {
                message: format!("files of type '{media_type}' are not supported by this model's provider"),
                param: Some("input".into()),
                code: Some("unsupported_value"),
            })?;
            json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}})
        }
    };
    if let Some(name) = filename {
        block["title"] = Value::from(name);
    }
    Ok(block)
}

const CUSTOM_TOOL_SCHEMA: &str = r#"{"type":"object","properties":{"input":{"type":"string"}},"required":["input"]}"#;

fn declare(tool: &Tool, options: &ModelOptions) -> Value {
    let schema: Value = match (tool.kind, &tool.parameters) {
        (ToolKind::Custom, _) => serde_json::from_str(CUSTOM_TOOL_SCHEMA).expect("constant JSON"),
        (ToolKind::Function, Some(raw)) => serde_json::from_str(raw.get()).expect("a raw value is JSON"),
        (ToolKind::Function, None) => json!({"type": "object", "properties": {}}),
    };
    let mut out = json!({"name": flat_name(&tool.name, tool.namespace.as_deref()), "input_schema": schema});
    if let Some(description) = &tool.description {
        out["description"] = Value::from(description.as_str());
    }
    // `strict` belongs to Anthropic's structured outputs; hosts without them may reject the field.
    if tool.strict == Some(true) && options.supports_output_format {
        out["strict"] = Value::Bool(true);
    }
    out
}

fn tool_choice(request: &Request) -> Option<Value> {
    let mut choice = match &request.tool_choice {
        None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::None) => json!({"type": "none"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Named { name, namespace }) => {
            json!({"type": "tool", "name": flat_name(name, namespace.as_deref())})
        }
    };
    if request.parallel_tool_calls == Some(false) && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    } else if request.tool_choice.is_none() {
        return None;
    }
    Some(choice)
}

/// The `thinking` object (and an adaptive effort) for a reasoning effort, with `max_tokens` made room for a
/// budget; `None` when thinking stays off.
fn thinking(
    reasoning: &ReasoningRequest,
    mode: ThinkingMode,
    max_tokens: &mut u64,
    options: &ModelOptions,
) -> Option<(Value, Option<&'static str>)> {
    let effort = match (reasoning, mode) {
        (_, ThinkingMode::None) | (ReasoningRequest::Unspecified, _) => return None,
        // Said explicitly, so that the upstream's default cannot switch it on.
        (ReasoningRequest::Disabled, _) => return Some((json!({"type": "disabled"}), None)),
        (ReasoningRequest::Effort(effort), _) => effort,
    };
    let (budget, level) = match effort.as_str() {
        "minimal" | "low" => (1024, "low"),
        "medium" => (2048, "medium"),
        "high" => (4096, "high"),
        "xhigh" => (8192, "xhigh"),
        "max" => (16384, "max"),
        _ => (2048, "medium"),
    };
    match mode {
        ThinkingMode::None => None,
        ThinkingMode::Adaptive => Some((json!({"type": "adaptive"}), Some(level))),
        ThinkingMode::Budget => {
            let cap = options.max_output_tokens.map_or(u64::MAX, u64::from);
            if budget >= *max_tokens {
                *max_tokens = (budget + budget.min(4096)).min(cap);
            }
            let budget = budget.min(max_tokens.saturating_sub(1));
            (budget >= MIN_THINKING_BUDGET).then(|| (json!({"type": "enabled", "budget_tokens": budget}), None))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Messages request (an Anthropic client on another protocol's upstream)

#[derive(serde::Deserialize)]
struct InBody<'a> {
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Vec<InMessage<'a>>>,
    #[serde(borrow, default)]
    tools: Vec<InTool<'a>>,
    #[serde(default)]
    tool_choice: Option<InToolChoice>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u64>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    thinking: Option<InThinking>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    metadata: Option<InMetadata>,
    #[serde(borrow, default)]
    output_config: Option<InOutputConfig<'a>>,
    /// The deprecated beta spelling of `output_config.format`.
    #[serde(borrow, default)]
    output_format: Option<InFormat<'a>>,
}

#[derive(serde::Deserialize)]
struct InMessage<'a> {
    role: &'a str,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct InTool<'a> {
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(serde::Deserialize)]
struct InToolChoice {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(serde::Deserialize)]
struct InThinking {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    budget_tokens: Option<u64>,
}

#[derive(serde::Deserialize)]
struct InMetadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct InOutputConfig<'a> {
    #[serde(borrow, default)]
    format: Option<InFormat<'a>>,
    #[serde(default)]
    effort: Option<String>,
}

#[derive(serde::Deserialize)]
struct InFormat<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

/// A search result's fields (its `source` is a string, unlike a media block's).
#[derive(serde::Deserialize)]
struct SearchResult<'a> {
    #[serde(default)]
    title: Option<&'a str>,
    #[serde(default)]
    source: Option<&'a str>,
    #[serde(borrow, default)]
    content: Vec<Block<'a>>,
}

fn invalid(message: impl Into<String>, param: &str) -> ConvertError {
    ConvertError::invalid(message, param)
}

fn missing(param: &str) -> ConvertError {
    invalid(format!("{param}: field required"), param)
}

/// Decodes a Messages request body. A `max_tokens` of 0 (Claude Code's cache pre-warm) stays 0 for
/// [`crate::protocol::hub::convert_request`] to see. Error params name the field as OpenAI does
/// (`messages[0].content`).
pub fn decode(body: &[u8]) -> Result<Request, ConvertError> {
    let body: InBody = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not a valid Messages request: {e}"), "messages"))?;
    let max_tokens = match body.max_tokens {
        None => return Err(missing("max_tokens")),
        Some(n) => serde_json::from_str::<u64>(n.get()).map_err(|_| {
            invalid(
                format!("max_tokens: must be a positive integer, got {}", n.get()),
                "max_tokens",
            )
        })?,
    };
    let list = body.messages.ok_or_else(|| missing("messages"))?;
    if list.is_empty() {
        return Err(invalid("messages: at least one message is required", "messages"));
    }
    let mut messages = Vec::with_capacity(list.len());
    let mut instructions = Vec::new();
    let mut cache_instructions = false;
    if let Some(system) = body.system {
        for part in system_parts(system, "system")? {
            match part {
                Part::Text(text) => instructions.push(text),
                _ => cache_instructions = true,
            }
        }
    }
    let last = list.len() - 1;
    for (i, message) in list.iter().enumerate() {
        let role = match message.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            other => {
                let at = format!("messages[{i}].role");
                return Err(invalid(format!("{at}: unknown role '{other}'"), &at));
            }
        };
        let at = format!("messages[{i}].content");
        let content = message.content.ok_or_else(|| missing(&at))?;
        let start = messages.len();
        match role {
            Role::System => messages.push(Message {
                role,
                parts: system_parts(content, &at)?,
            }),
            _ => read_turn(role, content, &at, &mut messages)?,
        }
        // An empty final assistant turn is a (blank) prefill; any other empty turn says nothing.
        if messages.len() == start && role == Role::Assistant && i == last {
            messages.push(Message {
                role,
                parts: Vec::new(),
            });
        }
    }
    let mut tools = Vec::with_capacity(body.tools.len());
    for (i, tool) in body.tools.into_iter().enumerate() {
        // Server tools (`web_search_20250305`, ...) exist only at Anthropic.
        if tool.kind.is_some_and(|k| k != "custom") {
            continue;
        }
        tools.push(Tool {
            name: tool.name.ok_or_else(|| missing(&format!("tools[{i}].name")))?,
            namespace: None,
            description: tool.description,
            kind: ToolKind::Function,
            parameters: tool.input_schema.map(|s| s.to_owned()),
            strict: tool.strict,
        });
    }
    let (tool_choice, parallel) = match body.tool_choice {
        None => (None, None),
        Some(choice) => {
            let parallel = choice.disable_parallel_tool_use.map(|d| !d);
            let choice = match choice.kind.as_str() {
                "auto" => ToolChoice::Auto,
                "any" => ToolChoice::Required,
                "none" => ToolChoice::None,
                "tool" => ToolChoice::Named {
                    name: choice.name.ok_or_else(|| missing("tool_choice.name"))?,
                    namespace: None,
                },
                other => {
                    return Err(invalid(
                        format!("tool_choice: unknown type \"{other}\""),
                        "tool_choice.type",
                    ));
                }
            };
            (Some(choice), parallel)
        }
    };
    let effort = body.output_config.as_ref().and_then(|c| c.effort.clone());
    let (reasoning, reasoning_budget) = match body.thinking {
        None => (ReasoningRequest::Unspecified, None),
        Some(thinking) => match thinking.kind.as_str() {
            "disabled" => (ReasoningRequest::Disabled, None),
            "enabled" => {
                let level = match thinking.budget_tokens {
                    Some(0..2048) => "low",
                    Some(2048..8192) | None => "medium",
                    Some(_) => "high",
                };
                (ReasoningRequest::Effort(level.to_owned()), thinking.budget_tokens)
            }
            // Most other hosts know three levels.
            "adaptive" => {
                let level = match effort.as_deref() {
                    Some("low") => "low",
                    Some("high" | "xhigh" | "max") => "high",
                    _ => "medium",
                };
                (ReasoningRequest::Effort(level.to_owned()), None)
            }
            other => {
                return Err(invalid(format!("thinking: unknown type \"{other}\""), "thinking.type"));
            }
        },
    };
    let format = body
        .output_config
        .and_then(|c| c.format)
        .or(body.output_format)
        .filter(|f| f.kind == "json_schema")
        .and_then(|f| f.schema)
        .map(|schema| OutputFormat::JsonSchema {
            name: "output".into(),
            schema: schema.to_owned(),
            strict: Some(true),
            description: None,
        });
    Ok(Request {
        instructions,
        cache_instructions,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: parallel,
        max_output_tokens: Some(max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop: body.stop_sequences,
        reasoning,
        reasoning_budget,
        format,
        stream: body.stream.unwrap_or(false),
        user: body.metadata.and_then(|m| m.user_id),
        prompt_cache_key: None,
    })
}

/// Claude Code starts its system prompt with `x-anthropic-billing-header: cc_version=…; …`, metadata for
/// Anthropic's own API. Another provider learns nothing from it, and because it changes between sessions it
/// would defeat prefix caching, so it is not forwarded.
fn is_billing_header(text: &str) -> bool {
    text.starts_with("x-anthropic-billing-header:")
}

/// The text (and cache breakpoints) of a system prompt: a string or a list of text blocks.
fn system_parts(raw: &RawValue, at: &str) -> Result<Vec<Part>, ConvertError> {
    if let Some(parts) = plain_text(raw, at)? {
        return Ok(parts);
    }
    let mut parts = Vec::new();
    for (j, block) in list_of(raw, at)?.iter().enumerate() {
        let block = block_at(block, &format!("{at}[{j}]"))?;
        if block.kind == "text"
            && let Some(text) = block.text
            && !text.is_empty()
            && !is_billing_header(&text)
        {
            parts.push(Part::Text(text));
            if block.cache_control.is_some() {
                parts.push(Part::CacheBreakpoint);
            }
        }
    }
    Ok(parts)
}

fn list_of<'a>(raw: &'a RawValue, at: &str) -> Result<Vec<&'a RawValue>, ConvertError> {
    serde_json::from_str(raw.get())
        .map_err(|_| invalid(format!("{at}: must be a string or an array of content blocks"), at))
}

fn block_at<'a>(raw: &'a RawValue, at: &str) -> Result<Block<'a>, ConvertError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let field = if e.to_string().contains("missing field `type`") {
            format!("{at}.type")
        } else {
            at.to_owned()
        };
        invalid(format!("{field}: {e}"), &field)
    })
}

/// One user or assistant message's blocks as hub messages: usually one, but a `mid_conv_system` block
/// (Claude Code) splits the turn around a system message at its position.
fn read_turn(role: Role, raw: &RawValue, at: &str, out: &mut Vec<Message>) -> Result<(), ConvertError> {
    let mut parts = Vec::new();
    match plain_text(raw, at)? {
        Some(text) => parts = text,
        None => {
            for (j, raw_block) in list_of(raw, at)?.into_iter().enumerate() {
                let p = format!("{at}[{j}]");
                let block = block_at(raw_block, &p)?;
                if block.kind != "mid_conv_system" {
                    read_block(block, raw_block, &p, &mut parts)?;
                    continue;
                }
                if !parts.is_empty() {
                    out.push(Message {
                        role,
                        parts: std::mem::take(&mut parts),
                    });
                }
                let cp = format!("{p}.content");
                let content = block.content.ok_or_else(|| missing(&cp))?;
                out.push(Message {
                    role: Role::System,
                    parts: system_parts(content, &cp)?,
                });
            }
        }
    }
    if !parts.is_empty() {
        out.push(Message { role, parts });
    }
    Ok(())
}

/// One content block as hub parts.
fn read_block(block: Block<'_>, raw: &RawValue, at: &str, out: &mut Vec<Part>) -> Result<(), ConvertError> {
    let cached = block.cache_control.is_some();
    let before = out.len();
    match block.kind {
        "text" => out.extend(block.text.filter(|t| !t.is_empty()).map(Part::Text)),
        "thinking" => out.extend(
            block
                .thinking
                .filter(|t| !t.is_empty())
                .map(|text| Part::Reasoning(Reasoning { text, opaque: None })),
        ),
        "image" | "document" => media(&block, at, out)?,
        "search_result" => out.push(Part::Text(search_result_text(raw, at)?)),
        // Claude Code's tool search: tell the model which tool became available.
        "tool_reference" => out.push(Part::Text(format!(
            "Tool loaded: {}",
            block.tool_name.unwrap_or_default()
        ))),
        "tool_use" => out.push(Part::ToolCall(ToolCall {
            id: block.id.ok_or_else(|| missing(&format!("{at}.id")))?,
            name: block.name.ok_or_else(|| missing(&format!("{at}.name")))?,
            namespace: None,
            kind: ToolKind::Function,
            arguments: arguments_text(block.input),
        })),
        "tool_result" => {
            let mut content = Vec::new();
            if let Some(raw) = block.content {
                let cp = format!("{at}.content");
                match plain_text(raw, &cp)? {
                    Some(parts) => content = parts,
                    None => {
                        for (k, item) in list_of(raw, &cp)?.into_iter().enumerate() {
                            let ip = format!("{cp}[{k}]");
                            read_block(block_at(item, &ip)?, item, &ip, &mut content)?;
                        }
                    }
                }
            }
            out.push(Part::ToolResult(ToolResult {
                call_id: block.tool_use_id.ok_or_else(|| missing(&format!("{at}.tool_use_id")))?,
                content,
                is_error: block.is_error.unwrap_or(false),
            }));
        }
        // redacted_thinking, server tool blocks and unknown blocks have no counterpart.
        _ => {}
    }
    if cached && out.len() > before {
        out.push(Part::CacheBreakpoint);
    }
    Ok(())
}

/// A tool call's input as argument text. Unparseable Chat arguments that a Chat client once sent through an
/// Anthropic upstream come back wrapped (`{"_raw_arguments": "…"}`) and unwrap to the original text.
fn arguments_text(input: Option<&RawValue>) -> String {
    let Some(input) = input.filter(|i| i.get() != "null") else {
        return "{}".to_owned();
    };
    if input.get().contains(RAW_ARGUMENTS_KEY)
        && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(input.get())
        && obj.len() == 1
        && let Some(Value::String(raw)) = obj.get(RAW_ARGUMENTS_KEY)
    {
        return raw.clone();
    }
    input.get().to_owned()
}

/// A search result as plain text: title, source, then its text blocks.
fn search_result_text(raw: &RawValue, at: &str) -> Result<String, ConvertError> {
    let result: SearchResult = serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at}: {e}"), at))?;
    let mut lines: Vec<&str> = Vec::new();
    lines.extend(result.title);
    lines.extend(result.source);
    lines.extend(result.content.iter().filter_map(|b| b.text.as_deref()));
    Ok(lines.join("\n"))
}

/// An image or document block as hub parts.
fn media(block: &Block<'_>, at: &str, out: &mut Vec<Part>) -> Result<(), ConvertError> {
    let sp = format!("{at}.source");
    let raw = block.source.ok_or_else(|| missing(&sp))?;
    let source: Source = serde_json::from_str(raw.get()).map_err(|e| {
        let field = match e.to_string().contains("missing field `type`") {
            true => format!("{sp}.type"),
            false => sp.clone(),
        };
        invalid(format!("{field}: {e}"), &field)
    })?;
    let unsupported = |message: String| ConvertError {
        message,
        param: Some(format!("{sp}.type")),
        code: Some("unsupported_parameter"),
    };
    let part = match (block.kind, source.kind.as_str()) {
        ("image", "base64") => Part::Image {
            url: format!(
                "data:{};base64,{}",
                source.media_type.as_deref().unwrap_or("image/png"),
                source.data.as_deref().unwrap_or_default()
            ),
            detail: None,
        },
        ("image", "url") => Part::Image {
            url: source.url.unwrap_or_default(),
            detail: None,
        },
        ("document", "base64") => Part::File {
            data_url: format!(
                "data:{};base64,{}",
                source.media_type.as_deref().unwrap_or("application/pdf"),
                source.data.as_deref().unwrap_or_default()
            ),
            filename: Some(block.title.clone().unwrap_or_else(|| "document.pdf".to_owned())),
        },
        ("document", "text") => Part::Text(match block.title.as_deref() {
            Some(title) if !title.is_empty() => format!("{title}\n{}", source.data.as_deref().unwrap_or_default()),
            _ => source.data.unwrap_or_default(),
        }),
        ("document", "content") => {
            let cp = format!("{sp}.content");
            let content = source.content.ok_or_else(|| missing(&cp))?;
            if let Some(parts) = plain_text(content, &cp)? {
                out.extend(parts);
                return Ok(());
            }
            for (k, raw_item) in list_of(content, &cp)?.into_iter().enumerate() {
                let ip = format!("{cp}[{k}]");
                let item = block_at(raw_item, &ip)?;
                if matches!(item.kind, "text" | "image") {
                    read_block(item, raw_item, &ip, out)?;
                }
            }
            return Ok(());
        }
        (_, "file") => {
            return Err(unsupported(
                "Files API sources (file_id) are not supported by this model's provider; send the content as \
                 base64."
                    .into(),
            ));
        }
        ("document", "url") => {
            return Err(unsupported(
                "URL document sources are not supported by this model's provider; send the document as base64 \
                 or text."
                    .into(),
            ));
        }
        (kind, other) => {
            return Err(invalid(
                format!("Unknown {kind} source type '{other}'."),
                &format!("{sp}.type"),
            ));
        }
    };
    out.push(part);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::responses::request::decode;

    fn encode_json(body: &[u8], options: &ModelOptions) -> Value {
        Value::Object(encode(&decode(body, b"key").unwrap().request, options).unwrap().body)
    }

    #[test]
    fn codex_turns_become_anthropic_turns_with_paired_results() {
        let body = br#"{"model":"m","instructions":"Base prompt","input":[
            {"type":"message","role":"developer","content":[{"type":"input_text","text":"Be careful"}]},
            {"role":"user","content":"go"},
            {"type":"reasoning","summary":[{"type":"summary_text","text":"unsigned"}]},
            {"type":"function_call","name":"a","arguments":"{\"x\":1}","call_id":"call.1"},
            {"type":"custom_tool_call","name":"apply_patch","input":"*** Begin Patch","call_id":"c2"},
            {"type":"function_call_output","call_id":"call.1","output":[{"type":"input_text","text":"one"},{"type":"input_image","image_url":"data:image/png;base64,AA"}]},
            {"type":"function_call_output","call_id":"stray","output":"x"},
            {"role":"user","content":"next"}],
            "tools":[{"type":"function","name":"a","parameters":{"type":"object","properties":{"x":{}}}},{"type":"custom","name":"apply_patch"}]}"#;
        let sent = encode_json(body, &ModelOptions::default());
        assert_eq!(
            sent["system"],
            json!([{"type":"text","text":"Base prompt"},{"type":"text","text":"Be careful"}])
        );
        let messages = sent["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        let assistant = messages[1]["content"].as_array().unwrap();
        assert_eq!(assistant.len(), 2, "unsigned reasoning is dropped: {assistant:?}");
        assert_eq!(assistant[0]["id"], "call_1", "ids are sanitised");
        assert_eq!(assistant[0]["input"], json!({"x": 1}));
        assert_eq!(assistant[1]["input"], json!({"input": "*** Begin Patch"}));
        let user = messages[2]["content"].as_array().unwrap();
        let kinds: Vec<&str> = user.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["tool_result", "tool_result", "text"]);
        assert_eq!(user[0]["content"][1]["source"]["media_type"], "image/png");
        assert_eq!(
            (user[1]["tool_use_id"].as_str(), user[1]["is_error"].as_bool()),
            (Some("c2"), Some(true))
        );
        assert_eq!(sent["tools"][1]["input_schema"]["required"], json!(["input"]));
        assert_eq!(sent["max_tokens"], 4096);
    }

    #[test]
    fn effort_becomes_a_budget_that_fits_and_a_forced_tool_switches_it_off() {
        let sent = encode_json(
            br#"{"model":"m","input":"hi","reasoning":{"effort":"high"},"max_output_tokens":2000,"temperature":0.3}"#,
            &ModelOptions::default(),
        );
        assert_eq!(sent["thinking"], json!({"type":"enabled","budget_tokens":4096}));
        assert_eq!(sent["max_tokens"], 8192);
        assert!(sent.get("temperature").is_none());
        let sent = encode_json(
            br#"{"model":"m","input":"hi","reasoning":{"effort":"high"},"tool_choice":"required","parallel_tool_calls":false,"tools":[{"type":"function","name":"f"}]}"#,
            &ModelOptions::default(),
        );
        assert!(sent.get("thinking").is_none());
        assert_eq!(
            sent["tool_choice"],
            json!({"type":"any","disable_parallel_tool_use":true})
        );
    }
}
