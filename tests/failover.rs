//! Fault injection: dead ports, error statuses, slow and stalling upstreams, broken streams, cooldowns and
//! cancellation, for both client protocols.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Two OpenAI-protocol deployments `a` (listed first) and `b` in group `g`, plus extra router settings.
fn two(a: &str, b: &str, settings: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: a
    llm_params: {{api_type: openai, model: ma, api_base: "{a}", api_key: sk-secret-a}}
  - model_name: b
    llm_params: {{api_type: openai, model: mb, api_base: "{b}", api_key: sk-secret-b}}
router_settings:
  strategy: roundrobin
{settings}
  model_groups:
    - name: g
      models: [{{name: a}}, {{name: b}}]
"#
    )
}

async fn chat(router: &TestRouter, body: Value) -> reqwest::Response {
    router.post("/v1/chat/completions", &body).await
}

async fn anthropic(router: &TestRouter, body: Value) -> reqwest::Response {
    router.post("/v1/messages", &body).await
}

fn simple() -> Value {
    json!({"model":"g","messages":[{"role":"user","content":"hi"}]})
}

#[tokio::test]
async fn dead_port_and_server_errors_fail_over_to_the_healthy_deployment() {
    let healthy = MockUpstream::fixed(Reply::json(oai_answer("b"))).await;
    for broken in [
        "http://127.0.0.1:9".to_owned(),
        MockUpstream::fixed(Reply::status(500, json!({"error":{"message":"boom"}})))
            .await
            .base(),
    ] {
        let router = TestRouter::start(&two(&broken, &healthy.base(), "")).await;
        for _ in 0..3 {
            let r = chat(&router, simple()).await;
            assert_eq!(r.status(), 200, "broken upstream {broken}");
            assert_eq!(r.json::<Value>().await.unwrap()["model"], "b");
        }
    }
}

#[tokio::test]
async fn overloaded_and_rate_limited_fail_over_and_cool_down() {
    let overloaded = MockUpstream::fixed(Reply::status(
        529,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
    ))
    .await;
    let limited = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error":{"message":"slow down","type":"rate_limit_error"}}).to_string(),
        headers: vec![("retry-after", "30".into())],
    })
    .await;
    let healthy = MockUpstream::fixed(Reply::json(oai_answer("b"))).await;

    for broken in [&overloaded, &limited] {
        let router = TestRouter::start(&two(&broken.base(), &healthy.base(), "  allowed_fails: 1")).await;
        let before = broken.count();
        for _ in 0..4 {
            let r = chat(&router, simple()).await;
            assert_eq!(r.status(), 200);
        }
        // Tried once, then cooled down (allowed_fails 1, or the 30 s Retry-After) and skipped.
        assert_eq!(broken.count() - before, 1);
    }
}

#[tokio::test]
async fn when_every_attempt_fails_the_client_gets_the_last_error() {
    // 429 stays 429 with its retry-after.
    let limited = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error":{"message":"slow down","type":"rate_limit_error"}}).to_string(),
        headers: vec![("retry-after", "2".into())],
    })
    .await;
    let router = TestRouter::start(&two(&limited.base(), &limited.base(), "")).await;
    let started = Instant::now();
    let r = chat(&router, simple()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(started.elapsed() < Duration::from_secs(2), "answered promptly");
    assert_eq!(limited.count(), 2, "each deployment tried once");

    // Nothing listening: 502, in the Anthropic shape for an Anthropic client.
    let router = TestRouter::start(&two("http://127.0.0.1:9", "http://127.0.0.1:9/v1", "")).await;
    let r = anthropic(
        &router,
        json!({"model":"g","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");

    // Slow first byte on both: 504.
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_secs(5),
        Box::new(Reply::json(oai_answer("slow"))),
    ))
    .await;
    let router = TestRouter::start(&two(&slow.base(), &slow.base(), "  timeout: 0.3")).await;
    let started = Instant::now();
    let r = chat(&router, simple()).await;
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn client_errors_are_relayed_at_once_not_retried() {
    let bad = MockUpstream::fixed(Reply::status(
        400,
        json!({"error":{"message":"bad request","type":"invalid_request_error"}}),
    ))
    .await;
    let healthy = MockUpstream::fixed(Reply::json(oai_answer("b"))).await;
    let router = TestRouter::start(&two(&bad.base(), &healthy.base(), "")).await;
    let r = chat(&router, simple()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(healthy.count(), 0);
}

#[tokio::test]
async fn slow_first_byte_fails_over_for_streams_and_json() {
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_secs(3),
        Box::new(Reply::sse(OAI_STREAM, 5)),
    ))
    .await;
    let healthy = MockUpstream::start(|req| {
        if req.json()["stream"] == true {
            Reply::sse(OAI_STREAM, 5)
        } else {
            Reply::json(oai_answer("b"))
        }
    })
    .await;
    let router = TestRouter::start(&two(&slow.base(), &healthy.base(), "  timeout: 0.3")).await;
    let started = Instant::now();
    let r = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(concat(&read_chunks(r).await), OAI_STREAM);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The abandoned slow request does not linger at the upstream.
    assert!(slow.settles_within(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn an_error_as_first_stream_event_fails_over() {
    let failing = MockUpstream::fixed(Reply::sse("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":\"server_is_overloaded\"}}\n\n", 7)).await;
    let healthy = MockUpstream::fixed(Reply::sse(OAI_STREAM, 5)).await;
    let router = TestRouter::start(&two(&failing.base(), &healthy.base(), "")).await;
    let r = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(concat(&read_chunks(r).await), OAI_STREAM);
    assert_eq!(failing.count(), 1);
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_in_band_error_in_both_protocols() {
    let head = &OAI_STREAM[..OAI_STREAM.find("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\"").unwrap()];
    let stalling = MockUpstream::fixed(Reply::Sse {
        pieces: vec![head.as_bytes().to_vec(), OAI_STREAM.as_bytes()[head.len()..].to_vec()],
        gap: Duration::from_secs(5),
        then_break: false,
    })
    .await;
    let router = TestRouter::start(&config_one(
        "g",
        "openai",
        &stalling.base(),
        "      stream_idle_timeout: 0.4",
    ))
    .await;

    // OpenAI client: a data: {"error":…} line and no [DONE].
    let started = Instant::now();
    let text = concat(&read_chunks(chat(&router, json!({"model":"g","stream":true,"messages":[]})).await).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stall detected: {:?}",
        started.elapsed()
    );
    assert!(text.contains("data: {\"error\":"), "{text}");
    assert!(!text.contains("[DONE]"));

    // Anthropic client through conversion: event: error and no message_stop.
    let text = concat(
        &read_chunks(
            anthropic(
                &router,
                json!({"model":"g","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
            )
            .await,
        )
        .await,
    );
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("event: error\ndata: {\"type\":\"error\""), "{text}");
    assert!(!text.contains("message_stop"));
    assert!(
        stalling.settles_within(Duration::from_secs(1)).await,
        "stalled upstream requests are dropped"
    );
}

#[tokio::test]
async fn a_slow_but_steady_stream_is_not_cut_by_the_idle_timeout() {
    // Six pieces 250 ms apart: 1.25 s in all, never silent for the 0.5 s limit.
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(OAI_STREAM.as_bytes(), OAI_STREAM.len() / 5),
        gap: Duration::from_millis(250),
        then_break: false,
    })
    .await;
    let router = TestRouter::start(&config_one(
        "g",
        "openai",
        &upstream.base(),
        "      stream_idle_timeout: 0.5",
    ))
    .await;
    let r = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    assert_eq!(concat(&read_chunks(r).await), OAI_STREAM);
}

#[tokio::test]
async fn a_stream_reset_mid_way_ends_with_an_in_band_error_for_converted_clients() {
    let two_events = &OAI_STREAM[..OAI_STREAM.find("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap()];
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(two_events.as_bytes(), 3),
        gap: Duration::from_millis(1),
        then_break: true,
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let r = anthropic(
        &router,
        json!({"model":"g","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    assert!(
        text.contains("\"text\":\"ok ✓\""),
        "multi-byte text split across writes arrives whole: {text}"
    );
    assert!(
        text.trim_end().ends_with('}') && text.contains("event: error"),
        "{text}"
    );
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    // A long stream: 100 events, 50 ms apart.
    let event = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n";
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: vec![event.as_bytes().to_vec(); 100],
        gap: Duration::from_millis(50),
        then_break: false,
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let mut response = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    assert!(response.chunk().await.unwrap().is_some());
    assert_eq!(upstream.in_flight.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop(response);
    assert!(
        upstream.settles_within(Duration::from_secs(1)).await,
        "upstream stream still open after the client left"
    );

    // Waiting for a slow non-streamed answer.
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_secs(10),
        Box::new(Reply::json(oai_answer("a"))),
    ))
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &slow.base(), "")).await;
    let request = http()
        .post(router.url("/v1/chat/completions"))
        .json(&simple())
        .timeout(Duration::from_millis(300))
        .send();
    assert!(request.await.is_err());
    assert!(
        slow.settles_within(Duration::from_secs(1)).await,
        "upstream request still open after the client left"
    );
}

#[tokio::test]
async fn upstream_errors_echoing_the_key_are_redacted() {
    let leaky = MockUpstream::fixed(Reply::status(
        401,
        json!({"error":{"message":"Incorrect API key provided: sk-upstream-secret","type":"invalid_request_error"}}),
    ))
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &leaky.base(), "")).await;
    let r = chat(&router, simple()).await;
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-upstream-secret"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    let r = anthropic(
        &router,
        json!({"model":"g","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("sk-upstream-secret"), "{text}");
}

#[tokio::test]
async fn slow_header_clients_are_disconnected_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("a"))).await;
    let config = config_one("g", "openai", &upstream.base(), "").replace(
        "  max_request_size_mb: 1\n",
        "  max_request_size_mb: 1\n  header_read_timeout: 0.5\n",
    );
    let router = TestRouter::start(&config).await;
    let mut slow = tokio::net::TcpStream::connect(router.base.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert_eq!(chat(&router, json!({"model":"g","messages":[]})).await.status(), 200);
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "slow client still connected after 3 s");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn shutdown_lets_streams_in_flight_finish() {
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(OAI_STREAM.as_bytes(), 40),
        gap: Duration::from_millis(60),
        then_break: false,
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let response = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    let base = router.base.clone();
    let reader = tokio::spawn(async move { concat(&read_chunks(response).await) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.shutdown().await;
    assert_eq!(
        reader.await.unwrap(),
        OAI_STREAM,
        "the stream in flight finished normally"
    );
    assert!(
        http().get(format!("{base}/health")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn shutdown_drain_is_bounded() {
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: vec![OAI_STREAM.as_bytes()[..10].to_vec(); 100],
        gap: Duration::from_millis(100),
        then_break: false,
    })
    .await;
    let config = config_one("g", "openai", &upstream.base(), "").replace(
        "  max_request_size_mb: 1\n",
        "  max_request_size_mb: 1\n  drain_timeout: 0.5\n",
    );
    let router = TestRouter::start(&config).await;
    let _response = chat(&router, json!({"model":"g","stream":true,"messages":[]})).await;
    let started = Instant::now();
    router.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drain took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_locally_answered_cache_prewarm_leaves_deployment_health_alone() {
    let failing = MockUpstream::fixed(Reply::status(500, json!({"error":{"message":"boom"}}))).await;
    let healthy = MockUpstream::fixed(Reply::json(oai_answer("b"))).await;
    // `a` takes nearly every turn while it is not cooling; two failures in a row cool it.
    let config = two(
        &failing.base(),
        &healthy.base(),
        "  num_retries: 0\n  allowed_fails: 2\n  cooldown_time: 60",
    )
    .replace(
        "models: [{name: a}, {name: b}]",
        "models: [{name: a, weight: 1000}, {name: b, weight: 1}]",
    );
    let router = TestRouter::start(&config).await;
    let ask =
        |max_tokens: u32| json!({"model":"g","max_tokens":max_tokens,"messages":[{"role":"user","content":"hi"}]});
    assert_eq!(anthropic(&router, ask(5)).await.status(), 500);
    // Claude Code's cache pre-warm: answered by the router, `a` is never contacted.
    assert_eq!(anthropic(&router, ask(0)).await.status(), 200);
    assert_eq!(failing.count(), 1);
    assert_eq!(anthropic(&router, ask(5)).await.status(), 500);
    // Two real failures in a row: `a` cools down and `b` answers.
    assert_eq!(anthropic(&router, ask(5)).await.status(), 200);
    assert_eq!(failing.count(), 2);
}

// ---------------------------------------------------------------------------------------------------------
// Key pools

/// One deployment `p` with the keys `keys`, in group `g`.
fn pool(base: &str, keys: &str, settings: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: p
    llm_params: {{api_type: openai, model: mp, api_base: "{base}", api_key: {keys}}}
router_settings:
{settings}
  model_groups:
    - name: g
      models: [{{name: p}}]
"#
    )
}

/// The bearer key of each request the upstream saw, in order.
fn keys_seen(upstream: &MockUpstream) -> Vec<String> {
    upstream
        .recorded()
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap()
                .trim_start_matches("Bearer ")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_key_pool_rotates_and_sets_refused_and_limited_keys_aside() {
    let limited_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream = MockUpstream::start(move |r| match r.header("authorization").unwrap() {
        "Bearer sk-bad" => Reply::status(
            401,
            json!({"error": {"message": "Incorrect API key sk-bad", "type": "invalid_request_error"}}),
        ),
        "Bearer sk-busy" if !limited_once.swap(true, std::sync::atomic::Ordering::SeqCst) => Reply::Json {
            status: 429,
            body: json!({"error": {"message": "rate limited", "type": "rate_limit_error"}}).to_string(),
            headers: vec![("retry-after", "1".into())],
        },
        _ => Reply::json(oai_answer("pool")),
    })
    .await;
    let base = format!("{}/v1", upstream.base());
    let router = TestRouter::start(&pool(&base, "[sk-good, sk-bad, sk-busy]", "  num_retries: 2")).await;

    // In turn: good; then bad (401, set aside), busy (429, set aside for 1 s), good again, in one request.
    for _ in 0..2 {
        assert_eq!(chat(&router, simple()).await.status(), 200);
    }
    assert_eq!(keys_seen(&upstream), ["sk-good", "sk-bad", "sk-busy", "sk-good"]);
    let status = router.get_json("/status.json").await;
    let d = &status["groups"][0]["deployments"][0];
    assert_eq!(d["keys"], 3, "{d}");
    assert_eq!(
        d["state"], "healthy",
        "one key still serves, so the deployment does not cool: {d}"
    );
    let aside = d["keys_aside"].as_array().unwrap();
    assert_eq!(aside.len(), 2, "{d}");
    assert_eq!(
        (&aside[0]["key"], &aside[0]["status"], &aside[0]["back_in_ms"]),
        (&json!(2), &json!(401), &Value::Null)
    );
    assert_eq!((&aside[1]["key"], &aside[1]["status"]), (&json!(3), &json!(429)));
    assert!(aside[1]["back_in_ms"].as_u64().unwrap() <= 1000);
    assert!(
        !status.to_string().contains("sk-"),
        "keys are named by position only: {status}"
    );

    // While they are aside, only the good key serves.
    for _ in 0..3 {
        assert_eq!(chat(&router, simple()).await.status(), 200);
    }
    assert_eq!(keys_seen(&upstream)[4..], ["sk-good", "sk-good", "sk-good"]);

    // After its Retry-After the limited key is back in turn; the refused one stays out until a reload.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..4 {
        assert_eq!(chat(&router, simple()).await.status(), 200);
    }
    let later = keys_seen(&upstream)[7..].to_vec();
    assert!(
        later.contains(&"sk-busy".to_owned()) && later.contains(&"sk-good".to_owned()),
        "{later:?}"
    );
    assert!(!later.contains(&"sk-bad".to_owned()), "{later:?}");

    // A reload that changes the deployment brings every key back.
    let fixed = pool(
        &base,
        "[sk-good, sk-bad, sk-busy]",
        "  num_retries: 2\n  cooldown_time: 31",
    );
    std::fs::write(&router.config_path, fixed.replace("model: mp", "model: mp2")).unwrap();
    let before = upstream.count();
    let mut reloaded = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status = router.get_json("/status.json").await;
        if status["groups"][0]["deployments"][0]["model"] == "mp2" {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the edit was applied");
    for _ in 0..3 {
        chat(&router, simple()).await;
    }
    assert!(
        keys_seen(&upstream)[before..].contains(&"sk-bad".to_owned()),
        "the refused key is tried again"
    );
}

#[tokio::test]
async fn a_pool_deployment_cools_only_when_every_key_is_set_aside() {
    let upstream = MockUpstream::fixed(Reply::status(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
    ))
    .await;
    let base = format!("{}/v1", upstream.base());
    let router = TestRouter::start(&pool(&base, "[sk-1, sk-2]", "  num_retries: 0\n  cooldown_time: 30")).await;
    let response = chat(&router, simple()).await;
    assert_eq!(response.status(), 429);
    let d = &router.get_json("/status.json").await["groups"][0]["deployments"][0];
    assert_eq!(d["state"], "healthy", "the second key still serves: {d}");
    assert_eq!(chat(&router, simple()).await.status(), 429);
    let d = &router.get_json("/status.json").await["groups"][0]["deployments"][0];
    assert_eq!(d["state"], "cooling", "both keys are aside: {d}");
    assert_eq!(keys_seen(&upstream), ["sk-1", "sk-2"]);
    let body: Value = chat(&router, simple()).await.json().await.unwrap();
    assert_eq!(
        upstream.count(),
        2,
        "a cooling deployment whose keys are all aside gets nothing: {body}"
    );
}
