//! Client keys on one router: who is let in (401), to which groups (403), how many requests and tokens
//! (429 with `retry-after`, nothing sent upstream), what a reload does to them, and where their names (never
//! their values) show up: the log line, the metrics, the status page and `--check-config`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{MockUpstream, Recorded, Reply, RouterProcess, TestRouter, http, metrics_text, oai_answer};

const ALICE: &str = "sk-alice-0123456789";
const BOB: &str = "sk-bob-0123456789";

/// SHA-256 of `BOB`, as `key_sha256` takes it.
fn bob_sha256() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, BOB.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Two groups on one upstream, and `keys` as the `client_keys` list (YAML flow entries, one per line).
fn config(base: &str, keys: &[String]) -> String {
    let keys: String = keys.iter().map(|k| format!("    - {k}\n")).collect();
    format!(
        r#"
model_list:
  - model_name: m1
    llm_params: {{api_type: openai, model: upstream-model, api_base: {base}}}
router_settings:
  model_groups:
    - {{name: team-chat, models: [{{name: m1}}]}}
    - {{name: other, models: [{{name: m1}}]}}
  client_keys:
{keys}"#
    )
}

fn chat_body(group: &str) -> Value {
    json!({"model": group, "messages": [{"role": "user", "content": "hi"}]})
}

async fn chat(router: &TestRouter, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = http().post(router.url("/v1/chat/completions")).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn status_and_text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn every_api_request_needs_a_known_key_that_has_not_expired() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("up"))).await;
    let keys = [
        format!("{{name: alice, key: {ALICE}}}"),
        format!("{{name: bob, key_sha256: {}}}", bob_sha256()),
        "{name: carol, key: sk-carol-0123456789, expires: \"2020-01-01T00:00:00Z\"}".to_owned(),
    ];
    let router = TestRouter::start_with(&config(&upstream.base(), &keys), Some("the-token"), None).await;
    let body = chat_body("team-chat");
    assert_eq!(chat(&router, Some(ALICE), &body).await.status(), 200);
    assert_eq!(
        chat(&router, Some("the-token"), &body).await.status(),
        200,
        "--token is a key too"
    );
    // Bob's entry holds only the hash; his SDK sends x-api-key on the Messages route.
    let messages = json!({"model": "team-chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let response = http()
        .post(router.url("/v1/messages"))
        .header("x-api-key", BOB)
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.count(), 3);

    for key in [None, Some("sk-wrong"), Some(&ALICE[..ALICE.len() - 1])] {
        let (status, text) = status_and_text(chat(&router, key, &body).await).await;
        assert_eq!(status, 401, "{key:?}");
        assert!(text.contains("invalid_api_key"), "{text}");
    }
    let (status, text) = status_and_text(chat(&router, Some("sk-carol-0123456789"), &body).await).await;
    assert_eq!(status, 401);
    assert!(text.contains("'carol' has expired"), "{text}");
    assert!(!text.contains("sk-carol"), "{text}");
    // In the client's own shape: an Anthropic client gets an Anthropic error.
    let response = http()
        .post(router.url("/v1/messages"))
        .header("x-api-key", "sk-wrong")
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    // Every /v1 route, the models list included.
    let response = http().get(router.url("/v1/models")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = http()
        .get(router.url("/v1/models"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.count(), 3, "nothing refused went upstream");
}

#[tokio::test]
async fn client_keys_without_a_token_still_close_the_router() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("up"))).await;
    let keys = [format!("{{name: alice, key: {ALICE}}}")];
    let router = TestRouter::start(&config(&upstream.base(), &keys)).await;
    assert_eq!(chat(&router, None, &chat_body("team-chat")).await.status(), 401);
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
}

#[tokio::test]
async fn a_key_uses_only_its_groups() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("up"))).await;
    let keys = [format!("{{name: alice, key: {ALICE}, groups: [\"team-*\"]}}")];
    let router = TestRouter::start(&config(&upstream.base(), &keys)).await;
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
    let (status, text) = status_and_text(chat(&router, Some(ALICE), &chat_body("other")).await).await;
    assert_eq!(status, 403);
    assert!(
        text.contains("the key 'alice' may not use the model group 'other'"),
        "{text}"
    );
    assert!(!text.contains(ALICE), "{text}");
    // count_tokens routes too, and is refused alike (Anthropic's shape).
    let response = http()
        .post(router.url("/v1/messages/count_tokens"))
        .header("x-api-key", ALICE)
        .json(&json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "permission_error", "{error}");
    assert_eq!(upstream.count(), 1);
    // The models list shows the key the groups it may use.
    let list: Value = http()
        .get(router.url("/v1/models"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["team-chat"]);
}

#[tokio::test]
async fn rpm_refuses_with_retry_after_and_sends_nothing_upstream() {
    let upstream = MockUpstream::fixed(Reply::json(oai_answer("up"))).await;
    let keys = [
        format!("{{name: alice, key: {ALICE}, rpm: 3}}"),
        format!("{{name: bob, key: {BOB}}}"),
    ];
    let router = TestRouter::start(&config(&upstream.base(), &keys)).await;
    for _ in 0..3 {
        assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
    }
    let response = chat(&router, Some(ALICE), &chat_body("team-chat")).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The three requests leave the window about a minute after they came.
    assert!(
        (59..=61).contains(&retry_after),
        "when the burst leaves the window: {retry_after}"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("'alice'") && text.contains("rpm") && !text.contains(ALICE),
        "{text}"
    );
    assert!(text.contains("rate_limit_exceeded"), "{text}");
    // Gemini clients get Google's shape.
    let response = http()
        .post(router.url("/v1beta/models/team-chat:generateContent"))
        .header("x-goog-api-key", ALICE)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED", "{error}");
    assert_eq!(upstream.count(), 3);
    // Another key has its own limits.
    assert_eq!(chat(&router, Some(BOB), &chat_body("team-chat")).await.status(), 200);
}

/// An upstream that reports `usage` tokens of output for every answer.
async fn reporting(usage: u64) -> MockUpstream {
    MockUpstream::fixed(Reply::json(
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": usage, "total_tokens": 5 + usage}}),
    ))
    .await
}

#[tokio::test]
async fn tpm_reserves_the_estimate_and_settles_with_the_real_usage() {
    // Each request reserves its prompt estimate plus max_tokens 900 of a bucket of 1000.
    let frugal = reporting(5).await;
    let keys = [format!("{{name: alice, key: {ALICE}, tpm: 1000}}")];
    let router = TestRouter::start(&config(&frugal.base(), &keys)).await;
    let body = json!({"model": "team-chat", "max_tokens": 900, "messages": [{"role": "user", "content": "hi"}]});
    // Settled with 10 tokens used, each request gives most of its reservation back: all three pass.
    for _ in 0..3 {
        assert_eq!(chat(&router, Some(ALICE), &body).await.status(), 200);
    }
    // Two at once: the second finds the first's reservation taken and is refused before it is sent.
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_millis(400),
        Box::new(Reply::json(oai_answer("slow"))),
    ))
    .await;
    std::fs::write(&router.config_path, config(&slow.base(), &keys)).unwrap();
    wait_until_served_by(&router, ALICE, "slow").await;
    let first = {
        let (url, body) = (router.url("/v1/chat/completions"), body.clone());
        tokio::spawn(async move {
            http()
                .post(url)
                .bearer_auth(ALICE)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = chat(&router, Some(ALICE), &body).await;
    assert_eq!(response.status(), 429);
    assert!(response.text().await.unwrap().contains("tpm"));
    assert_eq!(first.await.unwrap(), 200);

    // An answer that used far more than it reserved leaves the bucket owing: the next request waits.
    let greedy = reporting(5000).await;
    std::fs::write(&router.config_path, config(&greedy.base(), &keys)).unwrap();
    let started = Instant::now();
    loop {
        let small = json!({"model": "team-chat", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]});
        let response = chat(&router, Some(ALICE), &small).await;
        if response.status() == 429 {
            let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry_after > 30, "in debt for most of a minute: {retry_after}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the debt never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(greedy.count() >= 1);
}

/// Waits until the router's answers for `key` come from the upstream named `from` (a reload applied).
async fn wait_until_served_by(router: &TestRouter, key: &str, from: &str) {
    let started = Instant::now();
    let body = json!({"model": "team-chat", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]});
    loop {
        let response = chat(router, Some(key), &body).await;
        if response.status() == 200 {
            let answer: Value = response.json().await.unwrap();
            if answer["choices"][0]["message"]["content"] == from {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the reload never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_parallel_counts_requests_in_flight() {
    let upstream = MockUpstream::fixed(Reply::Delayed(
        Duration::from_millis(400),
        Box::new(Reply::json(oai_answer("up"))),
    ))
    .await;
    let keys = [format!("{{name: alice, key: {ALICE}, max_parallel: 2}}")];
    let router = Arc::new(TestRouter::start(&config(&upstream.base(), &keys)).await);
    let requests: Vec<_> = (0..3)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * i)).await;
                chat(&router, Some(ALICE), &chat_body("team-chat"))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(upstream.count(), 2);
    // The slots are free again once the answers are in.
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_refuses_a_removed_key_at_once_and_keeps_the_limits_of_unchanged_ones() {
    let upstream = MockUpstream::start(|request: &Recorded| {
        let slow = request.json()["messages"][0]["content"] == "slow";
        let answer = Reply::json(oai_answer("up"));
        match slow {
            true => Reply::Delayed(Duration::from_millis(800), Box::new(answer)),
            false => answer,
        }
    })
    .await;
    let alice = format!("{{name: alice, key: {ALICE}, rpm: 2}}");
    let bob = format!("{{name: bob, key: {BOB}}}");
    let router = Arc::new(TestRouter::start(&config(&upstream.base(), &[alice.clone(), bob])).await);
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
    let in_flight = {
        let router = router.clone();
        let body = json!({"model": "team-chat", "messages": [{"role": "user", "content": "slow"}]});
        tokio::spawn(async move { chat(&router, Some(BOB), &body).await.status() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Bob goes; alice stays as she was (a comment changes the file).
    let edited = format!("{}# bob left\n", config(&upstream.base(), &[alice]));
    std::fs::write(&router.config_path, edited).unwrap();
    let started = Instant::now();
    while chat(&router, Some(BOB), &chat_body("team-chat")).await.status() != 401 {
        assert!(started.elapsed() < Duration::from_secs(3), "bob's key stayed valid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight.await.unwrap(), 200, "bob's request in flight finished");
    // Alice's minute carried over: one more request, then her limit.
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 200);
    assert_eq!(chat(&router, Some(ALICE), &chat_body("team-chat")).await.status(), 429);
}

#[tokio::test]
async fn metrics_and_the_status_page_count_by_key_name() {
    let upstream = reporting(7).await;
    let keys = [format!("{{name: alice, key: {ALICE}, rpm: 2, groups: [team-chat]}}")];
    let router = TestRouter::start_with(&config(&upstream.base(), &keys), Some("the-token"), None).await;
    for _ in 0..3 {
        chat(&router, Some(ALICE), &chat_body("team-chat")).await;
    }
    chat(&router, Some("the-token"), &chat_body("other")).await;
    let text = metrics_text(router.url("/metrics"), Some(ALICE)).await;
    for line in [
        r#"llmrouter_key_requests_total{key="alice"} 3"#,
        r#"llmrouter_key_requests_total{key="default"} 1"#,
        r#"llmrouter_key_tokens_total{key="alice",token_type="output"} 14"#,
        r#"llmrouter_key_tokens_total{key="alice",token_type="input"} 10"#,
        r#"llmrouter_key_rate_limited_total{key="alice",limit="rpm"} 1"#,
        r#"llmrouter_key_rate_limited_total{key="alice",limit="tpm"} 0"#,
        "llmrouter_redis_errors_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
    }
    assert!(!text.contains(ALICE));
    let status = http()
        .get(router.url("/status.json"))
        .bearer_auth("the-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains(ALICE), "{status}");
    let status: Value = serde_json::from_str(&status).unwrap();
    let alice = &status["keys"][0];
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["rpm"], 2);
    assert_eq!(alice["groups"], json!(["team-chat"]));
    assert_eq!(alice["requests"], 3);
    assert_eq!(alice["rate_limited"], 1);
    assert_eq!(alice["output_tokens"], 14);
    assert_eq!(status["shared_limits"], false);
}

#[test]
fn the_log_line_and_the_usage_log_name_the_key_never_its_value() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(oai_answer("up"))));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let keys = [format!("{{name: alice, key: {ALICE}}}")];
    let text = config(&upstream.base(), &keys).replace("  client_keys:", "  usage_db: usage.sqlite\n  client_keys:");
    std::fs::write(&path, text).unwrap();
    let router = RouterProcess::start(&path, &["-l", "info"]);
    let url = router.url("/v1/chat/completions");
    runtime.block_on(async {
        let response = http()
            .post(&url)
            .bearer_auth(ALICE)
            .json(&chat_body("team-chat"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = http()
            .post(&url)
            .bearer_auth("sk-nobody")
            .json(&chat_body("team-chat"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    });
    let lines = router.stop();
    let finished: Vec<_> = lines.iter().filter(|l| l.contains("request finished")).collect();
    assert_eq!(finished.len(), 1, "{lines:#?}");
    assert!(finished[0].contains(r#"client_key="alice""#), "{}", finished[0]);
    assert!(
        lines.iter().all(|l| !l.contains(ALICE) && !l.contains("sk-nobody")),
        "{lines:#?}"
    );
    let db = rusqlite::Connection::open(dir.path().join("usage.sqlite")).unwrap();
    let key: String = db
        .query_row("SELECT client_key FROM requests", [], |row| row.get(0))
        .unwrap();
    assert_eq!(key, "alice");
}

#[test]
fn check_config_reports_every_bad_client_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let keys = [
        "{name: alice, key: sk-same-value}".to_owned(),
        "{name: alice, key: sk-other}".to_owned(),
        "{name: twin, key: sk-same-value}".to_owned(),
        "{name: default, key: sk-x}".to_owned(),
        "{name: nokey}".to_owned(),
        "{name: both, key: a, key_sha256: b}".to_owned(),
        "{name: short, key_sha256: abcd}".to_owned(),
        "{name: env, key: os.environ/LLM_ROUTER_TEST_UNSET_KEY}".to_owned(),
        "{name: limits, key: sk-l, rpm: 0, tpm: -1, max_parallel: 0}".to_owned(),
        "{name: when, key: sk-w, expires: tomorrow}".to_owned(),
        "{name: nogroups, key: sk-g, groups: []}".to_owned(),
    ];
    let text = config("http://127.0.0.1:9", &keys).replace(
        "  client_keys:",
        "  redis_url: \"http://:hunter2@cache:6379\"\n  client_keys:",
    );
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_llm-router"))
        .args(["--check-config", "-c", path.to_str().unwrap()])
        .env_remove("LLM_ROUTER_TEST_UNSET_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for problem in [
        "router_settings.redis_url: expected redis:// or rediss://",
        "client_keys[1].name: duplicate key name 'alice' (also client_keys[0])",
        "client_keys[2]: the same key as 'alice'",
        "client_keys[3].name: 'default' is the name of --token",
        "client_keys[4]: key or key_sha256 is required",
        "client_keys[5]: set key or key_sha256, not both",
        "client_keys[6].key_sha256: expected 64 hexadecimal digits",
        "client_keys[7].key: environment variable 'LLM_ROUTER_TEST_UNSET_KEY' is not set",
        "client_keys[8].rpm: 0 is out of range",
        "client_keys[9].expires: expected an RFC 3339 time",
        "client_keys[10].groups: at least one group pattern",
    ] {
        assert!(stderr.contains(problem), "{problem} missing from:\n{stderr}");
    }
    assert!(
        !stderr.contains("sk-same-value") && !stderr.contains("hunter2"),
        "{stderr}"
    );

    let keys = [format!("{{name: alice, key: {ALICE}, rpm: 10}}")];
    let text = config("http://127.0.0.1:9", &keys)
        .replace("  client_keys:", "  redis_url: redis://127.0.0.1:6379\n  client_keys:");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_llm-router"))
        .args(["--check-config", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 client key, limits shared through Redis"), "{stdout}");
}
