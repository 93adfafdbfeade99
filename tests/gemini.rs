//! Gemini clients on the router's Gemini routes (`/v1beta/models/{group}:generateContent` and
//! `:streamGenerateContent`, `/v1beta/models`), against a scripted `api_type: gemini` upstream: the group in
//! the path, the token in Google's three places, errors in Google's shape, and the same-protocol path that
//! changes only the model in the URL.

mod support;

use serde_json::{Value, json};
use support::*;

const ANSWER: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi there"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"totalTokenCount":5},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;

const STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi \"}]},\"index\":0}],\"modelVersion\":\"m\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"there \u{00e9}\"}]},\"index\":0}],\"modelVersion\":\"m\"}\r\n\r\n",
    "data: {\"candidates\":[{\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\r\n\r\n",
);

fn gemini_config(upstream: &MockUpstream) -> String {
    config_one("g", "gemini", &format!("{}/v1beta", upstream.base()), "")
}

fn body() -> Value {
    json!({"contents":[{"role":"user","parts":[{"text":"Hello"}]}],"generationConfig":{"temperature":0.5},"x_unknown":[1,2.50]})
}

#[tokio::test]
async fn gemini_to_gemini_changes_only_the_model_in_the_path() {
    let upstream = MockUpstream::fixed(Reply::json(serde_json::from_str(ANSWER).unwrap())).await;
    let router = TestRouter::start_with(&gemini_config(&upstream), Some("router-token"), None).await;
    for version in ["v1beta", "v1"] {
        let response = http()
            .post(router.url(&format!("/{version}/models/g:generateContent")))
            .header("x-goog-api-key", "router-token")
            .body(body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            serde_json::from_str::<Value>(ANSWER).unwrap()
        );
        let seen = upstream.last();
        assert_eq!(seen.path, "/v1beta/models/upstream-model:generateContent");
        assert_eq!(seen.header("x-goog-api-key"), Some("sk-upstream-secret"));
        assert_eq!(seen.header("authorization"), None);
        // The body is the client's: nothing is added (a Gemini body has no `model`), unknown fields kept.
        assert_eq!(seen.json(), body());
    }
    router.shutdown().await;
}

#[tokio::test]
async fn gemini_stream_is_relayed_event_by_event_and_a_cut_stream_ends_in_an_error_chunk() {
    let upstream = MockUpstream::start(|request| match request.uri.contains("streamGenerateContent") {
        true if request.body.windows(3).any(|w| w == b"cut") => Reply::sse(&STREAM[..STREAM.len() / 2], 9),
        true => Reply::sse(STREAM, 9),
        false => Reply::status(400, json!({"error": "wanted a stream"})),
    })
    .await;
    let router = TestRouter::start_with(&gemini_config(&upstream), Some("router-token"), None).await;
    let url = router.url("/v1beta/models/g:streamGenerateContent?alt=sse&key=router-token");
    let response = http().post(&url).body(body().to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(concat(&read_chunks(response).await), STREAM);
    assert_eq!(
        upstream.last().uri,
        "/v1beta/models/upstream-model:streamGenerateContent?alt=sse"
    );

    let cut = json!({"contents":[{"role":"user","parts":[{"text":"cut"}]}]});
    let response = http().post(&url).body(cut.to_string()).send().await.unwrap();
    let text = concat(&read_chunks(response).await);
    assert!(text.starts_with(&STREAM[..STREAM.find("\r\n\r\n").unwrap()]), "{text}");
    let last = &text[text.rfind("data: ").unwrap() + 6..];
    let error: Value = serde_json::from_str(last.trim_end()).unwrap();
    assert_eq!(error["error"]["status"], "INTERNAL", "{text}");
    assert!(
        !text.contains("\"finishReason\""),
        "a cut stream never ends as a clean STOP: {text}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn gemini_errors_use_google_s_shape() {
    let upstream = MockUpstream::fixed(Reply::json(serde_json::from_str(ANSWER).unwrap())).await;
    let router = TestRouter::start_with(&gemini_config(&upstream), Some("router-token"), None).await;
    let post = |path: &str, key: &str| {
        http()
            .post(router.url(path))
            .header("x-goog-api-key", key)
            .body(body().to_string())
            .send()
    };
    let response = post("/v1beta/models/g:generateContent", "wrong").await.unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(error["error"]["code"], 401);

    let response = post("/v1beta/models/nope:generateContent", "router-token")
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "NOT_FOUND");

    let response = http()
        .post(router.url("/v1beta/models/g:generateContent"))
        .header("x-goog-api-key", "router-token")
        .body(r#"{"contents": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    // A stream asked for without `alt=sse` (Google's JSON-array framing) is refused, saying what to add.
    let response = post("/v1beta/models/g:streamGenerateContent?key=x", "router-token")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("alt=sse"),
        "{error}"
    );
    assert_eq!(upstream.count(), 0, "nothing bad reached the upstream");
    router.shutdown().await;
}

#[tokio::test]
async fn gemini_clients_get_models_in_google_s_shape() {
    let upstream = MockUpstream::fixed(Reply::json(json!({}))).await;
    let router = TestRouter::start(&gemini_config(&upstream)).await;
    let get = |path: &str| http().get(router.url(path)).send();
    let list: Value = get("/v1beta/models").await.unwrap().json().await.unwrap();
    assert_eq!(list["models"][0]["name"], "models/g");
    assert_eq!(list["models"][0]["supportedGenerationMethods"][0], "generateContent");
    assert_eq!(list.get("nextPageToken"), None);
    let one: Value = get("/v1beta/models/g").await.unwrap().json().await.unwrap();
    assert_eq!(one["name"], "models/g");
    let missing = get("/v1beta/models/nope").await.unwrap();
    assert_eq!(missing.status(), 404);
    // `/v1/models` keeps its OpenAI shape unless the client is a Google SDK.
    let openai: Value = get("/v1/models").await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    let google: Value = http()
        .get(router.url("/v1/models"))
        .header("x-goog-api-client", "google-genai-sdk/1.30.0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(google["models"][0]["name"], "models/g");
    router.shutdown().await;
}

/// A Gemini answer with a signed function call, as Gemini 3 sends it.
const SIGNED_CALL: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Paris"}},"thoughtSignature":"c2lnbmF0dXJlLTEyMw=="}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"thoughtsTokenCount":7,"totalTokenCount":22},"responseId":"resp-1"}"#;

/// Parses an SSE body into its `data` payloads.
fn data_of(text: &str) -> Vec<Value> {
    let mut parser = llm_router::protocol::sse::SseParser::new();
    let mut out = Vec::new();
    parser.feed(text.as_bytes(), |e| {
        if e.data != "[DONE]" {
            out.push(serde_json::from_str(&e.data).unwrap());
        }
    });
    out
}

#[tokio::test]
async fn gemini_clients_reach_openai_and_anthropic_upstreams() {
    let oai = MockUpstream::start(|request| match request.json()["stream"] == true {
        true => Reply::sse(OAI_STREAM, 7),
        false => Reply::json(oai_answer("from-openai")),
    })
    .await;
    let ant = MockUpstream::fixed(Reply::sse(ANT_STREAM, 5)).await;
    for (upstream, kind, base) in [
        (&oai, "openai", format!("{}/v1", oai.base())),
        (&ant, "anthropic", ant.base()),
    ] {
        let router = TestRouter::start(&config_one("g", kind, &base, "")).await;
        let request = json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
            "generationConfig": {"maxOutputTokens": 64, "temperature": 0.3, "stopSequences": ["END"]}
        });
        let stream = http()
            .post(router.url("/v1beta/models/g:streamGenerateContent?alt=sse"))
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200, "{kind}");
        let text = concat(&read_chunks(stream).await);
        assert!(!text.contains("data:{"), "every data: line has its space: {text}");
        let chunks = data_of(&text);
        let joined: String = chunks
            .iter()
            .flat_map(|c| {
                c["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(joined, "ok ✓", "{kind}: {text}");
        assert_eq!(
            chunks.last().unwrap()["candidates"][0]["finishReason"],
            "STOP",
            "{kind}"
        );
        let sent = upstream.last().json();
        match kind {
            "openai" => {
                assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Be brief."}));
                assert_eq!(sent["stop"], json!(["END"]));
                assert_eq!(sent["model"], "upstream-model");
            }
            _ => {
                assert_eq!(sent["system"][0]["text"], "Be brief.");
                assert_eq!(sent["max_tokens"], 64);
                assert_eq!(sent["stop_sequences"], json!(["END"]));
            }
        }
        if kind == "openai" {
            let whole = http()
                .post(router.url("/v1beta/models/g:generateContent"))
                .json(&request)
                .send()
                .await
                .unwrap();
            assert_eq!(whole.status(), 200);
            let answer: Value = whole.json().await.unwrap();
            assert_eq!(answer["candidates"][0]["content"]["parts"][0]["text"], "from-openai");
            assert_eq!(answer["candidates"][0]["content"]["role"], "model");
            assert_eq!(answer["candidates"][0]["finishReason"], "STOP");
            assert_eq!(answer["usageMetadata"]["totalTokenCount"], 2);
        }
        router.shutdown().await;
    }
}

#[tokio::test]
async fn openai_client_on_a_gemini_upstream_replays_the_thought_signature() {
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        let contents = body["contents"].as_array().cloned().unwrap_or_default();
        // The replayed call must carry its signature, as Gemini 3 requires.
        let replayed = contents.iter().flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default()).find(|p| p.get("functionCall").is_some());
        match replayed {
            None => Reply::json(serde_json::from_str(SIGNED_CALL).unwrap()),
            Some(part) if part["thoughtSignature"] == "c2lnbmF0dXJlLTEyMw==" => Reply::json(serde_json::from_str(ANSWER).unwrap()),
            Some(_) => Reply::status(400, json!({"error":{"code":400,"message":"Function call is missing a thought_signature","status":"INVALID_ARGUMENT"}})),
        }
    })
    .await;
    let router = TestRouter::start(&gemini_config(&upstream)).await;
    let tools = json!([{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]);
    let first: Value = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":tools}),
        )
        .await
        .json()
        .await
        .unwrap();
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city":"Paris"})
    );
    assert_eq!(first["usage"]["completion_tokens"], 12, "thoughts count as output");
    let seen = upstream.last();
    assert_eq!(seen.path, "/v1beta/models/upstream-model:generateContent");
    assert!(seen.json().get("model").is_none(), "a Gemini body has no model");
    assert!(
        seen.json()["tools"][0]["functionDeclarations"][0]
            .get("parametersJsonSchema")
            .is_some()
    );

    let second = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","tools":tools,"messages":[
                {"role":"user","content":"Weather in Paris?"},
                {"role":"assistant","content":null,"tool_calls":[call]},
                {"role":"tool","tool_call_id":call["id"],"content":"18°C"}
            ]}),
        )
        .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "Hi there");
    let replay = upstream.last().json();
    let response = &replay["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(response["name"], "weather");
    router.shutdown().await;
}

#[tokio::test]
async fn anthropic_client_streams_from_a_gemini_upstream() {
    let upstream = MockUpstream::fixed(Reply::sse(STREAM, 11)).await;
    let router = TestRouter::start(&gemini_config(&upstream)).await;
    let response = http()
        .post(router.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model":"g","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = concat(&read_chunks(response).await);
    let deltas: String = data_of(&text)
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, "Hi there é");
    assert!(text.contains("\"stop_reason\":\"end_turn\""), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    assert_eq!(
        upstream.last().uri,
        "/v1beta/models/upstream-model:streamGenerateContent?alt=sse"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_gemini_and_estimated_elsewhere() {
    let gemini = MockUpstream::fixed(Reply::json(json!({"totalTokens": 31}))).await;
    let router = TestRouter::start(&gemini_config(&gemini)).await;
    let wrapped = json!({"generateContentRequest": {"model": "models/g", "contents": [{"role":"user","parts":[{"text":"Hello"}]}]}});
    let response = router.post("/v1beta/models/g:countTokens", &wrapped).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"totalTokens": 31}));
    let seen = gemini.last();
    assert_eq!(seen.path, "/v1beta/models/upstream-model:countTokens");
    assert_eq!(seen.json()["generateContentRequest"]["model"], "models/upstream-model");
    router.shutdown().await;

    let openai = MockUpstream::fixed(Reply::json(oai_answer("unused"))).await;
    let router = TestRouter::start(&config_one("g", "openai", &format!("{}/v1", openai.base()), "")).await;
    let count = |text: &str| {
        let body = json!({"contents": [{"role":"user","parts":[{"text": text}]}]});
        let router = &router;
        async move { router.post("/v1/models/g:countTokens", &body).await }
    };
    let short = count("Hello").await;
    assert_eq!(short.status(), 200);
    assert_eq!(short.headers()["x-llm-router-token-count"], "estimated");
    let short = short.json::<Value>().await.unwrap()["totalTokens"].as_u64().unwrap();
    let long = count(&"many words here ".repeat(50))
        .await
        .json::<Value>()
        .await
        .unwrap()["totalTokens"]
        .as_u64()
        .unwrap();
    assert!(short > 0 && long > short * 10, "{short} {long}");
    assert_eq!(openai.count(), 0, "an estimate calls no upstream");
    let bad = router.post("/v1/models/g:countTokens", &json!({"contents": 5})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["status"],
        "INVALID_ARGUMENT"
    );
    router.shutdown().await;
}

/// Reference §7.1: counts cross to the other kind's counting endpoint. Claude Code's `count_tokens` on a
/// Gemini deployment goes to `:countTokens` with the whole request (system and tools), and a Gemini
/// client's count on an Anthropic deployment to `count_tokens` with only the fields it takes; each answer
/// and error comes back in the client's protocol.
#[tokio::test]
async fn counts_cross_between_anthropic_and_gemini() {
    let gemini = MockUpstream::start(|request| {
        match request.json()["generateContentRequest"]["contents"][0]["parts"][0]["text"] == "fail" {
            true => Reply::status(
                429,
                json!({"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}),
            ),
            false => Reply::json(json!({"totalTokens": 57})),
        }
    })
    .await;
    let router = TestRouter::start(&gemini_config(&gemini)).await;
    let count = |text: &str| {
        json!({"model":"g","system":"Be brief.","messages":[{"role":"user","content":text}],
            "tools":[{"name":"ls","description":"List","input_schema":{"type":"object","properties":{}}}]})
    };
    let response = http()
        .post(router.url("/v1/messages/count_tokens?beta=true"))
        .header("anthropic-version", "2023-06-01")
        .json(&count("Hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": 57}));
    let seen = gemini.last();
    assert_eq!(seen.path, "/v1beta/models/upstream-model:countTokens");
    let inner = &seen.json()["generateContentRequest"];
    assert_eq!(inner["model"], "models/upstream-model");
    assert_eq!(inner["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(inner["tools"][0]["functionDeclarations"][0]["name"], "ls");
    let limited = router.post("/v1/messages/count_tokens", &count("fail")).await;
    assert_eq!(limited.status(), 429);
    let limited: Value = limited.json().await.unwrap();
    assert_eq!(
        (limited["type"].as_str(), limited["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    router.shutdown().await;

    let anthropic = MockUpstream::fixed(Reply::json(json!({"input_tokens": 23}))).await;
    let router = TestRouter::start(&config_one("g", "anthropic", &anthropic.base(), "")).await;
    let body = json!({"generateContentRequest": {"model": "models/g",
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role":"user","parts":[{"text":"Hello"}]}],
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.1}}});
    let response = router.post("/v1beta/models/g:countTokens", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"totalTokens": 23}));
    let seen = anthropic.last();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    let sent = seen.json();
    let mut keys: Vec<&str> = sent.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["messages", "model", "system"],
        "count_tokens refuses max_tokens and sampling"
    );
    assert_eq!(sent["model"], "upstream-model");
    router.shutdown().await;
}

/// An Anthropic answer with signed thinking and a tool call, streamed.
const ANT_THINKING_CALL: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Need the weather \u{00e9}.\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBsig+/ant==\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
);

/// Reference §3.4: a Gemini client throws thought parts away but keeps a call's `thoughtSignature`, so the
/// router seals an Anthropic upstream's signed thinking there, and Anthropic gets it back, as it requires,
/// when the tool loop continues. Streamed turn first, then a whole one.
#[tokio::test]
async fn signed_thinking_survives_a_gemini_client_s_tool_loop_on_an_anthropic_upstream() {
    let upstream = MockUpstream::start(|request| {
        let body = request.json();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let Some(assistant) = messages.iter().find(|m| m["role"] == "assistant") else {
            return Reply::sse(ANT_THINKING_CALL, 13);
        };
        // What Anthropic checks with thinking on: the open tool loop's turn starts with its signed block.
        let want = json!({"type":"thinking","thinking":"Need the weather é.","signature":"EqQBsig+/ant=="});
        match assistant["content"][0] == want {
            true => Reply::json(json!({"id":"msg_2","type":"message","role":"assistant","model":"m",
                "content":[{"type":"text","text":"18°C in Paris."}],"stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":30,"output_tokens":5}})),
            false => Reply::status(400, json!({"type":"error","error":{"type":"invalid_request_error",
                "message":"messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`."}})),
        }
    })
    .await;
    let router = TestRouter::start(&config_one("g", "anthropic", &upstream.base(), "")).await;
    let tools = json!([{"functionDeclarations":[{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}]);
    let config = json!({"thinkingConfig":{"includeThoughts":true,"thinkingBudget":2048}});
    let question = json!({"role":"user","parts":[{"text":"Weather in Paris?"}]});
    let first = http()
        .post(router.url("/v1beta/models/g:streamGenerateContent?alt=sse"))
        .json(&json!({"contents":[question],"tools":tools,"generationConfig":config}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let chunks = data_of(&concat(&read_chunks(first).await));
    let parts: Vec<Value> = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert!(
        parts.iter().any(|p| p["thought"] == true),
        "thoughts are shown: {parts:?}"
    );
    // What the Gemini CLI keeps of the turn: every part but the thoughts, signatures byte for byte.
    let kept: Vec<Value> = parts.into_iter().filter(|p| p["thought"] != true).collect();
    let call = kept.iter().find(|p| p.get("functionCall").is_some()).unwrap();
    assert_eq!(call["functionCall"]["args"], json!({"city":"Paris"}));
    assert!(
        call["thoughtSignature"].as_str().unwrap().starts_with("TExNUgF7"),
        "{call}"
    );
    let reply = json!({"role":"user","parts":[{"functionResponse":{"id":call["functionCall"]["id"],"name":"weather","response":{"output":"18°C"}}}]});
    let second = http()
        .post(router.url("/v1beta/models/g:generateContent"))
        .json(
            &json!({"contents":[question,{"role":"model","parts":kept},reply],"tools":tools,"generationConfig":config}),
        )
        .send()
        .await
        .unwrap();
    let status = second.status();
    let answer: Value = second.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["candidates"][0]["content"]["parts"][0]["text"], "18°C in Paris.");
    let sent = upstream.last().json();
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");
    router.shutdown().await;
}
