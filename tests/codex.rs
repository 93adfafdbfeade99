//! The real Codex CLI (pinned in `tests/codex/package.json`) talks the Responses API to the router, which
//! drives a scripted Chat Completions upstream through the conversion hub:
//!
//! ```text
//! codex exec … ──► router /v1/responses (group codex-group, api_type openai) ──► MockUpstream (Chat)
//! ```
//!
//! Two sessions: a shell tool round trip (Codex runs `exec_command` and sends its output back) and an
//! `apply_patch` edit (Codex applies only a `custom_tool_call`, so the router must restore that shape).
//! Everything stays on 127.0.0.1: Codex runs with a temporary `CODEX_HOME`, its proxy variables pointing at a
//! dead port, analytics and plugins off.
//!
//! Needs `npm ci --prefix tests/codex` (done by `scripts/test.sh`); without it the tests print a skip line and
//! pass, unless `LLM_ROUTER_REQUIRE_CODEX=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const GROUP: &str = "codex-group";
const ROUTER_TOKEN: &str = "sk-router-codex";
const TOOL_CALL_ID: &str = "call_codex_1";
const TOOL_OUTPUT: &str = "hello-from-codex";
const FINAL_TEXT: &str = "The command printed hello-from-codex.";
const PATCH_CALL_ID: &str = "call_patch_1";
const PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+hello from the router\n*** End Patch\n";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The Codex binary, or `None` (after saying why) when the tests are skipped.
fn codex() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codex/node_modules/.bin/codex");
    if bin.exists() {
        return Some(bin);
    }
    if std::env::var("LLM_ROUTER_REQUIRE_CODEX").as_deref() == Ok("1") {
        panic!(
            "LLM_ROUTER_REQUIRE_CODEX=1 but {} is missing: run ./scripts/test.sh",
            bin.display()
        );
    }
    eprintln!("skipped: the Codex CLI is not installed (npm ci --prefix tests/codex)");
    None
}

/// A Chat Completions stream of `deltas`, ending with `finish` and usage.
fn chat_stream(deltas: &[Value], finish: &str) -> String {
    let chunk = |delta: &Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-codex", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let mut out = chunk(&json!({"role": "assistant", "content": ""}), Value::Null);
    for delta in deltas {
        out += &chunk(delta, Value::Null);
    }
    out += &chunk(&json!({}), json!(finish));
    let usage = json!({"id": "chatcmpl-codex", "object": "chat.completion.chunk", "created": 1, "model": "up",
        "choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}});
    out + &format!("data: {usage}\n\ndata: [DONE]\n\n")
}

fn tool_call(id: &str, name: &str, arguments: &str) -> String {
    let half = arguments.len() / 2;
    let split = (0..=half).rev().find(|i| arguments.is_char_boundary(*i)).unwrap_or(0);
    chat_stream(
        &[
            json!({"reasoning_content": "I will use a tool."}),
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &arguments[..split]}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": &arguments[split..]}}]}),
        ],
        "tool_calls",
    )
}

fn text(text: &str) -> String {
    chat_stream(&[json!({"content": text})], "stop")
}

/// The `tool` message answering `id`, if the conversation has one.
fn tool_result<'a>(body: &'a Value, id: &str) -> Option<&'a Value> {
    body["messages"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
}

fn has_tool(body: &Value, name: &str) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == name))
}

/// The scripted upstream: a tool call first, the final text once the tool's result is in.
async fn upstream() -> MockUpstream {
    MockUpstream::start(|request| {
        let body = request.json();
        let answer = if tool_result(&body, TOOL_CALL_ID).is_some() {
            text(FINAL_TEXT)
        } else if tool_result(&body, PATCH_CALL_ID).is_some() {
            text("Added hello.txt.")
        } else if has_tool(&body, "apply_patch") {
            tool_call(PATCH_CALL_ID, "apply_patch", &json!({"input": PATCH}).to_string())
        } else if has_tool(&body, "exec_command") {
            tool_call(
                TOOL_CALL_ID,
                "exec_command",
                &json!({"cmd": format!("echo {TOOL_OUTPUT}")}).to_string(),
            )
        } else {
            text("OK")
        };
        Reply::sse(&answer, 7)
    })
    .await
}

/// Runs `codex exec PROMPT` for `model` in `workdir` against the router; returns (success, stdout, stderr).
async fn run_codex(
    bin: &Path,
    router: &TestRouter,
    model: &str,
    workdir: &Path,
    prompt: &str,
) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    let config = format!(
        r#"model = "{model}"
model_provider = "router"
check_for_update_on_startup = false

[model_providers.router]
name = "llm-router"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "LLM_ROUTER_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000

[analytics]
enabled = false

[features]
plugins = false
apps = false
remote_plugin = false
"#,
        base = router.base
    );
    std::fs::write(home.path().join("config.toml"), config).unwrap();
    let mut command = tokio::process::Command::new(bin);
    command
        .args([
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            prompt,
        ])
        .current_dir(workdir)
        .env("CODEX_HOME", home.path())
        .env("HOME", home.path())
        .env("LLM_ROUTER_KEY", ROUTER_TOKEN)
        // Anything that is not loopback (plugin sync, update checks) goes to a dead port.
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .expect("codex exec finished in time")
        .expect("codex runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The shell-tool session: Codex must exit 0 with the final text; returns its stderr for later messages.
async fn run_shell_session(bin: &Path, router: &TestRouter, workdir: &Path) -> String {
    let (ok, stdout, stderr) = run_codex(bin, router, GROUP, workdir, "Run echo via your shell tool").await;
    let output = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(ok, "codex exec failed\n{output}");
    assert!(stdout.contains(FINAL_TEXT), "final text missing\n{output}");
    stderr
}

async fn router_on(upstream: &MockUpstream) -> TestRouter {
    // `gpt-5.5` is the name Codex knows (it then offers `apply_patch`); both groups reach the same upstream.
    let config = format!(
        "model_list:\n  - model_name: chat\n    llm_params: {{api_type: openai, model: up, api_base: \"{}/v1\", api_key: sk-upstream-secret, reasoning_dialect: deepseek}}\nrouter_settings:\n  model_groups:\n    - {{name: {GROUP}, models: [{{name: chat}}]}}\n    - {{name: gpt-5.5, models: [{{name: chat}}]}}\n",
        upstream.base()
    );
    TestRouter::start_with(&config, Some(ROUTER_TOKEN), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_shell_tool_through_the_router_on_a_chat_upstream() {
    let Some(bin) = codex() else { return };
    let upstream = upstream().await;
    let router = router_on(&upstream).await;
    let workdir = tempfile::tempdir().unwrap();
    let stderr = run_shell_session(&bin, &router, workdir.path()).await;

    let requests = upstream.recorded();
    let follow_up = requests
        .iter()
        .map(Recorded::json)
        .find(|body| tool_result(body, TOOL_CALL_ID).is_some())
        .unwrap_or_else(|| panic!("no request carried the tool's result\n--- stderr ---\n{stderr}"));
    let result = tool_result(&follow_up, TOOL_CALL_ID).unwrap();
    assert!(
        result["content"].as_str().unwrap().contains(TOOL_OUTPUT),
        "Codex ran the command: {result}"
    );
    let messages = follow_up["messages"].as_array().unwrap();
    let position = messages.iter().position(|m| m["role"] == "tool").unwrap();
    let call = &messages[position - 1];
    assert_eq!(call["role"], "assistant");
    assert_eq!(call["tool_calls"][0]["id"], TOOL_CALL_ID);
    assert_eq!(
        call["reasoning_content"], "I will use a tool.",
        "the summary came back and is replayed"
    );
    for request in &requests {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.header("authorization"), Some("Bearer sk-upstream-secret"));
        let body = request.json();
        assert_eq!(body["stream"], true);
        assert!(!has_tool(&body, "web_search"), "hosted tools are dropped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_applies_a_patch_sent_back_as_a_custom_tool_call() {
    let Some(bin) = codex() else { return };
    let upstream = upstream().await;
    let router = router_on(&upstream).await;
    let workdir = tempfile::tempdir().unwrap();
    // Codex offers its `apply_patch` custom tool only to models it knows.
    let (ok, stdout, stderr) = run_codex(&bin, &router, "gpt-5.5", workdir.path(), "Create hello.txt").await;
    let requests = upstream.recorded();
    assert!(
        ok,
        "codex exec failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- requests ---\n{}",
        requests.len()
    );
    let written = std::fs::read_to_string(workdir.path().join("hello.txt")).unwrap_or_else(|e| {
        panic!("the patch was not applied ({e})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
    });
    assert_eq!(written.trim_end(), "hello from the router");
    let follow_up = requests
        .iter()
        .map(Recorded::json)
        .find(|body| tool_result(body, PATCH_CALL_ID).is_some())
        .expect("the patch's result came back");
    let calls = &follow_up["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .unwrap()["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "apply_patch");
    assert_eq!(
        calls[0]["function"]["arguments"],
        json!({"input": PATCH}).to_string(),
        "re-wrapped for the upstream"
    );
}

/// An Anthropic Messages stream: optional thinking, then either a tool call or a text.
fn anthropic_stream(tool: Option<(&str, &str, &str)>, text: &str) -> String {
    let event = |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap());
    let mut out = event(
        json!({"type": "message_start", "message": {"id": "msg_codex", "type": "message",
        "role": "assistant", "model": "up", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 120, "output_tokens": 1}}}),
    );
    let block = |index: usize, start: Value, deltas: Vec<Value>, out: &mut String| {
        *out += &event(json!({"type": "content_block_start", "index": index, "content_block": start}));
        for delta in deltas {
            *out += &event(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        *out += &event(json!({"type": "content_block_stop", "index": index}));
    };
    block(
        0,
        json!({"type": "thinking", "thinking": "", "signature": ""}),
        vec![
            json!({"type": "thinking_delta", "thinking": "I will use a tool."}),
            json!({"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
        ],
        &mut out,
    );
    let stop = match tool {
        Some((id, name, input)) => {
            let (a, b) = input.split_at(input.len() / 2);
            block(
                1,
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                vec![
                    json!({"type": "input_json_delta", "partial_json": a}),
                    json!({"type": "input_json_delta", "partial_json": b}),
                ],
                &mut out,
            );
            "tool_use"
        }
        None => {
            block(
                1,
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": text})],
                &mut out,
            );
            "end_turn"
        }
    };
    out += &event(
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": 9}}),
    );
    out + &event(json!({"type": "message_stop"}))
}

/// The `tool_result` block answering `id`, if the conversation has one.
fn anthropic_tool_result<'a>(body: &'a Value, id: &str) -> Option<&'a Value> {
    body["messages"]
        .as_array()?
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_shell_tool_through_the_router_on_an_anthropic_upstream() {
    let Some(bin) = codex() else { return };
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        let has_exec = body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["name"] == "exec_command"));
        let answer = if anthropic_tool_result(&body, TOOL_CALL_ID).is_some() {
            anthropic_stream(None, FINAL_TEXT)
        } else if has_exec {
            let input = json!({"cmd": format!("echo {TOOL_OUTPUT}")}).to_string();
            anthropic_stream(Some((TOOL_CALL_ID, "exec_command", &input)), "")
        } else {
            anthropic_stream(None, "OK")
        };
        Reply::sse(&answer, 7)
    })
    .await;
    let config = format!(
        "model_list:\n  - model_name: {GROUP}\n    llm_params: {{api_type: anthropic, model: up, api_base: \"{}\", api_key: sk-upstream-secret}}\n",
        upstream.base()
    );
    let router = TestRouter::start_with(&config, Some(ROUTER_TOKEN), None).await;
    let workdir = tempfile::tempdir().unwrap();
    let stderr = run_shell_session(&bin, &router, workdir.path()).await;
    let requests = upstream.recorded();
    let follow_up = requests
        .iter()
        .map(Recorded::json)
        .find(|body| anthropic_tool_result(body, TOOL_CALL_ID).is_some())
        .unwrap_or_else(|| panic!("no request carried the tool's result\n--- stderr ---\n{stderr}"));
    let result = anthropic_tool_result(&follow_up, TOOL_CALL_ID).unwrap();
    assert!(
        result.to_string().contains(TOOL_OUTPUT),
        "Codex ran the command: {result}"
    );
    for request in &requests {
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.header("x-api-key"), Some("sk-upstream-secret"));
    }
}

/// The signature a Gemini 3 model puts on its call and requires back on the replayed `functionCall` part.
const GEMINI_SIGNATURE: &str = "Y29kZXgtdGhvdWdodC/+/nNpZ25hdHVyZQ==";

/// One `alt=sse` event, as Google sends it (usage as running totals on every chunk).
fn gemini_chunk(parts: Value, finish: Option<&str>) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let chunk = json!({"candidates": [candidate], "modelVersion": "up", "responseId": "gem-codex",
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 9, "totalTokenCount": 129}});
    format!("data: {chunk}\r\n\r\n")
}

fn gemini_tool_output(body: &Value) -> Option<Value> {
    gemini_parts(body)
        .into_iter()
        .find_map(|p| p.get("functionResponse").cloned())
        .filter(|r| r.to_string().contains(TOOL_OUTPUT))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_a_shell_tool_through_the_router_on_a_gemini_upstream() {
    let Some(bin) = codex() else { return };
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        let calls: Vec<Value> = gemini_parts(&body)
            .into_iter()
            .filter(|p| p.get("functionCall").is_some())
            .collect();
        if calls.iter().any(|p| p["thoughtSignature"] != GEMINI_SIGNATURE) {
            return Reply::status(
                400,
                json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                    "message": "Function call is missing a thought_signature in functionCall parts."}}),
            );
        }
        let has_exec = body["tools"].as_array().is_some_and(|tools| {
            tools
                .iter()
                .filter_map(|t| t["functionDeclarations"].as_array())
                .flatten()
                .any(|d| d["name"] == "exec_command")
        });
        let answer = if gemini_tool_output(&body).is_some() {
            gemini_chunk(json!([{"text": FINAL_TEXT}]), Some("STOP"))
        } else if has_exec {
            gemini_chunk(json!([{"text": "I will use a tool.", "thought": true}]), None)
                + &gemini_chunk(
                    json!([{"functionCall": {"name": "exec_command", "args": {"cmd": format!("echo {TOOL_OUTPUT}")}},
                        "thoughtSignature": GEMINI_SIGNATURE}]),
                    None,
                )
                + &gemini_chunk(json!([]), Some("STOP"))
        } else {
            gemini_chunk(json!([{"text": "OK"}]), Some("STOP"))
        };
        Reply::sse(&answer, 7)
    })
    .await;
    let config = format!(
        "model_list:\n  - model_name: {GROUP}\n    llm_params: {{api_type: gemini, model: up, api_base: \"{}/v1beta\", api_key: sk-upstream-secret}}\n",
        upstream.base()
    );
    let router = TestRouter::start_with(&config, Some(ROUTER_TOKEN), None).await;
    let workdir = tempfile::tempdir().unwrap();
    let stderr = run_shell_session(&bin, &router, workdir.path()).await;
    let requests = upstream.recorded();
    let follow_up = requests
        .iter()
        .map(Recorded::json)
        .find(|body| gemini_tool_output(body).is_some())
        .unwrap_or_else(|| panic!("no request carried the tool's result\n--- stderr ---\n{stderr}"));
    let (contents, at) = gemini_replayed_call(&follow_up);
    let call = contents[at]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p.get("functionCall").is_some())
        .unwrap();
    assert_eq!(call["functionCall"]["name"], "exec_command");
    assert_eq!(call["thoughtSignature"], GEMINI_SIGNATURE);
    let response = contents[at + 1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p.get("functionResponse"))
        .expect("the function response follows its call");
    assert_eq!(response["name"], "exec_command");
    assert!(
        response["response"].to_string().contains(TOOL_OUTPUT),
        "Codex ran the command: {response}"
    );
    for request in &requests {
        assert_eq!(request.uri, "/v1beta/models/up:streamGenerateContent?alt=sse");
        assert_eq!(request.header("x-goog-api-key"), Some("sk-upstream-secret"));
        assert!(request.json().get("model").is_none());
    }
}
