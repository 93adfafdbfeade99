//! A fast mock LLM upstream for `bench/run.sh`: answers OpenAI `POST /v1/chat/completions` and Anthropic
//! `POST /v1/messages` with precomputed bodies and no artificial delay, as JSON or, when the request body
//! has `"stream": true`, as an SSE stream of realistic events (one HTTP chunk per event).
//!
//! ```text
//! cargo run --release --example bench_upstream -- [PORT] [WORKERS]
//! ```
//!
//! Listens on 127.0.0.1 only. PORT 0 (the default) picks a free port; the bound address is printed on stdout
//! as `bench_upstream listening on http://127.0.0.1:PORT`. WORKERS is the number of tokio worker threads
//! (default 1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;

/// The text every answer carries, cut into this many streamed pieces.
const WORDS: [&str; 20] = [
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",", " and", " the", " router",
    " relays", " every", " token", " without", " delay", ".", " Done",
];
const CREATED: u64 = 1_700_000_000;
const PROMPT_TOKENS: usize = 42;

/// Every body the mock can send, built once.
struct Bodies {
    openai_json: Bytes,
    openai_sse: Arc<[Bytes]>,
    anthropic_json: Bytes,
    anthropic_sse: Arc<[Bytes]>,
}

impl Bodies {
    fn build() -> Self {
        let text: String = WORDS.concat();
        let completion_tokens = WORDS.len();
        let total_tokens = PROMPT_TOKENS + completion_tokens;

        let openai_json = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{CREATED},"model":"bench-model","system_fingerprint":"fp_bench","choices":[{{"index":0,"message":{{"role":"assistant","content":{text:?},"refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{completion_tokens},"total_tokens":{total_tokens},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default"}}"#
        );

        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
            )
        };
        let mut openai_sse = vec![chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null")];
        for word in WORDS {
            openai_sse.push(chunk(&format!(r#"{{"content":{word:?}}}"#), "null"));
        }
        openai_sse.push(chunk("{}", r#""stop""#));
        openai_sse.push(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{completion_tokens},\"total_tokens\":{total_tokens}}}}}\n\n"
        ));
        openai_sse.push("data: [DONE]\n\n".to_owned());

        let anthropic_json = format!(
            r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[{{"type":"text","text":{text:?}}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{PROMPT_TOKENS},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{completion_tokens},"service_tier":"standard"}}}}"#
        );

        let event = |name: &str, data: String| format!("event: {name}\ndata: {data}\n\n");
        let mut anthropic_sse = vec![
            event(
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{PROMPT_TOKENS},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}}}}"#
                ),
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
            ),
            event("ping", r#"{"type": "ping"}"#.to_owned()),
        ];
        for word in WORDS {
            anthropic_sse.push(event(
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{word:?}}}}}"#
                ),
            ));
        }
        anthropic_sse.push(event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#.to_owned(),
        ));
        anthropic_sse.push(event(
            "message_delta",
            format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{completion_tokens}}}}}"#
            ),
        ));
        anthropic_sse.push(event("message_stop", r#"{"type":"message_stop"}"#.to_owned()));

        let to_bytes = |events: Vec<String>| events.into_iter().map(Bytes::from).collect();
        Self {
            openai_json: Bytes::from(openai_json),
            openai_sse: to_bytes(openai_sse),
            anthropic_json: Bytes::from(anthropic_json),
            anthropic_sse: to_bytes(anthropic_sse),
        }
    }
}

/// Whether a JSON request body asks for a stream: a `"stream"` key followed by `true` (any whitespace). The
/// bench request bodies have a single `"stream"` key, so no full parse is needed.
fn wants_stream(body: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(body, b"\"stream\"") else {
        return false;
    };
    let rest = body[at + 8..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace() || **b == b':')
        .take(4)
        .copied()
        .collect::<Vec<u8>>();
    rest == b"true"
}

fn json(body: &Bytes) -> Response {
    let mut response = Response::new(Body::from(body.clone()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One HTTP chunk per SSE event, as real providers send them.
fn sse(events: &Arc<[Bytes]>) -> Response {
    let events = events.clone();
    let stream = futures_util::stream::iter((0..events.len()).map(move |i| Ok::<_, Infallible>(events[i].clone())));
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn chat_completions(State(bodies): State<Arc<Bodies>>, body: Bytes) -> Response {
    if wants_stream(&body) {
        sse(&bodies.openai_sse)
    } else {
        json(&bodies.openai_json)
    }
}

async fn messages(State(bodies): State<Arc<Bodies>>, body: Bytes) -> Response {
    if wants_stream(&body) {
        sse(&bodies.anthropic_sse)
    } else {
        json(&bodies.anthropic_json)
    }
}

async fn not_found() -> Response {
    let mut response = Response::new(Body::from(Bytes::from_static(
        br#"{"error":{"message":"bench_upstream: no such route","type":"invalid_request_error"}}"#,
    )));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(arg) => arg
            .parse()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad port {arg:?}")))?,
        None => 0,
    };
    let workers: usize = match args.next() {
        Some(arg) => arg.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad worker count {arg:?}"))
        })?,
        None => 1,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .fallback(not_found)
        .with_state(Arc::new(Bodies::build()));
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("bench_upstream listening on http://{addr}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_is_found_with_any_spacing() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(b"{\"stream\" :\n  true, \"x\": 1}"));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
    }

    #[test]
    fn bodies_are_valid_json_and_sse() {
        let bodies = Bodies::build();
        let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        parse(&bodies.openai_json);
        parse(&bodies.anthropic_json);
        for (events, last) in [
            (&bodies.openai_sse, "[DONE]"),
            (&bodies.anthropic_sse, r#"{"type":"message_stop"}"#),
        ] {
            assert!(events.len() >= 24);
            for event in events.iter() {
                let text = std::str::from_utf8(event).unwrap();
                assert!(text.ends_with("\n\n"));
                let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                if data != "[DONE]" {
                    parse(data.as_bytes());
                }
            }
            let end = std::str::from_utf8(events.last().unwrap()).unwrap();
            assert!(end.contains(last));
        }
    }
}
