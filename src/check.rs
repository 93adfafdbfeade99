//! `llm-router --check`: loads the config as startup does, sends one tiny non-streamed request to every
//! deployment in its own protocol, and reports who answered.
//!
//! A probe goes through the same pieces as a client request of the deployment's protocol: the body is
//! edited with the deployment's overrides (`model`, `rewrite_body`), sent with its headers (credential,
//! `rewrite_header`) over its pooled connection, and an error answer is redacted and rendered as the router
//! would render it. So a deployment that passes here is one the router can reach with these credentials.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::config::{self, ConfigError};
use crate::metrics::Metrics;
use crate::protocol::Protocol;
use crate::protocol::convert::ConvertContext;
use crate::protocol::convert::error::StreamStartError;
use crate::protocol::raw_body::RawBody;
use crate::routing::{Deployment, Snapshot};
use crate::server::error::same_protocol_error_body;
use crate::upstream::{self, ClientPool, UpstreamError};

/// A probe waits at most this long for the whole answer (less when the deployment's own timeout is shorter).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Probes in flight at once: enough to check a long `model_list` quickly without a burst at one provider.
pub const CONCURRENCY: usize = 8;
/// An answer to a one-token prompt is small; anything past this is not read.
const MAX_ANSWER: usize = 1024 * 1024;
/// Of an error body, only the start is read (its message is near the top).
const MAX_ERROR: usize = 64 * 1024;
/// The table's message column is cut here.
const MAX_MESSAGE: usize = 160;

/// Why `--check` could not probe at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
}

/// What one deployment (one key of a key pool) did with its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its name, with `key #N` for a key of a pool.
    pub deployment: String,
    pub api_type: &'static str,
    pub status: ProbeStatus,
    /// From sending the request to the end of the answer (zero when nothing was sent).
    pub latency: Duration,
    /// Why it failed, without secrets and cut to one short line; empty when it answered.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeStatus {
    /// A 2xx answer, read to its end.
    Ok,
    /// An error status from the upstream.
    Http(u16),
    /// No connection (refused, DNS, TLS, proxy).
    Unreachable,
    /// No whole answer in time.
    Timeout,
    /// Connected, but the exchange broke.
    Failed,
    /// Not probed, and why.
    Skipped(&'static str),
}

impl ProbeStatus {
    /// Whether this outcome fails the check. A skipped deployment does not: there was nothing to send.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ProbeStatus::Ok | ProbeStatus::Skipped(_))
    }
}

impl std::fmt::Display for ProbeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeStatus::Ok => f.write_str("ok"),
            ProbeStatus::Http(status) => write!(f, "{status}"),
            ProbeStatus::Unreachable => f.write_str("unreachable"),
            ProbeStatus::Timeout => f.write_str("timeout"),
            ProbeStatus::Failed => f.write_str("failed"),
            ProbeStatus::Skipped(why) => write!(f, "skipped ({why})"),
        }
    }
}

/// `--check-config`: the config file (and `--proxy`) validated as startup would, without starting: a
/// one-line summary, or every problem, each naming its place in the file (never a key's value).
pub fn check_config(path: &Path, proxy: Option<&str>) -> Result<String, Vec<String>> {
    let shown = path.display();
    // Its message shows the proxy without credentials.
    let proxy_problem = proxy.and_then(|proxy| upstream::check_proxy(proxy).err().map(|e| e.to_string()));
    let config = match std::fs::read_to_string(path) {
        Err(error) => Err(vec![format!("cannot read config file {shown}: {error}")]),
        Ok(text) => config::parse(&text, path).map_err(|error| match error {
            ConfigError::Invalid { problems, .. } => problems,
            other => vec![other.to_string()],
        }),
    };
    match (config, proxy_problem) {
        (Ok(config), None) => {
            let rules = match config.rules.len() {
                0 => String::new(),
                n => format!(", {n} routing rule{}", plural(n)),
            };
            let keys = match config.client_keys.len() {
                0 => String::new(),
                n => format!(", {n} client key{}", plural(n)),
            };
            let redis = if config.redis_url.is_some() {
                ", limits shared through Redis"
            } else {
                ""
            };
            let (d, g) = (config.deployments.len(), config.groups.len());
            Ok(format!(
                "{shown}: valid: {d} deployment{}, {g} group{}{rules}{keys}{redis}",
                plural(d),
                plural(g)
            ))
        }
        (Ok(_), Some(problem)) => Err(vec![problem]),
        (Err(mut problems), problem) => {
            problems.extend(problem);
            Err(problems)
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Reads and validates the config exactly as startup does, and builds its snapshot (with `--proxy`).
pub fn load(path: &Path, proxy: Option<String>) -> Result<Snapshot, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = config::parse(&text, path)?;
    let pool = ClientPool::new(proxy)?;
    Ok(Snapshot::build(config, None, &pool, &Metrics::new()))
}

/// Probes every deployment, every key of a key pool, [`CONCURRENCY`] at a time; the results are in
/// `model_list` order.
pub async fn probe_all(snapshot: &Snapshot) -> Vec<Probe> {
    let probes = snapshot
        .deployments()
        .iter()
        .flat_map(|d| (0..d.spec.api_keys.len().max(1)).map(move |key| (&**d, key)));
    futures_util::stream::iter(probes)
        .map(|(deployment, key)| probe(deployment, key))
        .buffered(CONCURRENCY)
        .collect()
        .await
}

/// Sends one tiny request to `deployment` with key `key` of its pool, and reports how it answered.
pub async fn probe(deployment: &Deployment, key: usize) -> Probe {
    let mut probe = Probe {
        deployment: match deployment.has_key_pool() {
            true => format!("{} key #{}", deployment.name, key + 1),
            false => deployment.name.clone(),
        },
        api_type: deployment.spec.api_type(),
        status: ProbeStatus::Ok,
        latency: Duration::ZERO,
        message: String::new(),
    };
    // A glob `model` passes the client's model through: there is no model of its own to ask.
    if deployment.spec.model_pattern.is_some() {
        probe.status = ProbeStatus::Skipped("model pattern");
        return probe;
    }
    let body = probe_body(deployment);
    let timeout = PROBE_TIMEOUT.min(deployment.spec.timeouts.first_byte);
    let started = Instant::now();
    let deadline = started + timeout;
    let (status, message) = exchange(deployment, key, body, deadline).await;
    probe.latency = started.elapsed();
    probe.status = status;
    probe.message = one_short_line(&message);
    probe
}

/// The request and its answer, as a status and an error message.
async fn exchange(deployment: &Deployment, key: usize, body: Vec<u8>, deadline: Instant) -> (ProbeStatus, String) {
    let endpoint = &deployment.endpoints.generate;
    let sent = match &deployment.spec.mock {
        Some(mock) => {
            let ctx = ConvertContext {
                client_model: &deployment.name,
                upstream_model: &deployment.upstream_model,
                options: &deployment.spec.options,
                created: 0,
                response_id: "0",
                signing_key: &[],
                route_stream: false,
            };
            upstream::mock::answer(&deployment.name, mock, deployment.protocol, &body, &ctx, deadline).await
        }
        None => upstream::send(deployment, key, endpoint, &HeaderMap::new(), body, deadline).await,
    };
    let response = match sent {
        Ok(response) => response,
        Err(error) => return failed(&error),
    };
    let status = response.status();
    if status.is_success() {
        return match upstream::read_limited(deployment, response, MAX_ANSWER, deadline).await {
            Ok(_) => (ProbeStatus::Ok, String::new()),
            Err(error) => failed(&error),
        };
    }
    let body = match upstream::read_capped(deployment, response, MAX_ERROR, deadline).await {
        Ok(body) => body,
        Err(error) => return failed(&error),
    };
    let body = deployment.redact(body);
    (
        ProbeStatus::Http(status.as_u16()),
        error_message(deployment.protocol, status, &body),
    )
}

fn failed(error: &UpstreamError) -> (ProbeStatus, String) {
    let status = match error {
        UpstreamError::Connect { .. } => ProbeStatus::Unreachable,
        UpstreamError::Timeout { .. } => ProbeStatus::Timeout,
        UpstreamError::Transport { .. } => ProbeStatus::Failed,
    };
    (status, error.to_string())
}

/// The smallest valid request of the deployment's protocol: one user message, "ping", with the least output
/// the protocol allows, non-streamed; then the deployment's overrides, as on a same-protocol request.
fn probe_body(deployment: &Deployment) -> Vec<u8> {
    let model = &deployment.upstream_model;
    let body = match deployment.protocol {
        Protocol::OpenAi => serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
            "stream": false,
        }),
        Protocol::Anthropic => serde_json::json!({
            "model": model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
        }),
        // 16 is the Responses API's least `max_output_tokens`; `store: false` leaves no stored response behind.
        Protocol::Responses => serde_json::json!({
            "model": model,
            "input": "ping",
            "max_output_tokens": 16,
            "store": false,
        }),
        // The model is in the URL.
        Protocol::Gemini => serde_json::json!({
            "contents": [{"role": "user", "parts": [{"text": "ping"}]}],
            "generationConfig": {"maxOutputTokens": 1},
        }),
    };
    let bytes = body.to_string().into_bytes();
    match RawBody::parse(&bytes) {
        Ok(raw) => raw.write_with(&deployment.override_refs()),
        // Cannot happen: the body was just written as a JSON object.
        Err(_) => bytes,
    }
}

/// An upstream's error body as the message a client of the same protocol would read: wrapped into the
/// protocol's error shape if it is not in it (an HTML page from a proxy), then taken as OpenAI's shape.
fn error_message(protocol: Protocol, status: StatusCode, body: &[u8]) -> String {
    let shaped = same_protocol_error_body(protocol, status, body);
    let error = StreamStartError {
        upstream: protocol,
        status: status.as_u16(),
        body: shaped,
    }
    .to_client_error(Protocol::OpenAi, None, None);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&error.body).ok();
    match parsed.as_ref().and_then(|v| v["error"]["message"].as_str()) {
        Some(message) => message.to_owned(),
        None => String::from_utf8_lossy(&error.body).into_owned(),
    }
}

/// `text` on one line, cut to [`MAX_MESSAGE`] characters. Control characters are dropped: an upstream's
/// text must not move the terminal's cursor or change its colours.
fn one_short_line(text: &str) -> String {
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match line.char_indices().nth(MAX_MESSAGE) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// The results as an aligned table with a header row.
pub fn table(probes: &[Probe]) -> String {
    let header = ["DEPLOYMENT", "API_TYPE", "STATUS", "LATENCY_MS", "ERROR"].map(str::to_owned);
    let rows: Vec<[String; 5]> = probes
        .iter()
        .map(|p| {
            let latency = match p.status {
                ProbeStatus::Skipped(_) => "-".to_owned(),
                _ => p.latency.as_millis().to_string(),
            };
            [
                p.deployment.clone(),
                p.api_type.to_owned(),
                p.status.to_string(),
                latency,
                p.message.clone(),
            ]
        })
        .collect();
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (width, cell) in widths.iter().zip(row) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
        }
        line.push_str(&row[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(params: &str) -> Snapshot {
        let text = format!(
            "model_list:\n  - model_name: m\n    llm_params: {{{params}, api_base: 'http://127.0.0.1:9', api_key: sk-secret-key}}\n"
        );
        let config = config::parse(&text, Path::new("c")).unwrap();
        Snapshot::build(config, None, &ClientPool::new(None).unwrap(), &Metrics::new())
    }

    fn body(params: &str) -> serde_json::Value {
        let snapshot = snapshot(params);
        serde_json::from_slice(&probe_body(&snapshot.deployments()[0])).unwrap()
    }

    #[test]
    fn each_protocol_gets_its_smallest_request_with_the_deployments_overrides() {
        assert_eq!(
            body("api_type: openai, model: gpt-x"),
            serde_json::json!({"model":"gpt-x","messages":[{"role":"user","content":"ping"}],"max_tokens":1,"stream":false})
        );
        assert_eq!(body("api_type: anthropic, model: claude-x")["max_tokens"], 1);
        assert_eq!(body("api_type: responses, model: r")["max_output_tokens"], 16);
        let gemini = body("api_type: gemini, model: gemini-x");
        assert_eq!(gemini["generationConfig"]["maxOutputTokens"], 1);
        assert!(gemini.get("model").is_none(), "{gemini}");
        let rewritten = body("api_type: openai, model: gpt-x, rewrite_body: {max_tokens: 2, seed: 7}");
        assert_eq!(
            (rewritten["max_tokens"].clone(), rewritten["seed"].clone()),
            (2.into(), 7.into())
        );
    }

    #[tokio::test]
    async fn a_model_pattern_is_skipped_without_a_request() {
        let snapshot = snapshot("api_type: gemini, model: 'gemini-*'");
        let probe = probe(&snapshot.deployments()[0], 0).await;
        assert_eq!(probe.status, ProbeStatus::Skipped("model pattern"));
        assert!(!probe.status.is_failure());
        assert_eq!(probe.status.to_string(), "skipped (model pattern)");
    }

    #[test]
    fn error_bodies_become_one_short_message_in_any_shape() {
        let unauthorized = StatusCode::UNAUTHORIZED;
        let anthropic = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            error_message(Protocol::Anthropic, unauthorized, anthropic),
            "invalid x-api-key"
        );
        let google = br#"{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            error_message(Protocol::Gemini, StatusCode::FORBIDDEN, google),
            "API key not valid"
        );
        let html = b"<html>\n<body>Bad Gateway</body>\n</html>";
        let message = one_short_line(&error_message(Protocol::OpenAi, StatusCode::BAD_GATEWAY, html));
        assert_eq!(
            message,
            "upstream returned HTTP 502: <html> <body>Bad Gateway</body> </html>"
        );
        assert_eq!(one_short_line("red \x1b[31malert\x07"), "red [31malert");
        let long = "x".repeat(500);
        assert_eq!(one_short_line(&long).chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn the_table_is_aligned() {
        let probe = |name: &str, status, ms, message: &str| Probe {
            deployment: name.into(),
            api_type: "openai",
            status,
            latency: Duration::from_millis(ms),
            message: message.into(),
        };
        let text = table(&[
            probe("a", ProbeStatus::Ok, 12, ""),
            probe("long-name", ProbeStatus::Http(401), 3, "bad key"),
            probe("g", ProbeStatus::Skipped("model pattern"), 0, ""),
        ]);
        assert_eq!(
            text,
            "DEPLOYMENT  API_TYPE  STATUS                   LATENCY_MS  ERROR\n\
             a           openai    ok                       12\n\
             long-name   openai    401                      3           bad key\n\
             g           openai    skipped (model pattern)  -\n"
        );
    }
}
