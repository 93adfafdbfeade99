//! Encoding a hub [`Request`] as a Chat Completions request for an OpenAI-compatible upstream, written
//! straight into one buffer (serde structs over borrowed data; schemas copied as raw JSON text).
//!
//! Turn assembly follows reference §1.4: all calls of one assistant turn stay in one message, their `tool`
//! messages follow it in the order of the calls (a call without a result gets a placeholder, a result
//! without a call is dropped), and media returned by tools go into a user message after them, since a
//! `tool` message holds text only.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::convert::ids::{openai_tool_id, user_id_within};
use crate::protocol::convert::{ConvertError, ModelOptions, ReasoningDialect};
use crate::protocol::hub::{
    Message, OutputFormat, Part, ReasoningRequest, Request, Role, Tool, ToolCall, ToolChoice, ToolKind,
};
use crate::protocol::responses::tools::flat_name;

/// OpenAI rejects longer `user` values.
const USER_MAX_CHARS: usize = 64;
/// The content of a `tool` message for a call whose result never came (an interrupted turn).
const INTERRUPTED: &str = "(no result: the call was interrupted)";
/// The parameters of a custom (free-form) tool, sent upstream as a function with one string.
const CUSTOM_TOOL_PARAMETERS: &str =
    r#"{"type":"object","properties":{"input":{"type":"string"}},"required":["input"],"additionalProperties":false}"#;
const EMPTY_OBJECT_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// What the upstream body does with what the request asked for.
pub struct Encoded {
    pub body: Vec<u8>,
    /// Reasoning was switched on upstream.
    pub thinking_enabled: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ChatToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Switch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_thinking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a str>,
}

#[derive(Serialize)]
struct Switch {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ChatToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Cow<'a, str>>,
}

impl<'a> ChatMessage<'a> {
    fn new(role: &'static str, content: Content<'a>) -> Self {
        Self {
            role,
            content,
            reasoning_content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Null,
    Text(String),
    Parts(Vec<ContentPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart<'a> {
    Text {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Ephemeral>,
    },
    ImageUrl {
        image_url: ImageUrl<'a>,
    },
    File {
        file: FileData<'a>,
    },
}

/// The one cache marker OpenAI-compatible hosts that take Anthropic markers accept.
#[derive(Serialize)]
struct Ephemeral {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct FileData<'a> {
    file_data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
}

#[derive(Serialize)]
struct ChatToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize)]
struct FunctionCall {
    name: String,
    arguments: String,
}

#[derive(Serialize)]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDecl<'a>,
}

#[derive(Serialize)]
struct FunctionDecl<'a> {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatToolChoice {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedFunction,
    },
}

#[derive(Serialize)]
struct NamedFunction {
    name: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat<'a> {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchema<'a> },
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// Encodes `request` for `model` on a deployment with these options.
pub fn encode(request: &Request, model: &str, options: &ModelOptions) -> Result<Encoded, ConvertError> {
    let replay_reasoning = matches!(
        options.reasoning_dialect,
        ReasoningDialect::Deepseek | ReasoningDialect::Qwen
    );
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.instructions.is_empty() {
        let content = match request.cache_instructions && options.forward_cache_control {
            true => {
                let mut parts: Vec<ContentPart> = request
                    .instructions
                    .iter()
                    .map(|t| text_part(Cow::Borrowed(t)))
                    .collect();
                if let Some(ContentPart::Text { cache_control, .. }) = parts.last_mut() {
                    *cache_control = Some(Ephemeral { kind: "ephemeral" });
                }
                Content::Parts(parts)
            }
            false => Content::Text(request.instructions.join("\n\n")),
        };
        messages.push(ChatMessage::new("system", content));
    }
    let style = Style {
        replay_reasoning,
        cache_markers: options.forward_cache_control,
    };
    write_messages(&request.messages, style, &mut messages);
    if options.merge_system_messages {
        merge_system_messages(&mut messages);
    }

    let tools: Vec<ChatTool> = request.tools.iter().map(declare).collect();
    let (tool_choice, parallel_tool_calls) = match tools.is_empty() {
        // Without tools, neither a choice nor the parallel flag: hosts reject them alone.
        true => (None, None),
        false => (request.tool_choice.as_ref().map(choice), request.parallel_tool_calls),
    };

    let max_tokens = request
        .max_output_tokens
        .or(options.default_max_tokens.map(u64::from))
        .map(|n| match options.max_output_tokens {
            Some(cap) => n.min(u64::from(cap)),
            None => n,
        });
    let mut body = Body {
        model,
        messages,
        max_tokens,
        tools,
        tool_choice,
        parallel_tool_calls,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k.filter(|_| options.supports_top_k),
        // OpenAI accepts at most four.
        stop: &request.stop[..request.stop.len().min(4)],
        response_format: request.format.as_ref().map(response_format),
        reasoning_effort: None,
        thinking: None,
        enable_thinking: None,
        thinking_budget: None,
        stream: request.stream,
        stream_options: (request.stream && options.supports_stream_options)
            .then_some(StreamOptions { include_usage: true }),
        user: request.user.as_deref().map(|u| user_id_within(u, USER_MAX_CHARS)),
        prompt_cache_key: request
            .prompt_cache_key
            .as_deref()
            .filter(|_| options.supports_prompt_cache_key),
    };
    let thinking_enabled = write_reasoning(request, options.reasoning_dialect, &mut body);
    let body = serde_json::to_vec(&body).expect("a Chat request serialises");
    Ok(Encoded { body, thinking_enabled })
}

fn constant(json: &'static str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("constant JSON")
}

static CUSTOM_PARAMETERS: LazyLock<Box<RawValue>> = LazyLock::new(|| constant(CUSTOM_TOOL_PARAMETERS));
static EMPTY_SCHEMA: LazyLock<Box<RawValue>> = LazyLock::new(|| constant(EMPTY_OBJECT_SCHEMA));

/// The reasoning switch in the upstream's dialect (reference §1.8, [PC §1.2.6]).
fn write_reasoning<'a>(request: &'a Request, dialect: ReasoningDialect, body: &mut Body<'a>) -> bool {
    match (dialect, &request.reasoning) {
        (ReasoningDialect::None, _) | (_, ReasoningRequest::Unspecified) => false,
        (ReasoningDialect::Openai, ReasoningRequest::Disabled) => false,
        (ReasoningDialect::Openai, ReasoningRequest::Effort(effort)) => {
            body.reasoning_effort = Some(effort);
            true
        }
        // Never `reasoning_effort` next to a disabled thinking switch: DeepSeek rejects it.
        (ReasoningDialect::Deepseek, ReasoningRequest::Disabled) => {
            body.thinking = Some(Switch { kind: "disabled" });
            false
        }
        (ReasoningDialect::Deepseek, ReasoningRequest::Effort(effort)) => {
            body.thinking = Some(Switch { kind: "enabled" });
            body.reasoning_effort = Some(effort);
            true
        }
        (ReasoningDialect::Qwen, ReasoningRequest::Disabled) => {
            body.enable_thinking = Some(false);
            false
        }
        (ReasoningDialect::Qwen, ReasoningRequest::Effort(_)) => {
            body.enable_thinking = Some(true);
            body.thinking_budget = request.reasoning_budget;
            true
        }
    }
}

fn declare(tool: &Tool) -> ChatTool<'_> {
    let parameters: &RawValue = match tool.kind {
        ToolKind::Custom => &CUSTOM_PARAMETERS,
        ToolKind::Function => tool.parameters.as_deref().unwrap_or(&EMPTY_SCHEMA),
    };
    ChatTool {
        kind: "function",
        function: FunctionDecl {
            name: flat_name(&tool.name, tool.namespace.as_deref()),
            description: tool.description.as_deref(),
            parameters,
            strict: tool.strict,
        },
    }
}

fn choice(choice: &ToolChoice) -> ChatToolChoice {
    match choice {
        ToolChoice::Auto => ChatToolChoice::Mode("auto"),
        ToolChoice::None => ChatToolChoice::Mode("none"),
        ToolChoice::Required => ChatToolChoice::Mode("required"),
        ToolChoice::Named { name, namespace } => ChatToolChoice::Named {
            kind: "function",
            function: NamedFunction {
                name: flat_name(name, namespace.as_deref()),
            },
        },
    }
}

fn response_format(format: &OutputFormat) -> ResponseFormat<'_> {
    match format {
        OutputFormat::Text => ResponseFormat::Text,
        OutputFormat::JsonObject => ResponseFormat::JsonObject,
        OutputFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name,
                schema,
                strict: *strict,
                description: description.as_deref(),
            },
        },
    }
}

/// What the deployment wants of the messages.
#[derive(Clone, Copy)]
struct Style {
    /// Reasoning in history goes back as `reasoning_content` (DeepSeek, Qwen).
    replay_reasoning: bool,
    /// Cache breakpoints become `cache_control` markers on content parts (`forward_cache_control`).
    cache_markers: bool,
}

/// The conversation as Chat messages (reference §1.4).
fn write_messages<'a>(messages: &'a [Message], style: Style, out: &mut Vec<ChatMessage<'a>>) {
    let mut i = 0;
    while i < messages.len() {
        let message = &messages[i];
        i += 1;
        if message.role != Role::Assistant {
            write_other(message, style, out);
            continue;
        }
        let calls: Vec<&ToolCall> = message
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall(call) => Some(call),
                _ => None,
            })
            .collect();
        out.push(assistant(message, &calls, style.replay_reasoning));
        if calls.is_empty() {
            continue;
        }
        // The results of this turn's calls come from the messages up to the next assistant turn; what else
        // those messages hold follows the tool messages.
        let end = messages[i..]
            .iter()
            .position(|m| m.role == Role::Assistant)
            .map_or(messages.len(), |p| i + p);
        let following = &messages[i..end];
        let result_of = |id: &str| {
            following.iter().flat_map(|m| &m.parts).find_map(|p| match p {
                Part::ToolResult(r) if r.call_id == id => Some(r),
                _ => None,
            })
        };
        let mut media = Vec::new();
        for call in &calls {
            let (content, call_media) = match result_of(&call.id) {
                Some(result) => tool_output(&result.content, result.is_error),
                None => (INTERRUPTED.to_owned(), Vec::new()),
            };
            let mut message = ChatMessage::new("tool", Content::Text(content));
            message.tool_call_id = Some(openai_tool_id(&call.id));
            out.push(message);
            if !call_media.is_empty() {
                // Said so the model knows which call the pictures came from.
                media.push(text_part(Cow::Owned(format!(
                    "Images returned by tool call {}:",
                    call.id
                ))));
                media.extend(call_media);
            }
        }
        // Messages holding only results have been written as `tool` messages.
        let mut following = following
            .iter()
            .filter(|m| !m.parts.iter().all(|p| matches!(p, Part::ToolResult(_))))
            .peekable();
        if !media.is_empty() {
            // The user's own words after the results share the message that shows the pictures.
            if let Some(next) = following.next_if(|m| m.role == Role::User) {
                media.extend(next.parts.iter().filter_map(content_part));
            }
            out.push(ChatMessage::new("user", Content::Parts(media)));
        }
        for later in following {
            write_other(later, style, out);
        }
        i = end;
    }
}

/// A user or system message. Tool results in it were either placed after their call already or answer no
/// call at all (OpenAI rejects those), so they are left out here.
fn write_other<'a>(message: &'a Message, style: Style, out: &mut Vec<ChatMessage<'a>>) {
    let parts = || message.parts.iter().filter(|p| !matches!(p, Part::ToolResult(_)));
    let marked = style.cache_markers && message.parts.iter().any(|p| matches!(p, Part::CacheBreakpoint));
    let role = match message.role {
        Role::System => "system",
        _ => "user",
    };
    let content = match marked {
        true => Some(Content::Parts(marked_parts(&message.parts))),
        false if message.role == Role::System => Some(Content::Text(texts(parts()))),
        false => user_content(parts()),
    };
    if let Some(content) = content {
        out.push(ChatMessage::new(role, content));
    }
}

/// Content parts with each cache breakpoint as a marker on the part before it.
fn marked_parts(parts: &[Part]) -> Vec<ContentPart<'_>> {
    let mut out: Vec<ContentPart> = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::CacheBreakpoint => {
                if let Some(ContentPart::Text { cache_control, .. }) = out.last_mut() {
                    *cache_control = Some(Ephemeral { kind: "ephemeral" });
                }
            }
            part => out.extend(content_part(part)),
        }
    }
    out
}

fn text_part(text: Cow<'_, str>) -> ContentPart<'_> {
    ContentPart::Text {
        text,
        cache_control: None,
    }
}

fn texts<'a>(parts: impl Iterator<Item = &'a Part>) -> String {
    let texts: Vec<&str> = parts
        .filter_map(|p| match p {
            Part::Text(t) | Part::Refusal(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n\n")
}

/// Text-only content is a plain string (several hosts take nothing else); media make it a list of parts.
fn user_content<'a>(parts: impl Iterator<Item = &'a Part> + Clone) -> Option<Content<'a>> {
    let media = parts
        .clone()
        .any(|p| matches!(p, Part::Image { .. } | Part::File { .. }));
    if !media {
        let text = texts(parts);
        return (!text.is_empty()).then_some(Content::Text(text));
    }
    let parts: Vec<ContentPart> = parts.filter_map(content_part).collect();
    (!parts.is_empty()).then_some(Content::Parts(parts))
}

fn content_part(part: &Part) -> Option<ContentPart<'_>> {
    match part {
        Part::Text(text) | Part::Refusal(text) => Some(text_part(Cow::Borrowed(text))),
        Part::Image { url, detail } => Some(ContentPart::ImageUrl {
            image_url: ImageUrl {
                url,
                detail: detail.as_deref(),
            },
        }),
        Part::File { data_url, filename } => Some(ContentPart::File {
            file: FileData {
                file_data: data_url,
                filename: filename.as_deref(),
            },
        }),
        _ => None,
    }
}

/// A tool's output as `tool` message text, and the media it returned (which a `tool` message cannot hold).
fn tool_output(content: &[Part], is_error: bool) -> (String, Vec<ContentPart<'_>>) {
    let lines: Vec<&str> = content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) | Part::Refusal(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let mut text = lines.join("\n");
    if is_error {
        text.insert_str(0, "Error: ");
    }
    let media: Vec<ContentPart> = content
        .iter()
        .filter(|p| matches!(p, Part::Image { .. } | Part::File { .. }))
        .filter_map(content_part)
        .collect();
    (text, media)
}

fn assistant<'a>(message: &'a Message, calls: &[&'a ToolCall], replay_reasoning: bool) -> ChatMessage<'a> {
    // Adjacent text parts are one text cut in pieces; text on both sides of a call or of reasoning is two
    // paragraphs.
    let mut text = String::new();
    let mut separated = false;
    for part in &message.parts {
        match part {
            Part::Text(t) | Part::Refusal(t) => {
                if separated && !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(t);
                separated = false;
            }
            Part::CacheBreakpoint => {}
            _ => separated = true,
        }
    }
    let reasoning: Vec<&str> = message
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Reasoning(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    let content = match (text.is_empty(), calls.is_empty()) {
        (false, _) => Content::Text(text),
        (true, false) => Content::Null,
        (true, true) => Content::Text(String::new()),
    };
    let mut out = ChatMessage::new("assistant", content);
    // DeepSeek rejects a tool loop whose assistant messages lack the field, so it is always sent.
    if replay_reasoning {
        out.reasoning_content = Some(reasoning.join("\n"));
    }
    out.tool_calls = calls
        .iter()
        .map(|call| ChatToolCall {
            id: openai_tool_id(&call.id),
            kind: "function",
            function: FunctionCall {
                name: flat_name(&call.name, call.namespace.as_deref()),
                arguments: match call.kind {
                    ToolKind::Function if call.arguments.is_empty() => "{}".to_owned(),
                    ToolKind::Function => call.arguments.clone(),
                    ToolKind::Custom => serde_json::json!({ "input": call.arguments }).to_string(),
                },
            },
        })
        .collect();
    out
}

/// Moves the text of every later system message into one leading system message, for chat templates that
/// accept a system message only at the start. Position is lost; the text is kept in order.
fn merge_system_messages(messages: &mut Vec<ChatMessage<'_>>) {
    if messages.iter().skip(1).all(|m| m.role != "system") {
        return;
    }
    let mut texts = Vec::new();
    messages.retain(|m| {
        if m.role != "system" {
            return true;
        }
        if let Content::Text(text) = &m.content {
            texts.push(text.clone());
        }
        false
    });
    messages.insert(0, ChatMessage::new("system", Content::Text(texts.join("\n\n"))));
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Chat Completions request (a Chat client on another protocol's upstream)

/// What the answer to a Chat client needs from its request.
#[derive(Debug, Clone, Default)]
pub struct ChatFacts {
    /// `stream_options.include_usage`: the stream ends with a usage chunk.
    pub include_usage: bool,
}

#[derive(Deserialize)]
struct InBody<'a> {
    #[serde(borrow)]
    messages: Vec<InMessage<'a>>,
    #[serde(borrow, default)]
    tools: Vec<InTool<'a>>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(borrow, default)]
    stop: Option<&'a RawValue>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    #[serde(borrow, default)]
    response_format: Option<InFormat<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<InStreamOptions>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    safety_identifier: Option<String>,
    #[serde(default)]
    prompt_cache_key: Option<String>,
}

#[derive(Deserialize)]
struct InStreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    role: &'a str,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<InToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct InToolCall {
    id: String,
    #[serde(default)]
    function: Option<InFunctionCall>,
}

#[derive(Deserialize)]
struct InFunctionCall {
    name: String,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct InTool<'a> {
    #[serde(rename = "type", default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    function: Option<InFunction<'a>>,
}

#[derive(Deserialize)]
struct InFunction<'a> {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct InFormat<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    json_schema: Option<InJsonSchema<'a>>,
}

#[derive(Deserialize)]
struct InJsonSchema<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct InPart<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    image_url: Option<InImageUrl>,
    #[serde(default)]
    file: Option<InFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InImageUrl {
    Url(String),
    Object {
        url: String,
        #[serde(default)]
        detail: Option<String>,
    },
}

#[derive(Deserialize)]
struct InFile {
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

fn bad(message: impl Into<String>, param: &str) -> ConvertError {
    ConvertError::invalid(message, param)
}

/// Decodes a Chat Completions request body.
pub fn decode(body: &[u8]) -> Result<(Request, ChatFacts), ConvertError> {
    let body: InBody = serde_json::from_slice(body).map_err(|e| {
        bad(
            format!("request body is not a valid chat completion request: {e}"),
            "messages",
        )
    })?;
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, message) in body.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let parts = match message.content {
            Some(raw) => content_parts(raw, &format!("{at}.content"))?,
            None => Vec::new(),
        };
        let message = match message.role {
            "system" | "developer" => Message {
                role: Role::System,
                parts,
            },
            "user" => Message {
                role: Role::User,
                parts,
            },
            "assistant" => {
                let mut all = Vec::with_capacity(parts.len() + 1 + message.tool_calls.len());
                if let Some(text) = message.reasoning_content.clone().filter(|t| !t.is_empty()) {
                    all.push(Part::Reasoning(crate::protocol::hub::Reasoning { text, opaque: None }));
                }
                all.extend(parts);
                for call in &message.tool_calls {
                    let function = call
                        .function
                        .as_ref()
                        .ok_or_else(|| bad(format!("{at}.tool_calls: function is required"), &at))?;
                    all.push(Part::ToolCall(ToolCall {
                        id: call.id.clone(),
                        name: function.name.clone(),
                        namespace: None,
                        kind: ToolKind::Function,
                        arguments: match &function.arguments {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            None | Some(serde_json::Value::Null) => String::new(),
                            Some(other) => other.to_string(),
                        },
                    }));
                }
                Message {
                    role: Role::Assistant,
                    parts: all,
                }
            }
            "tool" => {
                let call_id = message.tool_call_id.clone().ok_or_else(|| {
                    bad(
                        format!("{at}.tool_call_id: field is required"),
                        &format!("{at}.tool_call_id"),
                    )
                })?;
                Message {
                    role: Role::User,
                    parts: vec![Part::ToolResult(crate::protocol::hub::ToolResult {
                        call_id,
                        content: parts,
                        is_error: false,
                    })],
                }
            }
            other => return Err(bad(format!("{at}.role: unknown role '{other}'"), &format!("{at}.role"))),
        };
        if !message.parts.is_empty() {
            messages.push(message);
        }
    }
    let tools = body
        .tools
        .into_iter()
        .filter(|t| t.kind.is_none_or(|k| k == "function"))
        .filter_map(|t| t.function)
        .map(|f| Tool {
            name: f.name,
            namespace: None,
            description: f.description,
            kind: ToolKind::Function,
            parameters: f.parameters.map(|p| p.to_owned()),
            strict: f.strict,
        })
        .collect();
    let tool_choice = match body.tool_choice {
        None => None,
        Some(raw) => Some(match raw.get().trim_matches('"') {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                #[derive(Deserialize)]
                struct Named {
                    function: NamedIn,
                }
                #[derive(Deserialize)]
                struct NamedIn {
                    name: String,
                }
                let named: Named = serde_json::from_str(raw.get())
                    .map_err(|_| bad("tool_choice: unrecognised value", "tool_choice"))?;
                ToolChoice::Named {
                    name: named.function.name,
                    namespace: None,
                }
            }
        }),
    };
    let stop = match body.stop {
        None => Vec::new(),
        Some(raw) if raw.get().starts_with('"') => vec![
            serde_json::from_str(raw.get())
                .map_err(|_| bad("stop: must be a string or an array of strings", "stop"))?,
        ],
        Some(raw) => serde_json::from_str::<Option<Vec<String>>>(raw.get())
            .map_err(|_| bad("stop: must be a string or an array of strings", "stop"))?
            .unwrap_or_default(),
    };
    let format = match body.response_format {
        None => None,
        Some(format) => Some(match format.kind {
            "text" => OutputFormat::Text,
            "json_object" => OutputFormat::JsonObject,
            "json_schema" => {
                let schema = format
                    .json_schema
                    .ok_or_else(|| bad("response_format.json_schema: field is required", "response_format"))?;
                OutputFormat::JsonSchema {
                    name: schema.name.unwrap_or_else(|| "output".into()),
                    schema: schema.schema.map(|s| s.to_owned()).ok_or_else(|| {
                        bad(
                            "response_format.json_schema.schema: field is required",
                            "response_format",
                        )
                    })?,
                    strict: schema.strict,
                    description: schema.description,
                }
            }
            other => {
                return Err(bad(
                    format!("response_format.type: unknown type '{other}'"),
                    "response_format",
                ));
            }
        }),
    };
    let request = Request {
        instructions: Vec::new(),
        cache_instructions: false,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: body.parallel_tool_calls,
        max_output_tokens: body.max_completion_tokens.or(body.max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: None,
        stop,
        reasoning_budget: None,
        reasoning: match body.reasoning_effort.as_deref() {
            None => ReasoningRequest::Unspecified,
            Some("none") => ReasoningRequest::Disabled,
            Some(effort) => ReasoningRequest::Effort(effort.to_owned()),
        },
        format,
        stream: body.stream.unwrap_or(false),
        user: body.safety_identifier.or(body.user),
        prompt_cache_key: body.prompt_cache_key,
    };
    let facts = ChatFacts {
        include_usage: body.stream_options.is_some_and(|o| o.include_usage),
    };
    Ok((request, facts))
}

/// Message content: a string or a list of parts.
fn content_parts(raw: &RawValue, at: &str) -> Result<Vec<Part>, ConvertError> {
    if let Some(parts) = crate::protocol::hub::plain_text(raw, at)? {
        return Ok(parts);
    }
    let parts: Vec<InPart> = serde_json::from_str(raw.get()).map_err(|e| bad(format!("{at}: {e}"), at))?;
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let p = format!("{at}[{j}]");
        match part.kind {
            "text" => out.extend(part.text.filter(|t| !t.is_empty()).map(Part::Text)),
            "refusal" => out.extend(part.refusal.filter(|t| !t.is_empty()).map(Part::Refusal)),
            "image_url" => match part.image_url {
                Some(InImageUrl::Url(url)) => out.push(Part::Image { url, detail: None }),
                Some(InImageUrl::Object { url, detail }) => out.push(Part::Image { url, detail }),
                None => return Err(bad(format!("{p}.image_url: field is required"), &p)),
            },
            "file" => match part.file.and_then(|f| f.file_data.map(|d| (d, f.filename))) {
                Some((data_url, filename)) => out.push(Part::File { data_url, filename }),
                None => return Err(bad(format!("{p}.file.file_data: files by id are not supported"), &p)),
            },
            "input_audio" => {
                return Err(ConvertError {
                    message: format!("{p}: audio input is not supported by this model's provider"),
                    param: Some(p),
                    code: Some("unsupported_parameter"),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::responses::request::decode;

    fn encode_json(body: &[u8], options: &ModelOptions) -> Value {
        let request = decode(body, b"key").unwrap().request;
        serde_json::from_slice(&encode(&request, "up", options).unwrap().body).unwrap()
    }

    #[test]
    fn the_reference_example_for_a_deepseek_style_deployment() {
        let body = br#"{"model":"m","stream":true,"store":false,"tool_choice":"auto","parallel_tool_calls":true,
            "reasoning":{"summary":"auto"},"include":["reasoning.encrypted_content"],"prompt_cache_key":"sess",
            "input":[
              {"type":"message","role":"developer","content":[{"type":"input_text","text":"You are a coding agent"}]},
              {"type":"message","role":"user","content":[{"type":"input_text","text":"Run echo"}]},
              {"type":"function_call","name":"exec_command","arguments":"{\"cmd\": \"echo hi\"}","call_id":"call_1"},
              {"type":"function_call_output","call_id":"call_1","output":"hi\n"}],
            "tools":[{"type":"function","name":"exec_command","description":"run","strict":false,"parameters":{"type":"object","properties":{"cmd":{"type":"string"}}}},
                     {"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object"}}]},
                     {"type":"web_search","external_web_access":true}]}"#;
        let options = ModelOptions {
            reasoning_dialect: ReasoningDialect::Deepseek,
            ..ModelOptions::default()
        };
        let sent = encode_json(body, &options);
        assert_eq!(
            sent,
            json!({"model":"up",
              "messages":[
                {"role":"system","content":"You are a coding agent"},
                {"role":"user","content":"Run echo"},
                {"role":"assistant","content":null,"reasoning_content":"",
                 "tool_calls":[{"id":"call_1","type":"function","function":{"name":"exec_command","arguments":"{\"cmd\": \"echo hi\"}"}}]},
                {"role":"tool","content":"hi\n","tool_call_id":"call_1"}],
              "tools":[{"type":"function","function":{"name":"exec_command","description":"run","parameters":{"type":"object","properties":{"cmd":{"type":"string"}}},"strict":false}},
                       {"type":"function","function":{"name":"multi_agent_v1__spawn_agent","description":"agents","parameters":{"type":"object"}}}],
              "tool_choice":"auto","parallel_tool_calls":true,
              "stream":true,"stream_options":{"include_usage":true}})
        );
    }

    #[test]
    fn parallel_calls_stay_in_one_message_with_results_in_call_order_and_orphans_filled() {
        let body = br#"{"model":"m","input":[
            {"role":"user","content":"go"},
            {"type":"function_call","name":"a","arguments":"{}","call_id":"c1"},
            {"type":"function_call","name":"b","arguments":"{}","call_id":"c2"},
            {"type":"custom_tool_call","name":"apply_patch","input":"*** Begin Patch","call_id":"c3"},
            {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"two"},{"type":"input_image","image_url":"data:image/png;base64,AA"}]},
            {"type":"function_call_output","call_id":"c1","output":"one"},
            {"type":"function_call_output","call_id":"nobody","output":"stray"},
            {"role":"user","content":"next"}],
            "tools":[{"type":"custom","name":"apply_patch"}]}"#;
        let sent = encode_json(body, &ModelOptions::default());
        let messages = sent["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["user", "assistant", "tool", "tool", "tool", "user"]);
        assert_eq!(messages[1]["tool_calls"].as_array().unwrap().len(), 3);
        assert_eq!(
            messages[1]["tool_calls"][2]["function"]["arguments"],
            r#"{"input":"*** Begin Patch"}"#
        );
        assert_eq!(
            (messages[2]["tool_call_id"].as_str(), messages[2]["content"].as_str()),
            (Some("c1"), Some("one"))
        );
        assert_eq!(messages[3]["content"], "two");
        assert_eq!(messages[4]["content"], INTERRUPTED);
        assert_eq!(messages[5]["content"][0]["text"], "Images returned by tool call c2:");
        assert_eq!(messages[5]["content"][1]["type"], "image_url");
        assert_eq!(
            messages[5]["content"][2]["text"], "next",
            "the user's next words join the pictures"
        );
        assert_eq!(sent["tools"][0]["function"]["parameters"]["required"], json!(["input"]));
        assert!(sent.get("tool_choice").is_none() && sent.get("stream").is_none());
    }

    #[test]
    fn prompt_cache_key_only_where_the_deployment_accepts_it() {
        let body = br#"{"model":"m","input":"hi","prompt_cache_key":"session-1"}"#;
        assert!(
            encode_json(body, &ModelOptions::default())
                .get("prompt_cache_key")
                .is_none()
        );
        let options = ModelOptions {
            supports_prompt_cache_key: true,
            ..ModelOptions::default()
        };
        assert_eq!(encode_json(body, &options)["prompt_cache_key"], "session-1");
    }

    #[test]
    fn limits_formats_reasoning_and_no_tools() {
        let body = br#"{"model":"m","input":"hi","max_output_tokens":90000,"reasoning":{"effort":"high"},
            "text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object","properties":{"z":{},"a":{}}},"strict":true}},
            "tools":[{"type":"web_search"}],"tool_choice":"required","parallel_tool_calls":false,
            "user":"a-user-id-that-is-far-too-long-for-openai-because-it-has-more-than-sixty-four-characters"}"#;
        let options = ModelOptions {
            max_output_tokens: Some(8192),
            ..ModelOptions::default()
        };
        let text = String::from_utf8(
            encode(&decode(body, b"key").unwrap().request, "up", &options)
                .unwrap()
                .body,
        )
        .unwrap();
        let sent: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(sent["max_tokens"], 8192);
        assert_eq!(sent["reasoning_effort"], "high");
        assert!(
            text.contains(r#""schema":{"type":"object","properties":{"z":{},"a":{}}}"#),
            "{text}"
        );
        assert_eq!(sent["response_format"]["json_schema"]["name"], "answer");
        assert!(
            sent.get("tools").is_none()
                && sent.get("tool_choice").is_none()
                && sent.get("parallel_tool_calls").is_none()
        );
        assert_eq!(sent["user"].as_str().unwrap().len(), 64);
    }
}
