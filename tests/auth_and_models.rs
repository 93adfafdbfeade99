//! The router token, `/health` and `/v1/models` over real HTTP.

mod support;

use serde_json::{Value, json};
use support::*;

const TOKEN: &str = "router-token-123";

async fn router_with_token() -> (MockUpstream, TestRouter) {
    let upstream = MockUpstream::fixed(Reply::json(json!({"ok":true}))).await;
    let router = TestRouter::start_with(&config_one("g", "openai", &upstream.base(), ""), Some(TOKEN), None).await;
    (upstream, router)
}

#[tokio::test]
async fn token_is_required_on_every_v1_route_in_either_header() {
    let (upstream, router) = router_with_token().await;
    let c = http();
    let chat = json!({"model":"g","messages":[]});

    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(!v.to_string().contains(TOKEN));

    let r = c
        .post(router.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );

    let r = c.get(router.url("/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.count(), 0);

    let r = c
        .post(router.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(router.url("/v1/chat/completions"))
        .header("x-api-key", TOKEN)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(router.url("/v1/models"))
        .header("x-api-key", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The router's token never reaches the upstream.
    for seen in upstream.recorded() {
        assert!(!format!("{:?}", seen.headers).contains(TOKEN));
    }
}

#[tokio::test]
async fn health_is_open_and_unknown_routes_are_404() {
    let (_upstream, router) = router_with_token().await;
    let r = http().get(router.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = http()
        .get(router.url("/v1/nothing"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    // A known path with another method: 405 with the methods it takes, in the route's error shape.
    let r = http()
        .get(router.url("/v1/messages"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error");
    let r = http()
        .post(router.url("/v1/models"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), &r.headers()["allow"]),
        (405, &"GET,HEAD".parse().unwrap())
    );
    // ... but the token is checked first, and a HEAD is answered like a GET (hyper leaves out the body).
    let r = http().get(router.url("/v1/messages")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http().head(router.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn without_a_token_the_router_is_open() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"ok":true}))).await;
    let router = TestRouter::start(&config_one("g", "openai", &upstream.base(), "")).await;
    let r = router
        .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn models_list_in_both_flavours() {
    let upstream = MockUpstream::fixed(Reply::json(json!({}))).await;
    let config = format!(
        "{}    - name: second\n      models:\n        - name: m1\n",
        config_one("first", "openai", &upstream.base(), "")
    );
    let router = TestRouter::start(&config).await;

    let v: Value = router.get_json("/v1/models").await;
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "second"]);
    assert_eq!(v["data"][0]["object"], "model");

    let v: Value = http()
        .get(router.url("/v1/models?limit=1"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["data"][0]["id"], "first");
    assert_eq!(v["has_more"], true);
    assert_eq!(v["last_id"], "first");

    let r = http().get(router.url("/v1/models/second")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "second");
    // The id is percent-decoded, as the path segment of a URL.
    let r = http().get(router.url("/v1/models/sec%6Fnd")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "second");
    let r = http()
        .get(router.url("/v1/models/zzz"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
}
