//! Encoding a hub [`Response`] as a Responses API `Response` object (reference §3): output items with ids
//! derived from the response id, tool calls restored to the client's shape (namespaced, custom), status and
//! `incomplete_details` from the stop reason, usage with every key present, and the request's settings
//! echoed as the SDKs expect.

use serde_json::{Map, Value, json};

use super::request::ResponsesFacts;
use super::tools::unwrap_custom_input;
use crate::protocol::hub::{Opaque, Part, Response, StopReason, ToolCall, ToolKind, Usage};

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
    pub fn response_id(&self) -> String {
        format!("resp_llmr{}", self.id_hex)
    }

    /// `<prefix>_llmr<hex>_<output index>` (reference §3.10).
    pub fn item_id(&self, prefix: &str, output_index: usize) -> String {
        format!("{prefix}_llmr{}_{output_index}", self.id_hex)
    }

    /// A reasoning item: its summary (none for redacted reasoning) and, when the client asked for
    /// `reasoning.encrypted_content`, the sealed artefact to replay next turn.
    pub fn reasoning_item(&self, id: String, text: Option<&str>, opaque: Option<&Opaque>) -> Value {
        let summary = match text {
            Some(text) => json!([{"type": "summary_text", "text": text}]),
            None => json!([]),
        };
        let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
        if self.facts.include_encrypted_reasoning
            && let Some(envelope) = opaque.map(|o| super::envelope::seal(self.signing_key, o))
        {
            item["encrypted_content"] = Value::from(envelope);
        }
        item
    }

    /// The client-facing item for a tool call the upstream made (names mapped back, custom input unwrapped).
    pub fn tool_call_item(&self, call: &ToolCall, output_index: usize, done: bool) -> Value {
        let tool = self.facts.tools.client_tool(&call.name);
        let status = if done { "completed" } else { "in_progress" };
        let mut item = match tool.kind {
            ToolKind::Custom => json!({
                "type": "custom_tool_call",
                "id": self.item_id("ctc", output_index),
                "call_id": call.id,
                "name": tool.name,
                "input": if done { unwrap_custom_input(&call.arguments) } else { String::new() },
                "status": status,
            }),
            ToolKind::Function => json!({
                "type": "function_call",
                "id": self.item_id("fc", output_index),
                "call_id": call.id,
                "name": tool.name,
                "arguments": if done { call.arguments.as_str() } else { "" },
                "status": status,
            }),
        };
        if let Some(namespace) = tool.namespace {
            item["namespace"] = Value::from(namespace);
        }
        item
    }

    /// The Response object with `output`, in the given status.
    pub fn response_object(&self, status: &str, output: Vec<Value>, usage: Option<&Usage>, stop: StopReason) -> Value {
        let echo = &self.facts.echo;
        let raw = |value: &Option<Box<serde_json::value::RawValue>>| -> Option<Value> {
            value.as_ref().and_then(|r| serde_json::from_str(r.get()).ok())
        };
        let incomplete = match (status, stop) {
            ("incomplete", StopReason::ContentFilter) => json!({"reason": "content_filter"}),
            ("incomplete", _) => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        let mut object = Map::new();
        object.insert("id".into(), Value::from(self.response_id()));
        object.insert("object".into(), Value::from("response"));
        object.insert("created_at".into(), Value::from(self.created));
        object.insert("status".into(), Value::from(status));
        if status == "completed" {
            object.insert("completed_at".into(), Value::from(self.created));
        }
        object.insert("error".into(), Value::Null);
        object.insert("incomplete_details".into(), incomplete);
        object.insert(
            "instructions".into(),
            echo.instructions.clone().map_or(Value::Null, Value::from),
        );
        object.insert("model".into(), Value::from(self.model));
        object.insert("output".into(), Value::Array(output));
        object.insert(
            "parallel_tool_calls".into(),
            Value::from(echo.parallel_tool_calls.unwrap_or(true)),
        );
        object.insert("temperature".into(), echo.temperature.map_or(Value::Null, Value::from));
        object.insert("top_p".into(), echo.top_p.map_or(Value::Null, Value::from));
        object.insert(
            "max_output_tokens".into(),
            echo.max_output_tokens.map_or(Value::Null, Value::from),
        );
        object.insert(
            "tool_choice".into(),
            raw(&echo.tool_choice).unwrap_or_else(|| Value::from("auto")),
        );
        object.insert("tools".into(), raw(&echo.tools).unwrap_or_else(|| json!([])));
        object.insert("reasoning".into(), raw(&echo.reasoning).unwrap_or(Value::Null));
        object.insert(
            "text".into(),
            raw(&echo.text).unwrap_or_else(|| json!({"format": {"type": "text"}})),
        );
        object.insert("truncation".into(), Value::from("disabled"));
        object.insert("metadata".into(), json!({}));
        object.insert("store".into(), Value::Bool(false));
        object.insert("background".into(), Value::Bool(false));
        object.insert("previous_response_id".into(), Value::Null);
        object.insert(
            "prompt_cache_key".into(),
            echo.prompt_cache_key.clone().map_or(Value::Null, Value::from),
        );
        object.insert("user".into(), echo.user.clone().map_or(Value::Null, Value::from));
        object.insert("usage".into(), usage.map_or(Value::Null, usage_object));
        Value::Object(object)
    }
}

/// `completed`, or `incomplete` for a cut-off or filtered answer (reference §3.5).
pub fn status(stop: StopReason) -> &'static str {
    match stop {
        StopReason::MaxTokens | StopReason::ContentFilter => "incomplete",
        StopReason::End | StopReason::ToolUse => "completed",
    }
}

/// Usage with all five keys and both details objects (Codex needs `total_tokens`; reference §3.6).
pub fn usage_object(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    })
}

pub fn message_item(id: String, part: Value, done: bool) -> Value {
    json!({
        "type": "message",
        "id": id,
        "role": "assistant",
        "status": if done { "completed" } else { "in_progress" },
        "content": if done { json!([part]) } else { json!([]) },
    })
}

pub fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

pub fn refusal_part(text: &str) -> Value {
    json!({"type": "refusal", "refusal": text})
}

/// Encodes a whole answer.
pub fn encode(response: &Response, ctx: &AnswerContext<'_>) -> Vec<u8> {
    let mut output = Vec::with_capacity(response.output.len());
    for part in &response.output {
        let oi = output.len();
        match part {
            Part::Reasoning(reasoning) => {
                let text = Some(reasoning.text.as_str()).filter(|t| !t.is_empty());
                output.push(ctx.reasoning_item(ctx.item_id("rs", oi), text, reasoning.opaque.as_ref()))
            }
            Part::Text(text) => output.push(message_item(ctx.item_id("msg", oi), text_part(text), true)),
            Part::Refusal(text) => output.push(message_item(ctx.item_id("msg", oi), refusal_part(text), true)),
            Part::ToolCall(call) => output.push(ctx.tool_call_item(call, oi, true)),
            _ => {}
        }
    }
    let object = ctx.response_object(status(response.stop), output, Some(&response.usage), response.stop);
    serde_json::to_vec(&object).expect("a Response serialises")
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
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(serde::Deserialize, Default)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
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
        serde_json::from_slice(body).map_err(|e| crate::protocol::convert::ConvertError {
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
    use super::*;
    use crate::protocol::hub::Reasoning;
    use crate::protocol::responses::request::decode;

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
        let call = |id: &str, name: &str, arguments: &str| {
            Part::ToolCall(ToolCall {
                id: id.into(),
                name: name.into(),
                namespace: None,
                kind: ToolKind::Function,
                arguments: arguments.into(),
            })
        };
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
