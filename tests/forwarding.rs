//! Same-protocol forwarding end to end: the real server on 127.0.0.1 in front of mock upstreams.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const OAI_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo 你好 🌍\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n"
);

const ANT_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"grüß 😀\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
);

fn oai_answer() -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-model",
           "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})
}

#[tokio::test]
async fn openai_body_passes_through_with_model_and_rewrite_body_applied() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer())).await;
    let extra = r#"      rewrite_body: '{"enable_thinking": false, "metadata": null, "max_tokens": 8192}'"#;
    let router = TestRouter::start(&config_one(
        "gpt_models",
        "openai",
        &format!("{}/v1/", upstream.base()),
        extra,
    ))
    .await;
    let body = r#"{"model":"gpt_models","messages":[{"role":"user","content":"Hello"}],"x_vendor":{"keep":[1,2.50]},"metadata":{"a":"b"},"max_tokens":5}"#;
    let response = http()
        .post(router.url("/v1/chat/completions"))
        .header("authorization", "Bearer client-credential")
        .header("cookie", "session=1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.unwrap(), oai_answer());

    let seen = upstream.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    // Unknown fields survive byte for byte; only model and the rewrite_body keys change.
    assert_eq!(
        String::from_utf8(seen.body.clone()).unwrap(),
        r#"{"model":"upstream-model","messages":[{"role":"user","content":"Hello"}],"x_vendor":{"keep":[1,2.50]},"metadata":null,"max_tokens":8192,"enable_thinking":false}"#
    );
    assert_eq!(seen.header("authorization"), Some("Bearer sk-upstream-secret"));
    assert_eq!(seen.header("cookie"), None);
    assert_eq!(seen.header("x-api-key"), None);
}

#[tokio::test]
async fn anthropic_request_gets_key_version_and_beta() {
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],
                        "model":"upstream-model","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}});
    let upstream = MockUpstream::fixed(Reply::json(answer.clone())).await;
    let router = TestRouter::start(&config_one("claude", "anthropic", &upstream.base(), "")).await;
    let response = http()
        .post(router.url("/v1/messages"))
        .header("x-api-key", "client-credential")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&json!({"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"Hello"}],"thinking":{"type":"enabled","budget_tokens":1024}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), answer);
    let seen = upstream.last();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("sk-upstream-secret"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.json()["model"], "upstream-model");
    assert_eq!(seen.json()["thinking"], json!({"type":"enabled","budget_tokens":1024}));
}

#[tokio::test]
async fn rewrite_header_sets_and_removes_upstream_headers() {
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],
                        "model":"upstream-model","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}});
    let upstream = MockUpstream::fixed(Reply::json(answer)).await;
    let extra =
        "      rewrite_header:\n        X-Tenant: team-a\n        anthropic-beta: null\n        x-api-key: sk-pooled";
    let router = TestRouter::start(&config_one("claude", "anthropic", &upstream.base(), extra)).await;
    let response = http()
        .post(router.url("/v1/messages"))
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .header("x-tenant", "client-says-otherwise")
        .json(&json!({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.header("x-tenant"), Some("team-a"));
    assert_eq!(
        seen.header("anthropic-beta"),
        None,
        "removed, although the client sent one"
    );
    assert_eq!(seen.header("x-api-key"), Some("sk-pooled"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn openai_stream_is_relayed_unchanged_and_event_by_event() {
    // 7-byte pieces: events, lines and multi-byte characters all cross write boundaries.
    let upstream = MockUpstream::fixed(Reply::sse(OAI_STREAM, 7)).await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let started = Instant::now();
    let response = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","stream":true,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = read_chunks(response).await;
    assert_eq!(concat(&chunks), OAI_STREAM);
    assert!(
        chunks.len() >= 4,
        "relayed event by event, not in one piece ({} chunks)",
        chunks.len()
    );
    assert!(chunks[0].0 < chunks.last().unwrap().0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn first_event_reaches_the_client_before_the_upstream_finishes() {
    let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: vec![first.as_bytes().to_vec(), b"data: [DONE]\n\n".to_vec()],
        gap: Duration::from_millis(600),
        then_break: false,
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let sent = Instant::now();
    let response = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","stream":true,"messages":[]}),
        )
        .await;
    let chunks = read_chunks(response).await;
    assert_eq!(concat(&chunks), format!("{first}data: [DONE]\n\n"));
    let first_at = chunks[0].0 - sent;
    let last_at = chunks.last().unwrap().0 - sent;
    assert!(
        last_at - first_at >= Duration::from_millis(400),
        "first {first_at:?}, last {last_at:?}"
    );
}

#[tokio::test]
async fn anthropic_stream_is_relayed_unchanged() {
    let upstream = MockUpstream::fixed(Reply::sse(ANT_STREAM, 5)).await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let response = router
        .post(
            "/v1/messages",
            &json!({"model":"c","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(concat(&read_chunks(response).await), ANT_STREAM);
}

#[tokio::test]
async fn broken_streams_end_with_an_in_band_error() {
    // OpenAI: the connection breaks after two events.
    let two = &OAI_STREAM[..OAI_STREAM
        .find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},")
        .unwrap()];
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(two.as_bytes(), 9),
        gap: Duration::from_millis(1),
        then_break: true,
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let response = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","stream":true,"messages":[]}),
        )
        .await;
    let text = concat(&read_chunks(response).await);
    assert!(text.starts_with(two), "{text}");
    let tail = &text[two.len()..];
    assert!(tail.starts_with("data: {\"error\":{\"message\":\"upstream"), "{tail}");
    assert!(!text.contains("[DONE]"));

    // Anthropic: the upstream ends cleanly at the HTTP level but before message_stop.
    let cut = &ANT_STREAM[..ANT_STREAM.find("event: message_delta").unwrap()];
    let upstream = MockUpstream::fixed(Reply::sse(cut, 11)).await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let response = router
        .post(
            "/v1/messages",
            &json!({"model":"c","stream":true,"max_tokens":10,"messages":[]}),
        )
        .await;
    let text = concat(&read_chunks(response).await);
    let tail = &text[cut.len()..];
    assert!(
        tail.starts_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""),
        "{tail}"
    );
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn an_error_as_first_stream_event_becomes_an_http_error() {
    let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let upstream = MockUpstream::fixed(Reply::sse(error, 4)).await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let response = router
        .post(
            "/v1/messages",
            &json!({"model":"c","stream":true,"max_tokens":10,"messages":[]}),
        )
        .await;
    assert_eq!(response.status(), 529);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn upstream_errors_keep_their_status_and_retry_after() {
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}})
            .to_string(),
        headers: vec![("retry-after", "7".into()), ("set-cookie", "x=y".into())],
    })
    .await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let response = router
        .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "slow down");

    // A non-JSON error page is wrapped into the client's shape.
    let upstream = MockUpstream::fixed(Reply::Raw {
        status: 502,
        content_type: "text/html",
        body: "<h1>Bad Gateway</h1>".into(),
    })
    .await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let response = router
        .post("/v1/messages", &json!({"model":"c","max_tokens":1,"messages":[]}))
        .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("<h1>Bad Gateway</h1>")
    );
}

#[tokio::test]
async fn router_errors_come_in_the_client_shape() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer())).await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let client = http();
    let post = |path: &str, body: &str| {
        client
            .post(router.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };

    let r = post("/v1/chat/completions", "{not json").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );

    let r = post("/v1/messages", "{not json").await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );

    let r = post("/v1/chat/completions", r#"{"model":"nope","messages":[]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("available: g"));
    assert!(!v.to_string().contains("sk-upstream-secret"));

    let r = post("/v1/messages", r#"{"model":"nope","max_tokens":1,"messages":[]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");

    let r = post("/v1/chat/completions", r#"{"model":"g","messages":"hi"}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "messages");

    // The test router's body limit is 1 MiB.
    let big = format!(
        r#"{{"model":"g","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let r = post("/v1/messages", &big).await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "request_too_large");
    assert_eq!(upstream.count(), 0, "nothing invalid reached the upstream");
}

#[tokio::test]
async fn unreachable_upstream_is_502_without_secrets() {
    // Port 9 on loopback: nothing listens there.
    let router = TestRouter::start(&config_one("g", "openai", "http://127.0.0.1:9/v1", "")).await;
    let r = router
        .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
        .await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("unreachable"), "{text}");
    assert!(
        !text.contains("sk-upstream-secret") && !text.contains("127.0.0.1:9"),
        "{text}"
    );
}

#[tokio::test]
async fn roundrobin_follows_weights_across_deployments() {
    let a = MockUpstream::fixed(Reply::json(json!({"from":"a"}))).await;
    let b = MockUpstream::fixed(Reply::json(json!({"from":"b"}))).await;
    let config = format!(
        r#"
model_list:
  - model_name: a
    llm_params: {{api_type: openai, model: ma, api_base: "{}"}}
  - model_name: b
    llm_params: {{api_type: openai, model: mb, api_base: "{}"}}
router_settings:
  strategy: roundrobin
  model_groups:
    - name: g
      models: [{{name: a, weight: 1}}, {{name: b, weight: 2}}]
"#,
        a.base(),
        b.base()
    );
    let router = TestRouter::start(&config).await;
    let mut sequence = String::new();
    for _ in 0..6 {
        let r = router
            .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
            .await;
        sequence.push_str(r.json::<Value>().await.unwrap()["from"].as_str().unwrap());
    }
    assert_eq!(sequence, "babbab");
    // A model_list name works directly too.
    let r = router
        .post("/v1/chat/completions", &json!({"model":"a","messages":[]}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["from"], "a");
    assert_eq!(a.last().json()["model"], "ma");
}

#[tokio::test]
async fn aliases_route_fixed_helper_model_names_to_a_group() {
    let answer = json!({"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],
                        "model":"upstream-model","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}});
    let upstream = MockUpstream::fixed(Reply::json(answer)).await;
    let config = config_one("claude", "anthropic", &upstream.base(), "").replace(
        "        - name: m1\n",
        "        - name: m1\n      aliases: [\"claude-haiku-*\"]\n",
    );
    let router = TestRouter::start(&config).await;
    let ask = |model: &str| {
        http()
            .post(router.url("/v1/messages"))
            .json(&json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
    };
    // Claude Code's fixed helper model is served by the group its alias names.
    let response = ask("claude-haiku-4-5-20251001").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.last().json()["model"], "upstream-model");
    // A name that matches no group and no alias is still unknown, in the client's error shape.
    let response = ask("claude-opus-4-1").await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(upstream.requests.lock().unwrap().len(), 1);
    // Aliases are not listed: `GET /v1/models` names the groups clients configure.
    let models: Value = router.get_json("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude"]);
    router.shutdown().await;
}

/// An upstream error event that quotes the deployment's key, in pieces that split the key: the client never
/// sees the key, relayed as is or converted.
#[tokio::test]
async fn the_upstream_key_is_scrubbed_from_streams() {
    let started = &ANT_STREAM[..ANT_STREAM.find("event: content_block_stop").unwrap()];
    let quoting = format!(
        "{started}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"key sk-upstream-secret was revoked\"}}}}\n\n"
    );
    let upstream = MockUpstream::fixed(Reply::sse(&quoting, 3)).await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let relayed = router
        .post(
            "/v1/messages",
            &json!({"model":"c","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    let text = concat(&read_chunks(relayed).await);
    assert!(text.starts_with(started), "{text}");
    assert!(
        text.contains("key [redacted] was revoked") && !text.contains("sk-upstream-secret"),
        "{text}"
    );

    let converted = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"c","stream":true,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    let text = concat(&read_chunks(converted).await);
    assert!(text.contains("grüß 😀"), "{text}");
    assert!(
        text.contains("[redacted]") && !text.contains("sk-upstream-secret"),
        "{text}"
    );
}
