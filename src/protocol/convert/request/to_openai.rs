//! Route B request: Anthropic Messages → OpenAI Chat Completions (§1.2).
//!
//! Each Anthropic message becomes one or more OpenAI messages: a user message carrying tool results splits
//! into one `tool` message per result followed by a user message for the rest (§1.2.3), and thinking is
//! encoded in the upstream's reasoning dialect (§1.2.6).

use serde_json::{Map, Value, json};

use super::fields::{
    Path, as_object, get, invalid_type, invalid_value, missing, opt_array, opt_bool, opt_f64, opt_i64, opt_object,
    opt_str, req_str, unsupported_parameter,
};
use super::{ConvertedRequest, RequestFacts, clamp_max_tokens, parse_body, tool_schema};
use crate::protocol::convert::ids::{ToolNameMap, openai_tool_id, openai_tool_name, user_id_within};
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::protocol::convert::tool_calls::{RAW_ARGUMENTS_KEY, arguments_json};
use crate::protocol::convert::{ConvertContext, ConvertError, ModelOptions, ReasoningDialect};

/// OpenAI accepts at most four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;
/// OpenAI rejects longer `user` values (and documents 64 for `safety_identifier`), §1.2.1.
const USER_MAX_CHARS: usize = 64;
/// The name OpenAI's `json_schema` response format requires; Anthropic has none.
const RESPONSE_FORMAT_NAME: &str = "output";

/// Converts an Anthropic Messages request body into an OpenAI Chat Completions body for
/// `ctx.upstream_model`.
pub fn anthropic_to_openai(body: &[u8], ctx: &ConvertContext) -> Result<ConvertedRequest, ConvertError> {
    let root = parse_body(body)?;
    let req = as_object(&root, &Path::Root)?;
    let options = ctx.options;
    let at = Path::Root;

    let max_tokens = requested_max_tokens(req)?;
    let list_path = at.key("messages");
    let list = opt_array(req, "messages", &at)?.ok_or_else(|| missing(&list_path))?;
    if list.is_empty() {
        return Err(invalid_value(&list_path, "messages: at least one message is required"));
    }
    let stream = opt_bool(req, "stream", &at)?.unwrap_or(false);

    let mut tool_names = ToolNameMap::default();
    let tools = convert_tools(req, &mut tool_names)?;
    let reasoning = requested_reasoning(req)?;

    let mut messages = Vec::with_capacity(list.len() + 1);
    if let Some(system) = system_message(req, options)? {
        messages.push(system);
    }
    let writer = MessageWriter {
        options,
        reasoning_in_history: matches!(
            options.reasoning_dialect,
            ReasoningDialect::Deepseek | ReasoningDialect::Qwen
        ),
    };
    for (i, message) in list.iter().enumerate() {
        let is_last = i + 1 == list.len();
        writer.convert(message, &list_path.index(i), is_last, &mut messages)?;
    }
    if options.merge_system_messages {
        merge_system_messages(&mut messages);
    }

    let mut out = Map::new();
    out.insert("model".to_owned(), Value::from(ctx.upstream_model));
    // Most OpenAI-compatible hosts only know `max_tokens`; OpenAI itself still accepts it for
    // non-reasoning models (§1.2.1).
    out.insert(
        "max_tokens".to_owned(),
        Value::from(clamp_max_tokens(max_tokens.max(1), options)),
    );
    out.insert("messages".to_owned(), Value::Array(messages));
    if !tools.is_empty() {
        let (choice, disable_parallel) = convert_tool_choice(req)?;
        out.insert("tools".to_owned(), Value::Array(tools));
        if let Some(choice) = choice {
            out.insert("tool_choice".to_owned(), choice);
        }
        // Only next to tools: several hosts reject the flag on its own.
        if disable_parallel {
            out.insert("parallel_tool_calls".to_owned(), Value::Bool(false));
        }
    }
    let thinking_enabled = write_reasoning(&reasoning, options.reasoning_dialect, &mut out);
    if let Some(format) = response_format(req)? {
        out.insert("response_format".to_owned(), format);
    }
    for key in ["temperature", "top_p"] {
        if let Some(value) = opt_f64(req, key, &at)? {
            out.insert(key.to_owned(), Value::from(value));
        }
    }
    if options.supports_top_k
        && let Some(top_k) = opt_i64(req, "top_k", &at)?
    {
        out.insert("top_k".to_owned(), Value::from(top_k));
    }
    let stop = stop_sequences(req)?;
    if !stop.is_empty() {
        out.insert("stop".to_owned(), Value::from(stop.clone()));
    }
    if stream {
        out.insert("stream".to_owned(), Value::Bool(true));
        if options.supports_stream_options {
            out.insert("stream_options".to_owned(), json!({"include_usage": true}));
        }
    }
    if let Some(user) = user(req)? {
        out.insert("user".to_owned(), Value::from(user));
    }

    Ok(ConvertedRequest {
        body: out,
        facts: RequestFacts {
            stream,
            tool_names,
            // Only a stream needs it before the upstream's count arrives (`message_start`); tokenizing the
            // whole prompt costs more than the rest of the conversion, so non-streamed requests skip it.
            input_tokens_estimate: if stream {
                estimate_anthropic_input_tokens(&root, options.token_count_factor)
            } else {
                0
            },
            thinking_enabled,
            cache_prewarm: max_tokens == 0,
            stop_sequences: stop,
            ..RequestFacts::default()
        },
    })
}

/// `max_tokens` is required: a non-negative integer (0 is a cache pre-warm, §1.2.1).
fn requested_max_tokens(req: &Map<String, Value>) -> Result<u64, ConvertError> {
    let at = Path::Root;
    let mp = at.key("max_tokens");
    let n = opt_i64(req, "max_tokens", &at)?.ok_or_else(|| missing(&mp))?;
    u64::try_from(n).map_err(|_| invalid_value(&mp, format!("max_tokens: must be a positive integer, got {n}")))
}

// ---------------------------------------------------------------------------------------------------------
// System and messages (§1.2.1–§1.2.3)

/// `system` (a string or text blocks) as the first OpenAI message; blocks are joined with a blank line.
fn system_message(req: &Map<String, Value>, options: &ModelOptions) -> Result<Option<Value>, ConvertError> {
    let at = Path::Root;
    let sp = at.key("system");
    let content = match get(req, "system") {
        None => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => Value::from(s.as_str()),
        Some(Value::Array(blocks)) => {
            let parts = text_parts(blocks, &sp, options)?;
            if parts.is_empty() {
                return Ok(None);
            }
            joined_or_parts(parts, "\n\n")
        }
        Some(_) => return Err(invalid_type(&sp, "a string or an array of text blocks")),
    };
    Ok(Some(json!({"role": "system", "content": content})))
}

/// Moves the text of every later `system` message into one leading system message, for hosts and chat
/// templates that accept a system message only at the start (Claude Code sends its environment section as a
/// mid-conversation system message). Position is lost; the text is kept in order.
fn merge_system_messages(messages: &mut Vec<Value>) {
    let is_system = |m: &Value| m.get("role").and_then(Value::as_str) == Some("system");
    if messages.iter().skip(1).all(|m| !is_system(m)) {
        return;
    }
    let mut texts = Vec::new();
    messages.retain(|m| {
        if !is_system(m) {
            return true;
        }
        match m.get("content") {
            Some(Value::String(text)) => texts.push(text.clone()),
            Some(Value::Array(parts)) => texts.extend(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::to_owned),
            ),
            _ => {}
        }
        false
    });
    messages.insert(0, json!({"role": "system", "content": texts.join("\n\n")}));
}

/// The text blocks of a system prompt or `mid_conv_system` block as OpenAI text parts (other blocks carry
/// nothing an OpenAI system message can hold).
fn text_parts(blocks: &[Value], at: &Path, options: &ModelOptions) -> Result<Vec<Value>, ConvertError> {
    let mut parts = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let p = at.index(i);
        let obj = as_object(block, &p)?;
        if opt_str(obj, "type", &p)? == Some("text") {
            let text = req_str(obj, "text", &p)?;
            if !text.is_empty() && !is_billing_header(text) {
                parts.push(with_cache_marker(json!({"type": "text", "text": text}), obj, options));
            }
        }
    }
    Ok(parts)
}

/// Claude Code starts its system prompt with `x-anthropic-billing-header: cc_version=…; …`, metadata for
/// Anthropic's own API. Another provider learns nothing from it, and because it changes between sessions it
/// would defeat prefix caching on every OpenAI-compatible host, so it is not forwarded.
fn is_billing_header(text: &str) -> bool {
    text.starts_with("x-anthropic-billing-header:")
}

/// Deployments flagged `forward_cache_control` (e.g. OpenRouter in front of Claude) keep cache markers on
/// content parts, reduced to `{"type":"ephemeral"}`; everywhere else they are dropped (§1.2.7).
fn with_cache_marker(mut part: Value, block: &Map<String, Value>, options: &ModelOptions) -> Value {
    if options.forward_cache_control
        && get(block, "cache_control").is_some()
        && let Some(obj) = part.as_object_mut()
    {
        obj.insert("cache_control".to_owned(), json!({"type": "ephemeral"}));
    }
    part
}

/// Text-only content becomes a plain string (several hosts, e.g. DeepSeek, take nothing else); anything
/// with media or a cache marker stays a list of parts.
fn joined_or_parts(parts: Vec<Value>, separator: &str) -> Value {
    let plain = parts
        .iter()
        .all(|p| p.get("type").and_then(Value::as_str) == Some("text") && p.get("cache_control").is_none());
    if !plain {
        return Value::Array(parts);
    }
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    Value::from(texts.join(separator))
}

struct MessageWriter<'o> {
    options: &'o ModelOptions,
    /// The dialect replays thinking as `reasoning_content` (DeepSeek, Qwen).
    reasoning_in_history: bool,
}

/// One user message's output under construction: tool messages come first, then media returned by tools,
/// then the user's own parts (§1.2.3).
#[derive(Default)]
struct UserTurn {
    tool_messages: Vec<Value>,
    tool_media: Vec<Value>,
    parts: Vec<Value>,
}

impl UserTurn {
    fn flush(&mut self, out: &mut Vec<Value>) {
        out.append(&mut self.tool_messages);
        let mut parts = std::mem::take(&mut self.tool_media);
        parts.append(&mut self.parts);
        if !parts.is_empty() {
            out.push(json!({"role": "user", "content": joined_or_parts(parts, "\n\n")}));
        }
    }
}

/// One assistant message under construction.
#[derive(Default)]
struct AssistantTurn {
    text: String,
    /// A non-text block came after the last text, so the next text starts a new paragraph.
    separated: bool,
    thinking: Vec<String>,
    tool_calls: Vec<Value>,
}

impl AssistantTurn {
    fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.separated && !self.text.is_empty() {
            self.text.push_str("\n\n");
        }
        self.text.push_str(text);
        self.separated = false;
    }

    /// Writes the message; one with neither text nor tool calls is dropped unless it ends the
    /// conversation (a prefill).
    fn flush(&mut self, out: &mut Vec<Value>, reasoning_in_history: bool, is_last: bool) {
        let turn = std::mem::take(self);
        if turn.text.is_empty() && turn.tool_calls.is_empty() && !is_last {
            return;
        }
        let mut msg = Map::new();
        msg.insert("role".to_owned(), Value::from("assistant"));
        let content = if !turn.text.is_empty() {
            Value::from(turn.text)
        } else if !turn.tool_calls.is_empty() {
            Value::Null
        } else {
            Value::from("")
        };
        msg.insert("content".to_owned(), content);
        // DeepSeek rejects a tool loop whose assistant messages lack the field, so it is always sent, empty
        // when the turn had no thinking (§1.2.6).
        if reasoning_in_history {
            msg.insert("reasoning_content".to_owned(), Value::from(turn.thinking.join("\n")));
        }
        if !turn.tool_calls.is_empty() {
            msg.insert("tool_calls".to_owned(), Value::Array(turn.tool_calls));
        }
        out.push(Value::Object(msg));
    }
}

impl MessageWriter<'_> {
    fn convert(&self, message: &Value, at: &Path, is_last: bool, out: &mut Vec<Value>) -> Result<(), ConvertError> {
        let obj = as_object(message, at)?;
        let cp = at.key("content");
        let content = get(obj, "content").ok_or_else(|| missing(&cp))?;
        match req_str(obj, "role", at)? {
            "user" => self.user(content, &cp, out),
            "assistant" => self.assistant(content, &cp, is_last, out),
            // Newer SDKs allow system messages inside `messages` (mid-conversation system prompts).
            "system" => {
                out.push(self.system_at_position(content, &cp)?);
                Ok(())
            }
            other => Err(invalid_value(
                &at.key("role"),
                format!("messages: unexpected role \"{other}\", expected \"user\" or \"assistant\""),
            )),
        }
    }

    /// A mid-conversation system prompt, kept at its position as an OpenAI system message.
    fn system_at_position(&self, content: &Value, at: &Path) -> Result<Value, ConvertError> {
        let text = match content {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => {
                let parts = text_parts(blocks, at, self.options)?;
                let texts: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                texts.join("\n\n")
            }
            _ => return Err(invalid_type(at, "a string or an array of text blocks")),
        };
        Ok(json!({"role": "system", "content": text}))
    }

    fn user(&self, content: &Value, at: &Path, out: &mut Vec<Value>) -> Result<(), ConvertError> {
        let blocks = match content {
            Value::String(s) => {
                out.push(json!({"role": "user", "content": s}));
                return Ok(());
            }
            Value::Array(blocks) => blocks,
            _ => return Err(invalid_type(at, "a string or an array of content blocks")),
        };
        let mut turn = UserTurn::default();
        for (j, block) in blocks.iter().enumerate() {
            let bp = at.index(j);
            let obj = as_object(block, &bp)?;
            match req_str(obj, "type", &bp)? {
                "tool_result" => self.tool_result(obj, &bp, &mut turn)?,
                "mid_conv_system" => {
                    turn.flush(out);
                    out.push(self.system_at_position(get(obj, "content").unwrap_or(&Value::Null), &bp.key("content"))?);
                }
                kind => turn.parts.extend(self.user_parts(kind, obj, &bp)?),
            }
        }
        turn.flush(out);
        Ok(())
    }

    /// A user content block as OpenAI parts; blocks with no OpenAI meaning (server-tool results, thinking in a
    /// user turn, unknown types) yield none.
    fn user_parts(&self, kind: &str, block: &Map<String, Value>, at: &Path) -> Result<Vec<Value>, ConvertError> {
        let part = match kind {
            "text" => {
                let text = req_str(block, "text", at)?;
                if text.is_empty() {
                    return Ok(Vec::new());
                }
                json!({"type": "text", "text": text})
            }
            "image" => image_part(block, at)?,
            "document" => return self.document_parts(block, at),
            "search_result" => json!({"type": "text", "text": search_result_text(block, at)?}),
            _ => return Ok(Vec::new()),
        };
        Ok(vec![with_cache_marker(part, block, self.options)])
    }

    fn document_parts(&self, block: &Map<String, Value>, at: &Path) -> Result<Vec<Value>, ConvertError> {
        let sp = at.key("source");
        let source = opt_object(block, "source", at)?.ok_or_else(|| missing(&sp))?;
        let title = opt_str(block, "title", at)?;
        let part = match req_str(source, "type", &sp)? {
            "base64" => {
                let media_type = opt_str(source, "media_type", &sp)?.unwrap_or("application/pdf");
                let data = req_str(source, "data", &sp)?;
                json!({"type": "file", "file": {
                    "file_data": format!("data:{media_type};base64,{data}"),
                    "filename": title.unwrap_or("document.pdf"),
                }})
            }
            "text" => {
                let data = req_str(source, "data", &sp)?;
                let text = match title {
                    Some(title) if !title.is_empty() => format!("{title}\n{data}"),
                    _ => data.to_owned(),
                };
                json!({"type": "text", "text": text})
            }
            "content" => {
                let cp = sp.key("content");
                return match get(source, "content") {
                    Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
                    Some(Value::Array(inner)) => {
                        let mut parts = Vec::with_capacity(inner.len());
                        for (k, nested) in inner.iter().enumerate() {
                            let np = cp.index(k);
                            let nested = as_object(nested, &np)?;
                            let kind = req_str(nested, "type", &np)?;
                            if matches!(kind, "text" | "image") {
                                parts.extend(self.user_parts(kind, nested, &np)?);
                            }
                        }
                        Ok(parts)
                    }
                    Some(_) => Err(invalid_type(&cp, "a string or an array of content blocks")),
                    None => Err(missing(&cp)),
                };
            }
            "url" => {
                return Err(unsupported_parameter(
                    &sp.key("type"),
                    "URL document sources are not supported by this model's provider; send the document as \
                     base64 or text.",
                ));
            }
            "file" => return Err(files_api_error(&sp)),
            other => {
                return Err(invalid_value(
                    &sp.key("type"),
                    format!("Unknown document source type '{other}'."),
                ));
            }
        };
        Ok(vec![with_cache_marker(part, block, self.options)])
    }

    /// One `tool` message per result; media returned by the tool go to `turn.tool_media` because a `tool`
    /// message holds text only (§1.2.3).
    fn tool_result(&self, block: &Map<String, Value>, at: &Path, turn: &mut UserTurn) -> Result<(), ConvertError> {
        let id = openai_tool_id(req_str(block, "tool_use_id", at)?).into_owned();
        let mut texts: Vec<String> = Vec::new();
        let mut media: Vec<Value> = Vec::new();
        let cp = at.key("content");
        match get(block, "content") {
            None => {}
            Some(Value::String(s)) => texts.push(s.clone()),
            Some(Value::Array(items)) => {
                for (k, item) in items.iter().enumerate() {
                    let ip = cp.index(k);
                    let item = as_object(item, &ip)?;
                    match req_str(item, "type", &ip)? {
                        "text" => texts.push(req_str(item, "text", &ip)?.to_owned()),
                        // Claude Code's tool search: tell the model which tool became available.
                        "tool_reference" => {
                            texts.push(format!("Tool loaded: {}", req_str(item, "tool_name", &ip)?));
                        }
                        "search_result" => texts.push(search_result_text(item, &ip)?),
                        "image" => media.push(image_part(item, &ip)?),
                        "document" => {
                            for part in self.document_parts(item, &ip)? {
                                match part.get("text").and_then(Value::as_str) {
                                    Some(text) if part.get("type").and_then(Value::as_str) == Some("text") => {
                                        texts.push(text.to_owned());
                                    }
                                    _ => media.push(part),
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(_) => return Err(invalid_type(&cp, "a string or an array of content blocks")),
        }
        let mut content = texts.join("\n");
        // OpenAI has no error flag on tool results.
        if opt_bool(block, "is_error", at)? == Some(true) {
            content.insert_str(0, "Error: ");
        }
        turn.tool_messages
            .push(json!({"role": "tool", "tool_call_id": id, "content": content}));
        if !media.is_empty() {
            turn.tool_media
                .push(json!({"type": "text", "text": format!("Images returned by tool call {id}:")}));
            turn.tool_media.append(&mut media);
        }
        Ok(())
    }

    fn assistant(&self, content: &Value, at: &Path, is_last: bool, out: &mut Vec<Value>) -> Result<(), ConvertError> {
        let mut turn = AssistantTurn::default();
        let blocks = match content {
            Value::String(s) => {
                turn.push_text(s);
                turn.flush(out, self.reasoning_in_history, is_last);
                return Ok(());
            }
            Value::Array(blocks) => blocks,
            _ => return Err(invalid_type(at, "a string or an array of content blocks")),
        };
        for (j, block) in blocks.iter().enumerate() {
            let bp = at.index(j);
            let obj = as_object(block, &bp)?;
            match req_str(obj, "type", &bp)? {
                "text" => turn.push_text(req_str(obj, "text", &bp)?),
                "tool_use" => {
                    turn.tool_calls.push(tool_call(obj, &bp)?);
                    turn.separated = true;
                }
                "thinking" => {
                    turn.thinking.push(req_str(obj, "thinking", &bp)?.to_owned());
                    turn.separated = true;
                }
                "mid_conv_system" => {
                    turn.flush(out, self.reasoning_in_history, false);
                    out.push(self.system_at_position(get(obj, "content").unwrap_or(&Value::Null), &bp.key("content"))?);
                }
                // redacted_thinking, server tool blocks and unknown blocks have no OpenAI form.
                _ => turn.separated = true,
            }
        }
        turn.flush(out, self.reasoning_in_history, is_last);
        Ok(())
    }
}

fn files_api_error(at: &Path) -> ConvertError {
    unsupported_parameter(
        &at.key("type"),
        "Files API sources cannot be resolved by this model's provider; send the content inline.",
    )
}

fn image_part(block: &Map<String, Value>, at: &Path) -> Result<Value, ConvertError> {
    let sp = at.key("source");
    let source = opt_object(block, "source", at)?.ok_or_else(|| missing(&sp))?;
    let url = match req_str(source, "type", &sp)? {
        "base64" => {
            let media_type = req_str(source, "media_type", &sp)?;
            let data = req_str(source, "data", &sp)?;
            format!("data:{media_type};base64,{data}")
        }
        "url" => req_str(source, "url", &sp)?.to_owned(),
        "file" => return Err(files_api_error(&sp)),
        other => {
            return Err(invalid_value(
                &sp.key("type"),
                format!("Unknown image source type '{other}'."),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A search result as plain text: title, source, then its text blocks.
fn search_result_text(block: &Map<String, Value>, at: &Path) -> Result<String, ConvertError> {
    let mut lines: Vec<&str> = Vec::new();
    lines.extend(opt_str(block, "title", at)?);
    lines.extend(opt_str(block, "source", at)?);
    if let Some(items) = opt_array(block, "content", at)? {
        lines.extend(items.iter().filter_map(|item| item.get("text").and_then(Value::as_str)));
    }
    Ok(lines.join("\n"))
}

fn tool_call(block: &Map<String, Value>, at: &Path) -> Result<Value, ConvertError> {
    let id = openai_tool_id(req_str(block, "id", at)?).into_owned();
    let name = openai_tool_name(req_str(block, "name", at)?).into_owned();
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments_string(get(block, "input"))},
    }))
}

/// Anthropic input (an object) → OpenAI arguments (a compact JSON string). The `_raw_arguments` wrapper
/// that Route A uses for unparseable arguments unwraps to the original string.
fn arguments_string(input: Option<&Value>) -> String {
    if let Some(Value::Object(obj)) = input
        && obj.len() == 1
        && let Some(Value::String(raw)) = obj.get(RAW_ARGUMENTS_KEY)
    {
        return raw.clone();
    }
    arguments_json(input)
}

// ---------------------------------------------------------------------------------------------------------
// Tools and tool choice (§1.2.4)

/// Custom tools as OpenAI functions; Anthropic server tools are dropped (they do not exist upstream).
fn convert_tools(req: &Map<String, Value>, names: &mut ToolNameMap) -> Result<Vec<Value>, ConvertError> {
    let at = Path::Root;
    let Some(list) = opt_array(req, "tools", &at)? else {
        return Ok(Vec::new());
    };
    let tp = at.key("tools");
    let mut tools = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let p = tp.index(i);
        let obj = as_object(tool, &p)?;
        match opt_str(obj, "type", &p)? {
            None | Some("custom") => {}
            Some(server_tool) => {
                tracing::debug!(
                    tool_type = server_tool,
                    "dropping Anthropic server tool for an OpenAI upstream"
                );
                continue;
            }
        }
        let mut function = Map::new();
        function.insert(
            "name".to_owned(),
            Value::from(names.record(req_str(obj, "name", &p)?).as_ref()),
        );
        if let Some(description) = opt_str(obj, "description", &p)? {
            function.insert("description".to_owned(), Value::from(description));
        }
        function.insert("parameters".to_owned(), tool_schema(obj, "input_schema", &p)?);
        if let Some(strict) = opt_bool(obj, "strict", &p)? {
            function.insert("strict".to_owned(), Value::Bool(strict));
        }
        tools.push(json!({"type": "function", "function": function}));
    }
    Ok(tools)
}

/// The OpenAI `tool_choice` and whether parallel tool calls are disabled.
fn convert_tool_choice(req: &Map<String, Value>) -> Result<(Option<Value>, bool), ConvertError> {
    let at = Path::Root;
    let Some(choice) = opt_object(req, "tool_choice", &at)? else {
        return Ok((None, false));
    };
    let cp = at.key("tool_choice");
    let disable_parallel = opt_bool(choice, "disable_parallel_tool_use", &cp)? == Some(true);
    let converted = match req_str(choice, "type", &cp)? {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => {
            let name = openai_tool_name(req_str(choice, "name", &cp)?);
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(invalid_value(
                &cp.key("type"),
                format!("tool_choice: unknown type \"{other}\""),
            ));
        }
    };
    Ok((Some(converted), disable_parallel))
}

// ---------------------------------------------------------------------------------------------------------
// Reasoning (§1.2.6), structured output, stop sequences, user

/// Thinking as the client asked for it, before the dialect encodes it.
#[derive(Debug, PartialEq, Eq)]
enum Reasoning {
    Absent,
    Disabled,
    Enabled { effort: &'static str, budget: Option<u64> },
}

fn requested_reasoning(req: &Map<String, Value>) -> Result<Reasoning, ConvertError> {
    let at = Path::Root;
    let tp = at.key("thinking");
    let Some(thinking) = opt_object(req, "thinking", &at)? else {
        return Ok(Reasoning::Absent);
    };
    match req_str(thinking, "type", &tp)? {
        "disabled" => Ok(Reasoning::Disabled),
        "enabled" => {
            let budget = opt_i64(thinking, "budget_tokens", &tp)?.and_then(|b| u64::try_from(b).ok());
            let effort = match budget {
                Some(b) if b < 2048 => "low",
                Some(b) if b < 8192 => "medium",
                Some(_) => "high",
                None => "medium",
            };
            Ok(Reasoning::Enabled { effort, budget })
        }
        "adaptive" => {
            let op = at.key("output_config");
            let effort = match opt_object(req, "output_config", &at)? {
                Some(config) => opt_str(config, "effort", &op)?,
                None => None,
            };
            // Most OpenAI-compatible hosts know three levels.
            let effort = match effort {
                Some("low") => "low",
                Some("high" | "xhigh" | "max") => "high",
                _ => "medium",
            };
            Ok(Reasoning::Enabled { effort, budget: None })
        }
        other => Err(invalid_value(
            &tp.key("type"),
            format!("thinking: unknown type \"{other}\""),
        )),
    }
}

/// Encodes reasoning in the upstream's dialect; returns whether reasoning ends up on.
fn write_reasoning(reasoning: &Reasoning, dialect: ReasoningDialect, out: &mut Map<String, Value>) -> bool {
    match (dialect, reasoning) {
        (ReasoningDialect::None, _) | (_, Reasoning::Absent) => false,
        (ReasoningDialect::Openai, Reasoning::Disabled) => false,
        (ReasoningDialect::Openai, Reasoning::Enabled { effort, .. }) => {
            out.insert("reasoning_effort".to_owned(), Value::from(*effort));
            true
        }
        // Never `reasoning_effort` next to a disabled thinking switch: DeepSeek rejects it (§6 row 31).
        (ReasoningDialect::Deepseek, Reasoning::Disabled) => {
            out.insert("thinking".to_owned(), json!({"type": "disabled"}));
            false
        }
        (ReasoningDialect::Deepseek, Reasoning::Enabled { effort, .. }) => {
            out.insert("thinking".to_owned(), json!({"type": "enabled"}));
            out.insert("reasoning_effort".to_owned(), Value::from(*effort));
            true
        }
        (ReasoningDialect::Qwen, Reasoning::Disabled) => {
            out.insert("enable_thinking".to_owned(), Value::Bool(false));
            false
        }
        (ReasoningDialect::Qwen, Reasoning::Enabled { budget, .. }) => {
            out.insert("enable_thinking".to_owned(), Value::Bool(true));
            if let Some(budget) = budget {
                out.insert("thinking_budget".to_owned(), Value::from(*budget));
            }
            true
        }
    }
}

/// `output_config.format` (or the deprecated beta `output_format`) → `response_format`.
fn response_format(req: &Map<String, Value>) -> Result<Option<Value>, ConvertError> {
    let at = Path::Root;
    let op = at.key("output_config");
    let from_config = match opt_object(req, "output_config", &at)? {
        Some(config) => opt_object(config, "format", &op)?.map(|f| (f, op.key("format"))),
        None => None,
    };
    let (format, fp) = match from_config {
        Some(found) => found,
        None => match opt_object(req, "output_format", &at)? {
            Some(format) => (format, at.key("output_format")),
            None => return Ok(None),
        },
    };
    match req_str(format, "type", &fp)? {
        "json_schema" => {
            let schema = match get(format, "schema") {
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(_) => return Err(invalid_type(&fp.key("schema"), "an object")),
                None => return Err(missing(&fp.key("schema"))),
            };
            Ok(Some(json!({"type": "json_schema", "json_schema": {
                "name": RESPONSE_FORMAT_NAME, "schema": schema, "strict": true,
            }})))
        }
        other => Err(invalid_value(
            &fp.key("type"),
            format!("Unknown output format type '{other}'."),
        )),
    }
}

/// The first four `stop_sequences`.
fn stop_sequences(req: &Map<String, Value>) -> Result<Vec<String>, ConvertError> {
    let at = Path::Root;
    let sp = at.key("stop_sequences");
    let Some(items) = opt_array(req, "stop_sequences", &at)? else {
        return Ok(Vec::new());
    };
    let mut stops = Vec::with_capacity(items.len().min(MAX_STOP_SEQUENCES));
    for (i, item) in items.iter().enumerate().take(MAX_STOP_SEQUENCES) {
        stops.push(
            item.as_str()
                .ok_or_else(|| invalid_type(&sp.index(i), "a string"))?
                .to_owned(),
        );
    }
    Ok(stops)
}

/// `metadata.user_id` → `user`, hashed when longer than OpenAI accepts (Claude Code's ids are ~150 chars).
fn user(req: &Map<String, Value>) -> Result<Option<String>, ConvertError> {
    let at = Path::Root;
    let Some(metadata) = opt_object(req, "metadata", &at)? else {
        return Ok(None);
    };
    let user_id = opt_str(metadata, "user_id", &at.key("metadata"))?.filter(|u| !u.is_empty());
    Ok(user_id.map(|u| user_id_within(u, USER_MAX_CHARS)))
}
