use serde_json::{Value, json};

use super::*;
use crate::protocol::chat;
use crate::protocol::convert::test_support::{check_anthropic, check_openai, converted, ctx, has_multibyte, tool_call};
use crate::protocol::hub::HubStream;
use crate::protocol::messages;

/// A Gemini 3 answer as the API writes it: a thought summary, text, a signed call, usage with thoughts and
/// cached tokens.
const ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[
    {"text":"Need the listing.","thought":true},
    {"text":"Listing ✓"},
    {"functionCall":{"name":"ls","args":{"path":"."}},"thoughtSignature":"CiQBjz1rX+/sig=="}]},
    "finishReason":"STOP","index":0}],
    "usageMetadata":{"promptTokenCount":900,"candidatesTokenCount":30,"totalTokenCount":950,"cachedContentTokenCount":800,"thoughtsTokenCount":20},
    "modelVersion":"gemini-3-pro-preview","responseId":"resp-1"}"#;

fn gemini_answer() -> GeminiAnswer<'static> {
    GeminiAnswer {
        id_hex: "00ff",
        model: "my-group",
        include_thoughts: true,
    }
}

#[test]
fn a_whole_answer_becomes_the_hub_response() {
    let response = decode(ANSWER.as_bytes()).unwrap();
    assert_eq!(response.id.as_deref(), Some("resp-1"));
    assert_eq!(response.stop, StopReason::ToolUse, "STOP with a call");
    assert_eq!(
        response.usage,
        Usage {
            input: 900,
            cached: 800,
            cache_write: 0,
            output: 50,
            reasoning: 20
        },
        "thoughts count as output"
    );
    assert!(matches!(&response.output[0], Part::Reasoning(r) if r.text == "Need the listing." && r.opaque.is_none()));
    assert!(matches!(&response.output[1], Part::Text(t) if t == "Listing ✓"));
    let Part::ToolCall(call) = &response.output[2] else {
        panic!("a call")
    };
    let base = mint_call_id(r#"resp-1:0:ls:{"path":"."}"#);
    assert_eq!(call.id, carry_signature(&base, Some("CiQBjz1rX+/sig==")));
    assert_eq!((call.name.as_str(), call.arguments.as_str()), ("ls", r#"{"path":"."}"#));
    assert_eq!(
        super::super::thought::split_call_id(&call.id),
        (base.as_str(), Some("CiQBjz1rX+/sig==".to_owned()))
    );
    // Gemini's own ids are kept.
    let own = decode(
        br#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"fc_1","name":"ls"}}]},"finishReason":"STOP"}]}"#,
    )
    .unwrap();
    assert!(matches!(&own.output[0], Part::ToolCall(c) if c.id == "fc_1" && c.arguments == "{}"));
}

#[test]
fn finish_reasons_follow_the_table() {
    let with = |finish: &str, parts: &str| {
        decode(
            format!(r#"{{"candidates":[{{"content":{{"parts":[{parts}]}},"finishReason":"{finish}","finishMessage":"Malformed function call: print(x"}}]}}"#)
                .as_bytes(),
        )
    };
    assert_eq!(
        with("MAX_TOKENS", r#"{"text":"a"}"#).unwrap().stop,
        StopReason::MaxTokens
    );
    for filter in ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII", "BLOCKLIST"] {
        assert_eq!(with(filter, "").unwrap().stop, StopReason::ContentFilter, "{filter}");
    }
    assert_eq!(with("OTHER", r#"{"text":"a"}"#).unwrap().stop, StopReason::End);
    assert_eq!(
        with("FINISH_REASON_UNSPECIFIED", r#"{"text":"a"}"#).unwrap().stop,
        StopReason::End
    );
    // A malformed call with nothing else is a failed attempt, not an empty success.
    for finish in ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"] {
        let error = with(finish, "").unwrap_err();
        assert_eq!(error.code, Some(RETRYABLE_FINISH), "{finish}");
        assert!(error.message.contains(finish), "{}", error.message);
        assert!(with(finish, r#"{"text":"  "}"#).is_err(), "blank text is nothing");
    }
    assert!(
        with("MALFORMED_FUNCTION_CALL", "")
            .unwrap_err()
            .message
            .contains("print(x")
    );
    // With text already produced, it is only the end.
    assert_eq!(
        with("MALFORMED_FUNCTION_CALL", r#"{"text":"Partial"}"#).unwrap().stop,
        StopReason::End
    );
    // A missing finish reason on a whole answer is the end.
    let none = decode(br#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#).unwrap();
    assert_eq!(none.stop, StopReason::End);
}

#[test]
fn a_blocked_prompt_is_a_content_filter_stop_and_no_candidates_is_unusable() {
    let blocked = decode(
        br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT","safetyRatings":[]},"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12},"responseId":"b1"}"#,
    )
    .unwrap();
    assert_eq!(
        (blocked.stop, blocked.output.len(), blocked.usage.input),
        (StopReason::ContentFilter, 0, 12)
    );
    let ctx = ctx();
    let chat = chat::response::encode(
        &blocked,
        &chat::response::ChatAnswer {
            id_hex: ctx.response_id,
            created: 1,
            model: "m",
            include_usage: false,
        },
    );
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    assert_eq!(chat["choices"][0]["finish_reason"], "content_filter");
    let ant = messages::response::encode(&blocked, &messages_answer());
    let ant: Value = serde_json::from_slice(&ant).unwrap();
    assert_eq!(
        (ant["stop_reason"].as_str(), &ant["content"]),
        (Some("refusal"), &json!([]))
    );
    for body in [&br#"{"candidates":[]}"#[..], br#"{}"#, br#"not json"#, br#"[1]"#] {
        let error = decode(body).unwrap_err();
        assert_eq!(error.code, Some("bad_upstream_response"), "{}", error.message);
    }
}

fn messages_answer() -> messages::response::MessagesAnswer<'static> {
    messages::response::MessagesAnswer {
        id_hex: "00ff",
        model: "client-model",
        signing_key: b"k",
        input_estimate: 0,
    }
}

#[test]
fn a_gemini_answer_reaches_chat_and_messages_clients() {
    let response = decode(ANSWER.as_bytes()).unwrap();
    let chat = chat::response::encode(
        &response,
        &chat::response::ChatAnswer {
            id_hex: "00ff",
            created: 7,
            model: "client-model",
            include_usage: false,
        },
    );
    let chat: Value = serde_json::from_slice(&chat).unwrap();
    let message = &chat["choices"][0]["message"];
    assert_eq!(chat["id"], "chatcmpl-resp-1");
    assert_eq!(
        (message["content"].as_str(), message["reasoning_content"].as_str()),
        (Some("Listing ✓"), Some("Need the listing."))
    );
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], r#"{"path":"."}"#);
    assert!(message["tool_calls"][0]["id"].as_str().unwrap().contains("__thought__"));
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens":900,"completion_tokens":50,"total_tokens":950,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":20}})
    );
    let ant = messages::response::encode(&response, &messages_answer());
    let ant: Value = serde_json::from_slice(&ant).unwrap();
    let kinds: Vec<&str> = ant["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);
    assert_eq!(ant["content"][2]["input"], json!({"path": "."}));
    assert_eq!(ant["stop_reason"], "tool_use");
    assert_eq!(ant["usage"]["output_tokens"], 50);
    assert_eq!(ant["usage"]["cache_read_input_tokens"], 800);
}

#[test]
fn chat_and_messages_answers_reach_a_gemini_client() {
    let chat = chat::response::decode(
        br#"{"id":"chatcmpl-9","choices":[{"index":0,"message":{"role":"assistant","content":"Running","reasoning_content":"Plan","tool_calls":[{"id":"call_up_0001","type":"function","function":{"name":"run_shell_command","arguments":"{\"command\":\"ls\"}"}},{"id":"call_2","type":"function","function":{"name":"f","arguments":"oops"}}]},"finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":100,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":10}}}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(encode(&chat, &gemini_answer())).unwrap(),
        concat!(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Plan","thought":true},{"text":"Running"},"#,
            // The turn's reasoning, sealed on its first call: `LLMR\x01{"k":"rc","t":"Plan"}`.
            r#"{"functionCall":{"id":"call_up_0001","name":"run_shell_command","args":{"command":"ls"}},"thoughtSignature":"TExNUgF7ImsiOiJyYyIsInQiOiJQbGFuIn0="},"#,
            r#"{"functionCall":{"id":"call_2","name":"f","args":{"_raw_arguments":"oops"}}}]},"finishReason":"STOP","index":0}],"#,
            r#""usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":20,"thoughtsTokenCount":10,"totalTokenCount":130,"cachedContentTokenCount":60},"#,
            r#""modelVersion":"my-group","responseId":"chatcmpl-9"}"#
        )
    );
    let ant = messages::response::decode(
        br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude","content":[{"type":"thinking","thinking":"Hm","signature":"sig"},{"type":"text","text":"Too long"}],
        "stop_reason":"max_tokens","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}"#,
    )
    .unwrap();
    let hidden = GeminiAnswer {
        include_thoughts: false,
        ..gemini_answer()
    };
    assert_eq!(
        String::from_utf8(encode(&ant, &hidden)).unwrap(),
        // The hidden thinking still rides on the last text part, sealed: `LLMR\x01{"k":"ant","b":[<the block>]}`.
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Too long","thoughtSignature":"TExNUgF7ImsiOiJhbnQiLCJiIjpbeyJ0eXBlIjoidGhpbmtpbmciLCJ0aGlua2luZyI6IkhtIiwic2lnbmF0dXJlIjoic2lnIn1dfQ=="}]},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":15,"candidatesTokenCount":7,"totalTokenCount":22,"cachedContentTokenCount":5},"modelVersion":"my-group","responseId":"msg_01"}"#,
        "thoughts only when the client asked; Anthropic's input excludes cache reads, Gemini's prompt includes them"
    );
    // The finish reason is always there, even on an empty answer.
    let empty = Response {
        stop: StopReason::ContentFilter,
        ..Response::default()
    };
    assert_eq!(
        String::from_utf8(encode(&empty, &gemini_answer())).unwrap(),
        r#"{"candidates":[{"content":{"role":"model","parts":[]},"finishReason":"SAFETY","index":0}],"usageMetadata":{"promptTokenCount":0,"candidatesTokenCount":0,"totalTokenCount":0},"modelVersion":"my-group","responseId":"00ff"}"#
    );
}

#[test]
fn a_gemini_answer_round_trips_through_the_hub() {
    let hub = Response {
        id: Some("r\"1".into()),
        output: vec![
            Part::Reasoning(Reasoning {
                text: "Think".into(),
                opaque: None,
            }),
            Part::Text("Hi 🦀\n".into()),
            tool_call("call_a", "ls", r#"{"b":1,"a":2}"#),
        ],
        stop: StopReason::ToolUse,
        stop_sequence: None,
        usage: Usage {
            input: 10,
            cached: 4,
            cache_write: 0,
            output: 9,
            reasoning: 3,
        },
    };
    let back = decode(&encode(&hub, &gemini_answer())).unwrap();
    assert_eq!(back.id, hub.id);
    assert_eq!(back.stop, hub.stop);
    assert_eq!(back.usage, hub.usage);
    // The reasoning sealed on the call is the router's, not Gemini's: it does not come back in the id.
    assert_eq!(format!("{:?}", back.output), format!("{:?}", hub.output));
}

/// `data: <json>\n\n`, as Gemini frames its chunks.
fn sse(chunks: &[&str]) -> String {
    chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect()
}

fn chunk(parts: &str) -> String {
    format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":[{parts}]}},"index":0}}],"modelVersion":"gemini-3","responseId":"r-7"}}"#
    )
}

const LAST: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":12,"thoughtsTokenCount":8,"totalTokenCount":70},"modelVersion":"gemini-3","responseId":"r-7"}"#;

fn upstream_stream() -> String {
    let thought = chunk(r#"{"text":"Planning é","thought":true}"#);
    let text = chunk(r#"{"text":"Checking "},{"text":"both ✓"}"#);
    let calls = chunk(
        r#"{"functionCall":{"name":"weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},{"functionCall":{"name":"weather","args":{"city":"Rome"}}}"#,
    );
    sse(&[&thought, &text, &calls, LAST])
}

#[test]
fn a_gemini_stream_reaches_a_chat_client_whatever_the_splits() {
    let input = upstream_stream();
    assert!(has_multibyte(&input));
    let make = || -> Box<dyn crate::protocol::convert::stream::StreamConverter> {
        let answer = chat::response::ChatAnswer {
            id_hex: "resp01",
            created: 1,
            model: "client-model",
            include_usage: true,
        };
        Box::new(HubStream::new(
            GeminiChunks::default(),
            chat::stream::ChatStreamEncoder::new(&answer),
            Default::default(),
        ))
    };
    let result = check_openai(&converted(&make, &input), true);
    assert_eq!(result.content.as_deref(), Some("Checking both ✓"));
    assert_eq!(result.reasoning.as_deref(), Some("Planning é"));
    let paris = carry_signature(&mint_call_id(r#"r-7:0:weather:{"city":"Paris"}"#), Some("c2ln"));
    let rome = mint_call_id(r#"r-7:1:weather:{"city":"Rome"}"#);
    assert_eq!(
        result.tool_calls,
        [
            (paris, "weather".into(), r#"{"city":"Paris"}"#.into()),
            (rome, "weather".into(), r#"{"city":"Rome"}"#.into())
        ],
        "one index per call"
    );
    assert_eq!(result.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(result.usage.unwrap()["completion_tokens"], 20);
    assert!(result.error.is_none());
}

#[test]
fn a_gemini_stream_reaches_a_messages_client_whatever_the_splits() {
    let input = upstream_stream();
    let make = || -> Box<dyn crate::protocol::convert::stream::StreamConverter> {
        Box::new(HubStream::new(
            GeminiChunks::default(),
            messages::stream::MessagesStreamEncoder::new(&messages_answer()),
            Default::default(),
        ))
    };
    let result = check_anthropic(&converted(&make, &input));
    assert!(result.error.is_none());
    let message = result.message;
    let kinds: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use", "tool_use"]);
    assert_eq!(message["content"][2]["input"], json!({"city": "Paris"}));
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["output_tokens"], 20);
}

fn decoded(input: &str) -> Vec<Event> {
    let mut decoder = GeminiChunks::default();
    let mut parser = crate::protocol::sse::SseParser::new();
    let mut out = Vec::new();
    parser.feed(input.as_bytes(), |e| decoder.decode(e, &mut out));
    out
}

#[test]
fn stream_chunks_become_hub_events() {
    let events = decoded(&sse(&[
        &chunk(r#"{"text":"Hi"}"#),
        // Usage repeats with running totals; a chunk without it changes nothing.
        r#"{"candidates":[{"content":{"parts":[{"text":"!","thoughtSignature":"dGV4dA=="}]},"index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6},"responseId":"r-7"}"#,
        r#"{"candidates":[{"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7}}"#,
    ]));
    let usage = |output| {
        Event::Usage(Usage {
            input: 5,
            output,
            ..Usage::default()
        })
    };
    assert_eq!(
        events,
        [
            Event::MessageId("r-7".into()),
            Event::TextDelta("Hi".into()),
            Event::ReasoningSeal(Opaque::Gemini {
                signature: "dGV4dA==".into()
            }),
            Event::TextDelta("!".into()),
            usage(1),
            usage(2),
            Event::Stop(StopReason::End),
        ],
        "a content-less last chunk still finishes; no end marker: EOF ends the stream"
    );
}

#[test]
fn stream_failures_become_errors_never_a_clean_stop() {
    // A malformed call with nothing before it: a retryable error, not an empty STOP.
    let events = decoded(&sse(&[
        r#"{"candidates":[{"content":{"parts":[]},"finishReason":"MALFORMED_FUNCTION_CALL","index":0}]}"#,
    ]));
    assert!(
        matches!(&events[..], [Event::Error { code: Some(code), message }] if code == "server_error" && message.contains("MALFORMED_FUNCTION_CALL")),
        "{events:?}"
    );
    // After text it is the end of the answer.
    let events = decoded(&sse(&[
        &chunk(r#"{"text":"So"}"#),
        r#"{"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL","index":0}]}"#,
    ]));
    assert_eq!(events.last(), Some(&Event::Stop(StopReason::End)));
    // An error chunk, with Google's status mapped into the hub's codes.
    let events = decoded(&sse(&[
        r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
    ]));
    assert_eq!(
        events,
        [Event::Error {
            message: "The model is overloaded.".into(),
            code: Some("server_is_overloaded".into())
        }]
    );
    assert!(matches!(&decoded("data: {not json\n\n")[..], [Event::Error { .. }]));
    // A blocked prompt mid-stream.
    let events = decoded(&sse(&[r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#]));
    assert_eq!(events, [Event::Stop(StopReason::ContentFilter)]);
    // A stream cut before its finish reason ends in an in-band error for the client.
    let make = || -> Box<dyn crate::protocol::convert::stream::StreamConverter> {
        Box::new(HubStream::new(
            GeminiChunks::default(),
            messages::stream::MessagesStreamEncoder::new(&messages_answer()),
            Default::default(),
        ))
    };
    let cut = sse(&[&chunk(r#"{"text":"Half"}"#)]);
    let result = check_anthropic(&converted(&make, &cut));
    assert!(result.error.is_some() && result.message["stop_reason"].is_null());
}
