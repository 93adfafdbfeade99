//! Rules every request bound for an Anthropic upstream must satisfy, whether it was converted (Route A) or
//! sent by an Anthropic client (same-protocol route, §1.3).
//!
//! The same-protocol route forwards the client's bytes untouched whenever it can (design note "touch only
//! what must change"), so [`anthropic_same_protocol_fixups`] first looks for cheap evidence that a rule
//! applies and only parses the body when one might.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde_json::{Map, Value};

use super::ModelOptions;
use crate::protocol::convert::signature::{ROUTER_SIGNATURE_PREFIX, is_router_minted_signature};
use crate::protocol::json::key_finder;
use crate::protocol::raw_body::RawBody;

/// Anthropic's smallest accepted `thinking.budget_tokens`.
pub const MIN_THINKING_BUDGET: u64 = 1024;

// Built once: making a searcher costs more than running it over a request.

/// Finds the prefix of the thinking signatures the router mints.
pub static MINTED_SIGNATURE: LazyLock<Finder<'static>> =
    LazyLock::new(|| key_finder(ROUTER_SIGNATURE_PREFIX.as_bytes()));
/// Finds a cache `ttl` key.
pub static CACHE_TTL: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""ttl""#));

/// Same-protocol (Anthropic → Anthropic) fix-ups of §1.3: router-minted thinking blocks are removed (and
/// with them `thinking`, when the open tool loop is then left without a signed thinking block),
/// `cache_control.ttl` is removed unless the upstream is Anthropic's own API, `top_p` is dropped next to
/// `temperature` for `sampling_exclusive` models, and `max_tokens` is clamped to `max_output_tokens`.
///
/// Takes the raw body rather than a parsed map so the common case costs a few substring scans and no
/// parse: `None` means "forward the original bytes". `Some(body)` is the whole fixed body (the caller then
/// rewrites `model` and applies `rewrite_body` on it). A body that is not a JSON object also yields `None`:
/// the upstream reports the error in its own words.
pub fn anthropic_same_protocol_fixups(body: &[u8], options: &ModelOptions) -> Option<Map<String, Value>> {
    static TOP_P: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""top_p""#));
    static TEMPERATURE: LazyLock<Finder<'static>> = LazyLock::new(|| key_finder(br#""temperature""#));
    let contains = |finder: &Finder| finder.find(body).is_some();
    let maybe_minted = contains(&MINTED_SIGNATURE);
    let maybe_ttl = !options.anthropic_native && contains(&CACHE_TTL);
    let maybe_sampling = options.sampling_exclusive && contains(&TOP_P) && contains(&TEMPERATURE);
    let maybe_clamp = options.max_output_tokens.is_some_and(|cap| {
        // A top-level scan without building a tree: only the value of `max_tokens` is decoded.
        RawBody::parse(body)
            .ok()
            .and_then(|raw| raw.decode::<u64>("max_tokens").ok().flatten())
            .is_some_and(|max| max > u64::from(cap))
    });
    if !(maybe_minted || maybe_ttl || maybe_sampling || maybe_clamp) {
        return None;
    }
    let mut map: Map<String, Value> = serde_json::from_slice(body).ok()?;
    apply_anthropic_fixups(&mut map, options).then_some(map)
}

/// Applies the same-protocol fix-ups of [`anthropic_same_protocol_fixups`] to an already parsed body;
/// returns whether anything changed.
pub fn apply_anthropic_fixups(body: &mut Map<String, Value>, options: &ModelOptions) -> bool {
    let mut changed = false;
    if let Some(Value::Array(messages)) = body.get_mut("messages")
        && let Some(loop_unsigned) = strip_router_thinking(messages)
    {
        changed = true;
        if loop_unsigned && thinking_is_on(body) {
            remove_thinking(body);
        }
    }
    if !options.anthropic_native {
        changed |= strip_cache_ttl(body);
    }
    if drops_top_p(options, body.contains_key("temperature")) && body.remove("top_p").is_some() {
        changed = true;
    }
    changed |= clamp_with_thinking_budget(body, options);
    changed
}

/// What the rules need to see of one message of a Messages body, whether it is a JSON tree (a client's
/// body on the same-protocol route) or the typed body the hub's encoder writes.
pub trait MessageView {
    /// `user` or `assistant`.
    fn role(&self) -> Option<&str>;
    fn has_tool_result(&self) -> bool;
    /// The content opens with a `thinking` or `redacted_thinking` block.
    fn starts_with_thinking(&self) -> bool;
    /// Removes the thinking blocks whose signature the router minted; whether there were any.
    fn strip_router_thinking(&mut self) -> bool;
    /// The content is a list with nothing left in it.
    fn has_no_blocks(&self) -> bool;
}

/// Removes thinking blocks whose signature the router minted (§1.3.6); an assistant message left without
/// content is removed too (the API rejects empty content). `None` when nothing was removed, else whether
/// the open tool loop is now left without signed thinking, in which case `thinking` must go.
pub fn strip_router_thinking<M: MessageView>(messages: &mut Vec<M>) -> Option<bool> {
    let mut removed = false;
    for message in messages.iter_mut() {
        removed |= message.strip_router_thinking();
    }
    if !removed {
        return None;
    }
    messages.retain(|m| !m.has_no_blocks());
    Some(open_tool_loop_lacks_thinking(messages))
}

/// A thinking block signed by the router: no upstream can verify it.
pub fn is_router_thinking_block(block: &Value) -> bool {
    block.get("type").and_then(Value::as_str) == Some("thinking")
        && block
            .get("signature")
            .and_then(Value::as_str)
            .is_some_and(is_router_minted_signature)
}

/// `sampling_exclusive` models take `temperature` or `top_p`, not both; `temperature` is the one kept.
pub fn drops_top_p(options: &ModelOptions, has_temperature: bool) -> bool {
    options.sampling_exclusive && has_temperature
}

/// With thinking on, Anthropic requires the assistant turns of the open tool-use loop to start with a
/// thinking block ("a final `assistant` message must start with a thinking block (preceding the lastmost
/// set of `tool_use` and `tool_result` blocks)"; the API reports it on the turn that opened the loop). This
/// is true when a loop is open (the conversation ends with tool results) and one of its assistant turns
/// does not; the request must then go without `thinking` (§1.1.7).
///
/// The loop reaches back to the last user message that answers no tool call (the human's request).
/// Consecutive messages of one role count as one turn, as the API combines them.
pub fn open_tool_loop_lacks_thinking<M: MessageView>(messages: &[M]) -> bool {
    let turns = turn_spans(messages);
    let loop_open = turns
        .last()
        .is_some_and(|t| t.role == Some("user") && t.has_tool_result);
    if !loop_open {
        return false;
    }
    let loop_start = turns
        .iter()
        .rposition(|t| t.role == Some("user") && !t.has_tool_result)
        .map_or(0, |i| i + 1);
    turns
        .get(loop_start..)
        .unwrap_or_default()
        .iter()
        .filter(|t| t.role == Some("assistant"))
        .any(|t| !messages.get(t.first_message).is_some_and(M::starts_with_thinking))
}

/// A run of consecutive messages with one role, which the API treats as one turn.
struct TurnSpan<'a> {
    role: Option<&'a str>,
    first_message: usize,
    has_tool_result: bool,
}

fn turn_spans<M: MessageView>(messages: &[M]) -> Vec<TurnSpan<'_>> {
    let mut turns: Vec<TurnSpan> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.role();
        let has_result = message.has_tool_result();
        match turns.last_mut() {
            Some(turn) if turn.role == role => turn.has_tool_result |= has_result,
            _ => turns.push(TurnSpan {
                role,
                first_message: i,
                has_tool_result: has_result,
            }),
        }
    }
    turns
}

impl MessageView for Value {
    fn role(&self) -> Option<&str> {
        self.get("role").and_then(Value::as_str)
    }

    fn has_tool_result(&self) -> bool {
        matches!(self.get("content"), Some(Value::Array(blocks))
            if blocks.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")))
    }

    fn starts_with_thinking(&self) -> bool {
        let first_type = self
            .get("content")
            .and_then(Value::as_array)
            .and_then(|blocks| blocks.first())
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str);
        matches!(first_type, Some("thinking" | "redacted_thinking"))
    }

    fn strip_router_thinking(&mut self) -> bool {
        let Some(Value::Array(blocks)) = self.get_mut("content") else {
            return false;
        };
        let before = blocks.len();
        blocks.retain(|block| !is_router_thinking_block(block));
        blocks.len() != before
    }

    fn has_no_blocks(&self) -> bool {
        matches!(self.get("content"), Some(Value::Array(blocks)) if blocks.is_empty())
    }
}

fn thinking_is_on(body: &Map<String, Value>) -> bool {
    let kind = body.get("thinking").and_then(|t| t.get("type")).and_then(Value::as_str);
    matches!(kind, Some("enabled" | "adaptive"))
}

/// Drops `thinking` and the effort that only makes sense with it (never send effort with thinking off,
/// §1.1.7; DeepSeek's Anthropic endpoint rejects the pair, §6 row 31).
fn remove_thinking(body: &mut Map<String, Value>) {
    body.remove("thinking");
    if let Some(Value::Object(config)) = body.get_mut("output_config") {
        config.remove("effort");
        if config.is_empty() {
            body.remove("output_config");
        }
    }
}

/// Removes `ttl` from every `cache_control` (§1.3.9): third-party Messages endpoints reject it.
fn strip_cache_ttl(body: &mut Map<String, Value>) -> bool {
    let mut changed = strip_ttl_on(body);
    for key in ["system", "tools"] {
        if let Some(Value::Array(items)) = body.get_mut(key) {
            for item in items {
                changed |= strip_ttl_in_block(item);
            }
        }
    }
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for message in messages {
            if let Some(Value::Array(blocks)) = message.get_mut("content") {
                for block in blocks {
                    changed |= strip_ttl_in_block(block);
                }
            }
        }
    }
    changed
}

/// One block and the blocks nested in it (`tool_result`, `mid_conv_system` and content documents carry
/// their own `content` lists).
pub fn strip_ttl_in_block(block: &mut Value) -> bool {
    let Value::Object(obj) = block else {
        return false;
    };
    let mut changed = strip_ttl_on(obj);
    if let Some(Value::Array(inner)) = obj.get_mut("content") {
        for nested in inner {
            changed |= strip_ttl_in_block(nested);
        }
    }
    if let Some(Value::Object(source)) = obj.get_mut("source")
        && let Some(Value::Array(inner)) = source.get_mut("content")
    {
        for nested in inner {
            changed |= strip_ttl_in_block(nested);
        }
    }
    changed
}

fn strip_ttl_on(obj: &mut Map<String, Value>) -> bool {
    match obj.get_mut("cache_control") {
        Some(Value::Object(cache_control)) => cache_control.remove("ttl").is_some(),
        _ => false,
    }
}

/// What clamping `max_tokens` to the deployment's cap does to a thinking budget (§1.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetFit {
    /// No budget, or one below the clamped `max_tokens`.
    Fits,
    /// Lowered to `max_tokens - 1`.
    Lowered(u64),
    /// Lowering would fall below Anthropic's minimum: thinking goes.
    TooSmall,
}

/// `requested` clamped to `cap`, with what that leaves of an enabled thinking `budget`; `None` when the
/// clamp changes nothing.
pub fn clamp_max_tokens(requested: u64, cap: Option<u32>, budget: Option<u64>) -> Option<(u64, BudgetFit)> {
    let clamped = cap.map_or(requested, |cap| requested.min(u64::from(cap)));
    if clamped == requested {
        return None;
    }
    let fit = match budget {
        Some(budget) if budget >= clamped => match clamped.saturating_sub(1) {
            lowered if lowered < MIN_THINKING_BUDGET => BudgetFit::TooSmall,
            lowered => BudgetFit::Lowered(lowered),
        },
        _ => BudgetFit::Fits,
    };
    Some((clamped, fit))
}

/// Clamps `max_tokens` to the deployment's cap; a thinking budget the clamp leaves too large is lowered to
/// `max_tokens - 1`, and thinking is switched off if that falls below Anthropic's minimum (§1.1.4).
fn clamp_with_thinking_budget(body: &mut Map<String, Value>, options: &ModelOptions) -> bool {
    let Some(requested) = body.get("max_tokens").and_then(Value::as_u64) else {
        return false;
    };
    let budget = body
        .get("thinking")
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    let Some((clamped, fit)) = clamp_max_tokens(requested, options.max_output_tokens, budget) else {
        return false;
    };
    body.insert("max_tokens".to_owned(), Value::from(clamped));
    match fit {
        BudgetFit::Fits => {}
        BudgetFit::TooSmall => remove_thinking(body),
        BudgetFit::Lowered(lowered) => {
            if let Some(Value::Object(thinking)) = body.get_mut("thinking") {
                thinking.insert("budget_tokens".to_owned(), Value::from(lowered));
            }
        }
    }
    true
}
