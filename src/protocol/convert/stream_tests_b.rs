//! Route B streams through the hub: a Chat upstream's chunks for an Anthropic client
//! (`shared/protocol-conversion.md` §3), fed whole, byte by byte and at random split points, each checked
//! by the Messages grammar and against the whole answer for the same upstream data.

use crate::protocol::Protocol;
use crate::protocol::convert::RequestFacts;
use crate::protocol::convert::signature::mint_thinking_signature;
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::convert_stream;
use crate::protocol::sse::SseEvent;

use serde_json::{Value, json};

use crate::protocol::convert::ids::ToolNameMap;
use crate::protocol::convert::test_support::{
    AnthropicResult, SIGNING_KEY, check_anthropic, converted, ctx, data_values, has_multibyte, oai,
};

/// The whole answer (through the hub) that the stream must agree with.
fn openai_to_anthropic(
    body: &[u8],
    ctx: &crate::protocol::convert::ConvertContext,
    facts: &RequestFacts,
) -> Result<Vec<u8>, crate::protocol::convert::ConvertError> {
    use crate::protocol::Protocol;
    crate::protocol::hub::convert_answer(Protocol::Anthropic, Protocol::OpenAi, body, ctx, facts)
}

fn facts() -> RequestFacts {
    RequestFacts {
        input_tokens_estimate: 42,
        ..RequestFacts::default()
    }
}

/// Runs the Route B converter over `input` at every kind of split, checks the ANT grammar, and returns
/// the bytes with what a client rebuilds from them.
fn run(facts: &RequestFacts, input: &str) -> (Vec<u8>, AnthropicResult) {
    let make = || convert_stream(Protocol::Anthropic, Protocol::OpenAi, &ctx(), facts.clone());
    let out = converted(&make, input);
    let result = check_anthropic(&out);
    (out, result)
}

fn chunk(delta: Value, finish_reason: Value) -> String {
    oai(
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up",
        "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish_reason}]}),
    )
}

fn delta(delta: Value) -> String {
    chunk(delta, Value::Null)
}

fn finish(reason: &str) -> String {
    chunk(json!({}), json!(reason))
}

fn usage_chunk(usage: Value) -> String {
    oai(
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"up",
        "choices":[],"usage":usage}),
    )
}

fn tool(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut function = json!({"arguments": args});
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    let mut call = json!({"index": index, "function": function});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    json!({"tool_calls":[call]})
}

const DONE: &str = "data: [DONE]\n\n";

fn start(input: u64) -> Value {
    json!({"type":"message_start","message":{"id":"msg_chatcmpl1","type":"message","role":"assistant",
        "model":"client-model","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":input,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})
}
fn text_start(i: u64) -> Value {
    json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}})
}
fn thinking_start(i: u64) -> Value {
    json!({"type":"content_block_start","index":i,"content_block":{"type":"thinking","thinking":"","signature":""}})
}
fn tool_start(i: u64, id: &str, name: &str) -> Value {
    json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}})
}
fn text(i: u64, t: &str) -> Value {
    json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":t}})
}
fn thinking(i: u64, t: &str) -> Value {
    json!({"type":"content_block_delta","index":i,"delta":{"type":"thinking_delta","thinking":t}})
}
fn signature(i: u64, signed_text: &str) -> Value {
    let sig = mint_thinking_signature(SIGNING_KEY, signed_text);
    json!({"type":"content_block_delta","index":i,"delta":{"type":"signature_delta","signature":sig}})
}
fn partial(i: u64, p: &str) -> Value {
    json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":p}})
}
fn stop(i: u64) -> Value {
    json!({"type":"content_block_stop","index":i})
}
fn message_delta(reason: &str, usage: Value) -> Value {
    json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":usage})
}
fn usage(input: u64, read: u64, write: u64, output: u64) -> Value {
    json!({"input_tokens":input,"cache_creation_input_tokens":write,"cache_read_input_tokens":read,"output_tokens":output})
}
fn message_stop() -> Value {
    json!({"type":"message_stop"})
}
fn error(kind: &str, message: &str) -> Value {
    json!({"type":"error","error":{"type":kind,"message":message},"request_id":null})
}

fn assert_usage_invariant(result: &AnthropicResult, prompt_tokens: u64) {
    let u = &result.message["usage"];
    let sum = u["input_tokens"].as_u64().unwrap()
        + u["cache_read_input_tokens"].as_u64().unwrap()
        + u["cache_creation_input_tokens"].as_u64().unwrap();
    assert_eq!(
        sum, prompt_tokens,
        "input + cache_read + cache_creation == prompt_tokens"
    );
}

#[test]
fn text_only() {
    let input = [
        delta(json!({"role":"assistant","content":""})),
        delta(json!({"content":"Hel"})),
        delta(json!({"content":"lo, héllo 你好 🎉"})),
        finish("stop"),
        usage_chunk(json!({"prompt_tokens":9,"completion_tokens":12,"total_tokens":21})),
        DONE.into(),
    ]
    .concat();
    assert!(has_multibyte(&input));
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            text_start(0),
            text(0, "Hel"),
            text(0, "lo, héllo 你好 🎉"),
            stop(0),
            message_delta("end_turn", usage(9, 0, 0, 12)),
            message_stop(),
        ]
    );
    assert_eq!(
        result.message["content"],
        json!([{"type":"text","text":"Hello, héllo 你好 🎉"}])
    );
    assert_usage_invariant(&result, 9);
}

#[test]
fn thinking_then_text_from_reasoning_content() {
    let input = [
        delta(json!({"role":"assistant","content":null,"reasoning_content":""})),
        delta(json!({"reasoning_content":"Let me "})),
        delta(json!({"reasoning_content":"think → ok"})),
        delta(json!({"content":"\n\n"})),
        delta(json!({"content":"Answer"})),
        finish("stop"),
        usage_chunk(json!({"prompt_tokens":50,"completion_tokens":30,
            "prompt_tokens_details":{"cached_tokens":40},"completion_tokens_details":{"reasoning_tokens":20}})),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    let mut final_usage = usage(10, 40, 0, 30);
    final_usage["output_tokens_details"] = json!({"thinking_tokens":20});
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            thinking_start(0),
            thinking(0, "Let me "),
            thinking(0, "think → ok"),
            signature(0, "Let me think → ok"),
            stop(0),
            text_start(1),
            text(1, "\n\nAnswer"),
            stop(1),
            message_delta("end_turn", final_usage),
            message_stop(),
        ]
    );
    assert_usage_invariant(&result, 50);
}

#[test]
fn reasoning_field_of_openrouter_and_vllm_is_thinking_too() {
    // vLLM may send both fields with the same text; it must appear once.
    let input = [
        delta(json!({"reasoning":"Plan","reasoning_content":"Plan"})),
        delta(json!({"reasoning":" more"})),
        delta(json!({"content":"Done"})),
        finish("stop"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    let content = &result.message["content"];
    assert_eq!(content[0]["type"], "thinking");
    assert_eq!(content[0]["thinking"], "Plan more");
    assert_eq!(
        content[0]["signature"],
        mint_thinking_signature(SIGNING_KEY, "Plan more")
    );
    assert_eq!(content[1], json!({"type":"text","text":"Done"}));
}

#[test]
fn text_tool_text() {
    let input = [
        delta(json!({"role":"assistant","content":"Let me check."})),
        delta(tool(0, Some("call_a"), Some("weather"), "")),
        delta(tool(0, None, None, "{\"city\":")),
        delta(tool(0, None, None, "\"Paris\"}")),
        delta(json!({"content":"Checking now."})),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            text_start(0),
            text(0, "Let me check."),
            stop(0),
            tool_start(1, "call_a", "weather"),
            partial(1, "{\"city\":"),
            partial(1, "\"Paris\"}"),
            stop(1),
            text_start(2),
            text(2, "Checking now."),
            stop(2),
            message_delta("tool_use", usage(42, 0, 0, 0)),
            message_stop(),
        ]
    );
    assert_eq!(result.message["content"][1]["input"], json!({"city":"Paris"}));
}

#[test]
fn three_parallel_tool_calls_with_fragmented_arguments() {
    let mut parts = vec![delta(json!({"role":"assistant","content":null}))];
    for (i, city) in ["Paris", "Rome", "Kraków"].iter().enumerate() {
        let i = i as u64;
        parts.push(delta(tool(i, Some(&format!("call_{i}")), Some("weather"), "")));
        parts.push(delta(tool(i, None, None, "{\"ci")));
        parts.push(delta(tool(i, None, None, "ty\": \"")));
        parts.push(delta(tool(i, None, None, &format!("{city}\"}}"))));
    }
    parts.push(finish("tool_calls"));
    parts.push(usage_chunk(
        json!({"prompt_tokens":100,"completion_tokens":60,"total_tokens":160}),
    ));
    parts.push(DONE.into());
    let (out, result) = run(&facts(), &parts.concat());
    let events = data_values(&out);
    assert_eq!(events[1], tool_start(0, "call_0", "weather"));
    assert_eq!(events[2], partial(0, "{\"ci"));
    assert_eq!(events[6], tool_start(1, "call_1", "weather"));
    assert_eq!(events[11], tool_start(2, "call_2", "weather"));
    assert_eq!(events.len(), 18);
    let inputs: Vec<&Value> = result.message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["input"])
        .collect();
    assert_eq!(
        inputs,
        [
            &json!({"city":"Paris"}),
            &json!({"city":"Rome"}),
            &json!({"city":"Kraków"})
        ]
    );
    assert_eq!(result.message["stop_reason"], "tool_use");
    assert_usage_invariant(&result, 100);
}

#[test]
fn tool_name_split_across_chunks_comes_out_whole() {
    let input = [
        delta(tool(0, Some("call_x"), Some("get_"), "")),
        delta(tool(0, None, Some("weather"), "")),
        delta(tool(0, None, None, "{}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (out, _) = run(&facts(), &input);
    assert_eq!(
        data_values(&out)[1..4],
        [tool_start(0, "call_x", "get_weather"), partial(0, "{}"), stop(0)]
    );
}

#[test]
fn upstream_repeating_id_and_name_on_every_chunk_produces_them_once() {
    let input = [
        delta(tool(0, Some("call_r"), Some("search"), "")),
        delta(tool(0, Some("call_r"), Some("search"), "{\"q\":")),
        delta(tool(0, Some("call_r"), Some("search"), "\"rust\"}")),
        delta(tool(1, Some("call_s"), Some("search"), "{\"q\":\"go\"}")),
        delta(tool(1, Some("call_s"), Some("search"), "")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            tool_start(0, "call_r", "search"),
            partial(0, "{\"q\":"),
            partial(0, "\"rust\"}"),
            stop(0),
            tool_start(1, "call_s", "search"),
            partial(1, "{\"q\":\"go\"}"),
            stop(1),
            message_delta("tool_use", usage(42, 0, 0, 0)),
            message_stop(),
        ]
    );
    assert_eq!(result.message["content"][1]["input"], json!({"q":"go"}));
}

#[test]
fn host_reusing_index_zero_with_new_ids_gets_separate_blocks() {
    let input = [
        delta(tool(0, Some("call_1"), Some("a"), "{\"x\":1}")),
        delta(tool(0, Some("call_2"), Some("b"), "{\"y\":2}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    let content = &result.message["content"];
    assert_eq!(content[0]["name"], "a");
    assert_eq!(content[1]["name"], "b");
    assert_eq!(content[1]["input"], json!({"y":2}));
}

#[test]
fn usage_only_final_chunk_sets_cumulative_usage() {
    let input = [
        delta(json!({"content":"Hi"})),
        finish("length"),
        usage_chunk(json!({"prompt_tokens":1200,"completion_tokens":5,"total_tokens":1205,
            "prompt_tokens_details":{"cached_tokens":1000,"cache_write_tokens":150}})),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        *data_values(&out).iter().rev().nth(1).unwrap(),
        message_delta("max_tokens", usage(50, 1000, 150, 5))
    );
    assert_usage_invariant(&result, 1200);
}

#[test]
fn deepseek_cache_hit_tokens_count_as_cache_reads() {
    let input = [
        delta(json!({"content":"Hi"})),
        finish("stop"),
        usage_chunk(json!({"prompt_tokens":300,"completion_tokens":2,"prompt_cache_hit_tokens":256,"prompt_cache_miss_tokens":44})),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    assert_eq!(result.message["usage"]["cache_read_input_tokens"], 256);
    assert_usage_invariant(&result, 300);
}

#[test]
fn usage_on_the_first_chunk_replaces_the_estimate_in_message_start() {
    let first = oai(
        json!({"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],
        "usage":{"prompt_tokens":77,"completion_tokens":0}}),
    );
    let input = [first, delta(json!({"content":"ok"})), finish("stop"), DONE.into()].concat();
    let (out, _) = run(&facts(), &input);
    assert_eq!(data_values(&out)[0], start(77));
}

#[test]
fn done_without_finish_reason_ends_normally() {
    let input = [delta(json!({"content":"partial but complete"})), DONE.into()].concat();
    let (out, result) = run(&facts(), &input);
    assert!(result.error.is_none());
    assert_eq!(
        data_values(&out)[3..],
        [stop(0), message_delta("end_turn", usage(42, 0, 0, 0)), message_stop()]
    );
}

#[test]
fn done_with_nothing_before_it_is_an_upstream_failure() {
    let (out, result) = run(&facts(), DONE);
    assert_eq!(
        data_values(&out),
        vec![error("api_error", "upstream stream ended without a response")]
    );
    assert!(result.message.is_null());
}

#[test]
fn eof_mid_tool_is_an_in_band_error_not_a_normal_end() {
    let input = [
        delta(json!({"content":"Running"})),
        delta(tool(0, Some("call_t"), Some("bash"), "{\"cmd\":")),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            text_start(0),
            text(0, "Running"),
            stop(0),
            tool_start(1, "call_t", "bash"),
            partial(1, "{\"cmd\":"),
            stop(1),
            error("api_error", "upstream stream ended before completion"),
        ]
    );
    assert!(result.error.is_some());
}

#[test]
fn eof_after_finish_reason_without_done_ends_normally() {
    let input = [delta(json!({"content":"ok"})), finish("stop")].concat();
    let (out, result) = run(&facts(), &input);
    assert!(result.error.is_none());
    assert_eq!(*data_values(&out).last().unwrap(), message_stop());
}

#[test]
fn error_event_after_two_deltas() {
    let input = [
        delta(json!({"content":"one "})),
        delta(json!({"content":"two"})),
        oai(
            json!({"error":{"message":"The server is overloaded","type":"server_error","code":"server_is_overloaded"}}),
        ),
        delta(json!({"content":"ignored"})),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(
        data_values(&out),
        vec![
            start(42),
            text_start(0),
            text(0, "one "),
            text(0, "two"),
            stop(0),
            error("overloaded_error", "The server is overloaded"),
        ]
    );
    assert_eq!(result.error.unwrap()["type"], "overloaded_error");
}

#[test]
fn vllm_error_object_mid_stream_maps_by_its_code() {
    let input = [
        delta(json!({"content":"x"})),
        oai(json!({"object":"error","message":"rate limited","type":"RateLimitError","code":429})),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    assert_eq!(result.error.unwrap()["type"], "rate_limit_error");
}

#[test]
fn whitespace_only_content_before_a_tool_call_makes_no_text_block() {
    let input = [
        delta(json!({"content":"\n\n"})),
        delta(json!({"content":" "})),
        delta(tool(0, Some("call_w"), Some("ls"), "")),
        finish("stop"),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(data_values(&out)[1], tool_start(0, "call_w", "ls"));
    // OpenAI answers "stop" with tool calls; any tool call means tool_use (§2.3).
    assert_eq!(result.message["stop_reason"], "tool_use");
    assert_eq!(result.message["content"][0]["input"], json!({}));
}

#[test]
fn kimi_style_tool_ids_are_sanitised_and_missing_ids_minted() {
    let input = [
        delta(tool(0, Some("functions.Bash:0"), Some("Bash"), "{}")),
        delta(tool(1, None, Some("Read"), "{}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    let content = &result.message["content"];
    assert_eq!(content[0]["id"], "functions_Bash_0");
    let minted = content[1]["id"].as_str().unwrap();
    assert!(minted.starts_with("toolu_") && minted.len() == 30, "{minted}");
}

#[test]
fn shortened_tool_names_are_mapped_back() {
    let facts = RequestFacts {
        tool_names: ToolNameMap::from_renamed([("mcp__srv__short_1a2b3c4d", "mcp__srv__a_very_long_name")]),
        ..facts()
    };
    let input = [
        delta(tool(0, Some("c"), Some("mcp__srv__short_1a2b3c4d"), "{}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts, &input);
    assert_eq!(result.message["content"][0]["name"], "mcp__srv__a_very_long_name");
}

#[test]
fn fragments_for_an_already_closed_tool_do_not_reopen_it() {
    let input = [
        delta(tool(0, Some("c0"), Some("a"), "{}")),
        delta(tool(1, Some("c1"), Some("b"), "{}")),
        delta(tool(0, None, None, "{\"late\":1}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (out, result) = run(&facts(), &input);
    assert_eq!(result.message["content"][0]["input"], json!({}));
    assert_eq!(result.message["content"].as_array().unwrap().len(), 2);
    assert_eq!(data_values(&out).len(), 9);
}

#[test]
fn a_tool_call_that_never_gets_a_name_is_dropped() {
    let input = [
        delta(json!({"content":"hi"})),
        delta(tool(0, Some("c"), None, "{}")),
        finish("tool_calls"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    assert_eq!(result.message["content"].as_array().unwrap().len(), 1);
    assert_eq!(result.message["stop_reason"], "end_turn");
}

#[test]
fn refusal_is_text_and_stop_reason_refusal() {
    let input = [
        delta(json!({"refusal":"I can't help with that."})),
        finish("stop"),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    assert_eq!(result.message["content"][0]["text"], "I can't help with that.");
    assert_eq!(result.message["stop_reason"], "refusal");
}

#[test]
fn vllm_stop_reason_string_is_the_matched_stop_sequence() {
    let facts = RequestFacts {
        stop_sequences: vec!["END".into()],
        ..facts()
    };
    let stop_chunk =
        oai(json!({"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}));
    let input = [delta(json!({"content":"a"})), stop_chunk, DONE.into()].concat();
    let (_, result) = run(&facts, &input);
    assert_eq!(result.message["stop_reason"], "stop_sequence");
    assert_eq!(result.message["stop_sequence"], "END");
}

#[test]
fn finish_reason_table_in_streams() {
    for (finish_reason, expected) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "end_turn"),
        ("function_call", "end_turn"),
        ("eos", "end_turn"),
    ] {
        let input = [delta(json!({"content":"a"})), finish(finish_reason), DONE.into()].concat();
        let (_, result) = run(&facts(), &input);
        assert_eq!(result.message["stop_reason"], expected, "{finish_reason}");
    }
}

#[test]
fn transport_failures_and_keep_alive() {
    let mut conv = convert_stream(Protocol::Anthropic, Protocol::OpenAi, &ctx(), facts());
    let mut out = Vec::new();
    conv.keep_alive(&mut out);
    assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    out.clear();
    let status = conv.on_event(
        &SseEvent {
            event: None,
            data: json!({"id":"x","choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}).to_string(),
        },
        &mut out,
    );
    assert_eq!(status, StreamStatus::Continue);
    conv.on_error(StreamFailure::Timeout, "upstream idle for 300 s", &mut out);
    let result = check_anthropic(&out);
    assert_eq!(result.error.unwrap()["type"], "timeout_error");
    // The open thinking block was signed and closed before the error.
    assert_eq!(result.message["content"][0]["thinking"], "hm");
    let len = out.len();
    conv.on_error(StreamFailure::Upstream, "again", &mut out);
    conv.on_eof(&mut out);
    assert_eq!(out.len(), len, "nothing after a terminal error");
}

#[test]
fn invalid_json_event_is_an_in_band_error() {
    let input = [delta(json!({"content":"a"})), "data: {not json\n\n".into()].concat();
    let (_, result) = run(&facts(), &input);
    assert_eq!(result.error.unwrap()["type"], "api_error");
}

/// §7: what an Anthropic client accumulates from the stream equals the non-streaming answer for the same
/// upstream data.
#[test]
fn stream_accumulates_to_the_non_streaming_answer() {
    let input = [
        delta(json!({"role":"assistant","reasoning_content":"Check both"})),
        delta(json!({"content":"Looking up."})),
        delta(tool(0, Some("c0"), Some("weather"), "{\"city\":\"Paris\"}")),
        delta(tool(1, Some("c1"), Some("weather"), "{\"city\":")),
        delta(tool(1, None, None, "\"Rome\"}")),
        finish("tool_calls"),
        usage_chunk(json!({"prompt_tokens":50,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":40}})),
        DONE.into(),
    ]
    .concat();
    let (_, result) = run(&facts(), &input);
    let body = json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up",
        "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
            "reasoning_content":"Check both","content":"Looking up.","tool_calls":[
            {"id":"c0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]}}],
        "usage":{"prompt_tokens":50,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":40}}});
    let message: Value =
        serde_json::from_slice(&openai_to_anthropic(body.to_string().as_bytes(), &ctx(), &facts()).unwrap()).unwrap();
    assert_eq!(result.message, message);
}
