//! The status page (`GET /status`, `/status.json`) in a real headless browser: Debian's Chromium, which
//! `scripts/test.sh` installs when it is missing. The page loads without console errors, shows every
//! deployment with its state (a failing one as cooling), keeps the usage chart, and asks for the token
//! when one is set. A screenshot goes to `target/status-page.png`.
//!
//! Without Chromium the browser checks are skipped, unless `LLM_ROUTER_REQUIRE_CHROMIUM=1` (set by the
//! test script) makes that a failure; the JSON checks always run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::*;

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("LLM_ROUTER_REQUIRE_CHROMIUM").is_none(),
            "LLM_ROUTER_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("skipping the browser checks: no chromium (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium on `url` with `extra` arguments; returns (stdout, stderr). The flags keep it
/// off the network beyond 127.0.0.1 (the machine's network is closed, and Chromium otherwise keeps trying).
fn run_chromium(chromium: &Path, url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=4000",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Console messages at warning level or above, and uncaught exceptions.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") && (l.contains("Uncaught") || l.contains("rror")))
        .collect()
}

fn two(good: &str, bad: &str, usage_db: &Path) -> String {
    format!(
        r#"
model_list:
  - model_name: good
    llm_params: {{api_type: openai, model: m-good, api_base: "{good}", api_key: sk-secret-good}}
  - model_name: bad
    llm_params: {{api_type: anthropic, model: m-bad, api_base: "{bad}", api_key: sk-secret-bad}}
router_settings:
  strategy: roundrobin
  num_retries: 1
  allowed_fails: 1
  cooldown_time: 120
  usage_db: "{}"
  model_groups:
    - name: team
      affinity: session
      models: [{{name: good}}, {{name: bad}}]
  routing_rules:
    - {{name: team-chat, when: {{ingress: chat, has: tools}}, route: team}}
"#,
        usage_db.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_each_deployment_and_a_cooling_one_as_cooling() {
    let good = MockUpstream::fixed(Reply::json(oai_answer("fine"))).await;
    let bad = MockUpstream::fixed(Reply::status(
        500,
        json!({"type":"error","error":{"type":"api_error","message":"boom"}}),
    ))
    .await;
    let logs = tempfile::tempdir().unwrap();
    let usage_db = logs.path().join("usage.sqlite");
    let config = two(&format!("{}/v1", good.base()), &bad.base(), &usage_db);
    let router = TestRouter::start(&config).await;
    for _ in 0..4 {
        let answer = router
            .post(
                "/v1/chat/completions",
                &json!({"model":"team","messages":[{"role":"user","content":"hi"}]}),
            )
            .await;
        assert_eq!(answer.status(), 200, "the good deployment answers after failover");
    }
    // The usage log's rows are written off the request path, within seconds.
    let mut status = Value::Null;
    for _ in 0..100 {
        let response = http().get(router.url("/status.json")).send().await.unwrap();
        status = response.json().await.unwrap();
        if status["usage"]["days"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let chart = &status["usage"]["days"][0];
    assert_eq!(
        (chart["group"].as_str(), chart["output"].as_u64()),
        (Some("team"), Some(4)),
        "{status}"
    );
    let text = status.to_string();
    assert!(!text.contains("sk-secret"), "no key on the page: {text}");
    let deployments = &status["groups"][0]["deployments"];
    assert_eq!(status["groups"][0]["name"], "team");
    let by_name = |name: &str| {
        deployments
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap()
    };
    let (good_row, bad_row) = (by_name("good"), by_name("bad"));
    assert_eq!(good_row["state"], "healthy");
    assert_eq!(good_row["requests"], 4);
    assert_eq!(
        good_row["output_tokens"], 4,
        "the scripted answer reports one output token each"
    );
    assert_eq!(bad_row["state"], "cooling");
    assert!(bad_row["cooling_until_ms"].as_i64().unwrap() > status["now_ms"].as_i64().unwrap());
    assert_eq!(bad_row["host"], bad.base().trim_start_matches("http://"));
    let errors = status["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["deployment"] == "bad" && e["status"] == 500),
        "the failed attempt is listed: {errors:?}"
    );

    if let Some(chromium) = chromium() {
        let (dom, stderr) = run_chromium(&chromium, &router.url("/status"), &["--dump-dom"]);
        assert!(
            console_errors(&stderr).is_empty(),
            "console errors: {:?}",
            console_errors(&stderr)
        );
        assert!(
            dom.contains(r#"<div id="js-errors" hidden=""></div>"#),
            "no script errors: {dom}"
        );
        assert!(dom.contains(r#"data-deployment="good" data-state="healthy""#), "{dom}");
        assert!(dom.contains(r#"data-deployment="bad" data-state="cooling""#), "{dom}");
        assert!(dom.contains("cooling until"), "{dom}");
        assert!(
            dom.contains(r#"<tr data-rule="team-chat"><td>team-chat</td><td class="muted">ingress chat and has tools</td><td>team</td><td class="num">0</td></tr>"#),
            "the rules table: {dom}"
        );
        assert!(dom.contains("roundrobin · affinity session · last 5 minutes"), "{dom}");
        assert!(
            dom.contains(r#"<section id="login" hidden="">"#),
            "no login without a token"
        );
        assert!(
            dom.contains(r#"<section id="usage">"#) && dom.contains("<rect"),
            "the usage chart: {dom}"
        );
        let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../status-page.png");
        let (_, _) = run_chromium(
            &chromium,
            &router.url("/status"),
            &[&format!("--screenshot={}", shot.display())],
        );
        let png = std::fs::read(&shot).expect("the screenshot is written");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture");
        eprintln!("status page screenshot: {}", shot.display());
    }
    router.shutdown().await;

    // The rows survive a restart: a new router on the same file finds them, and adds its own.
    let router = TestRouter::start(&config).await;
    let answer = router
        .post(
            "/v1/chat/completions",
            &json!({"model":"good","messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(answer.status(), 200);
    let rows = || {
        let db = rusqlite::Connection::open(&usage_db).unwrap();
        db.query_row("SELECT COUNT(*), SUM(output_tokens) FROM requests", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rows().0 < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows(), (5, Some(5)), "four requests before the restart, one after");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_asks_for_it_and_its_cookie_opens_the_data() {
    let up = MockUpstream::fixed(Reply::json(oai_answer("fine"))).await;
    let config = config_one("g", "openai", &format!("{}/v1", up.base()), "");
    let router = TestRouter::start_with(&config, Some("page-token"), None).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The page itself holds no data and is served to anyone; its data needs the token.
    let page = client.get(router.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>llm-router status</title>"));
    let data = client.get(router.url("/status.json")).send().await.unwrap();
    assert_eq!(data.status(), 401);
    let bearer = client
        .get(router.url("/status.json"))
        .bearer_auth("page-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    let sign_in = |token: &'static str| {
        client
            .post(router.url("/status/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let wrong = sign_in("nope").await.unwrap();
    assert_eq!(wrong.status(), 303);
    assert_eq!(wrong.headers()["location"], "/status?denied=1");
    assert!(wrong.headers().get("set-cookie").is_none());
    let login = sign_in("page-token").await.unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/status");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("page-token"), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap();
    let data = client
        .get(router.url("/status.json"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(data.status(), 200);
    let text = data.text().await.unwrap();
    assert!(
        !text.contains("page-token") && !text.contains("sk-upstream-secret"),
        "{text}"
    );
    // The cookie opens the page's data only, not the API.
    let api = client
        .post(router.url("/v1/chat/completions"))
        .header("cookie", session)
        .json(&json!({"model":"g","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    if let Some(chromium) = chromium() {
        let (dom, stderr) = run_chromium(&chromium, &router.url("/status"), &["--dump-dom"]);
        assert!(dom.contains(r#"<section id="login">"#), "the login form shows: {dom}");
        assert!(dom.contains(r#"<div id="content" hidden="">"#), "and no data: {dom}");
        assert!(!dom.contains("m1"), "no deployment named before login");
        // The 401 of /status.json is the one console line allowed: the page answers it with the form.
        let errors: Vec<&str> = console_errors(&stderr)
            .into_iter()
            .filter(|l| !l.contains("401"))
            .collect();
        assert!(errors.is_empty(), "console errors: {errors:?}");
    }
    router.shutdown().await;
}
