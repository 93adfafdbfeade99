//! Converters never panic, whatever the client sends: every node of rich fixtures is replaced by values of
//! every JSON type (and every object key removed), and each variant goes through all request converters.

use serde_json::{Value, json};

use super::context;
use super::{anthropic_to_openai, openai_to_anthropic};
use crate::protocol::convert::request::anthropic_same_protocol_fixups;
use crate::protocol::convert::token_count::estimate_anthropic_input_tokens;
use crate::protocol::convert::{ModelOptions, ReasoningDialect, ThinkingMode};

fn rich_openai() -> Value {
    json!({"model": "m", "max_completion_tokens": 100, "temperature": 1.5, "top_p": 0.9, "stop": ["x", ""],
        "stream": true, "stream_options": {"include_usage": true}, "reasoning_effort": "high", "user": "u",
        "parallel_tool_calls": false, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}},
        "functions": [{"name": "g"}], "function_call": {"name": "g"},
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "d", "prompt_cache_breakpoint": {"mode": "explicit"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "t"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "file", "file": {"file_data": "data:text/plain;base64,aGk=", "filename": "a.txt"}}]},
            {"role": "assistant", "content": "a", "reasoning_content": "r", "reasoning_signature": "s", "refusal": "no",
             "tool_calls": [{"id": "c.1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
             "function_call": {"name": "g", "arguments": "[]"}},
            {"role": "tool", "tool_call_id": "c.1", "content": [{"type": "text", "text": "ok"}]},
            {"role": "function", "name": "g", "content": "v"},
            {"role": "assistant", "content": "prefill "}]})
}

fn rich_anthropic() -> Value {
    json!({"model": "m", "max_tokens": 64000, "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stream": true,
        "stop_sequences": ["a"], "metadata": {"user_id": "u"}, "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "thinking": {"type": "enabled", "budget_tokens": 60000}, "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {}}},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "t", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"}},
                {"type": "document", "title": "d", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
                {"type": "search_result", "title": "r", "source": "s", "content": [{"type": "text", "text": "x"}]},
                {"type": "mid_conv_system", "content": [{"type": "text", "text": "m"}]}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "p", "signature": "llmr1.x"},
                {"type": "redacted_thinking", "data": "d"},
                {"type": "text", "text": "a"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"_raw_arguments": "{"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": [
                {"type": "text", "text": "r"}, {"type": "tool_reference", "tool_name": "g"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]}]},
            {"role": "system", "content": "late"}]})
}

/// Every variant of `root` with one node replaced or one key removed.
fn mutations(root: &Value) -> Vec<Value> {
    let replacements = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("llmr1."),
        json!([]),
        json!({}),
        json!([null]),
        json!({"type": "text"}),
    ];
    let mut out = Vec::new();
    let mut pointers = Vec::new();
    collect_pointers(root, String::new(), &mut pointers);
    for pointer in &pointers {
        for replacement in &replacements {
            let mut variant = root.clone();
            if let Some(node) = variant.pointer_mut(pointer) {
                *node = replacement.clone();
                out.push(variant);
            }
        }
        if let Some((parent, key)) = pointer.rsplit_once('/') {
            let mut variant = root.clone();
            if let Some(Value::Object(obj)) = variant.pointer_mut(parent) {
                obj.remove(key);
                out.push(variant);
            }
        }
    }
    out
}

fn collect_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (key, child) in obj {
                collect_pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    if !at.is_empty() {
        out.push(at);
    }
}

#[test]
fn no_input_makes_a_converter_panic() {
    let deployments = [
        ModelOptions::default(),
        ModelOptions {
            max_output_tokens: Some(1000),
            thinking_mode: ThinkingMode::Adaptive,
            reasoning_dialect: ReasoningDialect::Deepseek,
            supports_top_k: true,
            sampling_exclusive: true,
            supports_output_format: false,
            forward_cache_control: true,
            ..ModelOptions::default()
        },
        ModelOptions {
            reasoning_dialect: ReasoningDialect::Qwen,
            ..ModelOptions::default()
        },
    ];
    let mut runs = 0;
    for fixture in [rich_openai(), rich_anthropic()] {
        let variants = mutations(&fixture);
        assert!(variants.len() > 300, "{}", variants.len());
        for variant in variants.iter().chain([&fixture, &Value::Null, &json!([]), &json!("x")]) {
            let bytes = variant.to_string();
            for options in &deployments {
                let ctx = context(options, "up");
                let _ = openai_to_anthropic(bytes.as_bytes(), &ctx);
                let _ = anthropic_to_openai(bytes.as_bytes(), &ctx);
                let _ = anthropic_same_protocol_fixups(bytes.as_bytes(), options);
                runs += 1;
            }
            let _ = estimate_anthropic_input_tokens(variant, 1.15);
        }
    }
    // The unmutated fixtures themselves are valid requests.
    let ctx = context(&deployments[0], "up");
    assert!(openai_to_anthropic(rich_openai().to_string().as_bytes(), &ctx).is_ok());
    assert!(anthropic_to_openai(rich_anthropic().to_string().as_bytes(), &ctx).is_ok());
    assert!(runs > 1000);
}

#[test]
fn truncated_bodies_are_errors_not_panics() {
    for fixture in [rich_openai(), rich_anthropic()] {
        let bytes = fixture.to_string().into_bytes();
        let options = ModelOptions {
            max_output_tokens: Some(10),
            ..ModelOptions::default()
        };
        let ctx = context(&options, "up");
        for end in (0..bytes.len()).step_by(7) {
            let prefix = &bytes[..end];
            assert!(openai_to_anthropic(prefix, &ctx).is_err());
            assert!(anthropic_to_openai(prefix, &ctx).is_err());
            assert_eq!(anthropic_same_protocol_fixups(prefix, &options), None);
        }
    }
}
