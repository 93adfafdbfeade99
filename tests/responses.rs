//! The Responses route (`POST /v1/responses`, what Codex speaks) end to end: on a Chat Completions upstream
//! through the conversion hub, streamed and not, with tools, reasoning and errors; and on a Responses
//! upstream as the same protocol.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// What Codex sends after one tool call (reference §1.10), shortened.
fn codex_request(stream: bool) -> Value {
    json!({
        "model": "codex", "stream": stream, "store": false, "tool_choice": "auto", "parallel_tool_calls": true,
        "reasoning": {"summary": "auto"}, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "sess-1",
        "instructions": "You are a coding agent.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be careful."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run echo via your shell tool"}]},
            {"type": "function_call", "id": "fc_1", "status": "completed", "name": "exec_command",
             "arguments": "{\"cmd\": \"echo hi\"}", "call_id": "call_6553"},
            {"type": "function_call_output", "id": "fco_1", "call_id": "call_6553", "output": "hi\n"}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run a command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "custom", "name": "apply_patch", "description": "Edit files",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents",
             "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search", "external_web_access": true}
        ]
    })
}

fn chat_answer() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "Patching now.", "reasoning_content": "The echo worked.",
            "tool_calls": [
                {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\"}"}},
                {"id": "call_s", "type": "function", "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}
            ]}}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940,
                  "prompt_tokens_details": {"cached_tokens": 800}, "completion_tokens_details": {"reasoning_tokens": 12}}})
}

const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Check it\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Listing ✓ \"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"exec_command\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":40,\"prompt_tokens_details\":{\"cached_tokens\":800}}}\n\n",
    "data: [DONE]\n\n"
);

fn config(api_type: &str, base: &str) -> String {
    format!(
        "model_list:\n  - model_name: codex\n    llm_params: {{api_type: {api_type}, model: up, api_base: \"{base}\", api_key: sk-upstream-secret, reasoning_dialect: deepseek}}\n"
    )
}

/// Parses a Responses SSE body into its events' JSON, checking the framing as it goes.
fn events(text: &str) -> Vec<Value> {
    let mut parser = llm_router::protocol::sse::SseParser::new();
    let mut out = Vec::new();
    parser.feed(text.as_bytes(), |e| {
        let data: Value = serde_json::from_str(&e.data).expect("every event is JSON");
        assert_eq!(
            e.event.as_deref(),
            data["type"].as_str(),
            "the event line names the type"
        );
        out.push(data);
    });
    out
}

/// The grammar of reference §4.2: created first, one terminal last, sequence numbers 0, 1, 2…, dense output
/// indexes, every item opened before its deltas and done before the next opens.
fn check_grammar(events: &[Value]) {
    assert_eq!(events[0]["type"], "response.created");
    let terminal = ["response.completed", "response.incomplete", "response.failed"];
    assert!(terminal.contains(&events.last().unwrap()["type"].as_str().unwrap()));
    assert_eq!(
        events
            .iter()
            .filter(|e| terminal.contains(&e["type"].as_str().unwrap()))
            .count(),
        1
    );
    let mut open: Option<u64> = None;
    let mut next = 0;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i as u64, "{event}");
        let kind = event["type"].as_str().unwrap();
        match kind {
            "response.output_item.added" => {
                assert!(open.is_none(), "one item open at a time");
                assert_eq!(event["output_index"], next);
                open = Some(next);
                next += 1;
            }
            "response.output_item.done" => {
                assert_eq!(event["output_index"].as_u64(), open, "{event}");
                open = None;
            }
            _ if event.get("output_index").is_some() => assert_eq!(event["output_index"].as_u64(), open, "{event}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_chat_upstream_answers_a_responses_client_with_tools_restored() {
    let upstream = MockUpstream::fixed(Reply::json(chat_answer())).await;
    let router = TestRouter::start(&config("openai", &upstream.base())).await;
    let r = router.post("/v1/responses", &codex_request(false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_llmr"));
    assert_eq!(
        (v["status"].as_str(), v["model"].as_str()),
        (Some("completed"), Some("codex"))
    );
    let output = v["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "custom_tool_call", "function_call"]);
    assert_eq!(output[0]["summary"][0]["text"], "The echo worked.");
    assert_eq!(output[1]["content"][0]["text"], "Patching now.");
    assert_eq!(
        output[2]["input"], "*** Begin Patch\n*** End Patch",
        "Codex applies only custom_tool_call"
    );
    assert_eq!(
        (output[2]["name"].as_str(), output[2]["call_id"].as_str()),
        (Some("apply_patch"), Some("call_p"))
    );
    assert_eq!(
        (output[3]["name"].as_str(), output[3]["namespace"].as_str()),
        (Some("spawn_agent"), Some("multi_agent_v1"))
    );
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 900, "input_tokens_details": {"cached_tokens": 800, "cache_write_tokens": 0},
               "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 940})
    );

    let sent = upstream.last();
    assert_eq!(sent.path, "/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-upstream-secret"));
    let body = sent.json();
    assert_eq!(body["model"], "up");
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "system", "user", "assistant", "tool"]);
    assert_eq!(body["messages"][3]["tool_calls"][0]["id"], "call_6553");
    assert_eq!(
        body["messages"][3]["reasoning_content"], "",
        "DeepSeek needs the field in a tool loop"
    );
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["exec_command", "apply_patch", "multi_agent_v1__spawn_agent"],
        "web_search dropped"
    );
    assert!(
        body["tools"][1]["function"]["description"]
            .as_str()
            .unwrap()
            .contains("start: patch")
    );
    assert!(body.get("store").is_none() && body.get("include").is_none() && body.get("input").is_none());
}

#[tokio::test]
async fn a_chat_stream_becomes_the_full_responses_event_grammar() {
    let upstream = MockUpstream::fixed(Reply::sse(CHAT_STREAM, 7)).await;
    let router = TestRouter::start(&config("openai", &upstream.base())).await;
    let r = router.post("/v1/responses", &codex_request(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = events(&concat(&read_chunks(r).await));
    check_grammar(&events);
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Listing ✓ ");
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    assert_eq!(done.len(), 3);
    assert_eq!(done[2]["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(done[2]["call_id"], "call_a");
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["output"].as_array().unwrap().len(),
        3,
        "response.completed carries every item"
    );
    assert_eq!(completed["usage"]["total_tokens"], 940);
    assert_eq!(completed["usage"]["input_tokens_details"]["cached_tokens"], 800);
    let sent = upstream.last().json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_broken_upstream_stream_ends_in_response_failed_without_executing_the_open_call() {
    let cut = CHAT_STREAM.find("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls").unwrap();
    let upstream = MockUpstream::fixed(Reply::Sse {
        pieces: split(&CHAT_STREAM.as_bytes()[..cut], 11),
        gap: Duration::from_millis(1),
        then_break: true,
    })
    .await;
    let router = TestRouter::start(&config("openai", &upstream.base())).await;
    let r = router.post("/v1/responses", &codex_request(true)).await;
    assert_eq!(r.status(), 200);
    let events = events(&concat(&read_chunks(r).await));
    check_grammar(&events);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    let done = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .count();
    assert_eq!(
        done, 2,
        "reasoning and text finished; the half-streamed call never reaches output_item.done"
    );
}

#[tokio::test]
async fn errors_come_in_the_openai_shape() {
    let limited = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})
            .to_string(),
        headers: vec![("retry-after", "7".into())],
    })
    .await;
    let router = TestRouter::start(&config("openai", &limited.base())).await;
    let r = router.post("/v1/responses", &codex_request(false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "slow down");

    let mut stateful = codex_request(false);
    stateful["previous_response_id"] = json!("resp_123");
    let r = router.post("/v1/responses", &stateful).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "previous_response_id");
    assert_eq!(v["error"]["code"], "previous_response_not_found");

    let r = router
        .post("/v1/responses", &json!({"model": "codex", "messages": []}))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "input");
    let r = router
        .post("/v1/responses", &json!({"model": "nope", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"].is_object());
}

fn anthropic_answer() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "up",
        "content": [
            {"type": "thinking", "thinking": "The echo worked.", "signature": "sig-1"},
            {"type": "text", "text": "Patching now."},
            {"type": "tool_use", "id": "toolu_p", "name": "apply_patch", "input": {"input": "*** Begin Patch\n*** End Patch"}},
            {"type": "tool_use", "id": "toolu_s", "name": "multi_agent_v1__spawn_agent", "input": {"zeta": 1, "alpha": 2}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0, "output_tokens": 40}})
}

const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":800,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Check it\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Listing ✓ \"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"exec_command\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"cmd\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"ls\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":40}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
);

#[tokio::test]
async fn an_anthropic_upstream_answers_a_responses_client_streamed_and_not() {
    let upstream = MockUpstream::start(|request| match request.json()["stream"] == true {
        true => Reply::sse(ANTHROPIC_STREAM, 7),
        false => Reply::json(anthropic_answer()),
    })
    .await;
    let router = TestRouter::start(&config("anthropic", &upstream.base())).await;

    let v: Value = router
        .post("/v1/responses", &codex_request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    let output = v["output"].as_array().unwrap();
    let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "custom_tool_call", "function_call"]);
    assert_eq!(output[2]["input"], "*** Begin Patch\n*** End Patch");
    assert_eq!(output[3]["namespace"], "multi_agent_v1");
    assert_eq!(output[3]["arguments"], r#"{"zeta":1,"alpha":2}"#, "key order kept");
    assert_eq!(v["usage"]["input_tokens"], 900, "cached tokens are part of the input");
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 800);

    let sent = upstream.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-upstream-secret"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    let body = sent.json();
    assert_eq!(body["model"], "up");
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are a coding agent."}, {"type": "text", "text": "Be careful."}])
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(
        messages[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "call_6553", "content": "hi\n"})
    );
    assert_eq!(body["max_tokens"], 4096);

    let r = router.post("/v1/responses", &codex_request(true)).await;
    assert_eq!(r.status(), 200);
    let events = events(&concat(&read_chunks(r).await));
    check_grammar(&events);
    let done: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    let kinds: Vec<&str> = done.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(done[0]["summary"][0]["text"], "Check it");
    assert_eq!(
        (done[2]["call_id"].as_str(), done[2]["arguments"].as_str()),
        (Some("toolu_a"), Some(r#"{"cmd":"ls"}"#))
    );
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["usage"]["total_tokens"], 940);
}

fn responses_answer() -> Value {
    json!({"id": "resp_up", "object": "response", "status": "completed", "model": "up",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think first."}]},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_w", "name": "weather", "arguments": "{\"zeta\":1,\"alpha\":2}", "status": "completed"}
        ],
        "usage": {"input_tokens": 900, "input_tokens_details": {"cached_tokens": 800}, "output_tokens": 40,
                  "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 940}})
}

/// A Responses stream as a lenient host writes it: no `event:` lines, a call whose arguments arrive only at
/// `done`, and a `response.completed` with an empty `output`.
const RESPONSES_STREAM: &str = concat!(
    "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_up\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
    "data: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]}}\n\n",
    "data: {\"type\":\"response.reasoning_summary_text.delta\",\"output_index\":0,\"summary_index\":0,\"delta\":\"Think \"}\n\n",
    "data: {\"type\":\"response.reasoning_summary_text.delta\",\"output_index\":0,\"summary_index\":0,\"delta\":\"first.\"}\n\n",
    "data: {\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "data: {\"type\":\"response.output_text.delta\",\"output_index\":1,\"content_index\":0,\"delta\":\"Checking ✓\"}\n\n",
    "data: {\"type\":\"response.output_item.added\",\"output_index\":2,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_w\",\"name\":\"weather\",\"arguments\":\"\"}}\n\n",
    "data: {\"type\":\"response.function_call_arguments.delta\",\"output_index\":2,\"delta\":\"{\\\"city\\\":\"}\n\n",
    "data: {\"type\":\"response.output_item.done\",\"output_index\":2,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_w\",\"name\":\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\n\n",
    "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_up\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":900,\"input_tokens_details\":{\"cached_tokens\":800},\"output_tokens\":40,\"total_tokens\":940}}}\n\n"
);

async fn responses_upstream() -> MockUpstream {
    MockUpstream::start(|request| match request.json()["stream"] == true {
        true => Reply::sse(RESPONSES_STREAM, 7),
        false => Reply::json(responses_answer()),
    })
    .await
}

const WEATHER_CHAT: &str = r#"{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}"#;

#[tokio::test]
async fn a_chat_client_reaches_a_responses_upstream_streamed_and_not() {
    let upstream = responses_upstream().await;
    let router = TestRouter::start(&config("responses", &upstream.base())).await;
    let tools: Value = serde_json::from_str(&format!("[{WEATHER_CHAT}]")).unwrap();
    let request = |stream: bool| {
        json!({"model": "codex", "stream": stream, "stream_options": {"include_usage": true}, "max_tokens": 300,
            "tools": tools, "reasoning_effort": "low",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_old", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_old", "content": "sunny"}]})
    };
    let v: Value = router
        .post("/v1/chat/completions", &request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "codex");
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "Checking.");
    assert_eq!(message["reasoning_content"], "Think first.");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"zeta":1,"alpha":2}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        (
            v["usage"]["prompt_tokens"].as_u64(),
            v["usage"]["total_tokens"].as_u64()
        ),
        (Some(900), Some(940))
    );

    let sent = upstream.last();
    assert_eq!(sent.path, "/responses");
    let body = sent.json();
    assert_eq!(
        (body["model"].as_str(), body["store"].as_bool()),
        (Some("up"), Some(false))
    );
    assert_eq!(body["max_output_tokens"], 300);
    assert_eq!(body["reasoning"]["effort"], "low");
    let kinds: Vec<&str> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["message", "message", "function_call", "function_call_output"]);
    assert_eq!(body["input"][0]["role"], "developer");
    assert_eq!(
        body["input"][3],
        json!({"type": "function_call_output", "call_id": "call_old", "output": "sunny"})
    );
    assert_eq!(body["tools"][0]["name"], "weather");

    let r = router.post("/v1/chat/completions", &request(true)).await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Checking ✓");
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        arguments, r#"{"city":"Paris"}"#,
        "the rest of the arguments arrives from output_item.done"
    );
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 900);
}

#[tokio::test]
async fn an_anthropic_client_reaches_a_responses_upstream_streamed_and_not() {
    let upstream = responses_upstream().await;
    let router = TestRouter::start(&config("responses", &upstream.base())).await;
    let request = |stream: bool| {
        json!({"model": "codex", "stream": stream, "max_tokens": 300, "system": "Be brief.",
            "tools": [{"name": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]}]})
    };
    let v: Value = router.post("/v1/messages", &request(false)).await.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["model"].as_str()),
        (Some("message"), Some("codex"))
    );
    let kinds: Vec<&str> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);
    assert!(v["content"][0]["signature"].as_str().unwrap().starts_with("llmr1."));
    assert_eq!(v["content"][2]["input"], json!({"zeta": 1, "alpha": 2}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 800, "output_tokens": 40,
            "output_tokens_details": {"thinking_tokens": 12}})
    );
    let body = upstream.last().json();
    assert_eq!(body["instructions"], "Be brief.");
    assert_eq!(body["tools"][0]["parameters"]["properties"]["city"]["type"], "string");

    let r = router.post("/v1/messages", &request(true)).await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(
        text.contains(r#""partial_json":"{\"city\":"}"#) && text.contains(r#""partial_json":"\"Paris\"}"}"#),
        "{text}"
    );
    assert!(text.contains(r#""stop_reason":"tool_use""#));
    assert!(
        text.contains(r#""type":"signature_delta""#),
        "thinking closes with the router's signature"
    );
}

#[tokio::test]
async fn a_responses_upstream_is_the_same_protocol_passed_through() {
    const RSP_STREAM: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"hé\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_up\",\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"total_tokens\":2}}}\n\n"
    );
    let mut script = vec![Step::Write(sse_head())];
    script.extend(sse_chunks(RSP_STREAM, 9));
    script.push(Step::Hold);
    let lingering = RawUpstream::start(script).await;
    let json_upstream = MockUpstream::fixed(Reply::json(
        json!({"id": "resp_up", "object": "response", "status": "completed",
        "output": [], "future_field": {"kept": true}}),
    ))
    .await;
    for base in [lingering.base(), json_upstream.base()] {
        let router = TestRouter::start(&config("responses", &base)).await;
        let stream = base == lingering.base();
        let mut body = codex_request(stream);
        body["unknown_field"] = json!({"passes": "through"});
        let started = Instant::now();
        let r = router.post("/v1/responses", &body).await;
        assert_eq!(r.status(), 200);
        let text = concat(&read_chunks(r).await);
        if stream {
            assert_eq!(text, RSP_STREAM, "relayed as written");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the answer ends at response.completed"
            );
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["future_field"]["kept"], true);
            let sent = json_upstream.last();
            assert_eq!(sent.path, "/responses");
            assert_eq!(sent.json()["model"], "up");
            assert_eq!(sent.json()["unknown_field"], json!({"passes": "through"}));
            assert_eq!(sent.json()["input"], codex_request(false)["input"]);
        }
    }
}

#[tokio::test]
async fn anthropic_thinking_survives_the_next_turn_inside_encrypted_content() {
    let upstream = MockUpstream::start(|request| match request.json()["stream"] == true {
        true => Reply::sse(ANTHROPIC_STREAM, 7),
        false => Reply::json(anthropic_answer()),
    })
    .await;
    let router = TestRouter::start(&config("anthropic", &upstream.base())).await;
    for stream in [false, true] {
        let mut first = codex_request(stream);
        first["reasoning"] = json!({"effort": "high"});
        let r = router.post("/v1/responses", &first).await;
        let items: Vec<Value> = if stream {
            events(&concat(&read_chunks(r).await))
                .into_iter()
                .filter(|e| e["type"] == "response.output_item.done")
                .map(|e| e["item"].clone())
                .collect()
        } else {
            r.json::<Value>().await.unwrap()["output"].as_array().unwrap().clone()
        };
        let reasoning = items.iter().find(|i| i["type"] == "reasoning").unwrap().clone();
        let envelope = reasoning["encrypted_content"].as_str().expect("include asked for it");
        assert!(envelope.starts_with("llmr1.rs."), "{envelope}");
        let call = items
            .iter()
            .find(|i| i["type"] == "function_call" || i["type"] == "custom_tool_call")
            .unwrap();

        // Codex replays the reasoning item verbatim (with `content: null`) before the call, then the output.
        let mut second = codex_request(false);
        second["reasoning"] = json!({"effort": "high"});
        let input = second["input"].as_array_mut().unwrap();
        // Only the signed turn is in the open loop: an unsigned earlier call there would switch thinking off.
        input.truncate(2);
        let mut replayed = reasoning.clone();
        replayed["content"] = Value::Null;
        input.push(replayed);
        input.push(call.clone());
        let output_type = if call["type"] == "custom_tool_call" {
            "custom_tool_call_output"
        } else {
            "function_call_output"
        };
        input.push(json!({"type": output_type, "call_id": call["call_id"], "output": "done"}));
        assert_eq!(router.post("/v1/responses", &second).await.status(), 200);

        let sent = upstream.last().json();
        let messages = sent["messages"].as_array().unwrap();
        let assistant = &messages[messages.len() - 2];
        let expected = if stream {
            json!({"type": "thinking", "thinking": "Check it", "signature": "sig"})
        } else {
            json!({"type": "thinking", "thinking": "The echo worked.", "signature": "sig-1"})
        };
        assert_eq!(
            assistant["content"][0], expected,
            "the exact block goes back ({stream})"
        );
        assert_eq!(
            sent["thinking"]["type"], "enabled",
            "a signed open tool loop keeps thinking on"
        );
    }
    // A forged envelope is not opened: nothing but the summary text reaches the upstream, and it is dropped.
    let mut forged = codex_request(false);
    forged["input"].as_array_mut().unwrap().insert(
        2,
        json!({"type": "reasoning", "summary": [], "encrypted_content": "llmr1.rs.e30.AAAAAAAAAAAAAAAAAAAAAA"}),
    );
    assert_eq!(router.post("/v1/responses", &forged).await.status(), 200);
    let sent = upstream.last().json();
    assert!(!sent.to_string().contains("\"thinking\",\"thinking\""), "{sent}");
}

#[tokio::test]
async fn a_responses_upstream_error_reaches_an_anthropic_client_in_its_own_shape() {
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})
            .to_string(),
        headers: vec![("retry-after", "3".into())],
    })
    .await;
    let router = TestRouter::start(&config("responses", &upstream.base())).await;
    let r = router
        .post(
            "/v1/messages",
            &json!({"model": "codex", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("slow down"));
}

#[tokio::test]
async fn an_anthropic_upstream_error_reaches_a_responses_client_in_the_openai_shape() {
    let upstream = MockUpstream::fixed(Reply::status(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ))
    .await;
    let router = TestRouter::start(&config("anthropic", &upstream.base())).await;
    let r = router.post("/v1/responses", &codex_request(false)).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_object() && v.get("type").is_none(), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("Overloaded"), "{v}");
}
