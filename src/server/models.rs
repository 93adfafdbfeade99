//! `GET /v1/models` and `GET /v1/models/{id}`: the client-facing model names, in OpenAI's list shape or,
//! for Anthropic clients, Anthropic's paginated shape.

use axum::extract::Request;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, json_response};
use super::{AppState, client_protocol};
use crate::protocol::Protocol;

/// Configured models have no release date; the Anthropic API itself uses the epoch for unknown dates.
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// Where `/v1/models/{id}` paths start.
pub const ITEM_PREFIX: &str = "/v1/models/";

pub fn list(state: &AppState, request: &Request) -> Response {
    let snapshot = state.snapshot.load();
    match client_protocol(request.uri().path(), request.headers()) {
        Protocol::OpenAi | Protocol::Responses => json_response(StatusCode::OK, openai_list(&snapshot.listed)),
        Protocol::Anthropic => {
            let query = request.uri().query().unwrap_or_default();
            let page = match serde_urlencoded::from_str::<PageParams>(query) {
                Ok(page) => page,
                Err(e) => {
                    let error = ApiError::bad_request(format!("invalid query string: {e}"));
                    return error.into_response(Protocol::Anthropic);
                }
            };
            match anthropic_page(&snapshot.listed, &page) {
                Ok(body) => json_response(StatusCode::OK, body),
                Err(e) => e.into_response(Protocol::Anthropic),
            }
        }
    }
}

/// `GET /v1/models/{id}`, the id percent-decoded.
pub fn get(state: &AppState, request: &Request) -> Response {
    let snapshot = state.snapshot.load();
    let path = request.uri().path();
    let protocol = client_protocol(path, request.headers());
    let encoded = path.strip_prefix(ITEM_PREFIX).unwrap_or_default();
    let Ok(id) = percent_encoding::percent_decode_str(encoded).decode_utf8() else {
        return ApiError::bad_request("the model id in the path is not valid UTF-8").into_response(protocol);
    };
    // Listed groups, and `model_list` names that also work in requests.
    if snapshot.group(&id).is_none() {
        return ApiError::unknown_model(&id, &[]).into_response(protocol);
    }
    let body = match protocol {
        Protocol::OpenAi | Protocol::Responses => openai_model(&id),
        Protocol::Anthropic => anthropic_model(&id),
    };
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

fn openai_model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "llm-router"})
}

fn anthropic_model(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
}

fn openai_list(names: &[String]) -> Vec<u8> {
    let data: Vec<Value> = names.iter().map(|n| openai_model(n)).collect();
    json!({"object": "list", "data": data}).to_string().into_bytes()
}

/// Anthropic pagination: `limit` (1–1000, default 20), forward from `after_id` or backward from `before_id`.
fn anthropic_page(names: &[String], page: &PageParams) -> Result<Vec<u8>, ApiError> {
    let limit = match page.limit.as_deref() {
        None => 20,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request("limit: must be an integer from 1 to 1000").with_param("limit"));
            }
        },
    };
    let position = |id: &str, param: &str| {
        names
            .iter()
            .position(|n| n == id)
            .ok_or_else(|| ApiError::bad_request(format!("{param}: unknown model id '{id}'")).with_param(param))
    };
    let (start, end, has_more) = if let Some(before) = &page.before_id {
        let end = position(before, "before_id")?;
        let start = end.saturating_sub(limit);
        (start, end, start > 0)
    } else {
        let start = match &page.after_id {
            Some(after) => position(after, "after_id")? + 1,
            None => 0,
        };
        let end = (start + limit).min(names.len());
        (start, end, end < names.len())
    };
    let slice = &names[start..end];
    let data: Vec<Value> = slice.iter().map(|n| anthropic_model(n)).collect();
    let body = json!({
        "data": data,
        "has_more": has_more,
        "first_id": slice.first(),
        "last_id": slice.last(),
    });
    Ok(body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{i}")).collect()
    }

    fn page(limit: Option<&str>, after: Option<&str>, before: Option<&str>) -> PageParams {
        PageParams {
            limit: limit.map(Into::into),
            after_id: after.map(Into::into),
            before_id: before.map(Into::into),
        }
    }

    fn parsed(body: Vec<u8>) -> Value {
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn openai_shape() {
        let v = parsed(openai_list(&names(2)));
        assert_eq!(v["object"], "list");
        assert_eq!(
            v["data"][1],
            json!({"id":"m1","object":"model","created":0,"owned_by":"llm-router"})
        );
    }

    #[test]
    fn anthropic_pages_forward_and_backward() {
        let all = names(5);
        let v = parsed(anthropic_page(&all, &page(Some("2"), None, None)).unwrap());
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str(), v["has_more"].as_bool()),
            (Some("m0"), Some("m1"), Some(true))
        );
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(v["data"][0]["display_name"], "m0");
        let v = parsed(anthropic_page(&all, &page(Some("2"), Some("m3"), None)).unwrap());
        assert_eq!(
            (v["first_id"].as_str(), v["has_more"].as_bool()),
            (Some("m4"), Some(false))
        );
        let v = parsed(anthropic_page(&all, &page(Some("2"), None, Some("m3"))).unwrap());
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str(), v["has_more"].as_bool()),
            (Some("m1"), Some("m2"), Some(true))
        );
        let v = parsed(anthropic_page(&all, &page(None, Some("m4"), None)).unwrap());
        assert_eq!(
            (v["first_id"].clone(), v["has_more"].as_bool()),
            (Value::Null, Some(false))
        );
    }

    #[test]
    fn anthropic_page_errors() {
        let all = names(3);
        assert_eq!(
            anthropic_page(&all, &page(Some("0"), None, None))
                .unwrap_err()
                .param
                .as_deref(),
            Some("limit")
        );
        assert_eq!(
            anthropic_page(&all, &page(None, Some("zz"), None))
                .unwrap_err()
                .param
                .as_deref(),
            Some("after_id")
        );
    }
}
