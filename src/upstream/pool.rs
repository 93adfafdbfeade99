//! Connection pools shared by deployments: one [`Origin`] per origin and connect timeout, opened by one
//! client per distinct connect timeout, all behind the same `--proxy`. Reloads reuse existing origins, so
//! keep-alive connections survive config edits, and deployments on the same host share their connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;

use super::origin::Origin;
use super::{Client, ClientError, build_client};

pub struct ClientPool {
    proxy: Option<String>,
    /// Built at start-up; stands in if a client with another connect timeout cannot be built.
    default: Client,
    clients: Mutex<HashMap<Duration, Client>>,
    /// By connect timeout and `scheme://authority`.
    origins: Mutex<HashMap<(Duration, String), Arc<Origin>>>,
}

impl ClientPool {
    /// Checks the proxy by building a first client.
    pub fn new(proxy: Option<String>) -> Result<Self, ClientError> {
        let default_timeout = crate::config::Timeouts::default().connect;
        let default = build_client(proxy.as_deref(), default_timeout)?;
        Ok(Self {
            proxy,
            clients: Mutex::new(HashMap::from([(default_timeout, default.clone())])),
            default,
            origins: Mutex::default(),
        })
    }

    /// The connections to `endpoint`'s origin with this connect timeout. Only called while building a
    /// snapshot.
    pub fn origin(&self, connect_timeout: Duration, endpoint: &Uri) -> Arc<Origin> {
        let key = (
            connect_timeout,
            format!(
                "{}://{}",
                endpoint.scheme_str().unwrap_or_default(),
                endpoint.authority().map_or("", |a| a.as_str())
            ),
        );
        let mut origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        origins
            .entry(key)
            .or_insert_with(|| Arc::new(self.client(connect_timeout).origin(endpoint)))
            .clone()
    }

    /// The client for deployments with this connect timeout.
    fn client(&self, connect_timeout: Duration) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&connect_timeout) {
            return client.clone();
        }
        match build_client(self.proxy.as_deref(), connect_timeout) {
            Ok(client) => {
                clients.insert(connect_timeout, client.clone());
                client
            }
            Err(error) => {
                tracing::error!(%error, "cannot build an HTTP client; using the default connect timeout");
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
