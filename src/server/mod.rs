//! The HTTP face of the router: the accept loop, routes, authentication (the token and client keys), reading
//! a client's request, `/v1/models` and `count_tokens`, and errors rendered in the client's protocol. The
//! request path of `/v1/chat/completions`, `/v1/messages`, `/v1/responses` and Gemini's
//! `models/{model}:generateContent` is its own module, [`crate::relay`].

mod auth;
mod count_tokens;
pub mod error;
pub mod listener;
pub(crate) mod models;
pub mod request;
mod status_page;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use hyper::body::Body as _;

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
    /// The key `--token` stands for (`default`, no limits), counted like the `client_keys`.
    pub token_key: Option<crate::limits::Caller>,
    /// `redis_url`'s connection: limits and cooldowns shared with the other replicas.
    pub shared_limits: Arc<crate::limits::shared::SharedStore>,
    /// Key for the router-minted thinking signatures (random per process: they are only ever checked by
    /// the router itself, which strips them before an Anthropic upstream sees them).
    pub signing_key: [u8; 32],
    /// What the status page shows beyond the snapshot, and the usage log.
    pub status: Arc<crate::status::Status>,
    /// The router's metrics, for the lifetime of the process (snapshots hold handles into them).
    pub metrics: Arc<crate::metrics::Metrics>,
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

/// Answers one request. `/health` is open; every API route requires the token or a client key when either is
/// set (the key goes to the relay in the request's extensions). A plain match: the router has a dozen routes,
/// and a general router's layers cost more per request than its lookup saves.
pub async fn route(state: AppState, mut request: Request) -> Response {
    let path = request.uri().path();
    let Some(route) = Route::of(path) else {
        return before_body(&request, not_found(&request));
    };
    // The status page holds no data, its login takes the token itself, and its data takes a cookie too.
    let open = matches!(
        route,
        Route::Health | Route::StatusPage | Route::StatusLogin | Route::StatusData
    );
    if !open {
        let keys = &state.snapshot.load().keys;
        let (headers, query) = (request.headers(), request.uri().query());
        match auth::identify(state.token.as_ref(), state.token_key.as_ref(), keys, headers, query) {
            Ok(None) => {}
            // The relay reads it back for the key's groups, limits and usage.
            Ok(Some(caller)) => {
                request.extensions_mut().insert(caller);
            }
            Err(refused) => {
                state.metrics.auth_failures.inc();
                let protocol = client_protocol(request.uri(), request.headers());
                return before_body(&request, ApiError::refused(refused).into_response(protocol));
            }
        }
    }
    let method = request.method();
    let allowed = match route {
        Route::Health | Route::Metrics | Route::Models | Route::Model | Route::StatusPage | Route::StatusData => {
            method == Method::GET || method == Method::HEAD
        }
        _ => method == Method::POST,
    };
    if !allowed {
        return before_body(&request, method_not_allowed(route, &request));
    }
    match route {
        Route::Health => health(&state),
        Route::StatusPage => status_page::page(),
        Route::StatusData => {
            let allowed = status_page::allowed(&state, request.headers());
            status_page::data(&state, allowed).await
        }
        Route::StatusLogin => status_page::login(&state, request).await,
        Route::Metrics => metrics(&state),
        Route::ChatCompletions => crate::relay::handle(state, Protocol::OpenAi, request).await,
        Route::Messages => crate::relay::handle(state, Protocol::Anthropic, request).await,
        Route::Responses => crate::relay::handle(state, Protocol::Responses, request).await,
        Route::GeminiGenerate => crate::relay::handle(state, Protocol::Gemini, request).await,
        Route::GeminiStream => crate::relay::handle(state, Protocol::Gemini, request).await,
        Route::CountTokens => count_tokens::count_tokens(state, request).await,
        Route::GeminiCountTokens => count_tokens::gemini_count_tokens(state, request).await,
        Route::Models => models::list(&state, &request),
        Route::Model => models::get(&state, &request),
    }
}

/// The routes, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    /// `GET /` and `/status`: the status page.
    StatusPage,
    /// `GET /status.json`: the page's data.
    StatusData,
    /// `POST /status/login`: the page's token form.
    StatusLogin,
    /// Prometheus metrics; behind the token like the API routes (series names reveal the config).
    Metrics,
    ChatCompletions,
    Messages,
    Responses,
    CountTokens,
    Models,
    /// `/v1/models/{id}`: one path segment after the prefix.
    Model,
    /// Gemini's `POST /{v1beta,v1,v1alpha}/models/{model}:generateContent`.
    GeminiGenerate,
    /// Gemini's `…/models/{model}:streamGenerateContent` (`alt=sse`).
    GeminiStream,
    /// Gemini's `…/models/{model}:countTokens`.
    GeminiCountTokens,
}

impl Route {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/health" => Route::Health,
            "/" | "/status" => Route::StatusPage,
            "/status.json" => Route::StatusData,
            "/status/login" => Route::StatusLogin,
            "/metrics" => Route::Metrics,
            "/v1/chat/completions" => Route::ChatCompletions,
            "/v1/messages" => Route::Messages,
            "/v1/responses" => Route::Responses,
            "/v1/messages/count_tokens" => Route::CountTokens,
            "/v1/models" | "/v1beta/models" | "/v1alpha/models" => Route::Models,
            _ => match models::model_in_path(path)? {
                (_, None) => Route::Model,
                (_, Some("generateContent")) => Route::GeminiGenerate,
                (_, Some("streamGenerateContent")) => Route::GeminiStream,
                (_, Some("countTokens")) => Route::GeminiCountTokens,
                (_, Some(_)) => return None,
            },
        })
    }

    fn allow(self) -> &'static str {
        match self {
            Route::Health | Route::Metrics | Route::Models | Route::Model | Route::StatusPage | Route::StatusData => {
                "GET,HEAD"
            }
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

fn metrics(state: &AppState) -> Response {
    let text = state.metrics.render(&state.snapshot.load());
    let mut response = Response::new(axum::body::Body::from(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// An answer given before the request's body is read. hyper closes the connection after it, unless it can
/// pass over the rest of the body at once, so the answer says it closes: a client that took the connection
/// back into its pool would send its next request into the closing socket ("server disconnected").
fn before_body(request: &Request, mut response: Response) -> Response {
    if !request.body().is_end_stream() {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn not_found(request: &Request) -> Response {
    let protocol = client_protocol(request.uri(), request.headers());
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
    .into_response(protocol)
}

fn method_not_allowed(route: Route, request: &Request) -> Response {
    let protocol = client_protocol(request.uri(), request.headers());
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

/// Which protocol's shapes (errors, the models list) a request expects: Gemini on Gemini's paths
/// (`/v1beta/…`, `…/models/{m}:generateContent`); `/v1/messages*` is Anthropic; elsewhere Anthropic when the
/// client looks like an Anthropic SDK (`anthropic-version`, or `x-api-key` without `Authorization`), Gemini
/// when it looks like a Google SDK (`x-goog-api-key`, `x-goog-api-client` or a `key` parameter), else OpenAI.
pub fn client_protocol(uri: &Uri, headers: &HeaderMap) -> Protocol {
    let path = uri.path();
    let gemini_path = path.starts_with("/v1beta/")
        || path.starts_with("/v1alpha/")
        || models::model_in_path(path).is_some_and(|(_, method)| method.is_some());
    if gemini_path {
        Protocol::Gemini
    } else if path.starts_with("/v1/messages") || looks_like_anthropic_client(headers) {
        Protocol::Anthropic
    } else if looks_like_google_client(uri, headers) {
        Protocol::Gemini
    } else {
        Protocol::OpenAi
    }
}

fn looks_like_google_client(uri: &Uri, headers: &HeaderMap) -> bool {
    headers.contains_key("x-goog-api-key")
        || headers.contains_key("x-goog-api-client")
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("key=")))
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
        let of = |uri: &'static str, headers: &HeaderMap| client_protocol(&Uri::from_static(uri), headers);
        let none = HeaderMap::new();
        assert_eq!(of("/v1/messages", &none), Protocol::Anthropic);
        assert_eq!(of("/v1/messages/count_tokens", &none), Protocol::Anthropic);
        assert_eq!(of("/v1/chat/completions", &none), Protocol::OpenAi);
        assert_eq!(of("/v1/models", &none), Protocol::OpenAi);
        let mut ant = HeaderMap::new();
        ant.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(of("/v1/models", &ant), Protocol::Anthropic);
        let mut key = HeaderMap::new();
        key.insert("x-api-key", HeaderValue::from_static("k"));
        assert_eq!(of("/v1/models", &key), Protocol::Anthropic);
        key.insert("authorization", HeaderValue::from_static("Bearer k"));
        assert_eq!(of("/v1/models", &key), Protocol::OpenAi);
        // Gemini: its paths, its SDKs' headers, or a `key` parameter.
        assert_eq!(of("/v1beta/models", &none), Protocol::Gemini);
        assert_eq!(of("/v1/models/g:generateContent", &none), Protocol::Gemini);
        assert_eq!(of("/v1/models?key=k", &none), Protocol::Gemini);
        let mut goog = HeaderMap::new();
        goog.insert("x-goog-api-key", HeaderValue::from_static("k"));
        assert_eq!(of("/v1/models", &goog), Protocol::Gemini);
        assert_eq!(
            of("/v1/models/ft:gpt-4o:org", &none),
            Protocol::OpenAi,
            "a colon alone is not Gemini"
        );
    }

    #[test]
    fn gemini_routes_under_each_version() {
        for v in ["v1", "v1beta", "v1alpha"] {
            let at = |rest: &str| Route::of(&format!("/{v}/models{rest}"));
            assert_eq!(at(""), Some(Route::Models));
            assert_eq!(
                at("/gemini-3.1-pro-preview:generateContent"),
                Some(Route::GeminiGenerate)
            );
            assert_eq!(
                at("/models/g:streamGenerateContent"),
                Some(Route::GeminiStream),
                "double prefix"
            );
            assert_eq!(at("/g:countTokens"), Some(Route::GeminiCountTokens));
            assert_eq!(at("/g"), Some(Route::Model));
            assert_eq!(at("/g:unknownMethod"), Some(Route::Model), "an id with a colon");
            assert_eq!(at("/tunedModels/x:generateContent"), None);
        }
        assert_eq!(Route::of("/v1/models/ft:gpt-4o:org"), Some(Route::Model));
    }
}
