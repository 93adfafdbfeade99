//! Encoding a hub [`Response`] as a Responses API `Response` object (reference §3): output items with ids
//! derived from the response id, tool calls restored to the client's shape (namespaced, custom), status and
//! `incomplete_details` from the stop reason, usage with every key present, and the request's settings
//! echoed as the SDKs expect.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::value::RawValue;

use super::request::ResponsesFacts;
use super::tools::unwrap_custom_input;
use crate::protocol::hub::{Opaque, Part, Response, StopReason, ToolCall, ToolKind, Usage};
use crate::protocol::json::{push_opt_str, push_plain, push_str, push_u64};

/// What an encoded answer needs besides the hub response.
pub struct AnswerContext<'a> {
    /// 24 hex digits; the response id is `resp_llmr<hex>` and item ids derive from it.
    pub id_hex: &'a str,
    /// Seals reasoning artefacts into `encrypted_content`.
    pub signing_key: &'a [u8],
    pub created: u64,
    /// The model the client asked for.
    pub model: &'a str,
    pub facts: &'a ResponsesFacts,
}

impl AnswerContext<'_> {
    /// `<prefix>_llmr<hex>_<output index>` (reference §3.10).
    pub fn item_id(&self, prefix: &str, output_index: usize) -> String {
        let mut id = String::with_capacity(prefix.len() + self.id_hex.len() + 8);
        id.push_str(prefix);
        id.push_str("_llmr");
        id.push_str(self.id_hex);
        id.push('_');
        id.push_str(itoa::Buffer::new().format(output_index));
        id
    }

    /// A reasoning item: its summary (none for redacted reasoning) and, when the client asked for
    /// `reasoning.encrypted_content`, the sealed artefact to replay next turn.
    pub fn reasoning_item<'t>(&self, id: String, text: Option<&'t str>, opaque: Option<&Opaque>) -> OutputItem<'t> {
        let encrypted_content = match (self.facts.include_encrypted_reasoning, opaque) {
            (true, Some(opaque)) => Some(super::envelope::seal(self.signing_key, opaque)),
            _ => None,
        };
        OutputItem::Reasoning {
            id,
            summary: text.map(|text| SummaryText { text }),
            encrypted_content,
        }
    }

    /// The client-facing item for a tool call the upstream made (names mapped back, custom input unwrapped).
    pub fn tool_call_item<'c>(&self, call: &'c ToolCall, output_index: usize, done: bool) -> OutputItem<'c> {
        let tool = self.facts.tools.client_tool(&call.name);
        let status = if done { "completed" } else { "in_progress" };
        match tool.kind {
            ToolKind::Custom => OutputItem::CustomToolCall {
                id: self.item_id("ctc", output_index),
                call_id: &call.id,
                name: tool.name,
                input: if done {
                    unwrap_custom_input(&call.arguments)
                } else {
                    String::new()
                },
                status,
                namespace: tool.namespace,
            },
            ToolKind::Function => OutputItem::FunctionCall {
                id: self.item_id("fc", output_index),
                call_id: &call.id,
                name: tool.name,
                arguments: if done { &call.arguments } else { "" },
                status,
                namespace: tool.namespace,
            },
        }
    }

    /// The Response object with `output`, in the given status. The request's settings are echoed as the
    /// client sent them (raw JSON), or as the API's defaults when it sent none.
    pub fn response_object<'s, O: Serialize>(
        &'s self,
        status: &'s str,
        output: O,
        usage: Option<&Usage>,
        stop: StopReason,
    ) -> ResponseObject<'s, O> {
        let echo = &self.facts.echo;
        let incomplete_details = match (status, stop) {
            ("incomplete", StopReason::ContentFilter) => Some(Incomplete {
                reason: "content_filter",
            }),
            ("incomplete", _) => Some(Incomplete {
                reason: "max_output_tokens",
            }),
            _ => None,
        };
        ResponseObject {
            id: ResponseId(self.id_hex),
            object: "response",
            created_at: self.created,
            status,
            completed_at: (status == "completed").then_some(self.created),
            error: None,
            incomplete_details,
            instructions: echo.instructions.as_deref(),
            model: self.model,
            output,
            parallel_tool_calls: echo.parallel_tool_calls.unwrap_or(true),
            temperature: echo.temperature,
            top_p: echo.top_p,
            max_output_tokens: echo.max_output_tokens,
            tool_choice: echo.tool_choice.as_deref().unwrap_or(&DEFAULT_TOOL_CHOICE),
            tools: echo.tools.as_deref().unwrap_or(&DEFAULT_TOOLS),
            reasoning: echo.reasoning.as_deref(),
            text: echo.text.as_deref().unwrap_or(&DEFAULT_TEXT),
            truncation: "disabled",
            metadata: EmptyObject {},
            store: false,
            background: false,
            previous_response_id: None,
            prompt_cache_key: echo.prompt_cache_key.as_deref(),
            user: echo.user.as_deref(),
            usage: usage.map(UsageObject::from),
        }
    }
}

/// The API's values for settings a client did not send, echoed like the ones it sent.
static DEFAULT_TOOL_CHOICE: LazyLock<Box<RawValue>> = LazyLock::new(|| json_literal(r#""auto""#));
static DEFAULT_TOOLS: LazyLock<Box<RawValue>> = LazyLock::new(|| json_literal("[]"));
static DEFAULT_TEXT: LazyLock<Box<RawValue>> = LazyLock::new(|| json_literal(r#"{"format":{"type":"text"}}"#));

fn json_literal(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("a JSON literal")
}

/// The Response object (reference §3.1). Field order is the key order on the wire, which SDKs and tests
/// compare; `null`s are written where the API reference has a key always present.
#[derive(Serialize)]
pub struct ResponseObject<'a, O> {
    id: ResponseId<'a>,
    object: &'static str,
    created_at: u64,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<u64>,
    /// Set on `response.failed`.
    pub error: Option<ResponseError<'a>>,
    incomplete_details: Option<Incomplete>,
    instructions: Option<&'a str>,
    model: &'a str,
    output: O,
    parallel_tool_calls: bool,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_output_tokens: Option<u64>,
    tool_choice: &'a RawValue,
    tools: &'a RawValue,
    reasoning: Option<&'a RawValue>,
    text: &'a RawValue,
    truncation: &'static str,
    metadata: EmptyObject,
    store: bool,
    background: bool,
    previous_response_id: Option<&'a str>,
    prompt_cache_key: Option<&'a str>,
    user: Option<&'a str>,
    usage: Option<UsageObject>,
}

impl<O> ResponseObject<'_, O> {
    /// The JSON the `Serialize` derive writes (the stream's events use it), written by hand for whole
    /// answers; `write_output` writes `output`. A test holds the two together.
    fn write(&self, out: &mut Vec<u8>, write_output: impl FnOnce(&O, &mut Vec<u8>)) {
        let raw = |out: &mut Vec<u8>, value: &RawValue| out.extend_from_slice(value.get().as_bytes());
        let float = |out: &mut Vec<u8>, value: Option<f64>| {
            serde_json::to_writer(&mut *out, &value).expect("a number serialises")
        };
        out.extend_from_slice(br#"{"id":"resp_llmr"#);
        out.extend_from_slice(self.id.0.as_bytes());
        out.extend_from_slice(br#"","object":"#);
        push_plain(out, self.object);
        out.extend_from_slice(br#","created_at":"#);
        push_u64(out, self.created_at);
        out.extend_from_slice(br#","status":"#);
        push_plain(out, self.status);
        if let Some(completed_at) = self.completed_at {
            out.extend_from_slice(br#","completed_at":"#);
            push_u64(out, completed_at);
        }
        out.extend_from_slice(br#","error":"#);
        match &self.error {
            Some(error) => {
                out.extend_from_slice(br#"{"code":"#);
                push_str(out, error.code);
                out.extend_from_slice(br#","message":"#);
                push_str(out, error.message);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","incomplete_details":"#);
        match &self.incomplete_details {
            Some(incomplete) => {
                out.extend_from_slice(br#"{"reason":"#);
                push_plain(out, incomplete.reason);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","instructions":"#);
        push_opt_str(out, self.instructions);
        out.extend_from_slice(br#","model":"#);
        push_str(out, self.model);
        out.extend_from_slice(br#","output":"#);
        write_output(&self.output, out);
        out.extend_from_slice(match self.parallel_tool_calls {
            true => br#","parallel_tool_calls":true,"temperature":"#,
            false => br#","parallel_tool_calls":false,"temperature":"#,
        });
        float(out, self.temperature);
        out.extend_from_slice(br#","top_p":"#);
        float(out, self.top_p);
        out.extend_from_slice(br#","max_output_tokens":"#);
        match self.max_output_tokens {
            Some(max) => push_u64(out, max),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","tool_choice":"#);
        raw(out, self.tool_choice);
        out.extend_from_slice(br#","tools":"#);
        raw(out, self.tools);
        out.extend_from_slice(br#","reasoning":"#);
        match self.reasoning {
            Some(reasoning) => raw(out, reasoning),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","text":"#);
        raw(out, self.text);
        out.extend_from_slice(br#","truncation":"#);
        push_plain(out, self.truncation);
        out.extend_from_slice(br#","metadata":{}"#);
        out.extend_from_slice(match (self.store, self.background) {
            (false, false) => br#","store":false,"background":false"#,
            (false, true) => br#","store":false,"background":true"#,
            (true, false) => br#","store":true,"background":false"#,
            (true, true) => br#","store":true,"background":true"#,
        });
        out.extend_from_slice(br#","previous_response_id":"#);
        push_opt_str(out, self.previous_response_id);
        out.extend_from_slice(br#","prompt_cache_key":"#);
        push_opt_str(out, self.prompt_cache_key);
        out.extend_from_slice(br#","user":"#);
        push_opt_str(out, self.user);
        out.extend_from_slice(br#","usage":"#);
        match &self.usage {
            Some(usage) => usage.write(out),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// `resp_llmr<hex>`, written straight into the output.
struct ResponseId<'a>(&'a str);

impl Serialize for ResponseId<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("resp_llmr{}", self.0))
    }
}

#[derive(Serialize)]
pub struct ResponseError<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

#[derive(Serialize)]
struct Incomplete {
    reason: &'static str,
}

#[derive(Serialize)]
struct EmptyObject {}

/// Usage with all five keys and both details objects (Codex needs `total_tokens`; reference §3.6).
#[derive(Serialize)]
pub struct UsageObject {
    input_tokens: u64,
    input_tokens_details: InputTokensDetails,
    output_tokens: u64,
    output_tokens_details: OutputTokensDetails,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputTokensDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Serialize)]
struct OutputTokensDetails {
    reasoning_tokens: u64,
}

impl UsageObject {
    /// The JSON the `Serialize` derive writes, written by hand for whole answers.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"input_tokens":"#);
        push_u64(out, self.input_tokens);
        out.extend_from_slice(br#","input_tokens_details":{"cached_tokens":"#);
        push_u64(out, self.input_tokens_details.cached_tokens);
        out.extend_from_slice(br#","cache_write_tokens":"#);
        push_u64(out, self.input_tokens_details.cache_write_tokens);
        out.extend_from_slice(br#"},"output_tokens":"#);
        push_u64(out, self.output_tokens);
        out.extend_from_slice(br#","output_tokens_details":{"reasoning_tokens":"#);
        push_u64(out, self.output_tokens_details.reasoning_tokens);
        out.extend_from_slice(br#"},"total_tokens":"#);
        push_u64(out, self.total_tokens);
        out.push(b'}');
    }
}

impl From<&Usage> for UsageObject {
    fn from(usage: &Usage) -> Self {
        UsageObject {
            input_tokens: usage.input,
            input_tokens_details: InputTokensDetails {
                cached_tokens: usage.cached,
                cache_write_tokens: usage.cache_write,
            },
            output_tokens: usage.output,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: usage.reasoning,
            },
            total_tokens: usage.input + usage.output,
        }
    }
}

/// An item of `output`, as the answer, the stream's `output_item` events and its terminal response carry it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem<'a> {
    Reasoning {
        id: String,
        /// No summary part for redacted reasoning.
        #[serde(serialize_with = "zero_or_one")]
        summary: Option<SummaryText<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
    Message {
        id: String,
        role: &'static str,
        status: &'static str,
        /// Empty while the message is in progress.
        #[serde(serialize_with = "zero_or_one")]
        content: Option<ContentPart<'a>>,
    },
    FunctionCall {
        id: String,
        call_id: &'a str,
        name: String,
        arguments: &'a str,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    CustomToolCall {
        id: String,
        call_id: &'a str,
        name: String,
        input: String,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

impl<'a> OutputItem<'a> {
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Reasoning { id, .. }
            | OutputItem::Message { id, .. }
            | OutputItem::FunctionCall { id, .. }
            | OutputItem::CustomToolCall { id, .. } => id,
        }
    }

    /// An assistant message: in progress (no content yet), or done with its one part.
    pub fn message(id: String, part: Option<ContentPart<'a>>) -> Self {
        OutputItem::Message {
            id,
            role: "assistant",
            status: if part.is_some() { "completed" } else { "in_progress" },
            content: part,
        }
    }
}

impl OutputItem<'_> {
    /// The JSON the `Serialize` derive writes, written by hand for whole answers.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            OutputItem::Reasoning {
                id,
                summary,
                encrypted_content,
            } => {
                out.extend_from_slice(br#"{"type":"reasoning","id":"#);
                push_plain(out, id);
                out.extend_from_slice(br#","summary":["#);
                if let Some(summary) = summary {
                    out.extend_from_slice(br#"{"type":"summary_text","text":"#);
                    push_str(out, summary.text);
                    out.push(b'}');
                }
                out.push(b']');
                if let Some(sealed) = encrypted_content {
                    out.extend_from_slice(br#","encrypted_content":"#);
                    push_str(out, sealed);
                }
            }
            OutputItem::Message {
                id,
                role,
                status,
                content,
            } => {
                out.extend_from_slice(br#"{"type":"message","id":"#);
                push_plain(out, id);
                out.extend_from_slice(br#","role":"#);
                push_plain(out, role);
                out.extend_from_slice(br#","status":"#);
                push_plain(out, status);
                out.extend_from_slice(br#","content":["#);
                match content {
                    Some(ContentPart::OutputText { text, .. }) => {
                        out.extend_from_slice(br#"{"type":"output_text","text":"#);
                        push_str(out, text);
                        out.extend_from_slice(br#","annotations":[]}"#);
                    }
                    Some(ContentPart::Refusal { refusal }) => {
                        out.extend_from_slice(br#"{"type":"refusal","refusal":"#);
                        push_str(out, refusal);
                        out.push(b'}');
                    }
                    None => {}
                }
                out.push(b']');
            }
            OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
                status,
                namespace,
            } => tool_call(
                out,
                br#""function_call""#,
                [id, call_id, name],
                (br#","arguments":"#, arguments),
                status,
                namespace,
            ),
            OutputItem::CustomToolCall {
                id,
                call_id,
                name,
                input,
                status,
                namespace,
            } => tool_call(
                out,
                br#""custom_tool_call""#,
                [id, call_id, name],
                (br#","input":"#, input),
                status,
                namespace,
            ),
        }
        out.push(b'}');
    }
}

/// A function or custom tool call item, up to its closing brace: the two differ in their `type` and in the
/// key of what the call sends (`arguments` or `input`). The type and the keys come written as JSON.
fn tool_call(
    out: &mut Vec<u8>,
    kind: &[u8],
    [id, call_id, name]: [&str; 3],
    (key, sent): (&[u8], &str),
    status: &str,
    namespace: &Option<String>,
) {
    out.extend_from_slice(br#"{"type":"#);
    out.extend_from_slice(kind);
    let fields: [(&[u8], &str); 5] = [
        (br#","id":"#, id),
        (br#","call_id":"#, call_id),
        (br#","name":"#, name),
        (key, sent),
        (br#","status":"#, status),
    ];
    for (key, value) in fields {
        out.extend_from_slice(key);
        push_str(out, value);
    }
    if let Some(namespace) = namespace {
        out.extend_from_slice(br#","namespace":"#);
        push_str(out, namespace);
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "summary_text")]
pub struct SummaryText<'a> {
    pub text: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart<'a> {
    OutputText { text: &'a str, annotations: [(); 0] },
    Refusal { refusal: &'a str },
}

impl<'a> ContentPart<'a> {
    pub fn new(text: &'a str, refusal: bool) -> Self {
        match refusal {
            true => ContentPart::Refusal { refusal: text },
            false => ContentPart::OutputText { text, annotations: [] },
        }
    }
}

/// An optional element written as a list of zero or one, without building a `Vec`.
fn zero_or_one<T: Serialize, S: serde::Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(value)
}

/// `completed`, or `incomplete` for a cut-off or filtered answer (reference §3.5).
pub fn status(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens | StopReason::ContentFilter => "incomplete",
        StopReason::End | StopReason::ToolUse => "completed",
    }
}

/// Encodes a whole answer, written straight from the hub response: no JSON tree is built.
pub fn encode(response: &Response, ctx: &AnswerContext<'_>) -> Vec<u8> {
    let object = ctx.response_object(status(response.stop), (), Some(&response.usage), response.stop);
    // One allocation of about the answer's size rather than a doubling series.
    let echo = &ctx.facts.echo;
    let echoed: usize = [&echo.tools, &echo.tool_choice, &echo.reasoning, &echo.text]
        .into_iter()
        .flatten()
        .map(|raw| raw.get().len())
        .sum();
    let texts: usize = response.output.iter().map(text_len).sum();
    let mut body = Vec::with_capacity(RESPONSE_BYTES + echoed + texts);
    // Each item is written as it is made: no list of them in between.
    object.write(&mut body, |(), out| {
        out.push(b'[');
        for (i, item) in output_items(response, ctx).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write(out);
        }
        out.push(b']');
    });
    body
}

/// The output items of a whole answer, in order, numbered as they are made.
fn output_items<'a>(response: &'a Response, ctx: &'a AnswerContext<'_>) -> impl Iterator<Item = OutputItem<'a>> {
    let mut oi = 0;
    response.output.iter().filter_map(move |part| {
        let item = match part {
            Part::Reasoning(reasoning) => {
                let text = Some(reasoning.text.as_str()).filter(|t| !t.is_empty());
                ctx.reasoning_item(ctx.item_id("rs", oi), text, reasoning.opaque.as_ref())
            }
            Part::Text(text) => OutputItem::message(ctx.item_id("msg", oi), Some(ContentPart::new(text, false))),
            Part::Refusal(text) => OutputItem::message(ctx.item_id("msg", oi), Some(ContentPart::new(text, true))),
            Part::ToolCall(call) => ctx.tool_call_item(call, oi, true),
            _ => return None,
        };
        oi += 1;
        Some(item)
    })
}

/// About the size of a Response object without its output's text and echoed settings.
const RESPONSE_BYTES: usize = 1536;

/// The length of the text a part puts into an answer, before escaping.
fn text_len(part: &Part) -> usize {
    match part {
        Part::Text(text) | Part::Refusal(text) => text.len(),
        Part::Reasoning(reasoning) => reasoning.text.len(),
        Part::ToolCall(call) => call.arguments.len(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding a Responses upstream's answer (Routes E and F, reference §3.7, §3.8)

#[derive(serde::Deserialize)]
pub(super) struct UpstreamItem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub content: Option<Vec<UpstreamPart>>,
    #[serde(default)]
    pub summary: Option<Vec<UpstreamPart>>,
}

#[derive(serde::Deserialize)]
pub(super) struct UpstreamPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct UpstreamUsage {
    #[serde(default)]
    pub(super) input_tokens: u64,
    #[serde(default)]
    pub(super) output_tokens: u64,
    #[serde(default)]
    pub(super) input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub(super) output_tokens_details: Option<OutputDetails>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct InputDetails {
    #[serde(default)]
    pub(super) cached_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_write_tokens: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct OutputDetails {
    #[serde(default)]
    pub(super) reasoning_tokens: Option<u64>,
}

impl UpstreamUsage {
    pub(super) fn to_hub(&self) -> Usage {
        let input = self.input_tokens_details.as_ref();
        Usage {
            input: self.input_tokens,
            cached: input.and_then(|d| d.cached_tokens).unwrap_or(0).min(self.input_tokens),
            cache_write: input.and_then(|d| d.cache_write_tokens).unwrap_or(0),
            output: self.output_tokens,
            reasoning: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub(super) struct UpstreamResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub output: Vec<UpstreamItem>,
    #[serde(default)]
    pub usage: Option<UpstreamUsage>,
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
pub(super) struct IncompleteDetails {
    #[serde(default)]
    pub reason: Option<String>,
}

impl UpstreamItem {
    /// The hub parts of one output item (none for hosted-tool items).
    pub(super) fn to_parts(&self, out: &mut Vec<Part>) {
        let texts = |parts: &Option<Vec<UpstreamPart>>| -> Vec<String> {
            parts
                .iter()
                .flatten()
                .filter_map(|p| p.text.clone())
                .filter(|t| !t.is_empty())
                .collect()
        };
        match self.kind.as_str() {
            "reasoning" => {
                let mut text = texts(&self.summary);
                if text.is_empty() {
                    text = texts(&self.content);
                }
                if !text.is_empty() {
                    out.push(Part::Reasoning(crate::protocol::hub::Reasoning {
                        text: text.join("\n\n"),
                        opaque: None,
                    }));
                }
            }
            "message" => {
                for part in self.content.iter().flatten() {
                    match (part.kind.as_str(), &part.text, &part.refusal) {
                        ("refusal", _, Some(refusal)) => out.push(Part::Refusal(refusal.clone())),
                        (_, Some(text), _) if !text.is_empty() => out.push(Part::Text(text.clone())),
                        _ => {}
                    }
                }
            }
            "function_call" | "custom_tool_call" => out.push(Part::ToolCall(ToolCall {
                id: self.call_id.clone().unwrap_or_default(),
                name: self.name.clone().unwrap_or_default(),
                namespace: None,
                kind: if self.kind == "custom_tool_call" {
                    ToolKind::Custom
                } else {
                    ToolKind::Function
                },
                arguments: match self.kind.as_str() {
                    "custom_tool_call" => {
                        serde_json::json!({"input": self.input.clone().unwrap_or_default()}).to_string()
                    }
                    _ => self.arguments.clone().unwrap_or_default(),
                },
            })),
            _ => {}
        }
    }
}

/// The stop reason a Responses status stands for (reference §3.5).
pub(super) fn stop_of(status: Option<&str>, incomplete: Option<&str>, has_calls: bool) -> StopReason {
    match (status, incomplete) {
        (Some("incomplete"), Some("content_filter")) => StopReason::ContentFilter,
        (Some("incomplete"), _) => StopReason::MaxTokens,
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::End,
    }
}

/// Decodes a whole Response object. A failed response is an unusable answer.
pub fn decode(body: &[u8]) -> Result<Response, crate::protocol::convert::ConvertError> {
    let response: UpstreamResponse =
        crate::protocol::json::parse(body).map_err(|e| crate::protocol::convert::ConvertError {
            message: format!("the upstream's answer is not a Response: {e}"),
            param: None,
            code: None,
        })?;
    if response.status.as_deref() == Some("failed") {
        let message = response
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("the upstream response failed");
        return Err(crate::protocol::convert::ConvertError {
            message: message.to_owned(),
            param: None,
            code: None,
        });
    }
    let mut output = Vec::with_capacity(response.output.len());
    for item in &response.output {
        item.to_parts(&mut output);
    }
    let has_calls = output.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Response {
        id: response.id.clone(),
        stop: stop_of(
            response.status.as_deref(),
            response.incomplete_details.as_ref().and_then(|d| d.reason.as_deref()),
            has_calls,
        ),
        stop_sequence: None,
        usage: response.usage.as_ref().map(UpstreamUsage::to_hub).unwrap_or_default(),
        output,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::hub::Reasoning;
    use crate::protocol::responses::request::decode;

    #[test]
    fn a_whole_answer_written_by_hand_is_the_serialized_response_object() {
        let facts = decode(
            br#"{"model":"m","input":"x","instructions":"Be \"brief\"","temperature":0.7,"top_p":1,"max_output_tokens":99,
                "parallel_tool_calls":false,"reasoning":{"effort":"high"},"text":{"format":{"type":"text"}},"user":"u\n",
                "prompt_cache_key":"k","tool_choice":"required","include":["reasoning.encrypted_content"],
                "tools":[{"type":"custom","name":"apply_patch"},{"type":"namespace","name":"ns","tools":[{"type":"function","name":"spawn"}]}]}"#,
            b"key",
        )
        .unwrap()
        .facts;
        let ctx = AnswerContext {
            id_hex: "0123456789abcdef01234567",
            signing_key: b"key",
            created: 7,
            model: "codex\u{1}group",
            facts: &facts,
        };
        let call = crate::protocol::convert::test_support::tool_call;
        let block = serde_json::value::to_raw_value(&json!({"type": "thinking", "signature": "s"})).unwrap();
        let response = Response {
            id: None,
            stop_sequence: None,
            output: vec![
                Part::Reasoning(Reasoning {
                    text: "Think \"hard\"".into(),
                    opaque: Some(Opaque::Anthropic { block }),
                }),
                Part::Reasoning(Reasoning {
                    text: String::new(),
                    opaque: None,
                }),
                Part::Text("Patching\tnow é".into()),
                Part::Refusal("No.".into()),
                call("call_1", "apply_patch", r#"{"input":"*** Begin Patch"}"#),
                call("call_2", "ns__spawn", r#"{"a": "\\"}"#),
                call("call_3", "plain", ""),
            ],
            stop: StopReason::MaxTokens,
            usage: Usage {
                input: 900,
                cached: 800,
                cache_write: 3,
                output: 40,
                reasoning: 12,
            },
        };
        for response in [response, Response::default()] {
            let written = encode(&response, &ctx);
            let output: Vec<_> = output_items(&response, &ctx).collect();
            let mut object = ctx.response_object(status(response.stop), output, Some(&response.usage), response.stop);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&object).unwrap()
            );
            object.error = Some(ResponseError {
                code: "server_error",
                message: "it \"broke\"",
            });
            let mut written = Vec::new();
            object.write(&mut written, |items, out| serde_json::to_writer(out, items).unwrap());
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&object).unwrap()
            );
        }
    }

    #[test]
    fn items_status_usage_and_restored_tool_shapes() {
        let facts = decode(
            br#"{"model":"m","input":"x","include":["reasoning.encrypted_content"],"tools":[{"type":"custom","name":"apply_patch"},
                {"type":"namespace","name":"ns","tools":[{"type":"function","name":"spawn"}]}]}"#,
            b"key",
        )
        .unwrap()
        .facts;
        let ctx = AnswerContext {
            id_hex: "0123456789abcdef01234567",
            signing_key: b"key",
            created: 7,
            model: "codex-group",
            facts: &facts,
        };
        let call = crate::protocol::convert::test_support::tool_call;
        let response = Response {
            id: None,
            stop_sequence: None,
            output: vec![
                Part::Reasoning(Reasoning {
                    text: "Think".into(),
                    opaque: None,
                }),
                Part::Text("Patching".into()),
                call("call_1", "apply_patch", r#"{"input":"*** Begin Patch"}"#),
                call("call_2", "ns__spawn", "{}"),
            ],
            stop: StopReason::ToolUse,
            usage: Usage {
                input: 900,
                cached: 800,
                cache_write: 0,
                output: 40,
                reasoning: 12,
            },
        };
        let v: Value = serde_json::from_slice(&encode(&response, &ctx)).unwrap();
        assert_eq!(v["id"], "resp_llmr0123456789abcdef01234567");
        assert_eq!(
            (v["status"].as_str(), v["model"].as_str()),
            (Some("completed"), Some("codex-group"))
        );
        let output = v["output"].as_array().unwrap();
        assert_eq!(output[0]["id"], "rs_llmr0123456789abcdef01234567_0");
        assert_eq!(output[1]["content"][0]["text"], "Patching");
        assert_eq!(output[2]["type"], "custom_tool_call");
        assert_eq!(output[2]["input"], "*** Begin Patch");
        assert_eq!(
            (output[3]["name"].as_str(), output[3]["namespace"].as_str()),
            (Some("spawn"), Some("ns"))
        );
        assert_eq!(v["usage"]["total_tokens"], 940);
        assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 800);
        assert_eq!(v["text"], json!({"format": {"type": "text"}}));

        let cut = Response {
            stop: StopReason::MaxTokens,
            ..Response::default()
        };
        let v: Value = serde_json::from_slice(&encode(&cut, &ctx)).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    }
}
