//! Editing the config file changes the live router within a second; invalid edits change nothing; requests
//! in flight finish on the config they started with.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Asks for `model` until the router answers with `status`, for at most 3 s; returns how long it took.
async fn wait_for_status(router: &TestRouter, model: &str, status: u16) -> Duration {
    let started = Instant::now();
    loop {
        let r = router
            .post("/v1/chat/completions", &json!({"model":model,"messages":[]}))
            .await;
        if r.status() == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "model '{model}' never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The router on a config path of the test's own making (a symlink, say).
async fn start_at(config: std::path::PathBuf) -> llm_router::Running {
    let settings = llm_router::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        config,
        token: None,
        proxy: None,
    };
    llm_router::start(settings).await.unwrap()
}

fn ask(running: &llm_router::Running, model: &str) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
    let url = format!("http://{}/v1/chat/completions", running.local_addr);
    http().post(url).json(&json!({"model":model,"messages":[]})).send()
}

async fn setup() -> (MockUpstream, TestRouter) {
    let upstream = MockUpstream::fixed(Reply::json(json!({"ok":true}))).await;
    let router = TestRouter::start(&config_one("old", "openai", &upstream.base(), "")).await;
    wait_for_status(&router, "old", 200).await;
    (upstream, router)
}

#[tokio::test]
async fn in_place_edit_is_applied_within_a_second() {
    let (upstream, router) = setup().await;
    std::fs::write(&router.config_path, config_one("new", "openai", &upstream.base(), "")).unwrap();
    assert!(wait_for_status(&router, "new", 200).await < Duration::from_secs(1));
    wait_for_status(&router, "old", 404).await;
}

#[tokio::test]
async fn rename_over_edit_is_applied() {
    let (upstream, router) = setup().await;
    let tmp = router.dir.path().join(".config.yaml.swp");
    std::fs::write(&tmp, config_one("renamed", "openai", &upstream.base(), "")).unwrap();
    std::fs::rename(&tmp, &router.config_path).unwrap();
    assert!(wait_for_status(&router, "renamed", 200).await < Duration::from_secs(1));
    // A second rename-over works too (the watch survives the file being replaced).
    std::fs::write(&tmp, config_one("again", "openai", &upstream.base(), "")).unwrap();
    std::fs::rename(&tmp, &router.config_path).unwrap();
    wait_for_status(&router, "again", 200).await;
}

#[cfg(unix)]
#[tokio::test]
async fn kubernetes_style_symlink_swap_is_applied() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"ok":true}))).await;
    let dir = tempfile::tempdir().unwrap();
    // config.yaml -> ..data/config.yaml, ..data -> v1 ; then ..data is swapped atomically to v2.
    let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
    std::fs::create_dir(&v1).unwrap();
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v1.join("config.yaml"),
        config_one("first", "openai", &upstream.base(), ""),
    )
    .unwrap();
    std::fs::write(
        v2.join("config.yaml"),
        config_one("second", "openai", &upstream.base(), ""),
    )
    .unwrap();
    std::os::unix::fs::symlink("v1", dir.path().join("..data")).unwrap();
    let config = dir.path().join("config.yaml");
    std::os::unix::fs::symlink("..data/config.yaml", &config).unwrap();
    let running = start_at(config).await;
    let ask = |model: &'static str| ask(&running, model);
    assert_eq!(ask("first").await.unwrap().status(), 200);
    std::os::unix::fs::symlink("v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    let started = Instant::now();
    while ask("second").await.unwrap().status() != 200 {
        assert!(started.elapsed() < Duration::from_secs(1), "symlink swap not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_edit_keeps_the_last_good_config() {
    let (upstream, router) = setup().await;
    std::fs::write(
        &router.config_path,
        config_one("broken", "cohere", &upstream.base(), ""),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_status(&router, "old", 200).await;
    wait_for_status(&router, "broken", 404).await;
    // A half-written (empty) file is refused as well.
    std::fs::write(&router.config_path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    wait_for_status(&router, "old", 200).await;
    // And the next valid edit applies.
    std::fs::write(&router.config_path, config_one("fixed", "openai", &upstream.base(), "")).unwrap();
    wait_for_status(&router, "fixed", 200).await;
}

#[tokio::test]
async fn requests_in_flight_finish_on_their_snapshot() {
    let slow = MockUpstream::fixed(Reply::Delayed(
        Duration::from_millis(800),
        Box::new(Reply::json(json!({"from":"slow"}))),
    ))
    .await;
    let fast = MockUpstream::fixed(Reply::json(json!({"from":"fast"}))).await;
    let router = TestRouter::start(&config_one("g", "openai", &slow.base(), "")).await;
    let url = router.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        http()
            .post(url)
            .json(&json!({"model":"g","messages":[]}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&router.config_path, config_one("g", "openai", &fast.base(), "")).unwrap();
    // New requests go to the new upstream while the old one is still answering.
    let started = Instant::now();
    loop {
        let r = router
            .post("/v1/chat/completions", &json!({"model":"g","messages":[]}))
            .await;
        if r.json::<Value>().await.unwrap()["from"] == "fast" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert_eq!(in_flight.await.unwrap()["from"], "slow");
}

#[cfg(unix)]
#[tokio::test]
async fn an_edit_of_a_symlinked_config_in_another_directory_is_applied() {
    let upstream = MockUpstream::fixed(Reply::json(json!({"ok":true}))).await;
    let (here, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let real = elsewhere.path().join("real.yaml");
    std::fs::write(&real, config_one("first", "openai", &upstream.base(), "")).unwrap();
    let config = here.path().join("config.yaml");
    std::os::unix::fs::symlink(&real, &config).unwrap();
    let running = start_at(config).await;
    let ask = |model: &'static str| ask(&running, model);
    assert_eq!(ask("first").await.unwrap().status(), 200);
    std::fs::write(&real, config_one("second", "openai", &upstream.base(), "")).unwrap();
    let started = Instant::now();
    while ask("second").await.unwrap().status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "edit of the link target not picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await.unwrap();
}
