//! Talking to providers: the pooled HTTP clients (with the optional `--proxy`), the headers an upstream
//! request carries, and the errors an upstream call can end in.

mod call;
mod client;
mod connector;
mod http1;
pub mod mock;
mod origin;
mod pool;

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::protocol::{Protocol, anthropic};
use crate::routing::Deployment;
pub use call::{Redactor, UpstreamResponse, read_capped, read_limited, redact, request_id, retry_after, send};
use client::Client;
pub use client::{build_client, check_proxy, endpoint_target};
pub use origin::{Endpoint, Origin, SendError, UpstreamBody};
pub use pool::ClientPool;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid --proxy '{0}': expected socks5://, socks5h://, http:// or https:// followed by host:port")]
    BadProxy(String),
}

/// Client request headers that are passed to an Anthropic upstream, with the value every deployment's
/// template holds for each unless its `rewrite_header` decides it. Everything else (credentials, cookies,
/// hop-by-hop headers, SDK telemetry) stays with the router.
/// As header names, not text: looking a header up by text parses the name every time.
const FORWARDED_TO_ANTHROPIC: [(HeaderName, Option<&str>); 2] = [
    (
        HeaderName::from_static("anthropic-version"),
        Some(anthropic::DEFAULT_VERSION),
    ),
    (HeaderName::from_static("anthropic-beta"), None),
];

/// What every request to a deployment carries, built once with the deployment: JSON, the credential (or the
/// `Authorization: Basic` of credentials in `api_base`), Anthropic's default version, and reqwest's one
/// default header (`Accept: */*`), kept so that upstreams see the same request as before.
pub fn header_template(
    protocol: Protocol,
    credential: Option<&HeaderValue>,
    url_authorization: Option<&HeaderValue>,
    rewrites: &[(HeaderName, Option<HeaderValue>)],
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    let credential_header = match protocol {
        Protocol::OpenAi | Protocol::Responses => header::AUTHORIZATION,
        Protocol::Anthropic => HeaderName::from_static("x-api-key"),
        Protocol::Gemini => HeaderName::from_static("x-goog-api-key"),
    };
    if let Some(credential) = credential {
        headers.insert(credential_header, credential.clone());
    }
    if let Some(authorization) = url_authorization {
        headers
            .entry(header::AUTHORIZATION)
            .or_insert_with(|| authorization.clone());
    }
    if protocol == Protocol::Anthropic {
        for (name, default) in &FORWARDED_TO_ANTHROPIC {
            if let Some(value) = default {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
    }
    // `rewrite_header` last: it may replace or remove any of the above.
    for (name, value) in rewrites {
        match value {
            Some(value) => headers.insert(name, value.clone()),
            None => headers.remove(name),
        };
    }
    headers
}

/// The headers of an upstream request with key `key` of the deployment's pool: its template, and for
/// Anthropic the client's version and beta headers, unless the deployment's `rewrite_header` decides them.
/// The template itself, not a copy, when the client adds nothing: copying a header map costs more than
/// writing it out.
pub fn request_headers<'a>(deployment: &'a Deployment, key: usize, client: &HeaderMap) -> Cow<'a, HeaderMap> {
    let mut headers = Cow::Borrowed(deployment.headers.get(key).unwrap_or(&deployment.headers[0]));
    if deployment.protocol == Protocol::Anthropic {
        let rewritten = |name: &HeaderName| deployment.spec.rewrite_header.iter().any(|(n, _)| n == name.as_str());
        for (name, default) in FORWARDED_TO_ANTHROPIC.iter().filter(|(name, _)| !rewritten(name)) {
            let values = client.get_all(name);
            // Nothing sent, or the template's own value (the usual `anthropic-version`): nothing changes.
            let mut sent = values.iter();
            let unchanged = match sent.next() {
                None => true,
                Some(value) => default.is_some_and(|default| value == default) && sent.next().is_none(),
            };
            if unchanged {
                continue;
            }
            let headers = headers.to_mut();
            headers.remove(name);
            for value in values {
                headers.append(name, value.clone());
            }
        }
    }
    headers
}

/// The relayed subset of an upstream answer's headers. The request id goes out under both names: the
/// Anthropic SDK reads `request-id`, the OpenAI SDK `x-request-id`, whichever the upstream used.
pub fn relayed_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut relayed: HeaderMap = upstream
        .iter()
        .filter(|(name, _)| is_relayed_response_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    let id = relayed.get(REQUEST_ID).or_else(|| relayed.get(X_REQUEST_ID)).cloned();
    if let Some(id) = id {
        relayed.entry(REQUEST_ID).or_insert(id.clone());
        relayed.entry(X_REQUEST_ID).or_insert(id);
    }
    relayed
}

/// Upstream response headers the client gets back (same-protocol): rate limits, retry hints, request ids.
/// Never `set-cookie`, `content-length` or `content-encoding`: bodies may change size.
pub fn is_relayed_response_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "retry-after" | "retry-after-ms" | "request-id" | "x-request-id" | "openai-processing-ms"
    ) || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// How an upstream call failed before a response could be relayed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream '{deployment}' is unreachable: {reason}")]
    Connect { deployment: String, reason: String },
    #[error("upstream '{deployment}' timed out")]
    Timeout { deployment: String },
    #[error("upstream '{deployment}' failed: {reason}")]
    Transport { deployment: String, reason: String },
}

impl UpstreamError {
    /// Classifies a client error. Its messages carry no URL (which may reveal internal hosts) and no proxy
    /// credentials.
    pub fn from_send(deployment: &str, error: &SendError) -> Self {
        let deployment = deployment.to_owned();
        if is_timeout(error) {
            return UpstreamError::Timeout { deployment };
        }
        let reason = root_cause(error);
        match error {
            SendError::Connect(_) => UpstreamError::Connect { deployment, reason },
            SendError::Exchange(_) => UpstreamError::Transport { deployment, reason },
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::Timeout { .. } => 504,
            UpstreamError::Connect { .. } | UpstreamError::Transport { .. } => 502,
        }
    }
}

/// Whether a timed-out connect (or a timed-out read somewhere below) caused the error.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// An error with its innermost cause, e.g. "error reading a body from connection: unexpected end of file".
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let root = root_cause(error);
    let outer = error.to_string();
    if outer == root {
        outer
    } else {
        format!("{outer}: {root}")
    }
}

/// The innermost error message (the client's own is a generic "client error (Connect)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::routing::Snapshot;

    fn deployment(api_type: &str) -> std::sync::Arc<Deployment> {
        deployment_with(api_type, "")
    }

    /// A deployment with `extra` keys in its `llm_params` (written as a flow mapping's members).
    fn deployment_with(api_type: &str, extra: &str) -> std::sync::Arc<Deployment> {
        let text = format!(
            "model_list:\n  - model_name: m\n    llm_params: {{api_type: {api_type}, model: up, api_base: 'http://127.0.0.1:9/v1', api_key: sk-secret{extra}}}\n"
        );
        let pool = ClientPool::new(None).unwrap();
        let snapshot = Snapshot::build(
            crate::config::parse(&text, Path::new("c")).unwrap(),
            None,
            &pool,
            &crate::metrics::Metrics::new(),
        );
        snapshot.group("m").unwrap().members[0].clone()
    }

    fn client_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer router-token"));
        h.insert("x-api-key", HeaderValue::from_static("router-token"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        h.insert("anthropic-beta", HeaderValue::from_static("tools-2024"));
        h.insert("openai-organization", HeaderValue::from_static("org"));
        h
    }

    #[test]
    fn openai_upstream_gets_bearer_and_nothing_of_the_client() {
        let d = deployment("openai");
        let h = request_headers(&d, 0, &client_headers());
        assert_eq!(h.get("authorization").unwrap(), "Bearer sk-secret");
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(h.get("accept").unwrap(), "*/*");
        assert_eq!(h.len(), 3, "{h:?}");
    }

    #[test]
    fn anthropic_upstream_gets_key_version_and_beta() {
        let d = deployment("anthropic");
        let h = request_headers(&d, 0, &client_headers());
        assert_eq!(h.get("x-api-key").unwrap(), "sk-secret");
        assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
        assert_eq!(h.get("anthropic-beta").unwrap(), "tools-2024");
        assert!(h.get("authorization").is_none() && h.get("cookie").is_none() && h.get("connection").is_none());
        let mut client = client_headers();
        client.insert("anthropic-version", HeaderValue::from_static("2024-01-01"));
        let h = request_headers(&d, 0, &client);
        assert_eq!(
            h.get_all("anthropic-version").iter().collect::<Vec<_>>(),
            ["2024-01-01"]
        );
        // A client that sends only the template's own version gets the template itself, not a copy.
        let mut client = HeaderMap::new();
        client.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let h = request_headers(&d, 0, &client);
        assert!(matches!(h, Cow::Borrowed(_)));
        assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
        client.append("anthropic-version", HeaderValue::from_static("2024-01-01"));
        let h = request_headers(&d, 0, &client);
        assert_eq!(
            h.get_all("anthropic-version").iter().collect::<Vec<_>>(),
            ["2023-06-01", "2024-01-01"]
        );
    }

    #[test]
    fn rewrite_header_sets_replaces_and_removes() {
        let d = deployment_with(
            "anthropic",
            r#", rewrite_header: {X-Tenant: acme, x-api-key: sk-other, anthropic-beta: null, anthropic-version: "2025-01-01"}"#,
        );
        let h = request_headers(&d, 0, &client_headers());
        assert_eq!(h.get("x-tenant").unwrap(), "acme");
        assert_eq!(h.get("x-api-key").unwrap(), "sk-other", "the credential header too");
        assert!(
            h.get("anthropic-beta").is_none(),
            "null removes even what the client sent"
        );
        assert_eq!(
            h.get_all("anthropic-version").iter().collect::<Vec<_>>(),
            ["2025-01-01"],
            "the deployment's value wins over the client's"
        );
        assert!(h.get("authorization").is_none() && h.get("cookie").is_none());
        assert!(h.get("x-tenant").unwrap().is_sensitive());
        let d = deployment_with(
            "openai",
            ", rewrite_header: '{\"authorization\": null, \"api-key\": \"k\"}'",
        );
        let h = request_headers(&d, 0, &client_headers());
        assert!(h.get("authorization").is_none());
        assert_eq!(h.get("api-key").unwrap(), "k");
    }

    #[test]
    fn request_id_goes_out_under_both_names() {
        let mut upstream = HeaderMap::new();
        upstream.insert("x-request-id", HeaderValue::from_static("req_1"));
        upstream.insert("set-cookie", HeaderValue::from_static("a=b"));
        let relayed = relayed_headers(&upstream);
        assert_eq!(relayed.get("request-id").unwrap(), "req_1");
        assert_eq!(relayed.get("x-request-id").unwrap(), "req_1");
        assert!(relayed.get("set-cookie").is_none());
    }

    #[test]
    fn response_header_rules() {
        for name in [
            "retry-after",
            "x-request-id",
            "anthropic-ratelimit-requests-limit",
            "x-ratelimit-remaining-tokens",
        ] {
            assert!(is_relayed_response_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "set-cookie",
            "content-length",
            "content-encoding",
            "connection",
            "server",
        ] {
            assert!(!is_relayed_response_header(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn proxy_urls() {
        use client::parse_proxy;
        use std::time::Duration;
        for ok in [
            "socks5://127.0.0.1:1080",
            "socks5h://user:pw@h:1",
            "http://127.0.0.1:3128",
            "https://p:443",
        ] {
            assert!(parse_proxy(ok).is_ok(), "{ok}");
        }
        for bad in ["ftp://h:1", "127.0.0.1:1080", "socks5://", ""] {
            assert!(parse_proxy(bad).is_err(), "{bad}");
        }
        let message = parse_proxy("ftp://user:hunter2@h:1").unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(build_client(Some("socks5://127.0.0.1:1080"), Duration::from_secs(1)).is_ok());
    }
}
