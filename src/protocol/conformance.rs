//! The conformance matrix of the hub codecs, on one shared fixture per kind: a request, a whole answer and a
//! stream, each encoded by every protocol's encoder and decoded by every protocol's decoder.
//!
//! - Requests go client protocol → hub → upstream protocol for every pair, and the conversation that comes
//!   out must be the fixture's (roles, texts, tool calls paired with their results, images).
//! - Answers and streams go through each protocol's encoder and back through its decoder. Streams are cut at
//!   random byte boundaries on the way, and the events must add up to the same text, reasoning, calls, stop
//!   reason and usage.
//!
//! Per-protocol details are tested beside each codec; this checks that any decoder fits any encoder.

use proptest::prelude::*;
use serde_json::Value;

use crate::protocol::convert::ModelOptions;
use crate::protocol::convert::stream::StreamStatus;
use crate::protocol::hub::{
    Event, Message, Part, Reasoning, Request, Response, Role, StopReason, StreamDecoder, StreamEncoder, Tool, ToolKind,
    ToolResult, Usage,
};
use crate::protocol::messages;
use crate::protocol::responses;
use crate::protocol::sse::SseParser;
use crate::protocol::{chat, gemini};

const KEY: &[u8] = b"conformance-key";
const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Messages,
    Responses,
    Gemini,
}

const KINDS: [Kind; 4] = [Kind::Chat, Kind::Messages, Kind::Responses, Kind::Gemini];

fn schema() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(r#"{"type":"object","properties":{"zeta":{},"alpha":{}}}"#.into()).unwrap()
}

fn call(id: &str, arguments: &str) -> Part {
    crate::protocol::convert::test_support::tool_call(id, "weather", arguments)
}

/// A conversation with everything the three protocols share: instructions, text, an image, parallel tool
/// calls with their results, and a follow-up question.
fn request_fixture() -> Request {
    let result = |id: &str, text: &str| {
        Part::ToolResult(ToolResult {
            call_id: id.into(),
            content: vec![Part::Text(text.into())],
            is_error: false,
        })
    };
    Request {
        instructions: vec!["You are a weather assistant.".into()],
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text("Weather in Paris and Rome?".into()),
                    Part::Image {
                        url: PNG.into(),
                        detail: None,
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text("Checking both.".into()),
                    call("call_paris", r#"{"zeta":"Paris","alpha":1}"#),
                    call("call_rome", r#"{"zeta":"Rome","alpha":2}"#),
                ],
            },
            Message {
                role: Role::User,
                parts: vec![result("call_paris", "sunny"), result("call_rome", "rain")],
            },
            Message {
                role: Role::User,
                parts: vec![Part::Text("And tomorrow?".into())],
            },
        ],
        tools: vec![Tool {
            name: "weather".into(),
            namespace: None,
            description: Some("Weather for a city".into()),
            kind: ToolKind::Function,
            parameters: Some(schema()),
            strict: None,
        }],
        max_output_tokens: Some(500),
        stream: false,
        ..Request::default()
    }
}

/// What a conversation says, independent of how a protocol groups it: instructions and system text, each
/// text and image with its role, each call, each result.
fn flattened(request: &Request) -> Vec<String> {
    let mut out: Vec<String> = request.instructions.iter().map(|t| format!("system: {t}")).collect();
    for message in &request.messages {
        for part in &message.parts {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::System => "system",
            };
            out.push(match part {
                Part::Text(t) | Part::Refusal(t) => format!("{role}: {t}"),
                Part::Image { url, .. } => format!("{role}: image {url}"),
                Part::File { data_url, .. } => format!("{role}: file {data_url}"),
                Part::ToolCall(c) => {
                    let arguments: Value = serde_json::from_str(&c.arguments).unwrap();
                    format!("call {} {} {arguments}", c.id, c.name)
                }
                Part::ToolResult(r) => {
                    let texts: Vec<String> = r
                        .content
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text(t) => Some(t.clone()),
                            _ => None,
                        })
                        .collect();
                    format!("result {} {}", r.call_id, texts.join("\n"))
                }
                Part::Reasoning(_) | Part::CacheBreakpoint => continue,
            });
        }
    }
    out
}

fn encode_request(kind: Kind, request: &Request) -> Vec<u8> {
    let options = ModelOptions::default();
    match kind {
        Kind::Chat => chat::request::encode(request, "m", &options).unwrap().body,
        Kind::Messages => messages::request::encode(request, "m", &options).unwrap().body,
        Kind::Responses => responses::request::encode(request, "m", &options),
        // The model goes in a Gemini URL, not the body.
        Kind::Gemini => {
            gemini::request::encode(request, "gemini-2.5-flash", &options)
                .unwrap()
                .body
        }
    }
}

fn decode_request(kind: Kind, body: &[u8]) -> Request {
    match kind {
        Kind::Chat => chat::request::decode(body).unwrap().0,
        Kind::Messages => messages::request::decode(body).unwrap(),
        Kind::Responses => responses::request::decode(body, KEY).unwrap().request,
        Kind::Gemini => gemini::request::decode(body).unwrap().0,
    }
}

#[test]
fn every_request_decoder_reads_what_every_encoder_writes() {
    let want = flattened(&request_fixture());
    for client in KINDS {
        // The client's request, as the client's protocol writes it and the router reads it.
        let hub = decode_request(client, &encode_request(client, &request_fixture()));
        for upstream in KINDS {
            let body = encode_request(upstream, &hub);
            let text = String::from_utf8(body.clone()).unwrap();
            let position = |key: &str| {
                text.find(key)
                    .unwrap_or_else(|| panic!("{client:?} → {upstream:?}: {key}"))
            };
            assert!(
                position("\"zeta\"") < position("\"alpha\""),
                "{client:?} → {upstream:?}: key order"
            );
            let seen = decode_request(upstream, &body);
            assert_eq!(flattened(&seen), want, "{client:?} → {upstream:?}");
            assert_eq!(seen.tools.len(), 1, "{client:?} → {upstream:?}");
            assert!(seen.max_output_tokens.is_some(), "{client:?} → {upstream:?}");
        }
    }
}

fn response_fixture() -> Response {
    Response {
        id: None,
        stop_sequence: None,
        output: vec![
            Part::Reasoning(Reasoning {
                text: "Two cities.".into(),
                opaque: None,
            }),
            Part::Text("Checking ✓".into()),
            call("call_paris", r#"{"zeta":"Paris","alpha":1}"#),
        ],
        stop: StopReason::ToolUse,
        usage: Usage {
            input: 900,
            cached: 800,
            cache_write: 0,
            output: 40,
            reasoning: 0,
        },
    }
}

fn responses_facts() -> responses::request::ResponsesFacts {
    responses::request::decode(
        br#"{"model":"m","input":"x","tools":[{"type":"function","name":"weather"}]}"#,
        KEY,
    )
    .unwrap()
    .facts
}

#[test]
fn every_answer_decoder_reads_what_its_encoder_writes() {
    let fixture = response_fixture();
    let facts = responses_facts();
    for kind in KINDS {
        let body = match kind {
            Kind::Chat => chat::response::encode(
                &fixture,
                &chat::response::ChatAnswer {
                    id_hex: "00ff",
                    created: 1,
                    model: "g",
                    include_usage: true,
                },
            ),
            Kind::Messages => messages::response::encode(
                &fixture,
                &messages::response::MessagesAnswer {
                    id_hex: "00ff",
                    model: "g",
                    signing_key: KEY,
                    input_estimate: 0,
                },
            ),
            Kind::Responses => responses::response::encode(
                &fixture,
                &responses::response::AnswerContext {
                    id_hex: "00ff",
                    signing_key: KEY,
                    created: 1,
                    model: "g",
                    facts: &facts,
                },
            ),
            Kind::Gemini => gemini::response::encode(
                &fixture,
                &gemini::response::GeminiAnswer {
                    id_hex: "00ff",
                    model: "g",
                    include_thoughts: true,
                },
            ),
        };
        let back = match kind {
            Kind::Chat => chat::response::decode(&body),
            Kind::Messages => messages::response::decode(&body),
            Kind::Responses => responses::response::decode(&body),
            Kind::Gemini => gemini::response::decode(&body),
        }
        .unwrap();
        assert_eq!(back.stop, fixture.stop, "{kind:?}");
        assert_eq!(back.usage, fixture.usage, "{kind:?}");
        let summary = |r: &Response| -> Vec<String> {
            r.output
                .iter()
                .map(|p| match p {
                    Part::Reasoning(r) => format!("reasoning {}", r.text),
                    Part::Text(t) => format!("text {t}"),
                    Part::ToolCall(c) => format!(
                        "call {} {} {}",
                        c.id,
                        c.name,
                        serde_json::from_str::<Value>(&c.arguments).unwrap()
                    ),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(summary(&back), summary(&fixture), "{kind:?}");
    }
}

fn stream_fixture() -> Vec<Event> {
    vec![
        Event::ReasoningDelta("Two ".into()),
        Event::ReasoningDelta("cities.".into()),
        Event::TextDelta("Checking ".into()),
        Event::TextDelta("both ✓".into()),
        Event::ToolCallStart {
            index: 0,
            id: Some("call_paris".into()),
            name: "weather".into(),
        },
        Event::ToolCallDelta {
            index: 0,
            arguments: r#"{"zeta":"Pa"#.into(),
        },
        Event::ToolCallDelta {
            index: 0,
            arguments: r#"ris","alpha":1}"#.into(),
        },
        Event::ToolCallStart {
            index: 1,
            id: Some("call_rome".into()),
            name: "weather".into(),
        },
        Event::ToolCallDelta {
            index: 1,
            arguments: r#"{"zeta":"Rome"}"#.into(),
        },
        Event::Stop(StopReason::ToolUse),
        Event::Usage(Usage {
            input: 900,
            cached: 800,
            cache_write: 0,
            output: 40,
            reasoning: 0,
        }),
        Event::Done,
    ]
}

/// What a stream adds up to: reasoning and text joined, each call (in order) with its id, name and
/// arguments, the stop reason, the last usage, and whether it ended normally.
type Totals = (
    String,
    String,
    Vec<(String, String, String)>,
    Option<StopReason>,
    Option<Usage>,
    bool,
);

fn totals(events: &[Event]) -> Totals {
    let (mut reasoning, mut text) = (String::new(), String::new());
    let mut calls: Vec<(usize, String, String, String)> = Vec::new();
    let (mut stop, mut usage, mut done) = (None, None, false);
    for event in events {
        match event {
            Event::ReasoningDelta(d) => reasoning.push_str(d),
            Event::TextDelta(d) => text.push_str(d),
            Event::ToolCallStart { index, id, name } => {
                calls.push((*index, id.clone().unwrap_or_default(), name.clone(), String::new()))
            }
            Event::ToolCallDelta { index, arguments } => calls
                .iter_mut()
                .find(|c| c.0 == *index)
                .expect("a delta after its start")
                .3
                .push_str(arguments),
            Event::Stop(s) => stop = Some(*s),
            Event::Usage(u) => usage = Some(*u),
            Event::Done => done = true,
            _ => {}
        }
    }
    let calls = calls.into_iter().map(|(_, id, name, args)| (id, name, args)).collect();
    (reasoning, text, calls, stop, usage, done)
}

fn encoder(kind: Kind) -> Box<dyn StreamEncoder> {
    match kind {
        Kind::Chat => Box::new(chat::stream::ChatStreamEncoder::new(&chat::response::ChatAnswer {
            id_hex: "00ff",
            created: 1,
            model: "g",
            include_usage: true,
        })),
        Kind::Messages => Box::new(messages::stream::MessagesStreamEncoder::new(
            &messages::response::MessagesAnswer {
                id_hex: "00ff",
                model: "g",
                signing_key: KEY,
                input_estimate: 0,
            },
        )),
        Kind::Responses => Box::new(responses::stream::ResponsesStreamEncoder::new(
            "00ff",
            1,
            "g",
            responses_facts(),
            KEY,
        )),
        Kind::Gemini => Box::new(gemini::stream::GeminiStreamEncoder::new(
            &gemini::response::GeminiAnswer {
                id_hex: "00ff",
                model: "g",
                include_thoughts: true,
            },
        )),
    }
}

fn decoder(kind: Kind) -> Box<dyn StreamDecoder> {
    match kind {
        Kind::Chat => Box::new(chat::response::ChatChunks::default()),
        Kind::Messages => Box::new(messages::response::MessagesEvents::default()),
        Kind::Responses => Box::new(responses::stream::ResponsesEvents::default()),
        Kind::Gemini => Box::new(gemini::response::GeminiChunks::default()),
    }
}

fn round_trip(kind: Kind, cuts: &[usize]) -> Vec<Event> {
    let mut encoder = encoder(kind);
    let mut bytes = Vec::new();
    for event in stream_fixture() {
        if encoder.encode(event, &mut bytes) != StreamStatus::Continue {
            break;
        }
    }
    let mut decoder = decoder(kind);
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        parser.feed(&bytes[last..cut], |e| decoder.decode(e, &mut events));
        last = cut;
    }
    // A Gemini stream has no end marker: its EOF after the finish reason is its end (`HubStream::on_eof`).
    if kind == Kind::Gemini && events.iter().any(|e| matches!(e, Event::Stop(_))) {
        events.push(Event::Done);
    }
    events
}

#[test]
fn every_stream_decoder_reads_what_its_encoder_writes() {
    let want = totals(&stream_fixture());
    for kind in KINDS {
        assert_eq!(totals(&round_trip(kind, &[])), want, "{kind:?}");
    }
}

proptest! {
    #[test]
    fn streams_survive_any_split(cuts in proptest::collection::vec(0usize..20_000, 0..12)) {
        let want = totals(&stream_fixture());
        for kind in KINDS {
            prop_assert_eq!(totals(&round_trip(kind, &cuts)), want.clone(), "{:?}", kind);
        }
    }
}
