//! What the codecs around the hub share: the deployment options they read ([`ModelOptions`]), the facts a
//! request leaves for its answer ([`RequestFacts`]), the ids and times minted for a converted answer
//! ([`ConvertContext`]), the refusal error ([`ConvertError`]), tool ids and names, the router's thinking
//! signatures, the local token estimate and the upstream error tables (`shared/protocol-conversion.md` §4).
//!
//! `stream` holds the contract every stream converter keeps; the hub's `HubStream` is the one converter. The
//! Route A and B tests (requests, whole answers, streams) live here too. Everything here is a plain function
//! or a small state machine: no I/O, no clock, no randomness.

use serde::Deserialize;

use ids::ToolNameMap;

pub mod error;
pub mod ids;
pub mod request;
pub mod signature;
pub mod stream;
pub mod token_count;
pub mod tool_calls;

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod stream_tests_a;
#[cfg(test)]
mod stream_tests_b;
#[cfg(test)]
pub(crate) mod test_support;

/// What a request's conversion learnt that its answer's conversion needs: `hub::convert_request` makes it,
/// the relay hands it unchanged to `hub::convert_answer` or `hub::convert_stream`.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// The client asked for a stream.
    pub stream: bool,
    /// A Chat client's `stream_options.include_usage` (only ever true when streaming).
    pub include_usage: bool,
    /// Upstream (OpenAI-safe) tool name → the client's original name, for answers and streams (§1.2.4
    /// reverse mapping). Empty for Responses clients, whose `responses` facts name their tools.
    pub tool_names: ToolNameMap,
    /// An Anthropic upstream without `output_config.format`: structured output is emulated with the
    /// synthetic `json_output` tool (§1.1.8), so the answer must turn that tool's input into its text.
    pub json_output_tool: bool,
    /// An Anthropic client's stream only (0 otherwise): local estimate of the prompt size for
    /// `message_start.usage.input_tokens`, and for `usage` when the upstream reports none (§3.4, §5.2).
    pub input_tokens_estimate: u64,
    /// The upstream request ends up with thinking / reasoning switched on.
    pub thinking_enabled: bool,
    /// The client sent `max_tokens: 0` (Claude Code's cache pre-warm). The relay answers locally with an
    /// empty message and `stop_reason: "max_tokens"` instead of calling the upstream (§1.2.1); the body is
    /// still a valid request (`max_tokens` 1) in case it is sent anyway.
    pub cache_prewarm: bool,
    /// An Anthropic client's `stop_sequences` as a Chat upstream gets them (the first four), so a vLLM-style
    /// `stop_reason` string can be reported as `stop_sequence` (§2.2). Empty when unknown; then
    /// `stop_sequence` is always `null`.
    pub stop_sequences: Vec<String>,
    /// A Responses client: how to name its tools again and what to echo.
    pub responses: Option<Box<crate::protocol::responses::request::ResponsesFacts>>,
    /// A Gemini client asked to see thought parts (`thinkingConfig.includeThoughts`).
    pub include_thoughts: bool,
}

impl RequestFacts {
    /// An upstream's answer as the client must see it: tool names the upstream knew shortened get the
    /// client's back, the emulated `json_output` call becomes the answer's text, and a Chat upstream's
    /// stop string counts as a stop sequence only if the client asked for it.
    pub fn restore(&self, response: &mut crate::protocol::hub::Response, upstream: crate::protocol::Protocol) {
        use crate::protocol::hub::{Part, StopReason};
        self.tool_names.restore(response);
        if self.json_output_tool {
            for part in &mut response.output {
                if let Part::ToolCall(call) = part
                    && call.name == tool_calls::JSON_OUTPUT_TOOL
                {
                    *part = Part::Text(std::mem::take(&mut call.arguments));
                    if response.stop == StopReason::ToolUse {
                        response.stop = StopReason::End;
                    }
                }
            }
        }
        if upstream == crate::protocol::Protocol::OpenAi {
            response.stop_sequence = response
                .stop_sequence
                .take()
                .filter(|s| self.stop_sequences.contains(s));
        }
    }
}

/// How a deployment wants thinking requested (Route A, §1.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkingMode {
    #[default]
    Budget,
    Adaptive,
    None,
}

/// The reasoning dialect of an OpenAI-compatible upstream (Route B, §1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningDialect {
    #[default]
    Openai,
    Deepseek,
    Qwen,
    None,
}

/// Per-deployment knobs the converters read (spec §0). Defaults are what an unconfigured deployment gets.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    /// Hard cap on output tokens; client values above it are clamped on every route.
    pub max_output_tokens: Option<u32>,
    /// `max_tokens` sent to an ANT upstream when the OAI client gave none.
    pub default_max_tokens: Option<u32>,
    pub thinking_mode: ThinkingMode,
    pub reasoning_dialect: ReasoningDialect,
    /// Send `stream_options.include_usage` to OAI upstreams on streaming requests.
    pub supports_stream_options: bool,
    pub supports_top_k: bool,
    /// ANT models that reject `temperature` and `top_p` together.
    pub sampling_exclusive: bool,
    /// ANT upstream accepts `output_config.format`.
    pub supports_output_format: bool,
    /// OAI upstream accepts Anthropic-style `cache_control` markers.
    pub forward_cache_control: bool,
    /// The ANT upstream is Anthropic's own API (keeps `cache_control.ttl`).
    pub anthropic_native: bool,
    /// Multiplier applied to local token estimates so they err high.
    pub token_count_factor: f64,
    /// Route B: fold system messages from the middle of the conversation into the leading one, for hosts
    /// whose chat templates reject a system message anywhere else.
    pub merge_system_messages: bool,
    /// The Chat upstream accepts `prompt_cache_key` (OpenAI does; strict hosts reject unknown keys).
    pub supports_prompt_cache_key: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            max_output_tokens: None,
            default_max_tokens: None,
            thinking_mode: ThinkingMode::default(),
            reasoning_dialect: ReasoningDialect::default(),
            supports_stream_options: true,
            supports_top_k: false,
            sampling_exclusive: false,
            supports_output_format: true,
            forward_cache_control: false,
            anthropic_native: false,
            token_count_factor: 1.15,
            merge_system_messages: false,
            supports_prompt_cache_key: false,
        }
    }
}

/// What a converter needs to know about the request beyond its body.
#[derive(Debug, Clone)]
pub struct ConvertContext<'a> {
    /// The model name the client sent; echoed in every response and stream event (ground rule 2).
    pub client_model: &'a str,
    /// The deployment's upstream model name; written into the upstream request.
    pub upstream_model: &'a str,
    pub options: &'a ModelOptions,
    /// Unix seconds, for OAI `created`.
    pub created: u64,
    /// A fresh id for the response (`chatcmpl-…` / `msg_…` prefix is added by the converter when missing).
    pub response_id: &'a str,
    /// Key for the router-minted thinking signatures (§1.3.6).
    pub signing_key: &'a [u8],
    /// The client asked for a stream by its route (Gemini's `:streamGenerateContent`); the other protocols
    /// say so in the body.
    pub route_stream: bool,
}

/// A conversion the router refuses; rendered as a 400 in the client's protocol with `param` set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    pub message: String,
    /// The offending request field, e.g. `messages[2].content[0]`.
    pub param: Option<String>,
    /// OAI `code`, e.g. `unsupported_parameter`.
    pub code: Option<&'static str>,
}

impl ConvertError {
    /// An upstream answer the router cannot use.
    pub fn bad_upstream(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: None,
            code: Some("bad_upstream_response"),
        }
    }

    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }
}
