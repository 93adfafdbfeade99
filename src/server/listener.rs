//! The accept loop. Hand-written on hyper-util rather than `axum::serve` for what axum does not expose: a
//! header-read timeout (so clients that send headers byte by byte cannot hold connections forever), a cap on
//! open connections, and a bounded drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::routing::Snapshot;
use crate::server::AppState;

/// Serves the routes until `shutdown` resolves, then stops accepting and gives connections in flight the
/// configured drain time to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    live: Arc<ArcSwap<Snapshot>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait for a connection to close before accepting: the kernel's backlog holds the
        // newcomers, as in mini-redis's `limit_connections`. Read per turn, so a reload applies at once.
        let cap = live.load().config.max_connections;
        tokio::select! {
            () = open.below(cap) => {}
            () = &mut shutdown => break,
        }
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Built per connection (cheap) so that a reloaded `header_read_timeout` applies to new connections.
        let mut builder = auto::Builder::new(TokioExecutor::new());
        let header_timeout = live.load().config.header_read_timeout;
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let state = state.clone();
        let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            // Boxed: hyper moves the service's future a few times, and a request's whole relay is in it. The
            // box is made first so that the future, several kilobytes, is written into it where it is made
            // rather than made on the stack and copied (`Box::pin(route(..))` copies it whole).
            let slot = Box::new_uninit();
            let response = Box::into_pin(Box::write(
                slot,
                crate::server::route(state.clone(), request.map(axum::body::Body::new)),
            ));
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let slot = open.take();
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let drain = live.load().config.reliability.drain_timeout;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain timeout reached; closing the remaining connections"),
    }
    Ok(())
}

/// The number of open client connections. A plain counter rather than a semaphore, because the cap can
/// change with every reload.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    closed: Notify,
}

impl OpenConnections {
    /// Resolves once fewer than `cap` connections are open.
    async fn below(&self, cap: usize) {
        loop {
            // Created before the check, so a close between the check and the wait is not missed.
            let closed = self.closed.notified();
            if self.count.load(Ordering::Acquire) < cap {
                return;
            }
            closed.await;
        }
    }

    fn take(self: &Arc<Self>) -> ConnectionSlot {
        self.count.fetch_add(1, Ordering::AcqRel);
        ConnectionSlot(self.clone())
    }
}

/// One open connection; closing it frees its place.
struct ConnectionSlot(Arc<OpenConnections>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.closed.notify_one();
    }
}
