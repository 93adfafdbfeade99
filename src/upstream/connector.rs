//! How the upstream client reaches a host: directly, through an HTTP(S) proxy (absolute-form requests for
//! plain-http targets, a CONNECT tunnel for https ones) or through a SOCKS5 proxy. TLS to the upstream itself
//! is added on top by `hyper_rustls::HttpsConnector`; the whole set-up runs under the connect timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// A hop to an HTTP proxy: plain TCP for `http://` proxies, TLS (HTTP/1.1 only) for `https://` ones.
pub type ProxyHop = HttpsConnector<HttpConnector>;

/// The route of every connection a client opens.
#[derive(Clone)]
pub enum Route {
    Direct(HttpConnector),
    /// `http://` or `https://` proxy.
    Http {
        /// Connects to the proxy (the `Uri` is its address).
        hop: ProxyHop,
        proxy: Uri,
        /// CONNECT tunnels for https targets, with the proxy's credentials.
        tunnel: Tunnel<ProxyHop>,
    },
    /// `socks5://` (names resolved here) or `socks5h://` (names resolved by the proxy).
    Socks {
        socks: SocksV5<HttpConnector>,
        local_dns: bool,
    },
}

/// Opens the transport (TCP, possibly through a proxy) under the TLS layer.
#[derive(Clone)]
pub struct ProxyConnector {
    pub route: Route,
}

/// One transport connection; `proxied` when requests on it go to an HTTP proxy in absolute form.
pub struct Conn {
    io: MaybeHttpsStream<TokioIo<TcpStream>>,
    proxied: bool,
}

impl Service<Uri> for ProxyConnector {
    type Response = Conn;
    type Error = BoxError;
    type Future = BoxFuture<Conn>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let direct = |io| Conn {
            io: MaybeHttpsStream::Http(io),
            proxied: false,
        };
        match &mut self.route {
            Route::Direct(http) => {
                let connecting = http.call(dst);
                Box::pin(async move { Ok(direct(connecting.await?)) })
            }
            Route::Http { hop, proxy, tunnel } => {
                if dst.scheme() == Some(&Scheme::HTTP) {
                    let connecting = hop.call(proxy.clone());
                    Box::pin(async move {
                        Ok(Conn {
                            io: connecting.await?,
                            proxied: true,
                        })
                    })
                } else {
                    let target = match with_port(&dst, None) {
                        Ok(target) => target,
                        Err(e) => return Box::pin(async move { Err(e) }),
                    };
                    let connecting = tunnel.call(target);
                    Box::pin(async move {
                        Ok(Conn {
                            io: connecting.await?,
                            proxied: false,
                        })
                    })
                }
            }
            Route::Socks { socks, local_dns } => {
                let mut socks = socks.clone();
                let local_dns = *local_dns;
                Box::pin(async move {
                    let resolved = match dst.host() {
                        Some(host) if local_dns && host.parse::<std::net::IpAddr>().is_err() => {
                            let port = default_port(&dst);
                            let addr = tokio::net::lookup_host((host, port))
                                .await?
                                .next()
                                .ok_or_else(|| io::Error::other(format!("no address found for {host}")))?;
                            Some(addr)
                        }
                        _ => None,
                    };
                    let target = with_port(&dst, resolved)?;
                    Ok(direct(socks.call(target).await?))
                })
            }
        }
    }
}

fn default_port(dst: &Uri) -> u16 {
    dst.port_u16()
        .unwrap_or(if dst.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 })
}

/// The target as `scheme://host:port/` with an explicit port (the proxy connectors assume 443 otherwise),
/// or with an address resolved here.
fn with_port(dst: &Uri, resolved: Option<std::net::SocketAddr>) -> Result<Uri, BoxError> {
    let authority = match resolved {
        Some(addr) => addr.to_string(),
        None => {
            let host = dst.host().ok_or_else(|| io::Error::other("missing host"))?;
            format!("{host}:{}", default_port(dst))
        }
    };
    let scheme = dst.scheme().cloned().unwrap_or(Scheme::HTTP);
    Ok(Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query("/")
        .build()?)
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Bounds the whole connection set-up (TCP, proxy handshake, TLS) by the connect timeout, like reqwest's
/// `connect_timeout` did. Expiry is an `io::ErrorKind::TimedOut`, which the caller classifies as a timeout.
#[derive(Clone)]
pub struct Timed<C> {
    pub inner: C,
    pub timeout: Duration,
}

impl<C> Service<Uri> for Timed<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = BoxFuture<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out").into()),
            }
        })
    }
}
