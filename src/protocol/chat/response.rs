//! Decoding Chat Completions answers into the hub: a whole `chat.completion` into a [`Response`], and each
//! `chat.completion.chunk` of a stream into [`Event`]s. Typed and borrowed; tool arguments stay text.

use serde::Deserialize;

use crate::protocol::convert::ConvertError;
use crate::protocol::hub::{Event, Part, Reasoning, Response, StopReason, ToolCall, ToolKind, Usage};
use crate::protocol::sse::SseEvent;

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default, alias = "delta")]
    message: Option<ChatMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    /// DeepSeek, Qwen and vLLM call it `reasoning_content`; OpenRouter and Ollama `reasoning`.
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ChatToolCall>,
}

#[derive(Deserialize)]
struct ChatToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    name: Option<String>,
    /// A string by the spec; a few hosts send the object itself.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek reports cache hits here.
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    fn to_hub(&self) -> Usage {
        let prompt = self.prompt_tokens_details.as_ref();
        let cached = prompt
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0);
        Usage {
            input: self.prompt_tokens,
            cached: cached.min(self.prompt_tokens),
            cache_write: prompt.and_then(|d| d.cache_write_tokens).unwrap_or(0),
            output: self.completion_tokens,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

fn stop_reason(finish_reason: &str) -> StopReason {
    match finish_reason {
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::End,
    }
}

fn arguments_text(arguments: Option<serde_json::Value>) -> String {
    match arguments {
        Some(serde_json::Value::String(text)) => text,
        None | Some(serde_json::Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Decodes a whole `chat.completion`. An answer without choices is unusable.
pub fn decode(body: &[u8]) -> Result<Response, ConvertError> {
    let completion: Completion = serde_json::from_slice(body).map_err(|e| ConvertError {
        message: format!("the upstream's answer is not a chat completion: {e}"),
        param: None,
        code: None,
    })?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(ConvertError {
            message: "the upstream's answer has no choices".into(),
            param: None,
            code: None,
        });
    };
    let message = choice.message.unwrap_or_default();
    let mut output = Vec::new();
    if let Some(text) = message.reasoning_content.filter(|t| !t.is_empty()) {
        output.push(Part::Reasoning(Reasoning { text, opaque: None }));
    }
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        output.push(Part::Text(text));
    }
    if let Some(text) = message.refusal.filter(|t| !t.is_empty()) {
        output.push(Part::Refusal(text));
    }
    for (i, call) in message.tool_calls.into_iter().enumerate() {
        let function = call.function.unwrap_or(FunctionCall {
            name: None,
            arguments: None,
        });
        output.push(Part::ToolCall(ToolCall {
            id: call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_llmr_{i}")),
            name: function.name.unwrap_or_default(),
            namespace: None,
            kind: ToolKind::Function,
            arguments: arguments_text(function.arguments),
        }));
    }
    Ok(Response {
        id: completion.id,
        output,
        stop: choice.finish_reason.as_deref().map_or(StopReason::End, stop_reason),
        usage: completion.usage.unwrap_or_default().to_hub(),
    })
}

/// Decodes one event of a Chat Completions stream into hub events (appended to `out`). An event that is not
/// JSON is an error event.
pub fn decode_event(event: &SseEvent, out: &mut Vec<Event>) {
    if event.is_done_marker() {
        out.push(Event::Done);
        return;
    }
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Vec<Choice>,
        #[serde(default)]
        usage: Option<ChatUsage>,
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    let chunk: Chunk = match serde_json::from_str(&event.data) {
        Ok(chunk) => chunk,
        Err(e) => {
            out.push(crate::protocol::hub::unreadable_event(&e));
            return;
        }
    };
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("upstream error")
            .to_owned();
        let code = error.get("code").and_then(|c| c.as_str()).map(str::to_owned);
        out.push(Event::Error { message, code });
        return;
    }
    for choice in chunk.choices {
        if let Some(delta) = choice.message {
            if let Some(text) = delta.reasoning_content.filter(|t| !t.is_empty()) {
                out.push(Event::ReasoningDelta(text));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(Event::TextDelta(text));
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                out.push(Event::RefusalDelta(text));
            }
            for (position, call) in delta.tool_calls.into_iter().enumerate() {
                let index = call.index.unwrap_or(position);
                let function = call.function.unwrap_or(FunctionCall {
                    name: None,
                    arguments: None,
                });
                if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                    out.push(Event::ToolCallStart {
                        index,
                        id: call.id.filter(|id| !id.is_empty()),
                        name,
                    });
                }
                let arguments = arguments_text(function.arguments);
                if !arguments.is_empty() {
                    out.push(Event::ToolCallDelta { index, arguments });
                }
            }
        }
        if let Some(reason) = choice.finish_reason {
            out.push(Event::Stop(stop_reason(&reason)));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push(Event::Usage(usage.to_hub()));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding for a Chat client (a Chat client on another protocol's upstream)

/// What a Chat answer needs besides the hub response.
pub struct ChatAnswer<'a> {
    /// 24 hex digits; the answer's id is `chatcmpl-<hex>`.
    pub id_hex: &'a str,
    pub created: u64,
    /// The model the client asked for.
    pub model: &'a str,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

pub(crate) fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::End => "stop",
        StopReason::ToolUse => "tool_calls",
        StopReason::MaxTokens => "length",
        StopReason::ContentFilter => "content_filter",
    }
}

pub(crate) fn usage_json(usage: &Usage) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    })
}

/// Encodes a whole answer as a `chat.completion`.
pub fn encode(response: &Response, answer: &ChatAnswer<'_>) -> Vec<u8> {
    use serde_json::{Value, json};
    let mut text = String::new();
    let mut refusal = String::new();
    let mut reasoning = Vec::new();
    let mut calls = Vec::new();
    for part in &response.output {
        match part {
            Part::Text(t) => text.push_str(t),
            Part::Refusal(t) => refusal.push_str(t),
            Part::Reasoning(r) if !r.text.is_empty() => reasoning.push(r.text.as_str()),
            Part::ToolCall(call) => calls.push(json!({"id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": call.arguments}})),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::from(text) },
        "refusal": if refusal.is_empty() { Value::Null } else { Value::from(refusal) },
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::from(reasoning.join("\n\n"));
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let body = json!({
        // As on Route A: "chatcmpl-" + the upstream's id, when it has one.
        "id": match &response.id {
            Some(id) => format!("chatcmpl-{id}"),
            None => format!("chatcmpl-{}", answer.id_hex),
        },
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(response.stop)}],
        "usage": usage_json(&response.usage),
    });
    serde_json::to_vec(&body).expect("a chat completion serialises")
}

/// Chat Completions chunks, decoded one event at a time (the decoder keeps no state).
pub struct ChatChunks;

impl crate::protocol::hub::StreamDecoder for ChatChunks {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        decode_event(event, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_answer_with_reasoning_text_and_calls() {
        let response = decode(br#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",
            "content":"Running it","reasoning_content":"Think","tool_calls":[{"id":"call_a","type":"function","function":{"name":"exec_command","arguments":"{\"cmd\":\"ls\"}"}}]},
            "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":900,"completion_tokens":40,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":12}}}"#).unwrap();
        assert_eq!(response.stop, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input: 900,
                cached: 800,
                cache_write: 0,
                output: 40,
                reasoning: 12
            }
        );
        assert!(matches!(&response.output[0], Part::Reasoning(r) if r.text == "Think"));
        assert!(matches!(&response.output[1], Part::Text(t) if t == "Running it"));
        assert!(
            matches!(&response.output[2], Part::ToolCall(c) if c.id == "call_a" && c.arguments == r#"{"cmd":"ls"}"#)
        );
        assert!(decode(br#"{"choices":[]}"#).is_err());
    }

    #[test]
    fn stream_chunks_become_events() {
        let event = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        let mut out = Vec::new();
        decode_event(
            &event(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#),
            &mut out,
        );
        assert!(out.is_empty());
        decode_event(
            &event(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            ),
            &mut out,
        );
        decode_event(
            &event(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#),
            &mut out,
        );
        decode_event(
            &event(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#),
            &mut out,
        );
        decode_event(
            &event(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_cache_hit_tokens":1}}"#),
            &mut out,
        );
        decode_event(&event("[DONE]"), &mut out);
        assert_eq!(
            out,
            [
                Event::ToolCallStart {
                    index: 0,
                    id: Some("call_a".into()),
                    name: "f".into()
                },
                Event::ToolCallDelta {
                    index: 0,
                    arguments: "{}".into()
                },
                Event::Stop(StopReason::ToolUse),
                Event::Usage(Usage {
                    input: 3,
                    cached: 1,
                    cache_write: 0,
                    output: 2,
                    reasoning: 0
                }),
                Event::Done,
            ]
        );
    }
}
