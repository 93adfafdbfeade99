//! Route A streams through the hub: an Anthropic upstream's events for a Chat client
//! (`shared/protocol-conversion.md` §3), fed whole, byte by byte and at random split points, each checked
//! by the Chat grammar and against the whole answer for the same upstream data.

use crate::protocol::Protocol;
use crate::protocol::convert::RequestFacts;
use crate::protocol::convert::stream::{StreamFailure, StreamStatus};
use crate::protocol::hub::convert_stream;
use crate::protocol::sse::SseEvent;

use serde_json::{Value, json};

use crate::protocol::convert::test_support::{
    OpenAiResult, ant, check_openai, converted, ctx, data_values, has_multibyte,
};

/// The whole answer (through the hub) that the stream must agree with.
fn anthropic_to_openai(
    body: &[u8],
    ctx: &crate::protocol::convert::ConvertContext,
    facts: &RequestFacts,
) -> Result<Vec<u8>, crate::protocol::convert::ConvertError> {
    use crate::protocol::Protocol;
    crate::protocol::hub::convert_answer(Protocol::OpenAi, Protocol::Anthropic, body, ctx, facts)
}

fn facts(include_usage: bool) -> RequestFacts {
    RequestFacts {
        include_usage,
        ..RequestFacts::default()
    }
}

/// Runs the Route A converter over `input` at every kind of split, checks the OAI grammar, and returns
/// the bytes with what a client rebuilds from them.
fn run(facts: &RequestFacts, input: &str) -> (Vec<u8>, OpenAiResult) {
    let make = || convert_stream(Protocol::OpenAi, Protocol::Anthropic, &ctx(), facts.clone());
    let out = converted(&make, input);
    let result = check_openai(&out, facts.include_usage);
    (out, result)
}

fn message_start() -> String {
    ant(
        json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant",
        "model":"claude-upstream","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":1}}}),
    )
}
fn block_start(i: u64, block: Value) -> String {
    ant(json!({"type":"content_block_start","index":i,"content_block":block}))
}
fn text_start(i: u64) -> String {
    block_start(i, json!({"type":"text","text":""}))
}
fn thinking_start(i: u64) -> String {
    block_start(i, json!({"type":"thinking","thinking":"","signature":""}))
}
fn tool_start(i: u64, id: &str, name: &str) -> String {
    block_start(i, json!({"type":"tool_use","id":id,"name":name,"input":{}}))
}
fn delta(i: u64, delta: Value) -> String {
    ant(json!({"type":"content_block_delta","index":i,"delta":delta}))
}
fn text(i: u64, t: &str) -> String {
    delta(i, json!({"type":"text_delta","text":t}))
}
fn thinking(i: u64, t: &str) -> String {
    delta(i, json!({"type":"thinking_delta","thinking":t}))
}
fn signature(i: u64) -> String {
    delta(
        i,
        json!({"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxZ"}),
    )
}
fn partial(i: u64, p: &str) -> String {
    delta(i, json!({"type":"input_json_delta","partial_json":p}))
}
fn stop(i: u64) -> String {
    ant(json!({"type":"content_block_stop","index":i}))
}
fn message_delta(reason: &str, output: u64) -> String {
    ant(
        json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":{"output_tokens":output}}),
    )
}
fn message_stop() -> String {
    ant(json!({"type":"message_stop"}))
}
fn ping() -> String {
    ant(json!({"type":"ping"}))
}

/// An expected chunk; `usage: null` is added when the client asked for usage.
fn chunk(include_usage: bool, delta: Value, finish_reason: Value) -> Value {
    let mut chunk = json!({"id":"chatcmpl-msg_01","object":"chat.completion.chunk","created":1_700_000_000,
        "model":"client-model","choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish_reason}]});
    if include_usage {
        chunk["usage"] = Value::Null;
    }
    chunk
}
fn role(u: bool) -> Value {
    chunk(u, json!({"role":"assistant","content":""}), Value::Null)
}
fn content(u: bool, t: &str) -> Value {
    chunk(u, json!({"content":t}), Value::Null)
}
fn reasoning(u: bool, t: &str) -> Value {
    chunk(u, json!({"reasoning_content":t}), Value::Null)
}
fn call_start(u: bool, k: u64, id: &str, name: &str) -> Value {
    chunk(
        u,
        json!({"tool_calls":[{"index":k,"id":id,"type":"function","function":{"name":name,"arguments":""}}]}),
        Value::Null,
    )
}
fn arguments(u: bool, k: u64, a: &str) -> Value {
    chunk(
        u,
        json!({"tool_calls":[{"index":k,"function":{"arguments":a}}]}),
        Value::Null,
    )
}
fn finish(u: bool, reason: &str) -> Value {
    chunk(u, json!({}), json!(reason))
}
fn usage_chunk(prompt: u64, completion: u64, cached: u64, written: u64) -> Value {
    let mut chunk = json!({"id":"chatcmpl-msg_01","object":"chat.completion.chunk","created":1_700_000_000,
        "model":"client-model","choices":[],"usage":{"prompt_tokens":prompt,"completion_tokens":completion,
        "total_tokens":prompt + completion,"prompt_tokens_details":{"cached_tokens":cached}}});
    // Reported only when something was written, as in whole answers.
    if written > 0 {
        chunk["usage"]["prompt_tokens_details"]["cache_write_tokens"] = json!(written);
    }
    chunk
}
fn done() -> Value {
    json!("[DONE]")
}

fn assert_usage_invariant(result: &OpenAiResult, input: u64, read: u64, write: u64) {
    let usage = result.usage.as_ref().expect("usage chunk");
    assert_eq!(usage["prompt_tokens"], input + read + write);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[test]
fn text_only() {
    let input = [
        message_start(),
        text_start(0),
        ping(),
        text(0, "Hel"),
        text(0, "lo, héllo 你好 🎉"),
        stop(0),
        message_delta("end_turn", 15),
        message_stop(),
    ]
    .concat();
    assert!(has_multibyte(&input));
    let (out, result) = run(&facts(true), &input);
    assert_eq!(
        data_values(&out),
        vec![
            role(true),
            content(true, "Hel"),
            content(true, "lo, héllo 你好 🎉"),
            finish(true, "stop"),
            usage_chunk(135, 15, 100, 10),
            done(),
        ]
    );
    assert_eq!(result.content.as_deref(), Some("Hello, héllo 你好 🎉"));
    assert_usage_invariant(&result, 25, 100, 10);
}

#[test]
fn without_include_usage_no_chunk_has_usage() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "Hi"),
        stop(0),
        message_delta("end_turn", 2),
        message_stop(),
    ]
    .concat();
    let (out, result) = run(&facts(false), &input);
    assert_eq!(
        data_values(&out),
        vec![role(false), content(false, "Hi"), finish(false, "stop"), done()]
    );
    assert!(result.usage.is_none());
}

#[test]
fn thinking_then_text() {
    let input = [
        message_start(),
        thinking_start(0),
        thinking(0, "Let me "),
        thinking(0, "think → ok"),
        signature(0),
        stop(0),
        text_start(1),
        text(1, "Answer"),
        stop(1),
        message_delta("end_turn", 40),
        message_stop(),
    ]
    .concat();
    let (out, result) = run(&facts(false), &input);
    assert_eq!(
        data_values(&out),
        vec![
            role(false),
            reasoning(false, "Let me "),
            reasoning(false, "think → ok"),
            content(false, "Answer"),
            finish(false, "stop"),
            done(),
        ]
    );
    assert_eq!(result.reasoning.as_deref(), Some("Let me think → ok"));
}

#[test]
fn text_tool_text() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "Let me check."),
        stop(0),
        tool_start(1, "toolu_a", "weather"),
        partial(1, ""),
        partial(1, "{\"city\":"),
        partial(1, "\"Paris\"}"),
        stop(1),
        text_start(2),
        text(2, "Done."),
        stop(2),
        message_delta("tool_use", 30),
        message_stop(),
    ]
    .concat();
    let (out, result) = run(&facts(true), &input);
    assert_eq!(
        data_values(&out),
        vec![
            role(true),
            content(true, "Let me check."),
            call_start(true, 0, "toolu_a", "weather"),
            arguments(true, 0, "{\"city\":"),
            arguments(true, 0, "\"Paris\"}"),
            // A tool block separated the two texts: joined with "\n\n" as in the non-streaming answer.
            content(true, "\n\nDone."),
            finish(true, "tool_calls"),
            usage_chunk(135, 30, 100, 10),
            done(),
        ]
    );
    assert_eq!(result.tool_calls[0].2, "{\"city\":\"Paris\"}");
}

#[test]
fn three_parallel_tool_calls_count_tool_indexes_not_block_indexes() {
    let mut parts = vec![message_start(), text_start(0), text(0, "Checking."), stop(0)];
    for (k, city) in ["Paris", "Rome", "Kraków"].iter().enumerate() {
        let i = k as u64 + 1;
        parts.push(tool_start(i, &format!("toolu_{k}"), "weather"));
        parts.push(partial(i, "{\"ci"));
        parts.push(partial(i, "ty\": \""));
        parts.push(partial(i, &format!("{city}\"}}")));
        parts.push(stop(i));
    }
    parts.push(message_delta("tool_use", 60));
    parts.push(message_stop());
    let (out, result) = run(&facts(false), &parts.concat());
    let chunks = data_values(&out);
    assert_eq!(chunks[2], call_start(false, 0, "toolu_0", "weather"));
    assert_eq!(chunks[6], call_start(false, 1, "toolu_1", "weather"));
    assert_eq!(chunks[10], call_start(false, 2, "toolu_2", "weather"));
    assert_eq!(chunks[13], arguments(false, 2, "Kraków\"}"));
    let args: Vec<&str> = result.tool_calls.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(
        args,
        [
            "{\"city\": \"Paris\"}",
            "{\"city\": \"Rome\"}",
            "{\"city\": \"Kraków\"}"
        ]
    );
    assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn tool_without_streamed_input_gets_empty_object_arguments() {
    let input = [
        message_start(),
        tool_start(0, "toolu_n", "now"),
        stop(0),
        message_delta("tool_use", 5),
        message_stop(),
    ]
    .concat();
    let (out, result) = run(&facts(false), &input);
    assert_eq!(data_values(&out)[2], arguments(false, 0, "{}"));
    assert_eq!(result.tool_calls[0].2, "{}");
}

#[test]
fn tool_input_given_whole_in_content_block_start_is_sent_once() {
    // Some Anthropic-compatible hosts put the whole input into content_block_start.
    let input = [
        message_start(),
        block_start(
            0,
            json!({"type":"tool_use","id":"toolu_w","name":"calc","input":{"x":1}}),
        ),
        stop(0),
        tool_start(1, "toolu_v", "calc"),
        partial(1, "{\"y\":2}"),
        stop(1),
        message_delta("tool_use", 5),
        message_stop(),
    ]
    .concat();
    let (_, result) = run(&facts(false), &input);
    let args: Vec<&str> = result.tool_calls.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(args, ["{\"x\":1}", "{\"y\":2}"]);
}

#[test]
fn usage_chunk_is_last_before_done_with_empty_choices() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "x"),
        stop(0),
        // Newer API versions repeat the cumulative input counts at the end; they replace the start values.
        ant(
            json!({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},
            "usage":{"input_tokens":30,"cache_read_input_tokens":100,"cache_creation_input_tokens":0,"output_tokens":7,
            "output_tokens_details":{"thinking_tokens":3}}}),
        ),
        message_stop(),
    ]
    .concat();
    let (out, result) = run(&facts(true), &input);
    let chunks = data_values(&out);
    let mut expected = usage_chunk(130, 7, 100, 0);
    expected["usage"]["completion_tokens_details"] = json!({"reasoning_tokens":3});
    assert_eq!(chunks[chunks.len() - 2], expected);
    assert_eq!(result.finish_reason.as_deref(), Some("length"));
    assert_usage_invariant(&result, 30, 100, 0);
}

#[test]
fn message_stop_without_message_delta_finishes_with_stop() {
    // The Route A counterpart of `[DONE]` without finish_reason.
    let input = [message_start(), text_start(0), text(0, "x"), stop(0), message_stop()].concat();
    let (_, result) = run(&facts(false), &input);
    assert_eq!(result.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn eof_mid_tool_is_an_in_band_error_without_done() {
    let input = [
        message_start(),
        tool_start(0, "toolu_e", "bash"),
        partial(0, "{\"cmd\":"),
    ]
    .concat();
    let (out, result) = run(&facts(true), &input);
    assert_eq!(
        *data_values(&out).last().unwrap(),
        json!({"error":{"message":"upstream stream ended before completion","type":"server_error",
            "param":null,"code":"stream_incomplete"}})
    );
    assert!(result.finish_reason.is_none());
}

#[test]
fn eof_after_message_delta_but_before_message_stop_is_incomplete() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "x"),
        stop(0),
        message_delta("end_turn", 1),
    ]
    .concat();
    let (_, result) = run(&facts(false), &input);
    assert_eq!(result.error.unwrap()["code"], "stream_incomplete");
}

#[test]
fn error_event_after_two_deltas() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "one "),
        text(0, "two"),
        ant(json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})),
        text(0, "ignored"),
    ]
    .concat();
    let (out, _) = run(&facts(true), &input);
    assert_eq!(
        data_values(&out),
        vec![
            role(true),
            content(true, "one "),
            content(true, "two"),
            json!({"error":{"message":"Overloaded","type":"service_unavailable_error","param":null,
                "code":"server_is_overloaded"}}),
        ]
    );
}

#[test]
fn events_without_event_lines_are_dispatched_by_type() {
    let input = [
        message_start(),
        text_start(0),
        text(0, "Hi"),
        stop(0),
        message_delta("end_turn", 1),
        message_stop(),
    ]
    .concat()
    .lines()
    .filter(|l| !l.starts_with("event:"))
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    let (_, result) = run(&facts(false), &input);
    assert_eq!(result.content.as_deref(), Some("Hi"));
}

#[test]
fn json_output_tool_becomes_content_and_finish_stop() {
    let facts = RequestFacts {
        json_output_tool: true,
        ..facts(false)
    };
    let input = [
        message_start(),
        tool_start(0, "toolu_j", "json_output"),
        partial(0, "{\"answer\":"),
        partial(0, "42}"),
        stop(0),
        message_delta("tool_use", 9),
        message_stop(),
    ]
    .concat();
    let (_, result) = run(&facts, &input);
    assert_eq!(result.content.as_deref(), Some("{\"answer\":42}"));
    assert!(result.tool_calls.is_empty());
    assert_eq!(result.finish_reason.as_deref(), Some("stop"));
}

#[test]
fn stop_reason_table_in_streams() {
    for (stop_reason, expected) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ] {
        let input = [
            message_start(),
            text_start(0),
            text(0, "a"),
            stop(0),
            message_delta(stop_reason, 1),
            message_stop(),
        ]
        .concat();
        let (_, result) = run(&facts(false), &input);
        assert_eq!(result.finish_reason.as_deref(), Some(expected), "{stop_reason}");
    }
}

#[test]
fn transport_failures_and_keep_alive() {
    let mut conv = convert_stream(Protocol::OpenAi, Protocol::Anthropic, &ctx(), facts(true));
    let mut out = Vec::new();
    conv.keep_alive(&mut out);
    assert_eq!(out, b": keep-alive\n\n");
    assert!(data_values(&out).is_empty(), "decoders ignore the keep-alive");
    out.clear();
    let event = SseEvent {
        event: Some("message_start".into()),
        data: json!({"type":"message_start","message":{"id":"msg_01","usage":{"input_tokens":1}}}).to_string(),
    };
    assert_eq!(conv.on_event(&event, &mut out), StreamStatus::Continue);
    conv.on_error(StreamFailure::Timeout, "upstream idle", &mut out);
    let result = check_openai(&out, true);
    assert_eq!(result.error.unwrap()["code"], "timeout");
    let len = out.len();
    conv.on_eof(&mut out);
    conv.on_error(StreamFailure::Upstream, "again", &mut out);
    assert_eq!(out.len(), len);
    assert_eq!(conv.on_event(&event, &mut out), StreamStatus::Failed);
}

/// §7: what an OpenAI client accumulates from the stream equals the non-streaming answer for the same
/// upstream data, including the joining of text and thinking blocks.
#[test]
fn stream_accumulates_to_the_non_streaming_answer() {
    let input = [
        message_start(),
        thinking_start(0),
        thinking(0, "First."),
        signature(0),
        stop(0),
        text_start(1),
        text(1, "A"),
        stop(1),
        text_start(2),
        text(2, "B"),
        stop(2),
        block_start(3, json!({"type":"redacted_thinking","data":"xyz"})),
        stop(3),
        thinking_start(4),
        thinking(4, "Second."),
        signature(4),
        stop(4),
        text_start(5),
        text(5, "C"),
        stop(5),
        tool_start(6, "toolu_z", "calc"),
        partial(6, "{\"x\":1}"),
        stop(6),
        message_delta("tool_use", 20),
        message_stop(),
    ]
    .concat();
    let (_, streamed) = run(&facts(true), &input);
    let body = json!({"id":"msg_01","type":"message","role":"assistant","model":"claude-upstream",
        "content":[{"type":"thinking","thinking":"First.","signature":"s1"},{"type":"text","text":"A"},
            {"type":"text","text":"B"},{"type":"redacted_thinking","data":"xyz"},
            {"type":"thinking","thinking":"Second.","signature":"s2"},{"type":"text","text":"C"},
            {"type":"tool_use","id":"toolu_z","name":"calc","input":{"x":1}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":20}});
    let completion: Value =
        serde_json::from_slice(&anthropic_to_openai(body.to_string().as_bytes(), &ctx(), &facts(true)).unwrap())
            .unwrap();
    let message = &completion["choices"][0]["message"];
    assert_eq!(streamed.content.as_deref(), message["content"].as_str());
    assert_eq!(streamed.content.as_deref(), Some("AB\n\nC"));
    assert_eq!(streamed.reasoning.as_deref(), message["reasoning_content"].as_str());
    assert_eq!(streamed.reasoning.as_deref(), Some("First.\nSecond."));
    let call = &message["tool_calls"][0];
    assert_eq!(
        streamed.tool_calls,
        vec![(
            call["id"].as_str().unwrap().to_owned(),
            call["function"]["name"].as_str().unwrap().to_owned(),
            call["function"]["arguments"].as_str().unwrap().to_owned()
        )]
    );
    assert_eq!(
        streamed.finish_reason.as_deref(),
        completion["choices"][0]["finish_reason"].as_str()
    );
    assert_eq!(streamed.usage.as_ref(), Some(&completion["usage"]));
    assert_eq!(completion["id"], "chatcmpl-msg_01");
}
