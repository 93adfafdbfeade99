//! Reading a client's request: the body within the size limit, and the few fields the router itself needs.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use super::error::ApiError;
use crate::body::ReadError;
use crate::protocol::Protocol;
use crate::protocol::raw_body::{self, RawBody};

/// Reads the whole body within `timeout`, answering 413 beyond `limit` (checked against `Content-Length`
/// first, so an oversized upload is refused before it is read) and 408 when it does not arrive in time, so a
/// client cannot hold a request open by trickling its body.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    match tokio::time::timeout(timeout, crate::body::read_whole(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(ReadError::TooLarge)) => Err(ApiError::body_too_large(limit)),
        Ok(Err(ReadError::Body(e))) => Err(ApiError::bad_request(format!("cannot read request body: {e}"))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s (router_settings.body_read_timeout)",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// The few fields the router itself reads from a client body; the rest stays raw.
pub struct ClientRequest<'a> {
    bytes: &'a [u8],
    protocol: Protocol,
    pub model: Cow<'a, str>,
    /// The route asked for a stream (Gemini's `:streamGenerateContent`; other protocols say so in the body).
    pub route_stream: bool,
    /// The body split into its top-level fields and checked, on first use: only a same-protocol attempt
    /// needs it (a converted one is checked and read by the client protocol's decoder).
    raw: OnceLock<Result<RawBody<'a>, ApiError>>,
}

impl<'a> ClientRequest<'a> {
    /// Finds `model`. A plain string `model` is all routing needs; anything else is checked in full now,
    /// for a precise error.
    pub fn parse(bytes: &'a [u8], protocol: Protocol) -> Result<Self, ApiError> {
        if let Some(model) = raw_body::peek_str(bytes, "model") {
            return Ok(Self {
                bytes,
                protocol,
                model: Cow::Borrowed(model),
                route_stream: false,
                raw: OnceLock::new(),
            });
        }
        let raw = check(bytes, protocol)?;
        let model = match raw.decode::<Cow<'a, str>>("model") {
            Ok(Some(model)) => model,
            Ok(None) => return Err(ApiError::bad_request("model: field is required").with_param("model")),
            Err(_) => return Err(ApiError::bad_request("model: must be a string").with_param("model")),
        };
        Ok(Self {
            bytes,
            protocol,
            model,
            route_stream: false,
            raw: OnceLock::from(Ok(raw)),
        })
    }

    /// A Gemini request: the model (the group) and whether to stream are in its path,
    /// `…/models/{model}:generateContent` or `:streamGenerateContent`.
    pub fn gemini(bytes: &'a [u8], uri: &http::Uri) -> Result<Self, ApiError> {
        let Some((encoded, method)) = super::models::model_in_path(uri.path()) else {
            return Err(ApiError::bad_request("the path names no model"));
        };
        let route_stream = method == Some("streamGenerateContent");
        // Without `alt=sse` Google streams one JSON array, written as it grows; every Gemini SDK and the
        // CLI ask for server-sent events, the one framing the router writes.
        let sse = uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
        if route_stream && !sse {
            return Err(ApiError::bad_request(
                "The router streams only as server-sent events: add `alt=sse` to the query string.",
            ));
        }
        let Ok(model) = percent_encoding::percent_decode_str(encoded).decode_utf8() else {
            return Err(ApiError::bad_request("the model in the path is not valid UTF-8"));
        };
        Ok(Self {
            bytes,
            protocol: Protocol::Gemini,
            model: Cow::Owned(model.into_owned()),
            route_stream,
            raw: OnceLock::new(),
        })
    }

    /// The body's top-level fields, once checked (see [`check`]).
    pub fn raw(&self) -> Result<&RawBody<'a>, ApiError> {
        self.raw
            .get_or_init(|| check(self.bytes, self.protocol))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Checks what the router itself relies on: a JSON object, a boolean `stream` if present, and the
/// conversation (`messages`, or a Responses request's `input`).
fn check(bytes: &[u8], protocol: Protocol) -> Result<RawBody<'_>, ApiError> {
    let body =
        RawBody::parse(bytes).map_err(|e| ApiError::bad_request(format!("request body is not a JSON object: {e}")))?;
    if body.decode::<bool>("stream").is_err() {
        return Err(ApiError::bad_request("stream: must be a boolean").with_param("stream"));
    }
    let (field, shape) = match protocol {
        Protocol::Responses => ("input", "a string or an array"),
        Protocol::OpenAi | Protocol::Anthropic => ("messages", "an array"),
        Protocol::Gemini => ("contents", "an array"),
    };
    match body.get(field) {
        None => Err(ApiError::bad_request(format!("{field}: field is required")).with_param(field)),
        Some(raw) if raw.starts_with('[') => Ok(body),
        Some(raw) if protocol == Protocol::Responses && raw.starts_with('"') => Ok(body),
        Some(_) => Err(ApiError::bad_request(format!("{field}: must be {shape}")).with_param(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_validation() {
        let err = |body: &str| {
            let request = ClientRequest::parse(body.as_bytes(), Protocol::OpenAi);
            request.and_then(|r| r.raw().map(|_| ())).err().unwrap()
        };
        assert_eq!(err("{").status, StatusCode::BAD_REQUEST);
        assert_eq!(err("[]").status, StatusCode::BAD_REQUEST);
        assert_eq!(err(r#"{"messages":[]}"#).param.as_deref(), Some("model"));
        assert_eq!(err(r#"{"model":1,"messages":[]}"#).param.as_deref(), Some("model"));
        assert_eq!(
            err(r#"{"model":"m","messages":[],"stream":"yes"}"#).param.as_deref(),
            Some("stream")
        );
        assert_eq!(err(r#"{"model":"m"}"#).param.as_deref(), Some("messages"));
        assert_eq!(err(r#"{"model":"m","messages":{}}"#).param.as_deref(), Some("messages"));
        let ok = ClientRequest::parse(br#"{"model":"g","messages":[],"stream":true}"#, Protocol::OpenAi).unwrap();
        assert_eq!(ok.model, "g");
        let ok = ClientRequest::parse(br#"{"model":"g","input":"hi"}"#, Protocol::Responses).unwrap();
        assert!(ok.raw().is_ok());
        let no_input = ClientRequest::parse(br#"{"model":"g","messages":[]}"#, Protocol::Responses).unwrap();
        assert_eq!(no_input.raw().unwrap_err().param.as_deref(), Some("input"));
        assert_eq!(ok.model, "g");
        // A model that is not a plain string is decoded from the checked body.
        let escaped = ClientRequest::parse(br#"{"model":"g\u0031","messages":[]}"#, Protocol::OpenAi).unwrap();
        assert_eq!(escaped.model, "g1");
    }

    #[tokio::test]
    async fn body_limit() {
        let mut headers = HeaderMap::new();
        let t = Duration::from_secs(5);
        assert_eq!(read_body(&headers, Body::from("12345"), 5, t).await.unwrap(), "12345");
        let e = read_body(&headers, Body::from("123456"), 5, t).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        headers.insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        let e = read_body(&headers, Body::empty(), 5, t).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
