//! HTTP clients shared by deployments. One pooled client per distinct connect timeout (the connector
//! holds it), all behind the same `--proxy`. Reloads reuse existing clients, so keep-alive connections
//! survive config edits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Client, ClientError, build_client};

pub struct ClientPool {
    proxy: Option<String>,
    /// Built at start-up; stands in if a client with another connect timeout cannot be built.
    default: Client,
    clients: Mutex<HashMap<Duration, Client>>,
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
        })
    }

    /// The client for deployments with this connect timeout. Only called while building a snapshot.
    pub fn client(&self, connect_timeout: Duration) -> Client {
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
