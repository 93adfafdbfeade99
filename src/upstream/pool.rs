//! Connection pools shared by deployments: one [`Origin`] per origin, connect timeout and proxy, opened by
//! one client per distinct connect timeout and proxy (`--proxy`, a deployment's own `proxy`, or none).
//! Reloads reuse existing origins, so keep-alive connections survive config edits, and deployments on the
//! same host share their connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;

use super::origin::Origin;
use super::{Client, ClientError, build_client};
use crate::config::UpstreamProxy;

pub struct ClientPool {
    proxy: Option<String>,
    /// Built at start-up; stands in if a client with another connect timeout cannot be built.
    default: Client,
    clients: Mutex<HashMap<(Duration, Option<String>), Client>>,
    origins: Mutex<HashMap<OriginKey, Arc<Origin>>>,
}

/// Connect timeout, proxy URL (none: direct) and `scheme://authority`.
type OriginKey = (Duration, Option<String>, String);

impl ClientPool {
    /// Checks the proxy by building a first client.
    pub fn new(proxy: Option<String>) -> Result<Self, ClientError> {
        let default_timeout = crate::config::Timeouts::default().connect;
        let default = build_client(proxy.as_deref(), default_timeout)?;
        Ok(Self {
            clients: Mutex::new(HashMap::from([((default_timeout, proxy.clone()), default.clone())])),
            proxy,

            default,
            origins: Mutex::default(),
        })
    }

    /// The connections to `endpoint`'s origin with this connect timeout, through the deployment's proxy.
    /// Only called while building a snapshot.
    pub fn origin(&self, connect_timeout: Duration, proxy: &UpstreamProxy, endpoint: &Uri) -> Arc<Origin> {
        let proxy = match proxy {
            UpstreamProxy::Router => self.proxy.clone(),
            UpstreamProxy::Direct => None,
            UpstreamProxy::Url(url) => Some(url.expose().to_owned()),
        };
        let key = (
            connect_timeout,
            proxy.clone(),
            format!(
                "{}://{}",
                endpoint.scheme_str().unwrap_or_default(),
                endpoint.authority().map_or("", |a| a.as_str())
            ),
        );
        let mut origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        origins
            .entry(key)
            .or_insert_with(|| Arc::new(self.client(connect_timeout, proxy).origin(endpoint)))
            .clone()
    }

    /// The client for deployments with this connect timeout and proxy.
    fn client(&self, connect_timeout: Duration, proxy: Option<String>) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (connect_timeout, proxy);
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        // Validation checked a deployment's proxy as `--proxy` is checked at start: building fails only on
        // what the system refuses (no TLS roots, say).
        match build_client(key.1.as_deref(), connect_timeout) {
            Ok(client) => {
                clients.insert(key, client.clone());
                client
            }
            Err(error) => {
                tracing::error!(%error, "cannot build an HTTP client; using the router's default one");
                self.default.clone()
            }
        }
    }
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool").finish_non_exhaustive()
    }
}
