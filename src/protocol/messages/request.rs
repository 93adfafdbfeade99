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
use crate::protocol::convert::ids::{sanitize_tool_id, user_id_within};
use crate::protocol::convert::request::apply_anthropic_fixups;
use crate::protocol::convert::tool_calls::parse_tool_arguments;
use crate::protocol::convert::{ConvertError, ModelOptions, ThinkingMode};
use crate::protocol::hub::{
    Message, Opaque, OutputFormat, Part, ReasoningRequest, Request, Role, Tool, ToolChoice, ToolKind,
};
use crate::protocol::responses::tools::flat_name;

/// `max_tokens` is required by Anthropic; this is used when neither the client nor the deployment says.
const FALLBACK_MAX_TOKENS: u64 = 4096;
/// Anthropic's smallest accepted thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;
const USER_ID_MAX_CHARS: usize = 256;
const INTERRUPTED: &str = "(no result: the call was interrupted)";
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The upstream body (model and `rewrite_body` not yet applied) and whether thinking is on.
pub struct Encoded {
    pub body: Map<String, Value>,
    pub thinking_enabled: bool,
}

pub fn encode(request: &Request, options: &ModelOptions) -> Result<Encoded, ConvertError> {
    let mut system: Vec<Value> = request.instructions.iter().map(|t| text_block(t)).collect();
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        match message.role {
            Role::System => system.extend(message.parts.iter().filter_map(|p| match p {
                Part::Text(t) | Part::Refusal(t) if !t.is_empty() => Some(text_block(t)),
                _ => None,
            })),
            role => {
                let blocks = blocks(message)?;
                match turns.last_mut() {
                    Some((last, existing)) if *last == role => existing.extend(blocks),
                    _ => turns.push((role, blocks)),
                }
            }
        }
    }
    let messages = pair_tool_results(turns);

    let tools: Vec<Value> = request.tools.iter().map(declare).collect();
    let forced = matches!(
        request.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named { .. })
    );
    let mut body = Map::new();
    let mut max_tokens = request
        .max_output_tokens
        .or(options.default_max_tokens.map(u64::from))
        .unwrap_or(FALLBACK_MAX_TOKENS);
    if let Some(cap) = options.max_output_tokens {
        max_tokens = max_tokens.min(u64::from(cap));
    }
    let thinking = match forced {
        // Anthropic refuses thinking next to a forced tool.
        true => None,
        false => thinking(&request.reasoning, options.thinking_mode, &mut max_tokens, options),
    };
    body.insert("max_tokens".into(), Value::from(max_tokens.max(1)));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(request) {
            body.insert("tool_choice".into(), choice);
        }
    }
    let thinking_enabled = thinking.is_some();
    if let Some((thinking, effort)) = thinking {
        body.insert("thinking".into(), thinking);
        if let Some(effort) = effort {
            body.insert("output_config".into(), json!({"effort": effort}));
        }
    }
    if let Some(OutputFormat::JsonSchema { schema, .. }) = &request.format {
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
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if request.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = &request.user {
        body.insert(
            "metadata".into(),
            json!({"user_id": user_id_within(user, USER_ID_MAX_CHARS)}),
        );
    }
    apply_anthropic_fixups(&mut body, options);
    Ok(Encoded {
        thinking_enabled: body.contains_key("thinking"),
        body,
    })
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// The content blocks of one user or assistant message. Reasoning without a signature Anthropic made is
/// dropped: Anthropic rejects unsigned thinking.
fn blocks(message: &Message) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::with_capacity(message.parts.len());
    for part in &message.parts {
        match part {
            Part::Text(t) | Part::Refusal(t) if !t.is_empty() => out.push(text_block(t)),
            // Anthropic's own thinking goes back exactly as it came; anything else cannot be replayed.
            Part::Reasoning(reasoning) => {
                if let Some(Opaque::Anthropic { block }) = &reasoning.opaque {
                    out.push(serde_json::from_str(block.get()).expect("a raw value is JSON"));
                }
            }
            Part::Text(_) | Part::Refusal(_) => {}
            Part::Image { url, .. } => out.push(image_block(url)?),
            Part::File { data_url, filename } => out.push(document_block(data_url, filename.as_deref())?),
            Part::ToolCall(call) => {
                let input = match call.kind {
                    ToolKind::Function => parse_tool_arguments(&call.arguments),
                    ToolKind::Custom => json!({"input": call.arguments}),
                };
                out.push(json!({
                    "type": "tool_use",
                    "id": sanitize_tool_id(&call.id),
                    "name": flat_name(&call.name, call.namespace.as_deref()),
                    "input": input,
                }));
            }
            Part::ToolResult(result) => {
                let mut content = Vec::new();
                for part in &result.content {
                    match part {
                        Part::Text(t) if !t.is_empty() => content.push(text_block(t)),
                        Part::Image { url, .. } => content.push(image_block(url)?),
                        Part::File { data_url, filename } => {
                            content.push(document_block(data_url, filename.as_deref())?)
                        }
                        _ => {}
                    }
                }
                let mut block = json!({"type": "tool_result", "tool_use_id": sanitize_tool_id(&result.call_id),
                    "content": content});
                if result.is_error {
                    block["is_error"] = Value::Bool(true);
                }
                out.push(block);
            }
        }
    }
    Ok(out)
}

/// Each assistant turn's calls are answered by tool results at the start of the next user turn, in the order
/// of the calls; a call without a result gets an error result, and results that answer no call are dropped
/// (Anthropic rejects both orphans).
fn pair_tool_results(turns: Vec<(Role, Vec<Value>)>) -> Vec<Value> {
    let mut out = Vec::with_capacity(turns.len());
    let mut calls: Vec<String> = Vec::new();
    let mut turns = turns.into_iter().peekable();
    while let Some((role, blocks)) = turns.next() {
        match role {
            Role::Assistant => {
                calls = blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str().map(str::to_owned))
                    .collect();
                let blocks = if blocks.is_empty() {
                    vec![text_block("(empty)")]
                } else {
                    blocks
                };
                out.push(json!({"role": "assistant", "content": blocks}));
                if !calls.is_empty() && !matches!(turns.peek(), Some((Role::User, _))) {
                    // The results never came: the next turn starts with them.
                    out.push(json!({"role": "user", "content": results_for(&calls, Vec::new())}));
                    calls.clear();
                }
            }
            _ => {
                let content = results_for(&calls, blocks);
                calls.clear();
                if !content.is_empty() {
                    out.push(json!({"role": "user", "content": content}));
                }
            }
        }
    }
    out
}

/// The blocks of a user turn following `calls`: one result per call, in call order, then the rest.
fn results_for(calls: &[String], blocks: Vec<Value>) -> Vec<Value> {
    let (results, rest): (Vec<Value>, Vec<Value>) = blocks.into_iter().partition(|b| b["type"] == "tool_result");
    let mut out = Vec::with_capacity(calls.len() + rest.len());
    for id in calls {
        match results.iter().find(|r| r["tool_use_id"] == id.as_str()) {
            Some(result) => out.push(result.clone()),
            None => {
                out.push(json!({"type": "tool_result", "tool_use_id": id, "content": INTERRUPTED, "is_error": true}))
            }
        }
    }
    for result in &results {
        if !calls.iter().any(|id| result["tool_use_id"] == id.as_str()) {
            tracing::debug!(tool_use_id = %result["tool_use_id"], "dropping a tool result that answers no call");
        }
    }
    out.extend(rest);
    out
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

fn declare(tool: &Tool) -> Value {
    let schema: Value = match (tool.kind, &tool.parameters) {
        (ToolKind::Custom, _) => serde_json::from_str(CUSTOM_TOOL_SCHEMA).expect("constant JSON"),
        (ToolKind::Function, Some(raw)) => serde_json::from_str(raw.get()).expect("a raw value is JSON"),
        (ToolKind::Function, None) => json!({"type": "object", "properties": {}}),
    };
    let mut out = json!({"name": flat_name(&tool.name, tool.namespace.as_deref()), "input_schema": schema});
    if let Some(description) = &tool.description {
        out["description"] = Value::from(description.as_str());
    }
    if let Some(strict) = tool.strict {
        out["strict"] = Value::Bool(strict);
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
    let ReasoningRequest::Effort(effort) = reasoning else {
        return None;
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
    #[serde(borrow)]
    messages: Vec<InMessage<'a>>,
    #[serde(borrow, default)]
    tools: Vec<InTool<'a>>,
    #[serde(default)]
    tool_choice: Option<InToolChoice>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
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
}

#[derive(serde::Deserialize)]
struct InMessage<'a> {
    role: &'a str,
    #[serde(borrow)]
    content: &'a RawValue,
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

fn invalid(message: impl Into<String>, param: &str) -> ConvertError {
    ConvertError::invalid(message, param)
}

/// Decodes a Messages request body. A `max_tokens` of 0 (Claude Code's cache pre-warm) asks for the least
/// an upstream allows.
pub fn decode(body: &[u8]) -> Result<Request, ConvertError> {
    let body: InBody = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not a valid Messages request: {e}"), "messages"))?;
    let mut instructions = Vec::new();
    if let Some(system) = body.system {
        instructions.extend(texts_of(system, "system")?);
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, message) in body.messages.iter().enumerate() {
        let at = format!("messages.{i}.content");
        let role = match message.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            other => {
                return Err(invalid(
                    format!("messages.{i}.role: unknown role '{other}'"),
                    &format!("messages.{i}.role"),
                ));
            }
        };
        let parts = blocks_of(message.content, &at)?;
        if !parts.is_empty() {
            messages.push(Message { role, parts });
        }
    }
    let tools = body
        .tools
        .into_iter()
        // Server tools (`web_search_20250305`, ...) exist only at Anthropic.
        .filter(|t| t.kind.is_none_or(|k| k == "custom"))
        .filter_map(|t| {
            Some(Tool {
                name: t.name?,
                namespace: None,
                description: t.description,
                kind: ToolKind::Function,
                parameters: t.input_schema.map(|s| s.to_owned()),
                strict: t.strict,
            })
        })
        .collect();
    let (tool_choice, parallel) = match body.tool_choice {
        None => (None, None),
        Some(choice) => {
            let parallel = choice.disable_parallel_tool_use.map(|d| !d);
            let choice = match choice.kind.as_str() {
                "any" => ToolChoice::Required,
                "none" => ToolChoice::None,
                "tool" => ToolChoice::Named {
                    name: choice.name.unwrap_or_default(),
                    namespace: None,
                },
                _ => ToolChoice::Auto,
            };
            (Some(choice), parallel)
        }
    };
    let effort = body.output_config.as_ref().and_then(|c| c.effort.clone());
    let reasoning = match body.thinking {
        Some(thinking) if thinking.kind == "disabled" => ReasoningRequest::Disabled,
        Some(thinking) => ReasoningRequest::Effort(effort.unwrap_or_else(|| {
            match thinking.budget_tokens.unwrap_or(2048) {
                0..=1024 => "low",
                1025..=4096 => "medium",
                _ => "high",
            }
            .to_owned()
        })),
        None => ReasoningRequest::Unspecified,
    };
    let format = body
        .output_config
        .and_then(|c| c.format)
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
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: parallel,
        max_output_tokens: body.max_tokens.map(|n| n.max(16)),
        temperature: body.temperature,
        top_p: body.top_p,
        stop: body.stop_sequences,
        reasoning,
        format,
        stream: body.stream.unwrap_or(false),
        user: body.metadata.and_then(|m| m.user_id),
        prompt_cache_key: None,
    })
}

/// The texts of a string or a list of text blocks.
fn texts_of(raw: &RawValue, at: &str) -> Result<Vec<String>, ConvertError> {
    if raw.get().starts_with('"') {
        let text: String = serde_json::from_str(raw.get()).map_err(|e| invalid(e.to_string(), at))?;
        return Ok(if text.is_empty() { Vec::new() } else { vec![text] });
    }
    let blocks: Vec<Block> = serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at}: {e}"), at))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text)
        .filter(|t| !t.is_empty() && !t.starts_with("x-anthropic-billing-header:"))
        .collect())
}

fn blocks_of(raw: &RawValue, at: &str) -> Result<Vec<Part>, ConvertError> {
    if let Some(parts) = crate::protocol::hub::plain_text(raw, at)? {
        return Ok(parts);
    }
    let blocks: Vec<Block> = serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at}: {e}"), at))?;
    let mut out = Vec::with_capacity(blocks.len());
    for (j, block) in blocks.into_iter().enumerate() {
        let p = format!("{at}.{j}");
        match block.kind {
            "text" => out.extend(block.text.filter(|t| !t.is_empty()).map(Part::Text)),
            "thinking" => out.extend(
                block
                    .thinking
                    .filter(|t| !t.is_empty())
                    .map(|text| Part::Reasoning(crate::protocol::hub::Reasoning { text, opaque: None })),
            ),
            "image" | "document" => out.extend(media(&block, &p)?),
            "tool_use" => out.push(Part::ToolCall(crate::protocol::hub::ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                namespace: None,
                kind: ToolKind::Function,
                arguments: block.input.map_or_else(|| "{}".to_owned(), |i| i.get().to_owned()),
            })),
            "tool_result" => {
                let content = match block.content {
                    Some(raw) => blocks_of(raw, &format!("{p}.content"))?,
                    None => Vec::new(),
                };
                out.push(Part::ToolResult(crate::protocol::hub::ToolResult {
                    call_id: block.tool_use_id.unwrap_or_default(),
                    content,
                    is_error: block.is_error.unwrap_or(false),
                }));
            }
            // redacted_thinking, server tool blocks and unknown blocks have no counterpart.
            _ => {}
        }
    }
    Ok(out)
}

/// An image or document block as a hub part.
fn media(block: &Block<'_>, at: &str) -> Result<Option<Part>, ConvertError> {
    let Some(source) = &block.source else {
        return Err(invalid(format!("{at}.source: field is required"), at));
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
            url: source.url.clone().unwrap_or_default(),
            detail: None,
        },
        ("document", "base64") => Part::File {
            data_url: format!(
                "data:{};base64,{}",
                source.media_type.as_deref().unwrap_or("application/pdf"),
                source.data.as_deref().unwrap_or_default()
            ),
            filename: block.title.clone(),
        },
        ("document", "text") => Part::Text(match &block.title {
            Some(title) => format!("{title}\n{}", source.data.as_deref().unwrap_or_default()),
            None => source.data.clone().unwrap_or_default(),
        }),
        (kind, other) => {
            return Err(ConvertError {
                message: format!("{kind} sources of type '{other}' are not supported by this model's provider"),
                param: Some(at.to_owned()),
                code: Some("unsupported_parameter"),
            });
        }
    };
    Ok(Some(part))
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
