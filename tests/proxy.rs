//! `--proxy`: all upstream traffic goes through the given HTTP or SOCKS5 proxy.

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn http_proxy_carries_upstream_requests() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"via":"upstream"}))).await;
    let proxy = HttpProxy::start().await;
    let config = config_one("g", "openai", &format!("{}/v1", upstream.base()), "");
    let router = TestRouter::start_with(&config, None, Some(&format!("http://{}", proxy.addr))).await;
    let r = router
        .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["via"], "upstream");
    assert_eq!(
        proxy.targets.lock().unwrap().clone(),
        [format!("{}/v1/chat/completions", upstream.base())]
    );
    assert_eq!(upstream.last().json()["model"], "upstream-model");
}

#[tokio::test]
async fn socks5_proxy_carries_upstream_requests_and_streams() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    let upstream = MockUpstream::fixed(Reply::sse(stream, 3)).await;
    let proxy = Socks5Proxy::start().await;
    let config = config_one("g", "openai", &upstream.base(), "");
    let router = TestRouter::start_with(&config, None, Some(&format!("socks5://{}", proxy.addr))).await;
    let r = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"g","stream":true,"messages":[]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(concat(&read_chunks(r).await), stream);
    assert_eq!(proxy.targets.lock().unwrap().clone(), [upstream.addr.to_string()]);
}
