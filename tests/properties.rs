//! Property tests over the code that parses untrusted bytes: the SSE parser, the stream converters, the
//! request and response converters and the raw-body editor. Each runs a bounded number of cases (a few
//! seconds in all) and looks for panics and split-dependent output.

use llm_router::protocol::convert::stream::StreamConverter;
use llm_router::protocol::convert::{ConvertContext, ModelOptions, RequestFacts, request};
use llm_router::protocol::raw_body::RawBody;
use llm_router::protocol::sse::{SseEvent, SseParser};
use llm_router::protocol::{Protocol, hub};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn parse_split(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut last = 0;
    for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        parser.feed(&bytes[last..cut], |e| events.push(e.clone()));
        last = cut;
    }
    events.extend(parser.finish());
    events
}

/// Arbitrary JSON, up to a few levels deep, with the keys converters look at mixed in.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("role".to_owned()),
        Just("content".to_owned()),
        Just("text".to_owned()),
        Just("tool_calls".to_owned()),
        Just("tool_use_id".to_owned()),
        Just("input".to_owned()),
        Just("arguments".to_owned()),
        Just("index".to_owned()),
        Just("delta".to_owned()),
        Just("choices".to_owned()),
        Just("usage".to_owned()),
        Just("id".to_owned()),
        Just("name".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("text".to_owned()),
            Just("tool_use".to_owned()),
            Just("image".to_owned()),
            Just("thinking".to_owned()),
            Just("assistant".to_owned()),
            Just("user".to_owned()),
            Just("tool".to_owned()),
            Just("function".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn with_ctx<T>(f: impl FnOnce(&ConvertContext) -> T) -> T {
    let options = ModelOptions::default();
    let ctx = ConvertContext {
        client_model: "client-model",
        upstream_model: "upstream-model",
        options: &options,
        created: 1,
        response_id: "abc",
        signing_key: b"key",
        route_stream: false,
    };
    f(&ctx)
}

/// Feeds `events` through a converter and returns its output; must not panic whatever the events.
fn run_stream(converter: &mut dyn StreamConverter, events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        converter.on_event(event, &mut out);
    }
    converter.on_eof(&mut out);
    out
}

proptest! {
    #![proptest_config(config(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)))]

    #[test]
    fn sse_parsing_does_not_depend_on_chunking(
        events in prop::collection::vec((proptest::option::of("[a-z_]{1,12}"), "\\PC{0,40}"), 0..8),
        crlf in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        for (name, data) in &events {
            if let Some(name) = name {
                text.push_str(&format!("event: {name}{newline}"));
            }
            text.push_str(&format!("data: {data}{newline}{newline}"));
        }
        let whole = parse_split(text.as_bytes(), &[]);
        prop_assert_eq!(whole.len(), events.len());
        prop_assert_eq!(parse_split(text.as_bytes(), &cuts), whole);
    }

    #[test]
    fn sse_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let _ = parse_split(&bytes, &cuts);
    }

    #[test]
    fn stream_converters_survive_arbitrary_events(
        events in prop::collection::vec((proptest::option::of(prop_oneof![
            Just("message_start".to_owned()), Just("content_block_start".to_owned()),
            Just("content_block_delta".to_owned()), Just("content_block_stop".to_owned()),
            Just("message_delta".to_owned()), Just("message_stop".to_owned()), Just("error".to_owned()),
        ]), json_value()), 0..12),
    ) {
        let events: Vec<SseEvent> = events
            .into_iter()
            .map(|(event, data)| SseEvent { event, data: data.to_string() })
            .collect();
        // Every converted pair, through the hub.
        for client in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Responses] {
            for upstream in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Responses] {
                if client == upstream {
                    continue;
                }
                let out = with_ctx(|ctx| {
                    run_stream(&mut *hub::convert_stream(client, upstream, ctx, RequestFacts::default()), &events)
                });
                prop_assert!(std::str::from_utf8(&out).is_ok(), "{client} on {upstream}");
            }
        }
    }

    #[test]
    fn request_and_response_converters_never_panic(messages in json_value(), extra in json_value()) {
        let mut body = json!({"model": "m", "max_tokens": 100, "messages": messages});
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let facts = RequestFacts::default();
        with_ctx(|ctx| {
            for client in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Responses] {
                for upstream in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Responses] {
                    if client != upstream {
                        let _ = hub::convert_request(client, upstream, &bytes, ctx);
                        let _ = hub::convert_answer(client, upstream, &bytes, ctx, &facts);
                    }
                }
            }
            let _ = request::anthropic_same_protocol_fixups(&bytes, ctx.options);
        });
    }

    #[test]
    fn raw_body_rewrites_only_the_overridden_keys(body in json_value()) {
        let Value::Object(map) = body else { return Ok(()) };
        let bytes = serde_json::to_vec(&Value::Object(map.clone())).unwrap();
        let raw = RawBody::parse(&bytes).unwrap();
        let model = serde_json::value::to_raw_value("upstream").unwrap();
        let out: Value = serde_json::from_slice(&raw.write_with(&[("model", &model)])).unwrap();
        let mut expected = map;
        expected.insert("model".into(), json!("upstream"));
        prop_assert_eq!(out, Value::Object(expected));
    }
}
