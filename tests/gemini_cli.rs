//! The real Gemini CLI (pinned in `tests/gemini-cli/package.json`) talks the Gemini API to the router, which
//! drives a scripted Chat Completions upstream through the conversion hub:
//!
//! ```text
//! gemini -p … ──► RecordingProxy ──► router /v1beta/models/{m}:streamGenerateContent (api_type openai) ──► MockUpstream
//! ```
//!
//! The CLI asks for its main model and, on the side, for hard-coded Gemini model names (the routing
//! classifier, summarisers); one group with `aliases: ["gemini-*"]` serves all of them. The proxy keeps the
//! Gemini bodies the CLI sent and the router's status for each; the mock keeps the converted Chat bodies.
//! Two sessions: a plain answer, and a `read_file` round trip the CLI really executes. Everything stays on
//! 127.0.0.1: the CLI runs with a temporary `HOME` holding the settings file it needs for a custom base URL
//! (`security.auth.selectedType: gemini-api-key`), with telemetry, usage statistics and the auto-updater
//! off and no sandbox.
//!
//! Needs `npm ci --prefix tests/gemini-cli` (done by `scripts/test.sh`); without it the tests print a skip
//! line and pass, unless `LLM_ROUTER_REQUIRE_GEMINI_CLI=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// The group the CLI is pointed at with `-m`; its aliases take the CLI's own model names.
const GROUP: &str = "gemini-cli-group";
const ROUTER_TOKEN: &str = "sk-router-gemini-cli";
const PLAIN_PROMPT: &str = "Say hello to the router";
const PLAIN_TEXT: &str = "Hello from the scripted upstream.";
const TOOL_PROMPT: &str = "Read the file notes.txt with your read_file tool and tell me what it says";
const NOTES: &str = "the secret word is tangerine-42";
const TOOL_CALL_ID: &str = "call_read_notes_1";
const FINAL_TEXT: &str = "The file says: the secret word is tangerine-42.";
const TIMEOUT: Duration = Duration::from_secs(120);

/// The Gemini CLI's entry point, or `None` (after saying why) when the tests are skipped.
fn gemini_binary() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gemini-cli/node_modules/.bin/gemini");
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var("LLM_ROUTER_REQUIRE_GEMINI_CLI").as_deref() != Ok("1"),
        "LLM_ROUTER_REQUIRE_GEMINI_CLI=1 but {} is missing: run ./scripts/test.sh",
        bin.display()
    );
    eprintln!("skipped: the Gemini CLI is not installed (npm ci --prefix tests/gemini-cli)");
    None
}

// ---- the scripted Chat Completions upstream ----------------------------------------------------------------

/// What the mock takes a converted request for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A helper asking for JSON (`response_format`), such as the routing classifier.
    Json,
    /// The tool prompt, before the tool ran.
    ToolFirst,
    /// The tool prompt, with the tool's result in a `tool` message.
    ToolAfter,
    /// Anything else: answered with plain text.
    Plain,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn messages(body: &Value) -> Vec<Value> {
    body["messages"].as_array().cloned().unwrap_or_default()
}

fn classify(body: &Value) -> Kind {
    let messages = messages(body);
    let asks_tool = messages
        .iter()
        .any(|m| m["role"] == "user" && text_of(&m["content"]).contains(TOOL_PROMPT));
    if body.get("response_format").is_some() {
        Kind::Json
    } else if asks_tool && messages.iter().any(|m| m["role"] == "tool") {
        Kind::ToolAfter
    } else if asks_tool {
        Kind::ToolFirst
    } else {
        Kind::Plain
    }
}

/// A Chat Completions stream of `deltas`, ending with `finish` and usage.
fn chat_stream(deltas: &[Value], finish: &str) -> String {
    let chunk = |delta: &Value, finish: Value| {
        let chunk = json!({"id": "chatcmpl-gemini-cli", "object": "chat.completion.chunk", "created": 1,
            "model": "upstream-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let mut out = chunk(&json!({"role": "assistant", "content": ""}), Value::Null);
    for delta in deltas {
        out += &chunk(delta, Value::Null);
    }
    out += &chunk(&json!({}), json!(finish));
    let usage = json!({"id": "chatcmpl-gemini-cli", "object": "chat.completion.chunk", "created": 1,
        "model": "upstream-model", "choices": [],
        "usage": {"prompt_tokens": 1500, "completion_tokens": 12, "total_tokens": 1512}});
    out + &format!("data: {usage}\n\ndata: [DONE]\n\n")
}

/// `text` in two deltas.
fn text_stream(text: &str) -> String {
    let (a, b) = text.split_at(text.len() / 2);
    chat_stream(&[json!({"content": a}), json!({"content": b})], "stop")
}

/// A `read_file` call for `notes.txt`, its arguments in fragments.
fn tool_call_stream() -> String {
    let arguments = json!({"file_path": "notes.txt"}).to_string();
    let mut deltas = vec![
        json!({"tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function",
        "function": {"name": "read_file", "arguments": ""}}]}),
    ];
    for fragment in arguments.as_bytes().chunks(6) {
        deltas.push(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": std::str::from_utf8(fragment).unwrap()}}]}),
        );
    }
    chat_stream(&deltas, "tool_calls")
}

/// What a JSON helper gets: the routing classifier's answer (a low score: the flash model).
fn json_answer() -> String {
    json!({"complexity_reasoning": "A greeting.", "complexity_score": 5}).to_string()
}

fn completion(text: &str) -> Value {
    json!({"id": "chatcmpl-gemini-cli", "object": "chat.completion", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}})
}

fn script(request: &Recorded) -> Reply {
    if !request.path.ends_with("/chat/completions") {
        return Reply::status(
            404,
            json!({"error": {"message": "not found", "type": "invalid_request_error"}}),
        );
    }
    let body = request.json();
    let kind = classify(&body);
    let streamed = body["stream"] == true;
    let text = match kind {
        Kind::ToolFirst if streamed => return Reply::sse(&tool_call_stream(), 7),
        Kind::Json => json_answer(),
        Kind::ToolFirst | Kind::ToolAfter => FINAL_TEXT.to_owned(),
        Kind::Plain => PLAIN_TEXT.to_owned(),
    };
    if streamed {
        Reply::sse(&text_stream(&text), 7)
    } else {
        Reply::json(completion(&text))
    }
}

// ---- running the Gemini CLI --------------------------------------------------------------------------------

/// The whole setup: mock upstream, router, recording proxy and a sandbox for the CLI's files.
struct Harness {
    bin: PathBuf,
    upstream: MockUpstream,
    router: TestRouter,
    proxy: RecordingProxy,
    sandbox: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Harness {
    async fn start(bin: PathBuf) -> Self {
        let upstream = MockUpstream::start(script).await;
        let config = format!(
            "model_list:\n  - model_name: chat\n    llm_params: {{api_type: openai, model: upstream-model, api_base: \"{}/v1\", api_key: sk-upstream-secret}}\nrouter_settings:\n  model_groups:\n    - name: {GROUP}\n      models: [{{name: chat}}]\n      aliases: [\"gemini-*\"]\n",
            upstream.base()
        );
        let router = TestRouter::start_with(&config, Some(ROUTER_TOKEN), None).await;
        let proxy = RecordingProxy::start(&router.base).await;
        let sandbox = tempfile::tempdir().unwrap();
        for dir in ["home/.gemini", "work", "tmp"] {
            std::fs::create_dir_all(sandbox.path().join(dir)).unwrap();
        }
        // Without `selectedType` the CLI infers the `gateway` auth type from GOOGLE_GEMINI_BASE_URL and then
        // rejects it ("Invalid auth method selected.", exit 41).
        let settings = json!({
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
            "privacy": {"usageStatisticsEnabled": false},
            "telemetry": {"enabled": false},
            "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false}
        });
        std::fs::write(
            sandbox.path().join("home/.gemini/settings.json"),
            serde_json::to_string_pretty(&settings).unwrap(),
        )
        .unwrap();
        Self {
            bin,
            upstream,
            router,
            proxy,
            sandbox,
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.sandbox.path().canonicalize().unwrap().join(name)
    }

    /// `gemini -p PROMPT` plus `args`, in the sandbox's work directory.
    async fn gemini(&self, prompt: &str, args: &[&str]) -> Run {
        let home = self.dir("home");
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("-p")
            .arg(prompt)
            .args(args)
            .current_dir(self.dir("work"))
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &home)
            .env("GEMINI_CLI_HOME", &home)
            .env("TMPDIR", self.dir("tmp"))
            .env("SHELL", "/bin/bash")
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("NO_COLOR", "1")
            .env("CI", "true")
            .env("GOOGLE_GEMINI_BASE_URL", self.proxy.base())
            .env("GEMINI_API_KEY", ROUTER_TOKEN)
            .env("GEMINI_TELEMETRY_ENABLED", "false")
            .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
            .env("GEMINI_SANDBOX", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("gemini starts");
        let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "gemini -p {prompt:?} did not finish within {TIMEOUT:?}{}",
                    self.report()
                )
            })
            .expect("gemini ran");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything seen so far, for failure messages.
    fn report(&self) -> String {
        let mut out = String::from("\nrouter saw:\n");
        for e in self.proxy.exchanges() {
            out += &format!(
                "  {} {} -> {} ({} bytes)\n",
                e.request.method,
                e.request.uri,
                e.status,
                e.request.body.len()
            );
        }
        out += "upstream saw:\n";
        for r in self.upstream.recorded() {
            let body = r.json();
            out += &format!(
                "  {} {} {:?} model={}\n",
                r.method,
                r.uri,
                classify(&body),
                body["model"]
            );
        }
        out
    }

    /// The CLI exited 0 and printed `text`.
    fn assert_success(&self, run: &Run, text: &str) {
        let output = format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}{}",
            run.stdout,
            run.stderr,
            self.report()
        );
        assert_eq!(run.code, Some(0), "gemini failed\n{output}");
        assert!(run.stdout.contains(text), "{text:?} not printed\n{output}");
    }

    /// Every request the CLI made reached a Gemini route with the router token and was answered 200 (no
    /// 404 for a model name the CLI hard-codes).
    fn assert_router_always_200(&self) {
        for e in self.proxy.assert_all_answered_200("the CLI", || self.report()) {
            assert!(e.request.path.starts_with("/v1beta/models/"), "{}", e.request.uri);
            assert_eq!(e.request.header("x-goog-api-key"), Some(ROUTER_TOKEN));
        }
    }

    /// The Gemini bodies the CLI sent to a streaming route.
    fn client_streams(&self) -> Vec<(String, Value)> {
        self.proxy
            .exchanges()
            .iter()
            .filter(|e| e.request.path.ends_with(":streamGenerateContent"))
            .map(|e| (e.request.path.clone(), e.request.json()))
            .collect()
    }

    fn upstream_bodies(&self) -> Vec<(Kind, Value)> {
        self.upstream
            .recorded()
            .iter()
            .map(|r| {
                let body = r.json();
                (classify(&body), body)
            })
            .collect()
    }

    /// With `LLM_ROUTER_GEMINI_CLI_DUMP=<dir>`, writes every raw body seen (client side `client-NNN.json`,
    /// upstream side `upstream-NNN.json`) there, for looking at what a new CLI version sends.
    fn dump(&self, test: &str) {
        let Ok(dir) = std::env::var("LLM_ROUTER_GEMINI_CLI_DUMP") else {
            return;
        };
        let dir = Path::new(&dir).join(test);
        std::fs::create_dir_all(&dir).unwrap();
        for (n, e) in self.proxy.exchanges().iter().enumerate() {
            let body = serde_json::from_slice::<Value>(&e.request.body).unwrap_or(Value::Null);
            let record = json!({"method": e.request.method, "uri": e.request.uri, "status": e.status, "body": body});
            std::fs::write(dir.join(format!("client-{n:03}.json")), record.to_string()).unwrap();
        }
        for (n, r) in self.upstream.recorded().iter().enumerate() {
            std::fs::write(dir.join(format!("upstream-{n:03}.json")), &r.body).unwrap();
        }
    }
}

/// The upstream request for the main turn: system prompt converted from `systemInstruction`, the prompt in
/// a user message, the deployment's model, a stream.
fn assert_main_turn(client: &Value, upstream: &Value, prompt: &str) {
    assert_eq!(upstream["model"], "upstream-model");
    assert_eq!(upstream["stream"], true);
    let messages = messages(upstream);
    let system = client["systemInstruction"]["parts"]
        .as_array()
        .expect("the CLI sends a system instruction")
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        system.contains("Gemini CLI"),
        "the CLI's own system prompt: {system:.200}"
    );
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        text_of(&messages[0]["content"]),
        system,
        "the system prompt converted whole"
    );
    assert_eq!(
        messages.iter().filter(|m| m["role"] == "system").count(),
        1,
        "one system message"
    );
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "user" && text_of(&m["content"]).contains(prompt)),
        "the prompt reached the upstream: {upstream:#}"
    );
    let tools = upstream["tools"].as_array().expect("the CLI's tools are offered");
    assert!(
        tools
            .iter()
            .any(|t| t["type"] == "function" && t["function"]["name"] == "read_file"),
        "{tools:#?}"
    );
}

// ---- the tests ---------------------------------------------------------------------------------------------

/// `gemini -p` without `-m`: the CLI's default model name and its helpers' fixed names all reach the one
/// group through its aliases; the upstream's text is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cli_prints_the_answer_of_a_chat_upstream() {
    let Some(bin) = gemini_binary() else { return };
    let h = Harness::start(bin).await;
    let run = h.gemini(PLAIN_PROMPT, &[]).await;
    h.dump("plain");
    h.assert_success(&run, PLAIN_TEXT);
    h.assert_router_always_200();

    let streams = h.client_streams();
    let (path, client) = streams
        .iter()
        .find(|(_, b)| b.to_string().contains(PLAIN_PROMPT))
        .unwrap_or_else(|| panic!("no main turn{}", h.report()));
    let model = path
        .trim_start_matches("/v1beta/models/")
        .trim_end_matches(":streamGenerateContent");
    assert!(
        model.starts_with("gemini-"),
        "the CLI's own model name, served by an alias: {path}"
    );
    let bodies = h.upstream_bodies();
    let (_, upstream) = bodies
        .iter()
        .find(|(k, b)| *k == Kind::Plain && b["stream"] == true)
        .unwrap_or_else(|| panic!("no main turn upstream{}", h.report()));
    assert_main_turn(client, upstream, PLAIN_PROMPT);
    for (_, body) in &bodies {
        assert_eq!(body["model"], "upstream-model");
    }

    // The routing classifier: a JSON-mode helper on a hard-coded name, its schema converted for Chat.
    let exchanges = h.proxy.exchanges();
    let helper = exchanges
        .iter()
        .find(|e| e.request.path.ends_with(":generateContent"))
        .unwrap_or_else(|| panic!("no helper request{}", h.report()));
    assert!(
        helper.request.path.starts_with("/v1beta/models/gemini-"),
        "{}",
        helper.request.uri
    );
    assert_ne!(
        helper.request.path,
        path.replace(":streamGenerateContent", ":generateContent")
    );
    let (_, classifier) = bodies
        .iter()
        .find(|(k, _)| *k == Kind::Json)
        .unwrap_or_else(|| panic!("the helper did not reach the upstream{}", h.report()));
    assert_eq!(classifier["response_format"]["type"], "json_schema");
    let schema = &classifier["response_format"]["json_schema"]["schema"];
    assert_eq!(
        schema["type"], "object",
        "Gemini's OBJECT in JSON Schema spelling: {schema}"
    );
    assert_eq!(schema["properties"]["complexity_score"]["type"], "integer");
    h.router.shutdown().await;
}

/// `gemini -p -m GROUP --approval-mode=yolo`: the upstream asks for `read_file`, the CLI reads the file and
/// sends its content back as a function response, which reaches the upstream as the `tool` message of the
/// call; the final text is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cli_runs_read_file_through_the_router_on_a_chat_upstream() {
    let Some(bin) = gemini_binary() else { return };
    let h = Harness::start(bin).await;
    std::fs::write(h.dir("work").join("notes.txt"), format!("{NOTES}\n")).unwrap();
    let run = h.gemini(TOOL_PROMPT, &["-m", GROUP, "--approval-mode=yolo"]).await;
    h.dump("tool");
    h.assert_success(&run, FINAL_TEXT);
    h.assert_router_always_200();

    let bodies = h.upstream_bodies();
    let (_, first) = bodies
        .iter()
        .find(|(k, _)| *k == Kind::ToolFirst)
        .unwrap_or_else(|| panic!("no first turn{}", h.report()));
    let streams = h.client_streams();
    let (path, client) = streams
        .iter()
        .find(|(_, b)| b.to_string().contains(TOOL_PROMPT))
        .unwrap();
    assert_eq!(path, &format!("/v1beta/models/{GROUP}:streamGenerateContent"));
    assert_main_turn(client, first, TOOL_PROMPT);

    // The CLI replayed the call it got (with the id the upstream gave it) and its answer.
    let (_, client) = streams
        .iter()
        .find(|(_, b)| b.to_string().contains("functionResponse"))
        .unwrap_or_else(|| panic!("the CLI sent no function response{}", h.report()));
    let parts: Vec<&Value> = client["contents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["parts"].as_array())
        .flatten()
        .collect();
    let call = parts
        .iter()
        .find_map(|p| p.get("functionCall"))
        .expect("the call is replayed");
    assert_eq!(call["name"], "read_file");
    assert_eq!(call["id"], TOOL_CALL_ID);
    let response = parts.iter().find_map(|p| p.get("functionResponse")).unwrap();
    assert_eq!(response["id"], TOOL_CALL_ID);

    let (_, after) = bodies
        .iter()
        .find(|(k, _)| *k == Kind::ToolAfter)
        .unwrap_or_else(|| panic!("no request after the tool ran{}", h.report()));
    assert_eq!(after["model"], "upstream-model");
    let messages = messages(after);
    let at = messages
        .iter()
        .position(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .unwrap_or_else(|| panic!("the call is replayed upstream: {after:#}"));
    let calls = messages[at]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], TOOL_CALL_ID);
    assert_eq!(calls[0]["function"]["name"], "read_file");
    let arguments: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"file_path": "notes.txt"}));
    let result = &messages[at + 1];
    assert_eq!(result["role"], "tool", "the result follows its call: {after:#}");
    assert_eq!(result["tool_call_id"], TOOL_CALL_ID);
    let content = text_of(&result["content"]);
    assert!(content.contains(NOTES), "the file's real content came back: {content}");
    h.router.shutdown().await;
}
