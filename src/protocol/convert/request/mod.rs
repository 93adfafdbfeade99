//! Request converters (spec §1): what the router sends upstream when the client speaks the other protocol,
//! plus the small fix-ups an Anthropic request needs even when no conversion happens.
//!
//! - [`openai_to_anthropic`]: Route A, an OpenAI Chat Completions body for an Anthropic Messages upstream.
//! - [`anthropic_same_protocol_fixups`]: Anthropic client, Anthropic upstream (§1.3).
//!
//! Each returns the upstream body as a top-level JSON object (so the caller can still apply `rewrite_body`)
//! and the [`RequestFacts`] the response and stream converters need (defined at the `convert` level and
//! re-exported here). Tool-id and tool-name rewriting ([`sanitize_tool_id`], [`openai_tool_name`],
//! [`ToolNameMap`]) and thinking-signature minting ([`mint_thinking_signature`]) are shared with the response
//! side; they live in [`convert::ids`](super::ids) and [`convert::signature`](super::signature) and are
//! re-exported here.

mod anthropic_rules;
mod fields;
mod to_anthropic;
mod tool_ids;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use super::{ConvertError, ModelOptions};
use fields::{Path, get, invalid_type};

pub use super::RequestFacts;
pub use super::ids::{ToolNameMap, openai_tool_name, sanitize_tool_id, synthetic_tool_id};
pub use super::signature::{ROUTER_SIGNATURE_PREFIX, is_router_minted_signature, mint_thinking_signature};
pub use super::tool_calls::{JSON_OUTPUT_TOOL, parse_tool_arguments};
pub use anthropic_rules::{anthropic_same_protocol_fixups, apply_anthropic_fixups};
pub use to_anthropic::openai_to_anthropic;

/// A converted request, ready for the upstream.
#[derive(Debug, Clone)]
pub struct ConvertedRequest {
    /// The upstream body as a top-level JSON object, so the caller can still apply `rewrite_body` after
    /// conversion.
    pub body: Map<String, Value>,
    pub facts: RequestFacts,
}

/// `max_tokens` after the deployment's cap (§1.1.4). Clients such as Claude Code send 32000 regardless of the
/// model, so every route clamps.
fn clamp_max_tokens(requested: u64, options: &ModelOptions) -> u64 {
    match options.max_output_tokens {
        Some(cap) => requested.min(u64::from(cap)),
        None => requested,
    }
}

/// A tool's JSON schema (OpenAI `parameters`, Anthropic `input_schema`), which both protocols carry as is:
/// an object, or an empty object schema when absent.
fn tool_schema(tool: &Map<String, Value>, key: &str, at: &Path) -> Result<Value, ConvertError> {
    match get(tool, key) {
        None => Ok(json!({"type": "object", "properties": {}})),
        Some(schema @ Value::Object(_)) => Ok(schema.clone()),
        Some(_) => Err(invalid_type(&at.key(key), "an object")),
    }
}

/// Parses a request body that must be one JSON object.
fn parse_body(body: &[u8]) -> Result<Value, ConvertError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ConvertError {
        message: format!("We could not parse the JSON body of your request: {e}"),
        param: None,
        code: None,
    })?;
    if !value.is_object() {
        return Err(ConvertError {
            message: "The request body must be a JSON object.".to_owned(),
            param: None,
            code: None,
        });
    }
    Ok(value)
}

/// Text that the Anthropic API would reject as a block (empty or whitespace only, ground rule 5).
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}
