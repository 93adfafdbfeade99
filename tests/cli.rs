//! The real binary: flags, refusing bad configs and proxies, serving, and a clean exit on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

/// `text` as `c.yaml` in a new temporary directory (kept while the directory lives).
fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn router() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-router"));
    command.env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("LLM_ROUTER_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn help_lists_every_flag() {
    let output = router().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "-i, --ip",
        "-p, --port",
        "-c, --config",
        "-t, --token",
        "-l, --log-level",
        "--proxy",
        "--log-format",
        "--log-file",
        "--log-file-max-mb",
        "--check",
        "--completions",
        "-h, --help",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for default in [
        "[default: 0.0.0.0]",
        "[default: 8000]",
        "[default: config.yaml]",
        "[default: warn]",
    ] {
        assert!(help.contains(default), "{default} missing");
    }
}

#[test]
fn invalid_config_is_refused_with_the_place_named() {
    let (_dir, path) =
        config_file(&config_one("g", "openai", "http://127.0.0.1:9", "").replace("- name: m1\n", "- name: modelX\n"));
    let output = router()
        .args(["-c", path.to_str().unwrap(), "-p", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("router_settings.model_groups[0].models[0].name: unknown model 'modelX'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("sk-upstream-secret"),
        "{stderr}"
    );

    let output = router().args(["-c", "/nonexistent/config.yaml"]).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("cannot read config file")
    );
}

#[test]
fn completions_are_printed_for_each_shell_without_a_config() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef llm-router"),
        ("fish", "complete -c llm-router"),
    ] {
        let output = router()
            .args(["--completions", shell, "-c", "/nonexistent.yaml"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(
            script.contains(marker) && script.contains("log-format"),
            "{shell}: {script}"
        );
    }
    let output = router().args(["--completions", "tcsh"]).output().unwrap();
    assert!(!output.status.success());
}

#[test]
fn bad_proxy_and_bad_log_level_are_refused() {
    let (_dir, path) = config_file(&config_one("g", "openai", "http://127.0.0.1:9", ""));
    let output = router()
        .args(["-c", path.to_str().unwrap(), "-p", "0", "--proxy", "ftp://user:pw@h:1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("invalid --proxy"), "{stderr}");
    assert!(!stderr.contains(":pw@"), "{stderr}");
    let output = router()
        .args(["-c", path.to_str().unwrap(), "-l", "loud"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[cfg(unix)]
#[test]
fn serves_then_exits_cleanly_on_sigterm_without_logging_secrets() {
    let (_dir, path) = config_file(&config_one("g", "openai", "http://127.0.0.1:9", ""));
    let (mut child, mut stderr, addr) = spawn_router(&path, "trace", Some("tok-from-env"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let health = http().get(format!("http://{addr}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let unauthorized = http().get(format!("http://{addr}/v1/models")).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401);
        let models = http()
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth("tok-from-env")
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 200);
        // An upstream call that fails, so error paths log too.
        let failed = http()
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth("tok-from-env")
            .json(&serde_json::json!({"model":"g","messages":[]}))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 502);
        // A Gemini client's token in the URL, on a request that fails and on one that is refused.
        for path in [
            "/v1beta/models/g:generateContent",
            "/v1beta/models/nope:streamGenerateContent",
        ] {
            let gemini = http()
                .post(format!("http://{addr}{path}?alt=sse&key=tok-from-env"))
                .json(&serde_json::json!({"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}))
                .send()
                .await
                .unwrap();
            assert!(gemini.status().is_client_error() || gemini.status().is_server_error());
        }
    });
    let rest = stop(&mut child, &mut stderr);
    assert!(rest.contains("request finished"), "info/trace logs expected:\n{rest}");
    assert!(
        !rest.contains("tok-from-env") && !rest.contains("sk-upstream-secret"),
        "secret in logs:\n{rest}"
    );
}

#[cfg(unix)]
#[test]
fn a_stream_that_ends_in_an_in_band_error_is_logged_with_its_real_outcome() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One event, then silence past the idle limit.
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::Sse {
        pieces: vec![
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n".to_vec(),
            b"data: [DONE]\n\n".to_vec(),
        ],
        gap: Duration::from_secs(5),
        then_break: false,
    }));
    let (_dir, path) = config_file(&config_one(
        "g",
        "openai",
        &upstream.base(),
        "      stream_idle_timeout: 0.3",
    ));
    let (mut child, mut stderr, addr) = spawn_router(&path, "info", None);
    runtime.block_on(async {
        let r = http()
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&serde_json::json!({"model":"g","stream":true,"messages":[]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(concat(&read_chunks(r).await).contains("data: {\"error\""));
    });
    let rest = stop(&mut child, &mut stderr);
    let line = rest
        .lines()
        .find(|l| l.contains("request finished") && l.contains("stream=true"))
        .unwrap_or_else(|| panic!("no stream log line:\n{rest}"));
    assert!(line.contains("status=504"), "{line}");
    assert!(line.contains("stalled"), "{line}");
}

/// `--log-format json`: every line on stderr is one JSON object, and a request's line carries the record's
/// fields; no body, key or token shows up anywhere.
#[cfg(unix)]
#[test]
fn json_logs_are_one_object_per_line_with_the_record_and_no_secrets() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::start(|request| {
        let stream = serde_json::from_slice::<serde_json::Value>(&request.body).is_ok_and(|b| b["stream"] == true);
        match stream {
            true => Reply::sse(ANT_STREAM, 9),
            false => Reply::json(
                serde_json::json!({"id":"msg_1","type":"message","role":"assistant","model":"m",
                "content":[{"type":"text","text":"ANSWER-TEXT-SECRET"}],"stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":12,"output_tokens":4,"cache_read_input_tokens":2}}),
            ),
        }
    }));
    let (_dir, path) = config_file(&config_one("g", "anthropic", &upstream.base(), ""));
    let router = RouterProcess::start(
        &path,
        &["-l", "info", "--log-format", "json", "--token", "tok-json-secret"],
    );
    runtime.block_on(async {
        for stream in [false, true] {
            let r = http()
                .post(router.url("/v1/messages"))
                .header("x-api-key", "tok-json-secret")
                .json(&serde_json::json!({"model":"g","max_tokens":9,"stream":stream,
                    "messages":[{"role":"user","content":"PROMPT-TEXT-SECRET"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
        }
        let r = http()
            .post(router.url("/v1/messages"))
            .json(&serde_json::json!({"model":"nope","messages":[]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    });
    let lines = router.stop();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| panic!("not one JSON object: {line}"))
        })
        .collect();
    assert!(objects[0]["message"].as_str().unwrap().contains("listening on http://"));
    let requests: Vec<&serde_json::Value> = objects.iter().filter(|o| o["message"] == "request finished").collect();
    assert_eq!(requests.len(), 2, "{lines:#?}");
    for (line, stream) in requests.iter().zip([false, true]) {
        let id = line["request_id"].as_str().unwrap();
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        assert_eq!(line["ingress"], "messages");
        assert_eq!(line["group"], "g");
        assert_eq!(line["deployment"], "m1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["outcome"], "complete");
        assert_eq!(line["stream"], stream);
        assert_eq!(line["attempts"], 1);
        assert!(line["duration_ms"].is_u64(), "{line}");
        assert_eq!(line["ttft_ms"].is_u64(), stream, "{line}");
    }
    // The answer's usage: input counts the cache read (12 + 2); the stream's: 3 in, 2 out.
    let tokens = |line: &serde_json::Value| {
        [
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ]
        .map(|key| line[key].as_u64().unwrap())
    };
    assert_eq!(tokens(requests[0]), [14, 4, 2, 0, 0]);
    assert_eq!(tokens(requests[1]), [3, 2, 0, 0, 0]);
    assert_ne!(requests[0]["request_id"], requests[1]["request_id"]);
    let all = lines.join("\n");
    for secret in [
        "tok-json-secret",
        "sk-upstream-secret",
        "PROMPT-TEXT-SECRET",
        "ANSWER-TEXT-SECRET",
    ] {
        assert!(!all.contains(secret), "{secret} in the logs:\n{all}");
    }
}

/// Starts the binary on a free port; returns it, its stderr (past the listening line) and its address.
fn spawn_router(
    config: &std::path::Path,
    level: &str,
    token: Option<&str>,
) -> (KillOnDrop, BufReader<std::process::ChildStderr>, String) {
    spawn_router_with(router(), config, level, token)
}

fn spawn_router_with(
    mut command: Command,
    config: &std::path::Path,
    level: &str,
    token: Option<&str>,
) -> (KillOnDrop, BufReader<std::process::ChildStderr>, String) {
    command
        .args([
            "-c",
            config.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-l",
            level,
        ])
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("LLM_ROUTER_TOKEN", token);
    }
    let mut child = KillOnDrop(command.spawn().unwrap());
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    let started = Instant::now();
    let addr = loop {
        line.clear();
        stderr.read_line(&mut line).unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no listening line");
    };
    (child, stderr, addr)
}

/// An https upstream on 127.0.0.1 with a certificate from its own CA, offering `alpn`; it counts the
/// connections it accepted and records the HTTP version of every request. Returns the CA as PEM.
async fn tls_upstream(alpn: &[&[u8]]) -> (String, u16, Arc<AtomicUsize>, Arc<Mutex<Vec<http::Version>>>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (accepted.clone(), versions.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    seen.lock().unwrap().push(request.version());
                    async move {
                        let streamed = http_body_util::BodyExt::collect(request.into_body())
                            .await
                            .map(|b| String::from_utf8_lossy(&b.to_bytes()).contains("\"stream\":true"))
                            .unwrap_or(false);
                        let (kind, body) = if streamed {
                            let chunk = |delta: &str, finish: &str| {
                                format!(
                                    "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
                                )
                            };
                            let text = chunk(r#"{"role":"assistant","content":"hi"}"#, "null")
                                + &chunk("{}", "\"stop\"")
                                + "data: [DONE]\n\n";
                            ("text/event-stream", text)
                        } else {
                            ("application/json", oai_answer("tls").to_string())
                        };
                        let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                        response
                            .headers_mut()
                            .insert("content-type", http::HeaderValue::from_static(kind));
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (ca.pem(), port, accepted, versions)
}

/// Real providers are https, most with HTTP/2 by ALPN: both versions work, for whole and streamed answers,
/// and sequential requests share one connection.
#[cfg(unix)]
#[test]
fn https_upstreams_work_over_http2_and_http1_on_one_kept_alive_connection() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The last case goes through a SOCKS5 proxy: TLS and HTTP/2 inside the tunnel.
    for (alpn, version, proxied) in [
        (&[&b"h2"[..], b"http/1.1"][..], http::Version::HTTP_2, false),
        (&[&b"http/1.1"[..]][..], http::Version::HTTP_11, false),
        (&[&b"h2"[..], b"http/1.1"][..], http::Version::HTTP_2, true),
    ] {
        let (ca, port, accepted, versions) = runtime.block_on(tls_upstream(alpn));
        let proxy = proxied.then(|| runtime.block_on(Socks5Proxy::start()));
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca).unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            config_one("g", "openai", &format!("https://127.0.0.1:{port}/v1"), ""),
        )
        .unwrap();
        let mut command = router();
        command.env("SSL_CERT_FILE", &ca_path).env_remove("SSL_CERT_DIR");
        if let Some(proxy) = &proxy {
            command.args(["--proxy", &format!("socks5://{}", proxy.addr)]);
        }
        let (mut child, mut stderr, addr) = spawn_router_with(command, &path, "warn", None);
        runtime.block_on(async {
            for stream in [false, false, true, false] {
                let response = http()
                    .post(format!("http://{addr}/v1/chat/completions"))
                    .json(&serde_json::json!({"model": "g", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{version:?}");
                let text = response.text().await.unwrap();
                if stream {
                    assert!(text.contains("\"content\":\"hi\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
                } else {
                    assert!(text.contains("\"content\":\"tls\""), "{text}");
                }
            }
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                1,
                "{version:?}: one connection for all four requests"
            );
            // Three at once: HTTP/2 multiplexes them on its one connection; HTTP/1.1 may open two more.
            let post = || {
                http()
                    .post(format!("http://{addr}/v1/chat/completions"))
                    .json(&serde_json::json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
            };
            let (a, b, c) = tokio::join!(post(), post(), post());
            for response in [a, b, c] {
                assert_eq!(response.unwrap().status(), 200);
            }
        });
        stop(&mut child, &mut stderr);
        assert_eq!(*versions.lock().unwrap(), [version; 7]);
        let connections = accepted.load(Ordering::SeqCst);
        match version {
            http::Version::HTTP_2 => assert_eq!(connections, 1),
            _ => assert!((1..=3).contains(&connections), "{connections}"),
        }
        if let Some(proxy) = proxy {
            assert_eq!(*proxy.targets.lock().unwrap(), [format!("127.0.0.1:{port}")]);
        }
    }
}

/// SIGTERM, a clean exit, and everything the router logged after its listening line.
fn stop(child: &mut KillOnDrop, stderr: &mut BufReader<std::process::ChildStderr>) -> String {
    send_signal(child.0.id(), "TERM");
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(stderr, &mut rest).unwrap();
    rest
}

#[cfg(unix)]
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A child process that is killed if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three deployments in `model_list`, each `(name, api_type, api_base, api_key)`, plus `extra` entries.
fn config_of(deployments: &[(&str, &str, &str, &str)], extra: &str) -> String {
    let mut text = String::from("model_list:\n");
    for (name, api_type, base, key) in deployments {
        text.push_str(&format!(
            "  - model_name: {name}\n    llm_params: {{api_type: {api_type}, model: up-{name}, api_base: '{base}', api_key: {key}}}\n"
        ));
    }
    text + extra
}

/// A port on 127.0.0.1 with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The table's row of `deployment`, split into its cells (columns are two or more spaces apart; a cell
/// holds single spaces at most).
fn row<'a>(table: &'a str, deployment: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(deployment))
        .unwrap_or_else(|| panic!("no row for {deployment}:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

/// `--check` probes every deployment once in its own protocol and prints a table: an answer is `ok`, an
/// error answer its status and message (with the echoed key redacted), a closed port `unreachable`; a glob
/// model is skipped. One failure makes the exit status 1.
#[test]
fn check_probes_every_deployment_and_fails_when_one_does_not_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let good = runtime.block_on(MockUpstream::start(|request| match request.header("authorization") {
        Some("Bearer sk-pool-bad") => Reply::status(401, serde_json::json!({"error": {"message": "bad key"}})),
        _ => Reply::json(oai_answer("pong")),
    }));
    let denied = runtime.block_on(MockUpstream::start(|request| {
        let key = request.header("x-api-key").unwrap_or_default();
        Reply::status(
            401,
            serde_json::json!({"type":"error","error":{"type":"authentication_error",
                "message": format!("invalid x-api-key: {key}")}}),
        )
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let gone = format!("http://127.0.0.1:{}/v1beta", closed_port());
    let config = config_of(
        &[
            ("good", "openai", &good.base(), "sk-good-secret"),
            ("denied", "anthropic", &denied.base(), "sk-denied-secret"),
            ("gone", "gemini", &gone, "gm-gone-secret"),
        ],
        &format!(
            "  - model_name: any-gpt\n    llm_params: {{api_type: openai, model: 'gpt-*', api_base: 'http://127.0.0.1:9'}}\n  \
             - model_name: demo\n    llm_params: {{api_type: mock}}\n  \
             - model_name: pool\n    llm_params: {{api_type: openai, model: p, api_base: '{}', api_key: [sk-pool-ok, sk-pool-bad]}}\n",
            good.base()
        ),
    );
    std::fs::write(&path, config).unwrap();
    let output = router()
        .args(["--check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{table}\n{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 8, "{table}");
    assert!(
        lines[0].starts_with("DEPLOYMENT") && lines[0].ends_with("ERROR"),
        "{table}"
    );

    let good_row = row(&table, "good");
    assert_eq!(good_row[..3], ["good", "openai", "ok"], "{table}");
    assert!(good_row[3].parse::<u64>().is_ok() && good_row.len() == 4, "{table}");
    let denied_row = row(&table, "denied");
    assert_eq!(denied_row[..3], ["denied", "anthropic", "401"], "{table}");
    assert_eq!(denied_row[4], "invalid x-api-key: [redacted]", "{table}");
    let gone_row = row(&table, "gone");
    assert_eq!(gone_row[..3], ["gone", "gemini", "unreachable"], "{table}");
    assert!(gone_row[4].contains("upstream 'gone' is unreachable"), "{table}");
    assert_eq!(
        row(&table, "any-gpt"),
        ["any-gpt", "openai", "skipped (model pattern)", "-"]
    );
    assert_eq!(row(&table, "demo")[..3], ["demo", "mock", "ok"], "{table}");
    // Every key of a pool is probed, named by its position.
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{table}"))
    };
    assert!(line("pool key #1").contains(" ok"), "{table}");
    assert!(
        line("pool key #2").contains(" 401 ") && line("pool key #2").ends_with("bad key"),
        "{table}"
    );
    let everything = format!("{table}{stderr}");
    for secret in ["sk-good-secret", "sk-denied-secret", "gm-gone-secret", "sk-pool"] {
        assert!(!everything.contains(secret), "{secret} in:\n{everything}");
    }

    // What the router would send: the deployment's model, its credential, one token asked for, no stream.
    let sent = good
        .recorded()
        .into_iter()
        .find(|r| r.json()["model"] == "up-good")
        .unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-good-secret"));
    assert_eq!(
        sent.json(),
        serde_json::json!({"model":"up-good","messages":[{"role":"user","content":"ping"}],"max_tokens":1,"stream":false})
    );
    let sent = denied.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.json(),
        serde_json::json!({"model":"up-denied","max_tokens":1,"messages":[{"role":"user","content":"ping"}]})
    );
    assert_eq!((good.count(), denied.count()), (3, 1), "good, and each key of the pool");
}

/// All four protocols answering: exit status 0, and each got its own smallest request.
#[test]
fn check_passes_when_every_deployment_answers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(serde_json::json!({"ok": true}))));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let base = upstream.base();
    let gemini = format!("{base}/v1beta");
    let config = config_of(
        &[
            ("chat", "openai", &base, "k-chat"),
            ("messages", "anthropic", &base, "k-messages"),
            ("responses", "responses", &base, "k-responses"),
            ("gemini", "gemini", &gemini, "k-gemini"),
        ],
        "",
    );
    std::fs::write(&path, config).unwrap();
    let output = router()
        .args(["--check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{table}");
    for name in ["chat", "messages", "responses", "gemini"] {
        assert_eq!(row(&table, name)[2], "ok", "{table}");
    }
    let mut recorded = upstream.recorded();
    recorded.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/chat/completions",
            "/responses",
            "/v1/messages",
            "/v1beta/models/up-gemini:generateContent"
        ]
    );
    assert_eq!(recorded[1].json()["max_output_tokens"], 16);
    assert_eq!(recorded[1].json()["model"], "up-responses");
    assert_eq!(
        recorded[3].json(),
        serde_json::json!({"contents":[{"role":"user","parts":[{"text":"ping"}]}],"generationConfig":{"maxOutputTokens":1}})
    );
    assert_eq!(recorded[3].header("x-goog-api-key"), Some("k-gemini"));
}

/// An invalid config is exit status 2 with the place named, and nothing is probed.
#[test]
fn check_refuses_an_invalid_config_with_status_2() {
    let (_dir, path) =
        config_file(&config_one("g", "openai", "http://127.0.0.1:9", "").replace("api_type: openai", "api_type: nope"));
    let output = router()
        .args(["--check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown api_type 'nope'"), "{stderr}");
}

#[test]
fn check_config_summarises_a_valid_file_and_lists_every_problem_of_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let check = |extra: &[&str]| {
        let output = router()
            .args(["--check-config", "-c", path.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        (output.status.code(), text(output.stdout), text(output.stderr))
    };
    std::fs::write(&path, config_one("g", "openai", "http://127.0.0.1:9", "")).unwrap();
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, format!("{}: valid: 1 deployment, 1 group\n", path.display()));
    assert!(stderr.is_empty(), "{stderr}");

    // Four problems in the file and a bad --proxy: all five, one per line, and no key.
    let broken = config_one("g", "openai", "ftp://127.0.0.1:9", "      timeout: -1")
        .replace("- name: m1\n", "- name: m1\n        - name: ghost\n")
        .replace(
            "api_key: sk-upstream-secret",
            "api_key: [sk-upstream-secret, sk-upstream-secret]",
        );
    std::fs::write(&path, broken).unwrap();
    let (code, stdout, stderr) = check(&["--proxy", "ftp://user:hunter2@proxy:1"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{stderr}");
    assert!(
        lines[0].starts_with("model_list[0].llm_params.timeout: -1 is out of range"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("model_list[0].llm_params.api_base: 'ftp://127.0.0.1:9'"),
        "{stderr}"
    );
    assert_eq!(
        lines[2],
        "model_list[0].llm_params.api_key[1]: the same key as api_key[0]"
    );
    assert_eq!(
        lines[3],
        "router_settings.model_groups[0].models[1].name: unknown model 'ghost'"
    );
    assert!(lines[4].starts_with("invalid --proxy"), "{stderr}");
    assert!(
        !stderr.contains("sk-upstream") && !stderr.contains("hunter2"),
        "{stderr}"
    );

    std::fs::write(&path, "model_list: [").unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not valid YAML"), "{stderr}");
    std::fs::remove_file(&path).unwrap();
    let (code, _, stderr) = check(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

/// The lines of a log file (none when it does not exist).
fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `path.n`, a rotated log file.
fn rotated(path: &std::path::Path, n: usize) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.{n}", path.display()))
}

/// Sends `n` chat requests through the router and checks each was answered.
fn chat_requests(runtime: &tokio::runtime::Runtime, router: &RouterProcess, n: usize) {
    runtime.block_on(async {
        for _ in 0..n {
            let r = http()
                .post(router.url("/v1/chat/completions"))
                .json(&serde_json::json!({"model":"g","messages":[{"role":"user","content":"hi"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
        }
    });
}

/// The real binary on an upstream that always answers, logging to `router.log` in its own directory with
/// `args` after `--log-file <path>`.
struct LoggingRouter {
    runtime: tokio::runtime::Runtime,
    /// Kept for as long as the router runs, as `dir` is.
    _upstream: MockUpstream,
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
    router: RouterProcess,
}

fn logging_router(args: &[&str]) -> LoggingRouter {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(MockUpstream::fixed(Reply::json(oai_answer("pong"))));
    let (dir, path) = config_file(&config_one("g", "openai", &upstream.base(), ""));
    let log = dir.path().join("router.log");
    let mut all = vec!["--log-file", log.to_str().unwrap()];
    all.extend_from_slice(args);
    let router = RouterProcess::start(&path, &all);
    LoggingRouter {
        runtime,
        _upstream: upstream,
        dir,
        log,
        router,
    }
}

/// `--log-file` with a tiny `--log-file-max-mb`: the file is rotated into `.1` (newest) to `.3`, no more are
/// kept, no file grows past the limit (by more than one line), and the lines are stderr's, uncoloured.
#[cfg(unix)]
#[test]
fn log_file_is_rotated_by_size_keeping_three_old_files() {
    let logging = logging_router(&["-l", "debug", "--log-file-max-mb", "0.001"]);
    let (runtime, log, router) = (logging.runtime, logging.log, logging.router);
    chat_requests(&runtime, &router, 30);
    let stderr = router.stop();
    let limit = (0.001f64 * 1024.0 * 1024.0) as u64;
    for file in [log.clone(), rotated(&log, 1), rotated(&log, 2), rotated(&log, 3)] {
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} missing or empty", file.display());
        let lines = log_lines(&file);
        assert!(size <= limit || lines.len() == 1, "{}: {size} bytes", file.display());
        for line in &lines {
            assert!(!line.contains('\x1b'), "colour in the file: {line:?}");
            // The listening line alone carries a time in the file and not on stderr.
            assert!(
                stderr.contains(line) || line.contains("listening on"),
                "not on stderr: {line}"
            );
        }
    }
    assert!(!rotated(&log, 4).exists(), "only three old files are kept");
    let newest = log_lines(&log);
    assert_eq!(newest.last(), stderr.last(), "the current file has the last line");
    let older = log_lines(&rotated(&log, 1));
    let at = |line: &String| stderr.iter().position(|l| l == line).unwrap();
    assert!(
        at(older.last().unwrap()) < at(&newest[0]),
        ".1 holds the lines just before"
    );
}

/// SIGHUP reopens the log file (after logrotate moved it, a new one is started) and still reloads the
/// config; the listening line went to the file too.
#[cfg(unix)]
#[test]
fn log_file_is_reopened_on_sighup() {
    let logging = logging_router(&["-l", "info"]);
    let (runtime, log, router) = (logging.runtime, logging.log, logging.router);
    let dir = &logging.dir;
    chat_requests(&runtime, &router, 1);
    let moved = dir.path().join("router.log.moved");
    std::fs::rename(&log, &moved).unwrap();
    router.signal("HUP");
    let started = Instant::now();
    while !log_lines(&log).iter().any(|l| l.contains("SIGHUP: log file reopened")) {
        assert!(started.elapsed() < Duration::from_secs(10), "no new log file");
        std::thread::sleep(Duration::from_millis(20));
    }
    chat_requests(&runtime, &router, 2);
    let stderr = router.stop();
    let old = log_lines(&moved);
    let new = log_lines(&log);
    let count = |lines: &[String], text: &str| lines.iter().filter(|l| l.contains(text)).count();
    assert!(
        old[0].contains(" INFO llm-router ") && old[0].contains("listening on http://127.0.0.1:"),
        "{old:#?}"
    );
    assert_eq!(count(&old, "request finished"), 1, "{old:#?}");
    assert_eq!(count(&new, "request finished"), 2, "{new:#?}");
    assert!(count(&new, "shutting down") == 1, "{new:#?}");
    let all = [old, new].concat();
    assert_eq!(count(&all, "SIGHUP: reloading config"), 1, "{all:#?}\n{stderr:#?}");
}

/// With `--log-format json` the file holds the same JSON objects as stderr, the listening line included.
#[cfg(unix)]
#[test]
fn json_log_file_has_the_objects_of_stderr() {
    let logging = logging_router(&["-l", "info", "--log-format", "json"]);
    let (runtime, log, router) = (logging.runtime, logging.log, logging.router);
    chat_requests(&runtime, &router, 2);
    let mut stderr = router.stop();
    let mut file = log_lines(&log);
    let objects: Vec<serde_json::Value> = file
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(objects[0]["message"].as_str().unwrap().contains("listening on http://"));
    let finished: Vec<_> = objects.iter().filter(|o| o["message"] == "request finished").collect();
    assert_eq!(finished.len(), 2, "{file:#?}");
    assert_eq!(finished[0]["status"], 200);
    // Two threads' lines may reach the two in a different order; the lines themselves are the same.
    stderr.sort();
    file.sort();
    assert_eq!(file, stderr);
}

#[test]
fn a_log_file_in_a_missing_directory_or_a_bad_size_is_refused_with_status_2() {
    let (dir, path) = config_file(&config_one("g", "openai", "http://127.0.0.1:9", ""));
    let missing = dir.path().join("no-such-dir/router.log");
    let output = router()
        .args([
            "-c",
            path.to_str().unwrap(),
            "-p",
            "0",
            "--log-file",
            missing.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("invalid --log-file") && stderr.contains("no-such-dir' does not exist"),
        "{stderr}"
    );
    for bad in ["0", "-1", "5000", "lots"] {
        let output = router()
            .args(["-c", path.to_str().unwrap(), "-p", "0"])
            .arg(format!("--log-file-max-mb={bad}"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("--log-file-max-mb"), "{bad}: {stderr}");
    }
}
