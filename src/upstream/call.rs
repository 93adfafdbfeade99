//! One HTTP exchange with an upstream: sending within the deployment's deadline, reading bodies with limits,
//! and the hints an answer carries (request id, `Retry-After`).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::time::Instant;

use super::{Endpoint, UpstreamBody, UpstreamError, describe, request_headers};
use crate::body::ReadError;
use crate::config::Secret;
use crate::routing::Deployment;

/// An upstream answer; its body is read as it arrives. Dropping it (or its body) closes the connection
/// unless the body was read to its end.
pub type UpstreamResponse = http::Response<UpstreamBody>;

/// POSTs `body` to `endpoint` with the deployment's headers for key `key` of its pool; the response headers must arrive by `deadline`.
pub async fn send(
    deployment: &Deployment,
    key: usize,
    endpoint: &Endpoint,
    client_headers: &HeaderMap,
    body: Vec<u8>,
    deadline: Instant,
) -> Result<UpstreamResponse, UpstreamError> {
    let headers = request_headers(deployment, key, client_headers);
    let sent = deployment.origin.send(endpoint, &headers, Bytes::from(body));
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(result) => result.map_err(|e| UpstreamError::from_send(&deployment.name, &e)),
        Err(_) => Err(UpstreamError::Timeout {
            deployment: deployment.name.clone(),
        }),
    }
}

/// Reads a whole upstream body by `deadline`, refusing one larger than `limit`. A body that stalls is a
/// timeout like a slow first byte, so the attempt fails over instead of holding the client forever.
pub async fn read_limited(
    deployment: &Deployment,
    response: UpstreamResponse,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamError> {
    let broken = |reason: String| UpstreamError::Transport {
        deployment: deployment.name.clone(),
        reason,
    };
    let body = response.into_body();
    if body.size_hint().lower() > limit as u64 {
        return Err(broken(format!("answer exceeds {limit} bytes")));
    }
    match tokio::time::timeout_at(deadline, crate::body::read_whole(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(ReadError::TooLarge)) => Err(broken(format!("answer exceeds {limit} bytes"))),
        Ok(Err(ReadError::Body(error))) => Err(broken(format!("answer could not be read: {}", describe(&*error)))),
        Err(_) => Err(UpstreamError::Timeout {
            deployment: deployment.name.clone(),
        }),
    }
}

/// Reads at most `cap` bytes of an upstream body by `deadline` (error bodies: the start is what matters, and
/// a body cut by a broken connection is still worth relaying). Only a stall is an error.
pub async fn read_capped(
    deployment: &Deployment,
    response: UpstreamResponse,
    cap: usize,
    deadline: Instant,
) -> Result<Vec<u8>, UpstreamError> {
    let mut stream = response.into_body();
    let mut body = Vec::new();
    let read = async {
        while let Some(Ok(frame)) = stream.frame().await {
            let Ok(chunk) = frame.into_data() else { continue };
            let room = cap - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == cap {
                break;
            }
        }
    };
    match tokio::time::timeout_at(deadline, read).await {
        Ok(()) => Ok(body),
        Err(_) => Err(UpstreamError::Timeout {
            deployment: deployment.name.clone(),
        }),
    }
}

/// The upstream's request id (`request-id` on Anthropic, `x-request-id` on most OpenAI-compatible hosts).
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok().map(str::to_owned))
}

/// How long the upstream asks us to wait: `retry-after-ms`, else `retry-after` in (fractional) seconds.
/// HTTP dates are not honoured; the normal cooldown applies instead.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let seconds = number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))?;
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// A deployment's key with its searcher, built once per key when the config is loaded: making the searcher
/// costs more than running it over a stream's output.
pub struct Redactor {
    secret: Secret,
    finder: memchr::memmem::Finder<'static>,
}

impl Redactor {
    /// `None` for a key too short to scrub (see [`redact`]).
    pub fn new(secret: &Secret) -> Option<Self> {
        let key = secret.expose().as_bytes();
        (key.len() >= MIN_REDACTED).then(|| Self {
            secret: secret.clone(),
            finder: memchr::memmem::Finder::new(key).into_owned(),
        })
    }

    /// `bytes` with the key replaced wherever it appears.
    pub fn redact(&self, bytes: Bytes) -> Bytes {
        match self.finder.find(&bytes) {
            None => bytes,
            Some(_) => Bytes::from(redact(bytes.to_vec(), Some(self.secret.expose()))),
        }
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The searcher's `Debug` would print the key.
        f.debug_struct("Redactor")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// Keys shorter than this are not scrubbed: they would match ordinary text.
const MIN_REDACTED: usize = 4;

/// Replaces every occurrence of `secret` in an upstream body: some hosts echo the API key in their errors.
pub fn redact(body: Vec<u8>, secret: Option<&str>) -> Vec<u8> {
    let Some(secret) = secret.filter(|s| s.len() >= MIN_REDACTED) else {
        return body;
    };
    let secret = secret.as_bytes();
    if memchr::memmem::find(&body, secret).is_none() {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = &body[..];
    while let Some(at) = memchr::memmem::find(rest, secret) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"[redacted]");
        rest = &rest[at + secret.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(2500)));
        h.insert("retry-after-ms", HeaderValue::from_static("300"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(300)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn redaction() {
        let body = br#"{"error":"bad key sk-abc123, really sk-abc123"}"#.to_vec();
        assert_eq!(
            redact(body.clone(), Some("sk-abc123")),
            br#"{"error":"bad key [redacted], really [redacted]"}"#
        );
        assert_eq!(redact(body.clone(), None), body);
        assert_eq!(redact(body.clone(), Some("zzzz")), body);
    }

    #[test]
    fn a_redactor_scrubs_its_key_and_never_prints_it() {
        let redactor = Redactor::new(&Secret::new("sk-abc123".into())).unwrap();
        let out = redactor.redact(Bytes::from_static(b"data: {\"error\":\"key sk-abc123\"}\n\n"));
        assert_eq!(&out[..], b"data: {\"error\":\"key [redacted]\"}\n\n");
        let clean = Bytes::from_static(b"data: {}\n\n");
        assert_eq!(
            redactor.redact(clean.clone()).as_ptr(),
            clean.as_ptr(),
            "nothing found, nothing copied"
        );
        assert!(!format!("{redactor:?}").contains("abc123"));
        assert!(
            Redactor::new(&Secret::new("abc".into())).is_none(),
            "too short to scrub"
        );
    }

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("r1"));
        assert_eq!(request_id(&h).as_deref(), Some("r1"));
        h.insert("request-id", HeaderValue::from_static("r0"));
        assert_eq!(request_id(&h).as_deref(), Some("r0"));
    }
}
