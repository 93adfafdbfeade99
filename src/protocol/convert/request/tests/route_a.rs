//! Route A: OpenAI request → Anthropic request (§1.1), one test per table row or rule.

use serde_json::{Value, json};

use super::{options, route_a, route_a_error, route_a_with};
use crate::protocol::convert::ThinkingMode;
use crate::protocol::convert::ids::sha256_hex;
use crate::protocol::convert::request::ROUTER_SIGNATURE_PREFIX;

/// A request with these messages and nothing else.
fn chat(messages: Value) -> Value {
    json!({"model": "gpt-alias", "messages": messages})
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn hello() -> Value {
    chat(json!([{"role": "user", "content": "Hello"}]))
}

const HELLO_TURN: &str = r#"{"role":"user","content":[{"type":"text","text":"Hello"}]}"#;

fn hello_turns() -> Value {
    Value::Array(vec![serde_json::from_str(HELLO_TURN).unwrap()])
}

fn messages(body: &Value) -> &Value {
    &body["messages"]
}

// §1.1.3, verbatim.
#[test]
fn worked_example_1_1_3() {
    let input = json!({"model":"gpt-alias","max_completion_tokens":1024,"temperature":1.4,"parallel_tool_calls":false,
     "messages":[
      {"role":"developer","content":"Be brief."},
      {"role":"user","content":"Weather in Paris and Rome?"},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18C"},
      {"role":"user","content":"And Rome?"}],
     "tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]});
    let expected = json!({"model":"claude-x","max_tokens":1024,"temperature":1.0,
     "system":[{"type":"text","text":"Be brief."}],
     "messages":[
      {"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
      {"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},
                                {"type":"text","text":"And Rome?"}]}],
     "tools":[{"name":"weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
     "tool_choice":{"type":"auto","disable_parallel_tool_use":true}});
    assert_eq!(route_a(&input), expected);
}

// ---- §1.1.1 top-level fields -------------------------------------------------------------------------

#[test]
fn minimal_request_gets_upstream_model_and_default_max_tokens() {
    assert_eq!(
        route_a(&hello()),
        json!({"model": "claude-x", "max_tokens": 4096, "messages": hello_turns()})
    );
}

#[test]
fn max_completion_tokens_is_preferred_over_max_tokens() {
    let body = with(
        with(hello(), "max_tokens", json!(100)),
        "max_completion_tokens",
        json!(200),
    );
    assert_eq!(route_a(&body)["max_tokens"], 200);
    assert_eq!(route_a(&with(hello(), "max_tokens", json!(100)))["max_tokens"], 100);
}

#[test]
fn temperature_is_clamped_to_anthropic_range_without_rescaling() {
    assert_eq!(route_a(&with(hello(), "temperature", json!(1.4)))["temperature"], 1.0);
    assert_eq!(route_a(&with(hello(), "temperature", json!(0.3)))["temperature"], 0.3);
    assert_eq!(route_a(&with(hello(), "temperature", json!(-1)))["temperature"], 0.0);
}

#[test]
fn top_p_is_dropped_next_to_temperature_only_for_sampling_exclusive_models() {
    let body = with(with(hello(), "temperature", json!(0.5)), "top_p", json!(0.9));
    let plain = route_a(&body);
    assert_eq!(
        (plain["temperature"].clone(), plain["top_p"].clone()),
        (json!(0.5), json!(0.9))
    );
    let exclusive = route_a_with(&body, &options(|o| o.sampling_exclusive = true)).body;
    assert_eq!(exclusive.get("temperature"), Some(&json!(0.5)));
    assert_eq!(exclusive.get("top_p"), None);
    // top_p alone stays on an exclusive model.
    let alone = route_a_with(
        &with(hello(), "top_p", json!(0.9)),
        &options(|o| o.sampling_exclusive = true),
    )
    .body;
    assert_eq!(alone.get("top_p"), Some(&json!(0.9)));
}

#[test]
fn stop_is_normalised_to_a_list_without_blank_entries() {
    assert_eq!(
        route_a(&with(hello(), "stop", json!("END")))["stop_sequences"],
        json!(["END"])
    );
    assert_eq!(
        route_a(&with(hello(), "stop", json!(["a", "", "  ", "b"])))["stop_sequences"],
        json!(["a", "b"])
    );
    assert!(
        route_a(&with(hello(), "stop", json!(["", " "])))
            .get("stop_sequences")
            .is_none()
    );
}

#[test]
fn stream_is_forwarded_and_include_usage_is_remembered_not_sent() {
    let body = with(
        with(hello(), "stream", json!(true)),
        "stream_options",
        json!({"include_usage": true}),
    );
    let converted = route_a_with(&body, &options(|_| {}));
    assert_eq!(converted.body.get("stream"), Some(&json!(true)));
    assert!(!converted.body.contains_key("stream_options"));
    assert!(converted.facts.stream && converted.facts.include_usage);

    let not_streaming = with(hello(), "stream_options", json!({"include_usage": true}));
    let converted = route_a_with(&not_streaming, &options(|_| {}));
    assert!(!converted.facts.stream && !converted.facts.include_usage);
    assert!(!converted.body.contains_key("stream"));
}

#[test]
fn user_becomes_metadata_user_id_and_long_ids_are_hashed() {
    assert_eq!(
        route_a(&with(hello(), "user", json!("u-42")))["metadata"],
        json!({"user_id": "u-42"})
    );
    assert_eq!(
        route_a(&with(hello(), "safety_identifier", json!("safe-1")))["metadata"],
        json!({"user_id": "safe-1"})
    );
    let both = with(
        with(hello(), "user", json!("u-42")),
        "safety_identifier",
        json!("safe-1"),
    );
    assert_eq!(route_a(&both)["metadata"]["user_id"], "u-42");
    let long = "x".repeat(257);
    assert_eq!(
        route_a(&with(hello(), "user", json!(long)))["metadata"]["user_id"],
        json!(sha256_hex(&long))
    );
    let limit = "y".repeat(256);
    assert_eq!(
        route_a(&with(hello(), "user", json!(limit)))["metadata"]["user_id"],
        json!(limit)
    );
}

#[test]
fn openai_metadata_and_sampling_extras_are_dropped_silently() {
    let mut body = hello();
    for (key, value) in [
        ("metadata", json!({"tag": "x"})),
        ("seed", json!(7)),
        ("frequency_penalty", json!(0.5)),
        ("presence_penalty", json!(0.5)),
        ("logit_bias", json!({"50256": -100})),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("store", json!(true)),
        ("service_tier", json!("flex")),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("verbosity", json!("low")),
        ("prompt_cache_key", json!("k")),
        ("prompt_cache_options", json!({"ttl": "30m"})),
        ("prompt_cache_retention", json!("24h")),
        ("web_search_options", json!({})),
        ("moderation", json!(true)),
        ("stream_options", json!({"include_obfuscation": false})),
        ("n", json!(1)),
        ("x_vendor_extension", json!({"a": 1})),
    ] {
        body[key] = value;
    }
    assert_eq!(
        route_a(&body),
        json!({"model": "claude-x", "max_tokens": 4096, "messages": hello_turns()})
    );
}

// ---- §1.1.2 roles ---------------------------------------------------------------------------------------

#[test]
fn system_and_developer_messages_anywhere_join_the_system_prompt_in_order() {
    let body = chat(json!([
        {"role": "system", "content": "One."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Two."}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "Hello"},
        {"role": "system", "content": "Three."},
        {"role": "user", "content": "Bye"}
    ]));
    let out = route_a(&body);
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}, {"type": "text", "text": "Three."}])
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "user", "content": [{"type": "text", "text": "Bye"}]}
        ])
    );
}

#[test]
fn assistant_turn_orders_thinking_text_refusal_then_tool_calls_and_drops_name_and_audio() {
    let body = chat(json!([
        {"role": "user", "content": "q", "name": "alice"},
        {"role": "assistant", "name": "bot", "audio": {"id": "audio_1"},
         "reasoning_content": "think", "reasoning_signature": "EqQBCgIYAhIM",
         "content": [{"type": "text", "text": "Sure."}, {"type": "refusal", "refusal": "Not that part."}],
         "refusal": "Also not this.",
         "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2", "content": "r2"}
    ]));
    assert_eq!(
        messages(&route_a(&body))[1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "think", "signature": "EqQBCgIYAhIM"},
            {"type": "text", "text": "Sure."},
            {"type": "text", "text": "Not that part."},
            {"type": "text", "text": "Also not this."},
            {"type": "tool_use", "id": "c1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "c2", "name": "b", "input": {}}]})
    );
}

#[test]
fn tool_arguments_parse_to_objects_and_keep_unparseable_text() {
    let call = |args: &str| {
        let body = chat(json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"}
        ]));
        messages(&route_a(&body))[1]["content"][0]["input"].clone()
    };
    assert_eq!(call(""), json!({}));
    assert_eq!(call("  \n"), json!({}));
    assert_eq!(call("{\"a\":[1,2]}"), json!({"a": [1, 2]}));
    assert_eq!(call("{\"a\":"), json!({"_raw_arguments": "{\"a\":"}));
    assert_eq!(call("[1,2]"), json!({"_raw_arguments": "[1,2]"}));
    assert_eq!(call("42"), json!({"_raw_arguments": "42"}));
}

#[test]
fn tool_message_content_forms() {
    let result = |content: Value| {
        let body = chat(json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": content}
        ]));
        messages(&route_a(&body))[2]["content"][0].clone()
    };
    assert_eq!(
        result(json!("18C")),
        json!({"type": "tool_result", "tool_use_id": "c", "content": "18C"})
    );
    assert_eq!(
        result(json!([{"type": "text", "text": "a"}, {"type": "text", "text": ""}, {"type": "text", "text": "b"}])),
        json!({"type": "tool_result", "tool_use_id": "c", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    );
    // Empty results omit `content`; `is_error` is never set on this route.
    assert_eq!(result(json!("")), json!({"type": "tool_result", "tool_use_id": "c"}));
    assert_eq!(result(json!([])), json!({"type": "tool_result", "tool_use_id": "c"}));
    assert_eq!(result(Value::Null), json!({"type": "tool_result", "tool_use_id": "c"}));
}

#[test]
fn legacy_functions_and_function_messages_map_to_tools() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{\"k\":1}"}},
        {"role": "function", "name": "lookup", "content": "v"},
        {"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{\"k\":2}"}},
        {"role": "function", "name": "lookup", "content": "w"}],
        "functions": [{"name": "lookup", "parameters": {"type": "object", "properties": {"k": {"type": "integer"}}}}],
        "function_call": {"name": "lookup"}});
    let out = route_a(&body);
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_legacy_0", "name": "lookup", "input": {"k": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_legacy_0", "content": "v"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_legacy_1", "name": "lookup", "input": {"k": 2}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_legacy_1", "content": "w"}]}
        ])
    );
    assert_eq!(
        out["tools"],
        json!([{"name": "lookup", "input_schema": {"type": "object", "properties": {"k": {"type": "integer"}}}}])
    );
    assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "lookup"}));

    let auto = route_a(&with(
        with(hello(), "functions", json!([{"name": "f"}])),
        "function_call",
        json!("none"),
    ));
    assert_eq!(auto["tool_choice"], json!({"type": "none"}));
}

// ---- §1.1.2 merging and ordering rules ------------------------------------------------------------------

fn two_calls_then(rest: Value) -> Value {
    let mut list = vec![
        json!({"role": "user", "content": "q"}),
        json!({"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
    ];
    list.extend(rest.as_array().unwrap().iter().cloned());
    chat(Value::Array(list))
}

#[test]
fn rule_1_consecutive_tool_messages_share_one_turn_in_call_order() {
    let body = two_calls_then(json!([
        {"role": "tool", "tool_call_id": "b", "content": "rb"},
        {"role": "tool", "tool_call_id": "a", "content": "ra"}
    ]));
    assert_eq!(
        messages(&route_a(&body))[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "ra"},
            {"type": "tool_result", "tool_use_id": "b", "content": "rb"}]})
    );
}

#[test]
fn rule_2_user_message_after_tool_results_joins_their_turn_after_them() {
    let body = two_calls_then(json!([
        {"role": "tool", "tool_call_id": "a", "content": "ra"},
        {"role": "user", "content": "and?"},
        {"role": "tool", "tool_call_id": "b", "content": "rb"}
    ]));
    let out = route_a(&body);
    assert_eq!(messages(&out).as_array().unwrap().len(), 3);
    assert_eq!(
        messages(&out)[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "ra"},
            {"type": "tool_result", "tool_use_id": "b", "content": "rb"},
            {"type": "text", "text": "and?"}]})
    );
}

#[test]
fn rule_3_adjacent_same_role_turns_merge() {
    let body = chat(json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"}
    ]));
    assert_eq!(
        messages(&route_a(&body)),
        &json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]}
        ])
    );
}

#[test]
fn rule_4_empty_text_is_dropped_empty_user_turns_get_a_placeholder_empty_assistant_turns_vanish() {
    let body = chat(json!([
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "  "}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": ""}
    ]));
    assert_eq!(
        messages(&route_a(&body)),
        &json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": [{"type": "text", "text": "(empty)"}]}
        ])
    );
}

#[test]
fn a_conversation_must_open_with_a_user_turn() {
    let body = chat(json!([{"role": "assistant", "content": "How can I help?"}, {"role": "user", "content": "Hi"}]));
    assert_eq!(
        messages(&route_a(&body))[0],
        json!({"role": "user", "content": [{"type": "text", "text": "(empty)"}]})
    );
    let system_only = chat(json!([{"role": "system", "content": "Say hi."}]));
    assert_eq!(
        messages(&route_a(&system_only)),
        &json!([{"role": "user", "content": [{"type": "text", "text": "(empty)"}]}])
    );
}

#[test]
fn rule_5_prefill_loses_trailing_whitespace_or_is_dropped_with_thinking() {
    let body = chat(json!([{"role": "user", "content": "Write JSON"}, {"role": "assistant", "content": "{\"a\": \n"}]));
    assert_eq!(
        messages(&route_a(&body))[1],
        json!({"role": "assistant", "content": [{"type": "text", "text": "{\"a\":"}]})
    );
    let thinking = with(body, "reasoning_effort", json!("low"));
    let out = route_a(&thinking);
    assert_eq!(
        messages(&out),
        &json!([{"role": "user", "content": [{"type": "text", "text": "Write JSON"}]}])
    );
    assert_eq!(out["thinking"], json!({"type": "enabled", "budget_tokens": 1024}));
}

#[test]
fn rule_6_orphan_calls_get_an_error_result_and_orphan_results_are_dropped() {
    let body = two_calls_then(json!([
        {"role": "tool", "tool_call_id": "a", "content": "ra"},
        {"role": "tool", "tool_call_id": "zzz", "content": "stray"},
        {"role": "user", "content": "go on"}
    ]));
    assert_eq!(
        messages(&route_a(&body))[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "ra"},
            {"type": "tool_result", "tool_use_id": "b", "content": "(no result)", "is_error": true},
            {"type": "text", "text": "go on"}]})
    );
    // A history that ends on unanswered calls gets a user turn with the error results.
    let out = route_a(&two_calls_then(json!([])));
    assert_eq!(
        messages(&out)[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "(no result)", "is_error": true},
            {"type": "tool_result", "tool_use_id": "b", "content": "(no result)", "is_error": true}]})
    );
    // A result before any call is dropped, leaving a placeholder turn.
    let early = chat(json!([{"role": "tool", "tool_call_id": "x", "content": "?"}]));
    assert_eq!(
        messages(&route_a(&early)),
        &json!([{"role": "user", "content": [{"type": "text", "text": "(empty)"}]}])
    );
}

// ---- §1.1.4 max_tokens ------------------------------------------------------------------------------

#[test]
fn max_tokens_defaults_come_from_the_deployment_then_4096() {
    let default = route_a_with(&hello(), &options(|o| o.default_max_tokens = Some(2000))).body;
    assert_eq!(default["max_tokens"], 2000);
    let cap_only = route_a_with(&hello(), &options(|o| o.max_output_tokens = Some(8192))).body;
    assert_eq!(cap_only["max_tokens"], 8192);
    assert_eq!(route_a(&hello())["max_tokens"], 4096);
}

#[test]
fn max_tokens_is_clamped_to_max_output_tokens() {
    let body = with(hello(), "max_completion_tokens", json!(32000));
    assert_eq!(
        route_a_with(&body, &options(|o| o.max_output_tokens = Some(8192))).body["max_tokens"],
        8192
    );
    let default_above_cap = options(|o| {
        o.max_output_tokens = Some(1000);
        o.default_max_tokens = Some(5000);
    });
    assert_eq!(route_a_with(&hello(), &default_above_cap).body["max_tokens"], 1000);
}

#[test]
fn thinking_budget_raises_max_tokens_within_the_cap() {
    let body = with(
        with(hello(), "max_tokens", json!(1000)),
        "reasoning_effort",
        json!("high"),
    );
    let out = route_a_with(&body, &options(|_| {})).body;
    assert_eq!(out["max_tokens"], 8192, "4096 + min(4096, 4096)");
    assert_eq!(out["thinking"], json!({"type": "enabled", "budget_tokens": 4096}));

    let capped = route_a_with(&body, &options(|o| o.max_output_tokens = Some(3000))).body;
    assert_eq!(capped["max_tokens"], 3000);
    assert_eq!(capped["thinking"], json!({"type": "enabled", "budget_tokens": 2999}));

    let too_small = route_a_with(&body, &options(|o| o.max_output_tokens = Some(1024))).body;
    assert_eq!(too_small["max_tokens"], 1024);
    assert!(!too_small.contains_key("thinking"), "1023 < 1024: thinking off");
}

#[test]
fn non_positive_max_tokens_is_rejected() {
    let err = route_a_error(&with(hello(), "max_completion_tokens", json!(0)));
    assert_eq!(err.param.as_deref(), Some("max_completion_tokens"));
    assert_eq!(
        route_a_error(&with(hello(), "max_tokens", json!(-5))).param.as_deref(),
        Some("max_tokens")
    );
    assert_eq!(
        route_a_error(&with(hello(), "max_tokens", json!("9"))).code,
        Some("invalid_type")
    );
}

// ---- §1.1.5 tools and tool choice ----------------------------------------------------------------------

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}})
}

fn with_tools(choice: Option<Value>, parallel: Option<bool>) -> Value {
    let mut body = with(
        hello(),
        "tools",
        json!([weather_tool(), {"type": "function", "function": {"name": "time"}}]),
    );
    if let Some(choice) = choice {
        body["tool_choice"] = choice;
    }
    if let Some(parallel) = parallel {
        body["parallel_tool_calls"] = json!(parallel);
    }
    body
}

#[test]
fn tool_definitions_convert_and_missing_parameters_get_an_empty_schema() {
    let out = route_a(&with_tools(None, None));
    assert_eq!(
        out["tools"],
        json!([
            {"name": "weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
            {"name": "time", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    // `strict` is part of structured outputs; hosts without them do not get it.
    let no_strict = route_a_with(&with_tools(None, None), &options(|o| o.supports_output_format = false)).body;
    assert!(no_strict["tools"][0].get("strict").is_none());
}

#[test]
fn tool_choice_table() {
    let choice = |choice: Option<Value>, parallel: Option<bool>| {
        route_a(&with_tools(choice, parallel)).get("tool_choice").cloned()
    };
    assert_eq!(choice(None, None), None);
    assert_eq!(choice(None, Some(true)), None);
    assert_eq!(
        choice(None, Some(false)),
        Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
    );
    assert_eq!(choice(Some(json!("auto")), None), Some(json!({"type": "auto"})));
    assert_eq!(choice(Some(json!("none")), None), Some(json!({"type": "none"})));
    assert_eq!(choice(Some(json!("none")), Some(false)), Some(json!({"type": "none"})));
    assert_eq!(choice(Some(json!("required")), None), Some(json!({"type": "any"})));
    assert_eq!(
        choice(Some(json!("required")), Some(false)),
        Some(json!({"type": "any", "disable_parallel_tool_use": true}))
    );
    let named = json!({"type": "function", "function": {"name": "weather"}});
    assert_eq!(
        choice(Some(named.clone()), None),
        Some(json!({"type": "tool", "name": "weather"}))
    );
    assert_eq!(
        choice(Some(named), Some(false)),
        Some(json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true}))
    );
}

#[test]
fn tool_choice_none_keeps_the_tools() {
    let out = route_a(&with_tools(Some(json!("none")), None));
    assert_eq!(out["tools"].as_array().unwrap().len(), 2);
}

#[test]
fn allowed_tools_filter_the_tool_list() {
    let allowed = |mode: &str| {
        json!({"type": "allowed_tools", "allowed_tools": {"mode": mode,
            "tools": [{"type": "function", "function": {"name": "time"}}]}})
    };
    let out = route_a(&with_tools(Some(allowed("auto")), None));
    assert_eq!(
        out["tools"],
        json!([{"name": "time", "input_schema": {"type": "object", "properties": {}}}])
    );
    assert_eq!(out["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        route_a(&with_tools(Some(allowed("required")), None))["tool_choice"],
        json!({"type": "any"})
    );
}

#[test]
fn no_tools_means_no_tool_choice() {
    assert!(
        route_a(&with(
            with(hello(), "tool_choice", json!("required")),
            "tools",
            json!([])
        ))
        .get("tool_choice")
        .is_none()
    );
    let no_tools = route_a(&with(
        with(hello(), "parallel_tool_calls", json!(false)),
        "tool_choice",
        json!("auto"),
    ));
    assert!(no_tools.get("tool_choice").is_none() && no_tools.get("tools").is_none());
}

#[test]
fn custom_tools_are_rejected() {
    let custom = with(
        hello(),
        "tools",
        json!([{"type": "custom", "custom": {"name": "grammar"}}]),
    );
    let err = route_a_error(&custom);
    assert_eq!(
        (err.param.as_deref(), err.code),
        (Some("tools[0].type"), Some("unsupported_parameter"))
    );
    let choice = with_tools(Some(json!({"type": "custom", "custom": {"name": "grammar"}})), None);
    let err = route_a_error(&choice);
    assert_eq!(
        (err.param.as_deref(), err.code),
        (Some("tool_choice"), Some("unsupported_parameter"))
    );
}

#[test]
fn forced_tool_choice_switches_thinking_off() {
    let body = with(
        with_tools(Some(json!("required")), None),
        "reasoning_effort",
        json!("high"),
    );
    let converted = route_a_with(&body, &options(|_| {}));
    assert!(!converted.body.contains_key("thinking"));
    assert!(!converted.facts.thinking_enabled);
    let adaptive = route_a_with(&body, &options(|o| o.thinking_mode = ThinkingMode::Adaptive)).body;
    assert!(
        !adaptive.contains_key("thinking") && !adaptive.contains_key("output_config"),
        "no effort without thinking"
    );
    let auto = route_a(&with(
        with_tools(Some(json!("auto")), None),
        "reasoning_effort",
        json!("high"),
    ));
    assert_eq!(auto["thinking"]["type"], "enabled");
}

// ---- §1.1.6 content parts -------------------------------------------------------------------------------

fn user_parts(parts: Value) -> Value {
    chat(json!([{"role": "user", "content": parts}]))
}

fn first_blocks(body: &Value) -> Value {
    messages(&route_a(body))[0]["content"].clone()
}

#[test]
fn image_parts_become_base64_or_url_images() {
    let body = user_parts(json!([
        {"type": "text", "text": "What is this?"},
        {"type": "text", "text": ""},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}}
    ]));
    assert_eq!(
        first_blocks(&body),
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}
        ])
    );
}

#[test]
fn unsupported_image_media_types_are_rejected() {
    let err = route_a_error(&user_parts(
        json!([{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]),
    ));
    assert_eq!(err.param.as_deref(), Some("messages[0].content[0].image_url"));
    assert_eq!(err.code, Some("unsupported_value"));
    let err = route_a_error(&user_parts(
        json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]),
    ));
    assert_eq!(err.param.as_deref(), Some("messages[0].content[0].image_url"));
}

#[test]
fn file_parts_become_documents() {
    let text_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "plain notes");
    let body = user_parts(json!([
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "report.pdf"}},
        {"type": "file", "file": {"file_data": format!("data:text/plain;base64,{text_b64}"), "filename": "notes.txt"}},
        {"type": "file", "file": {"file_data": "JVBERi0x"}}
    ]));
    assert_eq!(
        first_blocks(&body),
        json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "report.pdf"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}, "title": "notes.txt"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
        ])
    );
}

#[test]
fn file_ids_audio_input_and_other_file_types_are_rejected() {
    let err = route_a_error(&user_parts(json!([{"type": "file", "file": {"file_id": "file-abc"}}])));
    assert_eq!(err.param.as_deref(), Some("messages[0].content[0].file.file_id"));
    let err = route_a_error(&user_parts(
        json!([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]),
    ));
    assert_eq!(
        (err.param.as_deref(), err.code),
        (Some("messages[0].content[0].type"), Some("unsupported_value"))
    );
    let err = route_a_error(&user_parts(
        json!([{"type": "file", "file": {"file_data": "data:application/zip;base64,UEs="}}]),
    ));
    assert_eq!(err.code, Some("unsupported_value"));
}

#[test]
fn explicit_cache_breakpoints_become_cache_control_without_ttl() {
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long prompt", "prompt_cache_breakpoint": {"mode": "explicit"}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "doc", "prompt_cache_breakpoint": {"mode": "explicit"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}, "prompt_cache_breakpoint": {"mode": "explicit"}},
            {"type": "text", "text": "question"}]}],
        "prompt_cache_options": {"ttl": "30m"}});
    let out = route_a(&body);
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "Long prompt", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "question"}
        ])
    );
}

// ---- §1.1.7 reasoning ----------------------------------------------------------------------------------

#[test]
fn reasoning_effort_table_for_budget_and_adaptive_models() {
    let rows = [
        ("minimal", 1024, "low"),
        ("low", 1024, "low"),
        ("medium", 2048, "medium"),
        ("high", 4096, "high"),
        ("xhigh", 8192, "xhigh"),
        ("max", 16384, "max"),
    ];
    for (effort, budget, level) in rows {
        let body = with(
            with(hello(), "max_completion_tokens", json!(64000)),
            "reasoning_effort",
            json!(effort),
        );
        let budgeted = route_a_with(&body, &options(|_| {}));
        assert_eq!(
            budgeted.body["thinking"],
            json!({"type": "enabled", "budget_tokens": budget}),
            "{effort}"
        );
        assert!(!budgeted.body.contains_key("output_config"), "{effort}");
        assert!(budgeted.facts.thinking_enabled);
        let adaptive = route_a_with(&body, &options(|o| o.thinking_mode = ThinkingMode::Adaptive)).body;
        assert_eq!(adaptive["thinking"], json!({"type": "adaptive"}), "{effort}");
        assert_eq!(adaptive["output_config"], json!({"effort": level}), "{effort}");
    }
    for mode in [ThinkingMode::Budget, ThinkingMode::Adaptive] {
        let none = route_a_with(
            &with(hello(), "reasoning_effort", json!("none")),
            &options(|o| o.thinking_mode = mode),
        );
        assert_eq!(none.body["thinking"], json!({"type": "disabled"}));
        assert!(!none.body.contains_key("output_config") && !none.facts.thinking_enabled);
    }
    assert!(
        !route_a(&hello()).as_object().unwrap().contains_key("thinking"),
        "absent stays absent"
    );
    let ignored = route_a_with(
        &with(hello(), "reasoning_effort", json!("high")),
        &options(|o| o.thinking_mode = ThinkingMode::None),
    );
    assert!(!ignored.body.contains_key("thinking"));
    let err = route_a_error(&with(hello(), "reasoning_effort", json!("extreme")));
    assert_eq!(err.param.as_deref(), Some("reasoning_effort"));
}

#[test]
fn thinking_omits_temperature_and_restricts_top_p() {
    let body = with(
        with(
            with(hello(), "reasoning_effort", json!("low")),
            "temperature",
            json!(0.2),
        ),
        "top_p",
        json!(0.9),
    );
    let out = route_a(&body);
    assert!(out.get("temperature").is_none() && out.get("top_p").is_none());
    let high_p = with(with(hello(), "reasoning_effort", json!("low")), "top_p", json!(0.97));
    assert_eq!(route_a(&high_p)["top_p"], 0.97);
}

fn tool_loop(assistant_extra: Value) -> Value {
    let mut assistant = json!({"role": "assistant", "content": null,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
    for (k, v) in assistant_extra.as_object().unwrap() {
        assistant[k] = v.clone();
    }
    let body = chat(
        json!([{"role": "user", "content": "q"}, assistant, {"role": "tool", "tool_call_id": "c1", "content": "r"}]),
    );
    with(
        with(body, "reasoning_effort", json!("medium")),
        "tools",
        json!([{"type": "function", "function": {"name": "f"}}]),
    )
}

#[test]
fn signed_reasoning_is_replayed_and_keeps_thinking_on_in_a_tool_loop() {
    let out = route_a(&tool_loop(
        json!({"reasoning_content": "plan", "reasoning_signature": "EqQBsig"}),
    ));
    assert_eq!(
        out["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "plan", "signature": "EqQBsig"})
    );
    assert_eq!(out["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
}

#[test]
fn unsigned_or_router_signed_reasoning_is_dropped_and_the_open_loop_goes_without_thinking() {
    let minted = format!("{ROUTER_SIGNATURE_PREFIX}abc");
    for extra in [
        json!({"reasoning_content": "plan"}),
        json!({"reasoning_content": "plan", "reasoning_signature": minted}),
    ] {
        let converted = route_a_with(&tool_loop(extra), &options(|_| {}));
        let assistant = &converted.body["messages"][1]["content"];
        assert_eq!(assistant.as_array().unwrap().len(), 1, "only the tool_use: {assistant}");
        assert!(!converted.body.contains_key("thinking"));
        assert!(!converted.facts.thinking_enabled);
    }
}

#[test]
fn every_assistant_turn_of_the_open_loop_needs_signed_thinking() {
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let signed = json!({"reasoning_content": "plan", "reasoning_signature": "EqQBsig"});
    let turns = |first: &Value, second: &Value| {
        let mut a1 = json!({"role": "assistant", "tool_calls": [call("c1")]});
        let mut a2 = json!({"role": "assistant", "tool_calls": [call("c2")]});
        for (turn, extra) in [(&mut a1, first), (&mut a2, second)] {
            for (k, v) in extra.as_object().unwrap() {
                turn[k] = v.clone();
            }
        }
        let body = chat(json!([
            {"role": "user", "content": "q"}, a1, {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            a2, {"role": "tool", "tool_call_id": "c2", "content": "r2"}]));
        let body = with(body, "tools", json!([{"type": "function", "function": {"name": "f"}}]));
        route_a(&with(body, "reasoning_effort", json!("medium")))
    };
    assert_eq!(turns(&signed, &signed)["thinking"]["type"], "enabled");
    assert!(
        turns(&json!({}), &signed).get("thinking").is_none(),
        "the turn that opened the loop lacks it"
    );
    assert!(
        turns(&signed, &json!({})).get("thinking").is_none(),
        "the last turn lacks it"
    );
}

#[test]
fn a_closed_tool_loop_does_not_block_thinking() {
    let mut body = tool_loop(json!({}));
    body["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": "Done."}),
        json!({"role": "user", "content": "Thanks, next question"}),
    ]);
    assert_eq!(route_a(&body)["thinking"]["type"], "enabled");
}

// ---- §1.1.8 structured output --------------------------------------------------------------------------

fn schema() -> Value {
    json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false})
}

#[test]
fn response_format_text_adds_nothing() {
    assert_eq!(
        route_a(&with(hello(), "response_format", json!({"type": "text"}))),
        route_a(&hello())
    );
}

#[test]
fn json_schema_becomes_output_config_format() {
    let body = with(
        hello(),
        "response_format",
        json!({"type": "json_schema", "json_schema": {"name": "a", "schema": schema(), "strict": true}}),
    );
    let converted = route_a_with(&body, &options(|_| {}));
    assert_eq!(
        converted.body["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema()}})
    );
    assert!(!converted.facts.json_output_tool);
}

#[test]
fn json_schema_without_native_support_uses_the_json_output_tool() {
    let body = with(
        with(
            hello(),
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": schema()}}),
        ),
        "reasoning_effort",
        json!("high"),
    );
    let converted = route_a_with(&body, &options(|o| o.supports_output_format = false));
    assert_eq!(
        converted.body["tools"],
        json!([{"name": "json_output", "input_schema": schema()}])
    );
    assert_eq!(
        converted.body["tool_choice"],
        json!({"type": "tool", "name": "json_output"})
    );
    assert!(!converted.body.contains_key("thinking") && !converted.body.contains_key("output_config"));
    assert!(converted.facts.json_output_tool && !converted.facts.thinking_enabled);
}

#[test]
fn json_object_adds_a_system_instruction() {
    let body = with(
        with(
            hello(),
            "messages",
            json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}]),
        ),
        "response_format",
        json!({"type": "json_object"}),
    );
    assert_eq!(
        route_a(&body)["system"],
        json!([{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Reply with a single JSON object and nothing else."}])
    );
}

// ---- §1.1.10 rejected fields, and malformed input -----------------------------------------------------

#[test]
fn fields_that_change_the_answer_shape_are_rejected_with_param() {
    let cases = [
        (with(hello(), "n", json!(2)), "n", "unsupported_value"),
        (
            with(hello(), "modalities", json!(["text", "audio"])),
            "modalities",
            "unsupported_value",
        ),
        (
            with(hello(), "audio", json!({"voice": "alloy", "format": "wav"})),
            "audio",
            "unsupported_parameter",
        ),
    ];
    for (body, param, code) in cases {
        let err = route_a_error(&body);
        assert_eq!((err.param.as_deref(), err.code), (Some(param), Some(code)), "{body}");
    }
    assert!(
        route_a(&with(hello(), "modalities", json!(["text"])))
            .get("modalities")
            .is_none()
    );
}

#[test]
fn malformed_requests_name_the_offending_field() {
    let err = super::openai_to_anthropic(b"{not json", &super::context(&Default::default(), "m")).unwrap_err();
    assert_eq!(err.param, None);
    assert!(err.message.contains("JSON"));
    let array = super::openai_to_anthropic(b"[1]", &super::context(&Default::default(), "m")).unwrap_err();
    assert!(array.message.contains("object"));
    let cases = [
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (json!({"model": "m", "messages": "hi"}), "messages"),
        (chat(json!([{"content": "hi"}])), "messages[0].role"),
        (chat(json!([{"role": "user", "content": 5}])), "messages[0].content"),
        (chat(json!([{"role": "wizard", "content": "hi"}])), "messages[0].role"),
        (
            chat(json!([{"role": "user", "content": [{"type": "text"}]}])),
            "messages[0].content[0].text",
        ),
        (
            chat(json!([{"role": "user", "content": [{"type": "video"}]}])),
            "messages[0].content[0].type",
        ),
        (
            chat(json!([{"role": "tool", "content": "x"}])),
            "messages[0].tool_call_id",
        ),
        (
            chat(
                json!([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}]),
            ),
            "messages[1].tool_calls[0].function.name",
        ),
        (
            with(hello(), "tools", json!([{"type": "function"}])),
            "tools[0].function",
        ),
        (with(hello(), "temperature", json!("hot")), "temperature"),
        (with(hello(), "stop", json!([1])), "stop[0]"),
        (with(hello(), "tool_choice", json!("sometimes")), "tool_choice"),
        (
            with(hello(), "response_format", json!({"type": "xml"})),
            "response_format.type",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(route_a_error(&body).param.as_deref(), Some(param), "{body}");
    }
}
