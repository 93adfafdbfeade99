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

#[path = "../bench/bodies.rs"]
mod bodies;

use bodies::Answers;

/// Every body the mock can send, built once.
struct Bodies {
    openai_json: Bytes,
    openai_sse: Arc<[Bytes]>,
    anthropic_json: Bytes,
    anthropic_sse: Arc<[Bytes]>,
}

impl Bodies {
    fn build() -> Self {
        let answers = Answers::build();
        let to_bytes = |events: Vec<String>| events.into_iter().map(Bytes::from).collect();
        Self {
            openai_json: Bytes::from(answers.openai_json),
            openai_sse: to_bytes(answers.openai_sse),
            anthropic_json: Bytes::from(answers.anthropic_json),
            anthropic_sse: to_bytes(answers.anthropic_sse),
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
