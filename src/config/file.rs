//! The config file exactly as users write it. Free-form strings (api_type, strategy, URLs) are checked in
//! `validate`, so mistakes get a message naming their place instead of a bare serde error.

use serde::Deserialize;

use crate::protocol::convert::{ReasoningDialect, ThinkingMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub model_list: Vec<ModelEntry>,
    #[serde(default)]
    pub router_settings: RouterSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub model_name: String,
    pub llm_params: LlmParams,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmParams {
    pub api_type: String,
    /// Required but for `api_type: mock`; checked by validation, which can say where it is missing.
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub api_base: String,
    /// One key, or a pool of keys used in turn.
    #[serde(default)]
    pub api_key: Option<ApiKeys>,
    #[serde(default)]
    pub rewrite_body: Option<RewriteBody>,
    /// Headers set (or, with `null`, removed) on every upstream request, in the same two forms.
    #[serde(default)]
    pub rewrite_header: Option<RewriteBody>,
    // Provider differences the converters need to know about (see `protocol::convert::ModelOptions`).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    #[serde(default)]
    pub thinking_mode: Option<ThinkingMode>,
    #[serde(default)]
    pub reasoning_dialect: Option<ReasoningDialect>,
    #[serde(default)]
    pub supports_stream_options: Option<bool>,
    #[serde(default)]
    pub supports_top_k: Option<bool>,
    #[serde(default)]
    pub sampling_exclusive: Option<bool>,
    #[serde(default)]
    pub supports_output_format: Option<bool>,
    #[serde(default)]
    pub forward_cache_control: Option<bool>,
    #[serde(default)]
    pub anthropic_native: Option<bool>,
    #[serde(default)]
    pub token_count_factor: Option<f64>,
    #[serde(default)]
    pub merge_system_messages: Option<bool>,
    #[serde(default)]
    pub supports_prompt_cache_key: Option<bool>,
    // Per-deployment overrides of the router-wide timeouts (seconds).
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub stream_idle_timeout: Option<f64>,
    /// This deployment's upstream proxy instead of `--proxy`, or `none` for a direct connection.
    #[serde(default)]
    pub proxy: Option<String>,
    // `api_type: mock` only: what the built-in upstream answers.
    #[serde(default)]
    pub mock_response: Option<String>,
    #[serde(default)]
    pub mock_delay_ms: Option<u64>,
    #[serde(default)]
    pub mock_stream_chunk_chars: Option<usize>,
}

/// `api_key`: one key, or a list of them (each a key or `os.environ/NAME`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ApiKeys {
    One(String),
    Pool(Vec<String>),
}

/// `rewrite_body` as a JSON string (the original format) or as a YAML mapping.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RewriteBody {
    Json(String),
    Mapping(serde_json::Map<String, serde_json::Value>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub model_groups: Vec<GroupEntry>,
    // Reliability (names as in LiteLLM).
    #[serde(default)]
    pub num_retries: Option<u32>,
    #[serde(default)]
    pub allowed_fails: Option<u32>,
    #[serde(default)]
    pub cooldown_time: Option<f64>,
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub stream_idle_timeout: Option<f64>,
    #[serde(default)]
    pub max_request_size_mb: Option<f64>,
    #[serde(default)]
    pub drain_timeout: Option<f64>,
    #[serde(default)]
    pub header_read_timeout: Option<f64>,
    #[serde(default)]
    pub body_read_timeout: Option<f64>,
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub max_event_size_mb: Option<f64>,
    /// A SQLite file for the usage log (one row per request); relative to the config file's folder.
    #[serde(default)]
    pub usage_db: Option<String>,
    #[serde(default)]
    pub usage_retention_days: Option<u32>,
    /// `session` or `none`: the default of every group's `affinity`.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Checked in order before the group lookup; the first that matches names the group.
    #[serde(default)]
    pub routing_rules: Vec<RuleEntry>,
    /// Named client keys, each with its own groups and limits.
    #[serde(default)]
    pub client_keys: Vec<ClientKeyEntry>,
    /// `redis://` or `rediss://` (or `os.environ/NAME`): limits and cooldowns shared by every replica.
    #[serde(default)]
    pub redis_url: Option<String>,
}

/// One entry of `client_keys`: the key as a value (or `os.environ/NAME`), or only its SHA-256.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKeyEntry {
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// Globs of the group names the key may use; unset: every group.
    #[serde(default)]
    pub groups: Option<OneOrMany>,
    #[serde(default)]
    pub rpm: Option<i64>,
    #[serde(default)]
    pub tpm: Option<i64>,
    #[serde(default)]
    pub max_parallel: Option<i64>,
    /// RFC 3339, e.g. `2026-12-31T23:59:59Z`.
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub name: String,
    #[serde(default)]
    pub when: WhenEntry,
    pub route: String,
}

/// A rule's condition: its fields combine with AND.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenEntry {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub ingress: Option<OneOrMany>,
    /// `">60000"`, `"<=8k"`; a bare number is refused (which side of it would be unclear).
    #[serde(default)]
    pub prompt_tokens: Option<serde_json::Value>,
    #[serde(default)]
    pub has: Option<OneOrMany>,
    /// Header name to a glob on its value, in file order.
    #[serde(default)]
    pub header: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub any: Option<Vec<WhenEntry>>,
    #[serde(default)]
    pub not: Option<Box<WhenEntry>>,
}

/// One name or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(name) => vec![name],
            Self::Many(names) => names,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: String,
    #[serde(default)]
    pub models: Vec<GroupMember>,
    /// Glob patterns of client model names that name no group but are served by this one.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Overrides `router_settings.strategy` for this group.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Overrides `router_settings.affinity` for this group.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Groups that take the request over, in order, when every attempt here failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// The group that takes a request whose prompt an upstream found too long.
    #[serde(default)]
    pub context_window_fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i64>,
}
