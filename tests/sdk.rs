//! End to end with the official Python SDKs: the `anthropic` SDK against an OpenAI-protocol upstream (the
//! Claude Code case) and the `openai` SDK against an Anthropic-protocol upstream, through the real router;
//! `google-genai` against upstreams of every kind, and the other SDKs against a Gemini upstream.
//!
//! Each test scripts one upstream answer, serves it both as a JSON body and as a stream (chosen by the
//! request's `"stream"` field, or a Gemini upstream's path; streams cut into 7-byte pieces), runs
//! `tests/sdk/driver.py <scenario>` with the interpreter named by `LLM_ROUTER_SDK_PYTHON`, and then checks
//! what the upstream received. The driver
//! asserts on the SDKs' own objects (models, stream accumulators, exception classes) and is handed the
//! scripted answer as JSON, so both sides check against one source.
//!
//! `./scripts/test.sh` sets up the interpreter (a virtualenv with `tests/sdk/requirements.txt`). Without
//! `LLM_ROUTER_SDK_PYTHON` these tests are skipped, unless `LLM_ROUTER_REQUIRE_SDK=1`, then they fail.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// The 1x1 PNG the driver sends (keep in sync with `driver.py`).
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

// ---------------------------------------------------------------------------------------------------------
// Running the driver

/// The Python interpreter with the SDKs installed, or `None` (after saying why) when the tests are skipped.
fn sdk_python() -> Option<String> {
    match std::env::var("LLM_ROUTER_SDK_PYTHON") {
        Ok(python) if !python.trim().is_empty() => Some(python),
        _ if std::env::var("LLM_ROUTER_REQUIRE_SDK").as_deref() == Ok("1") => {
            panic!("LLM_ROUTER_REQUIRE_SDK=1 but LLM_ROUTER_SDK_PYTHON is not set: run ./scripts/test.sh")
        }
        _ => {
            eprintln!("skipped: the official-SDK tests need LLM_ROUTER_SDK_PYTHON; run ./scripts/test.sh");
            None
        }
    }
}

/// Runs one driver scenario against the router; panics with the driver's output unless it exits 0.
async fn run_driver(python: &str, scenario: &str, router: &TestRouter, expected: &Value) {
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/driver.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(driver)
        .arg(scenario)
        .arg(&router.base)
        .arg(expected.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    // Nothing from the developer's environment may redirect or decorate the SDKs' requests.
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_PROFILE",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_GENAI_HTTP_CLIENT",
        "GOOGLE_GENAI_CLIENT_MODE",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ] {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("SDK driver scenario {scenario} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run {python} {driver}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK driver scenario {scenario} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    print!("{stdout}{stderr}");
}

// ---------------------------------------------------------------------------------------------------------
// One scripted answer, served in either protocol, streamed or not

struct Tool {
    /// The id the upstream sends.
    id: &'static str,
    name: &'static str,
    /// Argument fragments as streamed; together they are the compact JSON of the input.
    args: &'static [&'static str],
}

impl Tool {
    fn arguments(&self) -> String {
        self.args.concat()
    }
    fn input(&self) -> Value {
        serde_json::from_str(&self.arguments()).expect("scripted arguments are JSON")
    }
    /// The id an Anthropic client must see (spec §1.3.5 `sanitize_tool_id`; valid ids pass unchanged).
    fn client_id(&self) -> String {
        self.id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// What the upstream answers: optional thinking, optional text, tool calls, usage. Fragments are how the
/// stream delivers each part.
struct Script {
    id: &'static str,
    thinking: &'static [&'static str],
    /// The Anthropic upstream's thinking signature (OpenAI upstreams have none).
    signature: &'static str,
    text: &'static [&'static str],
    tools: Vec<Tool>,
    /// Prompt tokens not read from the cache, cache-read tokens, output tokens.
    input: u64,
    cached: u64,
    output: u64,
}

impl Script {
    fn thinking(&self) -> String {
        self.thinking.concat()
    }
    fn text(&self) -> String {
        self.text.concat()
    }

    /// What the driver checks the SDK objects against.
    fn expected(&self) -> Value {
        json!({
            "id": self.id,
            "thinking": self.thinking(),
            "signature": self.signature,
            "text": self.text(),
            "tools": self.tools.iter()
                .map(|t| json!({"id": t.client_id(), "name": t.name, "input": t.input()}))
                .collect::<Vec<_>>(),
            "input_tokens": self.input,
            "cached": self.cached,
            "output_tokens": self.output,
        })
    }

    fn openai_usage(&self) -> Value {
        let prompt = self.input + self.cached;
        json!({"prompt_tokens": prompt, "completion_tokens": self.output, "total_tokens": prompt + self.output,
               "prompt_tokens_details": {"cached_tokens": self.cached}})
    }

    fn openai_json(&self) -> Value {
        let content = if self.text.is_empty() {
            Value::Null
        } else {
            json!(self.text())
        };
        let mut message = json!({"role": "assistant", "content": content});
        if !self.thinking.is_empty() {
            message["reasoning_content"] = json!(self.thinking());
        }
        if !self.tools.is_empty() {
            message["tool_calls"] = self
                .tools
                .iter()
                .map(|t| {
                    json!({"id": t.id, "type": "function",
                           "function": {"name": t.name, "arguments": t.arguments()}})
                })
                .collect();
        }
        let finish = if self.tools.is_empty() { "stop" } else { "tool_calls" };
        json!({"id": self.id, "object": "chat.completion", "created": 1_700_000_000, "model": "upstream-model",
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
               "usage": self.openai_usage()})
    }

    fn openai_sse(&self) -> String {
        let chunk = |choices: Value, usage: Value| {
            let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": 1_700_000_000,
                               "model": "upstream-model", "choices": choices, "usage": usage});
            format!("data: {chunk}\n\n")
        };
        let delta = |delta: Value| {
            chunk(
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
                Value::Null,
            )
        };
        let mut out = delta(json!({"role": "assistant", "content": ""}));
        for piece in self.thinking {
            out += &delta(json!({"reasoning_content": piece}));
        }
        for piece in self.text {
            out += &delta(json!({"content": piece}));
        }
        for (k, tool) in self.tools.iter().enumerate() {
            out += &delta(json!({"tool_calls": [{"index": k, "id": tool.id, "type": "function",
                                                  "function": {"name": tool.name, "arguments": ""}}]}));
            for piece in tool.args {
                out += &delta(json!({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}));
            }
        }
        let finish = if self.tools.is_empty() { "stop" } else { "tool_calls" };
        out += &chunk(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]),
            Value::Null,
        );
        out += &chunk(json!([]), self.openai_usage());
        out + "data: [DONE]\n\n"
    }

    fn stop_reason(&self) -> &'static str {
        if self.tools.is_empty() { "end_turn" } else { "tool_use" }
    }

    fn anthropic_json(&self) -> Value {
        let mut content = Vec::new();
        if !self.thinking.is_empty() {
            content.push(json!({"type": "thinking", "thinking": self.thinking(), "signature": self.signature}));
        }
        if !self.text.is_empty() {
            content.push(json!({"type": "text", "text": self.text()}));
        }
        for tool in &self.tools {
            content.push(json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": tool.input()}));
        }
        json!({"id": self.id, "type": "message", "role": "assistant", "model": "upstream-model", "content": content,
               "stop_reason": self.stop_reason(), "stop_sequence": null,
               "usage": {"input_tokens": self.input, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": self.cached, "output_tokens": self.output}})
    }

    fn anthropic_sse(&self) -> String {
        let event = |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap());
        let mut out = event(json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": "upstream-model", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.input, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": self.cached, "output_tokens": 1}}}));
        out += &event(json!({"type": "ping"}));
        let mut index = 0;
        let mut block = |out: &mut String, start: Value, deltas: Vec<Value>| {
            *out += &event(json!({"type": "content_block_start", "index": index, "content_block": start}));
            for delta in deltas {
                *out += &event(json!({"type": "content_block_delta", "index": index, "delta": delta}));
            }
            *out += &event(json!({"type": "content_block_stop", "index": index}));
            index += 1;
        };
        if !self.thinking.is_empty() {
            let mut deltas: Vec<Value> = self
                .thinking
                .iter()
                .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                .collect();
            deltas.push(json!({"type": "signature_delta", "signature": self.signature}));
            block(
                &mut out,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                deltas,
            );
        }
        if !self.text.is_empty() {
            let deltas = self
                .text
                .iter()
                .map(|t| json!({"type": "text_delta", "text": t}))
                .collect();
            block(&mut out, json!({"type": "text", "text": ""}), deltas);
        }
        for tool in &self.tools {
            let deltas = tool
                .args
                .iter()
                .map(|a| json!({"type": "input_json_delta", "partial_json": a}))
                .collect();
            block(
                &mut out,
                json!({"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}),
                deltas,
            );
        }
        let delta = json!({"stop_reason": self.stop_reason(), "stop_sequence": null});
        out += &event(json!({"type": "message_delta", "delta": delta, "usage": {"output_tokens": self.output}}));
        out + &event(json!({"type": "message_stop"}))
    }
}

#[derive(Clone, Copy, Debug)]
enum Upstream {
    OpenAi,
    Anthropic,
    Responses,
    Gemini,
}

impl Upstream {
    const ALL: [Upstream; 4] = [
        Upstream::OpenAi,
        Upstream::Anthropic,
        Upstream::Responses,
        Upstream::Gemini,
    ];
}

impl Script {
    fn responses_usage(&self) -> Value {
        let input = self.input + self.cached;
        json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": self.cached},
               "output_tokens": self.output, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": input + self.output})
    }

    fn responses_items(&self) -> Vec<Value> {
        let mut items = Vec::new();
        if !self.thinking.is_empty() {
            items.push(json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": self.thinking()}]}));
        }
        if !self.text.is_empty() {
            items.push(
                json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": self.text(), "annotations": []}]}),
            );
        }
        for (k, tool) in self.tools.iter().enumerate() {
            items.push(
                json!({"type": "function_call", "id": format!("fc_{k}"), "call_id": tool.id, "name": tool.name,
                "arguments": tool.arguments(), "status": "completed"}),
            );
        }
        items
    }

    fn responses_json(&self) -> Value {
        json!({"id": self.id, "object": "response", "status": "completed", "model": "upstream-model",
               "output": self.responses_items(), "usage": self.responses_usage()})
    }

    fn responses_sse(&self) -> String {
        let mut seq = 0;
        let mut event = |mut data: Value| {
            data["sequence_number"] = json!(seq);
            seq += 1;
            format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap())
        };
        let snapshot = json!({"id": self.id, "object": "response", "status": "in_progress", "output": []});
        let mut out = event(json!({"type": "response.created", "response": snapshot}));
        let mut oi = 0;
        if !self.thinking.is_empty() {
            out += &event(
                json!({"type": "response.output_item.added", "output_index": oi, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            );
            for piece in self.thinking {
                out += &event(
                    json!({"type": "response.reasoning_summary_text.delta", "output_index": oi, "item_id": "rs_1", "summary_index": 0, "delta": piece}),
                );
            }
            out += &event(
                json!({"type": "response.output_item.done", "output_index": oi, "item": self.responses_items()[0]}),
            );
            oi += 1;
        }
        if !self.text.is_empty() {
            out += &event(json!({"type": "response.output_item.added", "output_index": oi,
                "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}}));
            for piece in self.text {
                out += &event(
                    json!({"type": "response.output_text.delta", "output_index": oi, "item_id": "msg_1", "content_index": 0, "delta": piece}),
                );
            }
            oi += 1;
        }
        for (k, tool) in self.tools.iter().enumerate() {
            let id = format!("fc_{k}");
            out += &event(json!({"type": "response.output_item.added", "output_index": oi,
                "item": {"type": "function_call", "id": id, "call_id": tool.id, "name": tool.name, "arguments": "", "status": "in_progress"}}));
            for piece in tool.args {
                out += &event(
                    json!({"type": "response.function_call_arguments.delta", "output_index": oi, "item_id": id, "delta": piece}),
                );
            }
            out += &event(json!({"type": "response.output_item.done", "output_index": oi,
                "item": {"type": "function_call", "id": id, "call_id": tool.id, "name": tool.name, "arguments": tool.arguments(), "status": "completed"}}));
            oi += 1;
        }
        let done = json!({"id": self.id, "object": "response", "status": "completed", "output": self.responses_items(),
            "usage": self.responses_usage()});
        out + &event(json!({"type": "response.completed", "response": done}))
    }
}

/// A mock upstream answering `script` in its protocol: a stream when the request says `"stream": true`
/// (written in 7-byte pieces, so lines, events and UTF-8 characters split), otherwise the JSON body.
async fn scripted(protocol: Upstream, script: &Script) -> MockUpstream {
    let (body, stream) = match protocol {
        Upstream::OpenAi => (script.openai_json(), script.openai_sse()),
        Upstream::Anthropic => (script.anthropic_json(), script.anthropic_sse()),
        Upstream::Responses => (script.responses_json(), script.responses_sse()),
        Upstream::Gemini => return gemini_upstream(script).await,
    };
    MockUpstream::start(move |request| {
        if request.json()["stream"] == true {
            Reply::sse(&stream, 7)
        } else {
            Reply::json(body.clone())
        }
    })
    .await
}

/// The router with one OpenAI-protocol deployment behind the client model `sonnet`.
async fn router_on_openai(upstream: &MockUpstream, extra: &str) -> TestRouter {
    TestRouter::start(&config_one(
        "sonnet",
        "openai",
        &format!("{}/v1", upstream.base()),
        extra,
    ))
    .await
}

/// The router with one Anthropic-protocol deployment behind the client model `gpt`.
async fn router_on_anthropic(upstream: &MockUpstream) -> TestRouter {
    TestRouter::start(&config_one("gpt", "anthropic", &upstream.base(), "")).await
}

/// No client credential reaches the upstream, only the deployment's own key.
fn assert_upstream_credentials(seen: &Recorded, protocol: Upstream) {
    let headers = format!("{:?}", seen.headers);
    assert!(
        !headers.contains("sk-ant-client") && !headers.contains("sk-oai-client") && !headers.contains("gm-client-key"),
        "{headers}"
    );
    match protocol {
        Upstream::OpenAi => {
            assert_eq!(seen.header("authorization"), Some("Bearer sk-upstream-secret"));
            assert_eq!(seen.header("x-api-key"), None);
            assert_eq!(seen.header("anthropic-version"), None, "§1.2.1: not forwarded");
        }
        Upstream::Anthropic => {
            assert_eq!(seen.header("x-api-key"), Some("sk-upstream-secret"));
            assert!(seen.header("anthropic-version").is_some());
        }
        Upstream::Responses => assert_eq!(seen.header("authorization"), Some("Bearer sk-upstream-secret")),
        Upstream::Gemini => {
            assert_eq!(seen.header("x-goog-api-key"), Some("sk-upstream-secret"));
            assert_eq!(seen.header("authorization"), None);
            assert!(
                !seen.uri.contains("key="),
                "§1.3: the key never goes in the URL: {}",
                seen.uri
            );
        }
    }
}

fn is_streaming(seen: &Recorded) -> bool {
    seen.json()["stream"] == true
}

// ---------------------------------------------------------------------------------------------------------
// Anthropic SDK → OpenAI-protocol upstream (Route B)

fn route_b_tools() -> Script {
    Script {
        id: "chatcmpl-B1tools",
        thinking: &[],
        signature: "",
        text: &["Let me check ", "the weather 🌦 for ", "you."],
        tools: vec![Tool {
            id: "call_paris",
            name: "weather",
            args: &["{\"city\"", ":\"Paris\"}"],
        }],
        input: 31,
        cached: 8,
        output: 17,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_create_and_stream_agree_on_tool_use() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_tools();
    let upstream = scripted(Upstream::OpenAi, &script).await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "anthropic_tools", &router, &script.expected()).await;

    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "create, then stream; no retries");
    assert!(!is_streaming(&seen[0]) && is_streaming(&seen[1]));
    for request in &seen {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_upstream_credentials(request, Upstream::OpenAi);
        let body = request.json();
        assert_eq!(body["model"], "upstream-model");
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "You are a weather assistant."},
                   {"role": "user", "content": "Weather in Paris and Rome?"}])
        );
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        assert_eq!(body["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
    }
    assert!(seen[0].json().get("stream_options").is_none(), "§1.3.2");
    assert_eq!(seen[1].json()["stream_options"], json!({"include_usage": true}));
}

fn route_b_thinking() -> Script {
    Script {
        id: "chatcmpl-B2think",
        thinking: &["The user wants ", "two cities, ", "so call the tool twice."],
        signature: "",
        text: &["Checking Paris ", "and Rome…"],
        tools: vec![
            // Kimi-style ids: the client must get them sanitised, the same way streamed and not.
            Tool {
                id: "functions.weather:0",
                name: "weather",
                args: &["{\"city\":\"Pa", "ris\"}"],
            },
            Tool {
                id: "functions.weather:1",
                name: "weather",
                args: &["{\"ci", "ty\":\"Ro", "me\"}"],
            },
        ],
        input: 52,
        cached: 0,
        output: 41,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_streams_thinking_text_and_parallel_tools() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_thinking();
    let upstream = scripted(Upstream::OpenAi, &script).await;
    let router = router_on_openai(&upstream, "      reasoning_dialect: deepseek").await;
    run_driver(&python, "anthropic_thinking", &router, &script.expected()).await;

    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "stream, create, tool-loop follow-up");
    assert!(is_streaming(&seen[0]) && !is_streaming(&seen[1]) && !is_streaming(&seen[2]));
    for request in &seen {
        let body = request.json();
        // §1.2.6, deepseek dialect: budget 2048 → medium.
        assert_eq!(body["thinking"], json!({"type": "enabled"}), "{body}");
        assert_eq!(body["reasoning_effort"], "medium", "{body}");
    }

    // The follow-up replays the assistant turn exactly as the SDK returned it, thinking and all.
    let body = seen[2].json();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "{body}");
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": "Weather in Paris and Rome?"})
    );
    let assistant = &messages[2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], script.text());
    assert_eq!(
        assistant["reasoning_content"],
        script.thinking(),
        "§1.2.6: deepseek gets the thinking back"
    );
    let calls: Vec<(String, String, Value)> = assistant["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function");
            let arguments: Value = serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
            (
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                arguments,
            )
        })
        .collect();
    let want: Vec<(String, String, Value)> = script
        .tools
        .iter()
        .map(|t| (t.client_id(), t.name.to_owned(), t.input()))
        .collect();
    assert_eq!(calls, want);
    for (message, tool) in messages[3..].iter().zip(&script.tools) {
        let city = tool.input()["city"].as_str().unwrap().to_owned();
        assert_eq!(
            *message,
            json!({"role": "tool", "tool_call_id": tool.client_id(), "content": format!("{city}: 18C")})
        );
    }
}

fn route_b_plain() -> Script {
    Script {
        id: "chatcmpl-B3plain",
        thinking: &[],
        signature: "",
        text: &["I see ", "a single white pixel."],
        tools: vec![],
        input: 70,
        cached: 0,
        output: 6,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_tool_result_image_reaches_the_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_plain();
    let upstream = scripted(Upstream::OpenAi, &script).await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "anthropic_tool_result_image", &router, &script.expected()).await;

    let body = upstream.last().json();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages[1],
        json!({"role": "user", "content": "Take a screenshot"}),
        "{body}"
    );
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages[2]["tool_calls"][0]["id"], "toolu_shot");
    // §1.2.3: the text goes in the tool message (which takes text only) ...
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "toolu_shot", "content": "Screenshot taken"}),
        "{body}"
    );
    // ... the image in a user message after all tool messages, introduced by the tool call id, and the
    // user's own text after it.
    let parts: Vec<Value> = messages[4..]
        .iter()
        .inspect(|m| assert_eq!(m["role"], "user", "{body}"))
        .flat_map(|m| match &m["content"] {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(parts) => parts.clone(),
            other => panic!("user content {other}"),
        })
        .collect();
    assert_eq!(parts.len(), 3, "{body}");
    assert_eq!(
        parts[0],
        json!({"type": "text", "text": "Images returned by tool call toolu_shot:"})
    );
    assert_eq!(parts[1]["type"], "image_url");
    assert_eq!(parts[1]["image_url"]["url"], format!("data:image/png;base64,{PNG}"));
    assert_eq!(parts[2], json!({"type": "text", "text": "What do you see?"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_count_tokens_is_positive() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(500, json!({"error": {"message": "not expected"}}))).await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "anthropic_count_tokens", &router, &json!({})).await;
    assert_eq!(upstream.count(), 0, "§5.2: estimated locally for an OpenAI upstream");
}

/// An MCP tool name as Claude Code sends them, longer than OpenAI's 64-character limit.
const LONG_TOOL: &str = "mcp__claude_in_chrome__navigate_to_url_wait_for_network_idle_and_take_a_full_page_screenshot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_long_mcp_tool_name_round_trips() {
    let Some(python) = sdk_python() else { return };
    let script = Script {
        id: "chatcmpl-B4long",
        thinking: &[],
        signature: "",
        text: &[],
        tools: vec![Tool {
            id: "call_nav",
            // Replaced below by the name the upstream was given.
            name: "TOOL_NAME",
            args: &["{\"url\":", "\"https://example.com/\"}"],
        }],
        input: 90,
        cached: 0,
        output: 12,
    };
    // The upstream answers with the (shortened) name it was sent, as a real model would.
    let (body, stream) = (script.openai_json().to_string(), script.openai_sse());
    let upstream = MockUpstream::start(move |request| {
        let sent = request.json();
        let tools = sent["tools"].as_array().cloned().unwrap_or_default();
        let name = tools
            .iter()
            .filter_map(|t| t["function"]["name"].as_str())
            .find(|n| *n != "weather")
            .unwrap_or("no-such-tool")
            .to_owned();
        if sent["stream"] == true {
            Reply::sse(&stream.replace("TOOL_NAME", &name), 7)
        } else {
            Reply::Json {
                status: 200,
                body: body.replace("TOOL_NAME", &name),
                headers: vec![],
            }
        }
    })
    .await;
    let router = router_on_openai(&upstream, "").await;
    let mut expected = script.expected();
    expected["tools"][0]["name"] = json!(LONG_TOOL);
    run_driver(&python, "anthropic_long_tool_name", &router, &expected).await;

    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        let body = request.json();
        let short = body["tools"][1]["function"]["name"].as_str().unwrap();
        assert_ne!(short, LONG_TOOL);
        assert!(
            short.len() <= 64 && short.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "§1.2.4: {short}"
        );
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": short}}),
            "§1.2.4: the forced choice uses the same short name"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_raises_on_an_upstream_error_mid_stream() {
    let Some(python) = sdk_python() else { return };
    let script = Script {
        id: "chatcmpl-B5broken",
        thinking: &[],
        signature: "",
        text: &["Partial ", "answer"],
        tools: vec![],
        input: 10,
        cached: 0,
        output: 2,
    };
    // The scripted stream up to its text, then an in-band error instead of a finish.
    let full = script.openai_sse();
    let cut = full.find("\"finish_reason\":\"stop\"").unwrap();
    let mut stream = full[..full[..cut].rfind("data: ").unwrap()].to_owned();
    let error = json!({"error": {"message": "The server is overloaded, please retry", "type": "server_error",
                                 "param": null, "code": "server_is_overloaded"}});
    stream += &format!("data: {error}\n\n");
    let upstream = MockUpstream::fixed(Reply::sse(&stream, 7)).await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "anthropic_stream_error", &router, &script.expected()).await;
    assert_eq!(upstream.count(), 1, "a stream that already started is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_gets_rate_limit_error_for_upstream_429() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached for requests", "type": "requests",
                               "param": null, "code": "rate_limit_exceeded"}})
        .to_string(),
        headers: vec![("retry-after", "7".into()), ("x-request-id", "req_oai_429".into())],
    })
    .await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(
        &python,
        "anthropic_rate_limit",
        &router,
        &json!({"request_id": "req_oai_429"}),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "create and stream, each tried once");
    assert!(!is_streaming(&seen[0]) && is_streaming(&seen[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_gets_internal_server_error_for_upstream_500() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(
        500,
        json!({"error": {"message": "The server had an error while processing your request.",
                         "type": "server_error", "param": null, "code": null}}),
    ))
    .await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "anthropic_server_error", &router, &json!({})).await;
    assert_eq!(upstream.count(), 2, "create and stream, each tried once");
}

// ---------------------------------------------------------------------------------------------------------
// OpenAI SDK → Anthropic-protocol upstream (Route A)

fn route_a_tools() -> Script {
    Script {
        id: "msg_01A1tools",
        thinking: &[],
        signature: "",
        text: &["Looking that up ", "— un instant."],
        tools: vec![
            Tool {
                id: "toolu_01paris",
                name: "weather",
                args: &["{\"city\"", ":\"Paris\"}"],
            },
            Tool {
                id: "toolu_02rome",
                name: "weather",
                args: &["{\"ci", "ty\":\"Rome\"}"],
            },
        ],
        input: 25,
        cached: 100,
        output: 30,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_create_and_stream_agree_on_tools_with_image_input() {
    let Some(python) = sdk_python() else { return };
    let script = route_a_tools();
    let upstream = scripted(Upstream::Anthropic, &script).await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(&python, "openai_tools", &router, &script.expected()).await;

    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "create, .stream(), create(stream=True)");
    assert!(!is_streaming(&seen[0]) && is_streaming(&seen[1]) && is_streaming(&seen[2]));
    for request in &seen {
        assert_eq!(request.path, "/v1/messages");
        assert_upstream_credentials(request, Upstream::Anthropic);
        let body = request.json();
        assert_eq!(body["model"], "upstream-model");
        assert_eq!(body["max_tokens"], 1000);
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "You are a weather assistant."}])
        );
        // §1.1.6: the data URL becomes a base64 image block; `detail` is dropped.
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]),
            "{body}"
        );
        assert_eq!(body["tools"][0]["name"], "weather");
        assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["city"]));
        assert!(body.get("stream_options").is_none(), "§1.1.1: not sent to Anthropic");
    }
}

fn route_a_thinking() -> Script {
    Script {
        id: "msg_01A2think",
        thinking: &["June in Paris ", "is usually mild."],
        signature: "EqQBCkYIBRgCKkBsig/opaque+signature==",
        text: &["Probably sunny, ", "around 24°C."],
        tools: vec![],
        input: 20,
        cached: 0,
        output: 15,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_sees_anthropic_thinking_as_reasoning_content() {
    let Some(python) = sdk_python() else { return };
    let script = route_a_thinking();
    let upstream = scripted(Upstream::Anthropic, &script).await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(&python, "openai_thinking", &router, &script.expected()).await;

    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "create, create(stream=True), .stream()");
    for request in &seen {
        let body = request.json();
        // §1.1.7: medium → budget 2048; §1.1.4: max_tokens raised above the budget.
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048}),
            "{body}"
        );
        assert!(body["max_tokens"].as_u64().unwrap() > 2048, "{body}");
        assert!(body.get("temperature").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_raises_on_an_upstream_error_mid_stream() {
    let Some(python) = sdk_python() else { return };
    let script = Script {
        id: "msg_01A3broken",
        thinking: &[],
        signature: "",
        text: &["Partial ", "answer"],
        tools: vec![],
        input: 10,
        cached: 0,
        output: 2,
    };
    // The scripted stream up to the end of its text block, then an error event instead of message_delta.
    let full = script.anthropic_sse();
    let mut stream = full[..full.find("event: message_delta").unwrap()].to_owned();
    let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    stream += &format!("event: error\ndata: {error}\n\n");
    let upstream = MockUpstream::fixed(Reply::sse(&stream, 7)).await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(&python, "openai_stream_error", &router, &script.expected()).await;
    assert_eq!(
        upstream.count(),
        2,
        "create(stream=True) and .stream(), neither retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_gets_503_for_upstream_529_overloaded() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ))
    .await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(&python, "openai_overloaded", &router, &json!({})).await;
    assert_eq!(upstream.count(), 2, "create and create(stream=True), each tried once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_gets_rate_limit_error_for_upstream_429() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(
        429,
        json!({"type": "error", "error": {"type": "rate_limit_error",
               "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
    ))
    .await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(&python, "openai_rate_limit", &router, &json!({})).await;
    assert_eq!(upstream.count(), 2, "create and create(stream=True), each tried once");
}

// ---------------------------------------------------------------------------------------------------------
// Request ids (§4.5), both routes

/// An upstream that answers `script` with `header` set to `request_id`, and a 429 (same header) when the
/// request mentions "fail please".
async fn upstream_with_request_id(
    protocol: Upstream,
    script: &Script,
    header: &'static str,
    request_id: &str,
) -> MockUpstream {
    let body = match protocol {
        Upstream::OpenAi => script.openai_json(),
        Upstream::Anthropic => script.anthropic_json(),
        Upstream::Responses => script.responses_json(),
        Upstream::Gemini => script.gemini_json(false),
    }
    .to_string();
    let error = match protocol {
        Upstream::OpenAi | Upstream::Responses => {
            json!({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                             "param": null, "code": "rate_limit_exceeded"}})
        }
        Upstream::Anthropic => json!({"type": "error", "error": {"type": "rate_limit_error",
                                      "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        Upstream::Gemini => json!({"error": {"code": 429, "message": "Resource has been exhausted",
                                   "status": "RESOURCE_EXHAUSTED"}}),
    }
    .to_string();
    let request_id = request_id.to_owned();
    MockUpstream::start(move |request| {
        let failing = String::from_utf8_lossy(&request.body).contains("fail please");
        Reply::Json {
            status: if failing { 429 } else { 200 },
            body: if failing { error.clone() } else { body.clone() },
            headers: vec![(header, request_id.clone())],
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_sees_the_upstream_request_id() {
    let Some(python) = sdk_python() else { return };
    // OpenAI-compatible hosts send `x-request-id`; the Anthropic SDK reads `request-id`.
    let upstream = upstream_with_request_id(Upstream::OpenAi, &route_b_plain(), "x-request-id", "req_oai_7f3a").await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(
        &python,
        "anthropic_request_id",
        &router,
        &json!({"request_id": "req_oai_7f3a"}),
    )
    .await;
    assert_eq!(upstream.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_sees_the_upstream_request_id() {
    let Some(python) = sdk_python() else { return };
    // Anthropic sends `request-id`; the OpenAI SDK reads `x-request-id`.
    let upstream =
        upstream_with_request_id(Upstream::Anthropic, &route_a_thinking(), "request-id", "req_011CAntReq").await;
    let router = router_on_anthropic(&upstream).await;
    run_driver(
        &python,
        "openai_request_id",
        &router,
        &json!({"request_id": "req_011CAntReq"}),
    )
    .await;
    assert_eq!(upstream.count(), 2);
}

// ---------------------------------------------------------------------------------------------------------
// The Responses API: the `openai` SDK's `responses.*` on a Chat Completions upstream, through the hub

/// The expected answer for a Responses client: `call_id` is the upstream's tool id as sent.
fn responses_expected(script: &Script) -> Value {
    let mut expected = script.expected();
    expected["tools"] = script
        .tools
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "input": t.input()}))
        .collect();
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_create_and_stream_agree_on_a_chat_upstream() {
    let Some(python) = sdk_python() else { return };
    for script in [route_b_tools(), route_b_thinking()] {
        let upstream = scripted(Upstream::OpenAi, &script).await;
        let router = router_on_openai(&upstream, "      reasoning_dialect: deepseek").await;
        run_driver(&python, "responses_tools", &router, &responses_expected(&script)).await;

        let seen = upstream.recorded();
        assert_eq!(seen.len(), 3, "create, .stream(), create(stream=True)");
        for request in &seen {
            assert_eq!(request.path, "/v1/chat/completions");
            assert_upstream_credentials(request, Upstream::OpenAi);
            let body = request.json();
            assert_eq!(body["model"], "upstream-model");
            assert_eq!(body["max_tokens"], 1000);
            assert_eq!(
                body["messages"][0],
                json!({"role": "system", "content": "You are a weather assistant."})
            );
            assert_eq!(
                body["messages"][1]["content"][1],
                json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"), "detail": "low"}})
            );
            assert_eq!(
                body["tools"].as_array().unwrap().len(),
                1,
                "the hosted web_search tool is dropped"
            );
            assert_eq!(
                (body["thinking"]["type"].as_str(), body["reasoning_effort"].as_str()),
                (Some("enabled"), Some("medium"))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_stream_ends_in_response_failed_when_the_upstream_breaks() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_tools();
    let full = script.openai_sse();
    let cut = full.find("\"tool_calls\"").unwrap();
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(&full.as_bytes()[..full[..cut].rfind("data: ").unwrap()], 7),
        gap: Duration::from_millis(1),
        then_break: true,
    })
    .await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "responses_stream_error", &router, &responses_expected(&script)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_gets_rate_limit_error_for_upstream_429() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(
        429,
        json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
    ))
    .await;
    let router = router_on_openai(&upstream, "").await;
    run_driver(&python, "responses_rate_limit", &router, &json!({})).await;
    assert_eq!(
        upstream.count(),
        1,
        "a client error status is not retried on the only deployment"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The Chat and Anthropic SDKs (and their stream helpers) on a Responses upstream, through the hub

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_create_and_stream_agree_on_a_responses_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_tools();
    let upstream = scripted(Upstream::Responses, &script).await;
    let router = TestRouter::start(&config_one(
        "sonnet",
        "responses",
        &format!("{}/v1", upstream.base()),
        "",
    ))
    .await;
    run_driver(&python, "anthropic_tools", &router, &script.expected()).await;
    for request in upstream.recorded() {
        assert_eq!(request.path, "/v1/responses");
        assert_upstream_credentials(&request, Upstream::Responses);
        let body = request.json();
        assert_eq!(
            (body["model"].as_str(), body["store"].as_bool()),
            (Some("upstream-model"), Some(false))
        );
        assert_eq!(body["instructions"], "You are a weather assistant.");
        assert_eq!(body["tools"][0]["name"], "weather");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_create_and_stream_agree_on_a_responses_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_a_tools();
    let upstream = scripted(Upstream::Responses, &script).await;
    let router = TestRouter::start(&config_one("gpt", "responses", &format!("{}/v1", upstream.base()), "")).await;
    run_driver(&python, "openai_tools", &router, &responses_expected(&script)).await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "create, .stream(), create(stream=True)");
    for request in &seen {
        assert_eq!(request.path, "/v1/responses");
        let body = request.json();
        assert_eq!(body["max_output_tokens"], 1000);
        assert_eq!(body["input"][0]["role"], "developer", "the system message at its place");
        assert_eq!(body["input"][1]["content"][1]["type"], "input_image");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Gemini: the same scripts in Google's wire format

/// The `thoughtSignature` the scripted Gemini upstream signs its first function call with (or, without a
/// call, its last text part), and then requires back on the replayed call. Its standard base64 has both
/// `+` and `/`, so a URL-safe respelling (what the Python SDK writes) differs as a string.
const GEMINI_SIGNATURE: &str = "Z2VtaW5pLTMgc2lnbmF0dXJlIPv/vwAgb3BhcXVl";

/// The bytes of a base64 field in any spelling proto3 JSON accepts (standard or URL-safe, padded or not).
fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let standard: String = text
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(standard).ok()
}

/// The id a Chat, Messages or Responses client must see for the scripted Gemini upstream's call `k`: its
/// id, with the first call's signature riding after `__thought__` (reference §3.3).
fn gemini_client_id(tool: &Tool, k: usize) -> String {
    use base64::Engine;
    if k > 0 {
        return tool.id.to_owned();
    }
    let bytes = base64_bytes(GEMINI_SIGNATURE).unwrap();
    format!(
        "{}__thought__{}",
        tool.id,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `expected` with the tool ids a non-Gemini client sees from the scripted Gemini upstream.
fn with_gemini_ids(mut expected: Value, script: &Script) -> Value {
    expected["tools"] = script
        .tools
        .iter()
        .enumerate()
        .map(|(k, t)| json!({"id": gemini_client_id(t, k), "name": t.name, "input": t.input()}))
        .collect();
    expected
}

impl Script {
    /// Thought tokens of the Gemini rendering: a third of the output when there is thinking.
    fn gemini_thoughts(&self) -> u64 {
        if self.thinking.is_empty() { 0 } else { self.output / 3 }
    }

    fn gemini_usage(&self) -> Value {
        let prompt = self.input + self.cached;
        let thoughts = self.gemini_thoughts();
        let mut usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": self.output - thoughts,
                               "totalTokenCount": prompt + self.output});
        if thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(thoughts);
        }
        if self.cached > 0 {
            usage["cachedContentTokenCount"] = json!(self.cached);
        }
        usage
    }

    /// The answer's parts; each element is one chunk's parts when streamed. Thought parts only when the
    /// request asked for them (as Gemini does); the first call, or else the last text, is signed.
    fn gemini_part_groups(&self, thoughts: bool, streamed: bool) -> Vec<Vec<Value>> {
        let group = |pieces: &[&str], whole: String, thought: bool| -> Vec<Vec<Value>> {
            let part = |text: &str| match thought {
                true => json!({"text": text, "thought": true}),
                false => json!({"text": text}),
            };
            match streamed {
                true => pieces.iter().map(|p| vec![part(p)]).collect(),
                false => vec![vec![part(&whole)]],
            }
        };
        let mut groups = Vec::new();
        if thoughts && !self.thinking.is_empty() {
            groups.extend(group(self.thinking, self.thinking(), true));
        }
        if !self.text.is_empty() {
            groups.extend(group(self.text, self.text(), false));
        }
        if self.tools.is_empty()
            && let Some(last) = groups.last_mut().and_then(|g| g.last_mut())
        {
            last["thoughtSignature"] = json!(GEMINI_SIGNATURE);
        }
        for (k, tool) in self.tools.iter().enumerate() {
            let mut part = json!({"functionCall": {"id": tool.id, "name": tool.name, "args": tool.input()}});
            if k == 0 {
                part["thoughtSignature"] = json!(GEMINI_SIGNATURE);
            }
            // Gemini sends each call whole, parallel calls one per chunk.
            groups.push(vec![part]);
        }
        if !streamed {
            groups = vec![groups.concat()];
        }
        groups
    }

    fn gemini_json(&self, thoughts: bool) -> Value {
        let parts = self.gemini_part_groups(thoughts, false).concat();
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": self.gemini_usage(), "modelVersion": "upstream-model", "responseId": self.id})
    }

    /// One `data:` line per chunk, `\r\n\r\n` after each (as Google writes them); the running usage on
    /// every chunk, the finish reason on the last content chunk.
    fn gemini_sse(&self, thoughts: bool) -> String {
        let groups = self.gemini_part_groups(thoughts, true);
        let prompt = self.input + self.cached;
        let last = groups.len() - 1;
        let mut out = String::new();
        for (k, parts) in groups.into_iter().enumerate() {
            let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
            let usage = if k == last {
                candidate["finishReason"] = json!("STOP");
                self.gemini_usage()
            } else {
                json!({"promptTokenCount": prompt, "totalTokenCount": prompt})
            };
            let chunk = json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "upstream-model",
                               "responseId": self.id});
            out += &format!("data: {chunk}\r\n\r\n");
        }
        out
    }
}

/// What a real Gemini 3 would refuse in a request's history: a replayed call without the signature it
/// was answered with (only the first call of a model turn is checked), a signature it never issued, or a
/// function-response turn whose count differs from the calls it answers (reference §3.1, §2.8).
fn gemini_history_problem(body: &Value) -> Option<String> {
    let contents = body["contents"].as_array()?;
    let want = base64_bytes(GEMINI_SIGNATURE).unwrap();
    for (k, content) in contents.iter().enumerate() {
        let parts = content["parts"].as_array().cloned().unwrap_or_default();
        let calls: Vec<&Value> = parts.iter().filter(|p| p.get("functionCall").is_some()).collect();
        if content["role"] != "model" || calls.is_empty() {
            continue;
        }
        match calls[0]["thoughtSignature"].as_str().map(base64_bytes) {
            None => {
                return Some(format!(
                    "Function call is missing a thought_signature in functionCall parts. This is required for \
                     tools to work correctly. Additional data, function call `default_api:{}` , position {}.",
                    calls[0]["functionCall"]["name"].as_str().unwrap_or(""),
                    k + 1
                ));
            }
            Some(bytes) if bytes.as_deref() != Some(&want[..]) => return Some("Corrupted thought signature.".into()),
            Some(_) => {}
        }
        let answers = contents
            .get(k + 1)
            .and_then(|c| c["parts"].as_array())
            .map_or(0, |p| p.iter().filter(|p| p.get("functionResponse").is_some()).count());
        if answers != calls.len() {
            return Some(
                "Please ensure that the number of function response parts is equal to the number of function \
                 call parts of the function call turn."
                    .into(),
            );
        }
    }
    None
}

/// A field of a proto3 JSON object under either of its names (`includeThoughts` or `include_thoughts`), as
/// Google's parsers accept both and the Python SDK writes some nested fields in snake_case (reference §0).
fn proto_field<'a>(object: &'a Value, camel: &str) -> &'a Value {
    match object.get(camel) {
        Some(value) => value,
        None => {
            let mut snake = String::new();
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            &object[snake.as_str()]
        }
    }
}

/// A scripted Gemini upstream: `:generateContent` answers the JSON body, `:streamGenerateContent?alt=sse`
/// the stream in 7-byte pieces, with thought parts only when `includeThoughts` asks for them; a history
/// Gemini 3 would refuse gets its 400 `INVALID_ARGUMENT`.
async fn gemini_upstream(script: &Script) -> MockUpstream {
    let answers = [
        (script.gemini_json(false), script.gemini_sse(false)),
        (script.gemini_json(true), script.gemini_sse(true)),
    ];
    MockUpstream::start(move |request| {
        let body = request.json();
        if let Some(problem) = gemini_history_problem(&body) {
            return Reply::status(
                400,
                json!({"error": {"code": 400, "message": problem, "status": "INVALID_ARGUMENT"}}),
            );
        }
        let thoughts = *proto_field(&body["generationConfig"]["thinkingConfig"], "includeThoughts") == true;
        let (json, stream) = &answers[usize::from(thoughts)];
        if request.path.ends_with(":streamGenerateContent") && request.uri.contains("alt=sse") {
            Reply::sse(stream, 7)
        } else if request.path.ends_with(":generateContent") {
            Reply::json(json.clone())
        } else {
            Reply::status(
                404,
                json!({"error": {"code": 404, "message": "no such method", "status": "NOT_FOUND"}}),
            )
        }
    })
    .await
}

/// The router with one deployment of `protocol` behind the client model `group`. OpenAI upstreams speak
/// the deepseek reasoning dialect, so scripted thinking reaches the client.
async fn router_on(protocol: Upstream, upstream: &MockUpstream, group: &str) -> TestRouter {
    let (kind, base, extra) = match protocol {
        Upstream::OpenAi => (
            "openai",
            format!("{}/v1", upstream.base()),
            "      reasoning_dialect: deepseek",
        ),
        Upstream::Anthropic => ("anthropic", upstream.base(), ""),
        Upstream::Responses => ("responses", format!("{}/v1", upstream.base()), ""),
        Upstream::Gemini => ("gemini", format!("{}/v1beta", upstream.base()), ""),
    };
    TestRouter::start(&config_one(group, kind, &base, extra)).await
}

/// The path a generation request of `protocol` goes to (streamed or not).
fn upstream_path(protocol: Upstream, streamed: bool) -> &'static str {
    match (protocol, streamed) {
        (Upstream::OpenAi, _) => "/v1/chat/completions",
        (Upstream::Anthropic, _) => "/v1/messages",
        (Upstream::Responses, _) => "/v1/responses",
        (Upstream::Gemini, false) => "/v1beta/models/upstream-model:generateContent",
        (Upstream::Gemini, true) => "/v1beta/models/upstream-model:streamGenerateContent",
    }
}

/// Whether the upstream was asked for a stream, in its protocol's way.
fn asked_to_stream(protocol: Upstream, seen: &Recorded) -> bool {
    match protocol {
        Upstream::Gemini => seen.path.ends_with(":streamGenerateContent"),
        _ => is_streaming(seen),
    }
}

/// The system prompt as the upstream got it.
fn upstream_system(protocol: Upstream, body: &Value) -> Value {
    match protocol {
        Upstream::OpenAi => body["messages"][0].clone(),
        Upstream::Anthropic => body["system"][0]["text"].clone(),
        Upstream::Responses => body["instructions"].clone(),
        Upstream::Gemini => body["systemInstruction"]["parts"][0]["text"].clone(),
    }
}

/// The driver's expectation for a Gemini client: the upstream's own tool ids, the path model echoed as
/// `modelVersion` (a Gemini upstream's answer passes through unchanged).
fn gemini_expected(script: &Script, protocol: Upstream) -> Value {
    let mut expected = responses_expected(script);
    expected["model_version"] = json!(match protocol {
        Upstream::Gemini => "upstream-model",
        _ => "gem",
    });
    expected
}

/// Runs `scenario` of the Gemini SDK on a scripted upstream of each kind; returns each kind's requests.
async fn gemini_sdk_on_every_upstream(python: &str, scenario: &str, script: &Script) -> Vec<(Upstream, Vec<Recorded>)> {
    let mut seen = Vec::new();
    for protocol in Upstream::ALL {
        let upstream = scripted(protocol, script).await;
        let router = router_on(protocol, &upstream, "gem").await;
        run_driver(python, scenario, &router, &gemini_expected(script, protocol)).await;
        let requests = upstream.recorded();
        for request in &requests {
            assert_upstream_credentials(request, protocol);
        }
        seen.push((protocol, requests));
    }
    seen
}

fn gemini_plain() -> Script {
    Script {
        id: "resp-G1plain",
        thinking: &[],
        signature: "",
        text: &["Sunny in Paris, ", "rainy 🌧 in Rome; ", "bring an umbrella."],
        tools: vec![],
        input: 40,
        cached: 12,
        output: 14,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_generate_and_stream_agree_on_every_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = gemini_plain();
    for (protocol, seen) in gemini_sdk_on_every_upstream(&python, "gemini_generate", &script).await {
        let streamed: Vec<bool> = seen.iter().map(|r| asked_to_stream(protocol, r)).collect();
        assert_eq!(
            streamed,
            [false, true, false, true],
            "{protocol:?}: v1 and v1beta, each create and stream"
        );
        for (request, streamed) in seen.iter().zip(streamed) {
            assert_eq!(request.path, upstream_path(protocol, streamed), "{protocol:?}");
            let body = request.json();
            let system = upstream_system(protocol, &body);
            match protocol {
                Upstream::OpenAi => assert_eq!(
                    system,
                    json!({"role": "system", "content": "You are a weather assistant."})
                ),
                _ => assert_eq!(system, "You are a weather assistant.", "{protocol:?}: {body}"),
            }
            let max_tokens = match protocol {
                Upstream::OpenAi | Upstream::Anthropic => &body["max_tokens"],
                Upstream::Responses => &body["max_output_tokens"],
                Upstream::Gemini => &body["generationConfig"]["maxOutputTokens"],
            };
            assert_eq!(*max_tokens, 1000, "{protocol:?}: {body}");
        }
    }
}

/// Two calls in one answer, as a Gemini client's tool loop meets them.
fn gemini_tools_script() -> Script {
    Script {
        id: "resp-G2tools",
        thinking: &[],
        signature: "",
        text: &["Checking ", "both cities."],
        tools: vec![
            Tool {
                id: "call_g_paris",
                name: "weather",
                args: &["{\"city\"", ":\"Paris\"}"],
            },
            Tool {
                id: "call_g_rome",
                name: "weather",
                args: &["{\"ci", "ty\":\"Rome\"}"],
            },
        ],
        input: 61,
        cached: 0,
        output: 22,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_function_calls_round_trip_on_every_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = gemini_tools_script();
    for (protocol, seen) in gemini_sdk_on_every_upstream(&python, "gemini_tools", &script).await {
        assert_eq!(seen.len(), 6, "{protocol:?}: per version create, stream, follow-up");
        for request in &seen {
            let body = request.json();
            // The SDK's FunctionDeclaration (parameters_json_schema, snake_case) reaches every kind.
            let (name, schema) = match protocol {
                Upstream::OpenAi => (
                    &body["tools"][0]["function"]["name"],
                    &body["tools"][0]["function"]["parameters"],
                ),
                Upstream::Anthropic => (&body["tools"][0]["name"], &body["tools"][0]["input_schema"]),
                Upstream::Responses => (&body["tools"][0]["name"], &body["tools"][0]["parameters"]),
                Upstream::Gemini => (
                    &body["tools"][0]["functionDeclarations"][0]["name"],
                    &body["tools"][0]["functionDeclarations"][0]["parameters_json_schema"],
                ),
            };
            assert_eq!(*name, "weather", "{protocol:?}: {body}");
            assert_eq!(schema["required"], json!(["city"]), "{protocol:?}: {body}");
        }
        for follow in [&seen[2], &seen[5]] {
            let body = follow.json();
            // The replayed calls and their results, paired by the upstream's ids.
            let results: Vec<(String, String)> = match protocol {
                Upstream::OpenAi => {
                    let messages = body["messages"].as_array().unwrap();
                    let assistant = &messages[2];
                    let ids: Vec<&str> = assistant["tool_calls"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["id"].as_str().unwrap())
                        .collect();
                    assert_eq!(ids, ["call_g_paris", "call_g_rome"], "{body}");
                    messages[3..]
                        .iter()
                        .map(|m| {
                            assert_eq!(m["role"], "tool", "{body}");
                            (
                                m["tool_call_id"].as_str().unwrap().to_owned(),
                                m["content"].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect()
                }
                Upstream::Anthropic => {
                    let messages = body["messages"].as_array().unwrap();
                    let uses: Vec<&str> = messages[1]["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|b| b["type"] == "tool_use")
                        .map(|b| b["id"].as_str().unwrap())
                        .collect();
                    assert_eq!(uses, ["call_g_paris", "call_g_rome"], "{body}");
                    messages[2]["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| {
                            assert_eq!(b["type"], "tool_result", "{body}");
                            let content = match &b["content"] {
                                Value::String(s) => s.clone(),
                                blocks => blocks[0]["text"].as_str().unwrap().to_owned(),
                            };
                            (b["tool_use_id"].as_str().unwrap().to_owned(), content)
                        })
                        .collect()
                }
                Upstream::Responses => body["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["type"] == "function_call_output")
                    .map(|i| {
                        (
                            i["call_id"].as_str().unwrap().to_owned(),
                            i["output"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect(),
                Upstream::Gemini => {
                    // Passed through as the SDK wrote it; the mock already checked the signature.
                    let contents = body["contents"].as_array().unwrap();
                    contents[2]["parts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let r = &p["functionResponse"];
                            (
                                r["id"].as_str().unwrap().to_owned(),
                                r["response"]["output"].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect()
                }
            };
            assert_eq!(
                results,
                [
                    ("call_g_paris".to_owned(), "Paris: 18C".to_owned()),
                    ("call_g_rome".to_owned(), "Rome: 18C".to_owned())
                ],
                "{protocol:?}: {body}"
            );
        }
    }
}

/// The driver's image: the 1x1 PNG plus six bytes after IEND, in standard base64 (keep in sync with
/// `driver.py`'s `GEM_IMAGE_TAIL`); the Python SDK sends it URL-safe.
const GEMINI_IMAGE: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggvvvvv/+Pw==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_inline_image_reaches_every_upstream_in_standard_base64() {
    let Some(python) = sdk_python() else { return };
    let script = gemini_plain();
    let data_url = format!("data:image/png;base64,{GEMINI_IMAGE}");
    for (protocol, seen) in gemini_sdk_on_every_upstream(&python, "gemini_image", &script).await {
        assert_eq!(seen.len(), 4, "{protocol:?}");
        for request in &seen {
            let body = request.json();
            let (image, text) = match protocol {
                Upstream::OpenAi => {
                    let parts = &body["messages"][1]["content"];
                    (parts[0]["image_url"]["url"].clone(), parts[1]["text"].clone())
                }
                Upstream::Anthropic => {
                    let blocks = &body["messages"][0]["content"];
                    assert_eq!(blocks[0]["source"]["type"], "base64", "{body}");
                    assert_eq!(blocks[0]["source"]["media_type"], "image/png", "{body}");
                    (
                        json!(format!(
                            "data:image/png;base64,{}",
                            blocks[0]["source"]["data"].as_str().unwrap_or("")
                        )),
                        blocks[1]["text"].clone(),
                    )
                }
                Upstream::Responses => {
                    let parts = &body["input"][0]["content"];
                    (parts[0]["image_url"].clone(), parts[1]["text"].clone())
                }
                Upstream::Gemini => {
                    // Passed through: the SDK's URL-safe spelling, the same bytes.
                    let parts = &body["contents"][0]["parts"];
                    let data = parts[0]["inlineData"]["data"].as_str().unwrap();
                    assert_eq!(base64_bytes(data), base64_bytes(GEMINI_IMAGE), "{body}");
                    (json!(data_url), parts[1]["text"].clone())
                }
            };
            assert_eq!(image, json!(data_url), "{protocol:?}: {body}");
            assert_eq!(text, "What is in this image?", "{protocol:?}: {body}");
        }
    }
}

/// Reasoning, an answer and one call; the Anthropic rendering signs its thinking block.
fn gemini_thinking_script() -> Script {
    Script {
        id: "resp-G3think",
        thinking: &["Paris in June ", "is mild; ", "check to be sure."],
        signature: "EqQBCkYIBRgCKkBsig/opaque+signature==",
        text: &["Let me look ", "that up."],
        tools: vec![Tool {
            id: "call_g_think",
            name: "weather",
            args: &["{\"city\":", "\"Paris\"}"],
        }],
        input: 33,
        cached: 0,
        output: 27,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_sees_thought_parts_from_every_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = gemini_thinking_script();
    for (protocol, seen) in gemini_sdk_on_every_upstream(&python, "gemini_thinking", &script).await {
        assert_eq!(
            seen.len(),
            6,
            "{protocol:?}: per version create, stream, one without thoughts"
        );
        for (k, request) in seen.iter().enumerate() {
            let body = request.json();
            let asked = k % 3 != 2;
            // thinking_budget 4096 (reference §2.7: under 8192 is medium).
            match protocol {
                Upstream::OpenAi if asked => {
                    assert_eq!(body["reasoning_effort"], "medium", "{body}");
                    assert_eq!(body["thinking"]["type"], "enabled", "{body}");
                }
                Upstream::Anthropic if asked => {
                    assert_eq!(body["thinking"]["type"], "enabled", "{body}");
                    assert!(
                        body["max_tokens"].as_u64().unwrap() > body["thinking"]["budget_tokens"].as_u64().unwrap(),
                        "{body}"
                    );
                }
                Upstream::Responses if asked => assert_eq!(body["reasoning"]["effort"], "medium", "{body}"),
                Upstream::Gemini if asked => {
                    let config = &body["generationConfig"]["thinkingConfig"];
                    assert_eq!(*proto_field(config, "includeThoughts"), true, "{body}");
                    assert_eq!(*proto_field(config, "thinkingBudget"), 4096, "{body}");
                }
                Upstream::Gemini => assert!(body["generationConfig"].get("thinkingConfig").is_none(), "{body}"),
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_lists_the_router_groups_as_models() {
    let Some(python) = sdk_python() else { return };
    let upstream = MockUpstream::fixed(Reply::status(500, json!({"error": {"message": "not expected"}}))).await;
    let router = router_on(Upstream::Gemini, &upstream, "gem").await;
    run_driver(&python, "gemini_models", &router, &json!({"models": ["models/gem"]})).await;
    assert_eq!(upstream.count(), 0, "the list is the router's own");
}

/// An upstream that answers every request with its protocol's 429 (Gemini's with `RetryInfo`, the others
/// with `retry-after: 7`).
async fn rate_limited(protocol: Upstream) -> (MockUpstream, &'static str) {
    let (body, message) = match protocol {
        Upstream::OpenAi | Upstream::Responses => (
            json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null,
                             "code": "rate_limit_exceeded"}}),
            "Rate limit reached for requests",
        ),
        Upstream::Anthropic => (
            json!({"type": "error", "error": {"type": "rate_limit_error",
                   "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        Upstream::Gemini => (
            json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
                   "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}),
            "You exceeded your current quota.",
        ),
    };
    let headers = match protocol {
        Upstream::Gemini => vec![],
        _ => vec![("retry-after", "7".to_owned())],
    };
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: body.to_string(),
        headers,
    })
    .await;
    (upstream, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_gets_client_error_429_with_retry_info_from_every_upstream() {
    let Some(python) = sdk_python() else { return };
    for protocol in Upstream::ALL {
        let (upstream, message) = rate_limited(protocol).await;
        let router = router_on(protocol, &upstream, "gem").await;
        // A Gemini upstream's RetryInfo passes through; the others' `retry-after` becomes RetryInfo (reference
        // §6.3) and stays a header too.
        let expected = match protocol {
            Upstream::Gemini => json!({"message": message, "retry_delay": "7s", "retry_after": null}),
            _ => json!({"message": message, "retry_delay": "7s", "retry_after": "7"}),
        };
        run_driver(&python, "gemini_rate_limit", &router, &expected).await;
        assert_eq!(
            upstream.count(),
            4,
            "{protocol:?}: per version create and stream, each tried once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_gets_401_for_a_wrong_key() {
    let Some(python) = sdk_python() else { return };
    let script = gemini_plain();
    let upstream = scripted(Upstream::Gemini, &script).await;
    let config = config_one("gem", "gemini", &format!("{}/v1beta", upstream.base()), "");
    let router = TestRouter::start_with(&config, Some("router-token"), None).await;
    let mut expected = gemini_expected(&script, Upstream::Gemini);
    expected["token"] = json!("router-token");
    run_driver(&python, "gemini_auth", &router, &expected).await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "only the requests with the router token went on");
    for request in &seen {
        assert_upstream_credentials(request, Upstream::Gemini);
        assert!(!format!("{:?}", request.headers).contains("router-token"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_gets_404_for_an_unknown_model() {
    let Some(python) = sdk_python() else { return };
    let upstream = scripted(Upstream::Gemini, &gemini_plain()).await;
    let router = router_on(Upstream::Gemini, &upstream, "gem").await;
    run_driver(&python, "gemini_unknown_model", &router, &json!({})).await;
    assert_eq!(upstream.count(), 0);
}

/// An upstream of `protocol` that streams the start of `script`'s text and then fails: an in-band error
/// (OpenAI, Anthropic, Gemini) or a cut connection (Responses). Returns it with the error code and status
/// the Gemini client must see (reference §6.3, §5.6).
async fn broken_stream(protocol: Upstream, script: &Script) -> (MockUpstream, u16, &'static str) {
    let (stream, code, status) = match protocol {
        Upstream::OpenAi => {
            let full = script.openai_sse();
            let cut = full.find("\"finish_reason\":\"stop\"").unwrap();
            let error = json!({"error": {"message": "The server is overloaded, please retry", "type": "server_error",
                                         "param": null, "code": "server_is_overloaded"}});
            (
                format!("{}data: {error}\n\n", &full[..full[..cut].rfind("data: ").unwrap()]),
                503,
                "UNAVAILABLE",
            )
        }
        Upstream::Anthropic => {
            let full = script.anthropic_sse();
            let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
            (
                format!(
                    "{}event: error\ndata: {error}\n\n",
                    &full[..full.find("event: message_delta").unwrap()]
                ),
                503,
                "UNAVAILABLE",
            )
        }
        Upstream::Responses => {
            let full = script.responses_sse();
            let cut = full.find("event: response.completed").unwrap();
            let upstream = MockUpstream::fixed(Reply::Sse {
                pieces: split(&full.as_bytes()[..cut], 7),
                gap: Duration::from_millis(1),
                then_break: true,
            })
            .await;
            return (upstream, 500, "INTERNAL");
        }
        Upstream::Gemini => {
            let full = script.gemini_sse(false);
            let last = full.rfind("data: ").unwrap();
            let error = json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
            (format!("{}data: {error}\r\n\r\n", &full[..last]), 503, "UNAVAILABLE")
        }
    };
    (MockUpstream::fixed(Reply::sse(&stream, 7)).await, code, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_raises_on_an_upstream_failure_mid_stream() {
    let Some(python) = sdk_python() else { return };
    let script = Script {
        id: "resp-G4broken",
        thinking: &[],
        signature: "",
        text: &["Partial ", "answer, ", "then nothing"],
        tools: vec![],
        input: 10,
        cached: 0,
        output: 3,
    };
    for protocol in Upstream::ALL {
        let (upstream, code, status) = broken_stream(protocol, &script).await;
        let router = router_on(protocol, &upstream, "gem").await;
        // The Gemini rendering breaks before its last chunk, which holds the last text piece.
        let before = match protocol {
            Upstream::Gemini => script.text[..script.text.len() - 1].concat(),
            _ => script.text(),
        };
        let expected = json!({"text": before, "error_code": code, "error_status": status});
        run_driver(&python, "gemini_stream_error", &router, &expected).await;
        assert_eq!(
            upstream.count(),
            1,
            "{protocol:?}: a stream that already started is not retried"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The OpenAI, Anthropic and Responses SDKs on a Gemini upstream (Routes E and F)

/// The router with the scripted Gemini upstream behind `group`.
async fn gemini_routed(script: &Script, group: &str) -> (MockUpstream, TestRouter) {
    let upstream = gemini_upstream(script).await;
    let router = router_on(Upstream::Gemini, &upstream, group).await;
    (upstream, router)
}

/// A replayed call as a Gemini upstream got it: its id and its signature's bytes.
type ReplayedCall = (String, Option<Vec<u8>>);

/// The replayed model turn's calls as the Gemini upstream got them, and the functionResponse ids of the
/// next content.
/// The replayed model turn of a two-call tool loop sent to Gemini: the calls under their base ids, the first
/// one signed with the signature Gemini gave it, and the function responses answering both.
fn assert_first_call_signed(body: &Value, ids: [&str; 2]) {
    let (calls, responses) = gemini_replay(body);
    assert_eq!(
        calls,
        [
            (ids[0].to_owned(), base64_bytes(GEMINI_SIGNATURE)),
            (ids[1].to_owned(), None)
        ],
        "the base ids, the first call signed"
    );
    assert_eq!(responses, ids);
}

fn gemini_replay(body: &Value) -> (Vec<ReplayedCall>, Vec<String>) {
    let contents = body["contents"].as_array().unwrap();
    let turn = contents
        .iter()
        .position(|c| c["role"] == "model")
        .unwrap_or_else(|| panic!("no model turn: {body}"));
    let calls = contents[turn]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("functionCall").is_some())
        .map(|p| {
            (
                p["functionCall"]["id"].as_str().unwrap_or("").to_owned(),
                p["thoughtSignature"].as_str().and_then(base64_bytes),
            )
        })
        .collect();
    let responses = contents[turn + 1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["functionResponse"]["id"].as_str().map(str::to_owned))
        .collect();
    (calls, responses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_create_and_stream_agree_on_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_tools();
    let (upstream, router) = gemini_routed(&script, "sonnet").await;
    run_driver(
        &python,
        "anthropic_tools",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "create, then stream; no retries");
    for (request, streamed) in seen.iter().zip([false, true]) {
        assert_eq!(request.path, upstream_path(Upstream::Gemini, streamed));
        assert_upstream_credentials(request, Upstream::Gemini);
        let body = request.json();
        assert!(body.get("model").is_none(), "a Gemini body has no model: {body}");
        assert_eq!(upstream_system(Upstream::Gemini, &body), "You are a weather assistant.");
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]}])
        );
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 4096);
        let declaration = &body["tools"][0]["functionDeclarations"][0];
        assert_eq!(declaration["name"], "weather");
        assert_eq!(declaration["parametersJsonSchema"]["required"], json!(["city"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_tool_loop_replays_the_thought_signature_to_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = Script {
        id: "resp-G5think",
        thinking: &["Two cities, ", "so two calls."],
        signature: "",
        text: &["Checking Paris ", "and Rome…"],
        tools: vec![
            Tool {
                id: "call_g_1",
                name: "weather",
                args: &["{\"city\":\"Paris\"}"],
            },
            Tool {
                id: "call_g_2",
                name: "weather",
                args: &["{\"city\":\"Rome\"}"],
            },
        ],
        input: 52,
        cached: 0,
        output: 41,
    };
    let (upstream, router) = gemini_routed(&script, "sonnet").await;
    run_driver(
        &python,
        "anthropic_thinking",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(
        seen.len(),
        3,
        "stream, create, tool-loop follow-up (the mock refuses a lost signature)"
    );
    for request in &seen {
        assert_eq!(
            request.json()["generationConfig"]["thinkingConfig"]["includeThoughts"],
            true
        );
    }
    assert_first_call_signed(&seen[2].json(), ["call_g_1", "call_g_2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_create_and_stream_agree_on_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_a_tools();
    let (upstream, router) = gemini_routed(&script, "gpt").await;
    run_driver(
        &python,
        "openai_tools",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "create, .stream(), create(stream=True)");
    for (request, streamed) in seen.iter().zip([false, true, true]) {
        assert_eq!(request.path, upstream_path(Upstream::Gemini, streamed));
        assert_upstream_credentials(request, Upstream::Gemini);
        let body = request.json();
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 1000);
        // §2.8: the data URL becomes inline data.
        assert_eq!(
            body["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": PNG}}),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_tool_loop_replays_the_thought_signature_to_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_a_tools();
    let (upstream, router) = gemini_routed(&script, "gpt").await;
    run_driver(
        &python,
        "openai_tool_loop",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "create, follow-up (the mock refuses a lost signature)");
    assert_first_call_signed(&seen[1].json(), ["toolu_01paris", "toolu_02rome"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_create_and_stream_agree_on_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_thinking_gemini();
    let (upstream, router) = gemini_routed(&script, "sonnet").await;
    run_driver(
        &python,
        "responses_tools",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 3, "create, .stream(), create(stream=True)");
    for request in &seen {
        let body = request.json();
        assert_eq!(upstream_system(Upstream::Gemini, &body), "You are a weather assistant.");
        assert_eq!(
            body["tools"].as_array().unwrap().len(),
            1,
            "the hosted web_search tool is dropped: {body}"
        );
        assert_eq!(
            body["generationConfig"]["thinkingConfig"]["includeThoughts"], true,
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_tool_loop_replays_the_thought_signature_to_a_gemini_upstream() {
    let Some(python) = sdk_python() else { return };
    let script = route_b_thinking_gemini();
    let (upstream, router) = gemini_routed(&script, "sonnet").await;
    run_driver(
        &python,
        "responses_tool_loop",
        &router,
        &with_gemini_ids(script.expected(), &script),
    )
    .await;
    let seen = upstream.recorded();
    assert_eq!(seen.len(), 2, "create, follow-up (the mock refuses a lost signature)");
    assert_first_call_signed(&seen[1].json(), ["call_g_r1", "call_g_r2"]);
}

/// Reasoning, text and two calls, as a Gemini 3 model answers a Responses client.
fn route_b_thinking_gemini() -> Script {
    Script {
        id: "resp-G6think",
        thinking: &["The photo ", "looks like Paris."],
        signature: "",
        text: &["Checking ", "the weather."],
        tools: vec![
            Tool {
                id: "call_g_r1",
                name: "weather",
                args: &["{\"city\":\"Paris\"}"],
            },
            Tool {
                id: "call_g_r2",
                name: "weather",
                args: &["{\"city\":\"Lyon\"}"],
            },
        ],
        input: 80,
        cached: 16,
        output: 30,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The built-in mock upstream, through every SDK

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdk_gets_the_mock_upstreams_answer_in_its_own_protocol() {
    let Some(python) = sdk_python() else { return };
    let text = "Hello from the mock: 你好, streamed in pieces.";
    let config = format!(
        "model_list:\n  - model_name: demo-mock\n    llm_params:\n      api_type: mock\n      mock_response: '{text}'\n      mock_stream_chunk_chars: 5\nrouter_settings:\n  model_groups:\n    - name: demo\n      models:\n        - name: demo-mock\n"
    );
    let router = TestRouter::start(&config).await;
    let expected = json!({
        "model": "demo",
        "text": text,
        "output_tokens": text.chars().count().div_ceil(4),
    });
    for scenario in ["anthropic_mock", "openai_mock", "gemini_mock"] {
        run_driver(&python, scenario, &router, &expected).await;
    }
    let status = router.get_json("/status.json").await;
    let served = &status["groups"][0]["deployments"][0];
    assert_eq!(served["api_type"], "mock", "{status}");
    assert_eq!(
        served["requests"], 8,
        "two calls each of Messages, Chat, Responses and Gemini: {status}"
    );
}
