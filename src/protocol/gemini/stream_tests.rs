use serde_json::{Value, json};

use super::*;
use crate::protocol::chat;
use crate::protocol::convert::stream::StreamConverter;
use crate::protocol::convert::test_support::{ant, converted, data_values, oai, parse_events};
use crate::protocol::gemini::response::{GeminiAnswer, GeminiChunks};
use crate::protocol::hub::{HubStream, StreamDecoder};
use crate::protocol::messages;

fn answer() -> GeminiAnswer<'static> {
    GeminiAnswer {
        id_hex: "resp01",
        model: "my-group",
        include_thoughts: true,
    }
}

fn encoded(events: Vec<Event>) -> (Vec<u8>, StreamStatus) {
    let mut encoder = GeminiStreamEncoder::new(&answer());
    let mut out = Vec::new();
    let mut status = StreamStatus::Continue;
    for event in events {
        status = encoder.encode(event, &mut out);
        if status != StreamStatus::Continue {
            break;
        }
    }
    if status == StreamStatus::Continue {
        status = encoder.eof(&mut out);
    }
    (out, status)
}

/// The Gemini wire rules of reference §5.1: `data: ` with its space, one single-line JSON each, no
/// comments or `event:` lines.
fn check_framing(out: &[u8]) {
    let text = std::str::from_utf8(out).unwrap();
    for frame in text.split_terminator("\n\n") {
        assert!(frame.starts_with("data: {"), "{frame:?}");
        assert!(!frame.contains('\n'), "one line per frame: {frame:?}");
        serde_json::from_str::<Value>(&frame["data: ".len()..]).unwrap();
    }
    assert!(text.ends_with("\n\n"));
}

#[test]
fn hub_events_become_gemini_chunks() {
    let (out, status) = encoded(vec![
        Event::MessageId("up-1".into()),
        Event::ReasoningDelta("Plan".into()),
        Event::TextDelta("Hi ".into()),
        Event::TextDelta(String::new()),
        Event::ToolCallStart {
            index: 0,
            id: Some("call_a".into()),
            name: "ls".into(),
        },
        Event::ToolCallDelta {
            index: 0,
            arguments: r#"{"pa"#.into(),
        },
        Event::ToolCallDelta {
            index: 0,
            arguments: r#"th":"."}"#.into(),
        },
        Event::ToolCallStart {
            index: 1,
            id: None,
            name: "cat".into(),
        },
        Event::Stop(StopReason::ToolUse),
        Event::Usage(Usage {
            input: 10,
            cached: 2,
            cache_write: 0,
            output: 7,
            reasoning: 3,
        }),
        Event::Done,
    ]);
    assert_eq!(status, StreamStatus::Finished);
    check_framing(&out);
    let ids = r#""modelVersion":"my-group","responseId":"up-1"}"#;
    let part =
        |p: &str| format!(r#"data: {{"candidates":[{{"content":{{"role":"model","parts":[{p}]}},"index":0}}],{ids}"#);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        [
            part(r#"{"text":"Plan","thought":true}"#),
            part(r#"{"text":"Hi "}"#),
            // The reasoning so far, sealed on the first call: `LLMR\x01{"k":"rc","t":"Plan"}`.
            part(
                r#"{"functionCall":{"id":"call_a","name":"ls","args":{"path":"."}},"thoughtSignature":"TExNUgF7ImsiOiJyYyIsInQiOiJQbGFuIn0="}"#
            ),
            part(r#"{"functionCall":{"id":"call_up-1_1","name":"cat","args":{}}}"#),
            format!(
                r#"data: {{"candidates":[{{"content":{{"role":"model","parts":[]}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":10,"candidatesTokenCount":4,"thoughtsTokenCount":3,"totalTokenCount":17,"cachedContentTokenCount":2}},{ids}"#
            ),
        ]
        .map(|f| f + "\n\n")
        .concat()
    );
}

#[test]
fn thoughts_are_shown_only_when_asked_and_a_stop_is_always_said() {
    let mut encoder = GeminiStreamEncoder::new(&GeminiAnswer {
        include_thoughts: false,
        ..answer()
    });
    let mut out = Vec::new();
    encoder.encode(Event::ReasoningDelta("hidden".into()), &mut out);
    assert!(out.is_empty());
    encoder.encode(Event::Stop(StopReason::MaxTokens), &mut out);
    // The upstream said why it stopped but its end marker never came: EOF is the normal end.
    assert_eq!(encoder.eof(&mut out), StreamStatus::Finished);
    let values = data_values(&out);
    assert_eq!(values.len(), 1);
    assert_eq!(values[0]["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(values[0]["usageMetadata"]["totalTokenCount"], 0);
}

#[test]
fn the_keep_alive_is_an_empty_text_chunk() {
    let encoder = GeminiStreamEncoder::new(&answer());
    let mut out = Vec::new();
    encoder.keep_alive(&mut out);
    check_framing(&out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"index\":0}]}\n\n"
    );
}

#[test]
fn failures_after_commit_end_in_an_error_chunk_never_a_stop() {
    // An upstream error event.
    let (out, status) = encoded(vec![
        Event::TextDelta("Half".into()),
        Event::Error {
            message: "Rate limited".into(),
            code: Some("rate_limit_exceeded".into()),
        },
        Event::Done,
    ]);
    assert_eq!(status, StreamStatus::Failed);
    check_framing(&out);
    let values = data_values(&out);
    assert_eq!(
        values.last().unwrap(),
        &json!({"error":{"code":429,"message":"Rate limited","status":"RESOURCE_EXHAUSTED"}})
    );
    assert!(!String::from_utf8_lossy(&out).contains("finishReason"));
    // A stream cut before the upstream said why it stopped.
    let (out, status) = encoded(vec![Event::TextDelta("Half".into())]);
    assert_eq!(status, StreamStatus::Failed);
    assert_eq!(
        data_values(&out).last().unwrap(),
        &json!({"error":{"code":500,"message":"upstream stream ended before completion","status":"INTERNAL"}})
    );
    // A stall.
    let mut encoder = GeminiStreamEncoder::new(&answer());
    let mut out = Vec::new();
    encoder.failed(StreamFailure::Timeout, "upstream stalled", &mut out);
    assert_eq!(data_values(&out)[0]["error"]["status"], "DEADLINE_EXCEEDED");
    let len = out.len();
    encoder.failed(StreamFailure::Upstream, "again", &mut out);
    assert_eq!(encoder.encode(Event::Done, &mut out), StreamStatus::Finished);
    assert_eq!(out.len(), len, "nothing after the end");
}

/// What a Gemini SDK rebuilds: text, thoughts, calls, the finish reason and the last usage.
fn rebuilt(out: &[u8]) -> (String, String, Vec<Value>, Option<String>, Option<Value>, Option<Value>) {
    check_framing(out);
    let (mut text, mut thoughts, mut calls, mut finish, mut usage, mut error) =
        (String::new(), String::new(), Vec::new(), None, None, None);
    for event in parse_events(out) {
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        if chunk.get("error").is_some() {
            error = Some(chunk["error"].clone());
            continue;
        }
        let candidate = &chunk["candidates"][0];
        for part in candidate["content"]["parts"].as_array().into_iter().flatten() {
            match (&part["text"], &part["thought"], &part["functionCall"]) {
                (Value::String(t), Value::Bool(true), _) => thoughts.push_str(t),
                (Value::String(t), _, _) => text.push_str(t),
                (_, _, call @ Value::Object(_)) => calls.push(call.clone()),
                _ => panic!("unexpected part {part}"),
            }
        }
        if let Some(f) = candidate["finishReason"].as_str() {
            assert!(finish.is_none(), "one finish reason");
            finish = Some(f.to_owned());
        }
        if chunk.get("usageMetadata").is_some() {
            usage = Some(chunk["usageMetadata"].clone());
        }
    }
    (text, thoughts, calls, finish, usage, error)
}

#[test]
fn a_chat_stream_reaches_a_gemini_client_whatever_the_splits() {
    let input = [
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"reasoning_content":"Plan é"}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"content":"Hi ✓"}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"ls","arguments":"{\"p\":"}}]}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"cat","arguments":"{}"}}]}}]})),
        oai(json!({"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})),
        oai(json!({"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5,"completion_tokens_details":{"reasoning_tokens":2}}})),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    let make = || -> Box<dyn StreamConverter> {
        Box::new(HubStream::new(
            chat::response::ChatChunks::default(),
            GeminiStreamEncoder::new(&answer()),
            Default::default(),
        ))
    };
    let (text, thoughts, calls, finish, usage, error) = rebuilt(&converted(&make, &input));
    assert_eq!((text.as_str(), thoughts.as_str()), ("Hi ✓", "Plan é"));
    assert_eq!(
        calls,
        [
            json!({"id":"call_1","name":"ls","args":{"p":1}}),
            json!({"id":"call_2","name":"cat","args":{}})
        ],
        "each call whole, in one chunk"
    );
    assert_eq!(finish.as_deref(), Some("STOP"));
    assert_eq!(
        usage.unwrap(),
        json!({"promptTokenCount":9,"candidatesTokenCount":3,"thoughtsTokenCount":2,"totalTokenCount":14})
    );
    assert!(error.is_none());
}

#[test]
fn a_messages_stream_reaches_a_gemini_client_and_its_error_stays_an_error() {
    let start = ant(
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[],"stop_reason":null,"usage":{"input_tokens":20,"output_tokens":1}}}),
    );
    let text = [
        ant(json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
        ant(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour é"}})),
        ant(json!({"type":"content_block_stop","index":0})),
    ]
    .concat();
    let end = [
        ant(json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4}})),
        ant(json!({"type":"message_stop"})),
    ]
    .concat();
    let make = || -> Box<dyn StreamConverter> {
        Box::new(HubStream::new(
            messages::response::MessagesEvents::default(),
            GeminiStreamEncoder::new(&answer()),
            Default::default(),
        ))
    };
    let out = converted(&make, &[start.clone(), text.clone(), end].concat());
    let (text_out, _, calls, finish, usage, error) = rebuilt(&out);
    assert_eq!(
        (text_out.as_str(), calls.len(), finish.as_deref()),
        ("Bonjour é", 0, Some("STOP"))
    );
    assert_eq!(usage.unwrap()["promptTokenCount"], 20);
    assert!(error.is_none());
    assert!(String::from_utf8_lossy(&out).contains(r#""responseId":"msg_1""#));
    // An overload mid-stream reaches the client as an error chunk and no finish reason.
    let overloaded = ant(json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}));
    let out = converted(&make, &[start, text, overloaded].concat());
    let (_, _, _, finish, _, error) = rebuilt(&out);
    assert_eq!(finish, None);
    assert_eq!(
        error.unwrap(),
        json!({"code":503,"message":"Overloaded","status":"UNAVAILABLE"})
    );
}

#[test]
fn the_gemini_decoder_reads_what_the_encoder_writes() {
    let (out, _) = encoded(vec![
        Event::TextDelta("a".into()),
        Event::ToolCallStart {
            index: 0,
            id: Some("call_a".into()),
            name: "ls".into(),
        },
        Event::ToolCallDelta {
            index: 0,
            arguments: "{}".into(),
        },
        Event::Stop(StopReason::ToolUse),
        Event::Done,
    ]);
    let mut decoder = GeminiChunks::default();
    let mut events = Vec::new();
    for event in parse_events(&out) {
        decoder.decode(&event, &mut events);
    }
    assert_eq!(
        events,
        [
            Event::MessageId("resp01".into()),
            Event::TextDelta("a".into()),
            Event::ToolCallStart {
                index: 0,
                id: Some("call_a".into()),
                name: "ls".into()
            },
            Event::ToolCallDelta {
                index: 0,
                arguments: "{}".into()
            },
            Event::Usage(Usage::default()),
            Event::Stop(StopReason::ToolUse),
        ]
    );
}
