//! Rules shared by both routes (§1.3) and the same-protocol Anthropic fix-ups.

use serde_json::{Map, Value, json};

use super::{SIGNING_KEY, options, route_a, route_b};
use crate::protocol::convert::ModelOptions;
use crate::protocol::convert::request::{
    anthropic_same_protocol_fixups, apply_anthropic_fixups, mint_thinking_signature,
};

fn fixups(body: &Value, options: &ModelOptions) -> Option<Value> {
    anthropic_same_protocol_fixups(body.to_string().as_bytes(), options).map(Value::Object)
}

fn ant(messages: Value) -> Value {
    json!({"model": "claude-x", "max_tokens": 1024, "messages": messages})
}

// ---- §1.3.1 role merging is Route A only ------------------------------------------------------------

#[test]
fn same_protocol_requests_are_forwarded_as_sent() {
    let body = ant(json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": ""}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "EqQBreal"}, {"type": "text", "text": "x"}]},
        {"role": "assistant", "content": "y"}
    ]));
    let with_sampling = {
        let mut b = body.clone();
        b["temperature"] = json!(0.5);
        b["top_p"] = json!(0.9);
        b["system"] = json!([{"type": "text", "text": "S", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
        b
    };
    assert_eq!(fixups(&body, &ModelOptions::default()), None);
    // Anthropic's own API keeps ttl; a model without sampling exclusivity keeps both knobs.
    assert_eq!(fixups(&with_sampling, &options(|o| o.anthropic_native = true)), None);
    let native_with_cap = options(|o| {
        o.anthropic_native = true;
        o.max_output_tokens = Some(1024);
    });
    assert_eq!(
        fixups(&with_sampling, &native_with_cap),
        None,
        "max_tokens already within the cap"
    );
}

#[test]
fn an_unparseable_body_is_left_for_the_upstream_to_reject() {
    let native = options(|o| o.max_output_tokens = Some(10));
    assert_eq!(anthropic_same_protocol_fixups(b"{\"max_tokens\": 99, ", &native), None);
    assert_eq!(
        anthropic_same_protocol_fixups(b"{\"x\":\"llmr1.\"", &ModelOptions::default()),
        None
    );
}

// ---- §1.3.2 stream_options only with stream:true --------------------------------------------------------

#[test]
fn stream_options_never_go_with_a_non_streaming_request() {
    let oai = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}});
    assert!(route_a(&oai).get("stream_options").is_none());
    let ant = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    assert!(route_b(&ant).get("stream_options").is_none());
}

// ---- §1.3.3 empty content ----------------------------------------------------------------------------

#[test]
fn blank_text_never_reaches_anthropic() {
    let oai = json!({"model": "m", "messages": [
        {"role": "system", "content": " "},
        {"role": "user", "content": [{"type": "text", "text": "\n"}, {"type": "text", "text": "real"}]},
        {"role": "assistant", "content": "   ", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": ""}]}]});
    assert_eq!(
        route_a(&oai),
        json!({"model": "claude-x", "max_tokens": 4096, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "real"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c"}]}]})
    );
}

// ---- §1.3.4 tool arguments --------------------------------------------------------------------------

#[test]
fn arguments_are_objects_on_anthropic_and_compact_strings_on_openai() {
    let ant_body = ant(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1, "b": {"c": [true, null]}}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}
    ]));
    assert_eq!(
        route_b(&ant_body)["messages"][1]["tool_calls"][0]["function"]["arguments"],
        r#"{"a":1,"b":{"c":[true,null]}}"#
    );
    let oai_body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok"}]});
    assert_eq!(route_a(&oai_body)["messages"][1]["content"][0]["input"], json!({}));
}

// ---- §1.3.5 sanitize_tool_id ----------------------------------------------------------------------------

#[test]
fn tool_ids_are_sanitised_on_both_tool_use_and_tool_result() {
    let oai_body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [
            {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}},
            {"id": "functions_Bash_0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions_Bash_0", "content": "second"},
        {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "first"}]});
    let out = route_a(&oai_body);
    let calls = &out["messages"][1]["content"];
    let results = &out["messages"][2]["content"];
    assert_eq!(calls[0]["id"], "functions_Bash_0");
    let suffixed = calls[1]["id"].as_str().unwrap();
    assert!(
        suffixed.starts_with("functions_Bash_0_") && suffixed.len() == "functions_Bash_0_".len() + 6,
        "{suffixed}"
    );
    assert_eq!(
        results[0],
        json!({"type": "tool_result", "tool_use_id": "functions_Bash_0", "content": "first"})
    );
    assert_eq!(
        results[1],
        json!({"type": "tool_result", "tool_use_id": suffixed, "content": "second"})
    );
}

// ---- §1.3.6 router-minted thinking signatures ----------------------------------------------------------

fn loop_with_thinking(signature: &str) -> Value {
    let mut body = ant(json!([
        {"role": "user", "content": "List files"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Use Bash.", "signature": signature},
            {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.rs"}]}
    ]));
    body["thinking"] = json!({"type": "adaptive"});
    body["output_config"] = json!({"effort": "high"});
    body
}

#[test]
fn minted_thinking_is_stripped_and_the_open_loop_then_goes_without_thinking() {
    let minted = mint_thinking_signature(SIGNING_KEY, "Use Bash.");
    let fixed = fixups(&loop_with_thinking(&minted), &ModelOptions::default()).expect("changed");
    let mut expected = loop_with_thinking(&minted);
    expected["messages"][1]["content"] =
        json!([{"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}]);
    let obj = expected.as_object_mut().unwrap();
    obj.remove("thinking");
    obj.remove("output_config");
    assert_eq!(fixed, expected);
}

#[test]
fn minted_thinking_in_a_closed_loop_is_stripped_but_thinking_stays_on() {
    let minted = mint_thinking_signature(SIGNING_KEY, "Use Bash.");
    let mut body = loop_with_thinking(&minted);
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "done", "signature": minted},
            {"type": "text", "text": "Two files."}]}),
        json!({"role": "user", "content": "next"}),
    ]);
    let fixed = fixups(&body, &ModelOptions::default()).expect("changed");
    assert_eq!(fixed["thinking"], json!({"type": "adaptive"}));
    assert_eq!(fixed["output_config"], json!({"effort": "high"}));
    assert_eq!(
        fixed["messages"][3],
        json!({"role": "assistant", "content": [{"type": "text", "text": "Two files."}]})
    );
    assert!(!fixed.to_string().contains("llmr1."));
}

#[test]
fn an_assistant_message_left_empty_is_removed_and_can_reopen_the_loop() {
    // Without the empty assistant message the API joins the two user turns, so the tool results are
    // trailing again and the tool_use turn lacks thinking: thinking must go.
    let minted = mint_thinking_signature(SIGNING_KEY, "Use Bash.");
    let mut body = loop_with_thinking(&minted);
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": [{"type": "thinking", "thinking": "done", "signature": minted}]}),
        json!({"role": "user", "content": "next"}),
    ]);
    let fixed = fixups(&body, &ModelOptions::default()).expect("changed");
    assert_eq!(fixed["messages"].as_array().unwrap().len(), 4);
    assert!(fixed.get("thinking").is_none() && fixed.get("output_config").is_none());
}

// ---- §1.3.7 real signatures are opaque ----------------------------------------------------------------

#[test]
fn real_thinking_blocks_pass_byte_for_byte() {
    let real = "EqQBCgIYAhIM1gbcDa9GJwZA+/=";
    assert_eq!(
        fixups(&loop_with_thinking(real), &ModelOptions::default()),
        None,
        "nothing to change"
    );
    // Even when another rule rewrites the body, thinking blocks are untouched.
    let mut body = loop_with_thinking(real);
    body["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"type": "redacted_thinking", "data": "opaque+data=="}));
    body["max_tokens"] = json!(64000);
    let fixed = fixups(&body, &options(|o| o.max_output_tokens = Some(8000))).expect("clamped");
    assert_eq!(fixed["messages"], body["messages"]);
    assert_eq!(fixed["max_tokens"], 8000);

    let oai = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": " spaced\nthinking ", "reasoning_signature": real}]});
    assert_eq!(
        route_a(&oai)["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": " spaced\nthinking ", "signature": real})
    );
}

// ---- §1.3.8 sampling exclusivity -----------------------------------------------------------------------

#[test]
fn same_protocol_sampling_exclusive_models_drop_top_p() {
    let mut body = ant(json!([{"role": "user", "content": "hi"}]));
    body["temperature"] = json!(0.3);
    body["top_p"] = json!(0.8);
    let exclusive = options(|o| o.sampling_exclusive = true);
    let fixed = fixups(&body, &exclusive).expect("changed");
    assert_eq!(fixed.get("top_p"), None);
    assert_eq!(fixed["temperature"], 0.3);
    body.as_object_mut().unwrap().remove("temperature");
    assert_eq!(fixups(&body, &exclusive), None, "top_p alone is fine");
}

// ---- §1.3.9 cache_control.ttl --------------------------------------------------------------------------

fn ttl_everywhere() -> Value {
    cached_everywhere(json!({"type": "ephemeral", "ttl": "1h"}))
}

fn cached_everywhere(cc: Value) -> Value {
    json!({"model": "m", "max_tokens": 10, "cache_control": cc,
        "system": [{"type": "text", "text": "S", "cache_control": cc}],
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"ttl": {"type": "string"}}}, "cache_control": cc}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": cc}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"ttl": "1h"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "cache_control": cc,
                "content": [{"type": "text", "text": "r", "cache_control": cc}]}]}]})
}

#[test]
fn ttl_is_removed_for_third_party_hosts_and_kept_for_anthropic() {
    let fixed = fixups(&ttl_everywhere(), &ModelOptions::default()).expect("changed");
    assert_eq!(fixed, cached_everywhere(json!({"type": "ephemeral"})));
    // Tool schemas and tool inputs that merely mention "ttl" are not cache markers.
    assert_eq!(
        fixed["tools"][0]["input_schema"]["properties"]["ttl"],
        json!({"type": "string"})
    );
    assert_eq!(fixed["messages"][1]["content"][0]["input"], json!({"ttl": "1h"}));
    assert_eq!(fixups(&ttl_everywhere(), &options(|o| o.anthropic_native = true)), None);
}

// ---- max_tokens clamp on the same-protocol route (§1.1.4) -----------------------------------------------

#[test]
fn same_protocol_max_tokens_clamp_lowers_the_thinking_budget_or_drops_thinking() {
    let mut body = ant(json!([{"role": "user", "content": "hi"}]));
    body["max_tokens"] = json!(32000);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 16000});
    let fixed = fixups(&body, &options(|o| o.max_output_tokens = Some(8192))).expect("changed");
    assert_eq!(
        (fixed["max_tokens"].clone(), fixed["thinking"].clone()),
        (json!(8192), json!({"type": "enabled", "budget_tokens": 8191}))
    );
    let tiny = fixups(&body, &options(|o| o.max_output_tokens = Some(1000))).expect("changed");
    assert_eq!(tiny["max_tokens"], 1000);
    assert!(tiny.get("thinking").is_none());
    assert_eq!(
        fixups(&body, &options(|o| o.max_output_tokens = Some(32000))),
        None,
        "within the cap"
    );
}

#[test]
fn apply_on_a_parsed_map_reports_whether_it_changed() {
    let mut map: Map<String, Value> = ttl_everywhere().as_object().unwrap().clone();
    assert!(apply_anthropic_fixups(&mut map, &ModelOptions::default()));
    assert!(
        !apply_anthropic_fixups(&mut map, &ModelOptions::default()),
        "idempotent"
    );
}
