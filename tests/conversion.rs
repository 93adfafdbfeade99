//! Cross-protocol routes end to end: an Anthropic client on an OpenAI-protocol upstream (the Claude Code
//! case) and an OpenAI client on an Anthropic-protocol upstream, streaming and not, with tools and errors.

mod support;

use serde_json::{Value, json};
use support::*;

/// Parses an SSE body into (event name, JSON data) pairs.
fn events(text: &str) -> Vec<(Option<String>, String)> {
    let mut parser = llm_router::protocol::sse::SseParser::new();
    let mut out = Vec::new();
    parser.feed(text.as_bytes(), |e| out.push((e.event.clone(), e.data.clone())));
    out
}

const OAI_TOOL_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Let me think\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking the weather 🌦\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29}}\n\n",
    "data: [DONE]\n\n"
);

fn claude_code_request(stream: bool) -> Value {
    json!({
        "model": "sonnet",
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral","ttl":"1h"}}],
        "metadata": {"user_id": "user_0123456789abcdef_account__session_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"},
        "tools": [{"name":"weather","description":"Get weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
        "messages": [
            {"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]}
        ]
    })
}

#[tokio::test]
async fn anthropic_client_on_openai_upstream_streams_thinking_text_and_tools() {
    let upstream = MockUpstream::fixed(Reply::sse(OAI_TOOL_STREAM, 9)).await;
    let extra =
        "      max_output_tokens: 8192\n      reasoning_dialect: deepseek\n      rewrite_body: '{\"metadata\": null}'";
    let router = TestRouter::start(&config_one(
        "sonnet",
        "openai",
        &format!("{}/v1", upstream.base()),
        extra,
    ))
    .await;
    let response = http()
        .post(router.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&claude_code_request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = concat(&read_chunks(response).await);
    let events = events(&text);

    // Every event is named, starts with message_start and ends with message_stop.
    assert!(events.iter().all(|(name, _)| name.is_some()), "{text}");
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_deref().unwrap())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let data: Vec<Value> = events.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(
        data[0]["message"]["model"], "sonnet",
        "the client's model name is echoed"
    );
    assert!(data[0]["message"]["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // Blocks: thinking (signed), text, tool_use, with dense indexes.
    let starts: Vec<&Value> = data.iter().filter(|d| d["type"] == "content_block_start").collect();
    let kinds: Vec<&str> = starts
        .iter()
        .map(|d| d["content_block"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"]);
    let indexes: Vec<u64> = starts.iter().map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2]);
    assert_eq!(starts[2]["content_block"]["name"], "weather");
    assert_eq!(starts[2]["content_block"]["id"], "call_1");
    let deltas = |kind: &str, field: &str| -> String {
        data.iter()
            .filter(|d| d["type"] == "content_block_delta" && d["delta"]["type"] == kind)
            .map(|d| d["delta"][field].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(deltas("thinking_delta", "thinking"), "Let me think");
    assert!(deltas("signature_delta", "signature").starts_with("llmr1."));
    assert_eq!(deltas("text_delta", "text"), "Checking the weather 🌦");
    let args: Value = serde_json::from_str(&deltas("input_json_delta", "partial_json")).unwrap();
    assert_eq!(args, json!({"city":"Paris"}));
    let message_delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(message_delta["usage"]["output_tokens"], 9);

    // What the OpenAI upstream received.
    let sent = upstream.last().json();
    assert_eq!(upstream.last().path, "/v1/chat/completions");
    assert_eq!(sent["model"], "upstream-model");
    assert_eq!(
        sent["max_tokens"], 8192,
        "Claude Code's 32000 clamped to max_output_tokens"
    );
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        sent["messages"][0],
        json!({"role":"system","content":"You are Claude Code."})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    assert_eq!(sent["metadata"], Value::Null, "rewrite_body applies after conversion");
    let user = sent["user"].as_str().unwrap();
    assert!(user.len() <= 64, "long metadata.user_id is hashed: {user}");
}

#[tokio::test]
async fn anthropic_client_on_openai_upstream_non_streaming() {
    let answer = json!({"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"up",
        "choices":[{"index":0,"message":{"role":"assistant","content":"It is sunny.","tool_calls":[
            {"id":"functions.weather:0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
            "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}});
    let upstream = MockUpstream::fixed(Reply::json(answer)).await;
    let router = TestRouter::start(&config_one("sonnet", "openai", &upstream.base(), "")).await;
    let r = router.post("/v1/messages", &claude_code_request(false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "sonnet");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0], json!({"type":"text","text":"It is sunny."}));
    assert_eq!(v["content"][1]["type"], "tool_use");
    assert_eq!(
        v["content"][1]["id"], "functions_weather_0",
        "Kimi-style ids are sanitised"
    );
    assert_eq!(v["content"][1]["input"], json!({"city":"Rome"}));
    assert_eq!(v["usage"]["input_tokens"], 11);
    assert_eq!(v["usage"]["output_tokens"], 7);
}

#[tokio::test]
async fn openai_client_on_anthropic_upstream_streaming_and_not() {
    let ant_stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"up\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Bonjour \"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"à tous\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    let message = json!({"id":"msg_2","type":"message","role":"assistant","model":"up",
        "content":[{"type":"text","text":"Bonjour à tous"}],"stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":12,"output_tokens":4}});
    let upstream = MockUpstream::start(move |req| {
        if req.json()["stream"] == true {
            Reply::sse(ant_stream, 6)
        } else {
            Reply::json(message.clone())
        }
    })
    .await;
    let router = TestRouter::start(&config_one("gpt", "anthropic", &upstream.base(), "")).await;
    let body = json!({"model":"gpt","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Salut"}],
                      "temperature":1.5,"stream":true,"stream_options":{"include_usage":true}});
    let r = router.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let text = concat(&read_chunks(r).await);
    let events = events(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Bonjour à tous");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt")
    );
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["role"].is_string())
        .count();
    assert_eq!(roles, 1);
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = &chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 12);
    assert_eq!(usage["usage"]["completion_tokens"], 4);

    let sent = upstream.last().json();
    assert_eq!(upstream.last().path, "/v1/messages");
    assert_eq!(sent["system"], json!([{"type":"text","text":"Be brief."}]));
    assert_eq!(sent["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(sent["max_tokens"], 4096);
    assert!(sent.get("stream_options").is_none());

    let body = json!({"model":"gpt","messages":[{"role":"user","content":"Salut"}]});
    let v: Value = router.post("/v1/chat/completions", &body).await.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt");
    assert_eq!(v["choices"][0]["message"]["content"], "Bonjour à tous");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 16);
}

#[tokio::test]
async fn upstream_errors_are_mapped_across_protocols() {
    // OpenAI 429 → Anthropic rate_limit_error, with retry-after passed through.
    let upstream = MockUpstream::fixed(Reply::Json {
        status: 429,
        body: json!({"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}})
            .to_string(),
        headers: vec![("retry-after", "3".into())],
    })
    .await;
    let router = TestRouter::start(&config_one("sonnet", "openai", &upstream.base(), "")).await;
    let r = router.post("/v1/messages", &claude_code_request(false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["message"], "Rate limit reached");

    // Anthropic 529 overloaded → OpenAI 503.
    let upstream = MockUpstream::fixed(Reply::status(
        529,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
    ))
    .await;
    let router = TestRouter::start(&config_one("gpt", "anthropic", &upstream.base(), "")).await;
    let r = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"gpt","messages":[{"role":"user","content":"x"}]}),
        )
        .await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server_is_overloaded");

    // An OpenAI stream whose first event is an error becomes an HTTP error for the Anthropic client.
    let upstream = MockUpstream::fixed(Reply::sse(
        "data: {\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}\n\n",
        5,
    ))
    .await;
    let router = TestRouter::start(&config_one("sonnet", "openai", &upstream.base(), "")).await;
    let r = router.post("/v1/messages", &claude_code_request(true)).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");
}

#[tokio::test]
async fn conversion_refusals_are_400_with_param() {
    let upstream = MockUpstream::fixed(Reply::json(json!({}))).await;
    let router = TestRouter::start(&config_one("gpt", "anthropic", &upstream.base(), "")).await;
    let body = json!({"model":"gpt","n":2,"messages":[{"role":"user","content":"x"}]});
    let r = router.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "n");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn count_tokens_is_estimated_locally_or_forwarded() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"input_tokens": 1234}))).await;
    let config = format!(
        r#"
model_list:
  - model_name: oai
    llm_params: {{api_type: openai, model: up, api_base: "{base}"}}
  - model_name: ant
    llm_params: {{api_type: anthropic, model: up-ant, api_base: "{base}", api_key: sk-ant}}
"#,
        base = upstream.base()
    );
    let router = TestRouter::start(&config).await;
    let mut body = claude_code_request(false);
    body["model"] = json!("oai");
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = router.post("/v1/messages/count_tokens?beta=true", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llm-router-token-count"], "estimated");
    let estimate = r.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap();
    assert!(estimate > 20, "system, tools and messages counted: {estimate}");
    assert_eq!(upstream.count(), 0);

    body["model"] = json!("ant");
    let r = router.post("/v1/messages/count_tokens?beta=true", &body).await;
    assert_eq!(r.json::<Value>().await.unwrap()["input_tokens"], 1234);
    let seen = upstream.last();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    assert_eq!(seen.json()["model"], "up-ant");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant"));
}

#[tokio::test]
async fn router_minted_thinking_is_stripped_before_an_anthropic_upstream() {
    let message = json!({"id":"msg_2","type":"message","role":"assistant","model":"up","content":[{"type":"text","text":"ok"}],
        "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}});
    let upstream = MockUpstream::fixed(Reply::json(message)).await;
    let router = TestRouter::start(&config_one("c", "anthropic", &upstream.base(), "")).await;
    let body = json!({"model":"c","max_tokens":100,"messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"llmr1.abc"},{"type":"text","text":"hello"}]},
        {"role":"user","content":"again"}]});
    let r = router.post("/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    let sent = upstream.last().json();
    assert_eq!(sent["messages"][1]["content"], json!([{"type":"text","text":"hello"}]));
    assert_eq!(sent["model"], "upstream-model");
}

/// POSTs a raw JSON text, so the test itself cannot reorder keys.
async fn post_raw(router: &TestRouter, path: &str, body: &str) -> String {
    let r = http()
        .post(router.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn in_order(text: &str, first: &str, second: &str) -> bool {
    matches!((text.find(first), text.find(second)), (Some(a), Some(b)) if a < b)
}

#[tokio::test]
async fn key_order_of_schemas_and_tool_inputs_survives_both_routes() {
    // Models fill arguments in schema order, so `zeta` before `alpha` must stay so everywhere.
    let ant_answer = r#"{"id":"msg_1","type":"message","role":"assistant","model":"up","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{"zeta":1,"alpha":{"y":2,"b":3}}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let oai_answer = r#"{"id":"c","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3}}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let upstream = MockUpstream::start(move |req| Reply::Raw {
        status: 200,
        content_type: "application/json",
        body: if req.path.ends_with("/messages") {
            ant_answer
        } else {
            oai_answer
        }
        .to_owned(),
    })
    .await;
    let config = format!(
        "model_list:\n  - model_name: ant\n    llm_params: {{api_type: anthropic, model: up, api_base: \"{base}\"}}\n  - model_name: oai\n    llm_params: {{api_type: openai, model: up, api_base: \"{base}\"}}\n",
        base = upstream.base()
    );
    let router = TestRouter::start(&config).await;
    let schema = r#"{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"object","properties":{"y":{},"b":{}}}},"required":["zeta","alpha"]}"#;

    let openai_client = format!(
        r#"{{"model":"ant","messages":[{{"role":"user","content":"go"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}"#
    );
    let answer = post_raw(&router, "/v1/chat/completions", &openai_client).await;
    let sent = String::from_utf8(upstream.last().body).unwrap();
    assert!(
        in_order(&sent, "\"zeta\"", "\"alpha\"") && in_order(&sent, "\"y\"", "\"b\""),
        "{sent}"
    );
    assert!(
        answer.contains(r#"{\"zeta\":1,\"alpha\":{\"y\":2,\"b\":3}}"#),
        "{answer}"
    );

    let anthropic_client = format!(
        r#"{{"model":"oai","max_tokens":9,"messages":[{{"role":"user","content":"go"}}],"tools":[{{"name":"f","input_schema":{schema}}}]}}"#
    );
    let answer = post_raw(&router, "/v1/messages", &anthropic_client).await;
    let sent = String::from_utf8(upstream.last().body).unwrap();
    assert!(
        in_order(&sent, "\"zeta\"", "\"alpha\"") && in_order(&sent, "\"y\"", "\"b\""),
        "{sent}"
    );
    assert!(
        answer.contains(r#""input":{"zeta":1,"alpha":{"y":2,"b":3}}"#),
        "{answer}"
    );
}

#[tokio::test]
async fn converted_stream_errors_never_carry_the_exact_key_whatever_its_shape() {
    // Keys that no pattern recognises: Gemini's `AIza…` and a bare hex key.
    for key in ["AIzaSyD-not-a-real-key-0123456789", "0123456789abcdef0123456789abcdef"] {
        let stream = format!(
            "{}data: {{\"error\":{{\"message\":\"key {key} is not valid\",\"type\":\"invalid_request_error\"}}}}\n\n",
            &OAI_TOOL_STREAM[..OAI_TOOL_STREAM.find("\n\n").unwrap() + 2]
        );
        let upstream = MockUpstream::fixed(Reply::sse(&stream, 11)).await;
        let config = config_one("sonnet", "openai", &upstream.base(), "").replace("sk-upstream-secret", key);
        let router = TestRouter::start(&config).await;
        let r = router.post("/v1/messages", &claude_code_request(true)).await;
        assert_eq!(r.status(), 200);
        let text = concat(&read_chunks(r).await);
        assert!(text.contains("event: error"), "{text}");
        assert!(!text.contains(key), "{text}");
    }
}

#[tokio::test]
async fn a_count_tokens_answer_larger_than_the_error_cap_arrives_whole() {
    // 2 MiB: over the 1 MiB read for error bodies.
    let big = json!({"input_tokens": 77, "detail": "x".repeat(2 << 20)});
    let upstream = MockUpstream::fixed(Reply::json(big)).await;
    let router = TestRouter::start(&config_one("ant", "anthropic", &upstream.base(), "")).await;
    let mut body = claude_code_request(false);
    body["model"] = json!("ant");
    let r = router.post("/v1/messages/count_tokens", &body).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("valid JSON");
    assert_eq!(answer["input_tokens"], 77);
}
