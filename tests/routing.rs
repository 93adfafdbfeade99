//! Routing beyond weights: rules that choose the group, fallbacks between groups, session affinity, the
//! `leastconn` and `latency` strategies and deployments that pass the client's model through, each against
//! scripted upstreams on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// An OpenAI-protocol upstream whose answers name it.
async fn named(name: &'static str) -> MockUpstream {
    MockUpstream::fixed(Reply::json(oai_answer(name))).await
}

/// `model_list` entries, one per (name, base), all `api_type: openai`.
fn deployments(entries: &[(&str, &str)]) -> String {
    let mut out = String::from("model_list:\n");
    for (name, base) in entries {
        out.push_str(&format!(
            "  - model_name: {name}\n    llm_params: {{api_type: openai, model: up-{name}, api_base: \"{base}\", api_key: sk-{name}}}\n"
        ));
    }
    out
}

/// Who answered: the text of a Chat or a Messages answer.
async fn answered_by(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| body["content"][0]["text"].as_str());
    text.unwrap_or_else(|| panic!("no text in {body}")).to_owned()
}

async fn chat(router: &TestRouter, body: Value) -> reqwest::Response {
    router.post("/v1/chat/completions", &body).await
}

async fn metrics(router: &TestRouter) -> prometheus::Scrape {
    prometheus::parse(&metrics_text(router.url("/metrics"), None).await)
}

#[tokio::test]
async fn every_rule_field_chooses_its_group() {
    let names = [
        "main",
        "cheap",
        "long",
        "vision",
        "tools",
        "results",
        "ua",
        "structured",
        "other",
    ];
    let mut upstreams = Vec::new();
    for name in names {
        upstreams.push(named(name).await);
    }
    let bases: Vec<String> = upstreams.iter().map(MockUpstream::base).collect();
    let entries: Vec<(&str, &str)> = names.iter().copied().zip(bases.iter().map(String::as_str)).collect();
    let config = format!(
        r#"{}
router_settings:
  model_groups:
    - {{name: main, models: [{{name: main}}]}}
  routing_rules:
    - {{name: background, when: {{model: "claude-*haiku*"}}, route: cheap}}
    - {{name: long-context, when: {{prompt_tokens: ">2k"}}, route: long}}
    - {{name: vision, when: {{has: image}}, route: vision}}
    - name: claude-tools
      when: {{ingress: messages, has: tools}}
      route: tools
    - {{name: results, when: {{has: tool_results}}, route: results}}
    - {{name: claude-cli, when: {{header: {{user-agent: "claude-cli/*"}}}}, route: ua}}
    - {{name: structured, when: {{has: [thinking, json_schema]}}, route: structured}}
    - name: not-chat
      when:
        any:
          - {{model: "special-*"}}
          - not: {{ingress: [chat, messages]}}
      route: other
"#,
        deployments(&entries)
    );
    let router = TestRouter::start(&config).await;
    let user = |text: &str| json!([{"role":"user","content":text}]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/chat/completions",
            json!({"model":"main","messages":user("hi")}),
            "main",
        ),
        (
            "/v1/messages",
            json!({"model":"claude-haiku-4-5-20251001","max_tokens":10,"messages":user("title?")}),
            "cheap",
        ),
        (
            "/v1/chat/completions",
            json!({"model":"main","messages":user(&"word ".repeat(2000))}),
            "long",
        ),
        (
            "/v1/chat/completions",
            json!({"model":"main","messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},
                {"type":"image_url","image_url":{"url":format!("data:image/png;base64,{}", "A".repeat(40_000))}}]}]}),
            "vision",
        ),
        (
            "/v1/messages",
            json!({"model":"main","max_tokens":10,"messages":user("hi"),
                "tools":[{"name":"read","input_schema":{"type":"object"}}]}),
            "tools",
        ),
        (
            "/v1/chat/completions",
            json!({"model":"main","messages":[{"role":"user","content":"go"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"done"}]}),
            "results",
        ),
        (
            "/v1/chat/completions",
            json!({"model":"main","reasoning_effort":"high","messages":user("hi"),
                "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}),
            "structured",
        ),
        (
            "/v1/chat/completions",
            json!({"model":"special-1","messages":user("hi")}),
            "other",
        ),
        ("/v1/responses", json!({"model":"main","input":"hi"}), "other"),
    ];
    for (path, body, expected) in &cases {
        let response = router.post(path, body).await;
        let body: Value = response.json().await.unwrap();
        let text = body["choices"][0]["message"]["content"]
            .as_str()
            .or_else(|| body["content"][0]["text"].as_str())
            .or_else(|| body["output"][0]["content"][0]["text"].as_str())
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert_eq!(text, *expected, "{path} {body}");
    }
    // The header rule, on a body no earlier rule takes.
    let r = http()
        .post(router.url("/v1/messages"))
        .header("user-agent", "claude-cli/2.0.31 (external, cli)")
        .json(&json!({"model":"main","max_tokens":10,"messages":user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(r).await, "ua");
    // Without a matching rule the model names the group; a rule may route a model no group has.
    let r = chat(&router, json!({"model":"claude-sonnet-4-5","messages":user("hi")})).await;
    assert_eq!(r.status(), 404);
    let s = metrics(&router).await;
    assert_eq!(s.value("llmrouter_rule_matches_total", &[("rule", "background")]), 1.0);
    assert_eq!(s.value("llmrouter_rule_matches_total", &[("rule", "not-chat")]), 2.0);
    assert_eq!(s.value("llmrouter_rule_matches_total", &[("rule", "claude-cli")]), 1.0);
    // The status page lists the rules in order, with their conditions and counts.
    let status: Value = router.get_json("/status.json").await;
    let rules = status["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 8);
    assert_eq!(rules[0]["when"], "model ~ claude-*haiku*");
    assert_eq!(rules[3]["when"], "ingress messages and has tools");
    assert_eq!(rules[0]["matches"], 1);
}

/// Group `a` falls back to `b` then `c`; `b` falls back to `d`. The members of `a`, `b` and `d` fail.
fn chain(bases: &[String; 4], settings: &str) -> String {
    let entries: Vec<(&str, &str)> = ["a", "b", "c", "d"]
        .into_iter()
        .zip(bases.iter().map(String::as_str))
        .collect();
    format!(
        r#"{}
router_settings:
  num_retries: 1
{settings}
  model_groups:
    - {{name: ga, models: [{{name: a}}], fallbacks: [gb, gc]}}
    - {{name: gb, models: [{{name: b}}], fallbacks: [gd]}}
    - {{name: gc, models: [{{name: c}}]}}
    - {{name: gd, models: [{{name: d}}], fallbacks: [gc]}}
"#,
        deployments(&entries)
    )
}

#[tokio::test]
async fn fallbacks_go_depth_first_each_group_once_and_the_client_sees_one_answer() {
    let failing = || MockUpstream::fixed(Reply::status(503, json!({"error":{"message":"overloaded"}})));
    let (a, b, d) = (failing().await, failing().await, failing().await);
    let c = named("c").await;
    let bases = [a.base(), b.base(), c.base(), d.base()];
    let router = TestRouter::start(&chain(&bases, "")).await;
    let r = chat(
        &router,
        json!({"model":"ga","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(answered_by(r).await, "c");
    // One member per group, so one attempt each (num_retries has no other member to go to); d came before c.
    assert_eq!((a.count(), b.count(), d.count(), c.count()), (1, 1, 1, 1));
    let s = metrics(&router).await;
    for (from, to) in [("ga", "gb"), ("gb", "gd"), ("gd", "gc")] {
        assert_eq!(
            s.value("llmrouter_fallbacks_total", &[("group", from), ("to_group", to)]),
            1.0,
            "{from} -> {to}"
        );
    }
    assert_eq!(
        s.sum("llmrouter_fallbacks_total", &[("to_group", "gc")]),
        1.0,
        "gc is tried once"
    );
    // The request is counted once, under the group it was routed to.
    assert_eq!(s.sum("llmrouter_requests_total", &[("group", "ga")]), 1.0);
    assert_eq!(s.sum("llmrouter_requests_total", &[("group", "gc")]), 0.0);
}

#[tokio::test]
async fn when_every_group_fails_the_client_gets_the_last_failure() {
    let failing = |status: u16| {
        MockUpstream::fixed(Reply::status(
            status,
            json!({"error":{"message":format!("{status} here")}}),
        ))
    };
    let (a, b, c, d) = (
        failing(500).await,
        failing(502).await,
        failing(529).await,
        failing(503).await,
    );
    let bases = [a.base(), b.base(), c.base(), d.base()];
    let router = TestRouter::start(&chain(&bases, "")).await;
    let r = router
        .post(
            "/v1/messages",
            &json!({"model":"ga","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    // gc was the last group tried (ga, gb, gd, gc): its 529 is the answer, in the client's protocol.
    assert_eq!(r.status(), 529);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!((a.count(), b.count(), c.count(), d.count()), (1, 1, 1, 1));
    // A client error is the client's: no fallback.
    let bad = MockUpstream::fixed(Reply::status(401, json!({"error":{"message":"bad key"}}))).await;
    let c2 = named("c").await;
    let router = TestRouter::start(&chain(&[bad.base(), c2.base(), c2.base(), c2.base()], "")).await;
    let r = chat(
        &router,
        json!({"model":"ga","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(c2.count(), 0);
}

#[tokio::test]
async fn a_prompt_too_long_moves_to_the_context_window_group_at_once() {
    let openai_overflow = MockUpstream::fixed(Reply::status(
        400,
        json!({"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}),
    ))
    .await;
    let second = named("second").await;
    let big = named("big").await;
    let anthropic_overflow = MockUpstream::fixed(Reply::status(
        400,
        json!({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}),
    ))
    .await;
    let config = format!(
        r#"{}  - model_name: claude
    llm_params: {{api_type: anthropic, model: claude-x, api_base: "{}", api_key: sk-c}}
router_settings:
  model_groups:
    - {{name: small, models: [{{name: overflow}}, {{name: second}}], context_window_fallback: big, fallbacks: [second]}}
    - {{name: claude-group, models: [{{name: claude}}], context_window_fallback: big}}
    - {{name: big, models: [{{name: big}}]}}
    - {{name: plain, models: [{{name: overflow}}]}}
"#,
        deployments(&[
            ("overflow", &openai_overflow.base()),
            ("second", &second.base()),
            ("big", &big.base())
        ]),
        anthropic_overflow.base()
    );
    let router = TestRouter::start(&config).await;
    let hi = |model: &str| json!({"model":model,"messages":[{"role":"user","content":"hi"}]});
    // Round-robin starts on `overflow`: its overflow skips `second` and the other fallbacks.
    let r = chat(&router, hi("small")).await;
    assert_eq!(answered_by(r).await, "big");
    assert_eq!(second.count(), 0);
    let r = chat(&router, hi("claude-group")).await;
    assert_eq!(answered_by(r).await, "big");
    assert_eq!(anthropic_overflow.count(), 1);
    // Without a context_window_fallback the overflow is the client's answer (Claude Code compacts on it).
    let r = router
        .post(
            "/v1/messages",
            &json!({"model":"plain","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "prompt is too long: 9000 tokens > 8192 maximum"
    );
    let s = metrics(&router).await;
    assert_eq!(
        s.value("llmrouter_fallbacks_total", &[("group", "small"), ("to_group", "big")]),
        1.0
    );
}

/// An upstream that answers as `name`, or fails with 500 while `failing` is set.
async fn switchable(name: &'static str, failing: Arc<AtomicBool>) -> MockUpstream {
    MockUpstream::start(move |_| match failing.load(Ordering::SeqCst) {
        true => Reply::status(500, json!({"error":{"message":"down"}})),
        false => Reply::json(oai_answer(name)),
    })
    .await
}

#[tokio::test]
async fn affinity_keeps_a_session_on_one_deployment_until_it_cools_and_brings_it_back() {
    let names = ["a", "b", "c"];
    let flags: Vec<Arc<AtomicBool>> = names.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut upstreams = Vec::new();
    for (name, flag) in names.iter().zip(&flags) {
        upstreams.push(switchable(name, flag.clone()).await);
    }
    let bases: Vec<String> = upstreams.iter().map(MockUpstream::base).collect();
    let entries: Vec<(&str, &str)> = names.iter().copied().zip(bases.iter().map(String::as_str)).collect();
    let config = format!(
        r#"{}
router_settings:
  allowed_fails: 1
  cooldown_time: 0.6
  model_groups:
    - {{name: g, affinity: session, models: [{{name: a}}, {{name: b}}, {{name: c}}]}}
"#,
        deployments(&entries)
    );
    let router = TestRouter::start(&config).await;
    let ask = |session: &str| {
        http()
            .post(router.url("/v1/chat/completions"))
            .header("x-session-id", session)
            .json(&json!({"model":"g","messages":[{"role":"user","content":"hi"}]}))
            .send()
    };
    let mut home = None;
    for _ in 0..5 {
        let by = answered_by(ask("session-1").await.unwrap()).await;
        assert_eq!(*home.get_or_insert(by.clone()), by, "one session, one deployment");
    }
    let home = home.unwrap();
    // Sessions spread over the members (round-robin would too, but not per session).
    let mut seen = std::collections::HashSet::new();
    for i in 0..30 {
        seen.insert(answered_by(ask(&format!("other-{i}")).await.unwrap()).await);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The home deployment fails: the request is retried elsewhere and the session stays there while it cools.
    let index = names.iter().position(|n| *n == home).unwrap();
    flags[index].store(true, Ordering::SeqCst);
    let moved = answered_by(ask("session-1").await.unwrap()).await;
    assert_ne!(moved, home);
    flags[index].store(false, Ordering::SeqCst);
    let before = upstreams[index].count();
    for _ in 0..3 {
        assert_eq!(answered_by(ask("session-1").await.unwrap()).await, moved);
    }
    assert_eq!(
        upstreams[index].count(),
        before,
        "a cooling deployment gets no session traffic"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        answered_by(ask("session-1").await.unwrap()).await,
        home,
        "back once it recovered"
    );
    // Claude Code's session id (inside metadata.user_id) keeps its session together the same way.
    let claude = |session: &str| {
        let user_id = json!({"device_id":"d","account_uuid":"","session_id":session}).to_string();
        json!({"model":"g","max_tokens":5,"metadata":{"user_id":user_id},"messages":[{"role":"user","content":"hi"}]})
    };
    let first = answered_by(router.post("/v1/messages", &claude("cc-1")).await).await;
    for _ in 0..4 {
        assert_eq!(
            answered_by(router.post("/v1/messages", &claude("cc-1")).await).await,
            first
        );
    }
}

/// Group `g` of a `slow` deployment (answering after `delay`) and a `fast` one, in that order, with the
/// group's `strategy`.
async fn slow_and_fast(delay: Duration, strategy: &str) -> (MockUpstream, MockUpstream, String) {
    let slow = MockUpstream::fixed(Reply::Delayed(delay, Box::new(Reply::json(oai_answer("slow"))))).await;
    let fast = named("fast").await;
    let config = format!(
        r#"{}
router_settings:
  model_groups:
    - {{name: g, strategy: {strategy}, models: [{{name: slow}}, {{name: fast}}]}}
"#,
        deployments(&[("slow", &slow.base()), ("fast", &fast.base())])
    );
    (slow, fast, config)
}

#[tokio::test]
async fn leastconn_avoids_the_busy_deployment() {
    let (slow, _fast, config) = slow_and_fast(Duration::from_millis(600), "leastconn").await;
    let router = Arc::new(TestRouter::start(&config).await);
    let body = json!({"model":"g","messages":[{"role":"user","content":"hi"}]});
    // Both idle: the tie goes to the first member, which then stays busy for 600 ms.
    let busy = {
        let (router, body) = (router.clone(), body.clone());
        tokio::spawn(async move { answered_by(chat(&router, body).await).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..4 {
        assert_eq!(answered_by(chat(&router, body.clone()).await).await, "fast");
    }
    assert_eq!(busy.await.unwrap(), "slow");
    assert_eq!(slow.count(), 1);
}

#[tokio::test]
async fn latency_sends_most_requests_to_the_fastest_deployment() {
    let (_slow, _fast, config) = slow_and_fast(Duration::from_millis(80), "latency").await;
    let router = TestRouter::start(&config).await;
    let body = json!({"model":"g","messages":[{"role":"user","content":"hi"}]});
    let mut by = Vec::new();
    for _ in 0..40 {
        by.push(answered_by(chat(&router, body.clone()).await).await);
    }
    // Each is measured first (no figure yet), then the fast one takes all but the ~5% kept for the other.
    assert_eq!(&by[..2], ["slow", "fast"]);
    let fast_share = by[2..].iter().filter(|b| *b == "fast").count();
    assert!(fast_share >= 30, "{by:?}");
}

#[tokio::test]
async fn a_glob_model_passes_the_client_model_through() {
    let upstream = named("router2").await;
    let claude_only = named("claude-only").await;
    let config = format!(
        r#"
model_list:
  - model_name: any
    llm_params: {{api_type: openai, model: "*", api_base: "{}"}}
  - model_name: claude-family
    llm_params: {{api_type: openai, model: "claude-*", api_base: "{}"}}
router_settings:
  model_groups:
    - {{name: pass, models: [{{name: any}}], aliases: ["gpt-*", "qwen*"]}}
    - {{name: claude, models: [{{name: claude-family}}], aliases: ["claude-*", "other-*"]}}
"#,
        upstream.base(),
        claude_only.base()
    );
    let router = TestRouter::start(&config).await;
    for model in ["gpt-4o-mini", "qwen3-coder-plus"] {
        let r = chat(
            &router,
            json!({"model":model,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(upstream.last().json()["model"], model);
    }
    // Converted on the way (a Messages client): the upstream still gets the client's model.
    let r = router
        .post(
            "/v1/messages",
            &json!({"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(claude_only.last().json()["model"], "claude-sonnet-4-5");
    // A name the glob does not take is refused, not sent.
    let r = chat(
        &router,
        json!({"model":"other-1","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serves model 'other-1'"),
        "{body}"
    );
    assert_eq!(claude_only.count(), 1);
}

#[tokio::test]
async fn a_glob_model_on_a_gemini_deployment_goes_into_its_url() {
    let answer = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4}}"#;
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 200,
        body: answer.into(),
        headers: vec![],
    })
    .await;
    let config = format!(
        r#"
model_list:
  - model_name: google
    llm_params: {{api_type: gemini, model: "gemini-*", api_base: "{}/v1beta", api_key: g-key}}
router_settings:
  model_groups:
    - {{name: gemini, models: [{{name: google}}], aliases: ["gemini-*"]}}
"#,
        upstream.base()
    );
    let router = TestRouter::start(&config).await;
    let r = router
        .post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            &json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last().path, "/v1beta/models/gemini-2.5-flash:generateContent");
    // A Chat client names the model in its body; the router writes it into the URL, percent-encoded.
    let r = chat(
        &router,
        json!({"model":"gemini-3 pro","messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(answered_by(r).await, "Hi");
    assert_eq!(upstream.last().path, "/v1beta/models/gemini-3%20pro:generateContent");
    let r = router
        .post(
            "/v1beta/models/gemini-2.5-pro:countTokens",
            &json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last().path, "/v1beta/models/gemini-2.5-pro:countTokens");
}

#[tokio::test]
async fn a_reload_changes_rules_while_requests_are_in_flight() {
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_millis(700),
        Box::new(Reply::json(oai_answer("slow"))),
    ))
    .await;
    let fast = named("fast").await;
    let config = |route: &str| {
        format!(
            r#"{}
router_settings:
  model_groups:
    - {{name: main, models: [{{name: fast}}]}}
  routing_rules:
    - {{name: haiku, when: {{model: "*haiku*"}}, route: {route}}}
"#,
            deployments(&[("slow", &slow.base()), ("fast", &fast.base())])
        )
    };
    let router = Arc::new(TestRouter::start(&config("slow")).await);
    let body = json!({"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]});
    let in_flight = {
        let (router, body) = (router.clone(), body.clone());
        tokio::spawn(async move { answered_by(chat(&router, body).await).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(&router.config_path, config("main")).unwrap();
    let started = Instant::now();
    loop {
        if answered_by(chat(&router, body.clone()).await).await == "fast" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "the new rule never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        in_flight.await.unwrap(),
        "slow",
        "the request in flight kept its snapshot"
    );
    // A reload that breaks a rule is refused and the last good rules stay.
    std::fs::write(&router.config_path, config("nowhere")).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(answered_by(chat(&router, body.clone()).await).await, "fast");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_line_names_the_rule_the_fallbacks_and_the_affinity() {
    let failing = MockUpstream::fixed(Reply::status(503, json!({"error":{"message":"overloaded"}}))).await;
    let backup = named("backup").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let config = format!(
        r#"{}
router_settings:
  model_groups:
    - {{name: main, affinity: session, models: [{{name: cheap}}], fallbacks: [reliable]}}
    - {{name: reliable, models: [{{name: backup}}]}}
  routing_rules:
    - {{name: agents, when: {{header: {{x-agent: "*"}}}}, route: main}}
"#,
        deployments(&[("cheap", &failing.base()), ("backup", &backup.base())])
    );
    std::fs::write(&path, config).unwrap();
    let router = RouterProcess::start(&path, &["-l", "info", "--log-format", "json"]);
    let r = http()
        .post(router.url("/v1/chat/completions"))
        .header("x-agent", "codex")
        .header("x-session-id", "s-1")
        .json(&json!({"model":"anything","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(r).await, "backup");
    let lines = router.stop();
    let finished: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 1, "{lines:#?}");
    let fields = &finished[0];
    assert_eq!(fields["rule"], "agents");
    assert_eq!(fields["group"], "main");
    assert_eq!(fields["fallbacks"], "main>reliable");
    assert_eq!(fields["deployment"], "backup");
    assert_eq!(
        fields["affinity"], "hit",
        "the session's first choice took the first attempt"
    );
    assert_eq!(fields["attempts"], 2);
}
