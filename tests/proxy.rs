//! `--proxy`: all upstream traffic goes through the given HTTP or SOCKS5 proxy; `llm_params.proxy` overrides it
//! per deployment.

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

/// `llm_params.proxy` overrides `--proxy` for one deployment: its own proxy, or `none` for a direct
/// connection; the others keep the router's.
#[tokio::test]
async fn a_deployment_proxy_overrides_the_routers() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"via":"upstream"}))).await;
    let global = HttpProxy::start().await;
    let own = Socks5Proxy::start().await;
    let base = upstream.base();
    let config = format!(
        r#"
model_list:
  - model_name: through-global
    llm_params: {{api_type: openai, model: a, api_base: "{base}/global"}}
  - model_name: through-own
    llm_params: {{api_type: openai, model: b, api_base: "{base}/own", proxy: "socks5://{own}"}}
  - model_name: direct
    llm_params: {{api_type: openai, model: c, api_base: "{base}/direct", proxy: none}}
"#,
        own = own.addr
    );
    let router = TestRouter::start_with(&config, None, Some(&format!("http://{}", global.addr))).await;
    for model in ["through-global", "through-own", "direct"] {
        let r = router
            .post("/v1/chat/completions", &json!({"model":model,"messages":[]}))
            .await;
        assert_eq!(r.status(), 200, "{model}");
    }
    assert_eq!(
        global.targets.lock().unwrap().clone(),
        [format!("{base}/global/chat/completions")]
    );
    assert_eq!(own.targets.lock().unwrap().clone(), [upstream.addr.to_string()]);
    let paths: Vec<String> = upstream.recorded().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/global/chat/completions",
            "/own/chat/completions",
            "/direct/chat/completions"
        ]
    );
}

#[tokio::test]
async fn a_bad_deployment_proxy_is_refused_without_its_password() {
    let config = r#"
model_list:
  - model_name: m
    llm_params: {api_type: openai, model: a, api_base: "http://127.0.0.1:9/v1", proxy: "ftp://user:hunter2@proxy:21"}
"#;
    let error = llm_router::config::parse(config, std::path::Path::new("c.yaml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("model_list[0].llm_params.proxy: 'ftp://"), "{error}");
    assert!(error.contains("or none for a direct connection"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}
