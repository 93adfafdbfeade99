//! Route B (§1.2) and the local token count (§5.2) on requests the real Claude Code CLI sent, recorded by
//! `tests/claude_code.rs` into `tests/fixtures/claude-code/` (prose cut to 200 characters, machine-specific
//! strings replaced; structure, tool names, schemas, `cache_control`, `metadata.user_id` and thinking
//! settings as sent):
//!
//! - `main_loop_tool_result.json`: the main loop's second turn: 12 tools, a 3-block system prompt with
//!   `cache_control`, a mid-conversation `role: "system"` message, an assistant turn with a router-signed
//!   thinking block and a `Bash` tool_use, and the `tool_result` (itself cache-marked); adaptive thinking with
//!   `output_config.effort`, `context_management`, a JSON `metadata.user_id` of ~150 characters.
//! - `side_request_compact.json`: `/compact` on that session: the assistant turn replayed as thinking + text
//!   + tool_use, then a user turn with the tool_result and the summary instructions.
//! - `count_tokens_tools.json`: one of `/context`'s `count_tokens` calls (the built-in tool definitions).

use serde_json::{Value, json};

use super::{options, route_b_with};
use crate::protocol::convert::ids::sha256_hex;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::protocol::convert::{ModelOptions, ReasoningDialect};

const MAIN_LOOP: &str = include_str!("../../../../../tests/fixtures/claude-code/main_loop_tool_result.json");
const COMPACT: &str = include_str!("../../../../../tests/fixtures/claude-code/side_request_compact.json");
const COUNT_TOKENS: &str = include_str!("../../../../../tests/fixtures/claude-code/count_tokens_tools.json");

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A DeepSeek-style deployment with an 8k output cap: the usual Claude Code target.
fn deepseek_capped() -> ModelOptions {
    options(|o| {
        o.reasoning_dialect = ReasoningDialect::Deepseek;
        o.max_output_tokens = Some(8192);
    })
}

fn convert(body: &Value, options: &ModelOptions) -> Value {
    Value::Object(route_b_with(body, options).body)
}

fn messages(out: &Value) -> &Vec<Value> {
    out["messages"].as_array().unwrap()
}

/// The text of every system block, in order.
fn system_texts(body: &Value) -> Vec<&str> {
    body["system"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect()
}

fn contains_key(value: &Value, key: &str) -> bool {
    match value {
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| contains_key(v, key)),
        Value::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

/// Every Claude Code tool arrives as a function with its description and exact schema, in order.
fn assert_tools_kept(input: &Value, out: &Value) {
    let sent = input["tools"].as_array().unwrap();
    let converted = out["tools"].as_array().unwrap();
    assert_eq!(converted.len(), sent.len(), "no Claude Code tool is dropped");
    for (tool, function) in sent.iter().zip(converted) {
        assert_eq!(function["type"], "function");
        let function = &function["function"];
        assert_eq!(function["name"], tool["name"]);
        assert_eq!(function["description"], tool["description"]);
        assert_eq!(
            function["parameters"], tool["input_schema"],
            "{} schema unchanged",
            tool["name"]
        );
        let keys: Vec<&str> = function.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys.iter()
                .all(|k| ["name", "description", "parameters", "strict"].contains(k)),
            "{keys:?}: defer_loading and cache_control are dropped"
        );
    }
    let names: Vec<&str> = sent.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in ["Bash", "Edit", "Read", "Write", "Agent", "ToolSearch"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

/// The fields Claude Code sends that have no OpenAI counterpart never reach the upstream.
fn assert_only_openai_fields(out: &Value) {
    let allowed = [
        "model",
        "max_tokens",
        "messages",
        "tools",
        "tool_choice",
        "stream",
        "stream_options",
        "user",
        "reasoning_effort",
        "thinking",
        "enable_thinking",
    ];
    for key in out.as_object().unwrap().keys() {
        assert!(allowed.contains(&key.as_str()), "unexpected upstream field {key}");
    }
    assert!(!contains_key(out, "cache_control"), "cache_control stripped everywhere");
    assert!(
        !contains_key(out, "signature"),
        "thinking signatures stay on the Anthropic side"
    );
}

#[test]
fn main_loop_keeps_every_tool_with_its_schema() {
    let input = fixture(MAIN_LOOP);
    let converted = route_b_with(&input, &deepseek_capped());
    let out = Value::Object(converted.body);
    assert_tools_kept(&input, &out);
    assert_only_openai_fields(&out);
    assert!(out.get("tool_choice").is_none(), "Claude Code sends no tool_choice");
    // Names map back to themselves (all valid OpenAI names), for the response side.
    for tool in input["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert_eq!(converted.facts.tool_names.original(name), name);
    }
}

#[test]
fn main_loop_system_prompt_keeps_its_text_without_the_billing_header() {
    let input = fixture(MAIN_LOOP);
    let out = convert(&input, &deepseek_capped());
    let system = system_texts(&input);
    assert_eq!(system.len(), 3, "billing header, identity line, main prompt");
    assert!(system[0].starts_with("x-anthropic-billing-header:"));
    assert!(
        input["system"][1]["cache_control"].is_object(),
        "the fixture carries cache markers"
    );
    // The billing header is Anthropic-only metadata that changes per session: dropped so prefix caches hit.
    assert_eq!(
        messages(&out)[0],
        json!({"role": "system", "content": system[1..].join("\n\n")})
    );
    // The environment section Claude Code sends as a `role: "system"` message stays where it was.
    let environment = input["messages"][1]["content"].as_str().unwrap();
    assert_eq!(input["messages"][1]["role"], "system");
    assert_eq!(messages(&out)[1]["role"], "user");
    assert_eq!(messages(&out)[2], json!({"role": "system", "content": environment}));
    // The first user turn: two text blocks (a reminder, the prompt) become parts.
    let prompt = messages(&out)[1]["content"].to_string();
    assert!(prompt.contains("Run echo hello-from-tool with Bash"), "{prompt}");
}

#[test]
fn merge_system_messages_folds_the_environment_section_into_the_leading_system_message() {
    let input = fixture(MAIN_LOOP);
    let environment = input["messages"][1]["content"].as_str().unwrap().to_owned();
    let kept = convert(&input, &deepseek_capped());
    let merged = convert(
        &input,
        &ModelOptions {
            merge_system_messages: true,
            ..deepseek_capped()
        },
    );
    let roles = |out: &Value| -> Vec<String> {
        messages(out)
            .iter()
            .map(|m| m["role"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(roles(&kept).iter().filter(|r| *r == "system").count(), 2);
    assert_eq!(roles(&merged).iter().filter(|r| *r == "system").count(), 1);
    assert_eq!(roles(&merged)[0], "system");
    let system = messages(&merged)[0]["content"].as_str().unwrap();
    let leading = messages(&kept)[0]["content"].as_str().unwrap();
    assert_eq!(system, format!("{leading}\n\n{environment}"));
    // Everything else is unchanged and in order.
    assert_eq!(messages(&merged).len(), messages(&kept).len() - 1);
    assert_eq!(
        messages(&merged)[1..],
        messages(&kept)
            .iter()
            .filter(|m| m["role"] != "system")
            .cloned()
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn main_loop_top_level_fields() {
    let input = fixture(MAIN_LOOP);
    let user_id = input["metadata"]["user_id"].as_str().unwrap();
    assert!(
        user_id.len() > 64,
        "Claude Code's user id is a JSON string of ~150 characters"
    );

    let capped = route_b_with(&input, &deepseek_capped());
    assert_eq!(capped.body["model"], "gpt-x");
    assert_eq!(input["max_tokens"], 32000);
    assert_eq!(capped.body["max_tokens"], 8192, "clamped to max_output_tokens");
    assert_eq!(capped.body["stream"], true);
    assert_eq!(capped.body["stream_options"], json!({"include_usage": true}));
    assert!(capped.facts.stream);
    let user = capped.body["user"].as_str().unwrap();
    assert_eq!(user, sha256_hex(user_id));
    assert!(user.len() <= 64);

    let uncapped = convert(&input, &ModelOptions::default());
    assert_eq!(uncapped["max_tokens"], 32000, "no cap configured, nothing clamped");
    let no_stream_options = convert(&input, &options(|o| o.supports_stream_options = false));
    assert!(no_stream_options.get("stream_options").is_none());
}

#[test]
fn main_loop_tool_result_becomes_a_tool_message_paired_with_its_call() {
    let input = fixture(MAIN_LOOP);
    let assistant = &input["messages"][2];
    let tool_use = assistant["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    let result = &input["messages"][3]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], tool_use["id"]);

    let out = convert(&input, &deepseek_capped());
    let list = messages(&out);
    assert_eq!(list.len(), 5, "system, user, system, assistant, tool: {out:#}");
    let call = &list[3];
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["content"], Value::Null, "no text, only a tool call");
    assert_eq!(call["tool_calls"].as_array().unwrap().len(), 1);
    let function = &call["tool_calls"][0];
    assert_eq!(function["id"], tool_use["id"]);
    assert_eq!(function["type"], "function");
    assert_eq!(function["function"]["name"], "Bash");
    let arguments: Value = serde_json::from_str(function["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, tool_use["input"]);
    assert_eq!(
        list[4],
        json!({"role": "tool", "tool_call_id": tool_use["id"], "content": result["content"]}),
        "cache_control and is_error:false leave no trace"
    );
}

#[test]
fn main_loop_adaptive_thinking_in_each_dialect() {
    let input = fixture(MAIN_LOOP);
    assert_eq!(input["thinking"]["type"], "adaptive");
    assert_eq!(input["output_config"]["effort"], "high");
    let thought = input["messages"][2]["content"][0]["thinking"].as_str().unwrap();
    let with = |dialect| route_b_with(&input, &options(|o| o.reasoning_dialect = dialect));

    let openai = with(ReasoningDialect::Openai);
    assert!(openai.facts.thinking_enabled);
    assert_eq!(openai.body["reasoning_effort"], "high");
    assert!(openai.body.get("thinking").is_none());
    assert!(
        !contains_key(&Value::Object(openai.body.clone()), "reasoning_content"),
        "OpenAI drops history thinking"
    );

    let deepseek = with(ReasoningDialect::Deepseek);
    assert!(deepseek.facts.thinking_enabled);
    assert_eq!(deepseek.body["thinking"], json!({"type": "enabled"}));
    assert_eq!(deepseek.body["reasoning_effort"], "high");
    assert_eq!(deepseek.body["messages"][3]["reasoning_content"], thought);

    let qwen = with(ReasoningDialect::Qwen);
    assert!(qwen.facts.thinking_enabled);
    assert_eq!(qwen.body["enable_thinking"], true);
    assert!(
        qwen.body.get("thinking_budget").is_none(),
        "adaptive thinking has no budget"
    );
    assert_eq!(qwen.body["messages"][3]["reasoning_content"], thought);

    let none = with(ReasoningDialect::None);
    assert!(!none.facts.thinking_enabled);
    for key in ["reasoning_effort", "thinking", "enable_thinking"] {
        assert!(none.body.get(key).is_none(), "{key}");
    }
    assert!(!contains_key(&Value::Object(none.body), "reasoning_content"));
}

#[test]
fn compact_side_request_keeps_turn_order_and_instructions() {
    let input = fixture(COMPACT);
    let out = convert(&input, &deepseek_capped());
    assert_tools_kept(&input, &out);
    assert_only_openai_fields(&out);
    assert_eq!(out["max_tokens"], 8192);
    let list = messages(&out);
    let roles: Vec<&str> = list.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "system", "assistant", "tool", "user"]);

    // Claude Code replays the finished turn as thinking + text + tool_use (the tool_use cache-marked).
    let blocks = input["messages"][2]["content"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);
    let assistant = &list[3];
    assert_eq!(assistant["content"], blocks[1]["text"]);
    assert_eq!(assistant["reasoning_content"], blocks[0]["thinking"]);
    assert_eq!(assistant["tool_calls"][0]["id"], blocks[2]["id"]);
    assert_eq!(list[4]["tool_call_id"], blocks[2]["id"]);

    // The tool result comes first, then the summary instructions as the user's own message.
    let instructions = input["messages"][3]["content"][1]["text"].as_str().unwrap();
    assert!(instructions.starts_with("CRITICAL: Respond with TEXT ONLY."));
    assert_eq!(list[5], json!({"role": "user", "content": instructions}));
}

#[test]
fn count_tokens_body_is_estimated_locally_with_its_tools() {
    let input = fixture(COUNT_TOKENS);
    assert!(
        input.get("max_tokens").is_none(),
        "count_tokens bodies carry no max_tokens"
    );
    assert!(input["tools"].as_array().unwrap().len() > 5);

    let estimate = estimate_anthropic_input_tokens(&input, 1.15);
    let trivial = estimate_anthropic_input_tokens(&json!({"messages": [{"role": "user", "content": "foo"}]}), 1.15);
    let mut without_tools = input.clone();
    without_tools["tools"] = json!([]);
    let bare = estimate_anthropic_input_tokens(&without_tools, 1.15);
    assert!(trivial > 0);
    assert_eq!(bare, trivial, "the same one-word message");
    // The tool JSON is ~15 kB; o200k_base averages well under 4 bytes a token for it.
    let tool_bytes: usize = input["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.to_string().len())
        .sum();
    assert!(
        estimate > trivial + (tool_bytes / 5) as u64,
        "{estimate} tokens for {tool_bytes} bytes of tools"
    );
    assert!(
        estimate_anthropic_input_tokens(&input, 1.0) < estimate,
        "the factor errs high"
    );
}

#[test]
fn recorded_generation_requests_estimate_more_than_a_trivial_one() {
    let trivial = estimate_anthropic_input_tokens(
        &json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "foo"}]}),
        1.15,
    );
    for text in [MAIN_LOOP, COMPACT] {
        let input = fixture(text);
        let estimate = estimate_anthropic_input_tokens(&input, 1.15);
        assert!(estimate > 1000 && estimate > 100 * trivial, "{estimate}");
        let converted = route_b_with(&input, &deepseek_capped());
        assert_eq!(
            converted.facts.input_tokens_estimate, estimate,
            "message_start reports the same estimate"
        );
    }
}
