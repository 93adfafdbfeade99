//! Anthropic Messages wire shapes shared by the server and the converters.

use serde::Serialize;

/// The `anthropic-version` sent upstream when the client did not send one.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// `{"type":"error","error":{"type","message"},"request_id"}`, the error body of every Anthropic endpoint and
/// the `data` of a stream's `error` event.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail<'a>,
    pub request_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// Serialises an Anthropic error body.
pub fn error_body(kind: &str, message: &str, request_id: Option<&str>) -> Vec<u8> {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail { kind, message },
        request_id,
    };
    crate::protocol::json::to_vec(&body).expect("error body serialises")
}

/// The Anthropic `error.type` for an HTTP status (Anthropic's documented table).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        400 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ if status >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let body = error_body("not_found_error", "no such model", None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"error","error":{"type":"not_found_error","message":"no such model"},"request_id":null})
        );
    }

    #[test]
    fn status_table() {
        assert_eq!(error_type_for_status(529), "overloaded_error");
        assert_eq!(error_type_for_status(502), "api_error");
        assert_eq!(error_type_for_status(402), "billing_error");
    }
}
