//! The request rows of §6 ("edge cases peers got wrong"), one test per row.

use serde_json::{Value, json};

use super::{SIGNING_KEY, options, route_a, route_a_with, route_b, route_b_with};
use crate::protocol::convert::request::{anthropic_same_protocol_fixups, mint_thinking_signature, openai_tool_name};
use crate::protocol::convert::{ModelOptions, ReasoningDialect, ThinkingMode};

fn ant_tool_loop(result_content: Value) -> Value {
    json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": result_content}]}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]})
}

#[test]
fn row_13_tool_use_id_becomes_tool_call_id() {
    let out = route_b(&ant_tool_loop(json!("ok")));
    assert_eq!(
        out["messages"][2],
        json!({"role": "tool", "tool_call_id": "toolu_9", "content": "ok"})
    );
}

#[test]
fn row_14_one_tool_message_per_result_and_untyped_tools_are_custom() {
    let mut body = ant_tool_loop(json!("r1"));
    body["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "tool_use", "id": "toolu_10", "name": "Bash", "input": {}}));
    body["messages"][2]["content"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "tool_result", "tool_use_id": "toolu_10", "content": "r2"}));
    let out = route_b(&body);
    assert_eq!(out["messages"][2]["tool_call_id"], "toolu_9");
    assert_eq!(out["messages"][3]["tool_call_id"], "toolu_10");
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}])
    );
}

#[test]
fn row_15_disable_parallel_tool_use_is_kept() {
    let mut body = ant_tool_loop(json!("ok"));
    body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    assert_eq!(route_b(&body)["parallel_tool_calls"], false);
}

#[test]
fn row_16_parallel_tool_calls_false_alone_is_carried_by_auto_not_any() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert_eq!(
        route_a(&body)["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
}

#[test]
fn row_17_tool_choice_none_stays_none() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "tool_choice": "none",
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert_eq!(route_a(&body)["tool_choice"], json!({"type": "none"}));
    let mut ant = ant_tool_loop(json!("ok"));
    ant["tool_choice"] = json!({"type": "none"});
    assert_eq!(route_b(&ant)["tool_choice"], "none");
}

#[test]
fn row_18_kimi_tool_ids_are_sanitised_on_both_sides() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"}]});
    let out = route_a(&body);
    assert_eq!(out["messages"][1]["content"][0]["id"], "functions_Bash_0");
    assert_eq!(out["messages"][2]["content"][0]["tool_use_id"], "functions_Bash_0");
}

#[test]
fn row_20_empty_content_on_tool_only_turns_is_not_an_empty_text_block() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]});
    assert_eq!(
        route_a(&body)["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "c", "name": "f", "input": {}}])
    );
}

#[test]
fn row_21_empty_arguments_are_an_empty_object() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]});
    assert_eq!(route_a(&body)["messages"][1]["content"][0]["input"], json!({}));
}

#[test]
fn row_22_claude_code_user_ids_are_hashed_to_64_hex_characters() {
    let user_id = format!(
        "user_{}_account_{}_session_{}",
        "f".repeat(64),
        "1".repeat(36),
        "0".repeat(36)
    );
    assert!(user_id.len() > 128);
    let mut body = ant_tool_loop(json!("ok"));
    body["metadata"] = json!({"user_id": user_id});
    let user = route_b(&body)["user"].as_str().unwrap().to_owned();
    assert_eq!(user.len(), 64);
    assert!(user.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn row_23_claude_codes_32000_max_tokens_is_clamped_on_every_route() {
    let cap = options(|o| o.max_output_tokens = Some(8192));
    let mut ant = ant_tool_loop(json!("ok"));
    ant["max_tokens"] = json!(32000);
    assert_eq!(route_b_with(&ant, &cap).body["max_tokens"], 8192);
    let fixed = anthropic_same_protocol_fixups(ant.to_string().as_bytes(), &cap).unwrap();
    assert_eq!(fixed["max_tokens"], 8192);
    let oai = json!({"model": "m", "max_tokens": 32000, "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(route_a_with(&oai, &cap).body["max_tokens"], 8192);
}

#[test]
fn row_24_openai_range_temperature_is_clamped_for_anthropic() {
    let body = json!({"model": "m", "temperature": 2, "messages": [{"role": "user", "content": "q"}]});
    assert_eq!(route_a(&body)["temperature"], 1.0);
}

#[test]
fn row_25_temperature_and_top_p_together_keep_temperature_on_exclusive_models() {
    let exclusive = options(|o| o.sampling_exclusive = true);
    let oai = json!({"model": "m", "temperature": 0.2, "top_p": 0.5, "messages": [{"role": "user", "content": "q"}]});
    let out = route_a_with(&oai, &exclusive).body;
    assert_eq!((out.get("temperature"), out.get("top_p")), (Some(&json!(0.2)), None));
    let ant = json!({"model": "m", "max_tokens": 5, "temperature": 0.2, "top_p": 0.5, "messages": [{"role": "user", "content": "q"}]});
    let fixed = anthropic_same_protocol_fixups(ant.to_string().as_bytes(), &exclusive).unwrap();
    assert_eq!(
        (fixed.get("temperature"), fixed.get("top_p")),
        (Some(&json!(0.2)), None)
    );
}

#[test]
fn row_26_cache_ttl_never_reaches_hosts_that_reject_it() {
    let mut ant = ant_tool_loop(json!("ok"));
    ant["system"] = json!([{"type": "text", "text": "S", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    assert!(!route_b(&ant).to_string().contains("ttl"));
    let fixed = anthropic_same_protocol_fixups(ant.to_string().as_bytes(), &ModelOptions::default()).unwrap();
    assert_eq!(fixed["system"][0]["cache_control"], json!({"type": "ephemeral"}));
}

#[test]
fn row_28_images_in_tool_results_are_not_dropped() {
    let out = route_b(&ant_tool_loop(json!([
        {"type": "image", "source": {"type": "url", "url": "https://x/shot.png"}}
    ])));
    assert_eq!(
        out["messages"][2],
        json!({"role": "tool", "tool_call_id": "toolu_9", "content": ""})
    );
    assert_eq!(
        out["messages"][3],
        json!({"role": "user", "content": [
            {"type": "text", "text": "Images returned by tool call toolu_9:"},
            {"type": "image_url", "image_url": {"url": "https://x/shot.png"}}]})
    );
}

#[test]
fn row_29_tool_reference_blocks_render_as_text() {
    let out = route_b(&ant_tool_loop(
        json!([{"type": "tool_reference", "tool_name": "WebFetch"}]),
    ));
    assert_eq!(out["messages"][2]["content"], "Tool loaded: WebFetch");
}

#[test]
fn row_30_deepseek_gets_reasoning_content_back_on_tool_call_turns() {
    let deepseek = options(|o| o.reasoning_dialect = ReasoningDialect::Deepseek);
    let mut body = ant_tool_loop(json!("ok"));
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    assert_eq!(
        route_b_with(&body, &deepseek).body["messages"][1]["reasoning_content"],
        "",
        "present even when empty"
    );
    body["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"type": "thinking", "thinking": "why", "signature": "x"}));
    assert_eq!(
        route_b_with(&body, &deepseek).body["messages"][1]["reasoning_content"],
        "why"
    );
}

#[test]
fn row_31_effort_never_travels_with_disabled_thinking() {
    let deepseek = options(|o| o.reasoning_dialect = ReasoningDialect::Deepseek);
    let mut ant = ant_tool_loop(json!("ok"));
    ant["thinking"] = json!({"type": "disabled"});
    ant["output_config"] = json!({"effort": "high"});
    let out = route_b_with(&ant, &deepseek).body;
    assert_eq!(out.get("thinking"), Some(&json!({"type": "disabled"})));
    assert!(!out.contains_key("reasoning_effort"));

    let adaptive = options(|o| o.thinking_mode = ThinkingMode::Adaptive);
    let oai = json!({"model": "m", "reasoning_effort": "none", "messages": [{"role": "user", "content": "q"}]});
    let out = route_a_with(&oai, &adaptive).body;
    assert_eq!(out.get("thinking"), Some(&json!({"type": "disabled"})));
    assert!(!out.contains_key("output_config"));
}

#[test]
fn row_32_real_thinking_passes_and_router_thinking_never_reaches_anthropic() {
    let minted = mint_thinking_signature(SIGNING_KEY, "plan");
    let mut ant = ant_tool_loop(json!("ok"));
    ant["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    ant["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"type": "thinking", "thinking": "plan", "signature": minted}));
    let fixed = anthropic_same_protocol_fixups(ant.to_string().as_bytes(), &ModelOptions::default()).unwrap();
    assert!(!Value::Object(fixed.clone()).to_string().contains("llmr1."));
    assert!(
        !fixed.contains_key("thinking"),
        "the open loop no longer starts with signed thinking"
    );

    ant["messages"][1]["content"][0]["signature"] = json!("EqQBCgIYAhIMreal");
    assert_eq!(
        anthropic_same_protocol_fixups(ant.to_string().as_bytes(), &ModelOptions::default()),
        None
    );
}

#[test]
fn row_33_stream_options_respect_the_deployment() {
    let mut body = ant_tool_loop(json!("ok"));
    body["stream"] = json!(true);
    let out = route_b_with(&body, &options(|o| o.supports_stream_options = false)).body;
    assert!(!out.contains_key("stream_options"));
}

#[test]
fn row_34_mcp_tool_names_over_64_characters_are_shortened_and_mapped_back() {
    let name = "mcp__plugin_github_github__search_pull_requests_by_label_and_author";
    assert!(name.len() > 64);
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "q"}],
        "tools": [{"name": name, "input_schema": {"type": "object"}}]});
    let converted = route_b_with(&body, &ModelOptions::default());
    let upstream = converted.body["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(upstream, openai_tool_name(name));
    assert!(upstream.len() <= 64);
    assert_eq!(converted.facts.tool_names.original(&upstream), name);
}
