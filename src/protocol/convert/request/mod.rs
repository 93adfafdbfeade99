//! The small fix-ups an Anthropic request needs even when no conversion happens
//! ([`anthropic_same_protocol_fixups`], §1.3), and the request conversion tests (Routes A and B, which run
//! through the hub's codecs).

mod anthropic_rules;

#[cfg(test)]
mod tests;

use super::ModelOptions;

pub use super::RequestFacts;
pub use super::ids::{ToolNameMap, openai_tool_name, sanitize_tool_id, synthetic_tool_id};
pub use super::signature::{ROUTER_SIGNATURE_PREFIX, is_router_minted_signature, mint_thinking_signature};
pub use super::tool_calls::{JSON_OUTPUT_TOOL, parse_tool_arguments};
pub use anthropic_rules::{
    BudgetFit, CACHE_TTL, MIN_THINKING_BUDGET, MINTED_SIGNATURE, MessageView, anthropic_same_protocol_fixups,
    apply_anthropic_fixups, clamp_max_tokens, drops_top_p, is_router_thinking_block, open_tool_loop_lacks_thinking,
    strip_router_thinking, strip_ttl_in_block,
};
