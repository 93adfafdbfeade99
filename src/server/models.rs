//! `GET /v1/models` and `GET /v1/models/{id}`: the client-facing model names, in OpenAI's list shape or,
//! for Anthropic clients, Anthropic's paginated shape, or for Gemini clients (also under `/v1beta/`)
//! Google's.

use std::borrow::Cow;

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

/// Where a model's own paths start: OpenAI's and Anthropic's `/v1/models/{id}`, and the Gemini API's
/// versions.
const ITEM_PREFIXES: [&str; 3] = ["/v1/models/", "/v1beta/models/", "/v1alpha/models/"];

/// Gemini's methods on a model, after the last `:` of its path segment.
const GEMINI_METHODS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];

/// The model a `…/models/{model}` path names (still percent-encoded), and the Gemini method after it if it
/// has one. A leading `models/` that a client doubled is dropped; a colon before anything but a Gemini
/// method belongs to the id (`ft:gpt-4o:org` is one fine-tuned model).
pub fn model_in_path(path: &str) -> Option<(&str, Option<&'static str>)> {
    let rest = ITEM_PREFIXES.into_iter().find_map(|prefix| path.strip_prefix(prefix))?;
    let rest = rest.strip_prefix("models/").unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    // The path is short: a byte scan from the end beats setting up a memchr search.
    if let Some(colon) = rest.bytes().rposition(|b| b == b':')
        && let Some(method) = GEMINI_METHODS.into_iter().find(|m| *m == &rest[colon + 1..])
        && colon > 0
    {
        return Some((&rest[..colon], Some(method)));
    }
    Some((rest, None))
}

pub fn list(state: &AppState, request: &Request) -> Response {
    let snapshot = state.snapshot.load();
    // A client key sees the groups it may use.
    let listed: Cow<'_, [String]> = match request.extensions().get::<crate::limits::Caller>() {
        Some(key) if key.spec.groups.is_some() => {
            Cow::Owned(snapshot.listed.iter().filter(|g| key.spec.allows(g)).cloned().collect())
        }
        _ => Cow::Borrowed(&snapshot.listed),
    };
    match client_protocol(request.uri(), request.headers()) {
        Protocol::OpenAi | Protocol::Responses => json_response(StatusCode::OK, openai_list(&listed)),
        Protocol::Gemini => match gemini_page(&listed, request.uri().query().unwrap_or_default()) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => e.into_response(Protocol::Gemini),
        },
        Protocol::Anthropic => {
            let query = request.uri().query().unwrap_or_default();
            let page = match serde_urlencoded::from_str::<PageParams>(query) {
                Ok(page) => page,
                Err(e) => {
                    let error = ApiError::bad_request(format!("invalid query string: {e}"));
                    return error.into_response(Protocol::Anthropic);
                }
            };
            match anthropic_page(&listed, &page) {
                Ok(body) => json_response(StatusCode::OK, body),
                Err(e) => e.into_response(Protocol::Anthropic),
            }
        }
    }
}

/// `GET /v1/models/{id}`, the id percent-decoded.
pub fn get(state: &AppState, request: &Request) -> Response {
    let snapshot = state.snapshot.load();
    let protocol = client_protocol(request.uri(), request.headers());
    let encoded = model_in_path(request.uri().path()).map_or("", |(model, _)| model);
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
        Protocol::Gemini => gemini_model(&id),
    };
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

fn openai_model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "llm-router"})
}

fn anthropic_model(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
}

/// A Gemini `Model`: the router knows no token limits, so they are left out (reference §7.2).
fn gemini_model(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    })
}

#[derive(Debug, Default, Deserialize)]
struct GeminiPageParams {
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
}

/// Google pagination: `pageSize` (default 50, at most 1000) and the `nextPageToken` of the page before,
/// here the position to go on from.
fn gemini_page(names: &[String], query: &str) -> Result<Vec<u8>, ApiError> {
    let params: GeminiPageParams =
        serde_urlencoded::from_str(query).map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let size = match params.page_size.as_deref() {
        None => 50,
        Some(text) => match text.parse::<usize>() {
            Ok(0) => 50,
            Ok(n) => n.min(1000),
            Err(_) => return Err(ApiError::bad_request("pageSize: must be a non-negative integer")),
        },
    };
    let start = match params.page_token.as_deref() {
        None | Some("") => 0,
        Some(token) => match token.parse::<usize>() {
            Ok(n) if n <= names.len() => n,
            _ => return Err(ApiError::bad_request("pageToken: not a token this router gave out")),
        },
    };
    let end = (start + size).min(names.len());
    let models: Vec<Value> = names[start..end].iter().map(|n| gemini_model(n)).collect();
    let mut body = json!({ "models": models });
    if end < names.len() {
        body["nextPageToken"] = Value::String(end.to_string());
    }
    Ok(body.to_string().into_bytes())
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
