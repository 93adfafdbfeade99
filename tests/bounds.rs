//! Every read has a deadline and every buffer a cap: upstream bodies that stall, stream events that never
//! end, upstreams that keep the connection open after their last event, clients that trickle their body or
//! open too many connections. Each misbehaving peer is a [`RawUpstream`] or a raw socket on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Group `g` of the given `(api_type, api_base)` deployments in order, with extra `router_settings` lines.
fn group(deployments: &[(&str, &str)], settings: &str) -> String {
    let mut config = String::from("model_list:\n");
    let mut members = Vec::new();
    for (i, (api_type, base)) in deployments.iter().enumerate() {
        config.push_str(&format!(
            "  - model_name: d{i}\n    llm_params: {{api_type: {api_type}, model: up, api_base: \"{base}\", api_key: sk-secret-{i}}}\n"
        ));
        members.push(format!("{{name: d{i}}}"));
    }
    config.push_str(&format!(
        "router_settings:\n  strategy: roundrobin\n{settings}\n  model_groups:\n    - name: g\n      models: [{}]\n",
        members.join(", ")
    ));
    config
}

/// The request for a client route, streamed or not.
fn request(route: &str, stream: bool) -> Value {
    match route {
        "/v1/messages" => {
            json!({"model":"g","max_tokens":16,"stream":stream,"messages":[{"role":"user","content":"hi"}]})
        }
        _ => json!({"model":"g","stream":stream,"messages":[{"role":"user","content":"hi"}]}),
    }
}

/// POSTs with a client-side limit, so a router that hangs fails the test instead of stalling it.
async fn post(router: &TestRouter, route: &str, body: &Value) -> reqwest::Response {
    http()
        .post(router.url(route))
        .timeout(Duration::from_secs(10))
        .json(body)
        .send()
        .await
        .expect("the router answers in time")
}

/// A body that starts, then stalls with most of its declared length missing.
fn stalled_body(status: u16) -> Vec<Step> {
    vec![
        Step::Write(http_head(
            status,
            "content-type: application/json\r\ncontent-length: 400\r\n",
        )),
        Step::Write(b"{\"id\":\"chatcmpl-stall\",".to_vec()),
        Step::Hold,
    ]
}

#[tokio::test]
async fn a_stalled_upstream_body_is_a_failed_attempt_that_fails_over() {
    let healthy = MockUpstream::fixed(Reply::json(oai_answer("from b"))).await;
    // An error body, a same-protocol answer and an answer that must be converted: all read within `timeout`.
    for (status, route) in [
        (500, "/v1/chat/completions"),
        (200, "/v1/chat/completions"),
        (200, "/v1/messages"),
    ] {
        let stalling = RawUpstream::start(stalled_body(status)).await;
        let config = group(
            &[("openai", &stalling.base()), ("openai", &healthy.base())],
            "  timeout: 1\n  num_retries: 1",
        );
        let router = TestRouter::start(&config).await;
        let started = Instant::now();
        let r = post(&router, route, &request(route, false)).await;
        assert_eq!(r.status(), 200, "{status} {route}");
        let text = r.text().await.unwrap();
        assert!(text.contains("from b"), "{status} {route}: {text}");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        assert_eq!(stalling.count(), 1);
    }
}

#[tokio::test]
async fn a_stalled_body_of_the_only_deployment_is_a_504_in_the_client_shape() {
    let stalling = RawUpstream::start(stalled_body(200)).await;
    let router = TestRouter::start(&group(
        &[("openai", &stalling.base())],
        "  timeout: 0.5\n  num_retries: 0",
    ))
    .await;
    let r = post(&router, "/v1/chat/completions", &request("/v1/chat/completions", false)).await;
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("timed out"),
        "{body}"
    );
    let r = post(&router, "/v1/messages", &request("/v1/messages", false)).await;
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
}

/// A stream whose event never ends: 64 MiB without a newline, as fast as the router reads.
fn endless_event(first: &str) -> Vec<Step> {
    let mut script = vec![Step::Write(sse_head())];
    if !first.is_empty() {
        script.push(Step::Write(http_chunk(first.as_bytes())));
    }
    script.push(Step::Write(http_chunk(b"data: {\"id\":\"")));
    script.push(Step::Flood {
        piece: vec![b'a'; 64 * 1024],
        total: 64 << 20,
    });
    script
}

#[tokio::test]
async fn an_endless_first_event_fails_over_at_the_event_cap() {
    let healthy = MockUpstream::fixed(Reply::sse(OAI_STREAM, 7)).await;
    for route in ["/v1/chat/completions", "/v1/messages"] {
        let flooding = RawUpstream::start(endless_event("")).await;
        let config = group(
            &[("openai", &flooding.base()), ("openai", &healthy.base())],
            "  max_event_size_mb: 1\n  num_retries: 1",
        );
        let router = TestRouter::start(&config).await;
        let started = Instant::now();
        let r = post(&router, route, &request(route, true)).await;
        assert_eq!(r.status(), 200, "{route}");
        let text = concat(&read_chunks(r).await);
        assert!(text.contains("ok ✓"), "{route}: {text}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(flooding.count(), 1);
    }
}

#[tokio::test]
async fn an_endless_event_after_the_first_ends_the_stream_with_an_in_band_error() {
    let first = &OAI_STREAM[..OAI_STREAM.find("\n\n").unwrap() + 2];
    let flooding = RawUpstream::start(endless_event(first)).await;
    let router = TestRouter::start(&group(&[("openai", &flooding.base())], "  max_event_size_mb: 1")).await;

    let started = Instant::now();
    let r = post(&router, "/v1/chat/completions", &request("/v1/chat/completions", true)).await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    assert!(text.starts_with(first), "{}", &text[..text.len().min(300)]);
    assert!(
        text.contains("data: {\"error\":") && text.contains("max_event_size_mb"),
        "{text}"
    );
    assert!(!text.contains("[DONE]") && !text.contains("aaaa"));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let r = post(&router, "/v1/messages", &request("/v1/messages", true)).await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: error\ndata: {\"type\":\"error\""), "{text}");
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn the_answer_ends_at_the_final_event_although_the_upstream_stays_open() {
    // (upstream protocol, its stream, client route): same protocol and converted, both ways.
    let cases = [
        ("openai", OAI_STREAM, "/v1/chat/completions"),
        ("openai", OAI_STREAM, "/v1/messages"),
        ("anthropic", ANT_STREAM, "/v1/messages"),
        ("anthropic", ANT_STREAM, "/v1/chat/completions"),
    ];
    for (api_type, stream, route) in cases {
        let mut script = vec![Step::Write(sse_head())];
        script.extend(sse_chunks(stream, 9));
        script.push(Step::Hold);
        let lingering = RawUpstream::start(script).await;
        let router = TestRouter::start(&group(&[(api_type, &lingering.base())], "")).await;
        let started = Instant::now();
        let r = post(&router, route, &request(route, true)).await;
        assert_eq!(r.status(), 200);
        let text = concat(&read_chunks(r).await);
        let elapsed = started.elapsed();
        assert!(text.contains("ok ✓"), "{api_type} {route}: {text}");
        assert!(
            elapsed < Duration::from_secs(2),
            "{api_type} {route}: answer closed after {elapsed:?}"
        );
        // The upstream connection is dropped, not left to the upstream's mercy.
        let deadline = Instant::now() + Duration::from_secs(2);
        while lingering.closed_by_router.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{api_type} {route}: upstream connection left open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_its_body_gets_408_and_nothing_goes_upstream() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("a"))).await;
    let router = TestRouter::start(&group(&[("openai", &upstream.base())], "  body_read_timeout: 0.5")).await;
    let mut socket = TcpStream::connect(router.base.trim_start_matches("http://"))
        .await
        .unwrap();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut answer))
        .await
        .expect("the router answers a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_request_refused_before_its_body_is_read_is_told_the_connection_closes() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("a"))).await;
    let config = group(&[("openai", &upstream.base())], "");
    let router = TestRouter::start_with(&config, Some("router-token"), None).await;
    let addr = router.base.trim_start_matches("http://").to_owned();
    async fn read_answer(socket: &mut TcpStream) -> String {
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut answer))
            .await
            .expect("the router answers")
            .unwrap();
        String::from_utf8_lossy(&answer[..n]).to_lowercase()
    }

    // The head of a POST with a wrong key, its body not sent yet: as an SDK writes them, in two writes.
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: r\r\nauthorization: Bearer wrong\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut socket).await;
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(3), socket.read(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the connection closes after the answer: {closed:?}"
    );

    // A refused request with no body leaves nothing unread: its connection stays open for the next one.
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        socket
            .write_all(b"GET /v1/models HTTP/1.1\r\nhost: r\r\nauthorization: Bearer wrong\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut socket).await;
        assert!(answer.starts_with("http/1.1 401"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn beyond_max_connections_accepting_waits_for_a_connection_to_close() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("a"))).await;
    let router = TestRouter::start(&group(&[("openai", &upstream.base())], "  max_connections: 2")).await;
    let addr = router.base.trim_start_matches("http://").to_owned();
    let first = TcpStream::connect(&addr).await.unwrap();
    let _second = TcpStream::connect(&addr).await.unwrap();
    // Let the router accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nhost: r\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let waited = tokio::time::timeout(Duration::from_millis(400), third.read(&mut answer)).await;
    assert!(waited.is_err(), "the third connection was served while two were open");
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut answer))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
}
