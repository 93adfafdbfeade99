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
