//! Whole answers converted between Chat Completions and Messages through the hub (Routes A and B of
//! `shared/protocol-conversion.md` §2), one test per table row or rule.

use serde_json::{Value, json};

use super::test_support::{SIGNING_KEY, ctx};
use super::{ConvertContext, ConvertError, RequestFacts};
use crate::protocol::Protocol;
use crate::protocol::convert::ids::ToolNameMap;
use crate::protocol::convert::signature::mint_thinking_signature;
use crate::protocol::hub::convert_answer;

/// Route A: an Anthropic answer for a Chat client.
fn anthropic_to_openai(body: &[u8], ctx: &ConvertContext, facts: &RequestFacts) -> Result<Vec<u8>, ConvertError> {
    convert_answer(Protocol::OpenAi, Protocol::Anthropic, body, ctx, facts)
}

/// Route B: a Chat answer for an Anthropic client.
fn openai_to_anthropic(body: &[u8], ctx: &ConvertContext, facts: &RequestFacts) -> Result<Vec<u8>, ConvertError> {
    convert_answer(Protocol::Anthropic, Protocol::OpenAi, body, ctx, facts)
}

// ----- Route A -----

fn ant_message(content: Value, stop_reason: Value, usage: Value) -> Value {
    json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-upstream",
        "content":content,"stop_reason":stop_reason,"stop_sequence":null,"usage":usage})
}

fn base_usage() -> Value {
    json!({"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":15})
}

fn to_openai(message: &Value, facts: &RequestFacts) -> Value {
    let body = anthropic_to_openai(message.to_string().as_bytes(), &ctx(), facts).unwrap();
    let completion: Value = serde_json::from_slice(&body).unwrap();
    // §2.4 invariant on every fixture: prompt_tokens counts cached and written tokens.
    let usage = &message["usage"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    assert_eq!(
        n(&completion["usage"]["prompt_tokens"]),
        n(&usage["input_tokens"]) + n(&usage["cache_read_input_tokens"]) + n(&usage["cache_creation_input_tokens"])
    );
    assert_eq!(
        n(&completion["usage"]["total_tokens"]),
        n(&completion["usage"]["prompt_tokens"]) + n(&completion["usage"]["completion_tokens"])
    );
    completion
}

#[test]
fn route_a_text_response_has_every_field() {
    let message = ant_message(
        json!([{"type":"text","text":"Hello","citations":[{"type":"char_location","cited_text":"x"}]}]),
        json!("end_turn"),
        base_usage(),
    );
    let completion = to_openai(&message, &RequestFacts::default());
    assert_eq!(
        completion,
        json!({"id":"chatcmpl-msg_01","object":"chat.completion","created":1_700_000_000,"model":"client-model",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello","refusal":null},
                "logprobs":null,"finish_reason":"stop"}],
            "usage":{"prompt_tokens":135,"completion_tokens":15,"total_tokens":150,
                "prompt_tokens_details":{"cached_tokens":100,"cache_write_tokens":10}}})
    );
}

#[test]
fn route_a_tool_calls_reasoning_and_signature() {
    let message = ant_message(
        json!([
            {"type":"thinking","thinking":"Plan A.","signature":"sigA"},
            {"type":"redacted_thinking","data":"opaque"},
            {"type":"thinking","thinking":"Plan B.","signature":"sigB"},
            {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris","days":[1, 2]}},
            {"type":"tool_use","id":"toolu_2","name":"time","input":{}}
        ]),
        json!("tool_use"),
        json!({"input_tokens":5,"output_tokens":7,"output_tokens_details":{"thinking_tokens":4}}),
    );
    let completion = to_openai(&message, &RequestFacts::default());
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let msg = &choice["message"];
    assert_eq!(msg["content"], Value::Null, "null content with tool calls and no text");
    assert_eq!(msg["reasoning_content"], "Plan A.\nPlan B.");
    assert_eq!(msg["reasoning_signature"], "sigB", "last thinking block's signature");
    assert_eq!(
        msg["tool_calls"],
        json!([
            {"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\",\"days\":[1,2]}"}},
            {"id":"toolu_2","type":"function","function":{"name":"time","arguments":"{}"}}
        ])
    );
    // Absent cache fields: cached_tokens 0, cache_write_tokens omitted; thinking tokens reported.
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,
            "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":4}})
    );
}

#[test]
fn route_a_text_joining_rule() {
    let message = ant_message(
        json!([
            {"type":"text","text":"A"},
            {"type":"text","text":"B"},
            {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}},
            {"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},
            {"type":"text","text":""},
            {"type":"text","text":"C"}
        ]),
        json!("end_turn"),
        base_usage(),
    );
    let completion = to_openai(&message, &RequestFacts::default());
    let msg = &completion["choices"][0]["message"];
    assert_eq!(msg["content"], "AB\n\nC");
    assert!(msg.get("tool_calls").is_none(), "server tools are dropped");
    assert!(msg.get("reasoning_content").is_none());
}

#[test]
fn route_a_empty_message_has_empty_string_content() {
    let message = ant_message(json!([]), json!("max_tokens"), base_usage());
    let completion = to_openai(&message, &RequestFacts::default());
    assert_eq!(completion["choices"][0]["message"]["content"], "");
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
}

#[test]
fn route_a_json_output_tool_becomes_content() {
    let message = ant_message(
        json!([{"type":"tool_use","id":"toolu_j","name":"json_output","input":{"answer":42}}]),
        json!("tool_use"),
        base_usage(),
    );
    let facts = RequestFacts {
        json_output_tool: true,
        ..RequestFacts::default()
    };
    let completion = to_openai(&message, &facts);
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["content"], "{\"answer\":42}");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    // Without the fact, a tool named json_output is an ordinary tool call.
    let plain = to_openai(&message, &RequestFacts::default());
    assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn route_a_missing_id_uses_the_injected_one() {
    let mut message = ant_message(json!([{"type":"text","text":"x"}]), json!(null), base_usage());
    message["id"] = json!("");
    let completion = to_openai(&message, &RequestFacts::default());
    assert_eq!(completion["id"], "chatcmpl-resp01");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
}

#[test]
fn route_a_rejects_unusable_bodies() {
    for body in [
        &b"not json"[..],
        b"[1,2]",
        br#"{"type":"error","error":{"type":"api_error"}}"#,
    ] {
        let err = anthropic_to_openai(body, &ctx(), &RequestFacts::default()).unwrap_err();
        assert_eq!(err.code, Some("bad_upstream_response"));
    }
}

#[test]
fn stop_reason_to_finish_reason_table() {
    for (stop_reason, finish) in [
        (json!("end_turn"), "stop"),
        (json!("stop_sequence"), "stop"),
        (json!("max_tokens"), "length"),
        (json!("model_context_window_exceeded"), "length"),
        (json!("tool_use"), "tool_calls"),
        (json!("pause_turn"), "stop"),
        (json!("refusal"), "content_filter"),
        (Value::Null, "stop"),
        (json!("brand_new_reason"), "stop"),
    ] {
        let message = ant_message(
            json!([{"type": "text", "text": "x"}]),
            stop_reason.clone(),
            base_usage(),
        );
        let completion = to_openai(&message, &RequestFacts::default());
        assert_eq!(completion["choices"][0]["finish_reason"], finish, "{stop_reason}");
    }
}

// ----- Route B -----

fn oai_completion(message: Value, finish_reason: Value, usage: Value) -> Value {
    json!({"id":"chatcmpl-9xY_z","object":"chat.completion","created":1,"model":"gpt-upstream",
        "choices":[{"index":0,"message":message,"logprobs":null,"finish_reason":finish_reason}],"usage":usage})
}

fn base_oai_usage() -> Value {
    json!({"prompt_tokens":1200,"completion_tokens":80,"total_tokens":1280,
        "prompt_tokens_details":{"cached_tokens":1000}})
}

fn to_anthropic(completion: &Value, facts: &RequestFacts) -> Value {
    let body = openai_to_anthropic(completion.to_string().as_bytes(), &ctx(), facts).unwrap();
    let message: Value = serde_json::from_slice(&body).unwrap();
    // §2.4 invariant on every fixture.
    let u = &message["usage"];
    if let Some(prompt) = completion["usage"]["prompt_tokens"].as_u64() {
        assert_eq!(
            u["input_tokens"].as_u64().unwrap()
                + u["cache_read_input_tokens"].as_u64().unwrap()
                + u["cache_creation_input_tokens"].as_u64().unwrap(),
            prompt
        );
    }
    message
}

#[test]
fn route_b_text_response_has_every_field() {
    let completion = oai_completion(
        json!({"role":"assistant","content":"Hello","refusal":null}),
        json!("stop"),
        base_oai_usage(),
    );
    assert_eq!(
        to_anthropic(&completion, &RequestFacts::default()),
        json!({"id":"msg_chatcmpl9xYz","type":"message","role":"assistant","model":"client-model",
            "content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":200,"cache_creation_input_tokens":0,"cache_read_input_tokens":1000,"output_tokens":80}})
    );
}

#[test]
fn route_b_block_order_signatures_tool_ids_names_and_inputs() {
    let completion = oai_completion(
        json!({"role":"assistant","reasoning_content":"Think.","content":"Calling tools.","tool_calls":[
            {"id":"functions.Bash:0","type":"function","function":{"name":"Bash","arguments":"{\"command\":\"ls\"}"}},
            {"id":"call_2","type":"function","function":{"name":"mcp__s__short_abcd1234","arguments":""}},
            {"id":"call_3","type":"function","function":{"name":"broken","arguments":"{\"a\":"}},
            {"id":"call_4","type":"function","function":{"name":"arr","arguments":"[1]"}},
            {"type":"function","function":{"name":"noid","arguments":"{}"}},
            {"id":"call_6","type":"function","function":{"arguments":"{}"}}
        ]}),
        json!("stop"),
        json!({"prompt_tokens":30,"completion_tokens":20,"completion_tokens_details":{"reasoning_tokens":12}}),
    );
    let facts = RequestFacts {
        tool_names: ToolNameMap::from_renamed([("mcp__s__short_abcd1234", "mcp__server__original_long_tool_name")]),
        ..RequestFacts::default()
    };
    let message = to_anthropic(&completion, &facts);
    let content = message["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type":"thinking","thinking":"Think.","signature":mint_thinking_signature(SIGNING_KEY, "Think.")})
    );
    assert_eq!(content[1], json!({"type":"text","text":"Calling tools."}));
    assert_eq!(
        content[2],
        json!({"type":"tool_use","id":"functions_Bash_0","name":"Bash","input":{"command":"ls"}})
    );
    assert_eq!(content[3]["name"], "mcp__server__original_long_tool_name");
    assert_eq!(content[3]["input"], json!({}), "empty arguments are {{}}");
    assert_eq!(content[4]["input"], json!({"_raw_arguments":"{\"a\":"}));
    assert_eq!(content[5]["input"], json!({"_raw_arguments":"[1]"}));
    assert!(content[6]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(content.len(), 7, "a tool call without a name is dropped");
    assert_eq!(message["stop_reason"], "tool_use", "stop with tool calls is tool_use");
    assert_eq!(
        message["usage"],
        json!({"input_tokens":30,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
            "output_tokens":20,"output_tokens_details":{"thinking_tokens":12}})
    );
}

#[test]
fn route_b_reasoning_field_refusal_and_blank_content() {
    let completion = oai_completion(
        json!({"role":"assistant","reasoning":"Hmm.","content":"  \n","refusal":"I can't do that."}),
        json!("stop"),
        base_oai_usage(),
    );
    let message = to_anthropic(&completion, &RequestFacts::default());
    assert_eq!(message["content"][0]["thinking"], "Hmm.");
    assert_eq!(message["content"][1], json!({"type":"text","text":"I can't do that."}));
    assert_eq!(message["content"].as_array().unwrap().len(), 2, "blank text dropped");
    assert_eq!(message["stop_reason"], "refusal");
}

#[test]
fn route_b_content_parts_and_no_usage() {
    let completion = json!({"id":"","choices":[{"index":0,"finish_reason":"length",
        "message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]});
    let facts = RequestFacts {
        input_tokens_estimate: 321,
        ..RequestFacts::default()
    };
    let message = to_anthropic(&completion, &facts);
    assert_eq!(message["id"], "msg_resp01", "injected id when the upstream has none");
    assert_eq!(message["content"], json!([{"type":"text","text":"ab"}]));
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["input_tokens"], 321);
}

#[test]
fn route_b_stop_sequence_from_vllm_stop_reason() {
    let mut completion = oai_completion(json!({"content":"x"}), json!("stop"), base_oai_usage());
    completion["choices"][0]["stop_reason"] = json!("###");
    let facts = RequestFacts {
        stop_sequences: vec!["###".into()],
        ..RequestFacts::default()
    };
    let message = to_anthropic(&completion, &facts);
    assert_eq!(message["stop_reason"], "stop_sequence");
    assert_eq!(message["stop_sequence"], "###");
    // A stop token id or a string the client did not ask for is not a stop sequence.
    completion["choices"][0]["stop_reason"] = json!(151643);
    assert_eq!(to_anthropic(&completion, &facts)["stop_reason"], "end_turn");
    completion["choices"][0]["stop_reason"] = json!("other");
    assert_eq!(to_anthropic(&completion, &facts)["stop_sequence"], Value::Null);
}

#[test]
fn route_b_cache_writes_and_deepseek_cache_hits() {
    let completion = oai_completion(
        json!({"content":"x"}),
        json!("stop"),
        json!({"prompt_tokens":500,"completion_tokens":1,
            "prompt_tokens_details":{"cached_tokens":300,"cache_write_tokens":150}}),
    );
    let u = &to_anthropic(&completion, &RequestFacts::default())["usage"];
    assert_eq!(
        (
            u["input_tokens"].as_u64(),
            u["cache_read_input_tokens"].as_u64(),
            u["cache_creation_input_tokens"].as_u64()
        ),
        (Some(50), Some(300), Some(150))
    );
    let deepseek = oai_completion(
        json!({"content":"x"}),
        json!("stop"),
        json!({"prompt_tokens":400,"completion_tokens":1,"prompt_cache_hit_tokens":384,"prompt_cache_miss_tokens":16}),
    );
    let u = &to_anthropic(&deepseek, &RequestFacts::default())["usage"];
    assert_eq!(u["input_tokens"], 16);
    assert_eq!(u["cache_read_input_tokens"], 384);
}

#[test]
fn route_b_rejects_unusable_bodies() {
    for body in [
        &br#"{"id":"x","choices":[]}"#[..],
        br#"{"id":"x"}"#,
        b"<html>bad gateway</html>",
        br#"{"error":{"message":"boom"}}"#,
    ] {
        let err = openai_to_anthropic(body, &ctx(), &RequestFacts::default()).unwrap_err();
        assert_eq!(
            err.code,
            Some("bad_upstream_response"),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn finish_reason_to_stop_reason_table() {
    for (finish, tool, refusal, seq, expected) in [
        (json!("stop"), true, false, false, "tool_use"),
        (json!("length"), true, false, false, "tool_use"),
        (Value::Null, true, false, false, "tool_use"),
        (json!("stop"), false, false, true, "stop_sequence"),
        (json!("stop"), false, false, false, "end_turn"),
        (json!("length"), false, false, false, "max_tokens"),
        (json!("tool_calls"), true, false, false, "tool_use"),
        (json!("tool_calls"), false, false, false, "end_turn"),
        (json!("function_call"), false, false, false, "end_turn"),
        (json!("content_filter"), false, false, false, "refusal"),
        (json!("stop"), false, true, false, "refusal"),
        (Value::Null, false, false, false, "end_turn"),
        (json!("eos"), false, false, false, "end_turn"),
    ] {
        let mut message = json!({"role": "assistant", "content": "x"});
        if tool {
            message["tool_calls"] =
                json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
        }
        if refusal {
            message["refusal"] = json!("No.");
        }
        let mut completion = oai_completion(message, finish.clone(), base_oai_usage());
        let mut facts = RequestFacts::default();
        if seq {
            completion["choices"][0]["stop_reason"] = json!("###");
            facts.stop_sequences = vec!["###".into()];
        }
        let answer = to_anthropic(&completion, &facts);
        assert_eq!(answer["stop_reason"], expected, "{finish} {tool} {refusal} {seq}");
    }
}

// ----- ids -----

#[test]
fn tool_ids_are_sanitised_deduplicated_and_minted() {
    let call = |id: Value| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let completion = oai_completion(
        json!({"role": "assistant", "content": null,
            "tool_calls": [call(json!("a.b")), call(json!("a:b")), call(Value::Null), call(json!(""))]}),
        json!("tool_calls"),
        base_oai_usage(),
    );
    let answer = to_anthropic(&completion, &RequestFacts::default());
    let ids: Vec<&str> = answer["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "a_b");
    assert!(ids[1].starts_with("a_b_") && ids[1].len() == 10, "{}", ids[1]);
    assert!(ids[2].starts_with("toolu_") && ids[2].len() == 30, "{}", ids[2]);
    assert_ne!(ids[2], ids[3], "each id-less call gets its own id");
    let again = to_anthropic(&completion, &RequestFacts::default());
    assert_eq!(again["content"][2]["id"], ids[2], "deterministic");
}

#[test]
fn response_ids() {
    let text = json!([{"type": "text", "text": "x"}]);
    let mut message = ant_message(text.clone(), json!("end_turn"), base_usage());
    message["id"] = json!("msg_1");
    assert_eq!(to_openai(&message, &RequestFacts::default())["id"], "chatcmpl-msg_1");
    message["id"] = Value::Null;
    let minted = to_openai(&message, &RequestFacts::default());
    assert!(
        minted["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{}",
        minted["id"]
    );
    let answer_id = |id: Value| {
        let mut completion = oai_completion(
            json!({"role": "assistant", "content": "x"}),
            json!("stop"),
            base_oai_usage(),
        );
        completion["id"] = id;
        to_anthropic(&completion, &RequestFacts::default())["id"].clone()
    };
    assert_eq!(answer_id(json!("chatcmpl-A.b_c")), "msg_chatcmplAbc");
    let fallback = answer_id(json!("---"));
    assert!(
        fallback.as_str().unwrap().starts_with("msg_") && fallback != "msg_",
        "{fallback}"
    );
}
