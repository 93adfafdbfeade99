//! `GET /` and `/status` (the page), `GET /status.json` (its data) and `POST /status/login` (the page's
//! token form). The page is open to anyone because it holds no data; its data needs the token, as a
//! Bearer header or as the session cookie the login sets.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use super::AppState;
use super::error::{ApiError, json_response};
use crate::protocol::Protocol;
use crate::status::{self, CHART_DAYS};

/// A login form is a token and little else.
const LOGIN_BODY_LIMIT: usize = 8 * 1024;

pub fn page() -> Response {
    let mut response = Response::new(Body::from(status::PAGE));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page loads nothing from elsewhere and may not be framed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a request may read the page's data: no token is set, or it carries the token or the cookie.
pub fn allowed(state: &AppState, headers: &HeaderMap) -> bool {
    state.token.as_ref().is_none_or(|token| {
        let bearer = token.accepts(headers, None);
        bearer | status::cookie_accepts(headers, token.as_bytes())
    })
}

pub async fn data(state: &AppState, allowed: bool) -> Response {
    if !allowed {
        return ApiError::unauthorized().into_response(Protocol::OpenAi);
    }
    let snapshot = state.snapshot.load_full();
    let days = match state.status.usage_db() {
        None => None,
        // SQLite reads block; a slow disk must not stall the runtime's threads.
        Some(db) => Some(
            tokio::task::spawn_blocking(move || db.tokens_per_day(CHART_DAYS))
                .await
                .unwrap_or_else(|e| Err(format!("usage_db: {e}"))),
        ),
    };
    let body = state.status.to_json(&snapshot, days);
    let mut response = json_response(StatusCode::OK, serde_json::to_vec(&body).expect("JSON serialises"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The form's `token=…`: a right one sets the session cookie, and either way the browser goes back to the
/// page (a wrong one with `?denied=1`, which the page shows).
pub async fn login(state: &AppState, request: Request) -> Response {
    let body = match Limited::new(request.into_body(), LOGIN_BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return ApiError::bad_request("the login form is too large").into_response(Protocol::OpenAi),
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let given = fields.iter().find(|(k, _)| k == "token").map(|(_, v)| v.trim());
    let cookie = match (&state.token, given) {
        (Some(token), Some(given)) if token.matches(given) => Some(status::set_cookie(token.as_bytes())),
        // Without a token there is nothing to log in to: the page shows its data anyway.
        (None, _) => None,
        _ => {
            tracing::info!("status page: login refused");
            return see_other("/status?denied=1", None);
        }
    };
    see_other("/status", cookie)
}

fn see_other(location: &'static str, cookie: Option<String>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(cookie) = cookie {
        headers.insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("the cookie is hex and ASCII"),
        );
    }
    response
}
