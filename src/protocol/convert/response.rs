//! What the Chat ⇄ Messages stream converters (`super::stream`) need of answers: stop-reason mapping (§2.3),
//! usage arithmetic (§2.4), response ids and per-response tool ids (§1.3.5). Whole answers go through the
//! hub (`protocol::hub::convert_answer`).

use serde::Serialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------------
// Route A: ANT Message → OAI ChatCompletion (§2.1)
// ---------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------
// Route B: OAI ChatCompletion → ANT Message (§2.2)
// ---------------------------------------------------------------------------------------------------------

/// Reasoning text of an OAI message or delta: `reasoning_content` (DeepSeek, Qwen, most hosts), else
/// `reasoning` (OpenRouter, vLLM). Some hosts send both with the same text; only one is used.
pub(crate) fn reasoning_text(message: &Value) -> &str {
    let field = |name| message.get(name).and_then(Value::as_str).unwrap_or("");
    let primary = field("reasoning_content");
    if primary.is_empty() {
        field("reasoning")
    } else {
        primary
    }
}

// ---------------------------------------------------------------------------------------------------------
// Stop reasons (§2.3)
// ---------------------------------------------------------------------------------------------------------

/// ANT `stop_reason` → OAI `finish_reason`.
pub(crate) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, null and unknown values.
        _ => "stop",
    }
}

/// OAI `finish_reason` → ANT `stop_reason`. Any surviving tool call wins: OpenAI and several hosts answer
/// `stop` with tool calls, and SDK tool loops only run tools on `tool_use` (§6 row 19).
pub(crate) fn stop_reason_for(
    finish_reason: Option<&str>,
    saw_tool: bool,
    saw_refusal: bool,
    stop_sequence_known: bool,
) -> &'static str {
    if saw_tool {
        return "tool_use";
    }
    if saw_refusal {
        return "refusal";
    }
    match finish_reason {
        Some("stop") if stop_sequence_known => "stop_sequence",
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        // stop, tool_calls/function_call with no tool left, null, unknown (`eos`, …).
        _ => "end_turn",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Usage (§2.4)
// ---------------------------------------------------------------------------------------------------------

/// Token counts in Anthropic's terms: `input` excludes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub input: u64,
    pub cache_read: u64,
    /// `None` when the upstream did not report cache writes at all.
    pub cache_creation: Option<u64>,
    pub output: u64,
    pub thinking: Option<u64>,
}

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl TokenUsage {
    /// Route B before (or without) the upstream's own counts: the request's local input estimate, nothing
    /// else (§5.2).
    pub(crate) fn estimated(input_tokens: u64) -> Self {
        Self {
            input: input_tokens,
            ..Self::default()
        }
    }

    /// Applies an ANT usage object; fields it carries replace earlier values (ANT counts are cumulative).
    pub(crate) fn merge_anthropic(&mut self, usage: &Value) {
        if let Some(n) = count(usage, "input_tokens") {
            self.input = n;
        }
        if let Some(n) = count(usage, "cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = count(usage, "cache_creation_input_tokens") {
            self.cache_creation = Some(n);
        }
        if let Some(n) = count(usage, "output_tokens") {
            self.output = n;
        }
        if let Some(n) = usage
            .get("output_tokens_details")
            .and_then(|d| count(d, "thinking_tokens"))
        {
            self.thinking = Some(n);
        }
    }

    /// OAI usage → ANT terms: cached and written tokens are taken out of `prompt_tokens`.
    pub(crate) fn from_openai(usage: &Value) -> Self {
        let prompt = count(usage, "prompt_tokens").unwrap_or(0);
        let details = usage.get("prompt_tokens_details").unwrap_or(&Value::Null);
        let cached = count(details, "cached_tokens")
            .or_else(|| count(usage, "prompt_cache_hit_tokens"))
            .unwrap_or(0);
        let written = count(details, "cache_write_tokens").unwrap_or(0);
        Self {
            input: prompt.saturating_sub(cached).saturating_sub(written),
            cache_read: cached,
            cache_creation: Some(written),
            output: count(usage, "completion_tokens").unwrap_or(0),
            thinking: usage
                .get("completion_tokens_details")
                .and_then(|d| count(d, "reasoning_tokens")),
        }
    }

    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_read + self.cache_creation.unwrap_or(0)
    }

    pub(crate) fn to_openai(self) -> OaiUsage {
        let prompt_tokens = self.prompt_tokens();
        OaiUsage {
            prompt_tokens,
            completion_tokens: self.output,
            total_tokens: prompt_tokens + self.output,
            prompt_tokens_details: OaiPromptDetails {
                cached_tokens: self.cache_read,
                // As the hub's whole answers report it: only when something was written.
                cache_write_tokens: self.cache_creation.filter(|n| *n > 0),
            },
            completion_tokens_details: self
                .thinking
                .map(|reasoning_tokens| OaiCompletionDetails { reasoning_tokens }),
        }
    }

    pub(crate) fn to_anthropic(self) -> AntUsage {
        AntUsage {
            input_tokens: self.input,
            cache_creation_input_tokens: self.cache_creation.unwrap_or(0),
            cache_read_input_tokens: self.cache_read,
            output_tokens: self.output,
            output_tokens_details: self
                .thinking
                .map(|thinking_tokens| AntOutputDetails { thinking_tokens }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct OaiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: OaiPromptDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<OaiCompletionDetails>,
}

#[derive(Debug, Serialize)]
struct OaiPromptDetails {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Serialize)]
struct OaiCompletionDetails {
    reasoning_tokens: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct AntUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens_details: Option<AntOutputDetails>,
}

#[derive(Debug, Serialize)]
struct AntOutputDetails {
    thinking_tokens: u64,
}
