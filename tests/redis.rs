//! Replicas sharing one Redis (`router_settings.redis_url`): two router processes enforce one `rpm`
//! together, a cooldown one starts is seen by the other, and with Redis stopped both keep serving on their
//! own limits. Each test starts its own `redis-server` on 127.0.0.1 (skipped when it is not installed,
//! unless `LLM_ROUTER_REQUIRE_REDIS=1`).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{MockUpstream, RedisServer, Reply, RouterProcess, http, metrics_text, oai_answer};

const ALICE: &str = "sk-alice-0123456789";

fn config(upstream: &str, redis: &str, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: flaky
    llm_params: {{api_type: openai, model: upstream-model, api_base: {upstream}}}
router_settings:
  redis_url: {redis}
  num_retries: 0
  allowed_fails: 1
  cooldown_time: 30
  model_groups:
    - {{name: main, models: [{{name: flaky}}]}}
{extra}"#
    )
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn chat(router: &RouterProcess, key: Option<&str>) -> reqwest::Response {
    let body = json!({"model": "main", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let mut request = http().post(router.url("/v1/chat/completions")).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn redis_connection(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url()).unwrap().get_connection().unwrap()
}

fn pttl(connection: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(connection).unwrap()
}

#[test]
fn two_replicas_enforce_one_rpm_together() {
    let Some(server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(oai_answer("up"))));
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("  client_keys:\n    - {{name: alice, key: {ALICE}, rpm: 6, tpm: 100000}}\n");
    let path = write_config(&dir, &config(&upstream.base(), &server.url(), &keys));
    let (a, b) = (RouterProcess::start(&path, &[]), RouterProcess::start(&path, &[]));
    let mut passed = 0;
    let mut refused = Vec::new();
    runtime.block_on(async {
        for i in 0..16 {
            let response = chat(if i % 2 == 0 { &a } else { &b }, Some(ALICE)).await;
            match response.status().as_u16() {
                200 => passed += 1,
                429 => refused.push(response.headers()["retry-after"].to_str().unwrap().to_owned()),
                other => panic!("status {other}"),
            }
        }
    });
    // One budget of 6 for both (per process it would be 12), within one request of each replica.
    assert!((6..=8).contains(&passed), "{passed} passed");
    assert_eq!(upstream.count(), passed);
    assert!(refused.iter().all(|s| s.parse::<u64>().unwrap() >= 1), "{refused:?}");
    // The limiter's keys expire on their own, within about a minute.
    let mut connection = redis_connection(&server);
    let left = pttl(&mut connection, "llmrouter:rpm:alice");
    assert!(left > 0 && left <= 61_000 + 1_000, "{left}");
    assert!(pttl(&mut connection, "llmrouter:tpm:alice") > 0);
    for router in [a, b] {
        let lines = router.stop();
        assert!(lines.iter().all(|l| !l.contains("per-process")), "{lines:#?}");
    }
}

#[test]
fn a_cooldown_one_replica_starts_is_seen_by_the_other() {
    let Some(server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::status(
        500,
        json!({"error": {"message": "down"}}),
    )));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config(&upstream.base(), &server.url(), ""));
    let (a, b) = (RouterProcess::start(&path, &[]), RouterProcess::start(&path, &[]));
    let state_on = |router: &RouterProcess| {
        let url = router.url("/status.json");
        runtime.block_on(async {
            let status: Value = http().get(url).send().await.unwrap().json().await.unwrap();
            status["groups"][0]["deployments"][0]["state"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    };
    assert_eq!(state_on(&b), "healthy");
    // One failure on A (allowed_fails: 1) cools the deployment there, and through Redis on B.
    assert_eq!(runtime.block_on(chat(&a, None)).status(), 500);
    assert_eq!(state_on(&a), "cooling");
    let started = Instant::now();
    while state_on(&b) != "cooling" {
        assert!(started.elapsed() < Duration::from_secs(3), "B never saw A's cooldown");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = pttl(&mut redis_connection(&server), "llmrouter:cooldown:flaky");
    assert!(left > 25_000 && left <= 30_000, "{left}");
    assert_eq!(upstream.count(), 1, "B learnt it without sending anything");
    drop((a, b));
}

#[test]
fn with_redis_stopped_both_replicas_keep_serving_on_their_own_limits() {
    let Some(mut server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(oai_answer("up"))));
    let dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "  client_keys:\n    - {{name: alice, key: {ALICE}, rpm: 3}}\n    - {{name: bob, key: sk-bob-0123456789}}\n"
    );
    let path = write_config(&dir, &config(&upstream.base(), &server.url(), &keys));
    let (a, b) = (RouterProcess::start(&path, &[]), RouterProcess::start(&path, &[]));
    runtime.block_on(async {
        assert_eq!(chat(&a, Some("sk-bob-0123456789")).await.status(), 200);
        assert_eq!(chat(&b, Some("sk-bob-0123456789")).await.status(), 200);
    });
    server.stop();
    runtime.block_on(async {
        for router in [&a, &b] {
            // Per process now: each replica lets alice's 3 through, then refuses.
            for _ in 0..3 {
                let started = Instant::now();
                assert_eq!(chat(router, Some(ALICE)).await.status(), 200);
                assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
            }
            assert_eq!(chat(router, Some(ALICE)).await.status(), 429);
            assert_eq!(chat(router, Some("sk-bob-0123456789")).await.status(), 200);
        }
        // The cooldown exchange fails too, quietly, every quarter second.
        tokio::time::sleep(Duration::from_millis(600)).await;
        for router in [&a, &b] {
            let text = metrics_text(router.url("/metrics"), Some(ALICE)).await;
            let errors: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("llmrouter_redis_errors_total "))
                .unwrap()
                .parse()
                .unwrap();
            assert!(errors >= 3, "{errors}");
        }
    });
    for router in [a, b] {
        let lines = router.stop();
        let warnings = lines
            .iter()
            .filter(|l| l.contains("going on with per-process limits"))
            .count();
        assert_eq!(warnings, 1, "one warning a minute: {lines:#?}");
        assert!(lines.iter().all(|l| !l.contains(ALICE)));
    }
}

#[test]
fn the_token_budget_is_shared_and_settled_in_redis() {
    let Some(server) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Every answer reports 5000 output tokens: far beyond what a request reserves.
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(json!({"id": "c",
        "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5000, "total_tokens": 5005}}))));
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("  client_keys:\n    - {{name: alice, key: {ALICE}, tpm: 1000}}\n");
    let path = write_config(&dir, &config(&upstream.base(), &server.url(), &keys));
    let (a, b) = (RouterProcess::start(&path, &[]), RouterProcess::start(&path, &[]));
    runtime.block_on(async {
        assert_eq!(chat(&a, Some(ALICE)).await.status(), 200);
        // A's settlement leaves the shared bucket owing; B, whose own bucket is full, refuses alice too.
        let started = Instant::now();
        loop {
            let response = chat(&b, Some(ALICE)).await;
            if response.status() == 429 {
                let text = response.text().await.unwrap();
                assert!(text.contains("tpm"), "{text}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(3), "B never saw A's usage");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let level: String = redis::cmd("HGET")
        .arg("llmrouter:tpm:alice")
        .arg("level")
        .query(&mut redis_connection(&server))
        .unwrap();
    assert!(level.parse::<f64>().unwrap() < 0.0, "in debt: {level}");
}
