//! Pure converters between OpenAI Chat Completions (OAI) and Anthropic Messages (ANT), following
//! `shared/protocol-conversion.md` (deviations are recorded in `docs/`).
//!
//! - Route A: OAI client → ANT upstream (request OAI→ANT; response, stream and errors ANT→OAI).
//! - Route B: ANT client → OAI upstream (request ANT→OAI; response, stream and errors OAI→ANT).
//!
//! Everything here is a plain function or a small state machine: no I/O, no clock, no randomness. Whatever
//! is not deterministic (the `created` time, response ids, the signing key) comes in through
//! [`ConvertContext`].

use serde::Deserialize;

pub mod error;
pub mod ids;
pub mod request;
pub mod response;
pub mod signature;
pub mod stream;
pub mod token_count;

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
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }
}
