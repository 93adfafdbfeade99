//! The HTTP face of the router: the accept loop, routes, authentication, reading a client's request,
//! `/v1/models` and `count_tokens`, and errors rendered in the client's protocol. The request path of
//! `/v1/chat/completions` and `/v1/messages` is its own module, [`crate::relay`].

mod auth;
mod count_tokens;
pub mod error;
pub mod listener;
mod models;
pub mod request;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

pub use auth::Token;
use error::ApiError;

use crate::protocol::Protocol;
use crate::routing::Snapshot;

/// Shared by every request. Cloning is one reference-count increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    /// The live configuration; each request loads it once and keeps that snapshot to its end.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub token: Option<Token>,
    /// Key for the router-minted thinking signatures (random per process: they are only ever checked by
    /// the router itself, which strips them before an Anthropic upstream sees them).
    pub signing_key: [u8; 32],
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

/// Answers one request. `/health` is open; every `/v1` route requires the token when one is set. A plain
/// match: the router has seven routes, and a general router's layers cost more per request than its
/// lookup saves.
pub async fn route(state: AppState, request: Request) -> Response {
    let path = request.uri().path();
    let Some(route) = Route::of(path) else {
        return not_found(&request);
    };
    if route != Route::Health
        && let Some(token) = &state.token
        && !token.accepts(request.headers())
    {
        let protocol = client_protocol(path, request.headers());
        return ApiError::unauthorized().into_response(protocol);
    }
    let method = request.method();
    let allowed = match route {
        Route::Health | Route::Models | Route::Model => method == Method::GET || method == Method::HEAD,
        _ => method == Method::POST,
    };
    if !allowed {
        return method_not_allowed(route, &request);
    }
    match route {
        Route::Health => health(&state),
        Route::ChatCompletions => crate::relay::handle(state, Protocol::OpenAi, request).await,
        Route::Messages => crate::relay::handle(state, Protocol::Anthropic, request).await,
        Route::Responses => crate::relay::handle(state, Protocol::Responses, request).await,
        Route::CountTokens => count_tokens::count_tokens(state, request).await,
        Route::Models => models::list(&state, &request),
        Route::Model => models::get(&state, &request),
    }
}

/// The routes, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    ChatCompletions,
    Messages,
    Responses,
    CountTokens,
    Models,
    /// `/v1/models/{id}`: one path segment after the prefix.
    Model,
}

impl Route {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/health" => Route::Health,
            "/v1/chat/completions" => Route::ChatCompletions,
            "/v1/messages" => Route::Messages,
            "/v1/responses" => Route::Responses,
            "/v1/messages/count_tokens" => Route::CountTokens,
            "/v1/models" => Route::Models,
            _ => match path.strip_prefix(models::ITEM_PREFIX) {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Model,
                _ => return None,
            },
        })
    }

    fn allow(self) -> &'static str {
        match self {
            Route::Health | Route::Models | Route::Model => "GET,HEAD",
            _ => "POST",
        }
    }
}

fn health(state: &AppState) -> Response {
    let groups = state.snapshot.load().listed.len();
    error::json_response(
        StatusCode::OK,
        format!(r#"{{"status":"ok","model_groups":{groups}}}"#).into_bytes(),
    )
}

fn not_found(request: &Request) -> Response {
    let protocol = client_protocol(request.uri().path(), request.headers());
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response(protocol)
}

fn method_not_allowed(route: Route, request: &Request) -> Response {
    let protocol = client_protocol(request.uri().path(), request.headers());
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {}", request.uri().path(), request.method()),
    )
    .into_response(protocol);
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(route.allow()));
    response
}

/// Which protocol's error shape a request expects: `/v1/messages*` is Anthropic; elsewhere Anthropic when the
/// client looks like an Anthropic SDK (`anthropic-version`, or `x-api-key` without `Authorization`).
pub fn client_protocol(path: &str, headers: &HeaderMap) -> Protocol {
    if path.starts_with("/v1/messages") || looks_like_anthropic_client(headers) {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    }
}

fn looks_like_anthropic_client(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
        || (headers.contains_key("x-api-key") && !headers.contains_key(http::header::AUTHORIZATION))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn protocol_of_a_request() {
        let none = HeaderMap::new();
        assert_eq!(client_protocol("/v1/messages", &none), Protocol::Anthropic);
        assert_eq!(client_protocol("/v1/messages/count_tokens", &none), Protocol::Anthropic);
        assert_eq!(client_protocol("/v1/chat/completions", &none), Protocol::OpenAi);
        assert_eq!(client_protocol("/v1/models", &none), Protocol::OpenAi);
        let mut ant = HeaderMap::new();
        ant.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(client_protocol("/v1/models", &ant), Protocol::Anthropic);
        let mut key = HeaderMap::new();
        key.insert("x-api-key", HeaderValue::from_static("k"));
        assert_eq!(client_protocol("/v1/models", &key), Protocol::Anthropic);
        key.insert("authorization", HeaderValue::from_static("Bearer k"));
        assert_eq!(client_protocol("/v1/models", &key), Protocol::OpenAi);
    }
}
