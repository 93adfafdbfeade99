//! Encoding a hub [`Request`] as an Anthropic Messages request (reference §1, Route D), written straight into
//! one buffer (serde structs over borrowed data; tool schemas, tool inputs and replayed thinking copied as
//! raw JSON text): instructions and system messages into `system`, turns merged by role with tool results
//! opening the user turn that follows their calls (a call without a result gets an error result; a result
//! without a call is dropped), media as image and document blocks, tools with their schemas as written,
//! reasoning effort as `thinking` per the deployment's `thinking_mode`. The rules every Anthropic upstream
//! needs (router-minted thinking, the unsigned open tool loop, cache `ttl`, sampling exclusivity, the output
//! cap) are those of `convert::request`, applied here to the typed body before it is written.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Source;
use super::tool_ids::AnthropicToolIds;
use crate::protocol::convert::ids::user_id_within;
use crate::protocol::convert::request::{
    BudgetFit, CACHE_TTL, MIN_THINKING_BUDGET, MINTED_SIGNATURE, MessageView, clamp_max_tokens, drops_top_p,
    is_router_thinking_block, open_tool_loop_lacks_thinking, strip_router_thinking, strip_ttl_in_block,
};
use crate::protocol::convert::tool_calls::RAW_ARGUMENTS_KEY;
use crate::protocol::convert::tool_calls::{JSON_OUTPUT_TOOL, parse_tool_arguments};
use crate::protocol::convert::{ConvertError, ModelOptions, ThinkingMode};
use crate::protocol::fields::Path;
use crate::protocol::hub::{
    DataUrl, Message, Opaque, OutputFormat, Part, Reasoning, ReasoningRequest, Request, Role, Tool, ToolCall,
    ToolChoice, ToolKind, ToolResult,
};
use crate::protocol::responses::tools::flat_name;

/// `max_tokens` is required by Anthropic; this is used when neither the client nor the deployment says.
const FALLBACK_MAX_TOKENS: u64 = 4096;
const USER_ID_MAX_CHARS: usize = 256;
/// Anthropic has no JSON mode; a JSON-object format is asked for in words.
const JSON_OBJECT_INSTRUCTION: &str = "Reply with a single JSON object and nothing else.";
/// The content of an error result for a call whose result never came.
const MISSING_RESULT: &str = "(no result)";
/// The text of a user turn that would otherwise be empty.
const EMPTY_TURN: &str = "(empty)";
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
const CUSTOM_TOOL_SCHEMA: &str = r#"{"type":"object","properties":{"input":{"type":"string"}},"required":["input"]}"#;
const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

fn constant(json: &'static str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("constant JSON")
}

static CUSTOM_SCHEMA: LazyLock<Box<RawValue>> = LazyLock::new(|| constant(CUSTOM_TOOL_SCHEMA));
static EMPTY_SCHEMA: LazyLock<Box<RawValue>> = LazyLock::new(|| constant(EMPTY_OBJECT_SCHEMA));
static EMPTY_INPUT: LazyLock<Box<RawValue>> = LazyLock::new(|| constant("{}"));

/// The upstream body and what its answer's conversion needs to know of it.
pub struct Encoded {
    pub body: Vec<u8>,
    pub thinking_enabled: bool,
    /// A JSON schema output is asked for as a forced call of the `json_output` tool (the deployment has no
    /// `output_config.format`); the answer's call becomes its text.
    pub json_output_tool: bool,
}

/// The request body, in the key order Anthropic's own SDKs write (`model` last, where the tree encoder
/// this replaced appended it).
#[derive(Serialize)]
struct Body<'a> {
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<OutBlock<'a>>,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDecl<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    model: &'a str,
}

impl Body<'_> {
    fn thinking_is_on(&self) -> bool {
        self.thinking
            .as_ref()
            .is_some_and(|t| matches!(t.kind, "enabled" | "adaptive"))
    }

    /// Drops `thinking` and the effort that only makes sense with it (never send effort with thinking
    /// off, §1.1.7).
    fn remove_thinking(&mut self) {
        self.thinking = None;
        if let Some(config) = &mut self.output_config {
            config.effort = None;
            if config.format.is_none() {
                self.output_config = None;
            }
        }
    }
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<OutBlock<'a>>,
}

impl MessageView for Turn<'_> {
    fn role(&self) -> Option<&str> {
        Some(self.role)
    }

    fn has_tool_result(&self) -> bool {
        self.content.iter().any(|b| matches!(b, OutBlock::ToolResult { .. }))
    }

    fn starts_with_thinking(&self) -> bool {
        matches!(self.content.first(), Some(OutBlock::Replayed(_)))
    }

    fn strip_router_thinking(&mut self) -> bool {
        let before = self.content.len();
        self.content
            .retain(|b| !matches!(b, OutBlock::Replayed(raw) if is_router_thinking(raw)));
        self.content.len() != before
    }

    fn has_no_blocks(&self) -> bool {
        self.content.is_empty()
    }
}

/// A content block. Replayed thinking is an opaque Anthropic block (thinking or redacted_thinking), copied
/// as it came.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    Image {
        source: MediaSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    Document {
        source: MediaSource<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Input<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ResultContent<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    #[serde(untagged)]
    Replayed(Cow<'a, RawValue>),
}

fn text_block(text: &str) -> OutBlock<'_> {
    OutBlock::Text {
        text,
        cache_control: None,
    }
}

/// The one cache marker the hub carries; a TTL cannot be carried across protocols.
#[derive(Serialize)]
struct Ephemeral {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MediaSource<'a> {
    Base64 { media_type: String, data: &'a str },
    Url { url: &'a str },
    Text { media_type: &'static str, data: String },
}

/// A tool call's input: the call's argument text when it is an object already, else what
/// [`parse_tool_arguments`] makes of it, or a custom tool's string under `input`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Input<'a> {
    Raw(&'a RawValue),
    Parsed(Value),
    Custom { input: &'a str },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(&'a str),
    Blocks(Vec<OutBlock<'a>>),
}

#[derive(Serialize)]
struct ToolDecl<'a> {
    name: Cow<'a, str>,
    input_schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct Choice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget_tokens: Option<u64>,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<SchemaFormat<'a>>,
}

#[derive(Serialize)]
struct SchemaFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a RawValue,
}

#[derive(Serialize)]
struct Metadata {
    user_id: String,
}

/// Encodes `request` for `model` on a deployment with these options.
pub fn encode(request: &Request, model: &str, options: &ModelOptions) -> Result<Encoded, ConvertError> {
    let mut system: Vec<OutBlock> = request
        .instructions
        .iter()
        .filter(|t| !is_blank(t))
        .map(|t| text_block(t))
        .collect();
    if request.cache_instructions {
        mark_cache_breakpoint(&mut system);
    }
    let mut ids = AnthropicToolIds::default();
    let mut turns: Vec<(Role, Vec<OutBlock>)> = Vec::new();
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
                let blocks = blocks(message, i, &mut ids, options)?;
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

    let mut tools: Vec<ToolDecl> = request.tools.iter().map(|t| declare(t, options)).collect();
    let json_output_tool =
        matches!(request.format, Some(OutputFormat::JsonSchema { .. })) && !options.supports_output_format;
    let mut json_choice = None;
    match &request.format {
        Some(OutputFormat::JsonObject) => system.push(text_block(JSON_OBJECT_INSTRUCTION)),
        Some(OutputFormat::JsonSchema { schema, .. }) if json_output_tool => {
            tools.push(ToolDecl {
                name: Cow::Borrowed(JSON_OUTPUT_TOOL),
                input_schema: schema,
                description: None,
                strict: None,
            });
            json_choice = Some(Choice {
                kind: "tool",
                name: Some(Cow::Borrowed(JSON_OUTPUT_TOOL)),
                disable_parallel_tool_use: None,
            });
        }
        _ => {}
    }
    let choice = json_choice
        .or_else(|| tool_choice(request))
        .filter(|_| !tools.is_empty());
    let forced = choice.as_ref().is_some_and(|c| matches!(c.kind, "any" | "tool"));
    let mut max_tokens = request
        .max_output_tokens
        .or(options.default_max_tokens.map(u64::from))
        .or(options.max_output_tokens.map(u64::from))
        .unwrap_or(FALLBACK_MAX_TOKENS);
    if let Some(cap) = options.max_output_tokens {
        max_tokens = max_tokens.min(u64::from(cap));
    }
    // Anthropic refuses thinking next to a forced tool, and in a tool loop whose turns lack signed thinking.
    let (thinking, effort) = match forced || open_tool_loop_lacks_thinking(&messages) {
        true => (None, None),
        false => thinking(&request.reasoning, options.thinking_mode, &mut max_tokens, options),
    };
    let thinking_enabled = thinking.as_ref().is_some_and(|t| t.kind != "disabled");
    settle_prefill(&mut messages, thinking_enabled);
    let format = match &request.format {
        Some(OutputFormat::JsonSchema { schema, .. }) if !json_output_tool => Some(SchemaFormat {
            kind: "json_schema",
            schema,
        }),
        _ => None,
    };
    let mut body = Body {
        max_tokens: max_tokens.max(1),
        system,
        messages,
        tool_choice: choice,
        tools,
        output_config: (effort.is_some() || format.is_some()).then_some(OutputConfig { effort, format }),
        thinking,
        // With thinking on, Anthropic accepts only its default temperature.
        temperature: request
            .temperature
            .filter(|_| !thinking_enabled)
            .map(|t| t.clamp(0.0, 1.0)),
        top_p: request
            .top_p
            .filter(|top_p| !thinking_enabled || (0.95..=1.0).contains(top_p)),
        top_k: request.top_k,
        stop_sequences: request
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !is_blank(s))
            .collect(),
        stream: request.stream,
        metadata: request.user.as_deref().filter(|u| !u.is_empty()).map(|user| Metadata {
            user_id: user_id_within(user, USER_ID_MAX_CHARS),
        }),
        model,
    };
    apply_rules(&mut body, options);
    Ok(Encoded {
        thinking_enabled: body.thinking.as_ref().is_some_and(|t| t.kind != "disabled"),
        json_output_tool,
        body: crate::protocol::json::to_vec(&body).expect("a Messages request serialises"),
    })
}

/// The rules of `convert::request::apply_anthropic_fixups`, on the typed body. Only replayed thinking can
/// carry a router-minted signature or a cache `ttl`; the encoder writes neither itself.
fn apply_rules(body: &mut Body<'_>, options: &ModelOptions) {
    if strip_router_thinking(&mut body.messages) == Some(true) && body.thinking_is_on() {
        body.remove_thinking();
    }
    if drops_top_p(options, body.temperature.is_some()) {
        body.top_p = None;
    }
    let budget = body
        .thinking
        .as_ref()
        .filter(|t| t.kind == "enabled")
        .and_then(|t| t.budget_tokens);
    if let Some((clamped, fit)) = clamp_max_tokens(body.max_tokens, options.max_output_tokens, budget) {
        body.max_tokens = clamped;
        match fit {
            BudgetFit::Fits => {}
            BudgetFit::TooSmall => body.remove_thinking(),
            BudgetFit::Lowered(lowered) => {
                if let Some(thinking) = &mut body.thinking {
                    thinking.budget_tokens = Some(lowered);
                }
            }
        }
    }
}

/// A replayed block signed by the router. The substring test spares a parse of every real one.
fn is_router_thinking(raw: &RawValue) -> bool {
    MINTED_SIGNATURE.find(raw.get().as_bytes()).is_some()
        && serde_json::from_str::<Value>(raw.get()).is_ok_and(|block| is_router_thinking_block(&block))
}

/// An opaque Anthropic block as it goes back: as it came, unless it holds a cache `ttl` that a
/// non-Anthropic host would reject (§1.3.9).
fn replayed<'a>(block: &'a RawValue, options: &ModelOptions) -> OutBlock<'a> {
    if options.anthropic_native || CACHE_TTL.find(block.get().as_bytes()).is_none() {
        return OutBlock::Replayed(Cow::Borrowed(block));
    }
    let mut tree: Value = serde_json::from_str(block.get()).expect("a raw value is JSON");
    match strip_ttl_in_block(&mut tree) {
        true => OutBlock::Replayed(Cow::Owned(
            serde_json::value::to_raw_value(&tree).expect("a JSON value serialises"),
        )),
        false => OutBlock::Replayed(Cow::Borrowed(block)),
    }
}

/// A cache breakpoint on the last block so far; the TTL cannot be carried across protocols.
fn mark_cache_breakpoint(blocks: &mut [OutBlock<'_>]) {
    let ephemeral = || Some(Ephemeral { kind: "ephemeral" });
    match blocks.last_mut() {
        Some(
            OutBlock::Text { cache_control, .. }
            | OutBlock::Image { cache_control, .. }
            | OutBlock::Document { cache_control, .. }
            | OutBlock::ToolUse { cache_control, .. }
            | OutBlock::ToolResult { cache_control, .. },
        ) => *cache_control = ephemeral(),
        Some(OutBlock::Replayed(raw)) => {
            let mut tree: Value = serde_json::from_str(raw.get()).expect("a raw value is JSON");
            if let Value::Object(block) = &mut tree {
                block.insert("cache_control".into(), serde_json::json!({"type": "ephemeral"}));
                *raw = Cow::Owned(serde_json::value::to_raw_value(&tree).expect("a JSON value serialises"));
            }
        }
        None => {}
    }
}

/// Text Anthropic would reject as content: empty or only whitespace.
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// The content blocks of one user or assistant message (the `i`th). Reasoning without a signature Anthropic
/// made is dropped: Anthropic rejects unsigned thinking.
fn blocks<'a>(
    message: &'a Message,
    i: usize,
    ids: &mut AnthropicToolIds,
    options: &ModelOptions,
) -> Result<Vec<OutBlock<'a>>, ConvertError> {
    let mut out = Vec::with_capacity(message.parts.len());
    for (j, part) in message.parts.iter().enumerate() {
        match part {
            Part::Text(t) | Part::Refusal(t) if !is_blank(t) => out.push(text_block(t)),
            // Anthropic's own thinking goes back exactly as it came; anything else cannot be replayed.
            Part::Reasoning(reasoning) => {
                if let Some(Opaque::Anthropic { block }) = &reasoning.opaque {
                    out.push(replayed(block, options));
                }
            }
            Part::Text(_) | Part::Refusal(_) => {}
            Part::CacheBreakpoint => mark_cache_breakpoint(&mut out),
            Part::Image { url, .. } => out.push(image_block(url)?),
            Part::File { data_url, filename } => out.push(document_block(data_url, filename.as_deref())?),
            Part::ToolCall(call) => out.push(OutBlock::ToolUse {
                id: ids.get(&call.id, || format!("{i}:{j}")),
                name: flat_name(&call.name, call.namespace.as_deref()),
                input: input(call),
                cache_control: None,
            }),
            Part::ToolResult(result) => out.push(tool_result(result, ids.get(&result.call_id, || format!("{i}:{j}")))?),
        }
    }
    Ok(out)
}

/// Anthropic's `input` must be an object: argument text that is one already goes as written (keeping its
/// key order and sparing a parse into a tree); anything else follows [`parse_tool_arguments`].
pub(super) fn input(call: &ToolCall) -> Input<'_> {
    if call.kind == ToolKind::Custom {
        return Input::Custom { input: &call.arguments };
    }
    if call.arguments.trim().is_empty() {
        return Input::Raw(&EMPTY_INPUT);
    }
    match serde_json::from_str::<&RawValue>(&call.arguments) {
        Ok(raw) if raw.get().starts_with('{') => Input::Raw(raw),
        _ => Input::Parsed(parse_tool_arguments(&call.arguments)),
    }
}

/// A tool result: one text is a string; several parts (text or media) are a list of blocks, so their
/// boundaries survive; an empty result has no `content`.
fn tool_result(result: &ToolResult, id: String) -> Result<OutBlock<'_>, ConvertError> {
    let mut texts = result.content.iter().filter_map(|p| match p {
        Part::Text(t) if !is_blank(t) => Some(t.as_str()),
        _ => None,
    });
    let first_text = texts.next();
    let several_texts = texts.next().is_some();
    let media = result
        .content
        .iter()
        .any(|p| matches!(p, Part::Image { .. } | Part::File { .. }));
    let content = if media || several_texts {
        let mut content = Vec::with_capacity(result.content.len());
        for part in &result.content {
            match part {
                Part::Text(t) if !is_blank(t) => content.push(text_block(t)),
                Part::Image { url, .. } => content.push(image_block(url)?),
                Part::File { data_url, filename } => content.push(document_block(data_url, filename.as_deref())?),
                _ => {}
            }
        }
        Some(ResultContent::Blocks(content))
    } else {
        first_text.map(ResultContent::Text)
    };
    Ok(OutBlock::ToolResult {
        tool_use_id: id,
        content,
        is_error: result.is_error,
        cache_control: None,
    })
}

/// Each assistant turn's calls are answered by tool results at the start of the next user turn, in the order
/// of the calls; a call without a result gets an error result, and results that answer no call are dropped
/// (Anthropic rejects both orphans). No user turn is empty, and the conversation opens with a user turn
/// (Anthropic's own API accepts an assistant turn first; Bedrock and other Messages hosts do not).
fn pair_tool_results(turns: Vec<(Role, Vec<OutBlock<'_>>)>) -> Vec<Turn<'_>> {
    let mut out = Vec::with_capacity(turns.len() + 2);
    let mut calls: Vec<String> = Vec::new();
    let mut turns = turns.into_iter().peekable();
    let placeholder = || Turn {
        role: "user",
        content: vec![text_block(EMPTY_TURN)],
    };
    while let Some((role, blocks)) = turns.next() {
        match role {
            Role::Assistant => {
                if out.is_empty() {
                    out.push(placeholder());
                }
                calls = blocks
                    .iter()
                    .filter_map(|b| match b {
                        OutBlock::ToolUse { id, .. } => Some(id.clone()),
                        _ => None,
                    })
                    .collect();
                out.push(Turn {
                    role: "assistant",
                    content: blocks,
                });
                if !calls.is_empty() && !matches!(turns.peek(), Some((Role::User, _))) {
                    // The results never came: the next turn starts with them.
                    out.push(Turn {
                        role: "user",
                        content: results_for(&calls, Vec::new()),
                    });
                    calls.clear();
                }
            }
            Role::User | Role::System => {
                let mut content = results_for(&calls, blocks);
                calls.clear();
                if content.is_empty() {
                    content.push(text_block(EMPTY_TURN));
                }
                out.push(Turn { role: "user", content });
            }
        }
    }
    if out.is_empty() {
        out.push(placeholder());
    }
    out
}

/// The blocks of a user turn following `calls`: one result per call, in call order, then the rest.
fn results_for<'a>(calls: &[String], blocks: Vec<OutBlock<'a>>) -> Vec<OutBlock<'a>> {
    // Most turns answer no call: nothing to pair or drop.
    if calls.is_empty() && !blocks.iter().any(|b| matches!(b, OutBlock::ToolResult { .. })) {
        return blocks;
    }
    let (results, rest): (Vec<OutBlock>, Vec<OutBlock>) = blocks
        .into_iter()
        .partition(|b| matches!(b, OutBlock::ToolResult { .. }));
    let mut results: Vec<Option<OutBlock>> = results.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(calls.len() + rest.len());
    for id in calls {
        let answer = results
            .iter_mut()
            .find(|r| matches!(r, Some(OutBlock::ToolResult { tool_use_id, .. }) if tool_use_id == id))
            .and_then(Option::take);
        out.push(answer.unwrap_or_else(|| OutBlock::ToolResult {
            tool_use_id: id.clone(),
            content: Some(ResultContent::Text(MISSING_RESULT)),
            is_error: true,
            cache_control: None,
        }));
    }
    for result in results.into_iter().flatten() {
        if let OutBlock::ToolResult { tool_use_id, .. } = result {
            tracing::debug!(%tool_use_id, "dropping a tool result that answers no call");
        }
    }
    out.extend(rest);
    out
}

/// A final assistant turn (a prefill) may not end in whitespace, and cannot be combined with thinking, in
/// which case it is dropped.
fn settle_prefill(messages: &mut Vec<Turn<'_>>, thinking_on: bool) {
    if messages.last().is_none_or(|m| m.role != "assistant") {
        return;
    }
    if thinking_on {
        messages.pop();
        return;
    }
    if let Some(OutBlock::Text { text, .. }) = messages.last_mut().and_then(|m| m.content.last_mut()) {
        *text = text.trim_end();
    }
}

/// A base64 `data:` URL split into media type and data.
fn data_url(url: &str) -> Option<(String, &str)> {
    DataUrl::parse(url).filter(|d| d.base64).map(|d| (d.media_type, d.data))
}

fn image_block(url: &str) -> Result<OutBlock<'_>, ConvertError> {
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
        return Ok(OutBlock::Image {
            source: MediaSource::Base64 { media_type, data },
            cache_control: None,
        });
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(OutBlock::Image {
            source: MediaSource::Url { url },
            cache_control: None,
        });
    }
    Err(ConvertError::invalid(
        "image URLs must be http(s) URLs or base64 data URLs",
        "input",
    ))
}

fn document_block<'a>(url: &'a str, filename: Option<&'a str>) -> Result<OutBlock<'a>, ConvertError> {
    let Some((media_type, data)) = data_url(url) else {
        return Err(ConvertError::invalid("file_data must be a base64 data URL", "input"));
    };
    let source = match media_type.as_str() {
        "application/pdf" => MediaSource::Base64 { media_type, data },
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
            MediaSource::Text {
                media_type: "text/plain",
                data: text,
            }
        }
    };
    Ok(OutBlock::Document {
        source,
        title: filename,
        cache_control: None,
    })
}

fn declare<'a>(tool: &'a Tool, options: &ModelOptions) -> ToolDecl<'a> {
    let input_schema: &RawValue = match (tool.kind, &tool.parameters) {
        (ToolKind::Custom, _) => &CUSTOM_SCHEMA,
        (ToolKind::Function, Some(raw)) => raw,
        (ToolKind::Function, None) => &EMPTY_SCHEMA,
    };
    ToolDecl {
        name: Cow::Owned(flat_name(&tool.name, tool.namespace.as_deref())),
        input_schema,
        description: tool.description.as_deref(),
        // `strict` belongs to Anthropic's structured outputs; hosts without them may reject the field.
        strict: (tool.strict == Some(true) && options.supports_output_format).then_some(true),
    }
}

fn tool_choice(request: &Request) -> Option<Choice<'_>> {
    let (kind, name) = match &request.tool_choice {
        None | Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::None) => ("none", None),
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Named { name, namespace }) => {
            ("tool", Some(Cow::Owned(flat_name(name, namespace.as_deref()))))
        }
    };
    let disable_parallel = request.parallel_tool_calls == Some(false) && kind != "none";
    if !disable_parallel && request.tool_choice.is_none() {
        return None;
    }
    Some(Choice {
        kind,
        name,
        disable_parallel_tool_use: disable_parallel.then_some(true),
    })
}

/// The `thinking` object (and an adaptive effort) for a reasoning effort, with `max_tokens` made room for a
/// budget; no `thinking` when it stays off.
fn thinking(
    reasoning: &ReasoningRequest,
    mode: ThinkingMode,
    max_tokens: &mut u64,
    options: &ModelOptions,
) -> (Option<Thinking>, Option<&'static str>) {
    let switch = |kind| Thinking {
        kind,
        budget_tokens: None,
    };
    let effort = match (reasoning, mode) {
        (_, ThinkingMode::None) | (ReasoningRequest::Unspecified, _) => return (None, None),
        // Said explicitly, so that the upstream's default cannot switch it on.
        (ReasoningRequest::Disabled, _) => return (Some(switch("disabled")), None),
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
        ThinkingMode::None => (None, None),
        ThinkingMode::Adaptive => (Some(switch("adaptive")), Some(level)),
        ThinkingMode::Budget => {
            let cap = options.max_output_tokens.map_or(u64::MAX, u64::from);
            if budget >= *max_tokens {
                *max_tokens = (budget + budget.min(4096)).min(cap);
            }
            let budget = budget.min(max_tokens.saturating_sub(1));
            let thinking = (budget >= MIN_THINKING_BUDGET).then_some(Thinking {
                kind: "enabled",
                budget_tokens: Some(budget),
            });
            (thinking, None)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Messages request (an Anthropic client on another protocol's upstream)
//
// The body is read in one typed pass: message content (a string or a list of blocks, nested in tool results)
// is a one-pass visitor, not raw JSON read again per level. Paths for errors are built only for an error: a
// malformed body is parsed a second time with the path tracked, to name the offending field.

#[derive(serde::Deserialize)]
struct InBody<'a> {
    #[serde(borrow, default)]
    system: Option<InContent<'a>>,
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
    content: Option<InContent<'a>>,
}

/// Content as Messages carries it (a message's, a system prompt's, a tool result's): a string or a list of
/// blocks. `null` reads as no content.
enum InContent<'a> {
    Text(String),
    Blocks(Vec<InBlock<'a>>),
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for InContent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ContentVisitor<'a> {
            type Value = InContent<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(InContent::Text(text.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(InContent::Text(text))
            }

            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(InContent::Blocks(blocks))
            }
        }

        deserializer.deserialize_any(ContentVisitor(std::marker::PhantomData))
    }
}

/// A request content block: the fields every kind of block may have.
#[derive(serde::Deserialize)]
struct InBlock<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    tool_use_id: Option<String>,
    /// A tool result's or a `mid_conv_system` block's content, or a search result's text blocks.
    #[serde(borrow, default)]
    content: Option<InContent<'a>>,
    #[serde(default)]
    is_error: Option<bool>,
    /// A media block's source; a search result's is a string, so it is read by kind.
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(default)]
    cache_control: Option<serde::de::IgnoredAny>,
    /// A `tool_reference` block's tool.
    #[serde(default)]
    tool_name: Option<String>,
    #[serde(default)]
    title: Option<String>,
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

fn missing(at: &Path) -> ConvertError {
    invalid(format!("{at}: field required"), &at.to_string())
}

/// The error for a body that does not parse, naming the field: the body is parsed again with the path
/// tracked, which only a malformed request pays for.
fn parse_error(body: &[u8]) -> ConvertError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = match serde_path_to_error::deserialize::<_, InBody>(&mut deserializer) {
        Ok(_) => return invalid("request body is not a valid Messages request", "messages"),
        Err(error) => error,
    };
    let mut field = String::new();
    for segment in error.path() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            _ => {}
        }
    }
    let inner = error.into_inner();
    if field.is_empty() {
        return invalid(
            format!("request body is not a valid Messages request: {inner}"),
            "messages",
        );
    }
    if inner.to_string().contains("missing field `type`") {
        field.push_str(".type");
    }
    invalid(format!("{field}: {inner}"), &field)
}

/// Decodes a Messages request body. A `max_tokens` of 0 (Claude Code's cache pre-warm) stays 0 for
/// [`crate::protocol::hub::convert_request`] to see. Error params name the field as OpenAI does
/// (`messages[0].content`).
pub fn decode(body: &[u8]) -> Result<Request, ConvertError> {
    let body: InBody = crate::protocol::json::parse(body).map_err(|_| parse_error(body))?;
    let max_tokens = match body.max_tokens {
        None => return Err(missing(&Path::Root.key("max_tokens"))),
        Some(n) => serde_json::from_str::<u64>(n.get()).map_err(|_| {
            invalid(
                format!("max_tokens: must be a positive integer, got {}", n.get()),
                "max_tokens",
            )
        })?,
    };
    let list = body.messages.ok_or_else(|| missing(&Path::Root.key("messages")))?;
    if list.is_empty() {
        return Err(invalid("messages: at least one message is required", "messages"));
    }
    let mut messages = Vec::with_capacity(list.len());
    let mut instructions = Vec::new();
    let mut cache_instructions = false;
    if let Some(system) = body.system {
        for part in system_parts(system) {
            match part {
                Part::Text(text) => instructions.push(text),
                _ => cache_instructions = true,
            }
        }
    }
    let last = list.len() - 1;
    let root = Path::Root;
    let list_path = root.key("messages");
    for (i, message) in list.into_iter().enumerate() {
        let at = list_path.index(i);
        let role = match message.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "system" => Role::System,
            other => {
                let at = at.key("role").to_string();
                return Err(invalid(format!("{at}: unknown role '{other}'"), &at));
            }
        };
        let at = at.key("content");
        let content = message.content.ok_or_else(|| missing(&at))?;
        let start = messages.len();
        match role {
            Role::System => messages.push(Message {
                role,
                parts: system_parts(content),
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
            name: tool
                .name
                .ok_or_else(|| missing(&root.key("tools").index(i).key("name")))?,
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
                    name: choice
                        .name
                        .ok_or_else(|| missing(&root.key("tool_choice").key("name")))?,
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
fn system_parts(content: InContent<'_>) -> Vec<Part> {
    let blocks = match content {
        InContent::Text(text) if text.is_empty() => return Vec::new(),
        InContent::Text(text) => return vec![Part::Text(text)],
        InContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
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
    parts
}

/// One user or assistant message's blocks as hub messages: usually one, but a `mid_conv_system` block
/// (Claude Code) splits the turn around a system message at its position.
fn read_turn(role: Role, content: InContent<'_>, at: &Path, out: &mut Vec<Message>) -> Result<(), ConvertError> {
    let mut parts = Vec::new();
    match content {
        InContent::Text(text) => parts.extend((!text.is_empty()).then_some(Part::Text(text))),
        InContent::Blocks(blocks) => {
            parts.reserve(blocks.len());
            for (j, mut block) in blocks.into_iter().enumerate() {
                let at = at.index(j);
                if block.kind != "mid_conv_system" {
                    read_block(block, &at, &mut parts)?;
                    continue;
                }
                if !parts.is_empty() {
                    out.push(Message {
                        role,
                        parts: std::mem::take(&mut parts),
                    });
                }
                let content = block.content.take().ok_or_else(|| missing(&at.key("content")))?;
                out.push(Message {
                    role: Role::System,
                    parts: system_parts(content),
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
fn read_block(block: InBlock<'_>, at: &Path, out: &mut Vec<Part>) -> Result<(), ConvertError> {
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
        "search_result" => out.push(Part::Text(search_result_text(block))),
        // Claude Code's tool search: tell the model which tool became available.
        "tool_reference" => out.push(Part::Text(format!(
            "Tool loaded: {}",
            block.tool_name.unwrap_or_default()
        ))),
        "tool_use" => out.push(Part::ToolCall(ToolCall {
            id: block.id.ok_or_else(|| missing(&at.key("id")))?,
            name: block.name.ok_or_else(|| missing(&at.key("name")))?,
            namespace: None,
            kind: ToolKind::Function,
            arguments: arguments_text(block.input),
        })),
        "tool_result" => {
            let mut content = Vec::new();
            match block.content {
                None => {}
                Some(InContent::Text(text)) => content.extend((!text.is_empty()).then_some(Part::Text(text))),
                Some(InContent::Blocks(items)) => {
                    let at = at.key("content");
                    for (k, item) in items.into_iter().enumerate() {
                        read_block(item, &at.index(k), &mut content)?;
                    }
                }
            }
            out.push(Part::ToolResult(ToolResult {
                call_id: block.tool_use_id.ok_or_else(|| missing(&at.key("tool_use_id")))?,
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
fn search_result_text(block: InBlock<'_>) -> String {
    let source = block.source.and_then(|s| serde_json::from_str::<String>(s.get()).ok());
    let mut lines: Vec<String> = block.title.into_iter().chain(source).collect();
    match block.content {
        Some(InContent::Text(text)) => lines.push(text),
        Some(InContent::Blocks(blocks)) => lines.extend(blocks.into_iter().filter_map(|b| b.text)),
        None => {}
    }
    lines.join("\n")
}

/// An image or document block as hub parts.
fn media(block: &InBlock<'_>, at: &Path, out: &mut Vec<Part>) -> Result<(), ConvertError> {
    let sp = at.key("source");
    let raw = block.source.ok_or_else(|| missing(&sp))?;
    let source: Source = serde_json::from_str(raw.get()).map_err(|e| {
        let field = match e.to_string().contains("missing field `type`") {
            true => sp.key("type").to_string(),
            false => sp.to_string(),
        };
        invalid(format!("{field}: {e}"), &field)
    })?;
    let unsupported = |message: String| ConvertError {
        message,
        param: Some(sp.key("type").to_string()),
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
            let cp = sp.key("content");
            let content = source.content.ok_or_else(|| missing(&cp))?;
            let content: InContent =
                serde_json::from_str(content.get()).map_err(|e| invalid(format!("{cp}: {e}"), &cp.to_string()))?;
            match content {
                InContent::Text(text) => out.extend((!text.is_empty()).then_some(Part::Text(text))),
                InContent::Blocks(items) => {
                    for (k, item) in items.into_iter().enumerate() {
                        if matches!(item.kind, "text" | "image") {
                            read_block(item, &cp.index(k), out)?;
                        }
                    }
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
                &sp.key("type").to_string(),
            ));
        }
    };
    out.push(part);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::convert::request::ROUTER_SIGNATURE_PREFIX;
    use crate::protocol::responses::request::decode;
    use serde_json::json;

    fn encode_json(body: &[u8], options: &ModelOptions) -> Value {
        let encoded = encode(&decode(body, b"key").unwrap().request, "m", options).unwrap();
        serde_json::from_slice(&encoded.body).unwrap()
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

    fn call(arguments: &str) -> Part {
        Part::ToolCall(ToolCall {
            id: "toolu_1".into(),
            name: "f".into(),
            namespace: None,
            kind: ToolKind::Function,
            arguments: arguments.into(),
        })
    }

    fn open_loop(assistant: Vec<Part>) -> Request {
        Request {
            messages: vec![
                Message {
                    role: Role::User,
                    parts: vec![Part::Text("go".into())],
                },
                Message {
                    role: Role::Assistant,
                    parts: assistant,
                },
                Message {
                    role: Role::User,
                    parts: vec![Part::ToolResult(ToolResult {
                        call_id: "toolu_1".into(),
                        content: vec![Part::Text("ok".into())],
                        is_error: false,
                    })],
                },
            ],
            reasoning: ReasoningRequest::Effort("high".into()),
            ..Request::default()
        }
    }

    #[test]
    fn replayed_router_thinking_is_stripped_and_the_open_loop_then_goes_without_thinking() {
        let signature = crate::protocol::convert::request::mint_thinking_signature(b"key", "plan");
        let block = json!({"type": "thinking", "thinking": "plan", "signature": signature});
        let minted = Part::Reasoning(Reasoning {
            text: "plan".into(),
            opaque: Some(Opaque::Anthropic {
                block: serde_json::value::to_raw_value(&block).unwrap(),
            }),
        });
        let encoded = encode(&open_loop(vec![minted, call("{}")]), "m", &ModelOptions::default()).unwrap();
        let sent = String::from_utf8(encoded.body).unwrap();
        assert!(!encoded.thinking_enabled);
        assert!(
            !sent.contains(ROUTER_SIGNATURE_PREFIX) && !sent.contains("\"thinking\""),
            "{sent}"
        );
    }

    #[test]
    fn tool_inputs_are_objects_and_keep_the_argument_text() {
        let input = |arguments: &str| {
            let encoded = encode(&open_loop(vec![call(arguments)]), "m", &ModelOptions::default()).unwrap();
            let sent: Value = serde_json::from_slice(&encoded.body).unwrap();
            (
                String::from_utf8(encoded.body).unwrap(),
                sent["messages"][1]["content"][0]["input"].clone(),
            )
        };
        let (sent, _) = input(r#"{"zeta": 1, "alpha": [2]}"#);
        assert!(sent.contains(r#""input":{"zeta": 1, "alpha": [2]}"#), "{sent}");
        assert_eq!(input(" ").1, json!({}));
        assert_eq!(input("[1]").1, json!({"_raw_arguments": "[1]"}));
        assert_eq!(input(r#"{"a":"#).1, json!({"_raw_arguments": "{\"a\":"}));
    }
}
