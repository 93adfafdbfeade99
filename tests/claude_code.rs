//! The flagship case end to end: the real Claude Code CLI (pinned in `tests/claude-code/package.json`) talks
//! Anthropic Messages to the router, which drives a scripted OpenAI-protocol upstream.
//!
//! ```text
//! claude -p … ──► RecordingProxy ──► router (group cc-group, api_type openai) ──► MockUpstream (OpenAI)
//! ```
//!
//! The proxy keeps the exact Anthropic bodies Claude Code sent and the router's status for each; the mock
//! keeps the converted OpenAI bodies. Everything stays on 127.0.0.1: Claude Code runs with a temporary
//! `HOME`, non-essential traffic, telemetry, error reporting and the auto-updater switched off.
//!
//! Needs `npm ci --prefix tests/claude-code`; without it the tests print a skip line and pass, unless
//! `LLM_ROUTER_REQUIRE_CLAUDE_CODE=1`. With `LLM_ROUTER_RECORD_CLAUDE_CODE=1` they also rewrite the fixtures
//! in `tests/fixtures/claude-code/` (sanitised and truncated, see [`fixture`]).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The router group Claude Code is pointed at (`ANTHROPIC_MODEL` and every alias).
const GROUP: &str = "cc-group";
const ROUTER_TOKEN: &str = "sk-router-claude-code";
const PROMPT: &str = "Run echo hello-from-tool with Bash and tell me the output";
const TOOL_OUTPUT: &str = "hello-from-tool";
const TOOL_CALL_ID: &str = "call_hello_1";
const REASONING: &str = "The user wants the output of a shell command, so I will run it with Bash.";
const FINAL_TEXT: &str = "Done: hello-from-tool";
const SIDE_TEXT: &str = "OK";
const SUMMARY: &str = "<analysis>One command was run.</analysis>\n<summary>1. Primary Request and Intent: run `echo hello-from-tool` with Bash and report the output.\n2. The output was hello-from-tool.</summary>";
const TIMEOUT: Duration = Duration::from_secs(120);

// ---- the scripted OpenAI-protocol upstream ---------------------------------------------------------------

/// What the mock takes a converted request for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Main loop before the tool ran: offers `Bash`, carries no tool result.
    MainFirst,
    /// Main loop after the tool ran: a `tool` message carries the command's output.
    MainAfterTool,
    /// `/compact`: asks for an `<analysis>` and a `<summary>`.
    Compact,
    /// Anything else Claude Code asks on the side.
    Side,
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

fn classify(body: &Value) -> Kind {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let asks_summary = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .is_some_and(|m| text_of(&m["content"]).contains("<summary>"));
    let tool_result = messages
        .iter()
        .any(|m| m["role"] == "tool" && text_of(&m["content"]).contains(TOOL_OUTPUT));
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "Bash"));
    if asks_summary {
        Kind::Compact
    } else if tool_result {
        Kind::MainAfterTool
    } else if offers_bash {
        Kind::MainFirst
    } else {
        Kind::Side
    }
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]});
    format!("data: {chunk}\n\n")
}

fn usage_and_done(prompt_tokens: u64, completion_tokens: u64) -> String {
    let usage = json!({"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens}});
    format!("data: {usage}\n\ndata: [DONE]\n\n")
}

/// Reasoning first, then a `Bash` call whose arguments arrive in fragments.
fn tool_call_stream() -> String {
    let arguments = json!({"command": "echo hello-from-tool", "description": "Print hello-from-tool"}).to_string();
    let mut out = chunk(json!({"role": "assistant", "content": ""}), None);
    let (a, b) = REASONING.split_at(20);
    out += &chunk(json!({"reasoning_content": a}), None);
    out += &chunk(json!({"reasoning_content": b}), None);
    out += &chunk(
        json!({"tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function",
            "function": {"name": "Bash", "arguments": ""}}]}),
        None,
    );
    for fragment in arguments.as_bytes().chunks(11) {
        let fragment = std::str::from_utf8(fragment).unwrap();
        out += &chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}),
            None,
        );
    }
    out += &chunk(json!({}), Some("tool_calls"));
    out + &usage_and_done(1200, 40)
}

fn text_stream(text: &str) -> String {
    let mut out = chunk(json!({"role": "assistant", "content": ""}), None);
    let (a, b) = text.split_at(text.len() / 2);
    out += &chunk(json!({"content": a}), None);
    out += &chunk(json!({"content": b}), None);
    out += &chunk(json!({}), Some("stop"));
    out + &usage_and_done(1300, 8)
}

fn text_completion(text: &str) -> Value {
    json!({"id": "chatcmpl-cc", "object": "chat.completion", "created": 1, "model": "upstream-model",
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
    let text = match classify(&body) {
        Kind::MainFirst if body["stream"] == true => return Reply::sse(&tool_call_stream(), 7),
        Kind::MainFirst | Kind::MainAfterTool => FINAL_TEXT,
        Kind::Compact => SUMMARY,
        Kind::Side => SIDE_TEXT,
    };
    if body["stream"] == true {
        Reply::sse(&text_stream(text), 7)
    } else {
        Reply::json(text_completion(text))
    }
}

// ---- running Claude Code ---------------------------------------------------------------------------------

fn claude_binary() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/claude-code/node_modules/.bin/claude");
    // Until the package's postinstall has put the native binary in place, `claude` is a shell stub that
    // only prints an error: installing with --ignore-scripts leaves it there.
    let mut head = [0u8; 5];
    let installed = std::fs::File::open(&bin)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
        .is_ok_and(|()| &head != b"echo ");
    if installed {
        return Some(bin);
    }
    assert!(
        std::env::var("LLM_ROUTER_REQUIRE_CLAUDE_CODE").as_deref() != Ok("1"),
        "LLM_ROUTER_REQUIRE_CLAUDE_CODE=1 but {} is missing or a stub: run npm ci in tests/claude-code",
        bin.display()
    );
    println!("skipped: run npm ci in tests/claude-code");
    None
}

/// The whole setup: mock upstream, router, recording proxy and a sandbox for Claude Code's files.
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
    elapsed: Duration,
}

impl Run {
    /// The `--output-format json` result.
    fn result(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "claude printed no JSON result ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Harness {
    async fn start(bin: PathBuf) -> Self {
        Self::start_on(bin, "openai", script).await
    }

    /// The harness with an upstream of `api_type` answering with `responder`.
    async fn start_on(bin: PathBuf, api_type: &str, responder: fn(&Recorded) -> Reply) -> Self {
        let upstream = MockUpstream::start(responder).await;
        let extra = "      max_output_tokens: 8192\n      reasoning_dialect: deepseek";
        // Gemini's base names the API version; the others' the `/v1` their paths go under.
        let version = if api_type == "gemini" { "v1beta" } else { "v1" };
        let config = config_one(GROUP, api_type, &format!("{}/{version}", upstream.base()), extra);
        let router = TestRouter::start_with(&config, Some(ROUTER_TOKEN), None).await;
        let proxy = RecordingProxy::start(&router.base).await;
        let sandbox = tempfile::tempdir().unwrap();
        for dir in ["home/.claude", "work", "tmp"] {
            std::fs::create_dir_all(sandbox.path().join(dir)).unwrap();
        }
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

    async fn claude(&self, args: &[&str]) -> Run {
        let home = self.dir("home");
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .args(args)
            .current_dir(self.dir("work"))
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", &home)
            .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
            .env("TMPDIR", self.dir("tmp"))
            .env("SHELL", "/bin/bash")
            .env("LANG", "C.UTF-8")
            .env("ANTHROPIC_BASE_URL", self.proxy.base())
            .env("ANTHROPIC_API_KEY", ROUTER_TOKEN)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for model in [
            "ANTHROPIC_MODEL",
            "ANTHROPIC_SMALL_FAST_MODEL",
            "ANTHROPIC_DEFAULT_HAIKU_MODEL",
            "ANTHROPIC_DEFAULT_SONNET_MODEL",
            "ANTHROPIC_DEFAULT_OPUS_MODEL",
        ] {
            command.env(model, GROUP);
        }
        let started = Instant::now();
        let child = command.spawn().expect("claude starts");
        let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("claude {args:?} did not finish within {TIMEOUT:?}; {}", self.report()))
            .expect("claude ran");
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        println!(
            "claude {:?}: exit {:?} in {:.1?}; {} router request(s) so far",
            args.get(1).unwrap_or(&""),
            run.code,
            run.elapsed,
            self.proxy.exchanges().len()
        );
        run
    }

    /// With `LLM_ROUTER_CLAUDE_CODE_DUMP=<dir>`, writes every raw body seen (client side `client-NNN.json`,
    /// upstream side `upstream-NNN.json`) there, for looking at what a new Claude Code version sends.
    fn dump(&self, test: &str) {
        let Ok(dir) = std::env::var("LLM_ROUTER_CLAUDE_CODE_DUMP") else {
            return;
        };
        let dir = Path::new(&dir).join(test);
        std::fs::create_dir_all(&dir).unwrap();
        for (n, e) in self.proxy.exchanges().iter().enumerate() {
            let headers: Vec<(String, String)> = e
                .request
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let body = serde_json::from_slice::<Value>(&e.request.body).unwrap_or(Value::Null);
            let record = json!({"method": e.request.method, "uri": e.request.uri, "status": e.status,
                "headers": headers, "body": body});
            std::fs::write(dir.join(format!("client-{n:03}.json")), record.to_string()).unwrap();
        }
        for (n, r) in self.upstream.recorded().iter().enumerate() {
            std::fs::write(dir.join(format!("upstream-{n:03}.json")), &r.body).unwrap();
        }
    }

    /// `claude -p PROMPT` with Bash allowed: it must run the tool, report its output, and every request must
    /// have been answered 200.
    async fn run_the_tool_prompt(&self) {
        let args = [
            "-p",
            PROMPT,
            "--output-format",
            "json",
            "--allowedTools",
            "Bash",
            "--max-turns",
            "3",
        ];
        let run = self.claude(&args).await;
        let result = self.assert_success(&run);
        let answer = result["result"].as_str().unwrap_or_default();
        assert!(answer.contains(TOOL_OUTPUT), "result: {result:#}");
        self.assert_router_always_200();
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
            let kind = serde_json::from_slice::<Value>(&r.body).map(|b| classify(&b));
            out += &format!("  {} {} {:?}\n", r.method, r.uri, kind);
        }
        out
    }

    fn assert_success(&self, run: &Run) -> Value {
        assert_eq!(
            run.code,
            Some(0),
            "claude failed\nstdout:\n{}\nstderr:\n{}{}",
            run.stdout,
            run.stderr,
            self.report()
        );
        let result = run.result();
        assert_eq!(result["is_error"], false, "{result:#}{}", self.report());
        assert_eq!(result["subtype"], "success", "{result:#}");
        result
    }

    fn assert_router_always_200(&self) {
        for e in self.proxy.assert_all_answered_200("Claude Code", || self.report()) {
            assert_eq!(
                e.request.header("x-api-key"),
                Some(ROUTER_TOKEN),
                "Claude Code sends the router token as x-api-key"
            );
        }
    }

    /// The converted bodies the upstream got, with what the script took each for.
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

    /// The Anthropic bodies Claude Code sent to `path` (query string ignored).
    fn client_bodies(&self, path: &str) -> Vec<Value> {
        self.proxy
            .exchanges()
            .iter()
            .filter(|e| e.request.path == path)
            .map(|e| e.request.json())
            .collect()
    }
}

fn tool_messages(body: &Value) -> Vec<&Value> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect()
}

// ---- the tests -------------------------------------------------------------------------------------------

/// `claude -p` runs Bash through the router and reports the tool's output; then `/compact` on the same
/// session sends a summarisation request through the same path.
#[tokio::test]
async fn claude_code_runs_a_tool_through_an_openai_upstream_then_compacts() {
    let Some(bin) = claude_binary() else { return };
    let h = Harness::start(bin).await;

    h.run_the_tool_prompt().await;

    // The upstream saw the tool round trip: turn 1 offered Bash and was answered with the call, turn 2
    // carries the call and its result, paired by id.
    let bodies = h.upstream_bodies();
    let first = bodies
        .iter()
        .find(|(k, _)| *k == Kind::MainFirst)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no main-loop request{}", h.report()));
    let second = bodies
        .iter()
        .find(|(k, _)| *k == Kind::MainAfterTool)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no request after the tool ran{}", h.report()));
    for body in [first, second] {
        assert_eq!(body["model"], "upstream-model");
        assert_eq!(
            body["max_tokens"], 8192,
            "Claude Code's 32000 clamped to max_output_tokens"
        );
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(body["user"].as_str().unwrap().len() <= 64, "metadata.user_id hashed");
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled"}),
            "deepseek dialect: thinking on"
        );
        assert!(body["reasoning_effort"].is_string());
        assert!(body.get("metadata").is_none() && body.get("context_management").is_none());
        assert!(!body.to_string().contains("cache_control"), "cache_control stripped");
    }
    let tools = tool_messages(second);
    assert_eq!(tools.len(), 1, "{second:#}");
    assert_eq!(tools[0]["tool_call_id"], TOOL_CALL_ID);
    assert!(text_of(&tools[0]["content"]).contains(TOOL_OUTPUT), "{:#}", tools[0]);
    let messages = second["messages"].as_array().unwrap();
    let call_at = messages
        .iter()
        .position(|m| m["role"] == "assistant" && m["tool_calls"].is_array())
        .expect("the assistant turn with the tool call is replayed");
    let call = &messages[call_at];
    assert_eq!(call["tool_calls"][0]["id"], TOOL_CALL_ID);
    assert_eq!(call["tool_calls"][0]["function"]["name"], "Bash");
    let arguments: Value =
        serde_json::from_str(call["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["command"], "echo hello-from-tool");
    assert_eq!(
        messages[call_at + 1]["role"],
        "tool",
        "the tool message follows its call"
    );
    assert!(
        call.get("reasoning_content").is_some(),
        "deepseek dialect replays reasoning: {call:#}"
    );

    // The Anthropic side of the same turn: Claude Code replayed the tool_use the router streamed and paired
    // its tool_result by id.
    let sent = h.client_bodies("/v1/messages");
    let turn2 = sent
        .iter()
        .find(|b| b.to_string().contains("\"tool_result\""))
        .expect("Claude Code sent a tool_result");
    let blocks: Vec<&Value> = turn2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .collect();
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_use" && b["id"] == TOOL_CALL_ID && b["name"] == "Bash")
    );
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_result" && b["tool_use_id"] == TOOL_CALL_ID)
    );
    let main_loop = sent.len();

    // /compact on the same session: a side request for a summary, answered through the same route.
    let run = h
        .claude(&["-p", "/compact", "--continue", "--output-format", "json"])
        .await;
    h.assert_success(&run);
    h.assert_router_always_200();
    assert!(
        h.upstream_bodies().iter().any(|(k, _)| *k == Kind::Compact),
        "no compaction request{}",
        h.report()
    );
    let sent = h.client_bodies("/v1/messages");
    assert!(sent.len() > main_loop);

    if recording() {
        fixture::write("main_loop_tool_result.json", turn2, &h);
        let compact = sent[main_loop..]
            .iter()
            .find(|b| b.to_string().contains("<summary>"))
            .expect("a compaction body");
        fixture::write("side_request_compact.json", compact, &h);
    }
    h.dump("tool_then_compact");
    h.router.shutdown().await;
}

/// `/context` makes Claude Code count tokens section by section; the router answers every
/// `count_tokens` call itself (the upstream speaks OpenAI and has no such endpoint).
#[tokio::test]
async fn claude_code_context_command_uses_the_local_token_counter() {
    let Some(bin) = claude_binary() else { return };
    let h = Harness::start(bin).await;
    let run = h.claude(&["-p", "/context", "--output-format", "json"]).await;
    let result = h.assert_success(&run);
    assert!(
        result["result"].as_str().unwrap_or_default().contains("Context Usage"),
        "{result:#}"
    );
    h.assert_router_always_200();
    let counted = h.client_bodies("/v1/messages/count_tokens");
    assert!(!counted.is_empty(), "no count_tokens call{}", h.report());
    assert!(
        h.upstream.recorded().iter().all(|r| !r.path.contains("count_tokens")),
        "count_tokens answered locally{}",
        h.report()
    );
    if recording() {
        let biggest = counted
            .iter()
            .filter(|b| b["tools"].as_array().is_some_and(|t| !t.is_empty()))
            .max_by_key(|b| b.to_string().len())
            .expect("a count_tokens body with tools");
        fixture::write("count_tokens_tools.json", biggest, &h);
    }
    h.dump("context");
    h.router.shutdown().await;
}

fn recording() -> bool {
    std::env::var("LLM_ROUTER_RECORD_CLAUDE_CODE").as_deref() == Ok("1")
}

/// Turning a recorded body into a fixture: machine-specific strings replaced, long prose cut to its first
/// [`KEEP`] characters. Structure, tool names, schemas, `cache_control` markers, `metadata.user_id` (with a
/// fixed device and session id) and thinking settings are kept. Keys come out sorted (serde_json's map).
mod fixture {
    use super::*;

    const KEEP: usize = 200;
    const DEVICE_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SESSION_ID: &str = "00000000-0000-4000-8000-000000000000";

    pub fn write(name: &str, body: &Value, h: &Harness) {
        let mut body = body.clone();
        let replacements = replacements(&body, h);
        replace_strings(&mut body, &replacements);
        truncate(&mut body);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code");
        std::fs::create_dir_all(&dir).unwrap();
        let text = serde_json::to_string_pretty(&body).unwrap() + "\n";
        std::fs::write(dir.join(name), text).unwrap();
        println!("recorded tests/fixtures/claude-code/{name}");
    }

    /// (from, to) pairs, most specific first.
    fn replacements(body: &Value, h: &Harness) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(user_id) = body["metadata"]["user_id"].as_str()
            && let Ok(ids) = serde_json::from_str::<Value>(user_id)
        {
            for (key, fake) in [("device_id", DEVICE_ID), ("session_id", SESSION_ID)] {
                if let Some(real) = ids[key].as_str().filter(|s| !s.is_empty()) {
                    out.push((real.to_owned(), fake.to_owned()));
                }
            }
        }
        let root = h.sandbox.path().canonicalize().unwrap();
        for (dir, fake) in [
            (root.join("work"), "/home/user/project"),
            (root.join("home"), "/home/user"),
            (root.join("tmp"), "/tmp"),
            (root.clone(), "/sandbox"),
        ] {
            let dir = dir.to_string_lossy().into_owned();
            // Claude Code's per-project folders name the directory with every non-alphanumeric as '-'.
            let escape = |s: &str| {
                s.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect()
            };
            out.push((escape(&dir), escape(fake)));
            out.push((dir, fake.to_owned()));
        }
        out.push((format!("127.0.0.1:{}", h.proxy.addr.port()), "127.0.0.1:8000".into()));
        if let Ok(host) = std::fs::read_to_string("/etc/hostname")
            && host.trim().len() > 3
        {
            out.push((host.trim().to_owned(), "devbox".into()));
        }
        out
    }

    fn replace_strings(value: &mut Value, replacements: &[(String, String)]) {
        match value {
            Value::String(s) => {
                for (from, to) in replacements {
                    if s.contains(from.as_str()) {
                        *s = s.replace(from.as_str(), to);
                    }
                }
                *s = os_version_hidden(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, replacements)),
            Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, replacements)),
            _ => {}
        }
    }

    /// `OS Version: Linux 6.1.2-foo` → `OS Version: Linux`.
    fn os_version_hidden(s: &str) -> String {
        const LABEL: &str = "OS Version: ";
        let Some(start) = s.find(LABEL) else {
            return s.to_owned();
        };
        let from = start + LABEL.len();
        let end = s[from..].find('\n').map_or(s.len(), |n| from + n);
        format!("{}Linux{}", &s[..from], &s[end..])
    }

    fn cut(s: &mut String) {
        if let Some((at, _)) = s.char_indices().nth(KEEP) {
            s.truncate(at);
        }
    }

    /// Cuts the system prompt, tool descriptions and message texts (not schemas). Only touches keys that
    /// exist: indexing a missing key mutably would add it.
    fn truncate(body: &mut Value) {
        fn cut_key(v: &mut Value, key: &str) {
            if let Some(Value::String(s)) = v.get_mut(key) {
                cut(s);
            }
        }
        match body.get_mut("system") {
            Some(Value::Array(blocks)) => blocks.iter_mut().for_each(|b| cut_key(b, "text")),
            Some(Value::String(s)) => cut(s),
            _ => {}
        }
        if let Some(Value::Array(tools)) = body.get_mut("tools") {
            tools.iter_mut().for_each(|t| cut_key(t, "description"));
        }
        let Some(Value::Array(messages)) = body.get_mut("messages") else {
            return;
        };
        for message in messages {
            match message.get_mut("content") {
                Some(Value::String(s)) => cut(s),
                Some(Value::Array(blocks)) => {
                    for block in blocks {
                        cut_key(block, "text");
                        cut_key(block, "thinking");
                        match block.get_mut("content") {
                            Some(Value::String(s)) => cut(s),
                            Some(Value::Array(inner)) => inner.iter_mut().for_each(|b| cut_key(b, "text")),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

// ---- the same on a Responses upstream ---------------------------------------------------------------------

/// A Responses API event, with its `event:` line.
fn rsp_event(data: Value) -> String {
    format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap())
}

fn rsp_completed(output: Value) -> String {
    rsp_event(
        json!({"type": "response.completed", "response": {"id": "resp_cc", "object": "response",
        "status": "completed", "output": output,
        "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 40,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1240}}}),
    )
}

/// Reasoning, then a `Bash` call whose arguments arrive in fragments, as a Responses stream.
fn rsp_tool_call_stream() -> String {
    let arguments = json!({"command": "echo hello-from-tool", "description": "Print hello-from-tool"}).to_string();
    let call = json!({"type": "function_call", "id": "fc_cc", "call_id": TOOL_CALL_ID, "name": "Bash",
        "arguments": arguments, "status": "completed"});
    let mut out = rsp_event(
        json!({"type": "response.created", "response": {"id": "resp_cc", "status": "in_progress", "output": []}}),
    );
    out += &rsp_event(json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"type": "reasoning", "id": "rs_cc", "summary": []}}));
    out += &rsp_event(
        json!({"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0,
        "item_id": "rs_cc", "delta": REASONING}),
    );
    out += &rsp_event(json!({"type": "response.output_item.added", "output_index": 1,
        "item": {"type": "function_call", "id": "fc_cc", "call_id": TOOL_CALL_ID, "name": "Bash", "arguments": ""}}));
    for fragment in arguments.as_bytes().chunks(11) {
        out += &rsp_event(
            json!({"type": "response.function_call_arguments.delta", "output_index": 1,
            "item_id": "fc_cc", "delta": std::str::from_utf8(fragment).unwrap()}),
        );
    }
    out += &rsp_event(json!({"type": "response.output_item.done", "output_index": 1, "item": call}));
    out + &rsp_completed(json!([call]))
}

fn rsp_text(text: &str) -> (String, Value) {
    let message = json!({"type": "message", "id": "msg_cc", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    let mut stream = rsp_event(
        json!({"type": "response.created", "response": {"id": "resp_cc", "status": "in_progress", "output": []}}),
    );
    stream += &rsp_event(json!({"type": "response.output_item.added", "output_index": 0,
        "item": {"type": "message", "id": "msg_cc", "role": "assistant", "content": []}}));
    stream += &rsp_event(
        json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
        "item_id": "msg_cc", "delta": text}),
    );
    stream += &rsp_event(json!({"type": "response.output_item.done", "output_index": 0, "item": message}));
    stream += &rsp_completed(json!([message]));
    let whole = json!({"id": "resp_cc", "object": "response", "status": "completed", "output": [message],
        "usage": {"input_tokens": 100, "output_tokens": 5, "total_tokens": 105}});
    (stream, whole)
}

/// Whether a Responses request carries the tool's output.
fn rsp_has_tool_output(body: &Value) -> bool {
    body["input"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|i| i["type"] == "function_call_output" && i["output"].to_string().contains(TOOL_OUTPUT))
    })
}

fn responses_script(request: &Recorded) -> Reply {
    if !request.path.ends_with("/responses") {
        return Reply::status(
            404,
            json!({"error": {"message": "not found", "type": "invalid_request_error"}}),
        );
    }
    let body = request.json();
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let streamed = body["stream"] == true;
    if offers_bash && !rsp_has_tool_output(&body) && streamed {
        return Reply::sse(&rsp_tool_call_stream(), 7);
    }
    let (stream, whole) = rsp_text(if offers_bash { FINAL_TEXT } else { SIDE_TEXT });
    if streamed {
        Reply::sse(&stream, 7)
    } else {
        Reply::json(whole)
    }
}

#[tokio::test]
async fn claude_code_runs_a_tool_through_a_responses_upstream() {
    let Some(bin) = claude_binary() else { return };
    let h = Harness::start_on(bin, "responses", responses_script).await;
    h.run_the_tool_prompt().await;

    let bodies: Vec<Value> = h.upstream.recorded().iter().map(Recorded::json).collect();
    let follow_up = bodies
        .iter()
        .find(|b| rsp_has_tool_output(b))
        .unwrap_or_else(|| panic!("no request carried the tool's output{}", h.report()));
    let items = follow_up["input"].as_array().unwrap();
    let call = items
        .iter()
        .find(|i| i["type"] == "function_call")
        .expect("the call is replayed");
    assert_eq!(call["call_id"], TOOL_CALL_ID);
    let output = items.iter().find(|i| i["type"] == "function_call_output").unwrap();
    assert_eq!(output["call_id"], TOOL_CALL_ID, "paired by call_id");
    for body in &bodies {
        assert_eq!(body["model"], "upstream-model");
        assert_eq!(body["store"], false, "stateless: the whole conversation every time");
        assert!(
            body["max_output_tokens"].as_u64().unwrap() <= 8192,
            "clamped to max_output_tokens"
        );
    }
}

// ---- the same on a Gemini upstream ------------------------------------------------------------------------

/// The signature Gemini 3 puts on its function call (standard base64, with `+` and `/` in it), which it
/// requires back on the replayed `functionCall` part.
const GEMINI_SIGNATURE: &str = "CiRnZW1pbmktMy10aG91Z2h0++++/y1zaWduYXR1cmUtZm9yLWJhc2g=";

/// One `alt=sse` event: `data: <GenerateContentResponse>` and a blank line, as Google sends them.
fn gem_chunk(parts: Value, finish: Option<&str>, usage: Option<Value>) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut chunk = json!({"candidates": [candidate], "modelVersion": "upstream-model", "responseId": "gem-resp-1"});
    if let Some(usage) = usage {
        chunk["usageMetadata"] = usage;
    }
    format!("data: {chunk}\r\n\r\n")
}

fn gem_usage(prompt: u64, output: u64, thoughts: u64) -> Value {
    json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt + output + thoughts})
}

/// Thought text, then a whole signed `Bash` call (no id, as Gemini sends them), then the terminal chunk: Gemini
/// ends a function-calling turn with `STOP`.
fn gem_tool_call_stream() -> String {
    let (a, b) = REASONING.split_at(20);
    let mut out = gem_chunk(json!([{"text": a, "thought": true}]), None, Some(gem_usage(1200, 0, 5)));
    out += &gem_chunk(
        json!([{"text": b, "thought": true}]),
        None,
        Some(gem_usage(1200, 0, 12)),
    );
    out += &gem_chunk(
        json!([{"functionCall": {"name": "Bash", "args": {"command": "echo hello-from-tool",
            "description": "Print hello-from-tool"}}, "thoughtSignature": GEMINI_SIGNATURE}]),
        None,
        Some(gem_usage(1200, 20, 12)),
    );
    out + &gem_chunk(json!([]), Some("STOP"), Some(gem_usage(1200, 28, 12)))
}

fn gem_text_stream(text: &str) -> String {
    let (a, b) = text.split_at(text.len() / 2);
    let mut out = gem_chunk(json!([{"text": a}]), None, Some(gem_usage(1300, 2, 0)));
    out += &gem_chunk(json!([{"text": b}]), None, Some(gem_usage(1300, 5, 0)));
    out + &gem_chunk(json!([]), Some("STOP"), Some(gem_usage(1300, 8, 0)))
}

fn gem_offers(body: &Value, name: &str) -> bool {
    body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .filter_map(|t| t["functionDeclarations"].as_array())
            .flatten()
            .any(|d| d["name"] == name)
    })
}

/// Whether a Gemini request carries the tool's output in a `functionResponse`.
fn gem_has_tool_output(body: &Value) -> bool {
    gemini_parts(body).iter().any(|p| {
        p.get("functionResponse")
            .is_some_and(|r| r.to_string().contains(TOOL_OUTPUT))
    })
}

/// Gemini 3's check: every replayed `functionCall` of this script's must carry the signature it was sent
/// with, else 400 INVALID_ARGUMENT with Google's message.
fn gem_signature_check(body: &Value) -> Option<Reply> {
    let calls: Vec<Value> = gemini_parts(body)
        .into_iter()
        .filter(|p| p.get("functionCall").is_some())
        .collect();
    let unsigned = calls.iter().position(|p| p["thoughtSignature"] != GEMINI_SIGNATURE)?;
    let message = format!(
        "Function call is missing a thought_signature in functionCall parts. This is required for tools to work \
         correctly, and missing thought_signature may lead to degraded model performance. Additional data, \
         function call `default_api:{}` , position {}. Please refer to \
         https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
        calls[unsigned]["functionCall"]["name"].as_str().unwrap_or_default(),
        unsigned + 1
    );
    Some(Reply::status(
        400,
        json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}),
    ))
}

fn gemini_script(request: &Recorded) -> Reply {
    let streamed = request.path.ends_with(":streamGenerateContent");
    if !(streamed || request.path.ends_with(":generateContent")) || request.header("x-goog-api-key").is_none() {
        return Reply::status(
            404,
            json!({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}),
        );
    }
    let body = request.json();
    if let Some(rejected) = gem_signature_check(&body) {
        return rejected;
    }
    let offers_bash = gem_offers(&body, "Bash");
    if offers_bash && !gem_has_tool_output(&body) && streamed {
        return Reply::sse(&gem_tool_call_stream(), 7);
    }
    let text = if offers_bash { FINAL_TEXT } else { SIDE_TEXT };
    if streamed {
        Reply::sse(&gem_text_stream(text), 7)
    } else {
        Reply::json(
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": "STOP", "index": 0}], "usageMetadata": gem_usage(100, 5, 0),
            "modelVersion": "upstream-model", "responseId": "gem-resp-2"}),
        )
    }
}

/// Claude Code on Gemini: the signed `functionCall` reaches Claude Code as a `tool_use` whose id carries the
/// signature, and comes back to Gemini with it (the script answers 400 otherwise, as Gemini 3 does).
#[tokio::test]
async fn claude_code_runs_a_tool_through_a_gemini_upstream_and_replays_the_thought_signature() {
    let Some(bin) = claude_binary() else { return };
    let h = Harness::start_on(bin, "gemini", gemini_script).await;
    h.run_the_tool_prompt().await;

    let requests = h.upstream.recorded();
    for request in &requests {
        assert!(
            request.uri == "/v1beta/models/upstream-model:streamGenerateContent?alt=sse"
                || request.uri == "/v1beta/models/upstream-model:generateContent",
            "{}",
            request.uri
        );
        assert_eq!(request.header("x-goog-api-key"), Some("sk-upstream-secret"));
        assert_eq!(request.header("authorization"), None);
        let body = request.json();
        assert!(body.get("model").is_none(), "a Gemini body has no model");
        assert!(
            body["generationConfig"]["maxOutputTokens"].as_u64().unwrap() <= 8192,
            "clamped to max_output_tokens"
        );
        assert!(!body.to_string().contains("cache_control"));
    }
    let bodies: Vec<Value> = requests.iter().map(Recorded::json).collect();
    let first = bodies
        .iter()
        .find(|b| gem_offers(b, "Bash") && !gem_has_tool_output(b))
        .unwrap_or_else(|| panic!("no main-loop request{}", h.report()));
    assert!(
        first["systemInstruction"]["parts"][0]["text"]
            .as_str()
            .is_some_and(|s| s.contains("Claude")),
        "the system prompt became systemInstruction"
    );
    let follow_up = bodies
        .iter()
        .find(|b| gem_has_tool_output(b))
        .unwrap_or_else(|| panic!("no request carried the tool's output{}", h.report()));
    let (contents, at) = gemini_replayed_call(follow_up);
    let parts = contents[at]["parts"].as_array().unwrap();
    assert!(
        parts.iter().all(|p| p.get("thought").is_none()),
        "thought text is not replayed to Gemini: {parts:#?}"
    );
    let call = parts.iter().find(|p| p.get("functionCall").is_some()).unwrap();
    assert_eq!(call["thoughtSignature"], GEMINI_SIGNATURE);
    assert_eq!(call["functionCall"]["name"], "Bash");
    assert_eq!(call["functionCall"]["args"]["command"], "echo hello-from-tool");
    let answer = contents[at + 1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p.get("functionResponse"))
        .expect("the function response follows its call");
    assert_eq!(contents[at + 1]["role"], "user");
    assert_eq!(answer["name"], "Bash");
    assert_eq!(answer.get("id"), call["functionCall"].get("id"), "paired by id");
    assert!(answer["response"].to_string().contains(TOOL_OUTPUT));

    // Claude Code saw the call as a tool_use whose id carries the signature, and replayed it verbatim.
    let sent = h.client_bodies("/v1/messages");
    let turn2 = sent
        .iter()
        .find(|b| b.to_string().contains("\"tool_result\""))
        .expect("Claude Code sent a tool_result");
    let blocks: Vec<&Value> = turn2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .collect();
    let tool_use = blocks
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("the tool_use is replayed");
    let id = tool_use["id"].as_str().unwrap();
    assert!(id.contains("__thought__"), "the signature rides in the id: {id}");
    assert!(
        id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "an id Anthropic accepts: {id}"
    );
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_result" && b["tool_use_id"] == id)
    );
    assert!(
        blocks.iter().any(|b| b["type"] == "thinking"),
        "Gemini's thought text reached Claude Code as thinking"
    );
    h.dump("gemini_tool");
    h.router.shutdown().await;
}
