//! `GET /metrics` on the real binary after scripted traffic: a success, a failover after a 500, a cooldown
//! after a 429 with `Retry-After`, streams with usage (same protocol and converted), a converted answer, auth
//! failures, a good and a bad reload, and clients sending random model names. The scrape must parse, and
//! its counters and token sums must equal what the scripted upstreams reported.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::prometheus::{Scrape, parse};
use support::*;

const TOKEN: &str = "router-token-metrics";

/// What the OpenAI deployment reports for every whole answer.
fn oai_answer_with_usage() -> Value {
    json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up",
        "choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,
            "prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}})
}

/// The OpenAI deployment's stream: role, two deltas, finish, the usage chunk, `[DONE]`.
const OAI_USAGE_STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo ✓\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":9,\"total_tokens\":30,\"prompt_tokens_details\":{\"cached_tokens\":6}}}\n\n",
    "data: [DONE]\n\n"
);

/// The Anthropic deployment's stream: usage in `message_start` (input 25, cache read 5, cache write 4) and
/// `message_delta` (output 13).
const ANT_USAGE_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":4,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok ✓\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":13}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
);

fn config(good: &str, bad: &str, limited: &str, ant: &str, extra_group: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: good
    llm_params: {{api_type: openai, model: up, api_base: "{good}", api_key: sk-good}}
  - model_name: bad
    llm_params: {{api_type: openai, model: up, api_base: "{bad}", api_key: sk-bad}}
  - model_name: limited
    llm_params: {{api_type: openai, model: up, api_base: "{limited}", api_key: sk-limited}}
  - model_name: ant
    llm_params: {{api_type: anthropic, model: up, api_base: "{ant}", api_key: sk-ant}}
router_settings:
  strategy: roundrobin
  allowed_fails: 3
  model_groups:
    - name: retry
      models: [{{name: bad}}, {{name: good}}]
    - name: cool
      models: [{{name: limited}}, {{name: good}}]
    - name: conv
      models: [{{name: good}}]
    - name: stream
      models: [{{name: ant}}]
    - name: oaistream
      models: [{{name: good}}]
{extra_group}"#
    )
}

fn wants_stream(request: &Recorded) -> bool {
    serde_json::from_slice::<Value>(&request.body).is_ok_and(|b| b["stream"] == true)
}

async fn scrape(router: &RouterProcess) -> Scrape {
    let response = http()
        .get(router.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap())
}

/// Scrapes until `done` holds, for at most 5 s (reloads are applied by the file watcher).
async fn scrape_until(router: &RouterProcess, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = scrape(router).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the metrics never got there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(router: &RouterProcess, path: &str, body: Value) -> reqwest::Response {
    http()
        .post(router.url(path))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The token counts of one (group, deployment) pair, in the order input, output, cache_read, cache_write,
/// reasoning.
fn tokens(scrape: &Scrape, group: &str, deployment: &str) -> [f64; 5] {
    ["input", "output", "cache_read", "cache_write", "reasoning"].map(|token_type| {
        scrape.value(
            "llmrouter_tokens_total",
            &[("group", group), ("deployment", deployment), ("token_type", token_type)],
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_traffic_is_counted_exactly() {
    let good = MockUpstream::start(|request| match wants_stream(request) {
        true => Reply::sse(OAI_USAGE_STREAM, 7),
        false => Reply::json(oai_answer_with_usage()),
    })
    .await;
    let bad = MockUpstream::fixed(Reply::status(500, json!({"error":{"message":"boom"}}))).await;
    let limited = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error":{"message":"slow down","type":"rate_limit_error"}}).to_string(),
        headers: vec![("retry-after", "30".into())],
    })
    .await;
    let ant = MockUpstream::fixed(Reply::sse(ANT_USAGE_STREAM, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let text = config(&good.base(), &bad.base(), &limited.base(), &ant.base(), "");
    std::fs::write(&path, &text).unwrap();
    let router = RouterProcess::start(&path, &["--token", TOKEN]);

    // Before any traffic: the build, the initial load, every configured pair healthy.
    let s = scrape(&router).await;
    assert_eq!(
        s.value("llmrouter_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    assert!(s.value("llmrouter_config_last_reload_success_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(
        s.value(
            "llmrouter_deployment_state",
            &[("group", "retry"), ("deployment", "bad"), ("state", "healthy")]
        ),
        1.0
    );

    // A failover: `bad` answers 500, `good` answers.
    let r = post(&router, "/v1/chat/completions", chat("retry")).await;
    assert_eq!(r.status(), 200);
    // A cooldown: `limited` answers 429 with Retry-After, `good` answers.
    let r = post(&router, "/v1/chat/completions", chat("cool")).await;
    assert_eq!(r.status(), 200);
    // A converted answer: an Anthropic client on the OpenAI deployment.
    let r = post(&router, "/v1/messages", messages("conv", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["usage"]["output_tokens"], 7);
    // A same-protocol Anthropic stream, its events in 5-byte pieces.
    let r = post(&router, "/v1/messages", messages("stream", true)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    );
    // A same-protocol OpenAI stream with its usage chunk, in 7-byte pieces.
    let mut body = chat("oaistream");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&router, "/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    // A converted stream: an OpenAI client on the Anthropic deployment.
    let mut body = chat("stream");
    body["stream"] = json!(true);
    let r = post(&router, "/v1/chat/completions", body).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("data: [DONE]"));
    // Auth failures: an API call and a scrape without the token.
    let r = http()
        .post(router.url("/v1/chat/completions"))
        .json(&chat("retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http().get(router.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let s = scrape(&router).await;
    for (family, help) in [
        (
            "llmrouter_tokens",
            "cache_read and cache_write are subsets of input; reasoning is a subset of output",
        ),
        ("llmrouter_time_to_first_token_seconds", "first content delta"),
    ] {
        assert!(s.help[family].contains(help), "{family}: {}", s.help[family]);
    }
    assert_eq!(s.types["llmrouter_request_duration_seconds"], "histogram");
    let requests = |ingress: &str, group: &str, code: &str| {
        s.value(
            "llmrouter_requests_total",
            &[("ingress", ingress), ("group", group), ("code", code)],
        )
    };
    assert_eq!(requests("chat", "retry", "200"), 1.0);
    assert_eq!(requests("chat", "cool", "200"), 1.0);
    assert_eq!(requests("messages", "conv", "200"), 1.0);
    assert_eq!(requests("messages", "stream", "200"), 1.0);
    assert_eq!(requests("chat", "oaistream", "200"), 1.0);
    assert_eq!(requests("chat", "stream", "200"), 1.0);
    assert_eq!(
        s.sum("llmrouter_requests_total", &[]),
        6.0,
        "refused requests reach no route"
    );
    let upstream = |group: &str, deployment: &str, status: &str| {
        s.value(
            "llmrouter_upstream_requests_total",
            &[("group", group), ("deployment", deployment), ("status", status)],
        )
    };
    assert_eq!(upstream("retry", "bad", "500"), 1.0);
    assert_eq!(upstream("retry", "good", "200"), 1.0);
    assert_eq!(upstream("cool", "limited", "429"), 1.0);
    assert_eq!(upstream("cool", "good", "200"), 1.0);
    assert_eq!(s.sum("llmrouter_upstream_requests_total", &[]), 8.0);
    assert_eq!((bad.count(), limited.count(), good.count(), ant.count()), (1, 1, 4, 2));
    let retries = |group: &str, deployment: &str| {
        s.value(
            "llmrouter_retries_total",
            &[("group", group), ("deployment", deployment)],
        )
    };
    assert_eq!(retries("retry", "bad"), 1.0);
    assert_eq!(retries("cool", "limited"), 1.0);
    assert_eq!(s.sum("llmrouter_retries_total", &[]), 2.0);
    assert_eq!(s.value("llmrouter_cooldowns_total", &[("deployment", "limited")]), 1.0);
    assert_eq!(s.sum("llmrouter_cooldowns_total", &[]), 1.0);
    let state = |group: &str, deployment: &str, state: &str| {
        s.value(
            "llmrouter_deployment_state",
            &[("group", group), ("deployment", deployment), ("state", state)],
        )
    };
    assert_eq!(state("cool", "limited", "cooling"), 1.0);
    assert_eq!(state("cool", "limited", "healthy"), 0.0);
    assert_eq!(state("retry", "bad", "failing"), 1.0, "1 failure of allowed_fails 3");
    assert_eq!(state("retry", "good", "healthy"), 1.0);
    assert_eq!(s.sum("llmrouter_inflight_requests", &[]), 0.0);
    assert_eq!(s.value("llmrouter_auth_failures_total", &[]), 2.0);

    // Tokens: exactly what the upstreams reported, per pair. The OpenAI answer: prompt 11 (3 cached),
    // completion 7 (2 reasoning); its stream: prompt 21 (6 cached), completion 9; the Anthropic stream:
    // 25 + 5 read + 4 written in, 13 out (input counts the cache, as for OpenAI).
    let answer = [11.0, 7.0, 3.0, 0.0, 2.0];
    assert_eq!(tokens(&s, "retry", "good"), answer);
    assert_eq!(tokens(&s, "cool", "good"), answer);
    assert_eq!(
        tokens(&s, "conv", "good"),
        answer,
        "converted answers count what the upstream reported"
    );
    assert_eq!(tokens(&s, "oaistream", "good"), [21.0, 9.0, 6.0, 0.0, 0.0]);
    assert_eq!(
        tokens(&s, "stream", "ant"),
        [68.0, 26.0, 10.0, 8.0, 0.0],
        "same-protocol and converted"
    );
    assert_eq!(tokens(&s, "retry", "bad"), [0.0; 5], "a failed attempt reports nothing");
    assert_eq!(
        s.sum("llmrouter_tokens_total", &[("token_type", "input")]),
        33.0 + 21.0 + 68.0
    );

    // Time to first token: one per stream, on the deployment that streamed.
    let ttft = |group: &str, deployment: &str| {
        s.value(
            "llmrouter_time_to_first_token_seconds_count",
            &[("group", group), ("deployment", deployment)],
        )
    };
    assert_eq!(ttft("stream", "ant"), 2.0);
    assert_eq!(ttft("oaistream", "good"), 1.0);
    assert_eq!(s.sum("llmrouter_time_to_first_token_seconds_count", &[]), 3.0);
    let duration = |ingress: &str, group: &str, stream: &str| {
        s.value(
            "llmrouter_request_duration_seconds_count",
            &[("ingress", ingress), ("group", group), ("stream", stream)],
        )
    };
    assert_eq!(duration("messages", "stream", "true"), 1.0);
    assert_eq!(duration("chat", "retry", "false"), 1.0);
    assert_eq!(
        s.value(
            "llmrouter_upstream_duration_seconds_count",
            &[("group", "retry"), ("deployment", "bad")]
        ),
        1.0
    );
    assert_eq!(s.value("llmrouter_overhead_seconds_count", &[]), 6.0);
    let inf_bucket = s.value(
        "llmrouter_time_to_first_token_seconds_bucket",
        &[("group", "stream"), ("deployment", "ant"), ("le", "+Inf")],
    );
    assert_eq!(inf_bucket, 2.0);
    assert!(
        s.matching("llmrouter_time_to_first_token_seconds_bucket", &[("group", "stream")])
            .any(|b| b.labels["le"] == "0.005"),
        "TTFT buckets start at 5 ms"
    );
    assert!(
        s.matching("llmrouter_request_duration_seconds_bucket", &[])
            .any(|b| b.labels["le"] == "600.0"),
        "durations go to 10 minutes"
    );

    // Clients sending random model names: one `_unknown` series, however many names.
    let series_before = s.samples.len();
    for i in 0..25 {
        let r = post(
            &router,
            "/v1/chat/completions",
            chat(&format!("rnd-{i}-{}", rand_suffix())),
        )
        .await;
        assert_eq!(r.status(), 404);
    }
    let s = scrape(&router).await;
    assert_eq!(
        s.value(
            "llmrouter_requests_total",
            &[("ingress", "chat"), ("group", "_unknown"), ("code", "404")]
        ),
        25.0
    );
    assert!(
        s.samples
            .iter()
            .all(|sample| sample.labels.values().all(|v| !v.starts_with("rnd-"))),
        "a client's model name became a label"
    );
    // The new series: the `_unknown` counter and its duration histogram (buckets, sum, count).
    assert_eq!(s.samples.len() - series_before, 1 + 16 + 1 + 2);

    // A good reload: a new group; every count carries on, as the series are keyed by config names.
    let extra = "    - name: later\n      models: [{name: good}]\n";
    std::fs::write(
        &path,
        config(&good.base(), &bad.base(), &limited.base(), &ant.base(), extra),
    )
    .unwrap();
    // A scrape that began before the swap renders the old snapshot's states beside the new count: wait for
    // both, then check that nothing else was counted.
    let s = scrape_until(&router, |s| {
        s.value("llmrouter_config_reloads_total", &[("result", "success")]) == 1.0
            && s.value(
                "llmrouter_deployment_state",
                &[("group", "later"), ("deployment", "good"), ("state", "healthy")],
            ) == 1.0
    })
    .await;
    assert_eq!(s.value("llmrouter_config_reloads_total", &[("result", "failure")]), 0.0);
    let r = post(&router, "/v1/messages", messages("conv", false)).await;
    assert_eq!(r.status(), 200);
    let s = scrape(&router).await;
    assert_eq!(tokens(&s, "conv", "good"), answer.map(|n| n * 2.0));
    assert_eq!(s.value("llmrouter_cooldowns_total", &[("deployment", "limited")]), 1.0);

    // A bad reload: refused and counted; the last good config keeps serving.
    std::fs::write(&path, "model_list: [ {").unwrap();
    let s = scrape_until(&router, |s| {
        s.value("llmrouter_config_reloads_total", &[("result", "failure")]) == 1.0
    })
    .await;
    assert_eq!(s.value("llmrouter_config_reloads_total", &[("result", "success")]), 1.0);
    let r = post(&router, "/v1/chat/completions", chat("later")).await;
    assert_eq!(r.status(), 200);
    router.stop();
}

/// A few random hex digits, so each run's names differ.
fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}")
}

#[test]
fn the_parser_reads_the_shapes_of_the_format() {
    let scrape = parse(concat!(
        "# HELP a_requests Some help.\n",
        "# TYPE a_requests counter\n",
        "a_requests_total{group=\"g \\\"x\\\"\",code=\"200\"} 3\n",
        "# TYPE a_seconds histogram\n",
        "a_seconds_bucket{le=\"+Inf\"} 2\n",
        "a_seconds_sum 0.5\n",
        "a_seconds_count 2\n",
        "# EOF\n",
    ));
    assert_eq!(
        scrape.value("a_requests_total", &[("group", "g \"x\""), ("code", "200")]),
        3.0
    );
    assert_eq!(scrape.value("a_seconds_count", &[]), 2.0);
}

#[test]
#[should_panic(expected = "without a # TYPE")]
fn the_parser_refuses_an_undeclared_family() {
    parse("x 1\n# EOF\n");
}
