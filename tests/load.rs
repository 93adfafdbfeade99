//! A bounded load test on 127.0.0.1: 32 concurrent streaming clients (half OpenAI, half Anthropic through
//! conversion) while the config file is rewritten 50 times and one of the two deployments fails every other
//! request. The expected number of failed requests, as the clients see them, is zero.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello, \"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wörld 🌍\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n",
    "data: [DONE]\n\n"
);

const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 8;
const RELOADS: usize = 50;

fn config(flaky: &str, healthy: &str, variant: usize) -> String {
    // Each rewrite changes something real: a weight, and an extra group that comes and goes.
    let extra_group = if variant.is_multiple_of(2) {
        "    - name: extra\n      models: [{name: b}]\n"
    } else {
        ""
    };
    format!(
        r#"
model_list:
  - model_name: a
    llm_params: {{api_type: openai, model: ma, api_base: "{flaky}"}}
  - model_name: b
    llm_params: {{api_type: openai, model: mb, api_base: "{healthy}"}}
router_settings:
  strategy: roundrobin
  allowed_fails: 1000000
  model_groups:
    - name: g
      models: [{{name: a, weight: 100}}, {{name: b, weight: {}}}]
{extra_group}"#,
        100 + variant % 3
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_failed_requests_under_reloads_and_a_flaky_deployment() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let flaky = MockUpstream::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            Reply::status(500, json!({"error":{"message":"flaky","type":"server_error"}}))
        } else {
            Reply::sse(STREAM, 11)
        }
    })
    .await;
    let healthy = MockUpstream::fixed(Reply::sse(STREAM, 11)).await;
    let router = TestRouter::start(&config(&flaky.base(), &healthy.base(), 0)).await;
    let started = Instant::now();

    let path = router.config_path.clone();
    let (flaky_base, healthy_base) = (flaky.base(), healthy.base());
    let rewriter = tokio::spawn(async move {
        for i in 1..=RELOADS {
            let text = config(&flaky_base, &healthy_base, i);
            // Alternate in-place writes and editor-style rename-over saves.
            if i % 2 == 0 {
                std::fs::write(&path, text).unwrap();
            } else {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let base = router.base.clone();
        clients.push(tokio::spawn(async move {
            let http = http();
            let mut failures = Vec::new();
            for _ in 0..REQUESTS_PER_CLIENT {
                let anthropic = c % 2 == 1;
                let request = if anthropic {
                    http.post(format!("{base}/v1/messages")).json(&json!({
                        "model":"g","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}))
                } else {
                    http.post(format!("{base}/v1/chat/completions")).json(&json!({
                        "model":"g","stream":true,"messages":[{"role":"user","content":"hi"}]}))
                };
                let response = match request.send().await {
                    Ok(response) => response,
                    Err(e) => {
                        failures.push(format!("send: {e}"));
                        continue;
                    }
                };
                let status = response.status();
                let text = concat(&read_chunks(response).await);
                let complete = if anthropic {
                    text.contains("event: message_stop") && text.contains("wörld 🌍") && !text.contains("event: error")
                } else {
                    text == STREAM
                };
                if status != 200 || !complete {
                    failures.push(format!("{status}: {text}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    rewriter.await.unwrap();
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    eprintln!(
        "load: {total} streamed requests, {} failed, {} upstream calls to the flaky deployment, {:?}",
        failures.len(),
        calls.load(Ordering::SeqCst),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} failed; first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(calls.load(Ordering::SeqCst) >= 10, "the flaky deployment took part");
    assert!(router.dir.path().join("config.yaml").exists());
}
