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
use crate::protocol::convert::signature::is_router_minted_signature;
use crate::protocol::convert::{ConvertError, ModelOptions, ReasoningDialect};
use crate::protocol::fields::{
    Lenient, Path, Shape, invalid_type, invalid_value, items, missing, read, read_int, unsupported_parameter,
    unsupported_value,
};
use crate::protocol::hub::{
    self, DataUrl, Message, Opaque, OutputFormat, Part, Reasoning, ReasoningRequest, Request, Role, Tool, ToolCall,
    ToolChoice, ToolKind, ToolResult,
};
use crate::protocol::json::{Reader, Seen};
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
    Text(Cow<'a, str>),
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
            false => Content::Text(Cow::Owned(request.instructions.join("\n\n"))),
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
    let body = crate::protocol::json::to_vec(&body).expect("a Chat request serialises");
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
        // What else the answering messages hold follows the tool messages.
        let following = hub::answering_messages(messages, i);
        i += following.len();
        let mut media = Vec::new();
        for call in &calls {
            let (content, call_media) = match hub::result_of(following, &call.id) {
                Some(result) => tool_output(&result.content, result.is_error),
                None => (INTERRUPTED.to_owned(), Vec::new()),
            };
            let mut message = ChatMessage::new("tool", Content::Text(Cow::Owned(content)));
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

/// The texts joined by blank lines; one text is borrowed as it is.
fn texts<'a>(parts: impl Iterator<Item = &'a Part>) -> Cow<'a, str> {
    let mut texts = parts.filter_map(|p| match p {
        Part::Text(t) | Part::Refusal(t) => Some(t.as_str()),
        _ => None,
    });
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return Cow::Borrowed(first);
    };
    let mut joined = format!("{first}\n\n{second}");
    for text in texts {
        joined.push_str("\n\n");
        joined.push_str(text);
    }
    Cow::Owned(joined)
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
        (false, _) => Content::Text(Cow::Owned(text)),
        (true, false) => Content::Null,
        (true, true) => Content::Text(Cow::Borrowed("")),
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
    messages.insert(
        0,
        ChatMessage::new("system", Content::Text(Cow::Owned(texts.join("\n\n")))),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Chat Completions request (a Chat client on another protocol's upstream)

/// What the answer to a Chat client needs from its request.
#[derive(Debug, Clone, Default)]
pub struct ChatFacts {
    /// `stream_options.include_usage` on a streamed request: the stream ends with a usage chunk.
    pub include_usage: bool,
}

/// The request's fields, each read by itself so that an error names it.
#[derive(Deserialize, Default)]
struct InBody<'a> {
    /// The one field read typed in the same pass: messages are most of a request.
    #[serde(borrow, default)]
    messages: Lenient<Vec<Lenient<InMessage<'a>>>>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    functions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    top_p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_effort: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
    #[serde(borrow, default)]
    safety_identifier: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
    #[serde(borrow, default)]
    audio: Option<&'a RawValue>,
    #[serde(borrow, default)]
    modalities: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct InMessage<'a> {
    #[serde(borrow, default)]
    role: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Lenient<InContent<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_signature: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_call_id: Lenient<Cow<'a, str>>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Shape<'de> for InMessage<'a> {
    fn from_map<M: serde::de::MapAccess<'de>>(map: M) -> Result<Option<Self>, M::Error> {
        Self::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

/// Message content: a string, or a list of parts (each read by itself, so that an error names it).
enum InContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<&'a RawValue>),
}

impl<'de: 'a, 'a> Shape<'de> for InContent<'a> {
    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(InContent::Text(text))
    }

    fn from_seq<S: serde::de::SeqAccess<'de>>(mut seq: S) -> Result<Option<Self>, S::Error> {
        let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(part) = seq.next_element()? {
            parts.push(part);
        }
        Ok(Some(InContent::Parts(parts)))
    }
}

#[derive(Deserialize)]
struct InPart<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image_url: Option<&'a RawValue>,
    #[serde(borrow, default)]
    file: Option<&'a RawValue>,
    #[serde(default)]
    prompt_cache_breakpoint: Option<InBreakpoint>,
}

/// OpenAI's explicit cache breakpoint on a content part.
#[derive(Deserialize)]
struct InBreakpoint {
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize)]
struct InImage {
    url: String,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct InFile<'a> {
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(borrow, default)]
    file_id: Option<&'a RawValue>,
}

/// An object holding `type` and `function` (a tool, a tool call, a named tool choice).
#[derive(Deserialize)]
struct InTyped<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<&'a RawValue>,
    #[serde(borrow, default)]
    allowed_tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InFunction<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct InAllowed<'a> {
    #[serde(borrow, default)]
    mode: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InFormat<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    json_schema: Option<&'a RawValue>,
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
struct InStreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

// ---------------------------------------------------------------------------------------------------------
// The hand-written read: the same fields as the serde derives of `InBody` and `InMessage`, each read as serde
// reads it (`null` is `None` or absent, a field given twice is refused, a `Lenient` field of another type is
// `Wrong`), unknown ones skipped. Anything else is `None`, for serde to read (and to name the error).

/// The body as serde reads it into [`InBody`], or `None`.
fn read_body(text: &str) -> Option<InBody<'_>> {
    let mut body = InBody::default();
    let mut seen = Seen::default();
    let mut r = Reader::new(text);
    r.object(|r, key| {
        let (index, slot) = match key {
            "messages" => {
                body.messages = seen.first(0).and_then(|()| lenient(r, b'[', read_messages))?;
                return Some(());
            }
            "tools" => (1, &mut body.tools),
            "functions" => (2, &mut body.functions),
            "tool_choice" => (3, &mut body.tool_choice),
            "function_call" => (4, &mut body.function_call),
            "parallel_tool_calls" => (5, &mut body.parallel_tool_calls),
            "max_completion_tokens" => (6, &mut body.max_completion_tokens),
            "max_tokens" => (7, &mut body.max_tokens),
            "temperature" => (8, &mut body.temperature),
            "top_p" => (9, &mut body.top_p),
            "stop" => (10, &mut body.stop),
            "reasoning_effort" => (11, &mut body.reasoning_effort),
            "response_format" => (12, &mut body.response_format),
            "stream" => (13, &mut body.stream),
            "stream_options" => (14, &mut body.stream_options),
            "user" => (15, &mut body.user),
            "safety_identifier" => (16, &mut body.safety_identifier),
            "prompt_cache_key" => (17, &mut body.prompt_cache_key),
            "n" => (18, &mut body.n),
            "audio" => (19, &mut body.audio),
            "modalities" => (20, &mut body.modalities),
            _ => return r.skip(),
        };
        *slot = seen.first(index).and_then(|()| r.nullable(Reader::raw))?;
        Some(())
    })?;
    r.end()?;
    Some(body)
}

/// A [`Lenient`] field as serde reads it: absent for `null`, what `read` reads for a value that starts with
/// `opens` (the one JSON type the field takes), and `Wrong` for a value of any other type.
fn lenient<'a, T>(
    r: &mut Reader<'a>,
    opens: u8,
    read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
) -> Option<Lenient<T>> {
    match r.peek()? {
        b'n' => r.null().then_some(Lenient::Absent),
        byte if byte == opens => read(r).map(Lenient::Value),
        _ => r.skip().map(|()| Lenient::Wrong),
    }
}

fn read_messages<'a>(r: &mut Reader<'a>) -> Option<Vec<Lenient<InMessage<'a>>>> {
    let mut messages = Vec::with_capacity(4);
    r.array(|r| lenient(r, b'{', read_in_message).map(|m| messages.push(m)))?;
    Some(messages)
}

fn read_in_message<'a>(r: &mut Reader<'a>) -> Option<InMessage<'a>> {
    let mut message = InMessage::default();
    let mut seen = Seen::default();
    r.object(|r, key| {
        let (index, slot) = match key {
            "role" => (0, &mut message.role),
            "content" => {
                message.content = seen.first(1).and_then(|()| read_in_content(r))?;
                return Some(());
            }
            "reasoning_content" => (2, &mut message.reasoning_content),
            "reasoning_signature" => (3, &mut message.reasoning_signature),
            "refusal" => (4, &mut message.refusal),
            "tool_call_id" => (5, &mut message.tool_call_id),
            "tool_calls" => {
                message.tool_calls = seen.first(6).and_then(|()| r.nullable(Reader::raw))?;
                return Some(());
            }
            "function_call" => {
                message.function_call = seen.first(7).and_then(|()| r.nullable(Reader::raw))?;
                return Some(());
            }
            _ => return r.skip(),
        };
        *slot = seen.first(index).and_then(|()| lenient(r, b'"', Reader::str))?;
        Some(())
    })?;
    Some(message)
}

/// A message's content as [`InContent`]'s [`Shape`] reads it.
fn read_in_content<'a>(r: &mut Reader<'a>) -> Option<Lenient<InContent<'a>>> {
    match r.peek()? {
        b'[' => {
            let mut parts = Vec::with_capacity(2);
            r.array(|r| r.raw().map(|part| parts.push(part)))?;
            Some(Lenient::Value(InContent::Parts(parts)))
        }
        _ => lenient(r, b'"', |r| r.str().map(InContent::Text)),
    }
}

/// An object at `at`, with its fields raw.
fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue, at: &Path) -> Result<T, ConvertError> {
    match raw.get().starts_with('{') {
        true => serde_json::from_str(raw.get()).map_err(|_| invalid_type(at, "an object")),
        false => Err(invalid_type(at, "an object")),
    }
}

fn string<'a>(raw: Option<&'a RawValue>, at: &Path) -> Result<Option<Cow<'a, str>>, ConvertError> {
    read::<Cow<str>>(raw, at, "a string")
}

/// A message's string field.
fn text<'a>(field: Lenient<Cow<'a, str>>, at: &Path) -> Result<Option<Cow<'a, str>>, ConvertError> {
    field.read(at, "a string")
}

fn required_string<'a>(raw: Option<&'a RawValue>, at: &Path) -> Result<Cow<'a, str>, ConvertError> {
    string(raw, at)?.ok_or_else(|| missing(at))
}

/// Why a body that the typed pass could not read is refused. A message that is an object the pass still
/// cannot read (a key given twice) is named; anything else is the body's own fault.
fn unreadable_body(body: &[u8], error: serde_json::Error) -> ConvertError {
    #[derive(Deserialize)]
    struct RawMessages<'a> {
        #[serde(borrow, default)]
        messages: Option<Vec<&'a RawValue>>,
    }
    if error.is_data()
        && let Ok(RawMessages { messages: Some(list) }) = crate::protocol::json::parse(body)
        && let Some(i) = list
            .iter()
            .position(|m| serde_json::from_str::<InMessage>(m.get()).is_err())
    {
        return invalid_type(&Path::Root.key("messages").index(i), "an object");
    }
    let message = match error.is_data() {
        true => format!("The request body must be a JSON object: {error}"),
        false => format!("The request body is not valid JSON: {error}"),
    };
    ConvertError {
        message,
        param: None,
        code: None,
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

/// Decodes a Chat Completions request body. Fields whose loss would change the shape of the answer (`n`,
/// audio output) are refused, as are parts and tools the other protocols have no form for.
///
/// The body is read by hand first ([`read_body`]); what that read does not take, serde reads into the same
/// [`InBody`] (and names the error).
pub fn decode(bytes: &[u8]) -> Result<(Request, ChatFacts), ConvertError> {
    match std::str::from_utf8(bytes).ok().and_then(read_body) {
        Some(body) => decode_body(body),
        None => decode_with_serde(bytes),
    }
}

fn decode_with_serde(body: &[u8]) -> Result<(Request, ChatFacts), ConvertError> {
    // A struct also deserialises from an array; a request is an object.
    if body.trim_ascii_start().first().is_some_and(|b| *b != b'{') && serde_json::from_slice::<&RawValue>(body).is_ok()
    {
        return Err(ConvertError {
            message: "The request body must be a JSON object.".into(),
            param: None,
            code: None,
        });
    }
    decode_body(crate::protocol::json::parse(body).map_err(|e| unreadable_body(body, e))?)
}

/// The rest of [`decode`], from the body's fields.
fn decode_body(mut body: InBody<'_>) -> Result<(Request, ChatFacts), ConvertError> {
    let root = Path::Root;
    refuse_other_outputs(&body)?;

    let at = root.key("messages");
    let list = std::mem::take(&mut body.messages)
        .read(&at, "an array")?
        .ok_or_else(|| missing(&at))?;
    if list.is_empty() {
        return Err(invalid_value(&at, "'messages' must contain at least one message."));
    }
    let mut messages = Vec::with_capacity(list.len());
    let mut legacy = LegacyCalls::default();
    for (i, message) in list.into_iter().enumerate() {
        let p = at.index(i);
        let message = message
            .read(&p, "an object")?
            .ok_or_else(|| invalid_type(&p, "an object"))?;
        if let Some(message) = read_message(message, &p, &mut legacy)? {
            messages.push(message);
        }
    }

    let mut tools = read_tools(body.tools, body.functions)?;
    let (tool_choice, allowed) = read_tool_choice(body.tool_choice, body.function_call)?;
    if let Some(allowed) = allowed {
        tools.retain(|t| allowed.contains(&t.name));
    }
    let max_output_tokens = match read_int(body.max_completion_tokens, &root.key("max_completion_tokens"))? {
        Some(n) => Some(("max_completion_tokens", n)),
        None => read_int(body.max_tokens, &root.key("max_tokens"))?.map(|n| ("max_tokens", n)),
    }
    .map(|(key, n)| {
        u64::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            invalid_value(
                &root.key(key),
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
            )
        })
    })
    .transpose()?;
    let reasoning = match string(body.reasoning_effort, &root.key("reasoning_effort"))?.as_deref() {
        None => ReasoningRequest::Unspecified,
        Some("none") => ReasoningRequest::Disabled,
        Some(effort @ ("minimal" | "low" | "medium" | "high" | "xhigh" | "max")) => {
            ReasoningRequest::Effort(effort.to_owned())
        }
        Some(other) => {
            return Err(unsupported_value(
                &root.key("reasoning_effort"),
                format!(
                    "Invalid value: '{other}'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', \
                     'xhigh' and 'max'."
                ),
            ));
        }
    };
    let stream = read::<bool>(body.stream, &root.key("stream"), "a boolean")?.unwrap_or(false);
    let include_usage = match body.stream_options {
        Some(raw) if raw.get() != "null" => object::<InStreamOptions>(raw, &root.key("stream_options"))?.include_usage,
        _ => None,
    };
    let user = match string(body.user, &root.key("user"))?.filter(|u| !u.is_empty()) {
        Some(user) => Some(user),
        None => string(body.safety_identifier, &root.key("safety_identifier"))?.filter(|u| !u.is_empty()),
    };
    let request = Request {
        instructions: Vec::new(),
        cache_instructions: false,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: read(body.parallel_tool_calls, &root.key("parallel_tool_calls"), "a boolean")?,
        max_output_tokens,
        temperature: read(body.temperature, &root.key("temperature"), "a number")?,
        top_p: read(body.top_p, &root.key("top_p"), "a number")?,
        top_k: None,
        stop: read_stop(body.stop)?,
        reasoning,
        reasoning_budget: None,
        format: read_format(body.response_format)?,
        stream,
        user: user.map(Cow::into_owned),
        prompt_cache_key: string(body.prompt_cache_key, &root.key("prompt_cache_key"))?.map(Cow::into_owned),
    };
    let facts = ChatFacts {
        include_usage: stream && include_usage == Some(true),
    };
    Ok((request, facts))
}

/// `n` above 1 and audio output change what the client gets back; no other protocol has them.
fn refuse_other_outputs(body: &InBody) -> Result<(), ConvertError> {
    let root = Path::Root;
    if read_int(body.n, &root.key("n"))?.is_some_and(|n| n > 1) {
        return Err(unsupported_value(
            &root.key("n"),
            "Only one choice can be generated with this model ('n' must be 1).",
        ));
    }
    if body.audio.is_some_and(|a| a.get() != "null") {
        return Err(unsupported_parameter(
            &root.key("audio"),
            "Audio output is not supported with this model.",
        ));
    }
    let modalities: Vec<Cow<str>> =
        read(body.modalities, &root.key("modalities"), "an array of strings")?.unwrap_or_default();
    if modalities.iter().any(|m| m == "audio") {
        return Err(unsupported_value(
            &root.key("modalities"),
            "Audio output is not supported with this model.",
        ));
    }
    Ok(())
}

/// One message, or `None` when it carries nothing.
fn read_message(
    mut message: InMessage<'_>,
    at: &Path,
    legacy: &mut LegacyCalls,
) -> Result<Option<Message>, ConvertError> {
    let role = text(message.role, &at.key("role"))?.ok_or_else(|| missing(&at.key("role")))?;
    let cp = at.key("content");
    let message = match role.as_ref() {
        "system" | "developer" => Message {
            role: Role::System,
            parts: content_parts(&mut message.content, &cp, Allowed::Text)?,
        },
        "user" => Message {
            role: Role::User,
            parts: content_parts(&mut message.content, &cp, Allowed::Media)?,
        },
        "assistant" => {
            let mut parts = Vec::new();
            // Reasoning an Anthropic upstream signed (`reasoning_signature`) can go back to one; other
            // reasoning is kept as text for the upstreams that replay it.
            if let Some(text) = text(message.reasoning_content, &at.key("reasoning_content"))? {
                let signature = self::text(message.reasoning_signature, &at.key("reasoning_signature"))?;
                let opaque = signature
                    .filter(|s| !s.is_empty() && !is_router_minted_signature(s))
                    .map(|signature| Opaque::Anthropic {
                        block: serde_json::value::to_raw_value(&serde_json::json!({
                            "type": "thinking", "thinking": text, "signature": signature,
                        }))
                        .expect("a JSON object serialises"),
                    });
                if !text.is_empty() || opaque.is_some() {
                    parts.push(Part::Reasoning(Reasoning {
                        text: text.into_owned(),
                        opaque,
                    }));
                }
            }
            parts.extend(content_parts(&mut message.content, &cp, Allowed::Refusal)?);
            if let Some(refusal) = text(message.refusal, &at.key("refusal"))?.filter(|r| !r.is_empty()) {
                parts.push(Part::Refusal(refusal.into_owned()));
            }
            let tp = at.key("tool_calls");
            for (j, call) in items(message.tool_calls, &tp)?
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let p = tp.index(j);
                let call: InTyped = object(call, &p)?;
                match string(call.kind, &p.key("type"))?.as_deref() {
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
                let id = required_string(call.id, &p.key("id"))?.into_owned();
                parts.push(Part::ToolCall(read_call(id, call.function, &p.key("function"))?));
            }
            if message.function_call.is_some_and(|f| f.get() != "null") {
                let id = legacy.next_id();
                parts.push(Part::ToolCall(read_call(
                    id,
                    message.function_call,
                    &at.key("function_call"),
                )?));
            }
            Message {
                role: Role::Assistant,
                parts,
            }
        }
        "tool" => {
            let call_id = text(message.tool_call_id, &at.key("tool_call_id"))?
                .ok_or_else(|| missing(&at.key("tool_call_id")))?
                .into_owned();
            Message {
                role: Role::User,
                parts: vec![Part::ToolResult(ToolResult {
                    call_id,
                    content: content_parts(&mut message.content, &cp, Allowed::Media)?,
                    is_error: false,
                })],
            }
        }
        // Answers the most recent legacy call; without one it is an orphan, dropped later.
        "function" => Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: legacy.last.clone().unwrap_or_else(|| "toolu_legacy_orphan".to_owned()),
                content: content_parts(&mut message.content, &cp, Allowed::Media)?,
                is_error: false,
            })],
        },
        other => {
            return Err(invalid_value(
                &at.key("role"),
                format!(
                    "Invalid value: '{other}'. Supported values are: 'system', 'developer', 'user', 'assistant', \
                     'tool', and 'function'."
                ),
            ));
        }
    };
    // An empty user turn still counts (it keeps the turns alternating); other empty messages say nothing.
    Ok((!message.parts.is_empty() || message.role == Role::User).then_some(message))
}

/// A call from an object holding `{name, arguments}`.
fn read_call(id: String, function: Option<&RawValue>, at: &Path) -> Result<ToolCall, ConvertError> {
    let function: InFunction = object(function.ok_or_else(|| missing(at))?, at)?;
    let name = required_string(function.name, &at.key("name"))?.into_owned();
    let arguments = match function.arguments {
        None => String::new(),
        Some(raw) if raw.get() == "null" => String::new(),
        Some(raw) if raw.get().starts_with('"') => string(Some(raw), &at.key("arguments"))?
            .unwrap_or_default()
            .into_owned(),
        // Lenient: some clients send the arguments already parsed.
        Some(raw) if raw.get().starts_with('{') => raw.get().to_owned(),
        Some(_) => return Err(invalid_type(&at.key("arguments"), "a string")),
    };
    Ok(ToolCall {
        id,
        name,
        namespace: None,
        kind: ToolKind::Function,
        arguments,
    })
}

/// Which content parts a role may send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// System and developer messages: text.
    Text,
    /// Assistant messages: text and refusals.
    Refusal,
    /// User and tool messages: text, images and files.
    Media,
}

/// Message content: a string or a list of parts. Blank text says nothing and is dropped.
fn content_parts(content: &mut Lenient<InContent<'_>>, at: &Path, allowed: Allowed) -> Result<Vec<Part>, ConvertError> {
    let list = match std::mem::take(content).read(at, "a string or an array of content parts")? {
        None => return Ok(Vec::new()),
        Some(InContent::Text(text)) if text.trim().is_empty() => return Ok(Vec::new()),
        Some(InContent::Text(text)) => return Ok(vec![Part::Text(text.into_owned())]),
        Some(InContent::Parts(list)) => list,
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, part) in list.into_iter().enumerate() {
        let p = at.index(j);
        let part: InPart = object(part, &p)?;
        let kind = required_string(part.kind, &p.key("type"))?;
        let before = out.len();
        match (kind.as_ref(), allowed) {
            ("text", _) => {
                let text = required_string(part.text, &p.key("text"))?;
                if !text.trim().is_empty() {
                    out.push(Part::Text(text.into_owned()));
                }
            }
            ("refusal", Allowed::Refusal) => {
                let text = required_string(part.refusal, &p.key("refusal"))?;
                if !text.trim().is_empty() {
                    out.push(Part::Refusal(text.into_owned()));
                }
            }
            ("image_url", Allowed::Media) => out.push(image(part.image_url, &p.key("image_url"))?),
            ("file", Allowed::Media) => out.push(file(part.file, &p.key("file"))?),
            ("input_audio", Allowed::Media) => {
                return Err(unsupported_value(
                    &p.key("type"),
                    "Audio input ('input_audio' content parts) is not supported with this model.",
                ));
            }
            (other, Allowed::Media) => {
                return Err(invalid_value(
                    &p.key("type"),
                    format!("Invalid content part type '{other}'."),
                ));
            }
            (other, _) => {
                return Err(invalid_value(
                    &p.key("type"),
                    format!("Invalid content part type '{other}' for this message role."),
                ));
            }
        }
        let explicit = part
            .prompt_cache_breakpoint
            .is_some_and(|b| b.mode.as_deref() == Some("explicit"));
        if explicit && out.len() > before {
            out.push(Part::CacheBreakpoint);
        }
    }
    Ok(out)
}

const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// An image part: an http(s) URL, or a base64 data URL of a type every provider takes.
fn image(raw: Option<&RawValue>, at: &Path) -> Result<Part, ConvertError> {
    let raw = raw.filter(|r| r.get() != "null").ok_or_else(|| missing(at))?;
    let (url, detail) = match raw.get().starts_with('"') {
        // Some clients send the URL directly instead of `{"url": …}`.
        true => (required_string(Some(raw), at)?.into_owned(), None),
        false => {
            let image: InImage = object(raw, at)?;
            (image.url, image.detail)
        }
    };
    if let Some(data_url) = DataUrl::parse(&url) {
        // `image/jpg` is a common misspelling that the APIs reject.
        let media_type = match data_url.media_type.as_str() {
            "image/jpg" => "image/jpeg",
            other => other,
        };
        if !IMAGE_MEDIA_TYPES.contains(&media_type) {
            return Err(unsupported_value(
                at,
                format!(
                    "Image media type '{media_type}' is not supported with this model; use image/jpeg, \
                     image/png, image/gif or image/webp."
                ),
            ));
        }
        if !data_url.base64 {
            return Err(unsupported_value(at, "Image data URLs must be base64-encoded."));
        }
        let url = format!("data:{media_type};base64,{}", data_url.data);
        return Ok(Part::Image { url, detail });
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http" | "https") => Ok(Part::Image { url, detail }),
        _ => Err(invalid_value(
            at,
            "Image URLs must be http(s) URLs or base64 data URLs.",
        )),
    }
}

/// A file part: a PDF or plain text, inline. File ids point into OpenAI's storage, which no other provider
/// can read.
fn file(raw: Option<&RawValue>, at: &Path) -> Result<Part, ConvertError> {
    let file: InFile = object(raw.filter(|r| r.get() != "null").ok_or_else(|| missing(at))?, at)?;
    let Some(file_data) = file.file_data else {
        if file.file_id.is_some() {
            return Err(unsupported_value(
                &at.key("file_id"),
                "OpenAI file ids cannot be resolved by this model's provider; send the file inline as 'file_data'.",
            ));
        }
        return Err(missing(&at.key("file_data")));
    };
    let data_url = match DataUrl::parse(&file_data) {
        Some(url) if url.media_type == "application/pdf" && url.base64 => file_data.clone(),
        Some(url) if url.media_type == "text/plain" && url.base64 => file_data.clone(),
        Some(url) if url.media_type == "text/plain" => {
            use base64::Engine;
            format!(
                "data:text/plain;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(url.data)
            )
        }
        Some(url) => {
            return Err(unsupported_value(
                &at.key("file_data"),
                format!(
                    "File type '{}' is not supported with this model; send a PDF or plain text.",
                    url.media_type
                ),
            ));
        }
        // Bare base64 without a data-URL header: Chat Completions only takes PDFs as files.
        None => format!("data:application/pdf;base64,{file_data}"),
    };
    Ok(Part::File {
        data_url,
        filename: file.filename,
    })
}

/// `tools` (functions only) and the legacy `functions`.
fn read_tools(tools: Option<&RawValue>, functions: Option<&RawValue>) -> Result<Vec<Tool>, ConvertError> {
    let root = Path::Root;
    let tp = root.key("tools");
    let mut out = Vec::new();
    for (i, tool) in items(tools, &tp)?.unwrap_or_default().into_iter().enumerate() {
        let p = tp.index(i);
        let tool: InTyped = object(tool, &p)?;
        match string(tool.kind, &p.key("type"))?.as_deref() {
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
        out.push(read_tool(tool.function.ok_or_else(|| missing(&fp))?, &fp)?);
    }
    let fp = root.key("functions");
    for (i, function) in items(functions, &fp)?.unwrap_or_default().into_iter().enumerate() {
        out.push(read_tool(function, &fp.index(i))?);
    }
    Ok(out)
}

fn read_tool(raw: &RawValue, at: &Path) -> Result<Tool, ConvertError> {
    let function: InFunction = object(raw, at)?;
    let parameters = match function.parameters {
        Some(raw) if raw.get().starts_with('{') => Some(raw.to_owned()),
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(_) => return Err(invalid_type(&at.key("parameters"), "an object")),
    };
    Ok(Tool {
        name: required_string(function.name, &at.key("name"))?.into_owned(),
        namespace: None,
        description: function.description,
        kind: ToolKind::Function,
        parameters,
        strict: function.strict,
    })
}

/// `tool_choice` (or the legacy `function_call`), and the tools `allowed_tools` keeps.
fn read_tool_choice(
    choice: Option<&RawValue>,
    function_call: Option<&RawValue>,
) -> Result<(Option<ToolChoice>, Option<Vec<String>>), ConvertError> {
    let root = Path::Root;
    let cp = root.key("tool_choice");
    let Some(raw) = choice.filter(|c| c.get() != "null") else {
        let fp = root.key("function_call");
        return Ok(match function_call.filter(|c| c.get() != "null") {
            None => (None, None),
            Some(raw) if raw.get().starts_with('"') => {
                (Some(choice_mode(&required_string(Some(raw), &fp)?, &fp)?), None)
            }
            Some(raw) => {
                let named: InFunction = object(raw, &fp)?;
                let name = required_string(named.name, &fp.key("name"))?.into_owned();
                (Some(ToolChoice::Named { name, namespace: None }), None)
            }
        });
    };
    if raw.get().starts_with('"') {
        return Ok((Some(choice_mode(&required_string(Some(raw), &cp)?, &cp)?), None));
    }
    let choice: InTyped = object(raw, &cp)?;
    match required_string(choice.kind, &cp.key("type"))?.as_ref() {
        "function" => Ok((Some(named_function(choice.function, &cp)?), None)),
        "allowed_tools" => {
            let ap = cp.key("allowed_tools");
            let allowed: InAllowed = object(choice.allowed_tools.ok_or_else(|| missing(&ap))?, &ap)?;
            let mode = match required_string(allowed.mode, &ap.key("mode"))?.as_ref() {
                "auto" => ToolChoice::Auto,
                "required" => ToolChoice::Required,
                other => {
                    return Err(invalid_value(
                        &ap.key("mode"),
                        format!("Invalid value: '{other}'. Supported values are: 'auto' and 'required'."),
                    ));
                }
            };
            let tp = ap.key("tools");
            let list = items(allowed.tools, &tp)?.ok_or_else(|| missing(&tp))?;
            let mut names = Vec::with_capacity(list.len());
            for (i, tool) in list.into_iter().enumerate() {
                let p = tp.index(i);
                let tool: InTyped = object(tool, &p)?;
                if string(tool.kind, &p.key("type"))?.as_deref() == Some("custom") {
                    return Err(unsupported_parameter(
                        &p.key("type"),
                        "Custom tools are not supported with this model.",
                    ));
                }
                let ToolChoice::Named { name, .. } = named_function(tool.function, &p)? else {
                    unreachable!("named_function names a tool")
                };
                names.push(name);
            }
            Ok((Some(mode), Some(names)))
        }
        "custom" => Err(unsupported_parameter(
            &cp,
            "Custom tools are not supported with this model.",
        )),
        other => Err(invalid_value(
            &cp.key("type"),
            format!("Invalid tool_choice type '{other}'."),
        )),
    }
}

fn named_function(function: Option<&RawValue>, at: &Path) -> Result<ToolChoice, ConvertError> {
    let fp = at.key("function");
    let function: InFunction = object(function.ok_or_else(|| missing(&fp))?, &fp)?;
    Ok(ToolChoice::Named {
        name: required_string(function.name, &fp.key("name"))?.into_owned(),
        namespace: None,
    })
}

fn choice_mode(mode: &str, at: &Path) -> Result<ToolChoice, ConvertError> {
    match mode {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" => Ok(ToolChoice::Required),
        other => Err(invalid_value(
            at,
            format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
        )),
    }
}

/// `stop`: a string or a list of strings.
fn read_stop(raw: Option<&RawValue>) -> Result<Vec<String>, ConvertError> {
    let sp = Path::Root.key("stop");
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(Vec::new());
    };
    if raw.get().starts_with('"') {
        return Ok(vec![required_string(Some(raw), &sp)?.into_owned()]);
    }
    let list = items(Some(raw), &sp).map_err(|_| invalid_type(&sp, "a string or an array of strings"))?;
    let mut out = Vec::new();
    for (i, item) in list.unwrap_or_default().into_iter().enumerate() {
        out.push(required_string(Some(item), &sp.index(i))?.into_owned());
    }
    Ok(out)
}

fn read_format(raw: Option<&RawValue>) -> Result<Option<OutputFormat>, ConvertError> {
    let rp = Path::Root.key("response_format");
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    let format: InFormat = object(raw, &rp)?;
    Ok(Some(match required_string(format.kind, &rp.key("type"))?.as_ref() {
        "text" => OutputFormat::Text,
        "json_object" => OutputFormat::JsonObject,
        "json_schema" => {
            let jp = rp.key("json_schema");
            let spec: InJsonSchema = object(format.json_schema.ok_or_else(|| missing(&jp))?, &jp)?;
            let schema = match spec.schema {
                Some(raw) if raw.get().starts_with('{') => raw.to_owned(),
                None => RawValue::from_string(r#"{"type":"object"}"#.to_owned()).expect("constant JSON"),
                Some(_) => return Err(invalid_type(&jp.key("schema"), "an object")),
            };
            OutputFormat::JsonSchema {
                name: spec.name.unwrap_or_else(|| "output".into()),
                schema,
                strict: spec.strict,
                description: spec.description,
            }
        }
        other => {
            return Err(unsupported_value(
                &rp.key("type"),
                format!("Response format type '{other}' is not supported with this model."),
            ));
        }
    }))
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
    fn the_hand_read_body_decodes_as_serde_reads_it() {
        let typical: &[&str] = &[
            include_str!("../../../bench/requests/openai.json"),
            include_str!("../../../bench/requests/openai-stream.json"),
            r#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"look"},
                  {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]},
                {"role":"assistant","content":null,"reasoning_content":"think","refusal":null,
                  "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"done","name":"f"}],
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
              "tool_choice":"auto","parallel_tool_calls":false,"max_completion_tokens":100,"top_p":0.9,
              "stop":["\n\n"],"reasoning_effort":"low","response_format":{"type":"json_object"},
              "stream":true,"stream_options":{"include_usage":true},"user":"u","prompt_cache_key":"k",
              "n":1,"audio":null,"modalities":["text"],"metadata":{"x":[1,2]}}"#,
            r#"{"messages":[{"role":"user","content":"say \"hi\"\n"}],"max_tokens":null,"temperature":null}"#,
            "{ \"messages\" :\t[ { \"role\" : \"user\" , \"content\" : \"x\" } ] ,\n \"top_p\" : 0.25 }",
        ];
        let edge: &[&str] = &[
            r#"{"messages":[{"role":"user","content":"a"}],"messages":[]}"#,
            r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#,
            r#"{"messages":[{"role":"user","role":"user"}]}"#,
            r#"{"messages":[{"role":"user","content":{"type":"text"}}]}"#,
            r#"{"messages":[{"role":5,"content":5,"refusal":[],"reasoning_content":{}}]}"#,
            r#"{"messages":[{"role":"us\u0065r","content":"x"}]}"#,
            r#"{"messages":[["user","hi"],"hi",3,null,true]}"#,
            r#"{"messages":"hi"}"#,
            r#"{"messages":{"role":"user"}}"#,
            r#"{"messages":null}"#,
            r#"{"messages":[]}"#,
            r#"{"mess\u0061ges":[]}"#,
            r#"{"messages":[{"role":"tool","content":"x"}]}"#,
            r#"{"messages":[{"role":"assistant","tool_calls":null,"function_call":{"name":"f"}}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":1.5,"temperature":"hot"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0,"n":2}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"stream":1,"stop":"end"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"unknown":[1,{"a":nul}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}]} trailing"#,
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[],"tools":null}"#,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"raw\ncontrol\"}]}",
            r#"["messages"]"#,
        ];
        let both = |body: &[u8]| -> Option<(String, String)> {
            let fast = std::str::from_utf8(body).ok().and_then(read_body)?;
            Some((
                format!("{:?}", super::decode_body(fast)),
                format!("{:?}", super::decode_with_serde(body)),
            ))
        };
        crate::protocol::json::check_agreement(typical, edge, both);
    }

    #[test]
    fn a_message_that_is_not_an_object_is_named() {
        let error = |body: &str| super::decode(body.as_bytes()).err().unwrap();
        let e = error(r#"{"messages":[{"role":"user","content":"hi"},["user","hi"]]}"#);
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("messages[1]"), Some("invalid_type"))
        );
        let e = error(r#"{"messages":[{"role":"user","content":"hi","role":"user"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let e = error(r#"{"messages":{}}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
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
