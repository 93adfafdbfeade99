//! Reading a client's request: the body within the size limit, and the few fields the router itself needs.

use axum::body::Body;
use bytes::Bytes;
use std::time::Duration;

use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::ApiError;
use crate::protocol::Protocol;
use crate::protocol::raw_body::RawBody;

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
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::body_too_large(limit)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("cannot read request body: {e}"))),
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
    pub body: RawBody<'a>,
    pub model: String,
}

impl<'a> ClientRequest<'a> {
    /// Checks what the router itself relies on: a string `model`, a boolean `stream` if present, and the
    /// conversation (`messages`, or a Responses request's `input`).
    pub fn parse(bytes: &'a [u8], protocol: Protocol) -> Result<Self, ApiError> {
        let body = RawBody::parse(bytes)
            .map_err(|e| ApiError::bad_request(format!("request body is not a JSON object: {e}")))?;
        let model = match body.decode::<String>("model") {
            Ok(Some(model)) => model,
            Ok(None) => return Err(ApiError::bad_request("model: field is required").with_param("model")),
            Err(_) => return Err(ApiError::bad_request("model: must be a string").with_param("model")),
        };
        if body.decode::<bool>("stream").is_err() {
            return Err(ApiError::bad_request("stream: must be a boolean").with_param("stream"));
        }
        let (field, shape) = match protocol {
            Protocol::Responses => ("input", "a string or an array"),
            Protocol::OpenAi | Protocol::Anthropic => ("messages", "an array"),
        };
        match body.get(field) {
            None => Err(ApiError::bad_request(format!("{field}: field is required")).with_param(field)),
            Some(raw) if raw.get().starts_with('[') => Ok(Self { body, model }),
            Some(raw) if protocol == Protocol::Responses && raw.get().starts_with('"') => Ok(Self { body, model }),
            Some(_) => Err(ApiError::bad_request(format!("{field}: must be {shape}")).with_param(field)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_validation() {
        let err = |body: &str| ClientRequest::parse(body.as_bytes(), Protocol::OpenAi).err().unwrap();
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
        assert!(ClientRequest::parse(br#"{"model":"g","messages":[]}"#, Protocol::Responses).is_err());
        assert_eq!(ok.model, "g");
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
