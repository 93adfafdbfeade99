//! Route A request: OpenAI Chat Completions → Anthropic Messages (§1.1).
//!
//! The walk has three stages: each OpenAI message becomes a provisional turn (§1.1.2 roles, §1.1.6 parts),
//! the turns are normalised into what the Messages API accepts (merging, tool-result pairing, no empty
//! turns), and the top-level fields are settled together, because thinking, tool choice, `max_tokens` and
//! sampling constrain one another (§1.1.4, §1.1.7).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::anthropic_rules::{MIN_THINKING_BUDGET, open_tool_loop_lacks_thinking};
use super::fields::{
    Path, as_object, get, invalid_type, invalid_value, missing, opt_array, opt_bool, opt_f64, opt_i64, opt_object,
    opt_str, req_str, unsupported_parameter, unsupported_value,
};
use super::tool_ids::AnthropicToolIds;
use super::{ConvertedRequest, RequestFacts, clamp_max_tokens, is_blank, parse_body, tool_schema};
use crate::protocol::convert::ids::user_id_within;
use crate::protocol::convert::signature::is_router_minted_signature;
use crate::protocol::convert::tool_calls::{JSON_OUTPUT_TOOL, parse_tool_arguments};
use crate::protocol::convert::{ConvertContext, ConvertError, ModelOptions, ThinkingMode};

/// `max_tokens` when neither the client nor the deployment gives one: accepted by every Claude model.
const FALLBACK_MAX_TOKENS: u64 = 4096;
/// Placeholder for a user turn that ends up with no content (the API rejects empty turns).
const EMPTY_TURN_TEXT: &str = "(empty)";
/// Result inserted for a tool call the client history never answered (an interrupted tool call).
const MISSING_RESULT_TEXT: &str = "(no result)";
const JSON_OBJECT_INSTRUCTION: &str = "Reply with a single JSON object and nothing else.";
/// Longer user ids are hashed (§1.1.1).
const USER_ID_MAX_CHARS: usize = 256;
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
/// Anthropic only accepts `top_p` in this range while thinking (§1.1.1).
const THINKING_TOP_P: std::ops::RangeInclusive<f64> = 0.95..=1.0;

/// Converts an OpenAI Chat Completions request body into an Anthropic Messages body for `ctx.upstream_model`.
pub fn openai_to_anthropic(body: &[u8], ctx: &ConvertContext) -> Result<ConvertedRequest, ConvertError> {
    let root = parse_body(body)?;
    let req = as_object(&root, &Path::Root)?;
    let options = ctx.options;
    let at = Path::Root;
    reject_unsupported_outputs(req)?;

    let stream = opt_bool(req, "stream", &at)?.unwrap_or(false);
    let include_usage = match opt_object(req, "stream_options", &at)? {
        Some(stream_options) => opt_bool(stream_options, "include_usage", &at.key("stream_options"))?,
        None => None,
    };

    let (mut system, turns) = convert_messages(req)?;
    let mut messages: Vec<Value> = turns.into_iter().map(Turn::into_message).collect();

    let mut tools = convert_tools(req, options)?;
    let ToolChoice { mut kind, allowed } = convert_tool_choice(req)?;
    if let Some(allowed) = allowed {
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            allowed.iter().any(|a| a == name)
        });
    }

    let mut output_config = Map::new();
    let mut json_output_tool = false;
    match convert_response_format(req)? {
        ResponseFormat::Text => {}
        ResponseFormat::JsonObject => system.push(text_block(JSON_OBJECT_INSTRUCTION)),
        ResponseFormat::JsonSchema(schema) if options.supports_output_format => {
            output_config.insert("format".to_owned(), json!({"type": "json_schema", "schema": schema}));
        }
        ResponseFormat::JsonSchema(schema) => {
            tools.push(json!({"name": JSON_OUTPUT_TOOL, "input_schema": schema}));
            kind = ChoiceKind::Tool(JSON_OUTPUT_TOOL.to_owned());
            json_output_tool = true;
        }
    }
    let parallel_disabled = opt_bool(req, "parallel_tool_calls", &at)? == Some(false);
    // Without tools the API rejects `tool_choice`, so neither is sent (§1.1.5).
    let tool_choice = if tools.is_empty() {
        None
    } else {
        kind.to_anthropic(parallel_disabled)
    };
    let forced_tool = matches!(kind, ChoiceKind::Any | ChoiceKind::Tool(_)) && tool_choice.is_some();

    let mut max_tokens = requested_max_tokens(req, options)?;
    let thinking = settle_thinking(
        requested_thinking(req, options)?,
        forced_tool,
        open_tool_loop_lacks_thinking(&messages),
        &mut max_tokens,
        options,
    );
    settle_prefill(&mut messages, thinking.is_on());

    let mut temperature = opt_f64(req, "temperature", &at)?.map(|t| t.clamp(0.0, 1.0));
    let mut top_p = opt_f64(req, "top_p", &at)?;
    if thinking.is_on() {
        temperature = None;
        top_p = top_p.filter(|p| THINKING_TOP_P.contains(p));
    }
    if options.sampling_exclusive && temperature.is_some() {
        top_p = None;
    }

    let mut out = Map::new();
    out.insert("model".to_owned(), Value::from(ctx.upstream_model));
    out.insert("max_tokens".to_owned(), Value::from(max_tokens));
    if !system.is_empty() {
        out.insert("system".to_owned(), Value::Array(system));
    }
    out.insert("messages".to_owned(), Value::Array(messages));
    if !tools.is_empty() {
        out.insert("tools".to_owned(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            out.insert("tool_choice".to_owned(), choice);
        }
    }
    match thinking {
        Thinking::Absent => {}
        Thinking::Disabled => {
            out.insert("thinking".to_owned(), json!({"type": "disabled"}));
        }
        Thinking::Budget(budget) => {
            out.insert(
                "thinking".to_owned(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
        Thinking::Adaptive(effort) => {
            out.insert("thinking".to_owned(), json!({"type": "adaptive"}));
            output_config.insert("effort".to_owned(), Value::from(effort));
        }
    }
    if !output_config.is_empty() {
        out.insert("output_config".to_owned(), Value::Object(output_config));
    }
    if let Some(t) = temperature {
        out.insert("temperature".to_owned(), Value::from(t));
    }
    if let Some(p) = top_p {
        out.insert("top_p".to_owned(), Value::from(p));
    }
    let stop = stop_sequences(req)?;
    if !stop.is_empty() {
        out.insert("stop_sequences".to_owned(), Value::from(stop));
    }
    if stream {
        out.insert("stream".to_owned(), Value::Bool(true));
    }
    if let Some(user_id) = user_id(req)? {
        out.insert("metadata".to_owned(), json!({"user_id": user_id}));
    }

    Ok(ConvertedRequest {
        body: out,
        facts: RequestFacts {
            stream,
            include_usage: stream && include_usage == Some(true),
            json_output_tool,
            thinking_enabled: thinking.is_on(),
            ..RequestFacts::default()
        },
    })
}

/// Fields whose loss would change what the client gets back (§1.1.10).
fn reject_unsupported_outputs(req: &Map<String, Value>) -> Result<(), ConvertError> {
    let at = Path::Root;
    if let Some(n) = opt_i64(req, "n", &at)?
        && n > 1
    {
        return Err(unsupported_value(
            &at.key("n"),
            "Only one choice can be generated with this model ('n' must be 1).",
        ));
    }
    if get(req, "audio").is_some() {
        return Err(unsupported_parameter(
            &at.key("audio"),
            "Audio output is not supported with this model.",
        ));
    }
    if let Some(modalities) = opt_array(req, "modalities", &at)?
        && modalities.iter().any(|m| m.as_str() == Some("audio"))
    {
        return Err(unsupported_value(
            &at.key("modalities"),
            "Audio output is not supported with this model.",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Messages (§1.1.2, §1.1.6)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

/// One Anthropic turn under construction.
#[derive(Debug)]
struct Turn {
    role: Role,
    blocks: Vec<Value>,
}

impl Turn {
    fn user(blocks: Vec<Value>) -> Self {
        Turn {
            role: Role::User,
            blocks,
        }
    }

    fn into_message(self) -> Value {
        let role = match self.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        json!({"role": role, "content": self.blocks})
    }
}

/// Ids for the legacy `function_call` / `role:"function"` pair, which has no ids of its own.
#[derive(Default)]
struct LegacyCalls {
    count: usize,
    last: Option<String>,
}

impl LegacyCalls {
    fn next_id(&mut self) -> String {
        let id = format!("toolu_legacy_{}", self.count);
        self.count += 1;
        self.last = Some(id.clone());
        id
    }
}

/// The top-level `system` blocks and the normalised turns.
fn convert_messages(req: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Turn>), ConvertError> {
    let at = Path::Root;
    let list_path = at.key("messages");
    let list = opt_array(req, "messages", &at)?.ok_or_else(|| missing(&list_path))?;
    if list.is_empty() {
        return Err(invalid_value(
            &list_path,
            "'messages' must contain at least one message.",
        ));
    }
    let mut system = Vec::new();
    let mut turns = Vec::with_capacity(list.len());
    let mut ids = AnthropicToolIds::default();
    let mut legacy = LegacyCalls::default();
    for (i, message) in list.iter().enumerate() {
        let p = list_path.index(i);
        let obj = as_object(message, &p)?;
        let content = get(obj, "content");
        match req_str(obj, "role", &p)? {
            "system" | "developer" => system.extend(text_only_blocks(content, &p, false)?),
            "user" => turns.push(Turn::user(user_blocks(content, &p)?)),
            "assistant" => turns.push(Turn {
                role: Role::Assistant,
                blocks: assistant_blocks(obj, &p, i, &mut ids, &mut legacy)?,
            }),
            "tool" => {
                let id = ids.get(req_str(obj, "tool_call_id", &p)?, || format!("{i}:0"));
                turns.push(Turn::user(vec![tool_result_block(id, content, &p)?]));
            }
            "function" => {
                // Answers the most recent legacy call; without one it is an orphan, dropped below.
                let id = legacy.last.clone().unwrap_or_else(|| "toolu_legacy_orphan".to_owned());
                turns.push(Turn::user(vec![tool_result_block(id, content, &p)?]));
            }
            other => {
                return Err(invalid_value(
                    &p.key("role"),
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'system', 'developer', 'user', \
                         'assistant', 'tool', and 'function'."
                    ),
                ));
            }
        }
    }
    Ok((system, normalise_turns(turns)))
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// `system`/`developer` content, or assistant content when `allow_refusal`: a string or text parts.
fn text_only_blocks(content: Option<&Value>, at: &Path, allow_refusal: bool) -> Result<Vec<Value>, ConvertError> {
    let cp = at.key("content");
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(non_blank_text(s).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let pp = cp.index(j);
                let obj = as_object(part, &pp)?;
                let text = match req_str(obj, "type", &pp)? {
                    "text" => req_str(obj, "text", &pp)?,
                    "refusal" if allow_refusal => req_str(obj, "refusal", &pp)?,
                    other => {
                        return Err(invalid_value(
                            &pp.key("type"),
                            format!("Invalid content part type '{other}' for this message role."),
                        ));
                    }
                };
                if let Some(block) = non_blank_text(text) {
                    blocks.push(with_cache_breakpoint(block, obj));
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid_type(&cp, "a string or an array of content parts")),
    }
}

fn non_blank_text(text: &str) -> Option<Value> {
    (!is_blank(text)).then(|| text_block(text))
}

/// OpenAI's explicit cache breakpoint on a part becomes an Anthropic cache marker; the TTL cannot be
/// expressed portably, so none is sent (§1.1.6).
fn with_cache_breakpoint(mut block: Value, part: &Map<String, Value>) -> Value {
    let explicit = get(part, "prompt_cache_breakpoint")
        .and_then(|b| b.get("mode"))
        .and_then(Value::as_str)
        == Some("explicit");
    if explicit && let Some(obj) = block.as_object_mut() {
        obj.insert("cache_control".to_owned(), json!({"type": "ephemeral"}));
    }
    block
}

fn user_blocks(content: Option<&Value>, at: &Path) -> Result<Vec<Value>, ConvertError> {
    let cp = at.key("content");
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(non_blank_text(s).into_iter().collect()),
        Some(Value::Array(parts)) => media_parts(parts, &cp),
        Some(_) => Err(invalid_type(&cp, "a string or an array of content parts")),
    }
}

fn media_parts(parts: &[Value], at: &Path) -> Result<Vec<Value>, ConvertError> {
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        if let Some(block) = media_part(part, &at.index(j))? {
            blocks.push(block);
        }
    }
    Ok(blocks)
}

/// One user (or tool-result) content part; `None` for parts that are dropped (empty text).
fn media_part(part: &Value, at: &Path) -> Result<Option<Value>, ConvertError> {
    let obj = as_object(part, at)?;
    let block = match req_str(obj, "type", at)? {
        "text" => match non_blank_text(req_str(obj, "text", at)?) {
            Some(block) => block,
            None => return Ok(None),
        },
        "image_url" => image_block(obj, at)?,
        "file" => file_block(obj, at)?,
        "input_audio" => {
            return Err(unsupported_value(
                &at.key("type"),
                "Audio input ('input_audio' content parts) is not supported with this model.",
            ));
        }
        other => {
            return Err(invalid_value(
                &at.key("type"),
                format!("Invalid content part type '{other}'."),
            ));
        }
    };
    Ok(Some(with_cache_breakpoint(block, obj)))
}

/// A `data:` URL split into its media type and payload.
struct DataUrl<'a> {
    media_type: String,
    base64: bool,
    data: &'a str,
}

impl<'a> DataUrl<'a> {
    fn parse(url: &'a str) -> Option<Self> {
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

fn image_block(part: &Map<String, Value>, at: &Path) -> Result<Value, ConvertError> {
    let ip = at.key("image_url");
    let url = match get(part, "image_url") {
        // Some clients send the URL directly instead of `{"url": …}`.
        Some(Value::String(url)) => url.as_str(),
        Some(Value::Object(image)) => req_str(image, "url", &ip)?,
        Some(_) => return Err(invalid_type(&ip, "an object")),
        None => return Err(missing(&ip)),
    };
    if let Some(data_url) = DataUrl::parse(url) {
        // `image/jpg` is a common misspelling that the API would reject.
        let media_type = match data_url.media_type.as_str() {
            "image/jpg" => "image/jpeg",
            other => other,
        };
        if !IMAGE_MEDIA_TYPES.contains(&media_type) {
            return Err(unsupported_value(
                &ip,
                format!(
                    "Image media type '{media_type}' is not supported with this model; use image/jpeg, \
                     image/png, image/gif or image/webp."
                ),
            ));
        }
        if !data_url.base64 {
            return Err(unsupported_value(&ip, "Image data URLs must be base64-encoded."));
        }
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data_url.data}
        }));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("http" | "https")) {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(invalid_value(
        &ip,
        "Image URLs must be http(s) URLs or base64 data URLs.",
    ))
}

fn file_block(part: &Map<String, Value>, at: &Path) -> Result<Value, ConvertError> {
    let fp = at.key("file");
    let file = opt_object(part, "file", at)?.ok_or_else(|| missing(&fp))?;
    let title = opt_str(file, "filename", &fp)?;
    let Some(file_data) = opt_str(file, "file_data", &fp)? else {
        if get(file, "file_id").is_some() {
            return Err(unsupported_value(
                &fp.key("file_id"),
                "OpenAI file ids cannot be resolved by this model's provider; send the file inline as \
                 'file_data'.",
            ));
        }
        return Err(missing(&fp.key("file_data")));
    };
    let mut block = match DataUrl::parse(file_data) {
        Some(url) if url.media_type == "application/pdf" && url.base64 => json!({
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": url.data}
        }),
        Some(url) if url.media_type == "text/plain" => {
            let text = if url.base64 {
                STANDARD
                    .decode(url.data.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        invalid_value(
                            &fp.key("file_data"),
                            "'file_data' is not valid base64-encoded UTF-8 text.",
                        )
                    })?
            } else {
                url.data.to_owned()
            };
            json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}})
        }
        Some(url) => {
            return Err(unsupported_value(
                &fp.key("file_data"),
                format!(
                    "File type '{}' is not supported with this model; send a PDF or plain text.",
                    url.media_type
                ),
            ));
        }
        // Bare base64 without a data-URL header: Chat Completions only takes PDFs as files.
        None => json!({
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": file_data}
        }),
    };
    if let (Some(title), Some(obj)) = (title, block.as_object_mut()) {
        obj.insert("title".to_owned(), Value::from(title));
    }
    Ok(block)
}

/// Assistant turn: replayed thinking, text (content, refusal), then one `tool_use` per call (§1.1.2).
fn assistant_blocks(
    obj: &Map<String, Value>,
    at: &Path,
    message_index: usize,
    ids: &mut AnthropicToolIds,
    legacy: &mut LegacyCalls,
) -> Result<Vec<Value>, ConvertError> {
    let mut blocks = Vec::new();
    if let Some(thinking) = replayed_thinking(obj, at)? {
        blocks.push(thinking);
    }
    blocks.extend(text_only_blocks(get(obj, "content"), at, true)?);
    if let Some(refusal) = opt_str(obj, "refusal", at)?.and_then(non_blank_text) {
        blocks.push(refusal);
    }
    if let Some(calls) = opt_array(obj, "tool_calls", at)? {
        let cp = at.key("tool_calls");
        for (j, call) in calls.iter().enumerate() {
            let p = cp.index(j);
            let call = as_object(call, &p)?;
            match opt_str(call, "type", &p)? {
                None | Some("function") => {}
                Some("custom") => {
                    return Err(unsupported_parameter(
                        &p.key("type"),
                        "Custom tool calls are not supported with this model.",
                    ));
                }
                Some(other) => {
                    return Err(invalid_value(
                        &p.key("type"),
                        format!("Invalid tool call type '{other}'."),
                    ));
                }
            }
            let id = ids.get(req_str(call, "id", &p)?, || format!("{message_index}:{j}"));
            blocks.push(tool_use_block(id, call, &p)?);
        }
    }
    if get(obj, "function_call").is_some() {
        blocks.push(tool_use_block(legacy.next_id(), obj, at)?);
    }
    Ok(blocks)
}

/// `{"type":"tool_use"}` from an object holding `function: {name, arguments}` (a tool call, or a legacy
/// assistant message holding `function_call`).
fn tool_use_block(id: String, holder: &Map<String, Value>, at: &Path) -> Result<Value, ConvertError> {
    let key = if holder.contains_key("function_call") {
        "function_call"
    } else {
        "function"
    };
    let fp = at.key(key);
    let function = opt_object(holder, key, at)?.ok_or_else(|| missing(&fp))?;
    let name = req_str(function, "name", &fp)?;
    let input = match get(function, "arguments") {
        None => json!({}),
        Some(Value::String(arguments)) => parse_tool_arguments(arguments),
        // Lenient: some clients send the arguments already parsed.
        Some(Value::Object(input)) => Value::Object(input.clone()),
        Some(_) => return Err(invalid_type(&fp.key("arguments"), "a string")),
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A thinking block replayed from `reasoning_content` + `reasoning_signature` (§1.1.7). Unsigned or
/// router-signed reasoning is dropped: Anthropic's signature check would reject it.
fn replayed_thinking(obj: &Map<String, Value>, at: &Path) -> Result<Option<Value>, ConvertError> {
    let thinking = opt_str(obj, "reasoning_content", at)?;
    let signature = opt_str(obj, "reasoning_signature", at)?;
    Ok(match (thinking, signature) {
        (Some(thinking), Some(signature)) if !signature.is_empty() && !is_router_minted_signature(signature) => {
            Some(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
        }
        _ => None,
    })
}

fn tool_result_block(tool_use_id: String, content: Option<&Value>, at: &Path) -> Result<Value, ConvertError> {
    let mut block = Map::new();
    block.insert("type".to_owned(), Value::from("tool_result"));
    block.insert("tool_use_id".to_owned(), Value::from(tool_use_id));
    let cp = at.key("content");
    let content = match content {
        None => None,
        Some(Value::String(s)) => (!is_blank(s)).then(|| Value::from(s.as_str())),
        Some(Value::Array(parts)) => {
            let blocks = media_parts(parts, &cp)?;
            (!blocks.is_empty()).then_some(Value::Array(blocks))
        }
        Some(_) => return Err(invalid_type(&cp, "a string or an array of content parts")),
    };
    // An empty result omits `content`; OpenAI has no error flag, so `is_error` is never set here.
    if let Some(content) = content {
        block.insert("content".to_owned(), content);
    }
    Ok(Value::Object(block))
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// The merging and ordering rules of §1.1.2: no empty assistant turns, same-role neighbours merged, every
/// `tool_use` answered by a `tool_result` at the start of the next user turn (in call order) and every
/// `tool_result` answering a call, no empty user turn, and a user turn first.
fn normalise_turns(turns: Vec<Turn>) -> Vec<Turn> {
    let mut merged: Vec<Turn> = Vec::with_capacity(turns.len());
    for turn in turns {
        if turn.role == Role::Assistant && turn.blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some(last) if last.role == turn.role => last.blocks.extend(turn.blocks),
            _ => merged.push(turn),
        }
    }

    let mut out = Vec::with_capacity(merged.len() + 2);
    let mut open_calls: Vec<String> = Vec::new();
    for turn in merged {
        match turn.role {
            Role::Assistant => {
                open_calls = turn
                    .blocks
                    .iter()
                    .filter(|b| block_type(b) == Some("tool_use"))
                    .filter_map(|b| b.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                out.push(turn);
            }
            Role::User => {
                out.push(Turn::user(pair_tool_results(turn.blocks, &open_calls)));
                open_calls.clear();
            }
        }
    }
    if !open_calls.is_empty() {
        out.push(Turn::user(pair_tool_results(Vec::new(), &open_calls)));
    }

    for turn in &mut out {
        if turn.role == Role::User && turn.blocks.is_empty() {
            turn.blocks.push(text_block(EMPTY_TURN_TEXT));
        }
    }
    // Anthropic's own API accepts an assistant turn first, but Bedrock and other Messages hosts do not.
    if out.first().is_none_or(|t| t.role == Role::Assistant) {
        out.insert(0, Turn::user(vec![text_block(EMPTY_TURN_TEXT)]));
    }
    out
}

/// A user turn's blocks with the results for `calls` first, in call order (a missing one becomes an error
/// result), then the other blocks. Results that answer no call of the previous turn are dropped.
fn pair_tool_results(blocks: Vec<Value>, calls: &[String]) -> Vec<Value> {
    let (results, others): (Vec<Value>, Vec<Value>) =
        blocks.into_iter().partition(|b| block_type(b) == Some("tool_result"));
    let mut results: Vec<Option<Value>> = results.into_iter().map(Some).collect();
    let mut paired = Vec::with_capacity(calls.len() + others.len());
    for id in calls {
        let answer = results
            .iter_mut()
            .find(|r| r.as_ref().and_then(|r| r.get("tool_use_id")).and_then(Value::as_str) == Some(id.as_str()))
            .and_then(Option::take);
        paired.push(answer.unwrap_or_else(
            || json!({"type": "tool_result", "tool_use_id": id, "content": MISSING_RESULT_TEXT, "is_error": true}),
        ));
    }
    paired.extend(others);
    paired
}

/// Rule 5 of §1.1.2: a final assistant turn (prefill) may not end in whitespace, and cannot be combined
/// with thinking, in which case it is dropped.
fn settle_prefill(messages: &mut Vec<Value>, thinking_on: bool) {
    let last_is_assistant = messages.last().and_then(|m| m.get("role")).and_then(Value::as_str) == Some("assistant");
    if !last_is_assistant {
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
        && block_type(block) == Some("text")
        && let Some(Value::String(text)) = block.get_mut("text")
    {
        let trimmed_len = text.trim_end().len();
        text.truncate(trimmed_len);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tools and tool choice (§1.1.5)

fn convert_tools(req: &Map<String, Value>, options: &ModelOptions) -> Result<Vec<Value>, ConvertError> {
    let at = Path::Root;
    let mut tools = Vec::new();
    if let Some(list) = opt_array(req, "tools", &at)? {
        let tp = at.key("tools");
        for (i, tool) in list.iter().enumerate() {
            let p = tp.index(i);
            let obj = as_object(tool, &p)?;
            match opt_str(obj, "type", &p)? {
                None | Some("function") => {}
                Some("custom") => {
                    return Err(unsupported_parameter(
                        &p.key("type"),
                        "Custom (free-form) tools are not supported with this model.",
                    ));
                }
                Some(other) => {
                    return Err(unsupported_value(
                        &p.key("type"),
                        format!("Tool type '{other}' is not supported with this model."),
                    ));
                }
            }
            let fp = p.key("function");
            let function = opt_object(obj, "function", &p)?.ok_or_else(|| missing(&fp))?;
            tools.push(tool_definition(function, &fp, options)?);
        }
    }
    // Legacy `functions` are plain function definitions.
    if let Some(list) = opt_array(req, "functions", &at)? {
        let fp = at.key("functions");
        for (i, function) in list.iter().enumerate() {
            let p = fp.index(i);
            tools.push(tool_definition(as_object(function, &p)?, &p, options)?);
        }
    }
    Ok(tools)
}

fn tool_definition(function: &Map<String, Value>, at: &Path, options: &ModelOptions) -> Result<Value, ConvertError> {
    let mut tool = Map::new();
    tool.insert("name".to_owned(), Value::from(req_str(function, "name", at)?));
    if let Some(description) = opt_str(function, "description", at)? {
        tool.insert("description".to_owned(), Value::from(description));
    }
    tool.insert("input_schema".to_owned(), tool_schema(function, "parameters", at)?);
    // `strict` belongs to Anthropic's structured-output feature; hosts without it may reject the field.
    if opt_bool(function, "strict", at)? == Some(true) && options.supports_output_format {
        tool.insert("strict".to_owned(), Value::Bool(true));
    }
    Ok(Value::Object(tool))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChoiceKind {
    Unset,
    Auto,
    None,
    Any,
    Tool(String),
}

struct ToolChoice {
    kind: ChoiceKind,
    /// `allowed_tools`: only these tool names are sent.
    allowed: Option<Vec<String>>,
}

impl ChoiceKind {
    /// The Anthropic `tool_choice`; `parallel_tool_calls:false` rides on auto/any/tool, and alone it needs an
    /// explicit auto choice as its carrier (§1.1.5, §6 row 16).
    fn to_anthropic(&self, disable_parallel: bool) -> Option<Value> {
        let mut choice = match self {
            ChoiceKind::Unset if !disable_parallel => return None,
            ChoiceKind::Unset | ChoiceKind::Auto => json!({"type": "auto"}),
            ChoiceKind::None => return Some(json!({"type": "none"})),
            ChoiceKind::Any => json!({"type": "any"}),
            ChoiceKind::Tool(name) => json!({"type": "tool", "name": name}),
        };
        if disable_parallel && let Some(obj) = choice.as_object_mut() {
            obj.insert("disable_parallel_tool_use".to_owned(), Value::Bool(true));
        }
        Some(choice)
    }
}

fn convert_tool_choice(req: &Map<String, Value>) -> Result<ToolChoice, ConvertError> {
    let at = Path::Root;
    let cp = at.key("tool_choice");
    let kind = match get(req, "tool_choice") {
        None => return legacy_function_call(req),
        Some(Value::String(mode)) => choice_mode(mode, &cp)?,
        Some(Value::Object(choice)) => match req_str(choice, "type", &cp)? {
            "function" => ChoiceKind::Tool(function_name(choice, &cp)?.to_owned()),
            "allowed_tools" => {
                let ap = cp.key("allowed_tools");
                let allowed = opt_object(choice, "allowed_tools", &cp)?.ok_or_else(|| missing(&ap))?;
                let kind = match req_str(allowed, "mode", &ap)? {
                    "auto" => ChoiceKind::Auto,
                    "required" => ChoiceKind::Any,
                    other => {
                        return Err(invalid_value(
                            &ap.key("mode"),
                            format!("Invalid value: '{other}'. Supported values are: 'auto' and 'required'."),
                        ));
                    }
                };
                let tp = ap.key("tools");
                let list = opt_array(allowed, "tools", &ap)?.ok_or_else(|| missing(&tp))?;
                let mut names = Vec::with_capacity(list.len());
                for (i, tool) in list.iter().enumerate() {
                    let p = tp.index(i);
                    let tool = as_object(tool, &p)?;
                    if opt_str(tool, "type", &p)? == Some("custom") {
                        return Err(unsupported_parameter(
                            &p.key("type"),
                            "Custom tools are not supported with this model.",
                        ));
                    }
                    names.push(function_name(tool, &p)?.to_owned());
                }
                return Ok(ToolChoice {
                    kind,
                    allowed: Some(names),
                });
            }
            "custom" => {
                return Err(unsupported_parameter(
                    &cp,
                    "Custom tools are not supported with this model.",
                ));
            }
            other => {
                return Err(invalid_value(
                    &cp.key("type"),
                    format!("Invalid tool_choice type '{other}'."),
                ));
            }
        },
        Some(_) => return Err(invalid_type(&cp, "a string or an object")),
    };
    Ok(ToolChoice { kind, allowed: None })
}

fn choice_mode(mode: &str, at: &Path) -> Result<ChoiceKind, ConvertError> {
    match mode {
        "auto" => Ok(ChoiceKind::Auto),
        "none" => Ok(ChoiceKind::None),
        "required" => Ok(ChoiceKind::Any),
        other => Err(invalid_value(
            at,
            format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
        )),
    }
}

fn function_name<'v>(holder: &'v Map<String, Value>, at: &Path) -> Result<&'v str, ConvertError> {
    let fp = at.key("function");
    let function = opt_object(holder, "function", at)?.ok_or_else(|| missing(&fp))?;
    req_str(function, "name", &fp)
}

/// Legacy `function_call`: `"none"`, `"auto"` or `{"name": N}`.
fn legacy_function_call(req: &Map<String, Value>) -> Result<ToolChoice, ConvertError> {
    let at = Path::Root;
    let fp = at.key("function_call");
    let kind = match get(req, "function_call") {
        None => ChoiceKind::Unset,
        Some(Value::String(mode)) if mode != "required" => choice_mode(mode, &fp)?,
        Some(Value::Object(call)) => ChoiceKind::Tool(req_str(call, "name", &fp)?.to_owned()),
        Some(_) => return Err(invalid_type(&fp, "'none', 'auto' or an object with a name")),
    };
    Ok(ToolChoice { kind, allowed: None })
}

// ---------------------------------------------------------------------------------------------------------
// Structured output (§1.1.8)

enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema(Value),
}

fn convert_response_format(req: &Map<String, Value>) -> Result<ResponseFormat, ConvertError> {
    let at = Path::Root;
    let Some(format) = opt_object(req, "response_format", &at)? else {
        return Ok(ResponseFormat::Text);
    };
    let rp = at.key("response_format");
    match req_str(format, "type", &rp)? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let jp = rp.key("json_schema");
            let spec = opt_object(format, "json_schema", &rp)?.ok_or_else(|| missing(&jp))?;
            match get(spec, "schema") {
                Some(schema @ Value::Object(_)) => Ok(ResponseFormat::JsonSchema(schema.clone())),
                None => Ok(ResponseFormat::JsonSchema(json!({"type": "object"}))),
                Some(_) => Err(invalid_type(&jp.key("schema"), "an object")),
            }
        }
        other => Err(unsupported_value(
            &rp.key("type"),
            format!("Response format type '{other}' is not supported with this model."),
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------
// max_tokens, thinking, stop sequences, user (§1.1.1, §1.1.4, §1.1.7)

/// The client's `max_completion_tokens` (preferred) or `max_tokens`, else the deployment's default, else
/// 4096; clamped to `max_output_tokens`.
fn requested_max_tokens(req: &Map<String, Value>, options: &ModelOptions) -> Result<u64, ConvertError> {
    let at = Path::Root;
    let explicit = match opt_i64(req, "max_completion_tokens", &at)? {
        Some(n) => Some(("max_completion_tokens", n)),
        None => opt_i64(req, "max_tokens", &at)?.map(|n| ("max_tokens", n)),
    };
    let requested = match explicit {
        Some((key, n)) => u64::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            invalid_value(
                &at.key(key),
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
            )
        })?,
        None => options
            .default_max_tokens
            .or(options.max_output_tokens)
            .map_or(FALLBACK_MAX_TOKENS, u64::from),
    };
    Ok(clamp_max_tokens(requested, options))
}

/// The thinking configuration of the upstream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thinking {
    Absent,
    Disabled,
    Budget(u64),
    /// Adaptive thinking with this `output_config.effort`.
    Adaptive(&'static str),
}

impl Thinking {
    fn is_on(self) -> bool {
        matches!(self, Thinking::Budget(_) | Thinking::Adaptive(_))
    }
}

/// `reasoning_effort` → thinking per the deployment's `thinking_mode` (§1.1.7 table).
fn requested_thinking(req: &Map<String, Value>, options: &ModelOptions) -> Result<Thinking, ConvertError> {
    let at = Path::Root;
    let Some(effort) = opt_str(req, "reasoning_effort", &at)? else {
        return Ok(Thinking::Absent);
    };
    if options.thinking_mode == ThinkingMode::None {
        return Ok(Thinking::Absent);
    }
    let (budget, level) = match effort {
        "none" => return Ok(Thinking::Disabled),
        "minimal" | "low" => (1024, "low"),
        "medium" => (2048, "medium"),
        "high" => (4096, "high"),
        "xhigh" => (8192, "xhigh"),
        "max" => (16384, "max"),
        other => {
            return Err(unsupported_value(
                &at.key("reasoning_effort"),
                format!(
                    "Invalid value: '{other}'. Supported values are: 'none', 'minimal', 'low', 'medium', \
                     'high', 'xhigh' and 'max'."
                ),
            ));
        }
    };
    Ok(match options.thinking_mode {
        ThinkingMode::Budget => Thinking::Budget(budget),
        ThinkingMode::Adaptive => Thinking::Adaptive(level),
        ThinkingMode::None => Thinking::Absent,
    })
}

/// Switches requested thinking off where Anthropic forbids it (forced tool use, an open tool loop whose
/// assistant turn carries no signed thinking) and fits a budget under `max_tokens` (§1.1.4).
fn settle_thinking(
    requested: Thinking,
    forced_tool: bool,
    open_loop_unsigned: bool,
    max_tokens: &mut u64,
    options: &ModelOptions,
) -> Thinking {
    if !requested.is_on() {
        return requested;
    }
    if forced_tool || open_loop_unsigned {
        return Thinking::Absent;
    }
    let Thinking::Budget(budget) = requested else {
        return requested;
    };
    if budget < *max_tokens {
        return requested;
    }
    let cap = options.max_output_tokens.map_or(u64::MAX, u64::from);
    *max_tokens = (*max_tokens).max(budget.saturating_add(budget.min(4096)).min(cap));
    if budget < *max_tokens {
        return requested;
    }
    let lowered = max_tokens.saturating_sub(1);
    if lowered < MIN_THINKING_BUDGET {
        Thinking::Absent
    } else {
        Thinking::Budget(lowered)
    }
}

/// `stop` (a string or a list) without empty or whitespace-only entries.
fn stop_sequences(req: &Map<String, Value>) -> Result<Vec<String>, ConvertError> {
    let at = Path::Root;
    let sp = at.key("stop");
    let mut stops = Vec::new();
    match get(req, "stop") {
        None => {}
        Some(Value::String(s)) => stops.push(s.clone()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().ok_or_else(|| invalid_type(&sp.index(i), "a string"))?;
                stops.push(s.to_owned());
            }
        }
        Some(_) => return Err(invalid_type(&sp, "a string or an array of strings")),
    }
    stops.retain(|s| !is_blank(s));
    Ok(stops)
}

/// `user`, else `safety_identifier`, as an opaque `metadata.user_id`; over-long ids are hashed.
fn user_id(req: &Map<String, Value>) -> Result<Option<String>, ConvertError> {
    let at = Path::Root;
    let user = opt_str(req, "user", &at)?.filter(|u| !u.is_empty());
    let user = match user {
        Some(user) => Some(user),
        None => opt_str(req, "safety_identifier", &at)?.filter(|u| !u.is_empty()),
    };
    Ok(user.map(|u| user_id_within(u, USER_ID_MAX_CHARS)))
}
