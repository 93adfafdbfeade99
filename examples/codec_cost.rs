//! What each step of a converted request costs, without sockets: runs one step many times on the bench's
//! own bodies (`bench/requests/`, and the mock upstream's answers from `bench/bodies.rs`) so that
//! `bench/codecs.sh` can count its instructions under callgrind.
//!
//! ```text
//! cargo run --release --example codec_cost -- STEP [ITERATIONS]
//! ```
//!
//! Steps: `raw-body` (the top-level split every request gets), `CLIENT-decode` (a client body decoded into
//! the hub, nothing encoded), then `CLIENT-UPSTREAM-request` (a client body
//! converted for the upstream), `CLIENT-UPSTREAM-answer` (the upstream's answer converted for the client) and
//! `CLIENT-UPSTREAM-stream` (the upstream's whole SSE stream, parsed and converted event by event), as in the
//! bench's scenario names: `ant-oai`, `oai-ant`, `rsp-oai`, `rsp-ant`, `gem-oai`, `gem-ant`; and
//! `CLIENT-rules`, the choice of a group by the ten routing rules of `bench/rules.yaml` (none matches); and
//! `token-count`, the local input-token estimate of a source file sent as a new message.
//! Only [`measure`] is counted (`--toggle-collect`), so set-up and the process around it do not show.

#[path = "../bench/bodies.rs"]
mod bodies;

use std::hint::black_box;

use llm_router::protocol::Protocol;
use llm_router::protocol::convert::token_count::estimate_anthropic_input_tokens;
use llm_router::protocol::convert::{ConvertContext, ModelOptions, RequestFacts};
use llm_router::protocol::raw_body::RawBody;
use llm_router::protocol::sse::SseParser;
use llm_router::protocol::{chat, gemini, hub, messages, responses};

/// The bench's client bodies, with the group names the router would see; or the file `BODY` names, to see
/// how a step grows with a large conversation.
fn client_body(protocol: Protocol) -> Vec<u8> {
    if let Some(path) = std::env::var_os("BODY") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let name = match protocol {
        Protocol::OpenAi => "openai",
        Protocol::Anthropic => "anthropic",
        Protocol::Responses => "responses",
        Protocol::Gemini => "gemini",
    };
    let path = format!("{}/bench/requests/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn protocol(name: &str) -> Option<Protocol> {
    match name {
        "oai" => Some(Protocol::OpenAi),
        "ant" => Some(Protocol::Anthropic),
        "rsp" => Some(Protocol::Responses),
        "gem" => Some(Protocol::Gemini),
        _ => None,
    }
}

fn protocols(step: &str) -> Option<(Protocol, Protocol)> {
    let mut names = step.split('-');
    Some((protocol(names.next()?)?, protocol(names.next()?)?))
}

/// The counted loop. `#[inline(never)]` keeps its symbol for callgrind's `--toggle-collect`.
#[inline(never)]
fn measure(iterations: u32, step: &mut dyn FnMut()) {
    for _ in 0..iterations {
        step();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let step = args.next().unwrap_or_else(|| {
        eprintln!("usage: codec_cost STEP [ITERATIONS]");
        std::process::exit(2)
    });
    let iterations: u32 = args.next().map_or(1000, |n| n.parse().expect("ITERATIONS is a number"));
    let options = ModelOptions::default();
    let ctx = ConvertContext {
        client_model: "bench-group",
        upstream_model: "bench-model",
        options: &options,
        created: 1_700_000_000,
        response_id: "0123456789abcdef0123456789abcdef",
        signing_key: b"bench-signing-key-bench-signing-k",
        route_stream: false,
    };
    if step == "raw-body" {
        let body = client_body(Protocol::OpenAi);
        measure(iterations, &mut || {
            black_box(RawBody::parse(black_box(&body)).expect("a JSON object"));
        });
        return;
    }
    if step == "token-count" {
        // A tool result as an agent sends it: a source file, new on every turn (a fresh first line each
        // time, so the estimate's memo of texts seen does not answer).
        let file = std::fs::read_to_string(format!("{}/src/relay/processor.rs", env!("CARGO_MANIFEST_DIR")))
            .expect("src/relay/processor.rs");
        let mut turn = 0u32;
        measure(iterations, &mut || {
            turn += 1;
            let body = serde_json::json!({"messages": [{"role": "user", "content": format!("{turn}\n{file}")}]});
            black_box(estimate_anthropic_input_tokens(black_box(&body), 1.0));
        });
        return;
    }
    if let Some(client) = step.strip_suffix("-rules").and_then(protocol) {
        let config = format!(
            "model_list:\n  - model_name: oai\n    llm_params: {{api_type: openai, model: m, api_base: \"http://127.0.0.1:1/v1\"}}\n\
             router_settings:\n  model_groups:\n    - {{name: oai-group, models: [{{name: oai}}]}}\n    \
             - {{name: ant-group, models: [{{name: oai}}]}}\n{}",
            std::fs::read_to_string(format!("{}/bench/rules.yaml", env!("CARGO_MANIFEST_DIR")))
                .expect("bench/rules.yaml")
        );
        let config = llm_router::config::parse(&config, std::path::Path::new("rules.yaml")).expect("valid");
        let pool = llm_router::upstream::ClientPool::new(None).expect("a client pool");
        let snapshot = llm_router::routing::Snapshot::build(config, None, &pool, &llm_router::metrics::Metrics::new());
        let body = client_body(client);
        let mut headers = http::HeaderMap::new();
        headers.insert("user-agent", http::HeaderValue::from_static("OpenAI/Python 1.109.1"));
        measure(iterations, &mut || {
            let routed = snapshot.route(client, "oai-group", black_box(&headers), black_box(&body), false);
            assert!(black_box(routed).is_some_and(|(_, rule)| rule.is_none()));
        });
        return;
    }
    if let Some(client) = step.strip_suffix("-decode").and_then(protocol) {
        let body = client_body(client);
        measure(iterations, &mut || match client {
            Protocol::OpenAi => drop(black_box(chat::request::decode(black_box(&body)).expect("decodes"))),
            Protocol::Anthropic => drop(black_box(messages::request::decode(black_box(&body)).expect("decodes"))),
            Protocol::Responses => drop(black_box(
                responses::request::decode(black_box(&body), ctx.signing_key).expect("decodes"),
            )),
            Protocol::Gemini => drop(black_box(gemini::request::decode(black_box(&body)).expect("decodes"))),
        });
        return;
    }
    let Some((client, upstream)) = protocols(&step) else {
        eprintln!("codec_cost: unknown step {step:?}");
        std::process::exit(2)
    };
    if step.ends_with("-request") {
        let body = client_body(client);
        measure(iterations, &mut || {
            black_box(hub::convert_request(client, upstream, black_box(&body), &ctx).expect("converts"));
        });
    } else {
        let answers = bodies::Answers::build();
        let (json, events) = match upstream {
            Protocol::OpenAi => (answers.openai_json, answers.openai_sse),
            Protocol::Anthropic => (answers.anthropic_json, answers.anthropic_sse),
            Protocol::Responses | Protocol::Gemini => unreachable!("the mock upstream speaks Chat and Messages"),
        };
        // The facts a real request leaves: convert the client body once, outside the count.
        let facts = |stream: bool| -> RequestFacts {
            let mut body = client_body(client);
            if stream {
                body.pop_if(|b| b.is_ascii_whitespace());
                body.pop();
                body.extend_from_slice(br#","stream":true}"#);
            }
            hub::convert_request(client, upstream, &body, &ctx)
                .expect("converts")
                .facts
        };
        if step.ends_with("-answer") {
            let facts = facts(false);
            measure(iterations, &mut || {
                let answer = hub::convert_answer(client, upstream, black_box(json.as_bytes()), &ctx, &facts);
                black_box(answer.expect("converts"));
            });
        } else {
            let facts = facts(true);
            let mut out = Vec::with_capacity(8192);
            measure(iterations, &mut || {
                let mut converter = hub::convert_stream(client, upstream, &ctx, facts.clone());
                let mut parser = SseParser::new();
                out.clear();
                for event in &events {
                    parser.feed(black_box(event.as_bytes()), |event| {
                        converter.on_event(event, &mut out);
                    });
                }
                converter.on_eof(&mut out);
                black_box(&out);
            });
        }
    }
}
