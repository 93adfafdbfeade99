//! Route B: Anthropic request → OpenAI request (§1.2), one test per table row or rule.

use serde_json::{Value, json};

use super::{options, route_b, route_b_error, route_b_with};
use crate::protocol::convert::ids::sha256_hex;
use crate::protocol::convert::request::openai_tool_name;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::protocol::convert::{ModelOptions, ReasoningDialect};

fn request(messages: Value) -> Value {
    json!({"model": "claude-alias", "max_tokens": 1024, "messages": messages})
}

fn hello() -> Value {
    request(json!([{"role": "user", "content": "Hello"}]))
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn deepseek() -> crate::protocol::convert::ModelOptions {
    options(|o| o.reasoning_dialect = ReasoningDialect::Deepseek)
}

// §1.2.5, verbatim (the placeholders filled in with a realistic Claude Code user id).
#[test]
fn worked_example_1_2_5() {
    let user_id = format!(
        "user_{}_account_4f1c2d3e-0000-4000-8000-1234567890ab_session_9a8b7c6d-0000-4000-8000-ba0987654321",
        "ab".repeat(32)
    );
    let input = json!({"model":"claude-sonnet-x","max_tokens":32000,"system":[{"type":"text","text":"You are a coder.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
     "metadata":{"user_id":user_id},
     "messages":[
      {"role":"user","content":"List files"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"Use Bash.","signature":"llmr1.Zk9v"},
                                     {"type":"tool_use","id":"toolu_01","name":"Bash","input":{"command":"ls"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"a.rs\nb.rs"},
                                {"type":"text","text":"Now count them"}]}],
     "tools":[{"name":"Bash","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}],
     "stream":true});
    let expected = json!({"model":"deepseek-x","max_tokens":8192,"stream":true,"stream_options":{"include_usage":true},
     "user":sha256_hex(&user_id),
     "messages":[
      {"role":"system","content":"You are a coder."},
      {"role":"user","content":"List files"},
      {"role":"assistant","content":null,"reasoning_content":"Use Bash.",
       "tool_calls":[{"id":"toolu_01","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}}]},
      {"role":"tool","tool_call_id":"toolu_01","content":"a.rs\nb.rs"},
      {"role":"user","content":"Now count them"}],
     "tools":[{"type":"function","function":{"name":"Bash","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}]});
    let deployment = options(|o| {
        o.reasoning_dialect = ReasoningDialect::Deepseek;
        o.max_output_tokens = Some(8192);
    });
    let converted =
        super::anthropic_to_openai(input.to_string().as_bytes(), &super::context(&deployment, "deepseek-x")).unwrap();
    assert_eq!(Value::Object(converted.body), expected);
    assert!(converted.facts.stream);
    assert!(!converted.facts.thinking_enabled);
    assert_eq!(
        converted.facts.input_tokens_estimate,
        estimate_anthropic_input_tokens(&input, 1.15)
    );
}

// ---- §1.2.1 top-level fields -------------------------------------------------------------------------

#[test]
fn minimal_request() {
    assert_eq!(
        route_b(&hello()),
        json!({"model": "gpt-x", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]})
    );
}

#[test]
fn max_tokens_is_clamped_and_zero_is_a_cache_prewarm() {
    let capped = route_b_with(
        &with(hello(), "max_tokens", json!(32000)),
        &options(|o| o.max_output_tokens = Some(4096)),
    );
    assert_eq!(capped.body["max_tokens"], 4096);
    assert!(!capped.facts.cache_prewarm);
    let prewarm = route_b_with(&with(hello(), "max_tokens", json!(0)), &options(|_| {}));
    assert!(prewarm.facts.cache_prewarm);
    assert_eq!(prewarm.body["max_tokens"], 1, "still a valid request if sent");
}

#[test]
fn system_blocks_join_with_a_blank_line_and_lose_cache_control_and_citations() {
    let body = with(
        hello(),
        "system",
        json!([
        {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "B", "citations": [{"type": "char_location"}]}]),
    );
    assert_eq!(
        route_b(&body)["messages"][0],
        json!({"role": "system", "content": "A\n\nB"})
    );
    assert_eq!(
        route_b(&with(hello(), "system", json!("S")))["messages"][0],
        json!({"role": "system", "content": "S"})
    );
    assert_eq!(
        route_b(&with(hello(), "system", json!("")))["messages"][0]["role"],
        "user"
    );
}

#[test]
fn stop_sequences_keep_the_first_four() {
    let body = with(hello(), "stop_sequences", json!(["a", "b", "c", "d", "e"]));
    assert_eq!(route_b(&body)["stop"], json!(["a", "b", "c", "d"]));
    assert!(
        route_b(&with(hello(), "stop_sequences", json!([])))
            .get("stop")
            .is_none()
    );
}

#[test]
fn stop_sequences_sent_upstream_are_facts_for_the_response() {
    let body = with(hello(), "stop_sequences", json!(["###", "b", "c", "d", "e"]));
    let converted = route_b_with(&body, &ModelOptions::default());
    assert_eq!(converted.facts.stop_sequences, ["###", "b", "c", "d"]);
    assert!(
        route_b_with(&hello(), &ModelOptions::default())
            .facts
            .stop_sequences
            .is_empty()
    );
}

#[test]
fn sampling_passes_through_and_top_k_only_where_supported() {
    let body = with(
        with(with(hello(), "temperature", json!(0.7)), "top_p", json!(0.9)),
        "top_k",
        json!(40),
    );
    let out = route_b(&body);
    assert_eq!(
        (out["temperature"].clone(), out["top_p"].clone()),
        (json!(0.7), json!(0.9))
    );
    assert!(out.get("top_k").is_none());
    assert_eq!(
        route_b_with(&body, &options(|o| o.supports_top_k = true)).body["top_k"],
        40
    );
}

#[test]
fn stream_options_only_when_streaming_and_supported() {
    let stream = with(hello(), "stream", json!(true));
    let out = route_b(&stream);
    assert_eq!(
        (out["stream"].clone(), out["stream_options"].clone()),
        (json!(true), json!({"include_usage": true}))
    );
    let unsupported = route_b_with(&stream, &options(|o| o.supports_stream_options = false)).body;
    assert_eq!(unsupported.get("stream"), Some(&json!(true)));
    assert!(!unsupported.contains_key("stream_options"));
    let plain = route_b(&with(hello(), "stream", json!(false)));
    assert!(plain.get("stream").is_none() && plain.get("stream_options").is_none());
}

#[test]
fn output_format_becomes_a_strict_json_schema_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let expected = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
    let config = with(
        hello(),
        "output_config",
        json!({"format": {"type": "json_schema", "schema": schema}}),
    );
    assert_eq!(route_b(&config)["response_format"], expected);
    let beta = with(
        hello(),
        "output_format",
        json!({"type": "json_schema", "schema": schema}),
    );
    assert_eq!(route_b(&beta)["response_format"], expected);
}

#[test]
fn metadata_user_id_becomes_user_hashed_past_64_characters() {
    let short = "u".repeat(64);
    assert_eq!(
        route_b(&with(hello(), "metadata", json!({"user_id": short})))["user"],
        json!(short)
    );
    let long = "u".repeat(65);
    assert_eq!(
        route_b(&with(hello(), "metadata", json!({"user_id": long})))["user"],
        json!(sha256_hex(&long))
    );
    assert!(route_b(&with(hello(), "metadata", json!({}))).get("user").is_none());
}

#[test]
fn fields_without_an_openai_counterpart_are_dropped() {
    let mut body = hello();
    for (key, value) in [
        ("cache_control", json!({"type": "ephemeral", "ttl": "1h"})),
        ("service_tier", json!("auto")),
        ("container", json!("c1")),
        ("inference_geo", json!("us")),
        ("context_management", json!({"edits": []})),
        ("mcp_servers", json!([{"type": "url", "url": "https://mcp"}])),
        ("speed", json!("fast")),
        ("fallbacks", json!([])),
        ("diagnostics", json!({})),
        ("thinking", json!({"type": "disabled"})),
    ] {
        body[key] = value;
    }
    assert_eq!(route_b(&body), route_b(&hello()));
}

// ---- §1.2.2 blocks ---------------------------------------------------------------------------------

fn user_blocks(blocks: Value) -> Value {
    request(json!([{"role": "user", "content": blocks}]))
}

#[test]
fn user_text_only_messages_become_strings_and_media_messages_parts() {
    let text_only = user_blocks(json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]));
    assert_eq!(
        route_b(&text_only)["messages"],
        json!([{"role": "user", "content": "a\n\nb"}])
    );
    let media = user_blocks(json!([
        {"type": "text", "text": "What is it?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}}
    ]));
    assert_eq!(
        route_b(&media)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}}
        ])
    );
}

#[test]
fn assistant_text_joins_directly_or_with_a_blank_line_across_other_blocks() {
    let body = request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Hel"}, {"type": "text", "text": "lo."},
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Next."}]}
    ]));
    assert_eq!(
        route_b(&body)["messages"][1],
        json!({"role": "assistant", "content": "Hello.\n\nNext."})
    );
}

#[test]
fn documents_convert_by_source_type() {
    let body = user_blocks(json!([
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}, "title": "report.pdf"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}, "title": "Notes"},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": "chunk"},
            {"type": "image", "source": {"type": "url", "url": "https://x/p.png"}}]}}
    ]));
    assert_eq!(
        route_b(&body)["messages"][0]["content"],
        json!([
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "report.pdf"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "document.pdf"}},
            {"type": "text", "text": "Notes\nnotes"},
            {"type": "text", "text": "chunk"},
            {"type": "image_url", "image_url": {"url": "https://x/p.png"}}
        ])
    );
}

#[test]
fn search_results_become_text() {
    let body = user_blocks(
        json!([{"type": "search_result", "title": "Rust", "source": "https://rust-lang.org",
        "content": [{"type": "text", "text": "A language."}, {"type": "text", "text": "Fast."}]}]),
    );
    assert_eq!(
        route_b(&body)["messages"][0]["content"],
        json!("Rust\nhttps://rust-lang.org\nA language.\nFast.")
    );
}

#[test]
fn tool_use_becomes_tool_calls_with_compact_arguments_and_null_content() {
    let body = request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls", "flags": ["-l", "-a"]}},
            {"type": "tool_use", "id": "t2", "name": "Noop", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
            {"type": "tool_result", "tool_use_id": "t2", "content": ""}]}
    ]));
    assert_eq!(
        route_b(&body)["messages"][1],
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\",\"flags\":[\"-l\",\"-a\"]}"}},
            {"id": "t2", "type": "function", "function": {"name": "Noop", "arguments": "{}"}}]})
    );
}

#[test]
fn redacted_thinking_and_server_tool_blocks_are_dropped() {
    let body = request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "redacted_thinking", "data": "xyz"},
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "rust"}},
            {"type": "web_search_tool_result", "tool_use_id": "srv_1", "content": []},
            {"type": "text", "text": "Found it."}]},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}, {"type": "container_upload", "file_id": "f"}]}
    ]));
    assert_eq!(
        route_b(&body)["messages"],
        json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "Found it."},
            {"role": "user", "content": "thanks"}
        ])
    );
}

#[test]
fn mid_conversation_system_prompts_keep_their_position() {
    let body = request(json!([
        {"role": "user", "content": [{"type": "text", "text": "Hi"},
            {"type": "mid_conv_system", "content": [{"type": "text", "text": "Now be formal."}]}]},
        {"role": "assistant", "content": "Good day."},
        {"role": "system", "content": [{"type": "text", "text": "Skills: none."}]},
        {"role": "user", "content": "Bye"}
    ]));
    assert_eq!(
        route_b(&body)["messages"],
        json!([
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Now be formal."},
            {"role": "assistant", "content": "Good day."},
            {"role": "system", "content": "Skills: none."},
            {"role": "user", "content": "Bye"}
        ])
    );
}

#[test]
fn empty_assistant_messages_are_dropped_unless_last() {
    let body = request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": []}
    ]));
    assert_eq!(
        route_b(&body)["messages"],
        json!([
            {"role": "user", "content": "q"},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": ""}
        ])
    );
}

// ---- §1.2.3 tool results -----------------------------------------------------------------------------

fn after_call(user_content: Value) -> Value {
    request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
        {"role": "user", "content": user_content}
    ]))
}

fn tail(body: &Value, from: usize) -> Value {
    Value::Array(route_b(body)["messages"].as_array().unwrap()[from..].to_vec())
}

#[test]
fn tool_results_split_into_tool_messages_before_the_user_text() {
    let body = after_call(json!([
        {"type": "text", "text": "t"},
        {"type": "tool_result", "tool_use_id": "a", "content": "ra"},
        {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "rb1"}, {"type": "text", "text": "rb2"}]}
    ]));
    assert_eq!(
        tail(&body, 2),
        json!([
            {"role": "tool", "tool_call_id": "a", "content": "ra"},
            {"role": "tool", "tool_call_id": "b", "content": "rb1\nrb2"},
            {"role": "user", "content": "t"}
        ])
    );
}

#[test]
fn tool_result_content_rules() {
    let body = after_call(json!([
        {"type": "tool_result", "tool_use_id": "a", "is_error": true, "content": "command not found"},
        {"type": "tool_result", "tool_use_id": "b"}
    ]));
    assert_eq!(
        tail(&body, 2),
        json!([
            {"role": "tool", "tool_call_id": "a", "content": "Error: command not found"},
            {"role": "tool", "tool_call_id": "b", "content": ""}
        ])
    );
    let references = after_call(json!([
        {"type": "tool_result", "tool_use_id": "a", "content": [
            {"type": "tool_reference", "tool_name": "Grep"}, {"type": "tool_reference", "tool_name": "Glob"}]},
        {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "ok"}]}
    ]));
    assert_eq!(
        tail(&references, 2)[0],
        json!({"role": "tool", "tool_call_id": "a", "content": "Tool loaded: Grep\nTool loaded: Glob"})
    );
}

#[test]
fn images_returned_by_tools_follow_all_tool_messages_in_a_user_message() {
    let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}});
    let body = after_call(json!([
        {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "screenshot taken"}, image]},
        {"type": "tool_result", "tool_use_id": "b", "content": "done"},
        {"type": "text", "text": "What do you see?"}
    ]));
    assert_eq!(
        tail(&body, 2),
        json!([
            {"role": "tool", "tool_call_id": "a", "content": "screenshot taken"},
            {"role": "tool", "tool_call_id": "b", "content": "done"},
            {"role": "user", "content": [
                {"type": "text", "text": "Images returned by tool call a:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "What do you see?"}]}
        ])
    );
}

// ---- §1.2.4 tools and tool choice ----------------------------------------------------------------------

#[test]
fn custom_tools_become_functions_and_server_tools_are_dropped() {
    let body = with(
        hello(),
        "tools",
        json!([
            {"name": "Bash", "description": "Run", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"},
             "defer_loading": true, "input_examples": [{}], "allowed_callers": ["direct"], "eager_input_streaming": true, "strict": true},
            {"type": "custom", "name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
        ]),
    );
    assert_eq!(
        route_b(&body)["tools"],
        json!([
            {"type": "function", "function": {"name": "Bash", "description": "Run", "parameters": {"type": "object"}, "strict": true}},
            {"type": "function", "function": {"name": "Read", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}
        ])
    );
}

#[test]
fn long_tool_names_are_shortened_everywhere_and_mapped_back() {
    let long = "mcp__claude_ai_Google_Drive__search_files_in_shared_drive_with_filters";
    let short = openai_tool_name(long).into_owned();
    assert!(short.len() <= 64 && short != long);
    let body = json!({"model": "m", "max_tokens": 10,
        "tools": [{"name": long, "input_schema": {"type": "object"}}, {"name": "Bash", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": long},
        "messages": [
            {"role": "user", "content": "find"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": long, "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "none"}]}]});
    let converted = route_b_with(&body, &options(|_| {}));
    assert_eq!(converted.body["tools"][0]["function"]["name"], json!(short));
    assert_eq!(
        converted.body["tool_choice"],
        json!({"type": "function", "function": {"name": short}})
    );
    assert_eq!(
        converted.body["messages"][1]["tool_calls"][0]["function"]["name"],
        json!(short)
    );
    assert_eq!(converted.facts.tool_names.original(&short), long);
    assert_eq!(converted.facts.tool_names.original("Bash"), "Bash");
}

#[test]
fn tool_choice_table() {
    let tools = json!([{"name": "Bash", "input_schema": {"type": "object"}}]);
    let choice = |choice: Value| {
        let out = route_b(&with(with(hello(), "tools", tools.clone()), "tool_choice", choice));
        (out.get("tool_choice").cloned(), out.get("parallel_tool_calls").cloned())
    };
    assert_eq!(route_b(&with(hello(), "tools", tools.clone())).get("tool_choice"), None);
    assert_eq!(choice(json!({"type": "auto"})), (Some(json!("auto")), None));
    assert_eq!(choice(json!({"type": "any"})), (Some(json!("required")), None));
    assert_eq!(choice(json!({"type": "none"})), (Some(json!("none")), None));
    assert_eq!(
        choice(json!({"type": "tool", "name": "Bash"})),
        (Some(json!({"type": "function", "function": {"name": "Bash"}})), None)
    );
    assert_eq!(
        choice(json!({"type": "auto", "disable_parallel_tool_use": true})),
        (Some(json!("auto")), Some(json!(false)))
    );
    // Without tools neither the choice nor the parallel flag is sent.
    let bare = route_b(&with(
        hello(),
        "tool_choice",
        json!({"type": "any", "disable_parallel_tool_use": true}),
    ));
    assert!(bare.get("tool_choice").is_none() && bare.get("parallel_tool_calls").is_none());
}

// ---- §1.2.6 reasoning ---------------------------------------------------------------------------------

fn thinking(config: Value) -> Value {
    with(hello(), "thinking", config)
}

#[test]
fn effort_is_derived_from_budget_or_adaptive_effort() {
    let effort = |body: Value| route_b(&body).get("reasoning_effort").cloned();
    assert_eq!(
        effort(thinking(json!({"type": "enabled", "budget_tokens": 1024}))),
        Some(json!("low"))
    );
    assert_eq!(
        effort(thinking(json!({"type": "enabled", "budget_tokens": 2048}))),
        Some(json!("medium"))
    );
    assert_eq!(
        effort(thinking(json!({"type": "enabled", "budget_tokens": 8191}))),
        Some(json!("medium"))
    );
    assert_eq!(
        effort(thinking(json!({"type": "enabled", "budget_tokens": 8192}))),
        Some(json!("high"))
    );
    assert_eq!(effort(thinking(json!({"type": "adaptive"}))), Some(json!("medium")));
    for (level, expected) in [
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("xhigh", "high"),
        ("max", "high"),
    ] {
        let body = with(
            thinking(json!({"type": "adaptive"})),
            "output_config",
            json!({"effort": level}),
        );
        assert_eq!(effort(body), Some(json!(expected)), "{level}");
    }
    assert_eq!(effort(thinking(json!({"type": "disabled"}))), None);
    assert_eq!(effort(hello()), None);
    // Effort alone does not switch reasoning on.
    assert_eq!(effort(with(hello(), "output_config", json!({"effort": "high"}))), None);
}

fn history_with_thinking() -> Value {
    request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "step 1", "signature": "s1"},
            {"type": "thinking", "thinking": "step 2", "signature": "s2"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "more"}
    ]))
}

#[test]
fn openai_dialect_sends_reasoning_effort_and_drops_history_thinking() {
    let body = with(
        history_with_thinking(),
        "thinking",
        json!({"type": "enabled", "budget_tokens": 4000}),
    );
    let converted = route_b_with(&body, &options(|_| {}));
    assert_eq!(converted.body["reasoning_effort"], "medium");
    assert!(converted.facts.thinking_enabled);
    assert!(!converted.body.contains_key("thinking"));
    let messages = converted.body["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m.get("reasoning_content").is_none()));
}

#[test]
fn deepseek_dialect_switches_thinking_and_replays_reasoning_content_on_every_assistant_message() {
    let on = route_b_with(
        &with(
            history_with_thinking(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 10000}),
        ),
        &deepseek(),
    );
    assert_eq!(on.body["thinking"], json!({"type": "enabled"}));
    assert_eq!(on.body["reasoning_effort"], "high");
    assert!(on.facts.thinking_enabled);
    assert_eq!(on.body["messages"][1]["reasoning_content"], "step 1\nstep 2");
    assert_eq!(
        on.body["messages"][3],
        json!({"role": "assistant", "content": "answer", "reasoning_content": ""})
    );

    let off = route_b_with(
        &with(history_with_thinking(), "thinking", json!({"type": "disabled"})),
        &deepseek(),
    );
    assert_eq!(off.body["thinking"], json!({"type": "disabled"}));
    assert!(!off.body.contains_key("reasoning_effort"), "never effort with disabled");
    assert!(!off.facts.thinking_enabled);
    let absent = route_b_with(&history_with_thinking(), &deepseek()).body;
    assert!(!absent.contains_key("thinking") && !absent.contains_key("reasoning_effort"));
}

#[test]
fn qwen_dialect_uses_enable_thinking_and_the_budget() {
    let qwen = options(|o| o.reasoning_dialect = ReasoningDialect::Qwen);
    let on = route_b_with(
        &with(
            history_with_thinking(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 3000}),
        ),
        &qwen,
    );
    assert_eq!(
        (on.body["enable_thinking"].clone(), on.body["thinking_budget"].clone()),
        (json!(true), json!(3000))
    );
    assert!(!on.body.contains_key("reasoning_effort"));
    assert_eq!(on.body["messages"][1]["reasoning_content"], "step 1\nstep 2");
    let adaptive = route_b_with(&thinking(json!({"type": "adaptive"})), &qwen).body;
    assert_eq!(adaptive.get("enable_thinking"), Some(&json!(true)));
    assert!(!adaptive.contains_key("thinking_budget"));
    let off = route_b_with(&thinking(json!({"type": "disabled"})), &qwen).body;
    assert_eq!(off.get("enable_thinking"), Some(&json!(false)));
}

#[test]
fn none_dialect_sends_nothing_and_drops_history_thinking() {
    let none = options(|o| o.reasoning_dialect = ReasoningDialect::None);
    let converted = route_b_with(
        &with(
            history_with_thinking(),
            "thinking",
            json!({"type": "enabled", "budget_tokens": 3000}),
        ),
        &none,
    );
    for key in ["reasoning_effort", "thinking", "enable_thinking"] {
        assert!(!converted.body.contains_key(key), "{key}");
    }
    assert!(!converted.facts.thinking_enabled);
    assert!(converted.body["messages"][1].get("reasoning_content").is_none());
}

// ---- §1.2.7 prompt caching ---------------------------------------------------------------------------

fn cached_request() -> Value {
    json!({"model": "m", "max_tokens": 10, "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                                         {"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}, "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "text", "text": "r", "cache_control": {"type": "ephemeral"}}]}]}]})
}

#[test]
fn cache_control_is_removed_everywhere_by_default() {
    let out = route_b(&cached_request());
    assert!(!out.to_string().contains("cache_control"), "{out}");
    assert_eq!(out["messages"][1], json!({"role": "user", "content": "doc\n\nq"}));
}

#[test]
fn forward_cache_control_keeps_ephemeral_markers_on_content_parts() {
    let out = route_b_with(&cached_request(), &options(|o| o.forward_cache_control = true)).body;
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]})
    );
    assert_eq!(
        out["messages"][1],
        json!({"role": "user", "content": [
            {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "q"}]})
    );
    assert!(out["tools"][0].get("cache_control").is_none() && !out.contains_key("cache_control"));
}

// ---- §1.2.9 ids --------------------------------------------------------------------------------------

#[test]
fn ids_longer_than_openai_allows_are_replaced_consistently() {
    let long_id = format!("toolu_{}", "x".repeat(60));
    let body = request(json!([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": long_id, "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": long_id, "content": "r"}]}
    ]));
    let out = route_b(&body);
    let call_id = out["messages"][1]["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("call_") && call_id.len() <= 40, "{call_id}");
    assert_eq!(out["messages"][2]["tool_call_id"], json!(call_id));
}

// ---- §1.2.10 rejected requests ----------------------------------------------------------------------

#[test]
fn files_api_sources_url_documents_and_bad_max_tokens_are_rejected() {
    let cases = [
        (
            user_blocks(json!([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}])),
            "messages[0].content[0].source.type",
        ),
        (
            user_blocks(json!([{"type": "document", "source": {"type": "file", "file_id": "file_1"}}])),
            "messages[0].content[0].source.type",
        ),
        (
            user_blocks(json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}])),
            "messages[0].content[0].source.type",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}]}),
            "max_tokens",
        ),
        (with(hello(), "max_tokens", json!(-1)), "max_tokens"),
        (with(hello(), "max_tokens", json!(1.5)), "max_tokens"),
        (with(hello(), "max_tokens", json!("100")), "max_tokens"),
        (request(json!([])), "messages"),
        (json!({"model": "m", "max_tokens": 1}), "messages"),
    ];
    for (body, param) in cases {
        assert_eq!(route_b_error(&body).param.as_deref(), Some(param), "{body}");
    }
    let nested = after_call(json!([{"type": "tool_result", "tool_use_id": "a",
        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]));
    assert_eq!(
        route_b_error(&nested).param.as_deref(),
        Some("messages[2].content[0].content[0].source.type")
    );
}

#[test]
fn malformed_requests_name_the_offending_field() {
    let cases = [
        (request(json!([{"role": "user"}])), "messages[0].content"),
        (request(json!([{"role": "robot", "content": "x"}])), "messages[0].role"),
        (request(json!([{"role": "user", "content": 7}])), "messages[0].content"),
        (
            request(json!([{"role": "user", "content": [{"text": "no type"}]}])),
            "messages[0].content[0].type",
        ),
        (
            request(json!([{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}])),
            "messages[0].content[0].id",
        ),
        (with(hello(), "tools", json!([{"input_schema": {}}])), "tools[0].name"),
        (with(hello(), "system", json!(5)), "system"),
        (with(hello(), "thinking", json!({"type": "sometimes"})), "thinking.type"),
        (
            with(
                with(hello(), "tools", json!([{"name": "f"}])),
                "tool_choice",
                json!({"type": "maybe"}),
            ),
            "tool_choice.type",
        ),
    ];
    for (body, param) in cases {
        assert_eq!(route_b_error(&body).param.as_deref(), Some(param), "{body}");
    }
}
