//! OpenAI Chat Completions wire shapes shared by the server and the converters.

use serde::Serialize;

/// `{"error":{"message","type","param","code"}}`, the error body of every OpenAI endpoint.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// Serialises an OpenAI error body.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    };
    crate::protocol::json::to_vec(&body).expect("error body serialises")
}

/// The OpenAI error `type` conventionally used for an HTTP status.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 | 400 | 413 | 422 => "invalid_request_error",
        429 => "rate_limit_error",
        503 | 529 => "service_unavailable_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

/// The error `type` that goes with a code of the hub's error vocabulary (OpenAI's codes, which the
/// Anthropic codecs translate to and from).
pub fn error_type_for_code(code: &str) -> &'static str {
    match code {
        "server_is_overloaded" | "service_unavailable_error" => "service_unavailable_error",
        "rate_limit_exceeded" | "rate_limit_error" => "rate_limit_error",
        "insufficient_quota" => "insufficient_quota",
        "invalid_api_key" | "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "context_length_exceeded" | "invalid_request_error" | "model_not_found" | "request_too_large" => {
            "invalid_request_error"
        }
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let body = error_body("bad", "invalid_request_error", Some("model"), None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error":{"message":"bad","type":"invalid_request_error","param":"model","code":null}})
        );
    }
}
