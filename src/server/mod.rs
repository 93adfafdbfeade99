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
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};

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

/// All routes. `/health` is open; everything under `/v1` requires the token when one is set.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(crate::relay::chat_completions))
        .route("/v1/messages", post(crate::relay::messages))
        .route("/v1/responses", post(crate::relay::responses))
        .route("/v1/messages/count_tokens", post(count_tokens::count_tokens))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health))
        .merge(v1)
        .fallback(not_found)
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let groups = state.snapshot.load().listed.len();
    error::json_response(
        StatusCode::OK,
        format!(r#"{{"status":"ok","model_groups":{groups}}}"#).into_bytes(),
    )
}

async fn not_found(request: Request) -> Response {
    let protocol = client_protocol(request.uri().path(), request.headers());
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response(protocol)
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
