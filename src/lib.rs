//! llm-router: a small, fast gateway between LLM clients and LLM providers.
//!
//! A request travels through these modules, in this order:
//!
//! - [`server`]: the accept loop, the HTTP routes (`/v1/chat/completions`, `/v1/messages`, `/v1/responses`,
//!   `/v1/models`, `/health`, `/metrics`), the token and client-key check, and errors rendered in the client's
//!   protocol.
//! - [`limits`]: client keys (`client_keys`), the groups each may use and its limits (a window of per-second request counts, a
//!   token bucket for tokens), per process or shared through Redis (`redis_url`) with the cooldowns.
//! - [`relay`]: the request path itself, stage by stage: the attempt loop with failover, one attempt, the
//!   commit boundary of a stream, the stream pump, typed failures and the one record of each request.
//! - [`routing`]: model groups and their balancers (smooth weighted round-robin, weighted random), held in an
//!   immutable [`routing::Snapshot`] that a request keeps from start to end.
//! - [`upstream`]: the pooled HTTP client (and `--proxy`), upstream headers, upstream errors.
//! - [`protocol`]: the three protocols (Chat Completions, Anthropic Messages, the Responses API), the SSE
//!   parser, the raw-body editor used when no conversion is needed, and conversion: the hub
//!   (`protocol::hub`, a shared representation that pairs any decoder with any encoder) with one folder of
//!   pure codecs per protocol; `protocol::convert` holds what the codecs share (`docs/hub.md`).
//! - [`config`]: the YAML schema, its validation, and hot reload into a new snapshot.
//! - [`status`]: what the router shows of itself: the live status page, its five-minute windows, and the
//!   optional SQLite usage log.
//! - [`metrics`]: `GET /metrics`, the Prometheus families; each snapshot holds its groups' handles into them,
//!   and [`relay::record`] records every request there once, at its end, with its log line.
//!
//! Beside the request path: [`logging`] (stderr and the rotated `--log-file`) and [`check`] (`--check`, one
//! tiny request to every deployment).
//!
//! `main.rs` only parses the command line, sets up logging and calls [`start`] (or [`check`]).

pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod relay;
pub mod routing;
pub mod server;
pub mod status;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::reload::Reloader;
use crate::limits::ClientKey;
use crate::limits::shared::SharedStore;
use crate::metrics::Metrics;
use crate::routing::Snapshot;
use crate::server::{AppState, Shared, Token};
use crate::status::Status;
use crate::upstream::ClientPool;

/// What the router needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub config: PathBuf,
    pub token: Option<String>,
    pub proxy: Option<String>,
}

impl Settings {
    pub fn from_cli(cli: &cli::Cli) -> Self {
        Self {
            listen: SocketAddr::new(cli.ip, cli.port),
            config: cli.config.clone(),
            token: cli.token.clone().filter(|t| !t.is_empty()),
            proxy: cli.proxy.clone(),
        }
    }
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch the config file for changes: {0}")]
    Watch(#[from] notify::Error),
    #[error("{0}")]
    UsageDb(String),
}

/// A running router.
pub struct Running {
    pub local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    reload: JoinHandle<()>,
    /// Follows `redis_url` and exchanges cooldowns with the other replicas.
    shared: JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish, and returns.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.reload.abort();
        self.shared.abort();
        match (&mut self.serve).await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

/// Loads the config, binds the listener, and starts serving and watching the config file.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let text = std::fs::read_to_string(&settings.config).map_err(|source| config::ConfigError::Read {
        path: settings.config.display().to_string(),
        source,
    })?;
    let config = config::parse(&text, &settings.config)?;
    let status = Arc::new(Status::new(settings.config.clone()));
    status.apply_config(&config).map_err(StartError::UsageDb)?;
    let pool = Arc::new(ClientPool::new(settings.proxy.clone())?);
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(ArcSwap::from_pointee(Snapshot::build(config, None, &pool, &metrics)));
    let reloader = Reloader::new(
        settings.config.clone(),
        live.clone(),
        pool,
        metrics.clone(),
        text,
        status.clone(),
    );
    let reload = config::reload::spawn(Arc::new(reloader))?;

    let bind_error = |source| StartError::Bind {
        addr: settings.listen,
        source,
    };
    let listener = TcpListener::bind(settings.listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let shared_limits = Arc::new(SharedStore::new(metrics.redis_errors.clone()));
    // Connected before the first request, so that limits are shared from the start when Redis is up.
    shared_limits.follow(live.load().config.redis_url.as_ref());
    let shared = limits::shared::spawn(shared_limits.clone(), live.clone());
    let token = settings.token.as_deref().map(Token::new);
    let state = AppState::new(Shared {
        snapshot: live.clone(),
        token_key: token.as_ref().map(|_| Arc::new(ClientKey::token(&metrics))),
        token,
        shared_limits,
        signing_key: rand::random(),
        status,
        metrics,
    });
    let (tx, rx) = oneshot::channel();
    let shutdown = async {
        let _ = rx.await;
    };
    let serve = tokio::spawn(server::listener::serve(listener, state, live, shutdown));
    Ok(Running {
        local_addr,
        shutdown: Some(tx),
        serve,
        reload,
        shared,
    })
}
