//! Errors the router answers with itself, rendered once, at the edge, in the client's protocol:
//! OpenAI `{"error":{…}}` or Anthropic `{"type":"error","error":{…}}`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::protocol::{ErrorShape, Protocol, anthropic, gemini, openai};

/// A client-facing error. The message must never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI `code` (e.g. `model_not_found`); Anthropic has no such field.
    pub code: Option<&'static str>,
    /// OpenAI `param`: the request field at fault, for validation errors.
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            param: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid or missing API key").with_code("invalid_api_key")
    }

    /// A request without a key the router accepts; an expired key is named (never shown).
    pub(crate) fn refused(refused: super::auth::Refused) -> Self {
        match refused {
            super::auth::Refused::Unknown => Self::unauthorized(),
            super::auth::Refused::Expired(name) => {
                Self::new(StatusCode::UNAUTHORIZED, format!("the key '{name}' has expired"))
                    .with_code("invalid_api_key")
            }
        }
    }

    pub fn unknown_model(model: &str, known: &[String]) -> Self {
        let message = if known.is_empty() {
            format!("model '{model}' does not exist")
        } else {
            format!("model '{model}' does not exist; available: {}", known.join(", "))
        };
        Self::new(StatusCode::NOT_FOUND, message).with_code("model_not_found")
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
        .with_code("request_too_large")
    }

    /// The JSON body in `protocol`'s error shape.
    pub fn body(&self, protocol: Protocol) -> Vec<u8> {
        let status = self.status.as_u16();
        match protocol.error_shape() {
            ErrorShape::OpenAi => openai::error_body(
                &self.message,
                openai::error_type_for_status(status),
                self.param.as_deref(),
                self.code,
            ),
            ErrorShape::Anthropic => {
                anthropic::error_body(anthropic::error_type_for_status(status), &self.message, None)
            }
            ErrorShape::Google => gemini::error_body(status, &self.message),
        }
    }

    /// The status a client of `protocol` gets: Google's table folds a few (413 is a 400 there).
    pub fn status_for(&self, protocol: Protocol) -> StatusCode {
        match protocol.error_shape() {
            ErrorShape::Google => {
                StatusCode::from_u16(gemini::client_status(self.status.as_u16())).unwrap_or(self.status)
            }
            _ => self.status,
        }
    }

    pub fn into_response(self, protocol: Protocol) -> Response {
        json_response(self.status_for(protocol), self.body(protocol))
    }
}

/// A request the converters refuse: 400 with the offending field.
impl From<crate::protocol::convert::ConvertError> for ApiError {
    fn from(error: crate::protocol::convert::ConvertError) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: error.message,
            code: error.code,
            param: error.param,
        }
    }
}

/// An upstream error body for a client of the same protocol: relayed as-is when it already has the protocol's
/// error shape, otherwise (an HTML page from a proxy, a bare string) wrapped into it.
pub fn same_protocol_error_body(client: Protocol, status: StatusCode, body: &[u8]) -> Vec<u8> {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let well_formed = parsed.as_ref().is_some_and(|v| match client.error_shape() {
        ErrorShape::OpenAi => v["error"].is_object(),
        ErrorShape::Anthropic => v["type"] == "error" && v["error"].is_object(),
        ErrorShape::Google => v["error"]["status"].is_string(),
    });
    if well_formed {
        return body.to_vec();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
    let message = format!("upstream returned HTTP {}: {}", status.as_u16(), text.trim());
    ApiError::new(status, message).body(client)
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn body(error: &ApiError, protocol: Protocol) -> Value {
        serde_json::from_slice(&error.body(protocol)).unwrap()
    }

    #[test]
    fn unknown_model_in_both_shapes() {
        let e = ApiError::unknown_model("x", &["a".into(), "b".into()]);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            body(&e, Protocol::OpenAi),
            json!({"error":{"message":"model 'x' does not exist; available: a, b","type":"invalid_request_error","param":null,"code":"model_not_found"}})
        );
        assert_eq!(
            body(&e, Protocol::Anthropic),
            json!({"type":"error","error":{"type":"not_found_error","message":"model 'x' does not exist; available: a, b"},"request_id":null})
        );
    }

    #[test]
    fn upstream_error_bodies_keep_or_get_the_client_shape() {
        let oai = br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#;
        assert_eq!(
            same_protocol_error_body(Protocol::OpenAi, StatusCode::BAD_REQUEST, oai),
            oai
        );
        let wrapped = same_protocol_error_body(
            Protocol::Anthropic,
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
        );
        let v: Value = serde_json::from_slice(&wrapped).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(
            v["error"]["message"],
            "upstream returned HTTP 502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn types_follow_status() {
        let e = ApiError::unauthorized();
        assert_eq!(body(&e, Protocol::OpenAi)["error"]["type"], "authentication_error");
        assert_eq!(body(&e, Protocol::Anthropic)["error"]["type"], "authentication_error");
        let e = ApiError::body_too_large(10);
        assert_eq!(body(&e, Protocol::Anthropic)["error"]["type"], "request_too_large");
        let e = ApiError::new(StatusCode::BAD_GATEWAY, "down");
        assert_eq!(body(&e, Protocol::OpenAi)["error"]["type"], "server_error");
        assert_eq!(body(&e, Protocol::Anthropic)["error"]["type"], "api_error");
    }
}
